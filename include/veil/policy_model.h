/* A security policy as the CAS holds it: parsed and validated from the YAML
 * that `veil apply -f Meshfile` writes (docs/manifests.md, "policy").
 * Strings point into the ydoc's arena: the model lives as long as the doc. */
#ifndef VEIL_POLICY_MODEL_H
#define VEIL_POLICY_MODEL_H

#include "veil/secret_schema.h"
#include "veil/ytree.h"

struct veil_env_var {
	const char *name;
	const char *value;    /* NULL: no value given (global without default) */
	struct veil_pos pos;  /* of the name */
	struct veil_pos vpos; /* of the value (the name's if none) */
};

struct veil_injection_file {
	const char *path;
	const char *content;
	struct veil_pos pos;
};

struct veil_policy_file {
	const char *path, *sha256; /* sha256: 64 hex */
	unsigned mode;
};

struct veil_policy_service {
	const char *name, *image_name, *file_set_root, *command, *pwd;
	/* the image measurement record's SHA-256 (include/veil/image_record.h);
	 * NULL: the image was not measured as a whole */
	const char *image_root;
	char **mrenclaves;
	size_t mrenclave_count;
	char **platforms; /* simulated platform key hashes the policy trusts */
	size_t platform_count;
	struct veil_env_var *env;
	size_t env_count;
	struct veil_policy_file *files; /* the protected files, when listed */
	size_t file_count;
	unsigned user, group;                   /* the program's uid and gid; 0: veil-run's own */
	const char *program;                    /* absolute; NULL: not measured */
	struct veil_policy_file *runtime_files; /* mode 0 means "must not exist" */
	size_t runtime_file_count;
	/* hardware evidence (issue 11): what the claims must say. SGX:
	 * MRENCLAVE in mrenclaves, or the signer block; TDX: the tdx block;
	 * SNP: the snp block. NULL / 0: not required. Hex is lower-case. */
	const char *signer_mrsigner; /* 64 hex */
	int has_signer;
	unsigned signer_isvprodid, signer_isvsvn_min;
	int has_isvprodid;
	const char *tdx_mrtd, *tdx_rtmr[4], *tdx_mrconfigid, *tdx_mrowner; /* 96 hex */
	const char *snp_measurement;                                       /* 96 hex */
	const char *snp_host_data;                                         /* 64 hex */
	unsigned snp_guest_svn_min;
	unsigned snp_vmpl;   /* the VMPL the report must come from (default 0) */
	int has_snp_tcb_min; /* snp.tcb_min given: the lowest acceptable SPLs */
	unsigned snp_tcb_min_fmc, snp_tcb_min_bl, snp_tcb_min_tee, snp_tcb_min_snp,
	    snp_tcb_min_ucode;
	/* encrypted code (include/veil/codecrypt.h): the CAS's code key id and
	 * the files veil-run decrypts into memory; NULL, 0: none */
	const char *code_key_id;
	char **encrypted;
	size_t encrypted_count;
	struct veil_pos pos;
};

struct veil_policy_image {
	const char *name;
	struct veil_injection_file *inject;
	size_t inject_count;
};

struct veil_policy {
	const char *name, *version, *predecessor;
	char **read, **update, **create_sessions; /* CREATOR, ANY, NONE or key hashes */
	size_t read_count, update_count, create_sessions_count;
	struct veil_policy_service *services;
	size_t service_count;
	struct veil_secret *secrets;
	size_t secret_count;
	struct veil_policy_image *images;
	size_t image_count;
	char **tolerate;
	size_t tolerate_count;
	char **ignore_advisories;
	size_t ignore_advisories_count;
	char hash[2 * VEIL_SHA256_SIZE + 1]; /* SHA-256 of the canonical form */
};

/* Names: env variables [A-Za-z_][A-Za-z0-9_]* up to 256 bytes, services
 * and namespaces [A-Za-z0-9][A-Za-z0-9_.-]* up to 128 bytes (secret names:
 * veil/secret_schema.h). */
int veil_valid_env_name(const char *s) VEIL_MUST_CHECK;
int veil_valid_object_name(const char *s) VEIL_MUST_CHECK;

/* A command is one string, the program and its arguments separated by
 * blanks, as SCONE writes it (veil-run splits it, no shell); a YAML list is
 * refused with this reason. */
#define VEIL_COMMAND_FORM                                                                          \
	" (the program and its arguments separated by blanks, as in SCONE: command: python3 "      \
	"app.py --port 80)"

/* SCONE renders $$SCONE::name$$ in a service's command; veil refuses it
 * (manifest, policy validator and CAS alike): outside a TEE the command line
 * of the started program is readable by the node (ps, /proc/PID/cmdline).
 * The reason, for messages after "'command' holds a secret placeholder". */
#define VEIL_COMMAND_PLACEHOLDER_REFUSED                                                           \
	"; veil does not put secrets on a command line, which the node can read (ps, "             \
	"/proc/PID/cmdline): pass the secret in the environment or an injection file"

/* CAS namespaces: one or more object names joined by '/' ("app", "app/prod"),
 * at most 8 levels and 255 bytes. A namespace with a parent can be created
 * only by a client the parent's access_policy.create_sessions allows. */
int veil_valid_namespace(const char *s) VEIL_MUST_CHECK;

/* Limits for policies received by the CAS. */
extern const struct ylimits veil_policy_limits;

/* Validates doc as a policy and computes its hash (canonical form of the
 * whole document, predecessor included). Errors name file:line:column. */
int veil_policy_parse(const struct ydoc *doc, struct veil_policy *out,
		      struct veil_diags *d) VEIL_MUST_CHECK;

/* The rules a policy must meet to be uploaded now, beyond what a stored
 * one must (stored ones stay readable): every export entry names the
 * importer's identity (owner and/or session_hash). 0 or VEIL_EINVAL. */
int veil_policy_check_new(const struct veil_policy *p, struct veil_diags *d) VEIL_MUST_CHECK;

/* May identity (key hash hex, NULL: no client certificate) act under
 * `list` for a namespace created by `owner`? */
int veil_policy_allows(char *const *list, size_t count, const char *owner,
		       const char *identity) VEIL_MUST_CHECK;

struct veil_claims;
/* The attestation decision: whether verified claims (include/veil/
 * evidence.h) satisfy the policy's service: debug only where tolerated; the
 * measurement (sim: veil-run's hash in mrenclaves; sgx: mrenclaves and/or
 * signer; tdx: the tdx block; snp: the snp block); for hardware the TCB
 * status under security.attestation.tolerate (outdated-tcb,
 * software-hardening-needed, insecure-configuration; revoked never) and every
 * advisory in ignore_advisories ("*": all). 0, or VEIL_EINVAL with the
 * reason, naming the claim that failed, in why. Pure: no I/O, no time. */
int veil_attest_decide(const struct veil_policy *p, const struct veil_policy_service *svc,
		       const struct veil_claims *cl, const char *config_id, char *why, size_t cap)
    __attribute__((warn_unused_result)) VEIL_MUST_CHECK;

#endif

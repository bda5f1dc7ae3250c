/* Intel DCAP collateral, offline: TCB Info, QE Identity and CRLs, verified
 * once when loaded, then evaluated cheaply for each quote (issue 11 item 4).
 *
 * What a load verifies (no time is involved, so one load serves many
 * evaluations):
 *   - each TCB Info / QE Identity: its issuer chain (leaf = Intel SGX TCB
 *     Signing) to the Intel SGX Root CA compiled into collateral.c (its
 *     SHA-256 fingerprint is checked before first use), and the ECDSA P-256
 *     signature (hex r||s) over the EXACT bytes received: the string value of
 *     a dcap-qvl bundle's "tcb_info" / "qe_identity", or the byte span of the
 *     "tcbInfo" / "enclaveIdentity" value in a PCS body (never re-serialized);
 *   - each CRL: its signature by its issuer (the root CA CRL by the root, a
 *     PCK CRL by the Platform or Processor CA of its issuer chain, itself
 *     verified to the root).
 * What an evaluation checks at time `at`: every validity window involved
 * (the TCB Info's and QE Identity's issueDate..nextUpdate, both CRLs'
 * thisUpdate..nextUpdate, the notBefore..notAfter of every certificate of the
 * chains used) contains `at`, or the collateral is refused as stale naming
 * what expired; the TCB Signing cert and the PCK CA are not on the root CA
 * CRL; the PCK certificate's serial is not on its CA's CRL (else the status
 * is Revoked); then the TCB status from the TCB levels and the QE Identity.
 *
 * Folder layout (veil_collateral_load_dir, the CAS's --collateral DIR):
 *   DIR/NAME.pem     certificate chains, leaf first: the TCB Signing chain
 *                    (for PCS bodies, which carry no chain of their own) and
 *                    the PCK Platform / Processor CA chains (for the CRLs);
 *                    each is identified by its leaf's subject CN
 *   NAME.crl, .der   DER CRLs: the root CA CRL or a PCK CA CRL, told apart by
 *                    their issuer name
 *   DIR/NAME.json    a dcap-qvl bundle (an object with "tcb_info", ...), a PCS
 *                    TCB Info body {"tcbInfo":{...},"signature":"hex"} or a
 *                    PCS QE Identity body {"enclaveIdentity":{...},...}
 * Other names are ignored; chains are read first, then CRLs, then JSON. When
 * several TCB Infos share a TEE and FMSPC (or QE Identities a TEE, or CRLs an
 * issuer), the one issued last is kept.
 *
 * Ownership: a struct veil_collateral owns everything loaded into it;
 * veil_collateral_free() releases it. Input buffers are the caller's and
 * are not kept. Functions that can fail write a reason into why (cap bytes,
 * NUL-terminated) and return a negative veil_err; outputs are set only on
 * success. A collateral is read-only during evaluation, so several threads
 * may evaluate against one collateral at once once loading is done. */
#ifndef VEIL_COLLATERAL_H
#define VEIL_COLLATERAL_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "veil/common.h"

/* the quote header's tee_type (the quote parser defines the same values) */
#ifndef VEIL_TEE_SGX
#define VEIL_TEE_SGX 0x00
#endif
#ifndef VEIL_TEE_TDX
#define VEIL_TEE_TDX 0x81
#endif

/* the CA that issued the PCK certificate (the CRL that covers it) */
enum veil_pck_ca {
	VEIL_PCK_CA_PLATFORM = 1,
	VEIL_PCK_CA_PROCESSOR = 2,
};

/* Ordered by severity, as dcap-qvl merges them (the worse one wins). */
enum veil_tcb_status {
	VEIL_TCB_UP_TO_DATE = 0,
	VEIL_TCB_SW_HARDENING_NEEDED,
	VEIL_TCB_CONFIGURATION_NEEDED,
	VEIL_TCB_CONFIGURATION_AND_SW_HARDENING_NEEDED,
	VEIL_TCB_OUT_OF_DATE,
	VEIL_TCB_OUT_OF_DATE_CONFIGURATION_NEEDED,
	VEIL_TCB_REVOKED, /* never acceptable, whatever a policy tolerates */
};
/* Intel's spelling: "UpToDate", "SWHardeningNeeded", ... */
const char *veil_tcb_status_name(enum veil_tcb_status s);

/* What the quote says, as the quote verifier extracted it. */
#define VEIL_PCK_SERIAL_MAX 20 /* RFC 5280: at most 20 octets (+1: DER's leading zero) */
struct veil_tcb_query {
	int tee; /* VEIL_TEE_SGX or VEIL_TEE_TDX */
	uint8_t fmspc[6];
	uint16_t pce_svn;
	uint8_t cpu_svn[16];        /* the PCK certificate's SGX TCB components 1..16 */
	uint8_t tee_tcb_svn[16];    /* TDX: the TD report's TEE_TCB_SVN */
	uint8_t mr_signer_seam[48]; /* TDX: the TD report's MRSIGNERSEAM */
	uint8_t seam_attributes[8]; /* TDX: the TD report's SEAMATTRIBUTES */
	/* the QE report (for the QE Identity check) */
	uint8_t qe_mrsigner[32];
	uint16_t qe_isvprodid, qe_isvsvn;
	uint32_t qe_miscselect;
	uint8_t qe_attributes[16];
	/* the PCK certificate: its serial number (the DER INTEGER's content
	 * bytes, big-endian) and the CA that issued it */
	uint8_t pck_serial[VEIL_PCK_SERIAL_MAX + 1];
	size_t pck_serial_size;
	enum veil_pck_ca pck_ca;
};

#define VEIL_ADVISORY_ID_MAX 31 /* "INTEL-SA-00615" is 14 */
/* a level lists at most VEIL_LEVEL_ADVISORIES_MAX (more is refused at
 * load); a result merges at most three levels (platform, TDX module, QE), so
 * it never drops one */
#define VEIL_LEVEL_ADVISORIES_MAX 64
#define VEIL_ADVISORIES_MAX (3 * VEIL_LEVEL_ADVISORIES_MAX)
struct veil_tcb_result {
	enum veil_tcb_status status;          /* platform and QE merged */
	enum veil_tcb_status platform_status; /* the TCB level (and TDX module) */
	enum veil_tcb_status qe_status;       /* the QE Identity's level */
	/* the union of the platform's and the QE's advisory IDs, platform's
	 * first, each once, in the order the collateral lists them */
	char advisory_ids[VEIL_ADVISORIES_MAX][VEIL_ADVISORY_ID_MAX + 1];
	size_t advisory_count;
	time_t tcb_date;    /* the matching platform TCB level's tcbDate (0 when Revoked) */
	time_t next_update; /* the earliest nextUpdate (or notAfter) involved */
	uint32_t tcb_evaluation_data_number; /* the TCB Info's */
};

struct veil_collateral;

/* An empty collateral; NULL when out of memory or when the compiled-in
 * Intel root does not have the expected fingerprint. */
struct veil_collateral *veil_collateral_new(void) VEIL_MUST_CHECK;
void veil_collateral_free(struct veil_collateral *c);

/* Adds a dcap-qvl bundle (json: n bytes, need not be NUL-terminated). */
int veil_collateral_load_bundle(struct veil_collateral *c, const char *json, size_t n, char *why,
				size_t cap) VEIL_MUST_CHECK;
/* Adds a PCS body ({"tcbInfo":...} or {"enclaveIdentity":...}) signed by the
 * leaf of chain_pem (the TCB Signing chain, PEM, leaf first). */
int veil_collateral_load_pcs_json(struct veil_collateral *c, const char *json, size_t n,
				  const char *chain_pem, size_t chain_n, char *why,
				  size_t cap) VEIL_MUST_CHECK;
/* Adds a DER CRL: the root CA CRL (issuer_chain_pem NULL) or a PCK CA CRL
 * with its issuer chain (PEM, leaf = Platform or Processor CA). */
int veil_collateral_load_crl(struct veil_collateral *c, const uint8_t *der, size_t n,
			     const char *issuer_chain_pem, size_t chain_n, char *why,
			     size_t cap) VEIL_MUST_CHECK;
/* Loads a folder laid out as described at the top into a new collateral
 * (*out, the caller's to free; set only on success). */
int veil_collateral_load_dir(const char *dir, struct veil_collateral **out, char *why,
			     size_t cap) VEIL_MUST_CHECK;

/* The TCB status of q at time at. 0 with *out set (status Revoked included:
 * the caller refuses it), or VEIL_EINVAL with why: collateral missing for
 * the query (no TCB Info for the FMSPC, no QE Identity, no CRL), stale at
 * `at`, a QE or TDX module identity mismatch, no TCB level the platform
 * reaches ("TCB not supported", as dcap-qvl refuses it). */
int veil_tcb_evaluate(const struct veil_collateral *c, const struct veil_tcb_query *q, time_t at,
		      struct veil_tcb_result *out, char *why, size_t cap) VEIL_MUST_CHECK;

/* Parses the fields of a TCB Info or QE Identity object (json: the signed
 * value itself, {"id":...,...}) with the loader's rules and limits, verifying
 * nothing and keeping nothing: for the fuzzer and for diagnostics. 0 or
 * VEIL_EINVAL with why. */
int veil_collateral_check_json(const char *json, size_t n, char *why, size_t cap) VEIL_MUST_CHECK;

/* Used by the loader, exported for its fuzzer and tests: the byte span of
 * the value of member `key` of the top-level JSON object in text (n bytes).
 * Strings (with escapes) and nesting (at most 64 deep) are respected; the key
 * is compared byte for byte with the member name as written. 0 with
 * the offset and length inside text, VEIL_ENOENT when there is no such member, or
 * VEIL_EINVAL for text that is not one JSON object. */
int veil_json_member_span(const char *text, size_t n, const char *key, size_t *off,
			  size_t *len) VEIL_MUST_CHECK;

#endif

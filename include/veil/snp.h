/* AMD SEV-SNP attestation reports: the parser (through the bounded cursor)
 * and the verifier (OpenSSL only, no network).
 *
 * The report (AMD SEV-SNP ABI spec, ATTESTATION_REPORT; 1184 bytes = 0x4A0,
 * every integer little-endian) is signed over its first 0x2A0 bytes with
 * ECDSA P-384/SHA-384 by the chip's VCEK or a cloud provider's VLEK; the
 * key's certificate chains to AMD's root of the product line:
 *   VCEK <- ASK  (CN SEV-Milan / SEV-Genoa / SEV-Turin)       <- ARK
 *   VLEK <- ASVK (CN SEV-VLEK-Milan / -Genoa / -Turin)        <- ARK
 * with RSASSA-PSS (SHA-384, salt 48) signatures. The ARKs, ASKs and ASVKs
 * are compiled in (src/evidence/amd_roots.h); an ARK, compiled in or given,
 * is trusted only when its SHA-256 equals the compiled-in fingerprint.
 *
 * Ownership: nothing here keeps a pointer to the caller's memory; a parsed
 * report is a plain value (it carries a copy of its signed bytes). Outputs
 * are written only on success. `why` (cap bytes, may be NULL when cap is 0)
 * receives the reason for a refusal, naming the failing check. */
#ifndef VEIL_SNP_H
#define VEIL_SNP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "veil/common.h"

#define VEIL_SNP_REPORT_SIZE 0x4A0 /* 1184 */
#define VEIL_SNP_SIGNED_SIZE 0x2A0 /* what the signature covers */
#define VEIL_SNP_POLICY_DEBUG (1ull << 19)

enum veil_snp_product {
	VEIL_SNP_PRODUCT_UNKNOWN = 0, /* a v2 report does not say; its key cert does */
	VEIL_SNP_PRODUCT_MILAN,
	VEIL_SNP_PRODUCT_GENOA,
	VEIL_SNP_PRODUCT_TURIN,
};

/* signer_info bits 4:2 */
enum veil_snp_signer {
	VEIL_SNP_SIGNER_VCEK = 0,
	VEIL_SNP_SIGNER_VLEK = 1,
	VEIL_SNP_SIGNER_NONE = 7, /* unsigned report: always refused by the verifier */
};

/* A TCB_VERSION decoded. Milan and Genoa: bl_spl byte 0, tee_spl 1,
 * snp_spl 6, microcode_spl 7 (2-5 reserved); Turin: fmc_spl 0, bl_spl 1,
 * tee_spl 2, snp_spl 3, microcode_spl 7 (4-6 reserved). */
struct veil_snp_tcb {
	uint8_t fmc_spl; /* Turin only; 0 elsewhere */
	uint8_t bl_spl, tee_spl, snp_spl, microcode_spl;
};

struct veil_snp_report {
	uint32_t version; /* 2, 3, 4 (v3's layout) or 5 */
	uint32_t guest_svn;
	uint64_t policy;
	uint8_t family_id[16], image_id[16];
	uint32_t vmpl;
	uint32_t signature_algo; /* 1: ECDSA P-384 with SHA-384 (the parser refuses others) */
	uint64_t current_tcb;
	uint64_t platform_info;
	uint32_t signer_info; /* raw; decoded below */
	bool author_key_en, mask_chip_key;
	enum veil_snp_signer signing_key;
	uint8_t report_data[64];
	uint8_t measurement[48];
	uint8_t host_data[32];
	uint8_t id_key_digest[48], author_key_digest[48];
	uint8_t report_id[32], report_id_ma[32];
	uint64_t reported_tcb;                          /* raw; veil_snp_tcb_decode() by product */
	uint8_t cpuid_fam_id, cpuid_mod_id, cpuid_step; /* v3 and later; 0 in v2 */
	uint8_t chip_id[64];
	uint64_t committed_tcb;
	uint8_t current_build, current_minor, current_major;
	uint8_t committed_build, committed_minor, committed_major;
	uint64_t launch_tcb;
	uint64_t launch_mit_vector, current_mit_vector; /* v5 and later; 0 before */
	uint8_t sig_r[72], sig_s[72];                   /* little-endian, as in the report */
	bool debug;                                     /* policy bit 19 */
	/* from the CPUID family/model (v3 and later); UNKNOWN for v2 */
	enum veil_snp_product product;
	uint8_t signed_bytes[VEIL_SNP_SIGNED_SIZE];
};

/* What the verifier established. */
struct veil_snp_verified {
	enum veil_snp_product product;
	enum veil_snp_signer signer;
	struct veil_snp_tcb reported_tcb; /* decoded for the product */
	char key_hash[2 * 32 + 1];        /* SHA-256 of the VCEK's/VLEK's public key, hex */
};

/* "Milan", "Genoa", "Turin", "unknown"; "VCEK", "VLEK", "none" */
const char *veil_snp_product_name(enum veil_snp_product p);
const char *veil_snp_signer_name(enum veil_snp_signer s);

void veil_snp_tcb_decode(uint64_t tcb, enum veil_snp_product p, struct veil_snp_tcb *out);

/* Parses exactly one report: n must be VEIL_SNP_REPORT_SIZE. Refuses
 * versions other than 2-5, signature_algo other than 1, a signing key
 * other than VCEK/VLEK/none, and reserved areas that are not zero. */
int veil_snp_parse(const uint8_t *r, size_t n, struct veil_snp_report *out, char *why,
		   size_t cap) VEIL_MUST_CHECK;

/* The same for a report at the start of a larger buffer (a report followed
 * by a certificate table, say): *used is set to the bytes read. */
int veil_snp_parse_prefix(const uint8_t *r, size_t n, struct veil_snp_report *out, size_t *used,
			  char *why, size_t cap) VEIL_MUST_CHECK;

/* Verifies a parsed report: signature by the key certificate (DER or PEM,
 * n bytes), that certificate's chain to AMD's root of its product (the
 * ASK/ASVK and ARK from ca_chain_pem, a NUL-terminated PEM bundle, or the
 * compiled-in ones when it is NULL), every certificate's validity at `at`
 * (0: now), and the key certificate's TCB extensions and hardware id against
 * the report's reported_tcb and chip_id. *out (may be NULL) is written on
 * success. */
int veil_snp_verify(const struct veil_snp_report *r, const uint8_t *key_cert, size_t n,
		    const char *ca_chain_pem, time_t at, struct veil_snp_verified *out, char *why,
		    size_t cap) VEIL_MUST_CHECK;

/* Only the key certificate's chain (no report): for checking a VCEK or VLEK
 * fetched ahead of time. *product (may be NULL) is written on success. */
int veil_snp_verify_key_cert(const uint8_t *key_cert, size_t n, enum veil_snp_signer signer,
			     const char *ca_chain_pem, time_t at, enum veil_snp_product *product,
			     char *why, size_t cap) VEIL_MUST_CHECK;

#endif

/* Intel DCAP quotes: SGX quote v3, TDX quote v4 and v5 (body types 2 and 3),
 * parsed through the bounded cursor and verified with OpenSSL only, offline,
 * to the Intel SGX Root CA compiled into veil (src/evidence/intel_root.h).
 *
 * Layout (all integers little-endian; Intel's "SGX ECDSA Quote Library API"
 * and "TDX DCAP Quote Generation Library" documents):
 *
 *   header (48)       version u16, att_key_type u16 (2 = ECDSA-256-with-P-256),
 *                     tee_type u32 (v3: reserved = 0 for SGX; v4/v5: 0x81 TDX),
 *                     qe_svn u16, pce_svn u16, qe_vendor_id[16], user_data[20]
 *   v5 only           body_type u16 (2 = TDX 1.0, 3 = TDX 1.5), body_size u32
 *   body              v3: SGX report body (384); v4 or v5 type 2: TD report
 *                     body (584); v5 type 3: TD report body 1.5 (648)
 *   sig_data_len u32  then sig_data_len bytes of signature data:
 *     signature[64] (r||s, ECDSA P-256 over header..body), att_key[64] (X||Y),
 *     v3:    QE report (384), QE report sig[64], QE auth data (u16 size, data),
 *            certification data (type u16 = 5, size u32, PEM chain)
 *     v4/v5: certification data type u16 = 6, size u32, holding the v3 tail
 *            above (QE report .. type 5 PEM chain)
 *   anything after the signature data is ignored (real quotes carry zero
 *   padding or text there): a quote is parsed by its declared lengths, never
 *   by its file size.
 *
 * Ownership: a parsed struct veil_dcap_quote copies every fixed-size field
 * and *borrows* the variable-size ones (qe_auth_data, pck_chain_pem, and the
 * signed spans) from the caller's quote bytes: those must outlive it. Nothing
 * in it is to be freed. Outputs are set only on success. */
#ifndef VEIL_DCAP_H
#define VEIL_DCAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "veil/common.h"

#define VEIL_DCAP_HEADER_SIZE 48
#define VEIL_DCAP_SGX_REPORT_SIZE 384 /* an enclave report body, also the QE report */
#define VEIL_DCAP_TD10_BODY_SIZE 584
#define VEIL_DCAP_TD15_BODY_SIZE 648
#define VEIL_DCAP_ATT_KEY_TYPE_ECDSA_P256 2
#define VEIL_DCAP_CERT_DATA_PCK_CHAIN 5 /* PEM: PCK leaf, PCK CA, root */
#define VEIL_DCAP_CERT_DATA_QE_REPORT 6 /* QE report + sig + auth data + type 5 */

enum veil_dcap_tee {
	VEIL_DCAP_TEE_SGX = 0x00,
	VEIL_DCAP_TEE_TDX = 0x81,
};

/* An SGX report body: the enclave's (SGX quotes) or the quoting enclave's
 * (every quote). Multi-byte fields are as in the quote (little-endian). */
struct veil_dcap_sgx_report {
	uint8_t cpusvn[16];
	uint32_t miscselect;
	uint8_t isv_ext_prod_id[16];
	uint8_t attributes[16]; /* flags u64 le, then xfrm u64 le */
	uint8_t mrenclave[32];
	uint8_t mrsigner[32];
	uint8_t config_id[64];
	uint16_t isvprodid;
	uint16_t isvsvn;
	uint16_t config_svn;
	uint8_t isv_family_id[16];
	uint8_t report_data[64];
	bool debug; /* attributes bit 1 (SGX_FLAGS_DEBUG) */
};

/* A TD report body (TDX 1.0: 584 bytes; TDX 1.5 adds the last two fields). */
struct veil_dcap_td_report {
	uint8_t tee_tcb_svn[16];
	uint8_t mrseam[48];
	uint8_t mrsignerseam[48];
	uint64_t seam_attributes;
	uint64_t td_attributes;
	uint64_t xfam;
	uint8_t mrtd[48];
	uint8_t mrconfigid[48];
	uint8_t mrowner[48];
	uint8_t mrownerconfig[48];
	uint8_t rtmr[4][48];
	uint8_t report_data[64];
	bool is_tdx15;            /* body type 3: the two fields below are set */
	uint8_t tee_tcb_svn2[16]; /* zero unless is_tdx15 */
	uint8_t mrservicetd[48];  /* zero unless is_tdx15 */
	bool debug;               /* td_attributes bit 0 (TUD.DEBUG) */
};

struct veil_dcap_quote {
	/* header */
	uint16_t version;         /* 3, 4 or 5 */
	uint16_t att_key_type;    /* always VEIL_DCAP_ATT_KEY_TYPE_ECDSA_P256 once parsed */
	uint32_t tee_type;        /* enum veil_dcap_tee */
	uint16_t qe_svn, pce_svn; /* as the header says (v4/v5: reserved, usually 0) */
	uint8_t qe_vendor_id[16];
	uint8_t user_data[20];
	/* v3: 0; v4: 2; v5: the header's body type (2 or 3) */
	uint16_t body_type;
	/* the body: .sgx when tee_type is SGX, .td when TDX (the other is zero) */
	struct veil_dcap_sgx_report sgx;
	struct veil_dcap_td_report td;
	/* signature data */
	uint8_t signature[64]; /* r||s over signed[0..signed_size) */
	uint8_t att_key[64];   /* X||Y, P-256 */
	struct veil_dcap_sgx_report qe_report;
	uint8_t qe_report_sig[64];   /* r||s over qe_report_raw by the PCK leaf's key */
	const uint8_t *qe_auth_data; /* borrowed; qe_auth_data_size bytes (may be 0) */
	size_t qe_auth_data_size;
	const uint8_t *pck_chain_pem; /* borrowed; as found (often a trailing NUL) */
	size_t pck_chain_pem_size;
	/* what the signatures cover, borrowed from the quote */
	const uint8_t *signed_data; /* header .. body (v5: with body type and size) */
	size_t signed_size;
	const uint8_t *qe_report_raw; /* the 384-byte QE report */
	/* bytes of the quote used (header .. end of the signature data); what
	 * follows in the caller's buffer was ignored */
	size_t quote_size;
};

enum veil_dcap_pck_ca {
	VEIL_DCAP_PCK_PLATFORM_CA = 1,  /* issued by "Intel SGX PCK Platform CA" */
	VEIL_DCAP_PCK_PROCESSOR_CA = 2, /* issued by "Intel SGX PCK Processor CA" */
};

/* What the verified PCK leaf certificate says about the platform (its SGX
 * extension, OID 1.2.840.113741.1.13.1), for TCB status from collateral. */
struct veil_dcap_pck {
	uint8_t fmspc[6];
	uint8_t pce_id[2];
	uint16_t pce_svn;
	uint8_t cpu_svn[16];      /* the CPUSVN octets as in the extension */
	uint8_t tcb_comp_svn[16]; /* SGX TCB components 1..16 */
	uint8_t ppid[16];
	enum veil_dcap_pck_ca ca;
	/* the leaf's serial number (big-endian magnitude, as in a CRL) and
	 * validity, for a revocation check against the PCK CRL */
	uint8_t serial[20];
	size_t serial_size;
	long long not_before, not_after; /* seconds since the epoch */
	/* the SHA-256 of the leaf's public key (SPKI DER), hex: the platform's
	 * identity in claims */
	char key_hash[2 * 32 + 1];
};

/* Parses quote bytes q[0..n). On success fills *out (borrowing from q) and
 * returns 0; otherwise returns VEIL_EINVAL with a reason in why (NUL-
 * terminated, at most cap bytes; naming the field and its offset for a
 * length that does not fit). Refuses an unknown version, an attestation key
 * type other than ECDSA-256-with-P-256, a tee type wrong for the version,
 * and certification data other than type 5 (inside type 6 for v4/v5). */
int veil_dcap_parse(const uint8_t *q, size_t n, struct veil_dcap_quote *out, char *why,
		    size_t cap) VEIL_MUST_CHECK;

/* Verifies a parsed quote, in order of trust: the PCK chain (leaf, PCK CA,
 * root) to the compiled-in Intel SGX Root CA at time `at` (seconds since
 * the epoch; 0 = now), the QE report's signature by the PCK leaf's key, the
 * QE report binding the attestation key (SHA-256(att_key || qe_auth_data) in
 * the first 32 bytes of its report data, the rest zero), and the quote's
 * signature by the attestation key. On success fills *pck_out (may be NULL)
 * and returns 0; otherwise VEIL_EINVAL (VEIL_ENOMEM) with the failing check
 * in why: "PCK chain: ...", "QE report signature ...", "QE report does not
 * bind the attestation key", "quote signature ...". Collateral (TCB status,
 * CRLs, QE identity) is the caller's next step: it needs pck_out's FMSPC,
 * PCE SVN, CPU SVN / TCB components, CA kind and serial, the quote's
 * td.tee_tcb_svn (TDX) and its qe_report fields.
 * Thread-safe; the root is parsed once per process and parsed PCK
 * certificates are kept in a small process-wide cache keyed by their exact
 * DER (every signature and validity is still checked on every call). */
int veil_dcap_verify(const struct veil_dcap_quote *q, time_t at, struct veil_dcap_pck *pck_out,
		     char *why, size_t cap) VEIL_MUST_CHECK;

#endif

/* Evidence: a platform's signed statement binding a measurement to report
 * data (the SHA-256 of the attester's TLS public key).
 *
 *   collect(report_data) -> evidence     on the attesting side
 *   verify(evidence, expected report_data) -> claims | reason
 *
 * Backends plug in behind veil_evidence_verify by the evidence's "platform"
 * field; callers do not change when sgx/tdx/snp arrive. Policy decisions
 * (trusted platform keys, tolerated debug, measurements) are the caller's. */
#ifndef VEIL_EVIDENCE_H
#define VEIL_EVIDENCE_H

#include <openssl/evp.h>

#include "veil/common.h"

/* NAMESPACE/SERVICE: a namespace path of up to 255 bytes, a service name of
 * up to 128 */
#define VEIL_EVIDENCE_CONFIG_ID_MAX 384

/* hex of up to 48 bytes (TDX and SNP measurements are SHA-384) */
#define VEIL_CLAIM_HEX (2 * 48 + 1)

struct veil_claims {
	char platform[16]; /* "sim", "sgx", "tdx", "snp" */
	/* sim: veil-run's SHA-256; sgx: MRENCLAVE; tdx: MRTD; snp: MEASUREMENT */
	char measurement[VEIL_CLAIM_HEX];
	char signer[2 * VEIL_SHA256_SIZE + 1]; /* sgx: MRSIGNER; "" if the platform has none */
	/* sim: the SHA-256 of the platform key; sgx, tdx: of the PCK leaf's
	 * public key; snp: of the VCEK's or VLEK's */
	char platform_key[2 * VEIL_SHA256_SIZE + 1];
	int debug;
	long long timestamp; /* sim: when the platform signed; 0 for hardware */
	char config_id[VEIL_EVIDENCE_CONFIG_ID_MAX + 1]; /* sim: made for; "" for hardware */
	/* "up-to-date", "sw-hardening-needed", "configuration-needed",
	 * "configuration-and-sw-hardening-needed", "out-of-date",
	 * "out-of-date-configuration-needed", "revoked"; "not-evaluated" for
	 * hardware evidence without collateral (SNP: always) */
	char tcb_status[48];
	char advisories[1024]; /* the advisory IDs, comma-separated; "" when none */
	/* hardware evidence: all 64 bytes of report data (veil-run puts the
	 * SHA-256 of its TLS key first, the SHA-256 of the config id second) */
	int hardware;
	uint8_t report_data[64];
	uint16_t isvprodid, isvsvn;                               /* sgx */
	char rtmr[4][VEIL_CLAIM_HEX];                             /* tdx */
	char mrconfigid[VEIL_CLAIM_HEX], mrowner[VEIL_CLAIM_HEX]; /* tdx */
	char host_data[2 * 32 + 1];                               /* snp */
	unsigned long long snp_policy;                            /* snp */
	unsigned guest_svn, vmpl;                                 /* snp */
	/* snp: the reported TCB (what the VCEK certifies): fmc (Turin), boot
	 * loader, TEE, SNP firmware, microcode security patch levels */
	unsigned snp_fmc_spl, snp_bl_spl, snp_tee_spl, snp_snp_spl, snp_ucode_spl;
};

/* Simulation: the platform key signs {measurement, report_data, debug=1,
 * timestamp (now), config_id}: the evidence is fresh only for a while and
 * good only for the config id it was made for (the CAS checks both).
 * config_id is the caller's, at most VEIL_EVIDENCE_CONFIG_ID_MAX bytes.
 * *out is a NUL-terminated JSON document the caller frees. */
int veil_evidence_sim_sign(EVP_PKEY *platform_key, const char *measurement_hex,
			   const uint8_t report_data[static VEIL_SHA256_SIZE],
			   const char *config_id, char **out) VEIL_MUST_CHECK;

/* Verifies signature and binding; on success fills *claims. Any mismatch,
 * malformed input or unknown platform is an error with a precise reason.
 * Platforms: "sim" (veil-las), "sgx" and "tdx" (Intel DCAP quotes, include/
 * veil/dcap.h; TCB status from the collateral set with
 * veil_evidence_set_collateral), "snp" (AMD reports, include/veil/snp.h;
 * the VCEK/VLEK in the evidence: "vcek" (base64 DER or PEM) or the
 * certificate table in "auxblob"). Hardware evidence is bound by the first
 * 32 bytes of its report data. */
int veil_evidence_verify(const char *evidence, size_t size,
			 const uint8_t expected_report_data[static VEIL_SHA256_SIZE],
			 struct veil_claims *claims, struct veil_diags *d) VEIL_MUST_CHECK;

struct veil_collateral;
struct veil_evidence_opts {
	/* Intel collateral for the TCB status; NULL: "not-evaluated" */
	const struct veil_collateral *collateral;
	long long at; /* the time certificates and collateral are checked at; 0: now */
	/* the report data is not compared (veil evidence verify, and the CAS's
	 * test hook for recorded quotes) */
	int no_binding;
};
int veil_evidence_verify_opts(const char *evidence, size_t size,
			      const uint8_t expected_report_data[static VEIL_SHA256_SIZE],
			      const struct veil_evidence_opts *opts, struct veil_claims *claims,
			      struct veil_diags *d) VEIL_MUST_CHECK;
/* The collateral veil_evidence_verify uses (the CAS's --collateral): set
 * before any verification runs; not owned. */
void veil_evidence_set_collateral(const struct veil_collateral *c);

#endif

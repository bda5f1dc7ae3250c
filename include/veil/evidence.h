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

struct veil_claims {
	char platform[16];                           /* "sim" */
	char measurement[2 * VEIL_SHA256_SIZE + 1];  /* hex */
	char signer[2 * VEIL_SHA256_SIZE + 1];       /* hex, "" if the platform has none */
	char platform_key[2 * VEIL_SHA256_SIZE + 1]; /* SHA-256 of the platform key */
	int debug;
	long long timestamp; /* when the platform signed, seconds since the epoch */
	char config_id[VEIL_EVIDENCE_CONFIG_ID_MAX + 1]; /* made for; "" if unnamed */
	char tcb_status[32]; /* "up-to-date", "out-of-date", "sw-hardening-needed", ... */
};

/* Simulation: the platform key signs {measurement, report_data, debug=1,
 * timestamp (now), config_id}: the evidence is fresh only for a while and
 * good only for the config id it was made for (the CAS checks both).
 * config_id is the caller's, at most VEIL_EVIDENCE_CONFIG_ID_MAX bytes.
 * *out is a NUL-terminated JSON document the caller frees. */
int veil_evidence_sim_sign(EVP_PKEY *platform_key, const char *measurement_hex,
			   const uint8_t report_data[static VEIL_SHA256_SIZE],
			   const char *config_id, char **out);

/* Verifies signature and binding; on success fills *claims. Any mismatch,
 * malformed input or unknown platform is an error with a precise reason. */
int veil_evidence_verify(const char *evidence, size_t size,
			 const uint8_t expected_report_data[static VEIL_SHA256_SIZE],
			 struct veil_claims *claims, struct veil_diags *d);

#endif

/* Evidence collection on the attesting side (DESIGN.md, "Evidence":
 * collect(report_data) -> evidence): veil-run and veil-cas ask the platform
 * they run on for evidence binding their TLS key, and use veil-las only
 * where there is no platform to ask.
 *
 * Providers, tried in this order:
 *   1. Linux configfs-tsm, /sys/kernel/config/tsm/report (a TDX or SEV-SNP
 *      guest; Documentation/ABI/testing/configfs-tsm-report in Linux): a
 *      fresh entry per call; its "provider" names the format of outblob.
 *   2. Gramine's /dev/attestation with attestation_type "dcap" (an SGX
 *      enclave): user_report_data in, quote out.
 *   3. none: VEIL_ENOENT, and the caller asks veil-las (simulation).
 *
 * Evidence formats (JSON text; what the CAS's verifiers read by "platform";
 * base64 is RFC 4648 with padding, the bytes exactly as the platform gave
 * them, trailing padding included: parsers go by declared lengths):
 *   {"platform":"tdx","version":1,"quote":"<base64>"}
 *       a TDX quote (v4 or v5) from the configfs-tsm provider tdx_guest
 *   {"platform":"snp","version":1,"report":"<base64>","auxblob":"<base64>"}
 *       the 1184-byte SEV-SNP attestation report from sev_guest; "auxblob"
 *       (the GHCB certificate table with the VCEK or VLEK, when the host
 *       provides one) only when non-empty
 *   {"platform":"sgx","version":1,"quote":"<base64>"}
 *       an SGX DCAP quote (v3) from Gramine
 * The report data inside is the caller's 64 bytes; veil puts the SHA-256 of
 * the TLS key's SubjectPublicKeyInfo in the first 32 and zeros in the rest.
 *
 * Only for testing (a build with -Dtest_hooks=true, which defines
 * VEIL_TEST_HOOKS; never a release build): $VEIL_TEST_TSM_ROOT replaces
 * /sys/kernel/config/tsm and $VEIL_TEST_GRAMINE_ROOT replaces
 * /dev/attestation, so tests can point collection at fake trees. */
#ifndef VEIL_COLLECT_H
#define VEIL_COLLECT_H

#include <stddef.h>
#include <stdint.h>

#include "veil/common.h"

#define VEIL_REPORT_DATA_SIZE 64
/* "tsm:tdx_guest", "tsm:sev_guest", "gramine:dcap" and the NUL */
#define VEIL_COLLECT_PROVIDER_MAX 16
/* largest outblob, auxblob or Gramine quote accepted, in bytes (a TDX quote
 * is ~5 KiB, 8000 with a QGS's padding; a certificate table ~4 KiB) */
#define VEIL_COLLECT_BLOB_MAX (64 * 1024)

/* Evidence binding report_data from the first provider present.
 * On success (0): *evidence_json is a NUL-terminated JSON document in one of
 * the formats above, owned by the caller (free()); provider_out names the
 * provider used.
 * VEIL_ENOENT: no provider here; why may hold a note worth logging (e.g. a
 * configfs-tsm tree that is present but not writable), or "".
 * Any other error: a provider is present and failed; why says what failed
 * (the caller must not fall back to simulation: a confidential VM whose
 * quote fails is not a simulated platform).
 * Outputs are set only on success; why is always NUL-terminated (cap > 0). */
int veil_collect(const uint8_t report_data[static VEIL_REPORT_DATA_SIZE], char **evidence_json,
		 char provider_out[static VEIL_COLLECT_PROVIDER_MAX], char *why,
		 size_t cap) VEIL_MUST_CHECK;

#endif

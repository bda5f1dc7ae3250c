/* Between the evidence dispatcher (verify.c) and its platforms. */
#ifndef VEIL_EVIDENCE_INTERNAL_H
#define VEIL_EVIDENCE_INTERNAL_H

#include <jansson.h>

#include "veil/evidence.h"

#define VEIL_EVIDENCE_MAX (128 * 1024)

/* sim.c: {"platform":"sim",...} already parsed */
int veil_sim_verify_json(json_t *j, const uint8_t expected[static VEIL_SHA256_SIZE], int no_binding,
			 struct veil_claims *c, struct veil_diags *d) VEIL_MUST_CHECK;

#endif

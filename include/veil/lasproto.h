/* veil-las's line protocol (docs/architecture.md, "veil-las"), parsed on
 * both ends through the bounded cursor:
 *
 *   runtime -> las   REPORT <64 hex: report data> <NAMESPACE/SERVICE>\n
 *   las -> runtime   CHALLENGE <32 hex>\n
 *   runtime -> las   RESPONSE <32 hex>\n
 *   las -> runtime   <evidence JSON>\n   or   ERROR <reason>\n
 *
 * A config id is 1 to VEIL_EVIDENCE_CONFIG_ID_MAX bytes of [A-Za-z0-9_./-]. */
#ifndef VEIL_LASPROTO_H
#define VEIL_LASPROTO_H

#include <stddef.h>
#include <stdint.h>

#include "veil/common.h"
#include "veil/evidence.h"

/* "REPORT ..." exactly (one line ending in '\n', nothing after it): 0, or
 * VEIL_EINVAL. config_id gets the config id, NUL-terminated. */
int veil_las_parse_report(const char *line, size_t n, uint8_t rd[static VEIL_SHA256_SIZE],
			  char config_id[static VEIL_EVIDENCE_CONFIG_ID_MAX + 1]) VEIL_MUST_CHECK;

/* "<word> <2*size lower-case hex digits>\n" exactly (CHALLENGE, RESPONSE):
 * 0 with the bytes in out, or VEIL_EINVAL. */
int veil_las_parse_hex_line(const char *line, size_t n, const char *word, uint8_t *out,
			    size_t size) VEIL_MUST_CHECK;

#endif

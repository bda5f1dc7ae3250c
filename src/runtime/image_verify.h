/* veil-run's check of the whole image (docs/images.md, "Measurement"): the
 * measurement record `veil apply` wrote as the image's last layer lists every
 * folder, regular file and symbolic link of the root file system; each is
 * compared in place with what is here now, on worker threads, while veil-run
 * makes its key, asks veil-las and attests. The record's SHA-256 (the image
 * root) goes to the CAS in /v1/attest, which compares it with the policy's
 * before it releases anything, so the record itself is trusted only once the
 * CAS has answered. No YAML, no libarchive: the record is a line format
 * (include/veil/image_record.h). */
#ifndef VEIL_RUNTIME_IMAGE_VERIFY_H
#define VEIL_RUNTIME_IMAGE_VERIFY_H

#include <stddef.h>
#include <stdint.h>

#include "veil/common.h"

struct image_check;

/* Reads the record at root_dir + record_path (both absolute) and starts
 * checking every entry under root_dir on threads (0: one per online core, at
 * most 16). 0 with *out NULL: there is no record (the image was not measured
 * as a whole); 0 with *out set: started, and root_hex holds the record's
 * SHA-256; VEIL_EINVAL: the record is unreadable or malformed (why says
 * which line and what). The caller finishes *out with image_verify_wait(). */
int image_verify_start(const char *root_dir, const char *record_path, unsigned threads,
		       struct image_check **out, char root_hex[static 2 * VEIL_SHA256_SIZE + 1],
		       char *why, size_t cap) VEIL_MUST_CHECK;

/* Waits for the threads and frees c. 0: everything as recorded (*entries
 * checked, *bytes hashed, either may be NULL); VEIL_EINVAL: why names the
 * first difference in path order. */
int image_verify_wait(struct image_check *c, size_t *entries, uint64_t *bytes, char *why,
		      size_t cap) VEIL_MUST_CHECK;

#endif

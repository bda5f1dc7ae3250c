/* The image measurement record: the whole root file system of a service's
 * image, written by `veil apply` (src/image/rootfs.c) as the image's last
 * layer at VEIL_IMAGE_RECORD_PATH and checked by veil-run at start
 * (src/runtime/image_verify.c). Its SHA-256 is the image root: the policy's
 * services[].image_root, sent by veil-run in /v1/attest.
 *
 * Format (docs/images.md, "Measurement"), byte for byte:
 *   "veil-image-measurement 1\n", then one line per entry, "\n"-terminated,
 *   sorted strictly increasing by the raw bytes of PATH (strcmp order):
 *     d MODE LISTING PATH       a folder
 *     f MODE SIZE SHA256 PATH   a regular file
 *     l TARGET PATH             a symbolic link
 *     x PATH                    excluded: neither checked nor listed
 *   MODE: 4 octal digits (mode & 07777); SIZE: decimal, no leading zero;
 *   SHA256, LISTING: 64 lower-case hex digits. PATH is absolute ("/" for the
 *   root), without "//", "." or ".." components or a trailing "/". PATH and
 *   TARGET are escaped: every byte below 0x21, above 0x7e, and "\" is written
 *   as \xHH (two lower-case hex digits) and no other byte is, so a line has
 *   exactly one spelling. LISTING is the SHA-256 of the folder's entry names
 *   (not excluded), sorted bytewise, each followed by one NUL byte:
 *     cd DIR && find . -mindepth 1 -maxdepth 1 -printf '%f\0' | LC_ALL=C sort -z | sha256sum
 *   The parent of every d, f and l entry is a d entry. The image root:
 *     sha256sum ROOTFS/etc/veil/image-measurement
 *
 * The parser below is the only reader; it refuses anything but that form
 * (a malformed record is refused, never guessed). No YAML, no allocation
 * beyond the entry array. */
#ifndef VEIL_IMAGE_RECORD_H
#define VEIL_IMAGE_RECORD_H

#include <stddef.h>
#include <stdint.h>

#include "veil/common.h"

#define VEIL_IMAGE_RECORD_PATH "/etc/veil/image-measurement"
#define VEIL_IMAGE_RECORD_MAGIC "veil-image-measurement 1\n"
#define VEIL_IMAGE_RECORD_MAX_SIZE (256u << 20) /* ~2M entries of a long path */
#define VEIL_IMAGE_RECORD_MAX_ENTRIES 4000000u
#define VEIL_IMAGE_RECORD_MAX_PATH 4096u /* unescaped bytes, as PATH_MAX */

/* What every image excludes (the container runtime mounts or creates them:
 * podman links /etc/mtab to /proc/mounts when the image has none), besides
 * the record itself and the folders of the manifest's injection files
 * (memory volumes in the chart). */
#define VEIL_IMAGE_RECORD_EXCLUDED                                                                 \
	{                                                                                          \
		"/.dockerenv", "/dev", "/etc/hostname", "/etc/hosts", "/etc/mtab",                 \
		    "/etc/resolv.conf", "/proc", "/run", "/sys", "/tmp"                            \
	}

enum veil_image_entry_kind {
	VEIL_IMAGE_DIR = 'd',
	VEIL_IMAGE_FILE = 'f',
	VEIL_IMAGE_LINK = 'l',
	VEIL_IMAGE_EXCLUDED = 'x',
};

struct veil_image_entry {
	char kind; /* enum veil_image_entry_kind */
	unsigned mode;
	uint64_t size;
	uint8_t sha256[VEIL_SHA256_SIZE]; /* a file's content, a folder's listing */
	char *path;                       /* unescaped, NUL-terminated */
	char *target;                     /* a link's, unescaped */
};

/* A parsed record. Owns entries and their strings (one block). */
struct veil_image_record {
	struct veil_image_entry *entries;
	size_t count;
	char *strings;
	uint8_t root[VEIL_SHA256_SIZE]; /* SHA-256 of the bytes parsed */
};

/* Parses size bytes of data. 0, or VEIL_EINVAL with the line and what is
 * wrong in why (cap bytes), or VEIL_EIO (OpenSSL failed); out is set only
 * on success. */
int veil_image_record_parse(const char *data, size_t size, struct veil_image_record *out, char *why,
			    size_t cap) VEIL_MUST_CHECK;
void veil_image_record_free(struct veil_image_record *r);

/* Appends s (n bytes) escaped as above; 0 or VEIL_ENOMEM, and out->failed
 * is set then: like veil_buf_append, a caller may check once at the end. */
int veil_image_record_escape(struct veil_buf *out, const char *s, size_t n);

/* The listing hash of names (count of them, already sorted bytewise). */
void veil_image_listing_sha256(const char *const *names, size_t count,
			       uint8_t out[static VEIL_SHA256_SIZE]);

#endif

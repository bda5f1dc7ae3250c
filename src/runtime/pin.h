/* veil-run's protected folder, pinned: verified while copied into memory that
 * only veil-run's private mount namespace can reach, so that what was hashed
 * is exactly what the program reads (issue 9, H2: a file renamed over a
 * verified one after hashing ran with the secrets). */
#ifndef VEIL_RUNTIME_PIN_H
#define VEIL_RUNTIME_PIN_H

#include <stddef.h>

#include "veil/image.h"

struct pinned_tree {
	int mnt;                       /* the detached tmpfs holding the copy; -1 if none */
	struct veil_file_entry *files; /* owned; paths as in the image (dir + relative path) */
	size_t file_count;
};

/* Makes this process's mount namespace a private one of its own: 0, 1 when
 * that is not possible here (no CAP_SYS_ADMIN: the reason is in err, and the
 * caller may measure in place: a status, not an error), or a negative
 * veil_err on any other failure. */
int pin_private_namespace(char *err, size_t cap) VEIL_MUST_CHECK;

/* In the private namespace: copies every regular file under dir (folders
 * recursively; a symbolic link or special file is refused) into a fresh
 * detached tmpfs, hashing each copy. 0 (tree filled: files and their
 * hashes), or a negative veil_err (reason in err). */
int pin_copy(const char *dir, struct pinned_tree *tree, char *err, size_t cap) VEIL_MUST_CHECK;

/* Attaches the copy at dir, in this process's namespace only. */
int pin_attach(struct pinned_tree *tree, const char *dir, char *err, size_t cap) VEIL_MUST_CHECK;

/* Makes the mount at dir read-only (after injection files were placed). */
int pin_seal(const char *dir, char *err, size_t cap) VEIL_MUST_CHECK;

void pin_free(struct pinned_tree *tree);

/* Runtime files (the program, its libraries, Python's start-up files), each
 * copied into a detached tmpfs while hashed, then mounted over its own path
 * in this (private) namespace. Copies are numbered by the caller. The functions below return 0 or a
 * negative veil_err with the reason in err, but for pin_files_open_copy. */
struct pinned_files {
	int mnt, root; /* the detached tmpfs and its root folder; -1 if none */
};
int pin_files_open(struct pinned_files *pf, char *err, size_t cap) VEIL_MUST_CHECK;
/* Copies path (symbolic links followed) as copy number idx; sha and mode
 * (0644/0755) describe the bytes copied. Thread-safe for distinct idx. */
int pin_files_copy(const struct pinned_files *pf, size_t idx, const char *path,
		   uint8_t sha[VEIL_SHA256_SIZE], unsigned *mode, char *err,
		   size_t cap) VEIL_MUST_CHECK;
/* Makes the copies read-only: call once every copy is made, before attaching. */
int pin_files_seal(struct pinned_files *pf, char *err, size_t cap) VEIL_MUST_CHECK;
/* Mounts copy idx over path (after pin_files_seal). */
int pin_files_attach(struct pinned_files *pf, size_t idx, const char *path, char *err,
		     size_t cap) VEIL_MUST_CHECK;
/* A read-only descriptor of copy idx (to exec it), or -1 (errno set). */
int pin_files_open_copy(const struct pinned_files *pf, size_t idx) VEIL_MUST_CHECK;
void pin_files_close(struct pinned_files *pf);

#endif

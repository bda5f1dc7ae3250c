/* The audit log's verifier (include/veil/audit.h): reading a log file, its
 * last entry, the place of a head in it, a head's signature, and the whole
 * chain. `veil audit verify` and the CAS (at start, backup, restore) share it;
 * the line format itself is src/audit/format.c's. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "veil/audit.h"

#define AUDIT_LINE_MAX VEIL_AUDIT_LINE_MAX
#define AUDIT_HEX_SIZE (VEIL_AUDIT_HASH_HEX - 1)
#define AUDIT_READ_CHUNK ((size_t)64 * 1024)

/* ---- reading a log file ---- */

int veil_audit_read_at(int fd, void *buf, size_t size, uint64_t off)
{
	size_t done = 0;
	while (done < size) {
		ssize_t n = pread(fd, (char *)buf + done, size - done, (off_t)(off + done));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO; /* 0: file shrank under us */
		done += (size_t)n;
	}
	return 0;
}

/* Error path only: the 1-based number of the last line (a partial one counts)
 * and the offset where it starts, by reading the whole file. */
static int locate_last_line(int fd, uint64_t size, size_t *line_no, uint64_t *start)
{
	char *buf = malloc(AUDIT_READ_CHUNK);
	if (!buf)
		return VEIL_ENOMEM;
	size_t newlines = 0;
	uint64_t last_nl = UINT64_MAX, before_last_nl = UINT64_MAX;
	int rc = 0;
	for (uint64_t off = 0; off < size;) {
		size_t n = size - off < AUDIT_READ_CHUNK ? (size_t)(size - off) : AUDIT_READ_CHUNK;
		if (veil_audit_read_at(fd, buf, n, off)) {
			rc = VEIL_EIO;
			break;
		}
		for (const char *q = buf; (q = memchr(q, '\n', n - (size_t)(q - buf))); q++) {
			newlines++;
			before_last_nl = last_nl;
			last_nl = off + (uint64_t)(q - buf);
		}
		off += n;
	}
	free(buf);
	if (rc)
		return rc;
	if (last_nl == size - 1) { /* complete last line */
		*line_no = newlines;
		*start = before_last_nl == UINT64_MAX ? 0 : before_last_nl + 1;
	} else {
		*line_no = newlines + 1;
		*start = last_nl == UINT64_MAX ? 0 : last_nl + 1;
	}
	return 0;
}

/* Reads the last line: at most AUDIT_LINE_MAX bytes from the end hold any line
 * a writer can produce. */
int veil_audit_read_tail(int fd, const char *path, uint64_t size, struct veil_audit_entry *last,
			 struct veil_diags *d)
{
	size_t window = size < AUDIT_LINE_MAX + 1 ? (size_t)size : AUDIT_LINE_MAX + 1;
	char *buf = malloc(window);
	size_t line_no = 0;
	uint64_t start = 0;
	int rc;
	if (!buf)
		return VEIL_ENOMEM;
	if ((rc = veil_audit_read_at(fd, buf, window, size - window)) != 0) {
		veil_diag(d, "%s: cannot read the end of the audit log: %s", path, strerror(-rc));
		rc = VEIL_EIO;
		goto out;
	}
	if (buf[window - 1] != '\n') {
		if ((rc = locate_last_line(fd, size, &line_no, &start)))
			goto out;
		veil_diag(d,
			  "%s:%zu: the last line is incomplete (%" PRIu64
			  " bytes from offset %" PRIu64
			  " without a newline), probably cut by a crash during a write; the log "
			  "was not opened: verify the log, then truncate it to %" PRIu64
			  " bytes to drop that line",
			  path, line_no, size - start, start, start);
		rc = VEIL_EINVAL;
		goto out;
	}
	size_t i = window - 1;
	while (i > 0 && buf[i - 1] != '\n')
		i--;
	if (i == 0 && window < size) {
		if ((rc = locate_last_line(fd, size, &line_no, &start)))
			goto out;
		veil_diag(d,
			  "%s:%zu: the last line is longer than the limit of %d bytes, so it is "
			  "no audit entry; the log was not opened",
			  path, line_no, AUDIT_LINE_MAX);
		rc = VEIL_ELIMIT;
		goto out;
	}
	struct veil_audit_entry e;
	const char *why = NULL;
	size_t col = 0;
	if (veil_audit_check_line(buf + i, window - 1 - i, &e, &why, &col)) {
		if ((rc = locate_last_line(fd, size, &line_no, &start)))
			goto out;
		if (col)
			veil_diag(d,
				  "%s:%zu:%zu: the last entry does not verify: %s; the log was "
				  "not opened",
				  path, line_no, col, why);
		else
			veil_diag(d,
				  "%s:%zu: the last entry does not verify: %s; the log was not "
				  "opened",
				  path, line_no, why);
		rc = VEIL_EINVAL;
		goto out;
	}
	*last = e;
	rc = 0;
out:
	free(buf);
	return rc;
}

int veil_audit_check_head_fd(int fd, uint64_t file_size, const char *path,
			     const struct veil_audit_head *head, struct veil_diags *d)
{
	if (head->size > file_size) {
		veil_diag(d,
			  "%s: truncated: the store's audit head is entry %" PRIu64
			  " ending at byte %" PRIu64 ", the log has only %" PRIu64 " bytes",
			  path, head->seq, head->size, file_size);
		return VEIL_EINVAL;
	}
	size_t window = head->size < AUDIT_LINE_MAX + 1 ? (size_t)head->size : AUDIT_LINE_MAX + 1;
	char *buf = malloc(window + 1);
	int rc = VEIL_EINVAL;
	if (!buf)
		return VEIL_ENOMEM;
	struct veil_audit_entry e;
	const char *why = NULL;
	size_t col = 0, i = window ? window - 1 : 0;
	if (!window || veil_audit_read_at(fd, buf, window, head->size - window) ||
	    buf[window - 1] != '\n')
		goto bad;
	while (i > 0 && buf[i - 1] != '\n')
		i--;
	if (veil_audit_check_line(buf + i, window - 1 - i, &e, &why, &col) || e.seq != head->seq ||
	    /* not secret: audit entry hashes, which the log publishes */
	    memcmp(e.hash, head->hash, AUDIT_HEX_SIZE))
		goto bad;
	rc = 0;
	goto out;
bad:
	veil_diag(d,
		  "%s: the store's audit head (entry %" PRIu64 ", hash %.16s..., ending at byte "
		  "%" PRIu64 ") is not in the log: the log was truncated or rewritten",
		  path, head->seq, head->hash, head->size);
out:
	free(buf);
	return rc;
}

int veil_audit_check_head_file(const char *path, const struct veil_audit_head *head,
			       struct veil_diags *d)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	if (fd < 0 || fstat(fd, &st)) {
		veil_diag(d, "%s: %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return VEIL_EIO;
	}
	int rc = veil_audit_check_head_fd(fd, (uint64_t)st.st_size, path, head, d);
	close(fd);
	return rc;
}

int veil_audit_tail_head(const char *path, struct veil_audit_head *out, struct veil_diags *d)
{
	struct veil_audit_entry last = {.seq = 0};
	struct stat st;
	int rc = VEIL_EIO;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	memcpy(last.hash, veil_audit_zero_hash, sizeof(last.hash));
	if (fd < 0 || fstat(fd, &st)) {
		veil_diag(d, "%s: %s", path, strerror(errno));
	} else if (!(rc = st.st_size > 0
			      ? veil_audit_read_tail(fd, path, (uint64_t)st.st_size, &last, d)
			      : 0)) {
		out->seq = last.seq;
		out->size = (uint64_t)st.st_size;
		memcpy(out->hash, last.hash, sizeof(out->hash));
	}
	if (fd >= 0)
		close(fd);
	return rc;
}

int veil_audit_head_verify(EVP_PKEY *key, const struct veil_audit_head *head, const char *sig)
{
	char msg[128];
	unsigned char raw[1024];
	size_t len = strlen(sig);
	int n = veil_audit_head_message(head, msg, sizeof(msg)), ok = 0;
	if (n < 0 || !len || len % 4 || len / 4 * 3 > sizeof(raw))
		return VEIL_EINVAL;
	int raw_size = EVP_DecodeBlock(raw, (const unsigned char *)sig, (int)len);
	if (raw_size < 0)
		return VEIL_EINVAL;
	raw_size -= (len > 0 && sig[len - 1] == '=') + (len > 1 && sig[len - 2] == '=');
	EVP_MD_CTX *m = EVP_MD_CTX_new();
	ok = m && EVP_DigestVerifyInit(m, NULL, veil_audit_head_md(key), NULL, key) == 1 &&
	     EVP_DigestVerify(m, raw, (size_t)raw_size, (const unsigned char *)msg, (size_t)n) == 1;
	EVP_MD_CTX_free(m);
	return ok ? 0 : VEIL_EINVAL;
}

/* ---- offline verification ---- */

int veil_audit_verify_file(const char *path, size_t *entries, size_t *bad_line,
			   struct veil_diags *d)
{
	int rc = VEIL_EIO;
	size_t line_no = 0;
	char *buf = NULL;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		veil_diag(d, "%s: cannot open the audit log: %s", path, strerror(errno));
		rc = errno == ENOENT ? VEIL_ENOENT : VEIL_EIO;
		goto out;
	}
	buf = malloc(AUDIT_READ_CHUNK);
	if (!buf) {
		rc = VEIL_ENOMEM;
		goto out;
	}
	char prev[AUDIT_HEX_SIZE + 1];
	memcpy(prev, veil_audit_zero_hash, sizeof(prev));
	size_t start = 0, end = 0;
	bool eof = false;
	for (;;) {
		char *nl = memchr(buf + start, '\n', end - start);
		if (!nl) {
			if (end - start >= AUDIT_LINE_MAX) {
				line_no++;
				veil_diag(d,
					  "%s:%zu: line longer than the limit of %d bytes: not an "
					  "audit entry",
					  path, line_no, AUDIT_LINE_MAX);
				rc = VEIL_EINVAL;
				goto out;
			}
			if (eof) {
				if (end > start) {
					line_no++;
					veil_diag(
					    d,
					    "%s:%zu: incomplete last line (%zu bytes without a "
					    "newline), probably cut by a crash during a write",
					    path, line_no, end - start);
					rc = VEIL_EINVAL;
					goto out;
				}
				break;
			}
			memmove(buf, buf + start, end - start);
			end -= start;
			start = 0;
			ssize_t n = read(fd, buf + end, AUDIT_READ_CHUNK - end);
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0) {
				veil_diag(d, "%s: read failed: %s", path, strerror(errno));
				rc = VEIL_EIO;
				goto out;
			}
			if (n == 0)
				eof = true;
			end += (size_t)n;
			continue;
		}
		line_no++;
		size_t size = (size_t)(nl - (buf + start));
		struct veil_audit_entry e;
		const char *why = NULL;
		size_t col = 0;
		rc = VEIL_EINVAL;
		if (size >= AUDIT_LINE_MAX) {
			veil_diag(d,
				  "%s:%zu: line longer than the limit of %d bytes: not an audit "
				  "entry",
				  path, line_no, AUDIT_LINE_MAX);
			goto out;
		}
		if (veil_audit_check_line(buf + start, size, &e, &why, &col)) {
			if (col)
				veil_diag(d, "%s:%zu:%zu: not an audit entry: %s", path, line_no,
					  col, why);
			else
				veil_diag(d, "%s:%zu: %s", path, line_no, why);
			goto out;
		}
		uint64_t want = (uint64_t)line_no;
		switch (veil_audit_link(&e, want, prev)) {
		case VEIL_AUDIT_LINKED:
			break;
		case VEIL_AUDIT_SEQ_SKIPPED:
			veil_diag(
			    d, "%s:%zu: seq %" PRIu64 " where %" PRIu64 " was expected: %s", path,
			    line_no, e.seq, want,
			    "an entry before this line was removed (or entries were reordered)");
			goto out;
		case VEIL_AUDIT_SEQ_REPEATED:
			veil_diag(d, "%s:%zu: seq %" PRIu64 " where %" PRIu64 " was expected: %s",
				  path, line_no, e.seq, want,
				  "entries were reordered or an entry was repeated");
			goto out;
		case VEIL_AUDIT_PREV_CHANGED:
			if (line_no == 1)
				veil_diag(d,
					  "%s:1: prev of the first entry is not 64 zeros: entries "
					  "before it were removed",
					  path);
			else
				veil_diag(d,
					  "%s:%zu: prev is not the hash of line %zu: that entry "
					  "was changed, removed or replaced",
					  path, line_no, line_no - 1);
			goto out;
		}
		memcpy(prev, e.hash, sizeof(prev));
		start += size + 1;
	}
	if (entries)
		*entries = line_no;
	rc = 0;
out:
	if (rc && bad_line)
		*bad_line = line_no;
	free(buf);
	if (fd >= 0)
		close(fd);
	return rc;
}

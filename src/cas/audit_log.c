/* The CAS's audit log file (include/veil/audit_log.h): opening it (with a
 * lock), appending entries durably, the head the store keeps, reconciling the
 * log with the store after a crash, and signing heads. Lines are built by
 * src/audit/format.c; the tail and heads are read by src/audit/verify.c.
 *
 * Locking: one mutex serialises appends within the process, and an exclusive
 * flock() on the file refuses a second writer process, whose appends would
 * fork the chain. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "veil/audit_log.h"

struct veil_audit {
	pthread_mutex_t lock;
	int fd;
	int broken;    /* sticky: a write or sync failed, the file state is unknown */
	uint64_t size; /* bytes in the file: where a failed write is cut back to */
	uint64_t seq;  /* of the last entry, 0 for an empty log */
	char prev[VEIL_AUDIT_HASH_HEX];
	char line[VEIL_AUDIT_LINE_MAX];
};

/* ---- open ---- */

/* A new log's directory entry is durable only once its folder is synced. */
static int sync_parent(const char *path, struct veil_diags *d)
{
	char *dir = veil_dirname(path);
	if (!dir)
		return VEIL_ENOMEM;
	int rc = 0;
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || (fsync(fd) < 0 && errno != EINVAL)) {
		veil_diag(d, "%s: cannot sync the folder: %s", dir, strerror(errno));
		rc = VEIL_EIO;
	}
	if (fd >= 0)
		close(fd);
	free(dir);
	return rc;
}

int veil_audit_open(const char *path, struct veil_audit **out, struct veil_diags *d)
{
	if (!path || !out)
		return VEIL_EINVAL;
	int rc = VEIL_EIO;
	struct veil_audit *a = calloc(1, sizeof(*a));
	if (!a)
		return VEIL_ENOMEM;
	a->fd = open(path, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
	if (a->fd < 0) {
		veil_diag(d, "%s: cannot open the audit log: %s", path, strerror(errno));
		rc = errno == ENOENT ? VEIL_ENOENT : VEIL_EIO;
		free(a);
		return rc;
	}
	struct stat st;
	if (fstat(a->fd, &st) < 0) {
		veil_diag(d, "%s: cannot stat the audit log: %s", path, strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		veil_diag(d, "%s: the audit log is not a regular file", path);
		rc = VEIL_EINVAL;
		goto out;
	}
	if (flock(a->fd, LOCK_EX | LOCK_NB) < 0) {
		if (errno == EWOULDBLOCK)
			veil_diag(d,
				  "%s: the audit log is open for writing elsewhere (locked); "
				  "two writers would fork its chain",
				  path);
		else
			veil_diag(d, "%s: cannot lock the audit log: %s", path, strerror(errno));
		goto out;
	}
	a->size = (uint64_t)st.st_size;
	memcpy(a->prev, veil_audit_zero_hash, sizeof(a->prev));
	if (a->size > 0) {
		struct veil_audit_entry last;
		if ((rc = veil_audit_read_tail(a->fd, path, a->size, &last, d)))
			goto out;
		a->seq = last.seq;
		memcpy(a->prev, last.hash, sizeof(a->prev));
	}
	if ((rc = sync_parent(path, d)))
		goto out;
	if (pthread_mutex_init(&a->lock, NULL)) {
		rc = VEIL_ENOMEM;
		goto out;
	}
	*out = a;
	return 0;
out:
	close(a->fd);
	free(a);
	return rc;
}

void veil_audit_close(struct veil_audit *a)
{
	if (!a)
		return;
	pthread_mutex_destroy(&a->lock);
	fdatasync(a->fd); /* the unsynced read and refusal entries */
	close(a->fd);
	free(a);
}

/* ---- append ---- */

static int write_all(int fd, const char *p, size_t size)
{
	while (size) {
		ssize_t n = write(fd, p, size);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return VEIL_EIO;
		p += n;
		size -= (size_t)n;
	}
	return 0;
}

int veil_audit_append(struct veil_audit *a, const struct veil_audit_event *ev)
{
	return veil_audit_append_at(a, ev, NULL);
}

int veil_audit_append_at(struct veil_audit *a, const struct veil_audit_event *ev,
			 struct veil_audit_head *head)
{
	if (!a || !ev || !ev->event || !ev->event[0])
		return VEIL_EINVAL;
	char when[VEIL_AUDIT_TIME_SIZE], hash[VEIL_AUDIT_HASH_HEX];
	size_t size = 0;
	int rc;
	pthread_mutex_lock(&a->lock);
	if (a->broken) {
		rc = VEIL_EIO;
		goto out;
	}
	if ((rc = veil_audit_time_now(when)) ||
	    (rc = veil_audit_format_line(a->prev, a->seq + 1, when, ev, a->line, &size, hash)))
		goto out;
	if (write_all(a->fd, a->line, size)) {
		/* Cut a partial line back off so the chain stays intact; if even that
		 * fails the file is in an unknown state and every later append fails. */
		if (ftruncate(a->fd, (off_t)a->size) < 0)
			a->broken = 1;
		rc = VEIL_EIO;
		goto out;
	}
	if (!ev->nosync && fdatasync(a->fd) < 0) {
		/* After a failed sync the page cache no longer says what is on disk. */
		a->broken = 1;
		rc = VEIL_EIO;
		goto out;
	}
	a->size += size;
	a->seq++;
	memcpy(a->prev, hash, sizeof(a->prev));
	if (head) {
		head->seq = a->seq;
		head->size = a->size;
		memcpy(head->hash, a->prev, sizeof(head->hash));
	}
	rc = 0;
out:
	pthread_mutex_unlock(&a->lock);
	return rc;
}

/* ---- the head the store keeps ---- */

int veil_audit_head_get(struct veil_audit *a, struct veil_audit_head *out)
{
	pthread_mutex_lock(&a->lock);
	out->seq = a->seq;
	out->size = a->size;
	memcpy(out->hash, a->prev, sizeof(out->hash));
	int rc = a->broken ? VEIL_EIO : 0;
	pthread_mutex_unlock(&a->lock);
	return rc;
}

static bool is_change_line(const char *p, size_t n)
{
	static const char *const events[] = {",\"event\":\"create\",", ",\"event\":\"update\",",
					     ",\"event\":\"delete\","};
	for (size_t k = 0; k < VEIL_ARRAY_LEN(events); k++) {
		size_t m = strlen(events[k]);
		for (size_t i = 0; i + m <= n && i < 200; i++)
			/* not secret: an audit event name */
			if (!memcmp(p + i, events[k], m))
				return true;
	}
	return false;
}

/* The namespace of a line, when it is a plain string (names have no escapes). */
static bool line_namespace(const char *p, size_t n, char out[static 256])
{
	static const char key[] = ",\"namespace\":\"";
	for (size_t i = 0; i + sizeof(key) - 1 < n && i < 300; i++) {
		/* not secret: a key of the audit line format */
		if (memcmp(p + i, key, sizeof(key) - 1))
			continue;
		const char *v = p + i + sizeof(key) - 1, *end = memchr(v, '"', n - (size_t)(v - p));
		if (!end || end - v >= 256 || memchr(v, '\\', (size_t)(end - v)))
			return false;
		memcpy(out, v, (size_t)(end - v));
		out[end - v] = '\0';
		return true;
	}
	return false;
}

int veil_audit_reconcile(struct veil_audit *a, const struct veil_audit_head *stored,
			 int (*stored_hash)(void *arg, const char *ns, char hash[static 65]),
			 void *arg, struct veil_diags *d)
{
	if (!stored)
		return 0;
	int rc = veil_audit_check_head_fd(a->fd, a->size, "audit.log", stored, d);
	if (rc)
		return rc;
	uint64_t left_size = a->size - stored->size;
	if (!left_size)
		return 0;
	if (left_size > ((uint64_t)1 << 30)) {
		veil_diag(d, "audit.log: %" PRIu64 " bytes after the store's head", left_size);
		return VEIL_ELIMIT;
	}
	char *buf = malloc((size_t)left_size);
	char(*undone)[256] = NULL;
	size_t n_undone = 0;
	if (!buf)
		return VEIL_ENOMEM;
	if (veil_audit_read_at(a->fd, buf, (size_t)left_size, stored->size)) {
		free(buf);
		return VEIL_EIO;
	}
	for (size_t off = 0; off < left_size;) {
		char *nl = memchr(buf + off, '\n', (size_t)left_size - off);
		size_t n = nl ? (size_t)(nl - (buf + off)) : (size_t)left_size - off;
		struct veil_audit_entry e;
		const char *why;
		size_t col;
		char ns[256];
		if (!veil_audit_check_line(buf + off, n, &e, &why, &col) &&
		    is_change_line(buf + off, n) && line_namespace(buf + off, n, ns)) {
			char(*p)[256] = realloc(undone, (n_undone + 1) * sizeof(*p));
			if (!p) {
				rc = VEIL_ENOMEM;
				break;
			}
			undone = p;
			memcpy(undone[n_undone++], ns, sizeof(ns));
		}
		off += n + 1;
	}
	free(buf);
	/* each names the namespace and its hash in the store (null: absent): the
	 * state before the change that never committed, which a replay of the
	 * log (veil-cas backup) takes as it takes an update or a delete */
	for (size_t i = 0; !rc && i < n_undone; i++) {
		char hash[65];
		int r = stored_hash(arg, undone[i], hash);
		if (r && r != VEIL_ENOENT) {
			rc = r;
			break;
		}
		struct veil_audit_event ev = {.event = "rollback",
					      .namespace_ = undone[i],
					      .status = 200,
					      .detail = r ? NULL : hash};
		rc = veil_audit_append(a, &ev);
	}
	free(undone);
	return rc;
}

int veil_audit_head_sign(EVP_PKEY *key, const struct veil_audit_head *head, char *out, size_t cap)
{
	char msg[128];
	unsigned char sig[1024];
	size_t sig_size = sizeof(sig);
	int n = veil_audit_head_message(head, msg, sizeof(msg)), rc = VEIL_EIO;
	EVP_MD_CTX *m = EVP_MD_CTX_new();
	if (n > 0 && m && EVP_DigestSignInit(m, NULL, veil_audit_head_md(key), NULL, key) == 1 &&
	    EVP_DigestSign(m, sig, &sig_size, (const unsigned char *)msg, (size_t)n) == 1 &&
	    cap > 4 * ((sig_size + 2) / 3)) {
		EVP_EncodeBlock((unsigned char *)out, sig, (int)sig_size);
		rc = 0;
	}
	EVP_MD_CTX_free(m);
	return rc;
}

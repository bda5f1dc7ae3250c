/* The CAS audit log (include/veil/audit.h).
 *
 * Line format, byte for byte: one entry per line, the fields always in this
 * order, no whitespace, only printable ASCII, terminated by a single '\n':
 *
 *   {"seq":N,"time":"YYYY-MM-DDTHH:MM:SS.mmmZ","prev":"<64 hex>","event":S,
 *   "namespace":S|null,"client":S|null,"status":I,"detail":S|null,"hash":"<64 hex>"}
 *
 * (shown on two lines here; one line in the file).
 *
 * Hash rule: hash = SHA-256 over the exact bytes of the line from its first byte
 * '{' up to but excluding the final ,"hash":" member, written as 64 lower-case
 * hex digits. The line is therefore  <prefix>,"hash":"<hex>"}  and the hashed
 * bytes are <prefix>. A raw '"' never appears inside a string (always escaped
 * as \"), so ,"hash":" occurs exactly once per line. By hand:
 *   line=$(sed -n 5p audit.log); printf %s "${line%,\"hash\":*}" | sha256sum
 * prev is the hash of the previous line (64 zeros on the first line) and seq
 * counts 1, 2, 3, ... so removing, reordering or changing an entry breaks the
 * chain at that entry. Dropping entries at the END of the log is not visible in
 * the log itself: compare the last hash with one kept elsewhere for that.
 *
 * Strings (S) have one canonical escaping, so the verifier can insist on the
 * exact bytes a writer produces: \" and \\; \u00xx for bytes below 0x20 and
 * for 0x7f; every other non-ASCII code point as \uxxxx (a surrogate pair above
 * U+FFFF), lower-case hex; bytes that are not valid UTF-8 become \ufffd. Raw
 * UTF-8 is never written, so a log shown in a terminal cannot carry control
 * or bidi characters. Each string is at most AUDIT_FIELD_MAX bytes as written;
 * longer ones are cut at a code point and end in AUDIT_TRUNCATED.
 *
 * Locking: one mutex serialises appends within the process, and an exclusive
 * flock() on the file refuses a second writer process, whose appends would
 * fork the chain. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "veil/audit.h"

#define AUDIT_LINE_MAX 8192 /* bytes, the '\n' included */
#define AUDIT_FIELD_MAX 1024
#define AUDIT_TRUNCATED "...[truncated]"
#define AUDIT_HEX_SIZE (2 * VEIL_SHA256_SIZE)
#define AUDIT_HASH_MEMBER ",\"hash\":\""
#define AUDIT_TIME_SIZE 24 /* YYYY-MM-DDTHH:MM:SS.mmmZ */
#define AUDIT_READ_CHUNK ((size_t)64 * 1024)

static const char zero_hash[AUDIT_HEX_SIZE + 1] =
    "0000000000000000000000000000000000000000000000000000000000000000";

struct veil_audit {
	pthread_mutex_t lock;
	int fd;
	int broken;    /* sticky: a write or sync failed, the file state is unknown */
	uint64_t size; /* bytes in the file: where a failed write is cut back to */
	uint64_t seq;  /* of the last entry, 0 for an empty log */
	char prev[AUDIT_HEX_SIZE + 1];
	char line[AUDIT_LINE_MAX];
};

/* ---- writing ---- */

/* Bounded writer into a fixed line buffer. */
struct out {
	char *p;
	size_t size;
	size_t cap;
	int overflow;
};

static void put(struct out *o, const void *s, size_t n)
{
	if (o->overflow || n > o->cap - o->size) {
		o->overflow = 1;
		return;
	}
	memcpy(o->p + o->size, s, n);
	o->size += n;
}

static void puts_(struct out *o, const char *s)
{
	put(o, s, strlen(s));
}

/* Decodes one code point of s (never at its NUL); invalid UTF-8 gives U+FFFD
 * for one byte, so every byte is accounted for and nothing is dropped silently. */
static uint32_t utf8_next(const unsigned char *s, size_t *adv)
{
	unsigned char c = s[0];
	*adv = 1;
	if (c < 0x80)
		return c;
	size_t n;
	uint32_t cp;
	unsigned char lo = 0x80, hi = 0xbf;
	if (c >= 0xc2 && c <= 0xdf) {
		n = 2;
		cp = c & 0x1f;
	} else if (c >= 0xe0 && c <= 0xef) {
		n = 3;
		cp = c & 0x0f;
		if (c == 0xe0)
			lo = 0xa0; /* overlong */
		else if (c == 0xed)
			hi = 0x9f; /* surrogates */
	} else if (c >= 0xf0 && c <= 0xf4) {
		n = 4;
		cp = c & 0x07;
		if (c == 0xf0)
			lo = 0x90; /* overlong */
		else if (c == 0xf4)
			hi = 0x8f; /* above U+10FFFF */
	} else {
		return 0xfffd;
	}
	if (s[1] < lo || s[1] > hi)
		return 0xfffd;
	for (size_t i = 1; i < n; i++) {
		/* s[i] == 0 fails here too, so the read stays inside the string */
		if (i > 1 && (s[i] < 0x80 || s[i] > 0xbf))
			return 0xfffd;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	*adv = n;
	return cp;
}

static void hex4(char *out, uint32_t v)
{
	static const char digits[] = "0123456789abcdef";
	out[0] = '\\';
	out[1] = 'u';
	for (int i = 0; i < 4; i++)
		out[2 + i] = digits[(v >> (12 - 4 * i)) & 15];
}

/* The canonical escape of one code point; returns its size (at most 12). */
static size_t escape_cp(uint32_t cp, char out[static 12])
{
	if (cp == '"' || cp == '\\') {
		out[0] = '\\';
		out[1] = (char)cp;
		return 2;
	}
	if (cp >= 0x20 && cp < 0x7f) {
		out[0] = (char)cp;
		return 1;
	}
	if (cp <= 0xffff) {
		hex4(out, cp);
		return 6;
	}
	cp -= 0x10000;
	hex4(out, 0xd800 | (cp >> 10));
	hex4(out + 6, 0xdc00 | (cp & 0x3ff));
	return 12;
}

/* Writes s as a JSON string (or null), at most AUDIT_FIELD_MAX bytes between
 * the quotes. Never reads further than it writes plus one code point, so a huge
 * detail costs no more than a short one. */
static void put_string(struct out *o, const char *s)
{
	if (!s) {
		puts_(o, "null");
		return;
	}
	const unsigned char *p = (const unsigned char *)s;
	size_t total = 0, adv;
	char esc[12];
	bool fits = true;
	for (const unsigned char *q = p; *q; q += adv) {
		size_t n = escape_cp(utf8_next(q, &adv), esc);
		if (total + n > AUDIT_FIELD_MAX) {
			fits = false;
			break;
		}
		total += n;
	}
	size_t limit = fits ? AUDIT_FIELD_MAX : AUDIT_FIELD_MAX - strlen(AUDIT_TRUNCATED);
	put(o, "\"", 1);
	total = 0;
	for (; *p; p += adv) {
		size_t n = escape_cp(utf8_next(p, &adv), esc);
		if (total + n > limit)
			break;
		put(o, esc, n);
		total += n;
	}
	if (!fits)
		puts_(o, AUDIT_TRUNCATED);
	put(o, "\"", 1);
}

static int format_time(char out[static AUDIT_TIME_SIZE + 1])
{
	struct timespec ts;
	struct tm tm;
	if (clock_gettime(CLOCK_REALTIME, &ts) < 0 || !gmtime_r(&ts.tv_sec, &tm))
		return VEIL_EIO;
	int n = snprintf(out, AUDIT_TIME_SIZE + 1, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
			 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
			 tm.tm_sec, (int)(ts.tv_nsec / 1000000));
	return n == AUDIT_TIME_SIZE ? 0 : VEIL_EIO;
}

static int hash_hex(const char *data, size_t size, char out[static AUDIT_HEX_SIZE + 1])
{
	uint8_t digest[VEIL_SHA256_SIZE];
	int rc = veil_sha256(data, size, digest);
	if (rc)
		return rc;
	veil_hex(digest, sizeof(digest), out);
	return 0;
}

/* ---- strict scanning of one line ---- */

struct entry {
	uint64_t seq;
	char prev[AUDIT_HEX_SIZE + 1];
	char hash[AUDIT_HEX_SIZE + 1];
	size_t hashed_size; /* bytes before ,"hash":" */
};

struct scan {
	const char *p;
	size_t size;
	size_t pos;
	const char *why; /* set on the first failure */
};

static int fail(struct scan *s, const char *why)
{
	if (!s->why)
		s->why = why;
	return -1;
}

static size_t left(const struct scan *s)
{
	return s->size - s->pos;
}

static int expect(struct scan *s, const char *lit, const char *why)
{
	size_t n = strlen(lit);
	/* not secret: a literal of the audit line format */
	if (left(s) < n || memcmp(s->p + s->pos, lit, n) != 0)
		return fail(s, why);
	s->pos += n;
	return 0;
}

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* Canonical decimal: no sign, no leading zero, at most 19 digits (no overflow). */
static int scan_u64(struct scan *s, uint64_t *out, const char *why)
{
	size_t n = 0;
	uint64_t v = 0;
	while (n < left(s) && is_digit(s->p[s->pos + n])) {
		if (n == 19)
			return fail(s, why);
		v = v * 10 + (uint64_t)(s->p[s->pos + n] - '0');
		n++;
	}
	if (n == 0 || (n > 1 && s->p[s->pos] == '0'))
		return fail(s, why);
	s->pos += n;
	*out = v;
	return 0;
}

static int scan_int(struct scan *s, const char *why)
{
	bool neg = left(s) > 0 && s->p[s->pos] == '-';
	if (neg)
		s->pos++;
	uint64_t v;
	if (scan_u64(s, &v, why))
		return -1;
	if (v > (neg ? (uint64_t)INT_MAX + 1 : (uint64_t)INT_MAX) || (neg && v == 0))
		return fail(s, why);
	return 0;
}

static int scan_hex(struct scan *s, char out[static AUDIT_HEX_SIZE + 1], const char *why)
{
	if (left(s) < AUDIT_HEX_SIZE)
		return fail(s, why);
	for (size_t i = 0; i < AUDIT_HEX_SIZE; i++) {
		char c = s->p[s->pos + i];
		if (!is_digit(c) && !(c >= 'a' && c <= 'f'))
			return fail(s, why);
		out[i] = c;
	}
	out[AUDIT_HEX_SIZE] = '\0';
	s->pos += AUDIT_HEX_SIZE;
	return 0;
}

static int scan_time(struct scan *s)
{
	static const char *const why = "time is not YYYY-MM-DDTHH:MM:SS.mmmZ (UTC)";
	static const char pattern[] = "dddd-dd-ddTdd:dd:dd.dddZ";
	if (left(s) < AUDIT_TIME_SIZE)
		return fail(s, why);
	const char *t = s->p + s->pos;
	for (size_t i = 0; i < AUDIT_TIME_SIZE; i++) {
		if (pattern[i] == 'd' ? !is_digit(t[i]) : t[i] != pattern[i])
			return fail(s, why);
	}
#define TWO(i) ((t[i] - '0') * 10 + (t[(i) + 1] - '0'))
	if (TWO(5) < 1 || TWO(5) > 12 || TWO(8) < 1 || TWO(8) > 31 || TWO(11) > 23 ||
	    TWO(14) > 59 || TWO(17) > 60)
		return fail(s, why);
#undef TWO
	s->pos += AUDIT_TIME_SIZE;
	return 0;
}

static int hex_value(const char *p, uint32_t *out)
{
	uint32_t v = 0;
	for (int i = 0; i < 4; i++) {
		char c = p[i];
		if (is_digit(c))
			v = v * 16 + (uint32_t)(c - '0');
		else if (c >= 'a' && c <= 'f')
			v = v * 16 + (uint32_t)(c - 'a' + 10);
		else
			return -1;
	}
	*out = v;
	return 0;
}

/* A string exactly as put_string writes it, or null where allowed. */
static int scan_string(struct scan *s, bool nullable)
{
	/* not secret: a literal of the audit line format */
	if (nullable && left(s) >= 4 && memcmp(s->p + s->pos, "null", 4) == 0) {
		s->pos += 4;
		return 0;
	}
	if (expect(s, "\"", nullable ? "expected a string or null" : "expected a string"))
		return -1;
	size_t start = s->pos;
	for (;;) {
		if (s->pos - start > AUDIT_FIELD_MAX)
			return fail(s, "string longer than the limit of 1024 bytes");
		if (!left(s))
			return fail(s, "unterminated string");
		unsigned char c = (unsigned char)s->p[s->pos];
		if (c == '"')
			break;
		if (c < 0x20 || c >= 0x7f)
			return fail(s, "byte that must be escaped inside a string");
		if (c != '\\') {
			s->pos++;
			continue;
		}
		if (left(s) >= 2 && (s->p[s->pos + 1] == '"' || s->p[s->pos + 1] == '\\')) {
			s->pos += 2;
			continue;
		}
		uint32_t v, lo;
		if (left(s) < 6 || s->p[s->pos + 1] != 'u' || hex_value(s->p + s->pos + 2, &v))
			return fail(s, "escape other than \\\", \\\\ or \\u with lower-case hex");
		if (v >= 0x20 && v < 0x7f)
			return fail(s, "printable ASCII written as a \\u escape");
		if (v >= 0xdc00 && v <= 0xdfff)
			return fail(s, "lone low surrogate escape");
		if (v >= 0xd800 && v <= 0xdbff) {
			if (left(s) < 12 || s->p[s->pos + 6] != '\\' || s->p[s->pos + 7] != 'u' ||
			    hex_value(s->p + s->pos + 8, &lo) || lo < 0xdc00 || lo > 0xdfff)
				return fail(s, "high surrogate escape without its low surrogate");
			s->pos += 12;
			continue;
		}
		s->pos += 6;
	}
	if (s->pos - start > AUDIT_FIELD_MAX)
		return fail(s, "string longer than the limit of 1024 bytes");
	if (!nullable && s->pos == start)
		return fail(s, "empty event");
	s->pos++;
	return 0;
}

/* Scans one line (without its '\n'). On failure returns -1 with *why and the
 * 1-based column; the hash is not checked here. */
static int scan_line(const char *p, size_t size, struct entry *e, const char **why, size_t *col)
{
	struct scan s = {.p = p, .size = size};
	if (size == 0) {
		*why = "empty line";
		*col = 1;
		return -1;
	}
	int rc = expect(&s, "{\"seq\":", "expected {\"seq\":");
	rc = rc || scan_u64(&s, &e->seq, "seq is not a positive decimal number");
	rc = rc || expect(&s, ",\"time\":\"", "expected ,\"time\":\"");
	rc = rc || scan_time(&s);
	rc = rc || expect(&s, "\",\"prev\":\"", "expected \",\"prev\":\"");
	rc = rc || scan_hex(&s, e->prev, "prev is not 64 lower-case hex digits");
	rc = rc || expect(&s, "\",\"event\":", "expected \",\"event\":");
	rc = rc || scan_string(&s, false);
	rc = rc || expect(&s, ",\"namespace\":", "expected ,\"namespace\":");
	rc = rc || scan_string(&s, true);
	rc = rc || expect(&s, ",\"client\":", "expected ,\"client\":");
	rc = rc || scan_string(&s, true);
	rc = rc || expect(&s, ",\"status\":", "expected ,\"status\":");
	rc = rc || scan_int(&s, "status is not a decimal int");
	rc = rc || expect(&s, ",\"detail\":", "expected ,\"detail\":");
	rc = rc || scan_string(&s, true);
	e->hashed_size = s.pos;
	rc = rc || expect(&s, AUDIT_HASH_MEMBER, "expected ,\"hash\":\"");
	rc = rc || scan_hex(&s, e->hash, "hash is not 64 lower-case hex digits");
	rc = rc || expect(&s, "\"}", "expected \"} after the hash");
	if (!rc && left(&s))
		rc = fail(&s, "bytes after the end of the entry");
	if (rc) {
		*why = s.why;
		*col = s.pos + 1;
		return -1;
	}
	if (e->seq == 0) {
		*why = "seq is 0; entries count from 1";
		*col = strlen("{\"seq\":") + 1;
		return -1;
	}
	return 0;
}

/* Parses a line and checks its own hash. */
static int check_line(const char *p, size_t size, struct entry *e, const char **why, size_t *col)
{
	if (scan_line(p, size, e, why, col))
		return -1;
	char hex[AUDIT_HEX_SIZE + 1];
	if (hash_hex(p, e->hashed_size, hex)) {
		*why = "cannot compute SHA-256";
		*col = 0;
		return -1;
	}
	/* not secret: audit entry hashes, which the log publishes */
	if (memcmp(hex, e->hash, AUDIT_HEX_SIZE) != 0) {
		*why = "entry changed: its hash does not match its content";
		*col = 0;
		return -1;
	}
	return 0;
}

/* ---- open ---- */

static int read_full(int fd, void *buf, size_t size, uint64_t off)
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
		if (read_full(fd, buf, n, off)) {
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

/* Reads the last line (at most AUDIT_LINE_MAX bytes from the end, which holds
 * any line the writer can produce) and continues the chain from it. */
static int load_tail(struct veil_audit *a, const char *path, uint64_t size, struct veil_diags *d)
{
	size_t window = size < AUDIT_LINE_MAX + 1 ? (size_t)size : AUDIT_LINE_MAX + 1;
	char *buf = malloc(window);
	size_t line_no = 0;
	uint64_t start = 0;
	int rc;
	if (!buf)
		return VEIL_ENOMEM;
	if ((rc = read_full(a->fd, buf, window, size - window)) != 0) {
		veil_diag(d, "%s: cannot read the end of the audit log: %s", path, strerror(-rc));
		rc = VEIL_EIO;
		goto out;
	}
	if (buf[window - 1] != '\n') {
		if ((rc = locate_last_line(a->fd, size, &line_no, &start)))
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
		if ((rc = locate_last_line(a->fd, size, &line_no, &start)))
			goto out;
		veil_diag(d,
			  "%s:%zu: the last line is longer than the limit of %d bytes, so it is "
			  "no audit entry; the log was not opened",
			  path, line_no, AUDIT_LINE_MAX);
		rc = VEIL_ELIMIT;
		goto out;
	}
	struct entry e;
	const char *why = NULL;
	size_t col = 0;
	if (check_line(buf + i, window - 1 - i, &e, &why, &col)) {
		if ((rc = locate_last_line(a->fd, size, &line_no, &start)))
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
	a->seq = e.seq;
	memcpy(a->prev, e.hash, sizeof(a->prev));
	rc = 0;
out:
	free(buf);
	return rc;
}

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
	memcpy(a->prev, zero_hash, sizeof(a->prev));
	if (a->size > 0 && (rc = load_tail(a, path, a->size, d)))
		goto out;
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
	char when[AUDIT_TIME_SIZE + 1], hash[AUDIT_HEX_SIZE + 1], num[32];
	int rc;
	pthread_mutex_lock(&a->lock);
	if (a->broken) {
		rc = VEIL_EIO;
		goto out;
	}
	if ((rc = format_time(when)))
		goto out;
	struct out o = {.p = a->line, .cap = sizeof(a->line)};
	snprintf(num, sizeof(num), "%" PRIu64, a->seq + 1);
	puts_(&o, "{\"seq\":");
	puts_(&o, num);
	puts_(&o, ",\"time\":\"");
	puts_(&o, when);
	puts_(&o, "\",\"prev\":\"");
	puts_(&o, a->prev);
	puts_(&o, "\",\"event\":");
	put_string(&o, ev->event);
	puts_(&o, ",\"namespace\":");
	put_string(&o, ev->namespace_);
	puts_(&o, ",\"client\":");
	put_string(&o, ev->client);
	snprintf(num, sizeof(num), "%d", ev->status);
	puts_(&o, ",\"status\":");
	puts_(&o, num);
	puts_(&o, ",\"detail\":");
	put_string(&o, ev->detail);
	size_t hashed = o.size;
	if ((rc = hash_hex(a->line, hashed, hash)))
		goto out;
	puts_(&o, AUDIT_HASH_MEMBER);
	puts_(&o, hash);
	puts_(&o, "\"}\n");
	if (o.overflow) { /* cannot happen: 4 fields of 1 KiB and ~300 bytes of keys */
		rc = VEIL_ELIMIT;
		goto out;
	}
	if (write_all(a->fd, a->line, o.size)) {
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
	a->size += o.size;
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

/* The entry that ends at byte head->size of fd (of file_size bytes) is
 * head's, unchanged; 0, or why in d. */
static int check_head(int fd, uint64_t file_size, const char *path,
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
	struct entry e;
	const char *why = NULL;
	size_t col = 0, i = window ? window - 1 : 0;
	if (!window || read_full(fd, buf, window, head->size - window) || buf[window - 1] != '\n')
		goto bad;
	while (i > 0 && buf[i - 1] != '\n')
		i--;
	if (check_line(buf + i, window - 1 - i, &e, &why, &col) || e.seq != head->seq ||
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
	int rc = check_head(fd, (uint64_t)st.st_size, path, head, d);
	close(fd);
	return rc;
}

int veil_audit_tail_head(const char *path, struct veil_audit_head *out, struct veil_diags *d)
{
	struct veil_audit *a = calloc(1, sizeof(*a));
	struct stat st;
	int rc = VEIL_EIO;
	if (!a)
		return VEIL_ENOMEM;
	a->fd = open(path, O_RDONLY | O_CLOEXEC);
	memcpy(a->prev, zero_hash, sizeof(a->prev));
	if (a->fd < 0 || fstat(a->fd, &st)) {
		veil_diag(d, "%s: %s", path, strerror(errno));
	} else if (!(rc = st.st_size > 0 ? load_tail(a, path, (uint64_t)st.st_size, d) : 0)) {
		out->seq = a->seq;
		out->size = (uint64_t)st.st_size;
		memcpy(out->hash, a->prev, sizeof(out->hash));
	}
	if (a->fd >= 0)
		close(a->fd);
	free(a);
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
	int rc = check_head(a->fd, a->size, "audit.log", stored, d);
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
	if (read_full(a->fd, buf, (size_t)left_size, stored->size)) {
		free(buf);
		return VEIL_EIO;
	}
	for (size_t off = 0; off < left_size;) {
		char *nl = memchr(buf + off, '\n', (size_t)left_size - off);
		size_t n = nl ? (size_t)(nl - (buf + off)) : (size_t)left_size - off;
		struct entry e;
		const char *why;
		size_t col;
		char ns[256];
		if (!check_line(buf + off, n, &e, &why, &col) && is_change_line(buf + off, n) &&
		    line_namespace(buf + off, n, ns)) {
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

static int head_message(const struct veil_audit_head *h, char *out, size_t cap)
{
	int n = snprintf(out, cap, "veil-audit-head-v1\n%" PRIu64 "\n%s\n", h->seq, h->hash);
	return n > 0 && (size_t)n < cap ? n : -1;
}

static const EVP_MD *head_md(EVP_PKEY *key)
{
	return EVP_PKEY_is_a(key, "ED25519") || EVP_PKEY_is_a(key, "ED448") ? NULL : EVP_sha256();
}

int veil_audit_head_sign(EVP_PKEY *key, const struct veil_audit_head *head, char *out, size_t cap)
{
	char msg[128];
	unsigned char sig[1024];
	size_t sig_size = sizeof(sig);
	int n = head_message(head, msg, sizeof(msg)), rc = VEIL_EIO;
	EVP_MD_CTX *m = EVP_MD_CTX_new();
	if (n > 0 && m && EVP_DigestSignInit(m, NULL, head_md(key), NULL, key) == 1 &&
	    EVP_DigestSign(m, sig, &sig_size, (const unsigned char *)msg, (size_t)n) == 1 &&
	    cap > 4 * ((sig_size + 2) / 3)) {
		EVP_EncodeBlock((unsigned char *)out, sig, (int)sig_size);
		rc = 0;
	}
	EVP_MD_CTX_free(m);
	return rc;
}

int veil_audit_head_verify(EVP_PKEY *key, const struct veil_audit_head *head, const char *sig)
{
	char msg[128];
	unsigned char raw[1024];
	size_t len = strlen(sig);
	int n = head_message(head, msg, sizeof(msg)), ok = 0;
	if (n < 0 || !len || len % 4 || len / 4 * 3 > sizeof(raw))
		return VEIL_EINVAL;
	int raw_size = EVP_DecodeBlock(raw, (const unsigned char *)sig, (int)len);
	if (raw_size < 0)
		return VEIL_EINVAL;
	raw_size -= (len > 0 && sig[len - 1] == '=') + (len > 1 && sig[len - 2] == '=');
	EVP_MD_CTX *m = EVP_MD_CTX_new();
	ok = m && EVP_DigestVerifyInit(m, NULL, head_md(key), NULL, key) == 1 &&
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
	memcpy(prev, zero_hash, sizeof(prev));
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
		struct entry e;
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
		if (check_line(buf + start, size, &e, &why, &col)) {
			if (col)
				veil_diag(d, "%s:%zu:%zu: not an audit entry: %s", path, line_no,
					  col, why);
			else
				veil_diag(d, "%s:%zu: %s", path, line_no, why);
			goto out;
		}
		uint64_t want = (uint64_t)line_no;
		if (e.seq > want) {
			veil_diag(
			    d, "%s:%zu: seq %" PRIu64 " where %" PRIu64 " was expected: %s", path,
			    line_no, e.seq, want,
			    "an entry before this line was removed (or entries were reordered)");
			goto out;
		}
		if (e.seq < want) {
			veil_diag(d, "%s:%zu: seq %" PRIu64 " where %" PRIu64 " was expected: %s",
				  path, line_no, e.seq, want,
				  "entries were reordered or an entry was repeated");
			goto out;
		}
		/* not secret: audit entry hashes, which the log publishes */
		if (memcmp(e.prev, prev, AUDIT_HEX_SIZE) != 0) {
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

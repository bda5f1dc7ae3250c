/* The audit log's line format (include/veil/audit.h): building a line and
 * checking one, pure functions over bytes; src/cas/audit_log.c writes the
 * lines to the CAS's file, src/audit/verify.c checks files of them.
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
 * longer ones are cut at a code point and end in AUDIT_TRUNCATED. */
#include <inttypes.h>
#include <limits.h>
#include <stddef.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "veil/audit.h"

#define AUDIT_FIELD_MAX 1024
#define AUDIT_TRUNCATED "...[truncated]"
#define AUDIT_HEX_SIZE (2 * VEIL_SHA256_SIZE)
#define AUDIT_HASH_MEMBER ",\"hash\":\""
#define AUDIT_TIME_SIZE (VEIL_AUDIT_TIME_SIZE - 1) /* YYYY-MM-DDTHH:MM:SS.mmmZ */
_Static_assert(AUDIT_HEX_SIZE + 1 == VEIL_AUDIT_HASH_HEX, "a hash is 64 hex digits");

const char veil_audit_zero_hash[VEIL_AUDIT_HASH_HEX] =
    "0000000000000000000000000000000000000000000000000000000000000000";

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

int veil_audit_time_now(char out[static VEIL_AUDIT_TIME_SIZE])
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
static int scan_line(const char *p, size_t size, struct veil_audit_entry *e, const char **why,
		     size_t *col)
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

int veil_audit_check_line(const char *p, size_t size, struct veil_audit_entry *e, const char **why,
			  size_t *col)
{
	if (scan_line(p, size, e, why, col))
		return VEIL_EINVAL;
	char hex[AUDIT_HEX_SIZE + 1];
	if (hash_hex(p, e->hashed_size, hex)) {
		*why = "cannot compute SHA-256";
		*col = 0;
		return VEIL_EINVAL;
	}
	/* not secret: audit entry hashes, which the log publishes */
	if (memcmp(hex, e->hash, AUDIT_HEX_SIZE) != 0) {
		*why = "entry changed: its hash does not match its content";
		*col = 0;
		return VEIL_EINVAL;
	}
	return 0;
}

enum veil_audit_link veil_audit_link(const struct veil_audit_entry *e, uint64_t seq,
				     const char prev[static VEIL_AUDIT_HASH_HEX])
{
	if (e->seq > seq)
		return VEIL_AUDIT_SEQ_SKIPPED;
	if (e->seq < seq)
		return VEIL_AUDIT_SEQ_REPEATED;
	/* not secret: audit entry hashes, which the log publishes */
	if (memcmp(e->prev, prev, AUDIT_HEX_SIZE) != 0)
		return VEIL_AUDIT_PREV_CHANGED;
	return VEIL_AUDIT_LINKED;
}

/* ---- building one line ---- */

static bool is_hash_hex(const char *s)
{
	for (size_t i = 0; i < AUDIT_HEX_SIZE; i++)
		if (!is_digit(s[i]) && !(s[i] >= 'a' && s[i] <= 'f'))
			return false;
	return s[AUDIT_HEX_SIZE] == '\0';
}

int veil_audit_format_line(const char prev[static VEIL_AUDIT_HASH_HEX], uint64_t seq,
			   const char *time, const struct veil_audit_event *ev,
			   char line[static VEIL_AUDIT_LINE_MAX], size_t *size,
			   char hash[static VEIL_AUDIT_HASH_HEX])
{
	if (!ev || !ev->event || !ev->event[0] || !time || strlen(time) != AUDIT_TIME_SIZE ||
	    !is_hash_hex(prev) || seq == 0)
		return VEIL_EINVAL;
	char num[32], digest[AUDIT_HEX_SIZE + 1];
	struct out o = {.p = line, .cap = VEIL_AUDIT_LINE_MAX};
	snprintf(num, sizeof(num), "%" PRIu64, seq);
	puts_(&o, "{\"seq\":");
	puts_(&o, num);
	puts_(&o, ",\"time\":\"");
	puts_(&o, time);
	puts_(&o, "\",\"prev\":\"");
	puts_(&o, prev);
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
	int rc = hash_hex(line, o.size, digest);
	if (rc)
		return rc;
	puts_(&o, AUDIT_HASH_MEMBER);
	puts_(&o, digest);
	puts_(&o, "\"}\n");
	if (o.overflow) /* cannot happen: 4 fields of 1 KiB and ~300 bytes of keys */
		return VEIL_ELIMIT;
	*size = o.size;
	memcpy(hash, digest, sizeof(digest));
	return 0;
}

/* ---- checkpoint details ---- */

static bool is_b64(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || is_digit(c) || c == '+' ||
	       c == '/' || c == '=';
}

int veil_audit_checkpoint_detail(const struct veil_audit_checkpoint *cp, char *out, size_t cap)
{
	size_t n = strlen(cp->signature);
	if (!is_hash_hex(cp->head.hash) || !is_hash_hex(cp->key_hash) || !n ||
	    n >= VEIL_AUDIT_SIG_MAX)
		return VEIL_EINVAL;
	for (size_t i = 0; i < n; i++)
		if (!is_b64(cp->signature[i]))
			return VEIL_EINVAL;
	int w = snprintf(out, cap, "seq %" PRIu64 " hash %s key %s signature %s", cp->head.seq,
			 cp->head.hash, cp->key_hash, cp->signature);
	return w > 0 && (size_t)w < cap ? w : VEIL_ELIMIT;
}

/* lit at s (bounded by end): s moves past it */
static bool take_literal(const char **s, const char *end, const char *lit)
{
	size_t n = strlen(lit);
	/* not secret: a literal of the audit line format */
	if ((size_t)(end - *s) < n || memcmp(*s, lit, n) != 0)
		return false;
	*s += n;
	return true;
}

/* 64 lower-case hex digits at s into out */
static bool take_hex(const char **s, const char *end, char out[static VEIL_AUDIT_HASH_HEX])
{
	if (end - *s < AUDIT_HEX_SIZE)
		return false;
	for (size_t i = 0; i < AUDIT_HEX_SIZE; i++) {
		char c = (*s)[i];
		if (!is_digit(c) && !(c >= 'a' && c <= 'f'))
			return false;
		out[i] = c;
	}
	out[AUDIT_HEX_SIZE] = '\0';
	*s += AUDIT_HEX_SIZE;
	return true;
}

int veil_audit_parse_checkpoint(const char *line, size_t size, struct veil_audit_checkpoint *out)
{
	/* the first ,"event": is the entry's own: seq, time and prev before it
	 * hold no quote; a checkpoint's namespace and client are null, so its
	 * detail follows at once */
	const char *end = line + size, *p = line;
	while (p < end && !take_literal(&p, end, ",\"event\":"))
		p++;
	if (p >= end || !take_literal(&p, end, "\"checkpoint\","))
		return VEIL_ENOENT;
	struct veil_audit_checkpoint cp = {.head.seq = 0};
	size_t digits = 0;
	if (!take_literal(&p, end,
			  "\"namespace\":null,\"client\":null,\"status\":0,\"detail\":\"seq "))
		return VEIL_EINVAL;
	while (p < end && is_digit(*p) && digits < 20) {
		if (cp.head.seq > (UINT64_MAX - (uint64_t)(*p - '0')) / 10)
			return VEIL_EINVAL;
		cp.head.seq = cp.head.seq * 10 + (uint64_t)(*p++ - '0');
		digits++;
	}
	if (!digits || (digits > 1 && p[-(ptrdiff_t)digits] == '0') ||
	    !take_literal(&p, end, " hash ") || !take_hex(&p, end, cp.head.hash) ||
	    !take_literal(&p, end, " key ") || !take_hex(&p, end, cp.key_hash) ||
	    !take_literal(&p, end, " signature "))
		return VEIL_EINVAL;
	size_t n = 0;
	while (p + n < end && is_b64(p[n]) && n < VEIL_AUDIT_SIG_MAX - 1)
		n++;
	memcpy(cp.signature, p, n);
	cp.signature[n] = '\0';
	p += n;
	if (!n || !take_literal(&p, end, "\"" AUDIT_HASH_MEMBER))
		return VEIL_EINVAL;
	*out = cp;
	return 0;
}

/* ---- the head's signed message ---- */

int veil_audit_head_message(const struct veil_audit_head *h, char *out, size_t cap)
{
	int n = snprintf(out, cap, "veil-audit-head-v1\n%" PRIu64 "\n%s\n", h->seq, h->hash);
	return n > 0 && (size_t)n < cap ? n : -1;
}

const EVP_MD *veil_audit_head_md(EVP_PKEY *key)
{
	return EVP_PKEY_is_a(key, "ED25519") || EVP_PKEY_is_a(key, "ED448") ? NULL : EVP_sha256();
}

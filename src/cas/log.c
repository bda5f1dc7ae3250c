/* The CAS request log: one line a request, logfmt or JSON lines.
 *
 * logfmt:  time=2026-12-01T22:30:39.123Z level=info route=policy_get method=GET
 *          path=/v1/policies/app status=200 ms=0.412 client=<64 hex>|- [error="..."]
 * json:    {"time":"...","level":"info","route":"policy_get","method":"GET",
 *          "path":"/v1/policies/app","status":200,"ms":0.412,"client":"<hex>"|null
 *          [,"error":"..."]}
 * (each one line in the file). Levels: a 5xx is error, a 4xx warn, probes
 * (/healthz, /readyz, /metrics) that succeed are debug, the rest info.
 *
 * Strings a client chose (the path) are escaped the JSON way in both formats
 * (\", \\, \u00XX below 0x20 and from 0x7f) and cut at LOG_FIELD_MAX bytes, so
 * a line cannot be split or forged. The log holds names, hashes, statuses and
 * the reasons of refusals (the audit log's), never a value of a policy.
 *
 * Each line is one write() on an O_APPEND descriptor: lines of concurrent
 * threads do not interleave. SIGHUP reopens the file by dup2() over the
 * same descriptor, so no thread ever writes to a closed one. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cas.h"

#define LOG_LINE_MAX 4096
#define LOG_FIELD_MAX 512

static const char *const level_names[] = {"debug", "info", "warn", "error"};

int cas_log_parse_level(const char *s, enum cas_log_level *out)
{
	for (size_t i = 0; i < VEIL_ARRAY_LEN(level_names); i++)
		if (!strcmp(s, level_names[i])) {
			*out = (enum cas_log_level)i;
			return 0;
		}
	return VEIL_EINVAL;
}

int cas_log_open(struct cas_log *l, struct veil_diags *d)
{
	if (!l->path) {
		l->fd = STDERR_FILENO;
		return 0;
	}
	l->fd = open(l->path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
	if (l->fd < 0) {
		veil_diag(d, "--log-file %s: %s", l->path, strerror(errno));
		return VEIL_EIO;
	}
	return 0;
}

int cas_log_reopen(struct cas_log *l, struct veil_diags *d)
{
	if (!l->path)
		return 0;
	int fd = open(l->path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0) {
		veil_diag(d, "cannot reopen --log-file %s: %s (still writing to the old file)",
			  l->path, strerror(errno));
		return VEIL_EIO;
	}
	int rc = dup3(fd, l->fd, O_CLOEXEC) < 0 ? VEIL_EIO : 0;
	if (rc)
		veil_diag(d, "cannot reopen --log-file %s: %s", l->path, strerror(errno));
	close(fd);
	return rc;
}

void cas_log_close(struct cas_log *l)
{
	if (l->path && l->fd >= 0)
		close(l->fd);
	l->fd = -1;
}

/* Bounded line writer; a line too long is cut, never overflowed. */
struct line {
	char p[LOG_LINE_MAX];
	size_t size;
};

static void put(struct line *o, const char *s, size_t n)
{
	if (n > sizeof(o->p) - 1 - o->size) /* room for the final '\n' */
		n = sizeof(o->p) - 1 - o->size;
	memcpy(o->p + o->size, s, n);
	o->size += n;
}

static void putf(struct line *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void putf(struct line *o, const char *fmt, ...)
{
	char tmp[128];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	if (n > 0)
		put(o, tmp, (size_t)n < sizeof(tmp) ? (size_t)n : sizeof(tmp) - 1);
}

static void put_escaped(struct line *o, const char *s)
{
	put(o, "\"", 1);
	for (size_t i = 0; s[i] && i < LOG_FIELD_MAX; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '"' || c == '\\') {
			char e[2] = {'\\', (char)c};
			put(o, e, 2);
		} else if (c < 0x20 || c >= 0x7f) {
			putf(o, "\\u%04x", c);
		} else {
			put(o, (const char *)&c, 1);
		}
	}
	put(o, "\"", 1);
}

static void put_field(struct line *o, bool json, const char *key, const char *value, bool quoted)
{
	if (json)
		putf(o, "%s\"%s\":", o->size > 1 ? "," : "", key);
	else
		putf(o, "%s%s=", o->size ? " " : "", key);
	if (!value)
		put(o, json ? "null" : "-", json ? 4 : 1);
	else if (quoted)
		put_escaped(o, value);
	else
		put(o, value, strlen(value));
}

void cas_log_request(struct cas_log *l, const struct cas_log_entry *e)
{
	if (e->level < l->level)
		return;
	bool json = l->format == CAS_LOG_JSON;
	struct line o = {.size = 0};
	struct timespec now;
	struct tm tm;
	char when[32], num[32];
	clock_gettime(CLOCK_REALTIME, &now);
	gmtime_r(&now.tv_sec, &tm);
	size_t n = strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(when + n, sizeof(when) - n, ".%03ldZ", now.tv_nsec / 1000000);
	if (json)
		put(&o, "{", 1);
	put_field(&o, json, "time", when, json);
	put_field(&o, json, "level", level_names[e->level], json);
	put_field(&o, json, "route", e->route, json);
	put_field(&o, json, "method", e->method, json);
	put_field(&o, json, "path", e->path ? e->path : "", true);
	snprintf(num, sizeof(num), "%d", e->status);
	put_field(&o, json, "status", num, false);
	snprintf(num, sizeof(num), "%.3f", e->ms);
	put_field(&o, json, "ms", num, false);
	put_field(&o, json, "client", e->client, json);
	if (e->error && e->error[0])
		put_field(&o, json, "error", e->error, true);
	if (json)
		put(&o, "}", 1);
	o.p[o.size++] = '\n'; /* put() kept a byte for it */
	ssize_t w = write(l->fd, o.p, o.size);
	(void)w; /* a full disk must not stop the CAS; /metrics still counts */
}

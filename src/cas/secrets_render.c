/* Placeholder rendering in the CAS (veil_secret_render): replaces each
 * $$SCONE::name[:suffix]$$ of a template with the secret's text, hex,
 * base64 or PEM, as the secret schema says a suffix renders a kind
 * (veil_placeholder_render_as). The output grows in secure memory up to
 * RENDER_MAX; messages quote placeholders, never values. */
#include <stdint.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "veil/common.h"
#include "veil/secret_schema.h"

#include "secrets_internal.h"

/* a rendered template holds at most RENDER_MAX bytes */
#define RENDER_MAX ((size_t)64 << 20)

/* Growable string in secure memory, with a hard maximum. */
struct sbuf {
	char *p;
	size_t len, cap, max;
};

static int sb_reserve(struct sbuf *b, size_t n)
{
	if (n > b->max || b->len > b->max - n)
		return VEIL_ELIMIT;
	size_t need = b->len + n + 1;
	if (need <= b->cap)
		return 0;
	size_t cap = b->cap ? b->cap : 256;
	while (cap < need)
		cap = cap > SIZE_MAX / 2 ? need : cap * 2;
	char *p = veil_secure_alloc(cap);
	if (!p)
		return VEIL_ENOMEM;
	if (b->len)
		memcpy(p, b->p, b->len);
	p[b->len] = '\0';
	veil_secure_free(b->p, 0);
	b->p = p;
	b->cap = cap;
	return 0;
}

static int sb_add(struct sbuf *b, const void *p, size_t n)
{
	int rc = sb_reserve(b, n);
	if (rc)
		return rc;
	if (n)
		memcpy(b->p + b->len, p, n);
	b->len += n;
	b->p[b->len] = '\0';
	return 0;
}

static void sb_free(struct sbuf *b)
{
	veil_secure_free(b->p, 0);
	b->p = NULL;
	b->len = b->cap = 0;
}

struct render_ctx {
	const char *in;
	const struct veil_secret_set *set;
	struct sbuf out;
	size_t pos; /* end of the last placeholder seen */
	struct veil_diags *d;
	int rc;
};

static int sb_hex(struct sbuf *b, const uint8_t *p, size_t n)
{
	if (n > RENDER_MAX / 2)
		return VEIL_ELIMIT;
	int rc = sb_reserve(b, 2 * n);
	if (rc)
		return rc;
	if (n)
		veil_hex(p, n, b->p + b->len);
	b->len += 2 * n;
	b->p[b->len] = '\0';
	return 0;
}

static int sb_base64(struct sbuf *b, const uint8_t *p, size_t n, int url)
{
	enum { CHUNK = 3 * 256 }; /* a multiple of 3: padding only at the end */
	unsigned char tmp[4 * (CHUNK / 3) + 1];
	int rc = 0;
	while (n && !rc) {
		size_t c = n < CHUNK ? n : CHUNK;
		int len = EVP_EncodeBlock(tmp, p, (int)c);
		if (url) {
			for (int i = 0; i < len; i++)
				tmp[i] = tmp[i] == '+' ? '-' : tmp[i] == '/' ? '_' : tmp[i];
			while (len > 0 && tmp[len - 1] == '=')
				len--;
		}
		rc = len < 0 ? VEIL_EIO : sb_add(b, tmp, (size_t)len);
		p += c;
		n -= c;
	}
	OPENSSL_cleanse(tmp, sizeof(tmp));
	return rc;
}

static const char *const render_field_names[] = {[VEIL_RENDER_KEY] = "private key",
						 [VEIL_RENDER_PUB] = "public key",
						 [VEIL_RENDER_CERT] = "certificate",
						 [VEIL_RENDER_CHAIN] = "certificate chain"};

/* SCONE's :chain: the certificates of the issuers, the direct issuer first,
 * up to the root, without the certificate itself; a self-signed certificate
 * is its own issuer (SCONE's flask/redis tutorial hands out
 * $$SCONE::redis_ca_cert.chain$$ as the CA file). chain_pem, as stored, is
 * the certificate followed by its issuers. NULL if it is not. */
static const char *issuer_chain(const struct veil_secret_value *v)
{
	size_t n = v->cert_pem ? strlen(v->cert_pem) : 0;
	if (!v->chain_pem || !n || strncmp(v->chain_pem, v->cert_pem, n))
		return NULL;
	return v->chain_pem[n] ? v->chain_pem + n : v->cert_pem;
}

static int render_one(const struct veil_placeholder *ph, void *arg)
{
	struct render_ctx *r = arg;
	char fits[128];
	int plen = (int)(ph->end - ph->start);
	const char *ptext = r->in + ph->start;
	int rc = 0;

	if ((rc = sb_add(&r->out, r->in + r->pos, ph->start - r->pos)))
		return rc;
	r->pos = ph->end;
	const struct veil_secret_value *v = veil_secret_find(r->set, ph->name);
	if (!v) {
		veil_diag(r->d, "secret placeholder '%.*s': unknown secret '%s'", plen, ptext,
			  ph->name);
		r->rc = VEIL_EINVAL;
		return 0;
	}
	enum veil_render_as as = veil_placeholder_render_as(veil_secret_kind_find(v->kind),
							    ph->suffix, fits, sizeof(fits));
	if (as == VEIL_RENDER_NONE) {
		veil_diag(r->d,
			  "secret placeholder '%.*s': suffix '%s' does not fit secret '%s' of "
			  "kind '%s' (it fits %s)",
			  plen, ptext, *ph->suffix ? ph->suffix : "(none)", ph->name,
			  v->kind ? v->kind : "(none)", fits);
		r->rc = VEIL_EINVAL;
		return 0;
	}
	const char *pem = as == VEIL_RENDER_KEY     ? v->key_pem
			  : as == VEIL_RENDER_PUB   ? v->pub_pem
			  : as == VEIL_RENDER_CERT  ? v->cert_pem
			  : as == VEIL_RENDER_CHAIN ? issuer_chain(v)
						    : NULL;
	if (as >= VEIL_RENDER_KEY && !pem) {
		veil_diag(r->d, "secret placeholder '%.*s': secret '%s' has no %s", plen, ptext,
			  ph->name, render_field_names[as]);
		r->rc = VEIL_EINVAL;
		return 0;
	}
	if (as < VEIL_RENDER_KEY && !v->bytes) {
		veil_diag(r->d, "secret placeholder '%.*s': secret '%s' has no value", plen, ptext,
			  ph->name);
		r->rc = VEIL_EINVAL;
		return 0;
	}
	switch (as) {
	case VEIL_RENDER_TEXT:
		rc = sb_add(&r->out, v->bytes, v->size);
		break;
	case VEIL_RENDER_HEX:
		rc = sb_hex(&r->out, v->bytes, v->size);
		break;
	case VEIL_RENDER_BASE64:
	case VEIL_RENDER_BASE64URL:
		rc = sb_base64(&r->out, v->bytes, v->size, as == VEIL_RENDER_BASE64URL);
		break;
	default:
		rc = sb_add(&r->out, pem, strlen(pem));
		break;
	}
	return rc;
}

/* For a malformed placeholder: its text when it is short and made only of
 * name/suffix characters (so it quotes nothing but the placeholder). */
static void describe_bad_placeholder(const struct render_ctx *r, const char *why)
{
	const char *p = strstr(r->in + r->pos, "$$SCONE::");
	const char *close = p ? strstr(p + 9, "$$") : NULL;
	size_t off = p ? (size_t)(p - r->in) : r->pos;
	int quotable = close && close - p <= 160;
	for (const char *q = p ? p + 9 : NULL; quotable && q < close; q++)
		quotable = (*q >= 'a' && *q <= 'z') || (*q >= 'A' && *q <= 'Z') ||
			   (*q >= '0' && *q <= '9') || (*q && strchr("_-.:", *q));
	if (quotable)
		veil_diag(r->d, "secret placeholder '%.*s' at byte %zu: %s", (int)(close + 2 - p),
			  p, off, why);
	else
		veil_diag(r->d, "secret placeholder at byte %zu: %s", off, why);
}

int veil_secret_render(const char *in, const struct veil_secret_set *set, char **out,
		       struct veil_diags *d)
{
	struct render_ctx r = {.in = in, .set = set, .out = {.max = RENDER_MAX}, .d = d};
	const char *why = NULL;
	int rc = VEIL_EINVAL;
	if (!in || !out) {
		veil_diag(d, "veil_secret_render: missing input or output");
		goto out;
	}
	rc = veil_placeholders(in, render_one, &r, &why);
	if (rc == VEIL_EINVAL && why) {
		describe_bad_placeholder(&r, why);
		goto out;
	}
	if (!rc)
		rc = r.rc;
	if (!rc)
		rc = sb_add(&r.out, in + r.pos, strlen(in + r.pos));
	if (rc == VEIL_ELIMIT)
		veil_diag(d, "rendered text longer than %zu bytes", RENDER_MAX);
	if (rc == VEIL_ENOMEM)
		veil_diag(d, "out of memory while rendering secrets");
	if (rc)
		goto out;
	*out = r.out.p;
	r.out.p = NULL;
out:
	sb_free(&r.out);
	return rc;
}

/* The serialised form of a CAS secret set, for encrypted storage (the
 * namespace payload, src/cas/render.h):
 *
 *   "VSEC" | version (1 byte) | count (u32 BE) | count x value
 *   value = name kind bytes key_pem pub_pem cert_pem chain_pem
 *   field = length (u32 BE; 0xffffffff: absent) | bytes
 * Strings carry no NUL. The kind decides which fields are present (its
 * outputs in the secret schema, veil/secret_schema.h). Nothing may follow
 * the last value. The parser reads through the bounded cursor and refuses
 * anything else, never guesses. */

#include <stdint.h>
#include <string.h>

#include "veil/common.h"
#include "veil/cursor.h"
#include "veil/secret_schema.h"

#include "secrets_internal.h"

#define SER_MAGIC "VSEC"
#define SER_VERSION 1
#define SER_ABSENT 0xffffffffu
#define SER_NFIELDS 7

static void value_fields(const struct veil_secret_value *v, const void *p[SER_NFIELDS],
			 size_t n[SER_NFIELDS])
{
	const char *s[SER_NFIELDS] = {v->name,    v->kind,     NULL,        v->key_pem,
				      v->pub_pem, v->cert_pem, v->chain_pem};
	for (size_t i = 0; i < SER_NFIELDS; i++) {
		p[i] = s[i];
		n[i] = s[i] ? strlen(s[i]) : 0;
	}
	p[2] = v->bytes;
	n[2] = v->bytes ? v->size : 0;
}

static uint8_t *put_u32(uint8_t *w, uint32_t x)
{
	w[0] = (uint8_t)(x >> 24);
	w[1] = (uint8_t)(x >> 16);
	w[2] = (uint8_t)(x >> 8);
	w[3] = (uint8_t)x;
	return w + 4;
}

int veil_secret_set_serialize(const struct veil_secret_set *set, uint8_t **buf, size_t *size)
{
	const void *p[SER_NFIELDS];
	size_t n[SER_NFIELDS];
	if (!set || !buf || !size || (set->count && !set->v))
		return VEIL_EINVAL;
	if (set->count > SECRETS_MAX + 1)
		return VEIL_ELIMIT;
	size_t total = 4 + 1 + 4;
	for (size_t i = 0; i < set->count; i++) {
		if (!set->v[i].name || !set->v[i].kind || (!set->v[i].bytes && set->v[i].size))
			return VEIL_EINVAL;
		value_fields(&set->v[i], p, n);
		for (size_t f = 0; f < SER_NFIELDS; f++) {
			if (n[f] > FIELD_MAX)
				return VEIL_ELIMIT;
			total += 4 + n[f]; /* bounded: 4097 * 7 * (16 MiB + 4) */
		}
	}
	uint8_t *out = veil_secure_alloc(total);
	if (!out)
		return VEIL_ENOMEM;
	uint8_t *w = out;
	memcpy(w, SER_MAGIC, 4);
	w += 4;
	*w++ = SER_VERSION;
	w = put_u32(w, (uint32_t)set->count);
	for (size_t i = 0; i < set->count; i++) {
		value_fields(&set->v[i], p, n);
		for (size_t f = 0; f < SER_NFIELDS; f++) {
			w = put_u32(w, p[f] ? (uint32_t)n[f] : SER_ABSENT);
			if (p[f] && n[f]) {
				memcpy(w, p[f], n[f]);
				w += n[f];
			}
		}
	}
	*buf = out;
	*size = total;
	return 0;
}

/* A field into secure memory (NUL-terminated); *out NULL when absent. */
static int cur_field(struct veil_cursor *c, int is_string, uint8_t **out, size_t *size)
{
	uint32_t n;
	const uint8_t *src;
	*out = NULL;
	*size = 0;
	if (!veil_cur_be32(c, &n))
		return VEIL_EINVAL;
	if (n == SER_ABSENT)
		return 0;
	if (n > FIELD_MAX || !veil_cur_view(c, n, &src) || (is_string && memchr(src, 0, n)))
		return VEIL_EINVAL;
	uint8_t *p = veil_secure_alloc((size_t)n + 1);
	if (!p)
		return VEIL_ENOMEM;
	if (n)
		memcpy(p, src, n);
	p[n] = '\0';
	*out = p;
	*size = n;
	return 0;
}

static int value_read(struct veil_cursor *c, struct veil_secret_value *v)
{
	static const unsigned bit[SER_NFIELDS] = {
	    0, 0, VEIL_SOUT_BYTES, VEIL_SOUT_KEY, VEIL_SOUT_PUB, VEIL_SOUT_CERT, VEIL_SOUT_CHAIN};
	uint8_t *f[SER_NFIELDS] = {NULL};
	size_t n[SER_NFIELDS] = {0};
	int rc = 0;
	for (size_t i = 0; i < SER_NFIELDS && !rc; i++)
		rc = cur_field(c, i != 2, &f[i], &n[i]);
	/* owned by v from here on, so that the caller frees a half-read value */
	v->name = (char *)f[0];
	v->kind = (char *)f[1];
	v->bytes = f[2];
	v->size = n[2];
	v->key_pem = (char *)f[3];
	v->pub_pem = (char *)f[4];
	v->cert_pem = (char *)f[5];
	v->chain_pem = (char *)f[6];
	if (rc)
		return rc;
	const struct veil_secret_kind_info *ki = veil_secret_kind_find(v->kind);
	if (!v->name || !veil_valid_secret_name(v->name) || !ki)
		return VEIL_EINVAL;
	for (size_t i = 2; i < SER_NFIELDS; i++)
		if (!f[i] != !(ki->outputs & bit[i]))
			return VEIL_EINVAL;
	return 0;
}

int veil_secret_set_deserialize(const uint8_t *buf, size_t size, struct veil_secret_set *out)
{
	struct veil_cursor c;
	struct veil_secret_value *v = NULL;
	uint32_t count = 0;
	size_t got = 0;
	int rc = VEIL_EINVAL;
	static const uint8_t version = SER_VERSION;
	veil_cur_init(&c, buf, size);
	if (!out || !veil_cur_expect(&c, SER_MAGIC, 4) || !veil_cur_expect(&c, &version, 1) ||
	    !veil_cur_be32(&c, &count) || count > SECRETS_MAX + 1 ||
	    count > veil_cur_left(&c) / (4 * SER_NFIELDS))
		goto out;
	rc = VEIL_ENOMEM;
	if (!(v = veil_secure_alloc(((size_t)count + 1) * sizeof(*v))))
		goto out;
	for (; got < count; got++) {
		/* count first: a half-read value is freed with the others */
		if ((rc = value_read(&c, &v[got]))) {
			got++;
			goto out;
		}
		for (size_t k = 0; k < got; k++)
			if (!strcmp(v[k].name, v[got].name)) {
				rc = VEIL_EINVAL;
				got++;
				goto out;
			}
	}
	rc = VEIL_EINVAL;
	if (!veil_cur_done(&c))
		goto out;
	out->v = v;
	out->count = count;
	v = NULL;
	rc = 0;
out:
	secret_values_free(v, got);
	return rc;
}

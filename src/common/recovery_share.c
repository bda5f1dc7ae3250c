/* Recovery share files and opened shares (include/veil/recovery_share.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "veil/hpke.h"
#include "veil/recovery_share.h"
#include "veil/secure.h"
#include "veil/shamir.h"

#define FORMAT_NAME "veil-recovery-share"
#define FORMAT_VERSION 1
#define COMMITMENT_LABEL "veil-recovery-commitment-v1" /* then its NUL */
#define INFO_LABEL "veil-recovery-share-v1"            /* then its NUL */
#define HASH_HEX_LEN (2 * VEIL_SHA256_SIZE)

static void say(char *why, size_t why_size, const char *msg)
{
	if (why && why_size)
		snprintf(why, why_size, "%s", msg);
}

int veil_recovery_meta_valid(const struct veil_recovery_meta *m)
{
	return veil_is_sha256_hex(m->cas_key_hash) && m->threshold >= 2 &&
	       m->threshold <= m->count && m->count <= VEIL_SHAMIR_MAX_SHARES && m->x >= 1 &&
	       m->x <= m->count;
}

int veil_recovery_commitment(const uint8_t master[static VEIL_RECOVERY_SECRET_SIZE],
			     const char *cas_key_hash, uint8_t out[static VEIL_SHA256_SIZE])
{
	static const char label[] = COMMITMENT_LABEL; /* with its NUL */
	uint8_t msg[sizeof(label) + HASH_HEX_LEN], mac[VEIL_SHA256_SIZE];
	size_t mac_size = 0;
	if (strlen(cas_key_hash) != HASH_HEX_LEN)
		return VEIL_EINVAL;
	memcpy(msg, label, sizeof(label));
	memcpy(msg + sizeof(label), cas_key_hash, HASH_HEX_LEN);
	int rc = EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, master, VEIL_RECOVERY_SECRET_SIZE,
			   msg, sizeof(msg), mac, sizeof(mac), &mac_size) &&
			 mac_size == sizeof(mac)
		     ? veil_sha256(mac, sizeof(mac), out)
		     : VEIL_EIO;
	OPENSSL_cleanse(mac, sizeof(mac));
	return rc;
}

/* info = label 0x00 cas_key_hash 0x00 K N x */
static size_t share_info(const struct veil_recovery_meta *m,
			 uint8_t out[static sizeof(INFO_LABEL) + HASH_HEX_LEN + 4])
{
	size_t n = 0;
	memcpy(out, INFO_LABEL, sizeof(INFO_LABEL));
	n += sizeof(INFO_LABEL);
	memcpy(out + n, m->cas_key_hash, HASH_HEX_LEN);
	n += HASH_HEX_LEN;
	out[n++] = 0;
	out[n++] = (uint8_t)m->threshold;
	out[n++] = (uint8_t)m->count;
	out[n++] = (uint8_t)m->x;
	return n;
}

int veil_recovery_share_seal(EVP_PKEY *holder, const struct veil_recovery_meta *meta,
			     const uint8_t share[static VEIL_RECOVERY_SECRET_SIZE], char **json,
			     size_t *json_size)
{
	uint8_t info[sizeof(INFO_LABEL) + HASH_HEX_LEN + 4], enc[VEIL_HPKE_ENC_SIZE], *ct = NULL;
	size_t ct_len = 0;
	if (!veil_recovery_meta_valid(meta) || !veil_hpke_key_is_p256(holder))
		return VEIL_EINVAL;
	size_t info_len = share_info(meta, info);
	int rc = veil_hpke_seal(holder, info, info_len, meta->commitment, VEIL_SHA256_SIZE, share,
				VEIL_RECOVERY_SECRET_SIZE, enc, &ct, &ct_len);
	if (!rc && ct_len != VEIL_RECOVERY_CT_SIZE)
		rc = VEIL_EIO;
	char commitment[HASH_HEX_LEN + 1], enc_hex[2 * VEIL_HPKE_ENC_SIZE + 1],
	    ct_hex[2 * VEIL_RECOVERY_CT_SIZE + 1];
	char *out = NULL;
	int n = 0;
	if (!rc) {
		veil_hex(meta->commitment, VEIL_SHA256_SIZE, commitment);
		veil_hex(enc, sizeof(enc), enc_hex);
		veil_hex(ct, ct_len, ct_hex);
		size_t cap = 512 + sizeof(enc_hex) + sizeof(ct_hex);
		if (!(out = malloc(cap)))
			rc = VEIL_ENOMEM;
		else
			n = snprintf(out, cap,
				     "{\"format\":\"" FORMAT_NAME "\",\"version\":%d,"
				     "\"cas_key_hash\":\"%s\",\"threshold\":%u,\"shares\":%u,"
				     "\"x\":%u,\"commitment\":\"%s\",\"enc\":\"%s\","
				     "\"ciphertext\":\"%s\"}\n",
				     FORMAT_VERSION, meta->cas_key_hash, meta->threshold,
				     meta->count, meta->x, commitment, enc_hex, ct_hex);
		if (out && (n < 0 || (size_t)n >= cap))
			rc = VEIL_EIO;
	}
	free(ct);
	if (rc) {
		free(out);
		return rc;
	}
	*json = out;
	*json_size = (size_t)n;
	return 0;
}

/* a member that is a string of exactly 2 * size hex digits */
static int hex_member(json_t *doc, const char *name, uint8_t *out, size_t size, char *why,
		      size_t why_size)
{
	json_t *v = json_object_get(doc, name);
	const char *s = json_is_string(v) ? json_string_value(v) : NULL;
	if (!s || json_string_length(v) != 2 * size || veil_unhex(s, out, size)) {
		char msg[120];
		snprintf(msg, sizeof(msg), "\"%s\" is not %zu lower-case hex digits", name,
			 2 * size);
		say(why, why_size, msg);
		return VEIL_EINVAL;
	}
	return 0;
}

static int count_member(json_t *doc, const char *name, unsigned *out, char *why, size_t why_size)
{
	json_t *v = json_object_get(doc, name);
	json_int_t n = json_is_integer(v) ? json_integer_value(v) : -1;
	if (n < 1 || n > VEIL_SHAMIR_MAX_SHARES) {
		char msg[120];
		snprintf(msg, sizeof(msg), "\"%s\" is not a whole number from 1 to %d", name,
			 VEIL_SHAMIR_MAX_SHARES);
		say(why, why_size, msg);
		return VEIL_EINVAL;
	}
	*out = (unsigned)n;
	return 0;
}

int veil_recovery_share_parse(const char *text, size_t size, struct veil_recovery_share_file *out,
			      char *why, size_t why_size)
{
	static const char *const members[] = {"format",     "version", "cas_key_hash",
					      "threshold",  "shares",  "x",
					      "commitment", "enc",     "ciphertext"};
	struct veil_recovery_share_file f;
	json_error_t err;
	int rc = VEIL_EINVAL;
	memset(&f, 0, sizeof(f));
	if (size > VEIL_RECOVERY_FILE_MAX) {
		say(why, why_size, "larger than a share file");
		return VEIL_ELIMIT;
	}
	json_t *doc = json_loadb(text, size, JSON_REJECT_DUPLICATES, &err);
	if (!json_is_object(doc)) {
		say(why, why_size, "not a JSON object");
		goto out;
	}
	json_t *format = json_object_get(doc, "format");
	if (!json_is_string(format) || strcmp(json_string_value(format), FORMAT_NAME) ||
	    json_string_length(format) != strlen(FORMAT_NAME)) {
		say(why, why_size, "not a veil recovery share (\"format\")");
		goto out;
	}
	json_t *version = json_object_get(doc, "version");
	if (!json_is_integer(version) || json_integer_value(version) != FORMAT_VERSION) {
		say(why, why_size, "a share file version other than 1");
		goto out;
	}
	size_t known = 0;
	for (size_t i = 0; i < VEIL_ARRAY_LEN(members); i++)
		known += json_object_get(doc, members[i]) != NULL;
	if (known != VEIL_ARRAY_LEN(members) || json_object_size(doc) != known) {
		say(why, why_size,
		    "members missing or unknown (format, version, cas_key_hash, threshold, "
		    "shares, x, commitment, enc, ciphertext)");
		goto out;
	}
	json_t *hash = json_object_get(doc, "cas_key_hash");
	if (!json_is_string(hash) || json_string_length(hash) != HASH_HEX_LEN ||
	    !veil_is_sha256_hex(json_string_value(hash))) {
		say(why, why_size, "\"cas_key_hash\" is not a key hash (64 hex digits)");
		goto out;
	}
	memcpy(f.meta.cas_key_hash, json_string_value(hash), HASH_HEX_LEN + 1);
	if (count_member(doc, "threshold", &f.meta.threshold, why, why_size) ||
	    count_member(doc, "shares", &f.meta.count, why, why_size) ||
	    count_member(doc, "x", &f.meta.x, why, why_size) ||
	    hex_member(doc, "commitment", f.meta.commitment, VEIL_SHA256_SIZE, why, why_size) ||
	    hex_member(doc, "enc", f.enc, sizeof(f.enc), why, why_size) ||
	    hex_member(doc, "ciphertext", f.ct, sizeof(f.ct), why, why_size))
		goto out;
	if (!veil_recovery_meta_valid(&f.meta)) {
		say(why, why_size, "threshold, shares and x disagree (2 <= K <= N, 1 <= x <= N)");
		goto out;
	}
	*out = f;
	rc = 0;
out:
	json_decref(doc);
	return rc;
}

int veil_recovery_share_open(EVP_PKEY *holder_priv, const struct veil_recovery_share_file *f,
			     uint8_t share[static VEIL_RECOVERY_SECRET_SIZE])
{
	uint8_t info[sizeof(INFO_LABEL) + HASH_HEX_LEN + 4], *pt = NULL;
	size_t pt_len = 0;
	if (!veil_recovery_meta_valid(&f->meta))
		return VEIL_EINVAL;
	size_t info_len = share_info(&f->meta, info);
	int rc = veil_hpke_open(holder_priv, f->enc, info, info_len, f->meta.commitment,
				VEIL_SHA256_SIZE, f->ct, sizeof(f->ct), &pt, &pt_len);
	if (rc)
		return rc;
	if (pt_len != VEIL_RECOVERY_SECRET_SIZE)
		rc = VEIL_EINVAL;
	else
		memcpy(share, pt, VEIL_RECOVERY_SECRET_SIZE);
	veil_secure_free(pt, pt_len + 1);
	return rc;
}

int veil_recovery_opened_format(const struct veil_recovery_meta *meta,
				const uint8_t share[static VEIL_RECOVERY_SECRET_SIZE], char *out,
				size_t cap, size_t *size)
{
	char commitment[HASH_HEX_LEN + 1], share_hex[2 * VEIL_RECOVERY_SECRET_SIZE + 1];
	if (!veil_recovery_meta_valid(meta) || cap < VEIL_RECOVERY_OPENED_MAX)
		return VEIL_EINVAL;
	veil_hex(meta->commitment, VEIL_SHA256_SIZE, commitment);
	veil_hex(share, VEIL_RECOVERY_SECRET_SIZE, share_hex);
	int n = snprintf(out, cap,
			 FORMAT_NAME " %d\ncas_key_hash %s\nthreshold %u\nshares %u\nx %u\n"
				     "commitment %s\nshare %s\n",
			 FORMAT_VERSION, meta->cas_key_hash, meta->threshold, meta->count, meta->x,
			 commitment, share_hex);
	OPENSSL_cleanse(share_hex, sizeof(share_hex));
	if (n < 0 || (size_t)n >= cap) {
		OPENSSL_cleanse(out, cap);
		return VEIL_EINVAL;
	}
	*size = (size_t)n;
	return 0;
}

/* "name value\n" at *pos: value (at most cap - 1 bytes, no space or
 * control character) into val */
static int opened_line(const char *text, size_t size, size_t *pos, const char *name, char *val,
		       size_t cap)
{
	size_t nl = strlen(name), p = *pos;
	/* not secret: the field names */
	if (size - p < nl + 1 || memcmp(text + p, name, nl) || text[p + nl] != ' ')
		return VEIL_EINVAL;
	p += nl + 1;
	size_t n = 0;
	while (p + n < size && text[p + n] != '\n') {
		unsigned char c = (unsigned char)text[p + n];
		if (c <= ' ' || c >= 0x7f || n + 1 >= cap)
			return VEIL_EINVAL;
		val[n] = (char)c;
		n++;
	}
	if (!n || p + n >= size)
		return VEIL_EINVAL; /* empty, or no "\n" */
	val[n] = '\0';
	*pos = p + n + 1;
	return 0;
}

/* decimal 1..255, no sign, no leading zero */
static int opened_count(const char *s, unsigned *out)
{
	size_t n = strlen(s);
	if (n < 1 || n > 3 || s[0] == '0')
		return VEIL_EINVAL;
	unsigned v = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return VEIL_EINVAL;
		v = v * 10 + (unsigned)(s[i] - '0');
	}
	if (v > VEIL_SHAMIR_MAX_SHARES)
		return VEIL_EINVAL;
	*out = v;
	return 0;
}

int veil_recovery_opened_parse(const char *text, size_t size, struct veil_recovery_meta *meta,
			       uint8_t share[static VEIL_RECOVERY_SECRET_SIZE], char *why,
			       size_t why_size)
{
	struct veil_recovery_meta m;
	char val[2 * VEIL_RECOVERY_SECRET_SIZE + 2];
	size_t pos = 0;
	int rc = VEIL_EINVAL;
	memset(&m, 0, sizeof(m));
	if (size > VEIL_RECOVERY_OPENED_MAX) {
		say(why, why_size, "larger than an opened share");
		return VEIL_ELIMIT;
	}
	if (opened_line(text, size, &pos, FORMAT_NAME, val, sizeof(val)) || strcmp(val, "1")) {
		say(why, why_size,
		    "not an opened veil recovery share (first line '" FORMAT_NAME " 1')");
		goto out;
	}
	if (opened_line(text, size, &pos, "cas_key_hash", val, sizeof(val)) ||
	    !veil_is_sha256_hex(val)) {
		say(why, why_size, "'cas_key_hash' is not a key hash");
		goto out;
	}
	memcpy(m.cas_key_hash, val, HASH_HEX_LEN + 1);
	if (opened_line(text, size, &pos, "threshold", val, sizeof(val)) ||
	    opened_count(val, &m.threshold) ||
	    opened_line(text, size, &pos, "shares", val, sizeof(val)) ||
	    opened_count(val, &m.count) || opened_line(text, size, &pos, "x", val, sizeof(val)) ||
	    opened_count(val, &m.x)) {
		say(why, why_size, "'threshold', 'shares' or 'x' missing or not 1 to 255");
		goto out;
	}
	if (!veil_recovery_meta_valid(&m)) {
		say(why, why_size, "threshold, shares and x disagree (2 <= K <= N, 1 <= x <= N)");
		goto out;
	}
	if (opened_line(text, size, &pos, "commitment", val, sizeof(val)) ||
	    veil_unhex(val, m.commitment, VEIL_SHA256_SIZE)) {
		say(why, why_size, "'commitment' is not 64 lower-case hex digits");
		goto out;
	}
	if (opened_line(text, size, &pos, "share", val, sizeof(val)) ||
	    veil_unhex(val, share, VEIL_RECOVERY_SECRET_SIZE)) {
		say(why, why_size, "'share' is not 64 lower-case hex digits");
		goto out;
	}
	if (pos != size) {
		say(why, why_size, "text after the 'share' line");
		goto out;
	}
	*meta = m;
	rc = 0;
out:
	if (rc)
		OPENSSL_cleanse(share, VEIL_RECOVERY_SECRET_SIZE);
	OPENSSL_cleanse(val, sizeof(val));
	return rc;
}

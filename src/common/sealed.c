/* The sealed configuration (see sealed.h for the format). */
#include "veil/sealed.h"
#include "veil/hpke.h"
#include "veil/secrets.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/crypto.h>

int veil_sealed_info(const char *config_id, uint8_t **info, size_t *info_len)
{
	static const char label[] = VEIL_SEALED_INFO_LABEL; /* with its NUL */
	size_t n = strlen(config_id);
	uint8_t *p = malloc(sizeof(label) + n);
	if (!p)
		return VEIL_ENOMEM;
	memcpy(p, label, sizeof(label));
	memcpy(p + sizeof(label), config_id, n);
	*info = p;
	*info_len = sizeof(label) + n;
	return 0;
}

int veil_seal_config_to_point(const uint8_t runtime_point[static VEIL_HPKE_ENC_SIZE],
			      const char *config_id,
			      const uint8_t evidence_sha256[static VEIL_SHA256_SIZE],
			      const char *config, size_t config_size, char **answer,
			      size_t *answer_size)
{
	uint8_t *info = NULL, *ct = NULL, enc[VEIL_HPKE_ENC_SIZE];
	size_t info_len = 0, ct_len = 0;
	char *enc64 = NULL, *ct64 = NULL, *out = NULL;
	if (config_size > VEIL_SEALED_CONFIG_MAX)
		return VEIL_ELIMIT;
	int rc = veil_sealed_info(config_id, &info, &info_len);
	if (!rc)
		rc = veil_hpke_seal_to_point(runtime_point, info, info_len, evidence_sha256,
					     VEIL_SHA256_SIZE, (const uint8_t *)config, config_size,
					     enc, &ct, &ct_len);
	if (!rc &&
	    (!(enc64 = veil_b64_encode(enc, sizeof(enc))) || !(ct64 = veil_b64_encode(ct, ct_len))))
		rc = VEIL_ENOMEM;
	int n = -1;
	if (!rc)
		n = asprintf(&out, "{\"sealed\":{\"suite\":\"%s\",\"enc\":\"%s\",\"ct\":\"%s\"}}\n",
			     VEIL_SEALED_SUITE, enc64, ct64);
	if (!rc && n < 0) {
		out = NULL;
		rc = VEIL_ENOMEM;
	}
	free(info);
	free(ct);
	free(enc64);
	free(ct64);
	if (rc)
		return rc;
	*answer = out;
	*answer_size = (size_t)n;
	return 0;
}

int veil_seal_config(EVP_PKEY *runtime_pub, const char *config_id,
		     const uint8_t evidence_sha256[static VEIL_SHA256_SIZE], const char *config,
		     size_t config_size, char **answer, size_t *answer_size)
{
	uint8_t point[VEIL_HPKE_ENC_SIZE];
	if (config_size > VEIL_SEALED_CONFIG_MAX)
		return VEIL_ELIMIT;
	int rc = veil_hpke_point_of(runtime_pub, point);
	return rc ? rc
		  : veil_seal_config_to_point(point, config_id, evidence_sha256, config,
					      config_size, answer, answer_size);
}

int veil_open_config(EVP_PKEY *runtime_key, const char *config_id,
		     const uint8_t evidence_sha256[static VEIL_SHA256_SIZE], const char *answer,
		     size_t answer_size, char **config, size_t *config_size)
{
	const char *suite = NULL, *enc64 = NULL, *ct64 = NULL;
	uint8_t *enc = NULL, *ct = NULL, *info = NULL, *pt = NULL;
	size_t enc_len = 0, ct_len = 0, info_len = 0, pt_len = 0;
	if (answer_size > VEIL_SEALED_ANSWER_MAX)
		return VEIL_ELIMIT;
	json_t *j = json_loadb(answer, answer_size, JSON_REJECT_DUPLICATES, NULL);
	int rc = VEIL_EINVAL;
	if (!j ||
	    json_unpack(j, "{s:{s:s, s:s, s:s !} !}", "sealed", "suite", &suite, "enc", &enc64,
			"ct", &ct64) ||
	    strcmp(suite, VEIL_SEALED_SUITE))
		goto out;
	if ((rc = veil_b64_decode(enc64, VEIL_HPKE_ENC_SIZE, &enc, &enc_len)))
		goto out;
	if (enc_len != VEIL_HPKE_ENC_SIZE) {
		rc = VEIL_EINVAL;
		goto out;
	}
	if ((rc = veil_b64_decode(ct64, VEIL_SEALED_CONFIG_MAX + VEIL_HPKE_TAG_SIZE, &ct,
				  &ct_len)) ||
	    (rc = veil_sealed_info(config_id, &info, &info_len)) ||
	    (rc = veil_hpke_open(runtime_key, enc, info, info_len, evidence_sha256,
				 VEIL_SHA256_SIZE, ct, ct_len, &pt, &pt_len)))
		goto out;
	*config = (char *)pt;
	*config_size = pt_len;
out:
	json_decref(j); /* ciphertext only */
	free(enc);
	free(ct);
	free(info);
	return rc;
}

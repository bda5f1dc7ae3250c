#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include "veil/tls.h"

int veil_pubkey_digest(EVP_PKEY *pkey, uint8_t out[static VEIL_SHA256_SIZE])
{
	unsigned char *der = NULL;
	int n = i2d_PUBKEY(pkey, &der);
	if (n <= 0)
		return VEIL_EINVAL;
	int rc = veil_sha256(der, (size_t)n, out);
	OPENSSL_free(der);
	return rc;
}

int veil_pubkey_hash(EVP_PKEY *pkey, char out[static VEIL_KEY_HASH_HEX])
{
	uint8_t h[VEIL_SHA256_SIZE];
	int rc = veil_pubkey_digest(pkey, h);
	if (!rc)
		veil_hex(h, sizeof(h), out);
	return rc;
}

int veil_cert_key_hash(X509 *cert, char out[static VEIL_KEY_HASH_HEX])
{
	/* The certificate's own SubjectPublicKeyInfo, re-encoded by the ASN.1
	 * code: the same bytes as i2d_PUBKEY, without OpenSSL 3's encoder
	 * machinery (and its locks), which costs ~10% of a handshake. */
	X509_PUBKEY *xpk = X509_get_X509_PUBKEY(cert);
	unsigned char *der = NULL;
	int n = xpk ? i2d_X509_PUBKEY(xpk, &der) : -1;
	if (n <= 0)
		return VEIL_EINVAL;
	uint8_t h[VEIL_SHA256_SIZE];
	int rc = veil_sha256(der, (size_t)n, h);
	OPENSSL_free(der);
	if (!rc)
		veil_hex(h, sizeof(h), out);
	return rc;
}

/* subjectAltName from names: an IP address where one parses, else a DNS name */
static int add_sans(X509 *x, const char *const *sans, size_t san_count)
{
	GENERAL_NAMES *names = sk_GENERAL_NAME_new_null();
	int ok = names != NULL;
	for (size_t i = 0; ok && i < san_count; i++) {
		ASN1_OCTET_STRING *ip = a2i_IPADDRESS(sans[i]);
		GENERAL_NAME *g = GENERAL_NAME_new();
		if (!g) {
			ASN1_OCTET_STRING_free(ip);
			ok = 0;
			break;
		}
		if (ip) {
			GENERAL_NAME_set0_value(g, GEN_IPADD, ip);
		} else {
			ASN1_IA5STRING *dns = ASN1_IA5STRING_new();
			if (!dns || !ASN1_STRING_set(dns, sans[i], -1)) {
				ASN1_IA5STRING_free(dns);
				GENERAL_NAME_free(g);
				ok = 0;
				break;
			}
			GENERAL_NAME_set0_value(g, GEN_DNS, dns);
		}
		if (!sk_GENERAL_NAME_push(names, g)) {
			GENERAL_NAME_free(g);
			ok = 0;
		}
	}
	if (ok && san_count)
		ok = X509_add1_ext_i2d(x, NID_subject_alt_name, names, 0, 0) == 1;
	GENERAL_NAMES_free(names);
	return ok ? 0 : VEIL_EIO;
}

static X509 *self_signed(EVP_PKEY *key, const char *cn, const char *const *sans, size_t san_count)
{
	X509 *x = X509_new();
	uint8_t serial[16];
	BIGNUM *bn = NULL;
	if (!x || RAND_bytes(serial, sizeof(serial)) != 1)
		goto fail;
	serial[0] &= 0x7f;
	bn = BN_bin2bn(serial, sizeof(serial), NULL);
	if (!bn || !BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)))
		goto fail;
	X509_set_version(x, 2);
	X509_gmtime_adj(X509_getm_notBefore(x), -3600);
	X509_gmtime_adj(X509_getm_notAfter(x), 10L * 365 * 24 * 3600);
	X509_NAME *name = X509_get_subject_name(x);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1, -1, 0);
	X509_set_issuer_name(x, name);
	if (add_sans(x, sans, san_count) || !X509_set_pubkey(x, key) ||
	    !X509_sign(x, key, EVP_sha256()))
		goto fail;
	BN_free(bn);
	return x;
fail:
	BN_free(bn);
	X509_free(x);
	return NULL;
}

int veil_identity_load_or_create(const char *dir, const char *cn, EVP_PKEY **key, X509 **cert,
				 struct veil_diags *d)
{
	return veil_identity_load_or_create_san(dir, cn, NULL, 0, key, cert, d);
}

int veil_identity_load_or_create_san(const char *dir, const char *cn, const char *const *sans,
				     size_t san_count, EVP_PKEY **key, X509 **cert,
				     struct veil_diags *d)
{
	char *kp = veil_path_join(dir, "key.pem"), *cp = veil_path_join(dir, "cert.pem");
	EVP_PKEY *k = NULL;
	X509 *x = NULL;
	FILE *f = NULL;
	int rc = VEIL_EIO;
	if (!kp || !cp) {
		rc = VEIL_ENOMEM;
		goto out;
	}
	if ((f = fopen(kp, "re"))) {
		struct stat st;
		if (fstat(fileno(f), &st) == 0 && (st.st_mode & 077)) {
			veil_diag(d, "%s: private key readable by group or others (chmod 600)", kp);
			rc = VEIL_EINVAL;
			goto out;
		}
		k = PEM_read_PrivateKey(f, NULL, NULL, NULL);
		fclose(f);
		f = NULL;
		if (!k) {
			veil_diag(d, "%s: not a PEM private key", kp);
			goto out;
		}
		if (!(f = fopen(cp, "re")) || !(x = PEM_read_X509(f, NULL, NULL, NULL))) {
			veil_diag(d, "%s: cannot read the certificate", cp);
			goto out;
		}
		if (X509_check_private_key(x, k) != 1) {
			veil_diag(d, "%s does not match %s", cp, kp);
			goto out;
		}
	} else {
		if (errno != ENOENT) {
			veil_diag(d, "%s: %s", kp, strerror(errno));
			goto out;
		}
		if ((rc = veil_mkdirs(dir, 0700, d)))
			goto out;
		rc = VEIL_EIO;
		k = EVP_EC_gen("P-256");
		if (!k || !(x = self_signed(k, cn, sans, san_count)))
			goto out;
		int fd = open(kp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (fd < 0 || !(f = fdopen(fd, "w"))) {
			veil_diag(d, "%s: cannot create: %s", kp, strerror(errno));
			if (fd >= 0)
				close(fd);
			goto out;
		}
		if (!PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL) || fflush(f) ||
		    fsync(fileno(f))) {
			veil_diag(d, "%s: cannot write", kp);
			goto out;
		}
		fclose(f);
		f = NULL;
		BIO *b = BIO_new(BIO_s_mem());
		char *pem = NULL;
		long n = b && PEM_write_bio_X509(b, x) ? BIO_get_mem_data(b, &pem) : 0;
		rc = n > 0 ? veil_write_file(cp, pem, (size_t)n, 0644, d) : VEIL_EIO;
		BIO_free(b);
		if (rc)
			goto out;
	}
	*key = k;
	*cert = x;
	k = NULL;
	x = NULL;
	rc = 0;
out:
	if (f)
		fclose(f);
	EVP_PKEY_free(k);
	X509_free(x);
	free(kp);
	free(cp);
	return rc;
}

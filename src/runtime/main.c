/* veil-run: the entrypoint of every confidential image.
 *
 * It makes a fresh key, gets evidence binding it from veil-las, measures the
 * protected files, attests to the CAS over mutual TLS with that key (the CAS
 * authenticated by its pinned key), and only then builds the environment from
 * the policy alone and execs the policy's command in the policy's pwd. */
#include <errno.h>
#include <malloc.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/pem.h>

#include "veil/image.h"
#include "veil/tls.h"

#define DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#define MAX_ARGS 256

static int verbose;

static void logmsg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void logmsg(const char *fmt, ...)
{
	if (!verbose)
		return;
	va_list ap;
	va_start(ap, fmt);
	fputs("veil-run: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

static int die(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int die(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("veil-run: error: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	return 1;
}

/* VEIL_X, else SCONE_X */
static const char *setting(const char *name)
{
	char v[64], s[64];
	snprintf(v, sizeof(v), "VEIL_%s", name);
	snprintf(s, sizeof(s), "SCONE_%s", name);
	const char *x = getenv(v);
	if (x && *x)
		return x;
	x = getenv(s);
	return x && *x ? x : NULL;
}

static void usage(FILE *f)
{
	fprintf(
	    f, "Usage: veil-run   (configured by the environment; takes no arguments)\n\n"
	       "The entrypoint of confidential images. The command, its arguments, pwd and\n"
	       "environment come from the CAS policy after attestation; the host's\n"
	       "environment is not passed on.\n\n"
	       "  SCONE_CONFIG_ID / VEIL_CONFIG_ID   NAMESPACE/SERVICE (required)\n"
	       "  SCONE_CAS_ADDR  / VEIL_CAS_ADDR    the CAS, HOST[:PORT] (default port 8081)\n"
	       "  VEIL_CAS_KEY                       the CAS key hash to pin (required)\n"
	       "  SCONE_LAS_ADDR  / VEIL_LAS_ADDR    veil-las socket (default /run/veil/las.sock)\n"
	       "  VEIL_FILES_DIR                     the protected folder (default: the\n"
	       "                                     policy's pwd must be this folder; /python\n"
	       "                                     if unset)\n"
	       "  SCONE_LOG       / VEIL_LOG         'debug' or 'info' for progress messages\n");
}

static int las_evidence(const char *sock, const uint8_t rd[static VEIL_SHA256_SIZE], char **out)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	if (strlen(sock) >= sizeof(sa.sun_path))
		return die("LAS address %s is too long", sock);
	memcpy(sa.sun_path, sock, strlen(sock) + 1);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa))) {
		int e = errno;
		if (fd >= 0)
			close(fd);
		return die("cannot reach veil-las at %s: %s", sock, strerror(e));
	}
	char req[80], hex[65];
	veil_hex(rd, VEIL_SHA256_SIZE, hex);
	int n = snprintf(req, sizeof(req), "REPORT %s\n", hex);
	struct veil_buf b;
	veil_buf_init(&b, 64 * 1024);
	int rc = write(fd, req, (size_t)n) == n ? 0 : 1;
	char tmp[4096];
	ssize_t r;
	while (!rc && (r = read(fd, tmp, sizeof(tmp))) > 0)
		if (veil_buf_append(&b, tmp, (size_t)r))
			rc = 1;
	close(fd);
	if (rc || !b.data || !b.size)
		rc = die("veil-las at %s gave no evidence", sock);
	else if (!strncmp(b.data, "ERROR ", 6))
		rc = die("veil-las refused: %s", b.data + 6);
	if (rc) {
		veil_buf_free(&b);
		return rc;
	}
	b.data[strcspn(b.data, "\n")] = '\0';
	*out = b.data;
	return 0;
}

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
	return veil_buf_append(arg, p, size * n) ? 0 : size * n;
}

static char *pem_of(EVP_PKEY *key, X509 *cert)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *p = NULL, *out = NULL;
	if (b && (key ? PEM_write_bio_PrivateKey(b, key, NULL, NULL, 0, NULL, NULL)
		      : PEM_write_bio_X509(b, cert))) {
		long n = BIO_get_mem_data(b, &p);
		if (n > 0 && (out = malloc((size_t)n + 1))) {
			memcpy(out, p, (size_t)n);
			out[n] = '\0';
		}
	}
	BIO_free(b);
	return out;
}

/* POST /v1/attest with retries while the CAS is unreachable. */
static int cas_attest(const char *cas, const char *cas_key, EVP_PKEY *key, X509 *cert,
		      const char *body, struct veil_buf *resp, long *status)
{
	char url[512], pin[64], *kpem = pem_of(key, NULL), *cpem = pem_of(NULL, cert);
	uint8_t raw[VEIL_SHA256_SIZE];
	for (size_t i = 0; i < sizeof(raw); i++) {
		unsigned v;
		if (sscanf(cas_key + 2 * i, "%2x", &v) != 1)
			return die("VEIL_CAS_KEY must be 64 hex digits");
		raw[i] = (uint8_t)v;
	}
	memcpy(pin, "sha256//", 8);
	EVP_EncodeBlock((unsigned char *)pin + 8, raw, sizeof(raw));
	snprintf(url, sizeof(url), "https://%s%s/v1/attest", cas, strchr(cas, ':') ? "" : ":8081");
	int rc = 1;
	for (int attempt = 1, delay_ms = 200; attempt <= 8; attempt++, delay_ms *= 2) {
		CURL *h = curl_easy_init();
		struct curl_slist *hdr = curl_slist_append(NULL, "Content-Type: application/json");
		struct curl_blob cb = {.data = cpem, .len = strlen(cpem), .flags = CURL_BLOB_COPY};
		struct curl_blob kb = {.data = kpem, .len = strlen(kpem), .flags = CURL_BLOB_COPY};
		resp->size = 0;
		curl_easy_setopt(h, CURLOPT_URL, url);
		curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "https");
		curl_easy_setopt(h, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_3);
		curl_easy_setopt(h, CURLOPT_SSLCERT_BLOB, &cb);
		curl_easy_setopt(h, CURLOPT_SSLCERTTYPE, "PEM");
		curl_easy_setopt(h, CURLOPT_SSLKEY_BLOB, &kb);
		curl_easy_setopt(h, CURLOPT_SSLKEYTYPE, "PEM");
		curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L); /* pinned instead */
		curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
		curl_easy_setopt(h, CURLOPT_PINNEDPUBLICKEY, pin);
		curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(h, CURLOPT_TIMEOUT, 30L);
		curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 5L);
		curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
		curl_easy_setopt(h, CURLOPT_WRITEDATA, resp);
		CURLcode e = curl_easy_perform(h);
		if (e == CURLE_OK)
			curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, status);
		curl_slist_free_all(hdr);
		curl_easy_cleanup(h);
		if (e == CURLE_OK) {
			rc = 0;
			break;
		}
		if (e == CURLE_SSL_PINNEDPUBKEYNOTMATCH) {
			rc = die("the CAS at %s does not have the pinned key %.16s...: refusing",
				 cas, cas_key);
			break;
		}
		fprintf(stderr, "veil-run: CAS %s unreachable (%s), attempt %d of 8\n", cas,
			curl_easy_strerror(e), attempt);
		if (attempt < 8) {
			struct timespec ts = {.tv_sec = delay_ms / 1000,
					      .tv_nsec = (delay_ms % 1000) * 1000000L};
			nanosleep(&ts, NULL);
		} else {
			rc = die("giving up on the CAS at %s", cas);
		}
	}
	OPENSSL_cleanse(kpem, strlen(kpem));
	free(kpem);
	free(cpem);
	return rc;
}

/* The file-set root of dir, computed exactly as `veil apply` measured it. */
static int files_root(const char *dir, char root[static 65])
{
	char *copy[] = {"."};
	struct veil_service_manifest m = {.file = "the protected folder"};
	m.build = (struct veil_build){.name = "run",
				      .to = "run",
				      .pwd = dir,
				      .command = "run",
				      .copy = copy,
				      .copy_count = 1};
	struct veil_measurement meas = {0};
	struct veil_diags d;
	veil_diags_init(&d);
	int rc = veil_measure_service(&m, dir, "/proc/self/exe", &meas, &d);
	if (rc) {
		for (size_t i = 0; i < d.count; i++)
			die("%s", d.msgs[i]);
	} else {
		memcpy(root, meas.file_set_root, 65);
	}
	veil_measurement_free(&meas);
	veil_diags_free(&d);
	return rc ? 1 : 0;
}

static void cleanse_free(void *p)
{
	if (p) {
		OPENSSL_cleanse(p, malloc_usable_size(p));
		free(p);
	}
}

int main(int argc, char **argv)
{
	if (argc > 1 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
		usage(stdout);
		return 0;
	}
	if (argc > 1)
		return die("veil-run takes no arguments: the command comes from the policy "
			   "(got '%s')",
			   argv[1]);
	const char *log = setting("LOG");
	verbose = log && (!strcmp(log, "debug") || !strcmp(log, "info"));
	const char *config_id = setting("CONFIG_ID"), *cas = setting("CAS_ADDR");
	const char *cas_key = getenv("VEIL_CAS_KEY"), *las = setting("LAS_ADDR");
	const char *files_dir = getenv("VEIL_FILES_DIR");
	if (!files_dir || !*files_dir)
		files_dir = "/python";
	if (!las || las[0] != '/')
		las = "/run/veil/las.sock";
	if (!config_id || !cas || !cas_key)
		return die("%s is not set (see veil-run --help)", !config_id ? "SCONE_CONFIG_ID"
								  : !cas     ? "SCONE_CAS_ADDR"
									     : "VEIL_CAS_KEY");
	if (strlen(cas_key) != 64 || strspn(cas_key, "0123456789abcdef") != 64)
		return die("VEIL_CAS_KEY must be the CAS's 64-hex-digit key hash");
	if (!strncmp(cas, "https://", 8))
		cas += 8;
	/* the configuration holds secrets: jansson's memory is wiped when freed */
	json_set_alloc_funcs(malloc, cleanse_free);

	/* 1. a fresh key; the evidence binds its SHA-256 */
	EVP_PKEY *key = EVP_EC_gen("P-256");
	X509 *cert = X509_new();
	uint8_t rd[VEIL_SHA256_SIZE];
	if (!key || !cert || veil_pubkey_digest(key, rd))
		return die("cannot make a key");
	X509_set_version(cert, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(cert), 1);
	X509_gmtime_adj(X509_getm_notBefore(cert), -60);
	X509_gmtime_adj(X509_getm_notAfter(cert), 3600);
	X509_NAME_add_entry_by_txt(X509_get_subject_name(cert), "CN", MBSTRING_ASC,
				   (const unsigned char *)"veil-run", -1, -1, 0);
	X509_set_issuer_name(cert, X509_get_subject_name(cert));
	if (!X509_set_pubkey(cert, key) || !X509_sign(cert, key, EVP_sha256()))
		return die("cannot make a certificate");
	char *evidence = NULL;
	if (las_evidence(las, rd, &evidence))
		return 1;
	logmsg("evidence from %s", las);

	/* 2. the protected files as they are now */
	char root[65];
	if (files_root(files_dir, root))
		return die("cannot measure the protected folder %s", files_dir);
	logmsg("file-set root of %s: %s", files_dir, root);

	/* 3. attest */
	json_t *req = json_pack("{s:s, s:s, s:s}", "config_id", config_id, "evidence", evidence,
				"file_set_root", root);
	char *body = req ? json_dumps(req, JSON_COMPACT) : NULL;
	json_decref(req);
	free(evidence);
	if (!body)
		return die("out of memory");
	struct veil_buf resp;
	veil_buf_init(&resp, 16u << 20);
	long status = 0;
	curl_global_init(CURL_GLOBAL_DEFAULT);
	int rc = cas_attest(cas, cas_key, key, cert, body, &resp, &status);
	free(body);
	EVP_PKEY_free(key);
	X509_free(cert);
	if (rc)
		return 1;
	json_error_t err;
	json_t *cfg = json_loadb(resp.data ? resp.data : "", resp.size, 0, &err);
	OPENSSL_cleanse(resp.data ? resp.data : (char *)&rc, resp.data ? resp.cap : 0);
	veil_buf_free(&resp);
	if (status != 200) {
		const char *why = NULL;
		if (cfg && !json_unpack(cfg, "{s:s}", "error", &why))
			return die("the CAS refused %s: %s", config_id, why);
		return die("the CAS answered %ld for %s", status, config_id);
	}
	const char *command = NULL, *pwd = NULL;
	json_t *env = NULL, *files = NULL;
	if (!cfg || json_unpack(cfg, "{s:s, s:s, s:o, s:o}", "command", &command, "pwd", &pwd,
				"environment", &env, "injection_files", &files))
		return die("malformed configuration from the CAS");
	logmsg("attested as %s", config_id);

	/* 4. the policy's pwd must be the folder that was measured */
	if (strcmp(pwd, files_dir))
		return die("the policy's pwd %s is not the measured folder %s", pwd, files_dir);
	if (json_array_size(files))
		return die("injection files are not supported by this veil-run yet");
	if (chdir(pwd))
		return die("cannot enter %s: %s", pwd, strerror(errno));

	/* 5. the environment comes from the policy alone */
	size_t nenv = json_object_size(env), k = 0;
	char **envp = calloc(nenv + 2, sizeof(char *));
	const char *name;
	json_t *val;
	int has_path = 0;
	json_object_foreach(env, name, val)
	{
		const char *v = json_string_value(val);
		if (!v || asprintf(&envp[k], "%s=%s", name, v) < 0)
			return die("malformed environment from the CAS");
		has_path |= !strcmp(name, "PATH");
		k++;
	}
	if (!has_path)
		envp[k++] = "PATH=" DEFAULT_PATH; /* a fixed default, never the host's */
	envp[k] = NULL;

	/* 6. argv from the policy's command (split on blanks, no shell) */
	char *cmd = strdup(command), *args[MAX_ARGS + 1], *save = NULL;
	size_t nargs = 0;
	for (char *t = strtok_r(cmd, " \t", &save); t && nargs < MAX_ARGS;
	     t = strtok_r(NULL, " \t", &save))
		args[nargs++] = t;
	args[nargs] = NULL;
	if (!nargs)
		return die("the policy's command is empty");
	json_decref(cfg); /* wiped by cleanse_free */
	logmsg("exec %s in %s", args[0], pwd);
	char *path_env = NULL;
	for (size_t i = 0; envp[i]; i++)
		if (!strncmp(envp[i], "PATH=", 5))
			path_env = envp[i] + 5;
	if (path_env)
		setenv("PATH", path_env, 1); /* execvpe searches the policy's PATH */
	execvpe(args[0], args, envp);
	return die("cannot run %s: %s", args[0], strerror(errno));
}

/* Recovery shares of the master key (issue 13, item 3; docs/cas.md,
 * "Recovery"; the formats in include/veil/recovery_share.h):
 *
 *   veil-cas --init ... --recovery-key HOLDER.pub.pem (N times)
 *            --recovery-threshold K
 *       splits DATA/master.key K of N and writes DATA/recovery/share-X.json,
 *       share X sealed to the X-th key given (harmless to store: only its
 *       holder opens it);
 *   veil-cas recovery-share open --key HOLDER.pem share-X.json > share-X.txt
 *       a holder opens their share, offline;
 *   veil-cas recover --data DIR --share share-1.txt --share share-3.txt
 *       K opened shares give the master key back into DIR, a data folder
 *       whose master.key is gone; checked against the commitment and the
 *       CAS's TLS key hash before it is written; never over a master.key.
 *
 * Only the file key provider is split: its key is DATA/master.key. A token
 * (PKCS#11, another change) cannot give its key out; there the issue wants a
 * separate recovery key that can re-wrap the data keys, split the same way
 * (cas_recovery_write_shares would then take that key, not read the file).
 *
 * The network process never holds the master key (DESIGN.md, "CAS": it
 * lives in the key process): at --init the split runs in a child forked for
 * it, before any thread starts, and the child's memory goes with it. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/pem.h>

#include "cas.h"
#include "recovery.h"
#include "veil/args.h"
#include "veil/recovery_share.h"
#include "veil/secure.h"
#include "veil/shamir.h"

#define KEY_SIZE VEIL_RECOVERY_SECRET_SIZE

/* ---- --init ---- */

int cas_recovery_add_key(struct cas_recovery_plan *p, const char *path, struct veil_diags *d)
{
	if (p->count == VEIL_SHAMIR_MAX_SHARES) {
		veil_diag(d, "--recovery-key: at most %d keys", VEIL_SHAMIR_MAX_SHARES);
		return VEIL_ELIMIT;
	}
	FILE *f = fopen(path, "re");
	EVP_PKEY *key = f ? PEM_read_PUBKEY(f, NULL, NULL, NULL) : NULL;
	if (f)
		fclose(f);
	if (!key) {
		veil_diag(d,
			  "--recovery-key %s: %s (a holder's PEM public key: 'openssl pkey -in "
			  "HOLDER.pem -pubout')",
			  path, f ? "not a PEM public key" : strerror(errno));
		return VEIL_EINVAL;
	}
	if (!veil_hpke_key_is_p256(key)) {
		veil_diag(
		    d,
		    "--recovery-key %s: not a P-256 key (shares are sealed with HPKE on "
		    "P-256: 'openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256')",
		    path);
		EVP_PKEY_free(key);
		return VEIL_EINVAL;
	}
	p->keys[p->count] = key;
	p->paths[p->count++] = path;
	return 0;
}

int cas_recovery_check(const struct cas_recovery_plan *p, bool init, struct veil_diags *d)
{
	if (!p->count && !p->threshold)
		return 0;
	if (!init) {
		veil_diag(d, "--recovery-key and --recovery-threshold split the master key --init "
			     "makes; give them with --init");
		return VEIL_EINVAL;
	}
	if (!p->count) {
		veil_diag(d, "--recovery-threshold needs the holders' keys: --recovery-key FILE, "
			     "once per holder");
		return VEIL_EINVAL;
	}
	if (!p->threshold) {
		veil_diag(d,
			  "--recovery-key needs --recovery-threshold K: how many of the %u "
			  "holders it takes to recover the master key",
			  p->count);
		return VEIL_EINVAL;
	}
	if (p->threshold < 2 || (unsigned long)p->threshold > p->count) {
		veil_diag(d,
			  "--recovery-threshold %ld: must be from 2 to the number of "
			  "--recovery-key holders (%u)",
			  p->threshold, p->count);
		return VEIL_EINVAL;
	}
	for (unsigned i = 0; i < p->count; i++)
		for (unsigned j = 0; j < i; j++)
			if (EVP_PKEY_eq(p->keys[i], p->keys[j]) == 1) {
				veil_diag(d,
					  "--recovery-key %s and %s are the same key: one holder "
					  "would hold two shares",
					  p->paths[j], p->paths[i]);
				return VEIL_EINVAL;
			}
	return 0;
}

void cas_recovery_plan_free(struct cas_recovery_plan *p)
{
	for (unsigned i = 0; i < p->count; i++)
		EVP_PKEY_free(p->keys[i]);
	p->count = 0;
}

/* the 32 bytes of a master key file into key (secure memory) */
static int read_master(const char *path, uint8_t key[static KEY_SIZE], struct veil_diags *d)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0 || fstat(fd, &st) || st.st_size != KEY_SIZE ||
	    read(fd, key, KEY_SIZE) != KEY_SIZE) {
		veil_diag(d, "%s: cannot read the master key%s%s", path, fd < 0 ? ": " : "",
			  fd < 0 ? strerror(errno) : "");
		if (fd >= 0)
			close(fd);
		return VEIL_EIO;
	}
	close(fd);
	return 0;
}

/* in the child: split, seal, write */
static int split_and_write(const struct cas_recovery_plan *p, const char *data,
			   const char *key_hash, struct veil_diags *d)
{
	size_t shares_size = (size_t)p->count * KEY_SIZE;
	uint8_t *master = veil_secure_alloc(KEY_SIZE), *shares = veil_secure_alloc(shares_size);
	char *keyfile = veil_path_join(data, "master.key"), *dir = veil_path_join(data, "recovery");
	struct veil_recovery_meta meta = {.threshold = (unsigned)p->threshold, .count = p->count};
	int rc = master && shares && keyfile && dir ? read_master(keyfile, master, d) : VEIL_ENOMEM;
	snprintf(meta.cas_key_hash, sizeof(meta.cas_key_hash), "%s", key_hash);
	if (!rc)
		rc = veil_recovery_commitment(master, key_hash, meta.commitment);
	if (!rc)
		rc = veil_shamir_split(master, KEY_SIZE, meta.threshold, meta.count, shares);
	if (!rc)
		rc = veil_mkdirs(dir, 0700, d);
	for (unsigned i = 0; !rc && i < p->count; i++) {
		char name[32], *path = NULL, *json = NULL;
		size_t size = 0;
		meta.x = i + 1;
		snprintf(name, sizeof(name), "share-%u.json", meta.x);
		rc = veil_recovery_share_seal(p->keys[i], &meta, shares + (size_t)i * KEY_SIZE,
					      &json, &size);
		if (!rc && !(path = veil_path_join(dir, name)))
			rc = VEIL_ENOMEM;
		if (!rc)
			rc = veil_write_file(path, json, size, 0600, d);
		free(json);
		free(path);
	}
	veil_secure_free(master, KEY_SIZE);
	veil_secure_free(shares, shares_size);
	free(keyfile);
	free(dir);
	return rc;
}

int cas_recovery_write_shares(const struct cas_recovery_plan *p, const char *data,
			      const char *key_hash, struct veil_diags *d)
{
	if (!p->count)
		return 0;
	fflush(NULL); /* nothing buffered twice */
	pid_t pid = fork();
	if (pid < 0) {
		veil_diag(d, "cannot split the master key: %s", strerror(errno));
		return VEIL_EIO;
	}
	if (pid == 0) {
		struct veil_diags cd;
		veil_diags_init(&cd);
		int rc = split_and_write(p, data, key_hash, &cd);
		veil_diags_print(&cd, stderr);
		fflush(stderr);
		_exit(rc ? 1 : 0);
	}
	int st = 0;
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	if (!WIFEXITED(st) || WEXITSTATUS(st)) {
		veil_diag(d,
			  "the recovery shares were not written: the CAS in %s has none; remove "
			  "%s and run --init again",
			  data, data);
		return VEIL_EIO;
	}
	fprintf(stderr,
		"veil-cas: master key split %ld of %u: %s/recovery/share-1.json .. share-%u.json, "
		"each sealed to one holder's key (in --recovery-key order); give each holder "
		"their file\n",
		p->threshold, p->count, data, p->count);
	for (unsigned i = 0; i < p->count; i++)
		fprintf(stderr, "veil-cas:   share-%u.json for %s\n", i + 1, p->paths[i]);
	return 0;
}

/* ---- veil-cas recovery-share open ---- */

static void share_usage(FILE *f)
{
	fprintf(f, "Usage: veil-cas recovery-share open --key HOLDER.pem SHARE.json\n\n"
		   "Opens a recovery share of a CAS's master key (DATA/recovery/share-X.json,\n"
		   "written by 'veil-cas --init --recovery-key ...') with the holder's private\n"
		   "key, offline, and prints the share as text for 'veil-cas recover --share':\n"
		   "the share in hex with x, the threshold K, the number of shares N, the CAS's\n"
		   "key hash and the commitment to the master key. The text is secret: K of them\n"
		   "give the master key. Keep it off shared disks.\n\n"
		   "  --key FILE  the holder's P-256 private key (PEM; an encrypted one asks\n"
		   "              for its passphrase on the terminal)\n"
		   "  -h, --help  this help\n");
}

/* stdout without stdio's buffer: the text is secret */
static int write_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return VEIL_EIO;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

int cas_recovery_share_main(int argc, char **argv)
{
	static const char prog[] = "veil-cas recovery-share";
	static const struct option opts[] = {
	    {"key", required_argument, NULL, 'k'}, {"help", no_argument, NULL, 'h'}, {0}};
	const char *key_path = NULL;
	int c;
	if (argc > 1 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
		share_usage(stdout);
		return 0;
	}
	if (argc < 2 || strcmp(argv[1], "open"))
		return veil_usage_error(prog, "%s",
					"expected 'open' ('recovery-share open --key "
					"HOLDER.pem SHARE.json')");
	argc--;
	argv++;
	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		if (c == 'k') {
			key_path = optarg;
		} else if (c == 'h') {
			share_usage(stdout);
			return 0;
		} else {
			return veil_getopt_error("veil-cas recovery-share open", c, argc, argv,
						 optind);
		}
	}
	if (!key_path)
		return veil_usage_error(prog, "--key HOLDER.pem is required");
	if (optind >= argc)
		return veil_usage_error(prog, "%s", "missing the share file");
	if (optind + 1 < argc)
		return veil_usage_error(prog, "unexpected argument '%s'", argv[optind + 1]);
	const char *share_path = argv[optind];
	struct veil_diags d;
	struct veil_recovery_share_file f;
	veil_diags_init(&d);
	char *json = NULL, why[200] = "", *text = veil_secure_alloc(VEIL_RECOVERY_OPENED_MAX);
	uint8_t *share = veil_secure_alloc(KEY_SIZE);
	size_t size = 0;
	EVP_PKEY *key = NULL;
	int rc = text && share
		     ? veil_read_file(share_path, VEIL_RECOVERY_FILE_MAX, &json, &size, &d)
		     : VEIL_ENOMEM;
	if (!rc && veil_recovery_share_parse(json, size, &f, why, sizeof(why))) {
		veil_diag(&d, "%s: not a recovery share: %s", share_path, why);
		rc = VEIL_EINVAL;
	}
	if (!rc) {
		FILE *kf = fopen(key_path, "re");
		key = kf ? PEM_read_PrivateKey(kf, NULL, NULL, NULL) : NULL;
		if (kf)
			fclose(kf);
		if (!key) {
			veil_diag(&d, "--key %s: %s", key_path,
				  kf ? "not a PEM private key, or a wrong passphrase"
				     : strerror(errno));
			rc = VEIL_EINVAL;
		}
	}
	if (!rc && veil_recovery_share_open(key, &f, share)) {
		veil_diag(&d,
			  "%s does not open with %s: the share is sealed to another holder's key, "
			  "or the file was changed",
			  share_path, key_path);
		rc = VEIL_EINVAL;
	}
	if (!rc)
		rc = veil_recovery_opened_format(&f.meta, share, text, VEIL_RECOVERY_OPENED_MAX,
						 &size);
	if (!rc && write_all(STDOUT_FILENO, text, size)) {
		veil_diag(&d, "cannot write the share: %s", strerror(errno));
		rc = VEIL_EIO;
	}
	if (!rc)
		fprintf(stderr,
			"share %u of %u (%u needed) of CAS %s: keep this text secret until "
			"'veil-cas recover --share'\n",
			f.meta.x, f.meta.count, f.meta.threshold, f.meta.cas_key_hash);
	veil_diags_print(&d, stderr);
	veil_diags_free(&d);
	EVP_PKEY_free(key);
	free(json);
	veil_secure_free(text, VEIL_RECOVERY_OPENED_MAX);
	veil_secure_free(share, KEY_SIZE);
	return rc ? 1 : 0;
}

/* ---- veil-cas recover ---- */

static void recover_usage(FILE *f)
{
	fprintf(f, "Usage: veil-cas recover --data DIR --share FILE --share FILE ...\n\n"
		   "Restores the master key of the CAS in DIR, whose master.key is gone, from K\n"
		   "opened recovery shares ('veil-cas recovery-share open'). The shares must be\n"
		   "of this CAS (its TLS key hash, from DIR/tls/cert.pem) and of one split;\n"
		   "the key they give is checked against the split's commitment before it is\n"
		   "written to DIR/master.key (mode 0600). Fewer than K shares are refused and\n"
		   "nothing is written; an existing master.key is never overwritten.\n"
		   "Then start the CAS with 'veil-cas --data DIR'.\n\n"
		   "  --data DIR    the CAS's data folder\n"
		   "  --share FILE  an opened share; at least K of them, each once\n"
		   "  -h, --help    this help\n");
}

/* the key hash of DIR's CAS from its certificate */
static int data_key_hash(const char *data, char hash[static VEIL_KEY_HASH_HEX],
			 struct veil_diags *d)
{
	char *path = veil_path_join(data, "tls/cert.pem");
	FILE *f = path ? fopen(path, "re") : NULL;
	X509 *cert = f ? PEM_read_X509(f, NULL, NULL, NULL) : NULL;
	int rc = cert ? veil_cert_key_hash(cert, hash) : VEIL_EINVAL;
	if (!cert)
		veil_diag(
		    d,
		    "%s: cannot read the CAS certificate (recover gives the master key back "
		    "to an existing CAS's data folder: its TLS identity says which CAS it is)",
		    path ? path : data);
	if (f)
		fclose(f);
	X509_free(cert);
	free(path);
	return path ? rc : VEIL_ENOMEM;
}

/* an opened share's file into secure memory (*text, VEIL_RECOVERY_OPENED_MAX
 * + 1 bytes) */
static int read_opened(const char *path, char *text, size_t *size, struct veil_diags *d)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	size_t n = 0;
	if (fd < 0) {
		veil_diag(d, "--share %s: %s", path, strerror(errno));
		return VEIL_EIO;
	}
	for (;;) {
		ssize_t r = read(fd, text + n, VEIL_RECOVERY_OPENED_MAX + 1 - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			veil_diag(d, "--share %s: %s", path, strerror(errno));
			close(fd);
			return VEIL_EIO;
		}
		if (r == 0)
			break;
		n += (size_t)r;
		if (n > VEIL_RECOVERY_OPENED_MAX)
			break;
	}
	close(fd);
	*size = n;
	return 0;
}

static int write_master(const char *path, const uint8_t key[static KEY_SIZE], struct veil_diags *d)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		veil_diag(d, "%s: %s", path,
			  errno == EEXIST ? "a master key is there: recover never overwrites one"
					  : strerror(errno));
		return VEIL_EIO;
	}
	if (write(fd, key, KEY_SIZE) != KEY_SIZE || fsync(fd)) {
		veil_diag(d, "%s: %s", path, strerror(errno));
		close(fd);
		if (unlink(path))
			veil_diag(d, "%s is incomplete: remove it", path);
		return VEIL_EIO;
	}
	close(fd);
	char *dir = veil_dirname(path);
	int dfd = dir ? open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
	int rc = dfd >= 0 && !fsync(dfd) ? 0 : VEIL_EIO;
	if (rc)
		veil_diag(d, "%s: cannot make the new master key durable", dir ? dir : path);
	if (dfd >= 0)
		close(dfd);
	free(dir);
	return rc;
}

struct opened {
	const char *path;
	struct veil_recovery_meta meta;
	uint8_t *share; /* secure memory, KEY_SIZE */
};

/* the shares agree with the CAS and with each other; enough of them */
static int check_shares(const struct opened *s, size_t n, const char *cas_hash,
			struct veil_diags *d)
{
	for (size_t i = 0; i < n; i++) {
		if (strcmp(s[i].meta.cas_key_hash, cas_hash)) {
			veil_diag(
			    d, "--share %s is a share of another CAS (key hash %s; this CAS is %s)",
			    s[i].path, s[i].meta.cas_key_hash, cas_hash);
			return VEIL_EINVAL;
		}
		bool same_commitment = /* not secret: the split's public commitment */
		    !memcmp(s[i].meta.commitment, s[0].meta.commitment, VEIL_SHA256_SIZE);
		if (s[i].meta.threshold != s[0].meta.threshold ||
		    s[i].meta.count != s[0].meta.count || !same_commitment) {
			veil_diag(d, "--share %s and %s are of different splits of the master key",
				  s[0].path, s[i].path);
			return VEIL_EINVAL;
		}
		for (size_t j = 0; j < i; j++)
			if (s[i].meta.x == s[j].meta.x) {
				veil_diag(d,
					  "--share %s and %s are both share %u: give %u different "
					  "shares",
					  s[j].path, s[i].path, s[i].meta.x, s[0].meta.threshold);
				return VEIL_EINVAL;
			}
	}
	if (n < s[0].meta.threshold) {
		veil_diag(d,
			  "%zu share%s given; this CAS's master key was split %u of %u and needs "
			  "%u different shares (fewer reveal nothing of it): nothing written",
			  n, n == 1 ? "" : "s", s[0].meta.threshold, s[0].meta.count,
			  s[0].meta.threshold);
		return VEIL_EINVAL;
	}
	return 0;
}

int cas_recover_main(int argc, char **argv)
{
	static const char prog[] = "veil-cas recover";
	static const struct option opts[] = {{"data", required_argument, NULL, 'd'},
					     {"share", required_argument, NULL, 's'},
					     {"help", no_argument, NULL, 'h'},
					     {0}};
	const char *data = NULL, *paths[VEIL_SHAMIR_MAX_SHARES];
	size_t n = 0;
	int c;
	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		if (c == 'd') {
			data = optarg;
		} else if (c == 's') {
			if (n == VEIL_SHAMIR_MAX_SHARES)
				return veil_usage_error(prog, "--share: at most %d",
							VEIL_SHAMIR_MAX_SHARES);
			paths[n++] = optarg;
		} else if (c == 'h') {
			recover_usage(stdout);
			return 0;
		} else {
			return veil_getopt_error(prog, c, argc, argv, optind);
		}
	}
	if (!data)
		return veil_usage_error(prog, "--data DIR is required");
	if (!n)
		return veil_usage_error(prog, "--share FILE is required, once per opened share");
	if (optind < argc)
		return veil_usage_error(prog, "unexpected argument '%s'", argv[optind]);
	struct veil_diags d;
	veil_diags_init(&d);
	struct opened s[VEIL_SHAMIR_MAX_SHARES];
	uint8_t xs[VEIL_SHAMIR_MAX_SHARES], *key = veil_secure_alloc(KEY_SIZE),
					    got[VEIL_SHA256_SIZE];
	const uint8_t *ys[VEIL_SHAMIR_MAX_SHARES];
	char cas_hash[VEIL_KEY_HASH_HEX], *keyfile = veil_path_join(data, "master.key");
	char *text = veil_secure_alloc(VEIL_RECOVERY_OPENED_MAX + 1);
	memset(s, 0, sizeof(s));
	int rc = key && keyfile && text ? 0 : VEIL_ENOMEM;
	if (!rc && access(keyfile, F_OK) == 0) {
		veil_diag(&d,
			  "%s is there: recover writes a master key only where it is gone, "
			  "and never overwrites one",
			  keyfile);
		rc = VEIL_EINVAL;
	}
	if (!rc)
		rc = data_key_hash(data, cas_hash, &d);
	for (size_t i = 0; !rc && i < n; i++) {
		size_t size = 0;
		char why[200] = "";
		s[i].path = paths[i];
		if (!(s[i].share = veil_secure_alloc(KEY_SIZE)))
			rc = VEIL_ENOMEM;
		if (!rc)
			rc = read_opened(paths[i], text, &size, &d);
		if (!rc && veil_recovery_opened_parse(text, size, &s[i].meta, s[i].share, why,
						      sizeof(why))) {
			veil_diag(&d,
				  "--share %s: not an opened recovery share ('veil-cas "
				  "recovery-share open' prints one): %s",
				  paths[i], why);
			rc = VEIL_EINVAL;
		}
		OPENSSL_cleanse(text, VEIL_RECOVERY_OPENED_MAX + 1);
		xs[i] = (uint8_t)s[i].meta.x;
		ys[i] = s[i].share;
	}
	if (!rc)
		rc = check_shares(s, n, cas_hash, &d);
	if (!rc)
		rc = veil_shamir_combine(xs, ys, n, KEY_SIZE, key);
	if (!rc)
		rc = veil_recovery_commitment(key, cas_hash, got);
	if (!rc && CRYPTO_memcmp(got, s[0].meta.commitment, VEIL_SHA256_SIZE)) {
		veil_diag(&d, "the shares do not give this CAS's master key (the commitment "
			      "differs): a share was changed after it was opened; nothing written");
		rc = VEIL_EINVAL;
	}
	if (!rc)
		rc = write_master(keyfile, key, &d);
	if (!rc)
		printf("recovered the master key of CAS %s from %zu shares into %s; start it with "
		       "'veil-cas --data %s'\n",
		       cas_hash, n, keyfile, data);
	veil_diags_print(&d, stderr);
	veil_diags_free(&d);
	for (size_t i = 0; i < n; i++)
		if (s[i].share)
			veil_secure_free(s[i].share, KEY_SIZE);
	if (key)
		veil_secure_free(key, KEY_SIZE);
	if (text)
		veil_secure_free(text, VEIL_RECOVERY_OPENED_MAX + 1);
	free(keyfile);
	return rc ? 1 : 0;
}

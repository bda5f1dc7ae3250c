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
 * The file key provider's key (DATA/master.key) is split as it is. A token
 * (PKCS#11) cannot give its key out: there a recovery key pair is made
 * and its private key split ("a token's recovery key" below); every data
 * key also carries a copy sealed to its public key (vault.c), and recover
 * re-wraps them from those copies under a new key file.
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

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/param_build.h>
#include <openssl/params.h>
#include <openssl/pem.h>
#include <sqlite3.h>

#include "cas.h"
#include "recovery.h"
#include "veil/args.h"
#include "veil/audit_log.h"
#include "veil/recovery_share.h"
#include "veil/secure.h"
#include "veil/shamir.h"
#include "veil/store.h"

#include "vault_record.h"

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

/* in a child: master (32 bytes: the key file's key, or a token's recovery
 * private key) split, sealed, written */
static int split_secret(const struct cas_recovery_plan *p, const char *data, const char *key_hash,
			const uint8_t *master, struct veil_diags *d)
{
	size_t shares_size = (size_t)p->count * KEY_SIZE;
	uint8_t *shares = veil_secure_alloc(shares_size);
	char *dir = veil_path_join(data, "recovery");
	struct veil_recovery_meta meta = {.threshold = (unsigned)p->threshold, .count = p->count};
	int rc = shares && dir ? 0 : VEIL_ENOMEM;
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
	if (shares)
		veil_secure_free(shares, shares_size);
	free(dir);
	return rc;
}

/* in the child: the key file's key split */
static int split_and_write(const struct cas_recovery_plan *p, const char *data,
			   const char *key_hash, struct veil_diags *d)
{
	uint8_t *master = veil_secure_alloc(KEY_SIZE);
	char *keyfile = veil_path_join(data, "master.key");
	int rc = master && keyfile ? read_master(keyfile, master, d) : VEIL_ENOMEM;
	if (!rc)
		rc = split_secret(p, data, key_hash, master, d);
	if (master)
		veil_secure_free(master, KEY_SIZE);
	free(keyfile);
	return rc;
}

static void report_split(const struct cas_recovery_plan *p, const char *data, const char *what)
{
	fprintf(stderr,
		"veil-cas: %s split %ld of %u: %s/recovery/share-1.json .. share-%u.json, "
		"each sealed to one holder's key (in --recovery-key order); give each holder "
		"their file\n",
		what, p->threshold, p->count, data, p->count);
	for (unsigned i = 0; i < p->count; i++)
		fprintf(stderr, "veil-cas:   share-%u.json for %s\n", i + 1, p->paths[i]);
}

/* ---- a token's recovery key ----
 *
 * A child forked before the key process starts makes the P-256 key pair and
 * gives its public point (hex, one line) to veil-cas, which passes it to the
 * key process's --init (veil_vault_set_recovery). The private key stays in
 * that child until the CAS's TLS key hash exists (the shares are bound to
 * it); then the child splits it, seals and writes the shares, and exits. */

static int write_all_fd(int fd, const void *buf, size_t n)
{
	const char *p = buf;
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

static size_t read_full(int fd, char *buf, size_t n)
{
	size_t got = 0;
	while (got < n) {
		ssize_t r = read(fd, buf + got, n - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	return got;
}

static int token_child(const struct cas_recovery_plan *p, const char *data, int out, int in)
{
	struct veil_diags d;
	veil_diags_init(&d);
	EVP_PKEY *key = EVP_EC_gen(SN_X9_62_prime256v1);
	BIGNUM *bn = NULL;
	uint8_t point[VEIL_HPKE_ENC_SIZE], *secret = veil_secure_alloc(KEY_SIZE);
	char hex[2 * VEIL_HPKE_ENC_SIZE + 2], key_hash[VEIL_KEY_HASH_HEX + 1] = "";
	int rc = key && secret && !veil_hpke_point_of(key, point) &&
			 EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_PRIV_KEY, &bn) &&
			 BN_bn2binpad(bn, secret, KEY_SIZE) == KEY_SIZE
		     ? 0
		     : VEIL_EIO;
	BN_clear_free(bn);
	EVP_PKEY_free(key); /* only the scalar is kept, in secure memory */
	if (!rc) {
		veil_hex(point, sizeof(point), hex);
		hex[2 * VEIL_HPKE_ENC_SIZE] = '\n';
		rc = write_all_fd(out, hex, 2 * VEIL_HPKE_ENC_SIZE + 1);
	}
	close(out);
	/* the key hash, once veil-cas has its identity; EOF: --init failed */
	if (!rc && read_full(in, key_hash, VEIL_KEY_HASH_HEX - 1) != VEIL_KEY_HASH_HEX - 1)
		rc = VEIL_EINVAL;
	if (!rc)
		rc = split_secret(p, data, key_hash, secret, &d);
	if (secret)
		veil_secure_free(secret, KEY_SIZE);
	veil_diags_print(&d, stderr);
	veil_diags_free(&d);
	return rc;
}

int cas_recovery_token_begin(const struct cas_recovery_plan *p, const char *data,
			     struct cas_recovery_token *t, struct veil_diags *d)
{
	int a[2] = {-1, -1}, b[2] = {-1, -1};
	t->pid = -1;
	t->to_child = -1;
	if (pipe2(a, O_CLOEXEC) || pipe2(b, O_CLOEXEC)) {
		veil_diag(d, "cannot make the recovery key: %s", strerror(errno));
		goto fail;
	}
	fflush(NULL);
	t->pid = fork();
	if (t->pid < 0) {
		veil_diag(d, "cannot make the recovery key: %s", strerror(errno));
		goto fail;
	}
	if (t->pid == 0) {
		close(a[0]);
		close(b[1]);
		int rc = token_child(p, data, a[1], b[0]);
		fflush(stderr);
		_exit(rc ? 1 : 0);
	}
	close(a[1]);
	close(b[0]);
	size_t n = read_full(a[0], t->point_hex, 2 * VEIL_HPKE_ENC_SIZE + 1);
	close(a[0]);
	t->to_child = b[1];
	if (n != 2 * VEIL_HPKE_ENC_SIZE + 1 || t->point_hex[2 * VEIL_HPKE_ENC_SIZE] != '\n') {
		veil_diag(d, "the recovery key was not made");
		cas_recovery_token_abort(t);
		return VEIL_EIO;
	}
	t->point_hex[2 * VEIL_HPKE_ENC_SIZE] = 0;
	return 0;
fail:
	for (int i = 0; i < 2; i++) {
		if (a[i] >= 0)
			close(a[i]);
		if (b[i] >= 0)
			close(b[i]);
	}
	return VEIL_EIO;
}

int cas_recovery_token_finish(const struct cas_recovery_plan *p, struct cas_recovery_token *t,
			      const char *data, const char *key_hash, struct veil_diags *d)
{
	int rc = write_all_fd(t->to_child, key_hash, VEIL_KEY_HASH_HEX - 1);
	close(t->to_child);
	t->to_child = -1;
	int st = 0;
	while (waitpid(t->pid, &st, 0) < 0 && errno == EINTR)
		;
	t->pid = -1;
	if (rc || !WIFEXITED(st) || WEXITSTATUS(st)) {
		veil_diag(d,
			  "the recovery shares were not written: the CAS in %s has none; remove "
			  "%s (and its key in the token) and run --init again",
			  data, data);
		return VEIL_EIO;
	}
	report_split(p, data, "the token's recovery key");
	return 0;
}

void cas_recovery_token_abort(struct cas_recovery_token *t)
{
	if (t->to_child >= 0)
		close(t->to_child); /* EOF: the child writes nothing */
	t->to_child = -1;
	if (t->pid > 0)
		while (waitpid(t->pid, NULL, 0) < 0 && errno == EINTR)
			;
	t->pid = -1;
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
	report_split(p, data, "master key");
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
	/* stdout without stdio's buffer: the text is secret */
	if (!rc && write_all_fd(STDOUT_FILENO, text, size)) {
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
		   "For a CAS whose master key was in a PKCS#11 token (DIR/master.key is its\n"
		   "record), the shares give its recovery key: every data key is re-wrapped\n"
		   "from its recovery copy under a new key file, which replaces the record.\n"
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

/* ---- recovery of a token's CAS ---- */

/* the recovery key pair from its private scalar (the public point
 * computed: HPKE's open needs it) */
static EVP_PKEY *p256_from_scalar(const uint8_t s[static KEY_SIZE])
{
	EVP_PKEY *pkey = NULL;
	BIGNUM *priv = BN_secure_new();
	EC_GROUP *g = EC_GROUP_new_by_curve_name(NID_X9_62_prime256v1);
	EC_POINT *pub = g ? EC_POINT_new(g) : NULL;
	uint8_t pt[VEIL_HPKE_ENC_SIZE];
	OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
	OSSL_PARAM *params = NULL;
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
	if (priv && BN_bin2bn(s, KEY_SIZE, priv) && pub &&
	    EC_POINT_mul(g, pub, priv, NULL, NULL, NULL) &&
	    EC_POINT_point2oct(g, pub, POINT_CONVERSION_UNCOMPRESSED, pt, sizeof(pt), NULL) ==
		sizeof(pt) &&
	    bld &&
	    OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, SN_X9_62_prime256v1,
					    0) &&
	    OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, pt, sizeof(pt)) &&
	    OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_PRIV_KEY, priv) &&
	    (params = OSSL_PARAM_BLD_to_param(bld)) && ctx && EVP_PKEY_fromdata_init(ctx) == 1 &&
	    EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_KEYPAIR, params) != 1)
		pkey = NULL;
	EVP_PKEY_CTX_free(ctx);
	/* the scalar's copy in params wiped (OpenSSL 3.0 has no
	 * OSSL_PARAM_clear_free) */
	for (OSSL_PARAM *q = params; q && q->key; q++)
		if (q->data)
			OPENSSL_cleanse(q->data, q->data_size);
	OSSL_PARAM_free(params);
	OSSL_PARAM_BLD_free(bld);
	EC_POINT_free(pub);
	EC_GROUP_free(g);
	BN_clear_free(priv);
	return pkey;
}

/* master.key is a PKCS#11 provider record (not a key) */
static bool is_record(const char *path)
{
	char head[sizeof(RECORD_MAGIC)] = "";
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	ssize_t n = fd < 0 ? -1 : read(fd, head, sizeof(head) - 1);
	if (fd >= 0)
		close(fd);
	/* not secret: the record's magic */
	return n == (ssize_t)sizeof(head) - 1 && !memcmp(head, RECORD_MAGIC, sizeof(head) - 1);
}

/* every row's data key from its recovery copy under the recovered code-key
 * root, one transaction (nothing changed if one does not open); *count
 * re-wrapped */
static int recover_rows(const char *data, struct veil_vault *v, long long *count,
			struct veil_diags *d)
{
	char *path = veil_path_join(data, "cas.db");
	sqlite3 *db = NULL;
	sqlite3_stmt *list = NULL, *put = NULL;
	int rc = VEIL_EIO, x;
	*count = 0;
	if (!path)
		return VEIL_ENOMEM;
	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK ||
	    sqlite3_busy_timeout(db, 10000) != SQLITE_OK ||
	    sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(db, "SELECT namespace, wrapped_key, blob FROM policies", -1, &list,
			       NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(db, "UPDATE policies SET wrapped_key = ?1 WHERE namespace = ?2", -1,
			       &put, NULL) != SQLITE_OK) {
		veil_diag(d, "%s: %s", path, db ? sqlite3_errmsg(db) : "out of memory");
		goto out;
	}
	/* an UPDATE of the row a SELECT stands on is fine in SQLite (the
	 * primary key does not change) */
	while ((x = sqlite3_step(list)) == SQLITE_ROW) {
		const char *ns = (const char *)sqlite3_column_text(list, 0);
		uint8_t out[VEIL_VAULT_WRAPPED_MAX];
		size_t out_size = 0;
		if (veil_vault_recovery_rewrap(v, ns, sqlite3_column_blob(list, 1),
					       (size_t)sqlite3_column_bytes(list, 1), out,
					       &out_size)) {
			veil_diag(d,
				  "namespace %s: its data key has no recovery copy that opens with "
				  "the recovered key; nothing written",
				  ns);
			rc = VEIL_EINVAL;
			goto out;
		}
		/* The copy is sealed to a public key: anyone who could write the
		 * store could have put another key there. The row's own payload
		 * must open with the key it gives, or nothing is written. */
		const uint8_t *w = out_size ? out : sqlite3_column_blob(list, 1);
		size_t w_size = out_size ? out_size : (size_t)sqlite3_column_bytes(list, 1);
		uint8_t *plain = NULL;
		size_t plain_size = 0;
		if (veil_vault_open(v, ns, w, w_size, sqlite3_column_blob(list, 2),
				    (size_t)sqlite3_column_bytes(list, 2), &plain, &plain_size)) {
			veil_diag(
			    d,
			    "namespace %s: the data key its recovery copy gives does not open "
			    "its stored policy (the copy was replaced?); nothing written",
			    ns);
			rc = VEIL_EINVAL;
			goto out;
		}
		veil_secure_free(plain, plain_size);
		if (!out_size)
			continue;
		sqlite3_reset(put);
		sqlite3_bind_blob(put, 1, out, (int)out_size, SQLITE_TRANSIENT);
		sqlite3_bind_text(put, 2, ns, -1, SQLITE_TRANSIENT);
		if (sqlite3_step(put) != SQLITE_DONE) {
			veil_diag(d, "%s: namespace %s: %s", path, ns, sqlite3_errmsg(db));
			goto out;
		}
		(*count)++;
	}
	if (x != SQLITE_DONE || sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
		veil_diag(d, "%s: %s", path, sqlite3_errmsg(db));
		goto out;
	}
	rc = 0;
out:
	sqlite3_finalize(list);
	sqlite3_finalize(put);
	if (rc && db)
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	sqlite3_close(db);
	free(path);
	return rc;
}

/* the token is gone: the recovery key from the shares opens the code-key
 * root (the new key file) and every data key's copy; the rows re-wrapped
 * first (a rerun skips rows done), master.key replaced last */
static int recover_token(const char *data, const char *keyfile, const uint8_t *secret,
			 const char *cas_hash, size_t nshares, struct veil_diags *d)
{
	EVP_PKEY *priv = p256_from_scalar(secret);
	struct veil_vault *v = NULL;
	struct veil_audit *audit = NULL;
	char *auditlog = veil_path_join(data, "audit.log");
	long long count = 0;
	int rc = priv ? 0 : VEIL_EINVAL;
	if (rc)
		veil_diag(d, "the shares do not give a P-256 recovery key");
	/* the audit log's lock: a running veil-cas (its token still there)
	 * must not see its rows change under it */
	if (!rc && !auditlog)
		rc = VEIL_ENOMEM;
	if (!rc && (rc = veil_audit_open(auditlog, &audit, d)))
		veil_diag(d, "stop veil-cas before recovering its master key; nothing written");
	if (!rc)
		rc = veil_vault_recovery_open(keyfile, priv, &v, d);
	if (!rc)
		rc = recover_rows(data, v, &count, d);
	if (!rc)
		rc = veil_vault_recovery_write_key(v, keyfile, d);
	if (!rc) {
		char detail[160];
		snprintf(
		    detail, sizeof(detail),
		    "pkcs11 recovery key from %zu shares: %lld data keys re-wrapped under a new "
		    "key file",
		    nshares, count);
		struct veil_audit_event ev = {.event = "recover", .status = 200, .detail = detail};
		if (veil_audit_append(audit, &ev))
			veil_diag(d, "%s: the recovery is done but its audit entry was not written",
				  auditlog);
	}
	veil_audit_close(audit);
	free(auditlog);
	if (!rc)
		printf("recovered CAS %s from %zu shares: its token's recovery key re-wrapped %lld "
		       "data keys under a new key file, %s (the token is no longer used); start "
		       "it with 'veil-cas --data %s'\n",
		       cas_hash, nshares, count, keyfile, data);
	veil_vault_close(v);
	EVP_PKEY_free(priv);
	return rc;
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
	/* a token's CAS: master.key is its record, the shares are of its
	 * recovery key */
	bool token = !rc && is_record(keyfile);
	if (!rc && !token && access(keyfile, F_OK) == 0) {
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
	if (!rc && token)
		rc = recover_token(data, keyfile, key, cas_hash, n, &d);
	else if (!rc)
		rc = write_master(keyfile, key, &d);
	if (!rc && !token)
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

/* Evidence collection: configfs-tsm (TDX, SEV-SNP guests), Gramine's
 * /dev/attestation (SGX), or none (the caller asks veil-las). Formats and
 * ownership in include/veil/collect.h.
 *
 * configfs-tsm (Linux Documentation/ABI/testing/configfs-tsm-report): every
 * call makes an entry of its own under report/, reads "provider" and
 * "generation", writes the 64 bytes of report data to "inblob", reads
 * "outblob" (and, for sev_guest, "auxblob"), and reads "generation" again.
 * The entry is shared with anyone who can write to configfs; the generation
 * counts writes to it, so first + 1 means ours was the only one and the
 * report is over our report data. configfs applies a binary attribute's
 * write at close() and drops the provider's error, so the generation is
 * also how a refused write shows. Anything else: a fresh entry, up to
 * TSM_ATTEMPTS times, then a refusal. The entry is removed on every path.
 *
 * Nothing here parses the evidence beyond its size and, for quotes, the
 * header's version (the CAS's verifiers read the rest); every pseudo file is
 * read through read_attr, bounded. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "veil/collect.h"
#include "veil/common.h"
#include "veil/cursor.h"

#define TSM_ROOT "/sys/kernel/config/tsm"
#define GRAMINE_ROOT "/dev/attestation"
/* a fresh entry per attempt; a writer that keeps changing ours is an attack
 * or a broken agent, not something to wait out */
#define TSM_ATTEMPTS 3
/* provider, generation, attestation_type: a word or a number and '\n' */
#define SMALL_ATTR_MAX 64
/* SEV_REPORT_SIZE in Linux's sev-guest driver: the report without the
 * firmware's response header, as outblob gives it */
#define SNP_REPORT_SIZE 1184
#define TDX_TEE_TYPE 0x81
/* tsm_attempt's "another writer changed the entry": try a fresh one */
#define TSM_RETRY 1

#define TEST_WAIT_MS 1000

static void say(char *why, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void say(char *why, size_t cap, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, cap, fmt, ap);
	va_end(ap);
}

/* A provider or type name as read, fit for a message: printable ASCII only
 * (it comes from a file anyone with configfs access could have faked). */
static void printable(const char *in, char *out, size_t cap)
{
	size_t n = 0;
	for (; *in && n + 1 < cap; in++)
		out[n++] = *in >= 0x20 && *in < 0x7f ? *in : '?';
	out[n] = '\0';
}

/* dir/name. Roots longer than ROOT_MAX are refused up front, so entry
 * paths (root, "/report/veil-PID-HEX", "/" and an attribute name) fit. */
#define ROOT_MAX (PATH_MAX - 128)
static const char *attr_path(char out[static PATH_MAX], const char *dir, const char *name)
{
	size_t d = strlen(dir), n = strlen(name);
	if (d + 1 + n >= PATH_MAX)
		return "(path too long)";
	memcpy(out, dir, d);
	out[d] = '/';
	memcpy(out + d + 1, name, n + 1);
	return out;
}

static const char *root_of(const char *test_env, const char *root, bool *fake)
{
	*fake = false;
#ifdef VEIL_TEST_HOOKS
	const char *r = getenv(test_env);
	if (r && *r) {
		*fake = true;
		return r;
	}
#endif
	return root;
}

/* open(2) of an attribute. patient: the tree is a test's fake (a plain
 * folder, VEIL_TEST_HOOKS only), where attribute files appear when the
 * test's helper has seen the new entry, or for outblob the write of inblob,
 * rather than at mkdir as on configfs: wait for them up to TEST_WAIT_MS. The
 * real tree never waits. */
static int open_attr(const char *path, int flags, bool patient)
{
	int fd = open(path, flags | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
#ifdef VEIL_TEST_HOOKS
	for (int ms = 0; fd < 0 && errno == ENOENT && patient && ms < TEST_WAIT_MS; ms++) {
		nanosleep(&(struct timespec){.tv_nsec = 1000000}, NULL);
		fd = open(path, flags | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
	}
#else
	(void)patient;
#endif
	return fd;
}

/* Every pseudo file is read here: to its end (a pseudo file's st_size says
 * nothing), refusing more than max bytes. *out has size + 1 bytes, the last
 * a NUL, for the text attributes; the caller frees it. VEIL_ENOENT when the
 * file does not exist. */
static int read_attr(const char *path, bool patient, size_t max, uint8_t **out, size_t *size,
		     char *why, size_t cap)
{
	int fd = open_attr(path, O_RDONLY, patient);
	if (fd < 0) {
		int e = errno;
		say(why, cap, "cannot open %s: %s", path, strerror(e));
		return e == ENOENT ? VEIL_ENOENT : VEIL_EIO;
	}
	int rc = 0;
	size_t n = 0;
	uint8_t *buf = malloc(max + 2); /* one more to see "too large", and the NUL */
	if (!buf) {
		rc = VEIL_ENOMEM;
		say(why, cap, "out of memory reading %s", path);
		goto out;
	}
	for (;;) {
		ssize_t r = read(fd, buf + n, max + 1 - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			rc = VEIL_EIO;
			say(why, cap, "cannot read %s: %s", path, strerror(errno));
			goto out;
		}
		if (r == 0)
			break;
		n += (size_t)r;
		if (n > max) {
			rc = VEIL_ELIMIT;
			say(why, cap, "%s holds more than %zu bytes", path, max);
			goto out;
		}
	}
	buf[n] = 0;
	*out = buf;
	*size = n;
	buf = NULL;
out:
	free(buf);
	close(fd);
	return rc;
}

/* A small text attribute ("tdx_guest\n", "7\n") without its newline. */
static int read_word(const char *path, bool patient, char out[static SMALL_ATTR_MAX + 1], char *why,
		     size_t cap)
{
	uint8_t *p = NULL;
	size_t n = 0;
	int rc = read_attr(path, patient, SMALL_ATTR_MAX, &p, &n, why, cap);
	if (rc)
		return rc;
	if (n && p[n - 1] == '\n')
		n--;
	memcpy(out, p, n);
	out[n] = '\0';
	free(p);
	if (strlen(out) != n) {
		say(why, cap, "%s holds a NUL byte", path);
		return VEIL_EINVAL;
	}
	return 0;
}

/* configfs prints the generation as "%lu\n" */
static int read_generation(const char *dir, bool patient, unsigned long long *gen, char *why,
			   size_t cap)
{
	char path[PATH_MAX], word[SMALL_ATTR_MAX + 1], shown[SMALL_ATTR_MAX + 1];
	attr_path(path, dir, "generation");
	int rc = read_word(path, patient, word, why, cap);
	if (rc)
		return rc;
	size_t digits = strspn(word, "0123456789");
	errno = 0;
	unsigned long long v = digits ? strtoull(word, NULL, 10) : 0;
	if (!digits || word[digits] || errno) {
		printable(word, shown, sizeof(shown));
		say(why, cap, "%s holds '%s', not a generation number", path, shown);
		return VEIL_EINVAL;
	}
	*gen = v;
	return 0;
}

static int write_attr(const char *path, bool patient, const void *p, size_t n, char *why,
		      size_t cap)
{
	int fd = open_attr(path, O_WRONLY, patient);
	if (fd < 0) {
		say(why, cap, "cannot open %s for writing: %s", path, strerror(errno));
		return VEIL_EIO;
	}
	ssize_t w;
	do
		w = write(fd, p, n);
	while (w < 0 && errno == EINTR);
	int e = w < 0 ? errno : 0;
	/* configfs applies a binary attribute's write at close */
	if (close(fd) && !e)
		e = errno;
	if (e || (size_t)w != n) {
		say(why, cap, "cannot write %zu bytes to %s: %s", n, path,
		    e ? strerror(e) : "short write");
		return VEIL_EIO;
	}
	return 0;
}

/* {"platform":P,"version":1,KEY:base64(blob)[,"auxblob":base64(aux)]} */
static int evidence_json(const char *platform, const char *key, const uint8_t *blob,
			 size_t blob_size, const uint8_t *aux, size_t aux_size, char **out)
{
	char *b = veil_b64_encode(blob, blob_size),
	     *a = aux_size ? veil_b64_encode(aux, aux_size) : NULL;
	json_t *j = b && (a || !aux_size)
			? json_pack("{s:s, s:i, s:s}", "platform", platform, "version", 1, key, b)
			: NULL;
	if (j && a && json_object_set_new(j, "auxblob", json_string(a))) {
		json_decref(j);
		j = NULL;
	}
	char *s = j ? json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
	json_decref(j);
	free(b);
	free(a);
	if (!s)
		return VEIL_ENOMEM;
	*out = s;
	return 0;
}

/* A DCAP quote's header starts with its version (le16), the attestation key
 * type (le16) and the TEE type (le32: 0 SGX, 0x81 TDX); that much says the
 * platform gave a quote of the kind named, the verifier checks the rest. */
static int check_quote_header(const uint8_t *q, size_t n, const char *what, uint16_t v_min,
			      uint16_t v_max, uint32_t tee_type, char *why, size_t cap)
{
	struct veil_cursor c;
	uint16_t version = 0, key_type = 0;
	uint32_t tee = 0;
	veil_cur_init(&c, q, n);
	veil_cur_le16(&c, &version);
	veil_cur_le16(&c, &key_type);
	veil_cur_le32(&c, &tee);
	if (!veil_cur_ok(&c)) {
		say(why, cap, "%s is %zu bytes, too short for a quote header", what, n);
		return VEIL_EINVAL;
	}
	if (version < v_min || version > v_max || tee != tee_type) {
		say(why, cap, "%s is not the quote expected: version %u, TEE type 0x%x", what,
		    version, tee);
		return VEIL_EINVAL;
	}
	return 0;
}

struct tsm_kind {
	const char *provider, *platform, *key;
	bool auxblob;
};
static const struct tsm_kind tsm_kinds[] = {
    {"tdx_guest", "tdx", "quote", false},
    {"sev_guest", "snp", "report", true},
};

/* One report through the entry dir (made by the caller): 0, TSM_RETRY when
 * another writer changed the entry, or an error. */
static int tsm_report(const char *dir, bool patient, const uint8_t rd[static VEIL_REPORT_DATA_SIZE],
		      char **out, const struct tsm_kind **kind_out, unsigned long long gens[2],
		      char *why, size_t cap)
{
	char path[PATH_MAX], provider[SMALL_ATTR_MAX + 1], shown[SMALL_ATTR_MAX + 1];
	uint8_t *blob = NULL, *aux = NULL;
	size_t blob_size = 0, aux_size = 0;
	const struct tsm_kind *kind = NULL;
	/* provider first: a test's helper makes it last of the entry's first files */
	attr_path(path, dir, "provider");
	int rc = read_word(path, patient, provider, why, cap);
	if (rc)
		goto out;
	for (size_t i = 0; i < VEIL_ARRAY_LEN(tsm_kinds) && !kind; i++)
		if (!strcmp(provider, tsm_kinds[i].provider))
			kind = &tsm_kinds[i];
	if (!kind) {
		printable(provider, shown, sizeof(shown));
		say(why, cap,
		    "configfs-tsm provider '%s' is not supported (veil knows tdx_guest and "
		    "sev_guest)",
		    shown);
		rc = VEIL_EINVAL;
		goto out;
	}
	if ((rc = read_generation(dir, patient, &gens[0], why, cap)))
		goto out;
	attr_path(path, dir, "inblob");
	if ((rc = write_attr(path, patient, rd, VEIL_REPORT_DATA_SIZE, why, cap)))
		goto out;
	attr_path(path, dir, "outblob");
	if ((rc = read_attr(path, patient, VEIL_COLLECT_BLOB_MAX, &blob, &blob_size, why, cap)))
		goto out;
	if (kind->auxblob) {
		/* optional: absent where the kernel hides it, empty without
		 * certificates from the host; a test's helper makes it before
		 * outblob, so it is never waited for */
		attr_path(path, dir, "auxblob");
		rc = read_attr(path, false, VEIL_COLLECT_BLOB_MAX, &aux, &aux_size, why, cap);
		if (rc == VEIL_ENOENT)
			rc = 0;
		if (rc)
			goto out;
	}
	if ((rc = read_generation(dir, patient, &gens[1], why, cap)))
		goto out;
	if (gens[1] != gens[0] + 1) {
		rc = TSM_RETRY;
		goto out;
	}
	attr_path(path, dir, "outblob");
	if (!blob_size) {
		say(why, cap, "%s is empty: %s gave no report", path, provider);
		rc = VEIL_EIO;
		goto out;
	}
	if (!strcmp(kind->platform, "tdx"))
		rc = check_quote_header(blob, blob_size, path, 4, 5, TDX_TEE_TYPE, why, cap);
	else if (blob_size != SNP_REPORT_SIZE) {
		say(why, cap, "%s is %zu bytes, not the %d of an SEV-SNP report", path, blob_size,
		    SNP_REPORT_SIZE);
		rc = VEIL_EINVAL;
	}
	if (!rc &&
	    (rc = evidence_json(kind->platform, kind->key, blob, blob_size, aux, aux_size, out)))
		say(why, cap, "out of memory");
	if (!rc)
		*kind_out = kind;
out:
	free(blob);
	free(aux);
	/* a missing attribute in a tree that is there is a failure, never
	 * "no provider here" */
	return rc == VEIL_ENOENT ? VEIL_EIO : rc;
}

/* rmdir; on configfs that drops the attributes with the entry. A test's
 * fake entry is a plain folder whose files rmdir leaves, so there (only
 * with VEIL_TEST_HOOKS and a fake root) they go first. */
static int remove_entry(const char *dir, bool fake)
{
#ifdef VEIL_TEST_HOOKS
	static const char *const attrs[] = {"provider", "generation", "inblob", "outblob",
					    "auxblob"};
	if (fake)
		for (size_t i = 0; i < VEIL_ARRAY_LEN(attrs); i++) {
			char path[PATH_MAX];
			unlink(attr_path(path, dir, attrs[i]));
		}
#else
	(void)fake;
#endif
	return rmdir(dir);
}

/* 0, TSM_RETRY, VEIL_ENOENT (no provider behind the tree), or an error */
static int tsm_attempt(const char *report_dir, bool fake,
		       const uint8_t rd[static VEIL_REPORT_DATA_SIZE], char **out,
		       const struct tsm_kind **kind, unsigned long long gens[2], char *why,
		       size_t cap)
{
	uint8_t r[8];
	char hex[2 * sizeof(r) + 1], dir[PATH_MAX];
	if (RAND_bytes(r, sizeof(r)) != 1) {
		say(why, cap, "no randomness for a configfs-tsm entry name");
		return VEIL_EIO;
	}
	veil_hex(r, sizeof(r), hex);
	int n = snprintf(dir, sizeof(dir), "%s/veil-%ld-%s", report_dir, (long)getpid(), hex);
	if (n < 0 || (size_t)n >= sizeof(dir)) {
		say(why, cap, "configfs-tsm path %s is too long", report_dir);
		return VEIL_EINVAL;
	}
	if (mkdir(dir, 0700)) {
		int e = errno;
		say(why, cap, "cannot make a configfs-tsm entry %s: %s", dir, strerror(e));
		/* the tsm module answers ENXIO while no TEE driver registered */
		return e == ENXIO ? VEIL_ENOENT : VEIL_EIO;
	}
	int rc = tsm_report(dir, fake, rd, out, kind, gens, why, cap);
	if (remove_entry(dir, fake)) {
		int e = errno;
		if (rc == 0 || rc == TSM_RETRY) {
			if (!rc) {
				free(*out);
				*out = NULL;
			}
			rc = VEIL_EIO;
			why[0] = '\0';
		}
		size_t len = strlen(why);
		say(why + len, cap - len, "%scannot remove the configfs-tsm entry %s: %s",
		    len ? "; and " : "", dir, strerror(e));
	}
	return rc;
}

static int collect_tsm(const char *report_dir, bool fake,
		       const uint8_t rd[static VEIL_REPORT_DATA_SIZE], char **evidence,
		       char provider_out[static VEIL_COLLECT_PROVIDER_MAX], char *why, size_t cap)
{
	unsigned long long gens[2] = {0, 0};
	for (int attempt = 0; attempt < TSM_ATTEMPTS; attempt++) {
		char *out = NULL;
		const struct tsm_kind *kind = NULL;
		int rc = tsm_attempt(report_dir, fake, rd, &out, &kind, gens, why, cap);
		if (rc == TSM_RETRY)
			continue;
		if (rc)
			return rc;
		*evidence = out;
		say(provider_out, VEIL_COLLECT_PROVIDER_MAX, "tsm:%s", kind->provider);
		return 0;
	}
	say(why, cap,
	    "configfs-tsm: another writer changed the report entry %d times in a row (the last "
	    "time its generation went from %llu to %llu, not %llu): refusing reports that may "
	    "not be over this report data",
	    TSM_ATTEMPTS, gens[0], gens[1], gens[0] + 1);
	return VEIL_EIO;
}

/* Gramine: attestation_type says whether the enclave was built with remote
 * attestation; "none" is a Gramine without it (ENOENT: veil-las then). */
static int collect_gramine(const char *root, const uint8_t rd[static VEIL_REPORT_DATA_SIZE],
			   char **evidence, char provider_out[static VEIL_COLLECT_PROVIDER_MAX],
			   char *why, size_t cap)
{
	char path[PATH_MAX], type[SMALL_ATTR_MAX + 1], shown[SMALL_ATTR_MAX + 1];
	attr_path(path, root, "attestation_type");
	int rc = read_word(path, false, type, why, cap);
	if (rc == VEIL_ENOENT)
		why[0] = '\0';
	if (rc)
		return rc;
	if (!strcmp(type, "none")) {
		say(why, cap, "%s says none: Gramine without remote attestation", path);
		return VEIL_ENOENT;
	}
	if (strcmp(type, "dcap")) {
		printable(type, shown, sizeof(shown));
		say(why, cap, "%s is '%s': veil supports Gramine's dcap attestation only", path,
		    shown);
		return VEIL_EINVAL;
	}
	attr_path(path, root, "user_report_data");
	if ((rc = write_attr(path, false, rd, VEIL_REPORT_DATA_SIZE, why, cap)))
		return rc;
	uint8_t *quote = NULL;
	size_t size = 0;
	attr_path(path, root, "quote");
	rc = read_attr(path, false, VEIL_COLLECT_BLOB_MAX, &quote, &size, why, cap);
	if (!rc)
		rc = check_quote_header(quote, size, path, 3, 3, 0, why, cap);
	if (!rc && (rc = evidence_json("sgx", "quote", quote, size, NULL, 0, evidence)))
		say(why, cap, "out of memory");
	if (!rc)
		say(provider_out, VEIL_COLLECT_PROVIDER_MAX, "gramine:dcap");
	free(quote);
	return rc == VEIL_ENOENT ? VEIL_EIO : rc;
}

int veil_collect(const uint8_t report_data[static VEIL_REPORT_DATA_SIZE], char **evidence_json,
		 char provider_out[static VEIL_COLLECT_PROVIDER_MAX], char *why, size_t cap)
{
	char note[512] = "", report_dir[PATH_MAX];
	bool fake;
	struct stat st;
	why[0] = '\0';
	const char *tsm = root_of("VEIL_TEST_TSM_ROOT", TSM_ROOT, &fake);
	const char *gramine = root_of("VEIL_TEST_GRAMINE_ROOT", GRAMINE_ROOT, &(bool){false});
	if (strlen(tsm) > ROOT_MAX || strlen(gramine) > ROOT_MAX) {
		say(why, cap, "an evidence provider's root is longer than %d bytes", ROOT_MAX);
		return VEIL_EINVAL;
	}
	if (!stat(attr_path(report_dir, tsm, "report"), &st) && S_ISDIR(st.st_mode)) {
		if (!access(report_dir, W_OK)) {
			int rc = collect_tsm(report_dir, fake, report_data, evidence_json,
					     provider_out, why, cap);
			if (rc != VEIL_ENOENT)
				return rc;
			say(note, sizeof(note), "%s", why);
		} else {
			say(note, sizeof(note), "configfs-tsm at %s is not writable (%s)",
			    report_dir, strerror(errno));
		}
	}
	/* /dev/attestation is Gramine's own in-enclave file system: it has its
	 * files from the start, so nothing is waited for */
	int rc = collect_gramine(gramine, report_data, evidence_json, provider_out, why, cap);
	if (rc == VEIL_ENOENT && note[0]) {
		size_t len = strlen(why);
		say(why + len, cap - len, "%s%s", len ? "; " : "", note);
	}
	return rc;
}

/* The vault (src/cas/vault.c) and the SQLite store (src/cas/store_sqlite.c). */
#include <dirent.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "veil/secrets.h"
#include "veil/store.h"

static char dir[64];

static int setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/veil-vault-XXXXXX");
	return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	assert_int_equal(veil_remove_tree(dir), 0);
	return 0;
}

static struct veil_vault *open_vault(void)
{
	char path[128];
	snprintf(path, sizeof(path), "%s/master.key", dir);
	struct veil_vault *v = NULL;
	struct veil_diags d;
	veil_diags_init(&d);
	assert_int_equal(veil_vault_open_file(path, access(path, F_OK) != 0, &v, &d), 0);
	veil_diags_free(&d);
	return v;
}

static void test_master_key_file_is_private(void **state)
{
	(void)state;
	veil_vault_close(open_vault());
	char path[128];
	snprintf(path, sizeof(path), "%s/master.key", dir);
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(st.st_size, 32);
	chmod(path, 0644);
	struct veil_vault *v = NULL;
	struct veil_diags d;
	veil_diags_init(&d);
	assert_int_equal(veil_vault_open_file(path, false, &v, &d), VEIL_EINVAL);
	assert_non_null(strstr(d.msgs[0], "chmod 600"));
	veil_diags_free(&d);
	chmod(path, 0600);
	assert_int_equal(truncate(path, 31), 0);
	veil_diags_init(&d);
	assert_int_equal(veil_vault_open_file(path, false, &v, &d), VEIL_EINVAL);
	veil_diags_free(&d);
	unlink(path);
}

static void test_missing_key_is_not_recreated(void **state)
{
	(void)state;
	char path[128];
	snprintf(path, sizeof(path), "%s/master.key", dir);
	struct veil_vault *v = NULL;
	struct veil_diags d;
	veil_diags_init(&d);
	assert_int_not_equal(veil_vault_open_file(path, false, &v, &d), 0);
	assert_null(v);
	assert_int_not_equal(access(path, F_OK), 0);
	veil_diags_free(&d);
	veil_diags_init(&d);
	assert_int_equal(veil_vault_open_file(path, true, &v, &d), 0);
	veil_vault_close(v);
	v = NULL;
	/* creating again never overwrites the key that wraps existing data */
	assert_int_not_equal(veil_vault_open_file(path, true, &v, &d), 0);
	assert_null(v);
	veil_diags_free(&d);
	unlink(path);
}

/* --master-key URIs that must be refused before any module is loaded or
 * file written, each with the reason */
static void test_pkcs11_bad_uri_refused(void **state)
{
	(void)state;
	static const struct {
		const char *uri, *why;
	} cases[] = {
	    {"file:/tmp/k", "not 'file' or a pkcs11: URI"},
	    {"pkcs11:object=veil", "needs token= and object="},
	    {"pkcs11:token=veil", "needs token= and object="},
	    {"pkcs11:token=veil;object=k;serial=42", "attribute 'serial'"},
	    {"pkcs11:token=%zz;object=k", "malformed attribute"},
	    {"pkcs11:token=%4;object=k", "malformed attribute"},
	    {"pkcs11:token=a%00b;object=k", "malformed attribute"},
	    {"pkcs11:token;object=k", "malformed attribute"},
	    {"pkcs11:token=veil;object=k;type=private", "type='private'"},
	    {"pkcs11:token=123456789012345678901234567890123;object=k", "too long"},
	};
	char path[128];
	snprintf(path, sizeof(path), "%s/master.key", dir);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct veil_vault *v = NULL;
		struct veil_diags d;
		veil_diags_init(&d);
		setenv("VEIL_PKCS11_PIN", "1234", 1);
		assert_int_equal(veil_vault_open_pkcs11(path, cases[i].uri, NULL, true, &v, &d),
				 VEIL_EINVAL);
		assert_null(v);
		assert_true(d.count >= 1);
		if (!strstr(d.msgs[0], cases[i].why))
			fail_msg("%s: got '%s', expected '%s'", cases[i].uri, d.msgs[0],
				 cases[i].why);
		assert_int_not_equal(access(path, F_OK), 0);
		veil_diags_free(&d);
	}
	unsetenv("VEIL_PKCS11_PIN");
}

/* a module that is not there, and no PIN: named; the PIN is wiped from the
 * environment once read */
static void test_pkcs11_missing_module_and_pin_named(void **state)
{
	(void)state;
	char path[128];
	snprintf(path, sizeof(path), "%s/master.key", dir);
	struct veil_vault *v = NULL;
	struct veil_diags d;
	veil_diags_init(&d);
	unsetenv("VEIL_PKCS11_PIN");
	assert_int_equal(
	    veil_vault_open_pkcs11(path, "pkcs11:token=veil;object=k", NULL, true, &v, &d),
	    VEIL_EINVAL);
	assert_non_null(strstr(d.msgs[0], "no PIN for PKCS#11 token 'veil'"));
	veil_diags_free(&d);
	veil_diags_init(&d);
	setenv("VEIL_PKCS11_PIN", "1234", 1);
	assert_int_not_equal(veil_vault_open_pkcs11(
				 path,
				 "pkcs11:token=my%20token;object=k?module-path=/nonexistent/p11.so",
				 NULL, true, &v, &d),
			     0);
	assert_null(v);
	assert_non_null(strstr(d.msgs[0], "PKCS#11 module /nonexistent/p11.so cannot be loaded"));
	assert_null(getenv("VEIL_PKCS11_PIN"));
	assert_int_not_equal(access(path, F_OK), 0);
	veil_diags_free(&d);
}

/* master.key that says it is a provider record but is not one */
static void test_pkcs11_bad_record_refused(void **state)
{
	(void)state;
	char path[128];
	snprintf(path, sizeof(path), "%s/master.key", dir);
	static const char *const bad[] = {
	    "veil-master-key-provider 1\nprovider pkcs11\n",
	    "veil-master-key-provider 1\nprovider tee\ntoken t\n",
	    "veil-master-key-provider 1\nprovider pkcs11\ntoken t\nmodule m\ncurrent 0 k\n"
	    "code-root 00\n",
	    "veil-master-key-provider 1\nprovider pkcs11\ntoken t\nmodule m\ncurrent 1 k\n"
	    "mystery x\n",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct veil_vault *v = NULL;
		struct veil_diags d;
		veil_diags_init(&d);
		FILE *f = fopen(path, "w");
		assert_non_null(f);
		fputs(bad[i], f);
		fclose(f);
		chmod(path, 0600);
		assert_int_equal(veil_vault_open_any(path, NULL, &v, &d), VEIL_EINVAL);
		assert_null(v);
		assert_non_null(strstr(d.msgs[0], "not a veil master-key provider record"));
		veil_diags_free(&d);
	}
	unlink(path);
}

/* a recovery key's two lines come together: its point without the sealed
 * code-key root (or the reverse) is not a record; with both, or neither,
 * the record is read and the start goes on to the PIN */
static void test_pkcs11_record_recovery_lines(void **state)
{
	(void)state;
	char path[128], base[600], point[2 * 65 + 1], copy[2 * 113 + 1], root[2 * 68 + 1];
	snprintf(path, sizeof(path), "%s/master.key", dir);
	memset(point, 'a', sizeof(point) - 1), point[sizeof(point) - 1] = 0;
	memset(copy, 'b', sizeof(copy) - 1), copy[sizeof(copy) - 1] = 0;
	memset(root, 'c', sizeof(root) - 1), root[sizeof(root) - 1] = 0;
	snprintf(base, sizeof(base),
		 "veil-master-key-provider 1\nprovider pkcs11\ntoken t\nobject o\nmodule "
		 "/nonexistent.so\ncurrent 1 o\ncode-root %s\n",
		 root);
	const struct {
		const char *extra1, *extra2;
		bool record;
	} cases[] = {
	    {"", "", true},
	    {"recovery-key ", point, false},
	    {"code-root-recovery ", copy, false},
	    {"recovery-key ", NULL, true}, /* both lines, below */
	};
	unsetenv("VEIL_PKCS11_PIN");
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct veil_vault *v = NULL;
		struct veil_diags d;
		veil_diags_init(&d);
		FILE *f = fopen(path, "w");
		assert_non_null(f);
		if (cases[i].extra2)
			fprintf(f, "%s%s%s%s", base, cases[i].extra1, cases[i].extra2,
				cases[i].extra1[0] ? "\n" : "");
		else
			fprintf(f, "%srecovery-key %s\ncode-root-recovery %s\n", base, point, copy);
		fclose(f);
		chmod(path, 0600);
		assert_int_not_equal(veil_vault_open_any(path, NULL, &v, &d), 0);
		assert_null(v);
		assert_true(d.count > 0);
		if (cases[i].record)
			assert_non_null(strstr(d.msgs[0], "no PIN for PKCS#11 token 't'"));
		else
			assert_non_null(strstr(d.msgs[0], "not a veil master-key provider record"));
		veil_diags_free(&d);
	}
	unlink(path);
}

/* rotation is the PKCS#11 provider's; a key file is refused, not half-done */
static void test_rotation_refused_for_key_file(void **state)
{
	(void)state;
	struct veil_vault *v = open_vault();
	struct veil_diags d;
	veil_diags_init(&d);
	uint32_t from = 0, to = 0;
	assert_int_equal(veil_vault_rotate_begin(v, &from, &to, &d), VEIL_EINVAL);
	assert_non_null(strstr(d.msgs[0], "rotation is for a PKCS#11 master key"));
	uint8_t in[60] = {0}, out[VEIL_VAULT_WRAPPED_MAX];
	size_t n = 0;
	assert_int_equal(veil_vault_rewrap(v, "ns", in, sizeof(in), out, &n), VEIL_EINVAL);
	assert_string_equal(veil_vault_provider(v), "file");
	veil_diags_free(&d);
	veil_vault_close(v);
}

static void test_seal_binds_namespace_and_detects_tampering(void **state)
{
	(void)state;
	struct veil_vault *v = open_vault();
	uint8_t *w = NULL, *sealed = NULL, *plain = NULL;
	size_t ws = 0, ss = 0, ps = 0;
	const char *msg = "SECRET-PAYLOAD-0123456789";
	assert_int_equal(veil_vault_new_key(v, "ns1", &w, &ws), 0);
	assert_int_equal(
	    veil_vault_seal(v, "ns1", w, ws, (const uint8_t *)msg, strlen(msg), &sealed, &ss), 0);
	assert_null(memmem(sealed, ss, msg, strlen(msg)));
	assert_int_equal(veil_vault_open(v, "ns1", w, ws, sealed, ss, &plain, &ps), 0);
	assert_int_equal(ps, strlen(msg));
	assert_memory_equal(plain, msg, ps);
	veil_secure_free(plain, ps);
	/* another namespace cannot open it: the key and the blob are bound to ns1 */
	assert_int_not_equal(veil_vault_open(v, "ns2", w, ws, sealed, ss, &plain, &ps), 0);
	/* any flipped byte is detected */
	for (size_t i = 0; i < ss; i += 7) {
		sealed[i] ^= 1;
		assert_int_not_equal(veil_vault_open(v, "ns1", w, ws, sealed, ss, &plain, &ps), 0);
		sealed[i] ^= 1;
	}
	w[ws - 1] ^= 1;
	assert_int_not_equal(veil_vault_open(v, "ns1", w, ws, sealed, ss, &plain, &ps), 0);
	assert_int_not_equal(veil_vault_open(v, "ns1", w, ws, sealed, 10, &plain, &ps), 0);
	free(w);
	free(sealed);
	veil_vault_close(v);
}

static int count_cb(const char *ns, const char *hash, void *arg)
{
	(void)ns;
	(void)hash;
	(*(int *)arg)++;
	return 0;
}

/* What scan_folder read: regular files and bytes, files holding the secret
 * and files holding a control that must be there (the stored blob). */
struct scan {
	size_t files, bytes, secret_hits, control_hits;
	int has_db;
};

static void scan_folder(const char *folder, struct scan *sc, const void *secret, size_t secret_size,
			const void *control, size_t control_size)
{
	DIR *dp = opendir(folder);
	assert_non_null(dp);
	struct dirent *e;
	while ((e = readdir(dp))) {
		char path[512], *data = NULL;
		size_t size = 0;
		struct stat st;
		snprintf(path, sizeof(path), "%s/%s", folder, e->d_name);
		if (lstat(path, &st) || !S_ISREG(st.st_mode))
			continue;
		assert_int_equal(veil_read_file(path, 64 << 20, &data, &size, NULL), 0);
		sc->files++;
		sc->bytes += size;
		sc->has_db |= !strcmp(e->d_name, "cas.db") && size > 0;
		sc->secret_hits += memmem(data, size, secret, secret_size) != NULL;
		sc->control_hits += memmem(data, size, control, control_size) != NULL;
		free(data);
	}
	closedir(dp);
}

/* a generated secret, sealed and stored, is nowhere in the database files */
static void test_generated_secret_not_in_database(void **state)
{
	(void)state;
	struct veil_vault *v = open_vault();
	struct veil_store *s = NULL;
	struct veil_diags d;
	veil_diags_init(&d);
	assert_int_equal(veil_store_sqlite_open(dir, NULL, &s, &d), 0);
	struct veil_secret def = {.name = "pw", .kind = "ascii", .size = 24, .has_size = 1};
	struct veil_secret_set set = {0};
	assert_int_equal(veil_secrets_generate(&def, 1, "ns", NULL, &set, &d), 0);
	const struct veil_secret_value *pw = veil_secret_find(&set, "pw");
	assert_non_null(pw);
	uint8_t *ser = NULL, *sealed = NULL;
	size_t ser_size = 0, sealed_size = 0;
	assert_int_equal(veil_secret_set_serialize(&set, &ser, &ser_size), 0);
	struct veil_record r = {.namespace_ = "ns", .hash = "h1", .owner = "me"};
	assert_int_equal(veil_vault_new_key(v, "ns", &r.wrapped_key, &r.wrapped_size), 0);
	assert_int_equal(veil_vault_seal(v, "ns", r.wrapped_key, r.wrapped_size, ser, ser_size,
					 &sealed, &sealed_size),
			 0);
	r.blob = sealed;
	r.blob_size = sealed_size;
	assert_int_equal(s->ops->create(s, &r), 0);
	assert_int_equal(s->ops->create(s, &r), VEIL_EEXIST);
	/* compare-and-swap */
	r.hash = "h2";
	assert_int_equal(s->ops->update(s, &r, "wrong"), VEIL_ECONFLICT);
	assert_int_equal(s->ops->update(s, &r, "h1"), 0);
	assert_int_equal(s->ops->update(s, &r, "h1"), VEIL_ECONFLICT);
	struct veil_record got = {0};
	assert_int_equal(s->ops->get(s, "ns", &got), 0);
	assert_string_equal(got.hash, "h2");
	assert_int_equal(got.blob_size, sealed_size);
	veil_record_free(&got);
	int n = 0;
	assert_int_equal(s->ops->list(s, "me", count_cb, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(s->ops->check(s, &d), 0);
	s->ops->close(s);
	/* scan every file of the store's folder for the secret's bytes; the scan
	 * must have read the store (it finds the sealed blob that was stored),
	 * or finding nothing would prove nothing */
	struct scan sc = {0};
	scan_folder(dir, &sc, pw->bytes, pw->size, sealed, sealed_size);
	assert_true(sc.has_db);       /* cas.db was among the files read */
	assert_true(sc.files >= 1);   /* regular files read */
	assert_true(sc.bytes > 4096); /* at least one SQLite page */
	assert_true(sc.control_hits >= 1);
	assert_int_equal(sc.secret_hits, 0);
	veil_secure_free(ser, ser_size);
	free(sealed);
	free(r.wrapped_key);
	veil_secret_set_free(&set);
	veil_vault_close(v);
	veil_diags_free(&d);
}

static int user_version_of(const char *path)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	int v = -1;
	if (sqlite3_open(path, &db) == SQLITE_OK &&
	    sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return v;
}

static void set_user_version(const char *path, int v)
{
	sqlite3 *db = NULL;
	char sql[64];
	snprintf(sql, sizeof(sql), "PRAGMA user_version=%d", v);
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
}

/* A stand-in for the CAS's opener (consent.c, cas_policy_exports): every
 * record "opens" and exports to "partner" bound to owner HEX_A, and a record
 * named "broken" does not open. */
#define HEX_A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define HEX_B "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
static int fake_exports_of(void *arg, const struct veil_record *r,
			   int (*add)(void *sink, const struct veil_store_export *e), void *sink)
{
	int *opened = arg;
	if (!strcmp(r->namespace_, "broken"))
		return VEIL_EINVAL;
	(*opened)++;
	struct veil_store_export e = {.importer = "partner", .owner = HEX_A};
	return add(sink, &e);
}

struct seen {
	int count;
	char owner[65], session_hash[65];
};

static int collect(const struct veil_store_export *e, void *arg)
{
	struct seen *x = arg;
	x->count++;
	snprintf(x->owner, sizeof(x->owner), "%s", e->owner ? e->owner : "");
	snprintf(x->session_hash, sizeof(x->session_hash), "%s",
		 e->session_hash ? e->session_hash : "");
	return 0;
}

static void add_row(struct veil_store *s, const char *ns, const char *owner)
{
	uint8_t k[] = {1}, b[] = {2};
	struct veil_record r = {.namespace_ = (char *)ns,
				.hash = "h",
				.owner = (char *)owner,
				.wrapped_key = k,
				.wrapped_size = 1,
				.blob = b,
				.blob_size = 1};
	assert_int_equal(s->ops->create(s, &r), 0);
}

/* the export index: entries of other namespaces naming a name; a removed
 * namespace takes its own entries along, not those naming it */
static void test_export_index_outlives_the_importer(void **state)
{
	(void)state;
	struct veil_diags d;
	struct veil_store *s = NULL;
	veil_diags_init(&d);
	assert_int_equal(veil_store_sqlite_open(dir, NULL, &s, &d), 0);
	add_row(s, "exporter", "o");
	add_row(s, "partner", "o");
	struct veil_store_export e = {.importer = "partner", .owner = HEX_A};
	struct veil_store_export sh = {.importer = "other", .session_hash = HEX_B};
	struct veil_store_export self = {.importer = "exporter", .owner = HEX_B};
	struct veil_store_export bare = {.importer = "partner"};
	assert_int_equal(s->ops->add_export(s, "exporter", &e), 0);
	assert_int_equal(s->ops->add_export(s, "exporter", &sh), 0);
	assert_int_equal(s->ops->add_export(s, "exporter", &self), 0);
	/* an entry binding nothing grants nothing: not indexed */
	assert_int_equal(s->ops->add_export(s, "exporter", &bare), VEIL_EINVAL);
	struct seen x = {0};
	assert_int_equal(s->ops->exports_to(s, "partner", collect, &x), 0);
	assert_int_equal(x.count, 1);
	assert_string_equal(x.owner, HEX_A);
	assert_string_equal(x.session_hash, "");
	memset(&x, 0, sizeof(x));
	assert_int_equal(s->ops->exports_to(s, "other", collect, &x), 0);
	assert_int_equal(x.count, 1);
	assert_string_equal(x.session_hash, HEX_B);
	/* a namespace's entries naming itself are not another's */
	memset(&x, 0, sizeof(x));
	assert_int_equal(s->ops->exports_to(s, "exporter", collect, &x), 0);
	assert_int_equal(x.count, 0);
	/* the importer deleted: the name stays reserved */
	assert_int_equal(s->ops->remove(s, "partner"), 0);
	memset(&x, 0, sizeof(x));
	assert_int_equal(s->ops->exports_to(s, "partner", collect, &x), 0);
	assert_int_equal(x.count, 1);
	/* the exporter deleted: its names are free */
	assert_int_equal(s->ops->remove(s, "exporter"), 0);
	memset(&x, 0, sizeof(x));
	assert_int_equal(s->ops->exports_to(s, "partner", collect, &x), 0);
	assert_int_equal(s->ops->exports_to(s, "other", collect, &x), 0);
	assert_int_equal(x.count, 0);
	/* clear_exports alone, as an update does before adding the new ones */
	add_row(s, "exporter", "o");
	assert_int_equal(s->ops->add_export(s, "exporter", &e), 0);
	assert_int_equal(s->ops->clear_exports(s, "exporter"), 0);
	assert_int_equal(s->ops->exports_to(s, "partner", collect, &x), 0);
	assert_int_equal(x.count, 0);
	s->ops->close(s);
	veil_diags_free(&d);
}

/* a store of schema 3 gets its export index built from its policies by the
 * opener; without one, or with a policy that does not open, it is refused
 * and stays at 3 */
static void test_schema_3_gets_its_export_index(void **state)
{
	(void)state;
	struct veil_diags d;
	struct veil_store *s = NULL;
	char path[128];
	snprintf(path, sizeof(path), "%s/cas.db", dir);
	veil_diags_init(&d);
	assert_int_equal(veil_store_sqlite_open(dir, NULL, &s, &d), 0);
	add_row(s, "exporter", "o");
	add_row(s, "exporter2", "o");
	s->ops->close(s);
	sqlite3 *db = NULL;
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(
	    sqlite3_exec(db, "DROP TABLE exports; PRAGMA user_version=3", NULL, NULL, NULL),
	    SQLITE_OK);
	sqlite3_close(db);

	s = NULL;
	assert_int_equal(veil_store_sqlite_open(dir, NULL, &s, &d), VEIL_EINVAL);
	assert_null(s);
	assert_non_null(strstr(d.msgs[d.count - 1], "building the export index (schema version 4) "
						    "needs the master key"));
	assert_int_equal(user_version_of(path), 3);

	int opened = 0;
	struct veil_store_opener o = {fake_exports_of, &opened};
	assert_int_equal(veil_store_sqlite_open(dir, &o, &s, &d), 0);
	assert_int_equal(opened, 2);
	assert_int_equal(user_version_of(path), VEIL_STORE_SCHEMA_VERSION);
	struct seen x = {0};
	assert_int_equal(s->ops->exports_to(s, "partner", collect, &x), 0);
	assert_int_equal(x.count, 2);
	assert_string_equal(x.owner, HEX_A);
	add_row(s, "broken", "o");
	s->ops->close(s);

	/* run again (an index left by a half-done attempt is rebuilt, not doubled)
	 * with a record that does not open: refused, unchanged */
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "PRAGMA user_version=3", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	s = NULL;
	assert_int_equal(veil_store_sqlite_open(dir, &o, &s, &d), VEIL_EINVAL);
	assert_non_null(strstr(d.msgs[d.count - 1], "namespace broken does not open"));
	assert_int_equal(user_version_of(path), 3);
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(
	    sqlite3_exec(db, "DELETE FROM policies WHERE namespace='broken'", NULL, NULL, NULL),
	    SQLITE_OK);
	sqlite3_close(db);
	opened = 0;
	assert_int_equal(veil_store_sqlite_open(dir, &o, &s, &d), 0);
	memset(&x, 0, sizeof(x));
	assert_int_equal(s->ops->exports_to(s, "partner", collect, &x), 0);
	assert_int_equal(x.count, 2);
	s->ops->close(s);
	veil_diags_free(&d);
}

/* a new store is at the current version; a store from before versions (0)
 * keeps its rows and is brought to it; a newer one is refused, unchanged */
static void test_schema_version_migrated_or_newer_refused(void **state)
{
	(void)state;
	struct veil_diags d;
	struct veil_store *s = NULL;
	char path[128];
	snprintf(path, sizeof(path), "%s/cas.db", dir);
	int opened = 0;
	struct veil_store_opener o = {fake_exports_of, &opened};
	veil_diags_init(&d);
	assert_int_equal(veil_store_sqlite_open(dir, NULL, &s, &d), 0);
	uint8_t k[] = {1}, b[] = {2};
	struct veil_record r = {.namespace_ = "ns",
				.hash = "h",
				.owner = "o",
				.wrapped_key = k,
				.wrapped_size = 1,
				.blob = b,
				.blob_size = 1};
	assert_int_equal(s->ops->create(s, &r), 0);
	s->ops->close(s);
	assert_int_equal(user_version_of(path), VEIL_STORE_SCHEMA_VERSION);

	set_user_version(path, 0);
	assert_int_equal(veil_store_sqlite_open(dir, &o, &s, &d), 0);
	struct veil_record got = {0};
	assert_int_equal(s->ops->get(s, "ns", &got), 0);
	veil_record_free(&got);
	s->ops->close(s);
	assert_int_equal(user_version_of(path), VEIL_STORE_SCHEMA_VERSION);

	set_user_version(path, VEIL_STORE_SCHEMA_VERSION + 1);
	s = NULL;
	assert_int_equal(veil_store_sqlite_open(dir, &o, &s, &d), VEIL_EINVAL);
	assert_null(s);
	assert_int_equal(d.count, 1);
	char want[128];
	snprintf(want, sizeof(want), "has schema version %d; this veil-cas",
		 VEIL_STORE_SCHEMA_VERSION + 1);
	assert_non_null(strstr(d.msgs[0], want));
	snprintf(want, sizeof(want), "knows versions up to %d: run a newer veil-cas",
		 VEIL_STORE_SCHEMA_VERSION);
	assert_non_null(strstr(d.msgs[0], want));
	assert_int_equal(user_version_of(path), VEIL_STORE_SCHEMA_VERSION + 1);
	veil_diags_free(&d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_master_key_file_is_private, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_missing_key_is_not_recreated, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_pkcs11_bad_uri_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_pkcs11_missing_module_and_pin_named, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_pkcs11_bad_record_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_pkcs11_record_recovery_lines, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_rotation_refused_for_key_file, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_seal_binds_namespace_and_detects_tampering, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_generated_secret_not_in_database, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_schema_version_migrated_or_newer_refused, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_export_index_outlives_the_importer, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_schema_3_gets_its_export_index, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

/* The vault (src/cas/vault.c) and the SQLite store (src/cas/store_sqlite.c). */
#include <dirent.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
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
	veil_remove_tree(dir);
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
	assert_int_equal(veil_store_sqlite_open(dir, &s, &d), 0);
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

/* a new store is at the current version; a store from before versions (0)
 * keeps its rows and is brought to it; a newer one is refused, unchanged */
static void test_schema_version_migrated_or_newer_refused(void **state)
{
	(void)state;
	struct veil_diags d;
	struct veil_store *s = NULL;
	char path[128];
	snprintf(path, sizeof(path), "%s/cas.db", dir);
	veil_diags_init(&d);
	assert_int_equal(veil_store_sqlite_open(dir, &s, &d), 0);
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
	assert_int_equal(veil_store_sqlite_open(dir, &s, &d), 0);
	struct veil_record got = {0};
	assert_int_equal(s->ops->get(s, "ns", &got), 0);
	veil_record_free(&got);
	s->ops->close(s);
	assert_int_equal(user_version_of(path), VEIL_STORE_SCHEMA_VERSION);

	set_user_version(path, VEIL_STORE_SCHEMA_VERSION + 1);
	s = NULL;
	assert_int_equal(veil_store_sqlite_open(dir, &s, &d), VEIL_EINVAL);
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
	    cmocka_unit_test_setup_teardown(test_seal_binds_namespace_and_detects_tampering, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_generated_secret_not_in_database, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_schema_version_migrated_or_newer_refused, setup,
					    teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

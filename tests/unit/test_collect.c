/* Evidence collection (src/evidence/collect.c) against fake trees: a
 * configfs-tsm tree served by the fake-tsm helper (tests/tools/fake_tsm.c,
 * in a thread here) populated from real vectors, and a Gramine
 * /dev/attestation folder. Needs a build with -Dtest_hooks=true (the roots
 * are configurable only there); without it every test is skipped. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>
#include <openssl/evp.h>

#include "veil/collect.h"
#include "veil/common.h"
#include "../tools/fake_tsm.h"

#ifndef VEIL_SOURCE_ROOT
#error "VEIL_SOURCE_ROOT must name the repository root"
#endif
#define VECTORS VEIL_SOURCE_ROOT "/tests/vectors/"
#define TDX_QUOTE VECTORS "dcap-qvl/sample/tdx_quote"
#define SGX_QUOTE VECTORS "dcap-qvl/sample/sgx_quote"
#define SNP_REPORT VECTORS "trustee/deps/verifier/test_data/snp/test-report.bin"
#define SNP_VCEK VECTORS "trustee/deps/verifier/test_data/snp/test-vcek.der"

struct fixture {
	char dir[64]; /* a fresh temporary folder */
	char tsm[128], gramine[128];
	struct fake_tsm helper;
	pthread_t thread;
	bool serving;
	uint8_t rd[VEIL_REPORT_DATA_SIZE];
	char *evidence;
	char provider[VEIL_COLLECT_PROVIDER_MAX];
	char why[1024];
	char *blobs[2];
};

static char *slurp(const char *path, size_t *size)
{
	char *p = NULL;
	assert_int_equal(veil_read_file(path, 1 << 20, &p, size, NULL), 0);
	return p;
}

static void put_file(const char *dir, const char *name, const void *data, size_t size)
{
	char *path = veil_path_join(dir, name);
	FILE *f = fopen(path, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(data, 1, size, f), size);
	fclose(f);
	free(path);
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	if (!f)
		return -1;
	snprintf(f->dir, sizeof(f->dir), "/tmp/veil-collect-XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	snprintf(f->tsm, sizeof(f->tsm), "%s/tsm", f->dir);
	snprintf(f->gramine, sizeof(f->gramine), "%s/attestation", f->dir);
	for (size_t i = 0; i < sizeof(f->rd); i++)
		f->rd[i] = (uint8_t)(0xa0 + i);
	/* both roots replaced: the machine's own trees never count */
	setenv("VEIL_TEST_TSM_ROOT", f->tsm, 1);
	setenv("VEIL_TEST_GRAMINE_ROOT", f->gramine, 1);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	if (f->serving) {
		atomic_store(&f->helper.stop, 1);
		pthread_join(f->thread, NULL);
	}
	assert_int_equal(veil_remove_tree(f->dir), 0);
	free(f->evidence);
	free(f->blobs[0]);
	free(f->blobs[1]);
	free(f);
	return 0;
}

static void *serve(void *arg)
{
	fake_tsm_serve(arg);
	return NULL;
}

/* a fake configfs-tsm tree at f->tsm served by the helper */
static void fake_tsm(struct fixture *f, const char *provider, const char *outblob_path,
		     const char *auxblob_path, unsigned bump, unsigned bump_times)
{
	char report[160];
	snprintf(report, sizeof(report), "%s/report", f->tsm);
	assert_int_equal(veil_mkdirs(report, 0700, NULL), 0);
	f->helper.root = f->tsm;
	f->helper.provider = provider;
	f->helper.bump = bump;
	f->helper.bump_times = bump_times;
	if (outblob_path) {
		f->blobs[0] = slurp(outblob_path, &f->helper.outblob_size);
		f->helper.outblob = (const uint8_t *)f->blobs[0];
	}
	if (auxblob_path) {
		f->blobs[1] = slurp(auxblob_path, &f->helper.auxblob_size);
		f->helper.auxblob = (const uint8_t *)f->blobs[1];
	}
	assert_int_equal(pthread_create(&f->thread, NULL, serve, &f->helper), 0);
	f->serving = true;
}

static bool report_dir_is_empty(const struct fixture *f)
{
	char cmd[256];
	snprintf(cmd, sizeof(cmd), "test -z \"$(ls -A '%s/report')\"", f->tsm);
	return system(cmd) == 0;
}

static int collect(struct fixture *f)
{
	return veil_collect(f->rd, &f->evidence, f->provider, f->why, sizeof(f->why));
}

/* the evidence's field `key` is base64 of exactly the file's bytes */
static void assert_field_is_file(json_t *j, const char *key, const char *path)
{
	size_t size = 0;
	char *want = slurp(path, &size);
	char *b64 = malloc(4 * ((size + 2) / 3) + 1);
	assert_non_null(b64);
	EVP_EncodeBlock((unsigned char *)b64, (const unsigned char *)want, (int)size);
	const char *got = json_string_value(json_object_get(j, key));
	assert_non_null(got);
	assert_string_equal(got, b64);
	free(b64);
	free(want);
}

static json_t *evidence_of(const struct fixture *f, const char *platform)
{
	json_error_t err;
	json_t *j = json_loads(f->evidence, 0, &err);
	assert_non_null(j);
	assert_string_equal(json_string_value(json_object_get(j, "platform")), platform);
	assert_int_equal(json_integer_value(json_object_get(j, "version")), 1);
	return j;
}

#ifdef VEIL_TEST_HOOKS
#define NEEDS_TEST_HOOKS() (void)0
#else
#define NEEDS_TEST_HOOKS() skip()
#endif

static void test_tdx_quote_through_configfs_tsm(void **state)
{
	NEEDS_TEST_HOOKS();
	struct fixture *f = *state;
	fake_tsm(f, "tdx_guest", TDX_QUOTE, NULL, 1, 0);
	assert_int_equal(collect(f), 0);
	assert_string_equal(f->provider, "tsm:tdx_guest");
	json_t *j = evidence_of(f, "tdx");
	assert_field_is_file(j, "quote", TDX_QUOTE);
	assert_int_equal(json_object_size(j), 3);
	json_decref(j);
	/* the report data went to inblob, and the entry is gone */
	assert_int_equal(f->helper.inblob_size, sizeof(f->rd));
	assert_memory_equal(f->helper.inblob, f->rd, sizeof(f->rd));
	assert_int_equal(atomic_load(&f->helper.entries), 1);
	assert_true(report_dir_is_empty(f));
}

static void test_snp_report_with_its_certificate_table(void **state)
{
	NEEDS_TEST_HOOKS();
	struct fixture *f = *state;
	fake_tsm(f, "sev_guest", SNP_REPORT, SNP_VCEK, 1, 0);
	assert_int_equal(collect(f), 0);
	assert_string_equal(f->provider, "tsm:sev_guest");
	json_t *j = evidence_of(f, "snp");
	assert_field_is_file(j, "report", SNP_REPORT);
	assert_field_is_file(j, "auxblob", SNP_VCEK);
	json_decref(j);
	assert_memory_equal(f->helper.inblob, f->rd, sizeof(f->rd));
	assert_true(report_dir_is_empty(f));
}

static void test_snp_empty_auxblob_is_left_out(void **state)
{
	NEEDS_TEST_HOOKS();
	struct fixture *f = *state;
	/* an empty file, as without certificates from the host */
	f->helper.auxblob = (const uint8_t *)"";
	fake_tsm(f, "sev_guest", SNP_REPORT, NULL, 1, 0);
	assert_int_equal(collect(f), 0);
	json_t *j = evidence_of(f, "snp");
	assert_null(json_object_get(j, "auxblob"));
	json_decref(j);
	assert_true(report_dir_is_empty(f));
}

static void test_another_writer_once_is_retried(void **state)
{
	NEEDS_TEST_HOOKS();
	struct fixture *f = *state;
	fake_tsm(f, "tdx_guest", TDX_QUOTE, NULL, 2, 1);
	assert_int_equal(collect(f), 0);
	assert_int_equal(atomic_load(&f->helper.entries), 2);
	json_t *j = evidence_of(f, "tdx");
	json_decref(j);
	assert_true(report_dir_is_empty(f));
}

static void test_another_writer_every_time_is_refused(void **state)
{
	NEEDS_TEST_HOOKS();
	struct fixture *f = *state;
	fake_tsm(f, "tdx_guest", TDX_QUOTE, NULL, 2, 0);
	assert_int_not_equal(collect(f), 0);
	assert_null(f->evidence);
	assert_non_null(strstr(f->why, "another writer changed the report entry 3 times"));
	assert_non_null(strstr(f->why, "from 0 to 2, not 1"));
	assert_int_equal(atomic_load(&f->helper.entries), 3);
	assert_true(report_dir_is_empty(f));
}

/* the check is relative: a long-lived tree's entries need not start at 0 */
static void test_generation_moved_by_one_from_any_start(void **state)
{
	NEEDS_TEST_HOOKS();
	struct fixture *f = *state;
	f->helper.generation = "41\n";
	fake_tsm(f, "tdx_guest", TDX_QUOTE, NULL, 1, 0);
	assert_int_equal(collect(f), 0);
	assert_int_equal(atomic_load(&f->helper.entries), 1);
}

static void test_generation_that_is_not_a_number_is_refused(void **state)
{
	NEEDS_TEST_HOOKS();
	struct fixture *f = *state;
	f->helper.generation = "4x\n";
	fake_tsm(f, "tdx_guest", TDX_QUOTE, NULL, 1, 0);
	assert_int_equal(collect(f), VEIL_EINVAL);
	assert_non_null(strstr(f->why, "generation holds '4x', not a generation number"));
	assert_true(report_dir_is_empty(f));
}

static void test_generation_past_64_bits_is_refused(void **state)
{
	NEEDS_TEST_HOOKS();
	struct fixture *f = *state;
	f->helper.generation = "18446744073709551616\n";
	fake_tsm(f, "tdx_guest", TDX_QUOTE, NULL, 1, 0);
	assert_int_equal(collect(f), VEIL_EINVAL);
	assert_non_null(strstr(f->why, "not a generation number"));
	assert_true(report_dir_is_empty(f));
}

static void test_outblob_over_the_limit_is_refused(void **state)
{
	NEEDS_TEST_HOOKS();
	struct fixture *f = *state;
	char big[160];
	snprintf(big, sizeof(big), "%s/big", f->dir);
	char *zeros = calloc(1, VEIL_COLLECT_BLOB_MAX + 1);
	assert_non_null(zeros);
	memcpy(zeros, "\x04\x00\x02\x00\x81\x00\x00\x00", 8);
	put_file(f->dir, "big", zeros, VEIL_COLLECT_BLOB_MAX + 1);
	free(zeros);
	fake_tsm(f, "tdx_guest", big, NULL, 1, 0);
	assert_int_equal(collect(f), VEIL_ELIMIT);
	assert_null(f->evidence);
	assert_non_null(strstr(f->why, "outblob holds more than 65536 bytes"));
	assert_true(report_dir_is_empty(f));
}

static void test_unknown_provider_is_refused_by_name(void **state)
{
	NEEDS_TEST_HOOKS();
	struct fixture *f = *state;
	fake_tsm(f, "arm_cca_guest", TDX_QUOTE, NULL, 1, 0);
	assert_int_equal(collect(f), VEIL_EINVAL);
	assert_non_null(strstr(f->why, "configfs-tsm provider 'arm_cca_guest' is not supported"));
	/* refused before inblob: nothing was asked of the platform */
	assert_int_equal(f->helper.inblob_size, 0);
	assert_true(report_dir_is_empty(f));
}

static void test_tdx_outblob_that_is_not_a_tdx_quote_is_refused(void **state)
{
	NEEDS_TEST_HOOKS();
	struct fixture *f = *state;
	fake_tsm(f, "tdx_guest", SGX_QUOTE, NULL, 1, 0);
	assert_int_equal(collect(f), VEIL_EINVAL);
	assert_non_null(strstr(f->why, "is not the quote expected: version 3, TEE type 0x0"));
	assert_true(report_dir_is_empty(f));
}

static void test_snp_outblob_of_the_wrong_size_is_refused(void **state)
{
	NEEDS_TEST_HOOKS();
	struct fixture *f = *state;
	fake_tsm(f, "sev_guest", TDX_QUOTE, NULL, 1, 0);
	assert_int_equal(collect(f), VEIL_EINVAL);
	assert_non_null(strstr(f->why, "is 5006 bytes, not the 1184 of an SEV-SNP report"));
	assert_true(report_dir_is_empty(f));
}

/* a tree with report/ but no kernel behind it: a failure, never a quiet
 * fall back to veil-las */
static void test_missing_attributes_are_a_failure_not_a_fallback(void **state)
{
	NEEDS_TEST_HOOKS();
	struct fixture *f = *state;
	char report[160];
	snprintf(report, sizeof(report), "%s/report", f->tsm);
	assert_int_equal(veil_mkdirs(report, 0700, NULL), 0);
	assert_int_equal(collect(f), VEIL_EIO);
	assert_non_null(strstr(f->why, "/provider: No such file or directory"));
	assert_true(report_dir_is_empty(f));
}

static void test_gramine_dcap_quote(void **state)
{
	NEEDS_TEST_HOOKS();
	struct fixture *f = *state;
	size_t size = 0;
	char *quote = slurp(SGX_QUOTE, &size);
	assert_int_equal(veil_mkdirs(f->gramine, 0700, NULL), 0);
	put_file(f->gramine, "attestation_type", "dcap\n", 5);
	put_file(f->gramine, "user_report_data", "", 0);
	put_file(f->gramine, "quote", quote, size);
	free(quote);
	assert_int_equal(collect(f), 0);
	assert_string_equal(f->provider, "gramine:dcap");
	json_t *j = evidence_of(f, "sgx");
	assert_field_is_file(j, "quote", SGX_QUOTE);
	json_decref(j);
	char *path = veil_path_join(f->gramine, "user_report_data"), *rd = NULL;
	rd = slurp(path, &size);
	assert_int_equal(size, sizeof(f->rd));
	assert_memory_equal(rd, f->rd, sizeof(f->rd));
	free(rd);
	free(path);
}

static void test_gramine_without_attestation_falls_back(void **state)
{
	NEEDS_TEST_HOOKS();
	struct fixture *f = *state;
	assert_int_equal(veil_mkdirs(f->gramine, 0700, NULL), 0);
	put_file(f->gramine, "attestation_type", "none\n", 5);
	assert_int_equal(collect(f), VEIL_ENOENT);
	assert_null(f->evidence);
	assert_non_null(strstr(f->why, "Gramine without remote attestation"));
}

static void test_gramine_epid_is_refused_by_name(void **state)
{
	NEEDS_TEST_HOOKS();
	struct fixture *f = *state;
	assert_int_equal(veil_mkdirs(f->gramine, 0700, NULL), 0);
	put_file(f->gramine, "attestation_type", "epid\n", 5);
	assert_int_equal(collect(f), VEIL_EINVAL);
	assert_non_null(strstr(f->why, "is 'epid': veil supports Gramine's dcap attestation only"));
}

static void test_no_provider_is_enoent(void **state)
{
	NEEDS_TEST_HOOKS();
	struct fixture *f = *state;
	assert_int_equal(collect(f), VEIL_ENOENT);
	assert_null(f->evidence);
	assert_string_equal(f->why, "");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_tdx_quote_through_configfs_tsm, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_snp_report_with_its_certificate_table, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_snp_empty_auxblob_is_left_out, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_another_writer_once_is_retried, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_another_writer_every_time_is_refused, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_generation_moved_by_one_from_any_start, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_generation_that_is_not_a_number_is_refused, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_generation_past_64_bits_is_refused, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_outblob_over_the_limit_is_refused, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_unknown_provider_is_refused_by_name, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_tdx_outblob_that_is_not_a_tdx_quote_is_refused,
					    setup, teardown),
	    cmocka_unit_test_setup_teardown(test_snp_outblob_of_the_wrong_size_is_refused, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_missing_attributes_are_a_failure_not_a_fallback,
					    setup, teardown),
	    cmocka_unit_test_setup_teardown(test_gramine_dcap_quote, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_gramine_without_attestation_falls_back, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_gramine_epid_is_refused_by_name, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_no_provider_is_enoent, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

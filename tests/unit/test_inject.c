/* veil-run's injection files: what is refused before anything is written or
 * mounted (the placing itself needs root and runs in tests/e2e/attest.sh and
 * tests/e2e/attack_inject.sh). */
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sys/stat.h>
#include <unistd.h>

#include "inject.h"

static char err[1024];

static void refused(const char *path, const char *want)
{
	struct inject_file f = {.path = path, .content = "s3cr3t-content", .size = 14};
	err[0] = '\0';
	assert_int_not_equal(inject_files(&f, 1, (uid_t)-1, (gid_t)-1, err, sizeof(err)), 0);
	if (!strstr(err, want))
		fail_msg("'%s': wanted '%s' in '%s'", path, want, err);
	assert_null(strstr(err, "s3cr3t")); /* the reason never shows content */
}

static void test_bad_paths(void **state)
{
	(void)state;
	refused("etc/app.conf", "must be an absolute file path");
	refused("", "must be an absolute file path");
	refused("/", "must be an absolute file path");
	refused("/etc/app/", "must be an absolute file path");
	refused("/etc//app.conf", "empty, '.' or '..' part");
	refused("/etc/../root/.ssh/authorized_keys", "empty, '.' or '..' part");
	refused("/etc/app/..", "empty, '.' or '..' part");
	refused("/etc/./app.conf", "empty, '.' or '..' part");
	refused("/proc/self/attr/current", "is in /proc");
	refused("/sys/kernel/x", "is in /sys");
	refused("/dev/sda", "is in /dev");
	char *longp = malloc(PATH_MAX + 8);
	assert_non_null(longp);
	memset(longp, 'a', PATH_MAX + 7);
	longp[0] = '/';
	longp[PATH_MAX + 7] = '\0';
	refused(longp, "must be an absolute file path");
	free(longp);
}

static void test_twice_and_limits(void **state)
{
	(void)state;
	struct inject_file f[2] = {{.path = "/run/a.conf", .content = "x", .size = 1},
				   {.path = "/run/a.conf", .content = "y", .size = 1}};
	assert_int_not_equal(inject_files(f, 2, (uid_t)-1, (gid_t)-1, err, sizeof(err)), 0);
	assert_non_null(strstr(err, "injection file /run/a.conf is given twice"));
	/* a bad second path refuses the whole set before the first is placed */
	f[1].path = "../b";
	assert_int_not_equal(inject_files(f, 2, (uid_t)-1, (gid_t)-1, err, sizeof(err)), 0);
	assert_non_null(strstr(err, "'../b' must be an absolute file path"));
	f[1].path = "/run/b.conf";
	f[0].size = 40u << 20;
	f[1].size = 40u << 20;
	assert_int_not_equal(inject_files(f, 2, (uid_t)-1, (gid_t)-1, err, sizeof(err)), 0);
	assert_non_null(strstr(err, "exceed 64 MiB"));
	struct inject_file *many = calloc(257, sizeof(*many));
	assert_non_null(many);
	assert_int_not_equal(inject_files(many, 257, (uid_t)-1, (gid_t)-1, err, sizeof(err)), 0);
	assert_non_null(strstr(err, "at most 256"));
	free(many);
	/* nothing to place: nothing happens */
	assert_int_equal(inject_files(NULL, 0, (uid_t)-1, (gid_t)-1, err, sizeof(err)), 0);
	assert_string_equal(inject_method(), "none");
}

/* a folder of the path that is a symbolic link: refused, nothing written
 * where it points (as root in a private mount namespace, else into the
 * memory-backed folder the link names) */
static void test_link_in_path_refused(void **state)
{
	(void)state;
	char dir[] = "/tmp/veil-inject-test.XXXXXX", target[] = "/dev/shm/veil-inject-test.XXXXXX";
	assert_non_null(mkdtemp(dir));
	if (!mkdtemp(target))
		skip();
	char link[PATH_MAX], path[PATH_MAX + 16], placed[PATH_MAX + 16];
	snprintf(link, sizeof(link), "%s/link", dir);
	snprintf(path, sizeof(path), "%s/app.conf", link);
	snprintf(placed, sizeof(placed), "%s/app.conf", target);
	assert_int_equal(symlink(target, link), 0);
	struct inject_file f = {.path = path, .content = "s3cr3t-content", .size = 14};
	err[0] = '\0';
	int rc = inject_files(&f, 1, (uid_t)-1, (gid_t)-1, err, sizeof(err));
	struct stat st;
	int written = !lstat(placed, &st);
	unlink(placed);
	rmdir(target);
	unlink(link);
	rmdir(dir);
	assert_int_not_equal(rc, 0);
	assert_false(written);
	if (!strstr(err, "is a symbolic link") || !strstr(err, link))
		fail_msg("wanted the link named in '%s'", err);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_bad_paths),
	    cmocka_unit_test(test_twice_and_limits),
	    cmocka_unit_test(test_link_in_path_refused),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

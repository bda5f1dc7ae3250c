/* The fake configfs-tsm tree's kernel part; see fake_tsm.h. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fake_tsm.h"

#define MAX_ENTRIES 64

struct entry {
	char name[NAME_MAX + 1];
	int state; /* 1: attributes made, waiting for inblob; 2: report made */
};

/* data as ROOT/staging/NAME, then renamed to DIR/NAME */
static int put(const struct fake_tsm *t, const char *dir, const char *name, const void *data,
	       size_t size)
{
	char tmp[PATH_MAX], dst[PATH_MAX];
	snprintf(tmp, sizeof(tmp), "%s/staging/%s", t->root, name);
	if (snprintf(dst, sizeof(dst), "%s/%s", dir, name) >= (int)sizeof(dst))
		return -1;
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return -1;
	int ok = !size || write(fd, data, size) == (ssize_t)size;
	close(fd);
	if (!ok || rename(tmp, dst)) {
		unlink(tmp);
		return -1;
	}
	return 0;
}

static void step(struct fake_tsm *t, const char *report, struct entry *e)
{
	char dir[PATH_MAX], path[PATH_MAX], gen[32];
	if (snprintf(dir, sizeof(dir), "%s/%s", report, e->name) >= (int)sizeof(dir))
		return;
	if (e->state == 0) {
		/* an entry that vanished meanwhile leaves these failing: fine */
		const char *gen0 = t->generation ? t->generation : "0\n";
		put(t, dir, "generation", gen0, strlen(gen0));
		put(t, dir, "inblob", "", 0);
		put(t, dir, "provider", t->provider, strlen(t->provider));
		e->state = 1;
		return;
	}
	if (e->state != 1)
		return;
	struct stat st;
	if (snprintf(path, sizeof(path), "%s/inblob", dir) >= (int)sizeof(path) ||
	    stat(path, &st) || st.st_size == 0)
		return;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		ssize_t n = read(fd, t->inblob, sizeof(t->inblob));
		t->inblob_size = n > 0 ? (size_t)n : 0;
		close(fd);
	}
	unsigned seen = atomic_load(&t->entries);
	unsigned bump = !t->bump_times || seen <= t->bump_times ? t->bump : 1;
	unsigned long long first = t->generation ? strtoull(t->generation, NULL, 10) : 0;
	int n = snprintf(gen, sizeof(gen), "%llu\n", first + bump);
	if (t->auxblob)
		put(t, dir, "auxblob", t->auxblob, t->auxblob_size);
	put(t, dir, "generation", gen, (size_t)n);
	put(t, dir, "outblob", t->outblob, t->outblob_size);
	e->state = 2;
}

int fake_tsm_serve(struct fake_tsm *t)
{
	char report[PATH_MAX], staging[PATH_MAX];
	struct entry entries[MAX_ENTRIES];
	size_t count = 0;
	snprintf(report, sizeof(report), "%s/report", t->root);
	snprintf(staging, sizeof(staging), "%s/staging", t->root);
	if (mkdir(staging, 0700) && errno != EEXIST)
		return -1;
	while (!atomic_load(&t->stop)) {
		DIR *d = opendir(report);
		if (!d)
			return -1;
		struct dirent *de;
		while ((de = readdir(d))) {
			if (de->d_name[0] == '.' || de->d_type != DT_DIR)
				continue;
			size_t i = 0;
			while (i < count && strcmp(entries[i].name, de->d_name))
				i++;
			if (i == count) {
				if (count ==
				    MAX_ENTRIES) /* forget the oldest: they are long gone */
					memmove(entries, entries + 1,
						(--count) * sizeof(entries[0]));
				i = count++;
				snprintf(entries[i].name, sizeof(entries[i].name), "%s",
					 de->d_name);
				entries[i].state = 0;
				atomic_fetch_add(&t->entries, 1);
			}
			step(t, report, &entries[i]);
		}
		closedir(d);
		nanosleep(&(struct timespec){.tv_nsec = 200000}, NULL);
	}
	return 0;
}

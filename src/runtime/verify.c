/* The runtime files, checked and pinned (see verify.h). */
#include "verify.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "veil/common.h"
#include "veil/image.h"

/* the policy's files, and at most MAX_PREFETCH more the list names: a list
 * cannot crowd out the policy's files */
#define MAX_RUNTIME_FILES 4096
#define MAX_PREFETCH 1024
#define MAX_JOBS (MAX_RUNTIME_FILES + MAX_PREFETCH)

/* One file copied into pf as copy number idx, with what was copied. */
struct copy_job {
	const struct pinned_files *pf;
	size_t idx;
	char *path; /* owned */
	unsigned got_mode;
	uint8_t got[VEIL_SHA256_SIZE];
	int failed;
	char err[600];
};

struct runtime_copies {
	struct pinned_files *pf;
	struct copy_job *jobs; /* MAX_JOBS */
	size_t count;
	atomic_size_t next; /* the next job a worker takes */
	pthread_t thread;
	int running;
};

static void *copy_worker(void *arg)
{
	struct runtime_copies *c = arg;
	for (size_t k; (k = atomic_fetch_add(&c->next, 1)) < c->count;) {
		struct copy_job *j = &c->jobs[k];
		j->failed = pin_files_copy(j->pf, j->idx, j->path, j->got, &j->got_mode, j->err,
					   sizeof(j->err)) != 0;
	}
	return NULL;
}

/* Copies jobs [c->next, c->count) on two threads: the interpreter alone is
 * most of the bytes, the rest goes on the other. */
static void copy_all(struct runtime_copies *c)
{
	pthread_t t;
	int helper =
	    c->count - atomic_load(&c->next) > 1 && !pthread_create(&t, NULL, copy_worker, c);
	copy_worker(c);
	if (helper)
		pthread_join(t, NULL);
}

static struct runtime_copies *copies_new(struct pinned_files *pf)
{
	struct runtime_copies *c = calloc(1, sizeof(*c));
	if (c && !(c->jobs = calloc(MAX_JOBS, sizeof(*c->jobs)))) {
		free(c);
		return NULL;
	}
	if (c) {
		c->pf = pf;
		atomic_init(&c->next, 0);
	}
	return c;
}

static struct copy_job *copies_add(struct runtime_copies *c, const char *path)
{
	if (c->count == MAX_JOBS)
		return NULL;
	struct copy_job *j = &c->jobs[c->count];
	if (!(j->path = strdup(path)))
		return NULL;
	j->pf = c->pf;
	j->idx = c->count++;
	return j;
}

static void copies_free(struct runtime_copies *c)
{
	if (!c)
		return;
	if (c->running)
		pthread_join(c->thread, NULL);
	for (size_t k = 0; k < c->count; k++)
		free(c->jobs[k].path);
	free(c->jobs);
	free(c);
}

struct runtime_copies *runtime_prefetch(struct pinned_files *pf, const char *list_path)
{
	FILE *f = list_path ? fopen(list_path, "re") : NULL;
	if (!f)
		return NULL;
	struct runtime_copies *c = copies_new(pf);
	char line[4096 + 2];
	while (c && c->count < MAX_PREFETCH && fgets(line, sizeof(line), f)) {
		size_t len = strlen(line);
		if (len && line[len - 1] == '\n')
			line[--len] = '\0';
		/* a file's absolute path; anything else is not a file to copy */
		if (len < 2 || line[0] != '/' || line[len - 1] == '/')
			continue;
		if (!copies_add(c, line))
			break;
	}
	fclose(f);
	/* one thread: the other core makes the key, and the TLS handshake */
	if (c && c->count && !pthread_create(&c->thread, NULL, copy_worker, c)) {
		c->running = 1;
		return c;
	}
	copies_free(c);
	return NULL;
}

/* A folder entry: its listing now against the policy's; 0 or VEIL_EINVAL with why. */
static int check_folder(json_t *list, const char *path, const char *bare,
			const uint8_t want[VEIL_SHA256_SIZE], char *why, size_t cap)
{
	uint8_t got[VEIL_SHA256_SIZE];
	char **names = NULL;
	size_t n = 0;
	int rc = 0, lr = veil_listing_sha256(bare, got, &names, &n);
	if (lr == VEIL_ENOENT) {
		snprintf(why, cap, "the runtime folder %s is missing", path);
		rc = VEIL_EINVAL;
	} else if (lr) {
		snprintf(why, cap, "cannot list the runtime folder %s", path);
		rc = VEIL_EINVAL;
	} else if (CRYPTO_memcmp(got, want, sizeof(got))) {
		/* a file Python runs at start that the policy does not list is
		 * named; any other difference names the folder */
		snprintf(why, cap,
			 "the runtime folder %s changed since `veil apply` measured it (a file "
			 "or folder was added, removed or renamed)",
			 path);
		for (size_t k = 0; k < n; k++) {
			char full[512];
			if (snprintf(full, sizeof(full), "%s%s", path, names[k]) >=
			    (int)sizeof(full))
				continue;
			int listed = 0;
			size_t j;
			json_t *o;
			json_array_foreach(list, j, o)
			{
				const char *op = json_string_value(json_object_get(o, "path"));
				listed |= op && !strcmp(op, full);
			}
			if (!listed && veil_runtime_startup_file(names[k])) {
				snprintf(why, cap,
					 "%s was added to the runtime folder %s after `veil "
					 "apply` measured it",
					 full, path);
				break;
			}
		}
		rc = VEIL_EINVAL;
	}
	for (size_t k = 0; k < n; k++)
		free(names[k]);
	free(names);
	return rc;
}

/* Unpinned: a file hashed in place; *fd_out keeps the descriptor hashed. */
static int check_in_place(const char *path, unsigned mode, const uint8_t want[VEIL_SHA256_SIZE],
			  int *fd_out, char *why, size_t cap)
{
	struct veil_diags d;
	veil_diags_init(&d);
	uint8_t got[VEIL_SHA256_SIZE];
	struct stat st;
	int rc = 0, fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) || !S_ISREG(st.st_mode) || veil_sha256_fd(fd, path, got, &d)) {
		snprintf(why, cap, "the runtime file %s is missing or unreadable", path);
		rc = VEIL_EINVAL;
	} else if (CRYPTO_memcmp(got, want, sizeof(got)) ||
		   ((st.st_mode & 0111) ? 0755u : 0644u) != mode) {
		snprintf(why, cap, "the runtime file %s changed since `veil apply` measured it",
			 path);
		rc = VEIL_EINVAL;
	}
	veil_diags_free(&d);
	if (rc && fd >= 0)
		close(fd);
	*fd_out = rc ? -1 : fd;
	return rc;
}

/* A file the policy lists, and the copy that stands for it. */
struct wanted {
	const char *path;
	unsigned mode;
	uint8_t sha[VEIL_SHA256_SIZE];
	size_t job;
};

int verify_runtime(json_t *cfg, struct pinned_files *pf, struct runtime_copies *pre, int *prog_fd,
		   size_t *count, char *why, size_t cap)
{
	const char *program = NULL;
	json_t *list = NULL;
	*prog_fd = -1;
	*count = 0;
	if (pre && pre->running) { /* its copies are reused, or replaced, below */
		copy_worker(pre);  /* this thread takes the list's files not yet started */
		pthread_join(pre->thread, NULL);
		pre->running = 0;
	}
	if (json_unpack(cfg, "{s?s, s?o}", "program", &program, "runtime_files", &list) ||
	    (program && (program[0] != '/' || !json_is_array(list)))) {
		copies_free(pre);
		snprintf(why, cap, "malformed runtime files from the CAS");
		return VEIL_EINVAL;
	}
	if (!program) {
		copies_free(pre);
		int allowed = 0;
		if (json_unpack(cfg, "{s?b}", "unmeasured_program_allowed", &allowed) || !allowed) {
			snprintf(
			    why, cap,
			    "the policy names no measured program (`veil apply` did not find "
			    "the command's program in the image, see VEIL_IMAGE_ROOT), so what "
			    "it execs is unchecked; a policy that accepts this says "
			    "security.attestation.tolerate: [insecure-unmeasured-program]");
			return VEIL_EINVAL;
		}
		fprintf(stderr, "warning: the command's program is not measured: it is found on "
				"PATH and not checked (the policy tolerates "
				"insecure-unmeasured-program)\n");
		return 0;
	}
	if (json_array_size(list) > MAX_RUNTIME_FILES) {
		copies_free(pre);
		snprintf(why, cap, "more than %d runtime files", MAX_RUNTIME_FILES);
		return VEIL_EINVAL;
	}
	struct runtime_copies *c = pf ? (pre ? pre : copies_new(pf)) : NULL;
	struct wanted *w = calloc(json_array_size(list) + 1, sizeof(*w));
	if ((pf && !c) || !w) {
		copies_free(c);
		free(w);
		snprintf(why, cap, "out of memory");
		return VEIL_ENOMEM;
	}
	size_t i, nw = 0, first_new = c ? c->count : 0;
	json_t *e;
	int rc = 0;
	json_array_foreach(list, i, e)
	{
		const char *path = NULL, *hex = NULL;
		int mode = 0;
		uint8_t want[VEIL_SHA256_SIZE];
		if (json_unpack(e, "{s:s, s:i, s:s}", "path", &path, "mode", &mode, "sha256",
				&hex) ||
		    path[0] != '/' || veil_unhex(hex, want, sizeof(want))) {
			snprintf(why, cap, "malformed runtime files from the CAS");
			rc = VEIL_EINVAL;
			break;
		}
		size_t len = strlen(path);
		int is_dir = path[len - 1] == '/';
		char bare[512];
		if (snprintf(bare, sizeof(bare), "%.*s", (int)(is_dir && len > 1 ? len - 1 : len),
			     path) >= (int)sizeof(bare)) {
			snprintf(why, cap, "a runtime file's path is too long");
			rc = VEIL_EINVAL;
			break;
		}
		struct stat st;
		if (mode == 0) { /* measured as absent */
			if (!lstat(bare, &st) || errno != ENOENT) {
				snprintf(why, cap,
					 "%s exists, but the image had no such %s when `veil "
					 "apply` measured it",
					 bare, is_dir ? "folder" : "file");
				rc = VEIL_EINVAL;
				break;
			}
			continue;
		}
		if (is_dir) {
			if ((rc = check_folder(list, path, bare, want, why, cap)))
				break;
			continue;
		}
		struct wanted *x = &w[nw++];
		x->path = path;
		x->mode = (unsigned)mode;
		memcpy(x->sha, want, sizeof(want));
		if (!c) { /* unpinned: hashed in place now */
			int fd = -1;
			if ((rc = check_in_place(path, x->mode, want, &fd, why, cap)))
				break;
			if (*prog_fd < 0 && !strcmp(path, program))
				*prog_fd = fd;
			else
				close(fd);
			continue;
		}
		/* pinned: a prefetched copy of this path, else one made below */
		size_t k;
		for (k = 0; k < first_new; k++)
			if (!c->jobs[k].failed && !strcmp(c->jobs[k].path, path))
				break;
		if (k == first_new) {
			struct copy_job *j = copies_add(c, path);
			if (!j) {
				snprintf(why, cap, "out of memory");
				rc = VEIL_ENOMEM;
				break;
			}
			k = j->idx;
		}
		x->job = k;
	}
	if (!rc && c && c->count > first_new) {
		atomic_store(&c->next, first_new);
		copy_all(c);
	}
	size_t prog = nw;
	for (size_t k = 0; k < nw && !rc && c; k++) {
		const struct copy_job *j = &c->jobs[w[k].job];
		if (j->failed) {
			snprintf(why, cap, "%s", j->err);
			rc = VEIL_EINVAL;
		} else if (CRYPTO_memcmp(j->got, w[k].sha, sizeof(j->got)) ||
			   j->got_mode != w[k].mode) {
			snprintf(why, cap,
				 "the runtime file %s changed since `veil apply` measured it",
				 w[k].path);
			rc = VEIL_EINVAL;
		} else if (prog == nw && !strcmp(w[k].path, program)) {
			prog = k;
		}
	}
	if (!c && !rc && *prog_fd >= 0)
		prog = 0;
	if (!rc && prog == nw) {
		snprintf(why, cap, "the policy's program %s is not among its runtime files",
			 program);
		rc = VEIL_EINVAL;
	}
	/* every copy made and checked: each goes over its path, read-only */
	if (!rc && c) {
		char perr[600];
		rc = pin_files_seal(pf, perr, sizeof(perr));
		for (size_t k = 0; k < nw && !rc; k++)
			rc = pin_files_attach(pf, c->jobs[w[k].job].idx, w[k].path, perr,
					      sizeof(perr));
		if (rc)
			snprintf(why, cap, "%s", perr);
		else if ((*prog_fd = pin_files_open_copy(pf, c->jobs[w[prog].job].idx)) < 0) {
			snprintf(why, cap, "cannot open the verified copy of %s: %s", program,
				 strerror(errno));
			rc = VEIL_EINVAL;
		}
	}
	*count = nw;
	if (rc && *prog_fd >= 0) {
		close(*prog_fd);
		*prog_fd = -1;
	}
	copies_free(c);
	free(w);
	return rc;
}

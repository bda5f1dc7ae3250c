/* Runtime files: what the policy's command execs besides the protected
 * folder (issue 9, H1). Until images are measured whole, `veil apply`
 * resolves the command's program like veil-run will, and records
 *   - the program itself (symbolic links followed: veil-run execs that file),
 *   - for an ELF program, its loader (PT_INTERP) and the shared objects it
 *     needs (DT_NEEDED, recursively), found like the loader's default search
 *     in the standard multiarch folders, plus /etc/ld.so.cache and the absence
 *     of /etc/ld.so.preload,
 *   - for a Python interpreter (pythonX.Y), the listing of its library and
 *     site folders (so that an added file is seen) and every .pth,
 *     site.py, sitecustomize.py and usercustomize.py in them, by content.
 * Entries (struct veil_file_entry):
 *   a file:             its path, mode 0644/0755, SHA-256 of its bytes;
 *   a folder's listing: its path with a trailing '/', mode 0755, SHA-256 of
 *                       "veil-listing-v1\n" then one line per entry sorted
 *                       bytewise: the name, '/' after a folder, '@' after a
 *                       symbolic link;
 *   something absent:   its path (a trailing '/' for a folder), mode 0000,
 *                       SHA-256 of nothing: it must not exist.
 * Not covered (docs/manifests.md): the content of the other files of those
 * folders (the standard library's modules), RUNPATH and LD_LIBRARY_PATH,
 * dlopen'd modules (lib-dynload's are listed, not hashed), the user site. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "veil/image.h"

#define MAX_RUNTIME_FILES 4096
#define MAX_LISTING_NAMES 100000

static const char *const lib_dirs[] = {"/lib/x86_64-linux-gnu",
				       "/usr/lib/x86_64-linux-gnu",
				       "/lib64",
				       "/usr/lib64",
				       "/lib",
				       "/usr/lib",
				       NULL};

struct rt {
	const char *root; /* "/" or the image's root folder */
	struct veil_file_entry *files;
	size_t count, cap;
	struct veil_diags *d;
};

/* The host path of image path p: p itself under "/", else p under root
 * with its symbolic links resolved inside root, as the container will see
 * them: an absolute link (a merged-/usr Debian's /usr/lib64/ld-linux-x86-64.so.2
 * -> /lib/x86_64-linux-gnu/...) names a path in the image, not on this host,
 * hence openat2's RESOLVE_IN_ROOT rather than realpath(3). NULL if absent. */
static char *host_path(const struct rt *r, const char *p)
{
	if (!strcmp(r->root, "/"))
		return strdup(p);
	char *root = realpath(r->root, NULL), *real = NULL;
	int rootfd = root ? open(root, O_PATH | O_DIRECTORY | O_CLOEXEC) : -1;
	if (rootfd >= 0) {
		struct open_how how = {.flags = O_PATH | O_CLOEXEC, .resolve = RESOLVE_IN_ROOT};
		long fd = syscall(SYS_openat2, rootfd, p[0] == '/' ? p + 1 : p, &how, sizeof(how));
		if (fd >= 0) {
			char link[64], buf[PATH_MAX];
			snprintf(link, sizeof(link), "/proc/self/fd/%ld", fd);
			ssize_t n = readlink(link, buf, sizeof(buf) - 1);
			if (n > 0) {
				buf[n] = 0;
				real = strdup(buf);
			}
			close((int)fd);
		}
		close(rootfd);
	}
	size_t rl = root ? strlen(root) : 0;
	if (real && root && (strncmp(real, root, rl) || (real[rl] != '/' && real[rl]))) {
		free(real);
		real = NULL; /* escapes the image (RESOLVE_IN_ROOT keeps it in) */
	}
	free(root);
	return real;
}

/* The image path p with its symbolic links resolved (inside root). */
static char *image_realpath(const struct rt *r, const char *p)
{
	if (!strcmp(r->root, "/"))
		return realpath(p, NULL);
	char *h = host_path(r, p), *root = realpath(r->root, NULL);
	char *out = NULL;
	if (h && root) {
		const char *rest = h + strlen(root);
		out = strdup(*rest ? rest : "/");
	}
	free(h);
	free(root);
	return out;
}

static int find(const struct rt *r, const char *path)
{
	for (size_t i = 0; i < r->count; i++)
		if (!strcmp(r->files[i].path, path))
			return 1;
	return 0;
}

static int push(struct rt *r, const char *path, unsigned mode, const uint8_t *sha)
{
	if (find(r, path))
		return 0;
	if (r->count >= MAX_RUNTIME_FILES) {
		veil_diag(r->d, "runtime files: more than %d", MAX_RUNTIME_FILES);
		return VEIL_ELIMIT;
	}
	if (r->count == r->cap) {
		size_t cap = r->cap ? r->cap * 2 : 32;
		struct veil_file_entry *f = realloc(r->files, cap * sizeof(*f));
		if (!f)
			return VEIL_ENOMEM;
		r->files = f;
		r->cap = cap;
	}
	struct veil_file_entry *e = &r->files[r->count];
	memset(e, 0, sizeof(*e));
	if (!(e->path = strdup(path)))
		return VEIL_ENOMEM;
	e->mode = mode;
	memcpy(e->sha256, sha, VEIL_SHA256_SIZE);
	r->count++;
	return 0;
}

static int push_absent(struct rt *r, const char *path)
{
	uint8_t h[VEIL_SHA256_SIZE];
	if (veil_sha256("", 0, h)) {
		veil_diag(r->d, "runtime file %s: cannot compute a SHA-256", path);
		return VEIL_EIO;
	}
	return push(r, path, 0, h);
}

/* A file by content (absent: recorded as absent). *present set if given. */
static int push_file(struct rt *r, const char *path, int *present)
{
	if (present)
		*present = 0;
	if (find(r, path))
		return 0;
	char *h = host_path(r, path);
	struct stat st;
	if (!h || stat(h, &st)) {
		free(h);
		return push_absent(r, path);
	}
	if (!S_ISREG(st.st_mode)) {
		veil_diag(r->d, "runtime file %s is not a regular file", path);
		free(h);
		return VEIL_EINVAL;
	}
	uint8_t sha[VEIL_SHA256_SIZE];
	int rc = veil_sha256_file(h, sha, r->d);
	free(h);
	if (!rc)
		rc = push(r, path, (st.st_mode & 0111) ? 0755 : 0644, sha);
	if (!rc && present)
		*present = 1;
	return rc;
}

static int name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int veil_listing_sha256(const char *dir, uint8_t out[static VEIL_SHA256_SIZE], char ***names_out,
			size_t *count_out)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT || errno == ENOTDIR ? VEIL_ENOENT : VEIL_EIO;
	DIR *dp = fdopendir(fd);
	if (!dp) {
		close(fd);
		return VEIL_EIO;
	}
	char **names = NULL;
	size_t n = 0, cap = 0;
	int rc = 0;
	struct dirent *de;
	while ((de = readdir(dp))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (n >= MAX_LISTING_NAMES) {
			rc = VEIL_ELIMIT;
			break;
		}
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			char **p = realloc(names, cap * sizeof(*p));
			if (!p) {
				rc = VEIL_ENOMEM;
				break;
			}
			names = p;
		}
		struct stat st;
		const char *suffix = "";
		if (!fstatat(dirfd(dp), de->d_name, &st, AT_SYMLINK_NOFOLLOW))
			suffix = S_ISDIR(st.st_mode) ? "/" : S_ISLNK(st.st_mode) ? "@" : "";
		size_t len = strlen(de->d_name);
		if (!(names[n] = malloc(len + 2))) {
			rc = VEIL_ENOMEM;
			break;
		}
		memcpy(names[n], de->d_name, len);
		memcpy(names[n] + len, suffix, strlen(suffix) + 1);
		n++;
	}
	closedir(dp);
	struct veil_buf b;
	veil_buf_init(&b, 0);
	if (!rc) {
		if (n)
			qsort(names, n, sizeof(*names), name_cmp);
		veil_buf_puts(&b, "veil-listing-v1\n");
		for (size_t i = 0; i < n; i++)
			veil_buf_printf(&b, "%s\n", names[i]);
		rc = b.failed ? VEIL_ENOMEM : veil_sha256(b.data, b.size, out);
	}
	veil_buf_free(&b);
	if (!rc && names_out) {
		*names_out = names;
		*count_out = n;
		return 0;
	}
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	return rc;
}

static int is_startup_file(const char *name)
{
	size_t n = strlen(name);
	return (n > 4 && !strcmp(name + n - 4, ".pth")) || !strcmp(name, "site.py") ||
	       !strcmp(name, "sitecustomize.py") || !strcmp(name, "usercustomize.py");
}

int veil_runtime_startup_file(const char *name)
{
	return is_startup_file(name);
}

/* A folder Python reads at start: its listing and its startup files. */
static int push_python_dir(struct rt *r, const char *dir)
{
	char path[PATH_MAX];
	if (snprintf(path, sizeof(path), "%s/", dir) >= (int)sizeof(path))
		return VEIL_ELIMIT;
	if (find(r, path))
		return 0;
	char *h = host_path(r, dir);
	uint8_t sha[VEIL_SHA256_SIZE];
	char **names = NULL;
	size_t n = 0;
	int rc = h ? veil_listing_sha256(h, sha, &names, &n) : VEIL_ENOENT;
	free(h);
	if (rc == VEIL_ENOENT)
		return push_absent(r, path);
	if (rc) {
		veil_diag(r->d, "cannot list the runtime folder %s", dir);
		return rc;
	}
	rc = push(r, path, 0755, sha);
	for (size_t i = 0; i < n; i++) {
		if (!rc && is_startup_file(names[i])) {
			char *f = veil_path_join(dir, names[i]);
			rc = f ? push_file(r, f, NULL) : VEIL_ENOMEM;
			free(f);
		}
		free(names[i]);
	}
	free(names);
	return rc;
}

static int rd(int fd, uint64_t off, void *buf, size_t n)
{
	return pread(fd, buf, n, (off_t)off) == (ssize_t)n ? 0 : -1;
}

static uint64_t u64(const unsigned char *p)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

static uint32_t u32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

#define MAX_NEEDED 256

/* PT_INTERP and DT_NEEDED of a 64-bit little-endian ELF file (anything else:
 * none). Every offset read from the file is checked by pread's length. */
static int elf_deps(const char *host, char *interp, size_t interp_cap, char needed[][256],
		    size_t *needed_count)
{
	*needed_count = 0;
	interp[0] = '\0';
	int fd = open(host, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	unsigned char eh[64];
	int rc = 0;
	/* not secret: the ELF magic */
	if (rd(fd, 0, eh, sizeof(eh)) || memcmp(eh, "\177ELF", 4) || eh[4] != 2 || eh[5] != 1)
		goto out; /* not an ELF64 LE file: no dependencies */
	uint64_t phoff = u64(eh + 32);
	unsigned phentsize = eh[54] | eh[55] << 8, phnum = eh[56] | eh[57] << 8;
	if (phentsize < 56 || phnum > 256)
		goto out;
	struct {
		uint64_t vaddr, off, filesz;
	} loads[64];
	size_t nloads = 0;
	uint64_t dyn_off = 0, dyn_size = 0;
	for (unsigned i = 0; i < phnum; i++) {
		unsigned char ph[56];
		if (rd(fd, phoff + (uint64_t)i * phentsize, ph, sizeof(ph)))
			goto out;
		uint32_t type = u32(ph);
		uint64_t off = u64(ph + 8), vaddr = u64(ph + 16), filesz = u64(ph + 32);
		if (type == 3 && filesz > 1 && filesz < interp_cap) { /* PT_INTERP */
			if (rd(fd, off, interp, filesz))
				interp[0] = '\0';
			interp[filesz - 1] = '\0';
		} else if (type == 2) { /* PT_DYNAMIC */
			dyn_off = off;
			dyn_size = filesz < (1u << 20) ? filesz : 0;
		} else if (type == 1 && nloads < 64) { /* PT_LOAD */
			loads[nloads].vaddr = vaddr;
			loads[nloads].off = off;
			loads[nloads++].filesz = filesz;
		}
	}
	if (!dyn_size)
		goto out;
	unsigned char *dyn = malloc(dyn_size);
	if (!dyn || rd(fd, dyn_off, dyn, dyn_size)) {
		free(dyn);
		goto out;
	}
	uint64_t strtab = 0, strtab_off = 0;
	for (uint64_t i = 0; i + 16 <= dyn_size; i += 16)
		if (u64(dyn + i) == 5) /* DT_STRTAB */
			strtab = u64(dyn + i + 8);
	for (size_t i = 0; i < nloads; i++)
		if (strtab >= loads[i].vaddr && strtab < loads[i].vaddr + loads[i].filesz)
			strtab_off = strtab - loads[i].vaddr + loads[i].off;
	for (uint64_t i = 0; strtab_off && i + 16 <= dyn_size; i += 16) {
		uint64_t tag = u64(dyn + i), val = u64(dyn + i + 8);
		if (tag == 0)
			break;
		if (tag != 1 || *needed_count >= MAX_NEEDED) /* DT_NEEDED */
			continue;
		char *s = needed[*needed_count];
		ssize_t got = pread(fd, s, 255, (off_t)(strtab_off + val));
		if (got <= 0)
			continue;
		s[got] = '\0';
		if (strlen(s) == (size_t)got || !*s || strchr(s, '/'))
			continue; /* unterminated, empty, or a path: not searched */
		(*needed_count)++;
	}
	free(dyn);
out:
	close(fd);
	return rc;
}

/* The program, its loader and the shared objects they need, breadth first. */
static int push_elf_closure(struct rt *r, const char *program)
{
	char(*needed)[256] = malloc(MAX_NEEDED * sizeof(*needed));
	char **queue = calloc(MAX_RUNTIME_FILES, sizeof(*queue));
	size_t head = 0, tail = 0;
	int rc = needed && queue ? 0 : VEIL_ENOMEM;
	if (!rc && !(queue[tail++] = strdup(program)))
		rc = VEIL_ENOMEM;
	while (!rc && head < tail) {
		char *cur = queue[head++];
		if (!cur) {
			rc = VEIL_ENOMEM;
			break;
		}
		char interp[PATH_MAX] = "";
		size_t n = 0;
		char *h = host_path(r, cur);
		if (h)
			elf_deps(h, interp, sizeof(interp), needed, &n);
		free(h);
		if (interp[0] == '/' && !find(r, interp)) {
			rc = push_file(r, interp, NULL);
			if (!rc && tail < MAX_RUNTIME_FILES)
				queue[tail++] = strdup(interp);
		}
		for (size_t i = 0; !rc && i < n; i++) {
			int present = 0;
			for (const char *const *dir = lib_dirs; *dir && !present && !rc; dir++) {
				char *p = veil_path_join(*dir, needed[i]);
				char *hp = p ? host_path(r, p) : NULL;
				struct stat st;
				if (!p) {
					rc = VEIL_ENOMEM;
				} else if (find(r, p)) {
					present = 1;
				} else if (hp && !stat(hp, &st) && S_ISREG(st.st_mode)) {
					rc = push_file(r, p, &present);
					if (!rc && present && tail < MAX_RUNTIME_FILES)
						queue[tail++] = strdup(p);
				}
				free(hp);
				free(p);
			}
		}
	}
	for (size_t i = 0; queue && i < tail; i++)
		free(queue[i]);
	free(queue);
	free(needed);
	return rc;
}

static int python_version(const char *base, char *ver, size_t cap)
{
	/* python3.11, python3.12d... : "3.11" */
	if (strncmp(base, "python", 6))
		return 0;
	const char *v = base + 6;
	size_t n = strspn(v, "0123456789.");
	if (!n || !strchr(v, '.') || n >= cap)
		return 0;
	memcpy(ver, v, n);
	ver[n] = '\0';
	return 1;
}

static int push_python(struct rt *r, const char *program)
{
	char ver[16], prefix[PATH_MAX], dir[PATH_MAX];
	const char *base = strrchr(program, '/') + 1;
	if (!python_version(base, ver, sizeof(ver)))
		return 0;
	/* <prefix>/bin/pythonX.Y */
	snprintf(prefix, sizeof(prefix), "%s", program);
	*strrchr(prefix, '/') = '\0';
	char *slash = strrchr(prefix, '/');
	if (!slash)
		return 0;
	*slash = '\0';
	char nodot[16];
	size_t k = 0;
	for (const char *p = ver; *p && k + 1 < sizeof(nodot); p++)
		if (*p != '.')
			nodot[k++] = *p;
	nodot[k] = '\0';
	/* <prefix>/lib/pythonX.Y and its subfolders, the distribution's and
	 * /usr/local's site folders */
	const char *const subs[] = {"", "/lib-dynload", "/site-packages", "/dist-packages", NULL};
	int rc = 0;
	for (size_t i = 0; subs[i] && !rc; i++) {
		if (snprintf(dir, sizeof(dir), "%s/lib/python%s%s", prefix, ver, subs[i]) >=
		    (int)sizeof(dir))
			return VEIL_ELIMIT;
		rc = push_python_dir(r, dir);
	}
	if (!rc)
		rc = push_python_dir(r, "/usr/lib/python3/dist-packages");
	for (size_t i = 2; subs[i] && !rc; i++) {
		if (snprintf(dir, sizeof(dir), "/usr/local/lib/python%s%s", ver, subs[i]) >=
		    (int)sizeof(dir))
			return VEIL_ELIMIT;
		rc = push_python_dir(r, dir);
	}
	/* pythonXY.zip comes before the standard library on sys.path */
	if (!rc) {
		if (snprintf(dir, sizeof(dir), "%s/lib/python%s.zip", prefix, nodot) >=
		    (int)sizeof(dir))
			return VEIL_ELIMIT;
		rc = push_file(r, dir, NULL);
	}
	return rc;
}

int veil_measure_runtime_files(const char *root, const char *command, char **program_out,
			       struct veil_file_entry **files_out, size_t *count_out,
			       struct veil_diags *d)
{
	struct rt r = {.root = root && *root ? root : "/", .d = d};
	*program_out = NULL;
	*files_out = NULL;
	*count_out = 0;
	char name[PATH_MAX];
	size_t n = strcspn(command, " \t");
	if (n == 0 || n >= sizeof(name))
		return 0;
	memcpy(name, command, n);
	name[n] = '\0';
	if (name[0] != '/' && strchr(name, '/'))
		return 0; /* relative to pwd: a protected file */
	char *found = NULL;
	if (name[0] == '/') {
		found = strdup(name);
	} else {
		const char *p = VEIL_DEFAULT_PATH;
		while (*p && !found) {
			size_t len = strcspn(p, ":");
			char cand[PATH_MAX];
			char *h = snprintf(cand, sizeof(cand), "%.*s/%s", (int)len, p, name) <
					  (int)sizeof(cand)
				      ? host_path(&r, cand)
				      : NULL;
			struct stat st;
			if (h && !stat(h, &st) && S_ISREG(st.st_mode) && (st.st_mode & 0111))
				found = strdup(cand);
			free(h);
			p += len + (p[len] == ':');
		}
	}
	if (!found)
		return 0; /* the caller warns */
	char *program = image_realpath(&r, found);
	free(found);
	if (!program)
		return 0;
	int rc = push_file(&r, program, NULL);
	if (!rc)
		rc = push_elf_closure(&r, program);
	if (!rc && r.count > 1) { /* dynamically linked: what steers the loader */
		rc = push_file(&r, "/etc/ld.so.cache", NULL);
		if (!rc)
			rc = push_file(&r, "/etc/ld.so.preload", NULL);
	}
	if (!rc)
		rc = push_python(&r, program);
	if (rc) {
		for (size_t i = 0; i < r.count; i++)
			free(r.files[i].path);
		free(r.files);
		free(program);
		return rc;
	}
	*program_out = program;
	*files_out = r.files;
	*count_out = r.count;
	return 0;
}

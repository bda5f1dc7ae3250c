/* The pinned protected folder (see pin.h).
 *
 * Hashing files in place and letting the program reopen them by path leaves
 * a window: anyone who can write the host's folder (a Kubernetes admin, a
 * hostPath, a process in the container) renames another file over a verified
 * one after it was hashed. Here each file is read once, through one
 * descriptor opened without following symbolic links, and every byte read
 * goes both into the hash and into a copy on a tmpfs created detached
 * (fsopen/fsmount: never attached where another process could reach it).
 * After attestation the copy is mounted at the policy's pwd in veil-run's
 * private mount namespace and made read-only; the program inherits that
 * namespace through execve. A change to the host's folder after the copy
 * changes nothing the program reads. */
#include "pin.h"
#include "util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#define MAX_FILES 100000
#define MAX_DEPTH 32
/* the tmpfs's size limit; memory is used only as files are copied */
#define MAX_BYTES (1ull << 30)

struct pin_walk {
	struct pinned_tree *tree;
	size_t cap; /* of tree->files */
	EVP_MD_CTX *md;
	char *err;
	size_t errcap;
};

/* A new tmpfs, detached (reachable only through the returned mount
 * descriptor until attached), nosuid and nodev, at most MAX_BYTES. (Huge
 * pages, tmpfs's huge=within_size, made copies cheaper alone but stalled
 * starts by up to 15 ms in compaction: measured with bench/run_start.sh.) */
static int private_tmpfs(char *err, size_t cap)
{
	char size[32];
	snprintf(size, sizeof(size), "%llu", MAX_BYTES);
	int fs = fsopen("tmpfs", FSOPEN_CLOEXEC), mnt = -1;
	if (fs < 0 || fsconfig(fs, FSCONFIG_SET_STRING, "mode", "0755", 0) ||
	    fsconfig(fs, FSCONFIG_SET_STRING, "size", size, 0)) {
		rt_failf(err, cap, "cannot create a private tmpfs: %s", strerror(errno));
		goto out;
	}
	if (fsconfig(fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0) ||
	    (mnt = fsmount(fs, FSMOUNT_CLOEXEC, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV)) < 0)
		rt_failf(err, cap, "cannot create a private tmpfs: %s", strerror(errno));
out:
	if (fs >= 0)
		close(fs);
	return mnt;
}

/* Copies in (from its start) into out, a file on a detached tmpfs opened
 * read-write, then hashes the copy: what is hashed is what the program will
 * read, since nothing else can reach that tmpfs. One copy in the kernel
 * (sendfile), the hash read from the copy's pages (mmap), no user buffer. */
static int copy_and_hash(int in, int out, EVP_MD_CTX *md, uint8_t sha[VEIL_SHA256_SIZE],
			 const char *path, char *err, size_t cap)
{
	size_t size = 0;
	for (;;) {
		ssize_t n = sendfile(out, in, NULL, 1 << 30);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return rt_failf(err, cap, "%s: cannot copy it to memory: %s%s", path,
					strerror(errno),
					errno == ENOSPC ? " (more than 1 GiB to copy)" : "");
		if (n == 0)
			break;
		size += (size_t)n;
	}
	void *map = NULL;
	if (size) {
		map = mmap(NULL, size, PROT_READ, MAP_SHARED | MAP_POPULATE, out, 0);
		if (map == MAP_FAILED)
			return rt_failf(err, cap, "%s: cannot read its copy: %s", path,
					strerror(errno));
	}
	unsigned int len = 0;
	int ok = EVP_DigestInit_ex(md, EVP_sha256(), NULL) &&
		 EVP_DigestUpdate(md, map ? map : "", size) && EVP_DigestFinal_ex(md, sha, &len) &&
		 len == VEIL_SHA256_SIZE;
	if (map)
		munmap(map, size);
	return ok ? 0 : rt_failf(err, cap, "%s: cannot hash it", path);
}

/* One file of the protected folder. */
static int copy_file(struct pin_walk *w, int src_dir, int dst_dir, const char *name,
		     const char *image_path)
{
	struct pinned_tree *t = w->tree;
	if (t->file_count >= MAX_FILES)
		return rt_failf(w->err, w->errcap, "the protected folder holds more than %d files",
				MAX_FILES);
	if (t->file_count == w->cap) {
		size_t cap = w->cap ? w->cap * 2 : 16;
		struct veil_file_entry *f = realloc(t->files, cap * sizeof(*f));
		if (!f)
			return rt_failf(w->err, w->errcap, "out of memory");
		t->files = f;
		w->cap = cap;
	}
	int in = openat(src_dir, name, O_RDONLY | O_NOFOLLOW | O_NOCTTY | O_CLOEXEC), out = -1;
	struct stat st;
	int rc = VEIL_EINVAL;
	if (in < 0 || fstat(in, &st)) {
		rt_failf(w->err, w->errcap, "%s: %s", image_path, strerror(errno));
		goto done;
	}
	if (!S_ISREG(st.st_mode)) {
		rt_failf(w->err, w->errcap, "%s is not a regular file", image_path);
		goto done;
	}
	/* modes are normalised as `veil apply` records them */
	mode_t mode = (st.st_mode & 0111) ? 0755 : 0644;
	out = openat(dst_dir, name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, mode);
	if (out < 0 || fchmod(out, mode)) {
		rt_failf(w->err, w->errcap, "%s: cannot copy it to memory: %s", image_path,
			 strerror(errno));
		goto done;
	}
	struct veil_file_entry *e = &t->files[t->file_count];
	memset(e, 0, sizeof(*e));
	if (copy_and_hash(in, out, w->md, e->sha256, image_path, w->err, w->errcap))
		goto done;
	if (!(e->path = strdup(image_path))) {
		rt_failf(w->err, w->errcap, "out of memory");
		goto done;
	}
	e->mode = (unsigned)mode;
	t->file_count++;
	rc = 0;
done:
	if (in >= 0)
		close(in);
	if (out >= 0)
		close(out);
	return rc;
}

static int copy_dir(struct pin_walk *w, int src_dir, int dst_dir, const char *image_path, int depth)
{
	if (depth > MAX_DEPTH)
		return rt_failf(w->err, w->errcap, "%s is nested more than %d folders deep",
				image_path, MAX_DEPTH);
	int dup_fd = dup(src_dir);
	DIR *d = dup_fd >= 0 ? fdopendir(dup_fd) : NULL;
	if (!d) {
		if (dup_fd >= 0)
			close(dup_fd);
		return rt_failf(w->err, w->errcap, "%s: %s", image_path, strerror(errno));
	}
	int rc = 0;
	struct dirent *de;
	while (!rc && (errno = 0, de = readdir(d))) {
		const char *name = de->d_name;
		if (!strcmp(name, ".") || !strcmp(name, ".."))
			continue;
		char path[4096];
		if (snprintf(path, sizeof(path), "%s/%s", image_path, name) >= (int)sizeof(path)) {
			rc = rt_failf(w->err, w->errcap, "%.200s/...: path too long", image_path);
			break;
		}
		struct stat st;
		if (fstatat(src_dir, name, &st, AT_SYMLINK_NOFOLLOW)) {
			rc = rt_failf(w->err, w->errcap, "%s: %s", path, strerror(errno));
		} else if (S_ISREG(st.st_mode)) {
			rc = copy_file(w, src_dir, dst_dir, name, path);
		} else if (S_ISDIR(st.st_mode)) {
			int s =
			    openat(src_dir, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			int t = s >= 0 && !mkdirat(dst_dir, name, 0755)
				    ? openat(dst_dir, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
				    : -1;
			rc = t >= 0 ? copy_dir(w, s, t, path, depth + 1)
				    : rt_failf(w->err, w->errcap, "%s: %s", path, strerror(errno));
			if (s >= 0)
				close(s);
			if (t >= 0)
				close(t);
		} else {
			rc = rt_failf(w->err, w->errcap,
				      "%s is %s: the protected folder holds only files and folders",
				      path,
				      S_ISLNK(st.st_mode) ? "a symbolic link" : "a special file");
		}
	}
	if (!rc && errno)
		rc = rt_failf(w->err, w->errcap, "%s: %s", image_path, strerror(errno));
	closedir(d);
	return rc;
}

void pin_free(struct pinned_tree *tree)
{
	for (size_t i = 0; i < tree->file_count; i++)
		free(tree->files[i].path);
	free(tree->files);
	if (tree->mnt >= 0)
		close(tree->mnt);
	tree->files = NULL;
	tree->file_count = 0;
	tree->mnt = -1;
}

int pin_private_namespace(char *err, size_t cap)
{
	/* only here does the start depend on privilege: without CAP_SYS_ADMIN
	 * (an ordinary Kubernetes container) there is no private namespace */
	if (unshare(CLONE_NEWNS)) {
		rt_failf(err, cap, "no private mount namespace: %s (CAP_SYS_ADMIN is needed)",
			 strerror(errno));
		return 1;
	}
	/* nothing mounted here may propagate back to the host's namespace */
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL))
		return rt_failf(err, cap, "cannot make the mount namespace private: %s",
				strerror(errno));
	return 0;
}

int pin_copy(const char *dir, struct pinned_tree *tree, char *err, size_t cap)
{
	*tree = (struct pinned_tree){.mnt = -1};
	if (dir[0] != '/' || !dir[1])
		return rt_failf(err, cap,
				"the protected folder '%s' must be an absolute folder "
				"other than /",
				dir);
	int src = -1, root = -1, rc = VEIL_EINVAL;
	struct pin_walk w = {.tree = tree, .md = EVP_MD_CTX_new(), .err = err, .errcap = cap};
	if ((tree->mnt = private_tmpfs(err, cap)) < 0)
		goto out;
	src = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	root = openat(tree->mnt, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (src < 0 || root < 0) {
		rt_failf(err, cap, "%s: %s", dir, strerror(errno));
		goto out;
	}
	if (!w.md) {
		rt_failf(err, cap, "out of memory");
		goto out;
	}
	rc = copy_dir(&w, src, root, dir, 0);
out:
	EVP_MD_CTX_free(w.md);
	if (src >= 0)
		close(src);
	if (root >= 0)
		close(root);
	if (rc)
		pin_free(tree);
	return rc;
}

int pin_attach(struct pinned_tree *tree, const char *dir, char *err, size_t cap)
{
	if (move_mount(tree->mnt, "", AT_FDCWD, dir, MOVE_MOUNT_F_EMPTY_PATH))
		return rt_failf(err, cap, "cannot mount the verified copy at %s: %s", dir,
				strerror(errno));
	return 0;
}

int pin_seal(const char *dir, char *err, size_t cap)
{
	struct mount_attr attr = {.attr_set = MOUNT_ATTR_RDONLY};
	if (mount_setattr(AT_FDCWD, dir, 0, &attr, sizeof(attr)))
		return rt_failf(err, cap, "cannot make %s read-only: %s", dir, strerror(errno));
	return 0;
}

/* ---- runtime files (issue 9, H1) ----
 * The program, its loader and libraries and Python's start-up files are
 * opened by path after veil-run checked them: the loader and Python would
 * read whatever was renamed over them in the meantime. Each is copied into a
 * second detached tmpfs while hashed, like the protected folder, and the copy
 * is mounted over its path in this namespace only. */

int pin_files_open(struct pinned_files *pf, char *err, size_t cap)
{
	*pf = (struct pinned_files){.mnt = -1, .root = -1};
	if ((pf->mnt = private_tmpfs(err, cap)) < 0)
		return VEIL_EINVAL;
	if ((pf->root = openat(pf->mnt, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
		int e = errno;
		pin_files_close(pf);
		return rt_failf(err, cap, "cannot open a private tmpfs: %s", strerror(e));
	}
	return 0;
}

int pin_files_copy(const struct pinned_files *pf, size_t idx, const char *path,
		   uint8_t sha[VEIL_SHA256_SIZE], unsigned *mode, char *err, size_t cap)
{
	char name[32];
	snprintf(name, sizeof(name), "%zu", idx);
	int in = open(path, O_RDONLY | O_NOCTTY | O_CLOEXEC), out = -1, rc = VEIL_EINVAL;
	struct stat st;
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	if (in < 0 || fstat(in, &st) || !S_ISREG(st.st_mode)) {
		rt_failf(err, cap, "the runtime file %s is missing or not a regular file", path);
		goto done;
	}
	*mode = (st.st_mode & 0111) ? 0755 : 0644;
	out = openat(pf->root, name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, *mode);
	if (out < 0 || fchmod(out, *mode) || !md) {
		rt_failf(err, cap, "%s: cannot copy it to memory: %s", path, strerror(errno));
		goto done;
	}
	if (copy_and_hash(in, out, md, sha, path, err, cap))
		goto done;
	rc = 0;
done:
	EVP_MD_CTX_free(md);
	if (in >= 0)
		close(in);
	if (out >= 0)
		close(out);
	return rc;
}

int pin_files_seal(struct pinned_files *pf, char *err, size_t cap)
{
	struct mount_attr attr = {.attr_set = MOUNT_ATTR_RDONLY};
	if (mount_setattr(pf->mnt, "", AT_EMPTY_PATH, &attr, sizeof(attr)))
		return rt_failf(err, cap, "cannot make the runtime copies read-only: %s",
				strerror(errno));
	return 0;
}

int pin_files_attach(struct pinned_files *pf, size_t idx, const char *path, char *err, size_t cap)
{
	char name[32];
	snprintf(name, sizeof(name), "%zu", idx);
	int t = open_tree(pf->mnt, name, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
	if (t < 0 ||
	    move_mount(t, "", AT_FDCWD, path, MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_SYMLINKS)) {
		int e = errno;
		if (t >= 0)
			close(t);
		return rt_failf(err, cap, "cannot mount the verified copy of %s: %s", path,
				strerror(e));
	}
	close(t);
	return 0;
}

int pin_files_open_copy(const struct pinned_files *pf, size_t idx)
{
	char name[32];
	snprintf(name, sizeof(name), "%zu", idx);
	return openat(pf->root, name, O_RDONLY | O_CLOEXEC);
}

void pin_files_close(struct pinned_files *pf)
{
	if (pf->root >= 0)
		close(pf->root);
	if (pf->mnt >= 0)
		close(pf->mnt);
	pf->root = pf->mnt = -1;
}

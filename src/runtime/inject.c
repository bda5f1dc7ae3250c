/* Injection files (see inject.h).
 *
 * Preferred: a private mount namespace. A tmpfs is created detached
 * (fsopen/fsmount: it is never attached anywhere another process could
 * reach), each file is written into it, and a bind mount of that one file is
 * moved over the policy's path. The image's other files in the directory stay
 * visible; the program inherits the namespace through execve; when it exits
 * the tmpfs is gone. A missing target gets an empty placeholder file (and its
 * folders), which never holds content.
 *
 * Fallback, for containers without CAP_SYS_ADMIN: the file's directory must
 * already be memory-backed (tmpfs or ramfs, e.g. the emptyDir with medium:
 * Memory that veil's Helm chart mounts); the file is written there 0600 under
 * a temporary name and renamed into place.
 *
 * Either way each path is walked one component at a time with openat2(2)
 * and RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS: a link anywhere in it is
 * refused (it redirected files into the host's /dev/shm and mounts onto
 * /proc/sys/kernel/hostname, past the textual /proc rule), and every later
 * step works on the folder's descriptor, so a link swapped in after the check
 * is not followed either. Without openat2 (Linux < 5.6) nothing is placed.
 * RESOLVE_NO_XDEV is not used: a path may rightly cross into a mount (an
 * emptyDir, /run); the folder's file system is checked instead. */
#include "inject.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/magic.h>
#include <linux/openat2.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#define MAX_FILES 256
#define MAX_TOTAL (64u << 20)

static const char *method = "none";

const char *inject_method(void)
{
	return method;
}

/* Absolute, no empty, "." or ".." component, not a folder, not in the
 * kernel's pseudo file systems (/dev/shm is memory, and allowed). */
static int path_ok(const char *p, char *err, size_t cap)
{
	size_t n = strlen(p);
	if (p[0] != '/' || n < 2 || n >= PATH_MAX || p[n - 1] == '/')
		return rt_failf(err, cap,
				"injection file path '%.200s' must be an absolute file path", p);
	for (const char *c = p; *c;) {
		const char *e = strchr(c + 1, '/');
		size_t len = (e ? (size_t)(e - c) : strlen(c)) - 1;
		if (len == 0 || (len == 1 && c[1] == '.') || (len == 2 && !strncmp(c + 1, "..", 2)))
			return rt_failf(
			    err, cap, "injection file path '%.200s' has an empty, '.' or '..' part",
			    p);
		if (!e)
			break;
		c = e;
	}
	static const char *const pseudo[] = {"/proc/", "/sys/", "/dev/"};
	for (size_t i = 0; i < sizeof(pseudo) / sizeof(pseudo[0]); i++)
		if (!strncmp(p, pseudo[i], strlen(pseudo[i])) && strncmp(p, "/dev/shm/", 9))
			return rt_failf(err, cap, "injection file path '%.200s' is in %.*s", p,
					(int)strlen(pseudo[i]) - 1, pseudo[i]);
	return 0;
}

/* The one component name in dfd, never through a symbolic link (magic
 * /proc links included). */
static int open_no_links(int dfd, const char *name, int flags)
{
	struct open_how how = {.flags = (unsigned long long)(flags | O_CLOEXEC),
			       .resolve = RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS};
	return (int)syscall(SYS_openat2, dfd, name, &how, sizeof(how));
}

/* Kernel pseudo file systems: writing or mounting there changes the kernel,
 * not a file (the folder as reached, whatever its path says). */
static int is_pseudo_fs(int fd)
{
	static const unsigned long pseudo[] = {
	    PROC_SUPER_MAGIC,   SYSFS_MAGIC,   CGROUP_SUPER_MAGIC, CGROUP2_SUPER_MAGIC,
	    SECURITYFS_MAGIC,   DEBUGFS_MAGIC, TRACEFS_MAGIC,      BPF_FS_MAGIC,
	    DEVPTS_SUPER_MAGIC, EFIVARFS_MAGIC};
	struct statfs s;
	if (fstatfs(fd, &s))
		return 1;
	for (size_t i = 0; i < sizeof(pseudo) / sizeof(pseudo[0]); i++)
		if ((unsigned long)s.f_type == pseudo[i])
			return 1;
	return 0;
}

/* The folder holding path, walked from / one component at a time without
 * following a link; create: make missing folders (0755: they hold no
 * content). The descriptor (O_PATH), or -1 with the reason in err. */
static int open_parent(const char *path, int create, char *err, size_t cap)
{
	char buf[PATH_MAX];
	snprintf(buf, sizeof(buf), "%s", path);
	int dfd = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return rt_failf(err, cap, "injection file %.200s: /: %s", path, strerror(errno));
	char *name = buf + 1;
	for (char *s = strchr(name, '/'); s; name = s + 1, s = strchr(name, '/')) {
		*s = '\0';
		if (create && mkdirat(dfd, name, 0755) && errno != EEXIST) {
			rt_failf(err, cap, "injection file %.200s: cannot make folder %.200s: %s",
				 path, buf, strerror(errno));
			close(dfd);
			return -1;
		}
		int next = open_no_links(dfd, name, O_PATH | O_DIRECTORY);
		int e = errno;
		close(dfd);
		if (next < 0) {
			if (e == ENOSYS)
				return rt_failf(
				    err, cap,
				    "injection file %.200s: this kernel has no openat2 "
				    "(Linux 5.6 or later): veil-run cannot place the file "
				    "without following symbolic links, and refuses",
				    path);
			if (e == ELOOP || e == EXDEV)
				return rt_failf(err, cap,
						"injection file %.200s: %.200s is a symbolic link; "
						"injection paths must not go through one",
						path, buf);
			return rt_failf(err, cap, "injection file %.200s: folder %.200s: %s", path,
					buf, e == ENOTDIR ? "not a folder" : strerror(e));
		}
		dfd = next;
		*s = '/';
	}
	if (is_pseudo_fs(dfd)) {
		close(dfd);
		return rt_failf(
		    err, cap, "injection file %.200s: its folder is on a kernel pseudo file system",
		    path);
	}
	return dfd;
}

/* The target (name in dfd) must be a regular file to mount over; a missing
 * one gets an empty placeholder. Symbolic links are refused: a mount would
 * follow one. Its descriptor (O_PATH), or -1 with the reason in err. */
static int prepare_target(int dfd, const char *name, const char *path, char *err, size_t cap)
{
	int fd = openat(dfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0 && errno != EEXIST)
		return rt_failf(err, cap,
				"injection file %.200s: cannot create its mount point: %s", path,
				strerror(errno));
	if (fd >= 0)
		close(fd);
	struct stat st;
	fd = openat(dfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st)) {
		rt_failf(err, cap, "injection file %.200s: %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	if (S_ISREG(st.st_mode))
		return fd;
	close(fd);
	return rt_failf(err, cap, "injection file %.200s: the path is %s", path,
			S_ISLNK(st.st_mode)   ? "a symbolic link"
			: S_ISDIR(st.st_mode) ? "a directory"
					      : "not a regular file");
}

/* The program's: it may run under the policy's uid and gid. */
static int give_to(int fd, uid_t uid, gid_t gid)
{
	return uid == (uid_t)-1 && gid == (gid_t)-1 ? 0 : fchown(fd, uid, gid);
}

static int inject_private(const struct inject_file *f, size_t count, size_t total, uid_t uid,
			  gid_t gid, char *err, size_t cap)
{
	/* nothing mounted here may propagate back to the host's namespace */
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL))
		return rt_failf(err, cap, "cannot make the mount namespace private: %s",
				strerror(errno));
	int fs = fsopen("tmpfs", FSOPEN_CLOEXEC), mnt = -1, rc = VEIL_EINVAL;
	char size[32], inodes[32];
	snprintf(size, sizeof(size), "%zu", total + count * 4096 + 65536);
	snprintf(inodes, sizeof(inodes), "%zu", count + 16);
	if (fs < 0 || fsconfig(fs, FSCONFIG_SET_STRING, "mode", "0700", 0) ||
	    fsconfig(fs, FSCONFIG_SET_STRING, "size", size, 0) ||
	    fsconfig(fs, FSCONFIG_SET_STRING, "nr_inodes", inodes, 0) ||
	    fsconfig(fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0) ||
	    (mnt = fsmount(fs, FSMOUNT_CLOEXEC,
			   MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC)) < 0) {
		rt_failf(err, cap, "cannot create a private tmpfs: %s", strerror(errno));
		goto out;
	}
	for (size_t i = 0; i < count; i++) {
		char name[32];
		snprintf(name, sizeof(name), "%zu", i);
		int fd = openat(mnt, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		int bad = fd < 0 || rt_write_all(fd, f[i].content, f[i].size);
		if (!bad && give_to(fd, uid, gid)) {
			rt_failf(err, cap,
				 "injection file %.200s: cannot give it to uid %u, gid %u (%s): "
				 "veil-run needs CAP_CHOWN for that",
				 f[i].path, (unsigned)uid, (unsigned)gid, strerror(errno));
			close(fd);
			goto out;
		}
		if (fd >= 0)
			close(fd);
		if (bad) {
			rt_failf(err, cap, "injection file %.200s: cannot write it to memory: %s",
				 f[i].path, strerror(errno));
			goto out;
		}
		int dfd = open_parent(f[i].path, 1, err, cap);
		if (dfd < 0)
			goto out;
		int target = prepare_target(dfd, strrchr(f[i].path, '/') + 1, f[i].path, err, cap);
		close(dfd);
		if (target < 0)
			goto out;
		/* onto the file checked, not onto whatever its path names now */
		int tree = open_tree(mnt, name, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
		if (tree < 0 || move_mount(tree, "", target, "",
					   MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH)) {
			rt_failf(err, cap, "injection file %.200s: cannot mount it: %s", f[i].path,
				 strerror(errno));
			if (tree >= 0)
				close(tree);
			close(target);
			goto out;
		}
		close(tree);
		close(target);
	}
	method = "private mount namespace";
	rc = 0;
out:
	/* the detached tmpfs lives on in the file mounts */
	if (mnt >= 0)
		close(mnt);
	if (fs >= 0)
		close(fs);
	return rc;
}

static int is_memory_fs(int fd)
{
	struct statfs s;
	return !fstatfs(fd, &s) && (s.f_type == TMPFS_MAGIC || s.f_type == RAMFS_MAGIC);
}

static int inject_memdir(const struct inject_file *f, size_t count, const char *why_not_private,
			 uid_t uid, gid_t gid, char *err, size_t cap)
{
	size_t done = 0;
	for (; done < count; done++) {
		const char *path = f[done].path, *slash = strrchr(path, '/');
		char dir[PATH_MAX], tmp[PATH_MAX];
		snprintf(dir, sizeof(dir), "%.*s", slash == path ? 1 : (int)(slash - path), path);
		int dfd = open_parent(path, 0, err, cap);
		if (dfd < 0)
			break;
		if (!is_memory_fs(dfd)) {
			close(dfd);
			rt_failf(
			    err, cap,
			    "injection file %.200s: %.200s is not memory-backed and veil-run "
			    "cannot make a private mount namespace (%s); mount a memory volume "
			    "at %.200s (Kubernetes: emptyDir with medium: Memory, as veil's "
			    "chart does)",
			    path, dir, why_not_private, dir);
			break;
		}
		snprintf(tmp, sizeof(tmp), ".%.200s.veil-%ld", slash + 1, (long)getpid());
		int fd =
		    openat(dfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
		int bad = fd < 0 || fchmod(fd, 0600);
		if (!bad && give_to(fd, uid, gid)) {
			rt_failf(err, cap,
				 "injection file %.200s: cannot give it to uid %u, gid %u (%s): "
				 "veil-run needs CAP_CHOWN for that",
				 path, (unsigned)uid, (unsigned)gid, strerror(errno));
			close(fd);
			unlinkat(dfd, tmp, 0);
			close(dfd);
			break;
		}
		bad = bad || rt_write_all(fd, f[done].content, f[done].size);
		if (fd >= 0)
			close(fd);
		if (bad || renameat(dfd, tmp, dfd, slash + 1)) {
			rt_failf(err, cap, "injection file %.200s: cannot write it: %s", path,
				 strerror(errno));
			unlinkat(dfd, tmp, 0);
			close(dfd);
			break;
		}
		close(dfd);
	}
	if (done == count) {
		method = "memory-backed folders";
		return 0;
	}
	/* all or nothing: no file with secrets stays behind */
	for (size_t i = 0; i < done; i++) {
		char ignored[8];
		int dfd = open_parent(f[i].path, 0, ignored, sizeof(ignored));
		if (dfd >= 0) {
			unlinkat(dfd, strrchr(f[i].path, '/') + 1, 0);
			close(dfd);
		}
	}
	return VEIL_EINVAL;
}

int inject_files(const struct inject_file *f, size_t count, uid_t uid, gid_t gid, char *err,
		 size_t cap)
{
	if (!count)
		return 0;
	if (count > MAX_FILES)
		return rt_failf(err, cap, "the policy has %zu injection files; at most %d", count,
				MAX_FILES);
	size_t total = 0;
	for (size_t i = 0; i < count; i++) {
		if (path_ok(f[i].path, err, cap))
			return VEIL_EINVAL;
		for (size_t k = 0; k < i; k++)
			if (!strcmp(f[k].path, f[i].path))
				return rt_failf(err, cap, "injection file %.200s is given twice",
						f[i].path);
		total += f[i].size;
		if (total > MAX_TOTAL)
			return rt_failf(err, cap, "the injection files exceed %u MiB",
					MAX_TOTAL >> 20);
	}
	if (!unshare(CLONE_NEWNS))
		return inject_private(f, count, total, uid, gid, err, cap);
	const char *why = strerror(errno);
	return inject_memdir(f, count, why, uid, gid, err, cap);
}

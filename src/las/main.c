/* veil-las: the local attestation service of simulation mode, one per node.
 *
 * The protocol on the unix socket, one line each way at a time:
 *   caller: "REPORT <64 hex> <config id>\n" (the report data: SHA-256 of
 *           its TLS key; the NAMESPACE/SERVICE the evidence is made for)
 *   las:    "CHALLENGE <32 hex>\n" (a fresh nonce)
 *   caller: "RESPONSE <32 hex>\n"  (the nonce back)
 *   las:    the evidence (include/veil/evidence.h, platform "sim", always
 *           debug) and "\n"; or "ERROR <reason>\n" at any step.
 * The measured process is the one that SENT the request, named by the kernel
 * on every message (SCM_CREDENTIALS), not the one that connected: a
 * connection is inherited across fork and exec. veil-las pins it with a
 * pidfd, hashes its executable itself through /proc/<pid>/exe (never
 * self-reported), and the response must come from that same, still living
 * process, after the measurement, running the same executable: a process
 * that sent a request and then exec'd the genuine binary cannot answer (its
 * new program knows nothing of the nonce), and another process cannot answer
 * for it (its pid is not the sender's). Only a process that runs no code but
 * its executable is vouched for (refuse_unmeasured_code), from a file system
 * the kernel serves itself (refuse_served_executable), with its code in
 * memory as in the file (refuse_code_unlike_its_file). The whole exchange
 * has a deadline; callers are served concurrently. */
#include <ctype.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/magic.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/pidfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "veil/args.h"
#include "veil/evidence.h"
#include "veil/lasproto.h"
#include "veil/tls.h"

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static void usage(FILE *f)
{
	fprintf(f, "Usage: veil-las [--socket PATH] [--data DIR] [--cache-seconds N]\n\n"
		   "The local attestation service of simulation mode (one per node). It signs,\n"
		   "with its platform key, the measurement of the process that asks: the SHA-256\n"
		   "of that process's executable, which veil-las reads itself.\n\n"
		   "  --socket PATH     unix socket (default $SCONE_LAS_ADDR, else\n"
		   "                    /run/veil/las.sock); refused while another veil-las\n"
		   "                    answers on it\n"
		   "  --data DIR        platform key folder (default /var/lib/veil-las)\n"
		   "  --cache-seconds N how long a measurement is reused for an unchanged file\n"
		   "                    (same device, inode, size, mtime, ctime) before it is\n"
		   "                    hashed again; 0 hashes at every request (default 10)\n"
		   "  --print-key-hash  print the platform key hash (making the key if DIR has\n"
		   "                    none) and exit\n"
		   "  -h, --help        this help\n"
		   "  --version         print the version\n\n"
		   "The platform key hash is printed at start: register it with\n"
		   "'veil-cas --trust-platform HASH' or in a policy's 'platforms'.\n");
}

/* SOCKET.lock, locked for the life of this veil-las: check, unlink and bind
 * of the socket path are one step among veil-las processes. Without it two
 * starting together on a stale socket both saw ECONNREFUSED, and the slower
 * one unlinked the faster one's fresh socket (which then served nobody). A
 * second veil-las is refused by the lock alone. The lock file is never
 * removed: an unlinked lock file would let a third process lock a new one.
 * *lock_fd gets the descriptor, to keep open until exit. */
static int lock_socket_path(const char *sock, int *lock_fd, struct veil_diags *d)
{
	size_t n = strlen(sock);
	char *path = malloc(n + sizeof(".lock"));
	if (!path)
		return VEIL_ENOMEM;
	memcpy(path, sock, n);
	memcpy(path + n, ".lock", sizeof(".lock"));
	int rc = VEIL_EIO;
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		veil_diag(d, "%s: %s", path, strerror(errno));
		goto out;
	}
	if (flock(fd, LOCK_EX | LOCK_NB)) {
		if (errno == EWOULDBLOCK) {
			veil_diag(d,
				  "%s: another veil-las holds %s (it serves this socket or is "
				  "starting on it); stop it first",
				  sock, path);
			rc = VEIL_EINVAL;
		} else {
			veil_diag(d, "%s: cannot lock: %s", path, strerror(errno));
		}
		close(fd);
		goto out;
	}
	*lock_fd = fd;
	rc = 0;
out:
	free(path);
	return rc;
}

/* Under the lock: the socket path is free: nothing there, or a socket nobody
 * answers on (a veil-las that died), which is removed. A live one (a program
 * that does not take the lock) is refused: a veil-las would take it over and
 * delete it when it exits. */
static int claim_socket_path(const char *sock, const struct sockaddr_un *sa, struct veil_diags *d)
{
	struct stat st;
	if (lstat(sock, &st)) {
		if (errno == ENOENT)
			return 0;
		veil_diag(d, "%s: %s", sock, strerror(errno));
		return VEIL_EIO;
	}
	if (!S_ISSOCK(st.st_mode)) {
		veil_diag(d, "%s exists and is not a socket: not removed", sock);
		return VEIL_EINVAL;
	}
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		veil_diag(d, "socket: %s", strerror(errno));
		return VEIL_EIO;
	}
	int r = connect(fd, (const struct sockaddr *)sa, sizeof(*sa)), e = errno;
	close(fd);
	if (r == 0) {
		veil_diag(d, "%s: another veil-las answers on this socket; stop it first", sock);
		return VEIL_EINVAL;
	}
	if (e != ECONNREFUSED) {
		veil_diag(d, "%s: cannot tell whether a veil-las serves it: %s", sock, strerror(e));
		return VEIL_EIO;
	}
	if (unlink(sock) && errno != ENOENT) { /* stale: its server is gone */
		veil_diag(d, "%s: cannot remove the stale socket: %s", sock, strerror(errno));
		return VEIL_EIO;
	}
	return 0;
}

static void reply(int fd, const char *s)
{
	size_t n = strlen(s);
	while (n) {
		ssize_t w = write(fd, s, n);
		if (w <= 0)
			return;
		s += w;
		n -= (size_t)w;
	}
}

/* Measurements of executables seen lately, by file identity. A running
 * executable cannot be written (ETXTBSY), and any write or metadata change
 * to a file moves its ctime, which no one can set back; so an unchanged
 * (device, inode, size, mtime, ctime) is an unchanged file, as far as the
 * kernel saw. What it did not see keeps the identity: a disk image changed
 * while unmounted and mounted again, or the block device written under a
 * live mount. Both take the privilege to mount or write block devices (the
 * node's root, who can read the platform key anyway), and both are vouched
 * for at most --cache-seconds: an entry is not used after that. A mount id in
 * the key would not stop the second, and every pod's mount namespace has its
 * own copy of a mount: veil-run would be hashed at every start (+8 ms in
 * bench/run_start.sh). Hashing a statically linked veil-run (5 MB) took
 * 3-5 ms of every start. */
#define MEASURE_CACHE 64
struct file_identity {
	uint64_t dev_major, dev_minor, ino, size;
	struct statx_timestamp mtime, ctime;
};
static struct {
	struct file_identity id;
	struct timespec added; /* CLOCK_MONOTONIC */
	char hex[VEIL_KEY_HASH_HEX];
	int used;
} mcache[MEASURE_CACHE];
static unsigned mcache_next;
static pthread_mutex_t mcache_lock = PTHREAD_MUTEX_INITIALIZER;
static long cache_seconds = 10;

/* 0 and the identity of the open file, or -1 if it cannot be told (then
 * nothing is cached for it) */
static int identify(int fd, struct file_identity *id)
{
	struct statx sx;
	if (statx(fd, "", AT_EMPTY_PATH | AT_STATX_SYNC_AS_STAT, STATX_BASIC_STATS, &sx))
		return -1;
	const unsigned need = STATX_INO | STATX_SIZE | STATX_MTIME | STATX_CTIME;
	if ((sx.stx_mask & need) != need)
		return -1;
	memset(id, 0, sizeof(*id));
	id->dev_major = sx.stx_dev_major;
	id->dev_minor = sx.stx_dev_minor;
	id->ino = sx.stx_ino;
	id->size = sx.stx_size;
	id->mtime = sx.stx_mtime;
	id->ctime = sx.stx_ctime;
	return 0;
}

static int same_identity(const struct file_identity *a, const struct file_identity *b)
{
	return a->dev_major == b->dev_major && a->dev_minor == b->dev_minor && a->ino == b->ino &&
	       a->size == b->size && a->mtime.tv_sec == b->mtime.tv_sec &&
	       a->mtime.tv_nsec == b->mtime.tv_nsec && a->ctime.tv_sec == b->ctime.tv_sec &&
	       a->ctime.tv_nsec == b->ctime.tv_nsec;
}

static int fresh(struct timespec added, struct timespec now)
{
	return now.tv_sec - added.tv_sec < cache_seconds ||
	       (now.tv_sec - added.tv_sec == cache_seconds && now.tv_nsec < added.tv_nsec);
}

/* The SHA-256 of the open executable fd (path names it in messages). */
static int measure(int fd, const char *path, char hex[static VEIL_KEY_HASH_HEX])
{
	struct file_identity id, after;
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	int known = !identify(fd, &id) && cache_seconds > 0, hit = 0;
	pthread_mutex_lock(&mcache_lock);
	for (unsigned i = 0; known && !hit && i < MEASURE_CACHE; i++)
		if (mcache[i].used && same_identity(&mcache[i].id, &id) &&
		    fresh(mcache[i].added, now)) {
			memcpy(hex, mcache[i].hex, VEIL_KEY_HASH_HEX);
			hit = 1;
		}
	pthread_mutex_unlock(&mcache_lock);
	if (hit)
		return 0;
	uint8_t h[VEIL_SHA256_SIZE];
	if (lseek(fd, 0, SEEK_SET) || veil_sha256_fd(fd, path, h, NULL))
		return VEIL_EIO;
	veil_hex(h, sizeof(h), hex);
	/* changed while hashed: measured, but not remembered */
	if (!known || identify(fd, &after) || !same_identity(&id, &after))
		return 0;
	pthread_mutex_lock(&mcache_lock);
	unsigned k = mcache_next++ % MEASURE_CACHE;
	mcache[k].id = id;
	mcache[k].added = now;
	memcpy(mcache[k].hex, hex, VEIL_KEY_HASH_HEX);
	mcache[k].used = 1;
	pthread_mutex_unlock(&mcache_lock);
	return 0;
}

/* The whole exchange with one caller, from accept to the evidence, may take
 * this long: a caller that dribbles its request holds one of MAX_CALLERS
 * slots for at most this (veil-run needs well under a millisecond). */
#define REQUEST_SECONDS 5
#define MAX_CALLERS 64

static int ms_left(const struct timespec *deadline)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	long long ms = (long long)(deadline->tv_sec - now.tv_sec) * 1000 +
		       (deadline->tv_nsec - now.tv_nsec) / 1000000;
	return ms <= 0 ? 0 : ms > 60000 ? 60000 : (int)ms;
}

/* Reads one line ("...\n", nothing after it) by the deadline. Every byte
 * must have been sent by one process: the kernel stamps each write with its
 * sender (SO_PASSCRED) and never joins two senders' bytes in one read. That
 * process's pid in *sender (0 on entry: whoever sent; else it must be that
 * one). 0, or an error message for the caller. */
static const char *read_line(int fd, const struct timespec *deadline, char *buf, size_t size,
			     pid_t *sender)
{
	size_t n = 0;
	for (;;) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		int left = ms_left(deadline);
		if (!left || poll(&p, 1, left) <= 0)
			return "request not complete in time";
		union {
			struct cmsghdr h;
			char space[CMSG_SPACE(sizeof(struct ucred))];
		} ctl;
		struct iovec iov = {.iov_base = buf + n, .iov_len = size - 1 - n};
		struct msghdr m = {.msg_iov = &iov,
				   .msg_iovlen = 1,
				   .msg_control = &ctl,
				   .msg_controllen = sizeof(ctl)};
		ssize_t r = recvmsg(fd, &m, MSG_DONTWAIT);
		if (r < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (r <= 0)
			return "connection closed before the end of the line";
		struct cmsghdr *c = CMSG_FIRSTHDR(&m);
		struct ucred cred;
		if (!c || c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_CREDENTIALS ||
		    c->cmsg_len != CMSG_LEN(sizeof(cred)))
			return "cannot identify the sender";
		memcpy(&cred, CMSG_DATA(c), sizeof(cred));
		/* 0: a sender outside our pid namespace */
		if (cred.pid <= 0)
			return "cannot identify the sender";
		if (*sender && cred.pid != *sender)
			return "the request was sent by more than one process";
		*sender = cred.pid;
		n += (size_t)r;
		buf[n] = '\0';
		char *nl = memchr(buf, '\n', n);
		if (nl && nl != buf + n - 1)
			return "data after the end of the line";
		if (nl)
			return NULL;
		if (n == size - 1)
			return "line too long";
	}
}

static int alive(int pidfd)
{
	return pidfd_send_signal(pidfd, 0, NULL, 0) == 0;
}

/* The executable of the pinned process now: dev/inode, as fstat of an open
 * /proc/<pid>/exe gives them. */
static int exe_identity(int pidfd, pid_t pid, struct stat *st)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/exe", (int)pid);
	/* alive after the stat: the pid still named the pinned process */
	return stat(path, st) || !alive(pidfd) ? -1 : 0;
}

struct caller {
	int fd;
	EVP_PKEY *platform;
};

static pthread_mutex_t callers_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t callers_cond = PTHREAD_COND_INITIALIZER;
static int callers;

/* veil-las vouches only for a process that runs no code but its measured
 * executable (issue 9, C1): an executable with a program interpreter
 * (PT_INTERP) runs whatever the dynamic loader maps before main (LD_PRELOAD,
 * LD_LIBRARY_PATH, the image's libraries), none of it measured; so does a
 * process with any other file mapped as a library: a name ending in .so or
 * holding ".so.", or any file mapped executable (a library under another name,
 * a memfd). The kernel's own mappings ([vdso], [vvar], [vsyscall]) have no
 * file (inode 0). A traced process runs what its tracer writes into it.
 * 0, or -1 with the reason (for the caller's ERROR line) in why. */
/* One line of /proc/<pid>/maps (proc(5)), its '\n' already cut off:
 * "start-end perms offset major:minor inode", then spaces and the path (none
 * for an anonymous mapping). Each number is read with strtoull and must end
 * at the separator the format puts after it. */
struct maps_line {
	uint64_t start, end, off, ino;
	unsigned maj, min;
	char perms[5];
	const char *path; /* into the line; "" when none */
};

static bool maps_number(const char **p, int base, const char *ends, uint64_t *out)
{
	const char *s = *p;
	char *e;
	if (!(base == 16 ? isxdigit((unsigned char)*s) : isdigit((unsigned char)*s)))
		return false;
	errno = 0;
	unsigned long long v = strtoull(s, &e, base);
	if (errno || !strchr(ends, *e)) /* ends holds '\0' too: see the callers */
		return false;
	*out = v;
	*p = *e ? e + 1 : e;
	return true;
}

static bool parse_maps_line(const char *line, struct maps_line *m)
{
	const char *p = line;
	uint64_t maj, min;
	if (!maps_number(&p, 16, "-", &m->start) || !*p || !maps_number(&p, 16, " ", &m->end) ||
	    !*p)
		return false;
	for (int i = 0; i < 4; i++) {
		if (!p[i] || p[i] == ' ')
			return false;
		m->perms[i] = p[i];
	}
	m->perms[4] = '\0';
	p += 4;
	if (*p++ != ' ' || !maps_number(&p, 16, " ", &m->off) || !*p ||
	    !maps_number(&p, 16, ":", &maj) || !*p || !maps_number(&p, 16, " ", &min) || !*p ||
	    maj > UINT_MAX || min > UINT_MAX || !maps_number(&p, 10, " ", &m->ino))
		return false;
	m->maj = (unsigned)maj;
	m->min = (unsigned)min;
	while (*p == ' ')
		p++;
	m->path = p;
	return true;
}

static int refuse_unmeasured_code(pid_t pid, char *why, size_t cap)
{
	char path[64], exe_path[4096] = "", line[4096 + 256];
	snprintf(path, sizeof(path), "/proc/%d/exe", (int)pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC), rc = -1;
	struct stat exe;
	Elf64_Ehdr eh;
	FILE *f = NULL;
	snprintf(why, cap, "cannot inspect the caller");
	if (fd < 0 || fstat(fd, &exe) || pread(fd, &eh, sizeof(eh), 0) != (ssize_t)sizeof(eh))
		goto out;
	/* not secret: the ELF magic */
	if (memcmp(eh.e_ident, ELFMAG, SELFMAG) || eh.e_ident[EI_CLASS] != ELFCLASS64 ||
	    eh.e_phentsize != sizeof(Elf64_Phdr) || eh.e_phnum > 512) {
		snprintf(why, cap, "the caller's executable is not a 64-bit ELF executable");
		goto out;
	}
	for (unsigned i = 0; i < eh.e_phnum; i++) {
		Elf64_Phdr ph;
		if (pread(fd, &ph, sizeof(ph), (off_t)(eh.e_phoff + i * sizeof(ph))) !=
		    (ssize_t)sizeof(ph))
			goto out;
		if (ph.p_type == PT_INTERP) {
			snprintf(why, cap,
				 "the caller's executable has a program interpreter (dynamically "
				 "linked): code its loader maps is not measured; only a static "
				 "executable such as veil-run is vouched for");
			goto out;
		}
	}
	ssize_t n = readlink(path, exe_path, sizeof(exe_path) - 1);
	exe_path[n > 0 ? n : 0] = '\0';
	snprintf(path, sizeof(path), "/proc/%d/maps", (int)pid);
	if (!(f = fopen(path, "re")))
		goto out;
	while (fgets(line, sizeof(line), f)) {
		struct maps_line m;
		size_t len = strlen(line);
		if (!len || line[len - 1] != '\n')
			goto out; /* a path longer than any real one */
		line[len - 1] = '\0';
		if (!parse_maps_line(line, &m))
			goto out;
		const char *file = m.path, *base = strrchr(file, '/');
		base = base ? base + 1 : file;
		size_t bl = strlen(base);
		if (!m.ino || (makedev(m.maj, m.min) == exe.st_dev && m.ino == exe.st_ino) ||
		    !strcmp(file, exe_path))
			continue;
		if (m.perms[2] == 'x' || (bl > 3 && !strcmp(base + bl - 3, ".so")) ||
		    strstr(base, ".so.")) {
			snprintf(why, cap,
				 "the caller maps the library %.300s, which is not measured", file);
			goto out;
		}
	}
	fclose(f);
	f = NULL;
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	if (!(f = fopen(path, "re")))
		goto out;
	while (fgets(line, sizeof(line), f)) {
		static const char field[] = "TracerPid:";
		if (strncmp(line, field, sizeof(field) - 1))
			continue;
		const char *v = line + sizeof(field) - 1;
		char *e;
		while (*v == ' ' || *v == '\t')
			v++;
		errno = 0;
		long tracer = strtol(v, &e, 10);
		if (e == v || errno || (*e != '\n' && *e)) {
			snprintf(why, cap, "the caller's TracerPid cannot be read");
			goto out;
		}
		if (tracer != 0) {
			snprintf(why, cap, "the caller is being traced by pid %ld", tracer);
			goto out;
		}
	}
	rc = 0;
out:
	if (f)
		fclose(f);
	if (fd >= 0)
		close(fd);
	return rc;
}

/* Not in <linux/magic.h>: fs/orangefs/protocol.h, fs/vboxsf/vfsmod.h,
 * Lustre's lustre_user.h */
#define ORANGEFS_SUPER_MAGIC 0x20030528
#define VBOXSF_SUPER_MAGIC 0x786f4256
#define LUSTRE_SUPER_MAGIC 0x0BD00BD0

/* veil-las vouches only for an executable whose bytes the kernel itself
 * reads from storage. On FUSE (sshfs, bindfs, virtiofs, a glusterfs or
 * s3 client...) a userspace server answers every read: veil-las's hashing
 * read and the kernel's page-ins for exec are different requests, which it
 * can answer with different bytes; network file systems leave the same
 * choice to a remote server. Refused before the measurement: its read would
 * also be the server's to stall. 0, or VEIL_EINVAL with the reason in why. */
static int refuse_served_executable(int fd, char *why, size_t cap)
{
	static const struct {
		unsigned long magic;
		const char *name;
	} served[] = {
	    {FUSE_SUPER_MAGIC, "FUSE"},
	    {NFS_SUPER_MAGIC, "NFS"},
	    {SMB_SUPER_MAGIC, "SMB"},
	    {CIFS_SUPER_MAGIC, "SMB/CIFS"},
	    {SMB2_SUPER_MAGIC, "SMB2"},
	    {V9FS_MAGIC, "9P"},
	    {CEPH_SUPER_MAGIC, "Ceph"},
	    {AFS_SUPER_MAGIC, "AFS"},
	    {AFS_FS_MAGIC, "AFS"},
	    {CODA_SUPER_MAGIC, "Coda"},
	    {NCP_SUPER_MAGIC, "NCP"},
	    {ORANGEFS_SUPER_MAGIC, "OrangeFS"},
	    {VBOXSF_SUPER_MAGIC, "a VirtualBox shared folder (vboxsf)"},
	    {LUSTRE_SUPER_MAGIC, "Lustre"},
	};
	struct statfs fs;
	if (fstatfs(fd, &fs)) {
		snprintf(why, cap, "cannot tell the file system of the caller's executable");
		return VEIL_EINVAL;
	}
	for (size_t i = 0; i < sizeof(served) / sizeof(served[0]); i++)
		if ((unsigned long)(unsigned int)fs.f_type == served[i].magic) {
			snprintf(why, cap,
				 "the caller's executable is on %s, whose content a userspace or "
				 "remote server controls: the bytes veil-las hashes need not be "
				 "the bytes that run; only an executable on a local file system "
				 "is vouched for",
				 served[i].name);
			return VEIL_EINVAL;
		}
	return 0;
}

/* The file ranges of the caller's code: the parts of its executable mapped
 * as loaded and never written at load: PT_LOAD segments without PF_W, less
 * PT_GNU_RELRO (written by relocation, then made read-only). A static-pie
 * executable has no text relocations. */
#define CODE_RANGES 16
struct code_ranges {
	struct {
		uint64_t from, to; /* file offsets, [from, to) */
	} r[CODE_RANGES];
	unsigned count;
	uint64_t relro_from, relro_to;
};

static int read_code_ranges(int fd, struct code_ranges *code)
{
	Elf64_Ehdr eh;
	memset(code, 0, sizeof(*code));
	if (pread(fd, &eh, sizeof(eh), 0) != (ssize_t)sizeof(eh) ||
	    /* not secret: the ELF magic */
	    memcmp(eh.e_ident, ELFMAG, SELFMAG) || eh.e_ident[EI_CLASS] != ELFCLASS64 ||
	    eh.e_phentsize != sizeof(Elf64_Phdr) || eh.e_phnum > 512)
		return VEIL_EINVAL;
	for (unsigned i = 0; i < eh.e_phnum; i++) {
		Elf64_Phdr ph;
		if (pread(fd, &ph, sizeof(ph), (off_t)(eh.e_phoff + i * sizeof(ph))) !=
			(ssize_t)sizeof(ph) ||
		    ph.p_offset > UINT64_MAX - ph.p_filesz)
			return VEIL_EINVAL;
		if (ph.p_type == PT_GNU_RELRO) {
			code->relro_from = ph.p_offset;
			code->relro_to = ph.p_offset + ph.p_filesz;
		} else if (ph.p_type == PT_LOAD && !(ph.p_flags & PF_W) && ph.p_filesz) {
			if (code->count == CODE_RANGES)
				return VEIL_EINVAL;
			code->r[code->count].from = ph.p_offset;
			code->r[code->count].to = ph.p_offset + ph.p_filesz;
			code->count++;
		}
	}
	return 0;
}

#define COMPARE_CHUNK 65536
/* Whether any page of the caller's memory in [addr, addr + len) may differ
 * from its file: 1 if one was written (the kernel gave it a private copy:
 * /proc/<pid>/pagemap shows it present and not a file page, or swapped), 0
 * if every page is the file's page in the page cache or not loaded yet (it
 * will be read from the file), -1 if pagemap cannot tell. */
static int pages_written(int pagemap, uint64_t addr, uint64_t len, long page)
{
	uint64_t entries[COMPARE_CHUNK / 4096 + 2];
	uint64_t first = addr / (uint64_t)page, last = (addr + len - 1) / (uint64_t)page;
	size_t count = (size_t)(last - first + 1);
	if (pagemap < 0 || count > sizeof(entries) / sizeof(entries[0]) ||
	    pread(pagemap, entries, count * sizeof(entries[0]), (off_t)(first * 8)) !=
		(ssize_t)(count * sizeof(entries[0])))
		return -1;
	for (size_t i = 0; i < count; i++) {
		int present = (int)(entries[i] >> 63 & 1), swapped = (int)(entries[i] >> 62 & 1),
		    file_page = (int)(entries[i] >> 61 & 1);
		if (swapped || (present && !file_page))
			return 1;
	}
	return 0;
}

/* Compares len bytes of the caller's memory at addr with its executable at
 * offset off, through buf (2 * COMPARE_CHUNK bytes): 0 if equal, 1 if not,
 * -1 if either cannot be read. Only chunks with a written page are read
 * (pages_written; all of them without pagemap): comparing all of
 * veil-run's 5.2 MB of code took 1.4 to 5.9 ms per request, most of it
 * faulting in pages it never runs. */
static int compare_with_file(int mem, int pagemap, uint64_t addr, int exe, uint64_t off,
			     uint64_t len, uint8_t *buf)
{
	uint8_t *in_memory = buf, *in_file = buf + COMPARE_CHUNK;
	long page = sysconf(_SC_PAGESIZE);
	if (page < 4096)
		pagemap = -1;
	while (len) {
		size_t n = len < COMPARE_CHUNK ? (size_t)len : COMPARE_CHUNK;
		if (pages_written(pagemap, addr, n, page)) {
			if (pread(mem, in_memory, n, (off_t)addr) != (ssize_t)n ||
			    pread(exe, in_file, n, (off_t)off) != (ssize_t)n)
				return -1;
			/* not secret: the code of an executable the caller could read itself */
			if (memcmp(in_memory, in_file, n))
				return 1;
		}
		addr += n;
		off += n;
		len -= n;
	}
	return 0;
}

/* veil-las vouches only for a caller whose code in memory is its
 * executable's: a tracer can write into the code (PTRACE_POKETEXT, or
 * /proc/<pid>/mem) and detach before TracerPid is read. Every mapping of the
 * executable file is compared, byte for byte, with the file at the offsets
 * it maps, wherever those offsets hold code (read_code_ranges): the file
 * measured (its device and inode in *measured). 0, or -1 with the reason in
 * why. */
static int refuse_code_unlike_its_file(pid_t pid, int pidfd, const struct stat *measured, char *why,
				       size_t cap)
{
	char path[64], exe_path[4096] = "", line[4096 + 256];
	uint64_t compared = 0;
	struct code_ranges code;
	struct stat exe;
	FILE *maps = NULL;
	uint8_t *buf = malloc(2 * COMPARE_CHUNK);
	int fd, mem = -1, pagemap = -1, rc = -1, differs = 0;
	snprintf(why, cap, "cannot inspect the caller's code");
	snprintf(path, sizeof(path), "/proc/%d/exe", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (!buf || fd < 0 || fstat(fd, &exe))
		goto out;
	if (exe.st_dev != measured->st_dev || exe.st_ino != measured->st_ino) {
		snprintf(why, cap, "the caller's executable changed or the caller exited");
		goto out;
	}
	if (read_code_ranges(fd, &code))
		goto out;
	ssize_t n = readlink(path, exe_path, sizeof(exe_path) - 1);
	exe_path[n > 0 ? n : 0] = '\0';
	snprintf(path, sizeof(path), "/proc/%d/mem", (int)pid);
	if ((mem = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		goto out;
	snprintf(path, sizeof(path), "/proc/%d/pagemap", (int)pid);
	pagemap = open(path, O_RDONLY | O_CLOEXEC); /* without it: every byte compared */
	snprintf(path, sizeof(path), "/proc/%d/maps", (int)pid);
	if (!(maps = fopen(path, "re")))
		goto out;
	while (!differs && fgets(line, sizeof(line), maps)) {
		struct maps_line m;
		size_t len = strlen(line);
		if (!len || line[len - 1] != '\n')
			goto out;
		line[len - 1] = '\0';
		if (!parse_maps_line(line, &m) || m.end < m.start ||
		    m.off > UINT64_MAX - (m.end - m.start))
			goto out;
		uint64_t start = m.start, end = m.end, off = m.off;
		/* by name too: on overlayfs the maps may show the lower file's
		 * device and inode */
		if ((makedev(m.maj, m.min) != exe.st_dev || m.ino != exe.st_ino) &&
		    (!*exe_path || strcmp(m.path, exe_path)))
			continue;
		for (unsigned i = 0; !differs && i < code.count; i++) {
			/* the part of this mapping that holds code: [from, to) in the
			 * file, less RELRO */
			uint64_t from = code.r[i].from > off ? code.r[i].from : off;
			uint64_t to =
			    code.r[i].to < off + (end - start) ? code.r[i].to : off + (end - start);
			uint64_t pieces[2][2] = {{from, to}, {0, 0}};
			if (code.relro_from < to && code.relro_to > from) {
				pieces[0][1] = code.relro_from > from ? code.relro_from : from;
				pieces[1][0] = code.relro_to < to ? code.relro_to : to;
				pieces[1][1] = to;
			}
			for (unsigned k = 0; !differs && k < 2; k++) {
				if (pieces[k][0] >= pieces[k][1])
					continue;
				int r = compare_with_file(
				    mem, pagemap, start + (pieces[k][0] - off), fd, pieces[k][0],
				    pieces[k][1] - pieces[k][0], buf);
				if (r < 0)
					goto out;
				differs = r;
				compared += pieces[k][1] - pieces[k][0];
			}
		}
	}
	/* nothing compared: its code is not mapped from its executable */
	if (ferror(maps) || !alive(pidfd) || (!differs && !compared))
		goto out;
	if (differs) {
		snprintf(why, cap,
			 "the caller's code in memory differs from its executable (written "
			 "after exec, by a tracer or through /proc/<pid>/mem)");
		goto out;
	}
	rc = 0;
out:
	free(buf);
	if (maps)
		fclose(maps);
	if (pagemap >= 0)
		close(pagemap);
	if (mem >= 0)
		close(mem);
	if (fd >= 0)
		close(fd);
	return rc;
}

static void serve(int fd, EVP_PKEY *platform)
{
	struct ucred cred = {0};
	/* "REPORT <64 hex> <config id>\n" */
	char req[80 + VEIL_EVIDENCE_CONFIG_ID_MAX], path[64], meas[VEIL_KEY_HASH_HEX], line[600];
	int pidfd = -1, exefd = -1;
	struct timespec deadline;
	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += REQUEST_SECONDS;
	struct timeval tv = {.tv_sec = REQUEST_SECONDS};
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	const char *why = read_line(fd, &deadline, req, sizeof(req), &cred.pid);
	uint8_t rd[VEIL_SHA256_SIZE];
	char config_id[VEIL_EVIDENCE_CONFIG_ID_MAX + 1];
	/* the config id goes into the signed evidence: the CAS accepts it only
	 * for that configuration */
	if (!why && veil_las_parse_report(req, strlen(req), rd, config_id))
		why = "expected 'REPORT <64 hex digits> <NAMESPACE/SERVICE>'";
	if (why)
		goto refuse;
	/* the sender, pinned: its pid cannot name another process while the
	 * pidfd is held and the process alive. If the pid was reused between
	 * the request and pidfd_open, the pinned process is not the sender and
	 * cannot answer the challenge (below) as the sender's pid. */
	pidfd = pidfd_open(cred.pid, 0);
	if (pidfd < 0) {
		why = "cannot identify the caller";
		goto refuse;
	}
	/* /proc/<pid>/exe opens the very inode the caller runs, even if the
	 * file at its path was replaced since */
	snprintf(path, sizeof(path), "/proc/%d/exe", (int)cred.pid);
	exefd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat measured;
	char unmeasured[512];
	if (exefd >= 0 && refuse_served_executable(exefd, unmeasured, sizeof(unmeasured))) {
		why = unmeasured;
		goto refuse;
	}
	if (exefd < 0 || fstat(exefd, &measured) || !alive(pidfd) || measure(exefd, path, meas)) {
		why = "cannot measure the caller";
		goto refuse;
	}
	/* no interpreter, library or tracer: checked now (a dynamically linked
	 * caller is told at once) and again just before signing */
	if (refuse_unmeasured_code(cred.pid, unmeasured, sizeof(unmeasured))) {
		why = unmeasured;
		goto refuse;
	}
	/* proof that the measured process itself asks, after the measurement */
	uint8_t nonce[16];
	char nonce_hex[33];
	uint8_t got[sizeof(nonce)];
	if (RAND_bytes(nonce, sizeof(nonce)) != 1) {
		why = "no randomness";
		goto refuse;
	}
	veil_hex(nonce, sizeof(nonce), nonce_hex);
	snprintf(line, sizeof(line), "CHALLENGE %s\n", nonce_hex);
	reply(fd, line);
	why = read_line(fd, &deadline, line, sizeof(line), &cred.pid);
	if (!why && (veil_las_parse_hex_line(line, strlen(line), "RESPONSE", got, sizeof(got)) ||
		     CRYPTO_memcmp(got, nonce, sizeof(nonce))))
		why = "expected 'RESPONSE <the challenge>' from the process that sent the request";
	struct stat now;
	if (!why && (exe_identity(pidfd, cred.pid, &now) || now.st_dev != measured.st_dev ||
		     now.st_ino != measured.st_ino))
		why = "the caller's executable changed or the caller exited";
	/* the code compared before TracerPid is read: a tracer that wrote it
	 * must have left by then, or is seen */
	if (!why &&
	    refuse_code_unlike_its_file(cred.pid, pidfd, &measured, unmeasured, sizeof(unmeasured)))
		why = unmeasured;
	if (!why && refuse_unmeasured_code(cred.pid, unmeasured, sizeof(unmeasured)))
		why = unmeasured;
	if (why)
		goto refuse;
	char *ev = NULL;
	if (veil_evidence_sim_sign(platform, meas, rd, config_id, &ev)) {
		why = "cannot sign";
		goto refuse;
	}
	reply(fd, ev);
	reply(fd, "\n");
	fprintf(stderr, "veil-las: evidence for pid %d, measurement %s\n", (int)cred.pid, meas);
	free(ev);
	goto out;
refuse:
	snprintf(line, sizeof(line), "ERROR %s\n", why);
	reply(fd, line);
	if (cred.pid > 0)
		fprintf(stderr, "veil-las: refused pid %d: %s\n", (int)cred.pid, why);
out:
	if (exefd >= 0)
		close(exefd);
	if (pidfd >= 0)
		close(pidfd);
}

static void *serve_thread(void *arg)
{
	struct caller *c = arg;
	serve(c->fd, c->platform);
	close(c->fd);
	free(c);
	pthread_mutex_lock(&callers_lock);
	callers--;
	pthread_cond_signal(&callers_cond);
	pthread_mutex_unlock(&callers_lock);
	return NULL;
}

/* one thread per caller, at most MAX_CALLERS at a time (the next wait in
 * the listen backlog) */
static void serve_concurrently(int cfd, EVP_PKEY *platform)
{
	struct caller *c = malloc(sizeof(*c));
	pthread_attr_t attr;
	pthread_t t;
	if (!c) {
		close(cfd);
		return;
	}
	*c = (struct caller){.fd = cfd, .platform = platform};
	pthread_mutex_lock(&callers_lock);
	callers++;
	pthread_mutex_unlock(&callers_lock);
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	if (pthread_create(&t, &attr, serve_thread, c)) {
		reply(cfd, "ERROR veil-las is out of threads\n");
		close(cfd);
		free(c);
		pthread_mutex_lock(&callers_lock);
		callers--;
		pthread_mutex_unlock(&callers_lock);
	}
	pthread_attr_destroy(&attr);
}

static void wait_for_a_slot(void)
{
	pthread_mutex_lock(&callers_lock);
	while (callers >= MAX_CALLERS && !stop) {
		struct timespec t;
		clock_gettime(CLOCK_REALTIME, &t);
		t.tv_sec += 1;
		pthread_cond_timedwait(&callers_cond, &callers_lock, &t);
	}
	pthread_mutex_unlock(&callers_lock);
}

int main(int argc, char **argv)
{
	enum { OPT_PRINT_KEY_HASH = 256, OPT_VERSION, OPT_CACHE_SECONDS };
	static const struct option opts[] = {
	    {"socket", required_argument, NULL, 's'},
	    {"data", required_argument, NULL, 'd'},
	    {"cache-seconds", required_argument, NULL, OPT_CACHE_SECONDS},
	    {"print-key-hash", no_argument, NULL, OPT_PRINT_KEY_HASH},
	    {"help", no_argument, NULL, 'h'},
	    {"version", no_argument, NULL, OPT_VERSION},
	    {0}};
	bool key_hash_only = false;
	const char *sock = getenv("VEIL_LAS_ADDR");
	if (!sock || !*sock)
		sock = getenv("SCONE_LAS_ADDR");
	if (!sock || !*sock || sock[0] != '/')
		sock = "/run/veil/las.sock";
	const char *data = "/var/lib/veil-las";
	int c;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		if (c == 's') {
			sock = optarg;
		} else if (c == 'd') {
			data = optarg;
		} else if (c == OPT_CACHE_SECONDS) {
			struct veil_diags pd;
			veil_diags_init(&pd);
			int bad = veil_parse_long("--cache-seconds", optarg, 0, 86400,
						  &cache_seconds, &pd);
			if (bad)
				veil_usage_error("veil-las", "%s", pd.msgs[0]);
			veil_diags_free(&pd);
			if (bad)
				return 2;
		} else if (c == OPT_PRINT_KEY_HASH) {
			key_hash_only = true;
		} else if (c == 'h') {
			usage(stdout);
			return 0;
		} else if (c == OPT_VERSION) {
			return veil_print_version("veil-las");
		} else {
			return veil_getopt_error("veil-las", c, argc, argv, optind);
		}
	}
	if (optind < argc)
		return veil_usage_error("veil-las", "unexpected argument '%s'", argv[optind]);
	struct veil_diags d;
	veil_diags_init(&d);
	EVP_PKEY *key = NULL;
	X509 *cert = NULL;
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct stat mine = {0};
	int fd = -1, lock_fd = -1;
	char *kdir = veil_path_join(data, "platform");
	char khash[VEIL_KEY_HASH_HEX];
	int rc =
	    kdir ? veil_identity_load_or_create(kdir, "veil simulated platform", &key, &cert, &d)
		 : VEIL_ENOMEM;
	if (!rc)
		rc = veil_pubkey_hash(key, khash);
	if (!rc && key_hash_only) {
		printf("%s\n", khash);
		goto out;
	}
	if (!rc && strlen(sock) >= sizeof(sa.sun_path)) {
		veil_diag(&d, "--socket %s: path too long", sock);
		rc = VEIL_EINVAL;
	}
	if (!rc) {
		char *dir = veil_dirname(sock);
		rc = dir ? veil_mkdirs(dir, 0755, &d) : VEIL_ENOMEM;
		if (!dir)
			veil_diag(&d, "out of memory");
		free(dir);
		memcpy(sa.sun_path, sock, strlen(sock) + 1);
		if (!rc)
			rc = lock_socket_path(sock, &lock_fd, &d);
	}
	if (!rc)
		rc = claim_socket_path(sock, &sa, &d);
	if (!rc) {
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		/* pods reach it through a hostPath: any local process may ask */
		mode_t old = umask(0);
		/* every message names its sender; on the listening socket, so that
		 * accepted ones have it before their first byte arrives */
		int on = 1;
		/* bind fails with EADDRINUSE if another veil-las won the path since */
		if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_PASSCRED, &on, sizeof(on)) ||
		    bind(fd, (struct sockaddr *)&sa, sizeof(sa)) || listen(fd, 128) ||
		    stat(sock, &mine)) {
			veil_diag(&d, "%s: %s", sock, strerror(errno));
			rc = VEIL_EIO;
		}
		umask(old);
	}
	if (rc)
		goto out;
	struct sigaction act = {.sa_handler = on_signal};
	sigaction(SIGTERM, &act, NULL);
	sigaction(SIGINT, &act, NULL);
	signal(SIGPIPE, SIG_IGN);
	printf("veil-las listening on %s\nveil-las platform key hash %s\n", sock, khash);
	fflush(stdout);
	/* the callers' threads take no signals: SIGTERM interrupts accept */
	sigset_t block, old;
	sigemptyset(&block);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGINT);
	while (!stop) {
		wait_for_a_slot();
		int cfd = accept4(fd, NULL, NULL, SOCK_CLOEXEC);
		if (cfd < 0) {
			if (errno == EMFILE || errno == ENFILE || errno == ENOMEM ||
			    errno == ENOBUFS)
				sleep(1); /* not a spin: a slot frees within REQUEST_SECONDS */
			continue;
		}
		pthread_sigmask(SIG_BLOCK, &block, &old);
		serve_concurrently(cfd, key);
		pthread_sigmask(SIG_SETMASK, &old, NULL);
	}
	/* the callers' threads are detached and use the platform key and
	 * OpenSSL's tables: they finish (each within REQUEST_SECONDS) before the
	 * key is freed and exit runs OpenSSL's cleanup (TSan saw that cleanup
	 * free a name a caller's thread had read, with no join between them) */
	pthread_mutex_lock(&callers_lock);
	while (callers > 0)
		pthread_cond_wait(&callers_cond, &callers_lock);
	pthread_mutex_unlock(&callers_lock);
	/* only our own socket: a path replaced meanwhile (another veil-las
	 * after this one's was removed) is not ours to delete */
	struct stat now;
	if (!stat(sock, &now) && now.st_dev == mine.st_dev && now.st_ino == mine.st_ino)
		unlink(sock);
out:
	if (fd >= 0)
		close(fd);
	if (lock_fd >= 0)
		close(lock_fd); /* after the unlink: the next veil-las finds the path free */
	if (rc)
		veil_diags_print(&d, stderr);
	EVP_PKEY_free(key);
	X509_free(cert);
	free(kdir);
	veil_diags_free(&d);
	return rc ? 1 : 0;
}

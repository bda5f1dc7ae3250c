/* veil-las: the local attestation service of simulation mode, one per node.
 *
 * A process connects to the unix socket and sends "REPORT <64 hex>\n" (the
 * report data: SHA-256 of its TLS public key). veil-las identifies the caller
 * from the kernel (SO_PEERCRED), hashes the caller's executable itself through
 * /proc/<pid>/exe (the measurement is never self-reported) and answers with
 * evidence signed by its platform key (include/veil/evidence.h, platform
 * "sim", always debug), followed by "\n"; or "ERROR <reason>\n". */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "veil/args.h"
#include "veil/evidence.h"
#include "veil/tls.h"

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static void usage(FILE *f)
{
	fprintf(f, "Usage: veil-las [--socket PATH] [--data DIR]\n\n"
		   "The local attestation service of simulation mode (one per node). It signs,\n"
		   "with its platform key, the measurement of the process that asks: the SHA-256\n"
		   "of that process's executable, which veil-las reads itself.\n\n"
		   "  --socket PATH     unix socket (default $SCONE_LAS_ADDR, else\n"
		   "                    /run/veil/las.sock); refused while another veil-las\n"
		   "                    answers on it\n"
		   "  --data DIR        platform key folder (default /var/lib/veil-las)\n"
		   "  --print-key-hash  print the platform key hash (making the key if DIR has\n"
		   "                    none) and exit\n"
		   "  -h, --help        this help\n"
		   "  --version         print the version\n\n"
		   "The platform key hash is printed at start: register it with\n"
		   "'veil-cas --trust-platform HASH' or in a policy's 'platforms'.\n");
}

/* The socket path is free: nothing there, or a socket nobody answers on (a
 * veil-las that died), which is removed. A live one is refused: a second
 * veil-las would take it over and delete it when it exits. */
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
 * (device, inode, size, mtime, ctime) is an unchanged file. Hashing a
 * statically linked veil-run (5 MB) took 3-5 ms of every start. */
#define MEASURE_CACHE 64
static struct {
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtime, ctime;
	char hex[VEIL_KEY_HASH_HEX];
	int used;
} mcache[MEASURE_CACHE];
static unsigned mcache_next;

static int same_time(struct timespec a, struct timespec b)
{
	return a.tv_sec == b.tv_sec && a.tv_nsec == b.tv_nsec;
}

static int measure(const char *path, char hex[static VEIL_KEY_HASH_HEX])
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	if (fd < 0 || fstat(fd, &st)) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	for (unsigned i = 0; i < MEASURE_CACHE; i++)
		if (mcache[i].used && mcache[i].dev == st.st_dev && mcache[i].ino == st.st_ino &&
		    mcache[i].size == st.st_size && same_time(mcache[i].mtime, st.st_mtim) &&
		    same_time(mcache[i].ctime, st.st_ctim)) {
			memcpy(hex, mcache[i].hex, VEIL_KEY_HASH_HEX);
			close(fd);
			return 0;
		}
	uint8_t h[VEIL_SHA256_SIZE];
	int rc = veil_sha256_fd(fd, path, h, NULL);
	struct stat after;
	/* changed while hashed: measured, but not remembered */
	int stable = !rc && !fstat(fd, &after) && same_time(after.st_ctim, st.st_ctim);
	close(fd);
	if (rc)
		return -1;
	veil_hex(h, sizeof(h), hex);
	if (stable) {
		unsigned k = mcache_next++ % MEASURE_CACHE;
		mcache[k].dev = st.st_dev;
		mcache[k].ino = st.st_ino;
		mcache[k].size = st.st_size;
		mcache[k].mtime = st.st_mtim;
		mcache[k].ctime = st.st_ctim;
		memcpy(mcache[k].hex, hex, VEIL_KEY_HASH_HEX);
		mcache[k].used = 1;
	}
	return 0;
}

static void serve(int fd, EVP_PKEY *platform)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);
	/* "REPORT <64 hex> <config id>\n" */
	char req[80 + VEIL_EVIDENCE_CONFIG_ID_MAX], path[64], meas[VEIL_KEY_HASH_HEX];
	struct timeval tv = {.tv_sec = 5};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) || cred.pid <= 0) {
		reply(fd, "ERROR cannot identify the caller\n");
		return;
	}
	size_t n = 0;
	while (n < sizeof(req) - 1 && !memchr(req, '\n', n)) {
		ssize_t r = read(fd, req + n, sizeof(req) - 1 - n);
		if (r <= 0)
			break;
		n += (size_t)r;
	}
	req[n] = '\0';
	uint8_t rd[VEIL_SHA256_SIZE];
	char hex[65], config_id[VEIL_EVIDENCE_CONFIG_ID_MAX + 1], end = 0;
	/* the config id goes into the signed evidence: the CAS accepts it only
	 * for that configuration */
	if (sscanf(req, "REPORT %64[0-9a-f] %384[A-Za-z0-9_./-]%c", hex, config_id, &end) != 3 ||
	    end != '\n' || veil_unhex(hex, rd, sizeof(rd))) {
		reply(fd, "ERROR expected 'REPORT <64 hex digits> <NAMESPACE/SERVICE>'\n");
		return;
	}
	/* /proc/<pid>/exe opens the very inode the caller runs, even if the
	 * file at its path was replaced since */
	snprintf(path, sizeof(path), "/proc/%d/exe", (int)cred.pid);
	if (measure(path, meas)) {
		reply(fd, "ERROR cannot measure the caller\n");
		return;
	}
	char *ev = NULL;
	if (veil_evidence_sim_sign(platform, meas, rd, config_id, &ev)) {
		reply(fd, "ERROR cannot sign\n");
		return;
	}
	reply(fd, ev);
	reply(fd, "\n");
	fprintf(stderr, "veil-las: evidence for pid %d, measurement %s\n", (int)cred.pid, meas);
	free(ev);
}

int main(int argc, char **argv)
{
	enum { OPT_PRINT_KEY_HASH = 256, OPT_VERSION };
	static const struct option opts[] = {
	    {"socket", required_argument, NULL, 's'},
	    {"data", required_argument, NULL, 'd'},
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
		} else if (c == OPT_PRINT_KEY_HASH) {
			key_hash_only = true;
		} else if (c == 'h') {
			usage(stdout);
			return 0;
		} else if (c == OPT_VERSION) {
			return veil_print_version("veil-las");
		} else {
			return veil_getopt_error("veil-las", c, argv, optind);
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
	int fd = -1;
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
		veil_mkdirs(dir, 0755, NULL);
		free(dir);
		memcpy(sa.sun_path, sock, strlen(sock) + 1);
		rc = claim_socket_path(sock, &sa, &d);
	}
	if (!rc) {
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		/* pods reach it through a hostPath: any local process may ask */
		mode_t old = umask(0);
		/* bind fails with EADDRINUSE if another veil-las won the path since */
		if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) || listen(fd, 128) ||
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
	while (!stop) {
		int cfd = accept4(fd, NULL, NULL, SOCK_CLOEXEC);
		if (cfd < 0)
			continue;
		serve(cfd, key);
		close(cfd);
	}
	/* only our own socket: a path replaced meanwhile (another veil-las
	 * after this one's was removed) is not ours to delete */
	struct stat now;
	if (!stat(sock, &now) && now.st_dev == mine.st_dev && now.st_ino == mine.st_ino)
		unlink(sock);
out:
	if (fd >= 0)
		close(fd);
	if (rc)
		veil_diags_print(&d, stderr);
	EVP_PKEY_free(key);
	X509_free(cert);
	free(kdir);
	veil_diags_free(&d);
	return rc ? 1 : 0;
}

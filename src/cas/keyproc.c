/* veil-cas's key process, and the network process's side of it.
 *
 * The key process holds the master key and does every operation that needs
 * it or a data key (ipc.h lists them). veil-cas starts it with fork and a
 * re-exec of /proc/self/exe ("veil-cas --key-process N KEYFILE open|init
 * [PROVIDER PINFILE]": PROVIDER is "file" or, at init, the pkcs11: URI;
 * PINFILE the --pin-file path or "-"),
 * so it starts from a fresh image holding nothing of the network process,
 * with the child ends of N SOCK_SEQPACKET socketpairs on fds 3..3+N-1 and no
 * other descriptor. It opens the master key, then gives up what it can:
 * PR_SET_PDEATHSIG (it dies with veil-cas), not dumpable, memory locked
 * (best effort), no new privileges, and a seccomp filter of the system calls
 * serving needs (a raw BPF program: libseccomp is not required). It then
 * serves each channel with a thread of its own (a slow RSA key generation
 * on one does not hold up attestations on the others), one message at a
 * time. A malformed message ends it (exit status 2): nothing is guessed at;
 * the network process sees it go and stops.
 *
 * The network process uses a channel for one request and its answer at a
 * time (a mutex per channel; any thread takes a free one), so the request id
 * only confirms that an answer is the one awaited.
 *
 * A reload (SIGUSR1, a master-key rotation's steps: rotate.c) starts a
 * fresh key process the same way and swaps it in for the serving one
 * without cutting off a call (kp_lock below); the old one's exit, reaped
 * by the reload, does not stop veil-cas. Its READY carries what it loaded
 * (veil_vault_describe). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <malloc.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>

#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/evp.h>

#include "veil/hpke.h"
#include "veil/sealed.h"
#include "veil/secrets.h"
#include "veil/store.h"

#include "cas.h"
#include "ipc.h"
#include "render.h"

#define KP "veil-cas key process: "
#define CHANNELS_MAX 300
#define READY_SECONDS 60       /* a key process opens the master key (a token) */
#define RELOAD_SWAP_SECONDS 30 /* the calls under way on the one replaced */

/* ---- the key process ---- */

#if defined(__x86_64__)
#define SECCOMP_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define SECCOMP_ARCH AUDIT_ARCH_AARCH64
#endif

/* The system calls serving needs, after the master key is open and OpenSSL
 * initialised (the warm-up below): socket I/O on the inherited channels,
 * memory (malloc, the secure pools' mmap/mlock/madvise), getrandom for
 * OpenSSL's DRBG, futex (OpenSSL's locks), stderr, and what abort() uses.
 * open and openat fail (EACCES); everything else kills the process
 * (SIGSYS): no socket, no exec, no clone, no ptrace. */
static const int allowed_syscalls[] = {
    SYS_read,
    SYS_write,
    SYS_writev,
    SYS_recvfrom,
    SYS_recvmsg,
    SYS_sendto,
    SYS_sendmsg,
    SYS_close,
    SYS_exit,
    SYS_exit_group,
    SYS_brk,
    SYS_mmap,
    SYS_munmap,
    SYS_mremap,
    SYS_mprotect,
    SYS_madvise,
    SYS_mlock,
    SYS_munlock,
    SYS_getrandom,
    SYS_futex,
    SYS_rt_sigreturn,
    SYS_rt_sigprocmask,
    SYS_clock_gettime,
    SYS_gettid,
    SYS_getpid,
    SYS_tgkill,
    SYS_newfstatat,
    SYS_fstat,
    SYS_lseek,
    SYS_restart_syscall,
    SYS_sched_yield,
    /* glibc's qsort asks for the physical memory size once before sorting
     * a large array (a policy's 4096 files): without it, SIGSYS */
    SYS_sysinfo,
#ifdef SYS_mlock2
    SYS_mlock2,
#endif
#ifdef SYS_sigaltstack
    SYS_sigaltstack,
#endif
};

/* gcc -fsanitize=thread defines __SANITIZE_THREAD__; clang says so through
 * __has_feature */
#if defined(__SANITIZE_THREAD__)
#define VEIL_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define VEIL_TSAN 1
#endif
#endif

static int install_seccomp(void)
{
#if defined(VEIL_TSAN)
	/* ThreadSanitizer's runtime makes system calls of its own (its
	 * background thread, shadow memory) that the filter refuses: the TSan
	 * build, which tests threading, runs the key process without it. The
	 * normal and ASan builds install it, and tests/e2e/keyproc.sh attacks
	 * it there. */
	fprintf(stderr, KP "ThreadSanitizer build: no seccomp filter (its runtime's system calls "
			   "are not in it)\n");
	return 0;
#elif !defined(SECCOMP_ARCH)
	return VEIL_EINVAL;
#else
	enum { N = sizeof(allowed_syscalls) / sizeof(allowed_syscalls[0]) };
	struct sock_filter prog[N + 12];
	size_t k = 0;
	prog[k++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
						 offsetof(struct seccomp_data, arch));
	prog[k++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SECCOMP_ARCH, 1, 0);
	prog[k++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS);
	prog[k++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
						 offsetof(struct seccomp_data, nr));
#if defined(__x86_64__)
	/* the x32 ABI's numbers alias the x86-64 ones with bit 30 set */
	prog[k++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, 0x40000000u, 0, 1);
	prog[k++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS);
#endif
	/* open and openat fail with EACCES rather than kill: libraries probe
	 * files now and then (glibc reads /proc/sys/vm/overcommit_memory when
	 * it first shrinks a heap), and nothing is opened either way */
	prog[k++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_openat, 0, 1);
	prog[k++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EACCES);
#ifdef SYS_open
	prog[k++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_open, 0, 1);
	prog[k++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EACCES);
#endif
	for (size_t i = 0; i < N; i++) {
		/* jump to the ALLOW at the end: N - 1 - i checks, then the KILL */
		prog[k++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K,
							 (unsigned)allowed_syscalls[i],
							 (unsigned char)(N - i), 0);
	}
	prog[k++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS);
	prog[k++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
	struct sock_fprog fp = {.len = (unsigned short)k, .filter = prog};
	/* every thread at once (TSYNC): they were made before, without it */
	if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC, &fp) != 0)
		return VEIL_EIO;
	return 0;
#endif
}

/* mlockall with MCL_FUTURE fails later mmaps beyond RLIMIT_MEMLOCK, and a
 * sanitizer's shadow memory must not be locked: only where it is safe */
static void lock_memory(void)
{
#if defined(__SANITIZE_ADDRESS__)
	fprintf(stderr, KP "memory not locked (a sanitizer build)\n");
#else
	struct rlimit rl;
	if (geteuid() != 0 && (getrlimit(RLIMIT_MEMLOCK, &rl) || rl.rlim_cur != RLIM_INFINITY)) {
		fprintf(stderr, KP "memory not locked (not root, RLIMIT_MEMLOCK is limited); "
				   "secrets stay in mlock'd secure memory\n");
		return;
	}
	if (mlockall(MCL_CURRENT | MCL_FUTURE) < 0)
		fprintf(stderr, KP "mlockall: %s (continuing)\n", strerror(errno));
#endif
}

/* one round of every operation before the filter: OpenSSL loads its
 * configuration and providers lazily, with system calls the filter refuses */
static int warm_up(struct veil_vault *v)
{
	uint8_t *w = NULL, *s = NULL, *p = NULL, key[32];
	size_t ws = 0, ss = 0, ps = 0;
	static const uint8_t probe[] = "veil-key-process-warm-up";
	int rc = veil_vault_new_key(v, "warm-up", &w, &ws);
	if (!rc)
		rc = veil_vault_seal(v, "warm-up", w, ws, probe, sizeof(probe), &s, &ss);
	if (!rc)
		rc = veil_vault_open(v, "warm-up", w, ws, s, ss, &p, &ps);
	if (!rc)
		rc = veil_vault_code_key(v, "warm-up", "warm-up", key);
	OPENSSL_cleanse(key, sizeof(key));
	/* generation (a key pair, a certificate chain) and rendering: libyaml,
	 * jansson (its hash seed reads /dev/urandom once), X.509 */
	static const char policy[] =
	    "name: warm-up\n"
	    "version: \"0.3\"\n"
	    "services:\n"
	    "  - name: app\n"
	    "    command: app\n"
	    "    mrenclaves: "
	    "[0000000000000000000000000000000000000000000000000000000000000000]\n"
	    "    environment:\n"
	    "      A: \"$$SCONE::a$$ $$SCONE::k:publickey$$ $$SCONE::c:chain$$ $$SCONE::b:hex$$\"\n"
	    "secrets:\n"
	    "  - name: a\n    kind: ascii\n    size: 8\n"
	    "  - name: b\n    kind: binary\n    size: 8\n"
	    "  - name: k\n    kind: private-key\n"
	    "  - name: c\n    kind: x509\n";
	uint8_t *g1 = NULL, *g2 = NULL;
	size_t g1s = 0, g2s = 0;
	char why[300] = "", *body = NULL;
	if (!rc && (rc = cas_payload_generate(v, "warm-up", w, ws, policy, sizeof(policy) - 1, NULL,
					      0, &g1, &g1s, why, sizeof(why))))
		fprintf(stderr, KP "warm-up: generate: %s\n", why);
	if (!rc && (rc = cas_payload_generate(v, "warm-up", w, ws, policy, sizeof(policy) - 1, g1,
					      g1s, &g2, &g2s, why, sizeof(why))))
		fprintf(stderr, KP "warm-up: update: %s\n", why);
	if (!rc && (rc = cas_payload_render(v, "warm-up", w, ws, g2, g2s, "app", "warm-up", NULL,
					    &body, why, sizeof(why))))
		fprintf(stderr, KP "warm-up: render: %s\n", why);
	/* and the seal to a runtime's key (HPKE: the P-256 group, randomness) */
	EVP_PKEY *runtime = rc ? NULL : EVP_EC_gen(SN_X9_62_prime256v1);
	uint8_t point[VEIL_HPKE_ENC_SIZE], hash[VEIL_SHA256_SIZE] = {0};
	char *answer = NULL;
	size_t answer_size = 0;
	if (!rc && (!runtime || veil_hpke_point_of(runtime, point) ||
		    veil_seal_config_to_point(point, "warm-up/app", hash, body, strlen(body),
					      &answer, &answer_size))) {
		fprintf(stderr, KP "warm-up: cannot seal a configuration\n");
		rc = VEIL_EIO;
	}
	free(answer);
	EVP_PKEY_free(runtime);
	if (body) {
		OPENSSL_cleanse(body, strlen(body));
		free(body);
	}
	free(g1);
	free(g2);
	if (p)
		veil_secure_free(p, ps);
	free(s);
	free(w);
	return rc;
}

static int reply_status(int fd, uint32_t id, int status, const char *text)
{
	struct ipc_msg out = {.type = IPC_RESPONSE | IPC_ERROR, .id = id};
	uint8_t st[4];
	uint32_t u = (uint32_t)status;
	for (int i = 0; i < 4; i++)
		st[i] = (uint8_t)(u >> (8 * i));
	int rc = ipc_put(&out, IPC_F_STATUS, st, sizeof(st));
	if (!rc && text && text[0])
		rc = ipc_put(&out, IPC_F_TEXT, text, strnlen(text, 2048));
	if (!rc)
		rc = ipc_send(fd, &out);
	ipc_msg_clear(&out);
	return rc;
}

/* serves one decoded request; 0 once answered, else the channel is broken */
static int serve(struct veil_vault *v, int fd, const struct ipc_msg *in)
{
	struct ipc_msg out = {.type = IPC_RESPONSE | in->type, .id = in->id};
	char ns[1025], a[1025], why[1024] = "";
	uint8_t *buf = NULL, key[32];
	size_t size = 0;
	int rc = 0;
	const struct ipc_field *w = &in->f[IPC_F_WRAPPED], *data = &in->f[IPC_F_DATA];
	switch (in->type) {
	case IPC_NEW_KEY:
		if (!ipc_field_str(&in->f[IPC_F_NS], ns, sizeof(ns)))
			return VEIL_EINVAL;
		rc = veil_vault_new_key(v, ns, &buf, &size);
		if (!rc)
			rc = ipc_put(&out, IPC_F_WRAPPED, buf, size);
		free(buf);
		break;
	case IPC_SEAL:
		if (!ipc_field_str(&in->f[IPC_F_NS], ns, sizeof(ns)))
			return VEIL_EINVAL;
		rc = veil_vault_seal(v, ns, w->data, w->size, data->data, data->size, &buf, &size);
		if (!rc)
			rc = ipc_put(&out, IPC_F_DATA, buf, size);
		free(buf);
		break;
	case IPC_OPEN_POLICY: {
		/* the policy's YAML only: the secret set stays here */
		struct cas_opened o;
		if (!ipc_field_str(&in->f[IPC_F_NS], ns, sizeof(ns)))
			return VEIL_EINVAL;
		rc = cas_payload_open(v, ns, w->data, w->size, data->data, data->size, false, &o);
		if (!rc)
			rc = ipc_put(&out, IPC_F_DATA, o.yaml, o.yaml_size);
		cas_opened_free(&o);
		break;
	}
	case IPC_GENERATE: {
		const struct ipc_field *prev = &in->f[IPC_F_PREV];
		if (!ipc_field_str(&in->f[IPC_F_NS], ns, sizeof(ns)))
			return VEIL_EINVAL;
		rc = cas_payload_generate(v, ns, w->data, w->size, (const char *)data->data,
					  data->size, prev->data, prev->size, &buf, &size, why,
					  sizeof(why));
		if (!rc)
			rc = ipc_put(&out, IPC_F_DATA, buf, size);
		free(buf);
		break;
	}
	case IPC_RENDER: {
		/* rendered and sealed to the attested runtime's key in one step:
		 * the configuration leaves this process as ciphertext only */
		char svc[1025], cid[1025], *body = NULL, *answer = NULL;
		size_t answer_size = 0;
		const struct ipc_field *imp = &in->f[IPC_F_IMPORTS], *pk = &in->f[IPC_F_PEER_KEY];
		struct veil_cursor ic;
		veil_cur_init(&ic, imp->data, imp->size);
		if (!ipc_field_str(&in->f[IPC_F_NS], ns, sizeof(ns)) ||
		    !ipc_field_str(&in->f[IPC_F_SERVICE], svc, sizeof(svc)) ||
		    !ipc_field_str(&in->f[IPC_F_CONFIG_ID], cid, sizeof(cid)) ||
		    (in->f[IPC_F_OWNER].data && !ipc_field_str(&in->f[IPC_F_OWNER], a, sizeof(a))))
			return VEIL_EINVAL;
		rc = cas_payload_render(v, ns, w->data, w->size, data->data, data->size, svc,
					in->f[IPC_F_OWNER].data ? a : NULL, imp->data ? &ic : NULL,
					&body, why, sizeof(why));
		if (!rc) {
			/* a peer key off the curve is VEIL_EINVAL: a refusal, as
			 * the network process checked it is a P-256 point */
			rc = veil_seal_config_to_point(pk->data, cid,
						       in->f[IPC_F_EVIDENCE_HASH].data, body,
						       strlen(body), &answer, &answer_size);
			if (rc)
				snprintf(why, sizeof(why), "%s",
					 rc == VEIL_ELIMIT
					     ? "the configuration is too large to seal"
					     : "cannot seal the configuration");
		}
		if (!rc)
			rc = ipc_put(&out, IPC_F_DATA, answer, answer_size);
		if (body) {
			OPENSSL_cleanse(body, strlen(body));
			free(body);
		}
		free(answer);
		break;
	}
	case IPC_CODE_KEY:
		if (!ipc_field_str(&in->f[IPC_F_KEY_ID], a, sizeof(a)) ||
		    !ipc_field_str(&in->f[IPC_F_OWNER], ns, sizeof(ns)))
			return VEIL_EINVAL;
		rc = veil_vault_code_key(v, a, ns, key);
		if (!rc)
			rc = ipc_put(&out, IPC_F_KEY, key, sizeof(key));
		OPENSSL_cleanse(key, sizeof(key));
		break;
#ifdef VEIL_TEST_HOOKS
	case IPC_TEST_SOCKET: {
		/* only for testing: the filter must kill us here */
		int s = socket(AF_INET, SOCK_STREAM, 0);
		fprintf(stderr, KP "TEST: socket(AF_INET) returned %d (%s)\n", s,
			s < 0 ? strerror(errno) : "allowed");
		if (s >= 0)
			close(s);
		rc = VEIL_EIO;
		break;
	}
	case IPC_TEST_BAD_ANSWER:
		/* only for testing: a well-formed answer of the wrong type */
		out.type = IPC_RESPONSE | IPC_NEW_KEY;
		rc = ipc_put(&out, IPC_F_WRAPPED, "x", 1);
		break;
#endif
	default:
		return VEIL_EINVAL;
	}
	int sent = rc ? reply_status(fd, in->id, rc, why) : ipc_send(fd, &out);
	ipc_msg_clear(&out);
	return sent;
}

/* started: every thread is past glibc's thread start (set_robust_list,
 * rseq...: system calls the filter refuses) and in its function;
 * filtered: the filter is in place, serving may begin */
static pthread_barrier_t started, filtered;

struct channel_job {
	struct veil_vault *v;
	int fd, index;
};

/* Serves one channel until veil-cas closes it. The whole process ends here
 * with _exit: other threads are serving (no atexit handlers under them). */
static void serve_channel(const struct channel_job *job)
{
	struct ipc_msg in = {0};
	char why[200];
	for (;;) {
		int r = ipc_recv(job->fd, &in, why, sizeof(why));
		if (r == 1 || r == VEIL_EIO)
			_exit(0); /* veil-cas closed its end: it stopped */
		if (r) {
			fprintf(stderr, KP "malformed message on channel %d: %s; exiting\n",
				job->index, why);
			_exit(2);
		}
		r = in.type & IPC_RESPONSE || in.type == IPC_READY ? VEIL_EINVAL
								   : serve(job->v, job->fd, &in);
		if (r == VEIL_EIO)
			_exit(0); /* its answer could not be sent: veil-cas is gone */
		if (r) {
			fprintf(stderr,
				KP "malformed message on channel %d: type 0x%x refused; exiting\n",
				job->index, in.type);
			_exit(2);
		}
		ipc_msg_clear(&in);
	}
}

static void *channel_thread(void *arg)
{
	pthread_barrier_wait(&started);
	pthread_barrier_wait(&filtered);
	serve_channel(arg);
	return NULL;
}

int cas_keyproc_main(int argc, char **argv)
{
	/* veil-cas --key-process N KEYFILE open|init [PROVIDER PINFILE
	 * [RECOVERY]] (without the last two: the key file, no PIN file;
	 * RECOVERY: at init with a token, the recovery key's public point in
	 * hex, recovery.c) */
	long n = argc == 7 || argc == 6 || argc == 4 ? strtol(argv[1], NULL, 10) : 0;
	if (n < 1 || n > CHANNELS_MAX || (strcmp(argv[3], "open") && strcmp(argv[3], "init"))) {
		fprintf(stderr, KP "started without its channels; veil-cas starts it itself\n");
		return 2;
	}
	int nfd = (int)n;
	/* SIGUSR1 is veil-cas's (a reload): one sent to a stale pid that is
	 * now a key process must not end it */
	signal(SIGUSR1, SIG_IGN);
	/* dies with veil-cas; if veil-cas died before this, the channels give
	 * EOF. (getppid() == 1 is no sign of that: in a container veil-cas
	 * itself is pid 1, and the key process never started there.) */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0) {
		fprintf(stderr, KP "cannot die with veil-cas (PR_SET_PDEATHSIG): %s\n",
			strerror(errno));
		return 2;
	}
	for (int i = 0; i < nfd; i++) {
		int type = 0;
		socklen_t tl = sizeof(type);
		if (getsockopt(3 + i, SOL_SOCKET, SO_TYPE, &type, &tl) < 0 ||
		    type != SOCK_SEQPACKET) {
			fprintf(stderr, KP "fd %d is not a SOCK_SEQPACKET channel\n", 3 + i);
			return 2;
		}
	}
	if (prctl(PR_SET_DUMPABLE, 0) < 0) {
		fprintf(stderr, KP "cannot make itself non-dumpable: %s\n", strerror(errno));
		return 1;
	}
	lock_memory();
	struct veil_diags d;
	veil_diags_init(&d);
	struct veil_vault *v = NULL;
	bool init = !strcmp(argv[3], "init");
	const char *provider = argc >= 6 ? argv[4] : "file";
	const char *pin_file = argc >= 6 && strcmp(argv[5], "-") ? argv[5] : NULL;
	/* a PKCS#11 module is loaded, its token opened and every key copied
	 * into its sessions here, before the filter (vault_p11.c) */
	int rc = init && !strcmp(provider, "file") ? veil_vault_open_file(argv[2], true, &v, &d)
		 : init ? veil_vault_open_pkcs11(argv[2], provider, pin_file, true, &v, &d)
			: veil_vault_open_any(argv[2], pin_file, &v, &d);
	if (!rc && init && argc == 7) {
		uint8_t point[VEIL_HPKE_ENC_SIZE];
		rc = veil_unhex(argv[6], point, sizeof(point))
			 ? VEIL_EINVAL
			 : veil_vault_set_recovery(v, point, &d);
	}
	if (!rc)
		rc = warm_up(v);
	/* one malloc arena: a thread's own arena is shrunk by glibc with
	 * system calls the filter refuses (the RSA keys of a create killed the
	 * key process); serving is crypto, not malloc, bound */
	mallopt(M_ARENA_MAX, 1);
	/* a thread per channel (channel 0 is this one's), made before the
	 * filter, which then covers them all (TSYNC) and does not allow clone;
	 * they serve once it is in place */
	static struct channel_job jobs[CHANNELS_MAX];
	pthread_attr_t attr;
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, 512 * 1024);
	pthread_barrier_init(&started, NULL, (unsigned)nfd);
	pthread_barrier_init(&filtered, NULL, (unsigned)nfd);
	for (int i = 1; !rc && i < nfd; i++) {
		pthread_t tid;
		jobs[i] = (struct channel_job){v, 3 + i, i};
		if (pthread_create(&tid, &attr, channel_thread, &jobs[i])) {
			veil_diag(&d, "cannot start its threads");
			rc = VEIL_EIO;
		}
	}
	pthread_attr_destroy(&attr);
	if (!rc)
		pthread_barrier_wait(&started);
	if (!rc && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
		veil_diag(&d, "no_new_privs: %s", strerror(errno));
		rc = VEIL_EIO;
	}
	if (!rc && install_seccomp()) {
		veil_diag(&d, "cannot install the seccomp filter: %s", strerror(errno));
		rc = VEIL_EIO;
	}
	if (rc) {
		/* threads may wait at the barrier: leave without waiting for them */
		veil_diags_print(&d, stderr);
		fflush(stderr);
		_exit(1);
	}
	veil_diags_free(&d);
	pthread_barrier_wait(&filtered);
	/* what it loaded (veil_vault_describe: versions, no secret): veil-cas
	 * writes it to DATA/master-key.loaded and the audit log */
	struct ipc_msg ready = {.type = IPC_READY};
	char what[128];
	if (veil_vault_describe(v, what, sizeof(what)) || ipc_put_str(&ready, IPC_F_TEXT, what) ||
	    ipc_send(3, &ready))
		_exit(0);
	ipc_msg_clear(&ready);
	serve_channel(&(struct channel_job){v, 3, 0});
	return 0;
}

/* ---- the network process's side ---- */

struct channel {
	pthread_mutex_t lock;
	int fd;
	uint32_t next_id;
};

struct keyproc {
	struct channel *ch;
	size_t count;
	pid_t pid;
};

/* the key process serving now. A reload (cas_keyproc_reload) starts
 * another one and swaps it in under the write lock; every call holds the
 * read lock for its request and answer, so none is cut off: the swap waits
 * for the calls under way, and later ones go to the new process. Writer
 * first: a stream of calls does not hold a reload off. Only the main thread
 * writes kp (start, reload, reap, stop). */
static struct keyproc kp = {.pid = -1};
static pthread_rwlock_t kp_lock;
static bool kp_started;     /* set before the threads start, cleared after */
static char kp_loaded[128]; /* what the serving one loaded (its READY text) */
/* for a reload: what the start was given */
static struct {
	char *keyfile, *pin_file;
	size_t channels;
	bool pkcs11;
} kp_args;

static void broken(const char *what, const char *why)
{
	/* the main thread sees the key process go (SIGCHLD) and stops veil-cas */
	fprintf(stderr, "veil-cas: %s from the key process: %s; stopping\n", what, why);
	if (kp.pid > 0)
		kill(kp.pid, SIGKILL);
}

static struct channel *channel_take(void)
{
	static __thread size_t hint;
	for (size_t i = 0; i < kp.count; i++) {
		struct channel *c = &kp.ch[(hint + i) % kp.count];
		if (!pthread_mutex_trylock(&c->lock)) {
			hint = (size_t)(c - kp.ch);
			return c;
		}
	}
	struct channel *c = &kp.ch[hint % kp.count];
	pthread_mutex_lock(&c->lock);
	return c;
}

/* one request and its answer (under kp_lock's read lock) */
static int call_locked(struct ipc_msg *req, struct ipc_msg *resp, char *text, size_t text_cap)
{
	char why[200] = "";
	struct channel *c = channel_take();
	req->id = ++c->next_id;
	int rc = ipc_send(c->fd, req);
	if (rc) {
		pthread_mutex_unlock(&c->lock);
		return VEIL_EIO;
	}
	rc = ipc_recv(c->fd, resp, why, sizeof(why));
	pthread_mutex_unlock(&c->lock);
	if (rc == 1 || rc == VEIL_EIO)
		return VEIL_EIO; /* it went away: SIGCHLD stops veil-cas */
	if (!rc && resp->id != req->id) {
		snprintf(why, sizeof(why), "answer %u to request %u", resp->id, req->id);
		rc = VEIL_EINVAL;
	}
	if (!rc && resp->type == (IPC_RESPONSE | IPC_ERROR)) {
		const uint8_t *s = resp->f[IPC_F_STATUS].data;
		int32_t st = (int32_t)((uint32_t)s[0] | (uint32_t)s[1] << 8 | (uint32_t)s[2] << 16 |
				       (uint32_t)s[3] << 24);
		if (text && text_cap && !ipc_field_str(&resp->f[IPC_F_TEXT], text, text_cap))
			text[0] = 0;
		ipc_msg_clear(resp);
		return st < 0 && st > -100 ? st : VEIL_EIO;
	}
	if (!rc && resp->type != (IPC_RESPONSE | req->type)) {
		snprintf(why, sizeof(why), "answer of type 0x%x to type 0x%x", resp->type,
			 req->type);
		rc = VEIL_EINVAL;
	}
	if (rc) {
		ipc_msg_clear(resp);
		broken("a malformed message", why);
		return VEIL_EIO;
	}
	return 0;
}

/* one request and its answer; *resp decoded (fields as its type needs) */
static int call(struct ipc_msg *req, struct ipc_msg *resp, char *text, size_t text_cap)
{
	if (!kp_started)
		return VEIL_EIO; /* no key process (an offline command) */
	pthread_rwlock_rdlock(&kp_lock);
	int rc = call_locked(req, resp, text, text_cap);
	pthread_rwlock_unlock(&kp_lock);
	return rc;
}

static int remote_new_key(void *arg, const char *ns, uint8_t **wrapped, size_t *size)
{
	(void)arg;
	struct ipc_msg req = {.type = IPC_NEW_KEY}, resp = {0};
	int rc = ipc_put_str(&req, IPC_F_NS, ns);
	if (!rc)
		rc = call(&req, &resp, NULL, 0);
	if (!rc) {
		const struct ipc_field *f = &resp.f[IPC_F_WRAPPED];
		uint8_t *w = malloc(f->size ? f->size : 1);
		if (w) {
			memcpy(w, f->data, f->size);
			*wrapped = w;
			*size = f->size;
		} else {
			rc = VEIL_ENOMEM;
		}
	}
	ipc_msg_clear(&req);
	ipc_msg_clear(&resp);
	return rc;
}

static int remote_crypt(uint16_t type, const char *ns, const uint8_t *wrapped, size_t wrapped_size,
			const uint8_t *in, size_t in_size, uint8_t **out, size_t *out_size)
{
	struct ipc_msg req = {.type = type}, resp = {0};
	int rc = ipc_put_str(&req, IPC_F_NS, ns);
	if (!rc)
		rc = ipc_put(&req, IPC_F_WRAPPED, wrapped, wrapped_size);
	if (!rc)
		rc = ipc_put(&req, IPC_F_DATA, in, in_size);
	if (!rc)
		rc = call(&req, &resp, NULL, 0);
	if (!rc) {
		const struct ipc_field *f = &resp.f[IPC_F_DATA];
		size_t n = f->size ? f->size : 1;
		/* the policy's YAML in secure memory (it may hold explicit values) */
		uint8_t *b = type == IPC_OPEN_POLICY ? veil_secure_alloc(n) : malloc(n);
		if (b) {
			memcpy(b, f->data, f->size);
			*out = b;
			*out_size = f->size;
		} else {
			rc = VEIL_ENOMEM;
		}
	}
	ipc_msg_clear(&req);
	ipc_msg_clear(&resp);
	return rc;
}

static int remote_seal(void *arg, const char *ns, const uint8_t *wrapped, size_t wrapped_size,
		       const uint8_t *plain, size_t plain_size, uint8_t **out, size_t *out_size)
{
	(void)arg;
	return remote_crypt(IPC_SEAL, ns, wrapped, wrapped_size, plain, plain_size, out, out_size);
}

/* the network process opens no payload: it asks for the policy's YAML
 * (cas_kp_open_policy), a new sealed payload or a rendered configuration */
static int remote_open(void *arg, const char *ns, const uint8_t *wrapped, size_t wrapped_size,
		       const uint8_t *sealed, size_t sealed_size, uint8_t **out, size_t *out_size)
{
	(void)arg, (void)ns, (void)wrapped, (void)wrapped_size, (void)sealed, (void)sealed_size;
	(void)out, (void)out_size;
	return VEIL_EINVAL;
}

static int remote_code_key(void *arg, const char *key_id, const char *owner, uint8_t out[32])
{
	(void)arg;
	struct ipc_msg req = {.type = IPC_CODE_KEY}, resp = {0};
	int rc = ipc_put_str(&req, IPC_F_KEY_ID, key_id);
	if (!rc)
		rc = ipc_put_str(&req, IPC_F_OWNER, owner);
	if (!rc)
		rc = call(&req, &resp, NULL, 0);
	if (!rc)
		memcpy(out, resp.f[IPC_F_KEY].data, 32);
	ipc_msg_clear(&req);
	ipc_msg_clear(&resp);
	return rc;
}

int cas_kp_open_policy(struct veil_vault *v, const struct veil_record *r, uint8_t **yaml,
		       size_t *size)
{
	if (!kp_started) {
		/* no key process: an offline command (veil-cas backup migrating
		 * a store) holds the master key itself */
		struct cas_opened o;
		int rc = cas_payload_open(v, r->namespace_, r->wrapped_key, r->wrapped_size,
					  r->blob, r->blob_size, false, &o);
		uint8_t *b = rc ? NULL : veil_secure_alloc(o.yaml_size ? o.yaml_size : 1);
		if (!rc && !b)
			rc = VEIL_ENOMEM;
		if (!rc) {
			memcpy(b, o.yaml, o.yaml_size);
			*yaml = b;
			*size = o.yaml_size;
		}
		cas_opened_free(&o);
		return rc;
	}
	return remote_crypt(IPC_OPEN_POLICY, r->namespace_, r->wrapped_key, r->wrapped_size,
			    r->blob, r->blob_size, yaml, size);
}

int cas_kp_generate(const char *ns, const uint8_t *wrapped, size_t wrapped_size, const char *yaml,
		    size_t yaml_size, const uint8_t *prev, size_t prev_size, uint8_t **blob,
		    size_t *blob_size, char *why, size_t cap)
{
	struct ipc_msg req = {.type = IPC_GENERATE}, resp = {0};
	int rc = ipc_put_str(&req, IPC_F_NS, ns);
	if (!rc)
		rc = ipc_put(&req, IPC_F_WRAPPED, wrapped, wrapped_size);
	if (!rc)
		rc = ipc_put(&req, IPC_F_DATA, yaml, yaml_size);
	if (!rc && prev)
		rc = ipc_put(&req, IPC_F_PREV, prev, prev_size);
	why[0] = 0;
	if (!rc)
		rc = call(&req, &resp, why, cap);
	if (!rc) {
		const struct ipc_field *f = &resp.f[IPC_F_DATA];
		if ((*blob = malloc(f->size ? f->size : 1))) {
			memcpy(*blob, f->data, f->size);
			*blob_size = f->size;
		} else {
			rc = VEIL_ENOMEM;
		}
	}
	ipc_msg_clear(&req);
	ipc_msg_clear(&resp);
	return rc;
}

int cas_kp_render(const struct veil_record *r, const char *service, const char *owner,
		  const uint8_t *imports, size_t imports_size, const char *config_id,
		  const struct cas_seal_to *to, char **answer, size_t *size, char *why, size_t cap)
{
	struct ipc_msg req = {.type = IPC_RENDER}, resp = {0};
	int rc = ipc_put_str(&req, IPC_F_NS, r->namespace_);
	if (!rc)
		rc = ipc_put(&req, IPC_F_WRAPPED, r->wrapped_key, r->wrapped_size);
	if (!rc)
		rc = ipc_put(&req, IPC_F_DATA, r->blob, r->blob_size);
	if (!rc && owner)
		rc = ipc_put_str(&req, IPC_F_OWNER, owner);
	if (!rc)
		rc = ipc_put_str(&req, IPC_F_SERVICE, service);
	if (!rc && imports)
		rc = ipc_put(&req, IPC_F_IMPORTS, imports, imports_size);
	if (!rc)
		rc = ipc_put(&req, IPC_F_PEER_KEY, to->point, sizeof(to->point));
	if (!rc)
		rc = ipc_put_str(&req, IPC_F_CONFIG_ID, config_id);
	if (!rc)
		rc = ipc_put(&req, IPC_F_EVIDENCE_HASH, to->evidence_sha256,
			     sizeof(to->evidence_sha256));
	why[0] = 0;
	if (!rc)
		rc = call(&req, &resp, why, cap);
	if (!rc) {
		/* the sealed answer: ciphertext only */
		const struct ipc_field *f = &resp.f[IPC_F_DATA];
		if ((*answer = malloc(f->size + 1))) {
			memcpy(*answer, f->data, f->size);
			(*answer)[f->size] = 0;
			*size = f->size;
		} else {
			rc = VEIL_ENOMEM;
		}
	}
	ipc_msg_clear(&req);
	ipc_msg_clear(&resp);
	return rc;
}

static const struct veil_vault_remote remote_ops = {remote_new_key, remote_seal, remote_open,
						    remote_code_key, NULL};

/* closes k's channels (its signal to exit) and waits for it */
static void keyproc_release(struct keyproc *k)
{
	for (size_t i = 0; i < k->count; i++) {
		close(k->ch[i].fd);
		pthread_mutex_destroy(&k->ch[i].lock);
	}
	free(k->ch);
	k->ch = NULL;
	k->count = 0;
	if (k->pid > 0) {
		int st;
		while (waitpid(k->pid, &st, 0) < 0 && errno == EINTR)
			;
		k->pid = -1;
	}
}

/* forks and re-execs a key process into k, and waits until it serves;
 * what: its READY text (what it loaded) */
static int keyproc_spawn(struct keyproc *k, const char *keyfile, bool init,
			 const struct cas_master_key *mk, size_t channels, char *what, size_t cap,
			 struct veil_diags *d)
{
	int *child = calloc(channels, sizeof(int));
	k->ch = calloc(channels, sizeof(*k->ch));
	k->count = 0;
	k->pid = -1;
	if (!child || !k->ch) {
		free(child);
		return VEIL_ENOMEM;
	}
	int rc = 0;
	for (size_t i = 0; i < channels; i++) {
		int sv[2];
		if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
			veil_diag(d, "key process channels: %s", strerror(errno));
			rc = VEIL_EIO;
			break;
		}
		k->ch[i].fd = sv[0];
		child[i] = sv[1];
		pthread_mutex_init(&k->ch[i].lock, NULL);
		k->count++;
	}
	char nbuf[16];
	snprintf(nbuf, sizeof(nbuf), "%zu", channels);
	char *const args[] = {"veil-cas",
			      "--key-process",
			      nbuf,
			      (char *)keyfile,
			      init ? "init" : "open",
			      (char *)(mk->uri ? mk->uri : "file"),
			      (char *)(mk->pin_file ? mk->pin_file : "-"),
			      init ? (char *)mk->recovery_point : NULL,
			      NULL};
	pid_t pid = rc ? -1 : fork();
	if (!rc && pid < 0) {
		veil_diag(d, "cannot start the key process: %s", strerror(errno));
		rc = VEIL_EIO;
	}
	if (pid == 0) {
		/* the child: its channel ends on 3.., nothing else; no signal
		 * blocked (a reload forks from the main thread, which blocks
		 * the ones it waits for) */
		sigset_t none;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		int base = 3 + (int)channels + 16;
		for (size_t i = 0; i < channels; i++)
			if ((child[i] = fcntl(child[i], F_DUPFD_CLOEXEC, base)) < 0)
				_exit(127);
		for (size_t i = 0; i < channels; i++)
			if (dup2(child[i], 3 + (int)i) < 0)
				_exit(127);
		syscall(SYS_close_range, 3 + (unsigned)channels, ~0u, 0);
		execv("/proc/self/exe", args);
		_exit(127);
	}
	for (size_t i = 0; i < k->count; i++)
		close(child[i]);
	free(child);
	if (!rc) {
		k->pid = pid;
		struct ipc_msg m = {0};
		char why[200] = "";
		/* READY, in its time: a module that hangs opening the token must
		 * not hang veil-cas's start or a reload with it */
		struct pollfd p = {.fd = k->ch[0].fd, .events = POLLIN};
		int w;
		while ((w = poll(&p, 1, READY_SECONDS * 1000)) < 0 && errno == EINTR)
			;
		int r = w == 1 ? ipc_recv(k->ch[0].fd, &m, why, sizeof(why)) : VEIL_EIO;
		if (w != 1) {
			kill(pid, SIGKILL);
			veil_diag(d, "the key process did not say it was ready within %d s",
				  READY_SECONDS);
		}
		if (r || m.type != IPC_READY) {
			int st = 0;
			while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
				;
			k->pid = -1;
			veil_diag(d, "the key process did not start (%s)",
				  WIFEXITED(st) ? "it exited; its message is above"
						: "killed by a signal");
			rc = VEIL_EIO;
		} else if (!ipc_field_str(&m.f[IPC_F_TEXT], what, cap)) {
			snprintf(what, cap, "?");
		}
		ipc_msg_clear(&m);
	}
	return rc;
}

int cas_keyproc_start(const char *keyfile, bool init, const struct cas_master_key *mk,
		      size_t channels, struct veil_vault **out, struct veil_diags *d)
{
	if (channels < 1 || channels > CHANNELS_MAX)
		return VEIL_ELIMIT;
	pthread_rwlockattr_t ra;
	pthread_rwlockattr_init(&ra);
	pthread_rwlockattr_setkind_np(&ra, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&kp_lock, &ra);
	pthread_rwlockattr_destroy(&ra);
	char what[128] = "";
	int rc = keyproc_spawn(&kp, keyfile, init, mk, channels, what, sizeof(what), d);
	/* the key process has its copy of the environment: the network
	 * process keeps no PKCS#11 PIN */
	char *pin = getenv("VEIL_PKCS11_PIN");
	if (pin) {
		OPENSSL_cleanse(pin, strlen(pin));
		unsetenv("VEIL_PKCS11_PIN");
	}
	if (rc) {
		keyproc_release(&kp);
		return rc;
	}
	kp_args.channels = channels;
	kp_args.pkcs11 = !strncmp(what, "pkcs11", 6);
	kp_args.keyfile = strdup(keyfile);
	kp_args.pin_file = mk->pin_file ? strdup(mk->pin_file) : NULL;
	if (!kp_args.keyfile || (mk->pin_file && !kp_args.pin_file))
		rc = VEIL_ENOMEM;
	if (!rc)
		rc = veil_vault_remote(&remote_ops, out);
	if (!rc) {
		snprintf(kp_loaded, sizeof(kp_loaded), "%s", what);
		kp_started = true;
	}
	return rc;
}

int cas_keyproc_reload(char *what, size_t cap, struct veil_diags *d)
{
	if (!kp_started)
		return VEIL_EINVAL;
	if (kp_args.pkcs11 && !kp_args.pin_file) {
		/* the network process keeps no PIN (wiped at start) */
		veil_diag(d, "the token's PIN came from $VEIL_PKCS11_PIN, which veil-cas wipes "
			     "at start: a reload needs veil-cas started with --pin-file");
		return VEIL_EINVAL;
	}
	struct cas_master_key mk = {.pin_file = kp_args.pin_file};
	struct keyproc fresh;
	int rc = keyproc_spawn(&fresh, kp_args.keyfile, false, &mk, kp_args.channels, what, cap, d);
	if (rc) {
		keyproc_release(&fresh);
		return rc;
	}
	/* the swap waits for the calls under way on the old process, not
	 * forever: a call stuck there (a token that hangs) would hold every
	 * later call queued behind this writer */
	struct timespec until;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += RELOAD_SWAP_SECONDS;
	if (pthread_rwlock_timedwrlock(&kp_lock, &until)) {
		kill(fresh.pid, SIGKILL);
		keyproc_release(&fresh);
		veil_diag(d,
			  "a call to the serving key process did not end within %d s: the reload "
			  "was abandoned (the serving key process serves on)",
			  RELOAD_SWAP_SECONDS);
		return VEIL_EIO;
	}
	struct keyproc old = kp;
	kp = fresh;
	pthread_rwlock_unlock(&kp_lock);
	/* the old one exits once its channels close; it is reaped here, so
	 * its SIGCHLD finds kp.pid (the new one) still running */
	keyproc_release(&old);
	snprintf(kp_loaded, sizeof(kp_loaded), "%s", what);
	return 0;
}

const char *cas_keyproc_loaded(void)
{
	return kp_loaded;
}

pid_t cas_keyproc_pid(void)
{
	return kp.pid;
}

int cas_keyproc_reap(char *why, size_t cap)
{
	int st = 0;
	if (kp.pid <= 0 || waitpid(kp.pid, &st, WNOHANG) != kp.pid)
		return 0;
	kp.pid = -1;
	if (WIFEXITED(st))
		snprintf(why, cap, "exit status %d", WEXITSTATUS(st));
	else if (WIFSIGNALED(st))
		snprintf(why, cap, "killed by signal %d, %s", WTERMSIG(st),
			 strsignal(WTERMSIG(st)));
	else
		snprintf(why, cap, "status 0x%x", st);
	return 1;
}

void cas_keyproc_stop(void)
{
	keyproc_release(&kp);
	if (kp_started) {
		kp_started = false;
		pthread_rwlock_destroy(&kp_lock);
	}
	free(kp_args.keyfile);
	free(kp_args.pin_file);
	memset(&kp_args, 0, sizeof(kp_args));
}

#ifdef VEIL_TEST_HOOKS
void cas_keyproc_test(const char *what)
{
	struct ipc_msg m = {.type = IPC_TEST_SOCKET};
	if (!strcmp(what, "bad-answer")) {
		struct ipc_msg req = {.type = IPC_TEST_BAD_ANSWER}, resp = {0};
		call(&req, &resp, NULL, 0); /* refused: veil-cas stops */
		ipc_msg_clear(&resp);
	} else if (!strcmp(what, "socket")) {
		pthread_rwlock_rdlock(&kp_lock);
		struct channel *c = channel_take();
		/* tests only: keyproc.sh checks what the key process does */
		VEIL_UNCHECKED(ipc_send(c->fd, &m));
		pthread_mutex_unlock(&c->lock);
		pthread_rwlock_unlock(&kp_lock);
	} else if (!strcmp(what, "malformed")) {
		/* a field that runs past the message's end */
		static const uint8_t bad[] = {IPC_SEAL, 0, 0, 0, 6, 0,    0,    0, 1,
					      0,        0, 0, 1, 0, 0xff, 0xff, 0, 0};
		pthread_rwlock_rdlock(&kp_lock);
		struct channel *c = channel_take();
		if (send(c->fd, bad, sizeof(bad), MSG_NOSIGNAL) < 0)
			fprintf(stderr, "veil-cas: TEST: %s\n", strerror(errno));
		pthread_mutex_unlock(&c->lock);
		pthread_rwlock_unlock(&kp_lock);
	}
}
#endif

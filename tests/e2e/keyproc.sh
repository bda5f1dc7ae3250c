#!/usr/bin/env bash
# veil-cas in two processes (issue 12, item 1): the key process exists, is
# confined (no new privileges, seccomp, not dumpable), its filter refuses a
# system call it does not need, a malformed message ends it, its death stops
# veil-cas with a clear message and a restart serves all data again; the
# network process's memory holds neither the master key nor a data key, and
# no generated secret once its answers are sent.
# Root (gcore, /proc/PID/mem, setpriv); a build with -Dtest_hooks=true.
# Usage: keyproc.sh BUILD_DIR
set -u
BUILD=$(realpath "$1")
VEIL=$BUILD/veil
CAS=$BUILD/veil-cas
LAS=$BUILD/veil-las
ROOT=${VEIL_SOURCE_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
PY="python3 $ROOT/tests/e2e/attack_cas_robust.py"
KPY="python3 $ROOT/tests/e2e/keyproc.py"
WORK=$(mktemp -d)
chmod 755 "$WORK"
PORT=$((20000 + RANDOM % 20000))
URL=https://127.0.0.1:$PORT
CAS_PID= LAS_PID= EXTRA_PID=
cleanup() {
	for p in $CAS_PID $LAS_PID $EXTRA_PID; do kill -9 "$p" 2>/dev/null && wait "$p" 2>/dev/null; done
	rm -rf "$WORK"
}
trap cleanup EXIT
. "$ROOT/tests/e2e/lib.sh"

A() { VEIL_HOME=$WORK/home-a "$VEIL" "$@"; }
TESTING="--only_for_testing-trust-any --only_for_testing-debug --only_for_testing-ignore-signer"
CERT=$WORK/home-a/identity/cert.pem KEY=$WORK/home-a/identity/key.pem
key_hash_a() { openssl x509 -in "$CERT" -pubkey -noout | openssl pkey -pubin -outform DER | sha256sum | cut -d' ' -f1; }
as_a() { curl -sk --tlsv1.3 --cert "$CERT" --key "$KEY" -o "$WORK/.body" -w '%{http_code}' "$@"; }

# start_cas DATA PORT [flags...]: sets CAS_PID and KP_PID
start_cas() {
	local data=$1 port=$2 init=
	shift 2
	stop_cas || return 1
	[ -e "$data/master.key" ] || init=--init
	rm -f "$WORK/cas.out"
	${CAS_WRAP:-} "$CAS" --data "$data" $init --listen "127.0.0.1:$port" \
		--trust-platform "$LAS_HASH" "$@" >"$WORK/cas.out" 2>"$WORK/cas.err" &
	CAS_PID=$!
	for _ in $(seq 600); do
		if grep -q "listening" "$WORK/cas.out" 2>/dev/null; then
			KP_PID=$(key_process_of "$CAS_PID")
			return 0
		fi
		kill -0 "$CAS_PID" 2>/dev/null || break
		sleep 0.05
	done
	cat "$WORK/cas.err" >&2
	kill -9 "$CAS_PID" 2>/dev/null
	wait "$CAS_PID" 2>/dev/null
	CAS_PID=
	return 1
}
# the child of PID whose command line is "veil-cas --key-process ..."
key_process_of() {
	local c
	for c in $(cat /proc/"$1"/task/*/children 2>/dev/null); do
		tr '\0' ' ' <"/proc/$c/cmdline" | grep -q -- "--key-process" && echo "$c" && return 0
	done
	return 1
}
# waits up to 10 s for veil-cas to exit by itself; sets CAS_RC
wait_cas_exit() {
	for _ in $(seq 200); do kill -0 "$CAS_PID" 2>/dev/null || break; sleep 0.05; done
	kill -0 "$CAS_PID" 2>/dev/null && { die "veil-cas still runs"; return 1; }
	wait "$CAS_PID"
	CAS_RC=$?
	CAS_PID=
}

. "$ROOT/tests/e2e/lib_attest.sh"
# the password of an answer attest_once printed (sealed to the client's key:
# tests/tools/sealed_open opens it)

t_setup() {
	"$LAS" --socket "$WORK/las.sock" --data "$WORK/las" >"$WORK/las.out" 2>&1 &
	LAS_PID=$!
	for _ in $(seq 100); do grep -q "key hash" "$WORK/las.out" && break; sleep 0.05; done
	LAS_HASH=$("$LAS" --print-key-hash --data "$WORK/las") || die "no LAS key hash" || return 1
	build_lasc "$WORK/lasc" || return 1
	export LASC=$WORK/lasc
	PYHASH=$(sha256sum "$WORK/lasc" | cut -d' ' -f1)
	start_cas "$WORK/data" "$PORT" --threads 2 || return 1
	A cas attest "$URL" $TESTING >/dev/null || die "attest the CAS" || return 1
	KH=$(key_hash_a)
	write_policy canary
	[ "$(as_a -X POST --data-binary @"$WORK/canary.json" "$URL/v1/policies")" = 201 ] || die "create: $(cat "$WORK/.body")" || return 1
	attest_once canary/app >"$WORK/canary.out"
	PW=$(password_of "$WORK/canary.out") && [ ${#PW} -ge 8 ] ||
		die "no password: $(cat "$WORK/canary.out")" || return 1
}

# (1) two processes; the key process: no new privileges, seccomp filter
# mode, no descriptor but its channels (no network socket)
t_two_processes() {
	[ -n "$KP_PID" ] || die "no key process under veil-cas $CAS_PID" || return 1
	grep -q "^NoNewPrivs:[[:space:]]*1" "/proc/$KP_PID/status" || die "NoNewPrivs: $(grep NoNewPrivs "/proc/$KP_PID/status")" || return 1
	grep -q "^Seccomp:[[:space:]]*2" "/proc/$KP_PID/status" || die "Seccomp: $(grep Seccomp: "/proc/$KP_PID/status")" || return 1
	local fd ino n=0
	for fd in /proc/"$KP_PID"/fd/*; do
		[ "${fd##*/}" -le 2 ] && continue
		ino=$(readlink "$fd")
		[[ $ino == socket:* ]] || die "the key process holds $fd -> $ino" || return 1
		ino=${ino#socket:[}
		ino=${ino%]}
		awk -v i="$ino" '$7 == i {f = 1} END {exit !f}' /proc/net/unix || die "fd $fd is not a unix socket" || return 1
		n=$((n + 1))
	done
	echo "    key process $KP_PID: $n channels, $(grep -E '^(NoNewPrivs|Seccomp):' "/proc/$KP_PID/status" | tr -s '\t\n' '  ')"
	# its memory is locked (veil-cas runs as root here)
	grep -q "^VmLck:[[:space:]]*0 kB" "/proc/$KP_PID/status" && echo "    (VmLck 0 kB: memory not locked)"
	return 0
}

# (1) not dumpable: run as an unprivileged user, its /proc files are root's,
# and that user's gcore cannot attach
t_not_dumpable() {
	local d=$WORK/nobody p=$((PORT + 2)) u
	mkdir -p "$d" && chown nobody "$d" || return 1
	CAS_WRAP="setpriv --reuid=nobody --regid=nogroup --clear-groups" start_cas "$d" "$p" --threads 1 || return 1
	[ -n "$KP_PID" ] || die "no key process" || return 1
	u=$(stat -c %u "/proc/$KP_PID/mem")
	local g=ok
	if command -v gcore >/dev/null; then
		setpriv --reuid=nobody --regid=nogroup --clear-groups gcore -o "$WORK/kpcore" "$KP_PID" >/dev/null 2>&1 && g=dumped
		rm -f "$WORK/kpcore".*
	fi
	grep "key process" "$WORK/cas.err" | sed 's/^/    /'
	stop_cas || return 1
	[ "$u" = 0 ] || die "the key process is dumpable: /proc/PID/mem belongs to uid $u" || return 1
	[ "$g" = ok ] || die "its owner's gcore dumped the key process" || return 1
	start_cas "$WORK/data" "$PORT" --threads 2
}

# (2) the seccomp filter refuses socket(AF_INET): the key process is killed
# (SIGSYS), and veil-cas stops saying so
t_seccomp_refuses_socket() {
	stop_cas || return 1
	VEIL_TEST_KEYPROC=socket start_cas "$WORK/data" "$PORT" --threads 2 || return 1
	wait_cas_exit || return 1
	grep -q "TEST: socket(AF_INET) returned" "$WORK/cas.err" && die "socket() returned: $(grep TEST "$WORK/cas.err")" && return 1
	grep -q "the key process exited (killed by signal 31" "$WORK/cas.err" || die "no message: $(cat "$WORK/cas.err")" || return 1
	[ "$CAS_RC" = 1 ] || die "veil-cas exited $CAS_RC" || return 1
	grep "the key process exited" "$WORK/cas.err" | sed 's/^/    /'
}

# (4) a malformed message: sent by veil-cas (test hook), and raw to a key
# process started by hand; it exits (status 2) naming what was wrong
t_malformed_ipc_ends_key_process() {
	VEIL_TEST_KEYPROC=malformed start_cas "$WORK/data" "$PORT" --threads 2 || return 1
	wait_cas_exit || return 1
	grep -q "malformed message on channel .*: type 0x3: a field runs past the message; exiting" "$WORK/cas.err" || die "no message: $(cat "$WORK/cas.err")" || return 1
	grep -q "the key process exited (exit status 2)" "$WORK/cas.err" || die "no stop message: $(cat "$WORK/cas.err")" || return 1
	[ "$CAS_RC" = 1 ] || die "veil-cas exited $CAS_RC" || return 1
	$KPY raw "$CAS" "$WORK/data/master.key" >"$WORK/raw.out" 2>&1
	sed 's/^/    raw: /' "$WORK/raw.out"
	grep -q "^answer [0-9a-f]\{64\}$" "$WORK/raw.out" || die "no answer to a well-formed request" || return 1
	grep -q "^exit 2$" "$WORK/raw.out" || die "the key process did not exit 2" || return 1
	grep -q "malformed message on channel 0" "$WORK/raw.out" || die "no message" || return 1
}

# (4) an answer of the wrong type from the key process: veil-cas says so,
# ends the key process and stops
t_malformed_answer_stops_cas() {
	VEIL_TEST_KEYPROC=bad-answer start_cas "$WORK/data" "$PORT" --threads 2 || return 1
	wait_cas_exit || return 1
	grep -q "veil-cas: a malformed message from the key process: answer of type 0x8002 to type 0xa; stopping" "$WORK/cas.err" || die "no message: $(cat "$WORK/cas.err")" || return 1
	grep -q "the key process exited (killed by signal 9" "$WORK/cas.err" || die "no stop message: $(cat "$WORK/cas.err")" || return 1
	[ "$CAS_RC" = 1 ] || die "veil-cas exited $CAS_RC" || return 1
}

# (3) memory of the network process during and after a burst of
# attestations: no master key, no data key (through /proc/PID/mem, what a
# memory bug inside it could read), and no rendered password in a core
t_network_memory_holds_no_keys() {
	start_cas "$WORK/data" "$PORT" --threads 2 || return 1
	local mk dk pwhex i out n
	mk=$(od -An -tx1 -v "$WORK/data/master.key" | tr -d ' \n')
	dk=$($KPY datakey "$WORK/data" canary) || die "cannot unwrap the data key" || return 1
	pwhex=$(printf %s "$PW" | od -An -tx1 -v | tr -d ' \n')
	# the key process does hold them (the scan works)
	out=$($KPY scan "$KP_PID" "$mk" "$dk")
	echo "    key process: master key, data key found $out times"
	[ "${out% *}" != 0 ] || die "the scan found no master key even in the key process" || return 1
	(for i in $(seq 30); do attest_once canary/app >/dev/null; done) &
	EXTRA_PID=$!
	sleep 1
	for i in 1 2 3; do
		out=$($KPY scan "$CAS_PID" "$mk" "$dk" "$pwhex")
		echo "    network process during the burst: master key, data key, password: $out"
		set -- $out
		[ "$1" = 0 ] && [ "$2" = 0 ] || die "a key is in the network process's memory" || return 1
		sleep 0.5
	done
	if command -v gcore >/dev/null && ! grep -q libasan "/proc/$CAS_PID/maps"; then
		gcore -o "$WORK/core" "$CAS_PID" >/dev/null 2>&1 || die "gcore failed" || return 1
		n=$(grep -c -a -F "$PW" "$WORK/core.$CAS_PID")
		out=$($KPY scanfile "$WORK/core.$CAS_PID" "$mk" "$dk")
		rm -f "$WORK/core.$CAS_PID"
		echo "    core during the burst: master key, data key: $out; password: $n"
		[ "$out" = "0 0" ] || die "a key is in the network process's core" || return 1
		[ "$n" = 0 ] || die "the password is in the network process's core" || return 1
	fi
	wait "$EXTRA_PID"
	EXTRA_PID=
	out=$($KPY scan "$CAS_PID" "$mk" "$dk" "$pwhex")
	echo "    network process after the burst: master key, data key, password: $out"
	set -- $out
	[ "$1" = 0 ] && [ "$2" = 0 ] || die "a key is in the network process's memory" || return 1
	# the key process generates and renders: no copy of a secret is left
	# in the network process (until HPKE, a rendered configuration passes
	# through it, in a buffer wiped once sent)
	[ "$3" = 0 ] || die "the password is in the network process's memory ($3)" || return 1
}

# (5) kill -9 of the key process stops veil-cas with a clear message; a
# restart serves every policy again; kill -9 of veil-cas ends the key process
t_key_process_killed() {
	[ -n "$CAS_PID" ] || start_cas "$WORK/data" "$PORT" --threads 2 || return 1
	kill -9 "$KP_PID"
	wait_cas_exit || return 1
	grep -q "veil-cas: the key process exited (killed by signal 9, Killed); stopping" "$WORK/cas.err" || die "no message: $(cat "$WORK/cas.err")" || return 1
	[ "$CAS_RC" = 1 ] || die "veil-cas exited $CAS_RC" || return 1
	start_cas "$WORK/data" "$PORT" --threads 2 || return 1
	[ "$(as_a "$URL/v1/policies/canary")" = 200 ] || die "policy get after the restart: $(cat "$WORK/.body")" || return 1
	attest_once canary/app >"$WORK/again.out"
	[ "$(head -c 3 "$WORK/again.out")" = 200 ] || die "attest after the restart: $(cat "$WORK/again.out")" || return 1
	[ "$(password_of "$WORK/again.out")" = "$PW" ] || die "another password after the restart" || return 1
	local kp=$KP_PID
	kill -9 "$CAS_PID"
	wait "$CAS_PID" 2>/dev/null
	CAS_PID=
	for _ in $(seq 100); do [ -d "/proc/$kp" ] || break; sleep 0.05; done
	[ ! -d "/proc/$kp" ] || die "the key process outlived veil-cas" || return 1
}

[ -n "${TESTS:-}" ] && { run_in_order keyproc t_setup $TESTS; exit; }
run_in_order keyproc t_setup t_two_processes t_not_dumpable t_seccomp_refuses_socket \
	t_malformed_ipc_ends_key_process t_malformed_answer_stops_cas t_network_memory_holds_no_keys \
	t_key_process_killed

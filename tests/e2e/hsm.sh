#!/usr/bin/env bash
# The master key in a PKCS#11 token (issue 13, item 2), with softhsm2 and a
# token in a temporary folder (SOFTHSM2_CONF): a CAS made with
# --master-key pkcs11:..., policies created and attested (the key process,
# under its seccomp filter, wraps and unwraps in the token); a restart serves
# the same secrets; the key cannot be read out of the token (CKA_VALUE is
# refused) and the data folder holds none; rotate-master-key re-wraps every
# data key under a new key and destroys the old one, with veil-cas stopped
# or running under load (no request fails, no secret changes), and a
# rotation stopped half-way loses nothing and a rerun finishes it; backup
# and restore work
# with the token; two replicas on one PostgreSQL rotate together (the second
# follows the database), and one stopped stops the rotation; a missing module, an unknown token, a wrong or missing PIN
# are refused at start with a message naming them.
# Root (the key process's /proc files); a build with -Dtest_hooks=true.
# Usage: hsm.sh BUILD_DIR
set -u
BUILD=$(realpath "$1")
VEIL=$BUILD/veil
CAS=$BUILD/veil-cas
LAS=$BUILD/veil-las
ROOT=${VEIL_SOURCE_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
PY="python3 $ROOT/tests/e2e/attack_cas_robust.py"
MODULE=${VEIL_TEST_PKCS11_MODULE:-/usr/lib/softhsm/libsofthsm2.so}
WORK=$(mktemp -d)
chmod 755 "$WORK"
PORT=$((20000 + RANDOM % 20000))
URL=https://127.0.0.1:$PORT
CAS_PID= LAS_PID=
cleanup() {
	touch "$WORK/load.stop"
	for p in ${LOAD_PIDS:-}; do wait "$p" 2>/dev/null; done
	for p in $CAS_PID ${CAS2_PID:-} $LAS_PID; do kill -CONT "$p" 2>/dev/null; kill -9 "$p" 2>/dev/null && wait "$p" 2>/dev/null; done
	declare -F pg_server_kill_all >/dev/null && pg_server_kill_all
	rm -rf "$WORK"
}
trap cleanup EXIT
. "$ROOT/tests/e2e/lib.sh"

if [ ! -e "$MODULE" ] || ! command -v softhsm2-util >/dev/null; then
	echo "hsm: softhsm2 is not installed (scripts/setup.sh --test installs it)" >&2
	exit 1
fi

# the token: in $WORK only
mkdir -p "$WORK/tokens"
printf 'directories.tokendir = %s/tokens\nobjectstore.backend = file\nlog.level = ERROR\n' \
	"$WORK" >"$WORK/softhsm2.conf"
export SOFTHSM2_CONF=$WORK/softhsm2.conf
PIN=83917465
printf '%s\n' "$PIN" >"$WORK/pin"
chmod 600 "$WORK/pin"
URI="pkcs11:token=veil-test;object=veil-master"

A() { VEIL_HOME=$WORK/home-a "$VEIL" "$@"; }
TESTING="--only_for_testing-trust-any --only_for_testing-debug --only_for_testing-ignore-signer"
CERT=$WORK/home-a/identity/cert.pem KEY=$WORK/home-a/identity/key.pem
key_hash_a() { openssl x509 -in "$CERT" -pubkey -noout | openssl pkey -pubin -outform DER | sha256sum | cut -d' ' -f1; }
as_a() { curl -sk --tlsv1.3 --cert "$CERT" --key "$KEY" -o "$WORK/.body" -w '%{http_code}' "$@"; }

# cas_up VAR NAME PORT DATA [flags...]: veil-cas on PORT, its pid in the
# variable VAR, its output in NAME.out and NAME.err; 1 (NAME.err kept) if it
# does not start. cas_down VAR NAME: SIGTERM, its exit status; a sanitizer
# report in NAME.err fails it.
cas_up() {
	local var=$1 name=$2 port=$3 data=$4 pid
	shift 4
	rm -f "$WORK/$name.out"
	"$CAS" --data "$data" --listen "127.0.0.1:$port" --threads 2 \
		--trust-platform "$LAS_HASH" "$@" >"$WORK/$name.out" 2>"$WORK/$name.err" &
	pid=$!
	printf -v "$var" %s "$pid"
	for _ in $(seq 600); do
		grep -q "listening" "$WORK/$name.out" 2>/dev/null && return 0
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.05
	done
	kill -9 "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	printf -v "$var" %s ""
	return 1
}
cas_down() {
	local var=$1 name=$2 p=${!1}
	[ -n "$p" ] || return 0
	kill -TERM "$p" 2>/dev/null
	wait "$p" 2>/dev/null
	local r=$?
	printf -v "$var" %s ""
	! grep -q "Sanitizer" "$WORK/$name.err" || die "$(grep -A12 Sanitizer "$WORK/$name.err")" || return 1
	return $r
}
# start_cas DATA [flags...]: sets CAS_PID and KP_PID
start_cas() {
	local data=$1
	shift
	stop_cas || return 1
	cas_up CAS_PID cas "$PORT" "$data" "$@" || return 1
	KP_PID=$(key_process_of "$CAS_PID")
}
key_process_of() {
	local c
	for c in $(cat /proc/"$1"/task/*/children 2>/dev/null); do
		tr '\0' ' ' <"/proc/$c/cmdline" | grep -q -- "--key-process" && echo "$c" && return 0
	done
	return 1
}

. "$ROOT/tests/e2e/lib_attest.sh"
# every namespace's password, as attested now, into FILE (ns password lines)
passwords() {
	local ns
	: >"$1"
	for ns in canary second third; do
		attest_once "$ns/app" >"$WORK/att.out"
		[ "$(head -c 3 "$WORK/att.out")" = 200 ] || die "attest $ns: $(cat "$WORK/att.out")" || return 1
		echo "$ns $(password_of "$WORK/att.out")" >>"$1"
	done
}
policy_hashes() { sqlite3 "$WORK/data/cas.db" "SELECT namespace, hash FROM policies ORDER BY namespace"; }
# the CAS the rotation tests look at: its data folder, its store (PGURL:
# PostgreSQL, else DATA/cas.db), its token, the passwords it served first
DATA=$WORK/data PGURL= TOKEN=veil-test PW_REF=$WORK/pw.before
q() { # SQL on the store
	if [ -n "$PGURL" ]; then psql "$PGURL" -XAtq -c "$1"; else sqlite3 "$DATA/cas.db" "$1"; fi
}
key_versions() {
	if [ -n "$PGURL" ]; then
		q "SELECT DISTINCT upper(encode(substring(wrapped_key from 1 for 8), 'hex')) FROM policies"
	else
		q "SELECT DISTINCT substr(hex(wrapped_key),1,16) FROM policies"
	fi
}
probe() { VEIL_PKCS11_PIN=$PIN "$WORK/p11probe" "$MODULE" "$TOKEN"; }

t_setup() {
	softhsm2-util --init-token --free --label veil-test --pin "$PIN" --so-pin 5678 >/dev/null ||
		die "softhsm2-util --init-token failed" || return 1
	cc -O1 -I/usr/include/p11-kit-1 -o "$WORK/p11probe" "$ROOT/tests/e2e/p11probe.c" -ldl ||
		die "cannot build p11probe" || return 1
	"$LAS" --socket "$WORK/las.sock" --data "$WORK/las" >"$WORK/las.out" 2>&1 &
	LAS_PID=$!
	for _ in $(seq 100); do grep -q "key hash" "$WORK/las.out" && break; sleep 0.05; done
	LAS_HASH=$("$LAS" --print-key-hash --data "$WORK/las") || die "no LAS key hash" || return 1
	build_lasc "$WORK/lasc" || return 1
	export LASC=$WORK/lasc
	PYHASH=$(sha256sum "$WORK/lasc" | cut -d' ' -f1)
}

# --init with the token: the key is made there; master.key records where
t_init_with_token() {
	VEIL_PKCS11_PIN=$PIN start_cas "$WORK/data" --init --master-key "$URI" ||
		die "veil-cas --init with $URI: $(cat "$WORK/cas.err")" || return 1
	head -1 "$WORK/data/master.key" | grep -qx "veil-master-key-provider 1" ||
		die "master.key is not a provider record: $(head -c 200 "$WORK/data/master.key" | od -c | head -3)" || return 1
	grep -qx "current 1 veil-master" "$WORK/data/master.key" || die "$(cat "$WORK/data/master.key")" || return 1
	# the network process keeps no PIN in its environment
	! tr '\0' '\n' <"/proc/$CAS_PID/environ" | grep -q "^VEIL_PKCS11_PIN=$PIN" ||
		die "the network process's environment holds the PIN" || return 1
	A cas attest "$URL" $TESTING >/dev/null || die "attest the CAS" || return 1
	KH=$(key_hash_a)
	local ns
	for ns in canary second third; do
		write_policy "$ns"
		[ "$(as_a -X POST --data-binary @"$WORK/$ns.json" "$URL/v1/policies")" = 201 ] ||
			die "create $ns: $(cat "$WORK/.body")" || return 1
	done
	passwords "$WORK/pw.before" || return 1
	# served by the key process under its seccomp filter
	grep -q "^Seccomp:[[:space:]]*2" "/proc/$KP_PID/status" || die "no seccomp filter in the key process" || return 1
	[ "$(key_versions)" = 564B010200000001 ] || die "wrapped keys: $(key_versions)" || return 1
	echo "    3 policies created and attested; wrapped keys: $(key_versions) (VK 01 02, key version 1)"
}

# a plain start (the PIN from --pin-file now) serves the same secrets
t_restart_same_secrets() {
	start_cas "$WORK/data" --pin-file "$WORK/pin" || die "restart: $(cat "$WORK/cas.err")" || return 1
	passwords "$WORK/pw.restart" || return 1
	cmp -s "$WORK/pw.before" "$WORK/pw.restart" || die "other passwords after the restart" || return 1
	grep -q "$PIN" "$WORK/cas.err" "$WORK/cas.out" && die "the PIN is in veil-cas's output" && return 1
	return 0
}

# the key never leaves the token: CKA_VALUE is refused; the data folder and
# the database hold no key (master.key is the record, every wrapped key is
# the token's GCM output)
t_key_not_exportable() {
	probe >"$WORK/probe.out" || die "p11probe failed" || return 1
	sed 's/^/    /' "$WORK/probe.out"
	grep -qx "key veil-master token=true sensitive=true extractable=false value=CKR_ATTRIBUTE_SENSITIVE" "$WORK/probe.out" ||
		die "the token key is not protected as it should be" || return 1
	grep -q "value=READ" "$WORK/probe.out" && die "a key's value was read out of the token" && return 1
	# master.key: the record's lines only
	grep -qvE '^(veil-master-key-provider 1|provider pkcs11|token .*|object .*|module .*|current [0-9]+ .*|code-root [0-9a-f]{136})$' "$WORK/data/master.key" &&
		die "master.key holds more than the record: $(cat "$WORK/data/master.key")" && return 1
	[ "$(sqlite3 "$WORK/data/cas.db" "SELECT count(*) FROM policies WHERE length(wrapped_key) != 68 OR substr(hex(wrapped_key),1,8) != '564B0102'")" = 0 ] ||
		die "a wrapped key is not in the PKCS#11 format" || return 1
	# no copy of the token's (encrypted) object files in the data folder
	local f g
	for f in "$WORK"/tokens/*/*.object; do
		while IFS= read -r g; do
			cmp -s "$f" "$g" && die "$g is a copy of the token's $f" && return 1
		done < <(find "$WORK/data" -type f)
	done
	return 0
}

# rotation offline (veil-cas stopped): a new key re-wraps every data key;
# the old key is destroyed; the policy hashes stay; an audit entry says so;
# the secrets are the same
t_rotate() {
	policy_hashes >"$WORK/hashes.before"
	stop_cas || return 1
	run "$CAS" rotate-master-key --data "$WORK/data" --pin-file "$WORK/pin"
	ok || return 1
	has "pkcs11 master key version 1 -> 2; 3 data keys re-wrapped" || return 1
	echo "    $out"
	grep -qx "current 2 veil-master.v2" "$WORK/data/master.key" || die "$(cat "$WORK/data/master.key")" || return 1
	[ "$(key_versions)" = 564B010200000002 ] || die "wrapped keys after rotation: $(key_versions)" || return 1
	policy_hashes | cmp -s - "$WORK/hashes.before" || die "the policy hashes changed" || return 1
	probe >"$WORK/probe.out" || return 1
	grep -q "^key veil-master " "$WORK/probe.out" && die "the old key is still in the token" && return 1
	grep -qx "key veil-master.v2 token=true sensitive=true extractable=false value=CKR_ATTRIBUTE_SENSITIVE" "$WORK/probe.out" ||
		die "new key: $(cat "$WORK/probe.out")" || return 1
	grep -q '"event":"rotate-master-key"' "$WORK/data/audit.log" || die "no audit entry" || return 1
	A audit verify --data "$WORK/data" "$WORK/data/audit.log" >"$WORK/verify.out" 2>&1 ||
		die "audit verify: $(cat "$WORK/verify.out")" || return 1
	VEIL_PKCS11_PIN=$PIN start_cas "$WORK/data" || die "start after rotation: $(cat "$WORK/cas.err")" || return 1
	passwords "$WORK/pw.rotated" || return 1
	cmp -s "$WORK/pw.before" "$WORK/pw.rotated" || die "other passwords after the rotation" || return 1
}

# a rotation stopped after the data keys were re-wrapped (test hook: exit
# before the record is switched): both keys stay, the CAS serves, a rerun
# finishes
t_rotate_crash_then_rerun() {
	stop_cas || return 1
	run env VEIL_TEST_ROTATE_STOP=after-rewrap "$CAS" rotate-master-key --data "$WORK/data" --pin-file "$WORK/pin"
	[ "$rc" = 9 ] || die "the test hook did not stop the rotation (exit $rc: $err)" || return 1
	grep -qx "pending 3 veil-master.v3" "$WORK/data/master.key" || die "$(cat "$WORK/data/master.key")" || return 1
	[ "$(key_versions)" = 564B010200000003 ] || die "wrapped keys: $(key_versions)" || return 1
	start_cas "$WORK/data" --pin-file "$WORK/pin" || die "start mid-rotation: $(cat "$WORK/cas.err")" || return 1
	passwords "$WORK/pw.mid" || return 1
	cmp -s "$WORK/pw.before" "$WORK/pw.mid" || die "other passwords mid-rotation" || return 1
	stop_cas || return 1
	run "$CAS" rotate-master-key --data "$WORK/data" --pin-file "$WORK/pin"
	ok || return 1
	has "version 2 -> 3; 0 data keys re-wrapped" || return 1
	grep -q "^pending" "$WORK/data/master.key" && die "still pending" && return 1
	probe | grep -q "^key veil-master.v2 " && die "key v2 not destroyed" && return 1
	start_cas "$WORK/data" --pin-file "$WORK/pin" || die "start: $(cat "$WORK/cas.err")" || return 1
	passwords "$WORK/pw.after" || return 1
	cmp -s "$WORK/pw.before" "$WORK/pw.after" || die "other passwords after the rerun" || return 1
}

# a rotation stopped after master.key switched to the new key, before the
# old one was destroyed: the CAS serves; a rerun destroys the old key and
# starts no other rotation
t_rotate_crash_after_switch() {
	stop_cas || return 1
	run env VEIL_TEST_ROTATE_STOP=after-switch "$CAS" rotate-master-key --data "$WORK/data" --pin-file "$WORK/pin"
	[ "$rc" = 9 ] || die "the test hook did not stop the rotation (exit $rc: $err)" || return 1
	grep -qx "current 4 veil-master.v4" "$WORK/data/master.key" && grep -qx "retire veil-master.v3" "$WORK/data/master.key" ||
		die "$(cat "$WORK/data/master.key")" || return 1
	probe | grep -q "^key veil-master.v3 " || die "the old key went before the rerun" || return 1
	start_cas "$WORK/data" --pin-file "$WORK/pin" || die "start: $(cat "$WORK/cas.err")" || return 1
	passwords "$WORK/pw.switched" || return 1
	cmp -s "$WORK/pw.before" "$WORK/pw.switched" || die "other passwords after the switch" || return 1
	stop_cas || return 1
	run "$CAS" rotate-master-key --data "$WORK/data" --pin-file "$WORK/pin"
	ok || return 1
	has "master key version 4: the rotation to it is finished (its old key destroyed)" || return 1
	grep -qE "^(retire|pending)" "$WORK/data/master.key" && die "$(cat "$WORK/data/master.key")" && return 1
	probe | grep -q "^key veil-master.v3 " && die "key v3 not destroyed" && return 1
	[ "$(key_versions)" = 564B010200000004 ] || die "wrapped keys: $(key_versions)" || return 1
	start_cas "$WORK/data" --pin-file "$WORK/pin" || die "start: $(cat "$WORK/cas.err")" || return 1
}

# ---- rotation online: veil-cas running, under load ----

# the password in attestation answer OUT of request REQ
password_in() { # out req
	sed -n 2p "$1" | "$BUILD/tests/sealed_open" "$KEY" "$2" |
		python3 -c 'import json,sys; print(json.load(sys.stdin)["environment"]["API_PASSWORD"])'
}
# background load until $WORK/load.stop exists; each request's outcome one
# line in $WORK/load.NAME ("ok" or what failed)
load_attest() { # ns
	local ns=$1 want out=$WORK/load.$1.out req=$WORK/load.$1.req
	want=$(awk -v n="$ns" '$1 == n {print $2}' "$PW_REF")
	while [ ! -e "$WORK/load.stop" ] && [ -d "$WORK" ]; do
		$PY attest "$PORT" "$CERT" "$KEY" "$WORK/las.sock" "$KH" "$ns/app" 0 "$req" >"$out" 2>&1
		if [ "$(head -c 3 "$out")" != 200 ]; then
			echo "attest $ns: $(head -c 300 "$out")"
		elif [ "$(password_in "$out" "$req")" != "$want" ]; then
			echo "attest $ns: another password"
		else
			echo ok
		fi
	done >"$WORK/load.attest-$ns"
}
load_update() { # ns: updates, each naming the hash the previous one made
	local ns=$1 h code
	h=$(q "SELECT hash FROM policies WHERE namespace = '$ns'")
	while [ ! -e "$WORK/load.stop" ] && [ -d "$WORK" ]; do
		sed "1a predecessor: $h" "$WORK/$ns.yaml" >"$WORK/load.$ns.yaml"
		python3 -c 'import json,sys; print(json.dumps({"policy": open(sys.argv[1]).read()}))' \
			"$WORK/load.$ns.yaml" >"$WORK/load.$ns.json"
		code=$(curl -sk --tlsv1.3 --cert "$CERT" --key "$KEY" -o "$WORK/load.$ns.body" -w '%{http_code}' \
			-X PUT --data-binary @"$WORK/load.$ns.json" "$URL/v1/policies/$ns")
		if [ "$code" = 200 ]; then
			h=$(grep -o '"hash": *"[0-9a-f]*"' "$WORK/load.$ns.body" | grep -o '[0-9a-f]\{64\}')
			echo ok
		else
			echo "update $ns: $code $(head -c 300 "$WORK/load.$ns.body")"
		fi
	done >"$WORK/load.update-$ns"
}
load_create() { # new namespaces, one after the other
	local i=0 code
	while [ ! -e "$WORK/load.stop" ] && [ -d "$WORK" ]; do
		i=$((i + 1))
		write_policy "new-$RUN_ID-$i"
		code=$(as_a -X POST --data-binary @"$WORK/new-$RUN_ID-$i.json" "$URL/v1/policies")
		[ "$code" = 201 ] && echo ok || echo "create new-$RUN_ID-$i: $code $(head -c 300 "$WORK/.body")"
	done >"$WORK/load.create"
}
LOAD_PIDS=
load_start() {
	rm -f "$WORK/load.stop" "$WORK"/load.attest-* "$WORK"/load.update-* "$WORK/load.create"
	RUN_ID=$((RUN_ID + 1))
	load_attest canary & LOAD_PIDS="$LOAD_PIDS $!"
	load_attest second & LOAD_PIDS="$LOAD_PIDS $!"
	load_update third & LOAD_PIDS="$LOAD_PIDS $!"
	load_create & LOAD_PIDS="$LOAD_PIDS $!"
}
# stops the load; 1 unless every request succeeded (and each kind ran)
load_stop() {
	touch "$WORK/load.stop"
	local p f bad=0
	for p in $LOAD_PIDS; do wait "$p"; done
	LOAD_PIDS=
	for f in "$WORK"/load.attest-canary "$WORK"/load.attest-second "$WORK"/load.update-third "$WORK/load.create"; do
		[ -s "$f" ] || { die "no requests in ${f##*/}"; bad=1; continue; }
		grep -v '^ok$' "$f" | head -5 | while IFS= read -r l; do echo "    FAILED: $l" >&2; done
		grep -qv '^ok$' "$f" && bad=1
	done
	echo "    load: $(cat "$WORK"/load.attest-* | wc -l) attestations, $(wc -l <"$WORK/load.update-third") updates, $(wc -l <"$WORK/load.create") creations, $(cat "$WORK"/load.attest-* "$WORK"/load.update-third "$WORK/load.create" | grep -vc '^ok$') failed"
	[ "$bad" = 0 ] || die "requests failed during the rotation"
}
RUN_ID=0
cur_version() { sed -n 's/^current \([0-9]*\) .*/\1/p' "$DATA/master.key"; }
hex8() { printf '564B0102%08X' "$1"; }
# every row under the current key; the token holds the current key only
# (and no pending or retired one); the secrets are those from before
rotated_cleanly() { # version
	local v=$1
	[ "$(key_versions)" = "$(hex8 "$v")" ] || die "wrapped keys: $(key_versions) (want $(hex8 "$v"))" || return 1
	grep -qE "^(pending|retire)" "$DATA/master.key" && die "$(cat "$DATA/master.key")" && return 1
	probe >"$WORK/probe.out" || return 1
	[ "$(grep -c '^key ' "$WORK/probe.out")" = 1 ] && grep -q "^key $(sed -n 's/^object //p' "$DATA/master.key").v$v " "$WORK/probe.out" ||
		die "token keys: $(cat "$WORK/probe.out")" || return 1
	passwords "$WORK/pw.now" || return 1
	cmp -s "$PW_REF" "$WORK/pw.now" || die "other passwords" || return 1
}

# the rotation with veil-cas serving attestations, policy updates (with
# predecessors) and creations: no request fails, every secret stays, no row
# is left under the old key, the old key is gone from the token, veil-cas
# (the same process; its key process replaced) audited each step, and a
# restart with only the new key serves everything
t_rotate_online_under_load() {
	start_cas "$WORK/data" --pin-file "$WORK/pin" || die "start: $(cat "$WORK/cas.err")" || return 1
	local from cas_pid=$CAS_PID kp_before=$KP_PID
	from=$(cur_version)
	load_start
	sleep 2
	run "$CAS" rotate-master-key --data "$WORK/data" --pin-file "$WORK/pin"
	sleep 2
	load_stop || return 1
	ok || return 1
	has "master key version $from -> $((from + 1)); " && has "re-wrapped (veil-cas running)" || return 1
	echo "    $out"
	kill -0 "$cas_pid" 2>/dev/null || die "veil-cas stopped" || return 1
	[ "$(key_process_of "$cas_pid")" != "$kp_before" ] || die "the key process was not replaced" || return 1
	grep -q "^Seccomp:[[:space:]]*2" "/proc/$(key_process_of "$cas_pid")/status" ||
		die "the new key process has no seccomp filter" || return 1
	rotated_cleanly $((from + 1)) || return 1
	# the audit log: the four reloads, in order, each saying what it loaded
	grep '"event":"master-key-reload"' "$WORK/data/audit.log" | tail -4 >"$WORK/reloads"
	local want
	for want in "pkcs11 current $from pending $((from + 1)) retire 0; rotate-master-key $from -> $((from + 1)): the new key loaded" \
		"pkcs11 current $from pending $((from + 1)) retire 0; rotate-master-key $from -> $((from + 1)): " \
		"pkcs11 current $((from + 1)) pending 0 retire 1; rotate-master-key $from -> $((from + 1)): $((from + 1)) is current, $from retired" \
		"pkcs11 current $((from + 1)) pending 0 retire 0; rotate-master-key $from -> $((from + 1)): finished, "; do
		grep -qF "$want" "$WORK/reloads" || die "no audit entry '$want': $(cat "$WORK/reloads")" || return 1
	done
	A audit verify --data "$WORK/data" "$WORK/data/audit.log" >"$WORK/verify.out" 2>&1 ||
		die "audit verify: $(cat "$WORK/verify.out")" || return 1
	grep -q "master key reloaded" "$WORK/cas.err" || die "veil-cas did not say it reloaded" || return 1
	# a restart: only the new key in the token, everything served
	start_cas "$WORK/data" --pin-file "$WORK/pin" || die "restart: $(cat "$WORK/cas.err")" || return 1
	passwords "$WORK/pw.restarted" || return 1
	cmp -s "$WORK/pw.before" "$WORK/pw.restarted" || die "other passwords after the restart" || return 1
	[ "$(sqlite3 "$WORK/data/cas.db" "SELECT count(*) FROM policies WHERE namespace LIKE 'new-%'")" -gt 0 ] ||
		die "no namespace was created during the rotation" || return 1
}

# A create stalled between sealing its payload (with a data key of the key
# process serving then, under the old key) and its commit, across a whole
# rotation (test hook VEIL_CAS_TEST_SLOW_CREATE: creates of slow-* sleep that
# long before their transaction): the first reload is reported done only once
# it is answered, so its row is stored before the re-wrap looks and is
# re-wrapped like the others. Without that wait the old key was destroyed
# under it: the namespace could never be opened again.
t_rotate_waits_for_a_stalled_create() {
	VEIL_CAS_TEST_SLOW_CREATE=4 start_cas "$WORK/data" --pin-file "$WORK/pin" ||
		die "start: $(cat "$WORK/cas.err")" || return 1
	local from cp
	from=$(cur_version)
	write_policy slow-1
	curl -sk --tlsv1.3 --cert "$CERT" --key "$KEY" -o "$WORK/slow.body" -w "%{http_code}" -X POST --data-binary @"$WORK/slow-1.json" "$URL/v1/policies" >"$WORK/slow.code" &
	cp=$!
	sleep 1
	run "$CAS" rotate-master-key --data "$WORK/data" --pin-file "$WORK/pin"
	wait "$cp"
	ok || return 1
	[ "$(cat "$WORK/slow.code")" = 201 ] || die "the stalled create: $(cat "$WORK/slow.code") $(cat "$WORK/slow.body")" || return 1
	rotated_cleanly $((from + 1)) || return 1
	start_cas "$WORK/data" --pin-file "$WORK/pin" || die "restart: $(cat "$WORK/cas.err")" || return 1
	[ "$(as_a "$URL/v1/policies/slow-1")" = 200 ] || die "the stalled create's namespace after the rotation: $(cat "$WORK/.body")"
}

# the rotate command killed at each online step (test hook: exit 9), under
# load: veil-cas serves on, nothing is lost, a rerun finishes
t_rotate_online_crash_then_rerun() {
	local step from
	for step in online-loaded online-rewrapped online-switched; do
		kill -0 "$CAS_PID" 2>/dev/null || start_cas "$WORK/data" --pin-file "$WORK/pin" ||
			die "start: $(cat "$WORK/cas.err")" || return 1
		from=$(cur_version)
		load_start
		sleep 1
		run env VEIL_TEST_ROTATE_STOP=$step "$CAS" rotate-master-key --data "$WORK/data" --pin-file "$WORK/pin"
		[ "$rc" = 9 ] || { load_stop; die "$step: the test hook did not stop the rotation (exit $rc: $err)"; return 1; }
		passwords "$WORK/pw.mid" || { load_stop; return 1; }
		cmp -s "$WORK/pw.before" "$WORK/pw.mid" || { load_stop; die "$step: other passwords mid-rotation"; return 1; }
		run "$CAS" rotate-master-key --data "$WORK/data" --pin-file "$WORK/pin"
		sleep 1
		load_stop || return 1
		ok || return 1
		echo "    $step, then: $out"
		rotated_cleanly $((from + 1)) || return 1
	done
	# and a restart in between: the rerun after a stop mid-rotation with
	# veil-cas restarted (it loads both keys from master.key)
	from=$(cur_version)
	run env VEIL_TEST_ROTATE_STOP=online-rewrapped "$CAS" rotate-master-key --data "$WORK/data" --pin-file "$WORK/pin"
	[ "$rc" = 9 ] || die "the test hook did not stop the rotation (exit $rc: $err)" || return 1
	start_cas "$WORK/data" --pin-file "$WORK/pin" || die "start mid-rotation: $(cat "$WORK/cas.err")" || return 1
	run "$CAS" rotate-master-key --data "$WORK/data" --pin-file "$WORK/pin"
	ok || return 1
	rotated_cleanly $((from + 1))
}

# the rotate command killed (SIGKILL) at some moment under load, once
# veil-cas loaded the new key (its first reload), whatever it was doing
# then (re-wrapping, waiting for a reload): a rerun finishes (a rotation
# the killed run had finished is followed by another), nothing is lost.
# Not while it makes or destroys a key in the token: softhsm2 writes its
# token files in place, and a SIGKILL there left an unlabelled half-made
# object, or once the whole token unreadable (docs/operations.md); the
# test hooks stop it at the steps around those writes instead
reloads_of() { sed -n 's/^reload //p' "$DATA/master-key.loaded" 2>/dev/null; }
t_rotate_online_kill9_then_rerun() {
	local from delay rp now r0
	start_cas "$DATA" --pin-file "$WORK/pin" || die "start: $(cat "$WORK/cas.err")" || return 1
	for delay in 0 0.1 0.3 0.6; do
		kill -0 "$CAS_PID" 2>/dev/null || die "veil-cas stopped: $(tail -5 "$WORK/cas.err")" || return 1
		from=$(cur_version)
		load_start
		sleep 0.5
		r0=$(reloads_of)
		"$CAS" rotate-master-key --data "$DATA" --pin-file "$WORK/pin" >"$WORK/rot.out" 2>&1 &
		rp=$!
		for _ in $(seq 500); do [ "$(reloads_of)" != "$r0" ] && break; sleep 0.01; done
		sleep "$delay"
		kill -9 "$rp" 2>/dev/null
		wait "$rp" 2>/dev/null
		run "$CAS" rotate-master-key --data "$DATA" --pin-file "$WORK/pin"
		sleep 0.5
		load_stop || return 1
		ok || return 1
		now=$(cur_version)
		[ "$now" -gt "$from" ] || die "still version $now" || return 1
		echo "    killed ${delay}s after the first reload, then: $out"
		rotated_cleanly "$now" || return 1
	done
}

# a running veil-cas whose PIN came from the environment cannot load a key
# again: refused with the reason, nothing changed, it serves on
t_rotate_online_needs_pin_file() {
	VEIL_PKCS11_PIN=$PIN start_cas "$WORK/data" || die "start: $(cat "$WORK/cas.err")" || return 1
	local v
	v=$(cur_version)
	run "$CAS" rotate-master-key --data "$WORK/data" --pin-file "$WORK/pin"
	rejected || return 1
	has "a reload needs veil-cas started with --pin-file" || return 1
	echo "    $(echo "$err" | head -1)"
	passwords "$WORK/pw.now" || return 1
	cmp -s "$WORK/pw.before" "$WORK/pw.now" || die "other passwords" || return 1
	# restarted with --pin-file, a rerun finishes it
	start_cas "$WORK/data" --pin-file "$WORK/pin" || die "start: $(cat "$WORK/cas.err")" || return 1
	run "$CAS" rotate-master-key --data "$WORK/data" --pin-file "$WORK/pin"
	ok || return 1
	rotated_cleanly $((v + 1))
}

# backup and restore of a running PKCS#11 CAS (the PIN from the
# environment): the backup holds the record, not the key; the restored CAS
# serves the same secrets with the same token
t_backup_restore() {
	run env VEIL_PKCS11_PIN=$PIN "$CAS" backup --data "$WORK/data" "$WORK/backup"
	ok || return 1
	head -1 "$WORK/backup/master.key" | grep -qx "veil-master-key-provider 1" ||
		die "the backup's master.key is not the record" || return 1
	run env VEIL_PKCS11_PIN=$PIN "$CAS" restore "$WORK/backup" --data "$WORK/restored"
	ok || return 1
	start_cas "$WORK/restored" --pin-file "$WORK/pin" || die "start the restored CAS: $(cat "$WORK/cas.err")" || return 1
	passwords "$WORK/pw.restored" || return 1
	cmp -s "$WORK/pw.before" "$WORK/pw.restored" || die "other passwords after the restore" || return 1
}

# refused at start, one line naming what is missing
refused() { # message env...
	local msg=$1
	shift
	stop_cas || return 1
	if env "$@" "$CAS" --data "$WORK/data" --listen "127.0.0.1:$PORT" >"$WORK/cas.out" 2>"$WORK/cas.err"; then
		die "veil-cas started ($*)"
		return 1
	fi
	grep -qF -- "$msg" "$WORK/cas.err" || die "expected: $msg; got: $(cat "$WORK/cas.err")" || return 1
	echo "    $(grep -F -- "$msg" "$WORK/cas.err")"
}
t_token_missing_refused() {
	mkdir -p "$WORK/empty-tokens"
	printf 'directories.tokendir = %s/empty-tokens\nobjectstore.backend = file\nlog.level = ERROR\n' \
		"$WORK" >"$WORK/empty.conf"
	refused "PKCS#11 token 'veil-test' not found" SOFTHSM2_CONF="$WORK/empty.conf" VEIL_PKCS11_PIN=$PIN || return 1
	refused "PKCS#11 module /nonexistent/libnothing.so cannot be loaded" \
		VEIL_PKCS11_MODULE=/nonexistent/libnothing.so VEIL_PKCS11_PIN=$PIN || return 1
	refused "no PIN for PKCS#11 token 'veil-test': give --pin-file FILE or set VEIL_PKCS11_PIN" \
		-u VEIL_PKCS11_PIN
}
t_wrong_pin_refused() {
	refused "PKCS#11 token 'veil-test': login refused (CKR_PIN_INCORRECT: wrong PIN)" VEIL_PKCS11_PIN=11111111 || return 1
	grep -q 11111111 "$WORK/cas.err" && die "the PIN is in the message" && return 1
	return 0
}

# ---- online on a PostgreSQL store (PostgreSQL 15 on loopback, lib_pg.sh) ----

. "$ROOT/tests/e2e/lib_pg.sh"
PG=$WORK/pg

# rotate_pg_under LOAD-START: the rotation of DATA's CAS on PGURL while the
# load LOAD-START starts runs; every request succeeds, and it ends at
# version $from + 1 (the caller's from) with nothing lost
rotate_pg_under() {
	"$1"
	sleep 2
	run "$CAS" rotate-master-key --data "$DATA" --store "$PGURL" --pin-file "$WORK/pin"
	sleep 2
	load_stop || return 1
	ok || return 1
	echo "    $out"
	rotated_cleanly $((from + 1))
}

# a PKCS#11 CAS on PostgreSQL (its own token): the rotation under load with
# --store, as on SQLite; then a restart with only the new key; then one
# offline
t_rotate_online_postgres() {
	stop_cas || return 1
	PGPORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
	pg_init "$PG" data || die "initdb failed" || return 1
	pg_server_start "$PG" data "$PGPORT" "-c fsync=off" || die "PostgreSQL did not start" || return 1
	softhsm2-util --init-token --free --label veil-pg --pin "$PIN" --so-pin 5678 >/dev/null || return 1
	DATA=$WORK/pgdata PGURL="postgresql://veil@127.0.0.1:$PGPORT/postgres" TOKEN=veil-pg PW_REF=$WORK/pw.pg
	start_cas "$DATA" --init --master-key "pkcs11:token=veil-pg;object=veil-pg-master" \
		--pin-file "$WORK/pin" --store "$PGURL" || die "init on PostgreSQL: $(cat "$WORK/cas.err")" || return 1
	A cas attest "$URL" $TESTING >/dev/null 2>&1 || die "attest the CAS" || return 1
	local ns from
	for ns in canary second third; do
		[ "$(as_a -X POST --data-binary @"$WORK/$ns.json" "$URL/v1/policies")" = 201 ] ||
			die "create $ns: $(cat "$WORK/.body")" || return 1
	done
	passwords "$PW_REF" || return 1
	from=$(cur_version)
	rotate_pg_under load_start || return 1
	start_cas "$DATA" --pin-file "$WORK/pin" --store "$PGURL" || die "restart: $(cat "$WORK/cas.err")" || return 1
	passwords "$WORK/pw.pg.restarted" || return 1
	cmp -s "$PW_REF" "$WORK/pw.pg.restarted" || die "other passwords after the restart" || return 1
	# and offline, veil-cas stopped
	stop_cas || return 1
	run "$CAS" rotate-master-key --data "$DATA" --store "$PGURL" --pin-file "$WORK/pin"
	ok && has "master key version $((from + 1)) -> $((from + 2)); " && has " data keys re-wrapped" || return 1
	start_cas "$DATA" --pin-file "$WORK/pin" --store "$PGURL" || die "start: $(cat "$WORK/cas.err")" || return 1
	rotated_cleanly $((from + 2)) || return 1
	stop_cas || return 1
	pg_server_stop data
}

# ---- replicas: two veil-cas on one PostgreSQL, one token ----

PORT2=$((PORT + 1))
[ "$PORT2" -lt 65536 ] || PORT2=$((PORT - 1))
CAS2_PID=
# the second replica (on PORT2): CAS2_PID, its output in cas2.out, cas2.err
start_cas2() { # data [flags...]
	local data=$1
	shift
	stop_cas2 || return 1
	cas_up CAS2_PID cas2 "$PORT2" "$data" "$@"
}
stop_cas2() { cas_down CAS2_PID cas2; }
# through replica 2: the passwords (as passwords())
passwords2() { PORT=$PORT2 passwords "$1"; }
# the load through both: attestations through each, updates through the
# first, creations through the second
load_start_both() {
	rm -f "$WORK/load.stop" "$WORK"/load.attest-* "$WORK"/load.update-* "$WORK/load.create"
	RUN_ID=$((RUN_ID + 1))
	load_attest canary & LOAD_PIDS="$LOAD_PIDS $!"
	PORT=$PORT2 load_attest second & LOAD_PIDS="$LOAD_PIDS $!"
	load_update third & LOAD_PIDS="$LOAD_PIDS $!"
	URL=https://127.0.0.1:$PORT2 load_create & LOAD_PIDS="$LOAD_PIDS $!"
}
# replica DIR's master.key at version V, nothing pending or retired
replica_at() { # dir version
	grep -qx "current $2 veil-rep-master.v$2" "$1/master.key" && ! grep -qE "^(pending|retire)" "$1/master.key" ||
		die "$1/master.key: $(cat "$1/master.key")"
}

# Two replicas of a PKCS#11 CAS on one PostgreSQL (the second a copy of the
# first's data folder without replica.id), one token: the rotation run on
# the first's host under load through both, the second following through
# the database (no signal reaches it): no request fails, the same secrets
# through both before and after, no row under the old key, the old key gone
# from the token, both master.key at the new version, both restart with
# only the new key. Then a replica stopped (SIGSTOP) during a rotation: the
# command refuses naming it, the old key stays; after SIGCONT a rerun
# finishes.
t_rotate_replicas() {
	stop_cas || return 1
	local port from r2=$WORK/rep2
	port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
	pg_init "$PG" rep || die "initdb failed" || return 1
	pg_server_start "$PG" rep "$port" "-c fsync=off" || die "PostgreSQL did not start" || return 1
	softhsm2-util --init-token --free --label veil-rep --pin "$PIN" --so-pin 5678 >/dev/null || return 1
	DATA=$WORK/rep1 PGURL="postgresql://veil@127.0.0.1:$port/postgres" TOKEN=veil-rep PW_REF=$WORK/pw.rep
	start_cas "$DATA" --init --master-key "pkcs11:token=veil-rep;object=veil-rep-master" \
		--pin-file "$WORK/pin" --store "$PGURL" || die "init on PostgreSQL: $(cat "$WORK/cas.err")" || return 1
	A cas attest "$URL" $TESTING >/dev/null 2>&1 || die "attest the CAS" || return 1
	local ns
	for ns in canary second third; do
		[ "$(as_a -X POST --data-binary @"$WORK/$ns.json" "$URL/v1/policies")" = 201 ] ||
			die "create $ns: $(cat "$WORK/.body")" || return 1
	done
	passwords "$PW_REF" || return 1
	stop_cas || return 1
	cp -a "$DATA" "$r2" && rm "$r2/replica.id" || return 1
	start_cas "$DATA" --pin-file "$WORK/pin" --store "$PGURL" || die "start: $(cat "$WORK/cas.err")" || return 1
	start_cas2 "$r2" --pin-file "$WORK/pin" --store "$PGURL" || die "replica 2: $(cat "$WORK/cas2.err")" || return 1
	passwords2 "$WORK/pw.rep2" || return 1
	cmp -s "$PW_REF" "$WORK/pw.rep2" || die "other passwords through replica 2" || return 1
	# a live replica holds its id's session lock (what the rotation waits
	# for); a restart of PostgreSQL ends those sessions, and each replica
	# takes its lock again on its next statement (its key check each second)
	local locks="SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND classid = 1986357613 AND granted"
	[ "$(q "$locks")" = 2 ] || die "replica locks before: $(q "$locks")" || return 1
	pg_server_stop rep && pg_server_start "$PG" rep "$port" "-c fsync=off" || return 1
	local n=
	for _ in $(seq 50); do
		n=$(q "$locks" 2>/dev/null)
		[ "$n" = 2 ] && break
		sleep 0.1
	done
	[ "$n" = 2 ] || die "the replicas did not take their locks again after PostgreSQL restarted: '$n'" || return 1
	from=$(cur_version)
	rotate_pg_under load_start_both || return 1
	replica_at "$DATA" $((from + 1)) && replica_at "$r2" $((from + 1)) || return 1
	passwords2 "$WORK/pw.rep2" || return 1
	cmp -s "$PW_REF" "$WORK/pw.rep2" || die "other passwords through replica 2 after the rotation" || return 1
	[ "$(q "SELECT count(*) FROM veil_replica_keys WHERE loaded = 'pkcs11 current $((from + 1)) pending 0 retire 0'")" = 2 ] ||
		die "veil_replica_keys: $(q 'SELECT * FROM veil_replica_keys')" || return 1
	# replica 2 audited each step it took from the database
	[ "$(grep '"event":"master-key-reload"' "$r2/audit.log" | grep -c 'from the database')" -ge 4 ] ||
		die "replica 2's reloads: $(grep master-key-reload "$r2/audit.log")" || return 1
	grep -q "master key reloaded" "$WORK/cas2.err" || die "replica 2 did not say it reloaded" || return 1
	[ "$(q "SELECT count(*) FROM policies WHERE namespace LIKE 'new-%'")" -gt 0 ] ||
		die "no namespace was created during the rotation" || return 1
	# both restart with only the new key in the token
	stop_cas2 && stop_cas || return 1
	start_cas "$DATA" --pin-file "$WORK/pin" --store "$PGURL" || die "restart: $(cat "$WORK/cas.err")" || return 1
	start_cas2 "$r2" --pin-file "$WORK/pin" --store "$PGURL" || die "restart 2: $(cat "$WORK/cas2.err")" || return 1
	passwords "$WORK/pw.rep1" && passwords2 "$WORK/pw.rep2" || return 1
	cmp -s "$PW_REF" "$WORK/pw.rep1" && cmp -s "$PW_REF" "$WORK/pw.rep2" || die "other passwords after the restart" || return 1
	# a replica that does not load (stopped as it takes the rotation's first
	# record): refused, the old key kept
	local rp
	"$CAS" rotate-master-key --data "$DATA" --store "$PGURL" --pin-file "$WORK/pin" --wait 3 \
		>"$WORK/rot.out" 2>"$WORK/rot.err" &
	rp=$!
	for _ in $(seq 500); do grep -q "^pending" "$r2/master.key" && break; sleep 0.01; done
	kill -STOP "$CAS2_PID"
	wait "$rp"
	rc=$? out=$(cat "$WORK/rot.out") err=$(cat "$WORK/rot.err")
	grep -q "^pending" "$r2/master.key" || { kill -CONT "$CAS2_PID"; die "replica 2 took no record: $err"; return 1; }
	rejected || { kill -CONT "$CAS2_PID"; return 1; }
	has "1 live replica did not load the master key's record" && has "Nothing was destroyed" ||
		{ kill -CONT "$CAS2_PID"; return 1; }
	echo "    $(head -c 300 <<<"$err")..."
	probe >"$WORK/probe.out"
	grep -q "^key veil-rep-master.v$((from + 1)) " "$WORK/probe.out" || { kill -CONT "$CAS2_PID"; die "the old key went: $(cat "$WORK/probe.out")"; return 1; }
	passwords "$WORK/pw.rep1" || { kill -CONT "$CAS2_PID"; return 1; }
	kill -CONT "$CAS2_PID"
	cmp -s "$PW_REF" "$WORK/pw.rep1" || die "other passwords after the refusal" || return 1
	run "$CAS" rotate-master-key --data "$DATA" --store "$PGURL" --pin-file "$WORK/pin"
	ok || return 1
	echo "    after SIGCONT: $out"
	rotated_cleanly $((from + 2)) || return 1
	replica_at "$DATA" $((from + 2)) && replica_at "$r2" $((from + 2)) || return 1
	passwords2 "$WORK/pw.rep2" || return 1
	cmp -s "$PW_REF" "$WORK/pw.rep2" || die "other passwords through replica 2 after the rerun" || return 1
	stop_cas2 && stop_cas || return 1
	pg_server_stop rep
}

[ -n "${TESTS:-}" ] && { run_in_order hsm t_setup $TESTS; exit; }
run_in_order hsm t_setup t_init_with_token t_restart_same_secrets t_key_not_exportable t_rotate \
	t_rotate_crash_then_rerun t_rotate_crash_after_switch t_rotate_online_under_load \
	t_rotate_waits_for_a_stalled_create t_rotate_online_crash_then_rerun t_rotate_online_kill9_then_rerun t_rotate_online_needs_pin_file t_backup_restore \
	t_token_missing_refused t_wrong_pin_refused t_rotate_online_postgres t_rotate_replicas

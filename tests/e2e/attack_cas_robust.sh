#!/usr/bin/env bash
# Attacks on veil-cas's robustness (issue 9: M3, M4, L5, M6, L1, M8, L6), on
# loopback; every server is started here and stopped by PID. Root is needed
# for the small tmpfs (a full disk) and for gcore. Usage: attack_cas_robust.sh BUILD_DIR
# Each scenario says what the attack did against the code before its fix.
set -u
BUILD=$(realpath "$1")
VEIL=$BUILD/veil
CAS=$BUILD/veil-cas
LAS=$BUILD/veil-las
ROOT=${VEIL_SOURCE_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
PY="python3 $ROOT/tests/e2e/attack_cas_robust.py"
WORK=$(mktemp -d)
chmod 755 "$WORK"
PORT=$((20000 + RANDOM % 20000))
URL=https://127.0.0.1:$PORT
CAS_PID= LAS_PID= EXTRA_PID=
cleanup() {
	for p in $CAS_PID $LAS_PID $EXTRA_PID; do kill -9 "$p" 2>/dev/null && wait "$p" 2>/dev/null; done
	mountpoint -q "$WORK/full" 2>/dev/null && { umount "$WORK/full" || umount -l "$WORK/full"; }
	rm -rf "$WORK"
}
trap cleanup EXIT
[ -n "${KEEP_LOGS:-}" ] && trap "cp $WORK/cas.err $WORK/request.log /tmp/i9r/ 2>/dev/null; cleanup" EXIT
. "$ROOT/tests/e2e/lib.sh"

A() { VEIL_HOME=$WORK/home-a "$VEIL" "$@"; }
TESTING="--only_for_testing-trust-any --only_for_testing-debug --only_for_testing-ignore-signer"
CERT=$WORK/home-a/identity/cert.pem KEY=$WORK/home-a/identity/key.pem
key_hash_a() { openssl x509 -in "$CERT" -pubkey -noout | openssl pkey -pubin -outform DER | sha256sum | cut -d' ' -f1; }
as_a() { curl -sk --tlsv1.3 --cert "$CERT" --key "$KEY" -o "$WORK/.body" -w '%{http_code}' "$@"; }

# start_cas DATA PORT [flags...]: sets CAS_PID (one CAS at a time here)
start_cas() {
	local data=$1 port=$2 init=
	shift 2
	stop_cas || return 1
	[ -e "$data/master.key" ] || init=--init
	rm -f "$WORK/cas.out"
	${CAS_WRAP:-} "$CAS" --data "$data" $init --listen "127.0.0.1:$port" --log-file "$WORK/request.log" \
		--trust-platform "$LAS_HASH" "$@" >"$WORK/cas.out" 2>"$WORK/cas.err" &
	CAS_PID=$!
	for _ in $(seq 600); do
		grep -q "listening" "$WORK/cas.out" 2>/dev/null && return 0
		kill -0 "$CAS_PID" 2>/dev/null || break
		sleep 0.05
	done
	cat "$WORK/cas.err" >&2
	kill -9 "$CAS_PID" 2>/dev/null
	wait "$CAS_PID" 2>/dev/null # a CAS that refused to start is not the next one's to stop
	CAS_PID=
	return 1
}
stop_cas() {
	[ -n "$CAS_PID" ] || return 0
	kill -TERM "$CAS_PID" 2>/dev/null
	wait "$CAS_PID" 2>/dev/null
	local r=$?
	CAS_PID=
	# a sanitizer build's findings fail the scenario that stopped it
	! grep -q "Sanitizer" "$WORK/cas.err" || die "$(grep -A12 Sanitizer "$WORK/cas.err")" || return 1
	return $r
}
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
healthz() { curl -sk --tlsv1.3 --max-time "${2:-3}" -o /dev/null -w '%{http_code}' "https://127.0.0.1:$1/healthz"; }

# a policy for NS: its measurement is the static evidence client's ($LASC,
# what veil-las measures), debug tolerated; NFILES protected files; NRSA RSA-3072 keys
write_policy() { # ns nfiles nrsa [predecessor] [round]
	python3 - "$@" "$PYHASH" >"$WORK/$1.yaml" <<'PYEOF'
import hashlib, sys
ns, nfiles, nrsa = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
pred = sys.argv[4] if len(sys.argv) > 6 else ""
rnd = sys.argv[5] if len(sys.argv) > 6 else "0"
pyhash = sys.argv[-1]
files = [("/f/%07d" % i, "%064x" % (i + 1)) for i in range(nfiles)]
print("name: " + ns)
print('version: "0.3"')
if pred:
    print("predecessor: " + pred)
print("security:\n  attestation:\n    tolerate: [debug-mode]")
print("services:\n  - name: app\n    command: python3 app.py\n    pwd: /python")
print("    mrenclaves: [%s]" % pyhash)
print("    environment:\n      API_PASSWORD: \"$$SCONE::password$$\"\n      ROUND: \"%s\"" % rnd)
if files:
    b = "veil-fileset-v1\n" + "".join("%s 0644 %s\n" % (h, p) for p, h in sorted(files))
    print("    file_set_root: " + hashlib.sha256(b.encode()).hexdigest())
    print("    files:")
    for p, h in files:
        print("      - {path: %s, mode: \"0644\", sha256: %s}" % (p, h))
print("secrets:\n  - name: password\n    kind: ascii\n    size: 32")
for i in range(nrsa):
    print("  - name: rsa%d\n    kind: private-key\n    algorithm: RSA-3072" % i)
PYEOF
	echo "$WORK/$1.yaml"
}
# PUT a new version of NS (current hash H): prints the HTTP status
put_policy() { # ns hash round
	local f
	f=$(write_policy "$1" 0 0 "$2" "$3")
	python3 -c 'import json,sys; print(json.dumps({"policy": open(sys.argv[1]).read()}))' "$f" >"$WORK/put.json"
	as_a -X PUT --data-binary @"$WORK/put.json" "$URL/v1/policies/$1"
}
stored_hash() { as_a "$URL/v1/policies/$1" >/dev/null && python3 -c 'import json;print(json.load(open("'"$WORK/.body"'"))["hash"])'; }

t_setup() {
	"$LAS" --socket "$WORK/las.sock" --data "$WORK/las" >"$WORK/las.out" 2>&1 &
	LAS_PID=$!
	for _ in $(seq 100); do grep -q "key hash" "$WORK/las.out" && break; sleep 0.05; done
	LAS_HASH=$("$LAS" --print-key-hash --data "$WORK/las") || die "no LAS key hash" || return 1
	# veil-las vouches only for static callers: evidence comes from this
	# static client (REPORT, the challenge answered), whose hash the
	# policies name as their measurement
	build_lasc "$WORK/lasc" || return 1
	export LASC=$WORK/lasc
	PYHASH=$(sha256sum "$WORK/lasc" | cut -d' ' -f1)
	start_cas "$WORK/data" "$PORT" --threads 1 || return 1
	A cas attest "$URL" $TESTING >/dev/null || die "attest the CAS" || return 1
	KH=$(key_hash_a)
}

# M3. Before: with `ulimit -n 128` and 400 connections held open, veil-cas
# spun a core (2.97 s of CPU in 3 s) and its stderr grew by 284 MB of
# libevent's "Error from accept() call: Too many open files" in those seconds.
t_fd_limit_flood() {
	local p=$((PORT + 1)) c0 c1 n
	stop_cas || return 1
	CAS_WRAP="prlimit --nofile=128:128" start_cas "$WORK/data" "$p" --threads 1 || return 1
	$PY flood "$p" 400 6 >"$WORK/flood.out" &
	EXTRA_PID=$!
	sleep 2
	c0=$(cpu_ticks "$CAS_PID")
	sleep 3
	c1=$(cpu_ticks "$CAS_PID")
	wait "$EXTRA_PID"
	EXTRA_PID=
	n=$(($(stat -c %s "$WORK/cas.err") + $(stat -c %s "$WORK/request.log")))
	echo "    held $(head -1 "$WORK/flood.out") connections; CAS CPU $((c1 - c0)) ticks in 3 s; log $n bytes"
	[ $((c1 - c0)) -lt 60 ] || die "veil-cas spun at its fd limit: $((c1 - c0)) ticks in 3 s" || return 1
	[ "$n" -lt 200000 ] || die "the log grew by $n bytes" || return 1
	local ok=
	for _ in $(seq 20); do [ "$(healthz "$p")" = 200 ] && ok=1 && break; sleep 0.25; done
	[ -n "$ok" ] || die "/healthz not served after the flood"
}

# M3. Before: a client sending one byte a second stayed connected for the
# whole 20 s of the test (each byte restarted evhttp's 30 s read timeout).
t_slowloris_disconnected() {
	local p=$((PORT + 1)) s
	stop_cas || return 1
	start_cas "$WORK/data" "$p" --threads 1 ${SLOW_FLAGS---request-timeout 4} || return 1
	s=$($PY slowloris "$p" 1 20)
	echo "    slow client disconnected after $s s"
	python3 -c "import sys; sys.exit(0 if float('$s') <= 8 else 1)" || die "slow client held on for $s s"
}

# M4. Before: /healthz waited 6 s behind a policy with 8 RSA-3072 keys and a
# /v1/attest whose 16384 files (1.6 MB) were compared with the policy's 4096
# quadratically (its answer took 18.4 s; /healthz waited 7.5 s).
t_cpu_work_off_the_loop() {
	stop_cas || return 1
	start_cas "$WORK/data" "$PORT" --threads 1 || return 1
	[ "$(as_a -X POST --data-binary @<(python3 -c 'import json,sys; print(json.dumps({"policy": open(sys.argv[1]).read()}))' "$(write_policy big 4096 0)") "$URL/v1/policies")" = 201 ] ||
		die "create big: $(cat "$WORK/.body")" || return 1
	$PY healthz-max "$PORT" 8 >"$WORK/hz.out" &
	EXTRA_PID=$!
	sleep 0.5
	python3 -c 'import json,sys; print(json.dumps({"policy": open(sys.argv[1]).read()}))' "$(write_policy rsa 0 8)" >"$WORK/rsa.json"
	as_a -X POST --data-binary @"$WORK/rsa.json" "$URL/v1/policies" >"$WORK/rsa.code" &
	local rp=$!
	$PY attest "$PORT" "$CERT" "$KEY" "$WORK/las.sock" "$KH" big/app 16384 | head -c 300 >"$WORK/att.out"
	wait "$rp"
	wait "$EXTRA_PID"
	EXTRA_PID=
	echo "    slowest /healthz $(cat "$WORK/hz.out") s; attest: $(head -1 "$WORK/att.out"); rsa policy: $(cat "$WORK/rsa.code")"
	[ "$(cat "$WORK/rsa.code")" = 201 ] || die "rsa policy not created" || return 1
	# the attest reached the file comparison: it names a changed file (the
	# evidence, measurement and config id were accepted first)
	grep -q 'is not a protected file of the policy\|changed\|is missing' "$WORK/att.out" ||
		die "the attest did not reach the file comparison: $(cat "$WORK/att.out")" || return 1
	python3 -c "import sys; sys.exit(0 if float('$(cat "$WORK/hz.out")') < 1.0 else 1)" || die "/healthz stalled"
}

# L5. Before: 30 connections each buffering a 4 MiB body grew veil-cas by
# 111 MB; none was refused.
t_buffered_bodies_capped() {
	local r0 r1
	# under ASan, freed bodies wait in its quarantine (256 MB by default) and
	# count as RSS: a small one measures veil-cas, not the sanitizer
	ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}quarantine_size_mb=4" \
		start_cas "$WORK/data" "$PORT" --threads 1 ${BUF_FLAGS---buffered-max 16777216} || return 1
	r0=$(awk '/VmRSS/ {print $2}' "/proc/$CAS_PID/status")
	$PY bodies "$PORT" 30 4000000 3 >"$WORK/bodies.out" &
	EXTRA_PID=$!
	sleep 2.5
	r1=$(awk '/VmRSS/ {print $2}' "/proc/$CAS_PID/status")
	wait "$EXTRA_PID"
	EXTRA_PID=
	# the bound: 16 MB of bodies buffered at most, with libevent's and TLS's
	# own (35 MB measured). Under ASan (redzones, shadow) a buffered byte
	# costs more: 59 to 81 MB measured capped (80 failed once in CI), 169 MB
	# with the cap lifted (BUF_FLAGS="--buffered-max 1073741824"): its bound
	# is 120, between the two.
	local max=80
	grep -q libasan "/proc/$CAS_PID/maps" && max=120
	echo "    RSS +$(((r1 - r0) / 1024)) MB (bound $max); answers: $(tail -1 "$WORK/bodies.out" | tr ' ' '\n' | sort | uniq -c | tr '\n' ' ')"
	[ $(((r1 - r0) / 1024)) -lt "$max" ] || die "RSS grew by $(((r1 - r0) / 1024)) MB" || return 1
	grep -q 503 "$WORK/bodies.out" || die "no body refused with 503"
}

# M6. Before: 3000 requests without a certificate grew the audit log by
# 899 KB (one entry each).
t_nocert_flood_audit_bounded() {
	local s0 s1
	s0=$(stat -c %s "$WORK/data/audit.log")
	$PY nocert "$PORT" 3000
	s1=$(stat -c %s "$WORK/data/audit.log")
	echo "    audit log +$((s1 - s0)) bytes for 3000 refusals"
	[ $((s1 - s0)) -lt 65536 ] || die "audit log grew by $((s1 - s0)) bytes"
}

# M6. Before: on a full disk every update answered 200 and was stored,
# while its audit entry was never written.
t_full_disk_refuses_unaudited() {
	local d=$WORK/full/data h code acked=0
	stop_cas || return 1
	mkdir -p "$WORK/full" && mount -t tmpfs -o size=8m tmpfs "$WORK/full" || return 1
	start_cas "$d" "$PORT" --threads 1 || return 1
	A cas attest "$URL" $TESTING >/dev/null
	[ "$(as_a -X POST --data-binary @<(python3 -c 'import json,sys; print(json.dumps({"policy": open(sys.argv[1]).read()}))' "$(write_policy full 0 0)") "$URL/v1/policies")" = 201 ] || die "create" || return 1
	# a disk full for the audit log while SQLite's WAL still has room: the
	# WAL is grown by a large policy, then restarted (its blocks are reused)
	python3 -c 'import json,sys; print(json.dumps({"policy": open(sys.argv[1]).read()}))' "$(write_policy grow 4096 0)" >"$WORK/grow.json"
	as_a -X POST --data-binary @"$WORK/grow.json" "$URL/v1/policies" >/dev/null
	python3 -c 'import sqlite3,sys; sqlite3.connect(sys.argv[1]).execute("PRAGMA wal_checkpoint(RESTART)")' "$d/cas.db"
	dd if=/dev/zero of="$WORK/full/fill" bs=4k 2>/dev/null
	for i in 1 2 3 4 5 6; do
		h=$(stored_hash full) || { die "read: $(cat "$WORK/.body")"; return 1; }
		code=$(put_policy full "$h" "$i")
		[ "$code" = 200 ] && acked=$((acked + 1))
		grep -q "\"event\":\"update\".*\"detail\":\"$(python3 -c 'import json;print(json.load(open("'"$WORK/.body"'")).get("hash",""))')\"" "$d/audit.log" 2>/dev/null ||
			[ "$code" != 200 ] || die "update $i acknowledged without an audit entry" || return 1
	done
	h=$(stored_hash full)
	grep -q "\"detail\":\"$h\"" "$d/audit.log" || die "stored policy $h has no audit entry ($acked acknowledged)" || return 1
	echo "    $acked of 6 updates acknowledged on a full disk; the stored one is audited"
	stop_cas || return 1
	rm -f "$WORK/full/fill"
}

# M6. Before: killed between the store's commit and the audit write, the CAS
# came back with the change stored and no audit entry for it.
t_crash_between_commit_and_audit() {
	local d=$WORK/full/data h0 h1
	start_cas "$d" "$PORT" --threads 1 || return 1
	h0=$(stored_hash full)
	stop_cas || return 1
	VEIL_CAS_FAULT=after_commit start_cas "$d" "$PORT" --threads 1 || return 1
	put_policy full "$h0" crash >/dev/null
	wait "$CAS_PID" 2>/dev/null
	CAS_PID=
	start_cas "$d" "$PORT" --threads 1 || return 1
	h1=$(stored_hash full)
	[ "$h1" = "$h0" ] || grep -q "\"event\":\"update\".*\"detail\":\"$h1\"" "$d/audit.log" ||
		die "stored $h1 without an audit entry" || return 1
	# killed after the audit entry, before the store's commit: the change is
	# not stored, and the log says so (a "rollback" entry naming it)
	stop_cas || return 1
	VEIL_CAS_FAULT=before_commit start_cas "$d" "$PORT" --threads 1 || return 1
	put_policy full "$h1" crash2 >/dev/null
	wait "$CAS_PID" 2>/dev/null
	CAS_PID=
	start_cas "$d" "$PORT" --threads 1 || return 1
	[ "$(stored_hash full)" = "$h1" ] || die "a change killed before its commit is stored" || return 1
	grep -q "\"event\":\"rollback\",\"namespace\":\"full\",.*\"detail\":\"$h1\"" "$d/audit.log" ||
		die "no rollback entry for the uncommitted change" || return 1
	# a backup's replay of the log ends in the store's state again
	run "$CAS" backup --data "$d" "$WORK/bk-rollback" && ok || return 1
	stop_cas || return 1
	run "$VEIL" audit verify --data "$d" "$d/audit.log" && ok
}

# L1. Before: the log cut after any line, or rewritten without an entry and
# chained again, verified as "chain intact".
t_audit_truncation_detected() {
	local d=$WORK/full/data n
	n=$(wc -l <"$d/audit.log")
	run "$VEIL" audit verify --data "$d" "$d/audit.log" && ok && has "head" || return 1
	cp "$d/audit.log" "$WORK/audit.keep"
	head -n $((n - 2)) "$WORK/audit.keep" >"$d/audit.log"
	run "$VEIL" audit verify "$d/audit.log" && ok # the log alone cannot tell
	run "$VEIL" audit verify --data "$d" "$d/audit.log" && rejected && has "truncated" || return 1
	start_cas "$d" "$PORT" --threads 1 && { stop_cas; die "veil-cas started on a truncated audit log"; return 1; }
	# drop entry 3 and chain the rest again
	python3 - "$WORK/audit.keep" >"$d/audit.log" <<'PYEOF'
import hashlib, re, sys
prev = "0" * 64
lines = [l.rstrip("\n") for l in open(sys.argv[1])]
del lines[2]
for i, l in enumerate(lines):
    body = l[: l.index(',"hash":"')]
    body = re.sub(r'^\{"seq":\d+', '{"seq":%d' % (i + 1), body)
    body = re.sub(r'"prev":"[0-9a-f]{64}"', '"prev":"%s"' % prev, body)
    prev = hashlib.sha256(body.encode()).hexdigest()
    print(body + ',"hash":"%s"}' % prev)
PYEOF
	run "$VEIL" audit verify "$d/audit.log" && ok || return 1
	run "$VEIL" audit verify --data "$d" "$d/audit.log" && rejected || return 1
	cp "$WORK/audit.keep" "$d/audit.log"
}

# M8. Before: a core of veil-cas taken with gcore (as root, which ptrace
# allows even for a non-dumpable process) held the rendered password twice
# after one attestation, and core files were allowed.
t_not_dumpable_no_secret_in_core() {
	local pw n
	start_cas "$WORK/data" "$PORT" --threads 1 || return 1
	python3 -c 'import json,sys; print(json.dumps({"policy": open(sys.argv[1]).read()}))' "$(write_policy canary 0 0)" >"$WORK/c.json"
	as_a -X POST --data-binary @"$WORK/c.json" "$URL/v1/policies" >/dev/null
	$PY attest "$PORT" "$CERT" "$KEY" "$WORK/las.sock" "$KH" canary/app 0 "$WORK/canary.req" >"$WORK/canary.out"
	# the answer is sealed to this client's key (include/veil/sealed.h)
	pw=$(sed -n 2p "$WORK/canary.out" | "$BUILD/tests/sealed_open" "$KEY" "$WORK/canary.req" |
		python3 -c 'import json,sys; print(json.load(sys.stdin)["environment"]["API_PASSWORD"])') ||
		die "no password: $(cat "$WORK/canary.out")" || return 1
	command -v gcore >/dev/null || { echo "    (no gcore: core not checked)"; return 0; }
	# an ASan build reserves terabytes of shadow memory: gcore makes no core
	if grep -q libasan "/proc/$CAS_PID/maps"; then
		echo "    (an ASan build: gcore cannot dump it; core not checked)"
	else
		gcore -o "$WORK/core" "$CAS_PID" >/dev/null 2>&1 || die "gcore failed" || return 1
		n=$(grep -c -a -F "$pw" "$WORK/core.$CAS_PID")
		rm -f "$WORK/core.$CAS_PID"
		echo "    rendered password found $n times in a core"
		[ "$n" = 0 ] || die "the rendered password is in veil-cas's core ($n)" || return 1
	fi
	grep -q "^Max core file size *0 *0" "/proc/$CAS_PID/limits" || die "core files on: $(grep core "/proc/$CAS_PID/limits")"
}

# M8: run as an unprivileged user, veil-cas's /proc files are root's (not
# dumpable), so that user cannot ptrace or read its memory.
t_unprivileged_not_dumpable() {
	local d=$WORK/nobody p=$((PORT + 2)) u
	mkdir -p "$d" && chown nobody "$d" && touch "$WORK/request.log" && chmod 666 "$WORK/request.log" || return 1
	CAS_WRAP="setpriv --reuid=nobody --regid=nogroup --clear-groups" start_cas "$d" "$p" --threads 1 || return 1
	u=$(stat -c %u "/proc/$CAS_PID/mem")
	stop_cas || return 1
	chmod 600 "$WORK/request.log"
	[ "$u" = 0 ] || die "veil-cas is dumpable: /proc/PID/mem belongs to uid $u"
}

# L6. cas.db and audit.log made world-readable in an old 0755 folder
t_file_modes_tightened() {
	local d=$WORK/data
	chmod 755 "$d"; chmod 644 "$d/cas.db" "$d/audit.log"
	start_cas "$d" "$PORT" --threads 1 || return 1
	stop_cas || return 1
	for f in cas.db audit.log master.key; do
		[ "$(stat -c %a "$d/$f")" = 600 ] || die "$f is mode $(stat -c %a "$d/$f")" || return 1
	done
}

# TESTS="t_a t_b" runs only those (after t_setup)
[ -n "${TESTS:-}" ] && { run_in_order attack_cas_robust t_setup $TESTS; exit; }
run_in_order attack_cas_robust t_setup t_fd_limit_flood t_slowloris_disconnected t_cpu_work_off_the_loop \
	t_buffered_bodies_capped t_nocert_flood_audit_bounded t_full_disk_refuses_unaudited \
	t_crash_between_commit_and_audit t_audit_truncation_detected t_not_dumpable_no_secret_in_core \
	t_unprivileged_not_dumpable t_file_modes_tightened

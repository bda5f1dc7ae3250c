#!/usr/bin/env bash
# Recovery shares of the master key (issue 13, item 3; docs/cas.md,
# "Recovery"): a CAS made with three holder keys and threshold 2 serves
# policies and attestations; its master.key is deleted; one opened share is
# refused and nothing is written; two give the key back, checked against the
# commitment; the CAS then serves every policy and the same secret values.
# Shares of another CAS, a changed opened share and a changed share file are
# refused. With the master key in a PKCS#11 token (softhsm2): the shares are
# of a recovery key every data key is also sealed to; a rotation carries the
# copies along; the token is deleted; one share is refused and nothing is
# written; two re-wrap every data key under a new key file and the CAS
# serves the same secrets. A running key-file CAS refuses a master-key
# rotation, saying why. Usage: recovery.sh BUILD_DIR
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
CAS_PID= LAS_PID=
cleanup() {
	for p in $CAS_PID $LAS_PID; do kill -9 "$p" 2>/dev/null && wait "$p" 2>/dev/null; done
	rm -rf "$WORK"
}
trap cleanup EXIT
. "$ROOT/tests/e2e/lib.sh"

A() { VEIL_HOME=$WORK/home-a "$VEIL" "$@"; }
TESTING="--only_for_testing-trust-any --only_for_testing-debug --only_for_testing-ignore-signer"
CERT=$WORK/home-a/identity/cert.pem KEY=$WORK/home-a/identity/key.pem
key_hash_a() { openssl x509 -in "$CERT" -pubkey -noout | openssl pkey -pubin -outform DER | sha256sum | cut -d' ' -f1; }
as_a() { curl -sk --tlsv1.3 --cert "$CERT" --key "$KEY" -o "$WORK/.body" -w '%{http_code}' "$@"; }
HOLDERS=(h1 h2 h3)
NAMESPACES=(rec-a rec-b rec-c)

# start_cas DATA PORT [flags...]: sets CAS_PID
start_cas() {
	local data=$1 port=$2
	shift 2
	stop_cas || return 1
	rm -f "$WORK/cas.out"
	"$CAS" --data "$data" --listen "127.0.0.1:$port" --threads 2 \
		--trust-platform "$LAS_HASH" "$@" >"$WORK/cas.out" 2>"$WORK/cas.err" &
	CAS_PID=$!
	for _ in $(seq 600); do
		grep -q "listening" "$WORK/cas.out" 2>/dev/null && return 0
		kill -0 "$CAS_PID" 2>/dev/null || break
		sleep 0.05
	done
	cat "$WORK/cas.err" >&2
	kill -9 "$CAS_PID" 2>/dev/null
	wait "$CAS_PID" 2>/dev/null
	CAS_PID=
	return 1
}

. "$ROOT/tests/e2e/lib_attest.sh"
# open_share DATA X HOLDER OUT: the opened share X of the CAS in DATA
open_share() {
	"$CAS" recovery-share open --key "$WORK/$3.pem" "$1/recovery/share-$2.json" >"$4" 2>"$WORK/open.err" ||
		die "open share $2 of $1: $(cat "$WORK/open.err")"
}

t_setup() {
	local h
	for h in "${HOLDERS[@]}"; do
		openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$WORK/$h.pem" 2>/dev/null &&
			openssl pkey -in "$WORK/$h.pem" -pubout -out "$WORK/$h.pub" || return 1
	done
	"$LAS" --socket "$WORK/las.sock" --data "$WORK/las" >"$WORK/las.out" 2>&1 &
	LAS_PID=$!
	for _ in $(seq 100); do grep -q "key hash" "$WORK/las.out" && break; sleep 0.05; done
	LAS_HASH=$("$LAS" --print-key-hash --data "$WORK/las") || die "no LAS key hash" || return 1
	build_lasc "$WORK/lasc" || return 1
	export LASC=$WORK/lasc
	PYHASH=$(sha256sum "$WORK/lasc" | cut -d' ' -f1)
}

# --init refuses bad recovery options before it creates anything
t_init_refuses_bad_options() {
	openssl genpkey -algorithm ed25519 -out "$WORK/ed.pem" 2>/dev/null &&
		openssl pkey -in "$WORK/ed.pem" -pubout -out "$WORK/ed.pub" || return 1
	openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-384 -out "$WORK/p384.pem" 2>/dev/null &&
		openssl pkey -in "$WORK/p384.pem" -pubout -out "$WORK/p384.pub" || return 1
	local d=$WORK/bad
	run "$CAS" --data "$d" --init --recovery-threshold 2
	[ "$rc" = 2 ] && has "--recovery-threshold needs the holders' keys" || return 1
	run "$CAS" --data "$d" --init --recovery-key "$WORK/h1.pub" --recovery-key "$WORK/h2.pub" --recovery-threshold 3
	[ "$rc" = 2 ] && has "must be from 2 to the number of --recovery-key holders (2)" || return 1
	run "$CAS" --data "$d" --init --recovery-key "$WORK/h1.pub" --recovery-key "$WORK/ed.pub" --recovery-threshold 2
	[ "$rc" = 2 ] && has "ed.pub: not a P-256 key" || return 1
	run "$CAS" --data "$d" --init --recovery-key "$WORK/h1.pub" --recovery-key "$WORK/p384.pub" --recovery-threshold 2
	[ "$rc" = 2 ] && has "p384.pub: not a P-256 key" || return 1
	run "$CAS" --data "$d" --init --recovery-key "$WORK/h1.pub" --recovery-key "$WORK/h2.pub"
	[ "$rc" = 2 ] && has "--recovery-key needs --recovery-threshold K" || return 1
	run "$CAS" --data "$d" --init --recovery-key "$WORK/h1.pub" --recovery-key "$WORK/h1.pub" --recovery-threshold 2
	[ "$rc" = 2 ] && has "are the same key" || return 1
	[ ! -e "$d" ] || die "$d was created" || return 1
}

# a CAS with 3 holders, K = 2; policies; an attestation per policy
t_init_with_shares_serves() {
	start_cas "$WORK/data" "$PORT" --init --recovery-key "$WORK/h1.pub" \
		--recovery-key "$WORK/h2.pub" --recovery-key "$WORK/h3.pub" --recovery-threshold 2 || return 1
	grep -q "master key split 2 of 3: $WORK/data/recovery/share-1.json" "$WORK/cas.err" ||
		die "no share message: $(cat "$WORK/cas.err")" || return 1
	local x ns
	for x in 1 2 3; do
		[ -f "$WORK/data/recovery/share-$x.json" ] || die "no share-$x.json" || return 1
	done
	CAS_HASH=$("$CAS" --print-key-hash --data "$WORK/data") || return 1
	grep -q "\"cas_key_hash\":\"$CAS_HASH\",\"threshold\":2,\"shares\":3,\"x\":2," "$WORK/data/recovery/share-2.json" ||
		die "share-2.json: $(cat "$WORK/data/recovery/share-2.json")" || return 1
	# the share files hold no share in the clear: open with the wrong key fails
	run "$CAS" recovery-share open --key "$WORK/h2.pem" "$WORK/data/recovery/share-1.json"
	rejected && has "does not open with" || return 1
	A cas attest "$URL" $TESTING >/dev/null || die "attest the CAS" || return 1
	KH=$(key_hash_a)
	for ns in "${NAMESPACES[@]}"; do
		write_policy "$ns"
		[ "$(as_a -X POST --data-binary @"$WORK/$ns.json" "$URL/v1/policies")" = 201 ] ||
			die "create $ns: $(cat "$WORK/.body")" || return 1
		attest_once "$ns/app" >"$WORK/$ns.out"
		password_of "$WORK/$ns.out" >"$WORK/$ns.pw" && [ "$(wc -c <"$WORK/$ns.pw")" -ge 9 ] ||
			die "no password for $ns: $(cat "$WORK/$ns.out")" || return 1
		as_a "$URL/v1/policies/$ns" >/dev/null && cp "$WORK/.body" "$WORK/$ns.body"
	done
	stop_cas
}

# the key is lost: the CAS does not start; holders open their shares
t_lost_key_and_open_shares() {
	cp "$WORK/data/master.key" "$WORK/master.key.orig"
	rm "$WORK/data/master.key"
	run "$CAS" --data "$WORK/data" --listen "127.0.0.1:$PORT"
	rejected && has "master.key is missing" || return 1
	open_share "$WORK/data" 1 h1 "$WORK/s1.txt" || return 1
	open_share "$WORK/data" 3 h3 "$WORK/s3.txt" || return 1
	head -1 "$WORK/s1.txt" | grep -qx "veil-recovery-share 1" || die "s1: $(head -2 "$WORK/s1.txt")" || return 1
	grep -qx "x 3" "$WORK/s3.txt" && grep -qx "threshold 2" "$WORK/s3.txt" || return 1
}

# K - 1 shares: refused, nothing written
t_k_minus_1_refused() {
	run "$CAS" recover --data "$WORK/data" --share "$WORK/s1.txt"
	rejected && has "1 share given; this CAS's master key was split 2 of 3 and needs 2 different shares" || return 1
	[ ! -e "$WORK/data/master.key" ] || die "master.key written from one share" || return 1
	# the same share twice is not two shares
	run "$CAS" recover --data "$WORK/data" --share "$WORK/s1.txt" --share "$WORK/s1.txt"
	rejected && has "are both share 1" || return 1
	[ ! -e "$WORK/data/master.key" ] || die "master.key written from one share twice" || return 1
}

# shares of another CAS (same holders) are refused
t_other_cas_shares_refused() {
	start_cas "$WORK/other" "$((PORT + 1))" --init --recovery-key "$WORK/h1.pub" \
		--recovery-key "$WORK/h2.pub" --recovery-key "$WORK/h3.pub" --recovery-threshold 2 || return 1
	stop_cas || return 1
	open_share "$WORK/other" 2 h2 "$WORK/o2.txt" || return 1
	open_share "$WORK/other" 3 h3 "$WORK/o3.txt" || return 1
	run "$CAS" recover --data "$WORK/data" --share "$WORK/s1.txt" --share "$WORK/o2.txt"
	rejected && has "o2.txt is a share of another CAS" || return 1
	run "$CAS" recover --data "$WORK/data" --share "$WORK/o2.txt" --share "$WORK/o3.txt"
	rejected && has "is a share of another CAS" || return 1
	[ ! -e "$WORK/data/master.key" ] || die "master.key written from another CAS's shares" || return 1
}

# a changed opened share gives another key: the commitment refuses it; a
# changed share file does not open
t_tampered_share_refused() {
	local last
	last=$(sed -n 's/^share \(.*\)$/\1/p' "$WORK/s3.txt")
	case ${last: -1} in 0) last=${last%?}1 ;; *) last=${last%?}0 ;; esac
	sed "s/^share .*/share $last/" "$WORK/s3.txt" >"$WORK/s3-bad.txt"
	run "$CAS" recover --data "$WORK/data" --share "$WORK/s1.txt" --share "$WORK/s3-bad.txt"
	rejected && has "the shares do not give this CAS's master key (the commitment differs)" || return 1
	[ ! -e "$WORK/data/master.key" ] || die "master.key written from a changed share" || return 1
	# the share file: x changed (bound by HPKE's info), the ciphertext changed
	sed 's/"x":2,/"x":3,/' "$WORK/data/recovery/share-2.json" >"$WORK/share-2-x.json"
	run "$CAS" recovery-share open --key "$WORK/h2.pem" "$WORK/share-2-x.json"
	rejected && has "does not open with" || return 1
	local first flip=0
	first=$(sed -n 's/.*"ciphertext":"\(.\).*/\1/p' "$WORK/data/recovery/share-2.json")
	[ "$first" = 0 ] && flip=1 # another first character, whatever it was
	sed "s/\"ciphertext\":\"./\"ciphertext\":\"$flip/" "$WORK/data/recovery/share-2.json" >"$WORK/share-2-ct.json"
	cmp -s "$WORK/share-2-ct.json" "$WORK/data/recovery/share-2.json" && die "no change made" && return 1
	run "$CAS" recovery-share open --key "$WORK/h2.pem" "$WORK/share-2-ct.json"
	rejected && has "does not open with" || return 1
	# not a share file at all
	echo '{"format":"veil-recovery-share","version":1}' >"$WORK/junk.json"
	run "$CAS" recovery-share open --key "$WORK/h2.pem" "$WORK/junk.json"
	rejected && has "not a recovery share: members missing or unknown" || return 1
}

# K shares: the key is back, byte for byte; never over an existing key
t_k_shares_recover() {
	run "$CAS" recover --data "$WORK/data" --share "$WORK/s3.txt" --share "$WORK/s1.txt"
	ok && has "recovered the master key of CAS $CAS_HASH from 2 shares" || return 1
	cmp -s "$WORK/data/master.key" "$WORK/master.key.orig" || die "another key was recovered" || return 1
	[ "$(stat -c %a "$WORK/data/master.key")" = 600 ] || die "master.key is mode $(stat -c %a "$WORK/data/master.key")" || return 1
	run "$CAS" recover --data "$WORK/data" --share "$WORK/s3.txt" --share "$WORK/s1.txt"
	rejected && has "never overwrites" || return 1
	cmp -s "$WORK/data/master.key" "$WORK/master.key.orig" || die "master.key changed" || return 1
}

# the recovered CAS serves every policy and the same secret values
t_recovered_cas_serves_everything() {
	start_cas "$WORK/data" "$PORT" || return 1
	local ns
	for ns in "${NAMESPACES[@]}"; do
		[ "$(as_a "$URL/v1/policies/$ns")" = 200 ] || die "get $ns: $(cat "$WORK/.body")" || return 1
		cmp -s "$WORK/.body" "$WORK/$ns.body" || die "$ns reads differently" || return 1
		attest_once "$ns/app" >"$WORK/$ns.again"
		[ "$(head -c 3 "$WORK/$ns.again")" = 200 ] || die "attest $ns: $(cat "$WORK/$ns.again")" || return 1
		[ "$(password_of "$WORK/$ns.again")" = "$(cat "$WORK/$ns.pw")" ] || die "$ns: another password" || return 1
	done
	# a key-file master key is not rotated (running or not): refused, said why
	run "$CAS" rotate-master-key --data "$WORK/data"
	rejected && has "rotation is for a PKCS#11 master key; this CAS's master key is a key file" || return 1
	stop_cas
}

# the recover command's usage errors
t_usage_errors() {
	run "$CAS" recover --share "$WORK/s1.txt"
	[ "$rc" = 2 ] && has "--data DIR is required" || return 1
	run "$CAS" recover --data "$WORK/data"
	[ "$rc" = 2 ] && has "--share FILE is required" || return 1
	run "$CAS" recovery-share open "$WORK/data/recovery/share-1.json"
	[ "$rc" = 2 ] && has "--key HOLDER.pem is required" || return 1
	run "$CAS" recovery-share close
	[ "$rc" = 2 ] && has "expected 'open'" || return 1
	# a folder without a CAS: no identity to check the shares against
	mkdir -p "$WORK/empty"
	run "$CAS" recover --data "$WORK/empty" --share "$WORK/s1.txt" --share "$WORK/s3.txt"
	rejected && has "cannot read the CAS certificate" || return 1
	[ ! -e "$WORK/empty/master.key" ] || return 1
}

# ---- a CAS whose master key is in a PKCS#11 token (softhsm2) ----

MODULE=${VEIL_TEST_PKCS11_MODULE:-/usr/lib/softhsm/libsofthsm2.so}
TOKNS=(tok-a tok-b tok-c)
wrapped_sizes() { sqlite3 "$WORK/tdata/cas.db" "SELECT DISTINCT length(wrapped_key) || ':' || substr(hex(wrapped_key),1,16) FROM policies"; }
t_token_setup() {
	[ -e "$MODULE" ] && command -v softhsm2-util >/dev/null ||
		die "softhsm2 is not installed (scripts/setup.sh --test installs it)" || return 1
	mkdir -p "$WORK/tokens"
	printf 'directories.tokendir = %s/tokens\nobjectstore.backend = file\nlog.level = ERROR\n' \
		"$WORK" >"$WORK/softhsm2.conf"
	export SOFTHSM2_CONF=$WORK/softhsm2.conf
	softhsm2-util --init-token --free --label veil-rec --pin 4711 --so-pin 5678 >/dev/null || return 1
	echo 4711 >"$WORK/pin"
	chmod 600 "$WORK/pin"
}

# --init with the token and 3 holders, K = 2: a recovery key is split, its
# public key recorded; every data key carries a copy sealed to it (181-byte
# wrapped keys), also after an online rotation and for a key made after it
t_token_init_with_recovery() {
	start_cas "$WORK/tdata" "$PORT" --init --master-key "pkcs11:token=veil-rec;object=rec-master" \
		--pin-file "$WORK/pin" --recovery-key "$WORK/h1.pub" --recovery-key "$WORK/h2.pub" \
		--recovery-key "$WORK/h3.pub" --recovery-threshold 2 || return 1
	grep -q "the token's recovery key split 2 of 3: $WORK/tdata/recovery/share-1.json" "$WORK/cas.err" ||
		die "no share message: $(cat "$WORK/cas.err")" || return 1
	grep -qE "^recovery-key 04[0-9a-f]{128}$" "$WORK/tdata/master.key" &&
		grep -qE "^code-root-recovery [0-9a-f]{226}$" "$WORK/tdata/master.key" ||
		die "master.key: $(cat "$WORK/tdata/master.key")" || return 1
	A cas attest "$URL" $TESTING >/dev/null || die "attest the CAS" || return 1
	TCAS_HASH=$("$CAS" --print-key-hash --data "$WORK/tdata") || return 1
	local ns
	for ns in tok-a tok-b; do
		write_policy "$ns"
		[ "$(as_a -X POST --data-binary @"$WORK/$ns.json" "$URL/v1/policies")" = 201 ] ||
			die "create $ns: $(cat "$WORK/.body")" || return 1
	done
	[ "$(wrapped_sizes)" = "181:564B010200000001" ] || die "wrapped keys: $(wrapped_sizes)" || return 1
	run "$CAS" rotate-master-key --data "$WORK/tdata" --pin-file "$WORK/pin"
	ok || return 1
	write_policy tok-c
	[ "$(as_a -X POST --data-binary @"$WORK/tok-c.json" "$URL/v1/policies")" = 201 ] ||
		die "create tok-c: $(cat "$WORK/.body")" || return 1
	[ "$(wrapped_sizes)" = "181:564B010200000002" ] || die "wrapped keys after the rotation: $(wrapped_sizes)" || return 1
	for ns in "${TOKNS[@]}"; do
		attest_once "$ns/app" >"$WORK/$ns.out"
		password_of "$WORK/$ns.out" >"$WORK/$ns.pw" && [ "$(wc -c <"$WORK/$ns.pw")" -ge 9 ] ||
			die "no password for $ns: $(cat "$WORK/$ns.out")" || return 1
	done
	stop_cas
}

# the token is gone: the CAS does not start; one share is refused and
# nothing is written
t_token_gone_k_minus_1_refused() {
	softhsm2-util --delete-token --token veil-rec >/dev/null || return 1
	run "$CAS" --data "$WORK/tdata" --listen "127.0.0.1:$PORT" --pin-file "$WORK/pin"
	rejected && has "PKCS#11 token 'veil-rec' not found" || return 1
	open_share "$WORK/tdata" 1 h1 "$WORK/t1.txt" || return 1
	open_share "$WORK/tdata" 2 h2 "$WORK/t2.txt" || return 1
	sha256sum "$WORK/tdata/master.key" "$WORK/tdata/cas.db" >"$WORK/tdata.sums"
	run "$CAS" recover --data "$WORK/tdata" --share "$WORK/t2.txt"
	rejected && has "1 share given; this CAS's master key was split 2 of 3 and needs 2 different shares" || return 1
	sha256sum -c --quiet "$WORK/tdata.sums" || die "recover wrote something from one share" || return 1
	# shares of the key-file CAS do not fit this one
	run "$CAS" recover --data "$WORK/tdata" --share "$WORK/s1.txt" --share "$WORK/s3.txt"
	rejected && has "is a share of another CAS" || return 1
	sha256sum -c --quiet "$WORK/tdata.sums" || die "recover wrote something from another CAS's shares" || return 1
}

# The recovery copy is sealed to a public key, so whoever writes the store
# could put another data key there: recover checks each row's payload opens
# with the key its copy gives before it writes anything. Here a payload that
# does not open (changed) stops it; nothing is written.
t_token_payload_must_open() {
	local ns=${TOKNS[0]}
	sqlite3 "$WORK/tdata/cas.db" "SELECT hex(blob) FROM policies WHERE namespace = '$ns'" >"$WORK/blob.hex" || return 1
	sqlite3 "$WORK/tdata/cas.db" "UPDATE policies SET blob = zeroblob(length(blob)) WHERE namespace = '$ns'" || return 1
	sha256sum "$WORK/tdata/master.key" "$WORK/tdata/cas.db" >"$WORK/tdata.sums"
	run "$CAS" recover --data "$WORK/tdata" --share "$WORK/t1.txt" --share "$WORK/t2.txt"
	rejected && has "namespace $ns: the data key its recovery copy gives does not open its stored policy" &&
		has "nothing written" || return 1
	sha256sum -c --quiet "$WORK/tdata.sums" || die "recover wrote something" || return 1
	sqlite3 "$WORK/tdata/cas.db" "UPDATE policies SET blob = X'$(cat "$WORK/blob.hex")' WHERE namespace = '$ns'"
}

# two shares: every data key re-wrapped from its copy under a new key file;
# the CAS starts without the token and serves the same secrets
t_token_k_shares_recover() {
	run "$CAS" recover --data "$WORK/tdata" --share "$WORK/t1.txt" --share "$WORK/t2.txt"
	ok && has "recovered CAS $TCAS_HASH from 2 shares: its token's recovery key re-wrapped 3 data keys under a new key file" || return 1
	echo "    $out"
	[ "$(stat -c %s:%a "$WORK/tdata/master.key")" = 32:600 ] || die "master.key: $(stat -c %s:%a "$WORK/tdata/master.key")" || return 1
	[ "$(sqlite3 "$WORK/tdata/cas.db" "SELECT DISTINCT length(wrapped_key) FROM policies")" = 60 ] ||
		die "wrapped keys: $(wrapped_sizes)" || return 1
	grep '"event":"recover"' "$WORK/tdata/audit.log" |
		grep -q '"status":200,"detail":"pkcs11 recovery key from 2 shares: 3 data keys re-wrapped under a new key file"'  || die "no audit entry: $(tail -2 "$WORK/tdata/audit.log")" || return 1
	start_cas "$WORK/tdata" "$PORT" || return 1
	local ns
	for ns in "${TOKNS[@]}"; do
		attest_once "$ns/app" >"$WORK/$ns.again"
		[ "$(head -c 3 "$WORK/$ns.again")" = 200 ] || die "attest $ns: $(cat "$WORK/$ns.again")" || return 1
		[ "$(password_of "$WORK/$ns.again")" = "$(cat "$WORK/$ns.pw")" ] || die "$ns: another password" || return 1
	done
	stop_cas
}

[ -n "${TESTS:-}" ] && { run_in_order recovery t_setup $TESTS; exit; }
run_in_order recovery t_setup t_init_refuses_bad_options t_init_with_shares_serves \
	t_lost_key_and_open_shares t_k_minus_1_refused t_other_cas_shares_refused \
	t_tampered_share_refused t_k_shares_recover t_recovered_cas_serves_everything t_usage_errors \
	t_token_setup t_token_init_with_recovery t_token_gone_k_minus_1_refused t_token_payload_must_open \
	t_token_k_shares_recover

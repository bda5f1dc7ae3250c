#!/usr/bin/env bash
# Encrypted code (issue 10 item 3; docs/images.md, "Encrypted files"): the
# seed's service with build.encrypt: [print_env.py], built against veil-cas on
# loopback (the code key is the CAS's) and pushed to Debian's docker-registry
# on loopback. Its plaintext appears nowhere in the image's layers, target/,
# the registry's storage or the node's file system while it runs; the program
# runs after attestation; with the encryption removed from the policy, or
# under another owner's policy naming the same key id, it does not. The code
# key never appears in a log, the record, the policy or the image. Root
# (mount namespaces, /python). Usage: encrypt.sh BUILD_DIR
set -u
BUILD=$(realpath "$1")
VEIL=$BUILD/veil
ROOT=${VEIL_SOURCE_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
SEED=$ROOT/examples/python-hello-user
WORK=$(mktemp -d)
chmod 755 "$WORK"
PORT=$((20000 + RANDOM % 20000))
URL=https://127.0.0.1:$PORT
TESTING="--only_for_testing-trust-any --only_for_testing-debug --only_for_testing-ignore-signer"
export VEIL_RUNTIME=$BUILD/veil-run VEIL_BASE=scratch
unset SOURCE_DATE_EPOCH VEIL_IMAGE_ROOT VEIL_CAS
NAME=python_hello_user
OCI=target/images/$NAME/oci
# a line of the program's source that must never be seen outside memory
MARKER="plaintext-marker-$RANDOM$RANDOM-of-the-encrypted-code"
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

A() { VEIL_HOME=$WORK/home-a "$VEIL" "$@"; }
B() { VEIL_HOME=$WORK/home-b "$VEIL" "$@"; }
# POST /v1/code-keys as identity $1 (a or b, or "none") with body $2
code_key() {
	local who=$1 body=$2 cert=()
	[ "$who" != none ] && cert=(--cert "$WORK/home-$who/identity/cert.pem" --key "$WORK/home-$who/identity/key.pem")
	curl -sk --tlsv1.3 "${cert[@]}" -o "$WORK/.body" -w '%{http_code}' -X POST --data "$body" "$URL/v1/code-keys"
}
free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
# veil-run as a pod would run it: /python is the unpacked image's, the
# image check pointed at the unpacked image; output in $WORK/run.out/.err
start_service() { # CONFIG_ID
	unshare -m --propagation private bash -c '
		mount --bind "$1" /python || exit 97
		shift
		exec env -i "$@"' _ "$WORK/img/python" \
		SCONE_CONFIG_ID="$1" SCONE_CAS_ADDR=127.0.0.1:$PORT \
		SCONE_LAS_ADDR="$WORK/las.sock" VEIL_CAS_KEY="$CAS_KEY" SCONE_LOG=info \
		VEIL_IMAGE_ROOT="$WORK/img" "$BUILD/veil-run" >"$WORK/run.out" 2>"$WORK/run.err"
}
# every file under $@ (a gzip file also decompressed: the layers' blobs)
# that holds $MARKER, one per line
holds_marker() {
	/usr/bin/python3 - "$MARKER" "$@" <<'PY'
import gzip, os, sys, zlib
marker = sys.argv[1].encode()
def holds(path):
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return False
    if marker in data:
        return True
    if data[:2] == b"\x1f\x8b":
        try:
            return marker in gzip.decompress(data)
        except (OSError, EOFError, zlib.error):
            return False
    return False
for top in sys.argv[2:]:
    if os.path.isfile(top):
        if holds(top):
            print(top)
        continue
    for d, _, files in os.walk(top):
        for n in files:
            p = os.path.join(d, n)
            if os.path.isfile(p) and not os.path.islink(p) and holds(p):
                print(p)
PY
}

t_setup() {
	[ "$(id -u)" = 0 ] || die "needs root for the mount namespace" || return 1
	command -v docker-registry >/dev/null || die "docker-registry is missing (scripts/setup.sh --test)" || return 1
	if [ ! -d /python ]; then mkdir /python && made_python=1; fi
	"$BUILD/veil-las" --socket "$WORK/las.sock" --data "$WORK/las" >"$WORK/las.out" 2>"$WORK/las.err" &
	pids+=($!)
	wait_for "$WORK/las.out" "platform key hash" || die "veil-las did not start" || return 1
	"$BUILD/veil-cas" --init --data "$WORK/cas" --listen "127.0.0.1:$PORT" --threads 2 \
		--trust-platform "$("$BUILD/veil-las" --print-key-hash --data "$WORK/las")" >"$WORK/cas.out" 2>"$WORK/cas.err" &
	pids+=($!)
	wait_for "$WORK/cas.out" "key hash" || die "veil-cas did not start" || return 1
	CAS_KEY=$("$BUILD/veil-cas" --print-key-hash --data "$WORK/cas")
	RP=$(free_port)
	R=127.0.0.1:$RP
	mkdir -p "$WORK/reg"
	printf '%s\n' "version: 0.1" "log: {level: info, formatter: text}" \
		"storage: {filesystem: {rootdirectory: $WORK/reg}}" "http: {addr: $R, secret: test}" >"$WORK/reg.yml"
	docker-registry serve "$WORK/reg.yml" >"$WORK/reg.log" 2>&1 &
	pids+=($!)
	wait_for "$WORK/reg.log" "listening on" || die "docker-registry did not start: $(cat "$WORK/reg.log")" || return 1
	A cas attest "$URL" $TESTING >/dev/null && B cas attest "$URL" $TESTING >/dev/null || die "cannot attest the CAS" || return 1
	# the seed, its program marked and holding until $WORK/go exists (so
	# the node's file system can be searched while it runs)
	mkdir -p "$WORK/app" && cp "$SEED/service.yaml" "$SEED/Meshfile" "$WORK/app/" || return 1
	{
		cat "$SEED/print_env.py"
		echo "# $MARKER"
		echo "import time"
		echo "while not os.path.exists('$WORK/go'):"
		echo "    time.sleep(0.02)"
	} >"$WORK/app/print_env.py"
	sed -i 's/^  copy:/  encrypt: [print_env.py]\n  copy:/' "$WORK/app/service.yaml"
	grep -q "encrypt: \[print_env.py\]" "$WORK/app/service.yaml" || die "cannot mark print_env.py encrypted" || return 1
	cd "$WORK/app" || return 1
	run A apply -f service.yaml --cas "$URL" --insecure-registry "$R" \
		--registry-mirror "registry.scontain.com:5050=$R" && ok || return 1
	has "encrypted      1 file (code key " && has "pushed" || return 1
	KEY_ID=$(sed -n 's/^  key_id: \([0-9a-f]\{32\}\)$/\1/p' target/images/$NAME/measurement.yaml)
	[ ${#KEY_ID} = 32 ] || die "measurement.yaml names no key id" || return 1
	DIGEST=$(sed -n 's/^  image digest   //p' <<<"$out")
	"$ROOT/scripts/unpack-image.sh" "$OCI" "$WORK/img" >/dev/null 2>&1 || die "cannot unpack the image" || return 1
	run A apply -f Meshfile --mode debug --cas "$URL" && ok && has "created namespace myPythonApp" || return 1
	grep -q "key_id: $KEY_ID" target/policies/myPythonApp.yaml || die "the policy lacks the key id" || return 1
	# the code key itself, as the owner's builder gets it (for the leak checks)
	[ "$(code_key a "{\"key_id\":\"$KEY_ID\"}")" = 200 ] || die "the owner cannot get the code key: $(cat "$WORK/.body")" || return 1
	KEY=$(jq -r .key "$WORK/.body")
	rm -f "$WORK/.body"
	[ ${#KEY} = 64 ] || die "no code key" || return 1
}

t_image_and_target_hold_ciphertext_only() {
	cd "$WORK/app" || return 1
	[ "$(head -c 8 "$WORK/img/python/print_env.py")" = VEILENC1 ] || die "the image's print_env.py is not encrypted" || return 1
	local hits
	hits=$(holds_marker "$WORK/app/target" "$WORK/img")
	[ -z "$hits" ] || die "plaintext found in: $hits" || return 1
	# the layers' blobs, decompressed, are checked above (gzip members); make
	# sure the check sees plaintext where it is: the source folder has it
	[ -n "$(holds_marker "$WORK/app/print_env.py")" ] || die "the search misses the plaintext" || return 1
}

t_registry_holds_ciphertext_only() {
	local hits n
	n=$(find "$WORK/reg" -path '*/blobs/*/data' | wc -l)
	[ "$n" -ge 3 ] || die "the registry holds $n blobs" || return 1
	hits=$(holds_marker "$WORK/reg")
	[ -z "$hits" ] || die "plaintext in the registry's storage: $hits" || return 1
	# what a node pulls is the same image
	skopeo inspect --tls-verify=false "docker://$R/cicd/python_hello_user:latest" >"$WORK/inspect.json" 2>&1 ||
		die "skopeo inspect: $(cat "$WORK/inspect.json")" || return 1
	[ "$(jq -r .Digest "$WORK/inspect.json")" = "$DIGEST" ] || die "the registry's digest is not $DIGEST" || return 1
}

t_runs_after_attestation_plaintext_in_memory_only() {
	rm -f "$WORK/go"
	start_service myPythonApp/pythonapp &
	local pid=$! i
	for i in $(seq 200); do grep -q "exec /usr/bin/python3" "$WORK/run.err" 2>/dev/null && break; sleep 0.05; done
	grep -q "1 encrypted file decrypted into memory" "$WORK/run.err" || { touch "$WORK/go"; wait $pid; die "not decrypted: $(cat "$WORK/run.err")"; return 1; }
	sleep 0.3 # python is reading its script now
	# the node's file systems while the program runs (the source folder, on
	# the build machine, is the only place that may hold the plaintext)
	local hits
	hits=$(holds_marker "$WORK" /tmp /var/tmp /dev/shm /run /python | grep -v "^$WORK/app/print_env.py$")
	touch "$WORK/go"
	wait $pid
	rc=$?
	[ -z "$hits" ] || die "plaintext on the node while it runs: $hits" || return 1
	[ "$rc" = 0 ] || die "veil-run exited $rc: $(cat "$WORK/run.err")" || return 1
	grep -qx "API_USER = myself" "$WORK/run.out" && grep -qx "API_PASSWORD is set (10 characters)" "$WORK/run.out" ||
		die "the program did not run: $(cat "$WORK/run.out" "$WORK/run.err")" || return 1
}

t_code_key_never_written() {
	cd "$WORK/app" || return 1
	local f hits=
	for f in $(find "$WORK" -type f ! -name '.body' 2>/dev/null); do
		grep -qaF "$KEY" "$f" && hits="$hits $f"
	done
	[ -z "$hits" ] || die "the code key is in:$hits" || return 1
	grep -q '"event":"code-key"' "$WORK/cas/audit.log" || die "the code key's release is not audited" || return 1
}

t_rebuild_same_key_same_digest() {
	cd "$WORK/app" || return 1
	run A apply -f service.yaml --cas "$URL" --no-push && ok || return 1
	has "code key $KEY_ID" && has "image digest   $DIGEST" || die "a rebuild changed the key or digest: $out" || return 1
	run A apply -f service.yaml --cas "$URL" --no-push -o json && ok || return 1
	[ "$(jq -r '.items[0].encryption.key_id' <<<"$out")" = "$KEY_ID" ] &&
		[ "$(jq -c '.items[0].encryption.files' <<<"$out")" = '["/python/print_env.py"]' ] &&
		[ "$(jq -r '.items[0].digest' <<<"$out")" = "$DIGEST" ] || die "-o json: $out" || return 1
}

t_code_key_endpoint_refusals() {
	[ "$(code_key none '{}')" = 403 ] || die "a client without a certificate got a code key" || return 1
	[ "$(code_key a '{"key_id":"XYZ"}')" = 400 ] || die "a malformed key id was accepted" || return 1
	[ "$(code_key a '{"key_id":"'"$KEY_ID"'","more":1}')" = 400 ] || die "an unknown field was accepted" || return 1
	[ "$(code_key a 'not json')" = 400 ] || die "junk was accepted" || return 1
	local got
	got=$(curl -sk --tlsv1.3 --cert "$WORK/home-a/identity/cert.pem" --key "$WORK/home-a/identity/key.pem" \
		-o /dev/null -w '%{http_code}' "$URL/v1/code-keys")
	[ "$got" = 405 ] || die "GET /v1/code-keys answered $got" || return 1
	# another client asking for the same id gets another key
	[ "$(code_key b "{\"key_id\":\"$KEY_ID\"}")" = 200 ] || return 1
	[ "$(jq -r .key "$WORK/.body")" != "$KEY" ] || die "another owner got the same code key" || return 1
	rm -f "$WORK/.body"
}

# the CAS caches a policy per thread: a second start of the same policy (a
# pod's restart) gets the key too (it got 500 before the cache kept the owner)
t_second_start_same_policy() {
	touch "$WORK/go"
	local i
	for i in 1 2 3; do
		start_service myPythonApp/pythonapp || die "start $i: $(cat "$WORK/run.err")" || return 1
		grep -qx "API_USER = myself" "$WORK/run.out" || die "start $i did not run" || return 1
	done
}

# whoever may change the policy could have the code decrypted for a program
# of theirs: a policy with encrypted files is writable by its creator only,
# and names a measured image
t_encryption_needs_creator_only_policy() {
	cd "$WORK/app" || return 1
	local bhash
	bhash=$(B whoami | sed -n 's/^identity  *\([0-9a-f]\{64\}\).*/\1/p')
	[ ${#bhash} = 64 ] || bhash=$(B whoami -o json | jq -r .identity)
	[ ${#bhash} = 64 ] || die "no identity for B" || return 1
	A policy get myPythonApp >"$WORK/p.yaml" || return 1
	awk -v b="$bhash" '{print} /^  update:$/ {print "    - " b}' "$WORK/p.yaml" >"$WORK/deleg.yaml"
	grep -q -- "- $bhash" "$WORK/deleg.yaml" || die "cannot add B to update" || return 1
	run A policy update "$WORK/deleg.yaml" && rejected &&
		has "access_policy.update must be [CREATOR] or [NONE]" || return 1
	grep -v "^    image_root: " "$WORK/p.yaml" >"$WORK/noroot.yaml"
	run A policy update "$WORK/noroot.yaml" && rejected && has "has encrypted files but no image_root" || return 1
	# the policy in force is unchanged: it still starts
	touch "$WORK/go"
	start_service myPythonApp/pythonapp && grep -qx "API_USER = myself" "$WORK/run.out" ||
		die "the policy changed: $(cat "$WORK/run.err")" || return 1
}

# plaintext only into veil-run's own mount namespace: without CAP_SYS_ADMIN
# (a policy tolerating unpinned files) the start is refused, nothing written
t_no_private_namespace_refused() {
	cd "$WORK/app" || return 1
	A policy get myPythonApp >"$WORK/p.yaml" || return 1
	awk '{print} /^      - debug-mode$/ {print "      - insecure-unpinned-files"}' "$WORK/p.yaml" >"$WORK/unpinned.yaml"
	run A policy update "$WORK/unpinned.yaml" && ok || return 1
	touch "$WORK/go"
	unshare -m --propagation private bash -c '
		mount --bind "$1" /python || exit 97
		shift
		exec setpriv --inh-caps=-sys_admin --bounding-set=-sys_admin env -i "$@"' _ "$WORK/img/python" \
		SCONE_CONFIG_ID=myPythonApp/pythonapp SCONE_CAS_ADDR=127.0.0.1:$PORT \
		SCONE_LAS_ADDR="$WORK/las.sock" VEIL_CAS_KEY="$CAS_KEY" SCONE_LOG=info \
		VEIL_IMAGE_ROOT="$WORK/img" "$BUILD/veil-run" >"$WORK/run.out" 2>"$WORK/run.err"
	rc=$?
	[ "$rc" != 0 ] || die "started without a private mount namespace" || return 1
	grep -q "encrypted files need veil-run's private mount namespace" "$WORK/run.err" ||
		die "no refusal: $(cat "$WORK/run.err")" || return 1
	[ -z "$(holds_marker "$WORK/img" /python)" ] || die "plaintext written" || return 1
}

# B copies A's policy (the key id included) into a namespace of its own: the
# CAS derives B's key, which does not open A's code
t_other_owner_same_key_id_refused() {
	cd "$WORK/app" || return 1
	sed 's/^name: myPythonApp$/name: stolenApp/' target/policies/myPythonApp.yaml >"$WORK/stolen.yaml"
	run B policy create "$WORK/stolen.yaml" && ok || return 1
	touch "$WORK/go"
	start_service stolenApp/pythonapp
	rc=$?
	[ "$rc" != 0 ] || die "veil-run started under another owner's policy" || return 1
	grep -q "/python/print_env.py does not decrypt" "$WORK/run.err" || die "no decryption refusal: $(cat "$WORK/run.err")" || return 1
	! grep -q "API_USER" "$WORK/run.out" || die "the program ran" || return 1
	! grep -qaF "$MARKER" "$WORK/run.err" || die "plaintext in the refusal" || return 1
}

# the owner removes the encryption block: veil-run gets no key, the program
# gets ciphertext and does not run
t_key_removed_from_policy_does_not_run() {
	cd "$WORK/app" || return 1
	A policy get myPythonApp >"$WORK/p.yaml" || die "policy get failed" || return 1
	awk '/^    encryption:$/ {skip=1; next} skip && /^      / {next} {skip=0; print}' "$WORK/p.yaml" >"$WORK/p2.yaml"
	! grep -q "key_id" "$WORK/p2.yaml" || die "the key id is still there" || return 1
	run A policy update "$WORK/p2.yaml" && ok || return 1
	touch "$WORK/go"
	start_service myPythonApp/pythonapp
	rc=$?
	[ "$rc" != 0 ] || die "the program ran without the code key: $(cat "$WORK/run.out")" || return 1
	! grep -q "API_USER" "$WORK/run.out" || die "the program printed: $(cat "$WORK/run.out")" || return 1
	! grep -q "decrypted into memory" "$WORK/run.err" || die "decrypted without a key" || return 1
}

# clear refusals, nothing written: a glob outside pwd, one that matches no
# copy file, no CAS to get the key from; a policy whose encryption block is
# malformed
t_refusals() {
	mkdir -p "$WORK/bad" && cp "$WORK/app/service.yaml" "$WORK/app/print_env.py" "$WORK/bad/" && cd "$WORK/bad" || return 1
	sed -i 's/encrypt: \[print_env.py\]/encrypt: [..\/x]/' service.yaml
	run A apply -f service.yaml --cas "$URL" --no-push && [ "$rc" = 1 ] || die "expected exit 1, got $rc" || return 1
	has "build: encrypt '../x' must be a glob relative to pwd" || return 1
	sed -i 's/encrypt: \[..\/x\]/encrypt: ["*.py", "nothing*"]/' service.yaml
	run A apply -f service.yaml --cas "$URL" --no-push && rejected && has "build: encrypt 'nothing*' matches none of the copy files" || return 1
	[ ! -e target/images/$NAME/measurement.yaml ] || die "a refused build wrote a record" || return 1
	sed -i 's/encrypt: \["\*.py", "nothing\*"\]/encrypt: ["*.py"]/' service.yaml
	run env VEIL_HOME="$WORK/home-none" "$VEIL" apply -f service.yaml --no-push && rejected &&
		has "build.encrypt needs the CAS that makes the code key" || return 1
	[ -z "$(holds_marker "$WORK/bad/target" 2>/dev/null)" ] || die "plaintext written by a refused build" || return 1
	# veil-run holds the encrypted files in memory: 64 MiB in total
	head -c $((40 << 20)) /dev/zero >big1.bin && head -c $((40 << 20)) /dev/zero >big2.bin || return 1
	sed -i 's/^    - print_env.py$/    - print_env.py\n    - big1.bin\n    - big2.bin/; s/encrypt: \["\*.py"\]/encrypt: ["*.py", "*.bin"]/' service.yaml
	run A apply -f service.yaml --cas "$URL" --no-push && [ "$rc" = 1 ] &&
		has "the encrypted files and injection files exceed 64 MiB or 256 files in total" || die "got $rc: $err" || return 1
	rm -f big1.bin big2.bin
	cd "$WORK/app" || return 1
	sed -e 's/^name: myPythonApp$/name: badEnc/' -e "s/key_id: $KEY_ID/key_id: XYZ/" target/policies/myPythonApp.yaml >"$WORK/bad1.yaml"
	run A policy create "$WORK/bad1.yaml" && rejected && has "encryption key_id must be 32 lower-case hex digits" || return 1
	sed -e 's/^name: myPythonApp$/name: badEnc/' -e 's|^        - /python/print_env.py$|        - /etc/passwd|' target/policies/myPythonApp.yaml >"$WORK/bad2.yaml"
	run A policy create "$WORK/bad2.yaml" && rejected && has "encrypted file '/etc/passwd' must be an absolute path under pwd /python" || return 1
}

run_in_order encrypt t_setup t_image_and_target_hold_ciphertext_only t_registry_holds_ciphertext_only \
	t_runs_after_attestation_plaintext_in_memory_only t_second_start_same_policy t_code_key_never_written \
	t_rebuild_same_key_same_digest t_code_key_endpoint_refusals t_other_owner_same_key_id_refused \
	t_encryption_needs_creator_only_policy t_no_private_namespace_refused \
	t_key_removed_from_policy_does_not_run t_refusals

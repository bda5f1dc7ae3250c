#!/usr/bin/env bash
# End-to-end tests of veil-cas and the CLI's CAS commands, on loopback.
# Every server is started here and stopped by PID. Usage: cas.sh BUILD_DIR
set -u
BUILD=$(realpath "$1")
VEIL=$BUILD/veil
CAS=$BUILD/veil-cas
ROOT=${VEIL_SOURCE_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
SEED=$ROOT/examples/python-hello-user
# veil apply builds each service's image too; with no registry here its base is
# "scratch" (veil's layers alone: docs/images.md)
export VEIL_BASE=scratch
WORK=$(mktemp -d)
PORT=$((20000 + RANDOM % 20000))
URL=https://127.0.0.1:$PORT
CAS_PID=
cleanup() {
	[ -n "$CAS_PID" ] && kill -9 "$CAS_PID" 2>/dev/null
	rm -rf "$WORK"
}
trap cleanup EXIT

. "$ROOT/tests/e2e/lib.sh"

start_cas() { # data dir (a new CAS there unless it holds one)
	local init=
	[ -e "$1/master.key" ] || init=--init
	# a previous instance's "listening" must not count as this one's
	rm -f "$WORK/cas.out"
	"$CAS" --data "$1" $init --listen "127.0.0.1:$PORT" --threads 2 --log-file "$WORK/request.log" \
		${CAS_FLAGS:-} >"$WORK/cas.out" 2>"$WORK/cas.err" &
	CAS_PID=$!
	# up to 30 s: an ASan build on a loaded 2-core machine took over 5 s once
	for _ in $(seq 600); do
		grep -q "listening" "$WORK/cas.out" 2>/dev/null && return 0
		kill -0 "$CAS_PID" 2>/dev/null || break
		sleep 0.05
	done
	cat "$WORK/cas.err" >&2
	return 1
}
stop_cas() {
	[ -n "$CAS_PID" ] || return 0
	kill -TERM "$CAS_PID"
	wait "$CAS_PID"
	local r=$?
	[ "$r" -eq 0 ] || echo "    veil-cas $CAS_PID exited $r: $(tail -3 "$WORK/cas.err")" >&2
	CAS_PID=
	return $r
}
# clients: A (owner), B (another identity)
A() { VEIL_HOME=$WORK/home-a "$VEIL" "$@"; }
B() { VEIL_HOME=$WORK/home-b "$VEIL" "$@"; }
TESTING="--only_for_testing-trust-any --only_for_testing-debug --only_for_testing-ignore-signer"
key_of() { openssl x509 -in "$WORK/home-$1/identity/cert.pem" -pubkey -noout |
	openssl pkey -pubin -outform DER | sha256sum | cut -d' ' -f1; }
# raw HTTPS as a client without a certificate, or with A's
nocert() { curl -sk --tlsv1.3 -o "$WORK/.body" -w '%{http_code}' "$@"; }
as_a() { curl -sk --tlsv1.3 --cert "$WORK/home-a/identity/cert.pem" --key "$WORK/home-a/identity/key.pem" \
	-o "$WORK/.body" -w '%{http_code}' "$@"; }
as_b() { curl -sk --tlsv1.3 --cert "$WORK/home-b/identity/cert.pem" --key "$WORK/home-b/identity/key.pem" \
	-o "$WORK/.body" -w '%{http_code}' "$@"; }
# the project version, from meson.build only
VERSION=$(sed -n "s/^  version : '\([^']*\)',$/\1/p" "$ROOT/meson.build")

# a policy file for namespace NS with optional access lists and predecessor
policy() { # ns read update [predecessor] [extra-env]
	{
		echo "name: $1"
		echo 'version: "0.3"'
		echo "access_policy:"
		echo "  read: [$2]"
		echo "  update: [$3]"
		[ -n "${4:-}" ] && echo "predecessor: $4"
		echo "services:"
		echo "  - name: app"
		echo "    command: python3 print_env.py"
		echo "    pwd: /python"
		echo "    mrenclaves: [$(printf 'a%.0s' $(seq 64))]"
		echo "    environment:"
		echo "      API_PASSWORD: \"\$\$SCONE::password\$\$\""
		echo "      ROUND: \"${5:-0}\""
		echo "secrets:"
		echo "  - name: password"
		echo "    kind: ascii"
		echo "    size: 10"
	} >"$WORK/$1.yaml"
	echo "$WORK/$1.yaml"
}
hash_of() { A policy get "$1" >/dev/null 2>&1 && A policy list | awk -v n="$1" '$1 == n {print $2}'; }

# ---- scenarios (run in order; they share one CAS) ----
t_start() {
	start_cas "$WORK/data" || die "veil-cas did not start" || return 1
	grep -q "veil-cas key hash [0-9a-f]\{64\}" "$WORK/cas.out" || die "no key hash printed"
}

t_help() {
	run "$CAS" --help && ok && has "Usage: veil-cas" || return 1
	run "$CAS" && [ "$rc" -eq 2 ] && [ "$err" = "error: --data DIR is required
See 'veil-cas --help'." ] || die "no --data: $rc $err" || return 1
	run "$VEIL" policy --help && ok && has "Usage: veil policy" || return 1
	run "$VEIL" cas --help && ok && has "attest" || return 1
	run "$VEIL" cas attest --help && ok && has "only_for_testing-debug" || return 1
	run "$VEIL" audit --help && ok && has "verify" || return 1
	# used to open a file named --help
	run "$VEIL" audit verify --help && ok && has "Usage: veil audit verify" || return 1
	run "$VEIL" policy edit --help && ok && has "VISUAL" || return 1
	run "$VEIL" policy update --help && ok && has "--predecessor HASH"
}

t_health_and_metrics() {
	[ "$(nocert "$URL/healthz")" = 200 ] || die "healthz" || return 1
	[ "$(nocert "$URL/metrics")" = 200 ] || die "metrics" || return 1
	grep -q '^veil_cas_request_seconds_count' "$WORK/.body" || die "no histogram"
}

t_attest_refused_without_tolerance() {
	run A cas attest "$URL" && rejected || return 1
	has "not a trusted platform" && has "--only_for_testing-debug" && has "--only_for_testing-ignore-signer" || return 1
	run A policy list --cas "$URL" && rejected && has "not attested yet"
}

t_attest_wrong_mrenclave() {
	run A cas attest "$URL" $TESTING --mrenclave "$(printf '0%.0s' $(seq 64))" && rejected || return 1
	has "the CAS measurement is" || return 1
	# a TDX MRTD or SNP measurement is 96 hex digits: accepted, and compared
	run A cas attest "$URL" $TESTING --mrenclave "$(printf '0%.0s' $(seq 96))" && rejected || return 1
	has "the CAS measurement is" || return 1
	run A cas attest "$URL" $TESTING --mrenclave "$(printf '0%.0s' $(seq 80))" && [ "$rc" = 2 ] &&
		has "--mrenclave needs 64 (SGX MRENCLAVE, veil-run) or 96 (TDX MRTD, SNP measurement)"
}

t_attest_and_pin() {
	run A cas attest "$URL" $TESTING && ok && has "pinned" || return 1
	run B cas attest "$URL" $TESTING && ok || return 1
	[ -f "$WORK/home-a/cas/default" ] || die "no default CAS"
}

t_create_seed_policy() {
	mkdir -p "$WORK/seed" && cd "$WORK/seed" || return 1
	VEIL_RUNTIME=/bin/true "$VEIL" apply -f "$SEED/service.yaml" --no-push >/dev/null &&
		"$VEIL" apply -f "$SEED/Meshfile" --no-upload --mode debug >"$WORK/apply.out" 2>/dev/null || return 1
	run A policy create target/policies/myPythonApp.yaml && ok || return 1
	has "created myPythonApp" && has "policy hash $(sha256sum target/policies/myPythonApp.yaml | cut -d' ' -f1)" || return 1
	run A policy create target/policies/myPythonApp.yaml && rejected && has "409" && has "exists" || return 1
	run A policy get myPythonApp && ok && has "name: myPythonApp" && has 'API_PASSWORD: "$$SCONE::password$$"'
}

t_create_refuses_predecessor() {
	run A policy create "$(policy withpred CREATOR CREATOR "$(printf 'b%.0s' $(seq 64))")" && rejected || return 1
	has "'predecessor' is not allowed when creating"
}

# For every route: owner / other identity / no client certificate / ANY / NONE.
t_authorization_matrix() {
	A policy create "$(policy nsc CREATOR CREATOR)" >/dev/null || return 1
	A policy create "$(policy nsany ANY CREATOR)" >/dev/null || return 1
	A policy create "$(policy nsnone NONE NONE)" >/dev/null || return 1
	A policy create "$(policy nskey "$(key_of b)" "$(key_of b)")" >/dev/null || return 1
	local h
	h=$(hash_of nsc)
	# read
	run A policy get nsc && ok || return 1
	# refused as if absent (404, the same answer as for a name nobody holds)
	run B policy get nsc && rejected && has "404" && has "no namespace nsc that access_policy.read allows this client" || return 1
	[ "$(nocert "$URL/v1/policies/nsc")" = 403 ] || die "no cert read" || return 1
	grep -q "a client certificate is required" "$WORK/.body" || die "no-cert reason" || return 1
	run B policy get nsany && ok || return 1
	[ "$(nocert "$URL/v1/policies/nsany")" = 403 ] || die "no cert ANY read" || return 1
	run A policy get nsnone && rejected && has "404" || return 1
	run B policy get nskey && ok || return 1
	run A policy get nskey && rejected && has "404" || return 1
	# update
	run B policy update "$(policy nsc CREATOR CREATOR "$h" 1)" && rejected && has "404" || return 1
	run B policy update "$(policy nsany ANY CREATOR "$(hash_of nsany)" 1)" && rejected && has "404" || return 1
	[ "$(nocert -X PUT --data-binary '{"policy":"name: nsc"}' "$URL/v1/policies/nsc")" = 403 ] || die "no cert update" || return 1
	run A policy update "$(policy nsnone NONE NONE "$(printf 'c%.0s' $(seq 64))" 1)" && rejected && has "404" || return 1
	# delete
	run B policy delete nsc && rejected && has "404" || return 1
	[ "$(nocert -X DELETE "$URL/v1/policies/nsc")" = 403 ] || die "no cert delete" || return 1
	# update: [NONE] freezes a policy, but its creator may still delete it
	run B policy delete nsnone && rejected && has "404" || return 1
	run A policy delete nsnone && ok || return 1
	# create and list without a certificate
	[ "$(nocert -X POST --data-binary '{"policy":"name: x"}' "$URL/v1/policies")" = 403 ] || die "no cert create" || return 1
	[ "$(nocert "$URL/v1/policies")" = 403 ] || die "no cert list" || return 1
	# list shows only one's own namespaces
	run B policy list && ok && lacks "nsc" || return 1
	run A policy list && ok && has "nsc $h" || return 1
	# refused requests changed nothing
	[ "$(hash_of nsc)" = "$h" ] || die "nsc changed by a refused request" || return 1
	# the owner's update and delete work
	run A policy update "$(policy nsc CREATOR CREATOR "$h" 2)" && ok && has "updated nsc" || return 1
	run B policy update "$(policy nskey "$(key_of b)" "$(key_of b)" "$(A policy list | awk '$1=="nskey"{print $2}')" 1)" && ok || return 1
	run A policy delete nsc && ok || return 1
	run A policy get nsc && rejected && has "404"
}

t_update_needs_current_predecessor() {
	A policy create "$(policy nsu CREATOR CREATOR)" >/dev/null || return 1
	run A policy update "$(policy nsu CREATOR CREATOR)" && rejected && has "an update needs 'predecessor:" || return 1
	run A policy update "$(policy nsu CREATOR CREATOR "$(printf 'd%.0s' $(seq 64))" 1)" && rejected && has "409" && has "is not the current policy hash"
}

# Two clients race 100 updates from the same predecessor: exactly one wins each round.
t_race_updates() {
	A policy create "$(policy race CREATOR "CREATOR, $(key_of b)")" >/dev/null || return 1
	local h wins=0 i
	for i in $(seq 1 100); do
		h=$(A policy list | awk '$1=="race"{print $2}')
		cp "$(policy race CREATOR "CREATOR, $(key_of b)" "$h" "a$i")" "$WORK/ra.yaml"
		cp "$(policy race CREATOR "CREATOR, $(key_of b)" "$h" "b$i")" "$WORK/rb.yaml"
		A policy update "$WORK/ra.yaml" >"$WORK/ra.out" 2>&1 &
		local pa=$!
		B policy update "$WORK/rb.yaml" >"$WORK/rb.out" 2>&1 &
		local pb=$!
		wait $pa; local ra=$?
		wait $pb; local rb=$?
		if [ $((ra == 0 ? 1 : 0)) -eq $((rb == 0 ? 1 : 0)) ]; then
			die "round $i: exits $ra and $rb"; cat "$WORK/ra.out" "$WORK/rb.out" >&2; return 1
		fi
		local winner=$([ $ra -eq 0 ] && echo "$WORK/ra.out" || echo "$WORK/rb.out")
		local loser=$([ $ra -eq 0 ] && echo "$WORK/rb.out" || echo "$WORK/ra.out")
		grep -q 409 "$loser" || { die "round $i: loser did not get 409"; cat "$loser" >&2; return 1; }
		local want
		want=$(awk '/policy hash/{print $3}' "$winner")
		[ "$(A policy list | awk '$1=="race"{print $2}')" = "$want" ] || die "round $i: winner's update lost" || return 1
		wins=$((wins + 1))
	done
	[ "$wins" -eq 100 ]
}

t_bad_input() {
	# oversized body
	head -c 5000000 /dev/zero | tr '\0' 'a' >"$WORK/big"
	[ "$(as_a -X POST --data-binary @"$WORK/big" "$URL/v1/policies")" = 413 ] || die "oversized not 413" || return 1
	# malformed JSON, JSON without policy, malformed YAML, invalid UTF-8, 10k-element list
	[ "$(as_a -X POST --data-binary '{"policy": ' "$URL/v1/policies")" = 400 ] || die "bad json" || return 1
	grep -q "not valid JSON" "$WORK/.body" || die "json reason" || return 1
	[ "$(as_a -X POST --data-binary '{"x":1}' "$URL/v1/policies")" = 400 ] || die "no policy" || return 1
	[ "$(as_a -X POST --data-binary '{"policy":"name: [unclosed"}' "$URL/v1/policies")" = 400 ] || die "bad yaml" || return 1
	grep -q "not valid YAML" "$WORK/.body" || die "yaml reason" || return 1
	printf '{"policy":"name: a\\u00ff\\n"}' >"$WORK/u.json"
	printf '{"policy":"name: \xff\xfe"}' >"$WORK/u2.json"
	[ "$(as_a -X POST --data-binary @"$WORK/u2.json" "$URL/v1/policies")" = 400 ] || die "invalid utf-8" || return 1
	{ printf '{"policy":"name: big\\nservices:\\n'; for i in $(seq 10000); do printf '  - {name: s%d, command: x}\\n' "$i"; done; printf '"}'; } >"$WORK/10k.json"
	[ "$(as_a -X POST --data-binary @"$WORK/10k.json" "$URL/v1/policies")" = 400 ] || die "10k list" || return 1
	grep -q "more than 4096 entries" "$WORK/.body" || die "10k reason: $(cat "$WORK/.body")" || return 1
	# path traversal and invalid names
	[ "$(as_a --path-as-is "$URL/v1/policies/../../etc/passwd")" = 400 ] || die "traversal not 400" || return 1
	[ "$(cat "$WORK/.body")" = '{"error":"invalid namespace name in the path"}' ] || die "traversal reason: $(cat "$WORK/.body")" || return 1
	[ "$(as_a "$URL/v1/policies/..%2f..%2fetc")" = 400 ] || die "encoded traversal" || return 1
	[ "$(as_a "$URL/v1/policies/a%00b")" = 400 ] || die "NUL in name" || return 1
	# truncated TLS: a handshake cut short, and plain text on the TLS port
	printf '\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03' | timeout 3 bash -c "cat >/dev/tcp/127.0.0.1/$PORT" 2>/dev/null
	printf 'GET / HTTP/1.1\r\n\r\n' | timeout 3 bash -c "cat >/dev/tcp/127.0.0.1/$PORT" 2>/dev/null
	timeout 3 openssl s_client -connect 127.0.0.1:$PORT -tls1_2 </dev/null >/dev/null 2>&1
	# still serving
	[ "$(nocert "$URL/healthz")" = 200 ] || die "server stopped serving"
}

t_canary_never_stored_in_clear() {
	local canary=CANARY-$RANDOM$RANDOM-VALUE envc=ENVCANARY-$RANDOM$RANDOM
	{
		echo "name: canary"
		echo "access_policy: {read: [ANY], update: [CREATOR]}"
		echo "services:"
		echo "  - name: app"
		echo "    command: run"
		echo "    environment: {TOKEN: \"\$\$SCONE::token\$\$\", NOTE: $envc}"
		echo "secrets:"
		echo "  - {name: token, kind: explicit, value: $canary}"
		echo "  - {name: gen, kind: ascii, size: 32}"
	} >"$WORK/canary.yaml"
	A policy create "$WORK/canary.yaml" >/dev/null || return 1
	A policy get canary >/dev/null || return 1
	sync
	if grep -rqa -e "$canary" -e "$envc" "$WORK/data" "$WORK/cas.out" "$WORK/cas.err" "$WORK/request.log"; then
		die "canary found in the data folder or logs"; grep -rla -e "$canary" -e "$envc" "$WORK/data" >&2; return 1
	fi
	# a non-owner with read access sees the policy, never generated values:
	# the explicit secret's value is part of the policy, the generated one's
	# (gen) is not; the check reads the secret's whole YAML block
	run B policy get canary && ok || return 1
	local gen
	gen=$(awk 'function flush() { if (b ~ /name: gen\n/) printf "%s", b; b = "" }
		/^  - /{flush(); b = $0 "\n"; next} /^    /{if (b != "") b = b $0 "\n"; next} {flush()} END{flush()}' <<<"$out")
	grep -q "kind: ascii" <<<"$gen" || die "no block for secret gen in: $out" || return 1
	! grep -q "value" <<<"$gen" || die "a generated value is shown: $gen"
}

# export/import between namespaces needs the exporting owner's consent
t_import_needs_consent() {
	printf 'name: exporter\nsecrets:\n  - {name: shared, kind: ascii, size: 12}\n' >"$WORK/exp.yaml"
	A policy create "$WORK/exp.yaml" >/dev/null || return 1
	printf 'name: importer\nsecrets:\n  - name: s\n    import: {namespace: exporter, secret: shared}\n' >"$WORK/imp.yaml"
	run B policy create "$WORK/imp.yaml" && rejected || return 1
	has "403" && has "namespace exporter does not export secret shared to importer" || return 1
	# an absent exporter gets the same answer (no existence oracle)
	printf 'name: importer2\nsecrets:\n  - name: s\n    import: {namespace: nowhere}\n' >"$WORK/imp2.yaml"
	run B policy create "$WORK/imp2.yaml" && rejected && has "403" && has "namespace nowhere does not export secret s to importer2" || return 1
	# the exporter's owner consents
	local h
	h=$(A policy list | awk '$1=="exporter"{print $2}')
	printf 'name: exporter\npredecessor: %s\nsecrets:\n  - name: shared\n    kind: ascii\n    size: 12\n    export: [{namespace: importer, owner: %s}]\n' "$h" "$(key_of b)" >"$WORK/exp2.yaml"
	run A policy update "$WORK/exp2.yaml" && ok || return 1
	run B policy create "$WORK/imp.yaml" && ok && has "created importer"
}

# "parent/child" namespaces: access_policy.create_sessions of the parent decides
t_child_namespaces() {
	printf 'name: parent1\n' >"$WORK/p1.yaml"
	A policy create "$WORK/p1.yaml" >/dev/null || return 1
	printf 'name: parent1/child\n' >"$WORK/c1.yaml"
	run B policy create "$WORK/c1.yaml" && rejected && has "access_policy.create_sessions of parent1 does not allow" || return 1
	run A policy create "$WORK/c1.yaml" && ok || return 1
	run A policy get parent1/child && ok && has "name: parent1/child" || return 1
	printf 'name: nope/child\n' >"$WORK/c2.yaml"
	run A policy create "$WORK/c2.yaml" && rejected && has "access_policy.create_sessions of nope does not allow this client to create nope/child (or nope does not exist)" || return 1
	printf 'name: parent1/../x\n' >"$WORK/c3.yaml"
	run A policy create "$WORK/c3.yaml" && rejected || return 1
	local h
	h=$(A policy list | awk '$1=="parent1"{print $2}')
	printf 'name: parent1\npredecessor: %s\naccess_policy: {create_sessions: [ANY]}\n' "$h" >"$WORK/p1b.yaml"
	A policy update "$WORK/p1b.yaml" >/dev/null || return 1
	printf 'name: parent1/kid\n' >"$WORK/c4.yaml"
	run B policy create "$WORK/c4.yaml" && ok
}

# changes (not reads) in the CAS's audit log
changes() { grep -cE '"event":"(create|update|delete)"' "$WORK/data/audit.log"; }
# every file of a folder with its hash, in one string
tree_hash() { (cd "$1" && find . -type f -print0 | sort -z | xargs -0 sha256sum) | sha256sum; }
json_ok() { python3 -c 'import json,sys; json.load(sys.stdin)' <<<"$out" || die "not JSON: $out"; }
# jq-less field access: json_get EXPR (Python, on the document d)
json_get() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)" <<<"$out"; }

# veil apply -f Meshfile attests the CAS with the Meshfile's tolerance flags
# (a fresh client, nothing pinned) and uploads: create, then nothing while the
# inputs are unchanged, then an update naming the stored hash as predecessor.
t_apply_uploads() {
	mkdir -p "$WORK/up" && cd "$WORK/up" || return 1
	export VEIL_HOME=$WORK/home-c
	VEIL_RUNTIME=/bin/true "$VEIL" apply -f "$SEED/service.yaml" --no-push >/dev/null || return 1
	sed 's/namespace: myPythonApp/namespace: uploaded/' "$SEED/Meshfile" >Meshfile
	run "$VEIL" apply -f Meshfile --mode debug --cas "$URL" && ok || return 1
	has "attested" && has "created namespace uploaded on $URL" || return 1
	local h1
	h1=$(sha256sum target/policies/uploaded.yaml | cut -d' ' -f1)
	has "policy hash $h1" || return 1
	run "$VEIL" policy get uploaded && ok && has "name: uploaded" || return 1
	# again, unchanged: no upload, no new version, not one byte changed
	local before changes1
	before=$(tree_hash target)
	changes1=$(changes)
	run "$VEIL" apply -f Meshfile --mode debug --cas "$URL" && ok || return 1
	has "unchanged: namespace uploaded on $URL" && has "policy hash $h1" && lacks "updated" || return 1
	[ "$(tree_hash target)" = "$before" ] || die "target/ changed on a no-op apply" || return 1
	[ "$(changes)" = "$changes1" ] || die "a no-op apply changed the CAS (audit)" || return 1
	run "$VEIL" policy list && ok && has "uploaded $h1" || return 1
	run "$VEIL" apply -f Meshfile --mode debug --cas "$URL" && ok && has "unchanged" || return 1
	[ "$(tree_hash target)" = "$before" ] || die "target/ changed on the third run" || return 1
	# a changed input: an update whose predecessor is the stored hash
	sed -i 's/value: myself/value: someone/' Meshfile
	run "$VEIL" apply -f Meshfile --mode debug --cas "$URL" && ok || return 1
	has "updated namespace uploaded on $URL" || return 1
	grep -q "^predecessor: $h1" target/policies/uploaded.yaml || die "no predecessor in the written policy" || return 1
	local h2
	h2=$(sha256sum target/policies/uploaded.yaml | cut -d' ' -f1)
	has "policy hash $h2" || return 1
	grep -q "appVersion: \"${h2:0:12}\"" target/helm/Chart.yaml || die "chart not updated" || return 1
	run "$VEIL" policy list && ok && has "uploaded $h2" || return 1
	[ "$(changes)" -eq $((changes1 + 1)) ] || die "expected exactly one new change" || return 1
	# and unchanged again, with a predecessor in the stored policy
	before=$(tree_hash target)
	run "$VEIL" apply -f Meshfile --mode debug --cas "$URL" && ok && has "unchanged" && has "policy hash $h2" || return 1
	[ "$(tree_hash target)" = "$before" ] || die "target/ changed on a no-op apply after an update" || return 1
	# VEIL_CAS selects the CAS when --cas is absent (the Meshfile's is ignored)
	sed -i 's/value: someone/value: other/' Meshfile
	VEIL_CAS=https://127.0.0.1:1 run "$VEIL" apply -f Meshfile --mode debug && rejected && has "127.0.0.1:1" || return 1
	[ "$(tree_hash target)" = "$before" ] || die "an apply that could not reach the CAS wrote files" || return 1
	VEIL_CAS=$URL run "$VEIL" apply -f Meshfile --mode debug -o json && ok || return 1
	json_ok || return 1
	[ "$(json_get 'd["items"][0]["cas"]["result"]')" = updated ] || die "json: cas.result" || return 1
	[ "$(json_get 'd["items"][0]["cas"]["url"]')" = "$URL" ] || die "json: cas.url" || return 1
	[ "$(json_get 'd["items"][0]["policy_hash"]')" = "$(sha256sum target/policies/uploaded.yaml | cut -d' ' -f1)" ] ||
		die "json: policy_hash" || return 1
	unset VEIL_HOME
}

# A failed apply changes nothing anywhere: a namespace that cannot name a
# Helm chart is refused before the CAS is even read.
t_failed_apply_changes_nothing() {
	cd "$WORK/up" || return 1
	export VEIL_HOME=$WORK/home-c
	sed 's/namespace: myPythonApp/namespace: 9lives/' "$SEED/Meshfile" >Bad
	local before changes1
	before=$(tree_hash target)
	changes1=$(changes)
	run "$VEIL" apply -f Bad --mode debug --cas "$URL" && rejected || return 1
	has "namespace '9lives' cannot name a Helm chart" || return 1
	[ "$(tree_hash target)" = "$before" ] || die "target/ changed by a failed apply" || return 1
	[ "$(changes)" = "$changes1" ] || die "the CAS changed on a failed apply" || return 1
	run "$VEIL" policy get 9lives && rejected && has "404" || return 1
	# a namespace this client may not read: refused before any local write
	A policy create "$(policy secretns CREATOR CREATOR)" >/dev/null || return 1
	sed 's/namespace: myPythonApp/namespace: secretns/' "$SEED/Meshfile" >Other
	# (the CAS answers it as absent, so apply tries to create it: refused, 409)
	changes1=$(changes)
	run "$VEIL" apply -f Other --mode debug --cas "$URL" && rejected && has "409" && has "namespace secretns exists" || return 1
	[ "$(changes)" = "$changes1" ] || die "the CAS changed on a refused apply" || return 1
	# readable but not updatable: the local files are written, the CAS is not changed
	A policy create "$(policy readonly ANY CREATOR)" >/dev/null || return 1
	local h
	h=$(hash_of readonly)
	sed 's/namespace: myPythonApp/namespace: readonly/' "$SEED/Meshfile" >Ro
	changes1=$(changes)
	run "$VEIL" apply -f Ro --mode debug --cas "$URL" && rejected || return 1
	has "404" && has "target/policies/readonly.yaml and the chart are written, the CAS at $URL is unchanged" || return 1
	[ "$(hash_of readonly)" = "$h" ] || die "the refused update changed the CAS" || return 1
	[ "$(changes)" = "$changes1" ] || die "the refused update is a change in the audit log" || return 1
	grep -q "^predecessor: $h" target/policies/readonly.yaml || die "local policy not written" || return 1
	unset VEIL_HOME
}

# Several Meshfiles: all of them are checked, and the CAS read for each, before
# the first local write, and every local file is written before the first
# upload. A good Meshfile given before a bad one (a namespace that cannot name
# a chart; an image without a measurement record) changes nothing anywhere.
t_multi_apply_checks_every_mesh_first() {
	cd "$WORK/up" || return 1
	export VEIL_HOME=$WORK/home-c
	mkdir -p good good2 bad unmeasured || return 1
	sed 's/namespace: myPythonApp/namespace: multigood/' "$SEED/Meshfile" >good/Meshfile
	sed 's/namespace: myPythonApp/namespace: multigood2/' "$SEED/Meshfile" >good2/Meshfile
	sed 's/namespace: myPythonApp/namespace: 9lives/' "$SEED/Meshfile" >bad/Meshfile
	sed 's/namespace: myPythonApp/namespace: unmeasured/; s/python_hello_user:latest/never_measured:1/' \
		"$SEED/Meshfile" >unmeasured/Meshfile
	local before changes1 list1 bad
	before=$(tree_hash target)
	changes1=$(changes)
	list1=$("$VEIL" policy list --cas "$URL") || return 1
	for bad in bad unmeasured; do
		run "$VEIL" apply -f good/Meshfile -f "$bad/Meshfile" --mode debug --cas "$URL" && rejected || return 1
		case $bad in
		bad) has "namespace '9lives' cannot name a Helm chart" || return 1 ;;
		unmeasured) has "no measurement record for image 'registry.scontain.com:5050/cicd/never_measured:1'" || return 1 ;;
		esac
		lacks "created namespace multigood" || return 1
		[ "$(tree_hash target)" = "$before" ] || die "-f good -f $bad: target/ changed" || return 1
		[ ! -e target/policies/multigood.yaml ] || die "-f good -f $bad: wrote the good policy" || return 1
		[ "$(changes)" = "$changes1" ] || die "-f good -f $bad: the CAS changed (audit log)" || return 1
		[ "$("$VEIL" policy list --cas "$URL")" = "$list1" ] || die "-f good -f $bad: the policy list changed" || return 1
	done
	# one namespace in two Meshfiles: refused before anything is written
	mkdir -p dup && cp good/Meshfile dup/Meshfile
	run "$VEIL" apply -f good/Meshfile -f dup/Meshfile --mode debug --cas "$URL" && rejected &&
		has "good/Meshfile and dup/Meshfile both name namespace 'multigood'" || return 1
	[ "$(tree_hash target)" = "$before" ] && [ "$(changes)" = "$changes1" ] || die "-f good -f dup changed something" || return 1
	# two good ones: both written, then both uploaded
	run "$VEIL" apply -f good/Meshfile -f good2/Meshfile --mode debug --cas "$URL" && ok || return 1
	has "created namespace multigood on $URL" && has "created namespace multigood2 on $URL" || return 1
	[ -f target/policies/multigood.yaml ] && [ -f target/policies/multigood2.yaml ] || die "policy files not written" || return 1
	[ "$(changes)" -eq $((changes1 + 2)) ] || die "expected two creates" || return 1
	run "$VEIL" policy list --cas "$URL" && ok && has "multigood $(sha256sum target/policies/multigood.yaml | cut -d' ' -f1)" &&
		has "multigood2 $(sha256sum target/policies/multigood2.yaml | cut -d' ' -f1)" || return 1
	unset VEIL_HOME
}

# get -> edit -> update works: get shows the current hash as predecessor
t_policy_get_edit_update() {
	A policy create "$(policy gedit CREATOR CREATOR)" >/dev/null || return 1
	local h
	h=$(hash_of gedit)
	run A policy get gedit && ok && has "predecessor: $h" || return 1
	A policy get gedit | sed 's/ROUND: "0"/ROUND: "1"/' >"$WORK/gedit.yaml"
	run A policy update "$WORK/gedit.yaml" && ok && has "updated gedit on $URL" || return 1
	[ "$(hash_of gedit)" != "$h" ] || die "update did not change the hash" || return 1
	grep -q 'ROUND: "1"' <<<"$(A policy get gedit)" || die "update lost" || return 1
	# --predecessor: a file without (or with a stale) predecessor
	h=$(hash_of gedit)
	run A policy update "$(policy gedit CREATOR CREATOR "" 2)" --predecessor "$h" && ok || return 1
	grep -q 'ROUND: "2"' <<<"$(A policy get gedit)" || die "--predecessor update lost" || return 1
	run A policy update "$(policy gedit CREATOR CREATOR)" --predecessor "$h" && rejected && has "409" || return 1
	run A policy update "$(policy gedit CREATOR CREATOR)" --predecessor 12x && [ "$rc" -eq 2 ] &&
		has "--predecessor needs a policy hash" || return 1
	# edit with EDITOR set to a script: the file is 0600, the change uploaded
	cat >"$WORK/ed.sh" <<'EOM'
#!/bin/sh
stat -c %a "$1" >"$ED_LOG"
sed -i 's/ROUND: "2"/ROUND: "3"/' "$1"
EOM
	chmod +x "$WORK/ed.sh"
	export ED_LOG=$WORK/ed.log
	h=$(hash_of gedit)
	EDITOR=$WORK/ed.sh run A policy edit gedit && ok && has "updated gedit on $URL" || return 1
	[ "$(cat "$WORK/ed.log")" = 600 ] || die "the edited file is not 0600: $(cat "$WORK/ed.log")" || return 1
	grep -q 'ROUND: "3"' <<<"$(A policy get gedit)" || die "edit lost" || return 1
	# VISUAL wins over EDITOR; an editor that changes nothing uploads nothing
	local changes1
	changes1=$(changes)
	h=$(hash_of gedit)
	VISUAL=true EDITOR=false run A policy edit gedit && ok && has "unchanged: gedit" || return 1
	[ "$(hash_of gedit)" = "$h" ] && [ "$(changes)" = "$changes1" ] || die "unchanged edit uploaded" || return 1
	# a failing editor uploads nothing
	EDITOR=false run A policy edit gedit && rejected && has "the editor 'false' failed" || return 1
	# an invalid edit is refused before the CAS sees it, and kept
	printf '#!/bin/sh\necho "services: [unclosed" >>"$1"\n' >"$WORK/ed3.sh" && chmod +x "$WORK/ed3.sh"
	EDITOR=$WORK/ed3.sh run A policy edit gedit && rejected && has "not valid YAML" && has "your edit is kept in" || return 1
	rm -f "$(sed -n 's/.*your edit is kept in //p' <<<"$err")"
	[ "$(hash_of gedit)" = "$h" ] && [ "$(changes)" = "$changes1" ] || die "an invalid edit changed the CAS" || return 1
	# someone else updates while the editor is open: 409, the edit is kept
	cat >"$WORK/ed2.sh" <<EOM
#!/bin/sh
VEIL_HOME=$WORK/home-a "$VEIL" policy get gedit | sed 's/ROUND: "3"/ROUND: "4"/' >"$WORK/other.yaml"
VEIL_HOME=$WORK/home-a "$VEIL" policy update "$WORK/other.yaml" >/dev/null || exit 1
sed -i 's/ROUND: "3"/ROUND: "5"/' "\$1"
EOM
	chmod +x "$WORK/ed2.sh"
	EDITOR=$WORK/ed2.sh run A policy edit gedit && rejected || return 1
	has "409" && has "gedit changed on the CAS while you edited it" && has "your edit is kept in" || return 1
	local kept
	kept=$(sed -n 's/.*your edit is kept in //p' <<<"$err")
	grep -q 'ROUND: "5"' "$kept" || die "the kept file lacks the edit" || return 1
	rm -f "$kept"
	grep -q 'ROUND: "4"' <<<"$(A policy get gedit)" || die "the other update was lost"
}

# veil killed while the editor runs: the temporary file (the whole policy,
# explicit secret values included) is removed, and the editor ended with it
# (it would write the file again on save); the CAS is unchanged
t_policy_edit_killed_removes_temp_file() {
	cat >"$WORK/ed-sleep.sh" <<'EOM'
#!/bin/sh
echo "$$ $1" >"$ED_LOG.tmp" && mv "$ED_LOG.tmp" "$ED_LOG"
exec sleep 30
EOM
	chmod +x "$WORK/ed-sleep.sh"
	mkdir -p "$WORK/edtmp" || return 1
	local sig pid st editor file changes1 h
	for sig in HUP TERM; do
		rm -f "$WORK/ed.log"
		changes1=$(changes)
		h=$(hash_of gedit)
		VEIL_HOME=$WORK/home-a TMPDIR=$WORK/edtmp ED_LOG=$WORK/ed.log EDITOR=$WORK/ed-sleep.sh \
			"$VEIL" policy edit gedit >/dev/null 2>&1 &
		pid=$!
		for _ in $(seq 200); do [ -s "$WORK/ed.log" ] && break; sleep 0.05; done
		read -r editor file <"$WORK/ed.log" || { kill "$pid"; die "the editor did not start"; return 1; }
		[ -f "$file" ] || { kill "$pid" "$editor"; die "no temporary file $file while editing"; return 1; }
		kill -"$sig" "$pid"
		wait "$pid" 2>/dev/null # no "Hangup" job notice
		st=$?
		[ "$st" -eq $((128 + $(kill -l "$sig"))) ] || { kill "$editor" 2>/dev/null; die "SIG$sig: veil exited $st"; return 1; }
		for _ in $(seq 100); do kill -0 "$editor" 2>/dev/null || break; sleep 0.05; done
		kill -0 "$editor" 2>/dev/null && { kill "$editor"; die "SIG$sig: the editor still runs"; return 1; }
		[ ! -e "$file" ] || { rm -f "$file"; die "SIG$sig: the temporary file $file is left behind"; return 1; }
		[ -z "$(ls -A "$WORK/edtmp")" ] || die "SIG$sig: left in TMPDIR: $(ls -A "$WORK/edtmp")" || return 1
		[ "$(hash_of gedit)" = "$h" ] && [ "$(changes)" = "$changes1" ] || die "SIG$sig: the CAS changed" || return 1
	done
	# Ctrl-C while the editor runs is the editor's: veil stays, and cleans up
	# when the editor exits
	rm -f "$WORK/ed.log"
	VEIL_HOME=$WORK/home-a TMPDIR=$WORK/edtmp ED_LOG=$WORK/ed.log EDITOR=$WORK/ed-sleep.sh \
		"$VEIL" policy edit gedit >/dev/null 2>&1 &
	pid=$!
	for _ in $(seq 200); do [ -s "$WORK/ed.log" ] && break; sleep 0.05; done
	read -r editor file <"$WORK/ed.log" || { kill "$pid"; die "the editor did not start"; return 1; }
	kill -INT "$pid"
	sleep 0.2
	kill -0 "$pid" 2>/dev/null && [ -f "$file" ] || { kill "$editor"; die "SIGINT during the editor ended veil"; return 1; }
	kill -TERM "$editor"
	wait "$pid"
	st=$?
	[ "$st" -eq 1 ] || die "veil exited $st after the editor was killed" || return 1
	[ -z "$(ls -A "$WORK/edtmp")" ] || die "left in TMPDIR: $(ls -A "$WORK/edtmp")"
}

# -o json on stdout, parsed by a JSON parser; whoami is the CAS's view of us
t_json_outputs() {
	run A policy get gedit -o json && ok && json_ok || return 1
	[ "$(json_get 'd["name"]')" = gedit ] && [ "$(json_get 'd["hash"]')" = "$(hash_of gedit)" ] || die "get json" || return 1
	grep -q "predecessor: $(hash_of gedit)" <<<"$(json_get 'd["policy"]')" || die "get json: policy text" || return 1
	run A policy get gedit -o yaml && ok && has "name: gedit" && has "hash: $(hash_of gedit)" || return 1
	run A policy list -o json && ok && json_ok || return 1
	[ "$(json_get '[p["hash"] for p in d["policies"] if p["name"] == "gedit"][0]')" = "$(hash_of gedit)" ] ||
		die "list json" || return 1
	run A cas attest "$URL" $TESTING -o json && ok && json_ok || return 1
	[ "$(json_get 'd["url"]')" = "$URL" ] && [ "$(json_get 'd["platform"]')" = sim ] &&
		[ "$(json_get 'd["debug"]')" = True ] || die "attest json" || return 1
	[ "$(json_get 'd["key_hash"]')" = "$(awk '/key_hash/{print $2}' "$WORK/home-a/cas/"*127.0.0.1*)" ] ||
		die "attest json: key_hash is not the pinned key" || return 1
	lacks "attested:" || return 1
	run "$VEIL" audit verify "$WORK/data/audit.log" -o json && ok && json_ok || return 1
	[ "$(json_get 'd["intact"]')" = True ] && [ "$(json_get 'd["entries"]')" -gt 10 ] || die "audit json" || return 1
	run A whoami && ok && [ "$out" = "$(key_of a)" ] || die "whoami: $out, CAS computes $(key_of a)" || return 1
	run B whoami -o json && ok && json_ok && [ "$(json_get 'd["identity"]')" = "$(key_of b)" ] || die "whoami json"
}

# VEIL_CAS selects the CAS when --cas is absent; --cas wins over it
t_veil_cas_env() {
	VEIL_HOME=$WORK/home-d VEIL_CAS=$URL run "$VEIL" policy list && rejected &&
		has "the CAS at $URL is not attested yet" || return 1
	VEIL_HOME=$WORK/home-d VEIL_CAS=$URL run "$VEIL" cas attest $TESTING && ok && has "CAS $URL attested" || return 1
	VEIL_CAS=https://127.0.0.1:1 run A policy list && rejected && has "127.0.0.1:1" || return 1
	VEIL_CAS=https://127.0.0.1:1 run A policy list --cas "$URL" && ok && has "gedit"
}

t_metrics_count_requests() {
	[ "$(nocert "$URL/metrics")" = 200 ] || return 1
	grep -q 'veil_cas_requests_total{route="policy_create",status="201"}' "$WORK/.body" || die "create not counted" || return 1
	grep -q 'veil_cas_refusals_total [1-9]' "$WORK/.body" || die "refusals not counted" || return 1
	grep -q '^veil_cas_policies [0-9]' "$WORK/.body" || die "policies gauge" || return 1
	grep -qx 'veil_cas_store_info{engine="sqlite",role="primary",server="local"} 1' "$WORK/.body" &&
		grep -qx 'veil_cas_store_up 1' "$WORK/.body" || die "store info: $(grep store_ "$WORK/.body")"
}

t_audit_log_verifies() {
	run "$VEIL" audit verify "$WORK/data/audit.log" && ok && has "chain intact" || return 1
	grep -q '"event":"refuse"' "$WORK/data/audit.log" || die "refusals not audited" || return 1
	grep -q '"event":"create"' "$WORK/data/audit.log" || die "creates not audited" || return 1
	# changed, removed and reordered entries are detected
	cp "$WORK/data/audit.log" "$WORK/a1"; sed -i '3s/"create"/"delete"/; 3s/"refuse"/"read"/; 3s/"start"/"stop"/' "$WORK/a1"
	sed -i '3s/"status":[0-9]*/"status":999/' "$WORK/a1"
	run "$VEIL" audit verify "$WORK/a1" && rejected && has ":3" || return 1
	run "$VEIL" audit verify "$WORK/a1" -o json && rejected && json_ok || return 1
	[ "$(json_get 'd["intact"]')" = False ] && grep -q ":3" <<<"$(json_get 'd["errors"][0]')" || die "audit json of a broken chain: $out" || return 1
	sed '4d' "$WORK/data/audit.log" >"$WORK/a2"
	run "$VEIL" audit verify "$WORK/a2" && rejected || return 1
	awk 'NR==5{l=$0; next} NR==6{print; print l; next} {print}' "$WORK/data/audit.log" >"$WORK/a3"
	run "$VEIL" audit verify "$WORK/a3" && rejected
}

t_sigterm_clean_stop() {
	stop_cas || die "veil-cas exited non-zero on SIGTERM" || return 1
	# the stop entry, then the signed checkpoint of the head
	tail -2 "$WORK/data/audit.log" | head -1 | grep -q '"event":"stop"' || die "no stop entry" || return 1
	tail -1 "$WORK/data/audit.log" | grep -q '"event":"checkpoint"' || die "no checkpoint at stop" || return 1
	run "$VEIL" audit verify --data "$WORK/data" "$WORK/data/audit.log" && ok && has "holds the signed head"
}

# kill -9 amid acknowledged creates and updates: all of them survive
t_crash_safety() {
	start_cas "$WORK/data" || return 1
	: >"$WORK/acked"
	: >"$WORK/acked-updates"
	local h0
	h0=$(A policy create "$(policy crashupd CREATOR CREATOR)" | awk '/policy hash/{print $3}')
	[ -n "$h0" ] || die "no initial hash" || return 1
	echo "$h0" >"$WORK/acked-updates"
	(
		h=$h0
		for i in $(seq 1 400); do
			if A policy create "$(policy crash$i CREATOR CREATOR)" >/dev/null 2>&1; then
				echo "crash$i" >>"$WORK/acked"
			fi
			if A policy update "$(policy crashupd CREATOR CREATOR "$h" "$i")" >"$WORK/upd.out" 2>&1; then
				h=$(awk '/policy hash/{print $3}' "$WORK/upd.out")
				echo "$h" >>"$WORK/acked-updates"
			fi
		done
	) &
	local loader=$!
	sleep 3
	kill -9 "$CAS_PID"
	wait "$CAS_PID" 2>/dev/null
	CAS_PID=
	wait $loader
	local n
	n=$(wc -l <"$WORK/acked")
	[ "$n" -gt 5 ] || die "too few acknowledged creates ($n) before the kill" || return 1
	start_cas "$WORK/data" || die "no restart after kill -9" || return 1
	local missing=0 ns
	while read -r ns; do
		A policy get "$ns" >/dev/null 2>&1 || { missing=$((missing + 1)); echo "    lost: $ns" >&2; }
	done <"$WORK/acked"
	[ "$missing" -eq 0 ] || die "$missing acknowledged creates lost" || return 1
	# the stored update is the last acknowledged one, or a later one in flight
	local stored last u
	stored=$(A policy list | awk '$1=="crashupd"{print $2}')
	last=$(tail -1 "$WORK/acked-updates")
	u=$(wc -l <"$WORK/acked-updates")
	if [ "$stored" != "$last" ] && grep -qx "$stored" "$WORK/acked-updates"; then
		die "an acknowledged update was lost: stored $stored, last acknowledged $last"; return 1
	fi
	echo "    $n creates and $((u - 1)) updates acknowledged before kill -9; all present after restart" >&2
	[ "$(sqlite3 "$WORK/data/cas.db" 'PRAGMA integrity_check')" = ok ] || die "integrity check failed" || return 1
	run "$VEIL" audit verify "$WORK/data/audit.log" && ok
}

# a store whose master key is lost must not start (it used to make a new key,
# report healthy and answer 500 to every read); --init never overwrites a CAS
t_lost_master_key_refuses_to_start() {
	stop_cas || return 1
	mkdir -p "$WORK/empty"
	run "$CAS" --data "$WORK/empty" --listen "127.0.0.1:$PORT" && [ "$rc" -eq 1 ] &&
		has "holds no CAS; create one with 'veil-cas --init" || return 1
	[ -z "$(ls -A "$WORK/empty")" ] || die "a refused start wrote into the folder" || return 1
	run "$CAS" --init --data "$WORK/data" --listen "127.0.0.1:$PORT" && [ "$rc" -eq 1 ] &&
		has "already holds a CAS; start it without --init" || return 1
	cp -a "$WORK/data" "$WORK/nokey" && rm "$WORK/nokey/master.key"
	run "$CAS" --data "$WORK/nokey" --listen "127.0.0.1:$PORT" && [ "$rc" -eq 1 ] &&
		has "master.key is missing" && has "restore the key from your backup" || return 1
	[ ! -e "$WORK/nokey/master.key" ] || die "a new master key was made" || return 1
	# without its store and log it used to serve an empty CAS with a new audit chain
	cp -a "$WORK/data" "$WORK/nostore" && rm -f "$WORK/nostore"/cas.db* "$WORK/nostore/audit.log"
	run timeout 10 "$CAS" --data "$WORK/nostore" --listen "127.0.0.1:$PORT" && [ "$rc" -eq 1 ] ||
		die "a folder without cas.db and audit.log: exit $rc: $err" || return 1
	has "$WORK/nostore/cas.db is missing" && has "$WORK/nostore/audit.log is missing" &&
		has "--init would not bring it back" || return 1
	[ ! -e "$WORK/nostore/cas.db" ] && [ ! -e "$WORK/nostore/audit.log" ] || die "a refused start made a store or log" || return 1
	local part
	for part in cas.db audit.log; do
		rm -rf "$WORK/nopart" && cp -a "$WORK/data" "$WORK/nopart" && rm -f "$WORK/nopart/$part"
		run timeout 10 "$CAS" --data "$WORK/nopart" --listen "127.0.0.1:$PORT" && [ "$rc" -eq 1 ] &&
			has "$WORK/nopart/$part is missing" || die "without $part: exit $rc: $err" || return 1
		run "$CAS" backup --data "$WORK/nopart" "$WORK/nopart-bk" && rejected && has "$part is missing" || return 1
	done
	start_cas "$WORK/data" || die "the intact store no longer starts"
}

t_pin_detects_new_key() {
	stop_cas || return 1
	start_cas "$WORK/data2" || return 1 # same address, another CAS
	run A policy list && rejected && has "different key than the one pinned" || return 1
	stop_cas
}


# --version from meson; usage errors are one line plus a pointer to --help, exit 2
t_version_and_usage_errors() {
	[ -n "$VERSION" ] || die "no version in meson.build" || return 1
	local b
	for b in veil-cas veil-las veil-run; do
		run "$BUILD/$b" --version && ok && [ "$out" = "$b $VERSION" ] || die "$b --version: $out" || return 1
		run "$BUILD/$b" --x && [ "$rc" -eq 2 ] && [ -z "$out" ] &&
			[ "$err" = "error: unknown flag --x
See '$b --help'." ] || die "$b --x: $rc: $err" || return 1
	done
	# a short flag bundled after a value is named itself, not the word before it
	for b in veil-cas veil-las "veil-cas backup"; do
		run $BUILD/$b --data "$WORK/data" -xh && [ "$rc" -eq 2 ] && [ "$err" = "error: unknown flag -x
See '$b --help'." ] || die "$b --data DIR -xh: $rc: $err" || return 1
	done
	run "$CAS" --data "$WORK/data" -hx && [ "$rc" -eq 0 ] && has "Usage: veil-cas" || return 1
	run "$CAS" --data "$WORK/data" --threads && [ "$rc" -eq 2 ] && has "error: --threads needs a value" || return 1
	run "$CAS" --data "$WORK/data" --help=x && [ "$rc" -eq 2 ] && has "error: --help takes no value" || return 1
	local bad
	for bad in 1x '' 0 257 -1 ' 2' 99999999999999999999999; do
		run "$CAS" --data "$WORK/data" --threads "$bad" && [ "$rc" -eq 2 ] &&
			[ "$err" = "error: --threads: '$bad' is not a number from 1 to 256
See 'veil-cas --help'." ] || die "--threads '$bad': $rc: $err" || return 1
	done
	run "$CAS" --data "$WORK/data" --listen 127.0.0.1:99999 && [ "$rc" -eq 2 ] &&
		has "error: --listen port: '99999' is not a number from 1 to 65535" || return 1
	run "$CAS" --data "$WORK/data" --log-format xml && [ "$rc" -eq 2 ] &&
		has "error: --log-format: 'xml' is not logfmt or json" || return 1
	run "$CAS" --data "$WORK/data" --log-level loud && [ "$rc" -eq 2 ] &&
		has "error: --log-level: 'loud' is not debug, info, warn or error" || return 1
	run "$CAS" --data "$WORK/data" --san x.example && [ "$rc" -eq 2 ] &&
		has "error: --san applies to the certificate --init makes" || return 1
	run "$CAS" backup --data "$WORK/data" && [ "$rc" -eq 2 ] &&
		[ "$err" = "error: missing the backup folder
See 'veil-cas backup --help'." ] || die "backup without DEST: $err" || return 1
	run "$BUILD/veil-las" extra && [ "$rc" -eq 2 ] && has "error: unexpected argument 'extra'"
}

# scripts read key hashes without scraping logs
t_print_key_hash() {
	run "$CAS" --print-key-hash --data "$WORK/data" && ok || return 1
	[ "$out" = "$(awk '/key hash/{print $4}' "$WORK/cas.out")" ] || die "CAS key hash $out" || return 1
	[[ $out =~ ^[0-9a-f]{64}$ ]] || die "not 64 hex: $out" || return 1
	mkdir -p "$WORK/nocas"
	run "$CAS" --print-key-hash --data "$WORK/nocas" && rejected && has "holds no CAS" || return 1
	[ -z "$(ls -A "$WORK/nocas")" ] || die "--print-key-hash wrote into the folder" || return 1
	run "$BUILD/veil-las" --print-key-hash --data "$WORK/las1" && ok && [[ $out =~ ^[0-9a-f]{64}$ ]] || return 1
	local first=$out
	run "$BUILD/veil-las" --print-key-hash --data "$WORK/las1" && ok && [ "$out" = "$first" ] || die "LAS key hash changed"
}

# A second veil-cas on a served address refuses to start (it used to join the
# SO_REUSEPORT group and take half the connections); timeout catches one that
# would serve.
t_second_cas_refused() {
	local a
	for a in "127.0.0.1:$PORT" "localhost:$PORT" ":$PORT"; do
		run timeout 10 "$CAS" --init --data "$WORK/second" --listen "$a" && [ "$rc" -eq 1 ] ||
			die "second veil-cas on $a: exit $rc: $err" || return 1
		has "error: --listen '$a': the address is already in use" || return 1
		[ ! -e "$WORK/second" ] || die "the refused instance created its data folder" || return 1
	done
	# the first one still serves every connection
	local i
	for i in $(seq 20); do
		[ "$(curl -s --cacert "$WORK/data/tls/cert.pem" -o /dev/null -w '%{http_code}' "$URL/healthz")" = 200 ] ||
			die "connection $i not served" || return 1
	done
}

las_reply() { # socket: a REPORT request's first answer word
	python3 - "$1" <<'PY'
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.sendall(b"REPORT " + b"ab" * 32 + b" myPythonApp/pythonapp\n")
print(s.recv(4096).decode().split()[0][:5])
PY
}

# A second veil-las refuses a live socket; a stale one is taken over; on exit
# a veil-las removes only its own socket; SOCKET.lock makes check, unlink and
# bind one step among veil-las processes.
t_second_las_refused() {
	local LAS=$BUILD/veil-las sock=$WORK/las.sock p1 p2 p3
	"$LAS" --socket "$sock" --data "$WORK/las1" >"$WORK/las1.out" 2>&1 &
	p1=$!
	for _ in $(seq 100); do grep -q "key hash" "$WORK/las1.out" && break; sleep 0.05; done
	run timeout 10 "$LAS" --socket "$sock" --data "$WORK/las2" && [ "$rc" -eq 1 ] ||
		die "second veil-las: exit $rc" || { kill "$p1"; return 1; }
	has "error: $sock: another veil-las holds $sock.lock (it serves this socket or is starting on it); stop it first" || { kill "$p1"; return 1; }
	[ -S "$sock" ] || die "the refused instance removed the live socket" || { kill "$p1"; return 1; }
	[ "$(las_reply "$sock")" != "" ] || die "the first veil-las no longer answers" || { kill "$p1"; return 1; }
	# kill -9 leaves a stale socket: the next one takes it over
	kill -9 "$p1"; wait "$p1" 2>/dev/null
	[ -S "$sock" ] || die "no stale socket to test with" || return 1
	"$LAS" --socket "$sock" --data "$WORK/las1" >"$WORK/las2.out" 2>&1 &
	p2=$!
	for _ in $(seq 100); do grep -q "key hash" "$WORK/las2.out" && break; sleep 0.05; done
	grep -q "listening" "$WORK/las2.out" || die "stale socket not taken over: $(cat "$WORK/las2.out")" || { kill "$p2"; return 1; }
	# its path removed, a veil-las started meanwhile is refused by the lock
	# (SOCKET.lock, held for a veil-las's lifetime), not by an answer
	rm "$sock"
	run timeout 10 "$LAS" --socket "$sock" --data "$WORK/las1" && [ "$rc" -eq 1 ] ||
		die "veil-las beside a live one: exit $rc: $err" || { kill "$p2"; return 1; }
	has "error: $sock: another veil-las holds $sock.lock (it serves this socket or is starting on it); stop it first" || { kill "$p2"; return 1; }
	[ ! -e "$sock" ] || die "the refused instance made a socket" || { kill "$p2"; return 1; }
	# the path replaced by another program's socket: exiting, veil-las leaves it alone
	python3 -c 'import socket, sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])' "$sock"
	kill -TERM "$p2"
	wait "$p2" || die "veil-las exited $? on SIGTERM" || return 1
	[ -S "$sock" ] || die "veil-las removed a socket that was not its own" || return 1
	# a held lock alone refuses a veil-las (the stale socket is not touched)
	python3 -c 'import fcntl, sys, time
f = open(sys.argv[1], "w"); fcntl.flock(f, fcntl.LOCK_EX); print("locked", flush=True); time.sleep(60)' "$sock.lock" >"$WORK/lock.out" &
	local holder=$!
	for _ in $(seq 100); do grep -q locked "$WORK/lock.out" && break; sleep 0.05; done
	run timeout 10 "$LAS" --socket "$sock" --data "$WORK/las1" && [ "$rc" -eq 1 ] &&
		has "error: $sock: another veil-las holds $sock.lock" || { kill "$holder"; return 1; }
	[ -S "$sock" ] || die "a refused veil-las removed the stale socket" || { kill "$holder"; return 1; }
	kill "$holder"; wait "$holder" 2>/dev/null
	# two started together on a stale socket: exactly one serves, and it answers
	# (the slower one used to unlink the faster one's fresh socket)
	local round served
	for round in 1 2 3 4 5; do
		"$LAS" --socket "$sock" --data "$WORK/las1" >"$WORK/lasA.out" 2>&1 &
		p2=$!
		"$LAS" --socket "$sock" --data "$WORK/las1" >"$WORK/lasB.out" 2>&1 &
		p3=$!
		for _ in $(seq 100); do
			served=$(cat "$WORK/lasA.out" "$WORK/lasB.out" | grep -c "listening")
			[ "$served" -ge 1 ] && { kill -0 "$p2" 2>/dev/null && kill -0 "$p3" 2>/dev/null || break; }
			sleep 0.05
		done
		sleep 0.2
		served=$(cat "$WORK/lasA.out" "$WORK/lasB.out" | grep -c "listening")
		[ "$served" -eq 1 ] && [ "$(las_reply "$sock")" != "" ] ||
			die "round $round: $served serving: $(cat "$WORK/lasA.out" "$WORK/lasB.out")" || { kill "$p2" "$p3" 2>/dev/null; return 1; }
		kill -TERM "$p2" "$p3" 2>/dev/null
		wait "$p2" "$p3" 2>/dev/null
		[ ! -e "$sock" ] || die "veil-las left its own socket behind" || return 1
		python3 -c 'import socket, sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])' "$sock" # stale again
	done
	# the race made to happen (where strace can trace): one stalls 1 s in
	# unlink after its connect saw the stale socket refuse; another starts
	# meanwhile. Without the lock both served, one of them on a deleted path.
	if strace -f -qq -o /dev/null true 2>/dev/null; then
		strace -f -qq -o /dev/null -e trace=unlink -e inject=unlink:delay_enter=1000000 \
			"$LAS" --socket "$sock" --data "$WORK/las1" >"$WORK/lasA.out" 2>&1 &
		p2=$!
		# the second starts once the first holds the lock (/proc/locks names
		# the lock file's inode), then is in its stalled unlink: a fixed
		# 0.5 s was too short for a TSan build under strace
		local ino
		ino=$(stat -c %i "$sock.lock")
		for _ in $(seq 200); do grep -q ":$ino " /proc/locks && break; sleep 0.05; done
		sleep 0.3
		"$LAS" --socket "$sock" --data "$WORK/las1" >"$WORK/lasB.out" 2>&1 &
		p3=$!
		for _ in $(seq 200); do grep -q listening "$WORK/lasA.out" && break; sleep 0.05; done
		sleep 0.3
		served=$(cat "$WORK/lasA.out" "$WORK/lasB.out" | grep -c "listening")
		kill -9 "$p3" 2>/dev/null
		pkill -9 -P "$p2" 2>/dev/null # the veil-las under strace
		kill -9 "$p2" 2>/dev/null
		wait "$p2" "$p3" 2>/dev/null
		[ "$served" -eq 1 ] && grep -q "another veil-las holds $sock.lock" "$WORK/lasB.out" ||
			die "stalled unlink: $served serving: $(cat "$WORK/lasA.out" "$WORK/lasB.out")" || return 1
	fi
	rm -f "$sock"
}

# the certificate names 127.0.0.1 and localhost: curl verifies it with --cacert (no -k)
t_curl_verifies_cas_certificate() {
	local u code
	for u in "https://127.0.0.1:$PORT/healthz" "https://localhost:$PORT/healthz"; do
		code=$(curl -s --cacert "$WORK/data/tls/cert.pem" -o "$WORK/.body" -w '%{http_code}' "$u")
		[ "$code" = 200 ] && [ "$(cat "$WORK/.body")" = ok ] || die "curl --cacert $u: $code" || return 1
	done
	openssl x509 -in "$WORK/data/tls/cert.pem" -noout -ext subjectAltName >"$WORK/san" || return 1
	grep -q "IP Address:127.0.0.1" "$WORK/san" && grep -q "DNS:localhost" "$WORK/san" || die "SAN: $(cat "$WORK/san")"
}

# --listen :PORT serves every interface; --san adds a name to the certificate
# made at --init, so curl verifies the CAS under that name
t_listen_all_interfaces_and_san() {
	local p=$((PORT + 4)) pid code
	"$CAS" --init --data "$WORK/sandata" --listen ":$p" --san cas.example.test --san 10.1.2.3 --threads 1 \
		>"$WORK/san.out" 2>"$WORK/san.err" &
	pid=$!
	for _ in $(seq 100); do grep -q listening "$WORK/san.out" && break; sleep 0.05; done
	code=$(curl -s --cacert "$WORK/sandata/tls/cert.pem" -o /dev/null -w '%{http_code}' \
		--resolve "cas.example.test:$p:127.0.0.1" "https://cas.example.test:$p/healthz")
	local v6=200
	if [ -e /proc/net/if_inet6 ]; then
		v6=$(curl -sk -o /dev/null -w '%{http_code}' "https://[::1]:$p/healthz")
	fi
	kill -TERM "$pid"
	wait "$pid" || die "veil-cas exited $? on SIGTERM: $(cat "$WORK/san.err")" || return 1
	[ "$code" = 200 ] || die "curl --cacert via the --san name on :$p: $code $(cat "$WORK/san.err")" || return 1
	[ "$v6" = 200 ] || die ":$p does not serve [::1]: $v6" || return 1
	openssl x509 -in "$WORK/sandata/tls/cert.pem" -noout -ext subjectAltName >"$WORK/san.txt" || return 1
	grep -q "DNS:cas.example.test" "$WORK/san.txt" && grep -q "IP Address:10.1.2.3" "$WORK/san.txt" &&
		grep -q "IP Address:127.0.0.1" "$WORK/san.txt" && grep -q "DNS:localhost" "$WORK/san.txt" ||
		die "SAN: $(cat "$WORK/san.txt")"
}

t_health_ready_methods() {
	# HEAD: status and headers, no body
	curl -s --cacert "$WORK/data/tls/cert.pem" -I "$URL/healthz" >"$WORK/head" || return 1
	head -1 "$WORK/head" | grep -q "^HTTP/1.1 200 OK" || die "HEAD /healthz: $(head -1 "$WORK/head")" || return 1
	[ "$(nocert "$URL/readyz")" = 200 ] && [ "$(cat "$WORK/.body")" = ok ] || die "readyz not 200" || return 1
	# standard reason phrases
	curl -sk -i "$URL/nowhere" | head -1 | grep -q "^HTTP/1.1 404 Not Found" || die "404 reason phrase" || return 1
	# 405 with Allow on a known route
	curl -sk -i -X DELETE "$URL/v1/attest" >"$WORK/405" || return 1
	head -1 "$WORK/405" | grep -q "^HTTP/1.1 405 Method Not Allowed" || die "405: $(head -1 "$WORK/405")" || return 1
	grep -qi "^Allow: POST" "$WORK/405" || die "no Allow: POST" || return 1
	curl -sk -i -X PATCH "$URL/v1/policies/x" | grep -qi "^Allow: GET, PUT, DELETE" || die "no Allow on /v1/policies/NAME" || return 1
	curl -sk -i -X POST "$URL/healthz" | grep -qi "^Allow: GET, HEAD" || die "no Allow on /healthz" || return 1
	# the master key gone from the data folder: not ready (a restart would refuse)
	mv "$WORK/data/master.key" "$WORK/master.key.away"
	local code
	code=$(nocert "$URL/readyz")
	mv "$WORK/master.key.away" "$WORK/data/master.key"
	[ "$code" = 503 ] || die "readyz without master.key: $code" || return 1
	grep -q '"error":"not ready: master.key is missing from the data folder' "$WORK/.body" || die "readyz reason: $(cat "$WORK/.body")" || return 1
	[ "$(nocert "$URL/readyz")" = 200 ] || die "readyz not back to 200"
}

# a 403 names the identity it refused
t_refusal_names_identity() {
	A policy create "$(policy idns CREATOR CREATOR)" >/dev/null || return 1
	# answered as if absent (404), and an absent name gets the same answer
	[ "$(as_b "$URL/v1/policies/idns")" = 404 ] || die "B read idns" || return 1
	[ "$(jq -r .identity "$WORK/.body")" = "$(key_of b)" ] || die "identity in the refusal: $(cat "$WORK/.body")" || return 1
	[ "$(jq -r .error "$WORK/.body")" = "no namespace idns that access_policy.read allows this client (absent or not allowed)" ] || die "reason: $(cat "$WORK/.body")" || return 1
	[ "$(as_b "$URL/v1/policies/idnx")" = 404 ] && [ "$(jq -r .identity "$WORK/.body")" = "$(key_of b)" ] || die "absent: $(cat "$WORK/.body")"
}

t_build_info_metric() {
	[ "$(nocert "$URL/metrics")" = 200 ] || return 1
	grep -qx "veil_cas_build_info{version=\"$VERSION\"} 1" "$WORK/.body" || die "no build_info for $VERSION"
}

# every 5xx is logged at level error and counted as 500: a stored record
# corrupted behind the CAS's back makes a read fail
t_5xx_logged_and_counted() {
	A policy create "$(policy broken CREATOR CREATOR)" >/dev/null || return 1
	local blob
	blob=$(sqlite3 "$WORK/data/cas.db" "SELECT hex(blob) FROM policies WHERE namespace = 'broken'")
	sqlite3 "$WORK/data/cas.db" "UPDATE policies SET blob = x'00' WHERE namespace = 'broken'" || return 1
	run A policy get broken && rejected && has "500" || return 1
	[ "$(nocert "$URL/metrics")" = 200 ] || return 1
	grep -qx 'veil_cas_requests_total{route="policy_get",status="500"} 1' "$WORK/.body" || die "500 not counted: $(grep status=\"5 "$WORK/.body")" || return 1
	grep -q 'level=error route=policy_get method=GET path="/v1/policies/broken" status=500 .* client='"$(key_of a)"' error="cannot open the stored policy"' "$WORK/request.log" ||
		die "500 not logged at level error: $(grep broken "$WORK/request.log")" || return 1
	# repaired behind its back again, then deleted the normal way (audited)
	sqlite3 "$WORK/data/cas.db" "UPDATE policies SET blob = x'$blob' WHERE namespace = 'broken'" || return 1
	A policy delete broken >/dev/null || die "cannot delete the repaired namespace"
}

# the request log: one line a request (time, level, route, status, ms, client); SIGHUP reopens it
t_request_log() {
	local ka
	ka=$(key_of a)
	run A policy get myPythonApp && ok || return 1
	grep -Eq '^time=[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]{12}Z level=info route=policy_get method=GET path="/v1/policies/myPythonApp" status=200 ms=[0-9]+\.[0-9]{3} client='"$ka"'$' "$WORK/request.log" ||
		die "no logfmt line for the read: $(tail -3 "$WORK/request.log")" || return 1
	run B policy get nskey && ok
	grep -q 'level=warn route=policy_get .* status=404 .* error="no namespace' "$WORK/request.log" || die "no warn line for a refusal" || return 1
	# probes are debug: below the default level
	nocert "$URL/healthz" >/dev/null
	! grep -q 'route=healthz method=GET' "$WORK/request.log" || die "a probe logged at info" || return 1
	# rotation: move the file, SIGHUP, the CAS writes a new one and keeps serving
	mv "$WORK/request.log" "$WORK/request.log.1"
	kill -HUP "$CAS_PID"
	sleep 0.2
	kill -0 "$CAS_PID" || die "SIGHUP killed the CAS" || return 1
	local before after
	before=$(grep -c 'route=policy_get .*path="/v1/policies/myPythonApp" status=200' "$WORK/request.log.1")
	run A policy get myPythonApp && ok || return 1
	after=$(grep -c 'route=policy_get .*path="/v1/policies/myPythonApp" status=200' "$WORK/request.log.1")
	[ "$after" = "$before" ] || die "after SIGHUP the old file still got the line ($before, then $after)" || return 1
	[ -f "$WORK/request.log" ] && grep -q 'route=policy_get .*path="/v1/policies/myPythonApp" status=200' "$WORK/request.log" ||
		die "SIGHUP did not reopen the log" || return 1
	# a client's path cannot forge a line: a percent-encoded one is logged as sent
	as_a "$URL/v1/policies/a%22b%0Aevil=1" >/dev/null
	grep -q 'path="/v1/policies/a%22b%0Aevil=1"' "$WORK/request.log" || die "path not logged verbatim" || return 1
	# and a raw quote and bytes from 0x7f are escaped (\" and \u00XX)
	raw_get '/v1/policies/a"b\x7f\xff"evil="1' >/dev/null || return 1
	grep -qF 'path="/v1/policies/a\"b\u007f\u00ff\"evil=\"1"' "$WORK/request.log" ||
		die "raw quote or byte not escaped: $(tail -2 "$WORK/request.log" | od -c | head)" || return 1
	# every line is one whole logfmt line: nothing forged or split
	! grep -Evq '^time=[0-9T:.Z-]+ level=[a-z]+ route=[a-z_]+ method=[A-Z]+ path="([^"\\]|\\.)*" status=[0-9]+ ms=[0-9.]+ client=([0-9a-f]{64}|-)( error=".*")?$' "$WORK/request.log" ||
		die "a line that is not logfmt: $(grep -Ev '^time=' "$WORK/request.log" | head -3)"
}

# one GET as A with a raw request line: python's ssl, with A's client key;
# PATH is a python bytes literal body (\xff, a raw ")
raw_get() {
	python3 - "$PORT" "$WORK/home-a/identity/cert.pem" "$WORK/home-a/identity/key.pem" "$1" <<'PY'
import ast, socket, ssl, sys
port, cert, key, path = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
ctx.minimum_version = ssl.TLSVersion.TLSv1_3
ctx.load_cert_chain(cert, key)
raw = ast.literal_eval('b"' + path.replace('"', '\\"') + '"')
with socket.create_connection(("127.0.0.1", port)) as s, ctx.wrap_socket(s) as t:
    t.sendall(b"GET " + raw + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
    reply = b""
    while True:
        chunk = t.recv(4096)
        if not chunk:
            break
        reply += chunk
print(reply.split(b"\r\n", 1)[0].decode())
PY
}

# JSON lines and --log-level warn (a restart with other flags)
t_request_log_json() {
	stop_cas || return 1
	CAS_FLAGS="--log-format json --log-level warn" start_cas "$WORK/data" || return 1
	: >"$WORK/request.log"
	run A policy get myPythonApp && ok || return 1
	run B policy get idns && rejected || return 1
	[ "$(wc -l <"$WORK/request.log")" -eq 1 ] || die "level warn kept: $(cat "$WORK/request.log")" || return 1
	jq -e --arg kb "$(key_of b)" '.level == "warn" and .route == "policy_get" and .method == "GET" and
		.path == "/v1/policies/idns" and .status == 404 and (.ms | type) == "number" and
		.client == $kb and (.error | startswith("no namespace idns")) and (.time | test("Z$"))' \
		"$WORK/request.log" >/dev/null || die "JSON line: $(cat "$WORK/request.log")" || return 1
	# a raw quote and bytes from 0x7f in the path: still one JSON line each, path intact
	raw_get '/v1/policies/a"b\x7f\xff\x01' >/dev/null || return 1
	[ "$(wc -l <"$WORK/request.log")" -eq 2 ] || die "not one line a request: $(cat "$WORK/request.log")" || return 1
	jq -e -s 'length == 2 and .[1].path == "/v1/policies/a\"b\u007f\u00ff\u0001" and .[1].status >= 400' \
		"$WORK/request.log" >/dev/null || die "JSON line of a raw path: $(tail -1 "$WORK/request.log")" || return 1
	stop_cas && start_cas "$WORK/data"
}

# secrets never reach the request log (nor the CAS's other output)
t_request_log_has_no_secret() {
	local canary=LOGCANARY-$RANDOM$RANDOM
	printf 'name: logcanary\naccess_policy: {read: [ANY]}\nservices:\n  - name: app\n    command: run\n    environment: {T: "$$SCONE::t$$"}\nsecrets:\n  - {name: t, kind: explicit, value: %s}\n' "$canary" >"$WORK/lc.yaml"
	A policy create "$WORK/lc.yaml" >/dev/null || return 1
	run B policy get logcanary && ok && has "$canary" || return 1 # the canary is really served
	[ "$(as_a -X PUT --data-binary "{\"policy\":\"name: logcanary\\nx: $canary\"}" "$URL/v1/policies/logcanary")" = 400 ] || return 1
	grep -q 'route=policy_get .*logcanary' "$WORK/request.log" || die "the reads were not logged" || return 1
	! grep -q "$canary" "$WORK/request.log" "$WORK/cas.err" "$WORK/cas.out" || die "the canary is in the log"
}

# starts the CAS restored in $1 on another port and lists A's policies there
# into $out (A's identity in another home: attesting makes that CAS the home's
# default)
serve_restored() {
	local port2=$((PORT + 1)) p2
	"$CAS" --data "$1" --listen "127.0.0.1:$port2" --threads 1 >"$WORK/r.out" 2>"$WORK/r.err" &
	p2=$!
	for _ in $(seq 100); do grep -q listening "$WORK/r.out" && break; sleep 0.05; done
	rm -rf "$WORK/home-r" && cp -a "$WORK/home-a" "$WORK/home-r"
	VEIL_HOME=$WORK/home-r "$VEIL" cas attest "https://127.0.0.1:$port2" $TESTING >/dev/null 2>&1
	run env VEIL_HOME="$WORK/home-r" "$VEIL" policy list --cas "https://127.0.0.1:$port2"
	kill -TERM "$p2"
	wait "$p2" || die "the restored CAS exited $?: $(cat "$WORK/r.err")" || return 1
	ok
}

# backup of a CAS taking writes, restore into a new folder, same hashes
t_backup_restore_round_trip() {
	local writer writer2 i
	# two clients write at once (their commits can reach the log in either order)
	(
		for i in $(seq 1 60); do
			A policy create "$(policy bk$i CREATOR CREATOR)" >/dev/null 2>&1
		done
	) &
	writer=$!
	(
		for i in $(seq 1 60); do
			B policy create "$(policy bkb$i CREATOR CREATOR)" >/dev/null 2>&1
		done
	) &
	writer2=$!
	sleep 1
	run sh -c 'umask 022 && exec "$@"' sh "$CAS" backup --data "$WORK/data" "$WORK/bk1" && ok || { wait $writer $writer2; return 1; }
	has "warning: $WORK/bk1 holds the CAS's master key" || { wait $writer $writer2; return 1; }
	wait $writer $writer2
	[ "$(stat -c %a "$WORK/bk1")" = 700 ] || die "backup folder not 0700" || return 1
	# under umask 022 too, every file of a backup is 0600, and the store is one file
	[ -z "$(find "$WORK/bk1" -type f ! -perm 0600)" ] || die "backup files not 0600: $(find "$WORK/bk1" -type f ! -perm 0600 -printf '%m %p\n')" || return 1
	[ -z "$(find "$WORK/bk1" -name '*-wal' -o -name '*-shm' -o -name '*-journal')" ] || die "backup holds: $(ls "$WORK/bk1")" || return 1
	[ "$(sqlite3 "$WORK/bk1/cas.db" 'PRAGMA journal_mode')" = delete ] || die "the copy is not in rollback-journal mode" || return 1
	[ -z "$(find "$WORK/bk1" -name '*-wal' -o -name '*-shm')" ] || die "reading the copy left -wal/-shm" || return 1
	head -1 "$WORK/bk1/BACKUP" | grep -qx "veil-cas backup 1" || return 1
	# consistent: the copied log's changes replayed give exactly the copied store
	run "$VEIL" audit verify "$WORK/bk1/audit.log" && ok || return 1
	jq -r 'select((.event=="create" and .status==201) or (.event=="update" and .status==200) or (.event=="delete" and .status==200)) | [.event, .namespace, .detail] | @tsv' \
		"$WORK/bk1/audit.log" | awk -F'\t' '$1=="delete"{delete h[$2]; next} {h[$2]=$3} END{for (n in h) print n, h[n]}' | sort >"$WORK/bk1.replay"
	sqlite3 -separator ' ' "$WORK/bk1/cas.db" 'SELECT namespace, hash FROM policies' | sort >"$WORK/bk1.rows"
	diff "$WORK/bk1.replay" "$WORK/bk1.rows" >&2 || die "backup store and audit log disagree" || return 1
	grep -q '^bk' "$WORK/bk1.rows" || die "the backup holds none of the concurrent writes" || return 1
	# the backup taken under writes, restored, serves exactly its rows
	run "$CAS" restore "$WORK/bk1" --data "$WORK/restored1" && ok || return 1
	sqlite3 -separator ' ' "$WORK/bk1/cas.db" "SELECT namespace, hash FROM policies WHERE owner = '$(key_of a)' ORDER BY namespace" >"$WORK/bk1.a"
	serve_restored "$WORK/restored1" || return 1
	[ "$out" = "$(cat "$WORK/bk1.a")" ] || die "restored bk1 serves: $(diff "$WORK/bk1.a" <(echo "$out"))" || return 1
	# a quiet backup equals the live CAS (into an empty folder made beforehand)
	mkdir -m 755 "$WORK/bk2"
	run "$CAS" backup --data "$WORK/data" "$WORK/bk2" && ok || return 1
	[ "$(stat -c %a "$WORK/bk2")" = 700 ] || die "backup into an empty folder: not 0700" || return 1
	run "$CAS" backup --data "$WORK/data" "$WORK/bk2" && rejected && has "exists and is not an empty folder" || return 1
	mkdir -p "$WORK/full" && touch "$WORK/full/x"
	run "$CAS" restore "$WORK/bk2" --data "$WORK/full" && rejected && has "exists and is not an empty folder" || return 1
	run "$CAS" restore "$WORK/data" --data "$WORK/r0" && rejected && has "is not a veil-cas backup" || return 1
	run "$CAS" restore "$WORK/bk2" --data "$WORK/restored" && ok && has "restored" || return 1
	[ "$(stat -c %a "$WORK/restored")" = 700 ] || die "restored folder not 0700" || return 1
	[ "$("$CAS" --print-key-hash --data "$WORK/restored")" = "$("$CAS" --print-key-hash --data "$WORK/data")" ] || die "key hash differs" || return 1
	local live
	live=$(A policy list)
	serve_restored "$WORK/restored" || return 1
	[ "$out" = "$live" ] || die "restored CAS serves other hashes: $(diff <(echo "$live") <(echo "$out"))" || return 1
	# a tampered backup is refused: a record the master key does not open
	cp -a "$WORK/bk2" "$WORK/bk3"
	sqlite3 "$WORK/bk3/cas.db" "UPDATE policies SET blob = x'00' WHERE namespace = 'nskey'" || return 1
	run "$CAS" restore "$WORK/bk3" --data "$WORK/r3" && rejected && has "namespace nskey does not open with the backup's master.key" || return 1
	[ ! -e "$WORK/r3" ] && [ ! -e "$WORK/r3.partial" ] || die "a refused restore left the folder" || return 1
	# an incomplete backup is refused, and nothing is left behind: an audit
	# log cut at a line boundary (it still verifies on its own), a row deleted
	# from the store, a damaged store
	rm -rf "$WORK/bk5" && cp -a "$WORK/bk2" "$WORK/bk5"
	head -n -1 "$WORK/bk2/audit.log" >"$WORK/bk5/audit.log"
	run "$VEIL" audit verify "$WORK/bk5/audit.log" && ok || die "the cut log should verify alone" || return 1
	run "$CAS" restore "$WORK/bk5" --data "$WORK/r5" && rejected &&
		has "audit.log holds $(($(wc -l <"$WORK/bk2/audit.log") - 1)) entries; BACKUP says $(wc -l <"$WORK/bk2/audit.log"): the backup is incomplete" || return 1
	[ ! -e "$WORK/r5" ] && [ ! -e "$WORK/r5.partial" ] || die "a refused restore left a folder" || return 1
	rm -rf "$WORK/bk6" && cp -a "$WORK/bk2" "$WORK/bk6"
	sqlite3 "$WORK/bk6/cas.db" "DELETE FROM policies WHERE namespace = 'nskey'" || return 1
	run "$CAS" restore "$WORK/bk6" --data "$WORK/r6" && rejected &&
		has "cas.db holds $(($(sed -n 's/^policies //p' "$WORK/bk2/BACKUP") - 1)) policies; BACKUP says $(sed -n 's/^policies //p' "$WORK/bk2/BACKUP"): the backup is incomplete" || return 1
	[ ! -e "$WORK/r6" ] && [ ! -e "$WORK/r6.partial" ] || die "a refused restore left a folder" || return 1
	# the row deleted and BACKUP's count lowered to match: the log still has it
	sed -i "s/^policies .*/policies $(sqlite3 "$WORK/bk6/cas.db" 'SELECT count(*) FROM policies')/" "$WORK/bk6/BACKUP"
	run "$CAS" restore "$WORK/bk6" --data "$WORK/r6" && rejected &&
		has "cas.db and audit.log disagree" || return 1
	[ ! -e "$WORK/r6" ] && [ ! -e "$WORK/r6.partial" ] || die "a refused restore left a folder" || return 1
	rm -rf "$WORK/bk7" && cp -a "$WORK/bk2" "$WORK/bk7"
	local page # page 2: the first table's root
	page=$(sqlite3 "$WORK/bk7/cas.db" 'PRAGMA page_size')
	head -c 512 /dev/urandom | dd of="$WORK/bk7/cas.db" bs=1 seek="$page" conv=notrunc status=none
	run "$CAS" restore "$WORK/bk7" --data "$WORK/r7" && rejected && has "cas.db" && has "damaged" || return 1
	[ ! -e "$WORK/r7" ] && [ ! -e "$WORK/r7.partial" ] || die "a refused restore left a folder" || return 1
	# a change in the store without its audit entry (a crash between the two):
	# no consistent backup exists, and none is made
	cp -a "$WORK/restored" "$WORK/unaudited"
	sqlite3 "$WORK/unaudited/cas.db" "INSERT INTO policies VALUES ('ghost', 'h', 'o', x'00', x'00')" || return 1
	run "$CAS" backup --data "$WORK/unaudited" "$WORK/bk4" && rejected || return 1
	has "error: $WORK/unaudited/audit.log does not describe the store's state" || return 1
	[ ! -e "$WORK/bk4" ] || die "an inconsistent backup was made" || return 1
}

# PRAGMA user_version: 4 today (2: the owner index, 3: the audit head, 4: the
# export index); a newer store is refused with the reason
t_schema_version() {
	[ "$(sqlite3 "$WORK/bk2/cas.db" 'PRAGMA user_version')" = 4 ] || die "schema version not 4" || return 1
	cp -a "$WORK/restored" "$WORK/newer"
	sqlite3 "$WORK/newer/cas.db" 'PRAGMA user_version=5' || return 1
	run timeout 10 "$CAS" --data "$WORK/newer" --listen "127.0.0.1:$((PORT + 2))" && [ "$rc" -eq 1 ] || die "newer schema: exit $rc" || return 1
	has "cas.db has schema version 5; this veil-cas ($VERSION) knows versions up to 4: run a newer veil-cas" || return 1
	# a store from before versions (0), one of version 1 (no owner index), 2
	# and 3 (no export index) are migrated to 4
	local v want
	want=$(sqlite3 "$WORK/restored/cas.db" "SELECT * FROM exports ORDER BY 1, 2")
	[ -n "$want" ] || die "no export in the store: nothing to rebuild" || return 1
	for v in 0 1 2 3; do
		rm -rf "$WORK/older" "$WORK/older-bk"
		cp -a "$WORK/restored" "$WORK/older"
		# a version below 2 has no owner index, below 4 no export index (the
		# audit head table is kept: the log must still match the head the
		# store committed)
		[ "$v" -ge 2 ] || sqlite3 "$WORK/older/cas.db" "DROP INDEX IF EXISTS policies_owner" || return 1
		sqlite3 "$WORK/older/cas.db" "DROP TABLE IF EXISTS exports; PRAGMA user_version=$v" || return 1
		run "$CAS" backup --data "$WORK/older" "$WORK/older-bk" && ok || return 1
		[ "$(sqlite3 "$WORK/older-bk/cas.db" 'PRAGMA user_version')" = 4 ] || die "$v not migrated" || return 1
		sqlite3 "$WORK/older-bk/cas.db" "SELECT name FROM sqlite_master WHERE type='index'" | grep -qx policies_owner ||
			die "$v: no owner index" || return 1
		# the index built from the policies is the one the CAS kept
		[ "$(sqlite3 "$WORK/older-bk/cas.db" "SELECT * FROM exports ORDER BY 1, 2")" = "$want" ] ||
			die "$v: export index $(sqlite3 "$WORK/older-bk/cas.db" "SELECT * FROM exports")" || return 1
	done
}

# a data folder with group/other access is tightened to 0700 at start
t_data_folder_tightened() {
	chmod 755 "$WORK/restored"
	"$CAS" --data "$WORK/restored" --listen "127.0.0.1:$((PORT + 3))" --threads 1 >"$WORK/t.out" 2>"$WORK/t.err" &
	local p=$!
	for _ in $(seq 100); do grep -q listening "$WORK/t.out" && break; sleep 0.05; done
	kill -TERM "$p"
	wait "$p" || die "veil-cas exited $? on SIGTERM: $(cat "$WORK/t.err")" || return 1
	grep -qx "warning: $WORK/restored was mode 0755 (group or others had access); it is now 0700" "$WORK/t.err" || die "no warning: $(cat "$WORK/t.err")" || return 1
	[ "$(stat -c %a "$WORK/restored")" = 700 ] || die "still $(stat -c %a "$WORK/restored")"
}

run_in_order cas t_start t_help t_health_and_metrics t_attest_refused_without_tolerance t_attest_wrong_mrenclave \
	t_attest_and_pin t_create_seed_policy t_create_refuses_predecessor t_authorization_matrix \
	t_update_needs_current_predecessor t_race_updates t_bad_input t_canary_never_stored_in_clear t_apply_uploads t_failed_apply_changes_nothing t_multi_apply_checks_every_mesh_first \
	t_policy_get_edit_update t_policy_edit_killed_removes_temp_file t_json_outputs t_veil_cas_env t_import_needs_consent t_child_namespaces \
	t_metrics_count_requests t_version_and_usage_errors t_print_key_hash t_second_cas_refused t_second_las_refused \
	t_curl_verifies_cas_certificate t_listen_all_interfaces_and_san t_health_ready_methods t_refusal_names_identity t_build_info_metric \
	t_5xx_logged_and_counted t_request_log t_request_log_json t_request_log_has_no_secret \
	t_backup_restore_round_trip t_schema_version t_data_folder_tightened \
	t_audit_log_verifies t_sigterm_clean_stop t_crash_safety t_lost_master_key_refuses_to_start t_pin_detects_new_key

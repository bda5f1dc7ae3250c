#!/usr/bin/env bash
# End-to-end tests of veil-cas and the CLI's CAS commands, on loopback.
# Every server is started here and stopped by PID. Usage: cas.sh BUILD_DIR
set -u
BUILD=$(realpath "$1")
VEIL=$BUILD/veil
CAS=$BUILD/veil-cas
ROOT=${VEIL_SOURCE_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
SEED=$ROOT/examples/python-hello-user
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
	"$CAS" --data "$1" $init --listen "127.0.0.1:$PORT" --threads 2 >"$WORK/cas.out" 2>"$WORK/cas.err" &
	CAS_PID=$!
	for _ in $(seq 100); do
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
	run "$CAS" && [ "$rc" -eq 2 ] && has "--data DIR is required" || return 1
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
	has "the CAS measurement is"
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
	run B policy get nsc && rejected && has "403" && has "access_policy.read of nsc does not allow" || return 1
	[ "$(nocert "$URL/v1/policies/nsc")" = 403 ] || die "no cert read" || return 1
	grep -q "a client certificate is required" "$WORK/.body" || die "no-cert reason" || return 1
	run B policy get nsany && ok || return 1
	[ "$(nocert "$URL/v1/policies/nsany")" = 403 ] || die "no cert ANY read" || return 1
	run A policy get nsnone && rejected && has "403" || return 1
	run B policy get nskey && ok || return 1
	run A policy get nskey && rejected && has "403" || return 1
	# update
	run B policy update "$(policy nsc CREATOR CREATOR "$h" 1)" && rejected && has "403" || return 1
	run B policy update "$(policy nsany ANY CREATOR "$(hash_of nsany)" 1)" && rejected && has "403" || return 1
	[ "$(nocert -X PUT --data-binary '{"policy":"name: nsc"}' "$URL/v1/policies/nsc")" = 403 ] || die "no cert update" || return 1
	run A policy update "$(policy nsnone NONE NONE "$(printf 'c%.0s' $(seq 64))" 1)" && rejected && has "403" || return 1
	# delete
	run B policy delete nsc && rejected && has "403" || return 1
	[ "$(nocert -X DELETE "$URL/v1/policies/nsc")" = 403 ] || die "no cert delete" || return 1
	run A policy delete nsnone && rejected && has "403" || return 1
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
	[ "$(as_a --path-as-is "$URL/v1/policies/../../etc/passwd")" = 404 ] || [ "$(cat "$WORK/.body" | grep -c error)" -eq 1 ] || die "traversal" || return 1
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
	if grep -rqa -e "$canary" -e "$envc" "$WORK/data" "$WORK/cas.out" "$WORK/cas.err"; then
		die "canary found in the data folder or logs"; grep -rla -e "$canary" -e "$envc" "$WORK/data" >&2; return 1
	fi
	# a non-owner with read access sees the policy, never generated values
	run B policy get canary && ok && lacks "kind: ascii\n    value"
}

# export/import between namespaces needs the exporting owner's consent
t_import_needs_consent() {
	printf 'name: exporter\nsecrets:\n  - {name: shared, kind: ascii, size: 12}\n' >"$WORK/exp.yaml"
	A policy create "$WORK/exp.yaml" >/dev/null || return 1
	printf 'name: importer\nsecrets:\n  - name: s\n    import: {namespace: exporter, secret: shared}\n' >"$WORK/imp.yaml"
	run B policy create "$WORK/imp.yaml" && rejected || return 1
	has "403" && has "namespace exporter does not export secret shared to importer" || return 1
	printf 'name: importer2\nsecrets:\n  - name: s\n    import: {namespace: nowhere}\n' >"$WORK/imp2.yaml"
	run B policy create "$WORK/imp2.yaml" && rejected && has "imports from namespace nowhere, which does not exist" || return 1
	# the exporter's owner consents
	local h
	h=$(A policy list | awk '$1=="exporter"{print $2}')
	printf 'name: exporter\npredecessor: %s\nsecrets:\n  - name: shared\n    kind: ascii\n    size: 12\n    export: [{namespace: importer}]\n' "$h" >"$WORK/exp2.yaml"
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
	run A policy create "$WORK/c2.yaml" && rejected && has "parent namespace nope does not exist" || return 1
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
	run "$VEIL" apply -f Other --mode debug --cas "$URL" && rejected && has "403" || return 1
	[ "$(tree_hash target)" = "$before" ] || die "target/ changed by an apply the CAS refused to read" || return 1
	# readable but not updatable: the local files are written, the CAS is not changed
	A policy create "$(policy readonly ANY CREATOR)" >/dev/null || return 1
	local h
	h=$(hash_of readonly)
	sed 's/namespace: myPythonApp/namespace: readonly/' "$SEED/Meshfile" >Ro
	changes1=$(changes)
	run "$VEIL" apply -f Ro --mode debug --cas "$URL" && rejected || return 1
	has "403" && has "target/policies/readonly.yaml and the chart are written, the CAS at $URL is unchanged" || return 1
	[ "$(hash_of readonly)" = "$h" ] || die "the refused update changed the CAS" || return 1
	[ "$(changes)" = "$changes1" ] || die "the refused update is a change in the audit log" || return 1
	grep -q "^predecessor: $h" target/policies/readonly.yaml || die "local policy not written" || return 1
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
	grep -q '^veil_cas_policies [0-9]' "$WORK/.body" || die "policies gauge"
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
	tail -1 "$WORK/data/audit.log" | grep -q '"event":"stop"' || die "no stop entry"
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
	start_cas "$WORK/data" || die "the intact store no longer starts"
}

t_pin_detects_new_key() {
	stop_cas || return 1
	start_cas "$WORK/data2" || return 1 # same address, another CAS
	run A policy list && rejected && has "different key than the one pinned" || return 1
	stop_cas
}

run_in_order cas t_start t_help t_health_and_metrics t_attest_refused_without_tolerance t_attest_wrong_mrenclave \
	t_attest_and_pin t_create_seed_policy t_create_refuses_predecessor t_authorization_matrix \
	t_update_needs_current_predecessor t_race_updates t_bad_input t_canary_never_stored_in_clear t_apply_uploads t_failed_apply_changes_nothing \
	t_policy_get_edit_update t_json_outputs t_veil_cas_env t_import_needs_consent t_child_namespaces \
	t_metrics_count_requests t_audit_log_verifies t_sigterm_clean_stop t_crash_safety t_lost_master_key_refuses_to_start t_pin_detects_new_key

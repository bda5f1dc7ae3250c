#!/usr/bin/env bash
# Attacks on the CAS's consent and evidence rules (issue 9: H3, M2, L3, L4),
# each performed against a real veil-cas on loopback. No root, no veil-las:
# simulation evidence is made here with a platform key the CAS trusts
# (--trust-platform), standing in for evidence a node's veil-las signed and
# an attacker recorded; the attacker's own platform key is another one.
# Every server is started here and stopped by PID. Usage: attack_consent.sh BUILD_DIR
#
# Seen against the code before the fix (commit 1c7cc1f), every attack below
# SUCCEEDED:
#   H3 a name-only export to `partner` was accepted (201); identity B then
#      created `partner` importing the secret and listing B's own platform
#      key, and /v1/attest with evidence B signed itself returned the
#      exporter's value (200); B's own namespace listing B's key opened the
#      same way (200).
#   M2 evidence with timestamp 1 opened a namespace (200); evidence made for
#      m2a/app opened m2b/app (200); a client certificate that expired in
#      2020 created a namespace (201).
#   L3 a parent with a child was deleted (200: its name free for anyone to
#      take, and with it the child's parent); the creator of an
#      `update: [NONE]` policy could not delete it (403, ever); a client
#      created a 21st namespace (no quota).
#   L4 GET/PUT/DELETE of an absent namespace answered 404, of another
#      client's 403 (the name's existence leaked); /v1/attest with bad
#      evidence answered 404 "no namespace" / "no service" for absent ones
#      and 403 for existing ones.
#   Re-run against that commit's veil-cas (CAS_EXTRA= drops the flag it does
#   not know): 2 passed, 14 failed, each failure an attack that succeeded.
set -u
BUILD=$(realpath "$1")
CAS=$BUILD/veil-cas
ROOT=${VEIL_SOURCE_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
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

# keys, certificates, evidence and request bodies
# (python3's standard library and the openssl command only: what the CI's
# fresh root filesystem has)
cat >"$WORK/tool.py" <<'PY'
import base64, hashlib, json, os, subprocess, sys

def ossl(*a, data=None):
    return subprocess.run(["openssl", *a], input=data, check=True, capture_output=True).stdout

def new_key(path):
    ossl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", path)
    return hashlib.sha256(ossl("pkey", "-in", path, "-pubout", "-outform", "DER")).hexdigest()

cmd, args = sys.argv[1], sys.argv[2:]
if cmd == "key":  # PATH: a P-256 key; prints its hash
    print(new_key(args[0]))
elif cmd == "cert":  # PREFIX [expired]: PREFIX.key, PREFIX.crt; prints the key hash
    p = args[0]
    h = new_key(p + ".key")
    if len(args) > 1 and args[1] == "expired":
        # valid on 1 January 2020 only: openssl ca sets explicit dates
        d = p + ".ca"
        os.makedirs(d, exist_ok=True)
        open(d + "/index.txt", "w").close()
        open(d + "/serial", "w").write("01\n")
        open(d + "/ca.cnf", "w").write(
            "[ca]\ndefault_ca = d\n[d]\ndatabase = %s/index.txt\nnew_certs_dir = %s\n"
            "serial = %s/serial\ndefault_md = sha256\npolicy = p\n[p]\ncommonName = supplied\n" % (d, d, d))
        ossl("req", "-new", "-key", p + ".key", "-subj", "/CN=attacker", "-out", d + "/csr.pem")
        ossl("ca", "-batch", "-config", d + "/ca.cnf", "-selfsign", "-keyfile", p + ".key",
             "-in", d + "/csr.pem", "-startdate", "20200101000000Z", "-enddate", "20200102000000Z",
             "-out", p + ".crt")
    else:
        ossl("req", "-x509", "-key", p + ".key", "-subj", "/CN=attacker", "-days", "30", "-out", p + ".crt")
    print(h)
elif cmd == "attest":  # PLATFORM_KEY MEASUREMENT REPORT_DATA TIMESTAMP CONFIG_ID [EVIDENCE_CONFIG_ID]
    claims = {"measurement": args[1], "report_data": args[2], "debug": True,
              "timestamp": int(args[3]), "tcb_status": "up-to-date"}
    if len(args) > 5:
        claims["config_id"] = args[5]
    text = json.dumps(claims, separators=(",", ":"))
    sig = ossl("dgst", "-sha256", "-sign", args[0], data=text.encode())
    pem = ossl("pkey", "-in", args[0], "-pubout").decode()
    ev = {"platform": "sim", "version": 1, "platform_key": pem, "claims": text,
          "signature": base64.b64encode(sig).decode()}
    print(json.dumps({"config_id": args[4], "evidence": json.dumps(ev, separators=(",", ":"))}))
elif cmd == "policy":  # FILE: the body of a create/update
    print(json.dumps({"policy": open(args[0]).read()}))
PY
tool() { python3 "$WORK/tool.py" "$@"; }

MEAS=$(printf 'b%.0s' $(seq 64))
# as ID METHOD PATH [BODY-FILE]: prints the status, the answer in $WORK/.body
as() {
	local id=$1 m=$2 p=$3
	shift 3
	curl -sk --tlsv1.3 --cert "$WORK/$id.crt" --key "$WORK/$id.key" -o "$WORK/.body" \
		-w '%{http_code}' -X "$m" ${1:+--data-binary @"$1"} "$URL$p"
}
body_has() { grep -qF -- "$1" "$WORK/.body" || die "expected in the answer: $1"$'\n'"    got: $(cat "$WORK/.body")"; }
# opened_has ID TEXT: the /v1/attest answer in $WORK/.body, sealed to ID's key
# (include/veil/sealed.h), opens for the request in $WORK/att.json and holds TEXT
opened_has() {
	"$BUILD/tests/sealed_open" "$WORK/$1.key" "$WORK/att.json" <"$WORK/.body" >"$WORK/.opened" &&
		grep -qF -- "$2" "$WORK/.opened" || die "expected in the opened answer: $2"$'\n'"    got: $(cat "$WORK/.opened")"
}
# create ID FILE: POST the policy in FILE as ID; prints the status
create() { tool policy "$2" >"$WORK/req.json" && as "$1" POST /v1/policies "$WORK/req.json"; }
# attest ID CONFIG_ID [TIMESTAMP [EVIDENCE_CONFIG_ID [PLATFORM]]]: evidence for ID's key
attest() {
	local id=$1 cfg=$2 ts=${3:-$(date +%s)} evcfg=${4:-$2} plat=${5:-platform}
	tool attest "$WORK/$plat.key" "$MEAS" "${KEYS[$id]}" "$ts" "$cfg" "$evcfg" >"$WORK/att.json" &&
		as "$id" POST /v1/attest "$WORK/att.json"
}
# a policy with one attestable service `app` and one ascii secret, plus extras
policy() { # NS [extra service lines] [extra top-level lines]
	{
		echo "name: $1"
		echo "services:"
		echo "  - name: app"
		echo "    command: /bin/true"
		echo "    mrenclaves: [$MEAS]"
		echo "    environment: {SECRET: \"\$\$SCONE::s\$\$\"}"
		[ -n "${2:-}" ] && echo "$2"
		echo "secrets:"
		echo "  - {name: s, kind: ascii, size: 12}"
		[ -n "${3:-}" ] && echo "$3"
		echo "security: {attestation: {tolerate: [debug-mode]}}"
	} >"$WORK/${1//\//_}.yaml"
	echo "$WORK/${1//\//_}.yaml"
}
declare -A KEYS

start_cas() {
	"$CAS" --init --data "$WORK/cas" --listen "127.0.0.1:$PORT" --threads 2 \
		--trust-platform "$PLATFORM" "$@" >"$WORK/cas.out" 2>"$WORK/cas.err" &
	CAS_PID=$!
	for _ in $(seq 600); do
		grep -q "listening" "$WORK/cas.out" 2>/dev/null && return 0
		kill -0 "$CAS_PID" 2>/dev/null || break
		sleep 0.05
	done
	cat "$WORK/cas.err" >&2
	return 1
}

t_setup() {
	PLATFORM=$(tool key "$WORK/platform.key") || return 1
	tool key "$WORK/bplatform.key" >"$WORK/bplatform.hash" || return 1
	for id in a b c q; do KEYS[$id]=$(tool cert "$WORK/$id") || return 1; done
	KEYS[old]=$(tool cert "$WORK/old" expired) || return 1
	start_cas ${CAS_EXTRA---max-namespaces-per-client 20} || die "veil-cas did not start"
}

# ---- H3: export consent binds the importer's identity, not a name ----
t_h3_name_only_export_refused() {
	# A exports `shared` to whoever will be called `partner`
	local f g code
	f=$(policy exporter '' '  - {name: shared, kind: ascii, size: 16, export: [{namespace: partner}]}')
	code=$(create a "$f")
	if [ "$code" = 201 ]; then
		# the attack: B names itself partner, lists its own platform key, imports
		g=$(policy partner "    platforms: [$(cat "$WORK/bplatform.hash")]" '  - {name: stolen, import: {namespace: exporter, secret: shared}}')
		sed -i 's|\$\$SCONE::s\$\$|$$SCONE::stolen$$|' "$g"
		code=$(create b "$g")
		[ "$code" = 201 ] && code=$(attest b partner/app "" "" bplatform)
		die "a name-only export was accepted; B's import then answered $code: $(cat "$WORK/.body")"
		as a DELETE /v1/policies/exporter >/dev/null
		as b DELETE /v1/policies/partner >/dev/null
		return 1
	fi
	[ "$code" = 400 ] || die "name-only export: $code $(cat "$WORK/.body")" || return 1
	body_has "export to partner needs the importer's identity"
}

t_h3_other_identity_cannot_import() {
	# A consents to `partner` owned by C; B creates `partner` first
	local f
	f=$(policy exporter '' "  - {name: shared, kind: ascii, size: 16, export: [{namespace: partner, owner: ${KEYS[c]}}]}")
	[ "$(create a "$f")" = 201 ] || die "exporter: $(cat "$WORK/.body")" || return 1
	f=$(policy partner '' '  - {name: stolen, import: {namespace: exporter, secret: shared}}')
	sed -i 's|\$\$SCONE::s\$\$|$$SCONE::stolen$$|' "$f"
	[ "$(create b "$f")" = 403 ] || die "B imported A's secret: $(cat "$WORK/.body")" || return 1
	body_has "does not export secret shared to partner"
	# C, the importer A named, can
	[ "$(create c "$f")" = 201 ] || die "C: $(cat "$WORK/.body")" || return 1
	[ "$(attest c partner/app)" = 200 ] || die "C's start: $(cat "$WORK/.body")" || return 1
	opened_has c '"SECRET":'
	# C deletes `partner`; B takes the name: still nothing
	[ "$(as c DELETE /v1/policies/partner)" = 200 ] || return 1
	[ "$(create b "$f")" = 403 ] || die "B re-created partner and imported: $(cat "$WORK/.body")"
}

t_h3_session_hash_binds_the_policy() {
	local f g h p2 port2
	# a port nobody holds now (PORT + 1 collided with another test's CAS once)
	port2=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
	g=$(policy sh_partner '' '  - {name: got, import: {namespace: sh_exporter, secret: shared}}')
	sed -i 's|\$\$SCONE::s\$\$|$$SCONE::got$$|' "$g"
	f=$(policy sh_exporter '' "  - {name: shared, kind: ascii, size: 16, export: [{namespace: sh_partner, session_hash: $(printf 'c%.0s' $(seq 64))}]}")
	[ "$(create a "$f")" = 201 ] || die "exporter: $(cat "$WORK/.body")" || return 1
	[ "$(create a "$g")" = 403 ] || die "a policy of another hash imported: $(cat "$WORK/.body")" || return 1
	body_has "does not export secret shared to sh_partner"
	# the importer's policy hash, learnt from a scratch CAS that accepts it
	"$CAS" --init --data "$WORK/cas2" --listen "127.0.0.1:$port2" --threads 1 >"$WORK/cas2.out" 2>&1 &
	p2=$!
	for _ in $(seq 200); do grep -q listening "$WORK/cas2.out" && break; sleep 0.05; done
	grep -q listening "$WORK/cas2.out" || die "the scratch CAS did not start: $(cat "$WORK/cas2.out")" || return 1
	sed "s|session_hash: c*}|owner: ${KEYS[a]}}|" "$f" >"$WORK/f2.yaml"
	tool policy "$WORK/f2.yaml" >"$WORK/req.json"
	URL=https://127.0.0.1:$port2 as a POST /v1/policies "$WORK/req.json" >/dev/null
	tool policy "$g" >"$WORK/req.json"
	URL=https://127.0.0.1:$port2 as a POST /v1/policies "$WORK/req.json" >/dev/null
	h=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["hash"])' "$WORK/.body")
	kill -TERM "$p2"
	wait "$p2"
	[ ${#h} = 64 ] || die "no hash from the scratch CAS: $(cat "$WORK/.body")" || return 1
	# consent to that very policy: whoever uploads it (here B) imports, and
	# its start gets the value; any other content does not
	tool policy "$f" >"$WORK/req.json"
	local cur
	cur=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["hash"])' <(as a GET /v1/policies/sh_exporter >/dev/null; cat "$WORK/.body"))
	sed -i "s|session_hash: c*}|session_hash: $h}|; 1a predecessor: $cur" "$f"
	tool policy "$f" >"$WORK/req.json"
	[ "$(as a PUT /v1/policies/sh_exporter "$WORK/req.json")" = 200 ] || die "exporter update: $(cat "$WORK/.body")" || return 1
	[ "$(create b "$g")" = 201 ] || die "the consented policy: $(cat "$WORK/.body")" || return 1
	[ "$(attest b sh_partner/app)" = 200 ] || die "its start: $(cat "$WORK/.body")" || return 1
	opened_has b '"SECRET":'
}

# ---- H3: a name an export names stays its importer's ----
# Seen against the code before the fix (commit 3aac5c7), each attack
# SUCCEEDED (4 failed): B created rsv_partner while C's export named it for A
# (201), re-created it after A deleted it (201), created rsv_partner2, which a
# session_hash-only export names for a policy of another hash (201), and
# created mig_partner once a store of schema 3 was opened (201; the store
# stayed at schema 3).
# current_hash ID NS: the namespace's policy hash, as ID reads it
current_hash() {
	as "$1" GET "/v1/policies/$2" >/dev/null &&
		python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["hash"])' "$WORK/.body"
}

t_h3_exported_name_reserved() {
	# C exports to rsv_partner, bound to A
	local f g
	f=$(policy rsv_exporter '' "  - {name: shared, kind: ascii, size: 16, export: [{namespace: rsv_partner, owner: ${KEYS[a]}}]}")
	[ "$(create c "$f")" = 201 ] || die "exporter: $(cat "$WORK/.body")" || return 1
	# the attack: B takes the name first (a plain policy: no import to refuse)
	g=$(policy rsv_partner)
	if [ "$(create b "$g")" != 403 ]; then
		die "B created the name C's export names for A: $(cat "$WORK/.body")"
		as b DELETE /v1/policies/rsv_partner >/dev/null
		create a "$g" >/dev/null
		return 1
	fi
	body_has "namespace rsv_partner is reserved"
	! grep -qF -e rsv_exporter -e "${KEYS[a]}" "$WORK/.body" || die "the refusal names the exporter or the owner" || return 1
	[ "$(create a "$g")" = 201 ] || die "A, the importer C named: $(cat "$WORK/.body")" || return 1
	# a child namespace alike: B's parent lets A and B create under it, C's
	# export names rsv_par/kid for A
	f=$(policy rsv_par)
	sed -i "1a access_policy: {create_sessions: [CREATOR, ${KEYS[a]}]}" "$f"
	[ "$(create b "$f")" = 201 ] || die "B's parent: $(cat "$WORK/.body")" || return 1
	f=$(policy rsv_exporter_kid '' "  - {name: shared, kind: ascii, size: 16, export: [{namespace: rsv_par/kid, owner: ${KEYS[a]}}]}")
	[ "$(create c "$f")" = 201 ] || die "exporter of the child: $(cat "$WORK/.body")" || return 1
	[ "$(create b "$(policy rsv_par/kid)")" = 403 ] || die "B created the child C's export names for A: $(cat "$WORK/.body")" || return 1
	body_has "namespace rsv_par/kid is reserved"
	[ "$(create a "$(policy rsv_par/kid)")" = 201 ] || die "A's child: $(cat "$WORK/.body")"
}

t_h3_deleted_name_not_recreatable() {
	local g
	g=$(policy rsv_partner)
	[ "$(as a DELETE /v1/policies/rsv_partner)" = 200 ] || die "A's delete: $(cat "$WORK/.body")" || return 1
	if [ "$(create b "$g")" != 403 ]; then
		die "B re-created rsv_partner while C's export names it: $(cat "$WORK/.body")"
		as b DELETE /v1/policies/rsv_partner >/dev/null
		return 1
	fi
	body_has "namespace rsv_partner is reserved"
	# A may again
	[ "$(create a "$g")" = 201 ] && [ "$(as a DELETE /v1/policies/rsv_partner)" = 200 ] || die "A again: $(cat "$WORK/.body")"
}

t_h3_name_free_once_export_removed() {
	local f cur
	f=$(policy rsv_exporter)
	cur=$(current_hash c rsv_exporter) || die "read: $(cat "$WORK/.body")" || return 1
	sed -i "1a predecessor: $cur" "$f"
	tool policy "$f" >"$WORK/req.json"
	[ "$(as c PUT /v1/policies/rsv_exporter "$WORK/req.json")" = 200 ] || die "exporter update: $(cat "$WORK/.body")" || return 1
	[ "$(create b "$(policy rsv_partner)")" = 201 ] || die "B, once no export names rsv_partner: $(cat "$WORK/.body")" || return 1
	# deleting the exporter frees its names too
	f=$(policy rsv_exporter2 '' "  - {name: shared, kind: ascii, size: 16, export: [{namespace: rsv_partner2, session_hash: $(printf 'd%.0s' $(seq 64))}]}")
	[ "$(create c "$f")" = 201 ] || die "exporter2: $(cat "$WORK/.body")" || return 1
	[ "$(create b "$(policy rsv_partner2)")" = 403 ] || die "B, policy of another hash: $(cat "$WORK/.body")" || return 1
	[ "$(as c DELETE /v1/policies/rsv_exporter2)" = 200 ] || return 1
	[ "$(create b "$(policy rsv_partner2)")" = 201 ] || die "B, once the exporter is gone: $(cat "$WORK/.body")"
}

# a store of schema 3 (no export index) gets its index built at start, from
# the policies the master key opens
t_h3_index_built_from_schema_3() {
	local f
	f=$(policy mig_exporter '' "  - {name: shared, kind: ascii, size: 16, export: [{namespace: mig_partner, owner: ${KEYS[a]}}]}")
	[ "$(create c "$f")" = 201 ] || die "exporter: $(cat "$WORK/.body")" || return 1
	kill -TERM "$CAS_PID" && wait "$CAS_PID" || die "veil-cas exited $?" || return 1
	CAS_PID=
	sqlite3 "$WORK/cas/cas.db" "DROP TABLE IF EXISTS exports; PRAGMA user_version=3" || return 1
	"$CAS" --data "$WORK/cas" --listen "127.0.0.1:$PORT" --threads 2 --trust-platform "$PLATFORM" \
		${CAS_EXTRA---max-namespaces-per-client 20} >"$WORK/cas.out" 2>"$WORK/cas.err" &
	CAS_PID=$!
	wait_for "$WORK/cas.out" listening || die "restart: $(cat "$WORK/cas.err")" || return 1
	[ "$(create b "$(policy mig_partner)")" = 403 ] || die "B created mig_partner after the migration: $(cat "$WORK/.body")" || return 1
	body_has "namespace mig_partner is reserved"
	[ "$(create a "$(policy mig_partner)")" = 201 ] || die "A: $(cat "$WORK/.body")" || return 1
	[ "$(sqlite3 "$WORK/cas/cas.db" 'PRAGMA user_version')" = 4 ] || die "schema version not 4"
}

t_h3_policy_platform_not_trusted() {
	# B's namespace lists B's own platform key: B's self-made evidence opens it
	local f
	f=$(policy bplat "    platforms: [$(cat "$WORK/bplatform.hash")]")
	[ "$(create b "$f")" = 201 ] || die "create: $(cat "$WORK/.body")" || return 1
	[ "$(attest b bplat/app "" "" bplatform)" = 403 ] || die "self-declared platform trusted: $(cat "$WORK/.body")" || return 1
	body_has "is not trusted"
}

# ---- M2: evidence is fresh, bound to its config id; certificates valid ----
t_m2_setup() {
	[ "$(create a "$(policy m2a)")" = 201 ] && [ "$(create a "$(policy m2b)")" = 201 ] || die "$(cat "$WORK/.body")" || return 1
	[ "$(attest a m2a/app)" = 200 ] || die "a fresh start: $(cat "$WORK/.body")"
}

t_m2_old_evidence_refused() {
	[ "$(attest a m2a/app 1)" = 403 ] || die "timestamp 1 accepted: $(cat "$WORK/.body")" || return 1
	body_has "evidence is not fresh"
	[ "$(attest a m2a/app $(($(date +%s) - 600)))" = 403 ] || die "10-minute-old evidence accepted" || return 1
	[ "$(attest a m2a/app $(($(date +%s) + 600)))" = 403 ] || die "evidence from the future accepted" || return 1
	[ "$(attest a m2a/app -9223372036854775808)" = 403 ] && [ "$(attest a m2a/app 9223372036854775807)" = 403 ] ||
		die "extreme timestamps: $(cat "$WORK/.body")"
}

t_m2_evidence_for_other_config_refused() {
	[ "$(attest a m2b/app "" m2a/app)" = 403 ] || die "m2a's evidence opened m2b: $(cat "$WORK/.body")" || return 1
	body_has "evidence was made for m2a/app, not m2b/app"
	# evidence without a config id (the old format) is refused too
	tool attest "$WORK/platform.key" "$MEAS" "${KEYS[a]}" "$(date +%s)" m2a/app >"$WORK/att.json" || return 1
	[ "$(as a POST /v1/attest "$WORK/att.json")" = 403 ] || die "evidence without config_id accepted: $(cat "$WORK/.body")"
	body_has "evidence was made for (no config id), not m2a/app"
}

t_m2_expired_client_certificate_refused() {
	[ "$(create old "$(policy m2old)")" = 403 ] || die "expired certificate created a namespace: $(cat "$WORK/.body")" || return 1
	body_has "client certificate is outside its validity period"
	[ "$(attest old m2a/app)" = 403 ] || die "expired certificate attested: $(cat "$WORK/.body")" || return 1
	body_has "client certificate is outside its validity period"
}

# code_key 403s in /metrics (every route that needs a client certificate
# counts a refused out-of-date one under its own name, as /v1/attest does;
# it counted under "other")
code_key_403s() {
	as a GET /metrics >/dev/null || return 1
	awk '$1 == "veil_cas_requests_total{route=\"code_key\",status=\"403\"}" {n = $2} END {print n + 0}' "$WORK/.body"
}
t_m2_expired_certificate_counts_under_its_route() {
	local before after
	before=$(code_key_403s) || return 1
	[ "$(as old POST /v1/code-keys)" = 403 ] || die "expired certificate got a code key: $(cat "$WORK/.body")" || return 1
	body_has "client certificate is outside its validity period" || return 1
	after=$(code_key_403s) || return 1
	[ "$after" -eq $((before + 1)) ] || die "code_key 403s in /metrics: $before, then $after"
}

# ---- L3: parents, NONE, quota ----
t_l3_parent_with_children_not_deleted() {
	[ "$(create a "$(policy l3p)")" = 201 ] && [ "$(create a "$(policy l3p/kid)")" = 201 ] || die "$(cat "$WORK/.body")" || return 1
	[ "$(as a DELETE /v1/policies/l3p)" = 409 ] || die "parent deleted with a child: $(cat "$WORK/.body")" || return 1
	body_has "has child namespaces"
	[ "$(create b "$(policy l3p)")" = 409 ] || die "B took over the parent" || return 1
	# children first, then the parent
	[ "$(as a DELETE /v1/policies/l3p/kid)" = 200 ] && [ "$(as a DELETE /v1/policies/l3p)" = 200 ] || die "$(cat "$WORK/.body")"
}

t_l3_update_none_deletable_by_creator() {
	local f
	f=$(policy l3frozen)
	sed -i '1a access_policy: {update: [NONE]}' "$f"
	[ "$(create a "$f")" = 201 ] || die "$(cat "$WORK/.body")" || return 1
	tool policy "$f" >"$WORK/req.json"
	[ "$(as a PUT /v1/policies/l3frozen "$WORK/req.json")" != 200 ] || die "NONE updated" || return 1
	[ "$(as b DELETE /v1/policies/l3frozen)" != 200 ] || die "B deleted A's namespace" || return 1
	[ "$(as a DELETE /v1/policies/l3frozen)" = 200 ] || die "the creator cannot delete a NONE policy: $(cat "$WORK/.body")"
}

t_l3_quota_per_client() {
	local i code
	for i in $(seq 20); do
		code=$(create q "$(policy "q$i")")
		[ "$code" = 201 ] || die "q$i: $code $(cat "$WORK/.body")" || return 1
	done
	[ "$(create q "$(policy q21)")" = 403 ] || die "a 21st namespace over --max-namespaces-per-client 20" || return 1
	body_has "at most 20 namespaces per client"
	# deleting one makes room
	[ "$(as q DELETE /v1/policies/q1)" = 200 ] && [ "$(create q "$(policy q21)")" = 201 ] || die "$(cat "$WORK/.body")"
}

# creates racing for the last free places of the quota get exactly those:
# the count is in the create's transaction (before, it was counted before the
# transaction, so concurrent creates on the CAS's two workers could pass it:
# seen against a86b2f9, 1 run in 3 let 6 of 16 through with 5 places left)
t_l3_quota_concurrent_creates() {
	local i n=0 codes jobs=()
	for i in 2 3 4 5 6; do
		[ "$(as q DELETE /v1/policies/q$i)" = 200 ] || die "q$i: $(cat "$WORK/.body")" || return 1
	done
	for i in $(seq 16); do tool policy "$(policy "qc$i")" >"$WORK/qc$i.json" || return 1; done
	for i in $(seq 16); do
		curl -sk --tlsv1.3 --cert "$WORK/q.crt" --key "$WORK/q.key" -o /dev/null -w '%{http_code}\n' \
			-X POST --data-binary @"$WORK/qc$i.json" "$URL/v1/policies" >"$WORK/qc$i.code" &
		jobs+=($!)
	done
	wait "${jobs[@]}"
	codes=$(cat "$WORK"/qc*.code | sort | uniq -c | tr -s ' ' | tr '\n' ';')
	n=$(cat "$WORK"/qc*.code | grep -c '^201$')
	[ "$n" = 5 ] || die "16 concurrent creates with 5 places left: $codes" || return 1
	[ "$(create q "$(policy qc99)")" = 403 ] || die "a create over the quota after the race"
}

# ---- L4: no existence oracle ----
t_l4_absent_and_not_yours_answer_alike() {
	local m a n
	tool policy "$(policy m2a)" >"$WORK/req.json"
	for m in GET PUT DELETE; do
		a=$(as b "$m" /v1/policies/m2a "$WORK/req.json")
		cp "$WORK/.body" "$WORK/mine.body"
		n=$(as b "$m" /v1/policies/nosuchns "$WORK/req.json")
		sed -i 's/nosuchns/m2a/g' "$WORK/.body"
		[ "$a" = "$n" ] && cmp -s "$WORK/mine.body" "$WORK/.body" ||
			die "$m: existing $a $(cat "$WORK/mine.body") vs absent $n $(cat "$WORK/.body")" || return 1
	done
	# a child under someone else's parent vs under an absent one
	a=$(create b "$(policy m2a/kid)")
	cp "$WORK/.body" "$WORK/mine.body"
	n=$(create b "$(policy nosuchns/kid)")
	sed -i 's/nosuchns/m2a/g' "$WORK/.body"
	[ "$a" = "$n" ] && cmp -s "$WORK/mine.body" "$WORK/.body" ||
		die "child: existing $a $(cat "$WORK/mine.body") vs absent $n $(cat "$WORK/.body")" || return 1
	# an import from someone else's namespace vs from an absent one
	local f
	f=$(policy l4imp '' '  - {name: x, import: {namespace: exporter, secret: nosuchsecret}}')
	a=$(create b "$f")
	cp "$WORK/.body" "$WORK/mine.body"
	sed -i 's/namespace: exporter, secret: nosuchsecret/namespace: nosuchns, secret: nosuchsecret/' "$f"
	n=$(create b "$f")
	sed -i 's/nosuchns/exporter/g' "$WORK/.body"
	[ "$a" = "$n" ] && cmp -s "$WORK/mine.body" "$WORK/.body" ||
		die "import: existing $a $(cat "$WORK/mine.body") vs absent $n $(cat "$WORK/.body")"
}

t_l4_attest_checks_evidence_first() {
	local a n s
	# evidence of an untrusted platform: the same answer whatever the config id names
	a=$(attest b m2a/app "" "" bplatform)
	cp "$WORK/.body" "$WORK/mine.body"
	n=$(attest b nosuchns/app "" "" bplatform)
	sed -i 's|nosuchns/app|m2a/app|g' "$WORK/.body"
	s=$(attest b m2a/nosuchsvc "" "" bplatform)
	sed -i 's|m2a/nosuchsvc|m2a/app|g' "$WORK/.body"
	cp "$WORK/.body" "$WORK/svc.body"
	n2=$(attest b nosuchns/app "" "" bplatform)
	sed -i 's|nosuchns/app|m2a/app|g' "$WORK/.body"
	[ "$a" = 403 ] && [ "$a" = "$n" ] && [ "$a" = "$s" ] && cmp -s "$WORK/mine.body" "$WORK/.body" &&
		cmp -s "$WORK/mine.body" "$WORK/svc.body" ||
		die "bad evidence: existing $a $(cat "$WORK/mine.body") vs absent $n / service $s $(cat "$WORK/svc.body")" || return 1
	# stale evidence alike
	a=$(attest b m2a/app 1)
	cp "$WORK/.body" "$WORK/mine.body"
	n=$(attest b nosuchns/app 1)
	sed -i 's|nosuchns/app|m2a/app|g' "$WORK/.body"
	# the CAS's clock may have ticked between the two
	sed -i 's|time is [0-9]*|time is T|' "$WORK/.body" "$WORK/mine.body"
	[ "$a" = "$n" ] && cmp -s "$WORK/mine.body" "$WORK/.body" ||
		die "stale evidence: existing $a $(cat "$WORK/mine.body") vs absent $n $(cat "$WORK/.body")"
}

# the operator may opt in to self-declared platforms (--allow-policy-platforms):
# then a key a service lists counts, for that service only
t_h3_operator_allows_policy_platforms() {
	kill -TERM "$CAS_PID" && wait "$CAS_PID" || die "veil-cas exited $?" || return 1
	CAS_PID=
	"$CAS" --data "$WORK/cas" --listen "127.0.0.1:$PORT" --threads 2 --trust-platform "$PLATFORM" \
		--allow-policy-platforms >"$WORK/cas.out" 2>"$WORK/cas.err" &
	CAS_PID=$!
	for _ in $(seq 600); do grep -q "listening" "$WORK/cas.out" 2>/dev/null && break; sleep 0.05; done
	[ "$(attest b bplat/app "" "" bplatform)" = 200 ] || die "opted in, bplat: $(cat "$WORK/.body")" || return 1
	[ "$(attest a m2a/app "" "" bplatform)" = 403 ] || die "B's platform opened A's m2a: $(cat "$WORK/.body")" || return 1
	body_has "is not trusted for m2a/app"
}

t_stop() {
	kill -TERM "$CAS_PID" && wait "$CAS_PID"
	local r=$?
	CAS_PID=
	[ "$r" -eq 0 ] || die "veil-cas exited $r: $(tail -3 "$WORK/cas.err")"
}

run_in_order attack_consent t_setup \
	t_h3_name_only_export_refused t_h3_other_identity_cannot_import t_h3_session_hash_binds_the_policy \
	t_h3_policy_platform_not_trusted \
	t_h3_exported_name_reserved t_h3_deleted_name_not_recreatable t_h3_name_free_once_export_removed \
	t_h3_index_built_from_schema_3 \
	t_m2_setup t_m2_old_evidence_refused t_m2_evidence_for_other_config_refused \
	t_m2_expired_client_certificate_refused t_m2_expired_certificate_counts_under_its_route \
	t_l3_parent_with_children_not_deleted t_l3_update_none_deletable_by_creator t_l3_quota_per_client t_l3_quota_concurrent_creates \
	t_l4_absent_and_not_yours_answer_alike t_l4_attest_checks_evidence_first \
	t_h3_operator_allows_policy_platforms t_stop

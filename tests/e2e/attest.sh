#!/usr/bin/env bash
# The attested start of the seed's program: veil-las, veil-cas and veil-run on
# loopback; the app's files at /python in a private mount namespace (root).
# Every server is started here and stopped by PID. Usage: attest.sh BUILD_DIR
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
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
	wait 2>/dev/null
	[ -n "$made_python" ] && rmdir /python 2>/dev/null
	rm -rf "$WORK"
}
trap cleanup EXIT
. "$ROOT/tests/e2e/lib.sh"

start_las() { # name
	"$BUILD/veil-las" --socket "$WORK/$1.sock" --data "$WORK/$1" >"$WORK/$1.out" 2>"$WORK/$1.err" &
	pids+=($!)
	wait_for "$WORK/$1.out" "platform key hash"
}
las_hash() { "$BUILD/veil-las" --print-key-hash --data "$WORK/$1"; }

# veil-run as a pod would run it: only the SCONE_* settings, the files at /python
start_service() { # las-name [extra env...]
	local las=$1
	shift
	unshare -m --propagation private bash -c '
		mount --bind "$1" /python || exit 97
		shift
		exec env -i "$@"' _ "${FILES:-$WORK/files}" \
		SCONE_CONFIG_ID=myPythonApp/pythonapp SCONE_CAS_ADDR=127.0.0.1:$PORT \
		SCONE_LAS_ADDR="$WORK/$las.sock" VEIL_CAS_KEY="$CAS_KEY" VEIL_IMAGE_ROOT="$(test_image_root)" "$@" "${RUNTIME:-$BUILD/veil-run}"
}

t_setup() {
	[ "$(id -u)" = 0 ] || die "needs root for the mount namespace" || return 1
	if [ ! -d /python ]; then mkdir /python && made_python=1; fi
	start_las las || die "veil-las did not start" || return 1
	start_las las2 || return 1
	"$BUILD/veil-cas" --init --data "$WORK/cas" --listen "127.0.0.1:$PORT" --threads 2 \
		--trust-platform "$(las_hash las)" >"$WORK/cas.out" 2>"$WORK/cas.err" &
	pids+=($!)
	wait_for "$WORK/cas.out" "key hash" || die "veil-cas did not start: $(tail -5 "$WORK/cas.err")" || return 1
	CAS_KEY=$("$BUILD/veil-cas" --print-key-hash --data "$WORK/cas")
	mkdir -p "$WORK/files" "$WORK/app" && cp "$SEED/print_env.py" "$WORK/files/" || return 1
	cd "$WORK/app" || return 1
	# the measured runtime is the veil-run that will start the service
	VEIL_RUNTIME=$BUILD/veil-run "$VEIL" apply -f "$SEED/service.yaml" --no-push >/dev/null || return 1
	run "$VEIL" apply -f "$SEED/Meshfile" --mode debug --cas "$URL" && ok && has "created namespace myPythonApp"
}

t_seed_starts_attested() {
	run start_service las && ok || return 1
	has "API_USER = myself" && has "API_PASSWORD is set (10 characters)"
}

t_host_environment_ignored() {
	run start_service las API_PASSWORD=attacker API_USER=mallory && ok || return 1
	has "API_USER = myself" && has "API_PASSWORD is set (10 characters)" && lacks "mallory"
}

t_extra_argv_refused() {
	run unshare -m --propagation private bash -c 'mount --bind "$1" /python && exec env -i SCONE_CONFIG_ID=myPythonApp/pythonapp "$2" -c "print(1)"' _ "$WORK/files" "$BUILD/veil-run" && [ "$rc" -eq 2 ] || die "exit $rc, not 2 (a usage error)" || return 1
	[ "$err" = "error: veil-run takes no arguments: the command comes from the policy (got '-c')
See 'veil-run --help'." ] || die "message: $err"
}

t_changed_file_refused() {
	cp "$WORK/files/print_env.py" "$WORK/orig.py"
	printf '#' >>"$WORK/files/print_env.py"
	run start_service las && rejected || return 1
	has "does not match policy myPythonApp/pythonapp: /python/print_env.py changed" && lacks "API_USER =" || return 1
	cp "$WORK/orig.py" "$WORK/files/print_env.py"
	echo 'print("x")' >"$WORK/files/extra.py"
	run start_service las && rejected && has "/python/extra.py is not a protected file of the policy" || return 1
	rm "$WORK/files/extra.py"
	mv "$WORK/files/print_env.py" "$WORK/orig2.py"
	run start_service las && rejected && has "/python/print_env.py is missing" || return 1
	mv "$WORK/orig2.py" "$WORK/files/print_env.py"
}

# veil-las remembers measurements by file identity; a binary changed in place
# (same inode, same path) is measured again, never served from memory
t_las_remeasures_changed_runtime() {
	cp "$BUILD/veil-run" "$WORK/vr" || return 1
	RUNTIME=$WORK/vr run start_service las && ok && has "API_USER = myself" || return 1
	RUNTIME=$WORK/vr run start_service las && ok || return 1
	local ino
	ino=$(stat -c %i "$WORK/vr")
	printf '\0' >>"$WORK/vr"
	[ "$(stat -c %i "$WORK/vr")" = "$ino" ] || die "not the same inode" || return 1
	RUNTIME=$WORK/vr run start_service las && rejected || return 1
	has "not in policy myPythonApp/pythonapp" && lacks "API_USER ="
}

t_other_service_config_gets_nothing() {
	run start_service las SCONE_CONFIG_ID=myPythonApp/other && rejected || return 1
	has "no service other in policy myPythonApp"
}

t_untrusted_platform_refused() {
	run start_service las2 && rejected || return 1
	has "platform $(las_hash las2 | cut -c1-16)... is not trusted"
}

t_replayed_evidence_refused() {
	# evidence bound to some other key, presented on this client's connection;
	# asked by a static program (veil-las vouches for no dynamically linked one),
	# which answers veil-las's challenge itself
	build_lasc "$WORK/lasc" || return 1
	"$WORK/lasc" "$WORK/las.sock" "$(printf '%064d' 0)" myPythonApp/pythonapp >"$WORK/ev.txt" ||
		die "no evidence: $(cat "$WORK/ev.txt")" || return 1
	python3 -c 'import json,sys; print(json.dumps({"config_id": "myPythonApp/pythonapp", "evidence": open(sys.argv[1]).read().strip(), "file_set_root": "0" * 64}))' \
		"$WORK/ev.txt" >"$WORK/ev.json" || return 1
	local code
	code=$(curl -sk --tlsv1.3 --cert "$VEIL_HOME/identity/cert.pem" --key "$VEIL_HOME/identity/key.pem" \
		-o "$WORK/.body" -w '%{http_code}' -X POST --data-binary @"$WORK/ev.json" "$URL/v1/attest")
	[ "$code" = 403 ] || die "replay got $code" || return 1
	grep -q "bound to another TLS key" "$WORK/.body" || die "reason: $(cat "$WORK/.body")"
}

t_production_policy_refuses_simulation() {
	cd "$WORK/app" || return 1
	run "$VEIL" apply -f "$SEED/Meshfile" --cas "$URL" && ok && has "updated namespace myPythonApp" || return 1
	run start_service las && rejected || return 1
	has "policy myPythonApp does not tolerate debug-mode"
}

# a CAS-generated secret is generated once: every start gets the same value
t_second_start_same_password() {
	mkdir -p "$WORK/pw/files" && cd "$WORK/pw" || return 1
	cat >files/hashpw.py <<'PY'
import hashlib, os
print("PW sha256", hashlib.sha256(os.environ["PW"].encode()).hexdigest(), "length", len(os.environ["PW"]))
PY
	cat >service.yaml <<'YML'
apiVersion: veil/v1
kind: genservice
environment:
  local:
    - name: PW
      value: "$$SCONE::pw$$"
secrets:
  local:
    - name: pw
      kind: ascii
      size: 16
build:
  name: pwcheck
  to: veil.test/pwcheck:1
  pwd: /python
  command: python3 hashpw.py
  copy:
    - files/hashpw.py
YML
	# the image path is pwd + the copy entry: keep the file at /python/hashpw.py
	sed -i 's|    - files/hashpw.py|    - hashpw.py|' service.yaml && cp files/hashpw.py .
	printf 'apiVersion: veil/v1\nkind: mesh\npolicy: {namespace: pwcheck}\nservices:\n  - {name: app, image: "veil.test/pwcheck:1"}\n' >Meshfile
	VEIL_RUNTIME=$BUILD/veil-run "$VEIL" apply -f service.yaml --no-push >/dev/null || return 1
	run "$VEIL" apply -f Meshfile --mode debug --cas "$URL" && ok || return 1
	FILES=$WORK/pw/files run start_service las SCONE_CONFIG_ID=pwcheck/app && ok || return 1
	PW_FIRST=$out
	has "length 16" || return 1
	FILES=$WORK/pw/files run start_service las SCONE_CONFIG_ID=pwcheck/app && ok || return 1
	[ "$out" = "$PW_FIRST" ] || die "the second start got another password" || return 1
	# the same inputs again: nothing uploaded
	run "$VEIL" apply -f Meshfile --mode debug --cas "$URL" && ok && has "unchanged: namespace pwcheck" || return 1
	# an update keeps ascii secrets (get names the current hash as predecessor)
	"$VEIL" policy get pwcheck >"$WORK/pwcheck.yaml" || return 1
	run "$VEIL" policy update "$WORK/pwcheck.yaml" && ok && has "updated pwcheck on $URL" || return 1
	FILES=$WORK/pw/files run start_service las SCONE_CONFIG_ID=pwcheck/app && ok || return 1
	[ "$out" = "$PW_FIRST" ] || die "an update changed the password"
}

# a secret imported from another namespace: the exporter's value, only while
# the exporter's owner consents (checked again at every start)
t_imported_secret() {
	cd "$WORK/pw" || return 1
	cp service.yaml service.noexport.yaml
	# consent to the namespace pwimport of this very client (its owner key)
	sed -i "s|      size: 16|      size: 16\n      export: [{namespace: pwimport, owner: $("$VEIL" whoami)}]|" service.yaml
	VEIL_RUNTIME=$BUILD/veil-run "$VEIL" apply -f service.yaml --no-push >/dev/null || return 1
	run "$VEIL" apply -f Meshfile --mode debug --cas "$URL" && ok && has "updated namespace pwcheck" || return 1
	mkdir -p "$WORK/imp/files" && cd "$WORK/imp" || return 1
	cp "$WORK/pw/hashpw.py" . && cp "$WORK/pw/files/hashpw.py" files/
	cat >service.yaml <<'YML'
apiVersion: veil/v1
kind: genservice
environment:
  local:
    - name: PW
      value: "$$SCONE::pw$$"
secrets:
  import:
    - {name: pw, namespace: pwcheck, secret: pw}
build:
  name: pwimp
  to: veil.test/pwimp:1
  pwd: /python
  command: python3 hashpw.py
  copy:
    - hashpw.py
YML
	printf 'apiVersion: veil/v1\nkind: mesh\npolicy: {namespace: pwimport}\nservices:\n  - {name: app, image: "veil.test/pwimp:1"}\n' >Meshfile
	VEIL_RUNTIME=$BUILD/veil-run run "$VEIL" apply -f service.yaml --no-push && ok || return 1
	run "$VEIL" apply -f Meshfile --mode debug --cas "$URL" && ok && has "created namespace pwimport" || return 1
	FILES=$WORK/imp/files run start_service las SCONE_CONFIG_ID=pwimport/app && ok || return 1
	[ "$out" = "$PW_FIRST" ] || die "the importer got another value: $out" || return 1
	# the exporter withdraws its consent: the importer's next start gets nothing
	cd "$WORK/pw" && cp service.noexport.yaml service.yaml || return 1
	VEIL_RUNTIME=$BUILD/veil-run "$VEIL" apply -f service.yaml --no-push >/dev/null || return 1
	run "$VEIL" apply -f Meshfile --mode debug --cas "$URL" && ok || return 1
	FILES=$WORK/imp/files run start_service las SCONE_CONFIG_ID=pwimport/app && rejected || return 1
	has "namespace pwcheck does not export secret pw to pwimport" && lacks "PW sha256" || return 1
	grep -a "pwimport" "$WORK"/cas/audit* | tail -1 | grep -q "does not export secret pw" || die "refusal not audited"
}

# an import within a mesh (SCONE's flask/redis `secrets: import: [name]`):
# the importer gets the values of the global secrets another service
# declares; with them, SCONE's readings of an explicit binary value (hex) and
# of :chain (the issuers; a self-signed CA's is its own certificate)
t_import_within_mesh_same_value() {
	mkdir -p "$WORK/mesh/files" && cd "$WORK/mesh" || return 1
	cat >meshprobe.py <<'PY'
import hashlib, os
print("PW sha256", hashlib.sha256(os.environ["PW"].encode()).hexdigest(), "length", len(os.environ["PW"]))
print("BIN", os.environ["BIN"])
print("CA chain is the CA certificate:", os.environ["CA_CHAIN"] == os.environ["CA_CRT"], os.environ["CA_CRT"].count("BEGIN CERTIFICATE"))
print("leaf chain is the CA certificate:", os.environ["LEAF_CHAIN"] == os.environ["CA_CRT"])
PY
	cp meshprobe.py files/ || return 1
	local envs='environment:
  local:
    - name: PW
      value: "$$SCONE::shared_pw$$"
    - name: BIN
      value: "$$SCONE::store$$"
    - name: CA_CHAIN
      value: "$$SCONE::ca.chain$$"
    - name: CA_CRT
      value: "$$SCONE::ca:crt$$"
    - name: LEAF_CHAIN
      value: "$$SCONE::leaf:chain$$"'
	cat >owner.yaml <<YML
apiVersion: scone/5.8
kind: genservice
$envs
secrets:
  global:
    - name: shared_pw
      kind: ascii
      size: 16
    - name: store
      kind: binary
      value: |
        FEEDfeed00
    - name: ca
      kind: x509-ca
    - name: leaf
      kind: x509
      issuer: ca
build:
  name: meshowner
  to: veil.test/meshowner:1
  pwd: /python
  command: python3 meshprobe.py
  copy:
    - meshprobe.py
YML
	cat >importer.yaml <<YML
apiVersion: scone/5.8
kind: genservice
$envs
secrets:
  import:
    - shared_pw
    - store
    - ca
    - leaf
build:
  name: meshimporter
  to: veil.test/meshimporter:1
  pwd: /python
  command: python3 meshprobe.py
  copy:
    - meshprobe.py
YML
	VEIL_RUNTIME=$BUILD/veil-run "$VEIL" apply -f owner.yaml --no-push >/dev/null &&
		VEIL_RUNTIME=$BUILD/veil-run "$VEIL" apply -f importer.yaml --no-push >/dev/null || return 1
	printf 'apiVersion: scone/5.8\nkind: mesh\npolicy: {namespace: meshimp}\nservices:\n  - {name: owner, image: "veil.test/meshowner:1"}\n  - {name: importer, image: "veil.test/meshimporter:1"}\n' >Meshfile
	run "$VEIL" apply -f Meshfile --mode debug --cas "$URL" && ok && has "created namespace meshimp" || return 1
	FILES=$WORK/mesh/files run start_service las SCONE_CONFIG_ID=meshimp/owner && ok || return 1
	has "length 16" && has "BIN feedfeed00" && has "CA chain is the CA certificate: True 1" &&
		has "leaf chain is the CA certificate: True" || return 1
	local owner_out=$out
	FILES=$WORK/mesh/files run start_service las SCONE_CONFIG_ID=meshimp/importer && ok && has "length 16" || return 1
	[ "$out" = "$owner_out" ] || die "the importer got other values: $out (owner: $owner_out)"
}

# SCONE writes its policy versions as 0.3 or 0.3.N: veil and the CAS accept
# them; the CAS itself refuses another version (the client is bypassed)
t_policy_version_0_3_family() {
	printf 'name: verx\nversion: "0.3.10"\n' >"$WORK/verx.yaml"
	run "$VEIL" policy create "$WORK/verx.yaml" --cas "$URL" && ok && has "verx" || return 1
	run "$VEIL" policy get verx --cas "$URL" && ok && has 'version: "0.3.10"' || return 1
	printf 'name: very\nversion: "0.4"\n' >"$WORK/very.yaml"
	run "$VEIL" policy create "$WORK/very.yaml" --cas "$URL" && rejected || return 1
	has "$WORK/very.yaml:2:10: policy: unsupported version '0.4' (the 0.3 family: 0.3 or 0.3.N)" || return 1
	local code
	code=$(curl -sk --tlsv1.3 --cert "$VEIL_HOME/identity/cert.pem" --key "$VEIL_HOME/identity/key.pem" \
		-o "$WORK/.body" -w '%{http_code}' -X POST --data-binary '{"policy": "name: very\nversion: \"0.4\"\n"}' "$URL/v1/policies")
	[ "$code" = 400 ] || die "the CAS answered $code: $(cat "$WORK/.body")" || return 1
	grep -qF "unsupported version '0.4' (the 0.3 family: 0.3 or 0.3.N)" "$WORK/.body" || die "reason: $(cat "$WORK/.body")"
}

# valid_for as SCONE writes it: veil check and the CAS agree (one validator)
t_valid_for_check_and_cas_agree() {
	mkdir -p "$WORK/vf" && cd "$WORK/vf" || return 1
	cp "$WORK/pw/hashpw.py" . || return 1
	cat >service.yaml <<'YML'
apiVersion: scone/5.8
kind: genservice
secrets:
  global:
    - name: ca
      kind: x509-ca
      valid_for: 90 days
build:
  name: vf
  to: veil.test/vf:1
  pwd: /python
  command: python3 hashpw.py
  copy:
    - hashpw.py
YML
	printf 'apiVersion: scone/5.8\nkind: mesh\npolicy: {namespace: vf}\nservices:\n  - {name: app, image: "veil.test/vf:1"}\n' >Meshfile
	run "$VEIL" check service.yaml && ok || return 1
	VEIL_RUNTIME=$BUILD/veil-run "$VEIL" apply -f service.yaml --no-push >/dev/null || return 1
	run "$VEIL" apply -f Meshfile --mode debug --cas "$URL" && ok && has "created namespace vf" || return 1
	sed -i 's/valid_for: 90 days/valid_for: 90 days ago/' service.yaml
	run "$VEIL" check service.yaml && rejected || return 1
	[ "$err" = "error: service.yaml:7:18: secrets.global entry: valid_for '90 days ago' is not a duration such as 90 days, 1 year 6 months or 36h (units s, m, h, d, w, M, y or their names: seconds, minutes, hours, days, weeks, months, years), or a number of days; at most 36500 days" ] || die "got: $err"
}

# Injection files: rendered by the CAS, placed in memory only. As root (the
# private mount namespace way) the file is a tmpfs mount over its path and
# the disk holds only an empty mount point; without CAP_SYS_ADMIN a folder
# that is not memory-backed is refused, a memory-backed one (a Kubernetes
# emptyDir with medium: Memory; /dev/shm here) gets the file 0600.
inject_service() { # injection-path
	cat >"$WORK/inj/service.yaml" <<YML
apiVersion: veil/v1
kind: genservice
environment:
  local:
    - name: PW
      value: "\$\$SCONE::pw\$\$"
    - name: CONF
      value: $1
secrets:
  local:
    - name: pw
      kind: ascii
      size: 24
injection_files:
  - path: $1
    content: "password=\$\$SCONE::pw\$\$\\n"
build:
  name: inj
  to: veil.test/inj:1
  pwd: /python
  command: python3 readconf.py
  copy:
    - readconf.py
YML
	cd "$WORK/inj" || return 1
	VEIL_RUNTIME=$BUILD/veil-run "$VEIL" apply -f service.yaml --no-push >/dev/null || return 1
	printf 'apiVersion: veil/v1\nkind: mesh\npolicy: {namespace: injtest, tolerate: [insecure-unpinned-files]}\nservices:\n  - {name: app, image: "veil.test/inj:1"}\n' >Meshfile
	run "$VEIL" apply -f Meshfile --mode debug --cas "$URL" && ok
}
no_sys_admin=(setpriv --bounding-set=-sys_admin --inh-caps=-sys_admin)

t_injection_files() {
	mkdir -p "$WORK/inj/files" && cd "$WORK/inj" || return 1
	cat >readconf.py <<'PY'
import os, stat
p = os.environ["CONF"]
data = open(p).read()
print("content", "matches" if data == "password=%s\n" % os.environ["PW"] else "differs")
print("mode %o" % stat.S_IMODE(os.stat(p).st_mode))
for line in open("/proc/self/mountinfo"):
    f = line.split()
    if f[4] == p:
        print("mounted", f[f.index("-") + 1])
PY
	cp readconf.py files/
	local conf=$WORK/inj/etc/app/app.conf shm
	inject_service "$conf" || return 1
	FILES=$WORK/inj/files run start_service las SCONE_CONFIG_ID=injtest/app && ok || return 1
	has "content matches" && has "mode 600" && has "mounted tmpfs" || return 1
	[ -f "$conf" ] && [ ! -s "$conf" ] || die "the disk holds more than an empty mount point" || return 1
	# no private namespace allowed, folder on disk: refused, nothing runs
	FILES=$WORK/inj/files run start_service las SCONE_CONFIG_ID=injtest/app "${no_sys_admin[@]}" && rejected || return 1
	has "injection file $conf: $WORK/inj/etc/app is not memory-backed" && lacks "content" || return 1
	# no private namespace allowed, memory-backed folder: written there
	shm=$(mktemp -d /dev/shm/veil-inject.XXXXXX) || return 1
	inject_service "$shm/app.conf" || { rm -rf "$shm"; return 1; }
	FILES=$WORK/inj/files run start_service las SCONE_CONFIG_ID=injtest/app "${no_sys_admin[@]}"
	local st=$? mode
	mode=$(stat -c %a "$shm/app.conf" 2>/dev/null)
	ls -A "$shm" >"$WORK/inj/shm.list"
	rm -rf "$shm"
	[ $st = 0 ] || die "exit $st: $out" || return 1
	has "content matches" && [ "$mode" = 600 ] || die "mode $mode" || return 1
	[ "$(cat "$WORK/inj/shm.list")" = app.conf ] || die "left in the folder: $(cat "$WORK/inj/shm.list")"
}

# the CAS keeps a started policy in memory; deleting the namespace stops the
# next start all the same
t_deleted_namespace_stops_starts() {
	cd "$WORK/inj" || return 1
	inject_service "$WORK/inj/etc/app/app.conf" || return 1
	FILES=$WORK/inj/files run start_service las SCONE_CONFIG_ID=injtest/app && ok && has "content matches" || return 1
	run "$VEIL" policy delete injtest --cas "$URL" && ok || return 1
	FILES=$WORK/inj/files run start_service las SCONE_CONFIG_ID=injtest/app && rejected || return 1
	has "no namespace injtest" && lacks "content matches"
}

# a policy update that drops the old measurement stops new starts of the old build
t_update_drops_old_measurement() {
	cd "$WORK/pw" || return 1
	VEIL_RUNTIME=/bin/true "$VEIL" apply -f service.yaml --no-push >/dev/null || return 1
	run "$VEIL" apply -f Meshfile --mode debug --cas "$URL" && ok || return 1
	FILES=$WORK/pw/files run start_service las SCONE_CONFIG_ID=pwcheck/app && rejected || return 1
	has "not in policy pwcheck/app"
}

# The seed's password itself: a probe service of the same mesh declares the same
# global secret and writes the value to a file only this test reads; then
# the value must be nowhere else: target/, the CAS folder, every log and
# output, the process list while a provisioned program runs.
t_password_value_never_leaks() {
	mkdir -p "$WORK/probe/files" "$WORK/probe-out" && cd "$WORK/probe" || return 1
	cat >probe.py <<'PY'
import os, time
with open(os.environ["PROBE_OUT"], "w") as f:
    f.write(os.environ["API_PASSWORD"])
open(os.environ["PROBE_OUT"] + ".ready", "w").close()
time.sleep(1)
PY
	cp probe.py files/
	cat >service.yaml <<YML
apiVersion: veil/v1
kind: genservice
environment:
  local:
    - name: API_PASSWORD
      value: "\$\$SCONE::password\$\$"
    - name: PROBE_OUT
      value: $WORK/probe-out/pw
secrets:
  global:
  - name: password
    kind: ascii
    size: 10
build:
  name: probe
  to: veil.test/probe:1
  pwd: /python
  command: python3 probe.py
  copy:
    - probe.py
YML
	cd "$WORK/app" || return 1
	VEIL_RUNTIME=$BUILD/veil-run run "$VEIL" apply -f "$WORK/probe/service.yaml" --no-push && ok || return 1
	{ cat "$SEED/Meshfile"; printf '  - name: probe\n    image: veil.test/probe:1\n'; } >Meshfile.probe
	run "$VEIL" apply -f Meshfile.probe --mode debug --cas "$URL" && ok && has "updated namespace myPythonApp" || return 1
	IMAGE=probe FILES=$WORK/probe/files start_service las SCONE_CONFIG_ID=myPythonApp/probe >"$WORK/probe.run" 2>&1 &
	local probe=$!
	for _ in $(seq 100); do [ -e "$WORK/probe-out/pw.ready" ] && break; sleep 0.05; done
	{ ps -eo args; cat /proc/[0-9]*/cmdline 2>/dev/null | tr '\0' ' '; } >"$WORK/probe-out/ps.txt"
	wait "$probe" || die "the probe did not start: $(cat "$WORK/probe.run")" || return 1
	grep -q "probe.py" "$WORK/probe-out/ps.txt" || die "the process list was taken too late" || return 1
	local pw
	pw=$(cat "$WORK/probe-out/pw")
	[ ${#pw} = 10 ] || die "the probe got a ${#pw}-character password" || return 1
	# the seed gets this same password (its output shows only the length)
	IMAGE=python_hello_user run start_service las && ok && has "API_PASSWORD is set (10 characters)" || return 1
	printf '%s\n' "$out" >"$WORK/seed-run.out"
	if grep -rqaF -- "$pw" "$WORK/probe-out/ps.txt"; then die "the password is in the process list"; return 1; fi
	local hits
	hits=$(grep -rlaF --exclude-dir=probe-out -- "$pw" "$WORK" 2>/dev/null)
	[ -z "$hits" ] || die "the password is in: $hits" || return 1
	[ -d "$WORK/app/target" ] && [ -d "$WORK/cas" ] && ls "$WORK"/cas.err "$WORK"/las.out >/dev/null || die "nothing was searched"
}

# The /v1/attest answer is sealed to the attesting runtime's TLS key (HPKE,
# include/veil/sealed.h): captured as the CAS sent it (a client with its own
# P-256 key, evidence from veil-las for that key), it holds no configuration
# value; it opens with that key and not with another one. A client key that
# is not P-256 gets 400 and nothing is released.
t_answer_sealed_to_runtime_key() {
	mkdir -p "$WORK/seal" && cd "$WORK/seal" || return 1
	build_lasc "$WORK/lasc" || return 1
	cat >policy.yaml <<YML
name: sealcap
services:
  - name: app
    command: /bin/true
    mrenclaves: [$(sha256sum "$WORK/lasc" | cut -c1-64)]
    environment: {API_USER: myself, API_PASSWORD: "\$\$SCONE::pw\$\$"}
secrets:
  - {name: pw, kind: ascii, size: 16}
security: {attestation: {tolerate: [debug-mode]}}
YML
	run "$VEIL" policy create policy.yaml --cas "$URL" && ok || return 1
	local k code pw
	for k in rt other; do
		openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=$k -days 1 \
			-keyout $k.key -out $k.crt 2>/dev/null || return 1
	done
	openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=rsa -days 1 -keyout rsa.key -out rsa.crt 2>/dev/null || return 1
	# attest_as KEY: evidence for KEY's public key, POSTed with KEY's certificate
	attest_as() {
		"$WORK/lasc" "$WORK/las.sock" "$(openssl pkey -in "$1.key" -pubout -outform DER | sha256sum | cut -c1-64)" sealcap/app >"$1.ev" ||
			die "no evidence: $(cat "$1.ev")" || return 1
		python3 -c 'import json,sys; print(json.dumps({"config_id": "sealcap/app", "evidence": open(sys.argv[1]).read().strip(), "file_set_root": "0" * 64}))' \
			"$1.ev" >"$1.req" || return 1
		curl -sk --tlsv1.3 --cert "$1.crt" --key "$1.key" -D "$1.head" -o "$1.answer" -w '%{http_code}' \
			-X POST --data-binary @"$1.req" "$URL/v1/attest"
	}
	code=$(attest_as rt)
	[ "$code" = 200 ] || die "attest answered $code: $(cat rt.answer)" || return 1
	grep -qi '^content-type: application/json' rt.head || die "headers: $(cat rt.head)" || return 1
	grep -q '^{"sealed":{"suite":"P256-SHA256-AES256GCM","enc":"[A-Za-z0-9+/=]*","ct":"[A-Za-z0-9+/=]*"}}$' rt.answer ||
		die "not a sealed answer: $(head -c 300 rt.answer)" || return 1
	if grep -qaF -e API_USER -e myself -e environment rt.answer; then die "plaintext in the answer"; return 1; fi
	"$BUILD/tests/sealed_open" rt.key rt.req <rt.answer >rt.config || die "it does not open with the runtime's key" || return 1
	pw=$(python3 -c 'import json,sys; c=json.load(open(sys.argv[1])); assert c["environment"]["API_USER"] == "myself"; print(c["environment"]["API_PASSWORD"])' rt.config) ||
		die "configuration: $(cat rt.config)" || return 1
	[ ${#pw} = 16 ] || die "a ${#pw}-character password" || return 1
	if grep -qaF -- "$pw" rt.answer rt.head; then die "the password is in the raw answer"; return 1; fi
	run "$BUILD/tests/sealed_open" other.key rt.req <rt.answer && rejected && has "does not open with this key" ||
		die "another P-256 key opened it" || return 1
	# another config id or evidence in the request: does not open either
	sed 's|sealcap/app|sealcap/ap|' rt.req >rt2.req
	run "$BUILD/tests/sealed_open" rt.key rt2.req <rt.answer && rejected || die "opened for another config id" || return 1
	# a client key the answer cannot be sealed to: 400, nothing released
	local releases
	releases=$(grep -c '"event":"release"' "$WORK/cas/audit.log")
	code=$(attest_as rsa)
	[ "$code" = 400 ] || die "an RSA client key got $code: $(cat rsa.answer)" || return 1
	grep -qF "not an EC P-256 key" rsa.answer || die "reason: $(cat rsa.answer)" || return 1
	[ "$(grep -c '"event":"release"' "$WORK/cas/audit.log")" = "$releases" ] || die "the refusal was audited as a release"
}

run_in_order attest t_setup t_seed_starts_attested t_host_environment_ignored t_extra_argv_refused \
	t_changed_file_refused t_las_remeasures_changed_runtime t_other_service_config_gets_nothing t_untrusted_platform_refused \
	t_replayed_evidence_refused t_second_start_same_password t_imported_secret t_import_within_mesh_same_value t_policy_version_0_3_family t_valid_for_check_and_cas_agree t_injection_files t_deleted_namespace_stops_starts t_update_drops_old_measurement \
	t_password_value_never_leaks t_answer_sealed_to_runtime_key t_production_policy_refuses_simulation

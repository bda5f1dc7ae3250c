#!/usr/bin/env bash
# Attacks on what veil-run execs besides the protected folder (issue 9, H1):
# the interpreter the policy's command resolves to and the interpreter's
# library folders, each performed for real against veil-las, veil-cas and
# veil-run on loopback; every scenario expects the attack to fail. Root
# (mount namespaces, /python). Usage: attack_interp.sh BUILD_DIR
#
# Seen against the code before the fix (i9-h1 at 447dc8d, 2026-12-02):
# - a shell script bind-mounted over /usr/bin/python3.11 in the private mount
#   namespace veil-run starts in was exec'd with the rendered environment and
#   printed the SHA-256 of the generated password (the one the genuine probe
#   printed);
# - a .pth file added to a copy of /usr/local/lib/python3.11/dist-packages
#   bind-mounted over it ran its "import" line inside the genuine interpreter
#   and printed the same SHA-256.
# - (4, seen with a policy that names no program, which veil-run still runs
#   the old way: execvpe) a python3 script in /usr/local/bin, earlier on the
#   default PATH than /usr/bin, ran instead of the interpreter and printed
#   the SHA-256.
set -u
BUILD=$(realpath "$1")
VEIL=$BUILD/veil
ROOT=${VEIL_SOURCE_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
# veil apply builds each service's image too; with no registry here its base is
# "scratch" (veil's layers alone: docs/images.md)
export VEIL_BASE=scratch
WORK=$(mktemp -d)
PORT=$((20000 + RANDOM % 20000))
URL=https://127.0.0.1:$PORT
PW_SHA=unset
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

# veil-run as a pod would run it, after $PRE (mounts an attacker makes in the
# namespace veil-run starts in) ran in a private mount namespace
start_service() {
	unshare -m --propagation private bash -c '
		mount --bind "$1" /python || exit 97
		eval "$2" || exit 98
		shift 2
		exec env -i "$@"' _ "$WORK/files" "${PRE:-:}" \
		SCONE_CONFIG_ID=attack/app SCONE_CAS_ADDR=127.0.0.1:$PORT \
		SCONE_LAS_ADDR="$WORK/las.sock" VEIL_CAS_KEY="$CAS_KEY" \
		VEIL_RUNTIME_LIST="${LIST:-}" SCONE_LOG="${LOG:-}" VEIL_IMAGE_ROOT="$(test_image_root)" "$BUILD/veil-run"
}

# measure the service (VEIL_IMAGE_ROOT as given) and upload the policy, which
# tolerates $1 if given
mesh() {
	(cd "$WORK/app" && VEIL_RUNTIME=$BUILD/veil-run "$VEIL" apply -f service.yaml --no-push >/dev/null 2>&1) || return 1
	printf 'apiVersion: veil/v1\nkind: mesh\ncas:\n  - {name: cas, cas_url: 127.0.0.1, tolerance: "--only_for_testing-trust-any --only_for_testing-debug --only_for_testing-ignore-signer"}\npolicy: {namespace: attack%s}\nservices:\n  - {name: app, image: "veil.test/attack:1"}\n' "${1:+, tolerate: [$1]}" >"$WORK/app/Meshfile"
	(cd "$WORK/app" && "$VEIL" apply -f Meshfile --mode debug --cas "$URL" >/dev/null)
}

# the interpreter `python3` resolves to with veil-run's default PATH, and its
# version (python3.N)
INTERP=
PYVER=

t_setup() {
	[ "$(id -u)" = 0 ] || die "needs root for the mount namespace" || return 1
	local p
	p=$(PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin command -v python3) || die "no python3" || return 1
	INTERP=$(readlink -f "$p")
	PYVER=$(basename "$INTERP")
	[[ $PYVER == python3.* ]] || die "python3 resolves to $INTERP, not python3.N" || return 1
	if [ ! -d /python ]; then mkdir /python && made_python=1; fi
	"$BUILD/veil-las" --socket "$WORK/las.sock" --data "$WORK/las" >"$WORK/las.out" 2>"$WORK/las.err" &
	pids+=($!)
	wait_for "$WORK/las.out" "platform key hash" || die "veil-las did not start" || return 1
	"$BUILD/veil-cas" --init --data "$WORK/cas" --listen "127.0.0.1:$PORT" --threads 2 \
		--trust-platform "$("$BUILD/veil-las" --print-key-hash --data "$WORK/las")" >"$WORK/cas.out" 2>"$WORK/cas.err" &
	pids+=($!)
	wait_for "$WORK/cas.out" "key hash" || die "veil-cas did not start" || return 1
	CAS_KEY=$("$BUILD/veil-cas" --print-key-hash --data "$WORK/cas")
	mkdir -p "$WORK/files" "$WORK/app" || return 1
	cat >"$WORK/files/probe.py" <<'PY'
import hashlib, os
print("PW sha256", hashlib.sha256(os.environ["API_PASSWORD"].encode()).hexdigest())
for line in open("/proc/self/mountinfo"):
    f = line.split()
    print("mount", f[4], f[f.index("-") + 1], f[5].split(",")[0])
PY
	cp "$WORK/files/probe.py" "$WORK/app/" || return 1
	cat >"$WORK/app/service.yaml" <<'YML'
apiVersion: veil/v1
kind: genservice
environment:
  local:
    - name: API_PASSWORD
      value: "$$SCONE::password$$"
secrets:
  local:
    - name: password
      kind: ascii
      size: 10
build:
  name: attack
  to: veil.test/attack:1
  pwd: /python
  command: python3 probe.py
  copy:
    - probe.py
YML
	mesh || return 1
	PRE=: run start_service && ok && has "PW sha256" || return 1
	PW_SHA=$(grep '^PW sha256' <<<"$out" | cut -d' ' -f3)
}

# the policy lists the interpreter and its library folders
t_h1_policy_lists_runtime_files() {
	local pol=$WORK/app/target/policies/attack.yaml
	grep -q "program: $INTERP" "$pol" || die "policy names no program $INTERP" || return 1
	grep -q "path: $INTERP\$" "$pol" || die "policy lacks $INTERP" || return 1
	grep -q "path: .*/libc.so.6\$" "$pol" || die "policy lacks libc" || return 1
	grep -q "path: .*/lib/$PYVER/\$" "$pol" || die "policy lacks the $PYVER folder" || return 1
}

# the interpreter and its libraries run from verified copies in memory
# mounted over their paths (read-only), not from the files that were checked
t_h1_runtime_files_pinned() {
	PRE=: run start_service && ok && has "$PW_SHA" || return 1
	has "mount $INTERP tmpfs ro" || return 1
	grep -q "^mount .*/libc.so.6 tmpfs ro" <<<"$out" || die "libc is not a pinned copy" || return 1
	grep -q "^mount .*\.pth tmpfs ro" <<<"$out" || die "no .pth file is a pinned copy"
}

# the audit log's entries of event $1 (one JSON object a line)
audit_events() { grep -F "\"event\":\"$1\"" "$WORK/cas/audit.log"; }

# no string of the audit log holds the generated password (10 characters
# whose SHA-256 is $PW_SHA)
audit_has_no_password() {
	python3 - "$WORK/cas/audit.log" "$PW_SHA" <<'PY'
import hashlib, json, sys
for line in open(sys.argv[1]):
    for v in json.loads(line).values():
        if isinstance(v, str):
            for i in range(len(v) - 9):
                if hashlib.sha256(v[i:i + 10].encode()).hexdigest() == sys.argv[2]:
                    sys.exit("the password is in the audit log: " + line)
PY
}

# (1) a fake interpreter over the real one, in the namespace veil-run starts in
t_h1_fake_interpreter_refused() {
	printf '#!/bin/sh\necho "FAKE sha256 $(printf %%s "$API_PASSWORD" | sha256sum | cut -d" " -f1)"\n' >"$WORK/fake"
	chmod 755 "$WORK/fake"
	local before
	before=$(audit_events start-refused | wc -l)
	PRE="mount --bind $WORK/fake $INTERP" run start_service
	lacks "$PW_SHA" || die "the fake interpreter got the password" || return 1
	rejected && has "$INTERP" && has "changed" || return 1
	# the CAS released the configuration (so it says, not "started"), and the
	# refusal that followed is in its audit log with the reason, no value
	audit_events release | tail -1 | grep -qF '"namespace":"attack","client":' &&
		audit_events release | tail -1 | grep -qF 'app: configuration released to an attested runtime' ||
		die "no release entry: $(tail -3 "$WORK/cas/audit.log")" || return 1
	[ "$(audit_events start-refused | wc -l)" = $((before + 1)) ] || die "no start-refused entry: $(tail -3 "$WORK/cas/audit.log")" || return 1
	audit_events start-refused | tail -1 | grep -qF "\"detail\":\"app: the attested runtime refused to start: the runtime file $INTERP changed since \`veil apply\` measured it: refusing to start\"" ||
		die "start-refused entry without its reason: $(audit_events start-refused | tail -1)" || return 1
	# as the same client the release went to
	[ "$(audit_events release | tail -1 | grep -o '"client":"[0-9a-f]*"')" = "$(audit_events start-refused | tail -1 | grep -o '"client":"[0-9a-f]*"')" ] ||
		die "the refusal came from another client than the release" || return 1
	audit_has_no_password && lacks "warning: the refusal could not be reported"
}

# only the runtime the configuration was released to may report a refusal:
# another client key (the owner's own, even) and no key at all are refused
# and nothing reaches the log as start-refused
t_refusal_report_from_another_key_refused() {
	local before code body='{"config_id":"attack/app","reason":"SPAM refusal"}'
	before=$(audit_events start-refused | wc -l)
	code=$(curl -sk --tlsv1.3 --cert "$VEIL_HOME/identity/cert.pem" --key "$VEIL_HOME/identity/key.pem" \
		-o "$WORK/.body" -w '%{http_code}' --data-binary "$body" "$URL/v1/attest/refused")
	[ "$code" = 403 ] && grep -qF "no configuration of attack/app was released to this client" "$WORK/.body" ||
		die "another key's report: $code $(cat "$WORK/.body")" || return 1
	code=$(curl -sk --tlsv1.3 -o "$WORK/.body" -w '%{http_code}' --data-binary "$body" "$URL/v1/attest/refused")
	[ "$code" = 403 ] || die "a report without a key: $code $(cat "$WORK/.body")" || return 1
	[ "$(audit_events start-refused | wc -l)" = "$before" ] || die "a stranger's report was audited as start-refused" || return 1
	audit_events refuse | tail -2 | grep -qF "no configuration of attack/app was released to this client" ||
		die "the refused report is not audited as a refusal" || return 1
	! grep -qF "SPAM refusal" "$WORK/cas/audit.log" || die "a stranger's reason reached the audit log" || return 1
	# malformed reports: 400, whoever sends them
	local bad long
	long=$(head -c 513 /dev/zero | tr '\0' x)
	for bad in '{"config_id":"attack/app","reason":"a\nb"}' "{\"config_id\":\"attack/app\",\"reason\":\"$long\"}" \
		'{"config_id":"attack/app","reason":""}' '{"config_id":"attack","reason":"x"}' \
		'{"config_id":"attack/app","reason":"x","more":1}'; do
		code=$(curl -sk --tlsv1.3 --cert "$VEIL_HOME/identity/cert.pem" --key "$VEIL_HOME/identity/key.pem" \
			-o "$WORK/.body" -w '%{http_code}' --data-binary "$bad" "$URL/v1/attest/refused")
		[ "$code" = 400 ] || die "malformed report $bad: $code $(cat "$WORK/.body")" || return 1
	done
}

# (2) a .pth file added to a site folder (a copy of the folder mounted over
# it: the host is not modified)
t_h1_added_pth_refused() {
	local site=/usr/local/lib/$PYVER/dist-packages
	[ -d "$site" ] || site=/usr/lib/python3/dist-packages
	mkdir -p "$WORK/site" && cp -a "$site/." "$WORK/site/" || return 1
	echo 'import os, hashlib; print("PTH sha256", hashlib.sha256(os.environ["API_PASSWORD"].encode()).hexdigest())' >"$WORK/site/zz-evil.pth"
	PRE="mount --bind $WORK/site $site" run start_service
	lacks "$PW_SHA" || die "the .pth file got the password" || return 1
	rejected && has "$site/zz-evil.pth" || return 1
}

# (4) a python3 earlier on PATH (/usr/local/bin, a copy of the folder mounted
# over it): veil-run execs the policy's program, not a PATH search
t_h1_python_earlier_on_path_ignored() {
	mkdir -p "$WORK/localbin" && cp -a /usr/local/bin/. "$WORK/localbin/" 2>/dev/null
	rm -f "$WORK/localbin/python3"
	cp "$WORK/fake" "$WORK/localbin/python3" || return 1
	PRE="mount --bind $WORK/localbin /usr/local/bin" run start_service
	lacks "FAKE sha256" || die "the python3 earlier on PATH ran" || return 1
	ok && has "$PW_SHA"
}

# (5) a policy whose program was not measured (not found in the image when
# `veil apply` ran) does not start unless it says so
t_h1_unmeasured_program_refused_by_default() {
	VEIL_IMAGE_ROOT=/nonexistent mesh || return 1
	PRE=: run start_service && rejected || return 1
	has "names no measured program" && has "insecure-unmeasured-program" && lacks "$PW_SHA" || return 1
	VEIL_IMAGE_ROOT=/nonexistent mesh insecure-unmeasured-program || return 1
	PRE=: run start_service && ok && has "$PW_SHA" && has "warning: the command's program is not measured" || return 1
	mesh
}

# (3) a changed shared object the interpreter loads
t_h1_changed_library_refused() {
	local lib
	lib=$(grep -o 'path: .*/libm.so.6$' "$WORK/app/target/policies/attack.yaml" | cut -d' ' -f2)
	[ -n "$lib" ] || lib=$(grep -o 'path: .*/libc.so.6$' "$WORK/app/target/policies/attack.yaml" | cut -d' ' -f2)
	[ -n "$lib" ] || die "no library in the policy" || return 1
	cp "$lib" "$WORK/lib" && printf 'x' >>"$WORK/lib" || return 1
	PRE="mount --bind $WORK/lib $lib" run start_service
	lacks "$PW_SHA" && rejected && has "$lib" || return 1
}

# The prefetch list (src/runtime/verify.h) is a hint from the image that only
# decides what is copied early, while veil-run attests: whatever it says, what
# runs is checked against the policy.

# the list `veil apply` writes is used, and the start is the same start
t_prefetch_list_used() {
	local list=$WORK/app/target/images/attack/runtime-files
	[ "$(head -1 "$list")" = "$INTERP" ] || die "the list does not start with $INTERP" || return 1
	LIST=$list LOG=debug PRE=: run start_service && ok && has "$PW_SHA" || return 1
	has "copying the prefetch list's runtime files" && has "mount $INTERP tmpfs ro" || return 1
}

# a fake interpreter copied early is still compared with the policy
t_prefetch_fake_interpreter_refused() {
	LIST=$WORK/app/target/images/attack/runtime-files PRE="mount --bind $WORK/fake $INTERP" run start_service
	lacks "$PW_SHA" || die "the fake interpreter got the password" || return 1
	rejected && has "$INTERP" && has "changed" || return 1
}

# a refusal while the list's files are still being copied (here: a CAS key
# that does not match) exits with the refusal, not a crash (before
# OPENSSL_INIT_NO_ATEXIT, exit's clean-up under the copying thread could
# segfault: exit 139, seen in attack_las.sh's FUSE test)
t_prefetch_early_refusal_exits_cleanly() {
	local i
	for i in 1 2 3 4 5; do
		CAS_KEY=$(printf '0%.0s' $(seq 64)) LIST=$WORK/app/target/images/attack/runtime-files PRE=: \
			run start_service
		rejected && has "error:" || return 1
	done
}

# a hostile list (junk, a device, a folder, a missing file, a file the policy
# does not name, thousands of lines) changes nothing: the start succeeds, and
# a copy the policy does not list is never mounted
t_prefetch_hostile_list_harmless() {
	{
		printf 'relative/path\n\n/dev/zero\n/etc/\n/etc\n/nonexistent/file\n/etc/hostname\n'
		printf '%04096d\n' 0
		printf '\001\002\377 binary\n'
		seq -f '/no/such/%g' 5000
		cat "$WORK/app/target/images/attack/runtime-files"
	} >"$WORK/hostile.list"
	LIST=$WORK/hostile.list PRE=: run start_service && ok && has "$PW_SHA" || return 1
	has "mount $INTERP tmpfs ro" || return 1
	lacks "mount /etc/hostname tmpfs" || die "a copy the policy does not list was mounted"
}

run_in_order attack_interp t_setup t_h1_policy_lists_runtime_files t_h1_runtime_files_pinned \
	t_h1_fake_interpreter_refused t_refusal_report_from_another_key_refused t_h1_added_pth_refused \
	t_h1_changed_library_refused t_h1_python_earlier_on_path_ignored \
	t_h1_unmeasured_program_refused_by_default \
	t_prefetch_list_used t_prefetch_fake_interpreter_refused t_prefetch_early_refusal_exits_cleanly \
	t_prefetch_hostile_list_harmless

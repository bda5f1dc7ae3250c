#!/usr/bin/env bash
# End-to-end scenarios for the veil CLI: real processes, real files, one temp
# folder per scenario. Usage: run.sh VEIL VEIL_RUN
set -u
VEIL=$(realpath "$1")
VEIL_RUN_BIN=$(realpath "${2:-$(dirname "$1")/veil-run}")
ROOT=${VEIL_SOURCE_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
SEED=$ROOT/examples/python-hello-user
TWO=$ROOT/examples/two-service-mesh
GOLDEN=$ROOT/tests/e2e/golden
export VEIL_RUNTIME=$GOLDEN/runtime.bin
# runtime files (the command's program, its libraries, the interpreter's folders)
# come from a small stand-in image, not the host: the goldens stay the same
# on every machine
export VEIL_IMAGE_ROOT=$GOLDEN/rootfs
# veil apply builds each service's image too; with no registry here its base is
# "scratch" (veil's layers alone: docs/images.md)
export VEIL_BASE=scratch
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
pass=0
fail=0
failed_names=()

. "$ROOT/tests/e2e/lib.sh"

# a writable copy of the seed example
seed_copy() {
	mkdir -p "$1"
	cp "$SEED/service.yaml" "$SEED/Meshfile" "$SEED/print_env.py" "$1/"
}

# --- scenarios ---
t_help() {
	run "$VEIL" --help && ok && has "Commands:" || return 1
	run "$VEIL" check --help && ok && has "Usage: veil check" || return 1
	run "$VEIL" apply --help && ok && has "the image is then pushed to build.to" || return 1
	run "$VEIL" nosuch && [ "$rc" -eq 2 ] && has "unknown command" || return 1
	run "$VEIL" apply && [ "$rc" -eq 2 ] && has "-f FILE is required" || return 1
	run "$VEIL_RUN_BIN" --help && ok || return 1
}

# usage_error MESSAGE HINT: exit 2, nothing on stdout, exactly these two lines
usage_error() {
	[ "$rc" -eq 2 ] || die "expected exit 2, got $rc: $err" || return 1
	[ -z "$out" ] || die "usage error wrote to stdout: $out" || return 1
	[ "$err" = "error: $1"$'\n'"See '$2 --help'." ] ||
		die "expected: error: $1 / See '$2 --help'."$'\n'"    got: $err"
}

t_usage_errors_are_one_line() {
	run "$VEIL" apply --x && usage_error "unknown flag --x" "veil apply" || return 1
	run "$VEIL" apply -f Meshfile --no-uplod=3 && usage_error "unknown flag --no-uplod" "veil apply" || return 1
	run "$VEIL" apply -f x --no && usage_error "ambiguous flag --no: give more of its name" "veil apply" || return 1
	run "$VEIL" apply -f x --help=1 && usage_error "flag --help takes no value" "veil apply" || return 1
	run "$VEIL" apply -Z && usage_error "unknown flag -Z" "veil apply" || return 1
	run "$VEIL" apply -f && usage_error "flag -f needs a value" "veil apply" || return 1
	run "$VEIL" apply -f x --cas && usage_error "flag --cas needs a value" "veil apply" || return 1
	run "$VEIL" apply -f x --no-push=1 && usage_error "flag --no-push takes no value" "veil apply" || return 1
	run "$VEIL" apply -f x extra && usage_error "unexpected argument 'extra' (each file needs -f)" "veil apply" || return 1
	run "$VEIL" apply -f x -o helm,yaml &&
		usage_error "-o is the result's format (json, yaml); the files apply writes are chosen with --format helm,manifests" "veil apply" || return 1
	run "$VEIL" apply -f x --format helm,yaml &&
		usage_error "unknown --format 'yaml' (helm, manifests, or both: helm,manifests)" "veil apply" || return 1
	run "$VEIL" check -o xml x && usage_error "-o must be json, yaml or text, not 'xml'" "veil check" || return 1
	run "$VEIL" check && usage_error "give at least one FILE" "veil check" || return 1
	run "$VEIL" polcy list && usage_error "unknown command 'veil polcy' (did you mean 'policy'?)" "veil" || return 1
	run "$VEIL" po && usage_error "unknown command 'veil po' (did you mean 'policy'?)" "veil" || return 1
	run "$VEIL" zzzzzz && usage_error "unknown command 'veil zzzzzz'" "veil" || return 1
	run "$VEIL" policy gte x && usage_error "unknown command 'veil policy gte' (did you mean 'get'?)" "veil policy" || return 1
	run "$VEIL" policy && usage_error "'veil policy' needs a command" "veil policy" || return 1
	run "$VEIL" policy --cas x list && usage_error "unknown flag --cas (give the command first)" "veil policy" || return 1
	run "$VEIL" policy get && usage_error "give the namespace NAME" "veil policy get" || return 1
	run "$VEIL" policy get a b && usage_error "unexpected argument 'b'" "veil policy get" || return 1
	run "$VEIL" policy get 'a b' && usage_error "'a b' is not a namespace name" "veil policy get" || return 1
	run "$VEIL" audit verify && usage_error "give exactly one FILE" "veil audit verify" || return 1
	run "$VEIL" audit vrify x && usage_error "unknown command 'veil audit vrify' (did you mean 'verify'?)" "veil audit" || return 1
	run "$VEIL" cas attest --mrenclave 12 x && usage_error "--mrenclave needs 64 (SGX MRENCLAVE, veil-run) or 96 (TDX MRTD, SNP measurement) lower-case hex digits" "veil cas attest" || return 1
	run "$VEIL" whoami x && usage_error "unexpected argument 'x'" "veil whoami" || return 1
	run "$VEIL" completion zsh && usage_error "unknown command 'veil completion zsh' (did you mean 'bash'?)" "veil completion" || return 1
	# nothing but "error: " starts a line of an error
	run "$VEIL" check "$WORK/nonexistent.yaml" && rejected || return 1
	! grep -v '^error: ' <<<"$err" | grep -q . || die "a line without the error prefix: $err"
}

# CAS addresses: the port is a strict decimal from 1 to 65535; ":PORT" is this machine
t_cas_address_strict() {
	export VEIL_HOME=$WORK/home
	local u
	for u in https://a:80x1 a:0 a:65536 a:+81 "a: 81" a: https://h/path ftp://h; do
		run "$VEIL" policy list --cas "$u" && rejected || return 1
		has "error: '$u' is not a CAS address (https://HOST[:PORT], HOST[:PORT] or :PORT; PORT from 1 to 65535)" || return 1
	done
	run "$VEIL" policy list --cas :8081 && rejected && has "the CAS at https://127.0.0.1:8081 is not attested yet" || return 1
	run "$VEIL" policy list --cas localhost && rejected && has "the CAS at https://localhost:8081 is not attested yet" || return 1
	run "$VEIL" policy list --cas '[::1]:99' && rejected && has "the CAS at https://[::1]:99 is not attested yet"
}

# --help and --version at every level, on stdout, exit 0
t_help_and_version_everywhere() {
	local words version
	version=$("$VEIL" --version)
	[[ $version =~ ^veil\ [0-9]+\.[0-9]+\.[0-9]+$ ]] || die "veil --version: $version" || return 1
	for words in "" check apply policy "policy create" "policy get" "policy update" "policy edit" \
		"policy delete" "policy list" cas "cas attest" audit "audit verify" whoami completion \
		"completion bash"; do
		# shellcheck disable=SC2086
		run "$VEIL" $words --help && ok && has "Usage: veil${words:+ $words}" || return 1
		# shellcheck disable=SC2086
		run "$VEIL" $words --version && ok && [ "$out" = "$version" ] || die "$words --version: $out" || return 1
	done
	run "$VEIL" audit verify -h && ok && has "Usage: veil audit verify" || return 1
	[ ! -e ./--help ] || die "a file named --help"
}

t_check_json() {
	seed_copy "$WORK/m"
	sed -i 's/^environment:/enviroment:/' "$WORK/m/service.yaml"
	run "$VEIL" check -o json "$SEED/Meshfile" "$WORK/m/service.yaml" && rejected || return 1
	printf '%s' "$out" >"$WORK/out.json"
	python3 - "$WORK/out.json" "$SEED/Meshfile" "$WORK/m/service.yaml" <<'EOM' || die "check -o json: $out" || return 1
import json, sys
d = json.load(open(sys.argv.pop(1)))
a, b = d["files"]
assert a == {"file": sys.argv[1], "kind": "mesh", "ok": True, "errors": []}, a
assert b["file"] == sys.argv[2] and b["kind"] == "service" and b["ok"] is False, b
assert any("unknown key 'enviroment'" in e for e in b["errors"]), b
EOM
	has "error: $WORK/m/service.yaml:8:1: unknown key 'enviroment'" || return 1
	run "$VEIL" check -o yaml "$SEED/Meshfile" && ok && has "kind: mesh" && has "ok: true"
}

# -f repeated, a folder, and - (stdin): every input applied, none dropped
t_several_inputs() {
	seed_copy "$WORK/app"
	cd "$WORK" || return 1
	# both files in one call: the service is measured before the mesh needs it
	run "$VEIL" apply -f app/Meshfile -f app/service.yaml --no-push --no-upload && ok || return 1
	has "service python_hello_user: measured" && has "policy myPythonApp: 1 service" || return 1
	diff -u "$GOLDEN/myPythonApp.yaml" target/policies/myPythonApp.yaml >&2 || die "policy differs" || return 1
	# a folder: its service.yaml and Meshfile (print_env.py is no manifest)
	rm -rf target
	run "$VEIL" apply -f app --no-push --no-upload --output-dir out2 && ok || return 1
	has "service python_hello_user: measured" && has "policy myPythonApp: 1 service" || return 1
	[ -f out2/policies/myPythonApp.yaml ] || die "folder: no policy" || return 1
	# stdin, for a Meshfile and for a service manifest (copy files relative to .)
	(cd app && "$VEIL" apply -f - -t ../out3 --no-push <service.yaml) >/dev/null 2>&1 || die "service from stdin" || return 1
	run "$VEIL" apply -f - -t out3 --no-upload <app/Meshfile && ok && has "policy myPythonApp: 1 service" || return 1
	cmp out3/policies/myPythonApp.yaml "$GOLDEN/myPythonApp.yaml" || die "stdin: policy differs" || return 1
	# refusals: stdin twice, an empty folder, a policy file, a missing file
	run "$VEIL" apply -f - -f - --no-upload </dev/null && rejected && has "'-' (stdin) is given twice" || return 1
	mkdir -p empty
	run "$VEIL" apply -f empty && rejected && has "empty: the folder holds no manifest (*.yaml, *.yml or Meshfile)" || return 1
	run "$VEIL" apply -f out3/policies/myPythonApp.yaml && rejected || return 1
	has "required key 'apiVersion' is missing" || return 1
	# a bad input among good ones: nothing is applied
	rm -rf out4
	run "$VEIL" apply -f app/service.yaml -f missing.yaml -t out4 --no-push && rejected && has "missing.yaml" || return 1
	[ ! -e out4 ] || die "an input was applied although another was bad" || return 1
	# a schema error in a later input: the earlier service is not measured either
	sed 's/^environment:/enviroment:/' app/service.yaml >bad-service.yaml
	run "$VEIL" apply -f app/service.yaml -f bad-service.yaml -t out5 --no-push && rejected &&
		has "bad-service.yaml:8:1: unknown key 'enviroment'" || return 1
	[ ! -e out5 ] || die "a service was measured although a later input was invalid" || return 1
	# check: several files, a folder and stdin
	run "$VEIL" check app - <app/Meshfile && ok || return 1
	has "app/Meshfile: ok (Meshfile)" && has "app/service.yaml: ok (service manifest)" && has "<stdin>: ok (Meshfile)"
}

t_apply_json() {
	cd "$WORK" || return 1
	run "$VEIL" apply -f "$SEED/service.yaml" -f "$SEED/Meshfile" --no-push --no-upload \
		--format helm,manifests -o json && ok || return 1
	printf '%s' "$out" >"$WORK/out.json"
	python3 - "$WORK/out.json" "$(sha256sum target/policies/myPythonApp.yaml | cut -d' ' -f1)" <<'EOM' || die "apply -o json: $out" || return 1
import json, sys
items = json.load(open(sys.argv.pop(1)))["items"]
s, m = items
assert s["kind"] == "service" and s["name"] == "python_hello_user" and s["files"] == 1, s
assert len(s["file_set_root"]) == 64 and s["record"].endswith("measurement.yaml"), s
assert m["kind"] == "mesh" and m["namespace"] == "myPythonApp" and m["services"] == 1, m
assert m["policy_hash"] == sys.argv[1] and m["policy_file"] == "target/policies/myPythonApp.yaml", m
assert m["outputs"] == {"helm": "target/helm", "manifests": "target/manifests"}, m
assert m["cas"] is None, m
EOM
	run "$VEIL" apply -f "$SEED/Meshfile" --no-upload -o yaml && ok && has "namespace: myPythonApp" || return 1
	run "$VEIL" apply -f "$SEED/Meshfile" -p -o json && [ "$rc" -eq 2 ] && has "-p prints text; it takes no -o"
}

# The same inputs twice: not one byte of target/ changes (no upload here)
t_apply_twice_same_bytes() {
	cd "$WORK" || return 1
	"$VEIL" apply -f "$SEED/service.yaml" --no-push >/dev/null || return 1
	"$VEIL" apply -f "$SEED/Meshfile" --no-upload --format helm,manifests >/dev/null 2>&1 || return 1
	local a
	a=$(cd target && find . -type f -print0 | sort -z | xargs -0 sha256sum)
	"$VEIL" apply -f "$SEED/Meshfile" --no-upload --format helm,manifests >/dev/null 2>&1 || return 1
	[ "$a" = "$(cd target && find . -type f -print0 | sort -z | xargs -0 sha256sum)" ] || die "target/ changed"
}

# A mesh that cannot name a chart is refused before anything is written
t_failed_apply_writes_nothing() {
	seed_copy "$WORK"
	cd "$WORK" || return 1
	"$VEIL" apply -f service.yaml --no-push >/dev/null && "$VEIL" apply -f Meshfile --no-upload >/dev/null 2>&1 || return 1
	local a
	a=$(cd target && find . -type f -print0 | sort -z | xargs -0 sha256sum)
	sed -i 's/namespace: myPythonApp/namespace: 9lives/' Meshfile
	run "$VEIL" apply -f Meshfile --no-upload && rejected && has "namespace '9lives' cannot name a Helm chart" || return 1
	[ ! -e target/policies/9lives.yaml ] || die "a policy was written" || return 1
	[ "$a" = "$(cd target && find . -type f -print0 | sort -z | xargs -0 sha256sum)" ] || die "target/ changed"
}

# veil completion bash: sourced, it completes commands, sub-commands and flags
t_bash_completion() {
	run bash -c 'source <("$1" completion bash) && complete -p veil' _ "$VEIL" && ok && [ "$out" = "complete -F _veil veil" ] ||
		die "complete -p: $out $err" || return 1
	mkdir -p "$WORK/c" && touch "$WORK/c/Meshfile"
	# complete WORDS...: what _veil offers for the last word
	cat >"$WORK/complete.sh" <<'EOM'
source <("$VEIL" completion bash)
COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1))
_veil
printf '%s
' "${COMPREPLY[@]}"
EOM
	comp() { VEIL=$VEIL bash "$WORK/complete.sh" "$@"; }
	[ "$(comp veil po)" = policy ] || die "veil po -> $(comp veil po)" || return 1
	[ "$(comp veil policy g)" = get ] || die "veil policy g -> $(comp veil policy g)" || return 1
	[ "$(comp veil policy get --c)" = --cas ] || die "veil policy get --c" || return 1
	[ "$(comp veil apply --fo)" = --format ] || die "veil apply --fo" || return 1
	[ "$(comp veil apply -f x --format h)" = $'helm\nhelm,manifests' ] || die "--format h: $(comp veil apply -f x --format h)" || return 1
	[ "$(comp veil check -o j)" = json ] || die "check -o j" || return 1
	[ "$(comp veil apply -f "$WORK/c/M")" = "$WORK/c/Meshfile" ] || die "-f completes files: $(comp veil apply -f "$WORK/c/M")" || return 1
	[ "$(comp veil audit verify "$WORK/c/M")" = "$WORK/c/Meshfile" ] || die "audit verify FILE" || return 1
	[ "$(comp veil completion '')" = bash ] || die "veil completion" || return 1
	comp veil '' | grep -qx whoami || die "top level lacks whoami" || return 1
	# every flag veil apply accepts is offered, and only those
	local f
	for f in $(comp veil apply -- ''); do :; done
	for f in --file --output-dir --format --no-upload --cas --help --version -f -t -o -p; do
		comp veil apply - | grep -qx -- "$f" || die "veil apply - lacks $f" || return 1
	done
}

t_seed_check() {
	run "$VEIL" check "$SEED/service.yaml" "$SEED/Meshfile"
	ok && has "service.yaml: ok (service manifest)" && has "Meshfile: ok (Meshfile)"
}

# The seed's two files, verbatim, produce the pinned policy.
t_seed_golden() {
	cd "$WORK" || return 1
	run "$VEIL" apply -f "$SEED/service.yaml" --no-push && ok || return 1
	has "file-set root" || return 1
	run "$VEIL" apply -f "$SEED/Meshfile" --no-upload && ok || return 1
	diff -u "$GOLDEN/myPythonApp.yaml" target/policies/myPythonApp.yaml >&2 ||
		die "policy differs from golden" || return 1
	local want
	want=$(sha256sum target/policies/myPythonApp.yaml | cut -d' ' -f1)
	has "policy hash $want" || return 1
	has "policy hash $(cat "$GOLDEN/myPythonApp.hash")" || return 1
	[ -f target/helm/Chart.yaml ] && [ -f target/helm/values.yaml ] &&
		[ -f target/helm/templates/pythonapp-deployment.yaml ] &&
		[ -f target/helm/templates/pythonapp-service.yaml ] || die "chart incomplete"
}

t_seed_debug_mode() {
	cd "$WORK" || return 1
	run "$VEIL" apply -f "$SEED/service.yaml" --no-push && ok || return 1
	run "$VEIL" apply -f "$SEED/Meshfile" --no-upload --mode debug && ok || return 1
	diff -u "$GOLDEN/myPythonApp-debug.yaml" target/policies/myPythonApp.yaml >&2 ||
		die "debug policy differs from golden"
}

# Same input, byte-identical output and hash, wherever it is run from.
t_deterministic() {
	mkdir -p "$WORK/a" "$WORK/b"
	(cd "$WORK/a" && "$VEIL" apply -f "$SEED/service.yaml" --no-push >/dev/null &&
		"$VEIL" apply -f "$SEED/Meshfile" --no-upload --format helm,manifests >"$WORK/a.out") || return 1
	(cd "$WORK/b" && "$VEIL" apply -f "$SEED/service.yaml" --no-push >/dev/null &&
		"$VEIL" apply -f "$SEED/Meshfile" --no-upload --format helm,manifests >"$WORK/b.out") || return 1
	diff -r "$WORK/a/target" "$WORK/b/target" >&2 || die "outputs differ" || return 1
	diff "$WORK/a.out" "$WORK/b.out" >&2 || die "printed hash differs"
}

# No secret value is generated or written by veil: only the CAS has them.
t_no_secret_values() {
	cd "$WORK" || return 1
	"$VEIL" apply -f "$SEED/service.yaml" --no-push >/dev/null &&
		"$VEIL" apply -f "$SEED/Meshfile" --no-upload --format helm,manifests >/dev/null 2>&1 || return 1
	grep -q 'value:' target/policies/myPythonApp.yaml && die "policy holds a secret value"
	grep -rq 'API_PASSWORD' target/helm target/manifests && die "chart names the protected env"
	grep -rq 'myself' target/helm target/manifests && die "chart holds a protected env value"
	return 0
}

t_measurement_record() {
	cd "$WORK" || return 1
	seed_copy app
	run "$VEIL" apply -f app/service.yaml -t out --no-push && ok || return 1
	local rec=out/images/python_hello_user/measurement.yaml
	grep -q "path: /python/print_env.py" $rec || die "image path missing" || return 1
	grep -q "sha256: $(sha256sum app/print_env.py | cut -d' ' -f1)" $rec ||
		die "file hash missing" || return 1
	grep -q "sha256: $(sha256sum "$VEIL_RUNTIME" | cut -d' ' -f1)" $rec ||
		die "runtime measurement missing" || return 1
	# the documented file-set root, recomputed with a shell
	local root
	root=$({ printf 'veil-fileset-v1\n'; printf '%s 0644 /python/print_env.py\n' \
		"$(sha256sum app/print_env.py | cut -d' ' -f1)"; } | sha256sum | cut -d' ' -f1)
	grep -q "file_set_root: $root" $rec || die "file-set root is not the documented one" || return 1
	# a changed file changes the root
	echo "# changed" >>app/print_env.py
	run "$VEIL" apply -f app/service.yaml -t out --no-push && ok || return 1
	! grep -q "file_set_root: $root" $rec || die "root did not change"
}

t_runtime_default_is_veil_run() {
	cd "$WORK" || return 1
	# without VEIL_RUNTIME the veil-run built next to veil is measured
	run env -u VEIL_RUNTIME "$VEIL" apply -f "$SEED/service.yaml" --no-push && ok || return 1
	has "mrenclave      $(sha256sum "$(dirname "$VEIL")/veil-run" | cut -d' ' -f1)"
}

# without --no-push the image goes to build.to: here sent by the mirror map to
# a closed loopback port, so the push fails; the built image stays
t_failed_push_keeps_the_image() {
	cd "$WORK" || return 1
	rm -rf target/images/python_hello_user/oci
	run "$VEIL" apply -f "$SEED/service.yaml" --registry-mirror registry.scontain.com:5050=127.0.0.1:1 \
		--insecure-registry 127.0.0.1:1 && rejected || return 1
	has "image not pushed to registry.scontain.com:5050/cicd/python_hello_user:latest; it is built and kept in target/images/python_hello_user/oci" || return 1
	[ -f target/images/python_hello_user/oci/index.json ] || die "the built image was not kept" || return 1
	# without --no-upload the policy goes to a CAS: here a closed loopback port
	VEIL_HOME=$WORK/home run "$VEIL" apply -f "$SEED/Meshfile" --cas https://127.0.0.1:1 && rejected || return 1
	has "127.0.0.1:1"
}

t_two_service_mesh() {
	cd "$WORK" || return 1
	run "$VEIL" check "$TWO/frontend/service.yaml" "$TWO/backend/service.yaml" "$TWO/Meshfile" &&
		ok || return 1
	"$VEIL" apply -f "$TWO/frontend/service.yaml" --no-push >/dev/null &&
		"$VEIL" apply -f "$TWO/backend/service.yaml" --no-push >/dev/null || return 1
	run "$VEIL" apply -f "$TWO/Meshfile" --no-upload --format helm,manifests && ok || return 1
	diff -u "$GOLDEN/demoMesh.yaml" target/policies/demoMesh.yaml >&2 ||
		die "two-service policy differs from golden" || return 1
	# the shared global secret is defined once
	[ "$(grep -c 'name: db_password' target/policies/demoMesh.yaml)" -eq 1 ] ||
		die "global secret not collected once" || return 1
	# per-service env block overrides the global block
	grep -q 'LOG_LEVEL: debug' target/policies/demoMesh.yaml || die "per-service block ignored" || return 1
	grep -q 'LOG_LEVEL: warning' target/policies/demoMesh.yaml || die "global block ignored" || return 1
	grep -q 'containerPort: 8443' target/manifests/frontend-deployment.yaml || die "port" || return 1
	grep -q 'name: backend-pull' target/manifests/backend-deployment.yaml || die "image_secrets" || return 1
	grep -q 'name: demo-pull' target/manifests/frontend-deployment.yaml || die "imagePullSecrets"
}

t_print_defaults() {
	cd "$WORK" || return 1
	"$VEIL" apply -f "$SEED/service.yaml" --no-push >/dev/null || return 1
	run "$VEIL" apply -f "$SEED/Meshfile" -p && ok || return 1
	has "pythonapp" && has "API_USER" && has "set in the Meshfile: myself" || return 1
	[ ! -d target/policies ] || die "-p must not write the policy" || return 1
	run "$VEIL" apply -f "$SEED/service.yaml" -p && ok && has "REQUIRED: no default"
}

# ---- negative cases: each asserts the message ----
t_misspelt_key() {
	seed_copy "$WORK/m"
	sed -i 's/^environment:/enviroment:/' "$WORK/m/service.yaml"
	run "$VEIL" check "$WORK/m/service.yaml" && rejected || return 1
	has "service.yaml:8:1: unknown key 'enviroment' in the service manifest (did you mean 'environment'?)"
}

t_misspelt_nested_key() {
	seed_copy "$WORK/m"
	sed -i 's/^  command: python3/  comand: python3/' "$WORK/m/service.yaml"
	run "$VEIL" check "$WORK/m/service.yaml" && rejected || return 1
	has "unknown key 'comand' in build (did you mean 'command'?)" && has "service.yaml:31:3"
}

t_wrong_type() {
	seed_copy "$WORK/m"
	sed -i 's/size: 10/size: ten/' "$WORK/m/service.yaml"
	run "$VEIL" check "$WORK/m/service.yaml" && rejected || return 1
	has "service.yaml:24:11: secrets.global entry: 'size' must be an integer from 0 to 65536, found 'ten'" || return 1
	seed_copy "$WORK/n"
	sed -i 's/^services:/services: pythonapp\nold_services:/' "$WORK/n/Meshfile"
	run "$VEIL" check "$WORK/n/Meshfile" && rejected || return 1
	has "top level: 'services' must be a list, found a scalar"
}

t_all_errors_listed() {
	seed_copy "$WORK/m"
	sed -i 's/^environment:/enviroment:/; s/size: 10/size: ten/' "$WORK/m/service.yaml"
	run "$VEIL" check "$WORK/m/service.yaml" && rejected || return 1
	has "unknown key 'enviroment'" && has "'size' must be an integer"
}

t_missing_global_value() {
	seed_copy "$WORK/m"
	cd "$WORK/m" || return 1
	sed -i '/name: API_USER/,+1d' Meshfile
	"$VEIL" apply -f service.yaml --no-push >/dev/null || return 1
	run "$VEIL" apply -f Meshfile --no-upload && rejected || return 1
	has "service 'pythonapp': global variable 'API_USER' has no value; set it in the Meshfile's env or give a default in" || return 1
	[ ! -e target/policies/myPythonApp.yaml ] || die "a policy was written"
}

t_meshfile_sets_local() {
	seed_copy "$WORK"
	cd "$WORK" || return 1
	sed -i 's/^  - name: imagePullSecrets/  - name: SCONE_LOG\n    value: debug\n  - name: imagePullSecrets/' Meshfile
	"$VEIL" apply -f service.yaml --no-push >/dev/null || return 1
	run "$VEIL" apply -f Meshfile --no-upload && rejected || return 1
	has "Meshfile:17:11: the Meshfile sets 'SCONE_LOG' (env list), but 'SCONE_LOG' is a local variable of service 'pythonapp'" || return 1
	has "cannot be set from the Meshfile" || return 1
	# the message names the user's manifest, not the measured copy
	has "($WORK/service.yaml:12)"
}

t_stale_manifest_warns() {
	seed_copy "$WORK/m"
	cd "$WORK/m" || return 1
	"$VEIL" apply -f service.yaml --no-push >/dev/null || return 1
	echo "# edited later" >>service.yaml
	run "$VEIL" apply -f Meshfile --no-upload && ok || return 1
	has "service.yaml changed since it was measured; using the measured copy"
}

t_meshfile_block_sets_local() {
	seed_copy "$WORK/m"
	cd "$WORK/m" || return 1
	cat >>Meshfile <<'EOM'
EOM
	sed -i 's/^env:/env:\n  - service: pythonapp\n    env:\n      - name: API_PASSWORD\n        value: hunter2/' Meshfile
	"$VEIL" apply -f service.yaml --no-push >/dev/null || return 1
	run "$VEIL" apply -f Meshfile --no-upload && rejected || return 1
	has "the Meshfile sets 'API_PASSWORD' (env block of pythonapp), but 'API_PASSWORD' is a local variable of service 'pythonapp'" || return 1
	lacks "hunter2" # the attempted value is not echoed
}

t_undeclared_secret() {
	seed_copy "$WORK/m"
	sed -i 's/\$\$SCONE::password\$\$/$$SCONE::pasword$$/' "$WORK/m/service.yaml"
	run "$VEIL" check "$WORK/m/service.yaml" && rejected || return 1
	has "service.yaml:15:14: variable 'API_PASSWORD' refers to secret 'pasword', which is not declared in 'secrets' or 'secrets.import'"
}

t_undeclared_secret_from_meshfile() {
	seed_copy "$WORK/m"
	cd "$WORK/m" || return 1
	sed -i 's/    value: myself/    value: "$$SCONE::admin_token$$"/' Meshfile
	"$VEIL" apply -f service.yaml --no-push >/dev/null || return 1
	run "$VEIL" apply -f Meshfile --no-upload && rejected || return 1
	has "variable 'API_USER' of service 'pythonapp' refers to secret 'admin_token', which is not declared"
}

t_bad_placeholder_suffix() {
	seed_copy "$WORK/m"
	sed -i 's/\$\$SCONE::password\$\$/$$SCONE::password:rot13$$/' "$WORK/m/service.yaml"
	run "$VEIL" check "$WORK/m/service.yaml" && rejected || return 1
	has "unknown suffix"
}

t_missing_copy_file() {
	seed_copy "$WORK/m"
	rm "$WORK/m/print_env.py"
	run "$VEIL" apply -f "$WORK/m/service.yaml" -t "$WORK/t" --no-push && rejected || return 1
	has "service.yaml:33:5: copy file 'print_env.py' not found next to the manifest" || return 1
	[ ! -e "$WORK/t/images" ] || die "a record was written"
}

t_copy_escape() {
	seed_copy "$WORK/m"
	sed -i 's/- print_env.py/- ..\/..\/etc\/passwd/' "$WORK/m/service.yaml"
	run "$VEIL" apply -f "$WORK/m/service.yaml" -t "$WORK/t" --no-push && rejected || return 1
	has "must be a path relative to the manifest's folder without '..'"
}

t_duplicate_service() {
	seed_copy "$WORK/m"
	printf '  - name: pythonapp\n    image: other:1\n' >>"$WORK/m/Meshfile"
	run "$VEIL" check "$WORK/m/Meshfile" && rejected || return 1
	has "Meshfile:25:11: duplicate service name 'pythonapp' (first at line 23)"
}

t_duplicate_key() {
	seed_copy "$WORK/m"
	printf 'policy:\n  namespace: other\n' >>"$WORK/m/Meshfile"
	run "$VEIL" check "$WORK/m/Meshfile" && rejected || return 1
	has "duplicate key 'policy' (first at line 10)"
}

t_duplicate_env() {
	seed_copy "$WORK/m"
	sed -i 's/^    - name: SCONE_LOG/    - name: SCONE_HEAP\n      value: 1G\n    - name: SCONE_LOG/' "$WORK/m/service.yaml"
	run "$VEIL" check "$WORK/m/service.yaml" && rejected || return 1
	has "variable 'SCONE_HEAP' defined twice (first at line 10)"
}

t_non_yaml() {
	printf 'build: [unclosed\n  - x: {\n' >"$WORK/bad.yaml"
	run "$VEIL" check "$WORK/bad.yaml" && rejected || return 1
	has "bad.yaml:" && has "not valid YAML" || return 1
	head -c 4096 /dev/urandom >"$WORK/random.bin"
	run "$VEIL" check "$WORK/random.bin" && rejected || return 1
	has "random.bin:" || return 1
	printf 'just some text\n' >"$WORK/text.yaml"
	run "$VEIL" check "$WORK/text.yaml" && rejected || return 1
	has "the document must be a mapping, found a scalar"
}

t_invalid_utf8() {
	printf 'apiVersion: scone/5.8\nkind: mesh\npolicy:\n  namespace: \xff\xfe\n' >"$WORK/u.yaml"
	run "$VEIL" check "$WORK/u.yaml" && rejected || return 1
	has "not valid YAML"
}

t_empty_file() {
	: >"$WORK/empty.yaml"
	run "$VEIL" check "$WORK/empty.yaml" && rejected || return 1
	has "empty.yaml: file is empty (no YAML document)" || return 1
	printf '# only a comment\n' >"$WORK/comment.yaml"
	run "$VEIL" check "$WORK/comment.yaml" && rejected || return 1
	has "file is empty"
}

t_ten_megabytes() {
	{ cat "$SEED/Meshfile"; head -c 10485760 /dev/zero | tr '\0' '#'; } >"$WORK/big.yaml"
	run "$VEIL" check "$WORK/big.yaml" && rejected || return 1
	has "big.yaml: file is 10486" && has "larger than the limit of 4194304 bytes"
}

t_deep_nesting() {
	{ printf 'apiVersion: scone/5.8\nkind: mesh\nx: '; for _ in $(seq 1000); do printf '['; done
	  for _ in $(seq 1000); do printf ']'; done; echo; } >"$WORK/deep.yaml"
	run "$VEIL" check "$WORK/deep.yaml" && rejected || return 1
	has "deep.yaml:3:" && has "nesting deeper than the limit of 64 levels" || return 1
	{ printf 'a:\n'; for i in $(seq 1000); do printf '%*sa:\n' $((i * 2)) ''; done; } >"$WORK/deep2.yaml"
	run "$VEIL" check "$WORK/deep2.yaml" && rejected || return 1
	has "nesting deeper than the limit"
}

t_aliases_refused() {
	printf 'apiVersion: scone/5.8\nkind: mesh\na: &x [1]\nb: *x\n' >"$WORK/alias.yaml"
	run "$VEIL" check "$WORK/alias.yaml" && rejected || return 1
	has "YAML aliases (*x) are not supported"
}

t_wrong_kind() {
	printf 'apiVersion: scone/5.8\nkind: genservise\n' >"$WORK/k.yaml"
	run "$VEIL" check "$WORK/k.yaml" && rejected || return 1
	has "k.yaml:2:7: unknown kind 'genservise'" || return 1
	printf 'apiVersion: scone/4\nkind: mesh\n' >"$WORK/v.yaml"
	run "$VEIL" check "$WORK/v.yaml" && rejected || return 1
	has "unsupported apiVersion 'scone/4'"
}

t_mesh_without_record() {
	cd "$WORK" || return 1
	run "$VEIL" apply -f "$SEED/Meshfile" --no-upload && rejected || return 1
	has "service 'pythonapp': no measurement record for image 'registry.scontain.com:5050/cicd/python_hello_user:latest'"
}

t_unknown_tolerance_flag() {
	seed_copy "$WORK/m"
	sed -i 's/ -C -G -S/ -C -G -S --trust-everything/' "$WORK/m/Meshfile"
	run "$VEIL" check "$WORK/m/Meshfile" && rejected || return 1
	has "unknown tolerance flag '--trust-everything'"
}

t_unknown_template() {
	seed_copy "$WORK/m"
	cd "$WORK/m" || return 1
	sed -i 's/value: 760M/value: "{{HEAP_SIZE}}"/' service.yaml
	"$VEIL" apply -f service.yaml --no-push >/dev/null || return 1
	run "$VEIL" apply -f Meshfile --no-upload && rejected || return 1
	has "template {{HEAP_SIZE}} names no Meshfile variable or cas field"
}

t_local_secret_is_local() {
	cd "$WORK" || return 1
	mkdir -p a b
	cat >a/service.yaml <<'EOM'
apiVersion: veil/v1
kind: genservice
environment:
  local:
    - name: K
      value: "$$SCONE::akey$$"
secrets:
  local:
    - name: akey
      kind: binary
build: {name: a, to: "img/a:1", command: a}
EOM
	cat >b/service.yaml <<'EOM'
apiVersion: veil/v1
kind: genservice
environment:
  global:
    - name: K
build: {name: b, to: "img/b:1", command: b}
EOM
	cat >Meshfile <<'EOM'
apiVersion: veil/v1
kind: mesh
policy: {namespace: loc}
env:
  - service: b
    env: [{name: K, value: "$$SCONE::akey$$"}]
services:
  - {name: a, image: "img/a:1"}
  - {name: b, image: "img/b:1"}
EOM
	"$VEIL" apply -f a/service.yaml --no-push >/dev/null && "$VEIL" apply -f b/service.yaml --no-push >/dev/null || return 1
	run "$VEIL" apply -f Meshfile --no-upload && rejected || return 1
	has "variable 'K' of service 'b' refers to secret 'akey', which is local to service 'a'"
}

t_conflicting_global_secrets() {
	cd "$WORK" || return 1
	mkdir -p a b
	for s in a b; do
		size=10; [ $s = b ] && size=12
		cat >$s/service.yaml <<EOM
apiVersion: veil/v1
kind: genservice
secrets:
  global:
    - name: shared
      kind: ascii
      size: $size
build: {name: $s, to: "img/$s:1", command: $s}
EOM
		"$VEIL" apply -f $s/service.yaml --no-push >/dev/null || return 1
	done
	printf 'apiVersion: veil/v1\nkind: mesh\npolicy: {namespace: g}\nservices:\n  - {name: a, image: "img/a:1"}\n  - {name: b, image: "img/b:1"}\n' >Meshfile
	run "$VEIL" apply -f Meshfile --no-upload && rejected || return 1
	has "global secrets of the same name must be defined identically"
}

# SCONE's flask/redis tutorial: `secrets: import: [name]` names a global
# secret of another service of the same mesh; the policy holds it once and
# both services refer to it (so the CAS gives both the same value)
t_import_within_mesh() {
	cd "$WORK" || return 1
	mkdir -p redis flask
	cat >redis/service.yaml <<'EOM'
apiVersion: scone/5.8
kind: genservice
environment:
  local:
    - name: CA
      value: "$$SCONE::redis_ca_cert:crt$$"
secrets:
  global:
    - name: redis_ca_key
      kind: private-key
    - name: redis_ca_cert
      kind: x509-ca
      private_key: redis_ca_key
build: {name: redis, to: "img/redis:1", command: redis-server}
EOM
	cat >flask/service.yaml <<'EOM'
apiVersion: scone/5.8
kind: genservice
injection_files:
  - path: /tls/redis-ca.crt
    content: $$SCONE::redis_ca_cert.chain$$
secrets:
  import:
    - redis_ca_cert
build: {name: flask, to: "img/flask:1", command: python3 api.py}
EOM
	"$VEIL" apply -f redis/service.yaml --no-push >/dev/null &&
		"$VEIL" apply -f flask/service.yaml --no-push >/dev/null || return 1
	printf 'apiVersion: scone/5.8\nkind: mesh\npolicy: {namespace: fr}\nservices:\n  - {name: flask, image: "img/flask:1"}\n  - {name: redis, image: "img/redis:1"}\n' >Meshfile
	run "$VEIL" check redis/service.yaml flask/service.yaml Meshfile && ok || return 1
	run "$VEIL" apply -f Meshfile --no-upload && ok || return 1
	local pol=target/policies/fr.yaml
	[ "$(grep -c '^    name: redis_ca_cert$' $pol)" = 1 ] || die "redis_ca_cert is not one secret: $(cat $pol)" || return 1
	! grep -q 'import' $pol || die "the policy holds an import: $(cat $pol)" || return 1
	grep -qF 'content: "$$SCONE::redis_ca_cert.chain$$"' $pol &&
		grep -qF 'CA: "$$SCONE::redis_ca_cert:crt$$"' $pol || die "a reference is missing: $(cat $pol)" || return 1
	# without the declaring service the import names nothing
	printf 'apiVersion: scone/5.8\nkind: mesh\npolicy: {namespace: fr}\nservices:\n  - {name: flask, image: "img/flask:1"}\n' >Meshfile
	run "$VEIL" apply -f Meshfile --no-upload && rejected || return 1
	[ "$err" = "error: $WORK/flask/service.yaml:8:7: service 'flask' imports secret 'redis_ca_cert', but no service of the mesh declares a global secret 'redis_ca_cert' (to import from another namespace, give {name, namespace, secret})" ] ||
		die "got: $err"
}

# SCONE's command is one string; a secret placeholder in it is refused (on
# veil's command line the node could read the secret)
t_command_forms() {
	cd "$WORK" || return 1
	printf 'apiVersion: scone/5.8\nkind: genservice\nbuild:\n  name: a\n  to: r/a:1\n  command: [python3, app.py]\n' >list.yaml
	run "$VEIL" check list.yaml && rejected || return 1
	[ "$err" = "error: list.yaml:6:12: build: 'command' must be one string, found a list (the program and its arguments separated by blanks, as in SCONE: command: python3 app.py --port 80)" ] || die "got: $err" || return 1
	printf 'apiVersion: scone/5.8\nkind: genservice\nsecrets:\n  local: [{name: pw, kind: ascii}]\nbuild:\n  name: a\n  to: r/a:1\n  command: python3 app.py $$SCONE::pw$$\n' >ph.yaml
	run "$VEIL" check ph.yaml && rejected || return 1
	[ "$err" = "error: ph.yaml:8:12: build: 'command' holds a secret placeholder; veil does not put secrets on a command line, which the node can read (ps, /proc/PID/cmdline): pass the secret in the environment or an injection file" ] || die "got: $err"
}

# SCONE's Meshfile modes: NoUpload keeps the policy local, Upload uploads,
# the signing/encrypting modes are refused (veil does neither)
t_meshfile_modes() {
	seed_copy "$WORK"
	cd "$WORK" || return 1
	"$VEIL" apply -f service.yaml --no-push >/dev/null || return 1
	sed -i 's|^    cas_url: edge.scone-cas.cf.*|    cas_url: https://127.0.0.1:1\n    mode: NoUpload|' Meshfile
	grep -q '^    mode: NoUpload$' Meshfile || die "Meshfile not edited" || return 1
	VEIL_HOME=$WORK/home run "$VEIL" apply -f Meshfile && ok || return 1
	has "written to target/policies/myPythonApp.yaml" && lacks "uploaded" && lacks "127.0.0.1:1" || return 1
	[ ! -e "$WORK/home" ] || die "the CAS was contacted (VEIL_HOME was created)" || return 1
	sed -i 's|^    mode: NoUpload$|    mode: Upload|' Meshfile
	VEIL_HOME=$WORK/home run "$VEIL" apply -f Meshfile && rejected && has "127.0.0.1:1" || return 1
	for m in SignedManifest EncryptedManifest EncryptedOnly; do
		sed -i "s|^    mode: .*|    mode: $m|" Meshfile
		run "$VEIL" check Meshfile && rejected || return 1
		[ "$err" = "error: Meshfile:8:11: cas entry: mode '$m' is not supported: veil neither signs nor encrypts manifests or policies; it uploads the policy over mutual TLS to the CAS it attested (mode Upload, the default) or not at all (mode NoUpload)" ] || die "got: $err" || return 1
	done
}

t_tampered_record() {
	cd "$WORK" || return 1
	"$VEIL" apply -f "$SEED/service.yaml" --no-push >/dev/null || return 1
	sed -i 's/^    sha256: ./    sha256: 0/' target/images/python_hello_user/measurement.yaml
	run "$VEIL" apply -f "$SEED/Meshfile" --no-upload && rejected || return 1
	has "file_set_root does not match the files listed"
}

t_shared_image_two_services() {
	seed_copy "$WORK"
	cd "$WORK" || return 1
	cat >>service.yaml <<'EOM'
EOM
	sed -i 's/^secrets:/secrets:\n  local:\n    - name: token\n      kind: binary\n      size: 16/' service.yaml
	sed -i 's/^    - name: SCONE_LOG/    - name: TOKEN\n      value: "$$SCONE::token:hex$$"\n    - name: SCONE_LOG/' service.yaml
	printf '  - name: pythonapp2\n    image: registry.scontain.com:5050/cicd/python_hello_user:latest\n' >>Meshfile
	"$VEIL" apply -f service.yaml --no-push >/dev/null || return 1
	run "$VEIL" apply -f Meshfile --no-upload --format manifests && ok || return 1
	[ "$(grep -c 'name: token' target/policies/myPythonApp.yaml)" -eq 1 ] || die "local secret not shared by one manifest" || return 1
	[ -f target/manifests/pythonapp2-deployment.yaml ] || die "second deployment missing"
}

t_removed_service_leaves_no_stale_chart() {
	seed_copy "$WORK"
	cd "$WORK" || return 1
	printf '  - name: extra\n    image: registry.scontain.com:5050/cicd/python_hello_user:latest\n' >>Meshfile
	"$VEIL" apply -f service.yaml --no-push >/dev/null || return 1
	"$VEIL" apply -f Meshfile --no-upload --format helm,manifests >/dev/null 2>&1 || return 1
	[ -f target/helm/templates/extra-deployment.yaml ] || die "extra not written" || return 1
	sed -i '/name: extra/,+1d' Meshfile
	"$VEIL" apply -f Meshfile --no-upload --format helm,manifests >/dev/null 2>&1 || return 1
	[ ! -e target/helm/templates/extra-deployment.yaml ] && [ ! -e target/manifests/extra-deployment.yaml ] ||
		die "stale files of a removed service" || return 1
	[ -z "$(ls -A target | grep '^\.')" ] || die "temporary folders left behind"
}

t_meshfile_env_needs_value() {
	seed_copy "$WORK/m"
	sed -i 's/^    value: myself//' "$WORK/m/Meshfile"
	run "$VEIL" check "$WORK/m/Meshfile" && rejected || return 1
	has "Meshfile:15:11: env: 'API_USER' needs a value"
}

t_meshfile_shared_scope_duplicate() {
	seed_copy "$WORK/m"
	sed -i 's/^env:/env:\n  - service: global\n    env:\n      - name: API_USER\n        value: other/' "$WORK/m/Meshfile"
	run "$VEIL" check "$WORK/m/Meshfile" && rejected || return 1
	has "Meshfile:19:11: env: 'API_USER' is already set at line 17"
}

t_service_name_must_start_with_letter() {
	seed_copy "$WORK"
	cd "$WORK" || return 1
	sed -i 's/- name: pythonapp/- name: 9lives/' Meshfile
	"$VEIL" apply -f service.yaml --no-push >/dev/null || return 1
	run "$VEIL" apply -f Meshfile --no-upload && rejected || return 1
	has "service name '9lives' cannot name a Kubernetes object (it must start with a letter" || return 1
	[ ! -e target/policies/myPythonApp.yaml ] || die "a policy was written for a refused mesh"
}

t_ambiguous_strings_quoted() {
	seed_copy "$WORK"
	cd "$WORK" || return 1
	sed -i 's/value: myself/value: 2024-01-01/' Meshfile
	"$VEIL" apply -f service.yaml --no-push >/dev/null || return 1
	run "$VEIL" apply -f Meshfile --no-upload && ok || return 1
	grep -q 'API_USER: "2024-01-01"' target/policies/myPythonApp.yaml || die "date-like value not quoted"
}

# The seed's program prints API_USER but never the password, only its length.
t_print_env_never_prints_password() {
	command -v python3 >/dev/null || die "python3 missing (scripts/setup.sh installs it)" || return 1
	run env API_USER=myself API_PASSWORD=s3cr3t-Xy9 python3 "$SEED/print_env.py" && ok || return 1
	has "API_USER = myself" && has "API_PASSWORD is set (10 characters)" && lacks "s3cr3t-Xy9" || return 1
	run env -u API_PASSWORD python3 "$SEED/print_env.py" && ok && has "API_PASSWORD is not set"
}

tests=$(declare -F | awk '{print $3}' | grep '^t_')
for t in $tests; do
	if (set -u; cd "$WORK" && mkdir -p "$WORK/$t" && cd "$WORK/$t" && WORK="$WORK/$t" "$t"); then
		echo "ok   $t"
		pass=$((pass + 1))
	else
		echo "FAIL $t"
		fail=$((fail + 1))
		failed_names+=("$t")
	fi
done
echo "e2e: $pass passed, $fail failed"
[ "$fail" -eq 0 ]

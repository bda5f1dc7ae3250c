#!/usr/bin/env bash
# The seed's image in podman (issue 10, "What it must show", third point):
# built by `veil apply` on the Debian python base (scripts/base-image.sh,
# cached in /var/cache/veil-ci) pulled from a loopback docker-registry, pulled
# back by podman, run with `podman --runtime runc` against veil-las and
# veil-cas on the host (loopback; the host's socket folder bind-mounted at
# /run/veil, host networking for the CAS): it prints API_USER = myself and a
# 10-character password; a byte changed in /usr/bin/python3.11 or in a stdlib
# file (a second image whose extra layer changes it) stops the start and names
# the file; the host's environment (podman --env-host) never reaches the
# program. podman's storage lives in $WORK (--root/--runroot, vfs, cgroupfs,
# file events), so nothing global is touched. Root. VEIL_SKIP_BASE_IMAGE=1
# skips it all (as registry.sh's base-image scenario).
# Usage: tests/e2e/podman.sh BUILD_DIR
set -u
BUILD=$(realpath "${1:?usage: podman.sh BUILD_DIR}")
VEIL=$BUILD/veil
ROOT=${VEIL_SOURCE_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
SEED=$ROOT/examples/python-hello-user
WORK=$(mktemp -d)
chmod 755 "$WORK"
export VEIL_HOME=$WORK/home HOME=$WORK/home
export VEIL_RUNTIME=$BUILD/veil-run
unset VEIL_BASE SOURCE_DATE_EPOCH VEIL_IMAGE_ROOT REGISTRY_AUTH_FILE XDG_RUNTIME_DIR VEIL_REGISTRY_AUTH
mkdir -p "$HOME"
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
	wait 2>/dev/null
	# podman's storage (vfs) holds root-owned trees; its mounts are gone with --rm
	rm -rf "$WORK"
}
trap cleanup EXIT
. "$ROOT/tests/e2e/lib.sh"

free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
# podman with every piece of state under $WORK
pm() {
	podman --root "$WORK/pm/root" --runroot "$WORK/pm/run" --tmpdir "$WORK/pm/tmp" \
		--storage-driver vfs --cgroup-manager cgroupfs --events-backend file --runtime runc "$@"
}
# pod IMAGE [podman run flags...]: the container as the chart runs it
# (docs/manifests.md 9.2: CAP_SYS_ADMIN, unconfined AppArmor, a read-only
# root, the node's /run/veil read-only); runc refuses podman's default
# RLIMIT_NOFILE and RLIMIT_NPROC (1048576, 4194304) above a host's hard
# limits, hence --ulimit
pod() {
	local image=$1
	shift
	run pm run --rm --network host --read-only --ulimit nofile=1024:1024 --ulimit nproc=1024:1024 \
		--cap-add SYS_ADMIN --security-opt apparmor=unconfined --security-opt seccomp=unconfined \
		-v "$WORK/run-veil:/run/veil:ro" \
		-e SCONE_CONFIG_ID=myPythonApp/pythonapp -e SCONE_CAS_ADDR="127.0.0.1:$PORT" \
		-e VEIL_CAS_KEY="$CAS_KEY" -e SCONE_LOG=info "$@" "$image"
}

setup() {
	[ "$(id -u)" = 0 ] || die "needs root (rootful podman)" || return 1
	command -v podman >/dev/null && command -v runc >/dev/null || die "podman and runc are not installed" || return 1
	local base
	base=$("$ROOT/scripts/base-image.sh" 2>"$WORK/base.err") || die "base-image.sh: $(tail -5 "$WORK/base.err")" || return 1
	local rp
	rp=$(free_port)
	mkdir -p "$WORK/reg"
	printf 'version: 0.1\nlog: {level: info, formatter: text}\nstorage: {filesystem: {rootdirectory: %s}}\nhttp: {addr: 127.0.0.1:%s, secret: test}\n' \
		"$WORK/reg" "$rp" >"$WORK/reg.yml"
	docker-registry serve "$WORK/reg.yml" >"$WORK/reg.log" 2>&1 &
	pids+=($!)
	wait_for "$WORK/reg.log" "listening on" || die "docker-registry did not start" || return 1
	R=127.0.0.1:$rp
	run "$VEIL" image push -n bookworm-python3 --insecure-registry "$R" "$base" "$R/bookworm-python3:3.11"
	ok || return 1
	mkdir -p "$WORK/run-veil"
	"$BUILD/veil-las" --socket "$WORK/run-veil/las.sock" --data "$WORK/las" >"$WORK/las.out" 2>"$WORK/las.err" &
	pids+=($!)
	wait_for "$WORK/las.out" "platform key hash" || die "veil-las did not start: $(cat "$WORK/las.err")" || return 1
	PORT=$(free_port)
	"$BUILD/veil-cas" --init --data "$WORK/cas" --listen "127.0.0.1:$PORT" --threads 2 \
		--trust-platform "$("$BUILD/veil-las" --print-key-hash --data "$WORK/las")" >"$WORK/cas.out" 2>"$WORK/cas.err" &
	pids+=($!)
	wait_for "$WORK/cas.out" "key hash" || die "veil-cas did not start: $(cat "$WORK/cas.err")" || return 1
	CAS_KEY=$("$BUILD/veil-cas" --print-key-hash --data "$WORK/cas")
	# the seed's service, verbatim: built on the pulled base, pushed to
	# build.to (mapped to the loopback registry), its policy to the CAS
	mkdir -p "$WORK/seed" && cd "$WORK/seed" && cp "$SEED/service.yaml" "$SEED/print_env.py" . || return 1
	# the runtime files are measured where `veil apply` runs: in the base
	umoci unpack --image "$base:bookworm-python3" "$WORK/base-bundle" >/dev/null 2>&1 ||
		die "umoci unpack of the base failed" || return 1
	VEIL_IMAGE_ROOT=$WORK/base-bundle/rootfs run "$VEIL" apply -f service.yaml \
		--base "docker://$R/bookworm-python3:3.11" \
		--registry-mirror "registry.scontain.com:5050=$R" --insecure-registry "$R"
	ok || return 1
	run "$VEIL" apply -f "$SEED/Meshfile" --mode debug --cas "https://127.0.0.1:$PORT"
	ok && has "created namespace myPythonApp" || return 1
	run pm pull -q --tls-verify=false "docker://$R/cicd/python_hello_user:latest"
	ok || return 1
	SEED_IMAGE=$R/cicd/python_hello_user:latest
}

t_seed_runs_in_podman() {
	pod "$SEED_IMAGE" && ok || return 1
	has "API_USER = myself" && has "API_PASSWORD is set (10 characters)" || return 1
	[ "$(pm inspect --format '{{json .Config.Entrypoint}}' "$SEED_IMAGE")" = '["/usr/lib/veil/veil-run"]' ] ||
		die "the entrypoint is not veil-run" || return 1
	# the CAS saw the attestation of the containerized veil-run
	grep -q . "$WORK/cas/audit.log" || die "the CAS audited nothing"
}

# podman --env-host hands the container the host's whole environment;
# veil-run gives the program only the policy's
t_host_environment_never_reaches_the_program() {
	API_USER=intruder API_PASSWORD=hostpw PYTHONVERBOSE=1 PYTHONWARNINGS=error pod "$SEED_IMAGE" --env-host &&
		ok || return 1
	has "API_USER = myself" && has "API_PASSWORD is set (10 characters)" || return 1
	lacks "intruder" && lacks "# installing zipimport hook" && lacks "import _frozen_importlib" || return 1
	# and -e VAR=... the same
	pod "$SEED_IMAGE" -e API_USER=intruder -e PYTHONVERBOSE=1 && ok && has "API_USER = myself" && lacks "intruder"
}

# changed IMAGE PATH: a second image, the seed's plus a layer in which one
# byte of PATH differs
changed() {
	local tag=$1 path=$2 d=$WORK/changed-$1
	skopeo copy -q "oci:$WORK/seed/target/images/python_hello_user/oci:latest" "oci:$d:$tag" || return 1
	umoci unpack --image "$d:$tag" "$d/bundle" >/dev/null 2>&1 || die "umoci unpack failed" || return 1
	local f=$d/bundle/rootfs$path
	[ -f "$f" ] || die "no $path in the image" || return 1
	# the last byte, flipped (an ELF's or a .py file's tail; the size stays)
	python3 - "$f" <<'PY' || return 1
import sys
p = sys.argv[1]
b = bytearray(open(p, "rb").read())
b[-1] ^= 0x20
open(p, "wb").write(b)
PY
	umoci repack --image "$d:$tag" "$d/bundle" >/dev/null || die "umoci repack failed" || return 1
	# through the registry: podman names an oci: image after its path, which
	# may not hold capitals
	skopeo copy -q --dest-tls-verify=false "oci:$d:$tag" "docker://$R/changed/$tag:1" ||
		die "skopeo copy to the registry failed" || return 1
	CHANGED_IMAGE=$R/changed/$tag:1
	run pm pull -q --tls-verify=false "docker://$CHANGED_IMAGE"
	ok
}

t_changed_python_refused() {
	changed python /usr/bin/python3.11 || return 1
	pod "$CHANGED_IMAGE"
	[ "$rc" -ne 0 ] || die "a changed interpreter started: $out" || return 1
	has "/usr/bin/python3.11" && lacks "API_USER =" && lacks "API_PASSWORD is set" || return 1
}

t_changed_stdlib_refused() {
	changed stdlib /usr/lib/python3.11/os.py || return 1
	pod "$CHANGED_IMAGE"
	[ "$rc" -ne 0 ] || die "a changed stdlib file started: $out" || return 1
	has "/usr/lib/python3.11/os.py" && lacks "API_USER =" && lacks "API_PASSWORD is set" || return 1
}

cd "$WORK" || exit 1
if [ "${VEIL_SKIP_BASE_IMAGE:-}" = 1 ]; then
	echo "podman: skipped (VEIL_SKIP_BASE_IMAGE=1: no python base image)"
	echo "podman: 0 passed, 0 failed"
	exit 0
fi
if ! setup; then
	echo "podman: setup failed"
	echo "podman: 0 passed, 1 failed"
	exit 1
fi
run_in_order podman t_seed_runs_in_podman t_host_environment_never_reaches_the_program \
	t_changed_python_refused t_changed_stdlib_refused

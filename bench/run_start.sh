#!/usr/bin/env bash
# Start-to-exec latency of the seed's program through veil-run (evidence from
# veil-las, file-set root, mutual-TLS attestation to veil-cas on loopback,
# exec) against running `python3 print_env.py` directly, in the same run and
# the same private mount namespace set-up. Target: <= 15 ms added.
# Root only (mount namespace). Usage: bench/run_start.sh [BUILD_DIR] [RUNS]
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
build=$(realpath "${1:-$root/build}")
# veil apply builds each service's image too; with no registry here its base is
# "scratch" (veil's layers alone: docs/images.md)
export VEIL_BASE=scratch
runs=${2:-30}
work=$(mktemp -d)
port=${PORT:-18743}
pids=()
made_python=
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
	wait 2>/dev/null || true
	[ -n "$made_python" ] && rmdir /python
	rm -rf "$work"
}
trap cleanup EXIT
[ -d /python ] || { mkdir /python && made_python=1; }
export VEIL_HOME=$work/home
"$build/veil-las" --socket "$work/las.sock" --data "$work/las" >"$work/las.out" 2>/dev/null &
pids+=($!)
for _ in $(seq 100); do grep -q "key hash" "$work/las.out" 2>/dev/null && break; sleep 0.05; done
"$build/veil-cas" --init --data "$work/cas" --listen "127.0.0.1:$port" --threads 2 \
	--trust-platform "$("$build/veil-las" --print-key-hash --data "$work/las")" >"$work/cas.out" 2>/dev/null &
pids+=($!)
for _ in $(seq 100); do grep -q "key hash" "$work/cas.out" 2>/dev/null && break; sleep 0.05; done
cas_key=$("$build/veil-cas" --print-key-hash --data "$work/cas")
mkdir -p "$work/files" && cp "$root/examples/python-hello-user/print_env.py" "$work/files/"
(cd "$work" && VEIL_RUNTIME=$build/veil-run "$build/veil" apply -f "$root/examples/python-hello-user/service.yaml" --no-push >/dev/null &&
	"$build/veil" apply -f "$root/examples/python-hello-user/Meshfile" --mode debug --cas "https://127.0.0.1:$port" >/dev/null)

ns_run() { unshare -m --propagation private bash -c 'mount --bind "$1" /python && shift && exec env -i "$@"' _ "$work/files" "$@"; }
time_ms() { # command...: one run's wall time in ms
	local a b
	a=$(date +%s%N)
	"$@" >/dev/null
	b=$(date +%s%N)
	echo $(((b - a) / 1000)) # us
}
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
# the image veil built, unpacked: veil-run's whole-image check looks there
# (VEIL_IMAGE_ROOT; the base is "scratch", so it holds veil's layers only)
"$root/scripts/unpack-image.sh" "$work/target/images/python_hello_user/oci" "$work/image-root"
list=$work/target/images/python_hello_user/runtime-files
[ -s "$list" ] || { echo "no prefetch list at $list" >&2; exit 1; }
veil_run() { # LIST: one attested start, with that prefetch list (or none)
	time_ms ns_run SCONE_CONFIG_ID=myPythonApp/pythonapp SCONE_CAS_ADDR=127.0.0.1:$port \
		SCONE_LAS_ADDR="$work/las.sock" VEIL_CAS_KEY="$cas_key" VEIL_RUNTIME_LIST="$1" \
		VEIL_IMAGE_ROOT="$work/image-root" "$build/veil-run"
}
direct=()
veil=()
nolist=()
for i in $(seq 1 "$runs"); do
	# alternate so drift hits all alike
	direct+=("$(time_ms ns_run PATH=/usr/bin:/bin API_USER=myself API_PASSWORD=0123456789 sh -c 'cd /python && exec python3 print_env.py')")
	veil+=("$(veil_run "$list")")
	nolist+=("$(veil_run /nonexistent)")
done
d=$(printf '%s\n' "${direct[@]}" | median)
v=$(printf '%s\n' "${veil[@]}" | median)
n=$(printf '%s\n' "${nolist[@]}" | median)
awk -v d="$d" -v v="$v" -v nl="$n" -v n="$runs" 'BEGIN {
	printf "python3 print_env.py directly:         median %.1f ms over %d runs\n", d / 1000, n
	printf "through veil-run, no prefetch list:    median %.1f ms (added %.1f ms)\n", nl / 1000, (nl - d) / 1000
	printf "through veil-run (the image'"'"'s list):   median %.1f ms\n", v / 1000
	printf "added by veil-run: %.1f ms (target <= 15 ms) %s\n", (v - d) / 1000, ((v - d) / 1000 <= 15 ? "met" : "MISSED")
}'

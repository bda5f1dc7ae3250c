#!/usr/bin/env bash
# Start-to-exec latency of the seed's program through veil-run (evidence from
# veil-las, file-set root, mutual-TLS attestation to veil-cas on loopback,
# exec) against running `python3 print_env.py` directly, in the same run and
# the same private mount namespace set-up. Target: <= 15 ms added.
# Also, same run, alternating: the seed's image built on the Debian python
# base (scripts/base-image.sh, /var/cache/veil-ci/python-base; VEIL_BENCH_BASE
# names another OCI layout) and unpacked, so that veil-run's whole-image check
# covers a real image (the scratch-base image holds veil's layers only): the
# ms it adds per start, the image's size, the check's MB/s, and `openssl dgst
# -sha256` over the same bytes. Without the base (and unable to make it) that
# row is skipped with the reason.
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
	if [ -n "${BENCH_KEEP:-}" ]; then echo "run_start: kept $work" >&2; else rm -rf "$work"; fi
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
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
# the image veil built, unpacked: veil-run's whole-image check looks there
# (VEIL_IMAGE_ROOT; the base is "scratch", so it holds veil's layers only)
"$root/scripts/unpack-image.sh" "$work/target/images/python_hello_user/oci" "$work/image-root"
list=$work/target/images/python_hello_user/runtime-files
[ -s "$list" ] || { echo "no prefetch list at $list" >&2; exit 1; }

# The same service on the python base: its own folder and CAS namespace (the
# policy names its image root, so the two images need two policies). The
# runtime files are measured on the host in both (VEIL_IMAGE_ROOT unset while
# applying), so the two veil-run rows differ in the whole-image check alone.
base=${VEIL_BENCH_BASE:-/var/cache/veil-ci/python-base}
skip=
if [ ! -f "$base/index.json" ] && [ -z "${VEIL_BENCH_BASE:-}" ]; then
	echo "run_start: no python base at $base: making it (scripts/base-image.sh)" >&2
	if made=$("$root/scripts/base-image.sh" 2>"$work/base.err"); then
		base=$made
	else
		skip="scripts/base-image.sh failed: $(tail -1 "$work/base.err")"
	fi
fi
[ -n "$skip" ] || [ -f "$base/index.json" ] || skip="no OCI layout at $base"
if [ -z "$skip" ]; then
	tag=$(jq -r '.manifests[0].annotations["org.opencontainers.image.ref.name"] // empty' "$base/index.json")
	mkdir -p "$work/py"
	cp "$root/examples/python-hello-user/service.yaml" "$root/examples/python-hello-user/print_env.py" "$work/py/"
	sed 's/^\(  namespace: \)myPythonApp\b/\1myPythonAppImg/' "$root/examples/python-hello-user/Meshfile" >"$work/py/Meshfile"
	if ! (cd "$work/py" && VEIL_RUNTIME=$build/veil-run "$build/veil" apply -f service.yaml \
		--base "oci:$base${tag:+:$tag}" --no-push >/dev/null 2>"$work/py.err" &&
		"$build/veil" apply -f Meshfile --mode debug --cas "https://127.0.0.1:$port" >/dev/null 2>>"$work/py.err"); then
		skip="veil apply on oci:$base${tag:+:$tag} failed: $(grep -m1 -i error "$work/py.err")"
	fi
fi
if [ -z "$skip" ]; then
	"$root/scripts/unpack-image.sh" "$work/py/target/images/python_hello_user/oci" "$work/image-py"
	pylist=$work/py/target/images/python_hello_user/runtime-files
	rec=$work/image-py/etc/veil/image-measurement
	# the regular files the record lists, in its order, for openssl (as
	# bench/image_verify.sh): one stream, one core
	grep '^f ' "$rec" | while read -r _ _ _ _ p; do printf '%b\0' "$work/image-py$p"; done >"$work/files.lst"
	img_files=$(tr -cd '\0' <"$work/files.lst" | wc -c)
	img_entries=$(grep -c '^[dfl] ' "$rec")
	img_bytes=$(xargs -0 cat <"$work/files.lst" | wc -c) # and the page cache warm
fi

# LIST ROOT CONFIG_ID LOG: one attested start, with that prefetch list (or
# none) and image root; SCONE_LOG=debug (about ten time-stamped lines on
# stderr, into LOG: tens of microseconds) for the timeline printed below
veil_run() {
	time_ms ns_run SCONE_CONFIG_ID="$3" SCONE_CAS_ADDR=127.0.0.1:$port SCONE_LOG=debug \
		SCONE_LAS_ADDR="$work/las.sock" VEIL_CAS_KEY="$cas_key" VEIL_RUNTIME_LIST="$1" \
		VEIL_IMAGE_ROOT="$2" "$build/veil-run" 2>"$4"
}
openssl_ms() { time_ms sh -c 'xargs -0 cat <"$1" | openssl dgst -sha256' _ "$work/files.lst"; }
# /proc/stat's cpu line: "steal total" and "idle total" (ticks of all cores)
steal() { awk '/^cpu / {print $9, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9}' /proc/stat; }
idle() { awk '/^cpu / {print $5 + $6, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9}' /proc/stat; }
py_idle=0
py_ticks=0
mkdir -p "$work/log"
direct=()
veil=()
nolist=()
py=()
ossl=()
read -r steal0 total0 < <(steal)
for i in $(seq 1 "$runs"); do
	# alternate so drift hits all alike
	direct+=("$(time_ms ns_run PATH=/usr/bin:/bin API_USER=myself API_PASSWORD=0123456789 sh -c 'cd /python && exec python3 print_env.py')")
	veil+=("$(veil_run "$list" "$work/image-root" myPythonApp/pythonapp "$work/log/scratch.$i")")
	nolist+=("$(veil_run /nonexistent "$work/image-root" myPythonApp/pythonapp "$work/log/nolist.$i")")
	if [ -z "$skip" ]; then
		read -r i0 t0 < <(idle)
		py+=("$(veil_run "$pylist" "$work/image-py" myPythonAppImg/pythonapp "$work/log/py.$i")")
		read -r i1 t1 < <(idle)
		py_idle=$((py_idle + i1 - i0))
		py_ticks=$((py_ticks + t1 - t0))
		ossl+=("$(openssl_ms)")
	fi
done
read -r steal1 total1 < <(steal)
for f in "$work"/log/*; do
	grep -q "exec " "$f" || { echo "a start failed ($f):" >&2; cat "$f" >&2; exit 1; }
done
d=$(printf '%s\n' "${direct[@]}" | median)
v=$(printf '%s\n' "${veil[@]}" | median)
n=$(printf '%s\n' "${nolist[@]}" | median)
awk -v d="$d" -v v="$v" -v nl="$n" -v n="$runs" -v st=$((steal1 - steal0)) -v tt=$((total1 - total0)) \
	-v load="$(cut -d' ' -f1-3 /proc/loadavg)" -v c="$(nproc)" 'BEGIN {
	printf "machine: %d cores, load %s, CPU steal %.0f%% during the runs\n", c, load, tt ? 100 * st / tt : 0
	printf "python3 print_env.py directly:         median %.1f ms over %d runs\n", d / 1000, n
	printf "through veil-run, no prefetch list:    median %.1f ms (added %.1f ms)\n", nl / 1000, (nl - d) / 1000
	printf "through veil-run (the image'"'"'s list):   median %.1f ms\n", v / 1000
	printf "added by veil-run: %.1f ms (target <= 15 ms) %s\n", (v - d) / 1000, ((v - d) / 1000 <= 15 ? "met" : "MISSED")
}'
# one start's log: the ms at which veil-run logged each step
at() { awk -v w="$2" 'index($0, w) {sub(/.*\[ */, ""); sub(/ ms\].*/, ""); print; exit}' "$1"; }
steps() { # SERIES: per start "check_start attested verified exec entries bytes"
	for f in "$work"/log/"$1".*; do
		echo "$(at "$f" "checking the image") $(at "$f" "attested as") $(at "$f" "image verified") \
			$(at "$f" "exec ") $(sed -n 's/.*image verified: \([0-9]*\) entries, \([0-9]*\) bytes.*/\1 \2/p' "$f")"
	done
}
col() { awk -v k="$1" '{print $k}' | median; }
steps scratch >"$work/scratch.steps"
echo "scratch-base image: veil's layers only, $(col 5 <"$work/scratch.steps") entries, $(col 6 <"$work/scratch.steps") bytes hashed; attested at $(col 2 <"$work/scratch.steps") ms, exec at $(col 4 <"$work/scratch.steps") ms (medians, SCONE_LOG=debug)"
if [ -n "$skip" ]; then
	echo "python-base image: skipped ($skip)"
	exit 0
fi
p=$(printf '%s\n' "${py[@]}" | median)
o=$(printf '%s\n' "${ossl[@]}" | median)
pmin=$(printf '%s\n' "${py[@]}" | sort -n | head -1)
pmax=$(printf '%s\n' "${py[@]}" | sort -n | tail -1)
steps py >"$work/py.steps"
# the check's own time in each start: from its threads' start to the image
# verified (it outlasts attestation here), and what it kept the exec waiting
awk '{print $3 - $1, $3 - $2, $6 / ($3 - $1) / 1e3}' "$work/py.steps" >"$work/py.check"
awk -v d="$d" -v v="$v" -v p="$p" -v pmin="$pmin" -v pmax="$pmax" -v o="$o" -v b="$img_bytes" -v nf="$img_files" \
	-v ne="$img_entries" -v base="$base" -v tag="$tag" -v c="$(nproc)" \
	-v cs="$(col 1 <"$work/py.steps")" -v at="$(col 2 <"$work/py.steps")" -v vf="$(col 3 <"$work/py.steps")" \
	-v ex="$(col 4 <"$work/py.steps")" -v ck="$(col 1 <"$work/py.check")" -v wt="$(col 2 <"$work/py.check")" \
	-v mbs="$(col 3 <"$work/py.check")" -v busy="$(awk -v i="$py_idle" -v t="$py_ticks" -v c="$(nproc)" 'BEGIN {print t ? c * (1 - i / t) : 0}')" 'BEGIN {
	printf "python-base image:    %s:%s + the seed: %.1f MB in %d regular files (%d entries checked)\n", base, tag, b / 1e6, nf, ne
	printf "through veil-run (python-base image):  median %.1f ms (%.1f-%.1f; added %.1f ms to python alone)\n", p / 1000, pmin / 1000, pmax / 1000, (p - d) / 1000
	printf "added by the whole-image check:        %.1f ms (python-base minus scratch-base, medians)\n", (p - v) / 1000
	printf "  in veil-run (medians, SCONE_LOG=debug): check from %.1f ms, attested at %.1f ms, image verified at %.1f ms, exec at %.1f ms\n", cs, at, vf, ex
	printf "  the check: %.1f ms on %d threads, %.0f MB/s; the exec waited %.1f ms for it after attestation\n", ck, c, mbs, wt
	printf "  cores busy during these starts (all processes, /proc/stat): %.2f of %d\n", busy, c
	printf "openssl dgst -sha256, same bytes:       median %.1f ms, %.0f MB/s (one stream, one core); the check took %.2f x its time\n", o / 1000, b / o, ck * 1000 / o
}'

#!/usr/bin/env bash
# Benchmark: veil-run's whole-image check (src/runtime/image_verify.c, run
# through build/tests/veil-image-verify, which links the same module) over an
# unpacked image vs `openssl dgst -sha256` over the same bytes (every regular
# file the record lists, concatenated: one stream, one core), in the same
# run, page cache warm for both. The image is the seed's service built on
# the python base the CI caches (scripts/base-image.sh on i10-registry,
# /var/cache/veil-ci/python-base) when it is there, else on "scratch" with a
# generated tree of MB megabytes (default 200; many small files and a few
# large ones, like an interpreter's stdlib and libraries). Reports the median
# of R runs: the check with 1 thread (per core) and with all cores, against
# openssl's one core (target: >= 0.80 per core, scaling with cores).
# Usage: bench/image_verify.sh [BUILD_DIR] [MB] [R]
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
BUILD=$(realpath "${1:-$root/build}")
MB=${2:-200}
R=${3:-5}
BASE=${VEIL_BENCH_BASE:-/var/cache/veil-ci/python-base}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
export VEIL_RUNTIME=$BUILD/veil-run
unset VEIL_IMAGE_ROOT SOURCE_DATE_EPOCH
mkdir app
cp "$root/examples/python-hello-user/service.yaml" "$root/examples/python-hello-user/print_env.py" app/
if [ -f "$BASE/index.json" ]; then
	base=oci:$BASE
	what="the seed's image on $BASE"
else
	# a generated tree: 90 % of the bytes in 40 files of 4.5 MB, the rest in
	# 2,000 files of ~10 KB
	mkdir -p app/tree/lib app/tree/py
	for i in $(seq 1 40); do head -c $((MB * 1024 * 1024 * 9 / 400)) /dev/urandom >app/tree/lib/l$i.so; done
	for i in $(seq 1 2000); do head -c $((MB * 1024 * 1024 / 20000)) /dev/urandom >app/tree/py/m$i.py; done
	sed -i 's|^    - print_env.py|    - print_env.py\n    - tree|' app/service.yaml
	base=scratch
	what="a generated $MB MB tree on scratch"
fi
(cd app && "$BUILD/veil" apply -f service.yaml --base "$base" --no-push >/dev/null)
umoci unpack --rootless --image app/target/images/python_hello_user/oci:latest img >/dev/null 2>&1
rootfs=$work/img/rootfs
rec=/etc/veil/image-measurement
# the files the record lists, in its order, for openssl
grep '^f ' "$rootfs$rec" | while read -r _ _ _ _ p; do printf '%b\0' "$rootfs$p"; done >files.lst
nfiles=$(tr -cd '\0' <files.lst | wc -c)
bytes=$(xargs -0 cat <files.lst | wc -c)
xargs -0 cat <files.lst >/dev/null # warm the page cache

now() { date +%s.%N; }
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
ncpu=$(nproc)
: >openssl.times
: >one.times
: >all.times
for _ in $(seq 1 "$R"); do
	t0=$(now)
	xargs -0 cat <files.lst | openssl dgst -sha256 >/dev/null
	t1=$(now)
	"$BUILD/tests/veil-image-verify" "$rootfs" "$rec" 1 >/dev/null
	t2=$(now)
	"$BUILD/tests/veil-image-verify" "$rootfs" "$rec" 0 >/dev/null
	t3=$(now)
	awk -v a="$t0" -v b="$t1" 'BEGIN {print b - a}' >>openssl.times
	awk -v a="$t1" -v b="$t2" 'BEGIN {print b - a}' >>one.times
	awk -v a="$t2" -v b="$t3" 'BEGIN {print b - a}' >>all.times
done
entries=$(grep -c '^[dfl] ' "$rootfs$rec")
awk -v b="$bytes" -v o="$(median <openssl.times)" -v s="$(median <one.times)" -v a="$(median <all.times)" \
	-v n="$nfiles" -v e="$entries" -v c="$ncpu" -v w="$what" 'BEGIN {
	printf "image             %s: %.1f MB in %d files (%d entries checked)\n", w, b / 1e6, n, e
	printf "openssl dgst      %.3f s  %7.1f MB/s  (one core, one stream)\n", o, b / o / 1e6
	printf "veil, 1 thread    %.3f s  %7.1f MB/s  (%.2f of openssl per core, target >= 0.80: %s)\n", s, b / s / 1e6, o / s, (o / s >= 0.8) ? "met" : "NOT met"
	printf "veil, %2d cores    %.3f s  %7.1f MB/s  (%.2f x its 1 thread)\n", c, a, b / a / 1e6, s / a
}'

#!/usr/bin/env bash
# Benchmark: `veil apply -f service.yaml` building the image of a generated
# app folder (default 200 MB: half random bytes, half compressible text) vs
# `tar -c | gzip` of the same folder, in the same run, page cache warm for
# both. veil's time is the whole apply: measuring (one SHA-256 pass over the
# files), then the layers (a second read, tar, SHA-256 of the tar, deflate at
# gzip's level 6, SHA-256 of the gzip stream), config, manifest, layout. Its
# base is "scratch" and its runtime a tiny file, so the app folder is the
# work. Reports the median of R runs of each and the ratio of throughputs
# against the design target (>= 0.80).
# Usage: bench/image_build.sh [VEIL] [MB] [R]
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
VEIL=$(realpath "${1:-$root/build/veil}")
MB=${2:-200}
R=${3:-3}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
export VEIL_BASE=scratch
export VEIL_RUNTIME=$root/tests/e2e/golden/runtime.bin

# the app folder: 4 MB files, every other one random (deflate stores it
# nearly as is) or text (numbers and words, ~25 % after deflate)
mkdir -p app/data
n=$((MB / 4))
for i in $(seq 1 "$n"); do
	f=app/data/$(printf 'f%04d' "$i")
	if [ $((i % 2)) -eq 0 ]; then
		head -c $((4 << 20)) /dev/urandom >"$f.bin"
	else
		seq -f "line %g: the quick brown fox jumps over the lazy dog $i" 1 100000 |
			head -c $((4 << 20)) >"$f.txt"
	fi
done
bytes=$(du -sb app/data | cut -f1)
cat >app/service.yaml <<'EOF'
apiVersion: scone/5.8
kind: genservice
build:
  name: bench
  to: registry.bench/bench:1
  pwd: /app
  command: /bin/true
  copy:
    - data
EOF

now() { date +%s.%N; }
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
cat app/data/* >/dev/null # warm the page cache

: >veil.times
: >tar.times
for _ in $(seq 1 "$R"); do
	rm -rf target out.tar.gz
	t0=$(now)
	tar -C app -c data | gzip >out.tar.gz
	t1=$(now)
	"$VEIL" apply -f app/service.yaml -t target --no-push >/dev/null 2>&1
	t2=$(now)
	awk -v a="$t0" -v b="$t1" 'BEGIN {print b - a}' >>tar.times
	awk -v a="$t1" -v b="$t2" 'BEGIN {print b - a}' >>veil.times
done
tsec=$(median <tar.times)
vsec=$(median <veil.times)
layer=$(find target/images/bench/oci/blobs -type f -size +1M -printf '%s\n' | sort -n | tail -1)
awk -v b="$bytes" -v t="$tsec" -v v="$vsec" -v tz="$(stat -c %s out.tar.gz)" -v vz="$layer" 'BEGIN {
	printf "folder            %.1f MB (%d files)\n", b / 1e6, '"$n"'
	printf "tar -c | gzip     %.3f s  %6.1f MB/s  (%.1f MB out)\n", t, b / t / 1e6, tz / 1e6
	printf "veil apply        %.3f s  %6.1f MB/s  (%.1f MB layer)\n", v, b / v / 1e6, vz / 1e6
	r = t / v
	printf "ratio             %.2f of tar | gzip (target >= 0.80): %s\n", r, (r >= 0.8) ? "met" : "NOT met"
}'

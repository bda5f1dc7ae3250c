#!/usr/bin/env bash
# Builds the libFuzzer harnesses with clang (ASan+UBSan) and runs each for a
# bounded time from the seed corpus. Usage: run.sh [SECONDS_PER_HARNESS]
set -eu
secs=${1:-30}
root=$(cd "$(dirname "$0")/../.." && pwd)
build=$root/build-fuzz
if [ ! -f "$build/build.ninja" ]; then
	rm -rf "$build" # what a failed configuration left
	CC=clang meson setup "$build" "$root" -Dfuzz=true -Db_sanitize=address,undefined \
		-Db_lundef=false -Dbuildtype=debugoptimized -Dtests=disabled -Dman_pages=disabled \
		>"$build.log" 2>&1 || { cat "$build.log"; echo "fuzz: meson setup failed"; exit 1; }
fi
harnesses="manifest meshfile record policy request evidence attest elf oci registry image_record codecrypt lasproto snp collateral dcap hpke ipc masterkey shamir audit"
ninja -C "$build" $(for f in $harnesses; do echo tests/fuzz/fuzz_$f; done) >"$build.log" 2>&1 ||
	{ tail -40 "$build.log"; echo "fuzz: build failed"; exit 1; }
rm -f "$build.log"
# one harness: its verdict line in $build/fuzz_$f.result
run_one() {
	local f=$1 corpus i s
	corpus=$(mktemp -d)
	case $f in
	manifest) cp "$root"/examples/*/service.yaml "$root"/examples/*/*/service.yaml "$corpus"/ 2>/dev/null || true
		i=0; for s in "$root"/../shared/reference/scone-tutorial-manifests/*service*; do
			[ -f "$s" ] && cp "$s" "$corpus/ref$((i++))"; done ;;
	meshfile) i=0; for s in "$root"/examples/*/Meshfile "$root"/../shared/reference/scone-tutorial-manifests/*mesh*; do
			[ -f "$s" ] && cp "$s" "$corpus/m$((i++))"; done ;;
	elf) cp /bin/true "$corpus"/ 2>/dev/null || true; printf '\177ELF\2\1\1' >"$corpus"/head ;;
	*) cp "$root"/tests/fuzz/corpus/$f/* "$corpus"/ ;;
	esac
	if UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 "$build/tests/fuzz/fuzz_$f" \
		-max_total_time="$secs" -max_len=65536 -rss_limit_mb=2048 \
		-timeout=10 -artifact_prefix="$build/crash-$f-" "$corpus" >"$build/fuzz_$f.log" 2>&1; then
		echo "ok   fuzz_$f ($(grep -o "Done [0-9]* runs" "$build/fuzz_$f.log" | grep -o "[0-9]*" || echo "?") runs in ${secs}s)" >"$build/fuzz_$f.result"
	else
		{ echo "FAIL fuzz_$f: see $build/fuzz_$f.log"; tail -30 "$build/fuzz_$f.log"; } >"$build/fuzz_$f.result"
	fi
	rm -rf "$corpus"
}
# as many harnesses at once as there are cores: each still gets its seconds
jobs=$(nproc 2>/dev/null || echo 1)
running=0
for f in $harnesses; do
	rm -f "$build/fuzz_$f.result"
	run_one "$f" &
	running=$((running + 1))
	if [ "$running" -ge "$jobs" ]; then
		wait -n || true
		running=$((running - 1))
	fi
done
wait
pass=0
fail=0
for f in $harnesses; do
	if [ -f "$build/fuzz_$f.result" ] && head -1 "$build/fuzz_$f.result" | grep -q '^ok '; then
		pass=$((pass + 1))
	else
		fail=$((fail + 1))
	fi
	cat "$build/fuzz_$f.result" 2>/dev/null || echo "FAIL fuzz_$f: no result"
done
echo "fuzz: $pass passed, $fail failed"
[ "$fail" -eq 0 ]

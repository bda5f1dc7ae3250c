#!/usr/bin/env bash
# Sets up and runs every test: the lint (scripts/lint.sh), unit (cmocka) and
# end-to-end in a normal and an ASan+UBSan build, the CAS scenarios in a TSan
# build, the Helm charts (real Helm, offline Kubernetes schema validation), the
# systemd units (systemd-analyze), bounded libFuzzer runs, and the format
# check. Prints "N passed, N failed"; exits 1 on failure.
set -u
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
FUZZ_SECONDS=${FUZZ_SECONDS:-5}
"$root/scripts/setup.sh" --test || { echo "setup failed"; echo "0 passed, 1 failed"; exit 1; }

pass=0
fail=0
failed=()
log=$(mktemp -d)

# count "N passed, N failed" from a runner's output
last_tally=$SECONDS
tally() { # name status logfile; the seconds since the previous tally are the part's
	local name=$1 status=$2 f=$3 p q took=$((SECONDS - last_tally))
	last_tally=$SECONDS
	p=$(grep -Eo '[0-9]+ passed, [0-9]+ failed' "$f" | tail -1 | cut -d' ' -f1)
	q=$(grep -Eo '[0-9]+ passed, [0-9]+ failed' "$f" | tail -1 | cut -d' ' -f3)
	p=${p:-0}
	q=${q:-0}
	if [ "$status" -ne 0 ] && [ "$q" -eq 0 ]; then q=1; fi
	pass=$((pass + p))
	fail=$((fail + q))
	if [ "$status" -ne 0 ]; then
		failed+=("$name")
		echo "FAIL $name ($p passed, $q failed, $took s)"
		tail -40 "$f"
	else
		echo "ok   $name ($p passed, $took s)"
	fi
}

unit() { # builddir name
	local b=$1 name=$2 st=0 p=0 q=0 f=$log/$2.log
	: >"$f"
	for t in "$b"/tests/test_*; do
		[ -f "$t" ] && [ -x "$t" ] || continue
		CMOCKA_MESSAGE_OUTPUT=stdout VEIL_SOURCE_ROOT=$root "$t" >>"$f" 2>&1 || st=1
	done
	p=$(grep -Eo '\[  PASSED  \] [0-9]+' "$f" | awk '{s+=$NF} END {print s+0}')
	q=$(grep -Eo '\[  FAILED  \] [0-9]+' "$f" | awk '{s+=$NF} END {print s+0}')
	echo "$p passed, $q failed" >>"$f"
	tally "$name" $st "$f"
}

build() { # dir meson-args... [-- ninja targets] (the log is printed on failure)
	local d=$1 f=$log/ninja-$(basename "$1").log args=() targets=()
	shift
	while [ $# -gt 0 ] && [ "$1" != -- ]; do
		args+=("$1")
		shift
	done
	[ $# -gt 0 ] && shift && targets=("$@")
	# set up again when the options changed (a folder set up before
	# -Dtest_hooks=true was added would skip test_collect)
	if [ ! -f "$d/build.ninja" ] || [ "$(cat "$d/.veil-setup-args" 2>/dev/null)" != "${args[*]}" ]; then
		rm -rf "$d"
		meson setup "$d" "$root" "${args[@]}" >"$f" 2>&1 || return 1
		echo "${args[*]}" >"$d/.veil-setup-args"
	fi
	ninja -C "$d" "${targets[@]}" >>"$f" 2>&1
}

# banned calls in src/ (sscanf, strcpy, strcat, sprintf, gets; memcmp unless
# justified), with the lint's own self-test
scripts/lint.sh >"$log/lint.log" 2>&1
tally lint $? "$log/lint.log"

# normal build (warnings are errors here)
if build build-ci -Dwerror=true -Dtests=enabled -Dman_pages=enabled -Dtest_hooks=true; then
	unit build-ci unit
	python3 tests/evidence/check_snp.py build-ci >"$log/check-snp.log" 2>&1
	tally check-snp $? "$log/check-snp.log"
	tests/evidence/check_collateral.py build-ci/tests/tcb_status >"$log/collateral.log" 2>&1
	tally collateral-independent $? "$log/collateral.log"
	python3 tests/evidence/check_dcap.py build-ci >"$log/dcap-crosscheck.log" 2>&1
	tally dcap-crosscheck $? "$log/dcap-crosscheck.log"
	tests/e2e/run.sh build-ci/veil build-ci/veil-run >"$log/e2e.log" 2>&1
	tally e2e $? "$log/e2e.log"
	tests/e2e/cas.sh build-ci >"$log/cas.log" 2>&1
	tally cas $? "$log/cas.log"
	tests/e2e/pg.sh build-ci >"$log/pg.log" 2>&1
	tally pg $? "$log/pg.log"
	# a PostgreSQL failover under load (a synchronous standby promoted)
	tests/e2e/pg_failover.sh build-ci >"$log/pg-failover.log" 2>&1
	tally pg-failover $? "$log/pg-failover.log"
	tests/e2e/attest.sh build-ci >"$log/attest.log" 2>&1
	tally attest $? "$log/attest.log"
	tests/e2e/collect.sh build-ci >"$log/collect.log" 2>&1
	tally collect $? "$log/collect.log"
	tests/e2e/evidence.sh build-ci >"$log/evidence.log" 2>&1
	tally evidence $? "$log/evidence.log"
	tests/e2e/attack_runtime.sh build-ci >"$log/attack-runtime.log" 2>&1
	tally attack-runtime $? "$log/attack-runtime.log"
	tests/e2e/attack_interp.sh build-ci >"$log/attack-interp.log" 2>&1
	tally attack-interp $? "$log/attack-interp.log"
	tests/e2e/attack_las.sh build-ci >"$log/attack-las.log" 2>&1
	tally attack-las $? "$log/attack-las.log"
	tests/e2e/attack_consent.sh build-ci >"$log/attack-consent.log" 2>&1
	tally attack-consent $? "$log/attack-consent.log"
	tests/e2e/attack_cas_robust.sh build-ci >"$log/attack-cas-robust.log" 2>&1
	tally attack-cas-robust $? "$log/attack-cas-robust.log"
	tests/e2e/keyproc.sh build-ci >"$log/keyproc.log" 2>&1
	tally keyproc $? "$log/keyproc.log"
	tests/e2e/hsm.sh build-ci >"$log/hsm.log" 2>&1
	tally hsm $? "$log/hsm.log"
	tests/e2e/recovery.sh build-ci >"$log/recovery.log" 2>&1
	tally recovery $? "$log/recovery.log"
	tests/e2e/attack_inject.sh build-ci >"$log/attack-inject.log" 2>&1
	tally attack-inject $? "$log/attack-inject.log"
	tests/e2e/image_measure.sh build-ci >"$log/image-measure.log" 2>&1
	tally image-measure $? "$log/image-measure.log"
	tests/e2e/image.sh build-ci >"$log/image.log" 2>&1
	tally image $? "$log/image.log"
	tests/e2e/registry.sh build-ci >"$log/registry.log" 2>&1
	tally registry $? "$log/registry.log"
	tests/e2e/encrypt.sh build-ci >"$log/encrypt.log" 2>&1
	tally encrypt $? "$log/encrypt.log"
	tests/e2e/podman.sh build-ci >"$log/podman.log" 2>&1
	tally podman $? "$log/podman.log"
	tests/k8s/run.sh build-ci/veil >"$log/k8s.log" 2>&1
	tally k8s-helm $? "$log/k8s.log"
	# after k8s: it runs the Helm that tests/k8s/run.sh unpacks
	tests/e2e/controlplane.sh build-ci >"$log/controlplane.log" 2>&1
	tally controlplane $? "$log/controlplane.log"
	tests/e2e/systemd.sh build-ci >"$log/systemd.log" 2>&1
	tally systemd $? "$log/systemd.log"
	tests/e2e/help.sh build-ci >"$log/help.log" 2>&1
	tally help $? "$log/help.log"
	tests/e2e/install.sh build-ci >"$log/install.log" 2>&1
	tally install $? "$log/install.log"
	# the soak, bounded for CI (bench/soak.sh: 600 s by hand): replicas on
	# PostgreSQL under attestations and reads, errors, RSS and fds bounded.
	# Last of the normal part: it leaves tens of thousands of connections in
	# TIME_WAIT (attest.sh right after it failed to start veil-cas twice in
	# the fresh rootfs, not reproduced by hand)
	SOAK_TSV="$log/soak.tsv" bench/soak.sh build-ci "${SOAK_SECONDS:-20}" >"$log/soak.log" 2>&1
	tally soak $? "$log/soak.log"
else
	tail -30 "$log/ninja-build-ci.log"
	fail=$((fail + 1))
	failed+=(build)
fi

# sanitizer build: the whole suite again under ASan+UBSan
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
if build build-asan -Db_sanitize=address,undefined -Db_lundef=false -Dtests=enabled -Dtest_hooks=true; then
	unit build-asan unit-asan
	tests/e2e/run.sh build-asan/veil build-asan/veil-run >"$log/e2e-asan.log" 2>&1
	tally e2e-asan $? "$log/e2e-asan.log"
	tests/e2e/cas.sh build-asan >"$log/cas-asan.log" 2>&1
	tally cas-asan $? "$log/cas-asan.log"
	PG_RACE_ROUNDS=30 tests/e2e/pg.sh build-asan >"$log/pg-asan.log" 2>&1
	tally pg-asan $? "$log/pg-asan.log"
	tests/e2e/attest.sh build-asan >"$log/attest-asan.log" 2>&1
	tally attest-asan $? "$log/attest-asan.log"
	tests/e2e/collect.sh build-asan >"$log/collect-asan.log" 2>&1
	tally collect-asan $? "$log/collect-asan.log"
	tests/e2e/evidence.sh build-asan >"$log/evidence-asan.log" 2>&1
	tally evidence-asan $? "$log/evidence-asan.log"
	tests/e2e/attack_runtime.sh build-asan >"$log/attack-runtime-asan.log" 2>&1
	tally attack-runtime-asan $? "$log/attack-runtime-asan.log"
	tests/e2e/attack_interp.sh build-asan >"$log/attack-interp-asan.log" 2>&1
	tally attack-interp-asan $? "$log/attack-interp-asan.log"
	tests/e2e/attack_las.sh build-asan >"$log/attack-las-asan.log" 2>&1
	tally attack-las-asan $? "$log/attack-las-asan.log"
	tests/e2e/attack_consent.sh build-asan >"$log/attack-consent-asan.log" 2>&1
	tally attack-consent-asan $? "$log/attack-consent-asan.log"
	tests/e2e/attack_cas_robust.sh build-asan >"$log/attack-cas-robust-asan.log" 2>&1
	tally attack-cas-robust-asan $? "$log/attack-cas-robust-asan.log"
	tests/e2e/keyproc.sh build-asan >"$log/keyproc-asan.log" 2>&1
	tally keyproc-asan $? "$log/keyproc-asan.log"
	tests/e2e/hsm.sh build-asan >"$log/hsm-asan.log" 2>&1
	tally hsm-asan $? "$log/hsm-asan.log"
	tests/e2e/recovery.sh build-asan >"$log/recovery-asan.log" 2>&1
	tally recovery-asan $? "$log/recovery-asan.log"
	tests/e2e/attack_inject.sh build-asan >"$log/attack-inject-asan.log" 2>&1
	tally attack-inject-asan $? "$log/attack-inject-asan.log"
	tests/e2e/image_measure.sh build-asan >"$log/image-measure-asan.log" 2>&1
	tally image-measure-asan $? "$log/image-measure-asan.log"
	tests/e2e/image.sh build-asan >"$log/image-asan.log" 2>&1
	tally image-asan $? "$log/image-asan.log"
	tests/e2e/registry.sh build-asan >"$log/registry-asan.log" 2>&1
	tally registry-asan $? "$log/registry-asan.log"
	tests/e2e/encrypt.sh build-asan >"$log/encrypt-asan.log" 2>&1
	tally encrypt-asan $? "$log/encrypt-asan.log"
else
	tail -30 "$log/ninja-build-asan.log"
	fail=$((fail + 1))
	failed+=(build-asan)
fi
unset ASAN_OPTIONS UBSAN_OPTIONS

# thread sanitizer build: the CAS scenarios (veil-cas serves on several
# threads, veil-las one thread per caller). A race ends the process that saw
# it (exit 66); its report goes to $log/tsan/, and any report there fails the
# scenario even when the script did not check that process's exit status.
# tests/tsan.supp: races inside third-party libraries only, each explained.
# veil-run and veil-loadgen are static and built without TSan (meson.build).
tsan_run() { # name command...
	local name=$1 f=$log/$1.log st
	shift
	rm -rf "$log/tsan"
	mkdir -p "$log/tsan"
	"$@" >"$f" 2>&1
	st=$?
	if compgen -G "$log/tsan/tsan.*" >/dev/null; then
		cat "$log"/tsan/tsan.* >>"$f"
		echo "ThreadSanitizer reports above ($(ls "$log/tsan" | wc -l) processes)" >>"$f"
		st=1
	fi
	tally "$name" $st "$f"
}
tsan_start=$(date +%s)
export TSAN_OPTIONS="halt_on_error=1 exitcode=66 suppressions=$root/tests/tsan.supp log_path=$log/tsan/tsan"
# only the four binaries the scenarios run (not the unit tests and tools)
if build build-tsan -Db_sanitize=thread -Dtests=enabled -Dtest_hooks=true -- veil veil-cas veil-las veil-run; then
	# cas.sh only: with attest.sh too the TSan part took 273-300 s on the
	# shared 2-core machine (load 3 to 7), past the ~4 min it may add to the
	# suite; attest.sh ran clean under TSan then (19 passed), ~30 s of that:
	# tests/e2e/attest.sh build-tsan with the TSAN_OPTIONS below runs it
	tsan_run cas-tsan tests/e2e/cas.sh build-tsan
else
	tail -30 "$log/ninja-build-tsan.log"
	fail=$((fail + 1))
	failed+=(build-tsan)
fi
unset TSAN_OPTIONS
echo "     (the TSan build and its scenarios took $(($(date +%s) - tsan_start)) s)"

# fuzzers, bounded
tests/fuzz/run.sh "$FUZZ_SECONDS" >"$log/fuzz.log" 2>&1
tally fuzz $? "$log/fuzz.log"

# format
# the tracked sources; without git (a source tree copied, not cloned), the
# C files of the source folders
if git -C "$root" rev-parse --git-dir >/dev/null 2>&1; then
	csrc=$(git ls-files '*.c' '*.h')
else
	csrc=$(find src include tests bench -name '*.[ch]' -not -path '*/node_modules/*' | sort)
fi
bad=$(clang-format --dry-run -Werror $csrc 2>&1 | grep -c 'error:' || true)
if [ "$bad" -eq 0 ]; then
	pass=$((pass + 1))
	echo "ok   clang-format"
else
	fail=$((fail + 1))
	failed+=(clang-format)
	echo "FAIL clang-format: $bad findings (run clang-format -i on the files)"
fi

rm -rf "$log"
[ ${#failed[@]} -eq 0 ] || echo "failed: ${failed[*]}"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]

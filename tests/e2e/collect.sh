#!/usr/bin/env bash
# Evidence collection end to end: veil-run and veil-cas pointed at a fake
# configfs-tsm tree (tests/tools/fake-tsm serving the dcap-qvl TDX quote)
# use it instead of veil-las; a tree that fails stops the start instead of
# falling back to simulation; without a tree veil-las is used as before.
# The quote is real but recorded: its report data is not this start's key,
# so the CAS refuses it as bound to another key. With the test build's
# --test-recorded-evidence (no such flag in a release build) the CAS checks
# the rest: the quote's chain to Intel's root, and MRTD/RTMRs, debug and the
# TCB status against the policy. Needs a build with -Dtest_hooks=true and
# root (a mount namespace).
# Every server is started here and stopped by PID. Usage: collect.sh BUILD_DIR
set -u
BUILD=$(realpath "$1")
VEIL=$BUILD/veil
ROOT=${VEIL_SOURCE_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
SEED=$ROOT/examples/python-hello-user
TDX_QUOTE=$ROOT/tests/vectors/dcap-qvl/sample/tdx_quote
export VEIL_BASE=scratch
WORK=$(mktemp -d)
PORT=$((20000 + RANDOM % 20000))
PORT2=$((PORT + 1))
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

if ! grep -q -- -DVEIL_TEST_HOOKS "$BUILD/build.ninja"; then
	echo "collect: $BUILD was set up without -Dtest_hooks=true (scripts/test.sh sets it)"
	echo "collect: 0 passed, 1 failed"
	exit 1
fi

# fake_tsm NAME: a fake configfs-tsm root at $WORK/NAME served from now on
fake_tsm() {
	mkdir -p "$WORK/$1/report" || return 1
	"$BUILD/tests/fake-tsm" "$WORK/$1" tdx_guest "$TDX_QUOTE" 2>"$WORK/$1.err" &
	pids+=($!)
}

start_service() { # [extra env...]
	unshare -m --propagation private bash -c '
		mount --bind "$1" /python || exit 97
		shift
		exec env -i "$@"' _ "$WORK/files" \
		SCONE_CONFIG_ID=myPythonApp/pythonapp SCONE_CAS_ADDR=127.0.0.1:$PORT \
		SCONE_LAS_ADDR="$WORK/las.sock" VEIL_CAS_KEY="$CAS_KEY" \
		VEIL_IMAGE_ROOT="$IMAGE_ROOT" "$@" "$BUILD/veil-run"
}

t_setup() {
	[ "$(id -u)" = 0 ] || die "needs root for the mount namespace" || return 1
	if [ ! -d /python ]; then mkdir /python && made_python=1; fi
	"$BUILD/veil-las" --socket "$WORK/las.sock" --data "$WORK/las" >"$WORK/las.out" 2>"$WORK/las.err" &
	pids+=($!)
	wait_for "$WORK/las.out" "platform key hash" || die "veil-las did not start" || return 1
	"$BUILD/veil-cas" --init --data "$WORK/cas" --listen "127.0.0.1:$PORT" --threads 2 \
		--trust-platform "$("$BUILD/veil-las" --print-key-hash --data "$WORK/las")" \
		>"$WORK/cas.out" 2>"$WORK/cas.err" &
	pids+=($!)
	wait_for "$WORK/cas.out" "key hash" || die "veil-cas did not start" || return 1
	CAS_KEY=$("$BUILD/veil-cas" --print-key-hash --data "$WORK/cas")
	mkdir -p "$WORK/files" "$WORK/app" && cp "$SEED/print_env.py" "$WORK/files/" || return 1
	cd "$WORK/app" || return 1
	VEIL_RUNTIME=$BUILD/veil-run "$VEIL" apply -f "$SEED/service.yaml" --no-push >/dev/null || return 1
	run "$VEIL" apply -f "$SEED/Meshfile" --mode debug --cas "$URL" && ok || return 1
	IMAGE_ROOT=$(test_image_root)
}

t_no_tree_uses_las() {
	run start_service VEIL_TEST_TSM_ROOT="$WORK/no-such-tree" SCONE_LOG=info && ok || return 1
	has "evidence from $WORK/las.sock" && has "API_USER = myself"
}

t_tsm_used_and_tdx_refused_by_cas() {
	fake_tsm tsm || return 1
	run start_service VEIL_TEST_TSM_ROOT="$WORK/tsm" SCONE_LOG=info && rejected || return 1
	has "evidence from tsm:tdx_guest" && lacks "evidence from $WORK/las.sock" || return 1
	has "the CAS refused myPythonApp/pythonapp: evidence refused for myPythonApp/pythonapp: evidence is bound to another TLS key (report_data 9a9d48e7f6799642... does not match this connection)" || return 1
	[ -z "$(ls -A "$WORK/tsm/report")" ] || die "the configfs-tsm entry was left behind"
}

t_failing_tree_refuses_start() {
	# report/ and no kernel behind it: no attributes ever appear
	mkdir -p "$WORK/dead/report" || return 1
	run start_service VEIL_TEST_TSM_ROOT="$WORK/dead" SCONE_LOG=info && rejected || return 1
	has "error: evidence from the platform failed: cannot open $WORK/dead/report/veil-" &&
		has "refusing to start" && lacks "evidence from $WORK/las.sock" || return 1
	[ -z "$(ls -A "$WORK/dead/report")" ] || die "the configfs-tsm entry was left behind"
}

t_cas_identity_from_tsm() {
	fake_tsm tsm2 || return 1
	VEIL_TEST_TSM_ROOT="$WORK/tsm2" "$BUILD/veil-cas" --init --data "$WORK/cas2" \
		--listen "127.0.0.1:$PORT2" --threads 1 >"$WORK/cas2.out" 2>"$WORK/cas2.err" &
	pids+=($!)
	wait_for "$WORK/cas2.out" "key hash" || die "veil-cas did not start: $(cat "$WORK/cas2.err")" || return 1
	grep -qF "veil-cas: evidence from tsm:tdx_guest" "$WORK/cas2.err" || die "no provider line: $(cat "$WORK/cas2.err")" || return 1
	run env VEIL_HOME="$WORK/home2" "$VEIL" cas attest "https://127.0.0.1:$PORT2" \
		--only_for_testing-trust-any --only_for_testing-debug --only_for_testing-ignore-signer &&
		rejected || return 1
	has "evidence is bound to another TLS key (report_data 9a9d48e7f6799642... does not match this connection)" && has "the CAS's evidence does not verify"
}

t_cas_refuses_to_start_on_failing_tree() {
	mkdir -p "$WORK/dead2/report" || return 1
	# a regression would serve: bounded
	run timeout 20 env VEIL_TEST_TSM_ROOT="$WORK/dead2" "$BUILD/veil-cas" --init --data "$WORK/cas3" \
		--listen "127.0.0.1:$((PORT + 2))" --threads 1
	[ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] || die "veil-cas started (exit $rc)" || return 1
	has "the CAS's evidence from the platform failed: cannot open $WORK/dead2/report/veil-"
}

# the dcap-qvl TDX quote's claims (tests/build/dcap_dump prints them)
MRTD=91eb2b44d141d4ece09f0c75c2c53d247a3c68edd7fafe8a3520c942a604a407de03ae6dc5f87f27428b2538873118b7
RTMR0=44c0197b39157fdd7a4dcc44767f9d6b0bb3977c7a8e347b8492f827fe9d9e5c48aca29b220b80b6a540cf994b9bc9c0
RTMR1=0084452c01668329d4bc06acdf58a7205c26743304509973949e5619bf81a6a7aea8c323c173019b3093d54e579e9378
RTMR2=d833feef2cd945148aa38ead2c53e9b7f138190aaaebfc551dccd829fc207aa3ba80b70870d7330733642e01d48c3132
PORT4=$((PORT + 4))
URL4=https://127.0.0.1:$PORT4
# tdx_policy NS MRTD TOLERATE...: the seed's policy as namespace NS, its
# service holding a tdx block (MRTD, RTMR0-2 of the quote)
tdx_policy() {
	local ns=$1 mrtd=$2
	shift 2
	awk -v ns="$ns" -v mrtd="$mrtd" -v r0="$RTMR0" -v r1="$RTMR1" -v r2="$RTMR2" -v tol="$*" '
		/^name: / { print "name: " ns; next }
		/^    tolerate:$/ { print; n = split(tol, t, " "); for (i = 1; i <= n; i++) print "      - " t[i]; skip = 1; next }
		skip && /^      - / { next }
		{ skip = 0 }
		/^  - command: / { print; print "    tdx:"; print "      mrtd: " mrtd; print "      rtmr0: " r0; print "      rtmr1: " r1; print "      rtmr2: " r2; next }
		{ print }' "$WORK/app/target/policies/myPythonApp.yaml" >"$WORK/$ns.yaml"
	env VEIL_HOME="$WORK/home4" "$VEIL" policy create "$WORK/$ns.yaml" --cas "$URL4"
}
start_tdx() { # CONFIG_ID
	start_service VEIL_TEST_TSM_ROOT="$WORK/tsm4" SCONE_LOG=info SCONE_CONFIG_ID="$1" \
		SCONE_CAS_ADDR=127.0.0.1:$PORT4 VEIL_CAS_KEY="$CAS4_KEY"
}

# a start in a TD end to end: the TDX quote from configfs-tsm, verified to
# Intel's root by the CAS, whose policy names the TD's MRTD and RTMRs
t_tdx_start_checked_against_policy() {
	fake_tsm tsm4 || return 1
	"$BUILD/veil-cas" --init --data "$WORK/cas4" --listen "127.0.0.1:$PORT4" --threads 2 \
		--trust-platform "$("$BUILD/veil-las" --print-key-hash --data "$WORK/las")" \
		--test-recorded-evidence >"$WORK/cas4.out" 2>"$WORK/cas4.err" &
	pids+=($!)
	wait_for "$WORK/cas4.out" "key hash" || die "veil-cas did not start: $(cat "$WORK/cas4.err")" || return 1
	grep -q "TEST BUILD: hardware evidence is not bound" "$WORK/cas4.err" || die "no test-build warning" || return 1
	CAS4_KEY=$("$BUILD/veil-cas" --print-key-hash --data "$WORK/cas4")
	env VEIL_HOME="$WORK/home4" "$VEIL" cas attest "$URL4" --only_for_testing-trust-any \
		--only_for_testing-debug --only_for_testing-ignore-signer >/dev/null || return 1
	# debug-mode: VEIL_IMAGE_ROOT needs it (the TD itself is not a debug TD)
	run tdx_policy tdxok "$MRTD" debug-mode outdated-tcb && ok || return 1
	run start_tdx tdxok/pythonapp && ok || return 1
	has "evidence from tsm:tdx_guest" && has "attested as tdxok/pythonapp" && has "API_USER = myself" || return 1
	# another TD (one digit of MRTD changed): refused, naming the claim
	run tdx_policy tdxother "${MRTD%?}0" debug-mode outdated-tcb && ok || return 1
	run start_tdx tdxother/pythonapp && rejected || return 1
	has "mrtd 91eb2b44d141d4ec... does not match policy tdxother/pythonapp" && lacks "API_USER" || return 1
	# no collateral: the TCB status is unknown, accepted only where tolerated
	run tdx_policy tdxstrict "$MRTD" debug-mode && ok || return 1
	run start_tdx tdxstrict/pythonapp && rejected || return 1
	has "tcb_status not-evaluated: the CAS has no collateral for this platform" || return 1
	[ -z "$(ls -A "$WORK/tsm4/report")" ] || die "the configfs-tsm entry was left behind"
}

# the collateral this quote came with is from 2025: the CAS loads it (its
# signatures verify) and refuses the quote as stale at today's date
t_tdx_stale_collateral_refused() {
	mkdir -p "$WORK/collateral" && cp "$ROOT/tests/vectors/dcap-qvl/sample/tdx_quote_collateral.json" "$WORK/collateral/" || return 1
	local port5=$((PORT + 5))
	"$BUILD/veil-cas" --init --data "$WORK/cas5" --listen "127.0.0.1:$port5" --threads 1 \
		--collateral "$WORK/collateral" --test-recorded-evidence >"$WORK/cas5.out" 2>"$WORK/cas5.err" &
	pids+=($!)
	wait_for "$WORK/cas5.out" "key hash" || die "veil-cas did not start: $(cat "$WORK/cas5.err")" || return 1
	grep -q "Intel collateral from $WORK/collateral" "$WORK/cas5.err" || return 1
	env VEIL_HOME="$WORK/home5" "$VEIL" cas attest "https://127.0.0.1:$port5" --only_for_testing-trust-any \
		--only_for_testing-debug --only_for_testing-ignore-signer >/dev/null || return 1
	sed 's/^name: tdxok$/name: tdxstale/' "$WORK/tdxok.yaml" >"$WORK/tdxstale.yaml"
	env VEIL_HOME="$WORK/home5" "$VEIL" policy create "$WORK/tdxstale.yaml" --cas "https://127.0.0.1:$port5" >/dev/null || return 1
	run start_service VEIL_TEST_TSM_ROOT="$WORK/tsm4" SCONE_CONFIG_ID=tdxstale/pythonapp \
		SCONE_CAS_ADDR=127.0.0.1:$port5 VEIL_CAS_KEY="$("$BUILD/veil-cas" --print-key-hash --data "$WORK/cas5")" &&
		rejected || return 1
	has "tdx evidence: TCB status: stale collateral" || return 1
	# a folder that is not collateral: veil-cas does not start
	mkdir -p "$WORK/junk" && echo '{"x":1}' >"$WORK/junk/a.json"
	run timeout 20 "$BUILD/veil-cas" --init --data "$WORK/cas6" --listen "127.0.0.1:$((PORT + 6))" --threads 1 --collateral "$WORK/junk"
	[ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] && has "--collateral $WORK/junk: " || die "veil-cas started on junk collateral (exit $rc): $err" || return 1
}

run_in_order collect t_setup t_no_tree_uses_las t_tsm_used_and_tdx_refused_by_cas \
	t_failing_tree_refuses_start t_cas_identity_from_tsm t_cas_refuses_to_start_on_failing_tree \
	t_tdx_start_checked_against_policy t_tdx_stale_collateral_refused

#!/usr/bin/env bash
# Attestations before and after a change of veil-cas, beside nginx, in one
# run: two veil-cas (BEFORE_BUILD's and AFTER_BUILD's, each with its own data
# folder and port, one veil-las for both) and nginx's new mutual-TLS
# handshakes, measured in interleaved rounds (nginx, before, after, nginx,
# ...) so that a noisy machine (CPU steal, other load) hits all three alike.
# Each round: /v1/attest over new connections (evidence from veil-las bound
# to each connection's fresh key; the same loadgen, policy and evidence as
# bench/cas_vs_nginx.sh). Reports per round and the medians: attestations/s,
# server CPU per attestation (veil-cas with its key process), and the ratios
# to nginx (target >= 0.80 of its handshake rate).
#
# Issue 12 (the key process and the sealed answer): BEFORE_BUILD is a build
# of the commit before it (6da9060^1); see bench/README.md.
#
# Usage: bench/cas_split.sh BEFORE_BUILD [AFTER_BUILD] [SECONDS] [ROUNDS]
#   AFTER_BUILD default build, SECONDS per measurement (default 4), ROUNDS
#   (default 5). Environment: PORT (18743; uses PORT..PORT+2), THREADS
#   (veil-cas --threads and nginx workers; default: cores - 1, at least 1).
set -eu
[ $# -ge 1 ] && [ $# -le 4 ] || {
	echo "usage: $0 BEFORE_BUILD [AFTER_BUILD] [SECONDS] [ROUNDS]" >&2
	exit 2
}
root=$(cd "$(dirname "$0")/.." && pwd)
before=$(realpath "$1")
after=$(realpath "${2:-$root/build}")
secs=${3:-4}
rounds=${4:-5}
port=${PORT:-18743}
cores=$(nproc)
threads=${THREADS:-$((cores > 2 ? cores - 1 : 1))}
loadgen=$after/veil-loadgen
for b in "$before" "$after"; do
	[ -x "$b/veil-cas" ] && [ -x "$b/veil-las" ] || {
		echo "$0: $b has no veil-cas or veil-las (ninja -C $b veil-cas veil-las)" >&2
		exit 2
	}
done
[ -x "$loadgen" ] || {
	echo "$0: $loadgen is missing (ninja -C $after veil-loadgen)" >&2
	exit 2
}
work=$(mktemp -d)
pids=()
cleanup() {
	set +e # a killed process's status must not end the cleanup half-way (set -e)
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null; done
	rm -rf "$work"
}
trap cleanup EXIT

# a process's CPU ticks and its children's (the key process)
cpu_ticks() {
	local t c
	t=$(awk '{print $14 + $15}' "/proc/$1/stat")
	for c in $(cat /proc/"$1"/task/*/children 2>/dev/null); do
		t=$((t + $(awk '{print $14 + $15}' "/proc/$c/stat" 2>/dev/null || echo 0)))
	done
	echo "$t"
}
field() { sed -n "s/.* $1=\([^ /]*\).*/\1/p" <<<"$2"; }

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=bench \
	-keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null
"$after/veil-las" --socket "$work/las.sock" --data "$work/las" >"$work/las.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do grep -q "platform key hash" "$work/las.log" && break; sleep 0.05; done
trust=$("$after/veil-las" --print-key-hash --data "$work/las")

mr=$(sha256sum "$loadgen" | cut -c1-64)
root_hex=082cccc685171910e434780cb94f6416452e8bd5756eb04785dff38d29654fb9
apolicy='name: attest\nversion: \"0.3\"\nsecurity: {attestation: {tolerate: [debug-mode]}}\nservices:\n  - name: app\n    command: python3 print_env.py\n    pwd: /python\n    file_set_root: '$root_hex'\n    mrenclaves: ['$mr']\n    environment: {API_USER: myself, API_PASSWORD: \"$$SCONE::password$$\"}\nsecrets:\n  - {name: password, kind: ascii, size: 10}\n'
printf '{"policy":"%s"}' "$apolicy" >"$work/create.json"
printf '{"config_id":"attest/app","evidence":"@@EVIDENCE@@","file_set_root":"%s"}' "$root_hex" >"$work/attest.json"

declare -A cas_pid
start_cas() { # name build port
	"$2/veil-cas" --data "$work/$1" --init --listen "127.0.0.1:$3" --threads "$threads" \
		--log-level warn --trust-platform "$trust" >"$work/$1.log" 2>&1 &
	cas_pid[$1]=$!
	pids+=($!)
	for _ in $(seq 100); do grep -q listening "$work/$1.log" && break; sleep 0.05; done
	local status
	status=$(curl -sk --tlsv1.3 --cert "$work/cert.pem" --key "$work/key.pem" -o /dev/null \
		-w '%{http_code}' -X POST --data-binary @"$work/create.json" "https://127.0.0.1:$3/v1/policies")
	[ "$status" = 201 ] || {
		echo "$0: cannot create the policy on the $1 CAS: $status" >&2
		cat "$work/$1.log" >&2
		exit 1
	}
}
start_cas before "$before" "$port"
start_cas after "$after" $((port + 1))

attest() { # name port -> "rate us_per_attestation"
	local t0 t1 out reqs
	t0=$(cpu_ticks "${cas_pid[$1]}")
	out=$("$loadgen" --url "https://127.0.0.1:$2/v1/attest" --cert "$work/cert.pem" --key "$work/key.pem" \
		--mode new --connections 16 --threads 1 --duration "$secs" --method POST \
		--body "$work/attest.json" --expect 200 --las "$work/las.sock" --identities 64 2>/dev/null)
	t1=$(cpu_ticks "${cas_pid[$1]}")
	reqs=$(field requests "$out")
	[ "$(field errors "$out")" = 0 ] || echo "warning: errors in $1: $out" >&2
	awk -v r="$(field rate "$out")" -v t=$((t1 - t0)) -v hz="$(getconf CLK_TCK)" -v n="$reqs" \
		'BEGIN { printf "%s %.0f\n", r, n ? t / hz / n * 1e6 : 0 }'
}

echo "== $cores cores; veil-cas --threads = nginx workers = $threads; $rounds rounds of ${secs} s"
echo "   before: $before ($("$before/veil-cas" --version 2>/dev/null | head -1))"
echo "   after:  $after ($("$after/veil-cas" --version 2>/dev/null | head -1))"
printf "%-6s %22s %30s %30s\n" round "nginx handshakes/s, us" "before attest/s, us (ratio)" "after attest/s, us (ratio)"
: >"$work/rows"
for r in $(seq "$rounds"); do
	n=$(PORT=$((port + 2)) bash "$root/bench/nginx_mtls.sh" "$loadgen" "$secs" "$threads" 2>&1 |
		grep 'mode=new')
	nr=$(field rate "$n")
	nu=$(field server_us_per_req "$n")
	read -r br bu < <(attest before "$port")
	read -r ar au < <(attest after $((port + 1)))
	echo "$nr $nu $br $bu $ar $au" >>"$work/rows"
	awk -v r="$r" -v nr="$nr" -v nu="$nu" -v br="$br" -v bu="$bu" -v ar="$ar" -v au="$au" 'BEGIN {
		printf "%-6s %14.1f %7.0f %14.1f %6.0f (%.2f) %14.1f %6.0f (%.2f)\n", r, nr, nu, br, bu, br / nr, ar, au, ar / nr }'
done
# medians of each column, and of the per-round ratios
sort_col() { awk -v c="$1" '{print $c}' "$work/rows" | sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
ratio_med() { awk -v a="$1" -v b="$2" '{print $a / $b}' "$work/rows" | sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
echo "== medians"
awk -v nr="$(sort_col 1)" -v nu="$(sort_col 2)" -v br="$(sort_col 3)" -v bu="$(sort_col 4)" \
	-v ar="$(sort_col 5)" -v au="$(sort_col 6)" -v rb="$(ratio_med 3 1)" -v ra="$(ratio_med 5 1)" \
	-v cb="$(ratio_med 2 4)" -v ca="$(ratio_med 2 6)" -v ab="$(ratio_med 6 4)" 'BEGIN {
	printf "nginx:  %8.1f handshakes/s, %5.0f us CPU each\n", nr, nu
	printf "before: %8.1f attestations/s, %5.0f us CPU each; rate ratio to nginx %.2f, CPU ratio %.2f\n", br, bu, rb, cb
	printf "after:  %8.1f attestations/s, %5.0f us CPU each; rate ratio to nginx %.2f, CPU ratio %.2f (target >= 0.80) %s\n", ar, au, ra, ca, (ra >= 0.8 ? "met" : "MISSED")
	printf "after / before, CPU per attestation: %.2f (median of the rounds)\n", ab
}'

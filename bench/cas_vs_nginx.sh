#!/usr/bin/env bash
# veil-cas against nginx, side by side in one run, with the same load generator,
# keys and client certificate type (P-256, TLS 1.3, mutual TLS):
#   - policy reads over keep-alive        vs nginx keep-alive requests  (target >= 50%)
#   - policy reads over new connections   vs nginx new mTLS handshakes  (target >= 80%)
#   - attestations (/v1/attest: evidence from veil-las bound to each connection's
#     fresh key, measurement, file-set root, rendering) over new connections
#                                         vs nginx new mTLS handshakes  (target >= 80%)
#   - policy creates over new connections and over keep-alive (reported; no nginx analog)
# Both servers get the same parallelism (nginx worker processes = veil-cas
# --threads), chosen per mode: keep-alive KEEP_THREADS (default: all cores;
# loadgen needs about half a core there), new connections NEW_THREADS (default:
# one core fewer than the machine has, at least one: loadgen's handshakes need
# a whole core). On a 2-core machine a second server thread for new
# connections only competes with loadgen (measured: nginx 1,614/s with 1
# worker vs 1,474/s with 2; veil-cas 1,345 vs 1,159 attestations/s).
# Usage: bench/cas_vs_nginx.sh [BUILD_DIR] [SECONDS]
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
build=$(realpath "${1:-$root/build}")
secs=${2:-5}
loadgen=$build/veil-loadgen
port=${PORT:-18543}
work=$(mktemp -d)
cores=$(nproc)
keep_threads=${KEEP_THREADS:-$cores}
new_threads=${NEW_THREADS:-$((cores > 2 ? cores - 1 : 1))}
echo "== $cores cores; server threads (nginx workers = veil-cas --threads): keep-alive $keep_threads, new connections $new_threads"
cas_pid=
las_pid=
cleanup() {
	set +e # a killed process's status must not end the cleanup half-way (set -e)
	[ -n "$cas_pid" ] && kill "$cas_pid" 2>/dev/null && wait "$cas_pid" 2>/dev/null
	[ -n "$las_pid" ] && kill "$las_pid" 2>/dev/null && wait "$las_pid" 2>/dev/null
	rm -rf "$work"
}
trap cleanup EXIT

field() { sed -n "s/.* $1=\([^ /]*\).*/\1/p" <<<"$2"; }
# a process's CPU ticks and its children's that still run: veil-cas's key
# process (src/cas/keyproc.c) is part of the CAS's cost
cpu_ticks() {
	local t c
	t=$(awk '{print $14 + $15}' "/proc/$1/stat")
	for c in $(cat /proc/"$1"/task/*/children 2>/dev/null); do
		t=$((t + $(awk '{print $14 + $15}' "/proc/$c/stat" 2>/dev/null || echo 0)))
	done
	echo "$t"
}

echo "== nginx (peer)"
nginx_keep_out=$(PORT=$((port + 1)) bash "$root/bench/nginx_mtls.sh" "$loadgen" "$secs" "$keep_threads" 2>&1)
nginx_new_out=$(PORT=$((port + 2)) bash "$root/bench/nginx_mtls.sh" "$loadgen" "$secs" "$new_threads" 2>&1)
grep -E '^nginx mode=keepalive' <<<"$nginx_keep_out" | sed "s/\$/ workers=$keep_threads/"
grep -E '^nginx mode=new' <<<"$nginx_new_out" | sed "s/\$/ workers=$new_threads/"
nginx_keep=$(field rate "$(grep 'mode=keepalive' <<<"$nginx_keep_out")")
nginx_new=$(field rate "$(grep 'mode=new' <<<"$nginx_new_out")")
nginx_new_us=$(field server_us_per_req "$(grep 'mode=new' <<<"$nginx_new_out")")

echo "== veil-cas"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=bench \
	-keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null
# veil-las measures its callers: here loadgen, which collects one evidence per identity
"$build/veil-las" --socket "$work/las.sock" --data "$work/las" >"$work/las.log" 2>&1 &
las_pid=$!
for _ in $(seq 100); do grep -q "platform key hash" "$work/las.log" && break; sleep 0.05; done
start_cas() { # threads (the same data folder each time)
	if [ -n "$cas_pid" ]; then
		kill "$cas_pid" && wait "$cas_pid" 2>/dev/null
	fi
	: >"$work/cas.log"
	local init=
	[ -e "$work/data/master.key" ] || init=--init
	# --log-level warn: no line per successful request, as nginx's access_log off
	"$build/veil-cas" --data "$work/data" $init --listen "127.0.0.1:$port" --threads "$1" \
		--log-level "${CAS_LOG_LEVEL:-warn}" --max-namespaces-per-client 1000000 \
		--trust-platform "$("$build/veil-las" --print-key-hash --data "$work/las")" >"$work/cas.log" 2>&1 &
	cas_pid=$!
	for _ in $(seq 100); do grep -q listening "$work/cas.log" && break; sleep 0.05; done
}
start_cas "$keep_threads"
policy='name: bench\nversion: \"0.3\"\naccess_policy: {read: [ANY], update: [CREATOR]}\nservices:\n  - name: app\n    command: python3 print_env.py\n    pwd: /python\n    mrenclaves: [8ceeba9608d95ac21020e9a1fa9d0916a447fad79e5febfc9e5e62f00cb7487b]\n    environment: {API_USER: myself, API_PASSWORD: \"$$SCONE::password$$\"}\nsecrets:\n  - {name: password, kind: ascii, size: 10}\n'
printf '{"policy":"%s"}' "$policy" >"$work/create-bench.json"
status=$(curl -sk --tlsv1.3 --cert "$work/cert.pem" --key "$work/key.pem" -o /dev/null -w '%{http_code}' \
	-X POST --data-binary @"$work/create-bench.json" "https://127.0.0.1:$port/v1/policies")
[ "$status" = 201 ] || { echo "cannot create the bench policy: $status"; exit 1; }
# attestation: the seed's service, its runtime measurement being the loadgen (the
# process veil-las measures), debug-mode tolerated (simulation evidence is debug)
mr=$(sha256sum "$loadgen" | cut -c1-64)
root_hex=082cccc685171910e434780cb94f6416452e8bd5756eb04785dff38d29654fb9
apolicy='name: attest\nversion: \"0.3\"\nsecurity: {attestation: {tolerate: [debug-mode]}}\nservices:\n  - name: app\n    command: python3 print_env.py\n    pwd: /python\n    file_set_root: '$root_hex'\n    mrenclaves: ['$mr']\n    environment: {API_USER: myself, API_PASSWORD: \"$$SCONE::password$$\"}\nsecrets:\n  - {name: password, kind: ascii, size: 10}\n'
printf '{"policy":"%s"}' "$apolicy" >"$work/create-attest.json"
status=$(curl -sk --tlsv1.3 --cert "$work/cert.pem" --key "$work/key.pem" -o /dev/null -w '%{http_code}' \
	-X POST --data-binary @"$work/create-attest.json" "https://127.0.0.1:$port/v1/policies")
[ "$status" = 201 ] || { echo "cannot create the attest policy: $status"; exit 1; }
printf '{"config_id":"attest/app","evidence":"@@EVIDENCE@@","file_set_root":"%s"}' "$root_hex" >"$work/attest.json"

# creates: a unique namespace per request (loadgen fills the @ run with a counter),
# all by one client: hence --max-namespaces-per-client above
printf '{"policy":"%s"}' "$(sed 's/name: bench/name: b@@@@@@@@@@@@/' <<<"$policy")" >"$work/create-many.json"

run_cas() { # label mode conns method body expect path [loadgen options instead of the cert]
	local before after out
	local id=(--cert "$work/cert.pem" --key "$work/key.pem")
	[ $# -gt 7 ] && id=("${@:8}")
	before=$(cpu_ticks "$cas_pid")
	out=$("$loadgen" --url "https://127.0.0.1:$port$7" "${id[@]}" \
		--mode "$2" --connections "$3" --threads 1 --duration "$secs" --method "$4" \
		${5:+--body "$5"} --expect "$6" 2>/dev/null)
	after=$(cpu_ticks "$cas_pid")
	local reqs
	reqs=$(field requests "$out")
	awk -v l="$1" -v o="$out" -v t=$((after - before)) -v hz="$(getconf CLK_TCK)" -v s="$secs" -v r="$reqs" \
		'BEGIN { printf "veil-cas %s %s server_cpu=%.2f server_us_per_req=%.1f\n", l, o, t / hz / s, r ? t / hz / r * 1e6 : 0 }'
}
cas_keep=$(run_cas read keepalive 32 GET "" 200 /v1/policies/bench)
echo "$cas_keep"
start_cas "$new_threads"
cas_new=$(run_cas read new 16 GET "" 200 /v1/policies/bench)
echo "$cas_new"
cas_attest=$(run_cas attest new 16 POST "$work/attest.json" 200 /v1/attest --las "$work/las.sock" --identities 64)
echo "$cas_attest"
cas_create_new=$(run_cas create new 16 POST "$work/create-many.json" 201 /v1/policies)
echo "$cas_create_new"
sed -i 's/name: b@/name: k@/' "$work/create-many.json"
start_cas "$keep_threads"
cas_create_keep=$(run_cas create keepalive 8 POST "$work/create-many.json" 201 /v1/policies)
echo "$cas_create_keep"
for l in "$cas_keep" "$cas_new" "$cas_attest" "$cas_create_new" "$cas_create_keep"; do
	[ "$(field errors "$l")" = 0 ] || echo "warning: errors in: $l"
done

echo "== ratios (veil-cas / nginx, same run)"
awk -v ck="$(field rate "$cas_keep")" -v cn="$(field rate "$cas_new")" -v nk="$nginx_keep" -v nn="$nginx_new" \
	-v cau="$(field server_us_per_req "$cas_attest")" -v nnu="$nginx_new_us" \
	-v ca="$(field rate "$cas_attest")" -v cc="$(field rate "$cas_create_new")" -v ckc="$(field rate "$cas_create_keep")" 'BEGIN {
	printf "policy reads, keep-alive:       %8.1f/s vs %8.1f/s  ratio %.2f (target >= 0.50) %s\n", ck, nk, ck / nk, (ck / nk >= 0.5 ? "met" : "MISSED")
	printf "policy reads, new connections:  %8.1f/s vs %8.1f/s  ratio %.2f (target >= 0.80) %s\n", cn, nn, cn / nn, (cn / nn >= 0.8 ? "met" : "MISSED")
	printf "attestations, new connections:  %8.1f/s vs %8.1f/s  ratio %.2f (target >= 0.80) %s\n", ca, nn, ca / nn, (ca / nn >= 0.8 ? "met" : "MISSED")
	printf "attestations, server CPU per request: %.0f us vs nginx %.0f us per handshake: ratio %.2f (the same target, measured without the shared client)\n", cau, nnu, nnu / cau
	printf "policy creates, new connections: %7.1f/s (ratio to nginx handshakes %.2f)\n", cc, cc / nn
	printf "policy creates, keep-alive:      %7.1f/s\n", ckc
}'

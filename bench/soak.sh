#!/usr/bin/env bash
# Soak: veil-cas replicas on one PostgreSQL under a steady mix of attestations
# and policy reads for a bounded time, sampled every second; nginx's mutual-
# TLS handshake rate measured in the same run as the reference.
#
#   1. nginx: new mutual-TLS handshakes for 5 s (the reference rate);
#   2. one replica: attestations over new connections for 10 s (rate);
#   3. two replicas (the second a copy of the first's data folder, one
#      database): attestations for 10 s, half to each (rate; the ratio to
#      one replica is reported);
#   4. the soak: SECONDS seconds in 1-second slices; in each slice, on each
#      replica, attestations over new connections and policy reads over
#      keep-alive at once (4 loadgens), then each veil-cas's and its key
#      process's RSS and open file descriptors are sampled. Every slice's
#      requests, errors, p50 and p99 go to a table (SOAK_TSV, default
#      soak.tsv in the current folder).
#
# Bounds (the run fails when one is broken):
#   - errors: at most 0.1% of the soak's requests;
#   - RSS: after the first minute (warm-up: caches, pools, the allocator's
#     arenas), no process grows by more than 16 MiB nor by 25% above its
#     level at minute 1;
#   - file descriptors: at most 64 more than at minute 1 for any process.
# Prints the summary: p50/p99 latency over all slices (medians of the
# slices' p50, and the worst and the median of their p99), attestations/s
# with two replicas vs one, and the ratio to nginx's handshakes.
#
# Usage: bench/soak.sh [BUILD_DIR] [SECONDS]   (defaults: build, 600)
# Everything runs on 127.0.0.1; PostgreSQL 15 (Debian) runs as nobody in a
# temp folder and every server is stopped by PID at the end.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
build=$(realpath "${1:-$root/build}")
secs=${2:-600}
. "$root/tests/e2e/lib_pg.sh"
tsv=$(realpath -m "${SOAK_TSV:-soak.tsv}")
loadgen=$build/veil-loadgen
for x in "$build/veil-cas" "$build/veil-las" "$loadgen" "$PGBIN/initdb"; do
	[ -x "$x" ] || {
		echo "$0: $x is missing" >&2
		exit 2
	}
done
work=$(mktemp -d)
chmod 711 "$work"
cd "$work" # PostgreSQL runs as nobody, who may not enter the caller's folder
trap 'echo "soak: a step failed at line $LINENO"; echo "soak: 0 passed, 1 failed"' ERR
pids=()
cleanup() {
	set +e # a killed process's status must not end the cleanup half-way (set -e)
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null; done
	# PostgreSQL stopped, and waited for, before its folder goes
	pg_server_stop data 2>/dev/null || pg_server_kill_all
	rm -rf "$work"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
field() { sed -n "s/.* $1=\([^ /]*\).*/\1/p" <<<" $2"; }

# PostgreSQL
pgport=$(free_port)
pg_init "$work/pg" data
pg_server_start "$work/pg" data "$pgport"
db="postgresql://veil@127.0.0.1:$pgport/postgres"

# veil-las, the client identity, the policy (as bench/cas_vs_nginx.sh)
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=soak \
	-keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null
"$build/veil-las" --socket "$work/las.sock" --data "$work/las" >"$work/las.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do grep -q "platform key hash" "$work/las.log" && break; sleep 0.05; done
trust=$("$build/veil-las" --print-key-hash --data "$work/las")
mr=$(sha256sum "$loadgen" | cut -c1-64)
root_hex=082cccc685171910e434780cb94f6416452e8bd5756eb04785dff38d29654fb9
policy='name: attest\nversion: \"0.3\"\naccess_policy: {read: [ANY], update: [CREATOR]}\nsecurity: {attestation: {tolerate: [debug-mode]}}\nservices:\n  - name: app\n    command: python3 print_env.py\n    pwd: /python\n    file_set_root: '$root_hex'\n    mrenclaves: ['$mr']\n    environment: {API_USER: myself, API_PASSWORD: \"$$SCONE::password$$\"}\nsecrets:\n  - {name: password, kind: ascii, size: 10}\n'
printf '{"policy":"%s"}' "$policy" >"$work/create.json"
printf '{"config_id":"attest/app","evidence":"@@EVIDENCE@@","file_set_root":"%s"}' "$root_hex" >"$work/attest.json"

declare -A cas_pid cas_port
threads=${THREADS:-1}
start_cas() { # name
	local init=
	[ -e "$work/$1/master.key" ] || init=--init
	cas_port[$1]=$(free_port)
	"$build/veil-cas" --data "$work/$1" $init --store "$db" --listen "127.0.0.1:${cas_port[$1]}" \
		--threads "$threads" --log-level warn --trust-platform "$trust" >"$work/$1.log" 2>&1 &
	cas_pid[$1]=$!
	pids+=($!)
	for _ in $(seq 200); do grep -q listening "$work/$1.log" && return 0; sleep 0.05; done
	cat "$work/$1.log" >&2
	return 1
}
start_cas a
status=$(curl -sk --tlsv1.3 --cert "$work/cert.pem" --key "$work/key.pem" -o /dev/null -w '%{http_code}' \
	-X POST --data-binary @"$work/create.json" "https://127.0.0.1:${cas_port[a]}/v1/policies")
[ "$status" = 201 ] || {
	echo "$0: cannot create the policy: $status" >&2
	exit 1
}
# the second replica: the first's data folder (master key, TLS identity)
kill "${cas_pid[a]}"
wait "${cas_pid[a]}" 2>/dev/null || true
cp -a "$work/a" "$work/b"
rm -f "$work/b/replica.id" # a copy starts as a new replica (docs/cas.md, PostgreSQL)
start_cas a
start_cas b

attest() { # replica seconds [identities]
	"$loadgen" --url "https://127.0.0.1:${cas_port[$1]}/v1/attest" --cert "$work/cert.pem" \
		--key "$work/key.pem" --mode new --connections 8 --threads 1 --duration "$2" \
		--method POST --body "$work/attest.json" --expect 200 --las "$work/las.sock" \
		--identities 32 2>/dev/null
}
reads() { # replica seconds
	"$loadgen" --url "https://127.0.0.1:${cas_port[$1]}/v1/policies/attest" --cert "$work/cert.pem" \
		--key "$work/key.pem" --mode keepalive --connections 4 --threads 1 --duration "$2" 2>/dev/null
}

echo "== reference and scaling"
nginx_rate=0
if command -v "${NGINX:-/usr/sbin/nginx}" >/dev/null; then
	nginx=$(PORT=$(free_port) bash "$root/bench/nginx_mtls.sh" "$loadgen" 5 "$threads" 2>&1 | grep 'mode=new')
	nginx_rate=$(field rate "$nginx")
else
	echo "nginx is not installed (apt-get install nginx-light): no reference rate"
fi
one=$(attest a 10)
attest a 10 >"$work/two-a" &
lg=$!
attest b 10 >"$work/two-b"
wait "$lg"
two=$(awk -v a="$(field rate "$(cat "$work/two-a")")" -v b="$(field rate "$(cat "$work/two-b")")" 'BEGIN { print a + b }')
echo "nginx new mTLS handshakes: $nginx_rate/s"
echo "attestations, one replica: $(field rate "$one")/s; two replicas: $two/s"

echo "== soak: $secs s, attestations and reads on both replicas, sampled each second"
procs() { # name pid: the CAS and its key process
	local p=${cas_pid[$1]} c
	echo "$1 $p"
	for c in $(cat /proc/"$p"/task/*/children 2>/dev/null); do echo "$1-key $c"; done
}
printf 'second\tkind\treplica\trequests\terrors\tp50_ms\tp99_ms\n' >"$tsv"
printf 'second\tprocess\trss_kb\tfds\n' >"$tsv.proc"
for s in $(seq "$secs"); do
	lgs=()
	for r in a b; do
		attest "$r" 1 >"$work/s-attest-$r" &
		lgs+=($!)
		reads "$r" 1 >"$work/s-reads-$r" &
		lgs+=($!)
	done
	wait "${lgs[@]}"
	for r in a b; do
		for k in attest reads; do
			l=$(cat "$work/s-$k-$r")
			printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$s" "$k" "$r" "$(field requests "$l")" \
				"$(field errors "$l")" "$(field p50_ms "$l")" "$(field p99_ms "$l")" >>"$tsv"
		done
		procs "$r" | while read -r name pid; do
			printf '%s\t%s\t%s\t%s\n' "$s" "$name" \
				"$(awk '/^VmRSS/ {print $2}' /proc/"$pid"/status)" \
				"$(ls /proc/"$pid"/fd | wc -l)" >>"$tsv.proc"
		done
	done
done

echo "== summary"
median() { sort -g | awk '{ a[NR] = $1 } END { print NR ? ((NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2) : 0 }'; }
for k in attest reads; do
	col() { awk -F'\t' -v k="$k" -v c="$1" 'NR > 1 && $2 == k { print $c }' "$tsv"; }
	awk -F'\t' -v k="$k" -v p50="$(col 6 | median)" -v p99="$(col 7 | median)" \
		-v worst="$(col 7 | sort -g | tail -1)" 'NR > 1 && $2 == k { n += $4; e += $5 }
		END { printf "%-7s %9d requests, %d errors (%.3f%%); p50 %.2f ms (median of the slices), p99 %.2f ms median, %.2f ms worst\n", k, n, e, n ? 100 * e / n : 0, p50, p99, worst }' "$tsv"
done
ref=$((secs >= 120 ? 60 : secs / 2)) # the warm-up: the first minute (half of a short run)
awk -F'\t' -v ref="$ref" 'NR > 1 && $1 >= ref { if (!($2 in base)) { base[$2] = $3; fd0[$2] = $4 }
		last[$2] = $3; fdl[$2] = $4; if ($3 > max[$2]) max[$2] = $3; if ($4 > fmax[$2]) fmax[$2] = $4 }
	END { for (p in last) printf "%-7s RSS %d kB at second %d, %d kB at the end, %d kB at most; fds %d -> %d (at most %d)\n", p, base[p], ref, last[p], max[p], fd0[p], fdl[p], fmax[p] }' "$tsv.proc"
fail=0
awk -F'\t' 'NR > 1 { n += $4; e += $5 } END { exit !(n > 0 && e <= n / 1000) }' "$tsv" || {
	echo "FAIL: more than 0.1% errors"
	fail=1
}
awk -F'\t' -v ref="$ref" 'NR > 1 && $1 >= ref { if (!($2 in base)) { base[$2] = $3; fd0[$2] = $4 }
		if ($3 - base[$2] > 16384 && $3 > base[$2] * 1.25) bad = bad " " $2 " rss@" $1
		if ($4 - fd0[$2] > 64) bad = bad " " $2 " fds@" $1 }
	END { if (bad != "") { print "FAIL: growth past the bounds:" bad; exit 1 } }' "$tsv.proc" || fail=1
awk -v t="$two" -v o="$(field rate "$one")" -v n="$nginx_rate" 'BEGIN {
	printf "attestations/s: two replicas %.1f vs one %.1f: %.2fx", t, o, o ? t / o : 0
	if (n > 0) printf "; one replica / nginx handshakes %.2f", o / n
	printf "\n" }'
echo "per-second table: $tsv, $tsv.proc"
if [ "$fail" -eq 0 ]; then
	echo "soak: bounds held; 1 passed, 0 failed"
else
	echo "soak: 0 passed, 1 failed"
	exit 1
fi

#!/usr/bin/env bash
# Benchmark peer: nginx serving a small fixed JSON body (about the size of a
# CAS policy read) over TLS 1.3 with mutual TLS, accepting any client
# certificate as the CAS does (ssl_verify_client optional_no_ca; a request
# without a client certificate gets 403, like the CAS refuses a request
# without an identity). loadgen measures it in both modes:
#   keepalive: requests/s over long-lived connections  (peer of CAS policy reads)
#   new:       one fresh TCP + TLS 1.3 handshake per request (peer of CAS provisioning)
# Prints a header line (versions, parameters, the server's public key hash,
# CPU already busy before the run) and the two loadgen summary lines, extended
# with nginx's CPU use (server_cpu, in cores; server_us_per_req). The run fails
# unless loadgen reports the public key of the nginx started here.
# See bench/README.md for how to read the numbers.
#
# Usage: bench/nginx_mtls.sh LOADGEN_BINARY [SECONDS] [WORKERS]
#   SECONDS  duration of each mode (default 5)
#   WORKERS  nginx worker_processes (default 2)
# Environment: PORT (18443), THREADS (loadgen threads, 1), KEEPALIVE_CONNS (32),
#   NEW_CONNS (16), KEY_ALG (ec = ECDSA P-256, the default, or rsa = RSA 2048)
#   for the server and client keys, REUSEPORT=1 to spread connections evenly
#   over the workers (steadier, lower keep-alive numbers; see the README),
#   NGINX (/usr/sbin/nginx), BENCH_DIR to keep the temp dir for inspection.
set -eu
if [ $# -lt 1 ] || [ $# -gt 3 ]; then
	echo "usage: $0 LOADGEN_BINARY [SECONDS] [WORKERS]" >&2
	exit 2
fi
LOADGEN=$(realpath "$1")
SECONDS_EACH=${2:-5}
WORKERS=${3:-2}
PORT=${PORT:-18443}
THREADS=${THREADS:-1}
KEEPALIVE_CONNS=${KEEPALIVE_CONNS:-32}
NEW_CONNS=${NEW_CONNS:-16}
KEY_ALG=${KEY_ALG:-ec}
NGINX=${NGINX:-/usr/sbin/nginx}

[ -x "$LOADGEN" ] || {
	echo "$0: $LOADGEN is not executable" >&2
	exit 2
}
command -v "$NGINX" >/dev/null || {
	echo "$0: nginx not found at $NGINX" >&2
	exit 2
}
# Someone else on the port would be measured instead of our nginx.
if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
	echo "$0: 127.0.0.1:$PORT is already in use; set PORT" >&2
	exit 2
fi

if [ -n "${BENCH_DIR:-}" ]; then
	work=$BENCH_DIR
	rm -rf "$work" && mkdir -p "$work"
else
	work=$(mktemp -d)
fi
nginx_pid=
# running and not yet a zombie (kill -0 succeeds on a zombie until it is reaped)
alive() {
	local st
	st=$(ps -o stat= -p "$1" 2>/dev/null) || return 1
	[ -n "$st" ] && [ "${st#Z}" = "$st" ]
}
cleanup() {
	if [ -n "$nginx_pid" ] && alive "$nginx_pid"; then
		kill -TERM "$nginx_pid" 2>/dev/null || true
		# bounded wait for a clean exit, then force
		for _ in $(seq 1 50); do
			alive "$nginx_pid" || break
			sleep 0.1
		done
		kill -KILL "$nginx_pid" 2>/dev/null || true
		wait "$nginx_pid" 2>/dev/null || true
	fi
	[ -n "${BENCH_DIR:-}" ] || rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
cd "$work"

# ---- certificates: a self-signed server, a client CA and a client it signed ----
case $KEY_ALG in
ec) newkey=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1) ;;
rsa) newkey=(-newkey rsa:2048) ;;
*)
	echo "$0: KEY_ALG must be ec or rsa" >&2
	exit 2
	;;
esac
ossl() { openssl "$@" 2>/dev/null; }
ossl req -x509 "${newkey[@]}" -nodes -keyout server.key -out server.pem -days 2 \
	-subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1
ossl req -x509 "${newkey[@]}" -nodes -keyout client-ca.key -out client-ca.pem -days 2 \
	-subj "/CN=bench client CA"
ossl req "${newkey[@]}" -nodes -keyout client.key -out client.csr -subj /CN=bench-client
ossl x509 -req -in client.csr -CA client-ca.pem -CAkey client-ca.key -CAcreateserial \
	-out client.pem -days 2
server_fpr=$(openssl x509 -in server.pem -noout -pubkey | openssl pkey -pubin -outform DER |
	openssl dgst -sha256 -r | cut -d' ' -f1)

# ---- the fixed response: a JSON document of about a policy read's size ----------
body='{"name":"myPythonApp","version":"0.3","hash":"9f2c1e7a5b3d4c6e8f0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f6a","predecessor":"4a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9","access_policy":{"read":["CREATOR"],"update":["CREATOR"]},"services":[{"name":"pythonapp","image_name":"python_hello_user","command":"python3 /python/print_env.py","pwd":"/python","attestation":{"mrenclave":["b7e3c9a1f2d4e6a8c0b1d3f5e7a9c2b4d6f8e0a2c4b6d8f0e2a4c6b8d0f2e4a6"],"tolerate":["debug-mode","outdated-tcb"]},"fs_root":"c3d5e7f9a1b3c5d7e9f1a3b5c7d9e1f3a5b7c9d1e3f5a7b9c1d3e5f7a9b1c3d5"}],"secrets":[{"name":"db_password","kind":"ascii","size":16}]}'

cat >nginx.conf <<EOF
worker_processes $WORKERS;
pid $work/nginx.pid;
error_log $work/error.log warn;
events {
	worker_connections 4096;
}
http {
	access_log off;
	client_body_temp_path $work/body;
	proxy_temp_path $work/proxy;
	fastcgi_temp_path $work/fastcgi;
	uwsgi_temp_path $work/uwsgi;
	scgi_temp_path $work/scgi;
	keepalive_requests 100000000;
	keepalive_timeout 75s;
	server {
		listen 127.0.0.1:$PORT ssl${REUSEPORT:+ reuseport};
		ssl_certificate $work/server.pem;
		ssl_certificate_key $work/server.key;
		ssl_protocols TLSv1.3;
		ssl_verify_client optional_no_ca;
		# the client never resumes, so tickets and a cache would be wasted work
		ssl_session_tickets off;
		ssl_session_cache off;
		location / {
			if (\$ssl_client_verify = NONE) {
				return 403;
			}
			default_type application/json;
			return 200 '$body';
		}
	}
}
EOF

"$NGINX" -p "$work" -c "$work/nginx.conf" -g 'daemon off;' &
nginx_pid=$!
up=
for _ in $(seq 1 50); do # bounded: 5 s
	alive "$nginx_pid" || break
	if [ -s nginx.pid ] && (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
		up=1
		break
	fi
	sleep 0.1
done
[ -n "$up" ] || {
	echo "$0: nginx did not start; $work/error.log:" >&2
	cat error.log >&2 || true
	exit 1
}

# CPU already busy before the run (other processes on this machine), in cores:
# the benchmark shares the machine, so a busy machine lowers both numbers.
background_cores() {
	local a b c d e f g h t1 i1 t2 i2
	read -r _ a b c d e f g h _ </proc/stat
	t1=$((a + b + c + d + e + f + g + h)) i1=$((d + e))
	sleep 1
	read -r _ a b c d e f g h _ </proc/stat
	t2=$((a + b + c + d + e + f + g + h)) i2=$((d + e))
	awk -v t=$((t2 - t1)) -v i=$((i2 - i1)) -v n="$(nproc)" \
		'BEGIN { printf "%.2f", (t > 0) ? n * (t - i) / t : 0 }'
}
bg=$(background_cores)
echo "nginx $("$NGINX" -v 2>&1 | sed 's/.*nginx\///') workers=$WORKERS key=$KEY_ALG" \
	"body_bytes=${#body} server_pubkey_sha256=$server_fpr loadgen_threads=$THREADS" \
	"cores=$(nproc) background_cores=$bg"
if awk -v b="$bg" 'BEGIN { exit !(b > 0.25) }'; then
	echo "warning: the machine was already busy ($bg cores) before the run; numbers will be low" >&2
fi
# CPU time (clock ticks) of the nginx master and its workers so far
server_ticks() {
	local sum=0 p f
	for p in "$nginx_pid" $(ps -o pid= --ppid "$nginx_pid"); do
		read -r -a f <"/proc/$p/stat" || continue
		sum=$((sum + f[13] + f[14])) # utime + stime
	done
	echo "$sum"
}
hz=$(getconf CLK_TCK)
run() {
	local mode=$1 conns=$2 out err t0 t1
	err=$(mktemp -p "$work")
	t0=$(server_ticks)
	out=$("$LOADGEN" --url "https://127.0.0.1:$PORT/policy" --cert client.pem --key client.key \
		--mode "$mode" --connections "$conns" --threads "$THREADS" \
		--duration "$SECONDS_EACH" --expect 200 2>"$err") || {
		echo "$0: loadgen failed:" >&2
		cat "$err" >&2
		exit 1
	}
	t1=$(server_ticks)
	if ! grep -q "server_pubkey_sha256=$server_fpr" "$err"; then
		echo "$0: loadgen did not reach our nginx (server key differs or no handshake):" >&2
		cat "$err" >&2
		exit 1
	fi
	# server CPU in cores, and per request: the second does not depend on how
	# the two cores happened to be shared between loadgen and nginx
	echo "nginx $out $(awk -v d=$((t1 - t0)) -v hz="$hz" -v s="$SECONDS_EACH" \
		-v n="$(echo "$out" | sed -n 's/.* requests=\([0-9]*\) .*/\1/p')" \
		'BEGIN { printf "server_cpu=%.2f server_us_per_req=%.1f", d / hz / s,
			(n > 0) ? d / hz / n * 1e6 : 0 }') connections=$conns"
}
run keepalive "$KEEPALIVE_CONNS"
run new "$NEW_CONNS"

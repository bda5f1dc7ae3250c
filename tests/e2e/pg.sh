#!/usr/bin/env bash
# veil-cas on PostgreSQL (--store): the CAS flows, two replicas sharing one
# database, the database stopped under load, a replica killed under load.
# PostgreSQL 15 from Debian runs in a temp folder on 127.0.0.1 (a random free
# port) as nobody (it refuses root); every server is started here and stopped
# by PID. Usage: pg.sh BUILD_DIR
set -u
BUILD=$(realpath "$1")
VEIL=$BUILD/veil
CAS=$BUILD/veil-cas
ROOT=${VEIL_SOURCE_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
WORK=$(mktemp -d)
ROUNDS=${PG_RACE_ROUNDS:-100}
chmod 711 "$WORK" # nobody reaches its own folder below
PG=$WORK/pg
declare -A CAS_PIDS=()
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
PGPORT=$(free_port)
DB="postgresql://veil@127.0.0.1:$PGPORT/postgres"
PORT1=$(free_port)
PORT2=$(free_port)
URL1=https://127.0.0.1:$PORT1
URL2=https://127.0.0.1:$PORT2
cleanup() {
	local p
	for p in "${CAS_PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done
	for p in "${CAS_PIDS[@]}"; do wait "$p" 2>/dev/null; done
	pg_server_kill_all
	rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 1' TERM INT

. "$ROOT/tests/e2e/lib.sh"

. "$ROOT/tests/e2e/lib_pg.sh"
pg_start() { pg_server_start "$PG" data "$PGPORT" "-c fsync=off"; }
pg_stop() { pg_server_stop data; }
psql_q() { pg_sql "$PGPORT" "$1"; }

start_replica() { # name data-dir port [extra flags]
	local name=$1 data=$2 port=$3 init=
	shift 3
	[ -e "$data/master.key" ] || init=--init
	rm -f "$WORK/$name.out"
	"$CAS" --data "$data" $init --store "$DB" --listen "127.0.0.1:$port" --threads 2 \
		--log-file "$WORK/$name.log" "$@" >"$WORK/$name.out" 2>"$WORK/$name.err" &
	CAS_PIDS[$name]=$!
	for _ in $(seq 600); do
		grep -q "listening" "$WORK/$name.out" 2>/dev/null && return 0
		kill -0 "${CAS_PIDS[$name]}" 2>/dev/null || break
		sleep 0.05
	done
	cat "$WORK/$name.err" >&2
	unset "CAS_PIDS[$name]"
	return 1
}
stop_replica() { # name
	local p=${CAS_PIDS[$1]:-}
	[ -n "$p" ] || return 0
	kill -TERM "$p"
	wait "$p"
	local r=$?
	unset "CAS_PIDS[$1]"
	[ "$r" -eq 0 ] || die "veil-cas $1 exited $r: $(tail -3 "$WORK/$1.err")"
}

A() { VEIL_HOME=$WORK/home-a "$VEIL" "$@"; }
TESTING="--only_for_testing-trust-any --only_for_testing-debug --only_for_testing-ignore-signer"
# HTTPS as client A; the body in $WORK/.body (or -o FILE), the status printed
as_a() { curl -sk --tlsv1.3 --cert "$WORK/home-a/identity/cert.pem" --key "$WORK/home-a/identity/key.pem" \
	-o "$WORK/.body" -w '%{http_code}' "$@"; }
as_a_to() { # body-file curl-args...
	local f=$1
	shift
	curl -sk --tlsv1.3 --cert "$WORK/home-a/identity/cert.pem" --key "$WORK/home-a/identity/key.pem" \
		-o "$f" -w '%{http_code}' "$@"
}

policy() { # ns [predecessor] [round]
	{
		echo "name: $1"
		echo 'version: "0.3"'
		echo "access_policy:"
		echo "  read: [CREATOR]"
		echo "  update: [CREATOR]"
		[ -n "${2:-}" ] && echo "predecessor: $2"
		echo "services:"
		echo "  - name: app"
		echo "    command: python3 print_env.py"
		echo "    pwd: /python"
		echo "    mrenclaves: [$(printf 'a%.0s' $(seq 64))]"
		echo "    environment:"
		echo "      API_PASSWORD: \"\$\$SCONE::password\$\$\""
		echo "      ROUND: \"${3:-0}\""
		echo "secrets:"
		echo "  - name: password"
		echo "    kind: ascii"
		echo "    size: 10"
	}
}
# the JSON body of a create or update of policy text on stdin
as_body() { jq -Rs '{policy: .}'; }
hash_via() { # url ns: the stored hash as that replica answers
	[ "$(as_a_to "$WORK/.h" "$1/v1/policies/$2")" = 200 ] && jq -r .hash "$WORK/.h"
}

# ---- scenarios (in order; they share the database) ----
t_setup() {
	pg_init "$PG" data || die "initdb failed" || return 1
	pg_start || die "PostgreSQL did not start" || return 1
	# every scenario below on a database whose default isolation is not
	# READ COMMITTED: a change's transaction sets its own (under REPEATABLE
	# READ its snapshot would predate the writer lock, and every writer that
	# waited for it would append a stale seq to the chain)
	psql_q "ALTER DATABASE postgres SET default_transaction_isolation = 'serializable'"
}

t_bad_store_refused() {
	run "$CAS" --data "$WORK/bad" --init --store "mysql://x" --listen "127.0.0.1:$PORT1" &&
		[ "$rc" = 2 ] && has "--store: expected postgresql://" || return 1
	run "$CAS" --data "$WORK/bad" --init --store "postgresql://veil@127.0.0.1:$PGPORT/postgres?nosuch=1" \
		--listen "127.0.0.1:$PORT1" && [ "$rc" = 1 ] && has "not a PostgreSQL connection URI" || return 1
	lacks "nosuch=1" || return 1
	# nothing listens on PORT2 yet
	run "$CAS" --data "$WORK/bad2" --init --store "postgresql://veil:s3cret@127.0.0.1:$PORT2/postgres" \
		--listen "127.0.0.1:$PORT1" && [ "$rc" = 1 ] && has "PostgreSQL (--store): cannot connect" || return 1
	lacks "s3cret" || return 1
	# shares of a token's recovery key could not restore a PostgreSQL store (recover reads cas.db)
	local h
	for h in 1 2; do
		openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 2>/dev/null |
			openssl pkey -pubout -out "$WORK/holder$h.pem" 2>/dev/null || return 1
	done
	run "$CAS" --data "$WORK/bad3" --init --master-key "pkcs11:token=t;object=o" --recovery-key "$WORK/holder1.pem" \
		--recovery-key "$WORK/holder2.pem" --recovery-threshold 2 --store "$DB" --listen "127.0.0.1:$PORT1" &&
		[ "$rc" = 2 ] && has "--recovery-key with a PKCS#11 master key needs the SQLite store" && [ ! -e "$WORK/bad3" ]
}

# TLS and a client certificate to the database, from the libpq URI alone
# (sslmode=verify-full, sslrootcert, sslcert, sslkey): the server takes the
# role veiltls only over TLS with a certificate its CA signed. A CAS on it
# serves; without the client certificate, with another CA, or without TLS
# it is refused at start, saying why.
t_tls_client_certificate() {
	local d=$PG/tls port
	pg_as mkdir -p "$d" && (
		cd "$d" || exit 1
		pg_as openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=test-ca \
			-keyout ca.key -out ca.pem 2>/dev/null &&
			pg_as openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=127.0.0.1 \
				-keyout server.key -out server.csr 2>/dev/null &&
			printf 'subjectAltName=IP:127.0.0.1\n' | pg_as tee ext >/dev/null &&
			pg_as openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 1 \
				-extfile ext -out server.pem 2>/dev/null &&
			pg_as chmod 600 server.key
	) || die "server certificates" || return 1
	mkdir -p "$WORK/tlsc" && (
		cd "$WORK/tlsc" || exit 1
		openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=veiltls \
			-keyout client.key -out client.csr 2>/dev/null &&
			openssl x509 -req -in client.csr -CA "$d/ca.pem" -CAkey "$d/ca.key" -CAcreateserial \
				-CAserial "$WORK/tlsc/ca.srl" -days 1 -out client.pem 2>/dev/null &&
			openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=other-ca \
				-keyout other.key -out other.pem 2>/dev/null && chmod 600 client.key
	) || die "client certificate" || return 1
	psql_q "CREATE ROLE veiltls LOGIN" && psql_q "CREATE DATABASE tlsdb OWNER veiltls" || return 1
	psql_q "ALTER SYSTEM SET ssl = on" && psql_q "ALTER SYSTEM SET ssl_cert_file = '$d/server.pem'" &&
		psql_q "ALTER SYSTEM SET ssl_key_file = '$d/server.key'" &&
		psql_q "ALTER SYSTEM SET ssl_ca_file = '$d/ca.pem'" || return 1
	# veiltls: TLS with a certificate only (first match wins: before initdb's trust lines)
	{
		echo "hostssl tlsdb veiltls 127.0.0.1/32 cert"
		echo "host tlsdb veiltls 127.0.0.1/32 reject"
		cat "$PG/data/pg_hba.conf"
	} >"$WORK/hba" && pg_as cp "$WORK/hba" "$PG/data/pg_hba.conf" || return 1
	[ "$(psql_q 'SELECT pg_reload_conf()')" = t ] || return 1
	sleep 0.5
	local tls="sslmode=verify-full&sslrootcert=$d/ca.pem&sslcert=$WORK/tlsc/client.pem&sslkey=$WORK/tlsc/client.key"
	port=$(free_port)
	run "$CAS" --data "$WORK/tls-nocert" --init --listen "127.0.0.1:$port" \
		--store "postgresql://veiltls@127.0.0.1:$PGPORT/tlsdb?sslmode=verify-full&sslrootcert=$d/ca.pem"
	[ "$rc" = 1 ] && has "PostgreSQL (--store): cannot connect" && has "certificate" ||
		die "no client certificate: rc $rc: $out $err" || return 1
	run "$CAS" --data "$WORK/tls-otherca" --init --listen "127.0.0.1:$port" \
		--store "postgresql://veiltls@127.0.0.1:$PGPORT/tlsdb?sslmode=verify-full&sslrootcert=$WORK/tlsc/other.pem&sslcert=$WORK/tlsc/client.pem&sslkey=$WORK/tlsc/client.key"
	[ "$rc" = 1 ] && has "cannot connect" && has "certificate verify failed" ||
		die "a server certificate from another CA: rc $rc: $out $err" || return 1
	run "$CAS" --data "$WORK/tls-plain" --init --listen "127.0.0.1:$port" \
		--store "postgresql://veiltls@127.0.0.1:$PGPORT/tlsdb?sslmode=disable"
	[ "$rc" = 1 ] && has "cannot connect" && has "rejects connection" ||
		die "without TLS: rc $rc: $out $err" || return 1
	DB_SAVED=$DB
	DB="postgresql://veiltls@127.0.0.1:$PGPORT/tlsdb?$tls"
	start_replica tls "$WORK/tls-data" "$port"
	local started=$?
	DB=$DB_SAVED
	[ "$started" = 0 ] || die "no CAS over TLS with a client certificate" || return 1
	policy overtls | as_body >"$WORK/overtls.json"
	[ "$(as_a -X POST --data-binary @"$WORK/overtls.json" "https://127.0.0.1:$port/v1/policies")" = 201 ] ||
		die "create over TLS: $(cat "$WORK/.body" 2>&1) $(tail -3 "$WORK/tls.err")" || return 1
	[ "$(pg_sql "$PGPORT" "SELECT count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) WHERE a.usename = 'veiltls' AND s.ssl AND s.client_dn = '/CN=veiltls'")" -ge 1 ] ||
		die "veil-cas's sessions are not TLS with its certificate" || return 1
	[ "$(pg_sql "$PGPORT" "SELECT count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) WHERE a.usename = 'veiltls' AND NOT s.ssl")" = 0 ] ||
		die "a session without TLS" || return 1
	stop_replica tls
}

# (a) the CAS flows on PostgreSQL
t_basic_flows() {
	start_replica r1 "$WORK/data1" "$PORT1" || die "veil-cas did not start on PostgreSQL" || return 1
	[ ! -e "$WORK/data1/cas.db" ] || die "cas.db made with --store" || return 1
	[ "$(psql_q 'SELECT max(version) FROM veil_schema')" = 3 ] || die "schema version" || return 1
	run A cas attest "$URL1" $TESTING && ok && has "pinned" || return 1
	policy basic >"$WORK/basic.yaml"
	run A policy create "$WORK/basic.yaml" && ok && has "created basic" || return 1
	run A policy create "$WORK/basic.yaml" && rejected && has "409" && has "exists" || return 1
	run A policy get basic && ok && has "name: basic" || return 1
	local h
	h=$(hash_via "$URL1" basic) || die "no hash" || return 1
	policy basic "$h" 1 >"$WORK/basic1.yaml"
	run A policy update "$WORK/basic1.yaml" && ok || return 1
	# the same predecessor again: no longer the current hash
	policy basic "$h" 2 >"$WORK/basic2.yaml"
	run A policy update "$WORK/basic2.yaml" && rejected && has "409" || return 1
	run A policy list && ok && has "basic" || return 1
	# stored encrypted: the policy's text is not in the database
	pg_as "$PGBIN/pg_dump" -h 127.0.0.1 -p "$PGPORT" -U veil postgres >"$WORK/dump.sql" || return 1
	! grep -q "print_env.py" "$WORK/dump.sql" || die "policy text in the database in clear" || return 1
	# child namespaces and delete
	policy basic/child | as_body >"$WORK/child.json"
	[ "$(as_a -X POST --data-binary @"$WORK/child.json" "$URL1/v1/policies")" = 201 ] || die "child create: $(cat "$WORK/.body")" || return 1
	[ "$(as_a -X DELETE "$URL1/v1/policies/basic")" = 409 ] || die "parent with child deleted" || return 1
	[ "$(as_a -X DELETE "$URL1/v1/policies/basic/child")" = 200 ] || die "child delete" || return 1
	[ "$(as_a -X DELETE "$URL1/v1/policies/basic")" = 200 ] || die "delete" || return 1
	[ "$(as_a "$URL1/v1/policies/basic")" = 404 ] || die "deleted, still read" || return 1
	[ "$(as_a "$URL1/readyz")" = 200 ] || die "readyz" || return 1
	# a clean stop and start: the audit head this replica keeps in the database matches its log
	stop_replica r1 || return 1
	start_replica r1 "$WORK/data1" "$PORT1" || die "no restart on its own head" || return 1
	[ "$(psql_q 'SELECT count(*) FROM audit_head')" = 1 ] || die "audit heads: $(psql_q 'SELECT * FROM audit_head')" || return 1
	# the folder without --store: not "cas.db is missing, restore it"
	run "$CAS" --data "$WORK/data1" --listen "127.0.0.1:$PORT2" && [ "$rc" = 1 ] &&
		has "its policies are in PostgreSQL" && lacks "restore it" || return 1
	run "$CAS" backup --data "$WORK/data1" "$WORK/bk" && [ "$rc" = 1 ] && has "its policies are in PostgreSQL" || return 1
	run "$VEIL" audit verify "$WORK/data1/audit.log" && ok
}

t_init_on_populated_database_refused() {
	policy keep | as_body >"$WORK/keep.json"
	[ "$(as_a -X POST --data-binary @"$WORK/keep.json" "$URL1/v1/policies")" = 201 ] || return 1
	run "$CAS" --data "$WORK/other" --init --store "$DB" --listen "127.0.0.1:$PORT2" && [ "$rc" = 1 ] &&
		has "already holds 1 namespaces of another CAS" && has "copy of its data folder"
}

# A replica is a copy of the first one's data folder (master.key, tls/),
# without replica.id; a copy that kept it is refused while the first runs.
t_second_replica() {
	stop_replica r1 || return 1
	cp -a "$WORK/data1" "$WORK/data2" || return 1
	start_replica r1 "$WORK/data1" "$PORT1" || return 1
	run "$CAS" --data "$WORK/data2" --store "$DB" --listen "127.0.0.1:$PORT2" && [ "$rc" = 1 ] &&
		has "a running veil-cas uses this replica's id" || return 1
	rm "$WORK/data2/replica.id"
	start_replica r2 "$WORK/data2" "$PORT2" || die "second replica did not start" || return 1
	[ "$("$CAS" --print-key-hash --data "$WORK/data1" --store "$DB")" = "$("$CAS" --print-key-hash --data "$WORK/data2" --store "$DB")" ] ||
		die "replicas' keys differ" || return 1
	run A cas attest "$URL2" $TESTING && ok || return 1
	# each replica reads what the other wrote
	[ "$(hash_via "$URL2" keep)" = "$(hash_via "$URL1" keep)" ] || die "keep differs"
}

# Secrets are generated once, by the replica that serves the create, and
# kept by an update through the other: an attested start through either
# replica gets the same password (veil-las and the evidence client of
# keyproc.sh; the answer is sealed to the client's key, tests/sealed_open).
attest_password() { # port -> the password the CAS released for secrets/app
	python3 "$ROOT/tests/e2e/attack_cas_robust.py" attest "$1" "$WORK/home-a/identity/cert.pem" \
		"$WORK/home-a/identity/key.pem" "$WORK/las.sock" "$KH" secrets/app 0 "$WORK/last.req" >"$WORK/att.out" &&
		sed -n 2p "$WORK/att.out" | "$BUILD/tests/sealed_open" "$WORK/home-a/identity/key.pem" "$WORK/last.req" |
		python3 -c 'import json,sys; print(json.load(sys.stdin)["environment"]["API_PASSWORD"])'
}
secrets_policy() { # [predecessor]
	echo "name: secrets"
	echo 'version: "0.3"'
	echo "security:"
	echo "  attestation:"
	echo "    tolerate: [debug-mode]"
	[ -n "${1:-}" ] && echo "predecessor: $1"
	echo "services:"
	echo "  - name: app"
	echo "    command: python3 app.py${1:+ --updated}"
	echo "    pwd: /python"
	echo "    mrenclaves: [$PYHASH]"
	echo "    environment:"
	echo "      API_PASSWORD: \"\$\$SCONE::password\$\$\""
	echo "secrets:"
	echo "  - name: password"
	echo "    kind: ascii"
	echo "    size: 32"
}
t_secrets_same_through_either_replica() {
	[ -x "$BUILD/tests/sealed_open" ] || die "no $BUILD/tests/sealed_open (-Dtests=enabled)" || return 1
	"$BUILD/veil-las" --socket "$WORK/las.sock" --data "$WORK/las" >"$WORK/las.out" 2>&1 &
	LAS_PID=$!
	wait_for "$WORK/las.out" "key hash" || die "veil-las did not start" || return 1
	local las_hash p1 p2 p3 h
	las_hash=$("$BUILD/veil-las" --print-key-hash --data "$WORK/las") || return 1
	build_lasc "$WORK/lasc" || return 1
	export LASC=$WORK/lasc
	PYHASH=$(sha256sum "$WORK/lasc" | cut -d' ' -f1)
	KH=$(openssl x509 -in "$WORK/home-a/identity/cert.pem" -pubkey -noout | openssl pkey -pubin -outform DER | sha256sum | cut -d' ' -f1)
	stop_replica r1 && stop_replica r2 || return 1
	start_replica r1 "$WORK/data1" "$PORT1" --trust-platform "$las_hash" &&
		start_replica r2 "$WORK/data2" "$PORT2" --trust-platform "$las_hash" || return 1
	secrets_policy | as_body >"$WORK/secrets.json"
	[ "$(as_a -X POST --data-binary @"$WORK/secrets.json" "$URL2/v1/policies")" = 201 ] || die "create: $(cat "$WORK/.body")" || return 1
	p1=$(attest_password "$PORT1") && p2=$(attest_password "$PORT2") || die "attest: $(cat "$WORK/att.out")" || return 1
	[ ${#p1} = 32 ] && [ "$p1" = "$p2" ] || die "passwords differ between replicas: '$p1' '$p2'" || return 1
	h=$(hash_via "$URL1" secrets) || return 1
	secrets_policy "$h" | as_body >"$WORK/secrets2.json"
	[ "$(as_a -X PUT --data-binary @"$WORK/secrets2.json" "$URL1/v1/policies/secrets")" = 200 ] || die "update: $(cat "$WORK/.body")" || return 1
	p3=$(attest_password "$PORT2") && [ "$p3" = "$p1" ] || die "the update through the other replica changed the password: '$p3'" || return 1
	hash_via "$URL2" secrets >/dev/null && jq -r .policy "$WORK/.h" | grep -q -- "--updated" ||
		die "replica 2 does not serve the update"
}

# (b) 1,000 concurrent updates over both replicas, 100 rounds of 10 from the
# same predecessor: one winner a round, the others 409; both replicas then
# answer the winner's hash (a replica's caches do not serve the old one).
# PG_RACE_ROUNDS sets the rounds: test.sh's ASan run makes 30 (the count is
# not what ASan is there for).
t_replicas_race() {
	policy race | as_body >"$WORK/race.json"
	[ "$(as_a -X POST --data-binary @"$WORK/race.json" "$URL1/v1/policies")" = 201 ] || return 1
	local round i h won winner codes url transfers code
	h=$(hash_via "$URL2" race) || return 1
	# both replicas' caches hold the current answer (then after each round)
	[ "$(hash_via "$URL1" race)" = "$h" ] && [ "$(hash_via "$URL2" race)" = "$h" ] ||
		die "a replica does not answer $h" || return 1
	local tls=(-sk --tlsv1.3 --cert "$WORK/home-a/identity/cert.pem" --key "$WORK/home-a/identity/key.pem")
	for round in $(seq 1 "$ROUNDS"); do
		# ten updates at once from the same predecessor, five through each
		# replica: one curl running them in parallel (-Z), each on a
		# connection (and TLS session) of its own
		transfers=()
		for i in $(seq 0 9); do
			policy race "$h" "$round.$i" | as_body >"$WORK/r$i.json"
			url=$([ $((i % 2)) = 0 ] && echo "$URL1" || echo "$URL2")
			[ "$i" = 0 ] || transfers+=(--next)
			transfers+=("${tls[@]}" -X PUT --data-binary @"$WORK/r$i.json" -o "$WORK/r$i.out"
				-w "$i %{http_code}\n" "$url/v1/policies/race")
		done
		curl -sZ --no-progress-meter --parallel-immediate --parallel-max 10 "${transfers[@]}" >"$WORK/r.codes" 2>"$WORK/r.err"
		won=0 codes=
		while read -r i code; do
			codes+="$code "
			case $code in
			200) won=$((won + 1)) winner=$i ;;
			409) ;;
			*) die "round $round: update $i answered $code: $(cat "$WORK/r$i.out")" || return 1 ;;
			esac
		done <"$WORK/r.codes"
		[ "$(wc -l <"$WORK/r.codes")" = 10 ] || die "round $round: $(wc -l <"$WORK/r.codes") answers" || return 1
		[ "$won" = 1 ] || die "round $round: $won winners ($codes)" || return 1
		h=$(jq -r .hash "$WORK/r$winner.out")
		[ "$(hash_via "$URL1" race)" = "$h" ] && [ "$(hash_via "$URL2" race)" = "$h" ] ||
			die "round $round: the winner's update $h is not what both replicas answer" || return 1
		# the stored policy is the winner's own text
		jq -e --arg r "ROUND: \"$round.$winner\"" '.policy | contains($r)' "$WORK/.h" >/dev/null ||
			die "round $round: stored policy is not the winner's" || return 1
	done
	# exactly the winners' updates were applied: one per round, in the
	# database's audit chain (t_chain_after_race checks it further)
	[ "$(psql_q "SELECT count(*) FROM veil_audit WHERE line LIKE '%\"event\":\"update\",\"namespace\":\"race\"%'")" = "$ROUNDS" ] ||
		die "the audit chain does not hold $ROUNDS updates of race" || return 1
	# the same answer, byte for byte, through either replica
	as_a_to "$WORK/g1" "$URL1/v1/policies/race" >/dev/null && as_a_to "$WORK/g2" "$URL2/v1/policies/race" >/dev/null &&
		cmp -s "$WORK/g1" "$WORK/g2" || die "replicas answer differently"
}

# a load of reads and updates against URL in the background: each answer's
# status is a line in FILE
load() { # url file ns: GET and PUT in a loop, each answer's status a line of file
	local h code n=0 me=$WORK/load.$BASHPID # $$ would be the script's, the same in two loads
	while :; do
		n=$((n + 1))
		code=$(as_a_to "$me.g" "$1/v1/policies/$3")
		# empty: this curl was stopped by stop_load (a failed one says 000)
		[ -z "$code" ] || echo "$code" >>"$2"
		if [ "$code" = 200 ]; then
			h=$(jq -r .hash "$me.g")
			policy "$3" "$h" "load$n" | as_body >"$me.json"
			code=$(as_a_to "$me.u" -X PUT --data-binary @"$me.json" "$1/v1/policies/$3")
			[ -z "$code" ] || echo "$code" >>"$2"
		fi
		sleep 0.02
	done
}
# stops loads and the request each has in flight (a PUT answered after the
# caller compared the replicas would look like a disagreement)
stop_load() { # pid...
	local p
	for p; do
		pkill -P "$p" 2>/dev/null
		kill "$p" 2>/dev/null
	done
	wait "$@" 2>/dev/null
}

# (c) the database stopped under load: 503s that say why, no 500; after it
# restarts, requests succeed without restarting veil-cas
t_database_restart_under_load() {
	policy dbload | as_body >"$WORK/dbload.json"
	[ "$(as_a -X POST --data-binary @"$WORK/dbload.json" "$URL1/v1/policies")" = 201 ] || return 1
	load "$URL1" "$WORK/codes1" dbload &
	local lp=$!
	sleep 1
	pg_stop || { stop_load "$lp"; return 1; }
	sleep 2
	local code
	code=$(as_a "$URL1/v1/policies/dbload")
	[ "$code" = 503 ] && grep -q "the database is unavailable" "$WORK/.body" ||
		{ stop_load "$lp"; die "database down: $code $(cat "$WORK/.body")"; return 1; }
	[ "$(as_a "$URL2/readyz")" = 503 ] || { stop_load "$lp"; die "readyz with the database down"; return 1; }
	pg_start || { stop_load "$lp"; return 1; }
	sleep 2
	stop_load "$lp"
	grep -q '^503' "$WORK/codes1" || die "no 503 seen under load" || return 1
	! grep -qvE '^(200|409|503)$' "$WORK/codes1" || die "unexpected answers: $(sort "$WORK/codes1" | uniq -c)" || return 1
	tail -3 "$WORK/codes1" | grep -q '^200$' || die "no recovery: $(tail -5 "$WORK/codes1")" || return 1
	# both replicas serve again, and agree
	[ "$(hash_via "$URL1" dbload)" = "$(hash_via "$URL2" dbload)" ] || die "replicas disagree after the restart" || return 1
	policy dbload "$(hash_via "$URL2" dbload)" after | as_body >"$WORK/dbafter.json"
	[ "$(as_a -X PUT --data-binary @"$WORK/dbafter.json" "$URL2/v1/policies/dbload")" = 200 ] || die "update after restart"
}

# (d) kill -9 of one replica under load: the other keeps serving; the killed
# one starts again on its own log and audit head
t_replica_killed_under_load() {
	policy killload | as_body >"$WORK/killload.json"
	[ "$(as_a -X POST --data-binary @"$WORK/killload.json" "$URL2/v1/policies")" = 201 ] || return 1
	load "$URL1" "$WORK/codes-k1" killload &
	local l1=$!
	load "$URL2" "$WORK/codes-k2" killload &
	local l2=$!
	sleep 1.5
	kill -9 "${CAS_PIDS[r1]}"
	wait "${CAS_PIDS[r1]}" 2>/dev/null
	unset "CAS_PIDS[r1]"
	local from # the other replica's answers from here on (the load appends: no truncating under it)
	from=$(($(wc -l <"$WORK/codes-k2") + 1))
	sleep 2
	stop_load "$l1" "$l2"
	tail -n +"$from" "$WORK/codes-k2" >"$WORK/codes-k2.after"
	grep -q '^200$' "$WORK/codes-k2.after" || die "the other replica stopped serving" || return 1
	! grep -qvE '^(200|409)$' "$WORK/codes-k2.after" || die "other replica: $(sort "$WORK/codes-k2.after" | uniq -c)" || return 1
	start_replica r1 "$WORK/data1" "$PORT1" || die "the killed replica does not start again" || return 1
	[ "$(hash_via "$URL1" killload)" = "$(hash_via "$URL2" killload)" ] || die "replicas disagree"
}

# ---- the change chain in the database (schema 2, table veil_audit) ----
CHANGE_RE='"event":"(create|update|delete)"'
chain_export() { # file: the database's chain as audit.log lines
	"$CAS" audit export --store "$DB" -o "$1" 2>"$WORK/export.err" ||
		die "audit export: $(cat "$WORK/export.err")"
}
# what a replay of the chain's changes leaves: "namespace hash" lines, sorted
chain_replay() { # file
	jq -r 'select(.event == "create" or .event == "update" or .event == "delete")
		| [.event, .namespace, .detail] | @tsv' "$1" | awk -F'\t' '
		$1 == "delete" { delete h[$2]; next } { h[$2] = $3 }
		END { for (n in h) print n, h[n] }' | sort
}

# After the race over two replicas: one chain in the database, which
# veil audit verify accepts, exactly one update entry (status 200) per round
# winner, written by both replicas, seq 1..N without gaps, and whose replay
# ends in what the database stores; the replicas' own files hold no change.
t_chain_after_race() {
	chain_export "$WORK/chain.log" || return 1
	run "$VEIL" audit verify "$WORK/chain.log" && ok || return 1
	local n
	n=$(wc -l <"$WORK/chain.log")
	# (a replica's minute checkpoint may add a row after the export)
	[ "$n" -gt "$ROUNDS" ] && [ "$(psql_q "SELECT count(*) || ' ' || min(seq) || ' ' || max(seq) FROM veil_audit WHERE seq <= $n")" = "$n 1 $n" ] ||
		die "not one chain 1..$n: $(psql_q 'SELECT count(*), min(seq), max(seq) FROM veil_audit')" || return 1
	[ "$(grep -c '"event":"update","namespace":"race",.*"status":200,' "$WORK/chain.log")" = "$ROUNDS" ] &&
		[ "$(grep -c '"event":"update","namespace":"race"' "$WORK/chain.log")" = "$ROUNDS" ] ||
		die "not exactly the $ROUNDS winners' updates of race in the chain" || return 1
	[ "$(psql_q "SELECT count(DISTINCT replica) FROM veil_audit WHERE line LIKE '%\"event\":\"update\",\"namespace\":\"race\"%'")" = 2 ] ||
		die "the race's entries are not written by both replicas" || return 1
	# the winners' hashes, in order, end at the stored one
	[ "$(grep '"event":"update","namespace":"race"' "$WORK/chain.log" | tail -1 | jq -r .detail)" = "$(hash_via "$URL1" race)" ] ||
		die "the last update of race in the chain is not the stored hash" || return 1
	chain_replay "$WORK/chain.log" >"$WORK/replayed" || return 1
	psql_q "SELECT namespace || ' ' || hash FROM policies ORDER BY 1" | sort >"$WORK/stored"
	cmp -s "$WORK/replayed" "$WORK/stored" || die "replaying the chain does not end in the store: $(diff "$WORK/replayed" "$WORK/stored" | head -5)" || return 1
	! grep -qE "$CHANGE_RE" "$WORK/data1/audit.log" "$WORK/data2/audit.log" ||
		die "a change entry in a replica's request log" || return 1
	run "$CAS" audit verify --store "$DB" --data "$WORK/data2" && ok && has "entries, chain intact" || return 1
	[ "$(grep -o '[0-9]* entries, chain intact' <<<"$out" | cut -d' ' -f1)" -ge "$n" ] || die "verify: $out"
}

# A clean stop ends the chain with a checkpoint signed by the CAS key over
# the entry before it; veil-cas audit verify --data checks it.
t_chain_checkpoint_signed() {
	stop_replica r2 || return 1
	local last kh
	last=$(psql_q 'SELECT line FROM veil_audit ORDER BY seq DESC LIMIT 1')
	kh=$("$CAS" --print-key-hash --data "$WORK/data1" --store "$DB") || return 1
	[ "$(jq -r .event <<<"$last")" = checkpoint ] && jq -r .detail <<<"$last" | grep -q "key $kh signature " ||
		die "the chain does not end in a checkpoint by $kh: $last" || return 1
	[ "$(jq -r .detail <<<"$last" | cut -d' ' -f2,4)" = "$(($(jq -r .seq <<<"$last") - 1)) $(jq -r .prev <<<"$last")" ] ||
		die "the checkpoint does not sign the entry before it" || return 1
	run "$CAS" audit verify --store "$DB" --data "$WORK/data1" && ok && has "signed by the CAS key $kh" &&
		has "the last at entry $(jq -r .seq <<<"$last")" || return 1
	# a checkpoint by another key is refused (a CAS made elsewhere)
	mkdir -p "$WORK/stranger/tls" &&
		openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$WORK/stranger/tls/key.pem" \
			-out "$WORK/stranger/tls/cert.pem" -subj /CN=stranger -days 1 2>/dev/null || return 1
	run "$CAS" audit verify --store "$DB" --data "$WORK/stranger" && rejected && has "is not signed by this CAS's key" || return 1
	start_replica r2 "$WORK/data2" "$PORT2"
}

# Rows cut from the chain's end, checkpoints and all, leave a chain that
# verifies by itself; each replica writes the head it saw (at its
# checkpoints, at stop) into its own audit.log as a "chain-anchor", and
# veil-cas audit verify --data DIR finds the anchored entry gone.
t_chain_truncated_end() {
	stop_replica r1 && stop_replica r2 || return 1
	local a
	a=$(grep '"event":"chain-anchor"' "$WORK/data2/audit.log" | tail -1 | jq -r .detail | cut -d' ' -f2)
	[ -n "$a" ] && [ "$a" -gt 1 ] || die "no chain-anchor in data2/audit.log" || return 1
	[ "$(psql_q "SELECT max(seq) FROM veil_audit")" = "$a" ] || die "the anchor is not the chain's head" || return 1
	run "$CAS" audit verify --store "$DB" --data "$WORK/data2" && ok && has "the head the replica's audit.log anchors is in it" || return 1
	psql_q "CREATE TABLE cut AS SELECT * FROM veil_audit WHERE seq >= $((a - 1)); DELETE FROM veil_audit WHERE seq >= $((a - 1))" || return 1
	run "$CAS" audit verify --store "$DB" && ok || return 1 # the shortened chain, alone, verifies
	run "$CAS" audit verify --store "$DB" --data "$WORK/data2" && rejected &&
		has "before entry $a that $WORK/data2/audit.log anchors: entries were removed from its end" || return 1
	psql_q "INSERT INTO veil_audit SELECT * FROM cut; DROP TABLE cut" || return 1
	run "$CAS" audit verify --store "$DB" --data "$WORK/data2" && ok || return 1
	start_replica r1 "$WORK/data1" "$PORT1" && start_replica r2 "$WORK/data2" "$PORT2"
}

# A row changed in the table: veil audit verify of the export and veil-cas
# audit verify both name that entry; undone, the chain verifies again.
t_chain_tampered_row() {
	local k
	k=$(psql_q "SELECT min(seq) FROM veil_audit WHERE line LIKE '%\"event\":\"update\",\"namespace\":\"race\"%'")
	[ -n "$k" ] || return 1
	psql_q "UPDATE veil_audit SET line = replace(line, '\"status\":200,', '\"status\":201,') WHERE seq = $k" || return 1
	chain_export "$WORK/bad.log" || return 1
	run "$VEIL" audit verify "$WORK/bad.log" && rejected && has "bad.log:$k: entry changed" || return 1
	run "$CAS" audit verify --store "$DB" --data "$WORK/data1" && rejected && has "entry $k (replica " &&
		has "entry changed" || return 1
	psql_q "UPDATE veil_audit SET line = replace(line, '\"status\":201,', '\"status\":200,') WHERE seq = $k" || return 1
	run "$CAS" audit verify --store "$DB" && ok || return 1
	# a changed last entry is not extended: the next change is refused, not applied
	local h
	h=$(hash_via "$URL1" race) || return 1
	psql_q "UPDATE veil_audit SET line = replace(line, '\"seq\":', '\"seq\": ') WHERE seq = (SELECT max(seq) FROM veil_audit)" || return 1
	policy race "$h" tampered | as_body >"$WORK/rt.json"
	[ "$(as_a -X PUT --data-binary @"$WORK/rt.json" "$URL1/v1/policies/race")" = 500 ] && grep -q "audit chain cannot be written" "$WORK/.body" ||
		die "a change after a changed last entry: $(cat "$WORK/.body")" || return 1
	[ "$(hash_via "$URL2" race)" = "$h" ] || die "the refused change was stored" || return 1
	psql_q "UPDATE veil_audit SET line = replace(line, '\"seq\": ', '\"seq\":') WHERE seq = (SELECT max(seq) FROM veil_audit)" || return 1
	run "$CAS" audit verify --store "$DB" && ok
}

# A replica killed between its change's audit entry and the commit
# (VEIL_CAS_FAULT=before_commit): neither the change nor its entry is in
# the database, and the other replica writes on at once.
t_chain_killed_before_commit() {
	stop_replica r2 || return 1
	VEIL_CAS_FAULT=before_commit start_replica r2 "$WORK/data2" "$PORT2" || return 1
	local h before code
	h=$(hash_via "$URL1" race) || return 1
	before=$(psql_q "SELECT count(*) FROM veil_audit WHERE line NOT LIKE '%\"event\":\"checkpoint\"%'")
	policy race "$h" killed | as_body >"$WORK/rk.json"
	code=$(as_a -X PUT --data-binary @"$WORK/rk.json" "$URL2/v1/policies/race")
	wait "${CAS_PIDS[r2]}" 2>/dev/null
	unset "CAS_PIDS[r2]"
	[ "$code" = 000 ] || die "the update through the faulty replica answered $code" || return 1
	[ "$(hash_via "$URL1" race)" = "$h" ] || die "the killed change is stored" || return 1
	[ "$(psql_q "SELECT count(*) FROM veil_audit WHERE line NOT LIKE '%\"event\":\"checkpoint\"%'")" = "$before" ] ||
		die "the killed change left an entry: $(psql_q 'SELECT line FROM veil_audit ORDER BY seq DESC LIMIT 2')" || return 1
	policy race "$h" after-kill | as_body >"$WORK/ra.json"
	[ "$(as_a -X PUT --data-binary @"$WORK/ra.json" "$URL1/v1/policies/race")" = 200 ] || die "the other replica cannot write: $(cat "$WORK/.body")" || return 1
	start_replica r2 "$WORK/data2" "$PORT2" || return 1
	chain_export "$WORK/chain2.log" && run "$VEIL" audit verify "$WORK/chain2.log" && ok || return 1
	[ "$(grep '"event":"update","namespace":"race"' "$WORK/chain2.log" | tail -1 | jq -r .detail)" = "$(hash_via "$URL2" race)" ] ||
		die "the chain does not end at the stored hash of race"
}

# A database at schema 1 (the later tables dropped, their version rows
# removed, as before this veil-cas) is brought to 3 at the next start; the
# chain starts at the first change after it.
t_chain_migrates_from_schema_1() {
	stop_replica r1 && stop_replica r2 || return 1
	psql_q 'DROP TABLE veil_audit, veil_master_key, veil_replica_keys; DELETE FROM veil_schema WHERE version >= 2' || return 1
	run "$CAS" audit verify --store "$DB" && ok && has "0 entries, chain intact" || return 1
	start_replica r1 "$WORK/data1" "$PORT1" && start_replica r2 "$WORK/data2" "$PORT2" || return 1
	[ "$(psql_q 'SELECT max(version) FROM veil_schema')" = 3 ] && [ "$(psql_q 'SELECT count(*) FROM veil_audit')" = 0 ] ||
		die "not schema 2 with an empty chain" || return 1
	local h
	h=$(hash_via "$URL2" race) || return 1
	policy race "$h" migrated | as_body >"$WORK/rm.json"
	[ "$(as_a -X PUT --data-binary @"$WORK/rm.json" "$URL2/v1/policies/race")" = 200 ] || return 1
	chain_export "$WORK/chain3.log" && run "$VEIL" audit verify "$WORK/chain3.log" && ok && has "1 entries" || return 1
	jq -e '.seq == 1 and .event == "update" and .namespace == "race"' "$WORK/chain3.log" >/dev/null ||
		die "the first entry after the migration: $(cat "$WORK/chain3.log")"
}

# Backup and restore as docs/operations.md says: PostgreSQL's own tool
# (pg_dump) and a copy of one replica's data folder (the key material); a
# CAS on the copy, its store the dump restored into a new database, serves
# the same policy and releases the same secret to an attested start.
t_backup_restore_with_pg_dump() {
	local las_hash p0 p1 port3
	las_hash=$("$BUILD/veil-las" --print-key-hash --data "$WORK/las") || return 1
	stop_replica r2 && cp -a "$WORK/data2" "$WORK/restored" && rm "$WORK/restored/replica.id" || return 1
	start_replica r2 "$WORK/data2" "$PORT2" --trust-platform "$las_hash" || return 1
	p0=$(attest_password "$PORT2") || die "attest: $(cat "$WORK/att.out")" || return 1
	pg_as "$PGBIN/pg_dump" -h 127.0.0.1 -p "$PGPORT" -U veil -Fc -f "$PG/backup.dump" postgres ||
		die "pg_dump failed" || return 1
	pg_sql "$PGPORT" "CREATE DATABASE restored" >/dev/null &&
		pg_as "$PGBIN/pg_restore" -h 127.0.0.1 -p "$PGPORT" -U veil -d restored "$PG/backup.dump" ||
		die "pg_restore failed" || return 1
	port3=$(free_port)
	DB_SAVED=$DB
	DB="postgresql://veil@127.0.0.1:$PGPORT/restored"
	start_replica r3 "$WORK/restored" "$port3" --trust-platform "$las_hash"
	local started=$?
	DB=$DB_SAVED
	[ "$started" = 0 ] || die "no CAS on the restored database" || return 1
	[ "$(hash_via "https://127.0.0.1:$port3" secrets)" = "$(hash_via "$URL2" secrets)" ] ||
		die "the restored policy differs" || return 1
	p1=$(attest_password "$port3") || die "attest (restored): $(cat "$WORK/att.out")" || return 1
	[ ${#p0} = 32 ] && [ "$p1" = "$p0" ] || die "the restored CAS released another secret" || return 1
	stop_replica r3
}

# --store-timeout: a statement waiting for a lock held elsewhere, or a COMMIT
# waiting for a synchronous standby that is not there, ends in a 503 after
# the timeout instead of holding a worker (a promoted standby that kept
# synchronous_standby_names hung every worker before); the waited-for commit
# is not acknowledged, and a retry sees it applied (409). /metrics shows the
# store as this replica sees it.
t_store_timeout_and_metrics() {
	stop_replica r1 && start_replica r1 "$WORK/data1" "$PORT1" --store-timeout 1 || return 1
	policy slow | as_body >"$WORK/slow.json"
	[ "$(as_a -X POST --data-binary @"$WORK/slow.json" "$URL1/v1/policies")" = 201 ] || return 1
	local h code
	h=$(jq -r .hash "$WORK/.body")
	pg_sql "$PGPORT" "BEGIN; LOCK TABLE policies, veil_generation IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(5); COMMIT" >/dev/null &
	local lk=$!
	sleep 0.5
	code=$(as_a --max-time 20 "$URL1/v1/policies/slow")
	wait "$lk"
	[ "$code" = 503 ] && grep -q "the database is unavailable" "$WORK/.body" ||
		die "a read behind a held lock: $code $(cat "$WORK/.body")" || return 1
	[ "$(as_a "$URL1/v1/policies/slow")" = 200 ] || die "no read after the lock" || return 1
	# every COMMIT now waits for a standby that does not exist
	pg_sql "$PGPORT" "ALTER SYSTEM SET synchronous_standby_names = 'nonesuch'" &&
		pg_sql "$PGPORT" "SELECT pg_reload_conf()" >/dev/null || return 1
	sleep 0.5
	policy slow "$h" 2 | as_body >"$WORK/slow2.json"
	code=$(as_a --max-time 20 -X PUT --data-binary @"$WORK/slow2.json" "$URL1/v1/policies/slow")
	pg_sql "$PGPORT" "ALTER SYSTEM RESET synchronous_standby_names" &&
		pg_sql "$PGPORT" "SELECT pg_reload_conf()" >/dev/null || return 1
	[ "$code" = 503 ] || die "a commit waiting for a missing standby: $code $(cat "$WORK/.body")" || return 1
	[ "$(as_a "$URL1/readyz")" = 200 ] || die "readyz after the timeouts" || return 1
	# committed here though not acknowledged: the retry conflicts
	[ "$(as_a -X PUT --data-binary @"$WORK/slow2.json" "$URL1/v1/policies/slow")" = 409 ] ||
		die "the retry: $(cat "$WORK/.body")" || return 1
	[ "$(as_a "$URL1/metrics")" = 200 ] || return 1
	grep -qx "veil_cas_store_info{engine=\"postgresql\",role=\"primary\",server=\"127.0.0.1:$PGPORT\"} 1" "$WORK/.body" ||
		die "store info: $(grep store_info "$WORK/.body")" || return 1
	grep -qx "veil_cas_store_up 1" "$WORK/.body" || return 1
	local n
	# the held lock's read and the commit that waited for the standby
	n=$(sed -n 's/^veil_cas_store_timeouts_total //p' "$WORK/.body")
	[ "${n:-0}" -ge 2 ] || die "timeouts counted: '$n'" || return 1
	n=$(sed -n 's/^veil_cas_store_statement_seconds_count //p' "$WORK/.body")
	[ "${n:-0}" -ge 5 ] || die "statements counted: '$n'" || return 1
	n=$(sed -n 's/^veil_cas_store_connections{state="open"} //p' "$WORK/.body")
	[ "${n:-0}" -ge 2 ] || die "open connections: '$n'" || return 1
	grep -q '^veil_cas_store_connections{state="busy"} [0-9]' "$WORK/.body" || return 1
	grep -q '^veil_cas_store_reconnects_total [0-9]' "$WORK/.body"
}

t_stop() {
	stop_replica r1 && stop_replica r2 || return 1
	run "$VEIL" audit verify "$WORK/data1/audit.log" && ok || return 1
	run "$VEIL" audit verify "$WORK/data2/audit.log" && ok || return 1
	pg_stop
}

# TESTS="t_a t_b" runs t_setup and those only (for a look at one)
[ -n "${TESTS:-}" ] && { run_in_order pg t_setup $TESTS; exit; }
run_in_order pg t_setup t_bad_store_refused t_basic_flows t_tls_client_certificate t_init_on_populated_database_refused \
	t_second_replica t_secrets_same_through_either_replica t_replicas_race t_database_restart_under_load t_replica_killed_under_load \
	t_chain_after_race t_chain_checkpoint_signed t_chain_truncated_end t_chain_tampered_row t_chain_killed_before_commit \
	t_chain_migrates_from_schema_1 t_backup_restore_with_pg_dump t_store_timeout_and_metrics t_stop

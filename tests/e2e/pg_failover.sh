#!/usr/bin/env bash
# PostgreSQL failover under load (issue 13): a primary with a synchronous
# streaming standby, two veil-cas replicas on a multi-host URI with
# target_session_attrs=read-write, a writer updating one policy in a chain
# (each update names the last acknowledged hash as its predecessor) through
# both replicas. The primary is killed (-9) and the standby promoted
# (pg_ctl promote): requests during the switch fail cleanly (503), then
# succeed through the same veil-cas processes (no restart), and no
# acknowledged write is lost (the stored hash is the last one acknowledged:
# with the chain, a lost write would leave an older hash). Synchronous
# replication (synchronous_standby_names) is what makes an acknowledged
# commit survive the primary's loss; docs/operations.md says so.
# Everything on 127.0.0.1, PostgreSQL as nobody, every server stopped by PID.
# Usage: pg_failover.sh BUILD_DIR
set -u
BUILD=$(realpath "$1")
CAS=$BUILD/veil-cas
ROOT=${VEIL_SOURCE_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
WORK=$(mktemp -d)
chmod 711 "$WORK"
PG=$WORK/pg
declare -A CAS_PID=()
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
P1=$(free_port)
P2=$(free_port)
C1=$(free_port)
C2=$(free_port)
DB="postgresql://veil@127.0.0.1:$P1,127.0.0.1:$P2/postgres?target_session_attrs=read-write&connect_timeout=2"
cleanup() {
	local p
	for p in "${CAS_PID[@]}"; do kill -9 "$p" 2>/dev/null; done
	for p in "${CAS_PID[@]}"; do wait "$p" 2>/dev/null; done
	pg_server_kill_all
	rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 1' TERM INT

. "$ROOT/tests/e2e/lib.sh"

. "$ROOT/tests/e2e/lib_pg.sh"
pg_start() { pg_server_start "$PG" "$@"; } # name port [more server options]
psql_on() { pg_sql "$@"; }
cas_start() { # name data port
	local init=
	[ -e "$2/master.key" ] || init=--init
	"$CAS" --data "$2" $init --store "$DB" --listen "127.0.0.1:$3" --threads 2 \
		--log-level warn >"$WORK/$1.out" 2>"$WORK/$1.err" &
	CAS_PID[$1]=$!
	for _ in $(seq 600); do
		grep -q listening "$WORK/$1.out" 2>/dev/null && return 0
		kill -0 "${CAS_PID[$1]}" 2>/dev/null || break
		sleep 0.05
	done
	cat "$WORK/$1.err" >&2
	return 1
}
req() { # port method path [body-file]: prints the status, the body in $WORK/.b
	curl -sk --tlsv1.3 --max-time 15 --cert "$WORK/id/cert.pem" --key "$WORK/id/key.pem" \
		-o "$WORK/.b" -w '%{http_code}' -X "$2" ${4:+--data-binary @"$4"} "https://127.0.0.1:$1$3"
}
policy_json() { # predecessor round
	{
		echo "name: fo"
		echo 'version: "0.3"'
		echo "access_policy: {read: [CREATOR], update: [CREATOR]}"
		[ -n "$1" ] && echo "predecessor: $1"
		echo "services:"
		echo "  - name: app"
		echo "    command: app"
		echo "    mrenclaves: [$(printf '%064d' 0)]"
		echo "    environment: {ROUND: \"$2\", PW: \"\$\$SCONE::pw\$\$\"}"
		echo "secrets:"
		echo "  - {name: pw, kind: ascii, size: 12}"
	} | jq -Rs '{policy: .}'
}

t_setup() {
	pg_init "$PG" primary || die "initdb failed" || return 1
	# an acknowledged commit is on the standby's disk too
	printf '%s\n' "wal_level = replica" "max_wal_senders = 4" "synchronous_standby_names = '*'" \
		"synchronous_commit = on" | pg_as tee -a "$PG/primary/postgresql.conf" >/dev/null
	pg_start primary "$P1" || return 1
	pg_as "$PGBIN/pg_basebackup" -h 127.0.0.1 -p "$P1" -U veil -D "$PG/standby" -R -X stream >/dev/null ||
		die "pg_basebackup failed" || return 1
	# promoted, it has no standby of its own: it must not wait for one at
	# every commit (its configuration is the primary's copy)
	pg_start standby "$P2" "-c synchronous_standby_names=''" || return 1
	local s=
	for _ in $(seq 200); do
		s=$(psql_on "$P1" "SELECT sync_state FROM pg_stat_replication")
		[ "$s" = sync ] && break
		sleep 0.05
	done
	[ "$s" = sync ] || die "the standby is not a synchronous standby: '$s'" || return 1
	mkdir -p "$WORK/id" &&
		openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=fo \
			-keyout "$WORK/id/key.pem" -out "$WORK/id/cert.pem" 2>/dev/null || return 1
	cas_start r1 "$WORK/d1" "$C1" || die "replica 1 did not start" || return 1
	kill "${CAS_PID[r1]}" && wait "${CAS_PID[r1]}" 2>/dev/null
	cp -a "$WORK/d1" "$WORK/d2" && rm -f "$WORK/d2/replica.id"
	cas_start r1 "$WORK/d1" "$C1" && cas_start r2 "$WORK/d2" "$C2" ||
		die "the replicas did not start" || return 1
	policy_json "" 0 >"$WORK/p.json"
	[ "$(req "$C1" POST /v1/policies "$WORK/p.json")" = 201 ] || die "create: $(cat "$WORK/.b")" || return 1
	jq -r .hash "$WORK/.b" >"$WORK/acked"
}

# the writer: updates in a chain, alternating replicas, until $WORK/stop
writer() {
	local i=0 port st last
	while [ ! -e "$WORK/stop" ]; do
		i=$((i + 1))
		port=$C1
		[ $((i % 2)) = 0 ] && port=$C2
		last=$(tail -1 "$WORK/acked")
		policy_json "$last" "$i" >"$WORK/w.json"
		st=$(req "$port" PUT /v1/policies/fo "$WORK/w.json")
		case $st in
		200) jq -r .hash "$WORK/.b" >>"$WORK/acked" ;;
		503) echo "$i 503 $(date +%s.%N)" >>"$WORK/unavailable" ;;
		409)
			# a commit whose answer was lost (the connection went with the
			# primary) may have been applied: take the stored hash as acked
			echo "$i 409" >>"$WORK/conflicts"
			[ "$(req "$port" GET /v1/policies/fo)" = 200 ] && jq -r .hash "$WORK/.b" >>"$WORK/acked"
			;;
		*) echo "$i $st $(cat "$WORK/.b")" >>"$WORK/errors" ;;
		esac
	done
}

t_failover_under_load() {
	: >"$WORK/unavailable"
	: >"$WORK/errors"
	: >"$WORK/conflicts"
	rm -f "$WORK/stop"
	writer &
	local wpid=$! before after n0
	sleep 2
	n0=$(wc -l <"$WORK/acked")
	[ "$n0" -gt 5 ] || die "only $n0 writes before the failover" || return 1
	# the primary's machine is gone: the postmaster and every backend at
	# once (a SIGKILL of the postmaster alone leaves its backends running,
	# one of them waiting for the standby's acknowledgment forever)
	pg_server_kill primary
	sleep 1
	pg_as "$PGBIN/pg_ctl" -D "$PG/standby" promote -w >/dev/null || die "promote failed" || return 1
	before=$(wc -l <"$WORK/acked")
	# the writer goes on through the same processes
	for _ in $(seq 300); do
		after=$(wc -l <"$WORK/acked")
		[ "$after" -ge $((before + 20)) ] && break
		sleep 0.1
	done
	touch "$WORK/stop"
	wait "$wpid"
	echo "    writes acknowledged: $n0 before the kill, $after in all; 503s: $(wc -l <"$WORK/unavailable"); 409s: $(wc -l <"$WORK/conflicts")"
	[ ! -s "$WORK/errors" ] || die "answers other than 200, 409 or 503: $(head -3 "$WORK/errors")" || return 1
	[ "$after" -ge $((before + 20)) ] || die "no writes after the promotion ($before -> $after)" || return 1
	kill -0 "${CAS_PID[r1]}" && kill -0 "${CAS_PID[r2]}" || die "a replica exited" || return 1
	# no acknowledged write lost: the store holds the last one, through either replica
	local want got1 got2
	want=$(tail -1 "$WORK/acked")
	[ "$(req "$C1" GET /v1/policies/fo)" = 200 ] && got1=$(jq -r .hash "$WORK/.b") || return 1
	[ "$(req "$C2" GET /v1/policies/fo)" = 200 ] && got2=$(jq -r .hash "$WORK/.b") || return 1
	[ "$got1" = "$want" ] && [ "$got2" = "$want" ] ||
		die "acknowledged $want, stored $got1 / $got2" || return 1
	# and the promoted server is the one answering
	[ "$(psql_on "$P2" "SELECT pg_is_in_recovery()")" = f ] || die "the standby was not promoted"
}

run_in_order pg-failover t_setup t_failover_under_load

# PostgreSQL 15 from Debian for the tests and benchmarks (tests/e2e/pg.sh,
# pg_failover.sh, bench/soak.sh): a server in a folder of the caller's temp
# folder, on 127.0.0.1 with the port given, run as nobody when we are root
# (PostgreSQL refuses root), stopped by PID. Sourced; defines functions and
# PG_PIDS (server name -> postmaster PID) only, exits nothing.
#
#   pg_init DIR NAME            initdb DIR/NAME (DIR made and given to nobody),
#                               superuser veil, trust authentication
#   pg_server_start DIR NAME PORT [SERVER-OPTIONS]
#                               pg_ctl start; sockets in DIR, log DIR/NAME.log
#   pg_server_stop NAME         fast shutdown by PID (sessions ended), waited for
#   pg_server_kill NAME         kill -9 of the postmaster and its backends (a crash)
#   pg_server_kill_all          pg_server_kill of every server still up (cleanup)
#   pg_sql PORT SQL             psql -XAtq as veil on 127.0.0.1:PORT
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
declare -gA PG_PIDS=()

pg_as() {
	if [ "$(id -u)" = 0 ]; then
		setpriv --reuid=nobody --regid=nogroup --clear-groups -- "$@"
	else
		"$@"
	fi
}

pg_init() { # dir name
	[ -x "$PGBIN/initdb" ] || {
		echo "no PostgreSQL 15 at $PGBIN (apt-get install postgresql-15)" >&2
		return 1
	}
	mkdir -p "$1" || return 1
	[ "$(id -u)" != 0 ] || chown nobody:nogroup "$1" || return 1
	pg_as "$PGBIN/initdb" -D "$1/$2" -U veil --auth=trust -E UTF8 --no-locale >/dev/null || {
		echo "initdb of $1/$2 failed" >&2
		return 1
	}
}

pg_server_start() { # dir name port [server options]
	pg_as "$PGBIN/pg_ctl" -D "$1/$2" -l "$1/$2.log" -w -t 60 \
		-o "-p $3 -k $1 -c listen_addresses=127.0.0.1 ${4:-}" start >/dev/null || {
		tail -5 "$1/$2.log" >&2
		return 1
	}
	PG_PIDS[$2]=$(head -1 "$1/$2/postmaster.pid")
}

pg_server_stop() { # name
	local p=${PG_PIDS[$1]:-}
	[ -n "$p" ] || return 0
	kill -INT "$p" 2>/dev/null
	for _ in $(seq 600); do
		kill -0 "$p" 2>/dev/null || break
		sleep 0.05
	done
	if kill -0 "$p" 2>/dev/null; then
		echo "PostgreSQL $1 ($p) did not stop" >&2
		return 1
	fi
	unset "PG_PIDS[$1]"
}

# The backends too: a postmaster killed alone leaves them serving their
# sessions (found by pg_failover.sh).
pg_server_kill() { # name
	local p=${PG_PIDS[$1]:-}
	[ -n "$p" ] || return 0
	kill -9 "$p" $(ps -o pid= --ppid "$p") 2>/dev/null
	for _ in $(seq 200); do
		kill -0 "$p" 2>/dev/null || break
		sleep 0.05
	done
	unset "PG_PIDS[$1]"
}

pg_server_kill_all() {
	local n
	for n in "${!PG_PIDS[@]}"; do pg_server_kill "$n"; done
}

pg_sql() { # port sql
	pg_as "$PGBIN/psql" -h 127.0.0.1 -p "$1" -U veil -d postgres -XAtq -c "$2"
}

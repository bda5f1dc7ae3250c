#!/usr/bin/env bash
# Attacks on what veil-run hands the program (issue 9, L2 and M7), each
# performed for real against veil-las, veil-cas and veil-run on loopback;
# every scenario expects the attack to fail. Root (mount namespaces, /python,
# setpriv). Usage: attack_inject.sh BUILD_DIR
#
# Seen against the code before the fix (commit 447dc8d, 2026-12-02):
# - L2: an injection path whose folder was a symbolic link into /dev/shm got
#   the file with the password written there (no CAP_SYS_ADMIN: the folder is
#   memory-backed, so it was accepted) and, with a private mount namespace, an
#   empty mount point created there; one through a link to /proc/sys/kernel
#   was mounted over /proc/sys/kernel/hostname (the program saw the mount)
#   although paths in /proc are refused.
# - M7: a process of the program's uid, started like it, read PW=<password>
#   from /proc/<pid>/environ; a policy had no way to name another uid
#   ("unknown key 'user' in build").
set -u
BUILD=$(realpath "$1")
VEIL=$BUILD/veil
ROOT=${VEIL_SOURCE_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
# veil apply builds each service's image too; with no registry here its base is
# "scratch" (veil's layers alone: docs/images.md)
export VEIL_BASE=scratch
WORK=$(mktemp -d)
PORT=$((20000 + RANDOM % 20000))
URL=https://127.0.0.1:$PORT
# the container's ordinary uid, and the dedicated one a policy names
NEIGHBOUR_UID=${NEIGHBOUR_UID:-4242}
PROGRAM_UID=${PROGRAM_UID:-64123}
export VEIL_HOME=$WORK/home
pids=()
made_python=
SHM=
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
	wait 2>/dev/null
	[ -n "$made_python" ] && rmdir /python 2>/dev/null
	[ -n "$SHM" ] && rm -rf "$SHM"
	rm -rf "$WORK"
}
trap cleanup EXIT
. "$ROOT/tests/e2e/lib.sh"

# veil-run as a pod would run it: only the SCONE_* settings, the files at /python
start_service() { # [extra env or a command prefix...]
	unshare -m --propagation private bash -c '
		mount --bind "$1" /python || exit 97
		shift
		exec env -i "$@"' _ "$WORK/files" \
		SCONE_CONFIG_ID=inject/app SCONE_CAS_ADDR=127.0.0.1:$PORT \
		SCONE_LAS_ADDR="$WORK/las.sock" VEIL_CAS_KEY="$CAS_KEY" VEIL_IMAGE_ROOT="$(test_image_root)" "$@" "$BUILD/veil-run"
}
no_sys_admin=(setpriv --bounding-set=-sys_admin --inh-caps=-sys_admin)
# a process of the container's ordinary uid, with what veil-run needs (the
# neighbour is started the same way: same uid, same capabilities)
as_neighbour=(setpriv --reuid="$NEIGHBOUR_UID" --regid="$NEIGHBOUR_UID" --clear-groups
	--inh-caps=+sys_admin,+setuid,+setgid,+chown --ambient-caps=+sys_admin,+setuid,+setgid,+chown)
as_plain_neighbour=(setpriv --reuid="$NEIGHBOUR_UID" --regid="$NEIGHBOUR_UID" --clear-groups)

# service INJECTION_PATH [build lines...]: applies the service and its mesh
service() {
	local conf=$1 extra=
	shift
	for l in "$@"; do extra+="  $l"$'\n'; done
	cat >"$WORK/app/service.yaml" <<YML
apiVersion: veil/v1
kind: genservice
environment:
  local:
    - name: PW
      value: "\$\$SCONE::pw\$\$"
    - name: CONF
      value: $conf
    - name: WAIT
      value: "${WAIT:-no}"
secrets:
  local:
    - name: pw
      kind: ascii
      size: 24
injection_files:
  - path: $conf
    content: "password=\$\$SCONE::pw\$\$\\n"
build:
  name: inject
  to: veil.test/inject:1
  pwd: /python
  command: python3 probe.py
  copy:
    - probe.py
$extra
YML
	cd "$WORK/app" || return 1
	run env VEIL_RUNTIME="$BUILD/veil-run" "$VEIL" apply -f service.yaml --no-push && ok || return 1
	printf 'apiVersion: veil/v1\nkind: mesh\ncas:\n  - {name: cas, cas_url: 127.0.0.1, tolerance: "--only_for_testing-trust-any --only_for_testing-debug --only_for_testing-ignore-signer"}\npolicy: {namespace: inject, tolerate: [insecure-unpinned-files]}\nservices:\n  - {name: app, image: "veil.test/inject:1"}\n' >Meshfile
	run "$VEIL" apply -f Meshfile --mode debug --cas "$URL" && ok
}

t_setup() {
	[ "$(id -u)" = 0 ] || die "needs root for the mount namespace" || return 1
	command -v setpriv >/dev/null || die "needs setpriv" || return 1
	if [ ! -d /python ]; then mkdir /python && made_python=1; fi
	# the neighbour's uid reaches veil-las's socket
	chmod 0755 "$WORK"
	SHM=$(mktemp -d /dev/shm/veil-l2.XXXXXX) || return 1
	"$BUILD/veil-las" --socket "$WORK/las.sock" --data "$WORK/las" >"$WORK/las.out" 2>"$WORK/las.err" &
	pids+=($!)
	wait_for "$WORK/las.out" "platform key hash" || die "veil-las did not start" || return 1
	chmod 0666 "$WORK/las.sock"
	"$BUILD/veil-cas" --init --data "$WORK/cas" --listen "127.0.0.1:$PORT" --threads 2 \
		--trust-platform "$("$BUILD/veil-las" --print-key-hash --data "$WORK/las")" >"$WORK/cas.out" 2>"$WORK/cas.err" &
	pids+=($!)
	wait_for "$WORK/cas.out" "key hash" || die "veil-cas did not start" || return 1
	CAS_KEY=$("$BUILD/veil-cas" --print-key-hash --data "$WORK/cas")
	mkdir -p "$WORK/files" "$WORK/app" "$WORK/l2" || return 1
	chmod 0755 "$WORK/files"
	# the probe: the SHA-256 of its password (the ground truth), who it runs
	# as, whether it reads its injection file, what is mounted there
	cat >"$WORK/files/probe.py" <<'PY'
import hashlib, os, time
pw = os.environ["PW"]
print("PW sha256", hashlib.sha256(pw.encode()).hexdigest())
print("ids", os.getuid(), os.geteuid(), os.getgid(), os.getegid(), "groups", ",".join(map(str, os.getgroups())) or "none")
for line in open("/proc/self/status"):
    if line.startswith(("CapPrm", "CapEff", "CapAmb")):
        print(line.split()[0], line.split()[1])
conf = os.environ["CONF"]
try:
    print("conf", "matches" if open(conf).read() == "password=%s\n" % pw else "differs")
except OSError as e:
    print("conf unreadable", e.strerror)
for line in open("/proc/self/mountinfo"):
    f = line.split()
    if f[4] in (conf, os.path.realpath(conf)):
        print("mounted", f[4])
if os.environ.get("WAIT") == "yes":
    print("pid", os.getpid(), flush=True)
    time.sleep(3)
PY
	chmod 0644 "$WORK/files/probe.py"
	cp "$WORK/files/probe.py" "$WORK/app/" || return 1
	service "$WORK/l2/etc/app.conf" || return 1
	run start_service && ok && has "PW sha256" && has "conf matches" || return 1
}

# ---- L2: injection paths do not follow symbolic links ----

# without CAP_SYS_ADMIN the file is written into its (memory-backed) folder:
# through a link, that was the host's /dev/shm
t_l2_link_into_dev_shm_writes_nothing() {
	ln -sfn "$SHM" "$WORK/l2/shm" || return 1
	local conf=$WORK/l2/shm/app.conf
	service "$conf" || return 1
	run start_service "${no_sys_admin[@]}"
	local left
	left=$(ls -A "$SHM")
	if [ -n "$left" ]; then
		die "written through the link into $SHM: $left ($(grep -c password= "$SHM"/* 2>/dev/null) with the password)"
		rm -f "$SHM"/*
		return 1
	fi
	rejected && has "injection file $conf" && has "symbolic link" && lacks "PW sha256"
}

# with a private mount namespace: not even an empty mount point through the link
t_l2_link_into_dev_shm_private() {
	ln -sfn "$SHM" "$WORK/l2/shm" || return 1
	local conf=$WORK/l2/shm/app.conf
	service "$conf" || return 1
	run start_service
	local left
	left=$(ls -A "$SHM")
	if [ -n "$left" ]; then
		die "created through the link in $SHM: $left"
		rm -f "$SHM"/*
		return 1
	fi
	rejected && has "injection file $conf" && has "symbolic link" && lacks "PW sha256"
}

# a link onto /proc/sys/kernel: the /proc rule checks the path as written
t_l2_link_onto_proc_hostname() {
	ln -sfn /proc/sys/kernel "$WORK/l2/kern" || return 1
	local conf=$WORK/l2/kern/hostname
	service "$conf" || return 1
	run start_service
	lacks "mounted /proc/sys/kernel/hostname" || return 1
	rejected && has "injection file $conf" && has "symbolic link" && lacks "PW sha256"
}

# the last component as a link (was refused before too), and a plain path
t_l2_plain_path_still_works() {
	ln -sfn "$SHM/x" "$WORK/l2/last.conf" || return 1
	service "$WORK/l2/last.conf" || return 1
	run start_service && rejected && has "symbolic link" && lacks "PW sha256" || return 1
	[ -z "$(ls -A "$SHM")" ] || die "created in $SHM" || return 1
	service "$WORK/l2/etc/app.conf" || return 1
	run start_service && ok && has "conf matches" && has "mounted $WORK/l2/etc/app.conf"
}

# ---- M7: the program's environment is not readable by its neighbours ----

# starts the program (the rest of the arguments: a command prefix) in the
# background; sets $bg_pid (veil-run's) and $prog_pid (the program's)
start_waiting() {
	start_service "$@" >"$WORK/bg.out" 2>"$WORK/bg.err" &
	bg_pid=$!
	pids+=("$bg_pid")
	wait_for "$WORK/bg.out" "^pid " || { die "the program did not start: $(cat "$WORK/bg.err" "$WORK/bg.out")"; return 1; }
	prog_pid=$(sed -n 's/^pid //p' "$WORK/bg.out")
}

# the neighbour reads /proc/PID/environ; sets $out/$err/$rc
neighbour_reads() { # prefix...
	"$@" cat "/proc/$prog_pid/environ" 2>"$WORK/.err" | tr '\0' '\n' >"$WORK/.out"
	rc=${PIPESTATUS[0]}
	out=$(cat "$WORK/.out")
	err=$(cat "$WORK/.err")
}

# without a dedicated uid a process of the same uid reads the secret: the
# reason the policy's user field exists (this is the attack, shown to work
# here, so the scenario below proves something)
t_m7_same_uid_neighbour_reads_environ() {
	WAIT=yes service "$WORK/l2/etc/app.conf" || return 1
	start_waiting "${as_neighbour[@]}" || return 1
	neighbour_reads "${as_neighbour[@]}"
	wait "$bg_pid"
	grep -q "^ids $NEIGHBOUR_UID $NEIGHBOUR_UID" "$WORK/bg.out" || die "the program ran as: $(grep ^ids "$WORK/bg.out")" || return 1
	grep -q '^PW=' <<<"$out" || die "the same-uid neighbour could not read the environment ($err)"
}

t_m7_dedicated_uid_neighbour_refused() {
	WAIT=yes service "$WORK/l2/etc/app.conf" "user: $PROGRAM_UID" "group: $PROGRAM_UID" || return 1
	start_waiting "${as_neighbour[@]}" || return 1
	neighbour_reads "${as_neighbour[@]}"
	local n_out=$out n_err=$err
	neighbour_reads "${as_plain_neighbour[@]}"
	local p_out=$out p_err=$err
	wait "$bg_pid"
	local prog
	prog=$(cat "$WORK/bg.out" "$WORK/bg.err")
	grep -q "^ids $PROGRAM_UID $PROGRAM_UID $PROGRAM_UID $PROGRAM_UID groups none" <<<"$prog" ||
		die "the program ran as: $prog" || return 1
	# it reads its injection file, and cannot get its start's privileges back
	grep -q "^conf matches" <<<"$prog" || die "the program: $prog" || return 1
	grep -q "^CapEff: 0000000000000000" <<<"$prog" && grep -q "^CapPrm: 0000000000000000" <<<"$prog" &&
		grep -q "^CapAmb: 0000000000000000" <<<"$prog" || die "the program kept capabilities: $prog" || return 1
	if grep -q '^PW=' <<<"$n_out"$'\n'"$p_out"; then
		die "the neighbour (uid $NEIGHBOUR_UID) read the program's environment"
		return 1
	fi
	grep -q "Permission denied" <<<"$n_err" && grep -q "Permission denied" <<<"$p_err" ||
		die "expected permission denied: $n_err / $p_err"
}

# veil-run that cannot switch (no CAP_SETUID) refuses rather than running the
# program under the neighbours' uid
t_m7_cannot_switch_refused() {
	service "$WORK/l2/etc/app.conf" "user: $PROGRAM_UID" || return 1
	run start_service setpriv --reuid="$NEIGHBOUR_UID" --regid="$NEIGHBOUR_UID" --clear-groups \
		--inh-caps=+sys_admin,+chown --ambient-caps=+sys_admin,+chown
	rejected && has "the policy runs the program as uid $PROGRAM_UID, gid $PROGRAM_UID: veil-run (uid $NEIGHBOUR_UID) cannot switch" && lacks "PW sha256" || return 1
	# nor can it give the program its injection file
	run start_service setpriv --reuid="$NEIGHBOUR_UID" --regid="$NEIGHBOUR_UID" --clear-groups \
		--inh-caps=+sys_admin,+setuid,+setgid --ambient-caps=+sys_admin,+setuid,+setgid
	rejected && has "cannot give it to uid $PROGRAM_UID, gid $PROGRAM_UID" && lacks "PW sha256"
}

# uid 0 is no separation; group without user neither
t_m7_policy_refuses_root_and_lone_group() {
	service "$WORK/l2/etc/app.conf" "user: 0" 2>/dev/null && die "user: 0 accepted" && return 1
	has "build: user 0 is root's" || return 1
	service "$WORK/l2/etc/app.conf" "group: $PROGRAM_UID" 2>/dev/null && die "a group without a user accepted" && return 1
	has "build: 'group' needs 'user'"
}

# ONLY="t_x t_y" runs those scenarios after the setup
# shellcheck disable=SC2086
run_in_order attack_inject t_setup ${ONLY:-t_l2_link_into_dev_shm_writes_nothing \
	t_l2_link_into_dev_shm_private t_l2_link_onto_proc_hostname t_l2_plain_path_still_works \
	t_m7_same_uid_neighbour_reads_environ t_m7_dedicated_uid_neighbour_refused \
	t_m7_cannot_switch_refused t_m7_policy_refuses_root_and_lone_group}

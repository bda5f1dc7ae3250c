#!/usr/bin/env bash
# The fresh-machine check: runs both README commands, as root, in a new Debian
# 12 (bookworm) minbase root filesystem holding nothing but what mmdebstrap's
# minbase gives and this clone's tracked files. A package that setup.sh fails
# to install is missing there, so the check fails.
#
#   scripts/fresh-check.sh [demo|test|all]   (default: all; .ci/run runs this)
#
# Runs scripts/demo.sh, then scripts/test.sh, inside the rootfs; prints one
# final "N passed, N failed" line (the demo counts as one test, and that it
# built without cmocka as another; test.sh adds its own count) and exits 1 on
# any failure.
#
# Host side: root, mmdebstrap (installed if missing), network to Debian's
# mirror and the npm registry. Kept between runs in $VEIL_CI_CACHE (default
# /var/cache/veil-ci), outside the clone:
#   bookworm-minbase.tar  the rootfs, made again when missing or older than
#                         $VEIL_CI_ROOTFS_DAYS days (default 7)
#   apt-archives/         apt's downloaded .debs (bind-mounted onto the
#                         rootfs's /var/cache/apt/archives)
#   npm/                  npm's download cache (onto /root/.npm)
#   python-base/          the python base image tests/e2e/registry.sh pushes
#                         (scripts/base-image.sh, made here on the host;
#                         bind-mounted read-only onto the same path inside)
# Only downloads are cached: every run extracts a new rootfs and installs,
# configures and builds everything again.
#
# Isolation: the rootfs runs in its own mount and PID namespaces; /proc is the
# new PID namespace's, /sys and /dev are bind mounts, and nothing else from
# the host is visible (no host /usr, no build folders: the clone's tracked
# files are copied, not mounted). When the script ends, on any path, the
# namespace's processes are killed, its mounts vanish with it, and the rootfs
# is removed. The host's CA bundle is copied in as /etc/ssl/veil-ci-host-ca.crt
# with NODE_EXTRA_CA_CERTS naming it: npm inside needs it where the network
# re-signs TLS. KEEP=1 keeps the rootfs folder.
set -u
what=${1:-all}
case $what in
demo | test | all) ;;
--in-namespace) ;;
*)
	echo "usage: $0 [demo|test|all]" >&2
	exit 2
	;;
esac

# --- inside the new mount and PID namespaces (see the end of this file) ----
if [ "$what" = --in-namespace ]; then
	r=$2 cache=$3 what=$4
	set -e
	# the rootfs as a mount point of its own: unshare -m inside (demo.sh, the
	# attest tests) cannot make a non-mount-point root private
	mount --bind "$r" "$r"
	mount -t proc proc "$r/proc"
	mount --rbind /sys "$r/sys"
	mount --rbind /dev "$r/dev"
	mkdir -p "$r/var/cache/apt/archives" "$r/root/.npm"
	mount --bind "$cache/apt-archives" "$r/var/cache/apt/archives"
	mount --bind "$cache/npm" "$r/root/.npm"
	# (not fatal: without it, the registry test's base-image scenario fails alone)
	if [ -f "$cache/python-base/index.json" ]; then
		mkdir -p "$r/var/cache/veil-ci/python-base" &&
			mount --bind "$cache/python-base" "$r/var/cache/veil-ci/python-base" &&
			mount -o remount,bind,ro "$r/var/cache/veil-ci/python-base" ||
			echo "fresh-check: warning: cannot mount the python base image" >&2
	fi
	set +e
	# A login-like environment: nothing of the host's but TERM and the CA.
	in_root() {
		chroot "$r" /usr/bin/env -i HOME=/root USER=root LOGNAME=root TERM="${TERM:-dumb}" \
			PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
			NODE_EXTRA_CA_CERTS=/etc/ssl/veil-ci-host-ca.crt \
			/bin/bash -c 'cd /root/veil && exec "$@"' _ "$@"
	}
	pass=0 fail=0
	if [ "$what" = demo ] || [ "$what" = all ]; then
		echo "fresh-check: \$ scripts/demo.sh"
		t0=$(date +%s)
		if in_root scripts/demo.sh; then
			pass=$((pass + 1))
			echo "fresh-check: ok   demo ($(($(date +%s) - t0)) s)"
		else
			fail=$((fail + 1))
			echo "fresh-check: FAIL demo ($(($(date +%s) - t0)) s)"
		fi
		# the demo's build must not need the test tools (unit tests are
		# optional): cmocka is installed only by scripts/test.sh
		if in_root dpkg-query -W -f='${Status}\n' libcmocka-dev 2>/dev/null |
			grep -q "install ok installed"; then
			fail=$((fail + 1))
			echo "fresh-check: FAIL demo installed cmocka (setup.sh without --test must not)"
		elif [ -x "$r/root/veil/build/veil" ] && [ ! -e "$r/root/veil/build/tests/test_ytree" ]; then
			pass=$((pass + 1))
			echo "fresh-check: ok   demo built veil without cmocka (no unit tests in build/)"
		else
			fail=$((fail + 1))
			echo "fresh-check: FAIL demo: no build/veil, or unit tests built without cmocka"
		fi
	fi
	if [ "$what" = test ] || [ "$what" = all ]; then
		echo "fresh-check: \$ scripts/test.sh"
		t0=$(date +%s)
		in_root scripts/test.sh 2>&1 | tee "$r/../test.log"
		st=${PIPESTATUS[0]}
		line=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$r/../test.log" | tail -1)
		p=${line%% *}
		q=${line#*, }
		q=${q%% *}
		p=${p:-0}
		q=${q:-0}
		# a crash before the count, or a count that disagrees with the status
		if [ "$st" -ne 0 ] && [ "$q" -eq 0 ]; then q=1; fi
		if [ "$st" -eq 0 ] && { [ "$q" -ne 0 ] || [ "$p" -eq 0 ]; }; then q=$((q + 1)); fi
		pass=$((pass + p))
		fail=$((fail + q))
		echo "fresh-check: test.sh exit $st, $p passed, $q failed ($(($(date +%s) - t0)) s)"
	fi
	echo "$pass $fail" >"$r/../result"
	exit 0
fi

# --- on the host ------------------------------------------------------------
root=$(cd "$(dirname "$0")/.." && pwd)
cache=${VEIL_CI_CACHE:-/var/cache/veil-ci}
rootfs_tar=$cache/bookworm-minbase.tar
mirror=http://deb.debian.org/debian
start=$(date +%s)
say() { echo "fresh-check: $*"; }
die() {
	echo "fresh-check: error: $*" >&2
	echo "0 passed, 1 failed"
	exit 1
}

[ "$(id -u)" -eq 0 ] || die "run as root (mmdebstrap, chroot, mounts)"
if ! command -v mmdebstrap >/dev/null; then
	say "installing mmdebstrap on the host"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends mmdebstrap ||
		die "cannot install mmdebstrap"
fi
mkdir -p "$cache/apt-archives/partial" "$cache/npm" || die "cannot create $cache"

if [ -z "$(find "$rootfs_tar" -type f -mtime -"${VEIL_CI_ROOTFS_DAYS:-7}" 2>/dev/null)" ]; then
	say "making the Debian 12 minbase rootfs: $rootfs_tar"
	t0=$(date +%s)
	# (mmdebstrap picks the output format by the name's extension)
	mmdebstrap --quiet --variant=minbase bookworm "$cache/new-rootfs.tar" \
		"deb $mirror bookworm main" "deb $mirror bookworm-updates main" \
		"deb http://deb.debian.org/debian-security bookworm-security main" ||
		{ rm -f "$cache/new-rootfs.tar"; die "mmdebstrap failed"; }
	mv "$cache/new-rootfs.tar" "$rootfs_tar"
	say "rootfs made in $(($(date +%s) - t0)) s"
fi

# the python base image (a download, like the rootfs): made on the host,
# where the mirror is reached and mmdebstrap runs as it should
if ! command -v umoci >/dev/null; then
	say "installing umoci on the host"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends umoci ||
		die "cannot install umoci"
fi
VEIL_CI_CACHE=$cache "$root/scripts/base-image.sh" >/dev/null || die "scripts/base-image.sh failed"

work=$(mktemp -d /var/tmp/veil-fresh.XXXXXX) || die "mktemp"
ns_pid=
cleanup() {
	# unshare --kill-child kills the namespace's PID 1, which takes every
	# process of it along; the mounts are only visible inside the namespace,
	# so removing the folder cannot reach /dev or the caches
	[ -n "$ns_pid" ] && kill -KILL "$ns_pid" 2>/dev/null && wait "$ns_pid" 2>/dev/null
	if grep -qF " $work/" /proc/self/mounts; then
		echo "fresh-check: error: mounts left under $work; not removing it" >&2
	elif [ -n "${KEEP:-}" ]; then
		say "keeping $work (KEEP is set)"
	else
		rm -rf "$work"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
r=$work/root
mkdir "$r" && tar -xf "$rootfs_tar" -C "$r" || die "cannot extract $rootfs_tar"
# the clone's tracked files, as a fresh clone would have them
mkdir "$r/root/veil" &&
	(cd "$root" && git ls-files -z | tar --null -T - -cf -) | tar -xf - -C "$r/root/veil" ||
	die "cannot copy the clone's tracked files"
mkdir -p "$r/etc/ssl" && cp /etc/ssl/certs/ca-certificates.crt "$r/etc/ssl/veil-ci-host-ca.crt" ||
	die "no CA bundle at /etc/ssl/certs/ca-certificates.crt"
cp /etc/resolv.conf "$r/etc/resolv.conf" || die "cannot copy /etc/resolv.conf"
# what every installed machine (the installer) and container runtime writes,
# and minbase lacks: without it "localhost" does not resolve at all
[ -s "$r/etc/hosts" ] || printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n' >"$r/etc/hosts"
say "rootfs ready in $work ($(($(date +%s) - start)) s)"

unshare --mount --pid --fork --kill-child --propagation private -- \
	"$root/scripts/fresh-check.sh" --in-namespace "$r" "$cache" "$what" &
ns_pid=$!
wait "$ns_pid"
ns_pid=
read -r pass fail 2>/dev/null <"$work/result" || { pass=0 fail=1; }
say "total $(($(date +%s) - start)) s"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ] && [ "$pass" -gt 0 ]

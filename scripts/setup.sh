#!/usr/bin/env bash
# Installs what veil needs on Debian 12 (as root) and builds it into build/.
# Usage: scripts/setup.sh [--test]   (--test adds the test tools)
# Prints one line per step; a failing step prints its whole output and exits 1.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
# to build and run veil (demo.sh: util-linux's unshare and mount are in every
# Debian 12 system; jq reads the built image's index to unpack it), scdoc
# for the man pages, libpq-dev (veil-cas --store postgresql://...) and
# libp11-kit-dev for pkcs11.h (veil-cas's PKCS#11 master keys: the header
# only, the module is loaded at run time)
pkgs=(gcc libc6-dev meson ninja-build pkg-config libyaml-dev libssl-dev libevent-dev
	libsqlite3-dev libpq-dev libjansson-dev libcurl4-openssl-dev libc-ares-dev libarchive-dev zlib1g-dev python3 openssl ca-certificates scdoc
	jq libp11-kit-dev)
if [ "${1:-}" = "--test" ]; then
	# unit tests, fuzzers, format check, CAS e2e (curl, sqlite3, jq, strace),
	# attest e2e (ps), man page check (groff, man), k8s chart checks (node and
	# npm; unzip for helm and kubectl from an npm package's zip), the systemd
	# units' check (systemd-analyze), the attack tests (gdb's gcore: a core of
	# veil-cas; e2fsprogs: a loop-mounted ext4 image changed behind veil-las's
	# cache; bindfs: a FUSE-served veil-run), the image and registry e2e
	# (skopeo and umoci read and make the OCI layouts veil writes; Debian's
	# docker-registry on loopback; mmdebstrap makes the python base image), the
	# podman e2e (rootful podman with runc), the independent evidence verifiers
	# (tests/evidence/check_*.py: python3-cryptography), the PostgreSQL store's
	# e2e (tests/e2e/pg.sh: PostgreSQL 15's initdb and pg_ctl), the PKCS#11 e2e
	# (tests/e2e/hsm.sh: softhsm2, a software token)
	pkgs+=(postgresql-15 python3-cryptography libcmocka-dev clang libclang-rt-14-dev clang-format curl sqlite3 procps groff-base jq
		man-db strace gdb e2fsprogs bindfs skopeo umoci unzip systemd docker-registry mmdebstrap
		podman runc softhsm2)
	# Debian's nodejs ships npm separately; nodesource's nodejs bundles it
	# (and conflicts with Debian's npm), so ask for npm only without one.
	command -v node >/dev/null || pkgs+=(nodejs)
	command -v npm >/dev/null || pkgs+=(npm)
fi

log=$(mktemp)
trap 'rm -f "$log"' EXIT
# step MESSAGE CMD...: one line of progress; the command's output only if it fails
step() {
	local msg=$1
	shift
	echo "setup: $msg"
	if ! "$@" >"$log" 2>&1; then
		cat "$log" >&2
		echo "setup: failed: $msg ($*)" >&2
		exit 1
	fi
}

missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	if [ "$(id -u)" -ne 0 ]; then
		echo "setup: error: run as root, or install: ${missing[*]}" >&2
		exit 1
	fi
	export DEBIAN_FRONTEND=noninteractive
	step "updating the package lists (apt-get update)" apt-get update
	step "installing ${missing[*]}" apt-get install -y --no-install-recommends "${missing[@]}"
fi
if [ ! -f "$root/build/build.ninja" ]; then
	rm -rf "$root/build" # what a failed configuration left
	step "configuring build/ (meson setup)" meson setup "$root/build" "$root"
fi
step "building build/ (ninja)" ninja -C "$root/build"

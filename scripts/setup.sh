#!/usr/bin/env bash
# Installs what veil needs on Debian 12 (as root) and builds it into build/.
# Usage: scripts/setup.sh [--test]   (--test adds the test tools)
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
pkgs=(gcc meson ninja-build pkg-config libyaml-dev libssl-dev libevent-dev libsqlite3-dev
	libjansson-dev libcurl4-openssl-dev python3 openssl)
if [ "${1:-}" = "--test" ]; then
	pkgs+=(libcmocka-dev clang libclang-rt-14-dev clang-format nodejs curl sqlite3)
fi
missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	echo "installing: ${missing[*]}"
	if [ "$(id -u)" -ne 0 ]; then
		echo "error: run as root (or install: ${missing[*]})" >&2
		exit 1
	fi
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
if [ "${1:-}" = "--test" ] && ! command -v npm >/dev/null; then
	# Debian's own nodejs ships npm separately
	apt-get install -y -qq --no-install-recommends npm >/dev/null
fi
if [ ! -f "$root/build/build.ninja" ]; then
	meson setup "$root/build" "$root" >/dev/null
fi
ninja -C "$root/build"

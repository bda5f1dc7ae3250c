#!/usr/bin/env bash
# The python base image the tests (and the demo) push to a loopback registry,
# so a build pulls its base like a user would: a Debian 12 (bookworm) minbase
# root filesystem with python3-minimal, made with mmdebstrap from Debian's
# packages and written as an OCI image layout (umoci) holding one image named
# "bookworm-python3" (Cmd python3, linux/amd64).
#
# Kept between runs in $VEIL_CI_CACHE (default /var/cache/veil-ci), outside
# the clone, like scripts/fresh-check.sh:
#   apt-archives/           downloaded .deb files (shared with fresh-check.sh)
#   python-base/            the OCI image layout; remade when older than
#                           $VEIL_CI_ROOTFS_DAYS days (default 7) or with --force
# Only the .deb downloads are reused for a new image; the mirror is the one
# fresh-check.sh uses. Root: mmdebstrap and umoci keep the files' owners.
# Prints the layout's path on stdout, progress on stderr.
# Usage: scripts/base-image.sh [--force]
set -eu
cache=${VEIL_CI_CACHE:-/var/cache/veil-ci}
layout=$cache/python-base
image=bookworm-python3
mirror=http://deb.debian.org/debian
say() { echo "base-image: $*" >&2; }
die() {
	echo "base-image: error: $*" >&2
	exit 1
}

if [ "${1:-}" != --force ] && [ -f "$layout/index.json" ] &&
	[ -n "$(find "$layout/index.json" -mtime -"${VEIL_CI_ROOTFS_DAYS:-7}" 2>/dev/null)" ]; then
	echo "$layout"
	exit 0
fi
[ "$(id -u)" -eq 0 ] || die "run as root (mmdebstrap keeps the files' owners)"
for t in mmdebstrap umoci; do
	command -v $t >/dev/null || die "$t is missing (scripts/setup.sh --test installs it)"
done
mkdir -p "$cache/apt-archives/partial" || die "cannot create $cache"
work=$(mktemp -d "$cache/.base-image.XXXXXX")
trap 'rm -rf "$work"' EXIT

say "making a Debian 12 rootfs with python3-minimal (mmdebstrap)"
t0=$(date +%s)
# The .debs already downloaded are copied in before apt runs and the new ones
# copied out after (mmdebstrap's documented cache hooks); fixed timestamps
# (SOURCE_DATE_EPOCH) so the same packages give the same layer.
SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-1700000000} \
	mmdebstrap --quiet --variant=minbase --include=python3-minimal --skip=download/empty \
	--setup-hook='mkdir -p "$1"/var/cache/apt/archives/' \
	--setup-hook="sync-in $cache/apt-archives/ /var/cache/apt/archives/" \
	--customize-hook="sync-out /var/cache/apt/archives/ $cache/apt-archives/" \
	bookworm "$work/rootfs.tar" \
	"deb $mirror bookworm main" "deb $mirror bookworm-updates main" \
	"deb http://deb.debian.org/debian-security bookworm-security main" >&2 ||
	die "mmdebstrap failed"
say "rootfs made in $(($(date +%s) - t0)) s ($(du -m "$work/rootfs.tar" | cut -f1) MiB)"

umoci init --layout "$work/layout" >&2
umoci new --image "$work/layout:$image" >&2
umoci raw add-layer --image "$work/layout:$image" "$work/rootfs.tar" >&2
umoci config --image "$work/layout:$image" --os linux --architecture amd64 \
	--config.cmd python3 --config.env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin >&2
umoci gc --layout "$work/layout" >&2
rm -rf "$layout.old"
[ -d "$layout" ] && mv "$layout" "$layout.old"
mv "$work/layout" "$layout"
rm -rf "$layout.old"
say "OCI layout $layout ($image)"
echo "$layout"

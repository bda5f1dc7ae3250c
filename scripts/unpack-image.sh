#!/usr/bin/env bash
# Unpacks the image of an OCI layout veil built (its one manifest's layers, in
# order) into a folder: the tree veil-run's whole-image check is pointed at
# when it runs on the host, not in the image (VEIL_IMAGE_ROOT; the demo, the
# e2e tests, bench/run_start.sh). veil's images carry no whiteouts on the
# "scratch" base; a base with whiteouts wants `umoci unpack`.
# Usage: unpack-image.sh OCI_LAYOUT_DIR DEST_DIR
set -eu
[ $# -eq 2 ] || { echo "usage: unpack-image.sh OCI_LAYOUT_DIR DEST_DIR" >&2; exit 2; }
oci=$1
dest=$2
manifest=$(jq -r '.manifests[0].digest' "$oci/index.json")
mkdir -p "$dest"
for layer in $(jq -r '.layers[].digest' "$oci/blobs/sha256/${manifest#sha256:}"); do
	tar -xzf "$oci/blobs/sha256/${layer#sha256:}" -C "$dest"
done

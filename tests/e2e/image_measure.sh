#!/usr/bin/env bash
# The whole image is what is measured (issue 10 item 2; docs/images.md,
# "Measurement"): the record `veil apply` writes as the image's last layer
# lists every folder, file and link of the root file system the layers make
# (whiteouts honoured), reproducibly; its SHA-256 is the policy's image_root;
# veil-run checks the unpacked image against it before the program starts,
# against veil-las and veil-cas on loopback: a changed stdlib-like file, an
# added file, a changed or malformed record are each refused, and a record
# the CAS does not know releases nothing. Root (mount namespaces, /python).
# Usage: image_measure.sh BUILD_DIR
set -u
BUILD=$(realpath "$1")
VEIL=$BUILD/veil
ROOT=${VEIL_SOURCE_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
SEED=$ROOT/examples/python-hello-user
WORK=$(mktemp -d)
chmod 755 "$WORK"
PORT=$((20000 + RANDOM % 20000))
URL=https://127.0.0.1:$PORT
export VEIL_HOME=$WORK/home
export VEIL_RUNTIME=$BUILD/veil-run
unset VEIL_BASE SOURCE_DATE_EPOCH VEIL_IMAGE_ROOT
NAME=python_hello_user
OCI=target/images/$NAME/oci
pids=()
made_python=
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
	wait 2>/dev/null
	[ -n "$made_python" ] && rmdir /python 2>/dev/null
	rm -rf "$WORK"
}
trap cleanup EXIT
. "$ROOT/tests/e2e/lib.sh"

# veil-run as a pod would run it, its image check pointed at $IMG (an
# unpacked copy of the image)
start_service() {
	unshare -m --propagation private bash -c '
		mount --bind "$1" /python || exit 97
		shift
		exec env -i "$@"' _ "$WORK/files" \
		SCONE_CONFIG_ID=myPythonApp/pythonapp SCONE_CAS_ADDR=127.0.0.1:$PORT \
		SCONE_LAS_ADDR="$WORK/las.sock" VEIL_CAS_KEY="$CAS_KEY" SCONE_LOG=info \
		VEIL_IMAGE_ROOT="$IMG" ${RECORD:+VEIL_IMAGE_RECORD=$RECORD} "$BUILD/veil-run"
}

# the record's "f" entries as "SHA256 PATH" lines, paths unescaped
record_files() {
	grep '^f ' "$1" | while read -r _ _ _ sha path; do printf '%s %b\n' "$sha" "$path"; done | LC_ALL=C sort
}
last_audit() { tail -1 "$WORK/cas/audit.log"; }

IMG=
t_setup() {
	[ "$(id -u)" = 0 ] || die "needs root for the mount namespace" || return 1
	if [ ! -d /python ]; then mkdir /python && made_python=1; fi
	"$BUILD/veil-las" --socket "$WORK/las.sock" --data "$WORK/las" >"$WORK/las.out" 2>"$WORK/las.err" &
	pids+=($!)
	wait_for "$WORK/las.out" "platform key hash" || die "veil-las did not start" || return 1
	"$BUILD/veil-cas" --init --data "$WORK/cas" --listen "127.0.0.1:$PORT" --threads 2 \
		--trust-platform "$("$BUILD/veil-las" --print-key-hash --data "$WORK/las")" >"$WORK/cas.out" 2>"$WORK/cas.err" &
	pids+=($!)
	wait_for "$WORK/cas.out" "key hash" || die "veil-cas did not start" || return 1
	CAS_KEY=$("$BUILD/veil-cas" --print-key-hash --data "$WORK/cas")
	# a base of two layers: the second deletes a file of the first (a whiteout)
	cd "$WORK" || return 1
	umoci init --layout base >/dev/null && umoci new --image base:v1 >/dev/null || return 1
	umoci unpack --rootless --image base:v1 bundle >/dev/null 2>&1 || return 1
	local r=bundle/rootfs
	mkdir -p $r/etc $r/bin $r/usr/lib/python3/enc "$r/usr/share/odd dir" || return 1
	echo base >$r/etc/motd && cp /bin/true $r/bin/ && ln -s true $r/bin/alias &&
		printf 'def f():\n    return 1\n' >$r/usr/lib/python3/mod.py &&
		echo gone >$r/usr/lib/python3/gone.py && echo x >$r/usr/lib/python3/enc/__init__.py &&
		echo odd >"$r/usr/share/odd dir/a file" && chmod 0750 $r/usr/lib/python3/enc || return 1
	umoci repack --image base:v1 bundle >/dev/null || return 1
	rm -rf bundle && umoci unpack --rootless --image base:v1 bundle >/dev/null 2>&1 || return 1
	rm $r/usr/lib/python3/gone.py || return 1
	umoci repack --image base:v1 bundle >/dev/null &&
		umoci config --image base:v1 --config.cmd /bin/sh --os linux --architecture amd64 >/dev/null || return 1
	rm -rf bundle
	mkdir -p app files && cp "$SEED/service.yaml" "$SEED/print_env.py" app/ && cp "$SEED/print_env.py" files/ || return 1
	cd app || return 1
	run "$VEIL" apply -f service.yaml --base oci:../base:v1 --no-push && ok && has "image root     " || return 1
	umoci unpack --rootless --image "$OCI:latest" "$WORK/unpacked" >/dev/null 2>&1 || die "umoci unpack failed" || return 1
	run "$VEIL" apply -f "$SEED/Meshfile" --mode debug --cas "$URL" && ok && has "created namespace myPythonApp"
}

# every regular file of the unpacked root file system, with its SHA-256; every
# folder and link; nothing else (the record itself excluded)
t_record_lists_every_file() {
	local r=$WORK/unpacked/rootfs rec=$WORK/unpacked/rootfs/etc/veil/image-measurement
	cd "$WORK/app" || return 1
	[ "$(head -1 "$rec")" = "veil-image-measurement 1" ] || die "no header: $(head -1 "$rec")" || return 1
	record_files "$rec" >"$WORK/rec.files"
	(cd "$r" && find . -type f ! -path ./etc/veil/image-measurement -printf '%P\0' |
		xargs -0 sha256sum | sed 's|^\([0-9a-f]*\)  |\1 /|' | LC_ALL=C sort) >"$WORK/find.files"
	diff -u "$WORK/find.files" "$WORK/rec.files" >&2 || die "the record's files are not the image's" || return 1
	[ "$(wc -l <"$WORK/rec.files")" -ge 7 ] || die "too few files: $(cat "$WORK/rec.files")" || return 1
	grep -qF '/usr/share/odd\x20dir/a\x20file' "$rec" || die "a name with spaces is not escaped" || return 1
	[ "$(grep -c '^d ' "$rec")" = "$(find "$r" -type d | wc -l)" ] || die "folders differ" || return 1
	grep -qx 'l true /bin/alias' "$rec" || die "the link is missing" || return 1
	grep -q '^d 0750 [0-9a-f]* /usr/lib/python3/enc$' "$rec" || die "a folder's mode is not recorded" || return 1
	# a folder's listing hash, recomputed with the shell one-liner of the format
	local want
	want=$(cd "$r/usr/lib/python3" && find . -mindepth 1 -maxdepth 1 -printf '%f\0' | LC_ALL=C sort -z | sha256sum | cut -d' ' -f1)
	grep -qx "d 0755 $want /usr/lib/python3" "$rec" || die "the listing hash of /usr/lib/python3 is not $want" || return 1
	grep -qx 'x /proc' "$rec" && grep -qx 'x /etc/veil/image-measurement' "$rec" || die "exclusions not listed" || return 1
	# the image root: the record's SHA-256, in measurement.yaml and the policy
	local root
	root=$(sha256sum "$rec" | cut -d' ' -f1)
	grep -qx "image_root: $root" target/images/$NAME/measurement.yaml || die "measurement.yaml lacks image_root $root" || return 1
	grep -qx "    image_root: $root" target/policies/myPythonApp.yaml || die "the policy lacks image_root $root" || return 1
	run "$VEIL" apply -f service.yaml --base oci:../base:v1 --no-push -o json && ok || return 1
	[ "$(jq -r '.items[0].image_root' <<<"$out")" = "$root" ] || die "-o json lacks image_root: $out" || return 1
}

t_whiteout_honoured() {
	grep -q ' /usr/lib/python3/gone.py$' "$WORK/unpacked/rootfs/etc/veil/image-measurement" &&
		die "a file deleted by a later layer is listed" && return 1
	# it is in the base's first layer
	local m l found=
	m=$(jq -r '.manifests[0].digest' "$WORK/base/index.json")
	for l in $(jq -r '.layers[].digest' "$WORK/base/blobs/sha256/${m#sha256:}"); do
		tar -tzf "$WORK/base/blobs/sha256/${l#sha256:}" | grep -q '/\.wh\.gone\.py$' && found=1
	done
	[ -n "$found" ] || die "the base has no whiteout of gone.py" || return 1
}

# the same inputs from another folder and target: the same record and root
t_two_builds_same_record() {
	mkdir -p "$WORK/other/deep" && cp -r "$WORK/app/service.yaml" "$WORK/app/print_env.py" "$WORK/other/" || return 1
	touch -d '2001-02-03 04:05:06' "$WORK/other/print_env.py"
	cd "$WORK/other/deep" || return 1
	run "$VEIL" apply -f ../service.yaml --base "oci:$WORK/base:v1" -t "$WORK/t2" --no-push && ok || return 1
	local a b
	a=$(grep '^image_root:' "$WORK/app/target/images/$NAME/measurement.yaml")
	b=$(grep '^image_root:' "$WORK/t2/images/$NAME/measurement.yaml")
	[ -n "$a" ] && [ "$a" = "$b" ] || die "two builds: '$a' and '$b'" || return 1
	umoci unpack --rootless --image "$WORK/t2/images/$NAME/oci:latest" "$WORK/unpacked2" >/dev/null 2>&1 || return 1
	cmp "$WORK/unpacked/rootfs/etc/veil/image-measurement" "$WORK/unpacked2/rootfs/etc/veil/image-measurement" ||
		die "the records differ" || return 1
	rm -rf "$WORK/unpacked2"
}

# the folder of an injection file (a memory volume in the chart) is excluded,
# written as a record path even when the manifest spells it oddly
t_injection_folder_excluded() {
	mkdir -p "$WORK/inj" && cp "$WORK/app/print_env.py" "$WORK/inj/" || return 1
	{ cat "$WORK/app/service.yaml"; printf 'injection_files:\n  - path: /etc//backend/db.conf\n    content: "x"\n'; } >"$WORK/inj/service.yaml"
	cd "$WORK/inj" || return 1
	run "$VEIL" apply -f service.yaml --base oci:../base:v1 --no-push && ok || return 1
	umoci unpack --rootless --image "$OCI:latest" "$WORK/unpacked3" >/dev/null 2>&1 || return 1
	local rec=$WORK/unpacked3/rootfs/etc/veil/image-measurement
	grep -qx 'x /etc/backend' "$rec" || die "no exclusion of /etc/backend: $(grep '^x' "$rec")" || return 1
	"$BUILD/tests/veil-image-verify" "$WORK/unpacked3/rootfs" >/dev/null || die "the record does not verify" || return 1
	rm -rf "$WORK/unpacked3"
}

# a fresh copy of the unpacked image for each start
fresh_image() {
	rm -rf "$WORK/img" && cp -a "$WORK/unpacked/rootfs" "$WORK/img" && IMG=$WORK/img
}

t_verified_start() {
	fresh_image || return 1
	run start_service && ok && has "API_USER = myself" && has "API_PASSWORD is set (10 characters)" || return 1
	has "image verified: " || return 1
	last_audit | grep -qF '"event":"release"' || die "no release: $(last_audit)" || return 1
}

t_changed_stdlib_file_refused() {
	fresh_image || return 1
	printf 'X' | dd of="$IMG/usr/lib/python3/mod.py" bs=1 seek=5 conv=notrunc 2>/dev/null
	run start_service && rejected || return 1
	has "image file /usr/lib/python3/mod.py changed" && lacks "API_USER" || return 1
	# refused after the release: veil-run reports it to the CAS
	last_audit | grep -qF '"event":"start-refused"' && last_audit | grep -qF '/usr/lib/python3/mod.py' ||
		die "no start-refused entry: $(last_audit)" || return 1
}

t_changed_binary_and_link_refused() {
	fresh_image || return 1
	printf 'X' | dd of="$IMG/bin/true" bs=1 seek=200 conv=notrunc 2>/dev/null
	run start_service && rejected && has "image file /bin/true changed" && lacks "API_USER" || return 1
	fresh_image || return 1
	ln -sfn /usr/bin/false "$IMG/bin/alias"
	run start_service && rejected && has "image symbolic link /bin/alias changed" && lacks "API_USER" || return 1
	fresh_image || return 1
	chmod 4755 "$IMG/bin/true"
	run start_service && rejected && has "image file /bin/true: mode 4755, measured 0755" || return 1
}

t_added_file_refused() {
	fresh_image || return 1
	echo 'import os' >"$IMG/usr/lib/python3/sitecustomize.py"
	run start_service && rejected || return 1
	has "image folder /usr/lib/python3: its entries differ" && lacks "API_USER" || return 1
	# a file where an excluded path is, or in /tmp, changes nothing
	fresh_image || return 1
	mkdir -p "$IMG/tmp" "$IMG/proc" && echo x >"$IMG/tmp/scratch" && echo h >"$IMG/etc/hosts"
	run start_service && ok && has "API_USER = myself"
}

# a record changed after the build (a line removed, so the changed file is
# not checked): the CAS refuses the image root, nothing is released
t_changed_record_refused_by_cas() {
	fresh_image || return 1
	local rec=$IMG/etc/veil/image-measurement
	grep -v ' /usr/lib/python3/mod.py$' "$rec" >"$WORK/rec.new" && cat "$WORK/rec.new" >"$rec" || return 1
	local before
	before=$(grep -c '"event":"release"' "$WORK/cas/audit.log")
	run start_service && rejected || return 1
	has "image_root" && has "does not match policy myPythonApp/pythonapp" && lacks "API_USER" || return 1
	last_audit | grep -qF '"event":"refuse"' && last_audit | grep -qF 'image_root' ||
		die "no refuse entry naming image_root: $(last_audit)" || return 1
	[ "$(grep -c '"event":"release"' "$WORK/cas/audit.log")" = "$before" ] || die "something was released" || return 1
	# no record at all: no image root is sent, and the policy wants one
	rm "$rec"
	run start_service && rejected && has "image_root (none)" && lacks "API_USER" || return 1
}

t_malformed_record_refused() {
	fresh_image || return 1
	local rec=$IMG/etc/veil/image-measurement
	printf 'f 0644 1 zz /a\n' >>"$rec"
	run start_service && rejected || return 1
	has "image measurement record, line" && has "a hash that is not 64 lower-case hex digits" && lacks "API_USER" || return 1
	fresh_image || return 1
	sed -i '1s/.*/veil-image-measurement 9/' "$rec"
	run start_service && rejected && has "not a veil-image-measurement 1 record" || return 1
	# the record's path is read beneath the root, links not followed
	fresh_image || return 1
	mv "$rec" "$IMG/etc/veil/real" && ln -s real "$rec"
	run start_service && rejected && has "cannot read the image measurement record" && lacks "API_USER" || return 1
}

run_in_order image_measure t_setup t_record_lists_every_file t_whiteout_honoured t_two_builds_same_record \
	t_injection_folder_excluded \
	t_verified_start t_changed_stdlib_file_refused t_changed_binary_and_link_refused t_added_file_refused \
	t_changed_record_refused_by_cas t_malformed_record_refused

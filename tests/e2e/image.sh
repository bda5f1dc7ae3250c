#!/usr/bin/env bash
# The image `veil apply -f service.yaml` builds (docs/images.md): the seed's
# service on a small base made here with umoci (no network), read back by
# skopeo and umoci; reproducible digests; and base layouts that are missing,
# corrupt or malformed, each refused with a clear error and nothing written
# in target/images/<name>/oci (the old image kept). Root only for the
# unreadable-file case (it drops to nobody). Usage: image.sh BUILD_DIR
set -u
BUILD=$(realpath "$1")
VEIL=$BUILD/veil
ROOT=${VEIL_SOURCE_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
SEED=$ROOT/examples/python-hello-user
WORK=$(mktemp -d)
chmod 755 "$WORK"
trap 'rm -rf "$WORK"' EXIT
export VEIL_RUNTIME=$BUILD/veil-run
export VEIL_IMAGE_ROOT=$ROOT/tests/e2e/golden/rootfs
unset VEIL_BASE SOURCE_DATE_EPOCH
. "$ROOT/tests/e2e/lib.sh"

NAME=python_hello_user
OCI=target/images/$NAME/oci

# a writable copy of the seed's service
seed_copy() {
	mkdir -p "$1"
	cp "$SEED/service.yaml" "$SEED/print_env.py" "$1/"
}
digest_of() { # target folder: the digest index.json names
	jq -r '.manifests[0].digest' "$1/images/$NAME/oci/index.json"
}
sha() { sha256sum "$1" | cut -d' ' -f1; }
tree_sum() { (cd "$1" && find . -type f -print0 | sort -z | xargs -0 -r sha256sum); }

# The base: a layout with a tiny root filesystem, an environment and a Cmd
# (which the build must drop), made with umoci alone.
t_setup() {
	cd "$WORK" || return 1
	umoci init --layout base >/dev/null && umoci new --image base:v1 >/dev/null || return 1
	umoci unpack --rootless --image base:v1 bundle >/dev/null 2>&1 || return 1
	mkdir -p bundle/rootfs/etc bundle/rootfs/bin && echo base >bundle/rootfs/etc/motd &&
		cp /bin/true bundle/rootfs/bin/ || return 1
	umoci repack --image base:v1 bundle >/dev/null &&
		umoci config --image base:v1 --config.env PATH=/usr/bin:/bin --config.cmd /bin/sh \
			--os linux --architecture amd64 >/dev/null || return 1
	rm -rf bundle
	seed_copy "$WORK/app"
}

t_seed_image_builds() {
	cd "$WORK/app" || return 1
	run "$VEIL" apply -f service.yaml --base oci:../base:v1 --no-push && ok || return 1
	has "image digest   sha256:" && has "image layout   $OCI (tag latest, base oci:../base:v1)" || return 1
	[ "$(digest_of target)" = "$(grep -o 'sha256:[0-9a-f]*' <<<"$out" | tail -1)" ] ||
		die "the digest printed is not index.json's" || return 1
	[ "$(jq -r '.manifests[0].annotations["org.opencontainers.image.ref.name"]' $OCI/index.json)" = latest ] ||
		die "index.json's ref.name is not build.to's tag" || return 1
	run skopeo inspect --config "oci:$OCI:latest" && ok || return 1
	local cfg=$out
	[ "$(jq -c .config.Entrypoint <<<"$cfg")" = '["/usr/lib/veil/veil-run"]' ] || die "entrypoint: $cfg" || return 1
	[ "$(jq -c .config.Cmd <<<"$cfg")" = null ] || die "a Cmd is left: $cfg" || return 1
	[ "$(jq -c .config.Env <<<"$cfg")" = '["PATH=/usr/bin:/bin","VEIL_FILES_DIR=/python"]' ] || die "Env: $cfg" || return 1
	[ "$(jq -r .config.WorkingDir <<<"$cfg")" = /python ] || die "WorkingDir: $cfg" || return 1
	[ "$(jq -r .created <<<"$cfg")" = 1970-01-01T00:00:00Z ] || die "created: $cfg" || return 1
	[ "$(jq '.rootfs.diff_ids | length' <<<"$cfg")" = 4 ] || die "diff_ids: $cfg" || return 1
	run skopeo inspect "oci:$OCI:latest" && ok || return 1
	[ "$(jq '.Layers | length' <<<"$out")" = 4 ] || die "layers: $out" || return 1
	# the base layer is the base's blob, byte for byte
	local base_layer
	base_layer=$(jq -r '.manifests[0].digest' ../base/index.json | cut -d: -f2)
	base_layer=$(jq -r '.layers[0].digest' "../base/blobs/sha256/$base_layer")
	[ "$(jq -r '.Layers[0]' <<<"$out")" = "$base_layer" ] || die "base layer not reused" || return 1
	cmp -s "../base/blobs/sha256/${base_layer#sha256:}" "$OCI/blobs/sha256/${base_layer#sha256:}" ||
		die "base layer bytes differ" || return 1
	# skopeo copies it whole (every blob checked) and the digest stays
	skopeo copy -q "oci:$OCI:latest" "oci:$WORK/copied:latest" >/dev/null 2>&1 || die "skopeo copy failed" || return 1
	[ "$(digest_of target)" = "$(jq -r '.manifests[0].digest' "$WORK/copied/index.json")" ] ||
		die "skopeo copy changed the digest" || return 1
	umoci unpack --rootless --image "$OCI:latest" "$WORK/unpacked" >/dev/null 2>&1 ||
		die "umoci unpack failed" || return 1
	local r=$WORK/unpacked/rootfs
	cmp -s "$r/python/print_env.py" print_env.py || die "print_env.py not under /python" || return 1
	[ "$(stat -c %a "$r/python/print_env.py")" = 644 ] || die "print_env.py mode" || return 1
	cmp -s "$r/usr/lib/veil/veil-run" "$VEIL_RUNTIME" || die "veil-run not at its path" || return 1
	[ "$(stat -c %a "$r/usr/lib/veil/veil-run")" = 755 ] || die "veil-run mode" || return 1
	[ "$(cat "$r/etc/motd")" = base ] || die "the base's files are missing" || return 1
	# veil-run's prefetch list, as `veil apply` wrote it beside the record
	cmp -s "$r/etc/veil/runtime-files" target/images/python_hello_user/runtime-files ||
		die "the image's /etc/veil/runtime-files is not the record's prefetch list" || return 1
	# the layers' entries: owner 0:0, no names, time 0
	local l
	for l in $(jq -r '.Layers[1:][]' <<<"$out"); do
		tar -tvzf "$OCI/blobs/sha256/${l#sha256:}" --numeric-owner --full-time |
			grep -v ' 0/0 .* 1970-01-01 00:00:00 ' && die "an entry with an owner or time" && return 1
	done
	return 0
}

# The same inputs from another folder, another target, other mtimes: the
# same digest. A changed file or time stamp: another digest.
t_builds_are_reproducible() {
	local a b c
	a=$(digest_of "$WORK/app/target")
	mkdir -p "$WORK/elsewhere/deep" && seed_copy "$WORK/elsewhere/app2" &&
		cp -r "$WORK/base" "$WORK/elsewhere/base2" || return 1
	touch -d '2001-02-03 04:05:06' "$WORK/elsewhere/app2/print_env.py"
	chmod 600 "$WORK/elsewhere/app2/print_env.py" # modes are normalised (0644)
	cd "$WORK/elsewhere/deep" || return 1
	(umask 077 && "$VEIL" apply -f ../app2/service.yaml --base "oci:$WORK/elsewhere/base2:v1" \
		-t "$WORK/elsewhere/t2" --no-push >/dev/null) || return 1
	b=$(digest_of "$WORK/elsewhere/t2")
	[ "$a" = "$b" ] || die "two builds of the same inputs: $a and $b" || return 1
	echo "# changed" >>"$WORK/elsewhere/app2/print_env.py"
	"$VEIL" apply -f ../app2/service.yaml --base "oci:$WORK/elsewhere/base2:v1" -t t3 --no-push >/dev/null || return 1
	c=$(digest_of t3)
	[ "$c" != "$a" ] || die "a changed file gave the same digest" || return 1
	cd "$WORK/app" || return 1
	SOURCE_DATE_EPOCH=1700000000 "$VEIL" apply -f service.yaml --base oci:../base:v1 -t t4 --no-push >/dev/null || return 1
	[ "$(digest_of t4)" != "$a" ] || die "SOURCE_DATE_EPOCH changed nothing" || return 1
	run skopeo inspect --config oci:t4/images/$NAME/oci:latest && ok || return 1
	[ "$(jq -r .created <<<"$out")" = 2023-11-14T22:13:20Z ] || die "created: $out" || return 1
	run env SOURCE_DATE_EPOCH=soon "$VEIL" apply -f service.yaml --base oci:../base:v1 -t t5 --no-push &&
		rejected && has "SOURCE_DATE_EPOCH 'soon' is not a number" || return 1
}

# base: --base over build.from over $VEIL_BASE over build.kind
t_base_resolution() {
	cd "$WORK/app" || return 1
	mkdir -p from && cp service.yaml print_env.py from/
	# relative to the manifest's folder, as copy files are
	sed -i 's|^  kind: python|  kind: python\n  from: oci:../../base:v1|' from/service.yaml
	run "$VEIL" apply -f from/service.yaml -t t6 --no-push && ok && has "base oci:from/../../base:v1" || return 1
	[ "$(digest_of t6)" = "$(digest_of target)" ] || die "build.from gave another image" || return 1
	VEIL_BASE=scratch run "$VEIL" apply -f from/service.yaml -t t6 --no-push && ok && has "base oci:from/../../base:v1" || return 1
	run "$VEIL" apply -f from/service.yaml -t t6 --base scratch --no-push && ok && has "base scratch" || return 1
	run skopeo inspect "oci:t6/images/$NAME/oci:latest" && ok || return 1
	[ "$(jq '.Layers | length' <<<"$out")" = 3 ] || die "scratch: $out" || return 1
	VEIL_BASE=scratch run "$VEIL" apply -f service.yaml -t t6 --no-push && ok && has "base scratch" || return 1
	# python's default is a registry image, pulled: here docker.io is mapped
	# to a closed loopback port, so the pull fails and nothing is built
	run "$VEIL" apply -f service.yaml -t t7 --no-push --registry-mirror docker.io=127.0.0.1:1 \
		--insecure-registry 127.0.0.1:1 && rejected &&
		has "base image 'docker://docker.io/library/python:3.11-slim-bookworm': not pulled; nothing was built" || return 1
	[ ! -e t7/images/$NAME ] || die "a refused build wrote t7/images/$NAME" || return 1
	sed -i 's|^  kind: python|  kind: rust|' from/service.yaml
	sed -i '/^  from:/d' from/service.yaml
	run "$VEIL" apply -f from/service.yaml -t t7 --no-push && rejected &&
		has "build.kind 'rust' has no default base image" || return 1
	sed -i 's|^  kind: rust|  from: ftp://x|' from/service.yaml
	run "$VEIL" apply -f from/service.yaml -t t7 --no-push && rejected &&
		has "build: from 'ftp://x' is not oci:DIR[:TAG], [docker://]HOST/REPO[:TAG] or scratch" || return 1
	run "$VEIL" apply -f service.yaml -t t7 --base ./x --no-push && rejected && has "base image './x': not oci:" || return 1
}

t_output_json() {
	cd "$WORK/app" || return 1
	run "$VEIL" apply -f service.yaml --base oci:../base:v1 -o json --no-push && ok || return 1
	[ "$(jq -r '.items[0].digest' <<<"$out")" = "$(digest_of target)" ] || die "-o json digest: $out" || return 1
	[ "$(jq -r '.items[0].layout' <<<"$out")" = "$OCI" ] || die "-o json layout: $out" || return 1
	[ "$(jq -r '.items[0].pushed_digest' <<<"$out")" = null ] || die "-o json pushed_digest: $out"
}

# refused: exit 1, the message, and the old image and record untouched
refused_keeps_old() { # message
	rejected && has "$1" || return 1
	[ "$(tree_sum target)" = "$BEFORE" ] || die "target/ changed on a refused build" || return 1
	! ls -a target/images | grep -q 'oci.new' || die "a staging folder was left"
}

t_missing_base_refused() {
	cd "$WORK/app" || return 1
	BEFORE=$(tree_sum target)
	run "$VEIL" apply -f service.yaml --base oci:../nosuch:v1 --no-push &&
		refused_keeps_old "base image oci:../nosuch:v1: the base image's folder ../nosuch does not exist" || return 1
	mkdir -p ../empty
	run "$VEIL" apply -f service.yaml --base oci:../empty --no-push &&
		refused_keeps_old "base image oci:../empty: not an OCI image layout (../empty/index.json: cannot open" || return 1
}

t_base_without_tag_refused() {
	cd "$WORK/app" || return 1
	BEFORE=$(tree_sum target)
	run "$VEIL" apply -f service.yaml --base oci:../base:v2 --no-push &&
		refused_keeps_old "base image oci:../base:v2: no image tagged 'v2' in index.json (tags: 'v1')" || return 1
	cp -r ../base ../base2tags && umoci tag --image ../base2tags:v1 v3 >/dev/null || return 1
	run "$VEIL" apply -f service.yaml --base oci:../base2tags --no-push &&
		refused_keeps_old "index.json holds 2 images; name one (oci:DIR:TAG)" || return 1
}

t_corrupt_base_blob_refused() {
	cd "$WORK/app" || return 1
	BEFORE=$(tree_sum target)
	rm -rf ../bad && cp -r ../base ../bad || return 1
	local m l
	m=$(jq -r '.manifests[0].digest' ../bad/index.json | cut -d: -f2)
	l=$(jq -r '.layers[0].digest' "../bad/blobs/sha256/$m")
	printf 'X' | dd of="../bad/blobs/sha256/${l#sha256:}" bs=1 seek=100 conv=notrunc 2>/dev/null
	run "$VEIL" apply -f service.yaml --base oci:../bad:v1 --no-push &&
		refused_keeps_old "base image oci:../bad:v1: layer blob $l does not match its digest or size (corrupt or changed)" || return 1
	rm "../bad/blobs/sha256/${l#sha256:}"
	run "$VEIL" apply -f service.yaml --base oci:../bad:v1 --no-push &&
		refused_keeps_old "layer blob $l is missing or unreadable" || return 1
	# the config changed: caught before any layer is copied
	rm -rf ../bad && cp -r ../base ../bad
	local c
	c=$(jq -r '.config.digest' "../bad/blobs/sha256/$m")
	sed -i 's/amd64/amd65/' "../bad/blobs/sha256/${c#sha256:}"
	run "$VEIL" apply -f service.yaml --base oci:../bad:v1 --no-push &&
		refused_keeps_old "config blob $c does not match its digest or size" || return 1
}

# put_blob LAYOUT FILE: FILE as a blob of LAYOUT; prints its digest
put_blob() {
	local h
	h=$(sha "$2")
	cp "$2" "$1/blobs/sha256/$h"
	echo "sha256:$h"
}
# point LAYOUT at MEDIATYPE DIGEST SIZE, tagged v1
set_index() {
	printf '{"schemaVersion":2,"manifests":[{"mediaType":"%s","digest":"%s","size":%s,"annotations":{"org.opencontainers.image.ref.name":"v1"}}]}' \
		"$2" "$3" "$4" >"$1/index.json"
}

t_malformed_layout_refused() {
	cd "$WORK/app" || return 1
	BEFORE=$(tree_sum target)
	rm -rf ../mal && cp -r ../base ../mal || return 1
	echo '{"schemaVersion":2,"manifests":[' >../mal/index.json
	run "$VEIL" apply -f service.yaml --base oci:../mal:v1 --no-push &&
		refused_keeps_old "base image oci:../mal:v1: index.json is not valid JSON" || return 1
	echo '{"schemaVersion":2,"manifests":{}}' >../mal/index.json
	run "$VEIL" apply -f service.yaml --base oci:../mal:v1 --no-push &&
		refused_keeps_old "index.json has no 'manifests' list" || return 1
	set_index ../mal application/vnd.oci.image.manifest.v1+json "sha256:../../../etc/passwd" 10
	run "$VEIL" apply -f service.yaml --base oci:../mal:v1 --no-push &&
		refused_keeps_old "has digest 'sha256:../../../etc/passwd'; veil reads sha256:<64 lower-case hex digits> only" || return 1
	# a manifest that is not JSON, with its right digest
	printf 'not json' >"$WORK/m.json"
	set_index ../mal application/vnd.oci.image.manifest.v1+json "$(put_blob ../mal "$WORK/m.json")" 8
	run "$VEIL" apply -f service.yaml --base oci:../mal:v1 --no-push &&
		refused_keeps_old "the image manifest is not valid JSON" || return 1
	# a manifest with a layer of an unknown media type
	local cfg
	cfg=$(jq -c .config "../base/blobs/sha256/$(jq -r '.manifests[0].digest' ../base/index.json | cut -d: -f2)")
	printf '{"schemaVersion":2,"config":%s,"layers":[{"mediaType":"text/plain","digest":"sha256:%064d","size":1}]}' "$cfg" 0 >"$WORK/m.json"
	set_index ../mal application/vnd.oci.image.manifest.v1+json "$(put_blob ../mal "$WORK/m.json")" "$(stat -c %s "$WORK/m.json")"
	run "$VEIL" apply -f service.yaml --base oci:../mal:v1 --no-push &&
		refused_keeps_old "layer 1 has media type 'text/plain', not a layer veil knows" || return 1
	# a config whose diff_ids do not match the layers (none here)
	printf '{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["sha256:%064d"]}}' 0 >"$WORK/c.json"
	printf '{"schemaVersion":2,"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"%s","size":%s},"layers":[]}' \
		"$(put_blob ../mal "$WORK/c.json")" "$(stat -c %s "$WORK/c.json")" >"$WORK/m.json"
	set_index ../mal application/vnd.oci.image.manifest.v1+json "$(put_blob ../mal "$WORK/m.json")" "$(stat -c %s "$WORK/m.json")"
	run "$VEIL" apply -f service.yaml --base oci:../mal:v1 --no-push &&
		refused_keeps_old "the image config lists 1 diff_ids for 0 layers" || return 1
	# a config for another platform
	printf '{"architecture":"arm64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}' >"$WORK/c.json"
	printf '{"schemaVersion":2,"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"%s","size":%s},"layers":[]}' \
		"$(put_blob ../mal "$WORK/c.json")" "$(stat -c %s "$WORK/c.json")" >"$WORK/m.json"
	set_index ../mal application/vnd.oci.image.manifest.v1+json "$(put_blob ../mal "$WORK/m.json")" "$(stat -c %s "$WORK/m.json")"
	run "$VEIL" apply -f service.yaml --base oci:../mal:v1 --no-push &&
		refused_keeps_old "the image is for linux/arm64; veil builds linux/amd64 images" || return 1
	# a manifest list without linux/amd64
	printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"%s","size":%s,"platform":{"os":"linux","architecture":"arm64"}}]}' \
		"$(put_blob ../mal "$WORK/m.json")" "$(stat -c %s "$WORK/m.json")" >"$WORK/l.json"
	set_index ../mal application/vnd.oci.image.index.v1+json "$(put_blob ../mal "$WORK/l.json")" "$(stat -c %s "$WORK/l.json")"
	run "$VEIL" apply -f service.yaml --base oci:../mal:v1 --no-push &&
		refused_keeps_old "a manifest list without a linux/amd64 image (it has: linux/arm64)" || return 1
}

# the same list with a linux/amd64 entry: that image is the base
t_manifest_list_picks_amd64() {
	cd "$WORK/app" || return 1
	local m size
	m=$(jq -r '.manifests[0].digest' ../base/index.json)
	size=$(jq -r '.manifests[0].size' ../base/index.json)
	rm -rf ../list && cp -r ../base ../list || return 1
	printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"%s","size":%s,"platform":{"os":"linux","architecture":"arm64"}},{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"%s","size":%s,"platform":{"os":"linux","architecture":"amd64"}}]}' \
		"$m" "$size" "$m" "$size" >"$WORK/l.json"
	set_index ../list application/vnd.oci.image.index.v1+json "$(put_blob ../list "$WORK/l.json")" "$(stat -c %s "$WORK/l.json")"
	run "$VEIL" apply -f service.yaml --base oci:../list:v1 -t t8 --no-push && ok || return 1
	[ "$(digest_of t8)" = "$(digest_of target)" ] || die "the list's amd64 image gave another build"
}

# A copy file that cannot be read: refused, the old image kept. Root reads
# any file, so this runs as nobody in a copy of the app.
t_unreadable_copy_file_refused() {
	[ "$(id -u)" -eq 0 ] || { echo "    (skipped: needs root to become nobody)"; return 0; }
	mkdir -p "$WORK/nobody" && cp -r "$WORK/app/service.yaml" "$WORK/app/print_env.py" "$WORK/base" "$WORK/nobody/" || return 1
	# veil from inside that folder: the build folder may be where nobody
	# cannot reach it (/root/... in the CI's root file system)
	cp "$VEIL" "$WORK/nobody/veil" && cp "$VEIL_RUNTIME" "$WORK/nobody/veil-run" &&
		chown -R nobody "$WORK/nobody" || return 1
	cd "$WORK/nobody" || return 1
	local as_nobody=(setpriv --reuid=nobody --regid=nogroup --clear-groups env HOME="$WORK/nobody"
		VEIL_RUNTIME=./veil-run)
	run "${as_nobody[@]}" ./veil apply -f service.yaml --base oci:base:v1 --no-push && ok || return 1
	BEFORE=$(tree_sum target)
	chmod 000 print_env.py
	run "${as_nobody[@]}" ./veil apply -f service.yaml --base oci:base:v1 --no-push &&
		refused_keeps_old "print_env.py: cannot open: Permission denied" || return 1
}

# A copy entry that cannot be measured (a fifo) stops the run before the
# build: the old image and record are kept.
t_unmeasurable_copy_keeps_image() {
	cd "$WORK/app" || return 1
	BEFORE=$(tree_sum target)
	mkfifo fifo && printf '    - fifo\n' >>service.yaml
	run "$VEIL" apply -f service.yaml --base oci:../base:v1 --no-push &&
		refused_keeps_old "copy: './fifo' is neither a file nor a folder" || return 1
	rm fifo && sed -i '/    - fifo/d' service.yaml
}

# Names ustar cannot hold (non-ASCII, over 100 bytes) go into pax headers,
# the same under any locale (libarchive 3.6.2 crashed on a non-ASCII name
# before every libarchive call ran in C.UTF-8).
t_unusual_names() {
	mkdir -p "$WORK/names/d" && cd "$WORK/names" || return 1
	local long
	long=$(printf 'n%.0s' $(seq 1 150))
	printf x >"d/caf$(printf '\303\251').txt" && printf y >"d/$long" || return 1
	sed 's/^    - print_env.py/    - d/' "$SEED/service.yaml" >service.yaml
	run env LC_ALL=C "$VEIL" apply -f service.yaml --base scratch -t t1 --no-push && ok || return 1
	run env LC_ALL=C.UTF-8 LANG=C.UTF-8 "$VEIL" apply -f service.yaml --base scratch -t t2 --no-push && ok || return 1
	[ "$(digest_of t1)" = "$(digest_of t2)" ] || die "the locale changed the digest" || return 1
	umoci unpack --rootless --image t1/images/$NAME/oci:latest u >/dev/null 2>&1 || die "umoci unpack" || return 1
	[ "$(cat "u/rootfs/python/d/caf$(printf '\303\251').txt")" = x ] && [ "$(cat "u/rootfs/python/d/$long")" = y ] ||
		die "names changed: $(ls u/rootfs/python/d)"
}

run_in_order image t_setup t_seed_image_builds t_builds_are_reproducible t_base_resolution \
	t_output_json t_missing_base_refused t_base_without_tag_refused \
	t_corrupt_base_blob_refused t_malformed_layout_refused t_manifest_list_picks_amd64 \
	t_unreadable_copy_file_refused t_unmeasurable_copy_keeps_image t_unusual_names

#!/usr/bin/env bash
# The control plane as images (issue 10, item 6): `veil image control-plane`
# builds veil-cas's and veil-las's images with veil's own builder, and they
# run as deploy/helm/veil runs them.
#   1. both images are OCI layouts that skopeo and umoci read; two builds (in
#      other folders, another umask) give the same digest; SOURCE_DATE_EPOCH
#      changes it; the image holds the binary, its shared objects and (the
#      CAS's) /bin/sh, and no veil-run; refused: an --out folder of other
#      files (kept), a --binary that is not an executable ELF file, a bad
#      SOURCE_DATE_EPOCH, an unknown --component;
#   2. the chart, rendered by Helm with the built digests, is valid
#      (tests/k8s/validate.mjs) and names the images by digest;
#   3. the CAS image runs in `podman --runtime runc` with the command, args
#      and environment that rendering gives the container (the first-start
#      /bin/sh script), as uid 10001 with a read-only root, every capability
#      dropped and a data volume: it initialises on the first start, answers
#      /healthz over HTTPS, and on the second start serves the same CAS (same
#      key hash) without --init;
#   4. the LAS image runs as the chart's DaemonSet runs it (root with
#      SYS_PTRACE and DAC_READ_SEARCH only, the host's pids, read-only) and
#      creates its socket in the host folder mounted at /run/veil; its
#      platform key, in the data volume, is the one the host's veil-las reads.
# Services listen on 127.0.0.1 only (host network; --listen rewritten from
# the chart's :8081) and are stopped by the PIDs of their `podman run`.
# podman's storage lives in $WORK (as tests/e2e/podman.sh). Helm, js-yaml and
# validate.mjs are tests/k8s's: run tests/k8s/run.sh first (it installs and
# unpacks them; scripts/test.sh does). Needs node and jq. Root.
# Usage: tests/e2e/controlplane.sh BUILD_DIR
set -u
BUILD=$(realpath "${1:?usage: controlplane.sh BUILD_DIR}")
VEIL=$BUILD/veil
ROOT=${VEIL_SOURCE_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
CHART=$ROOT/deploy/helm/veil
WORK=$(mktemp -d)
chmod 755 "$WORK"
export HOME=$WORK/home
unset SOURCE_DATE_EPOCH
mkdir -p "$HOME"
pids=()
cleanup() {
	# a container a failed scenario left running (this script's storage
	# only): a podman client does not stop on SIGTERM alone
	[ -d "$WORK/pm" ] && pm rm -a -f -t 0 >/dev/null 2>&1
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
	wait 2>/dev/null
	# the mounts podman left under $WORK
	findmnt -rn -o TARGET | grep -F "$WORK/" | sort -r | while read -r m; do umount "$m"; done
	rm -rf "$WORK"
}
trap cleanup EXIT
. "$ROOT/tests/e2e/lib.sh"

free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
# podman with every piece of state under $WORK
pm() {
	podman --root "$WORK/pm/root" --runroot "$WORK/pm/run" --tmpdir "$WORK/pm/tmp" \
		--storage-driver vfs --cgroup-manager cgroupfs --events-backend file --runtime runc "$@"
}
helm() {
	HELM_CONFIG_HOME=$WORK/helm/config HELM_CACHE_HOME=$WORK/helm/cache \
		HELM_DATA_HOME=$WORK/helm/data "$HELM_BIN" "$@"
}
# wait_long FILE TEXT: up to 60 s (a container's first start unpacks its
# image into podman's vfs storage)
wait_long() {
	for _ in $(seq 600); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done
	return 1
}
# digest_of LAYOUT: the manifest digest of the layout's only image
digest_of() {
	jq -r '.manifests[0].digest' "$1/index.json"
}
# container_of RENDERED KIND: the first container of KIND's pod template, one
# line each: command and args (JSON arrays), env (a JSON array of
# NAME=value), image. js-yaml is tests/k8s's (package.json).
container_of() {
	node -e '
		const yaml = require(process.argv[1]);
		const fs = require("fs");
		for (const o of yaml.loadAll(fs.readFileSync(process.argv[2], "utf8"))) {
			if (!o || o.kind !== process.argv[3]) continue;
			const c = o.spec.template.spec.containers[0];
			console.log(JSON.stringify(c.command || []));
			console.log(JSON.stringify(c.args || []));
			console.log(JSON.stringify((c.env || []).map((e) => e.name + "=" + e.value)));
			console.log(c.image);
			break;
		}' "$ROOT/tests/k8s/node_modules/js-yaml" "$@"
}
# lines JSON-ARRAY: its strings, one a line
lines() { jq -r '.[]' <<<"$1"; }

setup() {
	[ "$(id -u)" = 0 ] || die "needs root (rootful podman)" || return 1
	local t
	for t in podman runc skopeo umoci curl; do
		command -v "$t" >/dev/null || die "$t is not installed" || return 1
	done
	HELM_BIN=$(ls "$ROOT"/tests/k8s/node_modules/.cache/kubectl-layer-*/helm/helm 2>/dev/null | tail -1)
	[ -x "$HELM_BIN" ] || die "no helm: run tests/k8s/run.sh first (it unpacks helm into tests/k8s/node_modules/.cache)" || return 1
	for t in node jq; do
		command -v "$t" >/dev/null || die "$t is not installed" || return 1
	done
	run "$VEIL" image control-plane --component cas --out "$WORK/cas"
	ok || return 1
	CAS_DIGEST=$out
	run "$VEIL" image control-plane --component las --out "$WORK/las"
	ok || return 1
	LAS_DIGEST=$out
	# into podman's storage under $WORK, by skopeo (which reads the layout too)
	local c
	for c in cas las; do
		skopeo copy -q "oci:$WORK/$c:$("$VEIL" version | cut -d' ' -f2)" \
			"containers-storage:[vfs@$WORK/pm/root+$WORK/pm/run]localhost/veil-$c:test" \
			>"$WORK/copy.err" 2>&1 || die "skopeo copy of veil-$c: $(cat "$WORK/copy.err")" || return 1
	done
}

t_images_are_oci_layouts_skopeo_and_umoci_read() {
	local c tag
	tag=$("$VEIL" version | cut -d' ' -f2)
	for c in cas las; do
		run skopeo inspect --config "oci:$WORK/$c:$tag"
		ok || return 1
		has "\"/usr/bin/veil-$c\"" || return 1
		run umoci unpack --image "$WORK/$c:$tag" "$WORK/bundle-$c"
		ok || return 1
		[ -x "$WORK/bundle-$c/rootfs/usr/bin/veil-$c" ] && [ -f "$WORK/bundle-$c/rootfs/lib64/ld-linux-x86-64.so.2" ] &&
			[ -f "$WORK/bundle-$c/rootfs/lib/x86_64-linux-gnu/libcrypto.so.3" ] ||
			die "veil-$c's image lacks its binary, the loader or libcrypto" || return 1
		[ ! -e "$WORK/bundle-$c/rootfs/usr/lib/veil/veil-run" ] && [ ! -e "$WORK/bundle-$c/rootfs/etc/ld.so.cache" ] ||
			die "veil-$c's image holds veil-run or an ld.so.cache" || return 1
		# the binary in the image is the build's
		cmp -s "$BUILD/veil-$c" "$WORK/bundle-$c/rootfs/usr/bin/veil-$c" || die "/usr/bin/veil-$c is not the build's" || return 1
	done
	[ -x "$WORK/bundle-cas/rootfs/bin/sh" ] || die "the CAS's image has no /bin/sh for the chart's first start" || return 1
	[ ! -e "$WORK/bundle-las/rootfs/bin/sh" ] || die "the LAS's image has a shell it does not need" || return 1
	# the CAS runs as the chart's runAsUser, the LAS as root
	[ "$(skopeo inspect --config "oci:$WORK/cas:$tag" | jq -r .config.User)" = 10001:10001 ] &&
		[ "$(skopeo inspect --config "oci:$WORK/las:$tag" | jq -r .config.User)" = null ] ||
		die "config.User is not 10001:10001 (CAS) and unset (LAS)"
}

t_two_builds_give_the_same_digest() {
	mkdir -p "$WORK/again" && cd "$WORK/again" || return 1
	# another folder, a relative --out, another umask and --binary named
	(umask 077 && "$VEIL" image control-plane -c cas --out cas --binary "$BUILD/veil-cas" >"$WORK/again/cas.digest" 2>/dev/null) &&
		(umask 022 && "$VEIL" image control-plane -c las --out las -o json >"$WORK/again/las.json") ||
		die "the second builds failed" || return 1
	[ "$(cat cas.digest)" = "$CAS_DIGEST" ] || die "CAS: $(cat cas.digest) != $CAS_DIGEST" || return 1
	grep -qF "\"digest\": \"$LAS_DIGEST\"" las.json || die "LAS: $(cat las.json) does not hold $LAS_DIGEST" || return 1
	[ "$(digest_of "$WORK/again/cas")" = "$CAS_DIGEST" ] || die "index.json names another digest" || return 1
	# byte for byte: every blob the same
	diff -r "$WORK/cas" "$WORK/again/cas" >/dev/null || die "the two CAS layouts differ" || return 1
	# the time stamp is an input
	SOURCE_DATE_EPOCH=1700000000 run "$VEIL" image control-plane -c cas --out "$WORK/again/cas-epoch"
	ok || return 1
	[ "$out" != "$CAS_DIGEST" ] || die "SOURCE_DATE_EPOCH did not change the digest" || return 1
	SOURCE_DATE_EPOCH=soon run "$VEIL" image control-plane -c cas --out "$WORK/again/cas-bad"
	rejected && has "SOURCE_DATE_EPOCH 'soon' is not a number" || return 1
	# --out is replaced whole: a folder of other files is refused, and kept
	mkdir -p "$WORK/again/notes" && echo keep >"$WORK/again/notes/keep" || return 1
	run "$VEIL" image control-plane -c cas --out "$WORK/again/notes"
	rejected && has "exists and is not an OCI image layout folder" || return 1
	[ "$(cat "$WORK/again/notes/keep")" = keep ] || die "--out removed a folder of other files" || return 1
	run "$VEIL" image control-plane -c las --out "$WORK/again/x" --binary /etc/passwd
	rejected && has "/etc/passwd: not an executable ELF file" || return 1
	run "$VEIL" image control-plane -c cat --out "$WORK/again/x"
	[ "$rc" -eq 2 ] && has "--component takes cas or las, not 'cat'"
}

t_chart_renders_with_the_built_digests() {
	run helm template veil "$CHART" --namespace veil-system \
		--set cas.image.repository=registry.example/veil/veil-cas --set "cas.image.digest=$CAS_DIGEST" \
		--set las.image.repository=registry.example/veil/veil-las --set "las.image.digest=$LAS_DIGEST"
	ok || return 1
	printf '%s\n' "$out" >"$WORK/rendered.yaml"
	has "image: \"registry.example/veil/veil-cas@$CAS_DIGEST\"" &&
		has "image: \"registry.example/veil/veil-las@$LAS_DIGEST\"" || return 1
	run node "$ROOT/tests/k8s/validate.mjs" --rendered "$WORK/rendered.yaml"
	ok || return 1
	{ readarray -t CAS_C < <(container_of "$WORK/rendered.yaml" StatefulSet); } &&
		{ readarray -t LAS_C < <(container_of "$WORK/rendered.yaml" DaemonSet); } &&
		[ ${#CAS_C[@]} = 4 ] && [ ${#LAS_C[@]} = 4 ] || die "no CAS or LAS container in the rendering"
}

# cas.replicas > 1: only with a shared PostgreSQL and one CAS's key
# material (else each replica would be a CAS of its own); each pod's first
# start copies the key material into its data folder with an empty audit log
t_chart_replicas_need_postgres_and_key_material() {
	run helm template veil "$CHART" --namespace veil-system --set cas.replicas=3
	rejected && has "cas.replicas > 1 needs cas.store.urlSecret" || return 1
	run helm template veil "$CHART" --namespace veil-system --set cas.replicas=3 \
		--set cas.store.urlSecret=veil-db
	rejected && has "cas.keyMaterial.existingSecret (the master key" || return 1
	run helm template veil "$CHART" --namespace veil-system --set cas.keyMaterial.existingSecret=k
	rejected && has "set cas.store.urlSecret too" || return 1
	run helm template veil "$CHART" --namespace veil-system --set cas.replicas=3 \
		--set cas.store.urlSecret=veil-db --set cas.keyMaterial.existingSecret=veil-cas-key
	ok || return 1
	printf '%s\n' "$out" >"$WORK/replicas.yaml"
	has "replicas: 3" && has '- --store=$(VEIL_CAS_STORE)' && has 'secretName: "veil-cas-key"' &&
		has 'name: "veil-db"' || die "replicas rendering: $(grep -n 'store\|secret' "$WORK/replicas.yaml")" || return 1
	run node "$ROOT/tests/k8s/validate.mjs" --rendered "$WORK/replicas.yaml"
	ok || return 1
	local c script k=$WORK/key-material d=$WORK/replica/cas
	readarray -t c < <(container_of "$WORK/replicas.yaml" StatefulSet)
	script=$(jq -r '.[2]' <<<"${c[0]}")
	mkdir -p "$k" "$WORK/replica" || return 1
	for f in master.key tls-key.pem tls-cert.pem sim-platform-key.pem sim-platform-cert.pem; do
		echo "$f" >"$k/$f"
	done
	# the pod's start, with veil-cas replaced by a listing of the data folder
	script=${script//\/etc\/veil-cas\/key-material/$k}
	script=${script//exec veil-cas/exec ls -R}
	VEIL_CAS_DATA=$d sh -c "$script" veil-cas "$d" >"$WORK/replica.ls" 2>&1 ||
		die "the start script failed: $(cat "$WORK/replica.ls")" || return 1
	[ "$(cat "$d/master.key")" = master.key ] && [ "$(cat "$d/tls/key.pem")" = tls-key.pem ] &&
		[ "$(cat "$d/tls/cert.pem")" = tls-cert.pem ] &&
		[ "$(cat "$d/sim-platform/key.pem")" = sim-platform-key.pem ] &&
		[ -f "$d/audit.log" ] && [ ! -s "$d/audit.log" ] && [ ! -e "$d.part" ] ||
		die "data folder: $(cat "$WORK/replica.ls")" || return 1
	[ "$(stat -c %a "$d/master.key")" = 600 ] && [ "$(stat -c %a "$d")" = 700 ] ||
		die "modes: $(stat -c '%a %n' "$d" "$d/master.key")" || return 1
	# a later start keeps what is there (its audit log, its replica id)
	echo kept >"$d/audit.log"
	VEIL_CAS_DATA=$d sh -c "$script" veil-cas "$d" >/dev/null 2>&1 && [ "$(cat "$d/audit.log")" = kept ] ||
		die "a second start replaced the data folder"
}

# cas_start LOG: the CAS image as the rendered StatefulSet runs it (its
# command as the entrypoint, its args with --listen on loopback, its env),
# in the background; the pid of its `podman run` in CAS_PID, of veil-cas
# (the container's first process) in CAS_INNER
cas_start() {
	local log=$1 a args=() envs=()
	readarray -t args < <(lines "${CAS_C[1]}")
	for i in "${!args[@]}"; do
		[[ ${args[$i]} == --listen=* ]] && args[$i]=--listen=127.0.0.1:$CAS_PORT
	done
	readarray -t envs < <(jq -r '.[] | "-e", .' <<<"${CAS_C[2]}")
	pm run --rm --name "veil-cas-$$" --network host --read-only --user 10001:10001 --cap-drop ALL \
		--security-opt no-new-privileges --ulimit nofile=1024:1024 --ulimit nproc=1024:1024 \
		-v "$WORK/cas-volume:/var/lib/veil-cas" "${envs[@]}" --entrypoint "${CAS_C[0]}" \
		localhost/veil-cas:test "${args[@]}" >"$log" 2>"$log.err" &
	CAS_PID=$!
	pids+=("$CAS_PID")
	wait_long "$log" "veil-cas key hash" ||
		die "the CAS container did not start: $(cat "$log.err")" || return 1
	CAS_INNER=$(pm inspect --format '{{.State.Pid}}' "veil-cas-$$")
	[ "$CAS_INNER" -gt 0 ] 2>/dev/null || die "no pid for the CAS container"
}

# stops veil-cas by its pid (podman's client then removes the container)
cas_stop() {
	kill "$CAS_INNER" && wait "$CAS_PID" 2>/dev/null
	return 0
}

t_cas_image_initialises_and_serves_in_podman() {
	# autoInit (the default): the chart's /bin/sh script, which the image must run
	[[ ${CAS_C[0]} == '["/bin/sh","-c",'* ]] || die "the chart's command is not its first-start script: ${CAS_C[0]}" || return 1
	# the volume as the chart's fsGroup leaves it: the group's, writable
	mkdir -p "$WORK/cas-volume" && chown 10001:10001 "$WORK/cas-volume" && chmod 2770 "$WORK/cas-volume" || return 1
	CAS_PORT=$(free_port)
	cas_start "$WORK/cas1.out" || return 1
	run curl -sSk --max-time 10 "https://127.0.0.1:$CAS_PORT/healthz"
	ok || return 1
	local key1 key2
	key1=$(sed -n 's/^veil-cas key hash //p' "$WORK/cas1.out")
	# --init ran, as uid 10001, and put the Service's names in the certificate
	[ -f "$WORK/cas-volume/cas/master.key" ] || die "no master key in the volume: $(ls -R "$WORK/cas-volume")" || return 1
	[ "$(stat -c %u "$WORK/cas-volume/cas/master.key")" = 10001 ] || die "the CAS did not run as uid 10001" || return 1
	run bash -c "openssl s_client -connect 127.0.0.1:$CAS_PORT </dev/null 2>/dev/null | openssl x509 -noout -ext subjectAltName"
	has "veil-cas.veil-system.svc.cluster.local" || return 1
	cas_stop
	# the second start: the folder is there, so no --init; the same CAS
	cas_start "$WORK/cas2.out" || return 1
	run curl -sSk --max-time 10 "https://127.0.0.1:$CAS_PORT/healthz"
	ok || return 1
	key2=$(sed -n 's/^veil-cas key hash //p' "$WORK/cas2.out")
	cas_stop
	[ -n "$key1" ] && [ "$key1" = "$key2" ] || die "the restarted CAS has another key ($key1, $key2)" || return 1
	# and the chart's backup command runs in the image (kubectl exec ... veil-cas backup)
	run pm run --rm --network none --read-only --user 10001:10001 --cap-drop ALL --ulimit nofile=1024:1024 \
		--ulimit nproc=1024:1024 -v "$WORK/cas-volume:/var/lib/veil-cas" --entrypoint '["veil-cas"]' \
		localhost/veil-cas:test --print-key-hash --data /var/lib/veil-cas/cas
	ok && [ "$out" = "$key1" ] || die "veil-cas --print-key-hash in the image: '$out', not '$key1'"
}

t_las_image_creates_its_socket_in_podman() {
	local args a
	readarray -t args < <(lines "${LAS_C[1]}")
	for a in "${args[@]}"; do
		case $a in --socket=/run/veil/las.sock | --data=/var/lib/veil-las | --cache-seconds=*) ;;
		*) die "the chart's veil-las args changed: ${LAS_C[1]}" || return 1 ;;
		esac
	done
	mkdir -p "$WORK/run-veil" "$WORK/las-data"
	pm run --rm --name "veil-las-$$" --network none --pid host --read-only --user 0 --cap-drop ALL \
		--cap-add SYS_PTRACE --cap-add DAC_READ_SEARCH --security-opt apparmor=unconfined \
		--security-opt no-new-privileges --ulimit nofile=1024:1024 --ulimit nproc=1024:1024 \
		-v "$WORK/run-veil:/run/veil" -v "$WORK/las-data:/var/lib/veil-las" --entrypoint "${LAS_C[0]}" \
		localhost/veil-las:test "${args[@]}" >"$WORK/las.out" 2>"$WORK/las.err" &
	local las=$!
	pids+=("$las")
	wait_long "$WORK/las.out" "platform key hash" ||
		die "the LAS container did not start: $(cat "$WORK/las.err")" || return 1
	[ -S "$WORK/run-veil/las.sock" ] || die "no socket in the host's folder: $(ls -l "$WORK/run-veil")" || return 1
	local inside host
	inside=$(sed -n 's/^veil-las platform key hash //p' "$WORK/las.out")
	host=$("$BUILD/veil-las" --print-key-hash --data "$WORK/las-data")
	kill "$(pm inspect --format '{{.State.Pid}}' "veil-las-$$")" && wait "$las" 2>/dev/null
	[ -n "$inside" ] && [ "$inside" = "$host" ] || die "platform key hash: container $inside, host $host"
}

cd "$WORK" || exit 1
if ! setup; then
	echo "controlplane: setup failed"
	echo "controlplane: 0 passed, 1 failed"
	exit 1
fi
run_in_order controlplane t_images_are_oci_layouts_skopeo_and_umoci_read t_two_builds_give_the_same_digest \
	t_chart_renders_with_the_built_digests t_chart_replicas_need_postgres_and_key_material \
	t_cas_image_initialises_and_serves_in_podman t_las_image_creates_its_socket_in_podman

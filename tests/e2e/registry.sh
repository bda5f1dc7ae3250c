#!/usr/bin/env bash
# Registry push and pull (veil image push/pull, src/image/registry.c) against
# Debian's docker-registry on loopback: a plain-HTTP one, one with htpasswd
# Basic auth, one with TLS from a CA made here; skopeo checks what veil wrote
# and writes what veil reads. Every registry is started here on 127.0.0.1
# and stopped by PID; no test reaches another host (a reference to
# registry.scontain.com:5050 is sent to loopback by --registry-mirror).
# The python base image (scripts/base-image.sh, cached in /var/cache/veil-ci)
# is pushed when it can be made; VEIL_SKIP_BASE_IMAGE=1 skips that scenario.
# Usage: tests/e2e/registry.sh BUILD_DIR
set -u
BUILD=$(realpath "${1:?usage: registry.sh BUILD_DIR}")
VEIL=$BUILD/veil
ROOT=${VEIL_SOURCE_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
WORK=$(mktemp -d)
PW=pw-$RANDOM-$RANDOM-secret
WRONG=wrong-$RANDOM-$RANDOM
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
	wait 2>/dev/null
	rm -rf "$WORK"
}
trap cleanup EXIT
. "$ROOT/tests/e2e/lib.sh"
unset REGISTRY_AUTH_FILE XDG_RUNTIME_DIR VEIL_REGISTRY_AUTH SSL_CERT_FILE SSL_CERT_DIR
export HOME=$WORK/home
mkdir -p "$HOME"

free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# start_registry NAME PORT [YAML...]: docker-registry on 127.0.0.1:PORT, its
# storage in $WORK/NAME, extra lines appended under http:/top level by caller
start_registry() {
	local name=$1 port=$2
	shift 2
	mkdir -p "$WORK/$name"
	{
		echo "version: 0.1"
		echo "log: {level: info, formatter: text}"
		echo "storage: {filesystem: {rootdirectory: $WORK/$name}, delete: {enabled: true}}"
		printf '%s\n' "$@"
	} >"$WORK/$name.yml"
	docker-registry serve "$WORK/$name.yml" >"$WORK/$name.log" 2>&1 &
	pids+=($!)
	wait_for "$WORK/$name.log" "listening on" || { cat "$WORK/$name.log"; return 1; }
}

setup() {
	P1=$(free_port)
	start_registry reg "$P1" "http: {addr: 127.0.0.1:$P1, secret: test}" || return 1
	R1=127.0.0.1:$P1
	# htpasswd Basic auth (bcrypt, as docker-registry wants)
	python3 -W ignore -c 'import crypt,sys; print("veil:" + crypt.crypt(sys.argv[1], crypt.mksalt(crypt.METHOD_BLOWFISH)))' \
		"$PW" >"$WORK/htpasswd"
	P2=$(free_port)
	start_registry auth "$P2" "http: {addr: 127.0.0.1:$P2, secret: test}" \
		"auth: {htpasswd: {realm: veil-test, path: $WORK/htpasswd}}" || return 1
	R2=127.0.0.1:$P2
	# TLS with a CA made here (the server certificate names 127.0.0.1)
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
		-subj /CN=veil-test-ca -keyout "$WORK/ca.key" -out "$WORK/ca.pem" 2>/dev/null &&
		openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=127.0.0.1 \
			-keyout "$WORK/srv.key" -out "$WORK/srv.csr" 2>/dev/null &&
		openssl x509 -req -in "$WORK/srv.csr" -CA "$WORK/ca.pem" -CAkey "$WORK/ca.key" \
			-CAcreateserial -days 2 -out "$WORK/srv.pem" \
			-extfile <(echo "subjectAltName=IP:127.0.0.1") 2>/dev/null || return 1
	P3=$(free_port)
	start_registry tls "$P3" \
		"http: {addr: 127.0.0.1:$P3, secret: test, tls: {certificate: $WORK/srv.pem, key: $WORK/srv.key}}" ||
		return 1
	R3=127.0.0.1:$P3
	# a small image: an empty config plus two layers, one of 5 MB
	cd "$WORK" && umoci init --layout tiny >/dev/null && umoci new --image tiny:tiny >/dev/null &&
		echo hello >hello && head -c 5000000 /dev/urandom >big &&
		umoci insert --image tiny:tiny hello /hello >/dev/null &&
		umoci insert --image tiny:tiny big /big >/dev/null || return 1
	TINY=$(jq -r '.manifests[0].digest' tiny/index.json)
	[ -n "$TINY" ]
}

# the HTTP requests veil made that send a blob (veil -v prints each)
blob_uploads() { grep -cE 'registry: (POST|PUT) [^ ]*/blobs/' <<<"$err"; }

t_push_tiny() {
	run "$VEIL" image push -v --insecure-registry "$R1" tiny "docker://$R1/tiny:1"
	ok || return 1
	[ "$out" = "$TINY" ] || die "pushed $out, the layout's manifest is $TINY"
	[ "$(blob_uploads)" -eq 6 ] || die "expected 3 blobs sent (POST+PUT each): $err" || return 1
	lacks "pushing sha256" || return 1 # progress only on a terminal
	# skopeo copies it back unchanged
	skopeo copy -q --src-tls-verify=false "docker://$R1/tiny:1" "oci:$WORK/back:1" ||
		die "skopeo copy failed"
	[ "$(jq -r '.manifests[0].digest' "$WORK/back/index.json")" = "$TINY" ] ||
		die "skopeo's copy has another digest"
	run skopeo inspect --tls-verify=false "docker://$R1/tiny:1"
	ok && [ "$(jq -r .Digest <<<"$out")" = "$TINY" ] || die "skopeo inspect: $out"
}

t_second_push_sends_no_blob() {
	run "$VEIL" image push -v --insecure-registry "$R1" tiny "$R1/tiny:2"
	ok || return 1
	[ "$out" = "$TINY" ] || die "digest $out"
	[ "$(blob_uploads)" -eq 0 ] || die "blobs sent again: $err"
	has "0 blobs sent" || return 1
	has "3 already in the registry" || return 1
}

t_push_mounts_from_another_repository() {
	run "$VEIL" image push -v -o json --mount-from tiny --insecure-registry "$R1" tiny "$R1/mounted:1"
	ok && [ "$(jq -r .blobs_mounted <<<"$out")" = 3 ] && [ "$(jq -r .blobs_sent <<<"$out")" = 0 ] ||
		die "mount: $out $err" || return 1
	# one POST per blob, no PUT of a blob
	[ "$(grep -cE 'registry: PUT [^ ]*/blobs/' <<<"$err")" -eq 0 ] || die "a blob was sent: $err" || return 1
	run skopeo inspect --tls-verify=false "docker://$R1/mounted:1"
	ok && [ "$(jq -r .Digest <<<"$out")" = "$TINY" ] || return 1
	# a repository without the blobs: uploaded as without --mount-from
	run "$VEIL" image push -o json --mount-from nothing/here --insecure-registry "$R1" tiny "$R1/mounted2:1"
	ok && [ "$(jq -r .blobs_sent <<<"$out")" = 3 ] || die "fallback: $out $err"
}

t_push_json_output() {
	run "$VEIL" image push -o json --insecure-registry "$R1" tiny "$R1/tiny:3"
	ok && [ "$(jq -r .digest <<<"$out")" = "$TINY" ] &&
		[ "$(jq -r .blobs_present <<<"$out")" = 3 ] || die "json: $out"
}

t_push_through_mirror() {
	# the seed's build.to, verbatim; nothing may reach that host
	run "$VEIL" image push --insecure-registry "$R1" \
		--registry-mirror "registry.scontain.com:5050=$R1" tiny \
		registry.scontain.com:5050/cosmos/python_hello_user:latest
	ok || return 1
	run skopeo inspect --tls-verify=false "docker://$R1/cosmos/python_hello_user:latest"
	ok && [ "$(jq -r .Digest <<<"$out")" = "$TINY" ] || die "not at the mirror: $out" || return 1
	# and pulled back through it
	run "$VEIL" image pull --insecure-registry "$R1" --registry-mirror "registry.scontain.com:5050=$R1" \
		docker://registry.scontain.com:5050/cosmos/python_hello_user mirrored
	ok && [ "$out" = "$TINY" ] || die "pull through the mirror: $out $err"
}

t_pull_docker_schema2() {
	# skopeo converts to a Docker schema 2 manifest on the way in
	skopeo copy -q --format v2s2 --dest-tls-verify=false oci:"$WORK/tiny:tiny" "docker://$R1/v2s2:1" ||
		die "skopeo copy failed" || return 1
	local want
	want=$(skopeo inspect --tls-verify=false "docker://$R1/v2s2:1" | jq -r .Digest)
	[ "$want" != "$TINY" ] || die "skopeo did not convert" || return 1
	# written as an OCI manifest (what skopeo and umoci read in a layout)
	# naming the same blobs
	run "$VEIL" image pull -v --insecure-registry "$R1" "$R1/v2s2:1" v2s2
	ok && has "Docker schema 2 manifest $want written as OCI manifest $out" || return 1
	local layers
	layers=$(skopeo inspect --tls-verify=false "docker://$R1/v2s2:1" | jq -c .Layers)
	run skopeo inspect "oci:$WORK/v2s2:1"
	ok && [ "$(jq -r .Digest <<<"$out")" = "$(jq -r '.manifests[0].digest' v2s2/index.json)" ] &&
		[ "$(jq -c .Layers <<<"$out")" = "$layers" ] || die "skopeo inspect oci: $out" || return 1
	umoci unpack --image v2s2:1 "$WORK/v2s2-bundle" >/dev/null 2>&1 && cmp -s "$WORK/v2s2-bundle/rootfs/big" big ||
		die "umoci unpack of the converted image differs"
}

t_plain_http_needs_insecure_registry() {
	run "$VEIL" image push tiny "$R1/tiny:4"
	rejected || return 1
	has "no TLS handshake (a plain-HTTP registry is used only when named with --insecure-registry $R1)" || return 1
	lacks "pushed" || return 1
}

t_pull_what_skopeo_pushed() {
	skopeo copy -q --dest-tls-verify=false oci:"$WORK/tiny:tiny" "docker://$R1/sk:1" ||
		die "skopeo copy failed"
	local want
	want=$(skopeo inspect --tls-verify=false "docker://$R1/sk:1" | jq -r .Digest)
	run "$VEIL" image pull --insecure-registry "$R1" "docker://$R1/sk:1" pulled
	ok || return 1
	[ "$out" = "$want" ] || die "pulled $out, skopeo says $want"
	run skopeo inspect "oci:$WORK/pulled:1"
	ok && [ "$(jq -r .Digest <<<"$out")" = "$want" ] || die "skopeo inspect oci: $out $err"
	umoci unpack --image pulled:1 "$WORK/bundle" >/dev/null 2>&1 && cmp -s "$WORK/bundle/rootfs/big" big ||
		die "umoci unpack of the pulled image differs"
	# again: nothing is downloaded
	run "$VEIL" image pull -o json --insecure-registry "$R1" "$R1/sk:1" pulled
	ok && [ "$(jq -r .blobs_sent <<<"$out")" = 0 ] || die "pulled again: $out"
	# by digest, under another name in the same layout
	run "$VEIL" image pull -n bydigest --insecure-registry "$R1" "$R1/sk@$want" pulled
	ok && [ "$(jq '.manifests | length' pulled/index.json)" = 2 ] || die "by digest: $err" || return 1
	# a layout of two images: push names one
	run "$VEIL" image push --insecure-registry "$R1" pulled "$R1/two:1"
	rejected && has "2 images: name one" || return 1
	run "$VEIL" image push -n nosuch --insecure-registry "$R1" pulled "$R1/two:1"
	rejected && has "no image named 'nosuch'" || return 1
	run "$VEIL" image push -n bydigest --insecure-registry "$R1" pulled "$R1/two:1"
	ok && [ "$out" = "$want" ]
}

t_pull_index_picks_linux_amd64() {
	# an index with a linux/amd64 entry (the tiny image), pushed by veil
	cp -r tiny multi
	local m size idx
	m=$(jq -c '.manifests[0] + {platform: {os: "linux", architecture: "amd64"}} | del(.annotations)' tiny/index.json)
	printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[%s]}' "$m" >multi/idx
	idx=$(sha256sum multi/idx | cut -d' ' -f1)
	size=$(stat -c %s multi/idx)
	mv multi/idx "multi/blobs/sha256/$idx"
	printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.index.v1+json","digest":"sha256:%s","size":%s,"annotations":{"org.opencontainers.image.ref.name":"multi"}}]}' \
		"$idx" "$size" >multi/index.json
	run "$VEIL" image push --insecure-registry "$R1" multi "$R1/multi:1"
	ok && [ "$out" = "sha256:$idx" ] || die "index push: $out $err"
	run "$VEIL" image pull --insecure-registry "$R1" "$R1/multi:1" multi-pulled
	ok && [ "$out" = "$TINY" ] || die "expected the amd64 manifest $TINY, got $out $err"
}

t_corrupt_blob_refused() {
	skopeo copy -q --dest-tls-verify=false oci:"$WORK/tiny:tiny" "docker://$R1/bad:1" >/dev/null ||
		die "skopeo copy failed"
	local layer data
	layer=$(jq -r '.layers | max_by(.size) | .digest' "tiny/blobs/sha256/${TINY#sha256:}")
	data=$WORK/reg/docker/registry/v2/blobs/sha256/${layer:7:2}/${layer#sha256:}/data
	[ -f "$data" ] || die "no $data"
	# same size, other bytes: only the digest can tell
	printf 'X' | dd of="$data" bs=1 seek=1000 conv=notrunc 2>/dev/null
	run "$VEIL" image pull --insecure-registry "$R1" "$R1/bad:1" corrupt
	rejected || return 1
	has "blob $layer" || return 1
	has "refused" || return 1
	[ ! -e corrupt/index.json ] || die "index.json written for a refused image"
	[ ! -e "corrupt/blobs/sha256/${layer#sha256:}" ] || die "the refused blob was kept"
	[ -z "$(find corrupt -name '*.part*')" ] || die "a partial download was left"
}

t_auth_none_refused() {
	run "$VEIL" image push --insecure-registry "$R2" tiny "$R2/tiny:1"
	rejected || return 1
	has "401" || return 1
	has "--registry-auth" || return 1
}

t_auth_option() {
	printf 'veil:%s\n' "$PW" >creds
	run "$VEIL" image push -v --insecure-registry "$R2" --registry-auth creds tiny "$R2/tiny:1"
	ok || return 1
	[ "$out" = "$TINY" ] || die "digest $out"
	lacks "$PW" || return 1
	VEIL_REGISTRY_AUTH="veil:$PW" run "$VEIL" image pull --insecure-registry "$R2" "$R2/tiny:1" auth-env
	ok || return 1
	lacks "$PW" || return 1
}

t_auth_file() {
	mkdir -p "$HOME/.docker"
	printf '{"auths":{"%s":{"auth":"%s"}}}' "$R2" "$(printf 'veil:%s' "$PW" | base64 -w0)" >auth.json
	REGISTRY_AUTH_FILE=$WORK/auth.json run "$VEIL" image pull --insecure-registry "$R2" "$R2/tiny:1" af
	ok && [ "$out" = "$TINY" ] || return 1
	# docker's config.json in $HOME, with the legacy URL form of the key
	printf '{"auths":{"http://%s/v1/":{"auth":"%s"}}}' "$R2" "$(printf 'veil:%s' "$PW" | base64 -w0)" \
		>"$HOME/.docker/config.json"
	run "$VEIL" image pull --insecure-registry "$R2" "$R2/tiny:1" af2
	rm -f "$HOME/.docker/config.json"
	ok && [ "$out" = "$TINY" ] || return 1
	run "$VEIL" image pull --authfile auth.json --insecure-registry "$R2" "$R2/tiny:1" af3
	ok || return 1
	# podman's per-session file; a HOST/REPO key applies to that repository
	mkdir -p xdg/containers
	printf '{"auths":{"%s/other":{"auth":"%s"},"%s/tiny":{"auth":"%s"}}}' "$R2" \
		"$(printf 'veil:%s' "$WRONG" | base64 -w0)" "$R2" "$(printf 'veil:%s' "$PW" | base64 -w0)" \
		>xdg/containers/auth.json
	XDG_RUNTIME_DIR=$WORK/xdg run "$VEIL" image pull --insecure-registry "$R2" "$R2/tiny:1" af4
	ok && [ "$out" = "$TINY" ]
}

t_auth_wrong_refused() {
	printf 'veil:%s\n' "$WRONG" >wrong
	run "$VEIL" image push --insecure-registry "$R2" --registry-auth wrong tiny "$R2/tiny:2"
	rejected || return 1
	has "HTTP 401" || return 1
	has "UNAUTHORIZED" || return 1
	has "refused" || return 1
	lacks "$WRONG" || return 1
	lacks "$(printf 'veil:%s' "$WRONG" | base64 -w0)" || return 1
	printf '{"auths":{"%s":{"auth":"%s"}}}' "$R2" "$(printf 'veil:%s' "$WRONG" | base64 -w0)" >wrong.json
	REGISTRY_AUTH_FILE=$WORK/wrong.json run "$VEIL" image pull --insecure-registry "$R2" "$R2/tiny:1" w
	rejected && has "HTTP 401" || return 1
	lacks "$WRONG" || return 1
	# nor in any log the registries wrote, nor in the layouts pulled with them
	! grep -rqF -e "$PW" -e "$WRONG" "$WORK"/*.log || die "a password is in a registry log" || return 1
	! grep -rqF -e "$PW" -e "$(printf 'veil:%s' "$PW" | base64 -w0)" auth-env af af2 af3 af4 ||
		die "a password is in a pulled layout"
}

t_tls_untrusted_refused() {
	run "$VEIL" image push tiny "$R3/tiny:1"
	rejected || return 1
	has "TLS verification failed" || return 1
	has "--insecure-registry $R3" || return 1
	# another port of the same host is another registry
	run "$VEIL" image push --insecure-registry 127.0.0.1 --insecure-registry "127.0.0.1:$((P3 + 1))" tiny "$R3/tiny:1"
	rejected
}

t_tls_insecure_registry_accepted() {
	run "$VEIL" image push --insecure-registry "$R3" tiny "$R3/tiny:1"
	ok && [ "$out" = "$TINY" ]
}

t_tls_ca_trusted() {
	SSL_CERT_FILE=$WORK/ca.pem run "$VEIL" image pull "docker://$R3/tiny:1" tls-pulled
	ok && [ "$out" = "$TINY" ] || return 1
	SSL_CERT_FILE=$WORK/ca.pem run "$VEIL" image push tiny "$R3/tiny:2"
	ok
}

t_bad_reference() {
	run "$VEIL" image pull "$R1/Upper:1" x
	rejected && has "not an image reference"
}

# the Bearer token flow and a lying registry: tests/e2e/fake_registry.py
start_fake() {
	P4=$(free_port)
	R4=127.0.0.1:$P4
	python3 "$ROOT/tests/e2e/fake_registry.py" "$P4" "$WORK/tiny" tiny tiny "veil:$PW" \
		"localhost:$P4" "$WORK/fake-requests.log" >"$WORK/fake.log" 2>&1 &
	pids+=($!)
	wait_for "$WORK/fake.log" "listening on"
}

t_bearer_token_flow() {
	start_fake || die "fake registry did not start: $(cat "$WORK/fake.log")" || return 1
	printf 'veil:%s\n' "$PW" >creds
	# the realm is plain HTTP on a name not given to --insecure-registry:
	# the credentials are not sent there
	run "$VEIL" image pull --insecure-registry "$R4" --registry-auth creds "$R4/tiny:tiny" bearer
	rejected || return 1
	has "is not an https:// URL" || return 1
	! grep -q '^GET /token' "$WORK/fake-requests.log" || die "credentials went to the realm" || return 1
	run "$VEIL" image pull -v --insecure-registry "$R4" --insecure-registry "localhost:$P4" \
		--registry-auth creds "$R4/tiny:tiny" bearer
	ok && [ "$out" = "$TINY" ] || die "bearer pull: $out" || return 1
	lacks "$PW" || return 1
	grep -q '^GET /token Basic' "$WORK/fake-requests.log" || die "no token request" || return 1
	grep -q '^GET /v2/tiny/blobs/.* Bearer' "$WORK/fake-requests.log" || die "no Bearer request" || return 1
	! grep -q '^[A-Z]* /v2/.* Basic' "$WORK/fake-requests.log" || die "Basic credentials sent to the registry, not only to the realm" || return 1
	printf 'veil:%s\n' "$WRONG" >wrong
	run "$VEIL" image pull --insecure-registry "$R4" --insecure-registry "localhost:$P4" \
		--registry-auth wrong "$R4/tiny:tiny" bearer2
	rejected && has "token service localhost:$P4 answered HTTP 401" && has "bad credentials" || return 1
	lacks "$WRONG"
}

t_lying_registry_refused() {
	local opts=(--insecure-registry "$R4" --insecure-registry "localhost:$P4" --registry-auth creds)
	run "$VEIL" image pull "${opts[@]}" "$R4/evil/tiny:tiny" evil
	rejected && has "blob sha256:" && has "refused" || return 1
	[ ! -e evil/index.json ] || die "index.json written for a refused image" || return 1
	run "$VEIL" image pull "${opts[@]}" "$R4/too-long/tiny:tiny" toolong
	rejected && has "larger than the" || return 1
	[ -z "$(find evil toolong -name '*.part*' 2>/dev/null)" ] || die "a partial download was left"
}

t_base_image_pushed() {
	if [ "${VEIL_SKIP_BASE_IMAGE:-}" = 1 ]; then
		echo "    (skipped: VEIL_SKIP_BASE_IMAGE=1)"
		return 0
	fi
	local base
	base=$("$ROOT/scripts/base-image.sh" 2>"$WORK/base.err") || die "base-image.sh: $(tail -5 "$WORK/base.err")"
	run "$VEIL" image push -n bookworm-python3 --insecure-registry "$R1" "$base" "$R1/bookworm-python3:3.11"
	ok || return 1
	local want
	want=$(jq -r '.manifests[] | select(.annotations."org.opencontainers.image.ref.name" == "bookworm-python3") | .digest' "$base/index.json")
	[ "$out" = "$want" ] || die "pushed $out, the layout has $want"
	run "$VEIL" image pull --insecure-registry "$R1" "$R1/bookworm-python3:3.11" base-pulled
	ok && [ "$out" = "$want" ] || return 1
	BASE_DIGEST=$want
	umoci unpack --image base-pulled:3.11 "$WORK/base-bundle" >/dev/null 2>&1 ||
		die "umoci unpack failed"
	[ -x "$WORK/base-bundle/rootfs/usr/bin/python3" ] || die "no python3 in the base image"
}

# `veil apply -f service.yaml` on the seed's service, verbatim: its base
# pulled from the loopback registry (the python image above), its image
# pushed to build.to (registry.scontain.com:5050, mapped to loopback)
SEED_TO=registry.scontain.com:5050/cicd/python_hello_user:latest
SEED_OCI=target/images/python_hello_user/oci
seed_apply() { # extra flags...
	VEIL_RUNTIME=$BUILD/veil-run VEIL_IMAGE_ROOT=$WORK/base-bundle/rootfs run "$VEIL" apply \
		-f service.yaml --base "docker://$R1/bookworm-python3:3.11" \
		--registry-mirror "registry.scontain.com:5050=$R1" --insecure-registry "$R1" "$@"
}

t_seed_built_on_pulled_base_and_pushed() {
	if [ -z "${BASE_DIGEST:-}" ]; then
		echo "    (skipped: no base image)"
		return 0
	fi
	mkdir -p "$WORK/seed" && cd "$WORK/seed" || return 1
	cp "$ROOT/examples/python-hello-user/service.yaml" "$ROOT/examples/python-hello-user/print_env.py" . ||
		return 1
	seed_apply -v && ok || return 1
	local built sent
	sent=$(grep -cE 'registry: PUT [^ ]*/blobs/' <<<"$err")
	built=$(jq -r '.manifests[0].digest' "$SEED_OCI/index.json")
	has "image digest   $built" && has "pushed         $SEED_TO@$built" || return 1
	has "base docker://$R1/bookworm-python3:3.11" || return 1
	# the base came from the loopback registry into the cache, by its digest
	[ "$(jq -r '.manifests[0].digest' target/cache/base/index.json)" = "$BASE_DIGEST" ] ||
		die "the cached base is not the pushed one" || return 1
	# at the registry (not at registry.scontain.com) under build.to's name;
	# skopeo copies it back unchanged
	run skopeo inspect --tls-verify=false "docker://$R1/cicd/python_hello_user:latest"
	ok && [ "$(jq -r .Digest <<<"$out")" = "$built" ] || die "skopeo inspect: $out" || return 1
	skopeo copy -q --src-tls-verify=false "docker://$R1/cicd/python_hello_user:latest" \
		"oci:$WORK/seed-back:latest" || die "skopeo copy failed" || return 1
	[ "$(jq -r '.manifests[0].digest' "$WORK/seed-back/index.json")" = "$built" ] ||
		die "skopeo's copy has another digest" || return 1
	# the base's layer was mounted from its repository there, not sent again
	[ "$sent" -eq 4 ] || die "expected 4 blobs sent (config, app, runtime, measurement record), not $sent" || return 1
	# again: the same digest, and no blob sent
	seed_apply -v && ok || return 1
	has "pushed         $SEED_TO@$built" || return 1
	[ "$(blob_uploads)" -eq 0 ] || die "blobs sent again: $err" || return 1
	# from the same inputs in a fresh target (a fresh pull): the same digest
	seed_apply -t "$WORK/seed-t2" --no-push -o json && ok || return 1
	[ "$(jq -r '.items[0].digest' <<<"$out")" = "$built" ] || die "another digest: $out" || return 1
	[ "$(jq -r '.items[0].pushed_digest' <<<"$out")" = null ] || die "--no-push pushed: $out" || return 1
	seed_apply -o json && ok && [ "$(jq -r '.items[0].pushed_digest' <<<"$out")" = "$built" ] ||
		die "-o json: $out" || return 1
	# the image's root file system: the base's python, the app, veil-run
	umoci unpack --image "$SEED_OCI:latest" "$WORK/seed-bundle" >/dev/null 2>&1 ||
		die "umoci unpack failed" || return 1
	local r=$WORK/seed-bundle/rootfs
	[ -x "$r/usr/bin/python3.11" ] || die "no /usr/bin/python3.11 from the base" || return 1
	cmp -s "$r/python/print_env.py" print_env.py || die "no /python/print_env.py" || return 1
	cmp -s "$r/usr/lib/veil/veil-run" "$BUILD/veil-run" || die "no veil-run at /usr/lib/veil/veil-run"
}

t_seed_failed_push_keeps_the_image() {
	[ -n "${BASE_DIGEST:-}" ] || return 0
	cd "$WORK/seed" || return 1
	# build.to's registry sent to a closed loopback port: the push fails
	VEIL_RUNTIME=$BUILD/veil-run VEIL_IMAGE_ROOT=$WORK/base-bundle/rootfs run "$VEIL" apply \
		-f service.yaml --base "docker://$R1/bookworm-python3:3.11" --insecure-registry "$R1" \
		--registry-mirror "registry.scontain.com:5050=127.0.0.1:1" --insecure-registry 127.0.0.1:1
	rejected || return 1
	has "image not pushed to $SEED_TO; it is built and kept in $SEED_OCI" || return 1
	[ -f "$SEED_OCI/index.json" ] || die "the built image was not kept"
	lacks "pushed         " || return 1
	# and a pull that fails names the base; nothing is built
	VEIL_RUNTIME=$BUILD/veil-run run "$VEIL" apply -f service.yaml -t "$WORK/seed-t3" --no-push \
		--base "docker://$R1/nosuch:1" --insecure-registry "$R1"
	rejected && has "base image 'docker://$R1/nosuch:1': not pulled; nothing was built" || return 1
	[ ! -e "$WORK/seed-t3/images/python_hello_user" ] || die "a build without its base wrote an image"
}

cd "$WORK" || exit 1
if ! setup; then
	echo "registry: setup failed"
	echo "registry: 0 passed, 1 failed"
	exit 1
fi
run_in_order registry t_push_tiny t_second_push_sends_no_blob t_push_mounts_from_another_repository \
	t_push_json_output \
	t_push_through_mirror t_plain_http_needs_insecure_registry t_pull_what_skopeo_pushed \
	t_pull_docker_schema2 \
	t_pull_index_picks_linux_amd64 t_corrupt_blob_refused t_auth_none_refused t_auth_option \
	t_auth_file t_auth_wrong_refused t_tls_untrusted_refused t_tls_insecure_registry_accepted \
	t_tls_ca_trusted t_bad_reference t_bearer_token_flow t_lying_registry_refused \
	t_base_image_pushed t_seed_built_on_pulled_base_and_pushed t_seed_failed_push_keeps_the_image

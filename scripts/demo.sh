#!/usr/bin/env bash
# The seed's example end to end, as far as veil goes today: validate the two
# manifests verbatim, measure the service, start a local CAS with its embedded
# store, derive the policy and Helm chart and upload the policy to the CAS.
# Run as root on Debian 12: installs what it needs, builds, runs.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/setup.sh"
# veil apply builds each service's image too; with no registry here its base is
# "scratch" (veil's layers alone: docs/images.md)
export VEIL_BASE=scratch
bin=$root/build
ex=$root/examples/python-hello-user
out=${VEIL_DEMO_DIR:-$root/demo}
port=${VEIL_DEMO_PORT:-8081}
rm -rf "$out"
mkdir -p "$out"
cd "$out"
export VEIL_HOME=$out/veil-home # the demo's client identity and pinned CAS
step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; "$@"; }

made_python=
"$bin/veil-las" --socket "$out/las.sock" --data "$out/las-data" >"$out/las.log" 2>&1 &
las_pid=$!
for _ in $(seq 100); do grep -q "key hash" "$out/las.log" && break; sleep 0.05; done
platform=$("$bin/veil-las" --print-key-hash --data "$out/las-data")
"$bin/veil-cas" --init --data "$out/cas-data" --listen "127.0.0.1:$port" --trust-platform "$platform" \
	>"$out/cas.log" 2>&1 &
cas_pid=$!
trap 'kill "$cas_pid" "$las_pid" 2>/dev/null; wait 2>/dev/null; [ -n "$made_python" ] && rmdir /python' EXIT
for _ in $(seq 100); do grep -q listening "$out/cas.log" && break; sleep 0.05; done
step cat "$out/las.log" "$out/cas.log"

step "$bin/veil" check "$ex/service.yaml" "$ex/Meshfile"
step "$bin/veil" apply -f "$ex/service.yaml" -t target --no-push
# the seed's tolerance flags accept the simulated CAS on first contact
step "$bin/veil" apply -f "$ex/Meshfile" -t target --mode debug --format helm,manifests \
	--cas "https://127.0.0.1:$port"
step "$bin/veil" policy list
step "$bin/veil" policy get myPythonApp
step ls -R target/helm

# The service starts through veil-run, with the app's files at /python in a
# private mount namespace (no container engine needed), and only the settings
# a pod gets: config id, CAS address and key, LAS socket. Its whole-image
# check looks at the image veil built, unpacked into a folder (its layers in
# order; VEIL_IMAGE_ROOT is honoured for debug-mode policies only).
mkdir -p "$out/files" && cp "$ex/print_env.py" "$out/files/"
"$root/scripts/unpack-image.sh" "$out/target/images/python_hello_user/oci" "$out/image-root"
if [ ! -d /python ]; then mkdir /python && made_python=1; fi
cas_key=$("$bin/veil-cas" --print-key-hash --data "$out/cas-data")
step unshare -m --propagation private bash -c 'mount --bind "$1" /python && shift && exec env -i "$@"' \
	_ "$out/files" SCONE_CONFIG_ID=myPythonApp/pythonapp SCONE_CAS_ADDR=127.0.0.1:$port \
	SCONE_LAS_ADDR="$out/las.sock" VEIL_CAS_KEY="$cas_key" API_PASSWORD=from-the-host \
	VEIL_IMAGE_ROOT="$out/image-root" "$bin/veil-run"
step "$bin/veil" audit verify "$out/cas-data/audit.log"
cat <<EOM

print_env.py got API_USER from the policy and a 10-character API_PASSWORD that
the CAS generated and released only after veil-las vouched for veil-run's
measurement and veil-run showed the image and the protected files unchanged; the host's
API_PASSWORD was ignored. (--mode debug: simulation evidence is always debug.)
Output folder: $out
EOM

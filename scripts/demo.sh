#!/usr/bin/env bash
# The seed's example end to end, as far as veil goes today: validate the two
# manifests verbatim, measure the service, derive the policy and Helm chart.
# Run as root on Debian 12: installs what it needs, builds, runs.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/setup.sh" >/dev/null
veil=$root/build/veil
ex=$root/examples/python-hello-user
out=${VEIL_DEMO_DIR:-$root/demo}
mkdir -p "$out"
cd "$out"
step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; "$@"; }
step "$veil" check "$ex/service.yaml" "$ex/Meshfile"
step "$veil" apply -f "$ex/service.yaml" -t target --no-push
step "$veil" apply -f "$ex/Meshfile" -t target --mode debug --no-upload -o helm,yaml
step cat target/policies/myPythonApp.yaml
step ls -R target/helm target/manifests
cat <<EOM

The policy above is what the CAS will hold for namespace myPythonApp: API_USER
comes from the Meshfile, API_PASSWORD is the placeholder \$\$SCONE::password\$\$
that only the CAS fills, with a 10-character secret it generates itself.
(--mode debug: simulation evidence is always debug, so the seed's demo policy
tolerates debug-mode.) Not yet here: starting veil-cas with its embedded
store, uploading the policy, and the attested start of print_env.py; those
arrive with the veil-cas and veil-run issues. Output folder: $out/target
EOM

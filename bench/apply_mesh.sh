#!/usr/bin/env bash
# Benchmark: `veil apply -f Meshfile` on a generated mesh of N services
# (default 1000), each with local and global variables, a shared global
# secret, a local secret, an injection file and a per-service env block.
# Reports the median of R runs against the design target (< 1 s for 1,000).
# There is no offline peer for this step (SCONE's sconectl is not packaged),
# so the ratio reported is against the target.
# Usage: bench/apply_mesh.sh [VEIL] [N] [R]
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
VEIL=$(realpath "${1:-$root/build/veil}")
# veil apply builds each service's image too; with no registry here its base is
# "scratch" (veil's layers alone: docs/images.md)
export VEIL_BASE=scratch
N=${2:-1000}
R=${3:-5}
if [ -n "${BENCH_DIR:-}" ]; then # keep the generated mesh for profiling
	work=$BENCH_DIR
	rm -rf "$work" && mkdir -p "$work"
else
	work=$(mktemp -d)
	trap 'rm -rf "$work"' EXIT
fi
cd "$work"
export VEIL_RUNTIME=$root/tests/e2e/golden/runtime.bin

{
	printf 'apiVersion: veil/v1\nkind: mesh\n'
	printf 'cas:\n  - name: cas\n    alias: [security]\n    cas_url: cas.bench.internal\n    tolerance: "-G"\n'
	printf 'policy:\n  namespace: bench\n  tolerate: "outdated-tcb"\n'
	printf 'env:\n  - service: global\n    env:\n      - {name: REGION, value: eu}\n      - {name: imagePullSecrets, value: pull}\n      - {name: APP_SERVICE_PORT, value: 8443}\n'
	for i in $(seq 1 "$N"); do
		printf '  - service: svc%d\n    env:\n      - {name: PEER, value: "svc%d:8443"}\n' "$i" $(((i % N) + 1))
	done
	printf 'services:\n'
	for i in $(seq 1 "$N"); do
		printf '  - name: svc%d\n    image: "registry.bench/svc%d:1"\n' "$i" "$i"
	done
} >Meshfile

t0=$(date +%s%N)
for i in $(seq 1 "$N"); do
	mkdir -p "s$i"
	printf 'print("service %d")\n' "$i" >"s$i/app.py"
	cat >"s$i/service.yaml" <<EOM
apiVersion: veil/v1
kind: genservice
environment:
  local:
    - name: DB_PASSWORD
      value: "\$\$SCONE::db_password\$\$"
    - name: TOKEN
      value: "\$\$SCONE::token$i:hex\$\$"
    - name: LOG
      value: error
  global:
    - name: REGION
    - name: PEER
    - name: CAS
      value: "{{cas_cas_cas_url}}"
secrets:
  global:
    - name: db_password
      kind: ascii
      size: 24
  local:
    - name: token$i
      kind: binary
      size: 32
injection_files:
  - path: /etc/app/peer.conf
    content: "peer={{PEER}}\\nregion={{REGION}}\\n"
build:
  name: svc$i
  kind: python
  to: "registry.bench/svc$i:1"
  pwd: /app
  command: python3 app.py
  copy:
    - app.py
EOM
	"$VEIL" apply -f "s$i/service.yaml" --no-push >/dev/null
done
t1=$(date +%s%N)
echo "measured $N services in $(((t1 - t0) / 1000000)) ms ($(((t1 - t0) / N / 1000)) us per 'veil apply -f service.yaml' process)"

times=()
for r in $(seq 1 "$R"); do
	rm -rf target/policies target/helm
	a=$(date +%s%N)
	"$VEIL" apply -f Meshfile --no-upload >/dev/null
	b=$(date +%s%N)
	times+=($(((b - a) / 1000000)))
done
median=$(printf '%s\n' "${times[@]}" | sort -n | sed -n "$(((R + 1) / 2))p")
services=$(grep -c '^  - command:' target/policies/bench.yaml)
[ "$services" -eq "$N" ] || { echo "policy has $services services, expected $N"; exit 1; }
echo "veil apply -f Meshfile, $N services: runs ${times[*]} ms; median $median ms"
echo "policy $(wc -c <target/policies/bench.yaml) bytes, chart $(ls target/helm/templates | wc -l) templates"
awk -v m="$median" 'BEGIN { printf "ratio to the 1000 ms target: %.3f (%s)\n", m / 1000, m < 1000 ? "met" : "MISSED" }'

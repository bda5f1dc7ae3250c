#!/usr/bin/env bash
# Offline Kubernetes schema test of what `veil apply -f Meshfile` generates.
#
#   tests/k8s/run.sh VEIL_BINARY
#
# Builds two meshes with VEIL_BINARY in a temporary directory (the seed's python-hello-user
# example and a generated two-service mesh, one service without APP_SERVICE_PORT), then checks
# target/manifests and target/helm with validate.mjs (kubernetes-models schemas, strict fields,
# apiserver rules; the chart rendered and compared with the manifests), plus negative checks that
# validate.mjs rejects broken input. Needs node and npm; installs node_modules here if missing.
# Ends with "N passed, N failed"; exit 0 only if nothing failed. KEEP=1 keeps the work directory.
set -u

if [ $# -ne 1 ]; then
	echo "usage: $0 VEIL_BINARY" >&2
	exit 2
fi
VEIL=$(cd "$(dirname "$1")" 2>/dev/null && pwd)/$(basename "$1")
if [ ! -x "$VEIL" ]; then
	echo "$0: $1 is not an executable" >&2
	exit 2
fi
HERE=$(cd "$(dirname "$0")" && pwd)
EXAMPLE=$(cd "$HERE/../../examples/python-hello-user" && pwd)

passed=0
failed=0
pass() {
	passed=$((passed + 1))
	echo "PASS $1"
}
fail() {
	failed=$((failed + 1))
	echo "FAIL $1"
}
finish() {
	echo
	echo "$passed passed, $failed failed"
	[ "$failed" -eq 0 ]
	exit $?
}

for tool in node npm; do
	if ! command -v "$tool" >/dev/null; then
		fail "$tool is not installed (apt-get install nodejs npm)"
		finish
	fi
done

# The dependencies, pinned in package.json; no lock file (it would name registry hosts).
if [ ! -d "$HERE/node_modules/kubernetes-models" ] || [ ! -d "$HERE/node_modules/js-yaml" ]; then
	echo "installing node_modules in $HERE"
	if ! (cd "$HERE" && npm install --no-audit --no-fund --no-package-lock --loglevel=error); then
		fail "npm install in $HERE"
		finish
	fi
fi

# veil apply builds each service's image too; with no registry here its base is
# "scratch" (veil's layers alone: docs/images.md)
export VEIL_BASE=scratch
WORK=$(mktemp -d "${TMPDIR:-/tmp}/veil-k8s.XXXXXX")
if [ -n "${KEEP:-}" ]; then
	echo "keeping $WORK (KEEP is set)"
else
	trap 'rm -rf "$WORK"' EXIT
fi

# run NAME CMD...: one check; its output is shown indented.
run() {
	local name=$1
	shift
	local out rc
	out=$("$@" 2>&1)
	rc=$?
	[ -n "$out" ] && printf '%s\n' "$out" | sed 's/^/    /'
	if [ $rc -eq 0 ]; then pass "$name"; else fail "$name (exit $rc)"; fi
	return $rc
}

# run_fails NAME WHY CMD...: a negative check; CMD must exit 1 (invalid; 2 is a usage error)
# and say WHY (a fixed string), so that it fails for the reason the check is about.
run_fails() {
	local name=$1 why=$2
	shift 2
	local out rc
	out=$("$@" 2>&1)
	rc=$?
	printf '%s\n' "$out" | sed 's/^/    /'
	if [ $rc -ne 1 ]; then
		fail "$name: expected exit 1, got $rc"
	elif ! grep -qF -- "$why" <<<"$out"; then
		fail "$name: rejected, but without saying '$why'"
	else
		pass "$name (rejected: $why)"
	fi
}

validate() { node "$HERE/validate.mjs" "$@"; }
in_dir() { # DIR CMD...
	(cd "$1" && shift && exec "$@")
}

# check_mesh NAME DIR: validate DIR/target as manifests and as a chart.
check_mesh() {
	local name=$1 dir=$2
	run "$name: manifests are valid Kubernetes objects" \
		validate --manifests "$dir/target/manifests"
	run "$name: chart renders to valid objects equal to the manifests" \
		validate --chart "$dir/target/helm" --compare "$dir/target/manifests"
}

# ------------------------------------------------------------------ mesh 1: the seed's example
M1=$WORK/hello
mkdir -p "$M1"
if run "hello: veil apply -f service.yaml" \
	in_dir "$M1" env VEIL_RUNTIME=/bin/true "$VEIL" apply -f "$EXAMPLE/service.yaml" --no-push &&
	run "hello: veil apply -f Meshfile" \
		in_dir "$M1" "$VEIL" apply -f "$EXAMPLE/Meshfile" --no-upload --format helm,manifests; then
	check_mesh hello "$M1"
	# veil-run pins files (a private mount namespace): SYS_ADMIN and an AppArmor profile that
	# allows mount(2); the program runs as root and serves port 443
	D1=$M1/target/manifests/pythonapp-deployment.yaml
	hello_sc=$(node -e '
		const y = require(process.argv[2]);
		const c = y.load(require("fs").readFileSync(process.argv[1], "utf8")).spec.template.spec.containers[0];
		console.log(JSON.stringify(c.securityContext));' "$D1" "$HERE/node_modules/js-yaml")
	if [ "$hello_sc" = '{"appArmorProfile":{"type":"Unconfined"},"capabilities":{"add":["NET_BIND_SERVICE","SYS_ADMIN"],"drop":["ALL"]},"runAsUser":0}' ]; then
		pass "hello: the container drops every capability and adds SYS_ADMIN (pinning) and NET_BIND_SERVICE (port 443)"
	else
		fail "hello: securityContext is $hello_sc"
	fi
fi

# ------------------------------------------------------------------ mesh 2: two services
# web-frontend: per-service APP_SERVICE_PORT and image_secrets -> Deployment + Service.
# queue_worker: no APP_SERVICE_PORT -> Deployment without ports and no Service; an injection
# file -> a memory emptyDir at its folder; the flat
# (global) imagePullSecrets; its own uid (build.user). The mesh tolerates insecure-unpinned-files,
# so neither container gets SYS_ADMIN. The names exercise veil's name mapping ('_' -> '-' in Kubernetes
# names, '-' -> '_' in values keys).
M2=$WORK/shop
mkdir -p "$M2/frontend" "$M2/worker"
cat >"$M2/frontend/service.yaml" <<'EOF'
apiVersion: scone/5.8
kind: genservice
environment:
  local:
    - name: SESSION_KEY
      value: "$$SCONE::session_key:hex$$"
  global:
    - name: BACKEND_QUEUE
    - name: LOG_LEVEL
      value: info
secrets:
  local:
    - name: session_key
      kind: binary
      size: 32
build:
  name: shop_frontend
  kind: python
  to: registry.example/shop/frontend:1.2
  pwd: /app
  command: python3 web.py
  copy:
    - web.py
EOF
cat >"$M2/frontend/web.py" <<'EOF'
import os
print("frontend, queue", os.environ.get("BACKEND_QUEUE"))
EOF
cat >"$M2/worker/service.yaml" <<'EOF'
apiVersion: scone/5.8
kind: genservice
environment:
  local:
    - name: DB_PASSWORD
      value: "$$SCONE::db_password$$"
  global:
    - name: LOG_LEVEL
secrets:
  global:
    - name: db_password
      kind: ascii
      size: 16
injection_files:
  - path: /run/secrets/db.conf
    content: "password=$$SCONE::db_password$$"
build:
  name: shop_worker
  user: 2000
  kind: python
  to: registry.example/shop/worker:1.2
  pwd: /srv
  command: python3 worker.py
  copy:
    - worker.py
EOF
cat >"$M2/worker/worker.py" <<'EOF'
import os
print("worker, db password set:", "DB_PASSWORD" in os.environ)
EOF
cat >"$M2/Meshfile" <<'EOF'
apiVersion: scone/5.8
kind: mesh

cas:
  - name: cas
    alias: ["image", "security", "access", "attestation"]
    cas_url: cas.shop.example:8081
    tolerance: "--only_for_testing-trust-any --only_for_testing-debug -G"

policy:
  namespace: shop_Mesh
  tolerate: [debug-mode, insecure-unpinned-files]

env:
  - name: LOG_LEVEL
    value: warning
  - name: imagePullSecrets
    value: shop-pull
  - service: web-frontend
    env:
      - name: BACKEND_QUEUE
        value: "queue-worker:5672"
      - name: APP_SERVICE_PORT
        value: 8080

services:
  - name: web-frontend
    image: registry.example/shop/frontend:1.2
    image_secrets: [frontend-pull, shared.pull]
  - name: queue_worker
    image: registry.example/shop/worker:1.2
EOF
if run "shop: veil apply -f frontend/service.yaml" \
	in_dir "$M2" env VEIL_RUNTIME=/bin/true "$VEIL" apply -f frontend/service.yaml --no-push &&
	run "shop: veil apply -f worker/service.yaml" \
		in_dir "$M2" env VEIL_RUNTIME=/bin/true "$VEIL" apply -f worker/service.yaml --no-push &&
	run "shop: veil apply -f Meshfile" \
		in_dir "$M2" "$VEIL" apply -f Meshfile --no-upload --format helm,manifests; then
	check_mesh shop "$M2"
	# What this mesh must have produced, beyond being valid.
	T=$M2/target
	expect() { # NAME TEST...
		local name=$1
		shift
		if "$@"; then pass "shop: $name"; else fail "shop: $name"; fi
	}
	expect "queue_worker has a Deployment" test -f "$T/manifests/queue-worker-deployment.yaml"
	expect "queue_worker (no APP_SERVICE_PORT) has no Service" \
		test ! -e "$T/manifests/queue-worker-service.yaml" -a ! -e "$T/helm/templates/queue-worker-service.yaml"
	expect "queue_worker's Deployment declares no ports" \
		bash -c "! grep -q containerPort '$T/manifests/queue-worker-deployment.yaml'"
	expect "queue_worker uses the Meshfile's imagePullSecrets" \
		grep -q 'name: shop-pull' "$T/manifests/queue-worker-deployment.yaml"
	expect "web-frontend has a Service on port 8080" \
		grep -q 'port: 8080' "$T/manifests/web-frontend-service.yaml"
	# the mesh tolerates unpinned files: no SYS_ADMIN, so no AppArmor exception and no privilege
	# escalation; queue_worker runs as uid 2000 and has an injection file
	sc_of() { # deployment file -> its container's securityContext as JSON
		node -e '
			const y = require(process.argv[2]);
			const c = y.load(require("fs").readFileSync(process.argv[1], "utf8")).spec.template.spec.containers[0];
			console.log(JSON.stringify(c.securityContext));' "$1" "$HERE/node_modules/js-yaml"
	}
	expect "queue_worker (own uid, injection file, unpinned) adds CHOWN, SETGID, SETPCAP, SETUID and no SYS_ADMIN" \
		test "$(sc_of "$T/manifests/queue-worker-deployment.yaml")" = '{"allowPrivilegeEscalation":false,"capabilities":{"add":["CHOWN","SETGID","SETPCAP","SETUID"],"drop":["ALL"]},"runAsUser":0}'
	expect "web-frontend (unpinned, runs as the image's user) adds nothing and may not escalate" \
		test "$(sc_of "$T/manifests/web-frontend-deployment.yaml")" = '{"allowPrivilegeEscalation":false,"capabilities":{"drop":["ALL"]}}'
	expect "web-frontend uses its image_secrets" \
		bash -c "grep -q 'name: frontend-pull' '$T/manifests/web-frontend-deployment.yaml' && grep -q 'name: shared.pull' '$T/manifests/web-frontend-deployment.yaml'"
fi

# ------------------------------------------------------------------ negative checks
# validate.mjs must reject what Kubernetes would reject, and the chart renderer must refuse any
# template it does not understand rather than guess.
NEG=$WORK/negative
if [ -f "$M1/target/manifests/pythonapp-deployment.yaml" ]; then
	GOOD=$M1/target/manifests/pythonapp-deployment.yaml
	neg() { # NAME WHY SED-SCRIPT: a copy of the good Deployment, broken by SED-SCRIPT
		mkdir -p "$NEG/$1"
		sed "$3" "$GOOD" >"$NEG/$1/pythonapp-deployment.yaml"
		if cmp -s "$GOOD" "$NEG/$1/pythonapp-deployment.yaml"; then
			fail "negative: $1: the edit did not change the Deployment"
		else
			run_fails "negative: $1" "$2" validate --manifests "$NEG/$1"
		fi
	}
	neg "containerPort is a string" "containerPort must be integer" \
		's/containerPort: 443/containerPort: "abc"/'
	neg "no containers" "must have required property containers" '/^      containers:$/,$d'
	neg "misspelt field" 'unknown field "spec.template.spec.containers[0].imagePulPolicy"' \
		's/imagePullPolicy:/imagePulPolicy:/'
	neg "selector does not match the template" "selector\` does not match template" \
		'/^    matchLabels:$/{n;s/pythonapp/other/}'
	neg "unquoted YAML 1.1 boolean" "part-of must be string" \
		's/part-of: mypythonapp/part-of: yes/'
	neg "no privilege escalation next to SYS_ADMIN" \
		'cannot set `allowPrivilegeEscalation` to false and `capabilities.Add` CAP_SYS_ADMIN' \
		's/^          securityContext:$/&\n            allowPrivilegeEscalation: false/'
	neg "a Localhost AppArmor profile without its name" \
		"appArmorProfile.localhostProfile: required when type is Localhost" \
		's/type: Unconfined/type: Localhost/'
	mkdir -p "$NEG/unknown-kind"
	printf 'apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: w\n' >"$NEG/unknown-kind/w.yaml"
	run_fails "negative: unknown kind" "unknown apiVersion/kind example.com/v1 Widget" \
		validate --manifests "$NEG/unknown-kind"
fi
if [ -d "$M1/target/helm" ]; then
	chart_neg() { # NAME WHY REPLICAS: the good chart with "replicas: REPLICAS" in its Deployment
		mkdir -p "$NEG/$1"
		cp -r "$M1/target/helm" "$NEG/$1/helm"
		local tpl=$NEG/$1/helm/templates/pythonapp-deployment.yaml
		REPLICAS=$3 awk '/^  replicas: /{print "  replicas: " ENVIRON["REPLICAS"]; next} {print}' \
			"$M1/target/helm/templates/pythonapp-deployment.yaml" >"$tpl"
		if ! grep -qF "  replicas: $3" "$tpl"; then
			fail "negative: chart $1: the edit did not change the template"
		else
			run_fails "negative: chart $1" "$2" validate --chart "$NEG/$1/helm"
		fi
	}
	chart_neg "with an unsupported template construct" \
		"pythonapp-deployment.yaml:10: unsupported template construct" \
		'{{ .Values.services.pythonapp.replicas | default 2 }}'
	chart_neg "with a Helm built-in object" "unsupported template construct {{ .Release.Name }}" \
		'{{ .Release.Name }}'
	chart_neg "naming a value that is not set" ".Values.services.pythonapp.replica is not set" \
		'{{ .Values.services.pythonapp.replica }}'
	chart_neg "rendering a string where an integer belongs" "replicas must be integer" \
		'{{ .Values.services.pythonapp.image | quote }}'
	mkdir -p "$NEG/compare"
	cp -r "$M1/target/helm" "$NEG/compare/helm"
	cp -r "$M1/target/manifests" "$NEG/compare/manifests"
	sed -i 's/replicas: 1/replicas: 2/' "$NEG/compare/manifests/pythonapp-deployment.yaml"
	run_fails "negative: chart differing from its manifests" ".spec.replicas: chart has 1, manifest has 2" \
		validate --chart "$NEG/compare/helm" --compare "$NEG/compare/manifests"
fi

finish

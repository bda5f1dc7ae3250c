# Helpers the key-process scenarios share (keyproc.sh, hsm.sh, recovery.sh):
# a policy whose service gets a generated password, one attestation through
# tests/e2e/attack_cas_robust.py, and the password read out of the sealed
# answer. They use the caller's WORK, PY, PORT, CERT, KEY, KH, PYHASH, BUILD.
write_policy() { # ns
	cat >"$WORK/$1.yaml" <<YAML
name: $1
version: "0.3"
security:
  attestation:
    tolerate: [debug-mode]
services:
  - name: app
    command: python3 app.py
    pwd: /python
    mrenclaves: [$PYHASH]
    environment:
      API_PASSWORD: "\$\$SCONE::password\$\$"
secrets:
  - name: password
    kind: ascii
    size: 32
YAML
	python3 -c 'import json,sys; print(json.dumps({"policy": open(sys.argv[1]).read()}))' "$WORK/$1.yaml" >"$WORK/$1.json"
}
attest_once() { # config_id -> prints the status line and the body (the request in $WORK/last.req)
	$PY attest "$PORT" "$CERT" "$KEY" "$WORK/las.sock" "$KH" "$1" 0 "$WORK/last.req"
}
password_of() {
	sed -n 2p "$1" | "$BUILD/tests/sealed_open" "$KEY" "$WORK/last.req" |
		python3 -c 'import json,sys; print(json.load(sys.stdin)["environment"]["API_PASSWORD"])'
}

# stop_cas: SIGTERM to veil-cas (CAS_PID), its exit status; a sanitizer
# report in WORK/cas.err fails it
stop_cas() {
	[ -n "$CAS_PID" ] || return 0
	kill -TERM "$CAS_PID" 2>/dev/null
	wait "$CAS_PID" 2>/dev/null
	local r=$?
	CAS_PID=
	! grep -q "Sanitizer" "$WORK/cas.err" || die "$(grep -A12 Sanitizer "$WORK/cas.err")" || return 1
	return $r
}

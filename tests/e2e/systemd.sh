#!/usr/bin/env bash
# Checks the systemd units in deploy/systemd with systemd-analyze, offline (no systemd needs to
# run): `verify` (syntax, known options, the ExecStart binaries: the units' /usr/local/bin is
# replaced by BUILD_DIR, their man pages are BUILD_DIR/docs/man's when it has them), `security
# --offline` (the exposure level stays at most 2.5 of 10), and that verify refuses a broken unit.
# Usage: tests/e2e/systemd.sh BUILD_DIR. Ends with "systemd: N passed, N failed".
set -u
BUILD=$(cd "${1:?usage: systemd.sh BUILD_DIR}" && pwd)
UNITS=$(cd "$(dirname "$0")/../../deploy/systemd" && pwd)
passed=0
failed=0
pass() {
	passed=$((passed + 1))
	echo "ok   $1"
}
fail() {
	failed=$((failed + 1))
	echo "FAIL $1"
}
if ! command -v systemd-analyze >/dev/null; then
	fail "systemd-analyze is not installed (apt-get install systemd)"
	echo "systemd: $passed passed, $failed failed"
	exit 1
fi
WORK=$(mktemp -d "${TMPDIR:-/tmp}/veil-systemd.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
# the man pages as `man` finds them (verify runs `man` for Documentation=man:...)
mkdir -p "$WORK/man/man8" "$WORK/units"
if [ -f "$BUILD/docs/man/veil-cas.8" ] && [ -f "$BUILD/docs/man/veil-las.8" ]; then
	ln -s "$BUILD/docs/man/veil-cas.8" "$BUILD/docs/man/veil-las.8" "$WORK/man/man8/"
	keep_docs=1
else
	echo "note: $BUILD has no man pages; checking the units without their Documentation= lines"
	keep_docs=0
fi
for u in "$UNITS"/*.service "$UNITS"/*.socket; do
	[ -f "$u" ] || continue
	sed "s|/usr/local/bin/|$BUILD/|g" "$u" >"$WORK/units/$(basename "$u")"
	[ "$keep_docs" = 1 ] || sed -i '/^Documentation=man:/d' "$WORK/units/$(basename "$u")"
done
n=$(ls "$WORK/units" | wc -l)
[ "$n" -ge 2 ] && pass "deploy/systemd has $n units" || fail "deploy/systemd has $n units, not veil-cas's and veil-las's"
for u in "$WORK"/units/*; do
	name=$(basename "$u")
	if out=$(MANPATH=$WORK/man systemd-analyze verify "$u" 2>&1) && [ -z "$out" ]; then
		pass "$name: systemd-analyze verify"
	else
		fail "$name: systemd-analyze verify: $out"
	fi
	level=$(systemd-analyze security --offline=yes "$u" 2>/dev/null | sed -n 's/.*Overall exposure level for .*: \([0-9.]*\) .*/\1/p')
	if [ -n "$level" ] && awk -v l="$level" 'BEGIN { exit !(l <= 2.5) }'; then
		pass "$name: exposure level $level (at most 2.5)"
	else
		fail "$name: exposure level '${level:-unknown}' (more than 2.5, or not computed)"
	fi
done
# verify must find a real mistake: an option's value misspelt, and a missing binary
sed 's/^ProtectSystem=strict$/ProtectSystem=strictly/' "$WORK/units/veil-cas.service" >"$WORK/broken.service"
# (verify only warns of a bad value, and still exits 0: the warning is what is checked)
out=$(MANPATH=$WORK/man systemd-analyze verify "$WORK/broken.service" 2>&1)
if grep -q "Failed to parse protect system value.*strictly" <<<"$out"; then
	pass "verify names a misspelt ProtectSystem value"
else
	fail "verify said nothing of ProtectSystem=strictly: $out"
fi
sed "s|$BUILD/veil-las|$WORK/no-such-veil-las|" "$WORK/units/veil-las.service" >"$WORK/missing.service"
if MANPATH=$WORK/man systemd-analyze verify "$WORK/missing.service" >/dev/null 2>&1; then
	fail "verify accepted a unit whose binary does not exist"
else
	pass "verify refuses a unit whose binary does not exist"
fi
echo "systemd: $passed passed, $failed failed"
[ "$failed" -eq 0 ]

#!/usr/bin/env bash
# Golden test of every command's --help: tests/e2e/golden/help/<words>.txt
# holds the exact stdout of `<words joined by spaces> --help`, the words being
# the file name split at '.': veil.policy.get.txt is `veil policy get --help`,
# veil-cas.txt is `veil-cas --help`. --help must exit 0 and print to stdout
# only. UPDATE_GOLDEN=1 rewrites the files from the current binaries.
# Usage: tests/e2e/help.sh BUILD_DIR
set -u
BUILD=$(cd "${1:?usage: help.sh BUILD_DIR}" && pwd)
GOLDEN=$(cd "$(dirname "$0")/golden/help" && pwd)
passed=0
failed=0
for f in "$GOLDEN"/*.txt; do
	name=$(basename "$f" .txt)
	IFS=. read -ra words <<<"$name"
	out=$(mktemp)
	err=$(mktemp)
	"$BUILD/${words[0]}" "${words[@]:1}" --help >"$out" 2>"$err"
	rc=$?
	if [ "${UPDATE_GOLDEN:-}" = 1 ] && [ "$rc" -eq 0 ]; then cp "$out" "$f"; fi
	if [ "$rc" -ne 0 ]; then
		echo "FAIL ${words[*]} --help: exit $rc: $(head -3 "$err")"
		failed=$((failed + 1))
	elif [ -s "$err" ]; then
		echo "FAIL ${words[*]} --help: wrote to stderr: $(head -3 "$err")"
		failed=$((failed + 1))
	elif ! diff -u "$f" "$out" >"$out.diff"; then
		echo "FAIL ${words[*]} --help differs from golden/help/$name.txt (UPDATE_GOLDEN=1 after a deliberate change):"
		head -40 "$out.diff"
		failed=$((failed + 1))
	else
		echo "ok   ${words[*]} --help"
		passed=$((passed + 1))
	fi
	rm -f "$out" "$err" "$out.diff"
done
echo "help: $passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]

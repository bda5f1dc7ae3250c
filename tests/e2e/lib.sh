# Assertions shared by the e2e scripts; each prints why it failed.
# The caller sets WORK (a scratch folder).

die() { echo "    $*" >&2; return 1; }
# run CMD...: sets $out, $err, $rc
run() {
	"$@" >"$WORK/.out" 2>"$WORK/.err"
	rc=$?
	out=$(cat "$WORK/.out")
	err=$(cat "$WORK/.err")
}
ok() { [ "$rc" -eq 0 ] || die "expected success, got exit $rc: $err $out"; }
# veil exits 1 when it rejects its input or the CAS refuses (2 is a usage error)
rejected() { [ "$rc" -eq 1 ] || die "expected exit 1, got $rc (stdout: $out) (stderr: $err)"; }
has() { grep -qF -- "$1" <<<"$err$out" || die "expected message: $1"$'\n'"    got: $err$out"; }
lacks() { ! grep -qF -- "$1" <<<"$err$out" || die "unexpected message: $1"; }

# wait_for FILE TEXT: up to 5 s for TEXT to appear in FILE (a server's start line)
wait_for() { # file text
	for _ in $(seq 100); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.05; done
	return 1
}

# run_in_order LABEL TEST...: runs the scenarios in this shell, in order (they
# may share servers), from $WORK; prints "LABEL: N passed, N failed" and
# returns non-zero if any failed.
run_in_order() {
	local label=$1 t passed=0 failed=0
	shift
	local t0
	for t in "$@"; do
		cd "$WORK" || return 1
		t0=$SECONDS
		if "$t"; then
			echo "ok   $t ($((SECONDS - t0)) s)"
			passed=$((passed + 1))
		else
			echo "FAIL $t ($((SECONDS - t0)) s)"
			failed=$((failed + 1))
		fi
	done
	echo "$label: $passed passed, $failed failed"
	[ "$failed" -eq 0 ]
}

# build_lasc OUT: the static evidence client (tests/e2e/lasc.c) at OUT
build_lasc() {
	cc -static-pie -O1 -o "$1" "$(dirname "${BASH_SOURCE[0]}")/lasc.c"
}

# test_image_root: prints a folder holding the root file system of the image
# `veil apply` built last under $WORK (named $IMAGE, when set), its layers applied in order (veil's
# images on the "scratch" base hold no whiteouts). The e2e tests run veil-run
# on the host, not in the image, so they point its whole-image check there
# (VEIL_IMAGE_ROOT, honoured for debug-mode policies): the record the policy's
# image_root names, and the tree it lists.
test_image_root() {
	local oci dest=$WORK/.image-root
	oci=$(find "$WORK" -path "*/images/${IMAGE:-*}/oci" -prune -type d -printf '%T@ %p\n' 2>/dev/null |
		sort -n | tail -1 | cut -d' ' -f2-)
	rm -rf "$dest" && mkdir -p "$dest" || return 1
	if [ -n "$oci" ]; then
		"$(dirname "${BASH_SOURCE[0]}")/../../scripts/unpack-image.sh" "$oci" "$dest" || return 1
	fi
	echo "$dest"
}

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

#!/usr/bin/env bash
# What `meson install` puts on a machine: the four binaries, a man page per
# docs/man/*.scd (valid roff that man renders, with a NAME naming the page),
# one page per `veil` command, every flag of each leaf command's --help and of
# its command table in its page, the bash completion (sourced by bash), and the
# LICENSE and docs. Needs a build configured with scdoc found.
# Usage: tests/e2e/install.sh BUILD_DIR
set -u
BUILD=$(cd "${1:?usage: install.sh BUILD_DIR}" && pwd)
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
DEST=$(mktemp -d)
trap 'rm -rf "$DEST"' EXIT
passed=0
failed=0
ok() {
	echo "ok   $1"
	passed=$((passed + 1))
}
bad() {
	echo "FAIL $1"
	failed=$((failed + 1))
}
check() { # NAME CMD...
	local name=$1
	shift
	if "$@"; then ok "$name"; else bad "$name"; fi
}

if ! meson install -C "$BUILD" --destdir "$DEST" >"$DEST.log" 2>&1; then
	bad "meson install --destdir"
	tail -20 "$DEST.log"
	rm -f "$DEST.log"
	echo "install: $passed passed, $failed failed"
	exit 1
fi
rm -f "$DEST.log"
ok "meson install --destdir"
prefix=$(meson introspect "$BUILD" --buildoptions |
	python3 -c 'import json,sys; o={x["name"]:x["value"] for x in json.load(sys.stdin)}; print(o["prefix"], o["bindir"], o["mandir"], o["datadir"])')
read -r pfx bindir mandir datadir <<<"$prefix"
at() { case $1 in /*) echo "$DEST$1" ;; *) echo "$DEST$pfx/$1" ;; esac }
BIN=$(at "$bindir")
MAN=$(at "$mandir")
DOC=$(at "$datadir")/doc/veil
COMP=$(at "$datadir")/bash-completion/completions/veil

# exactly the four binaries, runnable
want="veil veil-cas veil-las veil-run"
got=$(ls "$BIN" 2>/dev/null | sort | tr '\n' ' ' | sed 's/ $//')
check "bin holds exactly: $want (got: $got)" [ "$got" = "$want" ]
for b in $want; do
	check "$b is executable and answers --help" bash -c '"$1" --help >/dev/null' _ "$BIN/$b"
done
# hardened as meson.build says: PIE (veil-run a static PIE), full RELRO
# (PT_GNU_RELRO, and BIND_NOW so the GOT is in it, read-only after start),
# the stack protector linked in. The shell one-liner for one binary:
#   readelf -d veil-cas | grep -E 'BIND_NOW|FLAGS'; readelf -lW veil-cas | grep GNU_RELRO
for b in $want; do
	check "$b is a PIE (ELF type DYN)" bash -c 'readelf -hW "$1" | grep -Eq "Type: +DYN "' _ "$BIN/$b"
	check "$b has a PT_GNU_RELRO segment" bash -c 'readelf -lW "$1" | grep -q GNU_RELRO' _ "$BIN/$b"
	check "$b binds now (DT_FLAGS BIND_NOW, DT_FLAGS_1 NOW)" \
		bash -c 'd=$(readelf -dW "$1"); grep -Eq "\(FLAGS\) +BIND_NOW" <<<"$d" && grep -Eq "\(FLAGS_1\).* NOW" <<<"$d"' _ "$BIN/$b"
	check "$b uses the stack protector (__stack_chk_fail)" \
		bash -c 'readelf -sW "$1" | grep -q __stack_chk_fail' _ "$BIN/$b"
done

# a page per source, where man looks for it, and nothing else
pages=()
for src in "$ROOT"/docs/man/*.scd; do
	pages+=("$(basename "$src" .scd)")
done
want=$(printf '%s\n' "${pages[@]}" | sort | tr '\n' ' ' | sed 's/ $//')
got=$(cd "$MAN" 2>/dev/null && ls man*/* | sed 's,.*/,,' | sort | tr '\n' ' ' | sed 's/ $//')
check "man pages installed: exactly the docs/man sources" [ "$got" = "$want" ]
for p in "${pages[@]}"; do
	name=${p%.*} sec=${p##*.}
	f=$MAN/man$sec/$p
	if [ ! -f "$f" ]; then
		bad "$p installed in man$sec"
		continue
	fi
	th=$(grep -m1 '^\.TH' "$f")
	check "$p: .TH names $name section $sec" grep -q "^\.TH \"*$name\"* \"*$sec\"*" <<<"$th"
	warn=$(groff -man -Tutf8 -ww -z "$f" 2>&1)
	check "$p: groff -man -ww renders without a warning${warn:+: $warn}" [ -z "$warn" ]
	text=$(MANWIDTH=200 man -l "$f" 2>&1)
	check "$p: man -l shows NAME '$name - ...'" grep -q "^ *$name - " <<<"$text"
	check "$p: man -l shows SEE ALSO" grep -q "^SEE ALSO" <<<"$text"
done

# one page per veil command, and every option of each --help in its page
cmds=$("$BIN/veil" --help | awk '/^Commands:/{on=1; next} on && /^  [a-z]/{print $1} on && /^$/{on=0}')
check "veil --help lists commands" [ -n "$cmds" ]
for c in $cmds; do
	found=
	for p in "${pages[@]}"; do
		case $p in veil-"$c".1 | veil-"$c"-*.1) found=$p ;; esac
	done
	check "veil $c has a man page (veil-$c.1 or veil-$c-*.1)" [ -n "$found" ]
done
# flags_in_page PAGE HELP-CMD...: the help's option list (its lines starting
# with '-') has at least one flag, and every flag has an entry in the page: a
# definition line of its OPTIONS or COMMANDS section, starting with '*', that
# holds *FLAG*. HELP-CMD is a leaf command: a group's help lists only -h and
# --version, whatever its commands take.
flags_in_page() {
	local page=$1 src=$ROOT/docs/man/$1.scd missing=() f n=0
	shift
	local help cmd="${1##*/} ${*:2}"
	cmd=${cmd% }
	help=$("$@" --help 2>&1) || {
		bad "$page: $cmd --help failed"
		return
	}
	local defs
	defs=$(sed 's/\\_/_/g' "$src" | awk '/^# /{on = $2 == "OPTIONS" || $2 == "COMMANDS"} on && /^\*/')
	for f in $(grep -E '^ +-' <<<"$help" | sed -E 's/^ +//; s/  .*//' |
		grep -oE -- '--?[a-zA-Z][a-zA-Z0-9_-]*' | sort -u); do
		n=$((n + 1))
		grep -qF -- "*$f*" <<<"$defs" || missing+=("$f")
	done
	local good=0
	[ "$n" -gt 0 ] && [ ${#missing[@]} -eq 0 ] && good=1
	check "$page has an entry for each of the $n options of '$cmd --help'${missing:+ (missing: ${missing[*]})}" \
		[ "$good" = 1 ]
}
# table_flags_in_page PAGE LEAF: every flag the command table of 'veil LEAF'
# accepts (the completion script is generated from the tables) has an entry in
# the page, those --help leaves out ("also -t, --target") included
table_flags_in_page() {
	local page=$1 leaf=$2 src=$ROOT/docs/man/$1.scd missing=() f n=0 defs flags
	defs=$(sed 's/\\_/_/g' "$src" | awk '/^# /{on = $2 == "OPTIONS" || $2 == "COMMANDS"} on && /^\*/')
	flags=$(awk -v p="\"veil $leaf\")" '{l = $0; sub(/^[ \t]+/, "", l)} l == p {on=1; next} on && /^\t\tflags=/ {sub(/^\t\tflags="/, ""); sub(/"$/, ""); print; exit}' "$COMP")
	for f in $flags; do
		n=$((n + 1))
		grep -qF -- "*$f*" <<<"$defs" || missing+=("$f")
	done
	local good=0
	[ "$n" -gt 0 ] && [ ${#missing[@]} -eq 0 ] && good=1
	check "$page has an entry for each of the $n flags veil's table gives 'veil $leaf'${missing:+ (missing: ${missing[*]})}" \
		[ "$good" = 1 ]
}
# commands_of HELP-CMD...: the words of the help's "Commands:" list (none for a leaf)
commands_of() {
	"$@" --help 2>/dev/null | awk '/^Commands:/{on=1; next} on && /^  [a-z]/{print $1} on && /^$/{on=0}'
}
# the leaf commands: each command of `veil --help`, or each of a group's commands
leaves=()
for c in $cmds; do
	subs=$(commands_of "$BIN/veil" "$c")
	if [ -z "$subs" ]; then
		leaves+=("$c")
	else
		for s in $subs; do leaves+=("$c $s"); done
	fi
done
want="image push|image pull|image control-plane|policy create|policy get|policy update|policy edit|policy delete|policy list|cas attest|audit verify|whoami|completion bash|evidence verify|check|apply"
got=$(printf '%s\n' "${leaves[@]}" | sort | paste -sd'|')
check "veil's leaf commands are the known ones (got: $got)" \
	[ "$got" = "$(tr '|' '\n' <<<"$want" | sort | paste -sd'|')" ]
flags_in_page veil.1 "$BIN/veil"
# a leaf's page: veil-<command>-<sub>.1 if there is one, else veil-<command>.1
for leaf in "${leaves[@]}"; do
	read -r c s <<<"$leaf"
	page=
	[ -n "$s" ] && [ -f "$ROOT/docs/man/veil-$c-$s.1.scd" ] && page=veil-$c-$s.1
	[ -z "$page" ] && [ -f "$ROOT/docs/man/veil-$c.1.scd" ] && page=veil-$c.1
	if [ -z "$page" ]; then
		bad "veil $leaf has a man page (veil-$c-$s.1 or veil-$c.1)"
		continue
	fi
	# shellcheck disable=SC2086 # the leaf's words
	flags_in_page "$page" "$BIN/veil" $leaf
	table_flags_in_page "$page" "$leaf"
done
flags_in_page veil-cas.8 "$BIN/veil-cas"
for s in $(sed -n 's/^       veil-cas \([a-z]*\) .*/\1/p; s/^Usage: veil-cas \([a-z]*\) .*/\1/p' <<<"$("$BIN/veil-cas" --help)"); do
	flags_in_page veil-cas.8 "$BIN/veil-cas" "$s"
done
flags_in_page veil-las.8 "$BIN/veil-las"
flags_in_page veil-run.8 "$BIN/veil-run"

# the bash completion, where bash-completion looks for it, the one veil prints,
# and a script bash sources that registers a completion for veil
check "bash completion installed: share/bash-completion/completions/veil" test -s "$COMP"
check "the installed completion is what 'veil completion bash' prints" \
	cmp -s "$COMP" <("$BIN/veil" completion bash)
check "the installed completion sources in bash and completes veil" \
	bash -c 'source "$1" && complete -p veil | grep -q " veil$"' _ "$COMP"
check "the installed completion completes 'veil policy ed' to 'edit'" \
	bash -c 'source "$1" && COMP_WORDS=(veil policy ed) COMP_CWORD=2 && _veil && [ "${COMPREPLY[*]}" = edit ]' _ "$COMP"

# the licence and the docs
check "LICENSE installed, the same as the tree's" cmp -s "$ROOT/LICENSE" "$DOC/LICENSE"
check "LICENSE is the Apache License 2.0 text" \
	bash -c 'head -5 "$1" | grep -q "Apache License" && grep -q "Version 2.0, January 2004" "$1" && grep -q "END OF TERMS AND CONDITIONS" "$1"' _ "$ROOT/LICENSE"
check "meson.build declares Apache-2.0" grep -q "license : 'Apache-2.0'" "$ROOT/meson.build"
for d in README.md architecture.md cas.md deploy.md images.md manifests.md security.md; do
	check "doc $d installed" test -s "$DOC/$d"
done

# veil verifies audit logs, it never writes one: no object compiled from
# src/cas/ is in libveil, and veil defines none of the functions or data of
# libveilcas (the CAS's audit writer, secret generation, store, vault); the
# check that libveilcas defines the writer keeps that from passing on an
# empty list.
defined() { nm --defined-only "$1" 2>/dev/null | awk '$2 ~ /^[TDBR]$/ {print $3}' | sort -u; }
check "libveil.a holds no object compiled from src/cas/" \
	bash -c '! ar t "$1" | grep -q "src_cas_"' _ "$BUILD/libveil.a"
check "libveilcas.a defines the audit writer (veil_audit_open, veil_audit_append)" \
	bash -c '[ "$(nm --defined-only "$1" | grep -cE " T veil_audit_(open|append)$")" -eq 2 ]' \
	_ "$BUILD/libveilcas.a"
check "veil defines none of the audit writer's functions" \
	bash -c '! nm --defined-only "$1" | grep -Eq " T veil_audit_(open|close|append|append_at|head_get|reconcile|head_sign)$"' \
	_ "$BUILD/veil"
both=$(comm -12 <(defined "$BUILD/veil") <(defined "$BUILD/libveilcas.a") | tr '\n' ' ')
check "veil defines no symbol of libveilcas (found: ${both:-none})" [ -z "$both" ]

echo "install: $passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]

#!/usr/bin/env bash
# Bans in src/ (STYLE.md, issue 12): sscanf, strcpy, strcat, sprintf (snprintf,
# vsnprintf and asprintf are fine), gets; and memcmp, which leaks by its time
# where the bytes are a secret, a MAC, a tag, a key, a token, a nonce or a
# password (use CRYPTO_memcmp). A memcmp on public bytes (a magic, a hash of
# public data, an address) is allowed with a justification on the same or the
# previous line:   /* not secret: the ELF magic */
# Layers (DESIGN: manifest -> policy -> cas): no file of the CAS (src/cas/*.c,
# *.h) nor a header it stands on (veil/secrets.h, store.h, audit.h,
# cas_request.h, policy_model.h, secret_schema.h, secure.h, audit_log.h) includes
# veil/manifest.h, directly or through any project header it includes; the
# secret schema and name checks are the policy layer's (veil/secret_schema.h).
# Prints one "file:line: rule: code" per finding, then "N passed, N failed"
# (one check per rule, and the self-test: a violation of each rule in a
# temporary file must be found). Also: libveil, which every executable links,
# compiles nothing from src/cas/ (meson.build; the CAS's code is libveilcas's).
# Usage: scripts/lint.sh [DIR...] (default src)
set -u
root=$(cd "$(dirname "$0")/.." && pwd)

# rule name, then an awk (ERE) regex: the name must not follow a letter, digit
# or underscore, so fgets, strncpy, snprintf and CRYPTO_memcmp do not match
rules=(
	'sscanf' '(^|[^A-Za-z0-9_])sscanf[ \t]*[(]'
	'strcpy' '(^|[^A-Za-z0-9_])strcpy[ \t]*[(]'
	'strcat' '(^|[^A-Za-z0-9_])strcat[ \t]*[(]'
	'sprintf' '(^|[^A-Za-z0-9_])sprintf[ \t]*[(]'
	'gets' '(^|[^A-Za-z0-9_])gets[ \t]*[(]'
	'memcmp' '(^|[^A-Za-z0-9_])memcmp[ \t]*[(]'
)

# findings of one rule in the C files under the given folders, one a line
findings() { # rule regex dir...
	local rule=$1 re=$2
	shift 2
	find "$@" -type f \( -name '*.c' -o -name '*.h' \) -print0 | sort -z |
		xargs -0 -r awk -v rule="$rule" -v re="$re" '
			FNR == 1 { prev = "" }
			{
				if ($0 ~ re && !(rule == "memcmp" && (($0 prev) ~ /\/\* not secret: [^*]*[^ *]/))) {
					line = $0
					sub(/^[ \t]+/, "", line)
					printf "%s:%d: %s banned: %s\n", FILENAME, FNR, rule, line
				}
				prev = $0
			}'
}

# libveil, which every executable links (veil among them), holds nothing
# compiled from src/cas/: prints each src/cas/ file in its static_library()
# call or in a source list the call names, from the meson.build given
libveil_cas_sources() { # meson.build
	python3 - "$1" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
def statement(start):  # from start to the parenthesis that closes the first one
    depth, i = 0, text.index("(", start)
    while True:
        depth += {"(": 1, ")": -1}.get(text[i], 0)
        if depth == 0:
            return text[start:i + 1]
        i += 1
call = re.search(r"^libveil = static_library\(", text, re.M)
if not call:
    sys.exit("no libveil = static_library(...) in " + sys.argv[1])
call = statement(call.start())
found = re.findall(r"'(src/cas/[^']*)'", call)
for name in sorted(set(re.findall(r"\b([a-z_]+_src)\b", call))):
    m = re.search(r"^" + name + r" = files\(", text, re.M)
    if m:
        found += re.findall(r"'(src/cas/[^']*)'", statement(m.start()))
for f in found:
    print("meson.build: libveil compiles " + f)
PY
}

# The project headers a C file includes ("..." includes found next to it or
# under INCROOT/include), one path a line.
direct_includes() { # incroot file
	local dir inc
	dir=$(dirname "$2")
	sed -n 's/^[ \t]*#[ \t]*include[ \t]*"\([^"]*\)".*/\1/p' "$2" | while read -r inc; do
		if [ -f "$dir/$inc" ]; then
			echo "$dir/$inc"
		elif [ -f "$1/include/$inc" ]; then
			echo "$1/include/$inc"
		fi
	done
}

# For each file given that reaches include/veil/manifest.h through its
# includes: "file: includes veil/manifest.h via a.h -> b.h" (no preprocessor:
# every #include counts, conditional or not).
manifest_reached() { # incroot file...
	local root=$1 f cur next
	shift
	for f in "$@"; do
		local -A via=()
		local queue=("$f")
		via["$f"]=""
		while [ ${#queue[@]} -gt 0 ]; do
			cur=${queue[0]}
			queue=("${queue[@]:1}")
			while read -r next; do
				[ -n "$next" ] && [ -z "${via[$next]+x}" ] || continue
				via["$next"]="${via[$cur]:+${via[$cur]} -> }${next#"$root"/}"
				if [ "$next" = "$root/include/veil/manifest.h" ]; then
					echo "${f#"$root"/}: includes veil/manifest.h via ${via[$next]}"
					queue=()
					break
				fi
				queue+=("$next")
			done < <(direct_includes "$root" "$cur")
		done
		unset via
	done
}

cas_side_files() { # root
	find "$1/src/cas" -maxdepth 1 -type f \( -name '*.c' -o -name '*.h' \) | sort
	for h in secrets store audit cas_request policy_model secret_schema secure audit_log; do
		echo "$1/include/veil/$h.h"
	done
}

pass=0
fail=0

# self-test: each rule finds its violation in a file made for it, and a
# justified memcmp and the allowed look-alikes are not findings
t=$(mktemp -d)
trap 'rm -rf "$t"' EXIT
cat >"$t/bad.c" <<'EOF'
void f(char *d, const char *s, char *k, char *m)
{
	int n;
	sscanf(s, "%d", &n);
	strcpy(d, s);
	strcat(d, s);
	sprintf(d, "%d", n);
	gets(d);
	if (memcmp(k, m, 32)) return;
}
EOF
cat >"$t/good.c" <<'EOF'
void g(char *d, const char *s, char *k, char *m, FILE *f)
{
	snprintf(d, 8, "%s", s);
	vsnprintf(d, 8, "%s", 0);
	strncpy(d, s, 8);
	fgets(d, 8, f);
	if (CRYPTO_memcmp(k, m, 32)) return;
	/* not secret: the ELF magic */
	if (memcmp(d, "\177ELF", 4)) return;
	if (memcmp(d, "GIF8", 4)) return; /* not secret: a file type */
}
EOF
self_ok=1
for ((i = 0; i < ${#rules[@]}; i += 2)); do
	n=$(findings "${rules[i]}" "${rules[i + 1]}" "$t" | grep -c "bad.c:.*${rules[i]} banned")
	[ "$n" -eq 1 ] || { echo "lint self-test: ${rules[i]} found $n times in bad.c, want 1"; self_ok=0; }
	n=$(findings "${rules[i]}" "${rules[i + 1]}" "$t" | grep -c "good.c")
	[ "$n" -eq 0 ] || { echo "lint self-test: ${rules[i]} found $n times in good.c, want 0"; self_ok=0; }
done
cat >"$t/meson.build" <<'EOF'
one_src = files('src/common/a.c',
  'src/cas/audit.c')
libveil = static_library('veil',
  one_src + files('src/cas/b.c'),
  include_directories : inc)
EOF
n=$(libveil_cas_sources "$t/meson.build" | grep -c 'src/cas/')
[ "$n" -eq 2 ] || { echo "lint self-test: libveil's src/cas/ sources found $n times, want 2"; self_ok=0; }
# the layer check finds an include of veil/manifest.h two headers down, and
# not one that only looks like it
mkdir -p "$t/l/include/veil" "$t/l/src/cas"
echo '#include "veil/common.h"' >"$t/l/include/veil/manifest.h"
echo '#include "veil/manifest.h"' >"$t/l/include/veil/b.h"
echo '#include "veil/b.h"' >"$t/l/include/veil/a.h"
printf '#include "veil/a.h"\n#include <veil/other.h>\n' >"$t/l/src/cas/bad.c"
printf '// #include "veil/mani" "fest.h"\n#include "veil/common.h"\n' >"$t/l/src/cas/good.c"
n=$(manifest_reached "$t/l" "$t/l/src/cas/bad.c" "$t/l/src/cas/good.c")
[ "$n" = "src/cas/bad.c: includes veil/manifest.h via include/veil/a.h -> include/veil/b.h -> include/veil/manifest.h" ] ||
	{ echo "lint self-test: the layer check said '$n'"; self_ok=0; }
if [ $self_ok -eq 1 ]; then
	echo "ok   lint self-test (each rule finds its violation; justified and look-alike calls pass)"
	pass=$((pass + 1))
else
	echo "FAIL lint self-test"
	fail=$((fail + 1))
fi

cd "$root"
[ $# -gt 0 ] || set -- src
for ((i = 0; i < ${#rules[@]}; i += 2)); do
	out=$(findings "${rules[i]}" "${rules[i + 1]}" "$@")
	if [ -z "$out" ]; then
		echo "ok   no ${rules[i]} in $*"
		pass=$((pass + 1))
	else
		echo "FAIL ${rules[i]} in $*: $(grep -c . <<<"$out") findings"
		echo "$out"
		fail=$((fail + 1))
	fi
done
out=$(libveil_cas_sources meson.build)
if [ -z "$out" ]; then
	echo "ok   libveil compiles nothing from src/cas/ (the CAS's code is libveilcas's)"
	pass=$((pass + 1))
else
	echo "FAIL libveil compiles CAS code: move it to libveilcas"
	echo "$out"
	fail=$((fail + 1))
fi
mapfile -t cas_files < <(cas_side_files "$root")
out=$(manifest_reached "$root" "${cas_files[@]}")
if [ -z "$out" ]; then
	echo "ok   the CAS (src/cas, its headers) does not include veil/manifest.h"
	pass=$((pass + 1))
else
	echo "FAIL the CAS includes veil/manifest.h (the secret schema and names are in veil/secret_schema.h, veil/policy_model.h):"
	echo "$out"
	fail=$((fail + 1))
fi
[ "$fail" -eq 0 ] || echo "memcmp: CRYPTO_memcmp for secrets; on public bytes, a '/* not secret: why */' on the line or the one before"
echo "lint: $pass passed, $fail failed"
[ "$fail" -eq 0 ]

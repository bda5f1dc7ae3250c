#!/usr/bin/env bash
# Benchmark: evidence verifications per second per evidence type, through
# the verifier the CAS runs (veil_evidence_verify_opts, driven by
# build/veil-evidence-bench, bench/evidence_bench.c: one thread, ~SECONDS per
# type), next to the bare cost of the signature checks each verification
# involves, from `openssl speed -seconds SECONDS ecdsap256 ecdsap384
# rsa4096` in the same run:
#   SGX, TDX quote   4 ECDSA P-256 verifies: the PCK chain (leaf <- CA <-
#                    root: 2 certificate signatures), the QE report's
#                    signature by the PCK leaf, the quote's by the
#                    attestation key
#   SNP report       1 ECDSA P-384 verify (the report by the VCEK) + 3
#                    RSA-4096 (RSA-PSS) verifies: ARK self-signed, ASK by
#                    ARK, VCEK by ASK
# and prints veil's rate over the bare rate (1 / the summed cost; target
# >= 0.5). The quotes are dcap-qvl's samples with their collateral bundles
# loaded once before the loop (cached, as the CAS caches them) and the TCB
# status evaluated at every verification, at 2025-07-01; the SNP report is
# trustee's Milan report with its VCEK at 2025-12-07. The machine's load
# average is printed first: on a shared machine compare ratios of the same
# run, not absolute numbers.
# Usage: bench/evidence.sh [BUILD_DIR] [SECONDS]
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
BUILD=$(realpath "${1:-$root/build}")
S=${2:-2}
BENCH=$BUILD/veil-evidence-bench
V=$root/tests/vectors
[ -x "$BENCH" ] || {
	echo "error: $BENCH missing (ninja -C $BUILD veil-evidence-bench)" >&2
	exit 1
}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

SNP=$V/trustee/deps/verifier/test_data/snp
mkdir "$work/col-sgx" "$work/col-tdx"
cp "$V/dcap-qvl/sample/sgx_quote_collateral.json" "$work/col-sgx/"
cp "$V/dcap-qvl/sample/tdx_quote_collateral.json" "$work/col-tdx/"
for p in sgx tdx; do
	printf '{"platform": "%s", "version": 1, "quote": "%s"}\n' "$p" \
		"$(base64 -w0 "$V/dcap-qvl/sample/${p}_quote")" >"$work/$p.json"
done
printf '{"platform": "snp", "version": 1, "report": "%s", "vcek": "%s"}\n' \
	"$(base64 -w0 "$SNP/test-report.bin")" "$(base64 -w0 "$SNP/test-vcek.der")" >"$work/snp.json"
DCAP_AT=$(date -u -d 2025-07-01T00:00:00Z +%s)
SNP_AT=$(date -u -d 2025-12-07T00:00:00Z +%s)

echo "evidence: $(openssl version | cut -d' ' -f1-2) cores=$(nproc) seconds=$S loadavg=$(cut -d' ' -f1-3 /proc/loadavg | tr ' ' ,)"
openssl speed -seconds "$S" ecdsap256 ecdsap384 rsa4096 >"$work/speed.txt" 2>/dev/null
# verify/s is the last column of each algorithm's line
p256=$(awk '/ecdsa \(nistp256\)/ {print $NF}' "$work/speed.txt")
p384=$(awk '/ecdsa \(nistp384\)/ {print $NF}' "$work/speed.txt")
rsa4096=$(awk '/^rsa 4096 bits/ {print $NF}' "$work/speed.txt")
[ -n "$p256" ] && [ -n "$p384" ] && [ -n "$rsa4096" ] || {
	echo "error: cannot read openssl speed's output:" >&2
	cat "$work/speed.txt" >&2
	exit 1
}
echo "openssl verify/s: ecdsap256=$p256 ecdsap384=$p384 rsa4096=$rsa4096"

# measure NAME ARGS...: veil's line, then the bare cost and the ratio
measure() {
	local name=$1 bare_us line rate
	shift
	line=$("$BENCH" "$@")
	rate=$(sed -E 's/.* rate=([0-9.]+)\/s.*/\1/' <<<"$line")
	if [ "$name" = snp ]; then
		bare_us=$(awk -v a="$p384" -v b="$rsa4096" 'BEGIN {printf "%.1f", 1e6 / a + 3e6 / b}')
	else
		bare_us=$(awk -v a="$p256" 'BEGIN {printf "%.1f", 4e6 / a}')
	fi
	echo "veil $name $line"
	awk -v n="$name" -v r="$rate" -v c="$bare_us" 'BEGIN {
		printf "bare %s us_per_verification=%.1f rate=%.1f/s ratio=%.2f (target >= 0.50)\n", n, c, 1e6 / c, r * c / 1e6 }'
}
measure sgx "$work/sgx.json" "$DCAP_AT" "$S" "$work/col-sgx"
measure tdx "$work/tdx.json" "$DCAP_AT" "$S" "$work/col-tdx"
measure snp "$work/snp.json" "$SNP_AT" "$S"

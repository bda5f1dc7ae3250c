#!/usr/bin/env bash
# veil evidence verify end to end, on the real vectors (tests/vectors/
# README.md): every Intel quote of §1 verifies to the Intel root at a time
# inside its PCK chain (the leaf's notBefore + 1 day, as test_dcap picks it,
# given as seconds since the epoch), every SNP report of §3 to AMD's roots
# at 2025-12-07 (test_snp's time); dcap-qvl's two complete bundles give
# dcap-qvl's published TCB status and advisories; a flipped byte, the wrong
# report data, a time outside the validity windows, Intel's synthetic test
# root, junk, empty and unknown-platform input are refused (exit 1) with a
# reason naming the check; usage errors are one line and exit 2; -o json is
# read with python3's json module. Usage: evidence.sh BUILD_DIR
set -u
BUILD=$(realpath "${1:?usage: evidence.sh BUILD_DIR}")
VEIL=$BUILD/veil
ROOT=${VEIL_SOURCE_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
V=$ROOT/tests/vectors
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
. "$ROOT/tests/e2e/lib.sh"

TEEKIT=dstack-teekit/packages/qvl/test/sampleQuotes
TRUSTEE=trustee/deps/verifier/test_data
GOTDX=go-tdx-guest/testing/testdata
QVL=intel-qvl/Src/AttestationApp/sampleData
SNP_AT=2025-12-07T00:00:00Z # every SNP vector's certificates are valid then
DCAP_AT=2025-07-01T00:00:00Z # inside both dcap-qvl bundles' windows

# README §1, every real quote (the .hex and base64 ones decoded in derived/): PATH PLATFORM
QUOTES="$GOTDX/tdx_prod_quote_SPR_E4.dat tdx
$GOTDX/quote_v5_sample.dat tdx
$GOTDX/ccel/cos-113-tdx-quote.dat tdx
$TRUSTEE/tdx_quote_4.dat tdx
$TRUSTEE/tdx_quote_5.dat tdx
$TRUSTEE/tdx_quote_6.dat tdx
$TRUSTEE/az-tdx-vtpm/td-quote.bin tdx
$TRUSTEE/occlum_quote.dat sgx
dcap-qvl/sample/sgx_quote sgx
dcap-qvl/sample/tdx_quote tdx
dcap-qvl/sample/tdx_quote_outdated tdx
derived/dcap-qvl_tdx-quote.bin tdx
derived/dcap-qvl_quote-from-tappd.bin tdx
$TEEKIT/sgx-chinenyeokafor.dat sgx
$TEEKIT/sgx-tlsn-quote9.dat sgx
$TEEKIT/sgx-tlsn-quotedev.dat sgx
$TEEKIT/tdx-v4-edgeless.dat tdx
$TEEKIT/tdx-v4-moemahhouk.dat tdx
$TEEKIT/tdx-v4-zkdcap.dat tdx
derived/tdx-v4-azure.decoded.bin tdx
derived/tdx-v4-gcp.quote.bin tdx
derived/tdx-v4-gcp-no-nonce.quote.bin tdx"

# README §3, every real SNP report: REPORT VCEK/VLEK DEBUG
REPORTS="go-sev-guest/verify/testdata/attestation.bin go-sev-guest/verify/testdata/vcek.testcer true
$TRUSTEE/snp/test-report.bin $TRUSTEE/snp/test-vcek.der false
$TRUSTEE/snp/test-vlek-report.bin $TRUSTEE/snp/test-vlek.der false
derived/virtee-sev_report_milan.bin virtee-sev/tests/certs_data/vcek_milan.der false
derived/az-snp-vtpm_hcl-report_snp-report-milan-v2.bin derived/az-snp-vtpm_vcek-milan.pem false
derived/az-snp-vtpm_evidence-genoa_snp-report-v3.bin derived/az-snp-vtpm_evidence-genoa_vcek.pem false
teekit/sev-gcp.bin teekit/sev-gcp-vcek.pem false
teekit/sev-gcp-reportdata.bin teekit/sev-gcp-vcek.pem false
teekit/sev-gcp-x25519-bound.bin teekit/sev-gcp-x25519-vcek.pem false"

# leaf_time FILE: the first PEM certificate's notBefore + 1 day, in seconds
# since the epoch (for a quote: its PCK leaf)
leaf_time() {
	local nb
	nb=$(python3 -c '
import sys
b = open(sys.argv[1], "rb").read()
s = b.index(b"-----BEGIN CERTIFICATE-----")
e = b.index(b"-----END CERTIFICATE-----", s) + 25
sys.stdout.write(b[s:e].decode() + "\n")' "$1" | openssl x509 -noout -startdate | cut -d= -f2) || return 1
	echo $(($(date -u -d "$nb" +%s) + 86400))
}

# json_check PYTHON-EXPRESSION: evaluated with j = the JSON of $out; true or fail
json_check() {
	python3 -c 'import json, sys; j = json.loads(sys.argv[1]); sys.exit(0 if eval(sys.argv[2]) else 1)' \
		"$out" "$1" || die "-o json: expected $1, got: $out"
}

# refused: exit 1, one "error: " line at least, nothing on stdout
refused() {
	rejected || return 1
	[ -z "$out" ] || die "a refusal printed on stdout: $out"
	grep -q '^error: ' <<<"$err" || die "no 'error: ' line: $err"
}

# usage_error: exit 2, "error: ..." and "See '... --help'." on stderr, nothing else
usage_error() {
	[ "$rc" -eq 2 ] || die "expected exit 2, got $rc: $err"
	[ "$(wc -l <<<"$err")" -eq 2 ] || die "expected 2 lines on stderr, got: $err"
	grep -q "^error: " <<<"$err" || die "no 'error: ' line: $err"
	grep -q "^See 'veil evidence.*--help'\.$" <<<"$err" || die "no hint: $err"
	[ -z "$out" ] || die "usage error printed on stdout: $out"
}

every_real_quote_verifies_to_the_intel_root() {
	local path platform at n=0
	while read -r path platform; do
		at=$(leaf_time "$V/$path") || die "$path: no PCK leaf found"
		run "$VEIL" evidence verify --at "$at" "$V/$path"
		ok || die "$path" || return 1
		has "platform:      $platform" || return 1
		has "verdict:       verified" || return 1
		has "tcb_status:    not-evaluated" || return 1
		n=$((n + 1))
	done <<<"$QUOTES"
	[ "$n" -eq 22 ] || die "$n quotes, expected 22"
}

every_real_snp_report_verifies_to_the_amd_roots() {
	local rep key debug n=0
	while read -r rep key debug; do
		run "$VEIL" evidence verify --at "$SNP_AT" --vcek "$V/$key" "$V/$rep"
		ok || die "$rep" || return 1
		has "platform:      snp" || return 1
		has "debug:         $debug" || die "$rep: expected debug $debug" || return 1
		has "verdict:       verified" || return 1
		n=$((n + 1))
	done <<<"$REPORTS"
	[ "$n" -eq 9 ] || die "$n reports, expected 9"
}

# README §2: dcap-qvl tests/verify_quote.rs, with the bundle alone in a folder
dcap_qvl_bundles_give_the_published_tcb_status() {
	mkdir -p "$WORK/col-sgx" "$WORK/col-tdx"
	cp "$V/dcap-qvl/sample/sgx_quote_collateral.json" "$WORK/col-sgx/"
	cp "$V/dcap-qvl/sample/tdx_quote_collateral.json" "$WORK/col-tdx/"
	run "$VEIL" evidence verify --collateral "$WORK/col-sgx" --at "$DCAP_AT" "$V/dcap-qvl/sample/sgx_quote"
	ok || return 1
	has "tcb_status:    configuration-and-sw-hardening-needed" || return 1
	has "advisories:    INTEL-SA-00289,INTEL-SA-00615" || return 1
	run "$VEIL" evidence verify --collateral "$WORK/col-sgx" --at "$DCAP_AT" -o json \
		"$V/dcap-qvl/sample/sgx_quote"
	ok || return 1
	json_check 'j["verified"] is True and j["claims"]["tcb_status"] == "configuration-and-sw-hardening-needed" and j["claims"]["advisories"] == ["INTEL-SA-00289", "INTEL-SA-00615"]' || return 1
	run "$VEIL" evidence verify --collateral "$WORK/col-tdx" --at "$DCAP_AT" "$V/dcap-qvl/sample/tdx_quote"
	ok || return 1
	has "tcb_status:    up-to-date" || return 1
	has "advisories:    none" || return 1
	run "$VEIL" evidence verify --collateral "$WORK/col-tdx" --at "$DCAP_AT" -o json \
		"$V/dcap-qvl/sample/tdx_quote"
	ok || return 1
	json_check 'j["claims"]["tcb_status"] == "up-to-date" and j["claims"]["advisories"] == []' || return 1
	# the other bundle has no TCB Info for this FMSPC
	run "$VEIL" evidence verify --collateral "$WORK/col-tdx" --at "$DCAP_AT" "$V/dcap-qvl/sample/sgx_quote"
	refused || return 1
	has "no SGX TCB Info for FMSPC 00a067110000" || return 1
	# collateral is checked at --at too: the PCK CRL's nextUpdate is 2025-07-19
	run "$VEIL" evidence verify --collateral "$WORK/col-tdx" --at 2025-08-01T00:00:00Z \
		"$V/dcap-qvl/sample/tdx_quote"
	refused || return 1
	has "stale collateral: the PCK CRL expired" || return 1
	run "$VEIL" evidence verify --collateral "$WORK/nowhere" "$V/dcap-qvl/sample/tdx_quote"
	refused || return 1
	has "$WORK/nowhere" || return 1
}

json_output_has_every_claim() {
	run "$VEIL" evidence verify -o json --at "$DCAP_AT" "$V/dcap-qvl/sample/sgx_quote"
	ok || return 1
	json_check 'j["verified"] is True and set(j) == {"verified", "claims"} and j["claims"]["platform"] == "sgx" and len(j["claims"]["measurement"]) == 64 and len(j["claims"]["signer"]) == 64 and j["claims"]["isvprodid"] == 0 and j["claims"]["isvsvn"] == 0 and j["claims"]["debug"] is False and j["claims"]["report_data"].startswith("48656c6c6f2c20776f726c6421") and len(j["claims"]["report_data"]) == 128 and len(j["claims"]["platform_key"]) == 64 and j["claims"]["tcb_status"] == "not-evaluated"' || return 1
	run "$VEIL" evidence verify -o json --at "$DCAP_AT" "$V/dcap-qvl/sample/tdx_quote"
	ok || return 1
	json_check 'all(len(j["claims"][k]) == 96 for k in ("mrtd", "rtmr0", "rtmr1", "rtmr2", "rtmr3", "mrconfigid", "mrowner")) and j["claims"]["mrtd"] == j["claims"]["measurement"] and j["claims"]["mrtd"].startswith("91eb2b44d141d4ec")' || return 1
	run "$VEIL" evidence verify -o json --at "$SNP_AT" --vcek "$V/go-sev-guest/verify/testdata/vcek.testcer" \
		"$V/go-sev-guest/verify/testdata/attestation.bin"
	ok || return 1
	json_check 'j["claims"]["platform"] == "snp" and j["claims"]["debug"] is True and j["claims"]["policy"] == "0xb0000" and j["claims"]["vmpl"] == 0 and j["claims"]["guest_svn"] == 0 and len(j["claims"]["host_data"]) == 64 and len(j["claims"]["measurement"]) == 96 and j["claims"]["report_data"].startswith("0102030405")' || return 1
	# a refusal: {"verified": false, "error": ...}, exit 1
	run "$VEIL" evidence verify -o json --at 2035-01-01T00:00:00Z "$V/dcap-qvl/sample/tdx_quote"
	rejected || return 1
	json_check 'j == {"verified": False, "error": j["error"]} and "expired" in j["error"]' || return 1
	run "$VEIL" evidence verify -o yaml --at "$DCAP_AT" "$V/dcap-qvl/sample/tdx_quote"
	ok || return 1
	has "verified: true" || return 1
}

evidence_json_and_stdin_verify_as_the_raw_quote() {
	base64 -w0 "$V/dcap-qvl/sample/tdx_quote" >"$WORK/q.b64"
	printf '{"platform": "tdx", "version": 1, "quote": "%s"}\n' "$(cat "$WORK/q.b64")" >"$WORK/ev.json"
	run "$VEIL" evidence verify --at "$DCAP_AT" "$WORK/ev.json"
	ok || return 1
	local from_json=$out
	run "$VEIL" evidence verify --at "$DCAP_AT" - <"$V/dcap-qvl/sample/tdx_quote"
	ok || return 1
	[ "$out" = "$from_json" ] || die "stdin and evidence JSON differ: $out / $from_json"
	# SNP evidence JSON carries its VCEK
	printf '{"platform": "snp", "version": 1, "report": "%s", "vcek": "%s"}\n' \
		"$(base64 -w0 "$V/$TRUSTEE/snp/test-report.bin")" \
		"$(base64 -w0 "$V/$TRUSTEE/snp/test-vcek.der")" >"$WORK/snp.json"
	run "$VEIL" evidence verify --at "$SNP_AT" "$WORK/snp.json"
	ok || return 1
	has "verdict:       verified" || return 1
}

flipped_bytes_are_refused_naming_the_check() {
	# TDX v4: a byte of the TD report (header 48 + 100)
	python3 -c 'import sys; b = bytearray(open(sys.argv[1], "rb").read()); b[148] ^= 1; open(sys.argv[2], "wb").write(b)' \
		"$V/dcap-qvl/sample/tdx_quote" "$WORK/tdx-flip"
	run "$VEIL" evidence verify --at "$DCAP_AT" "$WORK/tdx-flip"
	refused || return 1
	has "tdx evidence: quote signature" || return 1
	# SGX v3: the QE report's MRENCLAVE (header 48 + body 384 + length 4 +
	# signature 64 + key 64 + 70)
	python3 -c 'import sys; b = bytearray(open(sys.argv[1], "rb").read()); b[634] ^= 1; open(sys.argv[2], "wb").write(b)' \
		"$V/dcap-qvl/sample/sgx_quote" "$WORK/sgx-flip"
	run "$VEIL" evidence verify --at "$DCAP_AT" "$WORK/sgx-flip"
	refused || return 1
	has "sgx evidence: QE report signature" || return 1
	# SNP: a byte of the measurement
	python3 -c 'import sys; b = bytearray(open(sys.argv[1], "rb").read()); b[0x90] ^= 1; open(sys.argv[2], "wb").write(b)' \
		"$V/$TRUSTEE/snp/test-report.bin" "$WORK/snp-flip"
	run "$VEIL" evidence verify --at "$SNP_AT" --vcek "$V/$TRUSTEE/snp/test-vcek.der" "$WORK/snp-flip"
	refused || return 1
	has "report signature does not verify with the VCEK" || return 1
	# another report's VCEK
	run "$VEIL" evidence verify --at "$SNP_AT" --vcek "$V/go-sev-guest/verify/testdata/vcek.testcer" \
		"$V/$TRUSTEE/snp/test-report.bin"
	refused || return 1
	has "VCEK" || return 1
}

report_data_is_compared_only_when_given() {
	# dcap-qvl's sgx_quote: "Hello, world!" then zeros
	local mine=48656c6c6f2c20776f726c642100000000000000000000000000000000000000
	run "$VEIL" evidence verify --at "$DCAP_AT" --report-data "$mine" "$V/dcap-qvl/sample/sgx_quote"
	ok || return 1
	run "$VEIL" evidence verify --at "$DCAP_AT" --report-data "${mine^^}" "$V/dcap-qvl/sample/sgx_quote"
	ok || return 1
	run "$VEIL" evidence verify --at "$DCAP_AT" --report-data "$(printf '%064d' 1)" "$V/dcap-qvl/sample/sgx_quote"
	refused || return 1
	has "bound to another TLS key" || return 1
	run "$VEIL" evidence verify --at "$SNP_AT" --report-data "$(printf '%064d' 1)" \
		--vcek "$V/$TRUSTEE/snp/test-vcek.der" "$V/$TRUSTEE/snp/test-report.bin"
	refused || return 1
	has "bound to another TLS key" || return 1
}

times_outside_the_validity_windows_are_refused() {
	run "$VEIL" evidence verify --at 2035-01-01T00:00:00Z "$V/dcap-qvl/sample/tdx_quote"
	refused || return 1
	has "PCK chain: certificate has expired" || return 1
	run "$VEIL" evidence verify --at 2017-01-01T00:00:00Z "$V/dcap-qvl/sample/tdx_quote"
	refused || return 1
	has "PCK chain: certificate is not yet valid" || return 1
	# the VLEK was valid 2024-12-10 to 2025-12-10
	run "$VEIL" evidence verify --at 2026-01-01T00:00:00Z --vcek "$V/$TRUSTEE/snp/test-vlek.der" \
		"$V/$TRUSTEE/snp/test-vlek-report.bin"
	refused || return 1
	has "VLEK expired on 2025-12-10T22:14:21Z" || return 1
	run "$VEIL" evidence verify --at 1577836800 --vcek "$V/go-sev-guest/verify/testdata/vcek.testcer" \
		"$V/go-sev-guest/verify/testdata/attestation.bin"
	refused || return 1
	has "not valid before" || return 1
}

# Intel's QVL samples: a test root with the production root's name
intel_synthetic_samples_are_refused_as_untrusted_root() {
	local q=$V/$QVL/quote.dat
	run "$VEIL" evidence verify "$q"
	refused || return 1
	has "certification data type 1" || return 1
	# the same quote with its PCK certificate and chain inlined as type 5
	# (the type 1 data is its last 34 bytes, after type and size): all
	# verifies but the root
	python3 -c '
import struct, sys
q = open(sys.argv[1], "rb").read()
chain = open(sys.argv[2], "rb").read() + open(sys.argv[3], "rb").read()
out = bytearray(q[:len(q) - 40] + struct.pack("<HI", 5, len(chain)) + chain)
out[432:436] = struct.pack("<I", len(out) - 436)
open(sys.argv[4], "wb").write(out)' "$q" "$V/$QVL/pckCert.pem" "$V/$QVL/pckSignChain.pem" "$WORK/qvl-type5"
	run "$VEIL" evidence verify --at "$(leaf_time "$V/$QVL/pckCert.pem")" "$WORK/qvl-type5"
	refused || return 1
	has "PCK chain: the root is not the Intel SGX Root CA" || return 1
	run "$VEIL" evidence verify "$V/$QVL/tdx/quote.dat"
	refused || return 1
	has "PCK chain: no PEM certificates" || return 1
}

malformed_input_is_refused_clearly() {
	printf 'veil\0\1\2\3 not evidence %.0s' $(seq 10) >"$WORK/junk"
	run "$VEIL" evidence verify "$WORK/junk"
	refused || return 1
	has "is neither evidence JSON, an SGX (v3) or TDX (v4, v5) quote, nor a 1184-byte SNP report" || return 1
	: >"$WORK/empty"
	run "$VEIL" evidence verify "$WORK/empty"
	refused || return 1
	has "$WORK/empty is empty" || return 1
	run "$VEIL" evidence verify - </dev/null
	refused || return 1
	has "<stdin> is empty" || return 1
	echo '{"platform": "tpm", "version": 1}' >"$WORK/tpm.json"
	run "$VEIL" evidence verify "$WORK/tpm.json"
	refused || return 1
	has "evidence of unknown platform 'tpm'" || return 1
	echo '{"platform": ' >"$WORK/cut.json"
	run "$VEIL" evidence verify "$WORK/cut.json"
	refused || return 1
	has "evidence is not a JSON object with a 'platform'" || return 1
	echo '{"platform": "tdx", "version": 1, "quote": "not base64!"}' >"$WORK/b64.json"
	run "$VEIL" evidence verify "$WORK/b64.json"
	refused || return 1
	has "tdx evidence: 'quote' is not base64" || return 1
	head -c 1000 "$V/dcap-qvl/sample/tdx_quote" >"$WORK/cut-quote"
	run "$VEIL" evidence verify "$WORK/cut-quote"
	refused || return 1
	has "tdx evidence: signature data at offset 636 declares" || return 1
	run "$VEIL" evidence verify "$V/$TRUSTEE/snp/test-report.bin"
	refused || return 1
	has "is an SNP report: give its VCEK or VLEK with --vcek FILE" || return 1
	run "$VEIL" evidence verify --vcek "$V/$TRUSTEE/snp/test-vcek.der" "$V/dcap-qvl/sample/tdx_quote"
	refused || return 1
	has "--vcek is for SNP reports only" || return 1
	run "$VEIL" evidence verify "$WORK/missing"
	refused || return 1
	has "$WORK/missing" || return 1
	run "$VEIL" evidence verify -o json "$WORK/junk"
	rejected || return 1
	json_check 'j["verified"] is False and "neither evidence JSON" in j["error"]' || return 1
}

usage_errors_are_one_line() {
	run "$VEIL" evidence verify
	usage_error || return 1
	has "give exactly one FILE" || return 1
	run "$VEIL" evidence verify a b
	usage_error || return 1
	run "$VEIL" evidence verify --at yesterday x
	usage_error || return 1
	has "--at: 'yesterday' is neither RFC 3339 UTC" || return 1
	run "$VEIL" evidence verify --at 2025-07-01 x
	usage_error || return 1
	run "$VEIL" evidence verify --report-data abcd x
	usage_error || return 1
	has "--report-data needs 64 hex digits" || return 1
	run "$VEIL" evidence verify -o xml x
	usage_error || return 1
	run "$VEIL" evidence verify --bogus x
	usage_error || return 1
	has "unknown flag --bogus" || return 1
	run "$VEIL" evidence verify --collateral
	usage_error || return 1
	has "flag --collateral needs a value" || return 1
	run "$VEIL" evidence verfy x
	usage_error || return 1
	has "did you mean 'verify'?" || return 1
	run "$VEIL" evidence
	usage_error || return 1
}

run_in_order evidence every_real_quote_verifies_to_the_intel_root \
	every_real_snp_report_verifies_to_the_amd_roots \
	dcap_qvl_bundles_give_the_published_tcb_status json_output_has_every_claim \
	evidence_json_and_stdin_verify_as_the_raw_quote flipped_bytes_are_refused_naming_the_check \
	report_data_is_compared_only_when_given times_outside_the_validity_windows_are_refused \
	intel_synthetic_samples_are_refused_as_untrusted_root malformed_input_is_refused_clearly \
	usage_errors_are_one_line

#!/usr/bin/env python3
"""An independent SEV-SNP report verifier (Debian's python3-cryptography),
compared with veil's C verifier on every real vector.

For each vector of tests/vectors/README.md section 3 this script parses the
report itself (the ABI spec's ATTESTATION_REPORT table, typed in again here,
not shared with src/evidence/snp.c), verifies the ECDSA P-384 signature with
the VCEK/VLEK, the VCEK <- ASK (or VLEK <- ASVK) <- ARK chain with RSA-PSS
(SHA-384, salt 48), the ARK against AMD's fingerprint, validity at AT, and
the VCEK's TCB and hwID extensions against the report; it prints the fields
and verdict in the format of tests/tools/snp_dump.c, runs snp_dump on the
same files, and fails unless both say exactly the same.

Usage: check_snp.py BUILD_DIR   (BUILD_DIR holds tests/snp_dump)
"""
import os
import struct
import subprocess
import sys
import warnings
from datetime import datetime, timezone


def load_pem_certs(data):
    """Every certificate of a PEM bundle (python3-cryptography 38, Debian 12's,
    has no load_pem_x509_certificates)."""
    marker = b"-----BEGIN CERTIFICATE-----"
    parts = [marker + p for p in data.split(marker)[1:]]
    return [x509.load_pem_x509_certificate(p) for p in parts]

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.x509.oid import NameOID, SignatureAlgorithmOID

# AMD VCEKs have serial number 0, which cryptography warns about (RFC 5280)
warnings.filterwarnings("ignore", message=".*serial number.*")

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VEC = os.path.join(ROOT, "tests", "vectors")
# 2025-12-07T00:00:00Z: all vectors' certificates are valid then
AT = 1765065600

MILAN = "go-sev-guest/verify/trust/ask_ark_milan.pem"
TRUSTEE = "trustee/deps/verifier/test_data/snp/"
VECTORS = [
    ("go-sev-guest/verify/testdata/attestation.bin", "go-sev-guest/verify/testdata/vcek.testcer", MILAN),
    (TRUSTEE + "test-report.bin", TRUSTEE + "test-vcek.der", MILAN),
    (TRUSTEE + "test-vlek-report.bin", TRUSTEE + "test-vlek.der",
     "go-sev-guest/verify/trust/ask_ark_milan_vlek.pem"),
    ("derived/virtee-sev_report_milan.bin", "virtee-sev/tests/certs_data/vcek_milan.der",
     "virtee-sev/tests/certs_data/cert_chain_milan"),
    ("derived/az-snp-vtpm_hcl-report_snp-report-milan-v2.bin", "derived/az-snp-vtpm_vcek-milan.pem", MILAN),
    ("derived/az-snp-vtpm_evidence-genoa_snp-report-v3.bin", "derived/az-snp-vtpm_evidence-genoa_vcek.pem",
     "go-sev-guest/verify/trust/ask_ark_genoa.pem"),
    ("teekit/sev-gcp.bin", "teekit/sev-gcp-vcek.pem", "teekit/sev-gcp-cert-chain.pem"),
    ("teekit/sev-gcp-reportdata.bin", "teekit/sev-gcp-vcek.pem", "teekit/sev-gcp-cert-chain.pem"),
    ("teekit/sev-gcp-x25519-bound.bin", "teekit/sev-gcp-x25519-vcek.pem", "teekit/sev-gcp-x25519-cert-chain.pem"),
]

# SHA-256 of AMD's ARK certificates (DER), as AMD's KDS serves them
ARK_SHA256 = {
    "Milan": "69d063b45344d26a2e94e1f4210de49ef555308287d4c174445c95639a540bcd",
    "Genoa": "4c6598d19c18719c5dfd4a7d335f674e5bfe1d8f800cea2cf270c10d103db2f1",
    "Turin": "1f084161a44bb6d93778a904877d4819cafa5d05ef4193b2ded9dd9c73dd3f6a",
}
AMD_OID = "1.3.6.1.4.1.3704.1."


class Refused(Exception):
    pass


def parse_report(b):
    if len(b) != 0x4A0:
        raise Refused("size %d" % len(b))
    r = {}
    r["version"], r["guest_svn"], r["policy"] = struct.unpack_from("<IIQ", b, 0)
    if not r["policy"] & (1 << 17):
        raise Refused("policy bit 17")
    if not 2 <= r["version"] <= 5:
        raise Refused("version %d" % r["version"])
    r["vmpl"], r["signature_algo"] = struct.unpack_from("<II", b, 0x30)
    if r["signature_algo"] != 1:
        raise Refused("signature_algo")
    (info,) = struct.unpack_from("<I", b, 0x48)
    if info >> 5 or (info >> 2) & 7 not in (0, 1):
        raise Refused("signer_info 0x%x" % info)
    r["signer"] = "VLEK" if (info >> 2) & 7 == 1 else "VCEK"
    r["mask_chip"] = bool(info & 2)
    r["report_data"] = b[0x50:0x90]
    r["measurement"] = b[0x90:0xC0]
    r["host_data"] = b[0xC0:0xE0]
    r["reported_tcb"] = b[0x180:0x188]
    r["cpuid"] = b[0x188:0x18B] if r["version"] >= 3 else None
    r["chip_id"] = b[0x1A0:0x1E0]
    zero_ranges = [(0x4C, 0x50), (0x18B if r["version"] >= 3 else 0x188, 0x1A0), (0x1EB, 0x1EC),
                   (0x1EF, 0x1F0), (0x208 if r["version"] >= 5 else 0x1F8, 0x2A0), (0x2A0 + 144, 0x4A0)]
    for lo, hi in zero_ranges:
        if any(b[lo:hi]):
            raise Refused("reserved 0x%x" % lo)
    r["sig_r"] = int.from_bytes(b[0x2A0:0x2A0 + 72], "little")
    r["sig_s"] = int.from_bytes(b[0x2A0 + 72:0x2A0 + 144], "little")
    r["signed"] = b[:0x2A0]
    r["debug"] = int(bool(r["policy"] & (1 << 19)))
    return r


def cpuid_product(fam, model):
    if fam == 0x19 and model < 0x10:
        return "Milan"
    if fam == 0x19 and (0x10 <= model < 0x20 or 0xA0 <= model < 0xB0):
        return "Genoa"
    if fam == 0x1A and model <= 0x11:
        return "Turin"
    return None


def cn(name):
    attrs = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    return attrs[0].value if attrs else ""


def load_cert(data):
    if data.startswith(b"-----BEGIN"):
        return x509.load_pem_x509_certificate(data)
    return x509.load_der_x509_certificate(data)


def pss_signed_by(cert, issuer):
    if cert.signature_algorithm_oid != SignatureAlgorithmOID.RSASSA_PSS:
        return False
    try:
        issuer.public_key().verify(cert.signature, cert.tbs_certificate_bytes,
                                   padding.PSS(mgf=padding.MGF1(hashes.SHA384()), salt_length=48),
                                   hashes.SHA384())
        return True
    except InvalidSignature:
        return False


def valid_at(cert, at):
    # not_valid_before (naive UTC) is in every version; the _utc forms came later
    t = datetime.fromtimestamp(at, timezone.utc).replace(tzinfo=None)
    return cert.not_valid_before < t < cert.not_valid_after


def der_integer(v):
    """the value of a DER INTEGER filling v exactly"""
    if len(v) < 3 or v[0] != 0x02 or v[1] != len(v) - 2 or v[1] > 2:
        raise Refused("not a small DER INTEGER")
    return int.from_bytes(v[2:], "big", signed=True)


def amd_ext(cert, suffix):
    oid = x509.ObjectIdentifier(AMD_OID + suffix)
    try:
        return cert.extensions.get_extension_for_oid(oid).value.value
    except x509.ExtensionNotFound:
        return None


def decode_tcb(tcb, product):
    b = tcb
    if product == "Turin":
        return {"fmc": b[0], "bl": b[1], "tee": b[2], "snp": b[3], "microcode": b[7]}
    return {"fmc": 0, "bl": b[0], "tee": b[1], "snp": b[6], "microcode": b[7]}


def verify(report_path, key_path, chain_path, at):
    r = parse_report(open(report_path, "rb").read())
    key = load_cert(open(key_path, "rb").read())
    bundle = load_pem_certs(open(chain_path, "rb").read())
    signer = r["signer"]
    if cn(key.subject) != "SEV-" + signer:
        raise Refused("key cert subject")
    issuer = cn(key.issuer)
    prefix = "SEV-VLEK-" if signer == "VLEK" else "SEV-"
    product = issuer[len(prefix):] if issuer.startswith(prefix) else None
    if product not in ARK_SHA256:
        raise Refused("issuer %s" % issuer)
    by_cn = {cn(c.subject): c for c in bundle}
    ark, ica = by_cn.get("ARK-" + product), by_cn.get(prefix + product)
    if ark is None or ica is None:
        raise Refused("chain incomplete")
    if ark.fingerprint(hashes.SHA256()).hex() != ARK_SHA256[product]:
        raise Refused("ARK fingerprint")
    if not (pss_signed_by(ark, ark) and pss_signed_by(ica, ark) and pss_signed_by(key, ica)):
        raise Refused("chain signature")
    if not all(valid_at(c, at) for c in (ark, ica, key)):
        raise Refused("validity")
    if r["cpuid"] is not None and cpuid_product(r["cpuid"][0], r["cpuid"][1]) != product:
        raise Refused("CPUID product")
    tcb = decode_tcb(r["reported_tcb"], product)
    names = {"1": "bl", "2": "tee", "3": "snp", "8": "microcode"}
    if product == "Turin":
        names["9"] = "fmc"
    for minor, part in names.items():
        v = amd_ext(key, "3." + minor)
        if v is None or der_integer(v) != tcb[part]:
            raise Refused("TCB %s" % part)
    if signer == "VCEK" and not r["mask_chip"]:
        hwid = amd_ext(key, "4")
        n = 8 if product == "Turin" else 64
        if hwid is None or len(hwid) != n or hwid != r["chip_id"][:n] or any(r["chip_id"][n:]):
            raise Refused("hwID")
    pub = key.public_key()
    if not isinstance(pub, ec.EllipticCurvePublicKey) or pub.curve.name != "secp384r1":
        raise Refused("key type")
    try:
        pub.verify(encode_dss_signature(r["sig_r"], r["sig_s"]), r["signed"], ec.ECDSA(hashes.SHA384()))
    except InvalidSignature:
        raise Refused("report signature")
    t = tcb
    return "\n".join([
        "version: %d" % r["version"],
        "product: %s" % product,
        "signer: %s" % signer,
        "vmpl: %d" % r["vmpl"],
        "policy: 0x%x" % r["policy"],
        "debug: %d" % r["debug"],
        "measurement: " + r["measurement"].hex(),
        "report_data: " + r["report_data"].hex(),
        "host_data: " + r["host_data"].hex(),
        "chip_id: " + r["chip_id"].hex(),
        "reported_tcb: fmc=%d bl=%d tee=%d snp=%d microcode=%d" % (t["fmc"], t["bl"], t["tee"], t["snp"],
                                                                   t["microcode"]),
        "verdict: ok",
    ]) + "\n"


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    dump = os.path.join(sys.argv[1], "tests", "snp_dump")
    failed = 0
    for rep, key, chain in VECTORS:
        paths = [os.path.join(VEC, p) for p in (rep, key, chain)]
        try:
            ours = verify(*paths, AT)
        except Refused as e:
            ours = "verdict: refused: %s\n" % e
        veil = subprocess.run([dump] + paths + [str(AT)], capture_output=True, text=True).stdout
        print("== " + rep)
        print(ours, end="")
        if ours != veil or not ours.endswith("verdict: ok\n"):
            failed += 1
            print("MISMATCH or refusal; veil's snp_dump says:\n" + veil, end="")
    # teekit's key-binding vector: report_data = SHA-512(NONCE || X25519_KEY)
    kv = dict(l.split("=", 1) for l in open(os.path.join(VEC, "teekit/sev-gcp-x25519-bound.txt")).read().split())
    bound = parse_report(open(os.path.join(VEC, "teekit/sev-gcp-x25519-bound.bin"), "rb").read())
    h = hashes.Hash(hashes.SHA512())
    h.update(bytes.fromhex(kv["NONCE"]) + bytes.fromhex(kv["X25519_KEY"]))
    if h.finalize() != bound["report_data"]:
        failed += 1
        print("teekit/sev-gcp-x25519-bound.bin: report_data does not bind the X25519 key")
    print("check_snp: %d vectors, %d differ or refused" % (len(VECTORS), failed))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""An independent check of veil's Intel DCAP quote verifier.

For every real quote in tests/vectors (README.md section 1), Intel's synthetic
samples, and copies of each real quote with one bit flipped in each signed
region, this script parses the quote itself, verifies the PCK chain to the
Intel SGX Root CA, the QE report signature, the attestation key binding and
the quote signature with python3-cryptography (Debian's, no other module),
prints the fields veil's tests/tools/dcap_dump.c prints, and asserts both say
exactly the same. Usage: check_dcap.py BUILD_DIR (holding tests/dcap_dump).
Prints "N passed, N failed"; exits 1 on any difference.
"""
import datetime
import hashlib
import os
import struct
import subprocess
import sys
import tempfile
import warnings

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.x509.oid import NameOID

warnings.simplefilter("ignore")  # newer releases deprecate the naive-datetime accessors

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VECTORS = os.path.join(ROOT, "tests", "vectors")
INTEL_ROOT_SHA256 = "44a0196b2b99f889b8e149e95b807a350e7424964399e885a7cbb8ccfab674d3"
SGX_EXT = "1.2.840.113741.1.13.1"
TEEKIT = "dstack-teekit/packages/qvl/test/sampleQuotes/"
TRUSTEE = "trustee/deps/verifier/test_data/"
GOTDX = "go-tdx-guest/testing/testdata/"
QVL = "intel-qvl/Src/AttestationApp/sampleData/"

# (file, the FMSPC README.md's table gives, or None where it must be refused)
QUOTES = [
    (GOTDX + "tdx_prod_quote_SPR_E4.dat", "50806f000000"),
    (GOTDX + "quote_v5_sample.dat", "90c06f000000"),
    (GOTDX + "ccel/cos-113-tdx-quote.dat", "00806f050000"),
    (TRUSTEE + "tdx_quote_4.dat", "50806f000000"),
    (TRUSTEE + "tdx_quote_5.dat", "90c06f000000"),
    (TRUSTEE + "tdx_quote_6.dat", "00a06d080000"),
    (TRUSTEE + "az-tdx-vtpm/td-quote.bin", "00806f050000"),
    (TRUSTEE + "occlum_quote.dat", "00606a000000"),
    ("dcap-qvl/sample/sgx_quote", "00a067110000"),
    ("dcap-qvl/sample/tdx_quote", "b0c06f000000"),
    ("dcap-qvl/sample/tdx_quote_outdated", "90c06f000000"),
    ("derived/dcap-qvl_tdx-quote.bin", "b0c06f000000"),
    ("derived/dcap-qvl_quote-from-tappd.bin", "b0c06f000000"),
    (TEEKIT + "sgx-chinenyeokafor.dat", "90c06f000000"),
    (TEEKIT + "sgx-tlsn-quote9.dat", "00906ed50000"),
    (TEEKIT + "sgx-tlsn-quotedev.dat", "00906ed50000"),
    (TEEKIT + "tdx-v4-edgeless.dat", "00806f050000"),
    (TEEKIT + "tdx-v4-moemahhouk.dat", "90c06f000000"),
    (TEEKIT + "tdx-v4-zkdcap.dat", "00806f050000"),
    ("derived/tdx-v4-azure.decoded.bin", "00806f050000"),
    ("derived/tdx-v4-gcp.quote.bin", "00806f050000"),
    ("derived/tdx-v4-gcp-no-nonce.quote.bin", "00806f050000"),
    (QVL + "quote.dat", None),  # certification data type 1
    (QVL + "tdx/quote.dat", None),  # type 5 holding DER, and a test root
]


class Refused(Exception):
    def __init__(self, check, detail):
        super().__init__(detail)
        self.check = check


class Reader:
    """Bounds-checked reads; a short read is a parse refusal."""

    def __init__(self, data, base=0):
        self.data, self.pos, self.base = data, 0, base

    def take(self, n, name):
        if n > len(self.data) - self.pos:
            raise Refused("parse", f"{name} at {self.base + self.pos}: short")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def u16(self, name):
        return struct.unpack("<H", self.take(2, name))[0]

    def u32(self, name):
        return struct.unpack("<I", self.take(4, name))[0]

    def sub(self, n, name):
        at = self.base + self.pos
        return Reader(self.take(n, name), at)

    def end(self, name):
        if self.pos != len(self.data):
            raise Refused("parse", f"bytes after {name}")


def sgx_report(raw):
    return {
        "cpusvn": raw[0:16],
        "miscselect": struct.unpack_from("<I", raw, 16)[0],
        "attributes": raw[48:64],
        "mrenclave": raw[64:96],
        "mrsigner": raw[128:160],
        "isvprodid": struct.unpack_from("<H", raw, 256)[0],
        "isvsvn": struct.unpack_from("<H", raw, 258)[0],
        "report_data": raw[320:384],
        "debug": (raw[48] >> 1) & 1,
    }


def td_report(raw):
    r = {
        "tee_tcb_svn": raw[0:16],
        "td_attributes": struct.unpack_from("<Q", raw, 120)[0],
        "mrtd": raw[136:184],
        "rtmr": [raw[328 + 48 * i : 376 + 48 * i] for i in range(4)],
        "report_data": raw[520:584],
    }
    r["debug"] = r["td_attributes"] & 1
    if len(raw) == 648:
        r["mrservicetd"] = raw[600:648]
    return r


def parse(data):
    top = Reader(data)
    head = top.take(48, "header")
    version, akt, tee = struct.unpack_from("<HHI", head, 0)
    if version not in (3, 4, 5):
        raise Refused("parse", f"version {version}")
    if akt != 2:
        raise Refused("parse", f"attestation key type {akt}")
    if tee != (0 if version == 3 else 0x81):
        raise Refused("parse", f"tee type {tee:#x}")
    body_type, size = (0, 384) if version == 3 else (2, 584)
    if version == 5:
        body_type, declared = top.u16("body type"), top.u32("body size")
        size = {2: 584, 3: 648}.get(body_type)
        if size is None or declared != size:
            raise Refused("parse", "body type/size")
    body = top.take(size, "body")
    signed = data[: top.pos]
    sig = top.sub(top.u32("signature data length"), "signature data")
    q = {"version": version, "tee": tee, "body_type": body_type, "quote_size": top.pos,
         "signed": signed, "body": sgx_report(body) if version == 3 else td_report(body)}
    q["signature"] = sig.take(64, "signature")
    q["att_key"] = sig.take(64, "attestation key")
    qe = sig
    if version != 3:
        if sig.u16("certification data type") != 6:
            raise Refused("parse", "outer certification data type")
        qe = sig.sub(sig.u32("certification data size"), "certification data")
        sig.end("type 6")
    q["qe_raw"] = qe.take(384, "QE report")
    q["qe"] = sgx_report(q["qe_raw"])
    q["qe_sig"] = qe.take(64, "QE report signature")
    q["auth"] = qe.take(qe.u16("auth data size"), "auth data")
    if qe.u16("certification data type") != 5:
        raise Refused("parse", "certification data type")
    q["chain"] = qe.take(qe.u32("certification data size"), "certification data")
    qe.end("certification data")
    return q


def der_items(data):
    """(tag, contents) of each DER TLV in data, definite lengths only."""
    out, i = [], 0
    while i < len(data):
        if i + 2 > len(data):
            raise ValueError("short TLV")
        tag, n = data[i], data[i + 1]
        i += 2
        if n & 0x80:
            k = n & 0x7F
            if k == 0 or k > 4 or i + k > len(data):
                raise ValueError("bad length")
            n = int.from_bytes(data[i : i + k], "big")
            i += k
        if i + n > len(data):
            raise ValueError("TLV past the end")
        out.append((tag, data[i : i + n]))
        i += n
    return out


def oid_text(raw):
    arcs, v = [], 0
    for b in raw:
        v = (v << 7) | (b & 0x7F)
        if not b & 0x80:
            arcs.append(v)
            v = 0
    first = min(arcs[0] // 40, 2)
    return ".".join(str(a) for a in [first, arcs[0] - 40 * first] + arcs[1:])


def sgx_extension(leaf):
    ext = leaf.extensions.get_extension_for_oid(x509.ObjectIdentifier(SGX_EXT)).value.value
    (tag, seq), = der_items(ext)
    assert tag == 0x30
    got = {}
    for tag, pair in der_items(seq):
        (otag, oid), (vtag, val) = der_items(pair)
        name = oid_text(oid)
        if name == SGX_EXT + ".2":
            comps = {}
            for _, tcb_pair in der_items(val):
                (_, toid), (ttag, tval) = der_items(tcb_pair)
                comps[oid_text(toid)] = tval
            got["tcb"] = bytes(int.from_bytes(comps[f"{SGX_EXT}.2.{i}"], "big")
                               for i in range(1, 17))
            got["pce_svn"] = int.from_bytes(comps[SGX_EXT + ".2.17"], "big")
            got["cpu_svn"] = comps[SGX_EXT + ".2.18"]
        else:
            got[name] = val
    return {"fmspc": got[SGX_EXT + ".4"], "pce_id": got[SGX_EXT + ".3"],
            "pce_svn": got["pce_svn"], "cpu_svn": got["cpu_svn"], "tcb": got["tcb"]}


def pem_certs(blob):
    out, marker = [], b"-----END CERTIFICATE-----"
    for part in blob.split(marker)[:-1]:
        start = part.find(b"-----BEGIN CERTIFICATE-----")
        if start >= 0:
            out.append(x509.load_pem_x509_certificate(part[start:] + marker + b"\n"))
    return out


def valid_at(cert, at):
    t = datetime.datetime.utcfromtimestamp(at)
    return cert.not_valid_before <= t <= cert.not_valid_after


def signed_by(child, parent):
    try:
        parent.public_key().verify(child.signature, child.tbs_certificate_bytes,
                                   ec.ECDSA(child.signature_hash_algorithm))
        return child.issuer == parent.subject
    except (InvalidSignature, ValueError):
        return False


def ecdsa_ok(key, rs, data):
    sig = encode_dss_signature(int.from_bytes(rs[:32], "big"), int.from_bytes(rs[32:], "big"))
    try:
        key.verify(sig, data, ec.ECDSA(hashes.SHA256()))
        return True
    except InvalidSignature:
        return False


def verify(q, at):
    """the PCK facts, or Refused naming the failed check (veil's order)"""
    try:
        certs = pem_certs(q["chain"])
    except ValueError:
        certs = []
    if len(certs) != 3:
        raise Refused("pck-chain", f"{len(certs)} certificates")
    leaf, ca, root = certs
    with open(os.path.join(VECTORS, "go-tdx-guest/verify/trusted_root.pem"), "rb") as f:
        ours = x509.load_pem_x509_certificate(f.read())
    assert ours.fingerprint(hashes.SHA256()).hex() == INTEL_ROOT_SHA256
    if root.fingerprint(hashes.SHA256()).hex() != INTEL_ROOT_SHA256:
        raise Refused("pck-chain", "root")
    for child, parent in ((leaf, ca), (ca, root), (root, root)):
        if not signed_by(child, parent):
            raise Refused("pck-chain", "signature")
    for c in certs:
        if not valid_at(c, at):
            raise Refused("pck-chain", "validity")
    for c in (ca, root):
        if not c.extensions.get_extension_for_class(x509.BasicConstraints).value.ca:
            raise Refused("pck-chain", "not a CA")
    cn = ca.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    kinds = {"Intel SGX PCK Platform CA": "platform", "Intel SGX PCK Processor CA": "processor"}
    if cn not in kinds:
        raise Refused("pck-chain", "issuing CA")
    facts = sgx_extension(leaf)
    facts["ca"] = kinds[cn]
    if not ecdsa_ok(leaf.public_key(), q["qe_sig"], q["qe_raw"]):
        raise Refused("qe-report-signature", "")
    rd = q["qe"]["report_data"]
    if hashlib.sha256(q["att_key"] + q["auth"]).digest() != rd[:32] or any(rd[32:]):
        raise Refused("binding", "")
    try:
        key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), b"\x04" + q["att_key"])
    except ValueError:
        raise Refused("quote-signature", "not a point")
    if not ecdsa_ok(key, q["signature"], q["signed"]):
        raise Refused("quote-signature", "")
    return facts


def describe(data, at):
    """the lines dcap_dump prints"""
    try:
        q = parse(data)
    except Refused:
        return ["verdict refused parse"]
    b = q["body"]
    lines = [f"version {q['version']}", f"tee 0x{q['tee']:02x}", f"body_type {q['body_type']}",
             f"quote_size {q['quote_size']}"]
    if q["tee"] == 0:
        lines += [f"mrenclave {b['mrenclave'].hex()}", f"mrsigner {b['mrsigner'].hex()}",
                  f"isvprodid {b['isvprodid']}", f"isvsvn {b['isvsvn']}", f"debug {b['debug']}",
                  f"report_data {b['report_data'].hex()}"]
    else:
        lines += [f"tee_tcb_svn {b['tee_tcb_svn'].hex()}", f"mrtd {b['mrtd'].hex()}"]
        lines += [f"rtmr{i} {b['rtmr'][i].hex()}" for i in range(4)]
        lines += [f"td_attributes {b['td_attributes']:016x}", f"debug {b['debug']}",
                  f"report_data {b['report_data'].hex()}"]
        if "mrservicetd" in b:
            lines.append(f"mrservicetd {b['mrservicetd'].hex()}")
    qe = q["qe"]
    lines += [f"qe_mrenclave {qe['mrenclave'].hex()}", f"qe_mrsigner {qe['mrsigner'].hex()}",
              f"qe_isvprodid {qe['isvprodid']}", f"qe_isvsvn {qe['isvsvn']}"]
    try:
        f = verify(q, at)
    except Refused as r:
        return lines + [f"verdict refused {r.check}"]
    return lines + [f"fmspc {f['fmspc'].hex()}", f"pce_id {f['pce_id'].hex()}",
                    f"pce_svn {f['pce_svn']}", f"cpu_svn {f['cpu_svn'].hex()}",
                    f"tcb_comp_svn {f['tcb'].hex()}", f"pck_ca {f['ca']}", "verdict ok"]


def leaf_at(data):
    """a time inside the chain: the PCK leaf's notBefore + 1 day (0: none)"""
    try:
        leaf = pem_certs(parse(data)["chain"])[0]
    except (Refused, ValueError, IndexError):
        return 0
    nb = leaf.not_valid_before.replace(tzinfo=datetime.timezone.utc)
    return int(nb.timestamp()) + 86400


def flipped(data):
    """(label, bytes) copies with one bit flipped in each signed region"""
    q = parse(data)
    qe_at = data.find(q["qe_raw"])
    auth_at = qe_at + 384 + 64 + 2
    body_at = 54 if q["version"] == 5 else 48
    for label, off in (("header", 40), ("body", body_at + 100), ("signature", len(q["signed"]) + 9),
                       ("att-key", len(q["signed"]) + 4 + 70), ("qe-report", qe_at + 70),
                       ("auth-data", auth_at), ("chain", auth_at + len(q["auth"]) + 6 + 200)):
        copy = bytearray(data)
        copy[off] ^= 1
        yield label, bytes(copy)


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: check_dcap.py BUILD_DIR")
    tool = os.path.join(sys.argv[1], "tests", "dcap_dump")
    passed = failed = 0
    with tempfile.TemporaryDirectory() as tmp:
        for rel, fmspc in QUOTES:
            with open(os.path.join(VECTORS, rel), "rb") as f:
                data = f.read()
            at = leaf_at(data)
            cases = [("", data)] + (list(flipped(data)) if fmspc else [])
            for label, blob in cases:
                path = os.path.join(tmp, "quote")
                with open(path, "wb") as f:
                    f.write(blob)
                ours = describe(blob, at)
                veil = subprocess.run([tool, path, str(at)], capture_output=True, text=True)
                name = rel + (f" (bit flipped: {label})" if label else "")
                problems = []
                if veil.stdout.splitlines() != ours:
                    problems.append("veil and python differ:\n  veil:   " +
                                    "\n          ".join(veil.stdout.splitlines()) +
                                    "\n  python: " + "\n          ".join(ours))
                want_ok = bool(fmspc) and not label
                if (ours[-1] == "verdict ok") != want_ok:
                    problems.append(f"verdict {ours[-1]!r}, expected {'ok' if want_ok else 'refused'}")
                if want_ok and f"fmspc {fmspc}" not in ours:
                    problems.append(f"fmspc is not {fmspc}")
                if problems:
                    failed += 1
                    print(f"FAIL {name}: " + "; ".join(problems))
                else:
                    passed += 1
                    if not label:
                        keys = ("version", "tee ", "fmspc", "mrenclave", "mrtd", "report_data")
                        shown = [l for l in ours if l.startswith(keys)] + ours[-1:]
                        print(f"ok   {name}:\n       " + "\n       ".join(shown))
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

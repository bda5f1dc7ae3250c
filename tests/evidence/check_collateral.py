#!/usr/bin/env python3
"""An independent check of veil's collateral verification and TCB status
(src/evidence/collateral.c), written with python3-cryptography and json only.

For every bundle below it
  1. takes the TCB query values (FMSPC, PCE SVN, CPU SVN, TEE_TCB_SVN, the QE
     report's fields, the PCK serial) out of the quote itself: the PCK leaf of
     the PEM chain in the quote's certification data and its SGX extension,
     parsed here with a small DER reader of its own;
  2. verifies the TCB Info and QE Identity signatures over the same bytes veil
     signs (the bundle's string value, or the PCS body's "tcbInfo" /
     "enclaveIdentity" value as received), the issuer chains to the Intel root,
     and the CRLs' signatures;
  3. computes the TCB status with a straightforward walk of the levels;
  4. runs tests/tools/tcb_status (veil's result) with the same query and time
     and asserts both agree, field by field.

Usage: check_collateral.py TCB_STATUS_TOOL   (prints "N passed, N failed")
       check_collateral.py --query QUOTE      (the query values of one quote)
"""
import datetime
import json
import os
import subprocess
import sys

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

ROOT = os.environ.get("VEIL_SOURCE_ROOT") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", ".."))
VEC = os.path.join(ROOT, "tests", "vectors")
INTEL_ROOT_FP = "44a0196b2b99f889b8e149e95b807a350e7424964399e885a7cbb8ccfab674d3"
SGX_EXT = "1.2.840.113741.1.13.1"


def load_pems(data):
    """Every PEM certificate in data (Debian 12's cryptography 38 has no
    load_pem_x509_certificates)."""
    end = b"-----END CERTIFICATE-----"
    out = []
    for part in data.split(end)[:-1]:
        begin = part.find(b"-----BEGIN CERTIFICATE-----")
        if begin >= 0:
            out.append(x509.load_pem_x509_certificate(part[begin:] + end + b"\n"))
    return out


# --- the quote -----------------------------------------------------------

def le(b):
    return int.from_bytes(b, "little")


def der_items(data):
    """The TLV items of one DER level: (tag, value bytes) in order."""
    out, i = [], 0
    while i < len(data):
        tag = data[i]
        n = data[i + 1]
        i += 2
        if n & 0x80:
            k = n & 0x7F
            n = int.from_bytes(data[i:i + k], "big")
            i += k
        out.append((tag, data[i:i + n]))
        i += n
    return out


def oid_str(b):
    first = b[0]
    parts = [first // 40, first % 40]
    v = 0
    for c in b[1:]:
        v = (v << 7) | (c & 0x7F)
        if not c & 0x80:
            parts.append(v)
            v = 0
    return ".".join(map(str, parts))


def sgx_extension(cert):
    """{oid: value} of the PCK certificate's SGX extension, nested TCB flattened."""
    ext = cert.extensions.get_extension_for_oid(x509.ObjectIdentifier(SGX_EXT)).value.value
    out = {}

    def walk(seq):
        for tag, val in der_items(seq):
            assert tag == 0x30
            (t1, o), (t2, v) = der_items(val)
            assert t1 == 0x06
            oid = oid_str(o)
            if t2 == 0x30:
                walk(v)
            else:
                out[oid] = v
    (tag, body), = der_items(ext)
    walk(body)
    return out


def quote_query(path):
    """The TCB query of an SGX v3 or TDX v4/v5 quote: the PCK leaf's extension
    values and the QE report's, read at the offsets Intel's quote format
    documents (header 48 bytes; SGX report 384, TD report 1.0 584; v5: a
    6-byte body descriptor first)."""
    q = open(path, "rb").read()
    version, _att, tee = le(q[0:2]), le(q[2:4]), le(q[4:8])
    body_at, body = 48, 384 if tee == 0 else 584
    if version == 5:  # a body descriptor: type (2: TD report 1.0, 3: 1.5), size
        body_at, body = 54, le(q[50:54])
    off = body_at + body
    sig_len = le(q[off:off + 4])
    sig = q[off + 4:off + 4 + sig_len]
    i = 64 + 64  # signature, attestation key
    if version >= 4:
        ctype, csize = le(sig[i:i + 2]), le(sig[i + 2:i + 6])
        assert ctype == 6, ctype
        i += 6
    qe = sig[i:i + 384]
    i += 384 + 64
    auth = le(sig[i:i + 2])
    i += 2 + auth
    ctype, csize = le(sig[i:i + 2]), le(sig[i + 2:i + 6])
    assert ctype == 5, ctype
    pem = sig[i + 6:i + 6 + csize]
    certs = load_pems(pem)
    leaf = certs[0]
    ext = sgx_extension(leaf)
    tcb = SGX_EXT + ".2"

    def int_of(v):
        return int.from_bytes(v, "big") if v else 0
    cpu_svn = bytes(int_of(ext["%s.%d" % (tcb, k)]) for k in range(1, 17))
    assert cpu_svn == ext[tcb + ".18"], "the components and CPUSVN disagree"
    query = {
        "tee": "sgx" if tee == 0 else "tdx",
        "fmspc": ext[SGX_EXT + ".4"].hex(),
        "pce_svn": int_of(ext[tcb + ".17"]),
        "cpu_svn": cpu_svn.hex(),
        "qe_mrsigner": qe[128:160].hex(),
        "qe_isvprodid": le(qe[256:258]),
        "qe_isvsvn": le(qe[258:260]),
        "qe_miscselect": le(qe[16:20]),
        "qe_attributes": qe[48:64].hex(),
        "pck_serial": leaf.serial_number,
        "pck_ca": "processor" if "Processor" in certs[1].subject.rfc4514_string() else "platform",
    }
    if tee != 0:
        td = q[body_at:body_at + body]
        query["tee_tcb_svn"] = td[0:16].hex()
        query["mr_signer_seam"] = td[64:112].hex()
        query["seam_attributes"] = td[112:120].hex()
    return query



# --- verification, written independently of veil ---------------------------

class Refused(Exception):
    pass


def utc(dt):
    return dt if dt.tzinfo else dt.replace(tzinfo=datetime.timezone.utc)


def cert_window(c):
    nb = getattr(c, "not_valid_before_utc", None) or utc(c.not_valid_before)
    na = getattr(c, "not_valid_after_utc", None) or utc(c.not_valid_after)
    return int(nb.timestamp()), int(na.timestamp())


def load_root():
    pem = open(os.path.join(VEC, "go-tdx-guest", "verify", "trusted_root.pem"), "rb").read()
    root = x509.load_pem_x509_certificate(pem)
    fp = root.fingerprint(hashes.SHA256()).hex()
    assert fp == INTEL_ROOT_FP, fp
    return root


ROOT_CERT = load_root()


def cn(name):
    attrs = name.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    return attrs[0].value if attrs else ""


def signed_by(cert, issuer):
    if cert.issuer != issuer.subject:
        return False
    try:
        issuer.public_key().verify(cert.signature, cert.tbs_certificate_bytes,
                                   ec.ECDSA(cert.signature_hash_algorithm))
        return True
    except Exception:
        return False


def verify_chain(pem, want_cns):
    """The leaf (by CN) and the window of the chain up to the Intel root."""
    certs = load_pems(pem)
    leaves = [c for c in certs if cn(c.subject) in want_cns]
    if not leaves:
        raise Refused("no %s certificate" % want_cns[0])
    path, cur = [leaves[0]], leaves[0]
    while not signed_by(cur, ROOT_CERT):
        nxt = [c for c in certs if c is not cur and c.subject != c.issuer and signed_by(cur, c)]
        if not nxt or len(path) > 8:
            raise Refused("does not chain to the Intel SGX Root CA")
        cur = nxt[0]
        path.append(cur)
    path.append(ROOT_CERT)
    wins = [cert_window(c) for c in path]
    return leaves[0], (max(w[0] for w in wins), min(w[1] for w in wins))


def verify_sig(leaf, data, sig_hex):
    raw = bytes.fromhex(sig_hex)
    if len(raw) != 64:
        raise Refused("signature length")
    der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    try:
        leaf.public_key().verify(der, data, ec.ECDSA(hashes.SHA256()))
    except Exception:
        raise Refused("signature does not verify")


def member_span(text, key):
    """The exact characters of the value of a top-level member, found with
    Python's own JSON decoder (raw_decode gives where each value ends)."""
    dec = json.JSONDecoder()
    ws = " \t\n\r"
    i = 0
    while text[i] in ws:
        i += 1
    assert text[i] == "{"
    i += 1
    found = None
    while True:
        while text[i] in ws:
            i += 1
        if text[i] == "}":
            break
        name, i = json.decoder.scanstring(text, i + 1)
        while text[i] in ws:
            i += 1
        assert text[i] == ":"
        i += 1
        while text[i] in ws:
            i += 1
        _, end = dec.raw_decode(text, i)
        if name == key:
            found = (i, end)
        i = end
        while text[i] in ws:
            i += 1
        if text[i] == ",":
            i += 1
    return found


def verify_crl(der, issuer_cert):
    crl = x509.load_der_x509_crl(der)
    if crl.issuer != issuer_cert.subject or not crl.is_signature_valid(issuer_cert.public_key()):
        raise Refused("CRL signature")
    lu = getattr(crl, "last_update_utc", None) or utc(crl.last_update)
    nu = getattr(crl, "next_update_utc", None) or utc(crl.next_update)
    return crl, (int(lu.timestamp()), int(nu.timestamp()))


def ts(s):
    return int(datetime.datetime.strptime(s, "%Y-%m-%dT%H:%M:%SZ").replace(
        tzinfo=datetime.timezone.utc).timestamp())


def day(t):
    return datetime.datetime.fromtimestamp(t, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class Collateral:
    """One set: TCB Info, QE Identity, root CRL, PCK CRL, all verified."""

    def __init__(self, tcb_bytes, tcb_sig, tcb_chain, qe_bytes, qe_sig, qe_chain,
                 root_crl_der, pck_crl_der, pck_chain):
        leaf, self.tcb_chain_win = verify_chain(tcb_chain, ["Intel SGX TCB Signing"])
        verify_sig(leaf, tcb_bytes, tcb_sig)
        self.tcb_leaf = leaf
        self.tcb = json.loads(tcb_bytes)
        leaf, self.qe_chain_win = verify_chain(qe_chain, ["Intel SGX TCB Signing"])
        verify_sig(leaf, qe_bytes, qe_sig)
        self.qe_leaf = leaf
        self.qe = json.loads(qe_bytes)
        self.root_crl, self.root_crl_win = verify_crl(root_crl_der, ROOT_CERT)
        ca, self.pck_chain_win = verify_chain(
            pck_chain, ["Intel SGX PCK Platform CA", "Intel SGX PCK Processor CA"])
        self.pck_ca_cert = ca
        self.pck_ca = "processor" if "Processor" in cn(ca.subject) else "platform"
        self.pck_crl, self.pck_crl_win = verify_crl(pck_crl_der, ca)

    @classmethod
    def from_bundle(cls, path):
        b = json.load(open(path))
        return cls(b["tcb_info"].encode(), b["tcb_info_signature"], b["tcb_info_issuer_chain"].encode(),
                   b["qe_identity"].encode(), b["qe_identity_signature"],
                   b["qe_identity_issuer_chain"].encode(), bytes.fromhex(b["root_ca_crl"]),
                   bytes.fromhex(b["pck_crl"]), b["pck_crl_issuer_chain"].encode())

    @classmethod
    def from_pcs(cls, tcb_path, qe_path, chain_path, root_crl_path, pck_crl_path, pck_chain_path):
        def body(path, key):
            text = open(path, "rb").read().decode("ascii")
            a, b = member_span(text, key)
            return text[a:b].encode(), json.loads(text)["signature"]
        chain = open(chain_path, "rb").read()
        tb, ts_ = body(tcb_path, "tcbInfo")
        qb, qs = body(qe_path, "enclaveIdentity")
        return cls(tb, ts_, chain, qb, qs, chain, open(root_crl_path, "rb").read(),
                   open(pck_crl_path, "rb").read(), open(pck_chain_path, "rb").read())

    def windows(self):
        t, q = self.tcb, self.qe
        return [("the TCB Info", ts(t["issueDate"]), ts(t["nextUpdate"])),
                ("the TCB Info's signing chain",) + self.tcb_chain_win,
                ("the QE Identity", ts(q["issueDate"]), ts(q["nextUpdate"])),
                ("the QE Identity's signing chain",) + self.qe_chain_win,
                ("the root CA CRL",) + self.root_crl_win,
                ("the PCK CRL",) + self.pck_crl_win,
                ("the PCK CRL's issuer chain",) + self.pck_chain_win]

    def inside(self):
        """A time inside every window (their common part's middle)."""
        w = self.windows()
        lo, hi = max(x[1] for x in w), min(x[2] for x in w)
        assert lo <= hi, "no common window"
        return (lo + hi) // 2


SEVERITY = ["UpToDate", "SWHardeningNeeded", "ConfigurationNeeded",
            "ConfigurationAndSWHardeningNeeded", "OutOfDate", "OutOfDateConfigurationNeeded",
            "Revoked"]


def tcb_status(col, q, at):
    """The expected result: a dict like tcb_status prints, or Refused."""
    w = col.windows()
    if any(at < a or at > b for _, a, b in w):
        raise Refused("stale or not yet valid")
    for leaf in (col.tcb_leaf, col.qe_leaf, col.pck_ca_cert):
        if col.root_crl.get_revoked_certificate_by_serial_number(leaf.serial_number):
            raise Refused("intermediate revoked")
    next_update = min(b for _, _, b in w)
    if col.pck_crl.get_revoked_certificate_by_serial_number(int(q["pck_serial"], 16)):
        return {"status": "Revoked"}
    tcb, qe = col.tcb, col.qe
    tdx = q["tee"] == "tdx"
    if tcb.get("id", "SGX") != ("TDX" if tdx else "SGX") or tcb["fmspc"].lower() != q["fmspc"]:
        raise Refused("no TCB Info")
    # QE Identity
    if qe["id"] != ("TD_QE" if tdx else "QE"):
        raise Refused("QE id")
    attrs = bytes.fromhex(q["qe_attributes"])
    if (bytes.fromhex(qe["mrsigner"]) != bytes.fromhex(q["qe_mrsigner"]) or attrs[0] & 2
            or qe["isvprodid"] != q["qe_isvprodid"]):
        raise Refused("QE identity")
    misc = int.from_bytes(bytes.fromhex(qe["miscselect"]), "little")
    mmask = int.from_bytes(bytes.fromhex(qe["miscselectMask"]), "little")
    if q["qe_miscselect"] & mmask != misc & mmask:
        raise Refused("QE miscselect")
    want, amask = bytes.fromhex(qe["attributes"]), bytes.fromhex(qe["attributesMask"])
    if any(a & m != w_ & m for a, w_, m in zip(attrs, want, amask)):
        raise Refused("QE attributes")
    qe_level = next((l for l in qe["tcbLevels"] if q["qe_isvsvn"] >= l["tcb"]["isvsvn"]), None)
    if qe_level is None:
        raise Refused("QE ISVSVN")
    # platform level
    cpu = bytes.fromhex(q["cpu_svn"])
    tee_svn = bytes.fromhex(q.get("tee_tcb_svn", "00" * 16))

    def comps(level, name):
        t = level["tcb"]
        if name in t:
            return [c["svn"] for c in t[name]]
        return [t["sgxtcbcomp%02dsvn" % (k + 1)] for k in range(16)]
    level = None
    for l in tcb["tcbLevels"]:
        if q["pce_svn"] < l["tcb"]["pcesvn"]:
            continue
        if any(a < b for a, b in zip(cpu, comps(l, "sgxtcbcomponents"))):
            continue
        if tdx and any(a < b for a, b in zip(tee_svn, comps(l, "tdxtcbcomponents"))):
            continue
        level = l
        break
    if level is None:
        raise Refused("TCB not supported")
    merged = [level]
    if tdx:
        mod = tcb["tdxModule"]
        ids = tcb.get("tdxModuleIdentities", [])
        ident = None
        if tee_svn[1] > 0 and ids:
            wanted = "TDX_%02X" % tee_svn[1]
            ident = next((m for m in ids if m["id"].upper() == wanted), None)
            if ident is None:
                raise Refused("no module identity")
            mod = ident
        if bytes.fromhex(mod["mrsigner"]) != bytes.fromhex(q["mr_signer_seam"]):
            raise Refused("MRSIGNERSEAM")
        sa = bytes.fromhex(q["seam_attributes"])
        for a, w_, m in zip(sa, bytes.fromhex(mod["attributes"]), bytes.fromhex(mod["attributesMask"])):
            if a & m != w_ & m or a & ~m & 0xFF:
                raise Refused("SEAMATTRIBUTES")
        if ident is not None:
            ml = next((l for l in ident["tcbLevels"] if tee_svn[0] >= l["tcb"]["isvsvn"]), None)
            if ml is None:
                raise Refused("module ISVSVN")
            merged.append(ml)

    def merge(levels):
        status, ids = "UpToDate", []
        for l in levels:
            if SEVERITY.index(l["tcbStatus"]) > SEVERITY.index(status):
                status = l["tcbStatus"]
            for a in l.get("advisoryIDs", []):
                if a not in ids:
                    ids.append(a)
        return status, ids
    platform_status, _ = merge(merged)
    status, ids = merge(merged + [qe_level])
    return {"status": status, "platform_status": platform_status,
            "qe_status": qe_level["tcbStatus"], "advisory_ids": ids,
            "tcb_date": level["tcbDate"], "next_update": day(next_update)}


def serial_hex(n):
    return n.to_bytes(n.bit_length() // 8 + 1, "big").hex()


def main():
    tool = sys.argv[1]
    dq = os.path.join(VEC, "dcap-qvl", "sample")
    gt = os.path.join(VEC, "go-tdx-guest")
    gt_pcs = ["--chain", os.path.join(gt, "extracted", "tcb_info_issuer_chain.pem"),
              "--pcs", os.path.join(gt, "testing", "testdata", "sample_tcbInfo_response"),
              "--pcs", os.path.join(gt, "testing", "testdata", "sample_qeIdentity_response"),
              "--root-crl", os.path.join(gt, "testing", "testdata", "rootcrl.der"),
              "--pck-crl-chain", os.path.join(gt, "extracted", "pck_crl_issuer_chain.pem"),
              "--pck-crl", os.path.join(gt, "testing", "testdata", "pckcrl")]
    gt_col = Collateral.from_pcs(*(gt_pcs[i] for i in (3, 5, 1, 7, 11, 9)))
    cases = []  # (name, collateral, veil sources, query, at, published)
    for name, published in (("sgx_quote", ("ConfigurationAndSWHardeningNeeded",
                                           ["INTEL-SA-00289", "INTEL-SA-00615"])),
                            ("tdx_quote", ("UpToDate", [])),
                            ("tdx_quote_outdated", None)):
        bundle = os.path.join(dq, name + "_collateral.json")
        col = Collateral.from_bundle(bundle)
        q = quote_query(os.path.join(dq, name))
        assert q["pck_ca"] == col.pck_ca
        q["pck_serial"] = serial_hex(q["pck_serial"])
        at = col.inside()
        src = ["--bundle", bundle]
        cases.append((name, col, src, q, at, published))
        # a second after the first window ends
        cases.append((name + " stale", col, src, q, min(b for _, _, b in col.windows()) + 1, None))
        revoked = list(col.pck_crl)
        if revoked:
            rq = dict(q, pck_serial=serial_hex(revoked[len(revoked) // 2].serial_number))
            cases.append((name + " revoked serial", col, src, rq, at, ("Revoked", None)))
    # tdx_quote_outdated and SPR_E4 reach no TCB level (an SGX component below
    # every level's): both verifiers refuse them ("TCB not supported"), as
    # dcap-qvl does without its test-only TCB override
    q = quote_query(os.path.join(gt, "testing", "testdata", "tdx_prod_quote_SPR_E4.dat"))
    q["pck_serial"] = serial_hex(q["pck_serial"])
    cases.append(("go-tdx-guest 2023 SPR_E4", gt_col, gt_pcs, q, gt_col.inside(), None))

    passed = failed = 0
    # the query values tests/unit/test_collateral.c hard-codes are the ones
    # extracted here from the quotes
    unit = open(os.path.join(ROOT, "tests", "unit", "test_collateral.c")).read()
    for func, quote in (("sgx_query", os.path.join(dq, "sgx_quote")),
                        ("tdx_query", os.path.join(dq, "tdx_quote")),
                        ("spr_e4_query", os.path.join(gt, "testing", "testdata",
                                                       "tdx_prod_quote_SPR_E4.dat"))):
        body = unit[unit.index("static struct veil_tcb_query %s(void)" % func):]
        body = body[:body.index("\n}\n")]
        flat = " ".join(body.split())
        q = quote_query(quote)
        want = [q["fmspc"], q["cpu_svn"], q["qe_mrsigner"], q["qe_attributes"],
                '"%s"' % serial_hex(q["pck_serial"]), ".pce_svn = %d" % q["pce_svn"],
                ".qe_isvprodid = %d" % q["qe_isvprodid"], ".qe_isvsvn = %d" % q["qe_isvsvn"],
                ".qe_miscselect = %d" % q["qe_miscselect"],
                "VEIL_PCK_CA_%s" % q["pck_ca"].upper()]
        if q["tee"] == "tdx":
            want.append(q["tee_tcb_svn"])
            ok_seam = set(q["mr_signer_seam"] + q["seam_attributes"]) == {"0"}
        else:
            ok_seam = True
        missing = [w for w in want if w not in flat]
        ok = not missing and ok_seam
        print("%s test_collateral.c %s() holds the values extracted from %s%s" % (
            "ok  " if ok else "FAIL", func, os.path.basename(quote),
            "" if ok else ": missing %s" % missing))
        passed, failed = passed + ok, failed + (not ok)
    for name, col, src, q, at, published in cases:
        try:
            want = tcb_status(col, q, at)
        except Refused as e:
            want = {"error": str(e)}
        out = subprocess.run([tool, "--at", str(at), "--query", json.dumps(q)] + src,
                             capture_output=True, text=True)
        got = json.loads(out.stdout) if out.stdout.strip() else {"error": out.stderr}
        ok = ("error" in want) == ("error" in got)
        if ok and "error" not in want:
            for k, v in want.items():
                ok = ok and got.get(k) == v
        if ok and published:
            ok = got["status"] == published[0] and (
                published[1] is None or got["advisory_ids"] == published[1])
        print("%s %s at %s: python %s / veil %s" % ("ok  " if ok else "FAIL", name, day(at),
                                                  json.dumps(want), json.dumps(got)))
        passed, failed = passed + ok, failed + (not ok)
    print("%d passed, %d failed" % (passed, failed))
    return 0 if failed == 0 else 1


if __name__ == "__main__" and len(sys.argv) > 1 and sys.argv[1] == "--query":
    print(json.dumps(quote_query(sys.argv[2]), indent=1))
    sys.exit(0)
if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    sys.exit(main())

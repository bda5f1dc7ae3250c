#!/usr/bin/env python3
"""Attack clients for tests/e2e/attack_cas_robust.sh (loopback only)."""
import hashlib, http.client, json, os, socket, ssl, subprocess, sys, threading, time


def tls(cert=None, key=None):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    if cert:
        ctx.load_cert_chain(cert, key)
    return ctx


def flood(port, count, hold):
    """count plain TCP connections held open for hold seconds"""
    socks = []
    for _ in range(count):
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=2)
            socks.append(s)
        except OSError:
            time.sleep(0.01)
    print(len(socks), flush=True)
    time.sleep(hold)
    for s in socks:
        s.close()


def slowloris(port, every, limit):
    """one byte of a request every `every` s; prints the seconds until the
    CAS closed the connection (or limit when it never did)"""
    s = socket.create_connection(("127.0.0.1", port))
    c = tls().wrap_socket(s)
    req = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 10000
    t0 = time.time()
    for b in req:
        try:
            c.send(bytes([b]))
            c.settimeout(every)
            if c.recv(1) == b"":
                break
        except socket.timeout:
            pass
        except (OSError, ssl.SSLError):
            break
        if time.time() - t0 > limit:
            break
    print(round(time.time() - t0, 1))


def evidence(las, rd_hex, config_id):
    # from the static client the shell script built ($LASC): veil-las vouches
    # for no dynamically linked caller such as python3
    out = subprocess.run([os.environ["LASC"], las, rd_hex, config_id], capture_output=True)
    if out.returncode:
        sys.exit("no evidence: " + (out.stdout + out.stderr).decode(errors="replace"))
    return out.stdout.decode().strip()


def attest_body(las, key_hash, config_id, nfiles):
    # the policy's own 4096 files (write_policy), repeated: every one matches,
    # so a quadratic comparison runs to its end
    files = [{"path": "/f/%07d" % (i % 4096), "sha256": "%064x" % (i % 4096 + 1), "mode": "0644"}
             for i in range(nfiles)]
    return json.dumps({"config_id": config_id, "evidence": evidence(las, key_hash, config_id),
                       "file_set_root": "1" * 64, "files": files}).encode()


def post_attest(port, cert, key, body):
    c = http.client.HTTPSConnection("127.0.0.1", port, context=tls(cert, key), timeout=120)
    t0 = time.time()
    c.request("POST", "/v1/attest", body, {"Content-Type": "application/json"})
    r = c.getresponse()
    data = r.read()
    return r.status, data, time.time() - t0


def healthz_max(port, seconds):
    """the slowest /healthz answer (fresh connections) over `seconds`"""
    worst, end = 0.0, time.time() + seconds
    while time.time() < end:
        t0 = time.time()
        try:
            c = http.client.HTTPSConnection("127.0.0.1", port, context=tls(), timeout=30)
            c.request("GET", "/healthz")
            c.getresponse().read()
            c.close()
        except OSError:
            pass
        worst = max(worst, time.time() - t0)
        time.sleep(0.05)
    return worst


def main():
    cmd = sys.argv[1]
    if cmd == "flood":
        flood(int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]))
    elif cmd == "slowloris":
        slowloris(int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]))
    elif cmd == "attest":  # port cert key las key_hash config_id nfiles [request-out] -> status seconds body
        port, cert, key, las, kh, cid, n = sys.argv[2:9]
        body = attest_body(las, kh, cid, int(n))
        if len(sys.argv) > 9:  # the request, to open the sealed answer with (tests/tools/sealed_open.c)
            with open(sys.argv[9], "wb") as f:
                f.write(body)
        st, data, secs = post_attest(int(port), cert, key, body)
        print(st, round(secs, 2))
        sys.stdout.flush()
        os.write(1, data + b"\n")
    elif cmd == "healthz-max":
        print(round(healthz_max(int(sys.argv[2]), float(sys.argv[3])), 2))
    elif cmd == "bodies":  # port count size: count connections each sending size bytes of a body, slowly at the end
        port, count, size = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
        conns, codes = [], []
        for _ in range(count):
            try:
                c = tls().wrap_socket(socket.create_connection(("127.0.0.1", port)))
                c.sendall(b"POST /v1/policies HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % size)
                c.sendall(b"x" * (size - 1))
                conns.append(c)
            except OSError:
                pass
        print(len(conns), flush=True)
        got = [None] * len(conns)
        end = time.time() + float(sys.argv[5])
        for c in conns:
            c.setblocking(False)
        while time.time() < end:
            for i, c in enumerate(conns):
                if got[i] is None:
                    try:
                        d = c.recv(64)
                        got[i] = d.split(b" ")[1].decode() if d else "-"
                    except (ssl.SSLWantReadError, BlockingIOError):
                        pass
                    except Exception as e:
                        got[i] = "-"
                        print(repr(e), file=sys.stderr)
            time.sleep(0.1)
        for c in conns:
            c.close()
        print(" ".join(g or "-" for g in got))
    elif cmd == "nocert":  # port count: requests without a client certificate
        port, n = int(sys.argv[2]), int(sys.argv[3])
        c = http.client.HTTPSConnection("127.0.0.1", port, context=tls(), timeout=10)
        for _ in range(n):
            c.request("POST", "/v1/policies", b"{}")
            c.getresponse().read()


main()

"""Helpers of keyproc.sh: veil-cas's key process spoken to raw, and memory scans.

raw BUILD/veil-cas KEYFILE: starts a key process by hand over a socketpair
  (fd 3), asks it for a code key (a well-formed request), then sends a
  malformed message; prints "answer <hex>" and "exit <status>".
datakey DATA NS: the namespace's data key, unwrapped here with master.key
  (vault.c: nonce 12 | GCM | tag 16, AAD "veil-key-v1\\0" ns), as hex.
scan PID NEEDLE_HEX...: reads every readable mapping of PID through
  /proc/PID/mem (what a memory bug inside it could read; MADV_DONTDUMP does
  not hide memory here, unlike in a core) and prints the count of each needle.
scanfile FILE NEEDLE_HEX...: the same counts in a file (a core).
"""
import os
import socket
import sqlite3
import struct
import subprocess
import sys


def msg(mtype, fields, mid=1, flags=0):
    body = b"".join(struct.pack("<HI", t, len(v)) + v for t, v in fields)
    return struct.pack("<HHII", mtype, flags, len(body), mid) + body


def raw(cas, keyfile):
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)

    def child_fds():
        os.dup2(b.fileno(), 3)

    # fd 3 is kept (pass_fds), and set to the channel just before the exec
    p = subprocess.Popen([cas, "--key-process", "1", keyfile, "open"], pass_fds=(3,),
                         preexec_fn=child_fds, stderr=subprocess.PIPE)
    b.close()
    ready = a.recv(70000)
    if ready[:2] != b"\x01\x00":
        sys.exit("no ready message: " + p.stderr.read().decode(errors="replace"))
    a.send(msg(5, [(4, b"key-id"), (5, b"owner")], mid=7))
    ans = a.recv(70000)
    mtype, flags, size, mid = struct.unpack("<HHII", ans[:12])
    assert mtype == 0x8005 and mid == 7 and size == len(ans) - 12, ans
    print("answer", ans[12 + 6:].hex())
    # a field announcing 65535 bytes in a 6-byte message
    a.send(struct.pack("<HHII", 3, 0, 6, 8) + struct.pack("<HI", 1, 65535))
    try:
        rc = p.wait(timeout=10)
    except subprocess.TimeoutExpired:
        p.kill()
        rc = "still running"
    print("exit", rc)
    sys.stdout.write(p.stderr.read().decode(errors="replace"))


def datakey(data, ns):
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    master = open(os.path.join(data, "master.key"), "rb").read()
    db = sqlite3.connect("file:%s?mode=ro" % os.path.join(data, "cas.db"), uri=True)
    (w,) = db.execute("SELECT wrapped_key FROM policies WHERE namespace = ?", (ns,)).fetchone()
    key = AESGCM(master).decrypt(w[:12], w[12:], b"veil-key-v1\0" + ns.encode())
    print(key.hex())


def scan(pid, needles):
    found = [0] * len(needles)
    with open("/proc/%d/maps" % pid) as m, open("/proc/%d/mem" % pid, "rb", 0) as mem:
        for line in m:
            addr, perms = line.split()[:2]
            if perms[0] != "r" or "[vvar]" in line or "[vsyscall]" in line:
                continue
            lo, hi = (int(x, 16) for x in addr.split("-"))
            if hi - lo > 1 << 30:
                continue
            try:
                mem.seek(lo)
                chunk = mem.read(hi - lo)
            except OSError:
                continue
            for i, n in enumerate(needles):
                found[i] += chunk.count(n)
    print(" ".join(str(n) for n in found))


cmd = sys.argv[1]
if cmd == "raw":
    raw(sys.argv[2], sys.argv[3])
elif cmd == "datakey":
    datakey(sys.argv[2], sys.argv[3])
elif cmd == "scanfile":
    blob = open(sys.argv[2], "rb").read()
    print(" ".join(str(blob.count(bytes.fromhex(h))) for h in sys.argv[3:]))
elif cmd == "scan":
    scan(int(sys.argv[2]), [bytes.fromhex(h) for h in sys.argv[3:]])

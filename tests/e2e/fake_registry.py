#!/usr/bin/env python3
"""A read-only registry for tests/e2e/registry.sh, on 127.0.0.1 only: what
docker-registry cannot be made to do. It serves one OCI layout's image as
REPO:TAG behind the Bearer token flow (WWW-Authenticate realm/service/scope,
a token endpoint that takes Basic USER:PASSWORD), and as evil/REPO:TAG with
every blob's bytes changed (same size) or, for too-long/REPO:TAG, one byte
more than its size. Every request's method, path and Authorization scheme is
logged (one line each) to LOG, so the test can tell where credentials went.
Usage: fake_registry.py PORT LAYOUT TAG REPO USER:PASSWORD REALM_HOST LOG
"""
import base64
import hashlib
import json
import os
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

port, layout, tag, repo, userpass, realm_host, log = sys.argv[1:8]
port = int(port)
token = "tok-" + hashlib.sha256(os.urandom(16)).hexdigest()[:16]
with open(os.path.join(layout, "index.json")) as f:
    desc = [m for m in json.load(f)["manifests"]
            if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == tag][0]


def blob(digest):
    path = os.path.join(layout, "blobs", "sha256", digest.split(":", 1)[1])
    with open(path, "rb") as f:
        return f.read()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def send(self, code, body=b"", headers=()):
        self.send_response(code)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def refuse(self):
        err = json.dumps({"errors": [{"code": "UNAUTHORIZED", "message": "authentication required"}]})
        scope = "repository:%s:pull" % self.path.split("/")[2] if self.path.count("/") > 2 else ""
        self.send(401, err.encode(), [("WWW-Authenticate",
                  'Bearer realm="http://%s/token",service="fake",scope="%s"' % (realm_host, scope)),
                  ("Content-Type", "application/json")])

    def do_HEAD(self):
        self.do_GET()

    def do_GET(self):
        auth = self.headers.get("Authorization", "")
        with open(log, "a") as f:
            f.write("%s %s %s\n" % (self.command, self.path.split("?")[0], auth.split(" ")[0] or "-"))
        if self.path.startswith("/token"):
            want = "Basic " + base64.b64encode(userpass.encode()).decode()
            if auth != want:
                err = json.dumps({"errors": [{"code": "UNAUTHORIZED", "message": "bad credentials"}]})
                return self.send(401, err.encode(), [("Content-Type", "application/json")])
            return self.send(200, json.dumps({"token": token}).encode(),
                             [("Content-Type", "application/json")])
        if auth != "Bearer " + token:
            return self.refuse()
        if self.path == "/v2/":
            return self.send(200, b"{}")
        parts = self.path.split("/")
        name = "/".join(parts[2:-2])
        kind, ref = parts[-2], parts[-1]
        mode = "good"
        for m in ("evil", "too-long"):
            if name.startswith(m + "/"):
                mode, name = m, name[len(m) + 1:]
        if name != repo:
            return self.send(404, b'{"errors":[{"code":"NAME_UNKNOWN","message":"no such repository"}]}')
        if kind == "manifests" and ref in (tag, desc["digest"]):
            return self.send(200, blob(desc["digest"]), [("Content-Type", desc["mediaType"]),
                                                         ("Docker-Content-Digest", desc["digest"])])
        if kind == "blobs":
            try:
                data = blob(ref)
            except (OSError, IndexError):
                return self.send(404, b'{"errors":[{"code":"BLOB_UNKNOWN","message":"blob unknown"}]}')
            if mode == "evil":
                data = bytes(b ^ 0x55 for b in data)
            elif mode == "too-long":
                data += b"x"
            return self.send(200, data, [("Content-Type", "application/octet-stream")])
        self.send(404, b'{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}')


server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
print("listening on 127.0.0.1:%d" % port, flush=True)
server.serve_forever()

"""Helpers of the webhook tests: a real HTTP receiver on 127.0.0.1 and the
two signature checks, computed here with Python's hmac (independently of
the server's C code)."""
import base64
import hashlib
import hmac
import http.server
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time

from conftest import SOURCE_DIR

NPM_DIR = os.path.join(SOURCE_DIR, "tests", "npm")


class Receiver:
    """Records every POST (headers, raw body) and answers 200."""

    def __init__(self):
        self.got = []
        outer = self

        class H(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                outer.got.append(({k.lower(): v for k, v in self.headers.items()}, self.rfile.read(n)))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *a):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = "http://127.0.0.1:%d/hook" % self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def wait(self, pred, n=1, timeout=20):
        """The received (headers, envelope, raw body) whose envelope satisfies pred, once there are n."""
        deadline = time.time() + timeout
        while True:
            mine = [(h, json.loads(b), b) for h, b in list(self.got) if pred(json.loads(b))]
            if len(mine) >= n or time.time() > deadline:
                return mine
            time.sleep(0.05)

    def close(self):
        self.httpd.shutdown()


def check_signatures(secret, headers, body):
    """vec.digital (hex HMAC-SHA256 of the body) and Standard Webhooks
    (v1,base64 HMAC-SHA256 of id.timestamp.body), with the 32 key bytes of
    whsec_<base64>."""
    key = base64.b64decode(secret[len("whsec_"):])
    env = json.loads(body)
    assert headers["x-webhook-event"] == env["type"]
    assert headers["x-webhook-id"] == env["id"] == headers["webhook-id"]
    assert headers["x-webhook-signature"] == hmac.new(key, body, hashlib.sha256).hexdigest()
    signed = ("%s.%s." % (headers["webhook-id"], headers["webhook-timestamp"])).encode() + body
    want = "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    assert want in headers["webhook-signature"].split(" ")
    assert abs(int(headers["webhook-timestamp"]) - time.time()) < 300
    # and by the Standard Webhooks reference library (npm), where installed
    # (required under CI: scripts/setup installs it)
    node = shutil.which("node")
    if node and os.path.isdir(os.path.join(NPM_DIR, "node_modules", "standardwebhooks")):
        with tempfile.TemporaryDirectory() as d:
            with open(os.path.join(d, "h.json"), "w") as f:
                json.dump(headers, f)
            with open(os.path.join(d, "b"), "wb") as f:
                f.write(body)
            out = subprocess.run([node, os.path.join(NPM_DIR, "swh_verify.mjs"), secret, os.path.join(d, "h.json"),
                                  os.path.join(d, "b")], capture_output=True, text=True, timeout=60, cwd=NPM_DIR)
        assert out.stdout.strip() == "ok", out.stdout + out.stderr
    else:
        assert not os.environ.get("CI"), "node and tests/npm/node_modules are required under CI"

"""Remote QR logos: fetched only from allowlisted hosts, within size and time
limits, without following redirects, and only when they are images."""
import http.server
import json
import socketserver
import threading
import time

import pytest
import requests

from test_qr_api import tiny_png_data_url, zbar

import base64

PNG = base64.b64decode(tiny_png_data_url().split(",", 1)[1])


class Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass

    def do_GET(self):
        if self.path == "/logo.png":
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Content-Length", str(len(PNG)))
            self.end_headers()
            self.wfile.write(PNG)
        elif self.path == "/big.png":
            body = PNG + b"\0" * (2 * 1024 * 1024)
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        elif self.path == "/slow.png":
            time.sleep(2)
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.end_headers()
            self.wfile.write(PNG)
        elif self.path == "/text":
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.end_headers()
            self.wfile.write(b"hello")
        elif self.path == "/redirect":
            self.send_response(302)
            self.send_header("Location", "http://example.com/logo.png")
            self.end_headers()
        else:
            self.send_response(404)
            self.end_headers()


@pytest.fixture(scope="module")
def logo_host():
    class S(socketserver.ThreadingMixIn, http.server.HTTPServer):
        daemon_threads = True
    httpd = S(("127.0.0.1", 0), Handler)
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    yield "http://127.0.0.1:%d" % httpd.server_address[1]
    httpd.shutdown()


@pytest.fixture(scope="module")
def srv(server_factory):
    return server_factory(env={"BATCHD_RATE_LIMIT": "0", "BATCHD_LOGO_ALLOWLIST": "cdn.example.org, 127.0.0.1",
                               "BATCHD_LOGO_FETCH_TIMEOUT_MS": "700"})


@pytest.fixture(scope="module")
def key(run_batchd, srv):
    out = run_batchd("seed-demo", "--json", env={"BATCHD_PUBLIC_URL": srv.url})
    return json.loads(out.stdout)["qr"]["live_key"]


def make(srv, key, url):
    return requests.post(srv.url + "/v1/qr-codes", headers={"Authorization": "Bearer " + key},
                         json={"target": {"text": "remote logo"},
                               "design": {"error_correction": "H", "logo": {"url": url, "clear_background": True}}})


def test_allowlisted_logo_is_fetched_and_rendered(srv, key, logo_host):
    r = make(srv, key, logo_host + "/logo.png")
    assert r.status_code == 201, r.text
    code = r.json()
    assert code["design"]["logo"]["url"].startswith("data:image/png;base64,")
    png = requests.get(srv.url + "/v1/qr-codes/%s/download" % code["id"], headers={"Authorization": "Bearer " + key})
    assert zbar(png.content) == "remote logo"
    # the same through a batch
    r = requests.post(srv.url + "/v1/batches", headers={"Authorization": "Bearer " + key},
                      json={"items": [{"target": {"text": "b"}}],
                            "design": {"error_correction": "H", "logo": {"url": logo_host + "/logo.png"}}})
    assert r.status_code == 202, r.text


@pytest.mark.parametrize("path,why", [("/big.png", "larger than"), ("/slow.png", "timed out"), ("/text", "not a PNG"),
                                      ("/missing", "404"), ("/redirect", "302")])
def test_bad_remote_logos(srv, key, logo_host, path, why):
    t0 = time.time()
    r = make(srv, key, logo_host + path)
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["param"] == "design.logo.url" and why in err["message"], err
    assert time.time() - t0 < 3


def test_host_not_on_allowlist(srv, key, logo_host):
    r = make(srv, key, logo_host.replace("127.0.0.1", "localhost") + "/logo.png")
    assert r.status_code == 400 and "allowlist" in r.json()["error"]["message"]
    r = make(srv, key, "ftp://127.0.0.1/logo.png")
    assert r.status_code == 400 and r.json()["error"]["param"] == "design.logo.url"

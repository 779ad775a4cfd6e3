"""The webhook delivery engine (core/webhooks.c, 016_webhook_delivery.sql),
driven without any surface's API: endpoints and events come from the test
hooks (POST /_test/webhooks/endpoints, /_test/webhooks/emit) and SQL, and
deliveries go to real HTTP receivers started here on 127.0.0.1.

- An event arrives once at each subscribed endpoint of its owner, with
  both signature sets valid (vec.digital checked with Python's hmac,
  Standard Webhooks with the npm standardwebhooks package), and never at
  another owner's, mode's, surface's or event type's endpoint.
- 500, 500, 200: three deliveries of the same event id and body.
- A receiver down while batchd restarts gets the event after the restart;
  a batchd SIGKILLed after the emit (before delivering, or mid-delivery)
  loses nothing: the next process delivers.
- Without BATCHD_WEBHOOK_ALLOW_PRIVATE a URL that reaches 127.0.0.1 (set by
  SQL, or a name) is refused at connect time, the reason recorded.
- 1000 endpoints, one of them slow (5 s): the others are delivered while it
  hangs, and /healthz stays under 50 ms (probed from another process, as
  test_hostile_clients does).
- Failing longer than BATCHD_WEBHOOK_DISABLE_AFTER_S disables the endpoint
  with a reason; failing past BATCHD_WEBHOOK_RETRY_FOR_S fails the delivery.
Its own module (own database): no other process may claim these
deliveries, and every test stops its servers and ends what it left pending.
"""
import base64
import hashlib
import hmac
import http.server
import json
import os
import re
import shutil
import signal
import socketserver
import subprocess
import sys
import tempfile
import threading
import time
import uuid

import pytest
import requests

from conftest import SOURCE_DIR, free_port
from test_hostile_clients import HealthProbe

NPM_DIR = os.path.join(SOURCE_DIR, "tests", "npm")
BASE_ENV = {
    "BATCHD_TEST_HOOKS": "1",
    "BATCHD_RATE_LIMIT": "0",
    "BATCHD_ACCESS_LOG": "0",
    "BATCHD_WEBHOOK_ALLOW_HTTP": "1",
    "BATCHD_WEBHOOK_ALLOW_PRIVATE": "1",
    "BATCHD_WEBHOOK_RETRY_BASE_MS": "100",
    "BATCHD_WEBHOOK_TIMEOUT_MS": "3000",
}
ISO_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


# --- receivers ------------------------------------------------------------------------------------

class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n)
        rec = self.server.owner
        action = rec._arrived(self.path, dict((k.lower(), v) for k, v in self.headers.items()), body)
        delay, status = action if isinstance(action, tuple) else (0, action)
        if delay:
            time.sleep(delay)
        try:
            out = b"ok"
            self.send_response(status)
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)
        except OSError:
            pass  # batchd gave up (or was killed) meanwhile


class _Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    request_queue_size = 256


class Receiver:
    """POSTs to 127.0.0.1:port, recorded. plan[path] is a list of answers
    given in turn (the last one repeats): a status, or (seconds, status)
    to answer after a delay. Unplanned paths answer 200."""

    def __init__(self, port=0):
        self.plan = {}
        self.requests = []
        self.lock = threading.Lock()
        self.httpd = _Server(("127.0.0.1", port), _Handler)
        self.httpd.owner = self
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def _arrived(self, path, headers, body):
        with self.lock:
            self.requests.append({"path": path, "headers": headers, "body": body, "at": time.time()})
            answers = self.plan.get(path) or [200]
            return answers.pop(0) if len(answers) > 1 else answers[0]

    def got(self, path):
        with self.lock:
            return [r for r in self.requests if r["path"] == path]

    def wait(self, path, n, timeout=10):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if len(self.got(path)) >= n:
                return self.got(path)
            time.sleep(0.02)
        raise AssertionError("%s: %d requests within %s s, expected %d" % (path, len(self.got(path)), timeout, n))

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def receiver():
    made = []

    def make(port=0):
        r = Receiver(port)
        made.append(r)
        return r

    yield make
    for r in made:
        r.close()


# --- servers, endpoints, events ----------------------------------------------------------------------

@pytest.fixture
def start(server_factory, psql):
    """start(**env) -> a batchd with BASE_ENV + env. At the end of the test
    its servers are stopped (each must exit 0) and whatever it left pending
    is ended, so the next test's servers deliver only its own events."""
    made = []

    def make(**env):
        s = server_factory(env=dict(BASE_ENV, **env))
        made.append(s)
        return s

    yield make
    codes = [(s, s.stop(timeout=20)) for s in made if s.running]
    psql("UPDATE bd_webhook_deliveries SET state = 'failed', lease_until = NULL WHERE state = 'pending'")
    for s, code in codes:
        assert code == 0, "%r exited with %s" % (s, code)


def make_endpoint(srv, url, owner, events=("*",), surface="qr", mode="live"):
    r = requests.post(srv.url + "/_test/webhooks/endpoints",
                      json={"surface": surface, "owner": owner, "mode": mode, "url": url, "events": list(events)},
                      timeout=10)
    assert r.status_code == 201, r.text
    out = r.json()
    assert out["id"].startswith("wh_") and out["secret"].startswith("whsec_")
    return out


def emit(srv, owner, typ, data, surface="qr", mode="live"):
    r = requests.post(srv.url + "/_test/webhooks/emit",
                      json={"surface": surface, "owner": owner, "mode": mode, "type": typ, "data": data}, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()["event_id"]


def delivery(psql, endpoint_id):
    """state|attempts|last_status|last_error of the endpoint's one delivery."""
    return psql("SELECT state, attempts, coalesce(last_status::text, ''), coalesce(last_error, '')"
                " FROM bd_webhook_deliveries WHERE endpoint_id = '%s'" % endpoint_id)


def wait_sql(psql, sql, want, timeout=10):
    deadline = time.time() + timeout
    got = None
    while time.time() < deadline:
        got = psql(sql)
        if (want(got) if callable(want) else got == want):
            return got
        time.sleep(0.05)
    raise AssertionError("%s: %r after %s s" % (sql, got, timeout))


def key_of(secret):
    assert secret.startswith("whsec_")
    return base64.b64decode(secret[len("whsec_"):])


def check_signatures(req, secret):
    """The vec.digital and Standard Webhooks headers of one request,
    recomputed with Python's hmac."""
    h, body, key = req["headers"], req["body"], key_of(secret)
    assert h["x-webhook-id"] == h["webhook-id"]
    assert h["x-webhook-timestamp"] == h["webhook-timestamp"]
    ts = int(h["webhook-timestamp"])
    assert abs(ts - time.time()) < 120
    assert h["x-webhook-signature"] == hmac.new(key, body, hashlib.sha256).hexdigest()
    signed = h["webhook-id"].encode() + b"." + str(ts).encode() + b"." + body
    assert h["webhook-signature"] == "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def node_verifier():
    node = shutil.which("node")
    if node and os.path.isdir(os.path.join(NPM_DIR, "node_modules", "standardwebhooks")):
        return node
    if os.environ.get("CI", "").lower() not in ("", "0", "false", "no"):
        pytest.fail("node or tests/npm/node_modules/standardwebhooks missing, and CI is set (scripts/setup)",
                    pytrace=False)
    return None


def swh_verify(node, secret, headers, body):
    """'ok' or 'false' from tests/npm/swh_verify.mjs (the npm package)."""
    with tempfile.TemporaryDirectory() as d:
        with open(os.path.join(d, "h.json"), "w") as f:
            json.dump(headers, f)
        with open(os.path.join(d, "body"), "wb") as f:
            f.write(body)
        out = subprocess.run([node, os.path.join(NPM_DIR, "swh_verify.mjs"), secret, os.path.join(d, "h.json"),
                              os.path.join(d, "body")], capture_output=True, text=True, timeout=60, cwd=NPM_DIR)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def metric(srv, line_prefix):
    text = srv.get("/metrics").text
    for line in text.splitlines():
        if line.startswith(line_prefix + " "):
            return float(line.split()[-1])
    raise AssertionError("%s not on /metrics" % line_prefix)


# --- tests --------------------------------------------------------------------------------------------

def test_delivered_once_signed_only_to_its_owner(start, receiver, psql):
    rec = receiver()
    srv = start()
    owner, other = "ws_" + uuid.uuid4().hex[:12], "ws_" + uuid.uuid4().hex[:12]
    ep = make_endpoint(srv, rec.url("/typed"), owner, ["batch.completed"])
    star = make_endpoint(srv, rec.url("/star"), owner, ["*"])
    decoys = [make_endpoint(srv, rec.url("/other-type"), owner, ["batch.failed"]),
              make_endpoint(srv, rec.url("/other-owner"), other, ["*"]),
              make_endpoint(srv, rec.url("/other-mode"), owner, ["*"], mode="test"),
              make_endpoint(srv, rec.url("/other-surface"), owner, ["*"], surface="business", mode=None)]
    data = {"id": "b_1", "object": "batch", "status": "completed", "counts": [1, 2], "name": "caf\u00e9 \u2713"}
    evt = emit(srv, owner, "batch.completed", data)
    assert re.match(r"^evt_[0-9a-f]{32}$", evt)
    typed, starred = rec.wait("/typed", 1)[0], rec.wait("/star", 1)[0]
    time.sleep(0.5)  # nothing more comes
    assert len(rec.got("/typed")) == 1 and len(rec.got("/star")) == 1
    for p in ("/other-type", "/other-owner", "/other-mode", "/other-surface"):
        assert rec.got(p) == [], p
    assert typed["body"] == starred["body"]  # one envelope per event
    env = json.loads(typed["body"])
    assert list(env) == ["id", "type", "created_at", "data"]
    assert env["id"] == evt and env["type"] == "batch.completed" and env["data"] == data
    assert ISO_RE.match(env["created_at"])
    h = typed["headers"]
    assert h["content-type"] == "application/json"
    assert h["user-agent"].startswith("batchd-webhooks/")
    assert h["x-webhook-event"] == "batch.completed" and h["x-webhook-id"] == evt and h["webhook-id"] == evt
    check_signatures(typed, ep["secret"])
    check_signatures(starred, star["secret"])
    with pytest.raises(AssertionError):
        check_signatures(starred, ep["secret"])  # each endpoint signs with its own secret
    node = node_verifier()
    if node:
        assert swh_verify(node, ep["secret"], typed["headers"], typed["body"]) == "ok"
        assert swh_verify(node, star["secret"], starred["headers"], starred["body"]) == "ok"
        assert swh_verify(node, ep["secret"], starred["headers"], starred["body"]) == "false"
        assert swh_verify(node, ep["secret"], typed["headers"], typed["body"].replace(b"b_1", b"b_2")) == "false"
    for e in (ep, star):
        assert delivery(psql, e["id"]) == "succeeded|1|200|"
    for e in decoys:
        assert psql("SELECT count(*) FROM bd_webhook_deliveries WHERE endpoint_id = '%s'" % e["id"]) == "0"
    assert metric(srv, 'batchd_webhook_deliveries_total{outcome="succeeded"}') >= 2
    assert metric(srv, "batchd_webhook_deliveries_in_flight") == 0
    # an event nobody subscribed to is not even recorded
    assert emit(srv, "ws_nobody", "batch.completed", {}) is None


def test_retried_until_2xx_with_the_same_event(start, receiver, psql):
    rec = receiver()
    rec.plan["/flaky"] = [500, 500, 200]
    srv = start()
    owner = "ws_" + uuid.uuid4().hex[:12]
    ep = make_endpoint(srv, rec.url("/flaky"), owner)
    evt = emit(srv, owner, "batch.failed", {"id": "b_2"})
    got = rec.wait("/flaky", 3)
    wait_sql(psql, "SELECT state FROM bd_webhook_deliveries WHERE endpoint_id = '%s'" % ep["id"], "succeeded")
    time.sleep(0.4)
    assert len(rec.got("/flaky")) == 3
    assert {r["headers"]["webhook-id"] for r in got} == {evt}
    assert len({r["body"] for r in got}) == 1  # identical on every retry
    for r in got:
        check_signatures(r, ep["secret"])
    assert got[1]["at"] - got[0]["at"] >= 0.04  # backoff: base 100 ms x jitter 0.5-1
    assert got[2]["at"] - got[1]["at"] >= 0.09  # then twice that
    assert delivery(psql, ep["id"]) == "succeeded|3|200|"
    assert psql("SELECT failing_since IS NULL, is_active FROM bd_webhook_endpoints WHERE id = '%s'" % ep["id"]) == "t|t"
    assert metric(srv, 'batchd_webhook_deliveries_total{outcome="failed_attempt"}') >= 2


def test_receiver_down_across_restart(start, receiver, psql):
    port = free_port()  # nothing listens there yet
    a = start()
    owner = "ws_" + uuid.uuid4().hex[:12]
    ep = make_endpoint(a, "http://127.0.0.1:%d/back" % port, owner)
    emit(a, owner, "batch.completed", {"id": "b_3"})
    wait_sql(psql, "SELECT attempts > 0 FROM bd_webhook_deliveries WHERE endpoint_id = '%s'" % ep["id"], "t")
    state, attempts, status, error = delivery(psql, ep["id"]).split("|", 3)
    assert state == "pending" and status == "" and error  # no answer: connection refused
    assert a.stop() == 0
    rec = receiver(port)
    b = start()
    rec.wait("/back", 1, timeout=15)
    wait_sql(psql, "SELECT state FROM bd_webhook_deliveries WHERE endpoint_id = '%s'" % ep["id"], "succeeded")
    assert len(rec.got("/back")) == 1
    assert b.running


def test_sigkill_loses_nothing(start, receiver, psql):
    rec = receiver()
    # the first delivery hangs long enough for batchd to be killed mid-delivery
    rec.plan["/hang"] = [(2.0, 200), 200]
    env = {"BATCHD_WEBHOOK_TIMEOUT_MS": "1000", "BATCHD_PG_QUEUE_TIMEOUT_MS": "1000"}  # lease: 1 + 1 + 5 s
    a = start(**env)
    owner = "ws_" + uuid.uuid4().hex[:12]
    hang = make_endpoint(a, rec.url("/hang"), owner, ["batch.completed"])
    later = make_endpoint(a, rec.url("/later"), owner, ["batch.failed"])
    e1 = emit(a, owner, "batch.completed", {"id": "b_4"})
    rec.wait("/hang", 1)          # A has sent it and waits for the answer
    os.kill(a.pid, signal.SIGSTOP)  # A can do nothing more...
    # ...while this commits: the outbox, as a surface's transaction writes it
    e2 = psql("SELECT bd_webhook_emit('qr', '%s', 'live', 'batch.failed', '{\"id\": \"b_5\"}')" % owner)
    a.kill()                      # SIGKILL: no chance to clean up
    assert psql("SELECT state, attempts, lease_until > now() FROM bd_webhook_deliveries WHERE endpoint_id = '%s'"
                % hang["id"]) == "pending|0|t"
    assert rec.got("/later") == []
    b = start(**env)
    got = rec.wait("/later", 1, timeout=10)
    assert got[0]["headers"]["webhook-id"] == e2
    again = rec.wait("/hang", 2, timeout=15)  # after A's lease ran out
    assert {r["headers"]["webhook-id"] for r in again} == {e1}  # at least once, same event id
    for e in (hang, later):
        wait_sql(psql, "SELECT state FROM bd_webhook_deliveries WHERE endpoint_id = '%s'" % e["id"], "succeeded")
    assert psql("SELECT locked_by FROM bd_webhook_deliveries WHERE endpoint_id = '%s'" % hang["id"]) == ""
    assert b.running


def test_private_addresses_refused_without_allow_private(start, receiver, psql):
    rec = receiver()
    srv = start(BATCHD_WEBHOOK_ALLOW_PRIVATE="0")
    owner = "ws_" + uuid.uuid4().hex[:12]
    r = requests.post(srv.url + "/_test/webhooks/endpoints", timeout=10,
                      json={"surface": "qr", "owner": owner, "mode": "live", "url": rec.url("/ssrf"), "events": ["*"]})
    assert r.status_code == 422 and "private" in r.text  # a literal is refused when it is registered
    # names (and rows changed behind the API's back) are caught at connect time
    lit = make_endpoint(srv, "http://hooks.example.com/a", owner)
    name = make_endpoint(srv, "http://hooks.example.com/b", owner)
    psql("UPDATE bd_webhook_endpoints SET url = '%s' WHERE id = '%s'" % (rec.url("/ssrf"), lit["id"]))
    psql("UPDATE bd_webhook_endpoints SET url = 'http://localhost:%d/ssrf' WHERE id = '%s'" % (rec.port, name["id"]))
    emit(srv, owner, "batch.completed", {"id": "b_6"})
    for e in (lit, name):
        wait_sql(psql, "SELECT attempts > 0 FROM bd_webhook_deliveries WHERE endpoint_id = '%s'" % e["id"], "t")
    state, _, status, error = delivery(psql, lit["id"]).split("|", 3)
    assert state == "pending" and status == ""
    assert "refused to connect to 127.0.0.1" in error and "BATCHD_WEBHOOK_ALLOW_PRIVATE" in error, error
    error = delivery(psql, name["id"]).split("|", 3)[3]
    assert "refused to connect to" in error, error
    assert rec.got("/ssrf") == []


RECEIVER_SRC = r'''
import http.server, socketserver, sys, time
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path == "/slow":
            time.sleep(5)
        try:
            self.send_response(200); self.send_header("Content-Length", "0"); self.end_headers()
        except OSError:
            pass
class S(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    request_queue_size = 512
s = S(("127.0.0.1", 0), H)
print(s.server_address[1], flush=True)
s.serve_forever()
'''


def test_many_endpoints_and_a_slow_one_do_not_slow_the_loop(start, psql, workdir):
    """/healthz is probed from a process of its own every 20 ms, judged as in
    test_hostile_clients (HealthProbe: 50 ms, a lone late probe on this
    shared machine tolerated, a stall not)."""
    # the receiver is a process of its own too: 1000 deliveries must not
    # compete with the probe's measurements for one interpreter
    proc = subprocess.Popen([sys.executable, "-c", RECEIVER_SRC], stdout=subprocess.PIPE, text=True)
    try:
        port = int(proc.stdout.readline())
        srv = start(BATCHD_SHUTDOWN_GRACE_MS="1000", BATCHD_WEBHOOK_TIMEOUT_MS="10000")
        owner = "ws_" + uuid.uuid4().hex[:12]
        slow = make_endpoint(srv, "http://127.0.0.1:%d/slow" % port, owner)
        psql("INSERT INTO bd_webhook_endpoints (id, surface, owner, mode, url, events, secret_sealed)"
             " SELECT 'wh_many' || g, 'qr', '%s', 'live', 'http://127.0.0.1:%d/fast/' || g, '{*}',"
             " (SELECT secret_sealed FROM bd_webhook_endpoints WHERE id = '%s')"
             " FROM generate_series(1, 999) g" % (owner, port, slow["id"]))
        fast_done = "SELECT count(*) FROM bd_webhook_deliveries d WHERE d.state = 'succeeded'" \
                    " AND d.endpoint_id LIKE 'wh_many%%' AND d.event_id IN (SELECT id FROM bd_webhook_events" \
                    " WHERE owner = '%s')" % owner
        lag_before = metric(srv, "batchd_loop_lag_max_seconds")
        probe = HealthProbe(srv, workdir)
        t0 = time.time()
        emit(srv, owner, "batch.completed", {"id": "b_7"})
        done_at = None
        while time.time() - t0 < 2.5 or (done_at is None and time.time() - t0 < 20):
            if done_at is None and psql(fast_done) == "999":
                done_at = time.time() - t0
            time.sleep(0.1)
        probes, worst = probe.check("1000 webhook endpoints, one slow")
        assert done_at is not None, "the 999 fast endpoints were not all delivered within 20 s"
        lag = metric(srv, "batchd_loop_lag_max_seconds")
        print("1000 endpoints: 999 fast deliveries in <= %.2f s (%.0f/s) while one hangs for 5 s;"
              " /healthz worst %.1f ms over %d probes; loop lag max %.1f ms (%.1f before)"
              % (done_at, 999 / done_at, worst * 1000, probes, lag * 1000, lag_before * 1000))
        assert done_at < 5, "the fast endpoints waited for the slow one"
        assert delivery(psql, slow["id"]).startswith("pending|0|")  # still hanging
        # SIGTERM with the slow one in flight: given back at the end of the grace (1 s), not counted
        assert srv.stop() == 0
        assert psql("SELECT state, attempts, lease_until IS NULL FROM bd_webhook_deliveries"
                    " WHERE endpoint_id = '%s'" % slow["id"]) == "pending|0|t"
        assert "given back" in srv.log_text()
    finally:
        proc.kill()
        proc.wait()


def test_failing_endpoint_is_disabled_with_a_reason(start, receiver, psql):
    rec = receiver()
    rec.plan["/down"] = [503]
    srv = start(BATCHD_WEBHOOK_DISABLE_AFTER_S="2")
    owner = "ws_" + uuid.uuid4().hex[:12]
    ep = make_endpoint(srv, rec.url("/down"), owner)
    emit(srv, owner, "batch.completed", {"id": "b_8"})
    wait_sql(psql, "SELECT is_active FROM bd_webhook_endpoints WHERE id = '%s'" % ep["id"], "f", timeout=15)
    reason = psql("SELECT disabled_reason FROM bd_webhook_endpoints WHERE id = '%s'" % ep["id"])
    assert re.match(r"^failing since \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ: HTTP 503$", reason), reason
    n = len(rec.got("/down"))
    assert n >= 3
    # its delivery waits (pending) for the endpoint to be enabled again within the window; nothing goes out
    time.sleep(1.2)
    assert len(rec.got("/down")) == n
    assert delivery(psql, ep["id"]).startswith("pending|%d|503|HTTP 503" % n)
    assert emit(srv, owner, "batch.completed", {"id": "b_9"}) is None  # no active subscriber: no event
    assert metric(srv, "batchd_webhook_endpoints_disabled_total") == 1
    # enabled again: the pending delivery goes out
    rec.plan["/down"] = [200]
    psql("UPDATE bd_webhook_endpoints SET is_active = true, disabled_reason = NULL, failing_since = NULL"
         " WHERE id = '%s'" % ep["id"])
    wait_sql(psql, "SELECT state FROM bd_webhook_deliveries WHERE endpoint_id = '%s'" % ep["id"], "succeeded",
             timeout=15)


def test_gives_up_after_the_retry_window(start, receiver, psql):
    rec = receiver()
    rec.plan["/broken"] = [500]
    srv = start(BATCHD_WEBHOOK_RETRY_FOR_S="1")
    owner = "ws_" + uuid.uuid4().hex[:12]
    ep = make_endpoint(srv, rec.url("/broken"), owner)
    emit(srv, owner, "batch.completed", {"id": "b_10"})
    wait_sql(psql, "SELECT state FROM bd_webhook_deliveries WHERE endpoint_id = '%s'" % ep["id"], "failed", timeout=10)
    state, attempts, status, error = delivery(psql, ep["id"]).split("|", 3)
    assert int(attempts) >= 3 and status == "500" and error == "HTTP 500"
    assert int(attempts) == len(rec.got("/broken"))
    # the last attempt is made at the deadline, not an hour of backoff later or before it
    span = float(psql("SELECT extract(epoch FROM last_attempt_at - created_at) FROM bd_webhook_deliveries"
                      " WHERE endpoint_id = '%s'" % ep["id"]))
    assert 0.95 <= span < 3, span
    assert psql("SELECT is_active FROM bd_webhook_endpoints WHERE id = '%s'" % ep["id"]) == "t"  # 24 h to disable
    assert metric(srv, 'batchd_webhook_deliveries_total{outcome="failed"}') == 1

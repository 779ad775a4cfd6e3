"""HTTP semantics of the server core, against the real binary and PostgreSQL.

Covers pipelining order, chunked bodies, Expect: 100-continue, HEAD,
Connection: close, X-Request-Id, 404/405 bodies, every limit and timeout of
the contract (with small configured values so the tests are fast), and the
operational endpoints.
"""
import json
import socket
import time

import pytest
import requests

from batchd_client import recv_responses, send_raw


@pytest.fixture(scope="module")
def srv(server_factory):
    return server_factory(env={
        "BATCHD_TEST_HOOKS": "1",
        "BATCHD_MAX_JSON_BODY": "4096",
        "BATCHD_MAX_HEADER_BYTES": "2048",
        "BATCHD_HEADER_TIMEOUT_MS": "400",
        "BATCHD_BODY_TIMEOUT_MS": "400",
        "BATCHD_KEEPALIVE_TIMEOUT_MS": "600",
        "BATCHD_RATE_LIMIT": "0",
    })


def connect(srv):
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def test_healthz_and_request_id(srv):
    r = requests.get(srv.url + "/healthz")
    assert r.status_code == 200
    assert r.json()["status"] == "ok"
    assert r.headers["Content-Type"].startswith("application/json")
    assert r.headers["X-Request-Id"].startswith("req_")
    r = requests.get(srv.url + "/healthz", headers={"X-Request-Id": "abc-123.x"})
    assert r.headers["X-Request-Id"] == "abc-123.x"
    # an unsafe id is replaced, not echoed
    r = requests.get(srv.url + "/healthz", headers={"X-Request-Id": "bad id<script>"})
    assert r.headers["X-Request-Id"].startswith("req_")


def test_pipelined_requests_answered_in_order(srv):
    s = connect(srv)
    # the first is slow, the second fast: order must still be kept
    s.sendall(b"GET /_test/slow?ms=300 HTTP/1.1\r\nHost: x\r\nX-Request-Id: one\r\n\r\n"
              b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Request-Id: two\r\n\r\n"
              b"GET /_test/slow?ms=1 HTTP/1.1\r\nHost: x\r\nX-Request-Id: three\r\n\r\n")
    resps = recv_responses(s, 3)
    assert [r.headers["x-request-id"] for r in resps] == ["one", "two", "three"]
    assert [r.status for r in resps] == [200, 200, 200]
    assert json.loads(resps[0].body) == {"slept": True}
    assert json.loads(resps[1].body)["status"] == "ok"
    s.close()


def test_many_pipelined_requests(srv):
    s = connect(srv)
    n = 200
    s.sendall(b"".join(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Request-Id: r%d\r\n\r\n" % i for i in range(n)))
    resps = recv_responses(s, n, timeout=20)
    assert [r.headers["x-request-id"] for r in resps] == ["r%d" % i for i in range(n)]
    s.close()


def test_chunked_request_body(srv, psql):
    s = connect(srv)
    body = b'{"hello":"chunked world"}'
    parts = [body[:5], body[5:12], body[12:]]
    msg = b"POST /_test/writes HTTP/1.1\r\nHost: x\r\nX-Test-Credential: chunky\r\nTransfer-Encoding: chunked\r\n\r\n"
    for p in parts:
        msg += b"%x\r\n%s\r\n" % (len(p), p)
    msg += b"0\r\n\r\n"
    # send in awkward pieces
    for i in range(0, len(msg), 7):
        s.sendall(msg[i:i + 7])
        time.sleep(0.002)
    (r,) = recv_responses(s, 1)
    assert r.status == 201
    row_id = json.loads(r.body)["id"]
    assert psql("SELECT body FROM bd_test_writes WHERE id = %d" % row_id) == body.decode()
    s.close()


def test_chunked_body_with_trailers(srv, psql):
    """Trailer fields after a chunked body are read and ignored: the request's
    headers (X-Test-Credential, read when the body ends) stay intact, on a
    buffered route and on a streamed one, and the connection goes on."""
    s = connect(srv)
    body = b'{"trailers":"ignored"}'
    trailers = b"".join(b"X-Trailer-%d: %s\r\n" % (i, b"t" * 100) for i in range(8))  # moves any buffer they land in
    msg = (b"POST /_test/writes HTTP/1.1\r\nHost: x\r\nX-Test-Credential: trailing\r\nTransfer-Encoding: chunked\r\n"
           b"\r\n%x\r\n%s\r\n0\r\n%s\r\n" % (len(body), body, trailers))
    stream = b"s" * 3000
    msg += (b"POST /_test/stream HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"%x\r\n%s\r\n0\r\n%s\r\n" % (len(stream), stream, trailers))
    msg += b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
    s.sendall(msg)
    r1, r2, r3 = recv_responses(s, 3)
    assert r1.status == 201, r1.body
    row_id = json.loads(r1.body)["id"]
    assert psql("SELECT credential, body FROM bd_test_writes WHERE id = %d" % row_id) == "trailing|" + body.decode()
    assert r2.status == 200, r2.body
    assert r3.status == 200
    s.close()


def test_expect_100_continue(srv):
    s = connect(srv)
    body = b'{"x":1}'
    s.sendall(b"POST /_test/writes HTTP/1.1\r\nHost: x\r\nX-Test-Credential: c100\r\n"
              b"Content-Type: application/json\r\nExpect: 100-continue\r\nContent-Length: %d\r\n\r\n" % len(body))
    s.settimeout(5)
    first = s.recv(4096)
    assert first.startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
    rest = first[len(b"HTTP/1.1 100 Continue\r\n\r\n"):]
    s.sendall(body)
    (r,) = recv_responses(s, 1, initial=rest)
    assert r.status == 201
    s.close()


def test_expect_100_continue_refused_when_too_large(srv):
    s = connect(srv)
    s.sendall(b"POST /_test/writes HTTP/1.1\r\nHost: x\r\nX-Test-Credential: c\r\n"
              b"Expect: 100-continue\r\nContent-Length: 999999\r\n\r\n")
    (r,) = recv_responses(s, 1)
    assert r.status == 413  # answered without inviting the body
    assert r.headers.get("connection") == "close"
    s.close()


def test_head(srv):
    s = connect(srv)
    s.sendall(b"HEAD /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    resps = recv_responses(s, 2, head_first=True)
    assert resps[0].status == 200
    assert int(resps[0].headers["content-length"]) > 0
    assert resps[0].body == b""
    assert resps[1].status == 200 and json.loads(resps[1].body)["status"] == "ok"
    s.close()


def test_connection_close(srv):
    s = connect(srv)
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    data = b""
    s.settimeout(5)
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break  # the server closed
        data += chunk
    assert data.startswith(b"HTTP/1.1 200 OK")
    assert b"Connection: close" in data


def test_http10_without_keepalive_closes(srv):
    s = connect(srv)
    s.sendall(b"GET /healthz HTTP/1.0\r\n\r\n")
    s.settimeout(5)
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    assert b" 200 " in data.split(b"\r\n")[0]


def test_not_found_and_method_not_allowed(srv):
    r = requests.get(srv.url + "/nope")
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "not_found"
    assert r.json()["error"]["request_id"] == r.headers["X-Request-Id"]
    r = requests.delete(srv.url + "/healthz")
    assert r.status_code == 405
    assert "GET" in r.headers["Allow"]
    # each surface formats its own 404
    r = requests.get(srv.url + "/v1/definitely-not-here")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    r = requests.get(srv.url + "/business/definitely-not-here")
    assert r.status_code == 404 and r.json()["error"] == "resource_not_found"
    r = requests.post(srv.url + "/rpc/not/a/function", json={})
    assert r.status_code == 404 and set(r.json()) == {"code", "message", "details", "hint"}


def test_unknown_path_with_body_keeps_connection(srv):
    s = connect(srv)
    s.sendall(b"POST /nope HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
              b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    resps = recv_responses(s, 2)
    assert [r.status for r in resps] == [404, 200]
    s.close()


def test_header_limit_431(srv):
    s = connect(srv)
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 3000 + b"\r\n\r\n")
    (r,) = recv_responses(s, 1)
    assert r.status == 431
    assert json.loads(r.body)["error"]["code"] == "header_too_large"
    s.close()
    # still serving
    assert requests.get(srv.url + "/healthz").status_code == 200


def test_body_limit_413_content_length_and_chunked(srv):
    r = requests.post(srv.url + "/_test/writes", data=b"x" * 5000, headers={"X-Test-Credential": "c"})
    assert r.status_code == 413
    s = connect(srv)
    s.sendall(b"POST /_test/writes HTTP/1.1\r\nHost: x\r\nX-Test-Credential: c\r\nTransfer-Encoding: chunked\r\n\r\n")
    for _ in range(5):
        s.sendall(b"400\r\n" + b"y" * 0x400 + b"\r\n")
    (r,) = recv_responses(s, 1)
    assert r.status == 413
    s.close()
    # at the limit is fine
    r = requests.post(srv.url + "/_test/writes", data=b"z" * 4096, headers={"X-Test-Credential": "c"})
    assert r.status_code == 201


def test_malformed_request_400(srv):
    s = connect(srv)
    s.sendall(b"GARBAGE\x01 / HTTP/1.1\r\n\r\n")
    (r,) = recv_responses(s, 1)
    assert r.status == 400
    s.close()


def test_header_timeout_408(srv):
    s = connect(srv)
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # never finished
    t0 = time.time()
    (r,) = recv_responses(s, 1, timeout=5)
    assert r.status == 408
    assert 0.3 < time.time() - t0 < 3
    s.close()


def test_header_timeout_not_extended_by_trickle(srv):
    """A slowloris sending one byte at a time still hits the header deadline."""
    s = connect(srv)
    s.sendall(b"GET /healthz HTTP/1.1\r\n")
    t0 = time.time()
    got = b""
    s.settimeout(0.1)
    while time.time() - t0 < 3:
        try:
            s.sendall(b"X")
        except OSError:
            break
        try:
            chunk = s.recv(4096)
            if not chunk:
                break
            got += chunk
            if b"\r\n\r\n" in got:
                break
        except socket.timeout:
            pass
    assert got.startswith(b"HTTP/1.1 408")
    assert time.time() - t0 < 2


def test_body_timeout_408(srv):
    s = connect(srv)
    s.sendall(b"POST /_test/writes HTTP/1.1\r\nHost: x\r\nX-Test-Credential: c\r\nContent-Length: 100\r\n\r\nabc")
    (r,) = recv_responses(s, 1, timeout=5)
    assert r.status == 408
    s.close()


def test_keepalive_idle_timeout_closes(srv):
    s = connect(srv)
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    (r,) = recv_responses(s, 1)
    assert r.status == 200
    t0 = time.time()
    s.settimeout(5)
    assert s.recv(10) == b""  # closed by the server after the idle timeout
    assert 0.4 < time.time() - t0 < 3


def test_operational_endpoints(srv):
    r = requests.get(srv.url + "/readyz")
    assert r.status_code == 200 and r.json()["status"] == "ready"
    m = requests.get(srv.url + "/metrics")
    assert m.status_code == 200
    text = m.text
    assert 'batchd_http_requests_total{route="/healthz",method="GET",status="200"}' in text
    assert "batchd_http_request_duration_seconds_bucket" in text
    assert "batchd_db_pool_connected" in text
    assert "batchd_connections " in text
    assert "batchd_loop_lag_max_seconds" in text
    o = requests.get(srv.url + "/openapi.json")
    assert o.status_code == 200
    doc = o.json()
    assert doc["openapi"].startswith("3.1")
    assert "/healthz" in doc["paths"] and "/v1/batches" in doc["paths"] and "/s/{code}" in doc["paths"]


def test_access_log_line_per_request(srv):
    requests.get(srv.url + "/healthz", headers={"X-Request-Id": "logcheck-1"})
    time.sleep(0.2)
    lines = [json.loads(l) for l in srv.log_text().splitlines() if l.startswith("{")]
    mine = [l for l in lines if l.get("request_id") == "logcheck-1"]
    assert len(mine) == 1
    assert mine[0]["status"] == 200 and mine[0]["route"] == "/healthz" and mine[0]["method"] == "GET"
    assert "duration_ms" in mine[0]


def test_access_log_method_of_unparsed_requests(srv):
    """A request refused before its method was read is logged with method "-"
    (not as the first entry of llhttp's method table, DELETE); one refused
    after it keeps its method."""
    before = len(srv.log_text().splitlines())
    s = connect(srv)
    s.sendall(b"\x16\x03\x01\x02\x00garbage\r\n\r\n")  # a TLS hello on the plain port
    (r,) = recv_responses(s, 1)
    assert r.status == 400
    s.close()
    s = connect(srv)
    s.sendall(b"POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n")
    (r,) = recv_responses(s, 1)
    assert r.status == 400
    s.close()
    time.sleep(0.2)
    lines = [json.loads(l) for l in srv.log_text().splitlines()[before:] if l.startswith("{")]
    reqs = [l for l in lines if l.get("msg") == "request" and l.get("status") == 400]
    assert [l["method"] for l in reqs] == ["-", "POST"], reqs
    assert "DELETE" not in [l["method"] for l in lines if l.get("msg") == "request"]

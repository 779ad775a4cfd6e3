"""Streamed request bodies (handler sees bytes as they arrive and can pause
reading, as the CSV upload will when the database is behind) and streamed
chunked responses written under backpressure, through the real server."""
import hashlib
import socket
import time

import pytest
import requests

from batchd_client import recv_responses


@pytest.fixture(scope="module")
def srv(server_factory):
    return server_factory(env={"BATCHD_TEST_HOOKS": "1", "BATCHD_RATE_LIMIT": "0", "BATCHD_MAX_UPLOAD_BODY": "67108864",
                               "BATCHD_MAX_JSON_BODY": "1024"})


def payload(n):
    return bytes((i * 7 + 3) % 256 for i in range(256)) * (n // 256)


def test_streamed_body_with_pauses_content_length(srv):
    body = payload(8 << 20)
    t0 = time.time()
    r = requests.post(srv.url + "/_test/stream?pause_ms=50", data=body)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["bytes"] == len(body) and out["sha256"] == hashlib.sha256(body).hexdigest()
    assert out["pauses"] == 8
    assert time.time() - t0 >= 0.35  # the pauses really stopped the reading


def test_streamed_body_chunked(srv):
    body = payload(3 << 20)
    def gen():
        for i in range(0, len(body), 100000):
            yield body[i:i + 100000]
    r = requests.post(srv.url + "/_test/stream?pause_ms=10", data=gen())
    assert r.status_code == 200
    assert r.json()["sha256"] == hashlib.sha256(body).hexdigest()


def test_upload_limit_applies_to_streams_not_json_limit(srv):
    # the JSON limit is 1 KiB here; the upload route takes far more
    r = requests.post(srv.url + "/_test/stream", data=payload(1 << 20))
    assert r.status_code == 200
    s = socket.create_connection(("127.0.0.1", srv.port))
    s.sendall(b"POST /_test/stream HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % (70 << 20))
    (r,) = recv_responses(s, 1)
    assert r.status == 413  # refused from the headers, before any body
    s.close()


def test_client_leaving_mid_stream_is_harmless(srv):
    s = socket.create_connection(("127.0.0.1", srv.port))
    s.sendall(b"POST /_test/stream?pause_ms=100 HTTP/1.1\r\nHost: x\r\nContent-Length: 10000000\r\n\r\n")
    s.sendall(payload(3 << 20))
    s.close()
    time.sleep(0.5)
    assert requests.get(srv.url + "/healthz").status_code == 200
    m = requests.get(srv.url + "/metrics").text
    assert "batchd_requests_in_flight 1" in m  # only the /metrics request itself


def test_streamed_response_under_backpressure(srv):
    n = 40 << 20
    s = socket.create_connection(("127.0.0.1", srv.port))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    s.sendall(b"GET /_test/stream-out?bytes=%d HTTP/1.1\r\nHost: x\r\n\r\n" % n)
    time.sleep(0.5)  # a slow reader: the server must wait, not buffer 40 MB
    raw = bytearray()
    s.settimeout(30)
    while not raw.endswith(b"\r\n0\r\n\r\n"):
        chunk = s.recv(1 << 20)
        assert chunk, "connection closed early"
        raw += chunk
    (r,) = recv_responses(s, 1, initial=bytes(raw))
    assert r.status == 200 and r.headers["transfer-encoding"] == "chunked"
    assert len(r.body) == n
    expect = hashlib.sha256()
    pattern = bytes(i % 251 for i in range(251))
    full, rest = divmod(n, 251)
    expect.update(pattern * full + pattern[:rest])
    assert hashlib.sha256(r.body).hexdigest() == expect.hexdigest()
    s.close()

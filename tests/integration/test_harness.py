"""Self-test of the integration harness (conftest.py, batchd_client.py).

The parser tests need no server; the rest check that the fixtures give what
they promise against the real binary and PostgreSQL, so that a broken
harness fails here rather than as a puzzle in another file."""
import json
import signal
import socket
import threading

import pytest
import requests

import conftest
from batchd_client import (Incomplete, parse_response, parse_responses, raw_request, recv_responses,
                           request_bytes)

# ---------------------------------------------------------------- the parser


def test_parser_content_length_and_pipelining():
    buf = (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: 1\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\n\r\nhello"
           b"HTTP/1.1 404 Not Found\r\ncontent-length: 2\r\n\r\n{}")
    a, b = parse_responses(buf)
    assert (a.status, a.reason, a.body, a.header("x-a"), a.headers["x-a"]) == (200, "OK", b"hello", "1", "1")
    assert a.all("Set-Cookie") == ["a=1", "b=2"]
    assert (b.status, b.json()) == (404, {})


def test_parser_chunked_with_extensions_and_trailers():
    buf = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
           b"5;ext=1\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\nX-Trailer: t\r\n\r\n"
           b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
    a, b = parse_responses(buf)
    assert a.body == b"hello world" and a.trailers == {"x-trailer": "t"}
    assert b.body == b""


def test_parser_bodiless_interim_head_and_close_delimited():
    buf = (b"HTTP/1.1 100 Continue\r\n\r\n"
           b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n"          # answers HEAD: no body follows
           b"HTTP/1.1 204 No Content\r\n\r\n"
           b"HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n"
           b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil close")
    rs = parse_responses(buf, head=(0,))
    assert [r.status for r in rs] == [200, 204, 304, 200]
    assert [r.body for r in rs] == [b"", b"", b"", b"until close"]
    assert [r.status for r in parse_responses(buf, head=(0,), interim=True)][0] == 100


def test_parser_incomplete_and_garbage():
    full = b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nabcd"
    for cut in range(len(full)):
        with pytest.raises(Incomplete):
            parse_response(full[:cut])
    r, rest = parse_response(full + b"HTTP/1.1 2")
    assert r.body == b"abcd" and rest == b"HTTP/1.1 2"
    with pytest.raises(ValueError):
        parse_responses(full + b"HTTP/1.1 2")
    with pytest.raises(Incomplete):
        parse_response(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel")
    with pytest.raises(ValueError):
        parse_response(b"SSH-2.0-OpenSSH\r\n\r\n")


def test_request_bytes():
    assert request_bytes("POST", "/x", {"X-A": "1"}, "hé") == (
        b"POST /x HTTP/1.1\r\nHost: 127.0.0.1\r\nX-A: 1\r\nContent-Length: 3\r\n\r\nh\xc3\xa9")


def _fake_server(payload):
    """A one-shot TCP server that reads a request, sends payload, closes."""
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(1)

    def serve():
        c, _ = ls.accept()
        c.recv(65536)
        for i in range(0, len(payload), 7):  # in small pieces
            c.sendall(payload[i:i + 7])
        c.close()
        ls.close()

    threading.Thread(target=serve, daemon=True).start()
    return ls.getsockname()[1]


def test_raw_request_and_recv_responses_on_a_fake_server():
    payload = (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
               b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n")
    port = _fake_server(payload)
    assert raw_request(port, b"GET / HTTP/1.1\r\n\r\n", timeout=5) == payload
    port = _fake_server(payload + b"HTTP/1.1 200 OK\r\n\r\nrest")
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"GET / HTTP/1.1\r\n\r\n")
    a, b, c = recv_responses(s, 3)
    s.close()
    assert (a.body, b.body, c.body) == (b"ok", b"abc", b"rest")


# --------------------------------------------------------------- the fixtures


def test_pg_url_and_module_database(pg_url, database, psql):
    assert database != pg_url
    name = psql("SELECT current_database()")
    assert name.startswith("bd_test_harness_")
    assert conftest.psql_run(pg_url, "SELECT current_database()") == "postgres"
    assert psql("SELECT count(*) FROM pg_database WHERE datname = '%s'" % name) == "1"


def test_create_and_drop_database(pg_url):
    name, url = conftest.create_database(pg_url, "Harness-Self.Test")
    assert name.startswith("bd_harness_self_test_")
    assert conftest.psql_run(url, "SELECT current_database()") == name
    conftest.drop_database(pg_url, name)
    assert conftest.psql_run(pg_url, "SELECT count(*) FROM pg_database WHERE datname = '%s'" % name) == "0"


def test_server_is_up_with_request_ids(server):
    r = requests.get(server.url + "/healthz", timeout=5)
    assert r.status_code == 200
    assert "status" in r.json()
    assert r.headers.get("X-Request-Id")
    r = requests.get(server.url + "/healthz", headers={"X-Request-Id": "harness-1"}, timeout=5)
    assert r.headers.get("X-Request-Id") == "harness-1"
    # the fixture waited for the schema too
    assert server.get("/readyz").status_code == 200
    assert server.port == int(server.url.rsplit(":", 1)[1]) and server.running
    assert server.env["BATCHD_LISTEN"] == "127.0.0.1:%d" % server.port


def test_raw_pipelined_requests_against_the_server(server):
    req = request_bytes("GET", "/healthz", {"X-Request-Id": "p1"}) + \
        request_bytes("HEAD", "/healthz", {"X-Request-Id": "p2"}) + \
        request_bytes("GET", "/healthz", {"X-Request-Id": "p3", "Connection": "close"})
    rs = parse_responses(raw_request(server.port, req, timeout=10), head=(1,))
    assert [r.status for r in rs] == [200, 200, 200]
    assert [r.header("x-request-id") for r in rs] == ["p1", "p2", "p3"]
    assert rs[1].body == b"" and rs[0].json()["status"]


def test_server_log_is_json_lines(server):
    requests.get(server.url + "/healthz", headers={"X-Request-Id": "harness-log"}, timeout=5)
    lines = server.log_lines()
    assert lines, server.log_text()[-2000:]
    assert all(isinstance(x, dict) for x in lines)


ID_FIELDS = {
    "business": ["institution_id", "user_uuid", "archived_user_uuid", "unsigned_user_uuid", "template_ids"],
    "qr": ["template_id"],
    "products": ["brand_id", "product_id", "gtin"],
}


def test_seed_demo_is_idempotent(seed, run_batchd, server):
    again = run_batchd("seed-demo", "--json", env={"BATCHD_PUBLIC_URL": server.url})
    assert again.returncode == 0, again.stderr
    second = json.loads(again.stdout)  # exactly one JSON object on stdout
    assert seed["base_url"] == second["base_url"] == server.url
    # the ids CONTRACT.md names, for every surface the binary seeds so far
    same = 0
    assert sorted(seed) == sorted(second)
    for section, fields in ID_FIELDS.items():
        for f in fields:
            if f in seed.get(section, {}):
                assert seed[section][f] == second[section][f], (section, f)
                same += 1
    assert same >= 4
    assert seed["qr"]["live_key"].startswith("qr_live_")


def test_factory_env_overrides_and_clean_stop(server_factory):
    s = server_factory(env={"BATCHD_RATE_LIMIT": "0", "BATCHD_HARNESS_MARKER": "x1"})
    assert s.port != 0 and s.pid > 0
    with open("/proc/%d/environ" % s.pid, "rb") as f:
        env = f.read().split(b"\0")
    assert b"BATCHD_HARNESS_MARKER=x1" in env and b"BATCHD_RATE_LIMIT=0" in env
    assert s.stop(signal.SIGTERM, timeout=15) == 0
    assert not s.running
    with pytest.raises(requests.ConnectionError):
        requests.get(s.url + "/healthz", timeout=2)


def test_server_start_failure_reports_the_log(server_factory, workdir):
    with pytest.raises(RuntimeError) as e:
        server_factory(env={"BATCHD_LISTEN": "not-an-address"}, timeout=5)
    assert "log tail" in str(e.value)


def test_run_batchd_subcommands(run_batchd):
    out = run_batchd("--version")
    assert out.returncode == 0 and out.stdout.strip()
    assert run_batchd("migrate").returncode == 0


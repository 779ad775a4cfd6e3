"""Faults on the certificate surface's streamed upload (POST
/business/batches: multipart -> roster -> COPY in one transaction): batchd
SIGKILLed in the middle of the COPY, and PostgreSQL stopped in the middle
of it. Nothing of an interrupted upload may persist, the failed request gets
a clear error (503 + Retry-After), and uploads work again after recovery.
"""
import json
import os
import signal
import socket
import threading
import time
import uuid

import requests

from batchd_client import parse_response
# --- the certificate surface's streamed upload ------------------------------------------------


def biz_counts(psql):
    return psql("SELECT (SELECT count(*) FROM biz_batches), (SELECT count(*) FROM biz_certificates),"
                " (SELECT count(*) FROM bd_jobs WHERE kind = 'cert.batch')")


def slow_upload(url, biz, rows, pause_every=2000, pause=0.05, started=None):
    """A streamed multipart POST /business/batches that takes its time."""
    boundary = "F" + uuid.uuid4().hex

    def gen():
        for k, v in (("name", "fault"), ("template_id", biz["template_ids"]["plain"])):
            yield ("--%s\r\nContent-Disposition: form-data; name=\"%s\"\r\n\r\n%s\r\n" % (boundary, k, v)).encode()
        yield ("--%s\r\nContent-Disposition: form-data; name=\"csv_file\"; filename=\"r.csv\"\r\n"
               "Content-Type: text/csv\r\n\r\nRecipientsEmail,RecipientsName\r\n" % boundary).encode()
        for start in range(0, rows, pause_every):
            if started is not None:
                started.set()
            yield b"".join(b"f%d@example.com,F %d\r\n" % (i, i) for i in range(start, min(rows, start + pause_every)))
            time.sleep(pause)
        yield ("\r\n--%s--\r\n" % boundary).encode()

    return requests.post(url + "/business/batches", data=gen(), timeout=60,
                         headers={"Authorization": "Bearer " + biz["token"],
                                  "Content-Type": "multipart/form-data; boundary=" + boundary})


def test_sigkill_mid_upload_persists_nothing(server_factory, run_batchd, psql):
    a = server_factory(env={"BATCHD_RATE_LIMIT": "0"})
    out = run_batchd("seed-demo", "--json", env={"BATCHD_PUBLIC_URL": a.url})
    biz = json.loads(out.stdout)["business"]
    before = biz_counts(psql)
    started = threading.Event()
    box = {}

    def go():
        try:
            box["r"] = slow_upload(a.url, biz, 400000, started=started)
        except requests.RequestException as e:
            box["e"] = e

    t = threading.Thread(target=go)
    t.start()
    assert started.wait(10)
    deadline = time.time() + 20
    while time.time() < deadline and psql("SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'COPY biz%'"
                                          " AND state = 'active'") == "0":
        time.sleep(0.05)
    time.sleep(0.5)  # well inside the COPY
    a.kill()
    t.join()
    assert "e" in box, "the upload completed before the kill: %s" % box.get("r")
    # PostgreSQL aborts the dead connection's transaction: nothing of the upload persists
    deadline = time.time() + 15
    while time.time() < deadline and psql("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                                          " AND pid <> pg_backend_pid() AND backend_type = 'client backend'") != "0":
        time.sleep(0.1)
    assert biz_counts(psql) == before
    b = server_factory(env={"BATCHD_RATE_LIMIT": "0"})
    r = slow_upload(b.url, biz, 10)
    assert r.status_code == 201, r.text
    assert r.json()["data"]["total_certificates"] == 10


def test_database_stopped_mid_upload(private_pg, server_factory, run_batchd):
    pg = private_pg()

    def psql(sql):
        from conftest import psql_run
        return psql_run(pg.url, sql)

    srv = server_factory(database_url=pg.url, env={"BATCHD_RATE_LIMIT": "0", "BATCHD_PG_QUEUE_TIMEOUT_MS": "500"})
    out = run_batchd("seed-demo", "--json", env={"BATCHD_PUBLIC_URL": srv.url}, database_url=pg.url)
    biz = json.loads(out.stdout)["business"]
    before = biz_counts(psql)
    started = threading.Event()
    box = {}

    def go():
        try:
            box["r"] = slow_upload(srv.url, biz, 400000, started=started)
        except requests.RequestException as e:
            box["e"] = e

    t = threading.Thread(target=go)
    t.start()
    assert started.wait(10)
    time.sleep(1.0)
    pg.stop()
    t.join()
    assert requests.get(srv.url + "/healthz", timeout=2).status_code == 200
    # the upload failed with a clear error: 503 + Retry-After in the
    # surface's format (it used to stall until the body timeout: a paused
    # COPY producer was never told its connection had died)
    assert "r" in box, "the upload got no answer: %r" % box.get("e")
    r = box["r"]
    assert r.status_code == 503, (r.status_code, r.text[:300])
    assert r.headers.get("Retry-After")
    assert r.json().get("message"), r.text
    # while the database is down new uploads get 503 too
    r = slow_upload(srv.url, biz, 10)
    assert r.status_code == 503 and r.headers.get("Retry-After"), (r.status_code, r.text[:300])
    pg.start()
    deadline = time.time() + 20
    while time.time() < deadline:
        r = slow_upload(srv.url, biz, 10)
        if r.status_code == 201:
            break
        time.sleep(0.5)
    assert r.status_code == 201, r.text
    b = json.loads(before.replace("|", ",").join("[]"))
    assert biz_counts(psql) == "%d|%d|%d" % (b[0] + 1, b[1] + 10, b[2] + 1), "the interrupted upload left rows behind"


def test_upload_still_arriving_when_the_grace_ends_gets_503(server_factory, run_batchd, psql):
    """SIGTERM, then the shutdown grace (BATCHD_SHUTDOWN_GRACE_MS) ends while
    an upload's body is still arriving: the client is answered 503 with
    Retry-After in the surface's error format before the connection closes
    (not a bare close), the COPY is rolled back, and the process exits 0."""
    srv = server_factory(env={"BATCHD_RATE_LIMIT": "0", "BATCHD_SHUTDOWN_GRACE_MS": "1000"})
    out = run_batchd("seed-demo", "--json", env={"BATCHD_PUBLIC_URL": srv.url})
    biz = json.loads(out.stdout)["business"]
    before = biz_counts(psql)
    boundary = "G" + uuid.uuid4().hex
    head = ("--%s\r\nContent-Disposition: form-data; name=\"name\"\r\n\r\ngrace\r\n"
            "--%s\r\nContent-Disposition: form-data; name=\"template_id\"\r\n\r\n%s\r\n"
            "--%s\r\nContent-Disposition: form-data; name=\"csv_file\"; filename=\"r.csv\"\r\n"
            "Content-Type: text/csv\r\n\r\nRecipientsEmail,RecipientsName\r\n" % (
                boundary, boundary, biz["template_ids"]["plain"], boundary)).encode()
    rows = b"".join(b"g%d@example.com,G %d\r\n" % (i, i) for i in range(5000))
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
    s.sendall(("POST /business/batches HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
               "Content-Type: multipart/form-data; boundary=%s\r\nContent-Length: %d\r\n\r\n" % (
                   biz["token"], boundary, 50 << 20)).encode() + head + rows)
    deadline = time.time() + 20
    while time.time() < deadline and psql("SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'COPY biz%'") == "0":
        time.sleep(0.05)
    t0 = time.time()
    os.kill(srv.pid, signal.SIGTERM)
    data = b""
    while True:
        try:
            chunk = s.recv(65536)
        except ConnectionResetError:
            break
        if not chunk:
            break
        data += chunk
    waited = time.time() - t0
    s.close()
    resp, _ = parse_response(data, eof=True)
    assert resp.status == 503, data[:400]
    assert resp.header("retry-after") == "5" and resp.header("connection", "").lower() == "close", resp.header_list
    assert "message" in resp.json(), resp.body  # the business surface's error format
    assert 0.9 <= waited < 5, waited  # answered when the grace ended, not before, not at the hard close
    assert srv.wait(timeout=15) == 0
    assert biz_counts(psql) == before, "the interrupted upload left rows behind"

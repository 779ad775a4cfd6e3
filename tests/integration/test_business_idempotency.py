"""Idempotency-Key on the streamed POST /business/batches, against the real
server and PostgreSQL: the body is hashed as it streams, the 201 is stored
in the batch's own transaction, a replay reads (and hashes) the body again
without touching the roster, a different body is 422, a concurrent upload
with the key is 409, and a client that leaves frees its key."""
import hashlib
import json
import socket
import time
import uuid

import pytest
import requests

BOUNDARY = "batchdIdemBoundary7MA4YWxkTrZu0gW"
PATH = "/business/batches"


@pytest.fixture(scope="module")
def srv(server_factory):
    return server_factory(env={"BATCHD_RATE_LIMIT": "0"})


@pytest.fixture(scope="module")
def demo(run_batchd, srv):
    out = run_batchd("seed-demo", "--tenant", "bizidem", "--json", env={"BATCHD_PUBLIC_URL": srv.url})
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)["business"]


def body(name, template_id, rows=3, tag="Math"):
    """A fixed multipart body (requests would pick a new boundary each time)."""
    csv = b"RecipientsEmail,RecipientsName,Course\r\n" + b"".join(
        b"u%d@example.com,User %d,%s\r\n" % (i, i, tag.encode()) for i in range(rows))
    parts = []
    if name is not None:
        parts.append(b'--%s\r\nContent-Disposition: form-data; name="name"\r\n\r\n%s\r\n'
                     % (BOUNDARY.encode(), name.encode()))
    parts.append(b'--%s\r\nContent-Disposition: form-data; name="template_id"\r\n\r\n%s\r\n'
                 % (BOUNDARY.encode(), template_id.encode()))
    parts.append(b'--%s\r\nContent-Disposition: form-data; name="csv_file"; filename="r.csv"\r\n'
                 b'Content-Type: text/csv\r\n\r\n%s\r\n' % (BOUNDARY.encode(), csv))
    parts.append(b"--%s--\r\n" % BOUNDARY.encode())
    return b"".join(parts)


def post(srv, token, data, key):
    return requests.post(srv.url + PATH, data=data, timeout=30, headers={
        "Authorization": "Bearer " + token, "Idempotency-Key": key,
        "Content-Type": "multipart/form-data; boundary=" + BOUNDARY})


def batches_named(psql, name):
    return int(psql("SELECT count(*) FROM biz_batches WHERE name = '%s'" % name))


def key_row(psql, key):
    return psql("SELECT state, coalesce(status, 0), body_hash FROM bd_idempotency WHERE key = '%s'" % key)


def start_raw_upload(srv, token, key, data, send):
    """Sends the headers and the first `send` bytes of the body, then waits."""
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
    head = ("POST %s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nIdempotency-Key: %s\r\n"
            "Content-Type: multipart/form-data; boundary=%s\r\nContent-Length: %d\r\n\r\n"
            % (PATH, token, key, BOUNDARY, len(data))).encode()
    s.sendall(head + data[:send])
    return s


def wait_for(pred, timeout=10.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.05)
    return pred()


def test_replay_same_body(srv, demo, psql):
    key = "idem-" + uuid.uuid4().hex
    name = "Idem replay " + key[-6:]
    data = body(name, demo["template_ids"]["plain"])
    r1 = post(srv, demo["token"], data, key)
    assert r1.status_code == 201, r1.text
    assert "Idempotent-Replayed" not in r1.headers
    # stored in the batch's transaction: done, 201, hash of path + body
    state, status, h = key_row(psql, key).split("|")
    assert (state, status) == ("done", "201")
    assert h == hashlib.sha256(PATH.encode() + b"\n" + data).hexdigest()
    r2 = post(srv, demo["token"], data, key)
    assert r2.status_code == 201, r2.text
    assert r2.headers.get("Idempotent-Replayed") == "true"
    assert r2.json() == r1.json()
    assert batches_named(psql, name) == 1
    assert int(psql("SELECT count(*) FROM biz_certificates WHERE batch_id = '%s'" % r1.json()["data"]["id"])) == 3


def test_same_key_other_body_is_422(srv, demo, psql):
    key = "idem-" + uuid.uuid4().hex
    name = "Idem reuse " + key[-6:]
    assert post(srv, demo["token"], body(name, demo["template_ids"]["plain"]), key).status_code == 201
    r = post(srv, demo["token"], body(name, demo["template_ids"]["plain"], tag="Art"), key)
    assert r.status_code == 422, r.text
    b = r.json()
    assert b["message"] == "This Idempotency-Key was already used with a different request body"
    assert b["errors"] == {"Idempotency-Key": [b["message"]]}
    assert batches_named(psql, name) == 1


def test_validation_answer_is_replayed(srv, demo, psql):
    key = "idem-" + uuid.uuid4().hex
    data = body(None, demo["template_ids"]["plain"])
    r1 = post(srv, demo["token"], data, key)
    assert r1.status_code == 422 and r1.json()["errors"]["name"] == ["The name field is required."]
    assert key_row(psql, key).split("|")[:2] == ["done", "422"]
    r2 = post(srv, demo["token"], data, key)
    assert r2.status_code == 422 and r2.headers.get("Idempotent-Replayed") == "true"
    assert r2.json() == r1.json()


def test_concurrent_upload_with_the_key_is_409(srv, demo, psql):
    key = "idem-" + uuid.uuid4().hex
    name = "Idem inflight " + key[-6:]
    data = body(name, demo["template_ids"]["plain"], rows=50)
    s = start_raw_upload(srv, demo["token"], key, data, len(data) // 2)
    try:
        assert wait_for(lambda: key_row(psql, key).startswith("in_flight"))
        r = post(srv, demo["token"], data, key)
        assert r.status_code == 409, r.text
        assert r.json()["error"] == "idempotency_request_in_progress"
        s.sendall(data[len(data) // 2:])
        resp = b""
        while b"\r\n\r\n" not in resp:
            chunk = s.recv(65536)
            assert chunk, resp
            resp += chunk
        assert resp.startswith(b"HTTP/1.1 201"), resp[:200]
    finally:
        s.close()
    assert batches_named(psql, name) == 1
    assert key_row(psql, key).split("|")[:2] == ["done", "201"]
    # and now a repeat replays the first upload's answer
    r = post(srv, demo["token"], data, key)
    assert r.status_code == 201 and r.headers.get("Idempotent-Replayed") == "true"
    assert batches_named(psql, name) == 1


def test_client_leaving_frees_the_key(srv, demo, psql):
    key = "idem-" + uuid.uuid4().hex
    name = "Idem dropped " + key[-6:]
    data = body(name, demo["template_ids"]["plain"], rows=50)
    s = start_raw_upload(srv, demo["token"], key, data, len(data) // 3)
    assert wait_for(lambda: key_row(psql, key).startswith("in_flight"))
    s.close()
    assert wait_for(lambda: key_row(psql, key) == ""), key_row(psql, key)
    assert batches_named(psql, name) == 0
    r = post(srv, demo["token"], data, key)
    assert r.status_code == 201, r.text
    assert "Idempotent-Replayed" not in r.headers
    assert batches_named(psql, name) == 1


def test_malformed_key_is_400(srv, demo, psql):
    r = requests.post(srv.url + PATH, data=body("x", demo["template_ids"]["plain"]), timeout=30, headers={
        "Authorization": "Bearer " + demo["token"], "Idempotency-Key": "a" * 256,
        "Content-Type": "multipart/form-data; boundary=" + BOUNDARY})
    assert r.status_code == 400, r.text
    assert r.json()["message"] == "Idempotency-Key must be 1-255 printable ASCII characters"

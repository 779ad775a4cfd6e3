"""The /v1 surface's error codes that need special conditions: Idempotency-Key
replay and reuse (422), rate limiting (429) and the database being down (503),
each in QRKit's error format."""
import json
import uuid

import requests


def H(key, **extra):
    h = {"Authorization": "Bearer " + key, "Content-Type": "application/json"}
    h.update(extra)
    return h


def seed(run_batchd, url, database_url=None):
    env = {"BATCHD_PUBLIC_URL": url}
    if database_url:
        env["DATABASE_URL"] = database_url
    out = run_batchd("seed-demo", "--json", env=env)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)["qr"]


def test_idempotent_batch_creation(server_factory, run_batchd, psql):
    srv = server_factory(env={"BATCHD_RATE_LIMIT": "0"})
    keys = seed(run_batchd, srv.url)
    body = json.dumps({"items": [{"target": {"text": "once"}}]})
    k = "batch-" + uuid.uuid4().hex
    r1 = requests.post(srv.url + "/v1/batches", headers=H(keys["live_key"], **{"Idempotency-Key": k}), data=body)
    r2 = requests.post(srv.url + "/v1/batches", headers=H(keys["live_key"], **{"Idempotency-Key": k}), data=body)
    assert r1.status_code == r2.status_code == 202
    assert r2.headers["Idempotent-Replayed"] == "true" and r1.json()["id"] == r2.json()["id"]
    assert psql("SELECT count(*) FROM qr_batches WHERE id = '%s'" % r1.json()["id"]) == "1"
    r3 = requests.post(srv.url + "/v1/batches", headers=H(keys["live_key"], **{"Idempotency-Key": k}),
                       data=json.dumps({"items": [{"target": {"text": "twice"}}]}))
    assert r3.status_code == 422
    err = r3.json()["error"]
    assert err["code"] == "idempotency_key_reused" and err["request_id"] == r3.headers["X-Request-Id"]


def test_rate_limited_with_headers(server_factory, run_batchd):
    srv = server_factory(env={"BATCHD_RATE_LIMIT": "0.2", "BATCHD_RATE_BURST": "2"})
    keys = seed(run_batchd, srv.url)
    rs = [requests.get(srv.url + "/v1/batches", headers=H(keys["live_key"])) for _ in range(3)]
    assert [r.status_code for r in rs] == [200, 200, 429]
    assert rs[0].headers["X-RateLimit-Limit"] == "2" and rs[0].headers["X-RateLimit-Remaining"] == "1"
    assert int(rs[2].headers["Retry-After"]) >= 1
    assert rs[2].json()["error"]["code"] == "rate_limit_exceeded"
    # the other key has its own bucket
    assert requests.get(srv.url + "/v1/batches", headers=H(keys["test_key"])).status_code == 200


def test_database_down_is_503(private_pg, server_factory, run_batchd):
    pg = private_pg()
    srv = server_factory(database_url=pg.url, env={"BATCHD_RATE_LIMIT": "0", "BATCHD_PG_QUEUE_TIMEOUT_MS": "300"})
    keys = seed(run_batchd, srv.url, database_url=pg.url)
    assert requests.get(srv.url + "/v1/batches", headers=H(keys["live_key"])).status_code == 200
    pg.stop()
    try:
        r = requests.get(srv.url + "/v1/batches", headers=H(keys["live_key"]), timeout=5)
        assert r.status_code == 503 and r.headers.get("Retry-After")
        assert r.json()["error"]["code"] == "service_unavailable"
        r = requests.post(srv.url + "/v1/batches", headers=H(keys["live_key"]), timeout=5,
                          data=json.dumps({"items": [{"target": {"text": "x"}}]}))
        assert r.status_code == 503 and r.json()["error"]["code"] == "service_unavailable"
    finally:
        pg.start()


def test_internal_error_is_500_without_leaking_details(server_factory, run_batchd, psql):
    srv = server_factory(env={"BATCHD_RATE_LIMIT": "0"})
    keys = seed(run_batchd, srv.url)
    psql("ALTER TABLE qr_templates RENAME TO qr_templates_away")
    try:
        r = requests.get(srv.url + "/v1/templates", headers=H(keys["live_key"]))
        assert r.status_code == 500
        err = r.json()["error"]
        assert err["code"] == "internal_error" and "qr_templates" not in r.text
        assert err["request_id"] == r.headers["X-Request-Id"]
        assert requests.get(srv.url + "/healthz").status_code == 200  # still serving
    finally:
        psql("ALTER TABLE qr_templates_away RENAME TO qr_templates")
    assert requests.get(srv.url + "/v1/templates", headers=H(keys["live_key"])).status_code == 200
    assert "qr_templates" in srv.log_text()  # the cause is in the log, for us

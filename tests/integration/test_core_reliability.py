"""Core mechanisms under the real binary and a real PostgreSQL: idempotency,
rate limiting, the database going away and coming back under load, SIGTERM
drain, two processes on one port, and a job whose process is SIGKILLed being
finished by the next process."""
import json
import os
import signal
import subprocess
import threading
import time
import uuid

import pytest
import requests


HOOKS = {"BATCHD_TEST_HOOKS": "1", "BATCHD_RATE_LIMIT": "0"}


def post_write(srv, cred, body, key=None):
    h = {"X-Test-Credential": cred, "Content-Type": "application/json"}
    if key:
        h["Idempotency-Key"] = key
    return requests.post(srv.url + "/_test/writes", data=body, headers=h, timeout=10)


# --- idempotency ------------------------------------------------------------


def test_idempotency_replay_and_mismatch(server_factory, psql):
    srv = server_factory(env=HOOKS)
    key = "k-" + uuid.uuid4().hex
    r1 = post_write(srv, "alice", '{"n":1}', key)
    assert r1.status_code == 201
    assert "Idempotent-Replayed" not in r1.headers
    r2 = post_write(srv, "alice", '{"n":1}', key)
    assert r2.status_code == 201
    assert r2.headers["Idempotent-Replayed"] == "true"
    assert r2.json() == r1.json()  # the same id: nothing written twice
    assert psql("SELECT count(*) FROM bd_test_writes WHERE credential = 'alice'") == "1"
    # same key, different body
    r3 = post_write(srv, "alice", '{"n":2}', key)
    assert r3.status_code == 422
    assert r3.json()["error"]["code"] == "idempotency_key_reused"
    # keys are scoped per credential
    r4 = post_write(srv, "bob", '{"n":1}', key)
    assert r4.status_code == 201 and "Idempotent-Replayed" not in r4.headers
    # without a key every POST is new
    assert post_write(srv, "carol", "{}").json() != post_write(srv, "carol", "{}").json()


def test_idempotency_in_flight_is_409(server_factory, psql):
    srv = server_factory(env=HOOKS)
    key = "busy-" + uuid.uuid4().hex
    body = '{"n":9}'
    # what the first request leaves while it is still being processed
    import hashlib
    h = hashlib.sha256(b"/_test/writes\n" + body.encode()).hexdigest()
    psql("INSERT INTO bd_idempotency(credential, key, body_hash, state, locked_until, expires_at)"
         " VALUES ('dave', '%s', '%s', 'in_flight', now() + interval '1 minute', now() + interval '1 day')"
         % (key, h))
    r = post_write(srv, "dave", body, key)
    assert r.status_code == 409
    assert r.json()["error"]["code"] == "idempotency_request_in_progress"
    # an abandoned in-flight row (its process died) is taken over
    psql("UPDATE bd_idempotency SET locked_until = now() - interval '1 second' WHERE key = '%s'" % key)
    r = post_write(srv, "dave", body, key)
    assert r.status_code == 201


def test_idempotency_key_validation(server_factory):
    srv = server_factory(env=HOOKS)
    r = post_write(srv, "erin", "{}", "x" * 300)
    assert r.status_code == 400


# --- rate limiting ----------------------------------------------------------


def test_rate_limit(server_factory):
    srv = server_factory(env={"BATCHD_TEST_HOOKS": "1", "BATCHD_RATE_LIMIT": "0.5", "BATCHD_RATE_BURST": "3"})
    codes = []
    for i in range(4):
        r = post_write(srv, "frank", "{}")
        codes.append(r.status_code)
        assert r.headers["X-RateLimit-Limit"] == "3"
        assert int(r.headers["X-RateLimit-Reset"]) >= int(time.time())
    assert codes == [201, 201, 201, 429]
    assert r.headers["X-RateLimit-Remaining"] == "0"
    assert int(r.headers["Retry-After"]) >= 1
    assert r.json()["error"]["code"] == "rate_limit_exceeded"
    # another credential has its own bucket
    assert post_write(srv, "grace", "{}").status_code == 201


def test_rate_limit_disabled(server_factory):
    srv = server_factory(env=HOOKS)
    assert all(post_write(srv, "henry", "{}").status_code == 201 for _ in range(20))


# --- database outage --------------------------------------------------------


def test_database_stopped_and_restarted_under_load(private_pg, server_factory):
    pg = private_pg()
    srv = server_factory(database_url=pg.url, env={
        "BATCHD_TEST_HOOKS": "1", "BATCHD_RATE_LIMIT": "0", "BATCHD_PG_QUEUE_TIMEOUT_MS": "500"})
    assert requests.get(srv.url + "/_test/db", timeout=5).status_code == 200
    stop = threading.Event()
    results = []  # (t, status or exception name, elapsed)
    lock = threading.Lock()

    def load():
        s = requests.Session()
        while not stop.is_set():
            t0 = time.time()
            try:
                r = s.get(srv.url + "/_test/db", timeout=5)
                out = (t0, r.status_code, time.time() - t0, r.headers.get("Retry-After"))
            except requests.RequestException as e:
                out = (t0, type(e).__name__, time.time() - t0, None)
            with lock:
                results.append(out)
            time.sleep(0.01)

    threads = [threading.Thread(target=load) for _ in range(4)]
    for t in threads:
        t.start()
    time.sleep(0.5)
    pg.stop()  # returns once the server is down (pg_ctl -w): on a loaded machine that takes a while
    t_stop = time.time()
    time.sleep(3)
    # the server itself keeps answering while the database is away
    assert requests.get(srv.url + "/healthz", timeout=2).status_code == 200
    r = requests.get(srv.url + "/readyz", timeout=5)
    assert r.status_code == 503
    pg.start()
    t_start = time.time()
    deadline = time.time() + 20
    while time.time() < deadline:
        with lock:
            recent = [x for x in results if x[0] > t_start + 0.2]
        if len([x for x in recent if x[1] == 200]) >= 20:
            break
        time.sleep(0.2)
    stop.set()
    for t in threads:
        t.join()
    during = [x for x in results if t_stop + 1 < x[0] < t_start - 0.5]
    after = [x for x in results if x[0] > t_start + 5]
    assert during, "no requests during the outage"
    # during the outage: 503 with Retry-After, never a hang or another error
    assert all(x[1] == 503 for x in during), set(x[1] for x in during)
    assert all(x[3] is not None for x in during)
    assert max(x[2] for x in during) < 3.0
    # after: recovered
    assert any(x[1] == 200 for x in results if x[0] > t_start), "did not recover"
    assert all(x[1] == 200 for x in after), set(x[1] for x in after)
    assert not [x for x in results if not isinstance(x[1], int)], "a request failed at the transport level"
    assert requests.get(srv.url + "/readyz", timeout=5).status_code == 200


def test_idempotency_key_freed_after_an_outage(private_pg, server_factory):
    """The database goes away while a request holds its Idempotency-Key: the
    request gets a 503, and once the database is back the key is free again
    within a few seconds (not 409 until its one-minute lock expires)."""
    pg = private_pg()
    srv = server_factory(database_url=pg.url, env={
        "BATCHD_TEST_HOOKS": "1", "BATCHD_RATE_LIMIT": "0", "BATCHD_PG_QUEUE_TIMEOUT_MS": "500"})
    key = "outage-" + uuid.uuid4().hex
    h = {"X-Test-Credential": "olga", "Content-Type": "application/json", "Idempotency-Key": key}
    box = {}

    def slow_write():
        box["r"] = requests.post(srv.url + "/_test/writes?sleep_ms=3000", data='{"n": 1}', headers=h, timeout=20)

    t = threading.Thread(target=slow_write)
    t.start()
    deadline = time.time() + 10  # the key is taken and the insert is sleeping in the database
    while time.time() < deadline and "pg_sleep" not in subprocess.run(
            ["psql", "-X", pg.url, "-Atc", "SELECT query FROM pg_stat_activity WHERE state = 'active'"],
            capture_output=True, text=True).stdout:
        time.sleep(0.05)
    pg.stop()
    t.join()
    assert box["r"].status_code == 503, box["r"].text
    pg.start()
    # the retry with the same key runs (201) within seconds of the database coming back
    t_back, got = time.time(), None
    while time.time() < t_back + 15:
        r = post_write(srv, "olga", '{"n": 1}', key=key)
        if r.status_code == 201:
            got = r
            break
        assert r.status_code in (409, 503), r.text  # still in flight, or not reconnected yet
        time.sleep(0.2)
    assert got is not None, "the key stayed in flight after the outage"
    assert time.time() - t_back < 10
    assert "freed a key" in srv.log_text()
    # and it is now done: a repeat replays the stored answer
    again = post_write(srv, "olga", '{"n": 1}', key=key)
    assert again.status_code == 201 and again.headers.get("Idempotent-Replayed") == "true"
    assert again.json() == got.json()


# --- shutdown ---------------------------------------------------------------


def test_sigterm_drains_in_flight_requests(server_factory):
    srv = server_factory(env=HOOKS)
    box = {}

    def slow():
        box["r"] = requests.get(srv.url + "/_test/slow?ms=1500", timeout=10)

    t = threading.Thread(target=slow)
    t.start()
    time.sleep(0.4)
    os.kill(srv.pid, signal.SIGTERM)
    time.sleep(0.3)
    # no longer accepting
    with pytest.raises(requests.ConnectionError):
        requests.get(srv.url + "/healthz", timeout=2)
    t.join()
    assert box["r"].status_code == 200 and box["r"].json() == {"slept": True}
    assert srv.wait(timeout=15) == 0
    assert "stopped cleanly" in srv.log_text()


def test_sigterm_idle_exits_zero(server_factory):
    srv = server_factory(env=HOOKS)
    # an idle keep-alive connection must not hold the shutdown
    s = requests.Session()
    assert s.get(srv.url + "/healthz").status_code == 200
    os.kill(srv.pid, signal.SIGINT)
    assert srv.wait(timeout=15) == 0
    assert "stopped cleanly" in srv.log_text()


# --- SO_REUSEPORT -----------------------------------------------------------


def test_two_processes_share_a_port(server_factory):
    a = server_factory(env=dict(HOOKS, BATCHD_REUSEPORT="1"))
    b = server_factory(env=dict(HOOKS, BATCHD_REUSEPORT="1"), port=a.port)
    for i in range(200):
        r = requests.get(a.url + "/healthz", headers={"X-Request-Id": "rp-%d" % i, "Connection": "close"})
        assert r.status_code == 200
    time.sleep(0.3)
    na = a.log_text().count('"request_id":"rp-')
    nb = b.log_text().count('"request_id":"rp-')
    assert na + nb == 200
    assert na > 0 and nb > 0, (na, nb)
    # one of them stopping leaves the other serving
    a.stop()
    for i in range(20):
        assert requests.get(b.url + "/healthz", headers={"Connection": "close"}).status_code == 200


def test_migrate_subcommand_and_concurrent_start(database, run_batchd, psql):
    # several processes migrating at once apply each migration exactly once
    procs = [run_batchd("migrate", background=True) for _ in range(3)]
    assert all(p.wait(timeout=60) == 0 for p in procs)
    shipped = [f for f in os.listdir(os.path.join(os.environ["BATCHD_SOURCE_DIR"], "src", "sql")) if f.endswith(".sql")]
    assert psql("SELECT count(*) FROM bd_schema_migrations") == str(len(shipped))
    assert psql("SELECT count(DISTINCT version) FROM bd_schema_migrations") == str(len(shipped))
    # running it again is a no-op
    again = run_batchd("migrate")
    assert again.returncode == 0 and "applied migration" not in again.stderr

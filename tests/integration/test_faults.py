"""Faults against the real binary and a real PostgreSQL: the database
stopped and restarted during QR batch submissions and during rendering,
batchd SIGKILLed (twice) mid-render with several batches in flight, a full
disk on the database side (a trigger raising SQLSTATE 53100) on submission
and on the renders' writes. The certificate upload's faults are in
test_faults_upload.py (a file of its own so ctest runs the two in parallel).

After recovery every batch that got a 2xx exists and completes exactly once
(completed_count equals the codes rendered, one image per code, nothing
pending, the job done), and every request that failed got a clear error
(503 with Retry-After and a JSON error body). Extends test_core_reliability
(database outage under a read load) and test_qr_api.test_batch_survives_sigkill
(one batch, one kill) rather than repeating them.
"""
import json
import threading
import time
import uuid

import requests


def H(key, idem=None):
    h = {"Authorization": "Bearer " + key, "Content-Type": "application/json"}
    if idem:
        h["Idempotency-Key"] = idem
    return h


def seed_keys(run_batchd, srv, database_url=None):
    out = run_batchd("seed-demo", "--json", env={"BATCHD_PUBLIC_URL": srv.url}, database_url=database_url)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)["qr"]


def batch_state(psql, bid):
    row = psql("SELECT status, total_count, completed_count, error_count FROM qr_batches WHERE id = '%s'" % bid)
    if not row:
        return None
    st, total, done, err = row.split("|")
    return st, int(total), int(done), int(err)


def wait_completed(psql, bids, timeout=120):
    """Until every batch has ended and so has its job: the job's row is
    marked done in the statement after the one that completes the batch."""
    deadline = time.time() + timeout
    left = set(bids)
    while left and time.time() < deadline:
        ids = ",".join("'%s'" % b for b in left)
        rows = psql("SELECT id FROM qr_batches b WHERE id IN (%s) AND status IN ('completed', 'failed')"
                    " AND NOT EXISTS (SELECT 1 FROM bd_jobs j WHERE j.ref = b.id AND j.state <> 'done')" % ids)
        for line in rows.splitlines():
            left.discard(line.strip())
        if left:
            time.sleep(0.25)
    assert not left, "%d batches did not complete: %s" % (len(left), sorted(left)[:5])


def assert_exactly_once(psql, bids):
    """Every batch: completed, each code rendered once into one image, the
    counters equal to what was rendered (no double count), its job done."""
    ids = ",".join("'%s'" % b for b in bids)
    bad = psql("""
      SELECT b.id, b.status, b.total_count, b.completed_count, b.error_count,
             (SELECT count(*) FROM qr_codes c WHERE c.batch_id = b.id) AS codes,
             (SELECT count(*) FROM qr_codes c WHERE c.batch_id = b.id AND c.render_status = 'done') AS done,
             (SELECT count(*) FROM qr_images i JOIN qr_codes c ON c.id = i.code_id WHERE c.batch_id = b.id) AS images,
             (SELECT string_agg(state, ',') FROM bd_jobs j WHERE j.ref = b.id) AS jobs
      FROM qr_batches b WHERE b.id IN (%s)
        AND NOT (b.status = 'completed' AND b.error_count = 0
                 AND b.completed_count = b.total_count
                 AND b.completed_count = (SELECT count(*) FROM qr_codes c WHERE c.batch_id = b.id AND c.render_status = 'done')
                 AND b.completed_count = (SELECT count(*) FROM qr_images i JOIN qr_codes c ON c.id = i.code_id
                                           WHERE c.batch_id = b.id)
                 AND (SELECT string_agg(state, ',') FROM bd_jobs j WHERE j.ref = b.id) = 'done')""" % ids)
    assert not bad, "batches not completed exactly once:\n" + bad
    n = psql("SELECT count(*) FROM qr_batches WHERE id IN (%s)" % ids)
    assert int(n) == len(set(bids)), "a batch that got a 202 does not exist (%s of %d)" % (n, len(set(bids)))


def assert_clear_error(r):
    """A failure the client can act on: 503 + Retry-After + a JSON error."""
    assert r.status_code == 503, (r.status_code, r.text[:300])
    assert r.headers.get("Retry-After"), r.headers
    body = r.json()
    assert body["error"]["code"] and body["error"]["message"], body


# --- PostgreSQL stopped during submissions -------------------------------------------


def test_database_restart_during_batch_submissions(private_pg, server_factory, run_batchd):
    """Four clients submit 20-item batches (each with an Idempotency-Key)
    while PostgreSQL is stopped for 3 s and started again. 202s complete
    exactly once; failures are 503 + Retry-After; retrying each failure
    with its key after recovery gives exactly one batch per key."""
    pg = private_pg()
    srv = server_factory(database_url=pg.url, env={
        "BATCHD_RATE_LIMIT": "0", "BATCHD_PG_QUEUE_TIMEOUT_MS": "500", "BATCHD_JOB_POLL_MS": "200"})
    key = seed_keys(run_batchd, srv, database_url=pg.url)["live_key"]

    def psql(sql):
        from conftest import psql_run
        return psql_run(pg.url, sql)

    stop = threading.Event()
    lock = threading.Lock()
    sent = []  # (t, idem key, body, status or exc name, response)

    def client(n):
        s = requests.Session()
        i = 0
        while not stop.is_set():
            idem = "k-%d-%d-%s" % (n, i, uuid.uuid4().hex[:6])
            body = json.dumps({"items": [{"name": "%s-%d" % (idem, j), "target": {"text": "%s/%d" % (idem, j)}}
                                         for j in range(20)]})
            t0 = time.time()
            try:
                r = s.post(srv.url + "/v1/batches", headers=H(key, idem), data=body, timeout=10)
                out = (t0, idem, body, r.status_code, r)
            except requests.RequestException as e:
                out = (t0, idem, body, type(e).__name__, None)
            with lock:
                sent.append(out)
            i += 1
            time.sleep(0.02)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    time.sleep(1.0)
    pg.stop()
    t_down = time.time()
    time.sleep(3)
    assert requests.get(srv.url + "/healthz", timeout=2).status_code == 200
    pg.start()
    t_up = time.time()
    time.sleep(3)
    stop.set()
    for t in threads:
        t.join()

    transport = [x for x in sent if not isinstance(x[3], int)]
    assert not transport, "requests failed at the transport level: %s" % [x[3] for x in transport][:5]
    ok = [x for x in sent if x[3] == 202]
    failed = [x for x in sent if x[3] != 202]
    assert [x for x in ok if x[0] < t_down], "no batch accepted before the outage"
    assert [x for x in ok if x[0] > t_up], "no batch accepted after the outage"
    assert failed, "the outage produced no failed submission"
    for x in failed:
        assert_clear_error(x[4])
    bids = [x[4].json()["id"] for x in ok]
    wait_completed(psql, bids)
    assert_exactly_once(psql, bids)

    # retry every failure with its Idempotency-Key: exactly one batch each.
    # A key whose in-flight marker was written just before the database went
    # away cannot be released while it is away: it answers 409 (in
    # progress) until its 60 s lock lapses, then the retry goes through.
    retried = []
    stuck = 0
    for _, idem, body, _, _ in failed:
        deadline = time.time() + 75
        while True:
            r = requests.post(srv.url + "/v1/batches", headers=H(key, idem), data=body, timeout=10)
            if r.status_code != 409 or time.time() > deadline:
                break
            assert r.json()["error"]["code"] == "idempotency_request_in_progress", r.text
            stuck += 1
            time.sleep(1)
        assert r.status_code == 202, r.text
        retried.append(r.json()["id"])
        again = requests.post(srv.url + "/v1/batches", headers=H(key, idem), data=body, timeout=10)
        assert again.status_code == 202 and again.json()["id"] == r.json()["id"]
        assert again.headers.get("Idempotent-Replayed") == "true"
    wait_completed(psql, retried)
    assert_exactly_once(psql, retried)
    # one batch per accepted request, none invented: every batch in the
    # database holds the items of exactly one request
    names = psql("SELECT count(DISTINCT split_part(name, '-', 1) || split_part(name, '-', 2) || split_part(name, '-', 3))"
                 " FROM qr_codes")
    total = psql("SELECT count(*) FROM qr_batches")
    assert int(names) == int(total), (names, total)
    print("submissions: %d accepted, %d refused with 503 during the outage, %d retried (%d answers 409 first)" % (
        len(ok), len(failed), len(retried), stuck))


# --- PostgreSQL stopped during processing -------------------------------------------


def test_database_restart_during_rendering(private_pg, server_factory, run_batchd):
    pg = private_pg()

    def psql(sql):
        from conftest import psql_run
        return psql_run(pg.url, sql)

    srv = server_factory(database_url=pg.url, env={
        "BATCHD_RATE_LIMIT": "0", "BATCHD_WORKERS": "1", "BATCHD_JOB_POLL_MS": "200", "BATCHD_JOB_LEASE_MS": "3000"})
    key = seed_keys(run_batchd, srv, database_url=pg.url)["live_key"]
    bids = []

    def rendered():
        ids = ",".join("'%s'" % b for b in bids)
        return int(psql("SELECT coalesce(sum(completed_count), 0) FROM qr_batches WHERE id IN (%s)" % ids))

    # Rounds of 10,000 items on one render thread (1-2 s of work on a fast
    # machine): the database stops after the first chunk is recorded and
    # before the last. A machine that renders a round before the check sees
    # it gets another round behind it.
    for round_ in range(6):
        for b in range(10):
            items = [{"target": {"text": "pg restart %d/%d/%d" % (round_, b, i)}} for i in range(1000)]
            r = requests.post(srv.url + "/v1/batches", headers=H(key), data=json.dumps({"items": items}))
            assert r.status_code == 202, r.text
            bids.append(r.json()["id"])
        deadline = time.time() + 30
        while time.time() < deadline and rendered() < 1:
            time.sleep(0.02)
        done = rendered()
        if done < 1000 * len(bids):
            break
    assert 0 < done < 1000 * len(bids), "rendered before the fault could be injected (%d)" % done
    pg.stop()
    time.sleep(2)
    assert requests.get(srv.url + "/healthz", timeout=2).status_code == 200
    r = requests.get(srv.url + "/v1/batches/" + bids[0], headers=H(key), timeout=5)
    assert_clear_error(r)
    pg.start()
    wait_completed(psql, bids, timeout=180)
    assert_exactly_once(psql, bids)


# --- SIGKILL mid-render ---------------------------------------------------------------


def test_sigkill_twice_mid_render_with_several_batches(server_factory, run_batchd, psql):
    a = server_factory(env={"BATCHD_RATE_LIMIT": "0", "BATCHD_JOB_LEASE_MS": "1500", "BATCHD_WORKERS": "1"})
    key = seed_keys(run_batchd, a)["live_key"]
    bids = []
    # 6,000 items on one render thread: a few seconds of work, so both kills
    # land mid-render even though each progress check (psql) takes a while
    for b in range(6):
        items = [{"target": {"text": "kill %d/%d" % (b, i)}} for i in range(1000)]
        r = requests.post(a.url + "/v1/batches", headers=H(key), data=json.dumps({"items": items}))
        assert r.status_code == 202
        bids.append(r.json()["id"])

    def rendered():
        ids = ",".join("'%s'" % b for b in bids)
        return int(psql("SELECT coalesce(sum(completed_count), 0) FROM qr_batches WHERE id IN (%s)" % ids))

    deadline = time.time() + 30
    while time.time() < deadline and rendered() < 200:
        time.sleep(0.02)
    a.kill()
    first = rendered()
    assert 0 < first < 6000, first
    b = server_factory(env={"BATCHD_RATE_LIMIT": "0", "BATCHD_JOB_LEASE_MS": "1500", "BATCHD_WORKERS": "1",
                            "BATCHD_JOB_POLL_MS": "200"})
    deadline = time.time() + 60
    while time.time() < deadline and rendered() < first + 200:
        time.sleep(0.02)
    b.kill()
    second = rendered()
    assert first < second < 6000, (first, second)
    c = server_factory(env={"BATCHD_RATE_LIMIT": "0", "BATCHD_JOB_LEASE_MS": "1500", "BATCHD_JOB_POLL_MS": "200"})
    wait_completed(psql, bids, timeout=120)
    assert_exactly_once(psql, bids)
    # every batch reads back complete through the API
    for bid in bids:
        r = requests.get(c.url + "/v1/batches/" + bid, headers=H(key))
        assert r.status_code == 200 and r.json()["completed_count"] == 1000


# --- full disk on the database side -------------------------------------------------------


DISK_FULL_FN = """
CREATE OR REPLACE FUNCTION bd_test_disk_full() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'could not extend file: No space left on device' USING ERRCODE = '53100';
END $$;
"""


def test_disk_full_on_submission_and_on_render(server_factory, run_batchd, psql):
    srv = server_factory(env={"BATCHD_RATE_LIMIT": "0", "BATCHD_JOB_POLL_MS": "200"})
    key = seed_keys(run_batchd, srv)["live_key"]
    psql(DISK_FULL_FN)
    body = json.dumps({"items": [{"target": {"text": "disk %d" % i}} for i in range(10)]})

    # 1. submissions fail cleanly and store nothing
    before = psql("SELECT count(*) FROM qr_batches") + "/" + psql("SELECT count(*) FROM qr_codes")
    # a batch is accepted as its record (022), a single code as its row
    psql("CREATE TRIGGER bd_test_disk_full BEFORE INSERT ON qr_codes FOR EACH ROW EXECUTE FUNCTION bd_test_disk_full()")
    psql("CREATE TRIGGER bd_test_disk_full BEFORE INSERT ON qr_batch_records FOR EACH ROW"
         " EXECUTE FUNCTION bd_test_disk_full()")
    try:
        for i in range(5):
            r = requests.post(srv.url + "/v1/batches", headers=H(key, "disk-%d" % i), data=body)
            assert_clear_error(r)
        r = requests.post(srv.url + "/v1/qr-codes", headers=H(key), data=json.dumps({"target": {"text": "one"}}))
        assert_clear_error(r)
        assert psql("SELECT count(*) FROM qr_batches") + "/" + psql("SELECT count(*) FROM qr_codes") == before
        assert requests.get(srv.url + "/healthz").status_code == 200
    finally:
        psql("DROP TRIGGER bd_test_disk_full ON qr_codes")
        psql("DROP TRIGGER bd_test_disk_full ON qr_batch_records")
    # the same keys work once there is space again (a 503 was not stored)
    ok = []
    for i in range(5):
        r = requests.post(srv.url + "/v1/batches", headers=H(key, "disk-%d" % i), data=body)
        assert r.status_code == 202 and r.headers.get("Idempotent-Replayed") is None, r.text
        ok.append(r.json()["id"])

    # 2. the renders' writes fail: the job retries, nothing is lost or doubled
    psql("CREATE TRIGGER bd_test_disk_full BEFORE INSERT ON qr_images FOR EACH ROW EXECUTE FUNCTION bd_test_disk_full()")
    try:
        r = requests.post(srv.url + "/v1/batches", headers=H(key), data=body)
        assert r.status_code == 202
        late = r.json()["id"]
        deadline = time.time() + 20
        while time.time() < deadline and psql("SELECT attempts FROM bd_jobs WHERE ref = '%s'" % late) in ("", "0"):
            time.sleep(0.1)
        assert int(psql("SELECT attempts FROM bd_jobs WHERE ref = '%s'" % late)) >= 1
        assert psql("SELECT last_error FROM bd_jobs WHERE ref = '%s'" % late).find("No space left") >= 0
        assert batch_state(psql, late)[2] == 0
    finally:
        psql("DROP TRIGGER bd_test_disk_full ON qr_images")
    wait_completed(psql, ok + [late], timeout=60)
    assert_exactly_once(psql, ok + [late])


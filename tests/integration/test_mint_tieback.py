"""Minting as tieback describes it (issue 21): _product_batch_id and
mint_batch_id, lots in batch mode, blocking reasons and
preflight_mint_batch, the job states QUEUED -> RESERVED -> PROCESSING ->
COMPLETED | FAILED with cycle progress, and a failed cycle retried 3 times
before the job fails keeping the units already made."""
import subprocess
import time

import pytest
import requests

from conftest import find_tool, seed_demo
from gs1lib import assert_valid_uris
from mintlib import all_units, blocked, new_batch, ok, pgrst, rpc, submit, wait_job


@pytest.fixture(scope="module")
def srv(server_factory):
    # cycles (chunks) of 1000 units: a job of 2500 units has 3
    return server_factory(env={"BATCHD_RATE_LIMIT": "0", "BATCHD_MINT_CHUNK_UNITS": "1000"})


@pytest.fixture(scope="module")
def demo(run_batchd, srv):
    return seed_demo(run_batchd, srv, "products")


def get_job(srv, demo, job):
    return ok(rpc(srv, "get_mint_job", {"_brand_id": demo["brand_id"], "_mint_job_id": job}, demo["viewer_jwt"]))


def preflight(srv, demo, batch, token=None, **extra):
    args = {"_brand_id": demo["brand_id"], "_product_id": demo["product_id"], "_product_batch_id": batch}
    args.update({"_" + k: v for k, v in extra.items()})
    return rpc(srv, "preflight_mint_batch", args, token or demo["viewer_jwt"])


def test_product_batch_id_and_mint_batch_id(srv, demo, psql):
    batch = new_batch(srv, demo, "TB-ALIAS")
    args = {"_brand_id": demo["brand_id"], "_product_id": demo["product_id"], "_product_batch_id": batch,
            "_requested_quantity": 3}
    r = ok(rpc(srv, "submit_mint_request", args, demo["jwt"]))
    assert r["ok"] is True and r["mint_batch_id"] == r["mint_job_id"] and r["status"] == "QUEUED"
    assert r["product_batch_id"] == batch and r["product_id"] == demo["product_id"]
    j = wait_job(srv, demo, r["mint_job_id"])
    assert j["batch_id"] == batch and j["product_batch_id"] == batch and j["mint_batch_id"] == r["mint_job_id"]
    assert psql("SELECT batch_id FROM pp_mint_jobs WHERE id = '%s'" % r["mint_job_id"]) == batch
    # both names for the same batch are fine, for two batches 400, neither 400
    ok(rpc(srv, "submit_mint_request", dict(args, _batch_id=batch), demo["jwt"]))
    other = new_batch(srv, demo, "TB-ALIAS-2")
    body = pgrst(rpc(srv, "submit_mint_request", dict(args, _batch_id=other), demo["jwt"]), 400, "Invalid input")
    assert "different batches" in body["details"]
    del args["_product_batch_id"]
    body = pgrst(rpc(srv, "submit_mint_request", args, demo["jwt"]), 400, "Invalid input")
    assert "_product_batch_id" in body["details"]


def test_lots_in_batch_mode(srv, demo, psql):
    batch = new_batch(srv, demo, "TB-LOTS", quantity=5000)
    lots = [{"lot_code": "L-A", "qty": 1200}, {"lot_code": "L/B%", "qty": 5}, {"lot_code": "L-C", "qty": 795}]
    r = ok(submit(srv, demo, batch, 2000, identity_mode="batch", lots=lots))
    j = wait_job(srv, demo, r["mint_job_id"])
    assert j["status"] == "COMPLETED" and j["minted_count"] == 2000 and j["identity_mode"] == "batch"
    assert j["lots"] == [{"lot_code": "L-A", "qty": 1200, "first_seq": 1},
                         {"lot_code": "L/B%", "qty": 5, "first_seq": 1201},
                         {"lot_code": "L-C", "qty": 795, "first_seq": 1206}]
    units = all_units(srv, demo, r["mint_job_id"])
    assert [u["lot"] for u in units] == ["L-A"] * 1200 + ["L/B%"] * 5 + ["L-C"] * 795
    assert all(u["serial"] is None for u in units)
    assert units[0]["digital_link"] == "%s/01/%s/10/L-A" % (srv.url, demo["gtin"])
    assert units[1200]["digital_link"] == "%s/01/%s/10/L%%2FB%%25" % (srv.url, demo["gtin"])
    assert units[1205]["passport_url"] == "%s/passports/%s~10~L-C" % (srv.url, demo["gtin"])
    assert psql("SELECT string_agg(lot || ':' || quantity, ',' ORDER BY first_unit_id) FROM pp_mint_lots"
                " WHERE job_id = '%s'" % r["mint_job_id"]) == "L-A:1200,L/B%:5,L-C:795"
    # a lot's passport is the batch the job minted, with that lot
    pp = requests.get(srv.url + "/passports/%s~10~L%%2FB%%25" % demo["gtin"], headers={"Accept": "application/json"},
                      timeout=10)
    assert pp.status_code == 200, pp.text
    assert pp.json()["level"] == "batch" and pp.json()["lot"] == "L/B%" and pp.json()["batch"]["id"] == batch
    assert pp.json()["digital_link"] == "%s/01/%s/10/L%%2FB%%25" % (srv.url, demo["gtin"])
    # the lots resolve (not walked up to the GTIN), and every minted URI is a valid Digital Link
    for lot, enc in (("L-A", "L-A"), ("L/B%", "L%2FB%25"), ("L-C", "L-C")):
        res = requests.get("%s/01/%s/10/%s" % (srv.url, demo["gtin"], enc), allow_redirects=False, timeout=10)
        assert res.status_code == 307, (lot, res.status_code, res.text)
        assert res.headers["Location"].startswith("%s/passports/%s~10~%s" % (srv.url, demo["gtin"], enc)), res.headers
    assert_valid_uris(sorted({u["digital_link"] for u in units}))
    # the quantity may be left out (the lots' sum); the same key and lots is the same job, other lots 409
    r2 = ok(submit(srv, demo, batch, lots=lots[:1], idempotency_key="tb-lots"))
    assert ok(submit(srv, demo, batch, lots=lots[:1], idempotency_key="tb-lots"))["is_duplicate"] is True
    assert wait_job(srv, demo, r2["mint_job_id"])["requested_quantity"] == 1200
    pgrst(submit(srv, demo, batch, lots=[{"lot_code": "L-A", "qty": 1199}, {"lot_code": "L-Z", "qty": 1}],
                 idempotency_key="tb-lots"), 409)


@pytest.mark.parametrize("extra,detail", [
    ({"_identity_mode": "serial", "_lots": [{"lot_code": "A", "qty": 1}]}, "batch identity mode"),
    ({"_lots": []}, "1 to 100 lots"),
    ({"_lots": [{"lot_code": "L%d" % i, "qty": 1} for i in range(101)]}, "1 to 100 lots"),
    ({"_lots": {"lot_code": "A", "qty": 1}}, "1 to 100 lots"),
    ({"_lots": [{"lot_code": "A", "qty": 0}]}, "_lots[0]"),
    ({"_lots": [{"lot_code": "A", "qty": 1}, {"lot_code": "B", "qty": 1.5}]}, "_lots[1]"),
    ({"_lots": [{"lot_code": 7, "qty": 1}]}, "_lots[0]"),
    ({"_lots": [{"lot_code": "A", "qty": 1, "extra": 1}]}, "_lots[0]"),
    ({"_lots": [{"lot_code": "A", "qty": 1}, {"lot_code": "A", "qty": 2}]}, "duplicate lot codes"),
    ({"_lots": [{"lot_code": "A", "qty": 2}], "_requested_quantity": 3}, "do not sum"),
    ({"_lots": [{"lot_code": "A", "qty": 600000}, {"lot_code": "B", "qty": 600000}]}, "more than 1000000"),
])
def test_lots_invalid_input(srv, demo, extra, detail):
    batch = new_batch(srv, demo, "TB-LINV-%d" % (abs(hash(detail + str(len(str(extra))))) % 10 ** 9))
    args = {"_brand_id": demo["brand_id"], "_product_id": demo["product_id"], "_batch_id": batch}
    args.update(extra)
    body = pgrst(rpc(srv, "submit_mint_request", args, demo["jwt"]), 400, "Invalid input")
    assert detail in body["details"], body


def test_blocking_reasons_and_preflight(srv, demo, psql):
    batch = new_batch(srv, demo, "TB-BLOCK", quantity=100)
    jobs_before = psql("SELECT count(*) FROM pp_mint_jobs")
    # preflight: fine, with what is left; a viewer may ask
    p = ok(preflight(srv, demo, batch, requested_quantity=100))
    assert p == {"ok": True, "blocking_reasons": [], "product_id": demo["product_id"], "product_batch_id": batch,
                 "requested_quantity": 100, "available_quantity": 100}
    # one invalid lot code and too many units: both reasons, from submit and preflight alike, nothing minted
    lots = [{"lot_code": "GOOD", "qty": 60}, {"lot_code": "BAD LOT", "qty": 50}]
    b = blocked(submit(srv, demo, batch, lots=lots), batch, "LOT_INVALID", "BATCH_QUANTITY_EXCEEDED")
    assert '_lots[1] "BAD LOT"' in b["blocking_reasons"][0]["message"]
    assert "exceed the batch quantity 100" in b["blocking_reasons"][1]["message"]
    pf = ok(preflight(srv, demo, batch, lots=lots))
    assert pf["ok"] is False and pf["blocking_reasons"] == b["blocking_reasons"]
    assert pf["requested_quantity"] == 110 and pf["available_quantity"] == 100
    assert psql("SELECT count(*) FROM pp_mint_jobs") == jobs_before
    assert psql("SELECT units_reserved FROM pp_batches WHERE id = '%s'" % batch) == "0"
    # a recalled batch whose number is no GS1 lot: three reasons
    bad = new_batch(srv, demo, "TB BLOCK", quantity=5)
    ok(rpc(srv, "update_product_batch", {"_brand_id": demo["brand_id"], "_batch_id": bad,
                                         "_patch": {"status": "recalled"}}, demo["jwt"]))
    b = blocked(submit(srv, demo, bad, 6), bad, "BATCH_NOT_ACTIVE", "LOT_INVALID", "BATCH_QUANTITY_EXCEEDED")
    assert "recalled" in b["blocking_reasons"][0]["message"]
    pf = ok(preflight(srv, demo, bad))
    assert [x["code"] for x in pf["blocking_reasons"]] == ["BATCH_NOT_ACTIVE", "LOT_INVALID"]
    assert pf["requested_quantity"] is None and pf["available_quantity"] == 5
    # fully minted: preflight without a quantity says so
    ok(submit(srv, demo, batch, 100))
    pf = ok(preflight(srv, demo, batch))
    assert [x["code"] for x in pf["blocking_reasons"]] == ["BATCH_QUANTITY_EXCEEDED"] and pf["available_quantity"] == 0
    # errors are still errors: unknown batch 404, another brand's caller 403, bad arguments 400
    pgrst(preflight(srv, demo, "00000000-0000-4000-8000-000000000000"), 404)
    pgrst(preflight(srv, demo, batch, requested_quantity=0), 400, "Invalid input")


def hold_units_lock(database, seconds):
    """Another session holding a lock that blocks COPY into pp_units."""
    sql = "BEGIN; LOCK TABLE pp_units IN SHARE MODE; SELECT pg_sleep(%s); COMMIT;" % seconds
    return subprocess.Popen([find_tool("psql"), database, "-qtAX", "-c", sql],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def test_job_states_and_cycle_progress(srv, demo, database, psql):
    batch = new_batch(srv, demo, "TB-STATES")
    locker = hold_units_lock(database, 4)
    try:
        time.sleep(0.5)
        r = ok(submit(srv, demo, batch, 2500))
        seen = []
        deadline = time.time() + 30
        while time.time() < deadline:
            j = get_job(srv, demo, r["mint_job_id"])
            if not seen or seen[-1] != j["status"]:
                seen.append(j["status"])
            if j["status"] == "PROCESSING":
                break
            time.sleep(0.02)
        # the writers wait on the lock: PROCESSING, no cycle committed yet
        assert j["status"] == "PROCESSING", seen
        assert j["cycles_total"] == 3 and j["cycles_completed"] == 0 and j["cycle_units"] == 1000
        assert j["minted_count"] == 0 and j["started_at"]
    finally:
        locker.wait(timeout=30)
    j = wait_job(srv, demo, r["mint_job_id"])
    seen.append(j["status"])
    order = ["QUEUED", "RESERVED", "PROCESSING", "COMPLETED"]
    assert [order.index(s) for s in seen] == sorted(order.index(s) for s in seen), seen
    assert j["status"] == "COMPLETED" and j["cycles_completed"] == 3 and j["cycle_retries"] == 0
    assert j["minted_count"] == 2500 and j["errors"] == []


FAIL_TRIGGER = """
CREATE TABLE IF NOT EXISTS t_fail (unit_id bigint, times int);
CREATE SEQUENCE IF NOT EXISTS t_fail_seq;
CREATE OR REPLACE FUNCTION t_fail_unit() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  -- fails the COPY of the unit's chunk while the sequence (which a
  -- rollback does not undo) is within the number of times
  IF EXISTS (SELECT 1 FROM t_fail f WHERE f.unit_id = NEW.id AND nextval('t_fail_seq') <= f.times) THEN
    RAISE EXCEPTION 'injected failure at unit %', NEW.id;
  END IF;
  RETURN NEW;
END $$;
DROP TRIGGER IF EXISTS t_fail ON pp_units;
CREATE TRIGGER t_fail BEFORE INSERT ON pp_units FOR EACH ROW EXECUTE FUNCTION t_fail_unit();
"""


def arm(psql, unit_id, times):
    psql(FAIL_TRIGGER)
    psql("ALTER SEQUENCE t_fail_seq RESTART WITH 1; DELETE FROM t_fail; INSERT INTO t_fail VALUES (%d, %d)"
         % (unit_id, times))


def disarm(psql):
    psql("DROP TRIGGER IF EXISTS t_fail ON pp_units; DELETE FROM t_fail")


def next_unit_id(psql):
    return int(psql("SELECT next_id FROM pp_unit_ids"))


def test_failed_cycle_retried_then_completes(srv, demo, psql):
    batch = new_batch(srv, demo, "TB-RETRY")
    # the first unit of the job's 2nd cycle fails twice, then goes through
    arm(psql, next_unit_id(psql) + 1000, 2)
    try:
        r = ok(submit(srv, demo, batch, 2500))
        j = wait_job(srv, demo, r["mint_job_id"], timeout=60)
    finally:
        disarm(psql)
    assert j["status"] == "COMPLETED" and j["minted_count"] == 2500, j
    assert j["cycle_retries"] == 2 and j["cycles_completed"] == 3
    assert [(e["cycle"], e["attempt"], e["retrying"]) for e in j["errors"]] == [(2, 1, True), (2, 2, True)], j
    assert "injected failure" in j["errors"][0]["message"] and j["errors"][0]["at_unit"] == 1001
    assert psql("SELECT count(*) FROM pp_units WHERE id >= (SELECT first_unit_id FROM pp_mint_jobs WHERE id = '%s')"
                " AND id < (SELECT first_unit_id + 2500 FROM pp_mint_jobs WHERE id = '%s')"
                % (r["mint_job_id"], r["mint_job_id"])) == "2500"


def test_failed_cycle_fails_job_after_3_retries_keeping_units(srv, demo, psql):
    batch = new_batch(srv, demo, "TB-FAIL", quantity=5000)
    arm(psql, next_unit_id(psql) + 2000, 100)  # the 3rd cycle always fails
    try:
        r = ok(submit(srv, demo, batch, 2500))
        j = wait_job(srv, demo, r["mint_job_id"], timeout=60)
    finally:
        disarm(psql)
    assert j["status"] == "FAILED", j
    # the two other cycles' units are kept and counted; the failed cycle's go back to the batch
    assert j["minted_count"] == 2000 and j["cycles_completed"] == 2 and j["cycles_total"] == 3
    cycle_errors = [e for e in j["errors"] if "cycle" in e]
    assert [(e["cycle"], e["attempt"], e["retrying"]) for e in cycle_errors] == \
        [(3, 1, True), (3, 2, True), (3, 3, True), (3, 4, False)], j
    assert "cycle 3 failed 4 times" in j["errors"][-1]["message"]
    assert psql("SELECT units_reserved FROM pp_batches WHERE id = '%s'" % batch) == "2000"
    assert len(all_units(srv, demo, r["mint_job_id"])) == 2000
    assert psql("SELECT state FROM bd_jobs WHERE ref = '%s'" % r["mint_job_id"]) == "done"

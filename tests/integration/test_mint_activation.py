"""Activation modes of mint jobs (issue 21): _activation_mode active_at_mint
(the default) or first_scan; units of a first_scan job are `minted` until
they are activated, exactly once, then `active`. The storage contract
(pp_mint_jobs.activation_mode, pp_unit_activations, pp_unit_status,
pp_unit_activate) is checked in the database as well as through the RPCs."""
import threading

import pytest

from conftest import seed_demo
from mintlib import all_units, new_batch, ok, pgrst, rpc, submit, wait_job


@pytest.fixture(scope="module")
def srv(server_factory):
    return server_factory(env={"BATCHD_RATE_LIMIT": "0", "BATCHD_MINT_CHUNK_UNITS": "1000"})


@pytest.fixture(scope="module")
def demo(run_batchd, srv):
    return seed_demo(run_batchd, srv, "products")


def job_of(srv, demo, job):
    return ok(rpc(srv, "get_mint_job", {"_brand_id": demo["brand_id"], "_mint_job_id": job}, demo["viewer_jwt"]))


def test_default_is_active_at_mint(srv, demo, psql):
    batch = new_batch(srv, demo, "ACT-DEF")
    job = ok(submit(srv, demo, batch, 30))["mint_job_id"]
    j = wait_job(srv, demo, job)
    assert j["status"] == "COMPLETED" and j["activation_mode"] == "active_at_mint"
    units = all_units(srv, demo, job)
    assert len(units) == 30 and {u["status"] for u in units} == {"active"}
    assert {u["activated_at"] for u in units} == {None}
    assert psql("SELECT activation_mode FROM pp_mint_jobs WHERE id = '%s'" % job) == "active_at_mint"
    first = psql("SELECT first_unit_id FROM pp_mint_jobs WHERE id = '%s'" % job)
    # activating a unit of an active_at_mint job changes nothing
    assert psql("SELECT pp_unit_activate(%s)" % first) == "active"
    assert psql("SELECT count(*) FROM pp_unit_activations WHERE unit_id = %s" % first) == "0"


def test_first_scan_units_are_minted_then_active_once(srv, demo, psql):
    batch = new_batch(srv, demo, "ACT-FS")
    job = ok(submit(srv, demo, batch, 2500, activation_mode="first_scan"))["mint_job_id"]
    j = wait_job(srv, demo, job)
    assert j["status"] == "COMPLETED" and j["activation_mode"] == "first_scan", j
    units = all_units(srv, demo, job)
    assert len(units) == 2500 and {u["status"] for u in units} == {"minted"}
    first = int(psql("SELECT first_unit_id FROM pp_mint_jobs WHERE id = '%s'" % job))
    assert psql("SELECT pp_unit_status(j, %d) FROM pp_mint_jobs j WHERE id = '%s'" % (first + 6, job)) == "minted"
    # unit seq 7 is scanned by 8 clients at once: exactly one activates it
    results, lock = [], threading.Lock()

    def scan():
        r = psql("SELECT pp_unit_activate(%d)" % (first + 6))
        with lock:
            results.append(r)
    threads = [threading.Thread(target=scan) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == ["activated"] + ["already_active"] * 7, results
    assert psql("SELECT pp_unit_activate(%d)" % (first + 6)) == "already_active"
    assert psql("SELECT pp_unit_status(j, %d) FROM pp_mint_jobs j WHERE id = '%s'" % (first + 6, job)) == "active"
    units = all_units(srv, demo, job)
    assert [u["seq"] for u in units if u["status"] == "active"] == [7]
    assert units[6]["activated_at"] and all(u["activated_at"] is None for u in units if u["seq"] != 7)
    # no such unit
    assert psql("SELECT pp_unit_activate(%d) IS NULL" % (first + 10 ** 9)) == "t"


def test_activation_mode_validated_and_part_of_idempotency(srv, demo):
    batch = new_batch(srv, demo, "ACT-IDEM")
    body = pgrst(submit(srv, demo, batch, 5, activation_mode="on_scan"), 400, "Invalid input")
    assert "_activation_mode must be active_at_mint or first_scan" in body["details"]
    pgrst(submit(srv, demo, batch, 5, activation_mode=1), 400, "Invalid input")
    a = ok(submit(srv, demo, batch, 5, activation_mode="first_scan", idempotency_key="act-k"))
    b = ok(submit(srv, demo, batch, 5, activation_mode="first_scan", idempotency_key="act-k"))
    assert b["is_duplicate"] is True and b["mint_job_id"] == a["mint_job_id"]
    body = pgrst(submit(srv, demo, batch, 5, idempotency_key="act-k"), 409)
    assert "_idempotency_key" in body["details"]
    assert job_of(srv, demo, a["mint_job_id"])["activation_mode"] == "first_scan"

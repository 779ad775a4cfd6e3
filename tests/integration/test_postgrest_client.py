"""The PostgREST client, honoured (issue 21): @supabase/postgrest-js from npm
(tests/npm, pinned) drives /rest/v1/rpc unchanged, and what it adds to a
call (filters on the returned rows, select, order, limit/range, single,
count, GET for read-only functions) is applied, or refused with
PostgREST's error; never ignored. A few headers the client does not set
(Range, Prefer: handling=strict) are checked with requests."""
import json
import os
import shutil
import subprocess

import pytest
import requests

from conftest import seed_demo
from mintlib import new_batch, ok, pgrst, rpc, submit, wait_job

NPM_DIR = os.path.join(os.environ.get("BATCHD_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", "..")),
                       "tests", "npm")


@pytest.fixture(scope="module")
def srv(server_factory):
    return server_factory(env={"BATCHD_RATE_LIMIT": "0"})


@pytest.fixture(scope="module")
def demo(run_batchd, srv):
    return seed_demo(run_batchd, srv, "products")


@pytest.fixture(scope="module")
def world(srv, demo):
    """Batches PG-1..PG-5 (quantities 10, 20, 30, none, 50; PG-5 closed) and a
    completed mint job of 3 units of PG-1."""
    ids = {}
    for n, q, fac in ((1, 10, "Hall A"), (2, 20, "hall b"), (3, 30, "Yard"), (4, None, "Yard"), (5, 50, "Dock")):
        args = {"_brand_id": demo["brand_id"], "_product_id": demo["product_id"], "_batch_number": "PG-%d" % n,
                "_facility_ref": fac}
        if q is not None:
            args["_quantity"] = q
        ids[n] = ok(rpc(srv, "create_product_batch", args, demo["jwt"]))["id"]
    ok(rpc(srv, "update_product_batch", {"_brand_id": demo["brand_id"], "_batch_id": ids[5],
                                         "_patch": {"status": "closed"}}, demo["jwt"]))
    job = ok(submit(srv, demo, ids[1], 3))["mint_job_id"]
    wait_job(srv, demo, job)
    return {"ids": ids, "job": job}


@pytest.fixture(scope="module")
def res(srv, demo, world):
    node = shutil.which("node") or shutil.which("nodejs")
    if not node or not os.path.isdir(os.path.join(NPM_DIR, "node_modules", "@supabase", "postgrest-js")):
        pytest.fail("node and tests/npm/node_modules (npm ci) are required")
    cfg = {"url": srv.url, "jwt": demo["jwt"], "brand_id": demo["brand_id"], "product_id": demo["product_id"],
           "job": world["job"], "batch": world["ids"][3]}
    out = subprocess.run([node, "postgrest_cases.mjs", json.dumps(cfg)], cwd=NPM_DIR, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def numbers(r):
    assert r["error"] is None, r
    return sorted(b["batch_number"] for b in r["data"])


def test_filters_on_returned_rows(res):
    assert len(res["all"]["data"]) == 5 and res["all"]["error"] is None
    assert numbers(res["eq"]) == ["PG-2"]
    assert numbers(res["neq_gt"]) == ["PG-2", "PG-5"]
    assert numbers(res["gte_lte"]) == ["PG-2", "PG-3"]
    assert numbers(res["in_like"]) == ["PG-1", "PG-5"]
    assert numbers(res["like"]) == ["PG-1", "PG-2", "PG-3", "PG-4", "PG-5"]
    assert numbers(res["ilike"]) == ["PG-1", "PG-2"]
    assert numbers(res["is_null"]) == ["PG-4"]
    assert numbers(res["not_eq"]) == ["PG-5"]


def test_select_order_limit_range(res):
    assert res["select"]["data"] == [{"batch_number": "PG-1", "qty": 10}]
    assert res["order_range"]["data"] == [{"batch_number": "PG-4"}, {"batch_number": "PG-3"}]
    assert [b["batch_number"] for b in res["order_nulls"]["data"]] == ["PG-4", "PG-1", "PG-2", "PG-3", "PG-5"]
    assert res["limit"]["data"] == [{"batch_number": "PG-1"}, {"batch_number": "PG-2"}]


def test_count_exact(res):
    assert res["count"]["count"] == 5 and res["count"]["status"] == 206
    assert res["count"]["data"] == [{"batch_number": "PG-1"}, {"batch_number": "PG-2"}]
    assert res["count_filtered"]["count"] == 3 and res["count_filtered"]["status"] == 200
    assert res["head_count"]["count"] == 5 and res["head_count"]["data"] is None
    assert res["head_count"]["status"] == 200


def test_single(res, world):
    assert res["single"]["data"]["batch_number"] == "PG-2" and res["single"]["error"] is None
    for k, n in (("single_many", 5), ("single_none", 0)):
        assert res[k]["status"] == 406 and res[k]["data"] is None, res[k]
        assert res[k]["error"]["code"] == "PGRST116" and res[k]["error"]["details"] == "The result contains %d rows" % n
    assert res["maybe_single_none"]["data"] is None and res["maybe_single_none"]["error"] is None
    assert res["object_single"]["data"]["mint_job_id"] == world["job"]


def test_get_for_read_only_functions(res, world, psql):
    assert res["get_rows"]["data"] == [{"batch_number": "PG-3", "quantity": 30}]
    assert res["get_object"]["data"] == {"status": "COMPLETED", "requested_quantity": 3}
    assert len(res["get_units"]["data"]["data"]) == 2 and res["get_units"]["data"]["has_more"] is True
    w = res["get_write"]
    assert w["status"] == 405 and w["error"]["code"] == "25006", w
    assert psql("SELECT count(*) FROM pp_mint_jobs WHERE batch_id = '%s'" % world["ids"][3]) == "0"


def test_object_functions(res, world):
    assert res["object_select"]["data"] == {"mint_job_id": world["job"], "minted_count": 3}
    e = res["object_filter"]
    assert e["status"] == 400 and e["error"]["code"] == "PGRST100" and "get_mint_job" in e["error"]["details"], e


@pytest.mark.parametrize("case,status,code", [
    ("or_tree", 400, "PGRST100"), ("fts", 400, "PGRST100"), ("contains", 400, "PGRST100"),
    ("csv", 406, "PGRST107"), ("unknown_column", 400, "42703"), ("not_a_number", 400, "22P02"),
    ("embedded", 400, "PGRST100"),
])
def test_unsupported_is_refused_not_ignored(res, case, status, code):
    r = res[case]
    assert r["status"] == status and r["data"] is None, r
    assert r["error"]["code"] == code and set(r["error"]) == {"code", "message", "details", "hint"}, r


def test_headers_the_client_does_not_set(srv, demo, world):
    url = srv.url + "/rest/v1/rpc/list_product_batches?select=batch_number&order=batch_number"
    h = {"Authorization": "Bearer " + demo["jwt"], "Content-Type": "application/json"}
    body = json.dumps({"_brand_id": demo["brand_id"], "_product_id": demo["product_id"]})
    r = requests.post(url, data=body, headers=dict(h, Range="1-3", Prefer="count=exact"), timeout=10)
    assert r.status_code == 206 and r.headers["Content-Range"] == "1-3/5", r.text
    assert [b["batch_number"] for b in r.json()] == ["PG-2", "PG-3", "PG-4"]
    r = requests.post(url + "&offset=1", data=body, headers=dict(h, Range="0-1"), timeout=10)
    assert r.status_code == 200 and r.headers["Content-Range"] == "1-1/*" and len(r.json()) == 1
    body416 = pgrst(requests.post(url + "&offset=7", data=body, headers=dict(h, Prefer="count=exact"), timeout=10), 416)
    assert body416["code"] == "PGRST103"
    strict = requests.post(url, data=body, headers=dict(h, Prefer="handling=strict, tx=rollback"), timeout=10)
    assert pgrst(strict, 400)["code"] == "PGRST122" and "tx=rollback" in strict.json()["details"]
    # a write refused by its options runs nothing
    mint = srv.url + "/rest/v1/rpc/submit_mint_request?status=eq.QUEUED"
    args = {"_brand_id": demo["brand_id"], "_product_id": demo["product_id"], "_batch_id": world["ids"][2],
            "_requested_quantity": 1}
    assert pgrst(requests.post(mint, json=args, headers=h, timeout=10), 400)["code"] == "PGRST100"
    assert ok(rpc(srv, "preflight_mint_batch", args, demo["jwt"]))["available_quantity"] == 20
    # no options: the answer as before, without Content-Range
    r = requests.post(srv.url + "/rest/v1/rpc/list_product_batches", data=body, headers=h, timeout=10)
    assert r.status_code == 200 and "Content-Range" not in r.headers and len(r.json()) == 5

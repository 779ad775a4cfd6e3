"""Webhooks of the /rpc surface (issue 25): the endpoint functions
(create_webhook_endpoint, list_webhook_endpoints, update_webhook_endpoint,
delete_webhook_endpoint, list_webhook_deliveries, retry_webhook_delivery;
brand owner or admin) and mint_job.completed / mint_job.failed in the
outbox, with the job as get_mint_job returns it."""
import base64
import json
import time

import pytest

from conftest import seed_demo
from mintlib import new_batch, ok, pgrst, rpc, submit, wait_job
from webhooklib import Receiver, check_signatures


@pytest.fixture(scope="module")
def srv(server_factory):
    return server_factory(env={"BATCHD_RATE_LIMIT": "0", "BATCHD_WEBHOOK_ALLOW_HTTP": "1",
                               "BATCHD_WEBHOOK_ALLOW_PRIVATE": "1", "BATCHD_MAX_WEBHOOKS": "2"})


@pytest.fixture(scope="module")
def demo(run_batchd, srv):
    return seed_demo(run_batchd, srv, "products", tenant="rpchooks")


@pytest.fixture(scope="module")
def other(run_batchd, srv):
    return seed_demo(run_batchd, srv, "products", tenant="rpchooksother")


def test_endpoint_functions(srv, demo, other):
    b = demo["brand_id"]
    made = ok(rpc(srv, "create_webhook_endpoint", {"_brand_id": b, "_url": "https://erp.example.com/hooks",
                                                   "_events": ["mint_job.completed"], "_description": "ERP"},
                  demo["jwt"]))
    assert made["id"].startswith("wh_") and made["object"] == "webhook_endpoint"
    assert made["events"] == ["mint_job.completed"] and made["is_active"] is True
    assert made["secret"].startswith("whsec_") and len(base64.b64decode(made["secret"][6:])) == 32
    listed = ok(rpc(srv, "list_webhook_endpoints", {"_brand_id": b}, demo["jwt"]))
    assert [e["id"] for e in listed] == [made["id"]] and "secret" not in listed[0]
    upd = ok(rpc(srv, "update_webhook_endpoint", {"_brand_id": b, "_webhook_id": made["id"], "_events": ["*"],
                                                  "_is_active": False}, demo["jwt"]))
    assert upd["events"] == ["*"] and upd["is_active"] is False and "secret" not in upd
    rot = ok(rpc(srv, "update_webhook_endpoint", {"_brand_id": b, "_webhook_id": made["id"], "_rotate_secret": True},
                 demo["jwt"]))
    assert rot["secret"].startswith("whsec_") and rot["secret"] != made["secret"]
    # validation
    for args, detail in [({"_url": "ftp://x", "_events": ["*"]}, "url must be an absolute http(s) URL"),
                         ({"_url": "https://x.example.com", "_events": ["mint_job.exploded"]}, "_events"),
                         ({"_url": "https://x.example.com", "_events": []}, "_events"),
                         ({"_url": "https://x.example.com", "_events": ["*", "*"]}, "duplicate"),
                         ({"_events": ["*"]}, "_url")]:
        body = pgrst(rpc(srv, "create_webhook_endpoint", dict(args, _brand_id=b), demo["jwt"]), 400)
        assert detail in (body["details"] or ""), (args, body)
    # roles and brands: a viewer may not, another brand's owner sees nothing
    pgrst(rpc(srv, "list_webhook_endpoints", {"_brand_id": b}, demo["viewer_jwt"]), 403)
    pgrst(rpc(srv, "list_webhook_endpoints", {"_brand_id": b}, other["jwt"]), 403)
    pgrst(rpc(srv, "update_webhook_endpoint", {"_brand_id": other["brand_id"], "_webhook_id": made["id"],
                                               "_is_active": True}, other["jwt"]), 404)
    pgrst(rpc(srv, "list_webhook_endpoints", {"_brand_id": b}), 401)
    # the limit per brand (BATCHD_MAX_WEBHOOKS=2)
    second = ok(rpc(srv, "create_webhook_endpoint", {"_brand_id": b, "_url": "https://b.example.com/",
                                                     "_events": ["*"]}, demo["jwt"]))
    body = pgrst(rpc(srv, "create_webhook_endpoint", {"_brand_id": b, "_url": "https://c.example.com/",
                                                      "_events": ["*"]}, demo["jwt"]), 400)
    assert "maximum of 2" in body["details"]
    gone = ok(rpc(srv, "delete_webhook_endpoint", {"_brand_id": b, "_webhook_id": second["id"]}, demo["jwt"]))
    assert gone == {"ok": True, "id": second["id"], "deleted": True}
    pgrst(rpc(srv, "delete_webhook_endpoint", {"_brand_id": b, "_webhook_id": second["id"]}, demo["jwt"]), 404)
    ok(rpc(srv, "delete_webhook_endpoint", {"_brand_id": b, "_webhook_id": made["id"]}, demo["jwt"]))


def test_mint_events_in_the_outbox(srv, demo, other, psql):
    b = demo["brand_id"]
    ep = ok(rpc(srv, "create_webhook_endpoint", {"_brand_id": b, "_url": "http://127.0.0.1:9/none",
                                                 "_events": ["mint_job.completed", "mint_job.failed"]}, demo["jwt"]))
    batch = new_batch(srv, demo, "HOOK-1", quantity=50)
    job = ok(submit(srv, demo, batch, 10))["mint_job_id"]
    done = wait_job(srv, demo, job)
    assert done["status"] == "COMPLETED"
    deadline = time.time() + 10
    rows = []
    while time.time() < deadline:
        rows = psql("SELECT type || '|' || data::text FROM bd_webhook_events WHERE surface = 'products'"
                    " AND owner = '%s' ORDER BY created_at" % b).splitlines()
        if rows:
            break
        time.sleep(0.1)
    assert len(rows) == 1, rows
    typ, data = rows[0].split("|", 1)
    assert typ == "mint_job.completed"
    assert json.loads(data) == ok(rpc(srv, "get_mint_job", {"_brand_id": b, "_mint_job_id": job}, demo["jwt"]))
    # a delivery for the endpoint, listed and retried through /rpc
    ds = ok(rpc(srv, "list_webhook_deliveries", {"_brand_id": b, "_webhook_id": ep["id"]}, demo["jwt"]))
    assert len(ds) == 1 and ds[0]["event_type"] == "mint_job.completed"
    r = ok(rpc(srv, "retry_webhook_delivery", {"_brand_id": b, "_webhook_id": ep["id"], "_delivery_id": ds[0]["id"]},
               demo["jwt"]))
    assert r["id"] == ds[0]["id"] and r["status"] == "pending"
    pgrst(rpc(srv, "retry_webhook_delivery", {"_brand_id": b, "_webhook_id": ep["id"], "_delivery_id": "whdel_x"},
              demo["jwt"]), 404)
    # the other brand has no endpoint: its mint writes no event
    ob = new_batch(srv, other, "HOOK-2", quantity=5)
    oj = ok(submit(srv, other, ob, 5))["mint_job_id"]
    wait_job(srv, other, oj)
    assert psql("SELECT count(*) FROM bd_webhook_events WHERE owner = '%s'" % other["brand_id"]).strip() == "0"


def test_mint_event_delivered_and_signed(srv, demo, psql):
    r = Receiver()
    try:
        b = demo["brand_id"]
        ep = ok(rpc(srv, "create_webhook_endpoint", {"_brand_id": b, "_url": r.url, "_events": ["*"]}, demo["jwt"]))
        batch = new_batch(srv, demo, "HOOK-3", quantity=5)
        job = ok(submit(srv, demo, batch, 5))["mint_job_id"]
        wait_job(srv, demo, job)
        mine = r.wait(lambda env: env["data"].get("id") == job)
        assert len(mine) == 1 and mine[0][1]["type"] == "mint_job.completed"
        assert mine[0][1]["data"] == ok(rpc(srv, "get_mint_job", {"_brand_id": b, "_mint_job_id": job}, demo["jwt"]))
        check_signatures(ep["secret"], mine[0][0], mine[0][2])
        time.sleep(0.5)
        assert len(r.wait(lambda env: env["data"].get("id") == job, timeout=0)) == 1  # once
        # a job that fails: ended by the server's own finish function with an error
        big = new_batch(srv, demo, "HOOK-4", quantity=200000)
        job2 = ok(submit(srv, demo, big, 200000))["mint_job_id"]
        psql("SELECT pp_mint_finish('%s', 'stopped by the test')" % job2)
        failed = r.wait(lambda env: env["data"].get("id") == job2)
        assert len(failed) == 1 and failed[0][1]["type"] == "mint_job.failed", [e for _, e, _ in failed]
        assert failed[0][1]["data"]["status"] == "FAILED"
        assert failed[0][1]["data"]["errors"][-1]["message"] == "stopped by the test"
        check_signatures(ep["secret"], failed[0][0], failed[0][2])
    finally:
        r.close()

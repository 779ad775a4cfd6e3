"""Helpers shared by the minting, export and resolver tests (products surface)."""
import json
import time

import requests


def rpc(srv, fn, args, token=None):
    h = {"Content-Type": "application/json"}
    if token:
        h["Authorization"] = "Bearer " + token
    return requests.post(srv.url + "/rpc/" + fn, headers=h, data=json.dumps(args), timeout=60)


def ok(r):
    assert r.status_code == 200, r.text
    return r.json()


def pgrst(r, status, message=None):
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"code", "message", "details", "hint"}, body
    if message:
        assert body["message"] == message, body
    return body


def blocked(r, batch, *codes):
    """A mint request refused with blocking reasons of these codes, in order."""
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["ok"] is False and body["product_batch_id"] == batch and body["product_id"], body
    assert [x["code"] for x in body["blocking_reasons"]] == list(codes), body
    assert all(set(x) == {"code", "message"} and x["message"] for x in body["blocking_reasons"]), body
    assert "mint_job_id" not in body, body
    return body


def new_batch(srv, demo, number, quantity=None, product=None):
    args = {"_brand_id": demo["brand_id"], "_product_id": product or demo["product_id"], "_batch_number": number}
    if quantity is not None:
        args["_quantity"] = quantity
    return ok(rpc(srv, "create_product_batch", args, demo["jwt"]))["id"]


def submit(srv, demo, batch, qty=None, token=None, product=None, **extra):
    args = {"_brand_id": demo["brand_id"], "_product_id": product or demo["product_id"], "_batch_id": batch}
    if qty is not None:
        args["_requested_quantity"] = qty
    args.update({"_" + k: v for k, v in extra.items()})
    return rpc(srv, "submit_mint_request", args, token or demo["jwt"])


def wait_job(srv, demo, job, timeout=60, status=("COMPLETED", "FAILED")):
    deadline = time.time() + timeout
    while True:
        j = ok(rpc(srv, "get_mint_job", {"_brand_id": demo["brand_id"], "_mint_job_id": job}, demo["viewer_jwt"]))
        if j["status"] in status:
            return j
        assert time.time() < deadline, j
        time.sleep(0.05)


def all_units(srv, demo, job, limit=1000):
    out, cursor = [], None
    while True:
        args = {"_brand_id": demo["brand_id"], "_mint_job_id": job, "_limit": limit}
        if cursor:
            args["_cursor"] = cursor
        page = ok(rpc(srv, "list_mint_units", args, demo["viewer_jwt"]))
        out += page["data"]
        if not page["has_more"]:
            assert page["next_cursor"] is None
            return out
        cursor = page["next_cursor"]

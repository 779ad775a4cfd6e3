"""The /rpc surface (PostgREST style): products and product batches with JWT
auth and brand roles, against the real server and PostgreSQL."""
import base64
import hashlib
import hmac
import json
import time

import pytest
import requests

from conftest import JWT_SECRET


def b64(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def jwt(claims, key=JWT_SECRET, alg="HS256"):
    head = b64(json.dumps({"alg": alg, "typ": "JWT"}).encode())
    body = b64(json.dumps(claims).encode())
    sig = b64(hmac.new(key.encode(), (head + "." + body).encode(), hashlib.sha256).digest()) if alg != "none" else ""
    return head + "." + body + "." + sig


@pytest.fixture(scope="module")
def srv(server_factory):
    return server_factory(env={"BATCHD_RATE_LIMIT": "0"})


@pytest.fixture(scope="module")
def demo(run_batchd, srv):
    out = run_batchd("seed-demo", "--json", env={"BATCHD_PUBLIC_URL": srv.url})
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)["products"]


@pytest.fixture(scope="module")
def other(run_batchd, srv):
    out = run_batchd("seed-demo", "--tenant", "rival", "--json", env={"BATCHD_PUBLIC_URL": srv.url})
    return json.loads(out.stdout)["products"]


def rpc(srv, fn, args, token=None, prefix="/rpc/"):
    h = {"Content-Type": "application/json"}
    if token:
        h["Authorization"] = "Bearer " + token
    return requests.post(srv.url + prefix + fn, headers=h, data=json.dumps(args))


def assert_pgrst(r, status, message=None):
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"code", "message", "details", "hint"}
    if message:
        assert body["message"] == message
    return body


def test_seed_shape(demo):
    assert demo["gtin"].isdigit() and len(demo["gtin"]) == 14
    assert demo["jwt"].count(".") == 2 and demo["viewer_jwt"].count(".") == 2


def test_products(srv, demo):
    r = rpc(srv, "create_product", {"_brand_id": demo["brand_id"], "_name": "Boots", "_gtin": "4006381333931",
                                    "_attributes": {"size": "42"}}, demo["jwt"])
    assert r.status_code == 200, r.text
    p = r.json()
    assert p["gtin"] == "04006381333931" and p["name"] == "Boots" and p["attributes"] == {"size": "42"}
    for g in ("96385074", "036000291452", "10614141000415"):  # 8, 12 and 14 digits
        r = rpc(srv, "create_product", {"_brand_id": demo["brand_id"], "_name": "G" + g, "_gtin": g}, demo["jwt"])
        assert r.status_code == 200 and len(r.json()["gtin"]) == 14, r.text
    listed = rpc(srv, "list_products", {"_brand_id": demo["brand_id"]}, demo["viewer_jwt"]).json()
    assert {"04006381333931", "00000096385074", "00036000291452", "10614141000415"} <= {x["gtin"] for x in listed}
    r = rpc(srv, "create_product", {"_brand_id": demo["brand_id"], "_name": "Dup", "_gtin": "4006381333931"}, demo["jwt"])
    assert_pgrst(r, 409)


@pytest.mark.parametrize("gtin,detail", [("4006381333932", "check digit"), ("40063813339a", "digits only"),
                                         ("123456789", "8, 12, 13 or 14"), ("123456789012345", "8, 12, 13 or 14")])
def test_gtin_validation(srv, demo, gtin, detail):
    r = rpc(srv, "create_product", {"_brand_id": demo["brand_id"], "_name": "x", "_gtin": gtin}, demo["jwt"])
    body = assert_pgrst(r, 400, "Invalid input")
    assert detail in body["details"]


def test_batches_exactly_as_the_seed(srv, demo):
    args = {"_brand_id": demo["brand_id"], "_product_id": demo["product_id"], "_batch_number": "BATCH-2026-001",
            "_production_date": "2026-01-15", "_quantity": 500, "_facility_ref": "FAC-EU-01", "_attributes": {}}
    r = rpc(srv, "create_product_batch", args, demo["jwt"])
    assert r.status_code == 200, r.text
    b = r.json()
    assert set(b) == {"id", "product_id", "batch_number", "status", "production_date", "quantity", "facility_ref",
                      "created_at"}
    assert (b["batch_number"], b["status"], b["production_date"], b["quantity"], b["facility_ref"]) == \
        ("BATCH-2026-001", "active", "2026-01-15", 500, "FAC-EU-01")
    assert b["created_at"].endswith("Z") and len(b["created_at"]) == 20
    # optional arguments may be left out
    r = rpc(srv, "create_product_batch", {"_brand_id": demo["brand_id"], "_product_id": demo["product_id"],
                                          "_batch_number": "MIN"}, demo["jwt"])
    assert r.status_code == 200 and r.json()["quantity"] is None
    # unique within the product
    assert_pgrst(rpc(srv, "create_product_batch", args, demo["jwt"]), 409)
    listed = rpc(srv, "list_product_batches", {"_brand_id": demo["brand_id"], "_product_id": demo["product_id"]},
                 demo["viewer_jwt"], prefix="/rest/v1/rpc/").json()
    mine = [x for x in listed if x["id"] == b["id"]][0]
    assert set(mine) == {"id", "batch_number", "status", "production_date", "quantity", "facility_ref", "attributes",
                         "created_at", "updated_at"}
    r = rpc(srv, "update_product_batch", {"_brand_id": demo["brand_id"], "_batch_id": b["id"],
                                          "_patch": {"quantity": 600, "facility_ref": "FAC-EU-02", "status": "recalled"}},
            demo["jwt"])
    assert r.status_code == 200, r.text
    u = r.json()
    assert (u["quantity"], u["facility_ref"], u["status"], u["batch_number"]) == (600, "FAC-EU-02", "recalled",
                                                                                   "BATCH-2026-001")


@pytest.mark.parametrize("patch,detail", [({"product_id": "x"}, "cannot be changed"), ({"status": "lost"}, "status"),
                                          ({"quantity": -1}, "quantity"), ({"production_date": "15-01-2026"}, "date")])
def test_patch_allow_list_and_validation(srv, demo, patch, detail):
    b = rpc(srv, "create_product_batch", {"_brand_id": demo["brand_id"], "_product_id": demo["product_id"],
                                          "_batch_number": "P-" + str(time.time())}, demo["jwt"]).json()
    r = rpc(srv, "update_product_batch", {"_brand_id": demo["brand_id"], "_batch_id": b["id"], "_patch": patch},
            demo["jwt"])
    body = assert_pgrst(r, 400, "Invalid input")
    assert detail in body["details"]


def test_authentication(srv, demo):
    args = {"_brand_id": demo["brand_id"]}
    now = int(time.time())
    for tok in (None, "garbage", jwt({"sub": "demo-owner", "exp": now - 100}),
                jwt({"sub": "demo-owner"}), jwt({"sub": "demo-owner", "exp": now + 100}, key="wrong"),
                jwt({"sub": "demo-owner", "exp": now + 100}, alg="none"),
                jwt({"exp": now + 100})):
        body = assert_pgrst(rpc(srv, "list_products", args, tok), 401, "Not authenticated")
    # an unknown function is 404 for an authenticated caller
    body = assert_pgrst(rpc(srv, "drop_everything", {}, demo["jwt"]), 404)
    assert body["code"] == "PGRST202"


def test_authorization(srv, demo, other):
    # a viewer cannot write
    r = rpc(srv, "create_product_batch", {"_brand_id": demo["brand_id"], "_product_id": demo["product_id"],
                                          "_batch_number": "V"}, demo["viewer_jwt"])
    assert_pgrst(r, 403, "Forbidden")
    # another brand's owner can neither read nor write here
    assert_pgrst(rpc(srv, "list_products", {"_brand_id": demo["brand_id"]}, other["jwt"]), 403, "Forbidden")
    assert_pgrst(rpc(srv, "list_product_batches", {"_brand_id": demo["brand_id"], "_product_id": demo["product_id"]},
                     other["jwt"]), 403)
    # a brand that does not exist is refused exactly like another tenant's:
    # the 403 says "not yours", never whether the brand exists
    missing = rpc(srv, "list_products", {"_brand_id": "7d1c3a4e-0000-4000-8000-000000000000"}, other["jwt"])
    foreign = rpc(srv, "list_products", {"_brand_id": demo["brand_id"]}, other["jwt"])
    assert (missing.status_code, missing.json()) == (foreign.status_code, foreign.json()) == (403, foreign.json())
    # a product of another brand, through one's own brand: 404, nothing leaks
    r = rpc(srv, "list_product_batches", {"_brand_id": other["brand_id"], "_product_id": demo["product_id"]},
            other["jwt"])
    body = assert_pgrst(r, 404)
    assert demo["product_id"] not in r.text or "no such product" in body["details"]


@pytest.mark.parametrize("args,detail", [({"_brand_id": "nope"}, "UUID"), ({}, "_brand_id is required")])
def test_bad_arguments(srv, demo, args, detail):
    body = assert_pgrst(rpc(srv, "list_products", args, demo["jwt"]), 400, "Invalid input")
    assert detail in body["details"]


def test_body_must_be_an_object(srv, demo):
    r = requests.post(srv.url + "/rpc/list_products", headers={"Authorization": "Bearer " + demo["jwt"]}, data="[1]")
    assert_pgrst(r, 400, "Invalid input")
    r = requests.post(srv.url + "/rpc/list_products", headers={"Authorization": "Bearer " + demo["jwt"]}, data="{bad")
    assert_pgrst(r, 400, "Invalid input")

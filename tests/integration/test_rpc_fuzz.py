"""Generated /rpc bodies through the real server and PostgreSQL.

The C side of /rpc only checks that the body is a JSON object of bounded
depth (fuzz_json_gate covers that); the arguments are interpreted by the
PL/pgSQL functions, which libFuzzer cannot reach. This test mutates a valid
argument set of every function (a key dropped, a value of another type, an
out-of-range number, a long or odd string, an unknown key, nested junk) and
sends the bodies, from a fixed seed so a failure reproduces (BATCHD_RPC_FUZZ_SEED
and BATCHD_RPC_FUZZ_N change them). Every answer must be a 200 or a client
error (400, 403, 404, 409, 413) in PostgREST's shape: never a 5xx, never a
dropped connection, and the server keeps serving.
"""
import json
import os
import random

import pytest
import requests

from conftest import seed_demo
from mintlib import new_batch, ok, rpc

SEED = int(os.environ.get("BATCHD_RPC_FUZZ_SEED", "20261201"))
N = int(os.environ.get("BATCHD_RPC_FUZZ_N", "160"))  # bodies per function

ODD_STRINGS = ["", " ", "x" * 5000, "\u0000", "nul\u0000inside", "\ud7ff\ue000", "😀" * 50, "'; DROP TABLE pp_units; --",
               "%s%n", "../../etc/passwd", "<script>", "1e309", "NaN", "-0", "00000000-0000-0000-0000-000000000000",
               "2026-02-30", "9999-12-31", "0000-01-01", "2026-01-15T25:00:00Z", "\\", "\"", "{}", "[]", "null",
               "10614141000415", "4006381333932", "random", "serial", "provided", "active", "recalled"]
ODD_NUMBERS = [0, -1, 1, 2, 20, 21, 1000000, 1000001, 2 ** 31, 2 ** 31 - 1, -2 ** 31, 2 ** 63, 10 ** 30, 1.5, -0.0,
               1e308, 3.0, 1e-9]


def odd_value(rnd, depth=0):
    k = rnd.randrange(9)
    if k == 0:
        return rnd.choice(ODD_STRINGS)
    if k == 1:
        return rnd.choice(ODD_NUMBERS)
    if k == 2:
        return rnd.choice([True, False, None])
    if k == 3 and depth < 4:
        return [odd_value(rnd, depth + 1) for _ in range(rnd.randrange(4))]
    if k == 4 and depth < 4:
        return {rnd.choice(["quantity", "status", "x", "_brand_id", "", "a" * 300]): odd_value(rnd, depth + 1)
                for _ in range(rnd.randrange(4))}
    if k == 5:
        return "".join(chr(rnd.choice([rnd.randrange(32, 127), rnd.randrange(0x80, 0x800),
                                       rnd.randrange(0x800, 0xd800)])) for _ in range(rnd.randrange(1, 40)))
    if k == 6:
        return [rnd.choice(ODD_STRINGS) for _ in range(rnd.randrange(1, 30))]
    if k == 7:
        return rnd.randrange(-10 ** 6, 10 ** 6)
    return "".join(rnd.choice("0123456789ABCDEFGHJKMNPQRSTVWXYZ-_.") for _ in range(rnd.randrange(0, 30)))


def mutate(rnd, args):
    a = json.loads(json.dumps(args))
    for _ in range(rnd.randrange(1, 4)):
        op = rnd.randrange(5)
        keys = list(a)
        if op == 0 and keys:
            del a[rnd.choice(keys)]
        elif op in (1, 2) and keys:
            a[rnd.choice(keys)] = odd_value(rnd)
        elif op == 3:
            a[rnd.choice(["_unknown", "_brand_id ", "_BRAND_ID", "_patch", "_serials", "_limit", "_cursor"])] = \
                odd_value(rnd)
        else:
            k = rnd.choice(keys) if keys else "_x"
            v = a.get(k)
            if isinstance(v, dict) and v:
                v[rnd.choice(list(v))] = odd_value(rnd)
            elif isinstance(v, list) and v:
                v[rnd.randrange(len(v))] = odd_value(rnd)
            else:
                a[k] = {"nested": odd_value(rnd)}
    return a


@pytest.fixture(scope="module")
def srv(server_factory):
    return server_factory(env={"BATCHD_RATE_LIMIT": "0", "BATCHD_MINT_CHUNK_UNITS": "1000"})


@pytest.fixture(scope="module")
def demo(run_batchd, srv):
    return seed_demo(run_batchd, srv, "products")


def valid_args(srv, demo):
    b, p = demo["brand_id"], demo["product_id"]
    # minting is bounded by the batch's quantity (20): no mutation can mint more
    mint_batch = new_batch(srv, demo, "FUZZ-MINT", quantity=20)
    upd_batch = new_batch(srv, demo, "FUZZ-UPD", quantity=10)
    job = ok(rpc(srv, "submit_mint_request", {"_brand_id": b, "_product_id": p, "_batch_id": mint_batch,
                                              "_requested_quantity": 2, "_identity_mode": "serial"}, demo["jwt"]))
    return {
        "create_product": {"_brand_id": b, "_name": "Fuzzed", "_gtin": "96385074", "_attributes": {"k": "v"}},
        "list_products": {"_brand_id": b},
        "create_product_batch": {"_brand_id": b, "_product_id": p, "_batch_number": "FZ", "_production_date":
                                 "2026-01-15", "_quantity": 5, "_facility_ref": "FAC", "_attributes": {}},
        "list_product_batches": {"_brand_id": b, "_product_id": p},
        "update_product_batch": {"_brand_id": b, "_batch_id": upd_batch,
                                 "_patch": {"quantity": 3, "facility_ref": "F2", "status": "active",
                                            "production_date": "2026-01-16", "attributes": {"a": 1}}},
        "submit_mint_request": {"_brand_id": b, "_product_id": p, "_batch_id": mint_batch, "_requested_quantity": 1,
                                "_identity_mode": "serial", "_idempotency_key": "fz", "_serials": ["A1"]},
        "get_mint_job": {"_brand_id": b, "_mint_job_id": job["mint_job_id"]},
        "list_mint_units": {"_brand_id": b, "_mint_job_id": job["mint_job_id"], "_limit": 10, "_cursor": None},
    }


def test_generated_bodies(srv, demo, psql):
    rnd = random.Random(SEED)
    fns = valid_args(srv, demo)
    s = requests.Session()
    seen = {}
    for fn, args in fns.items():
        for i in range(N):
            body = mutate(rnd, args)
            text = json.dumps(body)
            try:
                r = s.post(srv.url + "/rpc/" + fn, data=text, timeout=30,
                           headers={"Authorization": "Bearer " + rnd.choice([demo["jwt"]] * 4 + [demo["viewer_jwt"]]),
                                    "Content-Type": "application/json"})
            except requests.RequestException as e:  # pragma: no cover - the failure message is the point
                pytest.fail("%s body %d (seed %d): %s\n%s" % (fn, i, SEED, e, text[:2000]))
            assert r.status_code in (200, 400, 403, 404, 409, 413), \
                "%s body %d (seed %d): %d %s\n%s" % (fn, i, SEED, r.status_code, r.text[:500], text[:2000])
            j = r.json()
            if r.status_code != 200:
                assert set(j) == {"code", "message", "details", "hint"}, (fn, text, r.text)
                assert j["code"] and j["message"], (fn, text, r.text)
            seen.setdefault(fn, set()).add(r.status_code)
    # the mutations reached past validation as well as into it
    for fn, codes in seen.items():
        assert 400 in codes, (fn, codes)
    assert sum(200 in c for c in seen.values()) >= 4, seen
    assert requests.get(srv.url + "/healthz", timeout=5).status_code == 200
    # no batch took more units than its quantity
    assert psql("SELECT count(*) FROM pp_batches WHERE quantity IS NOT NULL AND units_reserved > quantity").strip() \
        == "0"


def test_raw_bodies(srv, demo):
    """Bytes that are not an argument object at all."""
    rnd = random.Random(SEED + 1)
    s = requests.Session()
    h = {"Authorization": "Bearer " + demo["jwt"], "Content-Type": "application/json"}
    shapes = [b"", b"null", b"[]", b"1", b"\"x\"", b"{", b"{\"_brand_id\":", b"{\"a\":1,\"a\":2}", b"\xff\xfe{}",
              b"{\"_brand_id\": \"\\ud800\"}", b"{\"_brand_id\": \"\\u0000\"}", b"{}" + b" " * 10000,
              b"[" * 200 + b"]" * 200, b"{\"a\":" * 100 + b"1" + b"}" * 100]
    shapes += [bytes(rnd.randrange(256) for _ in range(rnd.randrange(1, 200))) for _ in range(60)]
    for fn in ("list_products", "submit_mint_request", "update_product_batch"):
        for body in shapes:
            r = s.post(srv.url + "/rpc/" + fn, data=body, headers=h, timeout=30)
            assert r.status_code in (200, 400, 404, 413), (fn, body[:200], r.status_code, r.text[:300])
            if r.status_code != 200:
                assert set(r.json()) == {"code", "message", "details", "hint"}, (fn, body[:200], r.text)
    assert requests.get(srv.url + "/healthz", timeout=5).status_code == 200

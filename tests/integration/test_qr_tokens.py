"""QRKit's token API (/v1/tokens, scope tokens:manage) and how fast a key's
end reaches every process: a created key works at once; the api_key object
has exactly QRKit's fields and the secret only in the create/rotate answer;
a key grants only scopes it holds, a test key makes only test keys; 400s
name their param; rotation with a grace period of 0 ends the old key at
once and with 3 s three seconds later; DELETE, a revocation written in
SQL and a disabled tenant are 401 within a second in two processes that
had the key cached; expires_at ends a cached key on time; last_used_at is
written within the flush period (and at shutdown)."""
import datetime
import json
import time

import pytest
import requests

from conftest import seed_demo

FIELDS = {"id", "object", "name", "key_prefix", "environment", "scopes", "last_used_at", "expires_at", "created_at"}


@pytest.fixture(scope="module")
def srv(server_factory):
    return server_factory(env={"BATCHD_RATE_LIMIT": "0"})


@pytest.fixture(scope="module")
def srv2(server_factory):
    """A second process on the same database (its own key cache)."""
    return server_factory(env={"BATCHD_RATE_LIMIT": "0"})


@pytest.fixture(scope="module")
def keys(run_batchd, srv):
    return seed_demo(run_batchd, srv, "qr")


def H(key, **extra):
    h = {"Authorization": "Bearer " + key, "Content-Type": "application/json"}
    h.update(extra)
    return h


def post(srv, path, key, body, **headers):
    return requests.post(srv.url + path, headers=H(key, **headers),
                         data=body if isinstance(body, str) else json.dumps(body), timeout=10)


def create(srv, key, **body):
    body.setdefault("name", "k")
    body.setdefault("scopes", ["qr:read"])
    r = post(srv, "/v1/tokens", key, body)
    assert r.status_code == 201, r.text
    return r.json()


def codes(srv, key):
    """GET /v1/qr-codes with key: the status."""
    return requests.get(srv.url + "/v1/qr-codes", headers=H(key), timeout=10).status_code


def listing(srv, key, **params):
    r = requests.get(srv.url + "/v1/tokens", headers=H(key), params=params, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()


def all_tokens(srv, key):
    out, cursor = [], None
    while True:
        page = listing(srv, key, limit=100, **({"cursor": cursor} if cursor else {}))
        out += page["data"]
        if not page["has_more"]:
            return out
        cursor = page["next_cursor"]


def warm(key, *servers, n=5):
    """Several authenticated requests per process: the key is in each cache."""
    for s in servers:
        for _ in range(n):
            assert codes(s, key) == 200


def until_401(key, servers, within):
    """Seconds until every server answers 401 for key (fails after `within`)."""
    t0 = time.time()
    pending = list(servers)
    while pending:
        pending = [s for s in pending if codes(s, key) != 401]
        if pending and time.time() - t0 > within:
            raise AssertionError("%s still accept the key %.2f s later" % (pending, time.time() - t0))
        if pending:
            time.sleep(0.02)
    return time.time() - t0


def iso(dt):
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


# --- create ---------------------------------------------------------------------------------


def test_create_fields_and_the_key_works_at_once(srv, srv2, keys):
    r = post(srv, "/v1/tokens", keys["live_key"], {"name": "ci reader", "scopes": ["qr:read"]})
    assert r.status_code == 201, r.text
    k = r.json()
    assert set(k) == FIELDS | {"key"}, sorted(k)
    assert k["object"] == "api_key" and k["name"] == "ci reader" and k["environment"] == "live"
    assert k["scopes"] == ["qr:read"] and k["last_used_at"] is None and k["expires_at"] is None
    assert k["id"].startswith("key_") and k["key"].startswith("qr_live_")
    assert k["key_prefix"] == "qr_live_" + k["id"][4:] and k["key"].startswith(k["key_prefix"] + "_")
    datetime.datetime.strptime(k["created_at"], "%Y-%m-%dT%H:%M:%SZ")
    # works at once, in both processes, with exactly its scopes
    assert codes(srv, k["key"]) == 200 and codes(srv2, k["key"]) == 200
    r = post(srv, "/v1/qr-codes", k["key"], {"target": {"text": "x"}})
    assert r.status_code == 403 and r.json()["error"]["code"] == "insufficient_scope"
    # scopes are stored once each, in the canonical order
    k2 = create(srv, keys["live_key"], scopes=["tokens:manage", "qr:read", "qr:read", "analytics:read"])
    assert k2["scopes"] == ["qr:read", "analytics:read", "tokens:manage"]


def test_list_never_shows_secrets_and_pages(srv, keys):
    made = [create(srv, keys["live_key"], name="list-%d" % i) for i in range(3)]
    text = requests.get(srv.url + "/v1/tokens?limit=100", headers=H(keys["live_key"]), timeout=10).text
    for m in made:
        assert m["key"].rsplit("_", 1)[1] not in text
    assert keys["live_key"].rsplit("_", 1)[1] not in text
    everything = all_tokens(srv, keys["live_key"])
    assert all(set(t) == FIELDS for t in everything), [sorted(t) for t in everything if set(t) != FIELDS]
    ids = [t["id"] for t in everything]
    assert len(ids) == len(set(ids))
    for m in made:
        listed = next(t for t in everything if t["id"] == m["id"])
        assert listed == {f: m[f] for f in FIELDS}
    # newest first
    pos = [ids.index(m["id"]) for m in made]
    assert pos == sorted(pos, reverse=True)
    stamps = [t["created_at"] for t in everything]
    assert stamps == sorted(stamps, reverse=True)
    # pages of one
    page = listing(srv, keys["live_key"], limit=1)
    assert page["object"] == "list" and len(page["data"]) == 1 and page["has_more"] is True
    seen, cursor = [page["data"][0]["id"]], page["next_cursor"]
    while cursor:
        page = listing(srv, keys["live_key"], limit=1, cursor=cursor)
        seen += [t["id"] for t in page["data"]]
        cursor = page["next_cursor"] if page["has_more"] else None
    assert seen == ids
    r = requests.get(srv.url + "/v1/tokens?cursor=bm9wZQ", headers=H(keys["live_key"]), timeout=10)
    assert r.status_code == 400 and r.json()["error"]["param"] == "cursor"


def test_idempotency_key_replays_the_same_key(srv, keys):
    body = {"name": "idem", "scopes": ["qr:read"]}
    a = post(srv, "/v1/tokens", keys["live_key"], body, **{"Idempotency-Key": "tok-1"})
    b = post(srv, "/v1/tokens", keys["live_key"], body, **{"Idempotency-Key": "tok-1"})
    assert a.status_code == b.status_code == 201
    assert b.headers.get("Idempotent-Replayed") == "true" and a.json() == b.json()
    assert sum(1 for t in all_tokens(srv, keys["live_key"]) if t["id"] == a.json()["id"]) == 1


# --- who may do what --------------------------------------------------------------------------


def test_scope_escalation_is_403(srv, keys):
    manager = create(srv, keys["live_key"], scopes=["qr:read", "tokens:manage"])["key"]
    for scopes in (["qr:write"], ["qr:read", "analytics:read"], ["tokens:manage", "qr:write"]):
        r = post(srv, "/v1/tokens", manager, {"name": "more", "scopes": scopes})
        assert r.status_code == 403, r.text
        e = r.json()["error"]
        assert e["code"] == "insufficient_scope" and e["param"] == "scopes" and e["request_id"]
    assert create(srv, manager, scopes=["qr:read"])["scopes"] == ["qr:read"]
    assert create(srv, manager, scopes=["tokens:manage"])["scopes"] == ["tokens:manage"]
    # nor by rotating a key with more scopes than the caller's: the admin key survives
    admin = create(srv, keys["live_key"], scopes=["qr:read", "qr:write", "tokens:manage"])
    r = post(srv, "/v1/tokens/rotate", manager, {"id": admin["id"]})
    assert r.status_code == 403 and r.json()["error"]["code"] == "insufficient_scope", r.text
    assert codes(srv, admin["key"]) == 200
    assert sum(1 for t in all_tokens(srv, keys["live_key"]) if t["name"] == admin["name"]) >= 1


def test_missing_scope_is_403(srv, keys):
    ro = keys["read_only_key"]
    victim = create(srv, keys["live_key"])
    calls = [("POST", "/v1/tokens", {"name": "x", "scopes": ["qr:read"]}), ("GET", "/v1/tokens", None),
             ("POST", "/v1/tokens/rotate", {"id": victim["id"]}), ("DELETE", "/v1/tokens/" + victim["id"], None)]
    plain = create(srv, keys["live_key"], scopes=["qr:read", "qr:write", "analytics:read"])["key"]
    for key in (ro, plain):
        for method, path, body in calls:
            r = requests.request(method, srv.url + path, headers=H(key), timeout=10,
                                 data=json.dumps(body) if body is not None else None)
            assert r.status_code == 403, (method, path, r.text)
            e = r.json()["error"]
            assert e["code"] == "insufficient_scope" and "tokens:manage" in e["message"], r.text
    assert codes(srv, victim["key"]) == 200


def test_test_key_makes_only_test_keys(srv, keys):
    t = create(srv, keys["test_key"], name="from-test")
    assert t["environment"] == "test" and t["key"].startswith("qr_test_") and t["key_prefix"].startswith("qr_test_")
    assert codes(srv, t["key"]) == 200
    r = post(srv, "/v1/tokens", keys["test_key"], {"name": "x", "scopes": ["qr:read"], "environment": "live"})
    assert r.status_code == 403 and r.json()["error"]["param"] == "environment", r.text
    # a live key makes either
    lt = create(srv, keys["live_key"], name="live-made-test", environment="test")
    assert lt["environment"] == "test" and lt["key"].startswith("qr_test_")
    assert codes(srv, lt["key"]) == 200
    # and rotates a test key into a test key
    r = post(srv, "/v1/tokens/rotate", keys["live_key"], {"id": lt["id"]})
    assert r.status_code == 201, r.text
    lt2 = r.json()
    assert lt2["environment"] == "test" and lt2["key"].startswith("qr_test_" + lt2["id"][4:] + "_")
    assert codes(srv, lt2["key"]) == 200 and codes(srv, lt["key"]) == 401
    lt = lt2
    # a test key sees test keys only; a live key sees both
    assert {x["environment"] for x in all_tokens(srv, keys["test_key"])} == {"test"}
    live_view = {x["id"] for x in all_tokens(srv, keys["live_key"])}
    assert t["id"] in live_view and lt["id"] in live_view
    # a test key cannot end a live key
    live = create(srv, keys["live_key"])
    assert requests.delete(srv.url + "/v1/tokens/" + live["id"], headers=H(keys["test_key"])).status_code == 404
    assert post(srv, "/v1/tokens/rotate", keys["test_key"], {"id": live["id"]}).status_code == 404
    assert codes(srv, live["key"]) == 200


def test_other_workspace_is_404(srv, run_batchd, keys):
    other = seed_demo(run_batchd, srv, "qr", tenant="tokens-other")
    mine = create(srv, keys["live_key"])
    theirs = create(srv, other["live_key"])
    for key, victim in ((other["live_key"], mine), (keys["live_key"], theirs)):
        r = requests.delete(srv.url + "/v1/tokens/" + victim["id"], headers=H(key), timeout=10)
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found", r.text
        r = post(srv, "/v1/tokens/rotate", key, {"id": victim["id"]})
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found", r.text
        assert codes(srv, victim["key"]) == 200
        assert victim["id"] not in {t["id"] for t in all_tokens(srv, key)}
    for bad in ("key_doesnotexist", "key_", "nokeyprefix", "key_" + "x" * 40):
        assert requests.delete(srv.url + "/v1/tokens/" + bad, headers=H(keys["live_key"])).status_code == 404
        assert post(srv, "/v1/tokens/rotate", keys["live_key"], {"id": bad}).status_code in (400, 404)


# --- validation -----------------------------------------------------------------------------------

PAST = "2001-01-01T00:00:00Z"
CREATE_400 = [
    ({"scopes": ["qr:read"]}, "name"),
    ({"name": "", "scopes": ["qr:read"]}, "name"),
    ({"name": "x" * 201, "scopes": ["qr:read"]}, "name"),
    ({"name": 5, "scopes": ["qr:read"]}, "name"),
    ({"name": "x"}, "scopes"),
    ({"name": "x", "scopes": []}, "scopes"),
    ({"name": "x", "scopes": "qr:read"}, "scopes"),
    ({"name": "x", "scopes": ["qr:read", "qr:admin"]}, "scopes"),
    ({"name": "x", "scopes": [1]}, "scopes"),
    ({"name": "x", "scopes": ["qr:read"], "environment": "prod"}, "environment"),
    ({"name": "x", "scopes": ["qr:read"], "environment": True}, "environment"),
    ({"name": "x", "scopes": ["qr:read"], "expires_at": "tomorrow"}, "expires_at"),
    ({"name": "x", "scopes": ["qr:read"], "expires_at": "2099-01-01T00:00:00"}, "expires_at"),
    ({"name": "x", "scopes": ["qr:read"], "expires_at": PAST}, "expires_at"),
    ({"name": "x", "scopes": ["qr:read"], "expires_at": 4102444800}, "expires_at"),
]
ROTATE_400 = [
    ({}, "id"),
    ({"id": 7}, "id"),
    ({"id": "sk_123"}, "id"),
    ({"id": "key_x", "grace_period_seconds": -1}, "grace_period_seconds"),
    ({"id": "key_x", "grace_period_seconds": "5"}, "grace_period_seconds"),
    ({"id": "key_x", "grace_period_seconds": 1.5}, "grace_period_seconds"),
    ({"id": "key_x", "grace_period_seconds": 10 ** 9}, "grace_period_seconds"),
]


@pytest.mark.parametrize("body,param", CREATE_400)
def test_create_validation(srv, keys, body, param):
    r = post(srv, "/v1/tokens", keys["live_key"], body)
    assert r.status_code == 400, r.text
    e = r.json()["error"]
    assert e["code"] == "invalid_request" and e["param"] == param and e["message"] and e["request_id"], e


@pytest.mark.parametrize("body,param", ROTATE_400)
def test_rotate_validation(srv, keys, body, param):
    r = post(srv, "/v1/tokens/rotate", keys["live_key"], body)
    assert r.status_code == 400, r.text
    e = r.json()["error"]
    assert e["code"] == "invalid_request" and e["param"] == param, e


def test_bodies_that_are_not_objects(srv, keys):
    for path in ("/v1/tokens", "/v1/tokens/rotate"):
        for body in ("not json", "[1]", ""):
            r = post(srv, path, keys["live_key"], body)
            assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_request", (path, body, r.text)


# --- ends: rotation, revocation, expiry, disabled tenants ---------------------------------------------


def test_rotate_without_grace_ends_the_old_key_at_once(srv, srv2, keys, psql):
    old = create(srv, keys["live_key"], name="rotate-0", scopes=["qr:read", "analytics:read"],
                 expires_at=iso(datetime.datetime.utcnow() + datetime.timedelta(days=30)))
    warm(old["key"], srv, srv2)
    r = post(srv, "/v1/tokens/rotate", keys["live_key"], {"id": old["id"]})
    assert r.status_code == 201, r.text
    new = r.json()
    assert set(new) == FIELDS | {"key"}
    assert new["id"] != old["id"] and new["key"] != old["key"]
    for f in ("name", "scopes", "environment", "expires_at"):
        assert new[f] == old[f], f
    # the process that rotated refuses it on the very next request; the other within a second
    assert codes(srv, old["key"]) == 401
    until_401(old["key"], [srv, srv2], within=1.0)
    assert codes(srv, new["key"]) == 200 and codes(srv2, new["key"]) == 200
    listed = {t["id"] for t in all_tokens(srv, keys["live_key"])}
    assert new["id"] in listed and old["id"] not in listed
    assert psql("SELECT rotated_to FROM qr_api_keys WHERE id = '%s'" % old["id"][4:]) == new["id"][4:]
    # a rotated key cannot be rotated or revoked again
    assert post(srv, "/v1/tokens/rotate", keys["live_key"], {"id": old["id"]}).status_code == 404
    assert requests.delete(srv.url + "/v1/tokens/" + old["id"], headers=H(keys["live_key"])).status_code == 404


def test_rotate_with_grace_keeps_the_old_key_for_it(srv, srv2, keys):
    old = create(srv, keys["live_key"], name="rotate-3")
    warm(old["key"], srv, srv2)
    t0 = time.time()
    r = post(srv, "/v1/tokens/rotate", keys["live_key"], {"id": old["id"], "grace_period_seconds": 3})
    assert r.status_code == 201, r.text
    new = r.json()
    assert new["expires_at"] is None
    # the old key in its grace period: listed, with its end as expires_at
    listed = next(t for t in all_tokens(srv, keys["live_key"]) if t["id"] == old["id"])
    end = datetime.datetime.strptime(listed["expires_at"], "%Y-%m-%dT%H:%M:%SZ").replace(
        tzinfo=datetime.timezone.utc).timestamp()
    assert t0 + 1 < end < t0 + 5, (listed, t0)
    assert codes(srv, old["key"]) == 200 and codes(srv2, old["key"]) == 200
    assert codes(srv, new["key"]) == 200 and codes(srv2, new["key"]) == 200
    time.sleep(max(0.0, t0 + 2.0 - time.time()))
    assert codes(srv, old["key"]) == 200 and codes(srv2, old["key"]) == 200  # still within the grace
    until_401(old["key"], [srv, srv2], within=max(0.5, t0 + 4.5 - time.time()))
    assert time.time() - t0 >= 2.5
    assert codes(srv, new["key"]) == 200 and codes(srv2, new["key"]) == 200
    # rotating again during a grace never lengthens it
    old2 = create(srv, keys["live_key"], name="rotate-twice")
    assert post(srv, "/v1/tokens/rotate", keys["live_key"], {"id": old2["id"], "grace_period_seconds": 1}).status_code == 201
    assert post(srv, "/v1/tokens/rotate", keys["live_key"], {"id": old2["id"], "grace_period_seconds": 600}).status_code == 201
    time.sleep(1.3)
    until_401(old2["key"], [srv, srv2], within=1.0)


def test_delete_is_401_within_a_second_in_two_processes(srv, srv2, keys):
    k = create(srv, keys["live_key"], name="to-delete")
    warm(k["key"], srv, srv2)
    r = requests.delete(srv.url + "/v1/tokens/" + k["id"], headers=H(keys["live_key"]), timeout=10)
    assert r.status_code == 200, r.text
    assert r.json() == {"id": k["id"], "object": "api_key", "deleted": True}
    assert codes(srv, k["key"]) == 401
    r = requests.get(srv2.url + "/v1/qr-codes", headers=H(k["key"]), timeout=10)
    took = until_401(k["key"], [srv, srv2], within=1.0)
    assert took < 1.0
    r = requests.get(srv2.url + "/v1/qr-codes", headers=H(k["key"]), timeout=10)
    assert r.status_code == 401 and r.json()["error"]["code"] == "unauthenticated"
    # the other process's own DELETE reaches the first one too
    k2 = create(srv2, keys["live_key"], name="to-delete-2")
    warm(k2["key"], srv, srv2)
    assert requests.delete(srv2.url + "/v1/tokens/" + k2["id"], headers=H(keys["live_key"])).status_code == 200
    until_401(k2["key"], [srv, srv2], within=1.0)
    assert requests.delete(srv.url + "/v1/tokens/" + k2["id"], headers=H(keys["live_key"])).status_code == 404
    assert k["id"] not in {t["id"] for t in all_tokens(srv, keys["live_key"])}


def test_revocation_written_in_sql_reaches_both(srv, srv2, keys, psql):
    """What `batchd token revoke` does: an UPDATE, no request to either process."""
    k = create(srv, keys["live_key"], name="sql-revoke")
    warm(k["key"], srv, srv2)
    psql("UPDATE qr_api_keys SET revoked_at = now() WHERE id = '%s'" % k["id"][4:])
    until_401(k["key"], [srv, srv2], within=1.0)
    # an expiry moved into the past, and a deleted row, the same
    k2 = create(srv, keys["live_key"], name="sql-expire")
    warm(k2["key"], srv, srv2)
    psql("UPDATE qr_api_keys SET expires_at = now() WHERE id = '%s'" % k2["id"][4:])
    until_401(k2["key"], [srv, srv2], within=1.0)
    k3 = create(srv, keys["live_key"], name="sql-delete")
    warm(k3["key"], srv, srv2)
    psql("DELETE FROM qr_api_keys WHERE id = '%s'" % k3["id"][4:])
    until_401(k3["key"], [srv, srv2], within=1.0)


def test_expires_at_ends_a_cached_key_on_time(srv, srv2, keys):
    t0 = time.time()
    k = create(srv, keys["live_key"], name="short-lived",
               expires_at=iso(datetime.datetime.utcfromtimestamp(int(t0) + 3)))
    assert k["expires_at"] == iso(datetime.datetime.utcfromtimestamp(int(t0) + 3))
    warm(k["key"], srv, srv2)
    until_401(k["key"], [srv, srv2], within=int(t0) + 3 + 1.0 - time.time())
    assert time.time() >= int(t0) + 2.9


def test_disabled_tenant_is_401_within_a_second(srv, srv2, run_batchd, psql):
    other = seed_demo(run_batchd, srv, "qr", tenant="tokens-disabled")
    made = create(srv, other["live_key"], name="made-before")
    for key in (other["live_key"], other["test_key"], made["key"]):
        warm(key, srv, srv2, n=3)
    psql("UPDATE bd_tenants SET disabled_at = now() WHERE name = 'tokens-disabled'")
    until_401(other["live_key"], [srv, srv2], within=1.0)
    for key in (other["test_key"], made["key"]):
        assert codes(srv, key) == 401 and codes(srv2, key) == 401
    # enabled again: the same keys work again
    psql("UPDATE bd_tenants SET disabled_at = NULL WHERE name = 'tokens-disabled'")
    deadline = time.time() + 2
    while codes(srv2, made["key"]) != 200 and time.time() < deadline:
        time.sleep(0.05)
    assert codes(srv, made["key"]) == 200 and codes(srv2, made["key"]) == 200


# --- last_used_at ------------------------------------------------------------------------------------


def test_last_used_at_is_written_within_the_flush_period(srv, srv2, keys, psql):
    k = create(srv, keys["live_key"], name="used")
    unused = create(srv, keys["live_key"], name="unused")
    assert codes(srv2, k["key"]) == 200
    t0 = time.time()
    stamp = None
    while time.time() - t0 < 8:
        stamp = next(t for t in all_tokens(srv, keys["live_key"]) if t["id"] == k["id"])["last_used_at"]
        if stamp:
            break
        time.sleep(0.25)
    assert stamp, "last_used_at still null %.1f s after a use" % (time.time() - t0)
    assert time.time() - t0 < 6.5
    used = datetime.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.timezone.utc).timestamp()
    assert t0 - 2 <= used <= time.time() + 1
    assert psql("SELECT last_used_at IS NULL FROM qr_api_keys WHERE id = '%s'" % unused["id"][4:]) == "t"


def test_last_used_at_is_written_at_shutdown(server_factory, keys, psql):
    s = server_factory(env={"BATCHD_RATE_LIMIT": "0"})
    k = create(s, keys["live_key"], name="used-at-shutdown")
    assert codes(s, k["key"]) == 200
    assert s.stop() == 0  # no time for the periodic write: the shutdown flush must do it
    assert psql("SELECT last_used_at IS NOT NULL FROM qr_api_keys WHERE id = '%s'" % k["id"][4:]) == "t"

"""The /business surface: tokens, permissions, error bodies, templates and
seed-demo, against the real server and PostgreSQL."""
import hashlib
import json
import secrets
import string

import pytest
import requests

ALL_PERMS = ["batches:view", "batches:create", "batches:approve", "templates:view", "templates:manage",
             "certificates:view", "certificates:manage"]
B62 = string.digits + string.ascii_uppercase + string.ascii_lowercase


@pytest.fixture(scope="module")
def srv(server_factory):
    return server_factory(env={"BATCHD_RATE_LIMIT": "0"})


def seed_tenant(run_batchd, srv, tenant):
    out = run_batchd("seed-demo", "--tenant", tenant, "--json", env={"BATCHD_PUBLIC_URL": srv.url})
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)["business"]


@pytest.fixture(scope="module")
def demo(run_batchd, srv):
    return seed_tenant(run_batchd, srv, "bizauth")


@pytest.fixture(scope="module")
def rival(run_batchd, srv):
    return seed_tenant(run_batchd, srv, "bizrival")


def make_token(psql, user_uuid, perms):
    """A token with exactly `perms` for the user, stored as batchd stores them."""
    tid = "".join(secrets.choice(B62) for _ in range(12))
    secret = "".join(secrets.choice(B62) for _ in range(32))
    arr = "{" + ",".join(perms) + "}"
    psql("INSERT INTO biz_tokens (id, user_id, permissions, secret_hash) SELECT '%s', id, '%s', '%s' FROM biz_users"
         " WHERE uuid = '%s'" % (tid, arr, hashlib.sha256(secret.encode()).hexdigest(), user_uuid))
    return "biz_%s_%s" % (tid, secret)


def get(srv, path, token=None, **kw):
    h = {"Authorization": "Bearer " + token} if token else {}
    return requests.get(srv.url + path, headers=h, **kw)


def post(srv, path, token=None, **kw):
    h = {"Authorization": "Bearer " + token} if token else {}
    return requests.post(srv.url + path, headers=h, **kw)


def test_seed_shape(demo):
    assert list(demo) == ["token", "institution_id", "user_uuid", "signatories", "archived_user_uuid",
                          "unsigned_user_uuid", "view_only_token", "template_ids"]
    assert [s["auto_approve"] for s in demo["signatories"]] == [True, False]
    assert all(s["token"].startswith("biz_") for s in demo["signatories"])
    assert set(demo["template_ids"]) == {"plain", "two_signatories", "default_signatories"}
    assert isinstance(demo["institution_id"], int)


def test_seed_is_idempotent(run_batchd, srv, psql):
    a = seed_tenant(run_batchd, srv, "bizagain")
    b = seed_tenant(run_batchd, srv, "bizagain")
    for k in ("institution_id", "user_uuid", "archived_user_uuid", "unsigned_user_uuid", "template_ids"):
        assert a[k] == b[k]
    # the previous run's tokens are replaced
    assert get(srv, "/business/batches", a["token"]).status_code == 401
    assert get(srv, "/business/batches", b["token"]).status_code == 200
    # real PNG signatures for everyone but the unsigned user
    out = psql("SELECT encode(substr(signature_png, 1, 8), 'hex') FROM biz_users WHERE uuid = '%s'"
               % b["signatories"][0]["user_uuid"])
    assert "89504e470d0a1a0a" in out
    out = psql("SELECT signature_png IS NULL FROM biz_users WHERE uuid = '%s'" % b["unsigned_user_uuid"])
    assert out.strip().endswith("t")


@pytest.mark.parametrize("auth", [None, "Bearer", "Bearer nope", "Basic abc", "Bearer biz_short_x",
                                  "Bearer biz_AAAAAAAAAAAA_" + "A" * 32])
def test_401(srv, auth):
    h = {"Authorization": auth} if auth else {}
    r = requests.get(srv.url + "/business/batches", headers=h)
    assert r.status_code == 401
    assert r.json()["message"] == "Unauthorized - Invalid API token"


def test_wrong_secret_and_archived(srv, demo, psql):
    tid = demo["token"].split("_")[1]
    assert get(srv, "/business/batches", "biz_%s_%s" % (tid, "B" * 32)).status_code == 401
    tok = make_token(psql, demo["archived_user_uuid"], ALL_PERMS)
    assert get(srv, "/business/batches", tok).status_code == 401
    tok = make_token(psql, demo["user_uuid"], ALL_PERMS)
    assert get(srv, "/business/batches", tok).status_code == 200
    psql("UPDATE biz_tokens SET revoked_at = now() WHERE id = '%s'" % tok.split("_")[1])
    assert get(srv, "/business/batches", tok).status_code == 401


ENDPOINTS = [
    ("GET", "/business/batches", "batches:view"),
    ("GET", "/business/batches/9d3a6b04-c4e5-485f-b945-8f1fd66396ce", "batches:view"),
    ("GET", "/business/batches/9d3a6b04-c4e5-485f-b945-8f1fd66396ce/errors.csv", "batches:view"),
    ("POST", "/business/batches", "batches:create"),
    ("POST", "/business/batches/9d3a6b04-c4e5-485f-b945-8f1fd66396ce/approve", "batches:approve"),
    ("GET", "/business/certificate-templates", "templates:view"),
    ("POST", "/business/certificate-templates", "templates:manage"),
    ("GET", "/business/certificate-templates/9d3a6b04-c4e5-485f-b945-8f1fd66396ce", "templates:view"),
]


@pytest.mark.parametrize("method,path,perm", ENDPOINTS)
def test_403_names_the_permission(srv, demo, psql, method, path, perm):
    tok = make_token(psql, demo["user_uuid"], [p for p in ALL_PERMS if p != perm])
    kw = {"files": {"csv_file": ("r.csv", b"RecipientsEmail,RecipientsName\na@b.co,A\n")}} if method == "POST" else {}
    r = requests.request(method, srv.url + path, headers={"Authorization": "Bearer " + tok}, **kw)
    assert r.status_code == 403, r.text
    body = r.json()
    assert body["message"] == "Forbidden - Insufficient permissions"
    assert body["required_permission"] == perm
    # with only that permission the request gets past authorisation
    tok = make_token(psql, demo["user_uuid"], [perm])
    r = requests.request(method, srv.url + path, headers={"Authorization": "Bearer " + tok}, **kw)
    assert r.status_code != 403 and r.status_code != 401, r.text


def test_view_only_token(srv, demo):
    assert get(srv, "/business/batches", demo["view_only_token"]).status_code == 200
    r = get(srv, "/business/certificate-templates", demo["view_only_token"])
    assert r.status_code == 403 and r.json()["required_permission"] == "templates:view"


def test_404_body(srv, demo):
    r = get(srv, "/business/batches/9d3a6b04-c4e5-485f-b945-8f1fd66396ce", demo["token"])
    assert r.status_code == 404
    body = r.json()
    assert body["message"] == "The requested ID 9d3a6b04-c4e5-485f-b945-8f1fd66396ce was not found."
    assert body["error"] == "resource_not_found"
    r = get(srv, "/business/batches/not-a-uuid", demo["token"])
    assert r.status_code == 404 and r.json()["message"] == "The requested ID not-a-uuid was not found."


def test_templates(srv, demo):
    r = get(srv, "/business/certificate-templates", demo["token"])
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["meta"]["total"] == 3 and len(body["data"]) == 3
    by_id = {t["id"]: t for t in body["data"]}
    ids = demo["template_ids"]
    plain, two, dflt = by_id[ids["plain"]], by_id[ids["two_signatories"]], by_id[ids["default_signatories"]]
    assert list(plain) == ["id", "institution_id", "name", "screenshot", "has_signatures", "has_default_signatories",
                           "requires_signature_setup", "signatory_fields", "default_signatories", "created_at",
                           "updated_at"]
    assert plain["institution_id"] == demo["institution_id"]
    assert (plain["has_signatures"], plain["has_default_signatories"], plain["requires_signature_setup"]) == \
        (False, False, False)
    assert plain["signatory_fields"] == [] and plain["default_signatories"] is None
    assert (two["has_signatures"], two["has_default_signatories"], two["requires_signature_setup"]) == \
        (True, False, True)
    assert two["signatory_fields"] == ["signatory_1", "signatory_2"]
    assert (dflt["has_signatures"], dflt["has_default_signatories"], dflt["requires_signature_setup"]) == \
        (True, True, False)
    d = dflt["default_signatories"]
    assert [x["signatory_index"] for x in d] == [1, 2]
    assert [x["auto_approve"] for x in d] == [True, False]
    assert list(d[0]) == ["id", "signatory_index", "institution_user_id", "display_name", "designation",
                          "auto_approve", "user"]
    assert list(d[0]["user"]) == ["id", "uuid", "first_name", "last_name", "email", "signatory_name",
                                  "signatory_designation"]
    assert d[0]["user"]["uuid"] == demo["signatories"][0]["user_uuid"]
    assert d[0]["user"]["id"] == d[0]["institution_user_id"]
    assert plain["created_at"].endswith("Z") and len(plain["created_at"]) == 27
    assert plain["screenshot"].startswith(srv.url + "/business/certificate-templates/")

    r = get(srv, "/business/certificate-templates/" + ids["two_signatories"], demo["token"])
    assert r.status_code == 200
    one = r.json()["data"]
    assert one["id"] == ids["two_signatories"] and "layout" in one
    assert [e["field"] for e in one["layout"]["elements"] if e["type"] == "signature"] == \
        ["signatory_1", "signatory_2"]


def test_cross_institution(srv, demo, rival):
    r = get(srv, "/business/certificate-templates/" + demo["template_ids"]["plain"], rival["token"])
    assert r.status_code == 404 and r.json()["error"] == "resource_not_found"
    ids = {t["id"] for t in get(srv, "/business/certificate-templates", rival["token"]).json()["data"]}
    assert not ids & set(demo["template_ids"].values())


def test_rate_limit_headers(server_factory, run_batchd):
    s = server_factory(env={"BATCHD_RATE_LIMIT": "1", "BATCHD_RATE_BURST": "2"})
    b = seed_tenant(run_batchd, s, "bizrate")
    codes = [get(s, "/business/batches", b["token"]) for _ in range(4)]
    assert codes[0].status_code == 200 and codes[0].headers["X-RateLimit-Limit"]
    assert codes[-1].status_code == 429 and "Retry-After" in codes[-1].headers


LAYOUT = {"page": {"width": 842, "height": 595}, "background": {"color": "#ffffff"},
          "elements": [{"type": "text", "text": "{{RecipientsName}}", "x": 421, "y": 200, "size": 28, "align": "center"},
                       {"type": "qr", "x": 40, "y": 450, "size": 100},
                       {"type": "signature", "field": "signatory_1", "x": 300, "y": 400, "width": 160, "height": 60},
                       {"type": "signature", "field": "signatory_2", "x": 520, "y": 400, "width": 160, "height": 60}]}


def post_json(srv, token, body, **headers):
    h = {"Authorization": "Bearer " + token, "Content-Type": "application/json"}
    h.update(headers)
    return requests.post(srv.url + "/business/certificate-templates", headers=h,
                         data=body if isinstance(body, (str, bytes)) else json.dumps(body))


def test_create_template(srv, demo):
    s1, s2 = demo["signatories"]
    body = {"name": "Diploma", "layout": LAYOUT,
            "default_signatories": [{"signatory_index": 2, "user_uuid": s2["user_uuid"], "display_name": "Dr. R",
                                     "designation": "Registrar", "auto_approve": False},
                                    {"signatory_index": 1, "user_uuid": s1["user_uuid"], "auto_approve": True}]}
    r = post_json(srv, demo["token"], body)
    assert r.status_code == 201, r.text
    t = r.json()["data"]
    assert t["name"] == "Diploma" and t["signatory_fields"] == ["signatory_1", "signatory_2"]
    assert t["has_default_signatories"] is True and t["requires_signature_setup"] is False
    assert [d["signatory_index"] for d in t["default_signatories"]] == [1, 2]
    assert t["default_signatories"][1]["display_name"] == "Dr. R" and t["default_signatories"][0]["auto_approve"]
    assert t["layout"] == LAYOUT
    g = get(srv, "/business/certificate-templates/" + t["id"], demo["token"])
    assert g.status_code == 200 and g.json()["data"]["id"] == t["id"]
    # no defaults: requires setup
    r = post_json(srv, demo["token"], {"name": "Bare", "layout": LAYOUT})
    assert r.status_code == 201 and r.json()["data"]["requires_signature_setup"] is True
    # replayed with the same Idempotency-Key
    a = post_json(srv, demo["token"], {"name": "Once", "layout": LAYOUT}, **{"Idempotency-Key": "tpl-once"})
    b = post_json(srv, demo["token"], {"name": "Once", "layout": LAYOUT}, **{"Idempotency-Key": "tpl-once"})
    assert a.status_code == 201 and b.status_code == 201 and a.json()["data"]["id"] == b.json()["data"]["id"]
    assert b.headers.get("Idempotent-Replayed") == "true"


def test_create_template_errors(srv, demo, psql):
    before = psql("SELECT count(*) FROM biz_templates")
    r = post_json(srv, demo["token"], {})
    assert r.status_code == 422
    assert r.json()["errors"] == {"name": ["The name field is required."], "layout": ["The layout field is required."]}
    assert r.json()["message"] == "The name field is required. (and 1 more error)"
    bad = json.loads(json.dumps(LAYOUT))
    bad["elements"][0]["size"] = 9999
    r = post_json(srv, demo["token"], {"name": "x" * 256, "layout": bad})
    e = r.json()["errors"]
    assert r.status_code == 422 and e["name"] == ["The name field must not be greater than 255 characters."]
    assert list(e)[1] == "layout.elements.0.size" and "between 1 and 400" in e["layout.elements.0.size"][0]
    r = post_json(srv, demo["token"], {"name": "n", "layout": [1]})
    assert r.json()["errors"] == {"layout": ["The layout field must be an object."]}
    s1 = demo["signatories"][0]["user_uuid"]
    r = post_json(srv, demo["token"], {"name": "n", "layout": LAYOUT, "default_signatories": [
        {"signatory_index": 1, "user_uuid": demo["archived_user_uuid"]},
        {"signatory_index": 1, "user_uuid": demo["unsigned_user_uuid"]},
        {"signatory_index": 3, "user_uuid": "nope"}, {"user_uuid": s1, "auto_approve": "yes"}]})
    e = r.json()["errors"]
    assert e["default_signatories.0.user_uuid"] == ["The selected signatory is archived."]
    assert e["default_signatories.1.user_uuid"] == ["The selected signatory has no signature uploaded."]
    assert e["default_signatories.1.signatory_index"] == ["The default_signatories.1.signatory_index field has a duplicate value."]
    assert e["default_signatories.2.user_uuid"] == ["The default_signatories.2.user_uuid field must be a valid UUID."]
    assert e["default_signatories.2.signatory_index"] == ["The default_signatories.2.signatory_index field must be between 1 and 2."]
    assert e["default_signatories.3.signatory_index"] == ["The default_signatories.3.signatory_index field is required."]
    assert e["default_signatories.3.auto_approve"] == ["The default_signatories.3.auto_approve field must be true or false."]
    r = post_json(srv, demo["token"], {"name": "n", "layout": LAYOUT, "default_signatories": [
        {"signatory_index": 1, "user_uuid": s1}]})
    assert r.json()["errors"] == {"default_signatories": [
        "The default signatories must fill every one of the layout's 2 signatory fields."]}
    r = post_json(srv, demo["token"], "{not json")
    assert r.status_code == 400 and "JSON" in r.json()["message"]
    assert psql("SELECT count(*) FROM biz_templates") == before
    # templates:view alone cannot create
    r = post_json(srv, demo["signatories"][0]["token"], {"name": "n", "layout": LAYOUT})
    assert r.status_code == 403 and r.json()["required_permission"] == "templates:manage"


def test_created_template_drives_batches(srv, demo):
    s1, s2 = demo["signatories"]
    t = post_json(srv, demo["token"], {"name": "For batch", "layout": LAYOUT, "default_signatories": [
        {"signatory_index": 1, "user_uuid": s1["user_uuid"]}, {"signatory_index": 2, "user_uuid": s2["user_uuid"]}]})
    tid = t.json()["data"]["id"]
    r = requests.post(srv.url + "/business/batches", headers={"Authorization": "Bearer " + demo["token"]},
                      files=[("name", (None, "b")), ("template_id", (None, tid)),
                             ("csv_file", ("r.csv", b"RecipientsEmail,RecipientsName\na@b.co,A\n"))])
    assert r.status_code == 201, r.text
    # s1 auto-approves as a user; s2 does not
    assert r.json()["data"]["status"] == "waiting_for_approval"


def test_screenshot(srv, demo):
    t = get(srv, "/business/certificate-templates/" + demo["template_ids"]["default_signatories"], demo["token"])
    url = t.json()["data"]["screenshot"]
    r = requests.get(url)  # public, like a storage URL
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"] == "image/png" and r.content[:8] == b"\x89PNG\r\n\x1a\n"
    w, h = int.from_bytes(r.content[16:20], "big"), int.from_bytes(r.content[20:24], "big")
    assert (w, h) == (1684, 1190)  # 842 x 595 points at 144 dpi
    again = requests.get(url)
    assert again.status_code == 200 and again.content == r.content
    for bad in ("9d3a6b04-c4e5-485f-b945-8f1fd66396ce", "nope"):
        r = requests.get(srv.url + "/business/certificate-templates/%s/screenshot.png" % bad)
        assert r.status_code == 404 and r.json()["error"] == "resource_not_found"

"""Webhooks of the /business surface (issue 25): endpoint management in the
API's Laravel style (permission webhooks:manage) and the events its state
changes write to the outbox in the same transaction (batch.waiting_for_approval,
batch.processing, batch.completed, batch.partially_completed, batch.failed,
certificate.revoked). Delivery itself is the core's (test_webhooks_core.py);
here the outbox rows and, when a receiver is reachable, the deliveries."""
import base64
import json
import time

import pytest
import requests

from webhooklib import Receiver, check_signatures

HEADER = "RecipientsEmail,RecipientsName,IssueDate,Course\r\n"


@pytest.fixture(scope="module")
def srv(server_factory):
    return server_factory(env={"BATCHD_RATE_LIMIT": "0", "BATCHD_WEBHOOK_ALLOW_HTTP": "1",
                               "BATCHD_WEBHOOK_ALLOW_PRIVATE": "1", "BATCHD_WEBHOOK_RETRY_BASE_MS": "100",
                               "BATCHD_MAX_WEBHOOKS": "3"})


def seed(run_batchd, srv, tenant):
    out = run_batchd("seed-demo", "--tenant", tenant, "--json", env={"BATCHD_PUBLIC_URL": srv.url})
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)["business"]


@pytest.fixture(scope="module")
def demo(run_batchd, srv):
    return seed(run_batchd, srv, "bizhooks")


@pytest.fixture(scope="module")
def rival(run_batchd, srv):
    return seed(run_batchd, srv, "bizhooksrival")


@pytest.fixture(scope="module")
def receiver():
    r = Receiver()
    yield r
    r.close()


def H(tok):
    return {"Authorization": "Bearer " + tok, "Content-Type": "application/json"}


def create(srv, tok, body):
    return requests.post(srv.url + "/business/webhooks", headers=H(tok), data=json.dumps(body))


def upload(srv, tok, template_id, rows, signatories=()):
    files = [("csv_file", ("r.csv", (HEADER + "".join(rows)).encode(), "text/csv")), ("name", (None, "Hooked")),
             ("template_id", (None, template_id))]
    for i, (uuid_, idx) in enumerate(signatories):
        files += [("signatories[%d][user_uuid]" % i, (None, uuid_)), ("signatories[%d][index]" % i, (None, str(idx)))]
    r = requests.post(srv.url + "/business/batches", headers={"Authorization": "Bearer " + tok}, files=files)
    assert r.status_code == 201, r.text
    return r.json()["data"]


def wait_status(srv, tok, bid, statuses=("completed", "partially_completed", "failed")):
    deadline = time.time() + 90
    while True:
        b = requests.get(srv.url + "/business/batches/" + bid, headers=H(tok)).json()["data"]
        if b["status"] in statuses:
            return b
        assert time.time() < deadline, b
        time.sleep(0.2)


def events(psql, inst, since=""):
    out = psql("SELECT type || '|' || data::text FROM bd_webhook_events WHERE surface = 'business' AND owner = '%d'"
               " ORDER BY created_at, id" % inst)
    return [(line.split("|", 1)[0], json.loads(line.split("|", 1)[1])) for line in out.splitlines() if line.strip()]


def test_crud_and_validation(srv, demo, rival):
    tok = demo["token"]
    r = create(srv, tok, {"url": "https://hooks.example.com/in", "events": ["batch.completed", "certificate.revoked"],
                          "description": "ERP"})
    assert r.status_code == 201, r.text
    ep = r.json()["data"]
    assert ep["id"].startswith("wh_") and ep["object"] == "webhook_endpoint"
    assert ep["url"] == "https://hooks.example.com/in" and ep["events"] == ["batch.completed", "certificate.revoked"]
    assert ep["description"] == "ERP" and ep["is_active"] is True and ep["created_at"].endswith("Z")
    secret = ep["secret"]
    assert secret.startswith("whsec_") and len(base64.b64decode(secret[6:])) == 32
    got = requests.get(srv.url + "/business/webhooks/" + ep["id"], headers=H(tok))
    assert got.status_code == 200 and "secret" not in got.json()["data"]
    page = requests.get(srv.url + "/business/webhooks", headers=H(tok)).json()
    assert [e["id"] for e in page["data"]] == [ep["id"]] and page["meta"]["total"] == 1
    assert secret not in json.dumps(page)
    # patch
    r = requests.patch(srv.url + "/business/webhooks/" + ep["id"], headers=H(tok),
                       data=json.dumps({"events": ["*"], "is_active": False, "description": None}))
    assert r.status_code == 200, r.text
    d = r.json()["data"]
    assert d["events"] == ["*"] and d["is_active"] is False and d["description"] is None
    assert d["url"] == ep["url"]
    # rotate: a new secret, once
    r = requests.post(srv.url + "/business/webhooks/%s/rotate-secret" % ep["id"], headers=H(tok))
    assert r.status_code == 200 and r.json()["data"]["secret"] != secret
    # validation: every error at once, Laravel-shaped
    r = create(srv, tok, {"url": "ftp://x", "events": ["batch.exploded", "batch.completed", "batch.completed"],
                          "description": "x" * 501})
    assert r.status_code == 422, r.text
    errs = r.json()["errors"]
    assert set(errs) == {"url", "events", "description"}, errs
    assert "The selected events.0 is invalid." in errs["events"]
    assert "The events.2 field has a duplicate value." in errs["events"]
    assert create(srv, tok, {}).json()["errors"].keys() == {"url", "events"}
    r = requests.post(srv.url + "/business/webhooks", headers=H(tok), data="[1]")
    assert r.status_code == 422
    # the other institution sees nothing of it
    for method, path in [("GET", "/business/webhooks/" + ep["id"]), ("PATCH", "/business/webhooks/" + ep["id"]),
                         ("DELETE", "/business/webhooks/" + ep["id"]),
                         ("POST", "/business/webhooks/%s/rotate-secret" % ep["id"]),
                         ("GET", "/business/webhooks/%s/deliveries" % ep["id"])]:
        r = requests.request(method, srv.url + path, headers=H(rival["token"]), data="{}")
        assert r.status_code == 404, (method, path, r.text)
    assert requests.get(srv.url + "/business/webhooks", headers=H(rival["token"])).json()["data"] == []
    # permissions: the view-only token lacks webhooks:manage
    r = requests.get(srv.url + "/business/webhooks", headers=H(demo["view_only_token"]))
    assert r.status_code == 403 and r.json()["required_permission"] == "webhooks:manage"
    assert requests.get(srv.url + "/business/webhooks").status_code == 401
    # delete
    r = requests.delete(srv.url + "/business/webhooks/" + ep["id"], headers=H(tok))
    assert r.status_code == 200 and r.json()["data"] == {"id": ep["id"], "deleted": True}
    assert requests.get(srv.url + "/business/webhooks/" + ep["id"], headers=H(tok)).status_code == 404
    assert requests.delete(srv.url + "/business/webhooks/" + ep["id"], headers=H(tok)).status_code == 404


def test_limit_per_institution(srv, rival):
    tok = rival["token"]
    made = [create(srv, tok, {"url": "https://h%d.example.com/" % i, "events": ["*"]}) for i in range(3)]
    assert all(r.status_code == 201 for r in made), [r.text for r in made]
    r = create(srv, tok, {"url": "https://h9.example.com/", "events": ["*"]})
    assert r.status_code == 422 and "maximum of 3" in r.text
    for m in made:
        requests.delete(srv.url + "/business/webhooks/" + m.json()["data"]["id"], headers=H(tok))
    assert create(srv, tok, {"url": "https://h9.example.com/", "events": ["*"]}).status_code == 201


def test_events_in_the_outbox(srv, demo, psql, receiver):
    tok = demo["token"]
    inst = demo["institution_id"]
    ep = create(srv, tok, {"url": receiver.url, "events": ["*"]}).json()["data"]
    demo["hook_secret"] = ep["secret"]
    before = len(events(psql, inst))
    # a plain batch: processing, then completed
    b = upload(srv, tok, demo["template_ids"]["plain"], ["a@example.com,Ann,15-02-2025,Math\r\n",
                                                         "b@example.com,Bob,15-02-2025,Math\r\n"])
    done = wait_status(srv, tok, b["id"])
    assert done["status"] == "completed"
    deadline = time.time() + 10
    while len(events(psql, inst)) < before + 2 and time.time() < deadline:
        time.sleep(0.1)
    ev = events(psql, inst)[before:]
    assert [t for t, _ in ev] == ["batch.processing", "batch.completed"], ev
    # the data is the batch as GET returns it (requires_my_signature: nobody's)
    got = requests.get(srv.url + "/business/batches/" + b["id"], headers=H(tok)).json()["data"]
    assert ev[1][1] == dict(got, requires_my_signature=False)
    assert ev[0][1]["status"] == "processing" and ev[0][1]["id"] == b["id"]
    # one delivery per event for the subscribed endpoint
    n = psql("SELECT count(*) FROM bd_webhook_deliveries WHERE endpoint_id = '%s'" % ep["id"]).strip()
    assert n == "2"
    # revocation: certificate.revoked once, even when revoked twice
    certs = requests.get(srv.url + "/business/certificates", headers=H(tok), params={"batch_id": b["id"]}).json()["data"]
    for _ in range(2):
        r = requests.post(srv.url + "/business/certificates/%s/revoke" % certs[0]["id"], headers=H(tok))
        assert r.status_code == 200
    ev = events(psql, inst)[before:]
    assert [t for t, _ in ev] == ["batch.processing", "batch.completed", "certificate.revoked"]
    one = requests.get(srv.url + "/business/certificates/" + certs[0]["id"], headers=H(tok)).json()["data"]
    assert ev[2][1] == one
    # a batch waiting for a signatory: waiting_for_approval, then processing when approved
    sig2 = demo["signatories"][1]
    b2 = upload(srv, tok, demo["template_ids"]["two_signatories"], ["c@example.com,Cy,15-02-2025,Math\r\n"],
                signatories=[(demo["signatories"][0]["user_uuid"], 1), (sig2["user_uuid"], 2)])
    assert b2["status"] == "waiting_for_approval"
    r = requests.post(srv.url + "/business/batches/%s/approve" % b2["id"], headers=H(sig2["token"]))
    assert r.status_code == 200, r.text
    wait_status(srv, tok, b2["id"])
    deadline = time.time() + 10
    while time.time() < deadline:
        ev2 = [t for t, d in events(psql, inst) if d.get("id") == b2["id"]]
        if len(ev2) == 3:
            break
        time.sleep(0.1)
    assert ev2 == ["batch.waiting_for_approval", "batch.processing", "batch.completed"], ev2
    # every row invalid: batch.failed at once
    bad = upload(srv, tok, demo["template_ids"]["plain"], ["not-an-email,X,99-99-2025,Math\r\n"])
    assert bad["status"] == "failed"
    assert [t for t, d in events(psql, inst) if d.get("id") == bad["id"]] == ["batch.failed"]
    # no endpoint, no outbox rows: the rival institution wrote none
    assert events(psql, demo["institution_id"] + 10 ** 6) == []


def test_deliveries_list_and_retry(srv, demo, psql):
    tok = demo["token"]
    page = requests.get(srv.url + "/business/webhooks", headers=H(tok)).json()["data"]
    ep = next(e for e in page if e["events"] == ["*"])
    r = requests.get(srv.url + "/business/webhooks/%s/deliveries" % ep["id"], headers=H(tok))
    assert r.status_code == 200, r.text
    ds = r.json()["data"]
    assert ds and all(d["object"] == "webhook_delivery" and d["endpoint_id"] == ep["id"] for d in ds)
    assert {d["event_type"] for d in ds} >= {"batch.processing", "batch.completed"}
    d = ds[-1]
    r = requests.post(srv.url + "/business/webhooks/%s/deliveries/%s/retry" % (ep["id"], d["id"]), headers=H(tok))
    assert r.status_code == 200 and r.json()["message"] == "Webhook delivery retry initiated"
    assert r.json()["data"]["id"] == d["id"] and r.json()["data"]["event_id"] == d["event_id"]
    demo["retried_event"] = d["event_id"]  # sent twice, by design
    r = requests.post(srv.url + "/business/webhooks/%s/deliveries/whdel_nope/retry" % ep["id"], headers=H(tok))
    assert r.status_code == 404


def test_delivered_and_signed(srv, demo, receiver):
    """With the core's delivery engine: every outbox event reaches the
    receiver, signed the vec.digital way and the Standard Webhooks way."""
    tok = demo["token"]
    secret = demo["hook_secret"]
    b = upload(srv, tok, demo["template_ids"]["plain"], ["d@example.com,Di,15-02-2025,Math\r\n"])
    wait_status(srv, tok, b["id"])
    mine = receiver.wait(lambda env: env["data"].get("id") == b["id"], n=2)
    types = [env["type"] for _, env, _ in mine]
    assert types == ["batch.processing", "batch.completed"], types
    got = requests.get(srv.url + "/business/batches/" + b["id"], headers=H(tok)).json()["data"]
    assert mine[1][1]["data"] == dict(got, requires_my_signature=False)
    assert set(mine[1][1]) == {"id", "type", "created_at", "data"}
    for h, _, body in mine:
        check_signatures(secret, h, body)
    # one row invalid: the batch ends partially_completed
    p = upload(srv, tok, demo["template_ids"]["plain"], ["e@example.com,Ed,15-02-2025,Math\r\n",
                                                       "not-an-email,X,15-02-2025,Math\r\n"])
    assert wait_status(srv, tok, p["id"])["status"] == "partially_completed"
    got = receiver.wait(lambda env: env["data"].get("id") == p["id"], n=2)
    assert [env["type"] for _, env, _ in got] == ["batch.processing", "batch.partially_completed"]
    # every event type of the surface reached the receiver (the earlier tests
    # made the others while this endpoint was subscribed to "*"), each id once
    ids = [json.loads(body)["id"] for _, body in receiver.got if json.loads(body)["id"] != demo.get("retried_event")]
    assert len(ids) == len(set(ids))


def test_every_business_event_type_was_delivered(srv, demo, receiver):
    deadline = time.time() + 20
    want = {"batch.waiting_for_approval", "batch.processing", "batch.completed", "batch.partially_completed",
            "batch.failed", "certificate.revoked"}
    while time.time() < deadline:
        seen = {json.loads(body)["type"] for _, body in receiver.got}
        if want <= seen:
            break
        time.sleep(0.1)
    assert want <= seen, want - seen
    for h, body in receiver.got:  # every delivery, signed both ways
        check_signatures(demo["hook_secret"], h, body)

"""QR batch intake as one record (src/sql/022_qr_batch_records.sql): the 202
commits the batch's record, the job expands it into the codes' rows, and
until then every read is answered from the record, the same as after.

A test hook (BATCHD_TEST_HOOKS=1 + BATCHD_TEST_QR_EXPAND_DELAY_MS) keeps a
server from expanding: the accepting process leaves it to the job and the
job waits that long first. A second server on the same database and port
(so that short URLs read the same) then expands and renders."""
import json
import time
import urllib.parse

import requests

from conftest import psql_run, seed_demo
from test_qr_api import H, download, wait_batch, zbar

HOLD = {"BATCHD_TEST_HOOKS": "1", "BATCHD_TEST_QR_EXPAND_DELAY_MS": "600000", "BATCHD_RATE_LIMIT": "0",
        "BATCHD_JOB_LEASE_MS": "1500", "BATCHD_JOB_POLL_MS": "200"}
FREE = {"BATCHD_RATE_LIMIT": "0", "BATCHD_JOB_LEASE_MS": "1500", "BATCHD_JOB_POLL_MS": "200"}

ITEMS = [
    {"name": "site", "target": {"destination": "https://example.com/a?x=1", "utm": {"source": "mail"}},
     "tags": ["t1", 'q"t'], "folder_id": "f1"},
    {"name": "bad", "target": {"email": "nope"}},
    {"target": {"text": "plain text"}},
    {"name": "wifi", "target": {"ssid": "Net;1", "password": "pass:word;1"}},
    {"name": "second", "target": {"destination": "https://example.com/b"}},
]


def record_state(psql, bid):
    """(codes in the record, rows in qr_codes) of batch bid."""
    rec = psql("SELECT coalesce(sum(cardinality(ids)), 0) FROM qr_batch_records WHERE batch_id = '%s'" % bid)
    rows = psql("SELECT count(*) FROM qr_codes WHERE batch_id = '%s'" % bid)
    return int(rec), int(rows)


def observe(srv, key, bid, scanned=()):
    """Everything a client sees of batch bid: the batch (less what rendering
    moves), each code, its PNG decoded and its SVG, each dynamic redirect."""
    b = requests.get(srv.url + "/v1/batches/" + bid, headers=H(key))
    assert b.status_code == 200, b.text
    b = b.json()
    seen = {"batch": {k: b[k] for k in ("id", "object", "total_count", "items", "created_at")},
            "codes": {}, "png": {}, "svg": {}, "redirect": {}}
    for it in b["items"]:
        cid = it["qr_code_id"]
        if cid is None:
            continue
        c = requests.get(srv.url + "/v1/qr-codes/" + cid, headers=H(key))
        assert c.status_code == 200, c.text
        c = c.json()
        seen["codes"][cid] = c
        png = download(srv, key, cid)
        assert png.status_code == 200 and png.headers["Content-Type"] == "image/png"
        seen["png"][cid] = zbar(png.content)
        svg = download(srv, key, cid, format="svg")
        assert svg.status_code == 200 and svg.headers["Content-Type"] == "image/svg+xml"
        seen["svg"][cid] = svg.content
        if c["short_code"] and c["short_code"] in scanned:
            r = requests.get(srv.url + "/s/" + c["short_code"], allow_redirects=False)
            assert r.status_code == 302, r.text
            seen["redirect"][c["short_code"]] = r.headers["Location"]
    return b, seen


def wait_scan_counts(srv, key, want, timeout=10):
    """Until GET shows each code id's scan_count as in want (scans are
    written once a second)."""
    deadline = time.time() + timeout
    while True:
        got = {cid: requests.get(srv.url + "/v1/qr-codes/" + cid, headers=H(key)).json()["scan_count"]
               for cid in want}
        if got == want or time.time() > deadline:
            assert got == want
            return
        time.sleep(0.1)


def test_same_answers_from_the_record_and_after_expansion(server_factory, run_batchd, own_database):
    a = server_factory(env=HOLD, database_url=own_database)
    keys = seed_demo(run_batchd, a, "qr", database_url=own_database)
    other = seed_demo(run_batchd, a, "qr", tenant="other", database_url=own_database)
    k = keys["live_key"]

    def psql(sql):
        return psql_run(own_database, sql)
    r = requests.post(a.url + "/v1/batches", headers=H(k), data=json.dumps({"items": ITEMS}))
    assert r.status_code == 202, r.text
    bid = r.json()["id"]
    assert r.json()["status"] == "processing" and r.json()["error_count"] == 1, \
        requests.get(a.url + "/v1/batches/" + bid, headers=H(k)).text
    # the 202 committed the record, not the codes
    assert record_state(psql, bid) == (4, 0)

    b, _ = observe(a, k, bid)
    assert b["status"] == "processing" and b["completed_count"] == 0
    assert [i["name"] for i in b["items"]] == ["site", "bad", None, "wifi", "second"]
    assert b["items"][1]["error"] == "target.email is not a valid e-mail address"
    assert b["items"][1]["qr_code_id"] is None
    ids = [i["qr_code_id"] for i in b["items"]]
    assert all(ids[i] for i in (0, 2, 3, 4))
    assert ids[0].startswith("qr_") and len(ids[0]) == 23 and ids[2].startswith("sqr_") and len(ids[2]) == 24
    assert len(set(i for i in ids if i)) == 4
    site = requests.get(a.url + "/v1/qr-codes/" + ids[0], headers=H(k)).json()
    assert site["kind"] == "dynamic" and site["type"] == "url" and site["batch_id"] == bid
    assert site["short_url"] == a.url + "/s/" + site["short_code"] and len(site["short_code"]) == 12
    assert site["tags"] == ["t1", 'q"t'] and site["folder_id"] == "f1" and site["is_active"] is True
    second = requests.get(a.url + "/v1/qr-codes/" + ids[4], headers=H(k)).json()
    assert second["short_code"][:6] == site["short_code"][:6] != "" and second["short_code"] != site["short_code"]
    # a redirect from the record, counted
    red = requests.get(site["short_url"], allow_redirects=False)
    assert red.status_code == 302 and red.headers["Cache-Control"] == "no-store"
    loc = urllib.parse.urlsplit(red.headers["Location"])
    assert loc.netloc == "example.com" and sorted(urllib.parse.parse_qsl(loc.query)) == [("utm_source", "mail"),
                                                                                          ("x", "1")]
    wait_scan_counts(a, k, {ids[0]: 1, ids[4]: 0})
    # another tenant sees none of it; unknown ids and short codes of the shape are 404
    o = H(other["live_key"])
    assert requests.get(a.url + "/v1/qr-codes/" + ids[0], headers=o).status_code == 404
    assert requests.get(a.url + "/v1/qr-codes/%s/download" % ids[0], headers=o).status_code == 404
    assert requests.get(a.url + "/v1/batches/" + bid, headers=o).status_code == 404
    assert requests.get(a.url + "/v1/qr-codes/" + ids[0][:-1] + "z", headers=H(k)).status_code == 404
    assert requests.get(a.url + "/s/" + site["short_code"][:6] + "000000", allow_redirects=False).status_code == 404
    assert requests.get(a.url + "/v1/qr-codes/" + ids[0], headers=H(keys["test_key"])).status_code == 404

    b1, before = observe(a, k, bid, scanned={site["short_code"], second["short_code"]})
    assert before["png"][ids[0]] == site["short_url"] and before["png"][ids[2]] == "plain text"
    assert record_state(psql, bid) == (4, 0)  # reads expanded nothing
    wait_scan_counts(a, k, {ids[0]: 2, ids[4]: 1})
    _, before = observe(a, k, bid)
    port = a.port
    assert a.stop() == 0  # the job waiting to expand is given back

    b2 = server_factory(env=FREE, database_url=own_database, port=port)
    done = wait_batch(b2, k, bid, timeout=60)
    assert done["status"] == "completed" and done["completed_count"] == 4 and done["error_count"] == 1
    assert record_state(psql, bid) == (0, 4)
    _, after = observe(b2, k, bid)
    assert after == before
    assert psql("SELECT string_agg(batch_idx::text || ':' || scan_count, ',' ORDER BY batch_idx) FROM qr_codes"
                " WHERE batch_id = '%s'" % bid) == "0:2,2:0,3:0,4:1"
    assert psql("SELECT state FROM bd_jobs WHERE ref = '%s'" % bid) == "done"


def test_changes_and_lists_expand_first(server_factory, run_batchd, own_database):
    a = server_factory(env=HOLD, database_url=own_database)
    k = seed_demo(run_batchd, a, "qr", database_url=own_database)["live_key"]

    def psql(sql):
        return psql_run(own_database, sql)

    def accept(n, text):
        items = [{"name": "%s%d" % (text, i), "target": {"destination": "https://example.com/%s/%d" % (text, i)}}
                 for i in range(n)]
        r = requests.post(a.url + "/v1/batches", headers=H(k), data=json.dumps({"items": items}))
        assert r.status_code == 202, r.text
        bid = r.json()["id"]
        assert record_state(psql, bid) == (n, 0)
        return bid, requests.get(a.url + "/v1/batches/" + bid, headers=H(k)).json()["items"]

    # PATCH: expanded, then changed; the redirect follows
    bid, items = accept(3, "p")
    code = requests.get(a.url + "/v1/qr-codes/" + items[1]["qr_code_id"], headers=H(k)).json()
    assert requests.get(code["short_url"], allow_redirects=False).headers["Location"] == "https://example.com/p/1"
    r = requests.patch(a.url + "/v1/qr-codes/" + code["id"], headers=H(k),
                       data=json.dumps({"target": {"destination": "https://example.com/moved"}}))
    assert r.status_code == 200, r.text
    assert r.json()["target"]["destination"] == "https://example.com/moved"
    assert record_state(psql, bid) == (0, 3)
    assert requests.get(code["short_url"], allow_redirects=False).headers["Location"] == "https://example.com/moved"
    # DELETE of a code still in its record
    bid, items = accept(2, "d")
    gone = items[0]["qr_code_id"]
    r = requests.delete(a.url + "/v1/qr-codes/" + gone, headers=H(k))
    assert r.status_code == 200 and r.json() == {"id": gone, "object": "qr_code", "deleted": True}
    assert record_state(psql, bid) == (0, 2)
    assert requests.get(a.url + "/v1/qr-codes/" + gone, headers=H(k)).status_code == 404
    # analytics of a code still in its record
    bid, items = accept(2, "a")
    r = requests.get(a.url + "/v1/qr-codes/%s/analytics" % items[1]["qr_code_id"], headers=H(k))
    assert r.status_code == 200 and r.json()["total_scans"] == 0
    assert record_state(psql, bid) == (0, 2)
    # a list shows every accepted code
    bid, items = accept(4, "l")
    listed = requests.get(a.url + "/v1/qr-codes", headers=H(k), params={"limit": 100}).json()
    assert {i["qr_code_id"] for i in items} <= {c["id"] for c in listed["data"]}
    assert gone not in {c["id"] for c in listed["data"]}
    assert record_state(psql, bid) == (0, 4)
    assert psql("SELECT count(*) FROM qr_batch_records") == "0"
    assert psql("SELECT count(*) - count(DISTINCT id) FROM qr_codes") == "0"


def test_sigkill_after_the_202_before_expansion(server_factory, run_batchd, own_database):
    """Every accepted item exists exactly once, rendered once, each batch's
    webhook event written once."""
    a = server_factory(env=dict(HOLD, BATCHD_WEBHOOK_ALLOW_HTTP="1", BATCHD_WEBHOOK_ALLOW_PRIVATE="1"),
                       database_url=own_database)
    k = seed_demo(run_batchd, a, "qr", database_url=own_database)["live_key"]

    def psql(sql):
        return psql_run(own_database, sql)
    r = requests.post(a.url + "/v1/webhooks", headers=H(k),
                      data=json.dumps({"url": "http://127.0.0.1:9/hook", "events": ["*"]}))
    assert r.status_code == 201, r.text
    accepted = {}
    for n in (1, 40, 300):
        items = [{"name": "k%d" % i, "target": ({"text": "kill %d %d" % (n, i)} if i % 3 else
                                                {"destination": "https://example.com/k/%d/%d" % (n, i)})}
                 for i in range(n)]
        r = requests.post(a.url + "/v1/batches", headers=H(k), data=json.dumps({"items": items}))
        assert r.status_code == 202, r.text
        bid = r.json()["id"]
        accepted[bid] = requests.get(a.url + "/v1/batches/" + bid, headers=H(k)).json()["items"]
        assert record_state(psql, bid) == (n, 0)
    a.kill()
    b = server_factory(env=FREE, database_url=own_database)
    for bid, items in accepted.items():
        done = wait_batch(b, k, bid, timeout=90)
        assert done["status"] == "completed" and done["completed_count"] == len(items)
        assert done["items"] == items  # the same ids, in the same order
        assert record_state(psql, bid) == (0, len(items))
        assert psql("SELECT count(DISTINCT id) || '/' || count(DISTINCT batch_idx) || '/' || count(*)"
                    " FROM qr_codes WHERE batch_id = '%s'" % bid) == "%d/%d/%d" % ((len(items),) * 3)
        assert psql("SELECT count(*) FROM qr_images i JOIN qr_codes c ON c.id = i.code_id WHERE c.batch_id = '%s'"
                    % bid) == str(len(items))
        assert psql("SELECT state FROM bd_jobs WHERE ref = '%s'" % bid) == "done"
        assert psql("SELECT string_agg(type, ',') FROM bd_webhook_events WHERE data->>'id' = '%s'" % bid) == \
            "batch.completed"
        code = requests.get(b.url + "/v1/qr-codes/" + items[0]["qr_code_id"], headers=H(k)).json()
        # the symbol holds the short URL of the server that accepted it
        assert zbar(download(b, k, code["id"]).content) == a.url + "/s/" + code["short_code"]
        red = requests.get(b.url + "/s/" + code["short_code"], allow_redirects=False)
        assert red.status_code == 302 and red.headers["Location"].startswith("https://example.com/k/")

"""The /v1 QR surface against the real server and PostgreSQL: every payload
type decoded with zbarimg, designs, errors in QRKit's format, live/test and
tenant isolation, scopes, pagination, PATCH of a dynamic destination,
redirects and scan counting, and a batch surviving SIGKILL."""
import base64
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.parse

import pytest
import requests

from conftest import psql_run, seed_demo


def zbar(png_bytes):
    """Decodes a PNG with zbarimg; returns the payload text."""
    with tempfile.NamedTemporaryFile(suffix=".png", delete=False) as f:
        f.write(png_bytes)
        path = f.name
    try:
        out = subprocess.run(["zbarimg", "--raw", "-q", "-Sbinary", "-Sdisable", "-Sqrcode.enable", path],
                             capture_output=True, timeout=30)
        data = out.stdout[:-1] if out.stdout.endswith(b"\n") else out.stdout
        return data.decode("utf-8")
    finally:
        os.unlink(path)


@pytest.fixture(scope="module")
def srv(server_factory):
    return server_factory(env={"BATCHD_RATE_LIMIT": "0", "BATCHD_JOB_POLL_MS": "200"})


@pytest.fixture(scope="module")
def keys(run_batchd, srv):
    return seed_demo(run_batchd, srv, "qr")


def own_server(server_factory, run_batchd, url, env):
    srv = server_factory(env=env, database_url=url)
    return srv, seed_demo(run_batchd, srv, "qr", database_url=url)


@pytest.fixture(scope="module")
def other_tenant(run_batchd, srv):
    return seed_demo(run_batchd, srv, "qr", tenant="other")


def H(key):
    return {"Authorization": "Bearer " + key, "Content-Type": "application/json"}


def create_code(srv, key, body):
    return requests.post(srv.url + "/v1/qr-codes", headers=H(key), data=json.dumps(body))


def download(srv, key, code_id, **params):
    return requests.get(srv.url + "/v1/qr-codes/%s/download" % code_id, headers=H(key), params=params)


def wait_batch(srv, key, batch_id, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        b = requests.get(srv.url + "/v1/batches/" + batch_id, headers=H(key)).json()
        if b["status"] != "processing":
            return b
        time.sleep(0.1)
    raise AssertionError("batch still processing: %r" % b)


# --- payloads, decoded ----------------------------------------------------------

PAYLOADS = [
    ({"text": "Hello, wörld ✓"}, "text", "Hello, wörld ✓"),
    ({"email": "ana@example.com", "subject": "Hi there", "message": "a&b=c"}, "email",
     "mailto:ana@example.com?subject=Hi%20there&body=a%26b%3Dc"),
    ({"phone": "+15551234567", "message": "Yes: come"}, "sms", "SMSTO:+15551234567:Yes: come"),
    ({"phone": "+44 20 7946 0958"}, "phone", "tel:+442079460958"),  # tel: URIs carry no spaces
    ({"ssid": 'Caf\u00e9;Net:"5G"', "password": "p\\a,ss:w;rd"}, "wifi",
     'WIFI:T:WPA;S:Caf\u00e9\\;Net\\:\\"5G\\";P:p\\\\a\\,ss\\:w\\;rd;;'),
    ({"ssid": "Open", "encryption": "nopass", "hidden": True}, "wifi", "WIFI:T:nopass;S:Open;H:true;;"),
    ({"title": "Launch, day 1", "location": "Hall A; Berlin", "start": "2025-03-14T13:04:03Z",
      "end": "2025-03-14T15:00:00+01:00"}, "event",
     "BEGIN:VEVENT\r\nSUMMARY:Launch\\, day 1\r\nLOCATION:Hall A\\; Berlin\r\nDTSTART:20250314T130403Z\r\n"
     "DTEND:20250314T140000Z\r\nEND:VEVENT"),
    ({"vcard": {"first_name": "Zoë", "last_name": "Ångström", "organization": "ACME, Inc.", "phone": "+1 555",
                "email": "z@example.com"}}, "vcard",
     "BEGIN:VCARD\r\nVERSION:3.0\r\nN:Ångström;Zoë;;;\r\nFN:Zoë Ångström\r\nORG:ACME\\, Inc.\r\nTEL:+1 555\r\n"
     "EMAIL:z@example.com\r\nEND:VCARD"),
]


@pytest.mark.parametrize("target,typ,payload", PAYLOADS, ids=[p[1] + str(i) for i, p in enumerate(PAYLOADS)])
def test_static_payload_decodes_exactly(srv, keys, target, typ, payload):
    r = create_code(srv, keys["live_key"], {"name": "t", "target": target})
    assert r.status_code == 201, r.text
    code = r.json()
    assert code["type"] == typ and code["kind"] == "static" and code["id"].startswith("sqr_")
    assert code["short_url"] is None
    png = download(srv, keys["live_key"], code["id"])
    assert png.status_code == 200 and png.headers["Content-Type"] == "image/png"
    assert zbar(png.content) == payload


def test_dynamic_url_encodes_short_url_and_redirects_with_utm(srv, keys):
    r = create_code(srv, keys["live_key"], {"target": {"destination": "https://example.com/p?a=1&utm_source=old#frag",
                                                       "utm": {"source": "qr", "campaign": "spring sale"}}})
    assert r.status_code == 201, r.text
    code = r.json()
    assert code["kind"] == "dynamic" and code["type"] == "url" and code["id"].startswith("qr_")
    assert code["short_url"] == srv.url + "/s/" + code["short_code"]
    assert zbar(download(srv, keys["live_key"], code["id"]).content) == code["short_url"]
    red = requests.get(code["short_url"], allow_redirects=False)
    assert red.status_code == 302
    assert red.headers["Location"] == "https://example.com/p?a=1&utm_source=qr&utm_campaign=spring%20sale#frag"
    assert red.headers["Cache-Control"] == "no-store"


DESIGNS = [
    {"error_correction": "H", "colors": {"foreground": "#1a237e", "background": "#fffde7"}},
    {"gradient": {"start": "#005ae0", "end": "#003080", "type": "linear-top-to-bottom"},
     "shapes": {"body": "dots", "eye_frame": "circle", "eye_ball": "circle"}},
    {"gradient": {"start": "#202020", "end": "#004bb8", "type": "radial"},
     "shapes": {"body": "rounded", "eye_frame": "rounded", "eye_ball": "square"},
     "eye_colors": {"frame": "#b71c1c", "ball": "#1b5e20"}},
    {"error_correction": "Q", "transparent_background": True},
]


@pytest.mark.parametrize("design", DESIGNS, ids=["colours", "gradient-dots", "radial-eyes", "transparent"])
def test_designs_decode(srv, keys, design):
    r = create_code(srv, keys["live_key"], {"target": {"text": "design check 123"}, "design": design})
    assert r.status_code == 201, r.text
    png = download(srv, keys["live_key"], r.json()["id"], size=512)
    assert png.status_code == 200
    if design.get("transparent_background"):
        # zbar needs an opaque image: composite on white with cairo-free means
        assert png.content[:8] == b"\x89PNG\r\n\x1a\n"
        png = download(srv, keys["live_key"], r.json()["id"])  # the stored default (palette + tRNS)
    assert zbar(png.content) == "design check 123"


def tiny_png_data_url():
    # a 4x4 opaque red PNG made with the same toolchain the server trusts (cairo via pdftoppm is overkill)
    import struct
    import zlib
    raw = b"".join(b"\x00" + b"\xff\x00\x00" * 4 for _ in range(4))
    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xffffffff)
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 4, 4, 8, 2, 0, 0, 0)) + \
        chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
    return "data:image/png;base64," + base64.b64encode(png).decode()


def test_logo_with_high_error_correction_decodes(srv, keys):
    design = {"error_correction": "H", "logo": {"url": tiny_png_data_url(), "clear_background": True, "size": 0.22}}
    r = create_code(srv, keys["live_key"], {"target": {"text": "with a logo"}, "design": design})
    assert r.status_code == 201, r.text
    assert zbar(download(srv, keys["live_key"], r.json()["id"]).content) == "with a logo"


def test_svg_and_pdf_downloads(srv, keys):
    code = create_code(srv, keys["live_key"], {"target": {"text": "vector"}}).json()
    svg = download(srv, keys["live_key"], code["id"], format="svg")
    assert svg.status_code == 200 and svg.headers["Content-Type"] == "image/svg+xml"
    assert b"<svg" in svg.content[:300]
    pdf = download(srv, keys["live_key"], code["id"], format="pdf", size=300)
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    d = tempfile.mkdtemp()
    try:
        with open(os.path.join(d, "q.pdf"), "wb") as f:
            f.write(pdf.content)
        subprocess.run(["pdftoppm", "-png", "-r", "150", os.path.join(d, "q.pdf"), os.path.join(d, "p")], check=True)
        page = [p for p in os.listdir(d) if p.endswith(".png")][0]
        with open(os.path.join(d, page), "rb") as f:
            assert zbar(f.read()) == "vector"
    finally:
        shutil.rmtree(d)
    for bad in ({"format": "gif"}, {"size": "100"}, {"size": "5000"}, {"size": "abc"}):
        r = download(srv, keys["live_key"], code["id"], **bad)
        assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_request"
        assert r.json()["error"]["param"] in ("format", "size")


# --- design validation (400, naming the field) --------------------------------------

@pytest.mark.parametrize("design,param", [
    ({"error_correction": "X"}, "design.error_correction"),
    ({"colors": {"foreground": "blue"}}, "design.colors.foreground"),
    ({"colors": {"foreground": "#dddddd", "background": "#ffffff"}}, "design.colors.foreground"),
    ({"colors": {"foreground": "#ffffff", "background": "#000000"}}, "design.colors.foreground"),
    ({"shapes": {"body": "hearts"}}, "design.shapes.body"),
    ({"gradient": {"start": "#000000", "end": "#eeeeee"}}, "design.gradient.end"),
    ({"error_correction": "L", "logo": {"url": tiny_png_data_url()}}, "design.logo"),
    ({"error_correction": "M", "logo": {"url": tiny_png_data_url(), "size": 0.3}}, "design.logo"),
    ({"logo": {"url": "https://example.com/logo.png"}}, "design.logo.url"),
    ({"surprise": 1}, "design"),
])
def test_unscannable_or_bad_design_is_400(srv, keys, design, param):
    r = requests.post(srv.url + "/v1/batches", headers=H(keys["live_key"]),
                      data=json.dumps({"items": [{"target": {"text": "x"}}], "design": design}))
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["code"] == "invalid_request" and err["param"] == param, err
    assert err["request_id"] == r.headers["X-Request-Id"]


# --- batches ---------------------------------------------------------------------

def test_batch_lifecycle_with_item_errors(srv, keys, psql):
    items = [{"name": "n%d" % i, "target": {"text": "item %d" % i}} for i in range(25)]
    items[3] = {"name": "bad", "target": {"email": "not-an-email"}}
    items[7] = {"name": "nothing", "target": {}}
    r = requests.post(srv.url + "/v1/batches", headers=H(keys["live_key"]), data=json.dumps({"items": items}))
    assert r.status_code == 202, r.text
    b = r.json()
    assert b["object"] == "batch" and b["id"].startswith("batch_") and len(b["id"]) == 22
    assert b["status"] == "processing" and b["total_count"] == 25 and b["error_count"] == 2
    # durable before the 202: the batch's record or, once expanded, its codes (022)
    assert psql("SELECT (SELECT count(*) FROM qr_codes WHERE batch_id = '%s')"
                " + (SELECT coalesce(sum(cardinality(ids)), 0) FROM qr_batch_records WHERE batch_id = '%s')"
                % (b["id"], b["id"])) == "23"
    done = wait_batch(srv, keys["live_key"], b["id"])
    assert done["status"] == "completed" and done["completed_count"] == 23 and done["error_count"] == 2
    assert [i["name"] for i in done["items"]] == [i["name"] for i in items]
    assert done["items"][3]["error"] == "target.email is not a valid e-mail address"
    assert done["items"][3]["type"] == "email" and done["items"][3]["qr_code_id"] is None
    assert done["items"][7]["error"].startswith("target needs one of")
    ok = done["items"][10]
    assert ok["error"] is None and ok["type"] == "text"
    code = requests.get(srv.url + "/v1/qr-codes/" + ok["qr_code_id"], headers=H(keys["live_key"])).json()
    assert code["batch_id"] == b["id"]
    assert zbar(download(srv, keys["live_key"], ok["qr_code_id"]).content) == "item 10"
    assert psql("SELECT count(*) FROM qr_images i JOIN qr_codes c ON c.id = i.code_id WHERE c.batch_id = '%s'"
                % b["id"]) == "23"


AWKWARD_ITEMS = [
    {"name": 'quote " back\\slash\ttab\nnewline', "target": {"text": 'a\\b\t"c"\n\u00e9\u2713'},
     "tags": ['q"uote', "back\\slash", "com,ma", "{brace}", "sp ace", "\u00fcml"], "folder_id": "f\"1\\"},
    {"target": {"destination": "https://example.com/x?a=1", "utm": {"source": "s\\rc", "medium": "m"}}},
    {"name": "", "target": {"email": "ana@example.com", "subject": 'back\\slash "q"'}, "tags": []},
    {"name": "wifi", "target": {"ssid": "Caf\u00e9;Net", "password": "p\\w;or:d,1", "hidden": True}, "tags": ["NULL"]},
    {"name": "NULL", "target": {"phone": "+15551234567"}, "folder_id": "\\N"},
]
SAME_FIELDS = ("kind", "type", "name", "target", "design", "folder_id", "tags", "is_active", "scan_count")


def test_batch_codes_equal_single_creates(srv, keys, psql):
    # the batch path (binary arrays, 010) and the single create (JSON) must
    # store the same code for the same item, whatever its strings hold
    k = keys["live_key"]
    design = {"colors": {"foreground": "#102030"}, "error_correction": "Q"}
    items = AWKWARD_ITEMS + [{"name": "bad", "target": {"email": "nope"}}]
    r = requests.post(srv.url + "/v1/batches", headers=H(k), data=json.dumps({"items": items, "design": design}))
    assert r.status_code == 202, r.text
    done = wait_batch(srv, k, r.json()["id"])
    assert done["status"] == "completed" and done["completed_count"] == len(AWKWARD_ITEMS), done["items"]
    assert done["error_count"] == 1 and done["items"][-1]["error"] == "target.email is not a valid e-mail address"
    for i, item in enumerate(AWKWARD_ITEMS):
        from_batch = requests.get(srv.url + "/v1/qr-codes/" + done["items"][i]["qr_code_id"], headers=H(k)).json()
        single = create_code(srv, k, dict(item, design=design))
        assert single.status_code == 201, single.text
        single = single.json()
        # an item without a name reads the default name, its own code's
        same = [f for f in SAME_FIELDS if f != "name" or item.get("name")]
        assert {f: from_batch[f] for f in same} == {f: single[f] for f in same}, i
        assert from_batch["batch_id"] == done["id"]
        if item.get("name"):
            assert done["items"][i]["name"] == from_batch["name"]
        else:  # the batch item's name stays null; the code's is the default
            assert done["items"][i]["name"] is None
            assert from_batch["name"] == ("Campaign " + from_batch["short_code"] if from_batch["kind"] == "dynamic"
                                          else "Static " + from_batch["id"][-8:])
        assert (from_batch["short_code"] is None) == (single["short_code"] is None)
    assert psql("SELECT string_agg(batch_idx::text, ',' ORDER BY batch_idx) FROM qr_codes WHERE batch_id = '%s'"
                % done["id"]) == "0,1,2,3,4"
    # the dynamic one decodes to its short URL, and it redirects with its UTM tags
    dyn = requests.get(srv.url + "/v1/qr-codes/" + done["items"][1]["qr_code_id"], headers=H(k)).json()
    assert zbar(download(srv, k, dyn["id"]).content) == dyn["short_url"]
    red = requests.get(dyn["short_url"], allow_redirects=False)
    assert red.status_code == 302
    loc = urllib.parse.urlsplit(red.headers["Location"])
    assert loc.netloc == "example.com" and loc.path == "/x"
    assert sorted(urllib.parse.parse_qsl(loc.query)) == [("a", "1"), ("utm_medium", "m"), ("utm_source", "s\\rc")]


def test_batch_of_only_invalid_items_fails_at_once(srv, keys, psql):
    k = keys["live_key"]
    items = [{"name": "x%d" % i, "target": {"email": "nope"}} for i in range(3)]
    r = requests.post(srv.url + "/v1/batches", headers=H(k), data=json.dumps({"items": items}))
    assert r.status_code == 202, r.text
    b = r.json()
    assert b["status"] == "failed" and b["total_count"] == 3 and b["error_count"] == 3
    assert b["completed_at"] is not None
    assert psql("SELECT count(*) FROM qr_codes WHERE batch_id = '%s'" % b["id"]) == "0"
    assert psql("SELECT count(*) FROM bd_jobs WHERE ref = '%s'" % b["id"]) == "0"
    got = requests.get(srv.url + "/v1/batches/" + b["id"], headers=H(k)).json()
    assert [i["name"] for i in got["items"]] == ["x0", "x1", "x2"] and all(i["error"] for i in got["items"])


def test_rendered_images_are_a_cache_rebuilt_on_download(srv, keys, psql):
    # qr_images is UNLOGGED (009): after a crash of PostgreSQL it is empty,
    # and a download renders and stores the same image again
    assert psql("SELECT relpersistence FROM pg_class WHERE relname = 'qr_images'") == "u"
    assert psql("SELECT relpersistence FROM pg_class WHERE relname = 'qr_codes'") == "p"
    items = [{"name": "c%d" % i, "target": {"text": "cached %d" % i}} for i in range(4)]
    r = requests.post(srv.url + "/v1/batches", headers=H(keys["live_key"]), data=json.dumps({"items": items}))
    assert r.status_code == 202, r.text
    done = wait_batch(srv, keys["live_key"], r.json()["id"])
    assert done["status"] == "completed" and done["completed_count"] == 4
    code_id = done["items"][2]["qr_code_id"]
    stored = psql("SELECT encode(sha256(png), 'hex') || ' ' || sha256 FROM qr_images WHERE code_id = '%s'" % code_id)
    first = download(srv, keys["live_key"], code_id)
    assert first.status_code == 200 and first.headers["Content-Type"] == "image/png"
    assert stored.split() == [hashlib.sha256(first.content).hexdigest()] * 2  # served what the job stored
    # what a crash leaves: the codes and their statuses, no images
    psql("DELETE FROM qr_images WHERE code_id IN (SELECT id FROM qr_codes WHERE batch_id = '%s')" % done["id"])
    again = download(srv, keys["live_key"], code_id)
    assert again.status_code == 200 and again.content == first.content  # rendered again, byte for byte
    assert zbar(again.content) == "cached 2"
    assert wait_batch(srv, keys["live_key"], done["id"])["status"] == "completed"
    # and kept for the next download
    deadline = time.time() + 5
    while psql("SELECT count(*) FROM qr_images WHERE code_id = '%s'" % code_id) != "1":
        assert time.time() < deadline, "the re-rendered image was not stored"
        time.sleep(0.05)
    assert psql("SELECT sha256 FROM qr_images WHERE code_id = '%s'" % code_id) == hashlib.sha256(
        again.content).hexdigest()


@pytest.mark.parametrize("body,param", [
    ({}, "items"),
    ({"items": []}, "items"),
    ({"items": "x"}, "items"),
    ({"items": [{"target": {"text": "x"}}] * 1001}, "items"),
    ({"items": [{"target": {"text": "x"}}], "template_id": "tpl_nope"}, "template_id"),
])
def test_invalid_envelope_stores_nothing(srv, keys, psql, body, param):
    before = psql("SELECT count(*) FROM qr_batches")
    r = requests.post(srv.url + "/v1/batches", headers=H(keys["live_key"]), data=json.dumps(body))
    assert r.status_code == 400 and r.json()["error"]["param"] == param, r.text
    assert psql("SELECT count(*) FROM qr_batches") == before


def test_malformed_and_deep_json(srv, keys):
    r = requests.post(srv.url + "/v1/batches", headers=H(keys["live_key"]), data="{not json")
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_request"
    deep = "[" * 40 + "]" * 40
    r = requests.post(srv.url + "/v1/batches", headers=H(keys["live_key"]), data='{"items":%s}' % deep)
    assert r.status_code == 400 and "nesting" in r.json()["error"]["message"]


def test_template_design_applies(srv, keys):
    r = requests.post(srv.url + "/v1/templates", headers=H(keys["live_key"]),
                      data=json.dumps({"name": "Brand", "design": {"error_correction": "H",
                                                                   "colors": {"foreground": "#0d47a1"}}}))
    assert r.status_code == 201 and r.json()["id"].startswith("tpl_")
    tpl = r.json()["id"]
    listed = requests.get(srv.url + "/v1/templates", headers=H(keys["live_key"])).json()
    assert tpl in [t["id"] for t in listed["data"]]
    c = create_code(srv, keys["live_key"], {"target": {"text": "tpl"}, "template_id": tpl}).json()
    assert c["design"]["error_correction"] == "H" and c["design"]["colors"]["foreground"] == "#0d47a1"


def test_pagination(srv, keys):
    ids = []
    for i in range(5):
        r = requests.post(srv.url + "/v1/batches", headers=H(keys["test_key"]),
                          data=json.dumps({"items": [{"target": {"text": "p%d" % i}}]}))
        ids.append(r.json()["id"])
    seen, cursor = [], None
    while True:
        params = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = requests.get(srv.url + "/v1/batches", headers=H(keys["test_key"]), params=params).json()
        assert page["object"] == "list" and len(page["data"]) <= 2
        seen += [b["id"] for b in page["data"]]
        if not page["has_more"]:
            assert page["next_cursor"] is None
            break
        cursor = page["next_cursor"]
    assert sorted(seen) == sorted(ids) and len(seen) == len(set(seen))
    for bad in ({"limit": 0}, {"limit": 101}, {"cursor": "!!!"}):
        r = requests.get(srv.url + "/v1/batches", headers=H(keys["test_key"]), params=bad)
        assert r.status_code == 400


# --- isolation, auth, scopes ----------------------------------------------------------

def test_auth_errors(srv, keys):
    # A key with its last character changed (to one it is not: the key may end in "X").
    tampered = keys["live_key"][:-1] + ("X" if keys["live_key"][-1] != "X" else "Y")
    assert tampered != keys["live_key"]
    for h in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "Bearer " + tampered},
              {"Authorization": "Basic abc"}):
        r = requests.get(srv.url + "/v1/batches", headers=h)
        assert r.status_code == 401 and r.json()["error"]["code"] == "unauthenticated"
    r = requests.post(srv.url + "/v1/batches", headers=H(keys["read_only_key"]),
                      data=json.dumps({"items": [{"target": {"text": "x"}}]}))
    assert r.status_code == 403 and r.json()["error"]["code"] == "insufficient_scope"
    assert requests.get(srv.url + "/v1/batches", headers=H(keys["read_only_key"])).status_code == 200


def test_live_test_and_tenant_isolation(srv, keys, other_tenant):
    live = create_code(srv, keys["live_key"], {"target": {"text": "live only"}}).json()
    for k in (keys["test_key"], other_tenant["live_key"]):
        for path in ("/v1/qr-codes/%s" % live["id"], "/v1/qr-codes/%s/download" % live["id"]):
            r = requests.get(srv.url + path, headers=H(k))
            assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
        r = requests.patch(srv.url + "/v1/qr-codes/" + live["id"], headers=H(k), data=json.dumps({"name": "x"}))
        assert r.status_code == 404
        r = requests.delete(srv.url + "/v1/qr-codes/" + live["id"], headers=H(k))
        assert r.status_code == 404
        listing = requests.get(srv.url + "/v1/qr-codes", headers=H(k), params={"limit": 100}).text
        assert live["id"] not in listing


# --- dynamic codes: PATCH, redirects, scans, analytics, delete ---------------------------

def test_patch_destination_redirect_and_scans(srv, keys):
    k = keys["live_key"]
    code = create_code(srv, k, {"name": "promo", "tags": ["a"],
                                "target": {"destination": "https://example.com/one"}}).json()
    short = code["short_url"]
    ua = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) Mobile Safari/604.1"
    for _ in range(3):
        r = requests.get(short, allow_redirects=False, headers={"User-Agent": ua, "Accept-Language": "de-DE,de;q=0.9",
                                                                "X-Country-Code": "DE"})
        assert r.headers["Location"] == "https://example.com/one"
    r = requests.patch(srv.url + "/v1/qr-codes/" + code["id"], headers=H(k),
                       data=json.dumps({"target": {"destination": "https://example.com/two", "utm": {"medium": "print"}},
                                        "name": "promo 2", "tags": ["a", "b"]}))
    assert r.status_code == 200, r.text
    assert r.json()["name"] == "promo 2" and r.json()["tags"] == ["a", "b"]
    r = requests.get(short, allow_redirects=False)
    assert r.headers["Location"] == "https://example.com/two?utm_medium=print"
    # the symbol did not change: it still encodes the short URL
    assert zbar(download(srv, k, code["id"]).content) == short
    time.sleep(1.5)  # scans are flushed in bulk once a second
    got = requests.get(srv.url + "/v1/qr-codes/" + code["id"], headers=H(k)).json()
    assert got["scan_count"] == 4
    a = requests.get(srv.url + "/v1/qr-codes/%s/analytics" % code["id"], headers=H(k)).json()
    assert a["total_scans"] == 4
    assert a["devices"][0] == {"value": "mobile", "count": 3}
    assert {"value": "iOS", "count": 3} in a["operating_systems"]
    assert {"value": "de-DE", "count": 3} in a["languages"]
    assert {"value": "DE", "count": 3} in a["countries"]
    assert sum(d["count"] for d in a["scans_by_day"]) == 4
    assert requests.get(srv.url + "/v1/qr-codes/%s/analytics" % code["id"], headers=H(keys["read_only_key"])
                        ).status_code == 403
    # deactivate: 404 page, no redirect
    r = requests.patch(srv.url + "/v1/qr-codes/" + code["id"], headers=H(k), data=json.dumps({"is_active": False}))
    assert r.status_code == 200 and r.json()["is_active"] is False
    r = requests.get(short, allow_redirects=False)
    assert r.status_code == 404 and "text/html" in r.headers["Content-Type"]
    requests.patch(srv.url + "/v1/qr-codes/" + code["id"], headers=H(k), data=json.dumps({"is_active": True}))
    assert requests.get(short, allow_redirects=False).status_code == 302
    r = requests.delete(srv.url + "/v1/qr-codes/" + code["id"], headers=H(k))
    assert r.status_code == 200 and r.json()["deleted"] is True
    assert requests.get(short, allow_redirects=False).status_code == 404
    assert requests.get(srv.url + "/v1/qr-codes/" + code["id"], headers=H(k)).status_code == 404


def test_static_code_patch_rules(srv, keys):
    k = keys["live_key"]
    code = create_code(srv, k, {"target": {"text": "static"}}).json()
    r = requests.patch(srv.url + "/v1/qr-codes/" + code["id"], headers=H(k), data=json.dumps({"target": {"text": "x"}}))
    assert r.status_code == 400 and r.json()["error"]["param"] == "target"
    r = requests.patch(srv.url + "/v1/qr-codes/" + code["id"], headers=H(k), data=json.dumps({"name": "renamed"}))
    assert r.status_code == 200 and r.json()["name"] == "renamed"
    r = requests.patch(srv.url + "/v1/qr-codes/" + code["id"], headers=H(k), data=json.dumps({"tags": ["x"] * 11}))
    assert r.status_code == 400


def test_unknown_short_code_is_404_page(srv):
    r = requests.get(srv.url + "/s/doesNotExist1", allow_redirects=False)
    assert r.status_code == 404 and "<html" in r.text


def test_redirect_cache_follows_other_process(srv, keys, server_factory):
    """Process B caches the redirect; a PATCH through process A reaches B via NOTIFY."""
    k = keys["live_key"]
    other = server_factory(env={"BATCHD_RATE_LIMIT": "0"})
    code = create_code(srv, k, {"target": {"destination": "https://example.com/v1"}}).json()
    path = "/s/" + code["short_code"]
    assert requests.get(other.url + path, allow_redirects=False).headers["Location"] == "https://example.com/v1"
    r = requests.patch(srv.url + "/v1/qr-codes/" + code["id"], headers=H(k),
                       data=json.dumps({"target": {"destination": "https://example.com/v2"}}))
    assert r.status_code == 200, r.text
    deadline = time.time() + 5
    while time.time() < deadline:
        if requests.get(other.url + path, allow_redirects=False).headers.get("Location") == "https://example.com/v2":
            break
        time.sleep(0.05)
    assert requests.get(other.url + path, allow_redirects=False).headers["Location"] == "https://example.com/v2"


def test_scans_flushed_on_clean_shutdown(server_factory, keys, psql):
    s = server_factory(env={"BATCHD_RATE_LIMIT": "0"})
    code = create_code(s, keys["live_key"], {"target": {"destination": "https://example.com/flush"}}).json()
    for _ in range(7):
        requests.get(s.url + "/s/" + code["short_code"], allow_redirects=False)
    assert s.stop() == 0  # no time for the periodic flush: the shutdown flush must write them
    # one aggregated row (same minute, same client) holding all seven
    assert psql("SELECT sum(count) FROM qr_scans WHERE code_id = '%s'" % code["id"]) == "7"
    assert psql("SELECT scan_count FROM qr_codes WHERE id = '%s'" % code["id"]) == "7"


def test_scans_kept_when_their_write_fails(server_factory, keys, psql):
    """A bulk write of scans that fails is merged back and written by a later flush: none lost, none twice."""
    s = server_factory(env={"BATCHD_RATE_LIMIT": "0"})
    code = create_code(s, keys["live_key"], {"target": {"destination": "https://example.com/kept"}}).json()
    psql("ALTER FUNCTION qr_record_scans(jsonb) RENAME TO qr_record_scans_away")
    try:
        for _ in range(5):
            requests.get(s.url + "/s/" + code["short_code"], allow_redirects=False)
        time.sleep(2.5)  # at least two flushes fail meanwhile
        for _ in range(2):
            requests.get(s.url + "/s/" + code["short_code"], allow_redirects=False)
        assert psql("SELECT count(*) FROM qr_scans WHERE code_id = '%s'" % code["id"]) == "0"
    finally:
        psql("ALTER FUNCTION qr_record_scans_away(jsonb) RENAME TO qr_record_scans")
    deadline = time.time() + 10
    while time.time() < deadline and psql("SELECT scan_count FROM qr_codes WHERE id = '%s'" % code["id"]) != "7":
        time.sleep(0.1)
    assert psql("SELECT coalesce(sum(count), 0) FROM qr_scans WHERE code_id = '%s'" % code["id"]) == "7"
    assert psql("SELECT scan_count FROM qr_codes WHERE id = '%s'" % code["id"]) == "7"
    assert "kept for the next attempt" in open(s.log_path).read()


def test_batch_survives_sigkill(server_factory, run_batchd, own_database):
    """SIGKILL in the middle of a 1000-item batch: the next process finishes it, each code rendered once."""
    a, keys = own_server(server_factory, run_batchd, own_database,
                         {"BATCHD_RATE_LIMIT": "0", "BATCHD_JOB_LEASE_MS": "1500", "BATCHD_WORKERS": "1"})

    def psql(sql):
        return psql_run(own_database, sql)
    items = [{"target": {"text": "kill test %d" % i}} for i in range(1000)]
    # a designed code renders through cairo (milliseconds each, not the plain
    # fast path's fraction of one): the batch takes seconds on one worker, so
    # the kill lands mid-batch however fast the machine is
    design = {"shapes": {"body": "dots", "eye_frame": "rounded"}, "colors": {"foreground": "#1a2a4a"}}
    r = requests.post(a.url + "/v1/batches", headers=H(keys["live_key"]),
                      data=json.dumps({"items": items, "design": design}))
    assert r.status_code == 202
    bid = r.json()["id"]
    deadline = time.time() + 30
    while time.time() < deadline and int(psql("SELECT completed_count FROM qr_batches WHERE id = '%s'" % bid)) < 50:
        time.sleep(0.02)
    a.kill()
    partial = int(psql("SELECT completed_count FROM qr_batches WHERE id = '%s'" % bid))
    assert 0 < partial < 1000, partial
    b = server_factory(env={"BATCHD_RATE_LIMIT": "0", "BATCHD_JOB_LEASE_MS": "1500", "BATCHD_JOB_POLL_MS": "200"},
                       database_url=own_database)
    done = wait_batch(b, keys["live_key"], bid, timeout=90)
    assert done["status"] == "completed" and done["completed_count"] == 1000 and done["error_count"] == 0
    assert psql("SELECT count(*) FROM qr_images i JOIN qr_codes c ON c.id = i.code_id WHERE c.batch_id = '%s'"
                % bid) == "1000"
    assert psql("SELECT count(*) FROM qr_codes WHERE batch_id = '%s' AND render_status <> 'done'" % bid) == "0"
    assert psql("SELECT state FROM bd_jobs WHERE ref = '%s'" % bid) == "done"


def jpeg_data_url(srv, keys):
    """A small real JPEG (a red square): a hand-written PDF rasterised by poppler."""
    content = b"0.8 0.1 0.1 rg 0 0 40 40 re f"
    pdf = (b"%%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n"
           b"2 0 obj<</Type/Pages/Kids[3 0 R]/Count 1>>endobj\n"
           b"3 0 obj<</Type/Page/Parent 2 0 R/MediaBox[0 0 40 40]/Contents 4 0 R>>endobj\n"
           b"4 0 obj<</Length %d>>stream\n%s\nendstream endobj\ntrailer<</Root 1 0 R>>\n%%%%EOF\n"
           % (len(content), content))
    d = tempfile.mkdtemp()
    try:
        with open(os.path.join(d, "s.pdf"), "wb") as f:
            f.write(pdf)
        subprocess.run(["pdftoppm", "-jpeg", "-r", "72", os.path.join(d, "s.pdf"), os.path.join(d, "s")], check=True,
                       capture_output=True)
        jpg = [p for p in os.listdir(d) if p.endswith(".jpg")][0]
        with open(os.path.join(d, jpg), "rb") as f:
            data = f.read()
    finally:
        shutil.rmtree(d)
    assert data[:2] == b"\xff\xd8"
    return "data:image/jpeg;base64," + base64.b64encode(data).decode()


SVG_LOGO = ('<svg xmlns="http://www.w3.org/2000/svg" width="20" height="20" viewBox="0 0 20 20">'
            '<circle cx="10" cy="10" r="9" fill="#c62828"/></svg>')


def test_jpeg_and_svg_logos(srv, keys):
    svg_url = "data:image/svg+xml;base64," + base64.b64encode(SVG_LOGO.encode()).decode()
    for url in (jpeg_data_url(srv, keys), svg_url):
        design = {"error_correction": "H", "logo": {"url": url, "clear_background": True}}
        r = create_code(srv, keys["live_key"], {"target": {"text": "logo kind"}, "design": design})
        assert r.status_code == 201, r.text
        cid = r.json()["id"]
        assert zbar(download(srv, keys["live_key"], cid).content) == "logo kind"
        for fmt in ("svg", "pdf"):
            assert download(srv, keys["live_key"], cid, format=fmt).status_code == 200


@pytest.mark.parametrize("url", [
    "data:image/gif;base64,R0lGODlhAQABAAAAACw=",
    "data:image/jpeg;base64," + base64.b64encode(b"\xff\xd8not a jpeg").decode(),
    "data:image/svg+xml;base64," + base64.b64encode(b"<svg").decode(),
    "data:image/png;base64,!!!",
])
def test_bad_logos_rejected(srv, keys, url):
    r = create_code(srv, keys["live_key"], {"target": {"text": "x"},
                                            "design": {"error_correction": "H", "logo": {"url": url}}})
    assert r.status_code == 400 and r.json()["error"]["param"] == "design.logo.url", r.text


def test_list_codes_filters_sort_and_pages(srv, keys, run_batchd):
    out = run_batchd("seed-demo", "--tenant", "lister", "--json", env={"BATCHD_PUBLIC_URL": srv.url})
    k = json.loads(out.stdout)["qr"]["live_key"]
    made = []
    for i, name in enumerate(["delta", "alpha", "charlie", "bravo"]):
        body = {"name": name, "folder_id": "f1" if i % 2 else "f2",
                "target": {"destination": "https://example.com/%d" % i} if i < 2 else {"text": name}}
        made.append(create_code(srv, k, body).json())
    def page_all(**params):
        seen, cursor = [], None
        while True:
            p = dict(params, limit=1)
            if cursor:
                p["cursor"] = cursor
            r = requests.get(srv.url + "/v1/qr-codes", headers=H(k), params=p)
            assert r.status_code == 200, r.text
            body = r.json()
            seen += [c["name"] for c in body["data"]]
            if not body["has_more"]:
                return seen
            cursor = body["next_cursor"]
    assert page_all(sort="name", order="asc") == ["alpha", "bravo", "charlie", "delta"]
    assert page_all(sort="name", order="desc") == ["delta", "charlie", "bravo", "alpha"]
    assert page_all(sort="created_at", order="asc") == ["delta", "alpha", "charlie", "bravo"]
    assert sorted(page_all(kind="dynamic")) == ["alpha", "delta"]
    assert sorted(page_all(kind="static")) == ["bravo", "charlie"]
    assert sorted(page_all(folder_id="f1")) == ["alpha", "bravo"]
    for bad in ({"kind": "x"}, {"sort": "color"}, {"order": "up"}):
        assert requests.get(srv.url + "/v1/qr-codes", headers=H(k), params=bad).status_code == 400


def thread_nices(pid):
    """{tid: nice} of a process's threads (field 19 of /proc/<pid>/task/<tid>/stat)."""
    out = {}
    for tid in os.listdir("/proc/%d/task" % pid):
        with open("/proc/%d/task/%s/stat" % (pid, tid)) as f:
            out[int(tid)] = int(f.read().rsplit(")", 1)[1].split()[16])
    return out


def test_worker_nice(server_factory, run_batchd, own_database):
    """BATCHD_WORKER_NICE lowers the render threads' priority, not the loop thread's."""
    srv, keys = own_server(server_factory, run_batchd, own_database,
                           {"BATCHD_RATE_LIMIT": "0", "BATCHD_WORKER_NICE": "7", "BATCHD_WORKERS": "2"})
    r = requests.post(srv.url + "/v1/batches", headers=H(keys["live_key"]),
                      data=json.dumps({"items": [{"target": {"text": "nice %d" % i}} for i in range(300)]}))
    assert r.status_code == 202
    wait_batch(srv, keys["live_key"], r.json()["id"], timeout=60)
    nices = thread_nices(srv.proc.pid)
    assert nices[srv.proc.pid] == 0, nices          # the loop thread
    assert list(nices.values()).count(7) >= 1, nices  # the threads that rendered

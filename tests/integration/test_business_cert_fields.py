"""The certificate and template objects as vec.digital documents them
(issue 20): pdf_path, image_path, qrcode_path, barcode_path (a Code 128 SVG
of the reference id, served at that path and read back with zbarimg and
ZXingReader), customer_id and its filter, created_at, updated_at; search
and paging on the template list; the institution in the single template."""
import json
import os
import re
import struct
import subprocess
import tempfile
import time
import zlib

import pytest
import requests


@pytest.fixture(scope="module")
def srv(server_factory):
    return server_factory(env={"BATCHD_RATE_LIMIT": "0"})


def seed(run_batchd, srv, tenant):
    out = run_batchd("seed-demo", "--tenant", tenant, "--json", env={"BATCHD_PUBLIC_URL": srv.url})
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)["business"]


@pytest.fixture(scope="module")
def demo(run_batchd, srv):
    return seed(run_batchd, srv, "certfields")


@pytest.fixture(scope="module")
def rival(run_batchd, srv):
    return seed(run_batchd, srv, "certfieldsrival")


def auth(tok):
    return {"Authorization": "Bearer " + tok}


def upload(srv, demo, data, name="fields"):
    files = [("name", (None, name)), ("template_id", (None, demo["template_ids"]["plain"])),
             ("csv_file", ("r.csv", data, "text/csv"))]
    r = requests.post(srv.url + "/business/batches", headers=auth(demo["token"]), files=files)
    assert r.status_code == 201, r.text
    return r.json()["data"]


def wait_done(srv, tok, bid, timeout=90):
    deadline = time.time() + timeout
    while True:
        b = requests.get(srv.url + "/business/batches/" + bid, headers=auth(tok)).json()["data"]
        if b["status"] in ("completed", "partially_completed", "failed"):
            return b
        assert time.time() < deadline, b
        time.sleep(0.2)


ROSTER = (b"RecipientsEmail,RecipientsName,IssueDate,CustomerId\r\n"
          b"ann@example.com,Ann,15-02-2025,CUST-001\r\n"
          b"bob@example.com,Bob,15-02-2025,\r\n"
          b"not-an-email,Cid,15-02-2025,CUST-001\r\n"
          b"dee@example.com,Dee,15-02-2025,cust 002 \r\n")


@pytest.fixture(scope="module")
def batch(srv, demo):
    b = upload(srv, demo, ROSTER)
    return wait_done(srv, demo["token"], b["id"])


def certs(srv, tok, **params):
    r = requests.get(srv.url + "/business/certificates", headers=auth(tok), params=dict(per_page=100, **params))
    assert r.status_code == 200, r.text
    return r.json()


def test_certificate_fields(srv, demo, batch, psql):
    page = certs(srv, demo["token"], batch_id=batch["id"])
    c = {x["name"]: x for x in page["data"]}
    ann, bob, cid = c["Ann"], c["Bob"], c["Cid"]
    assert list(ann)[-7:] == ["pdf_path", "image_path", "qrcode_path", "barcode_path", "customer_id", "created_at",
                              "updated_at"]
    base = "/business/certificates/" + ann["id"]
    assert ann["pdf_path"] == base + "/pdf" and ann["image_path"] == base + "/png"
    assert ann["qrcode_path"] == base + "/qrcode.svg" and ann["barcode_path"] == base + "/barcode.svg"
    assert ann["pdf_url"] == srv.url + ann["pdf_path"]
    assert ann["customer_id"] == "CUST-001" and bob["customer_id"] is None
    assert c["Dee"]["customer_id"] == "cust 002 "  # as written
    # a failed row has no artefacts and no barcode
    assert cid["status"] == "failed"
    assert (cid["pdf_path"], cid["image_path"], cid["qrcode_path"], cid["barcode_path"]) == (None,) * 4
    # created_at is the upload; updated_at moved when the row was rendered
    assert ann["created_at"].endswith("Z") and ann["updated_at"].endswith("Z")
    assert ann["updated_at"] >= ann["generated_at"] >= ann["created_at"]
    assert cid["updated_at"] == cid["created_at"]  # never changed after the upload
    for path in (ann["pdf_path"], ann["image_path"], ann["qrcode_path"]):
        assert requests.get(srv.url + path, headers=auth(demo["token"])).status_code == 200
    one = requests.get(srv.url + base, headers=auth(demo["token"])).json()["data"]
    assert one == ann


def test_updated_at_follows_revocation(srv, demo, batch):
    c = [x for x in certs(srv, demo["token"], batch_id=batch["id"])["data"] if x["name"] == "Bob"][0]
    time.sleep(0.01)
    r = requests.post(srv.url + "/business/certificates/%s/revoke" % c["id"], headers=auth(demo["token"]))
    assert r.status_code == 200, r.text
    after = r.json()["data"]
    assert after["status"] == "revoked" and after["updated_at"] > c["updated_at"]
    assert after["created_at"] == c["created_at"]


def svg_to_png(svg, scale=4, quiet=20):
    """Rasterises the barcode SVG (one path of bars: M x y h w v h h -w Z on a
    white rect; the text is left out) into a grayscale PNG, independently of
    the code that drew it."""
    m = re.search(r'viewBox="0 0 ([\d.]+) ([\d.]+)"', svg)
    w, h = int(float(m.group(1)) * scale) + 2 * quiet, int(float(m.group(2)) * scale) + 2 * quiet
    px = [bytearray(b"\xff" * w) for _ in range(h)]
    bars = re.findall(r"M([\d.]+) ([\d.]+)h([\d.]+)v([\d.]+)h-[\d.]+Z", svg)
    assert bars
    for x, y, bw, bh in bars:
        x0, y0 = round(float(x) * scale) + quiet, round(float(y) * scale) + quiet
        x1, y1 = round((float(x) + float(bw)) * scale) + quiet, round((float(y) + float(bh)) * scale) + quiet
        for yy in range(y0, y1):
            px[yy][x0:x1] = b"\0" * (x1 - x0)
    raw = b"".join(b"\0" + bytes(r) for r in px)

    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def decode(svg_bytes, tool):
    with tempfile.TemporaryDirectory() as d:
        png = os.path.join(d, "b.png")
        open(png, "wb").write(svg_to_png(svg_bytes.decode()))
        if tool == "zbarimg":
            cmd = ["zbarimg", "--raw", "-q", "-Sdisable", "-Scode128.enable", png]
        else:
            cmd = ["ZXingReader", "-format", "Code128", png]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=30).stdout.strip()


def test_barcode_is_code128_of_the_reference(srv, demo, batch):
    ann = [x for x in certs(srv, demo["token"], batch_id=batch["id"])["data"] if x["name"] == "Ann"][0]
    r = requests.get(srv.url + ann["barcode_path"], headers=auth(demo["token"]))
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"] == "image/svg+xml"
    assert "immutable" in r.headers["Cache-Control"]
    assert r.content.startswith(b"<?xml") and b"<svg" in r.content
    assert ann["reference_id"].encode() in r.content  # the human-readable line
    assert decode(r.content, "zbarimg") == ann["reference_id"]
    zx = decode(r.content, "ZXingReader")
    assert ann["reference_id"] in zx, zx
    # same bytes every time: nothing but the reference goes in
    assert requests.get(srv.url + ann["barcode_path"], headers=auth(demo["token"])).content == r.content


def test_barcode_scoping(srv, demo, rival, batch):
    data = certs(srv, demo["token"], batch_id=batch["id"])["data"]
    ann = [x for x in data if x["name"] == "Ann"][0]
    cid = [x for x in data if x["name"] == "Cid"][0]
    assert requests.get(srv.url + ann["barcode_path"], headers=auth(rival["token"])).status_code == 404
    assert requests.get(srv.url + "/business/certificates/%s/barcode.svg" % cid["id"],
                        headers=auth(demo["token"])).status_code == 404
    assert requests.get(srv.url + "/business/certificates/nope/barcode.svg",
                        headers=auth(demo["token"])).status_code == 404
    assert requests.get(srv.url + ann["barcode_path"]).status_code == 401


def test_customer_id_filter(srv, demo, rival, batch):
    page = certs(srv, demo["token"], customer_id="CUST-001")
    assert sorted(x["name"] for x in page["data"]) == ["Ann", "Cid"]
    assert page["meta"]["total"] == 2
    assert "customer_id=CUST-001" in page["links"]["first"]
    assert certs(srv, demo["token"], customer_id="cust 002 ")["meta"]["total"] == 1
    assert certs(srv, demo["token"], customer_id="cust-001")["meta"]["total"] == 0  # exact
    assert certs(srv, rival["token"], customer_id="CUST-001")["meta"]["total"] == 0
    r = requests.get(srv.url + "/business/certificates", headers=auth(demo["token"]),
                     params={"customer_id": "x" * 256})
    assert r.status_code == 422
    assert r.json()["errors"] == {"customer_id": ["The customer id field must not be greater than 255 characters."]}


def templates(srv, tok, **params):
    r = requests.get(srv.url + "/business/certificate-templates", headers=auth(tok), params=params)
    return r


def test_template_search_and_paging(srv, demo):
    all_ = templates(srv, demo["token"], per_page=100).json()
    names = [t["name"] for t in all_["data"]]
    assert len(names) >= 3
    target = names[0]
    word = target.split()[0][:4].upper()  # case-insensitive substring
    r = templates(srv, demo["token"], search=word)
    assert r.status_code == 200, r.text
    got = [t["name"] for t in r.json()["data"]]
    assert target in got and all(word.lower() in n.lower() for n in got)
    assert "search=" in r.json()["links"]["first"]
    assert templates(srv, demo["token"], search="no such template zz").json()["meta"]["total"] == 0
    assert templates(srv, demo["token"], search="%").json()["meta"]["total"] == 0  # wildcards are literal
    p1 = templates(srv, demo["token"], per_page=1, page=1).json()
    p2 = templates(srv, demo["token"], per_page=1, page=2).json()
    assert p1["meta"]["per_page"] == 1 and p1["meta"]["total"] == len(names)
    assert [p1["data"][0]["name"], p2["data"][0]["name"]] == names[:2]
    assert templates(srv, demo["token"], per_page=0).status_code == 422
    assert templates(srv, demo["token"], search="x" * 256).status_code == 422


def test_single_template_embeds_institution(srv, demo, psql):
    tid = demo["template_ids"]["plain"]
    r = requests.get(srv.url + "/business/certificate-templates/" + tid, headers=auth(demo["token"]))
    assert r.status_code == 200, r.text
    t = r.json()["data"]
    assert list(t)[-1] == "institution" and "layout" in t
    inst = t["institution"]
    assert list(inst) == ["id", "name", "logo", "is_verified", "status", "created_at", "updated_at"]
    row = psql("SELECT id, name FROM biz_institutions WHERE id = %d" % inst["id"])
    assert row == "%d|%s" % (inst["id"], inst["name"])
    assert t["institution_id"] == inst["id"]
    assert inst["logo"] is None and inst["is_verified"] is False and inst["status"] == "active"
    assert inst["created_at"].endswith("Z")
    # the list keeps the short object
    lst = templates(srv, demo["token"]).json()["data"]
    assert all("institution" not in x and "layout" not in x for x in lst)

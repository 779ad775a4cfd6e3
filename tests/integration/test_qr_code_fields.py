"""The code object as QRKit documents it (issue 20), beside our fields:
top-level utm, design.has_logo (read-only: a design read back can be sent
again), default names Campaign {code} / Static {code}, scan_count null for
static codes; target.destination accepting a pre-encoded payload of every
type, encoded exactly (decoded with zbarimg)."""
import base64
import json
import os
import struct
import subprocess
import tempfile
import zlib

import pytest
import requests

from conftest import seed_demo


@pytest.fixture(scope="module")
def srv(server_factory):
    return server_factory(env={"BATCHD_RATE_LIMIT": "0", "BATCHD_JOB_POLL_MS": "200"})


@pytest.fixture(scope="module")
def keys(run_batchd, srv):
    return seed_demo(run_batchd, srv, "qr")


def H(key):
    return {"Authorization": "Bearer " + key, "Content-Type": "application/json"}


def create(srv, key, body):
    return requests.post(srv.url + "/v1/qr-codes", headers=H(key), data=json.dumps(body))


def zbar(png):
    with tempfile.NamedTemporaryFile(suffix=".png", delete=False) as f:
        f.write(png)
        path = f.name
    try:
        out = subprocess.run(["zbarimg", "--raw", "-q", "-Sbinary", "-Sdisable", "-Sqrcode.enable", path],
                             capture_output=True, timeout=30)
        data = out.stdout[:-1] if out.stdout.endswith(b"\n") else out.stdout
        return data.decode("utf-8")
    finally:
        os.unlink(path)


def logo():
    raw = b"".join(b"\0" + b"\x20\x20\x80" * 8 for _ in range(8))

    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xffffffff)
    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 8, 8, 8, 2, 0, 0, 0))
           + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
    return "data:image/png;base64," + base64.b64encode(png).decode()


def test_dynamic_code_fields(srv, keys):
    key = keys["live_key"]
    utm = {"source": "qr", "campaign": "spring"}
    c = create(srv, key, {"target": {"destination": "https://example.com/p", "utm": utm}}).json()
    assert c["kind"] == "dynamic" and c["name"] == "Campaign " + c["short_code"]
    assert c["utm"] == utm and c["scan_count"] == 0 and c["design"]["has_logo"] is False
    got = requests.get(srv.url + "/v1/qr-codes/" + c["id"], headers=H(key)).json()
    assert got["name"] == c["name"] and got["utm"] == utm
    # without utm: null; a given name is kept
    c = create(srv, key, {"name": "Mine", "target": {"destination": "https://example.com/q"}}).json()
    assert c["utm"] is None and c["name"] == "Mine"


def test_static_code_fields_and_design_round_trip(srv, keys):
    key = keys["live_key"]
    c = create(srv, key, {"target": {"text": "hello"},
                          "design": {"error_correction": "H", "logo": {"url": logo()}}}).json()
    assert c["kind"] == "static" and c["name"] == "Static " + c["id"][-8:]
    assert c["scan_count"] is None and c["utm"] is None
    assert c["design"]["has_logo"] is True
    # the design as read can be sent back as it is
    r = create(srv, key, {"target": {"text": "again"}, "design": c["design"]})
    assert r.status_code == 201, r.text
    listed = requests.get(srv.url + "/v1/qr-codes", headers=H(key), params={"kind": "static"}).json()["data"]
    mine = [x for x in listed if x["id"] == c["id"]][0]
    assert mine["scan_count"] is None and mine["design"]["has_logo"] is True
    r = create(srv, key, {"target": {"text": "x"}, "design": {"has_logo": "yes"}})
    assert r.status_code == 400 and r.json()["error"]["param"] == "design.has_logo"


PRE = [
    ("mailto:team@example.com?subject=Hello", "email"),
    ("tel:+493012345", "phone"),
    ("SMSTO:+493012345:see you", "sms"),
    ("WIFI:T:WPA;S:office;P:correct horse;;", "wifi"),
    ("BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Ada Lovelace\r\nEND:VCARD", "vcard"),
    ("BEGIN:VEVENT\r\nSUMMARY:Launch\r\nDTSTART:20260101T100000Z\r\nEND:VEVENT", "event"),
    ("just some text", "text"),
]


@pytest.mark.parametrize("payload,type_", PRE, ids=[t for _, t in PRE])
def test_preencoded_destination_every_type(srv, keys, payload, type_):
    key = keys["live_key"]
    r = create(srv, key, {"target": {"destination": payload}})
    assert r.status_code == 201, r.text
    c = r.json()
    assert c["type"] == type_ and c["kind"] == "static" and c["short_code"] is None
    png = requests.get(srv.url + "/v1/qr-codes/%s/download" % c["id"], headers=H(key)).content
    assert zbar(png) == payload


def test_preencoded_destination_in_a_batch_and_errors(srv, keys):
    key = keys["live_key"]
    items = [{"target": {"destination": p}} for p, _ in PRE[:3]]
    items.append({"target": {"destination": "tel:+49301", "utm": {"source": "x"}}})
    r = requests.post(srv.url + "/v1/batches", headers=H(key), data=json.dumps({"items": items}))
    assert r.status_code == 202, r.text
    bid = r.json()["id"]
    for _ in range(300):
        b = requests.get(srv.url + "/v1/batches/" + bid, headers=H(key)).json()
        if b["status"] != "processing":
            break
    assert [i["type"] for i in b["items"][:3]] == ["email", "phone", "sms"]
    assert b["items"][3]["qr_code_id"] is None and "only target field" in b["items"][3]["error"]

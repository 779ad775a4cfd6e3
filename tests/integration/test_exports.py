"""Exports of a mint job, streamed: the CSV manifest (content, formula
neutralisation) and the ZIP of SVG QR codes, one of which is decoded with
zbarimg and resolved through the resolver; auth as /rpc."""
import csv
import io
import os
import re
import struct
import subprocess
import tempfile
import urllib.parse
import zipfile
import zlib

import pytest
import requests

from conftest import seed_demo
from mintlib import all_units, new_batch, ok, pgrst, submit, wait_job


@pytest.fixture(scope="module")
def srv(server_factory):
    return server_factory(env={"BATCHD_RATE_LIMIT": "0", "BATCHD_MINT_CHUNK_UNITS": "1000"})


@pytest.fixture(scope="module")
def demo(run_batchd, srv):
    return seed_demo(run_batchd, srv, "products")


@pytest.fixture(scope="module")
def other(run_batchd, srv):
    return seed_demo(run_batchd, srv, "products", tenant="rival")


@pytest.fixture(scope="module")
def job(srv, demo):
    batch = new_batch(srv, demo, "LOT-X1")
    j = ok(submit(srv, demo, batch, 6000))["mint_job_id"]
    assert wait_job(srv, demo, j)["status"] == "COMPLETED"
    return j


def export(srv, path, token):
    return requests.get(srv.url + path, headers={"Authorization": "Bearer " + token} if token else {}, timeout=60)


def test_csv_manifest(srv, demo, job):
    r = export(srv, "/exports/mint-jobs/%s.csv" % job, demo["viewer_jwt"])
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith("text/csv") and r.headers["Transfer-Encoding"] == "chunked"
    assert r.headers["X-Mint-Job-Status"] == "COMPLETED"
    rows = list(csv.reader(io.StringIO(r.text)))
    assert rows[0] == ["gtin", "lot", "serial", "uri"]
    units = all_units(srv, demo, job)
    assert [[u["gtin"], u["lot"], u["serial"], u["digital_link"]] for u in units] == rows[1:]
    assert len(rows) == 6001


def test_csv_neutralises_formulas(srv, demo):
    batch = new_batch(srv, demo, "=1+2")
    serials = ["+SUM(A1)", "-5", "=cmd", "a,b\"c", "safe"]
    j = ok(submit(srv, demo, batch, serials=serials))["mint_job_id"]
    wait_job(srv, demo, j)
    r = export(srv, "/exports/mint-jobs/%s.csv" % j, demo["jwt"])
    rows = list(csv.reader(io.StringIO(r.text)))[1:]
    assert [x[1] for x in rows] == ["'=1+2"] * 5
    assert [x[2] for x in rows] == ["'+SUM(A1)", "'-5", "'=cmd", "a,b\"c", "safe"]
    assert all(x[3].startswith(srv.url + "/01/") for x in rows)
    assert '"a,b""c"' in r.text


def test_auth(srv, demo, other, job):
    for path in ("/exports/mint-jobs/%s.csv" % job, "/exports/mint-jobs/%s/qr.zip" % job):
        pgrst(export(srv, path, None), 401, "Not authenticated")
        pgrst(export(srv, path, "a.b.c"), 401, "Not authenticated")
        pgrst(export(srv, path, other["jwt"]), 404)  # another brand's job is not disclosed
    pgrst(export(srv, "/exports/mint-jobs/00000000-0000-4000-8000-000000000000.csv", demo["jwt"]), 404)
    pgrst(export(srv, "/exports/mint-jobs/nope.csv", demo["jwt"]), 400, "Invalid input")
    pgrst(export(srv, "/exports/mint-jobs/%s.txt" % job, demo["jwt"]), 404)


def svg_to_png(svg, scale=6):
    """Rasterises the plain SVG of the renderer (one path of 1-module-high
    horizontal runs on a white rect) into a grayscale PNG."""
    m = re.search(r'viewBox="0 0 (\d+) (\d+)"', svg)
    size = int(m.group(1))
    px = [[255] * (size * scale) for _ in range(size * scale)]
    for x, y, run in re.findall(r"M(\d+) (\d+)h(\d+)v1h-\d+z", svg):
        x, y, run = int(x), int(y), int(run)
        for yy in range(y * scale, (y + 1) * scale):
            row = px[yy]
            for xx in range(x * scale, (x + run) * scale):
                row[xx] = 0
    w = size * scale
    raw = b"".join(b"\0" + bytes(r) for r in px)

    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, w, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def zbar(png):
    with tempfile.NamedTemporaryFile(suffix=".png", delete=False) as f:
        f.write(png)
        path = f.name
    try:
        out = subprocess.run(["zbarimg", "--raw", "-q", "-Sdisable", "-Sqrcode.enable", path],
                             capture_output=True, timeout=30)
        return out.stdout.decode().strip()
    finally:
        os.unlink(path)


def test_qr_zip(srv, demo, job):
    r = export(srv, "/exports/mint-jobs/%s/qr.zip" % job, demo["viewer_jwt"])
    assert r.status_code == 200 and r.headers["Content-Type"] == "application/zip"
    assert r.headers["Transfer-Encoding"] == "chunked"
    z = zipfile.ZipFile(io.BytesIO(r.content))
    assert z.testzip() is None
    names = z.namelist()
    units = all_units(srv, demo, job)
    assert names == ["%s_%s.svg" % (u["gtin"], u["serial"]) for u in units]
    for i in (0, 2999, 5999):
        svg = z.read(names[i]).decode()
        assert svg.startswith("<?xml") and "<svg" in svg
        uri = zbar(svg_to_png(svg))
        assert uri == units[i]["digital_link"]
        # the decoded URI resolves to the unit's passport
        res = requests.get(srv.url + urllib.parse.urlsplit(uri).path, allow_redirects=False, timeout=10)
        assert res.status_code == 307 and res.headers["Location"] == units[i]["passport_url"]


def test_qr_zip_batch_mode_and_odd_serials(srv, demo):
    batch = new_batch(srv, demo, "LOT-ZB")
    j = ok(submit(srv, demo, batch, 3, identity_mode="batch"))["mint_job_id"]
    wait_job(srv, demo, j)
    z = zipfile.ZipFile(io.BytesIO(export(srv, "/exports/mint-jobs/%s/qr.zip" % j, demo["jwt"]).content))
    assert z.namelist() == ["%s_LOT-ZB_%07d.svg" % (demo["gtin"], i) for i in (1, 2, 3)]
    assert zbar(svg_to_png(z.read(z.namelist()[0]).decode())) == "%s/01/%s/10/LOT-ZB" % (srv.url, demo["gtin"])
    b2 = new_batch(srv, demo, "LOT-ZS")
    j2 = ok(submit(srv, demo, b2, serials=["../x", "a/b"]))["mint_job_id"]
    wait_job(srv, demo, j2)
    z = zipfile.ZipFile(io.BytesIO(export(srv, "/exports/mint-jobs/%s/qr.zip" % j2, demo["jwt"]).content))
    assert z.namelist() == ["%s_..%%2Fx.svg" % demo["gtin"], "%s_a%%2Fb.svg" % demo["gtin"]]


def test_export_streams_with_backpressure(srv, demo, job):
    """A client that reads slowly still gets the whole archive (the server
    waits for the socket instead of buffering)."""
    with requests.get(srv.url + "/exports/mint-jobs/%s/qr.zip" % job, stream=True, timeout=60,
                      headers={"Authorization": "Bearer " + demo["jwt"]}) as r:
        buf = io.BytesIO()
        for piece in r.iter_content(65536):
            buf.write(piece)
    z = zipfile.ZipFile(buf)
    assert len(z.namelist()) == 6000

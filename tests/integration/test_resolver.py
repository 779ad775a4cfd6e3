"""The public GS1 Digital Link resolver and the passport pages, against the
real server and PostgreSQL: 307 + Location + Link, RFC 9264 linksets, 400
and 404 answers, query attributes, /.well-known/gs1resolver, passports as
HTML and JSON, and answers that follow updates."""
import http.client
import json
import urllib.parse

import pytest
import requests

from mintlib import all_units, new_batch, ok, pgrst, rpc, submit, wait_job

LINKSET = "application/linkset+json"


@pytest.fixture(scope="module")
def srv(server_factory):
    return server_factory(env={"BATCHD_RATE_LIMIT": "0"})


@pytest.fixture(scope="module")
def demo(run_batchd, srv):
    out = run_batchd("seed-demo", "--json", env={"BATCHD_PUBLIC_URL": srv.url})
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)["products"]


@pytest.fixture(scope="module")
def minted(srv, demo):
    batch = new_batch(srv, demo, "LOT-R1")
    job = ok(submit(srv, demo, batch, 20))["mint_job_id"]
    assert wait_job(srv, demo, job)["status"] == "COMPLETED"
    byo_batch = new_batch(srv, demo, "LOT-R2")
    byo = ok(submit(srv, demo, byo_batch, serials=["A/B+C", "plain-1"]))["mint_job_id"]
    wait_job(srv, demo, byo)
    return {"units": all_units(srv, demo, job), "byo": all_units(srv, demo, byo), "batch": batch}


class Raw:
    """A response read with http.client, which sends the path byte for byte
    (requests re-encodes malformed escapes such as %zz)."""

    def __init__(self, resp):
        self.status_code = resp.status
        self.headers = resp.headers
        self.text = resp.read().decode()

    def json(self):
        return json.loads(self.text)


def get(srv, path, headers=None):
    c = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10)
    try:
        c.request("GET", path, headers=headers or {})
        return Raw(c.getresponse())
    finally:
        c.close()


def test_unit_redirect(srv, demo, minted):
    u = minted["units"][3]
    for path in ("/01/%s/10/LOT-R1/21/%s" % (demo["gtin"], u["serial"]), "/01/%s/21/%s" % (demo["gtin"], u["serial"])):
        for _ in range(2):  # the second answer comes from the cache
            r = get(srv, path)
            assert r.status_code == 307, r.text
            assert r.headers["Location"] == u["passport_url"]
            link = r.headers["Link"]
            assert '<%s>; rel="https://gs1.org/voc/defaultLink"' % u["passport_url"] in link
            assert 'rel="linkset"; type="application/linkset+json"' in link


def test_gtin_forms_and_query_attributes(srv, demo, minted):
    u = minted["units"][0]
    g13 = demo["gtin"][1:]  # the seeded GTIN-14 starts with 0: its GTIN-13 form resolves too
    r = get(srv, "/01/%s/21/%s?17=261231&11=260101&linkType=gs1:pip" % (g13, u["serial"]))
    assert r.status_code == 307
    loc = urllib.parse.urlsplit(r.headers["Location"])
    assert loc.path.endswith("/passports/%s~21~%s" % (demo["gtin"], u["serial"]))
    assert urllib.parse.parse_qs(loc.query) == {"17": ["261231"], "11": ["260101"]}
    r = get(srv, "/01/%s/21/%s?17=261399" % (demo["gtin"], u["serial"]))
    body = pgrst(r, 400, "Invalid input")
    assert "17" in body["details"]
    assert "Link" in r.headers


def test_linkset(srv, demo, minted):
    u = minted["units"][1]
    path = "/01/%s/10/LOT-R1/21/%s" % (demo["gtin"], u["serial"])
    r = get(srv, path, headers={"Accept": LINKSET})
    assert r.status_code == 200 and r.headers["Content-Type"].startswith(LINKSET)
    assert "Link" in r.headers
    doc = r.json()
    assert list(doc) == ["linkset"] and len(doc["linkset"]) == 1
    ctx = doc["linkset"][0]
    assert ctx["anchor"] == srv.url + path
    default = ctx["https://gs1.org/voc/defaultLink"]
    assert default == [{"href": u["passport_url"], "title": "Digital product passport", "type": "text/html"}]
    assert ctx["https://gs1.org/voc/pip"][0]["type"] == "application/json"
    # linkType=linkset asks for the same
    r2 = get(srv, path + "?linkType=linkset")
    assert r2.status_code == 200 and r2.json() == doc


def test_product_and_lot_levels(srv, demo, minted):
    r = get(srv, "/01/%s" % demo["gtin"])
    assert r.status_code == 307 and r.headers["Location"] == "%s/passports/%s" % (srv.url, demo["gtin"])
    r = get(srv, "/01/%s/10/LOT-R1" % demo["gtin"])
    assert r.status_code == 307 and r.headers["Location"] == "%s/passports/%s~10~LOT-R1" % (srv.url, demo["gtin"])
    pgrst(get(srv, "/01/%s/10/NO-SUCH-LOT" % demo["gtin"]), 404)


def test_lot_rename_is_followed(srv, demo):
    batch = new_batch(srv, demo, "LOT-OLD")
    assert get(srv, "/01/%s/10/LOT-OLD" % demo["gtin"]).status_code == 307
    ok(rpc(srv, "update_product_batch", {"_brand_id": demo["brand_id"], "_batch_id": batch,
                                         "_patch": {"batch_number": "LOT-NEW"}}, demo["jwt"]))
    assert get(srv, "/01/%s/10/LOT-OLD" % demo["gtin"]).status_code == 404
    assert get(srv, "/01/%s/10/LOT-NEW" % demo["gtin"]).status_code == 307


def test_newly_minted_unit_resolves(srv, demo):
    """An identity looked up before it exists is not remembered as unknown."""
    batch = new_batch(srv, demo, "LOT-LATE")
    path = "/01/%s/21/LATE-1" % demo["gtin"]
    assert get(srv, path).status_code == 404
    wait_job(srv, demo, ok(submit(srv, demo, batch, serials=["LATE-1"]))["mint_job_id"])
    assert get(srv, path).status_code == 307


def test_escaped_serial(srv, demo, minted):
    odd = minted["byo"][0]
    assert odd["serial"] == "A/B+C"
    assert odd["digital_link"].endswith("/21/A%2FB%2BC")
    r = get(srv, urllib.parse.urlsplit(odd["digital_link"]).path)
    assert r.status_code == 307 and r.headers["Location"] == odd["passport_url"]
    # the wrong lot for a unit is not found
    pgrst(get(srv, "/01/%s/10/LOT-R1/21/A%%2FB%%2BC" % demo["gtin"]), 404)


@pytest.mark.parametrize("path,part", [
    ("/01/09506000134353", "check digit"),
    ("/01/123", "GTIN"),
    ("/01/0950600013435x", "GTIN"),
    ("/01/%(g)s/22/ABC", "AI"),
    ("/01/%(g)s/21/ABC/10/LOT", "AI"),
    ("/01/%(g)s/21", "value"),
    ("/01/%(g)s/21/%%7E", "character set 82"),
    ("/01/%(g)s/21/ABCDEFGHIJKLMNOPQRSTU", "20"),
    ("/01/%(g)s/10/L%%zz", "percent-encoding"),
])
def test_bad_syntax(srv, demo, path, part):
    r = get(srv, path % {"g": demo["gtin"]})
    body = pgrst(r, 400, "Invalid input")
    assert part.lower() in body["details"].lower(), body
    assert "gs1resolver" in r.headers["Link"]


def test_unknown(srv, demo):
    for path in ("/01/09506000134352/21/NOPE", "/01/00000000000017"):
        r = get(srv, path)
        pgrst(r, 404)
        assert "Link" in r.headers


def test_well_known(srv):
    r = get(srv, "/.well-known/gs1resolver")
    assert r.status_code == 200
    d = r.json()
    assert d["resolverRoot"] == srv.url and "gtin" in d["supportedPrimaryKeys"]
    assert "Link" in r.headers


def test_passport_html_and_json(srv, demo, minted):
    u = minted["units"][2]
    r = requests.get(u["passport_url"], timeout=10)
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/html")
    assert "Demo jacket" in r.text and u["serial"] in r.text and "LOT-R1" in r.text and demo["gtin"] in r.text
    assert "recycled polyester" in r.text
    j = requests.get(u["passport_url"], headers={"Accept": "application/json"}, timeout=10)
    assert j.status_code == 200 and j.headers["Content-Type"].startswith("application/json")
    d = j.json()
    assert d["level"] == "unit" and d["serial"] == u["serial"] and d["lot"] == "LOT-R1" and d["gtin"] == demo["gtin"]
    assert d["digital_link"] == u["digital_link"] and d["product"]["name"] == "Demo jacket"
    assert d["batch"]["status"] == "active"
    # the resolver's 307 leads here
    follow = requests.get(u["digital_link"], headers={"Accept": "application/json"}, timeout=10)
    assert follow.status_code == 200 and follow.json()["id"] == d["id"]


def test_passport_follows_batch_updates(srv, demo, minted):
    u = minted["units"][5]
    ok(rpc(srv, "update_product_batch", {"_brand_id": demo["brand_id"], "_batch_id": minted["batch"],
                                         "_patch": {"status": "recalled"}}, demo["jwt"]))
    # the redirect (cached) still leads to the passport, and the passport says it
    assert get(srv, urllib.parse.urlsplit(u["digital_link"]).path).status_code == 307
    r = requests.get(u["passport_url"], timeout=10)
    assert "recalled" in r.text
    assert requests.get(u["passport_url"], headers={"Accept": "application/json"}).json()["batch"]["status"] == "recalled"


def test_passport_html_is_escaped(srv, demo):
    p = ok(rpc(srv, "create_product", {"_brand_id": demo["brand_id"], "_name": "<script>x</script>",
                                       "_gtin": "4006381333931", "_attributes": {"<b>": "\"&'"}}, demo["jwt"]))
    r = requests.get("%s/passports/%s" % (srv.url, p["gtin"]), timeout=10)
    assert r.status_code == 200
    assert "<script>" not in r.text and "&lt;script&gt;" in r.text and "&quot;&amp;&#39;" in r.text


def test_passport_errors(srv, demo):
    for pid in ("abc", "09506000134353", demo["gtin"] + "~99~X", demo["gtin"] + "~21~", demo["gtin"] + "~21~%7E"):
        r = requests.get(srv.url + "/passports/" + pid, headers={"Accept": "application/json"}, timeout=10)
        pgrst(r, 400, "Invalid input")
    r = requests.get(srv.url + "/passports/%s~21~NOPE" % demo["gtin"], timeout=10)
    assert r.status_code == 404 and "text/html" in r.headers["Content-Type"]
    r = requests.get(srv.url + "/passports/%s~21~NOPE" % demo["gtin"], headers={"Accept": "application/json"})
    pgrst(r, 404)

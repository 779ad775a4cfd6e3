"""The public GS1 Digital Link resolver and the passport pages, against the
real server and PostgreSQL: 307 + Location + Link, RFC 9264 linksets (GS1's
linkset schema, every level up to the GTIN), 400 and 404 answers, HEAD,
OPTIONS and CORS, link types, query pass-through, walking up the tree,
compressed Digital Links, /.well-known/gs1resolver, passports as HTML and
JSON, answers that follow updates; activation on first scan, bots, and the
scan telemetry (get_unit_scans, list_mint_units). URIs and linksets are
checked with digital-link.js and GS1's schema (gs1lib)."""
import concurrent.futures
import csv
import http.client
import io
import json
import time
import urllib.parse

import pytest
import requests

from gs1lib import assert_valid_linksets, assert_valid_uris, gs1check
from mintlib import all_units, new_batch, ok, pgrst, rpc, submit, wait_job

LINKSET = "application/linkset+json"


@pytest.fixture(scope="module")
def srv(server_factory):
    return server_factory(env={"BATCHD_RATE_LIMIT": "0", "BATCHD_RESOLVER_SCAN_FLUSH_MS": "100"})


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
    return {"units": all_units(srv, demo, job), "byo": all_units(srv, demo, byo), "batch": batch, "job": job}


class Raw:
    """A response read with http.client, which sends the path byte for byte
    (requests re-encodes malformed escapes such as %zz)."""

    def __init__(self, resp):
        self.status_code = resp.status
        self.headers = resp.headers
        self.text = resp.read().decode()

    def json(self):
        return json.loads(self.text)


def get(srv, path, headers=None, method="GET"):
    c = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10)
    try:
        c.request(method, path, headers=headers or {})
        return Raw(c.getresponse())
    finally:
        c.close()


def linkset(srv, path):
    r = get(srv, path, headers={"Accept": LINKSET})
    assert r.status_code == 200 and r.headers["Content-Type"].startswith(LINKSET), r.text
    return r.json()


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
    # the JSON-LD context, served as such
    assert '; rel="http://www.w3.org/ns/json-ld#context"; type="application/ld+json"' in r.headers["Link"]
    ctx_url = [l.split(">;")[0].strip(" <") for l in r.headers["Link"].split(", <") if "json-ld#context" in l][0]
    assert ctx_url == srv.url + "/contexts/linkset.jsonld"
    c = requests.get(ctx_url, timeout=10)
    assert c.status_code == 200 and c.headers["Content-Type"].startswith("application/ld+json")
    assert c.json()["@context"]["anchor"] == "@id"
    doc = r.json()
    # every level up to the GTIN, most specific first, each described
    anchors = [c["anchor"] for c in doc["linkset"]]
    assert anchors == [srv.url + path, "%s/01/%s/10/LOT-R1" % (srv.url, demo["gtin"]), "%s/01/%s" % (srv.url, demo["gtin"])]
    descs = [c["itemDescription"] for c in doc["linkset"]]
    assert descs == ["Demo jacket, lot LOT-R1, serial %s" % u["serial"], "Demo jacket, lot LOT-R1", "Demo jacket"]
    unit = doc["linkset"][0]
    # exactly one default link, with a title and no other attribute; the
    # same target also under a descriptive link type
    assert unit["https://gs1.org/voc/defaultLink"] == [{"href": u["passport_url"], "title": "Digital product passport"}]
    assert [l["type"] for l in unit["https://gs1.org/voc/pip"]] == ["text/html", "application/json"]
    assert all(l["href"] == u["passport_url"] and l["title"] for l in unit["https://gs1.org/voc/pip"])
    assert doc["linkset"][2]["https://gs1.org/voc/defaultLink"][0]["href"] == "%s/passports/%s" % (srv.url, demo["gtin"])
    # linkType=linkset and linkType=all ask for the same, without redirecting
    for lt in ("linkset", "all", "gs1:linkset"):
        r2 = get(srv, path + "?linkType=" + lt)
        assert r2.status_code == 200 and r2.json() == doc
    assert_valid_linksets([doc])


def test_product_and_lot_levels(srv, demo, minted):
    r = get(srv, "/01/%s" % demo["gtin"])
    assert r.status_code == 307 and r.headers["Location"] == "%s/passports/%s" % (srv.url, demo["gtin"])
    r = get(srv, "/01/%s/10/LOT-R1" % demo["gtin"])
    assert r.status_code == 307 and r.headers["Location"] == "%s/passports/%s~10~LOT-R1" % (srv.url, demo["gtin"])
    assert r.headers["X-Resolved-Level"] == "batch"
    # an unknown lot walks up to the GTIN, saying so
    r = get(srv, "/01/%s/10/NO-SUCH-LOT" % demo["gtin"])
    assert r.status_code == 307 and r.headers["Location"] == "%s/passports/%s" % (srv.url, demo["gtin"])
    assert r.headers["X-Resolved-Level"] == "product"
    assert r.headers["X-Resolved-Identity"] == "%s/01/%s" % (srv.url, demo["gtin"])


def test_lot_rename_is_followed(srv, demo):
    batch = new_batch(srv, demo, "LOT-OLD")
    assert get(srv, "/01/%s/10/LOT-OLD" % demo["gtin"]).status_code == 307
    ok(rpc(srv, "update_product_batch", {"_brand_id": demo["brand_id"], "_batch_id": batch,
                                         "_patch": {"batch_number": "LOT-NEW"}}, demo["jwt"]))
    r = get(srv, "/01/%s/10/LOT-OLD" % demo["gtin"])
    assert r.status_code == 307 and r.headers["X-Resolved-Level"] == "product"
    r = get(srv, "/01/%s/10/LOT-NEW" % demo["gtin"])
    assert r.status_code == 307 and r.headers["X-Resolved-Level"] == "batch"


def test_newly_minted_unit_resolves(srv, demo):
    """An identity looked up before it exists is not remembered as unknown."""
    batch = new_batch(srv, demo, "LOT-LATE")
    path = "/01/%s/21/LATE-1" % demo["gtin"]
    r = get(srv, path)
    assert r.status_code == 307 and r.headers["X-Resolved-Level"] == "product"
    wait_job(srv, demo, ok(submit(srv, demo, batch, serials=["LATE-1"]))["mint_job_id"])
    r = get(srv, path)
    assert r.status_code == 307 and r.headers["X-Resolved-Level"] == "unit"
    assert r.headers["Location"].endswith("~21~LATE-1")


def test_escaped_serial(srv, demo, minted):
    odd = minted["byo"][0]
    assert odd["serial"] == "A/B+C"
    assert odd["digital_link"].endswith("/21/A%2FB%2BC")
    r = get(srv, urllib.parse.urlsplit(odd["digital_link"]).path)
    assert r.status_code == 307 and r.headers["Location"] == odd["passport_url"]
    # a unit named with another lot is not that unit: the lot's level answers
    r = get(srv, "/01/%s/10/LOT-R1/21/A%%2FB%%2BC" % demo["gtin"])
    assert r.status_code == 307 and r.headers["X-Resolved-Level"] == "batch"
    assert r.headers["Location"].endswith("~10~LOT-R1")


@pytest.mark.parametrize("path,part", [
    ("/01/09506000134353", "check digit"),
    ("/01/123", "GTIN"),
    ("/01/0950600013435x", "GTIN"),
    ("/01/%(g)s/17/261231", "AI 17"),
    ("/01/%(g)s/10/L/22/V", "order"),
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
    assert d["resolverRoot"] == srv.url and d["supportedPrimaryKeys"] == ["01"]
    assert {"namespace": "https://gs1.org/voc/", "prefix": "gs1:"} in d["supportedLinkType"]
    assert d["jsonLdContextLocation"] == srv.url + "/contexts/linkset.jsonld"
    assert "Link" in r.headers and r.headers["Access-Control-Allow-Origin"] == "*"


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


# --- GS1-Conformant Resolver criteria -------------------------------------------------------


def test_head_options_cors(srv, demo, minted):
    u = minted["units"][6]
    path = "/01/%s/10/LOT-R1/21/%s" % (demo["gtin"], u["serial"])
    g, h = get(srv, path), get(srv, path, method="HEAD")
    assert g.status_code == h.status_code == 307 and h.text == ""
    assert h.headers["Location"] == g.headers["Location"] and h.headers["Link"] == g.headers["Link"]
    hl = get(srv, path, headers={"Accept": LINKSET}, method="HEAD")
    assert hl.status_code == 200 and hl.text == "" and hl.headers["Content-Type"].startswith(LINKSET)
    for p in (path, "/01/%s" % demo["gtin"], "/01/%s/21/x/" % demo["gtin"], "/.well-known/gs1resolver"):
        o = get(srv, p, method="OPTIONS", headers={"Origin": "https://app.example", "Access-Control-Request-Method": "GET"})
        assert o.status_code == 200, (p, o.text)
        assert o.headers["Allow"] == "GET, HEAD, OPTIONS"
        assert o.headers["Access-Control-Allow-Methods"] == "GET, HEAD, OPTIONS"
        assert o.headers["Access-Control-Allow-Origin"] == "*"
    # CORS on redirects, linksets and errors alike; Link and Location readable
    for r in (g, get(srv, path, headers={"Accept": LINKSET}), get(srv, "/01/09506000134353"),
              get(srv, "/01/09506000134352"), get(srv, path + "?linkType=gs1:nosuchlt")):
        assert r.headers["Access-Control-Allow-Origin"] == "*"
        exposed = [x.strip() for x in r.headers["Access-Control-Expose-Headers"].split(",")]
        assert "Link" in exposed and "Location" in exposed
    # other methods: 405 naming all three
    p = get(srv, path, method="POST")
    assert p.status_code == 405 and set(p.headers["Allow"].split(", ")) == {"GET", "HEAD", "OPTIONS"}


def test_trailing_slash(srv, demo, minted):
    u = minted["units"][7]
    for path in ("/01/%s/10/LOT-R1/21/%s" % (demo["gtin"], u["serial"]), "/01/%s" % demo["gtin"],
                 "/01/%s/10/LOT-R1" % demo["gtin"]):
        a, b = get(srv, path), get(srv, path + "/")
        assert a.status_code == b.status_code == 307
        assert a.headers["Location"] == b.headers["Location"]
        assert a.headers["X-Resolved-Identity"] == b.headers["X-Resolved-Identity"]


def test_link_types(srv, demo, minted):
    u = minted["units"][8]
    path = "/01/%s/21/%s" % (demo["gtin"], u["serial"])
    for lt in ("gs1:pip", "https://gs1.org/voc/pip", "https%3A%2F%2Fref.gs1.org%2Fvoc%2Fpip", "gs1:defaultLink"):
        r = get(srv, path + "?linkType=" + lt)
        assert r.status_code == 307 and r.headers["Location"] == u["passport_url"], (lt, r.text)
    for lt in ("gs1:nosuchlt", "gs1:certificationInfo", "https://example.com/voc/pip", "nonsense"):
        r = get(srv, path + "?linkType=" + lt)
        body = pgrst(r, 404, "Not found")
        assert "link" in body["details"], body


def test_query_passthrough(srv, demo, minted):
    """Every query parameter goes on to the target as it came (the NFC tag's
    picc_data and cmac included), linkType alone stays with the resolver."""
    u = minted["units"][9]
    q = "picc_data=EF963FF7828658A599F3041510671E88&cmac=94EED9EE65337086&foo=bar&foo=baz&17=261231&empty="
    r = get(srv, "/01/%s/21/%s?%s&linkType=gs1:pip" % (demo["gtin"], u["serial"], q))
    assert r.status_code == 307
    assert r.headers["Location"] == u["passport_url"] + "?" + q
    r = get(srv, "/01/%s/10/NO-SUCH/21/NOPE?foo=bar" % demo["gtin"])
    assert r.status_code == 307 and r.headers["Location"] == "%s/passports/%s?foo=bar" % (srv.url, demo["gtin"])


def test_walk_up(srv, demo, minted):
    """A more specific identity than we know answers with the nearest known
    level up the tree: an unknown serial, a qualifier we do not store (22,
    235), saying which level it is."""
    g = demo["gtin"]
    u = minted["units"][10]
    cases = [
        ("/01/%s/10/LOT-R1/21/UNKNOWN" % g, "batch", "/01/%s/10/LOT-R1" % g, "~10~LOT-R1"),
        ("/01/%s/21/UNKNOWN" % g, "product", "/01/%s" % g, ""),
        ("/01/%s/22/VARIANT-2" % g, "product", "/01/%s" % g, ""),
        ("/01/%s/22/V/10/LOT-R1/21/%s" % (g, u["serial"]), "product", "/01/%s" % g, ""),
        ("/01/%s/10/LOT-R1/235/TPX-123456" % g, "batch", "/01/%s/10/LOT-R1" % g, "~10~LOT-R1"),
        ("/01/%s/10/KL8G" % g, "product", "/01/%s" % g, ""),
    ]
    for path, level, ident, pid in cases:
        r = get(srv, path)
        assert r.status_code == 307, (path, r.text)
        assert r.headers["X-Resolved-Level"] == level, path
        assert r.headers["X-Resolved-Identity"] == srv.url + ident
        assert r.headers["Location"] == "%s/passports/%s%s" % (srv.url, g, pid)
        assert '<%s?linkType=linkset>; rel="linkset"' % (srv.url + ident) in r.headers["Link"]
        doc = linkset(srv, path)
        assert doc["linkset"][0]["anchor"] == srv.url + ident
        assert doc["linkset"][-1]["anchor"] == "%s/01/%s" % (srv.url, g)
    # a product we do not have stays a 404
    pgrst(get(srv, "/01/09506000134352/10/X"), 404)


def test_compressed(srv, demo, minted):
    u = minted["units"][11]
    plain = "%s/01/%s/10/LOT-R1/21/%s?17=261231&foo=bar" % (srv.url, demo["gtin"], u["serial"])
    gtin_only = "%s/01/%s" % (srv.url, demo["gtin"])
    comp, comp_g = gs1check(compress=[plain, gtin_only])["compressed"]
    assert comp.startswith(srv.url + "/") and "/01/" not in comp
    cpath = urllib.parse.urlsplit(comp).path
    r = get(srv, cpath)
    assert r.status_code == 307, r.text
    assert r.headers["Location"] == u["passport_url"] + "?17=261231&foo=bar"
    assert "<%s>; rel=\"owl:sameAs\"" % plain in r.headers["Link"]
    assert r.headers["X-Resolved-Identity"] == plain.split("?")[0]
    # its own query comes after the compressed attributes; linkset: uncompressed anchors
    r = get(srv, cpath + "?cmac=AB12")
    assert r.headers["Location"] == u["passport_url"] + "?17=261231&foo=bar&cmac=AB12"
    doc = linkset(srv, cpath)
    assert doc["linkset"][0]["anchor"] == plain.split("?")[0]
    assert_valid_linksets([doc])
    r = get(srv, urllib.parse.urlsplit(comp_g).path)
    assert r.status_code == 307 and r.headers["Location"] == "%s/passports/%s" % (srv.url, demo["gtin"])
    assert get(srv, urllib.parse.urlsplit(comp_g).path, method="OPTIONS").status_code == 200
    # a compressed URI of a GTIN we do not have is the resolver's 404; other
    # one-segment paths are still nothing at all, for every method
    unknown = gs1check(compress=["%s/01/09506000134352" % srv.url])["compressed"][0]
    pgrst(get(srv, urllib.parse.urlsplit(unknown).path), 404, "Not found")
    for method in ("GET", "POST", "OPTIONS", "DELETE"):
        r = get(srv, "/favicon.ico", method=method)
        assert r.status_code == 404, method
        assert r.json()["error"]["code"] == "not_found"


def test_every_uri_and_linkset_validates(srv, demo, minted):
    """Every Digital Link we mint, export or serve passes digital-link.js,
    and every linkset GS1's linkset schema."""
    units = minted["units"] + minted["byo"]
    uris = [u["digital_link"] for u in units]
    r = requests.get("%s/exports/mint-jobs/%s.csv" % (srv.url, minted["job"]),
                     headers={"Authorization": "Bearer " + demo["viewer_jwt"]}, timeout=60)
    assert r.status_code == 200
    rows = list(csv.DictReader(io.StringIO(r.text)))
    uris += [row["uri"] for row in rows]
    assert len(rows) == 20
    docs = []
    for u in units[:4] + minted["byo"]:
        p = urllib.parse.urlsplit(u["digital_link"]).path
        docs.append(linkset(srv, p))
        uris += [c["anchor"] for c in docs[-1]["linkset"]]
    docs.append(linkset(srv, "/01/%s" % demo["gtin"]))
    docs.append(linkset(srv, "/01/%s/10/LOT-R1" % demo["gtin"]))
    res = assert_valid_uris(uris)
    assert all(x["json"]["identifier"] == {"01": demo["gtin"]} for x in res)
    assert_valid_linksets(docs)


# --- activation and scans -------------------------------------------------------------------


@pytest.fixture(scope="module")
def first_scan(srv, demo):
    batch = new_batch(srv, demo, "LOT-FS")
    job = ok(submit(srv, demo, batch, 5, activation_mode="first_scan"))["mint_job_id"]
    assert wait_job(srv, demo, job)["status"] == "COMPLETED"
    return {"job": job, "units": all_units(srv, demo, job)}


def unit_scans(srv, demo, job, seq):
    return ok(rpc(srv, "get_unit_scans", {"_brand_id": demo["brand_id"], "_mint_job_id": job, "_seq": seq},
                  demo["viewer_jwt"]))


def wait_scans(srv, demo, job, seq, count, timeout=15):
    deadline = time.time() + timeout
    while True:
        s = unit_scans(srv, demo, job, seq)
        if s["scan_count"] >= count:
            return s
        assert time.time() < deadline, s
        time.sleep(0.05)


BOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
PREVIEW = "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)"


def test_activation_on_first_scan(srv, demo, first_scan):
    job, units = first_scan["job"], first_scan["units"]
    assert [u["status"] for u in units] == ["minted"] * 5
    u = units[0]
    path = urllib.parse.urlsplit(u["digital_link"]).path
    # bots, HEAD, linksets and OPTIONS look and change nothing
    for ua in (BOT, PREVIEW, "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)"):
        r = get(srv, path, headers={"User-Agent": ua})
        assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/html"), ua
        assert '<meta property="og:title" content="Digital product passport">' in r.text
        assert '<meta property="og:url" content="%s">' % u["digital_link"] in r.text
        assert "X-Activation" not in r.headers
    assert get(srv, path, method="HEAD").status_code == 307
    assert linkset(srv, path)["linkset"][0]["anchor"] == u["digital_link"]
    assert get(srv, path, method="OPTIONS").status_code == 200
    time.sleep(0.3)  # two flush periods: nothing was counted either
    assert all_units(srv, demo, job)[0]["status"] == "minted"
    assert unit_scans(srv, demo, job, 1)["scan_count"] == 0
    # 8 concurrent first scans: exactly one activates
    with concurrent.futures.ThreadPoolExecutor(8) as ex:
        rs = list(ex.map(lambda _: get(srv, path, headers={"User-Agent": "Mozilla/5.0 (iPhone)"}), range(8)))
    assert all(r.status_code == 307 and r.headers["Location"] == u["passport_url"] for r in rs)
    acts = sorted(r.headers["X-Activation"] for r in rs)
    assert acts == ["activated"] + ["already_active"] * 7, acts
    after = all_units(srv, demo, job)
    assert [x["status"] for x in after] == ["active"] + ["minted"] * 4
    assert after[0]["activated_at"]
    # later scans (now from the cache) still say so
    assert get(srv, path).headers["X-Activation"] == "already_active"
    # a unit of an active_at_mint job says nothing about activation
    r = get(srv, "/01/%s/21/plain-1" % demo["gtin"])
    assert r.status_code == 307 and "X-Activation" not in r.headers
    assert wait_scans(srv, demo, job, 1, 9)["scan_count"] == 9


def test_scan_telemetry(srv, demo, first_scan):
    job, u = first_scan["job"], first_scan["units"][1]
    path = urllib.parse.urlsplit(u["digital_link"]).path
    t0 = time.time()
    for i in range(5):
        assert get(srv, path).status_code == 307
    # what is not a scan: a bot, HEAD, a linkset, a walk-up to the lot
    get(srv, path, headers={"User-Agent": BOT})
    get(srv, path, method="HEAD")
    linkset(srv, path)
    get(srv, "/01/%s/10/LOT-FS/21/NOT-A-UNIT" % demo["gtin"])
    comp = gs1check(compress=[u["digital_link"]])["compressed"][0]
    assert get(srv, urllib.parse.urlsplit(comp).path).status_code == 307  # a compressed scan counts
    s = wait_scans(srv, demo, job, 2, 6)
    time.sleep(0.3)
    s = unit_scans(srv, demo, job, 2)
    assert s["scan_count"] == 6 and s["status"] == "active" and s["serial"] == u["serial"]
    assert s["first_scan_at"] <= s["last_scan_at"]
    assert abs(time.mktime(time.strptime(s["first_scan_at"], "%Y-%m-%dT%H:%M:%SZ")) - time.mktime(time.gmtime(t0))) < 60
    by_serial = ok(rpc(srv, "get_unit_scans", {"_brand_id": demo["brand_id"], "_mint_job_id": job,
                                               "_serial": u["serial"]}, demo["viewer_jwt"]))
    assert by_serial == s
    rows = all_units(srv, demo, job)
    assert rows[1]["scan_count"] == 6 and rows[1]["first_scan_at"] == s["first_scan_at"]
    assert rows[1]["last_scan_at"] == s["last_scan_at"]
    assert rows[2]["scan_count"] == 0 and rows[2]["first_scan_at"] is None
    # errors: PostgREST-shaped
    pgrst(rpc(srv, "get_unit_scans", {"_brand_id": demo["brand_id"], "_mint_job_id": job}, demo["viewer_jwt"]), 400)
    pgrst(rpc(srv, "get_unit_scans", {"_brand_id": demo["brand_id"], "_mint_job_id": job, "_seq": 6},
              demo["viewer_jwt"]), 400)
    pgrst(rpc(srv, "get_unit_scans", {"_brand_id": demo["brand_id"], "_mint_job_id": job, "_serial": "NOPE"},
              demo["viewer_jwt"]), 404)
    pgrst(rpc(srv, "get_unit_scans", {"_brand_id": demo["brand_id"], "_mint_job_id": job, "_seq": 1}), 401)


def test_scans_survive_shutdown(server_factory, run_batchd):
    """Scans buffered when the server stops are written on the way out."""
    s = server_factory(env={"BATCHD_RATE_LIMIT": "0", "BATCHD_RESOLVER_SCAN_FLUSH_MS": "60000"})
    out = run_batchd("seed-demo", "--json", "--tenant", "scans-shutdown", env={"BATCHD_PUBLIC_URL": s.url})
    d = json.loads(out.stdout)["products"]
    batch = new_batch(s, d, "LOT-SD")
    job = ok(submit(s, d, batch, serials=["SD-1"]))["mint_job_id"]
    wait_job(s, d, job)
    for _ in range(3):
        assert get(s, "/01/%s/21/SD-1" % d["gtin"]).status_code == 307
    assert unit_scans(s, d, job, 1)["scan_count"] == 0  # still in memory
    s.stop()
    s2 = server_factory(env={"BATCHD_RATE_LIMIT": "0"})
    assert unit_scans(s2, d, job, 1)["scan_count"] == 3


def test_passport_language(srv, demo):
    """The passport in the language of Accept-Language where the product has
    one (attributes.translations), else the product's own text."""
    p = ok(rpc(srv, "create_product", {"_brand_id": demo["brand_id"], "_name": "Rain jacket", "_gtin": "4012345000009",
                                       "_attributes": {"material": "polyester", "colour": "blue",
                                                       "translations": {"fr": {"name": "Veste de pluie",
                                                                               "attributes": {"colour": "bleu"}},
                                                                        "de-CH": {"name": "Regenjacke"}}}},
               demo["jwt"]))
    url = "%s/passports/%s" % (srv.url, p["gtin"])
    # the resolver leads to the passport; the browser's language picks the text
    r = requests.get(url, headers={"Accept-Language": "fr-CH, fr;q=0.9, en;q=0.8"}, timeout=10)
    assert r.status_code == 200 and r.headers["Content-Language"] == "fr"
    assert '<html lang="fr">' in r.text and "Veste de pluie" in r.text and "bleu" in r.text
    assert "polyester" in r.text and "Rain jacket" not in r.text and "translations" not in r.text
    assert "Accept-Language" in r.headers["Vary"]
    j = requests.get(url, headers={"Accept": "application/json", "Accept-Language": "de"}, timeout=10).json()
    assert j["language"] == "de-CH" and j["product"]["name"] == "Regenjacke"
    assert j["product"]["attributes"]["colour"] == "blue"
    for al in ("en-GB, en;q=0.5", "fr;q=0", ""):
        r = requests.get(url, headers={"Accept-Language": al}, timeout=10)
        assert "Rain jacket" in r.text and '<html lang="en">' in r.text and "Content-Language" not in r.headers, al
    j = requests.get(url, headers={"Accept": "application/json", "Accept-Language": "es"}, timeout=10).json()
    assert j["product"]["name"] == "Rain jacket" and "language" not in j

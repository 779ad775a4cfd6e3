"""doc_url in the QR error envelope (issue 20): every error carries
{code, message, param, doc_url, request_id}, doc_url points at a page the
server itself serves, and that page documents every error code the QR
surface and the core can answer with (found in the source)."""
import glob
import os
import re
import urllib.parse

import pytest
import requests

from conftest import seed_demo


@pytest.fixture(scope="module")
def srv(server_factory):
    return server_factory(env={"BATCHD_RATE_LIMIT": "0"})


@pytest.fixture(scope="module")
def keys(run_batchd, srv):
    return seed_demo(run_batchd, srv, "qr")


def page(srv):
    r = requests.get(srv.url + "/docs/errors")
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/html")
    return r.text


def test_envelope_has_doc_url_to_the_served_page(srv, keys):
    cases = [
        requests.get(srv.url + "/v1/qr-codes"),  # no key
        requests.get(srv.url + "/v1/qr-codes/qr_nope", headers={"Authorization": "Bearer " + keys["live_key"]}),
        requests.post(srv.url + "/v1/batches", headers={"Authorization": "Bearer " + keys["live_key"]},
                      data="{"),
        requests.get(srv.url + "/v1/no-such-endpoint"),
        requests.get(srv.url + "/v1/qr-codes", headers={"Authorization": "Bearer " + keys["read_only_key"]},
                     params={"limit": "0"}),
    ]
    text = page(srv)
    seen = set()
    for r in cases:
        err = r.json()["error"]
        assert list(err) == ["code", "message", "param", "doc_url", "request_id"], err
        u = urllib.parse.urlsplit(err["doc_url"])
        assert err["doc_url"].startswith(srv.url + "/docs/errors#"), err
        assert u.fragment == err["code"]
        # the page the URL names is served by us, and has that anchor
        assert requests.get(urllib.parse.urlunsplit(u._replace(fragment=""))).status_code == 200
        assert 'id="%s"' % err["code"] in text
        seen.add(err["code"])
    assert {"unauthenticated", "not_found", "invalid_request"} <= seen


def source_codes(root):
    """Error codes answered by the QR surface and the core."""
    codes = set()
    files = glob.glob(os.path.join(root, "src/qr/*.c")) + glob.glob(os.path.join(root, "src/core/*.c"))
    pat = re.compile(r'(?:qr_error|bd_resp_error|conn_fail)\(\s*\w+,\s*\d+,\s*"([a-z_]+)"')
    for f in files:
        if f.endswith("testhooks.c"):
            continue
        with open(f) as fh:
            codes |= set(pat.findall(fh.read()))
    return codes


def test_page_documents_every_code(srv):
    root = os.environ.get("BATCHD_SOURCE_DIR") or os.path.join(os.path.dirname(__file__), "..", "..")
    codes = source_codes(root)
    assert {"invalid_request", "unauthenticated", "not_found", "rate_limit_exceeded",
            "webhook_limit_reached"} <= codes  # the scan finds them
    text = page(srv)
    documented = set(re.findall(r'<dt id="([a-z_]+)">', text))
    assert codes - documented == set(), codes - documented

"""Multipart bodies are split where other parsers split them (issue 20): a
complete CRLF--boundary ends the part; followed by anything but "--",
transport padding or a line end, the body is refused with the upload's
usual 422 instead of being read as data (busboy would end the part there:
two parsers that disagree on one body are a smuggling risk). A part that
names its file only with filename* is a file."""
import json
import uuid

import pytest
import requests


@pytest.fixture(scope="module")
def srv(server_factory):
    return server_factory(env={"BATCHD_RATE_LIMIT": "0"})


@pytest.fixture(scope="module")
def demo(run_batchd, srv):
    out = run_batchd("seed-demo", "--tenant", "mpstrict", "--json", env={"BATCHD_PUBLIC_URL": srv.url})
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)["business"]


ROSTER = b"RecipientsEmail,RecipientsName\r\nann@example.com,Ann\r\nbob@example.com,Bob\r\n"


def body(boundary, demo, csv_part_bytes, disposition=b'name="csv_file"; filename="r.csv"'):
    b = boundary.encode()
    out = b""
    for k, v in (("name", "strict"), ("template_id", demo["template_ids"]["plain"])):
        out += b"--" + b + b'\r\nContent-Disposition: form-data; name="' + k.encode() + b'"\r\n\r\n' + v.encode() + b"\r\n"
    out += (b"--" + b + b"\r\nContent-Disposition: form-data; " + disposition + b"\r\n"
            b"Content-Type: text/csv\r\n\r\n" + csv_part_bytes + b"\r\n--" + b + b"--\r\n")
    return out


def post(srv, demo, boundary, data):
    return requests.post(srv.url + "/business/batches", data=data,
                         headers={"Authorization": "Bearer " + demo["token"],
                                  "Content-Type": "multipart/form-data; boundary=" + boundary}, timeout=30)


def batches(psql):
    return int(psql("SELECT count(*) FROM biz_batches"))


@pytest.mark.parametrize("after", [b"x", b"X-Smuggled: 1", b" \tgarbage", b"-x", b"Z"],
                         ids=["letter", "header-like", "padding-then-text", "single-dash", "longer-boundary"])
def test_delimiter_followed_by_text_is_refused(srv, demo, psql, after):
    boundary = "bnd" + uuid.uuid4().hex[:12]
    # The roster "contains" the delimiter: busboy would end csv_file at it.
    smuggled = ROSTER + b"\r\n--" + boundary.encode() + after + b"\r\ncarol@example.com,Carol\r\n"
    before = batches(psql)
    r = post(srv, demo, boundary, body(boundary, demo, smuggled))
    assert r.status_code == 422, r.text
    assert r.json()["errors"] == {"csv_file": ["The csv file upload is incomplete or malformed."]}
    assert batches(psql) == before


def test_near_misses_are_still_data(srv, demo, psql):
    boundary = "bnd" + uuid.uuid4().hex[:12]
    # Not a delimiter: not after CRLF, or one byte short of the boundary.
    data = (b"RecipientsEmail,RecipientsName,Note\r\n"
            b"ann@example.com,Ann,x --" + boundary.encode() + b"x\r\n"
            b"bob@example.com,Bob,\"a\r\n--" + boundary[:-1].encode() + b"!\"\r\n")
    r = post(srv, demo, boundary, body(boundary, demo, data))
    assert r.status_code == 201, r.text
    notes = json.loads(psql("SELECT json_agg(custom_data->>'Note' ORDER BY row_no) FROM biz_certificates"
                            " WHERE batch_id = '%s'" % r.json()["data"]["id"]))
    assert notes == ["x --%sx" % boundary, "a\r\n--%s!" % boundary[:-1]]


def test_padding_before_line_end_is_fine(srv, demo):
    boundary = "bnd" + uuid.uuid4().hex[:12]
    data = body(boundary, demo, ROSTER).replace(b"--" + boundary.encode() + b"\r\n",
                                                b"--" + boundary.encode() + b" \t \r\n")
    r = post(srv, demo, boundary, data)
    assert r.status_code == 201, r.text
    assert r.json()["data"]["total_certificates"] == 2


@pytest.mark.parametrize("disposition", [b"name=\"csv_file\"; filename*=UTF-8''r%C3%B6ster.csv",
                                         b"name=csv_file; filename*=utf-8'en'roster.csv"])
def test_filename_star_alone_is_a_file(srv, demo, disposition):
    boundary = "bnd" + uuid.uuid4().hex[:12]
    r = post(srv, demo, boundary, body(boundary, demo, ROSTER, disposition))
    assert r.status_code == 201, r.text
    assert r.json()["data"]["total_certificates"] == 2


def test_no_filename_at_all_is_not_a_file(srv, demo):
    boundary = "bnd" + uuid.uuid4().hex[:12]
    r = post(srv, demo, boundary, body(boundary, demo, ROSTER, b'name="csv_file"'))
    assert r.status_code == 422, r.text
    assert r.json()["errors"]["csv_file"] == ["The csv file field must be a file."]

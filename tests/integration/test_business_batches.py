"""POST /business/batches (streamed multipart + CSV roster into COPY), batch
reads, pagination, approval and errors.csv, against the real server and
PostgreSQL."""
import csv
import io
import json
import socket
import time
import uuid

import pytest
import requests

import batchd_client as bc

HEADER = b"RecipientsEmail,RecipientsName,IssueDate,Course\r\n"


@pytest.fixture(scope="module")
def srv(server_factory):
    return server_factory(env={"BATCHD_RATE_LIMIT": "0"})


def seed_tenant(run_batchd, srv, tenant):
    out = run_batchd("seed-demo", "--tenant", tenant, "--json", env={"BATCHD_PUBLIC_URL": srv.url})
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)["business"]


@pytest.fixture(scope="module")
def demo(run_batchd, srv):
    return seed_tenant(run_batchd, srv, "bizbatch")


@pytest.fixture(scope="module")
def rival(run_batchd, srv):
    return seed_tenant(run_batchd, srv, "bizbatchrival")


def upload(srv, token, fields=(), csv_bytes=None, filename="roster.csv", csv_first=True):
    """multipart POST; fields is a list of (name, value) pairs, sent in order."""
    files = []
    part = [("csv_file", (filename, csv_bytes, "text/csv"))] if csv_bytes is not None else []
    items = [(k, (None, v)) for k, v in fields]
    files = part + items if csv_first else items + part
    return requests.post(srv.url + "/business/batches", headers={"Authorization": "Bearer " + token}, files=files)


def counts(psql):
    return psql("SELECT (SELECT count(*) FROM biz_batches), (SELECT count(*) FROM biz_certificates),"
                " (SELECT count(*) FROM bd_jobs WHERE kind = 'cert.batch')")


def roster(n, start=0):
    return HEADER + b"".join(b"user%d@example.com,User %d,15-02-2025,Math\r\n" % (i, i) for i in range(start, start + n))


def assert_422(r, errors, message=None):
    assert r.status_code == 422, r.text
    body = r.json()
    for field, msgs in errors.items():
        assert body["errors"].get(field) == msgs, (field, body)
    if message:
        assert body["message"] == message
    return body


# --- success ------------------------------------------------------------------------------

def test_create_plain(srv, demo, psql):
    r = upload(srv, demo["token"], [("name", "Class 10th, 2024"), ("template_id", demo["template_ids"]["plain"])],
               HEADER + b"ann@example.com,Ann,01-03-2025,Math\r\nnot-an-email,Bob,,Art\r\n")
    assert r.status_code == 201, r.text
    b = r.json()["data"]
    assert list(b) == ["id", "name", "status", "template_id", "total_certificates", "processed_certificates",
                       "failed_certificates", "progress", "completion_date", "created_at", "updated_at", "template",
                       "requires_signatures", "requires_my_signature", "notify_recipients", "emailed_certificates",
                       "email_failed_certificates"]
    assert b["name"] == "Class 10th, 2024" and b["status"] == "processing"
    assert (b["total_certificates"], b["processed_certificates"], b["failed_certificates"]) == (2, 0, 1)
    assert b["progress"] == 50 and b["completion_date"] is None
    assert b["template"]["id"] == demo["template_ids"]["plain"] and b["template_id"] == b["template"]["id"]
    assert b["requires_signatures"] is False and b["requires_my_signature"] is False
    rows = psql("SELECT row_no, email, name, issue_date, status, coalesce(error, '-'), custom_data::text,"
                " length(reference_id) FROM biz_certificates WHERE batch_id = '%s' ORDER BY row_no" % b["id"])
    # the valid row may already be rendering or rendered (the cert.batch job runs at once)
    got = rows.splitlines()
    assert got[0].replace("|processing|", "|pending|").replace("|generated|", "|pending|") == \
        '1|ann@example.com|Ann|2025-03-01|pending|-|{"Course": "Math"}|12'
    assert got[1:] == ['2|not-an-email|Bob|%s|failed|Invalid email address|{"Course": "Art"}|12'
                       % time.strftime("%Y-%m-%d", time.gmtime())]
    job = psql("SELECT kind, state FROM bd_jobs WHERE ref = '%s'" % b["id"])
    assert "cert.batch" in job
    # the same object from GET
    g = requests.get(srv.url + "/business/batches/" + b["id"], headers={"Authorization": "Bearer " + demo["token"]})
    assert g.status_code == 200 and g.json()["data"]["id"] == b["id"]


def test_fields_in_any_order(srv, demo):
    r = upload(srv, demo["token"], [("template_id", demo["template_ids"]["plain"]), ("name", "Late name")],
               roster(3), csv_first=True)
    assert r.status_code == 201, r.text
    r = upload(srv, demo["token"], [("name", "Early"), ("template_id", demo["template_ids"]["plain"])], roster(3),
               csv_first=False)
    assert r.status_code == 201, r.text
    assert r.json()["data"]["total_certificates"] == 3


def test_every_row_failed_is_failed(srv, demo):
    r = upload(srv, demo["token"], [("name", "All bad"), ("template_id", demo["template_ids"]["plain"])],
               HEADER + b"x,,99-99-2025,\r\ny@,Y,,\r\n")
    assert r.status_code == 201, r.text
    b = r.json()["data"]
    assert b["status"] == "failed" and b["failed_certificates"] == 2 and b["progress"] == 100
    assert b["completion_date"] is not None


# --- validation -------------------------------------------------------------------------

def test_seed_example_errors(srv, demo, psql):
    before = counts(psql)
    s1 = demo["signatories"][0]["user_uuid"]
    r = upload(srv, demo["token"], [("template_id", "9e3b101f-c264-4f97-945f-20dfa7163768"),
                                    ("signatories[0][user_uuid]", s1), ("signatories[0][index]", "2"),
                                    ("signatories[1][user_uuid]", s1), ("signatories[1][index]", "4")])
    assert_422(r, {"name": ["The name field is required."],
                   "template_id": ["The selected template id is invalid."],
                   "csv_file": ["The csv file field is required."],
                   "signatories": ["The same signatory cannot be assigned to multiple positions."],
                   "signatories.0.index": ["Signatory indices must start from 1."],
                   "signatories.1.index": ["Signatory indices must be sequential starting from 1 without gaps."]},
               "The name field is required. (and 5 more errors)")
    assert list(r.json()["errors"]) == ["name", "template_id", "csv_file", "signatories", "signatories.0.index",
                                        "signatories.1.index"]
    assert counts(psql) == before


def test_summary_singular_and_alone(srv, demo):
    r = upload(srv, demo["token"], [("template_id", demo["template_ids"]["plain"])], roster(1))
    assert_422(r, {"name": ["The name field is required."]}, "The name field is required.")
    r = upload(srv, demo["token"], [], roster(1))
    assert_422(r, {"template_id": ["The template id field is required."]},
               "The name field is required. (and 1 more error)")


@pytest.mark.parametrize("fields,errors", [
    ([("name", "   ")], {"name": ["The name field is required."]}),
    ([("name", "x" * 256)], {"name": ["The name field must not be greater than 255 characters."]}),
    ([("template_id", "nope")], {"template_id": ["The template id field must be a valid UUID."]}),
    ([("template_id", str(uuid.uuid4()))], {"template_id": ["The selected template id is invalid."]}),
])
def test_field_rules(srv, demo, psql, fields, errors):
    before = counts(psql)
    base = dict([("name", "ok"), ("template_id", demo["template_ids"]["plain"])])
    base.update(dict(fields))
    assert_422(upload(srv, demo["token"], list(base.items()), roster(2)), errors)
    assert counts(psql) == before


def test_name_of_255_multibyte_characters_is_fine(srv, demo):
    r = upload(srv, demo["token"], [("name", "é" * 255), ("template_id", demo["template_ids"]["plain"])], roster(1))
    assert r.status_code == 201, r.text


def test_csv_not_a_file(srv, demo, psql):
    before = counts(psql)
    r = requests.post(srv.url + "/business/batches", headers={"Authorization": "Bearer " + demo["token"]},
                      files=[("name", (None, "n")), ("template_id", (None, demo["template_ids"]["plain"])),
                             ("csv_file", (None, roster(2)))])
    assert_422(r, {"csv_file": ["The csv file field must be a file."]})
    assert counts(psql) == before


def sig_fields(pairs):
    out = []
    for i, (u, idx) in enumerate(pairs):
        if u is not None:
            out.append(("signatories[%d][user_uuid]" % i, u))
        if idx is not None:
            out.append(("signatories[%d][index]" % i, str(idx)))
    return out


def test_signatory_rules(srv, demo, rival, psql):
    two = demo["template_ids"]["two_signatories"]
    s1, s2 = demo["signatories"][0]["user_uuid"], demo["signatories"][1]["user_uuid"]
    before = counts(psql)

    def go(pairs, extra=()):
        return upload(srv, demo["token"], [("name", "S"), ("template_id", two)] + sig_fields(pairs) + list(extra),
                      roster(2))

    assert_422(upload(srv, demo["token"], [("name", "S"), ("template_id", two)], roster(2)),
               {"signatories": ["The signatories field is required."]})
    assert_422(go([(s1, 1)]), {"signatories": ["The number of signatories must equal the template's 2 signatory fields."]})
    assert_422(go([(s1, 1), (demo["archived_user_uuid"], 2)]),
               {"signatories.1.user_uuid": ["The selected signatory is archived."]})
    assert_422(go([(s1, 1), (demo["unsigned_user_uuid"], 2)]),
               {"signatories.1.user_uuid": ["The selected signatory has no signature uploaded."]})
    assert_422(go([(s1, 1), (rival["signatories"][1]["user_uuid"], 2)]),
               {"signatories.1.user_uuid": ["The selected signatories.1.user_uuid is invalid."]})
    assert_422(go([(s1, 1), ("zzz", 2)]),
               {"signatories.1.user_uuid": ["The signatories.1.user_uuid field must be a valid UUID."]})
    assert_422(go([(s1, 1), (None, 2)]),
               {"signatories.1.user_uuid": ["The signatories.1.user_uuid field is required."]})
    assert_422(go([(s1, 1), (s2, None)]), {"signatories.1.index": ["The signatories.1.index field is required."]})
    assert_422(go([(s1, 1), (s2, "two")]), {"signatories.1.index": ["The signatories.1.index field must be an integer."]})
    assert_422(go([(s1, 1), (s2, 3)]),
               {"signatories.1.index": ["Signatory indices must be sequential starting from 1 without gaps."]})
    assert_422(go([(s1, 0), (s2, 1)]), {"signatories.0.index": ["Signatory indices must start from 1."]})
    assert_422(go([(s1, 1), (s1, 2)]),
               {"signatories": ["The same signatory cannot be assigned to multiple positions."]})
    # a plain template takes none
    r = upload(srv, demo["token"], [("name", "S"), ("template_id", demo["template_ids"]["plain"])]
               + sig_fields([(s1, 1)]), roster(2))
    assert_422(r, {"signatories": ["The number of signatories must equal the template's 0 signatory fields."]})
    # not an array
    assert_422(upload(srv, demo["token"], [("name", "S"), ("template_id", two), ("signatories", "{\"a\":1}")],
                      roster(2)), {"signatories": ["The signatories field must be an array."]})
    assert counts(psql) == before


def test_signatories_ok_and_json_field(srv, demo, psql):
    two = demo["template_ids"]["two_signatories"]
    s1, s2 = demo["signatories"][0]["user_uuid"], demo["signatories"][1]["user_uuid"]
    # the order of positions in the request does not matter; indices do
    r = upload(srv, demo["token"], [("name", "S"), ("template_id", two)] + sig_fields([(s2, 2), (s1, 1)]), roster(2))
    assert r.status_code == 201, r.text
    b = r.json()["data"]
    # s2 does not auto-approve and is not the creator
    assert b["status"] == "waiting_for_approval" and b["requires_signatures"] is True
    assert b["requires_my_signature"] is False
    sigs = psql("SELECT signatory_index, approved_at IS NOT NULL FROM biz_batch_signatories WHERE batch_id = '%s'"
                " ORDER BY 1" % b["id"])
    assert sigs == "1|t\n2|f"
    assert psql("SELECT count(*) FROM bd_jobs WHERE ref = '%s'" % b["id"]) == "0"
    # the JSON field form
    r = upload(srv, demo["token"], [("name", "S"), ("template_id", two),
                                    ("signatories", json.dumps([{"user_uuid": s1, "index": 1},
                                                                {"user_uuid": s2, "index": 2}]))], roster(2))
    assert r.status_code == 201, r.text


def test_defaults_used_when_omitted(srv, demo, psql):
    r = upload(srv, demo["token"], [("name", "D"), ("template_id", demo["template_ids"]["default_signatories"])],
               roster(2))
    assert r.status_code == 201, r.text
    b = r.json()["data"]
    assert b["status"] == "waiting_for_approval"
    assert b["template"]["has_default_signatories"] is True
    out = psql("SELECT string_agg(u.uuid::text, ',' ORDER BY s.signatory_index) FROM biz_batch_signatories s"
               " JOIN biz_users u ON u.id = s.user_id WHERE s.batch_id = '%s'" % b["id"])
    assert demo["signatories"][0]["user_uuid"] + "," + demo["signatories"][1]["user_uuid"] in out


def test_creator_signatory_counts_as_approved(srv, demo):
    # the second signatory creates a batch in which they sign second: their
    # own position is approved, the first auto-approves: processing at once
    two = demo["template_ids"]["two_signatories"]
    s1, s2 = demo["signatories"][0]["user_uuid"], demo["signatories"][1]["user_uuid"]
    r = upload(srv, demo["signatories"][1]["token"], [("name", "Own"), ("template_id", two)]
               + sig_fields([(s1, 1), (s2, 2)]), roster(1))
    assert r.status_code == 201, r.text
    assert r.json()["data"]["status"] == "processing"


# --- CSV structure: 422, nothing persisted ----------------------------------------------

CSV_CASES = [
    ("missing header", b"RecipientsName,Course\r\nAnn,Math\r\n", "RecipientsEmail"),
    ("duplicate header", b"RecipientsEmail,RecipientsName,Course,Course\r\na@b.co,A,x,y\r\n", "Course"),
    ("zero rows", b"RecipientsEmail,RecipientsName\r\n", None),
    ("empty file", b"", None),
    ("not utf-8", b"RecipientsEmail,RecipientsName\r\na@b.co,Andr\xe9\r\n", None),
    ("unterminated quote", b"RecipientsEmail,RecipientsName\r\na@b.co,\"Ann\r\n", None),
    ("huge field", b"RecipientsEmail,RecipientsName\r\na@b.co," + b"x" * 70000 + b"\r\n", None),
]


@pytest.mark.parametrize("label,data,needle", CSV_CASES, ids=[c[0] for c in CSV_CASES])
def test_csv_structural(srv, demo, psql, label, data, needle):
    before = counts(psql)
    big = roster(2000)  # rows before the problem reach COPY first: they must not commit
    body = data if label in ("missing header", "duplicate header", "empty file") else big + data[data.index(b"\n") + 1:]
    if label == "zero rows":
        body = data
    r = upload(srv, demo["token"], [("name", "n"), ("template_id", demo["template_ids"]["plain"])], body)
    b = assert_422(r, {})
    assert list(b["errors"]) == ["csv_file"], b
    if needle:
        assert needle in b["errors"]["csv_file"][0]
    assert counts(psql) == before


def test_csv_edge_cases_accepted(srv, demo, psql):
    data = (b"\xef\xbb\xbf" + b"RecipientsEmail,RecipientsName,IssueDate,Note\n"
            b"a@b.co,\"Lee, Ann\",01-01-2025,\"line1\nline2 \"\"q\"\"\"\r\n"
            b"c@d.co,Zo\xc3\xab,,plain\n")
    r = upload(srv, demo["token"], [("name", "edge"), ("template_id", demo["template_ids"]["plain"])], data)
    assert r.status_code == 201, r.text
    bid = r.json()["data"]["id"]
    out = psql("SELECT name || '|' || (custom_data->>'Note') FROM biz_certificates WHERE batch_id = '%s'"
               " ORDER BY row_no" % bid)
    assert "Lee, Ann|line1" in out and 'line2 "q"' in out and "Zoë|plain" in out


def test_too_many_rows_with_small_limit(server_factory, run_batchd, psql):
    s = server_factory(env={"BATCHD_RATE_LIMIT": "0", "BATCHD_MAX_CSV_ROWS": "5"})
    d = seed_tenant(run_batchd, s, "bizlimit")
    before = counts(psql)
    r = upload(s, d["token"], [("name", "n"), ("template_id", d["template_ids"]["plain"])], roster(6))
    b = assert_422(r, {})
    assert list(b["errors"]) == ["csv_file"]
    assert counts(psql) == before
    r = upload(s, d["token"], [("name", "n"), ("template_id", d["template_ids"]["plain"])], roster(5))
    assert r.status_code == 201, r.text


# --- streaming --------------------------------------------------------------------------

def multipart_stream(boundary, fields, rows, chunk_rows=2000):
    b = boundary.encode()
    for k, v in fields:
        yield b"--" + b + b"\r\nContent-Disposition: form-data; name=\"" + k.encode() + b"\"\r\n\r\n" + v.encode() + b"\r\n"
    yield (b"--" + b + b"\r\nContent-Disposition: form-data; name=\"csv_file\"; filename=\"big.csv\"\r\n"
           b"Content-Type: text/csv\r\n\r\n" + HEADER)
    for start in range(0, rows, chunk_rows):
        n = min(chunk_rows, rows - start)
        yield b"".join(b"u%d@example.com,User %d,,C%d\r\n" % (i, i, i % 7) for i in range(start, start + n))
    yield b"\r\n--" + b + b"--\r\n"


def test_100k_rows_streamed(srv, demo, psql):
    boundary = "b" + uuid.uuid4().hex
    body = multipart_stream(boundary, [("name", "big"), ("template_id", demo["template_ids"]["plain"])], 100000)
    r = requests.post(srv.url + "/business/batches", data=body,
                      headers={"Authorization": "Bearer " + demo["token"],
                               "Content-Type": "multipart/form-data; boundary=" + boundary}, timeout=120)
    assert r.status_code == 201, r.text
    b = r.json()["data"]
    assert b["total_certificates"] == 100000 and b["failed_certificates"] == 0
    out = psql("SELECT count(*), count(DISTINCT reference_id), min(row_no), max(row_no) FROM biz_certificates"
               " WHERE batch_id = '%s'" % b["id"])
    assert out == "100000|100000|1|100000"


def test_expect_100_continue(srv, demo):
    boundary = "XyZ" + uuid.uuid4().hex
    body = b"".join(multipart_stream(boundary, [("name", "curl"), ("template_id", demo["template_ids"]["plain"])], 10))
    head = ("POST /business/batches HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
            "Content-Type: multipart/form-data; boundary=%s\r\nContent-Length: %d\r\nExpect: 100-continue\r\n\r\n"
            % (demo["token"], boundary, len(body))).encode()
    s = bc.connect(srv.port)
    s.sendall(head)
    s.settimeout(5)
    first = s.recv(4096)
    assert first.startswith(b"HTTP/1.1 100 Continue"), first
    s.sendall(body)
    resps = bc.recv_responses(s, 1, initial=first[first.index(b"\r\n\r\n") + 4:])
    s.close()
    assert resps[0].status == 201, resps[0].body
    assert resps[0].json()["data"]["total_certificates"] == 10


def test_disconnect_mid_upload_leaves_nothing(srv, demo, psql):
    before = counts(psql)
    boundary = "D" + uuid.uuid4().hex
    parts = list(multipart_stream(boundary, [("name", "gone"), ("template_id", demo["template_ids"]["plain"])], 20000))
    body = b"".join(parts)
    head = ("POST /business/batches HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
            "Content-Type: multipart/form-data; boundary=%s\r\nContent-Length: %d\r\n\r\n"
            % (demo["token"], boundary, len(body))).encode()
    s = bc.connect(srv.port)
    s.sendall(head + body[: len(body) * 3 // 4])
    time.sleep(0.5)  # rows are in COPY by now
    s.close()
    deadline = time.time() + 10
    while time.time() < deadline:
        idle = psql("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                    " AND state LIKE 'idle in transaction%' OR (query LIKE 'COPY biz_certificates%' AND state = 'active')")
        if idle == "0":
            break
        time.sleep(0.1)
    assert counts(psql) == before
    # and the server goes on serving uploads
    r = upload(srv, demo["token"], [("name", "after"), ("template_id", demo["template_ids"]["plain"])], roster(3))
    assert r.status_code == 201, r.text


def test_not_multipart(srv, demo):
    r = requests.post(srv.url + "/business/batches", headers={"Authorization": "Bearer " + demo["token"],
                                                               "Content-Type": "application/json"}, data="{}")
    assert r.status_code == 415 and "multipart/form-data" in r.json()["message"]


def test_truncated_multipart(srv, demo, psql):
    before = counts(psql)
    boundary = "T" + uuid.uuid4().hex
    body = b"".join(multipart_stream(boundary, [("name", "t"), ("template_id", demo["template_ids"]["plain"])], 50))
    body = body[: -len(boundary) - 8]  # no closing delimiter
    r = requests.post(srv.url + "/business/batches", data=body,
                      headers={"Authorization": "Bearer " + demo["token"],
                               "Content-Type": "multipart/form-data; boundary=" + boundary})
    b = assert_422(r, {"csv_file": ["The csv file upload is incomplete or malformed."]})
    assert b
    assert counts(psql) == before


# --- reads, approval, errors.csv ----------------------------------------------------------

def auth(tok):
    return {"Authorization": "Bearer " + tok}


def test_cross_institution_404(srv, demo, rival):
    r = upload(srv, demo["token"], [("name", "mine"), ("template_id", demo["template_ids"]["plain"])], roster(1))
    bid = r.json()["data"]["id"]
    for path in ("/business/batches/" + bid, "/business/batches/" + bid + "/errors.csv"):
        g = requests.get(srv.url + path, headers=auth(rival["token"]))
        assert g.status_code == 404 and g.json()["message"] == "The requested ID %s was not found." % bid
    g = requests.post(srv.url + "/business/batches/" + bid + "/approve", headers=auth(rival["token"]))
    assert g.status_code == 404
    listed = requests.get(srv.url + "/business/batches?per_page=100", headers=auth(rival["token"])).json()
    assert bid not in {x["id"] for x in listed["data"]}
    # using a rival's template is "invalid"
    r = upload(srv, demo["token"], [("name", "x"), ("template_id", rival["template_ids"]["plain"])], roster(1))
    assert_422(r, {"template_id": ["The selected template id is invalid."]})


def test_approval_flow(srv, demo, psql):
    r = upload(srv, demo["token"], [("name", "A"), ("template_id", demo["template_ids"]["default_signatories"])],
               roster(2))
    b = r.json()["data"]
    assert b["status"] == "waiting_for_approval"
    s1, s2 = demo["signatories"]
    # the signatory sees their pending signature
    g = requests.get(srv.url + "/business/batches/" + b["id"], headers=auth(s2["token"])).json()["data"]
    assert g["requires_my_signature"] is True
    g = requests.get(srv.url + "/business/batches/" + b["id"], headers=auth(s1["token"])).json()["data"]
    assert g["requires_my_signature"] is False  # auto-approved
    # not a signatory of it
    r = requests.post(srv.url + "/business/batches/" + b["id"] + "/approve", headers=auth(demo["token"]))
    assert r.status_code == 403 and r.json()["required_permission"] == "batches:approve"
    # already approved (auto)
    r = requests.post(srv.url + "/business/batches/" + b["id"] + "/approve", headers=auth(s1["token"]))
    assert_422(r, {"batch": ["You have already approved this batch."]})
    assert psql("SELECT count(*) FROM bd_jobs WHERE ref = '%s'" % b["id"]) == "0"
    r = requests.post(srv.url + "/business/batches/" + b["id"] + "/approve", headers=auth(s2["token"]))
    assert r.status_code == 200, r.text
    d = r.json()["data"]
    assert d["status"] == "processing" and d["requires_my_signature"] is False
    assert "cert.batch" in psql("SELECT kind FROM bd_jobs WHERE ref = '%s'" % b["id"])
    r = requests.post(srv.url + "/business/batches/" + b["id"] + "/approve", headers=auth(s2["token"]))
    assert r.status_code == 422


def test_pagination(srv, run_batchd):
    d = seed_tenant(run_batchd, srv, "bizpages")
    ids = []
    for i in range(23):
        r = upload(srv, d["token"], [("name", "p%d" % i), ("template_id", d["template_ids"]["plain"])], roster(1))
        ids.append(r.json()["data"]["id"])
    page = requests.get(srv.url + "/business/batches", headers=auth(d["token"])).json()
    assert list(page) == ["data", "links", "meta"]
    assert list(page["meta"]) == ["current_page", "from", "last_page", "links", "path", "per_page", "to", "total"]
    m = page["meta"]
    assert (m["current_page"], m["from"], m["to"], m["last_page"], m["per_page"], m["total"]) == (1, 1, 15, 2, 15, 23)
    assert [x["id"] for x in page["data"]] == ids[::-1][:15]  # newest first
    assert page["links"]["prev"] is None and page["links"]["next"] == srv.url + "/business/batches?page=2"
    assert m["path"] == srv.url + "/business/batches"
    assert [l["label"] for l in m["links"]] == ["&laquo; Previous", "1", "2", "Next &raquo;"]
    assert [l["active"] for l in m["links"]] == [False, True, False, False]
    p2 = requests.get(srv.url + "/business/batches?page=2", headers=auth(d["token"])).json()
    assert (p2["meta"]["from"], p2["meta"]["to"]) == (16, 23) and p2["links"]["next"] is None
    assert [x["id"] for x in p2["data"]] == ids[::-1][15:]
    p = requests.get(srv.url + "/business/batches?per_page=5&page=3", headers=auth(d["token"])).json()
    assert p["meta"]["last_page"] == 5 and len(p["data"]) == 5
    assert p["links"]["next"] == srv.url + "/business/batches?page=4&per_page=5"
    far = requests.get(srv.url + "/business/batches?page=9", headers=auth(d["token"])).json()
    assert far["data"] == [] and far["meta"]["from"] is None and far["meta"]["to"] is None
    # many pages: Laravel's window with "..."
    p = requests.get(srv.url + "/business/batches?per_page=1&page=12", headers=auth(d["token"])).json()
    labels = [l["label"] for l in p["meta"]["links"]]
    assert labels == ["&laquo; Previous", "1", "2", "...", "9", "10", "11", "12", "13", "14", "15", "...", "22", "23",
                      "Next &raquo;"]
    for q, field in (("per_page=101", "per_page"), ("per_page=0", "per_page"), ("page=x", "page")):
        r = requests.get(srv.url + "/business/batches?" + q, headers=auth(d["token"]))
        assert r.status_code == 422 and field in r.json()["errors"], r.text
    st = requests.get(srv.url + "/business/batches?status=failed", headers=auth(d["token"])).json()
    assert st["meta"]["total"] == 0
    # the cert.batch job completes them (processing until then)
    deadline = time.time() + 120
    while True:
        st = requests.get(srv.url + "/business/batches?status=completed", headers=auth(d["token"])).json()
        if st["meta"]["total"] == 23 or time.time() > deadline:
            break
        time.sleep(0.2)
    assert st["meta"]["total"] == 23 and "status=completed" in st["links"]["first"]
    st = requests.get(srv.url + "/business/batches?status=processing", headers=auth(d["token"])).json()
    assert st["meta"]["total"] == 0 and "status=processing" in st["links"]["first"]
    r = requests.get(srv.url + "/business/batches?status=bogus", headers=auth(d["token"]))
    assert r.status_code == 422 and r.json()["errors"]["status"] == ["The selected status is invalid."]


def test_errors_csv(srv, demo):
    data = (HEADER + b"ok@example.com,Ok,,\r\n=cmd@x,=HYPERLINK(),,\r\n"
            b"b@example.com,,,\r\n+1@x.co,@evil,31-02-2025,\r\n")
    r = upload(srv, demo["token"], [("name", "errs"), ("template_id", demo["template_ids"]["plain"])], data)
    b = r.json()["data"]
    assert b["failed_certificates"] == 3
    g = requests.get(srv.url + "/business/batches/%s/errors.csv" % b["id"], headers=auth(demo["token"]))
    assert g.status_code == 200 and g.headers["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(g.text)))
    assert rows[0] == ["Row", "RecipientsEmail", "RecipientsName", "Reason"]
    assert [r[0] for r in rows[1:]] == ["2", "3", "4"]
    assert rows[1][1] == "'=cmd@x" and rows[1][2] == "'=HYPERLINK()"
    assert rows[2][3] == "Recipient name is required"
    assert rows[3][1] == "'+1@x.co" and rows[3][2] == "'@evil" and "IssueDate" in rows[3][3]


def test_concurrent_upload_limit(server_factory, run_batchd, psql):
    s = server_factory(env={"BATCHD_RATE_LIMIT": "0", "BATCHD_MAX_UPLOADS": "1"})
    d = seed_tenant(run_batchd, s, "bizupl")
    boundary = "L" + uuid.uuid4().hex
    body = b"".join(multipart_stream(boundary, [("name", "slow"), ("template_id", d["template_ids"]["plain"])], 100))
    head = ("POST /business/batches HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
            "Content-Type: multipart/form-data; boundary=%s\r\nContent-Length: %d\r\n\r\n"
            % (d["token"], boundary, len(body))).encode()
    slow = bc.connect(s.port)
    slow.sendall(head + body[:200])
    time.sleep(0.3)
    r = upload(s, d["token"], [("name", "second"), ("template_id", d["template_ids"]["plain"])], roster(1))
    assert r.status_code == 503 and r.headers.get("Retry-After"), r.text
    slow.sendall(body[200:])
    resp = bc.recv_responses(slow, 1)[0]
    slow.close()
    assert resp.status == 201, resp.body
    r = upload(s, d["token"], [("name", "third"), ("template_id", d["template_ids"]["plain"])], roster(1))
    assert r.status_code == 201, r.text

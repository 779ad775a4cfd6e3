"""Certificates e-mailed to their recipients (issue 26), against a real SMTP
server started by the test (aiosmtpd, maillib.py): every message parsed
with Python's `email` package. A batch with notify_recipients queues one
message per certificate in the transaction that marks it generated; the
sender (core/mail.c) sends it over SMTP through libcurl on the loop, records
the server's acceptance first, retries 4xx and an absent server with
backoff, fails a 5xx with the server's reply, and never sends again what the
server accepted, also across SIGKILL."""
import collections
import json
import time

import pytest
import requests

from maillib import SmtpSink, free_port, self_signed

HEADER = "RecipientsEmail,RecipientsName,IssueDate,Course\r\n"
FROM = "certs@batchd.test"

EMAIL_BLOCK = {
    "subject": "{{ RecipientsName }}, your {{Course}} certificate from {{InstitutionName}}",
    "text": "Hello {{RecipientsName}},\n\nyou completed {{Course}} on {{IssueDate}} ({{BatchName}}).\n"
            "Reference {{ReferenceId}}: {{VerificationUrl}}\n",
    "html": "<p>Hello <b>{{RecipientsName}}</b>, you completed <i>{{Course}}</i>.</p>"
            "<p><a href=\"{{VerificationUrl}}\">Verify</a> {{ReferenceId}}</p>",
}

# names and courses that must come out right: non-ASCII, and header injection attempts
HOSTILE_NAME = "Mallory\r\nBcc: victim@evil.test"
SPECIAL = [
    ("zoe@example.com", "Zoë Ñúñez-Øster", "Ästhetik & <Design>"),
    ("yuki@example.com", "山田 太郎 🎓", "数学"),
    ("mallory@example.com", HOSTILE_NAME, "Course\r\nX-Injected: 1"),
    ("quote@example.com", 'O"Brien \\ =?UTF-8?B?SGk=?=', "Plain"),
]


def csv_cell(s):
    return '"' + s.replace('"', '""') + '"'


def row(email, name, course, date="01-03-2025"):
    return "%s,%s,%s,%s\r\n" % (email, csv_cell(name), date, csv_cell(course))


def auth(tok):
    return {"Authorization": "Bearer " + tok}


@pytest.fixture(scope="module")
def sink():
    s = SmtpSink().start()
    yield s
    s.stop()


def mail_env(url, **extra):
    env = {"BATCHD_RATE_LIMIT": "0", "BATCHD_SMTP_URL": url, "BATCHD_SMTP_INSECURE": "1",
           "BATCHD_SMTP_FROM": "Batchd Certificates <%s>" % FROM, "BATCHD_SMTP_RATE": "0",
           "BATCHD_SMTP_CONNECTIONS": "4", "BATCHD_SMTP_RETRY_BASE_MS": "200", "BATCHD_SMTP_TIMEOUT_MS": "3000"}
    env.update(extra)
    return env


@pytest.fixture(scope="module")
def srv(server_factory, sink):
    return server_factory(env=mail_env(sink.url))


@pytest.fixture(scope="module")
def demo(run_batchd, srv):
    out = run_batchd("seed-demo", "--tenant", "mailers", "--json", env={"BATCHD_PUBLIC_URL": srv.url})
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)["business"]


@pytest.fixture(scope="module")
def template(srv, demo):
    """A template with an e-mail block, made through the API from the demo layout."""
    t = requests.get(srv.url + "/business/certificate-templates/" + demo["template_ids"]["plain"], headers=auth(demo["token"]))
    assert t.status_code == 200, t.text
    body = {"name": "Mailed", "layout": t.json()["data"]["layout"], "email": EMAIL_BLOCK}
    r = requests.post(srv.url + "/business/certificate-templates", headers=auth(demo["token"]), json=body)
    assert r.status_code == 201, r.text
    assert r.json()["data"]["email"] == EMAIL_BLOCK
    return r.json()["data"]["id"]


def upload(url, tok, tpl, rows, notify="1", name="Spring cohort"):
    files = [("csv_file", ("r.csv", (HEADER + "".join(rows)).encode(), "text/csv")), ("name", (None, name)),
             ("template_id", (None, tpl))]
    if notify is not None:
        files.append(("notify_recipients", (None, notify)))
    r = requests.post(url + "/business/batches", headers=auth(tok), files=files)
    assert r.status_code == 201, r.text
    return r.json()["data"]


def batch(url, tok, bid):
    return requests.get(url + "/business/batches/" + bid, headers=auth(tok)).json()["data"]


def wait_emailed(url, tok, bid, n_sent, n_failed=0, timeout=180):
    deadline = time.time() + timeout
    while True:
        b = batch(url, tok, bid)
        if b["status"] in ("completed", "partially_completed", "failed") and \
                b["emailed_certificates"] == n_sent and b["email_failed_certificates"] == n_failed:
            return b
        assert time.time() < deadline, b
        time.sleep(0.2)


def certs(url, tok, **params):
    out, page = [], 1
    while True:
        r = requests.get(url + "/business/certificates", headers=auth(tok), params=dict(per_page=100, page=page,
                                                                                         **params))
        assert r.status_code == 200, r.text
        j = r.json()
        out += j["data"]
        if page >= j["meta"]["last_page"]:
            return out, j["meta"]["total"]
        page += 1


def body_of(msg, ctype):
    part = msg.get_body(preferencelist=(ctype.split("/")[1],))
    assert part is not None and part.get_content_type() == ctype, msg
    return part.get_content()


def metric(url, name):
    text = requests.get(url + "/metrics").text
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError("no metric %s" % name)


def test_thousand_rows_thousand_messages_exactly_once(srv, demo, template, sink):
    tok = demo["token"]
    rows = [row("r%04d@example.com" % i, "Recipient %04d" % i, "Course %d" % (i % 7)) for i in range(996)]
    rows += [row(*s) for s in SPECIAL]
    sink.clear()
    b = upload(srv.url, tok, template, rows)
    assert b["notify_recipients"] is True and b["emailed_certificates"] == 0
    b = wait_emailed(srv.url, tok, b["id"], 1000)
    assert b["status"] == "completed" and b["email_failed_certificates"] == 0
    time.sleep(1.5)  # nothing more arrives: every message exactly once
    got = sink.parsed()
    assert len(got) == 1000
    by_rcpt = collections.Counter(r for rcpts, _ in got for r in rcpts)
    assert len(by_rcpt) == 1000 and set(by_rcpt.values()) == {1}
    assert all(len(rcpts) == 1 for rcpts, _ in got)

    all_certs, total = certs(srv.url, tok, batch_id=b["id"])
    assert total == 1000
    by_email = {c["email"]: c for c in all_certs}
    expected = {"r%04d@example.com" % i: ("Recipient %04d" % i, "Course %d" % (i % 7)) for i in range(996)}
    expected.update({e: (n, c) for e, n, c in SPECIAL})
    s = requests.Session()
    ids = set()
    for (rcpts, msg) in got:
        rcpt = rcpts[0]
        c = by_email[rcpt]
        name, course = c["name"], c["custom_data"]["Course"]
        assert (name, course) == expected[rcpt] or rcpt == "mallory@example.com"
        assert c["email_status"] == "sent" and c["emailed_at"] and c["email_error"] is None
        # headers: exactly these, nothing a roster value could add
        keys = sorted(k.lower() for k in msg.keys())
        assert keys == sorted(["from", "to", "subject", "date", "message-id", "mime-version", "auto-submitted",
                               "content-type"]), keys
        assert msg["From"].addresses[0].addr_spec == FROM
        assert msg["From"].addresses[0].display_name == "Batchd Certificates"
        to = msg["To"].addresses
        assert len(to) == 1 and to[0].addr_spec == rcpt
        assert to[0].display_name == " ".join(name.replace("\r", " ").replace("\n", " ").split(" ")) or \
            to[0].display_name == name.replace("\r", " ").replace("\n", " ")
        subject = "%s, your %s certificate from %s" % (name, course, demo_inst(srv, tok))
        assert str(msg["Subject"]) == subject.replace("\r", " ").replace("\n", " ")
        assert msg["Message-ID"].startswith("<msg_") and msg["Message-ID"].endswith("@batchd.test>")
        ids.add(msg["Message-ID"])
        assert msg.get_content_type() == "multipart/mixed"
        alt = msg.get_payload()[0]
        assert alt.get_content_type() == "multipart/alternative"
        assert [p.get_content_type() for p in alt.get_payload()] == ["text/plain", "text/html"]
        text = body_of(msg, "text/plain")
        vurl = c["verification_url"]
        assert "Hello %s," % name.replace("\r\n", "\n") in text.replace("\r\n", "\n")
        assert "you completed %s on 01-03-2025 (Spring cohort)." % course.replace("\r\n", "\n") in \
            text.replace("\r\n", "\n")
        assert "Reference %s: %s" % (c["reference_id"], vurl) in text
        html = body_of(msg, "text/html")
        esc = name.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
        assert "<b>%s</b>" % esc.replace("\r\n", "\n") in html.replace("\r\n", "\n")
        assert '<a href="%s">Verify</a>' % vurl in html
        atts = list(msg.iter_attachments())
        assert len(atts) == 1 and atts[0].get_content_type() == "application/pdf"
        assert atts[0].get_filename() == c["reference_id"] + ".pdf"
        if rcpt in by_rcpt and (rcpt in dict((e, 1) for e, _, _ in SPECIAL) or hash(rcpt) % 10 == 0 or True):
            pdf = s.get(c["pdf_url"], headers=auth(tok))
            assert pdf.status_code == 200
            assert atts[0].get_content() == pdf.content
    assert len(ids) == 1000
    # the hostile values stayed inside their own header / body
    for rcpts, msg in got:
        assert "Bcc" not in msg and "X-Injected" not in msg
        raw = msg.as_bytes()
        assert b"\nBcc:" not in raw and b"\nX-Injected:" not in raw
    # filters and the outbox
    assert certs(srv.url, tok, batch_id=b["id"], email_status="sent")[1] == 1000
    assert certs(srv.url, tok, batch_id=b["id"], email_status="failed")[1] == 0
    r = requests.get(srv.url + "/business/certificates", headers=auth(tok), params={"email_status": "nope"})
    assert r.status_code == 422 and "email_status" in r.json()["errors"]
    assert metric(srv.url, 'batchd_mail_messages_total{outcome="sent"}') >= 1000


_inst_names = {}


def demo_inst(srv, tok):
    if tok not in _inst_names:
        r = requests.get(srv.url + "/business/certificates", headers=auth(tok), params={"per_page": 1})
        ref = r.json()["data"][0]["reference_id"]
        _inst_names[tok] = requests.get(srv.url + "/verify/" + ref, headers={"Accept": "application/json"}) \
            .json()["institution"]["name"]
    return _inst_names[tok]


def test_refused_recipient_fails_with_reply_others_sent(srv, demo, psql, sink):
    tok = demo["token"]
    reply = "550 5.1.1 <nobody@example.com>: Recipient address rejected: User unknown"
    sink.refuse["nobody@example.com"] = reply
    sink.clear()
    try:
        b = upload(srv.url, tok, demo["template_ids"]["plain"], [row("a1@example.com", "A One", "X"),
                                                     row("nobody@example.com", "No Body", "X"),
                                                     row("a3@example.com", "A Three", "X")])
        b = wait_emailed(srv.url, tok, b["id"], 2, 1)
    finally:
        sink.refuse.clear()
    got = sink.parsed()
    assert sorted(r for rc, _ in got for r in rc) == ["a1@example.com", "a3@example.com"]
    failed, n = certs(srv.url, tok, batch_id=b["id"], email_status="failed")
    assert n == 1 and failed[0]["email"] == "nobody@example.com"
    assert failed[0]["email_error"] == reply and failed[0]["emailed_at"] is None
    assert failed[0]["status"] == "generated"
    sent, n = certs(srv.url, tok, batch_id=b["id"], email_status="sent")
    assert n == 2
    # the default template e-mail reads well
    msg = got[0][1]
    assert str(msg["Subject"]).startswith("Your certificate from ")
    assert "has issued you a certificate: " in body_of(msg, "text/plain")
    assert "Anyone can check that it is genuine at" in body_of(msg, "text/html")
    # errors.csv lists the failed delivery
    csv = requests.get(srv.url + "/business/batches/%s/errors.csv" % b["id"], headers=auth(tok)).text
    assert "nobody@example.com" in csv and "E-mail not delivered: 550 5.1.1" in csv
    assert "a1@example.com" not in csv
    # no retry of a 5xx: one attempt
    assert psql("SELECT attempts, state FROM bd_mail_messages WHERE recipient = 'nobody@example.com'").strip() == \
        "1|failed"

    # resend: a new message once the recipient exists; the sent ones get a second copy only when asked
    r = requests.post(srv.url + "/business/certificates/%s/resend" % failed[0]["id"], headers=auth(tok))
    assert r.status_code == 200, r.text
    assert r.json()["data"]["email_status"] == "queued" and r.json()["data"]["email_error"] is None
    b = wait_emailed(srv.url, tok, b["id"], 3, 0)
    assert [r for rc, _ in sink.parsed() for r in rc].count("nobody@example.com") == 1
    r = requests.post(srv.url + "/business/certificates/%s/revoke" % sent[0]["id"], headers=auth(tok))
    assert r.status_code == 200
    r = requests.post(srv.url + "/business/certificates/%s/resend" % sent[0]["id"], headers=auth(tok))
    assert r.status_code == 422 and "certificate" in r.json()["errors"]
    r = requests.post(srv.url + "/business/certificates/00000000-0000-7000-8000-000000000000/resend",
                      headers=auth(tok))
    assert r.status_code == 404


def test_notify_off_by_default_and_validated(srv, demo, psql, sink, server):
    tok = demo["token"]
    b = upload(srv.url, tok, demo["template_ids"]["plain"], [row("off@example.com", "Off", "X")], notify=None)
    assert b["notify_recipients"] is False
    b2 = upload(srv.url, tok, demo["template_ids"]["plain"], [row("off2@example.com", "Off", "X")], notify="false")
    assert b2["notify_recipients"] is False
    for bid in (b["id"], b2["id"]):
        deadline = time.time() + 60
        while batch(srv.url, tok, bid)["status"] == "processing":
            assert time.time() < deadline
            time.sleep(0.2)
        cs, _ = certs(srv.url, tok, batch_id=bid)
        assert [c["email_status"] for c in cs] == ["not_requested"]
    assert psql("SELECT count(*) FROM bd_mail_messages WHERE recipient LIKE 'off%'").strip() == "0"
    files = [("csv_file", ("r.csv", (HEADER + row("x@example.com", "X", "X")).encode(), "text/csv")),
             ("name", (None, "Bad")), ("template_id", (None, demo["template_ids"]["plain"])),
             ("notify_recipients", (None, "maybe"))]
    r = requests.post(srv.url + "/business/batches", headers=auth(tok), files=files)
    assert r.status_code == 422 and "notify_recipients" in r.json()["errors"]
    # a server without BATCHD_SMTP_URL refuses to promise e-mail
    files[-1] = ("notify_recipients", (None, "1"))
    r = requests.post(server.url + "/business/batches", headers=auth(tok), files=files)
    assert r.status_code == 422
    assert r.json()["errors"]["notify_recipients"] == ["E-mail delivery is not configured on this server."]
    # the template's e-mail block is checked
    t = requests.get(srv.url + "/business/certificate-templates/" + demo["template_ids"]["plain"], headers=auth(tok)).json()
    for bad, key in (({"subject": "a\r\nBcc: x@y.z"}, "email.subject"), ({"text": 5}, "email.text"),
                     ({"subject": "x" * 256}, "email.subject"), ({"footer": "x"}, "email.footer"), ("x", "email")):
        r = requests.post(srv.url + "/business/certificate-templates", headers=auth(tok),
                          json={"name": "Bad mail", "layout": t["data"]["layout"], "email": bad})
        assert r.status_code == 422 and key in r.json()["errors"], (bad, r.text)


def wait_sql(psql, sql, want, timeout=60):
    deadline = time.time() + timeout
    while True:
        got = psql(sql).strip()
        if got == want:
            return
        assert time.time() < deadline, (sql, got, want)
        time.sleep(0.2)


def test_server_down_at_first_then_up(server_factory, demo, psql, srv):
    port = free_port()
    tok = demo["token"]
    down = server_factory(env=mail_env("smtp://127.0.0.1:%d" % port))
    srv.stop()  # only `down` sends now (the module's server would deliver to its own sink)
    late = SmtpSink(port=port)
    try:
        b = upload(down.url, tok, demo["template_ids"]["plain"], [row("late%d@example.com" % i, "Late %d" % i, "X")
                                                      for i in range(5)])
        # attempts fail (nothing listens), are retried, the certificates stay queued
        wait_sql(psql, "SELECT count(*) FROM bd_mail_messages WHERE recipient LIKE 'late%%' AND state = 'pending'"
                 " AND attempts >= 2 AND last_error IS NOT NULL", "5")
        cs, _ = certs(down.url, tok, batch_id=b["id"])
        assert {c["email_status"] for c in cs} == {"queued"}
        assert metric(down.url, 'batchd_mail_messages_total{outcome="retried"}') >= 10
        assert metric(down.url, "batchd_mail_queue_depth") >= 0
        late.start()
        wait_emailed(down.url, tok, b["id"], 5)
        time.sleep(1)
        got = sorted(r for rc, _ in late.parsed() for r in rc)
        assert got == sorted("late%d@example.com" % i for i in range(5))
    finally:
        late.stop()
        down.stop()


def test_sigkill_mid_delivery_no_duplicates(server_factory, demo, psql, srv):
    tok = demo["token"]
    srv.stop()  # only the servers made here send (the module's would deliver to its own sink)
    sink = SmtpSink().start()
    sink.hold_after = 40  # the 41st DATA on is never answered: messages in flight, not accepted
    env = mail_env(sink.url, BATCHD_SMTP_LEASE_S="5", BATCHD_SMTP_TIMEOUT_MS="1000")
    a = server_factory(env=env)
    try:
        b = upload(a.url, tok, demo["template_ids"]["plain"], [row("k%03d@example.com" % i, "K %d" % i, "X")
                                                   for i in range(120)])
        sink.wait_count(40)
        deadline = time.time() + 30
        while sink.held == 0:
            assert time.time() < deadline
            time.sleep(0.05)
        # every accepted message is recorded as sent before the kill
        wait_sql(psql, "SELECT count(*) FROM bd_mail_messages WHERE recipient LIKE 'k%%' AND state = 'sent'", "40")
        a.kill()
        sink.hold_after = None
        time.sleep(0.5)
        assert sink.accepted_count() == 40
        a2 = server_factory(env=env)
        wait_emailed(a2.url, tok, b["id"], 120, timeout=120)
        time.sleep(1.5)
        got = collections.Counter(r for rc, _ in sink.parsed() for r in rc)
        assert len(got) == 120 and set(got.values()) == {1}, [k for k, v in got.items() if v > 1]
        a2.stop()
    finally:
        sink.stop()


def test_starttls_required_unless_insecure(server_factory, demo, psql, srv, tmp_path_factory):
    tok = demo["token"]
    srv.stop()  # only the servers made here send
    d = tmp_path_factory.mktemp("tls")
    cert, key = self_signed(str(d))
    tls_sink = SmtpSink(tls_cert=(cert, key), require_starttls=True).start()
    plain_sink = SmtpSink().start()  # offers no STARTTLS
    try:
        # no STARTTLS offered and BATCHD_SMTP_INSECURE unset: nothing goes out in clear
        env = mail_env(plain_sink.url)
        del env["BATCHD_SMTP_INSECURE"]
        strict = server_factory(env=env)
        b = upload(strict.url, tok, demo["template_ids"]["plain"], [row("tls-plain@example.com", "Plain", "X")])
        wait_sql(psql, "SELECT count(*) FROM bd_mail_messages WHERE recipient = 'tls-plain@example.com'"
                 " AND state = 'pending' AND attempts >= 1", "1")
        assert plain_sink.accepted_count() == 0 and plain_sink.rcpt_seen == []
        err = psql("SELECT last_error FROM bd_mail_messages WHERE recipient = 'tls-plain@example.com'")
        assert "SSL" in err or "TLS" in err or "STARTTLS" in err, err
        strict.stop()
        # STARTTLS with the server's certificate verified against BATCHD_SMTP_CA_FILE
        env = mail_env(tls_sink.url, BATCHD_SMTP_CA_FILE=cert)
        del env["BATCHD_SMTP_INSECURE"]
        secure = server_factory(env=env)
        wait_emailed(secure.url, tok, b["id"], 1)
        b2 = upload(secure.url, tok, demo["template_ids"]["plain"], [row("tls-ok@example.com", "Secure", "X")])
        wait_emailed(secure.url, tok, b2["id"], 1)
        msgs = tls_sink.messages
        assert sorted(m["rcpt_tos"][0] for m in msgs) == ["tls-ok@example.com", "tls-plain@example.com"]
        assert all(m["tls"] for m in msgs)
        secure.stop()
    finally:
        tls_sink.stop()
        plain_sink.stop()

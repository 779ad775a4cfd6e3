"""bench/run mail: certificate e-mail (issue 26), two rows.

mail-messages: messages/s from batchd to a local SMTP server (aiosmtpd in
this process, counting and discarding), for certificates already rendered:
each round queues one message per certificate of a rendered batch (as a
resend of all of them would) and times until the server has them all and
the outbox is empty. Baseline, in alternation: Python's smtplib sending the
same message bytes to the same server over the same number of connections
(BATCHD_SMTP_CONNECTIONS, each reused), i.e. what that SMTP server takes.

cert-render-with-mail: certificates rendered per second (upload answered to
`completed`) of a batch with notify_recipients, its messages sent while it
renders, against the same batch without; in alternation after an unmeasured
warm-up batch, the median of the pairs' ratios (target >= 0.90: delivery
does not slow issuance).

The scenario restarts the run's batchd with BATCHD_SMTP_* set (the only
process: every render and message is its work) and restarts it without them
at the end.

The SMTP server runs on the same CPUs as batchd and PostgreSQL (as the
baseline's does), so both sides pay for it."""
import smtplib
import threading
import time

from aiosmtpd.controller import Controller

CONNECTIONS = 4
ROWS, ROWS_QUICK = 400, 100             # certificates whose messages make one round
RENDER, RENDER_QUICK = 200, 60          # certificates per render round
PAIRS, PAIRS_QUICK = 3, 1
RENDER_PAIRS, RENDER_PAIRS_QUICK = 2, 1


class Sink:
    """An SMTP server that counts what it accepts and keeps the last message."""

    def __init__(self, port):
        self.port, self.count, self.last = port, 0, None
        self.lock = threading.Lock()
        sink = self

        class H:
            async def handle_DATA(self, server, session, envelope):
                with sink.lock:
                    sink.count += 1
                    sink.last = envelope.original_content or envelope.content
                return "250 2.0.0 OK"
        self.controller = Controller(H(), hostname="127.0.0.1", port=port)
        self.controller.start()

    def n(self):
        with self.lock:
            return self.count

    def stop(self):
        self.controller.stop()


def multipart(fields, csv_bytes, boundary):
    out = b""
    for k, v in fields:
        out += b"--%s\r\nContent-Disposition: form-data; name=\"%s\"\r\n\r\n%s\r\n" % (
            boundary.encode(), k.encode(), v.encode())
    out += (b"--%s\r\nContent-Disposition: form-data; name=\"csv_file\"; filename=\"r.csv\"\r\n"
            b"Content-Type: text/csv\r\n\r\n" % boundary.encode()) + csv_bytes + b"\r\n--%s--\r\n" % boundary.encode()
    return out


def upload(R, url, token, tpl, name, n, notify):
    rows = "".join("mail%05d@bench.example,Recipient %05d,01-03-2025\r\n" % (i, i) for i in range(n))
    body = multipart([("name", name), ("template_id", tpl), ("notify_recipients", "1" if notify else "0")],
                     ("RecipientsEmail,RecipientsName,IssueDate\r\n" + rows).encode(), R.BOUNDARY)
    st, _, out = R.req(url + "/business/batches", "POST", body,
                       {"Authorization": "Bearer " + token,
                        "Content-Type": "multipart/form-data; boundary=" + R.BOUNDARY})
    if st != 201:
        raise RuntimeError("POST /business/batches: %d %s" % (st, out[:300]))
    import json
    return json.loads(out)["data"]["id"]


def wait_batch(R, url, token, bid, timeout=900, mailed=None):
    deadline = time.time() + timeout
    while True:
        st, doc = R.http_json(url + "/business/batches/" + bid, token=token)
        b = doc["data"]
        if b["status"] in ("completed", "partially_completed", "failed") and \
                (mailed is None or b["emailed_certificates"] + b["email_failed_certificates"] >= mailed):
            return b
        if time.time() > deadline:
            raise RuntimeError("batch %s not done in %d s: %s" % (bid, timeout, b["status"]))
        time.sleep(0.1)


def sc_mail(ctx, R):
    b = R.business(ctx)
    token, tpl = b["token"], b["template_ids"]["plain"]
    sink = Sink(R.free_port())
    env = {"BATCHD_SMTP_URL": "smtp://127.0.0.1:%d" % sink.port, "BATCHD_SMTP_INSECURE": "1",
           "BATCHD_SMTP_FROM": "Bench <bench@bench.example>", "BATCHD_SMTP_RATE": "0",
           "BATCHD_SMTP_CONNECTIONS": str(CONNECTIONS)}
    # the run's batchd, restarted with a mail server: the only process, so
    # every render and every message of the scenario is its work
    mailsrv = ctx.batchd
    saved = {k: mailsrv.env.get(k) for k in env}
    mailsrv.env.update(env)
    mailsrv.restart(1)
    rows = []
    try:
        # -- messages per second, certificates rendered beforehand
        n = ROWS_QUICK if ctx.quick else ROWS
        src = upload(R, mailsrv.url, token, tpl, "mail-bench-src", n, False)
        wait_batch(R, mailsrv.url, token, src)
        queue_sql = ("UPDATE biz_certificates SET email_status = 'queued', email_error = NULL, emailed_at = NULL,"
                     " email_message_id = bd_mail_queue('business', 'business.certificate', id::text, email)"
                     " WHERE batch_id = '%s'" % src)

        def ours_fn():
            before = sink.n()
            snap = R.snapshot(ctx, mailsrv)
            t0 = time.time()
            R.db_one(ctx, "WITH u AS (%s RETURNING 1) SELECT count(*) FROM u" % queue_sql)
            deadline = t0 + 300
            while sink.n() - before < n or R.db_one(
                    ctx, "SELECT count(*) FROM bd_mail_messages WHERE state = 'pending'") != "0":
                if time.time() > deadline:
                    raise RuntimeError("mail: %d of %d messages in 300 s" % (sink.n() - before, n))
                time.sleep(0.02)
            secs = time.time() - t0
            return {"rate": n / secs, "seconds": secs, "server": R.figures(ctx, mailsrv, snap, n)}

        def base_fn():
            msg = sink.last
            per = [n // CONNECTIONS + (1 if i < n % CONNECTIONS else 0) for i in range(CONNECTIONS)]
            errs = []

            def client(k):
                try:
                    with smtplib.SMTP("127.0.0.1", sink.port, timeout=60) as s:
                        for i in range(k):
                            s.sendmail("bench@bench.example", ["base%05d@bench.example" % i], msg)
                except Exception as e:  # reported below
                    errs.append(e)
            t0 = time.time()
            ts = [threading.Thread(target=client, args=(k,)) for k in per]
            for t in ts:
                t.start()
            for t in ts:
                t.join()
            if errs:
                raise RuntimeError("smtplib baseline: %s" % errs[0])
            secs = time.time() - t0
            return {"rate": n / secs, "seconds": secs}

        ours_fn()  # unmeasured: connections, caches
        ours, base, o_all, b_all = R.ab_rounds(ctx, ours_fn, base_fn, PAIRS_QUICK if ctx.quick else PAIRS)
        R.log("  mail: rounds %s msg/s, smtplib %s msg/s; %.2f ms of batchd CPU per message, %d bytes each" % (
            [round(r["rate"]) for r in o_all], [round(r["rate"]) for r in b_all],
            ours["server"]["cpu_s_per_1k"] or 0, len(sink.last or b"")))
        rows.append(R.row("mail-messages", "msg/s", ours["rate"], base["rate"],
                          "smtplib, %d connections, same bytes (msg/s)" % CONNECTIONS, server=ours["server"],
                          paired_ratio=R.paired(o_all, b_all),
                          detail=dict(R.rounds_detail(o_all, b_all), messages=n, connections=CONNECTIONS,
                                      message_bytes=len(sink.last or b""))))

        # -- rendering with delivery beside it, and without
        m = RENDER_QUICK if ctx.quick else RENDER
        with_, without = [], []

        def render_round(notify, k):
            t0 = time.time()
            bid = upload(R, mailsrv.url, token, tpl, "mail-bench-%s-%d" % ("on" if notify else "off", k), m,
                         notify)
            wait_batch(R, mailsrv.url, token, bid)
            secs = time.time() - t0
            if notify:  # its messages drain before the next round
                wait_batch(R, mailsrv.url, token, bid, mailed=m, timeout=300)
            return {"rate": m / secs, "seconds": secs}
        render_round(False, -1)  # unmeasured: the restarted process's render threads warm up
        for k in range(RENDER_PAIRS_QUICK if ctx.quick else RENDER_PAIRS):  # in alternation
            with_.append(render_round(True, k))
            without.append(render_round(False, k))
        R.log("  cert render with e-mail %s cert/s, without %s cert/s" % (
            [round(r["rate"], 1) for r in with_], [round(r["rate"], 1) for r in without]))
        w, wo = R.median_round(with_), R.median_round(without)
        rows.append(R.row("cert-render-with-mail", "cert/s", w["rate"], wo["rate"], "cert/s without e-mail",
                          target={"kind": "ratio_min", "value": 0.90}, paired_ratio=R.paired(with_, without),
                          detail={"certificates": m, "with": [round(r["rate"], 2) for r in with_],
                                  "without": [round(r["rate"], 2) for r in without]}))
    finally:
        for k, v in saved.items():
            if v is None:
                mailsrv.env.pop(k, None)
            else:
                mailsrv.env[k] = v
        mailsrv.restart(1)
        sink.stop()
    return rows

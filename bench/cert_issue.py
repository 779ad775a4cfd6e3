"""The cert-issue scenario of bench/run (issue 23): certificate issuance end
to end against the peer an integrator would otherwise build.

Rows:
  cert-e2e 100k  a 100k-row roster (10k with --quick) from the first byte of
                 the upload to the batch's `completed`, in seconds, and its
                 rate (certificates/s) in the detail
  cert-peer      that rate against the same certificate made by Node with
                 pdf-lib, @pdf-lib/fontkit and qrcode on as many processes
                 as cores (bench/cert-peer, installed here with `npm ci`);
                 target: at least 5x
  cert-bytes     bytes stored per certificate (PDF + PNG + QR SVG as
                 PostgreSQL stores them, pg_column_size), the PNG requested
                 first for a sample of the batch; target: at most 40 KB
bench/run registers it as `cert-issue`; `h` is bench/run's own module (its
helpers: the server, PostgreSQL, loadgen, rosters)."""
import os
import subprocess
import time
import urllib.error
import urllib.request
import uuid
import json

HERE = os.path.dirname(os.path.abspath(__file__))
PEER = os.path.join(HERE, "cert-peer")
SAMPLE = 20  # certificates whose PNG is requested before the bytes are counted


def peer_install():
    """npm ci in bench/cert-peer unless its tree is as new as the lockfile."""
    lock = os.path.join(PEER, "package-lock.json")
    mark = os.path.join(PEER, "node_modules", ".package-lock.json")
    if os.path.exists(mark) and os.path.getmtime(mark) >= os.path.getmtime(lock):
        return
    subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=PEER, check=True,
                   stdout=subprocess.DEVNULL)


def peer_rate(ctx, h, n):
    peer_install()
    out = subprocess.run(["node", os.path.join(PEER, "peer.js"), str(n), str(h.NCPU)], cwd=PEER, check=True,
                         capture_output=True, text=True, timeout=3600)
    return json.loads(out.stdout.strip().splitlines()[-1])


def run(ctx, h):
    b = h.business(ctx)
    token, tpl = b["token"], b["template_ids"]["plain"]
    n = 10000 if ctx.quick else 100000
    label = "10k" if ctx.quick else "100k"
    csv_path = h.cached(ctx, "roster-v1-%d.csv" % n, lambda path: h.write_roster(path, n))
    body = os.path.join(ctx.workdir, "cert-issue.body")
    name = "issue %d %s" % (n, uuid.uuid4().hex[:8])
    h.write_multipart(body, [("name", name), ("template_id", tpl)], "csv_file", csv_path, "roster.csv")
    h.cancel_backlog(ctx)
    ctx.pg.psql("TRUNCATE biz_certificates, biz_certificate_files", ctx.db_url)
    h.quiesce(ctx)
    srv = ctx.batchd
    t0 = time.time()
    res = h.loadgen(ctx, srv.url + "/business/batches", "-c", 1, "-n", 1, "-t", 600, "--body-file", body, "-H",
                    "Content-Type: multipart/form-data; boundary=" + h.BOUNDARY, "-H",
                    "Authorization: Bearer " + token, pin=False)
    h.check_status(res, (201,), "POST /business/batches (%d rows)" % n)
    upload_s = time.time() - t0
    bid = h.business_batch_by_name(ctx, token, name)["id"]
    url = srv.url + "/business/batches/" + bid
    deadline = t0 + 4 * 3600
    while True:
        st, doc = h.http_json(url, token=token)
        if st != 200:
            raise RuntimeError("GET /business/batches/{id}: %d" % st)
        batch = doc["data"]
        if batch["status"] in ("completed", "partially_completed", "failed"):
            break
        if time.time() > deadline:
            raise RuntimeError("batch %s not done after 4 h" % bid)
        time.sleep(0.5)
    e2e = time.time() - t0
    os.unlink(body)
    rate = (batch.get("processed_certificates") or 0) / e2e
    # the PNG of a sample requested (503 while others render: retried)
    st, doc = h.http_json(srv.url + "/business/certificates?per_page=%d&batch_id=%s" % (SAMPLE, bid), token=token)
    ids = [c["id"] for c in doc["data"]] if st == 200 else []
    for cid in ids:
        for _ in range(200):
            st = png_get(srv.url + "/business/certificates/%s/png" % cid, token)
            if st != 503:
                break
            time.sleep(0.2)
    q = ("SELECT avg(pg_column_size(f.pdf)), avg(pg_column_size(f.png)), avg(pg_column_size(f.qr_svg)),"
         " avg(pg_column_size(c.record) + pg_column_size(c.signature) + coalesce(pg_column_size(c.credential), 0)),"
         " count(*)"
         " FROM biz_certificate_files f JOIN biz_certificates c ON c.id = f.certificate_id"
         " WHERE c.batch_id = '%s' AND f.png IS NOT NULL" % bid)
    got = ctx.pg.psql(q, ctx.db_url).strip().split("|")
    pdf_b, png_b, svg_b, signed_b = (float(x or 0) for x in got[:4])
    per_cert = pdf_b + png_b + svg_b
    peer = peer_rate(ctx, h, 10 * h.NCPU if ctx.quick else 100 * h.NCPU)
    return [
        h.row("cert-e2e %s" % label, "s", e2e, None, "first upload byte to completed", lower=True,
              detail={"rows": n, "certificates_per_s": rate, "upload_s": upload_s, "status": batch["status"],
                      "processed": batch.get("processed_certificates"), "failed": batch.get("failed_certificates")}),
        h.row("cert-peer", "certs/s", rate, peer["per_s"],
              "Node pdf-lib + fontkit + qrcode, %d processes" % peer["processes"],
              target={"kind": "ratio_min", "value": 5.0}, detail={"peer": peer}),
        h.row("cert-bytes", "KB", per_cert / 1000, None, "stored per certificate, PNG requested (%s sampled)"
              % got[4], target={"kind": "ours_max", "value": 40}, lower=True,
              detail={"pdf_bytes": pdf_b, "png_bytes": png_b, "qr_svg_bytes": svg_b,
                      "signed_text_bytes": signed_b}),
    ]


def png_get(url, token):
    """GET of a PNG: its status code."""
    req = urllib.request.Request(url, headers={"Authorization": "Bearer " + token})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            r.read()
            return r.status
    except urllib.error.HTTPError as e:
        return e.code

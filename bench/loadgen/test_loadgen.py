#!/usr/bin/python3
"""bench.test_loadgen: loadgen's requests, bodies, counts and error paths.

usage: test_loadgen.py PATH/TO/loadgen

Against stallserver.py (which can log every request head and dump the first
body): exact --requests counts in both modes, warm-up exclusion, path
rotation and headers, the three generated bodies and --body-file byte for
byte, HEAD, pipelining, reconnects when the server closes after each
response, response timeouts, refused connections, running out of descriptors.
"""
import email.parser
import email.policy
import json
import os
import re
import shutil
import socket
import sys
import tempfile

from lgtest import Checks, StallServer, loadgen


def url(port, path="/"):
    return "http://127.0.0.1:%d%s" % (port, path)


def read_dump(path):
    with open(path, "rb") as f:
        raw = f.read()
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (l.partition(":") for l in lines[1:])}
    return lines[0], headers, body


def main(exe):
    c = Checks()
    tmp = tempfile.mkdtemp(prefix="loadgen-test-")
    log, dump = os.path.join(tmp, "log"), os.path.join(tmp, "dump")

    # counts: --requests is exact in both modes; warm-up requests are not counted
    with StallServer() as port:
        r, _ = loadgen(exe, url(port), "-c", 4, "-n", 100)
        c.check(r["requests"] == 100 and r["sent"] == 100 and r["status"] == {"200": 100},
                "closed loop -n 100: exactly 100 responses, all 200", r)
        r, wall = loadgen(exe, url(port), "-r", 500, "-c", 2, "-n", 50)
        c.check(r["requests"] == 50 and r["errors"]["total"] == 0, "open loop -n 50: exactly 50", r)
        c.check(0.09 <= r["duration_s"] <= 0.3, "open loop -n 50 at 500/s takes ~0.1 s (%.3f)" % r["duration_s"], r)
        r, _ = loadgen(exe, url(port), "-r", 200, "-c", 2, "-w", 0.5, "-d", 0.5)
        c.check(95 <= r["requests"] <= 100 and r["warmup_s"] == 0.5,
                "warm-up excluded: ~100 of ~200 requests counted (%d)" % r["requests"], r)
        r, _ = loadgen(exe, url(port), "-m", "HEAD", "-c", 2, "-n", 20)
        c.check(r["requests"] == 20 and r["errors"]["total"] == 0, "HEAD: responses without bodies parse", r)
        r, _ = loadgen(exe, url(port), "-c", 1, "--pipeline", 8, "-n", 200)
        c.check(r["requests"] == 200 and r["errors"]["total"] == 0 and r["connects"] == 1,
                "--pipeline 8 on one connection: 200 responses", r)

    # path rotation and headers
    paths = os.path.join(tmp, "paths")
    with open(paths, "w") as f:
        f.write("# codes\n/s/aaa\n\n  /s/bbb  \r\nhttp://127.0.0.1:1/s/ccc?x=1\n")
    with StallServer("--log", log) as port:
        r, _ = loadgen(exe, url(port, "/ignored"), "-c", 1, "-n", 9, "--paths-file", paths, "-H", "X-Test: yes",
                       "-H", "Authorization: Bearer k")
    with open(log) as f:
        reqs = [l.rstrip("\n").split("|") for l in f]
    c.check([q[0] for q in reqs] == ["GET /s/aaa HTTP/1.1", "GET /s/bbb HTTP/1.1", "GET /s/ccc?x=1 HTTP/1.1"] * 3,
            "--paths-file: paths rotate in file order", [q[0] for q in reqs])
    c.check(all("X-Test: yes" in q and "Authorization: Bearer k" in q and "Host: 127.0.0.1:%d" % port in q
                for q in reqs), "-H headers and Host on every request", reqs[:1])

    # generated bodies, byte for byte what the server received
    def body_run(*args):
        if os.path.exists(dump):
            os.unlink(dump)
        with StallServer("--dump", dump) as p:
            r, _ = loadgen(exe, url(p, "/v1/batches"), "-c", 1, "-n", 2, *args)
        c.check(r["requests"] == 2 and r["errors"]["total"] == 0, "%s: 2 requests" % " ".join(map(str, args)), r)
        return read_dump(dump)

    line, hdr, body = body_run("--gen", "qr-batch:5")
    doc = json.loads(body)
    c.check(line == "POST /v1/batches HTTP/1.1" and hdr.get("content-type") == "application/json"
            and int(hdr["content-length"]) == len(body), "qr-batch: POST, JSON, Content-Length", line)
    c.check(len(doc["items"]) == 5 and all(i["target"]["destination"].startswith("https://") for i in doc["items"])
            and isinstance(doc.get("design"), dict), "qr-batch:5: 5 items with target.destination, a design")

    line, hdr, body = body_run("--gen", "csv-multipart:7", "--field", "template_id=tpl_42", "--field", "name=Course")
    msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + hdr["content-type"].encode() + b"\r\n\r\n" + body)
    parts = {p.get_param("name", header="content-disposition"): p for p in msg.iter_parts()}
    csv = parts["csv_file"].get_payload(decode=True).decode() if "csv_file" in parts else ""
    rows = csv.strip("\r\n").split("\r\n")
    c.check(msg.is_multipart() and hdr["content-type"].startswith("multipart/form-data; boundary="),
            "csv-multipart: multipart/form-data", hdr)
    c.check(parts.get("name") is not None and parts["name"].get_payload() == "Course"
            and parts["template_id"].get_payload() == "tpl_42", "csv-multipart: fields name and template_id")
    c.check(rows[0] == "RecipientsEmail,RecipientsName,IssueDate" and len(rows) == 8
            and all(len(x.split(",")) == 3 for x in rows), "csv-multipart:7: header and 7 rows", rows[:3])
    c.check(all(re.fullmatch(r"recipient\d+@example\.com,Recipient \d+,(0[1-9]|[12]\d)-(0[1-9]|1[0-2])-2024", x)
                for x in rows[1:]), "csv-multipart: IssueDate is DD-MM-YYYY", rows[1:3])

    line, hdr, body = body_run("--gen", 'rpc:{"_brand_id":"b1"}', "-H", "Content-Type: application/vnd.x+json")
    c.check(body == b'{"_brand_id":"b1"}' and hdr["content-type"] == "application/vnd.x+json",
            "rpc: literal JSON, -H Content-Type overrides the default", (line, hdr))

    blob = os.path.join(tmp, "blob")
    with open(blob, "wb") as f:
        f.write(bytes(range(256)) * 1000)  # 256 kB: more than one socket write
    line, hdr, body = body_run("--body-file", blob, "-m", "PUT")
    c.check(line.startswith("PUT ") and body == bytes(range(256)) * 1000, "--body-file: 256 kB PUT byte for byte")

    # the server closes after every response: loadgen reconnects, loses nothing
    with StallServer("--close") as port:
        r, _ = loadgen(exe, url(port), "-c", 2, "-d", 0.5)
    c.check(r["requests"] >= 20 and r["errors"]["total"] == 0 and r["connects"] >= r["requests"],
            "Connection: close: one connect per request, no errors (%d)" % r["requests"], r)

    # responses slower than --timeout: counted as timeouts, connections replaced
    with StallServer("--stall-after", 0.2, "--stall-ms", 1500) as port:
        r, wall = loadgen(exe, url(port), "-r", 100, "-c", 2, "-d", 1, "-t", 0.3)
    c.check(r["errors"]["timeout"] >= 2 and r["connects"] > 2, "stall > --timeout: timeouts counted, reconnected", r)
    c.check(wall < 5, "timeout run ends promptly (%.1f s)" % wall)

    # nobody listening
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    dead = s.getsockname()[1]
    s.close()
    r, wall = loadgen(exe, url(dead), "-c", 2, "-d", 0.5, "-t", 0.5)
    c.check(r["errors"]["connect"] >= 2 and r["requests"] == 0 and wall < 3,
            "refused: connect errors, no requests, ends (%.1f s)" % wall, r)
    r, wall = loadgen(exe, url(dead), "-r", 100, "-c", 2, "-d", 0.5, "-t", 0.3)
    c.check(r["errors"]["connect"] >= 2 and r["errors"]["unfinished"] >= 45 and wall < 3,
            "refused, open loop: due requests reported unfinished (%.1f s)" % wall, r)

    # more connections than descriptors: the ones that cannot open are
    # connect errors (retried with backoff), the others carry the load
    with StallServer() as port:
        r, wall = loadgen(exe, url(port), "-c", 100, "-d", 0.5, "-t", 30, max_fds=40)
    c.check(r["errors"]["connect"] >= 60 and r["errors"]["timeout"] == 0 and r["requests"] > 100 and wall < 5,
            "EMFILE: connect errors only, run on the connections that opened (%.1f s)" % wall, r)
    shutil.rmtree(tmp, ignore_errors=True)
    c.exit()


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])

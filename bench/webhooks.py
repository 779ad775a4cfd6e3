#!/usr/bin/python3
"""bench/webhooks.py [--bin PATH] [--endpoints N] [--events N] [--concurrency N]

Webhook delivery throughput: how many signed deliveries per second one
batchd process makes to a local receiver that answers at once (nginx,
`return 204`, one worker), end to end: claimed from PostgreSQL, signed,
POSTed over keep-alive connections, recorded.

It starts a private PostgreSQL (scripts/testpg, in a temporary directory),
nginx and batchd (test hooks on, access log off, http and private
addresses allowed), registers N endpoints of one owner through the test
hooks, then queues EVENTS events for them in one transaction
(bd_webhook_emit: EVENTS x N deliveries, about 600 bytes of body each) and
times from its commit until every delivery is recorded as succeeded
(polled every 50 ms). Printed, and written as one JSON object to standard
output's last line: deliveries/s, events/s, batchd's CPU seconds per 1000
deliveries (/proc/<pid>/stat, all threads) and the worst loop lag during
the run (batchd_loop_lag_max_seconds). Everything listens on 127.0.0.1 and
is stopped at the end.

Defaults: 16 endpoints (at 4 in flight each, BATCHD_WEBHOOK_PER_ENDPOINT,
they fill the default 64 of BATCHD_WEBHOOK_CONCURRENCY), 1000 events.
"""
import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def psql(url, sql):
    out = subprocess.run(["psql", url, "-v", "ON_ERROR_STOP=1", "-qtAX", "-c", sql], capture_output=True, text=True,
                         timeout=600)
    if out.returncode:
        raise RuntimeError("psql: %s\n%s" % (sql, out.stderr))
    return out.stdout.strip()


def get(url, timeout=2):
    req = urllib.request.Request(url)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(req, timeout=timeout) as r:
        return r.status, r.read()


def post_json(url, obj):
    req = urllib.request.Request(url, data=json.dumps(obj).encode(), headers={"Content-Type": "application/json"})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(req, timeout=10) as r:
        return json.loads(r.read())


def wait_http(url, proc, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("%s exited with %s" % (proc.args[0], proc.returncode))
        try:
            if get(url)[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError("%s did not answer within %s s" % (url, timeout))


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def loop_lag_max(url):
    for line in get(url + "/metrics")[1].decode().splitlines():
        if line.startswith("batchd_loop_lag_max_seconds "):
            return float(line.split()[1])
    return float("nan")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[1], formatter_class=argparse.RawTextHelpFormatter)
    default_bin = next((p for p in (os.path.join(ROOT, d, "batchd") for d in ("build-release", "build", "build-test"))
                        if os.access(p, os.X_OK)), None)
    ap.add_argument("--bin", default=default_bin, help="the batchd binary (default: %(default)s)")
    ap.add_argument("--endpoints", type=int, default=16)
    ap.add_argument("--events", type=int, default=1000)
    ap.add_argument("--concurrency", type=int, default=64, help="BATCHD_WEBHOOK_CONCURRENCY")
    args = ap.parse_args()
    if not args.bin:
        sys.exit("no batchd binary: build one, or give --bin")
    if not shutil.which("nginx"):
        sys.exit("nginx not found (scripts/setup installs it)")
    work = tempfile.mkdtemp(prefix="batchd-bench-webhooks-")
    os.chmod(work, 0o755)  # the private PostgreSQL runs as postgres when we are root
    procs, pg_dir = [], os.path.join(work, "pg")
    try:
        url = subprocess.run([os.path.join(ROOT, "scripts", "testpg"), "start", pg_dir], capture_output=True,
                             text=True, check=True).stdout.strip().splitlines()[-1]
        # the receiver
        nport = free_port()
        nd = os.path.join(work, "nginx")
        os.makedirs(nd)
        with open(os.path.join(nd, "nginx.conf"), "w") as f:
            f.write("""
worker_processes 1; daemon off; pid %(d)s/nginx.pid; error_log %(d)s/error.log;
events { worker_connections 4096; }
http {
  access_log off; keepalive_requests 10000000;
  client_body_temp_path %(d)s; proxy_temp_path %(d)s; fastcgi_temp_path %(d)s;
  uwsgi_temp_path %(d)s; scgi_temp_path %(d)s;
  server { listen 127.0.0.1:%(port)d; location / { return 204; } }
}
""" % {"d": nd, "port": nport})
        ng = subprocess.Popen(["nginx", "-c", os.path.join(nd, "nginx.conf"), "-p", nd],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(ng)
        # batchd
        port = free_port()
        base = "http://127.0.0.1:%d" % port
        env = dict(os.environ, DATABASE_URL=url, BATCHD_LISTEN="127.0.0.1:%d" % port, BATCHD_TEST_HOOKS="1",
                   BATCHD_ACCESS_LOG="0", BATCHD_RATE_LIMIT="0", BATCHD_WEBHOOK_ALLOW_HTTP="1",
                   BATCHD_WEBHOOK_ALLOW_PRIVATE="1", BATCHD_WEBHOOK_CONCURRENCY=str(args.concurrency),
                   BATCHD_WEBHOOK_KEY_FILE=os.path.join(work, "webhook.key"),
                   BATCHD_SIGNING_KEY_FILE=os.path.join(work, "signing.key"))
        log = open(os.path.join(work, "batchd.log"), "w")
        bd = subprocess.Popen([args.bin], env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        procs.append(bd)
        wait_http(base + "/readyz", bd)
        for i in range(args.endpoints):
            post_json(base + "/_test/webhooks/endpoints",
                      {"surface": "qr", "owner": "bench", "mode": "live", "events": ["*"],
                       "url": "http://127.0.0.1:%d/hook/%d" % (nport, i)})
        total = args.events * args.endpoints
        lag0, cpu0 = loop_lag_max(base), cpu_seconds(bd.pid)
        t0 = time.time()
        psql(url, "SELECT count(bd_webhook_emit('qr', 'bench', 'live', 'batch.completed',"
                  " jsonb_build_object('id', 'b_' || g, 'object', 'batch', 'status', 'completed',"
                  " 'pad', repeat('x', 480)))) FROM generate_series(1, %d) g" % args.events)
        committed = time.time()
        done = 0
        while done < total:
            time.sleep(0.05)
            done = int(psql(url, "SELECT count(*) FROM bd_webhook_deliveries WHERE state = 'succeeded'"))
            if time.time() - committed > 600:
                raise RuntimeError("only %d of %d delivered after 600 s" % (done, total))
        secs = time.time() - committed
        cpu, lag = cpu_seconds(bd.pid) - cpu0, loop_lag_max(base)
        failed = int(psql(url, "SELECT count(*) FROM bd_webhook_deliveries WHERE attempts > 1"))
        res = {"scenario": "webhook-delivery", "endpoints": args.endpoints, "events": args.events,
               "deliveries": total, "emit_s": round(committed - t0, 3), "seconds": round(secs, 3),
               "deliveries_per_s": round(total / secs, 1), "events_per_s": round(args.events / secs, 1),
               "cpu_s_per_1k": round(cpu / total * 1000, 4), "retried": failed,
               "loop_lag_max_ms": round(lag * 1000, 1) if lag > lag0 else "<= %.1f (unchanged)" % (lag * 1000),
               "loadavg": os.getloadavg()}
        print("%d deliveries (%d events x %d endpoints) in %.2f s after the commit: %.0f deliveries/s,"
              " %.1f ms CPU per delivery, loop lag max %s ms"
              % (total, args.events, args.endpoints, secs, total / secs, cpu / total * 1000, res["loop_lag_max_ms"]))
        print(json.dumps(res))
    finally:
        for p in reversed(procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM if p is not procs[0] else signal.SIGQUIT)
                try:
                    p.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        subprocess.run([os.path.join(ROOT, "scripts", "testpg"), "stop", pg_dir], capture_output=True)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

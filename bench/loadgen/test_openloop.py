#!/usr/bin/python3
"""bench.test_openloop: loadgen's open loop does not hide a server stall.

usage: test_openloop.py PATH/TO/loadgen

A server that freezes for 500 ms (stallserver.py) is driven three ways:
  1. open loop, 200 req/s over 2 connections for 3 s: the ~100 requests due
     during the freeze queue up behind the 2 stuck connections; measured from
     their intended send times they take up to 500 ms, so p99 >= 300 ms, while
     their service times (from the actual write) stay short: that gap is
     exactly what coordinated omission hides.
  2. closed loop against the same freeze: each connection has one request
     stuck, thousands of others are fast, so p50 and p99 stay low and only
     the max shows the freeze.
  3. open loop without a freeze (control): p99 far below the freeze.
With only 2 connections, a loadgen that timed requests from their actual
write would report the open-loop p99 below 300 ms and fail check 1.
"""
import sys

from lgtest import Checks, StallServer, loadgen

STALL_MS = 500


def main(exe):
    c = Checks()
    with StallServer("--stall-after", 1.0, "--stall-ms", STALL_MS) as port:
        r, _ = loadgen(exe, "http://127.0.0.1:%d/" % port, "--rate", 200, "-c", 2, "-d", 3)
    c.check(r["mode"] == "open" and r["errors"]["total"] == 0, "open/stall: no errors", r)
    c.check(585 <= r["requests"] <= 600, "open/stall: ~600 requests completed (%d)" % r["requests"], r)
    c.check(180 <= r["rate"] <= 220, "open/stall: achieved ~200 req/s (%.1f)" % r["rate"], r)
    c.check(r["p99_ms"] >= 300, "open/stall: p99 %.1f ms >= 300 ms (the freeze shows)" % r["p99_ms"], r)
    c.check(r["p90_ms"] >= 50, "open/stall: p90 %.1f ms >= 50 ms (~1/6 of requests were due during it)" % r["p90_ms"], r)
    c.check(400 <= r["max_ms"] <= 1000, "open/stall: max %.1f ms ~ the 500 ms freeze" % r["max_ms"], r)
    c.check(r["p50_ms"] < 50, "open/stall: p50 %.1f ms < 50 ms" % r["p50_ms"], r)
    c.check(r["service"]["p99_ms"] < 150,
            "open/stall: service-time p99 %.1f ms < 150 ms (what coordinated omission would report)"
            % r["service"]["p99_ms"], r)

    with StallServer("--stall-after", 1.0, "--stall-ms", STALL_MS) as port:
        r, _ = loadgen(exe, "http://127.0.0.1:%d/" % port, "-c", 2, "-d", 2.5)
    c.check(r["mode"] == "closed" and r["errors"]["total"] == 0, "closed/stall: no errors", r)
    c.check(r["requests"] >= 1000, "closed/stall: many requests (%d)" % r["requests"], r)
    c.check(r["p50_ms"] < 50, "closed/stall: p50 %.1f ms < 50 ms" % r["p50_ms"], r)
    c.check(r["p99_ms"] < 300, "closed/stall: p99 %.1f ms < 300 ms (the freeze is hidden)" % r["p99_ms"], r)
    c.check(r["max_ms"] >= 400, "closed/stall: max %.1f ms >= 400 ms (only the max sees it)" % r["max_ms"], r)

    with StallServer() as port:
        r, _ = loadgen(exe, "http://127.0.0.1:%d/" % port, "--rate", 200, "-c", 2, "-d", 2)
    c.check(r["errors"]["total"] == 0 and 390 <= r["requests"] <= 400,
            "control: ~400 requests, no errors (%d)" % r["requests"], r)
    c.check(r["p99_ms"] < 150, "control: p99 %.1f ms < 150 ms (well under the freeze)" % r["p99_ms"], r)
    c.check(r["max_ms"] < 300, "control: max %.1f ms < 300 ms" % r["max_ms"], r)
    c.exit()


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])

"""benchlib: the logic of bench/run that does not need a server, kept apart
so bench/test_benchlib.py can check it without timing anything.

- rate_search: the highest rate that meets a latency objective, given a
  probe function (exponential growth, then bisection on a log scale).
- rows: ratios, targets and "met?" of one result row; the printed table and
  its Markdown form.
- server-side figures: CPU seconds from /proc/<pid>/stat, memory from
  /proc/<pid>/status, loop lag from two scrapes of /metrics.
- compare_runs: do two runs agree within a tolerance on every ratio?
"""
import math
import re

# --- rate search -----------------------------------------------------------------


def rate_search(probe, start, lo_limit, hi_limit, rel_tol=0.10, max_probes=8, factor=2.0):
    """Finds the highest rate in [lo_limit, hi_limit] at which probe(rate)
    passes, assuming passing is (mostly) monotone: it passes below some
    threshold and fails above it.

    probe(rate) -> (ok, info). Starts at `start`; while it passes, multiplies
    by `factor` (up to hi_limit); while it fails, divides (down to lo_limit).
    Then bisects between the best pass and the lowest fail above it on a log
    scale until fail / pass <= 1 + rel_tol or max_probes probes were spent.
    A noisy probe that fails below a rate that passed does not lower the best
    pass: the answer is the highest rate that passed, and the bracket always
    keeps fail > pass.

    Returns {"rate": best passing rate or None, "fail": lowest failing rate
    above it or None, "probes": [(rate, ok, info), ...] in order}.
    """
    if not (0 < lo_limit <= start <= hi_limit) or factor <= 1:
        raise ValueError("need 0 < lo_limit <= start <= hi_limit and factor > 1")
    probes = []
    best, fail = None, None

    def run(rate):
        nonlocal best, fail
        ok, info = probe(rate)
        probes.append((rate, bool(ok), info))
        if ok:
            if best is None or rate > best:
                best = rate
            if fail is not None and fail <= best:  # noise: a higher rate passed after all
                fail = None
        elif best is None or rate > best:
            if fail is None or rate < fail:
                fail = rate
        return ok

    rate = start
    if run(rate):
        while fail is None and rate < hi_limit and len(probes) < max_probes:
            rate = min(rate * factor, hi_limit)
            run(rate)
    else:
        while best is None and rate > lo_limit and len(probes) < max_probes:
            rate = max(rate / factor, lo_limit)
            run(rate)
    while best is not None and fail is not None and fail / best > 1 + rel_tol and len(probes) < max_probes:
        run(math.sqrt(best * fail))
    return {"rate": best, "fail": fail, "probes": probes}


# --- rows and the table ----------------------------------------------------------

# A row: {"scenario", "unit", "ours", "baseline" (or None), "baseline_name",
#         "lower_is_better" (ours: smaller is better), "target": None or
#         {"kind": "ratio_min"|"ratio_max"|"ours_max"|"ours_min", "value": x}}
# A skipped row has "skipped": reason; a failed one "error": message.


def ratio_of(row):
    """ours relative to the baseline, oriented so that > 1 means ours is
    better: ours/baseline for rates, baseline/ours for times (lower is
    better). Rows with "ratio_is" = "plain" always use ours/baseline (growth
    factors, where the direction is in the target). None without a baseline."""
    ours, base = row.get("ours"), row.get("baseline")
    if ours is None or base is None:
        return None
    if row.get("ratio_is") == "plain" or not row.get("lower_is_better"):
        return ours / base if base else None
    return base / ours if ours else None


def met_of(row, ratio):
    """"yes", "NO" or "-" (no target)."""
    t = row.get("target")
    if not t:
        return "-"
    kind, v = t["kind"], t["value"]
    if kind == "ratio_min":
        ok = ratio is not None and ratio >= v
    elif kind == "ratio_max":
        ok = ratio is not None and ratio <= v
    elif kind == "ours_max":
        ok = row.get("ours") is not None and row["ours"] < v
    elif kind == "ours_min":
        ok = row.get("ours") is not None and row["ours"] >= v
    else:
        raise ValueError("unknown target kind " + kind)
    return "yes" if ok else "NO"


def target_text(row):
    t = row.get("target")
    if not t:
        return "-"
    v = t["value"]
    return {"ratio_min": ">= %g", "ratio_max": "<= %g", "ours_max": "< %g", "ours_min": ">= %g"}[t["kind"]] % v + (
        " " + row["unit"] if t["kind"].startswith("ours") else "")


def finish_row(row):
    """Adds ratio and met to a row (in place) and returns it."""
    if "error" in row or "skipped" in row:
        row["ratio"], row["met"] = None, "-"
        return row
    row["ratio"] = ratio_of(row)
    row["met"] = met_of(row, row["ratio"])
    return row


def fmt_num(v):
    if v is None:
        return "-"
    a = abs(v)
    if a >= 1000:
        return "{:,.0f}".format(v)
    if a >= 100:
        return "%.1f" % v
    if a >= 1:
        return "%.2f" % v
    return "%.3g" % v  # three significant digits: CPU s per 1000 items can be 0.00123


def server_cols(row):
    s = row.get("server") or {}
    cpu = s.get("cpu_s_per_1k")
    rss = s.get("peak_rss_mib")
    lag = s.get("loop_lag_max_ms")
    return (fmt_num(cpu) if cpu is not None else "-", fmt_num(rss) if rss is not None else "-",
            ("<=" if s.get("loop_lag_bound") else "") + fmt_num(lag) if lag is not None else "-")


HEAD = ("scenario", "ours", "unit", "baseline", "ratio", "target", "met", "cpu s/1k", "RSS MiB", "loop max ms",
        "baseline is")


def table_lines(rows):
    """The printed table, one string per line."""
    out = ["%-22s %12s %-9s %12s %7s %-13s %4s %9s %8s %11s  %s" % HEAD]
    for r in rows:
        if "error" in r:
            out.append("%-22s ERROR: %s" % (r["scenario"], r["error"]))
            continue
        if "skipped" in r:
            out.append("%-22s skipped: %s" % (r["scenario"], r["skipped"]))
            continue
        cpu, rss, lag = server_cols(r)
        out.append("%-22s %12s %-9s %12s %7s %-13s %4s %9s %8s %11s  %s" % (
            r["scenario"], fmt_num(r["ours"]), r["unit"], fmt_num(r.get("baseline")),
            "-" if r.get("ratio") is None else "%.2f" % r["ratio"], target_text(r), r.get("met", "-"), cpu, rss,
            lag, r.get("baseline_name") or ""))
    return out


def table_markdown(rows):
    out = ["| scenario | ours | baseline (same run) | ratio | target | met | CPU s/1k | peak RSS MiB | loop max ms |",
           "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if "error" in r or "skipped" in r:
            out.append("| `%s` | %s | | | | | | | |" % (r["scenario"], ("error: " + r["error"]) if "error" in r
                                                         else "skipped: " + r["skipped"]))
            continue
        cpu, rss, lag = server_cols(r)
        base = "-" if r.get("baseline") is None else "%s: %s" % (r.get("baseline_name") or "", fmt_num(r["baseline"]))
        out.append("| `%s` | %s %s | %s | %s | %s | %s | %s | %s | %s |" % (
            r["scenario"], fmt_num(r["ours"]), r["unit"], base, "-" if r.get("ratio") is None else "%.2f" % r["ratio"],
            target_text(r), r.get("met", "-"), cpu, rss, lag))
    return out


# --- server-side figures ---------------------------------------------------------


def proc_stat_cpu_ticks(stat_text):
    """utime + stime (clock ticks, all threads) from the text of
    /proc/<pid>/stat. The command name (field 2) may hold spaces and
    parentheses, so fields are counted after its last ')'."""
    rest = stat_text[stat_text.rindex(")") + 2:].split()
    # rest[0] is field 3 (state); utime and stime are fields 14 and 15
    return int(rest[11]) + int(rest[12])


def proc_status_kib(status_text, key):
    """A 'kB' line of /proc/<pid>/status (VmRSS, VmHWM, ...), in KiB."""
    m = re.search(r"^%s:\s+(\d+) kB" % re.escape(key), status_text, re.M)
    return int(m.group(1)) if m else None


_PROM_LINE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{[^}]*\})?)\s+(\S+)")


def parse_prom(text):
    """Prometheus text format -> {"name{labels}": float} (comments skipped)."""
    out = {}
    for line in text.splitlines():
        if not line or line[0] == "#":
            continue
        m = _PROM_LINE.match(line)
        if m:
            try:
                out[m.group(1)] = float(m.group(2))
            except ValueError:
                pass
    return out


def lag_buckets(prom):
    """[(upper bound in s, cumulative count)] of batchd_loop_lag_seconds."""
    b = []
    for k, v in prom.items():
        m = re.match(r'batchd_loop_lag_seconds_bucket\{le="([^"]+)"\}$', k)
        if m:
            b.append((math.inf if m.group(1) == "+Inf" else float(m.group(1)), v))
    return sorted(b)


def lag_window_max(before, after):
    """The worst loop lateness between two scrapes (parsed with parse_prom),
    in seconds, and whether it is exact: (seconds, exact) or (None, True)
    when no timer fired in between.

    If the since-start max grew, the new max happened inside the window and
    is exact. Otherwise the window's worst is at most the old max and at most
    the upper edge of the highest histogram bucket that gained samples: that
    bound is returned with exact = False."""
    mb, ma = before.get("batchd_loop_lag_max_seconds", 0.0), after.get("batchd_loop_lag_max_seconds", 0.0)
    if ma > mb:
        return ma, True
    bb, ba = dict(lag_buckets(before)), lag_buckets(after)
    prev_cum_b, prev_cum_a, top = 0.0, 0.0, None
    for le, cum_a in ba:
        cum_b = bb.get(le, 0.0)
        if (cum_a - prev_cum_a) - (cum_b - prev_cum_b) > 0:
            top = le
        prev_cum_a, prev_cum_b = cum_a, cum_b
    if top is None:
        return None, True
    return min(top, ma), False


# --- two runs ----------------------------------------------------------------------


# figures without a baseline that agree when this close, whatever their
# relative spread: a page or two of resident memory
ABS_TOLERANCE = {"MiB": 1.0}


def compare_runs(rows_a, rows_b, tol=0.15):
    """Per scenario present and measured in both: the two ratios (or the two
    'ours' figures for rows without a baseline) and whether they agree:
    max/min - 1 <= tol. Returns [(scenario, what, a, b, spread, ok)]."""
    b_by = {r["scenario"]: r for r in rows_b}
    out = []
    for ra in rows_a:
        rb = b_by.get(ra["scenario"])
        if rb is None or any(k in r for r in (ra, rb) for k in ("error", "skipped")):
            continue
        what = "ratio" if ra.get("ratio") is not None and rb.get("ratio") is not None else "ours"
        a, b = ra.get(what), rb.get(what)
        if a is None or b is None:
            continue
        lo, hi = min(a, b), max(a, b)
        if what == "ours" and hi - lo <= ABS_TOLERANCE.get(ra.get("unit"), 0):
            spread = 0.0  # e.g. a memory growth of 0 and of 0.09 MiB: both none
        elif lo <= 0:
            spread = 0.0 if hi == lo else math.inf
        else:
            spread = hi / lo - 1
        out.append((ra["scenario"], what, a, b, spread, spread <= tol))
    return out

"""benchlib: the logic of bench/run that does not need a server, kept apart
so bench/test_benchlib.py can check it without timing anything.

- capacity_search: the highest rate that meets a latency objective and is
  sustained by the work behind it, given a probe function.
- paired_ratio: the ratio of two sides measured in alternation.
- rows: ratios, targets and "met?" of one result row; the printed table and
  its Markdown form.
- server-side figures: CPU seconds from /proc/<pid>/stat, memory from
  /proc/<pid>/status, loop lag from two scrapes of /metrics.
- compare_runs: do two runs agree within a tolerance on every ratio?
"""
import math
import re

# --- rate search -----------------------------------------------------------------


def capacity_search(probe, start, lo_limit, hi_limit, factor=1.1, max_probes=4, keep_up=0.95):
    """The highest rate that meets a latency objective *and* is sustained,
    when the work behind the requests (rendering behind intake) can fall
    behind the rate they are offered at.

    probe(rate) -> (ok, sustained, info): ok is the objective at the offered
    rate (latency, answers); sustained is the rate the work was done at, the
    completions per second from the first request to the last completion.
    A passing probe is worth min(rate, sustained). Starts at `start`
    (best just above what the work sustains):
    - a pass whose work fell behind (sustained < keep_up * rate) measured
      the limit itself: the search ends;
    - a pass whose work kept up steps up by `factor` (up to hi_limit);
    - a fail steps down by `factor` (down to lo_limit) until a pass, and
      after a pass ends the search: the objective is the limit.
    The answer is a measured rate, not a bracket: two runs agree as closely
    as the sustained rate they measure, where a pass/fail bisection lands
    on a grid of its steps (0.91 or 1.05 of the start, by chance).

    Returns {"rate": best worth or None, "limit": "work" | "objective" |
    "range" | "probes", "probes": [(rate, ok, sustained, info), ...]}.
    """
    if not (0 < lo_limit <= start <= hi_limit) or factor <= 1 or not 0 < keep_up <= 1:
        raise ValueError("need 0 < lo_limit <= start <= hi_limit, factor > 1, 0 < keep_up <= 1")
    probes, best, rate = [], None, start
    limit = "probes"
    while len(probes) < max_probes:
        ok, sustained, info = probe(rate)
        probes.append((rate, bool(ok), sustained, info))
        if ok:
            worth = min(rate, sustained)
            best = worth if best is None else max(best, worth)
            if sustained < keep_up * rate:
                limit = "work"
                break
            if rate >= hi_limit:
                limit = "range"
                break
            rate = min(rate * factor, hi_limit)
        else:
            if best is not None:
                limit = "objective"
                break
            if rate <= lo_limit:
                limit = "range"
                break
            rate = max(rate / factor, lo_limit)
    return {"rate": best, "limit": limit, "probes": probes}


def median(values):
    """The median (of an even number, the mean of the middle two)."""
    if not values:
        raise ValueError("no rounds")
    s = sorted(values)
    n = len(s)
    return s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2


def median_index(values):
    """The index of a median value (of an even number, the upper one)."""
    if not values:
        raise ValueError("no rounds")
    return sorted(range(len(values)), key=lambda i: values[i])[len(values) // 2]


def paired_ratio(ours, base, lower=False):
    """The ratio of a scenario whose two sides alternate (ours, baseline,
    ours, baseline, ...): the median of each pair's own ratio, ours_i /
    base_i (lower=True, times: base_i / ours_i, so that > 1 is still ours
    better). Neighbours in time share the machine's speed of the moment,
    which drifts here by 15 % from one minute to the next and came in
    modes (a second process's rounds at 37k or 43k req/s); two sides'
    separate figures (their medians, or each one's second best round)
    fall on different modes by chance. Over four consecutive full runs the
    three pairs of runs disagreed by more than 15 % on 14 ratios with each
    side's second best, 10 with each side's median, 5 with this."""
    if len(ours) != len(base) or not ours:
        raise ValueError("need as many rounds of each side, at least one")
    if lower:
        return median([b / o for o, b in zip(ours, base)])
    return median([o / b for o, b in zip(ours, base)])


# --- rows and the table ----------------------------------------------------------

# A row: {"scenario", "unit", "ours", "baseline" (or None), "baseline_name",
#         "lower_is_better" (ours: smaller is better), "target": None or
#         {"kind": "ratio_min"|"ratio_max"|"ours_max"|"ours_min", "value": x}}
# A skipped row has "skipped": reason; a failed one "error": message.


def ratio_of(row):
    """ours relative to the baseline, oriented so that > 1 means ours is
    better: ours/baseline for rates, baseline/ours for times (lower is
    better). Rows with "ratio_is" = "plain" always use ours/baseline (growth
    factors, where the direction is in the target). A row's "paired_ratio"
    (the median of the ratios of alternating rounds) is its ratio, in the
    same orientation. None without a baseline."""
    ours, base = row.get("ours"), row.get("baseline")
    if ours is None or base is None:
        return None
    if row.get("paired_ratio") is not None:  # of alternating rounds (paired_ratio())
        return row["paired_ratio"]
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

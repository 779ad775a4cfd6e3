"""Tests of bench/benchlib.py: the capacity search against fake systems
(limited by the work, by the objective, out of range, noisy), ratios and
targets, /proc and Prometheus parsing, the loop-lag window, and the
comparison of two runs. Nothing here is timed.

Run: /usr/bin/python3 bench/test_benchlib.py (ctest: bench.test_benchlib)."""
import math
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib as bl  # noqa: E402


def capacity_probe(objective, capacity, calls, noise=0.0):
    """A fake system: the latency objective holds up to `objective`; the
    work behind it sustains `capacity` (times 1 + noise)."""
    def probe(rate):
        calls.append(rate)
        done = min(rate, capacity * (1 + noise))
        return rate <= objective, done, {"p99_ms": 50.0 if rate <= objective else 500.0}
    return probe


class CapacitySearch(unittest.TestCase):
    def test_work_limited_answer_is_the_measured_capacity(self):
        for capacity in (3.0, 7.3, 8.0, 9.9):
            calls = []
            r = bl.capacity_search(capacity_probe(100, capacity, calls), start=8.8, lo_limit=0.25, hi_limit=400)
            self.assertAlmostEqual(r["rate"], capacity)  # measured, not a grid point of the steps
            self.assertEqual(r["limit"], "work")
            self.assertEqual([p[0] for p in r["probes"]], calls)

    def test_starts_at_start_and_steps_up_while_work_keeps_up(self):
        calls = []
        r = bl.capacity_search(capacity_probe(100, 12.0, calls), start=8, lo_limit=0.25, hi_limit=400, factor=1.1,
                               max_probes=8)
        self.assertEqual(calls[0], 8)
        self.assertAlmostEqual(calls[1], 8.8)
        self.assertAlmostEqual(r["rate"], 12.0)
        self.assertGreater(calls[-1] * 0.95, 12.0)  # the last probe is the one whose work fell behind

    def test_objective_limited_steps_down_to_a_pass(self):
        calls = []
        r = bl.capacity_search(capacity_probe(6.0, 9.0, calls), start=8, lo_limit=0.25, hi_limit=400, factor=1.1,
                               max_probes=8)
        self.assertEqual(calls[:2], [8, 8 / 1.1])
        self.assertLessEqual(r["rate"], 6.0)
        self.assertGreater(r["rate"] * 1.1, 6.0)  # within one step of the objective's limit
        self.assertEqual(r["limit"], "objective")  # the step back up from the pass failed again
        self.assertTrue(all(p[1] == (p[0] <= 6.0) for p in r["probes"]))

    def test_objective_fails_after_a_kept_up_pass_ends_there(self):
        calls = []
        r = bl.capacity_search(capacity_probe(9.0, 20.0, calls), start=8, lo_limit=0.25, hi_limit=400, factor=1.1)
        self.assertEqual(len(calls), 3)  # 8 and 8.8 pass and keep up, 9.68 fails the objective
        self.assertAlmostEqual(r["rate"], 8.8)
        self.assertEqual(r["limit"], "objective")

    def test_never_passes(self):
        calls = []
        r = bl.capacity_search(capacity_probe(0.1, 9.0, calls), start=1, lo_limit=0.5, hi_limit=400, factor=2,
                               max_probes=10)
        self.assertIsNone(r["rate"])
        self.assertEqual(calls, [1, 0.5])
        self.assertEqual(r["limit"], "range")

    def test_always_keeps_up_stops_at_hi_limit(self):
        calls = []
        r = bl.capacity_search(capacity_probe(1e9, 1e9, calls), start=8, lo_limit=1, hi_limit=20, factor=2,
                               max_probes=10)
        self.assertEqual(calls, [8, 16, 20])
        self.assertEqual(r["rate"], 20)
        self.assertEqual(r["limit"], "range")

    def test_probe_budget(self):
        calls = []
        r = bl.capacity_search(capacity_probe(1e9, 1e9, calls), start=1, lo_limit=1, hi_limit=1e6, max_probes=4)
        self.assertEqual(len(calls), 4)
        self.assertEqual(r["limit"], "probes")
        self.assertAlmostEqual(r["rate"], 1.1 ** 3)

    def test_noise_in_the_work_moves_the_answer_by_as_much(self):
        # +/-5 % in what the work sustains gives +/-5 % in the answer, not a step of the search
        lo = bl.capacity_search(capacity_probe(100, 8.0, [], -0.05), start=8.8, lo_limit=1, hi_limit=400)["rate"]
        hi = bl.capacity_search(capacity_probe(100, 8.0, [], +0.05), start=8.8, lo_limit=1, hi_limit=400)["rate"]
        self.assertAlmostEqual(hi / lo, 1.05 / 0.95)

    def test_bad_arguments(self):
        for kw in ({"start": 0.5, "lo_limit": 1, "hi_limit": 10}, {"start": 5, "lo_limit": 1, "hi_limit": 10, "factor": 1},
                   {"start": 5, "lo_limit": 1, "hi_limit": 10, "keep_up": 0}):
            with self.assertRaises(ValueError):
                bl.capacity_search(lambda r: (True, r, None), **kw)


class Paired(unittest.TestCase):
    def test_pairs_cancel_a_drift_both_sides_share(self):
        # the machine slows by half over the rounds; each pair shares the speed of its moment
        ours = [100, 90, 70, 50, 52]
        base = [200, 180, 140, 100, 104]
        self.assertAlmostEqual(bl.paired_ratio(ours, base), 0.5)

    def test_modes_landing_on_different_sides(self):
        # each side's median falls on a different mode of the machine; the pairs do not
        ours = [43, 37, 43, 37, 37]
        base = [86, 74, 86, 74, 86]
        self.assertAlmostEqual(bl.median(ours) / bl.median(base), 37 / 86)
        self.assertAlmostEqual(bl.paired_ratio(ours, base), 0.5)

    def test_times_are_oriented_ours_better_above_one(self):
        self.assertAlmostEqual(bl.paired_ratio([2.0, 4.0, 3.0], [1.0, 2.0, 6.0], lower=True), 0.5)
        self.assertAlmostEqual(bl.paired_ratio([1.0, 1.0], [2.0, 3.0], lower=True), 2.5)  # even: mean of the middle two

    def test_bad_input(self):
        for o, b in (([], []), ([1.0], [1.0, 2.0])):
            with self.assertRaises(ValueError):
                bl.paired_ratio(o, b)

    def test_median(self):
        self.assertEqual(bl.median([3, 1, 2]), 2)
        self.assertEqual(bl.median([4, 1, 3, 2]), 2.5)
        self.assertEqual(bl.median_index([5.0, 1.0, 3.0]), 2)
        self.assertEqual(bl.median_index([4, 1, 3, 2]), 2)  # the upper middle one: 3
        with self.assertRaises(ValueError):
            bl.median([])

    def test_the_row_carries_it(self):
        r = bl.finish_row({"scenario": "x", "unit": "req/s", "ours": 37.0, "baseline": 86.0, "paired_ratio": 0.5,
                           "target": {"kind": "ratio_min", "value": 0.45}})
        self.assertEqual(r["ratio"], 0.5)
        self.assertEqual(r["met"], "yes")


class Rows(unittest.TestCase):
    def test_rate_row(self):
        r = bl.finish_row({"scenario": "redirect", "unit": "req/s", "ours": 140.0, "baseline": 200.0,
                           "target": {"kind": "ratio_min", "value": 0.7}})
        self.assertAlmostEqual(r["ratio"], 0.7)
        self.assertEqual(r["met"], "yes")
        r = bl.finish_row({"scenario": "redirect", "unit": "req/s", "ours": 139.0, "baseline": 200.0,
                           "target": {"kind": "ratio_min", "value": 0.7}})
        self.assertEqual(r["met"], "NO")

    def test_time_row_inverts(self):
        # upload 10 s, \copy 6.5 s: ours is 0.65 of the baseline's speed
        r = bl.finish_row({"scenario": "csv-upload 1M", "unit": "s", "ours": 10.0, "baseline": 6.5,
                           "lower_is_better": True, "target": {"kind": "ratio_min", "value": 0.6}})
        self.assertAlmostEqual(r["ratio"], 0.65)
        self.assertEqual(r["met"], "yes")

    def test_absolute_targets(self):
        r = bl.finish_row({"scenario": "mint 1M", "unit": "s", "ours": 5.9, "baseline": 2.0, "lower_is_better": True,
                           "target": {"kind": "ours_max", "value": 6}})
        self.assertEqual(r["met"], "yes")
        r["ours"] = 6.0
        self.assertEqual(bl.finish_row(r)["met"], "NO")  # strictly under
        r = bl.finish_row({"scenario": "csv-rss", "unit": "MiB", "ours": 80.0, "baseline": None,
                           "target": {"kind": "ours_max", "value": 64}})
        self.assertIsNone(r["ratio"])
        self.assertEqual(r["met"], "NO")

    def test_growth_ratio_plain(self):
        # linearity: per-unit time at 1M over per-unit time at 100k, must stay <= 1.25
        r = bl.finish_row({"scenario": "csv-linear 1M", "unit": "us/row", "ours": 12.0, "baseline": 10.0,
                           "lower_is_better": True, "ratio_is": "plain", "target": {"kind": "ratio_max", "value": 1.25}})
        self.assertAlmostEqual(r["ratio"], 1.2)
        self.assertEqual(r["met"], "yes")

    def test_no_target_and_skips(self):
        r = bl.finish_row({"scenario": "healthz", "unit": "req/s", "ours": 1.0, "baseline": 2.0})
        self.assertEqual((r["ratio"], r["met"]), (0.5, "-"))
        s = bl.finish_row({"scenario": "mint 1M", "skipped": "not available"})
        self.assertEqual((s["ratio"], s["met"]), (None, "-"))
        lines = bl.table_lines([r, s, {"scenario": "x", "error": "boom"}])
        self.assertEqual(len(lines), 4)
        self.assertIn("skipped: not available", lines[2])
        self.assertIn("ERROR: boom", lines[3])
        md = bl.table_markdown([r, s])
        self.assertTrue(md[0].startswith("| scenario |") and len(md) == 4)
        self.assertEqual(bl.target_text({"unit": "s", "target": {"kind": "ours_max", "value": 6}}), "< 6 s")

    def test_fmt(self):
        self.assertEqual(bl.fmt_num(123456.7), "123,457")
        self.assertEqual(bl.fmt_num(12.345), "12.35")
        self.assertEqual(bl.fmt_num(0.01234), "0.0123")
        self.assertEqual(bl.fmt_num(0.00123), "0.00123")
        self.assertEqual(bl.fmt_num(None), "-")


class Proc(unittest.TestCase):
    def test_stat_with_spaces_in_comm(self):
        fields = ["S"] + [str(i) for i in range(4, 14)] + ["1234", "567"] + ["0"] * 30
        text = "4242 (bat chd) (x)) " + " ".join(fields)
        self.assertEqual(bl.proc_stat_cpu_ticks(text), 1234 + 567)

    def test_stat_real_self(self):
        with open("/proc/self/stat") as f:
            self.assertGreaterEqual(bl.proc_stat_cpu_ticks(f.read()), 0)

    def test_status(self):
        text = "Name:\tbatchd\nVmHWM:\t  20480 kB\nVmRSS:\t   10240 kB\n"
        self.assertEqual(bl.proc_status_kib(text, "VmHWM"), 20480)
        self.assertEqual(bl.proc_status_kib(text, "VmRSS"), 10240)
        self.assertIsNone(bl.proc_status_kib(text, "VmSwap"))


PROM = """# HELP batchd_loop_lag_max_seconds Worst
# TYPE batchd_loop_lag_max_seconds gauge
batchd_loop_lag_max_seconds %(max)s
batchd_loop_lag_seconds_bucket{le="0.001"} %(b1)d
batchd_loop_lag_seconds_bucket{le="0.01"} %(b2)d
batchd_loop_lag_seconds_bucket{le="0.1"} %(b3)d
batchd_loop_lag_seconds_bucket{le="+Inf"} %(b4)d
batchd_loop_lag_seconds_count %(b4)d
batchd_http_requests_total{route="/healthz",method="GET",status="200"} 12
"""


def prom(mx, b1, b2, b3, b4):
    return bl.parse_prom(PROM % {"max": mx, "b1": b1, "b2": b2, "b3": b3, "b4": b4})


class LoopLag(unittest.TestCase):
    def test_parse(self):
        p = prom("0.25", 1, 2, 3, 4)
        self.assertEqual(p['batchd_http_requests_total{route="/healthz",method="GET",status="200"}'], 12)
        self.assertEqual(bl.lag_buckets(p), [(0.001, 1), (0.01, 2), (0.1, 3), (math.inf, 4)])

    def test_new_max_is_exact(self):
        self.assertEqual(bl.lag_window_max(prom("0.02", 10, 12, 12, 12), prom("0.3", 10, 14, 14, 15)), (0.3, True))

    def test_old_max_gives_bucket_bound(self):
        # an old 300 ms stall set the max; in the window only samples < 10 ms arrived
        mx, exact = bl.lag_window_max(prom("0.3", 10, 12, 12, 13), prom("0.3", 15, 20, 20, 21))
        self.assertEqual((mx, exact), (0.01, False))
        # samples in the +Inf bucket: bounded by the old max
        self.assertEqual(bl.lag_window_max(prom("0.3", 10, 12, 12, 13), prom("0.3", 10, 12, 12, 14)), (0.3, False))

    def test_nothing_fired(self):
        p = prom("0.3", 10, 12, 12, 13)
        self.assertEqual(bl.lag_window_max(p, p), (None, True))


class Compare(unittest.TestCase):
    def test_within_and_outside(self):
        a = [{"scenario": "healthz", "ratio": 1.00, "ours": 100}, {"scenario": "mint 1M", "ratio": None, "ours": 5.0},
             {"scenario": "x", "error": "boom"}, {"scenario": "only-a", "ratio": 1.0}]
        b = [{"scenario": "healthz", "ratio": 1.16, "ours": 100}, {"scenario": "mint 1M", "ratio": None, "ours": 5.5},
             {"scenario": "x", "ratio": 1.0}]
        c = {r[0]: r for r in bl.compare_runs(a, b, tol=0.15)}
        self.assertEqual(set(c), {"healthz", "mint 1M"})
        self.assertEqual(c["healthz"][1], "ratio")
        self.assertFalse(c["healthz"][5])  # 16 % apart
        self.assertEqual(c["mint 1M"][1], "ours")
        self.assertTrue(c["mint 1M"][5])  # 10 % apart
        self.assertAlmostEqual(c["mint 1M"][4], 0.1)

    def test_memory_growth_near_zero_agrees(self):
        a = [{"scenario": "csv-rss 1M", "unit": "MiB", "ratio": None, "ours": 0.0},
             {"scenario": "csv-rss 100k", "unit": "MiB", "ratio": None, "ours": 10.0}]
        b = [{"scenario": "csv-rss 1M", "unit": "MiB", "ratio": None, "ours": 0.0859},
             {"scenario": "csv-rss 100k", "unit": "MiB", "ratio": None, "ours": 14.0}]
        c = {r[0]: r for r in bl.compare_runs(a, b, tol=0.15)}
        self.assertTrue(c["csv-rss 1M"][5])  # 0.09 MiB apart: both no growth
        self.assertFalse(c["csv-rss 100k"][5])  # 4 MiB and 40 % apart


if __name__ == "__main__":
    unittest.main(verbosity=1)

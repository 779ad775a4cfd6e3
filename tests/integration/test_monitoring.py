"""Monitoring (issue 22): the Prometheus rules and the Grafana dashboard
under deploy/ refer only to metrics that batchd exports.

- `promtool check rules` accepts deploy/prometheus/batchd.rules.yml and
  `promtool test rules` passes its unit tests (every alert made to fire and
  not to fire on synthetic series). Without promtool these skip, except
  under CI (CI set), where a missing promtool fails: scripts/setup installs
  it (Debian package `prometheus`).
- A real batchd is started and driven until every lazily created counter
  exists (jobs completed and failed, a 429, a 503 for want of a database
  connection, QR scans written); then every metric name in the rules'
  expressions and in the dashboard's queries must be on its GET /metrics,
  a `_bucket` only of a histogram, every label matched on must be a label
  of that metric, every `le` matched on one of its buckets, and every
  `route` matched on a route batchd has.
- The checker itself is checked: made-up names, labels and routes are
  reported.
"""
import json
import os
import re
import shutil
import subprocess
import threading
import time
import uuid

import pytest
import requests
import yaml

from conftest import SOURCE_DIR, seed_demo

RULES = os.path.join(SOURCE_DIR, "deploy", "prometheus", "batchd.rules.yml")
RULE_TESTS = os.path.join(SOURCE_DIR, "deploy", "prometheus", "batchd.rules.test.yml")
DASHBOARD = os.path.join(SOURCE_DIR, "deploy", "grafana", "batchd.json")
DEPLOY_README = os.path.join(SOURCE_DIR, "deploy", "README.md")

# Series Prometheus makes itself, not batchd.
PROMETHEUS_OWN = {"up", "ALERTS", "ALERTS_FOR_STATE", "scrape_duration_seconds", "scrape_samples_scraped"}
# Labels Prometheus adds to every series it scrapes.
TARGET_LABELS = {"job", "instance"}

# Counters batchd creates on their first increment (bd_metrics_inc), and
# that the `exposition` fixture below makes happen.
TRIGGERED = ("batchd_jobs_claimed_total", "batchd_jobs_completed_total", "batchd_jobs_retried_total",
             "batchd_rate_limited_total", "batchd_db_unavailable_total", "batchd_qr_scans_recorded_total")
# The one lazily created counter the test cannot reasonably make happen:
# it needs 200,000 distinct scan groups buffered at once. For it the source
# must register exactly this name with bd_metrics_inc (a rename still fails).
NOT_TRIGGERED = {"batchd_qr_scans_dropped_total": "200,000 distinct scan groups buffered at once"}


def promtool():
    path = shutil.which("promtool")
    if path:
        return path
    if os.environ.get("CI", "").lower() not in ("", "0", "false", "no"):
        pytest.fail("promtool not found, and CI is set: scripts/setup installs it (Debian package prometheus)",
                    pytrace=False)
    pytest.skip("promtool not found (Debian package prometheus; scripts/setup installs it)")


# --- PromQL: the metric selectors of an expression ---------------------------------------------

_TOKEN = re.compile(r"""
    (?P<ws>\s+|\#[^\n]*)
  | (?P<str>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)
  | (?P<var>\$\{[^}]*\}|\$\w+|\[\[\w+\]\])
  | (?P<num>0[xX][0-9a-fA-F]+|(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?(?:(?:ms|[smhdwy])(?:\d+(?:ms|[smhdwy]))*)?)
  | (?P<ident>[A-Za-z_:][A-Za-z0-9_:]*)
  | (?P<op>=~|!~|!=|==|>=|<=|[-+*/%^<>=,(){}\[\]:@])
""", re.X)
AGGREGATIONS = {"sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values", "bottomk", "topk",
                "quantile", "limitk", "limit_ratio"}
LABEL_LISTS = {"by", "without", "on", "ignoring", "group_left", "group_right"}
KEYWORDS = {"and", "or", "unless", "bool", "offset", "inf", "nan", "atan2"} | LABEL_LISTS


def _tokens(expr):
    out, pos = [], 0
    while pos < len(expr):
        m = _TOKEN.match(expr, pos)
        if not m:
            raise ValueError("cannot read PromQL at %r" % expr[pos:pos + 30])
        pos = m.end()
        if m.lastgroup != "ws":
            out.append((m.lastgroup, m.group()))
    return out


def _unquote(s):
    if s[0] == "`":
        return s[1:-1]
    return re.sub(r"\\(.)", lambda m: {"n": "\n", "t": "\t"}.get(m.group(1), m.group(1)), s[1:-1])


def selectors(expr):
    """The vector selectors of a PromQL expression: a list of (metric name
    or None, [(label, op, value)]). Function and aggregation names,
    keywords, grouping label lists, ranges and durations, string and
    number literals and Grafana variables are not selectors."""
    toks = _tokens(expr)
    out, i, n = [], 0, len(toks)

    def matchers(i):  # toks[i] is "{"; returns (matchers, index after "}")
        ms = []
        i += 1
        while toks[i][1] != "}":
            if toks[i][1] == ",":
                i += 1
                continue
            label, op, value = toks[i], toks[i + 1], toks[i + 2]
            if label[0] != "ident" or op[1] not in ("=", "!=", "=~", "!~") or value[0] != "str":
                raise ValueError("bad label matcher in %r" % expr)
            ms.append((label[1], op[1], _unquote(value[1])))
            i += 3
        return ms, i + 1

    while i < n:
        kind, text = toks[i]
        nxt = toks[i + 1][1] if i + 1 < n else None
        if text == "[":  # a range or subquery: durations, Grafana variables
            while toks[i][1] != "]":
                i += 1
            i += 1
        elif text == "{":  # a selector without a name: {__name__="..."}
            ms, i = matchers(i)
            names = [v for (l, op, v) in ms if l == "__name__" and op == "="]
            out.append((names[0] if names else None, [m for m in ms if m[0] != "__name__"]))
        elif kind == "ident":
            low = text.lower()
            if low in LABEL_LISTS and nxt == "(":
                while toks[i][1] != ")":
                    i += 1
                i += 1
            elif nxt == "(" or low in AGGREGATIONS or low in KEYWORDS:
                i += 1  # a function call, an aggregation, a keyword
            else:
                ms = []
                i += 1
                if nxt == "{":
                    ms, i = matchers(i)
                out.append((text, ms))
        else:
            i += 1
    return out


# --- what the rules and the dashboard refer to -----------------------------------------------

def load_rules():
    with open(RULES) as f:
        return yaml.safe_load(f)


def load_dashboard():
    with open(DASHBOARD) as f:
        return json.load(f)


def all_rules():
    return [r for g in load_rules()["groups"] for r in g["rules"]]


def rule_refs():
    """[(where, name, matchers)] of every rule expression, and the names
    the rules record (they are not batchd's to export)."""
    refs, recorded = [], set()
    for r in all_rules():
        where = "rule %s" % (r.get("alert") or r.get("record"))
        if "record" in r:
            recorded.add(r["record"])
        for name, ms in selectors(r["expr"]):
            refs.append((where, name, ms))
    return refs, recorded


def dashboard_panels(d=None):
    d = d or load_dashboard()
    out = []
    for p in d["panels"]:
        out.append(p)
        out.extend(p.get("panels", []))  # panels of collapsed rows
    return out


def dashboard_refs():
    d = load_dashboard()
    refs = []
    for p in dashboard_panels(d):
        for t in p.get("targets", []):
            for name, ms in selectors(t["expr"]):
                refs.append(("panel %r %s" % (p["title"], t["refId"]), name, ms))
    for v in d["templating"]["list"]:
        if v["type"] != "query":
            continue
        q = v["query"]["query"] if isinstance(v["query"], dict) else v["query"]
        m = re.fullmatch(r"\s*label_values\(\s*(.+?)\s*,\s*(\w+)\s*\)\s*", q)
        assert m, "variable %s: only label_values(metric, label) queries are understood here: %r" % (v["name"], q)
        for name, ms in selectors(m.group(1)):
            refs.append(("variable %s" % v["name"], name, ms + [(m.group(2), "=~", ".+")]))
    return refs


# --- what batchd exports ---------------------------------------------------------------------

_LABEL = re.compile(r'\s*([A-Za-z_]\w*)="((?:[^"\\]|\\.)*)"\s*(,|\})')


def parse_exposition(text):
    """Prometheus text format -> ({sample name: [label dict, ...]}, {family: type})."""
    samples, types = {}, {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, fam, typ = line.split(None, 3)
            types[fam] = typ.strip()
            continue
        if not line.strip() or line.startswith("#"):
            continue
        m = re.match(r"[A-Za-z_:][A-Za-z0-9_:]*", line)
        assert m, "not an exposition line: %r" % line
        name, pos, labels = m.group(), m.end(), {}
        if line[pos:pos + 1] == "{":
            pos += 1
            while line[pos] != "}":
                lm = _LABEL.match(line, pos)
                assert lm, "bad labels in %r" % line
                labels[lm.group(1)] = lm.group(2)
                pos = lm.end() if lm.group(3) == "," else lm.end() - 1
        samples.setdefault(name, []).append(labels)
    return samples, types


def source_routes():
    """The values of the `route` label: each route's name, else its pattern
    (src/main.c), and "unmatched"."""
    routes = {"unmatched"}
    entry = re.compile(r'\{"(?:GET|POST|PUT|PATCH|DELETE|HEAD|OPTIONS)",\s*"([^"]+)",\s*[A-Za-z_]\w*,\s*[^,{}]+,'
                       r'\s*(?:NULL|"([^"]*)")\s*\}')
    for root, _, files in os.walk(os.path.join(SOURCE_DIR, "src")):
        for f in files:
            if f.endswith(".c"):
                with open(os.path.join(root, f), errors="replace") as fh:
                    for m in entry.finditer(fh.read()):
                        routes.add(m.group(2) or m.group(1))
    return routes


def source_registers_counter(name):
    pat = re.compile(r'bd_metrics_inc\(\s*"%s"' % re.escape(name))
    for root, _, files in os.walk(os.path.join(SOURCE_DIR, "src")):
        for f in files:
            if f.endswith(".c"):
                with open(os.path.join(root, f), errors="replace") as fh:
                    if pat.search(fh.read()):
                        return True
    return False


def check_refs(refs, samples, types, recorded=(), routes=None, not_triggered=None):
    """Problems (strings) with references [(where, name, matchers)] against
    an exposition parsed by parse_exposition. Empty when all is well."""
    not_triggered = NOT_TRIGGERED if not_triggered is None else not_triggered
    problems = []
    for where, name, ms in refs:
        if name is None:
            problems.append("%s: a selector without a metric name" % where)
            continue
        if name in PROMETHEUS_OWN or name in recorded:
            continue
        if name not in samples:
            if name in not_triggered and source_registers_counter(name):
                continue
            hint = " (a %s: use _bucket, _sum or _count)" % types[name] if types.get(name) in ("histogram",
                                                                                              "summary") else ""
            problems.append("%s: %s is not on /metrics%s" % (where, name, hint))
            continue
        if name.endswith("_bucket") and types.get(name[:-len("_bucket")]) != "histogram":
            problems.append("%s: %s is not the bucket series of a histogram" % (where, name))
        have = set().union(*[set(l) for l in samples[name]])
        for label, op, value in ms:
            if label in TARGET_LABELS:
                continue
            if label not in have:
                problems.append("%s: %s has no label %r (it has %s)" % (where, name, label, sorted(have) or "none"))
                continue
            if label == "le" and op == "=" and value not in {l.get("le") for l in samples[name]}:
                problems.append("%s: %s has no bucket le=%r" % (where, name, value))
            if label == "route" and routes is not None and "$" not in value:
                alts = [value] if op in ("=", "!=") else value.split("|")
                for alt in alts:
                    if op in ("=", "!="):
                        ok = alt in routes
                    else:
                        ok = any(re.fullmatch(alt, r) for r in routes)
                    if not ok:
                        problems.append("%s: route %r matches no route of batchd" % (where, alt))
    return problems


# --- a real server, driven until every counter exists ----------------------------------------

ENV = {
    "BATCHD_TEST_HOOKS": "1",
    "BATCHD_RATE_LIMIT": "1",
    "BATCHD_RATE_BURST": "1",
    "BATCHD_JOB_POLL_MS": "200",
    # two connections, one query each: two slow writes hold the pool, and a
    # third query waits past the queue timeout (503, batchd_db_unavailable_total)
    "BATCHD_PG_CONNS": "2",
    "BATCHD_PG_PIPELINE": "1",
    "BATCHD_PG_QUEUE_TIMEOUT_MS": "250",
}


def enqueue(psql, marker, ms):
    return psql("WITH j AS (INSERT INTO bd_jobs(kind, ref, payload) VALUES ('test.sleep', '%s',"
                " jsonb_build_object('ms', %d, 'marker', '%s')) RETURNING id)"
                " SELECT j.id FROM j, LATERAL pg_notify('bd_jobs', 'test.sleep') n" % (marker, ms, marker))


@pytest.fixture(scope="module")
def exposition(server_factory, run_batchd, psql):
    srv = server_factory(env=ENV)
    http = requests.Session()
    http.trust_env = False
    get = lambda path, **kw: http.get(srv.url + path, timeout=10, **kw)  # noqa: E731

    assert get("/healthz").status_code == 200
    assert get("/openapi.json").status_code == 200
    assert get("/no-such-route").status_code == 404

    # a dynamic QR code, scanned: the scan buffer is written within a second
    qr = seed_demo(run_batchd, srv, "qr")
    r = http.post(srv.url + "/v1/qr-codes", timeout=10,
                  headers={"Authorization": "Bearer " + qr["live_key"], "Content-Type": "application/json"},
                  data=json.dumps({"target": {"destination": "https://example.com/monitoring"}}))
    assert r.status_code == 201, r.text
    for _ in range(3):
        assert get("/s/" + r.json()["short_code"], allow_redirects=False).status_code == 302

    # one job that completes, one whose every run fails (its record is refused)
    psql("ALTER TABLE bd_test_job_runs ADD CONSTRAINT monitoring_no_fail CHECK (marker <> 'fail')")
    enqueue(psql, "ok-" + uuid.uuid4().hex[:8], 10)
    enqueue(psql, "fail", 10)

    # over the rate limit: one request a second, a burst of one
    cred = {"X-Test-Credential": "rl-" + uuid.uuid4().hex[:8]}
    codes = [http.post(srv.url + "/_test/writes", headers=cred, data="{}", timeout=10).status_code for _ in range(3)]
    assert 429 in codes, codes

    def metrics():
        m = get("/metrics")
        assert m.status_code == 200
        return m.text

    deadline = time.time() + 20
    while time.time() < deadline:
        samples, _ = parse_exposition(metrics())
        if all(n in samples for n in TRIGGERED if n != "batchd_db_unavailable_total"):
            break
        time.sleep(0.2)

    # both connections held by slow writes; a read then waits past the queue timeout
    for attempt in range(3):
        slow = [threading.Thread(target=lambda c=c: http.post(
                    srv.url + "/_test/writes?sleep_ms=1500", data="{}", timeout=10,
                    headers={"X-Test-Credential": "slow-%d-%d-%s" % (attempt, c, uuid.uuid4().hex[:6])}))
                for c in range(2)]
        for t in slow:
            t.start()
        time.sleep(0.4)
        unavailable = requests.get(srv.url + "/_test/db", timeout=10).status_code
        for t in slow:
            t.join()
        if unavailable == 503:
            break
    return metrics()


# --- tests -----------------------------------------------------------------------------------

def test_promtool_check_rules():
    out = subprocess.run([promtool(), "check", "rules", RULES], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS" in out.stdout, out.stdout


def test_promtool_rule_unit_tests():
    out = subprocess.run([promtool(), "test", "rules", RULE_TESTS], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS" in out.stdout, out.stdout


def test_every_alert_has_for_severity_annotations_a_firing_test_and_a_readme_entry():
    with open(RULE_TESTS) as f:
        tests = yaml.safe_load(f)
    fired = {a["alertname"] for t in tests["tests"] for a in t.get("alert_rule_test", []) if a.get("exp_alerts")}
    quiet = {a["alertname"] for t in tests["tests"] for a in t.get("alert_rule_test", []) if not a.get("exp_alerts")}
    with open(DEPLOY_README) as f:
        readme = f.read()
    alerts = [r for r in all_rules() if "alert" in r]
    assert len(alerts) >= 10
    names = [r["alert"] for r in alerts]
    assert len(names) == len(set(names)), names
    for r in alerts:
        name = r["alert"]
        assert re.fullmatch(r"\d+[smh]", str(r.get("for", ""))), "%s: no for:" % name
        assert r.get("labels", {}).get("severity") in ("critical", "warning", "info"), name
        ann = r.get("annotations", {})
        assert ann.get("summary") and ann.get("description"), name
        assert name in fired, "%s: no test makes it fire" % name
        assert name in quiet, "%s: no test says when it must not fire" % name
        assert "`%s`" % name in readme, "%s: not explained in deploy/README.md (Monitoring)" % name
    assert fired <= set(names) and quiet <= set(names), "tests name alerts that do not exist"


def test_dashboard_shape():
    d = load_dashboard()
    assert 36 <= d["schemaVersion"] <= 41
    variables = {v["name"]: v for v in d["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    assert variables["instance"]["type"] == "query"
    assert variables["instance"]["datasource"]["uid"] == "${datasource}"
    panels = dashboard_panels(d)
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), "panel ids repeat"
    graphs = [p for p in panels if p["type"] != "row"]
    assert len(graphs) >= 15
    for p in graphs:
        assert p["datasource"]["uid"] == "${datasource}", p["title"]
        assert p["targets"], p["title"]
        for t in p["targets"]:
            assert t["datasource"]["uid"] == "${datasource}", p["title"]
            for name, ms in selectors(t["expr"]):
                if name and name.startswith("batchd_"):
                    assert ("instance", "=~", "$instance") in ms, "%s: %s not filtered by $instance" % (
                        p["title"], name)
    # the metrics batchd exports, each on some panel
    used = {n for _, n, _ in dashboard_refs()}
    for n in ("batchd_http_requests_total", "batchd_http_request_duration_seconds_bucket",
              "batchd_loop_lag_seconds_bucket", "batchd_db_pool_connected", "batchd_db_queue_depth",
              "batchd_jobs_running", "batchd_work_queue_depth"):
        assert n in used, n


def test_selectors_parser():
    e = ('sum by (job, le) (rate(foo_bucket{route!~"/exports/.+|/x", le="1"}[$__rate_interval])) / on (job) '
         'group_left bar offset 5m > bool 0.5 and ignoring(le) histogram_quantile(0.99, baz{a="}{"}[5m:1m]) '
         'or {__name__="qux", b=~"$instance"} unless count_values("v", quux) * 1e3 - -Inf')
    assert selectors(e) == [
        ("foo_bucket", [("route", "!~", "/exports/.+|/x"), ("le", "=", "1")]),
        ("bar", []),
        ("baz", [("a", "=", "}{")]),
        ("qux", [("b", "=~", "$instance")]),
        ("quux", []),
    ]
    assert selectors("up{job=\"batchd\"} == 0") == [("up", [("job", "=", "batchd")])]
    assert selectors("instance:batchd_x:rate5m > 0.1") == [("instance:batchd_x:rate5m", [])]


def test_checker_reports_made_up_names(exposition):
    samples, types = parse_exposition(exposition)
    routes = source_routes()
    good = [("ok", "batchd_http_requests_total", [("route", "=", "/readyz"), ("status", "=~", "5..")]),
            ("ok", "batchd_loop_lag_seconds_bucket", [("le", "=", "1")])]
    assert check_refs(good, samples, types, routes=routes) == []
    bad = {
        "made-up": ("batchd_made_up_total", []),
        "histogram family": ("batchd_http_request_duration_seconds", []),
        "not a histogram": ("batchd_db_up_bucket", []),
        "no such label": ("batchd_http_requests_total", [("routes", "=", "/readyz")]),
        "no such bucket": ("batchd_loop_lag_seconds_bucket", [("le", "=", "0.3")]),
        "no such route": ("batchd_http_requests_total", [("route", "=", "/readyzz")]),
        "no route matches": ("batchd_http_requests_total", [("route", "!~", "/readyz|/exprots/.+")]),
        "lazy but unknown": ("batchd_qr_scans_lost_total", []),
    }
    for what, (name, ms) in bad.items():
        problems = check_refs([(what, name, ms)], samples, types, routes=routes,
                              not_triggered={"batchd_qr_scans_lost_total": "test"})
        assert len(problems) == 1, (what, problems)
    problems = check_refs([("x", "batchd_made_up_total", [])], samples, types)
    assert problems == ["x: batchd_made_up_total is not on /metrics"]


def test_lazy_counters_were_made_to_exist(exposition):
    samples, _ = parse_exposition(exposition)
    assert [n for n in TRIGGERED if n not in samples] == []
    for name in NOT_TRIGGERED:
        assert source_registers_counter(name), "%s: no bd_metrics_inc(\"%s\", ...) in src/" % (name, name)


def test_rules_use_only_exported_metrics(exposition):
    samples, types = parse_exposition(exposition)
    refs, recorded = rule_refs()
    assert len({n for _, n, _ in refs if n and n.startswith("batchd_")}) >= 15
    problems = check_refs(refs, samples, types, recorded=recorded, routes=source_routes())
    assert not problems, "\n".join(problems)
    # recorded series the alerts use are recorded here
    for where, name, _ in refs:
        if name and ":" in name:
            assert name in recorded, "%s: %s is recorded by no rule" % (where, name)


def test_dashboard_uses_only_exported_metrics(exposition):
    samples, types = parse_exposition(exposition)
    refs = dashboard_refs()
    assert len({n for _, n, _ in refs if n and n.startswith("batchd_")}) >= 20
    # the dashboard does not depend on the recording rules being loaded
    problems = check_refs(refs, samples, types, routes=source_routes())
    assert not problems, "\n".join(problems)

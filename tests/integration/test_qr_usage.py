"""Plan-style limits per QR workspace (issue 20): set by the administrator
(`batchd limits set`), checked atomically when codes are stored, a batch
that would go over refused with 403 plan_limit_reached before anything is
stored, counts at GET /v1/usage; each mode counted apart; deleting a
dynamic code gives its place back, not its monthly creation; the
expansion of a batch into codes counts nothing twice."""
import json
import time

import pytest
import requests

from conftest import seed_demo


@pytest.fixture(scope="module")
def srv(server_factory):
    return server_factory(env={"BATCHD_RATE_LIMIT": "0", "BATCHD_JOB_POLL_MS": "200"})


@pytest.fixture(scope="module")
def keys(run_batchd, srv):
    return seed_demo(run_batchd, srv, "qr", tenant="limited")


def H(key):
    return {"Authorization": "Bearer " + key, "Content-Type": "application/json"}


def usage(srv, key):
    r = requests.get(srv.url + "/v1/usage", headers=H(key))
    assert r.status_code == 200, r.text
    return r.json()


def limits(run_batchd, *args):
    out = run_batchd("limits", "set", "--tenant", "limited", *args, "--json")
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def batch(srv, key, items):
    return requests.post(srv.url + "/v1/batches", headers=H(key), data=json.dumps({"items": items}))


def dyn(i):
    return {"target": {"destination": "https://example.com/%d" % i}}


def stat(i):
    return {"target": {"text": "static %d" % i}}


def wait_batch(srv, key, bid):
    for _ in range(300):
        b = requests.get(srv.url + "/v1/batches/" + bid, headers=H(key)).json()
        if b["status"] != "processing":
            return b
        time.sleep(0.1)
    raise AssertionError(b)


def test_limits_refuse_before_storing_and_usage_counts(srv, keys, run_batchd, psql):
    live, test = keys["live_key"], keys["test_key"]
    u = usage(srv, live)
    assert u["object"] == "usage" and u["environment"] == "live"
    assert u["dynamic_codes"] == {"used": 0, "limit": None}
    assert u["monthly_codes"]["used"] == 0 and u["monthly_codes"]["limit"] is None
    assert u["monthly_codes"]["period_start"].endswith("-01T00:00:00Z")

    out = limits(run_batchd, "--dynamic-codes", "3", "--monthly-codes", "6")
    assert out["max_dynamic_codes"] == 3 and out["max_monthly_codes"] == 6
    assert usage(srv, live)["dynamic_codes"] == {"used": 0, "limit": 3}

    # 2 dynamic + 1 static + 1 invalid: 3 codes, 2 of them dynamic
    r = batch(srv, live, [dyn(1), dyn(2), stat(1), {"target": {"email": "nope"}}])
    assert r.status_code == 202, r.text
    first = r.json()["id"]
    u = usage(srv, live)
    assert u["dynamic_codes"]["used"] == 2 and u["monthly_codes"]["used"] == 3

    # 2 more dynamic would make 4 > 3: refused, nothing stored
    nb, nc = psql("SELECT count(*) FROM qr_batches"), psql("SELECT count(*) FROM qr_batch_records")
    r = batch(srv, live, [dyn(3), dyn(4), stat(2)])
    assert r.status_code == 403, r.text
    err = r.json()["error"]
    assert err["code"] == "plan_limit_reached" and err["param"] == "items", err
    assert "4 dynamic codes" in err["message"] and "may hold 3" in err["message"], err
    assert err["doc_url"].endswith("/docs/errors#plan_limit_reached")
    assert psql("SELECT count(*) FROM qr_batches") == nb and psql("SELECT count(*) FROM qr_batch_records") == nc
    assert usage(srv, live)["dynamic_codes"]["used"] == 2

    # the test mode is counted apart, under the same limits
    assert usage(srv, test)["dynamic_codes"] == {"used": 0, "limit": 3}
    assert batch(srv, test, [dyn(1), dyn(2), dyn(3)]).status_code == 202
    assert batch(srv, test, [dyn(4)]).status_code == 403

    # the expansion of the first batch into codes counts nothing again
    done = wait_batch(srv, live, first)
    assert done["completed_count"] == 3
    assert psql("SELECT count(*) FROM qr_codes WHERE batch_id = '%s'" % first) == "3"
    assert usage(srv, live)["dynamic_codes"]["used"] == 2

    # single creates count too: one more dynamic fits, the next does not
    r = requests.post(srv.url + "/v1/qr-codes", headers=H(live), data=json.dumps(dyn(5)))
    assert r.status_code == 201, r.text
    code = r.json()
    r = requests.post(srv.url + "/v1/qr-codes", headers=H(live), data=json.dumps(dyn(6)))
    assert r.status_code == 403 and r.json()["error"]["code"] == "plan_limit_reached", r.text

    # deleting a dynamic code gives its place back, not its monthly creation
    assert requests.delete(srv.url + "/v1/qr-codes/" + code["id"], headers=H(live)).status_code == 200
    u = usage(srv, live)
    assert u["dynamic_codes"]["used"] == 2 and u["monthly_codes"]["used"] == 4

    # the monthly limit: 4 created, 6 allowed: 2 statics fit, a third not
    assert batch(srv, live, [stat(3), stat(4)]).status_code == 202
    r = batch(srv, live, [stat(5)])
    assert r.status_code == 403 and "created this month" in r.json()["error"]["message"], r.text

    # limits removed by the administrator: accepted again
    out = limits(run_batchd, "--monthly-codes", "none")
    assert out["max_monthly_codes"] is None and out["max_dynamic_codes"] == 3
    assert batch(srv, live, [stat(5)]).status_code == 202
    assert usage(srv, live)["monthly_codes"] == {**usage(srv, live)["monthly_codes"], "used": 7, "limit": None}


def test_limits_cli_validates(run_batchd, keys):
    out = run_batchd("limits", "set", "--tenant", "limited", "--dynamic-codes", "-1")
    assert out.returncode == 2, out.stderr
    out = run_batchd("limits", "set", "--tenant", "limited")
    assert out.returncode == 2
    out = run_batchd("limits", "show", "--tenant", "no-such-tenant")
    assert out.returncode == 3
    out = run_batchd("limits", "show", "--tenant", "limited", "--json")
    assert out.returncode == 0 and "max_dynamic_codes" in json.loads(out.stdout)

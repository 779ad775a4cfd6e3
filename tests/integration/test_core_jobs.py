"""Durable jobs through the real binary and PostgreSQL: a job whose process is
SIGKILLed is finished by the next process exactly once; a SIGTERM gives a
running job back without counting an attempt. Its own module (own database):
no other process may claim these jobs."""
import os
import signal
import time
import uuid

HOOKS = {"BATCHD_TEST_HOOKS": "1", "BATCHD_RATE_LIMIT": "0"}


def enqueue(psql, marker, ms, notify=""):
    """Inserts a test.sleep job and wakes the claimers, as a producer would
    (the producers of batchd notify with the job's kind)."""
    return psql("WITH j AS (INSERT INTO bd_jobs(kind, ref, payload) VALUES ('test.sleep', '%s',"
                " jsonb_build_object('ms', %d, 'marker', '%s')) RETURNING id)"
                " SELECT j.id FROM j, LATERAL pg_notify('bd_jobs', '%s') n" % (marker, ms, marker, notify))


def test_killed_job_is_finished_by_next_process(server_factory, psql):
    env = dict(HOOKS, BATCHD_JOB_LEASE_MS="1500", BATCHD_JOB_POLL_MS="200")
    a = server_factory(env=env)
    marker = "m-" + uuid.uuid4().hex
    job_id = enqueue(psql, marker, 4000)
    deadline = time.time() + 10
    owner = ""
    while time.time() < deadline:
        owner = psql("SELECT coalesce(locked_by, '') FROM bd_jobs WHERE id = %s AND state = 'running'" % job_id)
        if owner:
            break
        time.sleep(0.05)
    assert owner, "process A never claimed the job"
    assert (":%d:" % a.pid) in owner
    a.kill()  # SIGKILL mid-job: no chance to release it
    assert psql("SELECT count(*) FROM bd_test_job_runs WHERE marker = '%s'" % marker) == "0"
    b = server_factory(env=env)
    deadline = time.time() + 20
    while time.time() < deadline:
        if psql("SELECT state FROM bd_jobs WHERE id = %s" % job_id) == "done":
            break
        time.sleep(0.1)
    assert psql("SELECT state FROM bd_jobs WHERE id = %s" % job_id) == "done"
    runs = psql("SELECT instance FROM bd_test_job_runs WHERE marker = '%s'" % marker).splitlines()
    assert len(runs) == 1  # finished exactly once
    assert (":%d:" % b.pid) in runs[0]
    assert int(psql("SELECT attempts FROM bd_jobs WHERE id = %s" % job_id)) == 2
    assert b.stop() == 0


def test_jobs_yield_on_sigterm_and_resume(server_factory, psql):
    env = dict(HOOKS, BATCHD_JOB_LEASE_MS="60000", BATCHD_JOB_POLL_MS="200")
    a = server_factory(env=env)
    marker = "y-" + uuid.uuid4().hex
    job_id = enqueue(psql, marker, 800)
    deadline = time.time() + 10
    while time.time() < deadline and psql("SELECT state FROM bd_jobs WHERE id = %s" % job_id) != "running":
        time.sleep(0.05)
    os.kill(a.pid, signal.SIGTERM)
    assert a.wait(timeout=20) == 0
    # given back (not left to a 60 s lease) and not counted as an attempt
    assert psql("SELECT state, attempts FROM bd_jobs WHERE id = %s" % job_id) in ("queued|0", "done|1")
    b = server_factory(env=env)
    deadline = time.time() + 15
    while time.time() < deadline and psql("SELECT state FROM bd_jobs WHERE id = %s" % job_id) != "done":
        time.sleep(0.1)
    assert psql("SELECT state FROM bd_jobs WHERE id = %s" % job_id) == "done"
    assert psql("SELECT count(*) FROM bd_test_job_runs WHERE marker = '%s'" % marker) == "1"
    assert b.stop() == 0  # the tests after this one need the database's jobs to themselves


def test_notified_job_is_claimed_at_once_whatever_its_kind(server_factory, psql):
    """A notification names the job's kind, and the claim goes to that kind.
    The poll is 10 minutes away here, so a job the notification missed would
    wait for it. That happened: a notification claimed for whichever kind
    the round robin was at (four kinds run with test hooks), found nothing,
    and left the job to the next poll, up to a second later by default."""
    a = server_factory(env=dict(HOOKS, BATCHD_JOB_POLL_MS="600000"))
    time.sleep(0.3)  # past the start-up claim
    for i in range(12):
        marker = "n-%d-%s" % (i, uuid.uuid4().hex)
        # the kind as payload (as batchd's producers send), and now and then none at all
        job_id = enqueue(psql, marker, 1, notify="" if i % 4 == 3 else "test.sleep")
        t0 = time.time()
        while time.time() - t0 < 5 and psql("SELECT state FROM bd_jobs WHERE id = %s" % job_id) != "done":
            time.sleep(0.02)
        assert psql("SELECT state FROM bd_jobs WHERE id = %s" % job_id) == "done", "job %d not claimed" % i
        assert psql("SELECT count(*) FROM bd_test_job_runs WHERE marker = '%s'" % marker) == "1"
    assert a.stop() == 0

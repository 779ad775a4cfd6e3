"""Fixtures for the integration suite: the real batchd binary against a real
PostgreSQL. ctest starts one throwaway PostgreSQL for the whole suite
(scripts/testpg, URL in $BATCHD_TEST_STATE/url); each test module gets its
own database; tests that stop PostgreSQL start a private one."""
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.parse
import uuid

import pytest
import requests

SOURCE_DIR = os.environ.get("BATCHD_SOURCE_DIR", os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))))
BATCHD_BIN = os.environ.get("BATCHD_BIN", os.path.join(SOURCE_DIR, "build", "batchd"))
JWT_SECRET = "integration-test-jwt-secret-0123456789"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def with_db(url, dbname):
    """The same server URL pointing at another database."""
    scheme, rest = url.split("://", 1)
    authority, _, tail = rest.partition("/")
    query = tail.partition("?")[2]
    return "%s://%s/%s%s" % (scheme, authority, dbname, "?" + query if query else "")


def psql_run(url, sql):
    out = subprocess.run(["psql", url, "-v", "ON_ERROR_STOP=1", "-qtAX", "-c", sql], capture_output=True,
                         text=True, timeout=60)
    if out.returncode != 0:
        raise RuntimeError("psql failed: %s\n%s" % (sql, out.stderr))
    return out.stdout.strip()


@pytest.fixture(scope="session")
def pg_url():
    state = os.environ.get("BATCHD_TEST_STATE")
    if not state:
        pytest.fail("BATCHD_TEST_STATE is not set: run the suite through ctest (scripts/test)")
    with open(os.path.join(state, "url")) as f:
        return f.read().strip()


@pytest.fixture(scope="module")
def database(pg_url, request):
    name = "bd_%s_%s" % (request.module.__name__.split(".")[-1][:30], uuid.uuid4().hex[:8])
    psql_run(pg_url, "CREATE DATABASE %s" % name)
    url = with_db(pg_url, name)
    yield url
    psql_run(pg_url, "DROP DATABASE IF EXISTS %s WITH (FORCE)" % name)


@pytest.fixture(scope="module")
def psql(database):
    """psql(sql) on the module's database; returns the text output."""
    return lambda sql: psql_run(database, sql)


@pytest.fixture(scope="module")
def workdir():
    d = tempfile.mkdtemp(prefix="batchd-it-")
    os.chmod(d, 0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


class Server:
    def __init__(self, database_url, workdir, env=None, port=None):
        self.port = port or free_port()
        self.url = "http://127.0.0.1:%d" % self.port
        self.log_path = os.path.join(workdir, "batchd-%d-%s.log" % (self.port, uuid.uuid4().hex[:6]))
        full = dict(os.environ)
        full.update({
            "DATABASE_URL": database_url,
            "BATCHD_LISTEN": "127.0.0.1:%d" % self.port,
            "BATCHD_PUBLIC_URL": self.url,
            "BATCHD_SIGNING_KEY_FILE": os.path.join(workdir, "signing.key"),
            "BATCHD_JWT_SECRET": JWT_SECRET,
            "BATCHD_SHUTDOWN_GRACE_MS": "5000",
        })
        full.update(env or {})
        self.env = full
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen([BATCHD_BIN], env=full, stdout=self.log, stderr=self.log)
        self.pid = self.proc.pid
        deadline = time.time() + 20
        while True:
            try:
                if requests.get(self.url + "/readyz", timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if self.proc.poll() is not None or time.time() > deadline:
                raise RuntimeError("batchd did not become ready:\n" + self.log_text()[-3000:])
            time.sleep(0.05)

    def log_text(self):
        self.log.flush()
        with open(self.log_path) as f:
            return f.read()

    def wait(self, timeout=15):
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError("batchd (pid %d) did not exit within %s s; log tail:\n%s"
                                 % (self.pid, timeout, self.log_text()[-4000:]))

    def stop(self, sig=signal.SIGTERM, timeout=15):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                return self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise
        return self.proc.returncode

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture(scope="module")
def server_factory(database, workdir):
    servers = []

    def make(env=None, database_url=None, port=None):
        s = Server(database_url or database, workdir, env=env, port=port)
        servers.append(s)
        return s

    yield make
    for s in servers:
        try:
            s.stop(timeout=10)
        except Exception:
            s.kill()


@pytest.fixture(scope="module")
def server(server_factory):
    return server_factory()


@pytest.fixture(scope="module")
def run_batchd(database, workdir):
    def run(*args, env=None, background=False):
        full = dict(os.environ, DATABASE_URL=database, BATCHD_JWT_SECRET=JWT_SECRET,
                    BATCHD_SIGNING_KEY_FILE=os.path.join(workdir, "signing.key"))
        full.update(env or {})
        if background:
            return subprocess.Popen([BATCHD_BIN] + list(args), env=full, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True)
        return subprocess.run([BATCHD_BIN] + list(args), env=full, capture_output=True, text=True, timeout=120)
    return run


@pytest.fixture(scope="module")
def seed(run_batchd, server):
    out = run_batchd("seed-demo", "--json", env={"BATCHD_PUBLIC_URL": server.url})
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


class PrivatePg:
    """A PostgreSQL of its own, for tests that stop and start it."""

    def __init__(self, state):
        self.state = state
        self.url = None
        self.start()

    def _testpg(self, cmd):
        return subprocess.run([os.path.join(SOURCE_DIR, "scripts", "testpg"), cmd, self.state], check=True,
                              capture_output=True, text=True, timeout=120).stdout.strip()

    def start(self):
        self.url = self._testpg("start")

    def stop(self):
        self._testpg("stop")


@pytest.fixture(scope="module")
def private_pg(workdir):
    made = []

    def make():
        p = PrivatePg(os.path.join(workdir, "pg-%d" % len(made)))
        made.append(p)
        return p

    yield make
    for p in made:
        try:
            p.stop()
        except Exception:
            pass

"""Fixtures for the integration suite: the real batchd binary against a real
PostgreSQL.

ctest starts one throwaway PostgreSQL for the whole suite (scripts/testpg;
its URL is in $BATCHD_TEST_STATE/url) and runs each test_*.py file as its own
pytest process with BATCHD_BIN (the binary under test), BATCHD_TEST_STATE and
BATCHD_SOURCE_DIR set. Each test module gets a database of its own, created
for it and dropped after it; tests that stop PostgreSQL start a private one.

Fixtures (scope):
  pg_url (session)          URL of the suite's PostgreSQL (its `postgres` db)
  database (module)         URL of a fresh database for this module
  psql (module)             psql(sql) -> text output, on the module's database
  workdir (module)          a temporary directory (logs, signing key, ...)
  server_factory (module)   make(env=None, database_url=None, port=None,
                            args=(), wait_ready=True) -> Server, stopped at
                            the end of the module
  server (module)           one default Server on the module's database
  run_batchd (module)       run(*args, env=None, background=False,
                            timeout=120, database_url=None) ->
                            CompletedProcess (text) or, with background,
                            a Popen
  seed (module)             `batchd seed-demo --json` for the module's
                            database, parsed (base_url = server.url)
  private_pg (module)       make() -> PrivatePg with .url, .stop(), .start()

Environment knobs: BATCHD_KEEP_TEST_DIRS=1 keeps each module's workdir
(server logs) instead of deleting it."""
import glob
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid

import pytest
import requests

SOURCE_DIR = os.environ.get("BATCHD_SOURCE_DIR", os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))))
BATCHD_BIN = os.environ.get("BATCHD_BIN", os.path.join(SOURCE_DIR, "build", "batchd"))
JWT_SECRET = "integration-test-jwt-secret-0123456789"
READY_TIMEOUT = 20.0  # seconds for a server to answer /healthz (and /readyz)

# Everything here talks to 127.0.0.1: never through a proxy from the
# environment (requests in the tests, libcurl inside batchd).
for _var in ("no_proxy", "NO_PROXY"):
    _have = os.environ.get(_var, "")
    os.environ[_var] = ",".join(x for x in (_have, "127.0.0.1,localhost") if x)

# What sanitizer builds print when they find something (scripts/test --sanitize).
SANITIZER_RE = re.compile(r"ERROR: (AddressSanitizer|LeakSanitizer|ThreadSanitizer|UndefinedBehaviorSanitizer)"
                          r"|WARNING: ThreadSanitizer|:\d+:\d+: runtime error: ")


def sanitizer_report(text):
    """The first sanitizer report in a log, with some context, or ''."""
    m = SANITIZER_RE.search(text)
    if not m:
        return ""
    start = text.rfind("\n", 0, max(0, m.start() - 200)) + 1
    return text[start:start + 4000]


def free_port():
    """A port that was free a moment ago (Server retries if it is taken)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def find_tool(name):
    """A PostgreSQL client program: from PATH, else the newest server
    installation's bin directory."""
    path = shutil.which(name)
    if path:
        return path
    cands = sorted(glob.glob("/usr/lib/postgresql/*/bin/" + name),
                   key=lambda p: int(p.split("/")[4]) if p.split("/")[4].isdigit() else 0)
    if cands:
        return cands[-1]
    raise RuntimeError("%s not found (install postgresql-client: scripts/setup)" % name)


def with_db(url, dbname):
    """The same server and parameters (host= socket, user=, ...) pointing at
    another database. Accepts a URL or a key=value conninfo string."""
    if "://" not in url:
        kept = [kv for kv in url.split() if not kv.startswith("dbname=")]
        return " ".join(kept + ["dbname=" + dbname])
    scheme, rest = url.split("://", 1)
    cut = min([i for i in (rest.find("/"), rest.find("?")) if i >= 0] or [len(rest)])
    authority, tail = rest[:cut], rest[cut:]
    query = tail.partition("?")[2]
    return "%s://%s/%s%s" % (scheme, authority, dbname, "?" + query if query else "")


def psql_run(url, sql, timeout=60):
    """Runs SQL with psql (ON_ERROR_STOP, unaligned, tuples only) and returns
    its output, stripped. Rows are lines, columns are separated by '|'."""
    out = subprocess.run([find_tool("psql"), url, "-v", "ON_ERROR_STOP=1", "-qtAX", "-c", sql],
                         capture_output=True, text=True, timeout=timeout)
    if out.returncode != 0:
        raise RuntimeError("psql failed: %s\n%s" % (sql, out.stderr))
    return out.stdout.strip()


def create_database(pg_url, prefix):
    """Creates bd_<prefix>_<random> and returns (name, url)."""
    clean = re.sub(r"[^a-z0-9_]", "_", prefix.lower())[:40]
    name = "bd_%s_%s" % (clean, uuid.uuid4().hex[:8])
    psql_run(pg_url, "CREATE DATABASE %s" % name)
    return name, with_db(pg_url, name)


def drop_database(pg_url, name):
    """Drops a database even while something is still connected to it."""
    psql_run(pg_url, "DROP DATABASE IF EXISTS %s WITH (FORCE)" % name)


def _require_bin():
    if not (os.path.isfile(BATCHD_BIN) and os.access(BATCHD_BIN, os.X_OK)):
        pytest.fail("batchd binary not found at %s (BATCHD_BIN): build it first, e.g. scripts/test" % BATCHD_BIN,
                    pytrace=False)


def _tail(text, lines=60):
    return "\n".join(text.splitlines()[-lines:])


@pytest.fixture(scope="session")
def pg_url():
    state = os.environ.get("BATCHD_TEST_STATE")
    if not state:
        pytest.fail("BATCHD_TEST_STATE is not set: run the suite through ctest (scripts/test), "
                    "or point it at a directory written by `scripts/testpg start DIR`", pytrace=False)
    path = os.path.join(state, "url")
    try:
        with open(path) as f:
            url = f.read().strip()
    except OSError as e:
        pytest.fail("cannot read the test PostgreSQL URL from %s (%s): is the testpg fixture running?" % (path, e),
                    pytrace=False)
    if not url:
        pytest.fail("%s is empty" % path, pytrace=False)
    try:
        psql_run(url, "SELECT 1", timeout=30)
    except Exception as e:  # noqa: BLE001 - any failure here means no database
        pytest.fail("the test PostgreSQL at %s does not answer: %s" % (url, e), pytrace=False)
    return url


@pytest.fixture(scope="module")
def database(pg_url, request):
    name, url = create_database(pg_url, request.module.__name__.split(".")[-1])
    yield url
    drop_database(pg_url, name)


@pytest.fixture(scope="module")
def psql(database):
    """psql(sql) on the module's database; returns the text output."""
    return lambda sql: psql_run(database, sql)


@pytest.fixture(scope="module")
def workdir(request):
    mod = re.sub(r"[^A-Za-z0-9_]", "_", request.module.__name__.split(".")[-1])
    d = tempfile.mkdtemp(prefix="batchd-it-%s-" % mod)
    os.chmod(d, 0o755)  # a private PostgreSQL runs as `postgres` when we are root
    yield d
    if os.environ.get("BATCHD_KEEP_TEST_DIRS"):
        print("kept %s" % d)
    else:
        shutil.rmtree(d, ignore_errors=True)


class Server:
    """One batchd process serving on 127.0.0.1:<port>, output in a log file.

    Ready when GET /healthz is 200 and, unless wait_ready=False, GET /readyz
    is 200 too (migrations applied: batchd listens before it migrates).
    Attributes: port, url, pid, proc, env, log_path."""

    def __init__(self, database_url, workdir, env=None, port=None, args=(), wait_ready=True,
                 timeout=READY_TIMEOUT):
        _require_bin()
        self.workdir = workdir
        self.killed = False
        self.log = None
        fixed_port = port is not None
        for attempt in range(3):
            self.port = port if fixed_port else free_port()
            try:
                self._start(database_url, env, args, wait_ready, timeout)
                return
            except _PortTaken:
                if fixed_port or attempt == 2:
                    raise RuntimeError("batchd could not bind 127.0.0.1:%d:\n%s" % (self.port, _tail(self.log_text())))

    def _start(self, database_url, env, args, wait_ready, timeout):
        self.url = "http://127.0.0.1:%d" % self.port
        self.log_path = os.path.join(self.workdir, "batchd-%d-%s.log" % (self.port, uuid.uuid4().hex[:6]))
        full = dict(os.environ)
        full.update({
            "DATABASE_URL": database_url,
            "BATCHD_LISTEN": "127.0.0.1:%d" % self.port,
            "BATCHD_PUBLIC_URL": self.url,
            "BATCHD_SIGNING_KEY_FILE": os.path.join(self.workdir, "signing.key"),
            "BATCHD_WEBHOOK_KEY_FILE": os.path.join(self.workdir, "webhook.key"),
            "BATCHD_JWT_SECRET": JWT_SECRET,
            "BATCHD_SHUTDOWN_GRACE_MS": "5000",
        })
        full.update(env or {})
        self.env = full
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen([BATCHD_BIN] + list(args), env=full, stdin=subprocess.DEVNULL,
                                     stdout=self.log, stderr=subprocess.STDOUT)
        self.pid = self.proc.pid
        deadline = time.time() + timeout
        session = requests.Session()
        session.trust_env = False
        paths = ["/healthz"] + (["/readyz"] if wait_ready else [])
        last = "no answer"
        try:
            while paths:
                try:
                    r = session.get(self.url + paths[0], timeout=1)
                    last = "%s: %d %s" % (paths[0], r.status_code, r.text[:200])
                    if r.status_code == 200:
                        paths.pop(0)
                        continue
                except requests.RequestException as e:
                    last = "%s: %s" % (paths[0], e.__class__.__name__)
                code = self.proc.poll()
                if code is not None:
                    self._closelog()
                    text = self.log_text()
                    if "address already in use" in text.lower():
                        raise _PortTaken()
                    raise RuntimeError("batchd exited with %d before it was ready (%s); log tail:\n%s"
                                       % (code, " ".join(self.proc.args), _tail(text)))
                if time.time() > deadline:
                    self.kill()
                    raise RuntimeError("batchd was not ready within %.0f s (last: %s); log tail:\n%s"
                                       % (timeout, last, _tail(self.log_text())))
                time.sleep(0.05)
        finally:
            session.close()

    @property
    def running(self):
        return self.proc.poll() is None

    def _closelog(self):
        if self.log is not None and not self.log.closed:
            self.log.close()

    def log_text(self):
        if self.log is not None and not self.log.closed:
            self.log.flush()
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def log_lines(self):
        """The JSON log lines, parsed (other lines are skipped)."""
        out = []
        for line in self.log_text().splitlines():
            if line.startswith("{"):
                try:
                    out.append(json.loads(line))
                except ValueError:
                    pass
        return out

    def wait(self, timeout=15):
        """Waits for the process to exit on its own; returns its exit code."""
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError("batchd (pid %d) did not exit within %s s; log tail:\n%s"
                                 % (self.pid, timeout, _tail(self.log_text())))
        self._closelog()
        return code

    def stop(self, sig=signal.SIGTERM, timeout=15):
        """Sends sig and waits; returns the exit code (negative: killed by
        that signal). A process still alive after timeout is SIGKILLed and
        AssertionError raised."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                raise AssertionError("batchd (pid %d) did not exit within %s s of signal %d; log tail:\n%s"
                                     % (self.pid, timeout, sig, _tail(self.log_text())))
        self._closelog()
        return self.proc.returncode

    def kill(self):
        """SIGKILL: no chance to clean up."""
        if self.proc.poll() is None:
            self.killed = True
            self.proc.kill()
            self.proc.wait()
        self._closelog()

    def get(self, path, **kw):
        """requests.get(self.url + path)."""
        kw.setdefault("timeout", 10)
        return requests.get(self.url + path, **kw)

    def __repr__(self):
        return "<Server pid %d %s>" % (self.pid, self.url)


class _PortTaken(Exception):
    pass


# Servers started in the current module, for the failure report below.
_module_servers = []


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


@pytest.fixture(autouse=True)
def _server_logs_on_failure(request):
    """When a test fails, print the tail of every server log of its module
    (pytest shows it under "Captured stdout teardown")."""
    yield
    rep = getattr(request.node, "rep_call", None)
    if rep is not None and rep.failed:
        for s in _module_servers:
            try:
                print("---- %s (%s), log %s:\n%s" % (s, "running" if s.running else "exited %s" % s.proc.returncode,
                                                    s.log_path, _tail(s.log_text(), 40)))
            except OSError:
                pass


@pytest.fixture(scope="module")
def server_factory(database, workdir):
    servers = []

    def make(env=None, database_url=None, port=None, args=(), wait_ready=True, timeout=READY_TIMEOUT):
        s = Server(database_url or database, workdir, env=env, port=port, args=args, wait_ready=wait_ready,
                   timeout=timeout)
        servers.append(s)
        _module_servers.append(s)
        return s

    yield make
    # Stop what is still running. A server that the suite stops must exit 0
    # (clean shutdown), and no server may have logged a sanitizer report.
    problems = []
    for s in servers:
        if s.running:
            try:
                code = s.stop(timeout=15)
                if code != 0:
                    problems.append("%r exited with %s on SIGTERM at the end of the module; log tail:\n%s"
                                    % (s, code, _tail(s.log_text())))
            except AssertionError as e:
                problems.append(str(e))
        s.kill()
        report = sanitizer_report(s.log_text())
        if report:
            problems.append("%r: sanitizer report in %s:\n%s" % (s, s.log_path, report))
        if s in _module_servers:
            _module_servers.remove(s)
    if problems:
        pytest.fail("\n\n".join(problems), pytrace=False)


@pytest.fixture(scope="module")
def server(server_factory):
    return server_factory()


@pytest.fixture(scope="module")
def run_batchd(database, workdir):
    """Runs `batchd ARGS...` (subcommands: migrate, seed-demo, --help, ...)
    against the module's database."""

    def run(*args, env=None, background=False, timeout=120, database_url=None):
        _require_bin()
        full = dict(os.environ, DATABASE_URL=database_url or database, BATCHD_JWT_SECRET=JWT_SECRET,
                    BATCHD_SIGNING_KEY_FILE=os.path.join(workdir, "signing.key"),
                    BATCHD_WEBHOOK_KEY_FILE=os.path.join(workdir, "webhook.key"))
        full.update(env or {})
        if background:
            return subprocess.Popen([BATCHD_BIN] + list(args), env=full, stdin=subprocess.DEVNULL,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        out = subprocess.run([BATCHD_BIN] + list(args), env=full, stdin=subprocess.DEVNULL, capture_output=True,
                             text=True, timeout=timeout)
        report = sanitizer_report(out.stderr)
        if report:
            pytest.fail("batchd %s: sanitizer report:\n%s" % (" ".join(args), report), pytrace=False)
        return out

    return run


@pytest.fixture(scope="module")
def seed(run_batchd, server):
    out = run_batchd("seed-demo", "--json", env={"BATCHD_PUBLIC_URL": server.url})
    assert out.returncode == 0, "seed-demo failed (%d):\n%s" % (out.returncode, out.stderr)
    try:
        return json.loads(out.stdout)
    except ValueError:
        pytest.fail("seed-demo --json did not print one JSON object:\n%s\nstderr:\n%s" % (out.stdout, out.stderr),
                    pytrace=False)


class PrivatePg:
    """A PostgreSQL of its own, for tests that stop and start it."""

    def __init__(self, state):
        self.state = state
        self.url = None
        self.start()

    def _testpg(self, cmd):
        out = subprocess.run([os.path.join(SOURCE_DIR, "scripts", "testpg"), cmd, self.state], capture_output=True,
                             text=True, timeout=120)
        if out.returncode != 0:
            raise RuntimeError("scripts/testpg %s %s failed:\n%s" % (cmd, self.state, out.stderr))
        return out.stdout.strip()

    def start(self):
        self.url = self._testpg("start")

    def stop(self):
        self._testpg("stop")


def seed_demo(run_batchd, srv, surface, tenant=None, database_url=None):
    """`batchd seed-demo --json` (of `tenant`, or the default one) with links
    to srv; returns that surface's section ("qr", "products", "business")."""
    args = ["seed-demo"] + (["--tenant", tenant] if tenant else []) + ["--json"]
    out = run_batchd(*args, env={"BATCHD_PUBLIC_URL": srv.url}, database_url=database_url)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)[surface]


@pytest.fixture
def own_database(pg_url, request):
    """A database of the test's own (dropped after it), so that no other
    server of the module claims the test's jobs."""
    name, url = create_database(pg_url, request.node.name[:20])
    yield url
    drop_database(pg_url, name)


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
        except Exception:  # noqa: BLE001 - best effort at teardown
            pass

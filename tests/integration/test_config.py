"""Settings from a --config FILE and `batchd config check` (issue 22): the
file's syntax (the systemd EnvironmentFile's), precedence (defaults < file
< environment < flags), errors that name the file and line, secrets never
shown, and a server that really runs on what the file says."""
import json
import os
import subprocess

import requests

from conftest import BATCHD_BIN


def batchd(*args, env=None):
    full = {k: v for k, v in os.environ.items() if not (k.startswith("BATCHD_") and k not in (
        "BATCHD_BIN", "BATCHD_TEST_STATE", "BATCHD_SOURCE_DIR")) and k != "DATABASE_URL"}
    full.update(env or {})
    return subprocess.run([BATCHD_BIN] + list(args), env=full, capture_output=True, text=True, timeout=30)


def check(path, *args, env=None):
    r = batchd("config", "check", "--json", "--config", str(path), *args, env=env)
    return r, (json.loads(r.stdout) if r.stdout.strip() else None)


def settings(doc):
    return {s["name"]: (s["value"], s["source"]) for s in doc["settings"]}


def test_file_syntax_and_precedence(tmp_path):
    f = tmp_path / "batchd.env"
    f.write_text("# a comment\n\n"
                 "export DATABASE_URL=\"postgresql://app:hunter2@db.example:5432/batchd?sslmode=require\"\n"
                 "BATCHD_LISTEN = 127.0.0.1:9999\n"
                 "  BATCHD_MAX_QR_ITEMS=500\n"
                 "BATCHD_WORKERS=3\n"
                 "BATCHD_COUNTRY_HEADER='X-Geo \"Country\"'\n"
                 "BATCHD_JWT_SECRET=\"a \\\"quoted\\\" secret of some length\"\r\n")
    r, doc = check(f, "--workers", "5", env={"BATCHD_MAX_QR_ITEMS": "600"})
    assert r.returncode == 0, r.stderr
    s = settings(doc)
    assert doc["ok"] is True
    assert s["BATCHD_LISTEN"] == ("127.0.0.1:9999", "%s:4" % f)
    assert s["BATCHD_MAX_QR_ITEMS"] == ("600", "environment")      # the environment beats the file
    assert s["BATCHD_WORKERS"] == ("5", "flag --workers")           # a flag beats both
    assert s["BATCHD_COUNTRY_HEADER"] == ('X-Geo "Country"', "%s:7" % f)
    assert s["BATCHD_MAX_JSON_DEPTH"] == ("32", "default")
    # secrets: the password and the JWT secret are never printed
    assert s["DATABASE_URL"][0] == "postgresql://app:***@db.example:5432/batchd?sslmode=require"
    assert s["BATCHD_JWT_SECRET"][0] == "(set, %d bytes)" % len('a "quoted" secret of some length')
    assert "hunter2" not in r.stdout and "quoted" not in r.stdout
    # the plain table says the same
    t = batchd("config", "check", "--config", str(f))
    assert t.returncode == 0 and "hunter2" not in t.stdout
    assert any(line.split()[:2] == ["BATCHD_LISTEN", "127.0.0.1:9999"] for line in t.stdout.splitlines())


def test_conninfo_password_masked(tmp_path):
    f = tmp_path / "c.env"
    f.write_text("DATABASE_URL=host=/run/pg dbname=b password=hunter2 user=u\n")
    r, doc = check(f)
    assert r.returncode == 0, r.stderr
    assert settings(doc)["DATABASE_URL"][0] == "host=/run/pg dbname=b password=*** user=u"
    assert "hunter2" not in r.stdout


def test_errors_name_the_file_and_line(tmp_path):
    cases = {
        "BATCHD_LISTEN=127.0.0.1:1\nBATCHD_LISTN=x\n": ":2: unknown setting BATCHD_LISTN",
        "BATCHD_WORKERS=1\nBATCHD_WORKERS=2\n": ":2: BATCHD_WORKERS is set twice",
        "just words\n": ":1: expected NAME=value",
        "BATCHD_LISTEN=\"open\n": ":1: unterminated quote",
        "BATCHD_MAX_QR_ITEMS=lots\n": ":1: expected an integer",
        "BATCHD_ACCESS_LOG=maybe\n": ":1: expected a boolean",
    }
    for text, needle in cases.items():
        f = tmp_path / "bad.env"
        f.write_text(text)
        r = batchd("config", "check", "--config", str(f), env={"DATABASE_URL": "postgresql:///x"})
        assert r.returncode == 2, (text, r.stdout, r.stderr)
        assert str(f) + needle in r.stderr, (text, r.stderr)
    r = batchd("config", "check", "--config", str(tmp_path / "missing.env"))
    assert r.returncode == 2 and "missing.env: No such file" in r.stderr
    # no DATABASE_URL anywhere: check says so
    f = tmp_path / "empty.env"
    f.write_text("# nothing\n")
    r, doc = check(f)
    assert r.returncode == 2 and doc["ok"] is False and doc["problems"] == ["DATABASE_URL is required"]


def test_serve_runs_on_the_file(tmp_path, database, server_factory):
    """A server given only --config (no settings in its environment besides
    the harness's) listens where the file says and serves its limits."""
    f = tmp_path / "serve.env"
    f.write_text("BATCHD_MAX_JSON_BODY=64\nBATCHD_RATE_LIMIT=0\n")
    srv = server_factory(args=("serve", "--config", str(f)))
    r = requests.post(srv.url + "/v1/batches", data="x" * 100, headers={"Content-Type": "application/json"})
    assert r.status_code == 413, r.text                            # BATCHD_MAX_JSON_BODY from the file
    r = requests.get(srv.url + "/healthz")
    assert r.status_code == 200

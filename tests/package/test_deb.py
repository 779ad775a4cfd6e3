#!/usr/bin/python3
"""The .deb, end to end (ctest package.deb): cpack builds it from this build
tree; its control data has the shared-library dependencies dpkg-shlibdeps
found and our conffile; `dpkg -i` installs it on this machine; the installed
unit passes `systemd-analyze verify`; the installed /usr/bin/batchd answers
--version, its man page is in place, `batchd migrate` applies the schema to
a database of the suite's PostgreSQL, `batchd tenant create` and `batchd
token create` provision a tenant with a key, and `batchd serve` tells a
service manager READY=1 (on $NOTIFY_SOCKET, as systemd's Type=notify
expects), answers a request authorised by that key, says STOPPING=1 on SIGTERM and exits 0; `dpkg --purge`
removes it all.

Usage: test_deb.py BUILD_DIR. Needs root (dpkg); exits 77 (skipped)
otherwise, or when a batchd package not built by this test is installed.
"""
import glob
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

SKIP = 77


def run(*cmd, **kw):
    kw.setdefault("check", True)
    return subprocess.run(cmd, capture_output=True, text=True, **kw)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def main():
    build = os.path.abspath(sys.argv[1])
    if os.geteuid() != 0:
        print("not root: dpkg cannot install; skipped")
        return SKIP
    installed = run("dpkg-query", "-W", "-f=${Status} ${Maintainer}", "batchd", check=False).stdout
    if "installed" in installed and "batchd developers" not in installed:
        print("a batchd package from elsewhere is installed; not replacing it: skipped")
        return SKIP

    # --- build and inspect ---------------------------------------------------
    out = os.path.join(build, "package")
    for old in glob.glob(os.path.join(out, "*.deb")):
        os.unlink(old)
    r = run("cpack", "-G", "DEB", "-B", out, cwd=build, check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    debs = glob.glob(os.path.join(out, "batchd_*.deb"))
    assert len(debs) == 1, debs
    deb = debs[0]
    info = run("dpkg-deb", "--field", deb, "Package", "Version", "Architecture", "Depends").stdout
    print(info)
    for lib in ("libuv1", "libpq5", "libsodium23", "libjansson4", "libqrencode4", "libcairo2", "libpango",
                "libcurl", "fontconfig", "fonts-dejavu-core"):
        assert lib in info, "Depends lacks %s: %s" % (lib, info)
    files = run("dpkg-deb", "--contents", deb).stdout
    for f in ("./usr/bin/batchd", "./usr/share/man/man1/batchd.1", "./usr/lib/systemd/system/batchd.service",
              "./etc/batchd/batchd.env"):
        assert f in files, "%s not in the package:\n%s" % (f, files)
    ctl = tempfile.mkdtemp()
    run("dpkg-deb", "--control", deb, ctl)
    assert open(os.path.join(ctl, "conffiles")).read().split() == ["/etc/batchd/batchd.env"]

    # --- install --------------------------------------------------------------
    r = run("dpkg", "-i", deb, check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    try:
        v = run("/usr/bin/batchd", "--version").stdout.strip()
        assert v.startswith("batchd "), v
        assert os.path.exists("/usr/share/man/man1/batchd.1")
        assert ".SH ENVIRONMENT" in open("/usr/share/man/man1/batchd.1").read()
        assert "BATCHD_JWT_MAX_TTL_S" in open("/usr/share/man/man1/batchd.1").read()
        assert ".SH PROVISIONING" in open("/usr/share/man/man1/batchd.1").read()
        assert oct(os.stat("/etc/batchd/batchd.env").st_mode & 0o777) == "0o600"
        # the example env file is valid for --config as it is (a placeholder DATABASE_URL)
        r = run("/usr/bin/batchd", "config", "check", "--config", "/etc/batchd/batchd.env", check=False)
        assert r.returncode == 0 and "/etc/batchd/batchd.env:" in r.stdout, r.stdout + r.stderr
        r = run("systemd-analyze", "verify", "--man=no", "/usr/lib/systemd/system/batchd.service", check=False)
        assert r.returncode == 0, r.stdout + r.stderr

        # --- the installed binary against the suite's PostgreSQL --------------
        state = os.environ["BATCHD_TEST_STATE"]
        admin = open(os.path.join(state, "url")).read().strip()
        db = "pkgtest_%d" % os.getpid()
        run("psql", admin, "-qc", "DROP DATABASE IF EXISTS %s" % db)
        run("psql", admin, "-qc", "CREATE DATABASE %s" % db)
        url = admin.replace("/postgres?", "/%s?" % db, 1)
        assert url != admin, admin
        workdir = tempfile.mkdtemp()
        env = dict(os.environ, DATABASE_URL=url, BATCHD_SIGNING_KEY_FILE=os.path.join(workdir, "k.key"))
        r = run("/usr/bin/batchd", "migrate", env=env, check=False)
        assert r.returncode == 0, r.stderr
        n = run("psql", url, "-Atc", "SELECT count(*) FROM bd_schema_migrations").stdout.strip()
        assert int(n) > 0, n
        # a tenant and a key of its own, by the installed commands (README "Deploying", step 5)
        r = run("/usr/bin/batchd", "tenant", "create", "pkgtenant", "--json", env=env, check=False)
        assert r.returncode == 0 and json.loads(r.stdout)["qr"]["workspace_id"] > 0, r.stdout + r.stderr
        r = run("/usr/bin/batchd", "token", "create", "--tenant", "pkgtenant", "--surface", "qr", "--scope", "qr:read",
                "--json", env=env, check=False)
        assert r.returncode == 0, r.stdout + r.stderr
        key = json.loads(r.stdout)["token"]

        nsock = os.path.join(workdir, "notify")
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        listener.bind(nsock)
        listener.settimeout(30)
        port = free_port()
        env.update(BATCHD_LISTEN="127.0.0.1:%d" % port, NOTIFY_SOCKET=nsock)
        p = subprocess.Popen(["/usr/bin/batchd", "serve"], env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True)
        try:
            assert listener.recv(256) == b"READY=1"
            with urllib.request.urlopen("http://127.0.0.1:%d/healthz" % port, timeout=5) as resp:
                assert resp.status == 200
                assert json.loads(resp.read())["status"] == "ok"
            req = urllib.request.Request("http://127.0.0.1:%d/v1/qr-codes" % port,
                                         headers={"Authorization": "Bearer " + key})
            with urllib.request.urlopen(req, timeout=5) as resp:
                assert resp.status == 200 and json.loads(resp.read())["object"] == "list"
            p.send_signal(signal.SIGTERM)
            assert listener.recv(256) == b"STOPPING=1"
            assert p.wait(timeout=30) == 0, p.stderr.read()
        finally:
            if p.poll() is None:
                p.kill()
            listener.close()
        run("psql", admin, "-qc", "DROP DATABASE IF EXISTS %s" % db)
    finally:
        r = run("dpkg", "--purge", "batchd", check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    for f in ("/usr/bin/batchd", "/usr/lib/systemd/system/batchd.service", "/etc/batchd/batchd.env"):
        assert not os.path.exists(f), f + " left behind"
    print("package.deb: built, installed, served, purged")
    return 0


if __name__ == "__main__":
    sys.exit(main())

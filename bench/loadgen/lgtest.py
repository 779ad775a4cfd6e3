"""Helpers shared by loadgen's tests: run stallserver.py, run loadgen --json."""
import json
import os
import resource
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


class StallServer:
    """stallserver.py in a child process; `with StallServer(...) as port:`."""

    def __init__(self, *args):
        self.args = [str(a) for a in args]
        self.proc = None

    def __enter__(self):
        self.proc = subprocess.Popen([sys.executable, os.path.join(HERE, "stallserver.py")] + self.args,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        if not line.strip().isdigit():
            self.proc.kill()
            raise RuntimeError("stallserver did not start")
        return int(line)

    def __exit__(self, *exc):
        self.proc.stdin.close()  # the server exits when its stdin closes
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def loadgen(exe, url, *args, timeout=30, max_fds=None):
    """Runs loadgen with --json - and returns (result dict, wall seconds).
    max_fds: run it with RLIMIT_NOFILE (soft and hard) set to that."""
    def limit():
        resource.setrlimit(resource.RLIMIT_NOFILE, (max_fds, max_fds))
    t = time.monotonic()
    out = subprocess.run([exe, "-q", "--json", "-"] + [str(a) for a in args] + [url],
                         capture_output=True, text=True, timeout=timeout, preexec_fn=limit if max_fds else None)
    wall = time.monotonic() - t
    if out.returncode != 0:
        raise AssertionError("loadgen exited %d: %s" % (out.returncode, out.stderr))
    return json.loads(out.stdout), wall


class Checks:
    """Collects failed expectations so one run reports all of them."""

    def __init__(self):
        self.failed = []

    def check(self, cond, what, result=None):
        print("%s %s" % ("ok  " if cond else "FAIL", what), flush=True)
        if not cond:
            self.failed.append(what)
            if result is not None:
                print("     result: %s" % json.dumps(result), flush=True)

    def exit(self):
        if self.failed:
            print("%d check(s) failed" % len(self.failed))
            sys.exit(1)
        print("all checks passed")

"""The independent GS1 checker (tests/npm/gs1check.cjs: digital-link.js and
GS1's linkset JSON schema), for the resolver and minting tests."""
import json
import os
import shutil
import subprocess

import pytest

from conftest import SOURCE_DIR

NPM_DIR = os.path.join(SOURCE_DIR, "tests", "npm")


def gs1check(**req):
    """Runs the checker on {uris, linksets, compress, decompress}; skips
    (fails under CI) when node or tests/npm/node_modules is missing."""
    node = shutil.which("node")
    if not node or not os.path.isdir(os.path.join(NPM_DIR, "node_modules", "digital-link.js")):
        if os.environ.get("CI"):
            pytest.fail("node and tests/npm/node_modules are required under CI (scripts/setup installs them)")
        pytest.skip("node or tests/npm/node_modules missing (run scripts/setup)")
    out = subprocess.run([node, os.path.join(NPM_DIR, "gs1check.cjs")], input=json.dumps(req), capture_output=True,
                         text=True, timeout=300, cwd=NPM_DIR)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def assert_valid_uris(uris):
    res = gs1check(uris=list(uris))["uris"]
    bad = [u for u in res if not u["valid"]]
    assert not bad, bad[:5]
    return res


def assert_valid_linksets(docs):
    res = gs1check(linksets=list(docs))["linksets"]
    bad = [(i, r["errors"]) for i, r in enumerate(res) if not r["valid"]]
    assert not bad, bad

// Self-test of the verifier harness (verify.mjs), run by ctest as npm.selftest:
//
//   node --test selftest.mjs                      check
//   UPDATE_FIXTURES=1 node --test selftest.mjs    rewrite fixtures/
//
// The cases are in cases.mjs. They need the pinned npm packages, which
// scripts/setup installs with `npm ci`; without them this is one failing test
// under CI=true and one skipped test elsewhere, saying so.
import {test} from 'node:test';
import assert from 'node:assert/strict';
import {existsSync} from 'node:fs';
import path from 'node:path';
import {fileURLToPath} from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));
// npm ci writes this file last
const installed = existsSync(path.join(HERE, 'node_modules', '.package-lock.json'));

if(installed) {
  await import('./cases.mjs');
} else {
  const msg = 'tests/npm/node_modules is missing: run scripts/setup, which ' +
    'runs `npm ci --prefix tests/npm` (Node.js and npm from Debian)';
  if(process.env.CI === 'true') {
    test('the npm packages are installed', () => assert.fail(msg));
  } else {
    test('the npm packages are installed', {skip: msg}, () => {});
  }
}

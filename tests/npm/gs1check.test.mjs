// gs1check.test.mjs: the checker itself tells good from bad (so a test
// that relies on it can fail): GS1's own valid and invalid linkset
// examples, URIs that are and are not Digital Links, and compression
// round trips.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const check = (req) =>
  JSON.parse(execFileSync(process.execPath, [join(here, 'gs1check.cjs')], { input: JSON.stringify(req) }).toString());
const vendored = (f) => JSON.parse(readFileSync(join(here, 'vendor', 'gs1', f), 'utf8'));

test('linksets: GS1 examples', () => {
  const r = check({ linksets: [vendored('valid-gs1-example.json'), vendored('invalid-gs1-example.json'),
    { linkset: [{ anchor: 'https://id.example/01/09506000134352', 'https://gs1.org/voc/pip': [{ href: 'https://x.example/' , title: 't'}] }] }] });
  assert.equal(r.linksets[0].valid, true);
  assert.equal(r.linksets[1].valid, false);
  assert.equal(r.linksets[2].valid, false, 'no itemDescription');
});

test('uris: valid and invalid Digital Links', () => {
  const r = check({ uris: ['https://id.example.com/01/09506000134352/10/L1/21/S1',
    'https://id.example.com/01/09506000134353', 'https://id.example.com/01/09506000134352/21/A~B'] });
  assert.deepEqual(r.uris.map((u) => u.valid), [true, false, false]);
});

test('compression round trip', () => {
  const u = 'https://id.example.com/01/09506000134352/10/L1/21/S1?17=261231';
  const r = check({ compress: [u] });
  assert.notEqual(r.compressed[0], u);
  assert.equal(check({ decompress: r.compressed }).decompressed[0], u);
});

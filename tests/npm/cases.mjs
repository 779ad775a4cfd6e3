// The self-test's cases (selftest.mjs runs them once the npm packages are
// installed), and the source of the reference fixtures in fixtures/
// (README.md there explains them).
//
//   node --test selftest.mjs                      check (what ctest runs)
//   UPDATE_FIXTURES=1 node --test selftest.mjs    rewrite fixtures/
//
// Everything is deterministic: a fixed test seed, fixed dates, and Ed25519
// signatures are deterministic, so the fixtures come out byte for byte the
// same on every run and the test fails if the libraries' output drifts.
import {test} from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import http from 'node:http';
import {execFile} from 'node:child_process';
import {existsSync, mkdirSync, readFileSync, writeFileSync} from 'node:fs';
import path from 'node:path';
import {fileURLToPath} from 'node:url';
import {promisify} from 'node:util';

import * as vc from '@digitalbazaar/vc';
import * as Ed25519Multikey from '@digitalbazaar/ed25519-multikey';
import {DataIntegrityProof} from '@digitalbazaar/data-integrity';
import {createSignCryptosuite} from '@digitalbazaar/eddsa-jcs-2022-cryptosuite';
import {
  createList, createCredential as createStatusListCredential
} from '@digitalbazaar/vc-bitstring-status-list';

import {
  OB_V3_CONTEXT, VC_V2_CONTEXT, didWebToUrl, makeDocumentLoader,
  verifyCredential
} from './verify.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const FIXTURES = path.join(HERE, 'fixtures');
const UPDATE = process.env.UPDATE_FIXTURES === '1';

// --- the sample issuer ---------------------------------------------------------

// A TEST key: seed 0x00 0x01 ... 0x1f. Never use it for anything real.
export const SEED = Uint8Array.from({length: 32}, (_, i) => i);
export const DID = 'did:web:example.test';
export const KEY_ID = `${DID}#key-1`;
export const STATUS_LIST_URL = 'https://example.test/status/1';
export const STATUS_INDEX = 94567;
export const STATUS_LIST_LENGTH = 131072;
export const CREATED = '2025-01-15T10:00:00Z';
export const EMAIL = 'alice@example.test';
export const SALT = 'W7sT1x0cYb';

export function identityHash(email, salt) {
  return 'sha256$' +
    crypto.createHash('sha256').update(email + salt, 'utf8').digest('hex');
}

export function unsignedCredential() {
  return {
    '@context': [VC_V2_CONTEXT, OB_V3_CONTEXT],
    id: 'https://example.test/credentials/3732f1a6-6a3b-4b0e-9c36-3f3e0d5b8c11',
    type: ['VerifiableCredential', 'OpenBadgeCredential'],
    name: 'Introduction to Testing',
    issuer: {
      id: DID,
      type: ['Profile'],
      name: 'Example Institute'
    },
    validFrom: '2025-01-15T09:30:00Z',
    credentialSubject: {
      type: ['AchievementSubject'],
      identifier: [{
        type: 'IdentityObject',
        identityHash: identityHash(EMAIL, SALT),
        identityType: 'emailAddress',
        hashed: true,
        salt: SALT
      }],
      achievement: {
        id: 'https://example.test/achievements/intro-testing',
        type: ['Achievement'],
        name: 'Introduction to Testing',
        description: 'Completed the course «Introduction to Testing» ' +
          '(12 h, exam passed).',
        criteria: {
          // a quote, a backslash, a newline, a tab and a non-BMP character:
          // JCS escapes the first four and leaves the last as UTF-8
          narrative: 'Attend every session and pass the "final" exam ' +
            '(C:\\tests).\n\tGrade \u2265 60 % \u{1F393}'
        }
      }
    },
    credentialStatus: {
      id: `${STATUS_LIST_URL}#${STATUS_INDEX}`,
      type: 'BitstringStatusListEntry',
      statusPurpose: 'revocation',
      statusListIndex: String(STATUS_INDEX),
      statusListCredential: STATUS_LIST_URL
    }
  };
}

async function issuerKey() {
  return Ed25519Multikey.generate({seed: SEED, id: KEY_ID, controller: DID});
}

export async function didDocument(key) {
  const vm = await key.export({publicKey: true, includeContext: false});
  return {
    '@context': [
      'https://www.w3.org/ns/did/v1',
      'https://w3id.org/security/multikey/v1'
    ],
    id: DID,
    verificationMethod: [vm],
    assertionMethod: [vm.id]
  };
}

async function sign(credential, key) {
  const suite = new DataIntegrityProof({
    signer: key.signer(), date: CREATED, cryptosuite: createSignCryptosuite()
  });
  // issuing loads nothing; the loader is there to prove it stays offline
  const documentLoader = makeDocumentLoader();
  const signed = await vc.issue({
    credential: structuredClone(credential), suite, documentLoader
  });
  // the Open Badges 3.0 JSON schema wants `proof` as an array; the proof is
  // not part of the signed bytes, so this changes nothing for the signature
  signed.proof = [signed.proof];
  return signed;
}

async function statusList(key, revokedIndexes) {
  const list = await createList({length: STATUS_LIST_LENGTH});
  for(const i of revokedIndexes) {
    list.setStatus(i, true);
  }
  const credential = await createStatusListCredential({
    id: STATUS_LIST_URL, list, statusPurpose: 'revocation'
  });
  credential.issuer = DID;
  credential.validFrom = '2025-01-15T09:00:00Z';
  return sign(credential, key);
}

export async function buildFixtures() {
  const key = await issuerKey();
  return {
    key,
    did: await didDocument(key),
    credential: await sign(unsignedCredential(), key),
    statusList: await statusList(key, []),
    statusListRevoked: await statusList(key, [STATUS_INDEX])
  };
}

// --- an independent eddsa-jcs-2022, with node:crypto ---------------------------

// RFC 8785 JCS for JSON values: JSON.stringify already serialises strings and
// numbers the ECMAScript way JCS prescribes; JCS adds recursive key sorting by
// UTF-16 code units, which is the default sort of JS strings.
export function jcs(value) {
  if(Array.isArray(value)) {
    return '[' + value.map(jcs).join(',') + ']';
  }
  if(value && typeof value === 'object') {
    return '{' + Object.keys(value).sort().map(
      k => JSON.stringify(k) + ':' + jcs(value[k])).join(',') + '}';
  }
  return JSON.stringify(value);
}

const B58 = '123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz';
export function base58btc(bytes) {
  let n = BigInt('0x' + (Buffer.from(bytes).toString('hex') || '0'));
  let s = '';
  while(n > 0n) {
    s = B58[Number(n % 58n)] + s;
    n /= 58n;
  }
  for(const b of bytes) {
    if(b !== 0) {
      break;
    }
    s = '1' + s;
  }
  return s;
}

const sha256 = s => crypto.createHash('sha256').update(s, 'utf8').digest();
// DER prefixes of an Ed25519 PKCS#8 private key and SPKI public key
const PKCS8_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');
const SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');

export function eddsaJcs2022(credential) {
  const proof = [].concat(credential.proof)[0];
  const unsecured = {...credential};
  delete unsecured.proof;
  const proofConfig = {...proof};
  delete proofConfig.proofValue;
  const proofConfigJcs = jcs(proofConfig);
  const documentJcs = jcs(unsecured);
  const proofConfigHash = sha256(proofConfigJcs);
  const documentHash = sha256(documentJcs);
  const hashData = Buffer.concat([proofConfigHash, documentHash]);
  const privateKey = crypto.createPrivateKey({
    key: Buffer.concat([PKCS8_PREFIX, Buffer.from(SEED)]),
    format: 'der', type: 'pkcs8'
  });
  const signature = crypto.sign(null, hashData, privateKey);
  const publicKey = crypto.createPublicKey(privateKey)
    .export({format: 'der', type: 'spki'}).subarray(SPKI_PREFIX.length);
  return {
    proof, proofConfigJcs, documentJcs, proofConfigHash, documentHash,
    hashData, signature, publicKey,
    proofValue: 'z' + base58btc(signature),
    publicKeyMultibase:
      'z' + base58btc(Buffer.concat([Buffer.from([0xed, 0x01]), publicKey]))
  };
}

// --- fixtures on disk ------------------------------------------------------------

const json = v => JSON.stringify(v, null, 2) + '\n';

const FILES = {
  'credential.json': f => json(f.credential),
  'did.json': f => json(f.did),
  'status-list.json': f => json(f.statusList),
  'status-list-revoked.json': f => json(f.statusListRevoked),
  'README.md': f => readme(f)
};

function fence(s) {
  return '```\n' + s + '\n```';
}

function readme(f) {
  const r = eddsaJcs2022(f.credential);
  const byte = Math.floor(STATUS_INDEX / 8);
  const mask = 0x80 >> (STATUS_INDEX % 8);
  return `# Reference credentials for issue 24 (eddsa-jcs-2022)

Written by \`UPDATE_FIXTURES=1 node --test selftest.mjs\`; \`node --test
selftest.mjs\` checks that the libraries still produce exactly these bytes,
that they verify, and recomputes the proof below with node:crypto alone.

| file | what |
| --- | --- |
| credential.json | an \`OpenBadgeCredential\` (VC 2.0 + OB 3.0.3 contexts), signed with a \`DataIntegrityProof\`, cryptosuite \`eddsa-jcs-2022\`, by \`@digitalbazaar/vc\` |
| did.json | the issuer's DID document, served for \`${DID}\` at \`${didWebToUrl(DID).url}\` |
| status-list.json | the issuer's \`BitstringStatusListCredential\` (${STATUS_LIST_LENGTH} entries, purpose revocation), none set; its \`id\` is the credential's \`statusListCredential\` |
| status-list-revoked.json | the same list with bit ${STATUS_INDEX} (the sample's \`statusListIndex\`) set |

Verify them: \`node verify.mjs fixtures/credential.json --did fixtures/did.json
--status-list fixtures/status-list.json --schema --jsonld\`.

## The test key

A TEST key, public so anyone can reproduce the signature. Ed25519 seed
(the 32-byte private key of RFC 8032), hex:

${fence(Buffer.from(SEED).toString('hex'))}

Public key, hex: \`${r.publicKey.toString('hex')}\`

\`publicKeyMultibase\` = \`z\` + base58btc(\`0xed 0x01\` (multicodec
ed25519-pub, varint) + the 32 public-key bytes):
\`${r.publicKeyMultibase}\`

## The eddsa-jcs-2022 algorithm, step by step, for credential.json

W3C "Data Integrity EdDSA Cryptosuites v1.0", section 3.3 (eddsa-jcs-2022).
JCS is RFC 8785; every string below is the exact UTF-8 byte sequence hashed
(no trailing newline). Non-ASCII characters stay as UTF-8, unescaped.

1. The unsecured document is the credential without \`proof\`.
2. The proof configuration is the proof without \`proofValue\`: \`type\`
   \`DataIntegrityProof\`, \`cryptosuite\`, \`created\`,
   \`verificationMethod\`, \`proofPurpose\` \`assertionMethod\`, and
   \`@context\` set to the credential's \`@context\` (the spec copies it
   there, and it stays in the emitted proof).
3. JCS of the proof configuration (${Buffer.byteLength(r.proofConfigJcs)} bytes):

${fence(r.proofConfigJcs)}

   SHA-256: \`${r.proofConfigHash.toString('hex')}\`

4. JCS of the unsecured document (${Buffer.byteLength(r.documentJcs)} bytes):

${fence(r.documentJcs)}

   SHA-256: \`${r.documentHash.toString('hex')}\`

5. hashData = SHA-256(proof configuration) || SHA-256(document) — proof
   configuration hash first, 64 bytes:

${fence(r.hashData.toString('hex'))}

6. signature = Ed25519-sign(seed, hashData) — the 64 bytes of hashData are
   signed as they are (no further hashing; libsodium
   \`crypto_sign_detached\`), 64 bytes:

${fence(r.signature.toString('hex'))}

7. proofValue = \`z\` + base58btc(signature) (multibase base58btc, Bitcoin
   alphabet):

${fence(r.proofValue)}

8. The secured credential is the unsecured one plus
   \`"proof": [ proof configuration + proofValue ]\`. \`proof\` is an array
   because the Open Badges 3.0 JSON schema requires one (a single object
   verifies just as well, but fails the schema); the proof is not part of the
   signed bytes either way.

The narrative holds a quote, a backslash, a newline, a tab and a character
outside the BMP on purpose: JCS writes \`\\"\`, \`\\\\\`, \`\\n\`, \`\\t\` (other
control characters as \`\\u00xx\`, lower-case hex) and everything else, \`≥\`
and \`🎓\` included, as raw UTF-8.

## The status list

- \`encodedList\` = \`u\` + base64url without padding (multibase base64url)
  of the GZIP-compressed bitstring: ${STATUS_LIST_LENGTH} bits,
  ${STATUS_LIST_LENGTH / 8} bytes.
- Index 0 is the most significant bit of the first byte: index
  ${STATUS_INDEX} is byte ${byte}, mask
  \`0x${mask.toString(16).padStart(2, '0')}\`.
- A verifier decompresses whatever gzip stream it gets, so the compressed
  bytes need not match these; the decompressed bits must.
- The status list credential is signed like any credential (same key,
  eddsa-jcs-2022; its proof's \`@context\` is its own \`@context\`,
  \`["${VC_V2_CONTEXT}"]\`), and its \`issuer\` must equal the
  credential's issuer \`id\`, or @digitalbazaar/vc-bitstring-status-list
  refuses it.

## What else the verifier and the schema insist on

- The DID document's \`@context\` starts with \`https://www.w3.org/ns/did/v1\`
  and includes \`https://w3id.org/security/multikey/v1\` (which defines
  \`Multikey\`); the key is listed in \`assertionMethod\`; its
  \`controller\` is the DID, which is the credential's \`issuer.id\`.
- Open Badges 3.0 JSON schema: \`proof\`, \`credentialSubject.identifier\`
  and every \`type\` except \`IdentityObject\`'s are arrays;
  \`credentialStatus\` is one object; \`id\` and \`validFrom\` are required,
  and so are the achievement's \`id\`, \`type\`, \`name\`, \`description\`
  and \`criteria\`.
- \`identityHash\` = \`sha256$\` + hex(SHA-256(UTF-8 of e-mail + salt)); here
  SHA-256(\`${EMAIL}${SALT}\`).
- With \`--jsonld\`, every property must be a term of the contexts (the VC
  2.0 context has no \`@vocab\`): a \`credentialSchema\` of type
  \`1EdTechJsonSchemaValidator2019\` needs the OB extensions context
  \`https://purl.imsglobal.org/spec/ob/v3p0/extensions.json\` as well.
`;
}

function writeFixtures(f) {
  mkdirSync(FIXTURES, {recursive: true});
  for(const [name, render] of Object.entries(FILES)) {
    writeFileSync(path.join(FIXTURES, name), render(f));
  }
}

const readFixture = name =>
  JSON.parse(readFileSync(path.join(FIXTURES, name), 'utf8'));

// --- the tests -------------------------------------------------------------------

const fixtures = await buildFixtures();
if(UPDATE || !existsSync(path.join(FIXTURES, 'credential.json'))) {
  writeFixtures(fixtures);
}
const base = {didDocuments: [fixtures.did]};
const withList = list => ({...base, statusLists: [list]});

test('the committed fixtures are what the libraries produce now', () => {
  for(const [name, render] of Object.entries(FILES)) {
    const want = readFileSync(path.join(FIXTURES, name), 'utf8');
    assert.equal(render(fixtures), want,
      `fixtures/${name} differs; UPDATE_FIXTURES=1 rewrites it`);
  }
});

test('a fresh credential verifies, not revoked, schema valid', async () => {
  const r = await verifyCredential({
    ...withList(readFixture('status-list.json')),
    didDocuments: [readFixture('did.json')],
    credential: readFixture('credential.json'),
    schema: true, jsonld: true
  });
  assert.deepEqual(r, {
    verified: true, errors: [], status: {revoked: false},
    schema: {valid: true, errors: []}, jsonld: {valid: true, errors: []}
  });
});

test('a random key works the same way', async () => {
  const key = await Ed25519Multikey.generate({id: KEY_ID, controller: DID});
  const credential = await sign(unsignedCredential(), key);
  const r = await verifyCredential({
    credential, didDocuments: [await didDocument(key)],
    statusLists: [await statusList(key, [])]
  });
  assert.equal(r.verified, true, r.errors.join('; '));
  // and not with the fixture's DID document (another key)
  const r2 = await verifyCredential({
    credential, ...withList(fixtures.statusList)
  });
  assert.equal(r2.verified, false);
});

test('a changed name does not verify', async () => {
  const credential = structuredClone(fixtures.credential);
  credential.credentialSubject.achievement.name += '!';
  const r = await verifyCredential({
    ...withList(fixtures.statusList), credential
  });
  assert.equal(r.verified, false);
  assert.match(r.errors.join('\n'), /Invalid signature/);
  assert.equal(r.status.revoked, null);
  const top = structuredClone(fixtures.credential);
  top.name = 'Advanced Testing';
  assert.equal((await verifyCredential({
    ...withList(fixtures.statusList), credential: top
  })).verified, false);
});

test('one changed byte of proofValue does not verify', async () => {
  for(const at of [1, 20, fixtures.credential.proof[0].proofValue.length - 1]) {
    const credential = structuredClone(fixtures.credential);
    const pv = credential.proof[0].proofValue;
    const c = pv[at] === '2' ? '3' : '2';
    credential.proof[0].proofValue = pv.slice(0, at) + c + pv.slice(at + 1);
    const r = await verifyCredential({
      ...withList(fixtures.statusList), credential
    });
    assert.equal(r.verified, false, `changed at ${at}`);
  }
});

test('a changed proof option (created) does not verify', async () => {
  const credential = structuredClone(fixtures.credential);
  credential.proof[0].created = '2025-01-15T10:00:01Z';
  assert.equal((await verifyCredential({
    ...withList(fixtures.statusList), credential
  })).verified, false);
});

test('the bit set in the status list: revoked', async () => {
  const r = await verifyCredential({
    ...withList(readFixture('status-list-revoked.json')),
    credential: fixtures.credential
  });
  assert.equal(r.verified, true, r.errors.join('; '));
  assert.equal(r.status.revoked, true);
});

test('a tampered status list does not count', async () => {
  // flip the list to "revoked" without re-signing it
  const list = structuredClone(fixtures.statusList);
  list.credentialSubject.encodedList =
    fixtures.statusListRevoked.credentialSubject.encodedList;
  const r = await verifyCredential({...withList(list),
    credential: fixtures.credential});
  assert.equal(r.verified, false);
  assert.equal(r.status.revoked, null);
  assert.match(r.errors.join('\n'), /BitstringStatusListCredential/);
});

test('a missing status list or DID document fails, offline', async () => {
  const noList = await verifyCredential({
    ...base, credential: fixtures.credential
  });
  assert.equal(noList.verified, false);
  assert.equal(noList.status.revoked, null);
  assert.match(noList.errors.join('\n'), /no local copy/);
  const noDid = await verifyCredential({
    statusLists: [fixtures.statusList], credential: fixtures.credential
  });
  assert.equal(noDid.verified, false);
});

test('the schema check fails without a required field', async () => {
  for(const drop of [c => delete c.validFrom,
    c => delete c.credentialSubject.achievement.criteria,
    c => delete c.credentialSubject.identifier[0].identityHash]) {
    const credential = structuredClone(fixtures.credential);
    drop(credential);
    const r = await verifyCredential({
      ...withList(fixtures.statusList), credential, schema: true
    });
    assert.equal(r.schema.valid, false, String(drop));
    assert.ok(r.schema.errors.some(e => /required/.test(e)), r.schema.errors);
    // and the proof covers the field too
    assert.equal(r.verified, false);
  }
  const single = structuredClone(fixtures.credential);
  single.proof = single.proof[0];
  const r = await verifyCredential({
    ...withList(fixtures.statusList), credential: single, schema: true
  });
  assert.equal(r.verified, true, 'a single proof object verifies');
  assert.equal(r.schema.valid, false, 'but the OB schema wants an array');
});

test('eddsa-jcs-2022 recomputed with node:crypto matches the library',
  async () => {
    const r = eddsaJcs2022(fixtures.credential);
    assert.equal(r.proofValue, r.proof.proofValue);
    assert.equal(r.publicKeyMultibase,
      fixtures.did.verificationMethod[0].publicKeyMultibase);
    assert.deepEqual(r.proof['@context'], fixtures.credential['@context']);
    // and node:crypto verifies the library's signature over hashData
    const publicKey = crypto.createPublicKey({
      key: Buffer.concat([SPKI_PREFIX, r.publicKey]), format: 'der',
      type: 'spki'
    });
    assert.ok(crypto.verify(null, r.hashData, publicKey, r.signature));
    // the status list too
    const s = eddsaJcs2022(fixtures.statusList);
    assert.equal(s.proofValue, s.proof.proofValue);
  });

test('the status bit is where the README says', async () => {
  const {encodedList} = fixtures.statusListRevoked.credentialSubject;
  assert.equal(encodedList[0], 'u');
  const bits = (await import('node:zlib')).gunzipSync(
    Buffer.from(encodedList.slice(1), 'base64url'));
  assert.equal(bits.length, STATUS_LIST_LENGTH / 8);
  const byte = Math.floor(STATUS_INDEX / 8);
  assert.equal(bits[byte], 0x80 >> (STATUS_INDEX % 8));
  assert.equal(bits.reduce((a, b) => a + b, 0), bits[byte]);
});

test('did:web to URL', () => {
  assert.deepEqual(didWebToUrl('did:web:example.test'),
    {host: 'example.test', url: 'https://example.test/.well-known/did.json'});
  assert.deepEqual(didWebToUrl('did:web:127.0.0.1%3A8080'), {
    host: '127.0.0.1:8080',
    url: 'https://127.0.0.1:8080/.well-known/did.json'
  });
  assert.deepEqual(didWebToUrl('did:web:example.test:issuers:42'), {
    host: 'example.test', url: 'https://example.test/issuers/42/did.json'
  });
  assert.throws(() => didWebToUrl('did:key:z6Mk'));
});

test('the loader: contexts from packages, nothing from the network',
  async () => {
    const load = makeDocumentLoader({didDocuments: [fixtures.did]});
    for(const url of [VC_V2_CONTEXT, OB_V3_CONTEXT,
      'https://w3id.org/security/multikey/v1',
      'https://w3id.org/security/data-integrity/v2',
      'https://www.w3.org/ns/did/v1',
      'https://www.w3.org/ns/credentials/status/v1']) {
      assert.ok((await load(url)).document['@context'], url);
    }
    const vm = (await load(KEY_ID)).document;
    assert.equal(vm.type, 'Multikey');
    assert.equal(vm.controller, DID);
    await assert.rejects(load(`${DID}#key-2`), /not in the DID document/);
    await assert.rejects(load('https://example.test/status/1'),
      /no local copy/);
    await assert.rejects(load('https://schema.org/'), /no local copy/);
    await assert.rejects(load('did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK'),
      /only did:web/);
  });

// A stand-in for batchd: serves the DID document and the status list on
// 127.0.0.1, and counts requests.
async function withServer(routes, fn) {
  const hits = [];
  const server = http.createServer((req, res) => {
    hits.push(req.url);
    const body = routes[req.url];
    if(body === undefined) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, {'content-type': 'application/json'})
      .end(JSON.stringify(body));
  });
  await new Promise(ok => server.listen(0, '127.0.0.1', ok));
  try {
    return await fn(`http://127.0.0.1:${server.address().port}`, hits);
  } finally {
    await new Promise(ok => server.close(ok));
  }
}

test('--fetch-base: DID document and status list from a local server',
  async () => {
    const routes = {
      '/.well-known/did.json': fixtures.did,
      '/status/1': fixtures.statusListRevoked
    };
    await withServer(routes, async (fetchBase, hits) => {
      const r = await verifyCredential({
        credential: fixtures.credential, fetchBase, schema: true
      });
      assert.equal(r.verified, true, r.errors.join('; '));
      assert.equal(r.status.revoked, true);
      assert.deepEqual([...new Set(hits)].sort(),
        ['/.well-known/did.json', '/status/1']);
      // a status list on another host is not fetched
      const credential = structuredClone(fixtures.credential);
      credential.credentialStatus.statusListCredential =
        'https://elsewhere.test/status/1';
      hits.length = 0;
      const r2 = await verifyCredential({credential, fetchBase});
      assert.equal(r2.verified, false);
      assert.ok(!hits.includes('/status/1'));
    });
    await assert.rejects(verifyCredential({
      credential: fixtures.credential, fetchBase: 'http://192.0.2.1:80'
    }), /loopback/);
  });

// the command line, as the integration tests call it
const run = promisify(execFile);
async function cli(args, input) {
  const p = run(process.execPath, [path.join(HERE, 'verify.mjs'), ...args],
    {cwd: HERE});
  if(input !== undefined) {
    p.child.stdin.end(input);
  }
  try {
    const {stdout} = await p;
    return {code: 0, out: JSON.parse(stdout)};
  } catch(e) {
    return {code: e.code, stderr: e.stderr, stdout: e.stdout};
  }
}

test('the command line', async () => {
  const ok = await cli(['fixtures/credential.json', '--did', 'fixtures/did.json',
    '--status-list', 'fixtures/status-list-revoked.json', '--schema']);
  assert.equal(ok.code, 0);
  assert.deepEqual(ok.out, {
    verified: true, errors: [], status: {revoked: true},
    schema: {valid: true, errors: []}, jsonld: {valid: null, errors: []}
  });
  const tampered = structuredClone(fixtures.credential);
  tampered.name = 'x';
  const bad = await cli(['-', '--did', 'fixtures/did.json', '--status-list',
    'fixtures/status-list.json'], JSON.stringify(tampered));
  assert.equal(bad.code, 0);
  assert.equal(bad.out.verified, false);
  await withServer({'/.well-known/did.json': fixtures.did,
    '/status/1': fixtures.statusList}, async fetchBase => {
    const f = await cli(['fixtures/credential.json', '--fetch-base', fetchBase]);
    assert.equal(f.code, 0);
    assert.equal(f.out.verified, true, f.out.errors.join('; '));
    assert.equal(f.out.status.revoked, false);
  });
  const usageErrors = [[], ['--bogus', 'fixtures/credential.json'],
    ['no-such-file.json'], ['package.json', 'package.json'],
    ['fixtures/credential.json', '--did'],
    ['fixtures/credential.json', '--fetch-base', 'http://192.0.2.1'],
    ['fixtures/README.md']];
  const results = await Promise.all(usageErrors.map(args => cli(args)));
  results.forEach((u, i) => {
    assert.equal(u.code, 2, `${usageErrors[i].join(' ')}: ${u.stdout}`);
    assert.match(u.stderr, /usage:/);
  });
});

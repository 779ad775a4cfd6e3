// gs1check.cjs: checks GS1 Digital Link URIs and linksets with
// independent implementations: the npm package digital-link.js (GS1's
// Digital Link grammar and GS1's reference compression) and GS1's linkset
// JSON schema (vendor/gs1, validated with ajv).
//
//   node gs1check.cjs < REQUEST.json
//
// REQUEST: {"uris": [URI...], "linksets": [DOC...], "compress": [URI...],
//           "decompress": [URI...]}, every member optional.
// Output, one line: {"uris": [{"uri", "valid", "json"}], "linksets":
//   [{"valid", "errors"}], "compressed": [URI], "decompressed": [URI]}.
// Exit status 0 when the run worked (whatever the verdicts), 2 on bad input.
'use strict';

const fs = require('fs');
const path = require('path');
const { DigitalLink, Utils } = require('digital-link.js');
const Ajv = require('ajv');

function main() {
  let req;
  try {
    req = JSON.parse(fs.readFileSync(0, 'utf8'));
  } catch (e) {
    process.stderr.write('gs1check: standard input is not JSON: ' + e.message + '\n');
    process.exit(2);
  }
  const schema = JSON.parse(fs.readFileSync(path.join(__dirname, 'vendor', 'gs1', 'gs1-linkset-schema.json'), 'utf8'));
  // the schema has annotations ajv does not know ("name", "@id"): not strict
  const validate = new Ajv({ strict: false, allErrors: true }).compile(schema);
  const out = {};
  out.uris = (req.uris || []).map((uri) => {
    try {
      const dl = DigitalLink(uri);
      return { uri, valid: dl.isValid(), json: JSON.parse(dl.toJsonString()) };
    } catch (e) {
      return { uri, valid: false, error: e.message };
    }
  });
  out.linksets = (req.linksets || []).map((doc) => {
    const valid = validate(doc);
    return { valid, errors: valid ? [] : validate.errors.map((e) => `${e.instancePath} ${e.message}`) };
  });
  out.compressed = (req.compress || []).map((u) => Utils.compressWebUri(u));
  out.decompressed = (req.decompress || []).map((u) => Utils.decompressWebUri(u));
  process.stdout.write(JSON.stringify(out) + '\n');
}

main();

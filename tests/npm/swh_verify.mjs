// swh_verify.mjs SECRET HEADERS.json BODY: checks one webhook delivery with
// the Standard Webhooks reference library (npm standardwebhooks), not with
// our code. HEADERS.json is an object of the request's headers (any case);
// BODY is the raw request body. Prints "ok" when webhook-id,
// webhook-timestamp (within the library's 5 minutes) and webhook-signature
// verify under SECRET ("whsec_..."), else "false" (and the reason on
// standard error). Exit status 0 either way, 2 on a usage error.
import { readFileSync } from 'node:fs';
import { Webhook } from 'standardwebhooks';

const [secret, headersPath, bodyPath] = process.argv.slice(2);
if (!secret || !headersPath || !bodyPath) {
  console.error('usage: node swh_verify.mjs SECRET HEADERS.json BODY');
  process.exit(2);
}
let headers, body;
try {
  headers = JSON.parse(readFileSync(headersPath, 'utf8'));
  body = readFileSync(bodyPath);
} catch (e) {
  console.error(String(e?.message ?? e));
  process.exit(2);
}
try {
  new Webhook(secret).verify(body, headers);
  console.log('ok');
} catch (e) {
  console.error(String(e?.message ?? e));
  console.log('false');
}

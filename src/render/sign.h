/* sign.h: Ed25519 certificate signatures (libsodium), the signing key file
 * and the canonical record encoding.
 *
 * KEY FILE (BATCHD_SIGNING_KEY_FILE, read and created by keyfile.h): one
 * line of text,
 *     "batchd-ed25519-seed-v1 " + 64 lower-case hex digits (the 32-byte
 *     Ed25519 seed) + "\n"
 * and nothing else. When the file does not exist it is created with a new
 * random seed: written to a temporary file in the same directory with mode
 * 0600, fsynced, then linked into place with link(2), which fails if
 * another process created the file meanwhile (that process's key is then
 * loaded instead): several processes starting at once end up with one key.
 * An existing file that is not exactly this format, or that group or others
 * may read or write (mode & 077), is refused: the server must not sign with
 * a key it cannot trust or that others could have read.
 *
 * KEY ID: "ed25519:" + the first 16 hex digits of SHA-256(public key),
 * e.g. "ed25519:3f1c9a0b7d2e4f61". Verifiers pick the key by this id from
 * /.well-known/batchd-keys.json.
 *
 * CANONICAL ENCODING of a record (a JSON value), the bytes that are signed:
 *  - no white space anywhere outside strings;
 *  - object members sorted by key, comparing the keys' UTF-8 bytes (the same
 *    order as by Unicode code points); duplicate keys cannot occur (jansson);
 *  - strings: UTF-8 as is, except '"' -> \", '\' -> \\, U+0008 -> \b,
 *    U+000C -> \f, U+000A -> \n, U+000D -> \r, U+0009 -> \t, and the other
 *    characters below U+0020 -> \u00XX with lower-case hex; nothing else is
 *    escaped (not '/', not non-ASCII, not U+007F);
 *  - integers in decimal without leading zeros or '+' (-0 is 0); reals are
 *    refused (a record holds no floating point: their text is not unique);
 *  - true, false, null as such; arrays in order.
 * This is what Python's json.dumps(v, sort_keys=True, separators=(",", ":"),
 * ensure_ascii=False) produces for such values, and RFC 8785 (JCS) for
 * records without non-BMP keys, so any verifier can rebuild the bytes.
 * The signature is Ed25519 (RFC 8032, pure, no prehash) over those bytes,
 * published base64 (standard alphabet, padded).
 *
 * THREADS: a loaded key is immutable; sign and verify from any thread.
 */
#ifndef BD_SIGN_H
#define BD_SIGN_H

#include "buf.h"

#include <jansson.h>

#define BD_SIGN_KEY_ID_LEN 24 /* "ed25519:" + 16 hex, without the NUL */

typedef struct {
  unsigned char pk[32];                /* public key */
  unsigned char sk[64];                /* secret key (libsodium layout: seed || pk) */
  char key_id[BD_SIGN_KEY_ID_LEN + 1]; /* see above */
} bd_sign_key_t;

/* Loads the key from path, creating the file (see above) when it does not
 * exist. 0 on success; -1 with a message naming the file in err. Blocking
 * file I/O: call it at start-up, before the loop runs (or on a worker). */
int bd_sign_key_load_or_create(const char *path, bd_sign_key_t *key, char *err,
                               size_t errsz) BD_MUSTCHECK;
/* The key of a 32-byte seed (tests, tools). */
void bd_sign_key_from_seed(const unsigned char seed[32], bd_sign_key_t *key);

/* Appends the canonical encoding of v to *out. 0; -1 with err set for a
 * real number or invalid UTF-8 in a key. */
int bd_sign_canonical(const json_t *v, bd_buf_t *out, char *err, size_t errsz) BD_MUSTCHECK;

/* Signs the canonical encoding of record; appends the base64 signature to
 * *sig_b64. 0, or -1 with err set (as bd_sign_canonical). */
int bd_sign_record(const bd_sign_key_t *key, const json_t *record, bd_buf_t *sig_b64, char *err,
                   size_t errsz) BD_MUSTCHECK;
/* Whether sig_b64 is a valid signature by pk over record's canonical bytes. */
bool bd_sign_verify_record(const unsigned char pk[32], const json_t *record, const char *sig_b64);

#endif

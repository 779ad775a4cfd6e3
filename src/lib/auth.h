/* auth.h: API tokens and HS256 JWT verification. Any thread; no state.
 *
 * Tokens: "<prefix><id>_<secret>" where prefix is a surface's literal (e.g.
 * "qr_live_", "qr_test_", "bd_"), id is 12 base62 characters (stored in
 * clear, indexed, used for lookup) and secret is 32 base62 characters
 * (~190 bits). Only SHA-256(secret) is stored; presented secrets are hashed
 * and compared with sodium_memcmp (constant time).
 */
#ifndef BD_AUTH_H
#define BD_AUTH_H

#include "buf.h"
#include <jansson.h>

#define BD_TOKEN_ID_LEN 12
#define BD_TOKEN_SECRET_LEN 32
#define BD_TOKEN_MAX 96

typedef struct {
  char token[BD_TOKEN_MAX];           /* the full token, shown once */
  char id[BD_TOKEN_ID_LEN + 1];       /* public lookup id */
  char secret_hash[65];               /* hex SHA-256 of the secret, to store */
} bd_token_t;

/* Generates a new token with the given prefix (at most 40 bytes; longer
 * aborts, prefixes are literals). */
void bd_token_generate(const char *prefix, bd_token_t *out);

/* Splits a presented token. Returns false unless it is exactly
 * prefix + id + '_' + secret with the right lengths and alphabet. */
bool bd_token_parse(bd_str_t token, const char *prefix, bd_str_t *id, bd_str_t *secret);

/* Hashes `secret` and compares it with the stored hex hash in constant time. */
bool bd_token_check(bd_str_t secret, const char *stored_hash_hex);

/* Extracts the credential from "Authorization: Bearer <x>" (case-insensitive
 * scheme, single space or more). Returns false if absent or malformed: the
 * credential must be non-empty visible ASCII (no spaces, controls or
 * non-ASCII bytes). *credential points into authorization. */
bool bd_bearer(bd_str_t authorization, bd_str_t *credential);

/* JWT (RFC 7519) with HS256 only. */
enum {
  BD_JWT_OK = 0,
  BD_JWT_EMALFORMED,  /* not three base64url parts, bad JSON, ... */
  BD_JWT_EALG,        /* header alg is not exactly "HS256" (incl. "none") */
  BD_JWT_ESIG,        /* signature mismatch */
  BD_JWT_EEXP,        /* exp missing, not a number, or <= now - leeway */
  BD_JWT_ENBF,        /* nbf present and > now + leeway */
};
/* Verifies and, on success, stores the claims object in *claims (caller
 * json_decref's it); *claims is NULL on failure. now_s is Unix seconds;
 * leeway_s (negative = 0) tolerates clock skew. Headers or claims with
 * duplicate names, and headers with "crit", are EMALFORMED; an empty key
 * verifies nothing (ESIG). */
int bd_jwt_verify(bd_str_t jwt, const uint8_t *key, size_t keylen, int64_t now_s, int64_t leeway_s,
                  json_t **claims) BD_MUSTCHECK;
const char *bd_jwt_strerror(int err);
/* Signs claims with HS256 (header {"alg":"HS256","typ":"JWT"}); appends to out. */
void bd_jwt_sign(bd_buf_t *out, json_t *claims, const uint8_t *key, size_t keylen);

#endif

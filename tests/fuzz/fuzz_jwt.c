/* fuzz_jwt: HS256 JWT verification (src/lib/auth.h) and the token and bearer
 * parsers used by every authenticated request.
 *
 * A token the fuzzer makes verify under the fixed key must carry the
 * claims it was checked against: alg exactly HS256 (a forged signature is
 * out of reach, so success means the fuzzer found a token signed by us or
 * a bypass), exp in the future. To reach the claim checks the input may
 * also be a claims JSON object (first byte 'C'), which is signed with the
 * real key and then verified: exp/nbf handling is then exercised on
 * arbitrary claims.
 */
#include "auth.h"
#include "buf.h"

#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const uint8_t KEY[] = "fuzz-jwt-secret-0123456789abcdef";
#define NOW 1800000000

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  if (sodium_init() < 0) abort();
  return 0;
}

static void verify(const char *p, size_t n) {
  json_t *claims = NULL;
  int rc = bd_jwt_verify((bd_str_t){p, n}, KEY, sizeof KEY - 1, NOW, 30, &claims);
  (void)bd_jwt_strerror(rc);
  if (rc == BD_JWT_OK) {
    if (!json_is_object(claims)) abort();
    json_t *exp = json_object_get(claims, "exp");
    if (!json_is_number(exp) || json_number_value(exp) <= NOW - 30) {
      fprintf(stderr, "accepted a token without a valid exp\n");
      abort();
    }
    json_t *nbf = json_object_get(claims, "nbf");
    if (nbf && json_is_number(nbf) && json_number_value(nbf) > NOW + 30) {
      fprintf(stderr, "accepted a token before its nbf\n");
      abort();
    }
  } else if (claims) {
    abort(); /* claims only on success */
  }
  json_decref(claims);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > 8192) return 0;
  const char *p = (const char *)data;
  if (size > 1 && p[0] == 'C') {
    json_t *claims = json_loadb(p + 1, size - 1, 0, NULL);
    if (json_is_object(claims)) {
      bd_buf_t tok = BD_BUF_INIT;
      bd_jwt_sign(&tok, claims, KEY, sizeof KEY - 1);
      verify(tok.data, tok.len);
      bd_buf_free(&tok);
    }
    json_decref(claims);
    return 0;
  }
  verify(p, size);
  bd_str_t cred;
  (void)bd_bearer((bd_str_t){p, size}, &cred);
  bd_str_t id, secret;
  if (bd_token_parse((bd_str_t){p, size}, "qr_live_", &id, &secret)) {
    if (id.p < p || id.p + id.len > p + size || secret.p < p || secret.p + secret.len > p + size)
      abort();
    (void)bd_token_check(secret,
                         "0000000000000000000000000000000000000000000000000000000000000000");
  }
  return 0;
}

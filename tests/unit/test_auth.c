/* test_auth.c: API tokens, Bearer parsing and HS256 JWT verification. */
#include "auth.h"
#include "unit.h"
#include "util.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>

static bool b62(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

static void test_token_roundtrip(void) {
  const char *prefixes[] = {"qr_live_", "qr_test_", "bd_", "", "p234567890123456789012345678901234567890"};
  for (size_t k = 0; k < BD_ARRAY_LEN(prefixes); k++) {
    const char *px = prefixes[k];
    size_t pl = strlen(px);
    bd_token_t t;
    bd_token_generate(px, &t);
    CHECK_INT(strlen(t.token), pl + BD_TOKEN_ID_LEN + 1 + BD_TOKEN_SECRET_LEN);
    CHECK(strncmp(t.token, px, pl) == 0);
    CHECK_INT(strlen(t.id), BD_TOKEN_ID_LEN);
    CHECK(memcmp(t.token + pl, t.id, BD_TOKEN_ID_LEN) == 0);
    CHECK(t.token[pl + BD_TOKEN_ID_LEN] == '_');
    for (size_t i = 0; i < BD_TOKEN_ID_LEN; i++) CHECK(b62(t.id[i]));
    const char *sec = t.token + pl + BD_TOKEN_ID_LEN + 1;
    for (size_t i = 0; i < BD_TOKEN_SECRET_LEN; i++) CHECK(b62(sec[i]));
    /* the stored hash is exactly SHA-256 of the secret part */
    char h[65];
    bd_sha256_hex(h, sec, BD_TOKEN_SECRET_LEN);
    CHECK_STR(t.secret_hash, h);
    CHECK(strstr(t.token, t.secret_hash) == NULL);

    bd_str_t id, secret;
    CHECK(bd_token_parse(bd_str_c(t.token), px, &id, &secret));
    CHECK(bd_str_eq(id, t.id));
    CHECK(secret.p == sec && secret.len == BD_TOKEN_SECRET_LEN);
    CHECK(bd_token_check(secret, t.secret_hash));
  }
  /* tokens are unique */
  bd_token_t a, b;
  bd_token_generate("qr_live_", &a);
  for (int i = 0; i < 100; i++) {
    bd_token_generate("qr_live_", &b);
    CHECK(strcmp(a.token, b.token) != 0 && strcmp(a.id, b.id) != 0);
  }
  bd_str_t id, secret;
  CHECK(bd_token_parse(bd_str_c(a.token), "qr_live_", &id, &secret));
  CHECK(!bd_token_check(secret, b.secret_hash));
}

static void test_token_rejects(void) {
  bd_token_t t;
  bd_token_generate("qr_test_", &t);
  const size_t pl = 8, len = pl + BD_TOKEN_ID_LEN + 1 + BD_TOKEN_SECRET_LEN;
  bd_str_t id = {NULL, 0}, secret = {NULL, 0};
  char buf[BD_TOKEN_MAX + 4];
  CHECK(!bd_token_parse(bd_str_c(t.token), "qr_live_", &id, &secret)); /* other prefix */
  CHECK(!bd_token_parse(bd_str_c(t.token), "qr_", &id, &secret));      /* shorter prefix */
  CHECK(!bd_token_parse(bd_str_c(t.token + 3), "qr_test_", &id, &secret));
  snprintf(buf, sizeof buf, "%sX", t.token);
  CHECK(!bd_token_parse(bd_str_c(buf), "qr_test_", &id, &secret)); /* trailing byte */
  CHECK(!bd_token_parse((bd_str_t){buf, len + 1}, "qr_test_", &id, &secret));
  snprintf(buf, sizeof buf, "%s\n", t.token);
  CHECK(!bd_token_parse(bd_str_c(buf), "qr_test_", &id, &secret)); /* trailing newline */
  CHECK(!bd_token_parse((bd_str_t){t.token, len - 1}, "qr_test_", &id, &secret)); /* short */
  /* a non-base62 byte anywhere in the id or the secret */
  const char bad_chars[] = {'-', '_', '+', '/', '=', ' ', '\0', (char)0xc3};
  for (size_t pos = pl; pos < len; pos++) {
    if (pos == pl + BD_TOKEN_ID_LEN) continue;
    for (size_t k = 0; k < sizeof bad_chars; k++) {
      memcpy(buf, t.token, len);
      buf[pos] = bad_chars[k];
      CHECK(!bd_token_parse((bd_str_t){buf, len}, "qr_test_", &id, &secret));
    }
  }
  /* the separator must be '_' */
  memcpy(buf, t.token, len);
  buf[pl + BD_TOKEN_ID_LEN] = 'x';
  CHECK(!bd_token_parse((bd_str_t){buf, len}, "qr_test_", &id, &secret));
  /* id and secret lengths: moving the separator keeps the total length */
  memcpy(buf, t.token, len);
  buf[pl + BD_TOKEN_ID_LEN] = 'x';
  buf[pl + BD_TOKEN_ID_LEN + 1] = '_';
  CHECK(!bd_token_parse((bd_str_t){buf, len}, "qr_test_", &id, &secret));
  CHECK(!bd_token_parse(bd_str_c(""), "qr_test_", &id, &secret));
  CHECK(!bd_token_parse((bd_str_t){NULL, 0}, "qr_test_", &id, &secret));
  /* failed parses leave the outputs alone */
  CHECK(id.p == NULL && secret.p == NULL);
}

static void test_token_check(void) {
  /* SHA-256("abc") */
  const char *h = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
  CHECK(bd_token_check(bd_str_c("abc"), h));
  CHECK(bd_token_check(bd_str_c("abc"), "BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD"));
  CHECK(!bd_token_check(bd_str_c("abd"), h));
  CHECK(!bd_token_check(bd_str_c("ab"), h));
  CHECK(!bd_token_check(bd_str_c("abcd"), h));
  CHECK(!bd_token_check((bd_str_t){"abcd", 3}, "x") );
  CHECK(bd_token_check((bd_str_t){"abcd", 3}, h)); /* the length bounds the secret */
  CHECK(bd_token_check((bd_str_t){NULL, 0}, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"));
  /* malformed stored hashes never match */
  CHECK(!bd_token_check(bd_str_c("abc"), "short"));
  CHECK(!bd_token_check(bd_str_c("abc"), ""));
  CHECK(!bd_token_check(bd_str_c("abc"), NULL));
  CHECK(!bd_token_check(bd_str_c("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad00"));
  CHECK(!bd_token_check(bd_str_c("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015aZ"));
  CHECK(!bd_token_check(bd_str_c("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015a "));
}

static void bearer_ok(const char *h, const char *want) {
  bd_str_t c = {NULL, 0};
  bool ok = bd_bearer(bd_str_c(h), &c);
  if (!ok) fprintf(stderr, "  bd_bearer rejected \"%s\"\n", h);
  CHECK(ok && bd_str_eq(c, want));
}

static void bearer_bad(const char *h) {
  bd_str_t c = {NULL, 0};
  bool ok = bd_bearer(bd_str_c(h), &c);
  if (ok) fprintf(stderr, "  bd_bearer accepted \"%s\"\n", h);
  CHECK(!ok);
}

static void test_bearer(void) {
  bearer_ok("Bearer abc.def", "abc.def");
  bearer_ok("bearer   tok  ", "tok");
  bearer_ok("BEARER tok", "tok");
  bearer_ok("bEaReR tok", "tok");
  bearer_ok("Bearer\ttok", "tok");
  bearer_ok("Bearer qr_live_ABCdef123456_abcdefghijklmnopqrstuvwxyz012345",
            "qr_live_ABCdef123456_abcdefghijklmnopqrstuvwxyz012345");
  bearer_ok("Bearer eyJhbGciOiJIUzI1NiJ9.eyJleHAiOjF9.sig-_", "eyJhbGciOiJIUzI1NiJ9.eyJleHAiOjF9.sig-_");
  bearer_ok("Bearer a+b/c~==", "a+b/c~==");
  bearer_ok("Bearer 1|AbCdEf", "1|AbCdEf"); /* Sanctum-style ids are not b64token but are fine */
  bearer_bad("");
  bearer_bad("Basic dXNlcjpwYXNz");
  bearer_bad("Bearer");
  bearer_bad("Bearer ");
  bearer_bad("Bearer    ");
  bearer_bad("Bearer a b");
  bearer_bad("Bearerabc");
  bearer_bad(" Bearer abc");
  bearer_bad("Bear abc");
  bearer_bad("Token abc");
  bearer_bad("Bearer a\x01" "b");
  bearer_bad("Bearer a\x7f");
  bearer_bad("Bearer caf\xc3\xa9");
  bearer_bad("Bearer a\r\nX-Injected: 1");
  bearer_bad("Bearer a\tb");
  bd_str_t c;
  CHECK(!bd_bearer((bd_str_t){NULL, 0}, &c));
  CHECK(!bd_bearer((bd_str_t){"Bearer a\0b", 10}, &c)); /* embedded NUL */
  /* the credential points into the header value */
  const char *hv = "Bearer  xyz";
  CHECK(bd_bearer(bd_str_c(hv), &c) && c.p == hv + 8 && c.len == 3);
}

static const char *KEY = "secret-key-for-tests";

static char *b64url(const void *p, size_t n) {
  bd_buf_t b = BD_BUF_INIT;
  bd_b64url_encode(&b, p, n);
  return bd_buf_detach(&b, NULL);
}

/* Builds a JWT independently of bd_jwt_sign: header and payload given as
 * JSON text, HMAC computed here with libsodium's one-shot API. */
static char *make_jwt(const char *header, const char *payload, const char *key) {
  bd_buf_t b = BD_BUF_INIT;
  bd_b64url_encode(&b, header, strlen(header));
  bd_buf_putc(&b, '.');
  bd_b64url_encode(&b, payload, strlen(payload));
  unsigned char k[crypto_auth_hmacsha256_KEYBYTES] = {0};
  unsigned char mac[crypto_auth_hmacsha256_BYTES];
  /* crypto_auth_hmacsha256 takes a 32-byte key; HMAC zero-pads shorter
   * keys, so copying a short key into a zeroed array is the same MAC. */
  memcpy(k, key, strlen(key) < sizeof k ? strlen(key) : sizeof k);
  crypto_auth_hmacsha256(mac, (const unsigned char *)b.data, b.len, k);
  bd_buf_putc(&b, '.');
  bd_b64url_encode(&b, mac, sizeof mac);
  return bd_buf_detach(&b, NULL);
}

static int verify(const char *jwt, int64_t now, json_t **claims) {
  return bd_jwt_verify(bd_str_c(jwt), (const uint8_t *)KEY, strlen(KEY), now, 0, claims);
}

/* verify and drop the claims */
static int verify0(const char *jwt, int64_t now) {
  json_t *c = (json_t *)1;
  int rc = verify(jwt, now, &c);
  CHECK((rc == BD_JWT_OK) == (c != NULL));
  json_decref(c);
  return rc;
}

#define HS256 "{\"alg\":\"HS256\",\"typ\":\"JWT\"}"

static void test_jwt_vectors(void) {
  /* RFC 7515 Appendix A.1: the HS256 example, with its 64-byte key. */
  static const char *a1 =
      "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9."
      "eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ."
      "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
  bd_buf_t key = BD_BUF_INIT;
  CHECK(bd_b64url_decode(&key, "AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow",
                         86));
  CHECK_INT(key.len, 64);
  json_t *c = NULL;
  CHECK_INT(bd_jwt_verify(bd_str_c(a1), (uint8_t *)key.data, key.len, 1300819379, 0, &c), BD_JWT_OK);
  CHECK(c && !strcmp(json_string_value(json_object_get(c, "iss")), "joe"));
  CHECK(json_is_true(json_object_get(c, "http://example.com/is_root")));
  json_decref(c);
  CHECK_INT(bd_jwt_verify(bd_str_c(a1), (uint8_t *)key.data, key.len, 1300819380, 0, &c), BD_JWT_EEXP);
  CHECK(c == NULL);
  key.data[0] ^= 1;
  CHECK_INT(bd_jwt_verify(bd_str_c(a1), (uint8_t *)key.data, key.len, 1300819379, 0, &c), BD_JWT_ESIG);
  bd_buf_free(&key);

  /* A token computed with Python's hmac module (sorted, compact claims):
   * it verifies, and bd_jwt_sign reproduces it byte for byte. */
  static const char *py =
      "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."
      "eyJleHAiOjE5MDAwMDAwMDAsInJvbGUiOiJ2aWV3ZXIiLCJzdWIiOiJ1c2VyLTQyIn0."
      "Paor3brkk1F5U_W-4LJKp2fwmCYE_JtMRythzcrhiHg";
  const char *k2 = "batchd-unit-test-key";
  CHECK_INT(bd_jwt_verify(bd_str_c(py), (const uint8_t *)k2, strlen(k2), 1800000000, 0, &c), BD_JWT_OK);
  CHECK(c && !strcmp(json_string_value(json_object_get(c, "role")), "viewer"));
  json_decref(c);
  json_t *claims = json_pack("{s:s, s:s, s:I}", "sub", "user-42", "role", "viewer", "exp", (json_int_t)1900000000);
  bd_buf_t b = BD_BUF_INIT;
  bd_jwt_sign(&b, claims, (const uint8_t *)k2, strlen(k2));
  CHECK_STR(b.data, py);
  bd_buf_free(&b);
  json_decref(claims);

  /* the jwt.io example has no exp: the signature is right (not ESIG), the
   * missing exp is what fails */
  static const char *jwtio = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."
                             "eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ."
                             "SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c";
  const char *k3 = "your-256-bit-secret";
  CHECK_INT(bd_jwt_verify(bd_str_c(jwtio), (const uint8_t *)k3, strlen(k3), 1516239022, 0, &c), BD_JWT_EEXP);
  CHECK_INT(bd_jwt_verify(bd_str_c(jwtio), (const uint8_t *)KEY, strlen(KEY), 1516239022, 0, &c), BD_JWT_ESIG);
}

static void test_jwt_valid(void) {
  char *t = make_jwt(HS256, "{\"sub\":\"u1\",\"exp\":2000}", KEY);
  json_t *c = NULL;
  CHECK_INT(verify(t, 1000, &c), BD_JWT_OK);
  CHECK(c && !strcmp(json_string_value(json_object_get(c, "sub")), "u1"));
  json_decref(c);
  CHECK_INT(verify0(t, 1999), BD_JWT_OK);
  free(t);
  /* header without typ, extra header fields, real exp, nbf in the past */
  t = make_jwt("{\"alg\":\"HS256\",\"kid\":\"k1\"}", "{\"exp\":2000.5,\"nbf\":999}", KEY);
  CHECK_INT(verify0(t, 1000), BD_JWT_OK);
  CHECK_INT(verify0(t, 2000), BD_JWT_OK);
  CHECK_INT(verify0(t, 2001), BD_JWT_EEXP);
  free(t);
  /* bd_jwt_sign output verifies, with any key length */
  const char *keys[] = {"k", KEY, "a-key-that-is-longer-than-the-sha256-block-size-of-sixty-four-bytes-for-hmac"};
  for (size_t i = 0; i < BD_ARRAY_LEN(keys); i++) {
    json_t *claims = json_pack("{s:s, s:I, s:[i,i]}", "sub", "u2", "exp", (json_int_t)5000, "n", 1, 2);
    bd_buf_t b = BD_BUF_INIT;
    bd_buf_puts(&b, "ignored-prefix:"); /* sign appends */
    bd_jwt_sign(&b, claims, (const uint8_t *)keys[i], strlen(keys[i]));
    const char *tok = b.data + 15;
    CHECK_INT(bd_jwt_verify(bd_str_c(tok), (const uint8_t *)keys[i], strlen(keys[i]), 1000, 0, &c), BD_JWT_OK);
    CHECK(json_equal(c, claims));
    json_decref(c);
    CHECK_INT(bd_jwt_verify(bd_str_c(tok), (const uint8_t *)"other", 5, 1000, 0, &c), BD_JWT_ESIG);
    /* an independently built token with the same header and claims is identical */
    if (strlen(keys[i]) <= 32) {
      char *ind = make_jwt(HS256, "{\"exp\":5000,\"n\":[1,2],\"sub\":\"u2\"}", keys[i]);
      CHECK_STR(tok, ind);
      free(ind);
    }
    bd_buf_free(&b);
    json_decref(claims);
  }
}

static void test_jwt_time(void) {
  json_t *c = NULL;
  char *t;
  /* exp: expired when exp <= now - leeway */
  t = make_jwt(HS256, "{\"exp\":1000}", KEY);
  CHECK_INT(verify0(t, 999), BD_JWT_OK);
  CHECK_INT(verify0(t, 1000), BD_JWT_EEXP);
  CHECK_INT(verify0(t, 5000), BD_JWT_EEXP);
  CHECK_INT(bd_jwt_verify(bd_str_c(t), (const uint8_t *)KEY, strlen(KEY), 1004, 5, &c), BD_JWT_OK);
  json_decref(c);
  CHECK_INT(bd_jwt_verify(bd_str_c(t), (const uint8_t *)KEY, strlen(KEY), 1005, 5, &c), BD_JWT_EEXP);
  CHECK_INT(bd_jwt_verify(bd_str_c(t), (const uint8_t *)KEY, strlen(KEY), 1000, -5, &c), BD_JWT_EEXP);
  free(t);
  /* exp missing or not a number */
  const char *bad_exp[] = {"{\"sub\":\"x\"}", "{\"exp\":\"2000\"}", "{\"exp\":null}", "{\"exp\":true}",
                           "{\"exp\":[2000]}", "{\"exp\":{}}", "{}"};
  for (size_t i = 0; i < BD_ARRAY_LEN(bad_exp); i++) {
    t = make_jwt(HS256, bad_exp[i], KEY);
    CHECK_INT(verify0(t, 1000), BD_JWT_EEXP);
    free(t);
  }
  /* real exp */
  t = make_jwt(HS256, "{\"exp\":999.5}", KEY);
  CHECK_INT(verify0(t, 999), BD_JWT_OK);
  CHECK_INT(verify0(t, 1000), BD_JWT_EEXP);
  free(t);
  /* exp far in the future, beyond double precision for integers */
  t = make_jwt(HS256, "{\"exp\":9223372036854775807}", KEY);
  CHECK_INT(verify0(t, 9223372036854775806), BD_JWT_OK);
  free(t);
  /* nbf: allowed when nbf <= now + leeway */
  t = make_jwt(HS256, "{\"exp\":3000,\"nbf\":2000}", KEY);
  CHECK_INT(verify0(t, 1000), BD_JWT_ENBF);
  CHECK_INT(verify0(t, 1999), BD_JWT_ENBF);
  CHECK_INT(verify0(t, 2000), BD_JWT_OK);
  CHECK_INT(verify0(t, 2500), BD_JWT_OK);
  CHECK_INT(bd_jwt_verify(bd_str_c(t), (const uint8_t *)KEY, strlen(KEY), 1990, 10, &c), BD_JWT_OK);
  json_decref(c);
  CHECK_INT(bd_jwt_verify(bd_str_c(t), (const uint8_t *)KEY, strlen(KEY), 1989, 10, &c), BD_JWT_ENBF);
  free(t);
  t = make_jwt(HS256, "{\"exp\":3000,\"nbf\":2000.5}", KEY);
  CHECK_INT(verify0(t, 2000), BD_JWT_ENBF);
  CHECK_INT(verify0(t, 2001), BD_JWT_OK);
  free(t);
  t = make_jwt(HS256, "{\"exp\":3000,\"nbf\":\"1000\"}", KEY);
  CHECK_INT(verify0(t, 2000), BD_JWT_ENBF);
  free(t);
  t = make_jwt(HS256, "{\"exp\":3000,\"nbf\":null}", KEY);
  CHECK_INT(verify0(t, 2000), BD_JWT_ENBF);
  free(t);
}

static void test_jwt_alg(void) {
  const char *bad_alg[] = {"{\"alg\":\"HS512\"}", "{\"alg\":\"HS384\"}", "{\"alg\":\"RS256\"}",
                           "{\"alg\":\"ES256\"}", "{\"alg\":\"none\"}", "{\"alg\":\"None\"}",
                           "{\"alg\":\"hs256\"}", "{\"alg\":\"HS256 \"}", "{\"alg\":\"HS2560\"}",
                           "{\"alg\":\"\"}", "{\"alg\":256}",
                           "{\"alg\":null}", "{\"alg\":[\"HS256\"]}", "{\"alg\":true}",
                           "{\"typ\":\"JWT\"}", "{}", "{\"ALG\":\"HS256\"}"};
  for (size_t i = 0; i < BD_ARRAY_LEN(bad_alg); i++) {
    /* correctly MACed with our key: only the header decides */
    char *t = make_jwt(bad_alg[i], "{\"exp\":3000}", KEY);
    int rc = verify0(t, 1000);
    if (rc != BD_JWT_EALG) fprintf(stderr, "  header %s gave %d\n", bad_alg[i], rc);
    CHECK_INT(rc, BD_JWT_EALG);
    free(t);
  }
  /* an embedded NUL must not pass a C string compare (jansson already
   * refuses \u0000 unless asked, so this is malformed) */
  {
    char *t = make_jwt("{\"alg\":\"HS256\\u0000x\"}", "{\"exp\":3000}", KEY);
    CHECK(verify0(t, 1000) != BD_JWT_OK);
    free(t);
  }
  /* alg none with an empty signature (the classic bypass) */
  const char *none_hdrs[] = {"{\"alg\":\"none\"}", "{\"alg\":\"none\",\"typ\":\"JWT\"}"};
  for (size_t i = 0; i < BD_ARRAY_LEN(none_hdrs); i++) {
    bd_buf_t b = BD_BUF_INIT;
    bd_b64url_encode(&b, none_hdrs[i], strlen(none_hdrs[i]));
    bd_buf_putc(&b, '.');
    bd_b64url_encode(&b, "{\"exp\":3000}", 12);
    bd_buf_putc(&b, '.');
    CHECK_INT(verify0(b.data, 1000), BD_JWT_EALG);
    bd_buf_free(&b);
  }
  /* alg HS256 with an empty signature */
  {
    bd_buf_t b = BD_BUF_INIT;
    bd_b64url_encode(&b, HS256, strlen(HS256));
    bd_buf_putc(&b, '.');
    bd_b64url_encode(&b, "{\"exp\":3000}", 12);
    bd_buf_putc(&b, '.');
    CHECK_INT(verify0(b.data, 1000), BD_JWT_ESIG);
    bd_buf_free(&b);
  }
  /* HS512-signed token whose header claims HS512: EALG, not a MAC check */
  {
    bd_buf_t b = BD_BUF_INIT;
    const char *h = "{\"alg\":\"HS512\"}", *p = "{\"exp\":3000}";
    bd_b64url_encode(&b, h, strlen(h));
    bd_buf_putc(&b, '.');
    bd_b64url_encode(&b, p, strlen(p));
    unsigned char mac[crypto_auth_hmacsha512_BYTES], k[crypto_auth_hmacsha512_KEYBYTES] = {0};
    memcpy(k, KEY, strlen(KEY));
    crypto_auth_hmacsha512(mac, (const unsigned char *)b.data, b.len, k);
    bd_buf_putc(&b, '.');
    bd_b64url_encode(&b, mac, sizeof mac);
    CHECK_INT(verify0(b.data, 1000), BD_JWT_EALG);
    bd_buf_free(&b);
  }
  /* duplicate alg (parsers disagree on which wins) and crit are refused */
  char *t = make_jwt("{\"alg\":\"HS256\",\"alg\":\"none\"}", "{\"exp\":3000}", KEY);
  CHECK_INT(verify0(t, 1000), BD_JWT_EMALFORMED);
  free(t);
  t = make_jwt("{\"alg\":\"none\",\"alg\":\"HS256\"}", "{\"exp\":3000}", KEY);
  CHECK_INT(verify0(t, 1000), BD_JWT_EMALFORMED);
  free(t);
  t = make_jwt("{\"alg\":\"HS256\",\"crit\":[\"b64\"],\"b64\":false}", "{\"exp\":3000}", KEY);
  CHECK_INT(verify0(t, 1000), BD_JWT_EMALFORMED);
  free(t);
}

static void test_jwt_tamper(void) {
  char *t;
  /* wrong key */
  t = make_jwt(HS256, "{\"exp\":3000}", "another-key");
  CHECK_INT(verify0(t, 1000), BD_JWT_ESIG);
  free(t);
  /* empty key: nothing verifies, not even a token MACed with the empty key */
  t = make_jwt(HS256, "{\"exp\":3000}", "");
  json_t *c = NULL;
  CHECK_INT(bd_jwt_verify(bd_str_c(t), (const uint8_t *)"", 0, 1000, 0, &c), BD_JWT_ESIG);
  CHECK(c == NULL);
  free(t);

  /* tampered payload: the signature of one payload on another */
  char *good = make_jwt(HS256, "{\"exp\":3000,\"role\":\"viewer\"}", KEY);
  char *evil = make_jwt(HS256, "{\"exp\":3000,\"role\":\"admin\"}", "attacker-key");
  CHECK_INT(verify0(good, 1000), BD_JWT_OK);
  bd_buf_t b = BD_BUF_INIT;
  const char *good_sig = strrchr(good, '.');
  bd_buf_append(&b, evil, (size_t)(strrchr(evil, '.') - evil));
  bd_buf_puts(&b, good_sig);
  CHECK_INT(verify0(b.data, 1000), BD_JWT_ESIG);
  /* tampered header (extra field), same signature */
  bd_buf_reset(&b);
  const char *hx = "{\"alg\":\"HS256\",\"typ\":\"JWT\",\"x\":1}";
  char *h2 = b64url(hx, strlen(hx));
  bd_buf_puts(&b, h2);
  bd_buf_puts(&b, strchr(good, '.'));
  CHECK_INT(verify0(b.data, 1000), BD_JWT_ESIG);
  free(h2);

  /* tampered signature: every single-bit flip of the MAC is caught */
  const char *dot2 = strrchr(good, '.');
  bd_buf_t mac = BD_BUF_INIT;
  CHECK(bd_b64url_decode(&mac, dot2 + 1, strlen(dot2 + 1)));
  CHECK_INT(mac.len, 32);
  int accepted = 0;
  for (size_t bit = 0; bit < 256; bit++) {
    mac.data[bit / 8] ^= (char)(1 << (bit % 8));
    bd_buf_reset(&b);
    bd_buf_append(&b, good, (size_t)(dot2 - good) + 1);
    bd_b64url_encode(&b, mac.data, 32);
    accepted += verify0(b.data, 1000) != BD_JWT_ESIG;
    mac.data[bit / 8] ^= (char)(1 << (bit % 8));
  }
  CHECK_INT(accepted, 0);
  /* wrong MAC lengths: truncated, extended, empty */
  size_t lens[] = {0, 1, 31, 33, 64};
  unsigned char longmac[64] = {0};
  memcpy(longmac, mac.data, 32);
  for (size_t i = 0; i < BD_ARRAY_LEN(lens); i++) {
    bd_buf_reset(&b);
    bd_buf_append(&b, good, (size_t)(dot2 - good) + 1);
    bd_b64url_encode(&b, longmac, lens[i]);
    CHECK_INT(verify0(b.data, 1000), BD_JWT_ESIG);
  }
  bd_buf_free(&mac);
  bd_buf_free(&b);
  free(good);
  free(evil);
}

static void test_jwt_malformed(void) {
  char *good = make_jwt(HS256, "{\"exp\":3000}", KEY);
  bd_buf_t b = BD_BUF_INIT;
  /* padding or foreign characters in any part */
  const char *suffixes[] = {"=", "==", "+", "/", " ", "\n", "%", "*"};
  for (size_t i = 0; i < BD_ARRAY_LEN(suffixes); i++) {
    bd_buf_reset(&b);
    bd_buf_puts(&b, good);
    bd_buf_puts(&b, suffixes[i]);
    CHECK_INT(verify0(b.data, 1000), BD_JWT_EMALFORMED);
    /* in the header */
    bd_buf_reset(&b);
    bd_buf_append(&b, good, (size_t)(strchr(good, '.') - good));
    bd_buf_puts(&b, suffixes[i]);
    bd_buf_puts(&b, strchr(good, '.'));
    CHECK_INT(verify0(b.data, 1000), BD_JWT_EMALFORMED);
  }
  /* standard-alphabet base64 of a MAC that needs '+' or '/' */
  {
    bd_buf_t std = BD_BUF_INIT;
    bd_buf_t mac = BD_BUF_INIT;
    const char *d2 = strrchr(good, '.');
    CHECK(bd_b64url_decode(&mac, d2 + 1, strlen(d2 + 1)));
    bd_b64_encode(&std, mac.data, mac.len);
    bd_buf_reset(&b);
    bd_buf_append(&b, good, (size_t)(d2 - good) + 1);
    bd_buf_puts(&b, std.data); /* padded, maybe with + or / */
    CHECK_INT(verify0(b.data, 1000), BD_JWT_EMALFORMED);
    bd_buf_free(&std);
    bd_buf_free(&mac);
  }
  /* structure */
  const char *garbage[] = {"", ".", "..", "...", "a", "a.b", "a.b.c.d", "!!.??.--", ".e30.", "e30..",
                           "e30.e30", "e30.e30.e30.e30", "Bearer x.y.z", "\xff\xfe.\x00.x"};
  for (size_t i = 0; i < BD_ARRAY_LEN(garbage); i++) CHECK_INT(verify0(garbage[i], 1000), BD_JWT_EMALFORMED);
  CHECK_INT(verify0(good, 1000), BD_JWT_OK);
  json_t *c = (json_t *)1;
  CHECK_INT(bd_jwt_verify((bd_str_t){NULL, 0}, (const uint8_t *)KEY, strlen(KEY), 1000, 0, &c), BD_JWT_EMALFORMED);
  CHECK(c == NULL);
  /* the token is bounded by its length */
  CHECK_INT(bd_jwt_verify((bd_str_t){good, strlen(good) - 2}, (const uint8_t *)KEY, strlen(KEY), 1000, 0, &c),
            BD_JWT_EMALFORMED); /* 41 chars of MAC: no base64url text has that length */
  /* header or claims that are not JSON objects (but correctly MACed) */
  const char *hdrs[] = {"[\"HS256\"]", "\"HS256\"", "{\"alg\":\"HS256\"", "not json", "", "null"};
  for (size_t i = 0; i < BD_ARRAY_LEN(hdrs); i++) {
    char *t = make_jwt(hdrs[i], "{\"exp\":3000}", KEY);
    CHECK_INT(verify0(t, 1000), BD_JWT_EMALFORMED);
    free(t);
  }
  const char *payloads[] = {"[{\"exp\":3000}]", "3000", "{\"exp\":3000", "", "{\"exp\":3000,\"exp\":1}"};
  for (size_t i = 0; i < BD_ARRAY_LEN(payloads); i++) {
    char *t = make_jwt(HS256, payloads[i], KEY);
    CHECK_INT(verify0(t, 1000), BD_JWT_EMALFORMED);
    free(t);
  }
  bd_buf_free(&b);
  free(good);
}

static void test_jwt_strerror(void) {
  int codes[] = {BD_JWT_OK, BD_JWT_EMALFORMED, BD_JWT_EALG, BD_JWT_ESIG, BD_JWT_EEXP, BD_JWT_ENBF};
  for (size_t i = 0; i < BD_ARRAY_LEN(codes); i++) {
    const char *s = bd_jwt_strerror(codes[i]);
    CHECK(s && *s && strlen(s) < 60);
    for (size_t j = 0; j < i; j++) CHECK(strcmp(s, bd_jwt_strerror(codes[j])) != 0);
  }
  CHECK_STR(bd_jwt_strerror(BD_JWT_ESIG), "invalid signature");
  CHECK_STR(bd_jwt_strerror(BD_JWT_EEXP), "token expired or without exp");
  CHECK_STR(bd_jwt_strerror(999), "invalid token");
  CHECK_STR(bd_jwt_strerror(-1), "invalid token");
}

int main(void) {
  if (sodium_init() < 0) return 1;
  RUN(test_token_roundtrip);
  RUN(test_token_rejects);
  RUN(test_token_check);
  RUN(test_bearer);
  RUN(test_jwt_vectors);
  RUN(test_jwt_valid);
  RUN(test_jwt_time);
  RUN(test_jwt_alg);
  RUN(test_jwt_tamper);
  RUN(test_jwt_malformed);
  RUN(test_jwt_strerror);
  UNIT_DONE();
}

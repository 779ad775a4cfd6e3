/* test_auth.c: API tokens, Bearer parsing and HS256 JWT verification. */
#include "auth.h"
#include "unit.h"

#include <stdio.h>
#include "util.h"

#include <sodium.h>
#include <stdlib.h>

static void test_token_roundtrip(void) {
  bd_token_t t;
  bd_token_generate("qr_live_", &t);
  CHECK_INT(strlen(t.token), 8 + BD_TOKEN_ID_LEN + 1 + BD_TOKEN_SECRET_LEN);
  CHECK(strncmp(t.token, "qr_live_", 8) == 0);
  bd_str_t id, secret;
  CHECK(bd_token_parse(bd_str_c(t.token), "qr_live_", &id, &secret));
  CHECK(bd_str_eq(id, t.id));
  CHECK(bd_token_check(secret, t.secret_hash));
  /* only the hash of the secret is stored: it is not the secret */
  CHECK(strstr(t.token, t.secret_hash) == NULL);
  CHECK_INT(strlen(t.secret_hash), 64);
  bd_token_t u;
  bd_token_generate("qr_live_", &u);
  CHECK(strcmp(t.token, u.token) != 0);
  CHECK(!bd_token_check(secret, u.secret_hash));
}

static void test_token_rejects(void) {
  bd_token_t t;
  bd_token_generate("qr_test_", &t);
  bd_str_t id, secret;
  CHECK(!bd_token_parse(bd_str_c(t.token), "qr_live_", &id, &secret)); /* other prefix */
  char buf[BD_TOKEN_MAX + 4];
  snprintf(buf, sizeof buf, "%sX", t.token);
  CHECK(!bd_token_parse(bd_str_c(buf), "qr_test_", &id, &secret)); /* trailing byte */
  snprintf(buf, sizeof buf, "%s", t.token);
  buf[strlen(buf) - 1] = '\0';
  CHECK(!bd_token_parse(bd_str_c(buf), "qr_test_", &id, &secret)); /* short */
  snprintf(buf, sizeof buf, "%s", t.token);
  buf[10] = '-';
  CHECK(!bd_token_parse(bd_str_c(buf), "qr_test_", &id, &secret)); /* alphabet */
  snprintf(buf, sizeof buf, "%s", t.token);
  buf[8 + BD_TOKEN_ID_LEN] = 'x';
  CHECK(!bd_token_parse(bd_str_c(buf), "qr_test_", &id, &secret)); /* separator */
  CHECK(!bd_token_parse(bd_str_c(""), "qr_test_", &id, &secret));
  /* a wrong secret of the right shape */
  CHECK(bd_token_parse(bd_str_c(t.token), "qr_test_", &id, &secret));
  char wrong[BD_TOKEN_SECRET_LEN + 1];
  memcpy(wrong, secret.p, BD_TOKEN_SECRET_LEN);
  wrong[BD_TOKEN_SECRET_LEN] = '\0';
  wrong[0] = wrong[0] == 'a' ? 'b' : 'a';
  CHECK(!bd_token_check(bd_str_c(wrong), t.secret_hash));
  CHECK(!bd_token_check(secret, "short"));
}

static void test_bearer(void) {
  bd_str_t c;
  CHECK(bd_bearer(bd_str_c("Bearer abc.def"), &c) && bd_str_eq(c, "abc.def"));
  CHECK(bd_bearer(bd_str_c("bearer   tok  "), &c) && bd_str_eq(c, "tok"));
  CHECK(!bd_bearer(bd_str_c("Basic dXNlcjpwYXNz"), &c));
  CHECK(!bd_bearer(bd_str_c("Bearer"), &c));
  CHECK(!bd_bearer(bd_str_c("Bearer "), &c));
  CHECK(!bd_bearer(bd_str_c("Bearer a b"), &c));
  CHECK(!bd_bearer(bd_str_c("Bearerabc"), &c));
  CHECK(!bd_bearer((bd_str_t){NULL, 0}, &c));
}

static const char *KEY = "secret-key-for-tests";

/* Builds a JWT independently of bd_jwt_sign: header and payload given as
 * JSON text, HMAC computed here. */
static char *make_jwt(const char *header, const char *payload, const char *key) {
  bd_buf_t b = BD_BUF_INIT;
  bd_b64url_encode(&b, header, strlen(header));
  bd_buf_putc(&b, '.');
  bd_b64url_encode(&b, payload, strlen(payload));
  unsigned char mac[crypto_auth_hmacsha256_BYTES];
  crypto_auth_hmacsha256_state st;
  crypto_auth_hmacsha256_init(&st, (const unsigned char *)key, strlen(key));
  crypto_auth_hmacsha256_update(&st, (const unsigned char *)b.data, b.len);
  crypto_auth_hmacsha256_final(&st, mac);
  bd_buf_putc(&b, '.');
  bd_b64url_encode(&b, mac, sizeof mac);
  return bd_buf_detach(&b, NULL);
}

static int verify(const char *jwt, int64_t now, json_t **claims) {
  return bd_jwt_verify(bd_str_c(jwt), (const uint8_t *)KEY, strlen(KEY), now, 0, claims);
}

static void test_jwt_valid(void) {
  char *t = make_jwt("{\"alg\":\"HS256\",\"typ\":\"JWT\"}", "{\"sub\":\"u1\",\"exp\":2000}", KEY);
  json_t *c = NULL;
  CHECK_INT(verify(t, 1000, &c), BD_JWT_OK);
  CHECK(c && !strcmp(json_string_value(json_object_get(c, "sub")), "u1"));
  json_decref(c);
  free(t);
  /* bd_jwt_sign output verifies too */
  json_t *claims = json_pack("{s:s, s:I}", "sub", "u2", "exp", (json_int_t)5000);
  bd_buf_t b = BD_BUF_INIT;
  bd_jwt_sign(&b, claims, (const uint8_t *)KEY, strlen(KEY));
  CHECK_INT(verify(b.data, 1000, &c), BD_JWT_OK);
  json_decref(c);
  bd_buf_free(&b);
  json_decref(claims);
}

static void test_jwt_rejects(void) {
  json_t *c = NULL;
  char *t;
  /* expired, missing exp, exp not a number */
  t = make_jwt("{\"alg\":\"HS256\"}", "{\"exp\":1000}", KEY);
  CHECK_INT(verify(t, 1000, &c), BD_JWT_EEXP);
  CHECK_INT(bd_jwt_verify(bd_str_c(t), (const uint8_t *)KEY, strlen(KEY), 1000, 5, &c), BD_JWT_OK); /* leeway */
  json_decref(c);
  c = NULL;
  free(t);
  t = make_jwt("{\"alg\":\"HS256\"}", "{\"sub\":\"x\"}", KEY);
  CHECK_INT(verify(t, 1000, &c), BD_JWT_EEXP);
  free(t);
  t = make_jwt("{\"alg\":\"HS256\"}", "{\"exp\":\"2000\"}", KEY);
  CHECK_INT(verify(t, 1000, &c), BD_JWT_EEXP);
  free(t);
  /* not before */
  t = make_jwt("{\"alg\":\"HS256\"}", "{\"exp\":3000,\"nbf\":2000}", KEY);
  CHECK_INT(verify(t, 1000, &c), BD_JWT_ENBF);
  CHECK_INT(verify(t, 2500, &c), BD_JWT_OK);
  json_decref(c);
  c = NULL;
  free(t);
  /* algorithm confusion */
  t = make_jwt("{\"alg\":\"HS512\"}", "{\"exp\":3000}", KEY);
  CHECK_INT(verify(t, 1000, &c), BD_JWT_EALG);
  free(t);
  t = make_jwt("{\"alg\":\"RS256\"}", "{\"exp\":3000}", KEY);
  CHECK_INT(verify(t, 1000, &c), BD_JWT_EALG);
  free(t);
  t = make_jwt("{\"typ\":\"JWT\"}", "{\"exp\":3000}", KEY);
  CHECK_INT(verify(t, 1000, &c), BD_JWT_EALG);
  free(t);
  {
    /* alg none with an empty signature */
    bd_buf_t b = BD_BUF_INIT;
    bd_b64url_encode(&b, "{\"alg\":\"none\"}", 14);
    bd_buf_putc(&b, '.');
    bd_b64url_encode(&b, "{\"exp\":3000}", 12);
    bd_buf_putc(&b, '.');
    CHECK_INT(verify(b.data, 1000, &c), BD_JWT_EALG);
    bd_buf_free(&b);
  }
  /* wrong key, tampered payload, tampered signature */
  t = make_jwt("{\"alg\":\"HS256\"}", "{\"exp\":3000}", "another-key");
  CHECK_INT(verify(t, 1000, &c), BD_JWT_ESIG);
  free(t);
  t = make_jwt("{\"alg\":\"HS256\"}", "{\"exp\":3000,\"sub\":\"a\"}", KEY);
  char *dot = strchr(t, '.');
  dot[3] = dot[3] == 'A' ? 'B' : 'A';
  CHECK(verify(t, 1000, &c) != BD_JWT_OK);
  free(t);
  t = make_jwt("{\"alg\":\"HS256\"}", "{\"exp\":3000}", KEY);
  t[strlen(t) - 2] = t[strlen(t) - 2] == 'A' ? 'B' : 'A';
  CHECK_INT(verify(t, 1000, &c), BD_JWT_ESIG);
  free(t);
  /* garbage */
  CHECK_INT(verify("", 1000, &c), BD_JWT_EMALFORMED);
  CHECK_INT(verify("a.b", 1000, &c), BD_JWT_EMALFORMED);
  CHECK_INT(verify("a.b.c.d", 1000, &c), BD_JWT_EMALFORMED);
  CHECK_INT(verify("!!.??.--", 1000, &c), BD_JWT_EMALFORMED);
  CHECK(c == NULL);
}

int main(void) {
  if (sodium_init() < 0) return 1;
  RUN(test_token_roundtrip);
  RUN(test_token_rejects);
  RUN(test_bearer);
  RUN(test_jwt_valid);
  RUN(test_jwt_rejects);
  UNIT_DONE();
}

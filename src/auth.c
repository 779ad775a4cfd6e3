/* auth.c: API tokens (public id + hashed secret) and HS256 JWT. */
#include "auth.h"

#include "util.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>

static bool is_b62(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

void bd_token_generate(const char *prefix, bd_token_t *out) {
  char secret[BD_TOKEN_SECRET_LEN + 1];
  bd_rand_base62(out->id, BD_TOKEN_ID_LEN);
  bd_rand_base62(secret, BD_TOKEN_SECRET_LEN);
  snprintf(out->token, sizeof out->token, "%s%s_%s", prefix, out->id, secret);
  bd_sha256_hex(out->secret_hash, secret, BD_TOKEN_SECRET_LEN);
  sodium_memzero(secret, sizeof secret);
}

bool bd_token_parse(bd_str_t token, const char *prefix, bd_str_t *id, bd_str_t *secret) {
  size_t pl = strlen(prefix);
  if (token.len != pl + BD_TOKEN_ID_LEN + 1 + BD_TOKEN_SECRET_LEN) return false;
  if (memcmp(token.p, prefix, pl) != 0) return false;
  const char *p = token.p + pl;
  for (size_t i = 0; i < BD_TOKEN_ID_LEN; i++)
    if (!is_b62(p[i])) return false;
  if (p[BD_TOKEN_ID_LEN] != '_') return false;
  const char *s = p + BD_TOKEN_ID_LEN + 1;
  for (size_t i = 0; i < BD_TOKEN_SECRET_LEN; i++)
    if (!is_b62(s[i])) return false;
  *id = (bd_str_t){p, BD_TOKEN_ID_LEN};
  *secret = (bd_str_t){s, BD_TOKEN_SECRET_LEN};
  return true;
}

bool bd_token_check(bd_str_t secret, const char *stored_hash_hex) {
  char h[65];
  bd_sha256_hex(h, secret.p, secret.len);
  if (strlen(stored_hash_hex) != 64) return false;
  return sodium_memcmp(h, stored_hash_hex, 64) == 0;
}

bool bd_bearer(bd_str_t a, bd_str_t *cred) {
  if (a.len < 7 || strncasecmp(a.p, "Bearer", 6) != 0 || (a.p[6] != ' ' && a.p[6] != '\t')) return false;
  size_t i = 6;
  while (i < a.len && (a.p[i] == ' ' || a.p[i] == '\t')) i++;
  size_t end = a.len;
  while (end > i && (a.p[end - 1] == ' ' || a.p[end - 1] == '\t')) end--;
  if (end == i) return false;
  for (size_t k = i; k < end; k++)
    if ((unsigned char)a.p[k] <= 0x20 || (unsigned char)a.p[k] >= 0x7f) return false;
  *cred = (bd_str_t){a.p + i, end - i};
  return true;
}

/* base64url without padding, strictly */
static bool b64url_strict(bd_buf_t *out, const char *s, size_t n) {
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    if (!(is_b62(c) || c == '-' || c == '_')) return false;
  }
  return bd_b64url_decode(out, s, n);
}

int bd_jwt_verify(bd_str_t jwt, const uint8_t *key, size_t keylen, int64_t now_s, int64_t leeway_s,
                  json_t **claims) {
  *claims = NULL;
  const char *d1 = memchr(jwt.p, '.', jwt.len);
  if (!d1) return BD_JWT_EMALFORMED;
  const char *d2 = memchr(d1 + 1, '.', (size_t)(jwt.p + jwt.len - d1 - 1));
  if (!d2 || memchr(d2 + 1, '.', (size_t)(jwt.p + jwt.len - d2 - 1))) return BD_JWT_EMALFORMED;
  bd_str_t h64 = {jwt.p, (size_t)(d1 - jwt.p)};
  bd_str_t p64 = {d1 + 1, (size_t)(d2 - d1 - 1)};
  bd_str_t s64 = {d2 + 1, (size_t)(jwt.p + jwt.len - d2 - 1)};
  if (!h64.len || !p64.len) return BD_JWT_EMALFORMED;
  bd_buf_t hb = BD_BUF_INIT, pb = BD_BUF_INIT, sb = BD_BUF_INIT;
  int rc = BD_JWT_EMALFORMED;
  json_t *hdr = NULL, *cl = NULL;
  if (!b64url_strict(&hb, h64.p, h64.len) || !b64url_strict(&pb, p64.p, p64.len)) goto out;
  hdr = json_loadb(hb.data, hb.len, 0, NULL);
  if (!json_is_object(hdr)) goto out;
  json_t *alg = json_object_get(hdr, "alg");
  if (!json_is_string(alg) || strcmp(json_string_value(alg), "HS256") != 0) {
    rc = BD_JWT_EALG;
    goto out;
  }
  if (!b64url_strict(&sb, s64.p, s64.len) || sb.len != crypto_auth_hmacsha256_BYTES) {
    rc = s64.len ? BD_JWT_ESIG : BD_JWT_ESIG;
    goto out;
  }
  {
    unsigned char mac[crypto_auth_hmacsha256_BYTES];
    crypto_auth_hmacsha256_state st;
    crypto_auth_hmacsha256_init(&st, key, keylen);
    crypto_auth_hmacsha256_update(&st, (const unsigned char *)jwt.p, (size_t)(d2 - jwt.p));
    crypto_auth_hmacsha256_final(&st, mac);
    if (sodium_memcmp(mac, sb.data, sizeof mac) != 0) {
      rc = BD_JWT_ESIG;
      goto out;
    }
  }
  cl = json_loadb(pb.data, pb.len, 0, NULL);
  if (!json_is_object(cl)) goto out;
  json_t *exp = json_object_get(cl, "exp");
  if (!json_is_number(exp) || json_number_value(exp) <= (double)(now_s - leeway_s)) {
    rc = BD_JWT_EEXP;
    goto out;
  }
  json_t *nbf = json_object_get(cl, "nbf");
  if (nbf && (!json_is_number(nbf) || json_number_value(nbf) > (double)(now_s + leeway_s))) {
    rc = BD_JWT_ENBF;
    goto out;
  }
  *claims = cl;
  cl = NULL;
  rc = BD_JWT_OK;
out:
  json_decref(hdr);
  json_decref(cl);
  bd_buf_free(&hb);
  bd_buf_free(&pb);
  bd_buf_free(&sb);
  return rc;
}

const char *bd_jwt_strerror(int err) {
  switch (err) {
  case BD_JWT_OK: return "ok";
  case BD_JWT_EMALFORMED: return "malformed token";
  case BD_JWT_EALG: return "unsupported algorithm (HS256 required)";
  case BD_JWT_ESIG: return "bad signature";
  case BD_JWT_EEXP: return "token expired or without exp";
  case BD_JWT_ENBF: return "token not yet valid";
  default: return "invalid token";
  }
}

void bd_jwt_sign(bd_buf_t *out, json_t *claims, const uint8_t *key, size_t keylen) {
  static const char hdr[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
  size_t start = out->len;
  bd_b64url_encode(out, hdr, sizeof hdr - 1);
  bd_buf_putc(out, '.');
  char *pl = json_dumps(claims, JSON_COMPACT | JSON_SORT_KEYS);
  bd_b64url_encode(out, pl, strlen(pl));
  free(pl);
  unsigned char mac[crypto_auth_hmacsha256_BYTES];
  crypto_auth_hmacsha256_state st;
  crypto_auth_hmacsha256_init(&st, key, keylen);
  crypto_auth_hmacsha256_update(&st, (const unsigned char *)out->data + start, out->len - start);
  crypto_auth_hmacsha256_final(&st, mac);
  bd_buf_putc(out, '.');
  bd_b64url_encode(out, mac, sizeof mac);
}

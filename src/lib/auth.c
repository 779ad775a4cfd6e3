/* auth.c: API tokens (public id + hashed secret) and HS256 JWT.
 *
 * Everything that compares secret material does so in constant time
 * (sodium_memcmp over fixed-size digests/MACs); everything else may return
 * early, because lengths, prefixes and the token id are not secret.
 */
#include "auth.h"

#include "util.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>

#define PREFIX_MAX 40 /* BD_TOKEN_MAX - id - '_' - secret - NUL leaves 50; keep margin */

static bool is_b62(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

static bool all_b62(const char *p, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (!is_b62(p[i])) return false;
  return true;
}

void bd_token_generate(const char *prefix, bd_token_t *out) {
  size_t pl = strlen(prefix);
  if (pl > PREFIX_MAX) { /* a programming error: prefixes are literals */
    fprintf(stderr, "batchd: token prefix longer than %d bytes\n", PREFIX_MAX);
    abort();
  }
  char secret[BD_TOKEN_SECRET_LEN + 1];
  bd_rand_base62(out->id, BD_TOKEN_ID_LEN);
  bd_rand_base62(secret, BD_TOKEN_SECRET_LEN);
  snprintf(out->token, sizeof out->token, "%s%s_%s", prefix, out->id, secret);
  bd_sha256_hex(out->secret_hash, secret, BD_TOKEN_SECRET_LEN);
  sodium_memzero(secret, sizeof secret); /* the only copy left is out->token */
}

bool bd_token_parse(bd_str_t token, const char *prefix, bd_str_t *id, bd_str_t *secret) {
  size_t pl = strlen(prefix);
  if (token.len != pl + BD_TOKEN_ID_LEN + 1 + BD_TOKEN_SECRET_LEN) return false;
  if (memcmp(token.p, prefix, pl) != 0) return false;
  const char *i = token.p + pl, *s = i + BD_TOKEN_ID_LEN + 1;
  if (!all_b62(i, BD_TOKEN_ID_LEN) || i[BD_TOKEN_ID_LEN] != '_' || !all_b62(s, BD_TOKEN_SECRET_LEN)) return false;
  *id = (bd_str_t){i, BD_TOKEN_ID_LEN};
  *secret = (bd_str_t){s, BD_TOKEN_SECRET_LEN};
  return true;
}

bool bd_token_check(bd_str_t secret, const char *stored_hash_hex) {
  /* Compare binary digests: the stored text is decoded strictly (exactly 64
   * hex digits, either case), then both 32-byte values are compared in
   * constant time. */
  unsigned char want[crypto_hash_sha256_BYTES], got[crypto_hash_sha256_BYTES];
  size_t bin_len = 0;
  const char *end = NULL;
  if (!stored_hash_hex || strlen(stored_hash_hex) != 2 * sizeof want ||
      sodium_hex2bin(want, sizeof want, stored_hash_hex, 2 * sizeof want, NULL, &bin_len, &end) != 0 ||
      bin_len != sizeof want || *end != '\0')
    return false;
  crypto_hash_sha256(got, (const unsigned char *)(secret.p ? secret.p : ""), secret.len);
  return sodium_memcmp(got, want, sizeof want) == 0;
}

/* The credential is one run of visible ASCII. RFC 6750's b64token is
 * narrower, but token formats such as Sanctum's "1|secret" fall outside it,
 * and anything that is not a valid token fails the lookup anyway; what
 * matters here is no spaces (a second word), no controls (header
 * injection into logs) and no bytes that are not ASCII. */
static bool visible_ascii(const char *p, size_t n) {
  if (n == 0) return false;
  for (size_t i = 0; i < n; i++)
    if ((unsigned char)p[i] <= 0x20 || (unsigned char)p[i] >= 0x7f) return false;
  return true;
}

bool bd_bearer(bd_str_t a, bd_str_t *cred) {
  /* auth-scheme is case-insensitive (RFC 9110 §11.1), then 1*SP; tabs and
   * trailing whitespace are tolerated as header OWS. */
  if (a.len < 7 || strncasecmp(a.p, "Bearer", 6) != 0 || (a.p[6] != ' ' && a.p[6] != '\t')) return false;
  size_t i = 6, end = a.len;
  while (i < end && (a.p[i] == ' ' || a.p[i] == '\t')) i++;
  while (end > i && (a.p[end - 1] == ' ' || a.p[end - 1] == '\t')) end--;
  if (!visible_ascii(a.p + i, end - i)) return false; /* empty, inner spaces, controls, non-ASCII */
  *cred = (bd_str_t){a.p + i, end - i};
  return true;
}

/* HMAC-SHA-256 of the JWS signing input (header "." payload, as sent). */
static void hs256(unsigned char mac[crypto_auth_hmacsha256_BYTES], const char *p, size_t n, const uint8_t *key,
                  size_t keylen) {
  crypto_auth_hmacsha256_state st;
  crypto_auth_hmacsha256_init(&st, key, keylen);
  crypto_auth_hmacsha256_update(&st, (const unsigned char *)p, n);
  crypto_auth_hmacsha256_final(&st, mac);
  sodium_memzero(&st, sizeof st);
}

/* Whether a json number is <= (le=true) or > (le=false) an integer bound.
 * Integers are compared as integers so large values keep full precision. */
static bool num_le(json_t *v, int64_t bound) {
  if (json_is_integer(v)) return json_integer_value(v) <= bound;
  return json_real_value(v) <= (double)bound;
}

int bd_jwt_verify(bd_str_t jwt, const uint8_t *key, size_t keylen, int64_t now_s, int64_t leeway_s,
                  json_t **claims) {
  *claims = NULL;
  if (!jwt.len) return BD_JWT_EMALFORMED;
  /* exactly three parts: header.payload.signature (JWS compact form) */
  const char *end = jwt.p + jwt.len;
  const char *d1 = memchr(jwt.p, '.', jwt.len);
  const char *d2 = d1 ? memchr(d1 + 1, '.', (size_t)(end - d1 - 1)) : NULL;
  if (!d2 || memchr(d2 + 1, '.', (size_t)(end - d2 - 1))) return BD_JWT_EMALFORMED;
  if (d1 == jwt.p || d2 == d1 + 1) return BD_JWT_EMALFORMED; /* empty header or payload */

  bd_buf_t hb = BD_BUF_INIT, pb = BD_BUF_INIT, sb = BD_BUF_INIT;
  json_t *hdr = NULL, *cl = NULL;
  int rc = BD_JWT_EMALFORMED;
  /* base64url without padding; libsodium rejects '=', '+', '/' and
   * non-canonical trailing bits */
  if (!bd_b64url_decode(&hb, jwt.p, (size_t)(d1 - jwt.p)) || !bd_b64url_decode(&pb, d1 + 1, (size_t)(d2 - d1 - 1)) ||
      !bd_b64url_decode(&sb, d2 + 1, (size_t)(end - d2 - 1)))
    goto out;

  /* Duplicate names are rejected so {"alg":"HS256","alg":"none"} cannot
   * mean different things to different parsers. */
  hdr = json_loadb(hb.data, hb.len, JSON_REJECT_DUPLICATES, NULL);
  if (!json_is_object(hdr)) goto out;
  /* "crit" lists extensions the recipient must understand; we know none
   * (RFC 7515 §4.1.11). */
  if (json_object_get(hdr, "crit")) goto out;
  /* The algorithm comes from our configuration, never from the token: the
   * header may only confirm it. Length + memcmp also refuses "HS256\u0000x". */
  json_t *alg = json_object_get(hdr, "alg");
  if (!json_is_string(alg) || json_string_length(alg) != 5 || memcmp(json_string_value(alg), "HS256", 5) != 0) {
    rc = BD_JWT_EALG;
    goto out;
  }

  /* An empty key would make anyone able to mint tokens. */
  if (keylen == 0 || sb.len != crypto_auth_hmacsha256_BYTES) {
    rc = BD_JWT_ESIG;
    goto out;
  }
  unsigned char mac[crypto_auth_hmacsha256_BYTES];
  hs256(mac, jwt.p, (size_t)(d2 - jwt.p), key, keylen);
  if (sodium_memcmp(mac, sb.data, sizeof mac) != 0) {
    rc = BD_JWT_ESIG;
    goto out;
  }

  /* Only now, authenticated, are the claims parsed. */
  cl = json_loadb(pb.data, pb.len, JSON_REJECT_DUPLICATES, NULL);
  if (!json_is_object(cl)) goto out;
  if (leeway_s < 0) leeway_s = 0;
  json_t *exp = json_object_get(cl, "exp");
  if (!json_is_number(exp) || num_le(exp, now_s - leeway_s)) {
    rc = BD_JWT_EEXP;
    goto out;
  }
  json_t *nbf = json_object_get(cl, "nbf");
  if (nbf && (!json_is_number(nbf) || !num_le(nbf, now_s + leeway_s))) {
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
  case BD_JWT_ESIG: return "invalid signature";
  case BD_JWT_EEXP: return "token expired or without exp";
  case BD_JWT_ENBF: return "token not yet valid";
  default: return "invalid token";
  }
}

void bd_jwt_sign(bd_buf_t *out, json_t *claims, const uint8_t *key, size_t keylen) {
  static const char hdr[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
  /* sorted keys: the same claims always give the same token */
  char *payload = json_dumps(claims, JSON_COMPACT | JSON_SORT_KEYS);
  if (!payload) { /* NULL claims or OOM; both are programming/fatal errors */
    fprintf(stderr, "batchd: cannot serialise JWT claims\n");
    abort();
  }
  size_t start = out->len;
  bd_b64url_encode(out, hdr, sizeof hdr - 1);
  bd_buf_putc(out, '.');
  bd_b64url_encode(out, payload, strlen(payload));
  free(payload);
  unsigned char mac[crypto_auth_hmacsha256_BYTES];
  hs256(mac, out->data + start, out->len - start, key, keylen);
  bd_buf_putc(out, '.');
  bd_b64url_encode(out, mac, sizeof mac);
}

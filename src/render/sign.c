/* sign.c: Ed25519 keys, canonical records, signatures (see sign.h). */
#include "sign.h"

#include "keyfile.h"
#include "util.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>

#define KEY_PREFIX "batchd-ed25519-seed-v1 "

void bd_sign_key_from_seed(const unsigned char seed[32], bd_sign_key_t *key) {
  crypto_sign_seed_keypair(key->pk, key->sk, seed);
  unsigned char h[32];
  crypto_hash_sha256(h, key->pk, sizeof key->pk);
  memcpy(key->key_id, "ed25519:", 8);
  sodium_bin2hex(key->key_id + 8, 17, h, 8);
}

int bd_sign_key_load_or_create(const char *path, bd_sign_key_t *key, char *err, size_t errsz) {
  unsigned char seed[32];
  if (bd_keyfile_load_or_create(path, KEY_PREFIX, "signing key file", seed, err, errsz) != 0) return -1;
  bd_sign_key_from_seed(seed, key);
  sodium_memzero(seed, sizeof seed);
  return 0;
}

/* ---------------------------------------------------------------------- */

static void canon_str(bd_buf_t *out, const char *s, size_t n) {
  bd_buf_putc(out, '"');
  size_t run = 0; /* bytes copied as is, flushed before an escape */
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    const char *esc = NULL;
    char u[8];
    if (c == '"')
      esc = "\\\"";
    else if (c == '\\')
      esc = "\\\\";
    else if (c == '\b')
      esc = "\\b";
    else if (c == '\f')
      esc = "\\f";
    else if (c == '\n')
      esc = "\\n";
    else if (c == '\r')
      esc = "\\r";
    else if (c == '\t')
      esc = "\\t";
    else if (c < 0x20) {
      snprintf(u, sizeof u, "\\u%04x", c);
      esc = u;
    }
    if (!esc) {
      run++;
      continue;
    }
    bd_buf_append(out, s + i - run, run);
    run = 0;
    bd_buf_puts(out, esc);
  }
  bd_buf_append(out, s + n - run, run);
  bd_buf_putc(out, '"');
}

typedef struct {
  const char *k; /* key (borrowed from the object) */
  size_t n;      /* its length */
  json_t *v;     /* value */
} member_t;

static int cmp_member(const void *a, const void *b) {
  const member_t *x = a, *y = b;
  int c = memcmp(x->k, y->k, BD_MIN(x->n, y->n));
  if (c) return c;
  return x->n < y->n ? -1 : x->n > y->n;
}

static int canon(const json_t *v, bd_buf_t *out, char *err, size_t errsz, int depth) {
  if (depth > 64) {
    snprintf(err, errsz, "record nested too deeply");
    return -1;
  }
  switch (json_typeof(v)) {
    case JSON_OBJECT: {
      size_t n = json_object_size(v), i = 0;
      member_t *m = bd_calloc(n ? n : 1, sizeof *m);
      const char *k;
      size_t kl;
      json_t *val;
      json_object_keylen_foreach((json_t *)v, k, kl, val) { m[i++] = (member_t){k, kl, val}; }
      qsort(m, n, sizeof *m, cmp_member);
      bd_buf_putc(out, '{');
      int rc = 0;
      for (i = 0; i < n && rc == 0; i++) {
        if (i) bd_buf_putc(out, ',');
        canon_str(out, m[i].k, m[i].n);
        bd_buf_putc(out, ':');
        rc = canon(m[i].v, out, err, errsz, depth + 1);
      }
      free(m);
      bd_buf_putc(out, '}');
      return rc;
    }
    case JSON_ARRAY: {
      bd_buf_putc(out, '[');
      for (size_t i = 0; i < json_array_size(v); i++) {
        if (i) bd_buf_putc(out, ',');
        if (canon(json_array_get(v, i), out, err, errsz, depth + 1) != 0) return -1;
      }
      bd_buf_putc(out, ']');
      return 0;
    }
    case JSON_STRING: canon_str(out, json_string_value(v), json_string_length(v)); return 0;
    case JSON_INTEGER: bd_buf_printf(out, "%lld", (long long)json_integer_value(v)); return 0;
    case JSON_REAL: snprintf(err, errsz, "a record may not hold real numbers"); return -1;
    case JSON_TRUE: bd_buf_puts(out, "true"); return 0;
    case JSON_FALSE: bd_buf_puts(out, "false"); return 0;
    case JSON_NULL: bd_buf_puts(out, "null"); return 0;
  }
  return -1;
}

int bd_sign_canonical(const json_t *v, bd_buf_t *out, char *err, size_t errsz) {
  size_t start = out->len;
  int rc = canon(v, out, err, errsz, 0);
  if (rc != 0) out->len = start;
  return rc;
}

int bd_sign_record(const bd_sign_key_t *key, const json_t *record, bd_buf_t *sig_b64, char *err,
                   size_t errsz) {
  bd_buf_t c = BD_BUF_INIT;
  if (bd_sign_canonical(record, &c, err, errsz) != 0) {
    bd_buf_free(&c);
    return -1;
  }
  unsigned char sig[crypto_sign_BYTES];
  crypto_sign_detached(sig, NULL, (const unsigned char *)c.data, c.len, key->sk);
  bd_buf_free(&c);
  bd_b64_encode(sig_b64, sig, sizeof sig);
  return 0;
}

bool bd_sign_verify_record(const unsigned char pk[32], const json_t *record, const char *sig_b64) {
  bd_buf_t sig = BD_BUF_INIT, c = BD_BUF_INIT;
  char err[64];
  bool ok = sig_b64 && bd_b64_decode(&sig, sig_b64, strlen(sig_b64)) &&
            sig.len == crypto_sign_BYTES && bd_sign_canonical(record, &c, err, sizeof err) == 0 &&
            crypto_sign_verify_detached((const unsigned char *)sig.data,
                                        (const unsigned char *)c.data, c.len, pk) == 0;
  bd_buf_free(&sig);
  bd_buf_free(&c);
  return ok;
}

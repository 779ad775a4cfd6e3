/* util.c: identifiers, time formatting, encodings and query strings. */
#include "util.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static const char k_b62[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

void bd_rand_base62(char *out, size_t n) {
  /* 62 does not divide 256: reject bytes >= 248 to keep the draw uniform */
  size_t i = 0;
  unsigned char buf[64];
  while (i < n) {
    randombytes_buf(buf, sizeof buf);
    for (size_t k = 0; k < sizeof buf && i < n; k++)
      if (buf[k] < 248) out[i++] = k_b62[buf[k] % 62];
  }
  out[n] = '\0';
}

static void uuid_fmt(char out[37], const uint8_t b[16]) {
  static const char hex[] = "0123456789abcdef";
  int o = 0;
  for (int i = 0; i < 16; i++) {
    if (i == 4 || i == 6 || i == 8 || i == 10) out[o++] = '-';
    out[o++] = hex[b[i] >> 4];
    out[o++] = hex[b[i] & 15];
  }
  out[36] = '\0';
}

void bd_uuid_v4(char out[37]) {
  uint8_t b[16];
  randombytes_buf(b, sizeof b);
  b[6] = (uint8_t)((b[6] & 0x0F) | 0x40);
  b[8] = (uint8_t)((b[8] & 0x3F) | 0x80);
  uuid_fmt(out, b);
}

void bd_uuid_v7(char out[37]) {
  uint8_t b[16];
  randombytes_buf(b, sizeof b);
  uint64_t ms = (uint64_t)(bd_wall_us() / 1000);
  for (int i = 0; i < 6; i++) b[i] = (uint8_t)(ms >> (40 - 8 * i));
  b[6] = (uint8_t)((b[6] & 0x0F) | 0x70);
  b[8] = (uint8_t)((b[8] & 0x3F) | 0x80);
  uuid_fmt(out, b);
}

bool bd_uuid_valid(bd_str_t s) {
  if (s.len != 36) return false;
  for (size_t i = 0; i < 36; i++) {
    char c = s.p[i];
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (c != '-') return false;
    } else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'))) {
      return false;
    }
  }
  return true;
}

void bd_time_fmt(char out[32], int64_t unix_us, bool micro) {
  int64_t sec = unix_us >= 0 ? unix_us / 1000000 : -((-unix_us + 999999) / 1000000);
  int64_t frac = unix_us - sec * 1000000;
  time_t t = (time_t)sec;
  struct tm tm;
  gmtime_r(&t, &tm);
  size_t n = strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &tm);
  if (micro) snprintf(out + n, 32 - n, ".%06lldZ", (long long)frac);
  else snprintf(out + n, 32 - n, "Z");
}

static bool digits(const char *s, int n, int *out) {
  int v = 0;
  for (int i = 0; i < n; i++) {
    if (s[i] < '0' || s[i] > '9') return false;
    v = v * 10 + (s[i] - '0');
  }
  *out = v;
  return true;
}

bool bd_time_parse(const char *s, int64_t *unix_us) {
  int Y, M, D, h, m, sec;
  size_t n = strlen(s);
  if (n < 19) return false;
  if (!digits(s, 4, &Y) || s[4] != '-' || !digits(s + 5, 2, &M) || s[7] != '-' || !digits(s + 8, 2, &D) ||
      (s[10] != 'T' && s[10] != ' ' && s[10] != 't') || !digits(s + 11, 2, &h) || s[13] != ':' ||
      !digits(s + 14, 2, &m) || s[16] != ':' || !digits(s + 17, 2, &sec))
    return false;
  if (M < 1 || M > 12 || D < 1 || h > 23 || m > 59 || sec > 60) return false;
  static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  int dim = mdays[M - 1] + (M == 2 && ((Y % 4 == 0 && Y % 100 != 0) || Y % 400 == 0));
  if (D > dim) return false;
  const char *p = s + 19;
  int64_t frac = 0;
  if (*p == '.') {
    p++;
    int nd = 0;
    while (*p >= '0' && *p <= '9') {
      if (nd < 6) frac = frac * 10 + (*p - '0');
      nd++;
      p++;
    }
    if (nd == 0) return false;
    for (int k = nd; k < 6; k++) frac *= 10;
  }
  int off = 0; /* seconds east of UTC */
  if (*p == 'Z' || *p == 'z') {
    p++;
  } else if (*p == '+' || *p == '-') {
    int sign = *p == '-' ? -1 : 1, oh, om = 0;
    p++;
    if (!digits(p, 2, &oh)) return false;
    p += 2;
    if (*p == ':') p++;
    if (*p >= '0' && *p <= '9') {
      if (!digits(p, 2, &om)) return false;
      p += 2;
    }
    if (oh > 23 || om > 59) return false;
    off = sign * (oh * 3600 + om * 60);
  } else {
    return false;
  }
  if (*p) return false;
  struct tm tm = {0};
  tm.tm_year = Y - 1900;
  tm.tm_mon = M - 1;
  tm.tm_mday = D;
  tm.tm_hour = h;
  tm.tm_min = m;
  tm.tm_sec = sec;
  int64_t t = (int64_t)timegm(&tm) - off;
  *unix_us = t * 1000000 + frac;
  return true;
}

const char *bd_time_pg_to_iso(const char *pg, char out[32], bool micro) {
  int64_t us;
  if (!pg || !bd_time_parse(pg, &us)) return NULL;
  bd_time_fmt(out, us, micro);
  return out;
}

bool bd_parse_i64(bd_str_t s, int64_t *out) {
  size_t i = 0;
  bool neg = false;
  if (s.len && s.p[0] == '-') neg = true, i = 1;
  if (i >= s.len) return false;
  uint64_t v = 0;
  for (; i < s.len; i++) {
    if (s.p[i] < '0' || s.p[i] > '9') return false;
    uint64_t d = (uint64_t)(s.p[i] - '0');
    if (v > (UINT64_MAX - d) / 10) return false;
    v = v * 10 + d;
  }
  if (!neg && v > (uint64_t)INT64_MAX) return false;
  if (neg && v > (uint64_t)INT64_MAX + 1) return false;
  *out = neg ? (int64_t)(0 - v) : (int64_t)v;
  return true;
}

static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool bd_url_decode(bd_buf_t *out, const char *s, size_t n, bool form) {
  bd_buf_reserve(out, n);
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    if (c == '%') {
      if (i + 2 >= n) return false;
      int a = hexval(s[i + 1]), b = hexval(s[i + 2]);
      if (a < 0 || b < 0) return false;
      bd_buf_putc(out, (char)(a * 16 + b));
      i += 2;
    } else if (c == '+' && form) {
      bd_buf_putc(out, ' ');
    } else {
      bd_buf_putc(out, c);
    }
  }
  if (!out->data) bd_buf_reserve(out, 0), out->data[0] = '\0';
  return true;
}

void bd_url_encode(bd_buf_t *out, const char *s, size_t n) {
  static const char hex[] = "0123456789ABCDEF";
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
        c == '_' || c == '~') {
      bd_buf_putc(out, (char)c);
    } else {
      char e[3] = {'%', hex[c >> 4], hex[c & 15]};
      bd_buf_append(out, e, 3);
    }
  }
}

bool bd_query_get(bd_str_t query, const char *name, bd_buf_t *out) {
  size_t nl = strlen(name);
  const char *p = query.p, *end = query.p + query.len;
  while (p && p < end) {
    const char *amp = memchr(p, '&', (size_t)(end - p));
    const char *seg_end = amp ? amp : end;
    const char *eq = memchr(p, '=', (size_t)(seg_end - p));
    const char *kend = eq ? eq : seg_end;
    bd_buf_t key = BD_BUF_INIT;
    bool match = false;
    if (kend > p && bd_url_decode(&key, p, (size_t)(kend - p), true)) match = key.len == nl && !memcmp(key.data, name, nl);
    bd_buf_free(&key);
    if (match) {
      if (eq) {
        if (!bd_url_decode(out, eq + 1, (size_t)(seg_end - eq - 1), true)) return false;
      } else {
        bd_buf_reserve(out, 0);
        out->data[out->len] = '\0';
      }
      return true;
    }
    p = amp ? amp + 1 : NULL;
  }
  return false;
}

static void b64enc(bd_buf_t *out, const void *p, size_t n, int variant) {
  size_t len = sodium_base64_encoded_len(n, variant);
  bd_buf_reserve(out, len);
  sodium_bin2base64(out->data + out->len, len, p, n, variant);
  out->len += strlen(out->data + out->len);
}

static bool b64dec(bd_buf_t *out, const char *s, size_t n, int variant) {
  size_t cap = n / 4 * 3 + 3, bin_len = 0;
  const char *end;
  bd_buf_reserve(out, cap);
  if (sodium_base642bin((unsigned char *)out->data + out->len, cap, s, n, NULL, &bin_len, &end, variant) != 0 ||
      end != s + n)
    return false;
  out->len += bin_len;
  out->data[out->len] = '\0';
  return true;
}

void bd_b64_encode(bd_buf_t *out, const void *p, size_t n) { b64enc(out, p, n, sodium_base64_VARIANT_ORIGINAL); }
bool bd_b64_decode(bd_buf_t *out, const char *s, size_t n) { return b64dec(out, s, n, sodium_base64_VARIANT_ORIGINAL); }
void bd_b64url_encode(bd_buf_t *out, const void *p, size_t n) {
  b64enc(out, p, n, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
}
bool bd_b64url_decode(bd_buf_t *out, const char *s, size_t n) {
  return b64dec(out, s, n, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
}

void bd_hex_encode(char *out, const void *p, size_t n) { sodium_bin2hex(out, n * 2 + 1, p, n); }

void bd_sha256_hex(char out[65], const void *p, size_t n) {
  unsigned char h[crypto_hash_sha256_BYTES];
  crypto_hash_sha256(h, p, n);
  sodium_bin2hex(out, 65, h, sizeof h);
}

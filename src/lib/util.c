/* util.c: identifiers, time formatting, encodings and query strings. */
#include "util.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static const char k_b62[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
static const char k_hex_lc[] = "0123456789abcdef";

void bd_rand_base62(char *out, size_t n) {
  /* 62 does not divide 256: bytes >= 248 (= 4 * 62) are rejected so every
   * character is drawn uniformly; ~3% of bytes are wasted. One randombytes
   * call per 64 bytes instead of randombytes_uniform per character. */
  size_t i = 0;
  unsigned char rnd[64];
  while (i < n) {
    randombytes_buf(rnd, sizeof rnd);
    for (size_t k = 0; k < sizeof rnd && i < n; k++)
      if (rnd[k] < 248) out[i++] = k_b62[rnd[k] % 62];
  }
  out[n] = '\0';
  sodium_memzero(rnd, sizeof rnd); /* these bytes may be part of a secret */
}

static void uuid_fmt(char out[37], const uint8_t b[16]) {
  int o = 0;
  for (int i = 0; i < 16; i++) {
    if (i == 4 || i == 6 || i == 8 || i == 10) out[o++] = '-';
    out[o++] = k_hex_lc[b[i] >> 4];
    out[o++] = k_hex_lc[b[i] & 15];
  }
  out[36] = '\0';
}

/* RFC 9562: version in the high nibble of octet 6, variant 10 in the two
 * high bits of octet 8. */
static void uuid_set_version(uint8_t b[16], unsigned version) {
  b[6] = (uint8_t)((b[6] & 0x0F) | (version << 4));
  b[8] = (uint8_t)((b[8] & 0x3F) | 0x80);
}

void bd_uuid_v4(char out[37]) {
  uint8_t b[16];
  randombytes_buf(b, sizeof b);
  uuid_set_version(b, 4);
  uuid_fmt(out, b);
}

void bd_uuid_v7(char out[37]) {
  /* 48-bit big-endian Unix milliseconds, then 74 random bits: ids sort by
   * creation time, which keeps B-tree inserts at the right edge. */
  uint8_t b[16];
  randombytes_buf(b, sizeof b);
  uint64_t ms = (uint64_t)(bd_wall_us() / 1000);
  for (int i = 0; i < 6; i++) b[i] = (uint8_t)(ms >> (40 - 8 * i));
  uuid_set_version(b, 7);
  uuid_fmt(out, b);
}

static bool is_hex(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }

bool bd_uuid_valid(bd_str_t s) {
  if (s.len != 36) return false;
  for (size_t i = 0; i < 36; i++) {
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (s.p[i] != '-') return false;
    } else if (!is_hex(s.p[i])) {
      return false;
    }
  }
  return true;
}

void bd_time_fmt(char out[32], int64_t unix_us, bool micro) {
  /* floor division, so instants before 1970 keep a positive fraction */
  int64_t sec = unix_us / 1000000, frac = unix_us % 1000000;
  if (frac < 0) sec--, frac += 1000000;
  time_t t = (time_t)sec;
  struct tm tm;
  if (!gmtime_r(&t, &tm)) { /* year does not fit an int: nothing sensible to print */
    out[0] = '\0';
    return;
  }
  /* not strftime: %Y does not pad years below 1000 to the four digits
   * RFC 3339 requires. The widest int64 input (year -290308) needs 30
   * bytes; the compiler cannot know tm's ranges, hence the roomy tmp. */
  char tmp[96];
  long long year = (long long)tm.tm_year + 1900;
  if (year >= 0 && year <= 9999) {
    /* the common case, without printf: YYYY-MM-DDTHH:MM:SS[.ffffff]Z */
    int y = (int)year;
    char *o = out;
    *o++ = (char)('0' + y / 1000), *o++ = (char)('0' + y / 100 % 10), *o++ = (char)('0' + y / 10 % 10);
    *o++ = (char)('0' + y % 10);
    const int f[5] = {tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec};
    const char sep[5] = {'-', '-', 'T', ':', ':'};
    for (int i = 0; i < 5; i++) {
      *o++ = sep[i];
      *o++ = (char)('0' + f[i] / 10 % 10);
      *o++ = (char)('0' + f[i] % 10);
    }
    if (micro) {
      *o++ = '.';
      for (int64_t d = 100000; d > 0; d /= 10) *o++ = (char)('0' + frac / d % 10);
    }
    *o++ = 'Z';
    *o = '\0';
    return;
  }
  if (micro)
    snprintf(tmp, sizeof tmp, "%04lld-%02d-%02dT%02d:%02d:%02d.%06lldZ", year, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
             tm.tm_min, tm.tm_sec, (long long)frac);
  else
    snprintf(tmp, sizeof tmp, "%04lld-%02d-%02dT%02d:%02d:%02dZ", year, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
             tm.tm_min, tm.tm_sec);
  size_t n = strlen(tmp);
  if (n > 31) n = 31;
  memcpy(out, tmp, n);
  out[n] = '\0';
}

/* Exactly n ASCII digits at s (stops at the first non-digit, so reading
 * never passes a NUL). */
static bool digits(const char *s, int n, int *out) {
  int v = 0;
  for (int i = 0; i < n; i++) {
    if (s[i] < '0' || s[i] > '9') return false;
    v = v * 10 + (s[i] - '0');
  }
  *out = v;
  return true;
}

static bool is_leap(int y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

bool bd_time_parse(const char *s, int64_t *unix_us) {
  /* Fixed layout "YYYY-MM-DD?HH:MM:SS" where ? is 'T' (RFC 3339, either
   * case) or ' ' (PostgreSQL, and RFC 3339 §5.6 allows it too). */
  int Y, M, D, h, m, sec;
  if (!s || strlen(s) < 19) return false;
  if (!digits(s, 4, &Y) || s[4] != '-' || !digits(s + 5, 2, &M) || s[7] != '-' || !digits(s + 8, 2, &D) ||
      (s[10] != 'T' && s[10] != 't' && s[10] != ' ') || !digits(s + 11, 2, &h) || s[13] != ':' ||
      !digits(s + 14, 2, &m) || s[16] != ':' || !digits(s + 17, 2, &sec))
    return false;
  static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (M < 1 || M > 12 || D < 1 || D > mdays[M - 1] + (M == 2 && is_leap(Y))) return false;
  /* 60 is a leap second (RFC 3339); timegm folds it into the next minute */
  if (h > 23 || m > 59 || sec > 60) return false;
  const char *p = s + 19;
  int64_t frac = 0;
  if (*p == '.') {
    /* any number of digits; PostgreSQL prints 1-6, beyond microseconds we truncate */
    p++;
    int nd = 0;
    for (; *p >= '0' && *p <= '9'; p++, nd++)
      if (nd < 6) frac = frac * 10 + (*p - '0');
    if (nd == 0) return false;
    for (int k = nd; k < 6; k++) frac *= 10;
  }
  int off = 0; /* seconds east of UTC */
  if (*p == 'Z' || *p == 'z') {
    p++;
  } else if (*p == '+' || *p == '-') {
    /* "+HH" (PostgreSQL drops zero minutes), "+HH:MM", "+HHMM" */
    int sign = *p == '-' ? -1 : 1, oh, om = 0;
    p++;
    if (!digits(p, 2, &oh)) return false;
    p += 2;
    if (*p == ':') {
      if (!digits(p + 1, 2, &om)) return false;
      p += 3;
    } else if (*p >= '0' && *p <= '9') {
      if (!digits(p, 2, &om)) return false;
      p += 2;
    }
    if (oh > 23 || om > 59) return false;
    off = sign * (oh * 3600 + om * 60);
  } else {
    return false; /* a time without a zone is ambiguous */
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
  if (i >= s.len) return false; /* "" and "-" */
  uint64_t v = 0;
  for (; i < s.len; i++) {
    if (s.p[i] < '0' || s.p[i] > '9') return false;
    uint64_t d = (uint64_t)(s.p[i] - '0');
    if (v > (UINT64_MAX - d) / 10) return false;
    v = v * 10 + d;
  }
  /* the magnitude of INT64_MIN is INT64_MAX + 1 */
  if (v > (uint64_t)INT64_MAX + (neg ? 1 : 0)) return false;
  *out = neg ? (int64_t)(0 - v) : (int64_t)v;
  return true;
}

static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* Decodes one byte of percent-encoded text at s[*i] (n bytes in all) and
 * advances *i. Returns -1 for a malformed escape unless `lenient`, in which
 * case the '%' stands for itself (WHATWG URL form decoding). */
static int pct_next(const char *s, size_t n, size_t *i, bool form, bool lenient) {
  char c = s[*i];
  if (c == '%') {
    int a = *i + 2 < n ? hexval(s[*i + 1]) : -1, b = *i + 2 < n ? hexval(s[*i + 2]) : -1;
    if (a >= 0 && b >= 0) {
      *i += 3;
      return a * 16 + b;
    }
    if (!lenient) return -1;
  }
  (*i)++;
  return c == '+' && form ? ' ' : (unsigned char)c;
}

static bool pct_decode(bd_buf_t *out, const char *s, size_t n, bool form, bool lenient) {
  size_t start = out->len;
  bd_buf_reserve(out, n); /* decoding never grows the text */
  for (size_t i = 0; i < n;) {
    int c = pct_next(s, n, &i, form, lenient);
    if (c < 0) {
      out->len = start; /* leave out as it was */
      out->data[start] = '\0';
      return false;
    }
    out->data[out->len++] = (char)c;
  }
  out->data[out->len] = '\0'; /* also when nothing was appended to a fresh buffer */
  return true;
}

bool bd_url_decode(bd_buf_t *out, const char *s, size_t n, bool form) { return pct_decode(out, s, n, form, false); }

void bd_url_encode(bd_buf_t *out, const char *s, size_t n) {
  static const char hex[] = "0123456789ABCDEF"; /* RFC 3986 §2.1 prefers upper case */
  bd_buf_reserve(out, n);
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
  out->data[out->len] = '\0'; /* reserved above; matters when n == 0 on a fresh buffer */
}

void bd_html_escape(bd_buf_t *out, const char *s) {
  for (; s && *s; s++) {
    switch (*s) {
    case '<': bd_buf_puts(out, "&lt;"); break;
    case '>': bd_buf_puts(out, "&gt;"); break;
    case '&': bd_buf_puts(out, "&amp;"); break;
    case '"': bd_buf_puts(out, "&quot;"); break;
    case '\'': bd_buf_puts(out, "&#39;"); break;
    default: bd_buf_putc(out, *s);
    }
  }
}

/* Whether the form-encoded key k[0..n) decodes to exactly name[0..nl),
 * without allocating. */
static bool key_eq(const char *k, size_t n, const char *name, size_t nl) {
  size_t i = 0, j = 0;
  while (i < n) {
    int c = pct_next(k, n, &i, true, true);
    if (j >= nl || (unsigned char)name[j] != c) return false;
    j++;
  }
  return j == nl;
}

bool bd_query_get(bd_str_t query, const char *name, bd_buf_t *out) {
  if (!query.len) return false; /* before any arithmetic on a possibly NULL p */
  size_t nl = strlen(name);
  const char *p = query.p, *end = query.p + query.len;
  while (p < end) {
    const char *amp = memchr(p, '&', (size_t)(end - p));
    const char *seg_end = amp ? amp : end;
    const char *eq = memchr(p, '=', (size_t)(seg_end - p));
    const char *kend = eq ? eq : seg_end;
    /* "&&" and "&=x" carry no name and are skipped */
    if (kend > p && key_eq(p, (size_t)(kend - p), name, nl)) {
      /* "a" alone means present and empty; a malformed escape is kept as
       * text so the caller's validation reports it instead of the
       * parameter silently disappearing. */
      if (eq) (void)pct_decode(out, eq + 1, (size_t)(seg_end - eq - 1), true, true);
      else (void)pct_decode(out, "", 0, true, true);
      return true;
    }
    if (!amp) break;
    p = amp + 1;
  }
  return false;
}

static void b64enc(bd_buf_t *out, const void *p, size_t n, int variant) {
  size_t len = sodium_base64_encoded_len(n, variant); /* includes the NUL */
  bd_buf_reserve(out, len);
  sodium_bin2base64(out->data + out->len, len, p, n, variant);
  out->len += strlen(out->data + out->len);
}

/* libsodium is strict: the padded variant requires exactly the right '='
 * padding, the unpadded one stops at '=', and non-zero trailing bits are
 * rejected, so every binary value has exactly one accepted text. The end
 * pointer check rejects anything after the last valid character. */
static bool b64dec(bd_buf_t *out, const char *s, size_t n, int variant) {
  size_t cap = n / 4 * 3 + 3, bin_len = 0;
  const char *end = NULL;
  bd_buf_reserve(out, cap);
  if (sodium_base642bin((unsigned char *)out->data + out->len, cap, s, n, NULL, &bin_len, &end, variant) != 0 ||
      end != s + n) {
    out->data[out->len] = '\0'; /* a partial decode may have overwritten the NUL */
    return false;
  }
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

/* jcs.c: JSON Canonicalization Scheme (RFC 8785); see jcs.h. */
#include "jcs.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

/* ---- numbers ------------------------------------------------------------ */

/* strtod of mantissa digits m (an integer, no decimal point, so the locale
 * plays no part) times 10^exp10. */
static double digits_value(const char *m, int exp10) {
  char t[48];
  snprintf(t, sizeof t, "%se%d", m, exp10);
  return strtod(t, NULL);
}

/* Adds +1 or -1 to the last place of the decimal integer in m (len digits,
 * room for one more). A carry can make it one digit longer (999 + 1), a
 * borrow can leave a leading zero (100 - 1); both are harmless where the
 * result is used. */
static void step_last(char *m, int len, int dir) {
  int i = len - 1;
  if (dir > 0) {
    while (i >= 0 && m[i] == '9') m[i--] = '0';
    if (i >= 0) {
      m[i]++;
    } else {
      memmove(m + 1, m, (size_t)len + 1);
      m[0] = '1';
    }
  } else {
    while (i >= 0 && m[i] == '0') m[i--] = '9';
    if (i >= 0) m[i]--;
  }
}

/* The shortest decimal digits s (k of them, no leading or trailing zero)
 * and the exponent n with v = 0.s * 10^n, for a finite v > 0, chosen as
 * ECMAScript's Number::toString chooses them (ECMA-262, 6.1.6.1.20): k as
 * small as possible such that s * 10^(n-k) reads back as v, and among
 * those the closest to v.
 *
 * For each precision p = 1..17 the closest p-digit decimal is snprintf's
 * correctly rounded "%.*e". If it reads back as v it is the answer. If not,
 * the only other p-digit candidate is the neighbouring one on the other
 * side of v (the set of decimals that read back as v is an interval around
 * v): it can read back when it does not on the near side because that
 * interval is lopsided just above a power of two, where the doubles below
 * are twice as dense as those above. 17 digits always read back. */
static int shortest_digits(double v, char s[24], int *n) {
  for (int p = 1; p <= 17; p++) {
    char e[40];
    snprintf(e, sizeof e, "%.*e", p - 1, v);
    /* "d.ddde+XX" (or "de+XX" when p = 1) -> mantissa "dddd", exponent */
    char m[24];
    int len = 0;
    const char *q = e;
    for (; *q && *q != 'e'; q++)
      if (*q >= '0' && *q <= '9') m[len++] = *q;
    m[len] = '\0';
    int x = atoi(q + 1); /* v ~ d.ddd * 10^x */
    int exp10 = x - (p - 1);
    double r = digits_value(m, exp10);
    if (r != v) {
      step_last(m, len, r < v ? 1 : -1);
      if (digits_value(m, exp10) != v) continue;
      len = (int)strlen(m);
    }
    /* normalise: no leading zero (after a borrow), no trailing zeros */
    const char *a = m;
    while (*a == '0') a++;
    int k = (int)strlen(a);
    while (k > 1 && a[k - 1] == '0') {
      k--;
      exp10++;
    }
    memcpy(s, a, (size_t)k);
    s[k] = '\0';
    *n = exp10 + k;
    return k;
  }
  return -1; /* unreachable: %.16e of a finite double reads back */
}

int bd_jcs_number(double d, bd_buf_t *out) {
  if (!isfinite(d)) return -1;
  if (d == 0) { /* 0 and -0 */
    bd_buf_putc(out, '0');
    return 0;
  }
  /* integers below 2^53 are exactly their decimal digits */
  if (fabs(d) < 9007199254740992.0 && d == trunc(d)) {
    bd_buf_printf(out, "%lld", (long long)d);
    return 0;
  }
  char s[24];
  int n;
  int k = shortest_digits(fabs(d), s, &n);
  if (k < 0) return -1;
  if (d < 0) bd_buf_putc(out, '-');
  if (k <= n && n <= 21) { /* integer: digits then zeros */
    bd_buf_append(out, s, (size_t)k);
    for (int i = k; i < n; i++) bd_buf_putc(out, '0');
  } else if (0 < n && n <= 21) { /* the point inside the digits */
    bd_buf_append(out, s, (size_t)n);
    bd_buf_putc(out, '.');
    bd_buf_append(out, s + n, (size_t)(k - n));
  } else if (-6 < n && n <= 0) { /* 0.000ddd */
    bd_buf_puts(out, "0.");
    for (int i = n; i < 0; i++) bd_buf_putc(out, '0');
    bd_buf_append(out, s, (size_t)k);
  } else { /* d[.ddd]e+x or e-x */
    bd_buf_putc(out, s[0]);
    if (k > 1) {
      bd_buf_putc(out, '.');
      bd_buf_append(out, s + 1, (size_t)(k - 1));
    }
    bd_buf_printf(out, "e%c%d", n - 1 >= 0 ? '+' : '-', abs(n - 1));
  }
  return 0;
}

/* ---- strings ------------------------------------------------------------ */

/* Decodes the well-formed UTF-8 character at p (n >= 1 bytes available):
 * its length (1-4) and *cp, or 0 when the bytes are not well-formed
 * (RFC 3629 / Unicode Table 3-7: overlong forms, surrogates D800-DFFF and
 * code points above U+10FFFF are not). */
static size_t utf8_next(const unsigned char *p, size_t n, uint32_t *cp) {
  unsigned c = p[0];
  if (c < 0x80) {
    *cp = c;
    return 1;
  }
  size_t need;
  unsigned lo = 0x80, hi = 0xBF;
  uint32_t v;
  if (c >= 0xC2 && c <= 0xDF) {
    need = 2, v = c & 0x1F;
  } else if (c >= 0xE0 && c <= 0xEF) {
    need = 3, v = c & 0x0F;
    if (c == 0xE0) lo = 0xA0;      /* overlong */
    else if (c == 0xED) hi = 0x9F; /* surrogates */
  } else if (c >= 0xF0 && c <= 0xF4) {
    need = 4, v = c & 0x07;
    if (c == 0xF0) lo = 0x90;      /* overlong */
    else if (c == 0xF4) hi = 0x8F; /* above U+10FFFF */
  } else {
    return 0;
  }
  if (n < need) return 0;
  for (size_t i = 1; i < need; i++) {
    if (p[i] < lo || p[i] > hi) return 0;
    lo = 0x80, hi = 0xBF;
    v = v << 6 | (p[i] & 0x3F);
  }
  *cp = v;
  return need;
}

/* Offset of the first byte that is not well-formed UTF-8, or n. */
static size_t utf8_check(const char *s, size_t n) {
  const unsigned char *p = (const unsigned char *)s;
  size_t i = 0;
  uint32_t cp;
  while (i < n) {
    if (p[i] < 0x80) {
      i++;
      continue;
    }
    size_t l = utf8_next(p + i, n - i, &cp);
    if (!l) return i;
    i += l;
  }
  return n;
}

/* Appends a well-formed UTF-8 string as JCS writes it (ECMA-262
 * QuoteJSONString, the input having no lone surrogate). */
static void put_string(bd_buf_t *out, const char *s, size_t n) {
  static const char hex[] = "0123456789abcdef";
  const unsigned char *p = (const unsigned char *)s;
  bd_buf_reserve(out, n + 2);
  bd_buf_putc(out, '"');
  size_t i = 0;
  while (i < n) {
    size_t j = i;
    while (j < n && p[j] >= 0x20 && p[j] != '"' && p[j] != '\\') j++;
    if (j > i) bd_buf_append(out, s + i, j - i);
    if (j >= n) break;
    unsigned char c = p[j];
    switch (c) {
    case '"': bd_buf_puts(out, "\\\""); break;
    case '\\': bd_buf_puts(out, "\\\\"); break;
    case '\b': bd_buf_puts(out, "\\b"); break;
    case '\f': bd_buf_puts(out, "\\f"); break;
    case '\n': bd_buf_puts(out, "\\n"); break;
    case '\r': bd_buf_puts(out, "\\r"); break;
    case '\t': bd_buf_puts(out, "\\t"); break;
    default: {
      char u[7] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15], 0};
      bd_buf_append(out, u, 6);
    }
    }
    i = j + 1;
  }
  bd_buf_putc(out, '"');
}

/* ---- member order ------------------------------------------------------- */

typedef struct {
  const char *key;
  size_t len;
  json_t *value;
} member_t;

/* The UTF-16 order of a code point's first code unit, made comparable with
 * whole code points: U+0000..U+D7FF stay, supplementary characters (lead
 * surrogates D800..DBFF) keep their code point (all of them above U+D7FF),
 * and U+E000..U+FFFF move above every supplementary one. Equal first units
 * (two supplementary characters with one lead surrogate) then compare by
 * code point, which is their trail-surrogate order. */
static uint32_t utf16_rank(uint32_t cp) { return cp >= 0xE000 && cp <= 0xFFFF ? cp + 0x200000 : cp; }

/* Compares two well-formed UTF-8 names by their UTF-16 code units. */
static int member_cmp(const void *pa, const void *pb) {
  const member_t *a = pa, *b = pb;
  const unsigned char *x = (const unsigned char *)a->key, *y = (const unsigned char *)b->key;
  size_t i = 0, j = 0;
  while (i < a->len && j < b->len) {
    if (x[i] == y[j] && x[i] < 0x80) { /* the common case: same ASCII byte */
      i++, j++;
      continue;
    }
    uint32_t c, d;
    size_t l = utf8_next(x + i, a->len - i, &c), m = utf8_next(y + j, b->len - j, &d);
    if (!l || !m) return l ? 1 : m ? -1 : 0; /* not reached: names are checked first */
    if (c != d) return utf16_rank(c) < utf16_rank(d) ? -1 : 1;
    i += l, j += m;
  }
  return (i < a->len) - (j < b->len);
}

/* ---- values ------------------------------------------------------------- */

typedef struct {
  bd_buf_t *out;
  char *err;
  size_t errsz;
} jcs_t;

BD_PRINTF(2, 3) static int fail(jcs_t *j, const char *fmt, ...) {
  if (j->err && j->errsz) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(j->err, j->errsz, fmt, ap);
    va_end(ap);
  }
  return -1;
}

static int put_value(jcs_t *j, const json_t *v, int depth);

static int put_object(jcs_t *j, const json_t *v, int depth) {
  size_t n = json_object_size(v);
  if (n == 0) {
    bd_buf_puts(j->out, "{}");
    return 0;
  }
  member_t *m = bd_malloc(n * sizeof *m);
  size_t i = 0;
  const char *key;
  size_t klen;
  json_t *x;
  json_object_keylen_foreach((json_t *)v, key, klen, x) {
    if (i == n) break;
    size_t bad = utf8_check(key, klen);
    if (bad != klen) {
      free(m);
      return fail(j, "object member name is not valid UTF-8 (byte %zu)", bad);
    }
    m[i++] = (member_t){key, klen, x};
  }
  n = i;
  qsort(m, n, sizeof *m, member_cmp);
  bd_buf_putc(j->out, '{');
  for (i = 0; i < n; i++) {
    if (i) bd_buf_putc(j->out, ',');
    put_string(j->out, m[i].key, m[i].len);
    bd_buf_putc(j->out, ':');
    if (put_value(j, m[i].value, depth + 1) < 0) {
      free(m);
      return -1;
    }
  }
  bd_buf_putc(j->out, '}');
  free(m);
  return 0;
}

/* depth: the number of arrays and objects around v */
static int put_value(jcs_t *j, const json_t *v, int depth) {
  if ((json_is_object(v) || json_is_array(v)) && depth >= BD_JCS_MAX_DEPTH)
    return fail(j, "more than %d nested arrays and objects", BD_JCS_MAX_DEPTH);
  switch (json_typeof(v)) {
  case JSON_OBJECT:
    return put_object(j, v, depth);
  case JSON_ARRAY: {
    bd_buf_putc(j->out, '[');
    size_t i;
    json_t *x;
    json_array_foreach(v, i, x) {
      if (i) bd_buf_putc(j->out, ',');
      if (put_value(j, x, depth + 1) < 0) return -1;
    }
    bd_buf_putc(j->out, ']');
    return 0;
  }
  case JSON_STRING: {
    const char *s = json_string_value(v);
    size_t n = json_string_length(v);
    size_t bad = utf8_check(s, n);
    if (bad != n) return fail(j, "string is not valid UTF-8 (byte %zu)", bad);
    put_string(j->out, s, n);
    return 0;
  }
  case JSON_INTEGER: {
    json_int_t i = json_integer_value(v);
    double d = (double)i;
    /* exact when converting back gives i; 2^63 (INT64_MAX rounded up) is
     * out of json_int_t's range and so never exact */
    if (d >= 9223372036854775808.0 || (json_int_t)d != i)
      return fail(j, "integer %" JSON_INTEGER_FORMAT " is not exactly an IEEE-754 double", i);
    return bd_jcs_number(d, j->out) < 0 ? fail(j, "number is not finite") : 0;
  }
  case JSON_REAL:
    if (bd_jcs_number(json_real_value(v), j->out) < 0) return fail(j, "number is not finite");
    return 0;
  case JSON_TRUE:
    bd_buf_puts(j->out, "true");
    return 0;
  case JSON_FALSE:
    bd_buf_puts(j->out, "false");
    return 0;
  case JSON_NULL:
    bd_buf_puts(j->out, "null");
    return 0;
  }
  return fail(j, "unknown JSON type");
}

int bd_jcs_canonicalize(const json_t *v, bd_buf_t *out, char *err, size_t errsz) {
  jcs_t j = {out, err, errsz};
  size_t start = out->len;
  if (err && errsz) err[0] = '\0';
  if (!v) return fail(&j, "no value");
  if (put_value(&j, v, 0) == 0) return 0;
  out->len = start; /* leave out as it was */
  if (out->data) out->data[start] = '\0';
  return -1;
}

int bd_jcs_canonicalize_text(const char *json, size_t len, bd_buf_t *out, char *err, size_t errsz) {
  json_error_t je;
  json_t *v = json_loadb(json, len, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES | JSON_DECODE_INT_AS_REAL | JSON_ALLOW_NUL, &je);
  if (!v) {
    if (err && errsz) snprintf(err, errsz, "invalid JSON at line %d, column %d: %s", je.line, je.column, je.text);
    return -1;
  }
  int rc = bd_jcs_canonicalize(v, out, err, errsz);
  json_decref(v);
  return rc;
}

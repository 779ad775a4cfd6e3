/* json.c: streaming JSON writer and a depth pre-check.
 *
 * The writer never fails: output goes into a bd_buf_t whose allocations
 * abort on OOM. Misuse (a value where a key is expected, unbalanced ends) is
 * a caller bug and is not detected; the writer only guarantees correct
 * separators and correctly escaped strings.
 */
#include "json.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

void bd_jw_init(bd_jw_t *w, bd_buf_t *out) {
  memset(w, 0, sizeof *w);
  w->out = out;
}

/* The count slot of nesting level `depth` (>= 1). Levels deeper than
 * BD_JW_MAX_DEPTH share the last slot. That stays correct because only the
 * innermost level's count is ever consulted, and when a container closes its
 * parent is known to hold at least one value (the container itself), so
 * close_ can restore the parent's slot without having stored it. */
static uint8_t *slot(bd_jw_t *w, uint32_t depth) {
  return &w->count[(depth < BD_JW_MAX_DEPTH ? depth : BD_JW_MAX_DEPTH) - 1];
}

/* Emits the separator a new value (or key) needs at the current position:
 * nothing right after a key (the colon is already there), a comma before
 * every element but the first of a container. */
static void sep(bd_jw_t *w) {
  if (w->after_key) {
    w->after_key = false;
    return;
  }
  if (w->depth > 0) {
    uint8_t *c = slot(w, w->depth);
    if (*c) bd_buf_putc(w->out, ',');
    else *c = 1;
  }
}

static void open_(bd_jw_t *w, char c) {
  sep(w);
  bd_buf_putc(w->out, c);
  w->depth++;
  *slot(w, w->depth) = 0;
}

static void close_(bd_jw_t *w, char c) {
  bd_buf_putc(w->out, c);
  w->after_key = false; /* a dangling key is a caller bug; do not let it leak out */
  if (w->depth) w->depth--;
  if (w->depth) *slot(w, w->depth) = 1; /* see slot() */
}

void bd_jw_obj(bd_jw_t *w) { open_(w, '{'); }
void bd_jw_obj_end(bd_jw_t *w) { close_(w, '}'); }
void bd_jw_arr(bd_jw_t *w) { open_(w, '['); }
void bd_jw_arr_end(bd_jw_t *w) { close_(w, ']'); }

void bd_jw_keyn(bd_jw_t *w, const char *k, size_t n) {
  sep(w);
  bd_json_escape(w->out, k, n);
  bd_buf_putc(w->out, ':');
  w->after_key = true;
}

void bd_jw_key(bd_jw_t *w, const char *k) { bd_jw_keyn(w, k, strlen(k)); }

void bd_jw_strn(bd_jw_t *w, const char *s, size_t n) {
  sep(w);
  bd_json_escape(w->out, s, n);
}

void bd_jw_str(bd_jw_t *w, const char *s) {
  if (!s) {
    bd_jw_null(w);
    return;
  }
  bd_jw_strn(w, s, strlen(s));
}

void bd_jw_int(bd_jw_t *w, int64_t v) {
  sep(w);
  bd_buf_printf(w->out, "%lld", (long long)v);
}

void bd_jw_uint(bd_jw_t *w, uint64_t v) {
  sep(w);
  bd_buf_printf(w->out, "%llu", (unsigned long long)v);
}

void bd_jw_double(bd_jw_t *w, double v) {
  sep(w);
  /* JSON has no NaN or infinities; null is what JSON.stringify writes. */
  if (!isfinite(v)) {
    bd_buf_puts(w->out, "null");
    return;
  }
  /* The shortest of %.15g/%.16g/%.17g that parses back to the same double.
   * %.17g always round-trips, so the loop ends with a valid text. Integral
   * values below 1e15 come out without a fraction or exponent ("100"), the
   * way the reference serialises a float progress of 100.0. %g output is
   * valid JSON: "1e+300", "1e-05" and "-0" are all allowed by the grammar. */
  char tmp[32];
  for (int prec = 15; prec <= 17; prec++) {
    snprintf(tmp, sizeof tmp, "%.*g", prec, v);
    if (strtod(tmp, NULL) == v) break;
  }
  bd_buf_puts(w->out, tmp);
}

void bd_jw_bool(bd_jw_t *w, bool v) {
  sep(w);
  bd_buf_puts(w->out, v ? "true" : "false");
}

void bd_jw_null(bd_jw_t *w) {
  sep(w);
  bd_buf_puts(w->out, "null");
}

void bd_jw_rawn(bd_jw_t *w, const char *json, size_t n) {
  sep(w);
  bd_buf_append(w->out, json, n);
}

void bd_jw_raw(bd_jw_t *w, const char *json) {
  if (!json) {
    bd_jw_null(w);
    return;
  }
  bd_jw_rawn(w, json, strlen(json));
}

void bd_jw_kstr(bd_jw_t *w, const char *k, const char *v) {
  bd_jw_key(w, k);
  bd_jw_str(w, v);
}
void bd_jw_kint(bd_jw_t *w, const char *k, int64_t v) {
  bd_jw_key(w, k);
  bd_jw_int(w, v);
}
void bd_jw_kdouble(bd_jw_t *w, const char *k, double v) {
  bd_jw_key(w, k);
  bd_jw_double(w, v);
}
void bd_jw_kbool(bd_jw_t *w, const char *k, bool v) {
  bd_jw_key(w, k);
  bd_jw_bool(w, v);
}
void bd_jw_knull(bd_jw_t *w, const char *k) {
  bd_jw_key(w, k);
  bd_jw_null(w);
}
void bd_jw_kraw(bd_jw_t *w, const char *k, const char *json) {
  bd_jw_key(w, k);
  bd_jw_raw(w, json);
}

/* Classifies the non-ASCII UTF-8 sequence at p (n >= 1 bytes available).
 * Returns its length (2-4) when it is well-formed per RFC 3629 / Unicode
 * Table 3-7, which excludes overlong forms (C0, C1, E0 80-9F, F0 80-8F),
 * surrogates (ED A0-BF) and code points above U+10FFFF (F4 90+, F5-FF).
 * Otherwise returns 0 and sets *bad to the length of the "maximal subpart"
 * (the longest prefix that could still have started a valid sequence, at
 * least 1), so that a truncated character becomes a single U+FFFD, as the
 * Unicode standard and the WHATWG decoder recommend. */
static size_t utf8_seq(const unsigned char *p, size_t n, size_t *bad) {
  unsigned c = p[0];
  size_t need;
  unsigned lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
  if (c >= 0xC2 && c <= 0xDF) {
    need = 2;
  } else if (c >= 0xE0 && c <= 0xEF) {
    need = 3;
    if (c == 0xE0) lo = 0xA0;      /* overlong */
    else if (c == 0xED) hi = 0x9F; /* UTF-16 surrogates */
  } else if (c >= 0xF0 && c <= 0xF4) {
    need = 4;
    if (c == 0xF0) lo = 0x90;      /* overlong */
    else if (c == 0xF4) hi = 0x8F; /* above U+10FFFF */
  } else {
    *bad = 1; /* stray continuation byte, C0/C1, F5-FF */
    return 0;
  }
  size_t i = 1;
  for (; i < need && i < n; i++) {
    if (p[i] < lo || p[i] > hi) break;
    lo = 0x80, hi = 0xBF; /* later bytes are plain continuation bytes */
  }
  if (i == need) return need;
  *bad = i;
  return 0;
}

/* ASCII bytes a JSON string carries as they are (a table: one load per byte) */
static const bool k_plain[256] = {
    [0x20] = 1, [0x21] = 1, [0x23 ... 0x2e] = 1, [0x30 ... 0x5b] = 1, [0x5d ... 0x7f] = 1,
};

void bd_json_escape(bd_buf_t *out, const char *s, size_t n) {
  static const char hex[] = "0123456789abcdef";
  const unsigned char *p = (const unsigned char *)s;
  bd_buf_reserve(out, n + 2); /* the common case: nothing to escape */
  bd_buf_putc(out, '"');
  size_t i = 0;
  while (i < n) {
    /* copy the longest run that needs no escaping in one append */
    size_t j = i;
    while (j < n && k_plain[p[j]]) j++;
    if (j > i) bd_buf_append(out, s + i, j - i);
    i = j;
    if (i >= n) break;
    unsigned char c = p[i];
    if (c == '"') {
      bd_buf_puts(out, "\\\"");
      i++;
    } else if (c == '\\') {
      bd_buf_puts(out, "\\\\");
      i++;
    } else if (c == '/') {
      /* "</" becomes "<\/" so "</script>" cannot end an HTML script block
       * the JSON is embedded in; other slashes stay readable (URLs). */
      bd_buf_puts(out, i > 0 && p[i - 1] == '<' ? "\\/" : "/");
      i++;
    } else if (c < 0x20) {
      switch (c) {
      case '\n': bd_buf_puts(out, "\\n"); break;
      case '\r': bd_buf_puts(out, "\\r"); break;
      case '\t': bd_buf_puts(out, "\\t"); break;
      case '\b': bd_buf_puts(out, "\\b"); break;
      case '\f': bd_buf_puts(out, "\\f"); break;
      default: {
        char e[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
        bd_buf_append(out, e, sizeof e);
      }
      }
      i++;
    } else {
      size_t bad = 0, l = utf8_seq(p + i, n - i, &bad);
      if (l == 0) {
        bd_buf_puts(out, "\xEF\xBF\xBD"); /* U+FFFD REPLACEMENT CHARACTER */
        i += bad;
      } else if (l == 3 && p[i] == 0xE2 && p[i + 1] == 0x80 && (p[i + 2] == 0xA8 || p[i + 2] == 0xA9)) {
        /* U+2028/U+2029 are valid in JSON but end a line in JavaScript
         * before ES2019, which breaks JSONP-style embedding. */
        bd_buf_puts(out, p[i + 2] == 0xA8 ? "\\u2028" : "\\u2029");
        i += 3;
      } else {
        bd_buf_append(out, s + i, l);
        i += l;
      }
    }
  }
  bd_buf_putc(out, '"');
}

int bd_json_depth(const char *s, size_t n) {
  /* Only brackets outside strings count; inside a string a backslash hides
   * the next byte, so "\"" and "\\" are handled. Mismatched kinds ("[}")
   * are left to the parser: the depth is still an upper bound on nesting.
   * An unterminated text reports the depth reached so far, which is what
   * the caller needs to refuse "[[[[..." before jansson recurses. */
  long depth = 0, max = 0;
  bool in_str = false;
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    if (in_str) {
      if (c == '\\') i++;
      else if (c == '"') in_str = false;
      continue;
    }
    if (c == '"') {
      in_str = true;
    } else if (c == '{' || c == '[') {
      if (++depth > max) max = depth;
      if (max == INT32_MAX) return INT32_MAX; /* deeper than anything we accept */
    } else if (c == '}' || c == ']') {
      if (--depth < 0) return -1;
    }
  }
  return (int)max;
}

/* json.c: streaming JSON writer and a depth pre-check. */
#include "json.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

void bd_jw_init(bd_jw_t *w, bd_buf_t *out) {
  memset(w, 0, sizeof *w);
  w->out = out;
}

/* Emits the separator a new value needs at the current position. */
static void sep(bd_jw_t *w) {
  if (w->after_key) {
    w->after_key = false;
    return;
  }
  if (w->depth > 0) {
    if (w->count[w->depth - 1]) bd_buf_putc(w->out, ',');
    else w->count[w->depth - 1] = 1;
  }
}

static void open_(bd_jw_t *w, char c) {
  sep(w);
  bd_buf_putc(w->out, c);
  if (w->depth < BD_JW_MAX_DEPTH) w->count[w->depth] = 0;
  w->depth++;
}

static void close_(bd_jw_t *w, char c) {
  bd_buf_putc(w->out, c);
  if (w->depth) w->depth--;
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
  if (!isfinite(v)) {
    bd_buf_puts(w->out, "null");
    return;
  }
  if (v == floor(v) && fabs(v) < 1e15) {
    bd_buf_printf(w->out, "%.0f", v);
    return;
  }
  char tmp[40];
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

void bd_jw_kstr(bd_jw_t *w, const char *k, const char *v) { bd_jw_key(w, k), bd_jw_str(w, v); }
void bd_jw_kint(bd_jw_t *w, const char *k, int64_t v) { bd_jw_key(w, k), bd_jw_int(w, v); }
void bd_jw_kdouble(bd_jw_t *w, const char *k, double v) { bd_jw_key(w, k), bd_jw_double(w, v); }
void bd_jw_kbool(bd_jw_t *w, const char *k, bool v) { bd_jw_key(w, k), bd_jw_bool(w, v); }
void bd_jw_knull(bd_jw_t *w, const char *k) { bd_jw_key(w, k), bd_jw_null(w); }
void bd_jw_kraw(bd_jw_t *w, const char *k, const char *json) { bd_jw_key(w, k), bd_jw_raw(w, json); }

/* Length of the valid UTF-8 sequence at p (1-4), or 0 if invalid. Rejects
 * overlong forms, surrogates and code points above U+10FFFF. */
static size_t utf8_len(const unsigned char *p, size_t n) {
  unsigned c = p[0];
  if (c < 0x80) return 1;
  if (c >= 0xC2 && c <= 0xDF) return n >= 2 && (p[1] & 0xC0) == 0x80 ? 2 : 0;
  if (c >= 0xE0 && c <= 0xEF) {
    if (n < 3 || (p[1] & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80) return 0;
    if (c == 0xE0 && p[1] < 0xA0) return 0;  /* overlong */
    if (c == 0xED && p[1] >= 0xA0) return 0; /* surrogate */
    return 3;
  }
  if (c >= 0xF0 && c <= 0xF4) {
    if (n < 4 || (p[1] & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80 || (p[3] & 0xC0) != 0x80) return 0;
    if (c == 0xF0 && p[1] < 0x90) return 0; /* overlong */
    if (c == 0xF4 && p[1] >= 0x90) return 0; /* > U+10FFFF */
    return 4;
  }
  return 0;
}

void bd_json_escape(bd_buf_t *out, const char *s, size_t n) {
  static const char hex[] = "0123456789abcdef";
  const unsigned char *p = (const unsigned char *)s;
  bd_buf_reserve(out, n + 2);
  bd_buf_putc(out, '"');
  size_t i = 0;
  while (i < n) {
    /* copy the longest run that needs no escaping at once */
    size_t j = i;
    while (j < n && p[j] >= 0x20 && p[j] < 0x80 && p[j] != '"' && p[j] != '\\' && p[j] != '/') j++;
    if (j > i) bd_buf_append(out, s + i, j - i);
    i = j;
    if (i >= n) break;
    unsigned char c = p[i];
    if (c == '"') bd_buf_puts(out, "\\\""), i++;
    else if (c == '\\') bd_buf_puts(out, "\\\\"), i++;
    else if (c == '/') {
      /* "</" becomes "<\/" so the text is safe inside an HTML script */
      if (i > 0 && p[i - 1] == '<') bd_buf_puts(out, "\\/");
      else bd_buf_putc(out, '/');
      i++;
    } else if (c < 0x20) {
      switch (c) {
      case '\n': bd_buf_puts(out, "\\n"); break;
      case '\r': bd_buf_puts(out, "\\r"); break;
      case '\t': bd_buf_puts(out, "\\t"); break;
      case '\b': bd_buf_puts(out, "\\b"); break;
      case '\f': bd_buf_puts(out, "\\f"); break;
      default: {
        char e[7] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15], 0};
        bd_buf_puts(out, e);
      }
      }
      i++;
    } else {
      size_t l = utf8_len(p + i, n - i);
      if (l == 0) {
        bd_buf_puts(out, "\xEF\xBF\xBD"); /* U+FFFD */
        i++;
      } else if (l == 3 && p[i] == 0xE2 && p[i + 1] == 0x80 && (p[i + 2] == 0xA8 || p[i + 2] == 0xA9)) {
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
  int depth = 0, max = 0;
  bool in_str = false;
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    if (in_str) {
      if (c == '\\') i++;
      else if (c == '"') in_str = false;
      continue;
    }
    if (c == '"') in_str = true;
    else if (c == '{' || c == '[') {
      if (++depth > max) max = depth;
    } else if (c == '}' || c == ']') {
      if (--depth < 0) return -1;
    }
  }
  return max;
}

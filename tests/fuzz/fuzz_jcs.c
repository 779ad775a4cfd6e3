/* fuzz_jcs: JSON Canonicalization Scheme (RFC 8785), the bytes that
 * credential proofs sign (bd_jcs_canonicalize_text, src/lib/jcs.c).
 * Properties, for any text jansson accepts:
 *   - the canonical text has no whitespace outside strings and no raw
 *     control character inside them;
 *   - it parses back to a value equal to the input's (json_equal: same
 *     members, same strings, the same doubles);
 *   - canonicalising it again gives the same bytes (idempotence);
 *   - the members of every object come in strictly increasing order of
 *     their names' UTF-16 code units, checked here by converting the names
 *     to UTF-16, independently of the library's comparison;
 * for text jansson refuses, nothing is appended and an error is given; and
 * the first 8 bytes, read as a double, format as a number that reads back.
 * Seeds (tests/fuzz/corpus/jcs/): the RFC's examples, edge numbers and
 * names, and the six testdata/input files of the RFC's reference
 * implementations (github.com/cyberphone/json-canonicalization,
 * Apache-2.0).
 */
#include "jcs.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FLAGS (JSON_DECODE_ANY | JSON_REJECT_DUPLICATES | JSON_DECODE_INT_AS_REAL | JSON_ALLOW_NUL)

static void die(const char *what, const char *text) {
  fprintf(stderr, "fuzz_jcs: %s\n%s\n", what, text ? text : "");
  abort();
}

/* UTF-8 (valid: jansson parsed it) to UTF-16 code units; returns the count. */
static size_t to_utf16(const unsigned char *s, size_t n, uint16_t *u) {
  size_t k = 0;
  for (size_t i = 0; i < n;) {
    uint32_t c = s[i];
    size_t l = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
    if (l > 1) c &= 0x3F >> (l - 1);
    for (size_t j = 1; j < l; j++) c = c << 6 | (s[i + j] & 0x3F);
    i += l;
    if (c >= 0x10000) {
      c -= 0x10000;
      u[k++] = (uint16_t)(0xD800 + (c >> 10));
      u[k++] = (uint16_t)(0xDC00 + (c & 0x3FF));
    } else {
      u[k++] = (uint16_t)c;
    }
  }
  return k;
}

/* <0, 0, >0 as name a sorts before, with, after name b in UTF-16 order */
static int utf16_cmp(const char *a, size_t an, const char *b, size_t bn) {
  uint16_t *x = malloc((an + 1) * sizeof *x), *y = malloc((bn + 1) * sizeof *y);
  size_t xn = to_utf16((const unsigned char *)a, an, x), yn = to_utf16((const unsigned char *)b, bn, y);
  int r = 0;
  for (size_t i = 0; i < xn && i < yn && !r; i++) r = (int)x[i] - (int)y[i];
  if (!r) r = (xn > yn) - (xn < yn);
  free(x);
  free(y);
  return r;
}

static void check_order(const json_t *v, const char *text) {
  if (json_is_array(v)) {
    size_t i;
    json_t *x;
    json_array_foreach(v, i, x) check_order(x, text);
  } else if (json_is_object(v)) {
    const char *k, *prev = NULL;
    size_t kn, prevn = 0;
    json_t *x;
    json_object_keylen_foreach((json_t *)v, k, kn, x) {
      if (prev && utf16_cmp(prev, prevn, k, kn) >= 0) die("members out of UTF-16 order", text);
      prev = k, prevn = kn;
      check_order(x, text);
    }
  }
}

static void check_lexical(const char *s, size_t n) {
  bool in = false;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (in) {
      if (c < 0x20) die("raw control character in a string", s);
      if (c == '\\') i++; /* the escaped character */
      else if (c == '"') in = false;
    } else if (c == '"') {
      in = true;
    } else if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
      die("whitespace outside strings", s);
    }
  }
  if (in) die("unterminated string", s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > 1 << 16) return 0;
  if (size >= 8) {
    double d;
    memcpy(&d, data, sizeof d);
    bd_buf_t nb = BD_BUF_INIT;
    int rc = bd_jcs_number(d, &nb);
    if (rc != (isfinite(d) ? 0 : -1)) die("bd_jcs_number: wrong result", NULL);
    if (rc == 0 && strtod(nb.data, NULL) != d) die("number does not read back", nb.data);
    bd_buf_free(&nb);
  }
  /* an exact-size copy: ASan catches any read past the text */
  char *p = malloc(size ? size : 1);
  memcpy(p, data, size);
  json_t *v = json_loadb(p, size, FLAGS, NULL);
  bd_buf_t out = BD_BUF_INIT;
  char err[160] = "";
  int rc = bd_jcs_canonicalize_text(p, size, &out, err, sizeof err);
  free(p);
  if (!v) {
    if (rc != -1 || out.len != 0 || !err[0]) die("refused text: not an error", out.data);
    bd_buf_free(&out);
    return 0;
  }
  if (rc < 0) {
    /* only what jansson holds but JCS refuses: deep nesting */
    if (!strstr(err, "nested")) die(err, NULL);
    json_decref(v);
    bd_buf_free(&out);
    return 0;
  }
  check_lexical(out.data, out.len);
  json_t *w = json_loadb(out.data, out.len, FLAGS, NULL);
  if (!w) die("canonical text does not parse", out.data);
  if (!json_equal(v, w)) die("canonical text is not the same value", out.data);
  check_order(w, out.data);
  bd_buf_t again = BD_BUF_INIT;
  if (bd_jcs_canonicalize(w, &again, err, sizeof err) < 0) die(err, out.data);
  if (again.len != out.len || memcmp(again.data, out.data, out.len) != 0) die("not idempotent", out.data);
  bd_buf_free(&again);
  json_decref(w);
  json_decref(v);
  bd_buf_free(&out);
  return 0;
}

/* test_json.c: the JSON writer, escaping and the depth pre-check. */
#include "json.h"
#include "unit.h"

#include <float.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>

/* Parses text with jansson (which also validates UTF-8); NULL if invalid.
 * Integers as reals: UINT64_MAX is valid JSON but overflows json_int_t. */
static json_t *parse(const char *text, size_t n) {
  return json_loadb(text, n, JSON_DECODE_ANY | JSON_ALLOW_NUL | JSON_DECODE_INT_AS_REAL, NULL);
}

static void test_structure(void) {
  bd_buf_t b = BD_BUF_INIT;
  bd_jw_t w;
  bd_jw_init(&w, &b);
  bd_jw_obj(&w);
  bd_jw_kstr(&w, "a", "x");
  bd_jw_kint(&w, "b", -42);
  bd_jw_key(&w, "c");
  bd_jw_arr(&w);
  bd_jw_int(&w, 1);
  bd_jw_bool(&w, true);
  bd_jw_bool(&w, false);
  bd_jw_null(&w);
  bd_jw_obj(&w);
  bd_jw_obj_end(&w);
  bd_jw_arr(&w);
  bd_jw_arr_end(&w);
  bd_jw_str(&w, "s");
  bd_jw_arr_end(&w);
  bd_jw_kraw(&w, "d", "{\"z\":[1,2]}");
  bd_jw_kstr(&w, "e", NULL);
  bd_jw_knull(&w, "f");
  bd_jw_kbool(&w, "g", true);
  bd_jw_kdouble(&w, "h", 0.5);
  bd_jw_kraw(&w, "i", NULL);
  bd_jw_keyn(&w, "jjj", 1);
  bd_jw_strn(&w, "xyz", 2);
  bd_jw_key(&w, "k");
  bd_jw_uint(&w, UINT64_MAX);
  bd_jw_kint(&w, "l", INT64_MIN);
  bd_jw_key(&w, "m");
  bd_jw_rawn(&w, "[1]garbage", 3);
  bd_jw_obj_end(&w);
  CHECK_STR(b.data, "{\"a\":\"x\",\"b\":-42,\"c\":[1,true,false,null,{},[],\"s\"],\"d\":{\"z\":[1,2]},\"e\":null,"
                    "\"f\":null,\"g\":true,\"h\":0.5,\"i\":null,\"j\":\"xy\",\"k\":18446744073709551615,"
                    "\"l\":-9223372036854775808,\"m\":[1]}");
  CHECK_INT(w.depth, 0);
  /* and it is valid JSON for an independent parser */
  json_t *j = parse(b.data, b.len);
  CHECK(j != NULL);
  json_decref(j);
  bd_buf_free(&b);
}

/* Values after a closed container need a comma; containers as first
 * elements do not. */
static void test_separators(void) {
  bd_buf_t b = BD_BUF_INIT;
  bd_jw_t w;
  bd_jw_init(&w, &b);
  bd_jw_arr(&w);
  bd_jw_arr(&w);
  bd_jw_arr(&w);
  bd_jw_arr_end(&w);
  bd_jw_arr_end(&w);
  bd_jw_obj(&w);
  bd_jw_key(&w, "a");
  bd_jw_obj(&w);
  bd_jw_obj_end(&w);
  bd_jw_key(&w, "b");
  bd_jw_arr(&w);
  bd_jw_arr_end(&w);
  bd_jw_obj_end(&w);
  bd_jw_int(&w, 7);
  bd_jw_arr_end(&w);
  CHECK_STR(b.data, "[[[]],{\"a\":{},\"b\":[]},7]");
  /* a scalar at the top level */
  bd_buf_reset(&b);
  bd_jw_init(&w, &b);
  bd_jw_str(&w, "only");
  CHECK_STR(b.data, "\"only\"");
  /* the writer can be reused for a second document after init */
  bd_buf_reset(&b);
  bd_jw_init(&w, &b);
  bd_jw_obj(&w);
  bd_jw_obj_end(&w);
  CHECK_STR(b.data, "{}");
  bd_buf_free(&b);
}

/* Nesting beyond BD_JW_MAX_DEPTH still gets its commas right (deep levels
 * share a count slot; closing restores the parent's). */
static void test_deep_nesting(void) {
  enum { DEPTH = 3 * BD_JW_MAX_DEPTH };
  bd_buf_t b = BD_BUF_INIT, want = BD_BUF_INIT;
  bd_jw_t w;
  bd_jw_init(&w, &b);
  /* at each level: [0, <child>, 1]; innermost [0, 1] */
  for (int d = 0; d < DEPTH; d++) {
    bd_jw_arr(&w);
    bd_jw_int(&w, 0);
    bd_buf_puts(&want, "[0,");
  }
  bd_buf_puts(&want, "1");
  bd_jw_int(&w, 1);
  for (int d = 0; d < DEPTH; d++) {
    bd_jw_arr_end(&w);
    bd_jw_int(&w, 1);
    bd_buf_puts(&want, d == DEPTH - 1 ? "]" : "],1");
  }
  /* the last bd_jw_int above went to the top level: a second value */
  CHECK(b.len == want.len + 1);
  b.data[--b.len] = '\0';
  CHECK_STR(b.data, want.data);
  CHECK_INT(bd_json_depth(b.data, b.len), DEPTH);
  json_t *j = json_loadb(b.data, b.len, 0, NULL);
  CHECK(j != NULL);
  json_decref(j);
  /* objects too */
  bd_buf_reset(&b);
  bd_jw_init(&w, &b);
  for (int d = 0; d < 100; d++) {
    bd_jw_obj(&w);
    bd_jw_kint(&w, "x", d);
    bd_jw_key(&w, "y");
  }
  bd_jw_null(&w);
  for (int d = 0; d < 100; d++) {
    bd_jw_kint(&w, "z", d);
    bd_jw_obj_end(&w);
  }
  j = json_loadb(b.data, b.len, 0, NULL);
  CHECK(j != NULL);
  json_decref(j);
  CHECK_INT(w.depth, 0);
  bd_buf_free(&b);
  bd_buf_free(&want);
}

static void dbl(double v, const char *want) {
  bd_buf_t b = BD_BUF_INIT;
  bd_jw_t w;
  bd_jw_init(&w, &b);
  bd_jw_double(&w, v);
  CHECK_STR(b.data, want);
  if (isfinite(v)) CHECK(strtod(b.data, NULL) == v);
  bd_buf_free(&b);
}

static void test_doubles(void) {
  dbl(100.0, "100"); /* the certificate progress field */
  dbl(0.0, "0");
  dbl(-0.0, "-0");
  dbl(-3.0, "-3");
  dbl(0.1, "0.1");
  dbl(2.5, "2.5");
  dbl(1.0 / 3, "0.3333333333333333");     /* needs 16 digits */
  dbl(0.1 + 0.2, "0.30000000000000004");  /* needs 17 digits */
  dbl(100.0 / 3, "33.333333333333336");
  dbl(123456789012345.0, "123456789012345");
  dbl(1e15, "1e+15");
  dbl(9007199254740992.0, "9007199254740992");
  dbl(1e300, "1e+300");
  dbl(1e-7, "1e-07");
  dbl(-1.5e-10, "-1.5e-10");
  dbl(DBL_MAX, "1.7976931348623157e+308");
  dbl(5e-324, "4.94065645841247e-324"); /* denormal: 15 digits already round-trip */
  dbl(NAN, "null");
  dbl(INFINITY, "null");
  dbl(-INFINITY, "null");

  /* Random bit patterns: every finite one round-trips, and the text is a
   * JSON number jansson accepts. */
  srand(12345);
  int bad = 0;
  for (int i = 0; i < 20000; i++) {
    uint64_t bits = 0;
    for (int k = 0; k < 4; k++) bits = bits << 16 | (uint64_t)(rand() & 0xFFFF);
    double v;
    memcpy(&v, &bits, sizeof v);
    bd_buf_t b = BD_BUF_INIT;
    bd_jw_t w;
    bd_jw_init(&w, &b);
    bd_jw_double(&w, v);
    if (!isfinite(v)) {
      bad += strcmp(b.data, "null") != 0;
    } else {
      bad += strtod(b.data, NULL) != v;
      json_t *j = parse(b.data, b.len);
      bad += !json_is_number(j);
      json_decref(j);
    }
    bd_buf_free(&b);
  }
  CHECK_INT(bad, 0);
}

static void esc(const char *in, size_t n, const char *want) {
  bd_buf_t b = BD_BUF_INIT;
  bd_json_escape(&b, in, n);
  CHECK_STR(b.data, want);
  bd_buf_free(&b);
}

#define FFFD "\xef\xbf\xbd"

static void test_escaping(void) {
  esc("", 0, "\"\"");
  esc(NULL, 0, "\"\"");
  esc("plain", 5, "\"plain\"");
  esc("q\"b\\s", 5, "\"q\\\"b\\\\s\"");
  esc("\n\r\t\b\f", 5, "\"\\n\\r\\t\\b\\f\"");
  esc("\x01\x1f\x0b", 3, "\"\\u0001\\u001f\\u000b\"");
  esc("nul\0x", 5, "\"nul\\u0000x\"");
  esc("\x7f~", 2, "\"\x7f~\""); /* DEL is allowed raw */
  /* "</" only */
  esc("</script>", 9, "\"<\\/script>\"");
  esc("a/b", 3, "\"a/b\"");
  esc("/", 1, "\"/\"");
  esc("<//", 3, "\"<\\//\"");
  esc("<", 1, "\"<\"");
  esc("< /", 3, "\"< /\"");
  esc("https://x.y/z", 13, "\"https://x.y/z\"");
  /* valid UTF-8 is kept, including the range boundaries */
  esc("Zo\xc3\xab \xe7\x8e\x8b \xf0\x9f\x98\x80", 13, "\"Zo\xc3\xab \xe7\x8e\x8b \xf0\x9f\x98\x80\"");
  esc("\xc2\x80", 2, "\"\xc2\x80\"");             /* U+0080 */
  esc("\xe0\xa0\x80", 3, "\"\xe0\xa0\x80\"");     /* U+0800 */
  esc("\xed\x9f\xbf", 3, "\"\xed\x9f\xbf\"");     /* U+D7FF */
  esc("\xee\x80\x80", 3, "\"\xee\x80\x80\"");     /* U+E000 */
  esc("\xef\xbf\xbf", 3, "\"\xef\xbf\xbf\"");     /* U+FFFF */
  esc("\xf0\x90\x80\x80", 4, "\"\xf0\x90\x80\x80\""); /* U+10000 */
  esc("\xf4\x8f\xbf\xbf", 4, "\"\xf4\x8f\xbf\xbf\""); /* U+10FFFF */
  esc("\xe2\x80\xa7", 3, "\"\xe2\x80\xa7\"");         /* U+2027 is fine */
  esc("\xe2\x80\xa8\xe2\x80\xa9", 6, "\"\\u2028\\u2029\"");
  /* invalid UTF-8: one U+FFFD per maximal subpart (Unicode §3.9) */
  esc("a\xff" "b", 3, "\"a" FFFD "b\"");
  esc("\x80", 1, "\"" FFFD "\"");                   /* stray continuation */
  esc("\xc0\xaf", 2, "\"" FFFD FFFD "\"");          /* overlong '/' */
  esc("\xc1\xbf", 2, "\"" FFFD FFFD "\"");          /* overlong */
  esc("\xe0\x9f\x80", 3, "\"" FFFD FFFD FFFD "\""); /* overlong 3-byte */
  esc("\xf0\x8f\xbf\xbf", 4, "\"" FFFD FFFD FFFD FFFD "\""); /* overlong 4-byte */
  esc("\xed\xa0\x80", 3, "\"" FFFD FFFD FFFD "\""); /* surrogate D800 */
  esc("\xed\xbf\xbf", 3, "\"" FFFD FFFD FFFD "\""); /* surrogate DFFF */
  esc("\xf4\x90\x80\x80", 4, "\"" FFFD FFFD FFFD FFFD "\""); /* > U+10FFFF */
  esc("\xf5\x80\x80\x80", 4, "\"" FFFD FFFD FFFD FFFD "\"");
  esc("\xe7\x8e", 2, "\"" FFFD "\"");               /* truncated at the end */
  esc("\xe7\x8e" "a", 3, "\"" FFFD "a\"");          /* truncated before ASCII */
  esc("\xf0\x9f\x98" "\"", 4, "\"" FFFD "\\\"\"");  /* truncated before a quote */
  esc("\xc3", 1, "\"" FFFD "\"");
  esc("\xc3\xc3\xab", 3, "\"" FFFD "\xc3\xab\"");   /* a new lead byte ends the subpart */
  /* a string is never cut short by a NUL or a bad byte: n rules */
  esc("ab", 1, "\"a\"");
}

/* Property test: for arbitrary bytes the output is one JSON string that
 * jansson accepts (it rejects invalid UTF-8 and raw control characters),
 * valid input decodes back to itself, and nothing unsafe for HTML script
 * embedding survives. */
static void test_escape_random(void) {
  static const unsigned char alphabet[] = {'a', '"', '\\', '/', '<', '\n', 0x00, 0x1f, 0x7f, 0x80, 0xbf, 0xc2,
                                           0xc3, 0xe0, 0xe2, 0xa8, 0xed, 0xa0, 0xf0, 0x9f, 0xf4, 0x8f, 0xff};
  srand(777);
  int bad = 0;
  for (int iter = 0; iter < 5000; iter++) {
    unsigned char in[24];
    size_t n = (size_t)(rand() % (int)sizeof in);
    for (size_t i = 0; i < n; i++) in[i] = alphabet[rand() % (int)sizeof alphabet];
    bd_buf_t b = BD_BUF_INIT;
    bd_json_escape(&b, (const char *)in, n);
    json_t *j = parse(b.data, b.len);
    if (!json_is_string(j)) {
      bad++;
    } else {
      /* input that jansson deems valid UTF-8 must decode back unchanged */
      json_t *direct = json_stringn((const char *)in, n);
      if (direct && !json_equal(direct, j)) bad++;
      json_decref(direct);
      if (strstr(b.data, "</") || strstr(b.data, "\xe2\x80\xa8") || strstr(b.data, "\xe2\x80\xa9")) bad++;
    }
    json_decref(j);
    bd_buf_free(&b);
  }
  CHECK_INT(bad, 0);
}

/* Valid UTF-8 text round-trips exactly through escape + jansson decode. */
static void test_escape_roundtrip(void) {
  const char *samples[] = {"", "hello", "tab\there", "quote\" back\\slash", "</script><!--", "\xe2\x80\xa8 sep",
                           "Zo\xc3\xab \xe7\x8e\x8b \xf0\x9f\x98\x80", "\x01\x02\x1f end"};
  for (size_t i = 0; i < BD_ARRAY_LEN(samples); i++) {
    bd_buf_t b = BD_BUF_INIT;
    bd_json_escape(&b, samples[i], strlen(samples[i]));
    json_t *j = parse(b.data, b.len);
    CHECK(json_is_string(j));
    if (json_is_string(j)) CHECK_STR(json_string_value(j), samples[i]);
    json_decref(j);
    bd_buf_free(&b);
  }
  /* embedded NUL */
  bd_buf_t b = BD_BUF_INIT;
  bd_json_escape(&b, "a\0b", 3);
  json_t *j = parse(b.data, b.len);
  CHECK(json_is_string(j) && json_string_length(j) == 3 && !memcmp(json_string_value(j), "a\0b", 3));
  json_decref(j);
  bd_buf_free(&b);
}

/* Keys are escaped like strings; appends go after existing content. */
static void test_keys_and_append(void) {
  bd_buf_t b = BD_BUF_INIT;
  bd_buf_puts(&b, "prefix:");
  bd_jw_t w;
  bd_jw_init(&w, &b);
  bd_jw_obj(&w);
  bd_jw_kstr(&w, "k\"</", "v");
  bd_jw_keyn(&w, "n\0ul", 4);
  bd_jw_int(&w, 0);
  bd_jw_obj_end(&w);
  CHECK_STR(b.data, "prefix:{\"k\\\"<\\/\":\"v\",\"n\\u0000ul\":0}");
  bd_buf_free(&b);
}

static void test_depth(void) {
  CHECK_INT(bd_json_depth("", 0), 0);
  CHECK_INT(bd_json_depth("1", 1), 0);
  CHECK_INT(bd_json_depth("\"[\"", 3), 0);
  CHECK_INT(bd_json_depth("{}", 2), 1);
  CHECK_INT(bd_json_depth("[[[]]]", 6), 3);
  CHECK_INT(bd_json_depth("[[],[[]],[]]", 12), 3);
  CHECK_INT(bd_json_depth("{\"a\":\"[[[[\",\"b\":[1]}", 20), 2); /* brackets in strings ignored */
  CHECK_INT(bd_json_depth("[\"\\\"[[\"]", 9), 1);                 /* escaped quote inside a string */
  CHECK_INT(bd_json_depth("[\"a\\\\\",[1]]", 11), 2);             /* escaped backslash ends before the quote */
  CHECK_INT(bd_json_depth("[\"\\\\\\\"[\"]", 10), 1);             /* \\ then \" inside one string */
  CHECK_INT(bd_json_depth("{\"}}}\":{\"]]\":[\"{{\"]}}", 22), 3);
  CHECK_INT(bd_json_depth("]", 1), -1);
  CHECK_INT(bd_json_depth("[]]", 3), -1);
  CHECK_INT(bd_json_depth("}{", 2), -1);
  CHECK_INT(bd_json_depth("[[[", 3), 3);          /* unterminated: depth so far */
  CHECK_INT(bd_json_depth("[\"]]]]", 6), 1);      /* unterminated string */
  CHECK_INT(bd_json_depth("[1]\0[[[", 7), 3);     /* n rules, not NUL */
  char deep[2000];
  for (int i = 0; i < 1000; i++) deep[i] = '[', deep[1999 - i] = ']';
  CHECK_INT(bd_json_depth(deep, 2000), 1000);
  CHECK_INT(bd_json_depth(deep, 1000), 1000); /* "[[[[..." with no end still counts */
}

int main(void) {
  RUN(test_structure);
  RUN(test_separators);
  RUN(test_deep_nesting);
  RUN(test_doubles);
  RUN(test_escaping);
  RUN(test_escape_random);
  RUN(test_escape_roundtrip);
  RUN(test_keys_and_append);
  RUN(test_depth);
  UNIT_DONE();
}

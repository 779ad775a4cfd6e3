/* test_json.c: the JSON writer, escaping and the depth pre-check. */
#include "json.h"
#include "unit.h"

#include <jansson.h>
#include <stdlib.h>

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
  bd_jw_null(&w);
  bd_jw_obj(&w);
  bd_jw_obj_end(&w);
  bd_jw_arr(&w);
  bd_jw_arr_end(&w);
  bd_jw_arr_end(&w);
  bd_jw_kraw(&w, "d", "{\"z\":[1,2]}");
  bd_jw_kstr(&w, "e", NULL);
  bd_jw_knull(&w, "f");
  bd_jw_obj_end(&w);
  CHECK_STR(b.data, "{\"a\":\"x\",\"b\":-42,\"c\":[1,true,null,{},[]],\"d\":{\"z\":[1,2]},\"e\":null,\"f\":null}");
  /* and it is valid JSON for an independent parser */
  json_t *j = json_loads(b.data, 0, NULL);
  CHECK(j != NULL);
  json_decref(j);
  bd_buf_free(&b);
}

static void test_doubles(void) {
  struct {
    double v;
    const char *want;
  } cases[] = {{100.0, "100"}, {0.0, "0"}, {-3.0, "-3"}, {0.1, "0.1"}, {33.333333333333336, "33.333333333333336"},
               {1e300, "1.0000000000000001e+300"}, {2.5, "2.5"}};
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    bd_buf_t b = BD_BUF_INIT;
    bd_jw_t w;
    bd_jw_init(&w, &b);
    bd_jw_double(&w, cases[i].v);
    if (cases[i].v != 1e300) CHECK_STR(b.data, cases[i].want);
    CHECK(strtod(b.data, NULL) == cases[i].v); /* round-trips */
    bd_buf_free(&b);
  }
  bd_buf_t b = BD_BUF_INIT;
  bd_jw_t w;
  bd_jw_init(&w, &b);
  bd_jw_arr(&w);
  bd_jw_double(&w, 0.0 / 0.0);
  bd_jw_double(&w, 1.0 / 0.0);
  bd_jw_arr_end(&w);
  CHECK_STR(b.data, "[null,null]");
  bd_buf_free(&b);
}

static void esc(const char *in, size_t n, const char *want) {
  bd_buf_t b = BD_BUF_INIT;
  bd_json_escape(&b, in, n);
  CHECK_STR(b.data, want);
  bd_buf_free(&b);
}

static void test_escaping(void) {
  esc("plain", 5, "\"plain\"");
  esc("q\"b\\s", 5, "\"q\\\"b\\\\s\"");
  esc("\n\r\t\b\f", 5, "\"\\n\\r\\t\\b\\f\"");
  esc("\x01\x1f", 2, "\"\\u0001\\u001f\"");
  esc("</script>", 9, "\"<\\/script>\"");
  esc("a/b", 3, "\"a/b\"");
  esc("Zo\xc3\xab \xe7\x8e\x8b \xf0\x9f\x98\x80", 13, "\"Zo\xc3\xab \xe7\x8e\x8b \xf0\x9f\x98\x80\""); /* UTF-8 kept */
  esc("\xe2\x80\xa8\xe2\x80\xa9", 6, "\"\\u2028\\u2029\"");
  esc("a\xff" "b", 3, "\"a\xef\xbf\xbd" "b\"");                   /* invalid byte */
  esc("\xc0\xaf", 2, "\"\xef\xbf\xbd\xef\xbf\xbd\"");                /* overlong '/' */
  esc("\xed\xa0\x80", 3, "\"\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\""); /* surrogate */
  esc("\xf4\x90\x80\x80", 4, "\"\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\""); /* > U+10FFFF */
  esc("\xe7\x8e", 2, "\"\xef\xbf\xbd\xef\xbf\xbd\"");                 /* truncated */
  esc("nul\0x", 5, "\"nul\\u0000x\"");
}

static void test_depth(void) {
  CHECK_INT(bd_json_depth("{}", 2), 1);
  CHECK_INT(bd_json_depth("1", 1), 0);
  CHECK_INT(bd_json_depth("[[[]]]", 6), 3);
  CHECK_INT(bd_json_depth("{\"a\":\"[[[[\",\"b\":[1]}", 20), 2); /* brackets in strings ignored */
  CHECK_INT(bd_json_depth("[\"\\\"[[\"]", 9), 1);                 /* escaped quote inside a string */
  CHECK_INT(bd_json_depth("]", 1), -1);
  char deep[200];
  for (int i = 0; i < 100; i++) deep[i] = '[', deep[199 - i] = ']';
  CHECK_INT(bd_json_depth(deep, 200), 100);
}

int main(void) {
  RUN(test_structure);
  RUN(test_doubles);
  RUN(test_escaping);
  RUN(test_depth);
  UNIT_DONE();
}

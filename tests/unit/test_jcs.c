/* test_jcs.c: JSON Canonicalization Scheme (RFC 8785).
 *
 * Vectors: RFC 8785 Appendix B (number serialisation), the section 3.2.2
 * and 3.2.3 examples, and the test data of the RFC's reference
 * implementations (github.com/cyberphone/json-canonicalization,
 * testdata/input and testdata/output, Apache-2.0, copied here as C strings;
 * each output was checked against its testdata/outhex bytes). The ES6
 * number test file of the same repository is regenerated here by its
 * deterministic algorithm (testdata/numgen.go) and its SHA-256 compared
 * with the published checksum, which tests the number formatting on
 * 100,000 values against ECMAScript's own output.
 */
#include "jcs.h"
#include "unit.h"

#include <math.h>
#include <sodium.h>
#include <stdlib.h>

/* canonical text of json text, or "ERR: message" */
static char *canon_text(const char *json) {
  bd_buf_t b = BD_BUF_INIT;
  char err[200];
  if (bd_jcs_canonicalize_text(json, strlen(json), &b, err, sizeof err) < 0) {
    bd_buf_free(&b);
    bd_buf_printf(&b, "ERR: %s", err);
  }
  return bd_buf_detach(&b, NULL);
}

static char *canon(const json_t *v) {
  bd_buf_t b = BD_BUF_INIT;
  char err[200];
  if (bd_jcs_canonicalize(v, &b, err, sizeof err) < 0) {
    bd_buf_free(&b);
    bd_buf_printf(&b, "ERR: %s", err);
  }
  return bd_buf_detach(&b, NULL);
}

static char *number(double d) {
  bd_buf_t b = BD_BUF_INIT;
  if (bd_jcs_number(d, &b) < 0) bd_buf_puts(&b, "ERR");
  return bd_buf_detach(&b, NULL);
}

static double from_bits(uint64_t u) {
  double d;
  memcpy(&d, &u, sizeof d);
  return d;
}

#define CHECK_CANON_TEXT(in, want)                                         \
  do {                                                                     \
    char *got_ = canon_text(in);                                           \
    CHECK_STR(got_, want);                                                 \
    free(got_);                                                            \
  } while (0)

/* RFC 8785 Appendix B: IEEE-754 bit patterns and their JCS text. */
static void test_appendix_b(void) {
  static const struct {
    uint64_t bits;
    const char *want;
  } t[] = {
      {0x0000000000000000, "0"},                        /* zero */
      {0x8000000000000000, "0"},                        /* minus zero */
      {0x0000000000000001, "5e-324"},                   /* min pos number */
      {0x8000000000000001, "-5e-324"},                  /* min neg number */
      {0x7fefffffffffffff, "1.7976931348623157e+308"},  /* max pos number */
      {0xffefffffffffffff, "-1.7976931348623157e+308"}, /* max neg number */
      {0x4340000000000000, "9007199254740992"},         /* max pos int */
      {0xc340000000000000, "-9007199254740992"},        /* max neg int */
      {0x4430000000000000, "295147905179352830000"},    /* ~2**68 */
      {0x44b52d02c7e14af5, "9.999999999999997e+22"},
      {0x44b52d02c7e14af6, "1e+23"},
      {0x44b52d02c7e14af7, "1.0000000000000001e+23"},
      {0x444b1ae4d6e2ef4e, "999999999999999700000"},
      {0x444b1ae4d6e2ef4f, "999999999999999900000"},
      {0x444b1ae4d6e2ef50, "1e+21"},
      {0x3eb0c6f7a0b5ed8c, "9.999999999999997e-7"},
      {0x3eb0c6f7a0b5ed8d, "0.000001"},
      {0x41b3de4355555553, "333333333.3333332"},
      {0x41b3de4355555554, "333333333.33333325"},
      {0x41b3de4355555555, "333333333.3333333"},
      {0x41b3de4355555556, "333333333.3333334"},
      {0x41b3de4355555557, "333333333.33333343"},
      {0xbecbf647612f3696, "-0.0000033333333333333333"},
      {0x43143ff3c1cb0959, "1424953923781206.2"}, /* round to even */
      /* from testdata/README.md of the reference implementations */
      {0x4340000000000001, "9007199254740994"},
      {0x4340000000000002, "9007199254740996"},
  };
  for (size_t i = 0; i < BD_ARRAY_LEN(t); i++) {
    char *got = number(from_bits(t[i].bits));
    CHECK_STR(got, t[i].want);
    free(got);
    /* and the same through a jansson real inside an array */
    json_t *a = json_pack("[f]", from_bits(t[i].bits));
    char *c = canon(a);
    char want[64];
    snprintf(want, sizeof want, "[%s]", t[i].want);
    CHECK_STR(c, want);
    free(c);
    json_decref(a);
  }
  /* NaN and the infinities: Appendix B's "error" rows. jansson refuses to
   * hold them, so they only reach the number formatter directly. */
  static const uint64_t bad[] = {0x7fffffffffffffff, 0x7ff0000000000000, 0xfff0000000000000};
  for (size_t i = 0; i < BD_ARRAY_LEN(bad); i++) {
    bd_buf_t b = BD_BUF_INIT;
    CHECK_INT(bd_jcs_number(from_bits(bad[i]), &b), -1);
    CHECK_INT(b.len, 0);
    bd_buf_free(&b);
    CHECK(json_real(from_bits(bad[i])) == NULL);
  }
}

/* The ECMAScript number forms around the exponent thresholds. */
static void test_number_forms(void) {
  static const struct {
    double d;
    const char *want;
  } t[] = {
      {1, "1"},
      {-1, "-1"},
      {100, "100"},
      {0.5, "0.5"},
      {-0.5, "-0.5"},
      {123.456, "123.456"},
      {0.1 + 0.2, "0.30000000000000004"},
      {1e-6, "0.000001"},
      {1.5e-6, "0.0000015"},
      {1e-7, "1e-7"},
      {1.5e-7, "1.5e-7"},
      {1e20, "100000000000000000000"},
      {1e21, "1e+21"},
      {1.5e21, "1.5e+21"},
      {1e22, "1e+22"},
      {1e30, "1e+30"},
      {4.5, "4.5"},
      {2e-3, "0.002"},
      {1e-27, "1e-27"},
      {2.2250738585072014e-308, "2.2250738585072014e-308"},
      {9007199254740991.0, "9007199254740991"},
      {-9007199254740991.0, "-9007199254740991"},
      {4294967296.5, "4294967296.5"},
      {1152921504606846976.0, "1152921504606847000"}, /* 2^60 */
  };
  for (size_t i = 0; i < BD_ARRAY_LEN(t); i++) {
    char *got = number(t[i].d);
    CHECK_STR(got, t[i].want);
    free(got);
  }
}

/* The reference implementations' test data: input and expected output. */
static void test_reference_testdata(void) {
  static const struct {
    const char *name, *in, *want;
  } t[] = {
    {"arrays",
     "[\n"
     "  56,\n"
     "  {\n"
     "    \"d\": true,\n"
     "    \"10\": null,\n"
     "    \"1\": [ ]\n"
     "  }\n"
     "]\n",
     "[56,{\"1\":[],\"10\":null,\"d\":true}]"},
    {"french",
     "{\n"
     "  \"peach\": \"This sorting order\",\n"
     "  \"p\xc3\xa9""ch\xc3\xa9\": \"is wrong according to French\",\n"
     "  \"p\xc3\xaa""che\": \"but canonicalization MUST\",\n"
     "  \"sin\":   \"ignore locale\"\n"
     "}\n",
     "{\"peach\":\"This sorting order\",\"p\xc3\xa9""ch\xc3\xa9\":\"is wrong according to French\","
     "\"p\xc3\xaa""che\":\"but canonicalization MUST\",\"sin\":\"ignore locale\"}"},
    {"structures",
     "{\n"
     "  \"1\": {\"f\": {\"f\": \"hi\",\"F\": 5} ,\"\\n\": 56.0},\n"
     "  \"10\": { },\n"
     "  \"\": \"empty\",\n"
     "  \"a\": { },\n"
     "  \"111\": [ {\"e\": \"yes\",\"E\": \"no\" } ],\n"
     "  \"A\": { }\n"
     "}",
     "{\"\":\"empty\",\"1\":{\"\\n\":56,\"f\":{\"F\":5,\"f\":\"hi\"}},\"10\":{},\"111\":[{\"E\":\"no\","
     "\"e\":\"yes\"}],\"A\":{},\"a\":{}}"},
    {"unicode",
     "{\n"
     "  \"Unnormalized Unicode\":\"A\\u030a\"\n"
     "}\n",
     "{\"Unnormalized Unicode\":\"A\xcc\x8a\"}"},
    {"values",
     "{\n"
     "  \"numbers\": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],\n"
     "  \"string\": \"\\u20ac$\\u000F\\u000aA'\\u0042\\u0022\\u005c\\\\\\\"\\/\",\n"
     "  \"literals\": [null, true, false]\n"
     "}",
     "{\"literals\":[null,true,false],\"numbers\":[333333333.3333333,1e+30,4.5,0.002,1e-27],"
     "\"string\":\"\xe2\x82\xac$\\u000f\\nA'B\\\"\\\\\\\\\\\"/\"}"},
    {"weird",
     "{\n"
     "  \"\\u20ac\": \"Euro Sign\",\n"
     "  \"\\r\": \"Carriage Return\",\n"
     "  \"\\u000a\": \"Newline\",\n"
     "  \"1\": \"One\",\n"
     "  \"\\u0080\": \"Control\\u007f\",\n"
     "  \"\\ud83d\\ude02\": \"Smiley\",\n"
     "  \"\\u00f6\": \"Latin Small Letter O With Diaeresis\",\n"
     "  \"\\ufb33\": \"Hebrew Letter Dalet With Dagesh\",\n"
     "  \"</script>\": \"Browser Challenge\"\n"
     "}\n",
     "{\"\\n\":\"Newline\",\"\\r\":\"Carriage Return\",\"1\":\"One\",\"</script>\":\"Browser Challenge\","
     "\"\xc2\x80\":\"Control\x7f\",\"\xc3\xb6\":\"Latin Small Letter O With Diaeresis\","
     "\"\xe2\x82\xac\":\"Euro Sign\",\"\xf0\x9f\x98\x82\":\"Smiley\","
     "\"\xef\xac\xb3\":\"Hebrew Letter Dalet With Dagesh\"}"},
  };
  for (size_t i = 0; i < BD_ARRAY_LEN(t); i++) {
    char *got = canon_text(t[i].in);
    if (strcmp(got, t[i].want) != 0) fprintf(stderr, "  testdata %s:\n", t[i].name);
    CHECK_STR(got, t[i].want);
    /* canonical text is a fixed point */
    char *again = canon_text(got);
    CHECK_STR(again, got);
    free(again);
    free(got);
  }
}

/* RFC 8785 section 3.2.2 (the sample object) and 3.2.3 (sorting). */
static void test_rfc_examples(void) {
  CHECK_CANON_TEXT("{\n"
                   "  \"numbers\": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],\n"
                   "  \"string\": \"\\u20ac$\\u000F\\u000aA'\\u0042\\u0022\\u005c\\\\\\\"\\/\",\n"
                   "  \"literals\": [null, true, false]\n"
                   "}",
                   "{\"literals\":[null,true,false],\"numbers\":[333333333.3333333,1e+30,4.5,0.002,1e-27],"
                   "\"string\":\"\xe2\x82\xac$\\u000f\\nA'B\\\"\\\\\\\\\\\"/\"}");
  /* 3.2.3: U+1F600 (UTF-16 D83D DE00) sorts after U+20AC and before
   * U+FB33, although its UTF-8 (F0 ...) is above FB33's (EF ...) */
  CHECK_CANON_TEXT("{\n"
                   "  \"\\u20ac\": \"Euro Sign\",\n"
                   "  \"\\r\": \"Carriage Return\",\n"
                   "  \"\\ufb33\": \"Hebrew Letter Dalet With Dagesh\",\n"
                   "  \"1\": \"One\",\n"
                   "  \"\\ud83d\\ude00\": \"Emoji: Grinning Face\",\n"
                   "  \"\\u0080\": \"Control\",\n"
                   "  \"\\u00f6\": \"Latin Small Letter O With Diaeresis\"\n"
                   "}",
                   "{\"\\r\":\"Carriage Return\",\"1\":\"One\",\"\xc2\x80\":\"Control\","
                   "\"\xc3\xb6\":\"Latin Small Letter O With Diaeresis\",\"\xe2\x82\xac\":\"Euro Sign\","
                   "\"\xf0\x9f\x98\x80\":\"Emoji: Grinning Face\",\"\xef\xac\xb3\":\"Hebrew Letter Dalet With Dagesh\"}");
}

/* More of the UTF-16 order: prefixes, the BMP/supplementary boundary,
 * supplementary characters sharing a lead surrogate, recursion. */
static void test_key_order(void) {
  /* U+D7FF < U+10000 (D800 DC00) < U+10FFFF (DBFF DFFF) < U+E000 < U+FFFF */
  CHECK_CANON_TEXT("{\"\\uffff\":5,\"\\ue000\":4,\"\\udbff\\udfff\":3,\"\\ud800\\udc00\":2,\"\\ud7ff\":1}",
                   "{\"\xed\x9f\xbf\":1,\"\xf0\x90\x80\x80\":2,\"\xf4\x8f\xbf\xbf\":3,\"\xee\x80\x80\":4,"
                   "\"\xef\xbf\xbf\":5}");
  /* U+1F600 and U+1F602 share the lead D83D */
  CHECK_CANON_TEXT("{\"\\ud83d\\ude02\":2,\"\\ud83d\\ude00\":1}",
                   "{\"\xf0\x9f\x98\x80\":1,\"\xf0\x9f\x98\x82\":2}");
  /* a prefix sorts first; code units, not locale: "B" < "a" */
  CHECK_CANON_TEXT("{\"ab\":3,\"a\":2,\"\":1,\"B\":0}", "{\"\":1,\"B\":0,\"a\":2,\"ab\":3}");
  /* the same lead character then a difference further on */
  CHECK_CANON_TEXT("{\"x\\ufb33\":2,\"x\\ud83d\\ude00\":1}",
                   "{\"x\xf0\x9f\x98\x80\":1,\"x\xef\xac\xb3\":2}");
  /* recursively, in objects inside arrays inside objects; arrays keep order */
  CHECK_CANON_TEXT("{\"b\":[{\"z\":1,\"y\":{\"d\":0,\"c\":0}},3,1],\"a\":{}}",
                   "{\"a\":{},\"b\":[{\"y\":{\"c\":0,\"d\":0},\"z\":1},3,1]}");
  /* names with U+0000 (jansson's length-aware keys) sort by their units */
  json_t *o = json_object();
  json_object_setn_new(o, "a\0b", 3, json_integer(2));
  json_object_setn_new(o, "a", 1, json_integer(1));
  json_object_setn_new(o, "a\x01", 2, json_integer(3));
  char *c = canon(o);
  CHECK_STR(c, "{\"a\":1,\"a\\u0000b\":2,\"a\\u0001\":3}");
  free(c);
  json_decref(o);
}

/* String escapes: the short forms, \u00xx lowercase for the other
 * controls, and nothing else escaped. */
static void test_strings(void) {
  json_t *s = json_stringn("\x00\x01\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x1f\x20\"\\/\x7f", 16);
  char *c = canon(s);
  CHECK_STR(c, "\"\\u0000\\u0001\\u0007\\b\\t\\n\\u000b\\f\\r\\u000e\\u001f \\\"\\\\/\x7f\"");
  free(c);
  json_decref(s);
  /* U+2028, U+2029, U+FEFF, "</script>" and non-ASCII stay literal */
  CHECK_CANON_TEXT("\"\\u2028\\u2029\\ufeff</script>\\u00e9\xc3\xa9\"",
                   "\"\xe2\x80\xa8\xe2\x80\xa9\xef\xbb\xbf</script>\xc3\xa9\xc3\xa9\"");
  /* literals and scalars at the top */
  CHECK_CANON_TEXT(" true ", "true");
  CHECK_CANON_TEXT("false", "false");
  CHECK_CANON_TEXT("null", "null");
  CHECK_CANON_TEXT("\"\"", "\"\"");
  CHECK_CANON_TEXT("[ ]", "[]");
  CHECK_CANON_TEXT("{ }", "{}");
  CHECK_CANON_TEXT("[1, [2, [3, {}]], \"x\"]", "[1,[2,[3,{}]],\"x\"]");
}

/* Numbers through both paths: json integers must be exact doubles; text
 * reads every number as ECMAScript's JSON.parse does. */
static void test_integers(void) {
  static const struct {
    json_int_t i;
    const char *want; /* NULL: refused */
  } t[] = {
      {0, "0"},
      {-7, "-7"},
      {9007199254740991LL, "9007199254740991"},
      {9007199254740992LL, "9007199254740992"},
      {-9007199254740992LL, "-9007199254740992"},
      {9007199254740993LL, NULL},
      {-9007199254740993LL, NULL},
      {9007199254740994LL, "9007199254740994"},
      {1152921504606846976LL, "1152921504606847000"}, /* 2^60, exact */
      {1152921504606846977LL, NULL},
      {INT64_MAX, NULL}, /* rounds to 2^63 */
      {INT64_MIN, "-9223372036854776000"}, /* -2^63, exact */
  };
  for (size_t i = 0; i < BD_ARRAY_LEN(t); i++) {
    json_t *v = json_integer(t[i].i);
    char *c = canon(v);
    if (t[i].want) {
      CHECK_STR(c, t[i].want);
    } else {
      CHECK(strncmp(c, "ERR: integer ", 13) == 0);
      CHECK(strstr(c, "not exactly an IEEE-754 double") != NULL);
    }
    free(c);
    json_decref(v);
  }
  /* the text path rounds the way JSON.parse does */
  CHECK_CANON_TEXT("9007199254740993", "9007199254740992");
  CHECK_CANON_TEXT("[18446744073709551615, -0, -0.0, 0e10, 1E2, 1.0e-7, 56.0]",
                   "[18446744073709552000,0,0,0,100,1e-7,56]");
  CHECK_CANON_TEXT("1e-400", "0");
  char *c = canon_text("1e400");
  CHECK(strncmp(c, "ERR: invalid JSON", 17) == 0);
  free(c);
}

static void check_refused(const json_t *v, const char *why) {
  bd_buf_t b = BD_BUF_INIT;
  bd_buf_puts(&b, "kept");
  char err[200];
  CHECK_INT(bd_jcs_canonicalize(v, &b, err, sizeof err), -1);
  if (!strstr(err, why)) fprintf(stderr, "  error \"%s\" lacks \"%s\"\n", err, why);
  CHECK(strstr(err, why) != NULL);
  CHECK_STR(b.data, "kept"); /* out as it was */
  CHECK_INT(b.len, 4);
  bd_buf_free(&b);
}

static void test_errors(void) {
  /* invalid UTF-8 in a value (deep inside, after output was written) */
  static const struct {
    const char *s;
    size_t n;
  } bad[] = {
      {"\xff", 1},
      {"a\x80", 2},
      {"\xc0\xaf", 2},         /* overlong '/' */
      {"\xe0\x80\xaf", 3},     /* overlong */
      {"\xed\xa0\x80", 3},     /* U+D800, a lone surrogate */
      {"\xed\xbf\xbf", 3},     /* U+DFFF */
      {"\xf4\x90\x80\x80", 4}, /* above U+10FFFF */
      {"\xf0\x9f\x98", 3},     /* truncated */
      {"\xc3", 1},
  };
  for (size_t i = 0; i < BD_ARRAY_LEN(bad); i++) {
    json_t *v = json_pack("{s:[i,{s:o}]}", "a", 1, "b", json_stringn_nocheck(bad[i].s, bad[i].n));
    check_refused(v, "string is not valid UTF-8");
    json_decref(v);
    json_t *o = json_object();
    json_object_set_new(o, "x", json_true());
    json_object_setn_new_nocheck(o, bad[i].s, bad[i].n, json_null());
    check_refused(o, "name is not valid UTF-8");
    json_decref(o);
  }
  /* well-formed edges are accepted */
  json_t *ok = json_stringn_nocheck("\xed\x9f\xbf\xee\x80\x80\xf4\x8f\xbf\xbf\xc2\x80", 12);
  char *c = canon(ok);
  CHECK_STR(c, "\"\xed\x9f\xbf\xee\x80\x80\xf4\x8f\xbf\xbf\xc2\x80\"");
  free(c);
  json_decref(ok);

  json_t *i = json_integer(9007199254740993LL);
  check_refused(i, "integer 9007199254740993 is not exactly an IEEE-754 double");
  json_decref(i);

  /* nesting: BD_JCS_MAX_DEPTH arrays are fine, one more is refused */
  json_t *deep = json_array();
  for (int d = 1; d < BD_JCS_MAX_DEPTH; d++) deep = json_pack("[o]", deep);
  c = canon(deep);
  CHECK(c[0] == '[' && strlen(c) == 2 * BD_JCS_MAX_DEPTH);
  free(c);
  deep = json_pack("[o]", deep);
  check_refused(deep, "more than 1024 nested");
  json_decref(deep);

  CHECK_INT(bd_jcs_canonicalize(NULL, &(bd_buf_t)BD_BUF_INIT, NULL, 0), -1);

  /* the text path: invalid JSON, duplicate names (JCS needs unique ones),
   * lone surrogates, invalid UTF-8, trailing garbage */
  static const char *bad_text[] = {
      "{\"a\":1,\"a\":2}", "\"\\ud800\"", "\"\\udc00x\"", "{\"\\ud83d\":1}", "\"\xff\"", "[1] x", "", "[1,]",
      "NaN", "Infinity", "[-]", "{\"a\" 1}",
  };
  for (size_t k = 0; k < BD_ARRAY_LEN(bad_text); k++) {
    bd_buf_t b = BD_BUF_INIT;
    char err[200] = "";
    CHECK_INT(bd_jcs_canonicalize_text(bad_text[k], strlen(bad_text[k]), &b, err, sizeof err), -1);
    CHECK(strncmp(err, "invalid JSON at line ", 21) == 0);
    CHECK_INT(b.len, 0);
    bd_buf_free(&b);
  }
  c = canon_text("{\"a\":1,\"a\":2}");
  CHECK(strstr(c, "duplicate") != NULL);
  free(c);
  /* a short err buffer is truncated, never overrun */
  char small[8];
  bd_buf_t b = BD_BUF_INIT;
  CHECK_INT(bd_jcs_canonicalize_text("[", 1, &b, small, sizeof small), -1);
  CHECK_INT(strlen(small), 7);
  bd_buf_free(&b);
}

/* Appends to out: canonical text after existing content. */
static void test_appends(void) {
  bd_buf_t b = BD_BUF_INIT;
  bd_buf_puts(&b, "x=");
  char err[100];
  CHECK_INT(bd_jcs_canonicalize_text("{\"b\":1,\"a\":2}", 13, &b, err, sizeof err), 0);
  CHECK_STR(b.data, "x={\"a\":2,\"b\":1}");
  bd_buf_free(&b);
}

/* testdata/numgen.go: the first lines of es6testfile100m.txt, generated
 * and hashed as that program does, against the SHA-256 checksums published
 * in testdata/README.md. Each line is the value's bits in lowercase hex
 * without leading zeros, ',', its ECMAScript text, '\n'. */
static void test_es6_numbers_file(void) {
  static const uint64_t statics[] = {
      0x0000000000000000, 0x8000000000000000, 0x0000000000000001, 0x8000000000000001, 0xc46696695dbd1cc3,
      0xc43211ede4974a35, 0xc3fce97ca0f21056, 0xc3c7213080c1a6ac, 0xc39280f39a348556, 0xc35d9b1f5d20d557,
      0xc327af4c4a80aaac, 0xc2f2f2a36ecd5556, 0xc2be51057e155558, 0xc28840d131aaaaac, 0xc253670dc1555557,
      0xc21f0b4935555557, 0xc1e8d5d42aaaaaac, 0xc1b3de4355555556, 0xc17fca0555555556, 0xc1496e6aaaaaaaab,
      0xc114585555555555, 0xc0e046aaaaaaaaab, 0xc0aa0aaaaaaaaaaa, 0xc074d55555555555, 0xc040aaaaaaaaaaab,
      0xc00aaaaaaaaaaaab, 0xbfd5555555555555, 0xbfa1111111111111, 0xbf6b4e81b4e81b4f, 0xbf35d867c3ece2a5,
      0xbf0179ec9cbd821e, 0xbecbf647612f3696, 0xbe965e9f80f29212, 0xbe61e54c672874db, 0xbe2ca213d840baf8,
      0xbdf6e80fe033c8c6, 0xbdc2533fe68fd3d2, 0xbd8d51ffd74c861c, 0xbd5774ccac3d3817, 0xbd22c3d6f030f9ac,
      0xbcee0624b3818f79, 0xbcb804ea293472c7, 0xbc833721ba905bd3, 0xbc4ebe9c5db3c61e, 0xbc18987d17c304e5,
      0xbbe3ad30dfcf371d, 0xbbaf7b816618582f, 0xbb792f9ab81379bf, 0xbb442615600f9499, 0xbb101e77800c76e1,
      0xbad9ca58cce0be35, 0xbaa4a1e0a3e6fe90, 0xba708180831f320d, 0xba3a68cd9e985016, 0x446696695dbd1cc3,
      0x443211ede4974a35, 0x43fce97ca0f21056, 0x43c7213080c1a6ac, 0x439280f39a348556, 0x435d9b1f5d20d557,
      0x4327af4c4a80aaac, 0x42f2f2a36ecd5556, 0x42be51057e155558, 0x428840d131aaaaac, 0x4253670dc1555557,
      0x421f0b4935555557, 0x41e8d5d42aaaaaac, 0x41b3de4355555556, 0x417fca0555555556, 0x41496e6aaaaaaaab,
      0x4114585555555555, 0x40e046aaaaaaaaab, 0x40aa0aaaaaaaaaaa, 0x4074d55555555555, 0x4040aaaaaaaaaaab,
      0x400aaaaaaaaaaaab, 0x3fd5555555555555, 0x3fa1111111111111, 0x3f6b4e81b4e81b4f, 0x3f35d867c3ece2a5,
      0x3f0179ec9cbd821e, 0x3ecbf647612f3696, 0x3e965e9f80f29212, 0x3e61e54c672874db, 0x3e2ca213d840baf8,
      0x3df6e80fe033c8c6, 0x3dc2533fe68fd3d2, 0x3d8d51ffd74c861c, 0x3d5774ccac3d3817, 0x3d22c3d6f030f9ac,
      0x3cee0624b3818f79, 0x3cb804ea293472c7, 0x3c833721ba905bd3, 0x3c4ebe9c5db3c61e, 0x3c18987d17c304e5,
      0x3be3ad30dfcf371d, 0x3baf7b816618582f, 0x3b792f9ab81379bf, 0x3b442615600f9499, 0x3b101e77800c76e1,
      0x3ad9ca58cce0be35, 0x3aa4a1e0a3e6fe90, 0x3a708180831f320d, 0x3a3a68cd9e985016, 0x4024000000000000,
      0x4014000000000000, 0x3fe0000000000000, 0x3fa999999999999a, 0x3f747ae147ae147b, 0x3f40624dd2f1a9fc,
      0x3f0a36e2eb1c432d, 0x3ed4f8b588e368f1, 0x3ea0c6f7a0b5ed8d, 0x3e6ad7f29abcaf48, 0x3e35798ee2308c3a,
      0x3ed539223589fa95, 0x3ed4ff26cd5a7781, 0x3ed4f95a762283ff, 0x3ed4f8c60703520c, 0x3ed4f8b72f19cd0d,
      0x3ed4f8b5b31c0c8d, 0x3ed4f8b58d1c461a, 0x3ed4f8b5894f7f0e, 0x3ed4f8b588ee37f3, 0x3ed4f8b588e47da4,
      0x3ed4f8b588e3849c, 0x3ed4f8b588e36bb5, 0x3ed4f8b588e36937, 0x3ed4f8b588e368f8, 0x3ed4f8b588e368f1,
      0x3ff0000000000000, 0xbff0000000000000, 0xbfeffffffffffffa, 0xbfeffffffffffffb, 0x3feffffffffffffa,
      0x3feffffffffffffb, 0x3feffffffffffffc, 0x3feffffffffffffe, 0xbfefffffffffffff, 0xbfefffffffffffff,
      0x3fefffffffffffff, 0x3fefffffffffffff, 0x3fd3333333333332, 0x3fd3333333333333, 0x3fd3333333333334,
      0x0010000000000000, 0x000ffffffffffffd, 0x000fffffffffffff, 0x7fefffffffffffff, 0xffefffffffffffff,
      0x4340000000000000, 0xc340000000000000, 0x4430000000000000, 0x44b52d02c7e14af5, 0x44b52d02c7e14af6,
      0x44b52d02c7e14af7, 0x444b1ae4d6e2ef4e, 0x444b1ae4d6e2ef4f, 0x444b1ae4d6e2ef50, 0x3eb0c6f7a0b5ed8c,
      0x3eb0c6f7a0b5ed8d, 0x41b3de4355555553, 0x41b3de4355555554, 0x41b3de4355555555, 0x41b3de4355555556,
      0x41b3de4355555557, 0xbecbf647612f3696, 0x43143ff3c1cb0959,
  };
  static const struct {
    size_t lines;
    size_t bytes;
    const char *sha256;
  } marks[] = {
      {1000, 37967, "be18b62b6f69cdab33a7e0dae0d9cfa869fda80ddc712221570f9f40a5878687"},
      {10000, 399022, "b9f7a8e75ef22a835685a52ccba7f7d6bdc99e34b010992cbc5864cd12be6892"},
      {100000, 4031728, "22776e6d4b49fa294a0d0f349268e5c28808fe7e0cb2bcbe28f63894e494d4c7"},
  };
  const size_t nstatic = BD_ARRAY_LEN(statics), nserial = 2000;
  crypto_hash_sha256_state h;
  crypto_hash_sha256_init(&h);
  unsigned char block[32] = {0};
  size_t used = sizeof block; /* bytes of block already consumed: none left */
  size_t bytes = 0, mark = 0;
  bd_buf_t line = BD_BUF_INIT;
  for (size_t idx = 0; mark < BD_ARRAY_LEN(marks); idx++) {
    uint64_t u;
    if (idx < nstatic) {
      u = statics[idx];
    } else if (idx < nstatic + nserial) {
      u = 0x0010000000000000 + (idx - nstatic);
    } else {
      double f;
      do {
        if (used == sizeof block) {
          crypto_hash_sha256(block, block, sizeof block);
          used = 0;
        }
        u = 0;
        for (int b = 7; b >= 0; b--) u = u << 8 | block[used + (size_t)b]; /* little-endian */
        used += 8;
        f = from_bits(u);
      } while (f == 0 || !isfinite(f));
    }
    bd_buf_reset(&line);
    bd_buf_printf(&line, "%llx,", (unsigned long long)u);
    CHECK_INT(bd_jcs_number(from_bits(u), &line), 0);
    bd_buf_putc(&line, '\n');
    crypto_hash_sha256_update(&h, (const unsigned char *)line.data, line.len);
    bytes += line.len;
    if (idx + 1 == marks[mark].lines) {
      crypto_hash_sha256_state copy = h;
      unsigned char md[32];
      char hex[65];
      crypto_hash_sha256_final(&copy, md);
      sodium_bin2hex(hex, sizeof hex, md, sizeof md);
      CHECK_INT(bytes, marks[mark].bytes);
      CHECK_STR(hex, marks[mark].sha256);
      mark++;
    }
  }
  bd_buf_free(&line);
}

/* splitmix64: a fixed-seed generator, so a failure reproduces */
static uint64_t rng_state = 0x6a09e667f3bcc909ULL;
static uint64_t rng(void) {
  uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

/* Does the decimal mantissa m (an integer) times 10^e read back as d? */
static bool reads_back(unsigned long long m, int e, double d) {
  char t[48];
  snprintf(t, sizeof t, "%llue%d", m, e);
  return strtod(t, NULL) == d;
}

/* Checks the ECMAScript text s of d: it reads back as d, it has the form
 * ECMAScript picks for d's magnitude, and no decimal with fewer significant
 * digits reads back as d. */
static void check_shortest(double d, const char *s) {
  if (strtod(s, NULL) != d) {
    fprintf(stderr, "  %a -> %s does not read back\n", d, s);
    CHECK(0);
    return;
  }
  double a = fabs(d);
  bool expo = strchr(s, 'e') != NULL;
  if (expo != (a != 0 && (a < 1e-6 || a >= 1e21))) {
    fprintf(stderr, "  %a -> %s: wrong form\n", d, s);
    CHECK(0);
  }
  /* significant digits: drop sign, exponent, point, leading and trailing zeros */
  char digits[40];
  size_t k = 0;
  for (const char *p = s; *p && *p != 'e'; p++)
    if (*p >= '0' && *p <= '9' && (k || *p != '0')) digits[k++] = *p;
  while (k > 1 && digits[k - 1] == '0') k--;
  if (k == 0) { /* "0" */
    CHECK(d == 0);
    return;
  }
  CHECK(k <= 17);
  if (k == 1 || k > 17) return;
  /* the closest (k-1)-digit decimal and its two neighbours: none reads back */
  char e[40];
  snprintf(e, sizeof e, "%.*e", (int)k - 2, a);
  unsigned long long m = 0;
  const char *p = e;
  for (; *p != 'e'; p++)
    if (*p >= '0' && *p <= '9') m = m * 10 + (unsigned long long)(*p - '0');
  int x = atoi(p + 1) - ((int)k - 2);
  if (reads_back(m, x, a) || reads_back(m + 1, x, a) || (m > 0 && reads_back(m - 1, x, a))) {
    fprintf(stderr, "  %a -> %s: a %zu-digit decimal also reads back\n", d, s, k - 1);
    CHECK(0);
  }
}

/* Powers of two, where the doubles below are twice as dense as those
 * above: for 46 of them the closest 16-digit decimal does not read back but
 * the one on the other side does, so the 17-digit text would not be the
 * shortest (values checked against node's String(2 ** e)). */
static void test_lopsided(void) {
  static const struct {
    int e;
    const char *want;
  } t[] = {
      {-1017, "7.120236347223045e-307"}, {-44, "5.684341886080802e-14"}, {-24, "5.960464477539063e-8"},
      {89, "6.189700196426902e+26"},     {976, "6.386688990511104e+293"},
  };
  for (size_t i = 0; i < BD_ARRAY_LEN(t); i++) {
    char *got = number(ldexp(1, t[i].e));
    CHECK_STR(got, t[i].want);
    free(got);
  }
  for (int e = -1074; e <= 1023; e++) {
    char *s = number(ldexp(1, e));
    check_shortest(ldexp(1, e), s);
    free(s);
  }
}

static void test_random_round_trip(void) {
  int checked = 0;
  for (int i = 0; i < 200000; i++) {
    uint64_t u = rng();
    double d;
    switch (i % 4) {
    case 0: /* any bit pattern */
      d = from_bits(u);
      break;
    case 1: /* exponents around the form thresholds and the integer range */
      d = from_bits((u & 0x800fffffffffffffULL) | (uint64_t)(0x3e0 + (u >> 52) % 0x90) << 52);
      break;
    case 2: /* short decimals: integers scaled by a power of ten */
      d = (double)(u % 100000000) / pow(10, (double)((u >> 40) % 30));
      break;
    default: /* next to powers of two, where the reading interval is lopsided */
      d = from_bits((u & 0xfff0000000000000ULL) + (u >> 52) % 3) * ((u & 1) ? 1 : -1);
      break;
    }
    if (!isfinite(d)) continue;
    char *s = number(d);
    check_shortest(d, s);
    /* the JSON text reads back through jansson as the same value too */
    char *c = canon_text(s);
    CHECK_STR(c, s);
    free(c);
    free(s);
    checked++;
  }
  CHECK(checked > 150000);
}

int main(void) {
  if (sodium_init() < 0) return 1;
  RUN(test_appendix_b);
  RUN(test_number_forms);
  RUN(test_reference_testdata);
  RUN(test_rfc_examples);
  RUN(test_key_order);
  RUN(test_strings);
  RUN(test_integers);
  RUN(test_errors);
  RUN(test_appends);
  RUN(test_es6_numbers_file);
  RUN(test_lopsided);
  RUN(test_random_round_trip);
  UNIT_DONE();
}

/* test_http_grammar.c: field-name tokens, Host values, request-target forms
 * and Transfer-Encoding lists (RFC 9110, RFC 9112, RFC 3986). */
#include "http_grammar.h"
#include "unit.h"

#include <string.h>

static bool host(const char *s) { return bd_http_host_valid(s, strlen(s)); }

static bd_target_form_t target(const char *s, size_t *off) { return bd_http_target(s, strlen(s), off); }

static bd_te_t te1(const char *v) {
  const char *vals[] = {v};
  size_t lens[] = {strlen(v)};
  return bd_http_te_check(vals, lens, 1);
}

static bd_te_t te2(const char *a, const char *b) {
  const char *vals[] = {a, b};
  size_t lens[] = {strlen(a), strlen(b)};
  return bd_http_te_check(vals, lens, 2);
}

static void test_token(void) {
  CHECK(bd_http_is_token("X-!#$%&'*+-.^_`|~09az", 21));
  CHECK(!bd_http_is_token("X A", 3));
  CHECK(!bd_http_is_token("X(A)", 4));
  CHECK(!bd_http_is_token("X/A", 3));
  CHECK(!bd_http_is_token("X\xe9", 2));
  CHECK(!bd_http_is_token("X\0", 2));
  CHECK(!bd_http_is_token("X\"", 2));
  CHECK(!bd_http_is_token("a:b", 3));
  /* every byte: exactly the 77 tchars */
  int n = 0;
  for (int c = 0; c < 256; c++) {
    char b = (char)c;
    n += bd_http_is_token(&b, 1);
  }
  CHECK_INT(n, 77);
}

static void test_host(void) {
  CHECK(host(""));
  CHECK(host("x"));
  CHECK(host("localhost:8080"));
  CHECK(host("127.0.0.1:80"));
  CHECK(host("[::1]"));
  CHECK(host("[::1]:8080"));
  CHECK(host("[2001:db8::7]"));
  CHECK(host("[v1.fe80::a+en1]"));
  CHECK(host("a-b.c_d~e!$&'()*+,;=%41"));
  CHECK(host("x:")); /* port = *DIGIT */
  CHECK(!host("a b"));
  CHECK(!host("user@x"));
  CHECK(!host("x/healthz"));
  CHECK(!host("x:8o"));
  CHECK(!host("x:80:80"));
  CHECK(!host("[::1"));
  CHECK(!host("[::g]"));
  CHECK(!host("[::1]x"));
  CHECK(!host("[]"));
  CHECK(!host("[v1.]"));
  CHECK(!host("[v.x]"));
  CHECK(!host("x%4"));
  CHECK(!host("x%4g"));
  CHECK(!host(":80"));
  CHECK(!host("x\x7f"));
  CHECK(!host("x?y"));
  CHECK(!host("x#y"));
}

static void test_target(void) {
  size_t off = 99;
  CHECK_INT(target("/healthz?x", &off), BD_TARGET_ORIGIN);
  CHECK_INT((int)off, 0);
  CHECK_INT(target("http://x/healthz", &off), BD_TARGET_ABSOLUTE);
  CHECK_INT((int)off, 8);
  CHECK_INT(target("HTTPS://X:443/a?b", &off), BD_TARGET_ABSOLUTE);
  CHECK_INT((int)off, 13);
  CHECK_INT(target("http://x?probe", &off), BD_TARGET_ABSOLUTE);
  CHECK_INT((int)off, 8);
  CHECK_INT(target("http://x", &off), BD_TARGET_ABSOLUTE);
  CHECK_INT((int)off, 8);
  CHECK_INT(target("http://[::1]:8080/healthz", &off), BD_TARGET_ABSOLUTE);
  CHECK_INT((int)off, 17);
  CHECK_INT(target("http://u:p@x/healthz", &off), BD_TARGET_BAD);
  CHECK_INT(target("http:///healthz", &off), BD_TARGET_BAD);
  CHECK_INT(target("http://x:8o/healthz", &off), BD_TARGET_BAD);
  CHECK_INT(target("ftp://x/healthz", &off), BD_TARGET_BAD);
  CHECK_INT(target("http:/x", &off), BD_TARGET_BAD);
  CHECK_INT(target("/healthz#frag", &off), BD_TARGET_BAD);
  CHECK_INT(target("http://x/a#b", &off), BD_TARGET_BAD);
  CHECK_INT(target("*", &off), BD_TARGET_BAD);
  CHECK_INT(target("healthz", &off), BD_TARGET_BAD);
  CHECK_INT(target("x:443", &off), BD_TARGET_BAD);
  CHECK_INT(target("", &off), BD_TARGET_BAD);
}

static void test_te(void) {
  CHECK_INT(te1("chunked"), BD_TE_OK);
  CHECK_INT(te1("Chunked"), BD_TE_OK);
  CHECK_INT(te1(" chunked "), BD_TE_OK);
  CHECK_INT(te1(", chunked,"), BD_TE_OK); /* empty list elements */
  CHECK_INT(te1("gzip, chunked"), BD_TE_UNSUPPORTED);
  CHECK_INT(te1("gzip;q=\"a,b\" , chunked"), BD_TE_UNSUPPORTED);
  CHECK_INT(te2("gzip", "chunked"), BD_TE_UNSUPPORTED);
  CHECK_INT(te1("identity"), BD_TE_BAD);
  CHECK_INT(te1("gzip"), BD_TE_BAD);
  CHECK_INT(te1("chunked, gzip"), BD_TE_BAD);
  CHECK_INT(te1("chunked, chunked"), BD_TE_BAD);
  CHECK_INT(te2("chunked", "chunked"), BD_TE_BAD);
  CHECK_INT(te1("xchunked"), BD_TE_BAD);
  CHECK_INT(te1("chunked;x=1"), BD_TE_BAD);
  CHECK_INT(te1("\x0b" "chunked"), BD_TE_BAD);
  CHECK_INT(te1("chu nked"), BD_TE_BAD);
  CHECK_INT(te1("gzip;q=\"open, chunked"), BD_TE_BAD);
  CHECK_INT(te1("gzip;=1, chunked"), BD_TE_BAD);
  CHECK_INT(te1(""), BD_TE_BAD);
  CHECK_INT(te1(","), BD_TE_BAD);
}

int main(void) {
  RUN(test_token);
  RUN(test_host);
  RUN(test_target);
  RUN(test_te);
  UNIT_DONE();
}

/* test_util.c: ids, timestamps, integer parsing, URL and query decoding,
 * base64/hex and SHA-256, checked against published vectors. */
#include "util.h"
#include "unit.h"

#include <sodium.h>
#include <stdlib.h>

static bool in_b62(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

static void test_rand_base62(void) {
  char s[101];
  memset(s, 'x', sizeof s);
  bd_rand_base62(s, 100);
  CHECK_INT(strlen(s), 100);
  for (int i = 0; i < 100; i++) CHECK(in_b62(s[i]));
  char e[1] = {'x'};
  bd_rand_base62(e, 0);
  CHECK(e[0] == '\0');
  /* Every character of the alphabet shows up and none dominates: with
   * 62,000 draws each count is ~1000 (sd ~31); a modulo bias without the
   * rejection step would push '0'..'7' to ~1032, too small to assert
   * reliably, so this only guards against gross errors. */
  enum { N = 62000 };
  char *big = malloc(N + 1);
  bd_rand_base62(big, N);
  int count[128] = {0};
  for (int i = 0; i < N; i++) count[(unsigned char)big[i]]++;
  int lo = N, hi = 0, kinds = 0;
  for (int c = 0; c < 128; c++) {
    if (!count[c]) continue;
    CHECK(in_b62((char)c));
    kinds++;
    lo = count[c] < lo ? count[c] : lo;
    hi = count[c] > hi ? count[c] : hi;
  }
  CHECK_INT(kinds, 62);
  CHECK(lo > 800 && hi < 1200);
  free(big);
  /* two draws differ */
  char a[33], b[33];
  bd_rand_base62(a, 32);
  bd_rand_base62(b, 32);
  CHECK(strcmp(a, b) != 0);
}

static bool lower_hex(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); }

static void check_uuid_shape(const char *u, char version) {
  CHECK_INT(strlen(u), 36);
  for (int i = 0; i < 36; i++) {
    if (i == 8 || i == 13 || i == 18 || i == 23) CHECK(u[i] == '-');
    else CHECK(lower_hex(u[i]));
  }
  CHECK(u[14] == version);
  CHECK(strchr("89ab", u[19]) != NULL); /* variant 10xx */
  CHECK(bd_uuid_valid(bd_str_c(u)));
}

static void test_uuid(void) {
  char a[37], b[37];
  bd_uuid_v4(a);
  bd_uuid_v4(b);
  check_uuid_shape(a, '4');
  check_uuid_shape(b, '4');
  CHECK(strcmp(a, b) != 0);

  int64_t before = bd_wall_us() / 1000;
  bd_uuid_v7(a);
  int64_t after = bd_wall_us() / 1000;
  check_uuid_shape(a, '7');
  /* the first 48 bits are the Unix time in milliseconds */
  char ts[13];
  memcpy(ts, a, 8);
  memcpy(ts + 8, a + 9, 4);
  ts[12] = '\0';
  int64_t ms = (int64_t)strtoull(ts, NULL, 16);
  CHECK(ms >= before && ms <= after);
  /* later ids sort after earlier ones once the millisecond changes */
  int64_t start = bd_wall_us();
  while (bd_wall_us() - start < 2000) {
  }
  bd_uuid_v7(b);
  CHECK(strcmp(a, b) < 0);
  /* variant bits over many draws: only 8, 9, a, b */
  for (int i = 0; i < 200; i++) {
    bd_uuid_v7(a);
    CHECK(strchr("89ab", a[19]) != NULL && a[14] == '7');
    bd_uuid_v4(a);
    CHECK(strchr("89ab", a[19]) != NULL && a[14] == '4');
  }
}

static void test_uuid_valid(void) {
  CHECK(bd_uuid_valid(bd_str_c("0190a6e2-7f3b-7c1d-8e2f-0123456789ab")));
  CHECK(bd_uuid_valid(bd_str_c("0190A6E2-7F3B-7C1D-8E2F-0123456789AB")));
  CHECK(bd_uuid_valid(bd_str_c("0190a6E2-7f3B-7c1d-8E2f-0123456789aB")));
  CHECK(bd_uuid_valid(bd_str_c("00000000-0000-0000-0000-000000000000")));
  CHECK(!bd_uuid_valid(bd_str_c("0190a6e2-7f3b-7c1d-8e2f-0123456789a")));   /* 35 */
  CHECK(!bd_uuid_valid(bd_str_c("0190a6e2-7f3b-7c1d-8e2f-0123456789abc"))); /* 37 */
  CHECK(!bd_uuid_valid(bd_str_c("0190a6e2-7f3b-7c1d-8e2f-0123456789ag")));  /* non-hex */
  CHECK(!bd_uuid_valid(bd_str_c("0190a6e27-f3b-7c1d-8e2f-0123456789ab")));  /* dash moved */
  CHECK(!bd_uuid_valid(bd_str_c("0190a6e2_7f3b_7c1d_8e2f_0123456789ab")));
  CHECK(!bd_uuid_valid(bd_str_c("0190a6e27f3b7c1d8e2f0123456789ab")));      /* no dashes */
  CHECK(!bd_uuid_valid(bd_str_c("{0190a6e2-7f3b-7c1d-8e2f-0123456789a}")));
  CHECK(!bd_uuid_valid(bd_str_c("")));
  CHECK(!bd_uuid_valid((bd_str_t){NULL, 0}));
  /* length comes from the bd_str_t, not a NUL */
  const char *longer = "0190a6e2-7f3b-7c1d-8e2f-0123456789abXYZ";
  CHECK(bd_uuid_valid((bd_str_t){longer, 36}));
}

static void fmt(int64_t us, bool micro, const char *want) {
  char out[32];
  memset(out, 'x', sizeof out);
  bd_time_fmt(out, us, micro);
  CHECK_STR(out, want);
}

static void test_time_fmt(void) {
  fmt(0, false, "1970-01-01T00:00:00Z");
  fmt(0, true, "1970-01-01T00:00:00.000000Z");
  fmt(1741957443000000, true, "2025-03-14T13:04:03.000000Z");
  fmt(1741957443000000, false, "2025-03-14T13:04:03Z");
  fmt(1741957443123456, true, "2025-03-14T13:04:03.123456Z");
  fmt(1741957443999999, false, "2025-03-14T13:04:03Z"); /* truncated, not rounded */
  fmt(1709251199000001, true, "2024-02-29T23:59:59.000001Z");
  fmt(951782400000000, false, "2000-02-29T00:00:00Z");
  fmt(-1, true, "1969-12-31T23:59:59.999999Z");
  fmt(-1000000, true, "1969-12-31T23:59:59.000000Z");
  fmt(-1500000, true, "1969-12-31T23:59:58.500000Z");
  fmt(-2208988800000000, false, "1900-01-01T00:00:00Z");
  fmt(253402300799999999, true, "9999-12-31T23:59:59.999999Z");
  fmt(-62135596800000000, false, "0001-01-01T00:00:00Z"); /* years below 1000 keep four digits */
  fmt(-50491209600000000, false, "0369-12-31T00:00:00Z");
  /* the extremes of int64 microseconds still fit the 32-byte buffer */
  char out[32];
  bd_time_fmt(out, INT64_MAX, true);
  CHECK_STR(out, "294247-01-10T04:00:54.775807Z");
  bd_time_fmt(out, INT64_MIN, true);
  CHECK(strlen(out) < 32 && out[strlen(out) - 1] == 'Z');
}

static void parse_ok(const char *s, int64_t want) {
  int64_t got = 42;
  bool ok = bd_time_parse(s, &got);
  if (!ok) fprintf(stderr, "  bd_time_parse rejected %s\n", s);
  CHECK(ok);
  CHECK_INT(got, want);
}

static void parse_bad(const char *s) {
  int64_t got = 42;
  bool ok = bd_time_parse(s, &got);
  if (ok) fprintf(stderr, "  bd_time_parse accepted %s\n", s ? s : "(null)");
  CHECK(!ok);
}

static void test_time_parse(void) {
  const int64_t T = 1741957443000000; /* 2025-03-14 13:04:03 UTC */
  /* PostgreSQL timestamptz output */
  parse_ok("2025-03-14 13:04:03+00", T);
  parse_ok("2025-03-14 13:04:03.123456+00", T + 123456);
  parse_ok("2025-03-14 13:04:03+00:00", T);
  parse_ok("2025-03-14 18:34:03+05:30", T);
  parse_ok("2025-03-14 06:04:03-07", T);
  parse_ok("2025-03-14 06:04:03.5-07", T + 500000);
  /* RFC 3339 */
  parse_ok("2025-03-14T13:04:03Z", T);
  parse_ok("2025-03-14t13:04:03z", T);
  parse_ok("2025-03-14T15:04:03+02:00", T);
  parse_ok("2025-03-14T15:04:03+0200", T);
  parse_ok("2025-03-14T08:34:03-04:30", T);
  parse_ok("2025-03-15T00:04:03+11:00", T); /* offset crosses the date */
  parse_ok("2025-03-13T23:04:03-14:00", T);
  /* fractions of 1-6 digits, longer ones truncated to microseconds */
  parse_ok("2025-03-14T13:04:03.1Z", T + 100000);
  parse_ok("2025-03-14T13:04:03.12Z", T + 120000);
  parse_ok("2025-03-14T13:04:03.123Z", T + 123000);
  parse_ok("2025-03-14T13:04:03.1234Z", T + 123400);
  parse_ok("2025-03-14T13:04:03.12345Z", T + 123450);
  parse_ok("2025-03-14T13:04:03.123456Z", T + 123456);
  parse_ok("2025-03-14T13:04:03.1234569Z", T + 123456);
  parse_ok("2025-03-14T13:04:03.000001Z", T + 1);
  parse_ok("2025-03-14T13:04:03.0Z", T);
  /* epoch, before it, leap days, ends of ranges */
  parse_ok("1970-01-01T00:00:00Z", 0);
  parse_ok("1970-01-01 00:00:00+00", 0);
  parse_ok("1970-01-01T01:00:00+01:00", 0);
  parse_ok("1969-12-31T23:59:59.999999Z", -1);
  parse_ok("1969-12-31 23:59:59.5+00", -500000);
  parse_ok("1900-01-01T00:00:00Z", -2208988800000000);
  parse_ok("2024-02-29T23:59:59Z", 1709251199000000);
  parse_ok("2000-02-29T00:00:00Z", 951782400000000);
  parse_ok("9999-12-31T23:59:59Z", 253402300799000000);
  parse_ok("0001-01-01T00:00:00Z", -62135596800000000);
  parse_ok("2016-12-31T23:59:60Z", 1483228800000000); /* leap second folds into the next minute */

  parse_bad(NULL);
  parse_bad("");
  parse_bad("2025-03-14");
  parse_bad("2025-03-14T13:04:03");       /* no zone */
  parse_bad("2025-03-14 13:04:03");
  parse_bad("2025-03-14T13:04:03+");
  parse_bad("2025-03-14T13:04:03+5");
  parse_bad("2025-03-14T13:04:03+05:");
  parse_bad("2025-03-14T13:04:03+05:3");
  parse_bad("2025-03-14T13:04:03+053");
  parse_bad("2025-03-14T13:04:03+24:00");
  parse_bad("2025-03-14T13:04:03+05:60");
  parse_bad("2025-03-14T13:04:03.Z");     /* empty fraction */
  parse_bad("2025-03-14T13:04:03,5Z");
  parse_bad("2025-03-14T13:04:03ZZ");
  parse_bad("2025-03-14T13:04:03Z ");
  parse_bad(" 2025-03-14T13:04:03Z");
  parse_bad("2025-03-14T13:04:03 Z");
  parse_bad("2025-03-14T13:04:03UTC");
  parse_bad("2025-03-14X13:04:03Z");
  parse_bad("2025-3-14T13:04:03Z");
  parse_bad("25-03-14T13:04:03Z");
  parse_bad("2025/03/14T13:04:03Z");
  parse_bad("2025-03-14T13-04-03Z");
  parse_bad("2025-03-14T1:04:03Z");
  parse_bad("2025-00-14T13:04:03Z");
  parse_bad("2025-13-14T13:04:03Z");
  parse_bad("2025-03-00T13:04:03Z");
  parse_bad("2025-03-32T13:04:03Z");
  parse_bad("2025-04-31T13:04:03Z");
  parse_bad("2025-02-29T13:04:03Z");      /* not a leap year */
  parse_bad("1900-02-29T13:04:03Z");      /* century, not a leap year */
  parse_bad("2025-03-14T24:00:00Z");
  parse_bad("2025-03-14T13:60:00Z");
  parse_bad("2025-03-14T13:04:61Z");
  parse_bad("2025-03-14T13:04:03+00 BC"); /* PostgreSQL's BC suffix */
  parse_bad("infinity");
  parse_bad("-2025-03-14T13:04:03Z");
}

/* format -> parse is the identity at microsecond precision */
static void test_time_roundtrip(void) {
  const int64_t lo = -62135596800000000, hi = 253402300799999999; /* 0001 .. 9999 */
  int bad = 0;
  for (int i = 0; i < 20000; i++) {
    uint64_t r;
    randombytes_buf(&r, sizeof r);
    int64_t us = lo + (int64_t)(r % (uint64_t)(hi - lo + 1));
    if (i == 0) us = 0;
    if (i == 1) us = -1;
    if (i == 2) us = 253402300799999999;
    char out[32];
    int64_t back = 0;
    bd_time_fmt(out, us, true);
    bad += !bd_time_parse(out, &back) || back != us;
    /* without micro: whole seconds (floor) */
    bd_time_fmt(out, us, false);
    int64_t floor_s = us / 1000000 - (us % 1000000 < 0);
    bad += !bd_time_parse(out, &back) || back != floor_s * 1000000;
  }
  CHECK_INT(bad, 0);
}

static void test_time_pg_to_iso(void) {
  char out[32];
  CHECK(bd_time_pg_to_iso(NULL, out, true) == NULL);
  CHECK(bd_time_pg_to_iso("not a time", out, true) == NULL);
  CHECK(bd_time_pg_to_iso("2025-03-14 13:04:03+00", out, true) == out);
  CHECK_STR(out, "2025-03-14T13:04:03.000000Z");
  CHECK_STR(bd_time_pg_to_iso("2025-03-14 13:04:03.123456+00", out, false), "2025-03-14T13:04:03Z");
  CHECK_STR(bd_time_pg_to_iso("2025-03-14 13:04:03.12+00", out, true), "2025-03-14T13:04:03.120000Z");
  CHECK_STR(bd_time_pg_to_iso("2025-03-14 18:34:03.5+05:30", out, true), "2025-03-14T13:04:03.500000Z");
}

static void i64_ok(const char *s, int64_t want) {
  int64_t v = 42;
  bool ok = bd_parse_i64(bd_str_c(s), &v);
  if (!ok) fprintf(stderr, "  bd_parse_i64 rejected \"%s\"\n", s);
  CHECK(ok);
  CHECK(v == want);
}

static void i64_bad(const char *s) {
  int64_t v = 42;
  CHECK(!bd_parse_i64(bd_str_c(s), &v));
  CHECK_INT(v, 42); /* untouched */
}

static void test_parse_i64(void) {
  i64_ok("0", 0);
  i64_ok("-0", 0);
  i64_ok("7", 7);
  i64_ok("007", 7);
  i64_ok("-12345", -12345);
  i64_ok("9223372036854775807", INT64_MAX);
  i64_ok("-9223372036854775808", INT64_MIN);
  i64_ok("00000000000000000000000000001", 1);
  i64_bad("");
  i64_bad("-");
  i64_bad("+1");
  i64_bad(" 1");
  i64_bad("1 ");
  i64_bad("1a");
  i64_bad("0x10");
  i64_bad("1.0");
  i64_bad("1e3");
  i64_bad("--1");
  i64_bad("9223372036854775808");
  i64_bad("-9223372036854775809");
  i64_bad("18446744073709551615");
  i64_bad("18446744073709551616");
  i64_bad("99999999999999999999999");
  /* the length bounds the number, not a NUL */
  int64_t v = 0;
  CHECK(bd_parse_i64((bd_str_t){"12345", 3}, &v) && v == 123);
  CHECK(!bd_parse_i64((bd_str_t){NULL, 0}, &v));
}

static void dec_ok(const char *s, bool form, const char *want, size_t want_len) {
  bd_buf_t b = BD_BUF_INIT;
  CHECK(bd_url_decode(&b, s, strlen(s), form));
  CHECK(b.data != NULL);
  if (b.data) {
    CHECK_INT(b.len, want_len);
    CHECK(memcmp(b.data, want, want_len) == 0 && b.data[b.len] == '\0');
  }
  bd_buf_free(&b);
}

static void dec_bad(const char *s) {
  bd_buf_t b = BD_BUF_INIT;
  bd_buf_puts(&b, "keep");
  CHECK(!bd_url_decode(&b, s, strlen(s), true));
  CHECK_STR(b.data, "keep"); /* unchanged, still terminated */
  bd_buf_free(&b);
}

static void test_url_decode(void) {
  dec_ok("", true, "", 0);
  dec_ok("abc", false, "abc", 3);
  dec_ok("a%20b+c", true, "a b c", 5);
  dec_ok("a%20b+c", false, "a b+c", 5);
  dec_ok("%41%4a%4A%2b", false, "AJJ+", 4);
  dec_ok("%00x", false, "\0x", 2);
  dec_ok("%C3%A9", false, "\xc3\xa9", 2);
  dec_ok("100%25", false, "100%", 4);
  dec_bad("%");
  dec_bad("%4");
  dec_bad("a%");
  dec_bad("%zz");
  dec_bad("%4g");
  dec_bad("%g4");
  dec_bad("ok%2");
  dec_bad("%%41");
  /* appends */
  bd_buf_t b = BD_BUF_INIT;
  bd_buf_puts(&b, "x=");
  CHECK(bd_url_decode(&b, "%31+2", 5, true));
  CHECK_STR(b.data, "x=1 2");
  bd_buf_free(&b);
}

static void test_url_encode(void) {
  bd_buf_t b = BD_BUF_INIT;
  bd_url_encode(&b, "", 0);
  CHECK(b.data && b.len == 0 && b.data[0] == '\0');
  bd_url_encode(&b, "AZaz09-._~", 10);
  CHECK_STR(b.data, "AZaz09-._~");
  bd_buf_reset(&b);
  const char *s = "a b&c/d?e=f+g%\xc3\xa9\x00";
  bd_url_encode(&b, s, 17);
  CHECK_STR(b.data, "a%20b%26c%2Fd%3Fe%3Df%2Bg%25%C3%A9%00");
  /* decode(encode(x)) == x for all byte values */
  unsigned char all[256];
  for (int i = 0; i < 256; i++) all[i] = (unsigned char)i;
  bd_buf_reset(&b);
  bd_url_encode(&b, (const char *)all, sizeof all);
  bd_buf_t d = BD_BUF_INIT;
  CHECK(bd_url_decode(&d, b.data, b.len, false));
  CHECK(d.len == 256 && memcmp(d.data, all, 256) == 0);
  bd_buf_reset(&d);
  CHECK(bd_url_decode(&d, b.data, b.len, true)); /* '+' never appears in the output */
  CHECK(d.len == 256 && memcmp(d.data, all, 256) == 0);
  bd_buf_free(&d);
  bd_buf_free(&b);
}

/* Looks name up in q; returns the value or "<absent>". */
static const char *qget(const char *q, const char *name, bd_buf_t *b) {
  bd_buf_free(b);
  if (!bd_query_get(bd_str_c(q), name, b)) return "<absent>";
  CHECK(b->data != NULL); /* present values are always a C string */
  return b->data ? b->data : "<null>";
}

static void test_query_get(void) {
  bd_buf_t b = BD_BUF_INIT;
  CHECK_STR(qget("a=1&b=x%20y", "a", &b), "1");
  CHECK_STR(qget("a=1&b=x%20y", "b", &b), "x y");
  CHECK_STR(qget("a=1&b=x%20y", "c", &b), "<absent>");
  /* whole names only */
  CHECK_STR(qget("ab=1", "a", &b), "<absent>");
  CHECK_STR(qget("ab=1&a=2", "a", &b), "2");
  CHECK_STR(qget("a=1&ab=2", "ab", &b), "2");
  CHECK_STR(qget("xa=1", "a", &b), "<absent>");
  CHECK_STR(qget("a=1", "ab", &b), "<absent>");
  /* present but empty */
  CHECK_STR(qget("a", "a", &b), "");
  CHECK_STR(qget("x=1&a", "a", &b), "");
  CHECK_STR(qget("a&x=1", "a", &b), "");
  CHECK_STR(qget("a=", "a", &b), "");
  CHECK_STR(qget("a=&b=2", "a", &b), "");
  /* the first occurrence wins, even when empty */
  CHECK_STR(qget("a=1&a=2", "a", &b), "1");
  CHECK_STR(qget("a&a=2", "a", &b), "");
  /* empty segments and nameless pairs are skipped */
  CHECK_STR(qget("&&a=2&", "a", &b), "2");
  CHECK_STR(qget("=x&a=1", "a", &b), "1");
  CHECK_STR(qget("=x", "", &b), "<absent>");
  CHECK_STR(qget("&", "a", &b), "<absent>");
  CHECK_STR(qget("", "a", &b), "<absent>");
  /* form decoding of values and names */
  CHECK_STR(qget("q=hello+world%21", "q", &b), "hello world!");
  CHECK_STR(qget("q=a%2Bb", "q", &b), "a+b");
  CHECK_STR(qget("q=a%26b%3Dc&r=1", "q", &b), "a&b=c");
  CHECK_STR(qget("a=b=c", "a", &b), "b=c");
  CHECK_STR(qget("my%20key=v", "my key", &b), "v");
  CHECK_STR(qget("my+key=v", "my key", &b), "v");
  CHECK_STR(qget("%61=v", "a", &b), "v");
  CHECK_STR(qget("%61b=v", "a", &b), "<absent>");
  CHECK_STR(qget("%6=v&a=w", "a", &b), "w");
  /* malformed escapes stay as text (WHATWG), so validation sees them */
  CHECK_STR(qget("a=%zz", "a", &b), "%zz");
  CHECK_STR(qget("a=50%", "a", &b), "50%");
  CHECK_STR(qget("a%=1&a=2", "a%", &b), "1");
  CHECK_STR(qget("a=%4", "a", &b), "%4");
  /* NULL query */
  CHECK(!bd_query_get((bd_str_t){NULL, 0}, "a", &b));
  /* the query is bounded by its length */
  CHECK(!bd_query_get((bd_str_t){"a=1&b=2", 3}, "b", &b));
  bd_buf_free(&b);
  CHECK(bd_query_get((bd_str_t){"a=1&b=2", 6}, "b", &b));
  CHECK_STR(b.data, "");
  /* appends to what is already in out */
  bd_buf_free(&b);
  bd_buf_puts(&b, "v:");
  CHECK(bd_query_get(bd_str_c("k=x"), "k", &b));
  CHECK_STR(b.data, "v:x");
  bd_buf_free(&b);
}

static void b64_pair(const char *bin, size_t n, const char *std, const char *url) {
  bd_buf_t b = BD_BUF_INIT;
  bd_b64_encode(&b, bin, n);
  CHECK_STR(b.data, std);
  bd_buf_reset(&b);
  bd_b64url_encode(&b, bin, n);
  CHECK_STR(b.data, url);
  bd_buf_reset(&b);
  CHECK(bd_b64_decode(&b, std, strlen(std)));
  CHECK(b.len == n && (n == 0 || memcmp(b.data, bin, n) == 0));
  bd_buf_reset(&b);
  CHECK(bd_b64url_decode(&b, url, strlen(url)));
  CHECK(b.len == n && (n == 0 || memcmp(b.data, bin, n) == 0));
  bd_buf_free(&b);
}

static bool b64_ok(const char *s, bool url) {
  bd_buf_t b = BD_BUF_INIT;
  bd_buf_puts(&b, "pre");
  bool ok = url ? bd_b64url_decode(&b, s, strlen(s)) : bd_b64_decode(&b, s, strlen(s));
  if (!ok) CHECK_STR(b.data, "pre"); /* untouched and still terminated on failure */
  bd_buf_free(&b);
  return ok;
}

static void test_base64(void) {
  /* RFC 4648 §10 */
  b64_pair("", 0, "", "");
  b64_pair("f", 1, "Zg==", "Zg");
  b64_pair("fo", 2, "Zm8=", "Zm8");
  b64_pair("foo", 3, "Zm9v", "Zm9v");
  b64_pair("foob", 4, "Zm9vYg==", "Zm9vYg");
  b64_pair("fooba", 5, "Zm9vYmE=", "Zm9vYmE");
  b64_pair("foobar", 6, "Zm9vYmFy", "Zm9vYmFy");
  /* the two alphabets differ in 62 and 63 */
  b64_pair("\xfb\xff\xbf", 3, "+/+/", "-_-_");
  b64_pair("\x00\x00\xff\xfe", 4, "AAD//g==", "AAD__g");

  CHECK(!b64_ok("Zg", false));     /* padding required */
  CHECK(!b64_ok("Zg=", false));
  CHECK(!b64_ok("Zg===", false));
  CHECK(!b64_ok("Zh==", false));   /* non-zero trailing bits */
  CHECK(!b64_ok("Zm9v!", false));
  CHECK(!b64_ok("Zm 9v", false));
  CHECK(!b64_ok("Zg==Zg==", false));
  CHECK(!b64_ok("-_-_", false));   /* url alphabet in standard */
  CHECK(!b64_ok("Z", false));
  CHECK(!b64_ok("Zg==", true));    /* no padding in url */
  CHECK(!b64_ok("+/+/", true));    /* standard alphabet in url */
  CHECK(!b64_ok("Zh", true));
  CHECK(!b64_ok("Z", true));
  CHECK(!b64_ok("Zm9vY", true));   /* 5 chars: impossible length */
  CHECK(!b64_ok("Zm9v\n", true));
  CHECK(b64_ok("", true));
  CHECK(b64_ok("", false));

  /* decoders append */
  bd_buf_t b = BD_BUF_INIT;
  bd_buf_puts(&b, ">");
  CHECK(bd_b64_decode(&b, "Zm9v", 4));
  CHECK_STR(b.data, ">foo");
  bd_buf_free(&b);

  /* random round trips of every length up to 100 */
  unsigned char bin[100];
  randombytes_buf(bin, sizeof bin);
  for (size_t n = 0; n <= sizeof bin; n++) {
    bd_buf_t e = BD_BUF_INIT, d = BD_BUF_INIT;
    bd_b64_encode(&e, bin, n);
    CHECK(e.len == (n + 2) / 3 * 4);
    CHECK(bd_b64_decode(&d, e.data, e.len) && d.len == n && (n == 0 || !memcmp(d.data, bin, n)));
    bd_buf_reset(&e);
    bd_buf_reset(&d);
    bd_b64url_encode(&e, bin, n);
    CHECK(e.len == (n * 4 + 2) / 3 && !strchr(e.data, '='));
    CHECK(bd_b64url_decode(&d, e.data, e.len) && d.len == n && (n == 0 || !memcmp(d.data, bin, n)));
    bd_buf_free(&e);
    bd_buf_free(&d);
  }
}

static void test_hex_sha256(void) {
  char hex[16];
  bd_hex_encode(hex, "\x00\xff\x1a\x80", 4);
  CHECK_STR(hex, "00ff1a80");
  bd_hex_encode(hex, "", 0);
  CHECK_STR(hex, "");

  /* FIPS 180-2 / NIST examples */
  char h[65];
  bd_sha256_hex(h, "", 0);
  CHECK_STR(h, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  bd_sha256_hex(h, "abc", 3);
  CHECK_STR(h, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  const char *m = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
  bd_sha256_hex(h, m, strlen(m));
  CHECK_STR(h, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  char *million = malloc(1000000);
  memset(million, 'a', 1000000);
  bd_sha256_hex(h, million, 1000000);
  CHECK_STR(h, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
  free(million);
}

int main(void) {
  if (sodium_init() < 0) return 1;
  RUN(test_rand_base62);
  RUN(test_uuid);
  RUN(test_uuid_valid);
  RUN(test_time_fmt);
  RUN(test_time_parse);
  RUN(test_time_roundtrip);
  RUN(test_time_pg_to_iso);
  RUN(test_parse_i64);
  RUN(test_url_decode);
  RUN(test_url_encode);
  RUN(test_query_get);
  RUN(test_base64);
  RUN(test_hex_sha256);
  UNIT_DONE();
}

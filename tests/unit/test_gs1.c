/* test_gs1.c: GTIN check digits and normalisation, character set 82,
 * serial generation (validity, uniqueness, speed) and GS1 Digital Link
 * parsing and formatting. GTIN vectors are published examples whose check
 * digits were recomputed by hand (4006381333931 EAN-13, 96385074 EAN-8,
 * 036000291452 UPC-A, 10614141000415 and 09506000134352 GTIN-14 from GS1
 * documents). */
#include "gs1.h"
#include "unit.h"

#include <sodium.h>
#include <stdlib.h>
#include <time.h>

/* The 82 characters, spelled out independently of the implementation. */
static const char k_set82[] =
    "!\"%&'()*+,-./0123456789:;<=>?ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz";

static int norm(const char *s, char out[15]) { return bd_gs1_gtin_normalise(s, strlen(s), out); }

static void test_check_digit(void) {
  CHECK_INT(bd_gs1_check_digit("400638133393", 12), '1');
  CHECK_INT(bd_gs1_check_digit("9638507", 7), '4');
  CHECK_INT(bd_gs1_check_digit("03600029145", 11), '2');
  CHECK_INT(bd_gs1_check_digit("1061414100041", 13), '5');
  CHECK_INT(bd_gs1_check_digit("0950600013435", 13), '2');
  CHECK_INT(bd_gs1_check_digit("978030640615", 12), '7'); /* an ISBN-13 is an EAN-13 */
  CHECK_INT(bd_gs1_check_digit("", 0), '0');
  CHECK_INT(bd_gs1_check_digit("12a4", 4), 0);
  /* Leading zeros do not change it (why padding to 14 stays valid). */
  CHECK_INT(bd_gs1_check_digit("0000003600029145", 16), '2');
}

static void test_gtin_valid(void) {
  char out[15];
  CHECK_INT(norm("96385074", out), BD_GS1_OK);
  CHECK_STR(out, "00000096385074");
  CHECK_INT(norm("036000291452", out), BD_GS1_OK);
  CHECK_STR(out, "00036000291452");
  CHECK_INT(norm("4006381333931", out), BD_GS1_OK);
  CHECK_STR(out, "04006381333931");
  CHECK_INT(norm("10614141000415", out), BD_GS1_OK);
  CHECK_STR(out, "10614141000415");
  CHECK_INT(norm("09506000134352", out), BD_GS1_OK);
  CHECK_STR(out, "09506000134352");
  CHECK_INT(norm("9506000134352", out), BD_GS1_OK); /* GTIN-13 of the same */
  CHECK_STR(out, "09506000134352");
  CHECK_INT(norm("00000000", out), BD_GS1_OK);
  CHECK_STR(out, "00000000000000");
  /* Only the first n characters count. */
  CHECK_INT(bd_gs1_gtin_normalise("96385074xyz", 8, out), BD_GS1_OK);
  CHECK_STR(out, "00000096385074");
}

static void test_gtin_errors(void) {
  char out[15];
  strcpy(out, "junk");
  CHECK_INT(norm("96385075", out), BD_GS1_E_GTIN_CHECK);
  CHECK_STR(out, "");
  CHECK_INT(norm("036000291453", out), BD_GS1_E_GTIN_CHECK);
  CHECK_INT(norm("4006381333932", out), BD_GS1_E_GTIN_CHECK);
  CHECK_INT(norm("10614141000416", out), BD_GS1_E_GTIN_CHECK);
  /* Non-digits, whatever the length. */
  CHECK_INT(norm("40063813339a1", out), BD_GS1_E_GTIN_DIGITS);
  CHECK_INT(norm(" 4006381333931", out), BD_GS1_E_GTIN_DIGITS);
  CHECK_INT(norm("4006381333931\n", out), BD_GS1_E_GTIN_DIGITS);
  CHECK_INT(norm("-96385074", out), BD_GS1_E_GTIN_DIGITS);
  CHECK_INT(norm("x", out), BD_GS1_E_GTIN_DIGITS);
  CHECK_INT(norm("\xd9\xa1\xd9\xa2", out), BD_GS1_E_GTIN_DIGITS); /* Arabic-Indic digits */
  CHECK_INT(bd_gs1_gtin_normalise("9638\0" "5074", 9, out), BD_GS1_E_GTIN_DIGITS);
  /* Lengths. */
  const char *bad_len[] = {"", "1", "9638507", "963850740", "9638507400", "96385074000",
                           "106141410004150", "1061414100041500", "00000000000000000000"};
  for (size_t i = 0; i < BD_ARRAY_LEN(bad_len); i++) CHECK_INT(norm(bad_len[i], out), BD_GS1_E_GTIN_LENGTH);
  /* Mod 10 catches every single-digit substitution: each of the 9 wrong
   * digits at each of the 14 positions of a valid GTIN-14 fails. */
  char g[15] = "10614141000415";
  int caught = 0;
  for (int pos = 0; pos < 14; pos++) {
    char orig = g[pos];
    for (char d = '0'; d <= '9'; d++) {
      if (d == orig) continue;
      g[pos] = d;
      caught += norm(g, out) == BD_GS1_E_GTIN_CHECK;
    }
    g[pos] = orig;
  }
  CHECK_INT(caught, 14 * 9);
  /* Messages are distinct and non-empty. */
  CHECK(strcmp(bd_gs1_strerror(BD_GS1_E_GTIN_DIGITS), bd_gs1_strerror(BD_GS1_E_GTIN_LENGTH)) != 0);
  CHECK(strcmp(bd_gs1_strerror(BD_GS1_E_GTIN_LENGTH), bd_gs1_strerror(BD_GS1_E_GTIN_CHECK)) != 0);
  CHECK_STR(bd_gs1_strerror(12345), "unknown error");
}

static void test_cset82(void) {
  CHECK_INT(strlen(k_set82), 82);
  int n = 0;
  for (int c = 0; c < 256; c++) {
    bool want = c != 0 && strchr(k_set82, c) != NULL;
    CHECK_INT(bd_gs1_cset82((unsigned char)c), want);
    n += bd_gs1_cset82((unsigned char)c);
  }
  CHECK_INT(n, 82);
  /* Every allowed character makes a valid one-character value. */
  for (const char *p = k_set82; *p; p++) CHECK_INT(bd_gs1_value_check(p, 1), BD_GS1_OK);
  /* Disallowed examples. */
  const char *bad[] = {" ", "#", "~", "$", "@", "[", "\\", "]", "^", "`", "{", "|", "}",
                       "\x7f", "\t", "\xc3\xa9" /* é */, "AB CD", "LOT#1"};
  for (size_t i = 0; i < BD_ARRAY_LEN(bad); i++)
    CHECK_INT(bd_gs1_value_check(bad[i], strlen(bad[i])), BD_GS1_E_VALUE_CHARSET);
  CHECK_INT(bd_gs1_value_check("A\0B", 3), BD_GS1_E_VALUE_CHARSET);
  /* Lengths 1..20. */
  CHECK_INT(bd_gs1_value_check("", 0), BD_GS1_E_VALUE_EMPTY);
  CHECK_INT(bd_gs1_value_check("ABCDEFGHIJKLMNOPQRST", 20), BD_GS1_OK);
  CHECK_INT(bd_gs1_value_check("ABCDEFGHIJKLMNOPQRSTU", 21), BD_GS1_E_VALUE_LENGTH);
  CHECK_INT(bd_gs1_value_check("!\"%&'()*+,-./:;<=>?_", 20), BD_GS1_OK);
}

static int cmp_serial(const void *a, const void *b) { return strcmp(a, b); }

static void test_serials(void) {
  enum { N = 1000000, L = BD_GS1_SERIAL_LEN_DEFAULT };
  CHECK_INT(strlen(BD_GS1_SERIAL_ALPHABET), 32);
  /* The alphabet is URI-unreserved and inside set 82. */
  for (const char *p = BD_GS1_SERIAL_ALPHABET; *p; p++) {
    CHECK(bd_gs1_cset82((unsigned char)*p));
    CHECK(!bd_gs1_dl_needs_escape((unsigned char)*p));
    CHECK(!strchr("ILOU", *p));
  }
  char *buf = malloc((size_t)N * (L + 1));
  uint64_t t0 = bd_now_ns();
  bd_gs1_serials_generate(buf, N, L);
  uint64_t t1 = bd_now_ns();
  printf("  generated %d serials of %d characters in %.1f ms\n", N, L, (double)(t1 - t0) / 1e6);
  long count[128] = {0};
  int bad = 0;
  for (size_t i = 0; i < N; i++) {
    const char *s = buf + i * (L + 1);
    if (strlen(s) != L || bd_gs1_value_check(s, L) != BD_GS1_OK) bad++;
    for (int k = 0; k < L; k++) count[(unsigned char)s[k]]++;
  }
  CHECK_INT(bad, 0);
  /* Each of the 32 symbols appears ~375,000 times (sd ~600); others never. */
  int kinds = 0;
  for (int c = 0; c < 128; c++) {
    if (!count[c]) continue;
    kinds++;
    CHECK(strchr(BD_GS1_SERIAL_ALPHABET, c) != NULL);
    CHECK(count[c] > 370000 && count[c] < 380000);
  }
  CHECK_INT(kinds, 32);
  /* 60 bits: a duplicate among 10^6 has probability ~4e-7. */
  qsort(buf, N, L + 1, cmp_serial);
  int dups = 0;
  for (size_t i = 1; i < N; i++) dups += strcmp(buf + (i - 1) * (L + 1), buf + i * (L + 1)) == 0;
  CHECK_INT(dups, 0);
  /* Two calls differ; len is clamped to 1..20; count 0 writes nothing. */
  char a[13], b[13];
  bd_gs1_serials_generate(a, 1, 12);
  bd_gs1_serials_generate(b, 1, 12);
  CHECK(strcmp(a, b) != 0);
  char w[2 * 21];
  memset(w, 'x', sizeof w);
  bd_gs1_serials_generate(w, 2, 0);
  CHECK(w[1] == '\0' && w[3] == '\0' && w[4] == 'x');
  bd_gs1_serials_generate(w, 2, 99);
  CHECK_INT(strlen(w), 20);
  CHECK_INT(strlen(w + 21), 20);
  char z = 'x';
  bd_gs1_serials_generate(&z, 0, 12);
  CHECK(z == 'x');
  free(buf);
}

static int parse(const char *path, const char *query, bd_gs1_dl_t *dl) {
  return bd_gs1_dl_parse(bd_str_c(path), bd_str_c(query), dl);
}

static void test_dl_parse_valid(void) {
  bd_gs1_dl_t dl;
  CHECK_INT(parse("/01/09506000134352", "", &dl), BD_GS1_OK);
  CHECK_STR(dl.gtin, "09506000134352");
  CHECK(!dl.has_lot && !dl.has_serial);
  CHECK_STR(dl.lot, "");
  CHECK_STR(dl.serial, "");
  CHECK_STR(dl.expiry, "");
  CHECK_STR(dl.prod_date, "");

  CHECK_INT(parse("/01/09506000134352/10/ABC123/21/12345", "", &dl), BD_GS1_OK);
  CHECK_STR(dl.lot, "ABC123");
  CHECK_STR(dl.serial, "12345");
  CHECK(dl.has_lot && dl.has_serial);

  CHECK_INT(parse("/01/09506000134352/10/L1", "", &dl), BD_GS1_OK);
  CHECK(dl.has_lot && !dl.has_serial);
  CHECK_STR(dl.lot, "L1");

  /* Serial directly after the GTIN. */
  CHECK_INT(parse("/01/09506000134352/21/X7", "", &dl), BD_GS1_OK);
  CHECK(!dl.has_lot && dl.has_serial);
  CHECK_STR(dl.serial, "X7");

  /* GTIN-8/12/13 normalised. */
  CHECK_INT(parse("/01/96385074/21/1", "", &dl), BD_GS1_OK);
  CHECK_STR(dl.gtin, "00000096385074");
  CHECK_INT(parse("/01/036000291452", "", &dl), BD_GS1_OK);
  CHECK_STR(dl.gtin, "00036000291452");
  CHECK_INT(parse("/01/4006381333931", "", &dl), BD_GS1_OK);
  CHECK_STR(dl.gtin, "04006381333931");

  /* Percent-encoded values, either hex case; raw set-82 characters too. */
  CHECK_INT(parse("/01/09506000134352/10/A%2FB%2f1/21/%21%22%25%26%27%28%29%2A%2B%2C%3A%3B%3C%3D%3E%3F", "",
                  &dl),
            BD_GS1_OK);
  CHECK_STR(dl.lot, "A/B/1");
  CHECK_STR(dl.serial, "!\"%&'()*+,:;<=>?");
  CHECK_INT(parse("/01/09506000134352/21/a(b)!*+,;=:-._", "", &dl), BD_GS1_OK);
  CHECK_STR(dl.serial, "a(b)!*+,;=:-._");
  CHECK_INT(parse("/01/%30%39506000134352/21/%41", "", &dl), BD_GS1_OK);
  CHECK_STR(dl.gtin, "09506000134352");
  CHECK_STR(dl.serial, "A");
  /* 20 characters after decoding, 60 before. */
  CHECK_INT(parse("/01/09506000134352/21/%2F%2F%2F%2F%2F%2F%2F%2F%2F%2F%2F%2F%2F%2F%2F%2F%2F%2F%2F%2F", "",
                  &dl),
            BD_GS1_OK);
  CHECK_STR(dl.serial, "////////////////////");
  CHECK_INT(parse("/01/09506000134352/21/ABCDEFGHIJKLMNOPQRST", "", &dl), BD_GS1_OK);
  /* A bd_str_t path is not NUL-terminated: only path.len counts. */
  const char *raw = "/01/09506000134352/21/AB/garbage";
  CHECK_INT(bd_gs1_dl_parse((bd_str_t){raw, 24}, (bd_str_t){NULL, 0}, &dl), BD_GS1_OK);
  CHECK_STR(dl.serial, "AB");
  /* Every key qualifier of a GTIN, in GS1 order; a trailing slash. */
  CHECK_INT(parse("/01/09506000134352/22/V%2F1/10/L/21/S/", "", &dl), BD_GS1_OK);
  CHECK(dl.has_cpv && dl.has_lot && dl.has_serial && !dl.has_tpx);
  CHECK_STR(dl.cpv, "V/1");
  CHECK_STR(dl.serial, "S");
  CHECK_INT(parse("/01/09506000134352/235/ABCDEFGHIJKLMNOPQRSTUVWXYZ12", "", &dl), BD_GS1_OK);
  CHECK(dl.has_tpx && !dl.has_serial);
  CHECK_STR(dl.tpx, "ABCDEFGHIJKLMNOPQRSTUVWXYZ12");
  CHECK_INT(parse("/01/09506000134352/", "", &dl), BD_GS1_OK);
  CHECK(!dl.has_lot && !dl.has_serial);
}

/* Decompresses seg and checks path and query. */
static void check_dlc(const char *seg, int want, const char *path, const char *query) {
  bd_buf_t p = BD_BUF_INIT, q = BD_BUF_INIT;
  int rc = bd_gs1_dl_decompress(seg, strlen(seg), &p, &q);
  CHECK_INT(rc, want);
  if (rc == BD_GS1_OK) {
    CHECK_STR(p.data ? p.data : "", path);
    CHECK_STR(q.data ? q.data : "", query);
  } else {
    CHECK(p.len == 0 && q.len == 0);
  }
  bd_buf_free(&p);
  bd_buf_free(&q);
}

static void test_dl_decompress(void) {
  /* Vectors made with GS1's reference compression (as shipped in the npm
   * package digital-link.js); the integration tests compress with it at
   * run time too. Optimisation codes 0B-0C-1A and plain AIs, every
   * encoding of a value, a non-GS1 key=value pair. */
  check_dlc("CxFKk4XBoMxZyfyOpCh1eA", BD_GS1_OK, "/01/09506000134352/10/LOT-R1/21/ABC", "");
  check_dlc("DBFKk4XBoQsFfCVww", BD_GS1_OK, "/01/09506000134352/21/A%2FB%2BC", "");
  check_dlc("GhFKk4XBoMJZ_jewpETCv4N-ihg22qw", BD_GS1_OK, "/01/09506000134352/22/X/10/L/21/S", "17=261231&foo=bar");
  check_dlc("", BD_GS1_E_DLC_SYNTAX, "", "");
  check_dlc("GhFKk4XBoMJZ_jewpA", BD_GS1_OK, "/01/09506000134352/10/L/21/S", "17=261231");
  check_dlc("ARFKk4XBoeDfooYNtqs", BD_GS1_OK, "/01/09506000134352", "foo=bar");
  check_dlc("healthz", BD_GS1_E_DLC_AI, "", "");
  check_dlc("CxFKk4XBoMxZyfyOpCh1e!", BD_GS1_E_DLC_SYNTAX, "", "");
  check_dlc("CxFKk4XBoMxZ", BD_GS1_E_DLC_SYNTAX, "", ""); /* truncated */
}

/* Checks the code, the AI and that the message names both. */
static void check_err(const char *path, const char *query, int want, int want_ai, const char *msg_part) {
  bd_gs1_dl_t dl;
  int rc = parse(path, query, &dl);
  if (rc != want || dl.err_ai != want_ai || !strstr(dl.errmsg, msg_part) ||
      !strstr(dl.errmsg, bd_gs1_strerror(want))) {
    fprintf(stderr, "  path %s?%s: rc %d (want %d) ai %d (want %d) msg \"%s\"\n", path, query, rc, want,
            dl.err_ai, want_ai, dl.errmsg);
    CHECK(0);
  }
}

static void test_dl_parse_errors(void) {
  const char *G = "/01/09506000134352";
  char p[256];
  check_err("", "", BD_GS1_E_DL_PRIMARY, 0, "path");
  check_err("/", "", BD_GS1_E_DL_PRIMARY, 0, "path");
  check_err("/01", "", BD_GS1_E_DL_PRIMARY, 0, "path");
  check_err("/00/106141411234567897", "", BD_GS1_E_DL_PRIMARY, 0, "path");
  check_err("/gtin/09506000134352", "", BD_GS1_E_DL_PRIMARY, 0, "path");
  check_err("/prefix/01/09506000134352", "", BD_GS1_E_DL_PRIMARY, 0, "path");
  /* GTIN errors. */
  check_err("/01/09506000134353", "", BD_GS1_E_GTIN_CHECK, 1, "AI 01 (GTIN)");
  check_err("/01/09506000134", "", BD_GS1_E_GTIN_LENGTH, 1, "AI 01");
  check_err("/01/095060001343520000000000000000000000000000000000", "", BD_GS1_E_GTIN_LENGTH, 1, "AI 01");
  check_err("/01/0950600013435X", "", BD_GS1_E_GTIN_DIGITS, 1, "AI 01");
  check_err("/01/09506000%3234352", "", BD_GS1_E_GTIN_CHECK, 1, "AI 01"); /* decodes to a wrong digit */
  check_err("/01/0950600013435%", "", BD_GS1_E_DL_ESCAPE, 1, "AI 01");
  /* Empty segments, trailing slash. */
  check_err("/01/", "", BD_GS1_E_DL_SEGMENT, 1, "AI 01");
  check_err("/01//21/A", "", BD_GS1_E_DL_SEGMENT, 1, "AI 01");
  snprintf(p, sizeof p, "%s//", G);
  check_err(p, "", BD_GS1_E_DL_SEGMENT, 0, "path");
  snprintf(p, sizeof p, "%s//21/A", G);
  check_err(p, "", BD_GS1_E_DL_SEGMENT, 0, "path");
  snprintf(p, sizeof p, "%s/21/A//", G);
  check_err(p, "", BD_GS1_E_DL_SEGMENT, 0, "path");
  snprintf(p, sizeof p, "%s/21/", G);
  check_err(p, "", BD_GS1_E_DL_SEGMENT, 21, "AI 21 (serial)");
  snprintf(p, sizeof p, "%s/10//21/A", G);
  check_err(p, "", BD_GS1_E_DL_SEGMENT, 10, "AI 10 (batch/lot)");
  /* An AI with no value. */
  snprintf(p, sizeof p, "%s/10", G);
  check_err(p, "", BD_GS1_E_DL_NO_VALUE, 10, "AI 10");
  snprintf(p, sizeof p, "%s/10/L/21", G);
  check_err(p, "", BD_GS1_E_DL_NO_VALUE, 21, "AI 21");
  /* Unsupported AIs, named when they look like one. */
  snprintf(p, sizeof p, "%s/17/261231", G);
  check_err(p, "", BD_GS1_E_DL_AI, 0, "AI 17");
  snprintf(p, sizeof p, "%s/254/X", G);
  check_err(p, "", BD_GS1_E_DL_AI, 0, "AI 254");
  snprintf(p, sizeof p, "%s/ser/X", G);
  check_err(p, "", BD_GS1_E_DL_AI, 0, "path");
  snprintf(p, sizeof p, "%s/01/09506000134352", G);
  check_err(p, "", BD_GS1_E_DL_AI, 0, "AI 01");
  snprintf(p, sizeof p, "%s/10/L/22/V", G);
  check_err(p, "", BD_GS1_E_DL_ORDER, 22, "AI 22");
  snprintf(p, sizeof p, "%s/21/S/235/T", G);
  check_err(p, "", BD_GS1_E_DL_ORDER, 235, "AI 235");
  snprintf(p, sizeof p, "%s/235/ABCDEFGHIJKLMNOPQRSTUVWXYZ123", G); /* 29 > 28 */
  check_err(p, "", BD_GS1_E_VALUE_LENGTH, 235, "AI 235");
  /* Order and repetition. */
  snprintf(p, sizeof p, "%s/21/S/10/L", G);
  check_err(p, "", BD_GS1_E_DL_ORDER, 10, "AI 10");
  snprintf(p, sizeof p, "%s/10/L/10/M", G);
  check_err(p, "", BD_GS1_E_DL_ORDER, 10, "AI 10");
  snprintf(p, sizeof p, "%s/21/S/21/T", G);
  check_err(p, "", BD_GS1_E_DL_ORDER, 21, "AI 21");
  /* Values: escapes, set 82, length. */
  snprintf(p, sizeof p, "%s/21/A%%zz", G);
  check_err(p, "", BD_GS1_E_DL_ESCAPE, 21, "AI 21");
  snprintf(p, sizeof p, "%s/21/A%%4", G);
  check_err(p, "", BD_GS1_E_DL_ESCAPE, 21, "AI 21");
  snprintf(p, sizeof p, "%s/21/A%%", G);
  check_err(p, "", BD_GS1_E_DL_ESCAPE, 21, "AI 21");
  snprintf(p, sizeof p, "%s/10/%%20A", G); /* space */
  check_err(p, "", BD_GS1_E_VALUE_CHARSET, 10, "AI 10");
  snprintf(p, sizeof p, "%s/21/A%%23", G); /* '#' */
  check_err(p, "", BD_GS1_E_VALUE_CHARSET, 21, "AI 21");
  snprintf(p, sizeof p, "%s/21/A~B", G); /* unreserved in URIs, not in set 82 */
  check_err(p, "", BD_GS1_E_VALUE_CHARSET, 21, "AI 21");
  snprintf(p, sizeof p, "%s/21/%%C3%%A9", G); /* é */
  check_err(p, "", BD_GS1_E_VALUE_CHARSET, 21, "AI 21");
  snprintf(p, sizeof p, "%s/21/A%%00", G);
  check_err(p, "", BD_GS1_E_VALUE_CHARSET, 21, "AI 21");
  snprintf(p, sizeof p, "%s/21/ABCDEFGHIJKLMNOPQRSTU", G);
  check_err(p, "", BD_GS1_E_VALUE_LENGTH, 21, "AI 21");
  snprintf(p, sizeof p, "%s/10/ABCDEFGHIJKLMNOPQRS%%2F%%2F", G);
  check_err(p, "", BD_GS1_E_VALUE_LENGTH, 10, "AI 10");
}

static void test_dl_query(void) {
  const char *G = "/01/09506000134352/21/S1";
  bd_gs1_dl_t dl;
  CHECK_INT(parse(G, "17=261231", &dl), BD_GS1_OK);
  CHECK_STR(dl.expiry, "261231");
  CHECK_STR(dl.prod_date, "");
  CHECK_INT(parse(G, "11=250101&17=270200", &dl), BD_GS1_OK); /* DD 00: end of month */
  CHECK_STR(dl.prod_date, "250101");
  CHECK_STR(dl.expiry, "270200");
  /* Other parameters are ignored, whatever they hold. */
  CHECK_INT(parse(G, "linkType=gs1:pip&17=280229&x=%zz&3103=000189&&=", &dl), BD_GS1_OK);
  CHECK_STR(dl.expiry, "280229");
  CHECK_INT(parse(G, "117=999999&170=x&1=2", &dl), BD_GS1_OK);
  CHECK_STR(dl.expiry, "");
  /* Encoded digits decode; the first occurrence wins. */
  CHECK_INT(parse(G, "17=%32%36%31%32%33%31", &dl), BD_GS1_OK);
  CHECK_STR(dl.expiry, "261231");
  CHECK_INT(parse(G, "17=261231&17=garbage", &dl), BD_GS1_OK);
  CHECK_STR(dl.expiry, "261231");
  /* Invalid dates. */
  const char *bad[] = {"17=", "17", "17=26123", "17=2612311", "17=261331", "17=261200x", "17=260001",
                       "17=260132", "17=260230", "17=270229", "17=260431", "17=26-1-1", "17=+61231",
                       "11=251301", "11=abcdef"};
  for (size_t i = 0; i < BD_ARRAY_LEN(bad); i++) {
    int ai = bad[i][1] == '7' ? 17 : 11;
    int rc = parse(G, bad[i], &dl);
    CHECK_INT(rc, BD_GS1_E_DL_DATE);
    CHECK_INT(dl.err_ai, ai);
    CHECK(strstr(dl.errmsg, ai == 17 ? "AI 17 (expiry date)" : "AI 11 (production date)") != NULL);
  }
  CHECK_INT(parse(G, "17=26123%", &dl), BD_GS1_E_DL_ESCAPE);
  CHECK_INT(dl.err_ai, 17);
  /* Valid edge dates: every month's last day, Feb 29 in a YY % 4 == 0 year. */
  const char *good[] = {"17=000229", "17=240229", "17=250131", "17=250228", "17=250331", "17=250430",
                        "17=250531", "17=250630", "17=250731", "17=250831", "17=250930", "17=251031",
                        "17=251130", "17=251231", "17=991200", "11=000101"};
  for (size_t i = 0; i < BD_ARRAY_LEN(good); i++) CHECK_INT(parse(G, good[i], &dl), BD_GS1_OK);
  /* A path error wins over a query error. */
  CHECK_INT(parse("/01/09506000134353", "17=x", &dl), BD_GS1_E_GTIN_CHECK);
}

static void test_dl_format(void) {
  bd_buf_t b = BD_BUF_INIT;
  CHECK_INT(bd_gs1_dl_format(&b, "https://id.example.com", "9506000134352", NULL, NULL), BD_GS1_OK);
  CHECK_STR(b.data, "https://id.example.com/01/09506000134352");
  bd_buf_reset(&b);
  CHECK_INT(bd_gs1_dl_format(&b, "https://id.example.com/", "09506000134352", "ABC123", "12345"), BD_GS1_OK);
  CHECK_STR(b.data, "https://id.example.com/01/09506000134352/10/ABC123/21/12345");
  bd_buf_reset(&b);
  CHECK_INT(bd_gs1_dl_format(&b, "", "96385074", "", "X-1.2_3"), BD_GS1_OK);
  CHECK_STR(b.data, "/01/00000096385074/21/X-1.2_3");
  bd_buf_reset(&b);
  CHECK_INT(bd_gs1_dl_format(&b, NULL, "96385074", "A/B", "!\"%&'()*+,/:;<=>?"), BD_GS1_OK);
  CHECK_STR(b.data, "/01/00000096385074/10/A%2FB/21/%21%22%25%26%27%28%29%2A%2B%2C%2F%3A%3B%3C%3D%3E%3F");
  /* Errors append nothing. */
  bd_buf_reset(&b);
  CHECK_INT(bd_gs1_dl_format(&b, "https://x", "96385075", NULL, NULL), BD_GS1_E_GTIN_CHECK);
  CHECK_INT(bd_gs1_dl_format(&b, "https://x", NULL, NULL, NULL), BD_GS1_E_GTIN_LENGTH);
  CHECK_INT(bd_gs1_dl_format(&b, "https://x", "96385074", "a b", NULL), BD_GS1_E_VALUE_CHARSET);
  CHECK_INT(bd_gs1_dl_format(&b, "https://x", "96385074", NULL, "ABCDEFGHIJKLMNOPQRSTU"), BD_GS1_E_VALUE_LENGTH);
  CHECK_INT(b.len, 0);
  /* Exactly 17 characters of set 82 are escaped: its 20 symbols but - . _ */
  int esc = 0;
  for (const char *p = k_set82; *p; p++) esc += bd_gs1_dl_needs_escape((unsigned char)*p);
  CHECK_INT(esc, 17);
  for (const char *p = "!\"%&'()*+,/:;<=>?"; *p; p++) CHECK(bd_gs1_dl_needs_escape((unsigned char)*p));
  bd_buf_free(&b);
}

/* format then parse gives back the same values: every character of set 82
 * in every position, then random values. */
static void test_dl_round_trip(void) {
  bd_buf_t b = BD_BUF_INIT;
  bd_gs1_dl_t dl;
  for (const char *p = k_set82; *p; p++) {
    char lot[4] = {'L', *p, 'x', 0}, ser[2] = {*p, 0};
    bd_buf_reset(&b);
    CHECK_INT(bd_gs1_dl_format(&b, "https://r.example", "036000291452", lot, ser), BD_GS1_OK);
    const char *path = strstr(b.data, "/01/");
    CHECK(strchr(path, '?') == NULL && strchr(path, '#') == NULL);
    CHECK_INT(parse(path, "", &dl), BD_GS1_OK);
    CHECK_STR(dl.gtin, "00036000291452");
    CHECK_STR(dl.lot, lot);
    CHECK_STR(dl.serial, ser);
  }
  unsigned char rnd[64];
  for (int iter = 0; iter < 20000; iter++) {
    randombytes_buf(rnd, sizeof rnd);
    char lot[21], ser[21];
    int ll = 1 + rnd[0] % 20, sl = 1 + rnd[1] % 20;
    for (int i = 0; i < ll; i++) lot[i] = k_set82[rnd[2 + i] % 82];
    for (int i = 0; i < sl; i++) ser[i] = k_set82[rnd[22 + i] % 82];
    lot[ll] = ser[sl] = 0;
    bool with_lot = rnd[42] & 1;
    bd_buf_reset(&b);
    CHECK_INT(bd_gs1_dl_format(&b, "", "10614141000415", with_lot ? lot : NULL, ser), BD_GS1_OK);
    int rc = parse(b.data, "", &dl);
    CHECK_INT(rc, BD_GS1_OK);
    if (rc) break;
    CHECK(dl.has_lot == with_lot);
    if (with_lot) CHECK_STR(dl.lot, lot);
    CHECK_STR(dl.serial, ser);
  }
  bd_buf_free(&b);
}

int main(void) {
  if (sodium_init() < 0) return 1;
  RUN(test_check_digit);
  RUN(test_gtin_valid);
  RUN(test_gtin_errors);
  RUN(test_cset82);
  RUN(test_serials);
  RUN(test_dl_parse_valid);
  RUN(test_dl_parse_errors);
  RUN(test_dl_query);
  RUN(test_dl_decompress);
  RUN(test_dl_format);
  RUN(test_dl_round_trip);
  UNIT_DONE();
}

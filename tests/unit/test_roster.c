/* test_roster.c: the streaming roster validator: exact COPY text, CSV
 * edge cases, structural errors, row validation, chunking independence,
 * and a 1,000,000-row run through multipart + roster with bounded memory
 * (prints throughput; no timing assertions). */
#include "buf.h"
#include "multipart.h"
#include "roster.h"
#include "unit.h"

#include <stdlib.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

#define TODAY "2025-03-14"

static bd_roster_opts_t opts(void) {
  bd_roster_opts_t o;
  bd_roster_opts_default(&o);
  o.today = TODAY;
  return o;
}

/* Parses csv[0..len) in chunks of `chunk` bytes (0 = one feed; SIZE_MAX =
 * random sizes 1..97 from `seed`). Returns the first non-OK code (feed or
 * finish); out receives the COPY text, msg (if given) the message. */
static int parse_with(const bd_roster_opts_t *o, const char *csv, size_t len, size_t chunk, unsigned seed,
                      bd_buf_t *out, char *msg, size_t msgsz) {
  bd_roster_t *r = bd_roster_new(o, out);
  if (!r) return -1;
  int rc = BD_ROSTER_OK;
  size_t off = 0;
  while (off < len && rc == BD_ROSTER_OK) {
    size_t n = len - off;
    size_t k = chunk == SIZE_MAX ? (size_t)(rand_r(&seed) % 97 + 1) : chunk ? chunk : n;
    n = BD_MIN(n, k);
    rc = bd_roster_feed(r, csv + off, n);
    off += n;
  }
  if (rc == BD_ROSTER_OK) rc = bd_roster_finish(r);
  if (msg) snprintf(msg, msgsz, "%s", bd_roster_message(r));
  bd_roster_free(r);
  return rc;
}

static int parse_s(const char *csv, bd_buf_t *out, char *msg, size_t msgsz) {
  bd_roster_opts_t o = opts();
  return parse_with(&o, csv, strlen(csv), 0, 0, out, msg, msgsz);
}

/* ---- exact output ----------------------------------------------------- */

static const char SMALL[] =
  "\xEF\xBB\xBF RecipientsEmail ,RecipientsName,IssueDate,Course,Grade\r\n"
  "ada@example.com,Ada Lovelace,15-02-2025,Math,A\r\n"
  "bad-email,Bob,1-1-2024,\"Art, History\",B\r\n"
  "carol@example.org,,31-02-2024,Music,\r\n"
  "\r\n"
  "dave@example.net,\"Dave \"\"The Rave\"\"\",,\"Line1\r\nLine2\",\"tab\there\\back\"\r\n"
  ",,,,\r\n"
  "  eve@example.com  ,  Zoë Ω 日本 😀 ,  , \"  spaced  \" , \"q\"\"\"\n"
  "frank@example.com,Frank";

static const char SMALL_COPY[] =
  "1\tada@example.com\tAda Lovelace\t2025-02-15\t{\"Course\":\"Math\",\"Grade\":\"A\"}\tpending\t\\N\n"
  "2\tbad-email\tBob\t2024-01-01\t{\"Course\":\"Art, History\",\"Grade\":\"B\"}\tfailed\tInvalid email address\n"
  "3\tcarol@example.org\t\t\\N\t{\"Course\":\"Music\",\"Grade\":\"\"}\tfailed\t"
  "Recipient name is required; Invalid IssueDate, expected DD-MM-YYYY\n"
  "4\tdave@example.net\tDave \"The Rave\"\t2025-03-14\t"
  "{\"Course\":\"Line1\\\\r\\\\nLine2\",\"Grade\":\"tab\\\\there\\\\\\\\back\"}\tpending\t\\N\n"
  /* Python's csv: spaces are data, so ` "  spaced  " ` is unquoted text */
  "5\teve@example.com\t  Zoë Ω 日本 😀 \t2025-03-14\t"
  "{\"Course\":\" \\\\\"  spaced  \\\\\" \",\"Grade\":\" \\\\\"q\\\\\"\\\\\"\\\\\"\"}\tpending\t\\N\n"
  "6\tfrank@example.com\tFrank\t2025-03-14\t{\"Course\":\"\",\"Grade\":\"\"}\tpending\t\\N\n";

static void test_exact_copy(void) {
  bd_roster_opts_t o = opts();
  bd_buf_t out = BD_BUF_INIT;
  bd_roster_t *r = bd_roster_new(&o, &out);
  CHECK(r != NULL);
  CHECK_INT(bd_roster_feed(r, SMALL, sizeof SMALL - 1), BD_ROSTER_OK);
  CHECK_INT(bd_roster_finish(r), BD_ROSTER_OK);
  CHECK_STR(out.data, SMALL_COPY);
  CHECK_INT(bd_roster_rows(r), 6);
  CHECK_INT(bd_roster_failed(r), 2);
  CHECK_INT(bd_roster_pending(r), out.len);
  CHECK_STR(bd_roster_message(r), "");
  CHECK(bd_roster_has_issue_date(r));
  CHECK_INT(bd_roster_custom_count(r), 2);
  CHECK(bd_str_eq(bd_roster_custom_name(r, 0), "Course"));
  CHECK(bd_str_eq(bd_roster_custom_name(r, 1), "Grade"));
  CHECK(bd_roster_custom_name(r, 2).p == NULL);
  bd_roster_free(r);
  bd_buf_free(&out);
  CHECK_STR(BD_ROSTER_COPY_COLUMNS, "row_no, email, name, issue_date, custom_data, status, error");
}

/* Byte by byte, fixed and random chunk sizes, and draining the output
 * mid-way all give the same bytes. */
static void test_chunking_is_invisible(void) {
  bd_roster_opts_t o = opts();
  size_t len = sizeof SMALL - 1;
  size_t sizes[] = {1, 2, 3, 4, 5, 7, 64, 4096};
  for (size_t i = 0; i < BD_ARRAY_LEN(sizes); i++) {
    bd_buf_t out = BD_BUF_INIT;
    CHECK_INT(parse_with(&o, SMALL, len, sizes[i], 0, &out, NULL, 0), BD_ROSTER_OK);
    CHECK_STR(out.data, SMALL_COPY);
    bd_buf_free(&out);
  }
  for (unsigned seed = 1; seed <= 200; seed++) {
    bd_buf_t out = BD_BUF_INIT;
    CHECK_INT(parse_with(&o, SMALL, len, SIZE_MAX, seed, &out, NULL, 0), BD_ROSTER_OK);
    if (strcmp(out.data, SMALL_COPY) != 0) {
      fprintf(stderr, "  seed %u differs\n", seed);
      CHECK_STR(out.data, SMALL_COPY);
      bd_buf_free(&out);
      break;
    }
    bd_buf_free(&out);
  }
  /* Every two-way split, draining between the halves. */
  for (size_t k = 0; k <= len; k++) {
    bd_buf_t out = BD_BUF_INIT, all = BD_BUF_INIT;
    bd_roster_t *r = bd_roster_new(&o, &out);
    CHECK_INT(bd_roster_feed(r, SMALL, k), BD_ROSTER_OK);
    bd_buf_append(&all, out.data ? out.data : "", out.len);
    bd_buf_reset(&out);
    CHECK_INT(bd_roster_feed(r, SMALL + k, len - k), BD_ROSTER_OK);
    CHECK_INT(bd_roster_finish(r), BD_ROSTER_OK);
    bd_buf_append(&all, out.data, out.len);
    if (strcmp(all.data, SMALL_COPY) != 0) {
      fprintf(stderr, "  split %zu differs\n", k);
      CHECK_STR(all.data, SMALL_COPY);
      k = len;
    }
    bd_roster_free(r);
    bd_buf_free(&out);
    bd_buf_free(&all);
  }
}

static void test_crlf_lf_cr_equivalent(void) {
  const char *lf = "RecipientsEmail,RecipientsName,Note\na@b.co,Ann,\"x\ny\"\n\nc@d.co,Cid,z\n";
  const char *crlf = "RecipientsEmail,RecipientsName,Note\r\na@b.co,Ann,\"x\ny\"\r\n\r\nc@d.co,Cid,z\r\n";
  const char *cr = "RecipientsEmail,RecipientsName,Note\ra@b.co,Ann,\"x\ny\"\r\rc@d.co,Cid,z";
  bd_buf_t a = BD_BUF_INIT, b = BD_BUF_INIT, c = BD_BUF_INIT;
  CHECK_INT(parse_s(lf, &a, NULL, 0), BD_ROSTER_OK);
  CHECK_INT(parse_s(crlf, &b, NULL, 0), BD_ROSTER_OK);
  CHECK_INT(parse_s(cr, &c, NULL, 0), BD_ROSTER_OK);
  CHECK_STR(a.data,
            "1\ta@b.co\tAnn\t2025-03-14\t{\"Note\":\"x\\\\ny\"}\tpending\t\\N\n"
            "2\tc@d.co\tCid\t2025-03-14\t{\"Note\":\"z\"}\tpending\t\\N\n");
  CHECK_STR(a.data, b.data);
  CHECK_STR(a.data, c.data);
  bd_buf_free(&a);
  bd_buf_free(&b);
  bd_buf_free(&c);
}

static void test_copy_escaping(void) {
  /* Tabs, backslashes, newlines and CRs in plain text columns, and a
   * backslash sequence that must not turn into \N or an end marker. */
  const char *csv =
    "RecipientsEmail,RecipientsName\n"
    "a@b.co,\"A\tB\\C\nD\rE\"\n"
    "c@d.co,\\N\n"
    "e@f.co,\"\\.\"\n"
    "g@h.co,\"0123456789abcdef\\tail\tX\",Note\n"; /* specials after clean 8-byte blocks */
  bd_buf_t out = BD_BUF_INIT;
  CHECK_INT(parse_s(csv, &out, NULL, 0), BD_ROSTER_OK);
  CHECK_STR(out.data,
            "1\ta@b.co\tA\\tB\\\\C\\nD\\rE\t2025-03-14\t{}\tpending\t\\N\n"
            "2\tc@d.co\t\\\\N\t2025-03-14\t{}\tpending\t\\N\n"
            "3\te@f.co\t\\\\.\t2025-03-14\t{}\tpending\t\\N\n"
            "4\tg@h.co\t0123456789abcdef\\\\tail\\tX\t2025-03-14\t{}\tfailed\tRow has more columns than the header\n");
  bd_buf_free(&out);
}

static void test_custom_json(void) {
  /* Keys and values JSON-escaped (quotes, backslashes, control characters
   * as \uXXXX), then COPY-escaped; UTF-8 stays raw; order is the header's. */
  const char *csv =
    "Zeta,RecipientsEmail,\"Quote\"\"Key\",RecipientsName,Back\\slash,Ctl,Uni\n"
    "z,a@b.co,\"say \"\"hi\"\"\",Ann,C:\\dir,\"\x01\x1f\x7f\b\f\",\"é😀\u2028\"\n"
    "\"0123456789abcdef\"\"q\\\",c@d.co,\"0123456789abcdef\n\n\",Cid,,,\n"; /* specials after clean 8-byte blocks */
  bd_buf_t out = BD_BUF_INIT;
  CHECK_INT(parse_s(csv, &out, NULL, 0), BD_ROSTER_OK);
  CHECK_STR(out.data,
            "1\ta@b.co\tAnn\t2025-03-14\t"
            "{\"Zeta\":\"z\",\"Quote\\\\\"Key\":\"say \\\\\"hi\\\\\"\",\"Back\\\\\\\\slash\":\"C:\\\\\\\\dir\","
            "\"Ctl\":\"\\\\u0001\\\\u001f\x7f\\\\b\\\\f\",\"Uni\":\"é😀\u2028\"}\tpending\t\\N\n"
            "2\tc@d.co\tCid\t2025-03-14\t{\"Zeta\":\"0123456789abcdef\\\\\"q\\\\\\\\\",\"Quote\\\\\"Key\":\"0123456789abcdef\\\\n\\\\n\",\"Back\\\\\\\\slash\":\"\",\"Ctl\":\"\",\"Uni\":\"\"}\tpending\t\\N\n");
  bd_buf_free(&out);
}

static void test_blank_rows_skipped(void) {
  const char *csv = "\n\n  \n,,\nRecipientsEmail,RecipientsName\n\n,\n \t \na@b.co,Ann\n,,,\n\r\n";
  bd_buf_t out = BD_BUF_INIT;
  CHECK_INT(parse_s(csv, &out, NULL, 0), BD_ROSTER_OK);
  CHECK_STR(out.data, "1\ta@b.co\tAnn\t2025-03-14\t{}\tpending\t\\N\n");
  bd_buf_free(&out);
}

static void test_header_matching(void) {
  /* Reserved names: trimmed and case-insensitive; custom names trimmed, kept. */
  const char *csv = " recipientsemail ,\tRECIPIENTSNAME\t,issuedate,  My Column  \na@b.co,Ann,02-03-2025,v\n";
  bd_buf_t out = BD_BUF_INIT;
  CHECK_INT(parse_s(csv, &out, NULL, 0), BD_ROSTER_OK);
  CHECK_STR(out.data, "1\ta@b.co\tAnn\t2025-03-02\t{\"My Column\":\"v\"}\tpending\t\\N\n");
  bd_buf_free(&out);
}

static void test_field_count_mismatch(void) {
  const char *csv =
    "RecipientsEmail,RecipientsName,Extra\n"
    "a@b.co,Ann,x,y\n"  /* a non-empty field past the header */
    "b@b.co,Bea,x,,\n"  /* trailing empty fields are tolerated */
    "c@b.co\n"          /* short row: missing cells are empty */
    "d@b.co,Dan\n";
  bd_buf_t out = BD_BUF_INIT;
  CHECK_INT(parse_s(csv, &out, NULL, 0), BD_ROSTER_OK);
  CHECK_STR(out.data,
            "1\ta@b.co\tAnn\t2025-03-14\t{\"Extra\":\"x\"}\tfailed\tRow has more columns than the header\n"
            "2\tb@b.co\tBea\t2025-03-14\t{\"Extra\":\"x\"}\tpending\t\\N\n"
            "3\tc@b.co\t\t2025-03-14\t{\"Extra\":\"\"}\tfailed\tRecipient name is required\n"
            "4\td@b.co\tDan\t2025-03-14\t{\"Extra\":\"\"}\tpending\t\\N\n");
  bd_buf_free(&out);
}

/* ---- structural errors ------------------------------------------------ */

typedef struct {
  const char *csv;
  size_t len; /* 0 = strlen */
  int code;
  const char *msg;
} scase_t;

static void check_cases(const scase_t *cs, size_t n, const bd_roster_opts_t *o) {
  for (size_t i = 0; i < n; i++) {
    size_t len = cs[i].len ? cs[i].len : strlen(cs[i].csv);
    /* Whole, and byte by byte: the same verdict either way. */
    for (int bytewise = 0; bytewise <= 1; bytewise++) {
      bd_buf_t out = BD_BUF_INIT;
      char msg[256];
      int rc = parse_with(o, cs[i].csv, len, bytewise ? 1 : 0, 0, &out, msg, sizeof msg);
      if (rc != cs[i].code || (cs[i].msg && strcmp(msg, cs[i].msg) != 0))
        fprintf(stderr, "  case %zu (bytewise %d): %s\n", i, bytewise, msg);
      CHECK_INT(rc, cs[i].code);
      if (cs[i].msg) CHECK_STR(msg, cs[i].msg);
      bd_buf_free(&out);
    }
  }
}

static void test_structural(void) {
  static const scase_t cs[] = {
    {"", 0, BD_ROSTER_EEMPTY, "The csv file is empty."},
    {"\xEF\xBB\xBF", 0, BD_ROSTER_EEMPTY, NULL},
    {"\n\r\n,,\n", 0, BD_ROSTER_EEMPTY, NULL},
    {"RecipientsEmail,RecipientsName\n", 0, BD_ROSTER_ENO_ROWS, "The csv file has no data rows."},
    {"RecipientsEmail,RecipientsName", 0, BD_ROSTER_ENO_ROWS, NULL},
    {"RecipientsEmail,RecipientsName\r\n\r\n,\r\n", 0, BD_ROSTER_ENO_ROWS, NULL},
    {"Email,RecipientsName\na@b.co,A\n", 0, BD_ROSTER_EMISSING_HEADER,
     "The csv file is missing the required header RecipientsEmail."},
    {"RecipientsEmail,Name\na@b.co,A\n", 0, BD_ROSTER_EMISSING_HEADER,
     "The csv file is missing the required header RecipientsName."},
    {"a,b\n1,2\n", 0, BD_ROSTER_EMISSING_HEADER,
     "The csv file is missing the required headers RecipientsEmail and RecipientsName."},
    {"RecipientsEmail,RecipientsName,recipientsEmail\n", 0, BD_ROSTER_EDUP_HEADER,
     "The csv file has a duplicate header \"RecipientsEmail\"."},
    {"RecipientsEmail,RecipientsName,Course, Course\n", 0, BD_ROSTER_EDUP_HEADER,
     "The csv file has a duplicate header \"Course\"."},
    {"RecipientsEmail,RecipientsName,IssueDate,ISSUEDATE\n", 0, BD_ROSTER_EDUP_HEADER, NULL},
    {"RecipientsEmail,,RecipientsName\n", 0, BD_ROSTER_EEMPTY_HEADER, "The csv file has an empty header in column 2."},
    {"RecipientsEmail,RecipientsName,\"  \"\n", 0, BD_ROSTER_EEMPTY_HEADER, NULL},
    /* Quoting. */
    {"RecipientsEmail,RecipientsName\na@b.co,\"Ann\n", 0, BD_ROSTER_EQUOTE,
     "The csv file has an unterminated quoted field in data row 1."},
    {"RecipientsEmail,RecipientsName\na@b.co,Ann\nb@b.co,\"Bob,\n\nc@b.co,Cid\n", 0, BD_ROSTER_EQUOTE,
     "The csv file has an unterminated quoted field in data row 2."},
    /* A quote inside an unquoted field and text after a closing quote are
     * data, as Python's csv reads them (exact values: test_python_csv). */
    {"RecipientsEmail,RecipientsName\na@b.co,An\"n\n", 0, BD_ROSTER_OK, NULL},
    {"RecipientsEmail,RecipientsName\na@b.co,\"Ann\"x,y\n", 0, BD_ROSTER_OK, NULL},
    {"\"RecipientsEmail,RecipientsName\n", 0, BD_ROSTER_EQUOTE,
     "The csv file has an unterminated quoted field in the header row."},
    /* Encoding. */
    {"RecipientsEmail,RecipientsName\na@b.co,\xff\n", 0, BD_ROSTER_EUTF8,
     "The csv file is not valid UTF-8 (data row 1)."},
    {"RecipientsEmail,RecipientsName\xc3\na@b.co,A\n", 0, BD_ROSTER_EUTF8,
     "The csv file is not valid UTF-8 (the header row)."},
    {"RecipientsEmail,RecipientsName\na@b.co,\xc3\n", 0, BD_ROSTER_EUTF8, NULL},         /* truncated */
    {"RecipientsEmail,RecipientsName\na@b.co,\xc0\xaf\n", 0, BD_ROSTER_EUTF8, NULL},     /* overlong */
    {"RecipientsEmail,RecipientsName\na@b.co,\xe0\x80\xaf\n", 0, BD_ROSTER_EUTF8, NULL}, /* overlong */
    {"RecipientsEmail,RecipientsName\na@b.co,\xed\xa0\x80\n", 0, BD_ROSTER_EUTF8, NULL}, /* surrogate */
    {"RecipientsEmail,RecipientsName\na@b.co,\xf4\x90\x80\x80\n", 0, BD_ROSTER_EUTF8, NULL}, /* > U+10FFFF */
    {"RecipientsEmail,RecipientsName\na@b.co,\x80\n", 0, BD_ROSTER_EUTF8, NULL},         /* lone continuation */
    {"RecipientsEmail,RecipientsName\na@b.co,\"ok\xe2\x82\"\n", 0, BD_ROSTER_EUTF8, NULL},
    {"RecipientsEmail,RecipientsName\na@b.co,abcdefghij\xe2\x82xyz\n", 0, BD_ROSTER_EUTF8, NULL},
    {"RecipientsEmail,RecipientsName\na@b.co,A\0B\n", 42, BD_ROSTER_EUTF8,
     "The csv file contains a NUL byte in data row 1."},
    {"RecipientsEmail,RecipientsName\na@b.co,ABCDEFGHIJKLMNOP\0\n", 56, BD_ROSTER_EUTF8, NULL},
    {"\xff\xfeR\0e\0", 6, BD_ROSTER_EUTF8, NULL}, /* UTF-16 */
  };
  bd_roster_opts_t o = opts();
  check_cases(cs, BD_ARRAY_LEN(cs), &o);
}

static void test_valid_utf8_split_everywhere(void) {
  /* 2-, 3- and 4-byte sequences and a BOM, fed byte by byte (covered by
   * check_cases' bytewise pass and test_chunking_is_invisible). */
  const char *csv = "\xEF\xBB\xBFRecipientsEmail,RecipientsName,Città\na@b.co,Ünïcödé ℃ 𝄞,€\n";
  bd_buf_t a = BD_BUF_INIT, b = BD_BUF_INIT;
  bd_roster_opts_t o = opts();
  CHECK_INT(parse_with(&o, csv, strlen(csv), 1, 0, &a, NULL, 0), BD_ROSTER_OK);
  CHECK_INT(parse_with(&o, csv, strlen(csv), 0, 0, &b, NULL, 0), BD_ROSTER_OK);
  CHECK_STR(a.data, "1\ta@b.co\tÜnïcödé ℃ 𝄞\t2025-03-14\t{\"Città\":\"€\"}\tpending\t\\N\n");
  CHECK_STR(a.data, b.data);
  bd_buf_free(&a);
  bd_buf_free(&b);
  /* A BOM only counts at the very start; a BOM-like prefix is data. */
  bd_buf_t c = BD_BUF_INIT;
  char msg[256];
  CHECK_INT(parse_s("\xEF\xBBRecipientsEmail,RecipientsName\na@b.co,A\n", &c, msg, sizeof msg), BD_ROSTER_EUTF8);
  bd_buf_free(&c);
}

static void test_limits(void) {
  bd_roster_opts_t o = opts();
  o.max_rows = 3;
  static const scase_t rows[] = {
    {"RecipientsEmail,RecipientsName\na@b.co,A\nb@b.co,B\n\nc@b.co,C\n", 0, BD_ROSTER_OK, NULL},
    {"RecipientsEmail,RecipientsName\na@b.co,A\nb@b.co,B\nc@b.co,C\nd@b.co,D\n", 0, BD_ROSTER_ETOO_MANY_ROWS,
     "The csv file has more than 3 data rows."},
    {"RecipientsEmail,RecipientsName\na@b.co,A\nb@b.co,B\nc@b.co,C\nd@b.co,D", 0, BD_ROSTER_ETOO_MANY_ROWS, NULL},
  };
  check_cases(rows, BD_ARRAY_LEN(rows), &o);

  /* max_rows + 1 is caught while feeding, before the end of the upload. */
  bd_buf_t out = BD_BUF_INIT;
  bd_roster_t *r = bd_roster_new(&o, &out);
  const char *four = "RecipientsEmail,RecipientsName\na@b.co,A\nb@b.co,B\nc@b.co,C\nd@b.co,D\n";
  CHECK_INT(bd_roster_feed(r, four, strlen(four)), BD_ROSTER_ETOO_MANY_ROWS);
  size_t len = out.len;
  CHECK_INT(bd_roster_feed(r, "e@b.co,E\n", 9), BD_ROSTER_ETOO_MANY_ROWS); /* sticky */
  CHECK_INT(out.len, len);
  CHECK_INT(bd_roster_finish(r), BD_ROSTER_ETOO_MANY_ROWS);
  bd_roster_free(r);
  bd_buf_free(&out);

  /* A 70 KiB field against the 64 KiB default; 60 KiB passes. */
  o = opts();
  for (int quoted = 0; quoted <= 1; quoted++) {
    for (int kib = 60; kib <= 70; kib += 10) {
      bd_buf_t csv = BD_BUF_INIT, res = BD_BUF_INIT;
      bd_buf_puts(&csv, "RecipientsEmail,RecipientsName,Bio\na@b.co,A,");
      if (quoted) bd_buf_putc(&csv, '"');
      for (int i = 0; i < kib * 1024; i++) bd_buf_putc(&csv, 'x');
      if (quoted) bd_buf_putc(&csv, '"');
      bd_buf_puts(&csv, "\n");
      char msg[256];
      int rc = parse_with(&o, csv.data, csv.len, 4096, 0, &res, msg, sizeof msg);
      CHECK_INT(rc, kib == 70 ? BD_ROSTER_EFIELD_TOO_BIG : BD_ROSTER_OK);
      if (kib == 70) CHECK_STR(msg, "The csv file has a field longer than 65536 bytes in data row 1.");
      bd_buf_reset(&res);
      /* The same field as the last thing in the upload (no newline, and
       * fed in one piece). */
      rc = parse_with(&o, csv.data, csv.len - 1, 0, 0, &res, NULL, 0);
      CHECK_INT(rc, kib == 70 ? BD_ROSTER_EFIELD_TOO_BIG : BD_ROSTER_OK);
      bd_buf_free(&csv);
      bd_buf_free(&res);
    }
  }
  /* An unterminated quote is caught by the field limit long before EOF. */
  bd_buf_t csv = BD_BUF_INIT, res = BD_BUF_INIT;
  bd_buf_puts(&csv, "RecipientsEmail,RecipientsName\na@b.co,\"");
  for (int i = 0; i < 200000; i++) bd_buf_puts(&csv, "x,y\n");
  CHECK_INT(parse_with(&o, csv.data, csv.len, 65536, 0, &res, NULL, 0), BD_ROSTER_EFIELD_TOO_BIG);
  bd_buf_free(&csv);
  bd_buf_free(&res);

  /* The verdict must not depend on chunking (check_cases feeds whole and
   * byte by byte): spaces are data and count against the limit, and a
   * field already over the limit wins over an encoding error later in it. */
  o.max_field = 16;
  static const scase_t det[] = {
    {"RecipientsEmail,RecipientsName,Bio\na@b.co,A,1234567890123456\n", 0, BD_ROSTER_OK, NULL},
    {"RecipientsEmail,RecipientsName,Bio\na@b.co,A,\"1234567890123456\"\n", 0, BD_ROSTER_OK, NULL},
    {"RecipientsEmail,RecipientsName,Bio\na@b.co,A,1234567890123456 \n", 0, BD_ROSTER_EFIELD_TOO_BIG, NULL},
    {"RecipientsEmail,RecipientsName,Bio\na@b.co,A,\"1234567890123456\" \n", 0, BD_ROSTER_EFIELD_TOO_BIG, NULL},
    {"RecipientsEmail,RecipientsName,Bio\na@b.co,A,12345678901234567x\"y\n", 0, BD_ROSTER_EFIELD_TOO_BIG,
     "The csv file has a field longer than 16 bytes in data row 1."},
    {"RecipientsEmail,RecipientsName,Bio\na@b.co,A,1234567890123456   \xff\n", 0, BD_ROSTER_EFIELD_TOO_BIG, NULL},
  };
  check_cases(det, BD_ARRAY_LEN(det), &o);
  o = opts();

  /* Column and row-size limits. */
  o.max_columns = 4;
  o.max_row_bytes = 32;
  static const scase_t cols[] = {
    {"RecipientsEmail,RecipientsName,a,b\na@b.co,A,1,2\n", 0, BD_ROSTER_OK, NULL},
    {"RecipientsEmail,RecipientsName,a,b,c\n", 0, BD_ROSTER_ETOO_MANY_COLUMNS, "The csv file has more than 4 columns."},
    {"RecipientsEmail,RecipientsName,a,b\na@b.co,A,0123456789,0123456789012345\n", 0, BD_ROSTER_EROW_TOO_BIG,
     "The csv file has a row longer than 32 bytes in data row 1."},
  };
  check_cases(cols, BD_ARRAY_LEN(cols), &o);
}

/* ---- row validation --------------------------------------------------- */

/* Appends s as a quoted CSV field. */
static void put_quoted(bd_buf_t *b, const char *s) {
  bd_buf_putc(b, '"');
  for (; *s; s++) {
    if (*s == '"') bd_buf_putc(b, '"');
    bd_buf_putc(b, *s);
  }
  bd_buf_putc(b, '"');
}

static const char *row_status(const char *email, const char *name, const char *date, char *line, size_t n) {
  bd_buf_t csv = BD_BUF_INIT, out = BD_BUF_INIT;
  bd_buf_puts(&csv, "RecipientsEmail,RecipientsName,IssueDate\n");
  put_quoted(&csv, email);
  bd_buf_putc(&csv, ',');
  put_quoted(&csv, name);
  bd_buf_putc(&csv, ',');
  put_quoted(&csv, date);
  bd_buf_putc(&csv, '\n');
  int rc = parse_s(csv.data, &out, NULL, 0);
  snprintf(line, n, "%s", rc == BD_ROSTER_OK ? out.data : "ERROR");
  bd_buf_free(&csv);
  bd_buf_free(&out);
  return line;
}

static void test_emails(void) {
  const char *good[] = {"a@b.co", "first.last+tag@sub.example.com", "o'neil@example.ie", "user@xn--bcher-kva.example",
                        "jöhn@exämple.de", "  padded@example.com  ", "x_y-z@a-b.c-d.museum", "1@2.io"};
  const char *bad[] = {"", "plain", "a@b", "a@b.c", "a@@b.co", "a b@c.co", "a@b .co", ".a@b.co", "a.@b.co",
                       "a..b@c.co", "a@-b.co", "a@b-.co", "a@b..co", "a@b.123", "@b.co", "a@", "a@.co",
                       "a\"b@c.co", "a@b.co.", "a,b@c.co", "a@b_c.co", "<a@b.co>"};
  char line[512];
  for (size_t i = 0; i < BD_ARRAY_LEN(good); i++) {
    row_status(good[i], "N", "01-01-2025", line, sizeof line);
    if (!strstr(line, "\tpending\t")) fprintf(stderr, "  good email rejected: %s\n", good[i]);
    CHECK(strstr(line, "\tpending\t") != NULL);
  }
  for (size_t i = 0; i < BD_ARRAY_LEN(bad); i++) {
    row_status(bad[i], "N", "01-01-2025", line, sizeof line);
    if (!strstr(line, "\tfailed\tInvalid email address\n")) fprintf(stderr, "  bad email accepted: %s\n", bad[i]);
    CHECK(strstr(line, "\tfailed\tInvalid email address\n") != NULL);
  }
  /* Length limits: 64-byte local part, 254 bytes in all. */
  char e[300];
  memset(e, 'a', 64), strcpy(e + 64, "@b.co");
  CHECK(strstr(row_status(e, "N", "", line, sizeof line), "\tpending\t") != NULL);
  memset(e, 'a', 65), strcpy(e + 65, "@b.co");
  CHECK(strstr(row_status(e, "N", "", line, sizeof line), "\tfailed\t") != NULL);
  /* "a@" + 4 labels of 61 + 4 dots + "com" = 253 bytes */
  strcpy(e, "a@");
  for (int i = 0; i < 4; i++) {
    size_t l = strlen(e);
    memset(e + l, 'd', 61);
    strcpy(e + l + 61, ".");
  }
  strcat(e, "com");
  CHECK_INT(strlen(e), 253);
  CHECK(strstr(row_status(e, "N", "", line, sizeof line), "\tpending\t") != NULL);
  memmove(e + 1, e, strlen(e) + 1), e[0] = 'b';
  CHECK(strstr(row_status(e, "N", "", line, sizeof line), "\tpending\t") != NULL); /* 254 */
  memmove(e + 1, e, strlen(e) + 1), e[0] = 'c';
  CHECK(strstr(row_status(e, "N", "", line, sizeof line), "\tfailed\t") != NULL); /* 255 */
}

/* ---- read as Python's csv reads it ------------------------------------- */

/* One data row with a custom column Note; the COPY line for it. */
static void check_note(const char *row, const char *want_note_json) {
  bd_buf_t csv = BD_BUF_INIT, out = BD_BUF_INIT;
  bd_buf_puts(&csv, "RecipientsEmail,RecipientsName,Note\n");
  bd_buf_puts(&csv, row);
  CHECK_INT(parse_s(csv.data, &out, NULL, 0), BD_ROSTER_OK);
  char want[512];
  snprintf(want, sizeof want, "1\ta@b.co\tAnn\t2025-03-14\t{\"Note\":\"%s\"}\tpending\t\\N\n", want_note_json);
  CHECK_STR(out.data ? out.data : "", want);
  bd_buf_free(&csv);
  bd_buf_free(&out);
}

static void test_python_csv(void) {
  /* Each expectation is what csv.reader(newline='') gives for the cell. */
  check_note("a@b.co,Ann,37°36'37.8\"N\n", "37°36'37.8\\\\\"N");       /* csv-spectrum location_coordinates */
  check_note("a@b.co,Ann,  two spaces  \n", "  two spaces  ");            /* spaces are data */
  check_note("a@b.co,Ann, \"quoted\" \n", " \\\\\"quoted\\\\\" ");        /* quoted only if '"' comes first */
  check_note("a@b.co,Ann,\"ab\"cd\n", "abcd");                            /* text after a closing quote */
  check_note("a@b.co,Ann,\"ab\" \n", "ab ");
  check_note("a@b.co,Ann,\"a\"\"b\"\"\"\n", "a\\\\\"b\\\\\"");           /* "" is one quote */
  check_note("a@b.co,Ann,\"x\"y\"z\"\n", "xy\\\\\"z\\\\\"");              /* after the close, quotes are data */
  check_note("a@b.co,Ann,\"l1\r\nl2\"\r\n", "l1\\\\r\\\\nl2");            /* CRLF inside quotes kept */
  check_note("a@b.co,Ann,\"\"\n", "");
  check_note("a@b.co,Ann,a\"\"b\n", "a\\\\\"\\\\\"b");                   /* unquoted "" stays two quotes */
  check_note("a@b.co,Ann,last\r", "last");                                /* a lone CR ends a record */
}

static void test_names_and_dates(void) {
  char line[512];
  /* The name is kept as written; a blank one is still missing. */
  CHECK_STR(row_status("a@b.co", "   ", "", line, sizeof line),
            "1\ta@b.co\t   \t2025-03-14\t{}\tfailed\tRecipient name is required\n");
  CHECK_STR(row_status("a@b.co", "\t Ann \t", "29-02-2024", line, sizeof line),
            "1\ta@b.co\t\\t Ann \\t\t2024-02-29\t{}\tpending\t\\N\n");
  CHECK_STR(row_status(" a@b.co\t", "Ann", "", line, sizeof line), /* the e-mail alone is trimmed */
            "1\ta@b.co\tAnn\t2025-03-14\t{}\tpending\t\\N\n");
  CHECK_STR(row_status("a@b.co", "Ann", " 1-2-2025 ", line, sizeof line),
            "1\ta@b.co\tAnn\t2025-02-01\t{}\tpending\t\\N\n");
  CHECK_STR(row_status("a@b.co", "Ann", "31-12-9999", line, sizeof line),
            "1\ta@b.co\tAnn\t9999-12-31\t{}\tpending\t\\N\n");
  CHECK_STR(row_status("a@b.co", "Ann", "29-02-2000", line, sizeof line),
            "1\ta@b.co\tAnn\t2000-02-29\t{}\tpending\t\\N\n");
  const char *bad[] = {"29-02-2023", "29-02-1900", "31-04-2025", "2025-02-15", "15/02/2025", "00-01-2025",
                       "15-13-2025", "15-00-2025", "15-02-25",   "15-02-02025", "x",         "15-02-2025x",
                       "115-02-2025", "15--02-2025", "15-02-0999", "+1-02-2025", "15 02 2025"};
  for (size_t i = 0; i < BD_ARRAY_LEN(bad); i++) {
    row_status("a@b.co", "Ann", bad[i], line, sizeof line);
    if (strcmp(line, "1\ta@b.co\tAnn\t\\N\t{}\tfailed\tInvalid IssueDate, expected DD-MM-YYYY\n") != 0)
      fprintf(stderr, "  date %s: %s", bad[i], line);
    CHECK_STR(line, "1\ta@b.co\tAnn\t\\N\t{}\tfailed\tInvalid IssueDate, expected DD-MM-YYYY\n");
  }
  /* All reasons at once, in a fixed order. */
  bd_buf_t out = BD_BUF_INIT;
  CHECK_INT(parse_s("RecipientsEmail,RecipientsName,IssueDate\nnope,,99-99-2025,extra\n", &out, NULL, 0),
            BD_ROSTER_OK);
  CHECK_STR(out.data,
            "1\tnope\t\t\\N\t{}\tfailed\tRow has more columns than the header; Invalid email address; "
            "Recipient name is required; Invalid IssueDate, expected DD-MM-YYYY\n");
  bd_buf_free(&out);
}

static void test_options(void) {
  bd_buf_t out = BD_BUF_INIT;
  bd_roster_opts_t o = opts();
  CHECK(bd_roster_new(NULL, &out) == NULL);
  o.today = NULL;
  CHECK(bd_roster_new(&o, &out) == NULL);
  const char *bad_today[] = {"2025-02-30", "14-03-2025", "2025-3-14", "", "2025-03-14T00:00:00"};
  for (size_t i = 0; i < BD_ARRAY_LEN(bad_today); i++) {
    o.today = bad_today[i];
    CHECK(bd_roster_new(&o, &out) == NULL);
  }
  o = opts();
  o.max_rows = 0;
  CHECK(bd_roster_new(&o, &out) == NULL);
  CHECK_STR(bd_roster_code_name(BD_ROSTER_EQUOTE), "malformed_quote");
  CHECK_STR(bd_roster_code_name(BD_ROSTER_ENO_ROWS), "no_rows");
  CHECK_STR(bd_roster_code_name(99), "unknown");
  /* No IssueDate column: today for every row, and the header says so. */
  o = opts();
  bd_roster_t *r = bd_roster_new(&o, &out);
  CHECK_INT(bd_roster_feed(r, "RecipientsName,RecipientsEmail\nAnn,a@b.co\n", 42), BD_ROSTER_OK);
  CHECK(!bd_roster_has_issue_date(r));
  CHECK_INT(bd_roster_custom_count(r), 0);
  CHECK_INT(bd_roster_finish(r), BD_ROSTER_OK);
  CHECK_STR(out.data, "1\ta@b.co\tAnn\t2025-03-14\t{}\tpending\t\\N\n");
  bd_roster_free(r);
  bd_buf_free(&out);
}

/* ---- 1,000,000 rows ----------------------------------------------------- */

#define BIG_ROWS 1000000
#define HIGH_WATER (1u << 20) /* the simulated COPY drains above this */

typedef struct {
  bd_roster_t *roster;
  bd_buf_t *out;
  int roster_rc;
  bool in_csv; /* the current part is csv_file */
} sink_t;

static int sink_begin(void *ud, const bd_mp_part_t *part) {
  sink_t *s = ud;
  s->in_csv = bd_str_eq(part->name, "csv_file");
  return BD_MP_CB_OK;
}

static int sink_data(void *ud, const char *p, size_t n) {
  sink_t *s = ud;
  if (!s->in_csv) return BD_MP_CB_OK;
  s->roster_rc = bd_roster_feed(s->roster, p, n);
  if (s->roster_rc) return BD_MP_CB_ABORT;
  return bd_roster_pending(s->roster) > HIGH_WATER ? BD_MP_CB_PAUSE : BD_MP_CB_OK;
}

static size_t heap_in_use(void) {
#ifdef __GLIBC__
  struct mallinfo2 mi = mallinfo2();
  return mi.uordblks + mi.hblkhd;
#else
  return 0;
#endif
}

static void test_million_rows(void) {
  /* The body: a multipart upload of a generated ~75 MB roster. */
  bd_buf_t body = BD_BUF_INIT;
  bd_buf_reserve(&body, 80u << 20);
  bd_buf_puts(&body,
              "--BoUnDaRy\r\nContent-Disposition: form-data; name=\"name\"\r\n\r\nBig\r\n"
              "--BoUnDaRy\r\nContent-Disposition: form-data; name=\"csv_file\"; filename=\"big.csv\"\r\n"
              "Content-Type: text/csv\r\n\r\n"
              "RecipientsEmail,RecipientsName,IssueDate,Course\r\n");
  size_t csv_start = body.len - strlen("RecipientsEmail,RecipientsName,IssueDate,Course\r\n");
  for (int i = 1; i <= BIG_ROWS; i++) {
    if (i % 1000 == 0) bd_buf_printf(&body, "user%07d@example,Student %07d,15-02-2025,\"Physics, Part\tII\"\r\n", i, i);
    else bd_buf_printf(&body, "user%07d@example.com,Student Name %07d,15-02-2025,Advanced Physics 101\r\n", i, i);
  }
  size_t csv_len = body.len - csv_start;
  bd_buf_puts(&body, "\r\n--BoUnDaRy--\r\n");

  /* Roster alone, 64 KiB feeds, output drained after every feed. */
  bd_roster_opts_t o = opts();
  bd_buf_t out = BD_BUF_INIT;
  size_t heap0 = heap_in_use();
  bd_roster_t *r = bd_roster_new(&o, &out);
  size_t max_out = 0, copy_bytes = 0;
  uint64_t t0 = bd_now_ns();
  for (size_t off = 0; off < csv_len; off += 65536) {
    size_t n = BD_MIN((size_t)65536, csv_len - off);
    if (bd_roster_feed(r, body.data + csv_start + off, n) != BD_ROSTER_OK) break;
    max_out = BD_MAX(max_out, out.len);
    copy_bytes += out.len;
    bd_buf_reset(&out);
  }
  size_t heap_peak = heap_in_use() - heap0;
  CHECK_INT(bd_roster_finish(r), BD_ROSTER_OK);
  copy_bytes += out.len;
  uint64_t t1 = bd_now_ns();
  CHECK_INT(bd_roster_rows(r), BIG_ROWS);
  CHECK_INT(bd_roster_failed(r), BIG_ROWS / 1000);
  double s = (double)(t1 - t0) / 1e9;
  printf("roster: %d rows, %.1f MB csv -> %.1f MB COPY in %.3f s: %.0f rows/s, %.0f MB/s; max buffered %zu B, "
         "heap %zu B\n",
         BIG_ROWS, csv_len / 1e6, copy_bytes / 1e6, s, BIG_ROWS / s, csv_len / 1e6 / s, max_out, heap_peak);
  /* 64 KiB of CSV never turns into more than a few hundred KiB of COPY,
   * and the roster's own heap stays flat (one row). */
  CHECK(max_out < 256 * 1024);
  CHECK(out.cap <= 512 * 1024);
  if (heap0) CHECK(heap_peak < 2u << 20);
  bd_roster_free(r);
  bd_buf_free(&out);

  /* Multipart + roster with backpressure: on_part_data pauses above
   * HIGH_WATER; the driver "sends" the buffer to COPY and re-feeds the tail. */
  bd_buf_t out2 = BD_BUF_INIT;
  sink_t sink = {bd_roster_new(&o, &out2), &out2, 0, false};
  bd_mp_callbacks_t cb = {sink_begin, sink_data, NULL, NULL};
  bd_mp_t *mp;
  CHECK_INT(bd_mp_new(bd_str_c("multipart/form-data; boundary=BoUnDaRy"), NULL, &cb, &sink, &mp), BD_MP_OK);
  size_t max_out2 = 0, pauses = 0, copied = 0;
  int st = BD_MP_OK;
  t0 = bd_now_ns();
  for (size_t off = 0; off < body.len && st >= 0;) {
    size_t n = BD_MIN((size_t)65536, body.len - off);
    size_t used = bd_mp_feed(mp, body.data + off, n, &st);
    off += used;
    max_out2 = BD_MAX(max_out2, out2.len);
    if (st == BD_MP_PAUSED) pauses++;
    if (st == BD_MP_PAUSED) copied += out2.len, bd_buf_reset(&out2); /* "sent to COPY" */
  }
  CHECK(st == BD_MP_DONE);
  CHECK_INT(bd_mp_finish(mp), BD_MP_OK);
  CHECK_INT(bd_roster_finish(sink.roster), BD_ROSTER_OK);
  copied += out2.len;
  t1 = bd_now_ns();
  s = (double)(t1 - t0) / 1e9;
  CHECK_INT(bd_roster_rows(sink.roster), BIG_ROWS);
  CHECK_INT(copied, copy_bytes);
  printf("multipart+roster: %.1f MB body in %.3f s: %.0f MB/s, %.0f rows/s; %zu pauses, max buffered %zu B\n",
         body.len / 1e6, s, body.len / 1e6 / s, BIG_ROWS / s, pauses, max_out2);
  CHECK(max_out2 <= HIGH_WATER + 256 * 1024);
  bd_mp_free(mp);
  bd_roster_free(sink.roster);
  bd_buf_free(&out2);
  bd_buf_free(&body);
}

int main(void) {
  RUN(test_exact_copy);
  RUN(test_chunking_is_invisible);
  RUN(test_crlf_lf_cr_equivalent);
  RUN(test_copy_escaping);
  RUN(test_custom_json);
  RUN(test_blank_rows_skipped);
  RUN(test_header_matching);
  RUN(test_field_count_mismatch);
  RUN(test_structural);
  RUN(test_valid_utf8_split_everywhere);
  RUN(test_limits);
  RUN(test_emails);
  RUN(test_names_and_dates);
  RUN(test_python_csv);
  RUN(test_options);
  RUN(test_million_rows);
  UNIT_DONE();
}

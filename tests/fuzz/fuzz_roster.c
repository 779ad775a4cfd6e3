/* fuzz_roster: the streaming CSV roster validator (src/lib/roster.h).
 *
 * The input is fed whole and then in pieces of a size taken from its first
 * byte: the verdict, the message and the COPY output must not depend on the
 * chunking (the header promises so). Every emitted COPY line must have the
 * seven columns of BD_ROSTER_COPY_COLUMNS, and custom_data must be a JSON
 * object (checked with jansson on the unescaped text).
 */
#include "buf.h"
#include "roster.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int run(const char *p, size_t n, size_t step, bd_buf_t *out, bd_buf_t *msg) {
  bd_roster_opts_t o;
  bd_roster_opts_default(&o);
  o.today = "2026-12-01";
  o.max_rows = 50;
  o.max_field = 64;
  o.max_columns = 8;
  o.max_row_bytes = 256;
  bd_roster_t *r = bd_roster_new(&o, out);
  if (!r) abort();
  int rc = BD_ROSTER_OK;
  for (size_t off = 0; off < n && rc == BD_ROSTER_OK; off += step) {
    size_t len = n - off < step ? n - off : step;
    rc = bd_roster_feed(r, p + off, len);
  }
  if (rc == BD_ROSTER_OK) rc = bd_roster_finish(r);
  const char *m = bd_roster_message(r);
  bd_buf_append(msg, m, strlen(m));
  (void)bd_roster_code_name(rc);
  if (rc == BD_ROSTER_OK) {
    if (bd_roster_failed(r) > bd_roster_rows(r)) abort();
    for (size_t i = 0; i < bd_roster_custom_count(r); i++) (void)bd_roster_custom_name(r, i);
  }
  bd_roster_free(r);
  return rc;
}

/* COPY text unescaping of one field (\\, \t, \n, \r, \N). */
static void unescape(const char *p, size_t n, bd_buf_t *o) {
  for (size_t i = 0; i < n; i++) {
    char c = p[i];
    if (c == '\\' && i + 1 < n) {
      char e = p[++i];
      c = e == 't' ? '\t' : e == 'n' ? '\n' : e == 'r' ? '\r' : e;
    }
    bd_buf_append(o, &c, 1);
  }
}

static void check_copy(const bd_buf_t *out) {
  const char *p = out->data ? out->data : "";
  size_t n = out->len;
  while (n) {
    const char *nl = memchr(p, '\n', n);
    if (!nl) abort(); /* every line is complete */
    size_t len = (size_t)(nl - p);
    int tabs = 0;
    const char *col[7];
    size_t cl[7];
    col[0] = p;
    for (size_t i = 0; i < len; i++)
      if (p[i] == '\t') {
        if (++tabs > 6) abort();
        cl[tabs - 1] = (size_t)(p + i - col[tabs - 1]);
        col[tabs] = p + i + 1;
      }
    if (tabs != 6) abort();
    cl[6] = (size_t)(nl - col[6]);
    bd_buf_t js = BD_BUF_INIT;
    unescape(col[4], cl[4], &js);
    json_error_t err;
    json_t *j = json_loadb(js.data ? js.data : "", js.len, 0, &err);
    if (!json_is_object(j)) {
      fprintf(stderr, "custom_data is not a JSON object: %.*s\n", (int)js.len, js.data);
      abort();
    }
    json_decref(j);
    bd_buf_free(&js);
    n -= len + 1;
    p = nl + 1;
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > 1 << 16) return 0;
  const char *p = (const char *)data;
  size_t step = size ? (size_t)data[0] % 13 + 1 : 1;
  bd_buf_t o1 = BD_BUF_INIT, o2 = BD_BUF_INIT, m1 = BD_BUF_INIT, m2 = BD_BUF_INIT;
  int r1 = run(p, size, size ? size : 1, &o1, &m1);
  int r2 = run(p, size, step, &o2, &m2);
  if (r1 != r2 || m1.len != m2.len || (m1.len && memcmp(m1.data, m2.data, m1.len))) {
    fprintf(stderr, "verdict depends on chunking: %d vs %d (step %zu)\n", r1, r2, step);
    abort();
  }
  if (r1 == BD_ROSTER_OK) {
    if (o1.len != o2.len || (o1.len && memcmp(o1.data, o2.data, o1.len))) {
      fprintf(stderr, "COPY output depends on chunking (step %zu)\n", step);
      abort();
    }
    check_copy(&o1);
  }
  bd_buf_free(&o1);
  bd_buf_free(&o2);
  bd_buf_free(&m1);
  bd_buf_free(&m2);
  return 0;
}

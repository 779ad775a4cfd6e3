/* fuzz_multipart: the streaming multipart/form-data parser (src/lib/multipart.h).
 *
 * Input: a Content-Type line (up to the first '\n'), then the body. The
 * body is fed twice, whole and in pieces of a size taken from the input
 * with a callback that pauses now and then (the tail is re-fed); both runs
 * must reach the same verdict, the same parts and the same part bytes,
 * whatever the chunking. Field names of the parts go through
 * bd_mp_parse_field_name too.
 */
#include "buf.h"
#include "multipart.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
  bd_buf_t log;  /* begin/data/end events, data bytes concatenated per part */
  unsigned tick; /* pause decision counter */
  bool pausing;  /* this run pauses */
} run_t;

static int on_begin(void *ud, const bd_mp_part_t *part) {
  run_t *r = ud;
  bd_buf_append(&r->log, "B", 1);
  bd_buf_append(&r->log, part->name.p, part->name.len);
  bd_buf_append(&r->log, "|", 1);
  if (part->filename.p) bd_buf_append(&r->log, part->filename.p, part->filename.len);
  bd_buf_append(&r->log, "|", 1);
  bd_mp_field_name_t fn;
  if (bd_mp_parse_field_name(part->name, &fn)) {
    if (fn.base.len > part->name.len || (fn.key.len && fn.key.p < part->name.p)) abort();
  }
  return BD_MP_CB_OK;
}

static int on_data(void *ud, const char *p, size_t n) {
  run_t *r = ud;
  if (n == 0) abort(); /* the contract says n > 0 */
  bd_buf_append(&r->log, p, n);
  if (r->pausing && (++r->tick % 3) == 0) return BD_MP_CB_PAUSE;
  return BD_MP_CB_OK;
}

static int on_end(void *ud) {
  run_t *r = ud;
  bd_buf_append(&r->log, "E", 1);
  return BD_MP_CB_OK;
}

static int run(bd_str_t ctype, const char *body, size_t n, size_t step, bool pausing,
               bd_buf_t *log) {
  bd_mp_callbacks_t cb = {on_begin, on_data, on_end, NULL};
  bd_mp_limits_t lim;
  bd_mp_limits_default(&lim);
  lim.max_header_bytes = 256;
  lim.max_parts = 16;
  run_t r = {BD_BUF_INIT, 0, pausing};
  bd_mp_t *mp = NULL;
  int rc = bd_mp_new(ctype, &lim, &cb, &r, &mp);
  if (rc != BD_MP_OK) {
    if (mp) abort();
    *log = r.log;
    return rc;
  }
  int st = BD_MP_OK;
  size_t off = 0;
  int guard = 0;
  while (off < n && st >= 0 && st != BD_MP_DONE) {
    size_t len = n - off < step ? n - off : step;
    size_t used = bd_mp_feed(mp, body + off, len, &st);
    if (used > len) abort();
    if (st == BD_MP_OK && used != len) abort();
    off += used;
    if (st == BD_MP_PAUSED) st = BD_MP_OK; /* resume: re-feed the tail */
    if (used == 0 && st == BD_MP_OK && ++guard > 1000000) abort();
  }
  int fin = bd_mp_finish(mp);
  if (st < 0 && fin != st) abort(); /* errors are sticky */
  (void)bd_mp_strerror(fin);
  bd_mp_free(mp);
  *log = r.log;
  return st < 0 ? st : fin;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > 1 << 16) return 0;
  const char *p = (const char *)data;
  const char *nl = memchr(p, '\n', size);
  if (!nl) return 0;
  bd_str_t ctype = {p, (size_t)(nl - p)};
  const char *body = nl + 1;
  size_t n = size - (size_t)(nl + 1 - p);
  size_t step = n ? (size_t)(unsigned char)body[0] % 17 + 1 : 1;

  bd_buf_t a = BD_BUF_INIT, b = BD_BUF_INIT;
  int ra = run(ctype, body, n, n ? n : 1, false, &a);
  int rb = run(ctype, body, n, step, true, &b);
  if (ra != rb || a.len != b.len || (a.len && memcmp(a.data, b.data, a.len) != 0)) {
    fprintf(stderr, "verdict depends on chunking: %d vs %d (step %zu)\n", ra, rb, step);
    abort();
  }
  bd_buf_free(&a);
  bd_buf_free(&b);
  return 0;
}

/* qr_batches.c: QR batches of the /v1 surface: POST /v1/batches (intake),
 * GET /v1/batches/{id}, GET /v1/batches, and the "qr.intake" job that
 * expands and renders a batch's codes.
 *
 * POST validates the envelope (400, nothing stored) and each item (an
 * invalid item becomes an item with `error`), decides every code's id and
 * short code, then one call to qr_accept_batch() stores the batch row, its
 * record (the codes as one row of arrays), its failed items and its job
 * atomically before the 202 (src/sql/022_qr_batch_records.sql). Right
 * after the 202 this process expands the record into the codes' rows
 * (qr_expand_batch, exactly once whoever calls it); until then reads are
 * answered from the record. The job expands it too if nobody has (a crash
 * after the 202), then renders the codes' default PNG on the work queue in
 * chunks and records each chunk with qr_record_renders(), which is
 * idempotent per code, so a batch whose process dies is finished exactly
 * once by whoever claims the job next. Loop thread only, except
 * render_work (pool threads).
 */
#include "qr_api.h"
#include "qr_guard.h"
#include "qr_usage.h"

#include "app.h"
#include "jobs.h"
#include "json.h"
#include "qr.h"
#include "util.h"
#include "work.h"

#include <stdio.h>
#include <stdlib.h>

#define RENDER_CHUNK 128          /* codes rendered per job step (also in S_PENDING) */
#define DEFAULT_PNG_SIZE 1024     /* the stored default rendering */

/* --- POST /v1/batches ------------------------------------------------------ */

#define SHORT_PREFIX_LEN 6 /* reserved per batch (qr_batches_short_prefix) */
#define SHORT_SUFFIX_LEN 6 /* random, distinct within the batch */
#define PREFIX_TRIES 4     /* prefixes drawn before a taken one is an error */

/* The record (src/sql/022_qr_batch_records.sql): batch row, the codes as
 * one row of arrays, failed items, job. The codes' rows come later. */
static bd_pg_stmt_t S_ACCEPT_BATCH = BD_PG_STMT(
    "SELECT qr_accept_batch($1::jsonb, $2::text[], $3::int4[], $4::text[], $5::text[], $6::text[],"
    " $7::jsonb[], $8::text[], $9::text[], $10::text[], $11::text[])::text");
static bd_pg_stmt_t S_EXPAND = BD_PG_STMT_BG("SELECT qr_expand_batch($1)");

/* Test hook: with BATCHD_TEST_HOOKS=1, BATCHD_TEST_QR_EXPAND_DELAY_MS=N
 * makes the accepting process leave expansion to the job, and the job wait
 * N ms before it expands (a crash between the 202 and the expansion). */
static uint32_t g_expand_delay_ms;

typedef struct {
  char batch_id[32]; /* the batch being accepted */
  int tries;         /* prefixes drawn */
  bool has_codes;    /* a record (and a job) is stored */
} accept_t;

static void create_batch_store(bd_req_t *req);

static void on_expanded_eagerly(void *ud, const bd_pg_result_t *r) {
  /* the job expands it anyway (qr_expand_batch is idempotent); tell the
   * claimers only now so that the job finds the codes there */
  (void)ud;
  (void)r;
  bd_jobs_notify("qr.intake");
}

static void on_batch_created(void *ud, const bd_pg_result_t *r) {
  bd_req_t *req = ud;
  qr_ctx_t *c = req->ctx;
  accept_t *a = c->extra;
  if (r->err == BD_PG_ESQL && !strcmp(r->sqlstate, "23505") && strstr(r->message, "qr_batches_short_prefix") &&
      a->tries < PREFIX_TRIES) {
    create_batch_store(req); /* another prefix, other ids */
    bd_req_release(req);
    return;
  }
  if (!qr_usage_refused(req, r)) qr_send_json_row(req, r, 202, "batch");
  if (!r->err && a->has_codes) {
    const char *p[] = {a->batch_id};
    if (g_expand_delay_ms || bd_pg_query(bd_app.pg, &S_EXPAND, 1, p, on_expanded_eagerly, NULL) != 0)
      bd_jobs_notify("qr.intake");
  }
  bd_req_release(req);
}

/* j as JSON text: what jansson's compact dump says, without its callback
 * per token (a target is a few strings: this is a fifth of the dump's
 * cost); reals, rare in a target, are left to jansson. */
static void json_write(bd_buf_t *out, const json_t *j) {
  switch (json_typeof(j)) {
  case JSON_OBJECT: {
    const char *k;
    json_t *v;
    bool first = true;
    bd_buf_putc(out, '{');
    json_object_foreach((json_t *)j, k, v) {
      if (!first) bd_buf_putc(out, ',');
      first = false;
      bd_json_escape(out, k, strlen(k));
      bd_buf_putc(out, ':');
      json_write(out, v);
    }
    bd_buf_putc(out, '}');
    break;
  }
  case JSON_ARRAY: {
    size_t i;
    json_t *v;
    bd_buf_putc(out, '[');
    json_array_foreach(j, i, v) {
      if (i) bd_buf_putc(out, ',');
      json_write(out, v);
    }
    bd_buf_putc(out, ']');
    break;
  }
  case JSON_STRING: bd_json_escape(out, json_string_value(j), json_string_length(j)); break;
  case JSON_INTEGER: {
    char d[24];
    json_int_t x = json_integer_value(j);
    uint64_t v = x < 0 ? 0 - (uint64_t)x : (uint64_t)x;
    size_t n = sizeof d;
    do d[--n] = (char)('0' + v % 10);
    while ((v /= 10) != 0);
    if (x < 0) d[--n] = '-';
    bd_buf_append(out, d + n, sizeof d - n);
    break;
  }
  case JSON_TRUE: bd_buf_append(out, "true", 4); break;
  case JSON_FALSE: bd_buf_append(out, "false", 5); break;
  case JSON_NULL: bd_buf_append(out, "null", 4); break;
  default: qr_json_append(out, j, JSON_COMPACT | JSON_ENCODE_ANY); break;
  }
}

/* The codes' columns, one binary array each (qr_accept_batch). */
enum { A_ID, A_IDX, A_KIND, A_TYPE, A_NAME, A_TARGET, A_PAYLOAD, A_SHORT, A_FOLDER, A_TAGS, A_N };

static void code_to_arrays(bd_pg_array_t *a, const qr_item_t *it, const char *payload, long idx,
                           bd_buf_t *scratch) {
  bd_pg_array_add_str(&a[A_ID], it->id);
  bd_pg_array_add_i32(&a[A_IDX], (int32_t)idx);
  bd_pg_array_add_str(&a[A_KIND], it->kind);
  bd_pg_array_add_str(&a[A_TYPE], it->type);
  bd_pg_array_add_str(&a[A_NAME], it->name);
  bd_buf_reset(scratch);
  if (it->target) json_write(scratch, it->target);
  else bd_buf_puts(scratch, "null");
  bd_pg_array_add(&a[A_TARGET], scratch->data, scratch->len);
  bd_pg_array_add_str(&a[A_PAYLOAD], payload);
  bd_pg_array_add_str(&a[A_SHORT], it->short_code[0] ? it->short_code : NULL);
  bd_pg_array_add_str(&a[A_FOLDER], it->folder_id);
  if (it->tags) {
    bd_buf_reset(scratch);
    qr_tags_literal(scratch, it->tags);
    bd_pg_array_add(&a[A_TAGS], scratch->data, scratch->len);
  } else {
    bd_pg_array_add(&a[A_TAGS], NULL, 0);
  }
}

/* Short-code suffixes already drawn in this batch: open addressing over the
 * six characters packed into an integer (0: empty). */
typedef struct {
  uint64_t *slots;
  size_t mask;
} suffix_set_t;

static bool suffix_add(suffix_set_t *s, const char *sfx) {
  uint64_t v = 0;
  for (int i = 0; i < SHORT_SUFFIX_LEN; i++) v = (v << 8) | (uint8_t)sfx[i];
  for (size_t i = (size_t)((v * 0x9E3779B97F4A7C15ull) >> 32) & s->mask;; i = (i + 1) & s->mask) {
    if (s->slots[i] == v) return false;
    if (!s->slots[i]) {
      s->slots[i] = v;
      return true;
    }
  }
}

/* The 20 characters after a batch code's kind prefix: the batch id's 16
 * random ones and the item's position in 4 base62 digits (022). */
static void batch_id_body(char out[21], const char *batch_rand, long idx) {
  static const char k_digits[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
  memcpy(out, batch_rand, 16);
  for (int i = 19; i >= 16; i--) {
    out[i] = k_digits[idx % 62];
    idx /= 62;
  }
  out[20] = '\0';
}

/* Validates items and stores the batch's record (design already resolved):
 * the batch's fields and failed items as a small JSON document, its codes
 * as one binary array per column. Ids and short codes are decided here:
 * every code has them from the 202 on. */
static void create_batch_store(bd_req_t *req) {
  qr_ctx_t *c = req->ctx;
  accept_t *a = c->extra;
  if (!a) a = c->extra = bd_req_calloc(req, sizeof *a);
  a->tries++;
  json_t *items = json_object_get(c->body, "items");
  size_t nitems = json_array_size(items);
  char *batch_id = a->batch_id;
  memcpy(batch_id, "batch_", 6);
  bd_rand_base62(batch_id + 6, 16);
  char prefix[SHORT_PREFIX_LEN + 1];
  bd_rand_base62(prefix, SHORT_PREFIX_LEN);
  bd_buf_t doc = BD_BUF_INIT, failed = BD_BUF_INIT, scratch = BD_BUF_INIT;
  bd_jw_t w;
  bd_jw_init(&w, &doc);
  bd_jw_obj(&w);
  bd_jw_kstr(&w, "id", batch_id);
  bd_jw_kint(&w, "workspace_id", c->ws);
  bd_jw_kstr(&w, "mode", c->live ? "live" : "test");
  json_t *design = bd_qr_design_to_json(c->design);
  char *design_text = json_dumps(design, JSON_COMPACT);
  json_decref(design);
  bd_jw_key(&w, "design");
  bd_jw_raw(&w, design_text);
  free(design_text);
  json_t *tpl = json_object_get(c->body, "template_id");
  if (json_is_string(tpl)) bd_jw_kstr(&w, "template_id", json_string_value(tpl));
  bd_jw_kint(&w, "total", (int64_t)nitems);
  static const uint32_t oids[A_N] = {BD_PG_OID_TEXT, BD_PG_OID_INT4, BD_PG_OID_TEXT, BD_PG_OID_TEXT,
                                     BD_PG_OID_TEXT, BD_PG_OID_JSONB, BD_PG_OID_TEXT, BD_PG_OID_TEXT,
                                     BD_PG_OID_TEXT, BD_PG_OID_TEXT};
  bd_pg_array_t arr[A_N];
  for (int k = 0; k < A_N; k++) bd_pg_array_init(&arr[k], oids[k]);
  /* the long ones, sized once (ids, targets, payloads) */
  bd_buf_reserve(&arr[A_ID].buf, nitems * 32);
  bd_buf_reserve(&arr[A_TARGET].buf, nitems * 128);
  bd_buf_reserve(&arr[A_PAYLOAD].buf, nitems * 64);
  suffix_set_t sfx = {NULL, 0};
  size_t cap = 16;
  while (cap < nitems * 2) cap <<= 1;
  sfx.slots = bd_calloc(cap, sizeof *sfx.slots);
  sfx.mask = cap - 1;
  size_t i, nfailed = 0, nvalid = 0, ndynamic = 0;
  json_t *it;
  bd_buf_t payload = BD_BUF_INIT;
  json_array_foreach(items, i, it) {
    char err[256] = "", body[21], short_code[SHORT_PREFIX_LEN + SHORT_SUFFIX_LEN + 1];
    batch_id_body(body, batch_id + 6, (long)i);
    memcpy(short_code, prefix, SHORT_PREFIX_LEN);
    do bd_rand_base62(short_code + SHORT_PREFIX_LEN, SHORT_SUFFIX_LEN);
    while (!suffix_add(&sfx, short_code + SHORT_PREFIX_LEN));
    const qr_item_ids_t ids = {body, short_code};
    qr_item_t item;
    if (qr_item_parse_ids(it, c->design, &ids, &item, &payload, err, sizeof err)) {
      code_to_arrays(arr, &item, payload.data, (long)i, &scratch);
      nvalid++;
      if (item.short_code[0]) ndynamic++;
    } else {
      /* only failed items are stored as items: valid ones are their codes */
      bd_buf_putc(&failed, nfailed++ ? ',' : '[');
      bd_jw_t f;
      bd_jw_init(&f, &failed);
      bd_jw_obj(&f);
      bd_jw_kint(&f, "idx", (int64_t)i);
      json_t *nm = json_is_object(it) ? json_object_get(it, "name") : NULL;
      if (json_is_string(nm)) bd_jw_kstr(&f, "name", json_string_value(nm));
      if (item.type) bd_jw_kstr(&f, "type", item.type);
      bd_jw_kstr(&f, "error", err);
      bd_jw_obj_end(&f);
    }
    bd_buf_reset(&payload);
  }
  free(sfx.slots);
  bd_buf_free(&payload);
  bd_buf_free(&scratch);
  a->has_codes = nvalid > 0;
  /* a prefix is reserved only by a batch with short codes */
  if (ndynamic) bd_jw_kstr(&w, "short_prefix", prefix);
  bd_jw_key(&w, "items");
  bd_jw_raw(&w, nfailed ? "" : "[]");
  if (nfailed) {
    bd_buf_append(&doc, failed.data, failed.len);
    bd_buf_putc(&doc, ']');
  }
  bd_buf_free(&failed);
  bd_jw_obj_end(&w);
  const char *p[1 + A_N] = {doc.data};
  int lens[1 + A_N] = {0}, fmts[1 + A_N] = {0};
  for (int k = 0; k < A_N; k++) {
    bd_pg_array_finish(&arr[k]);
    p[1 + k] = arr[k].buf.data;
    lens[1 + k] = (int)arr[k].buf.len;
    fmts[1 + k] = 1;
  }
  bd_req_hold(req);
  int rc = bd_pg_query_bin(bd_app.pg, &S_ACCEPT_BATCH, 1 + A_N, p, lens, fmts, on_batch_created, req);
  bd_buf_free(&doc);
  for (int k = 0; k < A_N; k++) bd_pg_array_free(&arr[k]);
  if (rc != 0) {
    bd_app_unavailable(req);
    bd_req_release(req);
  }
}

/* The design must scan with the batch's longest payload (qr_guard.h). */
static void create_batch_guarded(bd_req_t *req) {
  qr_ctx_t *c = req->ctx;
  qr_scan_guard(req, json_object_get(c->body, "items"), create_batch_store);
}

static void create_batch(bd_req_t *req) {
  qr_ctx_t *c = req->ctx;
  if (!qr_parse_body(req)) return;
  if (qr_logo_step(req, create_batch)) return;
  json_t *items = json_object_get(c->body, "items");
  if (!json_is_array(items) || json_array_size(items) == 0) {
    qr_error(req, 400, "invalid_request", "items must be a non-empty array", "items");
    return;
  }
  if ((long long)json_array_size(items) > bd_app.cfg.max_qr_items) {
    char msg[96];
    snprintf(msg, sizeof msg, "items may hold at most %lld entries", (long long)bd_app.cfg.max_qr_items);
    qr_error(req, 400, "invalid_request", msg, "items");
    return;
  }
  qr_with_design(req, create_batch_guarded);
}

/* --- GET /v1/batches/{id}, GET /v1/batches ---------------------------------- */

/* The hot read: plain rows (one per item, the batch repeated), JSON built
 * here. Building it in SQL (jsonb_build_object, jsonb_agg, to_char) costs
 * the database several times more CPU than the index scans themselves. */
static bd_pg_stmt_t S_GET_BATCH = BD_PG_STMT(
    "SELECT b.id, b.status, b.total_count, b.completed_count, b.error_count, b.created_at, b.completed_at,"
    " i.name, i.type, i.qr_code_id, i.error"
    " FROM qr_batches b LEFT JOIN LATERAL qr_batch_item_rows(b.id) i ON true"
    " WHERE b.id = $1 AND b.workspace_id = $2 AND b.mode = $3 ORDER BY i.idx");

static void on_get_batch(void *ud, const bd_pg_result_t *r) {
  bd_req_t *req = ud;
  if (r->err) {
    bd_app_db_error(req, r);
  } else if (PQntuples(r->res) == 0) {
    qr_error(req, 404, "not_found", "No such batch", NULL);
  } else {
    PGresult *res = r->res;
    char ts[32];
    bd_buf_t b = BD_BUF_INIT;
    bd_buf_reserve(&b, 256 + (size_t)PQntuples(res) * 96);
    bd_jw_t w;
    bd_jw_init(&w, &b);
    bd_jw_obj(&w);
    bd_jw_kstr(&w, "id", PQgetvalue(res, 0, 0));
    bd_jw_kstr(&w, "object", "batch");
    bd_jw_kraw(&w, "total_count", PQgetvalue(res, 0, 2));
    bd_jw_kraw(&w, "completed_count", PQgetvalue(res, 0, 3));
    bd_jw_kraw(&w, "error_count", PQgetvalue(res, 0, 4));
    bd_jw_kstr(&w, "status", PQgetvalue(res, 0, 1));
    bd_jw_key(&w, "items");
    bd_jw_arr(&w);
    for (int i = 0; i < PQntuples(res); i++) {
      if (PQgetisnull(res, i, 9) && PQgetisnull(res, i, 10) && PQgetisnull(res, i, 8)) continue; /* no items */
      bd_jw_obj(&w);
      bd_jw_kstr(&w, "name", bd_pg_val(res, i, 7));
      bd_jw_kstr(&w, "type", bd_pg_val(res, i, 8));
      bd_jw_kstr(&w, "qr_code_id", bd_pg_val(res, i, 9));
      bd_jw_kstr(&w, "error", bd_pg_val(res, i, 10));
      bd_jw_obj_end(&w);
    }
    bd_jw_arr_end(&w);
    bd_jw_kstr(&w, "created_at", bd_time_pg_to_iso(bd_pg_val(res, 0, 5), ts, false));
    bd_jw_kstr(&w, "completed_at", bd_time_pg_to_iso(bd_pg_val(res, 0, 6), ts, false));
    bd_jw_obj_end(&w);
    bd_resp_json(req, 200, &b);
  }
  bd_req_release(req);
}

static void get_batch(bd_req_t *req) {
  qr_ctx_t *c = req->ctx;
  qr_ws_params(c);
  const char *p[] = {bd_req_param(req, 0), c->ws_s, c->mode_s};
  bd_app_query(req, &S_GET_BATCH, 3, p, on_get_batch, req);
}

/* Keyset pagination over (created_at, id) descending. The cursor is the
 * last row's "created_at|id", base64url-encoded (opaque to clients). */
static bd_pg_stmt_t S_LIST_BATCHES = BD_PG_STMT(
    "WITH page AS (SELECT * FROM qr_batches WHERE workspace_id = $1 AND mode = $2"
    "  AND ($3::text IS NULL OR (created_at, id) < (split_part($3, '|', 1)::timestamptz, split_part($3, '|', 2)))"
    "  ORDER BY created_at DESC, id DESC LIMIT $4::int + 1),"
    " lim AS (SELECT * FROM page ORDER BY created_at DESC, id DESC LIMIT $4::int)"
    " SELECT jsonb_build_object('object', 'list',"
    "  'data', coalesce((SELECT jsonb_agg(qr_batch_json(l, false) ORDER BY l.created_at DESC, l.id DESC) FROM lim l), '[]'),"
    "  'has_more', (SELECT count(*) FROM page) > $4::int,"
    "  'next_cursor', CASE WHEN (SELECT count(*) FROM page) > $4::int THEN"
    "     (SELECT to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') || '|' || id"
    "      FROM lim ORDER BY created_at ASC, id ASC LIMIT 1) END)::text");

static void list_batches(bd_req_t *req) {
  qr_ctx_t *c = req->ctx;
  char limit[8];
  bool has_cursor;
  if (!qr_page_params(req, limit, &c->scratch, &has_cursor, QR_KEY_TIME)) return;
  qr_ws_params(c);
  const char *p[] = {c->ws_s, c->mode_s, has_cursor ? c->scratch.data : NULL, limit};
  bd_app_query(req, &S_LIST_BATCHES, 4, p, qr_on_list, req);
}

/* --- the batch job ----------------------------------------------------------- */

typedef struct render_s render_t;

typedef struct {
  bd_job_t *job;       /* the qr.batch job */
  int outstanding;     /* render groups of the current chunk not yet back */
  size_t nresults;     /* entries in results */
  bd_buf_t results;    /* JSON [{id, off, len, sha256} | {id, error}] of the current chunk */
  bd_buf_t pngs;       /* the chunk's PNGs back to back (off/len index it), sent as one binary bytea */
} batch_run_t;

/* Codes are rendered in groups: one work item renders RENDER_GROUP codes
 * one after the other, so the loop thread hands out and collects a chunk in
 * a few hops instead of one wake-up per code (each is a futex wake and an
 * async send), and the design, usually the same for the whole batch, is
 * parsed once per group on the worker. */
#define RENDER_GROUP 8

typedef struct {
  char id[40];   /* code id */
  char *payload; /* what to encode */
  char *design;  /* its design JSON text */
  bd_buf_t png;  /* output */
  char sha[65];  /* its SHA-256 */
  char err[256]; /* render error, "" if fine */
} render_item_t;

struct render_s {
  bd_work_t w;                            /* work item */
  batch_run_t *run;                       /* owner */
  int n;                                  /* codes in the group */
  render_item_t items[RENDER_GROUP];      /* the codes */
};

static bd_pg_stmt_t S_PENDING = BD_PG_STMT_BG(
    "SELECT id, payload, design::text FROM qr_codes WHERE batch_id = $1 AND render_status = 'pending'"
    " ORDER BY batch_idx LIMIT 128"); /* RENDER_CHUNK (SQL text: a literal) */
static bd_pg_stmt_t S_RECORD = BD_PG_STMT_BG("SELECT qr_record_renders($1, $2::jsonb, $3::bytea)");
static bd_pg_stmt_t S_FINISH_EMPTY = BD_PG_STMT(
    "UPDATE qr_batches SET status = CASE WHEN completed_count = 0 THEN 'failed' ELSE 'completed' END,"
    " completed_at = coalesce(completed_at, now()), updated_at = now()"
    " WHERE id = $1 AND status = 'processing'");

static void batch_step(batch_run_t *run);

static void run_free(batch_run_t *run) {
  bd_buf_free(&run->results);
  bd_buf_free(&run->pngs);
  free(run);
}

static void batch_end(batch_run_t *run, const char *error) {
  bd_job_t *job = run->job;
  run_free(run);
  if (error) bd_job_retry(job, error, 1000);
  else bd_job_done(job);
}

static void on_recorded(void *ud, const bd_pg_result_t *r) {
  batch_run_t *run = ud;
  bd_buf_reset(&run->results);
  bd_buf_reset(&run->pngs);
  run->nresults = 0;
  if (r->err) {
    batch_end(run, r->message);
    return;
  }
  if (bd_job_stopping(run->job)) {
    bd_job_t *job = run->job;
    run_free(run);
    bd_job_yield(job);
    return;
  }
  batch_step(run);
}

static void render_work(bd_work_t *w) {
  render_t *rd = w->data;
  bd_qr_design_t *design = NULL;
  const char *design_text = NULL;
  for (int i = 0; i < rd->n; i++) {
    render_item_t *it = &rd->items[i];
    if (!design || strcmp(design_text, it->design) != 0) {
      bd_qr_design_free(design);
      json_t *d = json_loads(it->design, 0, NULL);
      char err[256];
      const char *param;
      design = bd_qr_design_parse(d, err, sizeof err, &param);
      json_decref(d);
      /* stored designs were validated on the way in; be safe anyway */
      if (!design) design = bd_qr_design_parse(NULL, err, sizeof err, &param);
      design_text = it->design;
    }
    if (bd_qr_render(it->payload, design, BD_QR_PNG, DEFAULT_PNG_SIZE, &it->png, it->err, sizeof it->err) != 0) {
      if (!it->err[0]) snprintf(it->err, sizeof it->err, "rendering failed");
      continue;
    }
    /* hashing belongs here too: the loop thread only assembles */
    bd_sha256_hex(it->sha, it->png.data, it->png.len);
  }
  bd_qr_design_free(design);
}

static void render_after(bd_work_t *w, int status) {
  render_t *rd = w->data;
  batch_run_t *run = rd->run;
  for (int i = 0; i < rd->n; i++) {
    render_item_t *it = &rd->items[i];
    if (status == 0) {
      bd_buf_putc(&run->results, run->nresults++ ? ',' : '[');
      bd_jw_t jw;
      bd_jw_init(&jw, &run->results);
      bd_jw_obj(&jw);
      bd_jw_kstr(&jw, "id", it->id);
      if (it->err[0]) {
        bd_jw_kstr(&jw, "error", it->err);
      } else {
        bd_jw_kint(&jw, "off", (int64_t)run->pngs.len);
        bd_jw_kint(&jw, "len", (int64_t)it->png.len);
        bd_jw_kstr(&jw, "sha256", it->sha);
        bd_buf_append(&run->pngs, it->png.data, it->png.len);
      }
      bd_jw_obj_end(&jw);
    }
    free(it->payload);
    free(it->design);
    bd_buf_free(&it->png);
  }
  free(rd);
  if (--run->outstanding > 0) return;
  if (run->nresults == 0) {
    /* cancelled (shutdown): give the job back */
    bd_job_t *job = run->job;
    run_free(run);
    bd_job_yield(job);
    return;
  }
  bd_buf_putc(&run->results, ']');
  const char *p[] = {run->job->ref, run->results.data, run->pngs.data ? run->pngs.data : ""};
  const int lens[] = {0, 0, (int)run->pngs.len}, fmts[] = {0, 0, 1};
  if (bd_pg_query_bin(bd_app.pg, &S_RECORD, 3, p, lens, fmts, on_recorded, run) != 0)
    batch_end(run, "database queue full");
}

static void on_finished_empty(void *ud, const bd_pg_result_t *r) {
  batch_run_t *run = ud;
  batch_end(run, r->err ? r->message : NULL);
}

static void on_pending(void *ud, const bd_pg_result_t *r) {
  batch_run_t *run = ud;
  if (r->err) {
    batch_end(run, r->message);
    return;
  }
  int n = PQntuples(r->res);
  if (n == 0) {
    /* every code has been rendered (by us or a previous owner) */
    const char *p[] = {run->job->ref};
    if (bd_pg_query(bd_app.pg, &S_FINISH_EMPTY, 1, p, on_finished_empty, run) != 0)
      batch_end(run, "database queue full");
    return;
  }
  bd_buf_reset(&run->results);
  bd_buf_reset(&run->pngs);
  run->nresults = 0;
  run->outstanding = (n + RENDER_GROUP - 1) / RENDER_GROUP;
  for (int i = 0; i < n; i += RENDER_GROUP) {
    render_t *rd = bd_calloc(1, sizeof *rd);
    rd->run = run;
    rd->n = BD_MIN(RENDER_GROUP, n - i);
    for (int k = 0; k < rd->n; k++) {
      render_item_t *it = &rd->items[k];
      snprintf(it->id, sizeof it->id, "%s", PQgetvalue(r->res, i + k, 0));
      it->payload = bd_strdup(PQgetvalue(r->res, i + k, 1));
      it->design = bd_strdup(PQgetvalue(r->res, i + k, 2));
    }
    rd->w.work = render_work;
    rd->w.after = render_after;
    rd->w.data = rd;
    rd->w.background = true;
    bd_work_submit(&rd->w);
  }
}

static void batch_step(batch_run_t *run) {
  const char *p[] = {run->job->ref};
  if (bd_pg_query(bd_app.pg, &S_PENDING, 1, p, on_pending, run) != 0) batch_end(run, "database queue full");
}

/* The job's first step: the batch's record becomes its codes (nothing to
 * do when the accepting process, or an earlier owner, expanded it). */
static void on_job_expanded(void *ud, const bd_pg_result_t *r) {
  batch_run_t *run = ud;
  if (r->err) batch_end(run, r->message);
  else batch_step(run);
}

static void expand_step(batch_run_t *run) {
  const char *p[] = {run->job->ref};
  if (bd_pg_query(bd_app.pg, &S_EXPAND, 1, p, on_job_expanded, run) != 0) batch_end(run, "database queue full");
}

/* The test hook's wait (g_expand_delay_ms), checked for shutdown every 50 ms. */
typedef struct {
  uv_timer_t t;
  batch_run_t *run;
  uint64_t until_ms;
} expand_wait_t;

static void on_expand_wait_closed(uv_handle_t *h) { free(h->data); }

static void on_expand_wait(uv_timer_t *t) {
  expand_wait_t *ew = t->data;
  batch_run_t *run = ew->run;
  bool stop = bd_job_stopping(run->job);
  if (!stop && bd_now_ms() < ew->until_ms) return;
  uv_close((uv_handle_t *)t, on_expand_wait_closed);
  if (stop) {
    bd_job_t *job = run->job;
    run_free(run);
    bd_job_yield(job);
  } else {
    expand_step(run);
  }
}

static void run_batch_job(bd_job_t *job) {
  batch_run_t *run = bd_calloc(1, sizeof *run);
  run->job = job;
  if (!g_expand_delay_ms) {
    expand_step(run);
    return;
  }
  expand_wait_t *ew = bd_calloc(1, sizeof *ew);
  ew->run = run;
  ew->until_ms = bd_now_ms() + g_expand_delay_ms;
  uv_timer_init(bd_app.loop, &ew->t);
  ew->t.data = ew;
  uv_timer_start(&ew->t, on_expand_wait, 50, 50);
}

/* --- entry points ------------------------------------------------------------ */

void qr_h_create_batch(bd_req_t *req) { qr_entry_scope(req, QR_SCOPE_WRITE, create_batch); }
void qr_h_get_batch(bd_req_t *req) { qr_entry_scope(req, QR_SCOPE_READ, get_batch); }
void qr_h_list_batches(bd_req_t *req) { qr_entry_scope(req, QR_SCOPE_READ, list_batches); }

void qr_batches_init(void) {
  /* a job alternates between rendering a chunk and recording it: four at
   * once keep the render threads fed while others wait for the database */
  bd_jobs_register("qr.intake", run_batch_job, 4);
  /* batches accepted by a version before records (022): their codes exist */
  bd_jobs_register("qr.batch", run_batch_job, 1);
  const char *hooks = getenv("BATCHD_TEST_HOOKS"), *delay = getenv("BATCHD_TEST_QR_EXPAND_DELAY_MS");
  if (hooks && !strcmp(hooks, "1") && delay) g_expand_delay_ms = (uint32_t)strtoul(delay, NULL, 10);
}

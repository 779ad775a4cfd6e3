/* qr_api.c: the /v1 surface (QRKit-compatible): keys, batches, codes.
 *
 * Request path of an authenticated call:
 *   qr_entry → Bearer token → key cache (or one indexed query) → secret
 *   checked in constant time → live/test mode and scope → rate limit →
 *   Idempotency-Key (POST) → handler.
 * Responses are built by SQL functions (qr_code_json, qr_batch_json) so a
 * read is one round trip whose text is sent as it is.
 *
 * Batches: POST validates the envelope (400, nothing stored) and each item
 * (an invalid item becomes an item with `error`), then one call to
 * qr_intake_batch() stores batch, codes, items and the job atomically before
 * the 202. The "qr.batch" job renders the codes' default PNG on the work
 * queue in chunks and records each chunk with qr_record_renders(), which is
 * idempotent per code, so a batch whose process dies is finished exactly
 * once by whoever claims the job next.
 */
#include "app.h"
#include "auth.h"
#include "fetch.h"
#include "idem.h"
#include "jobs.h"
#include "json.h"
#include "log.h"
#include "qr.h"
#include "qr_api.h"
#include "surfaces.h"
#include "util.h"
#include "work.h"

#include <stdio.h>
#include <stdlib.h>
#include <strings.h>

#define SCOPE_READ 0x1u
#define SCOPE_WRITE 0x2u
#define SCOPE_ANALYTICS 0x4u

#define KEY_CACHE_SIZE 4096       /* direct-mapped entries */
#define KEY_CACHE_TTL_MS 30000    /* a revoked key stops working within this */
#define RENDER_CHUNK 128          /* codes rendered per job step (also in S_PENDING) */
#define DEFAULT_PNG_SIZE 1024     /* the stored default rendering */

/* --- request context ----------------------------------------------------- */

void qr_ctx_free(bd_req_t *req) {
  qr_ctx_t *c = req->ctx;
  if (!c) return;
  json_decref(c->body);
  if (c->design) bd_qr_design_free(c->design);
  bd_buf_free(&c->scratch);
  free(c);
  req->ctx = NULL;
}

/* --- key cache ------------------------------------------------------------- */

typedef struct {
  char id[16];                  /* key id ("" = empty slot) */
  char hash[65];                /* SHA-256 of the secret, hex */
  int64_t ws;                   /* workspace */
  bool live;                    /* mode */
  uint32_t scopes;              /* SCOPE_* */
  uint64_t expires_ms;          /* monotonic expiry */
} keyent_t;

static keyent_t g_keys[KEY_CACHE_SIZE];

static keyent_t *key_slot(bd_str_t id) {
  uint32_t h = 2166136261u;
  for (size_t i = 0; i < id.len; i++) h = (h ^ (uint8_t)id.p[i]) * 16777619u;
  return &g_keys[h % KEY_CACHE_SIZE];
}

static uint32_t parse_scopes(const char *arr) {
  /* PostgreSQL text[] output: {qr:read,qr:write} */
  uint32_t s = 0;
  if (strstr(arr, "qr:read")) s |= SCOPE_READ;
  if (strstr(arr, "qr:write")) s |= SCOPE_WRITE;
  if (strstr(arr, "analytics:read")) s |= SCOPE_ANALYTICS;
  return s;
}

static const char *scope_name(uint32_t s) {
  return s == SCOPE_WRITE ? "qr:write" : s == SCOPE_ANALYTICS ? "analytics:read" : "qr:read";
}

void qr_error(bd_req_t *req, int status, const char *code, const char *message, const char *param) {
  bd_resp_error(req, status, code, message, param);
}

static void unauthenticated(bd_req_t *req) {
  bd_resp_header(req, "WWW-Authenticate", "Bearer");
  qr_error(req, 401, "unauthenticated", "Missing or invalid API key", NULL);
}

static void authorized(bd_req_t *req) {
  qr_ctx_t *c = req->ctx;
  if ((c->scopes & c->need) != c->need) {
    char msg[128];
    snprintf(msg, sizeof msg, "This API key lacks the %s scope", scope_name(c->need));
    qr_error(req, 403, "insufficient_scope", msg, NULL);
    return;
  }
  snprintf(req->cred_buf, sizeof req->cred_buf, "qr:%s", c->key_id);
  req->cred_id = req->cred_buf;
  if (!bd_app_rate_limit(req, req->cred_id)) return;
  bd_idem_wrap(req, req->cred_id, c->next);
}

static bd_pg_stmt_t S_KEY = BD_PG_STMT(
    "SELECT workspace_id, mode, scopes, secret_hash FROM qr_api_keys WHERE id = $1 AND revoked_at IS NULL");

static void on_key(void *ud, const bd_pg_result_t *r) {
  bd_req_t *req = ud;
  qr_ctx_t *c = req->ctx;
  if (r->err) {
    bd_app_db_error(req, r);
  } else if (PQntuples(r->res) != 1 || !bd_token_check(bd_str_c(c->secret), PQgetvalue(r->res, 0, 3)) ||
             (strcmp(PQgetvalue(r->res, 0, 1), "live") == 0) != c->live) {
    unauthenticated(req);
  } else {
    keyent_t *e = key_slot(bd_str_c(c->key_id));
    snprintf(e->id, sizeof e->id, "%s", c->key_id);
    snprintf(e->hash, sizeof e->hash, "%s", PQgetvalue(r->res, 0, 3));
    e->ws = strtoll(PQgetvalue(r->res, 0, 0), NULL, 10);
    e->live = c->live;
    e->scopes = parse_scopes(PQgetvalue(r->res, 0, 2));
    e->expires_ms = bd_now_ms() + KEY_CACHE_TTL_MS;
    c->ws = e->ws;
    c->scopes = e->scopes;
    authorized(req);
  }
  bd_req_release(req);
}

/* Entry point of every authenticated /v1 handler. */
static void qr_entry(bd_req_t *req, uint32_t need, bd_handler_fn next) {
  qr_ctx_t *c = bd_calloc(1, sizeof *c);
  req->ctx = c;
  req->on_free = qr_ctx_free;
  c->need = need;
  c->next = next;
  bd_str_t cred, id, secret;
  if (!bd_bearer(bd_req_header(req, "Authorization"), &cred)) {
    unauthenticated(req);
    return;
  }
  if (bd_token_parse(cred, "qr_live_", &id, &secret)) c->live = true;
  else if (bd_token_parse(cred, "qr_test_", &id, &secret)) c->live = false;
  else {
    unauthenticated(req);
    return;
  }
  memcpy(c->key_id, id.p, id.len);
  c->key_id[id.len] = '\0';
  memcpy(c->secret, secret.p, secret.len);
  c->secret[secret.len] = '\0';
  keyent_t *e = key_slot(id);
  if (e->id[0] && bd_str_eq(id, e->id) && e->expires_ms > bd_now_ms()) {
    if (!bd_token_check(secret, e->hash) || e->live != c->live) {
      unauthenticated(req);
      return;
    }
    c->ws = e->ws;
    c->scopes = e->scopes;
    authorized(req);
    return;
  }
  const char *p[] = {c->key_id};
  bd_req_hold(req);
  if (bd_pg_query(bd_app.pg, &S_KEY, 1, p, on_key, req) != 0) {
    bd_app_unavailable(req);
    bd_req_release(req);
  }
}

/* Parses the JSON body: nesting limit, syntax, must be an object.
 * Idempotent: a handler re-entered after an asynchronous step keeps it. */
bool qr_parse_body(bd_req_t *req) {
  qr_ctx_t *c = req->ctx;
  if (c->body) return true;
  const char *b = req->body.data ? req->body.data : "";
  int depth = bd_json_depth(b, req->body.len);
  if (depth > bd_app.cfg.max_json_depth) {
    char msg[96];
    snprintf(msg, sizeof msg, "JSON nesting deeper than %lld levels", (long long)bd_app.cfg.max_json_depth);
    qr_error(req, 400, "invalid_request", msg, NULL);
    return false;
  }
  json_error_t err;
  c->body = json_loadb(b, req->body.len, JSON_REJECT_DUPLICATES, &err);
  if (!c->body) {
    char msg[256];
    snprintf(msg, sizeof msg, "Request body is not valid JSON: %s (line %d, column %d)", err.text, err.line,
             err.column);
    qr_error(req, 400, "invalid_request", msg, NULL);
    return false;
  }
  if (!json_is_object(c->body)) {
    qr_error(req, 400, "invalid_request", "Request body must be a JSON object", NULL);
    return false;
  }
  return true;
}

/* Sends a query's single text column as the JSON body. */
void qr_send_json_row(bd_req_t *req, const bd_pg_result_t *r, int status, const char *what) {
  if (r->err) {
    bd_app_db_error(req, r);
  } else if (PQntuples(r->res) == 0 || PQgetisnull(r->res, 0, 0)) {
    char msg[160];
    snprintf(msg, sizeof msg, "No such %s", what);
    qr_error(req, 404, "not_found", msg, NULL);
  } else {
    bd_resp_send(req, status, "application/json; charset=utf-8", PQgetvalue(r->res, 0, 0),
                 (size_t)PQgetlength(r->res, 0, 0));
  }
}

static void on_json_row(void *ud, const bd_pg_result_t *r) {
  bd_req_t *req = ud;
  qr_ctx_t *c = req->ctx;
  qr_send_json_row(req, r, c->ok_status ? c->ok_status : 200, c->what);
  bd_req_release(req);
}

/* Runs a statement whose first column is the response body. */
void qr_query_json(bd_req_t *req, bd_pg_stmt_t *st, int n, const char *const *p, int ok_status, const char *what) {
  qr_ctx_t *c = req->ctx;
  c->ok_status = ok_status;
  c->what = what;
  bd_req_hold(req);
  if (bd_pg_query(bd_app.pg, st, n, p, on_json_row, req) != 0) {
    bd_app_unavailable(req);
    bd_req_release(req);
  }
}

void qr_ws_params(qr_ctx_t *c) {
  snprintf(c->ws_s, sizeof c->ws_s, "%lld", (long long)c->ws);
  snprintf(c->mode_s, sizeof c->mode_s, "%s", c->live ? "live" : "test");
}

/* --- remote logos ------------------------------------------------------------ */

#define LOGO_MAX_BYTES (1024 * 1024)

typedef struct {
  bd_req_t *req;        /* held request */
  json_t *logo;         /* design.logo of the request body (borrowed) */
  bd_handler_fn next;   /* the handler to re-enter */
  char *url;            /* the remote URL */
} logo_fetch_t;

static bool host_allowed(const char *host) {
  const char *list = bd_app.cfg.logo_allowlist;
  size_t hl = strlen(host);
  while (list && *list) {
    while (*list == ' ' || *list == ',') list++;
    const char *end = list;
    while (*end && *end != ',' && *end != ' ') end++;
    if ((size_t)(end - list) == hl && !strncasecmp(list, host, hl)) return true;
    list = end;
  }
  return false;
}

static void on_logo(void *ud, int err, const char *msg, bd_buf_t *body, const char *ctype) {
  logo_fetch_t *lf = ud;
  bd_req_t *req = lf->req;
  char text[400];
  const char *kind = NULL;
  if (!err) {
    if (!strncasecmp(ctype, "image/png", 9)) kind = "image/png";
    else if (!strncasecmp(ctype, "image/jpeg", 10) || !strncasecmp(ctype, "image/jpg", 9)) kind = "image/jpeg";
    else if (!strncasecmp(ctype, "image/svg+xml", 13)) kind = "image/svg+xml";
  }
  if (err || !kind) {
    snprintf(text, sizeof text, "design.logo.url could not be used: %s",
             err ? msg : "the response is not a PNG, JPEG or SVG image");
    qr_error(req, 400, "invalid_request", text, "design.logo.url");
  } else {
    bd_buf_t d = BD_BUF_INIT;
    bd_buf_printf(&d, "data:%s;base64,", kind);
    bd_b64_encode(&d, body->data ? body->data : "", body->len);
    json_object_set_new(lf->logo, "url", json_stringn(d.data, d.len));
    json_object_set_new(lf->logo, "source_url", json_string(lf->url));
    bd_buf_free(&d);
    lf->next(req); /* now with a data: URL */
  }
  free(lf->url);
  free(lf);
  bd_req_release(req);
}

/* When the design's logo is an http(s) URL, fetches it (host on the
 * allowlist, at most 1 MiB, within the configured time), replaces it with a
 * data: URL and re-enters `next`. Returns true when it took the request
 * over (it then answers errors itself). */
static bool qr_resolve_logo(bd_req_t *req, json_t *design, bd_handler_fn next) {
  json_t *logo = json_is_object(design) ? json_object_get(design, "logo") : NULL;
  const char *url = json_is_object(logo) ? json_string_value(json_object_get(logo, "url")) : NULL;
  if (!url || (strncasecmp(url, "http://", 7) && strncasecmp(url, "https://", 8))) return false;
  char host[256], text[400];
  if (!bd_fetch_url_host(url, host, sizeof host)) {
    qr_error(req, 400, "invalid_request", "design.logo.url is not a valid http(s) URL", "design.logo.url");
    return true;
  }
  if (!host_allowed(host)) {
    snprintf(text, sizeof text, "design.logo.url: host %s is not on the logo allowlist", host);
    qr_error(req, 400, "invalid_request", text, "design.logo.url");
    return true;
  }
  logo_fetch_t *lf = bd_calloc(1, sizeof *lf);
  lf->req = req;
  lf->logo = logo;
  lf->next = next;
  lf->url = bd_strdup(url);
  bd_req_hold(req);
  if (bd_fetch(url, LOGO_MAX_BYTES, (uint32_t)bd_app.cfg.logo_fetch_timeout_ms, on_logo, lf) != 0) {
    free(lf->url);
    free(lf);
    bd_req_release(req);
    qr_error(req, 500, "internal_error", "the logo could not be fetched", "design.logo.url");
  }
  return true;
}

bool qr_logo_step(bd_req_t *req, bd_handler_fn next) {
  qr_ctx_t *c = req->ctx;
  return qr_resolve_logo(req, json_object_get(c->body, "design"), next);
}

/* --- POST /v1/batches ------------------------------------------------------ */

static bd_pg_stmt_t S_CREATE_BATCH = BD_PG_STMT(
    "SELECT qr_intake_batch($1::jsonb, $2::text[], $3::int4[], $4::text[], $5::text[], $6::text[],"
    " $7::jsonb[], $8::text[], $9::text[], $10::text[], $11::text[])::text");

static void on_batch_created(void *ud, const bd_pg_result_t *r) {
  bd_req_t *req = ud;
  qr_send_json_row(req, r, 202, "batch");
  if (!r->err) bd_jobs_notify("qr.batch");
  bd_req_release(req);
}

/* The codes' columns, one binary array each (qr_intake_batch). */
enum { A_ID, A_IDX, A_KIND, A_TYPE, A_NAME, A_TARGET, A_PAYLOAD, A_SHORT, A_FOLDER, A_TAGS, A_N };

static void code_to_arrays(bd_pg_array_t *a, const qr_item_t *it, const char *payload, long idx,
                           bd_buf_t *scratch) {
  bd_pg_array_add_str(&a[A_ID], it->id);
  bd_pg_array_add_i32(&a[A_IDX], (int32_t)idx);
  bd_pg_array_add_str(&a[A_KIND], it->kind);
  bd_pg_array_add_str(&a[A_TYPE], it->type);
  bd_pg_array_add_str(&a[A_NAME], it->name);
  bd_buf_reset(scratch);
  if (it->target) qr_json_append(scratch, it->target, JSON_COMPACT | JSON_ENCODE_ANY);
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

/* Validates items and stores the batch (design already resolved): the
 * batch's fields and failed items as a small JSON document, its codes as
 * one binary array per column (see src/sql/010_qr_intake_arrays.sql). */
static void create_batch_store(bd_req_t *req) {
  qr_ctx_t *c = req->ctx;
  json_t *items = json_object_get(c->body, "items");
  size_t nitems = json_array_size(items);
  char batch_id[32] = "batch_";
  bd_rand_base62(batch_id + 6, 16);
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
  bd_pg_array_t a[A_N];
  for (int k = 0; k < A_N; k++) bd_pg_array_init(&a[k], oids[k]);
  /* the long ones, sized once (ids, targets, payloads) */
  bd_buf_reserve(&a[A_ID].buf, nitems * 32);
  bd_buf_reserve(&a[A_TARGET].buf, nitems * 128);
  bd_buf_reserve(&a[A_PAYLOAD].buf, nitems * 64);
  size_t i, nfailed = 0;
  json_t *it;
  bd_buf_t payload = BD_BUF_INIT;
  json_array_foreach(items, i, it) {
    char err[256] = "";
    qr_item_t item;
    if (qr_item_parse(it, c->design, &item, &payload, err, sizeof err)) {
      code_to_arrays(a, &item, payload.data, (long)i, &scratch);
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
  bd_buf_free(&payload);
  bd_buf_free(&scratch);
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
    bd_pg_array_finish(&a[k]);
    p[1 + k] = a[k].buf.data;
    lens[1 + k] = (int)a[k].buf.len;
    fmts[1 + k] = 1;
  }
  bd_req_hold(req);
  int rc = bd_pg_query_bin(bd_app.pg, &S_CREATE_BATCH, 1 + A_N, p, lens, fmts, on_batch_created, req);
  bd_buf_free(&doc);
  for (int k = 0; k < A_N; k++) bd_pg_array_free(&a[k]);
  if (rc != 0) {
    bd_app_unavailable(req);
    bd_req_release(req);
  }
}

/* --- design or template_id -------------------------------------------------------- */

static bd_pg_stmt_t S_TEMPLATE = BD_PG_STMT(
    "SELECT design::text FROM qr_templates WHERE id = $1 AND workspace_id = $2 AND mode = $3");

static void on_template(void *ud, const bd_pg_result_t *r) {
  bd_req_t *req = ud;
  qr_ctx_t *c = req->ctx;
  if (r->err) {
    bd_app_db_error(req, r);
  } else if (PQntuples(r->res) == 0) {
    qr_error(req, 400, "invalid_request", "Unknown template_id", "template_id");
  } else {
    json_t *d = json_loads(PQgetvalue(r->res, 0, 0), 0, NULL);
    char err[256];
    const char *param = NULL;
    if (c->design) bd_qr_design_free(c->design);
    c->design = d ? bd_qr_design_parse(d, err, sizeof err, &param) : NULL;
    json_decref(d);
    if (!c->design) qr_error(req, 400, "invalid_request", "The template's design is invalid", "template_id");
    else c->next_design(req);
  }
  bd_req_release(req);
}

void qr_with_design(bd_req_t *req, bd_handler_fn next) {
  qr_ctx_t *c = req->ctx;
  char err[256];
  const char *param = NULL;
  json_t *design = json_object_get(c->body, "design");
  if (design && !json_is_object(design) && !json_is_null(design)) {
    qr_error(req, 400, "invalid_request", "design must be an object", "design");
    return;
  }
  c->design = bd_qr_design_parse(json_is_object(design) ? design : NULL, err, sizeof err, &param);
  if (!c->design) {
    qr_error(req, 400, "invalid_request", err, param ? param : "design");
    return;
  }
  json_t *tpl = json_object_get(c->body, "template_id");
  if (!tpl || json_is_null(tpl)) {
    next(req);
    return;
  }
  if (!json_is_string(tpl)) {
    qr_error(req, 400, "invalid_request", "template_id must be a string", "template_id");
    return;
  }
  c->next_design = next;
  qr_ws_params(c);
  const char *p[] = {json_string_value(tpl), c->ws_s, c->mode_s};
  bd_req_hold(req);
  if (bd_pg_query(bd_app.pg, &S_TEMPLATE, 3, p, on_template, req) != 0) {
    bd_app_unavailable(req);
    bd_req_release(req);
  }
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
  qr_with_design(req, create_batch_store);
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
  bd_req_hold(req);
  if (bd_pg_query(bd_app.pg, &S_GET_BATCH, 3, p, on_get_batch, req) != 0) {
    bd_app_unavailable(req);
    bd_req_release(req);
  }
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

/* Sends a list page built by SQL, wrapping its raw next_cursor into
 * base64url (cursors are opaque to clients). */
void qr_on_list(void *ud, const bd_pg_result_t *r) {
  bd_req_t *req = ud;
  if (r->err) {
    bd_app_db_error(req, r);
    bd_req_release(req);
    return;
  }
  json_t *doc = json_loads(PQgetvalue(r->res, 0, 0), 0, NULL);
  json_t *nc = json_object_get(doc, "next_cursor");
  if (json_is_string(nc)) {
    bd_buf_t enc = BD_BUF_INIT;
    bd_b64url_encode(&enc, json_string_value(nc), json_string_length(nc));
    json_object_set_new(doc, "next_cursor", json_string(enc.data));
    bd_buf_free(&enc);
  }
  char *text = json_dumps(doc, JSON_COMPACT);
  bd_resp_send(req, 200, "application/json; charset=utf-8", text, strlen(text));
  free(text);
  json_decref(doc);
  bd_req_release(req);
}

/* Reads limit (1-100, default 25) and cursor; answers 400 itself. */
bool qr_page_params(bd_req_t *req, char limit[8], bd_buf_t *cursor, bool *has_cursor, int key_kind) {
  bd_buf_t v = BD_BUF_INIT;
  long lim = 25;
  if (bd_req_query(req, "limit", &v)) {
    int64_t n;
    if (!bd_parse_i64((bd_str_t){v.data ? v.data : "", v.len}, &n) || n < 1 || n > 100) {
      bd_buf_free(&v);
      qr_error(req, 400, "invalid_request", "limit must be an integer between 1 and 100", "limit");
      return false;
    }
    lim = (long)n;
  }
  bd_buf_free(&v);
  snprintf(limit, 8, "%ld", lim);
  *has_cursor = false;
  bd_buf_t raw = BD_BUF_INIT;
  if (bd_req_query(req, "cursor", &raw) && raw.len) {
    bool ok = bd_b64url_decode(cursor, raw.data, raw.len) && cursor->len < 200 && cursor->data &&
              strchr(cursor->data, '|') != NULL;
    /* the key before the last '|' must parse as the sort column's type:
     * PostgreSQL would otherwise answer a cast error (a 500) */
    if (ok && key_kind != QR_KEY_TEXT) {
      char key[64];
      size_t tl = (size_t)(strrchr(cursor->data, '|') - cursor->data);
      ok = tl < sizeof key;
      if (ok) {
        memcpy(key, cursor->data, tl);
        key[tl] = '\0';
        int64_t kv;
        ok = key_kind == QR_KEY_TIME ? bd_time_parse(key, &kv) : bd_parse_i64(bd_str_c(key), &kv);
      }
    }
    if (!ok) {
      bd_buf_free(&raw);
      qr_error(req, 400, "invalid_request", "cursor is not valid", "cursor");
      return false;
    }
    *has_cursor = true;
  }
  bd_buf_free(&raw);
  return true;
}

static void list_batches(bd_req_t *req) {
  qr_ctx_t *c = req->ctx;
  char limit[8];
  bool has_cursor;
  if (!qr_page_params(req, limit, &c->scratch, &has_cursor, QR_KEY_TIME)) return;
  qr_ws_params(c);
  const char *p[] = {c->ws_s, c->mode_s, has_cursor ? c->scratch.data : NULL, limit};
  bd_req_hold(req);
  if (bd_pg_query(bd_app.pg, &S_LIST_BATCHES, 4, p, qr_on_list, req) != 0) {
    bd_app_unavailable(req);
    bd_req_release(req);
  }
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

static void run_batch_job(bd_job_t *job) {
  batch_run_t *run = bd_calloc(1, sizeof *run);
  run->job = job;
  batch_step(run);
}

/* --- routes -------------------------------------------------------------------- */

static void h_create_batch(bd_req_t *req) { qr_entry(req, SCOPE_WRITE, create_batch); }
static void h_get_batch(bd_req_t *req) { qr_entry(req, SCOPE_READ, get_batch); }
static void h_list_batches(bd_req_t *req) { qr_entry(req, SCOPE_READ, list_batches); }

void qr_entry_scope(bd_req_t *req, unsigned scope, bd_handler_fn next) {
  qr_entry(req, scope == 2 ? SCOPE_WRITE : scope == 4 ? SCOPE_ANALYTICS : SCOPE_READ, next);
}

static void init(void) {
  /* a job alternates between rendering a chunk and recording it: four at
   * once keep the render threads fed while others wait for the database */
  bd_jobs_register("qr.batch", run_batch_job, 4);
  bd_fetch_init(bd_app.loop);
  qr_codes_init();
}

static const bd_route_t routes[] = {
  {"POST", "/v1/batches", h_create_batch, 0, "/v1/batches"},
  {"GET", "/v1/batches", h_list_batches, 0, "/v1/batches"},
  {"GET", "/v1/batches/{id}", h_get_batch, 0, "/v1/batches/{id}"},
  QR_CODE_ROUTES
};

const bd_surface_def_t bd_surface_qr = {"qr", routes, BD_ARRAY_LEN(routes), init, qr_codes_flush, qr_seed};

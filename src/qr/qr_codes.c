/* qr_codes.c: single codes (create, read, list, PATCH, DELETE), downloads,
 * analytics, templates, and the public redirect path with its cache and
 * scan buffer.
 *
 * Redirects (GET /s/{code}) are answered from an in-memory map of short
 * code → destination. A miss costs one indexed query, then the entry stays
 * until a change to the code is announced with NOTIFY qr_codes (every
 * process LISTENs, so the map stays right across processes). The map is
 * used only while the LISTEN is confirmed (bd_pg_listening): before it
 * took effect, and while the listening connection is down, every redirect
 * is looked up, and after a reconnect the whole map is dropped, since
 * notifications may have been missed. A lookup during which any
 * notification arrived is answered but not kept (its row may predate the
 * change announced). Scans are appended to a buffer that a timer flushes
 * in one statement per second (and at shutdown), so the redirect itself
 * never waits for the database. Loop thread only, except rj_work (pool
 * threads).
 */
#include "app.h"
#include "flusher.h"
#include "json.h"
#include "log.h"
#include "metrics.h"
#include "qr_api.h"
#include "qr_guard.h"
#include "qr_usage.h"
#include "util.h"
#include "work.h"

#include <stdio.h>
#include <stdlib.h>
#include <strings.h>

/* --- rendering on the work queue -------------------------------------------------- */

typedef struct {
  bd_work_t w;              /* work item */
  bd_req_t *req;            /* held request */
  char *payload;            /* what to encode */
  bd_qr_design_t *design;   /* owned */
  bd_qr_format_t fmt;       /* output format */
  int size;                 /* pixels */
  bd_buf_t out;             /* rendered bytes */
  char err[256];            /* failure */
  void (*done)(bd_req_t *req, bd_buf_t *out, const char *err); /* on the loop */
} qr_render_job_t;

static void rj_work(bd_work_t *w) {
  qr_render_job_t *j = w->data;
  if (bd_qr_render(j->payload, j->design, j->fmt, j->size, &j->out, j->err, sizeof j->err) != 0 && !j->err[0])
    snprintf(j->err, sizeof j->err, "rendering failed");
}

static void rj_after(bd_work_t *w, int status) {
  qr_render_job_t *j = w->data;
  if (status != 0) snprintf(j->err, sizeof j->err, "server shutting down");
  j->done(j->req, &j->out, j->err[0] ? j->err : NULL);
  bd_req_release(j->req);
  free(j->payload);
  bd_qr_design_free(j->design);
  bd_buf_free(&j->out);
  free(j);
}

static void render_async(bd_req_t *req, const char *payload, const json_t *design_json, bd_qr_format_t fmt,
                         int size, void (*done)(bd_req_t *, bd_buf_t *, const char *)) {
  qr_render_job_t *j = bd_calloc(1, sizeof *j);
  char err[256];
  const char *param;
  j->req = req;
  j->payload = bd_strdup(payload);
  j->design = bd_qr_design_parse(design_json, err, sizeof err, &param);
  if (!j->design) j->design = bd_qr_design_parse(NULL, err, sizeof err, &param);
  j->fmt = fmt;
  j->size = size;
  j->done = done;
  j->w.work = rj_work;
  j->w.after = rj_after;
  j->w.data = j;
  bd_req_hold(req);
  bd_work_submit(&j->w);
}

/* --- POST /v1/qr-codes ------------------------------------------------------------ */

static bd_pg_stmt_t S_CREATE_CODE = BD_PG_STMT(
    "WITH c AS (INSERT INTO qr_codes (id, workspace_id, mode, kind, type, name, target, payload, short_code,"
    "   design, folder_id, tags, render_status)"
    " SELECT x.id, $2::bigint, $3, x.kind, x.type, coalesce(x.name, ''), x.target, x.payload, x.short_code,"
    "   $4::jsonb, x.folder_id, coalesce(x.tags, '{}'), 'done'"
    " FROM jsonb_to_record($1::jsonb) AS x(id text, kind text, type text, name text, target jsonb, payload text,"
    "   short_code text, folder_id text, tags text[]) RETURNING *),"
    " i AS (INSERT INTO qr_images (code_id, png, sha256) SELECT c.id, decode($5, 'hex'), $6 FROM c)"
    " SELECT qr_code_json(c, $7)::text FROM c");

typedef struct {
  char *code_json;    /* the code row */
  char *design_json;  /* normalised design */
} create_state_t;

static void create_state_free(void *arg) {
  create_state_t *s = arg;
  free(s->code_json);
  free(s->design_json);
  free(s);
}

static void on_code_created(void *ud, const bd_pg_result_t *r) {
  bd_req_t *req = ud;
  if (!qr_usage_refused(req, r)) qr_send_json_row(req, r, 201, "code"); /* qr_usage.h */
  bd_req_release(req);
}

static void on_create_rendered(bd_req_t *req, bd_buf_t *png, const char *err) {
  qr_ctx_t *c = req->ctx;
  create_state_t *s = c->extra;
  if (err) {
    qr_error(req, 400, "invalid_request", err, "target");
    return;
  }
  char sha[65];
  bd_sha256_hex(sha, png->data, png->len);
  char *hex = bd_malloc(png->len * 2 + 1);
  bd_hex_encode(hex, png->data, png->len);
  qr_ws_params(c);
  const char *p[] = {s->code_json, c->ws_s, c->mode_s, s->design_json, hex, sha, bd_app.cfg.public_url};
  bd_app_query(req, &S_CREATE_CODE, 7, p, on_code_created, req);
  free(hex); /* the parameters were copied */
}

static void create_code_render(bd_req_t *req) {
  qr_ctx_t *c = req->ctx;
  bd_buf_t payload = BD_BUF_INIT;
  char err[256];
  qr_item_t item;
  if (!qr_item_parse(c->body, c->design, &item, &payload, err, sizeof err)) {
    qr_error(req, 400, "invalid_request", err, "target");
    bd_buf_free(&payload);
    return;
  }
  create_state_t *s = bd_calloc(1, sizeof *s);
  c->extra = s;
  bd_req_defer(req, create_state_free, s);
  json_t *row = qr_item_code_json(&item, payload.data);
  s->code_json = json_dumps(row, JSON_COMPACT);
  json_decref(row);
  json_t *dj = bd_qr_design_to_json(c->design);
  s->design_json = json_dumps(dj, JSON_COMPACT);
  render_async(req, payload.data, dj, BD_QR_PNG, 1024, on_create_rendered);
  json_decref(dj);
  bd_buf_free(&payload);
}

static void create_code_guarded(bd_req_t *req) {
  qr_ctx_t *c = req->ctx;
  qr_scan_guard(req, c->body, create_code_render); /* qr_guard.h */
}

static void create_code(bd_req_t *req) {
  if (!qr_parse_body(req)) return;
  if (qr_logo_step(req, create_code)) return;
  qr_with_design(req, create_code_guarded);
}

/* --- GET /v1/qr-codes/{id} ---------------------------------------------------------- */

/* the code, or a code of a batch record not yet expanded (022) */
static bd_pg_stmt_t S_GET_CODE = BD_PG_STMT("SELECT qr_code_get($1, $2::bigint, $3, $4)::text");

static void get_code(bd_req_t *req) {
  qr_ctx_t *c = req->ctx;
  qr_ws_params(c);
  const char *p[] = {bd_req_param(req, 0), c->ws_s, c->mode_s, bd_app.cfg.public_url};
  qr_query_json(req, &S_GET_CODE, 4, p, 200, "QR code");
}

/* --- GET /v1/qr-codes ----------------------------------------------------------------- */

/* One statement per sort column and direction: keyset pagination on
 * (sort value, id). The cursor carries the last row's sort value and id. */
static const char *k_sorts[] = {"created_at", "updated_at", "name", "scan_count"};
static bd_pg_stmt_t S_LIST_CODES[4][2];
static char *g_list_sql[4][2];

static void build_list_statements(void) {
  for (int s = 0; s < 4; s++)
    for (int o = 0; o < 2; o++) {
      const char *col = k_sorts[s];
      const char *dir = o ? "ASC" : "DESC";
      const char *cmp = o ? ">" : "<";
      const char *cast = s < 2 ? "timestamptz" : s == 2 ? "text" : "bigint";
      const char *keyexpr = s < 2 ? "to_char(%s AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')" : "%s::text";
      char key[200];
      snprintf(key, sizeof key, keyexpr, col);
      bd_buf_t b = BD_BUF_INIT;
      bd_buf_printf(&b,
                    "WITH page AS (SELECT * FROM qr_codes WHERE workspace_id = $1 AND mode = $2 AND deleted_at IS NULL"
                    " AND ($3::text = 'all' OR kind = $3) AND ($4::text IS NULL OR folder_id = $4)"
                    " AND ($5::text IS NULL OR (%s, id) %s (left($5, length($5) - strpos(reverse($5), '|'))::%s,"
                    "   right($5, strpos(reverse($5), '|') - 1)))"
                    " ORDER BY %s %s, id %s LIMIT $6::int + 1),"
                    " lim AS (SELECT * FROM page ORDER BY %s %s, id %s LIMIT $6::int)"
                    " SELECT jsonb_build_object('object', 'list',"
                    "  'data', coalesce((SELECT jsonb_agg(qr_code_json(l, $7) ORDER BY l.%s %s, l.id %s) FROM lim l), '[]'),"
                    "  'has_more', (SELECT count(*) FROM page) > $6::int,"
                    "  'next_cursor', CASE WHEN (SELECT count(*) FROM page) > $6::int THEN"
                    "    (SELECT %s || '|' || id FROM lim ORDER BY %s %s, id %s LIMIT 1) END)::text",
                    col, cmp, cast, col, dir, dir, col, dir, dir, col, dir, dir, key, col, o ? "DESC" : "ASC",
                    o ? "DESC" : "ASC");
      g_list_sql[s][o] = bd_buf_detach(&b, NULL);
      S_LIST_CODES[s][o] = (bd_pg_stmt_t)BD_PG_STMT(g_list_sql[s][o]);
    }
}

static void list_codes_rows(bd_req_t *req) {
  qr_ctx_t *c = req->ctx;
  bd_buf_t v = BD_BUF_INIT;
  const char *kind = "all";
  if (bd_req_query(req, "kind", &v)) {
    if (v.data && (!strcmp(v.data, "dynamic") || !strcmp(v.data, "static") || !strcmp(v.data, "all")))
      kind = !strcmp(v.data, "dynamic") ? "dynamic" : !strcmp(v.data, "static") ? "static" : "all";
    else {
      bd_buf_free(&v);
      qr_error(req, 400, "invalid_request", "kind must be dynamic, static or all", "kind");
      return;
    }
  }
  bd_buf_reset(&v);
  int sort = 0;
  if (bd_req_query(req, "sort", &v)) {
    sort = -1;
    for (int i = 0; i < 4; i++)
      if (v.data && !strcmp(v.data, k_sorts[i])) sort = i;
    if (sort < 0) {
      bd_buf_free(&v);
      qr_error(req, 400, "invalid_request", "sort must be created_at, updated_at, name or scan_count", "sort");
      return;
    }
  }
  bd_buf_reset(&v);
  int asc = 0;
  if (bd_req_query(req, "order", &v)) {
    if (v.data && !strcmp(v.data, "asc")) asc = 1;
    else if (!v.data || strcmp(v.data, "desc")) {
      bd_buf_free(&v);
      qr_error(req, 400, "invalid_request", "order must be asc or desc", "order");
      return;
    }
  }
  bd_buf_reset(&v);
  bool has_folder = bd_req_query(req, "folder_id", &v);
  char limit[8];
  bool has_cursor;
  if (!qr_page_params(req, limit, &c->scratch, &has_cursor,
                      sort < 2 ? QR_KEY_TIME : sort == 2 ? QR_KEY_TEXT : QR_KEY_INT)) {
    bd_buf_free(&v);
    return;
  }
  qr_ws_params(c);
  const char *p[] = {c->ws_s, c->mode_s, kind, has_folder ? (v.data ? v.data : "") : NULL,
                     has_cursor ? c->scratch.data : NULL, limit, bd_app.cfg.public_url};
  bd_app_query(req, &S_LIST_CODES[sort][asc], 7, p, qr_on_list, req);
  bd_buf_free(&v);
}

static void rdel(const char *code);

static void expand_then(bd_req_t *req, bool workspace, bd_handler_fn next);
static void list_codes(bd_req_t *req) { expand_then(req, true, list_codes_rows); }

/* --- codes still in a batch record ---------------------------------------------------- */

/* What changes a code or lists a workspace's codes works on rows: a code
 * that is still part of its batch's record (022) is expanded first, then
 * the handler goes on (one statement more; nothing when there is no record). */
static bd_pg_stmt_t S_EXPAND_CODE = BD_PG_STMT("SELECT qr_expand_for_code($1, $2::bigint, $3)");
static bd_pg_stmt_t S_EXPAND_WS = BD_PG_STMT("SELECT qr_expand_workspace($1::bigint, $2)");

typedef struct {
  bd_req_t *req;       /* the request */
  bd_handler_fn next;  /* what runs once the rows exist */
} expand_then_t;

static void on_expanded_then(void *ud, const bd_pg_result_t *r) {
  expand_then_t *x = ud;
  bd_req_t *req = x->req;
  if (r->err) bd_app_db_error(req, r);
  else x->next(req);
  bd_req_release(req);
}

/* Expands the code of the path (or, without one, the key's workspace), then next(req). */
static void expand_then(bd_req_t *req, bool workspace, bd_handler_fn next) {
  qr_ctx_t *c = req->ctx;
  expand_then_t *x = bd_req_calloc(req, sizeof *x);
  x->req = req;
  x->next = next;
  qr_ws_params(c);
  if (workspace) {
    const char *p[] = {c->ws_s, c->mode_s};
    bd_app_query(req, &S_EXPAND_WS, 2, p, on_expanded_then, x);
  } else {
    const char *p[] = {bd_req_param(req, 0), c->ws_s, c->mode_s};
    bd_app_query(req, &S_EXPAND_CODE, 3, p, on_expanded_then, x);
  }
}

/* The process that changed a code evicts its own cache entry at once; the
 * others learn it through NOTIFY qr_codes. */
static void evict_local(const char *short_code) {
  if (short_code && *short_code) rdel(short_code);
}

/* --- PATCH /v1/qr-codes/{id} ---------------------------------------------------------- */

static bd_pg_stmt_t S_CODE_ROW = BD_PG_STMT(
    "SELECT kind, target::text, design::text, short_code FROM qr_codes WHERE id = $1 AND workspace_id = $2"
    " AND mode = $3 AND deleted_at IS NULL");
static bd_pg_stmt_t S_PATCH = BD_PG_STMT(
    "WITH u AS (UPDATE qr_codes SET name = coalesce($4, name), target = coalesce($5::jsonb, target),"
    "  design = coalesce($6::jsonb, design), folder_id = CASE WHEN $7::boolean THEN $8 ELSE folder_id END,"
    "  tags = coalesce($9::text[], tags), is_active = coalesce($10::boolean, is_active), updated_at = now()"
    "  WHERE id = $1 AND workspace_id = $2 AND mode = $3 AND deleted_at IS NULL RETURNING *),"
    " d AS (DELETE FROM qr_images WHERE $6::jsonb IS NOT NULL AND code_id IN (SELECT id FROM u)),"
    " n AS (SELECT pg_notify('qr_codes', short_code) FROM u WHERE short_code IS NOT NULL)"
    " SELECT qr_code_json(u, $11)::text, u.short_code FROM u, (SELECT count(*) FROM n) nn");

static void on_patched(void *ud, const bd_pg_result_t *r) {
  bd_req_t *req = ud;
  if (!r->err && PQntuples(r->res) == 1) evict_local(bd_pg_val(r->res, 0, 1));
  qr_send_json_row(req, r, 200, "QR code");
  bd_req_release(req);
}

/* What a PATCH sets ($4-$10 of S_PATCH); NULL keeps the stored value. */
typedef struct {
  const char *name;     /* new name (borrowed from the body) */
  const char *folder;   /* new folder_id (borrowed from the body) */
  char *target_text;    /* the stored target with the body's merged in (owned) */
  char *design_text;    /* the new design, normalised (owned) */
  char *tags_text;      /* the new tags as a text[] literal (owned) */
  const char *active;   /* new is_active: "true" / "false" */
} patch_t;

static void patch_free(patch_t *pt) {
  free(pt->target_text);
  free(pt->design_text);
  free(pt->tags_text);
}

/* Every member of the body must be one the code's kind may change; false:
 * answered 400. */
static bool patch_keys_allowed(bd_req_t *req, json_t *body, bool dynamic) {
  /* what each kind may change */
  static const char *k_dynamic[] = {"name", "target", "design", "folder_id", "tags", "is_active"};
  static const char *k_static[] = {"name", "folder_id", "design"};
  const char *key;
  json_t *val;
  json_object_foreach(body, key, val) {
    bool ok = false;
    const char **allowed = dynamic ? k_dynamic : k_static;
    size_t na = dynamic ? BD_ARRAY_LEN(k_dynamic) : BD_ARRAY_LEN(k_static);
    for (size_t i = 0; i < na; i++)
      if (!strcmp(key, allowed[i])) ok = true;
    if (!ok) {
      char err[256];
      snprintf(err, sizeof err, "%s cannot be changed on a %s code", key, dynamic ? "dynamic" : "static");
      qr_error(req, 400, "invalid_request", err, key);
      return false;
    }
  }
  return true;
}

/* name and folder_id: optional strings; false: answered 400. */
static bool patch_name_and_folder(bd_req_t *req, json_t *body, patch_t *pt) {
  char err[256];
  if (!qr_opt_string(body, "name", 200, &pt->name, err, sizeof err) ||
      !qr_opt_string(body, "folder_id", 64, &pt->folder, err, sizeof err)) {
    qr_error(req, 400, "invalid_request", err, strstr(err, "name") == err ? "name" : "folder_id");
    return false;
  }
  return true;
}

/* tags: an array of strings (null is refused), kept as a text[] literal;
 * false: answered 400. */
static bool patch_tags(bd_req_t *req, json_t *body, patch_t *pt) {
  json_t *tags = json_object_get(body, "tags");
  if (!tags) return true;
  char err[256];
  if (!qr_valid_tags(tags, err, sizeof err) || json_is_null(tags)) {
    qr_error(req, 400, "invalid_request", json_is_null(tags) ? "tags must be an array" : err, "tags");
    return false;
  }
  bd_buf_t tb = BD_BUF_INIT;
  qr_tags_literal(&tb, tags);
  pt->tags_text = bd_buf_detach(&tb, NULL);
  return true;
}

/* is_active: a boolean; false: answered 400. */
static bool patch_is_active(bd_req_t *req, json_t *body, patch_t *pt) {
  json_t *ia = json_object_get(body, "is_active");
  if (!ia) return true;
  if (!json_is_boolean(ia)) {
    qr_error(req, 400, "invalid_request", "is_active must be a boolean", "is_active");
    return false;
  }
  pt->active = json_is_true(ia) ? "true" : "false";
  return true;
}

/* target: only the destination and its UTM tags can move, merged into the
 * stored target (its JSON text), which must still be a URL target; false:
 * answered 400. */
static bool patch_target(bd_req_t *req, json_t *body, const char *stored, patch_t *pt) {
  json_t *tg = json_object_get(body, "target");
  if (!tg) return true;
  if (!json_is_object(tg)) {
    qr_error(req, 400, "invalid_request", "target must be an object", "target");
    return false;
  }
  char err[256] = "";
  json_t *cur = json_loads(stored, 0, NULL);
  const char *key;
  json_t *val;
  json_object_foreach(tg, key, val) {
    if (strcmp(key, "destination") && strcmp(key, "utm")) {
      snprintf(err, sizeof err, "target.%s cannot be changed: only target.destination and target.utm", key);
      json_decref(cur);
      qr_error(req, 400, "invalid_request", err, "target");
      return false;
    }
    json_object_set(cur, key, val);
  }
  bd_buf_t pl = BD_BUF_INIT;
  bd_qr_type_t type;
  const char *param = NULL;
  if (bd_qr_payload(cur, &type, &pl, err, sizeof err, &param) != 0 || type != BD_QR_TYPE_URL) {
    bd_buf_free(&pl);
    json_decref(cur);
    qr_error(req, 400, "invalid_request", err[0] ? err : "target.destination must be a URL",
             param ? param : "target.destination");
    return false;
  }
  bd_buf_free(&pl);
  pt->target_text = json_dumps(cur, JSON_COMPACT);
  json_decref(cur);
  return true;
}

/* design: a valid design object, kept normalised; false: answered 400. */
static bool patch_design(bd_req_t *req, json_t *body, patch_t *pt) {
  json_t *dg = json_object_get(body, "design");
  if (!dg) return true;
  char err[256];
  const char *param = NULL;
  bd_qr_design_t *d = json_is_object(dg) ? bd_qr_design_parse(dg, err, sizeof err, &param) : NULL;
  if (!d) {
    qr_error(req, 400, "invalid_request", json_is_object(dg) ? err : "design must be an object",
             param ? param : "design");
    return false;
  }
  json_t *dj = bd_qr_design_to_json(d);
  pt->design_text = json_dumps(dj, JSON_COMPACT);
  json_decref(dj);
  bd_qr_design_free(d);
  return true;
}

/* Sends S_PATCH (on_patched answers); the parameters are copied. */
static void patch_send(bd_req_t *req, const patch_t *pt) {
  qr_ctx_t *c = req->ctx;
  qr_ws_params(c);
  const char *p[] = {bd_req_param(req, 0), c->ws_s, c->mode_s, pt->name, pt->target_text, pt->design_text,
                     json_object_get(c->body, "folder_id") ? "true" : "false", pt->folder, pt->tags_text,
                     pt->active, bd_app.cfg.public_url};
  bd_app_query(req, &S_PATCH, 11, p, on_patched, req);
}

/* pg callback of S_CODE_ROW: the stored kind decides what the body may
 * change, the stored target is what a new destination is merged into;
 * then S_PATCH. Releases the request (S_PATCH holds it again). */
static void on_patch_row(void *ud, const bd_pg_result_t *r) {
  bd_req_t *req = ud;
  qr_ctx_t *c = req->ctx;
  if (r->err) {
    bd_app_db_error(req, r);
  } else if (PQntuples(r->res) == 0) {
    qr_error(req, 404, "not_found", "No such QR code", NULL);
  } else {
    bool dynamic = !strcmp(PQgetvalue(r->res, 0, 0), "dynamic");
    json_t *body = c->body;
    patch_t pt = {NULL};
    if (patch_keys_allowed(req, body, dynamic) && patch_name_and_folder(req, body, &pt) &&
        patch_tags(req, body, &pt) && patch_is_active(req, body, &pt) &&
        patch_target(req, body, PQgetvalue(r->res, 0, 1), &pt) && patch_design(req, body, &pt))
      patch_send(req, &pt);
    patch_free(&pt);
  }
  bd_req_release(req);
}

static void patch_code_row(bd_req_t *req) {
  qr_ctx_t *c = req->ctx;
  qr_ws_params(c);
  const char *p[] = {bd_req_param(req, 0), c->ws_s, c->mode_s};
  bd_app_query(req, &S_CODE_ROW, 3, p, on_patch_row, req);
}

static void patch_code(bd_req_t *req) {
  if (!qr_parse_body(req)) return;
  if (qr_logo_step(req, patch_code)) return;
  expand_then(req, false, patch_code_row);
}

/* --- DELETE /v1/qr-codes/{id} ---------------------------------------------------------- */

static bd_pg_stmt_t S_DELETE = BD_PG_STMT(
    "WITH u AS (UPDATE qr_codes SET deleted_at = now(), is_active = false, updated_at = now()"
    " WHERE id = $1 AND workspace_id = $2 AND mode = $3 AND deleted_at IS NULL RETURNING id, short_code),"
    " n AS (SELECT pg_notify('qr_codes', short_code) FROM u WHERE short_code IS NOT NULL)"
    " SELECT jsonb_build_object('id', id, 'object', 'qr_code', 'deleted', true)::text, short_code FROM u,"
    " (SELECT count(*) FROM n) nn");

static void on_deleted(void *ud, const bd_pg_result_t *r) {
  bd_req_t *req = ud;
  if (!r->err && PQntuples(r->res) == 1) evict_local(bd_pg_val(r->res, 0, 1));
  qr_send_json_row(req, r, 200, "QR code");
  bd_req_release(req);
}

static void delete_code_row(bd_req_t *req) {
  qr_ctx_t *c = req->ctx;
  qr_ws_params(c);
  const char *p[] = {bd_req_param(req, 0), c->ws_s, c->mode_s};
  bd_app_query(req, &S_DELETE, 3, p, on_deleted, req);
}

static void delete_code(bd_req_t *req) { expand_then(req, false, delete_code_row); }

/* --- GET /v1/qr-codes/{id}/download ----------------------------------------------------- */

/* the code, or a code of a batch record not yet expanded (022), in one snapshot */
static bd_pg_stmt_t S_DOWNLOAD = BD_PG_STMT(
    "SELECT c.payload, c.design::text, CASE WHEN $4 THEN i.png END, c.name FROM qr_codes c"
    " LEFT JOIN qr_images i ON i.code_id = c.id"
    " WHERE c.id = $1 AND c.workspace_id = $2 AND c.mode = $3 AND c.deleted_at IS NULL"
    " UNION ALL"
    " SELECT x.payload, b.design::text, CASE WHEN $4 THEN (SELECT png FROM qr_images WHERE code_id = $1) END,"
    "  coalesce(x.name, '')"
    " FROM qr_batch_records r JOIN qr_batches b ON b.id = r.batch_id,"
    "  unnest(r.ids, r.payloads, r.names) AS x(id, payload, name)"
    " WHERE r.batch_id = qr_code_batch_of($1) AND r.workspace_id = $2 AND r.mode = $3 AND x.id = $1"
    " LIMIT 1");
static bd_pg_stmt_t S_STORE_IMAGE = BD_PG_STMT(
    "INSERT INTO qr_images (code_id, png, sha256) VALUES ($1, decode($2, 'hex'), $3) ON CONFLICT DO NOTHING");

typedef struct {
  bd_qr_format_t fmt;  /* requested format */
  int size;            /* requested size */
} dl_t;

static const char *fmt_ctype(bd_qr_format_t f) {
  return f == BD_QR_SVG ? "image/svg+xml" : f == BD_QR_PDF ? "application/pdf" : "image/png";
}

static void on_image_stored(void *ud, const bd_pg_result_t *r) { (void)ud; (void)r; }

static void on_download_rendered(bd_req_t *req, bd_buf_t *out, const char *err) {
  qr_ctx_t *c = req->ctx;
  dl_t *d = c->extra;
  if (err) {
    bd_resp_error(req, 500, "internal_error", err, NULL);
    return;
  }
  if (d->fmt == BD_QR_PNG && d->size == 1024) {
    /* keep the default rendering: the next download is a plain read */
    char sha[65];
    bd_sha256_hex(sha, out->data, out->len);
    char *hex = bd_malloc(out->len * 2 + 1);
    bd_hex_encode(hex, out->data, out->len);
    const char *p[] = {bd_req_param(req, 0), hex, sha};
    if (bd_pg_query(bd_app.pg, &S_STORE_IMAGE, 3, p, on_image_stored, NULL) != 0) {
      /* only a cache: the next download renders again */
    }
    free(hex);
  }
  bd_resp_header(req, "Cache-Control", "private, max-age=300");
  bd_resp_send(req, 200, fmt_ctype(d->fmt), out->data, out->len);
}

static void on_download_row(void *ud, const bd_pg_result_t *r) {
  bd_req_t *req = ud;
  qr_ctx_t *c = req->ctx;
  dl_t *d = c->extra;
  if (r->err) {
    bd_app_db_error(req, r);
  } else if (PQntuples(r->res) == 0) {
    qr_error(req, 404, "not_found", "No such QR code", NULL);
  } else if (!PQgetisnull(r->res, 0, 2)) {
    size_t n;
    unsigned char *png = PQunescapeBytea((const unsigned char *)PQgetvalue(r->res, 0, 2), &n);
    bd_resp_header(req, "Cache-Control", "private, max-age=300");
    bd_resp_send(req, 200, "image/png", (const char *)png, n);
    PQfreemem(png);
  } else {
    json_t *dj = json_loads(PQgetvalue(r->res, 0, 1), 0, NULL);
    render_async(req, PQgetvalue(r->res, 0, 0), dj, d->fmt, d->size, on_download_rendered);
    json_decref(dj);
  }
  bd_req_release(req);
}

static void download(bd_req_t *req) {
  qr_ctx_t *c = req->ctx;
  dl_t *d = bd_req_calloc(req, sizeof *d);
  c->extra = d;
  d->fmt = BD_QR_PNG;
  d->size = 1024;
  bd_buf_t v = BD_BUF_INIT;
  if (bd_req_query(req, "format", &v)) {
    if (v.data && !strcmp(v.data, "png")) d->fmt = BD_QR_PNG;
    else if (v.data && !strcmp(v.data, "svg")) d->fmt = BD_QR_SVG;
    else if (v.data && !strcmp(v.data, "pdf")) d->fmt = BD_QR_PDF;
    else {
      bd_buf_free(&v);
      qr_error(req, 400, "invalid_request", "format must be png, svg or pdf", "format");
      return;
    }
  }
  bd_buf_reset(&v);
  if (bd_req_query(req, "size", &v)) {
    int64_t n;
    if (!bd_parse_i64((bd_str_t){v.data ? v.data : "", v.len}, &n) || n < 128 || n > 4096) {
      bd_buf_free(&v);
      qr_error(req, 400, "invalid_request", "size must be an integer between 128 and 4096", "size");
      return;
    }
    d->size = (int)n;
  }
  bd_buf_free(&v);
  qr_ws_params(c);
  const char *p[] = {bd_req_param(req, 0), c->ws_s, c->mode_s,
                     d->fmt == BD_QR_PNG && d->size == 1024 ? "true" : "false"};
  bd_app_query(req, &S_DOWNLOAD, 4, p, on_download_row, req);
}

/* --- GET /v1/qr-codes/{id}/analytics ----------------------------------------------------- */

#define TOP(col)                                                                                    \
  "(SELECT coalesce(jsonb_agg(jsonb_build_object('value', v, 'count', n) ORDER BY n DESC, v), '[]')" \
  " FROM (SELECT coalesce(" col ", 'unknown') v, sum(count) n FROM s GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 10) t)"

static bd_pg_stmt_t S_ANALYTICS = BD_PG_STMT(
    "WITH code AS (SELECT id FROM qr_codes WHERE id = $1 AND workspace_id = $2 AND mode = $3 AND deleted_at IS NULL),"
    " s AS (SELECT * FROM qr_scans WHERE code_id IN (SELECT id FROM code)"
    "  AND scanned_at >= coalesce($4::timestamptz, '-infinity') AND scanned_at < coalesce($5::timestamptz, 'infinity'))"
    " SELECT jsonb_build_object('object', 'analytics', 'qr_code_id', $1,"
    "  'from', $4, 'to', $5, 'total_scans', (SELECT coalesce(sum(count), 0) FROM s),"
    "  'first_scan_at', bd_iso((SELECT min(scanned_at) FROM s)), 'last_scan_at', bd_iso((SELECT max(last_at) FROM s)),"
    "  'scans_by_day', (SELECT coalesce(jsonb_agg(jsonb_build_object('date', d, 'count', n) ORDER BY d), '[]')"
    "     FROM (SELECT to_char(scanned_at AT TIME ZONE 'UTC', 'YYYY-MM-DD') d, sum(count) n FROM s GROUP BY 1) x),"
    "  'devices', " TOP("device") ", 'operating_systems', " TOP("os") ", 'browsers', " TOP("browser") ","
    "  'referrers', " TOP("referrer") ", 'languages', " TOP("language") ", 'countries', " TOP("country") ")::text"
    " FROM code");

static bool date_param(bd_req_t *req, const char *name, bd_buf_t *out, bool *present) {
  *present = bd_req_query(req, name, out) && out->len;
  if (!*present) return true;
  int64_t us;
  if (bd_time_parse(out->data, &us)) return true;
  /* a plain date is accepted too */
  if (out->len == 10) {
    bd_buf_puts(out, "T00:00:00Z");
    if (bd_time_parse(out->data, &us)) return true;
  }
  char msg[96];
  snprintf(msg, sizeof msg, "%s must be an RFC 3339 timestamp or a YYYY-MM-DD date", name);
  qr_error(req, 400, "invalid_request", msg, name);
  return false;
}

static void analytics_rows(bd_req_t *req) {
  qr_ctx_t *c = req->ctx;
  bd_buf_t from = BD_BUF_INIT, to = BD_BUF_INIT;
  bool hf, ht;
  if (date_param(req, "from", &from, &hf) && date_param(req, "to", &to, &ht)) {
    qr_ws_params(c);
    const char *p[] = {bd_req_param(req, 0), c->ws_s, c->mode_s, hf ? from.data : NULL, ht ? to.data : NULL};
    qr_query_json(req, &S_ANALYTICS, 5, p, 200, "QR code");
  }
  bd_buf_free(&from);
  bd_buf_free(&to);
}

static void analytics(bd_req_t *req) { expand_then(req, false, analytics_rows); }

/* --- templates --------------------------------------------------------------------- */

static bd_pg_stmt_t S_CREATE_TPL = BD_PG_STMT(
    "INSERT INTO qr_templates (id, workspace_id, mode, name, design) VALUES ($1, $2, $3, $4, $5::jsonb)"
    " RETURNING jsonb_build_object('id', id, 'object', 'template', 'name', name, 'design', design,"
    " 'created_at', bd_iso(created_at))::text");
static bd_pg_stmt_t S_LIST_TPL = BD_PG_STMT(
    "SELECT jsonb_build_object('object', 'list', 'has_more', false, 'next_cursor', NULL, 'data',"
    " coalesce(jsonb_agg(jsonb_build_object('id', id, 'object', 'template', 'name', name, 'design', design,"
    " 'created_at', bd_iso(created_at)) ORDER BY created_at DESC, id DESC), '[]'))::text"
    " FROM qr_templates WHERE workspace_id = $1 AND mode = $2");

static void create_template(bd_req_t *req) {
  qr_ctx_t *c = req->ctx;
  if (!qr_parse_body(req)) return;
  if (qr_logo_step(req, create_template)) return;
  json_t *name = json_object_get(c->body, "name");
  if (!json_is_string(name) || json_string_length(name) == 0 || json_string_length(name) > 200) {
    qr_error(req, 400, "invalid_request", "name is required (a string of at most 200 characters)", "name");
    return;
  }
  json_t *design = json_object_get(c->body, "design");
  if (!json_is_object(design)) {
    qr_error(req, 400, "invalid_request", "design is required and must be an object", "design");
    return;
  }
  char err[256];
  const char *param = NULL;
  c->design = bd_qr_design_parse(design, err, sizeof err, &param);
  if (!c->design) {
    qr_error(req, 400, "invalid_request", err, param ? param : "design");
    return;
  }
  json_t *dj = bd_qr_design_to_json(c->design);
  char *dtext = json_dumps(dj, JSON_COMPACT);
  json_decref(dj);
  char id[32] = "tpl_";
  bd_rand_base62(id + 4, 16);
  qr_ws_params(c);
  const char *p[] = {id, c->ws_s, c->mode_s, json_string_value(name), dtext};
  qr_query_json(req, &S_CREATE_TPL, 5, p, 201, "template");
  free(dtext);
}

static void list_templates(bd_req_t *req) {
  qr_ctx_t *c = req->ctx;
  qr_ws_params(c);
  const char *p[] = {c->ws_s, c->mode_s};
  qr_query_json(req, &S_LIST_TPL, 2, p, 200, "template");
}

/* --- redirect cache ------------------------------------------------------------------ */

typedef struct rent {
  char code[16];        /* short code */
  char id[32];          /* code id ("" when unknown) */
  char *dest;           /* destination with UTM merged (NULL when unknown/inactive) */
  uint64_t expires_ms;  /* negative entries expire; positive ones live until NOTIFY */
  struct rent *next;    /* chain */
} rent_t;

#define RBUCKETS 65536
#define RMAX_ENTRIES 1000000
static rent_t *g_rmap[RBUCKETS];
static size_t g_rcount;

static uint32_t rhash(const char *s) {
  uint32_t h = 2166136261u;
  for (; *s; s++) h = (h ^ (uint8_t)*s) * 16777619u;
  return h % RBUCKETS;
}

static rent_t *rget(const char *code) {
  for (rent_t *e = g_rmap[rhash(code)]; e; e = e->next)
    if (!strcmp(e->code, code)) return e;
  return NULL;
}

static void rdel(const char *code) {
  for (rent_t **pp = &g_rmap[rhash(code)]; *pp; pp = &(*pp)->next)
    if (!strcmp((*pp)->code, code)) {
      rent_t *e = *pp;
      *pp = e->next;
      free(e->dest);
      free(e);
      g_rcount--;
      return;
    }
}

static void rclear(void) {
  for (size_t i = 0; i < RBUCKETS; i++) {
    rent_t *e = g_rmap[i];
    while (e) {
      rent_t *n = e->next;
      free(e->dest);
      free(e);
      e = n;
    }
    g_rmap[i] = NULL;
  }
  g_rcount = 0;
}

static rent_t *rput(const char *code) {
  if (g_rcount >= RMAX_ENTRIES) rclear(); /* crude but bounded: refills from the database */
  rent_t *e = bd_calloc(1, sizeof *e);
  snprintf(e->code, sizeof e->code, "%s", code);
  uint32_t h = rhash(code);
  e->next = g_rmap[h];
  g_rmap[h] = e;
  g_rcount++;
  return e;
}

static uint64_t g_notify_seq; /* notifications received: lookups compare it */

static void on_code_notify(void *ud, const char *channel, const char *payload) {
  g_notify_seq++;
  rdel(payload);
}
static void on_code_listen_reconnect(void *ud) { rclear(); }

/* --- scan buffer ----------------------------------------------------------------------- */

/* Scans are counted in memory per (code, minute, device, os, browser,
 * language, country, referrer) and written as one row per group: the
 * analytics only ever need these aggregates, and one row per scan would
 * cost the database more than the redirects cost us. */
typedef struct scan {
  struct scan *next;    /* hash chain */
  struct scan *lnext;   /* list of all groups (flush order) */
  uint32_t hash;        /* of the key below */
  char id[32];          /* code id */
  int64_t minute;       /* unix minute */
  char device[12];      /* mobile / tablet / desktop / bot */
  char os[12];          /* iOS, Android, Windows, macOS, Linux, other */
  char browser[12];     /* Chrome, Safari, Firefox, Edge, Opera, other */
  char language[16];    /* first Accept-Language tag */
  char country[8];      /* from the trusted proxy header */
  char referrer[128];   /* Referer host */
  int64_t first_us;     /* first scan in the group */
  int64_t last_us;      /* last scan in the group */
  uint32_t count;       /* scans in the group */
} scan_t;

#define SCAN_FLUSH_MS 1000
#define SCAN_BUCKETS 4096
#define SCAN_MAX_GROUPS 200000 /* bounded: beyond this scans are counted as dropped */

typedef struct {
  scan_t *buckets[SCAN_BUCKETS]; /* chains */
  scan_t *list;                  /* every group */
  size_t ngroups;                /* groups */
  uint64_t nscans;               /* scans */
} scan_map_t;

static scan_map_t g_scans;   /* accumulating */
static bd_flusher_t g_flusher; /* writes g_scans every SCAN_FLUSH_MS */

/* groups, then counters; exclusive against expansions of batch records (022) */
static bd_pg_stmt_t S_SCANS = BD_PG_STMT("SELECT qr_record_scans($1::jsonb)");

static uint32_t scan_hash(const scan_t *k) {
  uint32_t h = 2166136261u;
  const char *parts[] = {k->id, k->device, k->os, k->browser, k->language, k->country, k->referrer};
  for (size_t i = 0; i < BD_ARRAY_LEN(parts); i++) {
    for (const char *c = parts[i]; *c; c++) h = (h ^ (uint8_t)*c) * 16777619u;
    h = (h ^ 0xff) * 16777619u;
  }
  return (h ^ (uint32_t)k->minute) * 16777619u;
}

static bool scan_same(const scan_t *a, const scan_t *b) {
  return a->hash == b->hash && a->minute == b->minute && !strcmp(a->id, b->id) && !strcmp(a->device, b->device) &&
         !strcmp(a->os, b->os) && !strcmp(a->browser, b->browser) && !strcmp(a->language, b->language) &&
         !strcmp(a->country, b->country) && !strcmp(a->referrer, b->referrer);
}

/* Adds (count, first, last) of `k` to the accumulating map. */
static void scan_add(const scan_t *k) {
  scan_t **slot = &g_scans.buckets[k->hash % SCAN_BUCKETS];
  for (scan_t *e = *slot; e; e = e->next)
    if (scan_same(e, k)) {
      e->count += k->count;
      if (k->first_us < e->first_us) e->first_us = k->first_us;
      if (k->last_us > e->last_us) e->last_us = k->last_us;
      g_scans.nscans += k->count;
      return;
    }
  if (g_scans.ngroups >= SCAN_MAX_GROUPS) {
    bd_metrics_inc("batchd_qr_scans_dropped_total", "Scans dropped because the buffer was full.", k->count);
    return;
  }
  scan_t *e = bd_malloc(sizeof *e);
  *e = *k;
  e->next = *slot;
  *slot = e;
  e->lnext = g_scans.list;
  g_scans.list = e;
  g_scans.ngroups++;
  g_scans.nscans += k->count;
}

/* --- the flusher's view of the buffer: groups as [{id,f,l,n,device,...}] --------------- */

static uint64_t scans_pending(void *ud) { return g_scans.ngroups; }

static void *scans_take(void *ud, bd_buf_t *b, uint64_t *n) {
  if (b) {
    bd_jw_t w;
    bd_jw_init(&w, b);
    bd_jw_arr(&w);
    for (scan_t *s = g_scans.list; s; s = s->lnext) {
      bd_jw_obj(&w);
      bd_jw_kstr(&w, "id", s->id);
      bd_jw_kint(&w, "f", s->first_us);
      bd_jw_kint(&w, "l", s->last_us);
      bd_jw_kint(&w, "n", s->count);
      bd_jw_kstr(&w, "device", s->device);
      bd_jw_kstr(&w, "os", s->os);
      bd_jw_kstr(&w, "browser", s->browser);
      bd_jw_kstr(&w, "language", s->language);
      bd_jw_kstr(&w, "country", s->country);
      bd_jw_kstr(&w, "referrer", s->referrer);
      bd_jw_obj_end(&w);
    }
    bd_jw_arr_end(&w);
  }
  scan_t *list = g_scans.list;
  *n = g_scans.nscans;
  memset(&g_scans, 0, sizeof g_scans);
  return list;
}

static void scans_release(void *ud, void *batch) {
  for (scan_t *l = batch, *n; l; l = n) {
    n = l->lnext;
    free(l);
  }
}

static void scans_put_back(void *ud, void *batch) {
  for (scan_t *e = batch; e; e = e->lnext) scan_add(e);
  scans_release(ud, batch);
}

static const bd_flusher_ops_t SCAN_OPS = {
    .what = "scans",
    .metric = "batchd_qr_scans_recorded_total",
    .metric_help = "Scans written to the database.",
    .pending = scans_pending,
    .take = scans_take,
    .put_back = scans_put_back,
    .release = scans_release,
};

void qr_codes_flush(void (*done)(void *ud), void *ud) { bd_flusher_drain(&g_flusher, done, ud); }

/* needle is lower case */
static bool ci_contains(bd_str_t s, const char *needle) {
  size_t n = strlen(needle);
  char c0 = needle[0];
  for (size_t i = 0; i + n <= s.len; i++)
    if ((s.p[i] | 0x20) == c0 && !strncasecmp(s.p + i, needle, n)) return true;
  return false;
}

/* src into dst[cap], cut to fit */
static void copy_str(char *dst, size_t cap, const char *src) {
  size_t n = strlen(src);
  if (n >= cap) n = cap - 1;
  memcpy(dst, src, n);
  dst[n] = '\0';
}

static void copy_token(char *dst, size_t cap, bd_str_t v, const char *stop) {
  size_t i = 0;
  while (i < v.len && i + 1 < cap && !strchr(stop, v.p[i])) {
    dst[i] = v.p[i];
    i++;
  }
  dst[i] = '\0';
}

static void record_scan(bd_req_t *req, const char *code_id) {
  scan_t k;
  memset(&k, 0, sizeof k);
  copy_str(k.id, sizeof k.id, code_id);
  k.first_us = k.last_us = bd_wall_us();
  k.minute = k.first_us / 60000000;
  k.count = 1;
  bd_str_t ua = bd_req_header(req, "User-Agent");
  const char *dev = "desktop", *os = "other", *br = "other";
  if (ci_contains(ua, "bot") || ci_contains(ua, "crawler") || ci_contains(ua, "spider")) dev = "bot";
  else if (ci_contains(ua, "ipad") || ci_contains(ua, "tablet")) dev = "tablet";
  else if (ci_contains(ua, "mobile") || ci_contains(ua, "iphone") || ci_contains(ua, "android")) dev = "mobile";
  if (ci_contains(ua, "iphone") || ci_contains(ua, "ipad") || ci_contains(ua, "ios")) os = "iOS";
  else if (ci_contains(ua, "android")) os = "Android";
  else if (ci_contains(ua, "windows")) os = "Windows";
  else if (ci_contains(ua, "mac os") || ci_contains(ua, "macintosh")) os = "macOS";
  else if (ci_contains(ua, "linux")) os = "Linux";
  if (ci_contains(ua, "edg/")) br = "Edge";
  else if (ci_contains(ua, "opr/") || ci_contains(ua, "opera")) br = "Opera";
  else if (ci_contains(ua, "firefox")) br = "Firefox";
  else if (ci_contains(ua, "chrome") || ci_contains(ua, "crios")) br = "Chrome";
  else if (ci_contains(ua, "safari")) br = "Safari";
  copy_str(k.device, sizeof k.device, dev);
  copy_str(k.os, sizeof k.os, os);
  copy_str(k.browser, sizeof k.browser, br);
  copy_token(k.language, sizeof k.language, bd_req_header(req, "Accept-Language"), ",; ");
  bd_str_t country = bd_req_header(req, bd_app.cfg.country_header);
  if (country.len == 2) copy_token(k.country, sizeof k.country, country, " ");
  bd_str_t ref = bd_req_header(req, "Referer");
  const char *sl = ref.len ? memmem(ref.p, ref.len, "://", 3) : NULL;
  if (sl) {
    bd_str_t host = {sl + 3, ref.len - (size_t)(sl + 3 - ref.p)};
    copy_token(k.referrer, sizeof k.referrer, host, "/?#:");
  }
  k.hash = scan_hash(&k);
  scan_add(&k);
}

/* --- GET /s/{code} ---------------------------------------------------------------------- */

static const char k_not_found_page[] =
    "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>QR code not found</title>"
    "<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\"></head>"
    "<body style=\"font-family:sans-serif;text-align:center;padding:3em\"><h1>This QR code is not active</h1>"
    "<p>The code you scanned does not exist or has been deactivated.</p></body></html>";

static void redirect_answer(bd_req_t *req, rent_t *e) {
  bd_resp_header(req, "Cache-Control", "no-store");
  if (!e || !e->dest) {
    bd_resp_send(req, 404, "text/html; charset=utf-8", k_not_found_page, sizeof k_not_found_page - 1);
    return;
  }
  bd_resp_header(req, "Location", e->dest);
  record_scan(req, e->id);
  bd_resp_send(req, 302, "text/plain; charset=utf-8", "", 0);
}

/* the code, or a code of a batch record not yet expanded, found by its
 * batch's short_prefix (022), in one snapshot */
static bd_pg_stmt_t S_RESOLVE = BD_PG_STMT(
    "SELECT id, target::text, is_active AND deleted_at IS NULL FROM qr_codes WHERE short_code = $1"
    " UNION ALL"
    " SELECT x.id, x.target::text, true FROM qr_batches b JOIN qr_batch_records r ON r.batch_id = b.id,"
    "  unnest(r.short_codes, r.ids, r.targets) AS x(s, id, target)"
    " WHERE length($1) = 12 AND b.short_prefix = left($1, 6) AND x.s = $1"
    " LIMIT 1");

typedef struct {
  uint64_t seq; /* g_notify_seq when the lookup was sent */
} resolve_t;

static void on_resolve(void *ud, const bd_pg_result_t *r) {
  bd_req_t *req = ud;
  resolve_t *rs = req->ctx;
  if (r->err) {
    bd_resp_header(req, "Retry-After", "2");
    bd_resp_send(req, 503, "text/plain; charset=utf-8", "Temporarily unavailable\n", 24);
    bd_req_release(req);
    return;
  }
  const char *code = bd_req_param(req, 0);
  /* kept only when no change can have been missed meanwhile */
  bool keep = bd_pg_listening(bd_app.pg) && rs && rs->seq == g_notify_seq;
  rent_t tmp = {{0}};
  rent_t *e = keep ? rget(code) : NULL;
  if (keep && !e) e = rput(code);
  if (!keep) {
    snprintf(tmp.code, sizeof tmp.code, "%s", code);
    e = &tmp;
  }
  free(e->dest);
  e->dest = NULL;
  e->id[0] = '\0';
  if (PQntuples(r->res) == 1) {
    snprintf(e->id, sizeof e->id, "%s", PQgetvalue(r->res, 0, 0));
    if (!strcmp(PQgetvalue(r->res, 0, 2), "t")) {
      json_t *target = json_loads(PQgetvalue(r->res, 0, 1), 0, NULL);
      bd_buf_t dest = BD_BUF_INIT;
      bd_qr_type_t type;
      char err[128];
      const char *param;
      if (target && bd_qr_payload(target, &type, &dest, err, sizeof err, &param) == 0 && type == BD_QR_TYPE_URL)
        e->dest = bd_buf_detach(&dest, NULL);
      bd_buf_free(&dest);
      json_decref(target);
    }
    /* until NOTIFY evicts it, but at most a minute: a lookup that was in
     * flight while a change was announced could otherwise keep old data */
    e->expires_ms = bd_now_ms() + 60000;
  } else {
    e->expires_ms = bd_now_ms() + 5000; /* unknown codes are re-checked soon */
  }
  redirect_answer(req, e);
  if (e == &tmp) free(tmp.dest);
  bd_req_release(req);
}

void qr_h_redirect(bd_req_t *req) {
  const char *code = bd_req_param(req, 0);
  size_t n = strlen(code);
  bool ok = n > 0 && n < 16;
  for (size_t i = 0; ok && i < n; i++)
    ok = (code[i] >= '0' && code[i] <= '9') || (code[i] >= 'a' && code[i] <= 'z') || (code[i] >= 'A' && code[i] <= 'Z');
  if (!ok) {
    redirect_answer(req, NULL);
    return;
  }
  rent_t *e = bd_pg_listening(bd_app.pg) ? rget(code) : NULL;
  if (e && e->expires_ms > bd_now_ms()) {
    redirect_answer(req, e);
    return;
  }
  resolve_t *rs = bd_req_calloc(req, sizeof *rs);
  rs->seq = g_notify_seq;
  req->ctx = rs;
  const char *p[] = {code};
  bd_req_hold(req);
  if (bd_pg_query(bd_app.pg, &S_RESOLVE, 1, p, on_resolve, req) != 0) {
    bd_pg_result_t fake = {BD_PG_EUNAVAIL, NULL, "", "queue full"};
    on_resolve(req, &fake);
  }
}

/* --- handlers with auth ---------------------------------------------------------------- */

void qr_h_create_code(bd_req_t *req) { qr_entry_scope(req, QR_SCOPE_WRITE, create_code); }
void qr_h_list_codes(bd_req_t *req) { qr_entry_scope(req, QR_SCOPE_READ, list_codes); }
void qr_h_get_code(bd_req_t *req) { qr_entry_scope(req, QR_SCOPE_READ, get_code); }
void qr_h_patch_code(bd_req_t *req) { qr_entry_scope(req, QR_SCOPE_WRITE, patch_code); }
void qr_h_delete_code(bd_req_t *req) { qr_entry_scope(req, QR_SCOPE_WRITE, delete_code); }
void qr_h_download(bd_req_t *req) { qr_entry_scope(req, QR_SCOPE_READ, download); }
void qr_h_analytics(bd_req_t *req) { qr_entry_scope(req, QR_SCOPE_ANALYTICS, analytics); }
void qr_h_create_template(bd_req_t *req) { qr_entry_scope(req, QR_SCOPE_WRITE, create_template); }
void qr_h_list_templates(bd_req_t *req) { qr_entry_scope(req, QR_SCOPE_READ, list_templates); }

void qr_codes_init(void) {
  build_list_statements();
  bd_flusher_start(&g_flusher, bd_app.loop, &SCAN_OPS, NULL, &S_SCANS, SCAN_FLUSH_MS);
  bd_pg_listen(bd_app.pg, "qr_codes", on_code_notify, on_code_listen_reconnect, NULL);
}

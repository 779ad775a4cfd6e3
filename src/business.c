/* business.c: the /business surface (vec.digital business API): token
 * authentication, error bodies, Laravel validation errors and paginator,
 * certificate templates, the seed-demo section and the route table.
 *
 * Request path of an authenticated call:
 *   route → bd_biz_authenticate: Bearer biz_<id>_<secret> → one indexed
 *   query (biz_token_lookup) → secret checked in constant time → rate limit
 *   → permission → handler with the caller (institution, user, perms).
 * Reads are one round trip: the SQL functions biz_template_json and
 * biz_batch_json (004_business.sql) build the JSON that is sent as it is.
 */
#include "business.h"

#include "app.h"
#include "auth.h"
#include "cert_render.h"
#include "idem.h"
#include "json.h"
#include "log.h"
#include "surfaces.h"
#include "util.h"

#include <cairo.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

/* --- permissions ----------------------------------------------------------- */

static const char *const g_perm_names[] = {
    "batches:view",     "batches:create",    "batches:approve",     "templates:view",
    "templates:manage", "certificates:view", "certificates:manage",
};

uint32_t bd_biz_perm_bit(const char *name) {
  for (size_t i = 0; name && i < BD_ARRAY_LEN(g_perm_names); i++)
    if (strcmp(name, g_perm_names[i]) == 0) return 1u << i;
  return 0;
}

const char *bd_biz_perm_name(uint32_t bit) {
  for (size_t i = 0; i < BD_ARRAY_LEN(g_perm_names); i++)
    if (bit == 1u << i) return g_perm_names[i];
  return NULL;
}

/* PostgreSQL text[] output such as {batches:view,templates:view}: element
 * names never need quoting (no commas, spaces or braces in them). */
static uint32_t parse_perms(const char *arr) {
  uint32_t bits = 0;
  const char *p = arr;
  if (*p == '{') p++;
  while (*p && *p != '}') {
    const char *e = p;
    while (*e && *e != ',' && *e != '}') e++;
    char name[40];
    size_t n = (size_t)(e - p);
    if (n < sizeof name) {
      memcpy(name, p, n);
      name[n] = '\0';
      bits |= bd_biz_perm_bit(name);
    }
    p = *e == ',' ? e + 1 : e;
  }
  return bits;
}

/* --- error bodies ---------------------------------------------------------- */

const char *bd_biz_base_url(void) { return bd_app.cfg.public_url ? bd_app.cfg.public_url : ""; }

void bd_biz_send_data(bd_req_t *req, int status, const char *json) {
  bd_buf_t b = BD_BUF_INIT;
  bd_buf_puts(&b, "{\"data\":");
  bd_buf_puts(&b, json);
  bd_buf_putc(&b, '}');
  bd_resp_json(req, status, &b);
}

void bd_biz_not_found(bd_req_t *req, const char *id) {
  char msg[192];
  snprintf(msg, sizeof msg, "The requested ID %.120s was not found.", id ? id : "");
  bd_resp_error(req, 404, "resource_not_found", msg, NULL);
}

void bd_biz_server_error(bd_req_t *req, const char *what) {
  bd_error("request %s: %s", req->request_id, what);
  bd_resp_error(req, 500, "SERVER_ERROR",
                "An unexpected error occurred. Our team has been notified.", NULL);
}

/* --- authentication -------------------------------------------------------- */

typedef struct {
  bd_req_t *req;                        /* held while the token is looked up */
  uint32_t need;                        /* permission bit (0 = any) */
  const char *need_name;                /* its name, for the 403 body */
  bd_biz_cb cb;                         /* continuation */
  bd_biz_caller_t caller;               /* filled from the lookup */
  char secret[BD_TOKEN_SECRET_LEN + 1]; /* presented secret */
} auth_t;

static void unauthorized(bd_req_t *req) {
  bd_resp_header(req, "WWW-Authenticate", "Bearer");
  bd_resp_error(req, 401, "unauthenticated", "Unauthorized - Invalid API token", NULL);
}

static bd_pg_stmt_t S_TOKEN = BD_PG_STMT(
    "SELECT secret_hash, permissions, user_id, user_uuid, institution_id, institution_name"
    " FROM biz_token_lookup($1)");

static void on_token(void *ud, const bd_pg_result_t *r) {
  auth_t *a = ud;
  bd_req_t *req = a->req;
  if (bd_req_gone(req)) {
    /* nobody to answer: complete into the void so the request is freed */
    bd_resp_send(req, 499, "text/plain", "", 0);
  } else if (r->err) {
    bd_app_db_error(req, r);
  } else if (PQntuples(r->res) != 1 ||
             !bd_token_check(bd_str_c(a->secret), PQgetvalue(r->res, 0, 0))) {
    unauthorized(req);
  } else {
    bd_biz_caller_t *c = &a->caller;
    c->perms = parse_perms(PQgetvalue(r->res, 0, 1));
    c->user_id = strtoll(PQgetvalue(r->res, 0, 2), NULL, 10);
    snprintf(c->user_uuid, sizeof c->user_uuid, "%s", PQgetvalue(r->res, 0, 3));
    c->institution_id = strtoll(PQgetvalue(r->res, 0, 4), NULL, 10);
    snprintf(c->institution_name, sizeof c->institution_name, "%s", PQgetvalue(r->res, 0, 5));
    snprintf(req->cred_buf, sizeof req->cred_buf, "biz:%s", c->token_id);
    req->cred_id = req->cred_buf;
    if (bd_app_rate_limit(req, req->cred_id)) {
      if (a->need && !(c->perms & a->need))
        bd_resp_error(req, 403, "forbidden", "Forbidden - Insufficient permissions", a->need_name);
      else
        a->cb(req, c);
    }
  }
  free(a);
  bd_req_release(req);
}

void bd_biz_authenticate(bd_req_t *req, const char *permission, bd_biz_cb cb) {
  bd_str_t cred, id, secret;
  if (!bd_bearer(bd_req_header(req, "Authorization"), &cred) ||
      !bd_token_parse(cred, BD_BIZ_TOKEN_PREFIX, &id, &secret)) {
    unauthorized(req);
    return;
  }
  auth_t *a = bd_calloc(1, sizeof *a);
  a->req = req;
  a->cb = cb;
  a->need = permission ? bd_biz_perm_bit(permission) : 0;
  a->need_name = permission;
  memcpy(a->caller.token_id, id.p, id.len);
  a->caller.token_id[id.len] = '\0';
  memcpy(a->secret, secret.p, secret.len);
  a->secret[secret.len] = '\0';
  const char *p[] = {a->caller.token_id};
  bd_req_hold(req);
  if (bd_pg_query(bd_app.pg, &S_TOKEN, 1, p, on_token, a) != 0) {
    free(a);
    bd_app_unavailable(req);
    bd_req_release(req);
  }
}

/* --- validation errors ------------------------------------------------------- */

void bd_biz_errors_init(bd_biz_errors_t *e) { memset(e, 0, sizeof *e); }

void bd_biz_errors_add(bd_biz_errors_t *e, const char *field, const char *fmt, ...) {
  if (e->n == e->cap) {
    e->cap = e->cap ? 2 * e->cap : 8;
    e->field = bd_realloc(e->field, e->cap * sizeof *e->field);
    e->msg = bd_realloc(e->msg, e->cap * sizeof *e->msg);
  }
  bd_buf_t m = BD_BUF_INIT;
  va_list ap;
  va_start(ap, fmt);
  bd_buf_vprintf(&m, fmt, ap);
  va_end(ap);
  e->field[e->n] = bd_strdup(field);
  e->msg[e->n] = bd_buf_detach(&m, NULL);
  e->n++;
}

bool bd_biz_errors_has(const bd_biz_errors_t *e, const char *field) {
  for (size_t i = 0; i < e->n; i++)
    if (strcmp(e->field[i], field) == 0) return true;
  return false;
}

void bd_biz_errors_free(bd_biz_errors_t *e) {
  for (size_t i = 0; i < e->n; i++) {
    free(e->field[i]);
    free(e->msg[i]);
  }
  free(e->field);
  free(e->msg);
  memset(e, 0, sizeof *e);
}

void bd_biz_errors_summary(const bd_biz_errors_t *e, bd_buf_t *out) {
  if (!e->n) return;
  bd_buf_puts(out, e->msg[0]);
  /* Laravel: "(and :count more error)" / "(and :count more errors)" */
  if (e->n == 2)
    bd_buf_puts(out, " (and 1 more error)");
  else if (e->n > 2)
    bd_buf_printf(out, " (and %zu more errors)", e->n - 1);
}

void bd_biz_errors_send(bd_req_t *req, bd_biz_errors_t *e) {
  bd_buf_t b = BD_BUF_INIT, m = BD_BUF_INIT;
  bd_biz_errors_summary(e, &m);
  bd_jw_t w;
  bd_jw_init(&w, &b);
  bd_jw_obj(&w);
  bd_jw_kstr(&w, "message", m.data ? m.data : "");
  bd_jw_key(&w, "errors");
  bd_jw_obj(&w);
  bool *done = bd_calloc(e->n ? e->n : 1, sizeof *done);
  for (size_t i = 0; i < e->n; i++) {
    if (done[i]) continue;
    bd_jw_key(&w, e->field[i]);
    bd_jw_arr(&w);
    for (size_t j = i; j < e->n; j++) {
      if (done[j] || strcmp(e->field[j], e->field[i]) != 0) continue;
      done[j] = true;
      bd_jw_str(&w, e->msg[j]);
    }
    bd_jw_arr_end(&w);
  }
  free(done);
  bd_jw_obj_end(&w);
  bd_jw_obj_end(&w);
  bd_buf_free(&m);
  bd_biz_errors_free(e);
  bd_resp_json(req, 422, &b);
}

/* --- paginator ------------------------------------------------------------- */

/* Query integer in 1..max (max 0: no upper bound), Laravel messages. */
static void page_param(bd_req_t *req, const char *name, const char *label, int64_t dflt,
                       int64_t max, int64_t *out, bd_biz_errors_t *errs) {
  bd_buf_t v = BD_BUF_INIT;
  *out = dflt;
  if (bd_req_query(req, name, &v)) {
    int64_t x;
    if (!bd_parse_i64((bd_str_t){v.data, v.len}, &x)) {
      bd_biz_errors_add(errs, name, "The %s field must be an integer.", label);
    } else if (x < 1) {
      bd_biz_errors_add(errs, name, "The %s field must be at least 1.", label);
    } else if (max && x > max) {
      bd_biz_errors_add(errs, name, "The %s field must not be greater than %lld.", label,
                        (long long)max);
    } else if (x > 1000000000) {
      bd_biz_errors_add(errs, name, "The %s field must not be greater than 1000000000.", label);
    } else {
      *out = x;
    }
  }
  bd_buf_free(&v);
}

void bd_biz_page_parse(bd_req_t *req, bd_biz_page_t *pg, bd_biz_errors_t *errs) {
  page_param(req, "page", "page", 1, 0, &pg->page, errs);
  page_param(req, "per_page", "per page", BD_BIZ_PER_PAGE_DEFAULT, BD_BIZ_PER_PAGE_MAX,
             &pg->per_page, errs);
  pg->offset = (pg->page - 1) * pg->per_page;
}

static void page_url(bd_jw_t *w, bd_req_t *req, int64_t page, const char *extra) {
  bd_buf_t u = BD_BUF_INIT;
  bd_buf_printf(&u, "%s%.*s?page=%lld%s", bd_biz_base_url(), (int)req->path.len, req->path.p,
                (long long)page, extra ? extra : "");
  bd_jw_strn(w, u.data, u.len);
  bd_buf_free(&u);
}

static void page_link(bd_jw_t *w, bd_req_t *req, int64_t page, const char *label, bool active,
                      const char *extra) {
  bd_jw_obj(w);
  bd_jw_key(w, "url");
  if (page > 0)
    page_url(w, req, page, extra);
  else
    bd_jw_null(w);
  bd_jw_kstr(w, "label", label);
  bd_jw_kbool(w, "active", active);
  bd_jw_obj_end(w);
}

static void page_range(bd_jw_t *w, bd_req_t *req, int64_t from, int64_t to, int64_t cur,
                       const char *extra) {
  for (int64_t p = from; p <= to; p++) {
    char label[24];
    snprintf(label, sizeof label, "%lld", (long long)p);
    page_link(w, req, p, label, p == cur, extra);
  }
}

void bd_biz_paginate(bd_buf_t *out, bd_req_t *req, const bd_biz_page_t *pg, int64_t total,
                     const char *data_json, size_t count, const char *extra) {
  int64_t last = total > 0 ? (total + pg->per_page - 1) / pg->per_page : 1;
  int64_t cur = pg->page;
  bd_jw_t w;
  bd_jw_init(&w, out);
  bd_jw_obj(&w);
  bd_jw_key(&w, "data");
  bd_jw_raw(&w, data_json && *data_json ? data_json : "[]");
  bd_jw_key(&w, "links");
  bd_jw_obj(&w);
  bd_jw_key(&w, "first");
  page_url(&w, req, 1, extra);
  bd_jw_key(&w, "last");
  page_url(&w, req, last, extra);
  bd_jw_key(&w, "prev");
  if (cur > 1)
    page_url(&w, req, cur - 1, extra);
  else
    bd_jw_null(&w);
  bd_jw_key(&w, "next");
  if (cur < last)
    page_url(&w, req, cur + 1, extra);
  else
    bd_jw_null(&w);
  bd_jw_obj_end(&w);

  bd_jw_key(&w, "meta");
  bd_jw_obj(&w);
  bd_jw_kint(&w, "current_page", cur);
  bd_jw_key(&w, "from");
  if (count)
    bd_jw_int(&w, pg->offset + 1);
  else
    bd_jw_null(&w);
  bd_jw_kint(&w, "last_page", last);
  /* Laravel's UrlWindow with onEachSide = 3: every page up to 13 pages,
   * else the first/last two around a window, "..." between */
  bd_jw_key(&w, "links");
  bd_jw_arr(&w);
  page_link(&w, req, cur > 1 ? cur - 1 : 0, "&laquo; Previous", false, extra);
  const int64_t each = 3, window = each + 4;
  if (last < each * 2 + 8) {
    page_range(&w, req, 1, last, cur, extra);
  } else if (cur <= window) {
    page_range(&w, req, 1, window + each, cur, extra);
    page_link(&w, req, 0, "...", false, extra);
    page_range(&w, req, last - 1, last, cur, extra);
  } else if (cur > last - window) {
    page_range(&w, req, 1, 2, cur, extra);
    page_link(&w, req, 0, "...", false, extra);
    page_range(&w, req, last - (window + each - 1), last, cur, extra);
  } else {
    page_range(&w, req, 1, 2, cur, extra);
    page_link(&w, req, 0, "...", false, extra);
    page_range(&w, req, cur - each, cur + each, cur, extra);
    page_link(&w, req, 0, "...", false, extra);
    page_range(&w, req, last - 1, last, cur, extra);
  }
  page_link(&w, req, cur < last ? cur + 1 : 0, "Next &raquo;", false, extra);
  bd_jw_arr_end(&w);
  bd_jw_key(&w, "path");
  bd_buf_t path = BD_BUF_INIT;
  bd_buf_printf(&path, "%s%.*s", bd_biz_base_url(), (int)req->path.len, req->path.p);
  bd_jw_strn(&w, path.data, path.len);
  bd_buf_free(&path);
  bd_jw_kint(&w, "per_page", pg->per_page);
  bd_jw_key(&w, "to");
  if (count)
    bd_jw_int(&w, pg->offset + (int64_t)count);
  else
    bd_jw_null(&w);
  bd_jw_kint(&w, "total", total);
  bd_jw_obj_end(&w);
  bd_jw_obj_end(&w);
}

/* --- templates ------------------------------------------------------------- */

typedef struct {
  bd_biz_page_t pg; /* requested page */
  char extra[64];   /* query suffix of page links */
  char param[40];   /* the path id, NUL-terminated */
} tpl_ctx_t;

static void tpl_ctx_free(bd_req_t *req) {
  free(req->ctx);
  req->ctx = NULL;
}

static tpl_ctx_t *tpl_ctx(bd_req_t *req) {
  tpl_ctx_t *c = bd_calloc(1, sizeof *c);
  req->ctx = c;
  req->on_free = tpl_ctx_free;
  return c;
}

static bd_pg_stmt_t S_TPL_LIST = BD_PG_STMT(
    "SELECT (SELECT count(*) FROM biz_templates WHERE institution_id = $1::bigint),"
    " coalesce(json_agg(biz_template_json(s.t, $4, false) ORDER BY (s.t).created_at DESC, (s.t).id "
    "DESC), '[]'),"
    " count(*)"
    " FROM (SELECT t FROM biz_templates t WHERE t.institution_id = $1::bigint"
    "       ORDER BY t.created_at DESC, t.id DESC LIMIT $2::bigint OFFSET $3::bigint) s");

static void on_tpl_list(void *ud, const bd_pg_result_t *r) {
  bd_req_t *req = ud;
  tpl_ctx_t *c = req->ctx;
  if (r->err) {
    bd_app_db_error(req, r);
  } else {
    bd_buf_t b = BD_BUF_INIT;
    bd_biz_paginate(&b, req, &c->pg, strtoll(PQgetvalue(r->res, 0, 0), NULL, 10),
                    PQgetvalue(r->res, 0, 1), (size_t)strtoull(PQgetvalue(r->res, 0, 2), NULL, 10),
                    c->extra);
    bd_resp_json(req, 200, &b);
  }
  bd_req_release(req);
}

static void tpl_list_authed(bd_req_t *req, const bd_biz_caller_t *caller) {
  tpl_ctx_t *c = tpl_ctx(req);
  bd_biz_errors_t errs;
  bd_biz_errors_init(&errs);
  bd_biz_page_parse(req, &c->pg, &errs);
  if (errs.n) {
    bd_biz_errors_send(req, &errs);
    return;
  }
  if (c->pg.per_page != BD_BIZ_PER_PAGE_DEFAULT)
    snprintf(c->extra, sizeof c->extra, "&per_page=%lld", (long long)c->pg.per_page);
  char inst[24], lim[24], off[24];
  snprintf(inst, sizeof inst, "%lld", (long long)caller->institution_id);
  snprintf(lim, sizeof lim, "%lld", (long long)c->pg.per_page);
  snprintf(off, sizeof off, "%lld", (long long)c->pg.offset);
  const char *p[] = {inst, lim, off, bd_biz_base_url()};
  bd_req_hold(req);
  if (bd_pg_query(bd_app.pg, &S_TPL_LIST, 4, p, on_tpl_list, req) != 0) {
    bd_app_unavailable(req);
    bd_req_release(req);
  }
}

static void tpl_list(bd_req_t *req) { bd_biz_authenticate(req, "templates:view", tpl_list_authed); }

static bd_pg_stmt_t S_TPL_GET =
    BD_PG_STMT("SELECT biz_template_json(t, $3, true) FROM biz_templates t WHERE t.id = $1::uuid "
               "AND t.institution_id = $2::bigint");

static void on_tpl_get(void *ud, const bd_pg_result_t *r) {
  bd_req_t *req = ud;
  tpl_ctx_t *c = req->ctx;
  if (r->err) {
    bd_app_db_error(req, r);
  } else if (PQntuples(r->res) != 1) {
    bd_biz_not_found(req, c->param);
  } else {
    bd_biz_send_data(req, 200, PQgetvalue(r->res, 0, 0));
  }
  bd_req_release(req);
}

static void tpl_get_authed(bd_req_t *req, const bd_biz_caller_t *caller) {
  tpl_ctx_t *c = tpl_ctx(req);
  const char *id = bd_req_param(req, 0);
  snprintf(c->param, sizeof c->param, "%s", id);
  if (!bd_uuid_valid(bd_str_c(id))) {
    bd_biz_not_found(req, id);
    return;
  }
  char inst[24];
  snprintf(inst, sizeof inst, "%lld", (long long)caller->institution_id);
  const char *p[] = {id, inst, bd_biz_base_url()};
  bd_req_hold(req);
  if (bd_pg_query(bd_app.pg, &S_TPL_GET, 3, p, on_tpl_get, req) != 0) {
    bd_app_unavailable(req);
    bd_req_release(req);
  }
}

static void tpl_get(bd_req_t *req) { bd_biz_authenticate(req, "templates:view", tpl_get_authed); }

/* --- seed-demo --------------------------------------------------------------- */

/* A small real PNG of a handwritten-looking stroke, different per seed
 * (`k`), drawn with cairo. */
static void signature_png(int k, bd_buf_t *out);

typedef struct {
  bd_token_t admin, sig1, sig2, view; /* tokens issued this run */
} biz_seed_t;

/* Layouts of the demo templates (cert_render.h): A4 landscape, recipient
 * name, date, a QR to the verification page, and 0 or 2 signature blocks. */
static void demo_layout(bd_buf_t *b, const char *title, int signatures) {
  bd_buf_printf(
      b,
      "{\"page\":{\"width\":842,\"height\":595},\"background\":{\"color\":\"#fffdf5\"},"
      "\"elements\":["
      "{\"type\":\"text\",\"text\":\"%s\",\"x\":421,\"y\":90,\"font\":\"Noto Serif\",\"size\":34,"
      "\"bold\":true,\"color\":\"#1a2a4a\",\"align\":\"center\",\"max_width\":700},"
      "{\"type\":\"text\",\"text\":\"This certifies that\",\"x\":421,\"y\":170,\"font\":\"Noto "
      "Serif\","
      "\"size\":16,\"color\":\"#333333\",\"align\":\"center\"},"
      "{\"type\":\"text\",\"text\":\"{{RecipientsName}}\",\"x\":421,\"y\":210,\"font\":\"Noto "
      "Serif\","
      "\"size\":30,\"bold\":true,\"align\":\"center\",\"max_width\":700},"
      "{\"type\":\"text\",\"text\":\"{{InstitutionName}}, issued {{IssueDate}}, {{ReferenceId}}\","
      "\"x\":421,\"y\":290,\"size\":12,\"color\":\"#555555\",\"align\":\"center\"},"
      "{\"type\":\"qr\",\"x\":40,\"y\":455,\"size\":100}",
      title);
  for (int i = 1; i <= signatures; i++)
    bd_buf_printf(
        b,
        ",{\"type\":\"signature\",\"field\":\"signatory_%d\",\"x\":%d,\"y\":400,\"width\":180,"
        "\"height\":60}",
        i, i == 1 ? 330 : 580);
  bd_buf_puts(b, "]}");
}

/* The signatory fields of a layout as a PostgreSQL text[] literal; false
 * (message in err) when the layout does not parse. */
static bool layout_fields(const char *layout_json, bd_buf_t *arr, char *err, size_t errsz) {
  json_error_t jerr;
  json_t *j = json_loads(layout_json, 0, &jerr);
  if (!j) {
    snprintf(err, errsz, "%s", jerr.text);
    return false;
  }
  bd_cert_layout_t *l = bd_cert_layout_parse(j, err, errsz);
  json_decref(j);
  if (!l) return false;
  bd_buf_putc(arr, '{');
  for (size_t i = 0; i < bd_cert_layout_signatory_count(l); i++) {
    if (i) bd_buf_putc(arr, ',');
    bd_buf_puts(arr, bd_cert_layout_signatory_field(l, i));
  }
  bd_buf_putc(arr, '}');
  bd_cert_layout_free(l);
  return true;
}

static void seed_done(bd_seed_t *s, PGresult *res) {
  biz_seed_t *q = s->data;
  json_error_t jerr;
  json_t *o = json_loads(PQgetvalue(res, 0, 0), 0, &jerr);
  if (!o) {
    free(q);
    s->data = NULL;
    bd_seed_fail(s, "business seed", "bad JSON from biz_seed_demo");
    return;
  }
  /* in the contract's key order */
  json_t *sigs = json_object_get(o, "signatories");
  json_t *biz = json_pack(
      "{s:s, s:O, s:O, s:[{s:O, s:s, s:b}, {s:O, s:s, s:b}], s:O, s:O, s:s, s:O}", "token",
      q->admin.token, "institution_id", json_object_get(o, "institution_id"), "user_uuid",
      json_object_get(o, "user_uuid"), "signatories", "user_uuid",
      json_object_get(json_array_get(sigs, 0), "user_uuid"), "token", q->sig1.token, "auto_approve",
      1, "user_uuid", json_object_get(json_array_get(sigs, 1), "user_uuid"), "token", q->sig2.token,
      "auto_approve", 0, "archived_user_uuid", json_object_get(o, "archived_user_uuid"),
      "unsigned_user_uuid", json_object_get(o, "unsigned_user_uuid"), "view_only_token",
      q->view.token, "template_ids", json_object_get(o, "template_ids"));
  json_decref(o);
  o = biz;
  json_object_set_new(s->out, "business", o);
  free(q);
  s->data = NULL;
  bd_seed_next(s);
}

static void biz_seed(bd_seed_t *s) {
  biz_seed_t *q = bd_calloc(1, sizeof *q);
  s->data = q;
  bd_token_generate(BD_BIZ_TOKEN_PREFIX, &q->admin);
  bd_token_generate(BD_BIZ_TOKEN_PREFIX, &q->sig1);
  bd_token_generate(BD_BIZ_TOKEN_PREFIX, &q->sig2);
  bd_token_generate(BD_BIZ_TOKEN_PREFIX, &q->view);
  json_t *tok = json_pack("{s:[s,s], s:[s,s], s:[s,s], s:[s,s]}", "admin", q->admin.id,
                          q->admin.secret_hash, "sig1", q->sig1.id, q->sig1.secret_hash, "sig2",
                          q->sig2.id, q->sig2.secret_hash, "view", q->view.id, q->view.secret_hash);
  char *tok_s = json_dumps(tok, JSON_COMPACT);
  json_decref(tok);
  bd_buf_t l0 = BD_BUF_INIT, l2 = BD_BUF_INIT, png[4];
  demo_layout(&l0, "Certificate of Completion", 0);
  demo_layout(&l2, "Certificate of Achievement", 2);
  bd_buf_t f0 = BD_BUF_INIT, f2 = BD_BUF_INIT;
  char lerr[256];
  if (!layout_fields(l0.data, &f0, lerr, sizeof lerr) ||
      !layout_fields(l2.data, &f2, lerr, sizeof lerr)) {
    /* a bug of ours: the demo layouts are constants */
    free(tok_s);
    bd_buf_free(&l0);
    bd_buf_free(&l2);
    bd_buf_free(&f0);
    bd_buf_free(&f2);
    free(q);
    s->data = NULL;
    bd_seed_fail(s, "business seed layout", lerr);
    return;
  }
  /* PNGs travel as hex bytea literals: text-format parameters */
  char *hex[4];
  for (int i = 0; i < 4; i++) {
    bd_buf_init(&png[i]);
    signature_png(i, &png[i]);
    hex[i] = bd_malloc(2 * png[i].len + 3);
    hex[i][0] = '\\';
    hex[i][1] = 'x';
    bd_hex_encode(hex[i] + 2, png[i].data, png[i].len);
    bd_buf_free(&png[i]);
  }
  char t[24];
  snprintf(t, sizeof t, "%lld", (long long)s->tenant_id);
  const char *p[] = {t,       s->tenant, tok_s,  l0.data, l2.data, f0.data,
                     f2.data, hex[0],    hex[1], hex[2],  hex[3]};
  bd_seed_exec(s,
               "SELECT biz_seed_demo($1::bigint, $2, $3::jsonb, $4::jsonb, $5::jsonb, $6::text[], "
               "$7::text[],"
               " $8::bytea, $9::bytea, $10::bytea, $11::bytea)",
               11, p, seed_done);
  bd_buf_free(&f0);
  bd_buf_free(&f2);
  free(tok_s);
  bd_buf_free(&l0);
  bd_buf_free(&l2);
  for (int i = 0; i < 4; i++) free(hex[i]);
}

typedef struct {
  bd_buf_t *out; /* PNG bytes */
} png_sink_t;

static cairo_status_t png_write(void *closure, const unsigned char *data, unsigned int len) {
  png_sink_t *k = closure;
  bd_buf_append(k->out, data, len);
  return CAIRO_STATUS_SUCCESS;
}

static void signature_png(int k, bd_buf_t *out) {
  const int w = 240, h = 80;
  cairo_surface_t *sf = cairo_image_surface_create(CAIRO_FORMAT_ARGB32, w, h);
  cairo_t *cr = cairo_create(sf);
  cairo_set_source_rgba(cr, 0, 0, 0, 0);
  cairo_paint(cr);
  cairo_set_source_rgb(cr, 0.05, 0.1, 0.35);
  cairo_set_line_width(cr, 2.5);
  cairo_set_line_cap(cr, CAIRO_LINE_CAP_ROUND);
  cairo_move_to(cr, 12, 55);
  /* a loopy stroke: a sum of sines with a per-signer phase */
  for (int x = 12; x < w - 12; x += 2) {
    double y = 45 + 18 * sin(x * (0.07 + 0.01 * k) + k) + 8 * sin(x * 0.23 + 2 * k);
    cairo_line_to(cr, x, y);
  }
  cairo_stroke(cr);
  cairo_move_to(cr, 20, 68);
  cairo_line_to(cr, w - 30, 66);
  cairo_set_line_width(cr, 1.2);
  cairo_stroke(cr);
  cairo_destroy(cr);
  png_sink_t sink = {out};
  if (cairo_surface_write_to_png_stream(sf, png_write, &sink) != CAIRO_STATUS_SUCCESS)
    bd_buf_reset(out);
  cairo_surface_destroy(sf);
}

/* --- surface ------------------------------------------------------------------ */

static const bd_route_t routes[] = {
    {"GET", "/business/certificate-templates", tpl_list, 0, NULL},
    {"POST", "/business/certificate-templates", bd_biz_template_create, 0, NULL},
    {"GET", "/business/certificate-templates/{templateId}", tpl_get, 0, NULL},
  {"GET", "/business/certificate-templates/{templateId}/screenshot.png", bd_biz_template_screenshot, 0, NULL},
    {"POST", "/business/batches", bd_biz_batch_create, BD_ROUTE_STREAM | BD_ROUTE_UPLOAD, NULL},
    {"GET", "/business/batches", bd_biz_batch_list, 0, NULL},
    {"GET", "/business/batches/{batchId}", bd_biz_batch_get, 0, NULL},
    {"POST", "/business/batches/{batchId}/approve", bd_biz_batch_approve, 0, NULL},
    {"GET", "/business/batches/{batchId}/errors.csv", bd_biz_batch_errors, 0, NULL},
};

const bd_surface_def_t bd_surface_business = {"business", routes, BD_ARRAY_LEN(routes),
                                              NULL,       NULL,   biz_seed};

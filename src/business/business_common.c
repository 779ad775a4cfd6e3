/* business_common.c: what every /business handler shares (vec.digital
 * business API): permissions, token authentication, error bodies, Laravel
 * validation errors, the Laravel paginator and the answer of a list query
 * (bd_biz_send_page).
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
#include "idem.h"
#include "json.h"
#include "log.h"
#include "util.h"

#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

/* --- permissions ----------------------------------------------------------- */

static const char *const g_perm_names[] = {
    "batches:view",     "batches:create",    "batches:approve",     "templates:view",
    "templates:manage", "certificates:view", "certificates:manage", "webhooks:manage",
};

void bd_biz_inst_str(const bd_biz_caller_t *caller, char out[24]) {
  snprintf(out, 24, "%lld", (long long)caller->institution_id);
}

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
  bd_resp_error(req, 500, "SERVER_ERROR", BD_BIZ_SERVER_ERROR_MESSAGE, NULL);
}

/* Laravel-shaped bodies: {"message", ...} with "error", "required_permission",
 * "error_code" or "errors" as vec.digital answers them. */
void bd_biz_format_error(const bd_req_t *req, int status, const char *code, const char *message,
                         const char *param, bd_buf_t *out) {
  bd_jw_t w;
  bd_jw_init(&w, out);
  bd_jw_obj(&w);
  if (status == 401) {
    bd_jw_kstr(&w, "message", "Unauthorized - Invalid API token");
  } else if (status == 403) {
    bd_jw_kstr(&w, "message", "Forbidden - Insufficient permissions");
    bd_jw_kstr(&w, "required_permission", param ? param : "");
  } else if (status >= 500 && status != 503) {
    bd_jw_kstr(&w, "message", BD_BIZ_SERVER_ERROR_MESSAGE);
    bd_jw_kstr(&w, "error_code", "SERVER_ERROR");
  } else if (status == 422) {
    bd_jw_kstr(&w, "message", message);
    bd_jw_key(&w, "errors");
    bd_jw_obj(&w);
    bd_jw_key(&w, param ? param : (code ? code : "request"));
    bd_jw_arr(&w);
    bd_jw_str(&w, message);
    bd_jw_arr_end(&w);
    bd_jw_obj_end(&w);
  } else {
    bd_jw_kstr(&w, "message", message);
    bd_jw_kstr(&w, "error", status == 404 ? "resource_not_found" : code);
  }
  bd_jw_kstr(&w, "request_id", req->request_id);
  bd_jw_obj_end(&w);
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
  if (!bd_app_query(req, &S_TOKEN, 1, p, on_token, a)) free(a);
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

void bd_biz_send_page(bd_req_t *req, const bd_pg_result_t *r, const bd_biz_page_t *pg,
                      const char *extra_query) {
  if (r->err) {
    bd_app_db_error(req, r);
    return;
  }
  bd_buf_t b = BD_BUF_INIT;
  bd_biz_paginate(&b, req, pg, strtoll(PQgetvalue(r->res, 0, 0), NULL, 10),
                  PQgetvalue(r->res, 0, 1), (size_t)strtoull(PQgetvalue(r->res, 0, 2), NULL, 10),
                  extra_query);
  bd_resp_json(req, 200, &b);
}

bd_cert_signatory_t bd_biz_signatory(const json_t *s, bd_cert_image_t **img) {
  *img = NULL;
  const char *hex = json_string_value(json_object_get(s, "signature_hex"));
  if (hex && *hex) {
    size_t hl = strlen(hex), bl = 0;
    unsigned char *png = bd_malloc(hl / 2 + 1);
    char err[200];
    if (sodium_hex2bin(png, hl / 2 + 1, hex, hl, NULL, &bl, NULL) == 0)
      *img = bd_cert_image_decode(png, bl, err, sizeof err); /* NULL: drawn without */
    free(png);
  }
  const char *name = json_string_value(json_object_get(s, "name"));
  return (bd_cert_signatory_t){name ? name : "", json_string_value(json_object_get(s, "designation")), *img};
}

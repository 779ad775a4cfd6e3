/* business_webhooks.c: webhook endpoints of an institution, Laravel style
 * (permission webhooks:manage, {data: …} envelopes, the paginator, 422 with
 * every error). Rows of bd_webhook_endpoints with surface 'business' and
 * owner = the institution id; the core delivers (webhooks.h), and the
 * events are emitted by the SQL of each state change (018):
 * batch.waiting_for_approval, batch.processing, batch.completed,
 * batch.partially_completed, batch.failed, certificate.revoked.
 *
 *   POST   /business/webhooks                        {url, events, description?} → 201, secret once
 *   GET    /business/webhooks                        paginator
 *   GET    /business/webhooks/{id}
 *   PATCH  /business/webhooks/{id}                   url, events, description, is_active
 *   DELETE /business/webhooks/{id}
 *   POST   /business/webhooks/{id}/rotate-secret     a new secret, once; the old one stops signing
 *   GET    /business/webhooks/{id}/deliveries        paginator, newest first
 *   POST   /business/webhooks/{id}/deliveries/{delivery_id}/retry
 */
#include "business.h"

#include "app.h"
#include "json.h"
#include "util.h"
#include "webhooks.h"

#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const k_events[] = {"batch.waiting_for_approval", "batch.processing", "batch.completed",
                                       "batch.partially_completed",  "batch.failed",     "certificate.revoked"};

#define MAX_DESCRIPTION 500

typedef struct {
  bd_biz_page_t pg;
  char extra[64];
  char *secret; /* shown once (create, rotate) */
  char id[80];
} whctx_t;

static void wh_free(void *arg) {
  whctx_t *c = arg;
  if (c->secret) sodium_memzero(c->secret, strlen(c->secret));
  free(c->secret);
  free(c);
}

static whctx_t *whctx(bd_req_t *req) {
  whctx_t *c = bd_calloc(1, sizeof *c);
  req->ctx = c;
  bd_req_defer(req, wh_free, c);
  return c;
}

/* The path's webhook id into c->id; false (404 sent) when it cannot be one. */
static bool path_id(bd_req_t *req, whctx_t *c, int i) {
  const char *id = bd_req_param(req, i);
  snprintf(c->id, sizeof c->id, "%s", id);
  if (strlen(id) <= 64 && !strncmp(id, "wh_", 3)) return true;
  bd_biz_not_found(req, id);
  return false;
}

/* Sends {data: row} with the secret added when there is one. */
static void send_endpoint(bd_req_t *req, const bd_pg_result_t *r, int status) {
  whctx_t *c = req->ctx;
  if (r->err) {
    bd_app_db_error(req, r);
    return;
  }
  if (PQntuples(r->res) != 1 || PQgetisnull(r->res, 0, 0)) {
    bd_biz_not_found(req, c->id);
    return;
  }
  if (!c->secret) {
    bd_biz_send_data(req, status, PQgetvalue(r->res, 0, 0));
    return;
  }
  json_t *o = json_loads(PQgetvalue(r->res, 0, 0), 0, NULL);
  json_object_set_new(o, "secret", json_string(c->secret));
  char *text = json_dumps(o, JSON_COMPACT);
  bd_biz_send_data(req, status, text);
  free(text);
  json_decref(o);
}

/* --- validation ------------------------------------------------------------------ */

/* The JSON object body, or NULL after a 422. */
static json_t *body_object(bd_req_t *req) {
  json_error_t jerr;
  const char *b = req->body.data ? req->body.data : "";
  json_t *o = bd_json_depth(b, req->body.len) <= bd_app.cfg.max_json_depth
                  ? json_loadb(b, req->body.len, JSON_REJECT_DUPLICATES, &jerr)
                  : NULL;
  if (!json_is_object(o)) {
    json_decref(o);
    bd_biz_errors_t e;
    bd_biz_errors_init(&e);
    bd_biz_errors_add(&e, "body", "The request body must be a JSON object.");
    bd_biz_errors_send(req, &e);
    return NULL;
  }
  return o;
}

/* url, events, description, is_active of body into the out parameters
 * (NULL / -1 when absent); `create` makes url and events required. */
static void rules(json_t *body, bool create, bd_biz_errors_t *e, const char **url, bd_buf_t *events,
                  bool *has_desc, const char **desc, int *active) {
  json_t *u = json_object_get(body, "url");
  *url = NULL;
  if (!u || json_is_null(u)) {
    if (create) bd_biz_errors_add(e, "url", "The url field is required.");
  } else if (!json_is_string(u)) {
    bd_biz_errors_add(e, "url", "The url field must be a string.");
  } else {
    const char *why = bd_webhook_url_problem(json_string_value(u));
    if (why) bd_biz_errors_add(e, "url", "The url field is invalid: %s.", why);
    else *url = json_string_value(u);
  }
  json_t *ev = json_object_get(body, "events");
  if (!ev || json_is_null(ev)) {
    if (create) bd_biz_errors_add(e, "events", "The events field is required.");
  } else if (!json_is_array(ev) || json_array_size(ev) == 0) {
    bd_biz_errors_add(e, "events", "The events field must be a non-empty array.");
  } else if (json_array_size(ev) > 32) {
    bd_biz_errors_add(e, "events", "The events field must not have more than 32 items.");
  } else {
    size_t i;
    json_t *x;
    bd_buf_putc(events, '{');
    json_array_foreach(ev, i, x) {
      const char *s = json_string_value(x);
      bool known = s && !strcmp(s, "*");
      for (size_t k = 0; s && k < BD_ARRAY_LEN(k_events); k++) known |= !strcmp(s, k_events[k]);
      bool dup = false;
      for (size_t j = 0; j < i && known; j++) dup |= json_equal(x, json_array_get(ev, j));
      if (!known) bd_biz_errors_add(e, "events", "The selected events.%zu is invalid.", i);
      else if (dup) bd_biz_errors_add(e, "events", "The events.%zu field has a duplicate value.", i);
      else bd_buf_printf(events, "%s%s", events->len > 1 ? "," : "", s);
    }
    bd_buf_putc(events, '}');
  }
  json_t *d = json_object_get(body, "description");
  *has_desc = d != NULL;
  *desc = NULL;
  if (d && !json_is_null(d)) {
    if (!json_is_string(d)) bd_biz_errors_add(e, "description", "The description field must be a string.");
    else if (json_string_length(d) > MAX_DESCRIPTION)
      bd_biz_errors_add(e, "description", "The description field must not be greater than %d characters.",
                        MAX_DESCRIPTION);
    else *desc = json_string_value(d);
  }
  json_t *a = json_object_get(body, "is_active");
  *active = -1;
  if (a && !json_is_null(a)) {
    if (!json_is_boolean(a)) bd_biz_errors_add(e, "is_active", "The is active field must be true or false.");
    else *active = json_is_true(a);
  }
}

/* --- create ---------------------------------------------------------------------------- */

static bd_pg_stmt_t S_CREATE = BD_PG_STMT(
    "WITH c AS (SELECT count(*) AS n FROM bd_webhook_endpoints WHERE surface = 'business' AND owner = $1"
    "  AND deleted_at IS NULL),"
    " i AS (INSERT INTO bd_webhook_endpoints (id, surface, owner, url, events, description, secret_sealed)"
    "  SELECT $2, 'business', $1, $3, $4::text[], $5, $6::bytea FROM c WHERE c.n < $7::int RETURNING *)"
    " SELECT bd_webhook_endpoint_json(i)::text FROM i");

static void on_created(void *ud, const bd_pg_result_t *r) {
  bd_req_t *req = ud;
  if (!r->err && PQntuples(r->res) == 0) {
    bd_biz_errors_t e;
    bd_biz_errors_init(&e);
    bd_biz_errors_add(&e, "url", "The institution already has the maximum of %lld webhook endpoints.",
                      (long long)bd_app.cfg.max_webhooks);
    bd_biz_errors_send(req, &e);
  } else {
    send_endpoint(req, r, 201);
  }
  bd_req_release(req);
}

static void create_authed(bd_req_t *req, const bd_biz_caller_t *caller) {
  whctx_t *c = whctx(req);
  json_t *body = body_object(req);
  if (!body) return;
  bd_biz_errors_t e;
  bd_biz_errors_init(&e);
  const char *url, *desc;
  bool has_desc;
  int active;
  bd_buf_t events = BD_BUF_INIT;
  rules(body, true, &e, &url, &events, &has_desc, &desc, &active);
  if (e.n) {
    bd_buf_free(&events);
    json_decref(body);
    bd_biz_errors_send(req, &e);
    return;
  }
  bd_biz_errors_free(&e);
  char secret[BD_WEBHOOK_SECRET_MAX], err[256];
  bd_buf_t sealed = BD_BUF_INIT;
  if (bd_webhook_secret_new(secret, &sealed, err, sizeof err) != 0) {
    bd_buf_free(&events);
    json_decref(body);
    bd_biz_server_error(req, err);
    return;
  }
  c->secret = bd_strdup(secret);
  sodium_memzero(secret, sizeof secret);
  char inst[24], id[32] = "wh_", max[24];
  bd_biz_inst_str(caller, inst);
  bd_rand_base62(id + 3, 24);
  snprintf(c->id, sizeof c->id, "%s", id);
  snprintf(max, sizeof max, "%lld", (long long)bd_app.cfg.max_webhooks);
  const char *p[] = {inst, id, url, events.data, desc, sealed.data, max};
  bd_app_query(req, &S_CREATE, 7, p, on_created, req);
  bd_buf_free(&events);
  bd_buf_free(&sealed);
  json_decref(body);
}

void bd_biz_webhook_create(bd_req_t *req) { bd_biz_authenticate(req, "webhooks:manage", create_authed); }

/* --- list, get ---------------------------------------------------------------------------- */

static bd_pg_stmt_t S_LIST = BD_PG_STMT(
    "SELECT (SELECT count(*) FROM bd_webhook_endpoints WHERE surface = 'business' AND owner = $1"
    "   AND deleted_at IS NULL),"
    " coalesce(json_agg(bd_webhook_endpoint_json(s.e) ORDER BY (s.e).created_at DESC, (s.e).id DESC), '[]'),"
    " count(*)"
    " FROM (SELECT e FROM bd_webhook_endpoints e WHERE e.surface = 'business' AND e.owner = $1"
    "   AND e.deleted_at IS NULL ORDER BY e.created_at DESC, e.id DESC LIMIT $2::bigint OFFSET $3::bigint) s");

static void on_page(void *ud, const bd_pg_result_t *r) {
  bd_req_t *req = ud;
  whctx_t *c = req->ctx;
  bd_biz_send_page(req, r, &c->pg, c->extra);
  bd_req_release(req);
}

/* page/per_page of the query string; false after a 422. */
static bool paging(bd_req_t *req, whctx_t *c, char lim[24], char offs[24]) {
  bd_biz_errors_t e;
  bd_biz_errors_init(&e);
  bd_biz_page_parse(req, &c->pg, &e);
  if (e.n) {
    bd_biz_errors_send(req, &e);
    return false;
  }
  if (c->pg.per_page != BD_BIZ_PER_PAGE_DEFAULT)
    snprintf(c->extra, sizeof c->extra, "&per_page=%lld", (long long)c->pg.per_page);
  snprintf(lim, 24, "%lld", (long long)c->pg.per_page);
  snprintf(offs, 24, "%lld", (long long)c->pg.offset);
  return true;
}

static void list_authed(bd_req_t *req, const bd_biz_caller_t *caller) {
  whctx_t *c = whctx(req);
  char inst[24], lim[24], offs[24];
  if (!paging(req, c, lim, offs)) return;
  bd_biz_inst_str(caller, inst);
  const char *p[] = {inst, lim, offs};
  bd_app_query(req, &S_LIST, 3, p, on_page, req);
}

void bd_biz_webhook_list(bd_req_t *req) { bd_biz_authenticate(req, "webhooks:manage", list_authed); }

static bd_pg_stmt_t S_GET = BD_PG_STMT(
    "SELECT bd_webhook_endpoint_json(e)::text FROM bd_webhook_endpoints e WHERE e.id = $1"
    " AND e.surface = 'business' AND e.owner = $2 AND e.deleted_at IS NULL");

static void on_one(void *ud, const bd_pg_result_t *r) {
  bd_req_t *req = ud;
  send_endpoint(req, r, 200);
  bd_req_release(req);
}

/* A statement of ($1 the path's webhook id, $2 the caller's institution). */
static void by_id(bd_req_t *req, const bd_biz_caller_t *caller, bd_pg_stmt_t *st, bd_pg_cb cb) {
  whctx_t *c = whctx(req);
  if (!path_id(req, c, 0)) return;
  char inst[24];
  bd_biz_inst_str(caller, inst);
  const char *p[] = {c->id, inst};
  bd_app_query(req, st, 2, p, cb, req);
}

static void get_authed(bd_req_t *req, const bd_biz_caller_t *caller) { by_id(req, caller, &S_GET, on_one); }

void bd_biz_webhook_get(bd_req_t *req) { bd_biz_authenticate(req, "webhooks:manage", get_authed); }

/* --- update, delete, rotate ------------------------------------------------------------------- */

static bd_pg_stmt_t S_UPDATE = BD_PG_STMT(
    "UPDATE bd_webhook_endpoints SET url = coalesce($3, url), events = coalesce($4::text[], events),"
    " description = CASE WHEN $5::boolean THEN $6 ELSE description END, is_active = coalesce($7::boolean, is_active),"
    " disabled_reason = CASE WHEN $7::boolean THEN NULL ELSE disabled_reason END,"
    " failing_since = CASE WHEN $7::boolean THEN NULL ELSE failing_since END, updated_at = now()"
    " WHERE id = $1 AND surface = 'business' AND owner = $2 AND deleted_at IS NULL"
    " RETURNING bd_webhook_endpoint_json(bd_webhook_endpoints.*)::text");

static void update_authed(bd_req_t *req, const bd_biz_caller_t *caller) {
  whctx_t *c = whctx(req);
  if (!path_id(req, c, 0)) return;
  json_t *body = body_object(req);
  if (!body) return;
  bd_biz_errors_t e;
  bd_biz_errors_init(&e);
  const char *url, *desc;
  bool has_desc;
  int active;
  bd_buf_t events = BD_BUF_INIT;
  rules(body, false, &e, &url, &events, &has_desc, &desc, &active);
  if (e.n) {
    bd_buf_free(&events);
    json_decref(body);
    bd_biz_errors_send(req, &e);
    return;
  }
  bd_biz_errors_free(&e);
  char inst[24];
  bd_biz_inst_str(caller, inst);
  const char *p[] = {c->id, inst, url, events.len ? events.data : NULL, has_desc ? "t" : "f", desc,
                     active < 0 ? NULL : active ? "t" : "f"};
  bd_app_query(req, &S_UPDATE, 7, p, on_one, req);
  bd_buf_free(&events);
  json_decref(body);
}

void bd_biz_webhook_update(bd_req_t *req) { bd_biz_authenticate(req, "webhooks:manage", update_authed); }

static bd_pg_stmt_t S_DELETE = BD_PG_STMT(
    "UPDATE bd_webhook_endpoints SET deleted_at = now(), is_active = false, updated_at = now()"
    " WHERE id = $1 AND surface = 'business' AND owner = $2 AND deleted_at IS NULL RETURNING id");

static void on_deleted(void *ud, const bd_pg_result_t *r) {
  bd_req_t *req = ud;
  whctx_t *c = req->ctx;
  if (r->err) {
    bd_app_db_error(req, r);
  } else if (PQntuples(r->res) != 1) {
    bd_biz_not_found(req, c->id);
  } else {
    bd_buf_t b = BD_BUF_INIT;
    bd_jw_t w;
    bd_jw_init(&w, &b);
    bd_jw_obj(&w);
    bd_jw_kstr(&w, "message", "Webhook endpoint deleted successfully.");
    bd_jw_key(&w, "data");
    bd_jw_obj(&w);
    bd_jw_kstr(&w, "id", c->id);
    bd_jw_kbool(&w, "deleted", true);
    bd_jw_obj_end(&w);
    bd_jw_obj_end(&w);
    bd_resp_json(req, 200, &b);
  }
  bd_req_release(req);
}

static void delete_authed(bd_req_t *req, const bd_biz_caller_t *caller) { by_id(req, caller, &S_DELETE, on_deleted); }

void bd_biz_webhook_delete(bd_req_t *req) { bd_biz_authenticate(req, "webhooks:manage", delete_authed); }

static bd_pg_stmt_t S_ROTATE = BD_PG_STMT(
    "UPDATE bd_webhook_endpoints SET secret_sealed = $3::bytea, updated_at = now()"
    " WHERE id = $1 AND surface = 'business' AND owner = $2 AND deleted_at IS NULL"
    " RETURNING bd_webhook_endpoint_json(bd_webhook_endpoints.*)::text");

static void rotate_authed(bd_req_t *req, const bd_biz_caller_t *caller) {
  whctx_t *c = whctx(req);
  if (!path_id(req, c, 0)) return;
  char secret[BD_WEBHOOK_SECRET_MAX], err[256];
  bd_buf_t sealed = BD_BUF_INIT;
  if (bd_webhook_secret_new(secret, &sealed, err, sizeof err) != 0) {
    bd_biz_server_error(req, err);
    return;
  }
  c->secret = bd_strdup(secret);
  sodium_memzero(secret, sizeof secret);
  char inst[24];
  bd_biz_inst_str(caller, inst);
  const char *p[] = {c->id, inst, sealed.data};
  bd_app_query(req, &S_ROTATE, 3, p, on_one, req);
  bd_buf_free(&sealed);
}

void bd_biz_webhook_rotate(bd_req_t *req) { bd_biz_authenticate(req, "webhooks:manage", rotate_authed); }

/* --- deliveries ---------------------------------------------------------------------------------- */

static bd_pg_stmt_t S_DELIVERIES = BD_PG_STMT(
    "SELECT (SELECT count(*) FROM bd_webhook_deliveries d WHERE d.endpoint_id = e.id),"
    " (SELECT coalesce(json_agg(bd_webhook_delivery_json(s.d) ORDER BY (s.d).created_at DESC, (s.d).id DESC), '[]')"
    "  FROM (SELECT d FROM bd_webhook_deliveries d WHERE d.endpoint_id = e.id"
    "        ORDER BY d.created_at DESC, d.id DESC LIMIT $3::bigint OFFSET $4::bigint) s),"
    " (SELECT count(*) FROM (SELECT 1 FROM bd_webhook_deliveries d WHERE d.endpoint_id = e.id"
    "        ORDER BY d.created_at DESC, d.id DESC LIMIT $3::bigint OFFSET $4::bigint) s)"
    " FROM bd_webhook_endpoints e WHERE e.id = $1 AND e.surface = 'business' AND e.owner = $2"
    " AND e.deleted_at IS NULL");

static void on_deliveries(void *ud, const bd_pg_result_t *r) {
  bd_req_t *req = ud;
  whctx_t *c = req->ctx;
  if (!r->err && PQntuples(r->res) == 0) bd_biz_not_found(req, c->id);
  else bd_biz_send_page(req, r, &c->pg, c->extra);
  bd_req_release(req);
}

static void deliveries_authed(bd_req_t *req, const bd_biz_caller_t *caller) {
  whctx_t *c = whctx(req);
  if (!path_id(req, c, 0)) return;
  char inst[24], lim[24], offs[24];
  if (!paging(req, c, lim, offs)) return;
  bd_biz_inst_str(caller, inst);
  const char *p[] = {c->id, inst, lim, offs};
  bd_app_query(req, &S_DELIVERIES, 4, p, on_deliveries, req);
}

void bd_biz_webhook_deliveries(bd_req_t *req) { bd_biz_authenticate(req, "webhooks:manage", deliveries_authed); }

static bd_pg_stmt_t S_RETRY = BD_PG_STMT(
    "SELECT bd_webhook_retry(e.id, $3)::text FROM bd_webhook_endpoints e WHERE e.id = $1"
    " AND e.surface = 'business' AND e.owner = $2 AND e.deleted_at IS NULL");

static void on_retried(void *ud, const bd_pg_result_t *r) {
  bd_req_t *req = ud;
  whctx_t *c = req->ctx;
  if (r->err) {
    bd_app_db_error(req, r);
  } else if (PQntuples(r->res) != 1 || PQgetisnull(r->res, 0, 0)) {
    bd_biz_not_found(req, PQntuples(r->res) == 1 ? bd_req_param(req, 1) : c->id);
  } else {
    bd_buf_t b = BD_BUF_INIT;
    bd_buf_puts(&b, "{\"message\":\"Webhook delivery retry initiated\",\"data\":");
    bd_buf_puts(&b, PQgetvalue(r->res, 0, 0));
    bd_buf_putc(&b, '}');
    bd_resp_json(req, 200, &b);
  }
  bd_req_release(req);
}

static void retry_authed(bd_req_t *req, const bd_biz_caller_t *caller) {
  whctx_t *c = whctx(req);
  if (!path_id(req, c, 0)) return;
  char inst[24];
  bd_biz_inst_str(caller, inst);
  const char *p[] = {c->id, inst, bd_req_param(req, 1)};
  bd_app_query(req, &S_RETRY, 3, p, on_retried, req);
}

void bd_biz_webhook_retry(bd_req_t *req) { bd_biz_authenticate(req, "webhooks:manage", retry_authed); }

/* qr_webhooks.c: the QR surface's webhook endpoints (QRKit style), the
 * registration side of core/webhooks.h. qr:write manages, qr:read lists:
 *
 *   POST   /v1/webhooks                  {url, events, description?} → 201 the
 *                                        webhook_endpoint object and `secret`
 *                                        (only here)
 *   GET    /v1/webhooks                  newest first, paged as GET /v1/tokens
 *                                        (limit, opaque cursor); deleted ones
 *                                        are not listed; never a secret
 *   GET    /v1/webhooks/{id}
 *   PATCH  /v1/webhooks/{id}             url, events, description, is_active
 *   DELETE /v1/webhooks/{id}             soft delete: 200 {id, object, deleted}
 *   POST   /v1/webhooks/{id}/rotate-secret
 *                                        200 the object and its new `secret`
 *   GET    /v1/webhooks/{id}/deliveries  newest first, paged; status filter
 *   POST   /v1/webhooks/{id}/deliveries/{delivery_id}/retry
 *                                        202 the delivery, pending again
 *
 * The webhook_endpoint object (bd_webhook_endpoint_json, 015_webhooks): id
 * "wh_" + 24 base62, object, url, events, description, is_active,
 * disabled_reason (why the server disabled it, else null), created_at,
 * updated_at. A webhook_delivery (bd_webhook_delivery_json): id, object,
 * endpoint_id, event_id, event_type, status (pending, succeeded, failed),
 * attempts, response_status, error, last_attempt_at, next_attempt_at,
 * delivered_at, created_at.
 *
 * Ownership: an endpoint belongs to the workspace and the mode of the key
 * that registered it (surface 'qr', owner = the workspace id as text, mode
 * live or test), and receives only that workspace's events of that mode.
 * Another workspace's or mode's endpoint, a deleted one, and their
 * deliveries are 404.
 *
 * Rules: url as bd_webhook_url_problem allows (https unless
 * BATCHD_WEBHOOK_ALLOW_HTTP, no private address literal unless
 * BATCHD_WEBHOOK_ALLOW_PRIVATE; 400 param "url"); events a non-empty array
 * of distinct types of this surface (batch.completed, batch.failed), or
 * "*" / ["*"] for all, stored as {*} (400 param "events"); description at
 * most 500 characters or null; at most BATCHD_MAX_WEBHOOKS endpoints that
 * are not deleted per workspace and mode (409 webhook_limit_reached,
 * counted under a lock by qr_webhook_create, 017_qr_webhooks). PATCH
 * changes only the members it names (others are 400); is_active true on an
 * inactive endpoint clears disabled_reason and failing_since (the server's
 * reason and its failure clock), is_active false is a disable by its owner
 * (disabled_reason null).
 *
 * Secrets: "whsec_" + base64 of 32 random bytes (bd_webhook_secret_new),
 * stored sealed (secret_sealed), spliced into the create and rotate answers
 * here and never shown again. A rotation replaces the secret at once, with
 * no grace period: every attempt made after it is signed with the new one
 * only (an attempt already in flight may still arrive with the old one). As
 * for /v1/tokens, an Idempotency-Key makes bd_idem keep the answer, secret
 * included, for BATCHD_IDEMPOTENCY_TTL_S so that a retry gets the same one.
 * Loop thread only.
 */
#include "app.h"
#include "json.h"
#include "log.h"
#include "qr_api.h"
#include "util.h"
#include "webhooks.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>

#define DESCRIPTION_MAX 500 /* characters (code points) */

/* The event types of this surface (017_qr_webhooks emits them). */
static const char *const k_events[] = {"batch.completed", "batch.failed"};

/* --- shared ------------------------------------------------------------------------------ */

/* Sends status with the webhook_endpoint object of column 0 of res and
 * "secret" added (the object is jsonb text: it ends with '}'). */
static void send_with_secret(bd_req_t *req, int status, const PGresult *res, const char *secret) {
  const char *obj = PQgetvalue(res, 0, 0);
  size_t n = (size_t)PQgetlength(res, 0, 0);
  while (n && obj[n - 1] != '}') n--;
  if (n < 2) {
    qr_error(req, 500, "internal_error", "the webhook endpoint could not be described", NULL);
    return;
  }
  bd_buf_t b = BD_BUF_INIT;
  bd_buf_append(&b, obj, n - 1);
  bd_buf_puts(&b, ", \"secret\": ");
  bd_jw_t w;
  bd_jw_init(&w, &b);
  bd_jw_str(&w, secret);
  bd_buf_putc(&b, '}');
  bd_resp_send(req, status, "application/json; charset=utf-8", b.data, b.len);
  bd_buf_free(&b);
}

/* Per-request state of create and rotate: the new secret and its sealed
 * form (a bytea hex literal). */
typedef struct {
  char secret[BD_WEBHOOK_SECRET_MAX];
  bd_buf_t sealed;
} secret_state_t;

static void secret_state_free(void *arg) {
  secret_state_t *s = arg;
  sodium_memzero(s->secret, sizeof s->secret);
  bd_buf_free(&s->sealed);
  free(s);
}

/* A new secret in c->extra; false: answered 500. */
static bool new_secret(bd_req_t *req) {
  qr_ctx_t *c = req->ctx;
  secret_state_t *s = bd_calloc(1, sizeof *s);
  bd_req_defer(req, secret_state_free, s);
  c->extra = s;
  char err[256];
  if (bd_webhook_secret_new(s->secret, &s->sealed, err, sizeof err) != 0) {
    bd_error("webhook secret: %s", err);
    qr_error(req, 500, "internal_error", "webhook secrets cannot be sealed on this server", NULL);
    return false;
  }
  return true;
}

static void on_with_secret(void *ud, const bd_pg_result_t *r) {
  bd_req_t *req = ud;
  qr_ctx_t *c = req->ctx;
  secret_state_t *s = c->extra;
  if (r->err) bd_app_db_error(req, r);
  else if (PQntuples(r->res) == 0) qr_error(req, 404, "not_found", "No such webhook endpoint", NULL);
  else if (PQgetisnull(r->res, 0, 0)) {
    char msg[160];
    snprintf(msg, sizeof msg,
             "This workspace already has %lld webhook endpoints in %s mode (BATCHD_MAX_WEBHOOKS): delete one first",
             (long long)bd_app.cfg.max_webhooks, c->mode_s);
    qr_error(req, 409, "webhook_limit_reached", msg, NULL);
  } else {
    send_with_secret(req, c->ok_status, r->res, s->secret);
  }
  bd_req_release(req);
}

/* url: a string bd_webhook_url_problem accepts; false: answered 400. */
static bool valid_url(bd_req_t *req, json_t *v) {
  if (!json_is_string(v)) {
    qr_error(req, 400, "invalid_request", "url is required: an absolute https URL", "url");
    return false;
  }
  const char *problem = bd_webhook_url_problem(json_string_value(v));
  if (problem) {
    qr_error(req, 400, "invalid_request", problem, "url");
    return false;
  }
  return true;
}

/* events: distinct known types, or "*" / ["*"], as a text[] literal into
 * out; false: answered 400. */
static bool parse_events(bd_req_t *req, json_t *v, bd_buf_t *out) {
  static const char *usage =
      "events is required: a non-empty array of distinct event types (batch.completed, batch.failed), or \"*\"";
  if (json_is_string(v) && !strcmp(json_string_value(v), "*")) {
    bd_buf_puts(out, "{\"*\"}");
    return true;
  }
  if (!json_is_array(v) || json_array_size(v) == 0) {
    qr_error(req, 400, "invalid_request", usage, "events");
    return false;
  }
  char msg[200];
  uint32_t seen = 0;
  size_t i;
  json_t *e;
  json_array_foreach(v, i, e) {
    const char *name = json_string_value(e);
    if (name && !strcmp(name, "*")) {
      if (json_array_size(v) == 1) {
        bd_buf_puts(out, "{\"*\"}");
        return true;
      }
      qr_error(req, 400, "invalid_request", "\"*\" subscribes to every event: give it alone", "events");
      return false;
    }
    size_t k = 0;
    while (name && k < BD_ARRAY_LEN(k_events) && strcmp(name, k_events[k])) k++;
    if (!name || k == BD_ARRAY_LEN(k_events)) {
      snprintf(msg, sizeof msg, "events[%zu] is not an event type of this API (batch.completed, batch.failed, \"*\")",
               i);
      qr_error(req, 400, "invalid_request", msg, "events");
      return false;
    }
    if (seen & (1u << k)) {
      snprintf(msg, sizeof msg, "events[%zu]: %s is listed twice", i, name);
      qr_error(req, 400, "invalid_request", msg, "events");
      return false;
    }
    seen |= 1u << k;
  }
  bd_buf_putc(out, '{');
  bool first = true;
  json_array_foreach(v, i, e) { /* in the request's order */
    bd_buf_printf(out, "%s\"%s\"", first ? "" : ",", json_string_value(e));
    first = false;
  }
  bd_buf_putc(out, '}');
  return true;
}

/* description: absent (*set false), null or a string of at most
 * DESCRIPTION_MAX characters; false: answered 400. */
static bool parse_description(bd_req_t *req, json_t *body, bool *set, const char **out) {
  json_t *v = json_object_get(body, "description");
  *set = v != NULL;
  *out = NULL;
  if (!v || json_is_null(v)) return true;
  size_t chars = 0;
  if (json_is_string(v))
    for (const char *p = json_string_value(v); *p; p++) chars += ((unsigned char)*p & 0xc0) != 0x80;
  if (!json_is_string(v) || chars > DESCRIPTION_MAX) {
    qr_error(req, 400, "invalid_request", "description must be a string of at most 500 characters, or null",
             "description");
    return false;
  }
  *out = json_string_value(v);
  return true;
}

/* --- POST /v1/webhooks ---------------------------------------------------------------------- */

static bd_pg_stmt_t S_CREATE = BD_PG_STMT(
    "SELECT qr_webhook_create($1, $2, $3, $4, $5::text[], $6, $7::bytea, $8::int)::text");

static void create_webhook(bd_req_t *req) {
  qr_ctx_t *c = req->ctx;
  if (!qr_parse_body(req)) return;
  json_t *body = c->body;
  const char *key;
  json_t *val;
  json_object_foreach(body, key, val) {
    if (strcmp(key, "url") && strcmp(key, "events") && strcmp(key, "description")) {
      char msg[200];
      snprintf(msg, sizeof msg, "%.64s is not a member of a webhook endpoint (url, events, description)", key);
      qr_error(req, 400, "invalid_request", msg, key);
      return;
    }
  }
  json_t *url = json_object_get(body, "url");
  if (!valid_url(req, url)) return;
  bd_buf_t events = BD_BUF_INIT;
  bool desc_set;
  const char *desc;
  if (!parse_events(req, json_object_get(body, "events"), &events) ||
      !parse_description(req, body, &desc_set, &desc) || !new_secret(req)) {
    bd_buf_free(&events);
    return;
  }
  secret_state_t *s = c->extra;
  char id[32] = "wh_";
  bd_rand_base62(id + 3, 24);
  char max[24];
  snprintf(max, sizeof max, "%lld", (long long)bd_app.cfg.max_webhooks);
  qr_ws_params(c);
  c->ok_status = 201;
  const char *p[] = {id, c->ws_s, c->mode_s, json_string_value(url), events.data, desc, s->sealed.data, max};
  bd_app_query(req, &S_CREATE, 8, p, on_with_secret, req);
  bd_buf_free(&events);
}

/* --- GET /v1/webhooks, GET /v1/webhooks/{id} ---------------------------------------------------- */

/* Keyset pagination on (created_at, id), newest first, as GET /v1/tokens
 * (the index bd_webhook_endpoints_owner). */
static bd_pg_stmt_t S_LIST = BD_PG_STMT(
    "WITH page AS (SELECT * FROM bd_webhook_endpoints WHERE surface = 'qr' AND owner = $1 AND mode = $2"
    " AND deleted_at IS NULL"
    " AND ($3::text IS NULL OR (created_at, id) < (left($3, length($3) - strpos(reverse($3), '|'))::timestamptz,"
    "   right($3, strpos(reverse($3), '|') - 1)))"
    " ORDER BY created_at DESC, id DESC LIMIT $4::int + 1),"
    " lim AS (SELECT * FROM page ORDER BY created_at DESC, id DESC LIMIT $4::int)"
    " SELECT jsonb_build_object('object', 'list',"
    "  'data', coalesce((SELECT jsonb_agg(bd_webhook_endpoint_json(l) ORDER BY l.created_at DESC, l.id DESC)"
    "   FROM lim l), '[]'),"
    "  'has_more', (SELECT count(*) FROM page) > $4::int,"
    "  'next_cursor', CASE WHEN (SELECT count(*) FROM page) > $4::int THEN"
    "    (SELECT to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') || '|' || id"
    "     FROM lim ORDER BY created_at ASC, id ASC LIMIT 1) END)::text");

static void list_webhooks(bd_req_t *req) {
  qr_ctx_t *c = req->ctx;
  char limit[8];
  bool has_cursor;
  if (!qr_page_params(req, limit, &c->scratch, &has_cursor, QR_KEY_TIME)) return;
  qr_ws_params(c);
  const char *p[] = {c->ws_s, c->mode_s, has_cursor ? c->scratch.data : NULL, limit};
  bd_app_query(req, &S_LIST, 4, p, qr_on_list, req);
}

static bd_pg_stmt_t S_GET = BD_PG_STMT(
    "SELECT bd_webhook_endpoint_json(e)::text FROM bd_webhook_endpoints e WHERE e.id = $1 AND e.surface = 'qr'"
    " AND e.owner = $2 AND e.mode = $3 AND e.deleted_at IS NULL");

static void get_webhook(bd_req_t *req) {
  qr_ctx_t *c = req->ctx;
  qr_ws_params(c);
  const char *p[] = {bd_req_param(req, 0), c->ws_s, c->mode_s};
  qr_query_json(req, &S_GET, 3, p, 200, "webhook endpoint");
}

/* --- PATCH /v1/webhooks/{id} ------------------------------------------------------------------- */

/* NULL parameters keep the stored value; $6 says whether description is
 * set ($7, NULL clears it). An explicit is_active clears disabled_reason
 * (false: disabled by its owner); true on an inactive endpoint also ends
 * its failure clock. */
static bd_pg_stmt_t S_PATCH = BD_PG_STMT(
    "UPDATE bd_webhook_endpoints e SET url = coalesce($4, e.url), events = coalesce($5::text[], e.events),"
    " description = CASE WHEN $6::boolean THEN $7 ELSE e.description END,"
    " is_active = coalesce($8::boolean, e.is_active),"
    " disabled_reason = CASE WHEN $8::boolean IS NULL THEN e.disabled_reason END,"
    " failing_since = CASE WHEN $8::boolean AND NOT e.is_active THEN NULL ELSE e.failing_since END,"
    " updated_at = now()"
    " WHERE e.id = $1 AND e.surface = 'qr' AND e.owner = $2 AND e.mode = $3 AND e.deleted_at IS NULL"
    " RETURNING bd_webhook_endpoint_json(e)::text");

static void patch_webhook(bd_req_t *req) {
  qr_ctx_t *c = req->ctx;
  if (!qr_parse_body(req)) return;
  json_t *body = c->body;
  const char *key;
  json_t *val;
  json_object_foreach(body, key, val) {
    if (strcmp(key, "url") && strcmp(key, "events") && strcmp(key, "description") && strcmp(key, "is_active")) {
      char msg[200];
      snprintf(msg, sizeof msg, "%.64s cannot be changed: only url, events, description and is_active", key);
      qr_error(req, 400, "invalid_request", msg, key);
      return;
    }
  }
  json_t *url = json_object_get(body, "url");
  if (url && !valid_url(req, url)) return;
  bd_buf_t events = BD_BUF_INIT;
  json_t *ev = json_object_get(body, "events");
  if (ev && !parse_events(req, ev, &events)) {
    bd_buf_free(&events);
    return;
  }
  bool desc_set;
  const char *desc;
  if (!parse_description(req, body, &desc_set, &desc)) {
    bd_buf_free(&events);
    return;
  }
  json_t *ia = json_object_get(body, "is_active");
  if (ia && !json_is_boolean(ia)) {
    bd_buf_free(&events);
    qr_error(req, 400, "invalid_request", "is_active must be a boolean", "is_active");
    return;
  }
  qr_ws_params(c);
  const char *p[] = {bd_req_param(req, 0), c->ws_s, c->mode_s, url ? json_string_value(url) : NULL,
                     ev ? events.data : NULL, desc_set ? "true" : "false", desc,
                     ia ? (json_is_true(ia) ? "true" : "false") : NULL};
  qr_query_json(req, &S_PATCH, 8, p, 200, "webhook endpoint");
  bd_buf_free(&events);
}

/* --- DELETE /v1/webhooks/{id} -------------------------------------------------------------------- */

/* Soft: the row stays for its deliveries' history; no event reaches it
 * any more (bd_webhook_emit skips deleted endpoints). */
static bd_pg_stmt_t S_DELETE = BD_PG_STMT(
    "UPDATE bd_webhook_endpoints SET deleted_at = now(), updated_at = now()"
    " WHERE id = $1 AND surface = 'qr' AND owner = $2 AND mode = $3 AND deleted_at IS NULL"
    " RETURNING jsonb_build_object('id', id, 'object', 'webhook_endpoint', 'deleted', true)::text");

static void delete_webhook(bd_req_t *req) {
  qr_ctx_t *c = req->ctx;
  qr_ws_params(c);
  const char *p[] = {bd_req_param(req, 0), c->ws_s, c->mode_s};
  qr_query_json(req, &S_DELETE, 3, p, 200, "webhook endpoint");
}

/* --- POST /v1/webhooks/{id}/rotate-secret ------------------------------------------------------------ */

static bd_pg_stmt_t S_ROTATE = BD_PG_STMT(
    "UPDATE bd_webhook_endpoints e SET secret_sealed = $4::bytea, updated_at = now()"
    " WHERE e.id = $1 AND e.surface = 'qr' AND e.owner = $2 AND e.mode = $3 AND e.deleted_at IS NULL"
    " RETURNING bd_webhook_endpoint_json(e)::text");

static void rotate_secret(bd_req_t *req) {
  qr_ctx_t *c = req->ctx;
  /* no parameters: a body, when there is one, must be an empty object (a
   * grace period asked for must not pass unnoticed) */
  if (req->body.len) {
    if (!qr_parse_body(req)) return;
    const char *key;
    json_t *val;
    json_object_foreach(c->body, key, val) {
      char msg[200];
      snprintf(msg, sizeof msg, "%.64s: rotate-secret takes no parameters (the old secret ends at once)", key);
      qr_error(req, 400, "invalid_request", msg, key);
      return;
    }
  }
  if (!new_secret(req)) return;
  secret_state_t *s = c->extra;
  qr_ws_params(c);
  c->ok_status = 200;
  const char *p[] = {bd_req_param(req, 0), c->ws_s, c->mode_s, s->sealed.data};
  bd_app_query(req, &S_ROTATE, 4, p, on_with_secret, req);
}

/* --- GET /v1/webhooks/{id}/deliveries ------------------------------------------------------------------ */

/* The endpoint must be the caller's (NULL: 404); then keyset pagination on
 * (created_at, id), newest first (the index bd_webhook_deliveries_endpoint),
 * optionally only one status ($4). */
static bd_pg_stmt_t S_DELIVERIES = BD_PG_STMT(
    "WITH ep AS (SELECT id FROM bd_webhook_endpoints WHERE id = $1 AND surface = 'qr' AND owner = $2 AND mode = $3"
    "  AND deleted_at IS NULL),"
    " page AS (SELECT d.* FROM bd_webhook_deliveries d WHERE d.endpoint_id = (SELECT id FROM ep)"
    "  AND ($4::text IS NULL OR d.state = $4)"
    "  AND ($5::text IS NULL OR (d.created_at, d.id) < (left($5, length($5) - strpos(reverse($5), '|'))::timestamptz,"
    "    right($5, strpos(reverse($5), '|') - 1)))"
    "  ORDER BY d.created_at DESC, d.id DESC LIMIT $6::int + 1),"
    " lim AS (SELECT * FROM page ORDER BY created_at DESC, id DESC LIMIT $6::int)"
    " SELECT CASE WHEN EXISTS (SELECT 1 FROM ep) THEN jsonb_build_object('object', 'list',"
    "  'data', coalesce((SELECT jsonb_agg(bd_webhook_delivery_json(l) ORDER BY l.created_at DESC, l.id DESC)"
    "   FROM lim l), '[]'),"
    "  'has_more', (SELECT count(*) FROM page) > $6::int,"
    "  'next_cursor', CASE WHEN (SELECT count(*) FROM page) > $6::int THEN"
    "    (SELECT to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') || '|' || id"
    "     FROM lim ORDER BY created_at ASC, id ASC LIMIT 1) END)::text END");

static void on_deliveries(void *ud, const bd_pg_result_t *r) {
  bd_req_t *req = ud;
  if (!r->err && (PQntuples(r->res) == 0 || PQgetisnull(r->res, 0, 0))) {
    qr_error(req, 404, "not_found", "No such webhook endpoint", NULL);
    bd_req_release(req);
    return;
  }
  qr_on_list(ud, r); /* releases */
}

static void list_deliveries(bd_req_t *req) {
  qr_ctx_t *c = req->ctx;
  bd_buf_t st = BD_BUF_INIT;
  const char *status = NULL;
  if (bd_req_query(req, "status", &st)) {
    static const char *k_status[] = {"pending", "succeeded", "failed"};
    for (size_t i = 0; i < BD_ARRAY_LEN(k_status); i++)
      if (st.data && !strcmp(st.data, k_status[i])) status = k_status[i];
    if (!status) {
      bd_buf_free(&st);
      qr_error(req, 400, "invalid_request", "status must be pending, succeeded or failed", "status");
      return;
    }
  }
  bd_buf_free(&st);
  char limit[8];
  bool has_cursor;
  if (!qr_page_params(req, limit, &c->scratch, &has_cursor, QR_KEY_TIME)) return;
  qr_ws_params(c);
  const char *p[] = {bd_req_param(req, 0), c->ws_s, c->mode_s, status, has_cursor ? c->scratch.data : NULL, limit};
  bd_app_query(req, &S_DELIVERIES, 6, p, on_deliveries, req);
}

/* --- POST /v1/webhooks/{id}/deliveries/{delivery_id}/retry ------------------------------------------------ */

/* No row: not the caller's endpoint; NULL: no such delivery of it. */
static bd_pg_stmt_t S_RETRY = BD_PG_STMT(
    "SELECT bd_webhook_retry(e.id, $4)::text FROM bd_webhook_endpoints e WHERE e.id = $1 AND e.surface = 'qr'"
    " AND e.owner = $2 AND e.mode = $3 AND e.deleted_at IS NULL");

static void on_retried(void *ud, const bd_pg_result_t *r) {
  bd_req_t *req = ud;
  bool queued = !r->err && PQntuples(r->res) == 1 && !PQgetisnull(r->res, 0, 0);
  qr_send_json_row(req, r, 202, !r->err && PQntuples(r->res) == 0 ? "webhook endpoint" : "webhook delivery");
  if (queued) bd_webhooks_kick(); /* committed: claim it here at once (the NOTIFY wakes the others) */
  bd_req_release(req);
}

static void retry_delivery(bd_req_t *req) {
  qr_ctx_t *c = req->ctx;
  qr_ws_params(c);
  const char *p[] = {bd_req_param(req, 0), c->ws_s, c->mode_s, bd_req_param(req, 1)};
  bd_app_query(req, &S_RETRY, 4, p, on_retried, req);
}

/* --- handlers with auth ------------------------------------------------------------------------------------ */

void qr_h_create_webhook(bd_req_t *req) { qr_entry_scope(req, QR_SCOPE_WRITE, create_webhook); }
void qr_h_list_webhooks(bd_req_t *req) { qr_entry_scope(req, QR_SCOPE_READ, list_webhooks); }
void qr_h_get_webhook(bd_req_t *req) { qr_entry_scope(req, QR_SCOPE_READ, get_webhook); }
void qr_h_patch_webhook(bd_req_t *req) { qr_entry_scope(req, QR_SCOPE_WRITE, patch_webhook); }
void qr_h_delete_webhook(bd_req_t *req) { qr_entry_scope(req, QR_SCOPE_WRITE, delete_webhook); }
void qr_h_rotate_webhook_secret(bd_req_t *req) { qr_entry_scope(req, QR_SCOPE_WRITE, rotate_secret); }
void qr_h_list_webhook_deliveries(bd_req_t *req) { qr_entry_scope(req, QR_SCOPE_READ, list_deliveries); }
void qr_h_retry_webhook_delivery(bd_req_t *req) { qr_entry_scope(req, QR_SCOPE_WRITE, retry_delivery); }

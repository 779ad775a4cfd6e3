/* qr_surface.c: the top of the /v1 surface (QRKit-compatible QR codes,
 * batches, templates, analytics, and the /s/{code} redirect).
 *
 * This folder (src/qr) holds:
 *   qr_surface.c   this file: route table, the paths whose errors are
 *                  QRKit-shaped and that format, start-up and shutdown,
 *                  the seed-demo section
 *   qr_common.c    request context, API keys and scopes, bodies, remote
 *                  logos, designs and templates, list pages, validated
 *                  items (qr_api.h); calls none of the files below
 *   qr_batches.c   batch intake, batch reads, the qr.batch render job
 *   qr_codes.c     single codes, PATCH/DELETE, downloads, analytics,
 *                  templates, the redirect with its cache and scan counter
 *   qr_tokens.c    the token API (/v1/tokens: create, list, rotate, revoke)
 *   qr_webhooks.c  webhook endpoints (/v1/webhooks) and their deliveries;
 *                  the events are emitted in SQL (017_qr_webhooks.sql)
 * It uses the core (src/core), the libraries (src/lib) and the QR symbol
 * library (src/render), and no other surface.
 */
#include "qr_api.h"
#include "qr_errors_doc.h"
#include "qr_usage.h"

#include "app.h"
#include "auth.h"
#include "fetch.h"
#include "json.h"
#include "surface.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>

/* The surface's error format for bd_resp_error (QRKit: {"error": {code,
 * message, param, doc_url, request_id}}; doc_url: qr_errors_doc.c). */
static void qr_format_error(const bd_req_t *req, int status, const char *code, const char *message,
                            const char *param, bd_buf_t *out) {
  bd_jw_t w;
  bd_jw_init(&w, out);
  bd_jw_obj(&w);
  bd_jw_key(&w, "error");
  bd_jw_obj(&w);
  bd_jw_kstr(&w, "code", code);
  bd_jw_kstr(&w, "message", message);
  bd_jw_kstr(&w, "param", param);
  bd_buf_t doc = BD_BUF_INIT;
  qr_doc_url(code, &doc);
  bd_jw_kstr(&w, "doc_url", doc.data);
  bd_buf_free(&doc);
  bd_jw_kstr(&w, "request_id", req->request_id);
  bd_jw_obj_end(&w);
  bd_jw_obj_end(&w);
}

/* --- seed-demo ---------------------------------------------------------------------------- */

typedef struct {
  int64_t ws;                 /* workspace id */
  bd_token_t live, test, ro;  /* issued keys */
  char tpl[32];               /* template id */
} qr_seed_t;

static void seed_done(bd_seed_t *s, PGresult *res) {
  qr_seed_t *q = s->data;
  json_t *o = json_object();
  json_object_set_new(o, "workspace_id", json_integer(q->ws));
  json_object_set_new(o, "live_key", json_string(q->live.token));
  json_object_set_new(o, "test_key", json_string(q->test.token));
  json_object_set_new(o, "read_only_key", json_string(q->ro.token));
  json_object_set_new(o, "template_id", json_string(q->tpl));
  json_object_set_new(s->out, "qr", o);
  free(q);
  s->data = NULL;
  bd_seed_next(s);
}

static void seed_tpl(bd_seed_t *s, PGresult *res) {
  qr_seed_t *q = s->data;
  snprintf(q->tpl, sizeof q->tpl, "%s", PQgetvalue(res, 0, 0));
  char ws[24];
  snprintf(ws, sizeof ws, "%lld", (long long)q->ws);
  const char *p[] = {ws, q->live.id, q->live.secret_hash, q->test.id, q->test.secret_hash, q->ro.id,
                     q->ro.secret_hash};
  bd_seed_exec(s,
               "WITH d AS (DELETE FROM qr_api_keys WHERE workspace_id = $1::bigint AND name LIKE 'demo-%')"
               " INSERT INTO qr_api_keys (id, workspace_id, mode, scopes, secret_hash, name) VALUES"
               " ($2, $1::bigint, 'live', '{qr:read,qr:write,analytics:read,tokens:manage}', $3, 'demo-live'),"
               " ($4, $1::bigint, 'test', '{qr:read,qr:write,analytics:read,tokens:manage}', $5, 'demo-test'),"
               " ($6, $1::bigint, 'live', '{qr:read}', $7, 'demo-read-only')",
               7, p, seed_done);
}

static void seed_ws(bd_seed_t *s, PGresult *res) {
  qr_seed_t *q = s->data;
  q->ws = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
  char ws[24], tpl[32] = "tpl_";
  snprintf(ws, sizeof ws, "%lld", (long long)q->ws);
  bd_rand_base62(tpl + 4, 16);
  const char *p[] = {ws, tpl};
  bd_seed_exec(s,
               "WITH e AS (SELECT id FROM qr_templates WHERE workspace_id = $1::bigint AND mode = 'live'"
               "  AND name = 'Demo brand'),"
               " i AS (INSERT INTO qr_templates (id, workspace_id, mode, name, design)"
               "  SELECT $2, $1::bigint, 'live', 'Demo brand', '{\"error_correction\":\"Q\",\"colors\":"
               "{\"foreground\":\"#1a237e\",\"background\":\"#ffffff\"},\"shapes\":{\"body\":\"rounded\","
               "\"eye_frame\":\"rounded\",\"eye_ball\":\"circle\"}}'::jsonb"
               "  WHERE NOT EXISTS (SELECT 1 FROM e) RETURNING id)"
               " SELECT id FROM e UNION ALL SELECT id FROM i",
               2, p, seed_tpl);
}

static void qr_seed(bd_seed_t *s) {
  qr_seed_t *q = bd_calloc(1, sizeof *q);
  s->data = q;
  bd_token_generate("qr_live_", &q->live);
  bd_token_generate("qr_test_", &q->test);
  bd_token_generate("qr_live_", &q->ro);
  char t[24];
  snprintf(t, sizeof t, "%lld", (long long)s->tenant_id);
  const char *p[] = {t};
  bd_seed_exec(s,
               "INSERT INTO qr_workspaces (tenant_id, name) VALUES ($1::bigint, 'default')"
               " ON CONFLICT (tenant_id, name) DO UPDATE SET name = EXCLUDED.name RETURNING id",
               1, p, seed_ws);
}

/* --- surface --------------------------------------------------------------------- */

static void init(void) {
  qr_batches_init();
  bd_fetch_init(bd_app.loop); /* remote logos (qr_common.c) */
  qr_keys_init();
  qr_codes_init();
}

static struct {
  void (*done)(void *ud);
  void *ud;
} g_flush;

static void keys_flushed(void *unused) { qr_codes_flush(g_flush.done, g_flush.ud); }

/* At shutdown, once requests have drained: no logo fetch is in flight any
 * more; then the keys' last uses and the buffered scans are written (done
 * runs after them). */
static void flush(void (*done)(void *ud), void *ud) {
  bd_fetch_close();
  g_flush.done = done;
  g_flush.ud = ud;
  qr_keys_flush(keys_flushed, NULL);
}

static const bd_route_t routes[] = {
  {"POST", "/v1/batches", qr_h_create_batch, 0, "/v1/batches"},
  {"GET", "/v1/batches", qr_h_list_batches, 0, "/v1/batches"},
  {"GET", "/v1/batches/{id}", qr_h_get_batch, 0, "/v1/batches/{id}"},
  {"POST", "/v1/qr-codes", qr_h_create_code, 0, "/v1/qr-codes"},
  {"GET", "/v1/qr-codes", qr_h_list_codes, 0, "/v1/qr-codes"},
  {"GET", "/v1/qr-codes/{id}", qr_h_get_code, 0, "/v1/qr-codes/{id}"},
  {"PATCH", "/v1/qr-codes/{id}", qr_h_patch_code, 0, "/v1/qr-codes/{id}"},
  {"DELETE", "/v1/qr-codes/{id}", qr_h_delete_code, 0, "/v1/qr-codes/{id}"},
  {"GET", "/v1/qr-codes/{id}/download", qr_h_download, 0, "/v1/qr-codes/{id}/download"},
  {"GET", "/v1/qr-codes/{id}/analytics", qr_h_analytics, 0, "/v1/qr-codes/{id}/analytics"},
  {"POST", "/v1/templates", qr_h_create_template, 0, "/v1/templates"},
  {"GET", "/v1/templates", qr_h_list_templates, 0, "/v1/templates"},
  {"POST", "/v1/tokens", qr_h_create_token, 0, "/v1/tokens"},
  {"GET", "/v1/tokens", qr_h_list_tokens, 0, "/v1/tokens"},
  {"POST", "/v1/tokens/rotate", qr_h_rotate_token, 0, "/v1/tokens/rotate"},
  {"DELETE", "/v1/tokens/{id}", qr_h_delete_token, 0, "/v1/tokens/{id}"},
  {"POST", "/v1/webhooks", qr_h_create_webhook, 0, "/v1/webhooks"},
  {"GET", "/v1/webhooks", qr_h_list_webhooks, 0, "/v1/webhooks"},
  {"GET", "/v1/webhooks/{id}", qr_h_get_webhook, 0, "/v1/webhooks/{id}"},
  {"PATCH", "/v1/webhooks/{id}", qr_h_patch_webhook, 0, "/v1/webhooks/{id}"},
  {"DELETE", "/v1/webhooks/{id}", qr_h_delete_webhook, 0, "/v1/webhooks/{id}"},
  {"POST", "/v1/webhooks/{id}/rotate-secret", qr_h_rotate_webhook_secret, 0, "/v1/webhooks/{id}/rotate-secret"},
  {"GET", "/v1/webhooks/{id}/deliveries", qr_h_list_webhook_deliveries, 0, "/v1/webhooks/{id}/deliveries"},
  {"POST", "/v1/webhooks/{id}/deliveries/{delivery_id}/retry", qr_h_retry_webhook_delivery, 0,
   "/v1/webhooks/{id}/deliveries/{delivery_id}/retry"},
  {"GET", "/s/{code}", qr_h_redirect, 0, "/s/{code}"},
  {"GET", "/docs/errors", qr_h_errors_doc, 0, "/docs/errors"},
  {"GET", "/v1/usage", qr_h_usage, 0, "/v1/usage"},
};

/* Errors under these paths are QRKit-shaped (qr_format_error). */
static const char *const error_paths[] = {"/v1/", "/v1", "/s/", NULL};

const bd_surface_def_t bd_surface_qr = {
    .name = "qr",
    .routes = routes,
    .nroutes = BD_ARRAY_LEN(routes),
    .errors = {error_paths, qr_format_error},
    .init = init,
    .flush = flush,
    .seed = qr_seed,
    .admin = &qr_admin,
};

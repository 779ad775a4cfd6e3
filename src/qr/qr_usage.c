/* qr_usage.c: plan-style limits (qr_usage.h). The administrator sets them
 * (`batchd limits set`, qr_admin.c); triggers count codes as they are
 * stored and refuse, inside the same transaction, what would go over
 * (025_qr_usage_limits.sql); this file maps that refusal to the API and
 * serves the counters. Loop thread only. */
#include "qr_usage.h"

#include "app.h"
#include "qr_api.h"

bool qr_usage_refused(bd_req_t *req, const bd_pg_result_t *r) {
  if (r->err != BD_PG_ESQL || strcmp(r->sqlstate, "QRL01") != 0) return false;
  qr_error(req, 403, "plan_limit_reached", r->message, "items");
  return true;
}

static bd_pg_stmt_t S_USAGE = BD_PG_STMT("SELECT qr_usage_json($1::bigint, $2)::text");

static void usage(bd_req_t *req) {
  qr_ctx_t *c = req->ctx;
  qr_ws_params(c);
  const char *p[] = {c->ws_s, c->mode_s};
  qr_query_json(req, &S_USAGE, 2, p, 200, "usage");
}

void qr_h_usage(bd_req_t *req) { qr_entry_scope(req, QR_SCOPE_READ, usage); }

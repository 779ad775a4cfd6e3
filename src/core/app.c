/* app.c: the global context and small helpers shared by every surface. */
#include "app.h"

#include "json.h"
#include "log.h"
#include "metrics.h"

#include <stdio.h>

bd_app_t bd_app;

bool bd_app_rate_limit(bd_req_t *req, const char *cred) {
  if (!bd_app.rl) return true;
  bd_rl_result_t r;
  bd_rl_take(bd_app.rl, bd_str_c(cred), bd_now_ms(), bd_wall_us() / 1000000, &r);
  bd_resp_header_u64(req, "X-RateLimit-Limit", r.limit);
  bd_resp_header_u64(req, "X-RateLimit-Remaining", r.remaining);
  bd_resp_header_u64(req, "X-RateLimit-Reset", r.reset_unix > 0 ? (uint64_t)r.reset_unix : 0);
  if (r.allowed) return true;
  bd_resp_headerf(req, "Retry-After", "%u", r.retry_after_s);
  bd_metrics_inc("batchd_rate_limited_total", "Requests refused with 429.", 1);
  bd_resp_error(req, 429, "rate_limit_exceeded", "Too many requests: slow down and retry after Retry-After seconds",
                NULL);
  return false;
}

void bd_app_unavailable(bd_req_t *req) {
  bd_resp_header(req, "Retry-After", "2");
  bd_metrics_inc("batchd_db_unavailable_total", "Requests answered 503 because the database was unavailable.", 1);
  bd_resp_error(req, 503, "service_unavailable", "The database is temporarily unavailable; retry shortly", NULL);
}

void bd_app_db_error(bd_req_t *req, const bd_pg_result_t *r) {
  if (r->err == BD_PG_EUNAVAIL || r->err == BD_PG_ECANCELED) {
    bd_app_unavailable(req);
    return;
  }
  /* 53xxx insufficient resources (disk full, out of memory), 57P0x admin
   * shutdown, 08xxx connection problems: the database is not able to take
   * the request right now, which is a 503, not a bug */
  if (r->sqlstate && (!strncmp(r->sqlstate, "53", 2) || !strncmp(r->sqlstate, "57P", 3) ||
                      !strncmp(r->sqlstate, "08", 2))) {
    bd_warn("database refused request %s: %s %s", req->request_id, r->sqlstate, r->message);
    bd_app_unavailable(req);
    return;
  }
  bd_error("request %s: database error %s: %s", req->request_id, r->sqlstate ? r->sqlstate : "", r->message);
  bd_resp_error(req, 500, "internal_error", "An internal error occurred", NULL);
}

bool bd_app_query(bd_req_t *req, bd_pg_stmt_t *st, int n, const char *const *params, bd_pg_cb cb, void *ud) {
  bd_req_hold(req);
  if (bd_pg_query(bd_app.pg, st, n, params, cb, ud) == 0) return true;
  bd_app_unavailable(req);
  bd_req_release(req);
  return false;
}

/* qr_usage.h: plan-style limits of a workspace and GET /v1/usage
 * (qr_usage.c; the counting is in SQL, src/sql/025_qr_usage_limits.sql).
 * Loop thread only. */
#ifndef BD_QR_USAGE_H
#define BD_QR_USAGE_H

#include "http.h"
#include "pg.h"

/* When r is the refusal of a limit (SQLSTATE QRL01, raised inside the
 * intake's transaction, so nothing was stored), answers 403
 * plan_limit_reached with the database's message and returns true; false
 * otherwise (the caller answers as usual). */
bool qr_usage_refused(bd_req_t *req, const bd_pg_result_t *r);

/* GET /v1/usage (qr:read): counts and limits of the key's workspace and
 * mode. */
void qr_h_usage(bd_req_t *req);

#endif

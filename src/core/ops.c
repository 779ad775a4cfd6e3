/* ops.c: operational endpoints: /healthz, /readyz, /metrics, /openapi.json. */
#include "app.h"
#include "jobs.h"
#include "json.h"
#include "metrics.h"
#include "migrate.h"
#include "mail.h"
#include "webhooks.h"
#include "work.h"

#include <stdio.h>
#include <stdlib.h>

extern const char bd_openapi_json[];

static void healthz(bd_req_t *req) {
  bd_buf_t b = BD_BUF_INIT;
  bd_buf_printf(&b, "{\"status\":\"ok\",\"version\":\"%s\"}", BATCHD_VERSION);
  bd_resp_json(req, 200, &b);
}

static bd_pg_stmt_t S_READY = BD_PG_STMT("SELECT coalesce(max(version), 0) FROM bd_schema_migrations");

static void on_ready_q(void *ud, const bd_pg_result_t *r) {
  bd_req_t *req = ud;
  bd_buf_t b = BD_BUF_INIT;
  int have = r->err == BD_PG_OK ? atoi(PQgetvalue(r->res, 0, 0)) : -1;
  bool ok = have >= bd_migrate_latest() && bd_app.migrated && bd_app.init_pending == 0 && !bd_app.stopping;
  bd_buf_printf(&b, "{\"status\":\"%s\",\"database\":%s,\"schema_version\":%d,\"expected_schema_version\":%d}",
                ok ? "ready" : "not_ready", r->err == BD_PG_OK ? "true" : "false", have, bd_migrate_latest());
  if (!ok) bd_resp_header(req, "Retry-After", "1");
  bd_resp_json(req, ok ? 200 : 503, &b);
  bd_req_release(req);
}

static void readyz(bd_req_t *req) {
  bd_req_hold(req);
  if (bd_pg_query(bd_app.pg, &S_READY, 0, NULL, on_ready_q, req) != 0) {
    bd_pg_result_t r = {BD_PG_EUNAVAIL, NULL, "", "queue full"};
    on_ready_q(req, &r);
  }
}

static void metrics_extra(bd_buf_t *out) {
  bd_pg_stats_t ps;
  bd_pg_pool_stats(bd_app.pg, &ps);
  bd_server_stats_t ss;
  bd_server_stats(bd_app.server, &ss);
  bd_jobs_stats_t js;
  bd_jobs_stats(&js);
  bd_buf_printf(out,
                "# TYPE batchd_connections gauge\nbatchd_connections %u\n"
                "# TYPE batchd_connections_accepted_total counter\nbatchd_connections_accepted_total %llu\n"
                "# TYPE batchd_connections_rejected_total counter\nbatchd_connections_rejected_total %llu\n"
                "# TYPE batchd_requests_in_flight gauge\nbatchd_requests_in_flight %u\n"
                "# TYPE batchd_db_pool_connections gauge\nbatchd_db_pool_connections %d\n"
                "# TYPE batchd_db_pool_connected gauge\nbatchd_db_pool_connected %d\n"
                "# TYPE batchd_db_pool_pinned gauge\nbatchd_db_pool_pinned %d\n"
                "# TYPE batchd_db_queries_in_flight gauge\nbatchd_db_queries_in_flight %d\n"
                "# TYPE batchd_db_queue_depth gauge\nbatchd_db_queue_depth %d\n"
                "# TYPE batchd_db_queries_total counter\nbatchd_db_queries_total %llu\n"
                "# TYPE batchd_db_errors_total counter\nbatchd_db_errors_total %llu\n"
                "# TYPE batchd_db_reconnects_total counter\nbatchd_db_reconnects_total %llu\n"
                "# TYPE batchd_db_up gauge\nbatchd_db_up %d\n"
                "# TYPE batchd_work_queue_depth gauge\nbatchd_work_queue_depth %zu\n"
                "# TYPE batchd_work_running gauge\nbatchd_work_running %zu\n"
                "# TYPE batchd_jobs_running gauge\nbatchd_jobs_running %d\n",
                ss.active, (unsigned long long)ss.accepted, (unsigned long long)ss.rejected, ss.inflight, ps.nconns,
                ps.connected, ps.pinned, ps.inflight, ps.queued, (unsigned long long)ps.queries,
                (unsigned long long)ps.errors, (unsigned long long)ps.reconnects, ps.up ? 1 : 0, bd_work_queued(),
                bd_work_running(), js.running);
  bd_webhooks_metrics(out);
  bd_mail_metrics(out);
}

static void metrics(bd_req_t *req) {
  bd_metrics_extra = metrics_extra;
  bd_buf_t b = BD_BUF_INIT;
  bd_metrics_render(&b);
  bd_resp_send(req, 200, "text/plain; version=0.0.4; charset=utf-8", b.data, b.len);
  bd_buf_free(&b);
}

static void openapi(bd_req_t *req) {
  bd_resp_send(req, 200, "application/json; charset=utf-8", bd_openapi_json, strlen(bd_openapi_json));
}

const bd_route_t bd_ops_routes[] = {
  {"GET", "/healthz", healthz, 0, "/healthz"},
  {"GET", "/readyz", readyz, 0, "/readyz"},
  {"GET", "/metrics", metrics, 0, "/metrics"},
  {"GET", "/openapi.json", openapi, 0, "/openapi.json"},
};
const size_t bd_ops_routes_count = BD_ARRAY_LEN(bd_ops_routes);

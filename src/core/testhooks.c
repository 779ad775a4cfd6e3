/* testhooks.c: endpoints and a job kind that exist only for the test suite.
 *
 * Enabled by BATCHD_TEST_HOOKS=1 (never in production: every route answers
 * 404 otherwise). They exercise the core mechanisms through the real server
 * and a real PostgreSQL before, and independently of, the API surfaces:
 *   POST /_test/writes        authenticated by X-Test-Credential, rate
 *                             limited, idempotent; inserts a row
 *                             (?sleep_ms=N: after N ms in the database)
 *   GET  /_test/db            one database read
 *   GET  /_test/slow?ms=N     answers after N ms (shutdown drain)
 *   POST /_test/stream        a streamed body: hashed as it arrives, reading
 *                             paused for pause_ms after every MiB (the
 *                             backpressure path of the CSV upload)
 *   GET  /_test/stream-out?bytes=N  a chunked response written under
 *                             backpressure (on_drain)
 *   job kind "test.sleep"     sleeps payload.ms on a worker thread, then
 *                             records its run in bd_test_job_runs
 *   POST /_test/webhooks/endpoints  {surface, owner, mode?, url, events}:
 *                             a webhook endpoint (URL checked as a surface
 *                             would), 201 {id, secret}
 *   POST /_test/webhooks/emit {surface, owner, mode?, type, data}: queues
 *                             the event with bd_webhook_emit, 200 {event_id}
 */
#include "app.h"
#include "idem.h"
#include "jobs.h"
#include "json.h"
#include "log.h"
#include "surface.h"
#include "util.h"
#include "webhooks.h"
#include "work.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static bool g_enabled; /* BATCHD_TEST_HOOKS=1 */

bool bd_testhooks_enabled(void) { return g_enabled; }

static bool enabled(bd_req_t *req) {
  if (g_enabled) return true;
  bd_resp_error(req, 404, "not_found", "No such endpoint", NULL);
  return false;
}

/* --- writes ---------------------------------------------------------------- */

static bd_pg_stmt_t S_WRITE = BD_PG_STMT(
    "INSERT INTO bd_test_writes(credential, body) VALUES ($1, $2) RETURNING id");

static void on_written(void *ud, const bd_pg_result_t *r) {
  bd_req_t *req = ud;
  if (r->err) {
    bd_app_db_error(req, r);
  } else {
    bd_buf_t b = BD_BUF_INIT;
    bd_buf_printf(&b, "{\"id\":%s}", PQgetvalue(r->res, 0, 0));
    bd_resp_json(req, 201, &b);
  }
  bd_req_release(req);
}

/* ?sleep_ms=N: the insert waits N ms in the database first (a database that
 * goes away while a request holds an idempotency key) */
static bd_pg_stmt_t S_WRITE_SLOW = BD_PG_STMT(
    "WITH s AS (SELECT pg_sleep($3::float8 / 1000)) INSERT INTO bd_test_writes(credential, body)"
    " SELECT $1, $2 FROM s RETURNING id");

static void do_write(bd_req_t *req) {
  bd_buf_t ms = BD_BUF_INIT;
  char msbuf[16] = "";
  if (bd_req_query(req, "sleep_ms", &ms) && ms.len && ms.len < sizeof msbuf) memcpy(msbuf, ms.data, ms.len);
  bd_buf_free(&ms);
  const char *p[] = {req->cred_id, req->body.data ? req->body.data : "", msbuf};
  bd_app_query(req, msbuf[0] ? &S_WRITE_SLOW : &S_WRITE, msbuf[0] ? 3 : 2, p, on_written, req);
}

static void writes(bd_req_t *req) {
  if (!enabled(req)) return;
  bd_str_t cred = bd_req_header(req, "X-Test-Credential");
  if (!cred.len || cred.len >= sizeof req->cred_buf) {
    bd_resp_error(req, 401, "unauthenticated", "X-Test-Credential required", NULL);
    return;
  }
  memcpy(req->cred_buf, cred.p, cred.len);
  req->cred_buf[cred.len] = '\0';
  req->cred_id = req->cred_buf;
  if (!bd_app_rate_limit(req, req->cred_id)) return;
  bd_idem_wrap(req, req->cred_id, do_write);
}

/* --- read ------------------------------------------------------------------ */

static bd_pg_stmt_t S_READ = BD_PG_STMT("SELECT count(*) FROM bd_test_writes");

static void on_read(void *ud, const bd_pg_result_t *r) {
  bd_req_t *req = ud;
  if (r->err) {
    bd_app_db_error(req, r);
  } else {
    bd_buf_t b = BD_BUF_INIT;
    bd_buf_printf(&b, "{\"writes\":%s}", PQgetvalue(r->res, 0, 0));
    bd_resp_json(req, 200, &b);
  }
  bd_req_release(req);
}

static void db(bd_req_t *req) {
  if (!enabled(req)) return;
  bd_app_query(req, &S_READ, 0, NULL, on_read, req);
}

/* --- slow ------------------------------------------------------------------ */

typedef struct {
  uv_timer_t t;   /* the delay */
  bd_req_t *req;  /* held request */
} slow_t;

static void on_slow_closed(uv_handle_t *h) { free(h->data); }

static void on_slow(uv_timer_t *t) {
  slow_t *s = t->data;
  bd_buf_t b = BD_BUF_INIT;
  bd_buf_puts(&b, "{\"slept\":true}");
  bd_resp_json(s->req, 200, &b);
  bd_req_release(s->req);
  uv_close((uv_handle_t *)&s->t, on_slow_closed);
}

static void slow(bd_req_t *req) {
  if (!enabled(req)) return;
  bd_buf_t v = BD_BUF_INIT;
  long ms = bd_req_query(req, "ms", &v) ? atol(v.data) : 1000;
  bd_buf_free(&v);
  slow_t *s = bd_calloc(1, sizeof *s);
  s->req = req;
  s->t.data = s;
  bd_req_hold(req);
  uv_timer_init(bd_app.loop, &s->t);
  uv_timer_start(&s->t, on_slow, (uint64_t)(ms < 0 ? 0 : ms), 0);
}

/* --- streamed request body ---------------------------------------------------- */

typedef struct {
  crypto_hash_sha256_state sha; /* running hash of the body */
  uint64_t bytes;               /* received */
  uint64_t next_pause;          /* pause when bytes reach this */
  long pause_ms;                /* how long each pause lasts */
  int pauses;                   /* pauses taken */
  uv_timer_t t;                 /* the pause */
  bool timer_on;                /* t initialised */
  bd_req_t *req;                /* for the timer */
} stream_in_t;

static void stream_timer_closed(uv_handle_t *h) { free(h->data); }

static void stream_free(void *arg) {
  stream_in_t *s = arg;
  if (s->timer_on) uv_close((uv_handle_t *)&s->t, stream_timer_closed);
  else free(s);
}

static void on_pause_over(uv_timer_t *t) {
  stream_in_t *s = t->data;
  bd_req_resume(s->req);
}

static void stream_body(bd_req_t *req, const char *p, size_t n) {
  stream_in_t *s = req->ctx;
  crypto_hash_sha256_update(&s->sha, (const unsigned char *)p, n);
  s->bytes += n;
  if (s->pause_ms > 0 && s->bytes >= s->next_pause) {
    s->next_pause += 1 << 20;
    s->pauses++;
    bd_req_pause(req); /* as a consumer waiting for the database would */
    uv_timer_start(&s->t, on_pause_over, (uint64_t)s->pause_ms, 0);
  }
}

static void stream_end(bd_req_t *req) {
  stream_in_t *s = req->ctx;
  unsigned char h[crypto_hash_sha256_BYTES];
  crypto_hash_sha256_final(&s->sha, h);
  char hex[65];
  sodium_bin2hex(hex, sizeof hex, h, sizeof h);
  bd_buf_t b = BD_BUF_INIT;
  bd_buf_printf(&b, "{\"bytes\":%llu,\"sha256\":\"%s\",\"pauses\":%d}", (unsigned long long)s->bytes, hex,
                s->pauses);
  bd_resp_json(req, 200, &b);
}

static void stream_abort(bd_req_t *req) {
  /* the client left or the body failed: complete the request into the void so it is freed */
  bd_resp_send(req, 400, "text/plain", "", 0);
}

static void stream_in(bd_req_t *req) {
  if (!enabled(req)) return;
  stream_in_t *s = bd_calloc(1, sizeof *s);
  crypto_hash_sha256_init(&s->sha);
  bd_buf_t v = BD_BUF_INIT;
  s->pause_ms = bd_req_query(req, "pause_ms", &v) ? atol(v.data) : 0;
  bd_buf_free(&v);
  s->next_pause = 1 << 20;
  s->req = req;
  uv_timer_init(bd_app.loop, &s->t);
  s->t.data = s;
  s->timer_on = true;
  req->ctx = s;
  bd_req_defer(req, stream_free, s);
  req->on_body = stream_body;
  req->on_body_end = stream_end;
  req->on_abort = stream_abort;
}

/* --- streamed response ---------------------------------------------------------- */

typedef struct {
  uint64_t total, sent;  /* bytes to send, sent */
  int drains;            /* times the writer waited for on_drain */
} stream_out_t;

static void stream_out_more(bd_req_t *req) {
  stream_out_t *o = req->ctx;
  char chunk[65536];
  while (o->sent < o->total) {
    if (bd_req_gone(req)) break;
    size_t n = (size_t)BD_MIN((uint64_t)sizeof chunk, o->total - o->sent);
    for (size_t i = 0; i < n; i++) chunk[i] = (char)((o->sent + i) % 251);
    o->sent += n;
    if (bd_resp_write(req, chunk, n) > (1u << 20)) {
      o->drains++;
      req->on_drain = stream_out_more; /* continue when the socket has taken it */
      return;
    }
  }
  bd_resp_end(req);
}

static void stream_out(bd_req_t *req) {
  if (!enabled(req)) return;
  stream_out_t *o = bd_req_calloc(req, sizeof *o);
  bd_buf_t v = BD_BUF_INIT;
  o->total = bd_req_query(req, "bytes", &v) ? strtoull(v.data, NULL, 10) : 0;
  bd_buf_free(&v);
  req->ctx = o;
  bd_resp_start(req, 200, "application/octet-stream", -1);
  stream_out_more(req);
}

/* --- webhooks ---------------------------------------------------------------- */

/* The request's JSON object, or NULL after answering 400. */
static json_t *body_object(bd_req_t *req) {
  json_t *o = req->body.data ? json_loadb(req->body.data, req->body.len, 0, NULL) : NULL;
  if (!json_is_object(o)) {
    json_decref(o);
    bd_resp_error(req, 400, "invalid_json", "a JSON object is required", NULL);
    return NULL;
  }
  return o;
}

static void on_endpoint_made(void *ud, const bd_pg_result_t *r) {
  bd_req_t *req = ud;
  if (r->err) {
    bd_app_db_error(req, r);
  } else {
    bd_buf_t b = BD_BUF_INIT;
    bd_jw_t w;
    bd_jw_init(&w, &b);
    bd_jw_obj(&w);
    bd_jw_kstr(&w, "id", PQgetvalue(r->res, 0, 0));
    bd_jw_kstr(&w, "secret", req->ctx);
    bd_jw_obj_end(&w);
    bd_resp_json(req, 201, &b);
  }
  bd_req_release(req);
}

static bd_pg_stmt_t S_WH_ENDPOINT = BD_PG_STMT(
    "INSERT INTO bd_webhook_endpoints (id, surface, owner, mode, url, events, secret_sealed)"
    " VALUES ($1, $2, $3, $4, $5, ARRAY(SELECT json_array_elements_text($6::json)), $7::bytea) RETURNING id");

static void wh_endpoint(bd_req_t *req) {
  if (!enabled(req)) return;
  json_t *o = body_object(req);
  if (!o) return;
  const char *url = json_string_value(json_object_get(o, "url"));
  const char *problem = url ? bd_webhook_url_problem(url) : "url is required";
  if (problem) {
    bd_resp_error(req, 422, "invalid_url", problem, "url");
    json_decref(o);
    return;
  }
  char *secret = bd_req_calloc(req, BD_WEBHOOK_SECRET_MAX);
  bd_buf_t sealed = BD_BUF_INIT;
  char err[256];
  if (bd_webhook_secret_new(secret, &sealed, err, sizeof err) != 0) {
    bd_resp_error(req, 500, "internal", err, NULL);
    json_decref(o);
    return;
  }
  char id[28] = "wh_";
  bd_rand_base62(id + 3, 24);
  char *events = json_dumps(json_object_get(o, "events"), JSON_COMPACT | JSON_ENCODE_ANY);
  req->ctx = secret;
  const char *p[] = {id,
                     json_string_value(json_object_get(o, "surface")),
                     json_string_value(json_object_get(o, "owner")),
                     json_string_value(json_object_get(o, "mode")),
                     url,
                     events ? events : "[\"*\"]",
                     sealed.data};
  bd_app_query(req, &S_WH_ENDPOINT, 7, p, on_endpoint_made, req);
  free(events);
  bd_buf_free(&sealed);
  json_decref(o);
}

static void on_emitted(void *ud, const bd_pg_result_t *r) {
  bd_req_t *req = ud;
  if (r->err) {
    bd_app_db_error(req, r);
  } else {
    bd_buf_t b = BD_BUF_INIT;
    bd_jw_t w;
    bd_jw_init(&w, &b);
    bd_jw_obj(&w);
    bd_jw_kstr(&w, "event_id", bd_pg_val(r->res, 0, 0));
    bd_jw_obj_end(&w);
    bd_resp_json(req, 200, &b);
    bd_webhooks_kick(); /* committed: deliver from here at once (the NOTIFY wakes the others) */
  }
  bd_req_release(req);
}

static bd_pg_stmt_t S_WH_EMIT = BD_PG_STMT("SELECT bd_webhook_emit($1, $2, $3, $4, $5::jsonb)");

static void wh_emit(bd_req_t *req) {
  if (!enabled(req)) return;
  json_t *o = body_object(req);
  if (!o) return;
  char *data = json_dumps(json_object_get(o, "data"), JSON_COMPACT | JSON_ENCODE_ANY);
  const char *p[] = {json_string_value(json_object_get(o, "surface")), json_string_value(json_object_get(o, "owner")),
                     json_string_value(json_object_get(o, "mode")), json_string_value(json_object_get(o, "type")),
                     data ? data : "{}"};
  bd_app_query(req, &S_WH_EMIT, 5, p, on_emitted, req);
  free(data);
  json_decref(o);
}

/* --- job ------------------------------------------------------------------- */

typedef struct {
  bd_work_t w;      /* work item */
  bd_job_t *job;    /* the job */
  long ms;          /* how long to sleep */
} sleep_t;

static void sleep_work(bd_work_t *w) {
  sleep_t *s = w->data;
  usleep((useconds_t)s->ms * 1000);
}

static bd_pg_stmt_t S_RUN = BD_PG_STMT(
    "INSERT INTO bd_test_job_runs(job_id, marker, instance) VALUES ($1, $2, $3)");

static void on_run_recorded(void *ud, const bd_pg_result_t *r) {
  bd_job_t *job = ud;
  if (r->err) bd_job_retry(job, r->message, 100);
  else bd_job_done(job);
}

static void sleep_after(bd_work_t *w, int status) {
  sleep_t *s = w->data;
  bd_job_t *job = s->job;
  free(s);
  if (status == UV_ECANCELED || bd_job_stopping(job)) {
    bd_job_yield(job);
    return;
  }
  char id[24];
  snprintf(id, sizeof id, "%lld", (long long)job->id);
  const char *marker = json_string_value(json_object_get(job->payload, "marker"));
  const char *p[] = {id, marker ? marker : "", bd_app.instance};
  if (bd_pg_query(bd_app.pg, &S_RUN, 3, p, on_run_recorded, job) != 0) bd_job_retry(job, "queue full", 100);
}

static void run_sleep(bd_job_t *job) {
  sleep_t *s = bd_calloc(1, sizeof *s);
  s->job = job;
  s->ms = (long)json_integer_value(json_object_get(job->payload, "ms"));
  s->w.work = sleep_work;
  s->w.after = sleep_after;
  s->w.data = s;
  bd_work_submit(&s->w);
}

static void on_tables(void *ud, const bd_pg_result_t *r) {
  if (r->err) bd_warn("test hooks: creating tables failed: %s", r->message);
  bd_app.init_pending--;
}

static void init(void) {
  const char *e = getenv("BATCHD_TEST_HOOKS");
  g_enabled = e && !strcmp(e, "1");
  if (!g_enabled) return;
  bd_jobs_register("test.sleep", run_sleep, 4);
  bd_app.init_pending++; /* not ready until the tables exist */
  if (bd_pg_exec(bd_app.pg,
                   "CREATE TABLE IF NOT EXISTS bd_test_writes (id bigserial PRIMARY KEY, credential text,"
                   " body text, created_at timestamptz DEFAULT now());"
                   "CREATE TABLE IF NOT EXISTS bd_test_job_runs (job_id bigint, marker text, instance text,"
                   " at timestamptz DEFAULT now())",
                 0, NULL, on_tables, NULL) != 0)
    bd_warn("test hooks: database queue full"), bd_app.init_pending--;
}

static const bd_route_t routes[] = {
  {"POST", "/_test/writes", writes, 0, "/_test/writes"},
  {"GET", "/_test/db", db, 0, "/_test/db"},
  {"GET", "/_test/slow", slow, 0, "/_test/slow"},
  {"POST", "/_test/stream", stream_in, BD_ROUTE_STREAM | BD_ROUTE_UPLOAD, "/_test/stream"},
  {"GET", "/_test/stream-out", stream_out, 0, "/_test/stream-out"},
  {"POST", "/_test/webhooks/endpoints", wh_endpoint, 0, "/_test/webhooks/endpoints"},
  {"POST", "/_test/webhooks/emit", wh_emit, 0, "/_test/webhooks/emit"},
};

const bd_surface_def_t bd_surface_testhooks = {
    .name = "test", .routes = routes, .nroutes = BD_ARRAY_LEN(routes), .init = init};

/* test_pg.c: the PostgreSQL pool against a real throwaway server.
 *
 * The server's URL comes from "$BATCHD_TEST_STATE/url" (CMake starts it with
 * scripts/testpg through a fixture). Without that variable the test fails:
 * a database test that silently skips would never catch anything.
 *
 * Each test runs its own loop, drives it with run_until() (bounded by a
 * deadline, so a lost callback fails a CHECK instead of hanging), closes its
 * pools and ends with uv_loop_close() == 0, which proves every handle the
 * pool opened was closed. Tables are suffixed with the pid so parallel runs
 * on one server do not collide.
 */
#include "pg.h"
#include "unit.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <unistd.h>

static char g_url[1024]; /* the test server */
static int g_in_api;     /* > 0 while the test is inside a pool function */
static int g_sync_calls; /* callbacks that ran from inside a pool function (must
                            stay 0) */

/* Every pool call goes through API(): a callback that runs while g_in_api is
 * set was invoked synchronously, which the header forbids. */
#define API(expr)                                                                                            \
  (g_in_api++, __extension__({                                                                               \
     __typeof__(expr) r_ = (expr);                                                                           \
     g_in_api--;                                                                                             \
     r_;                                                                                                     \
   }))
#define API_VOID(expr)                                                                                       \
  do {                                                                                                       \
    g_in_api++;                                                                                              \
    expr;                                                                                                    \
    g_in_api--;                                                                                              \
  } while (0)
#define NOT_SYNC()                                                                                           \
  do {                                                                                                       \
    if (g_in_api)                                                                                            \
      g_sync_calls++;                                                                                        \
  } while (0)

static void load_url(void) {
  const char *state = getenv("BATCHD_TEST_STATE");
  if (!state || !*state) {
    fprintf(stderr, "test_pg: BATCHD_TEST_STATE is not set (run through ctest, or "
                    "start a server with "
                    "scripts/testpg start DIR and set BATCHD_TEST_STATE=DIR)\n");
    exit(1);
  }
  char path[1024];
  snprintf(path, sizeof path, "%s/url", state);
  FILE *f = fopen(path, "r");
  if (!f || !fgets(g_url, sizeof g_url, f)) {
    fprintf(stderr, "test_pg: cannot read %s\n", path);
    exit(1);
  }
  fclose(f);
  g_url[strcspn(g_url, "\r\n")] = '\0';
}

static bd_pg_config_t base_cfg(const char *appname) {
  bd_pg_config_t c = {0};
  c.conninfo = g_url;
  c.nconns = 2;
  c.max_inflight = 64;
  c.queue_cap = 10000;
  c.queue_timeout_ms = 5000;
  c.connect_timeout_ms = 5000;
  c.reconnect_min_ms = 20;
  c.reconnect_max_ms = 500;
  c.application_name = appname;
  return c;
}

/* A ticking timer while the test waits, so UV_RUN_ONCE never blocks for
 * long even when the pool has nothing scheduled (e.g. while closing). */
static void on_tick(uv_timer_t *t) { (void)t; }
static void tick_start(uv_loop_t *loop, uv_timer_t *t) {
  uv_timer_init(loop, t);
  uv_timer_start(t, on_tick, 10, 10);
}
static void tick_stop(uv_loop_t *loop, uv_timer_t *t) {
  uv_close((uv_handle_t *)t, NULL);
  uv_run(loop, UV_RUN_NOWAIT); /* delivers the close */
}

/* Runs the loop until *counter >= target or timeout_ms passes. */
static bool run_until(uv_loop_t *loop, const int *counter, int target, int timeout_ms) {
  uint64_t end = bd_now_ms() + (uint64_t)timeout_ms;
  uv_timer_t tick;
  tick_start(loop, &tick);
  while (*counter < target && bd_now_ms() <= end)
    uv_run(loop, UV_RUN_ONCE);
  tick_stop(loop, &tick);
  return *counter >= target;
}

/* Runs the loop for about ms milliseconds. */
static void run_for(uv_loop_t *loop, int ms) {
  int never = 0;
  (void)run_until(loop, &never, 1, ms);
}

static bool wait_connected(uv_loop_t *loop, bd_pg_pool_t *p, int n, int timeout_ms) {
  uint64_t end = bd_now_ms() + (uint64_t)timeout_ms;
  bd_pg_stats_t st;
  for (;;) {
    bd_pg_pool_stats(p, &st);
    if (st.connected >= n || bd_now_ms() > end)
      break;
    run_for(loop, 5);
  }
  return st.connected >= n;
}

/* Closes the pool and waits for its done callback (the pool must free
 * itself from there: no callback after done, nothing left on the loop). */
static void on_closed(void *ud) {
  NOT_SYNC();
  (*(int *)ud)++;
}
static void close_pool(uv_loop_t *loop, bd_pg_pool_t *p) {
  int closed = 0;
  API_VOID(bd_pg_pool_close(p, on_closed, &closed));
  CHECK_INT(closed, 0); /* never from inside the call */
  CHECK(run_until(loop, &closed, 1, 10000));
  CHECK_INT(closed, 1);
}

/* Ends a test's loop: with every pool closed, nothing may keep it alive
 * (a leftover handle fails here instead of hanging uv_run) and
 * uv_loop_close must succeed. */
static void finish_loop(uv_loop_t *loop) {
  for (int i = 0; i < 100 && uv_loop_alive(loop); i++)
    uv_run(loop, UV_RUN_NOWAIT);
  CHECK(!uv_loop_alive(loop));
  CHECK(uv_loop_close(loop) == 0);
}

/* A generic slot that a query callback fills in. */
typedef struct {
  int calls;          /* how many times the callback ran (must end at 1) */
  int err;            /* r->err */
  char sqlstate[8];   /* r->sqlstate */
  char msg[256];      /* r->message */
  char v[4][64];      /* first row's values ("<null>" for SQL NULL) */
  int ntuples;        /* PQntuples */
  char cmdtuples[32]; /* PQcmdTuples */
  int *done;          /* incremented once per call */
} slot_t;

static void slot_cb(void *ud, const bd_pg_result_t *r) {
  NOT_SYNC();
  slot_t *s = ud;
  s->calls++;
  s->err = r->err;
  snprintf(s->sqlstate, sizeof s->sqlstate, "%s", r->sqlstate ? r->sqlstate : "(null)");
  snprintf(s->msg, sizeof s->msg, "%s", r->message ? r->message : "(null)");
  if (r->err == BD_PG_OK)
    CHECK(r->res != NULL);
  if (r->err == BD_PG_EUNAVAIL || r->err == BD_PG_ECANCELED)
    CHECK(r->res == NULL);
  if (r->res) {
    s->ntuples = PQntuples(r->res);
    snprintf(s->cmdtuples, sizeof s->cmdtuples, "%s", PQcmdTuples(r->res));
    for (int c = 0; c < 4 && c < PQnfields(r->res) && s->ntuples > 0; c++) {
      const char *v = bd_pg_val(r->res, 0, c);
      snprintf(s->v[c], sizeof s->v[c], "%s", v ? v : "<null>");
    }
  }
  if (s->done)
    (*s->done)++;
}

/* Runs one exec on the pool and waits for it. */
static void exec_wait(uv_loop_t *loop, bd_pg_pool_t *p, const char *sql, int n, const char *const *params,
                      slot_t *s) {
  int done = 0;
  memset(s, 0, sizeof *s);
  s->done = &done;
  CHECK_INT(API(bd_pg_exec(p, sql, n, params, slot_cb, s)), 0);
  CHECK(run_until(loop, &done, 1, 10000));
  s->done = NULL;
}

static void query_wait(uv_loop_t *loop, bd_pg_pool_t *p, bd_pg_stmt_t *st, int n, const char *const *params,
                       slot_t *s) {
  int done = 0;
  memset(s, 0, sizeof *s);
  s->done = &done;
  CHECK_INT(API(bd_pg_query(p, st, n, params, slot_cb, s)), 0);
  CHECK(run_until(loop, &done, 1, 10000));
  s->done = NULL;
}

/* Acquire into a pointer. */
typedef struct {
  int calls;
  int err;
  bd_pg_conn_t *c;
  int *done;
} acq_t;
static void acq_cb(void *ud, bd_pg_conn_t *c, int err) {
  NOT_SYNC();
  acq_t *a = ud;
  a->calls++;
  a->err = err;
  a->c = c;
  if (err)
    CHECK(c == NULL);
  if (a->done)
    (*a->done)++;
}
static bd_pg_conn_t *acquire_wait(uv_loop_t *loop, bd_pg_pool_t *p) {
  int done = 0;
  acq_t a = {0, 0, NULL, &done};
  CHECK_INT(API(bd_pg_acquire(p, acq_cb, &a)), 0);
  CHECK(run_until(loop, &done, 1, 10000));
  CHECK_INT(a.err, 0);
  return a.c;
}

/* --- tests
 * -------------------------------------------------------------------- */

static bd_pg_stmt_t st_simple = BD_PG_STMT("SELECT $1::int + 1, $2::text IS NULL, $2::text, "
                                           "current_setting('TimeZone')");

static void test_simple(void) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  bd_pg_config_t cfg = base_cfg("bd_test_simple");
  bd_pg_pool_t *p = bd_pg_pool_new(&loop, &cfg);

  slot_t s;
  const char *params[] = {"41", NULL};
  query_wait(&loop, p, &st_simple, 2, params, &s);
  CHECK_INT(s.calls, 1);
  CHECK_INT(s.err, BD_PG_OK);
  CHECK_STR(s.sqlstate, "");
  CHECK_STR(s.msg, "");
  CHECK_STR(s.v[0], "42");
  CHECK_STR(s.v[1], "t");
  CHECK_STR(s.v[2], "<null>");
  CHECK_STR(s.v[3], "UTC"); /* session setting applied at connect */
  CHECK(st_simple.id > 0);

  /* the same statement again (now prepared) with a non-NULL text */
  const char *params2[] = {"-1", "x'y"};
  query_wait(&loop, p, &st_simple, 2, params2, &s);
  CHECK_INT(s.err, BD_PG_OK);
  CHECK_STR(s.v[0], "0");
  CHECK_STR(s.v[1], "f");
  CHECK_STR(s.v[2], "x'y");

  /* application_name reaches the server */
  exec_wait(&loop, p, "SELECT current_setting('application_name')", 0, NULL, &s);
  CHECK_INT(s.err, BD_PG_OK);
  CHECK_STR(s.v[0], "bd_test_simple");

  /* exec: several statements, the last result wins */
  char sql[512];
  snprintf(sql, sizeof sql,
           "CREATE TEMP TABLE tmp_simple_%d (a int); INSERT INTO tmp_simple_%d "
           "VALUES (1), (2);"
           " SELECT count(*), sum(a) FROM tmp_simple_%d",
           (int)getpid(), (int)getpid(), (int)getpid());
  exec_wait(&loop, p, sql, 0, NULL, &s);
  CHECK_INT(s.err, BD_PG_OK);
  CHECK_STR(s.v[0], "2");
  CHECK_STR(s.v[1], "3");

  /* exec with parameters */
  const char *ep[] = {"abc", NULL};
  exec_wait(&loop, p, "SELECT upper($1), $2::int IS NULL", 2, ep, &s);
  CHECK_INT(s.err, BD_PG_OK);
  CHECK_STR(s.v[0], "ABC");
  CHECK_STR(s.v[1], "t");

  /* exec where a middle statement fails: an error, with its SQLSTATE */
  exec_wait(&loop, p, "SELECT 1; SELECT 1/0; SELECT 3", 0, NULL, &s);
  CHECK_INT(s.err, BD_PG_ESQL);
  CHECK_STR(s.sqlstate, "22012");
  CHECK(strstr(s.msg, "division by zero") != NULL);

  /* binary parameters: raw bytes with NULs, beside text ones, twice (the
   * second time prepared) */
  static bd_pg_stmt_t st_bin =
      BD_PG_STMT("SELECT length($2::bytea), encode($2::bytea, 'hex'), $1::text, $3::bytea IS NULL");
  for (int round = 0; round < 2; round++) {
    const char raw[] = {'a', 0, (char)0xff, 0, 'z'};
    const char *bp[] = {"text", raw, NULL};
    const int lens[] = {0, (int)sizeof raw, 0}, fmts[] = {0, 1, 1};
    int done = 0;
    memset(&s, 0, sizeof s);
    s.done = &done;
    CHECK_INT(API(bd_pg_query_bin(p, &st_bin, 3, bp, lens, fmts, slot_cb, &s)), 0);
    CHECK(run_until(&loop, &done, 1, 10000));
    s.done = NULL;
    CHECK_INT(s.err, BD_PG_OK);
    CHECK_STR(s.v[0], "5");
    CHECK_STR(s.v[1], "6100ff007a");
    CHECK_STR(s.v[2], "text");
    CHECK_STR(s.v[3], "t");
  }

  bd_pg_stats_t stt;
  bd_pg_pool_stats(p, &stt);
  CHECK_INT(stt.nconns, 2);
  CHECK(stt.up);
  CHECK(stt.queries >= 6);
  CHECK(stt.errors >= 1);
  CHECK_INT(stt.inflight, 0);
  CHECK_INT(stt.queued, 0);
  CHECK_INT(stt.pinned, 0);

  close_pool(&loop, p);
  CHECK_INT(g_sync_calls, 0);
  finish_loop(&loop);
}

#define NCONC 2000
static bd_pg_stmt_t st_double = BD_PG_STMT("SELECT $1::int * 2, pg_backend_pid()");
typedef struct {
  int idx;   /* the query's number */
  int calls; /* callback runs */
  int ok;    /* value checked */
  int pid;   /* backend that answered */
} conc_t;
static int g_conc_done;
static void conc_cb(void *ud, const bd_pg_result_t *r) {
  NOT_SYNC();
  conc_t *c = ud;
  c->calls++;
  g_conc_done++;
  if (r->err != BD_PG_OK || PQntuples(r->res) != 1)
    return;
  c->ok = atoi(PQgetvalue(r->res, 0, 0)) == 2 * c->idx;
  c->pid = atoi(PQgetvalue(r->res, 0, 1));
}

static void test_concurrent(void) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  bd_pg_config_t cfg = base_cfg("bd_test_conc");
  cfg.nconns = 4;
  cfg.max_inflight = 32;
  bd_pg_pool_t *p = bd_pg_pool_new(&loop, &cfg);
  CHECK(wait_connected(&loop, p, 4, 10000));

  static conc_t q[NCONC];
  memset(q, 0, sizeof q);
  g_conc_done = 0;
  for (int i = 0; i < NCONC; i++) {
    char v[16];
    snprintf(v, sizeof v, "%d", i);
    const char *params[] = {v}; /* copied by the pool */
    q[i].idx = i;
    CHECK_INT(API(bd_pg_query(p, &st_double, 1, params, conc_cb, &q[i])), 0);
  }
  bd_pg_stats_t st;
  bd_pg_pool_stats(p, &st);
  CHECK(st.inflight <= 4 * 32); /* the per-connection cap holds */
  CHECK(st.queued >= NCONC - 4 * 32);
  CHECK(run_until(&loop, &g_conc_done, NCONC, 30000));
  int ok = 0, pids[8] = {0}, npids = 0;
  for (int i = 0; i < NCONC; i++) {
    CHECK_INT(q[i].calls, 1);
    ok += q[i].ok;
    bool seen = false;
    for (int k = 0; k < npids; k++)
      seen |= pids[k] == q[i].pid;
    if (!seen && npids < 8)
      pids[npids++] = q[i].pid;
  }
  CHECK_INT(ok, NCONC);
  CHECK_INT(npids, 4); /* the load was spread over every connection */
  bd_pg_pool_stats(p, &st);
  CHECK_INT(st.inflight, 0);
  CHECK_INT(st.queued, 0);
  CHECK(st.queries >= NCONC);

  close_pool(&loop, p);
  CHECK_INT(g_sync_calls, 0);
  finish_loop(&loop);
}

static bd_pg_stmt_t st_div = BD_PG_STMT("SELECT 10 / $1::int");
static bd_pg_stmt_t st_bad = BD_PG_STMT("SELEC 1");
static char missing_sql[128]; /* filled in with a per-process table name */
static bd_pg_stmt_t st_missing_table = BD_PG_STMT(missing_sql);

static void test_pipeline_error(void) {
  snprintf(missing_sql, sizeof missing_sql, "SELECT * FROM bd_test_later_%d", (int)getpid());
  uv_loop_t loop;
  uv_loop_init(&loop);
  bd_pg_config_t cfg = base_cfg("bd_test_perr");
  cfg.nconns = 1; /* everything on one pipeline */
  bd_pg_pool_t *p = bd_pg_pool_new(&loop, &cfg);
  CHECK(wait_connected(&loop, p, 1, 10000));

  int done = 0;
  slot_t s[7];
  memset(s, 0, sizeof s);
  for (int i = 0; i < 7; i++)
    s[i].done = &done;
  const char *one[] = {"1"}, *zero[] = {"0"}, *five[] = {"5"};
  CHECK_INT(API(bd_pg_query(p, &st_div, 1, one, slot_cb, &s[0])), 0);
  CHECK_INT(API(bd_pg_query(p, &st_div, 1, zero, slot_cb, &s[1])), 0); /* execute error */
  CHECK_INT(API(bd_pg_query(p, &st_div, 1, five, slot_cb, &s[2])), 0);
  CHECK_INT(API(bd_pg_query(p, &st_bad, 0, NULL, slot_cb, &s[3])), 0); /* prepare error */
  CHECK_INT(API(bd_pg_query(p, &st_div, 1, one, slot_cb, &s[4])), 0);
  CHECK_INT(API(bd_pg_query(p, &st_missing_table, 0, NULL, slot_cb, &s[5])), 0); /* prepare error */
  CHECK_INT(API(bd_pg_query(p, &st_div, 1, five, slot_cb, &s[6])), 0);
  bd_pg_stats_t st;
  bd_pg_pool_stats(p, &st);
  CHECK_INT(st.inflight, 7); /* really pipelined together */
  CHECK(run_until(&loop, &done, 7, 10000));
  for (int i = 0; i < 7; i++)
    CHECK_INT(s[i].calls, 1);
  CHECK_INT(s[0].err, BD_PG_OK);
  CHECK_STR(s[0].v[0], "10");
  CHECK_INT(s[1].err, BD_PG_ESQL);
  CHECK_STR(s[1].sqlstate, "22012");
  CHECK_INT(s[2].err, BD_PG_OK);
  CHECK_STR(s[2].v[0], "2");
  CHECK_INT(s[3].err, BD_PG_ESQL);
  CHECK_STR(s[3].sqlstate, "42601");
  CHECK_INT(s[4].err, BD_PG_OK);
  CHECK_STR(s[4].v[0], "10");
  CHECK_INT(s[5].err, BD_PG_ESQL);
  CHECK_STR(s[5].sqlstate, "42P01");
  CHECK_INT(s[6].err, BD_PG_OK);
  CHECK_STR(s[6].v[0], "2");

  /* a statement whose prepare failed is prepared again on its next use:
   * create the table it needs, then it works */
  char sql[256];
  snprintf(sql, sizeof sql, "CREATE TABLE bd_test_later_%d (a int)", (int)getpid());
  slot_t e;
  exec_wait(&loop, p, sql, 0, NULL, &e);
  CHECK_INT(e.err, BD_PG_OK);
  query_wait(&loop, p, &st_missing_table, 0, NULL, &e);
  CHECK_INT(e.err, BD_PG_OK);
  CHECK_INT(e.ntuples, 0);
  snprintf(sql, sizeof sql, "DROP TABLE bd_test_later_%d", (int)getpid());
  exec_wait(&loop, p, sql, 0, NULL, &e);
  CHECK_INT(e.err, BD_PG_OK);

  bd_pg_pool_stats(p, &st);
  CHECK_INT(st.connected, 1); /* the errors did not cost the connection */
  close_pool(&loop, p);
  CHECK_INT(g_sync_calls, 0);
  finish_loop(&loop);
}

static void test_pinned_tx(void) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  bd_pg_config_t cfg = base_cfg("bd_test_tx");
  cfg.nconns = 2;
  bd_pg_pool_t *p = bd_pg_pool_new(&loop, &cfg);
  char t[64], sql[256];
  snprintf(t, sizeof t, "bd_test_tx_%d", (int)getpid());
  slot_t s;
  snprintf(sql, sizeof sql, "CREATE TABLE %s (id int primary key)", t);
  exec_wait(&loop, p, sql, 0, NULL, &s);
  CHECK_INT(s.err, BD_PG_OK);

  char ins_sql[128], cnt_sql[128];
  snprintf(ins_sql, sizeof ins_sql, "INSERT INTO %s VALUES ($1::int)", t);
  snprintf(cnt_sql, sizeof cnt_sql, "SELECT count(*), coalesce(sum(id), 0) FROM %s", t);
  bd_pg_stmt_t ins = BD_PG_STMT(ins_sql), cnt = BD_PG_STMT(cnt_sql);

  /* committed: BEGIN, two INSERTs and COMMIT queued at once, answered in order
   */
  bd_pg_conn_t *c = acquire_wait(&loop, p);
  CHECK(c != NULL);
  bd_pg_stats_t st;
  bd_pg_pool_stats(p, &st);
  CHECK_INT(st.pinned, 1);
  int done = 0;
  slot_t r[5];
  memset(r, 0, sizeof r);
  for (int i = 0; i < 5; i++)
    r[i].done = &done;
  const char *one[] = {"1"}, *two[] = {"2"};
  CHECK_INT(API(bd_pg_conn_exec(c, "BEGIN", 0, NULL, slot_cb, &r[0])), 0);
  CHECK_INT(API(bd_pg_conn_query(c, &ins, 1, one, slot_cb, &r[1])), 0);
  CHECK_INT(API(bd_pg_conn_query(c, &ins, 1, two, slot_cb, &r[2])), 0);
  CHECK_INT(API(bd_pg_conn_exec(c, "SELECT txid_current_if_assigned() IS NOT NULL", 0, NULL, slot_cb, &r[3])),
            0);
  CHECK_INT(API(bd_pg_conn_exec(c, "COMMIT", 0, NULL, slot_cb, &r[4])), 0);
  CHECK(run_until(&loop, &done, 5, 10000));
  for (int i = 0; i < 5; i++) {
    CHECK_INT(r[i].calls, 1);
    CHECK_INT(r[i].err, BD_PG_OK);
  }
  CHECK_STR(r[1].cmdtuples, "1");
  CHECK_STR(r[3].v[0], "t"); /* still inside the transaction when it ran */
  API_VOID(bd_pg_release(c, false));
  query_wait(&loop, p, &cnt, 0, NULL, &s);
  CHECK_INT(s.err, BD_PG_OK);
  CHECK_STR(s.v[0], "2");
  CHECK_STR(s.v[1], "3");

  /* released without COMMIT: rolled back */
  c = acquire_wait(&loop, p);
  CHECK(c != NULL);
  done = 0;
  memset(r, 0, sizeof r);
  for (int i = 0; i < 5; i++)
    r[i].done = &done;
  const char *ten[] = {"10"};
  CHECK_INT(API(bd_pg_conn_exec(c, "BEGIN", 0, NULL, slot_cb, &r[0])), 0);
  CHECK_INT(API(bd_pg_conn_query(c, &ins, 1, ten, slot_cb, &r[1])), 0);
  CHECK(run_until(&loop, &done, 2, 10000));
  CHECK_INT(r[1].err, BD_PG_OK);
  API_VOID(bd_pg_release(c, false));
  query_wait(&loop, p, &cnt, 0, NULL, &s);
  CHECK_STR(s.v[0], "2");
  CHECK_STR(s.v[1], "3");

  /* a failed transaction (duplicate key), released: rolled back, and the
   * connection serves again afterwards */
  c = acquire_wait(&loop, p);
  done = 0;
  memset(r, 0, sizeof r);
  for (int i = 0; i < 5; i++)
    r[i].done = &done;
  const char *three[] = {"3"};
  CHECK_INT(API(bd_pg_conn_exec(c, "BEGIN", 0, NULL, slot_cb, &r[0])), 0);
  CHECK_INT(API(bd_pg_conn_query(c, &ins, 1, three, slot_cb, &r[1])), 0);
  CHECK_INT(API(bd_pg_conn_query(c, &ins, 1, one, slot_cb, &r[2])), 0); /* duplicate */
  CHECK_INT(API(bd_pg_conn_query(c, &ins, 1, ten, slot_cb, &r[3])), 0); /* in an aborted tx */
  CHECK(run_until(&loop, &done, 4, 10000));
  CHECK_INT(r[1].err, BD_PG_OK);
  CHECK_INT(r[2].err, BD_PG_ESQL);
  CHECK_STR(r[2].sqlstate, "23505");
  CHECK_INT(r[3].err, BD_PG_ESQL);
  CHECK_STR(r[3].sqlstate, "25P02");
  API_VOID(bd_pg_release(c, false));
  /* every connection takes shared queries again: run enough to use both */
  done = 0;
  slot_t many[20];
  memset(many, 0, sizeof many);
  for (int i = 0; i < 20; i++) {
    many[i].done = &done;
    CHECK_INT(API(bd_pg_query(p, &cnt, 0, NULL, slot_cb, &many[i])), 0);
  }
  CHECK(run_until(&loop, &done, 20, 10000));
  for (int i = 0; i < 20; i++) {
    CHECK_INT(many[i].err, BD_PG_OK);
    CHECK_STR(many[i].v[0], "2");
  }
  /* the released connection rolls back before it is shared again: that
   * may still be in flight when the queries above have all finished */
  bd_pg_pool_stats(p, &st);
  for (int i = 0; i < 500 && (st.pinned != 0 || st.connected != 2); i++) {
    run_for(&loop, 10);
    bd_pg_pool_stats(p, &st);
  }
  CHECK_INT(st.pinned, 0);
  CHECK_INT(st.connected, 2);

  /* a pinned query whose statement cannot be prepared fails alone, and is
   * prepared afresh after the fix (here: the table appears) */
  c = acquire_wait(&loop, p);
  char miss_sql[128];
  snprintf(miss_sql, sizeof miss_sql, "SELECT count(*) FROM %s_later", t);
  bd_pg_stmt_t miss = BD_PG_STMT(miss_sql);
  done = 0;
  memset(r, 0, sizeof r);
  for (int i = 0; i < 5; i++)
    r[i].done = &done;
  CHECK_INT(API(bd_pg_conn_query(c, &miss, 0, NULL, slot_cb, &r[0])), 0);
  CHECK_INT(API(bd_pg_conn_query(c, &cnt, 0, NULL, slot_cb, &r[1])), 0);
  snprintf(sql, sizeof sql, "CREATE TABLE %s_later (a int)", t);
  CHECK_INT(API(bd_pg_conn_exec(c, sql, 0, NULL, slot_cb, &r[2])), 0);
  CHECK_INT(API(bd_pg_conn_query(c, &miss, 0, NULL, slot_cb, &r[3])), 0);
  snprintf(sql, sizeof sql, "DROP TABLE %s_later", t);
  CHECK_INT(API(bd_pg_conn_exec(c, sql, 0, NULL, slot_cb, &r[4])), 0);
  CHECK(run_until(&loop, &done, 5, 10000));
  CHECK_INT(r[0].err, BD_PG_ESQL);
  CHECK_STR(r[0].sqlstate, "42P01");
  CHECK_INT(r[1].err, BD_PG_OK);
  CHECK_STR(r[1].v[0], "2");
  CHECK_INT(r[2].err, BD_PG_OK);
  CHECK_INT(r[3].err, BD_PG_OK);
  CHECK_STR(r[3].v[0], "0");
  CHECK_INT(r[4].err, BD_PG_OK);
  API_VOID(bd_pg_release(c, false));

  /* released as broken: discarded and re-opened */
  c = acquire_wait(&loop, p);
  API_VOID(bd_pg_release(c, true));
  CHECK(wait_connected(&loop, p, 2, 10000));

  snprintf(sql, sizeof sql, "DROP TABLE %s", t);
  exec_wait(&loop, p, sql, 0, NULL, &s);
  CHECK_INT(s.err, BD_PG_OK);
  close_pool(&loop, p);
  CHECK_INT(g_sync_calls, 0);
  finish_loop(&loop);
}

/* COPY
 * ------------------------------------------------------------------------- */

#define COPY_ROWS 1000000
typedef struct {
  uv_loop_t *loop;
  bd_pg_conn_t *c;
  int next;       /* next row to produce */
  int full;       /* copy_put returned 1 */
  int drains;     /* on_drain calls */
  int waiting;    /* waiting for on_drain */
  int done;       /* copy_end's callback ran */
  int put_errors; /* copy_put returned < 0 */
  slot_t end;     /* COPY's result */
} copy_t;

static void copy_produce(void *ud);

static void copy_drained(void *ud) {
  NOT_SYNC();
  copy_t *k = ud;
  CHECK(k->waiting);
  k->waiting = 0;
  k->drains++;
  copy_produce(k);
}

/* Produces rows until the pool says stop or all are out, then ends the COPY.
 * Puts are ~512 KiB (as an upload's multipart chunks may be), more than the
 * socket and libpq take at once, so the high-water mark is crossed whether
 * or not the server keeps up (it would not be under valgrind with small
 * puts: the producer is then the slow side). */
#define COPY_PUT (512 * 1024)
static void copy_produce(void *ud) {
  copy_t *k = ud;
  static char chunk[COPY_PUT];
  while (k->next < COPY_ROWS) {
    size_t n = 0;
    while (k->next < COPY_ROWS && n < sizeof chunk - 64) {
      n += (size_t)snprintf(chunk + n, sizeof chunk - n, "%d\tname %d\n", k->next, k->next);
      k->next++;
    }
    int rc = API(bd_pg_copy_put(k->c, chunk, n));
    if (rc < 0) {
      k->put_errors++;
      break;
    }
    if (rc == 1) {
      k->full++;
      k->waiting = 1;
      API_VOID(bd_pg_copy_on_drain(k->c, copy_drained, k));
      return;
    }
  }
  k->end.done = &k->done;
  CHECK_INT(API(bd_pg_copy_end(k->c, NULL, slot_cb, &k->end)), 0);
}

static void test_copy(void) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  bd_pg_config_t cfg = base_cfg("bd_test_copy");
  bd_pg_pool_t *p = bd_pg_pool_new(&loop, &cfg);
  char t[64], sql[256];
  snprintf(t, sizeof t, "bd_test_copy_%d", (int)getpid());
  slot_t s;
  snprintf(sql, sizeof sql, "CREATE TABLE %s (id int, name text)", t);
  exec_wait(&loop, p, sql, 0, NULL, &s);
  CHECK_INT(s.err, BD_PG_OK);

  static copy_t k;
  memset(&k, 0, sizeof k);
  k.loop = &loop;
  k.c = acquire_wait(&loop, p);
  CHECK(k.c != NULL);
  int ready = 0;
  slot_t rs;
  memset(&rs, 0, sizeof rs);
  rs.done = &ready;
  snprintf(sql, sizeof sql, "COPY %s (id, name) FROM STDIN", t);
  CHECK_INT(API(bd_pg_copy_start(k.c, sql, slot_cb, &rs)), 0);
  CHECK(run_until(&loop, &ready, 1, 10000));
  CHECK_INT(rs.err, BD_PG_OK);
  copy_produce(&k);
  CHECK(run_until(&loop, &k.done, 1, 120000));
  CHECK_INT(k.next, COPY_ROWS);
  CHECK_INT(k.put_errors, 0);
  CHECK(k.full > 0);           /* backpressure was signalled ... */
  CHECK_INT(k.drains, k.full); /* ... and released through on_drain every time */
  CHECK_INT(k.end.calls, 1);
  CHECK_INT(k.end.err, BD_PG_OK);
  CHECK_STR(k.end.cmdtuples, "1000000");
  API_VOID(bd_pg_release(k.c, false));

  snprintf(sql, sizeof sql, "SELECT count(*), sum(id), count(DISTINCT name) FROM %s", t);
  exec_wait(&loop, p, sql, 0, NULL, &s);
  CHECK_INT(s.err, BD_PG_OK);
  CHECK_STR(s.v[0], "1000000");
  CHECK_STR(s.v[1], "499999500000");
  CHECK_STR(s.v[2], "1000000");

  /* bad data: the server aborts the COPY; libpq reports that only at the
   * end, so the end callback carries the error, and the connection is
   * usable afterwards */
  bd_pg_conn_t *c = acquire_wait(&loop, p);
  ready = 0;
  memset(&rs, 0, sizeof rs);
  rs.done = &ready;
  snprintf(sql, sizeof sql, "COPY %s (id, name) FROM STDIN", t);
  CHECK_INT(API(bd_pg_copy_start(c, sql, slot_cb, &rs)), 0);
  CHECK(run_until(&loop, &ready, 1, 10000));
  CHECK_INT(rs.err, BD_PG_OK);
  CHECK(API(bd_pg_copy_put(c, "1\tok\nnot-a-number\tbad\n", 23)) >= 0);
  run_for(&loop, 100); /* the server has answered with its error by now */
  for (int i = 0; i < 10; i++)
    CHECK(API(bd_pg_copy_put(c, "2\tok\n", 5)) >= 0);
  int ended = 0;
  slot_t es;
  memset(&es, 0, sizeof es);
  es.done = &ended;
  CHECK_INT(API(bd_pg_copy_end(c, NULL, slot_cb, &es)), 0);
  CHECK(run_until(&loop, &ended, 1, 10000));
  CHECK_INT(es.err, BD_PG_ESQL);
  CHECK_STR(es.sqlstate, "22P02");
  API_VOID(bd_pg_release(c, false));

  /* aborted by the client: copy_end with a message */
  c = acquire_wait(&loop, p);
  ready = 0;
  memset(&rs, 0, sizeof rs);
  rs.done = &ready;
  CHECK_INT(API(bd_pg_copy_start(c, sql, slot_cb, &rs)), 0);
  CHECK(run_until(&loop, &ready, 1, 10000));
  CHECK_INT(API(bd_pg_copy_put(c, "7\tseven\n", 8)), 0);
  ended = 0;
  memset(&es, 0, sizeof es);
  es.done = &ended;
  CHECK_INT(API(bd_pg_copy_end(c, "client gave up", slot_cb, &es)), 0);
  CHECK(run_until(&loop, &ended, 1, 10000));
  CHECK_INT(es.err, BD_PG_ESQL);
  CHECK_STR(es.sqlstate, "57014");
  CHECK(strstr(es.msg, "client gave up") != NULL);
  API_VOID(bd_pg_release(c, false));

  snprintf(sql, sizeof sql, "SELECT count(*) FROM %s", t);
  exec_wait(&loop, p, sql, 0, NULL, &s);
  CHECK_STR(s.v[0], "1000000");

  /* idle now: no writable interest may be left on (it would spin the loop) */
  struct rusage ru0, ru1;
  getrusage(RUSAGE_SELF, &ru0);
  run_for(&loop, 300);
  getrusage(RUSAGE_SELF, &ru1);
  long cpu_us =
      (ru1.ru_utime.tv_sec - ru0.ru_utime.tv_sec) * 1000000L + (ru1.ru_utime.tv_usec - ru0.ru_utime.tv_usec) +
      (ru1.ru_stime.tv_sec - ru0.ru_stime.tv_sec) * 1000000L + (ru1.ru_stime.tv_usec - ru0.ru_stime.tv_usec);
  CHECK(cpu_us < 100000);
  snprintf(sql, sizeof sql, "DROP TABLE %s", t);
  exec_wait(&loop, p, sql, 0, NULL, &s);
  CHECK_INT(s.err, BD_PG_OK);
  close_pool(&loop, p);
  CHECK_INT(g_sync_calls, 0);
  finish_loop(&loop);
}

/* Reconnect ------------------------------------------------------------------
 */

static bd_pg_stmt_t st_sleep = BD_PG_STMT("SELECT pg_sleep(5), $1::int");
static bd_pg_stmt_t st_one = BD_PG_STMT("SELECT $1::int");

static void terminate(uv_loop_t *loop, bd_pg_pool_t *ctl, const char *appname, int expect) {
  slot_t s;
  const char *params[] = {appname};
  exec_wait(loop, ctl,
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE application_name = $1",
            1, params, &s);
  CHECK_INT(s.err, BD_PG_OK);
  if (expect >= 0)
    CHECK_INT(atoi(s.v[0]), expect);
}

static void test_reconnect(void) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  char app[64];
  snprintf(app, sizeof app, "bd_test_reconn_%d", (int)getpid());
  bd_pg_config_t cfg = base_cfg(app);
  cfg.nconns = 3;
  bd_pg_pool_t *p = bd_pg_pool_new(&loop, &cfg);
  bd_pg_config_t ccfg = base_cfg("bd_test_ctl");
  ccfg.nconns = 1;
  bd_pg_pool_t *ctl = bd_pg_pool_new(&loop, &ccfg);
  CHECK(wait_connected(&loop, p, 3, 10000));
  CHECK(wait_connected(&loop, ctl, 1, 10000));

  /* one pinned connection in a transaction, and slow queries in flight on
   * the others */
  bd_pg_conn_t *c = acquire_wait(&loop, p);
  slot_t b;
  int bdone = 0;
  memset(&b, 0, sizeof b);
  b.done = &bdone;
  CHECK_INT(API(bd_pg_conn_exec(c, "BEGIN", 0, NULL, slot_cb, &b)), 0);
  CHECK(run_until(&loop, &bdone, 1, 10000));
  CHECK_INT(b.err, BD_PG_OK);

  int done = 0;
  slot_t s[6];
  memset(s, 0, sizeof s);
  for (int i = 0; i < 6; i++) {
    s[i].done = &done;
    const char *params[] = {"7"};
    CHECK_INT(API(bd_pg_query(p, &st_sleep, 1, params, slot_cb, &s[i])), 0);
  }
  run_for(&loop, 100); /* sent and running */
  bd_pg_stats_t st;
  bd_pg_pool_stats(p, &st);
  CHECK_INT(st.inflight, 6);
  uint64_t t0 = bd_now_ms();
  terminate(&loop, ctl, app, 3);
  CHECK(run_until(&loop, &done, 6, 10000));
  CHECK(bd_now_ms() - t0 < 4000); /* failed at once, not after the 5 s sleep */
  for (int i = 0; i < 6; i++) {
    CHECK_INT(s[i].calls, 1);
    CHECK_INT(s[i].err, BD_PG_EUNAVAIL);
  }

  /* the pinned connection's next query fails too; its owner releases it */
  slot_t pq;
  int pdone = 0;
  memset(&pq, 0, sizeof pq);
  pq.done = &pdone;
  run_for(&loop, 50);
  CHECK_INT(API(bd_pg_conn_exec(c, "SELECT 1", 0, NULL, slot_cb, &pq)), 0);
  CHECK(run_until(&loop, &pdone, 1, 10000));
  CHECK_INT(pq.err, BD_PG_EUNAVAIL);
  API_VOID(bd_pg_release(c, false));

  /* everything comes back */
  CHECK(wait_connected(&loop, p, 3, 10000));
  bd_pg_pool_stats(p, &st);
  CHECK(st.reconnects >= 3);
  CHECK_INT(st.pinned, 0);
  done = 0;
  slot_t ok[30];
  memset(ok, 0, sizeof ok);
  for (int i = 0; i < 30; i++) {
    ok[i].done = &done;
    const char *params[] = {"9"};
    CHECK_INT(API(bd_pg_query(p, &st_one, 1, params, slot_cb, &ok[i])), 0);
  }
  CHECK(run_until(&loop, &done, 30, 10000));
  for (int i = 0; i < 30; i++) {
    CHECK_INT(ok[i].err, BD_PG_OK);
    CHECK_STR(ok[i].v[0], "9"); /* statements were prepared again on the new sessions */
  }
  slot_t tz;
  exec_wait(&loop, p, "SELECT current_setting('TimeZone')", 0, NULL, &tz);
  CHECK_STR(tz.v[0], "UTC");

  close_pool(&loop, p);
  close_pool(&loop, ctl);
  CHECK_INT(g_sync_calls, 0);
  finish_loop(&loop);
}

/* Unreachable database
 * --------------------------------------------------------- */

static void test_unavailable(void) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  char url[256];
  snprintf(url, sizeof url, "postgresql:///postgres?host=/nonexistent-batchd-%d&user=postgres",
           (int)getpid());
  bd_pg_config_t cfg = base_cfg("bd_test_down");
  cfg.conninfo = url;
  cfg.queue_cap = 5;
  cfg.queue_timeout_ms = 300;
  bd_pg_pool_t *p = bd_pg_pool_new(&loop, &cfg);

  int done = 0;
  slot_t s[4];
  memset(s, 0, sizeof s);
  acq_t a = {0, 0, NULL, &done};
  uint64_t t0 = bd_now_ms();
  const char *params[] = {"1"};
  for (int i = 0; i < 3; i++) {
    s[i].done = &done;
    CHECK_INT(API(bd_pg_query(p, &st_one, 1, params, slot_cb, &s[i])), 0);
  }
  s[3].done = &done;
  CHECK_INT(API(bd_pg_exec(p, "SELECT 1", 0, NULL, slot_cb, &s[3])), 0);
  CHECK_INT(API(bd_pg_acquire(p, acq_cb, &a)), 0);
  /* the queue is full: refused at once, and that callback never runs */
  slot_t over;
  memset(&over, 0, sizeof over);
  CHECK_INT(API(bd_pg_query(p, &st_one, 1, params, slot_cb, &over)), BD_PG_EUNAVAIL);
  CHECK_INT(API(bd_pg_exec(p, "SELECT 1", 0, NULL, slot_cb, &over)), BD_PG_EUNAVAIL);
  acq_t aover = {0};
  CHECK_INT(API(bd_pg_acquire(p, acq_cb, &aover)), BD_PG_EUNAVAIL);
  bd_pg_stats_t st;
  bd_pg_pool_stats(p, &st);
  CHECK_INT(st.queued, 5);
  CHECK(!st.up);
  CHECK_INT(st.connected, 0);

  CHECK(run_until(&loop, &done, 5, 5000));
  uint64_t el = bd_now_ms() - t0;
  CHECK(el >= 290); /* not before the queue timeout ... */
  CHECK(el < 800);  /* ... and not much after it */
  for (int i = 0; i < 4; i++) {
    CHECK_INT(s[i].calls, 1);
    CHECK_INT(s[i].err, BD_PG_EUNAVAIL);
    CHECK(s[i].msg[0] != '\0');
  }
  CHECK_INT(a.calls, 1);
  CHECK_INT(a.err, BD_PG_EUNAVAIL);
  run_for(&loop, 100);
  CHECK_INT(over.calls, 0);
  CHECK_INT(aover.calls, 0);
  bd_pg_pool_stats(p, &st);
  CHECK_INT(st.queued, 0);
  CHECK(st.errors >= 4);

  /* a query that finds the queue non-full again is accepted */
  done = 0;
  memset(s, 0, sizeof s);
  s[0].done = &done;
  CHECK_INT(API(bd_pg_query(p, &st_one, 1, params, slot_cb, &s[0])), 0);
  CHECK(run_until(&loop, &done, 1, 5000));
  CHECK_INT(s[0].err, BD_PG_EUNAVAIL);

  /* closing cancels what waits */
  memset(s, 0, sizeof s);
  CHECK_INT(API(bd_pg_query(p, &st_one, 1, params, slot_cb, &s[0])), 0);
  close_pool(&loop, p);
  CHECK_INT(s[0].calls, 1);
  CHECK_INT(s[0].err, BD_PG_ECANCELED);
  CHECK_INT(g_sync_calls, 0);
  finish_loop(&loop);
}

/* A server that accepts connections and never answers: each attempt must
 * give up after connect_timeout_ms and a new one must follow. */
typedef struct {
  uv_pipe_t srv;     /* the fake server socket */
  uv_pipe_t cli[64]; /* accepted connections */
  int n;             /* how many */
} mute_t;
static void mute_on_conn(uv_stream_t *srv, int status) {
  mute_t *m = srv->data;
  if (status < 0 || m->n >= 64)
    return;
  uv_pipe_init(srv->loop, &m->cli[m->n], 0);
  if (uv_accept(srv, (uv_stream_t *)&m->cli[m->n]) == 0)
    m->n++;
  else
    uv_close((uv_handle_t *)&m->cli[m->n], NULL);
}

static void test_connect_timeout(void) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  char dir[] = "/tmp/bd_test_pg_mute_XXXXXX";
  CHECK(mkdtemp(dir) != NULL);
  char path[256], url[256];
  snprintf(path, sizeof path, "%s/.s.PGSQL.5432", dir);
  static mute_t m;
  memset(&m, 0, sizeof m);
  uv_pipe_init(&loop, &m.srv, 0);
  m.srv.data = &m;
  CHECK_INT(uv_pipe_bind(&m.srv, path), 0);
  CHECK_INT(uv_listen((uv_stream_t *)&m.srv, 16, mute_on_conn), 0);
  snprintf(url, sizeof url, "postgresql:///postgres?host=%s&user=postgres", dir);
  bd_pg_config_t cfg = base_cfg("bd_test_mute");
  cfg.conninfo = url;
  cfg.nconns = 1;
  cfg.connect_timeout_ms = 100;
  cfg.reconnect_min_ms = 10;
  cfg.reconnect_max_ms = 40;
  cfg.queue_timeout_ms = 400;
  bd_pg_pool_t *p = bd_pg_pool_new(&loop, &cfg);
  int done = 0;
  slot_t s;
  memset(&s, 0, sizeof s);
  s.done = &done;
  uint64_t t0 = bd_now_ms();
  CHECK_INT(API(bd_pg_query(p, &st_one, 1, (const char *const[]){"1"}, slot_cb, &s)), 0);
  CHECK(run_until(&loop, &done, 1, 5000));
  CHECK_INT(s.err, BD_PG_EUNAVAIL);
  CHECK(bd_now_ms() - t0 < 1000);
  run_for(&loop, 600);
  CHECK(m.n >= 4); /* ~1 s of 100 ms attempts and short backoffs */
  CHECK(m.n < 20); /* but backing off, not spinning */
  close_pool(&loop, p);
  for (int i = 0; i < m.n; i++)
    uv_close((uv_handle_t *)&m.cli[i], NULL);
  uv_close((uv_handle_t *)&m.srv, NULL);
  uv_run(&loop, UV_RUN_DEFAULT);
  unlink(path);
  rmdir(dir);
  CHECK_INT(g_sync_calls, 0);
  finish_loop(&loop);
}

/* LISTEN/NOTIFY
 * ----------------------------------------------------------------- */

typedef struct {
  int got;          /* notifications received */
  int reconnects;   /* on_reconnect calls */
  char channel[64]; /* last channel */
  char payload[64]; /* last payload */
} listen_rec_t;
static void on_notify(void *ud, const char *channel, const char *payload) {
  NOT_SYNC();
  listen_rec_t *l = ud;
  l->got++;
  snprintf(l->channel, sizeof l->channel, "%s", channel);
  snprintf(l->payload, sizeof l->payload, "%s", payload);
}
static void on_listen_reconnect(void *ud) {
  NOT_SYNC();
  ((listen_rec_t *)ud)->reconnects++;
}

/* NOTIFYs until one arrives: LISTEN is issued asynchronously, so the first
 * ones may be sent before the listener is subscribed. */
static bool notify_until(uv_loop_t *loop, bd_pg_pool_t *p, const char *chan, const char *payload,
                         listen_rec_t *l) {
  int before = l->got;
  for (int i = 0; i < 100; i++) {
    slot_t s;
    const char *params[] = {chan, payload};
    exec_wait(loop, p, "SELECT pg_notify($1, $2)", 2, params, &s);
    if (s.err != BD_PG_OK)
      return false;
    if (run_until(loop, &l->got, before + 1, 100))
      return true;
  }
  return false;
}

/* Runs the loop until bd_pg_listening(p) == want. */
static bool listening_until(uv_loop_t *loop, bd_pg_pool_t *p, bool want, int timeout_ms) {
  uint64_t end = bd_now_ms() + (uint64_t)timeout_ms;
  uv_timer_t tick;
  tick_start(loop, &tick);
  while (bd_pg_listening(p) != want && bd_now_ms() <= end)
    uv_run(loop, UV_RUN_ONCE);
  tick_stop(loop, &tick);
  return bd_pg_listening(p) == want;
}

static void test_listen(void) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  char app[64], chan[64];
  snprintf(app, sizeof app, "bd_test_listen_%d", (int)getpid());
  snprintf(chan, sizeof chan, "Chan \"%d\" x", (int)getpid()); /* needs identifier quoting */
  bd_pg_config_t cfg = base_cfg(app);
  cfg.nconns = 1;
  bd_pg_pool_t *p = bd_pg_pool_new(&loop, &cfg);
  bd_pg_config_t ccfg = base_cfg("bd_test_ctl");
  ccfg.nconns = 1;
  bd_pg_pool_t *ctl = bd_pg_pool_new(&loop, &ccfg);
  listen_rec_t l = {0};
  CHECK(!bd_pg_listening(p)); /* nothing registered yet */
  API_VOID(bd_pg_listen(p, chan, on_notify, on_listen_reconnect, &l));
  CHECK(!bd_pg_listening(p)); /* registered, not yet confirmed by the server */
  CHECK(listening_until(&loop, p, true, 10000));
  /* once confirmed, the very first NOTIFY arrives */
  {
    slot_t s;
    const char *params[] = {chan, "first"};
    exec_wait(&loop, ctl, "SELECT pg_notify($1, $2)", 2, params, &s);
    CHECK_INT(s.err, BD_PG_OK);
    CHECK(run_until(&loop, &l.got, 1, 5000));
    CHECK_STR(l.payload, "first");
  }
  CHECK(notify_until(&loop, ctl, chan, "hello", &l));
  CHECK_STR(l.channel, chan);
  CHECK_STR(l.payload, "hello");
  CHECK_INT(l.reconnects, 0);

  /* the listening connection dies: it comes back, LISTENs again and says so */
  terminate(&loop, ctl, app, 2); /* the shared one and the listener */
  CHECK(listening_until(&loop, p, false, 10000)); /* down: a NOTIFY-kept cache must not be used */
  CHECK(run_until(&loop, &l.reconnects, 1, 10000));
  CHECK(listening_until(&loop, p, true, 10000));
  CHECK(notify_until(&loop, ctl, chan, "again", &l));
  CHECK_STR(l.payload, "again");

  close_pool(&loop, p);
  close_pool(&loop, ctl);
  CHECK_INT(g_sync_calls, 0);
  finish_loop(&loop);
}

/* Channels registered while a LISTEN is still unanswered (start-up: every
 * subsystem registers its own): libpq takes one query at a time, so they
 * wait for it instead of making the listener fail and reconnect, and all
 * are confirmed. One channel is registered per loop iteration from the
 * first, so that some arrive while the listener's LISTEN is in flight. */
static void test_listen_back_to_back(void) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  char app[64], chans[12][64];
  snprintf(app, sizeof app, "bd_test_listen2_%d", (int)getpid());
  for (int i = 0; i < 12; i++) snprintf(chans[i], sizeof chans[i], "bd_b2b_%d_%d", i, (int)getpid());
  bd_pg_config_t cfg = base_cfg(app);
  cfg.nconns = 1;
  bd_pg_pool_t *p = bd_pg_pool_new(&loop, &cfg);
  bd_pg_config_t ccfg = base_cfg("bd_test_ctl2");
  ccfg.nconns = 1;
  bd_pg_pool_t *ctl = bd_pg_pool_new(&loop, &ccfg);
  listen_rec_t l = {0};
  uv_timer_t tick;
  tick_start(&loop, &tick);
  for (int i = 0; i < 12; i++) {
    API_VOID(bd_pg_listen(p, chans[i], on_notify, on_listen_reconnect, &l));
    uv_run(&loop, UV_RUN_ONCE);
  }
  tick_stop(&loop, &tick);
  CHECK(listening_until(&loop, p, true, 10000));
  bd_pg_stats_t st;
  bd_pg_pool_stats(p, &st);
  CHECK_INT(l.reconnects, 0);
  CHECK_INT(st.reconnects, 0);
  for (int i = 11; i >= 0; i -= 5) {
    CHECK(notify_until(&loop, ctl, chans[i], "hi", &l));
    CHECK_STR(l.channel, chans[i]);
  }
  CHECK_INT(l.reconnects, 0);
  close_pool(&loop, p);
  close_pool(&loop, ctl);
  CHECK_INT(g_sync_calls, 0);
  finish_loop(&loop);
}

/* Closing
 * ------------------------------------------------------------------------ */

typedef struct {
  bd_pg_pool_t *p;  /* pool to close from a callback */
  int calls;        /* callbacks */
  int ok, canceled; /* outcomes */
  int closed;       /* close done */
  int issued_after; /* queries issued from a callback after close */
  int after_rc;     /* what bd_pg_query returned then */
} closer_t;
static closer_t g_cl;
static void closer_cb(void *ud, const bd_pg_result_t *r) {
  NOT_SYNC();
  g_cl.calls++;
  if (r->err == BD_PG_OK)
    g_cl.ok++;
  if (r->err == BD_PG_ECANCELED)
    g_cl.canceled++;
  if (ud == (void *)1) {
    /* re-entrancy: close the pool from inside a callback, then try to use it */
    API_VOID(bd_pg_pool_close(g_cl.p, on_closed, &g_cl.closed));
    g_cl.after_rc = API(bd_pg_query(g_cl.p, &st_one, 1, (const char *const[]){"1"}, closer_cb, NULL));
    g_cl.issued_after = 1;
  }
}

static void test_close(void) {
  /* close with queries queued and in flight */
  uv_loop_t loop;
  uv_loop_init(&loop);
  bd_pg_config_t cfg = base_cfg("bd_test_close");
  cfg.nconns = 2;
  cfg.max_inflight = 8;
  bd_pg_pool_t *p = bd_pg_pool_new(&loop, &cfg);
  CHECK(wait_connected(&loop, p, 2, 10000));
  memset(&g_cl, 0, sizeof g_cl);
  for (int i = 0; i < 100; i++)
    CHECK_INT(API(bd_pg_query(p, &st_one, 1, (const char *const[]){"1"}, closer_cb, NULL)), 0);
  close_pool(&loop, p);
  CHECK_INT(g_cl.calls, 100);
  CHECK_INT(g_cl.ok, 16);       /* the in-flight ones finished */
  CHECK_INT(g_cl.canceled, 84); /* the queued ones were canceled */
  finish_loop(&loop);

  /* close from inside a query callback */
  uv_loop_init(&loop);
  p = bd_pg_pool_new(&loop, &cfg);
  memset(&g_cl, 0, sizeof g_cl);
  g_cl.p = p;
  CHECK_INT(API(bd_pg_query(p, &st_one, 1, (const char *const[]){"1"}, closer_cb, (void *)1)), 0);
  for (int i = 0; i < 5; i++)
    CHECK_INT(API(bd_pg_query(p, &st_one, 1, (const char *const[]){"1"}, closer_cb, NULL)), 0);
  CHECK(run_until(&loop, &g_cl.closed, 1, 10000));
  CHECK_INT(g_cl.closed, 1);
  CHECK(g_cl.issued_after);
  CHECK_INT(g_cl.after_rc, BD_PG_EUNAVAIL); /* a closing pool takes nothing new */
  CHECK_INT(g_cl.calls, 6);
  finish_loop(&loop);

  /* close while a connection is pinned: done waits for the release */
  uv_loop_init(&loop);
  p = bd_pg_pool_new(&loop, &cfg);
  bd_pg_conn_t *c = acquire_wait(&loop, p);
  slot_t b;
  int bdone = 0;
  memset(&b, 0, sizeof b);
  b.done = &bdone;
  CHECK_INT(API(bd_pg_conn_exec(c, "BEGIN", 0, NULL, slot_cb, &b)), 0);
  CHECK(run_until(&loop, &bdone, 1, 10000));
  int closed = 0;
  API_VOID(bd_pg_pool_close(p, on_closed, &closed));
  run_for(&loop, 200);
  CHECK_INT(closed, 0);
  /* the owner may still finish its work */
  bdone = 0;
  CHECK_INT(API(bd_pg_conn_exec(c, "SELECT 5", 0, NULL, slot_cb, &b)), 0);
  CHECK(run_until(&loop, &bdone, 1, 10000));
  CHECK_INT(b.err, BD_PG_OK);
  CHECK_STR(b.v[0], "5");
  API_VOID(bd_pg_release(c, false)); /* rolls back, then closes */
  CHECK_INT(closed, 0);
  CHECK(run_until(&loop, &closed, 1, 10000));
  CHECK_INT(closed, 1);
  finish_loop(&loop);

  /* close while still connecting, with a listener */
  uv_loop_init(&loop);
  p = bd_pg_pool_new(&loop, &cfg);
  listen_rec_t l = {0};
  API_VOID(bd_pg_listen(p, "bd_test_close_chan", on_notify, NULL, &l));
  close_pool(&loop, p);
  CHECK_INT(g_sync_calls, 0);
  finish_loop(&loop);
}

/* Background statements (a render job's writes) stay off the last shared
 * connection without background work, and a request's query goes there
 * instead of waiting in a pipeline behind them; with one connection up the
 * two kinds share it. */
static bd_pg_stmt_t st_bg_sleep = BD_PG_STMT_BG("SELECT pg_backend_pid(), pg_sleep(0.4)");
static bd_pg_stmt_t st_pid = BD_PG_STMT("SELECT pg_backend_pid()");

typedef struct {
  slot_t s;
  uint64_t done_ms; /* when its callback ran */
} timed_t;
static void timed_cb(void *ud, const bd_pg_result_t *r) {
  timed_t *t = ud;
  t->done_ms = bd_now_ms();
  slot_cb(&t->s, r);
}

static void background_lane(int nconns) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  bd_pg_config_t cfg = base_cfg("bd_test_bg");
  cfg.nconns = nconns;
  bd_pg_pool_t *p = bd_pg_pool_new(&loop, &cfg);
  CHECK(wait_connected(&loop, p, nconns, 10000));
  enum { NBG = 6 };
  static timed_t bg[NBG], fg;
  int done = 0;
  memset(bg, 0, sizeof bg);
  memset(&fg, 0, sizeof fg);
  for (int i = 0; i < NBG; i++) {
    bg[i].s.done = &done;
    CHECK_INT(API(bd_pg_query(p, &st_bg_sleep, 0, NULL, timed_cb, &bg[i])), 0);
  }
  fg.s.done = &done;
  uint64_t t0 = bd_now_ms();
  CHECK_INT(API(bd_pg_query(p, &st_pid, 0, NULL, timed_cb, &fg)), 0);
  CHECK(run_until(&loop, &done, NBG + 1, 20000));
  CHECK_INT(fg.s.err, BD_PG_OK);
  for (int i = 0; i < NBG; i++) {
    CHECK_INT(bg[i].s.calls, 1);
    CHECK_INT(bg[i].s.err, BD_PG_OK);
  }
  if (nconns >= 2) {
    /* the request's query did not wait behind a 0.4 s background one, and
     * ran on a connection that had none */
    CHECK(fg.done_ms - t0 < 300);
    for (int i = 0; i < NBG; i++) CHECK(strcmp(fg.s.v[0], bg[i].s.v[0]) != 0);
    /* the background ones used the other connections (nconns - 1 of them) */
    int pids = 0;
    for (int i = 0; i < NBG; i++) {
      bool seen = false;
      for (int k = 0; k < i; k++) seen |= !strcmp(bg[k].s.v[0], bg[i].s.v[0]);
      if (!seen) pids++;
    }
    CHECK_INT(pids, nconns - 1);
  } else {
    CHECK(!strcmp(fg.s.v[0], bg[0].s.v[0])); /* one connection: shared, both done */
  }
  close_pool(&loop, p);
  CHECK_INT(g_sync_calls, 0);
  finish_loop(&loop);
}

static void test_background_lane(void) {
  background_lane(3);
  background_lane(1);
}

/* PG_TEST_ONLY=name runs one test (e.g. PG_TEST_ONLY=test_copy). */
#define RUN_SEL(fn)                                                                                          \
  do {                                                                                                       \
    const char *only_ = getenv("PG_TEST_ONLY");                                                              \
    if (!only_ || !strcmp(only_, #fn))                                                                       \
      RUN(fn);                                                                                               \
  } while (0)

int main(void) {
  load_url();
  signal(SIGPIPE, SIG_IGN);
  alarm(300); /* a hang is a failure, not a stuck CI job */
  RUN_SEL(test_simple);
  RUN_SEL(test_concurrent);
  RUN_SEL(test_pipeline_error);
  RUN_SEL(test_pinned_tx);
  RUN_SEL(test_copy);
  RUN_SEL(test_reconnect);
  RUN_SEL(test_unavailable);
  RUN_SEL(test_connect_timeout);
  RUN_SEL(test_listen);
  RUN_SEL(test_listen_back_to_back);
  RUN_SEL(test_close);
  RUN_SEL(test_background_lane);
  UNIT_DONE();
}

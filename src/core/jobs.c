/* jobs.c: claimer, lease renewal and completion of durable jobs. */
#include "jobs.h"

#include "log.h"
#include "metrics.h"

#include <stdio.h>
#include <stdlib.h>

#define MAX_KINDS 16

typedef struct {
  const char *kind;     /* static name */
  bd_job_run_fn run;    /* handler */
  int concurrency;      /* max running here */
  int running;          /* running now */
  bool want;            /* a claim for this kind is due (notified, polled, capacity freed) */
} kind_t;

static struct {
  uv_loop_t *loop;          /* the loop */
  bd_pg_pool_t *pg;         /* database */
  bd_jobs_config_t cfg;     /* copy of the configuration */
  char instance[96];        /* owned copy of cfg.instance */
  kind_t kinds[MAX_KINDS];  /* registered kinds */
  int nkinds;               /* number of kinds */
  uv_timer_t poll;          /* periodic claim */
  bool started;             /* poll timer initialised */
  bool claiming;            /* a claim query is in flight */
  bool stopping;            /* no more claims */
  bd_job_t *running;        /* jobs owned by this process */
  int nrunning;             /* length of running */
  void (*stop_done)(void *);/* stop completion */
  void *stop_ud;            /* its argument */
  uv_timer_t grace;         /* stop deadline */
  bd_jobs_stats_t stats;    /* counters */
} J;

static bd_pg_stmt_t S_CLAIM = BD_PG_STMT(
    "UPDATE bd_jobs j SET state = 'running', locked_by = $1,"
    " lease_until = now() + make_interval(secs => $2::int / 1000.0),"
    " attempts = j.attempts + 1, updated_at = now()"
    " WHERE j.id IN (SELECT id FROM bd_jobs"
    "   WHERE kind = $3 AND ((state = 'queued' AND run_at <= now())"
    "                        OR (state = 'running' AND lease_until < now()))"
    "   ORDER BY id LIMIT $4 FOR UPDATE SKIP LOCKED)"
    " RETURNING j.id, j.kind, j.ref, j.payload::text, j.attempts");
static bd_pg_stmt_t S_RENEW = BD_PG_STMT(
    "UPDATE bd_jobs SET lease_until = now() + make_interval(secs => $3::int / 1000.0), updated_at = now()"
    " WHERE id = $1 AND locked_by = $2 AND state = 'running' RETURNING id");
static bd_pg_stmt_t S_DONE = BD_PG_STMT(
    "UPDATE bd_jobs SET state = 'done', lease_until = NULL, updated_at = now()"
    " WHERE id = $1 AND locked_by = $2 AND state = 'running'");
static bd_pg_stmt_t S_RETRY = BD_PG_STMT(
    "UPDATE bd_jobs SET state = CASE WHEN attempts >= max_attempts THEN 'failed' ELSE 'queued' END,"
    " run_at = now() + make_interval(secs => $4::int / 1000.0), lease_until = NULL, locked_by = NULL,"
    " last_error = $3, updated_at = now()"
    " WHERE id = $1 AND locked_by = $2 AND state = 'running'");
static bd_pg_stmt_t S_YIELD = BD_PG_STMT(
    "UPDATE bd_jobs SET state = 'queued', attempts = greatest(attempts - 1, 0), lease_until = NULL,"
    " locked_by = NULL, updated_at = now()"
    " WHERE id = $1 AND locked_by = $2 AND state = 'running'");

static void claim(void);

static kind_t *find_kind(const char *k) {
  for (int i = 0; i < J.nkinds; i++)
    if (!strcmp(J.kinds[i].kind, k)) return &J.kinds[i];
  return NULL;
}

void bd_jobs_register(const char *kind, bd_job_run_fn run, int concurrency) {
  if (J.nkinds >= MAX_KINDS) abort();
  J.kinds[J.nkinds++] = (kind_t){kind, run, concurrency > 0 ? concurrency : 1, 0, false};
}

static void maybe_stopped(void) {
  if (!J.stopping || J.nrunning > 0 || !J.stop_done) return;
  void (*done)(void *) = J.stop_done;
  J.stop_done = NULL;
  uv_timer_stop(&J.grace);
  uv_close((uv_handle_t *)&J.grace, NULL);
  uv_close((uv_handle_t *)&J.poll, NULL);
  J.started = false;
  done(J.stop_ud);
}

static void on_renew_closed(uv_handle_t *h) {
  bd_job_t *job = h->data;
  free(job->kind);
  free(job->ref);
  json_decref(job->payload);
  free(job);
}

/* Unlinks the job and frees it once its timer is closed. */
static void job_free(bd_job_t *job) {
  for (bd_job_t **pp = &J.running; *pp; pp = &(*pp)->next)
    if (*pp == job) {
      *pp = job->next;
      break;
    }
  J.nrunning--;
  kind_t *k = find_kind(job->kind);
  if (k) {
    k->running--;
    k->want = true; /* capacity freed: more of its kind may be queued */
  }
  uv_timer_stop(&job->renew);
  uv_close((uv_handle_t *)&job->renew, on_renew_closed);
  maybe_stopped();
  if (!J.stopping) claim();
}

static void on_finish_written(void *ud, const bd_pg_result_t *r) {
  bd_job_t *job = ud;
  if (r->err != BD_PG_OK)
    bd_warn("job %lld: could not record its end (%s); its lease will expire and it will run again",
            (long long)job->id, r->message);
  job_free(job);
}

static void finish(bd_job_t *job, bd_pg_stmt_t *stmt, int n, const char *const *params) {
  if (job->finishing) return;
  job->finishing = true;
  if (bd_pg_query(J.pg, stmt, n, params, on_finish_written, job) != 0) {
    bd_warn("job %lld: database queue full while finishing", (long long)job->id);
    job_free(job);
  }
}

void bd_job_done(bd_job_t *job) {
  char id[24];
  snprintf(id, sizeof id, "%lld", (long long)job->id);
  const char *p[] = {id, J.instance};
  J.stats.completed++;
  bd_metrics_inc("batchd_jobs_completed_total", "Jobs completed.", 1);
  finish(job, &S_DONE, 2, p);
}

void bd_job_retry(bd_job_t *job, const char *error, uint32_t delay_ms) {
  char id[24], d[24];
  snprintf(id, sizeof id, "%lld", (long long)job->id);
  snprintf(d, sizeof d, "%u", delay_ms);
  const char *p[] = {id, J.instance, error ? error : "", d};
  J.stats.retried++;
  bd_metrics_inc("batchd_jobs_retried_total", "Jobs failed and retried (or failed for good).", 1);
  bd_warn("job %lld (%s %s) failed: %s", (long long)job->id, job->kind, job->ref, error ? error : "");
  finish(job, &S_RETRY, 4, p);
}

void bd_job_yield(bd_job_t *job) {
  char id[24];
  snprintf(id, sizeof id, "%lld", (long long)job->id);
  const char *p[] = {id, J.instance};
  finish(job, &S_YIELD, 2, p);
}

bool bd_job_stopping(const bd_job_t *job) { return J.stopping || job->lease_lost; }

/* The renewal carries the job's id, not the job: the job may have finished
 * and been freed while the renewal was in flight (then its lease row is
 * gone or done and the renewal matched nothing: not a lost lease). */
static bd_job_t *running_job(int64_t id) {
  for (bd_job_t *j = J.running; j; j = j->next)
    if (j->id == id) return j;
  return NULL;
}

static void on_renewed(void *ud, const bd_pg_result_t *r) {
  bd_job_t *job = running_job((int64_t)(intptr_t)ud);
  if (job && !job->finishing && r->err == BD_PG_OK && PQntuples(r->res) == 0) {
    bd_warn("job %lld: lease lost to another process", (long long)job->id);
    job->lease_lost = true;
  }
}

static void on_renew_timer(uv_timer_t *t) {
  bd_job_t *job = t->data;
  if (job->finishing) return;
  char id[24], ms[24];
  snprintf(id, sizeof id, "%lld", (long long)job->id);
  snprintf(ms, sizeof ms, "%u", J.cfg.lease_ms);
  const char *p[] = {id, J.instance, ms};
  /* the callback must not touch a freed job: it gets the id and looks it up */
  if (bd_pg_query(J.pg, &S_RENEW, 3, p, on_renewed, (void *)(intptr_t)job->id) != 0) {
    /* queue full: the next tick tries again, well within the lease */
  }
}

typedef struct {
  kind_t *kind; /* which kind this claim was for */
  int limit;    /* how many it asked for */
} claim_ctx_t;

static void on_claimed(void *ud, const bd_pg_result_t *r) {
  claim_ctx_t *cc = ud;
  kind_t *k = cc->kind;
  int limit = cc->limit;
  free(cc);
  J.claiming = false;
  if (r->err != BD_PG_OK) {
    /* database down: the poll timer will try again */
    return;
  }
  int n = PQntuples(r->res);
  for (int i = 0; i < n; i++) {
    bd_job_t *job = bd_calloc(1, sizeof *job);
    job->id = strtoll(PQgetvalue(r->res, i, 0), NULL, 10);
    job->kind = bd_strdup(PQgetvalue(r->res, i, 1));
    job->ref = bd_strdup(PQgetvalue(r->res, i, 2));
    job->payload = json_loads(PQgetvalue(r->res, i, 3), 0, NULL);
    if (!job->payload) job->payload = json_object();
    job->attempts = atoi(PQgetvalue(r->res, i, 4));
    uv_timer_init(J.loop, &job->renew);
    job->renew.data = job;
    uint32_t every = J.cfg.lease_ms / 3 ? J.cfg.lease_ms / 3 : 1;
    uv_timer_start(&job->renew, on_renew_timer, every, every);
    job->next = J.running;
    J.running = job;
    J.nrunning++;
    k->running++;
    J.stats.claimed++;
    bd_metrics_inc("batchd_jobs_claimed_total", "Jobs claimed by this process.", 1);
    k->run(job);
  }
  if (n >= limit) k->want = true; /* it got all it asked for: there may be more */
  claim();
}

/* One claim query in flight at a time, for the next kind (round robin, so
 * none starves) whose claim is due and that has free capacity; its answer
 * chains to the next kind due (on_claimed -> claim), until none is. A kind
 * whose claim is due but that is at capacity stays due: the end of one of
 * its jobs claims for it. */
static void claim(void) {
  if (!J.started || J.stopping || J.claiming) return;
  static int rr;
  for (int t = 0; t < J.nkinds; t++) {
    kind_t *k = &J.kinds[(rr + t) % J.nkinds];
    int free_slots = k->concurrency - k->running;
    if (!k->want || free_slots <= 0) continue;
    rr = (rr + t + 1) % J.nkinds;
    k->want = false;
    char lease[24], lim[24];
    snprintf(lease, sizeof lease, "%u", J.cfg.lease_ms);
    snprintf(lim, sizeof lim, "%d", free_slots);
    const char *p[] = {J.instance, lease, k->kind, lim};
    claim_ctx_t *cc = bd_malloc(sizeof *cc);
    cc->kind = k;
    cc->limit = free_slots;
    if (bd_pg_query(J.pg, &S_CLAIM, 4, p, on_claimed, cc) != 0) {
      free(cc);
      k->want = true; /* queue full: still due, the next tick sends it */
      return;
    }
    J.claiming = true;
    return;
  }
}

static void want_all(void) {
  for (int i = 0; i < J.nkinds; i++) J.kinds[i].want = true;
}

/* A claim for `kind` is due; an unknown kind (or NULL) makes every kind's
 * due. Returns the kind, or NULL for every kind. */
static kind_t *want_kind(const char *kind) {
  kind_t *k = kind ? find_kind(kind) : NULL;
  if (k) k->want = true;
  else want_all();
  return k;
}

static void on_poll(uv_timer_t *t) {
  want_all(); /* each tick offers every kind a claim */
  claim();
}

/* The producers notify with the job's kind as the payload: a claim for that
 * kind is due (not for whichever kind the round robin is at: a claim for
 * another kind would find nothing and leave the job to the next poll). Any
 * other payload makes every kind's claim due. */
static void on_notify(void *ud, const char *channel, const char *payload) {
  want_kind(payload);
  claim();
}

static void on_listen_reconnect(void *ud) {
  want_all(); /* notifications may have been missed */
  claim();
}

void bd_jobs_start(uv_loop_t *loop, bd_pg_pool_t *pg, const bd_jobs_config_t *cfg) {
  J.loop = loop;
  J.pg = pg;
  J.cfg = *cfg;
  snprintf(J.instance, sizeof J.instance, "%s", cfg->instance);
  J.cfg.instance = J.instance;
  uv_timer_init(loop, &J.poll);
  uv_timer_init(loop, &J.grace);
  J.started = true;
  uv_timer_start(&J.poll, on_poll, 50, cfg->poll_ms);
  bd_pg_listen(pg, "bd_jobs", on_notify, on_listen_reconnect, NULL);
}

void bd_jobs_kick(void) {
  want_all();
  claim();
}

/* A background statement: a NOTIFY holds PostgreSQL's cluster-wide notify
 * lock through its commit's WAL flush, which can take long when other
 * transactions' WAL is being written; requests' queries must not wait
 * behind it in a pipeline. */
static bd_pg_stmt_t S_NOTIFY = BD_PG_STMT_BG("SELECT pg_notify('bd_jobs', $1)");

static struct {
  bool inflight;   /* one NOTIFY at a time */
  unsigned due;    /* kinds to tell the others about (bit per kind index) */
} N;

static void send_notify(void);

static void on_notified(void *ud, const bd_pg_result_t *r) {
  (void)ud;
  (void)r; /* lost (database away): the others' polls find the job */
  N.inflight = false;
  send_notify();
}

/* Coalesced: what became due while one was in flight goes in the next one
 * (the kind's name, or '' for every kind when several are due). */
static void send_notify(void) {
  if (N.inflight || !N.due || !J.started || J.stopping) return;
  int only = -1;
  for (int i = 0; i < J.nkinds; i++)
    if (N.due & (1u << i)) only = only == -1 ? i : -2;
  const char *p[] = {only >= 0 ? J.kinds[only].kind : ""};
  N.due = 0;
  if (bd_pg_query(J.pg, &S_NOTIFY, 1, p, on_notified, NULL) != 0) return; /* queue full: the polls find it */
  N.inflight = true;
}

void bd_jobs_notify(const char *kind) {
  kind_t *k = want_kind(kind);
  N.due |= k ? 1u << (k - J.kinds) : (1u << J.nkinds) - 1;
  claim();
  send_notify();
}

static void on_grace(uv_timer_t *t) {
  /* Handlers yield between chunks, so this only happens when one chunk
   * takes longer than the grace period (a render stuck in a worker thread
   * cannot be interrupted). We keep waiting: the loop cannot close before
   * that work returns anyway, and the job is yielded when it does. */
  if (J.nrunning) bd_warn("shutdown: still waiting for %d job(s) to reach a checkpoint", J.nrunning);
}

void bd_jobs_stop(uint32_t grace_ms, void (*done)(void *ud), void *ud) {
  J.stopping = true;
  J.stop_done = done;
  J.stop_ud = ud;
  if (!J.started) {
    J.stop_done = NULL;
    done(ud);
    return;
  }
  uv_timer_stop(&J.poll);
  uv_timer_start(&J.grace, on_grace, grace_ms, 0);
  maybe_stopped();
}

void bd_jobs_stats(bd_jobs_stats_t *out) {
  *out = J.stats;
  out->running = J.nrunning;
}

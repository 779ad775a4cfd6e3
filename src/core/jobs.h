/* jobs.h: durable jobs in PostgreSQL (table bd_jobs). Loop thread only.
 *
 * Producers insert a row into bd_jobs in the same transaction that creates
 * the thing to process (so an accepted batch always has its job) and
 * NOTIFY bd_jobs. Every process runs a claimer: on a timer and on NOTIFY it
 * claims up to the free capacity of each registered kind with
 * FOR UPDATE SKIP LOCKED, setting a lease. While a job runs its lease is
 * renewed every lease/3; a process that dies stops renewing and the job is
 * claimed again by anyone once the lease has expired. Handlers must
 * therefore be idempotent per item (e.g. `UPDATE … WHERE status='pending'`).
 *
 * Handler contract: `run` is called on the loop thread with a job it owns
 * and must eventually call exactly one of bd_job_done, bd_job_retry or
 * bd_job_yield. While running it should check bd_job_stopping() between
 * chunks of work and yield when it returns true (shutdown or lease lost).
 */
#ifndef BD_JOBS_H
#define BD_JOBS_H

#include "pg.h"
#include <jansson.h>

typedef struct bd_job bd_job_t;
typedef void (*bd_job_run_fn)(bd_job_t *job);

struct bd_job {
  int64_t id;          /* bd_jobs.id */
  char *kind;          /* handler name */
  char *ref;           /* what it works on */
  json_t *payload;     /* parsed payload (owned by the job) */
  int attempts;        /* including this one */
  void *data;          /* the handler's own state */
  /* private */
  uv_timer_t renew;    /* lease renewal */
  bool lease_lost;     /* a renewal found the job taken over */
  bool finishing;      /* done/retry/yield was called */
  bd_job_t *next;      /* running list */
};

typedef struct {
  const char *instance;  /* unique per process: hostname:pid:random */
  uint32_t lease_ms;     /* lease length */
  uint32_t poll_ms;      /* poll interval when no NOTIFY arrives */
} bd_jobs_config_t;

/* Registers a kind with the number of jobs of that kind this process runs
 * at once. Before bd_jobs_start. */
void bd_jobs_register(const char *kind, bd_job_run_fn run, int concurrency);
void bd_jobs_start(uv_loop_t *loop, bd_pg_pool_t *pg, const bd_jobs_config_t *cfg);
/* Stops claiming; running handlers see bd_job_stopping(). `done` runs when
 * every running job has finished or yielded (or after grace_ms, when the
 * rest are left to their leases). */
void bd_jobs_stop(uint32_t grace_ms, void (*done)(void *ud), void *ud);
/* Wakes the claimer now (e.g. after this process enqueued a job). */
void bd_jobs_kick(void);
/* After a job of `kind` was enqueued and committed: claims for that kind
 * here now, and tells the other processes with a NOTIFY of its own (a
 * statement apart from the enqueuing transaction: a NOTIFY inside it holds
 * PostgreSQL's cluster-wide notify lock through that transaction's commit,
 * so concurrent enqueuers waited for each other's WAL flush). */
void bd_jobs_notify(const char *kind);

bool bd_job_stopping(const bd_job_t *job);
void bd_job_done(bd_job_t *job);
/* Failed: retried after `delay_ms` unless attempts are exhausted. */
void bd_job_retry(bd_job_t *job, const char *error, uint32_t delay_ms);
/* Gives the job back without counting an attempt (shutdown, lease lost). */
void bd_job_yield(bd_job_t *job);

typedef struct {
  int running;          /* jobs running in this process */
  uint64_t claimed;     /* claimed since start */
  uint64_t completed;   /* done */
  uint64_t retried;     /* retried or failed */
} bd_jobs_stats_t;
void bd_jobs_stats(bd_jobs_stats_t *out);

#endif

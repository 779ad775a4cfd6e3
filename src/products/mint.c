/* mint.c: the pp.mint durable job, which writes the units of a mint request
 * (src/sql/005_mint.sql) with COPY.
 *
 * The request reserved a contiguous id range for the job's units. The job
 * cuts it into chunks of BATCHD_MINT_CHUNK_UNITS units, fewer when that
 * would leave a writer idle (fixed for the job at its first start, see
 * S_START) and writes each chunk as one COPY, so one
 * transaction. BATCHD_MINT_WRITERS writers ("lanes"), each on its own
 * pinned connection, take the next chunk not yet written: PostgreSQL's
 * COPY runs on one core per connection, so two writers use both cores of
 * a small machine.
 *   - serials are generated here, in C (gs1.h: ~20 ms per million), or, for
 *     serials the caller brought, read from the job row one chunk at a time;
 *   - COPY text is produced a slice at a time and handed to the connection
 *     only while its send buffer is below the high-water mark (on_drain), so
 *     memory stays bounded and the loop never stalls on a big chunk;
 *   - a chunk is committed iff the unit with its first id exists (COPY is
 *     atomic), so a taken-over job asks the database which chunks are
 *     missing (pp_mint_start) and writes only those: no unit is lost or
 *     doubled, and a stale owner still writing would hit the primary key;
 *   - a generated serial that collides with an existing one of the GTIN
 *     (probability ~ n^2 / 2^61) fails that chunk's COPY on the unique
 *     index; the chunk is drawn again (a few times) with the same ids. A
 *     provided serial that collides (only possible when a generated one took
 *     it after the request was checked) fails the job with that error.
 *   - job states (tieback's): QUEUED, RESERVED once claimed (pp_mint_start),
 *     PROCESSING once the first writer holds a connection, then COMPLETED
 *     or FAILED. Each chunk is a "cycle": a cycle whose COPY fails for any
 *     other reason is recorded (pp_mint_cycle_failed) and the job is
 *     retried (writing only the missing cycles); a cycle's 4th failure
 *     fails the job, which keeps the units of the cycles committed.
 */
#include "app.h"
#include "gs1.h"
#include "jobs.h"
#include "log.h"
#include "products.h"

#include <stdio.h>
#include <stdlib.h>

#define MINT_SLICE_UNITS 4096    /* units formatted per bd_pg_copy_put */
#define MINT_SERIAL_RETRIES 5    /* redraws of a chunk whose generated serial collided */
#define MINT_MAX_LANES 8         /* upper bound of BATCHD_MINT_WRITERS */
#define MINT_CYCLE_ATTEMPTS 4    /* a cycle (chunk) that fails is retried 3 times, then the job fails */

typedef struct mint_run_s mint_run_t;

typedef struct {
  mint_run_t *m;              /* the job this writer works for */
  bd_pg_conn_t *conn;         /* pinned connection, NULL when not held */
  int64_t start, end;         /* the chunk being written: ids [start, end) */
  int64_t cur;                /* next id to format */
  char *gen;                  /* generated serials of the chunk ((len+1) each) */
  char *prov;                 /* provided serials of the chunk, '\n'-separated */
  const char *prov_p;         /* next provided serial */
  int redraws;                /* times the current chunk was drawn again */
  int64_t cycle;              /* chunk number being written, -1 between chunks */
  bd_buf_t out;               /* COPY text slice */
} lane_t;

struct mint_run_s {
  bd_job_t *job;                     /* the pp.mint job (ref = mint job id) */
  char gtin[BD_GS1_GTIN14_LEN + 1];  /* AI 01 of every unit */
  bool serial_mode;                  /* identity mode serial (else batch: no AI 21) */
  bool provided;                     /* serials come from the job row (_serials) */
  int64_t first, qty, chunk;         /* id range [first, first + qty), chunk size */
  int64_t *missing;                  /* chunk numbers not yet committed, ascending */
  int nmissing, taken;               /* their count, how many lanes took */
  lane_t lanes[MINT_MAX_LANES];      /* writers */
  int nlanes;                        /* writers started */
  int holding, acquiring;            /* lanes holding / waiting for a connection */
  char error[600];                   /* fatal: the job ends FAILED with this */
  char retry[300];                   /* transient: the job is retried */
  int64_t failed_cycle;              /* the chunk whose failure set retry, -1 if none */
  bool processing;                   /* PROCESSING has been recorded (by the first writer) */
  bool yield;                        /* give the job back (another owner wrote) */
};

/* The chunk size given at the first start (pp_mint_start keeps a
 * taken-over job's own): BATCHD_MINT_CHUNK_UNITS ($2), but small enough
 * that every writer ($3) gets a chunk, down to MINT_SPLIT_MIN units ($4).
 * A 100k-unit job is then two chunks on two cores, not one chunk on one. */
#define MINT_SPLIT_MIN 5000
static bd_pg_stmt_t S_START = BD_PG_STMT(
    "SELECT status, gtin, identity_mode, provided, first_unit_id, quantity, chunk_units, missing::text"
    " FROM pp_mint_start($1, (SELECT least($2::int, greatest($4::int, (j.requested_quantity + $3::int - 1) / $3::int))"
    "                         FROM pp_mint_jobs j WHERE j.id = $1::uuid))");
static bd_pg_stmt_t S_FINISH = BD_PG_STMT("SELECT pp_mint_finish($1, $2)");
static bd_pg_stmt_t S_PROCESSING = BD_PG_STMT("SELECT pp_mint_processing($1)");
static bd_pg_stmt_t S_CYCLE_FAILED = BD_PG_STMT("SELECT pp_mint_cycle_failed($1, $2, $3)");
static bd_pg_stmt_t S_PROVIDED = BD_PG_STMT(
    "SELECT array_to_string(serials[$2::int:$3::int], chr(10)) FROM pp_mint_jobs WHERE id = $1");

static void lane_next(lane_t *l);

static void run_free(mint_run_t *m) {
  for (int i = 0; i < MINT_MAX_LANES; i++) {
    free(m->lanes[i].gen);
    free(m->lanes[i].prov);
    bd_buf_free(&m->lanes[i].out);
  }
  free(m->missing);
  free(m);
}

static void on_finished(void *ud, const bd_pg_result_t *r) {
  mint_run_t *m = ud;
  bd_job_t *job = m->job;
  bool ok = r->err == BD_PG_OK;
  char msg[256];
  snprintf(msg, sizeof msg, "%s", ok ? "" : r->message);
  run_free(m);
  if (ok) bd_job_done(job);
  else bd_job_retry(job, msg, 1000);
}

/* Marks the job COMPLETED (error NULL) or FAILED, then ends it. */
static void finish(mint_run_t *m, const char *error) {
  const char *p[] = {m->job->ref, error};
  if (bd_pg_query(bd_app.pg, &S_FINISH, 2, p, on_finished, m) != 0) {
    bd_job_t *job = m->job;
    run_free(m);
    bd_job_retry(job, "database queue full", 1000);
  }
}

static void retry_later(mint_run_t *m) {
  bd_job_t *job = m->job;
  char msg[300];
  snprintf(msg, sizeof msg, "%s", m->retry);
  run_free(m);
  bd_job_retry(job, msg, 1000);
}

/* A failed cycle was recorded: the job fails after its MINT_CYCLE_ATTEMPTS-th
 * failure (keeping the cycles committed), else it is retried. */
static void on_cycle_failed(void *ud, const bd_pg_result_t *r) {
  mint_run_t *m = ud;
  int n = r->err == BD_PG_OK && PQntuples(r->res) == 1 ? atoi(PQgetvalue(r->res, 0, 0)) : 0;
  if (n >= MINT_CYCLE_ATTEMPTS) {
    snprintf(m->error, sizeof m->error, "cycle %lld failed %d times: %s", (long long)m->failed_cycle + 1, n,
             m->retry);
    finish(m, m->error);
  } else {
    retry_later(m);
  }
}

/* Every lane has stopped: end the run as its state says. */
static void run_end(mint_run_t *m) {
  bd_job_t *job = m->job;
  if (m->error[0]) {
    finish(m, m->error);
  } else if (m->retry[0] && m->failed_cycle >= 0) {
    char k[24];
    snprintf(k, sizeof k, "%lld", (long long)m->failed_cycle);
    const char *p[] = {job->ref, k, m->retry};
    if (bd_pg_query(bd_app.pg, &S_CYCLE_FAILED, 3, p, on_cycle_failed, m) != 0) retry_later(m);
  } else if (m->retry[0]) {
    retry_later(m);
  } else if (m->yield || m->taken < m->nmissing) {
    run_free(m);
    bd_job_yield(job);
  } else {
    finish(m, NULL);
  }
}

static void lane_stop(lane_t *l, bool broken) {
  mint_run_t *m = l->m;
  if (l->conn) {
    bd_pg_release(l->conn, broken);
    l->conn = NULL;
    m->holding--;
  }
  if (m->holding == 0 && m->acquiring == 0) run_end(m);
}

static void lane_retry(lane_t *l, const char *msg) {
  if (!l->m->retry[0]) {
    snprintf(l->m->retry, sizeof l->m->retry, "%s", msg);
    l->m->failed_cycle = l->cycle;
  }
  lane_stop(l, true);
}

/* Decimal digits of v into p; returns the length. */
static size_t put_i64(char *p, int64_t v) {
  char t[24];
  size_t n = 0;
  do t[n++] = (char)('0' + v % 10), v /= 10;
  while (v);
  for (size_t i = 0; i < n; i++) p[i] = t[n - 1 - i];
  return n;
}

static void on_copy_done(void *ud, const bd_pg_result_t *r);

/* Formats and queues COPY rows of the lane's chunk until the connection's
 * buffer is full (then continues from on_drain) or the chunk is complete. */
static void produce(void *ud) {
  lane_t *l = ud;
  mint_run_t *m = l->m;
  while (l->cur < l->end) {
    int64_t upto = BD_MIN(l->end, l->cur + MINT_SLICE_UNITS);
    bd_buf_reset(&l->out);
    bd_buf_reserve(&l->out, (size_t)(upto - l->cur) * 64);
    char *p = l->out.data;
    for (int64_t id = l->cur; id < upto; id++) {
      p += put_i64(p, id);
      *p++ = '\t';
      memcpy(p, m->gtin, BD_GS1_GTIN14_LEN);
      p += BD_GS1_GTIN14_LEN;
      *p++ = '\t';
      if (!m->serial_mode) {
        memcpy(p, "\\N", 2);
        p += 2;
      } else if (m->provided) {
        /* validated set-82 values: no tab, newline or backslash to escape */
        const char *s = l->prov_p, *e = strchr(s, '\n');
        size_t n = e ? (size_t)(e - s) : strlen(s);
        memcpy(p, s, n);
        p += n;
        l->prov_p = e ? e + 1 : s + n;
      } else {
        memcpy(p, l->gen + (size_t)(id - l->start) * (BD_GS1_SERIAL_LEN_DEFAULT + 1), BD_GS1_SERIAL_LEN_DEFAULT);
        p += BD_GS1_SERIAL_LEN_DEFAULT;
      }
      *p++ = '\n';
    }
    l->out.len = (size_t)(p - l->out.data);
    l->cur = upto;
    int rc = bd_pg_copy_put(l->conn, l->out.data, l->out.len);
    if (rc < 0) break; /* copy_end reports the error */
    if (rc == 1 && l->cur < l->end) {
      bd_pg_copy_on_drain(l->conn, produce, l);
      return;
    }
  }
  if (bd_pg_copy_end(l->conn, NULL, on_copy_done, l) != 0) lane_retry(l, "database connection lost");
}

static void on_copy_ready(void *ud, const bd_pg_result_t *r) {
  lane_t *l = ud;
  if (r->err) {
    lane_retry(l, r->message);
    return;
  }
  produce(l);
}

static void start_copy(lane_t *l) {
  l->cur = l->start;
  if (bd_pg_copy_start(l->conn, "COPY pp_units (id, gtin, serial) FROM STDIN", on_copy_ready, l) != 0)
    lane_retry(l, "database connection lost");
}

static void on_copy_done(void *ud, const bd_pg_result_t *r) {
  lane_t *l = ud;
  mint_run_t *m = l->m;
  if (r->err == BD_PG_ESQL && !strcmp(r->sqlstate, "23505")) {
    if (strstr(r->message, "pp_units_pkey")) {
      /* another owner wrote these ids: the job is no longer ours */
      bd_warn("mint job %s: units already written by another owner", m->job->ref);
      m->yield = true;
      lane_stop(l, false);
    } else if (!m->provided && l->redraws < MINT_SERIAL_RETRIES) {
      l->redraws++;
      bd_gs1_serials_generate(l->gen, (size_t)(l->end - l->start), BD_GS1_SERIAL_LEN_DEFAULT);
      start_copy(l);
    } else {
      if (!m->error[0])
        snprintf(m->error, sizeof m->error, "serial conflict: %s%s%s", r->message, r->detail ? " " : "",
                 r->detail ? r->detail : "");
      lane_stop(l, false);
    }
    return;
  }
  if (r->err) {
    lane_retry(l, r->message);
    return;
  }
  l->cycle = -1;
  lane_next(l);
}

static void on_provided(void *ud, const bd_pg_result_t *r) {
  lane_t *l = ud;
  if (r->err || PQntuples(r->res) != 1 || PQgetisnull(r->res, 0, 0)) {
    lane_retry(l, r->err ? r->message : "the provided serials are gone");
    return;
  }
  free(l->prov);
  l->prov = bd_strdup(PQgetvalue(r->res, 0, 0));
  l->prov_p = l->prov;
  start_copy(l);
}

/* Takes the next missing chunk, or stops the lane. */
static void lane_next(lane_t *l) {
  mint_run_t *m = l->m;
  if (m->error[0] || m->retry[0] || m->yield || bd_job_stopping(m->job) || m->taken >= m->nmissing) {
    lane_stop(l, false);
    return;
  }
  int64_t k = m->missing[m->taken++];
  l->cycle = k;
  l->start = m->first + k * m->chunk;
  l->end = BD_MIN(m->first + m->qty, l->start + m->chunk);
  l->redraws = 0;
  size_t n = (size_t)(l->end - l->start);
  if (m->serial_mode && m->provided) {
    char a[24], b[24];
    snprintf(a, sizeof a, "%lld", (long long)(l->start - m->first + 1));
    snprintf(b, sizeof b, "%lld", (long long)(l->end - m->first));
    const char *p[] = {m->job->ref, a, b};
    if (bd_pg_conn_query(l->conn, &S_PROVIDED, 3, p, on_provided, l) != 0) lane_retry(l, "database connection lost");
    return;
  }
  if (m->serial_mode) {
    free(l->gen);
    l->gen = bd_malloc(n * (BD_GS1_SERIAL_LEN_DEFAULT + 1));
    bd_gs1_serials_generate(l->gen, n, BD_GS1_SERIAL_LEN_DEFAULT);
  }
  start_copy(l);
}

static void on_processing(void *ud, const bd_pg_result_t *r) {
  lane_t *l = ud;
  if (r->err) lane_retry(l, r->message);
  else lane_next(l);
}

static void on_acquired(void *ud, bd_pg_conn_t *c, int err) {
  lane_t *l = ud;
  mint_run_t *m = l->m;
  m->acquiring--;
  if (err) {
    /* fewer writers is fine; none at all is retried */
    if (m->holding == 0 && m->acquiring == 0) {
      if (m->taken == 0 && !m->retry[0]) snprintf(m->retry, sizeof m->retry, "no database connection");
      run_end(m);
    }
    return;
  }
  l->conn = c;
  m->holding++;
  if (!m->processing) {
    /* the first writer records that units are being written */
    m->processing = true;
    const char *p[] = {m->job->ref};
    if (bd_pg_conn_query(c, &S_PROCESSING, 1, p, on_processing, l) != 0) lane_retry(l, "database connection lost");
    return;
  }
  lane_next(l);
}

/* Parses "{1,2,3}" (an int8[] as text). */
static int parse_missing(const char *s, int64_t **out) {
  int n = 0, cap = 16;
  int64_t *v = bd_malloc((size_t)cap * sizeof *v);
  for (const char *p = s; *p; p++) {
    if (*p < '0' || *p > '9') continue;
    char *e;
    int64_t x = strtoll(p, &e, 10);
    if (n == cap) v = realloc(v, (size_t)(cap *= 2) * sizeof *v);
    if (!v) abort();
    v[n++] = x;
    p = e - 1;
  }
  *out = v;
  return n;
}

static void on_started(void *ud, const bd_pg_result_t *r) {
  mint_run_t *m = ud;
  bd_job_t *job = m->job;
  if (r->err) {
    char msg[300];
    snprintf(msg, sizeof msg, "%s", r->message);
    run_free(m);
    bd_job_retry(job, msg, 1000);
    return;
  }
  const char *status = PQntuples(r->res) == 1 ? PQgetvalue(r->res, 0, 0) : "";
  if (!strcmp(status, "") || !strcmp(status, "COMPLETED") || !strcmp(status, "FAILED")) {
    /* gone or already ended: nothing to do */
    run_free(m);
    bd_job_done(job);
    return;
  }
  snprintf(m->gtin, sizeof m->gtin, "%s", PQgetvalue(r->res, 0, 1));
  m->serial_mode = !strcmp(PQgetvalue(r->res, 0, 2), "serial");
  m->provided = PQgetvalue(r->res, 0, 3)[0] == 't';
  m->first = strtoll(PQgetvalue(r->res, 0, 4), NULL, 10);
  m->qty = strtoll(PQgetvalue(r->res, 0, 5), NULL, 10);
  m->chunk = strtoll(PQgetvalue(r->res, 0, 6), NULL, 10);
  m->nmissing = parse_missing(PQgetvalue(r->res, 0, 7), &m->missing);
  int64_t nchunks = (m->qty + m->chunk - 1) / m->chunk;
  if (m->nmissing == 0) {
    finish(m, NULL); /* every unit was written before a crash: only the status is left */
    return;
  }
  if (m->nmissing < nchunks)
    bd_info("mint job %s: resuming, %d of %lld chunks left", job->ref, m->nmissing, (long long)nchunks);
  m->nlanes = (int)BD_MIN((int64_t)m->nmissing, BD_MIN(bd_app.cfg.mint_writers, MINT_MAX_LANES));
  for (int i = 0; i < m->nlanes; i++) {
    lane_t *l = &m->lanes[i];
    l->m = m;
    l->cycle = -1;
    m->acquiring++;
    if (bd_pg_acquire(bd_app.pg, on_acquired, l) != 0) m->acquiring--;
  }
  if (m->acquiring == 0) {
    snprintf(m->retry, sizeof m->retry, "database queue full");
    run_end(m);
  }
}

static void run_mint_job(bd_job_t *job) {
  mint_run_t *m = bd_calloc(1, sizeof *m);
  m->job = job;
  m->failed_cycle = -1;
  char chunk[24], writers[24], split[24];
  snprintf(chunk, sizeof chunk, "%lld", (long long)bd_app.cfg.mint_chunk_units);
  snprintf(writers, sizeof writers, "%d", (int)BD_MIN(bd_app.cfg.mint_writers, MINT_MAX_LANES));
  snprintf(split, sizeof split, "%d", MINT_SPLIT_MIN);
  const char *p[] = {job->ref, chunk, writers, split};
  if (bd_pg_query(bd_app.pg, &S_START, 4, p, on_started, m) != 0) {
    run_free(m);
    bd_job_retry(job, "database queue full", 1000);
  }
}

void bd_mint_init(void) {
  /* one job at a time per process: its writers pin up to
   * BATCHD_MINT_WRITERS connections, and the pool keeps the rest for
   * queries; further jobs wait in the queue (or run in other processes) */
  bd_jobs_register("pp.mint", run_mint_job, 1);
}

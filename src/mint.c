/* mint.c: the pp.mint durable job, which writes the units of a mint request
 * (src/sql/005_mint.sql) with COPY.
 *
 * The request reserved a contiguous id range for the job's units. The job
 * writes that range in chunks of BATCHD_MINT_CHUNK_UNITS units, each chunk
 * one COPY (so one transaction) on a pinned connection, in id order:
 *   - serials are generated here, in C (gs1.h: ~20 ms per million), or, for
 *     serials the caller brought, read from the job row one chunk at a time;
 *   - COPY text is produced a slice at a time and handed to the connection
 *     only while its send buffer is below the high-water mark (on_drain), so
 *     memory stays bounded and the loop never stalls on a big chunk;
 *   - a taken-over job asks the database for the next id not yet written
 *     (pp_mint_start: the highest committed id + 1) and goes on from there:
 *     chunks commit atomically and in order, so nothing is lost or doubled,
 *     and a stale owner that kept writing would hit the primary key;
 *   - a generated serial that collides with an existing one of the GTIN
 *     (probability ~ n^2 / 2^61) fails that chunk's COPY on the unique index;
 *     the chunk is drawn again (a few times) with the same ids. A provided
 *     serial that collides (only possible when a generated one took it
 *     after the request was checked) fails the job with that error.
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

typedef struct {
  bd_job_t *job;              /* the pp.mint job (ref = mint job id) */
  bd_pg_conn_t *conn;         /* pinned connection while writing */
  char gtin[BD_GS1_GTIN14_LEN + 1]; /* AI 01 of every unit */
  bool serial_mode;           /* identity mode serial (else batch: no AI 21) */
  bool provided;              /* serials come from the job row (_serials) */
  int64_t first, end;         /* the job's id range [first, end) */
  int64_t next;               /* first id not yet committed */
  int64_t chunk_end;          /* end of the chunk being written */
  int64_t cur;                /* next id to format in the current chunk */
  char *gen;                  /* generated serials of the chunk ((len+1) each) */
  char *prov;                 /* provided serials of the chunk, '\n'-separated (owned copy) */
  const char *prov_p;         /* next provided serial */
  int redraws;                /* times the current chunk was drawn again */
  bd_buf_t out;               /* COPY text slice */
} mint_run_t;

static bd_pg_stmt_t S_START = BD_PG_STMT(
    "SELECT status, gtin, identity_mode, provided, first_unit_id, quantity, next_id FROM pp_mint_start($1)");
static bd_pg_stmt_t S_FINISH = BD_PG_STMT("SELECT pp_mint_finish($1, $2)");
static bd_pg_stmt_t S_PROVIDED = BD_PG_STMT(
    "SELECT array_to_string(serials[$2::int:$3::int], chr(10)) FROM pp_mint_jobs WHERE id = $1");

static void chunk_begin(mint_run_t *m);

static void run_free(mint_run_t *m) {
  free(m->gen);
  free(m->prov);
  bd_buf_free(&m->out);
  free(m);
}

static void release_conn(mint_run_t *m, bool broken) {
  if (m->conn) bd_pg_release(m->conn, broken);
  m->conn = NULL;
}

static void end_retry(mint_run_t *m, const char *error) {
  bd_job_t *job = m->job;
  release_conn(m, true);
  run_free(m);
  bd_job_retry(job, error, 1000);
}

static void end_yield(mint_run_t *m) {
  bd_job_t *job = m->job;
  release_conn(m, false);
  run_free(m);
  bd_job_yield(job);
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
  release_conn(m, false);
  const char *p[] = {m->job->ref, error};
  if (bd_pg_query(bd_app.pg, &S_FINISH, 2, p, on_finished, m) != 0) end_retry(m, "database queue full");
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

/* Formats and queues COPY rows of the current chunk until the connection's
 * buffer is full (then continues from on_drain) or the chunk is complete. */
static void produce(void *ud) {
  mint_run_t *m = ud;
  while (m->cur < m->chunk_end) {
    int64_t upto = BD_MIN(m->chunk_end, m->cur + MINT_SLICE_UNITS);
    bd_buf_reset(&m->out);
    bd_buf_reserve(&m->out, (size_t)(upto - m->cur) * 64);
    char *p = m->out.data;
    for (int64_t id = m->cur; id < upto; id++) {
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
        const char *s = m->prov_p, *e = strchr(s, '\n');
        size_t n = e ? (size_t)(e - s) : strlen(s);
        memcpy(p, s, n);
        p += n;
        m->prov_p = e ? e + 1 : s + n;
      } else {
        const char *s = m->gen + (size_t)(id - m->next) * (BD_GS1_SERIAL_LEN_DEFAULT + 1);
        memcpy(p, s, BD_GS1_SERIAL_LEN_DEFAULT);
        p += BD_GS1_SERIAL_LEN_DEFAULT;
      }
      *p++ = '\n';
    }
    m->out.len = (size_t)(p - m->out.data);
    m->cur = upto;
    int rc = bd_pg_copy_put(m->conn, m->out.data, m->out.len);
    if (rc < 0) break; /* copy_end reports the error */
    if (rc == 1 && m->cur < m->chunk_end) {
      bd_pg_copy_on_drain(m->conn, produce, m);
      return;
    }
  }
  if (bd_pg_copy_end(m->conn, NULL, on_copy_done, m) != 0) end_retry(m, "database connection lost");
}

static void on_copy_ready(void *ud, const bd_pg_result_t *r) {
  mint_run_t *m = ud;
  if (r->err) {
    end_retry(m, r->message);
    return;
  }
  produce(m);
}

static void start_copy(mint_run_t *m) {
  m->cur = m->next;
  if (bd_pg_copy_start(m->conn, "COPY pp_units (id, gtin, serial) FROM STDIN", on_copy_ready, m) != 0)
    end_retry(m, "database connection lost");
}

static void on_copy_done(void *ud, const bd_pg_result_t *r) {
  mint_run_t *m = ud;
  if (r->err == BD_PG_ESQL && !strcmp(r->sqlstate, "23505")) {
    if (strstr(r->message, "pp_units_pkey")) {
      /* another owner wrote these ids: the job is no longer ours */
      bd_warn("mint job %s: units already written by another owner", m->job->ref);
      end_yield(m);
    } else if (!m->provided && m->redraws < MINT_SERIAL_RETRIES) {
      m->redraws++;
      bd_gs1_serials_generate(m->gen, (size_t)(m->chunk_end - m->next), BD_GS1_SERIAL_LEN_DEFAULT);
      start_copy(m);
    } else {
      char msg[600];
      snprintf(msg, sizeof msg, "serial conflict: %s%s%s", r->message, r->detail ? " " : "",
               r->detail ? r->detail : "");
      finish(m, msg);
    }
    return;
  }
  if (r->err) {
    end_retry(m, r->message);
    return;
  }
  m->next = m->chunk_end;
  if (m->next >= m->end) {
    finish(m, NULL);
  } else if (bd_job_stopping(m->job)) {
    end_yield(m);
  } else {
    chunk_begin(m);
  }
}

static void on_provided(void *ud, const bd_pg_result_t *r) {
  mint_run_t *m = ud;
  if (r->err || PQntuples(r->res) != 1 || PQgetisnull(r->res, 0, 0)) {
    end_retry(m, r->err ? r->message : "the provided serials are gone");
    return;
  }
  free(m->prov);
  m->prov = bd_strdup(PQgetvalue(r->res, 0, 0));
  m->prov_p = m->prov;
  start_copy(m);
}

static void chunk_begin(mint_run_t *m) {
  m->chunk_end = BD_MIN(m->end, m->next + bd_app.cfg.mint_chunk_units);
  m->redraws = 0;
  size_t n = (size_t)(m->chunk_end - m->next);
  if (m->serial_mode && m->provided) {
    char a[24], b[24];
    snprintf(a, sizeof a, "%lld", (long long)(m->next - m->first + 1));
    snprintf(b, sizeof b, "%lld", (long long)(m->chunk_end - m->first));
    const char *p[] = {m->job->ref, a, b};
    if (bd_pg_conn_query(m->conn, &S_PROVIDED, 3, p, on_provided, m) != 0) end_retry(m, "database connection lost");
    return;
  }
  if (m->serial_mode) {
    free(m->gen);
    m->gen = bd_malloc(n * (BD_GS1_SERIAL_LEN_DEFAULT + 1));
    bd_gs1_serials_generate(m->gen, n, BD_GS1_SERIAL_LEN_DEFAULT);
  }
  start_copy(m);
}

static void on_acquired(void *ud, bd_pg_conn_t *c, int err) {
  mint_run_t *m = ud;
  if (err) {
    end_retry(m, "no database connection");
    return;
  }
  m->conn = c;
  if (bd_job_stopping(m->job)) {
    end_yield(m);
    return;
  }
  chunk_begin(m);
}

static void on_started(void *ud, const bd_pg_result_t *r) {
  mint_run_t *m = ud;
  if (r->err) {
    end_retry(m, r->message);
    return;
  }
  if (PQntuples(r->res) != 1) {
    /* the mint job row is gone: nothing to do */
    bd_job_t *job = m->job;
    run_free(m);
    bd_job_done(job);
    return;
  }
  const char *status = PQgetvalue(r->res, 0, 0);
  if (!strcmp(status, "COMPLETED") || !strcmp(status, "FAILED")) {
    bd_job_t *job = m->job;
    run_free(m);
    bd_job_done(job);
    return;
  }
  snprintf(m->gtin, sizeof m->gtin, "%s", PQgetvalue(r->res, 0, 1));
  m->serial_mode = !strcmp(PQgetvalue(r->res, 0, 2), "serial");
  m->provided = PQgetvalue(r->res, 0, 3)[0] == 't';
  m->first = strtoll(PQgetvalue(r->res, 0, 4), NULL, 10);
  m->end = m->first + strtoll(PQgetvalue(r->res, 0, 5), NULL, 10);
  m->next = strtoll(PQgetvalue(r->res, 0, 6), NULL, 10);
  if (m->next >= m->end) {
    finish(m, NULL); /* every unit was written before a crash: only the status is left */
    return;
  }
  if (m->next > m->first) bd_info("mint job %s: resuming at unit %lld", m->job->ref, (long long)(m->next - m->first + 1));
  if (bd_pg_acquire(bd_app.pg, on_acquired, m) != 0) end_retry(m, "database queue full");
}

static void run_mint_job(bd_job_t *job) {
  mint_run_t *m = bd_calloc(1, sizeof *m);
  m->job = job;
  const char *p[] = {job->ref};
  if (bd_pg_query(bd_app.pg, &S_START, 1, p, on_started, m) != 0) end_retry(m, "database queue full");
}

void bd_mint_init(void) {
  /* each running job pins one connection while it writes; two keep the
   * database busy while a chunk commits, and leave the pool the rest */
  bd_jobs_register("pp.mint", run_mint_job, 2);
}

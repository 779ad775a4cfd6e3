/* migrate.c: applies embedded migrations under an advisory lock.
 *
 * Sequence on one pinned connection:
 *   pg_advisory_lock(K) → create bd_schema_migrations if missing → read
 *   applied versions → for each pending: BEGIN; <sql>; INSERT version;
 *   COMMIT → pg_advisory_unlock(K) → release.
 * The lock is a session lock, so it is dropped if the connection dies.
 */
#include "migrate.h"

#include "log.h"

#include <stdio.h>
#include <stdlib.h>

#define LOCK_KEY "7262616463680001" /* arbitrary constant: "batchd" migrations */

typedef struct {
  bd_pg_conn_t *conn;                              /* pinned connection */
  bool *applied;                                   /* applied[i] for bd_migrations[i] */
  int next;                                        /* next migration index to consider */
  void (*done)(void *ud, int err, const char *msg);/* completion */
  void *ud;                                        /* its argument */
  char err[512];                                   /* first error */
} mig_t;

static void mig_finish(mig_t *m, int err) {
  if (m->conn) bd_pg_release(m->conn, err != 0);
  void (*done)(void *, int, const char *) = m->done;
  void *ud = m->ud;
  char msg[512];
  snprintf(msg, sizeof msg, "%s", m->err);
  free(m->applied);
  free(m);
  done(ud, err, msg);
}

static bool mig_check(mig_t *m, const bd_pg_result_t *r, const char *what) {
  if (r->err == BD_PG_OK) return true;
  snprintf(m->err, sizeof m->err, "%s: %s", what, r->message);
  mig_finish(m, r->err);
  return false;
}

static void apply_next(mig_t *m);

static void on_unlocked(void *ud, const bd_pg_result_t *r) {
  mig_t *m = ud;
  if (!mig_check(m, r, "advisory unlock")) return;
  mig_finish(m, 0);
}

static void on_applied(void *ud, const bd_pg_result_t *r) {
  mig_t *m = ud;
  const bd_migration_t *mg = &bd_migrations[m->next];
  if (r->err != BD_PG_OK) {
    snprintf(m->err, sizeof m->err, "migration %s failed: %s", mg->name, r->message);
    bd_error("%s", m->err);
    mig_finish(m, r->err);
    return;
  }
  bd_info("applied migration %s", mg->name);
  m->next++;
  apply_next(m);
}

static void apply_next(mig_t *m) {
  while (m->next < bd_migrations_count && m->applied[m->next]) m->next++;
  if (m->next >= bd_migrations_count) {
    if (bd_pg_conn_exec(m->conn, "SELECT pg_advisory_unlock(" LOCK_KEY ")", 0, NULL, on_unlocked, m) != 0)
      mig_finish(m, BD_PG_EUNAVAIL);
    return;
  }
  const bd_migration_t *mg = &bd_migrations[m->next];
  /* one simple-protocol round trip: the whole file and its bookkeeping in
   * a single transaction */
  bd_buf_t sql = BD_BUF_INIT;
  bd_buf_printf(&sql, "BEGIN;\n%s\n;INSERT INTO bd_schema_migrations(version, name) VALUES (%d, '%s');\nCOMMIT;",
                mg->sql, mg->version, mg->name);
  int rc = bd_pg_conn_exec(m->conn, sql.data, 0, NULL, on_applied, m);
  bd_buf_free(&sql);
  if (rc != 0) mig_finish(m, BD_PG_EUNAVAIL);
}

static void on_versions(void *ud, const bd_pg_result_t *r) {
  mig_t *m = ud;
  if (!mig_check(m, r, "reading applied migrations")) return;
  for (int row = 0; row < PQntuples(r->res); row++) {
    int v = atoi(PQgetvalue(r->res, row, 0));
    for (int i = 0; i < bd_migrations_count; i++)
      if (bd_migrations[i].version == v) m->applied[i] = true;
  }
  apply_next(m);
}

static void on_table(void *ud, const bd_pg_result_t *r) {
  mig_t *m = ud;
  if (!mig_check(m, r, "creating bd_schema_migrations")) return;
  if (bd_pg_conn_exec(m->conn, "SELECT version FROM bd_schema_migrations", 0, NULL, on_versions, m) != 0)
    mig_finish(m, BD_PG_EUNAVAIL);
}

static void on_locked(void *ud, const bd_pg_result_t *r) {
  mig_t *m = ud;
  if (!mig_check(m, r, "advisory lock")) return;
  if (bd_pg_conn_exec(m->conn,
                      "CREATE TABLE IF NOT EXISTS bd_schema_migrations ("
                      " version int PRIMARY KEY, name text NOT NULL,"
                      " applied_at timestamptz NOT NULL DEFAULT now())",
                      0, NULL, on_table, m) != 0)
    mig_finish(m, BD_PG_EUNAVAIL);
}

static void on_conn(void *ud, bd_pg_conn_t *c, int err) {
  mig_t *m = ud;
  if (err) {
    snprintf(m->err, sizeof m->err, "database unavailable");
    mig_finish(m, err);
    return;
  }
  m->conn = c;
  if (bd_pg_conn_exec(c, "SELECT pg_advisory_lock(" LOCK_KEY ")", 0, NULL, on_locked, m) != 0)
    mig_finish(m, BD_PG_EUNAVAIL);
}

void bd_migrate_run(bd_pg_pool_t *pg, void (*done)(void *ud, int err, const char *msg), void *ud) {
  mig_t *m = bd_calloc(1, sizeof *m);
  m->applied = bd_calloc((size_t)bd_migrations_count + 1, sizeof(bool));
  m->done = done;
  m->ud = ud;
  if (bd_pg_acquire(pg, on_conn, m) != 0) {
    snprintf(m->err, sizeof m->err, "database queue full");
    mig_finish(m, BD_PG_EUNAVAIL);
  }
}

int bd_migrate_latest(void) {
  int v = 0;
  for (int i = 0; i < bd_migrations_count; i++)
    if (bd_migrations[i].version > v) v = bd_migrations[i].version;
  return v;
}

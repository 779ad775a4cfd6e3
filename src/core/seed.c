/* seed.c: the seed-demo driver: tenant row, then every surface's hook. */
#include "seed.h"

#include "surface.h"

#include <stdio.h>
#include <stdlib.h>

typedef struct {
  bd_seed_t *s;                                  /* the seed */
  void (*cb)(bd_seed_t *s, PGresult *res);       /* continuation */
  char what[64];                                 /* for error messages */
} exec_ctx_t;

static void on_exec(void *ud, const bd_pg_result_t *r) {
  exec_ctx_t *e = ud;
  bd_seed_t *s = e->s;
  void (*cb)(bd_seed_t *, PGresult *) = e->cb;
  char what[64];
  snprintf(what, sizeof what, "%s", e->what);
  free(e);
  if (r->err != BD_PG_OK) {
    bd_seed_fail(s, what, r->message);
    return;
  }
  cb(s, r->res);
}

void bd_seed_exec(bd_seed_t *s, const char *sql, int n, const char *const *params,
                  void (*cb)(bd_seed_t *s, PGresult *res)) {
  exec_ctx_t *e = bd_calloc(1, sizeof *e);
  e->s = s;
  e->cb = cb;
  snprintf(e->what, sizeof e->what, "%.60s", sql);
  if (bd_pg_conn_exec(s->conn, sql, n, params, on_exec, e) != 0) {
    free(e);
    bd_seed_fail(s, "seed", "database unavailable");
  }
}

static void finish(bd_seed_t *s) {
  if (s->conn) {
    bd_pg_release(s->conn, s->err != 0);
    s->conn = NULL;
  }
  s->done(s);
}

void bd_seed_fail(bd_seed_t *s, const char *what, const char *msg) {
  s->err = 1;
  snprintf(s->errmsg, sizeof s->errmsg, "%s: %s", what, msg);
  finish(s); /* release rolls the open transaction back */
}

static void on_commit(bd_seed_t *s, PGresult *res) { finish(s); }

void bd_seed_next(bd_seed_t *s) {
  while (s->step < (int)s->nsurfaces) {
    const bd_surface_def_t *d = s->surfaces[s->step++];
    if (d->seed) {
      s->data = NULL;
      d->seed(s);
      return;
    }
  }
  bd_seed_exec(s, "COMMIT", 0, NULL, on_commit);
}

static void on_tenant(bd_seed_t *s, PGresult *res) {
  s->tenant_id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
  json_object_set_new(s->out, "base_url", json_string(s->base_url));
  json_object_set_new(s->out, "tenant", json_string(s->tenant));
  s->step = 0;
  bd_seed_next(s);
}

static void on_begin(bd_seed_t *s, PGresult *res) {
  const char *p[] = {s->tenant};
  bd_seed_exec(s,
               "INSERT INTO bd_tenants(name) VALUES ($1) ON CONFLICT (name) DO UPDATE SET name = EXCLUDED.name"
               " RETURNING id",
               1, p, on_tenant);
}

static void on_conn(void *ud, bd_pg_conn_t *c, int err) {
  bd_seed_t *s = ud;
  if (err) {
    bd_seed_fail(s, "seed", "database unavailable");
    return;
  }
  s->conn = c;
  bd_seed_exec(s, "BEGIN", 0, NULL, on_begin);
}

void bd_seed_run(bd_pg_pool_t *pg, const char *tenant, const char *base_url,
                 const struct bd_surface_def *const *surfaces, size_t nsurfaces, void (*done)(bd_seed_t *s)) {
  bd_seed_t *s = bd_calloc(1, sizeof *s);
  s->tenant = tenant;
  s->base_url = base_url;
  s->surfaces = surfaces;
  s->nsurfaces = nsurfaces;
  s->out = json_object();
  s->done = done;
  if (bd_pg_acquire(pg, on_conn, s) != 0) bd_seed_fail(s, "seed", "database unavailable");
}

void bd_seed_free(bd_seed_t *s) {
  json_decref(s->out);
  free(s);
}

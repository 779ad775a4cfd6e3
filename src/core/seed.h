/* seed.h: `batchd seed-demo`: one isolated demo tenant on every surface.
 *
 * Seeding is idempotent per tenant name: running it twice returns the same
 * ids. Secrets cannot be read back (only hashes are stored), so tokens are
 * re-issued on every run and the previous demo tokens of that tenant are
 * replaced. Each surface's seed hook runs on the pinned connection `conn`,
 * inside one transaction, adds its section to `out`, then calls
 * bd_seed_next (or bd_seed_fail).
 */
#ifndef BD_SEED_H
#define BD_SEED_H

#include "pg.h"
#include <jansson.h>

typedef struct bd_seed bd_seed_t;
struct bd_surface_def;     /* surface.h */
struct bd_seed {
  const char *tenant;      /* tenant name */
  const char *base_url;    /* public URL, printed as base_url */
  const struct bd_surface_def *const *surfaces; /* whose seed hooks run, in order */
  size_t nsurfaces;        /* entries in surfaces */
  int64_t tenant_id;       /* bd_tenants.id */
  json_t *out;             /* the JSON object printed at the end */
  bd_pg_conn_t *conn;      /* pinned connection inside BEGIN */
  int step;                /* index of the surface being seeded */
  int err;                 /* non-zero after bd_seed_fail */
  char errmsg[512];        /* what failed */
  void *data;              /* the current surface's scratch */
  void (*done)(bd_seed_t *s); /* completion */
};

/* Seeds `tenant`: its row, then every surface's seed hook in list order,
 * in one transaction; done(s) runs once (s->err says whether it failed). */
void bd_seed_run(bd_pg_pool_t *pg, const char *tenant, const char *base_url,
                 const struct bd_surface_def *const *surfaces, size_t nsurfaces, void (*done)(bd_seed_t *s));
void bd_seed_next(bd_seed_t *s);
void bd_seed_fail(bd_seed_t *s, const char *what, const char *msg);
void bd_seed_free(bd_seed_t *s);

/* Runs one statement on the seed's connection; on error fails the seed
 * (and `cb` is not called). Convenience for the surfaces' seed hooks. */
void bd_seed_exec(bd_seed_t *s, const char *sql, int n, const char *const *params,
                  void (*cb)(bd_seed_t *s, PGresult *res));

#endif

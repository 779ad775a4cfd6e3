/* app.h: the process-wide context (one event loop, one of each subsystem).
 *
 * Like redis' `server`, this is a single global: the server is one loop
 * thread, and every handler needs the pool, the configuration and the
 * limiter. Worker threads must not touch it (they get copies of what they
 * need in their work item).
 */
#ifndef BD_APP_H
#define BD_APP_H

#include "config.h"
#include "http.h"
#include "pg.h"
#include "ratelimit.h"
#include "surface.h"

typedef struct {
  uv_loop_t *loop;         /* the event loop */
  bd_config_t cfg;         /* configuration (read-only after start) */
  bd_server_t *server;     /* HTTP server (NULL for subcommands) */
  bd_pg_pool_t *pg;        /* PostgreSQL pool */
  bd_rl_t *rl;             /* per-credential rate limiter */
  bool migrated;           /* migrations verified/applied: /readyz */
  int init_pending;        /* surfaces' start-up work still running: /readyz waits */
  bool stopping;           /* SIGTERM received */
  char instance[96];       /* unique id of this process (job leases) */
  uint8_t *jwt_key;        /* BATCHD_JWT_SECRET bytes */
  size_t jwt_key_len;      /* its length */
  const bd_surface_def_t *const *surfaces; /* the surfaces compiled in (main.c's list) */
  size_t nsurfaces;        /* entries in surfaces */
} bd_app_t;

extern bd_app_t bd_app;

/* Applies the rate limit for a credential: sets the X-RateLimit-* headers
 * and, when exhausted, answers 429 with Retry-After and returns false. */
bool bd_app_rate_limit(bd_req_t *req, const char *cred);
/* Answers 503 (database unavailable) with Retry-After in the surface's format. */
void bd_app_unavailable(bd_req_t *req);
/* Maps a failed query to a response: EUNAVAIL → 503, anything else → 500. */
void bd_app_db_error(bd_req_t *req, const bd_pg_result_t *r);

/* A handler's query on the shared pool: holds the request and sends the
 * statement; cb(ud, result) then runs once and must release the request
 * (bd_req_release) after answering. When the query cannot even be queued
 * (queue full, pool closing) the request is answered 503 in its surface's
 * format and released here, cb does not run, and false is returned: the
 * caller then frees whatever it passed as ud (unless ud is the request). */
bool bd_app_query(bd_req_t *req, bd_pg_stmt_t *st, int n, const char *const *params, bd_pg_cb cb, void *ud);

/* Route tables of the surfaces, concatenated by main.c. */
extern const bd_route_t bd_ops_routes[];
extern const size_t bd_ops_routes_count;

#endif

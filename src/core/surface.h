/* surface.h: the contract by which an API surface plugs into the core.
 *
 * The core (this folder) knows no product. A surface (src/qr, src/business,
 * src/products) is a folder whose top file, <name>_surface.c, defines one
 * bd_surface_def_t: its routes, the paths whose errors it formats, and its
 * hooks. main.c, the composition root, lists the surfaces compiled in and
 * hands the list to the core (bd_app.surfaces), which then:
 *   - concatenates the route tables after its own (ops) routes;
 *   - gives the HTTP server one error scope per surface with paths, so
 *     bd_resp_error answers in the surface's own format (http.h);
 *   - calls init() once the pool exists (register job kinds, LISTEN
 *     channels, caches), flush() during shutdown after requests and jobs
 *     have stopped (e.g. buffered scan events), fini() after the loop has
 *     ended (free thread-local or process-wide caches), and seed() from
 *     `batchd seed-demo`, in list order;
 *   - runs the provisioning commands (admin.h) with the surface's admin
 *     hooks: its part of a tenant, its keys, its own commands.
 * Loop thread only, except fini (main thread, loop gone).
 */
#ifndef BD_SURFACE_H
#define BD_SURFACE_H

#include "admin.h"
#include "http.h"
#include "seed.h"

typedef struct bd_surface_def {
  const char *name;                                   /* "business", "qr", "products", "test" */
  const bd_route_t *routes;                           /* route table */
  size_t nroutes;                                     /* its length */
  bd_error_scope_t errors;                            /* paths + error format; .paths NULL: none */
  void (*init)(void);                                 /* may be NULL */
  void (*flush)(void (*done)(void *ud), void *ud);    /* may be NULL; calls done once */
  void (*fini)(void);                                 /* may be NULL */
  void (*seed)(bd_seed_t *s);                         /* may be NULL; ends with bd_seed_next */
  const bd_admin_hooks_t *admin;                      /* may be NULL: provisioning (admin.h) */
} bd_surface_def_t;

/* The core's own test surface (core/testhooks.c): listed by main.c like any other. */
extern const bd_surface_def_t bd_surface_testhooks;
/* Whether BATCHD_TEST_HOOKS=1 (its init ran): surfaces may honour test-only
 * request switches then, and never otherwise. Loop thread. */
bool bd_testhooks_enabled(void);

#endif

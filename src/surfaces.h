/* surfaces.h: how an API surface plugs into the core.
 *
 * A surface is a route table plus optional hooks. main.c concatenates the
 * route tables, calls init() once the pool exists (register job kinds,
 * LISTEN channels, caches), calls flush() during shutdown after requests and
 * jobs have stopped (e.g. buffered scan events), and seed() from
 * `batchd seed-demo`. Loop thread only.
 */
#ifndef BD_SURFACES_H
#define BD_SURFACES_H

#include "http.h"
#include "seed.h"

typedef struct {
  const char *name;                                   /* "business", "qr", "rpc", "test" */
  const bd_route_t *routes;                           /* route table */
  size_t nroutes;                                     /* its length */
  void (*init)(void);                                 /* may be NULL */
  void (*flush)(void (*done)(void *ud), void *ud);    /* may be NULL; calls done once */
  void (*seed)(bd_seed_t *s);                         /* may be NULL; ends with bd_seed_next */
} bd_surface_def_t;

extern const bd_surface_def_t *const bd_surface_defs[];
extern const size_t bd_surface_defs_count;

#endif

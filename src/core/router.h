/* router.h: matching a method and path against the route table.
 *
 * Patterns are literal segments and {name} placeholders that match exactly
 * one non-empty segment ("/v1/qr-codes/{id}"). The table is scanned in order
 * and the first match wins, so literal routes go before overlapping
 * parameterised ones. Any thread; no state.
 */
#ifndef BD_ROUTER_H
#define BD_ROUTER_H

#include "http.h"

typedef enum {
  BD_ROUTE_FOUND = 0,     /* method and path match */
  BD_ROUTE_NOT_FOUND,     /* no pattern matches the path */
  BD_ROUTE_BAD_METHOD,    /* the path matches, but not with this method (405) */
} bd_route_match_t;

/* Matches `method` (HEAD also matches GET routes) and `path` (no query).
 * On success *out is the route and params/nparams hold the placeholders as
 * slices of `path`. On BD_ROUTE_BAD_METHOD, allow (if non-NULL) receives the
 * comma-separated methods that do match ("GET, HEAD, POST"). */
bd_route_match_t bd_route_match(const bd_route_t *routes, size_t n, const char *method, bd_str_t path,
                                const bd_route_t **out, bd_str_t *params, int *nparams,
                                bd_buf_t *allow);

/* The first scope one of whose paths matches `path` (an entry ending in '/'
 * as a prefix, any other exactly), or NULL. */
const bd_error_scope_t *bd_error_scope_find(const bd_error_scope_t *scopes, size_t n, bd_str_t path);

#endif

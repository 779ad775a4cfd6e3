/* router.h: routes and error scopes, and matching a path against them.
 *
 * Patterns are literal segments and {name} placeholders that match exactly
 * one non-empty segment ("/v1/qr-codes/{id}"). The table is scanned in order
 * and the first match wins, so literal routes go before overlapping
 * parameterised ones. Any thread; no state.
 */
#ifndef BD_ROUTER_H
#define BD_ROUTER_H

#include "buf.h"

typedef struct bd_req bd_req_t; /* http.h */
typedef struct bd_route bd_route_t;

/* Error bodies. Each family of paths (an API surface) answers errors in the
 * format of the public API it is compatible with, and the core knows none
 * of them: a surface registers the paths it owns with a writer (surface.h).
 * The writer appends one complete JSON body for (status, code, message,
 * param) to `out`; code is a surface-neutral code such as
 * "invalid_request", message is never NULL, param may be. Paths outside
 * every scope get the neutral {"error":{"code","message","request_id"}}.
 * Loop thread only. */
typedef void (*bd_error_fmt_fn)(const bd_req_t *req, int status, const char *code, const char *message,
                                const char *param, bd_buf_t *out);

typedef struct {
  const char *const *paths; /* NULL-terminated; "/v1/" matches every path under it, "/v1" only itself */
  bd_error_fmt_fn format;   /* the writer */
} bd_error_scope_t;

typedef void (*bd_handler_fn)(bd_req_t *req);

#define BD_ROUTE_STREAM 0x1u /* body streamed to the handler (see http.h) */
#define BD_ROUTE_UPLOAD 0x2u /* body limited by max_upload_body instead of max_json_body */
#define BD_ROUTE_WEAK 0x4u   /* a catch-all: its path never makes another method a 405 (it stays a 404) */

struct bd_route {
  const char *method;  /* "GET", "POST", ...; GET routes also answer HEAD */
  const char *pattern; /* "/v1/qr-codes/{id}/download": {x} matches one segment */
  bd_handler_fn fn;    /* the handler */
  uint32_t flags;      /* BD_ROUTE_* */
  const char *name;    /* metrics label; defaults to the pattern */
};

#define BD_MAX_PARAMS 10

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

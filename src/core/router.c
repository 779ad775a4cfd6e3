/* router.c: segment-wise route matching. */
#include "router.h"

#include <stdio.h>

/* Matches one pattern against a path; fills params. Both start with '/'. */
static bool match_pattern(const char *pat, bd_str_t path, bd_str_t *params, int *nparams) {
  const char *p = path.p, *pe = path.p + path.len;
  int np = 0;
  while (*pat) {
    if (*pat == '{') {
      const char *close = strchr(pat, '}');
      if (!close) return false;
      const char *seg = p;
      while (p < pe && *p != '/') p++;
      if (p == seg || np >= BD_MAX_PARAMS) return false;
      params[np++] = (bd_str_t){seg, (size_t)(p - seg)};
      pat = close + 1;
      continue;
    }
    if (p >= pe || *p != *pat) return false;
    p++;
    pat++;
  }
  if (p != pe) return false;
  *nparams = np;
  return true;
}

bd_route_match_t bd_route_match(const bd_route_t *routes, size_t n, const char *method, bd_str_t path,
                                const bd_route_t **out, bd_str_t *params, int *nparams,
                                bd_buf_t *allow) {
  bool head = strcmp(method, "HEAD") == 0;
  bool path_matched = false;
  bd_str_t tmp[BD_MAX_PARAMS];
  int ntmp = 0;
  *out = NULL;
  *nparams = 0;
  for (size_t i = 0; i < n; i++) {
    const bd_route_t *r = &routes[i];
    /* most patterns differ from the path at its first character after '/' */
    char c1 = r->pattern[0] ? r->pattern[1] : '\0';
    if (c1 && c1 != '{' && (path.len < 2 || path.p[1] != c1)) continue;
    if (!match_pattern(r->pattern, path, tmp, &ntmp)) continue;
    bool method_ok = strcmp(r->method, method) == 0 || (head && strcmp(r->method, "GET") == 0);
    if (method_ok) {
      *out = r;
      memcpy(params, tmp, sizeof(tmp[0]) * (size_t)ntmp);
      *nparams = ntmp;
      return BD_ROUTE_FOUND;
    }
    if (r->flags & BD_ROUTE_WEAK) continue;
    if (allow) {
      /* collect distinct methods for the Allow header */
      char m[16];
      snprintf(m, sizeof m, "%s", r->method);
      if (!allow->data || !strstr(allow->data, m)) {
        if (allow->len) bd_buf_puts(allow, ", ");
        bd_buf_puts(allow, m);
        if (strcmp(m, "GET") == 0) bd_buf_puts(allow, ", HEAD");
      }
    }
    path_matched = true;
  }
  return path_matched ? BD_ROUTE_BAD_METHOD : BD_ROUTE_NOT_FOUND;
}

const bd_error_scope_t *bd_error_scope_find(const bd_error_scope_t *scopes, size_t n, bd_str_t path) {
  for (size_t i = 0; i < n; i++) {
    for (const char *const *pp = scopes[i].paths; pp && *pp; pp++) {
      size_t len = strlen(*pp);
      bool prefix = len > 0 && (*pp)[len - 1] == '/';
      if (prefix ? path.len >= len && memcmp(path.p, *pp, len) == 0 : bd_str_eq(path, *pp)) return &scopes[i];
    }
  }
  return NULL;
}

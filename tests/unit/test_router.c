/* test_router.c: route matching, parameters, 405 detection, surfaces. */
#include "router.h"
#include "surface.h"
#include "unit.h"

/* the surfaces main.c lists: their registered error paths are what is tested */
extern const bd_surface_def_t bd_surface_business, bd_surface_qr, bd_surface_products;

static void h(bd_req_t *r) { (void)r; }

static const bd_route_t routes[] = {
  {"GET", "/healthz", h, 0, "a"},
  {"GET", "/v1/batches", h, 0, "b"},
  {"POST", "/v1/batches", h, 0, "c"},
  {"GET", "/v1/batches/{id}", h, 0, "d"},
  {"GET", "/v1/qr-codes/{id}/download", h, 0, "e"},
  {"PATCH", "/v1/qr-codes/{id}", h, 0, "f"},
  {"DELETE", "/v1/qr-codes/{id}", h, 0, "g"},
  {"GET", "/01/{gtin}/10/{lot}/21/{serial}", h, 0, "h"},
  {"GET", "/{any}", h, BD_ROUTE_WEAK, "w"},
};
#define N (sizeof routes / sizeof routes[0])

static bd_route_match_t m(const char *method, const char *path, const bd_route_t **r, bd_str_t *p, int *np,
                          bd_buf_t *allow) {
  return bd_route_match(routes, N, method, bd_str_c(path), r, p, np, allow);
}

static void test_literal(void) {
  const bd_route_t *r;
  bd_str_t p[BD_MAX_PARAMS];
  int np;
  CHECK_INT(m("GET", "/healthz", &r, p, &np, NULL), BD_ROUTE_FOUND);
  CHECK_STR(r->name, "a");
  CHECK_INT(np, 0);
  CHECK_INT(m("GET", "/healthz/", &r, p, &np, NULL), BD_ROUTE_NOT_FOUND);
  CHECK_INT(m("GET", "/health", &r, p, &np, NULL), BD_ROUTE_FOUND); /* the weak catch-all */
  CHECK_STR(r->name, "w");
  CHECK_INT(m("GET", "/", &r, p, &np, NULL), BD_ROUTE_NOT_FOUND);
}

static void test_method_dispatch(void) {
  const bd_route_t *r;
  bd_str_t p[BD_MAX_PARAMS];
  int np;
  CHECK_INT(m("POST", "/v1/batches", &r, p, &np, NULL), BD_ROUTE_FOUND);
  CHECK_STR(r->name, "c");
  CHECK_INT(m("HEAD", "/v1/batches", &r, p, &np, NULL), BD_ROUTE_FOUND);
  CHECK_STR(r->name, "b"); /* HEAD answers through the GET route */
  bd_buf_t allow = BD_BUF_INIT;
  CHECK_INT(m("PUT", "/v1/batches", &r, p, &np, &allow), BD_ROUTE_BAD_METHOD);
  CHECK(r == NULL);
  CHECK_STR(allow.data, "GET, HEAD, POST");
  bd_buf_free(&allow);
  CHECK_INT(m("POST", "/v1/qr-codes/x", &r, p, &np, &allow), BD_ROUTE_BAD_METHOD);
  CHECK_STR(allow.data, "PATCH, DELETE");
  bd_buf_free(&allow);
}

/* A weak route answers its own method and never turns another into a 405;
 * earlier routes win over it. */
static void test_weak(void) {
  const bd_route_t *r;
  bd_str_t p[BD_MAX_PARAMS];
  int np;
  bd_buf_t allow = BD_BUF_INIT;
  CHECK_INT(m("GET", "/AQnYUc1gmR", &r, p, &np, NULL), BD_ROUTE_FOUND);
  CHECK_STR(r->name, "w");
  CHECK_INT(m("POST", "/AQnYUc1gmR", &r, p, &np, &allow), BD_ROUTE_NOT_FOUND);
  CHECK(allow.len == 0);
  CHECK_INT(m("GET", "/healthz", &r, p, &np, NULL), BD_ROUTE_FOUND);
  CHECK_STR(r->name, "a");
  CHECK_INT(m("POST", "/healthz", &r, p, &np, &allow), BD_ROUTE_BAD_METHOD);
  CHECK_STR(allow.data, "GET, HEAD");
  bd_buf_free(&allow);
}

static void test_params(void) {
  const bd_route_t *r;
  bd_str_t p[BD_MAX_PARAMS];
  int np;
  CHECK_INT(m("GET", "/v1/batches/batch_abc", &r, p, &np, NULL), BD_ROUTE_FOUND);
  CHECK_STR(r->name, "d");
  CHECK_INT(np, 1);
  CHECK(bd_str_eq(p[0], "batch_abc"));
  CHECK_INT(m("GET", "/v1/batches/", &r, p, &np, NULL), BD_ROUTE_NOT_FOUND); /* empty segment */
  CHECK_INT(m("GET", "/v1/batches/a/b", &r, p, &np, NULL), BD_ROUTE_NOT_FOUND);
  CHECK_INT(m("GET", "/v1/qr-codes/qr_1/download", &r, p, &np, NULL), BD_ROUTE_FOUND);
  CHECK(bd_str_eq(p[0], "qr_1"));
  CHECK_INT(m("GET", "/01/09506000134352/10/LOT1/21/SER%2F1", &r, p, &np, NULL), BD_ROUTE_FOUND);
  CHECK_INT(np, 3);
  CHECK(bd_str_eq(p[0], "09506000134352"));
  CHECK(bd_str_eq(p[1], "LOT1"));
  CHECK(bd_str_eq(p[2], "SER%2F1")); /* raw: decoding is the handler's business */
}

static const char *scope_of(const char *path) {
  const bd_error_scope_t scopes[] = {bd_surface_business.errors, bd_surface_qr.errors, bd_surface_products.errors};
  const bd_error_scope_t *sc = bd_error_scope_find(scopes, BD_ARRAY_LEN(scopes), bd_str_c(path));
  if (!sc) return "neutral";
  if (sc->format == bd_surface_business.errors.format) return "business";
  if (sc->format == bd_surface_qr.errors.format) return "qr";
  if (sc->format == bd_surface_products.errors.format) return "products";
  return "?";
}

static void test_surface(void) {
  CHECK_STR(scope_of("/business/batches"), "business");
  CHECK_STR(scope_of("/business"), "business");
  CHECK_STR(scope_of("/verify/abc"), "business");
  CHECK_STR(scope_of("/.well-known/batchd-keys.json"), "business");
  CHECK_STR(scope_of("/v1/batches"), "qr");
  CHECK_STR(scope_of("/v1"), "qr");
  CHECK_STR(scope_of("/s/abc"), "qr");
  CHECK_STR(scope_of("/rpc/create_product"), "products");
  CHECK_STR(scope_of("/rest/v1/rpc/x"), "products");
  CHECK_STR(scope_of("/01/123"), "products");
  CHECK_STR(scope_of("/.well-known/gs1resolver"), "products");
  CHECK_STR(scope_of("/healthz"), "neutral");
  CHECK_STR(scope_of("/v10/x"), "neutral");
  CHECK_STR(scope_of("/businessx"), "neutral");
  CHECK_STR(scope_of("/s"), "neutral");
}

int main(void) {
  RUN(test_literal);
  RUN(test_method_dispatch);
  RUN(test_params);
  RUN(test_weak);
  RUN(test_surface);
  UNIT_DONE();
}

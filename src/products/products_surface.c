/* products_surface.c: the top of the products surface (tieback DPP RPC
 * API, PostgREST style; the GS1 Digital Link resolver and passports).
 *
 * This folder (src/products) holds:
 *   products_surface.c  this file: route table, the paths whose errors are
 *                       PostgREST-shaped, start-up, the seed-demo section
 *   products_common.c   error bodies, SQLSTATE map, JWT check (products.h)
 *   rpc.c               POST /rpc/{fn}: one rpc_* SQL function per call
 *                       (GET for the functions that only read)
 *   pgrst.c             PostgREST options of a call: filters, select, order,
 *                       ranges, single, count (used by rpc.c)
 *   mint.c              the pp.mint job: units written by parallel COPY
 *   mint_export.c       GET /exports/mint-jobs/{id}.csv and …/qr.zip
 *   resolver.c          GET /01/…, /.well-known/gs1resolver, /passports/{id}
 * Calls go downwards only: this file → rpc.c, mint.c, mint_export.c,
 * resolver.c (which do not call each other) → products_common.c.
 * It uses the core (src/core), the libraries (src/lib) and the renderer
 * (src/render), and no other surface.
 */
#include "products.h"

#include "app.h"
#include "auth.h"
#include "seed.h"
#include "surface.h"

#include <jansson.h>

#include <stdio.h>
#include <stdlib.h>

/* --- seed-demo ------------------------------------------------------------------------ */

typedef struct {
  char brand[40];   /* brand id */
  char product[40]; /* product id */
  char gtin[16];    /* its GTIN-14 */
} rpc_seed_t;

/* The demo's tokens live 30 days, or as long as BATCHD_JWT_MAX_TTL_S allows. */
static char *make_jwt(const char *sub) {
  json_int_t now = (json_int_t)(bd_wall_us() / 1000000);
  json_int_t ttl = bd_app.cfg.jwt_max_ttl_s < 30 * 86400 ? bd_app.cfg.jwt_max_ttl_s : 30 * 86400;
  json_t *claims = json_pack("{s:s, s:I, s:I, s:s}", "sub", sub, "iat", now, "exp", now + ttl, "role", "authenticated");
  bd_buf_t b = BD_BUF_INIT;
  bd_jwt_sign(&b, claims, bd_app.jwt_key, bd_app.jwt_key_len);
  json_decref(claims);
  return bd_buf_detach(&b, NULL);
}

static void seed_done(bd_seed_t *s, PGresult *res) {
  rpc_seed_t *q = s->data;
  json_t *o = json_object();
  char owner[80], viewer[80];
  snprintf(owner, sizeof owner, "%s-owner", s->tenant);
  snprintf(viewer, sizeof viewer, "%s-viewer", s->tenant);
  if (bd_app.jwt_key) {
    char *a = make_jwt(owner), *b = make_jwt(viewer);
    json_object_set_new(o, "jwt", json_string(a));
    json_object_set_new(o, "viewer_jwt", json_string(b));
    free(a);
    free(b);
  } else {
    /* no BATCHD_JWT_SECRET: no token can be valid */
    json_object_set_new(o, "jwt", json_null());
    json_object_set_new(o, "viewer_jwt", json_null());
  }
  json_object_set_new(o, "user_id", json_string(owner));
  json_object_set_new(o, "brand_id", json_string(q->brand));
  json_object_set_new(o, "product_id", json_string(q->product));
  json_object_set_new(o, "gtin", json_string(q->gtin));
  json_object_set_new(s->out, "products", o);
  free(q);
  s->data = NULL;
  bd_seed_next(s);
}

static void seed_product(bd_seed_t *s, PGresult *res) {
  rpc_seed_t *q = s->data;
  snprintf(q->product, sizeof q->product, "%s", PQgetvalue(res, 0, 0));
  snprintf(q->gtin, sizeof q->gtin, "%s", PQgetvalue(res, 0, 1));
  seed_done(s, res);
}

static void seed_members(bd_seed_t *s, PGresult *res) {
  rpc_seed_t *q = s->data;
  /* a GTIN per tenant: 0 + 12 digits derived from the tenant id + check digit */
  char base[20];
  snprintf(base, sizeof base, "095060%07lld", (long long)(s->tenant_id % 10000000));
  int total = 0;
  for (int i = 0; i < 13; i++) total += (base[i] - '0') * (i % 2 == 0 ? 3 : 1);
  char gtin[24];
  snprintf(gtin, sizeof gtin, "%.13s%d", base, (10 - total % 10) % 10);
  const char *p[] = {q->brand, gtin};
  bd_seed_exec(s,
               "WITH e AS (SELECT id, gtin FROM pp_products WHERE gtin = $2),"
               " i AS (INSERT INTO pp_products (brand_id, name, gtin, attributes)"
               "  SELECT $1::uuid, 'Demo jacket', $2, '{\"material\":\"recycled polyester\"}'"
               "  WHERE NOT EXISTS (SELECT 1 FROM e) RETURNING id, gtin)"
               " SELECT id, gtin FROM e UNION ALL SELECT id, gtin FROM i",
               2, p, seed_product);
}

static void seed_brand(bd_seed_t *s, PGresult *res) {
  rpc_seed_t *q = s->data;
  snprintf(q->brand, sizeof q->brand, "%s", PQgetvalue(res, 0, 0));
  char owner[80], viewer[80];
  snprintf(owner, sizeof owner, "%s-owner", s->tenant);
  snprintf(viewer, sizeof viewer, "%s-viewer", s->tenant);
  const char *p[] = {q->brand, owner, viewer};
  bd_seed_exec(s,
               "INSERT INTO pp_members (brand_id, user_id, role) VALUES ($1::uuid, $2, 'owner'), ($1::uuid, $3, 'viewer')"
               " ON CONFLICT (brand_id, user_id) DO UPDATE SET role = EXCLUDED.role",
               3, p, seed_members);
}

static void rpc_seed(bd_seed_t *s) {
  rpc_seed_t *q = bd_calloc(1, sizeof *q);
  s->data = q;
  char t[24];
  snprintf(t, sizeof t, "%lld", (long long)s->tenant_id);
  const char *p[] = {t};
  bd_seed_exec(s,
               "INSERT INTO pp_brands (tenant_id, name) VALUES ($1::bigint, 'Demo brand')"
               " ON CONFLICT (tenant_id, name) DO UPDATE SET name = EXCLUDED.name RETURNING id",
               1, p, seed_brand);
}

/* --- surface --------------------------------------------------------------------------- */

static void rpc_init(void) {
  bd_mint_init();
  bd_resolver_init();
}

static const bd_route_t routes[] = {
  {"POST", "/rpc/{fn}", bd_rpc_handle, 0, "/rpc/{fn}"},
  {"POST", "/rest/v1/rpc/{fn}", bd_rpc_handle, 0, "/rest/v1/rpc/{fn}"},
  {"GET", "/rpc/{fn}", bd_rpc_handle, 0, "/rpc/{fn}"},
  {"GET", "/rest/v1/rpc/{fn}", bd_rpc_handle, 0, "/rest/v1/rpc/{fn}"},
  /* exports: "{id}.csv" is one segment, told apart in the handler */
  {"GET", "/exports/mint-jobs/{file}", bd_export_csv, 0, "/exports/mint-jobs/{id}.csv"},
  {"GET", "/exports/mint-jobs/{id}/qr.zip", bd_export_zip, 0, "/exports/mint-jobs/{id}/qr.zip"},
  /* the GS1 Digital Link resolver: every shape of path under /01/ (up to
   * four qualifiers, a trailing slash) reaches the parser, so a bad one is
   * a 400 naming the part, not a 404; GET (and HEAD) and OPTIONS */
#define DL_ROUTES(pat)                                                   \
  {"GET", pat, bd_resolver_handle, 0, "/01/{gtin}/..."},                 \
  {"OPTIONS", pat, bd_resolver_handle, 0, "/01/{gtin}/..."},             \
  {"GET", pat "/", bd_resolver_handle, 0, "/01/{gtin}/..."},             \
  {"OPTIONS", pat "/", bd_resolver_handle, 0, "/01/{gtin}/..."}
  /* the shapes minted first (lot + serial, serial, GTIN): the table is
   * scanned in order, and this is the hot path */
  {"GET", "/01/{gtin}/{a}/{b}/{c}/{d}", bd_resolver_handle, 0, "/01/{gtin}/..."},
  {"GET", "/01/{gtin}/{a}/{b}", bd_resolver_handle, 0, "/01/{gtin}/..."},
  {"GET", "/01/{gtin}", bd_resolver_handle, 0, "/01/{gtin}"},
  DL_ROUTES("/01/{gtin}"),
  DL_ROUTES("/01/{gtin}/{a}"),
  DL_ROUTES("/01/{gtin}/{a}/{b}"),
  DL_ROUTES("/01/{gtin}/{a}/{b}/{c}"),
  DL_ROUTES("/01/{gtin}/{a}/{b}/{c}/{d}"),
  DL_ROUTES("/01/{gtin}/{a}/{b}/{c}/{d}/{e}"),
  DL_ROUTES("/01/{gtin}/{a}/{b}/{c}/{d}/{e}/{f}"),
  DL_ROUTES("/01/{gtin}/{a}/{b}/{c}/{d}/{e}/{f}/{g}"),
  DL_ROUTES("/01/{gtin}/{a}/{b}/{c}/{d}/{e}/{f}/{g}/{h}"),
#undef DL_ROUTES
  {"GET", "/contexts/linkset.jsonld", bd_resolver_context, 0, "/contexts/linkset.jsonld"},
  {"OPTIONS", "/.well-known/gs1resolver", bd_resolver_handle, 0, "/.well-known/gs1resolver"},
  {"GET", "/.well-known/gs1resolver", bd_resolver_wellknown, 0, "/.well-known/gs1resolver"},
  {"GET", "/passports/{id}", bd_passport_handle, 0, "/passports/{id}"},
  /* a compressed Digital Link is one segment at the root; last, and weak:
   * any other path of one segment stays the core's 404 for every method */
  {"GET", "/{dl}", bd_resolver_compressed, BD_ROUTE_WEAK, "/{compressed-digital-link}"},
  {"OPTIONS", "/{dl}", bd_resolver_compressed, BD_ROUTE_WEAK, "/{compressed-digital-link}"},
};

/* Errors under these paths are PostgREST-shaped (bd_products_format_error). */
static const char *const error_paths[] = {"/rpc/", "/rest/v1/rpc/", "/exports/", "/01/", "/passports/",
                                          "/.well-known/gs1resolver", "/contexts/", NULL};

const bd_surface_def_t bd_surface_products = {
    .name = "products",
    .routes = routes,
    .nroutes = BD_ARRAY_LEN(routes),
    .errors = {error_paths, bd_products_format_error},
    .init = rpc_init,
    .flush = bd_resolver_flush,
    .seed = rpc_seed,
    .admin = &bd_products_admin,
};

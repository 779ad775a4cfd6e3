/* rpc.c: the /rpc surface (tieback DPP RPC API, PostgREST style).
 *
 * POST /rpc/{function} and POST /rest/v1/rpc/{function} with a JSON object
 * of `_`-prefixed arguments. The caller is a `Bearer` HS256 JWT (exp
 * required, `sub` is the user); brand roles decide what it may do. Each
 * function is one call to its rpc_* SQL function (src/sql/003_products.sql)
 * with (sub, arguments): the logic, the role checks and the validation run
 * in one round trip, and SQLSTATEs become PostgREST-shaped errors here:
 *   42501 → 403 Forbidden       22023, 22P02, 23502, 23514 → 400 Invalid input
 *   P0002 → 404                 23505 → 409
 */
#include "app.h"
#include "auth.h"
#include "idem.h"
#include "jobs.h"
#include "json.h"
#include "log.h"
#include "products.h"
#include "surfaces.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>

typedef struct {
  const char *name;   /* function name in the URL */
  bd_pg_stmt_t stmt;  /* SELECT rpc_<name>($1, $2::jsonb[, $3])::text */
  int nparams;        /* 2, or 3 when the function also takes the public base URL */
} rpc_fn_t;

static rpc_fn_t k_fns[] = {
  {"create_product", BD_PG_STMT("SELECT rpc_create_product($1, $2::jsonb)::text")},
  {"list_products", BD_PG_STMT("SELECT rpc_list_products($1, $2::jsonb)::text")},
  {"create_product_batch", BD_PG_STMT("SELECT rpc_create_product_batch($1, $2::jsonb)::text")},
  {"list_product_batches", BD_PG_STMT("SELECT rpc_list_product_batches($1, $2::jsonb)::text")},
  {"update_product_batch", BD_PG_STMT("SELECT rpc_update_product_batch($1, $2::jsonb)::text")},
  {"submit_mint_request", BD_PG_STMT("SELECT rpc_submit_mint_request($1, $2::jsonb)::text")},
  {"get_mint_job", BD_PG_STMT("SELECT rpc_get_mint_job($1, $2::jsonb)::text")},
  {"list_mint_units", BD_PG_STMT("SELECT rpc_list_mint_units($1, $2::jsonb, $3)::text"), 3},
};

typedef struct {
  rpc_fn_t *fn;       /* the function called */
  char *sub;          /* the caller (JWT sub) */
} rpc_ctx_t;

static void rpc_ctx_free(bd_req_t *req) {
  rpc_ctx_t *c = req->ctx;
  if (!c) return;
  free(c->sub);
  free(c);
  req->ctx = NULL;
}

/* PostgREST-shaped error: {"code","message","details","hint"}. */
void bd_rpc_error(bd_req_t *req, int status, const char *code, const char *message, const char *details,
                      const char *hint) {
  bd_buf_t b = BD_BUF_INIT;
  bd_jw_t w;
  bd_jw_init(&w, &b);
  bd_jw_obj(&w);
  bd_jw_kstr(&w, "code", code);
  bd_jw_kstr(&w, "message", message);
  bd_jw_kstr(&w, "details", details);
  bd_jw_kstr(&w, "hint", hint);
  bd_jw_obj_end(&w);
  bd_resp_json(req, status, &b);
}

void bd_rpc_db_error(bd_req_t *req, const bd_pg_result_t *r) {
  if (r->err == BD_PG_ESQL) {
    const char *st = r->sqlstate;
    int status = 0;
    const char *msg = r->message;
    if (!strcmp(st, "42501")) status = 403, msg = "Forbidden";
    else if (!strcmp(st, "22023") || !strcmp(st, "22P02") || !strcmp(st, "23502") || !strcmp(st, "23514") ||
             !strcmp(st, "22003") || !strcmp(st, "22001"))
      status = 400, msg = "Invalid input";
    else if (!strcmp(st, "P0002")) status = 404;
    else if (!strcmp(st, "23505")) status = 409;
    if (status) {
      /* for generic constraint errors the server's message is the detail */
      const char *details = r->detail ? r->detail : (status == 400 || status == 409 ? r->message : NULL);
      bd_rpc_error(req, status, st, msg, details, r->hint);
    } else {
      bd_app_db_error(req, r);
    }
  } else {
    bd_app_db_error(req, r);
  }
}

static void on_rpc(void *ud, const bd_pg_result_t *r) {
  bd_req_t *req = ud;
  if (r->err == BD_PG_OK) {
    const char *body = PQgetisnull(r->res, 0, 0) ? "null" : PQgetvalue(r->res, 0, 0);
    bd_resp_send(req, 200, "application/json; charset=utf-8", body, strlen(body));
    if (!strcmp(((rpc_ctx_t *)req->ctx)->fn->name, "submit_mint_request")) bd_jobs_kick();
  } else {
    bd_rpc_db_error(req, r);
  }
  bd_req_release(req);
}

static void call(bd_req_t *req) {
  rpc_ctx_t *c = req->ctx;
  const char *p[] = {c->sub, req->body.data, bd_app.cfg.public_url};
  bd_req_hold(req);
  if (bd_pg_query(bd_app.pg, &c->fn->stmt, c->fn->nparams ? c->fn->nparams : 2, p, on_rpc, req) != 0) {
    bd_app_unavailable(req);
    bd_req_release(req);
  }
}

bool bd_rpc_authenticate(bd_req_t *req, char sub_out[201]) {
  bd_str_t tok;
  json_t *claims = NULL;
  int jrc = BD_JWT_EMALFORMED;
  if (bd_app.jwt_key && bd_bearer(bd_req_header(req, "Authorization"), &tok))
    jrc = bd_jwt_verify(tok, bd_app.jwt_key, bd_app.jwt_key_len, bd_wall_us() / 1000000, 30, &claims);
  const char *sub = claims ? json_string_value(json_object_get(claims, "sub")) : NULL;
  if (jrc != BD_JWT_OK || !sub || !*sub || strlen(sub) > 200) {
    json_decref(claims);
    bd_resp_header(req, "WWW-Authenticate", "Bearer");
    bd_rpc_error(req, 401, "PGRST301", "Not authenticated", jrc != BD_JWT_OK ? bd_jwt_strerror(jrc) : "sub is required",
              NULL);
    return false;
  }
  snprintf(sub_out, 201, "%s", sub);
  json_decref(claims);
  return true;
}

static void rpc_handler(bd_req_t *req) {
  const char *name = bd_req_param(req, 0);
  rpc_fn_t *fn = NULL;
  for (size_t i = 0; i < BD_ARRAY_LEN(k_fns); i++)
    if (!strcmp(k_fns[i].name, name)) fn = &k_fns[i];
  /* authentication first: an unauthenticated caller learns nothing */
  char sub[201];
  if (!bd_rpc_authenticate(req, sub)) return;
  rpc_ctx_t *c = bd_calloc(1, sizeof *c);
  c->sub = bd_strdup(sub);
  c->fn = fn;
  req->ctx = c;
  req->on_free = rpc_ctx_free;
  snprintf(req->cred_buf, sizeof req->cred_buf, "jwt:%.58s", c->sub);
  req->cred_id = req->cred_buf;
  if (!fn) {
    char det[160];
    snprintf(det, sizeof det, "Searched for the function public.%.100s", name);
    bd_rpc_error(req, 404, "PGRST202", "Could not find the function", det, NULL);
    return;
  }
  if (!bd_app_rate_limit(req, req->cred_id)) return;
  /* the body: a JSON object (an empty body means no arguments) */
  if (req->body.len == 0) bd_buf_puts(&req->body, "{}");
  int depth = bd_json_depth(req->body.data, req->body.len);
  json_error_t jerr;
  json_t *args = depth <= bd_app.cfg.max_json_depth ? json_loadb(req->body.data, req->body.len, 0, &jerr) : NULL;
  if (!json_is_object(args)) {
    json_decref(args);
    bd_rpc_error(req, 400, "PGRST102", "Invalid input",
              depth > bd_app.cfg.max_json_depth ? "JSON nesting is too deep" : "the body must be a JSON object", NULL);
    return;
  }
  json_decref(args);
  bd_idem_wrap(req, req->cred_id, call);
}

/* --- seed-demo ------------------------------------------------------------------------ */

typedef struct {
  char brand[40];   /* brand id */
  char product[40]; /* product id */
  char gtin[16];    /* its GTIN-14 */
} rpc_seed_t;

static char *make_jwt(const char *sub) {
  json_t *claims = json_pack("{s:s, s:I, s:I, s:s}", "sub", sub, "iat", (json_int_t)(bd_wall_us() / 1000000),
                             "exp", (json_int_t)(bd_wall_us() / 1000000 + 30 * 86400), "role", "authenticated");
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

static void rpc_init(void) {
  bd_mint_init();
  bd_resolver_init();
}

static const bd_route_t routes[] = {
  {"POST", "/rpc/{fn}", rpc_handler, 0, "/rpc/{fn}"},
  {"POST", "/rest/v1/rpc/{fn}", rpc_handler, 0, "/rest/v1/rpc/{fn}"},
  /* exports: "{id}.csv" is one segment, told apart in the handler */
  {"GET", "/exports/mint-jobs/{file}", bd_export_csv, 0, "/exports/mint-jobs/{id}.csv"},
  {"GET", "/exports/mint-jobs/{id}/qr.zip", bd_export_zip, 0, "/exports/mint-jobs/{id}/qr.zip"},
  /* the GS1 Digital Link resolver: every shape of path under /01/ reaches
   * the parser, so a bad one is a 400 naming the part, not a 404 */
  {"GET", "/01/{gtin}", bd_resolver_handle, 0, "/01/{gtin}"},
  {"GET", "/01/{gtin}/{a}", bd_resolver_handle, 0, "/01/{gtin}/..."},
  {"GET", "/01/{gtin}/{a}/{b}", bd_resolver_handle, 0, "/01/{gtin}/..."},
  {"GET", "/01/{gtin}/{a}/{b}/{c}", bd_resolver_handle, 0, "/01/{gtin}/..."},
  {"GET", "/01/{gtin}/{a}/{b}/{c}/{d}", bd_resolver_handle, 0, "/01/{gtin}/..."},
  {"GET", "/01/{gtin}/{a}/{b}/{c}/{d}/{e}", bd_resolver_handle, 0, "/01/{gtin}/..."},
  {"GET", "/.well-known/gs1resolver", bd_resolver_wellknown, 0, "/.well-known/gs1resolver"},
  {"GET", "/passports/{id}", bd_passport_handle, 0, "/passports/{id}"},
};

const bd_surface_def_t bd_surface_rpc = {"rpc", routes, BD_ARRAY_LEN(routes), rpc_init, NULL, rpc_seed};

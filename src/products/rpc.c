/* rpc.c: the /rpc dispatcher of the products surface (tieback DPP RPC API,
 * PostgREST style).
 *
 * POST /rpc/{function} and POST /rest/v1/rpc/{function} with a JSON object
 * of `_`-prefixed arguments. The caller is a `Bearer` HS256 JWT (exp
 * required, `sub` is the user); brand roles decide what it may do. Each
 * function is one call to its rpc_* SQL function (src/sql/003_products.sql)
 * with (sub, arguments): the logic, the role checks and the validation run
 * in one round trip, and SQLSTATEs become PostgREST-shaped errors
 * (bd_rpc_db_error, products_common.c; the map is in products.h). The
 * body is checked here (a JSON object within BATCHD_MAX_JSON_DEPTH), the
 * call runs under bd_idem_wrap (Idempotency-Key), and a submitted mint
 * request kicks the job runner.
 */
#include "app.h"
#include "idem.h"
#include "jobs.h"
#include "json.h"
#include "products.h"
#include "webhooks.h"

#include <jansson.h>
#include <sodium.h>

#include <stdio.h>
#include <stdlib.h>

enum { FN_PLAIN, FN_BASE_URL, FN_WEBHOOK_CREATE, FN_WEBHOOK_UPDATE };

typedef struct {
  const char *name;   /* function name in the URL */
  bd_pg_stmt_t stmt;  /* SELECT rpc_<name>(pp_caller($1 sub, $3 jti), $2::jsonb[, $4 ...])::text */
  int nparams;        /* 3, or more (kind) */
  int kind;           /* FN_BASE_URL: $4 the public base URL; FN_WEBHOOK_*: $4 a sealed new secret
                         (update: only with _rotate_secret), create: $5 BATCHD_MAX_WEBHOOKS */
} rpc_fn_t;

static rpc_fn_t k_fns[] = {
  {"create_product", BD_PG_STMT("SELECT rpc_create_product(pp_caller($1, $3), $2::jsonb)::text")},
  {"list_products", BD_PG_STMT("SELECT rpc_list_products(pp_caller($1, $3), $2::jsonb)::text")},
  {"create_product_batch", BD_PG_STMT("SELECT rpc_create_product_batch(pp_caller($1, $3), $2::jsonb)::text")},
  {"list_product_batches", BD_PG_STMT("SELECT rpc_list_product_batches(pp_caller($1, $3), $2::jsonb)::text")},
  {"update_product_batch", BD_PG_STMT("SELECT rpc_update_product_batch(pp_caller($1, $3), $2::jsonb)::text")},
  {"submit_mint_request", BD_PG_STMT("SELECT rpc_submit_mint_request(pp_caller($1, $3), $2::jsonb)::text")},
  {"get_mint_job", BD_PG_STMT("SELECT rpc_get_mint_job(pp_caller($1, $3), $2::jsonb)::text")},
  {"preflight_mint_batch", BD_PG_STMT("SELECT rpc_preflight_mint_batch(pp_caller($1, $3), $2::jsonb)::text")},
  {"list_mint_units", BD_PG_STMT("SELECT rpc_list_mint_units(pp_caller($1, $3), $2::jsonb, $4)::text"), 4,
   FN_BASE_URL},
  {"get_unit_scans", BD_PG_STMT("SELECT rpc_get_unit_scans(pp_caller($1, $3), $2::jsonb, $4)::text"), 4,
   FN_BASE_URL},
  {"create_webhook_endpoint",
   BD_PG_STMT("SELECT rpc_create_webhook_endpoint(pp_caller($1, $3), $2::jsonb, $4::bytea, $5::int)::text"), 5,
   FN_WEBHOOK_CREATE},
  {"list_webhook_endpoints", BD_PG_STMT("SELECT rpc_list_webhook_endpoints(pp_caller($1, $3), $2::jsonb)::text")},
  {"update_webhook_endpoint",
   BD_PG_STMT("SELECT rpc_update_webhook_endpoint(pp_caller($1, $3), $2::jsonb, $4::bytea)::text"), 4,
   FN_WEBHOOK_UPDATE},
  {"delete_webhook_endpoint", BD_PG_STMT("SELECT rpc_delete_webhook_endpoint(pp_caller($1, $3), $2::jsonb)::text")},
  {"list_webhook_deliveries", BD_PG_STMT("SELECT rpc_list_webhook_deliveries(pp_caller($1, $3), $2::jsonb)::text")},
  {"retry_webhook_delivery", BD_PG_STMT("SELECT rpc_retry_webhook_delivery(pp_caller($1, $3), $2::jsonb)::text")},
};

/* PostgREST reads (pgrst.c): the functions whose answer is rows (a JSON
 * array: filters, order and ranges apply), and those that only read, which
 * may also be called with GET (arguments in the query string). */
static const char *const k_row_fns[] = {"list_products", "list_product_batches", "list_webhook_endpoints",
                                        "list_webhook_deliveries"};
static const char *const k_read_fns[] = {"list_products", "list_product_batches", "get_mint_job", "list_mint_units",
                                         "preflight_mint_batch", "list_webhook_endpoints",
                                         "list_webhook_deliveries", "get_unit_scans"};

static bool fn_in(const char *name, const char *const *list, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (!strcmp(list[i], name)) return true;
  return false;
}

typedef struct {
  rpc_fn_t *fn;       /* the function called */
  bd_pgrst_t *opts;   /* its PostgREST options */
  char *sub;          /* the caller (JWT sub) */
  char jti[16];       /* its jti if minted by batchd token create, else "" */
  char *secret;       /* a webhook secret made for this call (answered once) */
  char *sealed;       /* its sealed form, a bytea hex literal */
} rpc_ctx_t;

static void rpc_ctx_free(void *arg) {
  rpc_ctx_t *c = arg;
  free(c->sub);
  if (c->secret) sodium_memzero(c->secret, strlen(c->secret));
  free(c->secret);
  free(c->sealed);
  bd_pgrst_free(c->opts);
  free(c);
}

static void on_rpc(void *ud, const bd_pg_result_t *r) {
  bd_req_t *req = ud;
  rpc_ctx_t *c = req->ctx;
  if (r->err == BD_PG_OK && c->secret && !PQgetisnull(r->res, 0, 0)) {
    /* the secret is answered here, once; the database has only its sealed form */
    json_t *o = json_loads(PQgetvalue(r->res, 0, 0), 0, NULL);
    json_object_set_new(o, "secret", json_string(c->secret));
    char *text = json_dumps(o, JSON_COMPACT);
    bd_pgrst_answer(req, c->fn->name, c->opts, text, strlen(text));
    free(text);
    json_decref(o);
  } else if (r->err == BD_PG_OK) {
    const char *body = PQgetisnull(r->res, 0, 0) ? "null" : PQgetvalue(r->res, 0, 0);
    bd_pgrst_answer(req, c->fn->name, c->opts, body, strlen(body));
    if (!strcmp(((rpc_ctx_t *)req->ctx)->fn->name, "submit_mint_request")) bd_jobs_kick();
  } else {
    bd_rpc_db_error(req, r);
  }
  bd_req_release(req);
}

static void call(bd_req_t *req) {
  rpc_ctx_t *c = req->ctx;
  char max[24] = "";
  if (c->fn->kind == FN_WEBHOOK_CREATE) snprintf(max, sizeof max, "%lld", (long long)bd_app.cfg.max_webhooks);
  const char *p[] = {c->sub, req->body.data, c->jti[0] ? c->jti : NULL,
                     c->fn->kind == FN_BASE_URL ? bd_app.cfg.public_url : c->sealed, max};
  bd_app_query(req, &c->fn->stmt, c->fn->nparams ? c->fn->nparams : 3, p, on_rpc, req);
}

/* Webhook functions: the URL is checked here (the rules need the settings)
 * and a secret is made for create, or update with _rotate_secret. false
 * after answering. */
static bool webhook_prepare(bd_req_t *req, rpc_ctx_t *c, json_t *args) {
  json_t *url = json_object_get(args, "_url");
  if (url && !json_is_null(url)) {
    const char *why = json_is_string(url) ? bd_webhook_url_problem(json_string_value(url)) : "_url must be a string";
    if (why) {
      bd_rpc_error(req, 400, "22023", "Invalid input", why, NULL);
      return false;
    }
  }
  if (c->fn->kind == FN_WEBHOOK_CREATE || json_is_true(json_object_get(args, "_rotate_secret"))) {
    char secret[BD_WEBHOOK_SECRET_MAX], err[256];
    bd_buf_t sealed = BD_BUF_INIT;
    if (bd_webhook_secret_new(secret, &sealed, err, sizeof err) != 0) {
      bd_buf_free(&sealed);
      bd_app_unavailable(req);
      return false;
    }
    c->secret = bd_strdup(secret);
    sodium_memzero(secret, sizeof secret);
    c->sealed = bd_buf_detach(&sealed, NULL);
  }
  return true;
}

void bd_rpc_handle(bd_req_t *req) {
  const char *name = bd_req_param(req, 0);
  rpc_fn_t *fn = NULL;
  for (size_t i = 0; i < BD_ARRAY_LEN(k_fns); i++)
    if (!strcmp(k_fns[i].name, name)) fn = &k_fns[i];
  /* authentication first: an unauthenticated caller learns nothing */
  char sub[201], jti[16];
  if (!bd_rpc_authenticate(req, sub, jti)) return;
  rpc_ctx_t *c = bd_calloc(1, sizeof *c);
  c->sub = bd_strdup(sub);
  memcpy(c->jti, jti, sizeof c->jti);
  c->fn = fn;
  req->ctx = c;
  bd_req_defer(req, rpc_ctx_free, c);
  snprintf(req->cred_buf, sizeof req->cred_buf, "jwt:%.58s", c->sub);
  req->cred_id = req->cred_buf;
  if (!fn) {
    char det[160];
    snprintf(det, sizeof det, "Searched for the function public.%.100s", name);
    bd_rpc_error(req, 404, "PGRST202", "Could not find the function", det, NULL);
    return;
  }
  if (!bd_app_rate_limit(req, req->cred_id)) return;
  bool rows = fn_in(fn->name, k_row_fns, BD_ARRAY_LEN(k_row_fns));
  if (req->method != HTTP_POST) {
    /* GET (or HEAD): a function that only reads, its arguments in the query string */
    if (!fn_in(fn->name, k_read_fns, BD_ARRAY_LEN(k_read_fns))) {
      char msg[160];
      snprintf(msg, sizeof msg, "cannot execute %.100s in a read-only transaction", fn->name);
      bd_resp_header(req, "Allow", "POST");
      bd_rpc_error(req, 405, "25006", msg, "a function that writes is called with POST", NULL);
      return;
    }
    json_t *qargs = json_object();
    c->opts = bd_pgrst_parse(req, fn->name, rows, qargs);
    if (c->opts) {
      char *text = json_dumps(qargs, JSON_COMPACT);
      bd_buf_reset(&req->body);
      bd_buf_puts(&req->body, text);
      free(text);
    }
    json_decref(qargs);
    if (c->opts) call(req);
    return;
  }
  c->opts = bd_pgrst_parse(req, fn->name, rows, NULL);
  if (!c->opts) return;
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
  if ((fn->kind == FN_WEBHOOK_CREATE || fn->kind == FN_WEBHOOK_UPDATE) && !webhook_prepare(req, c, args)) {
    json_decref(args);
    return;
  }
  json_decref(args);
  bd_idem_wrap(req, req->cred_id, call);
}

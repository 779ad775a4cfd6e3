/* resolver.c: the public GS1 Digital Link resolver and the passport pages.
 *
 *   GET /01/{gtin}[/10/{lot}][/21/{serial}][?17=YYMMDD][&11=YYMMDD]
 *     400  bad syntax, check digit, character set (details name the part)
 *     404  no such product, batch or unit
 *     307  Location: the passport page (gs1:defaultLink), query attributes
 *          17 and 11 passed through
 *     200  RFC 9264 linkset with Accept: application/linkset+json (or
 *          ?linkType=linkset / all)
 *   Every answer carries a Link header (the passport as the default link and
 *   the linkset; on errors the resolver description).
 *
 * Lookups: one statement of index probes (pp_units (gtin, serial) and the
 * unit's job by id range; pp_products (gtin); pp_batches (product,
 * batch_number)). Unit and
 * product identities never change once they exist (no unit, GTIN or serial
 * is ever rewritten or deleted), so positive answers for them are kept in a
 * direct-mapped in-memory cache of BATCHD_RESOLVER_CACHE slots: a hit
 * needs no query and can never be stale. Lot-only lookups are not cached:
 * a batch number can be changed with update_product_batch. Unknown
 * identities are not cached either (they may be minted any moment).
 *
 *   GET /passports/{id}   id = "{gtin14}", "{gtin14}~10~{lot}" or
 *     "{gtin14}~21~{serial}" (values percent-encoded as in a Digital Link):
 *     JSON for Accept: application/json (or ld+json), HTML otherwise.
 */
#include "app.h"
#include "gs1.h"
#include "json.h"
#include "products.h"
#include "util.h"

#include <jansson.h>

#include <stdio.h>
#include <stdlib.h>

#define KEY_MAX (BD_GS1_GTIN14_LEN + 2 + 2 * BD_GS1_VALUE_MAX + 1)

typedef struct {
  char key[KEY_MAX]; /* "gtin|L|lot|S|serial"-like key, "" when empty */
  uint8_t kind;      /* 1 product, 2 unit */
} rc_slot_t;

static rc_slot_t *g_cache;  /* direct-mapped: a colliding key replaces the old one */
static size_t g_cache_n;    /* slots */

/* One of three lookups, each a single statement of index probes (plain
 * SQL, no function calls: it runs at the rate of a primary-key select). */
static bd_pg_stmt_t S_RESOLVE_UNIT = BD_PG_STMT(
    "SELECT j.lot FROM pp_units u CROSS JOIN LATERAL (SELECT m.lot FROM pp_mint_jobs m"
    " WHERE m.first_unit_id <= u.id ORDER BY m.first_unit_id DESC LIMIT 1) j WHERE u.gtin = $1 AND u.serial = $2");
static bd_pg_stmt_t S_RESOLVE_LOT = BD_PG_STMT(
    "SELECT 1 FROM pp_products p JOIN pp_batches b ON b.product_id = p.id WHERE p.gtin = $1 AND b.batch_number = $2");
static bd_pg_stmt_t S_RESOLVE_PRODUCT = BD_PG_STMT("SELECT 1 FROM pp_products WHERE gtin = $1");
static bd_pg_stmt_t S_PASSPORT = BD_PG_STMT("SELECT pp_passport($1, $2, $3, $4)::text");

void bd_resolver_init(void) {
  g_cache_n = (size_t)bd_app.cfg.resolver_cache;
  free(g_cache);
  g_cache = g_cache_n ? bd_calloc(g_cache_n, sizeof *g_cache) : NULL;
}

static uint64_t fnv1a(const char *s) {
  uint64_t h = 1469598103934665603ull;
  for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
  return h;
}

/* The identity as a cache key: lot and serial told apart by their flags. */
static void make_key(const bd_gs1_dl_t *dl, char out[KEY_MAX]) {
  snprintf(out, KEY_MAX, "%s%c%s%c%s", dl->gtin, dl->has_lot ? '|' : '-', dl->lot, dl->has_serial ? '|' : '-',
           dl->serial);
}

static rc_slot_t *cache_slot(const char *key) {
  return g_cache_n ? &g_cache[fnv1a(key) % g_cache_n] : NULL;
}

/* The query attributes passed through (17, 11): already validated YYMMDD. */
static void attrs_query(const bd_gs1_dl_t *dl, bd_buf_t *out) {
  if (dl->expiry[0]) bd_buf_printf(out, "17=%s", dl->expiry);
  if (dl->prod_date[0]) bd_buf_printf(out, "%s11=%s", out->len ? "&" : "", dl->prod_date);
}

/* Passport id of a resolved identity (see pp_passport_id). */
static void passport_id(const bd_gs1_dl_t *dl, int kind, bd_buf_t *out) {
  bd_buf_puts(out, dl->gtin);
  const char *v = kind == 2 ? dl->serial : kind == 3 ? dl->lot : NULL;
  if (!v) return;
  bd_buf_puts(out, kind == 2 ? "~21~" : "~10~");
  for (const unsigned char *p = (const unsigned char *)v; *p; p++) {
    if (bd_gs1_dl_needs_escape(*p)) bd_buf_printf(out, "%%%02X", *p);
    else bd_buf_putc(out, (char)*p);
  }
}

static bool wants_linkset(bd_req_t *req) {
  bd_str_t acc = bd_req_header(req, "Accept");
  if (acc.p && memmem(acc.p, acc.len, "application/linkset+json", 24)) return true;
  bd_buf_t v = BD_BUF_INIT;
  bool ls = bd_query_get(req->query, "linkType", &v) && v.data &&
            (!strcmp(v.data, "linkset") || !strcmp(v.data, "all") || !strcmp(v.data, "gs1:linkset"));
  bd_buf_free(&v);
  return ls;
}

static void link_describedby(bd_req_t *req) {
  bd_resp_headerf(req, "Link", "<%s/.well-known/gs1resolver>; rel=\"describedby\"; type=\"application/json\"",
                  bd_app.cfg.public_url);
}

/* Answers a resolved identity: kind 1 product, 2 unit, 3 batch (lot). */
static void answer(bd_req_t *req, const bd_gs1_dl_t *dl, int kind) {
  const char *base = bd_app.cfg.public_url;
  bd_buf_t anchor = BD_BUF_INIT, pid = BD_BUF_INIT, q = BD_BUF_INIT, loc = BD_BUF_INIT;
  if (bd_gs1_dl_format(&anchor, base, dl->gtin, dl->has_lot ? dl->lot : NULL, dl->has_serial ? dl->serial : NULL) !=
      BD_GS1_OK)
    bd_buf_puts(&anchor, base);
  passport_id(dl, kind, &pid);
  attrs_query(dl, &q);
  bd_buf_printf(&loc, "%s/passports/%s%s%s", base, pid.data, q.len ? "?" : "", q.len ? q.data : "");
  bd_resp_headerf(req, "Link",
                  "<%s>; rel=\"https://gs1.org/voc/defaultLink\"; type=\"text/html\"; title=\"Digital product passport\", "
                  "<%s/passports/%s>; rel=\"https://gs1.org/voc/pip\"; type=\"application/json\", "
                  "<%s?linkType=linkset>; rel=\"linkset\"; type=\"application/linkset+json\"",
                  loc.data, base, pid.data, anchor.data);
  bd_resp_header(req, "Vary", "Accept");
  if (wants_linkset(req)) {
    bd_buf_t b = BD_BUF_INIT;
    bd_jw_t w;
    bd_jw_init(&w, &b);
    bd_jw_obj(&w);
    bd_jw_key(&w, "linkset");
    bd_jw_arr(&w);
    bd_jw_obj(&w);
    bd_jw_kstr(&w, "anchor", anchor.data);
    bd_jw_key(&w, "https://gs1.org/voc/defaultLink");
    bd_jw_arr(&w);
    bd_jw_obj(&w);
    bd_jw_kstr(&w, "href", loc.data);
    bd_jw_kstr(&w, "title", "Digital product passport");
    bd_jw_kstr(&w, "type", "text/html");
    bd_jw_obj_end(&w);
    bd_jw_arr_end(&w);
    bd_jw_key(&w, "https://gs1.org/voc/pip");
    bd_jw_arr(&w);
    bd_jw_obj(&w);
    bd_buf_t pj = BD_BUF_INIT;
    bd_buf_printf(&pj, "%s/passports/%s", base, pid.data);
    bd_jw_kstr(&w, "href", pj.data);
    bd_buf_free(&pj);
    bd_jw_kstr(&w, "title", "Product information (passport data)");
    bd_jw_kstr(&w, "type", "application/json");
    bd_jw_obj_end(&w);
    bd_jw_arr_end(&w);
    bd_jw_obj_end(&w);
    bd_jw_arr_end(&w);
    bd_jw_obj_end(&w);
    bd_resp_send(req, 200, "application/linkset+json", b.data, b.len);
    bd_buf_free(&b);
  } else {
    bd_resp_header(req, "Location", loc.data);
    bd_resp_send(req, 307, "text/plain; charset=utf-8", "", 0);
  }
  bd_buf_free(&anchor);
  bd_buf_free(&pid);
  bd_buf_free(&q);
  bd_buf_free(&loc);
}

typedef struct {
  bd_gs1_dl_t dl;       /* the parsed identity */
  char key[KEY_MAX];    /* its cache key */
} resolve_ctx_t;

static void not_found(bd_req_t *req, const char *what) {
  link_describedby(req);
  bd_rpc_error(req, 404, "PGRST116", "Not found", what, NULL);
}

static void on_resolved(void *ud, const bd_pg_result_t *r) {
  bd_req_t *req = ud;
  resolve_ctx_t *c = req->ctx;
  if (r->err) {
    link_describedby(req);
    bd_rpc_db_error(req, r);
  } else if (PQntuples(r->res) == 0 ||
             (c->dl.has_serial && c->dl.has_lot && strcmp(PQgetvalue(r->res, 0, 0), c->dl.lot))) {
    /* (a unit named with a lot must be of that lot) */
    not_found(req, c->dl.has_serial ? "no unit with this GTIN and serial"
                   : c->dl.has_lot  ? "no batch with this GTIN and lot"
                                    : "no product with this GTIN");
  } else {
    int k = c->dl.has_serial ? 2 : c->dl.has_lot ? 3 : 1;
    rc_slot_t *s = k != 3 ? cache_slot(c->key) : NULL;
    if (s) {
      memcpy(s->key, c->key, sizeof s->key);
      s->kind = (uint8_t)k;
    }
    answer(req, &c->dl, k);
  }
  bd_req_release(req);
}

void bd_resolver_handle(bd_req_t *req) {
  resolve_ctx_t *c = bd_req_calloc(req, sizeof *c);
  req->ctx = c;
  if (bd_gs1_dl_parse(req->path, req->query, &c->dl) != BD_GS1_OK) {
    link_describedby(req);
    bd_rpc_error(req, 400, "22023", "Invalid input", c->dl.errmsg, "GS1 Digital Link: /01/{gtin}[/10/{lot}][/21/{serial}]");
    return;
  }
  make_key(&c->dl, c->key);
  rc_slot_t *s = cache_slot(c->key);
  if (s && s->kind && !strcmp(s->key, c->key)) {
    answer(req, &c->dl, s->kind);
    return;
  }
  const char *p[] = {c->dl.gtin, c->dl.has_serial ? c->dl.serial : c->dl.lot};
  bd_pg_stmt_t *st = c->dl.has_serial ? &S_RESOLVE_UNIT : c->dl.has_lot ? &S_RESOLVE_LOT : &S_RESOLVE_PRODUCT;
  bd_req_hold(req);
  if (bd_pg_query(bd_app.pg, st, st == &S_RESOLVE_PRODUCT ? 1 : 2, p, on_resolved, req) != 0) {
    link_describedby(req);
    bd_app_unavailable(req);
    bd_req_release(req);
  }
}

void bd_resolver_wellknown(bd_req_t *req) {
  const char *base = bd_app.cfg.public_url;
  bd_buf_t b = BD_BUF_INIT;
  bd_jw_t w;
  bd_jw_init(&w, &b);
  bd_jw_obj(&w);
  bd_jw_kstr(&w, "name", "batchd GS1 Digital Link resolver");
  bd_jw_kstr(&w, "resolverRoot", base);
  bd_jw_key(&w, "supportedPrimaryKeys");
  bd_jw_arr(&w);
  bd_jw_str(&w, "gtin");
  bd_jw_arr_end(&w);
  bd_jw_key(&w, "supportedQualifiers");
  bd_jw_arr(&w);
  bd_jw_str(&w, "10");
  bd_jw_str(&w, "21");
  bd_jw_arr_end(&w);
  bd_jw_key(&w, "supportedDataAttributes");
  bd_jw_arr(&w);
  bd_jw_str(&w, "17");
  bd_jw_str(&w, "11");
  bd_jw_arr_end(&w);
  bd_jw_key(&w, "supportedLinkTypes");
  bd_jw_arr(&w);
  bd_jw_str(&w, "https://gs1.org/voc/defaultLink");
  bd_jw_str(&w, "https://gs1.org/voc/pip");
  bd_jw_str(&w, "linkset");
  bd_jw_arr_end(&w);
  bd_jw_kbool(&w, "linkTypeDefaultCanBeLinkset", false);
  bd_jw_kstr(&w, "linksetMediaType", "application/linkset+json");
  bd_jw_kstr(&w, "defaultRedirectStatus", "307");
  bd_jw_obj_end(&w);
  link_describedby(req);
  bd_resp_send(req, 200, "application/json; charset=utf-8", b.data, b.len);
  bd_buf_free(&b);
}

/* --- passports ----------------------------------------------------------------- */

typedef struct {
  char gtin[BD_GS1_GTIN14_LEN + 1];  /* the product */
  char lot[BD_GS1_VALUE_MAX + 1];    /* "" when absent */
  char serial[BD_GS1_VALUE_MAX + 1]; /* "" when absent */
  bool json;                         /* the client wants JSON */
} passport_ctx_t;

static bool wants_json(bd_req_t *req) {
  bd_str_t acc = bd_req_header(req, "Accept");
  if (!acc.p) return false;
  return memmem(acc.p, acc.len, "application/json", 16) || memmem(acc.p, acc.len, "application/ld+json", 19) ||
         memmem(acc.p, acc.len, "+json", 5);
}

/* Parses "{gtin14}[~10~lot|~21~serial]"; false on anything else. */
static bool parse_passport_id(const char *id, passport_ctx_t *c) {
  size_t n = strlen(id);
  if (n < 14) return false;
  for (int i = 0; i < 14; i++)
    if (id[i] < '0' || id[i] > '9') return false;
  char g[BD_GS1_GTIN14_LEN + 1];
  if (bd_gs1_gtin_normalise(id, 14, g) != BD_GS1_OK) return false;
  memcpy(c->gtin, g, sizeof g);
  if (n == 14) return true;
  if (n < 19 || id[14] != '~' || id[17] != '~') return false;
  bool lot = !memcmp(id + 15, "10", 2), ser = !memcmp(id + 15, "21", 2);
  if (!lot && !ser) return false;
  bd_buf_t v = BD_BUF_INIT;
  bool ok = bd_url_decode(&v, id + 18, n - 18, false) && v.len <= BD_GS1_VALUE_MAX && v.data &&
            strlen(v.data) == v.len && bd_gs1_value_check(v.data, v.len) == BD_GS1_OK;
  if (ok) snprintf(lot ? c->lot : c->serial, BD_GS1_VALUE_MAX + 1, "%s", v.data);
  bd_buf_free(&v);
  return ok;
}

static void html_row(bd_buf_t *b, const char *k, const char *v) {
  if (!v) return;
  bd_buf_puts(b, "<tr><th>");
  bd_html_escape(b, k);
  bd_buf_puts(b, "</th><td>");
  bd_html_escape(b, v);
  bd_buf_puts(b, "</td></tr>\n");
}

/* A JSON value as display text (strings as they are, others as JSON). */
static char *json_text(json_t *v) {
  if (json_is_string(v)) return bd_strdup(json_string_value(v));
  if (!v || json_is_null(v)) return NULL;
  return json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
}

static void attrs_rows(bd_buf_t *b, json_t *attrs) {
  const char *k;
  json_t *v;
  if (!json_is_object(attrs)) return;
  json_object_foreach(attrs, k, v) {
    char *t = json_text(v);
    html_row(b, k, t ? t : "");
    free(t);
  }
}

static void passport_html(bd_req_t *req, json_t *doc) {
  json_t *product = json_object_get(doc, "product"), *batch = json_object_get(doc, "batch");
  const char *name = json_string_value(json_object_get(product, "name"));
  const char *status = json_string_value(json_object_get(batch, "status"));
  bd_buf_t b = BD_BUF_INIT;
  bd_buf_puts(&b, "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                  "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>");
  bd_html_escape(&b, name);
  bd_buf_puts(&b, " - digital product passport</title>\n<style>body{font-family:system-ui,sans-serif;max-width:40em;"
                  "margin:2em auto;padding:0 1em}th{text-align:left;padding-right:1em}.recall{background:#fdd;"
                  "padding:.5em;border:1px solid #c00}</style></head>\n<body>\n<h1>");
  bd_html_escape(&b, name);
  bd_buf_puts(&b, "</h1>\n<p>Digital product passport (");
  bd_html_escape(&b, json_string_value(json_object_get(doc, "level")));
  bd_buf_puts(&b, " level)</p>\n");
  if (status && !strcmp(status, "recalled"))
    bd_buf_puts(&b, "<p class=\"recall\"><strong>This batch has been recalled.</strong></p>\n");
  bd_buf_puts(&b, "<table>\n");
  html_row(&b, "Brand", json_string_value(json_object_get(json_object_get(doc, "brand"), "name")));
  html_row(&b, "GTIN", json_string_value(json_object_get(doc, "gtin")));
  html_row(&b, "Batch/lot", json_string_value(json_object_get(doc, "lot")));
  html_row(&b, "Serial number", json_string_value(json_object_get(doc, "serial")));
  html_row(&b, "Batch status", status);
  html_row(&b, "Production date", json_string_value(json_object_get(batch, "production_date")));
  html_row(&b, "Facility", json_string_value(json_object_get(batch, "facility_ref")));
  html_row(&b, "Minted", json_string_value(json_object_get(doc, "minted_at")));
  html_row(&b, "GS1 Digital Link", json_string_value(json_object_get(doc, "digital_link")));
  attrs_rows(&b, json_object_get(product, "attributes"));
  attrs_rows(&b, json_object_get(batch, "attributes"));
  bd_buf_puts(&b, "</table>\n</body></html>\n");
  bd_resp_send(req, 200, "text/html; charset=utf-8", b.data, b.len);
  bd_buf_free(&b);
}

static void passport_404(bd_req_t *req, bool json, int status, const char *what) {
  if (json) {
    bd_rpc_error(req, status, status == 400 ? "22023" : "PGRST116", status == 400 ? "Invalid input" : "Not found",
                 what, NULL);
    return;
  }
  bd_buf_t b = BD_BUF_INIT;
  bd_buf_printf(&b, "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>%s</title></head>"
                    "<body><h1>%s</h1><p>",
                status == 400 ? "Invalid passport link" : "Passport not found",
                status == 400 ? "Invalid passport link" : "Passport not found");
  bd_html_escape(&b, what);
  bd_buf_puts(&b, "</p></body></html>\n");
  bd_resp_send(req, status, "text/html; charset=utf-8", b.data, b.len);
  bd_buf_free(&b);
}

static void on_passport(void *ud, const bd_pg_result_t *r) {
  bd_req_t *req = ud;
  passport_ctx_t *c = req->ctx;
  if (r->err) {
    bd_rpc_db_error(req, r);
  } else if (PQgetisnull(r->res, 0, 0)) {
    passport_404(req, c->json, 404, "no passport with this id");
  } else if (c->json) {
    const char *t = PQgetvalue(r->res, 0, 0);
    bd_resp_send(req, 200, "application/json; charset=utf-8", t, strlen(t));
  } else {
    json_t *doc = json_loads(PQgetvalue(r->res, 0, 0), 0, NULL);
    if (doc) passport_html(req, doc);
    else bd_rpc_error(req, 500, "XX000", "Internal error", NULL, NULL);
    json_decref(doc);
  }
  bd_req_release(req);
}

void bd_passport_handle(bd_req_t *req) {
  passport_ctx_t *c = bd_req_calloc(req, sizeof *c);
  req->ctx = c;
  c->json = wants_json(req);
  bd_resp_header(req, "Vary", "Accept");
  if (!parse_passport_id(bd_req_param(req, 0), c)) {
    passport_404(req, c->json, 400, "a passport id is {gtin14}, {gtin14}~10~{lot} or {gtin14}~21~{serial}");
    return;
  }
  const char *p[] = {c->gtin, c->lot[0] ? c->lot : NULL, c->serial[0] ? c->serial : NULL, bd_app.cfg.public_url};
  bd_app_query(req, &S_PASSPORT, 4, p, on_passport, req);
}

/* resolver.c: the public GS1 Digital Link resolver and the passport pages.
 *
 *   GET|HEAD|OPTIONS /01/{gtin}[/22/{cpv}][/10/{lot}][/21/{serial}|/235/{tpx}][/]
 *   GET|HEAD|OPTIONS /{compressed}      (a compressed Digital Link)
 *     400  bad syntax, check digit, character set (details name the part)
 *     404  no such product; or a linkType that the identity has no link of
 *     307  Location: the default link (the passport page) of the identity,
 *          or of the nearest level up the tree that is known (an unknown lot
 *          or serial, a qualifier we do not store such as AI 22: walk-up),
 *          with the request's query passed on (all of it but linkType);
 *          ?linkType=gs1:pip (or its full URI) redirects there too
 *     200  RFC 9264 linkset with Accept: application/linkset+json or
 *          ?linkType=linkset (or all): one context object per known level
 *          from the identity up to the GTIN, each with an itemDescription;
 *          a bot (by User-Agent) asking for the redirect gets a static
 *          OpenGraph page instead, and changes nothing
 *   Every answer carries CORS headers (Access-Control-Allow-Origin: *, Link
 *   and Location exposed), X-Resolved-Identity / X-Resolved-Level (the level
 *   answered: its Digital Link and unit, batch or product) and a Link header
 *   (the default link and the linkset; on errors the resolver description;
 *   for a compressed URI also owl:sameAs, the uncompressed URI).
 *
 * Activation and scans: a unit redirected to its passport by a GET from a
 * client that is not a bot is a scan. The scan of a `minted` unit (a
 * first_scan job's, not yet activated) activates it (pp_unit_activate: one
 * INSERT on a primary key, so exactly one scan wins under concurrency) and
 * is answered X-Activation: activated; every other scan of a first_scan
 * job's unit says X-Activation: already_active. Scans are counted in memory
 * per unit (count, first, last) and written in bulk every
 * BATCHD_RESOLVER_SCAN_FLUSH_MS (pp_unit_scans_add), with no database round
 * trip on the redirect path; the buffer holds BATCHD_RESOLVER_SCAN_BUFFER
 * units, beyond that scans are counted as dropped; a failed write is kept
 * for the next; shutdown writes what is left (the surface's flush hook).
 *
 * Lookups: one statement of index probes (the product by GTIN, the unit by
 * (gtin, serial) and its job by id range, the batch by number). Unit and
 * product identities never change once they exist (no unit, GTIN or serial
 * is ever rewritten or deleted), and an active unit never goes back to
 * minted, so positive answers for products and active units are kept in a
 * direct-mapped in-memory cache of BATCHD_RESOLVER_CACHE slots: a redirect
 * hit needs no query and can never be stale. Lot-only lookups, walk-ups,
 * minted units and unknown identities are not cached (a batch number can
 * be changed with update_product_batch; anything may be minted any moment).
 * Linksets are not answered from the cache: they name the product.
 *
 *   GET /passports/{id}   id = "{gtin14}", "{gtin14}~10~{lot}" or
 *     "{gtin14}~21~{serial}" (values percent-encoded as in a Digital Link):
 *     JSON for Accept: application/json (or ld+json), HTML otherwise.
 *   GET /contexts/linkset.jsonld   the JSON-LD context of the linksets.
 */
#include "app.h"
#include "flusher.h"
#include "gs1.h"
#include "json.h"
#include "log.h"
#include "metrics.h"
#include "products.h"
#include "util.h"

#include <jansson.h>

#include <stdio.h>
#include <stdlib.h>
#include <strings.h>

#define KEY_MAX (BD_GS1_GTIN14_LEN + 2 + 2 * BD_GS1_VALUE_MAX + 1)

enum { LV_PRODUCT = 1, LV_UNIT = 2, LV_BATCH = 3 };

typedef struct {
  char key[KEY_MAX]; /* "gtin|L|lot|S|serial"-like key, "" when empty */
  uint8_t kind;      /* LV_PRODUCT or LV_UNIT (active units only) */
  bool first_scan;   /* a unit of a first_scan job (scans say already_active) */
  int64_t unit_id;   /* pp_units.id of a unit */
} rc_slot_t;

static rc_slot_t *g_cache;  /* direct-mapped: a colliding key replaces the old one */
static size_t g_cache_n;    /* slots */

/* The product, and the unit (with its job's lot and activation) and the
 * batch when asked: index probes only. A unit's lot is its job's (the lot
 * when minted); the batch is looked up by its current number, and a lot
 * minted with _lots (pp_mint_lots) is known as well. */
static bd_pg_stmt_t S_RESOLVE = BD_PG_STMT(
    "SELECT p.name, u.id, u.lot, u.fs, u.act,"
    " $2::text IS NOT NULL AND (EXISTS (SELECT 1 FROM pp_batches b WHERE b.product_id = p.id AND b.batch_number = $2)"
    "   OR EXISTS (SELECT 1 FROM pp_mint_lots l WHERE l.gtin = $1 AND l.lot = $2))"
    " FROM pp_products p LEFT JOIN LATERAL (SELECT x.id, j.lot, j.activation_mode = 'first_scan' AS fs,"
    "   EXISTS (SELECT 1 FROM pp_unit_activations a WHERE a.unit_id = x.id) AS act"
    "   FROM pp_units x CROSS JOIN LATERAL (SELECT m.lot, m.activation_mode FROM pp_mint_jobs m"
    "     WHERE m.first_unit_id <= x.id ORDER BY m.first_unit_id DESC LIMIT 1) j"
    "   WHERE $3::text IS NOT NULL AND x.gtin = $1 AND x.serial = $3) u ON true"
    " WHERE p.gtin = $1");
static bd_pg_stmt_t S_ACTIVATE = BD_PG_STMT("SELECT pp_unit_activate($1::bigint)");
static bd_pg_stmt_t S_SCANS = BD_PG_STMT("SELECT pp_unit_scans_add($1::jsonb)");
static bd_pg_stmt_t S_PASSPORT = BD_PG_STMT("SELECT pp_passport($1, $2, $3, $4)::text");

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

/* --- scan buffer ----------------------------------------------------------------------- */

typedef struct scan {
  struct scan *next;  /* hash chain */
  struct scan *lnext; /* list of all entries (flush order) */
  int64_t unit_id;    /* pp_units.id */
  int64_t first_us;   /* first scan buffered */
  int64_t last_us;    /* last scan buffered */
  uint64_t count;     /* scans buffered */
} scan_t;

#define SCAN_BUCKETS 16384

typedef struct {
  scan_t *buckets[SCAN_BUCKETS]; /* chains */
  scan_t *list;                  /* every entry */
  size_t n;                      /* entries (units) */
  uint64_t nscans;               /* scans */
} scan_map_t;

static scan_map_t *g_scans;          /* accumulating (allocated at init: 128 KiB of buckets) */
static bd_flusher_t g_flusher;       /* writes g_scans every BATCHD_RESOLVER_SCAN_FLUSH_MS */

/* Adds `count` scans of a unit seen from first_us to last_us. */
static void scan_add(int64_t unit_id, int64_t first_us, int64_t last_us, uint64_t count) {
  scan_t **slot = &g_scans->buckets[(uint64_t)unit_id * 0x9E3779B97F4A7C15ull >> 50];
  for (scan_t *e = *slot; e; e = e->next)
    if (e->unit_id == unit_id) {
      e->count += count;
      if (first_us < e->first_us) e->first_us = first_us;
      if (last_us > e->last_us) e->last_us = last_us;
      g_scans->nscans += count;
      return;
    }
  if (g_scans->n >= (size_t)bd_app.cfg.resolver_scan_buffer) {
    bd_metrics_inc("batchd_resolver_scans_dropped_total", "Resolver scans dropped because the buffer was full.",
                   count);
    return;
  }
  scan_t *e = bd_malloc(sizeof *e);
  *e = (scan_t){*slot, g_scans->list, unit_id, first_us, last_us, count};
  *slot = e;
  g_scans->list = e;
  g_scans->n++;
  g_scans->nscans += count;
}

static void scan_record(int64_t unit_id) {
  int64_t now = bd_wall_us();
  scan_add(unit_id, now, now, 1);
}

/* Decimal digits of v (ids, times and counts are never negative). */
static void put_u64(bd_buf_t *b, uint64_t v) {
  char d[20];
  int i = 20;
  do d[--i] = (char)('0' + v % 10);
  while ((v /= 10) && i > 0);
  bd_buf_append(b, d + i, (size_t)(20 - i));
}

/* --- the flusher's view of the buffer: units as [{id,f,l,n}] ---------------------------- */

static uint64_t scans_pending(void *ud) { return g_scans ? g_scans->n : 0; }

static void *scans_take(void *ud, bd_buf_t *b, uint64_t *n) {
  if (b) {
    bd_buf_reserve(b, g_scans->n * 64);
    bd_buf_putc(b, '[');
    for (scan_t *s = g_scans->list; s; s = s->lnext) {
      bd_buf_puts(b, s == g_scans->list ? "{\"id\":" : ",{\"id\":");
      put_u64(b, (uint64_t)s->unit_id);
      bd_buf_append(b, ",\"f\":", 5);
      put_u64(b, (uint64_t)s->first_us);
      bd_buf_append(b, ",\"l\":", 5);
      put_u64(b, (uint64_t)s->last_us);
      bd_buf_append(b, ",\"n\":", 5);
      put_u64(b, s->count);
      bd_buf_putc(b, '}');
    }
    bd_buf_putc(b, ']');
  }
  scan_t *list = g_scans->list;
  *n = g_scans->nscans;
  memset(g_scans, 0, sizeof *g_scans);
  return list;
}

static void scans_release(void *ud, void *batch) {
  for (scan_t *l = batch, *n; l; l = n) {
    n = l->lnext;
    free(l);
  }
}

static void scans_put_back(void *ud, void *batch) {
  for (scan_t *e = batch; e; e = e->lnext) scan_add(e->unit_id, e->first_us, e->last_us, e->count);
  scans_release(ud, batch);
}

static const bd_flusher_ops_t SCAN_OPS = {
    .what = "resolver scans",
    .metric = "batchd_resolver_scans_recorded_total",
    .metric_help = "Resolver scans written to the database.",
    .pending = scans_pending,
    .take = scans_take,
    .put_back = scans_put_back,
    .release = scans_release,
};

void bd_resolver_init(void) {
  g_cache_n = (size_t)bd_app.cfg.resolver_cache;
  free(g_cache);
  g_cache = g_cache_n ? bd_calloc(g_cache_n, sizeof *g_cache) : NULL;
  if (!g_scans) g_scans = bd_calloc(1, sizeof *g_scans);
  bd_flusher_start(&g_flusher, bd_app.loop, &SCAN_OPS, NULL, &S_SCANS, (uint64_t)bd_app.cfg.resolver_scan_flush_ms);
}

void bd_resolver_flush(void (*done)(void *ud), void *ud) {
  if (!g_scans) g_scans = bd_calloc(1, sizeof *g_scans);
  bd_flusher_drain(&g_flusher, done, ud);
}

/* --- requests -------------------------------------------------------------------------- */

/* What the client asked for. */
enum { ASK_DEFAULT, ASK_PIP, ASK_LINKSET, ASK_UNKNOWN };

typedef struct {
  bd_gs1_dl_t dl;       /* the parsed identity */
  char key[KEY_MAX];    /* its cache key */
  int ask;              /* ASK_* */
  bool bot;             /* the User-Agent is a bot's */
  bool scan;            /* a GET by a person: may count a scan and activate */
  char *query;          /* the query passed on (without linkType), "" if none */
  char *same_as;        /* a compressed request's uncompressed URI, or NULL */
  /* the answer being built */
  int level;            /* LV_* answered */
  bool first_scan;      /* the unit's job activates on first scan */
  int64_t unit_id;      /* the unit answered */
  char *name;           /* the product's name (linksets), or NULL */
  bool lot_known;       /* the requested lot is a batch of the product */
  char unit_lot[BD_GS1_VALUE_MAX + 1]; /* the unit's lot */
} resolve_ctx_t;

/* A crawler or link-preview fetcher: it gets the OpenGraph page, never a
 * redirect, and counts no scan. The User-Agent is lower-cased once (its
 * first 512 bytes) and searched with memmem: this runs on every redirect. */
static bool is_bot(bd_str_t ua) {
  static const char *const k_list[] = {"bot", "crawl", "spider", "slurp", "facebookexternalhit", "preview",
                                       "whatsapp", "embedly", "pinterest", "vkshare", "headlesschrome", "lighthouse"};
  char low[512];
  size_t n = ua.len < sizeof low ? ua.len : sizeof low;
  if (n == 0) return false;
  for (size_t i = 0; i < n; i++) {
    unsigned char ch = (unsigned char)ua.p[i];
    low[i] = (char)(ch >= 'A' && ch <= 'Z' ? ch + 32 : ch);
  }
  for (size_t k = 0; k < BD_ARRAY_LEN(k_list); k++)
    if (memmem(low, n, k_list[k], strlen(k_list[k]))) return true;
  return false;
}

/* The link type asked for in ?linkType= (percent-decoded): GS1's short
 * form "gs1:pip" or the full URI in any of GS1's namespaces. */
static int ask_of(const char *v) {
  static const char *const k_ns[] = {"gs1:", "https://gs1.org/voc/", "http://gs1.org/voc/", "https://ref.gs1.org/voc/",
                                     "http://ref.gs1.org/voc/", "https://www.gs1.org/voc/", "http://www.gs1.org/voc/"};
  if (!strcmp(v, "linkset") || !strcmp(v, "all")) return ASK_LINKSET;
  for (size_t i = 0; i < BD_ARRAY_LEN(k_ns); i++) {
    size_t n = strlen(k_ns[i]);
    if (strncmp(v, k_ns[i], n)) continue;
    const char *t = v + n;
    if (!strcmp(t, "linkset")) return ASK_LINKSET;
    if (!strcmp(t, "defaultLink") || !strcmp(t, "defaultLinkMulti")) return ASK_DEFAULT;
    if (!strcmp(t, "pip")) return ASK_PIP;
    return ASK_UNKNOWN;
  }
  return ASK_UNKNOWN;
}

/* The query without its linkType parameters, as it came (still encoded). */
static char *strip_linktype(bd_req_t *req, bd_str_t q, const char *prefix) {
  static char k_empty[1];
  if (q.len == 0 && !(prefix && *prefix)) return k_empty;
  bd_buf_t b = BD_BUF_INIT;
  if (prefix && *prefix) bd_buf_puts(&b, prefix);
  const char *p = q.p, *end = q.p ? q.p + q.len : NULL;
  while (p && p < end) {
    const char *amp = memchr(p, '&', (size_t)(end - p));
    const char *pe = amp ? amp : end;
    const char *eq = memchr(p, '=', (size_t)(pe - p));
    bd_str_t key = {p, (size_t)((eq ? eq : pe) - p)};
    if (pe > p && !bd_str_eq(key, "linkType")) {
      if (b.len) bd_buf_putc(&b, '&');
      bd_buf_append(&b, p, (size_t)(pe - p));
    }
    p = amp ? amp + 1 : end;
  }
  char *out = bd_req_calloc(req, b.len + 1);
  if (b.len) memcpy(out, b.data, b.len);
  bd_buf_free(&b);
  return out;
}

static void cors(bd_req_t *req) {
  bd_resp_header(req, "Access-Control-Allow-Origin", "*");
  bd_resp_header(req, "Access-Control-Expose-Headers", "Link, Location, X-Resolved-Identity, X-Resolved-Level, X-Activation");
}

static void link_describedby(bd_req_t *req) {
  bd_resp_headerf(req, "Link", "<%s/.well-known/gs1resolver>; rel=\"describedby\"; type=\"application/json\"",
                  bd_app.cfg.public_url);
}

static void not_found(bd_req_t *req, const char *what) {
  link_describedby(req);
  bd_rpc_error(req, 404, "PGRST116", "Not found", what, NULL);
}

/* Appends a value percent-encoded as in a Digital Link (gs1.h). */
static void put_value(bd_buf_t *out, const char *v) {
  static const char k_hex[] = "0123456789ABCDEF";
  const char *run = v;
  for (const unsigned char *p = (const unsigned char *)v; *p; p++) {
    if (!bd_gs1_dl_needs_escape(*p)) continue;
    bd_buf_append(out, run, (size_t)((const char *)p - run));
    char esc[3] = {'%', k_hex[*p >> 4], k_hex[*p & 15]};
    bd_buf_append(out, esc, 3);
    run = (const char *)p + 1;
  }
  bd_buf_puts(out, run);
}

/* A level's Digital Link (no query): the product, its batch or its unit.
 * The identity was validated by the parser: written as it is (the redirect
 * path: no printf, no second validation). */
static void level_uri(bd_buf_t *out, const resolve_ctx_t *c, int level) {
  const bd_gs1_dl_t *dl = &c->dl;
  bd_buf_puts(out, bd_app.cfg.public_url);
  bd_buf_append(out, "/01/", 4);
  bd_buf_append(out, dl->gtin, BD_GS1_GTIN14_LEN);
  if (level == LV_BATCH || (level == LV_UNIT && dl->has_lot)) {
    bd_buf_append(out, "/10/", 4);
    put_value(out, dl->lot);
  }
  if (level == LV_UNIT) {
    bd_buf_append(out, "/21/", 4);
    put_value(out, dl->serial);
  }
}

/* The passport page of a level (see pp_passport_id). */
static void passport_url(bd_buf_t *out, const resolve_ctx_t *c, int level) {
  bd_buf_puts(out, bd_app.cfg.public_url);
  bd_buf_append(out, "/passports/", 11);
  bd_buf_append(out, c->dl.gtin, BD_GS1_GTIN14_LEN);
  const char *v = level == LV_UNIT ? c->dl.serial : level == LV_BATCH ? c->dl.lot : NULL;
  if (!v) return;
  bd_buf_append(out, level == LV_UNIT ? "~21~" : "~10~", 4);
  put_value(out, v);
}

static const char *level_name(int level) {
  return level == LV_UNIT ? "unit" : level == LV_BATCH ? "batch" : "product";
}

/* One context object of the linkset: a level, its description and links.
 * The default link has a title and nothing else (GS1-Conformant Resolver:
 * no optional attributes on it), and is also described by gs1:pip. */
static void linkset_level(bd_jw_t *w, const resolve_ctx_t *c, int level) {
  bd_buf_t a = BD_BUF_INIT, pp = BD_BUF_INIT, d = BD_BUF_INIT;
  level_uri(&a, c, level);
  passport_url(&pp, c, level);
  bd_buf_puts(&d, c->name ? c->name : "Product");
  if (level == LV_BATCH || (level == LV_UNIT && c->unit_lot[0])) bd_buf_printf(&d, ", lot %s", level == LV_UNIT ? c->unit_lot : c->dl.lot);
  if (level == LV_UNIT) bd_buf_printf(&d, ", serial %s", c->dl.serial);
  bd_jw_obj(w);
  bd_jw_kstr(w, "anchor", a.data);
  bd_jw_kstr(w, "itemDescription", d.data);
  bd_jw_key(w, "https://gs1.org/voc/defaultLink");
  bd_jw_arr(w);
  bd_jw_obj(w);
  bd_jw_kstr(w, "href", pp.data);
  bd_jw_kstr(w, "title", "Digital product passport");
  bd_jw_obj_end(w);
  bd_jw_arr_end(w);
  bd_jw_key(w, "https://gs1.org/voc/pip");
  bd_jw_arr(w);
  bd_jw_obj(w);
  bd_jw_kstr(w, "href", pp.data);
  bd_jw_kstr(w, "title", "Digital product passport (web page)");
  bd_jw_kstr(w, "type", "text/html");
  bd_jw_obj_end(w);
  bd_jw_obj(w);
  bd_jw_kstr(w, "href", pp.data);
  bd_jw_kstr(w, "title", "Digital product passport (data)");
  bd_jw_kstr(w, "type", "application/json");
  bd_jw_obj_end(w);
  bd_jw_arr_end(w);
  bd_jw_obj_end(w);
  bd_buf_free(&a);
  bd_buf_free(&pp);
  bd_buf_free(&d);
}

static void answer_linkset(bd_req_t *req, const resolve_ctx_t *c) {
  bd_buf_t b = BD_BUF_INIT;
  bd_jw_t w;
  bd_jw_init(&w, &b);
  bd_jw_obj(&w);
  bd_jw_key(&w, "linkset");
  bd_jw_arr(&w);
  /* every known level from the one answered up to the GTIN */
  linkset_level(&w, c, c->level);
  if (c->level == LV_UNIT && c->dl.has_lot && c->lot_known) linkset_level(&w, c, LV_BATCH);
  if (c->level != LV_PRODUCT) linkset_level(&w, c, LV_PRODUCT);
  bd_jw_arr_end(&w);
  bd_jw_obj_end(&w);
  bd_resp_send(req, 200, "application/linkset+json", b.data, b.len);
  bd_buf_free(&b);
}

/* The page a crawler or link preview gets instead of the redirect. */
static void answer_bot(bd_req_t *req, const char *anchor, const char *passport) {
  bd_buf_t b = BD_BUF_INIT;
  bd_buf_puts(&b, "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                  "<title>Digital product passport</title>\n"
                  "<meta property=\"og:type\" content=\"website\">\n"
                  "<meta property=\"og:title\" content=\"Digital product passport\">\n"
                  "<meta property=\"og:description\" content=\"Scan the code on the product to open its digital "
                  "product passport.\">\n<meta property=\"og:url\" content=\"");
  bd_html_escape(&b, anchor);
  bd_buf_puts(&b, "\">\n<meta name=\"robots\" content=\"noindex\">\n</head><body>\n<h1>Digital product passport</h1>\n"
                  "<p><a href=\"");
  bd_html_escape(&b, passport);
  bd_buf_puts(&b, "\">Open the passport</a></p>\n</body></html>\n");
  bd_resp_send(req, 200, "text/html; charset=utf-8", b.data, b.len);
  bd_buf_free(&b);
}

/* Answers the level c->level of the request (activation already decided;
 * activation: NULL, "activated" or "already_active"). */
static void answer(bd_req_t *req, resolve_ctx_t *c, const char *activation) {
  bd_buf_t anchor = BD_BUF_INIT, pp = BD_BUF_INIT, loc = BD_BUF_INIT;
  level_uri(&anchor, c, c->level);
  passport_url(&pp, c, c->level);
  bd_resp_header(req, "X-Resolved-Identity", anchor.data);
  bd_resp_header(req, "X-Resolved-Level", level_name(c->level));
  if (activation) bd_resp_header(req, "X-Activation", activation);
  /* one Link header: the default link, the linkset, the uncompressed URI,
   * and with a linkset its JSON-LD context */
  bd_buf_t link = BD_BUF_INIT;
  bd_buf_reserve(&link, 2 * anchor.len + pp.len + 160);
  bd_buf_putc(&link, '<');
  bd_buf_append(&link, pp.data, pp.len);
  bd_buf_puts(&link, ">; rel=\"https://gs1.org/voc/defaultLink\"; title=\"Digital product passport\", <");
  bd_buf_append(&link, anchor.data, anchor.len);
  bd_buf_puts(&link, "?linkType=linkset>; rel=\"linkset\"; type=\"application/linkset+json\"");
  if (c->same_as) bd_buf_printf(&link, ", <%s>; rel=\"owl:sameAs\"", c->same_as);
  if (c->ask == ASK_LINKSET)
    bd_buf_printf(&link, ", <%s/contexts/linkset.jsonld>; rel=\"http://www.w3.org/ns/json-ld#context\"; "
                         "type=\"application/ld+json\"",
                  bd_app.cfg.public_url);
  bd_resp_header(req, "Link", link.data);
  bd_buf_free(&link);
  bd_resp_header(req, "Vary", "Accept, User-Agent");
  if (c->ask == ASK_LINKSET) {
    answer_linkset(req, c);
  } else if (c->bot) {
    answer_bot(req, anchor.data, pp.data);
  } else {
    if (c->query[0]) {
      bd_buf_append(&loc, pp.data, pp.len);
      bd_buf_putc(&loc, '?');
      bd_buf_puts(&loc, c->query);
    }
    bd_resp_header(req, "Location", c->query[0] ? loc.data : pp.data);
    bd_resp_header(req, "Cache-Control", "no-store");
    bd_resp_send(req, 307, "text/plain; charset=utf-8", "", 0);
  }
  bd_buf_free(&anchor);
  bd_buf_free(&pp);
  bd_buf_free(&loc);
}

static void cache_put(const resolve_ctx_t *c, int kind) {
  rc_slot_t *s = cache_slot(c->key);
  if (!s) return;
  memcpy(s->key, c->key, sizeof s->key);
  s->kind = (uint8_t)kind;
  s->first_scan = c->first_scan;
  s->unit_id = c->unit_id;
}

static void on_activated(void *ud, const bd_pg_result_t *r) {
  bd_req_t *req = ud;
  resolve_ctx_t *c = req->ctx;
  if (r->err) {
    link_describedby(req);
    bd_rpc_db_error(req, r);
  } else {
    const char *v = PQgetisnull(r->res, 0, 0) ? "already_active" : PQgetvalue(r->res, 0, 0);
    cache_put(c, LV_UNIT); /* active from now on, whoever won */
    scan_record(c->unit_id);
    answer(req, c, !strcmp(v, "activated") ? "activated" : "already_active");
  }
  bd_req_release(req);
}

static void on_resolved(void *ud, const bd_pg_result_t *r) {
  bd_req_t *req = ud;
  resolve_ctx_t *c = req->ctx;
  const bd_gs1_dl_t *dl = &c->dl;
  if (r->err) {
    link_describedby(req);
    bd_rpc_db_error(req, r);
    bd_req_release(req);
    return;
  }
  if (PQntuples(r->res) == 0) {
    not_found(req, "no product with this GTIN");
    bd_req_release(req);
    return;
  }
  PGresult *res = r->res;
  c->name = bd_req_calloc(req, (size_t)PQgetlength(res, 0, 0) + 1);
  memcpy(c->name, PQgetvalue(res, 0, 0), (size_t)PQgetlength(res, 0, 0));
  c->lot_known = PQgetvalue(res, 0, 5)[0] == 't';
  /* the unit, if it is the one named (with the lot it was minted in, when
   * the path names one) */
  bool unit = !PQgetisnull(res, 0, 1) && (!dl->has_lot || !strcmp(PQgetvalue(res, 0, 2), dl->lot));
  bool minted = false;
  if (unit) {
    c->unit_id = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
    snprintf(c->unit_lot, sizeof c->unit_lot, "%s", PQgetvalue(res, 0, 2));
    c->first_scan = PQgetvalue(res, 0, 3)[0] == 't';
    minted = c->first_scan && PQgetvalue(res, 0, 4)[0] != 't';
    c->level = LV_UNIT;
  } else if (dl->has_lot && c->lot_known) {
    c->level = LV_BATCH;
  } else {
    c->level = LV_PRODUCT;
  }
  bool exact = !dl->has_cpv && !dl->has_tpx &&
               (c->level == LV_UNIT ? true : c->level == LV_PRODUCT ? !dl->has_lot && !dl->has_serial : false);
  bool redirect = c->ask != ASK_LINKSET && !c->bot;
  if (c->level == LV_UNIT && minted) {
    if (redirect && c->scan) {
      const char *idp[1];
      char idbuf[24];
      snprintf(idbuf, sizeof idbuf, "%lld", (long long)c->unit_id);
      idp[0] = idbuf;
      if (bd_pg_query(bd_app.pg, &S_ACTIVATE, 1, idp, on_activated, req) != 0) {
        link_describedby(req);
        bd_app_unavailable(req);
        bd_req_release(req);
      }
      return; /* the hold goes on to on_activated */
    }
    answer(req, c, NULL); /* a look that changes nothing */
  } else {
    if (exact) cache_put(c, c->level == LV_UNIT ? LV_UNIT : LV_PRODUCT);
    bool counted = c->level == LV_UNIT && redirect && c->scan;
    if (counted) scan_record(c->unit_id);
    answer(req, c, c->level == LV_UNIT && c->first_scan && redirect ? "already_active" : NULL);
  }
  bd_req_release(req);
}

static void resolve(bd_req_t *req, resolve_ctx_t *c) {
  if (c->ask == ASK_UNKNOWN) {
    bd_buf_t v = BD_BUF_INIT;
    bd_buf_t msg = BD_BUF_INIT;
    if (bd_query_get(req->query, "linkType", &v) && v.data) bd_buf_printf(&msg, "no link of type %s", v.data);
    not_found(req, msg.data ? msg.data : "no link of this type");
    bd_buf_free(&v);
    bd_buf_free(&msg);
    return;
  }
  make_key(&c->dl, c->key);
  bool exactable = !c->dl.has_cpv && !c->dl.has_tpx && (c->dl.has_serial || !c->dl.has_lot);
  rc_slot_t *s = exactable && c->ask != ASK_LINKSET ? cache_slot(c->key) : NULL;
  if (s && s->kind && !strcmp(s->key, c->key)) {
    c->level = s->kind;
    c->first_scan = s->first_scan;
    c->unit_id = s->unit_id;
    bool redirect = !c->bot;
    if (c->level == LV_UNIT && redirect && c->scan) scan_record(c->unit_id);
    answer(req, c, c->level == LV_UNIT && c->first_scan && redirect ? "already_active" : NULL);
    return;
  }
  /* a qualifier we do not store: the levels below it are unknown */
  bool lower = !c->dl.has_cpv;
  const char *p[] = {c->dl.gtin, lower && c->dl.has_lot ? c->dl.lot : NULL,
                     lower && !c->dl.has_tpx && c->dl.has_serial ? c->dl.serial : NULL};
  bd_req_hold(req);
  if (bd_pg_query(bd_app.pg, &S_RESOLVE, 3, p, on_resolved, req) != 0) {
    link_describedby(req);
    bd_app_unavailable(req);
    bd_req_release(req);
  }
}

/* Fills the request context from what it asks (linkType, Accept) and who
 * asks (User-Agent, method). */
static void ask(bd_req_t *req, resolve_ctx_t *c) {
  bd_str_t acc = bd_req_header(req, "Accept");
  c->ask = ASK_DEFAULT;
  bd_buf_t v = BD_BUF_INIT;
  if (bd_query_get(req->query, "linkType", &v) && v.data) c->ask = ask_of(v.data);
  else if (acc.p && memmem(acc.p, acc.len, "application/linkset+json", 24)) c->ask = ASK_LINKSET;
  bd_buf_free(&v);
  c->bot = is_bot(bd_req_header(req, "User-Agent"));
  c->scan = !req->head && !c->bot;
}

static void bad_request(bd_req_t *req, const char *details) {
  link_describedby(req);
  bd_rpc_error(req, 400, "22023", "Invalid input", details,
               "GS1 Digital Link: /01/{gtin}[/22/{cpv}][/10/{lot}][/21/{serial}|/235/{tpx}]");
}

/* OPTIONS: what a CORS preflight and the GS1-Conformant Resolver criteria
 * ask (GET, HEAD and OPTIONS on every resolver path). */
static void answer_options(bd_req_t *req) {
  bd_resp_header(req, "Allow", "GET, HEAD, OPTIONS");
  bd_resp_header(req, "Access-Control-Allow-Methods", "GET, HEAD, OPTIONS");
  bd_resp_header(req, "Access-Control-Allow-Headers", "Accept, Accept-Language, Content-Type, If-None-Match");
  bd_resp_header(req, "Access-Control-Max-Age", "86400");
  bd_resp_send(req, 200, "text/plain; charset=utf-8", "", 0);
}

void bd_resolver_handle(bd_req_t *req) {
  resolve_ctx_t *c = bd_req_calloc(req, sizeof *c);
  req->ctx = c;
  cors(req);
  if (req->method == HTTP_OPTIONS) {
    answer_options(req);
    return;
  }
  if (bd_gs1_dl_parse(req->path, req->query, &c->dl) != BD_GS1_OK) {
    bad_request(req, c->dl.errmsg);
    return;
  }
  ask(req, c);
  c->query = strip_linktype(req, req->query, NULL);
  resolve(req, c);
}

/* /{segment}: a compressed Digital Link, or nothing this server has. */
void bd_resolver_compressed(bd_req_t *req) {
  bd_str_t seg = {req->path.p + 1, req->path.len - 1};
  bd_buf_t path = BD_BUF_INIT, q = BD_BUF_INIT;
  int rc = bd_gs1_dl_decompress(seg.p, seg.len, &path, &q);
  if (rc == BD_GS1_E_DLC_SYNTAX || rc == BD_GS1_E_DLC_AI) {
    /* as the core answers a path no route has */
    bd_buf_free(&path);
    bd_buf_free(&q);
    bd_resp_error(req, 404, "not_found", "No such endpoint", NULL);
    return;
  }
  resolve_ctx_t *c = bd_req_calloc(req, sizeof *c);
  req->ctx = c;
  cors(req);
  if (rc != BD_GS1_OK) {
    bd_buf_free(&path);
    bd_buf_free(&q);
    not_found(req, bd_gs1_strerror(rc));
    return;
  }
  if (req->method == HTTP_OPTIONS) {
    bd_buf_free(&path);
    bd_buf_free(&q);
    answer_options(req);
    return;
  }
  /* the query: the compressed data attributes, then the request's own */
  c->query = strip_linktype(req, req->query, q.data);
  char *p = bd_req_calloc(req, path.len + 1);
  memcpy(p, path.data, path.len);
  bd_buf_t same = BD_BUF_INIT;
  bd_buf_printf(&same, "%s%s%s%s", bd_app.cfg.public_url, p, q.len ? "?" : "", q.len ? q.data : "");
  c->same_as = bd_req_calloc(req, same.len + 1);
  memcpy(c->same_as, same.data, same.len);
  bd_buf_free(&same);
  bd_buf_free(&path);
  bd_buf_free(&q);
  if (bd_gs1_dl_parse((bd_str_t){p, strlen(p)}, (bd_str_t){c->query, strlen(c->query)}, &c->dl) != BD_GS1_OK) {
    bad_request(req, c->dl.errmsg);
    return;
  }
  ask(req, c);
  resolve(req, c);
}

void bd_resolver_context(bd_req_t *req) {
  static const char k_ctx[] =
      "{\"@context\":{\"@vocab\":\"http://www.iana.org/assignments/relation/\",\"anchor\":\"@id\",\"href\":\"@id\","
      "\"linkset\":\"@graph\",\"gs1\":\"https://gs1.org/voc/\",\"schema\":\"http://schema.org/\","
      "\"dcterms\":\"http://purl.org/dc/terms/\",\"title\":{\"@id\":\"http://purl.org/dc/terms/title\"},"
      "\"type\":{\"@id\":\"http://purl.org/dc/terms/format\"},"
      "\"hreflang\":{\"@id\":\"http://purl.org/dc/terms/language\",\"@container\":\"@set\"},"
      "\"itemDescription\":{\"@id\":\"http://www.w3.org/2000/01/rdf-schema#comment\"}}}\n";
  cors(req);
  bd_resp_header(req, "Cache-Control", "public, max-age=86400");
  bd_resp_send(req, 200, "application/ld+json", k_ctx, sizeof k_ctx - 1);
}

void bd_resolver_wellknown(bd_req_t *req) {
  const char *base = bd_app.cfg.public_url;
  bd_buf_t b = BD_BUF_INIT, ctx = BD_BUF_INIT;
  bd_jw_t w;
  bd_jw_init(&w, &b);
  bd_jw_obj(&w);
  bd_jw_kstr(&w, "name", "batchd GS1 Digital Link resolver");
  bd_jw_kstr(&w, "resolverRoot", base);
  bd_jw_key(&w, "supportedPrimaryKeys");
  bd_jw_arr(&w);
  bd_jw_str(&w, "01");
  bd_jw_arr_end(&w);
  bd_jw_key(&w, "supportedLinkType");
  bd_jw_arr(&w);
  bd_jw_obj(&w);
  bd_jw_kstr(&w, "namespace", "https://gs1.org/voc/");
  bd_jw_kstr(&w, "prefix", "gs1:");
  bd_jw_obj_end(&w);
  bd_jw_arr_end(&w);
  bd_jw_key(&w, "supportedQualifiers");
  bd_jw_arr(&w);
  bd_jw_str(&w, "22");
  bd_jw_str(&w, "10");
  bd_jw_str(&w, "21");
  bd_jw_str(&w, "235");
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
  bd_jw_kbool(&w, "linkTypeDefaultCanBeAll", false);
  bd_jw_kstr(&w, "linksetMediaType", "application/linkset+json");
  bd_buf_printf(&ctx, "%s/contexts/linkset.jsonld", base);
  bd_jw_kstr(&w, "jsonLdContextLocation", ctx.data);
  bd_jw_kbool(&w, "supportsCompressedURIs", true);
  bd_jw_kstr(&w, "defaultRedirectStatus", "307");
  bd_jw_obj_end(&w);
  cors(req);
  link_describedby(req);
  bd_resp_send(req, 200, "application/json; charset=utf-8", b.data, b.len);
  bd_buf_free(&b);
  bd_buf_free(&ctx);
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
    if (!strcmp(k, "translations")) continue; /* the other languages, not a property */
    char *t = json_text(v);
    html_row(b, k, t ? t : "");
    free(t);
  }
}

/* --- languages ---------------------------------------------------------------------- */

/* A product may carry its passport in other languages as attributes
 * "translations": {"fr": {"name": "...", "attributes": {...}}, ...}. The
 * language is chosen from Accept-Language (RFC 9110 12.5.4): the highest q
 * whose tag is a translation's, equal or as a prefix either way ("fr-CH"
 * takes "fr", "fr" takes "fr-CH"); q=0 and "*" choose nothing; no match
 * keeps the product's own text. Returns the translation (borrowed) and its
 * key, or NULL. */
static json_t *pick_translation(bd_str_t al, json_t *product, const char **key_out) {
  json_t *tr = json_object_get(json_object_get(product, "attributes"), "translations");
  if (!json_is_object(tr) || !al.len) return NULL;
  json_t *best = NULL;
  double best_q = 0;
  bool best_exact = false;
  const char *p = al.p, *end = al.p + al.len;
  while (p < end) {
    const char *comma = memchr(p, ',', (size_t)(end - p));
    const char *ie = comma ? comma : end;
    while (p < ie && (*p == ' ' || *p == '\t')) p++;
    const char *te = p;
    while (te < ie && *te != ';' && *te != ' ') te++;
    double q = 1;
    const char *qp = memmem(te, (size_t)(ie - te), "q=", 2);
    if (qp) q = strtod(qp + 2, NULL);
    size_t tl = (size_t)(te - p);
    if (tl && tl < 36 && q > 0 && (q > best_q || (q == best_q && !best_exact))) {
      const char *k;
      json_t *v;
      json_object_foreach(tr, k, v) {
        size_t kl = strlen(k);
        size_t n = kl < tl ? kl : tl;
        bool match = json_is_object(v) && !strncasecmp(k, p, n) &&
                     (kl == tl || (kl > tl && k[tl] == '-') || (tl > kl && p[kl] == '-'));
        /* an exact tag beats a prefix of the same q */
        if (match && (!best || q > best_q || (q == best_q && kl == tl && !best_exact))) {
          best = v;
          best_q = q;
          best_exact = kl == tl;
          *key_out = k;
        }
      }
    }
    p = comma ? comma + 1 : end;
  }
  return best;
}

/* Puts the translation into the passport: name, attributes (merged over
 * the product's), "language". Sets Content-Language. */
static void apply_language(bd_req_t *req, json_t *doc) {
  json_t *product = json_object_get(doc, "product");
  const char *key = NULL;
  json_t *tr = pick_translation(bd_req_header(req, "Accept-Language"), product, &key);
  if (!tr) return;
  json_t *name = json_object_get(tr, "name");
  if (json_is_string(name)) json_object_set(product, "name", name);
  json_t *ta = json_object_get(tr, "attributes"), *pa = json_object_get(product, "attributes");
  if (json_is_object(ta) && json_is_object(pa)) {
    json_t *merged = json_deep_copy(pa);
    json_object_update(merged, ta);
    json_object_set_new(product, "attributes", merged);
  }
  json_object_set_new(doc, "language", json_string(key));
  bd_resp_header(req, "Content-Language", key);
}

static void passport_html(bd_req_t *req, json_t *doc) {
  json_t *product = json_object_get(doc, "product"), *batch = json_object_get(doc, "batch");
  const char *name = json_string_value(json_object_get(product, "name"));
  const char *status = json_string_value(json_object_get(batch, "status"));
  bd_buf_t b = BD_BUF_INIT;
  const char *lang = json_string_value(json_object_get(doc, "language"));
  bd_buf_puts(&b, "<!doctype html>\n<html lang=\"");
  bd_html_escape(&b, lang ? lang : "en");
  bd_buf_puts(&b, "\"><head><meta charset=\"utf-8\">"
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
  } else if (c->json && !bd_req_header(req, "Accept-Language").len) {
    const char *t = PQgetvalue(r->res, 0, 0);
    bd_resp_send(req, 200, "application/json; charset=utf-8", t, strlen(t));
  } else {
    json_t *doc = json_loads(PQgetvalue(r->res, 0, 0), 0, NULL);
    if (doc) apply_language(req, doc);
    if (doc && c->json) {
      char *t = json_dumps(doc, JSON_COMPACT);
      bd_resp_send(req, 200, "application/json; charset=utf-8", t, strlen(t));
      free(t);
    } else if (doc) {
      passport_html(req, doc);
    } else {
      bd_rpc_error(req, 500, "XX000", "Internal error", NULL, NULL);
    }
    json_decref(doc);
  }
  bd_req_release(req);
}

void bd_passport_handle(bd_req_t *req) {
  passport_ctx_t *c = bd_req_calloc(req, sizeof *c);
  req->ctx = c;
  c->json = wants_json(req);
  bd_resp_header(req, "Vary", "Accept, Accept-Language");
  if (!parse_passport_id(bd_req_param(req, 0), c)) {
    passport_404(req, c->json, 400, "a passport id is {gtin14}, {gtin14}~10~{lot} or {gtin14}~21~{serial}");
    return;
  }
  const char *p[] = {c->gtin, c->lot[0] ? c->lot : NULL, c->serial[0] ? c->serial : NULL, bd_app.cfg.public_url};
  bd_app_query(req, &S_PASSPORT, 4, p, on_passport, req);
}

/* qr_guard.c: the scannability guard of /v1 intake (qr_guard.h).
 *
 * One work item per request: it finds the longest payload among the items
 * (what the symbol of each would encode: a dynamic code's short URL, a
 * static code's content; invalid items are skipped, they fail on their
 * own), looks the verdict up in a small cache keyed by the SHA-256 of the
 * normalised design and the symbol's version, and on a miss renders and
 * decodes (bd_qr_scan_check). The cache is shared by the pool threads
 * under a mutex; its entries are a few hundred bytes, GUARD_CACHE of them.
 * Loop thread, except guard_work (a pool thread).
 */
#include "qr_guard.h"

#include "app.h"
#include "qr_api.h"
#include "qr_scan.h"
#include "surface.h"
#include "util.h"
#include "work.h"

#include <stdio.h>
#include <stdlib.h>

#define GUARD_CACHE 256 /* cached verdicts (direct-mapped) */

typedef struct {
  char key[65];    /* SHA-256 hex of design text + version; "" = empty */
  int verdict;     /* BD_QR_SCAN_OK / BD_QR_SCAN_FAILS */
  const char *param; /* static string */
  char err[480];   /* the refusal's message */
} verdict_t;

static verdict_t g_cache[GUARD_CACHE];
static uv_mutex_t g_cache_mu;
static bool g_cache_init;

typedef struct {
  bd_work_t w;              /* work item */
  bd_req_t *req;            /* held request */
  const json_t *items;      /* borrowed from the held request's body (read only) */
  bd_qr_design_t *design;   /* the worker's own copy */
  char *short_url_prefix;   /* public_url + "/s/" (a dynamic code's payload) */
  bd_handler_fn next;       /* continuation */
  int verdict;              /* BD_QR_SCAN_* */
  const char *param;        /* culprit (static) */
  char err[480];            /* refusal */
} guard_t;

/* The payload one item's symbol would encode, appended to out; false when
 * the item is invalid (it fails on its own later). */
static bool item_payload(const json_t *it, const guard_t *g, bd_buf_t *out) {
  const json_t *target = json_is_object(it) ? json_object_get(it, "target") : NULL;
  if (!json_is_object(target)) return false;
  bd_qr_type_t type;
  char err[256];
  const char *param;
  if (bd_qr_payload(target, &type, out, err, sizeof err, &param) != 0) return false;
  if (type == BD_QR_TYPE_URL) { /* dynamic: the symbol holds our short URL */
    bd_buf_reset(out);
    bd_buf_puts(out, g->short_url_prefix);
    bd_buf_puts(out, "Ab3dE5fG"); /* the length of every short code */
  }
  return bd_qr_fits(out->data, g->design);
}

static void guard_work(bd_work_t *w) {
  guard_t *g = w->data;
  bd_buf_t cur = BD_BUF_INIT, best = BD_BUF_INIT;
  if (json_is_array(g->items)) {
    size_t i;
    const json_t *it;
    json_array_foreach(g->items, i, it) {
      bd_buf_reset(&cur);
      if (item_payload(it, g, &cur) && cur.len > best.len) {
        bd_buf_t t = best;
        best = cur;
        cur = t;
      }
    }
  } else if (item_payload(g->items, g, &cur)) {
    best = cur;
    cur = (bd_buf_t)BD_BUF_INIT;
  }
  bd_buf_free(&cur);
  g->verdict = BD_QR_SCAN_OK;
  int version = best.len ? bd_qr_symbol_version(best.data, bd_qr_design_ec(g->design)) : 0;
  if (version == 0) { /* no valid item: nothing to guard */
    bd_buf_free(&best);
    return;
  }
  json_t *dj = bd_qr_design_to_json(g->design);
  bd_buf_t kt = BD_BUF_INIT;
  qr_json_append(&kt, dj, JSON_COMPACT | JSON_SORT_KEYS);
  json_decref(dj);
  bd_buf_printf(&kt, "|v%d", version);
  char key[65];
  bd_sha256_hex(key, kt.data, kt.len);
  bd_buf_free(&kt);
  verdict_t *e = &g_cache[strtoul(key + 56, NULL, 16) % GUARD_CACHE];
  uv_mutex_lock(&g_cache_mu);
  bool hit = !strcmp(e->key, key);
  if (hit) {
    g->verdict = e->verdict;
    g->param = e->param;
    snprintf(g->err, sizeof g->err, "%s", e->err);
  }
  uv_mutex_unlock(&g_cache_mu);
  if (hit) {
    bd_buf_free(&best);
    return;
  }
  g->verdict = bd_qr_scan_check(best.data, g->design, g->err, sizeof g->err, &g->param);
  bd_buf_free(&best);
  if (g->verdict == BD_QR_SCAN_ERROR) return; /* not a verdict: not cached */
  uv_mutex_lock(&g_cache_mu);
  memcpy(e->key, key, sizeof key);
  e->verdict = g->verdict;
  e->param = g->param;
  snprintf(e->err, sizeof e->err, "%s", g->verdict == BD_QR_SCAN_FAILS ? g->err : "");
  uv_mutex_unlock(&g_cache_mu);
}

static void guard_after(bd_work_t *w, int status) {
  guard_t *g = w->data;
  bd_req_t *req = g->req;
  if (status != 0) {
    bd_app_unavailable(req);
  } else if (g->verdict == BD_QR_SCAN_FAILS) {
    qr_error(req, 400, "invalid_request", g->err, g->param);
  } else {
    /* OK, or the test could not run (a payload that does not fit, which
     * fails as an item): the design is not to blame */
    g->next(req);
  }
  bd_qr_design_free(g->design);
  free(g->short_url_prefix);
  free(g);
  bd_req_release(req);
}

void qr_scan_guard(bd_req_t *req, const json_t *items, bd_handler_fn next) {
  qr_ctx_t *c = req->ctx;
  if (!bd_qr_design_needs_scan(c->design)) {
    next(req);
    return;
  }
  if (bd_testhooks_enabled()) {
    bd_str_t skip = bd_req_header(req, "X-Test-Skip-Scan-Guard");
    if (skip.len == 1 && skip.p[0] == '1') {
      next(req);
      return;
    }
  }
  if (!g_cache_init) {
    if (uv_mutex_init(&g_cache_mu) != 0) abort();
    g_cache_init = true;
  }
  guard_t *g = bd_calloc(1, sizeof *g);
  g->req = req;
  g->items = items;
  g->design = bd_qr_design_copy(c->design);
  size_t n = strlen(bd_app.cfg.public_url);
  g->short_url_prefix = bd_malloc(n + 4);
  memcpy(g->short_url_prefix, bd_app.cfg.public_url, n);
  memcpy(g->short_url_prefix + n, "/s/", 4);
  g->next = next;
  g->w.work = guard_work;
  g->w.after = guard_after;
  g->w.data = g;
  bd_req_hold(req);
  bd_work_submit(&g->w);
}

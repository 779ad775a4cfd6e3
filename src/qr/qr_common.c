/* qr_common.c: what the /v1 handlers of qr_batches.c, qr_codes.c and
 * qr_tokens.c share (QRKit-compatible): the request context, API keys
 * (cache, lookup, scopes, mode, last use), JSON bodies, rows sent as they
 * are, remote logos, design or template_id, list pages, and validated items
 * (qr_item_t) with their code rows. It calls nothing in the files above it.
 *
 * Request path of an authenticated call:
 *   qr_entry_scope → Bearer token → key cache (or one indexed query) → secret
 *   checked in constant time → live/test mode and scope → rate limit →
 *   Idempotency-Key (POST) → handler.
 * Most responses are built by SQL functions (qr_code_json, qr_batch_json) so
 * a read is one round trip whose text is sent as it is (qr_send_json_row,
 * qr_on_list); GET /v1/batches/{id} builds its JSON in C (qr_batches.c).
 *
 * The key cache is kept right by NOTIFY, as the redirect cache of
 * qr_codes.c is: every process LISTENs on bd_credentials (012_credentials:
 * "qr:<key id>" when a key's revocation, expiry, scopes, secret or mode
 * change or it is deleted, "tenant:<id>" when a tenant is disabled or
 * enabled). "qr:<id>" drops that entry, "tenant:" the whole cache (entries
 * do not record their tenant: disabling one is rare), and so does a
 * reconnect of the listening connection (notifications may have been
 * missed). The cache is consulted and filled only while the LISTEN is
 * confirmed (bd_pg_listening); a lookup during which any credential
 * notification arrived (or the listener reconnected) is answered but not
 * kept, since its row may predate the change. So a revoked key stops
 * working in every process within the notification's latency. An entry
 * also ends on its own when the key does: the lookup returns the time left
 * until min(revoked_at, expires_at) (revoked_at in the future: a rotated
 * key's grace period), measured by the database's clock and counted here
 * on the monotonic clock from when the lookup was sent (so a skewed clock
 * between the two hosts cannot stretch it), and an entry is re-read after
 * KEY_CACHE_SAFETY_MS whatever happens. The lookup itself refuses revoked
 * and expired keys and keys of a disabled tenant.
 *
 * last_used_at: an authenticated request records its key id in a set in
 * memory (on a cache hit only the first use per period touches it); a
 * timer writes the set in one UPDATE every KEY_USED_FLUSH_MS, and the
 * surface's flush writes the rest at shutdown. So last_used_at is the time
 * of the write that followed a use: at most KEY_USED_FLUSH_MS (5 s) after
 * the last use, later only when the database was unreachable (the ids are
 * kept for the next write) or more than KEY_USED_MAX distinct keys were
 * used in one period (the others wait for their next use). A SIGKILLed
 * process loses its last period. The column changes no credential and
 * notifies nothing.
 * Loop thread only, except the item helpers (pure).
 */
#include "app.h"
#include "auth.h"
#include "fetch.h"
#include "idem.h"
#include "json.h"
#include "log.h"
#include "qr.h"
#include "qr_api.h"
#include "util.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>

#define KEY_CACHE_SIZE 4096                  /* direct-mapped entries */
#define KEY_CACHE_SAFETY_MS (5 * 60 * 1000) /* an entry is re-read at least this often */
#define KEY_USED_FLUSH_MS 5000              /* last_used_at is written this often */
#define KEY_USED_SLOTS 16384                /* open-addressed set of used key ids (power of 2) */
#define KEY_USED_MAX (KEY_USED_SLOTS / 2)   /* distinct keys recorded per period */

/* --- request context ----------------------------------------------------- */

static void qr_ctx_free(void *arg) {
  qr_ctx_t *c = arg;
  json_decref(c->body);
  if (c->design) bd_qr_design_free(c->design);
  bd_buf_free(&c->scratch);
  free(c);
}

/* --- key cache ------------------------------------------------------------- */

typedef struct {
  char id[16];                  /* key id ("" = empty slot) */
  char hash[65];                /* SHA-256 of the secret, hex */
  unsigned char tag[crypto_shorthash_siphashx24_BYTES]; /* keyed hash of the secret once checked (tagged) */
  bool tagged;                  /* tag holds the secret that matched hash */
  int64_t ws;                   /* workspace */
  bool live;                    /* mode */
  uint32_t scopes;              /* QR_SCOPE_* */
  uint64_t until_ms;            /* monotonic: the key's own end or the safety TTL, the sooner */
  uint32_t used_gen;            /* g_used_gen when its use was last recorded */
} keyent_t;

static keyent_t g_keys[KEY_CACHE_SIZE];
/* The key of the tags: a cache hit checks the presented secret with one
 * SipHash-128 under this process's random key (a few hundred
 * instructions) instead of a SHA-256 against the stored hash (about 12k);
 * the secret itself is never kept. */
static unsigned char g_tag_key[crypto_shorthash_siphashx24_KEYBYTES];

static void secret_tag(unsigned char out[crypto_shorthash_siphashx24_BYTES], bd_str_t secret) {
  crypto_shorthash_siphashx24(out, (const unsigned char *)(secret.p ? secret.p : ""), secret.len, g_tag_key);
}

/* The presented secret is the key's: by its tag when the entry has one,
 * else by the stored hash (and then the entry is tagged). */
static bool entry_secret_ok(keyent_t *e, bd_str_t secret) {
  unsigned char t[crypto_shorthash_siphashx24_BYTES];
  secret_tag(t, secret);
  if (e->tagged) return sodium_memcmp(t, e->tag, sizeof t) == 0;
  if (!bd_token_check(secret, e->hash)) return false;
  memcpy(e->tag, t, sizeof t);
  e->tagged = true;
  return true;
}
static uint64_t g_key_seq; /* credential notifications (and reconnects) seen: lookups compare it */

static uint32_t fnv(const char *p, size_t n) {
  uint32_t h = 2166136261u;
  for (size_t i = 0; i < n; i++) h = (h ^ (uint8_t)p[i]) * 16777619u;
  return h;
}

static keyent_t *key_slot(bd_str_t id) { return &g_keys[fnv(id.p, id.len) % KEY_CACHE_SIZE]; }

static void key_drop(const char *id) {
  keyent_t *e = key_slot(bd_str_c(id));
  if (!strcmp(e->id, id)) memset(e, 0, sizeof *e);
}

static void keys_clear(void) { memset(g_keys, 0, sizeof g_keys); }

void qr_key_forget(const char *id) {
  g_key_seq++;
  key_drop(id);
}

static void on_cred_notify(void *ud, const char *channel, const char *payload) {
  g_key_seq++;
  if (!strncmp(payload, "qr:", 3)) key_drop(payload + 3);
  else if (!strncmp(payload, "tenant:", 7)) keys_clear();
  /* biz:, pp: are other surfaces' */
}

static void on_cred_reconnect(void *ud) {
  g_key_seq++;
  keys_clear();
}

/* --- scopes -------------------------------------------------------------------- */

static const struct {
  const char *name;
  uint32_t bit;
} k_scopes[] = {
    {"qr:read", QR_SCOPE_READ},
    {"qr:write", QR_SCOPE_WRITE},
    {"analytics:read", QR_SCOPE_ANALYTICS},
    {"tokens:manage", QR_SCOPE_TOKENS},
};

uint32_t qr_scope_bit(const char *name) {
  for (size_t i = 0; i < BD_ARRAY_LEN(k_scopes); i++)
    if (!strcmp(name, k_scopes[i].name)) return k_scopes[i].bit;
  return 0;
}

void qr_scopes_literal(bd_buf_t *out, uint32_t bits) {
  bd_buf_putc(out, '{');
  bool first = true;
  for (size_t i = 0; i < BD_ARRAY_LEN(k_scopes); i++)
    if (bits & k_scopes[i].bit) {
      if (!first) bd_buf_putc(out, ',');
      bd_buf_puts(out, k_scopes[i].name);
      first = false;
    }
  bd_buf_putc(out, '}');
}

static uint32_t parse_scopes(const char *arr) {
  /* PostgreSQL text[] output: {qr:read,qr:write}; the names contain no
   * character that would make it quote them */
  uint32_t s = 0;
  const char *p = *arr == '{' ? arr + 1 : arr;
  while (*p && *p != '}') {
    const char *end = p + strcspn(p, ",}");
    char name[32];
    size_t n = (size_t)(end - p);
    if (n < sizeof name) {
      memcpy(name, p, n);
      name[n] = '\0';
      s |= qr_scope_bit(name);
    }
    p = *end == ',' ? end + 1 : end;
  }
  return s;
}

static const char *scope_name(uint32_t s) {
  for (size_t i = 0; i < BD_ARRAY_LEN(k_scopes); i++)
    if (s & k_scopes[i].bit) return k_scopes[i].name;
  return "qr:read";
}

/* --- last_used_at --------------------------------------------------------------- */

/* Two sets of key ids: uses are added to the active one while the other
 * is being written. Open addressing, linear probing; "" is an empty slot. */
typedef struct {
  char ids[KEY_USED_SLOTS][16];
  uint32_t n;
} used_set_t;

static used_set_t g_used[2];
static int g_used_active;           /* index of the set uses go to */
static uint32_t g_used_gen = 1;     /* bumped when a set is handed to the database */
static bool g_used_writing;         /* the other set's UPDATE is in flight */
static uv_timer_t g_used_timer;
static bool g_used_timer_on;
static void (*g_used_done)(void *);  /* shutdown flush completion */
static void *g_used_done_ud;

static bd_pg_stmt_t S_USED = BD_PG_STMT("UPDATE qr_api_keys SET last_used_at = now() WHERE id = ANY($1::text[])");

static void used_add(used_set_t *s, const char *id) {
  if (s->n >= KEY_USED_MAX) return; /* recorded at its next use */
  size_t n = strlen(id);
  if (n >= sizeof s->ids[0]) return;
  for (uint32_t i = fnv(id, n) & (KEY_USED_SLOTS - 1);; i = (i + 1) & (KEY_USED_SLOTS - 1)) {
    if (!s->ids[i][0]) {
      memcpy(s->ids[i], id, n + 1);
      s->n++;
      return;
    }
    if (!strcmp(s->ids[i], id)) return;
  }
}

static void used_clear(used_set_t *s) {
  if (s->n) memset(s, 0, sizeof *s);
}

/* The key of an authenticated request; e is its cache entry or NULL. */
static void key_used(keyent_t *e, const char *id) {
  if (e) {
    if (e->used_gen == g_used_gen) return; /* already in the active set */
    e->used_gen = g_used_gen;
  }
  used_add(&g_used[g_used_active], id);
}

static void used_write(void);

static void used_flush_finished(void) {
  if (!g_used_done || g_used_writing || g_used[g_used_active].n) return;
  void (*done)(void *) = g_used_done;
  g_used_done = NULL;
  if (g_used_timer_on) {
    uv_close((uv_handle_t *)&g_used_timer, NULL);
    g_used_timer_on = false;
  }
  done(g_used_done_ud);
}

static void on_used_written(void *ud, const bd_pg_result_t *r) {
  used_set_t *sent = &g_used[!g_used_active];
  g_used_writing = false;
  if (r->err) {
    if (g_used_done) {
      bd_error("shutdown: last_used_at of %u keys could not be written: %s", sent->n, r->message);
      used_clear(sent);
      used_clear(&g_used[g_used_active]);
      used_flush_finished();
      return;
    }
    bd_warn("last_used_at: writing %u keys failed (%s); kept for the next attempt", sent->n, r->message);
    for (uint32_t i = 0; i < KEY_USED_SLOTS; i++)
      if (sent->ids[i][0]) used_add(&g_used[g_used_active], sent->ids[i]);
  }
  used_clear(sent);
  if (g_used_done) {
    if (g_used[g_used_active].n) used_write();
    else used_flush_finished();
  }
}

/* Hands the active set to one UPDATE; uses accumulate in the other. */
static void used_write(void) {
  used_set_t *s = &g_used[g_used_active];
  if (g_used_writing || s->n == 0) return;
  bd_pg_array_t a;
  bd_pg_array_init(&a, BD_PG_OID_TEXT);
  for (uint32_t i = 0; i < KEY_USED_SLOTS; i++)
    if (s->ids[i][0]) bd_pg_array_add_str(&a, s->ids[i]);
  bd_pg_array_finish(&a);
  const char *p[] = {a.buf.data};
  const int lens[] = {(int)a.buf.len}, fmts[] = {1};
  if (bd_pg_query_bin(bd_app.pg, &S_USED, 1, p, lens, fmts, on_used_written, NULL) == 0) {
    g_used_writing = true;
    g_used_active = !g_used_active;
    g_used_gen++;
  } else if (g_used_done) {
    /* shutting down and the query cannot even be queued: give up on them */
    bd_error("shutdown: last_used_at of %u keys could not be written: the database queue is full", s->n);
    used_clear(s);
  } /* else: kept for the next tick */
  bd_pg_array_free(&a);
}

static void on_used_timer(uv_timer_t *t) { used_write(); }

void qr_keys_flush(void (*done)(void *ud), void *ud) {
  g_used_done = done;
  g_used_done_ud = ud;
  if (g_used_timer_on) uv_timer_stop(&g_used_timer);
  if (!g_used_writing) used_write();
  used_flush_finished();
}

void qr_keys_init(void) {
  randombytes_buf(g_tag_key, sizeof g_tag_key);
  bd_pg_listen(bd_app.pg, "bd_credentials", on_cred_notify, on_cred_reconnect, NULL);
  uv_timer_init(bd_app.loop, &g_used_timer);
  g_used_timer_on = true;
  uv_timer_start(&g_used_timer, on_used_timer, KEY_USED_FLUSH_MS, KEY_USED_FLUSH_MS);
  uv_unref((uv_handle_t *)&g_used_timer);
}

/* --- authentication --------------------------------------------------------------- */

void qr_error(bd_req_t *req, int status, const char *code, const char *message, const char *param) {
  bd_resp_error(req, status, code, message, param);
}

static void unauthenticated(bd_req_t *req) {
  bd_resp_header(req, "WWW-Authenticate", "Bearer");
  qr_error(req, 401, "unauthenticated", "Missing or invalid API key", NULL);
}

/* The key is authenticated (secret and mode checked): scope, rate limit,
 * Idempotency-Key, handler. */
static void authorized(bd_req_t *req, keyent_t *e) {
  qr_ctx_t *c = req->ctx;
  key_used(e, c->key_id);
  if ((c->scopes & c->need) != c->need) {
    char msg[128];
    snprintf(msg, sizeof msg, "This API key lacks the %s scope", scope_name(c->need & ~c->scopes));
    qr_error(req, 403, "insufficient_scope", msg, NULL);
    return;
  }
  snprintf(req->cred_buf, sizeof req->cred_buf, "qr:%s", c->key_id);
  req->cred_id = req->cred_buf;
  if (!bd_app_rate_limit(req, req->cred_id)) return;
  bd_idem_wrap(req, req->cred_id, c->next);
}

/* Live keys only (not revoked, not expired, revoked_at in the future is a
 * grace period) of enabled tenants; the last column is the milliseconds
 * they have left (NULL: no end), by the database's clock. */
static bd_pg_stmt_t S_KEY = BD_PG_STMT(
    "SELECT k.workspace_id, k.mode, k.scopes, k.secret_hash,"
    " (extract(epoch FROM least(k.revoked_at, k.expires_at) - now()) * 1000)::bigint"
    " FROM qr_api_keys k JOIN qr_workspaces w ON w.id = k.workspace_id JOIN bd_tenants t ON t.id = w.tenant_id"
    " WHERE k.id = $1 AND bd_credential_live(k.revoked_at, k.expires_at) AND t.disabled_at IS NULL");

static void on_key(void *ud, const bd_pg_result_t *r) {
  bd_req_t *req = ud;
  qr_ctx_t *c = req->ctx;
  if (r->err) {
    bd_app_db_error(req, r);
  } else if (PQntuples(r->res) != 1) {
    unauthenticated(req);
  } else {
    /* kept only when no change can have been missed meanwhile */
    bool keep = bd_pg_listening(bd_app.pg) && c->key_seq == g_key_seq;
    keyent_t tmp, *e = keep ? key_slot(bd_str_c(c->key_id)) : &tmp;
    memset(e, 0, sizeof *e);
    snprintf(e->id, sizeof e->id, "%s", c->key_id);
    snprintf(e->hash, sizeof e->hash, "%s", PQgetvalue(r->res, 0, 3));
    e->ws = strtoll(PQgetvalue(r->res, 0, 0), NULL, 10);
    e->live = strcmp(PQgetvalue(r->res, 0, 1), "live") == 0;
    e->scopes = parse_scopes(PQgetvalue(r->res, 0, 2));
    uint64_t ttl = KEY_CACHE_SAFETY_MS;
    const char *left = bd_pg_val(r->res, 0, 4);
    if (left) {
      long long ms = strtoll(left, NULL, 10);
      if (ms < (long long)ttl) ttl = ms > 0 ? (uint64_t)ms : 0;
    }
    e->until_ms = c->key_sent_ms + ttl;
    if (!entry_secret_ok(e, bd_str_c(c->secret)) || e->live != c->live) {
      unauthenticated(req);
    } else {
      c->ws = e->ws;
      c->scopes = e->scopes;
      authorized(req, keep ? e : NULL);
    }
  }
  bd_req_release(req);
}

void qr_entry_scope(bd_req_t *req, uint32_t need, bd_handler_fn next) {
  qr_ctx_t *c = bd_calloc(1, sizeof *c);
  req->ctx = c;
  bd_req_defer(req, qr_ctx_free, c);
  c->need = need;
  c->next = next;
  bd_str_t cred, id, secret;
  if (!bd_bearer(bd_req_header(req, "Authorization"), &cred)) {
    unauthenticated(req);
    return;
  }
  if (bd_token_parse(cred, "qr_live_", &id, &secret)) c->live = true;
  else if (bd_token_parse(cred, "qr_test_", &id, &secret)) c->live = false;
  else {
    unauthenticated(req);
    return;
  }
  memcpy(c->key_id, id.p, id.len);
  c->key_id[id.len] = '\0';
  memcpy(c->secret, secret.p, secret.len);
  c->secret[secret.len] = '\0';
  uint64_t now = bd_now_ms();
  bool listening = bd_pg_listening(bd_app.pg);
  keyent_t *e = listening ? key_slot(id) : NULL;
  if (e && e->id[0] && bd_str_eq(id, e->id) && e->until_ms > now) {
    if (!entry_secret_ok(e, secret) || e->live != c->live) {
      unauthenticated(req);
      return;
    }
    c->ws = e->ws;
    c->scopes = e->scopes;
    authorized(req, e);
    return;
  }
  /* a lookup sent while the LISTEN is not confirmed is never kept: a
   * change meanwhile may have been announced to no one */
  c->key_seq = listening ? g_key_seq : UINT64_MAX;
  c->key_sent_ms = now;
  const char *p[] = {c->key_id};
  bd_app_query(req, &S_KEY, 1, p, on_key, req);
}

/* Parses the JSON body: nesting limit, syntax, must be an object.
 * Idempotent: a handler re-entered after an asynchronous step keeps it. */
bool qr_parse_body(bd_req_t *req) {
  qr_ctx_t *c = req->ctx;
  if (c->body) return true;
  const char *b = req->body.data ? req->body.data : "";
  int depth = bd_json_depth(b, req->body.len);
  if (depth > bd_app.cfg.max_json_depth) {
    char msg[96];
    snprintf(msg, sizeof msg, "JSON nesting deeper than %lld levels", (long long)bd_app.cfg.max_json_depth);
    qr_error(req, 400, "invalid_request", msg, NULL);
    return false;
  }
  json_error_t err;
  c->body = json_loadb(b, req->body.len, JSON_REJECT_DUPLICATES, &err);
  if (!c->body) {
    char msg[256];
    snprintf(msg, sizeof msg, "Request body is not valid JSON: %s (line %d, column %d)", err.text, err.line,
             err.column);
    qr_error(req, 400, "invalid_request", msg, NULL);
    return false;
  }
  if (!json_is_object(c->body)) {
    qr_error(req, 400, "invalid_request", "Request body must be a JSON object", NULL);
    return false;
  }
  return true;
}

/* Sends a query's single text column as the JSON body. */
void qr_send_json_row(bd_req_t *req, const bd_pg_result_t *r, int status, const char *what) {
  if (r->err) {
    bd_app_db_error(req, r);
  } else if (PQntuples(r->res) == 0 || PQgetisnull(r->res, 0, 0)) {
    char msg[160];
    snprintf(msg, sizeof msg, "No such %s", what);
    qr_error(req, 404, "not_found", msg, NULL);
  } else {
    bd_resp_send(req, status, "application/json; charset=utf-8", PQgetvalue(r->res, 0, 0),
                 (size_t)PQgetlength(r->res, 0, 0));
  }
}

static void on_json_row(void *ud, const bd_pg_result_t *r) {
  bd_req_t *req = ud;
  qr_ctx_t *c = req->ctx;
  qr_send_json_row(req, r, c->ok_status ? c->ok_status : 200, c->what);
  bd_req_release(req);
}

/* Runs a statement whose first column is the response body. */
void qr_query_json(bd_req_t *req, bd_pg_stmt_t *st, int n, const char *const *p, int ok_status, const char *what) {
  qr_ctx_t *c = req->ctx;
  c->ok_status = ok_status;
  c->what = what;
  bd_app_query(req, st, n, p, on_json_row, req);
}

void qr_ws_params(qr_ctx_t *c) {
  snprintf(c->ws_s, sizeof c->ws_s, "%lld", (long long)c->ws);
  snprintf(c->mode_s, sizeof c->mode_s, "%s", c->live ? "live" : "test");
}

/* --- remote logos ------------------------------------------------------------ */

#define LOGO_MAX_BYTES (1024 * 1024)

typedef struct {
  bd_req_t *req;        /* held request */
  json_t *logo;         /* design.logo of the request body (borrowed) */
  bd_handler_fn next;   /* the handler to re-enter */
  char *url;            /* the remote URL */
} logo_fetch_t;

static bool host_allowed(const char *host) {
  const char *list = bd_app.cfg.logo_allowlist;
  size_t hl = strlen(host);
  while (list && *list) {
    while (*list == ' ' || *list == ',') list++;
    const char *end = list;
    while (*end && *end != ',' && *end != ' ') end++;
    if ((size_t)(end - list) == hl && !strncasecmp(list, host, hl)) return true;
    list = end;
  }
  return false;
}

static void on_logo(void *ud, int err, const char *msg, bd_buf_t *body, const char *ctype) {
  logo_fetch_t *lf = ud;
  bd_req_t *req = lf->req;
  char text[400];
  const char *kind = NULL;
  if (!err) {
    if (!strncasecmp(ctype, "image/png", 9)) kind = "image/png";
    else if (!strncasecmp(ctype, "image/jpeg", 10) || !strncasecmp(ctype, "image/jpg", 9)) kind = "image/jpeg";
    else if (!strncasecmp(ctype, "image/svg+xml", 13)) kind = "image/svg+xml";
  }
  if (err || !kind) {
    snprintf(text, sizeof text, "design.logo.url could not be used: %s",
             err ? msg : "the response is not a PNG, JPEG or SVG image");
    qr_error(req, 400, "invalid_request", text, "design.logo.url");
  } else {
    bd_buf_t d = BD_BUF_INIT;
    bd_buf_printf(&d, "data:%s;base64,", kind);
    bd_b64_encode(&d, body->data ? body->data : "", body->len);
    json_object_set_new(lf->logo, "url", json_stringn(d.data, d.len));
    json_object_set_new(lf->logo, "source_url", json_string(lf->url));
    bd_buf_free(&d);
    lf->next(req); /* now with a data: URL */
  }
  free(lf->url);
  free(lf);
  bd_req_release(req);
}

/* When the design's logo is an http(s) URL, fetches it (host on the
 * allowlist, at most 1 MiB, within the configured time), replaces it with a
 * data: URL and re-enters `next`. Returns true when it took the request
 * over (it then answers errors itself). */
static bool qr_resolve_logo(bd_req_t *req, json_t *design, bd_handler_fn next) {
  json_t *logo = json_is_object(design) ? json_object_get(design, "logo") : NULL;
  const char *url = json_is_object(logo) ? json_string_value(json_object_get(logo, "url")) : NULL;
  if (!url || (strncasecmp(url, "http://", 7) && strncasecmp(url, "https://", 8))) return false;
  char host[256], text[400];
  if (!bd_fetch_url_host(url, host, sizeof host)) {
    qr_error(req, 400, "invalid_request", "design.logo.url is not a valid http(s) URL", "design.logo.url");
    return true;
  }
  if (!host_allowed(host)) {
    snprintf(text, sizeof text, "design.logo.url: host %s is not on the logo allowlist", host);
    qr_error(req, 400, "invalid_request", text, "design.logo.url");
    return true;
  }
  logo_fetch_t *lf = bd_calloc(1, sizeof *lf);
  lf->req = req;
  lf->logo = logo;
  lf->next = next;
  lf->url = bd_strdup(url);
  bd_req_hold(req);
  if (bd_fetch(url, LOGO_MAX_BYTES, (uint32_t)bd_app.cfg.logo_fetch_timeout_ms, on_logo, lf) != 0) {
    free(lf->url);
    free(lf);
    bd_req_release(req);
    qr_error(req, 500, "internal_error", "the logo could not be fetched", "design.logo.url");
  }
  return true;
}

bool qr_logo_step(bd_req_t *req, bd_handler_fn next) {
  qr_ctx_t *c = req->ctx;
  return qr_resolve_logo(req, json_object_get(c->body, "design"), next);
}

/* --- design or template_id -------------------------------------------------------- */

static bd_pg_stmt_t S_TEMPLATE = BD_PG_STMT(
    "SELECT design::text FROM qr_templates WHERE id = $1 AND workspace_id = $2 AND mode = $3");

static void on_template(void *ud, const bd_pg_result_t *r) {
  bd_req_t *req = ud;
  qr_ctx_t *c = req->ctx;
  if (r->err) {
    bd_app_db_error(req, r);
  } else if (PQntuples(r->res) == 0) {
    qr_error(req, 400, "invalid_request", "Unknown template_id", "template_id");
  } else {
    json_t *d = json_loads(PQgetvalue(r->res, 0, 0), 0, NULL);
    char err[256];
    const char *param = NULL;
    if (c->design) bd_qr_design_free(c->design);
    c->design = d ? bd_qr_design_parse(d, err, sizeof err, &param) : NULL;
    json_decref(d);
    if (!c->design) qr_error(req, 400, "invalid_request", "The template's design is invalid", "template_id");
    else c->next_design(req);
  }
  bd_req_release(req);
}

void qr_with_design(bd_req_t *req, bd_handler_fn next) {
  qr_ctx_t *c = req->ctx;
  char err[256];
  const char *param = NULL;
  json_t *design = json_object_get(c->body, "design");
  if (design && !json_is_object(design) && !json_is_null(design)) {
    qr_error(req, 400, "invalid_request", "design must be an object", "design");
    return;
  }
  c->design = bd_qr_design_parse(json_is_object(design) ? design : NULL, err, sizeof err, &param);
  if (!c->design) {
    qr_error(req, 400, "invalid_request", err, param ? param : "design");
    return;
  }
  json_t *tpl = json_object_get(c->body, "template_id");
  if (!tpl || json_is_null(tpl)) {
    next(req);
    return;
  }
  if (!json_is_string(tpl)) {
    qr_error(req, 400, "invalid_request", "template_id must be a string", "template_id");
    return;
  }
  c->next_design = next;
  qr_ws_params(c);
  const char *p[] = {json_string_value(tpl), c->ws_s, c->mode_s};
  bd_app_query(req, &S_TEMPLATE, 3, p, on_template, req);
}

/* Sends a list page built by SQL, wrapping its raw next_cursor into
 * base64url (cursors are opaque to clients). */
void qr_on_list(void *ud, const bd_pg_result_t *r) {
  bd_req_t *req = ud;
  if (r->err) {
    bd_app_db_error(req, r);
    bd_req_release(req);
    return;
  }
  json_t *doc = json_loads(PQgetvalue(r->res, 0, 0), 0, NULL);
  json_t *nc = json_object_get(doc, "next_cursor");
  if (json_is_string(nc)) {
    bd_buf_t enc = BD_BUF_INIT;
    bd_b64url_encode(&enc, json_string_value(nc), json_string_length(nc));
    json_object_set_new(doc, "next_cursor", json_string(enc.data));
    bd_buf_free(&enc);
  }
  char *text = json_dumps(doc, JSON_COMPACT);
  bd_resp_send(req, 200, "application/json; charset=utf-8", text, strlen(text));
  free(text);
  json_decref(doc);
  bd_req_release(req);
}

/* Reads limit (1-100, default 25) and cursor; answers 400 itself. */
bool qr_page_params(bd_req_t *req, char limit[8], bd_buf_t *cursor, bool *has_cursor, int key_kind) {
  bd_buf_t v = BD_BUF_INIT;
  long lim = 25;
  if (bd_req_query(req, "limit", &v)) {
    int64_t n;
    if (!bd_parse_i64((bd_str_t){v.data ? v.data : "", v.len}, &n) || n < 1 || n > 100) {
      bd_buf_free(&v);
      qr_error(req, 400, "invalid_request", "limit must be an integer between 1 and 100", "limit");
      return false;
    }
    lim = (long)n;
  }
  bd_buf_free(&v);
  snprintf(limit, 8, "%ld", lim);
  *has_cursor = false;
  bd_buf_t raw = BD_BUF_INIT;
  if (bd_req_query(req, "cursor", &raw) && raw.len) {
    bool ok = bd_b64url_decode(cursor, raw.data, raw.len) && cursor->len < 200 && cursor->data &&
              strchr(cursor->data, '|') != NULL;
    /* the key before the last '|' must parse as the sort column's type:
     * PostgreSQL would otherwise answer a cast error (a 500) */
    if (ok && key_kind != QR_KEY_TEXT) {
      char key[64];
      size_t tl = (size_t)(strrchr(cursor->data, '|') - cursor->data);
      ok = tl < sizeof key;
      if (ok) {
        memcpy(key, cursor->data, tl);
        key[tl] = '\0';
        int64_t kv;
        ok = key_kind == QR_KEY_TIME ? bd_time_parse(key, &kv) : bd_parse_i64(bd_str_c(key), &kv);
      }
    }
    if (!ok) {
      bd_buf_free(&raw);
      qr_error(req, 400, "invalid_request", "cursor is not valid", "cursor");
      return false;
    }
    *has_cursor = true;
  }
  bd_buf_free(&raw);
  return true;
}

/* --- items: a batch's and a single create's ------------------------------------ */

bool qr_opt_string(json_t *o, const char *key, size_t max, const char **out, char *err, size_t errsz) {
  json_t *v = json_object_get(o, key);
  *out = NULL;
  if (!v || json_is_null(v)) return true;
  if (!json_is_string(v) || json_string_length(v) > max) {
    snprintf(err, errsz, "%s must be a string of at most %zu characters", key, max);
    return false;
  }
  *out = json_string_value(v);
  return true;
}

bool qr_valid_tags(json_t *tags, char *err, size_t errsz) {
  if (!tags || json_is_null(tags)) return true;
  if (!json_is_array(tags) || json_array_size(tags) > 10) {
    snprintf(err, errsz, "tags must be an array of at most 10 strings");
    return false;
  }
  size_t i;
  json_t *t;
  json_array_foreach(tags, i, t) {
    if (!json_is_string(t) || json_string_length(t) == 0 || json_string_length(t) > 64) {
      snprintf(err, errsz, "tags must be non-empty strings of at most 64 characters");
      return false;
    }
  }
  return true;
}

bool qr_item_parse(json_t *it, const bd_qr_design_t *d, qr_item_t *o, bd_buf_t *payload, char *err,
                   size_t errsz) {
  return qr_item_parse_ids(it, d, NULL, o, payload, err, errsz);
}

bool qr_item_parse_ids(json_t *it, const bd_qr_design_t *d, const qr_item_ids_t *ids, qr_item_t *o,
                       bd_buf_t *payload, char *err, size_t errsz) {
  memset(o, 0, sizeof *o);
  if (!json_is_object(it)) {
    snprintf(err, errsz, "each item must be an object");
    return false;
  }
  if (!qr_opt_string(it, "name", 200, &o->name, err, errsz) ||
      !qr_opt_string(it, "folder_id", 64, &o->folder_id, err, errsz))
    return false;
  o->tags = json_object_get(it, "tags");
  if (!qr_valid_tags(o->tags, err, errsz)) return false;
  if (json_is_null(o->tags)) o->tags = NULL;
  json_t *target = json_object_get(it, "target");
  if (!json_is_object(target)) {
    snprintf(err, errsz, "target is required and must be an object");
    return false;
  }
  bd_qr_type_t type = (bd_qr_type_t)-1;
  const char *param = NULL;
  int rc = bd_qr_payload(target, &type, payload, err, errsz, &param);
  /* a failed item still reports its type when the target made it clear */
  if (rc == 0 || ((int)type >= 0 && !(param && !strcmp(param, "target")))) o->type = bd_qr_type_name(type);
  if (rc != 0) return false;
  o->target = target;
  if (type == BD_QR_TYPE_URL) {
    /* dynamic: the symbol encodes our short URL, the destination can change */
    o->kind = "dynamic";
    memcpy(o->id, "qr_", 3);
    if (ids) {
      snprintf(o->id + 3, sizeof o->id - 3, "%s", ids->id_body);
      snprintf(o->short_code, sizeof o->short_code, "%s", ids->short_code);
    } else {
      bd_rand_base62(o->id + 3, 20);
      bd_rand_base62(o->short_code, 8);
    }
    bd_buf_reset(payload);
    bd_buf_puts(payload, bd_app.cfg.public_url);
    bd_buf_append(payload, "/s/", 3);
    bd_buf_puts(payload, o->short_code);
  } else {
    o->kind = "static";
    memcpy(o->id, "sqr_", 4);
    if (ids) snprintf(o->id + 4, sizeof o->id - 4, "%s", ids->id_body);
    else bd_rand_base62(o->id + 4, 20);
  }
  if (!bd_qr_fits(payload->data, d)) {
    snprintf(err, errsz, "the content is too long to fit in a QR code at error correction level %c",
             bd_qr_design_ec(d));
    return false;
  }
  return true;
}

static int append_cb(const char *buffer, size_t size, void *data) {
  bd_buf_append(data, buffer, size);
  return 0;
}

void qr_json_append(bd_buf_t *out, const json_t *j, size_t flags) {
  json_dump_callback(j, append_cb, out, flags);
}

void qr_tags_literal(bd_buf_t *out, json_t *tags) {
  bd_buf_putc(out, '{');
  size_t i;
  json_t *t;
  json_array_foreach(tags, i, t) {
    if (i) bd_buf_putc(out, ',');
    bd_buf_putc(out, '"');
    for (const char *s = json_string_value(t); *s; s++) {
      if (*s == '"' || *s == '\\') bd_buf_putc(out, '\\');
      bd_buf_putc(out, *s);
    }
    bd_buf_putc(out, '"');
  }
  bd_buf_putc(out, '}');
}

static void item_code_write(bd_buf_t *out, const qr_item_t *it, const char *payload) {
  bd_jw_t w;
  bd_jw_init(&w, out);
  bd_jw_obj(&w);
  bd_jw_kstr(&w, "id", it->id);
  bd_jw_kstr(&w, "kind", it->kind);
  bd_jw_kstr(&w, "type", it->type);
  if (it->name) bd_jw_kstr(&w, "name", it->name);
  bd_jw_kstr(&w, "payload", payload);
  if (it->short_code[0]) bd_jw_kstr(&w, "short_code", it->short_code);
  if (it->folder_id) bd_jw_kstr(&w, "folder_id", it->folder_id);
  bd_jw_key(&w, "target");
  if (it->target) {
    bd_jw_raw(&w, "");
    qr_json_append(out, it->target, JSON_COMPACT | JSON_ENCODE_ANY);
  } else {
    bd_jw_null(&w);
  }
  if (it->tags) {
    bd_jw_key(&w, "tags");
    bd_jw_raw(&w, "");
    qr_json_append(out, it->tags, JSON_COMPACT);
  }
  bd_jw_obj_end(&w);
}

json_t *qr_item_code_json(const qr_item_t *it, const char *payload) {
  bd_buf_t b = BD_BUF_INIT;
  item_code_write(&b, it, payload);
  json_t *o = json_loadb(b.data, b.len, 0, NULL);
  bd_buf_free(&b);
  return o;
}

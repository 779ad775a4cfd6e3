/* webhooks.c: signed webhooks (webhooks.h): secrets, URL rules, signatures,
 * and the delivery engine. */
#include "webhooks.h"

#include "app.h"
#include "curl_uv.h"
#include "keyfile.h"
#include "log.h"
#include "util.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sodium.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

#define KEY_PREFIX "batchd-webhook-key-v1 "

static unsigned char g_seal_key[32];
static bool g_have_key;

int bd_webhook_key_load(char *err, size_t errsz) {
  if (g_have_key) return 0;
  if (bd_keyfile_load_or_create(bd_app.cfg.webhook_key_file, KEY_PREFIX, "webhook key file", g_seal_key, err,
                                errsz) != 0)
    return -1;
  g_have_key = true;
  return 0;
}

int bd_webhook_secret_new(char secret[BD_WEBHOOK_SECRET_MAX], bd_buf_t *sealed_hex, char *err, size_t errsz) {
  if (bd_webhook_key_load(err, errsz) != 0) return -1;
  unsigned char raw[32];
  randombytes_buf(raw, sizeof raw);
  memcpy(secret, "whsec_", 6);
  sodium_bin2base64(secret + 6, BD_WEBHOOK_SECRET_MAX - 6, raw, sizeof raw, sodium_base64_VARIANT_ORIGINAL);
  /* sealed: nonce || secretbox(raw) */
  unsigned char box[crypto_secretbox_NONCEBYTES + crypto_secretbox_MACBYTES + 32];
  randombytes_buf(box, crypto_secretbox_NONCEBYTES);
  crypto_secretbox_easy(box + crypto_secretbox_NONCEBYTES, raw, sizeof raw, box, g_seal_key);
  sodium_memzero(raw, sizeof raw);
  char hex[2 * sizeof box + 1];
  sodium_bin2hex(hex, sizeof hex, box, sizeof box);
  bd_buf_puts(sealed_hex, "\\x");
  bd_buf_puts(sealed_hex, hex);
  return 0;
}

int bd_webhook_secret_key(const void *sealed, size_t n, unsigned char key[32]) {
  char err[256];
  if (bd_webhook_key_load(err, sizeof err) != 0) return -1;
  if (n != crypto_secretbox_NONCEBYTES + crypto_secretbox_MACBYTES + 32) return -1;
  const unsigned char *p = sealed;
  return crypto_secretbox_open_easy(key, p + crypto_secretbox_NONCEBYTES, n - crypto_secretbox_NONCEBYTES, p,
                                    g_seal_key) == 0
             ? 0
             : -1;
}

bool bd_webhook_addr_forbidden(const unsigned char *a, size_t len) {
  if (len == 16) {
    static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (!memcmp(a, mapped, 12)) return bd_webhook_addr_forbidden(a + 12, 4);
    static const unsigned char zero[16] = {0};
    if (!memcmp(a, zero, 15) && (a[15] == 0 || a[15] == 1)) return true; /* :: and ::1 */
    if ((a[0] & 0xfe) == 0xfc) return true;                               /* fc00::/7 unique local */
    if (a[0] == 0xfe && (a[1] & 0xc0) == 0x80) return true;               /* fe80::/10 link-local */
    if (a[0] == 0xfe && (a[1] & 0xc0) == 0xc0) return true;               /* fec0::/10 site-local (deprecated) */
    if (a[0] == 0xff) return true;                                        /* multicast */
    if (a[0] == 0x20 && a[1] == 0x01 && a[2] == 0x0d && a[3] == 0xb8) return true; /* documentation */
    if (a[0] == 0x00 && a[1] == 0x64 && a[2] == 0xff && a[3] == 0x9b)    /* NAT64 of a forbidden v4 */
      return bd_webhook_addr_forbidden(a + 12, 4);
    return false;
  }
  if (len != 4) return true;
  if (a[0] == 0 || a[0] == 10 || a[0] == 127) return true;         /* this network, private, loopback */
  if (a[0] == 169 && a[1] == 254) return true;                      /* link-local (cloud metadata) */
  if (a[0] == 172 && (a[1] & 0xf0) == 16) return true;              /* 172.16/12 */
  if (a[0] == 192 && a[1] == 168) return true;                      /* 192.168/16 */
  if (a[0] == 100 && (a[1] & 0xc0) == 64) return true;              /* 100.64/10 CGNAT */
  if (a[0] == 192 && a[1] == 0 && (a[2] == 0 || a[2] == 2)) return true; /* 192.0.0/24, TEST-NET-1 */
  if (a[0] == 198 && (a[1] & 0xfe) == 18) return true;              /* 198.18/15 benchmarking */
  if (a[0] >= 224) return true;                                     /* multicast, reserved, broadcast */
  return false;
}

const char *bd_webhook_url_problem(const char *url) {
  size_t n = strlen(url);
  if (n == 0) return "url is required";
  if (n > 2048) return "url must be at most 2048 characters";
  for (size_t i = 0; i < n; i++)
    if ((unsigned char)url[i] <= ' ' || (unsigned char)url[i] >= 0x7f) return "url must not contain spaces or control characters";
  const char *rest;
  if (!strncasecmp(url, "https://", 8)) rest = url + 8;
  else if (!strncasecmp(url, "http://", 7)) {
    if (!bd_app.cfg.webhook_allow_http) return "url must be https";
    rest = url + 7;
  } else {
    return "url must be an absolute http(s) URL";
  }
  if (strchr(url, '#')) return "url must not have a fragment";
  size_t alen = strcspn(rest, "/?");
  if (alen == 0) return "url has no host";
  if (memchr(rest, '@', alen)) return "url must not carry a user name or password";
  char host[300];
  if (alen >= sizeof host) return "url host is too long";
  memcpy(host, rest, alen);
  host[alen] = '\0';
  /* strip the port; IPv6 literals are [..] */
  char *h = host;
  if (*h == '[') {
    char *e = strchr(h, ']');
    if (!e) return "url host is malformed";
    *e = '\0';
    h++;
  } else {
    char *c = strrchr(h, ':');
    if (c) *c = '\0';
  }
  if (!*h) return "url has no host";
  if (!bd_app.cfg.webhook_allow_private) {
    unsigned char a[16];
    if ((inet_pton(AF_INET, h, a) == 1 && bd_webhook_addr_forbidden(a, 4)) ||
        (inet_pton(AF_INET6, h, a) == 1 && bd_webhook_addr_forbidden(a, 16)))
      return "url must not point at a loopback, private, link-local or multicast address";
    if (!strcasecmp(h, "localhost") || (strlen(h) > 10 && !strcasecmp(h + strlen(h) - 10, ".localhost")))
      return "url must not point at a loopback, private, link-local or multicast address";
  }
  return NULL;
}

/* --- signatures ------------------------------------------------------------------- */

void bd_webhook_sign_hex(const unsigned char *key, size_t keylen, const void *body, size_t n, char out[65]) {
  unsigned char mac[crypto_auth_hmacsha256_BYTES];
  crypto_auth_hmacsha256_state st;
  crypto_auth_hmacsha256_init(&st, key, keylen);
  crypto_auth_hmacsha256_update(&st, body, n);
  crypto_auth_hmacsha256_final(&st, mac);
  sodium_bin2hex(out, 65, mac, sizeof mac);
}

void bd_webhook_sign_std(const unsigned char *key, size_t keylen, const char *id, long long ts, const void *body,
                         size_t n, char out[BD_WEBHOOK_SIG_MAX]) {
  char t[24];
  int tn = snprintf(t, sizeof t, "%lld", ts);
  unsigned char mac[crypto_auth_hmacsha256_BYTES];
  crypto_auth_hmacsha256_state st;
  crypto_auth_hmacsha256_init(&st, key, keylen);
  crypto_auth_hmacsha256_update(&st, (const unsigned char *)id, strlen(id));
  crypto_auth_hmacsha256_update(&st, (const unsigned char *)".", 1);
  crypto_auth_hmacsha256_update(&st, (const unsigned char *)t, (unsigned long long)tn);
  crypto_auth_hmacsha256_update(&st, (const unsigned char *)".", 1);
  crypto_auth_hmacsha256_update(&st, body, n);
  crypto_auth_hmacsha256_final(&st, mac);
  memcpy(out, "v1,", 3);
  sodium_bin2base64(out + 3, BD_WEBHOOK_SIG_MAX - 3, mac, sizeof mac, sodium_base64_VARIANT_ORIGINAL);
}

/* --- delivery engine ----------------------------------------------------------------
 *
 * A delivery is "in flight" from its claim until its outcome is recorded
 * (bd_webhook_done_many answered): W.inflight counts them against
 * BATCHD_WEBHOOK_CONCURRENCY. One claim query at a time; it asks for the
 * free slots, and the SQL keeps each endpoint under its cap (counting the
 * leases of every process), so a slow receiver holds at most its own
 * slots. The loop only ever waits on sockets and timers: DNS is curl's
 * resolver thread, TLS and HMACs are small. */

#define RESPONSE_CAP (64 * 1024) /* answer bytes read, then the transfer ends (the status counts) */
#define POLL_MS 1000             /* claim at least this often */
#define SWEEP_MS 10000           /* bd_webhook_sweep: queue gauges, ends orphaned deliveries */
#define DUE_SLACK_MS 10          /* a retry's timer fires this much after it is due */
#define RECORD_BATCH 256         /* outcomes per bd_webhook_done_many */

typedef struct delivery {
  char *id;                      /* whdel_… */
  char *endpoint_id;             /* wh_… */
  char *event_id;                /* evt_… */
  char *event_type;              /* e.g. batch.completed (header-safe) */
  char *url;                     /* the endpoint's URL */
  char *body;                    /* the envelope, identical on every attempt */
  size_t body_len;               /* its length */
  int attempts;                  /* before this one */
  CURL *easy;                    /* the transfer while it runs */
  struct curl_slist *headers;    /* its request headers */
  size_t resp_bytes;             /* answer bytes read */
  bool capped;                   /* RESPONSE_CAP reached: ended on purpose */
  char refused[INET6_ADDRSTRLEN]; /* an address the SSRF rule refused */
  char errbuf[CURL_ERROR_SIZE];  /* curl's message */
  bool ok;                       /* the outcome to record: a 2xx */
  long status;                   /* the answer's status (0: none) */
  char *error;                   /* what went wrong (NULL when ok) */
  struct delivery *next;         /* W.list */
  struct delivery *rnext;        /* W.rq_head: waiting to be recorded */
} delivery_t;

static struct {
  bool started;                  /* bd_webhooks_start ran and the key loaded */
  bool stopping;                 /* bd_webhooks_stop: no more claims */
  bd_curl_uv_t *curl;            /* the multi handle on the loop */
  uv_timer_t tick;               /* the poll, or the earliest retry this process scheduled */
  uint64_t tick_at;              /* when tick fires (uv_now ms) */
  uv_timer_t sweep;              /* queue gauges */
  uv_timer_t grace;              /* stop deadline */
  bool sweeping;                 /* a sweep query is in flight */
  bool claiming;                 /* a claim query is in flight */
  bool want;                     /* a claim is due */
  int inflight;                  /* deliveries claimed and not yet recorded */
  int queries;                   /* claim/done/yield queries outstanding (stop waits for them) */
  delivery_t *list;              /* deliveries claimed here */
  delivery_t *rq_head;           /* outcomes waiting to be recorded (FIFO) */
  delivery_t **rq_tail;          /* its end */
  int rq_n;                      /* its length */
  bool recording;                /* a bd_webhook_done_many is in flight */
  char lease_s[24];              /* lease length (s), a query parameter */
  void (*stop_done)(void *);     /* stop completion */
  void *stop_ud;                 /* its argument */
  /* metrics */
  uint64_t succeeded, failed_attempt, failed, disabled, unrecorded;
  bool have_queue;               /* a sweep answered */
  long long q_depth, q_due;      /* pending deliveries of active endpoints, of which due */
  double q_oldest_s;             /* age of the oldest pending one, at the sweep */
  uint64_t q_at;                 /* uv_now of that sweep */
} W;

static bd_pg_stmt_t S_CLAIM = BD_PG_STMT_BG(
    "SELECT delivery_id, attempts, endpoint_id, url, secret_sealed, event_id, event_type, body"
    " FROM bd_webhook_claim($1, $2::int, $3::int, $4::int)");
static bd_pg_stmt_t S_DONE = BD_PG_STMT_BG(
    "SELECT i, state, next_in_ms, disabled FROM bd_webhook_done_many($1::text[], $2::text[]::boolean[], $3::int4[],"
    " $4::text[], $5::int, $6::int, $7::int)");
static bd_pg_stmt_t S_YIELD = BD_PG_STMT_BG(
    "UPDATE bd_webhook_deliveries SET lease_until = NULL, locked_by = NULL"
    " WHERE id = $1 AND locked_by = $2 AND state = 'pending'");
static bd_pg_stmt_t S_SWEEP = BD_PG_STMT_BG("SELECT depth, due, oldest_s FROM bd_webhook_sweep($1::int)");

static void claim(void);

static void maybe_stopped(void) {
  if (!W.stopping || !W.stop_done || W.inflight > 0 || W.queries > 0) return;
  void (*done)(void *) = W.stop_done;
  W.stop_done = NULL;
  bd_curl_uv_close(W.curl);
  W.curl = NULL;
  uv_close((uv_handle_t *)&W.tick, NULL);
  uv_close((uv_handle_t *)&W.sweep, NULL);
  uv_close((uv_handle_t *)&W.grace, NULL);
  W.started = false;
  done(W.stop_ud);
}

static void delivery_free(delivery_t *d) {
  for (delivery_t **pp = &W.list; *pp; pp = &(*pp)->next)
    if (*pp == d) {
      *pp = d->next;
      break;
    }
  W.inflight--;
  if (d->easy) curl_easy_cleanup(d->easy);
  curl_slist_free_all(d->headers);
  free(d->id);
  free(d->endpoint_id);
  free(d->event_id);
  free(d->event_type);
  free(d->url);
  free(d->body);
  free(d->error);
  free(d);
  W.want = true; /* a slot is free, and its endpoint may have more due */
  claim();
  maybe_stopped();
}

/* A retry this process scheduled: claim when it is due (the poll would
 * find it too, up to POLL_MS later). */
static void on_tick(uv_timer_t *t);
static void wake_in(uint64_t ms) {
  if (!W.started || W.stopping) return;
  uint64_t at = uv_now(bd_app.loop) + ms;
  if (at >= W.tick_at) return;
  W.tick_at = at;
  uv_timer_start(&W.tick, on_tick, ms, 0);
}

static void on_tick(uv_timer_t *t) {
  W.tick_at = uv_now(bd_app.loop) + POLL_MS;
  uv_timer_start(&W.tick, on_tick, POLL_MS, 0);
  W.want = true;
  claim();
}

/* Outcomes are recorded in batches: one bd_webhook_done_many statement (one
 * transaction, one commit) in flight at a time, for every outcome that
 * arrived meanwhile, up to RECORD_BATCH. Idle, an outcome goes at once. */
typedef struct {
  int n;                         /* attempts in this statement */
  delivery_t *items[];           /* their deliveries, in parameter order */
} record_batch_t;

static void flush_records(void);

static void on_recorded(void *ud, const bd_pg_result_t *r) {
  record_batch_t *b = ud;
  W.queries--;
  W.recording = false;
  if (r->err != BD_PG_OK) {
    W.unrecorded += (uint64_t)b->n;
    bd_warn("webhooks: could not record %d attempt(s) (%s); they go out again when their leases end", b->n,
            r->message);
  } else {
    for (int row = 0; row < PQntuples(r->res); row++) {
      int i = atoi(PQgetvalue(r->res, row, 0)) - 1;
      if (i < 0 || i >= b->n) continue;
      delivery_t *d = b->items[i];
      const char *state = PQgetvalue(r->res, row, 1);
      if (!strcmp(state, "succeeded")) {
        W.succeeded++;
      } else if (!strcmp(state, "pending")) {
        W.failed_attempt++;
        const char *next = bd_pg_val(r->res, row, 2);
        if (next) wake_in((uint64_t)strtoull(next, NULL, 10) + DUE_SLACK_MS);
      } else {
        W.failed++;
        bd_warn("webhook delivery %s of %s to %s failed for good after %d attempts", d->id, d->event_id,
                d->endpoint_id, d->attempts + 1);
      }
      if (!strcmp(PQgetvalue(r->res, row, 3), "t")) {
        W.disabled++;
        bd_warn("webhook endpoint %s disabled: failing for longer than %lld s", d->endpoint_id,
                (long long)bd_app.cfg.webhook_disable_after_s);
      }
    }
  }
  flush_records(); /* what arrived meanwhile */
  for (int i = 0; i < b->n; i++) delivery_free(b->items[i]);
  free(b);
}

static void flush_records(void) {
  if (W.recording || !W.rq_head) return;
  int n = W.rq_n < RECORD_BATCH ? W.rq_n : RECORD_BATCH;
  record_batch_t *b = bd_malloc(sizeof *b + (size_t)n * sizeof b->items[0]);
  b->n = n;
  bd_pg_array_t ids, oks, sts, errs;
  bd_pg_array_init(&ids, BD_PG_OID_TEXT);
  bd_pg_array_init(&oks, BD_PG_OID_TEXT);
  bd_pg_array_init(&sts, BD_PG_OID_INT4);
  bd_pg_array_init(&errs, BD_PG_OID_TEXT);
  for (int i = 0; i < n; i++) {
    delivery_t *d = W.rq_head;
    W.rq_head = d->rnext;
    W.rq_n--;
    b->items[i] = d;
    bd_pg_array_add_str(&ids, d->id);
    bd_pg_array_add_str(&oks, d->ok ? "t" : "f");
    if (d->status > 0) bd_pg_array_add_i32(&sts, (int32_t)d->status);
    else bd_pg_array_add(&sts, NULL, 0);
    bd_pg_array_add_str(&errs, d->error);
  }
  if (!W.rq_head) W.rq_tail = &W.rq_head;
  bd_pg_array_finish(&ids);
  bd_pg_array_finish(&oks);
  bd_pg_array_finish(&sts);
  bd_pg_array_finish(&errs);
  char base[24], rfor[24], dis[24];
  snprintf(base, sizeof base, "%lld", (long long)bd_app.cfg.webhook_retry_base_ms);
  snprintf(rfor, sizeof rfor, "%lld", (long long)bd_app.cfg.webhook_retry_for_s);
  snprintf(dis, sizeof dis, "%lld", (long long)bd_app.cfg.webhook_disable_after_s);
  const char *p[] = {ids.buf.data, oks.buf.data, sts.buf.data, errs.buf.data, base, rfor, dis};
  const int lens[] = {(int)ids.buf.len, (int)oks.buf.len, (int)sts.buf.len, (int)errs.buf.len, 0, 0, 0};
  const int fmts[] = {1, 1, 1, 1, 0, 0, 0};
  int rc = bd_pg_query_bin(bd_app.pg, &S_DONE, 7, p, lens, fmts, on_recorded, b);
  bd_pg_array_free(&ids);
  bd_pg_array_free(&oks);
  bd_pg_array_free(&sts);
  bd_pg_array_free(&errs);
  if (rc != 0) {
    W.unrecorded += (uint64_t)n;
    bd_warn("webhooks: database queue full, %d attempt(s) not recorded; they go out again when their leases end", n);
    for (int i = 0; i < n; i++) delivery_free(b->items[i]);
    free(b);
    return;
  }
  W.recording = true;
  W.queries++;
}

/* Queues the attempt's outcome to be recorded (bd_webhook_done); d is
 * freed once it is. */
static void record(delivery_t *d, bool ok, long status, const char *error) {
  if (!ok)
    bd_info("webhook delivery %s of %s to %s: attempt %d failed: %s", d->id, d->event_id, d->endpoint_id,
            d->attempts + 1, error);
  d->ok = ok;
  d->status = status;
  d->error = ok ? NULL : bd_strdup(error);
  d->rnext = NULL;
  *W.rq_tail = d;
  W.rq_tail = &d->rnext;
  W.rq_n++;
  flush_records();
}

static void on_yielded(void *ud, const bd_pg_result_t *r) {
  W.queries--;
  delivery_free(ud);
}

/* Gives a claimed delivery back unsent (shutdown): its lease is cleared
 * without counting an attempt. */
static void yield(delivery_t *d) {
  const char *p[] = {d->id, bd_app.instance};
  if (bd_pg_query(bd_app.pg, &S_YIELD, 2, p, on_yielded, d) != 0) {
    delivery_free(d); /* its lease will expire */
    return;
  }
  W.queries++;
}

static void on_transfer_done(void *ud, CURL *e, CURLcode res) {
  delivery_t *d;
  curl_easy_getinfo(e, CURLINFO_PRIVATE, (char **)&d);
  long status = 0;
  curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
  curl_easy_cleanup(e);
  d->easy = NULL;
  char err[CURL_ERROR_SIZE + 160];
  bool ok = false;
  if (status >= 200 && status < 300) {
    /* the receiver answered 2xx: what happens to the rest of its body (the
     * cap, a stall) does not matter */
    ok = true;
    err[0] = '\0';
  } else if (res == CURLE_OK || (res == CURLE_WRITE_ERROR && d->capped)) {
    snprintf(err, sizeof err, "HTTP %ld", status);
  } else if (d->refused[0]) {
    status = 0;
    snprintf(err, sizeof err,
             "refused to connect to %s: a loopback, private, link-local or multicast address"
             " (BATCHD_WEBHOOK_ALLOW_PRIVATE is off)",
             d->refused);
  } else {
    snprintf(err, sizeof err, "%s", d->errbuf[0] ? d->errbuf : curl_easy_strerror(res));
    if (status > 0) snprintf(err + strlen(err), sizeof err - strlen(err), " (after HTTP %ld)", status);
  }
  record(d, ok, status, err);
}

static size_t on_answer(char *p, size_t size, size_t n, void *ud) {
  delivery_t *d = ud;
  d->resp_bytes += size * n;
  if (d->resp_bytes > RESPONSE_CAP) {
    d->capped = true;
    return 0; /* ends the transfer; the status is known by now */
  }
  return size * n; /* discarded */
}

/* Every connection curl opens passes here: the address it is about to
 * connect to (after its own resolution, for every address it tries) is
 * checked, so neither a name that resolves to a private address nor one
 * that rebinds between checks gets through. No proxy is used, so this is
 * the receiver itself. */
static curl_socket_t on_open_socket(void *ud, curlsocktype purpose, struct curl_sockaddr *a) {
  delivery_t *d = ud;
  if (!bd_app.cfg.webhook_allow_private) {
    const unsigned char *ip = NULL;
    size_t len = 0;
    if (a->family == AF_INET) {
      ip = (const unsigned char *)&((const struct sockaddr_in *)(const void *)&a->addr)->sin_addr;
      len = 4;
    } else if (a->family == AF_INET6) {
      ip = (const unsigned char *)&((const struct sockaddr_in6 *)(const void *)&a->addr)->sin6_addr;
      len = 16;
    }
    if (!ip || bd_webhook_addr_forbidden(ip, len)) {
      if (!ip || !inet_ntop(a->family, ip, d->refused, sizeof d->refused))
        snprintf(d->refused, sizeof d->refused, "an address of family %d", a->family);
      return CURL_SOCKET_BAD;
    }
  }
  return socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
}

static char *dup_header_safe(const char *s) {
  char *o = bd_strdup(s);
  for (char *p = o; *p; p++)
    if ((unsigned char)*p < 0x20 || (unsigned char)*p == 0x7f) *p = '_';
  return o;
}

static void add_header(delivery_t *d, const char *name, const char *value) {
  char line[512];
  snprintf(line, sizeof line, "%s: %s", name, value);
  d->headers = curl_slist_append(d->headers, line);
}

/* Signs and sends one claimed delivery. */
static void send_delivery(delivery_t *d, const char *sealed_text) {
  size_t slen = 0;
  unsigned char *sealed = PQunescapeBytea((const unsigned char *)sealed_text, &slen);
  unsigned char key[32];
  int ok = sealed ? bd_webhook_secret_key(sealed, slen, key) : -1;
  if (sealed) PQfreemem(sealed);
  if (ok != 0) {
    record(d, false, 0,
           "the endpoint's secret cannot be unsealed: BATCHD_WEBHOOK_KEY_FILE is not the key it was sealed with");
    return;
  }
  long long ts = (long long)time(NULL);
  char tss[24], hex[65], std[BD_WEBHOOK_SIG_MAX];
  snprintf(tss, sizeof tss, "%lld", ts);
  bd_webhook_sign_hex(key, sizeof key, d->body, d->body_len, hex);
  bd_webhook_sign_std(key, sizeof key, d->event_id, ts, d->body, d->body_len, std);
  sodium_memzero(key, sizeof key);
  add_header(d, "Content-Type", "application/json");
  add_header(d, "X-Webhook-Event", d->event_type);
  add_header(d, "X-Webhook-ID", d->event_id);
  add_header(d, "X-Webhook-Timestamp", tss);
  add_header(d, "X-Webhook-Signature", hex);
  add_header(d, "webhook-id", d->event_id);
  add_header(d, "webhook-timestamp", tss);
  add_header(d, "webhook-signature", std);
  d->headers = curl_slist_append(d->headers, "Expect:"); /* no 100-continue round trip */
  CURL *e = curl_easy_init();
  if (!e) {
    record(d, false, 0, "could not start the transfer (out of memory)");
    return;
  }
  const char *protos = bd_app.cfg.webhook_allow_http ? "http,https" : "https";
  long timeout = (long)bd_app.cfg.webhook_timeout_ms;
  curl_easy_setopt(e, CURLOPT_URL, d->url);
  curl_easy_setopt(e, CURLOPT_PRIVATE, d);
  curl_easy_setopt(e, CURLOPT_POST, 1L);
  curl_easy_setopt(e, CURLOPT_POSTFIELDS, d->body);
  curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)d->body_len);
  curl_easy_setopt(e, CURLOPT_HTTPHEADER, d->headers);
  curl_easy_setopt(e, CURLOPT_USERAGENT, "batchd-webhooks/" BATCHD_VERSION);
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_answer);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, d);
  curl_easy_setopt(e, CURLOPT_ERRORBUFFER, d->errbuf);
  curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, timeout);
  curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, timeout);
  curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, protos);
  curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, protos);
  curl_easy_setopt(e, CURLOPT_PROXY, "");   /* none, whatever the environment says: */
  curl_easy_setopt(e, CURLOPT_NOPROXY, "*"); /* the SSRF check must see the receiver */
  curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, on_open_socket);
  curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA, d);
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  d->easy = e;
  if (bd_curl_uv_add(W.curl, e) != 0) {
    curl_easy_cleanup(e);
    d->easy = NULL;
    record(d, false, 0, "could not start the transfer");
  }
}

static void on_claimed(void *ud, const bd_pg_result_t *r) {
  int asked = (int)(intptr_t)ud;
  W.claiming = false;
  if (r->err != BD_PG_OK) {
    /* the database is away (or the schema is not there yet): the poll tries again */
    W.queries--;
    maybe_stopped();
    return;
  }
  /* still counted in W.queries while the rows are taken in: a delivery
   * that ends at once must not let a stop complete in the middle */
  int n = PQntuples(r->res);
  for (int i = 0; i < n; i++) {
    delivery_t *d = bd_calloc(1, sizeof *d);
    d->id = bd_strdup(PQgetvalue(r->res, i, 0));
    d->attempts = atoi(PQgetvalue(r->res, i, 1));
    d->endpoint_id = bd_strdup(PQgetvalue(r->res, i, 2));
    d->url = bd_strdup(PQgetvalue(r->res, i, 3));
    d->event_id = dup_header_safe(PQgetvalue(r->res, i, 5));
    d->event_type = dup_header_safe(PQgetvalue(r->res, i, 6));
    d->body_len = (size_t)PQgetlength(r->res, i, 7);
    d->body = bd_malloc(d->body_len + 1);
    memcpy(d->body, PQgetvalue(r->res, i, 7), d->body_len + 1);
    d->next = W.list;
    W.list = d;
    W.inflight++;
    if (W.stopping) yield(d);
    else send_delivery(d, PQgetvalue(r->res, i, 4));
  }
  if (n >= asked) W.want = true; /* it got all it asked for: there may be more */
  W.queries--;
  claim();
  maybe_stopped();
}

/* One claim in flight at a time, for the free slots, when one is due. */
static void claim(void) {
  if (!W.started || W.stopping || W.claiming || !W.want) return;
  int free_slots = (int)bd_app.cfg.webhook_concurrency - W.inflight;
  if (free_slots <= 0) return; /* still due: the end of a delivery claims */
  W.want = false;
  char n[16], per[16];
  snprintf(n, sizeof n, "%d", free_slots);
  snprintf(per, sizeof per, "%lld", (long long)bd_app.cfg.webhook_per_endpoint);
  const char *p[] = {bd_app.instance, n, per, W.lease_s};
  if (bd_pg_query(bd_app.pg, &S_CLAIM, 4, p, on_claimed, (void *)(intptr_t)free_slots) != 0) {
    W.want = true; /* queue full: the next tick sends it */
    return;
  }
  W.claiming = true;
  W.queries++;
}

void bd_webhooks_kick(void) {
  W.want = true;
  claim();
}

static void on_notify(void *ud, const char *channel, const char *payload) { bd_webhooks_kick(); }

static void on_listen_reconnect(void *ud) { bd_webhooks_kick(); /* notifications may have been missed */ }

static void on_swept(void *ud, const bd_pg_result_t *r) {
  W.sweeping = false;
  if (r->err != BD_PG_OK || PQntuples(r->res) != 1) return;
  W.have_queue = true;
  W.q_depth = strtoll(PQgetvalue(r->res, 0, 0), NULL, 10);
  W.q_due = strtoll(PQgetvalue(r->res, 0, 1), NULL, 10);
  W.q_oldest_s = strtod(PQgetvalue(r->res, 0, 2), NULL);
  W.q_at = uv_now(bd_app.loop);
}

static void on_sweep(uv_timer_t *t) {
  if (W.sweeping || W.stopping) return;
  char rfor[24];
  snprintf(rfor, sizeof rfor, "%lld", (long long)bd_app.cfg.webhook_retry_for_s);
  const char *p[] = {rfor};
  if (bd_pg_query(bd_app.pg, &S_SWEEP, 1, p, on_swept, NULL) == 0) W.sweeping = true;
}

/* LISTEN bd_webhooks (pg.c sends it once any LISTEN in flight is answered);
 * an event queued before it took effect is found by the kick and the poll. */
static void start_listen(void) {
  bd_pg_listen(bd_app.pg, "bd_webhooks", on_notify, on_listen_reconnect, NULL);
  bd_webhooks_kick();
}

void bd_webhooks_start(void) {
  if (W.started) return;
  char err[512];
  if (bd_webhook_key_load(err, sizeof err) != 0) {
    bd_error("webhooks: not delivering: %s", err);
    return;
  }
  W.curl = bd_curl_uv_new(bd_app.loop, on_transfer_done, NULL);
  if (!W.curl) {
    bd_error("webhooks: not delivering: libcurl could not make a multi handle");
    return;
  }
  /* longer than any attempt takes to end and be recorded: a lease that
   * runs out means its process died (the delivery then goes out again) */
  long long lease_ms = bd_app.cfg.webhook_timeout_ms + bd_app.cfg.pg_queue_timeout_ms + 5000;
  snprintf(W.lease_s, sizeof W.lease_s, "%lld", (lease_ms + 999) / 1000);
  uv_timer_init(bd_app.loop, &W.tick);
  uv_timer_init(bd_app.loop, &W.sweep);
  uv_timer_init(bd_app.loop, &W.grace);
  W.rq_tail = &W.rq_head;
  W.started = true;
  W.stopping = false;
  W.want = true;
  W.tick_at = uv_now(bd_app.loop) + POLL_MS;
  uv_timer_start(&W.tick, on_tick, POLL_MS, 0);
  uv_timer_start(&W.sweep, on_sweep, 0, SWEEP_MS);
  start_listen();
  claim();
}

/* The grace is over: transfers still running are aborted and given back. */
static void on_grace(uv_timer_t *t) {
  int n = 0;
  W.queries++; /* as in on_claimed: no stop completes inside the loop */
  for (delivery_t *d = W.list, *next; d; d = next) {
    next = d->next;
    if (!d->easy) continue; /* being recorded */
    bd_curl_uv_remove(W.curl, d->easy);
    curl_easy_cleanup(d->easy);
    d->easy = NULL;
    n++;
    yield(d);
  }
  W.queries--;
  if (n) bd_warn("shutdown: %d webhook deliveries still in flight were given back", n);
  maybe_stopped();
}

void bd_webhooks_stop(void (*done)(void *ud), void *ud) {
  if (!W.started) {
    done(ud);
    return;
  }
  W.stopping = true;
  W.stop_done = done;
  W.stop_ud = ud;
  uv_timer_stop(&W.tick);
  uv_timer_stop(&W.sweep);
  uv_timer_start(&W.grace, on_grace, (uint64_t)bd_app.cfg.shutdown_grace_ms, 0);
  maybe_stopped();
}

void bd_webhooks_metrics(bd_buf_t *out) {
  bd_buf_printf(out,
                "# HELP batchd_webhook_deliveries_total Webhook delivery attempts by outcome (failed_attempt: to be "
                "retried; failed: given up).\n"
                "# TYPE batchd_webhook_deliveries_total counter\n"
                "batchd_webhook_deliveries_total{outcome=\"succeeded\"} %llu\n"
                "batchd_webhook_deliveries_total{outcome=\"failed_attempt\"} %llu\n"
                "batchd_webhook_deliveries_total{outcome=\"failed\"} %llu\n"
                "# HELP batchd_webhook_unrecorded_total Webhook attempts whose outcome could not be written (sent "
                "again after their lease).\n"
                "# TYPE batchd_webhook_unrecorded_total counter\nbatchd_webhook_unrecorded_total %llu\n"
                "# HELP batchd_webhook_endpoints_disabled_total Webhook endpoints this process disabled for failing.\n"
                "# TYPE batchd_webhook_endpoints_disabled_total counter\nbatchd_webhook_endpoints_disabled_total %llu\n"
                "# HELP batchd_webhook_deliveries_in_flight Webhook deliveries claimed by this process and not yet "
                "recorded.\n"
                "# TYPE batchd_webhook_deliveries_in_flight gauge\nbatchd_webhook_deliveries_in_flight %d\n",
                (unsigned long long)W.succeeded, (unsigned long long)W.failed_attempt, (unsigned long long)W.failed,
                (unsigned long long)W.unrecorded, (unsigned long long)W.disabled, W.inflight);
  if (!W.have_queue) return;
  double age = W.q_depth > 0 ? W.q_oldest_s + (double)(uv_now(bd_app.loop) - W.q_at) / 1000.0 : 0;
  bd_buf_printf(out,
                "# HELP batchd_webhook_queue_depth Pending webhook deliveries of active endpoints (every process; "
                "as of the last sweep, at most 10 s old).\n"
                "# TYPE batchd_webhook_queue_depth gauge\nbatchd_webhook_queue_depth %lld\n"
                "# HELP batchd_webhook_queue_due Of those, the ones due now.\n"
                "# TYPE batchd_webhook_queue_due gauge\nbatchd_webhook_queue_due %lld\n"
                "# HELP batchd_webhook_oldest_pending_age_seconds Age of the oldest pending webhook delivery.\n"
                "# TYPE batchd_webhook_oldest_pending_age_seconds gauge\nbatchd_webhook_oldest_pending_age_seconds "
                "%.3f\n",
                W.q_depth, W.q_due, age);
}

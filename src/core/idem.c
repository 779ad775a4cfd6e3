/* idem.c: the Idempotency-Key store in bd_idempotency. */
#include "idem.h"

#include "app.h"
#include "log.h"
#include "util.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>

#define LOCK_S 60         /* an in-flight key not renewed for this long is abandoned */
#define RENEW_MS 20000    /* streamed requests renew their lock this often */

/* Inserts the key as in flight, or takes over an expired or abandoned row;
 * when the key is live, returns the existing row instead. One round trip. */
static bd_pg_stmt_t S_BEGIN = BD_PG_STMT(
    "WITH ins AS ("
    "  INSERT INTO bd_idempotency AS t (credential, key, body_hash, state, locked_until, expires_at)"
    "  VALUES ($1, $2, $3, 'in_flight', now() + interval '60 seconds',"
    "          now() + make_interval(secs => $4::int))"
    "  ON CONFLICT (credential, key) DO UPDATE SET body_hash = EXCLUDED.body_hash, state = 'in_flight',"
    "    status = NULL, body = NULL, content_type = NULL, locked_until = EXCLUDED.locked_until,"
    "    expires_at = EXCLUDED.expires_at, created_at = now()"
    "  WHERE t.expires_at < now() OR (t.state = 'in_flight' AND t.locked_until < now())"
    "  RETURNING 'new'::text AS outcome)"
    " SELECT outcome, NULL, NULL::text, NULL::int, NULL::text, NULL::bytea FROM ins"
    " UNION ALL"
    " SELECT 'existing', body_hash, state, status, content_type, body FROM bd_idempotency"
    "  WHERE credential = $1 AND key = $2 AND NOT EXISTS (SELECT 1 FROM ins)");
static bd_pg_stmt_t S_STORE = BD_PG_STMT(
    "UPDATE bd_idempotency SET state = 'done', status = $3, content_type = $4, body = $5::bytea,"
    " locked_until = NULL WHERE credential = $1 AND key = $2");
static bd_pg_stmt_t S_FORGET = BD_PG_STMT(
    "DELETE FROM bd_idempotency WHERE credential = $1 AND key = $2 AND state = 'in_flight'");

typedef struct {
  char *cred;           /* credential id */
  char *key;            /* the client's key */
  char hash[65];        /* SHA-256 of the body */
  bd_handler_fn next;   /* the handler */
  int status;           /* response being stored */
  char *ctype;          /* its content type */
  bd_buf_t body;        /* its body */
  bool forgetting;      /* finish() is freeing the key (a 5xx), not storing */
  char *owner;          /* the row's owner for that (streamed requests), or NULL */
} idem_t;

static void idem_free(idem_t *m) {
  free(m->cred);
  free(m->key);
  free(m->owner);
  free(m->ctype);
  bd_buf_free(&m->body);
  free(m);
}

static void reply_bad_key(bd_req_t *req) {
  bd_resp_error(req, 400, "invalid_request", "Idempotency-Key must be 1-255 printable ASCII characters",
                "Idempotency-Key");
}

static bool key_ok(bd_str_t k) {
  if (k.len == 0 || k.len > 255) return false;
  for (size_t i = 0; i < k.len; i++)
    if ((unsigned char)k.p[i] < 0x21 || (unsigned char)k.p[i] > 0x7e) return false;
  return true;
}

/* --- keys to free later --------------------------------------------------------- */
/*
 * A 5xx frees its key so that the client's retry runs again. When that
 * DELETE fails too (the usual cause of the 5xx: the database is away), the
 * key would stay in flight until its lock expires (LOCK_S) and every retry
 * meanwhile would get 409. Such keys are kept here and the DELETE is
 * retried every FORGET_RETRY_MS until it works or the lock has expired on
 * its own; a process that exits first leaves them to the expiry.
 */
#define FORGET_RETRY_MS 500

typedef struct forget_s forget_t;
struct forget_s {
  forget_t *next;
  char *cred, *key, *owner; /* owner: NULL or the streamed request's row owner */
  uint64_t until_ms;        /* the lock has expired by then: nothing left to free */
};
static forget_t *g_forgets;      /* waiting */
static forget_t *g_forget_busy;  /* being tried */
static uv_timer_t g_forget_timer;
static bool g_forget_timer_init;

static void forget_free(forget_t *f) {
  free(f->cred);
  free(f->key);
  free(f->owner);
  free(f);
}

static void forget_try(uv_timer_t *t);

static void forget_arm(void) {
  if (!g_forget_timer_init) {
    uv_timer_init(bd_app.loop, &g_forget_timer);
    uv_unref((uv_handle_t *)&g_forget_timer); /* never keeps the process alive */
    g_forget_timer_init = true;
  }
  if (!uv_is_closing((uv_handle_t *)&g_forget_timer) && !uv_is_active((uv_handle_t *)&g_forget_timer))
    uv_timer_start(&g_forget_timer, forget_try, FORGET_RETRY_MS, 0);
}

static void on_forget_retried(void *ud, const bd_pg_result_t *r) {
  forget_t *f = ud;
  g_forget_busy = NULL;
  if (r->err == BD_PG_OK || bd_now_ms() >= f->until_ms) {
    if (r->err == BD_PG_OK) bd_info("idempotency: freed a key for %s after the database came back", f->cred);
    forget_free(f);
  } else {
    f->next = g_forgets;
    g_forgets = f;
  }
  if (g_forgets) forget_arm();
}

static bd_pg_stmt_t S_FORGET_OWNED;

static void forget_try(uv_timer_t *t) {
  (void)t;
  if (g_forget_busy || !g_forgets) return;
  forget_t *f = g_forgets;
  g_forgets = f->next;
  if (bd_now_ms() >= f->until_ms) {
    forget_free(f);
    if (g_forgets) forget_arm();
    return;
  }
  g_forget_busy = f;
  const char *p[] = {f->cred, f->key, f->owner};
  if (bd_pg_query(bd_app.pg, f->owner ? &S_FORGET_OWNED : &S_FORGET, f->owner ? 3 : 2, p, on_forget_retried, f) != 0) {
    bd_pg_result_t fake = {BD_PG_EUNAVAIL, NULL, "", "queue full"};
    on_forget_retried(f, &fake);
  }
}

static void forget_later(const idem_t *m) {
  forget_t *f = bd_calloc(1, sizeof *f);
  f->cred = bd_strdup(m->cred);
  f->key = bd_strdup(m->key);
  f->owner = m->owner ? bd_strdup(m->owner) : NULL;
  f->until_ms = bd_now_ms() + LOCK_S * 1000;
  f->next = g_forgets;
  g_forgets = f;
  forget_arm();
}

void bd_idem_shutdown(void) {
  while (g_forgets) {
    forget_t *f = g_forgets;
    g_forgets = f->next;
    forget_free(f);
  }
  if (g_forget_timer_init && !uv_is_closing((uv_handle_t *)&g_forget_timer))
    uv_close((uv_handle_t *)&g_forget_timer, NULL);
}

/* The stored response is now durable (or could not be stored): send it. */
static void on_stored(void *ud, const bd_pg_result_t *r) {
  bd_req_t *req = ud;
  idem_t *m = req->mw;
  if (r->err != BD_PG_OK && m->forgetting) {
    bd_warn("idempotency: could not free a key for %s (%s): retrying in the background", m->cred, r->message);
    forget_later(m);
  } else if (r->err != BD_PG_OK) {
    bd_warn("idempotency: could not store the response of key for %s: %s", m->cred, r->message);
  }
  req->mw = NULL;
  bd_resp_send(req, m->status, m->ctype, m->body.data ? m->body.data : "", m->body.len);
  idem_free(m);
  bd_req_release(req);
}

/* Stores (status < 500) or forgets (5xx) the response of the key held by
 * m, then sends it; m is freed after. `owner` (may be NULL) restricts the
 * write to the row this request holds (streamed requests, whose lock may
 * have been taken over). */
static bd_pg_stmt_t S_STORE_OWNED = BD_PG_STMT(
    "UPDATE bd_idempotency SET state = 'done', body_hash = $6, status = $3, content_type = $4,"
    " body = $5::bytea, locked_until = NULL"
    " WHERE credential = $1 AND key = $2 AND state = 'in_flight' AND body_hash = $7");
static bd_pg_stmt_t S_FORGET_OWNED = BD_PG_STMT(
    "DELETE FROM bd_idempotency WHERE credential = $1 AND key = $2 AND state = 'in_flight'"
    " AND body_hash = $3");

/* bytea input in hex form keeps any body byte-exact */
static void bytea_hex(bd_buf_t *hex, const char *body, size_t len) {
  bd_buf_reserve(hex, 2 + 2 * len);
  bd_buf_puts(hex, "\\x");
  bd_hex_encode(hex->data + 2, body, len);
  hex->len = 2 + 2 * len;
  hex->data[hex->len] = '\0';
}

static void finish(bd_req_t *req, idem_t *m, const char *owner, bool forget, int status, const char *ctype,
                   const char *body, size_t len) {
  req->mw = m;
  m->status = status;
  m->ctype = bd_strdup(ctype ? ctype : "application/octet-stream");
  bd_buf_append(&m->body, body, len);
  int rc;
  m->forgetting = forget;
  if (owner && !m->owner) m->owner = bd_strdup(owner);
  if (forget) {
    /* not a result: free the key so a retry runs again */
    const char *p[] = {m->cred, m->key, owner};
    rc = bd_pg_query(bd_app.pg, owner ? &S_FORGET_OWNED : &S_FORGET, owner ? 3 : 2, p, on_stored, req);
  } else {
    char st[16];
    snprintf(st, sizeof st, "%d", status);
    bd_buf_t hex = BD_BUF_INIT;
    bytea_hex(&hex, body, len);
    const char *p[] = {m->cred, m->key, st, m->ctype, hex.data, m->hash, owner};
    rc = bd_pg_query(bd_app.pg, owner ? &S_STORE_OWNED : &S_STORE, owner ? 7 : 5, p, on_stored, req);
    bd_buf_free(&hex);
  }
  bd_req_hold(req);
  if (rc != 0) {
    bd_pg_result_t fake = {BD_PG_EUNAVAIL, NULL, "", "queue full"};
    on_stored(req, &fake);
  }
}

static void on_respond(bd_req_t *req, int status, const char *ctype, const char *body, size_t len) {
  finish(req, req->mw, NULL, status >= 500, status, ctype, body, len);
}

static void reply_in_flight(bd_req_t *req) {
  bd_resp_error(req, 409, "idempotency_request_in_progress",
                "A request with this Idempotency-Key is still being processed", "Idempotency-Key");
}

static void reply_reused(bd_req_t *req) {
  bd_resp_error(req, 422, "idempotency_key_reused",
                "This Idempotency-Key was already used with a different request body", "Idempotency-Key");
}

/* Takes the key (S_BEGIN) with `hash` as the row's body hash (a streamed
 * request's owner placeholder); cb gets the answer, also a refusal of a full
 * queue, with the request held. */
static void send_begin(bd_req_t *req, const char *cred, const char *key, const char *hash, bd_pg_cb cb) {
  char ttl[24];
  snprintf(ttl, sizeof ttl, "%lld", (long long)bd_app.cfg.idempotency_ttl_s);
  const char *p[] = {cred, key, hash, ttl};
  bd_req_hold(req);
  if (bd_pg_query(bd_app.pg, &S_BEGIN, 4, p, cb, req) != 0) {
    bd_pg_result_t fake = {BD_PG_EUNAVAIL, NULL, "", "queue full"};
    cb(req, &fake);
  }
}

static void on_begin(void *ud, const bd_pg_result_t *r) {
  bd_req_t *req = ud;
  idem_t *m = req->mw;
  if (r->err != BD_PG_OK) {
    req->mw = NULL;
    idem_free(m);
    bd_app_db_error(req, r);
    bd_req_release(req);
    return;
  }
  const char *outcome = PQgetvalue(r->res, 0, 0);
  if (!strcmp(outcome, "new")) {
    req->on_respond = on_respond;
    m->next(req);
    bd_req_release(req);
    return;
  }
  req->mw = NULL;
  const char *hash = PQgetvalue(r->res, 0, 1);
  const char *state = PQgetvalue(r->res, 0, 2);
  /* in flight first: its hash may be a streamed request's placeholder */
  if (strcmp(state, "done") != 0) {
    reply_in_flight(req);
  } else if (strcmp(hash, m->hash) != 0) {
    reply_reused(req);
  } else {
    int status = atoi(PQgetvalue(r->res, 0, 3));
    size_t n = 0;
    unsigned char *body = PQunescapeBytea((const unsigned char *)PQgetvalue(r->res, 0, 5), &n);
    bd_resp_header(req, "Idempotent-Replayed", "true");
    bd_resp_send(req, status, PQgetvalue(r->res, 0, 4), (const char *)body, n);
    PQfreemem(body);
  }
  idem_free(m);
  bd_req_release(req);
}

void bd_idem_wrap(bd_req_t *req, const char *cred, bd_handler_fn next) {
  bd_str_t key = bd_req_header(req, "Idempotency-Key");
  if (req->method != HTTP_POST || key.p == NULL) {
    next(req);
    return;
  }
  if (!key_ok(key)) {
    reply_bad_key(req);
    return;
  }
  idem_t *m = bd_calloc(1, sizeof *m);
  m->cred = bd_strdup(cred);
  m->key = bd_strndup(key.p, key.len);
  m->next = next;
  /* the method and path are part of what must match, not just the body */
  bd_buf_t h = BD_BUF_INIT;
  bd_buf_append(&h, req->path.p, req->path.len);
  bd_buf_putc(&h, '\n');
  if (req->body.len) bd_buf_append(&h, req->body.data, req->body.len);
  bd_sha256_hex(m->hash, h.data, h.len);
  bd_buf_free(&h);
  req->mw = m;
  send_begin(req, m->cred, m->key, m->hash, on_begin);
}

/* --- streamed bodies ------------------------------------------------------------- */

struct bd_idem_stream {
  bd_req_t *req;                 /* the request (valid while s lives) */
  char *cred;                    /* credential id */
  char *key;                     /* the client's key */
  char owner[72];                /* "stream:<random>": body_hash of our in-flight row */
  crypto_hash_sha256_state sha;  /* path + "\n" + body so far */
  char hash[65];                 /* the final hash (body_end) */
  bool body_done;                /* hash is final */
  int mode;                      /* BD_IDEM_PROCEED or BD_IDEM_REPLAY once known, -1 before */
  bool stored;                   /* mark_done wrote the result in the caller's transaction */
  bd_idem_stream_cb cb;          /* outcome */
  uv_timer_t *renew;             /* lock renewal (PROCEED only) */
  char *r_hash;                  /* REPLAY: the stored request's hash */
  int r_status;                  /* … its status */
  char *r_ctype;                 /* … content type */
  unsigned char *r_body;         /* … body (PQunescapeBytea, PQfreemem) */
  size_t r_len;                  /* … length */
};

static bd_pg_stmt_t S_RENEW = BD_PG_STMT(
    "UPDATE bd_idempotency SET locked_until = now() + interval '60 seconds'"
    " WHERE credential = $1 AND key = $2 AND state = 'in_flight' AND body_hash = $3");

static void on_renewed(void *ud, const bd_pg_result_t *r) {
  (void)ud; /* fire and forget: a failed renewal is found at mark_done */
  if (r->err != BD_PG_OK) bd_warn("idempotency: lock renewal failed: %s", r->message);
}

static void renew_tick(uv_timer_t *t) {
  bd_idem_stream_t *s = t->data;
  const char *p[] = {s->cred, s->key, s->owner};
  if (bd_pg_query(bd_app.pg, &S_RENEW, 3, p, on_renewed, NULL) != 0)
    bd_warn("idempotency: lock renewal not sent (queue full)");
}

static void renew_closed(uv_handle_t *h) { free(h); }

static void renew_stop(bd_idem_stream_t *s) {
  if (!s->renew) return;
  uv_close((uv_handle_t *)s->renew, renew_closed);
  s->renew = NULL;
}

static void on_stream_begin(void *ud, const bd_pg_result_t *r) {
  bd_req_t *req = ud;
  bd_idem_stream_t *s = req->mw;
  req->mw = NULL;
  if (bd_req_gone(req)) {
    /* nobody will answer: give back a key we may just have taken */
    if (r->err == BD_PG_OK && !strcmp(PQgetvalue(r->res, 0, 0), "new")) {
      const char *p[] = {s->cred, s->key, s->owner};
      if (bd_pg_query(bd_app.pg, &S_FORGET_OWNED, 3, p, on_renewed, NULL) != 0)
        bd_warn("idempotency: could not free the key of a request whose client left");
    }
    s->cb(req, s, BD_IDEM_ANSWERED);
    bd_req_release(req);
    return;
  }
  if (r->err != BD_PG_OK) {
    bd_app_db_error(req, r);
    s->cb(req, s, BD_IDEM_ANSWERED);
  } else if (!strcmp(PQgetvalue(r->res, 0, 0), "new")) {
    s->mode = BD_IDEM_PROCEED;
    s->renew = bd_malloc(sizeof *s->renew);
    uv_timer_init(bd_app.loop, s->renew);
    s->renew->data = s;
    uv_timer_start(s->renew, renew_tick, RENEW_MS, RENEW_MS);
    s->cb(req, s, BD_IDEM_PROCEED);
  } else if (strcmp(PQgetvalue(r->res, 0, 2), "done") != 0) {
    reply_in_flight(req);
    s->cb(req, s, BD_IDEM_ANSWERED);
  } else {
    s->mode = BD_IDEM_REPLAY;
    s->r_hash = bd_strdup(PQgetvalue(r->res, 0, 1));
    s->r_status = atoi(PQgetvalue(r->res, 0, 3));
    s->r_ctype = bd_strdup(PQgetvalue(r->res, 0, 4));
    s->r_body = PQunescapeBytea((const unsigned char *)PQgetvalue(r->res, 0, 5), &s->r_len);
    s->cb(req, s, BD_IDEM_REPLAY);
  }
  bd_req_release(req);
}

int bd_idem_stream_begin(bd_req_t *req, const char *cred, bd_idem_stream_cb cb, bd_idem_stream_t **out) {
  *out = NULL;
  bd_str_t key = bd_req_header(req, "Idempotency-Key");
  if (req->method != HTTP_POST || key.p == NULL) return 0;
  if (!key_ok(key)) {
    reply_bad_key(req);
    return -1;
  }
  bd_idem_stream_t *s = bd_calloc(1, sizeof *s);
  s->req = req;
  s->cred = bd_strdup(cred);
  s->key = bd_strndup(key.p, key.len);
  s->cb = cb;
  s->mode = -1;
  uint8_t rnd[16];
  randombytes_buf(rnd, sizeof rnd);
  memcpy(s->owner, "stream:", 7);
  bd_hex_encode(s->owner + 7, (const char *)rnd, sizeof rnd);
  s->owner[7 + 2 * sizeof rnd] = '\0';
  crypto_hash_sha256_init(&s->sha);
  crypto_hash_sha256_update(&s->sha, (const unsigned char *)req->path.p, req->path.len);
  crypto_hash_sha256_update(&s->sha, (const unsigned char *)"\n", 1);
  *out = s;
  req->mw = s;
  send_begin(req, s->cred, s->key, s->owner, on_stream_begin);
  return 1;
}

void bd_idem_stream_body(bd_idem_stream_t *s, const char *p, size_t n) {
  if (s && n && !s->body_done) crypto_hash_sha256_update(&s->sha, (const unsigned char *)p, n);
}

void bd_idem_stream_body_end(bd_idem_stream_t *s) {
  if (!s || s->body_done) return;
  unsigned char h[crypto_hash_sha256_BYTES];
  crypto_hash_sha256_final(&s->sha, h);
  bd_hex_encode(s->hash, (const char *)h, sizeof h);
  s->hash[64] = '\0';
  s->body_done = true;
}

void bd_idem_stream_replay(bd_req_t *req, bd_idem_stream_t *s) {
  bd_idem_stream_body_end(s);
  if (strcmp(s->hash, s->r_hash) != 0) {
    reply_reused(req);
    return;
  }
  bd_resp_header(req, "Idempotent-Replayed", "true");
  bd_resp_send(req, s->r_status, s->r_ctype, (const char *)s->r_body, s->r_len);
}

void bd_idem_stream_respond(bd_req_t *req, bd_idem_stream_t *s, int status, const char *ctype,
                            const char *body, size_t len) {
  if (!s || s->mode != BD_IDEM_PROCEED || (s->stored && status < 500)) {
    if (s) renew_stop(s);
    bd_resp_send(req, status, ctype, body, len);
    return;
  }
  renew_stop(s);
  s->mode = -1; /* answered: a second response (none should come) is sent plainly */
  idem_t *m = bd_calloc(1, sizeof *m);
  m->cred = bd_strdup(s->cred);
  m->key = bd_strndup(s->key, strlen(s->key));
  memcpy(m->hash, s->hash, sizeof m->hash);
  bool forget = status >= 500 || status == 499 || !s->body_done || bd_req_gone(req);
  finish(req, m, s->owner, forget, status, ctype, body, len);
}

int bd_idem_stream_mark_done(bd_idem_stream_t *s, bd_pg_conn_t *c, int status, const char *ctype,
                             const char *body, size_t len, bd_pg_cb cb, void *ud) {
  bd_idem_stream_body_end(s);
  s->stored = true;
  char st[16];
  snprintf(st, sizeof st, "%d", status);
  bd_buf_t hex = BD_BUF_INIT;
  bytea_hex(&hex, body, len);
  const char *p[] = {s->cred, s->key, st, ctype, hex.data, s->hash, s->owner};
  int rc = bd_pg_conn_query(c, &S_STORE_OWNED, 7, p, cb, ud);
  bd_buf_free(&hex);
  return rc;
}

void bd_idem_stream_free(bd_idem_stream_t *s) {
  if (!s) return;
  renew_stop(s);
  if (s->req && s->req->mw == s) s->req->mw = NULL;
  free(s->cred);
  free(s->key);
  free(s->r_hash);
  free(s->r_ctype);
  if (s->r_body) PQfreemem(s->r_body);
  free(s);
}

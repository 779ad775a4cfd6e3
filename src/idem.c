/* idem.c: the Idempotency-Key store in bd_idempotency. */
#include "idem.h"

#include "app.h"
#include "log.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>

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
} idem_t;

static void idem_free(idem_t *m) {
  free(m->cred);
  free(m->key);
  free(m->ctype);
  bd_buf_free(&m->body);
  free(m);
}

static bool key_ok(bd_str_t k) {
  if (k.len == 0 || k.len > 255) return false;
  for (size_t i = 0; i < k.len; i++)
    if ((unsigned char)k.p[i] < 0x21 || (unsigned char)k.p[i] > 0x7e) return false;
  return true;
}

/* The stored response is now durable (or could not be stored): send it. */
static void on_stored(void *ud, const bd_pg_result_t *r) {
  bd_req_t *req = ud;
  idem_t *m = req->mw;
  if (r->err != BD_PG_OK)
    bd_warn("idempotency: could not store the response of key for %s: %s", m->cred, r->message);
  req->mw = NULL;
  bd_resp_send(req, m->status, m->ctype, m->body.data ? m->body.data : "", m->body.len);
  idem_free(m);
  bd_req_release(req);
}

static void on_respond(bd_req_t *req, int status, const char *ctype, const char *body, size_t len) {
  idem_t *m = req->mw;
  m->status = status;
  m->ctype = bd_strdup(ctype ? ctype : "application/octet-stream");
  bd_buf_append(&m->body, body, len);
  int rc;
  if (status >= 500) {
    /* not a result: free the key so a retry runs again */
    const char *p[] = {m->cred, m->key};
    rc = bd_pg_query(bd_app.pg, &S_FORGET, 2, p, on_stored, req);
  } else {
    char st[16];
    snprintf(st, sizeof st, "%d", status);
    /* bytea input in hex form keeps any body byte-exact */
    bd_buf_t hex = BD_BUF_INIT;
    bd_buf_reserve(&hex, 2 + 2 * len);
    bd_buf_puts(&hex, "\\x");
    bd_hex_encode(hex.data + 2, body, len);
    hex.len = 2 + 2 * len;
    const char *p[] = {m->cred, m->key, st, m->ctype, hex.data};
    rc = bd_pg_query(bd_app.pg, &S_STORE, 5, p, on_stored, req);
    bd_buf_free(&hex);
  }
  bd_req_hold(req);
  if (rc != 0) {
    bd_pg_result_t fake = {BD_PG_EUNAVAIL, NULL, "", "queue full"};
    on_stored(req, &fake);
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
  if (strcmp(hash, m->hash) != 0) {
    bd_resp_error(req, 422, "idempotency_key_reused",
                  "This Idempotency-Key was already used with a different request body", "Idempotency-Key");
  } else if (strcmp(state, "done") != 0) {
    bd_resp_error(req, 409, "idempotency_request_in_progress",
                  "A request with this Idempotency-Key is still being processed", "Idempotency-Key");
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
    bd_resp_error(req, 400, "invalid_request", "Idempotency-Key must be 1-255 printable ASCII characters",
                  "Idempotency-Key");
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
  char ttl[24];
  snprintf(ttl, sizeof ttl, "%lld", (long long)bd_app.cfg.idempotency_ttl_s);
  const char *p[] = {m->cred, m->key, m->hash, ttl};
  bd_req_hold(req);
  if (bd_pg_query(bd_app.pg, &S_BEGIN, 4, p, on_begin, req) != 0) {
    bd_pg_result_t fake = {BD_PG_EUNAVAIL, NULL, "", "queue full"};
    on_begin(req, &fake);
  }
}

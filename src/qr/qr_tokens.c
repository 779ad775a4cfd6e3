/* qr_tokens.c: QRKit's token API, every route needing tokens:manage.
 *
 *   POST   /v1/tokens          a new key; 201 with the api_key object and
 *                              `key`, the full secret token (only here)
 *   GET    /v1/tokens          the workspace's keys that still authenticate
 *                              (revoked and expired ones are not listed),
 *                              newest first, paged as GET /v1/qr-codes is
 *                              (limit, opaque cursor); never a secret
 *   POST   /v1/tokens/rotate   a successor with the same name, scopes,
 *                              environment and expires_at (201, with its
 *                              `key`); the old key works grace_period_seconds
 *                              longer, then ends
 *   DELETE /v1/tokens/{id}     revokes at once: 200 {id, object, deleted}
 *                              as DELETE /v1/qr-codes/{id} answers
 *
 * The api_key object (qr_api_key_json, 013_qr_tokens): id "key_<id>",
 * object, name, key_prefix (the token up to its secret), environment
 * (live/test), scopes, last_used_at, expires_at, created_at. expires_at is
 * when the key stops working: the sooner of its expiry and, for a rotated
 * key in its grace period, the end of that period.
 *
 * Who may do what: a key grants only scopes it holds itself (creating or
 * rotating a key with more is 403 insufficient_scope), a test key creates
 * and sees only test keys (environment "live" from a test key is 403)
 * while a live key manages both environments of its workspace, and every
 * key belongs to the caller's workspace: another workspace's key, a
 * revoked one or an expired one is 404. Rotation never lengthens a key's
 * life: its revoked_at becomes the sooner of the one it had (a rotation
 * already under way) and now + grace. A key may revoke or rotate itself.
 *
 * Revocation reaches every process through 012's trigger (NOTIFY
 * bd_credentials "qr:<id>", qr_common.c's key cache); the process that
 * revoked or rotated drops its own entry at once (qr_key_forget).
 *
 * Secrets: only SHA-256 of a secret is stored (bd_token_generate); the
 * token is spliced into the response here and never sent to the database,
 * except that an Idempotency-Key makes bd_idem store the 201 (secret
 * included) so that a retry gets the same key: for BATCHD_IDEMPOTENCY_TTL_S
 * whoever can read bd_idempotency can read it; leave the header out to
 * avoid that. Loop thread only.
 */
#include "app.h"
#include "auth.h"
#include "json.h"
#include "qr_api.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>

#define TOKEN_NAME_MAX 200
#define GRACE_MAX_S (30 * 24 * 3600) /* grace_period_seconds at most 30 days */

/* --- shared -------------------------------------------------------------------------- */

/* Sends a 201 whose body is the api_key object of column 0 of r with
 * "key": token added (the object is jsonb text: it ends with '}'). */
static void send_with_key(bd_req_t *req, const PGresult *res, const char *token) {
  const char *obj = PQgetvalue(res, 0, 0);
  size_t n = (size_t)PQgetlength(res, 0, 0);
  while (n && obj[n - 1] != '}') n--;
  if (n < 2) {
    qr_error(req, 500, "internal_error", "the key could not be described", NULL);
    return;
  }
  bd_buf_t b = BD_BUF_INIT;
  bd_buf_append(&b, obj, n - 1);
  bd_buf_puts(&b, ", \"key\": ");
  bd_jw_t w;
  bd_jw_init(&w, &b);
  bd_jw_str(&w, token);
  bd_buf_putc(&b, '}');
  bd_resp_send(req, 201, "application/json; charset=utf-8", b.data, b.len);
  bd_buf_free(&b);
}

/* The caller may grant `bits` (a subset of its own scopes); false: answered 403. */
static bool may_grant(bd_req_t *req, uint32_t bits) {
  qr_ctx_t *c = req->ctx;
  uint32_t extra = bits & ~c->scopes;
  if (!extra) return true;
  bd_buf_t names = BD_BUF_INIT, msg = BD_BUF_INIT;
  qr_scopes_literal(&names, extra);
  /* {a,b} → a, b */
  bd_buf_printf(&msg, "This API key cannot grant scopes it does not hold: %.*s", (int)names.len - 2,
                names.data + 1);
  qr_error(req, 403, "insufficient_scope", msg.data, "scopes");
  bd_buf_free(&names);
  bd_buf_free(&msg);
  return false;
}

/* A "key_<id>" string as the bare id (NULL when it is not one). */
static const char *bare_key_id(const char *s) {
  if (!s || strncmp(s, "key_", 4)) return NULL;
  size_t n = strlen(s + 4);
  if (n == 0 || n > BD_TOKEN_ID_LEN) return NULL;
  return s + 4;
}

/* --- POST /v1/tokens ------------------------------------------------------------------ */

static bd_pg_stmt_t S_CREATE = BD_PG_STMT(
    "WITH k AS (INSERT INTO qr_api_keys (id, workspace_id, mode, scopes, secret_hash, name, expires_at)"
    " VALUES ($1, $2::bigint, $3, $4::text[], $5, $6, $7::timestamptz) RETURNING *)"
    " SELECT qr_api_key_json(k)::text FROM k");

typedef struct {
  bd_token_t tok;  /* the new key */
  char old[16];    /* rotate: the key replaced (its cache entry is dropped) */
} token_state_t;

static void on_token_made(void *ud, const bd_pg_result_t *r) {
  bd_req_t *req = ud;
  qr_ctx_t *c = req->ctx;
  token_state_t *t = c->extra;
  if (r->err) {
    bd_app_db_error(req, r);
  } else if (PQntuples(r->res) == 0 || PQgetisnull(r->res, 0, 0)) {
    /* rotate: the key exists but holds scopes the caller does not (the
     * statement inserted nothing) */
    qr_error(req, 403, "insufficient_scope", "This API key cannot rotate a key with scopes it does not hold",
             "id");
  } else {
    if (t->old[0]) qr_key_forget(t->old);
    send_with_key(req, r->res, t->tok.token);
  }
  bd_req_release(req);
}

/* Reads the body's scopes into *bits; false: answered 400. */
static bool parse_scope_list(bd_req_t *req, json_t *sc, uint32_t *bits) {
  if (!json_is_array(sc) || json_array_size(sc) == 0) {
    qr_error(req, 400, "invalid_request",
             "scopes is required: a non-empty array of qr:read, qr:write, analytics:read, tokens:manage",
             "scopes");
    return false;
  }
  *bits = 0;
  size_t i;
  json_t *v;
  json_array_foreach(sc, i, v) {
    uint32_t b = json_is_string(v) ? qr_scope_bit(json_string_value(v)) : 0;
    if (!b) {
      char msg[200];
      snprintf(msg, sizeof msg, "scopes[%zu] is not one of qr:read, qr:write, analytics:read, tokens:manage", i);
      qr_error(req, 400, "invalid_request", msg, "scopes");
      return false;
    }
    *bits |= b;
  }
  return true;
}

static void create_token(bd_req_t *req) {
  qr_ctx_t *c = req->ctx;
  if (!qr_parse_body(req)) return;
  json_t *body = c->body;
  json_t *name = json_object_get(body, "name");
  if (!json_is_string(name) || json_string_length(name) == 0 || json_string_length(name) > TOKEN_NAME_MAX) {
    qr_error(req, 400, "invalid_request", "name is required: a string of 1-200 characters", "name");
    return;
  }
  uint32_t bits;
  if (!parse_scope_list(req, json_object_get(body, "scopes"), &bits)) return;
  bool live = c->live;
  json_t *env = json_object_get(body, "environment");
  if (env && !json_is_null(env)) {
    const char *e = json_string_value(env);
    if (!e || (strcmp(e, "live") && strcmp(e, "test"))) {
      qr_error(req, 400, "invalid_request", "environment must be live or test", "environment");
      return;
    }
    live = !strcmp(e, "live");
  }
  char expires[32] = "";
  json_t *exp = json_object_get(body, "expires_at");
  if (exp && !json_is_null(exp)) {
    int64_t us;
    if (!json_is_string(exp) || !bd_time_parse(json_string_value(exp), &us)) {
      qr_error(req, 400, "invalid_request",
               "expires_at must be an ISO 8601 timestamp with a time zone (2030-01-31T00:00:00Z)", "expires_at");
      return;
    }
    if (us <= bd_wall_us()) {
      qr_error(req, 400, "invalid_request", "expires_at must be in the future", "expires_at");
      return;
    }
    bd_time_fmt(expires, us, true);
    if (!expires[0]) {
      qr_error(req, 400, "invalid_request", "expires_at is out of range", "expires_at");
      return;
    }
  }
  if (live && !c->live) {
    qr_error(req, 403, "permission_denied", "A test key can create only test keys", "environment");
    return;
  }
  if (!may_grant(req, bits)) return;
  token_state_t *t = bd_req_calloc(req, sizeof *t);
  c->extra = t;
  bd_token_generate(live ? "qr_live_" : "qr_test_", &t->tok);
  bd_buf_t scopes = BD_BUF_INIT;
  qr_scopes_literal(&scopes, bits);
  qr_ws_params(c);
  const char *p[] = {t->tok.id, c->ws_s, live ? "live" : "test", scopes.data, t->tok.secret_hash,
                     json_string_value(name), expires[0] ? expires : NULL};
  bd_app_query(req, &S_CREATE, 7, p, on_token_made, req);
  bd_buf_free(&scopes);
}

/* --- GET /v1/tokens -------------------------------------------------------------------- */

/* Keyset pagination on (created_at, id), newest first, as S_LIST_CODES. A
 * live key sees both environments, a test key the test keys ($2). */
static bd_pg_stmt_t S_LIST = BD_PG_STMT(
    "WITH page AS (SELECT * FROM qr_api_keys WHERE workspace_id = $1::bigint AND ($2::text = 'live' OR mode = $2)"
    " AND bd_credential_live(revoked_at, expires_at)"
    " AND ($3::text IS NULL OR (created_at, id) < (left($3, length($3) - strpos(reverse($3), '|'))::timestamptz,"
    "   right($3, strpos(reverse($3), '|') - 1)))"
    " ORDER BY created_at DESC, id DESC LIMIT $4::int + 1),"
    " lim AS (SELECT * FROM page ORDER BY created_at DESC, id DESC LIMIT $4::int)"
    " SELECT jsonb_build_object('object', 'list',"
    "  'data', coalesce((SELECT jsonb_agg(qr_api_key_json(l) ORDER BY l.created_at DESC, l.id DESC) FROM lim l),"
    "   '[]'),"
    "  'has_more', (SELECT count(*) FROM page) > $4::int,"
    "  'next_cursor', CASE WHEN (SELECT count(*) FROM page) > $4::int THEN"
    "    (SELECT to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') || '|' || id"
    "     FROM lim ORDER BY created_at ASC, id ASC LIMIT 1) END)::text");

static void list_tokens(bd_req_t *req) {
  qr_ctx_t *c = req->ctx;
  char limit[8];
  bool has_cursor;
  if (!qr_page_params(req, limit, &c->scratch, &has_cursor, QR_KEY_TIME)) return;
  qr_ws_params(c);
  const char *p[] = {c->ws_s, c->mode_s, has_cursor ? c->scratch.data : NULL, limit};
  bd_app_query(req, &S_LIST, 4, p, qr_on_list, req);
}

/* --- POST /v1/tokens/rotate ---------------------------------------------------------------- */

/* One statement: the old key (live, the caller's workspace and
 * environment rule), its successor when the caller holds every scope of
 * it ($6), and the old key's end. No row: 404; a row with NULL: 403. */
static bd_pg_stmt_t S_ROTATE = BD_PG_STMT(
    "WITH old AS (SELECT * FROM qr_api_keys WHERE id = $1 AND workspace_id = $2::bigint"
    "  AND ($3::text = 'live' OR mode = $3) AND bd_credential_live(revoked_at, expires_at) FOR UPDATE),"
    " ins AS (INSERT INTO qr_api_keys (id, workspace_id, mode, scopes, secret_hash, name, expires_at)"
    "  SELECT $4, workspace_id, mode, scopes, $5, name, expires_at FROM old WHERE scopes <@ $6::text[] RETURNING *),"
    " upd AS (UPDATE qr_api_keys k SET revoked_at = least(k.revoked_at, now() + make_interval(secs => $7::int)),"
    "  rotated_to = $4 WHERE k.id IN (SELECT id FROM old) AND EXISTS (SELECT 1 FROM ins) RETURNING k.id)"
    " SELECT (SELECT qr_api_key_json(ins)::text FROM ins), old.mode, (SELECT count(*) FROM upd) FROM old");

static void on_rotated(void *ud, const bd_pg_result_t *r) {
  bd_req_t *req = ud;
  qr_ctx_t *c = req->ctx;
  token_state_t *t = c->extra;
  if (!r->err && PQntuples(r->res) == 0) {
    qr_error(req, 404, "not_found", "No such API key", "id");
    bd_req_release(req);
    return;
  }
  /* the successor is in the old key's environment (a live caller may
   * rotate a test key): both prefixes are 8 bytes, and the id and secret
   * do not depend on the prefix */
  if (!r->err) memcpy(t->tok.token, strcmp(PQgetvalue(r->res, 0, 1), "live") ? "qr_test_" : "qr_live_", 8);
  on_token_made(ud, r); /* releases */
}

static void rotate_token(bd_req_t *req) {
  qr_ctx_t *c = req->ctx;
  if (!qr_parse_body(req)) return;
  json_t *idv = json_object_get(c->body, "id");
  if (!json_is_string(idv) || strncmp(json_string_value(idv), "key_", 4)) {
    qr_error(req, 400, "invalid_request", "id is required: the key_... id of the key to rotate", "id");
    return;
  }
  const char *id = bare_key_id(json_string_value(idv));
  if (!id) {
    qr_error(req, 404, "not_found", "No such API key", "id");
    return;
  }
  json_int_t grace = 0;
  json_t *g = json_object_get(c->body, "grace_period_seconds");
  if (g && !json_is_null(g)) {
    if (!json_is_integer(g) || json_integer_value(g) < 0 || json_integer_value(g) > GRACE_MAX_S) {
      qr_error(req, 400, "invalid_request", "grace_period_seconds must be an integer from 0 to 2592000 (30 days)",
               "grace_period_seconds");
      return;
    }
    grace = json_integer_value(g);
  }
  token_state_t *t = bd_req_calloc(req, sizeof *t);
  c->extra = t;
  snprintf(t->old, sizeof t->old, "%s", id);
  bd_token_generate("qr_live_", &t->tok); /* the prefix is set by on_rotated */
  bd_buf_t scopes = BD_BUF_INIT;
  qr_scopes_literal(&scopes, c->scopes);
  char grace_s[24];
  snprintf(grace_s, sizeof grace_s, "%lld", (long long)grace);
  qr_ws_params(c);
  const char *p[] = {id, c->ws_s, c->mode_s, t->tok.id, t->tok.secret_hash, scopes.data, grace_s};
  bd_app_query(req, &S_ROTATE, 7, p, on_rotated, req);
  bd_buf_free(&scopes);
}

/* --- DELETE /v1/tokens/{id} ------------------------------------------------------------------ */

static bd_pg_stmt_t S_REVOKE = BD_PG_STMT(
    "UPDATE qr_api_keys SET revoked_at = now() WHERE id = $1 AND workspace_id = $2::bigint"
    " AND ($3::text = 'live' OR mode = $3) AND bd_credential_live(revoked_at, expires_at)"
    " RETURNING jsonb_build_object('id', 'key_' || id, 'object', 'api_key', 'deleted', true)::text, id");

static void on_revoked(void *ud, const bd_pg_result_t *r) {
  bd_req_t *req = ud;
  if (!r->err && PQntuples(r->res) == 1) qr_key_forget(PQgetvalue(r->res, 0, 1));
  qr_send_json_row(req, r, 200, "API key");
  bd_req_release(req);
}

static void delete_token(bd_req_t *req) {
  qr_ctx_t *c = req->ctx;
  const char *id = bare_key_id(bd_req_param(req, 0));
  if (!id) {
    qr_error(req, 404, "not_found", "No such API key", NULL);
    return;
  }
  qr_ws_params(c);
  const char *p[] = {id, c->ws_s, c->mode_s};
  bd_app_query(req, &S_REVOKE, 3, p, on_revoked, req);
}

/* --- handlers with auth ------------------------------------------------------------------------ */

void qr_h_create_token(bd_req_t *req) { qr_entry_scope(req, QR_SCOPE_TOKENS, create_token); }
void qr_h_list_tokens(bd_req_t *req) { qr_entry_scope(req, QR_SCOPE_TOKENS, list_tokens); }
void qr_h_rotate_token(bd_req_t *req) { qr_entry_scope(req, QR_SCOPE_TOKENS, rotate_token); }
void qr_h_delete_token(bd_req_t *req) { qr_entry_scope(req, QR_SCOPE_TOKENS, delete_token); }

/* qr_api.h: the /v1 surface's private header (QRKit-compatible): the
 * helpers of qr_common.c, shared by qr_batches.c, qr_codes.c, qr_tokens.c
 * and qr_webhooks.c, then the handlers and hooks that qr_surface.c wires up.
 * Loop thread only. */
#ifndef BD_QR_API_H
#define BD_QR_API_H

#include "admin.h"
#include "http.h"
#include "pg.h"
#include "qr.h"

#include <jansson.h>

/* Per-request state of a /v1 call (req->ctx), freed with the request. */
typedef struct {
  int64_t ws;                 /* workspace of the key */
  bool live;                  /* live or test key */
  uint32_t scopes;            /* granted scopes */
  uint32_t need;              /* scope the route needs */
  char key_id[16];            /* public id of the key */
  char secret[40];            /* presented secret (checked, never logged) */
  uint64_t key_seq;           /* credential notifications seen when its lookup was sent */
  uint64_t key_sent_ms;       /* when that lookup was sent (monotonic) */
  bd_handler_fn next;         /* handler after auth */
  json_t *body;               /* parsed JSON body */
  bd_qr_design_t *design;     /* parsed design */
  bd_buf_t scratch;           /* handler scratch */
  int ok_status;              /* status of qr_query_json's success */
  const char *what;           /* noun for its 404 */
  char ws_s[24];              /* ws as text (query parameter) */
  char mode_s[8];             /* "live"/"test" */
  void *extra;                /* handler-specific state */
  bd_handler_fn next_design;  /* qr_with_design's continuation */
} qr_ctx_t;

/* One validated item of a batch or a single create. */
typedef struct {
  char id[32];                /* qr_… or sqr_… */
  const char *kind;           /* "dynamic" / "static" */
  const char *type;           /* url, text, email, sms, phone, wifi, event, vcard (NULL if unknown) */
  const char *name;           /* borrowed from the request */
  char short_code[16];        /* dynamic codes */
  json_t *target;             /* borrowed */
  const char *folder_id;      /* borrowed, may be NULL */
  json_t *tags;               /* borrowed array, may be NULL */
} qr_item_t;

/* Optional string member `key` of o, at most max bytes: *out is NULL when
 * absent or null. false: err holds the reason. */
bool qr_opt_string(json_t *o, const char *key, size_t max, const char **out, char *err, size_t errsz);
/* true when tags are absent, null, or an array of at most 10 non-empty
 * strings of at most 64 bytes; false: err holds the reason. */
bool qr_valid_tags(json_t *tags, char *err, size_t errsz);
/* Validates one item and builds the payload the symbol encodes (for a
 * dynamic code: its short URL). false: err holds the reason. */
bool qr_item_parse(json_t *it, const bd_qr_design_t *d, qr_item_t *out, bd_buf_t *payload, char *err,
                   size_t errsz);
/* The ids a batch decides for one of its items (src/sql/022): id_body, the
 * 20 characters after the kind's prefix (the batch id's 16 and the
 * item's position); short_code, the code's if it turns out dynamic. */
typedef struct {
  const char *id_body;
  const char *short_code;
} qr_item_ids_t;
/* qr_item_parse with the ids given (NULL: random ones, as for a single
 * create). */
bool qr_item_parse_ids(json_t *it, const bd_qr_design_t *d, const qr_item_ids_t *ids, qr_item_t *out,
                       bd_buf_t *payload, char *err, size_t errsz);
/* The code row of a single create as a jansson object (a batch's codes go
 * to qr_intake_batch() as arrays: qr_batches.c). */
json_t *qr_item_code_json(const qr_item_t *it, const char *payload);
/* Appends j dumped with jansson's flags. */
void qr_json_append(bd_buf_t *out, const json_t *j, size_t flags);
/* Appends tags (validated: an array of strings) as a PostgreSQL text[]
 * literal, every element quoted. */
void qr_tags_literal(bd_buf_t *out, json_t *tags);

/* Scopes of an API key (qr_ctx_t.scopes bits; a route needs one). */
#define QR_SCOPE_READ 0x1u      /* qr:read */
#define QR_SCOPE_WRITE 0x2u     /* qr:write */
#define QR_SCOPE_ANALYTICS 0x4u /* analytics:read */
#define QR_SCOPE_TOKENS 0x8u    /* tokens:manage */
#define QR_SCOPE_ALL 0xfu

/* The bit of one scope name ("qr:read", ...), 0 when it is none. */
uint32_t qr_scope_bit(const char *name);
/* Appends the scopes of `bits` as a PostgreSQL text[] literal, in the
 * canonical order ({qr:read,qr:write,analytics:read,tokens:manage}). */
void qr_scopes_literal(bd_buf_t *out, uint32_t bits);
/* Drops key `id` from this process's key cache at once (the process that
 * revoked or rotated it; the others learn it through NOTIFY
 * bd_credentials), and makes the lookups in flight not cache their rows. */
void qr_key_forget(const char *id);

/* Answers an error in the surface's format (QRKit: {"error": {code,
 * message, param, request_id}}, qr_surface.c's error scope). */
void qr_error(bd_req_t *req, int status, const char *code, const char *message, const char *param);
/* Parses the JSON body into c->body (nesting limit, syntax, an object);
 * false: answered 400. Idempotent across re-entries. */
bool qr_parse_body(bd_req_t *req);
/* Fetches a remote design.logo.url first (then re-enters next); true when
 * it took the request over. */
bool qr_logo_step(bd_req_t *req, bd_handler_fn next);
/* Answers with r's single text column as the JSON body (no row or NULL:
 * 404 "No such <what>"; failed query: bd_app_db_error). Does not release. */
void qr_send_json_row(bd_req_t *req, const bd_pg_result_t *r, int status, const char *what);
/* Runs a statement whose first column is the response body, answered as
 * qr_send_json_row does (bd_app_query: a full queue answers 503). */
void qr_query_json(bd_req_t *req, bd_pg_stmt_t *st, int n, const char *const *p, int ok_status, const char *what);
/* Fills c->ws_s and c->mode_s, the usual $2 and $3 of a query. */
void qr_ws_params(qr_ctx_t *c);
enum { QR_KEY_TIME, QR_KEY_TEXT, QR_KEY_INT }; /* type of a cursor's sort key */
/* Parses body.design (or loads body.template_id's design) into c->design,
 * then runs next; answers 400 itself. */
void qr_with_design(bd_req_t *req, bd_handler_fn next);
/* pg callback: sends a list page built by SQL (cursor made opaque), then
 * releases the request (ud). */
void qr_on_list(void *ud, const bd_pg_result_t *r);
/* Reads limit (1-100, default 25) and, when given (*has_cursor), the cursor
 * decoded into *cursor, whose sort key must parse as key_kind (QR_KEY_*);
 * false: answered 400. */
bool qr_page_params(bd_req_t *req, char limit[8], bd_buf_t *cursor, bool *has_cursor, int key_kind);
/* Entry point of every authenticated /v1 handler: the key must carry the
 * QR_SCOPE_* bits of `need`; then rate limit, then next(req) (under the
 * Idempotency-Key protocol: bd_idem_wrap). */
void qr_entry_scope(bd_req_t *req, uint32_t need, bd_handler_fn next);

/* Handlers and hooks, wired up by qr_surface.c ----------------------------- */

/* qr_common.c: LISTEN bd_credentials (the key cache), the last_used_at timer */
void qr_keys_init(void);
void qr_keys_flush(void (*done)(void *ud), void *ud); /* writes the recorded uses, then done(ud) */

/* qr_batches.c */
void qr_batches_init(void); /* registers the qr.batch job kind */
void qr_h_create_batch(bd_req_t *req);
void qr_h_get_batch(bd_req_t *req);
void qr_h_list_batches(bd_req_t *req);

/* qr_codes.c */
void qr_codes_init(void); /* list statements, scan timer, LISTEN qr_codes */
void qr_codes_flush(void (*done)(void *ud), void *ud); /* writes buffered scans, then done(ud) */
void qr_h_create_code(bd_req_t *req);
void qr_h_list_codes(bd_req_t *req);
void qr_h_get_code(bd_req_t *req);
void qr_h_patch_code(bd_req_t *req);
void qr_h_delete_code(bd_req_t *req);
void qr_h_download(bd_req_t *req);
void qr_h_analytics(bd_req_t *req);
void qr_h_create_template(bd_req_t *req);
void qr_h_list_templates(bd_req_t *req);
void qr_h_redirect(bd_req_t *req);

/* qr_tokens.c: QRKit's token API (scope tokens:manage) */
void qr_h_create_token(bd_req_t *req);
void qr_h_list_tokens(bd_req_t *req);
void qr_h_rotate_token(bd_req_t *req);
void qr_h_delete_token(bd_req_t *req);

/* qr_webhooks.c: webhook endpoints (qr:write manages, qr:read lists) */
void qr_h_create_webhook(bd_req_t *req);
void qr_h_list_webhooks(bd_req_t *req);
void qr_h_get_webhook(bd_req_t *req);
void qr_h_patch_webhook(bd_req_t *req);
void qr_h_delete_webhook(bd_req_t *req);
void qr_h_rotate_webhook_secret(bd_req_t *req);
void qr_h_list_webhook_deliveries(bd_req_t *req);
void qr_h_retry_webhook_delivery(bd_req_t *req);

/* Provisioning: the workspace and API keys (qr_admin.c). */
extern const bd_admin_hooks_t qr_admin;

#endif

/* business.h: the /business surface's private header (vec.digital business
 * API). The helpers every handler shares (business_common.c): token
 * authentication with permissions, the error bodies of the API,
 * Laravel-style validation errors and the Laravel paginator; then the
 * handlers that business_surface.c routes to. Loop thread only.
 *
 * Tokens are "biz_<id>_<secret>" (auth.h) and belong to one user of one
 * institution; the user's institution scopes everything the token sees (an
 * object of another institution is a 404, never a 403). A revoked token or
 * an archived user's token does not authenticate.
 */
#ifndef BD_BUSINESS_H
#define BD_BUSINESS_H

#include "admin.h"
#include "cert_render.h"
#include "http.h"
#include "pg.h"
#include "sign.h"

#include <jansson.h>

/* Permissions a token carries (bd_biz_caller_t.perms bits). */
#define BD_BIZ_BATCHES_VIEW        0x01u
#define BD_BIZ_BATCHES_CREATE      0x02u
#define BD_BIZ_BATCHES_APPROVE     0x04u
#define BD_BIZ_TEMPLATES_VIEW      0x08u
#define BD_BIZ_TEMPLATES_MANAGE    0x10u
#define BD_BIZ_CERTIFICATES_VIEW   0x20u
#define BD_BIZ_CERTIFICATES_MANAGE 0x40u
#define BD_BIZ_WEBHOOKS_MANAGE     0x80u
#define BD_BIZ_ALL_PERMS           0xffu

#define BD_BIZ_TOKEN_PREFIX "biz_"

typedef struct {
  int64_t institution_id;     /* biz_institutions.id: scopes every query */
  int64_t user_id;            /* biz_users.id of the token's owner */
  char user_uuid[37];         /* its public uuid */
  uint32_t perms;             /* BD_BIZ_* bits */
  char token_id[16];          /* the token's public id (logs, rate limit) */
  char institution_name[256]; /* for verification pages and certificates */
} bd_biz_caller_t;

/* The caller's institution id as text, the usual query parameter. */
void bd_biz_inst_str(const bd_biz_caller_t *caller, char out[24]);

/* Permission name ("batches:view", ...) <-> bit; 0 / NULL when unknown. */
uint32_t bd_biz_perm_bit(const char *name);
const char *bd_biz_perm_name(uint32_t bit);

typedef void (*bd_biz_cb)(bd_req_t *req, const bd_biz_caller_t *caller);

/* Authenticates "Authorization: Bearer biz_…", applies the per-token rate
 * limit, then checks `permission` (a name as above; NULL = any valid
 * token). Answers 401, 429, 403 (body names required_permission) or 503
 * itself; otherwise calls cb(req, caller), possibly before returning. The
 * request is held while the token is looked up, and a request whose client
 * left meanwhile gets no callback. `caller` is valid only during cb: copy
 * it. Does not touch req->ctx. */
void bd_biz_authenticate(bd_req_t *req, const char *permission, bd_biz_cb cb);

/* 404 {"message":"The requested ID <id> was not found.","error":"resource_not_found"} */
void bd_biz_not_found(bd_req_t *req, const char *id);
/* {"data": <json>} with `status`; json is a complete JSON value (copied). */
void bd_biz_send_data(bd_req_t *req, int status, const char *json);
/* 500 {"message":"An unexpected error occurred. …","error_code":"SERVER_ERROR"} (logged) */
void bd_biz_server_error(bd_req_t *req, const char *what);

/* Base of the URLs we hand out (configuration public_url, no trailing '/'). */
const char *bd_biz_base_url(void);

/* A signatory of a batch's render context ({name, designation,
 * signature_hex}), as the certificate job and the PNG on first request both
 * draw it: *img is its decoded signature image, NULL when it has none or
 * it does not decode (drawn without); the strings point into s. Any
 * thread. */
bd_cert_signatory_t bd_biz_signatory(const json_t *s, bd_cert_image_t **img);

/* Laravel validation errors: (field, message) pairs in the order the rules
 * ran; sent as 422 {"message": first + " (and N more error[s])",
 * "errors": {field: [messages…]}} with fields in first-appearance order. */
typedef struct {
  char **field; /* field names (owned) */
  char **msg;   /* messages (owned) */
  size_t n;     /* pairs */
  size_t cap;   /* allocated */
} bd_biz_errors_t;

void bd_biz_errors_init(bd_biz_errors_t *e);
void bd_biz_errors_add(bd_biz_errors_t *e, const char *field, const char *fmt, ...) BD_PRINTF(3, 4);
bool bd_biz_errors_has(const bd_biz_errors_t *e, const char *field);
/* Sends the 422 (e must not be empty) and frees e's contents. */
void bd_biz_errors_send(bd_req_t *req, bd_biz_errors_t *e);
void bd_biz_errors_free(bd_biz_errors_t *e);
/* The summary message alone, e.g. "The name field is required. (and 2 more errors)". */
void bd_biz_errors_summary(const bd_biz_errors_t *e, bd_buf_t *out);

/* Laravel LengthAwarePaginator ------------------------------------------- */

#define BD_BIZ_PER_PAGE_DEFAULT 15
#define BD_BIZ_PER_PAGE_MAX     100

typedef struct {
  int64_t page;     /* 1-based current page */
  int64_t per_page; /* 1..100 (15) */
  int64_t offset;   /* (page - 1) * per_page */
} bd_biz_page_t;

/* Reads `page` and `per_page` from the query string into `errs` (Laravel
 * messages: integer, at least 1, per_page at most 100). */
void bd_biz_page_parse(bd_req_t *req, bd_biz_page_t *pg, bd_biz_errors_t *errs);

/* Writes {"data": <data_json>, "links": {first,last,prev,next}, "meta":
 * {current_page, from, last_page, links[…], path, per_page, to, total}}.
 * data_json is a JSON array holding this page's items (count of them in
 * `count`); page URLs are <base><path>?page=N followed by `extra_query`
 * (e.g. "&per_page=50&status=failed", already encoded; may be ""). */
void bd_biz_paginate(bd_buf_t *out, bd_req_t *req, const bd_biz_page_t *pg, int64_t total,
                     const char *data_json, size_t count, const char *extra_query);

/* Answers a list query whose one row is (total, JSON array of this page's
 * items, their count): the page as above with `extra_query`, or
 * bd_app_db_error when r failed. Does not release the request: the
 * caller's query callback does that after this returns. */
void bd_biz_send_page(bd_req_t *req, const bd_pg_result_t *r, const bd_biz_page_t *pg,
                      const char *extra_query);

/* The message of every 5xx other than 503 (the API's own wording). */
#define BD_BIZ_SERVER_ERROR_MESSAGE "An unexpected error occurred. Our team has been notified."

/* The API's error body for bd_resp_error (the surface's error format). */
void bd_biz_format_error(const bd_req_t *req, int status, const char *code, const char *message,
                         const char *param, bd_buf_t *out);

/* Handlers, routed by business_surface.c ---------------------------------- */

/* business_templates.c */
void bd_biz_template_list(bd_req_t *req);       /* GET /business/certificate-templates */
void bd_biz_template_create(bd_req_t *req);     /* POST /business/certificate-templates */
void bd_biz_template_get(bd_req_t *req);        /* GET /business/certificate-templates/{templateId} */
void bd_biz_template_screenshot(bd_req_t *req); /* GET …/{templateId}/screenshot.png: public preview */

/* business_certs.c: the cert.batch job, artefacts, verification */
void bd_biz_certs_init(void);             /* loads the signing key, registers cert.batch */
void bd_biz_cert_list(bd_req_t *req);     /* GET /business/certificates */
void bd_biz_cert_get(bd_req_t *req);      /* GET /business/certificates/{id} */
void bd_biz_cert_pdf(bd_req_t *req);      /* GET /business/certificates/{id}/pdf */
void bd_biz_cert_png(bd_req_t *req);      /* GET /business/certificates/{id}/png */
void bd_biz_cert_svg(bd_req_t *req);      /* GET /business/certificates/{id}/qrcode.svg */
void bd_biz_cert_barcode(bd_req_t *req);  /* GET /business/certificates/{id}/barcode.svg (business_barcode.c) */
/* The Code 128 SVG of `text` into out (appended); -1 with err on failure.
 * Any thread (the handler runs it on the work queue). */
int bd_biz_barcode_svg(const char *text, bd_buf_t *out, char *err, size_t errsz) BD_MUSTCHECK;
void bd_biz_cert_revoke(bd_req_t *req);   /* POST /business/certificates/{id}/revoke */
void bd_biz_verify_page(bd_req_t *req);   /* GET /verify/{reference_id} (public) */
void bd_biz_keys(bd_req_t *req);          /* GET /.well-known/batchd-keys.json (public) */

/* business_email.c: certificates e-mailed to their recipients (issue 26) */
void bd_biz_email_init(void);             /* registers the composer of 'business.certificate' (mail.h) */
void bd_biz_cert_resend(bd_req_t *req);   /* POST /business/certificates/{id}/resend */
/* notify_recipients of POST /business/batches (v: n bytes, NUL-terminated, or
 * NULL when absent): its value; an error in e when it is not a boolean, or
 * asks for e-mail while none is configured. */
bool bd_biz_email_notify_field(const char *v, size_t n, bool too_long, bd_biz_errors_t *e);
/* A template's `email` block ({subject, text, html}, each optional; NULL or
 * absent: the defaults): false with errors in e when it is not acceptable. */
bool bd_biz_email_block_check(const json_t *email, bd_biz_errors_t *e);

/* business_upload.c: the streamed roster upload */
void bd_biz_batch_create(bd_req_t *req);  /* POST /business/batches (streamed) */

/* business_batches.c: batch reads and approval */
void bd_biz_batch_get(bd_req_t *req);     /* GET /business/batches/{batchId} */
void bd_biz_batch_list(bd_req_t *req);    /* GET /business/batches */
void bd_biz_batch_approve(bd_req_t *req); /* POST /business/batches/{batchId}/approve */
void bd_biz_batch_errors(bd_req_t *req);  /* GET /business/batches/{batchId}/errors.csv */

/* Webhook endpoints (business_webhooks.c), permission webhooks:manage */
void bd_biz_webhook_create(bd_req_t *req);   /* POST /business/webhooks */
void bd_biz_webhook_list(bd_req_t *req);     /* GET /business/webhooks */
void bd_biz_webhook_get(bd_req_t *req);      /* GET /business/webhooks/{id} */
void bd_biz_webhook_update(bd_req_t *req);   /* PATCH /business/webhooks/{id} */
void bd_biz_webhook_delete(bd_req_t *req);   /* DELETE /business/webhooks/{id} */
void bd_biz_webhook_rotate(bd_req_t *req);   /* POST /business/webhooks/{id}/rotate-secret */
void bd_biz_webhook_deliveries(bd_req_t *req); /* GET /business/webhooks/{id}/deliveries */
void bd_biz_webhook_retry(bd_req_t *req);    /* POST /business/webhooks/{id}/deliveries/{delivery_id}/retry */

/* Verifiable credentials (business_credentials.c) */
void bd_biz_credential_get(bd_req_t *req);     /* GET /business/certificates/{id}/credential */
void bd_biz_credential_public(bd_req_t *req);  /* GET /credentials/{reference_id} */
void bd_biz_status_list(bd_req_t *req);        /* GET /credentials/status/{institution}/{list} */
void bd_biz_did_document(bd_req_t *req);       /* GET /institutions/{institution}/did.json */
/* This process's signing key (business_certs.c; loaded by bd_biz_certs_init). */
const bd_sign_key_t *bd_biz_signing_key(void);

/* Provisioning: the institution, users, templates and tokens (business_admin.c). */
extern const bd_admin_hooks_t bd_biz_admin;

#endif

/* qr_errors_doc.c: the page that documents every error code of the /v1
 * surface (GET /docs/errors, public, HTML with one anchor per code), and
 * the doc_url every QRKit-shaped error envelope carries:
 * <BATCHD_PUBLIC_URL>/docs/errors#<code>. The table below is the list a
 * client can rely on: tests/integration/test_qr_doc_url.py checks that
 * every code the QR surface and the core can answer with is in it.
 * Loop thread only. */
#include "qr_errors_doc.h"

#include "app.h"
#include "util.h"

#include <stdio.h>

static const struct {
  const char *code;   /* error.code */
  const char *status; /* HTTP status(es) */
  const char *text;   /* what it means and what to do (HTML-safe) */
} k_codes[] = {
    {"invalid_request", "400",
     "The request is malformed or a field is invalid: error.param names the field (a design "
     "field when the design would not scan). Fix the request; retrying it unchanged fails again."},
    {"invalid_json", "400", "The body is not valid JSON."},
    {"unauthenticated", "401",
     "No API key, an unknown, revoked or expired one, or a live key used for test data (and the "
     "reverse). Send Authorization: Bearer qr_live_… or qr_test_…."},
    {"insufficient_scope", "403",
     "The key lacks the scope the endpoint needs (qr:read, qr:write, analytics:read, "
     "tokens:manage): the message names it."},
    {"permission_denied", "403", "The key may not do this (a test key creating live keys, ...)."},
    {"plan_limit_reached", "403",
     "The workspace's limits set by its administrator would be exceeded (dynamic codes in "
     "total, or codes created this calendar month, UTC): nothing was stored. GET /v1/usage shows "
     "the counts and limits."},
    {"not_found", "404", "No such object in this workspace and mode, or no such endpoint."},
    {"method_not_allowed", "405", "The path exists but not with this method."},
    {"request_timeout", "408", "The request was not received in time."},
    {"webhook_limit_reached", "409",
     "The workspace has as many webhook endpoints in this mode as allowed (BATCHD_MAX_WEBHOOKS)."},
    {"idempotency_request_in_progress", "409",
     "A request with the same Idempotency-Key is still being processed: retry after it finishes."},
    {"payload_too_large", "413", "The body is larger than the server accepts."},
    {"expectation_failed", "417", "Only Expect: 100-continue is supported."},
    {"idempotency_key_reused", "422",
     "The Idempotency-Key was used before with a different request: use a new key."},
    {"invalid_url", "422", "A URL field is not acceptable (scheme, host, credentials)."},
    {"rate_limit_exceeded", "429", "Too many requests for this key: wait Retry-After seconds."},
    {"header_too_large", "431", "The request line and headers are too large."},
    {"internal_error", "500", "The server failed: retry later, quoting request_id."},
    {"internal", "500", "The server failed: retry later, quoting request_id."},
    {"not_implemented", "501", "The request uses an HTTP feature the server does not implement."},
    {"service_unavailable", "503",
     "The database or the work queue is unavailable or full: retry with backoff."},
    {"shutting_down", "503", "The server is restarting: send the request again."},
    {"http_version_not_supported", "505", "Only HTTP/1.0 and HTTP/1.1 are served."},
};

void qr_doc_url(const char *code, bd_buf_t *out) {
  bd_buf_puts(out, bd_app.cfg.public_url);
  bd_buf_puts(out, "/docs/errors#");
  bd_buf_puts(out, code ? code : "");
}

void qr_h_errors_doc(bd_req_t *req) {
  bd_buf_t b = BD_BUF_INIT;
  bd_buf_puts(&b,
              "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
              "<title>batchd QR API errors</title></head><body>\n"
              "<h1>Errors of the QR API (/v1)</h1>\n"
              "<p>Every error is <code>{\"error\": {\"code\", \"message\", \"param\", "
              "\"doc_url\", \"request_id\"}}</code>; <code>doc_url</code> links to the code's "
              "entry below.</p>\n<dl>\n");
  for (size_t i = 0; i < BD_ARRAY_LEN(k_codes); i++)
    bd_buf_printf(&b, "<dt id=\"%s\"><code>%s</code> (HTTP %s)</dt><dd>%s</dd>\n", k_codes[i].code,
                  k_codes[i].code, k_codes[i].status, k_codes[i].text);
  bd_buf_puts(&b, "</dl>\n</body></html>\n");
  bd_resp_header(req, "Cache-Control", "public, max-age=3600");
  bd_resp_send(req, 200, "text/html; charset=utf-8", b.data, b.len);
  bd_buf_free(&b);
}

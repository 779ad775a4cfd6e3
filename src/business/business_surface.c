/* business_surface.c: the top of the /business surface (vec.digital
 * business API; certificates, their verification and signing keys).
 *
 * This folder (src/business) holds:
 *   business_surface.c    this file: route table, the paths whose errors are
 *                         Laravel-shaped, start-up, the seed-demo section
 *   business.h            the folder's private header: the shared helpers
 *                         and every handler the route table names
 *   business_common.c     token authentication, permissions, error bodies,
 *                         validation errors, the paginator and list pages
 *   business_templates.c  certificate templates: create (layout validated on
 *                         the work queue), list, get, screenshot preview
 *   business_upload.c     POST /business/batches: the streamed roster upload
 *                         (multipart → roster → COPY, validation, commit)
 *   business_batches.c    batches once uploaded: get, list, approval,
 *                         errors.csv
 *   business_certs.c      the cert.batch job (render, sign, record),
 *                         certificate reads, artefacts and revocation,
 *                         /verify, keys
 *   business_barcode.c    the reference id as a Code 128 SVG (zint)
 * It uses the core (src/core), the libraries (src/lib) and the renderer
 * (src/render), and no other surface.
 */
#include "business.h"

#include "app.h"
#include "auth.h"
#include "cert_render.h"
#include "json.h"
#include "log.h"
#include "surface.h"
#include "util.h"

#include <cairo.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

/* --- seed-demo --------------------------------------------------------------- */

/* A small real PNG of a handwritten-looking stroke, different per seed
 * (`k`), drawn with cairo. */
static void signature_png(int k, bd_buf_t *out);

typedef struct {
  bd_token_t admin, sig1, sig2, view; /* tokens issued this run */
} biz_seed_t;

/* Layouts of the demo templates (cert_render.h): A4 landscape, recipient
 * name, date, a QR to the verification page, and 0 or 2 signature blocks. */
static void demo_layout(bd_buf_t *b, const char *title, int signatures) {
  bd_buf_printf(
      b,
      "{\"page\":{\"width\":842,\"height\":595},\"background\":{\"color\":\"#fffdf5\"},"
      "\"elements\":["
      "{\"type\":\"text\",\"text\":\"%s\",\"x\":421,\"y\":90,\"font\":\"Noto Serif\",\"size\":34,"
      "\"bold\":true,\"color\":\"#1a2a4a\",\"align\":\"center\",\"max_width\":700},"
      "{\"type\":\"text\",\"text\":\"This certifies that\",\"x\":421,\"y\":170,\"font\":\"Noto "
      "Serif\","
      "\"size\":16,\"color\":\"#333333\",\"align\":\"center\"},"
      "{\"type\":\"text\",\"text\":\"{{RecipientsName}}\",\"x\":421,\"y\":210,\"font\":\"Noto "
      "Serif\","
      "\"size\":30,\"bold\":true,\"align\":\"center\",\"max_width\":700},"
      "{\"type\":\"text\",\"text\":\"{{InstitutionName}}, issued {{IssueDate}}, {{ReferenceId}}\","
      "\"x\":421,\"y\":290,\"size\":12,\"color\":\"#555555\",\"align\":\"center\"},"
      "{\"type\":\"qr\",\"x\":40,\"y\":455,\"size\":100}",
      title);
  for (int i = 1; i <= signatures; i++)
    bd_buf_printf(
        b,
        ",{\"type\":\"signature\",\"field\":\"signatory_%d\",\"x\":%d,\"y\":400,\"width\":180,"
        "\"height\":60}",
        i, i == 1 ? 330 : 580);
  bd_buf_puts(b, "]}");
}

/* The signatory fields of a layout as a PostgreSQL text[] literal; false
 * (message in err) when the layout does not parse. */
static bool layout_fields(const char *layout_json, bd_buf_t *arr, char *err, size_t errsz) {
  json_error_t jerr;
  json_t *j = json_loads(layout_json, 0, &jerr);
  if (!j) {
    snprintf(err, errsz, "%s", jerr.text);
    return false;
  }
  bd_cert_layout_t *l = bd_cert_layout_parse(j, err, errsz);
  json_decref(j);
  if (!l) return false;
  bd_buf_putc(arr, '{');
  for (size_t i = 0; i < bd_cert_layout_signatory_count(l); i++) {
    if (i) bd_buf_putc(arr, ',');
    bd_buf_puts(arr, bd_cert_layout_signatory_field(l, i));
  }
  bd_buf_putc(arr, '}');
  bd_cert_layout_free(l);
  return true;
}

static void seed_perms(bd_seed_t *s, PGresult *res) { bd_seed_next(s); }

static void seed_done(bd_seed_t *s, PGresult *res) {
  biz_seed_t *q = s->data;
  json_error_t jerr;
  json_t *o = json_loads(PQgetvalue(res, 0, 0), 0, &jerr);
  if (!o) {
    free(q);
    s->data = NULL;
    bd_seed_fail(s, "business seed", "bad JSON from biz_seed_demo");
    return;
  }
  /* in the contract's key order */
  json_t *sigs = json_object_get(o, "signatories");
  json_t *biz = json_pack(
      "{s:s, s:O, s:O, s:[{s:O, s:s, s:b}, {s:O, s:s, s:b}], s:O, s:O, s:s, s:O}", "token",
      q->admin.token, "institution_id", json_object_get(o, "institution_id"), "user_uuid",
      json_object_get(o, "user_uuid"), "signatories", "user_uuid",
      json_object_get(json_array_get(sigs, 0), "user_uuid"), "token", q->sig1.token, "auto_approve",
      1, "user_uuid", json_object_get(json_array_get(sigs, 1), "user_uuid"), "token", q->sig2.token,
      "auto_approve", 0, "archived_user_uuid", json_object_get(o, "archived_user_uuid"),
      "unsigned_user_uuid", json_object_get(o, "unsigned_user_uuid"), "view_only_token",
      q->view.token, "template_ids", json_object_get(o, "template_ids"));
  json_decref(o);
  json_object_set_new(s->out, "business", biz);
  /* the admin has every permission, webhooks:manage (added after 004) too */
  char id[BD_TOKEN_ID_LEN + 1];
  snprintf(id, sizeof id, "%s", q->admin.id);
  const char *p[] = {id};
  free(q);
  s->data = NULL;
  bd_seed_exec(s,
               "UPDATE biz_tokens SET permissions = array_append(permissions, 'webhooks:manage')"
               " WHERE id = $1 AND NOT 'webhooks:manage' = ANY (permissions)",
               1, p, seed_perms);
}

static void biz_seed(bd_seed_t *s) {
  biz_seed_t *q = bd_calloc(1, sizeof *q);
  s->data = q;
  bd_token_generate(BD_BIZ_TOKEN_PREFIX, &q->admin);
  bd_token_generate(BD_BIZ_TOKEN_PREFIX, &q->sig1);
  bd_token_generate(BD_BIZ_TOKEN_PREFIX, &q->sig2);
  bd_token_generate(BD_BIZ_TOKEN_PREFIX, &q->view);
  json_t *tok = json_pack("{s:[s,s], s:[s,s], s:[s,s], s:[s,s]}", "admin", q->admin.id,
                          q->admin.secret_hash, "sig1", q->sig1.id, q->sig1.secret_hash, "sig2",
                          q->sig2.id, q->sig2.secret_hash, "view", q->view.id, q->view.secret_hash);
  char *tok_s = json_dumps(tok, JSON_COMPACT);
  json_decref(tok);
  bd_buf_t l0 = BD_BUF_INIT, l2 = BD_BUF_INIT, png[4];
  demo_layout(&l0, "Certificate of Completion", 0);
  demo_layout(&l2, "Certificate of Achievement", 2);
  bd_buf_t f0 = BD_BUF_INIT, f2 = BD_BUF_INIT;
  char lerr[256];
  if (!layout_fields(l0.data, &f0, lerr, sizeof lerr) ||
      !layout_fields(l2.data, &f2, lerr, sizeof lerr)) {
    /* a bug of ours: the demo layouts are constants */
    free(tok_s);
    bd_buf_free(&l0);
    bd_buf_free(&l2);
    bd_buf_free(&f0);
    bd_buf_free(&f2);
    free(q);
    s->data = NULL;
    bd_seed_fail(s, "business seed layout", lerr);
    return;
  }
  /* PNGs travel as hex bytea literals: text-format parameters */
  char *hex[4];
  for (int i = 0; i < 4; i++) {
    bd_buf_init(&png[i]);
    signature_png(i, &png[i]);
    hex[i] = bd_malloc(2 * png[i].len + 3);
    hex[i][0] = '\\';
    hex[i][1] = 'x';
    bd_hex_encode(hex[i] + 2, png[i].data, png[i].len);
    bd_buf_free(&png[i]);
  }
  char t[24];
  snprintf(t, sizeof t, "%lld", (long long)s->tenant_id);
  const char *p[] = {t,       s->tenant, tok_s,  l0.data, l2.data, f0.data,
                     f2.data, hex[0],    hex[1], hex[2],  hex[3]};
  bd_seed_exec(s,
               "SELECT biz_seed_demo($1::bigint, $2, $3::jsonb, $4::jsonb, $5::jsonb, $6::text[], "
               "$7::text[],"
               " $8::bytea, $9::bytea, $10::bytea, $11::bytea)",
               11, p, seed_done);
  bd_buf_free(&f0);
  bd_buf_free(&f2);
  free(tok_s);
  bd_buf_free(&l0);
  bd_buf_free(&l2);
  for (int i = 0; i < 4; i++) free(hex[i]);
}

typedef struct {
  bd_buf_t *out; /* PNG bytes */
} png_sink_t;

static cairo_status_t png_write(void *closure, const unsigned char *data, unsigned int len) {
  png_sink_t *k = closure;
  bd_buf_append(k->out, data, len);
  return CAIRO_STATUS_SUCCESS;
}

static void signature_png(int k, bd_buf_t *out) {
  const int w = 240, h = 80;
  cairo_surface_t *sf = cairo_image_surface_create(CAIRO_FORMAT_ARGB32, w, h);
  cairo_t *cr = cairo_create(sf);
  cairo_set_source_rgba(cr, 0, 0, 0, 0);
  cairo_paint(cr);
  cairo_set_source_rgb(cr, 0.05, 0.1, 0.35);
  cairo_set_line_width(cr, 2.5);
  cairo_set_line_cap(cr, CAIRO_LINE_CAP_ROUND);
  cairo_move_to(cr, 12, 55);
  /* a loopy stroke: a sum of sines with a per-signer phase */
  for (int x = 12; x < w - 12; x += 2) {
    double y = 45 + 18 * sin(x * (0.07 + 0.01 * k) + k) + 8 * sin(x * 0.23 + 2 * k);
    cairo_line_to(cr, x, y);
  }
  cairo_stroke(cr);
  cairo_move_to(cr, 20, 68);
  cairo_line_to(cr, w - 30, 66);
  cairo_set_line_width(cr, 1.2);
  cairo_stroke(cr);
  cairo_destroy(cr);
  png_sink_t sink = {out};
  if (cairo_surface_write_to_png_stream(sf, png_write, &sink) != CAIRO_STATUS_SUCCESS)
    bd_buf_reset(out);
  cairo_surface_destroy(sf);
}

/* --- surface ------------------------------------------------------------------ */

static const bd_route_t routes[] = {
    {"GET", "/business/certificate-templates", bd_biz_template_list, 0, NULL},
    {"POST", "/business/certificate-templates", bd_biz_template_create, 0, NULL},
    {"GET", "/business/certificate-templates/{templateId}", bd_biz_template_get, 0, NULL},
    {"GET", "/business/certificate-templates/{templateId}/screenshot.png", bd_biz_template_screenshot, 0, NULL},
    {"POST", "/business/batches", bd_biz_batch_create, BD_ROUTE_STREAM | BD_ROUTE_UPLOAD, NULL},
    {"GET", "/business/batches", bd_biz_batch_list, 0, NULL},
    {"GET", "/business/batches/{batchId}", bd_biz_batch_get, 0, NULL},
    {"POST", "/business/batches/{batchId}/approve", bd_biz_batch_approve, 0, NULL},
    {"GET", "/business/batches/{batchId}/errors.csv", bd_biz_batch_errors, 0, NULL},
    {"GET", "/business/certificates", bd_biz_cert_list, 0, NULL},
    {"GET", "/business/certificates/{id}", bd_biz_cert_get, 0, NULL},
    {"GET", "/business/certificates/{id}/pdf", bd_biz_cert_pdf, 0, NULL},
    {"GET", "/business/certificates/{id}/png", bd_biz_cert_png, 0, NULL},
    {"GET", "/business/certificates/{id}/qrcode.svg", bd_biz_cert_svg, 0, NULL},
    {"GET", "/business/certificates/{id}/barcode.svg", bd_biz_cert_barcode, 0, NULL},
    {"POST", "/business/certificates/{id}/revoke", bd_biz_cert_revoke, 0, NULL},
    {"POST", "/business/certificates/{id}/resend", bd_biz_cert_resend, 0, NULL},
    {"GET", "/business/certificates/{id}/credential", bd_biz_credential_get, 0, NULL},
    {"POST", "/business/webhooks", bd_biz_webhook_create, 0, NULL},
    {"GET", "/business/webhooks", bd_biz_webhook_list, 0, NULL},
    {"GET", "/business/webhooks/{id}", bd_biz_webhook_get, 0, NULL},
    {"PATCH", "/business/webhooks/{id}", bd_biz_webhook_update, 0, NULL},
    {"DELETE", "/business/webhooks/{id}", bd_biz_webhook_delete, 0, NULL},
    {"POST", "/business/webhooks/{id}/rotate-secret", bd_biz_webhook_rotate, 0, NULL},
    {"GET", "/business/webhooks/{id}/deliveries", bd_biz_webhook_deliveries, 0, NULL},
    {"POST", "/business/webhooks/{id}/deliveries/{delivery_id}/retry", bd_biz_webhook_retry, 0, NULL},
    {"GET", "/credentials/status/{institution}/{list}", bd_biz_status_list, 0, NULL},
    {"GET", "/credentials/{reference_id}", bd_biz_credential_public, 0, NULL},
    {"GET", "/institutions/{institution}/did.json", bd_biz_did_document, 0, NULL},
    {"GET", "/verify/{reference_id}", bd_biz_verify_page, 0, NULL},
    {"GET", "/.well-known/batchd-keys.json", bd_biz_keys, 0, NULL},
};

/* Errors under these paths are Laravel-shaped (bd_biz_format_error). */
static const char *const error_paths[] = {"/business/", "/business", "/verify/", "/.well-known/batchd-keys.json",
                                          "/credentials/", "/institutions/",
                                          NULL};

static void biz_init(void) {
  bd_biz_certs_init();
  bd_biz_email_init();
}

const bd_surface_def_t bd_surface_business = {
    .name = "business",
    .routes = routes,
    .nroutes = BD_ARRAY_LEN(routes),
    .errors = {error_paths, bd_biz_format_error},
    .init = biz_init,
    .fini = bd_cert_render_shutdown,
    .seed = biz_seed,
    .admin = &bd_biz_admin,
};

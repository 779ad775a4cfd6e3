/* business_cert_png.c: GET /business/certificates/{id}/png, the PNG of a
 * certificate as a derived artefact.
 *
 * Issuance (business_certs.c) writes the PDF and the QR SVG; the PNG is
 * rendered the first time it is asked for, then stored with the other
 * artefacts and served from there (biz_cert_store_png, 021):
 *   1. biz_cert_png_source: the stored PNG, or what to render it from (the
 *      batch's job context: layout and signatories as the PDF was made
 *      from, the row's values, the credential to bake into it);
 *   2. stored: 200 with it. Not stored: at most BATCHD_CERT_PNG_RENDERS
 *      render at once (this process); beyond, 503 with Retry-After: 1;
 *   3. on the work queue: parse the context, render the page (the same
 *      drawing as the PDF), encode it (png_enc.h), bake the credential
 *      (Open Badges baking), hex for the bytea parameter;
 *   4. biz_cert_store_png stores it unless another request stored one
 *      first, and returns the stored bytes, which are answered.
 * Deterministic: the same certificate renders to the same bytes, and once
 * stored the PNG never changes, so its hash (the certificate's png_sha256,
 * shown by the verification JSON) is fixed from the first request on, also
 * across restarts.
 * Loop thread only, except png_work (pool thread).
 */
#include "business.h"

#include "app.h"
#include "cert_render.h"
#include "credential.h"
#include "log.h"
#include "util.h"
#include "work.h"

#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>

static int g_inflight; /* PNG renders of this process on the work queue */

typedef struct {
  bd_req_t *req;  /* the request (held while the render runs) */
  bd_work_t work; /* the render */
  char id[40];    /* certificate id */
  char ref[80];   /* its reference id: the file name */
  char *source;   /* biz_cert_png_source's JSON text (owned; parsed on the worker) */
  char *hex;      /* "\x" + hex of the PNG: the bytea parameter (owned, made on the worker) */
  char err[300];  /* why it did not render ("" when it did) */
} pngreq_t;

static void pr_free(void *arg) {
  pngreq_t *p = arg;
  free(p->source);
  free(p->hex);
  free(p);
}

static bd_pg_stmt_t S_SOURCE =
    BD_PG_STMT("SELECT png, reference_id, source FROM biz_cert_png_source($1::uuid, $2::bigint)");
static bd_pg_stmt_t S_STORE = BD_PG_STMT("SELECT biz_cert_store_png($1::uuid, $2::bytea)");

/* 200 with the PNG of a bytea result column. */
static void send_png(bd_req_t *req, const pngreq_t *p, const PGresult *res, int col) {
  size_t n;
  unsigned char *bin = PQunescapeBytea((const unsigned char *)PQgetvalue(res, 0, col), &n);
  if (!bin || n == 0) {
    if (bin) PQfreemem(bin);
    bd_biz_server_error(req, "the PNG could not be read");
    return;
  }
  bd_resp_headerf(req, "Content-Disposition", "inline; filename=\"%s.png\"", p->ref);
  /* stored once, never changed */
  bd_resp_header(req, "Cache-Control", "private, max-age=86400, immutable");
  bd_resp_send(req, 200, "image/png", (const char *)bin, n);
  PQfreemem(bin);
}

/* Pool thread: renders the PNG from p->source into p->hex, or sets p->err. */
static void png_work(bd_work_t *w) {
  pngreq_t *p = w->data;
  json_error_t je;
  json_t *src = json_loads(p->source, 0, &je);
  json_t *batch = json_object_get(src, "batch");
  bd_cert_layout_t *l = NULL;
  char lerr[300] = "";
  if (json_is_object(batch))
    l = bd_cert_layout_parse(json_object_get(batch, "layout"), lerr, sizeof lerr);
  if (!l) {
    snprintf(p->err, sizeof p->err, "the certificate's template does not render: %s",
             lerr[0] ? lerr : "no batch context");
    json_decref(src);
    return;
  }
  json_t *sigs = json_object_get(batch, "signatories");
  size_t ns = json_array_size(sigs);
  bd_cert_image_t **images = bd_calloc(ns + 1, sizeof *images);
  bd_cert_signatory_t *sv = bd_calloc(ns + 1, sizeof *sv);
  for (size_t i = 0; i < ns; i++) sv[i] = bd_biz_signatory(json_array_get(sigs, i), &images[i]);
  char url[512];
  snprintf(url, sizeof url, "%s/verify/%s", bd_biz_base_url(), p->ref);
  json_t *custom = json_object_get(src, "custom_data");
  bd_cert_input_t in = {
      .recipient_name = json_string_value(json_object_get(src, "name")),
      .recipient_email = json_string_value(json_object_get(src, "email")),
      .issue_date = json_string_value(json_object_get(src, "issue_date")),
      .reference_id = p->ref,
      .verification_url = url,
      .institution_name = json_string_value(json_object_get(batch, "institution_name")),
      .batch_name = json_string_value(json_object_get(batch, "name")),
      .custom_data = json_is_object(custom) ? custom : NULL,
      .signatories = sv,
      .nsignatories = ns};
  bd_cert_output_t out;
  if (bd_cert_render_ex(l, &in, BD_CERT_PNG, &out, p->err, sizeof p->err) == 0) {
    const char *vc = json_string_value(json_object_get(src, "credential"));
    bd_buf_t baked = BD_BUF_INIT;
    const bd_buf_t *png = &out.png;
    if (vc && *vc) { /* Open Badges baking, as issuance did before the PNG was derived */
      if (bd_vc_bake_png(out.png.data, out.png.len, vc, strlen(vc), &baked, p->err,
                         sizeof p->err) == 0)
        png = &baked;
      else
        png = NULL;
    }
    if (png) {
      p->hex = bd_malloc(png->len * 2 + 3);
      p->hex[0] = '\\', p->hex[1] = 'x';
      bd_hex_encode(p->hex + 2, png->data, png->len);
      p->err[0] = '\0';
    }
    bd_buf_free(&baked);
  }
  bd_cert_output_free(&out);
  for (size_t i = 0; i < ns; i++) bd_cert_image_free(images[i]);
  free(images);
  free(sv);
  bd_cert_layout_free(l);
  json_decref(src);
}

static void on_stored(void *ud, const bd_pg_result_t *r) {
  bd_req_t *req = ud;
  pngreq_t *p = req->ctx;
  if (r->err)
    bd_app_db_error(req, r);
  else if (PQntuples(r->res) != 1 || PQgetisnull(r->res, 0, 0))
    bd_biz_not_found(req, p->id); /* gone meanwhile */
  else
    send_png(req, p, r->res, 0);
  bd_req_release(req);
}

static void png_after(bd_work_t *w, int status) {
  pngreq_t *p = w->data;
  bd_req_t *req = p->req;
  g_inflight--;
  if (status == UV_ECANCELED) {
    bd_app_unavailable(req);
  } else if (!p->hex) {
    bd_warn("certificate %s: PNG: %s", p->id, p->err[0] ? p->err : "not rendered");
    bd_biz_server_error(req, p->err[0] ? p->err : "the PNG was not rendered");
  } else {
    /* stored even when the client has gone: the next request finds it */
    const char *params[] = {p->id, p->hex};
    bd_app_query(req, &S_STORE, 2, params, on_stored, req);
  }
  bd_req_release(req); /* the render's hold */
}

static void on_source(void *ud, const bd_pg_result_t *r) {
  bd_req_t *req = ud;
  pngreq_t *p = req->ctx;
  if (r->err) {
    bd_app_db_error(req, r);
  } else if (PQntuples(r->res) != 1) {
    bd_biz_not_found(req, p->id); /* unknown, another institution's, or not generated */
  } else {
    snprintf(p->ref, sizeof p->ref, "%s", PQgetvalue(r->res, 0, 1));
    if (!PQgetisnull(r->res, 0, 0)) {
      send_png(req, p, r->res, 0);
    } else if (g_inflight >= bd_app.cfg.cert_png_renders) {
      bd_resp_header(req, "Retry-After", "1");
      bd_resp_error(req, 503, "busy", "Certificate images are being rendered; retry shortly.", NULL);
    } else {
      p->source = bd_strdup(PQgetvalue(r->res, 0, 2));
      g_inflight++;
      p->work.work = png_work;
      p->work.after = png_after;
      p->work.data = p;
      bd_req_hold(req);
      bd_work_submit(&p->work);
    }
  }
  bd_req_release(req);
}

static void png_authed(bd_req_t *req, const bd_biz_caller_t *caller) {
  pngreq_t *p = bd_calloc(1, sizeof *p);
  p->req = req;
  req->ctx = p;
  bd_req_defer(req, pr_free, p);
  const char *id = bd_req_param(req, 0);
  snprintf(p->id, sizeof p->id, "%s", id);
  if (!bd_uuid_valid(bd_str_c(id))) {
    bd_biz_not_found(req, id);
    return;
  }
  char inst[24];
  bd_biz_inst_str(caller, inst);
  const char *params[] = {p->id, inst};
  bd_app_query(req, &S_SOURCE, 2, params, on_source, req);
}

void bd_biz_cert_png(bd_req_t *req) { bd_biz_authenticate(req, "certificates:view", png_authed); }

/* business_barcode.c: GET /business/certificates/{id}/barcode.svg, the
 * certificate's reference id as a Code 128 barcode (vec.digital's
 * barcode_path), for printed certificates and scanners at a desk.
 *
 * The symbol is encoded by zint (ZBarcode_Encode_and_Buffer_Vector) on the
 * work queue and written as SVG by hand from zint's vector (bars as
 * rectangles, the human-readable reference under them): zint 2.11 writes
 * SVG only to files. The output depends only on the reference id, so it is
 * cached by the client for good (immutable) and never stored. A failed
 * certificate has no barcode (404), like its other artefacts.
 */
#include "business.h"

#include "app.h"
#include "util.h"
#include "work.h"

#include <stdio.h>
#include <string.h>
#include <zint.h>

typedef struct {
  bd_work_t work;    /* encodes on the work queue */
  bd_req_t *req;     /* held while the work runs */
  char id[40];       /* the path id, for the 404 */
  char ref[64];      /* the reference id to encode */
  bd_buf_t svg;      /* the result; empty on failure */
  char err[128];     /* zint's message on failure */
} bc_t;

/* SVG text escaping (the reference id is base-32, but be exact anyway). */
static void put_esc(bd_buf_t *b, const unsigned char *s, int n) {
  for (int i = 0; i < n; i++) {
    switch (s[i]) {
    case '<': bd_buf_puts(b, "&lt;"); break;
    case '>': bd_buf_puts(b, "&gt;"); break;
    case '&': bd_buf_puts(b, "&amp;"); break;
    case '"': bd_buf_puts(b, "&quot;"); break;
    default: bd_buf_putc(b, (char)s[i]); break;
    }
  }
}

int bd_biz_barcode_svg(const char *text, bd_buf_t *out, char *err, size_t errsz) {
  struct zint_symbol *sym = ZBarcode_Create();
  if (!sym) {
    snprintf(err, errsz, "out of memory");
    return -1;
  }
  sym->symbology = BARCODE_CODE128;
  sym->show_hrt = 1; /* the reference in text under the bars */
  sym->scale = 1.0f;
  sym->height = 40.0f; /* bar height in modules: short enough for a certificate corner */
  int rc = ZBarcode_Encode_and_Buffer_Vector(sym, (const unsigned char *)text, (int)strlen(text), 0);
  if (rc >= ZINT_ERROR || !sym->vector) {
    snprintf(err, errsz, "barcode: %s", sym->errtxt);
    ZBarcode_Delete(sym);
    return -1;
  }
  const struct zint_vector *v = sym->vector;
  bd_buf_printf(out,
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                "<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" width=\"%.2f\" height=\"%.2f\" "
                "viewBox=\"0 0 %.2f %.2f\">\n"
                "<title>",
                v->width, v->height, v->width, v->height);
  put_esc(out, (const unsigned char *)text, (int)strlen(text));
  bd_buf_printf(out, "</title>\n<rect x=\"0\" y=\"0\" width=\"%.2f\" height=\"%.2f\" fill=\"#FFFFFF\"/>\n<path d=\"",
                v->width, v->height);
  /* One path of bars: smaller than a rect each, exact on any scale. */
  for (const struct zint_vector_rect *r = v->rectangles; r; r = r->next)
    bd_buf_printf(out, "M%.2f %.2fh%.2fv%.2fh%.2fZ", r->x, r->y, r->width, r->height, -r->width);
  bd_buf_puts(out, "\" fill=\"#000000\"/>\n");
  for (const struct zint_vector_string *s = v->strings; s; s = s->next) {
    const char *anchor = s->halign == 1 ? "start" : s->halign == 2 ? "end" : "middle";
    bd_buf_printf(out,
                  "<text x=\"%.2f\" y=\"%.2f\" text-anchor=\"%s\" font-family=\"Helvetica, sans-serif\" "
                  "font-size=\"%.1f\" fill=\"#000000\">",
                  s->x, s->y, anchor, s->fsize);
    put_esc(out, s->text, s->length);
    bd_buf_puts(out, "</text>\n");
  }
  bd_buf_puts(out, "</svg>\n");
  ZBarcode_Delete(sym);
  return 0;
}

static void bc_work(bd_work_t *w) {
  bc_t *b = w->data;
  if (bd_biz_barcode_svg(b->ref, &b->svg, b->err, sizeof b->err) != 0) bd_buf_reset(&b->svg);
}

static void bc_after(bd_work_t *w, int status) {
  bc_t *b = w->data;
  bd_req_t *req = b->req;
  if (status == UV_ECANCELED) {
    bd_app_unavailable(req);
  } else if (!b->svg.len) {
    bd_biz_server_error(req, b->err[0] ? b->err : "barcode could not be drawn");
  } else {
    bd_resp_headerf(req, "Content-Disposition", "inline; filename=\"%s-barcode.svg\"", b->ref);
    bd_resp_header(req, "Cache-Control", "private, max-age=86400, immutable"); /* the reference never changes */
    bd_resp_send(req, 200, "image/svg+xml", b->svg.data, b->svg.len);
  }
  bd_req_release(req);
}

static void bc_free(void *p) {
  bc_t *b = p;
  bd_buf_free(&b->svg);
}

static bd_pg_stmt_t S_REF = BD_PG_STMT("SELECT reference_id FROM biz_certificates WHERE id = $1::uuid"
                                       " AND institution_id = $2::bigint AND status <> 'failed'");

static void on_ref(void *ud, const bd_pg_result_t *r) {
  bd_req_t *req = ud;
  bc_t *b = req->ctx;
  if (r->err) {
    bd_app_db_error(req, r);
  } else if (PQntuples(r->res) != 1) {
    bd_biz_not_found(req, b->id); /* unknown, another institution's, or failed */
  } else {
    snprintf(b->ref, sizeof b->ref, "%s", PQgetvalue(r->res, 0, 0));
    b->work.work = bc_work;
    b->work.after = bc_after;
    b->work.data = b;
    bd_req_hold(req);
    bd_work_submit(&b->work);
  }
  bd_req_release(req);
}

static void barcode_authed(bd_req_t *req, const bd_biz_caller_t *caller) {
  const char *id = bd_req_param(req, 0);
  if (!bd_uuid_valid(bd_str_c(id))) {
    bd_biz_not_found(req, id);
    return;
  }
  bc_t *b = bd_req_calloc(req, sizeof *b);
  b->req = req;
  snprintf(b->id, sizeof b->id, "%s", id);
  req->ctx = b;
  bd_req_defer(req, bc_free, b);
  char inst[24];
  bd_biz_inst_str(caller, inst);
  const char *p[] = {b->id, inst};
  bd_app_query(req, &S_REF, 2, p, on_ref, req);
}

void bd_biz_cert_barcode(bd_req_t *req) { bd_biz_authenticate(req, "certificates:view", barcode_authed); }

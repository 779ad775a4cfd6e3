/* qr_logo.c: logos for QR designs: PNG (cairo), JPEG (libjpeg-turbo) and
 * SVG (librsvg), validated when a design is parsed and drawn, centred and
 * scaled into a square, when a code is rendered. Any thread. */
#include "qr_logo.h"

#include "common.h"

#include <stdio.h> /* before jpeglib.h, which uses FILE */

#include <jpeglib.h>
#include <librsvg/rsvg.h>
#include <setjmp.h>
#include <stdlib.h>

/* --- JPEG ------------------------------------------------------------------------ */

typedef struct {
  struct jpeg_error_mgr pub; /* libjpeg's part */
  jmp_buf jb;                /* where errors return to */
} jerr_t;

static void jpeg_fail(j_common_ptr cinfo) { longjmp(((jerr_t *)cinfo->err)->jb, 1); }
static void jpeg_quiet(j_common_ptr cinfo, int level) { (void)cinfo, (void)level; }

/* Decodes a JPEG into an RGB24 cairo surface (NULL on error). Only the
 * header is read when probe is true (surface then NULL, sizes set). */
static cairo_surface_t *jpeg_decode(const unsigned char *p, size_t n, bool probe, int *w, int *h) {
  struct jpeg_decompress_struct ci;
  jerr_t je;
  cairo_surface_t *volatile s = NULL;
  unsigned char *volatile row = NULL;
  ci.err = jpeg_std_error(&je.pub);
  je.pub.error_exit = jpeg_fail;
  je.pub.emit_message = jpeg_quiet;
  if (setjmp(je.jb)) {
    jpeg_destroy_decompress(&ci);
    free(row);
    if (s) cairo_surface_destroy(s);
    return NULL;
  }
  jpeg_create_decompress(&ci);
  jpeg_mem_src(&ci, p, (unsigned long)n);
  if (jpeg_read_header(&ci, TRUE) != JPEG_HEADER_OK) longjmp(je.jb, 1);
  *w = (int)ci.image_width;
  *h = (int)ci.image_height;
  /* the header alone gives the size: a bomb is refused before decoding */
  if (probe || *w <= 0 || *h <= 0 || *w > BD_QR_LOGO_MAX_SIDE || *h > BD_QR_LOGO_MAX_SIDE) {
    jpeg_destroy_decompress(&ci);
    return NULL;
  }
  ci.out_color_space = JCS_RGB;
  jpeg_start_decompress(&ci);
  s = cairo_image_surface_create(CAIRO_FORMAT_RGB24, (int)ci.output_width, (int)ci.output_height);
  unsigned char *data = cairo_image_surface_get_data(s);
  int stride = cairo_image_surface_get_stride(s);
  row = bd_malloc((size_t)ci.output_width * 3);
  while (ci.output_scanline < ci.output_height) {
    unsigned y = ci.output_scanline;
    JSAMPROW rp = row;
    jpeg_read_scanlines(&ci, &rp, 1);
    uint32_t *dst = (uint32_t *)(data + (size_t)y * (size_t)stride);
    for (unsigned x = 0; x < ci.output_width; x++)
      dst[x] = 0xFF000000u | (uint32_t)row[3 * x] << 16 | (uint32_t)row[3 * x + 1] << 8 | row[3 * x + 2];
  }
  jpeg_finish_decompress(&ci);
  jpeg_destroy_decompress(&ci);
  free(row);
  cairo_surface_mark_dirty(s);
  return s;
}

/* --- PNG ------------------------------------------------------------------------- */

typedef struct {
  const unsigned char *p; /* bytes */
  size_t n, off;          /* length, read position */
} mem_reader_t;

static cairo_status_t read_mem(void *closure, unsigned char *data, unsigned int len) {
  mem_reader_t *r = closure;
  if (r->off + len > r->n) return CAIRO_STATUS_READ_ERROR;
  memcpy(data, r->p + r->off, len);
  r->off += len;
  return CAIRO_STATUS_SUCCESS;
}

/* The size a PNG declares in its IHDR chunk, read before anything is
 * decoded: a few KB of deflate can declare 30000 x 30000 px (3.6 GB of
 * pixels), which is refused here instead of allocated by the decoder. */
static bool png_declared_size(const unsigned char *p, size_t n, uint32_t *w, uint32_t *h) {
  static const unsigned char sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  if (n < 24 || memcmp(p, sig, 8) != 0 || memcmp(p + 12, "IHDR", 4) != 0) return false;
  *w = (uint32_t)p[16] << 24 | (uint32_t)p[17] << 16 | (uint32_t)p[18] << 8 | p[19];
  *h = (uint32_t)p[20] << 24 | (uint32_t)p[21] << 16 | (uint32_t)p[22] << 8 | p[23];
  return true;
}

static cairo_surface_t *png_decode(const unsigned char *p, size_t n) {
  uint32_t dw, dh;
  if (!png_declared_size(p, n, &dw, &dh) || dw == 0 || dh == 0 || dw > BD_QR_LOGO_MAX_SIDE ||
      dh > BD_QR_LOGO_MAX_SIDE)
    return NULL;
  mem_reader_t rd = {p, n, 0};
  cairo_surface_t *s = cairo_image_surface_create_from_png_stream(read_mem, &rd);
  if (cairo_surface_status(s) != CAIRO_STATUS_SUCCESS) {
    cairo_surface_destroy(s);
    return NULL;
  }
  return s;
}

/* --- SVG ------------------------------------------------------------------------- */

static RsvgHandle *svg_open(const unsigned char *p, size_t n, double *w, double *h) {
  GError *e = NULL;
  RsvgHandle *hd = rsvg_handle_new_from_data(p, n, &e);
  if (!hd) {
    if (e) g_error_free(e);
    return NULL;
  }
  if (!rsvg_handle_get_intrinsic_size_in_pixels(hd, w, h) || *w <= 0 || *h <= 0) *w = *h = 100; /* viewBox only */
  return hd;
}

/* --- public (internal to the QR module) ------------------------------------------- */

bool bd_qr_logo_probe(int kind, const unsigned char *p, size_t n) {
  int w = 0, h = 0;
  switch (kind) {
  case BD_QR_LOGO_PNG: {
    cairo_surface_t *s = png_decode(p, n);
    if (!s) return false;
    w = cairo_image_surface_get_width(s);
    h = cairo_image_surface_get_height(s);
    cairo_surface_destroy(s);
    return w > 0 && h > 0 && w <= BD_QR_LOGO_MAX_SIDE && h <= BD_QR_LOGO_MAX_SIDE;
  }
  case BD_QR_LOGO_JPEG: {
    cairo_surface_t *s = jpeg_decode(p, n, false, &w, &h);
    if (!s) return false;
    cairo_surface_destroy(s);
    return true;
  }
  case BD_QR_LOGO_SVG: {
    double dw, dh;
    RsvgHandle *hd = svg_open(p, n, &dw, &dh);
    if (!hd) return false;
    g_object_unref(hd);
    return true;
  }
  default:
    return false;
  }
}

int bd_qr_logo_draw(cairo_t *cr, int kind, const unsigned char *p, size_t n, double x, double y, double side) {
  if (kind == BD_QR_LOGO_SVG) {
    double w, h;
    RsvgHandle *hd = svg_open(p, n, &w, &h);
    if (!hd) return -1;
    RsvgRectangle vp = {x, y, side, side}; /* librsvg keeps the aspect ratio inside the viewport */
    GError *e = NULL;
    gboolean ok = rsvg_handle_render_document(hd, cr, &vp, &e);
    if (e) g_error_free(e);
    g_object_unref(hd);
    return ok ? 0 : -1;
  }
  int w = 0, h = 0;
  cairo_surface_t *img = kind == BD_QR_LOGO_JPEG ? jpeg_decode(p, n, false, &w, &h) : png_decode(p, n);
  if (!img) return -1;
  int iw = cairo_image_surface_get_width(img), ih = cairo_image_surface_get_height(img);
  double sc = side / (iw > ih ? iw : ih);
  cairo_save(cr);
  cairo_translate(cr, x + (side - iw * sc) / 2, y + (side - ih * sc) / 2);
  cairo_scale(cr, sc, sc);
  cairo_set_source_surface(cr, img, 0, 0);
  cairo_paint(cr);
  cairo_restore(cr);
  cairo_surface_destroy(img);
  return 0;
}

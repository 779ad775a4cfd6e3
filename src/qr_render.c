/* qr_render.c: QR symbols to PNG, SVG and PDF.
 *
 * Plain designs (square modules and eyes, one solid colour, no logo) take a
 * fast path: a 1-bit palette PNG written directly with libpng at zlib level
 * 1, rows repeated for the scale. Everything else is drawn with cairo: body
 * modules as squares, rounded squares or dots in a solid colour or a
 * gradient, the three finder patterns ("eyes") as a frame and a ball with
 * their own shapes and colours, and the logo centred, optionally on a
 * cleared area with no modules under it. A quiet zone of four modules
 * surrounds the symbol.
 */
#include "qr.h"
#include "qr_internal.h"

#include <cairo-pdf.h>
#include <cairo-svg.h>
#include <cairo.h>
#include <math.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>

#define QUIET 4

static bool plain(const bd_qr_design_t *d) {
  return d->body == 0 && d->eye_frame == 0 && d->eye_ball == 0 && !d->gradient && !d->logo &&
         (!d->has_eye_frame_color || d->eye_frame_color == d->fg) &&
         (!d->has_eye_ball_color || d->eye_ball_color == d->fg);
}

/* --- fast path ------------------------------------------------------------------ */

static void png_write_buf(png_structp png, png_bytep data, png_size_t n) {
  bd_buf_append((bd_buf_t *)png_get_io_ptr(png), data, n);
}

static void png_flush_noop(png_structp png) { (void)png; }

static int render_png_plain(const QRcode *qr, const bd_qr_design_t *d, int size, bd_buf_t *out, char *err,
                            size_t errsz) {
  int total = qr->width + 2 * QUIET;
  int scale = size / total;
  if (scale < 1) {
    snprintf(err, errsz, "size %d px is too small for a %dx%d symbol", size, qr->width, qr->width);
    return -1;
  }
  int off = (size - scale * qr->width) / 2; /* quiet zone and centring */
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
  png_infop info = png ? png_create_info_struct(png) : NULL;
  png_bytep row = bd_calloc((size_t)(size + 7) / 8, 1);
  if (!png || !info) {
    free(row);
    png_destroy_write_struct(&png, &info);
    snprintf(err, errsz, "PNG encoder unavailable");
    return -1;
  }
  if (setjmp(png_jmpbuf(png))) {
    free(row);
    png_destroy_write_struct(&png, &info);
    snprintf(err, errsz, "PNG encoding failed");
    return -1;
  }
  png_set_write_fn(png, out, png_write_buf, png_flush_noop);
  png_set_IHDR(png, info, (png_uint_32)size, (png_uint_32)size, 1, PNG_COLOR_TYPE_PALETTE, PNG_INTERLACE_NONE,
               PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  png_color pal[2] = {{(png_byte)(d->bg >> 16), (png_byte)(d->bg >> 8), (png_byte)d->bg},
                      {(png_byte)(d->fg >> 16), (png_byte)(d->fg >> 8), (png_byte)d->fg}};
  png_set_PLTE(png, info, pal, 2);
  if (d->transparent) {
    png_byte trans[1] = {0};
    png_set_tRNS(png, info, trans, 1, NULL);
  }
  png_set_compression_level(png, 1);
  png_set_filter(png, 0, PNG_FILTER_NONE);
  png_write_info(png, info);
  size_t rowbytes = (size_t)(size + 7) / 8;
  /* blank rows of the quiet zone */
  memset(row, 0, rowbytes);
  for (int y = 0; y < off; y++) png_write_row(png, row);
  for (int my = 0; my < qr->width; my++) {
    memset(row, 0, rowbytes);
    const unsigned char *m = qr->data + (size_t)my * (size_t)qr->width;
    for (int mx = 0; mx < qr->width; mx++) {
      if (!(m[mx] & 1)) continue;
      int x0 = off + mx * scale;
      for (int x = x0; x < x0 + scale; x++) row[x >> 3] |= (png_byte)(0x80 >> (x & 7));
    }
    for (int k = 0; k < scale; k++) png_write_row(png, row);
  }
  memset(row, 0, rowbytes);
  for (int y = off + scale * qr->width; y < size; y++) png_write_row(png, row);
  png_write_end(png, info);
  png_destroy_write_struct(&png, &info);
  free(row);
  return 0;
}

/* --- cairo path ------------------------------------------------------------------ */

static void set_rgb(cairo_t *cr, uint32_t c) {
  cairo_set_source_rgb(cr, ((c >> 16) & 255) / 255.0, ((c >> 8) & 255) / 255.0, (c & 255) / 255.0);
}

static void rgb_stop(cairo_pattern_t *p, double off, uint32_t c) {
  cairo_pattern_add_color_stop_rgb(p, off, ((c >> 16) & 255) / 255.0, ((c >> 8) & 255) / 255.0, (c & 255) / 255.0);
}

static void rounded_rect(cairo_t *cr, double x, double y, double w, double h, double r) {
  cairo_new_sub_path(cr);
  cairo_arc(cr, x + w - r, y + r, r, -M_PI / 2, 0);
  cairo_arc(cr, x + w - r, y + h - r, r, 0, M_PI / 2);
  cairo_arc(cr, x + r, y + h - r, r, M_PI / 2, M_PI);
  cairo_arc(cr, x + r, y + r, r, M_PI, 3 * M_PI / 2);
  cairo_close_path(cr);
}

/* shape: 0 square, 1 rounded, 2 circle */
static void shape_path(cairo_t *cr, int shape, double x, double y, double s) {
  if (shape == 0) cairo_rectangle(cr, x, y, s, s);
  else if (shape == 1) rounded_rect(cr, x, y, s, s, s * 0.25);
  else {
    cairo_new_sub_path(cr);
    cairo_arc(cr, x + s / 2, y + s / 2, s / 2, 0, 2 * M_PI);
  }
}

static bool in_finder(int x, int y, int w) {
  return (x < 8 && y < 8) || (x >= w - 8 && y < 8) || (x < 8 && y >= w - 8);
}

static int draw(cairo_t *cr, const QRcode *qr, const bd_qr_design_t *d, double size, char *err, size_t errsz) {
  int w = qr->width;
  double m = size / (double)(w + 2 * QUIET);
  double o = QUIET * m;
  if (!d->transparent) {
    set_rgb(cr, d->bg);
    cairo_paint(cr);
  }
  /* the logo's square, in modules */
  double lside = d->logo ? d->logo_size * w : 0;
  double l0 = (w - lside) / 2, l1 = l0 + lside;
  cairo_pattern_t *pat = NULL;
  if (d->gradient) {
    if (d->gradient == 1) pat = cairo_pattern_create_linear(0, o, 0, size - o);
    else if (d->gradient == 2) pat = cairo_pattern_create_linear(o, 0, size - o, 0);
    else if (d->gradient == 3) pat = cairo_pattern_create_linear(o, o, size - o, size - o);
    else pat = cairo_pattern_create_radial(size / 2, size / 2, 0, size / 2, size / 2, (size - 2 * o) / M_SQRT2);
    rgb_stop(pat, 0, d->grad_start);
    rgb_stop(pat, 1, d->grad_end);
  }
  /* body */
  for (int y = 0; y < w; y++)
    for (int x = 0; x < w; x++) {
      if (!(qr->data[y * w + x] & 1) || in_finder(x, y, w)) continue;
      if (d->logo && d->clear_background && x + 1 > l0 && x < l1 && y + 1 > l0 && y < l1) continue;
      double px = o + x * m, py = o + y * m;
      if (d->body == 0) cairo_rectangle(cr, px, py, m + 0.01, m + 0.01); /* overlap: no hairlines */
      else if (d->body == 1) rounded_rect(cr, px, py, m, m, m * 0.3);
      else {
        cairo_new_sub_path(cr);
        cairo_arc(cr, px + m / 2, py + m / 2, m * 0.46, 0, 2 * M_PI);
      }
    }
  if (pat) cairo_set_source(cr, pat);
  else set_rgb(cr, d->fg);
  cairo_fill(cr);
  /* eyes */
  int corners[3][2] = {{0, 0}, {w - 7, 0}, {0, w - 7}};
  for (int i = 0; i < 3; i++) {
    double ex = o + corners[i][0] * m, ey = o + corners[i][1] * m;
    cairo_save(cr);
    cairo_set_fill_rule(cr, CAIRO_FILL_RULE_EVEN_ODD);
    shape_path(cr, d->eye_frame, ex, ey, 7 * m);
    shape_path(cr, d->eye_frame, ex + m, ey + m, 5 * m);
    if (d->has_eye_frame_color) set_rgb(cr, d->eye_frame_color);
    else if (pat) cairo_set_source(cr, pat);
    else set_rgb(cr, d->fg);
    cairo_fill(cr);
    cairo_restore(cr);
    shape_path(cr, d->eye_ball, ex + 2 * m, ey + 2 * m, 3 * m);
    if (d->has_eye_ball_color) set_rgb(cr, d->eye_ball_color);
    else if (pat) cairo_set_source(cr, pat);
    else set_rgb(cr, d->fg);
    cairo_fill(cr);
  }
  if (pat) cairo_pattern_destroy(pat);
  /* logo */
  if (d->logo) {
    double side = lside * m;
    double lx = o + l0 * m, ly = o + l0 * m;
    if (d->clear_background && !d->transparent) {
      set_rgb(cr, d->bg);
      cairo_rectangle(cr, lx, ly, side, side);
      cairo_fill(cr);
    }
    if (bd_qr_logo_draw(cr, d->logo_kind, d->logo, d->logo_len, lx, ly, side) != 0) {
      snprintf(err, errsz, "the logo could not be decoded");
      return -1;
    }
  }
  return 0;
}

static cairo_status_t write_buf(void *closure, const unsigned char *data, unsigned int len) {
  bd_buf_append((bd_buf_t *)closure, data, len);
  return CAIRO_STATUS_SUCCESS;
}

static int render_cairo(const QRcode *qr, const bd_qr_design_t *d, bd_qr_format_t fmt, int size, bd_buf_t *out,
                        char *err, size_t errsz) {
  cairo_surface_t *s;
  if (fmt == BD_QR_PNG) s = cairo_image_surface_create(CAIRO_FORMAT_ARGB32, size, size);
  else if (fmt == BD_QR_SVG) s = cairo_svg_surface_create_for_stream(write_buf, out, size, size);
  else s = cairo_pdf_surface_create_for_stream(write_buf, out, size, size);
  if (cairo_surface_status(s) != CAIRO_STATUS_SUCCESS) {
    cairo_surface_destroy(s);
    snprintf(err, errsz, "cannot create the drawing surface");
    return -1;
  }
  cairo_t *cr = cairo_create(s);
  int rc = draw(cr, qr, d, size, err, errsz);
  cairo_destroy(cr);
  if (rc == 0 && fmt == BD_QR_PNG && cairo_surface_write_to_png_stream(s, write_buf, out) != CAIRO_STATUS_SUCCESS) {
    snprintf(err, errsz, "PNG encoding failed");
    rc = -1;
  }
  cairo_surface_finish(s);
  cairo_surface_destroy(s);
  return rc;
}

int bd_qr_render(const char *payload, const bd_qr_design_t *d, bd_qr_format_t fmt, int size, bd_buf_t *out, char *err,
                 size_t errsz) {
  if (size < 32 || size > 8192) {
    snprintf(err, errsz, "size must be between 128 and 4096");
    return -1;
  }
  QRcode *qr = QRcode_encodeString8bit(payload, 0, bd_qr_level(d->ec));
  if (!qr) {
    snprintf(err, errsz, "the content does not fit in a QR code at error correction level %c", d->ec);
    return -1;
  }
  int rc = (fmt == BD_QR_PNG && plain(d)) ? render_png_plain(qr, d, size, out, err, errsz)
                                          : render_cairo(qr, d, fmt, size, out, err, errsz);
  QRcode_free(qr);
  return rc;
}

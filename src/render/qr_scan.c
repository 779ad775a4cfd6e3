/* qr_scan.c: the decoding scannability guard (qr_scan.h). Any thread. */
#include "qr_scan.h"

#include "qr_internal.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <zbar.h>

/* The test image as 8-bit grey (it is opaque: drawn on the declared
 * background), with Rec. 601 luma weights (what libzbar's own converters
 * use) or Rec. 709 ones (what ImageMagick's, and so zbarimg's, use for
 * PNG files). Coloured designs binarise differently under the two: a code
 * must read under both. */
typedef struct {
  unsigned char *px; /* width * height bytes (owned) */
  int wd, ht;        /* size in pixels */
} grey_t;

static bool grey_of(cairo_surface_t *s, bool rec709, grey_t *g) {
  const unsigned wr = rec709 ? 2126 : 2990, wg = rec709 ? 7152 : 5870, wb = rec709 ? 722 : 1140;
  g->wd = cairo_image_surface_get_width(s);
  g->ht = cairo_image_surface_get_height(s);
  int stride = cairo_image_surface_get_stride(s);
  const unsigned char *data = cairo_image_surface_get_data(s);
  g->px = malloc((size_t)g->wd * (size_t)g->ht);
  if (!g->px) return false;
  for (int y = 0; y < g->ht; y++) {
    const uint32_t *row = (const uint32_t *)(const void *)(data + (size_t)y * (size_t)stride);
    unsigned char *o = g->px + (size_t)y * (size_t)g->wd;
    for (int x = 0; x < g->wd; x++) {
      uint32_t p = row[x];
      o[x] = (unsigned char)((wr * ((p >> 16) & 255) + wg * ((p >> 8) & 255) + wb * (p & 255) +
                              5000) /
                             10000);
    }
  }
  return true;
}

/* zbar (QR only): true when one symbol reads exactly payload. zbar keeps
 * no global state: a scanner per call is thread-safe. */
static bool zbar_reads(const grey_t *g, const char *payload) {
  bool ok = false;
  zbar_image_scanner_t *sc = zbar_image_scanner_create();
  zbar_image_t *img = zbar_image_create();
  if (sc && img) {
    zbar_image_scanner_set_config(sc, ZBAR_NONE, ZBAR_CFG_ENABLE, 0);
    zbar_image_scanner_set_config(sc, ZBAR_QRCODE, ZBAR_CFG_ENABLE, 1);
    zbar_image_set_format(img, zbar_fourcc('Y', '8', '0', '0'));
    zbar_image_set_size(img, (unsigned)g->wd, (unsigned)g->ht);
    zbar_image_set_data(img, g->px, (unsigned long)g->wd * (unsigned long)g->ht, NULL);
    if (zbar_scan_image(sc, img) > 0) {
      size_t n = strlen(payload);
      for (const zbar_symbol_t *sym = zbar_image_first_symbol(img); sym && !ok;
           sym = zbar_symbol_next(sym))
        ok = zbar_symbol_get_type(sym) == ZBAR_QRCODE && zbar_symbol_get_data_length(sym) == n &&
             memcmp(zbar_symbol_get_data(sym), payload, n) == 0;
    }
  }
  if (img) zbar_image_destroy(img);
  if (sc) zbar_image_scanner_destroy(sc);
  return ok;
}

/* Length of the run of pixels on the same side of thr as (x, y), walking
 * (dx, dy) from it, at most max steps. */
static int run_len(const grey_t *g, int x, int y, int dx, int dy, int thr, int max) {
  if (x < 0 || y < 0 || x >= g->wd || y >= g->ht) return 0;
  bool dark = g->px[(size_t)y * (size_t)g->wd + (size_t)x] < thr;
  int n = 0;
  while (n < max && x >= 0 && y >= 0 && x < g->wd && y < g->ht &&
         (g->px[(size_t)y * (size_t)g->wd + (size_t)x] < thr) == dark)
    x += dx, y += dy, n++;
  return n;
}

/* The finder patterns' cross-check: through each centre, along the row,
 * the column and both diagonals, the pattern must read dark-light-dark-
 * light-dark in proportions 1:1:3:1:1 (each run within FINDER_TOL, the ball
 * within FINDER_BALL_TOL, of the unit the line's total gives). Readers of
 * the ZXing family confirm candidates this way, diagonals included; zbar
 * checks rows and columns only. A circular frame around a square ball (or
 * the reverse) keeps the row and column right and breaks the diagonals:
 * such codes read in zbar and hardly anywhere else. The tolerances come
 * from measuring every eye shape pair we draw against zxing-cpp: the pairs
 * it reads stay within 0.42 of the unit (runs) and 0.62 (ball); the two it
 * does not read (circle frame with square ball, square frame with circle
 * ball) reach 0.87 and 1.2 on the ball. */
#define FINDER_TOL 0.5
#define FINDER_BALL_TOL 0.75

static bool finders_ok(const grey_t *g, int width) {
  static const int dirs[4][2] = {{1, 0}, {0, 1}, {1, 1}, {1, -1}};
  int m = g->wd / (width + 8), off = (g->wd - m * width) / 2;
  const double c0 = off + 3.5 * m, c1 = off + (width - 3.5) * m;
  const double centres[3][2] = {{c0, c0}, {c1, c0}, {c0, c1}};
  int bg = g->px[0]; /* the quiet zone's corner */
  bool bad = false;
  for (int f = 0; f < 3; f++) {
    int cx = (int)centres[f][0], cy = (int)centres[f][1];
    int ball = g->px[(size_t)cy * (size_t)g->wd + (size_t)cx];
    int thr = (bg + ball + 1) / 2;
    if (ball >= thr) return false; /* no dark centre at all */
    for (int d = 0; d < 4; d++) {
      int dx = dirs[d][0], dy = dirs[d][1], lim = 5 * m, r[2][3];
      for (int side = 0; side < 2; side++) {
        int sx = side ? -dx : dx, sy = side ? -dy : dy, x = cx, y = cy;
        for (int k = 0; k < 3; k++) {
          r[side][k] = run_len(g, x, y, sx, sy, thr, lim);
          x += sx * r[side][k], y += sy * r[side][k];
        }
      }
      double runs[5] = {r[0][2], r[0][1], r[0][0] + r[1][0] - 1, r[1][1], r[1][2]};
      double u = (runs[0] + runs[1] + runs[2] + runs[3] + runs[4]) / 7;
      for (int k = 0; k < 5; k++) {
        double want = k == 2 ? 3 * u : u, tol = k == 2 ? FINDER_BALL_TOL : FINDER_TOL;
        if (runs[k] < 1 || fabs(runs[k] - want) > tol * u) bad = true;
      }
    }
  }
  return !bad;
}

enum { T_ZBAR = 1, T_FINDERS = 2 }; /* what a test render is checked for */

/* 1 passes the tests, 0 does not, -1 could not draw (err set). zbar must
 * read it under both luma conversions. size: the image's side. */
static int passes_at(const QRcode *qr, const char *payload, const bd_qr_design_t *d, int size,
                     int tests, char *err, size_t errsz) {
  cairo_surface_t *s = bd_qr_raster(qr, d, size, err, errsz);
  if (!s) return -1;
  int rc = 1;
  for (int conv = 0; conv < ((tests & T_ZBAR) ? 2 : 1) && rc == 1; conv++) {
    grey_t g;
    if (!grey_of(s, conv == 1, &g)) {
      snprintf(err, errsz, "out of memory");
      rc = -1;
      break;
    }
    if ((tests & T_FINDERS) && conv == 0 && !finders_ok(&g, qr->width)) rc = 0;
    if (rc == 1 && (tests & T_ZBAR) && !zbar_reads(&g, payload)) rc = 0;
    free(g.px);
  }
  cairo_surface_destroy(s);
  return rc;
}

enum { F_FINDERS, F_SMALL }; /* which test failed */

/* The tests, cheapest first: the finder cross-check on a large render (the
 * eyes only matter there: body modules drawn square, no logo, which keeps
 * it cheap); then zbar on the design as served at the smallest module
 * size. Not zbar at large module sizes: its finder search misses round
 * eyes there now and then (a circle-eyed code at 30 px per module may fail
 * where the same code at 29 or 31 reads), while ZXing-family readers, and
 * phones, read them; a verdict that flips with the pixel grid would refuse
 * good designs at random. 1 all pass, 0 one does not, -1 error. */
static int passes(const QRcode *qr, const char *payload, const bd_qr_design_t *d, int *failed,
                  char *err, size_t errsz) {
  bd_qr_design_t eyes = *d;
  eyes.body = 0;
  eyes.logo = NULL;
  int quiet = qr->width + 8; /* the symbol and its quiet zone, in modules */
  *failed = F_FINDERS;
  int rc = passes_at(qr, payload, &eyes, quiet * BD_QR_SCAN_LARGE_PX, T_FINDERS, err, errsz);
  if (rc == 1) {
    *failed = F_SMALL;
    rc = passes_at(qr, payload, d, quiet * BD_QR_SCAN_MODULE_PX, T_ZBAR, err, errsz);
  }
  return rc;
}

int bd_qr_symbol_version(const char *payload, char ec) {
  QRcode *qr = payload && *payload ? bd_qr_encode(payload, ec) : NULL;
  int v = qr ? qr->version : 0;
  if (qr) QRcode_free(qr);
  return v;
}

bool bd_qr_scan_decodes(const char *payload, const bd_qr_design_t *d, int m) {
  char err[128];
  QRcode *qr = payload && *payload ? bd_qr_encode(payload, d->ec) : NULL;
  if (!qr) return false;
  int rc = passes_at(qr, payload, d, (qr->width + 8) * m, T_ZBAR, err, sizeof err);
  QRcode_free(qr);
  return rc == 1;
}

static unsigned luma(uint32_t c) {
  return 299 * ((c >> 16) & 255) + 587 * ((c >> 8) & 255) + 114 * (c & 255);
}

/* The variants tried when a design does not scan, most likely culprit
 * first: each removes one feature (a shallow copy: the logo bytes stay
 * borrowed from the original, never freed here). */
enum { V_LOGO, V_EYE_FRAME, V_EYE_BALL, V_EYES, V_BODY, V_EYE_FRAME_COLOR, V_EYE_BALL_COLOR, V_GRADIENT, V_N };

static bool variant(const bd_qr_design_t *d, int v, bd_qr_design_t *out, const char **param) {
  *out = *d;
  switch (v) {
    case V_LOGO:
      out->logo = NULL;
      *param = "design.logo";
      return d->logo != NULL;
    case V_EYE_FRAME:
      out->eye_frame = 0;
      *param = "design.shapes.eye_frame";
      return d->eye_frame != 0;
    case V_EYE_BALL:
      out->eye_ball = 0;
      *param = "design.shapes.eye_ball";
      return d->eye_ball != 0;
    case V_EYES: /* both: a pair may only read as square + square */
      out->eye_frame = out->eye_ball = 0;
      *param = "design.shapes.eye_frame";
      return d->eye_frame != 0 && d->eye_ball != 0;
    case V_BODY:
      out->body = 0;
      *param = "design.shapes.body";
      return d->body != 0;
    case V_EYE_FRAME_COLOR:
      out->has_eye_frame_color = false;
      *param = "design.eye_colors.frame";
      return d->has_eye_frame_color;
    case V_EYE_BALL_COLOR:
      out->has_eye_ball_color = false;
      *param = "design.eye_colors.ball";
      return d->has_eye_ball_color;
    case V_GRADIENT: {
      /* the darker stop painted solid: the lighter one is the suspect */
      bool start_darker = luma(d->grad_start) <= luma(d->grad_end);
      out->gradient = 0;
      out->fg = start_darker ? d->grad_start : d->grad_end;
      *param = start_darker ? "design.gradient.end" : "design.gradient.start";
      return d->gradient != 0;
    }
  }
  return false;
}

int bd_qr_scan_check(const char *payload, const bd_qr_design_t *d, char *err, size_t errsz,
                     const char **param) {
  *param = "design";
  if (!payload || !*payload) {
    snprintf(err, errsz, "the content is empty");
    return BD_QR_SCAN_ERROR;
  }
  QRcode *qr = bd_qr_encode(payload, d->ec);
  if (!qr) {
    snprintf(err, errsz, "%s", errno == ERANGE ? "the content does not fit in a QR code at this level"
                                               : "the content could not be encoded");
    return BD_QR_SCAN_ERROR;
  }
  int failed;
  int rc = passes(qr, payload, d, &failed, err, errsz);
  if (rc != 0) {
    QRcode_free(qr);
    return rc == 1 ? BD_QR_SCAN_OK : BD_QR_SCAN_ERROR;
  }
  const char *culprit = NULL, *first = NULL;
  for (int v = 0; v < V_N && !culprit; v++) {
    bd_qr_design_t alt;
    const char *p;
    if (!variant(d, v, &alt, &p)) continue;
    if (!first) first = p;
    char e2[128];
    int f2;
    if (passes(qr, payload, &alt, &f2, e2, sizeof e2) == 1) culprit = p;
  }
  QRcode_free(qr);
  *param = culprit ? culprit : first ? first : "design";
  size_t n = strlen(payload), o;
  if (failed == F_FINDERS)
    o = (size_t)snprintf(err, errsz,
                         "this design does not scan: its eyes (finder patterns) lose the 1:1:3:1:1 "
                         "proportions readers check along the diagonals");
  else
    o = (size_t)snprintf(err, errsz,
                         "this design does not scan: a test rendering of the longest content (%zu "
                         "bytes, error correction %c) at %d px per module (the smallest we serve) "
                         "could not be read by a QR decoder",
                         n, d->ec, BD_QR_SCAN_MODULE_PX);
  if (o >= errsz) return BD_QR_SCAN_FAILS;
  if (culprit && !strncmp(culprit, "design.shapes.eye_", 18))
    snprintf(err + o, errsz - o,
             "; it reads with square eyes. Pair the eye shapes: a circle eye_frame with a circle "
             "or rounded eye_ball, a square one with a square or rounded eye_ball, or use rounded "
             "or square ones");
  else if (culprit)
    snprintf(err + o, errsz - o, "; it reads without %s: change it, or raise design.error_correction",
             culprit);
  else
    snprintf(err + o, errsz - o, "; simplify it (%s first) or raise design.error_correction", *param);
  return BD_QR_SCAN_FAILS;
}

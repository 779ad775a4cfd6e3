/* qr_render.c: QR symbols to PNG, SVG and PDF. Any thread (see qr.h).
 *
 * Geometry: the symbol is w x w modules inside a quiet zone of 4 modules.
 * Raster output (PNG) uses a whole number of pixels per module,
 * m = size / (w + 8), so module edges fall on pixel edges and every module
 * has exactly the same size (what decoders sample); the pixels left over
 * widen the quiet zone, centring the symbol. Vector output (SVG, PDF) uses
 * the exact fraction size / (w + 8).
 *
 * Paths, fastest first:
 *  - plain PNG (bd_qr_design_is_plain): a 1-bit palette PNG whose deflate
 *    stream is written by hand (see "fast path: plain PNG" below): each
 *    distinct row once, its copies as one back-reference. No libpng, no
 *    zlib compressor; about 2.3x the rate of a libqrencode + libpng (zlib
 *    level 1) loop at 1024 px, where QR encoding is now most of the cost.
 *    Transparent backgrounds use a tRNS chunk on palette entry 0.
 *  - plain SVG: written as text, one <path> of horizontal runs in module
 *    units under a viewBox (exact, a few KB, crispEdges).
 *  - everything else: cairo. Body modules as squares (merged runs),
 *    "rounded" (a module's corner is rounded only where both neighbours
 *    on that corner are light, so runs stay joined) or dots; the three
 *    finder patterns drawn as a 7x7 frame and a 3x3 ball with their own
 *    shapes and colours; a gradient over the symbol's area; the logo
 *    centred, with no modules under it when clear_background is set. PNG
 *    from cairo is encoded by libpng at zlib level 1, no filter (RGB, or RGBA when the
 *    background is transparent) instead of cairo's default level 6.
 *    Raster body shapes fall back to squares below 4 px per module, where
 *    anti-aliased dots and arcs would blur into grey and stop scanning.
 */
#include "qr.h"
#include "qr_internal.h"

#include <cairo-pdf.h>
#include <cairo-svg.h>
#include <cairo.h>
#include <errno.h>
#include <math.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <zlib.h>

#define QUIET 4 /* modules of quiet zone on each side (ISO 18004) */

static int rerr(char *err, size_t errsz, const char *msg) {
  snprintf(err, errsz, "%s", msg);
  return -1;
}

static bool dark(const QRcode *qr, int x, int y) {
  return x >= 0 && y >= 0 && x < qr->width && y < qr->width &&
         (qr->data[(size_t)y * (size_t)qr->width + (size_t)x] & 1);
}

/* The finder patterns with their separators (8x8 in three corners). */
static bool in_finder(int x, int y, int w) {
  return (x < 8 && y < 8) || (x >= w - 8 && y < 8) || (x < 8 && y >= w - 8);
}

/* --- libpng into memory ------------------------------------------------------------ */

static void png_write_buf(png_structp png, png_bytep data, png_size_t n) {
  bd_buf_append((bd_buf_t *)png_get_io_ptr(png), data, n);
}

static void png_flush_noop(png_structp png) { (void)png; }

/* Everything a png write needs to unwind on error. */
typedef struct {
  png_structp png; /* libpng writer */
  png_infop info;  /* its header data */
  png_bytep row;   /* row buffer (owned) */
} pngw_t;

static void pngw_destroy(pngw_t *w) {
  png_destroy_write_struct(&w->png, &w->info);
  free(w->row);
  w->row = NULL;
}

/* --- fast path: plain PNG ---------------------------------------------------------- */

/* The plain PNG is written without libpng or zlib's deflate: its pixel
 * data is so regular that a purpose-built deflate stream is both smaller
 * and far cheaper than general LZ77 matching. The image is 1 bit per pixel
 * (palette: 0 background, 1 foreground), filter type None on every row,
 * and one fixed-Huffman deflate block (RFC 1951 3.2.6) in which
 *  - the first row of each run of identical rows (a quiet-zone row, or the
 *    first pixel row of a module row) is coded as literals, every run of
 *    equal bytes as one literal plus a distance-1 match;
 *  - the other m - 1 copies are one overlapping match at distance
 *    rowbytes + 1 (split in pieces of at most 258), which inflaters expand
 *    by copying the previous row.
 * The zlib Adler-32 is computed once per distinct row and extended over
 * its copies in closed form (adler_repeat), CRCs with zlib's crc32. Any
 * conforming decoder reads the result (the tests decode it with cairo,
 * i.e. libpng + zlib, and with zbar, and compare it pixel by pixel with
 * the cairo path). Measured at 1024 px for a 61-byte URL: the PNG part
 * takes a fraction of libpng's time at zlib level 1; the file is ~3.3 KB
 * instead of ~1.9 KB (fixed Huffman codes, no cross-row matching), a fair
 * trade for a server whose bottleneck is rendering. */

/* Fixed Huffman tables (RFC 1951 3.2.5): length symbols 257.., distances. */
static const uint16_t k_len_base[29] = {3,  4,  5,  6,   7,   8,   9,   10,  11, 13,
                                        15, 17, 19, 23,  27,  31,  35,  43,  51, 59,
                                        67, 83, 99, 115, 131, 163, 195, 227, 258};
static const uint8_t k_len_extra[29] = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2,
                                        2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0};
static const uint16_t k_dist_base[30] = {
    1,   2,   3,   4,   5,   7,    9,    13,   17,   25,   33,   49,   65,    97,    129,
    193, 257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577};
static const uint8_t k_dist_extra[30] = {0, 0, 0, 0, 1, 1, 2, 2,  3,  3,  4,  4,  5,  5,  6,
                                         6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13};

/* An LSB-first bit writer into a bd_buf_t whose room was reserved. */
typedef struct {
  unsigned char *p; /* next byte to write (inside the reserved room) */
  uint64_t acc;     /* pending bits, LSB first */
  unsigned n;       /* how many */
} bitw_t;

static inline void bw_put(bitw_t *w, uint32_t v, unsigned n) {
  w->acc |= (uint64_t)v << w->n;
  w->n += n;
  while (w->n >= 8) {
    *w->p++ = (unsigned char)w->acc;
    w->acc >>= 8;
    w->n -= 8;
  }
}

/* Huffman codes go MSB first: reverse them into the LSB-first stream. */
static inline void bw_code(bitw_t *w, uint32_t code, unsigned n) {
  uint32_t r = 0;
  for (unsigned i = 0; i < n; i++) r = (r << 1) | ((code >> i) & 1);
  bw_put(w, r, n);
}

static inline void bw_literal(bitw_t *w, unsigned v) {
  if (v < 144)
    bw_code(w, 0x30 + v, 8);
  else
    bw_code(w, 0x190 + (v - 144), 9);
}

static inline void bw_symbol(bitw_t *w, unsigned sym) { /* 256..287 */
  if (sym < 280)
    bw_code(w, sym - 256, 7);
  else
    bw_code(w, 0xC0 + (sym - 280), 8);
}

/* One match, 3 <= len <= 258, 1 <= dist <= 32768. */
static void bw_match1(bitw_t *w, unsigned len, unsigned dist) {
  unsigned li = 28;
  while (k_len_base[li] > len) li--;
  bw_symbol(w, 257 + li);
  if (k_len_extra[li]) bw_put(w, len - k_len_base[li], k_len_extra[li]);
  unsigned di = 29;
  while (k_dist_base[di] > dist) di--;
  bw_code(w, di, 5);
  if (k_dist_extra[di]) bw_put(w, dist - k_dist_base[di], k_dist_extra[di]);
}

/* Copies len bytes from dist back (len may exceed dist: the copy then
 * repeats); len >= 3, or literals of byte `last` when shorter. */
static void bw_match(bitw_t *w, size_t len, unsigned dist, unsigned last) {
  while (len > 0) {
    if (len < 3) { /* only reached with dist 1: the bytes equal `last` */
      bw_literal(w, last);
      len--;
      continue;
    }
    size_t c = len > 258 ? 258 : len;
    if (len - c > 0 && len - c < 3) c = len - 3; /* never leave a 1-2 byte tail */
    bw_match1(w, (unsigned)c, dist);
    len -= c;
  }
}

/* Big-endian 32-bit store. */
static void be32(unsigned char *p, uint32_t v) {
  p[0] = (unsigned char)(v >> 24), p[1] = (unsigned char)(v >> 16), p[2] = (unsigned char)(v >> 8),
  p[3] = (unsigned char)v;
}

/* Appends a whole PNG chunk. */
static void png_chunk(bd_buf_t *out, const char *type, const unsigned char *data, uint32_t n) {
  unsigned char h[8];
  be32(h, n);
  memcpy(h + 4, type, 4);
  bd_buf_append(out, h, 8);
  if (n) bd_buf_append(out, data, n);
  uLong crc = crc32(0, (const Bytef *)type, 4);
  if (n) crc = crc32(crc, data, n); /* crc32(c, NULL, 0) would return the seed 0, not c */
  be32(h, (uint32_t)crc);
  bd_buf_append(out, h, 4);
}

/* Adler-32 (RFC 1950) of the data summed by `adler` followed by k copies of
 * a row of rl bytes whose own Adler-32 is row_adler, in O(1): with s the
 * row's byte sum and t = sum (rl - i) * x[i], each copy adds s to A and
 * rl * A_before + t to B, so k copies add k*s to A and
 * k*t + rl * (k*A0 + s*k*(k-1)/2) to B. */
static uLong adler_repeat(uLong adler, uLong row_adler, size_t rl, uint64_t k) {
  const uint64_t MOD = 65521;
  uint64_t a0 = adler & 0xFFFF, b0 = adler >> 16;
  uint64_t s = ((row_adler & 0xFFFF) + MOD - 1) % MOD;     /* A of the row = 1 + s */
  uint64_t t = ((row_adler >> 16) + MOD - rl % MOD) % MOD; /* B of the row = rl*1 + t */
  uint64_t tri = (k * (k - 1) / 2) % MOD;                  /* k <= 4096: no overflow */
  uint64_t a = (a0 + (k % MOD) * s) % MOD;
  uint64_t inner = ((k % MOD) * a0 + s * tri) % MOD;
  uint64_t b = (b0 + (k % MOD) * t + (rl % MOD) * inner) % MOD;
  return (uLong)(b << 16 | a);
}

/* Codes `count` copies of the row row[0..rl) (filter byte included). */
static void deflate_rows(bd_buf_t *out, bitw_t *w, uLong *adler, const unsigned char *row,
                         size_t rl, int count) {
  if (count <= 0) return;
  /* room: at most 9 bits a byte for the first copy, ~4 bytes per match */
  size_t matches = ((size_t)(count - 1) * rl) / 255 + 2;
  size_t off = (size_t)(w->p - (unsigned char *)out->data);
  out->len = off;
  bd_buf_reserve(out, rl * 2 + matches * 5 + 64);
  w->p = (unsigned char *)out->data + off;
  for (size_t i = 0; i < rl;) {
    size_t j = i + 1;
    while (j < rl && row[j] == row[i]) j++;
    bw_literal(w, row[i]);
    if (j - i - 1 >= 3)
      bw_match(w, j - i - 1, 1, row[i]);
    else
      for (size_t k = i + 1; k < j; k++) bw_literal(w, row[k]);
    i = j;
  }
  if (count > 1) bw_match(w, (size_t)(count - 1) * rl, (unsigned)rl, 0);
  *adler = adler_repeat(*adler, adler32(1, row, (uInt)rl), rl, (uint64_t)count);
}

static int render_png_plain(const QRcode *qr, const bd_qr_design_t *d, int size, int m,
                            bd_buf_t *out, char *err, size_t errsz) {
  int w = qr->width;
  int off = (size - m * w) / 2; /* quiet zone (at least 4 modules) and centring */
  size_t rowbytes = ((size_t)size + 7) / 8, rl = rowbytes + 1;
  unsigned char *row = bd_malloc(rl), *zero = bd_calloc(rl, 1);

  bd_buf_append(out, "\x89PNG\r\n\x1a\n", 8);
  unsigned char ihdr[13];
  be32(ihdr, (uint32_t)size);
  be32(ihdr + 4, (uint32_t)size);
  ihdr[8] = 1;  /* bit depth */
  ihdr[9] = 3;  /* colour type: palette */
  ihdr[10] = 0; /* deflate */
  ihdr[11] = 0; /* adaptive filtering (we use None) */
  ihdr[12] = 0; /* not interlaced */
  png_chunk(out, "IHDR", ihdr, 13);
  unsigned char plte[6] = {(unsigned char)(d->bg >> 16), (unsigned char)(d->bg >> 8),
                           (unsigned char)d->bg,         (unsigned char)(d->fg >> 16),
                           (unsigned char)(d->fg >> 8),  (unsigned char)d->fg};
  png_chunk(out, "PLTE", plte, 6);
  if (d->transparent)
    png_chunk(out, "tRNS", (const unsigned char *)"\0", 1); /* entry 0: fully transparent */

  /* IDAT: length patched at the end */
  size_t idat = out->len;
  bd_buf_append(out, "\0\0\0\0IDAT\x78\x01", 10); /* zlib header: deflate, 32K window, no dict */
  bitw_t bw = {(unsigned char *)out->data + out->len, 0, 0};
  bw_put(&bw, 1, 1); /* BFINAL */
  bw_put(&bw, 1, 2); /* BTYPE 01: fixed Huffman codes */
  uLong adler = adler32(0, NULL, 0);
  deflate_rows(out, &bw, &adler, zero, rl, off);
  for (int my = 0; my < w; my++) {
    memset(row, 0, rl); /* row[0]: filter type None */
    unsigned char *px = row + 1;
    const unsigned char *mr = qr->data + (size_t)my * (size_t)w;
    for (int mx = 0; mx < w;) {
      if (!(mr[mx] & 1)) {
        mx++;
        continue;
      }
      int run = 1; /* a run of dark modules → one span of bits */
      while (mx + run < w && (mr[mx + run] & 1)) run++;
      int x0 = off + mx * m, x1 = x0 + run * m; /* pixels [x0, x1) */
      int a = x0 >> 3, b = (x1 - 1) >> 3;
      unsigned char lm = (unsigned char)(0xFF >> (x0 & 7)),
                    rm = (unsigned char)(0xFF << (7 - ((x1 - 1) & 7)));
      if (a == b) {
        px[a] |= lm & rm;
      } else {
        px[a] |= lm;
        if (b > a + 1) memset(px + a + 1, 0xFF, (size_t)(b - a - 1));
        px[b] |= rm;
      }
      mx += run;
    }
    deflate_rows(out, &bw, &adler, row, rl, m);
  }
  deflate_rows(out, &bw, &adler, zero, rl, size - off - m * w);
  size_t o = (size_t)(bw.p - (unsigned char *)out->data);
  out->len = o;
  bd_buf_reserve(out, 16);
  bw.p = (unsigned char *)out->data + o;
  bw_symbol(&bw, 256); /* end of block */
  if (bw.n) bw_put(&bw, 0, 8 - bw.n);
  out->len = (size_t)(bw.p - (unsigned char *)out->data);
  unsigned char t[4];
  be32(t, (uint32_t)adler);
  bd_buf_append(out, t, 4);
  be32((unsigned char *)out->data + idat, (uint32_t)(out->len - idat - 8));
  uLong crc = crc32(0, (const Bytef *)out->data + idat + 4, (uInt)(out->len - idat - 4));
  be32(t, (uint32_t)crc);
  bd_buf_append(out, t, 4);
  png_chunk(out, "IEND", NULL, 0);
  free(row);
  free(zero);
  (void)err, (void)errsz;
  return 0;
}

/* --- fast path: plain SVG ----------------------------------------------------------- */

static void render_svg_plain(const QRcode *qr, const bd_qr_design_t *d, int size, bd_buf_t *out) {
  int w = qr->width, t = w + 2 * QUIET;
  bd_buf_printf(
      out,
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
      "<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" width=\"%d\" height=\"%d\" "
      "viewBox=\"0 0 %d %d\" shape-rendering=\"crispEdges\">\n",
      size, size, t, t);
  if (!d->transparent)
    bd_buf_printf(out, "<rect width=\"%d\" height=\"%d\" fill=\"#%06x\"/>\n", t, t, d->bg);
  bd_buf_printf(out, "<path fill=\"#%06x\" d=\"", d->fg);
  for (int y = 0; y < w; y++)
    for (int x = 0; x < w;) {
      if (!dark(qr, x, y)) {
        x++;
        continue;
      }
      int run = 1;
      while (dark(qr, x + run, y)) run++;
      bd_buf_printf(out, "M%d %dh%dv1h-%dz", x + QUIET, y + QUIET, run, run);
      x += run;
    }
  bd_buf_puts(out, "\"/>\n</svg>\n");
}

/* --- cairo path ---------------------------------------------------------------------- */

static void rgb(uint32_t c, double v[3]) {
  v[0] = ((c >> 16) & 255) / 255.0;
  v[1] = ((c >> 8) & 255) / 255.0;
  v[2] = (c & 255) / 255.0;
}

static void set_rgb(cairo_t *cr, uint32_t c) {
  double v[3];
  rgb(c, v);
  cairo_set_source_rgb(cr, v[0], v[1], v[2]);
}

static void rgb_stop(cairo_pattern_t *p, double off, uint32_t c) {
  double v[3];
  rgb(c, v);
  cairo_pattern_add_color_stop_rgb(p, off, v[0], v[1], v[2]);
}

/* A rectangle with corner radii r[0..3]: top-left, top-right, bottom-right,
 * bottom-left (0: square corner), drawn clockwise as one sub-path. */
static void corner_rect(cairo_t *cr, double x, double y, double w, double h, const double r[4]) {
  cairo_new_sub_path(cr);
  if (r[0] > 0)
    cairo_arc(cr, x + r[0], y + r[0], r[0], M_PI, 1.5 * M_PI);
  else
    cairo_move_to(cr, x, y);
  if (r[1] > 0)
    cairo_arc(cr, x + w - r[1], y + r[1], r[1], 1.5 * M_PI, 2 * M_PI);
  else
    cairo_line_to(cr, x + w, y);
  if (r[2] > 0)
    cairo_arc(cr, x + w - r[2], y + h - r[2], r[2], 0, 0.5 * M_PI);
  else
    cairo_line_to(cr, x + w, y + h);
  if (r[3] > 0)
    cairo_arc(cr, x + r[3], y + h - r[3], r[3], 0.5 * M_PI, M_PI);
  else
    cairo_line_to(cr, x, y + h);
  cairo_close_path(cr);
}

/* An eye part: shape 0 square, 1 rounded, 2 circle; s is its side, rr the
 * corner radius for "rounded". */
static void eye_path(cairo_t *cr, int shape, double x, double y, double s, double rr) {
  if (shape == 0) {
    cairo_rectangle(cr, x, y, s, s);
  } else if (shape == 1) {
    double r[4] = {rr, rr, rr, rr};
    corner_rect(cr, x, y, s, s, r);
  } else {
    cairo_new_sub_path(cr);
    cairo_arc(cr, x + s / 2, y + s / 2, s / 2, 0, 2 * M_PI);
  }
}

/* Where things go, in device units. */
typedef struct {
  double m;      /* module size */
  double ox, oy; /* top-left of the symbol (inside the quiet zone) */
  double l0, l1; /* logo square in module coordinates, [l0, l1); l0 == l1 without a logo */
  int body;      /* body shape actually drawn (may fall back to square) */
} geom_t;

static int draw(cairo_t *cr, const QRcode *qr, const bd_qr_design_t *d, double size,
                const geom_t *g, char *err, size_t errsz) {
  int w = qr->width;
  double m = g->m, ox = g->ox, oy = g->oy, sw = w * m;
  if (!d->transparent) {
    set_rgb(cr, d->bg);
    cairo_paint(cr);
  }
  cairo_pattern_t *pat = NULL;
  if (d->gradient) {
    if (d->gradient == 1)
      pat = cairo_pattern_create_linear(0, oy, 0, oy + sw);
    else if (d->gradient == 2)
      pat = cairo_pattern_create_linear(ox, 0, ox + sw, 0);
    else if (d->gradient == 3)
      pat = cairo_pattern_create_linear(ox, oy, ox + sw, oy + sw);
    else
      pat = cairo_pattern_create_radial(ox + sw / 2, oy + sw / 2, 0, ox + sw / 2, oy + sw / 2,
                                        sw / M_SQRT2);
    rgb_stop(pat, 0, d->grad_start);
    rgb_stop(pat, 1, d->grad_end);
  }
  /* body: one path, one fill (no seams between modules) */
  bool clear = d->logo && d->clear_background;
  const double eps = 1e-6;
  for (int y = 0; y < w; y++)
    for (int x = 0; x < w; x++) {
      if (!dark(qr, x, y) || in_finder(x, y, w)) continue;
      if (clear && x + 1 > g->l0 + eps && x < g->l1 - eps && y + 1 > g->l0 + eps && y < g->l1 - eps)
        continue;
      double px = ox + x * m, py = oy + y * m;
      if (g->body == 0) {
        int run = 1; /* merge horizontal runs: smaller SVG/PDF */
        while (x + run < w && dark(qr, x + run, y) && !in_finder(x + run, y, w) &&
               !(clear && x + run + 1 > g->l0 + eps && x + run < g->l1 - eps &&
                 y + 1 > g->l0 + eps && y < g->l1 - eps))
          run++;
        cairo_rectangle(cr, px, py, run * m, m);
        x += run - 1;
      } else if (g->body == 1) {
        /* round a corner only where both of its neighbours are light */
        double r = m / 2;
        bool n = dark(qr, x, y - 1), s = dark(qr, x, y + 1), wv = dark(qr, x - 1, y),
             e = dark(qr, x + 1, y);
        double rr[4] = {!n && !wv ? r : 0, !n && !e ? r : 0, !s && !e ? r : 0, !s && !wv ? r : 0};
        corner_rect(cr, px, py, m, m, rr);
      } else {
        cairo_new_sub_path(cr);
        cairo_arc(cr, px + m / 2, py + m / 2, m * 0.45, 0, 2 * M_PI);
      }
    }
  if (pat)
    cairo_set_source(cr, pat);
  else
    set_rgb(cr, d->fg);
  cairo_fill(cr);
  /* eyes: frame (7x7 ring) and ball (3x3) */
  const int corners[3][2] = {{0, 0}, {w - 7, 0}, {0, w - 7}};
  for (int i = 0; i < 3; i++) {
    double ex = ox + corners[i][0] * m, ey = oy + corners[i][1] * m;
    cairo_set_fill_rule(cr, CAIRO_FILL_RULE_EVEN_ODD);
    eye_path(cr, d->eye_frame, ex, ey, 7 * m, 2 * m);
    eye_path(cr, d->eye_frame, ex + m, ey + m, 5 * m,
             1 * m); /* inner radius = outer - 1: even ring */
    if (d->has_eye_frame_color)
      set_rgb(cr, d->eye_frame_color);
    else if (pat)
      cairo_set_source(cr, pat);
    else
      set_rgb(cr, d->fg);
    cairo_fill(cr);
    cairo_set_fill_rule(cr, CAIRO_FILL_RULE_WINDING);
    eye_path(cr, d->eye_ball, ex + 2 * m, ey + 2 * m, 3 * m, 0.9 * m);
    if (d->has_eye_ball_color)
      set_rgb(cr, d->eye_ball_color);
    else if (pat)
      cairo_set_source(cr, pat);
    else
      set_rgb(cr, d->fg);
    cairo_fill(cr);
  }
  if (pat) cairo_pattern_destroy(pat);
  /* logo */
  if (d->logo) {
    double side = (g->l1 - g->l0) * m;
    double lx = ox + g->l0 * m, ly = oy + g->l0 * m;
    if (bd_qr_logo_draw(cr, d->logo_kind, d->logo, d->logo_len, lx, ly, side) != 0)
      return rerr(err, errsz, "the logo could not be decoded");
  }
  (void)size;
  if (cairo_status(cr) != CAIRO_STATUS_SUCCESS) return rerr(err, errsz, "drawing the code failed");
  return 0;
}

static cairo_status_t write_buf(void *closure, const unsigned char *data, unsigned int len) {
  bd_buf_append((bd_buf_t *)closure, data, len);
  return CAIRO_STATUS_SUCCESS;
}

/* Encodes a cairo ARGB32 image as an 8-bit RGB (or RGBA, un-premultiplied)
 * PNG. */
static int png_from_surface(cairo_surface_t *s, bool alpha, bd_buf_t *out, char *err,
                            size_t errsz) {
  cairo_surface_flush(s);
  int wd = cairo_image_surface_get_width(s), ht = cairo_image_surface_get_height(s);
  int stride = cairo_image_surface_get_stride(s);
  const unsigned char *data = cairo_image_surface_get_data(s);
  int ch = alpha ? 4 : 3;
  size_t start = out->len;
  pngw_t pw = {0};
  pw.png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
  pw.info = pw.png ? png_create_info_struct(pw.png) : NULL;
  if (!pw.info) {
    pngw_destroy(&pw);
    return rerr(err, errsz, "the PNG encoder could not start");
  }
  pw.row = bd_malloc((size_t)wd * (size_t)ch);
  if (setjmp(png_jmpbuf(pw.png))) {
    pngw_destroy(&pw);
    out->len = start;
    return rerr(err, errsz, "PNG encoding failed");
  }
  png_set_write_fn(pw.png, out, png_write_buf, png_flush_noop);
  png_set_IHDR(pw.png, pw.info, (png_uint_32)wd, (png_uint_32)ht, 8,
               alpha ? PNG_COLOR_TYPE_RGBA : PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
               PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  png_set_compression_level(pw.png, 1);
  png_set_filter(pw.png, PNG_FILTER_TYPE_BASE,
                 PNG_FILTER_NONE); /* measured: faster and smaller than Sub|Up here */
  png_write_info(pw.png, pw.info);
  png_bytep row = pw.row;
  for (int y = 0; y < ht; y++) {
    const uint32_t *px = (const uint32_t *)(const void *)(data + (size_t)y * (size_t)stride);
    for (int x = 0; x < wd; x++) {
      uint32_t p = px[x];
      unsigned a = p >> 24, r = (p >> 16) & 255, g = (p >> 8) & 255, b = p & 255;
      if (alpha && a != 255 && a != 0) { /* cairo stores premultiplied alpha */
        r = (r * 255 + a / 2) / a;
        g = (g * 255 + a / 2) / a;
        b = (b * 255 + a / 2) / a;
      }
      png_bytep o = row + (size_t)x * (size_t)ch;
      o[0] = (png_byte)r, o[1] = (png_byte)g, o[2] = (png_byte)b;
      if (alpha) o[3] = (png_byte)a;
    }
    png_write_row(pw.png, row);
  }
  png_write_end(pw.png, pw.info);
  pngw_destroy(&pw);
  return 0;
}

static int render_cairo(const QRcode *qr, const bd_qr_design_t *d, bd_qr_format_t fmt, int size,
                        int mpx, bd_buf_t *out, char *err, size_t errsz) {
  int w = qr->width;
  geom_t g;
  if (fmt == BD_QR_PNG) {
    g.m = mpx;
    g.ox = g.oy = (size - mpx * w) / 2;
    g.body = mpx < 4 ? 0 : d->body;
  } else {
    g.m = (double)size / (w + 2 * QUIET);
    g.ox = g.oy = QUIET * g.m;
    g.body = d->body;
  }
  g.l0 = g.l1 = 0;
  if (d->logo) {
    double lside = d->logo_size * w;
    if (fmt == BD_QR_PNG) lside = round(lside * g.m) / g.m; /* whole pixels */
    g.l0 = (w - lside) / 2;
    g.l1 = g.l0 + lside;
  }
  size_t start = out->len;
  cairo_surface_t *s;
  if (fmt == BD_QR_PNG)
    s = cairo_image_surface_create(CAIRO_FORMAT_ARGB32, size, size);
  else if (fmt == BD_QR_SVG)
    s = cairo_svg_surface_create_for_stream(write_buf, out, size, size);
  else
    s = cairo_pdf_surface_create_for_stream(write_buf, out, size, size);
  if (cairo_surface_status(s) != CAIRO_STATUS_SUCCESS) {
    cairo_surface_destroy(s);
    return rerr(err, errsz, "the drawing surface could not be created");
  }
  if (fmt == BD_QR_PDF) cairo_pdf_surface_set_metadata(s, CAIRO_PDF_METADATA_CREATOR, "batchd");
  cairo_t *cr = cairo_create(s);
  int rc = draw(cr, qr, d, size, &g, err, errsz);
  cairo_destroy(cr);
  if (rc == 0 && fmt == BD_QR_PNG) rc = png_from_surface(s, d->transparent, out, err, errsz);
  cairo_surface_finish(s); /* SVG and PDF write their output here */
  if (rc == 0 && cairo_surface_status(s) != CAIRO_STATUS_SUCCESS)
    rc = rerr(err, errsz, "writing the image failed");
  cairo_surface_destroy(s);
  if (rc != 0) out->len = start;
  return rc;
}

/* See qr.h (RENDERING). ASCII: libqrencode's mode optimiser, pure 8-bit
 * when that does not fit. Beyond ASCII: an ECI 26 (UTF-8) designator and one
 * 8-bit segment. Without the ECI, readers guess the charset of each 8-bit
 * segment, and zbar (like others) tries Big5 and Shift-JIS before UTF-8
 * when the bytes happen to be valid there: "Café" comes back as "Caf矇". */
QRcode *bd_qr_encode(const char *payload, char ec) {
  QRecLevel level = bd_qr_level(ec);
  bool ascii = true;
  for (const unsigned char *p = (const unsigned char *)payload; *p && ascii; p++) ascii = *p < 0x80;
  if (ascii) {
    QRcode *qr = QRcode_encodeString(payload, 0, level, QR_MODE_8, 1);
    return qr || errno != ERANGE ? qr : QRcode_encodeString8bit(payload, 0, level);
  }
  QRinput *in = QRinput_new2(0, level);
  if (!in) return NULL;
  QRcode *qr = NULL;
  if (QRinput_appendECIheader(in, 26) == 0 &&
      QRinput_append(in, QR_MODE_8, (int)strlen(payload), (const unsigned char *)payload) == 0)
    qr = QRcode_encodeInput(in);
  int saved = errno;
  QRinput_free(in);
  errno = saved;
  return qr;
}

int bd_qr_render(const char *payload, const bd_qr_design_t *d, bd_qr_format_t fmt, int size,
                 bd_buf_t *out, char *err, size_t errsz) {
  if (size < BD_QR_SIZE_MIN || size > BD_QR_SIZE_MAX) {
    snprintf(err, errsz, "size must be between %d and %d", BD_QR_SIZE_MIN, BD_QR_SIZE_MAX);
    return -1;
  }
  if (!payload || !*payload) return rerr(err, errsz, "the content is empty");
  QRcode *qr = bd_qr_encode(payload, d->ec);
  if (!qr) {
    if (errno == ERANGE)
      snprintf(err, errsz, "the content does not fit in a QR code at error correction level %c",
               d->ec);
    else
      snprintf(err, errsz, "the content could not be encoded");
    return -1;
  }
  int w = qr->width, m = size / (w + 2 * QUIET);
  int rc;
  if (fmt == BD_QR_PNG && m < 1) {
    snprintf(err, errsz, "size %d px is too small for this %dx%d code: it needs at least %d px",
             size, w, w, w + 2 * QUIET);
    rc = -1;
  } else if (fmt == BD_QR_PNG && bd_qr_design_is_plain(d)) {
    rc = render_png_plain(qr, d, size, m, out, err, errsz);
  } else if (fmt == BD_QR_SVG && bd_qr_design_is_plain(d)) {
    render_svg_plain(qr, d, size, out);
    rc = 0;
  } else {
    rc = render_cairo(qr, d, fmt, size, m, out, err, errsz);
  }
  QRcode_free(qr);
  return rc;
}

int bd_qr_draw(cairo_t *cr, const char *payload, const bd_qr_design_t *d, double x, double y,
               double size, double px_per_unit, char *err, size_t errsz) {
  if (!payload || !*payload) return rerr(err, errsz, "the content is empty");
  QRcode *qr = bd_qr_encode(payload, d->ec);
  if (!qr) return rerr(err, errsz, "the content does not fit in a QR code");
  int w = qr->width;
  cairo_save(cr);
  geom_t g;
  double box = size;
  if (px_per_unit > 0) {
    /* work in device pixels so modules land on whole pixels */
    double dx = x, dy = y;
    cairo_user_to_device(cr, &dx, &dy);
    cairo_identity_matrix(cr);
    x = round(dx), y = round(dy), box = floor(size * px_per_unit);
  }
  double m = box / (w + 2 * QUIET);
  if (px_per_unit > 0 && m >= 1) m = floor(m);
  g.m = m;
  g.ox = x + (box - m * w) / 2;
  g.oy = y + (box - m * w) / 2;
  if (px_per_unit > 0) g.ox = round(g.ox), g.oy = round(g.oy);
  g.body = px_per_unit > 0 && m < 4 ? 0 : d->body;
  g.l0 = g.l1 = 0;
  if (d->logo) {
    double lside = d->logo_size * w;
    g.l0 = (w - lside) / 2;
    g.l1 = g.l0 + lside;
  }
  cairo_rectangle(cr, x, y, box, box);
  cairo_clip(cr);
  int rc = draw(cr, qr, d, box, &g, err, errsz);
  cairo_restore(cr);
  QRcode_free(qr);
  return rc;
}

cairo_surface_t *bd_qr_raster(const QRcode *qr, const bd_qr_design_t *d, int size, char *err,
                              size_t errsz) {
  int w = qr->width, m = size / (w + 2 * QUIET);
  if (m < 1) {
    rerr(err, errsz, "the image is too small for the symbol");
    return NULL;
  }
  cairo_surface_t *s = cairo_image_surface_create(CAIRO_FORMAT_ARGB32, size, size);
  if (cairo_surface_status(s) != CAIRO_STATUS_SUCCESS) {
    cairo_surface_destroy(s);
    rerr(err, errsz, "the drawing surface could not be created");
    return NULL;
  }
  /* what the code is promised to sit on: the declared background */
  bd_qr_design_t opaque = *d;
  opaque.transparent = false;
  int off = (size - m * w) / 2; /* as bd_qr_render centres it */
  geom_t g = {.m = m, .ox = off, .oy = off, .body = m < 4 ? 0 : d->body};
  if (d->logo) {
    double lside = round(d->logo_size * w * m) / m; /* whole pixels, as served */
    g.l0 = (w - lside) / 2;
    g.l1 = g.l0 + lside;
  }
  cairo_t *cr = cairo_create(s);
  int rc = draw(cr, qr, &opaque, size, &g, err, errsz);
  cairo_destroy(cr);
  if (rc != 0) {
    cairo_surface_destroy(s);
    return NULL;
  }
  cairo_surface_flush(s);
  return s;
}

int bd_qr_png_encode(cairo_surface_t *s, bool alpha, bd_buf_t *out, char *err, size_t errsz) {
  /* measured on certificate pages too: no filter at level 1 is as fast as
   * any filter/strategy mix tried (Sub, Up, Z_RLE) and about as small;
   * Z_RLE without a filter is 20x larger (RGB repeats at distance 3) */
  return png_from_surface(s, alpha, out, err, errsz);
}

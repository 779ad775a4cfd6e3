/* cert_render.c: template layouts (see cert_render.h for the format) and
 * certificate rendering. */
#include "cert_render.h"

#include "png_enc.h"
#include "qr.h"
#include "util.h"

#include <cairo-pdf.h>
#include <cairo.h>
#include <fontconfig/fontconfig.h>
#include <pango/pangocairo.h>
#include <pthread.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>

enum { EL_TEXT, EL_IMAGE, EL_QR, EL_SIGNATURE };
enum { AL_LEFT, AL_CENTER, AL_RIGHT };

/* A decoded image: premultiplied ARGB32 pixels as cairo keeps them. Each
 * render wraps them in its own cairo surface (cairo_image_surface_create_for_data),
 * so threads never share a cairo object, only these read-only bytes. */
typedef struct {
  unsigned char *px; /* w x h pixels, `stride` bytes per row (owned); NULL: none */
  int w, h;          /* size in pixels */
  int stride;        /* bytes per row */
} img_t;

/* A piece of a text: literal bytes or a placeholder name. */
typedef struct {
  char *s;  /* owned, NUL-terminated */
  size_t n; /* bytes */
  bool ph;  /* true: s is a placeholder name */
} seg_t;

typedef struct {
  int kind;    /* EL_* */
  double x, y; /* anchor / top-left, points */
  double w, h; /* image and signature box; qr: w = h = size */
  /* text, and the name lines of a signature */
  seg_t *segs; /* text pieces (owned) */
  size_t nsegs;
  char *font;       /* family (owned) */
  double size;      /* points */
  uint32_t color;   /* 0xRRGGBB */
  int align;        /* AL_* */
  double max_width; /* 0: no wrapping */
  bool bold, italic;
  img_t img; /* image element */
  int sig;   /* signature: signatory number, 1-based */
} el_t;

struct bd_cert_layout {
  double width, height; /* page, points */
  uint32_t bg;          /* background colour */
  img_t bg_img;         /* background image (px NULL: none) */
  el_t *els;            /* elements in drawing order (owned) */
  size_t nels;
  size_t nsig;       /* distinct signatory fields: signatory_1..nsig */
  char **sig_fields; /* "signatory_1", ... (owned) */
};

/* ---------------------------------------------------------------------- */
/* parsing                                                                 */

typedef struct {
  char *err;
  size_t errsz;
  bd_cert_limits_t lim;
  size_t image_bytes; /* decoded image bytes so far */
} pctx_t;

static bool fail(pctx_t *c, const char *fmt, ...) BD_PRINTF(2, 3);
static bool fail(pctx_t *c, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(c->err, c->errsz, fmt, ap);
  va_end(ap);
  return false;
}

static bool known_members(pctx_t *c, const json_t *o, const char *path, const char *const *names,
                          size_t n) {
  const char *k;
  json_t *v;
  json_object_foreach((json_t *)o, k, v) {
    bool ok = false;
    for (size_t i = 0; i < n && !ok; i++) ok = strcmp(k, names[i]) == 0;
    if (!ok) return fail(c, "%s.%s is not a known member", path, k);
  }
  return true;
}

/* A number member in [lo, hi]; *out keeps its default when absent and
 * !required. */
static bool num(pctx_t *c, const json_t *o, const char *path, const char *k, double lo, double hi,
                bool required, double *out) {
  json_t *v = json_object_get(o, k);
  if (!v) return required ? fail(c, "%s.%s is required", path, k) : true;
  if (!json_is_number(v)) return fail(c, "%s.%s must be a number", path, k);
  double d = json_number_value(v);
  if (!isfinite(d) || d < lo || d > hi)
    return fail(c, "%s.%s must be between %g and %g", path, k, lo, hi);
  *out = d;
  return true;
}

static bool boolean(pctx_t *c, const json_t *o, const char *path, const char *k, bool *out) {
  json_t *v = json_object_get(o, k);
  if (!v) return true;
  if (!json_is_boolean(v)) return fail(c, "%s.%s must be true or false", path, k);
  *out = json_is_true(v);
  return true;
}

/* An optional string member: NULL when absent. */
static bool str(pctx_t *c, const json_t *o, const char *path, const char *k, size_t minlen,
                size_t maxlen, const char **out) {
  json_t *v = json_object_get(o, k);
  *out = NULL;
  if (!v) return true;
  if (!json_is_string(v)) return fail(c, "%s.%s must be a string", path, k);
  size_t n = json_string_length(v);
  if (n < minlen || n > maxlen)
    return fail(c, "%s.%s must be %zu to %zu bytes long", path, k, minlen, maxlen);
  if (strlen(json_string_value(v)) != n) return fail(c, "%s.%s must not contain NUL", path, k);
  *out = json_string_value(v);
  return true;
}

static int hexval(char ch) {
  if (ch >= '0' && ch <= '9') return ch - '0';
  if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
  if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
  return -1;
}

static bool color(pctx_t *c, const json_t *o, const char *path, const char *k, uint32_t *out) {
  const char *s;
  if (!str(c, o, path, k, 0, 64, &s)) return false;
  if (!s) return true;
  size_t n = strlen(s);
  uint32_t v = 0;
  bool ok = s[0] == '#' && (n == 4 || n == 7);
  for (size_t i = 1; ok && i < n; i++) {
    int h = hexval(s[i]);
    if (h < 0)
      ok = false;
    else if (n == 4)
      v = (v << 8) | (uint32_t)(h * 17);
    else
      v = (v << 4) | (uint32_t)h;
  }
  if (!ok) return fail(c, "%s.%s must be a colour like #1a1a1a or #fff", path, k);
  *out = v;
  return true;
}

struct png_reader {
  const unsigned char *p; /* remaining bytes */
  size_t n;
};

static cairo_status_t png_read(void *closure, unsigned char *data, unsigned int len) {
  struct png_reader *r = closure;
  if (len > r->n) return CAIRO_STATUS_READ_ERROR;
  memcpy(data, r->p, len);
  r->p += len;
  r->n -= len;
  return CAIRO_STATUS_SUCCESS;
}

static uint32_t be32(const unsigned char *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Decodes PNG bytes into img (false when they are not a PNG cairo can read,
 * or larger than BD_CERT_MAX_IMAGE_PIXELS per side: the header is checked
 * before any pixel is decoded). */
static bool png_decode(const unsigned char *p, size_t n, img_t *img) {
  static const unsigned char sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  if (n < 33 || memcmp(p, sig, 8) != 0 || memcmp(p + 12, "IHDR", 4) != 0) return false;
  uint32_t w = be32(p + 16), h = be32(p + 20);
  if (w == 0 || h == 0 || w > BD_CERT_MAX_IMAGE_PIXELS || h > BD_CERT_MAX_IMAGE_PIXELS)
    return false;
  struct png_reader r = {p, n};
  cairo_surface_t *s = cairo_image_surface_create_from_png_stream(png_read, &r);
  bool ok = cairo_surface_status(s) == CAIRO_STATUS_SUCCESS;
  if (ok) {
    cairo_surface_t *a = s;
    /* normalise to ARGB32 (cairo gives RGB24 or A8 for some PNGs) */
    if (cairo_image_surface_get_format(s) != CAIRO_FORMAT_ARGB32) {
      a = cairo_image_surface_create(CAIRO_FORMAT_ARGB32, (int)w, (int)h);
      cairo_t *cr = cairo_create(a);
      cairo_set_source_surface(cr, s, 0, 0);
      cairo_paint(cr);
      cairo_destroy(cr);
    }
    cairo_surface_flush(a);
    img->w = cairo_image_surface_get_width(a);
    img->h = cairo_image_surface_get_height(a);
    img->stride = cairo_image_surface_get_stride(a);
    size_t sz = (size_t)img->stride * (size_t)img->h;
    img->px = bd_malloc(sz);
    memcpy(img->px, cairo_image_surface_get_data(a), sz);
    if (a != s) cairo_surface_destroy(a);
  }
  cairo_surface_destroy(s);
  return ok;
}

/* A "data:image/png[;params];base64,..." URL into a decoded image. */
static bool data_url_png(pctx_t *c, const json_t *o, const char *path, const char *k, bool required,
                         img_t *img) {
  json_t *v = json_object_get(o, k);
  if (!v) return required ? fail(c, "%s.%s is required", path, k) : true;
  if (!json_is_string(v)) return fail(c, "%s.%s must be a string", path, k);
  const char *url = json_string_value(v);
  size_t n = json_string_length(v);
  const char *comma = memchr(url, ',', n);
  bool ok = n > 5 && strncasecmp(url, "data:", 5) == 0 && comma && comma - url < 200;
  if (ok) {
    char mt[200];
    size_t ml = (size_t)(comma - url) - 5;
    memcpy(mt, url + 5, ml);
    mt[ml] = '\0';
    ok = ml >= 7 && strcasecmp(mt + ml - 7, ";base64") == 0;
    mt[strcspn(mt, ";")] = '\0';
    ok = ok && strcasecmp(mt, "image/png") == 0;
  }
  if (!ok) return fail(c, "%s.%s must be a data:image/png;base64,... URL", path, k);
  size_t max = c->lim.max_image_bytes;
  size_t enc = n - (size_t)(comma + 1 - url);
  if (enc > (max + 2) / 3 * 4)
    return fail(c, "%s.%s must hold at most %zu bytes of PNG", path, k, max);
  bd_buf_t raw = BD_BUF_INIT;
  if (!bd_b64_decode(&raw, comma + 1, enc)) {
    bd_buf_free(&raw);
    return fail(c, "%s.%s is not valid base64", path, k);
  }
  if (raw.len > max) {
    bd_buf_free(&raw);
    return fail(c, "%s.%s must hold at most %zu bytes of PNG", path, k, max);
  }
  c->image_bytes += raw.len;
  if (c->image_bytes > c->lim.max_layout_image_bytes) {
    bd_buf_free(&raw);
    return fail(c, "%s.%s: the images of a layout may total at most %zu bytes", path, k,
                c->lim.max_layout_image_bytes);
  }
  ok = png_decode((const unsigned char *)raw.data, raw.len, img);
  bd_buf_free(&raw);
  if (!ok)
    return fail(c, "%s.%s is not a readable PNG image of at most %dx%d pixels", path, k,
                BD_CERT_MAX_IMAGE_PIXELS, BD_CERT_MAX_IMAGE_PIXELS);
  return true;
}

static void add_seg(el_t *e, size_t *cap, const char *s, size_t n, bool ph) {
  if (n == 0) return;
  if (!ph && e->nsegs && !e->segs[e->nsegs - 1].ph) { /* merge adjacent literals */
    seg_t *g = &e->segs[e->nsegs - 1];
    g->s = bd_realloc(g->s, g->n + n + 1);
    memcpy(g->s + g->n, s, n);
    g->n += n;
    g->s[g->n] = '\0';
    return;
  }
  if (e->nsegs == *cap) {
    *cap = *cap ? *cap * 2 : 4;
    e->segs = bd_realloc(e->segs, *cap * sizeof *e->segs);
  }
  e->segs[e->nsegs++] = (seg_t){bd_strndup(s, n), n, ph};
}

/* Splits a text into literals and {{placeholders}} (see the header). */
static void split_text(el_t *e, const char *t) {
  size_t cap = 0;
  const char *p = t;
  while (*p) {
    const char *o = strstr(p, "{{");
    if (!o) break;
    const char *cl = strstr(o + 2, "}}");
    if (!cl) break;
    const char *a = o + 2, *b = cl;
    while (a < b && *a == ' ') a++;
    while (b > a && b[-1] == ' ') b--;
    if (b == a || (size_t)(b - a) > BD_CERT_MAX_PLACEHOLDER_BYTES) {
      add_seg(e, &cap, p, (size_t)(o + 2 - p), false); /* "{{" stays literal; go on after it */
      p = o + 2;
      continue;
    }
    add_seg(e, &cap, p, (size_t)(o - p), false);
    add_seg(e, &cap, a, (size_t)(b - a), true);
    p = cl + 2;
  }
  add_seg(e, &cap, p, strlen(p), false);
}

static bool parse_font(pctx_t *c, const json_t *o, const char *path, el_t *e) {
  const char *font;
  if (!str(c, o, path, "font", 1, BD_CERT_MAX_FONT_BYTES, &font)) return false;
  e->font = bd_strdup(font ? font : "Noto Sans");
  e->size = 12;
  e->color = 0;
  return num(c, o, path, "size", 1, 400, false, &e->size) && color(c, o, path, "color", &e->color);
}

static bool parse_element(pctx_t *c, const json_t *o, const char *path, el_t *e, int *maxsig) {
  if (!json_is_object(o)) return fail(c, "%s must be an object", path);
  const char *type;
  if (!str(c, o, path, "type", 0, 64, &type)) return false;
  if (!type) return fail(c, "%s.type is required", path);
  const double CMIN = -5000, CMAX = 10000;
  if (strcmp(type, "text") == 0) {
    static const char *const names[] = {"type",  "x",     "y",         "text", "font",  "size",
                                        "color", "align", "max_width", "bold", "italic"};
    e->kind = EL_TEXT;
    if (!known_members(c, o, path, names, BD_ARRAY_LEN(names)) ||
        !num(c, o, path, "x", CMIN, CMAX, true, &e->x) ||
        !num(c, o, path, "y", CMIN, CMAX, true, &e->y) || !parse_font(c, o, path, e) ||
        !num(c, o, path, "max_width", 1, BD_CERT_PAGE_MAX, false, &e->max_width) ||
        !boolean(c, o, path, "bold", &e->bold) || !boolean(c, o, path, "italic", &e->italic))
      return false;
    const char *t, *al;
    if (!str(c, o, path, "text", 1, BD_CERT_MAX_TEXT_BYTES, &t)) return false;
    if (!t) return fail(c, "%s.text is required", path);
    if (!str(c, o, path, "align", 0, 16, &al)) return false;
    if (!al || strcmp(al, "left") == 0)
      e->align = AL_LEFT;
    else if (strcmp(al, "center") == 0)
      e->align = AL_CENTER;
    else if (strcmp(al, "right") == 0)
      e->align = AL_RIGHT;
    else
      return fail(c, "%s.align must be left, center or right", path);
    split_text(e, t);
    return true;
  }
  if (strcmp(type, "image") == 0) {
    static const char *const names[] = {"type", "x", "y", "width", "height", "src"};
    e->kind = EL_IMAGE;
    return known_members(c, o, path, names, BD_ARRAY_LEN(names)) &&
           num(c, o, path, "x", CMIN, CMAX, true, &e->x) &&
           num(c, o, path, "y", CMIN, CMAX, true, &e->y) &&
           num(c, o, path, "width", 0.01, BD_CERT_PAGE_MAX, true, &e->w) &&
           num(c, o, path, "height", 0.01, BD_CERT_PAGE_MAX, true, &e->h) &&
           data_url_png(c, o, path, "src", true, &e->img);
  }
  if (strcmp(type, "qr") == 0) {
    static const char *const names[] = {"type", "x", "y", "size"};
    e->kind = EL_QR;
    e->w = 100;
    if (!known_members(c, o, path, names, BD_ARRAY_LEN(names)) ||
        !num(c, o, path, "x", CMIN, CMAX, true, &e->x) ||
        !num(c, o, path, "y", CMIN, CMAX, true, &e->y) ||
        !num(c, o, path, "size", 36, BD_CERT_PAGE_MAX, false, &e->w))
      return false;
    e->h = e->w;
    return true;
  }
  if (strcmp(type, "signature") == 0) {
    static const char *const names[] = {"type",   "field", "x",    "y",    "width",
                                        "height", "font",  "size", "color"};
    e->kind = EL_SIGNATURE;
    const char *f;
    if (!known_members(c, o, path, names, BD_ARRAY_LEN(names)) ||
        !str(c, o, path, "field", 0, 64, &f))
      return false;
    if (!f) return fail(c, "%s.field is required", path);
    const char *d = f + strlen("signatory_");
    bool ok = strncmp(f, "signatory_", strlen("signatory_")) == 0 && *d >= '1' && *d <= '9' &&
              strspn(d, "0123456789") == strlen(d) && strlen(d) <= 3;
    if (!ok) return fail(c, "%s.field must be signatory_N with N from 1", path);
    e->sig = atoi(d);
    if (e->sig > *maxsig) *maxsig = e->sig;
    return num(c, o, path, "x", CMIN, CMAX, true, &e->x) &&
           num(c, o, path, "y", CMIN, CMAX, true, &e->y) &&
           num(c, o, path, "width", 0.01, BD_CERT_PAGE_MAX, true, &e->w) &&
           num(c, o, path, "height", 0.01, BD_CERT_PAGE_MAX, true, &e->h) &&
           parse_font(c, o, path, e);
  }
  return fail(c, "%s.type must be text, image, qr or signature", path);
}

bd_cert_layout_t *bd_cert_layout_parse(const json_t *layout, char *err, size_t errsz) {
  return bd_cert_layout_parse_ex(layout, NULL, err, errsz);
}

bd_cert_layout_t *bd_cert_layout_parse_ex(const json_t *layout, const bd_cert_limits_t *lim,
                                          char *err, size_t errsz) {
  pctx_t c = {err,
              errsz,
              {BD_CERT_MAX_ELEMENTS, BD_CERT_MAX_IMAGE_BYTES, BD_CERT_MAX_LAYOUT_IMAGE_BYTES},
              0};
  if (lim && lim->max_elements) c.lim.max_elements = lim->max_elements;
  if (lim && lim->max_image_bytes) c.lim.max_image_bytes = lim->max_image_bytes;
  if (lim && lim->max_layout_image_bytes)
    c.lim.max_layout_image_bytes = lim->max_layout_image_bytes;
  if (!json_is_object(layout)) {
    fail(&c, "layout must be an object");
    return NULL;
  }
  bd_cert_layout_t *l = bd_calloc(1, sizeof *l);
  l->bg = 0xffffff;
  static const char *const top[] = {"page", "background", "elements"};
  static const char *const pagem[] = {"width", "height"};
  static const char *const bgm[] = {"color", "image"};
  const json_t *page = json_object_get(layout, "page");
  const json_t *bg = json_object_get(layout, "background");
  const json_t *els = json_object_get(layout, "elements");
  bool ok = known_members(&c, layout, "layout", top, BD_ARRAY_LEN(top));
  if (ok && !json_is_object(page))
    ok = fail(&c, page ? "layout.page must be an object" : "layout.page is required");
  ok = ok && known_members(&c, page, "layout.page", pagem, BD_ARRAY_LEN(pagem)) &&
       num(&c, page, "layout.page", "width", BD_CERT_PAGE_MIN, BD_CERT_PAGE_MAX, true, &l->width) &&
       num(&c, page, "layout.page", "height", BD_CERT_PAGE_MIN, BD_CERT_PAGE_MAX, true, &l->height);
  if (ok && bg && !json_is_null(bg)) {
    if (!json_is_object(bg))
      ok = fail(&c, "layout.background must be an object");
    else
      ok = known_members(&c, bg, "layout.background", bgm, BD_ARRAY_LEN(bgm)) &&
           color(&c, bg, "layout.background", "color", &l->bg) &&
           data_url_png(&c, bg, "layout.background", "image", false, &l->bg_img);
  }
  if (ok && !json_is_array(els))
    ok = fail(&c, els ? "layout.elements must be an array" : "layout.elements is required");
  if (ok && (json_array_size(els) < 1 || json_array_size(els) > c.lim.max_elements))
    ok = fail(&c, "layout.elements must have 1 to %zu elements", c.lim.max_elements);
  int maxsig = 0;
  if (ok) {
    l->els = bd_calloc(json_array_size(els), sizeof *l->els);
    for (size_t i = 0; ok && i < json_array_size(els); i++) {
      char path[48];
      snprintf(path, sizeof path, "layout.elements.%zu", i);
      l->nels = i + 1; /* so that free releases a half-parsed element */
      ok = parse_element(&c, json_array_get(els, i), path, &l->els[i], &maxsig);
    }
  }
  if (ok && maxsig > 0) {
    bool *seen = bd_calloc((size_t)maxsig + 1, 1);
    for (size_t i = 0; i < l->nels; i++)
      if (l->els[i].kind == EL_SIGNATURE) seen[l->els[i].sig] = true;
    for (int s = 1; ok && s <= maxsig; s++)
      if (!seen[s])
        ok = fail(&c,
                  "layout.elements: signatory fields must be signatory_1 to signatory_N without "
                  "gaps (signatory_%d is missing)",
                  s);
    free(seen);
  }
  if (!ok) {
    bd_cert_layout_free(l);
    return NULL;
  }
  l->nsig = (size_t)maxsig;
  l->sig_fields = bd_calloc(l->nsig + 1, sizeof *l->sig_fields);
  for (size_t i = 0; i < l->nsig; i++) {
    char f[32];
    snprintf(f, sizeof f, "signatory_%zu", i + 1);
    l->sig_fields[i] = bd_strdup(f);
  }
  return l;
}

void bd_cert_layout_free(bd_cert_layout_t *l) {
  if (!l) return;
  for (size_t i = 0; i < l->nels; i++) {
    el_t *e = &l->els[i];
    for (size_t j = 0; j < e->nsegs; j++) free(e->segs[j].s);
    free(e->segs);
    free(e->font);
    free(e->img.px);
  }
  free(l->els);
  free(l->bg_img.px);
  for (size_t i = 0; i < l->nsig; i++) free(l->sig_fields[i]);
  free(l->sig_fields);
  free(l);
}

size_t bd_cert_layout_signatory_count(const bd_cert_layout_t *l) { return l->nsig; }

const char *bd_cert_layout_signatory_field(const bd_cert_layout_t *l, size_t i) {
  return i < l->nsig ? l->sig_fields[i] : NULL;
}

double bd_cert_layout_width(const bd_cert_layout_t *l) { return l->width; }
double bd_cert_layout_height(const bd_cert_layout_t *l) { return l->height; }

/* ---------------------------------------------------------------------- */
/* rendering                                                               */

struct bd_cert_image {
  img_t img; /* decoded pixels */
};

bd_cert_image_t *bd_cert_image_decode(const void *png, size_t n, char *err, size_t errsz) {
  bd_cert_image_t *im = bd_calloc(1, sizeof *im);
  if (!png_decode(png, n, &im->img)) {
    snprintf(err, errsz, "the signature is not a readable PNG image of at most %dx%d pixels",
             BD_CERT_MAX_IMAGE_PIXELS, BD_CERT_MAX_IMAGE_PIXELS);
    free(im);
    return NULL;
  }
  return im;
}

void bd_cert_image_free(bd_cert_image_t *im) {
  if (!im) return;
  free(im->img.px);
  free(im);
}

void bd_cert_output_free(bd_cert_output_t *out) {
  bd_buf_free(&out->pdf);
  bd_buf_free(&out->png);
  bd_buf_free(&out->qr_svg);
}

/* One font map per thread: pango font maps (and the fonts and caches they
 * hold) must not be used by two threads at once. Created on first use, kept
 * for the thread's life (the libuv pool threads live as long as the
 * process), so the fonts are loaded once per thread. Every map is also
 * listed here so that bd_cert_render_shutdown can release them at exit. */
static __thread PangoFontMap *tl_fontmap;
static pthread_mutex_t g_maps_lock = PTHREAD_MUTEX_INITIALIZER;
static PangoFontMap **g_maps; /* every thread's map */
static size_t g_nmaps;

static PangoFontMap *fontmap(void) {
  if (!tl_fontmap) {
    tl_fontmap = pango_cairo_font_map_new();
    pthread_mutex_lock(&g_maps_lock);
    g_maps = bd_realloc(g_maps, (g_nmaps + 1) * sizeof *g_maps);
    g_maps[g_nmaps++] = tl_fontmap;
    pthread_mutex_unlock(&g_maps_lock);
  }
  return tl_fontmap;
}

void bd_cert_render_shutdown(void) {
  pthread_mutex_lock(&g_maps_lock);
  for (size_t i = 0; i < g_nmaps; i++) g_object_unref(g_maps[i]);
  free(g_maps);
  g_maps = NULL;
  g_nmaps = 0;
  pthread_mutex_unlock(&g_maps_lock);
#if defined(__SANITIZE_ADDRESS__)
  /* fontconfig and cairo keep process-wide caches until exit by design;
   * a sanitizer build empties them so that LeakSanitizer reports only
   * real leaks. (Not in production: nothing is gained at exit.) */
  cairo_debug_reset_static_data();
  FcFini();
#endif
}

/* "YYYY-MM-DD" -> y, m, d (a real calendar date). */
static bool parse_date(const char *s, int *y, int *m, int *d) {
  if (!s || strlen(s) != 10 || s[4] != '-' || s[7] != '-') return false;
  for (int i = 0; i < 10; i++)
    if (i != 4 && i != 7 && (s[i] < '0' || s[i] > '9')) return false;
  *y = atoi(s), *m = atoi(s + 5), *d = atoi(s + 8);
  static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (*y < 1 || *m < 1 || *m > 12 || *d < 1 || *d > mdays[*m - 1]) return false;
  if (*m == 2 && *d == 29 && !((*y % 4 == 0 && *y % 100 != 0) || *y % 400 == 0)) return false;
  return true;
}

static const char *placeholder(const bd_cert_input_t *in, const char *name, char date[16]) {
  if (strcmp(name, "RecipientsName") == 0) return in->recipient_name;
  if (strcmp(name, "RecipientsEmail") == 0) return in->recipient_email;
  if (strcmp(name, "ReferenceId") == 0) return in->reference_id;
  if (strcmp(name, "InstitutionName") == 0) return in->institution_name;
  if (strcmp(name, "BatchName") == 0) return in->batch_name;
  if (strcmp(name, "VerificationUrl") == 0) return in->verification_url;
  if (strcmp(name, "IssueDate") == 0) {
    int y, m, d;
    if (!parse_date(in->issue_date, &y, &m, &d)) return NULL;
    snprintf(date, 16, "%02d-%02d-%04d", d, m, y);
    return date;
  }
  if (in->custom_data) return json_string_value(json_object_get(in->custom_data, name));
  return NULL;
}

static void expand(const el_t *e, const bd_cert_input_t *in, bd_buf_t *out) {
  char date[16];
  for (size_t i = 0; i < e->nsegs; i++) {
    const char *v = e->segs[i].ph ? placeholder(in, e->segs[i].s, date) : e->segs[i].s;
    if (v) bd_buf_puts(out, v);
  }
}

bool bd_cert_layout_text(const bd_cert_layout_t *l, size_t index, const bd_cert_input_t *in,
                         bd_buf_t *out) {
  if (index >= l->nels || l->els[index].kind != EL_TEXT) return false;
  expand(&l->els[index], in, out);
  return true;
}

static void set_color(cairo_t *cr, uint32_t c) {
  cairo_set_source_rgb(cr, ((c >> 16) & 255) / 255.0, ((c >> 8) & 255) / 255.0, (c & 255) / 255.0);
}

/* Draws img scaled into the box (fit: aspect kept and centred, else
 * stretched to fill). */
static void draw_image(cairo_t *cr, const img_t *img, double x, double y, double w, double h,
                       bool fit) {
  cairo_surface_t *s = cairo_image_surface_create_for_data(img->px, CAIRO_FORMAT_ARGB32, img->w,
                                                           img->h, img->stride);
  double sx = w / img->w, sy = h / img->h;
  if (fit) {
    double k = BD_MIN(sx, sy);
    x += (w - img->w * k) / 2, y += (h - img->h * k) / 2;
    sx = sy = k;
  }
  cairo_save(cr);
  cairo_translate(cr, x, y);
  cairo_scale(cr, sx, sy);
  cairo_set_source_surface(cr, s, 0, 0);
  cairo_pattern_set_filter(cairo_get_source(cr), CAIRO_FILTER_GOOD);
  cairo_rectangle(cr, 0, 0, img->w, img->h);
  cairo_fill(cr);
  cairo_restore(cr);
  cairo_surface_destroy(s);
}

/* Lays out and draws text with its top at y, anchored at x per align, in a
 * box of max_width (0: unbounded). Returns the height drawn (points). */
static double draw_text(cairo_t *cr, PangoContext *ctx, const char *text, const char *font,
                        double size, bool bold, bool italic, uint32_t color, int align, double x,
                        double y, double max_width) {
  if (!*text) return 0;
  /* the paragraph direction from the text itself; alignment stays physical
   * (auto-dir off: pango would otherwise mirror left/right for RTL) */
  /* deprecated only in favour of fribidi, which pango itself uses for it */
  G_GNUC_BEGIN_IGNORE_DEPRECATIONS
  PangoDirection dir = pango_find_base_dir(text, -1);
  G_GNUC_END_IGNORE_DEPRECATIONS
  pango_context_set_base_dir(ctx, dir == PANGO_DIRECTION_RTL ? PANGO_DIRECTION_RTL
                                                             : PANGO_DIRECTION_LTR);
  PangoLayout *pl = pango_layout_new(ctx);
  pango_layout_set_auto_dir(pl, FALSE);
  PangoFontDescription *fd = pango_font_description_new();
  pango_font_description_set_family(fd, font);
  pango_font_description_set_absolute_size(fd, size * PANGO_SCALE);
  pango_font_description_set_weight(fd, bold ? PANGO_WEIGHT_BOLD : PANGO_WEIGHT_NORMAL);
  pango_font_description_set_style(fd, italic ? PANGO_STYLE_ITALIC : PANGO_STYLE_NORMAL);
  pango_layout_set_font_description(pl, fd);
  pango_font_description_free(fd);
  pango_layout_set_alignment(pl, align == AL_CENTER  ? PANGO_ALIGN_CENTER
                                 : align == AL_RIGHT ? PANGO_ALIGN_RIGHT
                                                     : PANGO_ALIGN_LEFT);
  if (max_width > 0) {
    pango_layout_set_width(pl, (int)(max_width * PANGO_SCALE));
    pango_layout_set_wrap(pl, PANGO_WRAP_WORD_CHAR);
  }
  pango_layout_set_text(pl, text, -1);
  PangoRectangle logical;
  pango_layout_get_extents(pl, NULL, &logical);
  double bw = max_width > 0 ? max_width : (double)logical.width / PANGO_SCALE;
  double left = align == AL_CENTER ? x - bw / 2 : align == AL_RIGHT ? x - bw : x;
  if (max_width <= 0) left -= (double)logical.x / PANGO_SCALE;
  set_color(cr, color);
  cairo_move_to(cr, left, y);
  pango_cairo_show_layout(cr, pl);
  double h = (double)logical.height / PANGO_SCALE;
  g_object_unref(pl);
  return h;
}

static int rerr(char *err, size_t errsz, const char *msg) {
  snprintf(err, errsz, "%s", msg);
  return -1;
}

/* Draws the page. scale > 0: raster surface with that many pixels per
 * point (already applied to cr); 0: vector. */
static int draw_page(cairo_t *cr, const bd_cert_layout_t *l, const bd_cert_input_t *in,
                     const bd_qr_design_t *qd, double scale, char *err, size_t errsz) {
  PangoContext *ctx = pango_font_map_create_context(fontmap());
  /* same metrics on every surface: no hinting, so PNG and PDF break lines
   * identically and the output does not depend on the surface's defaults */
  cairo_font_options_t *fo = cairo_font_options_create();
  cairo_font_options_set_hint_style(fo, CAIRO_HINT_STYLE_NONE);
  cairo_font_options_set_hint_metrics(fo, CAIRO_HINT_METRICS_OFF);
  cairo_font_options_set_antialias(fo, CAIRO_ANTIALIAS_GRAY);
  pango_cairo_context_set_font_options(ctx, fo);
  cairo_font_options_destroy(fo);
  pango_cairo_update_context(cr, ctx);

  set_color(cr, l->bg);
  cairo_paint(cr);
  if (l->bg_img.px) draw_image(cr, &l->bg_img, 0, 0, l->width, l->height, false);
  int rc = 0;
  bd_buf_t t = BD_BUF_INIT;
  for (size_t i = 0; i < l->nels && rc == 0; i++) {
    const el_t *e = &l->els[i];
    switch (e->kind) {
      case EL_TEXT:
        bd_buf_reset(&t);
        expand(e, in, &t);
        draw_text(cr, ctx, t.data ? t.data : "", e->font, e->size, e->bold, e->italic, e->color,
                  e->align, e->x, e->y, e->max_width);
        break;
      case EL_IMAGE: draw_image(cr, &e->img, e->x, e->y, e->w, e->h, false); break;
      case EL_QR:
        rc = bd_qr_draw(cr, in->verification_url, qd, e->x, e->y, e->w, scale, err, errsz);
        break;
      case EL_SIGNATURE: {
        if ((size_t)e->sig > in->nsignatories) {
          snprintf(err, errsz, "no signatory for signatory_%d", e->sig);
          rc = -1;
          break;
        }
        const bd_cert_signatory_t *s = &in->signatories[e->sig - 1];
        if (s->signature) draw_image(cr, &s->signature->img, e->x, e->y, e->w, e->h, true);
        double yy = e->y + e->h + e->size * 0.25;
        yy += draw_text(cr, ctx, s->name ? s->name : "", e->font, e->size, true, false, e->color,
                        AL_CENTER, e->x + e->w / 2, yy, BD_MAX(e->w, e->size * 8));
        draw_text(cr, ctx, s->designation ? s->designation : "", e->font, e->size * 0.85, false,
                  false, e->color, AL_CENTER, e->x + e->w / 2, yy, BD_MAX(e->w, e->size * 8));
        break;
      }
    }
  }
  bd_buf_free(&t);
  g_object_unref(ctx);
  if (rc == 0 && cairo_status(cr) != CAIRO_STATUS_SUCCESS)
    rc = rerr(err, errsz, "drawing the certificate failed");
  return rc;
}

static cairo_status_t write_buf(void *closure, const unsigned char *data, unsigned int len) {
  bd_buf_append((bd_buf_t *)closure, data, len);
  return CAIRO_STATUS_SUCCESS;
}

/* The text limits (see the header), checked before any drawing. */
static int check_text(const bd_cert_layout_t *l, const bd_cert_input_t *in, char *err,
                      size_t errsz) {
  bd_buf_t t = BD_BUF_INIT;
  int rc = 0;
  for (size_t i = 0; i < l->nels && rc == 0; i++) {
    if (l->els[i].kind != EL_TEXT) continue;
    bd_buf_reset(&t);
    expand(&l->els[i], in, &t);
    if (t.len > BD_CERT_MAX_RENDERED_TEXT) {
      snprintf(
          err, errsz,
          "the text of layout.elements.%zu is %zu bytes long with its placeholders (at most %d)", i,
          t.len, BD_CERT_MAX_RENDERED_TEXT);
      rc = -1;
    }
  }
  bd_buf_free(&t);
  for (size_t i = 0; i < in->nsignatories && rc == 0; i++) {
    const bd_cert_signatory_t *s = &in->signatories[i];
    if ((s->name && strlen(s->name) > BD_CERT_MAX_RENDERED_TEXT) ||
        (s->designation && strlen(s->designation) > BD_CERT_MAX_RENDERED_TEXT)) {
      snprintf(err, errsz, "the name or designation of signatory_%zu is over %d bytes", i + 1,
               BD_CERT_MAX_RENDERED_TEXT);
      rc = -1;
    }
  }
  return rc;
}

int bd_cert_render(const bd_cert_layout_t *l, const bd_cert_input_t *in, bd_cert_output_t *out,
                   char *err, size_t errsz) {
  return bd_cert_render_ex(l, in, BD_CERT_ALL, out, err, errsz);
}

int bd_cert_render_ex(const bd_cert_layout_t *l, const bd_cert_input_t *in, unsigned what,
                      bd_cert_output_t *out, char *err, size_t errsz) {
  memset(out, 0, sizeof *out);
  if (check_text(l, in, err, errsz) != 0) return -1;
  int y, m, d;
  if (!parse_date(in->issue_date, &y, &m, &d))
    return rerr(err, errsz, "the issue date is not a valid YYYY-MM-DD date");
  if (!in->verification_url || !*in->verification_url)
    return rerr(err, errsz, "the verification URL is missing");
  if (in->nsignatories < l->nsig) {
    snprintf(err, errsz, "the layout needs %zu signatories, %zu given", l->nsig, in->nsignatories);
    return -1;
  }
  char qerr[128];
  bd_qr_design_t *qd = bd_qr_design_parse(NULL, qerr, sizeof qerr, &(const char *){NULL});
  if (!qd) return rerr(err, errsz, "the QR design could not be built");
  int rc = 0;

  /* PDF */
  cairo_surface_t *s = NULL;
  cairo_t *cr = NULL;
  if (what & BD_CERT_PDF) {
    s = cairo_pdf_surface_create_for_stream(write_buf, &out->pdf, l->width, l->height);
    char date[32], title[160];
    snprintf(date, sizeof date, "%04d-%02d-%02dT00:00:00Z", y, m, d);
    snprintf(title, sizeof title, "Certificate %s", in->reference_id ? in->reference_id : "");
    cairo_pdf_surface_set_metadata(s, CAIRO_PDF_METADATA_TITLE, title);
    cairo_pdf_surface_set_metadata(s, CAIRO_PDF_METADATA_CREATOR, "batchd");
    cairo_pdf_surface_set_metadata(s, CAIRO_PDF_METADATA_CREATE_DATE, date);
    cairo_pdf_surface_set_metadata(s, CAIRO_PDF_METADATA_MOD_DATE, date);
    cr = cairo_create(s);
    rc = draw_page(cr, l, in, qd, 0, err, errsz);
    cairo_destroy(cr);
    cairo_surface_finish(s);
    if (rc == 0 && cairo_surface_status(s) != CAIRO_STATUS_SUCCESS)
      rc = rerr(err, errsz, "writing the PDF failed");
    cairo_surface_destroy(s);
  }

  /* PNG */
  if (rc == 0 && (what & BD_CERT_PNG)) {
    double scale = BD_CERT_PNG_SCALE;
    double longer = BD_MAX(l->width, l->height);
    if (longer * scale > BD_CERT_PNG_MAX_SIDE) scale = BD_CERT_PNG_MAX_SIDE / longer;
    out->png_width = (int)ceil(l->width * scale - 1e-9);
    out->png_height = (int)ceil(l->height * scale - 1e-9);
    s = cairo_image_surface_create(CAIRO_FORMAT_RGB24, out->png_width, out->png_height);
    cr = cairo_create(s);
    cairo_scale(cr, scale, scale);
    rc = draw_page(cr, l, in, qd, scale, err, errsz);
    cairo_destroy(cr);
    if (rc == 0) {
      cairo_surface_flush(s);
      if (bd_png_encode(cairo_image_surface_get_data(s), out->png_width, out->png_height,
                        cairo_image_surface_get_stride(s), BD_PNG_PAGE, &out->png) != 0)
        rc = rerr(err, errsz, "PNG encoding failed");
    }
    cairo_surface_destroy(s);
  }

  /* the QR alone */
  if (rc == 0 && (what & BD_CERT_QR_SVG))
    rc = bd_qr_render(in->verification_url, qd, BD_QR_SVG, 512, &out->qr_svg, err, errsz);
  bd_qr_design_free(qd);
  if (rc == 0 && (what & BD_CERT_PDF)) bd_sha256_hex(out->pdf_sha256, out->pdf.data, out->pdf.len);
  if (rc == 0 && (what & BD_CERT_PNG)) bd_sha256_hex(out->png_sha256, out->png.data, out->png.len);
  return rc;
}

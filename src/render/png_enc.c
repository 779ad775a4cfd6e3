/* png_enc.c: PNG encoding with libdeflate (see png_enc.h). */
#include "png_enc.h"

#include "util.h"

#include <libdeflate.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static __thread struct libdeflate_compressor *tl_comp; /* this thread's, level BD_PNG_LEVEL */

void bd_png_thread_done(void) {
  if (tl_comp) libdeflate_free_compressor(tl_comp);
  tl_comp = NULL;
}

static void put32(unsigned char *p, uint32_t v) {
  p[0] = (unsigned char)(v >> 24), p[1] = (unsigned char)(v >> 16);
  p[2] = (unsigned char)(v >> 8), p[3] = (unsigned char)v;
}

/* One chunk: length, type, data, CRC-32 of type + data. */
static void chunk(bd_buf_t *out, const char type[4], const void *data, size_t n) {
  unsigned char h[8];
  put32(h, (uint32_t)n);
  memcpy(h + 4, type, 4);
  bd_buf_append(out, h, 8);
  if (n) bd_buf_append(out, data, n);
  uint32_t crc = libdeflate_crc32(0, type, 4);
  if (n) crc = libdeflate_crc32(crc, data, n);
  unsigned char c[4];
  put32(c, crc);
  bd_buf_append(out, c, 4);
}

/* --- the palette ------------------------------------------------------------ */

#define PAL_SLOTS 8192 /* open-addressing table of distinct colours (a power of 2) */
#define PAL_MAX   4096 /* more distinct colours than this: not a page for a palette */

typedef struct {
  uint32_t key[PAL_SLOTS]; /* colour | 1 << 24; 0: empty slot */
  uint32_t n[PAL_SLOTS];   /* pixels of that colour */
  uint16_t idx[PAL_SLOTS]; /* its palette index (after the palette is chosen) */
  int used;                /* distinct colours */
} ctab_t;

static inline uint32_t slot_of(uint32_t key) { return (key * 2654435761u) >> (32 - 13); }

/* The slot of colour c (inserted when new); -1 when the table is full. */
static inline int lookup(ctab_t *t, uint32_t c) {
  uint32_t key = c | 1u << 24;
  for (uint32_t s = slot_of(key);; s = (s + 1) & (PAL_SLOTS - 1)) {
    if (t->key[s] == key) return (int)s;
    if (t->key[s] == 0) {
      if (t->used >= PAL_MAX) return -1;
      t->key[s] = key;
      t->used++;
      return (int)s;
    }
  }
}

static int by_count(const void *a, const void *b) {
  const uint32_t *x = a, *y = b; /* {count, colour} */
  if (x[0] != y[0]) return x[0] > y[0] ? -1 : 1;
  return x[1] < y[1] ? -1 : x[1] > y[1];
}

/* The palette of an opaque page into pal (RGB triplets) and the index of
 * every pixel into raw (PNG rows with their filter byte); false when the
 * page is not one for a palette (see the header). */
static bool palette_rows(const unsigned char *px, int w, int h, int stride, unsigned char pal[768],
                         int *npal, unsigned char *raw) {
  ctab_t *t = bd_calloc(1, sizeof *t);
  bool ok = true;
  uint32_t last = 0xffffffffu;
  int ls = -1;
  for (int y = 0; y < h && ok; y++) {
    const uint32_t *row = (const uint32_t *)(const void *)(px + (size_t)y * (size_t)stride);
    for (int x = 0; x < w; x++) {
      uint32_t c = row[x] & 0xffffff;
      if (c != last) {
        ls = lookup(t, c);
        if (ls < 0) {
          ok = false;
          break;
        }
        last = c;
      }
      t->n[ls]++;
    }
  }
  uint32_t(*list)[2] = NULL;
  if (ok) {
    list = bd_malloc((size_t)t->used * sizeof *list);
    int k = 0;
    for (int s = 0; s < PAL_SLOTS; s++)
      if (t->key[s]) list[k][0] = t->n[s], list[k][1] = t->key[s] & 0xffffff, k++;
    qsort(list, (size_t)k, sizeof *list, by_count);
    *npal = BD_MIN(k, 256);
    uint64_t outside = 0;
    for (int i = *npal; i < k; i++) outside += list[i][0];
    ok = outside * BD_PNG_PALETTE_SLACK <= (uint64_t)w * (uint64_t)h;
    for (int i = 0; ok && i < k; i++) {
      uint32_t c = list[i][1];
      int best = i;
      if (i >= *npal) { /* nearest of the palette (squared RGB distance) */
        long bd = -1;
        for (int j = 0; j < *npal; j++) {
          uint32_t p = list[j][1];
          long dr = (long)((c >> 16) & 255) - (long)((p >> 16) & 255);
          long dg = (long)((c >> 8) & 255) - (long)((p >> 8) & 255);
          long db = (long)(c & 255) - (long)(p & 255);
          long d = dr * dr + dg * dg + db * db;
          if (bd < 0 || d < bd) bd = d, best = j;
        }
      } else {
        pal[3 * i] = (unsigned char)(c >> 16), pal[3 * i + 1] = (unsigned char)(c >> 8);
        pal[3 * i + 2] = (unsigned char)c;
      }
      t->idx[lookup(t, c)] = (uint16_t)best;
    }
  }
  if (ok) {
    size_t rl = (size_t)w + 1;
    last = 0xffffffffu;
    unsigned char li = 0;
    for (int y = 0; y < h; y++) {
      const uint32_t *row = (const uint32_t *)(const void *)(px + (size_t)y * (size_t)stride);
      unsigned char *o = raw + (size_t)y * rl;
      *o++ = 0; /* filter None */
      for (int x = 0; x < w; x++) {
        uint32_t c = row[x] & 0xffffff;
        if (c != last) last = c, li = (unsigned char)t->idx[lookup(t, c)];
        o[x] = li;
      }
    }
  }
  free(list);
  free(t);
  return ok;
}

/* --- the file --------------------------------------------------------------- */

int bd_png_encode(const unsigned char *px, int w, int h, int stride, int mode, bd_buf_t *out) {
  if (w <= 0 || h <= 0 || w > 32767 || h > 32767) return -1;
  int ch = mode == BD_PNG_RGBA ? 4 : 3;
  size_t rl = (size_t)w * (size_t)ch + 1, rawlen = rl * (size_t)h;
  unsigned char *raw = malloc(rawlen);
  if (!raw) return -1;
  unsigned char pal[768];
  int npal = 0;
  bool palette = mode == BD_PNG_PAGE && palette_rows(px, w, h, stride, pal, &npal, raw);
  if (palette) {
    rawlen = ((size_t)w + 1) * (size_t)h;
  } else {
    for (int y = 0; y < h; y++) {
      const uint32_t *row = (const uint32_t *)(const void *)(px + (size_t)y * (size_t)stride);
      unsigned char *o = raw + (size_t)y * rl;
      *o++ = 0; /* filter None */
      for (int x = 0; x < w; x++, o += ch) {
        uint32_t p = row[x];
        unsigned a = p >> 24, r = (p >> 16) & 255, g = (p >> 8) & 255, b = p & 255;
        if (ch == 4 && a != 255 && a != 0) { /* cairo stores premultiplied alpha */
          r = (r * 255 + a / 2) / a;
          g = (g * 255 + a / 2) / a;
          b = (b * 255 + a / 2) / a;
        }
        o[0] = (unsigned char)r, o[1] = (unsigned char)g, o[2] = (unsigned char)b;
        if (ch == 4) o[3] = (unsigned char)a;
      }
    }
  }
  if (!tl_comp) tl_comp = libdeflate_alloc_compressor(BD_PNG_LEVEL);
  size_t cap = tl_comp ? libdeflate_zlib_compress_bound(tl_comp, rawlen) : 0;
  unsigned char *z = tl_comp ? malloc(cap) : NULL;
  size_t zn = z ? libdeflate_zlib_compress(tl_comp, raw, rawlen, z, cap) : 0;
  free(raw);
  if (zn == 0) {
    free(z);
    return -1;
  }
  static const unsigned char sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  bd_buf_reserve(out, zn + 900);
  bd_buf_append(out, sig, 8);
  unsigned char ihdr[13];
  put32(ihdr, (uint32_t)w);
  put32(ihdr + 4, (uint32_t)h);
  ihdr[8] = 8;                              /* bit depth */
  ihdr[9] = palette ? 3 : ch == 4 ? 6 : 2;  /* palette, RGBA or RGB */
  ihdr[10] = 0, ihdr[11] = 0, ihdr[12] = 0; /* deflate, adaptive filters, no interlace */
  chunk(out, "IHDR", ihdr, sizeof ihdr);
  if (palette) chunk(out, "PLTE", pal, (size_t)npal * 3);
  chunk(out, "IDAT", z, zn);
  chunk(out, "IEND", NULL, 0);
  free(z);
  return 0;
}

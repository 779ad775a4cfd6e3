/* png_enc.h: PNG files from cairo image pixels, compressed with libdeflate
 * (whole buffer, one IDAT chunk).
 *
 * MODES
 *  - BD_PNG_RGB / BD_PNG_RGBA: 8-bit truecolour (RGBA un-premultiplied from
 *    cairo's premultiplied ARGB32), filter None on every row (measured on
 *    certificate pages: smaller than Sub or Up with libdeflate, and no
 *    filter pass).
 *  - BD_PNG_PAGE: for opaque pages (text, lines, a few images): an 8-bit
 *    palette PNG when the page has at most 256 colours, or when the 256
 *    most frequent colours cover all but BD_PNG_PALETTE_SLACK of the
 *    pixels (the rest, antialiasing fringes, take the nearest palette
 *    colour); else RGB. A certificate page is about half the bytes of RGB.
 *    Photographic pages have thousands of colours and stay RGB, exact.
 * Deterministic: the same pixels give the same bytes (palette order: by
 * pixel count, then by colour value; nearest colour: the lowest index among
 * equals).
 *
 * THREADS: any thread; each thread keeps its own libdeflate compressor.
 */
#ifndef BD_PNG_ENC_H
#define BD_PNG_ENC_H

#include "buf.h"

#include <stdbool.h>

enum { BD_PNG_RGB, BD_PNG_RGBA, BD_PNG_PAGE };

#define BD_PNG_LEVEL         9   /* libdeflate level (1..12) */
#define BD_PNG_PALETTE_SLACK 400 /* 1/400 = 0.25 % of the pixels may be approximated */

/* Appends the PNG of w x h cairo pixels (CAIRO_FORMAT_ARGB32 or RGB24, native
 * endian 32-bit words, stride bytes per row) to *out. 0, or -1 (out of
 * memory or sizes that do not fit) with out unchanged. */
int bd_png_encode(const unsigned char *px, int w, int h, int stride, int mode,
                  bd_buf_t *out) BD_MUSTCHECK;

/* At exit: this thread's compressor (others keep theirs until exit). */
void bd_png_thread_done(void);

#endif

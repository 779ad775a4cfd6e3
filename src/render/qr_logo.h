/* qr_logo.h: logo images of QR designs (qr_logo.c): PNG, JPEG and SVG bytes
 * validated when a design is parsed (qr.c) and drawn when a code is rendered
 * (qr_render.c). Any thread: no state. */
#ifndef BD_QR_LOGO_H
#define BD_QR_LOGO_H

#include <cairo.h>
#include <stdbool.h>
#include <stddef.h>

/* Largest width and height of a raster logo, in pixels. Checked against
 * the size the file declares (PNG IHDR, JPEG SOF) before a pixel is
 * decoded, so a small file that would decode to gigabytes is refused. */
#define BD_QR_LOGO_MAX_SIDE 2048

enum { BD_QR_LOGO_PNG = 1, BD_QR_LOGO_JPEG, BD_QR_LOGO_SVG }; /* kinds of logo bytes */

/* The bytes decode as an image of that kind. */
bool bd_qr_logo_probe(int kind, const unsigned char *p, size_t n);
/* Draws the image centred and scaled into the square (x, y, side); 0 or -1. */
int bd_qr_logo_draw(cairo_t *cr, int kind, const unsigned char *p, size_t n, double x, double y, double side);

#endif

/* qr_scan.h: the scannability guard that decides by decoding.
 *
 * bd_qr_design_parse keeps only the cheap checks for what can never scan
 * (dark colours lighter than the background, contrast below
 * BD_QR_MIN_CONTRAST). Whether the rest of a design scans is decided here:
 * the symbol of a representative payload (a batch's longest) is drawn as a
 * raster download draws it, at BD_QR_SCAN_MODULE_PX pixels per module (the
 * smallest module size at which we serve the design's own shapes: below it
 * rasters fall back to square modules) and decoded in-process by zbar (a
 * decoder written independently of our encoder, libqrencode, and
 * renderer) under two luma conversions; and the finder patterns of a crisp render at
 * BD_QR_SCAN_LARGE_PX must keep their proportions along the diagonals
 * (the cross-check of ZXing-family readers, which zbar does not make; see
 * qr_scan.c). The design passes when every test does and every decode
 * reads back the payload exactly.
 *
 * Threads: any (CPU-bound: meant for the work queue). Each call creates its
 * own decoder and owns all its memory; nothing global is touched.
 */
#ifndef BD_QR_SCAN_H
#define BD_QR_SCAN_H

#include "qr.h"

#define BD_QR_SCAN_MODULE_PX 4  /* pixels per module of the small test render */
#define BD_QR_SCAN_LARGE_PX 10  /* pixels per module of the finder cross-check */

enum {
  BD_QR_SCAN_OK = 0,     /* every test render decodes to the payload */
  BD_QR_SCAN_FAILS = 1,  /* one does not: err and *param name the likely culprit */
  BD_QR_SCAN_ERROR = -1, /* could not test (payload does not fit, logo unreadable, memory) */
};

/* Renders payload with design d and decodes it (see above). On
 * BD_QR_SCAN_FAILS, the design is tried again without one feature at a
 * time (logo, eye shapes, body shape, eye colours, gradient) and *param is
 * set to the first whose removal makes the code read ("design.logo",
 * "design.shapes.eye_frame", ...; "design" when none alone does), err to a
 * sentence for the client. *param points to a static string. */
int bd_qr_scan_check(const char *payload, const bd_qr_design_t *d, char *err, size_t errsz,
                     const char **param) BD_MUSTCHECK;

/* The version (1-40) of payload's symbol at level ec, 0 when it does not
 * fit: what, with the design, decides whether a code scans (a verdict
 * cache key). */
int bd_qr_symbol_version(const char *payload, char ec);

/* Whether the symbol of payload with design d, drawn at m pixels per
 * module, decodes to exactly payload (false also when it cannot be drawn). */
bool bd_qr_scan_decodes(const char *payload, const bd_qr_design_t *d, int m);

#endif

/* qr_internal.h: the design structure, shared by qr.c and qr_render.c. */
#ifndef BD_QR_INTERNAL_H
#define BD_QR_INTERNAL_H

#include "qr.h"
#include "qr_logo.h"

#include <cairo.h>
#include <qrencode.h>

struct bd_qr_design {
  char ec;                  /* 'L', 'M', 'Q', 'H' */
  uint32_t fg, bg;          /* 0xRRGGBB */
  int gradient;             /* 0 none, 1 top-to-bottom, 2 left-to-right, 3 diagonal, 4 radial */
  uint32_t grad_start;      /* gradient colours */
  uint32_t grad_end;
  int body;                 /* 0 square, 1 rounded, 2 dots */
  int eye_frame;            /* 0 square, 1 rounded, 2 circle */
  int eye_ball;             /* 0 square, 1 rounded, 2 circle */
  bool has_eye_frame_color; /* else the foreground */
  uint32_t eye_frame_color;
  bool has_eye_ball_color;
  uint32_t eye_ball_color;
  unsigned char *logo;      /* image bytes (owned), NULL without a logo */
  int logo_kind;            /* BD_QR_LOGO_* */
  size_t logo_len;
  char *logo_url;           /* the data: URL as given (owned) */
  double logo_size;         /* side of the logo as a fraction of the symbol */
  bool clear_background;    /* no modules drawn under the logo */
  bool transparent;         /* no background */
};

QRecLevel bd_qr_level(char ec);

/* The symbol of payload at level ec (qr_render.c: mode optimiser, ECI 26
 * for UTF-8); NULL with errno ERANGE when it does not fit. QRcode_free it. */
QRcode *bd_qr_encode(const char *payload, char ec);

/* Draws qr with design d exactly as a size x size PNG download draws it
 * (size / (width + 8) whole pixels per module, the symbol centred, body
 * shapes from 4 px, the logo on whole pixels), but on the declared
 * background even when d is transparent, into a new ARGB32 image. NULL
 * with err set on failure. Any thread. */
cairo_surface_t *bd_qr_raster(const QRcode *qr, const bd_qr_design_t *d, int size, char *err,
                              size_t errsz);

#endif

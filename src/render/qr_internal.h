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

#endif

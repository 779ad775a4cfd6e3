/* cert_render.h: certificate template layouts (parse, validate) and
 * certificate rendering (PDF, PNG, QR SVG) with cairo + pango.
 *
 * THE LAYOUT (a template's "layout" JSON object). Every member is listed
 * here; an unknown member anywhere is an error, as is a value of the wrong
 * JSON type. Numbers may be integers or reals. Coordinates are PDF points
 * (1/72 inch) from the top-left corner of the page, y growing downwards.
 *
 *   {"page": {"width": W, "height": H},                       required
 *    "background": {"color": C, "image": DATAURL},             optional
 *    "elements": [ELEMENT, ...]}                               required
 *
 *   page.width, page.height   72 to 5000 (points).
 *   background.color          "#rrggbb" or "#rgb" (any case); default white.
 *   background.image          a PNG data: URL ("data:image/png;base64,...",
 *                             parameters before ";base64" are allowed),
 *                             stretched over the whole page above the colour.
 *   elements                  1 to BD_CERT_MAX_ELEMENTS (200) objects, drawn
 *                             in order (later ones on top), each with "type":
 *
 *   text       x, y (required), text (required, 1 to 2000 bytes of UTF-8),
 *              font (family name, default "Noto Sans", 1-100 bytes), size
 *              (1-400 points, default 12), color (default "#000000"), align
 *              ("left" default, "center", "right"), max_width (1-5000, default
 *              none: one line per "\n"-separated paragraph), bold, italic
 *              (booleans, default false).
 *              x is the anchor of the alignment: the left edge, the centre or
 *              the right edge of the text; y is the top of the first line.
 *              With max_width the text wraps at word boundaries (at any
 *              character when a word is longer) inside a box max_width wide
 *              anchored the same way. Alignment is physical: "left" is flush
 *              left even for right-to-left text; the paragraph direction
 *              (bidi) comes from the text's first strong character. Missing
 *              glyphs fall back through fontconfig to any installed font that
 *              has them (Arabic, CJK, ...).
 *   image      x, y, width, height (required, > 0 and at most 5000), src (a
 *              PNG data: URL as above): the image is scaled to fill the box.
 *   qr         x, y (top-left), size (side, 36-5000 points, default 100):
 *              a QR code (level M, black on white, 4-module quiet zone
 *              included in size) of the certificate's verification URL.
 *   signature  field ("signatory_N", N >= 1, no leading zero), x, y, width,
 *              height (required box): the signatory's signature image scaled
 *              to fit the box (aspect kept, centred), then the signatory's
 *              name (bold) and designation, centred under the box, in font
 *              (default "Noto Sans") at size (default 12) and color.
 *              Several elements may use the same field. The distinct fields
 *              of a layout must be signatory_1 .. signatory_K without gaps.
 *
 *   Coordinates x, y: -5000 to 10000 (a box may run over the page edge and
 *   is clipped). Images: at most BD_CERT_MAX_IMAGE_BYTES (2 MiB) of PNG per
 *   data: URL, at most BD_CERT_MAX_IMAGE_PIXELS (4096) per side, and
 *   BD_CERT_MAX_LAYOUT_IMAGE_BYTES (8 MiB) for all images of a layout. The
 *   whole layout JSON text is bounded by the request body limit.
 *
 * PLACEHOLDERS in text: "{{Name}}" (spaces inside the braces around the name
 * are ignored: "{{ Name }}" is the same). Names: RecipientsName,
 * RecipientsEmail, IssueDate (written DD-MM-YYYY), ReferenceId,
 * InstitutionName, BatchName, VerificationUrl, and any custom CSV column by
 * its exact (case-sensitive) header. A name none of these match renders as
 * empty text. A text element longer than BD_CERT_MAX_RENDERED_TEXT (4000)
 * bytes once its placeholders are filled in, or a signatory name or
 * designation over that, fails the render (bd_cert_render's error names the
 * element): CSV fields may be 64 KiB, and laying out that much text would
 * take a render thread for seconds for a certificate nobody can read.
 * "{{" without a closing "}}" on the same text, or with an empty
 * or over 100-byte name, is literal text. Values are inserted as plain text
 * (never markup).
 *
 * ERRORS: parse failures write one message naming the field with its JSON
 * path, e.g. "layout.elements.2.size must be between 1 and 400" (element
 * indices start at 0, like Laravel's "signatories.0.index").
 *
 * THREADS: a parsed layout is immutable; any number of threads may render
 * from it at once. Parsing and rendering may run on any thread (rendering is
 * CPU-bound: run it on the work queue, never on the loop thread). Each
 * rendering thread keeps its own pango font map (pango font maps are not
 * thread safe), created on first use and kept for the thread's life.
 */
#ifndef BD_CERT_RENDER_H
#define BD_CERT_RENDER_H

#include "buf.h"

#include <jansson.h>

#define BD_CERT_MAX_ELEMENTS           200
#define BD_CERT_MAX_TEXT_BYTES         2000
#define BD_CERT_MAX_FONT_BYTES         100
#define BD_CERT_MAX_PLACEHOLDER_BYTES  100
#define BD_CERT_MAX_IMAGE_BYTES        (2u << 20) /* decoded PNG bytes per image */
#define BD_CERT_MAX_IMAGE_PIXELS       4096       /* per side */
#define BD_CERT_MAX_LAYOUT_IMAGE_BYTES (8u << 20) /* all images of one layout */
#define BD_CERT_MAX_RENDERED_TEXT      4000       /* bytes of one text element after placeholders */
#define BD_CERT_PAGE_MIN               72
#define BD_CERT_PAGE_MAX               5000

/* Limits a caller may tighten (a zero member means the default above). */
typedef struct {
  size_t max_elements;           /* elements per layout */
  size_t max_image_bytes;        /* decoded bytes of one data: URL image */
  size_t max_layout_image_bytes; /* all images together */
} bd_cert_limits_t;

typedef struct bd_cert_layout
    bd_cert_layout_t; /* immutable after parse: may be shared read-only by threads */

/* Parses and validates a layout (see above). Returns NULL and a message
 * naming the field in err on error. The result owns all its data (decoded
 * images included) and does not refer to `layout` afterwards. */
bd_cert_layout_t *bd_cert_layout_parse(const json_t *layout, char *err, size_t errsz) BD_MUSTCHECK;
bd_cert_layout_t *bd_cert_layout_parse_ex(const json_t *layout, const bd_cert_limits_t *lim,
                                          char *err, size_t errsz) BD_MUSTCHECK;
void bd_cert_layout_free(bd_cert_layout_t *l); /* NULL is fine */

/* Distinct signatory_N fields (signatory_1..signatory_K, guaranteed without
 * gaps by the parser), and the i-th (0-based) of them: "signatory_1", ...
 * The string lives as long as the layout. */
size_t bd_cert_layout_signatory_count(const bd_cert_layout_t *l);
const char *bd_cert_layout_signatory_field(const bd_cert_layout_t *l, size_t i);

/* Page size in points. */
double bd_cert_layout_width(const bd_cert_layout_t *l);
double bd_cert_layout_height(const bd_cert_layout_t *l);

/* ---------------------------------------------------------------------- */
/* RENDERING                                                              */
/*
 * Output of one certificate:
 *  - PDF: one page of the layout's size, vector text (pango-shaped glyphs,
 *    fonts embedded as subsets by cairo), vector QR, images embedded. The
 *    document metadata is fixed by the input (title "Certificate <reference
 *    id>", creator "batchd", creation and modification date = the issue date
 *    at 00:00:00 UTC), so the same input gives the same bytes.
 *  - PNG: the same page as an opaque 8-bit RGB image at BD_CERT_PNG_SCALE
 *    (2) pixels per point, i.e. 144 dpi (an A4 landscape page of 842 x 595
 *    points is 1684 x 1190 px), lowered for pages whose longer side would
 *    exceed BD_CERT_PNG_MAX_SIDE (4096) pixels. QR modules are snapped to
 *    whole pixels. Text uses unhinted metrics so lines break exactly as in
 *    the PDF.
 *  - the QR code alone as SVG (512 x 512 user units, vector), for
 *    /qrcode.svg.
 *  - SHA-256 (lower-case hex) of the PDF and of the PNG.
 */

#define BD_CERT_PNG_SCALE    2.0
#define BD_CERT_PNG_MAX_SIDE 4096

/* A decoded PNG (signature images): immutable, shareable by threads. */
typedef struct bd_cert_image bd_cert_image_t;
/* NULL with err set when the bytes are not a PNG of at most
 * BD_CERT_MAX_IMAGE_PIXELS per side (checked before decoding). */
bd_cert_image_t *bd_cert_image_decode(const void *png, size_t n, char *err,
                                      size_t errsz) BD_MUSTCHECK;
void bd_cert_image_free(bd_cert_image_t *img); /* NULL is fine */

typedef struct {
  const char *name;                 /* drawn in bold under the signature */
  const char *designation;          /* line under the name; NULL or "": none */
  const bd_cert_image_t *signature; /* NULL: no image, only the name lines */
} bd_cert_signatory_t;

/* Everything a certificate shows; borrowed for the duration of the call
 * (a worker job keeps its own copy alive). */
typedef struct {
  const char *recipient_name;   /* {{RecipientsName}} */
  const char *recipient_email;  /* {{RecipientsEmail}} */
  const char *issue_date;       /* "YYYY-MM-DD" (required); {{IssueDate}} is DD-MM-YYYY */
  const char *reference_id;     /* {{ReferenceId}} */
  const char *verification_url; /* encoded by qr elements; {{VerificationUrl}} (required) */
  const char *institution_name; /* {{InstitutionName}} */
  const char *batch_name;       /* {{BatchName}} */
  const json_t *custom_data;    /* object: custom CSV columns -> string values; NULL: none */
  const bd_cert_signatory_t *signatories; /* [0] is signatory_1 ... */
  size_t nsignatories;                    /* must be >= the layout's signatory count */
} bd_cert_input_t;

typedef struct {
  bd_buf_t pdf;        /* PDF file bytes */
  bd_buf_t png;        /* PNG file bytes */
  bd_buf_t qr_svg;     /* the QR code as an SVG document */
  char pdf_sha256[65]; /* lower-case hex */
  char png_sha256[65];
  int png_width, png_height; /* pixels */
} bd_cert_output_t;

/* Renders one certificate into *out (initialised by the call; release it
 * with bd_cert_output_free, also after a failure). 0 on success; -1 with err
 * set (bad issue date, missing signatory, a QR that does not fit, cairo
 * failure). Any thread; CPU-bound (run it on the work queue). */
int bd_cert_render(const bd_cert_layout_t *l, const bd_cert_input_t *in, bd_cert_output_t *out,
                   char *err, size_t errsz) BD_MUSTCHECK;
/* What bd_cert_render_ex makes (bits); bd_cert_render makes all three. The
 * members of *out not asked for stay empty (their hash ""). */
enum { BD_CERT_PDF = 1, BD_CERT_PNG = 2, BD_CERT_QR_SVG = 4, BD_CERT_ALL = 7 };
int bd_cert_render_ex(const bd_cert_layout_t *l, const bd_cert_input_t *in, unsigned what,
                      bd_cert_output_t *out, char *err, size_t errsz) BD_MUSTCHECK;
void bd_cert_output_free(bd_cert_output_t *out);

/* The text of a text element after placeholder substitution, appended to
 * *out (for tests and previews); index is the element's position. false if
 * that element is not a text element. */
bool bd_cert_layout_text(const bd_cert_layout_t *l, size_t index, const bd_cert_input_t *in,
                         bd_buf_t *out);

/* At exit, when no thread renders any more: releases every thread's font
 * map (and, in sanitizer builds, fontconfig's and cairo's caches). */
void bd_cert_render_shutdown(void);

#endif

/* qr.h: QR payloads, designs and rendering.
 *
 * Threads: any. Nothing here keeps mutable global state or touches the
 * event loop, so every function may run on the libuv thread pool; each call
 * only reads its arguments and writes its outputs. A bd_qr_design_t owns all
 * its memory (bd_qr_design_copy gives a worker its own copy).
 *
 * Errors: functions that can fail write a human-readable message into
 * err[errsz] and, where they take one, set *param to the offending field
 * ("target.email", "design.shapes.body", ...). *param always points to a
 * static string: it never needs freeing and outlives any request.
 *
 * PAYLOADS (what the symbol encodes). A target carries the fields of exactly
 * one type; fields of two types, a field of another type, or an unknown
 * field are errors (silently ignoring half of what a client sent would be
 * worse). The type comes from the fields present:
 *   destination (+utm)        url: absolute http(s) URL. utm {source, medium,
 *                             campaign, term, content} is merged as utm_*
 *                             query parameters: existing parameters and the
 *                             fragment are kept, a utm_X given in both is
 *                             replaced, values are percent-encoded (RFC 3986
 *                             unreserved characters kept, space as %20).
 *                             Dynamic codes encode their short URL instead;
 *                             the redirect uses bd_qr_merge_utm.
 *   destination, not http(s)  a pre-encoded payload of any type (QRKit), the
 *                             only field: encoded exactly as given (static);
 *                             its type told by its start: mailto: email,
 *                             smsto:/sms: sms, tel: phone, WIFI: wifi,
 *                             BEGIN:VEVENT/VCALENDAR event, BEGIN:VCARD
 *                             vcard, anything else text.
 *   text                      text: as given (UTF-8), 1+ bytes.
 *   email (+subject, message) email: mailto:addr?subject=..&body=.. (RFC
 *                             6068: everything but unreserved characters
 *                             percent-encoded, line breaks as %0D%0A).
 *   phone + message           sms:   SMSTO:phone:message
 *   phone                     phone: tel:phone
 *                             Phone numbers are normalised to an optional
 *                             leading + and digits: the separators people
 *                             type (space - . ( ) /) are dropped, because a
 *                             tel: URI with spaces is not a URI (RFC 3966)
 *                             and some readers refuse it. 3-20 digits.
 *   ssid (+password, encryption, hidden)
 *                             wifi: WIFI:T:<enc>;S:<ssid>;P:<pw>;H:true;;
 *                             with \ ; , : " escaped by a backslash (the
 *                             ZXing convention every phone reads). encryption
 *                             is WPA (default with a password), WEP or nopass
 *                             (default without); WPA needs a password of
 *                             8-63 characters (or 64 hex digits), WEP one of
 *                             5/13 characters or 10/26 hex digits, nopass
 *                             none. ssid is 1-32 bytes. hidden is a boolean.
 *   title (+location, start, end)
 *                             event: BEGIN:VEVENT..END:VEVENT, CRLF lines,
 *                             RFC 5545 TEXT escaping (\\ \; \, \n), lines
 *                             folded at 75 octets. start (required) and end
 *                             are RFC 3339 timestamps, written as UTC
 *                             (DTSTART:20250314T130403Z, fractions dropped),
 *                             or both plain dates (2025-03-14), written as
 *                             DTSTART;VALUE=DATE, with end meaning the last
 *                             day (DTEND is the exclusive day after it).
 *                             No UID/DTSTAMP: the payload must be a pure
 *                             function of the target, and readers do not
 *                             need them.
 *   vcard {first_name, last_name, organization, title, phone, mobile, email,
 *          url, address, note}
 *                             vcard: vCard 3.0 (the version phones import
 *                             most reliably), CRLF lines folded at 75 octets,
 *                             TEXT escaping as above. Emitted in this order:
 *                             N, FN (names, else organization), ORG, TITLE,
 *                             TEL (phone), TEL;TYPE=CELL (mobile), EMAIL,
 *                             URL, ADR, NOTE. address is a string (becomes
 *                             the street) or {street, city, region,
 *                             postal_code, country}. One of first_name,
 *                             last_name or organization is required.
 * A payload longer than a version-40 symbol can hold at level L (2953
 * bytes) is rejected here; bd_qr_fits checks the design's level.
 *
 * DESIGNS: see bd_qr_design_parse for the object. Scannability is decided
 * by decoding a test rendering (qr_scan.h, run by the surfaces on the work
 * queue); parsing keeps only the cheap checks for what can never scan:
 *  - contrast: every colour that draws dark modules (foreground, or both
 *    gradient stops, and the eye colours) needs a symbol contrast (ISO/IEC
 *    15415: background reflectance minus dark reflectance, taken here as
 *    the WCAG relative luminances) of at least 40 %, grade C, the minimum
 *    GS1 and most application standards ask of a printed symbol; below it
 *    exposure and noise in a phone camera erase the difference, however
 *    well a clean digital image decodes. Checking the two stops covers the
 *    whole gradient: relative luminance is convex along a straight sRGB
 *    interpolation, so its maximum is at an end. (A contrast-ratio rule
 *    such as WCAG's 3:1 would refuse codes that scan: #00c2ff on white is
 *    2.07:1 but a 54 % symbol contrast.)
 *  - polarity: dark colours must be darker than the background. Inverted
 *    (light-on-dark) codes are legal since ISO 18004:2015 but many readers
 *    still miss them, so we refuse rather than issue codes that fail.
 *  - transparent_background: checked against the declared background
 *    (white by default), which is what the code is promised to sit on.
 *  - logo: its side may cover at most this fraction of the symbol's side
 *    (quiet zone excluded): L 0 (no logo), M 0.15, Q 0.22, H 0.30, i.e.
 *    2.3 %, 4.8 % and 9 % of the area against 15 %, 25 % and 30 % of
 *    codewords the levels can recover: about a third of the budget, the
 *    rest stays for print and camera damage. design.logo.size (an
 *    extension: 0.05-0.4) defaults to min(0.22, the level's maximum).
 *  - logo.url must be a data: URL of a PNG, JPEG or SVG (base64 or
 *    percent-encoded, at most 1 MiB decoded, 2048x2048 px). http(s) logos
 *    are fetched by the server (allowlist, size and time limits) and
 *    inlined as data: URLs before parsing; bd_qr_design_remote_logo tells
 *    it when to do so.
 *
 * RENDERING: ASCII payloads with QRcode_encodeString(payload, 0, level,
 * QR_MODE_8, 1), i.e. libqrencode's mode optimiser (numeric/alphanumeric
 * runs, 8-bit for the rest, never Kanji, case kept), falling back to pure
 * 8-bit mode in the rare case the optimiser's output does not fit where
 * pure 8-bit would. Payloads with UTF-8 beyond ASCII are one 8-bit segment
 * after an ECI 26 (UTF-8) designator (2 bytes of capacity): without it
 * readers guess the charset, and zbar, like others, prefers Big5 or
 * Shift-JIS when the bytes happen to be valid there ("Café" → "Caf矇").
 * ASCII payloads carry no ECI, for the oldest readers. A quiet
 * zone of 4 modules always surrounds the symbol. Raster output uses a whole
 * number of pixels per module (crisp edges; the remainder widens the quiet
 * zone), so a symbol needs at least (modules + 8) px. See qr_render.c.
 */
#ifndef BD_QR_H
#define BD_QR_H

#include "buf.h"

#include <cairo.h>
#include <jansson.h>

typedef enum {
  BD_QR_TYPE_URL,
  BD_QR_TYPE_TEXT,
  BD_QR_TYPE_EMAIL,
  BD_QR_TYPE_SMS,
  BD_QR_TYPE_PHONE,
  BD_QR_TYPE_WIFI,
  BD_QR_TYPE_EVENT,
  BD_QR_TYPE_VCARD,
} bd_qr_type_t;

typedef enum { BD_QR_PNG, BD_QR_SVG, BD_QR_PDF } bd_qr_format_t;

#define BD_QR_SIZE_MIN    128  /* smallest image side in pixels (PDF: points) */
#define BD_QR_SIZE_MAX    4096 /* largest */
#define BD_QR_MAX_PAYLOAD 2953 /* bytes in a version-40 symbol at level L, 8-bit mode */
#define BD_QR_MIN_SYMBOL_CONTRAST 0.40 /* ISO/IEC 15415 grade C: see DESIGNS below */

typedef struct bd_qr_design bd_qr_design_t; /* opaque; see qr_internal.h */

/* "url", "text", "email", "sms", "phone", "wifi", "event", "vcard". */
const char *bd_qr_type_name(bd_qr_type_t t);

/* Builds the payload of a target object and appends it to *payload (on
 * error it may hold part of one: reset it). 0 on success; -1 with err and
 * param set otherwise. *type is set once the fields make the type clear, so
 * also on most errors (a batch reports the type of an invalid item); it is
 * left alone when the type cannot be told (param "target", or a field that
 * belongs to another type). */
int bd_qr_payload(const json_t *target, bd_qr_type_t *type, bd_buf_t *payload, char *err,
                  size_t errsz, const char **param) BD_MUSTCHECK;

/* Appends url with utm (an object of source/medium/campaign/term/content
 * strings, or NULL / JSON null) merged as utm_* query parameters, as
 * described above. url is not validated beyond what the merge needs; utm
 * is (unknown keys, non-strings, over 200 bytes: -1, param
 * "target.utm[.key]"). Used for payloads and for /s/{code} redirects. */
int bd_qr_merge_utm(const char *url, const json_t *utm, bd_buf_t *out, char *err, size_t errsz,
                    const char **param) BD_MUSTCHECK;

/* Parses and validates a design object (NULL or JSON null: the default
 * design: level M, black on white, squares, no logo). Returns NULL with
 * err/param set when invalid. Accepted members (all optional):
 *   error_correction   "L" | "M" | "Q" | "H"                     (M)
 *   colors             {foreground, background}: "#rrggbb" or "#rgb"
 *                                                         (#000000, #ffffff)
 *   gradient           {start, end (required), type: linear-top-to-bottom
 *                      (default) | linear-left-to-right | diagonal | radial}
 *                      paints the body (and eyes without eye_colors)
 *                      instead of the foreground
 *   shapes             {body: square|rounded|dots, eye_frame and eye_ball:
 *                      square|rounded|circle}                    (square)
 *   eye_colors         {frame, ball}: colours of the finder patterns
 *   logo               {url, clear_background (false), size (see above);
 *                      source_url is accepted and ignored (the server
 *                      records where an inlined logo came from)}
 *   transparent_background  boolean                              (false)
 * Unknown members are errors. The result owns all its data. */
bd_qr_design_t *bd_qr_design_parse(const json_t *design, char *err, size_t errsz,
                                   const char **param) BD_MUSTCHECK;
bd_qr_design_t *bd_qr_design_copy(const bd_qr_design_t *d) BD_MUSTCHECK;
void bd_qr_design_free(bd_qr_design_t *d); /* NULL is fine */
/* The normalised design as stored with a code: every member spelled out,
 * colours as lowercase #rrggbb (new reference). Parsing it again gives the
 * same design. */
json_t *bd_qr_design_to_json(const bd_qr_design_t *d) BD_MUSTCHECK;
char bd_qr_design_ec(const bd_qr_design_t *d); /* 'L', 'M', 'Q' or 'H' */
/* Whether a design is the plain one the fast paths handle (square modules
 * and eyes in one solid colour, no gradient, no logo). */
bool bd_qr_design_is_plain(const bd_qr_design_t *d);
/* Whether the decoding guard (qr_scan.h) has anything to test: false for
 * plain designs (square modules in one solid colour that passed the
 * contrast check scan on every reader). */
bool bd_qr_design_needs_scan(const bd_qr_design_t *d);
/* True when design.logo.url of an unparsed design is an http(s) URL (which
 * the server must fetch and inline first); *url then borrows it. */
bool bd_qr_design_remote_logo(const json_t *design, const char **url);

/* Whether payload fits in a version-40 symbol at the design's level (a
 * conservative byte-count check, cheap enough for the loop thread). */
bool bd_qr_fits(const char *payload, const bd_qr_design_t *d);

/* Renders payload with design d as a size x size image (BD_QR_SIZE_MIN to
 * BD_QR_SIZE_MAX pixels; PDF pages are size x size points), appending the
 * file's bytes to *out. Plain PNG and SVG take fast paths that do not use
 * cairo. 0 on success; -1 with err set (size too small for the symbol,
 * payload too long, a logo that cannot be decoded). CPU-bound: meant for a
 * worker thread. */
int bd_qr_render(const char *payload, const bd_qr_design_t *d, bd_qr_format_t fmt, int size,
                 bd_buf_t *out, char *err, size_t errsz) BD_MUSTCHECK;

/* Draws the symbol of payload with design d (quiet zone included) into the
 * square (x, y, size) of cr's user space, clipped to that square: used to
 * embed codes in certificates. px_per_unit > 0 means cr is a raster surface
 * with that many device pixels per user unit and no rotation: modules are
 * then snapped to whole device pixels (crisp edges, the remainder widens the
 * quiet zone) when at least one pixel each. 0 draws exact vectors. 0 on
 * success; -1 with err set (payload does not fit, logo not decodable).
 * Any thread (cr belongs to the caller). */
int bd_qr_draw(cairo_t *cr, const char *payload, const bd_qr_design_t *d, double x, double y,
               double size, double px_per_unit, char *err, size_t errsz) BD_MUSTCHECK;

/* Encodes a cairo ARGB32 image surface as an 8-bit RGB (alpha=false) or RGBA
 * PNG (zlib level 1, no filter), appending to *out: the QR renderer's
 * encoder, shared with the certificate renderer. */
int bd_qr_png_encode(cairo_surface_t *s, bool alpha, bd_buf_t *out, char *err,
                     size_t errsz) BD_MUSTCHECK;

#endif

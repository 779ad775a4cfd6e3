/* qr.h: QR payloads, designs and rendering. Any thread; no shared state
 * (rendering runs on the libuv thread pool: every function here only touches
 * its arguments).
 *
 * Payloads (what the symbol encodes), by the first key present in the target,
 * in this order:
 *   destination               url: absolute http(s) URL; target.utm
 *                             {source,medium,campaign,term,content} is merged
 *                             as utm_* query parameters (replacing any present,
 *                             keeping the rest of the query and the fragment)
 *   vcard {first_name, last_name, organization, title, phone, email, url,
 *          address}           vcard: vCard 3.0, RFC 6350 text escaping
 *   ssid (+password, encryption WPA|WEP|nopass, hidden)
 *                             wifi: WIFI:T:WPA;S:..;P:..;; with \ ; , : "
 *                             escaped by a backslash
 *   email (+subject, message) email: mailto:addr?subject=..&body=..
 *   phone + message           sms: SMSTO:phone:message
 *   phone                     phone: tel:phone
 *   title / location / start / end
 *                             event: BEGIN:VEVENT … END:VEVENT, RFC 5545 text
 *                             escaping, DTSTART/DTEND in UTC from RFC 3339
 *   text                      text: as given
 *
 * Designs: see bd_qr_design_parse. The scannability guard rejects:
 *  - a foreground (or gradient stop, or eye colour) whose WCAG contrast
 *    ratio with the background is below 3:1, or that is lighter than the
 *    background (inverted codes fail on many readers);
 *  - a logo larger than the error-correction level can absorb: its side may
 *    cover at most 15 % (M), 20 % (Q) or 25 % (H) of the symbol; level L
 *    allows no logo;
 *  - logo URLs other than data: URLs of PNG, JPEG or SVG images (at most
 *    1 MiB, 2048x2048 px). Remote http(s) logos are fetched by the /v1
 *    handlers (allowlisted hosts, size- and time-limited) and turned into
 *    data: URLs before a design reaches this parser.
 */
#ifndef BD_QR_H
#define BD_QR_H

#include "buf.h"

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

typedef struct bd_qr_design bd_qr_design_t;

const char *bd_qr_type_name(bd_qr_type_t t);

/* Builds the payload of a target object. 0 on success; otherwise err holds
 * a message and *param the offending field ("target.email", ...). *type is
 * set as soon as it is known (also on some errors). */
int bd_qr_payload(const json_t *target, bd_qr_type_t *type, bd_buf_t *payload, char *err, size_t errsz,
                  const char **param) BD_MUSTCHECK;

/* Parses and validates a design (NULL: the default design). Returns NULL
 * with err/param set when invalid. The result owns all its data. */
bd_qr_design_t *bd_qr_design_parse(const json_t *design, char *err, size_t errsz, const char **param);
bd_qr_design_t *bd_qr_design_copy(const bd_qr_design_t *d);
void bd_qr_design_free(bd_qr_design_t *d);
/* The normalised design as stored with a code (new reference). */
json_t *bd_qr_design_to_json(const bd_qr_design_t *d);
char bd_qr_design_ec(const bd_qr_design_t *d); /* 'L', 'M', 'Q' or 'H' */

/* Whether payload fits in a version-40 symbol at the design's level. */
bool bd_qr_fits(const char *payload, const bd_qr_design_t *d);

/* Renders payload with the design as a size x size image (128-4096 px; PDF
 * in points). Plain designs (square modules, solid colours, no logo) take a
 * fast path that writes a palette PNG directly. 0 on success. */
int bd_qr_render(const char *payload, const bd_qr_design_t *d, bd_qr_format_t fmt, int size, bd_buf_t *out,
                 char *err, size_t errsz) BD_MUSTCHECK;

#endif

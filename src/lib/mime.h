/* mime.h: composing e-mail messages (RFC 5322 + MIME), injection-proof.
 *
 * bd_mime_compose writes one message: From, To, Subject, Date, Message-ID,
 * MIME-Version, Auto-Submitted, then multipart/mixed of a
 * multipart/alternative (text/plain, and text/html when given) and one
 * attachment. Every part is base64 (76-character lines), every line ends
 * in CRLF and is under 100 bytes, so the message passes any 7-bit relay.
 *
 * HEADER SAFETY. No value given here reaches a header as written: CR, LF
 * and every other control character in a display name or the subject
 * become spaces; a value that is not short printable ASCII is written as
 * RFC 2047 encoded-words (UTF-8, base64, split on character boundaries,
 * folded onto continuation lines); a printable ASCII display name is a
 * quoted-string. Addresses are checked instead (no spaces, controls, angle
 * brackets, quotes, commas, one @; UTF-8 allowed for SMTPUTF8): a bad one
 * fails the call. Attachment file names keep [A-Za-z0-9._-] only.
 * Boundaries start with "=_", which base64 lines cannot contain.
 *
 * Pure functions, any thread.
 */
#ifndef BD_MIME_H
#define BD_MIME_H

#include "buf.h"

#include <stdbool.h>
#include <stddef.h>

typedef struct {
  const char *from_name;       /* display name, UTF-8 ("" or NULL: none) */
  const char *from_addr;       /* addr-spec */
  const char *to_name;         /* display name, UTF-8 ("" or NULL: none) */
  const char *to_addr;         /* addr-spec */
  const char *subject;         /* UTF-8 */
  long long date_s;            /* the Date (unix s, written in UTC) */
  const char *message_id;      /* id-left@id-right, without the angle brackets */
  const char *text;            /* the text/plain body, UTF-8 */
  const char *html;            /* the text/html body, UTF-8 (NULL: none) */
  const void *attachment;      /* its bytes (NULL: no attachment) */
  size_t attachment_len;       /* their length */
  const char *attachment_name; /* file name */
  const char *attachment_type; /* e.g. "application/pdf" */
} bd_mime_message_t;

/* Appends the message to out. 0, or -1 when an address or the Message-ID
 * is not acceptable (out unchanged then). */
int bd_mime_compose(const bd_mime_message_t *m, bd_buf_t *out) BD_MUSTCHECK;

/* Whether an address may be written into a header or an SMTP command. */
bool bd_mime_addr_ok(const char *addr);

/* Appends "Name: value" + CRLF for an unstructured header (Subject),
 * encoded and folded as above. */
void bd_mime_header_text(bd_buf_t *out, const char *name, const char *value);

/* Appends text with & < > " ' escaped for HTML. */
void bd_mime_html_escape(bd_buf_t *out, const char *s, size_t n);

#endif

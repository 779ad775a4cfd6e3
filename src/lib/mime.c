/* mime.c: e-mail messages (mime.h). */
#include "mime.h"

#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define EW_BYTES 36  /* UTF-8 bytes per encoded-word: 48 base64 characters, 60 with the =?UTF-8?B?...?= */
#define PLAIN_MAX 60 /* printable ASCII up to this length is written as it is */

bool bd_mime_addr_ok(const char *a) {
  if (!a) return false;
  size_t n = strlen(a);
  if (n < 3 || n > 254) return false;
  const char *at = strchr(a, '@');
  if (!at || at == a || !at[1] || strchr(at + 1, '@')) return false;
  for (const unsigned char *p = (const unsigned char *)a; *p; p++)
    if (*p <= ' ' || *p == 0x7f || strchr("<>()[]\\,;:\"", *p)) return false;
  return true;
}

/* The value with every control character (CR, LF, TAB, DEL, ...) turned
 * into a space, and runs of spaces kept as they are. */
static char *clean(const char *s) {
  char *o = bd_strdup(s ? s : "");
  for (unsigned char *p = (unsigned char *)o; *p; p++)
    if (*p < 0x20 || *p == 0x7f) *p = ' ';
  return o;
}

static bool plain_ascii(const char *s, size_t max) {
  size_t n = strlen(s);
  if (n > max) return false;
  for (const unsigned char *p = (const unsigned char *)s; *p; p++)
    if (*p < 0x20 || *p > 0x7e) return false;
  return strstr(s, "=?") == NULL; /* would read as an encoded-word */
}

/* Length of the UTF-8 sequence starting at s (1 for a stray byte). */
static size_t u8len(const unsigned char *s, size_t left) {
  size_t n = *s < 0x80 ? 1 : (*s & 0xe0) == 0xc0 ? 2 : (*s & 0xf0) == 0xe0 ? 3 : (*s & 0xf8) == 0xf0 ? 4 : 1;
  if (n > left) return 1;
  for (size_t i = 1; i < n; i++)
    if ((s[i] & 0xc0) != 0x80) return 1;
  return n;
}

/* Encoded-words of s, the first one right after what is on the line, the
 * others on continuation lines (CRLF SP). */
static void encoded_words(bd_buf_t *out, const char *s) {
  const unsigned char *p = (const unsigned char *)s;
  size_t left = strlen(s);
  bool first = true;
  if (!left) return;
  while (left) {
    size_t take = 0;
    while (take < left) {
      size_t c = u8len(p + take, left - take);
      if (take + c > EW_BYTES) break;
      take += c;
    }
    if (!first) bd_buf_puts(out, "\r\n ");
    bd_buf_puts(out, "=?UTF-8?B?");
    bd_b64_encode(out, p, take);
    bd_buf_puts(out, "?=");
    p += take;
    left -= take;
    first = false;
  }
}

void bd_mime_header_text(bd_buf_t *out, const char *name, const char *value) {
  char *v = clean(value);
  bd_buf_puts(out, name);
  bd_buf_puts(out, ": ");
  if (plain_ascii(v, PLAIN_MAX)) bd_buf_puts(out, v);
  else encoded_words(out, v);
  bd_buf_puts(out, "\r\n");
  free(v);
}

/* "Name: display <addr>" + CRLF; the address already checked. */
static void header_addr(bd_buf_t *out, const char *name, const char *display, const char *addr) {
  char *d = clean(display);
  bd_buf_puts(out, name);
  bd_buf_puts(out, ": ");
  size_t dl = strlen(d);
  while (dl && d[dl - 1] == ' ') d[--dl] = '\0';
  const char *ds = d;
  while (*ds == ' ') ds++;
  if (*ds) {
    if (plain_ascii(ds, PLAIN_MAX)) {
      bd_buf_putc(out, '"');
      for (const char *p = ds; *p; p++) {
        if (*p == '"' || *p == '\\') bd_buf_putc(out, '\\');
        bd_buf_putc(out, *p);
      }
      bd_buf_putc(out, '"');
    } else {
      encoded_words(out, ds);
    }
    bd_buf_puts(out, "\r\n <");
  } else {
    bd_buf_putc(out, '<');
  }
  bd_buf_puts(out, addr);
  bd_buf_puts(out, ">\r\n");
  free(d);
}

/* base64 in lines of 76 characters, each ending in CRLF. */
static void b64_lines(bd_buf_t *out, const void *p, size_t n) {
  const unsigned char *s = p;
  bd_buf_t t = BD_BUF_INIT;
  for (size_t off = 0; off < n; off += 57) {
    size_t take = n - off < 57 ? n - off : 57;
    bd_buf_reset(&t);
    bd_b64_encode(&t, s + off, take);
    bd_buf_append(out, t.data, t.len);
    bd_buf_puts(out, "\r\n");
  }
  bd_buf_free(&t);
}

void bd_mime_html_escape(bd_buf_t *out, const char *s, size_t n) {
  for (size_t i = 0; i < n; i++) {
    switch (s[i]) {
    case '&': bd_buf_puts(out, "&amp;"); break;
    case '<': bd_buf_puts(out, "&lt;"); break;
    case '>': bd_buf_puts(out, "&gt;"); break;
    case '"': bd_buf_puts(out, "&quot;"); break;
    case '\'': bd_buf_puts(out, "&#39;"); break;
    default: bd_buf_putc(out, s[i]);
    }
  }
}

/* A token of the Message-ID for boundaries: its alphanumerics. */
static void boundary(char *out, size_t cap, const char *mid, char tag) {
  size_t o = 0;
  o += (size_t)snprintf(out, cap, "=_bd%c_", tag);
  for (const char *p = mid; *p && *p != '@' && o + 1 < cap; p++)
    if ((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')) out[o++] = *p;
  out[o] = '\0';
}

static bool msgid_ok(const char *id) {
  if (!id || !*id || strlen(id) > 200) return false;
  const char *at = strchr(id, '@');
  if (!at || at == id || !at[1] || strchr(at + 1, '@')) return false;
  for (const unsigned char *p = (const unsigned char *)id; *p; p++)
    if (*p <= ' ' || *p >= 0x7f || strchr("<>()[]\\,;:\"", *p)) return false;
  return true;
}

int bd_mime_compose(const bd_mime_message_t *m, bd_buf_t *out) {
  if (!bd_mime_addr_ok(m->from_addr) || !bd_mime_addr_ok(m->to_addr) || !msgid_ok(m->message_id)) return -1;
  char mixed[80], alt[80];
  boundary(mixed, sizeof mixed, m->message_id, 'm');
  boundary(alt, sizeof alt, m->message_id, 'a');
  header_addr(out, "From", m->from_name, m->from_addr);
  header_addr(out, "To", m->to_name, m->to_addr);
  bd_mime_header_text(out, "Subject", m->subject);
  char date[64];
  time_t t = (time_t)m->date_s;
  struct tm tm;
  gmtime_r(&t, &tm);
  static const char *const days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
  static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                       "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  snprintf(date, sizeof date, "%s, %02d %s %04d %02d:%02d:%02d +0000", days[tm.tm_wday], tm.tm_mday,
           months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
  bd_buf_printf(out, "Date: %s\r\n", date);
  bd_buf_printf(out, "Message-ID: <%s>\r\n", m->message_id);
  bd_buf_puts(out, "MIME-Version: 1.0\r\nAuto-Submitted: auto-generated\r\n");
  bool attach = m->attachment != NULL;
  if (attach) {
    bd_buf_printf(out, "Content-Type: multipart/mixed; boundary=\"%s\"\r\n\r\n", mixed);
    bd_buf_puts(out, "This is a message in MIME format.\r\n");
    bd_buf_printf(out, "--%s\r\n", mixed);
  }
  bd_buf_printf(out, "Content-Type: multipart/alternative; boundary=\"%s\"\r\n\r\n", alt);
  if (!attach) bd_buf_puts(out, "This is a message in MIME format.\r\n");
  bd_buf_printf(out, "--%s\r\nContent-Type: text/plain; charset=\"utf-8\"\r\nContent-Transfer-Encoding: base64\r\n\r\n",
                alt);
  const char *text = m->text ? m->text : "";
  b64_lines(out, text, strlen(text));
  if (m->html) {
    bd_buf_printf(out,
                  "--%s\r\nContent-Type: text/html; charset=\"utf-8\"\r\nContent-Transfer-Encoding: base64\r\n\r\n",
                  alt);
    b64_lines(out, m->html, strlen(m->html));
  }
  bd_buf_printf(out, "--%s--\r\n", alt);
  if (attach) {
    char fname[128];
    size_t o = 0;
    for (const char *p = m->attachment_name ? m->attachment_name : "attachment"; *p && o + 1 < sizeof fname; p++) {
      char c = *p;
      bool ok = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '.' || c == '-' ||
                c == '_';
      fname[o++] = ok ? c : '_';
    }
    fname[o] = '\0';
    if (!o) snprintf(fname, sizeof fname, "attachment");
    char ctype[64];
    size_t ci = 0;
    for (const char *p = m->attachment_type ? m->attachment_type : "application/octet-stream";
         *p && ci + 1 < sizeof ctype; p++)
      if ((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '/' || *p == '.' || *p == '-' || *p == '+')
        ctype[ci++] = *p;
    ctype[ci] = '\0';
    bd_buf_printf(out,
                  "--%s\r\nContent-Type: %s; name=\"%s\"\r\nContent-Disposition: attachment; filename=\"%s\"\r\n"
                  "Content-Transfer-Encoding: base64\r\n\r\n",
                  mixed, ctype, fname, fname);
    b64_lines(out, m->attachment, m->attachment_len);
    bd_buf_printf(out, "--%s--\r\n", mixed);
  }
  return 0;
}

/* test_mime.c: the e-mail composer (lib/mime.h): headers that cannot be
 * injected into, RFC 2047 encoded-words split on character boundaries,
 * the multipart structure, base64 bodies and attachment. */
#include "mime.h"
#include "unit.h"
#include "util.h"

#include <stdlib.h>
#include <string.h>

/* The decoded text of every encoded-word in s, concatenated. */
static void decode_words(const char *s, bd_buf_t *out) {
  const char *p = s;
  while ((p = strstr(p, "=?UTF-8?B?")) != NULL) {
    p += 10;
    const char *e = strstr(p, "?=");
    if (!e) break;
    bd_buf_t t = BD_BUF_INIT;
    CHECK(bd_b64_decode(&t, p, (size_t)(e - p)));
    bd_buf_append(out, t.data ? t.data : "", t.len);
    bd_buf_free(&t);
    p = e + 2;
  }
}

/* Every line of s ends in CRLF, none is longer than max, no bare CR/LF. */
static bool lines_ok(const char *s, size_t n, size_t max) {
  size_t start = 0;
  for (size_t i = 0; i < n; i++) {
    if (s[i] == '\r') {
      if (i + 1 >= n || s[i + 1] != '\n') return false;
      if (i - start > max) return false;
      start = i + 2;
      i++;
    } else if (s[i] == '\n') {
      return false;
    }
  }
  return start == n;
}

/* The header block (up to the first empty line). */
static char *headers_of(const bd_buf_t *b) {
  const char *e = strstr(b->data, "\r\n\r\n");
  size_t n = e ? (size_t)(e - b->data) + 2 : b->len;
  char *h = malloc(n + 1);
  memcpy(h, b->data, n);
  h[n] = '\0';
  return h;
}

static void test_plain_ascii_subject(void) {
  bd_buf_t b = BD_BUF_INIT;
  bd_mime_header_text(&b, "Subject", "Your certificate");
  CHECK_STR(b.data, "Subject: Your certificate\r\n");
  bd_buf_free(&b);
}

static void test_crlf_injection_in_subject(void) {
  bd_buf_t b = BD_BUF_INIT;
  bd_mime_header_text(&b, "Subject", "Hi\r\nBcc: victim@example.org\r\n\r\nbody");
  /* one header line, the CR/LF gone: nothing starts a new header */
  CHECK(strstr(b.data, "\r\nBcc:") == NULL);
  CHECK(strstr(b.data, "\nBcc:") == NULL);
  CHECK(lines_ok(b.data, b.len, 998));
  CHECK_STR(b.data, "Subject: Hi  Bcc: victim@example.org    body\r\n");
  bd_buf_free(&b);
}

static void test_encoded_words_utf8_boundaries(void) {
  /* 40 x "é" (2 bytes each) and a 4-byte emoji: splits must fall between characters */
  bd_buf_t v = BD_BUF_INIT;
  for (int i = 0; i < 40; i++) bd_buf_puts(&v, "\xc3\xa9");
  bd_buf_puts(&v, "\xf0\x9f\x8e\x93 Zo\xc3\xab");
  bd_buf_t b = BD_BUF_INIT;
  bd_mime_header_text(&b, "Subject", v.data);
  CHECK(strncmp(b.data, "Subject: =?UTF-8?B?", 19) == 0);
  CHECK(lines_ok(b.data, b.len, 78));
  /* folded onto continuation lines */
  CHECK(strstr(b.data, "?=\r\n =?UTF-8?B?") != NULL);
  bd_buf_t d = BD_BUF_INIT;
  decode_words(b.data, &d);
  CHECK_STR(d.data, v.data);
  /* each word decodes to whole characters: none starts with a continuation byte */
  const char *p = b.data;
  while ((p = strstr(p, "=?UTF-8?B?")) != NULL) {
    p += 10;
    const char *e = strstr(p, "?=");
    bd_buf_t t = BD_BUF_INIT;
    CHECK(bd_b64_decode(&t, p, (size_t)(e - p)));
    CHECK(t.len <= 36);
    CHECK(((unsigned char)t.data[0] & 0xc0) != 0x80);
    bd_buf_free(&t);
    p = e;
  }
  bd_buf_free(&d);
  bd_buf_free(&b);
  bd_buf_free(&v);
}

static void test_encoded_word_lookalike_is_encoded(void) {
  bd_buf_t b = BD_BUF_INIT;
  bd_mime_header_text(&b, "Subject", "=?UTF-8?B?QmNjOg==?=");
  bd_buf_t d = BD_BUF_INIT;
  decode_words(b.data, &d);
  CHECK_STR(d.data, "=?UTF-8?B?QmNjOg==?=");
  bd_buf_free(&d);
  bd_buf_free(&b);
}

static void test_addresses(void) {
  CHECK(bd_mime_addr_ok("a@example.org"));
  CHECK(bd_mime_addr_ok("j\xc3\xb6rg@exampl\xc3\xa9.de"));
  CHECK(!bd_mime_addr_ok("a@example.org\r\nBcc: x@y.z"));
  CHECK(!bd_mime_addr_ok("a@b@c.d"));
  CHECK(!bd_mime_addr_ok("<a@example.org>"));
  CHECK(!bd_mime_addr_ok("a b@example.org"));
  CHECK(!bd_mime_addr_ok("a@example.org,b@example.org"));
  CHECK(!bd_mime_addr_ok(""));
  CHECK(!bd_mime_addr_ok(NULL));
}

static bd_mime_message_t sample(void) {
  static const unsigned char pdf[] = "%PDF-1.7\n\x00\x01\x02\xff binary\r\n.\r\nend";
  return (bd_mime_message_t){
      .from_name = "Acme Academy",
      .from_addr = "certs@acme.example",
      .to_name = "Zo\xc3\xab \"Z\" O'Brien\r\nBcc: evil@example.org",
      .to_addr = "zoe@example.org",
      .subject = "Your certificate from Acme \xe2\x80\x94 Zo\xc3\xab",
      .date_s = 1765155207, /* 2025-12-08 00:53:27 UTC, a Monday */
      .message_id = "msg_0123456789abcdef@acme.example",
      .text = "Dear Zo\xc3\xab,\r\n.\r\nline two",
      .html = "<p>Dear Zo&euml;</p>",
      .attachment = pdf,
      .attachment_len = sizeof pdf - 1,
      .attachment_name = "REF-1\r\n\"x\".pdf",
      .attachment_type = "application/pdf\r\nX: y",
  };
}

static void test_message_structure(void) {
  bd_mime_message_t m = sample();
  bd_buf_t b = BD_BUF_INIT;
  CHECK_INT(bd_mime_compose(&m, &b), 0);
  CHECK(lines_ok(b.data, b.len, 998));
  char *h = headers_of(&b);
  CHECK(strstr(h, "From: \"Acme Academy\"\r\n <certs@acme.example>\r\n") != NULL);
  CHECK(strstr(h, "Date: Mon, 08 Dec 2025 00:53:27 +0000\r\n") != NULL);
  CHECK(strstr(h, "Message-ID: <msg_0123456789abcdef@acme.example>\r\n") != NULL);
  CHECK(strstr(h, "MIME-Version: 1.0\r\n") != NULL);
  CHECK(strstr(h, "Content-Type: multipart/mixed; boundary=\"=_bdm_msg0123456789abcdef\"\r\n") != NULL);
  /* the recipient's name: encoded (non-ASCII), its CR/LF gone, no Bcc header */
  CHECK(strstr(h, "\nBcc:") == NULL);
  const char *to = strstr(h, "To: ");
  CHECK(to != NULL);
  if (to) {
    bd_buf_t d = BD_BUF_INIT;
    const char *end = strstr(to, "<zoe@example.org>\r\n");
    CHECK(end != NULL);
    char *tl = strndup(to, end ? (size_t)(end - to) : 0);
    decode_words(tl, &d);
    CHECK_STR(d.data, "Zo\xc3\xab \"Z\" O'Brien  Bcc: evil@example.org");
    free(tl);
    bd_buf_free(&d);
  }
  free(h);
  /* the parts, in order */
  const char *alt = strstr(b.data, "Content-Type: multipart/alternative; boundary=\"=_bda_msg0123456789abcdef\"");
  const char *txt = strstr(b.data, "Content-Type: text/plain; charset=\"utf-8\"\r\nContent-Transfer-Encoding: base64");
  const char *html = strstr(b.data, "Content-Type: text/html; charset=\"utf-8\"\r\nContent-Transfer-Encoding: base64");
  const char *att = strstr(b.data, "Content-Type: application/pdfy; name=\"REF-1___x_.pdf\"\r\n"
                                   "Content-Disposition: attachment; filename=\"REF-1___x_.pdf\"\r\n");
  CHECK(alt && txt && html && att);
  CHECK(alt < txt && txt < html && html < att);
  CHECK(strstr(b.data, "--=_bda_msg0123456789abcdef--\r\n") != NULL);
  size_t tl = strlen("--=_bdm_msg0123456789abcdef--\r\n");
  CHECK(b.len >= tl && memcmp(b.data + b.len - tl, "--=_bdm_msg0123456789abcdef--\r\n", tl) == 0);
  /* the attachment decodes to its bytes */
  if (att) {
    const char *s = strstr(att, "\r\n\r\n") + 4;
    const char *e = strstr(s, "--=_bdm_");
    bd_buf_t raw = BD_BUF_INIT;
    for (const char *p = s; p < e;) {
      const char *nl = strstr(p, "\r\n");
      CHECK(nl - p <= 76);
      bd_buf_t t = BD_BUF_INIT;
      CHECK(bd_b64_decode(&t, p, (size_t)(nl - p)));
      bd_buf_append(&raw, t.data ? t.data : "", t.len);
      bd_buf_free(&t);
      p = nl + 2;
    }
    CHECK_INT(raw.len, m.attachment_len);
    CHECK(raw.len == m.attachment_len && memcmp(raw.data, m.attachment, raw.len) == 0);
    bd_buf_free(&raw);
  }
  bd_buf_free(&b);
}

static void test_bad_addresses_refused(void) {
  bd_mime_message_t m = sample();
  bd_buf_t b = BD_BUF_INIT;
  m.to_addr = "zoe@example.org\r\nRCPT TO:<x@y.z>";
  CHECK_INT(bd_mime_compose(&m, &b), -1);
  CHECK_INT(b.len, 0);
  m = sample();
  m.from_addr = "no-at-sign";
  CHECK_INT(bd_mime_compose(&m, &b), -1);
  m = sample();
  m.message_id = "a@b>\r\nX: y";
  CHECK_INT(bd_mime_compose(&m, &b), -1);
  bd_buf_free(&b);
}

static void test_no_html_no_attachment(void) {
  bd_mime_message_t m = sample();
  m.html = NULL;
  m.attachment = NULL;
  m.to_name = "";
  bd_buf_t b = BD_BUF_INIT;
  CHECK_INT(bd_mime_compose(&m, &b), 0);
  CHECK(strstr(b.data, "To: <zoe@example.org>\r\n") != NULL);
  CHECK(strstr(b.data, "multipart/mixed") == NULL);
  CHECK(strstr(b.data, "text/html") == NULL);
  CHECK(strstr(b.data, "Content-Type: multipart/alternative;") != NULL);
  bd_buf_free(&b);
}

static void test_html_escape(void) {
  bd_buf_t b = BD_BUF_INIT;
  const char *s = "<script>alert('x')</script> & \"q\"";
  bd_mime_html_escape(&b, s, strlen(s));
  CHECK_STR(b.data, "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;");
  bd_buf_free(&b);
}

int main(void) {
  RUN(test_plain_ascii_subject);
  RUN(test_crlf_injection_in_subject);
  RUN(test_encoded_words_utf8_boundaries);
  RUN(test_encoded_word_lookalike_is_encoded);
  RUN(test_addresses);
  RUN(test_message_structure);
  RUN(test_bad_addresses_refused);
  RUN(test_no_html_no_attachment);
  RUN(test_html_escape);
  UNIT_DONE();
}

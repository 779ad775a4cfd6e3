/* fuzz_http_framing: the chunked decoder and field-line validation of the
 * real HTTP server (src/core/http.c around llhttp in strict mode), checked
 * against a reference written from the RFC grammar here.
 *
 * The server runs on one end of a socketpair (bd_server_adopt_fd), as in
 * fuzz_http; the fuzzer's bytes go into one of two places:
 *
 *   mode 0, chunked body (RFC 9112 7.1): "POST /e" with Transfer-Encoding:
 *     chunked, then the bytes as its body. The reference decodes them and
 *     says valid (decoded length L), invalid, incomplete, or "not judged"
 *     (chunk extensions: llhttp 8.1 refuses some the RFC allows, see
 *     tests/integration/test_http_conformance.py). valid must be answered
 *     200 {"len":L}, invalid 400, incomplete never 200.
 *   mode 1, one field line (RFC 9110 5.1, 5.5): "GET /h" with Host and the
 *     bytes as one more field line (no CR or LF in it). A token name, a
 *     colon and a value of HTAB, SP, VCHAR or obs-text must be answered 200,
 *     anything else 400. Names that change framing or routing (Host,
 *     Content-Length, Transfer-Encoding, Expect, Connection, Upgrade) are
 *     not judged.
 *
 * Input: byte 0 picks the mode (bit 0) and the write size (the rest, 1..128
 * bytes per write); the rest is the payload. A disagreement aborts with
 * both sides printed.
 */
#include "fuzz_conn.h"
#include "http.h"
#include "http_grammar.h"

#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

static uv_loop_t g_loop;
static bd_server_t *g_srv;

static void h_get(bd_req_t *req) { bd_resp_send(req, 200, "text/plain", "ok", 2); }

static void h_echo(bd_req_t *req) {
  char b[64];
  int len = snprintf(b, sizeof b, "{\"len\":%zu}", req->body.len);
  bd_resp_send(req, 200, "application/json", b, (size_t)len);
}

static const bd_route_t routes[] = {
    {"GET", "/h", h_get, 0, NULL},
    {"POST", "/e", h_echo, 0, NULL},
};

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  signal(SIGPIPE, SIG_IGN);
  uv_loop_init(&g_loop);
  bd_server_config_t cfg = {
      .listen = "127.0.0.1:0",
      .max_header_bytes = 4096,
      .max_json_body = 1 << 20, /* above any input: no 413 to model */
      .max_upload_body = 1 << 20,
      .header_timeout_ms = 60000,
      .body_timeout_ms = 60000,
      .keepalive_timeout_ms = 60000,
      .max_connections = 16,
  };
  g_srv = bd_server_new(&g_loop, &cfg, routes, sizeof routes / sizeof routes[0]);
  return 0;
}

/* ---- the reference ---------------------------------------------------- */

typedef enum { REF_VALID, REF_INVALID, REF_INCOMPLETE, REF_UNJUDGED } ref_t;

static int hexval(uint8_t c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* field-value bytes (RFC 9110 5.5): HTAB, SP, VCHAR, obs-text */
static bool value_byte(uint8_t c) { return c == '\t' || c >= 0x20 ? c != 0x7f : false; }

/* CRLF at p[*i]; sets *r and returns false when it is not there */
static bool crlf(const uint8_t *p, size_t n, size_t *i, ref_t *r) {
  if (*i >= n) return *r = REF_INCOMPLETE, false;
  if (p[*i] != '\r') return *r = REF_INVALID, false;
  if (*i + 1 >= n) return *r = REF_INCOMPLETE, false;
  if (p[*i + 1] != '\n') return *r = REF_INVALID, false;
  *i += 2;
  return true;
}

/* One field line up to and including its CRLF (RFC 9110 5.1, 5.5; RFC 9112 5). */
static bool field_line(const uint8_t *p, size_t n, size_t *i, ref_t *r) {
  size_t s = *i;
  while (*i < n && bd_http_tchar[p[*i]]) (*i)++;
  if (*i >= n) return *r = REF_INCOMPLETE, false;
  if (*i == s || p[*i] != ':') return *r = REF_INVALID, false;
  for ((*i)++; *i < n && p[*i] != '\r' && p[*i] != '\n'; (*i)++)
    if (!value_byte(p[*i])) return *r = REF_INVALID, false;
  return crlf(p, n, i, r);
}

static ref_t ref_chunked(const uint8_t *p, size_t n, uint64_t *len) {
  size_t i = 0;
  ref_t r = REF_VALID;
  *len = 0;
  for (;;) {
    uint64_t size = 0;
    size_t s = i;
    for (; i < n && hexval(p[i]) >= 0; i++) {
      if (size > (UINT64_MAX - (uint64_t)hexval(p[i])) / 16) return REF_INVALID;
      size = size * 16 + (uint64_t)hexval(p[i]);
    }
    if (i >= n) return REF_INCOMPLETE;
    if (i == s) return REF_INVALID;
    if (p[i] == ';') return REF_UNJUDGED;
    if (!crlf(p, n, &i, &r)) return r;
    if (size == 0) break;
    if (n - i < size) return REF_INCOMPLETE;
    i += size;
    *len += size;
    if (!crlf(p, n, &i, &r)) return r;
  }
  /* trailer-section CRLF */
  for (;;) {
    if (i >= n) return REF_INCOMPLETE;
    if (p[i] == '\r') return crlf(p, n, &i, &r) ? REF_VALID : r;
    if (!field_line(p, n, &i, &r)) return r;
  }
}

static ref_t ref_field(const uint8_t *p, size_t n) {
  static const char *skip[] = {"host", "content-length", "transfer-encoding", "expect", "connection", "upgrade"};
  const uint8_t *colon = memchr(p, ':', n);
  if (colon) {
    size_t nl = (size_t)(colon - p);
    for (size_t k = 0; k < sizeof skip / sizeof *skip; k++)
      if (nl == strlen(skip[k]) && strncasecmp((const char *)p, skip[k], nl) == 0) return REF_UNJUDGED;
  }
  uint8_t line[2048];
  memcpy(line, p, n);
  line[n] = '\r';
  line[n + 1] = '\n';
  size_t i = 0;
  ref_t r = REF_VALID;
  return field_line(line, n + 2, &i, &r) ? REF_VALID : r;
}

/* ---- the server's answer ------------------------------------------------ */

typedef struct {
  llhttp_t p;
  int status; /* of the first response, 0 if none */
  char body[128];
  size_t blen;
  bool done;
} first_t;

static int on_status_complete(llhttp_t *p) {
  first_t *f = p->data;
  if (!f->done && !f->status) f->status = p->status_code;
  return 0;
}

static int on_rbody(llhttp_t *p, const char *at, size_t n) {
  first_t *f = p->data;
  if (f->done) return 0;
  size_t k = n < sizeof f->body - 1 - f->blen ? n : sizeof f->body - 1 - f->blen;
  memcpy(f->body + f->blen, at, k);
  f->blen += k;
  return 0;
}

static int on_rdone(llhttp_t *p) {
  ((first_t *)p->data)->done = true;
  return 0;
}

static void drain(int fd, first_t *f) {
  char buf[8192];
  ssize_t n;
  while ((n = read(fd, buf, sizeof buf)) > 0)
    if (llhttp_execute(&f->p, buf, (size_t)n) != HPE_OK && !f->done) abort(); /* invalid HTTP written */
}

static void drain_cb(int fd, void *ud) { drain(fd, ud); }

static void disagree(const char *what, ref_t ref, const first_t *f, const uint8_t *p, size_t n) {
  fprintf(stderr, "%s: reference %d, server %d %.*s; payload (%zu bytes): ", what, (int)ref, f->status,
          (int)f->blen, f->body, n);
  for (size_t i = 0; i < n && i < 200; i++) fprintf(stderr, (p[i] >= 0x20 && p[i] < 0x7f) ? "%c" : "\\x%02x", p[i]);
  fprintf(stderr, "\n");
  abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1 || size > 1500) return 0;
  bool field_mode = data[0] & 1;
  size_t step = (size_t)(data[0] >> 1) + 1;
  const uint8_t *pl = data + 1;
  size_t n = size - 1;

  static const char chunk_head[] = "POST /e HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
  static const char field_head[] = "GET /h HTTP/1.1\r\nHost: x\r\n";
  uint8_t req[2048];
  size_t len = 0;
  ref_t ref;
  uint64_t dlen = 0;
  if (field_mode) {
    if (n == 0 || memchr(pl, '\r', n) || memchr(pl, '\n', n)) return 0;
    memcpy(req, field_head, sizeof field_head - 1);
    len = sizeof field_head - 1;
    memcpy(req + len, pl, n);
    len += n;
    memcpy(req + len, "\r\n\r\n", 4);
    len += 4;
    ref = ref_field(pl, n);
  } else {
    memcpy(req, chunk_head, sizeof chunk_head - 1);
    len = sizeof chunk_head - 1;
    memcpy(req + len, pl, n);
    len += n;
    ref = ref_chunked(pl, n, &dlen);
  }

  first_t f = {0};
  llhttp_settings_t s;
  llhttp_settings_init(&s);
  s.on_status_complete = on_status_complete;
  s.on_body = on_rbody;
  s.on_message_complete = on_rdone;
  llhttp_init(&f.p, HTTP_RESPONSE, &s);
  f.p.data = &f;
  fuzz_conn_run(&g_loop, g_srv, req, len, step, drain_cb, &f, NULL);

  const char *what = field_mode ? "field line" : "chunked body";
  switch (ref) {
  case REF_VALID: {
    if (f.status != 200) disagree(what, ref, &f, pl, n);
    if (!field_mode) {
      char want[64];
      int wl = snprintf(want, sizeof want, "{\"len\":%llu}", (unsigned long long)dlen);
      if (f.blen != (size_t)wl || memcmp(f.body, want, (size_t)wl) != 0) disagree(what, ref, &f, pl, n);
    }
    break;
  }
  case REF_INVALID:
    if (f.status != 400) disagree(what, ref, &f, pl, n);
    break;
  case REF_INCOMPLETE:
    if (f.status == 200) disagree(what, ref, &f, pl, n);
    break;
  case REF_UNJUDGED:
    break;
  }
  return 0;
}

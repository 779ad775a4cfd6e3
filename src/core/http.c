/* http.c: connections, request parsing, response writing.
 *
 * Connection states (conn->state):
 *
 *   IDLE ──first byte──▶ HEADERS ──headers complete──▶ BODY ──message complete──▶ HANDLING
 *     ▲                                                                             │
 *     └────────────── response complete and released (finish_request) ─────────────┘
 *
 * Deferred work. Handlers complete responses from arbitrary callback chains
 * (a query callback, a worker's after_work). Finishing a request (logging it,
 * freeing it, resuming the parser on pipelined input) is never done inside
 * those chains: the connection is put on the server's `ready` list and an
 * idle handle processes the list on the next loop iteration. Connections are
 * freed only from their handles' close callbacks, once no request refers to
 * them.
 */
#include "http.h"
#include "http_grammar.h"

#include "json.h"
#include "log.h"
#include "router.h"
#include "util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define READ_CHUNK (64 * 1024)          /* bytes read per uv read callback */
#define INPUT_HIGH_WATER (256 * 1024)   /* stop reading while this much is unparsed */
#define DRAIN_LOW_WATER (256 * 1024)    /* streamed responses resume below this */

void (*bd_http_on_request_done)(bd_req_t *req, uint64_t dur_ns);

typedef enum { CS_IDLE, CS_HEADERS, CS_BODY, CS_HANDLING } conn_state_t;

/* scan_head's states (0, SCAN_PRE, for a new connection) */
enum { SCAN_PRE, SCAN_REQLINE, SCAN_REQLINE_SP, SCAN_LINE, SCAN_LSTART, SCAN_LSTART_CR, SCAN_DONE };

typedef struct {
  uint32_t noff, nlen; /* header name: offset/length in head_buf */
  uint32_t voff, vlen; /* header value */
} hoff_t;

struct bd_conn {
  uv_tcp_t tcp;               /* the socket; conn is freed in its close_cb */
  uv_timer_t timer;           /* header / body / keep-alive timeouts */
  bd_server_t *srv;           /* owning server */
  bd_conn_t *prev, *next;     /* server's list of live connections */
  bd_conn_t *ready_next;      /* server's ready list (finish/resume pending) */
  bool on_ready;              /* is on the ready list */
  llhttp_t parser;            /* request parser, paused between requests */
  conn_state_t state;         /* see the diagram above */
  bd_buf_t in;                /* input read from the socket */
  size_t in_off;              /* first unparsed byte of `in` */
  bd_req_t *req;              /* the request being parsed or handled */
  bool reading;               /* uv_read_start is active */
  bool body_paused;           /* the handler asked us to stop reading */
  bool kick;                  /* run the parser once even without new input
                               * (a pause on the last body byte leaves the
                               * message's completion pending inside llhttp) */
  bool discard_body;          /* 404/405/early error: body is read and dropped */
  bool close_after;           /* close once the current response is written */
  bool peer_gone;             /* EOF or error from the client */
  bool closing;               /* uv_close has been called */
  int handles;                /* open handles (tcp, timer) */
  size_t write_pending;       /* bytes handed to uv_write and not yet written */
  uint64_t requests;          /* requests served on this connection */
  /* header parsing scratch */
  uint32_t url_off, url_len;  /* url in head_buf */
  hoff_t hoff[BD_MAX_HEADERS];/* header offsets while parsing */
  int nh;                     /* headers seen */
  bool too_many_headers;      /* > BD_MAX_HEADERS: answered with 431 */
  uint32_t head_bytes;        /* request line + header bytes so far */
  int early_status;           /* error decided while parsing (400/413/431/501/505), 0 if none */
  const char *early_msg;      /* its message (static), NULL: the status's default */
  uint8_t head_scan;          /* scanner state over the head bytes, see scan_head */
  bool scan_cr;               /* the last head byte scanned was CR */
  bool name_open;             /* a field name has begun and not completed */
  uint32_t name_len;          /* its bytes so far (llhttp reports ": v" as an empty name) */
  bool saw_version;           /* the request line carried an HTTP version */
  bool trailers_next;         /* the last chunk's size line is parsed: trailers follow */
  bool bad_method;            /* the path exists with other methods (405) */
  bool parser_hold;           /* a streamed handler runs: the parser holds the request */
  bool header_deadline;       /* the header timer is armed (data does not extend it) */
  bool headers_done;          /* on_headers_complete ran: header callbacks now are trailers */
};

struct bd_server {
  uv_loop_t *loop;            /* the loop everything runs on */
  uv_tcp_t listener;          /* listening socket */
  bool listening;             /* listener initialised */
  uv_idle_t idle;             /* processes the ready list */
  uv_timer_t grace;           /* shutdown grace period */
  bd_server_config_t cfg;     /* copy of the configuration */
  char *listen_str;           /* owned copy of cfg.listen */
  const bd_route_t *routes;   /* route table (static storage of the caller) */
  size_t nroutes;             /* entries in routes */
  bd_conn_t *conns;           /* live connections */
  bd_conn_t *ready;           /* connections with deferred work */
  bd_server_stats_t stats;    /* counters */
  bool shutting_down;         /* no new connections or requests */
  bool grace_over;            /* the shutdown grace has ended (see on_grace) */
  int handles;                /* open server handles (listener, idle, grace) */
  void (*done)(void *ud);     /* shutdown completion */
  void *done_ud;              /* its argument */
  int64_t date_sec;           /* second of the cached Date header */
  char date[40];              /* cached "Date: ..." value */
  uint32_t accept_burst;      /* connections accepted since the loop last ran other work */
  bool accept_deferred;       /* one pending connection waits for on_idle to accept it */
  /* One read buffer for every connection: libuv calls alloc, read and the
   * read callback back to back on the loop thread, and on_read copies the
   * bytes into the connection's input at once. A per-connection buffer
   * would cost 64 KiB of every idle connection. */
  char read_buf[READ_CHUNK];
};

static llhttp_settings_t g_settings;
static bool g_settings_init;

static void conn_close(bd_conn_t *c);
static void conn_process(bd_conn_t *c);
static void conn_schedule(bd_conn_t *c);
static void conn_update_reading(bd_conn_t *c);
static void server_maybe_done(bd_server_t *s);
static void on_idle(uv_idle_t *h);

/* ------------------------------------------------------------------------ */
/* helpers                                                                   */

const char *bd_http_reason(int status) {
  switch (status) {
  case 100: return "Continue";
  case 200: return "OK";
  case 201: return "Created";
  case 202: return "Accepted";
  case 204: return "No Content";
  case 301: return "Moved Permanently";
  case 302: return "Found";
  case 303: return "See Other";
  case 304: return "Not Modified";
  case 307: return "Temporary Redirect";
  case 400: return "Bad Request";
  case 401: return "Unauthorized";
  case 403: return "Forbidden";
  case 404: return "Not Found";
  case 405: return "Method Not Allowed";
  case 406: return "Not Acceptable";
  case 408: return "Request Timeout";
  case 409: return "Conflict";
  case 410: return "Gone";
  case 411: return "Length Required";
  case 413: return "Content Too Large";
  case 414: return "URI Too Long";
  case 415: return "Unsupported Media Type";
  case 417: return "Expectation Failed";
  case 422: return "Unprocessable Content";
  case 429: return "Too Many Requests";
  case 431: return "Request Header Fields Too Large";
  case 500: return "Internal Server Error";
  case 501: return "Not Implemented";
  case 503: return "Service Unavailable";
  case 505: return "HTTP Version Not Supported";
  default: return "Unknown";
  }
}

static const char *server_date(bd_server_t *s) {
  int64_t now = (int64_t)time(NULL);
  if (now != s->date_sec) {
    struct tm tm;
    time_t t = (time_t)now;
    gmtime_r(&t, &tm);
    strftime(s->date, sizeof s->date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    s->date_sec = now;
  }
  return s->date;
}

/* Request ids: a random per-process prefix and a counter, both base62.
 * Unique across processes and restarts with overwhelming probability, and
 * no getrandom(2) per request. */
static void new_request_id(char *out) {
  static char prefix[11];
  static uint64_t counter;
  static const char b62[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
  if (!prefix[0]) bd_rand_base62(prefix, 10);
  char digits[12];
  int n = 0;
  uint64_t v = ++counter;
  do {
    digits[n++] = b62[v % 62];
    v /= 62;
  } while (v && n < 11);
  memcpy(out, "req_", 4);
  memcpy(out + 4, prefix, 10);
  for (int i = 0; i < n; i++) out[14 + i] = digits[n - 1 - i];
  out[14 + n] = '\0';
}

static bd_str_t trim(bd_str_t s) {
  while (s.len && (s.p[0] == ' ' || s.p[0] == '\t')) s.p++, s.len--;
  while (s.len && (s.p[s.len - 1] == ' ' || s.p[s.len - 1] == '\t')) s.len--;
  return s;
}

/* A client request id is echoed only when it is short and of safe characters
 * (it lands in logs and headers). */
static bool sane_request_id(bd_str_t v) {
  if (v.len == 0 || v.len > 64) return false;
  for (size_t i = 0; i < v.len; i++) {
    char ch = v.p[i];
    if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
          ch == '-' || ch == '_' || ch == '.' || ch == ':'))
      return false;
  }
  return true;
}

/* The error format of the scope a path belongs to (NULL: neutral). */
static bd_error_fmt_fn error_format(const bd_server_t *s, bd_str_t path) {
  const bd_error_scope_t *sc = bd_error_scope_find(s->cfg.scopes, s->cfg.nscopes, path);
  return sc ? sc->format : NULL;
}

/* ------------------------------------------------------------------------ */
/* requests                                                                  */

static bd_req_t *req_new(bd_conn_t *c) {
  bd_req_t *r = bd_calloc(1, sizeof *r);
  r->conn = c;
  r->srv = c->srv;
  r->start_ns = bd_now_ns();
  return r;
}

/* Marks the request as handed to a handler (or answered by the server). */
static void req_start(bd_req_t *r) {
  if (r->started) return;
  r->started = true;
  r->srv->stats.inflight++;
}

static void req_free(bd_req_t *r) {
  while (r->ncleanup > 0) {
    r->ncleanup--;
    r->cleanup[r->ncleanup].fn(r->cleanup[r->ncleanup].arg);
  }
  if (r->started) r->srv->stats.inflight--;
  for (int i = 0; i < BD_MAX_PARAMS; i++) free(r->pcopy[i]);
  bd_buf_free(&r->head_buf);
  bd_buf_free(&r->body);
  bd_buf_free(&r->resp_headers);
  free(r);
}

bd_str_t bd_req_header(const bd_req_t *req, const char *name) {
  for (int i = 0; i < req->nheaders; i++)
    if (bd_str_ieq(req->headers[i].name, name)) return req->headers[i].value;
  return (bd_str_t){NULL, 0};
}

bool bd_req_query(const bd_req_t *req, const char *name, bd_buf_t *out) {
  return bd_query_get(req->query, name, out);
}

const char *bd_req_param(bd_req_t *req, int i) {
  if (i < 0 || i >= req->nparams) return NULL;
  /* params are slices of the path; hand out a terminated copy */
  if (!req->pcopy[i]) req->pcopy[i] = bd_strndup(req->params[i].p, req->params[i].len);
  return req->pcopy[i];
}

void bd_req_defer(bd_req_t *req, void (*fn)(void *arg), void *arg) {
  if (req->ncleanup >= BD_REQ_CLEANUPS) {
    bd_error("bd_req_defer: more than %d cleanups on one request", BD_REQ_CLEANUPS);
    abort();
  }
  req->cleanup[req->ncleanup].fn = fn;
  req->cleanup[req->ncleanup].arg = arg;
  req->ncleanup++;
}

void *bd_req_calloc(bd_req_t *req, size_t size) {
  void *p = bd_calloc(1, size);
  bd_req_defer(req, free, p);
  return p;
}

void bd_req_hold(bd_req_t *req) { req->holds++; }

void bd_req_release(bd_req_t *req) {
  if (--req->holds > 0) return;
  if (req->conn) {
    conn_schedule(req->conn);
  } else if (req->resp_done) {
    /* the connection is gone and the handler is finished with it */
    req_free(req);
  }
}

bool bd_req_gone(const bd_req_t *req) { return req->conn == NULL || req->conn->peer_gone; }

void bd_req_pause(bd_req_t *req) {
  if (!req->conn) return;
  req->conn->body_paused = true;
  conn_update_reading(req->conn);
}

void bd_req_resume(bd_req_t *req) {
  if (!req->conn || !req->conn->body_paused) return;
  req->conn->body_paused = false;
  req->conn->kick = true;
  conn_schedule(req->conn); /* parse what is buffered, then read again */
}

/* ------------------------------------------------------------------------ */
/* writing                                                                   */

typedef struct {
  uv_write_t w;       /* libuv request */
  bd_conn_t *conn;    /* for accounting */
  size_t len;         /* bytes in data */
  char data[];        /* the bytes */
} wreq_t;

static void on_write(uv_write_t *w, int status) {
  wreq_t *wr = (wreq_t *)w;
  bd_conn_t *c = wr->conn;
  c->write_pending -= wr->len;
  free(wr);
  if (status < 0) c->peer_gone = true;
  if (c->write_pending == 0 && c->close_after && c->state != CS_HANDLING) conn_close(c);
  else if (c->req && c->req->on_drain && c->write_pending < DRAIN_LOW_WATER && !c->req->resp_done) {
    void (*cb)(bd_req_t *) = c->req->on_drain;
    c->req->on_drain = NULL;
    cb(c->req);
  } else if (status < 0) {
    conn_schedule(c);
  }
}

/* Writes bytes to the socket: try_write first (no allocation in the common
 * case), the rest through a queued uv_write. */
static void conn_write(bd_conn_t *c, const char *p, size_t n) {
  if (c->closing || c->peer_gone || n == 0) return;
  if (c->write_pending == 0) {
    uv_buf_t b = uv_buf_init((char *)p, (unsigned)n);
    int w = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
    if (w > 0) {
      p += w;
      n -= (size_t)w;
    } else if (w < 0 && w != UV_EAGAIN) {
      c->peer_gone = true;
      return;
    }
    if (n == 0) return;
  }
  wreq_t *wr = bd_malloc(sizeof *wr + n);
  wr->conn = c;
  wr->len = n;
  memcpy(wr->data, p, n);
  uv_buf_t b = uv_buf_init(wr->data, (unsigned)n);
  c->write_pending += n;
  if (uv_write(&wr->w, (uv_stream_t *)&c->tcp, &b, 1, on_write) < 0) {
    c->write_pending -= n;
    free(wr);
    c->peer_gone = true;
  }
}

void bd_resp_header(bd_req_t *req, const char *name, const char *value) {
  if (req->resp_started) return;
  bd_buf_t *h = &req->resp_headers;
  size_t nl = strlen(name), vl = strlen(value);
  bd_buf_reserve(h, nl + vl + 4);
  bd_buf_append(h, name, nl);
  bd_buf_append(h, ": ", 2);
  /* header injection guard: values never carry CR/LF (copied in runs) */
  size_t at = h->len;
  bd_buf_append(h, value, vl);
  for (char *v = h->data + at; (v = strpbrk(v, "\r\n")) != NULL; v++) *v = ' ';
  bd_buf_append(h, "\r\n", 2);
}

void bd_resp_headerf(bd_req_t *req, const char *name, const char *fmt, ...) {
  char tmp[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(tmp, sizeof tmp, fmt, ap);
  va_end(ap);
  bd_resp_header(req, name, tmp);
}

void bd_resp_header_u64(bd_req_t *req, const char *name, uint64_t v) {
  char d[24];
  size_t n = sizeof d - 1;
  d[n] = '\0';
  do d[--n] = (char)('0' + v % 10);
  while ((v /= 10) != 0);
  bd_resp_header(req, name, d + n);
}

/* Status line + headers into out. content_length < 0 means chunked. */
static void build_head(bd_req_t *req, bd_buf_t *out, int status, const char *ctype, int64_t content_length) {
  bd_conn_t *c = req->conn;
  bool close = !req->keep_alive || c->close_after || c->srv->shutting_down;
  if (close) c->close_after = true;
  /* appended piece by piece: no printf on the path of every response */
  char num[24];
  int st = status >= 100 && status <= 999 ? status : 500;
  char line[16] = {'H', 'T', 'T', 'P', '/', '1', '.', '1', ' ', (char)('0' + st / 100), (char)('0' + st / 10 % 10),
                   (char)('0' + st % 10), ' '};
  bd_buf_append(out, line, 13);
  bd_buf_puts(out, bd_http_reason(status));
  bd_buf_append(out, "\r\nDate: ", 8);
  bd_buf_puts(out, server_date(c->srv));
  bd_buf_append(out, "\r\nX-Request-Id: ", 16);
  bd_buf_puts(out, req->request_id);
  bd_buf_append(out, "\r\n", 2);
  if (ctype) {
    bd_buf_append(out, "Content-Type: ", 14);
    bd_buf_puts(out, ctype);
    bd_buf_append(out, "\r\n", 2);
  }
  if (content_length >= 0) {
    size_t n = 0;
    uint64_t v = (uint64_t)content_length;
    do num[sizeof num - 1 - n++] = (char)('0' + v % 10);
    while ((v /= 10) != 0);
    bd_buf_append(out, "Content-Length: ", 16);
    bd_buf_append(out, num + sizeof num - n, n);
    bd_buf_append(out, "\r\n", 2);
  } else {
    bd_buf_puts(out, "Transfer-Encoding: chunked\r\n");
  }
  if (close) bd_buf_puts(out, "Connection: close\r\n");
  if (req->resp_headers.len) bd_buf_append(out, req->resp_headers.data, req->resp_headers.len);
  bd_buf_puts(out, "\r\n");
}

static void resp_finish(bd_req_t *req) {
  req->resp_done = true;
  if (req->conn) conn_schedule(req->conn);
  else if (req->holds == 0) req_free(req);
}

void bd_resp_send(bd_req_t *req, int status, const char *content_type, const char *body, size_t len) {
  if (req->resp_started || req->resp_done) return;
  if (req->on_respond) {
    void (*hook)(bd_req_t *, int, const char *, const char *, size_t) = req->on_respond;
    req->on_respond = NULL;
    hook(req, status, content_type, body, len);
    return;
  }
  req->status = status;
  req->resp_started = true;
  if (req->conn && !req->conn->peer_gone) {
    bd_buf_t out = BD_BUF_INIT;
    bd_buf_reserve(&out, 256 + req->resp_headers.len + len);
    build_head(req, &out, status, content_type, (int64_t)len);
    if (!req->head && len) bd_buf_append(&out, body, len);
    conn_write(req->conn, out.data, out.len);
    bd_buf_free(&out);
  }
  req->resp_bytes = len;
  resp_finish(req);
}

void bd_resp_json(bd_req_t *req, int status, bd_buf_t *body) {
  bd_resp_send(req, status, "application/json; charset=utf-8", body->data ? body->data : "", body->len);
  bd_buf_free(body);
}

/* The neutral format, for paths outside every surface's scope (operational
 * endpoints, unknown paths): {"error": {"code", "message", "request_id"}}. */
static void neutral_error(const bd_req_t *req, const char *code, const char *message, bd_buf_t *out) {
  bd_jw_t w;
  bd_jw_init(&w, out);
  bd_jw_obj(&w);
  bd_jw_key(&w, "error");
  bd_jw_obj(&w);
  bd_jw_kstr(&w, "code", code);
  bd_jw_kstr(&w, "message", message);
  bd_jw_kstr(&w, "request_id", req->request_id);
  bd_jw_obj_end(&w);
  bd_jw_obj_end(&w);
}

void bd_resp_error(bd_req_t *req, int status, const char *code, const char *message, const char *param) {
  if (status == 503 || status == 429) {
    /* callers that know better set their own Retry-After first */
    if (!req->resp_headers.data || !strstr(req->resp_headers.data, "Retry-After:"))
      bd_resp_header(req, "Retry-After", "1");
  }
  bd_buf_t b = BD_BUF_INIT;
  if (req->errfmt) req->errfmt(req, status, code, message ? message : "", param, &b);
  else neutral_error(req, code, message ? message : "", &b);
  bd_resp_json(req, status, &b);
}

void bd_resp_start(bd_req_t *req, int status, const char *content_type, int64_t content_length) {
  if (req->resp_started) return;
  req->status = status;
  req->resp_started = true;
  req->resp_chunked = content_length < 0;
  if (req->conn && !req->conn->peer_gone) {
    bd_buf_t out = BD_BUF_INIT;
    build_head(req, &out, status, content_type, content_length);
    conn_write(req->conn, out.data, out.len);
    bd_buf_free(&out);
  }
}

size_t bd_resp_write(bd_req_t *req, const void *p, size_t n) {
  bd_conn_t *c = req->conn;
  if (!c || c->peer_gone || req->head || n == 0) return 0;
  req->resp_bytes += n;
  if (req->resp_chunked) {
    char hdr[24];
    int hl = snprintf(hdr, sizeof hdr, "%zx\r\n", n);
    bd_buf_t out = BD_BUF_INIT;
    bd_buf_reserve(&out, n + 32);
    bd_buf_append(&out, hdr, (size_t)hl);
    bd_buf_append(&out, p, n);
    bd_buf_puts(&out, "\r\n");
    conn_write(c, out.data, out.len);
    bd_buf_free(&out);
  } else {
    conn_write(c, p, n);
  }
  return c->write_pending;
}

void bd_resp_end(bd_req_t *req) {
  if (req->resp_done) return;
  if (req->resp_chunked && req->conn && !req->head) conn_write(req->conn, "0\r\n\r\n", 5);
  req->on_drain = NULL;
  resp_finish(req);
}

/* ------------------------------------------------------------------------ */
/* parser callbacks                                                          */

static void conn_arm_timer(bd_conn_t *c);

static int on_message_begin(llhttp_t *p) {
  bd_conn_t *c = p->data;
  c->state = CS_HEADERS;
  c->req = req_new(c);
  c->url_off = c->url_len = 0;
  c->nh = 0;
  c->too_many_headers = false;
  c->head_bytes = 0;
  c->early_status = 0;
  c->early_msg = NULL;
  c->name_open = c->saw_version = false;
  c->discard_body = false;
  c->bad_method = false;
  c->header_deadline = false;
  c->headers_done = false;
  conn_arm_timer(c);
  return 0;
}

static int head_limit(bd_conn_t *c, size_t n) {
  c->head_bytes += (uint32_t)n;
  if (c->head_bytes > c->srv->cfg.max_header_bytes) {
    c->early_status = 431;
    return HPE_USER;
  }
  return 0;
}

static int on_url(llhttp_t *p, const char *at, size_t n) {
  bd_conn_t *c = p->data;
  if (head_limit(c, n)) return HPE_USER;
  if (c->url_len == 0) c->url_off = (uint32_t)c->req->head_buf.len;
  bd_buf_append(&c->req->head_buf, at, n);
  c->url_len += (uint32_t)n;
  return 0;
}

static int head_fail(bd_conn_t *c, int status, const char *msg) {
  c->early_status = status;
  c->early_msg = msg;
  return HPE_USER;
}

/* Field names are tokens (RFC 9110 5.1), in the head and in trailers alike:
 * llhttp strict refuses a space in one but takes other non-tchars. */
static int on_header_field(llhttp_t *p, const char *at, size_t n) {
  bd_conn_t *c = p->data;
  if (head_limit(c, n)) return HPE_USER;
  if (!bd_http_is_token(at, n)) return head_fail(c, 400, "Malformed HTTP request: a field name is not a token");
  bool begin = !c->name_open;
  if (begin) c->name_len = 0;
  c->name_open = true;
  c->name_len += (uint32_t)n;
  /* Trailer fields of a chunked body are counted against the head limit
   * and dropped: nothing reads them, and appending them would move
   * head_buf under the path and headers the handler already holds. */
  if (c->headers_done) return 0;
  if (begin) {
    if (c->nh >= BD_MAX_HEADERS) {
      c->early_status = 431;
      return HPE_USER;
    }
    c->hoff[c->nh] = (hoff_t){(uint32_t)c->req->head_buf.len, 0, 0, 0};
    c->nh++;
  }
  bd_buf_append(&c->req->head_buf, at, n);
  c->hoff[c->nh - 1].nlen += (uint32_t)n;
  return 0;
}

/* A field line with nothing before its colon (": v") completes a name of
 * no bytes: llhttp reports it as an empty span, or none. */
static int on_header_field_complete(llhttp_t *p) {
  bd_conn_t *c = p->data;
  if (!c->name_open || c->name_len == 0) return head_fail(c, 400, "Malformed HTTP request: a field line has an empty name");
  c->name_open = false;
  return 0;
}

static int on_header_value(llhttp_t *p, const char *at, size_t n) {
  bd_conn_t *c = p->data;
  if (head_limit(c, n)) return HPE_USER;
  if (c->headers_done) return 0; /* a trailer (see on_header_field) */
  hoff_t *h = &c->hoff[c->nh - 1];
  if (h->vlen == 0) h->voff = (uint32_t)c->req->head_buf.len;
  bd_buf_append(&c->req->head_buf, at, n);
  h->vlen += (uint32_t)n;
  return 0;
}

static int on_version_complete(llhttp_t *p) {
  ((bd_conn_t *)p->data)->saw_version = true;
  return 0;
}

static void conn_arm_timer(bd_conn_t *c);

static void send_continue(bd_conn_t *c) { conn_write(c, "HTTP/1.1 100 Continue\r\n\r\n", 25); }

/* The request line and fields are well-formed to llhttp; these are the
 * rules it leaves to us (RFC 9112 2.3, 3, 3.2, 6.1; RFC 9110 7.2). Returns
 * the status to refuse the request with, 0 to serve it. */
static int head_check(bd_conn_t *c, bd_req_t *r, llhttp_t *p, bd_target_form_t form) {
  if (!c->saw_version) {
    c->early_msg = "Malformed HTTP request: the request line has no HTTP version";
    return 400;
  }
  if (p->http_major != 1) {
    c->early_msg = "Only HTTP/1.0 and HTTP/1.1 are served";
    return 505;
  }
  if (r->method == HTTP_CONNECT) {
    c->early_msg = "CONNECT is not implemented";
    return 501;
  }
  if (form == BD_TARGET_BAD) {
    c->early_msg = "Malformed HTTP request: the target is neither origin-form nor an http(s) absolute-form";
    return 400;
  }
  int hosts = 0;
  const char *te[BD_MAX_HEADERS];
  size_t te_len[BD_MAX_HEADERS];
  int nte = 0;
  for (int i = 0; i < r->nheaders; i++) {
    bd_str_t name = r->headers[i].name;
    if (bd_str_ieq(name, "Host")) {
      if (++hosts > 1 || !bd_http_host_valid(r->headers[i].value.p, r->headers[i].value.len)) {
        c->early_msg = hosts > 1 ? "Malformed HTTP request: more than one Host field"
                                 : "Malformed HTTP request: the Host field is not a valid host";
        return 400;
      }
    } else if (bd_str_ieq(name, "Transfer-Encoding")) {
      te[nte] = r->headers[i].value.p;
      te_len[nte++] = r->headers[i].value.len;
    }
  }
  if (hosts == 0 && p->http_minor >= 1) {
    c->early_msg = "Malformed HTTP request: an HTTP/1.1 request must have one Host field";
    return 400;
  }
  if (nte > 0) {
    if (p->http_minor == 0) {
      c->early_msg = "Malformed HTTP request: Transfer-Encoding in an HTTP/1.0 request";
      return 400;
    }
    bd_te_t t = bd_http_te_check(te, te_len, nte);
    if (t == BD_TE_UNSUPPORTED) {
      c->early_msg = "Only the chunked transfer coding is implemented";
      return 501;
    }
    if (t != BD_TE_OK) {
      c->early_msg = "Malformed HTTP request: the body's length cannot be determined from Transfer-Encoding";
      return 400;
    }
  }
  return 0;
}

static int on_headers_complete(llhttp_t *p) {
  bd_conn_t *c = p->data;
  bd_req_t *r = c->req;
  bd_server_t *s = c->srv;
  /* materialise slices now that head_buf no longer moves */
  c->headers_done = true;
  const char *base = r->head_buf.data ? r->head_buf.data : "";
  bd_str_t url = {base + c->url_off, c->url_len};
  size_t path_off = 0;
  bd_target_form_t form = bd_http_target(url.p, url.len, &path_off);
  /* absolute-form (RFC 9112 3.2.2): the authority is dropped, the path and
   * query route as in origin-form, an empty path is "/" */
  bd_str_t target = form == BD_TARGET_ABSOLUTE ? (bd_str_t){url.p + path_off, url.len - path_off} : url;
  const char *q = memchr(target.p, '?', target.len);
  r->path = (bd_str_t){target.p, q ? (size_t)(q - target.p) : target.len};
  if (form == BD_TARGET_ABSOLUTE && r->path.len == 0) r->path = (bd_str_t){"/", 1};
  r->query = q ? (bd_str_t){q + 1, (size_t)(target.p + target.len - q - 1)} : (bd_str_t){"", 0};
  for (int i = 0; i < c->nh; i++) {
    r->headers[i].name = (bd_str_t){base + c->hoff[i].noff, c->hoff[i].nlen};
    r->headers[i].value = trim((bd_str_t){base + c->hoff[i].voff, c->hoff[i].vlen});
  }
  r->nheaders = c->nh;
  r->method = (uint8_t)llhttp_get_method(p);
  r->method_known = true;
  r->head = r->method == HTTP_HEAD;
  r->keep_alive = llhttp_should_keep_alive(p);
  r->errfmt = error_format(r->srv, r->path);
  int bad = head_check(c, r, p, form);
  if (bad) {
    c->early_status = bad;
    return HPE_USER;
  }
  /* Upgrade is not implemented and ignored (RFC 9110 7.8): the connection
   * goes on as HTTP/1.1 rather than pausing for another protocol */
  p->upgrade = 0;

  bd_str_t rid = bd_req_header(r, "X-Request-Id");
  if (sane_request_id(rid)) {
    memcpy(r->request_id, rid.p, rid.len);
    r->request_id[rid.len] = '\0';
  } else {
    new_request_id(r->request_id);
  }

  if (s->shutting_down) c->close_after = true;

  /* route */
  bd_buf_t allow = BD_BUF_INIT;
  const char *mname = llhttp_method_name((llhttp_method_t)r->method);
  bd_route_match_t m = bd_route_match(s->routes, s->nroutes, mname, r->path, &r->route, r->params,
                                      &r->nparams, &allow);
  if (m == BD_ROUTE_BAD_METHOD) {
    bd_resp_header(r, "Allow", allow.data);
    c->bad_method = true;
  }
  bd_buf_free(&allow);

  bool has_body = (p->flags & F_CHUNKED) || (p->flags & F_CONTENT_LENGTH && p->content_length > 0);
  uint64_t limit = (r->route && (r->route->flags & BD_ROUTE_UPLOAD)) ? s->cfg.max_upload_body
                                                                     : s->cfg.max_json_body;
  if ((p->flags & F_CONTENT_LENGTH) && p->content_length > limit) {
    /* refuse before the body is sent; the connection cannot be reused */
    c->early_status = 413;
    c->close_after = true;
    return HPE_USER;
  }
  bool expect = bd_req_header(r, "Expect").len > 0;
  if (expect && !bd_str_ieq(bd_req_header(r, "Expect"), "100-continue")) {
    c->early_status = 417;
    c->close_after = true;
    return HPE_USER;
  }
  if (m != BD_ROUTE_FOUND) {
    /* answer at message end; small bodies are drained so keep-alive
     * survives, but never invite a body we are going to drop */
    c->discard_body = true;
    if (expect && has_body) c->close_after = true;
    c->state = CS_BODY;
    conn_arm_timer(c);
    return 0;
  }
  if (expect && has_body) send_continue(c);
  c->state = CS_BODY;
  conn_arm_timer(c);
  if (r->route->flags & BD_ROUTE_STREAM) {
    req_start(r);
    bd_req_hold(r); /* the parser's own hold until message complete */
    c->parser_hold = true;
    r->route->fn(r);
  }
  return 0;
}

static int on_body(llhttp_t *p, const char *at, size_t n) {
  bd_conn_t *c = p->data;
  bd_req_t *r = c->req;
  r->body_bytes += n;
  uint64_t limit = (r->route && (r->route->flags & BD_ROUTE_UPLOAD)) ? c->srv->cfg.max_upload_body
                                                                     : c->srv->cfg.max_json_body;
  if (r->body_bytes > limit) { /* chunked bodies are only caught here */
    c->early_status = 413;
    c->close_after = true;
    return HPE_USER;
  }
  conn_arm_timer(c);
  if (c->discard_body) return 0;
  if (r->route->flags & BD_ROUTE_STREAM) {
    if (r->on_body && !r->resp_done) r->on_body(r, at, n);
    return c->body_paused ? HPE_PAUSED : 0;
  }
  bd_buf_append(&r->body, at, n);
  return 0;
}

/* The message is complete: hand it to its handler (or answer 404/405). */
static void message_dispatch(bd_conn_t *c) {
  bd_req_t *r = c->req;
  c->head_scan = SCAN_PRE; /* the next message's head is scanned afresh */
  c->scan_cr = false;
  c->state = CS_HANDLING;
  uv_timer_stop(&c->timer);
  c->requests++;
  if (c->discard_body || !r->route) {
    req_start(r);
    if (c->bad_method)
      bd_resp_error(r, 405, "method_not_allowed", "Method not allowed for this path", NULL);
    else
      bd_resp_error(r, 404, "not_found", "No such endpoint", NULL);
  } else if (r->route->flags & BD_ROUTE_STREAM) {
    c->parser_hold = false;
    if (r->on_body_end && !r->resp_done) r->on_body_end(r);
    bd_req_release(r); /* the parser's hold */
  } else {
    req_start(r);
    r->route->fn(r);
  }
}

/* Stops the parser after every message: the next pipelined request waits
 * for this response. */
static int on_message_complete(llhttp_t *p) {
  message_dispatch(p->data);
  return HPE_PAUSED;
}

/* The last chunk's size line: the parser stops right after it so that
 * conn_process can scan the trailer section as it scans the head (llhttp,
 * even strict, takes obs-fold there, a whitespace-only one included, and a
 * bare LF as the empty line that ends it: shapes a front proxy may frame
 * differently, RFC 9112 2.2, 5.2, 7.1.2; found by fuzz_http_framing). */
static int on_chunk_header(llhttp_t *p) {
  if (p->content_length != 0) return 0;
  ((bd_conn_t *)p->data)->trailers_next = true;
  return HPE_PAUSED;
}

/* ------------------------------------------------------------------------ */
/* connection                                                                */

static void on_timer_close(uv_handle_t *h);
static void on_tcp_close(uv_handle_t *h);

static void conn_free_if_done(bd_conn_t *c) {
  if (c->handles > 0) return;
  if (c->req) {
    /* A request a handler never saw is freed here. One a handler has is
     * detached: the handler completes it (into the void) and it is freed
     * when the response is done and the last hold released. */
    bd_req_t *r = c->req;
    c->req = NULL;
    r->conn = NULL;
    if (c->parser_hold) {
      c->parser_hold = false;
      r->holds--;
    }
    if (!r->started || (r->resp_done && r->holds == 0)) req_free(r);
  }
  bd_server_t *s = c->srv;
  if (c->prev) c->prev->next = c->next;
  else s->conns = c->next;
  if (c->next) c->next->prev = c->prev;
  /* a connection on the ready list is skipped: see process_ready */
  bd_buf_free(&c->in);
  free(c);
  s->stats.active--;
  server_maybe_done(s);
}

static void on_timer_close(uv_handle_t *h) {
  bd_conn_t *c = h->data;
  c->handles--;
  conn_free_if_done(c);
}

static void on_tcp_close(uv_handle_t *h) {
  bd_conn_t *c = h->data;
  c->handles--;
  conn_free_if_done(c);
}

static void conn_close(bd_conn_t *c) {
  if (c->closing) return;
  c->closing = true;
  c->peer_gone = true;
  if (c->on_ready) {
    /* unlink from the ready list now: the memory will go away */
    bd_conn_t **pp = &c->srv->ready;
    while (*pp && *pp != c) pp = &(*pp)->ready_next;
    if (*pp) *pp = c->ready_next;
    c->on_ready = false;
  }
  bd_req_t *r = c->req;
  if (r && !r->resp_done && r->on_abort) r->on_abort(r);
  uv_close((uv_handle_t *)&c->timer, on_timer_close);
  uv_close((uv_handle_t *)&c->tcp, on_tcp_close);
}

static void conn_fail(bd_conn_t *c, int status, const char *code, const char *msg);

static void on_timeout(uv_timer_t *t) {
  bd_conn_t *c = t->data;
  if (c->state == CS_HEADERS || c->state == CS_BODY) {
    if (c->req && !c->req->resp_started) {
      conn_fail(c, 408, "request_timeout", "Request timed out");
      return;
    }
  }
  conn_close(c);
}

static void conn_arm_timer(bd_conn_t *c) {
  uint32_t ms = 0;
  const bd_server_config_t *cfg = &c->srv->cfg;
  switch (c->state) {
  case CS_IDLE: ms = c->requests ? cfg->keepalive_timeout_ms : cfg->header_timeout_ms; break;
  case CS_HEADERS: ms = cfg->header_timeout_ms; break;
  case CS_BODY: ms = cfg->body_timeout_ms; break;
  case CS_HANDLING: uv_timer_stop(&c->timer); return;
  }
  if (c->state == CS_HEADERS) {
    if (c->header_deadline) return; /* a deadline: not extended by more bytes */
    c->header_deadline = true;
  }
  uv_timer_start(&c->timer, on_timeout, ms, 0);
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  bd_conn_t *c = h->data;
  *buf = uv_buf_init(c->srv->read_buf, sizeof c->srv->read_buf);
}

static void on_read(uv_stream_t *st, ssize_t n, const uv_buf_t *buf) {
  bd_conn_t *c = st->data;
  if (n < 0) {
    /* EOF or error: nothing more will come */
    c->peer_gone = true;
    uv_read_stop(st);
    c->reading = false;
    if (c->state == CS_HANDLING && c->req && !c->req->resp_done) {
      /* the handler keeps running; it sees bd_req_gone() */
      if (c->req->on_abort) {
        void (*cb)(bd_req_t *) = c->req->on_abort;
        c->req->on_abort = NULL;
        cb(c->req);
      }
      conn_close(c);
      return;
    }
    if (c->state == CS_BODY && c->req && c->req->route && (c->req->route->flags & BD_ROUTE_STREAM) &&
        !c->req->resp_done && c->req->on_abort) {
      void (*cb)(bd_req_t *) = c->req->on_abort;
      c->req->on_abort = NULL;
      cb(c->req);
    }
    conn_close(c);
    return;
  }
  if (n == 0) return;
  bd_buf_append(&c->in, buf->base, (size_t)n);
  conn_process(c);
}

static void conn_update_reading(bd_conn_t *c) {
  if (c->closing || c->peer_gone) return;
  bool want = !c->body_paused && (c->in.len - c->in_off) < INPUT_HIGH_WATER;
  if (c->state == CS_HANDLING && (c->in.len - c->in_off) >= READ_CHUNK) want = false;
  if (want && !c->reading) {
    if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) == 0) c->reading = true;
  } else if (!want && c->reading) {
    uv_read_stop((uv_stream_t *)&c->tcp);
    c->reading = false;
  }
}

/* An early error decided inside the parser (413, 431, 417, 400): answer it,
 * then close the connection since its input cannot be trusted any more. */
static void conn_fail(bd_conn_t *c, int status, const char *code, const char *msg) {
  c->close_after = true;
  if (!c->req) c->req = req_new(c);
  bd_req_t *r = c->req;
  if (r->request_id[0] == '\0') new_request_id(r->request_id);
  /* the url scratch describes this request only when it lies inside its
   * head buffer (an error before llhttp began the message, e.g. an
   * obs-fold found by scan_head, must not read the previous one's) */
  bool have_url = c->url_len && r->head_buf.data && (size_t)c->url_off + c->url_len <= r->head_buf.len;
  if (c->state == CS_HEADERS && have_url) {
    /* llhttp has parsed the method once it reports URL bytes */
    r->method = (uint8_t)llhttp_get_method(&c->parser);
    r->method_known = true;
  }
  if (r->path.p == NULL && have_url) {
    const char *base = r->head_buf.data;
    const char *q = memchr(base + c->url_off, '?', c->url_len);
    r->path = (bd_str_t){base + c->url_off, q ? (size_t)(q - base - c->url_off) : c->url_len};
    r->errfmt = error_format(r->srv, r->path);
  }
  if (r->resp_started) {
    /* a streamed handler is mid-response: just drop the connection */
    conn_close(c);
    return;
  }
  if (r->route && (r->route->flags & BD_ROUTE_STREAM)) {
    /* the handler saw the headers: the client is answered first (unless the
     * handler already has), then the handler is told the body will not
     * complete; whatever it answers then goes nowhere */
    c->state = CS_HANDLING;
    uv_timer_stop(&c->timer);
    bd_resp_error(r, status, code, msg, NULL);
    if (r->on_abort) {
      void (*cb)(bd_req_t *) = r->on_abort;
      r->on_abort = NULL;
      cb(r);
    }
    r->on_body = NULL;
    r->on_body_end = NULL;
    if (c->parser_hold) {
      c->parser_hold = false;
      bd_req_release(r); /* the parser's hold: r may be gone after it */
    }
    return;
  }
  req_start(r);
  c->state = CS_HANDLING;
  uv_timer_stop(&c->timer);
  bd_resp_error(r, status, code, msg, NULL);
}

/* The head bytes are scanned here before llhttp sees them, for shapes a
 * front proxy may read differently from llhttp and that its callbacks
 * cannot tell from a value split across two reads:
 *  - obs-fold (a field line starting with SP or HT, RFC 9112 5.2), which
 *    llhttp passes through as a continuation of the previous value, so
 *    "Transfer-Encoding:\r\n chunked" would be taken as chunked;
 *  - a bare LF ending a line (RFC 9112 2.2 allows accepting it; we do not,
 *    in the request line, a field line or the empty line alike);
 *  - more than one SP between request-line parts, or an HT there (RFC 9112
 *    3 allows splitting on any whitespace; we take the single-SP grammar).
 * The state is kept across reads (head_scan, scan_cr); empty lines before
 * the request line are skipped as llhttp does (RFC 9112 2.2), and body
 * bytes are not scanned, but a chunked body's trailer section is (from
 * on_chunk_header on). Returns NULL or the refusal's message. */

static const char *scan_head(bd_conn_t *c, const char *p, size_t n) {
  uint8_t st = c->head_scan;
  bool cr = c->scan_cr;
  for (size_t i = 0; i < n && st != SCAN_DONE; i++) {
    char ch = p[i];
    if (ch == '\n' && !cr) return "Malformed HTTP request: a line ends in LF without CR";
    switch (st) {
    case SCAN_PRE:
      if (ch != '\r' && ch != '\n') st = SCAN_REQLINE;
      break;
    case SCAN_REQLINE:
    case SCAN_REQLINE_SP:
      if (ch == '\t' || (ch == ' ' && st == SCAN_REQLINE_SP))
        return "Malformed HTTP request: the request line's parts are not separated by single spaces";
      st = ch == '\n' ? SCAN_LSTART : ch == ' ' ? SCAN_REQLINE_SP : SCAN_REQLINE;
      break;
    case SCAN_LINE: {
      /* the rest of a field line: jump to its LF */
      const char *nl = memchr(p + i, '\n', n - i);
      if (!nl) {
        i = n - 1;
        ch = p[i];
        break;
      }
      size_t j = (size_t)(nl - p);
      if (j > i) cr = p[j - 1] == '\r';
      if (!cr) return "Malformed HTTP request: a line ends in LF without CR";
      i = j;
      ch = '\n';
      st = SCAN_LSTART;
      break;
    }
    case SCAN_LSTART:
      if (ch == ' ' || ch == '\t') return "Malformed HTTP request: obsolete line folding in a field line";
      st = ch == '\r' ? SCAN_LSTART_CR : SCAN_LINE;
      break;
    case SCAN_LSTART_CR:
      st = ch == '\n' ? SCAN_DONE : SCAN_LINE;
      break;
    }
    cr = ch == '\r';
  }
  c->head_scan = st;
  c->scan_cr = cr;
  return NULL;
}

/* Parses buffered input until the parser pauses (a request is complete or
 * the body consumer asked to pause) or the input runs out. */
static void conn_process(bd_conn_t *c) {
  while (!c->closing && c->state != CS_HANDLING && !c->body_paused && (c->in_off < c->in.len || c->kick)) {
    c->kick = false;
    const char *start = c->in.data ? c->in.data + c->in_off : "";
    size_t avail = c->in.len - c->in_off;
    if (c->state == CS_IDLE) conn_arm_timer(c); /* re-armed as headers by message_begin */
    const char *bad;
    /* the head, and a chunked body's trailer section (see on_chunk_header) */
    if (c->state != CS_HANDLING && c->head_scan != SCAN_DONE &&
        (bad = scan_head(c, start, avail))) {
      bd_log(BD_LOG_INFO, "malformed request on a connection: %s", bad);
      c->in_off = c->in.len;
      conn_fail(c, 400, "invalid_request", bad);
      return;
    }
    llhttp_errno_t err = llhttp_execute(&c->parser, start, avail);
    if (err == HPE_OK) {
      c->in_off = c->in.len;
    } else if (err == HPE_PAUSED) {
      const char *pos = llhttp_get_error_pos(&c->parser);
      c->in_off += (size_t)(pos - start);
      llhttp_resume(&c->parser);
      if (c->trailers_next) {
        /* scan_head goes on from the start of a line after CRLF */
        c->trailers_next = false;
        c->head_scan = SCAN_LSTART;
        c->scan_cr = false;
      }
    } else {
      int st = c->early_status ? c->early_status : 400;
      const char *reason = c->early_msg ? c->early_msg : llhttp_get_error_reason(&c->parser);
      if (st == 400 || st >= 500)
        bd_log(BD_LOG_INFO, "malformed request on a connection: %s", reason ? reason : "parse error");
      c->in_off = c->in.len;
      if (st == 431) conn_fail(c, 431, "header_too_large", "Request line and headers are too large");
      else if (st == 413) conn_fail(c, 413, "payload_too_large", "Request body is too large");
      else if (st == 417) conn_fail(c, 417, "expectation_failed", "Only Expect: 100-continue is supported");
      else if (st == 501) conn_fail(c, 501, "not_implemented", reason);
      else if (st == 505) conn_fail(c, 505, "http_version_not_supported", reason);
      else if (c->early_msg) conn_fail(c, 400, "invalid_request", c->early_msg);
      else {
        char msg[160];
        snprintf(msg, sizeof msg, "Malformed HTTP request: %s", reason ? reason : "parse error");
        conn_fail(c, 400, "invalid_request", msg);
      }
      return;
    }
    if (c->state == CS_HEADERS || c->state == CS_BODY) conn_arm_timer(c);
  }
  /* compact the input buffer */
  if (c->in_off == c->in.len) {
    bd_buf_reset(&c->in);
    c->in_off = 0;
    if (c->in.cap > 4 * READ_CHUNK && c->state != CS_BODY) bd_buf_free(&c->in);
  } else if (c->in_off > c->in.len / 2) {
    bd_buf_consume(&c->in, c->in_off);
    c->in_off = 0;
  }
  if (c->state == CS_IDLE && !c->closing) conn_arm_timer(c);
  conn_update_reading(c);
}

/* The request in CS_HANDLING has a complete response and no holds: log it,
 * free it, and go on with the next pipelined request. */
static void finish_request(bd_conn_t *c) {
  bd_req_t *r = c->req;
  uint64_t dur = bd_now_ns() - r->start_ns;
  if (bd_http_on_request_done) bd_http_on_request_done(r, dur);
  c->req = NULL;
  req_free(r);
  c->state = CS_IDLE;
  c->discard_body = false;
  c->url_len = 0; /* scratch of the request just freed */
  if (c->close_after || c->peer_gone) {
    if (c->write_pending == 0 || c->peer_gone) conn_close(c);
    /* else on_write closes once the response has gone out */
    return;
  }
  conn_process(c);
}

static void conn_schedule(bd_conn_t *c) {
  if (c->on_ready || c->closing) return;
  c->on_ready = true;
  c->ready_next = c->srv->ready;
  c->srv->ready = c;
  uv_idle_start(&c->srv->idle, on_idle);
}

static void on_connection(uv_stream_t *ls, int status);

static void on_idle(uv_idle_t *h) {
  bd_server_t *s = h->data;
  s->accept_burst = 0;
  if (s->accept_deferred) {
    s->accept_deferred = false;
    on_connection((uv_stream_t *)&s->listener, 0); /* accepting re-arms the listener */
  }
  /* Take the whole list: work done below may schedule connections again,
   * they are then handled on the next iteration. */
  bd_conn_t *list = s->ready;
  s->ready = NULL;
  while (list) {
    bd_conn_t *c = list;
    list = c->ready_next;
    c->on_ready = false;
    if (c->closing) continue;
    if (c->state == CS_HANDLING && c->req && c->req->resp_done && c->req->holds == 0) {
      finish_request(c);
    } else if (c->state != CS_HANDLING) {
      conn_process(c);
    }
  }
  if (!s->ready) uv_idle_stop(h);
}

static void on_rejected_close(uv_handle_t *h) { free(h->data); }
static void conn_start(bd_server_t *s, bd_conn_t *c);

/* A burst of connections (a flood, or clients reconnecting at once) is
 * accepted at most ACCEPT_BURST per loop iteration: libuv would otherwise
 * accept until the backlog is empty before any established connection is
 * served. Not calling uv_accept makes libuv stop polling the listener; the
 * idle callback accepts the pending one on the next iteration. */
#define ACCEPT_BURST 64

static void on_connection(uv_stream_t *ls, int status) {
  bd_server_t *s = ls->data;
  if (status < 0) return;
  if (s->shutting_down || !s->listening) return;
  if (s->accept_burst >= ACCEPT_BURST) {
    s->accept_deferred = true;
    uv_idle_start(&s->idle, on_idle);
    return;
  }
  s->accept_burst++;
  uv_idle_start(&s->idle, on_idle); /* resets the burst count once the loop moves on */
  bd_conn_t *c = bd_calloc(1, sizeof *c);
  c->srv = s;
  uv_tcp_init(s->loop, &c->tcp);
  c->tcp.data = c;
  c->handles = 1;
  if (uv_accept(ls, (uv_stream_t *)&c->tcp) != 0 || s->shutting_down ||
      s->stats.active >= s->cfg.max_connections) {
    if (s->stats.active >= s->cfg.max_connections) s->stats.rejected++;
    uv_close((uv_handle_t *)&c->tcp, on_rejected_close);
    return;
  }
  conn_start(s, c);
}

int bd_server_adopt_fd(bd_server_t *s, uv_os_sock_t fd) {
  bd_conn_t *c = bd_calloc(1, sizeof *c);
  c->srv = s;
  uv_tcp_init(s->loop, &c->tcp);
  c->tcp.data = c;
  c->handles = 1;
  int rc = uv_tcp_open(&c->tcp, fd);
  if (rc != 0) {
    close(fd); /* not attached to the handle */
    uv_close((uv_handle_t *)&c->tcp, on_rejected_close);
    return rc;
  }
  conn_start(s, c);
  return 0;
}

/* An accepted (or adopted) socket becomes a connection waiting for its
 * first request. */
static void conn_start(bd_server_t *s, bd_conn_t *c) {
  uv_timer_init(s->loop, &c->timer);
  c->timer.data = c;
  c->handles = 2;
  uv_tcp_nodelay(&c->tcp, 1);
  llhttp_init(&c->parser, HTTP_REQUEST, &g_settings);
  c->parser.data = c;
  c->next = s->conns;
  if (s->conns) s->conns->prev = c;
  s->conns = c;
  s->stats.accepted++;
  s->stats.active++;
  c->state = CS_IDLE;
  conn_arm_timer(c);
  conn_update_reading(c);
}

/* ------------------------------------------------------------------------ */
/* server                                                                    */

bd_server_t *bd_server_new(uv_loop_t *loop, const bd_server_config_t *cfg, const bd_route_t *routes,
                           size_t nroutes) {
  if (!g_settings_init) {
    llhttp_settings_init(&g_settings);
    g_settings.on_message_begin = on_message_begin;
    g_settings.on_url = on_url;
    g_settings.on_header_field = on_header_field;
    g_settings.on_header_value = on_header_value;
    g_settings.on_header_field_complete = on_header_field_complete;
    g_settings.on_version_complete = on_version_complete;
    g_settings.on_headers_complete = on_headers_complete;
    g_settings.on_body = on_body;
    g_settings.on_chunk_header = on_chunk_header;
    g_settings.on_message_complete = on_message_complete;
    g_settings_init = true;
  }
  bd_server_t *s = bd_calloc(1, sizeof *s);
  s->loop = loop;
  s->cfg = *cfg;
  s->listen_str = bd_strdup(cfg->listen);
  s->cfg.listen = s->listen_str;
  s->routes = routes;
  s->nroutes = nroutes;
  uv_idle_init(loop, &s->idle);
  s->idle.data = s;
  uv_timer_init(loop, &s->grace);
  s->grace.data = s;
  s->handles = 2;
  return s;
}

int bd_server_listen(bd_server_t *s) {
  char host[256];
  int port = 0;
  const char *colon = strrchr(s->cfg.listen, ':');
  if (!colon || colon == s->cfg.listen || (size_t)(colon - s->cfg.listen) >= sizeof host) return UV_EINVAL;
  memcpy(host, s->cfg.listen, (size_t)(colon - s->cfg.listen));
  host[colon - s->cfg.listen] = '\0';
  port = atoi(colon + 1);
  char *h = host;
  if (h[0] == '[') { /* [::1]:8080 */
    h++;
    h[strlen(h) - 1] = '\0';
  }
  struct sockaddr_storage ss;
  int rc = strchr(h, ':') ? uv_ip6_addr(h, port, (struct sockaddr_in6 *)&ss)
                          : uv_ip4_addr(h, port, (struct sockaddr_in *)&ss);
  if (rc) return rc;
  rc = uv_tcp_init_ex(s->loop, &s->listener, ss.ss_family);
  if (rc) return rc;
  s->listener.data = s;
  s->listening = true;
  s->handles++;
  if (s->cfg.reuseport) {
    /* libuv 1.44 has no UV_TCP_REUSEPORT: set it on the fd before bind */
    uv_os_fd_t fd;
    int one = 1;
    if (uv_fileno((uv_handle_t *)&s->listener, &fd) == 0)
      setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
  }
  rc = uv_tcp_bind(&s->listener, (struct sockaddr *)&ss, 0);
  if (rc) return rc;
  return uv_listen((uv_stream_t *)&s->listener, 1024, on_connection);
}

static void on_server_handle_close(uv_handle_t *h) {
  bd_server_t *s = h->data;
  s->handles--;
  server_maybe_done(s);
}

static void server_maybe_done(bd_server_t *s) {
  if (!s->shutting_down) return;
  if (s->conns == NULL && s->handles == 2 && !uv_is_closing((uv_handle_t *)&s->idle)) {
    uv_close((uv_handle_t *)&s->idle, on_server_handle_close);
    uv_close((uv_handle_t *)&s->grace, on_server_handle_close);
    return;
  }
  if (s->conns == NULL && s->handles == 0) {
    void (*done)(void *) = s->done;
    void *ud = s->done_ud;
    free(s->listen_str);
    free(s);
    if (done) done(ud);
  }
}

/* The grace period is over. A request still arriving (its head or body,
 * e.g. a long upload) has not been accepted: it is answered 503 with
 * Retry-After, so the client knows to send it again to the next process,
 * and its connection closes once that is written (streamed handlers are
 * told through on_abort and roll back). Everything else, and whatever is
 * left when GRACE_FINAL_MS more have passed, is closed. A request whose
 * body is complete is not answered 503: its handler may already have
 * committed it. */
#define GRACE_FINAL_MS 1000
static void on_grace(uv_timer_t *t) {
  bd_server_t *s = t->data;
  bool final = s->grace_over;
  s->grace_over = true;
  for (bd_conn_t *c = s->conns, *next; c; c = next) {
    next = c->next;
    bool arriving = (c->state == CS_HEADERS || c->state == CS_BODY) && c->req && !c->req->resp_started &&
                    !c->req->resp_done && !c->closing && !c->peer_gone;
    if (final || !arriving) {
      conn_close(c);
      continue;
    }
    bd_resp_header(c->req, "Retry-After", "5");
    conn_fail(c, 503, "shutting_down", "The server is shutting down; send the request again");
  }
  if (!final && s->conns) uv_timer_start(&s->grace, on_grace, GRACE_FINAL_MS, 0);
}

void bd_server_shutdown(bd_server_t *s, uint32_t grace_ms, void (*done)(void *ud), void *ud) {
  if (s->shutting_down) return;
  s->shutting_down = true;
  s->done = done;
  s->done_ud = ud;
  if (s->listening) uv_close((uv_handle_t *)&s->listener, on_server_handle_close);
  /* idle connections close now; busy ones after their response */
  for (bd_conn_t *c = s->conns, *next; c; c = next) {
    next = c->next;
    if (c->state == CS_IDLE && c->write_pending == 0) conn_close(c);
    else c->close_after = true;
  }
  uv_timer_start(&s->grace, on_grace, grace_ms, 0);
  uv_unref((uv_handle_t *)&s->grace);
  server_maybe_done(s);
}

void bd_server_stats(const bd_server_t *s, bd_server_stats_t *out) { *out = s->stats; }

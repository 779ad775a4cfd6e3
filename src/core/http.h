/* http.h: the HTTP/1.1 server (libuv TCP + llhttp). Loop thread only.
 *
 * One connection serves one request at a time: when a request's message is
 * complete the parser is paused (HPE_PAUSED) and the unparsed tail of the
 * input is kept, so pipelined requests are answered strictly in order and a
 * slow handler stops the connection from reading more than one input buffer
 * ahead. After the response has been handed to the socket, parsing resumes.
 *
 * Request bodies reach handlers in one of two ways, chosen by the route:
 *  - buffered (default): the handler runs once the whole body is in
 *    req->body, which is bounded by the route's limit (413 beyond it);
 *  - streamed (BD_ROUTE_STREAM): the handler runs as soon as the headers are
 *    complete and installs req->on_body / req->on_body_end. on_body must take
 *    all the bytes it is given (copy what it keeps); it may call
 *    bd_req_pause() to stop the connection from reading until
 *    bd_req_resume().
 *
 * Lifetime contract (as libuv's): a bd_req_t stays valid from the handler
 * call until the handler has completed a response (bd_resp_send or
 * bd_resp_end) AND released every hold it took with bd_req_hold(). A handler
 * with asynchronous work outstanding (a query, a worker job) that may finish
 * after the client has gone holds the request and checks bd_req_gone() when
 * it comes back. Freeing happens after the last release, never inside the
 * caller's stack frame that released it.
 */
#ifndef BD_HTTP_H
#define BD_HTTP_H

#include "buf.h"
#include "router.h"
#include <llhttp.h>
#include <uv.h>

typedef struct bd_server bd_server_t;
typedef struct bd_conn bd_conn_t;
#define BD_MAX_HEADERS 64
#define BD_REQ_CLEANUPS 6 /* bd_req_defer registrations per request */

typedef struct {
  bd_str_t name;  /* as received (compare with bd_str_ieq) */
  bd_str_t value; /* leading/trailing whitespace trimmed */
} bd_header_t;

struct bd_req {
  bd_conn_t *conn;               /* owning connection (NULL once it is gone) */
  uint8_t method;                /* llhttp_method_t (valid when method_known) */
  bool method_known;             /* the request line's method was parsed */
  bool head;                     /* HEAD: the response body is not sent */
  bd_error_fmt_fn errfmt;        /* error format of the path's scope (NULL: neutral) */
  const bd_route_t *route;       /* matched route, NULL for 404/405 */
  bd_str_t path;                 /* decoded-free raw path, without query */
  bd_str_t query;                /* raw query string without '?' (may be empty) */
  bd_str_t params[BD_MAX_PARAMS];/* {x} segments of the route, raw */
  int nparams;                   /* number of params */
  bd_header_t headers[BD_MAX_HEADERS]; /* request headers */
  int nheaders;                  /* number of headers */
  bd_buf_t head_buf;             /* storage for url + header bytes */
  bd_buf_t body;                 /* buffered body (non-streamed routes) */
  uint64_t body_bytes;           /* body bytes received so far */
  bool keep_alive;               /* the client allows reuse of the connection */
  char request_id[80];           /* X-Request-Id (client's if sane, else req_…) */
  uint64_t start_ns;             /* monotonic time the request began */

  /* streamed bodies (BD_ROUTE_STREAM) */
  void (*on_body)(bd_req_t *req, const char *p, size_t n); /* takes every byte */
  void (*on_body_end)(bd_req_t *req);                      /* body complete */
  /* The client went away, or the body was malformed or cut off by the
   * shutdown grace (the core has then answered the client already), before
   * the response ended. The handler must still complete a response (it goes
   * nowhere) and release its holds: until it does the request is not freed. */
  void (*on_abort)(bd_req_t *req);

  /* response state */
  int status;                    /* status sent (0 until headers go out) */
  bd_buf_t resp_headers;         /* extra headers added by bd_resp_header */
  bool resp_started;             /* headers written */
  bool resp_done;                /* response complete */
  bool resp_chunked;             /* streaming with chunked encoding */
  uint64_t resp_bytes;           /* body bytes written */
  void (*on_drain)(bd_req_t *req); /* streamed response may write more */

  /* per-request state of the handler and middleware */
  void *ctx;                     /* handler's own state (freed by a cleanup, bd_req_defer) */
  const char *cred_id;           /* authenticated credential id, for logs/limits */
  char cred_buf[64];             /* storage for cred_id */
  int holds;                     /* outstanding holds (bd_req_hold) */
  char *pcopy[BD_MAX_PARAMS];    /* NUL-terminated copies made by bd_req_param */
  bd_server_t *srv;              /* the server (outlives a closed conn) */
  bool started;                  /* counted in the server's in-flight requests */
  /* Middleware hook: when set, bd_resp_send hands the response here instead
   * of sending it (the hook is cleared first; it sends later with
   * bd_resp_send). Used to store Idempotency-Key responses before they go
   * out. `body` is valid only during the call. */
  void (*on_respond)(bd_req_t *req, int status, const char *ctype, const char *body, size_t len);
  void *mw;                      /* middleware state */
  /* Cleanups registered with bd_req_defer, run in reverse order when the
   * request is freed. */
  struct {
    void (*fn)(void *arg);       /* the cleanup */
    void *arg;                   /* its argument */
  } cleanup[BD_REQ_CLEANUPS];
  int ncleanup;                  /* entries used */
};

/* Server ---------------------------------------------------------------- */

typedef struct {
  const char *listen;            /* "host:port" */
  bool reuseport;                /* SO_REUSEPORT so several processes share the port */
  uint32_t max_header_bytes;     /* request line + headers (431) */
  uint64_t max_json_body;        /* buffered bodies (413) */
  uint64_t max_upload_body;      /* BD_ROUTE_UPLOAD bodies (413) */
  uint32_t header_timeout_ms;    /* first byte to end of headers (408) */
  uint32_t body_timeout_ms;      /* idle time between body bytes (408) */
  uint32_t keepalive_timeout_ms; /* idle connection between requests (closed) */
  uint32_t max_connections;      /* accepted at once; further ones are closed */
  const bd_error_scope_t *scopes;/* error formats by path (caller's storage, outlives the server) */
  size_t nscopes;                /* entries in scopes */
} bd_server_config_t;

bd_server_t *bd_server_new(uv_loop_t *loop, const bd_server_config_t *cfg, const bd_route_t *routes,
                           size_t nroutes);
/* Binds and listens. Returns 0 or a negative libuv error. */
int bd_server_listen(bd_server_t *s) BD_MUSTCHECK;
/* Graceful stop: closes the listener at once, closes idle connections, lets
 * requests in progress finish (their connections close after the response),
 * and after grace_ms closes whatever is left. `done` runs once every
 * connection handle is closed; the server is then freed. */
void bd_server_shutdown(bd_server_t *s, uint32_t grace_ms, void (*done)(void *ud), void *ud);

/* Test seam (fuzzing): serves an already connected stream socket (e.g. one
 * end of a socketpair) as if it had been accepted; the server owns and
 * closes fd. Counts against no limit. Returns 0 or a negative libuv error
 * (fd is then closed). */
int bd_server_adopt_fd(bd_server_t *s, uv_os_sock_t fd) BD_MUSTCHECK;

typedef struct {
  uint64_t accepted;  /* connections accepted */
  uint32_t active;    /* connections open */
  uint32_t inflight;  /* requests being handled */
  uint64_t rejected;  /* connections closed at once: over max_connections */
} bd_server_stats_t;
void bd_server_stats(const bd_server_t *s, bd_server_stats_t *out);

/* Requests ---------------------------------------------------------------- */

/* Header lookup (case-insensitive); NULL str when absent. */
bd_str_t bd_req_header(const bd_req_t *req, const char *name);
/* The decoded value of a query parameter; returns false when absent. */
bool bd_req_query(const bd_req_t *req, const char *name, bd_buf_t *out);
/* Path parameter i as a NUL-terminated copy in the request's head buffer
 * lifetime (valid until the request ends). */
const char *bd_req_param(bd_req_t *req, int i);

void bd_req_hold(bd_req_t *req);
void bd_req_release(bd_req_t *req);
/* Runs fn(arg) when the request is freed (after the handler's last release),
 * last registered first: a handler's per-request state is freed in one step,
 * whatever path the request took. fn must not touch the request. At most
 * BD_REQ_CLEANUPS registrations per request (more is a bug: abort). */
void bd_req_defer(bd_req_t *req, void (*fn)(void *arg), void *arg);
/* Zeroed memory of the request's lifetime (freed by a cleanup). */
void *bd_req_calloc(bd_req_t *req, size_t size);
/* The client disconnected: responses will be discarded. */
bool bd_req_gone(const bd_req_t *req);
void bd_req_pause(bd_req_t *req);  /* stop reading the body (streamed routes) */
void bd_req_resume(bd_req_t *req); /* resume reading */

/* Responses --------------------------------------------------------------- */

/* Adds a response header (name and value are copied). Before headers go out. */
void bd_resp_header(bd_req_t *req, const char *name, const char *value);
void bd_resp_headerf(bd_req_t *req, const char *name, const char *fmt, ...) BD_PRINTF(3, 4);
/* A header whose value is the decimal v (without printf). */
void bd_resp_header_u64(bd_req_t *req, const char *name, uint64_t v);
/* A complete response. The body is copied. */
void bd_resp_send(bd_req_t *req, int status, const char *content_type, const char *body, size_t len);
/* A JSON response from a buffer the caller built (its storage is taken). */
void bd_resp_json(bd_req_t *req, int status, bd_buf_t *body);

/* Streamed response: content_length < 0 uses chunked encoding. */
void bd_resp_start(bd_req_t *req, int status, const char *content_type, int64_t content_length);
/* Queues bytes (copied). Returns the bytes queued on the socket and not yet
 * written; above ~1 MiB the caller should wait for req->on_drain. */
size_t bd_resp_write(bd_req_t *req, const void *p, size_t n);
void bd_resp_end(bd_req_t *req);

/* An error body in the format of the path's scope (see bd_error_fmt_fn);
 * 429 and 503 get Retry-After: 1 unless the caller set its own. */
void bd_resp_error(bd_req_t *req, int status, const char *code, const char *message,
                   const char *param);

/* Called by the server once per finished request (access log + metrics). */
extern void (*bd_http_on_request_done)(bd_req_t *req, uint64_t dur_ns);

/* Status line reason phrase. */
const char *bd_http_reason(int status);

#endif

/* loadgen.c: an HTTP/1.1 load generator on one libuv loop (see
 * bench/README.md for usage and the measurement method).
 *
 * Two modes:
 *  - open loop (--rate R): request i is due at its intended time
 *    t0 + i/R whatever the server does. Due requests go to a free keep-alive
 *    connection at once; when none is free they wait in a queue (which is
 *    just the range of due-but-unsent indexes, so it costs no memory).
 *    Latency is measured from the intended time, so a server stall shows up
 *    in every request that was due during it (no coordinated omission). The
 *    service time (from the actual write) is reported beside it.
 *  - closed loop (no --rate): each connection sends its next request when
 *    the previous response is complete; latency is from the actual write.
 *
 * Costs per request: no allocation. Request bytes are shared, read-only
 * buffers (method, path, header block, body) written with one writev; the
 * read buffer is one static buffer shared by every connection (reads are
 * parsed synchronously inside read_cb); the in-flight bookkeeping is a
 * per-connection ring sized by --pipeline. The open-loop clock is a timerfd
 * (nanosecond resolution) watched by a uv_poll_t, since uv_timer_t ticks in
 * milliseconds.
 *
 * Lifetimes: connections live in one array for the whole run. A connection
 * is closed in steps: close_conn() counts what it loses and calls uv_close;
 * it becomes DOWN (reusable) only in on_close. Parser callbacks never close:
 * they set close_after and on_read acts once llhttp_execute has returned. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <llhttp.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/timerfd.h>
#include <unistd.h>
#include <uv.h>

#include "body.h"
#include "hist.h"

#define LG_PIPE_MAX 256          /* --pipeline upper bound */
#define LG_CONN_MAX 100000       /* --connections upper bound */
#define LG_RBUF (256 * 1024)     /* shared read buffer */
#define LG_TICK_MS 10            /* housekeeping timer: timeouts, reconnects */
#define LG_HIST_MAX 3600000000ull /* 1 hour in us: tracked with full precision */
#define NS 1000000000ull

typedef enum { LG_DOWN, LG_CONNECTING, LG_OPEN, LG_CLOSING } lg_state_t;

/* Why a connection closed: the error its in-flight requests are counted as. */
typedef enum { ERR_NONE, ERR_CONNECT, ERR_READ, ERR_WRITE, ERR_TIMEOUT, ERR_PARSE, ERR_CLOSED, ERR_UNFINISHED, ERR_N } lg_err_t;
static const char *const k_err_names[ERR_N] = {"none", "connect", "read", "write", "timeout", "parse", "closed", "unfinished"};

typedef struct lg_conn lg_conn_t;
struct lg_conn {
  uv_tcp_t tcp;           /* the socket; tcp.data = this; re-initialised after each close */
  uv_connect_t creq;      /* the pending connect while CONNECTING */
  uv_write_t wreq;        /* the one write libuv may still hold (writing) */
  llhttp_t parser;        /* response parser; parser.data = this */
  lg_state_t state;       /* DOWN -> CONNECTING -> OPEN -> CLOSING -> DOWN */
  bool writing;           /* wreq queued: take no new request until write_cb */
  bool close_after;       /* set by a parser callback: close after llhttp_execute */
  bool in_avail;          /* linked in the available list */
  bool first_attempt;     /* its first connect has not resolved yet (the run starts after all have) */
  lg_conn_t *prev, *next; /* available-list links */
  unsigned inflight;      /* requests written whose response is not complete */
  unsigned head;          /* ring slot of the oldest in-flight request */
  uint64_t *intended;     /* ring[pipeline]: intended send time, ns (uv_hrtime) */
  uint64_t *sent;         /* ring[pipeline]: actual send time, ns */
  uint64_t since;         /* when the connect started (CONNECTING) */
  uint64_t retry_at;      /* DOWN: reconnect at or after this time */
  uint64_t backoff;       /* next reconnect delay after a failed connect, ns */
  lg_err_t close_why;     /* reason given to close_conn (for on_close) */
};

/* Options, fixed after parsing. */
typedef struct {
  const char *url;        /* argv URL */
  char host[256];         /* host part of the URL */
  int port;               /* port part */
  struct sockaddr_in addr; /* resolved address (IPv4 literal or localhost) */
  const char *method;     /* -m, or GET / POST (with a body) */
  int connections;        /* -c */
  int pipeline;           /* --pipeline: in-flight requests per connection */
  double rate;            /* --rate, req/s; 0: closed loop */
  double duration;        /* --duration, s; 0: unlimited (with --requests) */
  double warmup;          /* --warmup, s */
  uint64_t requests;      /* --requests: measured requests to send; 0: by duration */
  double timeout;         /* --timeout, s: connect and response timeout */
  const char *json_path;  /* --json FILE or "-" */
  bool quiet;             /* -q: no human summary */
  bool head;              /* method is HEAD: responses have no body */
} lg_opts_t;

/* Counters of the measured window (requests whose intended time is at or
 * after the end of the warm-up). */
typedef struct {
  bd_hist_t lat;          /* latency from the intended send time, us */
  bd_hist_t svc;          /* service time from the actual write, us */
  uint64_t status[600];   /* responses by status code */
  uint64_t status_other;  /* status codes outside 0..599 */
  uint64_t sent;          /* measured requests written */
  uint64_t completed;     /* measured responses complete */
  uint64_t err[ERR_N];    /* measured requests lost, by cause; connect: failed attempts */
  uint64_t bytes_read;    /* response bytes read during the measured window */
  uint64_t bytes_written; /* request bytes of measured requests */
  uint64_t connects;      /* successful connects, whole run */
} lg_stats_t;

/* The whole run: one instance, loop thread only. */
static struct {
  lg_opts_t o;
  uv_loop_t *loop;
  lg_conn_t *conns;       /* o.connections of them */
  lg_conn_t *avail_head;  /* connections able to take a request, oldest first */
  lg_conn_t *avail_tail;
  uv_timer_t tick;        /* housekeeping every LG_TICK_MS */
  uv_poll_t tfd_poll;     /* open loop: watches tfd */
  int tfd;                /* open loop: timerfd armed at the next intended time */
  uv_signal_t sigint;     /* first ^C: stop issuing and drain; second: finish */
  int sigints;            /* ^C seen */
  /* request bytes */
  char *req_prefix;       /* "METHOD " */
  char *req_suffix;       /* " HTTP/1.1\r\nHost: ...\r\n...\r\n\r\n" */
  size_t prefix_len, suffix_len;
  lg_body_t body;         /* shared body (may be empty) */
  char *paths;            /* path bytes, back to back */
  size_t *path_off;       /* npaths offsets into paths */
  size_t *path_len;       /* npaths lengths */
  size_t npaths;          /* >= 1 */
  size_t next_path;       /* rotation index */
  /* schedule */
  bool started;           /* t0 is set */
  uint64_t launch;        /* when the first connects were started */
  int initial_pending;    /* first connects not yet answered */
  uint64_t t0;            /* start of the schedule, ns */
  uint64_t t_measure;     /* end of warm-up */
  uint64_t t_stop;        /* no new request at or after this time (UINT64_MAX: none) */
  double interval_ns;     /* open loop: 1e9 / rate */
  uint64_t sched_limit;   /* open loop: requests to schedule in all */
  uint64_t scheduled;     /* open loop: requests whose intended time has come */
  uint64_t dispatched;    /* open loop: of those, sent (scheduled - dispatched are queued) */
  uint64_t issued;        /* closed loop: measured requests issued (for --requests) */
  bool issue_done;        /* no more requests will be scheduled / issued */
  uint64_t drain_deadline; /* after issue_done: give up on what is outstanding */
  uint64_t inflight;      /* over all connections */
  uint64_t last_done;     /* time of the last measured completion */
  bool finishing;         /* finish() ran: handles are closing */
  uint64_t t_end;         /* when finish() ran */
  lg_stats_t st;
} g;

static char g_rbuf[LG_RBUF]; /* shared read buffer: reads are consumed in read_cb */

static void conn_connect(lg_conn_t *c);
static void close_conn(lg_conn_t *c, lg_err_t why);
static void dispatch(void);
static void maybe_finish(uint64_t now);

/* ---- available list ---------------------------------------------------- */

static bool can_take(const lg_conn_t *c) {
  return c->state == LG_OPEN && !c->writing && !c->close_after && c->inflight < (unsigned)g.o.pipeline;
}

static void avail_remove(lg_conn_t *c) {
  if (!c->in_avail) return;
  if (c->prev) c->prev->next = c->next;
  else g.avail_head = c->next;
  if (c->next) c->next->prev = c->prev;
  else g.avail_tail = c->prev;
  c->prev = c->next = NULL;
  c->in_avail = false;
}

static void avail_append(lg_conn_t *c) {
  c->prev = g.avail_tail;
  c->next = NULL;
  if (g.avail_tail) g.avail_tail->next = c;
  else g.avail_head = c;
  g.avail_tail = c;
  c->in_avail = true;
}

/* Puts c in or out of the available list according to its state. */
static void avail_refresh(lg_conn_t *c) {
  bool ok = can_take(c);
  if (ok && !c->in_avail) avail_append(c);
  else if (!ok && c->in_avail) avail_remove(c);
}

/* ---- sending ------------------------------------------------------------ */

static inline uint64_t intended_at(uint64_t i) { return g.t0 + (uint64_t)((double)i * g.interval_ns); }

static void on_write(uv_write_t *req, int status) {
  lg_conn_t *c = req->data;
  c->writing = false;
  if (status == UV_ECANCELED || c->state != LG_OPEN) return; /* closing */
  if (status < 0) {
    close_conn(c, ERR_WRITE);
    return;
  }
  avail_refresh(c);
  dispatch();
  maybe_finish(uv_hrtime());
}

/* Writes one request on c (which can_take) due at `intended`. May close c on
 * a write error. */
static void send_one(lg_conn_t *c, uint64_t intended, uint64_t now) {
  size_t pi = g.next_path++;
  if (g.next_path == g.npaths) g.next_path = 0;
  uv_buf_t bufs[4] = {
      uv_buf_init(g.req_prefix, (unsigned)g.prefix_len),
      uv_buf_init(g.paths + g.path_off[pi], (unsigned)g.path_len[pi]),
      uv_buf_init(g.req_suffix, (unsigned)g.suffix_len),
      uv_buf_init(g.body.data, (unsigned)g.body.len),
  };
  unsigned nb = g.body.len ? 4 : 3;
  size_t total = g.prefix_len + g.path_len[pi] + g.suffix_len + g.body.len;

  unsigned slot = (c->head + c->inflight) % (unsigned)g.o.pipeline;
  c->intended[slot] = intended;
  c->sent[slot] = now;
  c->inflight++;
  g.inflight++;
  if (intended >= g.t_measure) {
    g.st.sent++;
    g.st.bytes_written += total;
  }

  int n = uv_try_write((uv_stream_t *)&c->tcp, bufs, nb);
  if (n == UV_EAGAIN) n = 0;
  if (n < 0) {
    close_conn(c, ERR_WRITE);
    return;
  }
  if ((size_t)n < total) { /* socket buffer full: hand the rest to libuv */
    unsigned first = 0;
    size_t skip = (size_t)n;
    while (skip >= bufs[first].len) skip -= bufs[first++].len;
    bufs[first].base += skip;
    bufs[first].len -= skip;
    c->wreq.data = c;
    int r = uv_write(&c->wreq, (uv_stream_t *)&c->tcp, bufs + first, nb - first, on_write);
    if (r < 0) {
      close_conn(c, ERR_WRITE);
      return;
    }
    c->writing = true;
  }
  avail_refresh(c);
}

/* Sends every request that is due and has a free connection. Safe to call
 * from any callback except the parser's. */
static void dispatch(void) {
  if (!g.started || g.finishing) return;
  if (g.o.rate > 0) {
    while (g.avail_head && g.dispatched < g.scheduled) {
      lg_conn_t *c = g.avail_head;
      avail_remove(c); /* rotate: back to the tail if it can take more */
      send_one(c, intended_at(g.dispatched++), uv_hrtime());
      if (c->in_avail) { /* still free (pipelining): keep it at the tail */
        avail_remove(c);
        avail_append(c);
      }
    }
    return;
  }
  while (g.avail_head && !g.issue_done) {
    uint64_t now = uv_hrtime();
    if (now >= g.t_stop || (g.o.requests && g.issued >= g.o.requests)) {
      g.issue_done = true;
      g.drain_deadline = now + (uint64_t)(g.o.timeout * NS);
      break;
    }
    lg_conn_t *c = g.avail_head;
    avail_remove(c);
    if (now >= g.t_measure) g.issued++;
    send_one(c, now, now);
    if (c->in_avail) {
      avail_remove(c);
      avail_append(c);
    }
  }
}

/* ---- open-loop clock ---------------------------------------------------- */

static void tfd_arm(uint64_t at) {
  struct itimerspec its = {0};
  its.it_value.tv_sec = (time_t)(at / NS);
  its.it_value.tv_nsec = (long)(at % NS);
  if (its.it_value.tv_sec == 0 && its.it_value.tv_nsec == 0) its.it_value.tv_nsec = 1; /* 0 would disarm */
  if (timerfd_settime(g.tfd, TFD_TIMER_ABSTIME, &its, NULL) < 0) {
    fprintf(stderr, "loadgen: timerfd_settime: %s\n", strerror(errno));
    abort();
  }
}

/* Marks every request whose intended time has come as due, sends what it
 * can, and arms the clock for the next one. */
static void schedule(void) {
  if (g.finishing || g.issue_done) return;
  uint64_t now = uv_hrtime();
  while (g.scheduled < g.sched_limit && intended_at(g.scheduled) <= now) g.scheduled++;
  dispatch();
  if (g.scheduled < g.sched_limit) {
    tfd_arm(intended_at(g.scheduled));
  } else {
    g.issue_done = true;
    g.drain_deadline = now + (uint64_t)(g.o.timeout * NS);
  }
}

static void on_tfd(uv_poll_t *p, int status, int events) {
  uint64_t expirations;
  while (read(g.tfd, &expirations, sizeof expirations) > 0) {
  }
  schedule();
  maybe_finish(uv_hrtime());
}

/* ---- responses ------------------------------------------------------------ */

static int on_headers_complete(llhttp_t *p) { return g.o.head ? 1 : 0; /* 1: no body follows */ }

static int on_message_complete(llhttp_t *p) {
  lg_conn_t *c = p->data;
  if (c->inflight == 0) return -1; /* a response nobody asked for: parse error */
  uint64_t now = uv_hrtime();
  uint64_t intended = c->intended[c->head], sent = c->sent[c->head];
  c->head = (c->head + 1) % (unsigned)g.o.pipeline;
  c->inflight--;
  g.inflight--;
  if (intended >= g.t_measure) {
    bd_hist_record(&g.st.lat, (now - intended) / 1000);
    bd_hist_record(&g.st.svc, (now - sent) / 1000);
    unsigned s = p->status_code;
    if (s < 600) g.st.status[s]++;
    else g.st.status_other++;
    g.st.completed++;
    g.last_done = now;
  }
  if (!llhttp_should_keep_alive(p)) c->close_after = true;
  avail_refresh(c);
  return 0;
}

static llhttp_settings_t g_settings;

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) { *buf = uv_buf_init(g_rbuf, sizeof g_rbuf); }

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  lg_conn_t *c = s->data;
  if (c->state != LG_OPEN) return;
  if (nread > 0) {
    if (g.started && uv_hrtime() >= g.t_measure) g.st.bytes_read += (uint64_t)nread;
    llhttp_errno_t e = llhttp_execute(&c->parser, buf->base, (size_t)nread);
    if (e != HPE_OK) close_conn(c, ERR_PARSE);
    else if (c->close_after) close_conn(c, ERR_CLOSED); /* pipelined requests behind it are lost */
  } else if (nread == UV_EOF) {
    /* a response delimited by the end of the connection completes now */
    if (llhttp_finish(&c->parser) != HPE_OK) close_conn(c, ERR_PARSE);
    else close_conn(c, ERR_CLOSED);
  } else if (nread < 0) {
    close_conn(c, ERR_READ);
  }
  dispatch();
  maybe_finish(uv_hrtime());
}

/* ---- connections ---------------------------------------------------------- */

static void start_run(void);

/* The first connect attempt of c succeeded or failed: once every
 * connection's has, the schedule starts. */
static void first_attempt_done(lg_conn_t *c) {
  if (!c->first_attempt) return;
  c->first_attempt = false;
  if (--g.initial_pending == 0) start_run();
}

static void on_close(uv_handle_t *h) {
  lg_conn_t *c = h->data;
  c->state = LG_DOWN;
  if (g.finishing) return;
  uint64_t now = uv_hrtime();
  if (c->close_why == ERR_CONNECT || c->close_why == ERR_READ) { /* back off from a refusing server */
    c->retry_at = now + c->backoff;
    c->backoff = c->backoff * 2 > NS ? NS : c->backoff * 2;
  } else {
    c->retry_at = now;
  }
  if (c->retry_at <= now) conn_connect(c);
}

/* Closes c (unless already closing), counting its in-flight requests as
 * lost to `why`. c is reusable only after on_close. */
static void close_conn(lg_conn_t *c, lg_err_t why) {
  if (c->state == LG_CLOSING || c->state == LG_DOWN) return;
  avail_remove(c);
  for (unsigned i = 0; i < c->inflight; i++)
    if (c->intended[(c->head + i) % (unsigned)g.o.pipeline] >= g.t_measure) g.st.err[why]++;
  g.inflight -= c->inflight;
  c->inflight = 0;
  c->head = 0;
  c->close_why = why;
  c->state = LG_CLOSING;
  uv_close((uv_handle_t *)&c->tcp, on_close);
}

static void on_connect(uv_connect_t *req, int status) {
  lg_conn_t *c = req->data;
  if (status == UV_ECANCELED || c->state != LG_CONNECTING) return; /* closed meanwhile */
  if (status < 0) {
    g.st.err[ERR_CONNECT]++;
    close_conn(c, ERR_CONNECT);
  } else {
    c->state = LG_OPEN;
    c->backoff = 10000000; /* 10 ms */
    c->close_after = false;
    llhttp_init(&c->parser, HTTP_RESPONSE, &g_settings);
    c->parser.data = c;
    g.st.connects++;
    int r = uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    if (r < 0) close_conn(c, ERR_READ);
    else avail_refresh(c);
  }
  first_attempt_done(c);
  dispatch();
}

static void conn_connect(lg_conn_t *c) {
  uv_tcp_init(g.loop, &c->tcp);
  c->tcp.data = c;
  c->creq.data = c;
  c->state = LG_CONNECTING;
  c->since = uv_hrtime();
  c->writing = false;
  c->close_after = false;
  int r = uv_tcp_connect(&c->creq, &c->tcp, (const struct sockaddr *)&g.o.addr, on_connect);
  if (r < 0) { /* e.g. EMFILE */
    g.st.err[ERR_CONNECT]++;
    close_conn(c, ERR_CONNECT);
    first_attempt_done(c);
    return;
  }
  uv_tcp_nodelay(&c->tcp, 1);
}

/* ---- run control --------------------------------------------------------- */

static void start_run(void) {
  if (g.started) return;
  g.started = true;
  g.t0 = uv_hrtime();
  g.t_measure = g.t0 + (uint64_t)(g.o.warmup * NS);
  g.t_stop = g.o.duration > 0 ? g.t_measure + (uint64_t)(g.o.duration * NS) : UINT64_MAX;
  if (g.o.rate > 0) {
    g.interval_ns = 1e9 / g.o.rate;
    uint64_t by_time = UINT64_MAX, by_count = UINT64_MAX;
    if (g.o.duration > 0) by_time = (uint64_t)ceil((g.o.warmup + g.o.duration) * g.o.rate - 1e-9);
    if (g.o.requests) by_count = (uint64_t)ceil(g.o.warmup * g.o.rate - 1e-9) + g.o.requests;
    g.sched_limit = by_time < by_count ? by_time : by_count;
    schedule();
  } else {
    dispatch();
  }
}

static void close_all_handles(void);

/* Ends the run: whatever is still queued or in flight is counted as
 * unfinished; every handle is closed and uv_run returns. */
static void finish(void) {
  if (g.finishing) return;
  g.t_end = uv_hrtime();
  if (g.o.rate > 0)
    for (uint64_t i = g.dispatched; i < g.scheduled; i++)
      if (intended_at(i) >= g.t_measure) g.st.err[ERR_UNFINISHED]++;
  for (int i = 0; i < g.o.connections; i++) close_conn(&g.conns[i], ERR_UNFINISHED);
  g.finishing = true;
  close_all_handles();
}

static void maybe_finish(uint64_t now) {
  if (!g.started || g.finishing || !g.issue_done) return;
  bool queued = g.o.rate > 0 && g.dispatched < g.scheduled;
  if ((g.inflight == 0 && !queued) || now >= g.drain_deadline) finish();
}

static void on_tick(uv_timer_t *t) {
  /* requests sent during this tick have times after `now`: compare by
   * adding, never by subtracting */
  uint64_t now = uv_hrtime();
  uint64_t tmo = (uint64_t)(g.o.timeout * NS);
  if (!g.started && now > g.launch + tmo) start_run(); /* some connects never answered */
  for (int i = 0; i < g.o.connections; i++) {
    lg_conn_t *c = &g.conns[i];
    if (c->state == LG_CONNECTING && now > c->since + tmo) {
      g.st.err[ERR_CONNECT]++;
      close_conn(c, ERR_CONNECT);
      first_attempt_done(c);
    } else if (c->state == LG_OPEN && c->inflight && now > c->sent[c->head] + tmo) {
      close_conn(c, ERR_TIMEOUT);
    } else if (c->state == LG_DOWN && now >= c->retry_at) {
      conn_connect(c);
    }
  }
  if (g.started && g.o.rate == 0) dispatch(); /* notices t_stop when nothing else happens */
  if (g.started && g.o.rate == 0 && !g.issue_done && now >= g.t_stop) {
    g.issue_done = true;
    g.drain_deadline = now + tmo;
  }
  maybe_finish(now);
}

static void on_sigint(uv_signal_t *s, int signum) {
  if (++g.sigints > 1 || !g.started) {
    finish();
    return;
  }
  fprintf(stderr, "loadgen: interrupted, draining (^C again to stop now)\n");
  uint64_t now = uv_hrtime();
  g.issue_done = true;
  g.drain_deadline = now + (uint64_t)(g.o.timeout * NS);
  maybe_finish(now);
}

static void on_tfd_closed(uv_handle_t *h) { close(g.tfd); }

static void close_all_handles(void) {
  uv_timer_stop(&g.tick);
  uv_close((uv_handle_t *)&g.tick, NULL);
  uv_signal_stop(&g.sigint);
  uv_close((uv_handle_t *)&g.sigint, NULL);
  if (g.o.rate > 0) {
    uv_poll_stop(&g.tfd_poll);
    uv_close((uv_handle_t *)&g.tfd_poll, on_tfd_closed);
  }
}

/* ---- output ------------------------------------------------------------------ */

static double ms(uint64_t us) { return (double)us / 1000.0; }

static double elapsed_s(void) {
  /* from the end of the warm-up to the last measured completion */
  uint64_t end = g.last_done > g.t_measure ? g.last_done : g.t_end;
  return end > g.t_measure ? (double)(end - g.t_measure) / 1e9 : 0.0;
}

static uint64_t err_total(void) {
  uint64_t n = 0;
  for (int i = ERR_CONNECT; i < ERR_N; i++) n += g.st.err[i];
  return n;
}

static void json_str(FILE *f, const char *s) {
  fputc('"', f);
  for (; *s; s++) {
    unsigned char ch = (unsigned char)*s;
    if (ch == '"' || ch == '\\') fprintf(f, "\\%c", ch);
    else if (ch < 0x20) fprintf(f, "\\u%04x", ch);
    else fputc(ch, f);
  }
  fputc('"', f);
}

static void json_lat(FILE *f, const bd_hist_t *h) {
  fprintf(f, "\"p50_ms\":%.3f,\"p90_ms\":%.3f,\"p99_ms\":%.3f,\"p99_9_ms\":%.3f,\"max_ms\":%.3f,\"mean_ms\":%.3f,"
             "\"min_ms\":%.3f",
          ms(bd_hist_percentile(h, 50)), ms(bd_hist_percentile(h, 90)), ms(bd_hist_percentile(h, 99)),
          ms(bd_hist_percentile(h, 99.9)), ms(bd_hist_max(h)), bd_hist_mean(h) / 1000.0, ms(bd_hist_min(h)));
}

static void write_json(FILE *f) {
  double el = elapsed_s();
  fprintf(f, "{\"mode\":\"%s\",\"url\":", g.o.rate > 0 ? "open" : "closed");
  json_str(f, g.o.url);
  fprintf(f, ",\"method\":");
  json_str(f, g.o.method);
  fprintf(f, ",\"connections\":%d,\"pipeline\":%d,\"target_rate\":%.3f,\"rate\":%.3f,\"requests\":%" PRIu64
             ",\"sent\":%" PRIu64 ",\"duration_s\":%.3f,\"warmup_s\":%.3f,",
          g.o.connections, g.o.pipeline, g.o.rate, el > 0 ? (double)g.st.completed / el : 0.0, g.st.completed,
          g.st.sent, el, g.o.warmup);
  json_lat(f, &g.st.lat);
  fprintf(f, ",\"latency_from\":\"%s\",\"service\":{", g.o.rate > 0 ? "intended" : "sent");
  json_lat(f, &g.st.svc);
  fprintf(f, "},\"status\":{");
  bool first = true;
  for (int s = 0; s < 600; s++)
    if (g.st.status[s]) {
      fprintf(f, "%s\"%d\":%" PRIu64, first ? "" : ",", s, g.st.status[s]);
      first = false;
    }
  if (g.st.status_other) fprintf(f, "%s\"other\":%" PRIu64, first ? "" : ",", g.st.status_other);
  fprintf(f, "},\"errors\":{");
  for (int i = ERR_CONNECT; i < ERR_N; i++) fprintf(f, "\"%s\":%" PRIu64 ",", k_err_names[i], g.st.err[i]);
  fprintf(f, "\"total\":%" PRIu64 "},\"connects\":%" PRIu64 ",\"bytes\":{\"read\":%" PRIu64 ",\"written\":%" PRIu64
             "}}\n",
          err_total(), g.st.connects, g.st.bytes_read, g.st.bytes_written);
}

static const char *human_bytes(uint64_t b, char *buf, size_t n) {
  const char *u[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = (double)b;
  int i = 0;
  while (v >= 1024 && i < 4) {
    v /= 1024;
    i++;
  }
  snprintf(buf, n, i ? "%.2f %s" : "%.0f %s", v, u[i]);
  return buf;
}

static void human_lat(FILE *f, const char *label, const bd_hist_t *h) {
  fprintf(f, "  %-9s mean %.3f  p50 %.3f  p90 %.3f  p99 %.3f  p99.9 %.3f  max %.3f ms\n", label,
          bd_hist_mean(h) / 1000.0, ms(bd_hist_percentile(h, 50)), ms(bd_hist_percentile(h, 90)),
          ms(bd_hist_percentile(h, 99)), ms(bd_hist_percentile(h, 99.9)), ms(bd_hist_max(h)));
}

static void write_human(FILE *f) {
  double el = elapsed_s();
  char b1[32], b2[32];
  if (g.o.rate > 0)
    fprintf(f, "loadgen: open loop at %.1f req/s over %d connection(s)", g.o.rate, g.o.connections);
  else
    fprintf(f, "loadgen: closed loop, %d connection(s)", g.o.connections);
  if (g.o.pipeline > 1) fprintf(f, ", pipeline %d", g.o.pipeline);
  fprintf(f, ", %s %s\n", g.o.method, g.o.url);
  fprintf(f, "  requests  %" PRIu64 " completed of %" PRIu64 " sent in %.3f s (warm-up %.3f s excluded): %.1f req/s\n",
          g.st.completed, g.st.sent, el, g.o.warmup, el > 0 ? (double)g.st.completed / el : 0.0);
  human_lat(f, "latency", &g.st.lat);
  if (g.o.rate > 0) {
    fprintf(f, "            (latency counts from each request's intended send time; service time from the write)\n");
    human_lat(f, "service", &g.st.svc);
  }
  fprintf(f, "  status   ");
  for (int s = 0; s < 600; s++)
    if (g.st.status[s]) fprintf(f, " %d: %" PRIu64, s, g.st.status[s]);
  if (g.st.status_other) fprintf(f, " other: %" PRIu64, g.st.status_other);
  fprintf(f, "\n  errors    %" PRIu64, err_total());
  for (int i = ERR_CONNECT; i < ERR_N; i++)
    if (g.st.err[i]) fprintf(f, " %s %" PRIu64, k_err_names[i], g.st.err[i]);
  fprintf(f, "\n  transfer  read %s, written %s, %" PRIu64 " connect(s)\n", human_bytes(g.st.bytes_read, b1, sizeof b1),
          human_bytes(g.st.bytes_written, b2, sizeof b2), g.st.connects);
}

/* ---- setup ------------------------------------------------------------------- */

static void usage(FILE *f) {
  fprintf(f,
          "usage: loadgen [options] http://HOST:PORT/PATH\n"
          "  -c, --connections N   keep-alive connections (16)\n"
          "  -r, --rate R          open loop: R requests/s on a fixed schedule; without it, closed loop\n"
          "  -d, --duration S      measured seconds (10 unless --requests is given)\n"
          "  -n, --requests N      measured requests to send (stops at whichever of -d/-n comes first)\n"
          "  -w, --warmup S        seconds before measuring (0)\n"
          "      --pipeline N      requests in flight per connection (1)\n"
          "  -t, --timeout S       connect and response timeout, seconds (10)\n"
          "  -m, --method M        GET, or POST when there is a body\n"
          "  -H, --header 'N: V'   add a request header (repeatable)\n"
          "      --body-file F     request body from file F\n"
          "      --gen SPEC        generated body: qr-batch:N | csv-multipart:N | rpc:JSON\n"
          "      --field K=V       form field of --gen csv-multipart (name, template_id, ...)\n"
          "      --paths-file F    paths (or URLs on the same host) to rotate through, one per line\n"
          "      --json FILE       write the result as one JSON object to FILE ('-': stdout)\n"
          "  -q, --quiet           no human summary\n"
          "  -h, --help\n");
}

static int parse_url(const char *url, lg_opts_t *o, const char **path) {
  if (strncmp(url, "http://", 7)) return -1;
  const char *h = url + 7, *end = h + strcspn(h, ":/");
  if (end == h || (size_t)(end - h) >= sizeof o->host) return -1;
  memcpy(o->host, h, (size_t)(end - h));
  o->host[end - h] = 0;
  o->port = 80;
  if (*end == ':') {
    char *e;
    long p = strtol(end + 1, &e, 10);
    if (e == end + 1 || p < 1 || p > 65535 || (*e && *e != '/')) return -1;
    o->port = (int)p;
    end = e;
  }
  *path = *end ? end : "/";
  const char *ip = strcmp(o->host, "localhost") ? o->host : "127.0.0.1";
  return uv_ip4_addr(ip, o->port, &o->addr) ? -1 : 0;
}

/* Paths to rotate through: a file of lines, or the URL's one path. */
static int load_paths(const char *file, const char *url_path) {
  size_t cap = 16;
  g.path_off = malloc(cap * sizeof *g.path_off);
  g.path_len = malloc(cap * sizeof *g.path_len);
  if (!file) {
    g.paths = strdup(url_path);
    g.path_off[0] = 0;
    g.path_len[0] = strlen(url_path);
    g.npaths = 1;
    return 0;
  }
  lg_body_t f;
  char err[256];
  if (lg_body_from_file(&f, file, err, sizeof err)) {
    fprintf(stderr, "loadgen: --paths-file %s\n", err);
    return -1;
  }
  g.paths = f.data;
  for (size_t i = 0; i < f.len;) {
    size_t j = i;
    while (j < f.len && f.data[j] != '\n') j++;
    size_t s = i, e = j;
    i = j + 1;
    while (e > s && (f.data[e - 1] == '\r' || f.data[e - 1] == ' ' || f.data[e - 1] == '\t')) e--;
    while (s < e && (f.data[s] == ' ' || f.data[s] == '\t')) s++;
    if (s == e || f.data[s] == '#') continue;
    if (e - s > 7 && !memcmp(f.data + s, "http://", 7)) { /* full URL: keep its path */
      size_t k = s + 7;
      while (k < e && f.data[k] != '/') k++;
      if (k == e) continue;
      s = k;
    }
    if (f.data[s] != '/') {
      fprintf(stderr, "loadgen: --paths-file: not a path: %.*s\n", (int)(e - s), f.data + s);
      return -1;
    }
    if (g.npaths == cap) {
      cap *= 2;
      g.path_off = realloc(g.path_off, cap * sizeof *g.path_off);
      g.path_len = realloc(g.path_len, cap * sizeof *g.path_len);
      if (!g.path_off || !g.path_len) return -1;
    }
    g.path_off[g.npaths] = s;
    g.path_len[g.npaths] = e - s;
    g.npaths++;
  }
  if (!g.npaths) {
    fprintf(stderr, "loadgen: --paths-file %s: no paths\n", file);
    return -1;
  }
  return 0;
}

static bool has_header(char **hdrs, int n, const char *name) {
  size_t l = strlen(name);
  for (int i = 0; i < n; i++)
    if (!strncasecmp(hdrs[i], name, l) && hdrs[i][l] == ':') return true;
  return false;
}

static int build_request(char **hdrs, int nh) {
  g.prefix_len = strlen(g.o.method) + 1;
  g.req_prefix = malloc(g.prefix_len + 1);
  snprintf(g.req_prefix, g.prefix_len + 1, "%s ", g.o.method);
  size_t cap = 256 + strlen(g.o.host) + strlen(g.body.content_type);
  for (int i = 0; i < nh; i++) cap += strlen(hdrs[i]) + 2;
  g.req_suffix = malloc(cap);
  size_t n = (size_t)snprintf(g.req_suffix, cap, " HTTP/1.1\r\n");
  if (!has_header(hdrs, nh, "Host")) n += (size_t)snprintf(g.req_suffix + n, cap - n, "Host: %s:%d\r\n", g.o.host, g.o.port);
  for (int i = 0; i < nh; i++) n += (size_t)snprintf(g.req_suffix + n, cap - n, "%s\r\n", hdrs[i]);
  if (g.body.len || strcmp(g.o.method, "GET")) {
    if (g.body.content_type[0] && g.body.len && !has_header(hdrs, nh, "Content-Type"))
      n += (size_t)snprintf(g.req_suffix + n, cap - n, "Content-Type: %s\r\n", g.body.content_type);
    if (!has_header(hdrs, nh, "Content-Length"))
      n += (size_t)snprintf(g.req_suffix + n, cap - n, "Content-Length: %zu\r\n", g.body.len);
  }
  n += (size_t)snprintf(g.req_suffix + n, cap - n, "\r\n");
  g.suffix_len = n;
  return n < cap ? 0 : -1;
}

static double parse_num(const char *s, const char *what, double lo, double hi) {
  char *e;
  errno = 0;
  double v = strtod(s, &e);
  if (errno || e == s || *e || !(v >= lo && v <= hi)) {
    fprintf(stderr, "loadgen: bad %s '%s' (%g..%g)\n", what, s, lo, hi);
    exit(2);
  }
  return v;
}

int main(int argc, char **argv) {
  enum { OPT_PIPELINE = 256, OPT_BODY_FILE, OPT_GEN, OPT_FIELD, OPT_PATHS, OPT_JSON };
  static const struct option longopts[] = {
      {"connections", required_argument, NULL, 'c'}, {"rate", required_argument, NULL, 'r'},
      {"duration", required_argument, NULL, 'd'},    {"requests", required_argument, NULL, 'n'},
      {"warmup", required_argument, NULL, 'w'},      {"timeout", required_argument, NULL, 't'},
      {"method", required_argument, NULL, 'm'},      {"header", required_argument, NULL, 'H'},
      {"pipeline", required_argument, NULL, OPT_PIPELINE},
      {"body-file", required_argument, NULL, OPT_BODY_FILE},
      {"gen", required_argument, NULL, OPT_GEN},     {"field", required_argument, NULL, OPT_FIELD},
      {"paths-file", required_argument, NULL, OPT_PATHS},
      {"json", required_argument, NULL, OPT_JSON},   {"quiet", no_argument, NULL, 'q'},
      {"help", no_argument, NULL, 'h'},              {NULL, 0, NULL, 0}};
  lg_opts_t *o = &g.o;
  o->connections = 16;
  o->pipeline = 1;
  o->timeout = 10;
  o->duration = -1;
  char **hdrs = calloc((size_t)argc, sizeof *hdrs);
  lg_field_t *fields = calloc((size_t)argc, sizeof *fields);
  int nh = 0, nf = 0;
  const char *body_file = NULL, *gen = NULL, *paths_file = NULL;
  int ch;
  while ((ch = getopt_long(argc, argv, "c:r:d:n:w:t:m:H:qh", longopts, NULL)) != -1) {
    switch (ch) {
    case 'c': o->connections = (int)parse_num(optarg, "--connections", 1, LG_CONN_MAX); break;
    case 'r': o->rate = parse_num(optarg, "--rate", 0.001, 1e8); break;
    case 'd': o->duration = parse_num(optarg, "--duration", 0.001, 1e7); break;
    case 'n': o->requests = (uint64_t)parse_num(optarg, "--requests", 1, 1e15); break;
    case 'w': o->warmup = parse_num(optarg, "--warmup", 0, 1e6); break;
    case 't': o->timeout = parse_num(optarg, "--timeout", 0.001, 1e6); break;
    case 'm': o->method = optarg; break;
    case 'H':
      if (!strchr(optarg, ':')) {
        fprintf(stderr, "loadgen: -H wants 'Name: value', got '%s'\n", optarg);
        return 2;
      }
      hdrs[nh++] = optarg;
      break;
    case OPT_PIPELINE: o->pipeline = (int)parse_num(optarg, "--pipeline", 1, LG_PIPE_MAX); break;
    case OPT_BODY_FILE: body_file = optarg; break;
    case OPT_GEN: gen = optarg; break;
    case OPT_FIELD: {
      const char *eq = strchr(optarg, '=');
      if (!eq || eq == optarg) {
        fprintf(stderr, "loadgen: --field wants NAME=VALUE, got '%s'\n", optarg);
        return 2;
      }
      fields[nf++] = (lg_field_t){optarg, (size_t)(eq - optarg), eq + 1};
      break;
    }
    case OPT_PATHS: paths_file = optarg; break;
    case OPT_JSON: o->json_path = optarg; break;
    case 'q': o->quiet = true; break;
    case 'h': usage(stdout); return 0;
    default: usage(stderr); return 2;
    }
  }
  if (optind != argc - 1) {
    usage(stderr);
    return 2;
  }
  o->url = argv[optind];
  const char *url_path;
  if (parse_url(o->url, o, &url_path)) {
    fprintf(stderr, "loadgen: URL must be http://IPV4-OR-localhost[:PORT][/PATH], got '%s'\n", o->url);
    return 2;
  }
  if (o->duration < 0) o->duration = o->requests ? 0 : 10;
  if (body_file && gen) {
    fprintf(stderr, "loadgen: --body-file and --gen exclude each other\n");
    return 2;
  }
  char err[256];
  if ((body_file && lg_body_from_file(&g.body, body_file, err, sizeof err)) ||
      (gen && lg_body_generate(&g.body, gen, fields, (size_t)nf, err, sizeof err))) {
    fprintf(stderr, "loadgen: %s\n", err);
    return 2;
  }
  if (g.body.len > UINT32_MAX / 2) {
    fprintf(stderr, "loadgen: body too large\n");
    return 2;
  }
  if (!o->method) o->method = g.body.len ? "POST" : "GET";
  o->head = !strcasecmp(o->method, "HEAD");
  if (load_paths(paths_file, url_path) || build_request(hdrs, nh)) return 2;

  if (bd_hist_init(&g.st.lat, LG_HIST_MAX, 3) || bd_hist_init(&g.st.svc, LG_HIST_MAX, 3)) {
    fprintf(stderr, "loadgen: out of memory\n");
    return 1;
  }
  llhttp_settings_init(&g_settings);
  g_settings.on_headers_complete = on_headers_complete;
  g_settings.on_message_complete = on_message_complete;

  struct rlimit rl; /* one descriptor per connection: raise the soft limit if needed */
  if (!getrlimit(RLIMIT_NOFILE, &rl) && rl.rlim_cur < (rlim_t)o->connections + 64) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  g.loop = uv_default_loop();
  g.conns = calloc((size_t)o->connections, sizeof *g.conns);
  uint64_t *rings = calloc((size_t)o->connections * (size_t)o->pipeline * 2, sizeof *rings);
  if (!g.conns || !rings) {
    fprintf(stderr, "loadgen: out of memory\n");
    return 1;
  }
  g.t_measure = UINT64_MAX; /* nothing is measured before start_run */
  uv_timer_init(g.loop, &g.tick);
  uv_timer_start(&g.tick, on_tick, LG_TICK_MS, LG_TICK_MS);
  uv_signal_init(g.loop, &g.sigint);
  uv_signal_start(&g.sigint, on_sigint, SIGINT);
  if (o->rate > 0) {
    g.tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (g.tfd < 0 || uv_poll_init(g.loop, &g.tfd_poll, g.tfd) || uv_poll_start(&g.tfd_poll, UV_READABLE, on_tfd)) {
      fprintf(stderr, "loadgen: timerfd: %s\n", strerror(errno));
      return 1;
    }
  }
  g.launch = uv_hrtime();
  g.initial_pending = o->connections;
  for (int i = 0; i < o->connections; i++) {
    lg_conn_t *c = &g.conns[i];
    c->intended = rings + (size_t)i * (size_t)o->pipeline * 2;
    c->sent = c->intended + o->pipeline;
    c->backoff = 10000000;
    c->first_attempt = true;
    conn_connect(c);
  }
  uv_run(g.loop, UV_RUN_DEFAULT);
  int rc = uv_loop_close(g.loop);
  if (rc) fprintf(stderr, "loadgen: uv_loop_close: %s\n", uv_strerror(rc));

  if (o->json_path) {
    FILE *f = strcmp(o->json_path, "-") ? fopen(o->json_path, "w") : stdout;
    if (!f) {
      fprintf(stderr, "loadgen: %s: %s\n", o->json_path, strerror(errno));
      return 1;
    }
    write_json(f);
    if (f != stdout) fclose(f);
  }
  if (!o->quiet) write_human(o->json_path && !strcmp(o->json_path, "-") ? stderr : stdout);

  bd_hist_free(&g.st.lat);
  bd_hist_free(&g.st.svc);
  lg_body_free(&g.body);
  free(g.paths);
  free(g.path_off);
  free(g.path_len);
  free(g.req_prefix);
  free(g.req_suffix);
  free(rings);
  free(g.conns);
  free(hdrs);
  free(fields);
  return rc ? 1 : 0;
}

/* pg.c: non-blocking libpq connections on uv_poll_t, pipelined queries.
 *
 * Every query is an op_t. Ops wait in the pool's FIFO until a connection can
 * take them; on a shared connection they are sent as
 *   [Parse (first use of the statement here)] Execute Sync
 * and answered in order from the connection's in-flight FIFO: each op reads
 * its prepare's results up to NULL, its own results up to NULL, then its
 * PGRES_PIPELINE_SYNC. The per-op Sync confines an error to its own op.
 *
 * A pinned connection leaves pipeline mode and runs its owner's ops one at
 * a time (transactions, multi-statement scripts, COPY).
 *
 * Callbacks are never run from inside a public function: failures found
 * there are put on the `deferred` list and delivered from an idle handle.
 */
#include "pg.h"

#include "buf.h"
#include "log.h"

#include <stdio.h>
#include <stdlib.h>

#define COPY_HIGH_WATER (256 * 1024)
#define COPY_LOW_WATER (64 * 1024)
#define COPY_CHUNK (64 * 1024)
#define SWEEP_MS 100

typedef enum { OP_QUERY, OP_EXEC, OP_ACQUIRE, OP_COPY_START, OP_COPY_END, OP_ROLLBACK } op_kind_t;

typedef struct op op_t;
struct op {
  op_t *next;               /* FIFO link */
  op_kind_t kind;           /* what it is */
  bd_pg_stmt_t *stmt;       /* OP_QUERY */
  char *sql;                /* OP_EXEC / OP_COPY_START (owned) */
  int nparams;              /* parameters */
  char **params;            /* owned copies (NULL entries are SQL NULL) */
  int *lens;                /* binary parameters: byte lengths (NULL: all text) */
  int *fmts;                /* binary parameters: 1 binary, 0 text (NULL: all text) */
  bd_pg_cb cb;              /* query completion */
  bd_pg_acquire_cb acb;     /* OP_ACQUIRE completion */
  void *ud;                 /* callback argument */
  uint64_t enq_ms;          /* when queued (staleness) */
  bool sent_prepare;        /* a Parse precedes it in the pipeline */
  int phase;                /* 0 prepare results, 1 own results, 2 awaiting sync */
  PGresult *res;            /* last result of its own */
  int err;                  /* first error */
  char sqlstate[6];         /* of the first error */
  char *errmsg;             /* of the first error (owned) */
  char *errdetail;          /* its DETAIL (owned, may be NULL) */
  char *errhint;            /* its HINT (owned, may be NULL) */
  bd_pg_conn_t *conn;       /* for deferred acquire */
};

static inline bool op_is_bg(const op_t *o) {
  return o->kind == OP_QUERY && o->stmt && o->stmt->background;
}

typedef enum { C_DOWN, C_CONNECTING, C_READY, C_PINNED, C_CLOSED } conn_state_t;

struct bd_pg_conn {
  bd_pg_pool_t *pool;       /* owner */
  PGconn *pg;               /* libpq connection (NULL when down) */
  uv_poll_t *poll;          /* watcher of the current socket (heap: replaced when the fd changes) */
  int fd;                   /* socket the poll watches */
  int events;               /* events the poll watches */
  uv_timer_t timer;         /* connect timeout and reconnect backoff */
  conn_state_t state;       /* lifecycle */
  bool listener;            /* the LISTEN connection */
  bool ever_connected;      /* for on_reconnect and stats */
  bool pin_pending;         /* reserved for an acquire: no new shared queries */
  op_t *pin_op;             /* the acquire waiting for this connection to drain */
  op_t *inflight;           /* sent, awaiting results (FIFO) */
  op_t *inflight_tail;      /* tail of inflight */
  int ninflight;            /* length of inflight */
  int nbg;                  /* of which background statements (shared only) */
  op_t *pending;            /* pinned: ops not yet sent (FIFO) */
  op_t *pending_tail;       /* tail of pending */
  uint8_t *prepared;        /* prepared[stmt id] on this connection */
  int nprepared;            /* capacity of prepared */
  uint32_t backoff_ms;      /* next reconnect delay */
  bool broken;              /* pinned and dead: discard on release */
  bool logged_down;         /* the current outage has been logged */
  /* COPY IN */
  bool in_copy;             /* the server is in COPY IN state */
  bd_buf_t copybuf;         /* data not yet accepted by libpq */
  size_t copy_off;          /* consumed prefix of copybuf */
  void (*drain_cb)(void *); /* backpressure release */
  void *drain_ud;           /* its argument */
  op_t *copy_end;           /* OP_COPY_END waiting for copybuf to drain */
  bool copy_failed;         /* the server ended the COPY with an error */
  int listened;             /* channels already LISTENed on this session */
  int subscribed;           /* of which the server confirmed the LISTEN */
};

typedef struct {
  char *channel;            /* channel name */
  bd_pg_notify_cb cb;       /* payload callback */
  void (*on_reconnect)(void *);
  void *ud;
} listen_t;

struct bd_pg_pool {
  uv_loop_t *loop;          /* the loop */
  bd_pg_config_t cfg;       /* copy (strings owned below) */
  char *conninfo;           /* owned */
  char *appname;            /* owned */
  char *options;            /* libpq `options`: the conninfo's own + -c TimeZone=UTC (owned) */
  bd_pg_conn_t *conns;      /* cfg.nconns shared/pinnable connections */
  bd_pg_conn_t *lconn;      /* listener connection (NULL until bd_pg_listen) */
  listen_t *listens;        /* registered channels */
  int nlistens;
  op_t *queue, *queue_tail; /* waiting ops */
  int nqueued;
  op_t *deferred, *deferred_tail; /* completions to deliver from the idle handle */
  uv_idle_t idle;           /* delivers deferred completions */
  uv_timer_t sweep;         /* fails stale queued ops */
  int in_api;               /* > 0 while inside a public function */
  bool closing;             /* bd_pg_pool_close called */
  int handles;              /* open handles (timers, polls, idle) */
  void (*close_done)(void *);
  void *close_ud;
  bd_pg_stats_t stats;      /* counters */
};

static int g_next_stmt_id; /* statement ids are process-wide (atomic: see stmt_id) */

static void conn_start(bd_pg_conn_t *c);
static void conn_dead(bd_pg_conn_t *c, const char *why);
static void dispatch(bd_pg_pool_t *p);
static void conn_send_pending(bd_pg_conn_t *c);
static void pool_maybe_closed(bd_pg_pool_t *p);
static void copy_push(bd_pg_conn_t *c);
static void pinned_results(bd_pg_conn_t *c);
static void conn_close_handles(bd_pg_conn_t *c);

/* --- ops --------------------------------------------------------------------- */

static op_t *op_new(op_kind_t kind, int n, const char *const *params) {
  op_t *o = bd_calloc(1, sizeof *o);
  o->kind = kind;
  o->nparams = n;
  if (n > 0) {
    o->params = bd_calloc((size_t)n, sizeof *o->params);
    for (int i = 0; i < n; i++) o->params[i] = params[i] ? bd_strdup(params[i]) : NULL;
  }
  return o;
}

/* Parameters given with lengths and formats (bd_pg_query_bin): binary ones
 * are copied by length (they may hold NUL bytes). */
static op_t *op_new_bin(op_kind_t kind, int n, const char *const *params, const int *lens, const int *fmts) {
  op_t *o = bd_calloc(1, sizeof *o);
  o->kind = kind;
  o->nparams = n;
  if (n > 0) {
    o->params = bd_calloc((size_t)n, sizeof *o->params);
    o->lens = bd_calloc((size_t)n, sizeof *o->lens);
    o->fmts = bd_calloc((size_t)n, sizeof *o->fmts);
    for (int i = 0; i < n; i++) {
      o->fmts[i] = fmts[i] ? 1 : 0;
      if (!params[i]) continue;
      size_t len = o->fmts[i] ? (size_t)lens[i] : strlen(params[i]);
      o->params[i] = bd_malloc(len + 1);
      memcpy(o->params[i], params[i], len);
      o->params[i][len] = '\0';
      o->lens[i] = (int)len;
    }
  }
  return o;
}

static void op_free(op_t *o) {
  for (int i = 0; i < o->nparams; i++) free(o->params[i]);
  free(o->params);
  free(o->lens);
  free(o->fmts);
  free(o->sql);
  free(o->errmsg);
  free(o->errdetail);
  free(o->errhint);
  if (o->res) PQclear(o->res);
  free(o);
}

/* "s<id>", the name a statement is prepared under (no printf: once per query) */
static void stmt_name(char out[24], int id) {
  char d[12];
  int n = 0;
  unsigned v = (unsigned)id;
  do d[n++] = (char)('0' + v % 10);
  while ((v /= 10) != 0);
  out[0] = 's';
  for (int i = 0; i < n; i++) out[1 + i] = d[n - 1 - i];
  out[1 + n] = '\0';
}

static void op_set_error(op_t *o, int err, const char *state, const char *msg) {
  if (o->err) return;
  o->err = err;
  snprintf(o->sqlstate, sizeof o->sqlstate, "%s", state ? state : "");
  o->errmsg = bd_strdup(msg ? msg : "");
}

static void op_set_result_error(op_t *o, const PGresult *r) {
  if (o->err) return;
  const char *st = PQresultErrorField(r, PG_DIAG_SQLSTATE);
  const char *msg = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
  const char *det = PQresultErrorField(r, PG_DIAG_MESSAGE_DETAIL);
  const char *hint = PQresultErrorField(r, PG_DIAG_MESSAGE_HINT);
  op_set_error(o, BD_PG_ESQL, st, msg ? msg : PQresultErrorMessage(r));
  o->errdetail = det ? bd_strdup(det) : NULL;
  o->errhint = hint ? bd_strdup(hint) : NULL;
}

/* Runs the op's callback now and frees it. */
static void op_complete(bd_pg_pool_t *p, op_t *o) {
  if (o->kind == OP_ACQUIRE) {
    /* not a query: stays out of queries/errors */
    bd_pg_conn_t *c = o->err ? NULL : o->conn;
    o->acb(o->ud, c, o->err);
    op_free(o);
    return;
  }
  bd_pg_result_t r = {o->err, o->err == BD_PG_OK || o->err == BD_PG_ESQL ? o->res : NULL,
                      o->err ? o->sqlstate : "", o->err ? (o->errmsg ? o->errmsg : "") : "", o->errdetail,
                      o->errhint};
  p->stats.queries++;
  if (o->err) p->stats.errors++;
  if (o->cb) o->cb(o->ud, &r);
  op_free(o);
}

static void on_idle(uv_idle_t *h) {
  bd_pg_pool_t *p = h->data;
  op_t *list = p->deferred;
  p->deferred = p->deferred_tail = NULL;
  while (list) {
    op_t *o = list;
    list = o->next;
    op_complete(p, o);
  }
  if (!p->deferred) uv_idle_stop(h);
  pool_maybe_closed(p);
}

/* Completes an op: directly from loop callbacks, deferred inside API calls. */
static void op_finish(bd_pg_pool_t *p, op_t *o) {
  o->next = NULL;
  if (p->in_api > 0) {
    if (p->deferred_tail) p->deferred_tail->next = o;
    else p->deferred = o;
    p->deferred_tail = o;
    uv_idle_start(&p->idle, on_idle);
    return;
  }
  op_complete(p, o);
}

static void op_fail(bd_pg_pool_t *p, op_t *o, int err, const char *msg) {
  if (o->res) {
    PQclear(o->res);
    o->res = NULL;
  }
  free(o->errmsg);
  o->errmsg = NULL;
  o->err = 0;
  op_set_error(o, err, "", msg);
  op_finish(p, o);
}

static void fifo_push(op_t **head, op_t **tail, op_t *o) {
  o->next = NULL;
  if (*tail) (*tail)->next = o;
  else *head = o;
  *tail = o;
}

static op_t *fifo_pop(op_t **head, op_t **tail) {
  op_t *o = *head;
  if (o) {
    *head = o->next;
    if (!*head) *tail = NULL;
    o->next = NULL;
  }
  return o;
}

/* --- polling ------------------------------------------------------------------ */

static void on_poll(uv_poll_t *h, int status, int events);

static void poll_closed(uv_handle_t *h) {
  bd_pg_pool_t *p = ((bd_pg_conn_t *)h->data)->pool;
  free(h);
  p->handles--;
  pool_maybe_closed(p);
}

static void poll_drop(bd_pg_conn_t *c) {
  if (!c->poll) return;
  uv_poll_stop(c->poll);
  uv_close((uv_handle_t *)c->poll, poll_closed);
  c->poll = NULL;
  c->fd = -1;
  c->events = 0;
}

/* Watches the connection's current socket for `events`, replacing the poll
 * handle when libpq has moved to another socket. */
static void poll_watch(bd_pg_conn_t *c, int events) {
  int fd = PQsocket(c->pg);
  if (fd < 0) return;
  if (c->poll && c->fd != fd) poll_drop(c);
  if (!c->poll) {
    c->poll = bd_malloc(sizeof *c->poll);
    if (uv_poll_init(c->pool->loop, c->poll, fd) != 0) {
      free(c->poll);
      c->poll = NULL;
      return;
    }
    c->poll->data = c;
    c->pool->handles++;
    c->fd = fd;
    c->events = 0;
  }
  if (events != c->events) {
    uv_poll_start(c->poll, events, on_poll);
    c->events = events;
  }
}

/* Flushes libpq's output; watches writability only while it has more. */
static bool conn_flush(bd_pg_conn_t *c) {
  int rc = PQflush(c->pg);
  if (rc < 0) {
    conn_dead(c, PQerrorMessage(c->pg));
    return false;
  }
  /* writable interest only while something waits for it: libpq output,
   * buffered COPY data, or a drain callback to deliver on the next tick
   * (left on otherwise, a writable socket spins the loop) */
  bool want_w = rc == 1 || (c->in_copy && c->copybuf.len > c->copy_off) || c->drain_cb;
  int ev = UV_READABLE | (want_w ? UV_WRITABLE : 0);
  poll_watch(c, ev);
  return true;
}

/* --- connecting ----------------------------------------------------------------- */

static void on_timer(uv_timer_t *t);

static void schedule_reconnect(bd_pg_conn_t *c) {
  if (c->pool->closing) return;
  uint32_t d = c->backoff_ms ? c->backoff_ms : c->pool->cfg.reconnect_min_ms;
  c->backoff_ms = BD_MIN(d * 2, c->pool->cfg.reconnect_max_ms);
  uv_timer_start(&c->timer, on_timer, d, 0);
}

static void conn_ready(bd_pg_conn_t *c);

/* One PQconnectPoll step. libpq may close its socket inside PQconnectPoll
 * and open another (next host or address, SSL/GSS fallback), very likely
 * under the same fd number: a watcher left on the old socket would then
 * be registered for a descriptor the kernel already dropped from epoll
 * (libuv aborts on the next re-arm, or never reports the new socket). So
 * the watcher is stopped before every step and a fresh one is made for
 * whatever PQsocket is afterwards. A connect has a handful of steps. */
static void connect_step(bd_pg_conn_t *c) {
  poll_drop(c);
  PostgresPollingStatusType st = PQconnectPoll(c->pg);
  switch (st) {
  case PGRES_POLLING_OK:
    conn_ready(c);
    return;
  case PGRES_POLLING_READING:
    poll_watch(c, UV_READABLE);
    return;
  case PGRES_POLLING_WRITING:
    poll_watch(c, UV_WRITABLE);
    return;
  default:
    conn_dead(c, PQerrorMessage(c->pg));
    return;
  }
}

static void ignore_notice(void *arg, const char *message) {
  (void)arg;
  (void)message;
}

static void conn_start(bd_pg_conn_t *c) {
  bd_pg_pool_t *p = c->pool;
  /* expand_dbname: `dbname` holds the whole URL or conninfo string, and
   * parameters after it override the string's. application_name comes
   * before it so the URL may override it; options (p->options: the URL's
   * own options plus -c TimeZone=UTC) comes after so UTC always holds. */
  const char *keys[] = {"application_name", "dbname", "options", NULL};
  const char *vals[] = {p->appname, p->conninfo, p->options, NULL};
  c->pg = PQconnectStartParams(keys, vals, 1);
  if (!c->pg || PQstatus(c->pg) == CONNECTION_BAD) {
    conn_dead(c, c->pg ? PQerrorMessage(c->pg) : "out of memory");
    return;
  }
  PQsetnonblocking(c->pg, 1);
  PQsetNoticeProcessor(c->pg, ignore_notice, NULL); /* NOTICEs are not errors: keep stderr for our JSON log */
  c->state = C_CONNECTING;
  uv_timer_start(&c->timer, on_timer, p->cfg.connect_timeout_ms, 0);
  connect_step(c);
}

static void listener_send(bd_pg_conn_t *c);

static void conn_ready(bd_pg_conn_t *c) {
  bd_pg_pool_t *p = c->pool;
  uv_timer_stop(&c->timer);
  c->backoff_ms = 0;
  if (c->logged_down) bd_info("database connection re-established");
  c->logged_down = false;
  if (c->ever_connected) p->stats.reconnects++;
  bool reconnect = c->ever_connected;
  c->ever_connected = true;
  if (c->prepared) memset(c->prepared, 0, (size_t)c->nprepared);
  c->state = C_READY;
  if (c->listener) {
    c->listened = 0;
    c->subscribed = 0;
    poll_watch(c, UV_READABLE);
    listener_send(c);
    if (reconnect)
      for (int i = 0; i < p->nlistens; i++)
        if (p->listens[i].on_reconnect) p->listens[i].on_reconnect(p->listens[i].ud);
    return;
  }
  if (PQenterPipelineMode(c->pg) != 1) {
    conn_dead(c, "cannot enter pipeline mode");
    return;
  }
  poll_watch(c, UV_READABLE);
  dispatch(p);
}

static void conn_dead(bd_pg_conn_t *c, const char *why) {
  bd_pg_pool_t *p = c->pool;
  char msg[256];
  snprintf(msg, sizeof msg, "database connection lost: %s", why && *why ? why : "unknown error");
  /* trailing newline from libpq messages */
  size_t ml = strlen(msg);
  while (ml && (msg[ml - 1] == '\n' || msg[ml - 1] == ' ')) msg[--ml] = '\0';
  if (!c->logged_down && !p->closing) {
    /* once per outage and connection, not once per reconnect attempt */
    bd_warn("%s", msg);
    c->logged_down = true;
  }
  uv_timer_stop(&c->timer);
  poll_drop(c); /* before PQfinish closes the socket */
  if (c->pg) {
    PQfinish(c->pg);
    c->pg = NULL;
  }
  c->in_copy = false;
  c->copy_failed = false;
  bd_buf_free(&c->copybuf);
  c->copy_off = 0;
  if (c->drain_cb) {
    /* A COPY producer paused for backpressure must hear that it can go on:
     * its next bd_pg_copy_put fails and its end reports the loss. Dropping
     * the callback left a paused upload stalled until its body timeout
     * (408 instead of 503 when the database went away mid-upload). */
    void (*cb)(void *) = c->drain_cb;
    c->drain_cb = NULL;
    cb(c->drain_ud);
  }
  op_t *o;
  while ((o = fifo_pop(&c->inflight, &c->inflight_tail))) op_fail(p, o, BD_PG_EUNAVAIL, msg);
  c->ninflight = 0;
  c->nbg = 0;
  while ((o = fifo_pop(&c->pending, &c->pending_tail))) op_fail(p, o, BD_PG_EUNAVAIL, msg);
  if (c->copy_end) {
    op_fail(p, c->copy_end, BD_PG_EUNAVAIL, msg);
    c->copy_end = NULL;
  }
  if (c->pin_op) {
    /* the acquire goes back to the queue for another connection */
    op_t *a = c->pin_op;
    c->pin_op = NULL;
    c->pin_pending = false;
    a->next = p->queue;
    p->queue = a;
    if (!p->queue_tail) p->queue_tail = a;
    p->nqueued++;
  }
  if (c->state == C_PINNED) {
    c->broken = true; /* the owner releases it; it reconnects then */
    return;
  }
  c->state = C_DOWN;
  if (p->closing) {
    conn_close_handles(c);
    return;
  }
  schedule_reconnect(c);
  dispatch(p);
}

static void on_timer(uv_timer_t *t) {
  bd_pg_conn_t *c = t->data;
  if (c->state == C_CONNECTING) {
    conn_dead(c, "connection attempt timed out");
  } else if (c->state == C_DOWN && !c->pool->closing) {
    conn_start(c);
  }
}

/* --- results ---------------------------------------------------------------------- */

/* Shared (pipeline) connection: match results to in-flight ops. */
static void pipeline_results(bd_pg_conn_t *c) {
  bd_pg_pool_t *p = c->pool;
  while (c->pg && c->inflight && !PQisBusy(c->pg)) {
    op_t *o = c->inflight;
    PGresult *r = PQgetResult(c->pg);
    if (o->phase == 0 && !o->sent_prepare) o->phase = 1;
    if (!r) {
      if (o->phase < 2) {
        o->phase++;
        if (o->phase == 1 && !o->sent_prepare) o->phase = 2;
        continue;
      }
      break; /* the sync is not here yet */
    }
    ExecStatusType st = PQresultStatus(r);
    if (st == PGRES_PIPELINE_SYNC) {
      PQclear(r);
      fifo_pop(&c->inflight, &c->inflight_tail);
      c->ninflight--;
      if (op_is_bg(o)) c->nbg--;
      p->stats.inflight--;
      op_finish(p, o);
      continue;
    }
    if (o->phase == 0) {
      if (st == PGRES_FATAL_ERROR) {
        op_set_result_error(o, r);
        if (o->stmt && o->stmt->id < c->nprepared) c->prepared[o->stmt->id] = 0; /* retry later */
      }
      PQclear(r);
      continue;
    }
    if (st == PGRES_FATAL_ERROR) {
      op_set_result_error(o, r);
      PQclear(r);
    } else if (st == PGRES_PIPELINE_ABORTED) {
      if (!o->err) op_set_error(o, BD_PG_ESQL, "", "pipeline aborted");
      PQclear(r);
    } else {
      if (o->res) PQclear(o->res);
      o->res = r;
    }
  }
}

/* Pinned connection: one op at a time.
 *
 * May run callbacks (not when called from inside a public function) and a
 * callback may release the connection: when that sends it back to
 * pipeline mode, the loop stops and pipeline_results takes over on the
 * next event. */
static void pinned_results(bd_pg_conn_t *c) {
  bd_pg_pool_t *p = c->pool;
  while (c->pg && c->inflight && !PQisBusy(c->pg) && PQpipelineStatus(c->pg) == PQ_PIPELINE_OFF) {
    op_t *o = c->inflight;
    PGresult *r = PQgetResult(c->pg);
    if (r && o->kind == OP_QUERY && o->phase == 0) {
      /* the Parse of a pinned query */
      if (PQresultStatus(r) != PGRES_COMMAND_OK) op_set_result_error(o, r);
      PQclear(r);
      continue;
    }
    if (!r && o->kind == OP_QUERY && o->phase == 0 && !o->err) {
      /* prepared: now the execute, same op, still at the head */
      char name[24];
      stmt_name(name, o->stmt->id);
      c->prepared[o->stmt->id] = 1;
      o->phase = 1;
      if (!PQsendQueryPrepared(c->pg, name, o->nparams, (const char *const *)o->params, o->lens, o->fmts, 0)) {
        conn_dead(c, PQerrorMessage(c->pg));
        return;
      }
      if (!conn_flush(c)) return;
      continue;
    }
    if (r) {
      ExecStatusType st = PQresultStatus(r);
      if (st == PGRES_COPY_IN) {
        /* COPY started: the op is done, data may flow */
        c->in_copy = true;
        if (o->res) PQclear(o->res);
        o->res = r;
        fifo_pop(&c->inflight, &c->inflight_tail);
        c->ninflight--;
        op_finish(p, o);
        continue;
      }
      if (st == PGRES_FATAL_ERROR || st == PGRES_BAD_RESPONSE || st == PGRES_NONFATAL_ERROR) {
        if (st != PGRES_NONFATAL_ERROR) op_set_result_error(o, r);
        PQclear(r);
      } else {
        if (o->res) PQclear(o->res);
        o->res = r;
      }
      continue;
    }
    /* NULL: this op's results are complete */
    fifo_pop(&c->inflight, &c->inflight_tail);
    c->ninflight--;
    if (o->kind == OP_COPY_END) c->in_copy = false;
    if (o->kind == OP_ROLLBACK) {
      op_free(o);
      /* back to shared duty */
      if (PQenterPipelineMode(c->pg) != 1) {
        c->state = C_READY;
        conn_dead(c, "cannot re-enter pipeline mode");
        return;
      }
      c->state = C_READY;
      dispatch(p);
      return;
    }
    op_finish(p, o);
    conn_send_pending(c);
  }
}

static void listener_results(bd_pg_conn_t *c) {
  bd_pg_pool_t *p = c->pool;
  while (c->pg && !PQisBusy(c->pg)) {
    PGresult *r = PQgetResult(c->pg);
    if (!r) {
      /* the LISTENs sent so far have all been answered: from here on no
       * NOTIFY on those channels can be missed */
      c->subscribed = c->listened;
      listener_send(c); /* channels registered while that batch was in flight */
      break;
    }
    PQclear(r);
  }
  PGnotify *n;
  while (c->pg && (n = PQnotifies(c->pg))) {
    for (int i = 0; i < p->nlistens; i++)
      if (!strcmp(p->listens[i].channel, n->relname)) p->listens[i].cb(p->listens[i].ud, n->relname, n->extra);
    PQfreemem(n);
  }
}

static void on_poll_events(bd_pg_conn_t *c, int status, int events);

static void on_poll(uv_poll_t *h, int status, int events) {
  bd_pg_conn_t *c = h->data;
  if (h != c->poll) return; /* a replaced watcher */
  bd_pg_pool_t *p = c->pool;
  on_poll_events(c, status, events);
  /* a closing pool waits for in-flight queries: this may have been the last */
  if (p->closing) pool_maybe_closed(p);
}

static void on_poll_events(bd_pg_conn_t *c, int status, int events) {
  if (status < 0) {
    conn_dead(c, uv_strerror(status));
    return;
  }
  if (c->state == C_CONNECTING) {
    connect_step(c);
    return;
  }
  if (!c->pg) return;
  if (events & UV_WRITABLE) {
    if (c->in_copy) copy_push(c);
    if (!c->pg || !conn_flush(c)) return;
  }
  if (events & UV_READABLE) {
    if (!PQconsumeInput(c->pg)) {
      conn_dead(c, PQerrorMessage(c->pg));
      return;
    }
  }
  /* During COPY IN nothing is in flight. If the server ends the COPY with
   * an error (bad data), libpq keeps that ErrorResponse unparsed until
   * PQputCopyEnd, so PQputCopyData goes on accepting (the server discards
   * the data): the error reaches the caller through bd_pg_copy_end. PQisBusy
   * here only lets libpq process NOTICEs so its input buffer stays small. */
  if (c->in_copy && !c->inflight) (void)PQisBusy(c->pg);
  if (c->listener) listener_results(c);
  else if (c->state == C_PINNED || (c->state == C_READY && PQpipelineStatus(c->pg) == PQ_PIPELINE_OFF))
    pinned_results(c);
  else pipeline_results(c);
  if (!c->pg) return;
  if (PQstatus(c->pg) == CONNECTION_BAD) {
    conn_dead(c, PQerrorMessage(c->pg));
    return;
  }
  /* a connection reserved for an acquire is handed over once drained */
  if (c->state == C_READY && c->pin_pending && c->ninflight == 0) {
    dispatch(c->pool);
    return;
  }
  if (c->state == C_READY && !c->listener) dispatch(c->pool);
}

/* --- sending ------------------------------------------------------------------------ */

/* The statement's id, assigned on first use. Statements are usually
 * `static` and pools are per loop, so two loop threads may race here: the
 * id is claimed with a compare-and-swap and a loser adopts the winner's. */
static int stmt_id(bd_pg_stmt_t *s) {
  int id = __atomic_load_n(&s->id, __ATOMIC_ACQUIRE);
  if (id) return id;
  int fresh = __atomic_add_fetch(&g_next_stmt_id, 1, __ATOMIC_RELAXED);
  int expected = 0;
  if (__atomic_compare_exchange_n(&s->id, &expected, fresh, false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
    return fresh;
  return expected;
}

/* Makes room in the connection's prepared map for `id`. */
static void prepared_reserve(bd_pg_conn_t *c, int id) {
  if (id < c->nprepared) return;
  int n = BD_MAX(id + 16, c->nprepared * 2);
  c->prepared = bd_realloc(c->prepared, (size_t)n);
  memset(c->prepared + c->nprepared, 0, (size_t)(n - c->nprepared));
  c->nprepared = n;
}

static bool send_shared(bd_pg_conn_t *c, op_t *o) {
  bd_pg_stmt_t *s = o->stmt;
  stmt_id(s);
  prepared_reserve(c, s->id);
  char name[24];
  stmt_name(name, s->id);
  o->sent_prepare = false;
  o->phase = 0;
  if (!c->prepared[s->id]) {
    if (!PQsendPrepare(c->pg, name, s->sql, 0, NULL)) return false;
    c->prepared[s->id] = 1;
    o->sent_prepare = true;
  }
  if (!PQsendQueryPrepared(c->pg, name, o->nparams, (const char *const *)o->params, o->lens, o->fmts, 0)) return false;
  if (!PQpipelineSync(c->pg)) return false;
  return true;
}

/* Sends the next pending op of a pinned connection when it is idle. */
static void conn_send_pending(bd_pg_conn_t *c) {
  if (!c->pg || c->ninflight > 0 || c->in_copy) return;
  op_t *o = fifo_pop(&c->pending, &c->pending_tail);
  if (!o) return;
  int ok;
  switch (o->kind) {
  case OP_QUERY: {
    /* Prepared lazily as on shared connections (the map belongs to the
     * session, which outlives pinning; a statement prepared inside a
     * transaction stays prepared after a rollback). Outside pipeline mode
     * the Parse is its own round trip: phase 0 waits for it and
     * pinned_results then sends the execute. Transactions run the same few
     * statements many times (batch inserts), so this pays off quickly. */
    bd_pg_stmt_t *s = o->stmt;
    prepared_reserve(c, stmt_id(s));
    char name[24];
    stmt_name(name, s->id);
    o->sent_prepare = !c->prepared[s->id];
    o->phase = o->sent_prepare ? 0 : 1;
    ok = o->sent_prepare ? PQsendPrepare(c->pg, name, s->sql, 0, NULL)
                         : PQsendQueryPrepared(c->pg, name, o->nparams, (const char *const *)o->params, o->lens, o->fmts, 0);
    break;
  }
  case OP_EXEC:
  case OP_COPY_START:
  case OP_ROLLBACK:
    ok = o->nparams ? PQsendQueryParams(c->pg, o->sql, o->nparams, NULL, (const char *const *)o->params, NULL,
                                        NULL, 0)
                    : PQsendQuery(c->pg, o->sql);
    break;
  default:
    ok = 0;
  }
  fifo_push(&c->inflight, &c->inflight_tail, o);
  c->ninflight++;
  if (!ok) {
    conn_dead(c, PQerrorMessage(c->pg));
    return;
  }
  conn_flush(c);
}

/* A background op in a request's pipeline costs it about this many
 * request queries (a job's write runs for tens of milliseconds, a
 * request's query for well under one). */
#define BG_WEIGHT 8

/* The shared connection for an op (NULL: none can take it now); see
 * bd_pg_stmt_t for the background rule. */
static bd_pg_conn_t *pick_shared(bd_pg_pool_t *p, bool bg) {
  int up = 0, clear = 0; /* shared connections up, and of those without background work */
  for (int i = 0; i < p->cfg.nconns; i++) {
    bd_pg_conn_t *c = &p->conns[i];
    if (c->state != C_READY || c->pin_pending) continue;
    up++;
    if (c->nbg == 0) clear++;
  }
  bd_pg_conn_t *best = NULL;
  int best_score = 0;
  for (int i = 0; i < p->cfg.nconns; i++) {
    bd_pg_conn_t *c = &p->conns[i];
    if (c->state != C_READY || c->pin_pending || c->ninflight >= p->cfg.max_inflight) continue;
    if (bg && up >= 2 && c->nbg == 0 && clear <= 1) continue; /* the last one kept for requests */
    int score = c->ninflight + (bg ? 0 : BG_WEIGHT * c->nbg);
    if (!best || score < best_score) {
      best = c;
      best_score = score;
    }
  }
  return best;
}

static int count_pinned(bd_pg_pool_t *p) {
  int n = 0;
  for (int i = 0; i < p->cfg.nconns; i++)
    if (p->conns[i].state == C_PINNED || p->conns[i].pin_pending) n++;
  return n;
}

static void hand_over(bd_pg_conn_t *c) {
  bd_pg_pool_t *p = c->pool;
  op_t *a = c->pin_op;
  c->pin_op = NULL;
  c->pin_pending = false;
  if (PQexitPipelineMode(c->pg) != 1) {
    /* not idle after all: put the acquire back */
    a->next = p->queue;
    p->queue = a;
    if (!p->queue_tail) p->queue_tail = a;
    p->nqueued++;
    return;
  }
  c->state = C_PINNED;
  c->broken = false;
  a->conn = c;
  op_finish(p, a);
}

static void queue_unlink(bd_pg_pool_t *p, op_t **pp, op_t *prev) {
  op_t *o = *pp;
  *pp = o->next;
  if (p->queue_tail == o) p->queue_tail = prev;
  o->next = NULL;
  p->nqueued--;
}

static void dispatch(bd_pg_pool_t *p) {
  /* connections reserved for an acquire that have drained */
  for (int i = 0; i < p->cfg.nconns; i++) {
    bd_pg_conn_t *c = &p->conns[i];
    if (c->state == C_READY && c->pin_pending && c->ninflight == 0 && c->pin_op) hand_over(c);
  }
  op_t **pp = &p->queue, *prev = NULL;
  bool bg_held = false; /* a background op is waiting: the ones after it wait too */
  while (*pp) {
    op_t *o = *pp;
    if (o->kind == OP_ACQUIRE) {
      /* keep one connection for shared queries when there is more than one */
      int limit = p->cfg.nconns > 1 ? p->cfg.nconns - 1 : 1;
      bd_pg_conn_t *best = NULL;
      if (count_pinned(p) < limit)
        for (int i = 0; i < p->cfg.nconns; i++) {
          bd_pg_conn_t *c = &p->conns[i];
          if (c->state != C_READY || c->pin_pending) continue;
          if (!best || c->ninflight < best->ninflight) best = c;
        }
      if (!best) {
        prev = o;
        pp = &o->next;
        continue; /* queries behind it may still go */
      }
      queue_unlink(p, pp, prev);
      best->pin_pending = true;
      best->pin_op = o;
      if (best->ninflight == 0) hand_over(best);
      continue;
    }
    bool bg = op_is_bg(o);
    bd_pg_conn_t *c = bg && bg_held ? NULL : pick_shared(p, bg);
    if (!c) {
      if (!bg) break; /* nothing can take a query now: keep FIFO order */
      /* a background op waits for a connection of its own; requests'
       * queries behind it may still go (background ones keep their order) */
      bg_held = true;
      prev = o;
      pp = &o->next;
      continue;
    }
    queue_unlink(p, pp, prev);
    fifo_push(&c->inflight, &c->inflight_tail, o);
    c->ninflight++;
    if (bg) c->nbg++;
    p->stats.inflight++;
    if (!send_shared(c, o)) {
      conn_dead(c, PQerrorMessage(c->pg)); /* fails o with the rest, re-dispatches */
      return;
    }
    if (!conn_flush(c)) return;
  }
}

/* --- queue staleness ------------------------------------------------------------- */

/* Fails queued ops older than queue_timeout_ms. The queue is in arrival
 * order except for acquires put back at the head (older still), so
 * `head_only` may stop at the first fresh op: enqueue uses that (cheap,
 * and it frees room before the queue_cap check); the periodic sweep looks
 * at everything. Failures are delivered through op_fail (deferred when
 * inside a public function). */
static void queue_expire(bd_pg_pool_t *p, bool head_only) {
  uint64_t now = uv_now(p->loop);
  op_t **pp = &p->queue, *prev = NULL;
  while (*pp) {
    op_t *o = *pp;
    if (now - o->enq_ms >= p->cfg.queue_timeout_ms) {
      queue_unlink(p, pp, prev);
      op_fail(p, o, BD_PG_EUNAVAIL, "database unavailable: no connection within the queue timeout");
      continue;
    }
    if (head_only) break;
    prev = o;
    pp = &o->next;
  }
}

static void on_sweep(uv_timer_t *t) { queue_expire(t->data, false); }

/* --- public: pool ---------------------------------------------------------------- */

static void conn_init(bd_pg_pool_t *p, bd_pg_conn_t *c, bool listener) {
  c->pool = p;
  c->fd = -1;
  c->listener = listener;
  c->state = C_DOWN;
  uv_timer_init(p->loop, &c->timer);
  c->timer.data = c;
  p->handles++;
}

/* The `options` connection parameter: whatever the conninfo/URL already
 * sets there, then our session settings (timestamps are UTC everywhere).
 * An unparsable conninfo is left for PQconnectStartParams to report. */
static char *session_options(const char *conninfo) {
  bd_buf_t b = BD_BUF_INIT;
  PQconninfoOption *opts = PQconninfoParse(conninfo, NULL);
  for (PQconninfoOption *o = opts; o && o->keyword; o++)
    if (!strcmp(o->keyword, "options") && o->val && *o->val) bd_buf_printf(&b, "%s ", o->val);
  if (opts) PQconninfoFree(opts);
  bd_buf_puts(&b, "-c TimeZone=UTC");
  return bd_buf_detach(&b, NULL);
}

bd_pg_pool_t *bd_pg_pool_new(uv_loop_t *loop, const bd_pg_config_t *cfg) {
  bd_pg_pool_t *p = bd_calloc(1, sizeof *p);
  p->loop = loop;
  p->cfg = *cfg;
  if (p->cfg.nconns < 1) p->cfg.nconns = 1;
  if (p->cfg.max_inflight < 1) p->cfg.max_inflight = 1;
  if (p->cfg.queue_cap < 1) p->cfg.queue_cap = 1;
  if (!p->cfg.connect_timeout_ms) p->cfg.connect_timeout_ms = 5000;
  if (!p->cfg.reconnect_min_ms) p->cfg.reconnect_min_ms = 100;
  if (p->cfg.reconnect_max_ms < p->cfg.reconnect_min_ms) p->cfg.reconnect_max_ms = p->cfg.reconnect_min_ms;
  if (!p->cfg.queue_timeout_ms) p->cfg.queue_timeout_ms = 2000;
  p->conninfo = bd_strdup(cfg->conninfo ? cfg->conninfo : "");
  p->appname = bd_strdup(cfg->application_name ? cfg->application_name : "batchd");
  p->options = session_options(p->conninfo);
  p->cfg.conninfo = p->conninfo;
  p->cfg.application_name = p->appname;
  uv_idle_init(loop, &p->idle);
  p->idle.data = p;
  uv_timer_init(loop, &p->sweep);
  p->sweep.data = p;
  p->handles += 2;
  uint32_t sweep = BD_MIN((uint32_t)SWEEP_MS, BD_MAX(p->cfg.queue_timeout_ms / 4, 10u));
  uv_timer_start(&p->sweep, on_sweep, sweep, sweep);
  p->conns = bd_calloc((size_t)p->cfg.nconns, sizeof *p->conns);
  p->in_api++;
  for (int i = 0; i < p->cfg.nconns; i++) {
    conn_init(p, &p->conns[i], false);
    conn_start(&p->conns[i]);
  }
  p->in_api--;
  p->stats.nconns = p->cfg.nconns;
  return p;
}

void bd_pg_pool_stats(const bd_pg_pool_t *p, bd_pg_stats_t *out) {
  *out = p->stats;
  out->nconns = p->cfg.nconns;
  out->connected = 0;
  out->pinned = 0;
  for (int i = 0; i < p->cfg.nconns; i++) {
    if (p->conns[i].state == C_READY || p->conns[i].state == C_PINNED) out->connected++;
    if (p->conns[i].state == C_PINNED) out->pinned++;
  }
  out->queued = p->nqueued;
  out->up = out->connected > 0;
}

/* Queues an op and dispatches. Refused (and freed, its callback never
 * runs) when the pool is closing or the queue is full even after dropping
 * stale ops. */
static int enqueue(bd_pg_pool_t *p, op_t *o) {
  if (p->closing) {
    op_free(o);
    return BD_PG_EUNAVAIL;
  }
  p->in_api++;
  uv_update_time(p->loop); /* enqueue times must not lag behind a long loop iteration */
  queue_expire(p, true);
  if (p->nqueued >= p->cfg.queue_cap) {
    p->in_api--;
    op_free(o);
    return BD_PG_EUNAVAIL;
  }
  o->enq_ms = uv_now(p->loop);
  fifo_push(&p->queue, &p->queue_tail, o);
  p->nqueued++;
  dispatch(p);
  p->in_api--;
  return 0;
}

int bd_pg_query(bd_pg_pool_t *p, bd_pg_stmt_t *stmt, int nparams, const char *const *params, bd_pg_cb cb,
                void *ud) {
  op_t *o = op_new(OP_QUERY, nparams, params);
  o->stmt = stmt;
  o->cb = cb;
  o->ud = ud;
  return enqueue(p, o);
}

int bd_pg_query_bin(bd_pg_pool_t *p, bd_pg_stmt_t *stmt, int nparams, const char *const *params, const int *lens,
                    const int *formats, bd_pg_cb cb, void *ud) {
  op_t *o = op_new_bin(OP_QUERY, nparams, params, lens, formats);
  o->stmt = stmt;
  o->cb = cb;
  o->ud = ud;
  return enqueue(p, o);
}

int bd_pg_acquire(bd_pg_pool_t *p, bd_pg_acquire_cb cb, void *ud) {
  op_t *o = op_new(OP_ACQUIRE, 0, NULL);
  o->acb = cb;
  o->ud = ud;
  return enqueue(p, o);
}

/* bd_pg_exec: acquire, run, release. */
typedef struct {
  bd_pg_pool_t *pool;  /* the pool */
  char *sql;           /* statement(s) */
  int n;               /* params */
  char **params;       /* owned */
  bd_pg_cb cb;         /* caller's callback */
  void *ud;            /* its argument */
  bd_pg_conn_t *conn;  /* while running */
} exec_t;

static void exec_free(exec_t *e) {
  for (int i = 0; i < e->n; i++) free(e->params[i]);
  free(e->params);
  free(e->sql);
  free(e);
}

/* The connection goes back first (r stays valid: it belongs to the op,
 * freed after this returns), so a callback that runs the next exec, or
 * closes the pool, finds it free. */
static void exec_done(void *ud, const bd_pg_result_t *r) {
  exec_t *e = ud;
  bd_pg_release(e->conn, r->err == BD_PG_EUNAVAIL);
  e->cb(e->ud, r);
  exec_free(e);
}

static void exec_acquired(void *ud, bd_pg_conn_t *c, int err) {
  exec_t *e = ud;
  if (err) {
    /* no connection: this exec still counts as a failed query */
    e->pool->stats.queries++;
    e->pool->stats.errors++;
    bd_pg_result_t r = {err, NULL, "", err == BD_PG_ECANCELED ? "shutting down" : "database unavailable"};
    e->cb(e->ud, &r);
    exec_free(e);
    return;
  }
  e->conn = c;
  if (bd_pg_conn_exec(c, e->sql, e->n, (const char *const *)e->params, exec_done, e) != 0) {
    bd_pg_result_t r = {BD_PG_EUNAVAIL, NULL, "", "database unavailable"};
    e->cb(e->ud, &r);
    bd_pg_release(c, true);
    exec_free(e);
  }
}

int bd_pg_exec(bd_pg_pool_t *p, const char *sql, int nparams, const char *const *params, bd_pg_cb cb, void *ud) {
  exec_t *e = bd_calloc(1, sizeof *e);
  e->pool = p;
  e->sql = bd_strdup(sql);
  e->n = nparams;
  if (nparams) {
    e->params = bd_calloc((size_t)nparams, sizeof *e->params);
    for (int i = 0; i < nparams; i++) e->params[i] = params[i] ? bd_strdup(params[i]) : NULL;
  }
  e->cb = cb;
  e->ud = ud;
  int rc = bd_pg_acquire(p, exec_acquired, e);
  if (rc != 0) exec_free(e);
  return rc;
}

/* --- public: pinned connections ------------------------------------------------------ */

static int conn_enqueue(bd_pg_conn_t *c, op_t *o) {
  bd_pg_pool_t *p = c->pool;
  if (c->state != C_PINNED || c->broken || !c->pg) {
    /* fail asynchronously, as promised */
    p->in_api++;
    op_fail(p, o, BD_PG_EUNAVAIL, "database connection lost");
    p->in_api--;
    return 0;
  }
  fifo_push(&c->pending, &c->pending_tail, o);
  p->in_api++;
  conn_send_pending(c);
  p->in_api--;
  return 0;
}

int bd_pg_conn_query(bd_pg_conn_t *c, bd_pg_stmt_t *stmt, int nparams, const char *const *params, bd_pg_cb cb,
                     void *ud) {
  op_t *o = op_new(OP_QUERY, nparams, params);
  o->stmt = stmt;
  o->cb = cb;
  o->ud = ud;
  return conn_enqueue(c, o);
}

int bd_pg_conn_exec(bd_pg_conn_t *c, const char *sql, int nparams, const char *const *params, bd_pg_cb cb,
                    void *ud) {
  op_t *o = op_new(OP_EXEC, nparams, params);
  o->sql = bd_strdup(sql);
  o->cb = cb;
  o->ud = ud;
  return conn_enqueue(c, o);
}

int bd_pg_copy_start(bd_pg_conn_t *c, const char *copy_sql, bd_pg_cb ready, void *ud) {
  op_t *o = op_new(OP_COPY_START, 0, NULL);
  o->sql = bd_strdup(copy_sql);
  o->cb = ready;
  o->ud = ud;
  return conn_enqueue(c, o);
}

static void copy_finish_end(bd_pg_conn_t *c) {
  op_t *o = c->copy_end;
  c->copy_end = NULL;
  if (c->copy_failed) {
    /* nothing to end: collect the server's error as this op's result */
    c->copy_failed = false;
    fifo_push(&c->inflight, &c->inflight_tail, o);
    c->ninflight++;
    pinned_results(c);
    if (c->pg) conn_flush(c);
    return;
  }
  int rc = PQputCopyEnd(c->pg, o->sql);
  if (rc < 0) {
    fifo_push(&c->inflight, &c->inflight_tail, o);
    c->ninflight++;
    conn_dead(c, PQerrorMessage(c->pg));
    return;
  }
  /* rc == 0 only when libpq cannot grow its buffer; the end message is then
   * lost and the op would wait forever: treat it like a dead connection */
  fifo_push(&c->inflight, &c->inflight_tail, o);
  c->ninflight++;
  if (rc == 0) {
    conn_dead(c, "cannot queue the end of COPY");
    return;
  }
  if (!conn_flush(c)) return;
  /* If the server rejected the data it already sent ErrorResponse and
   * ReadyForQuery, and PQconsumeInput has read them; libpq holds them back
   * while in COPY IN and parses them only now. No further socket event
   * would come for them, so look now. */
  pinned_results(c);
}

/* Moves buffered COPY data into libpq, one chunk at a time and only while
 * libpq's own output is flushed to the socket. In non-blocking mode
 * PQputCopyData does not refuse data when the socket is full: it grows its
 * output buffer without bound. Feeding it everything would empty copybuf
 * at once, so bd_pg_copy_put would never report the backlog and the
 * producer (an upload) would be buffered whole in libpq. */
static void copy_push(bd_pg_conn_t *c) {
  while (c->pg && c->copy_off < c->copybuf.len) {
    int fr = PQflush(c->pg);
    if (fr < 0) {
      conn_dead(c, PQerrorMessage(c->pg));
      return;
    }
    if (fr == 1) break; /* the socket is full: wait for writability */
    size_t n = BD_MIN((size_t)COPY_CHUNK, c->copybuf.len - c->copy_off);
    int rc = PQputCopyData(c->pg, c->copybuf.data + c->copy_off, (int)n);
    if (rc < 0) {
      if (PQstatus(c->pg) == CONNECTION_BAD) {
        conn_dead(c, PQerrorMessage(c->pg));
        return;
      }
      /* "no COPY in progress" on a live connection (libpq normally holds a
       * server-side COPY error back until PQputCopyEnd, so this is rare):
       * the COPY is over; its error is reported by bd_pg_copy_end */
      c->copy_failed = true;
      bd_buf_reset(&c->copybuf);
      c->copy_off = 0;
      break;
    }
    if (rc == 0) break; /* libpq's buffer is full: wait for writability */
    c->copy_off += n;
  }
  if (c->pg && !c->copy_failed && PQflush(c->pg) < 0) {
    conn_dead(c, PQerrorMessage(c->pg));
    return;
  }
  if (!c->pg) return;
  if (c->copy_off == c->copybuf.len) {
    bd_buf_reset(&c->copybuf);
    c->copy_off = 0;
  } else if (c->copy_off > COPY_HIGH_WATER) {
    bd_buf_consume(&c->copybuf, c->copy_off);
    c->copy_off = 0;
  }
  if (c->drain_cb && c->copybuf.len - c->copy_off < COPY_LOW_WATER) {
    void (*cb)(void *) = c->drain_cb;
    c->drain_cb = NULL;
    if (c->pool->in_api == 0) cb(c->drain_ud);
    else c->drain_cb = cb; /* delivered on the next writable/readable event */
  }
  if (c->copy_end && c->copybuf.len == c->copy_off) copy_finish_end(c);
}

int bd_pg_copy_put(bd_pg_conn_t *c, const void *data, size_t len) {
  if (!c->pg || !c->in_copy || c->copy_failed) return -1;
  bd_buf_append(&c->copybuf, data, len);
  c->pool->in_api++;
  copy_push(c);
  c->pool->in_api--;
  if (!c->pg || c->copy_failed) return -1;
  conn_flush(c);
  return c->copybuf.len - c->copy_off > COPY_HIGH_WATER ? 1 : 0;
}

void bd_pg_copy_on_drain(bd_pg_conn_t *c, void (*on_drain)(void *ud), void *ud) {
  c->drain_cb = on_drain;
  c->drain_ud = ud;
  if (c->pg) poll_watch(c, UV_READABLE | UV_WRITABLE); /* the next writable event delivers it */
}

int bd_pg_copy_end(bd_pg_conn_t *c, const char *errmsg, bd_pg_cb done, void *ud) {
  op_t *o = op_new(OP_COPY_END, 0, NULL);
  o->sql = errmsg ? bd_strdup(errmsg) : NULL;
  o->cb = done;
  o->ud = ud;
  bd_pg_pool_t *p = c->pool;
  if (!c->pg || !c->in_copy) {
    p->in_api++;
    op_fail(p, o, BD_PG_EUNAVAIL, "not in COPY");
    p->in_api--;
    return 0;
  }
  c->copy_end = o;
  p->in_api++;
  copy_push(c);
  p->in_api--;
  return 0;
}

void bd_pg_release(bd_pg_conn_t *c, bool broken) {
  bd_pg_pool_t *p = c->pool;
  c->drain_cb = NULL;
  p->in_api++;
  if (broken || c->broken || !c->pg || c->in_copy || c->ninflight || c->pending) {
    /* start afresh: close and reconnect */
    c->state = C_READY; /* so conn_dead does not treat it as pinned */
    c->broken = false;
    conn_dead(c, "released in an unknown state");
  } else if (PQtransactionStatus(c->pg) != PQTRANS_IDLE) {
    op_t *o = op_new(OP_ROLLBACK, 0, NULL);
    o->sql = bd_strdup("ROLLBACK");
    fifo_push(&c->pending, &c->pending_tail, o);
    conn_send_pending(c);
  } else if (PQenterPipelineMode(c->pg) != 1) {
    c->state = C_READY;
    conn_dead(c, "cannot re-enter pipeline mode");
  } else {
    c->state = C_READY;
    if (p->closing) conn_close_handles(c);
    else dispatch(p);
  }
  p->in_api--;
  pool_maybe_closed(p);
}

/* --- LISTEN ------------------------------------------------------------------------------ */

static void listener_send(bd_pg_conn_t *c) {
  bd_pg_pool_t *p = c->pool;
  if (!c->pg || c->state != C_READY || c->listened >= p->nlistens) return;
  /* one LISTEN batch in flight at a time (libpq refuses a second query
   * before the first is answered): channels registered meanwhile go out
   * when it is (listener_results) */
  if (c->subscribed != c->listened) return;
  bd_buf_t sql = BD_BUF_INIT;
  for (int i = c->listened; i < p->nlistens; i++) {
    char *id = PQescapeIdentifier(c->pg, p->listens[i].channel, strlen(p->listens[i].channel));
    if (id) {
      bd_buf_printf(&sql, "LISTEN %s;", id);
      PQfreemem(id);
    }
  }
  c->listened = p->nlistens;
  if (sql.len && !PQsendQuery(c->pg, sql.data)) {
    bd_buf_free(&sql);
    conn_dead(c, PQerrorMessage(c->pg));
    return;
  }
  bd_buf_free(&sql);
  conn_flush(c);
}

void bd_pg_listen(bd_pg_pool_t *p, const char *channel, bd_pg_notify_cb cb, void (*on_reconnect)(void *ud),
                  void *ud) {
  p->listens = bd_realloc(p->listens, (size_t)(p->nlistens + 1) * sizeof *p->listens);
  p->listens[p->nlistens++] = (listen_t){bd_strdup(channel), cb, on_reconnect, ud};
  p->in_api++;
  if (!p->lconn) {
    p->lconn = bd_calloc(1, sizeof *p->lconn);
    conn_init(p, p->lconn, true);
    conn_start(p->lconn);
  } else {
    listener_send(p->lconn);
  }
  p->in_api--;
}

bool bd_pg_listening(const bd_pg_pool_t *p) {
  const bd_pg_conn_t *c = p->lconn;
  return c && c->pg && c->state == C_READY && p->nlistens > 0 && c->subscribed == p->nlistens;
}

/* --- closing ------------------------------------------------------------------------------ */

static void timer_closed(uv_handle_t *h) {
  bd_pg_conn_t *c = h->data;
  bd_pg_pool_t *p = c->pool;
  c->state = C_CLOSED;
  p->handles--;
  pool_maybe_closed(p);
}

static void conn_close_handles(bd_pg_conn_t *c) {
  if (c->state == C_CLOSED || uv_is_closing((uv_handle_t *)&c->timer)) return;
  uv_timer_stop(&c->timer);
  poll_drop(c);
  if (c->pg) {
    PQfinish(c->pg);
    c->pg = NULL;
  }
  uv_close((uv_handle_t *)&c->timer, timer_closed);
}

static void pool_handle_closed(uv_handle_t *h) {
  bd_pg_pool_t *p = h->data;
  p->handles--;
  pool_maybe_closed(p);
}

static void pool_maybe_closed(bd_pg_pool_t *p) {
  if (!p->closing) return;
  /* connections close once they have nothing in flight and are not pinned */
  bool conns_open = false;
  for (int i = 0; i < p->cfg.nconns; i++) {
    bd_pg_conn_t *c = &p->conns[i];
    if (c->state == C_CLOSED || uv_is_closing((uv_handle_t *)&c->timer)) {
      if (c->state != C_CLOSED) conns_open = true;
      continue;
    }
    conns_open = true;
    if (c->state != C_PINNED && c->ninflight == 0 && !c->pin_op) conn_close_handles(c);
  }
  if (p->lconn && p->lconn->state != C_CLOSED) {
    conns_open = true;
    conn_close_handles(p->lconn);
  }
  if (conns_open || p->deferred) return;
  if (!uv_is_closing((uv_handle_t *)&p->idle)) {
    uv_close((uv_handle_t *)&p->idle, pool_handle_closed);
    uv_close((uv_handle_t *)&p->sweep, pool_handle_closed);
    return;
  }
  if (p->handles > 0) return;
  void (*done)(void *) = p->close_done;
  void *ud = p->close_ud;
  for (int i = 0; i < p->nlistens; i++) free(p->listens[i].channel);
  free(p->listens);
  for (int i = 0; i < p->cfg.nconns; i++) {
    free(p->conns[i].prepared);
    bd_buf_free(&p->conns[i].copybuf);
  }
  if (p->lconn) {
    free(p->lconn->prepared);
    free(p->lconn);
  }
  free(p->conns);
  free(p->conninfo);
  free(p->appname);
  free(p->options);
  free(p);
  if (done) done(ud);
}

void bd_pg_pool_close(bd_pg_pool_t *p, void (*done)(void *ud), void *ud) {
  if (p->closing) return;
  p->closing = true;
  p->close_done = done;
  p->close_ud = ud;
  p->in_api++;
  op_t *o;
  while ((o = fifo_pop(&p->queue, &p->queue_tail))) {
    p->nqueued--;
    op_fail(p, o, BD_PG_ECANCELED, "shutting down");
  }
  for (int i = 0; i < p->cfg.nconns; i++) {
    bd_pg_conn_t *c = &p->conns[i];
    if (c->pin_op) {
      op_fail(p, c->pin_op, BD_PG_ECANCELED, "shutting down");
      c->pin_op = NULL;
      c->pin_pending = false;
    }
    if (c->state == C_DOWN || c->state == C_CONNECTING) conn_close_handles(c);
  }
  p->in_api--;
  uv_timer_stop(&p->sweep);
  pool_maybe_closed(p);
}

/* --- binary arrays ------------------------------------------------------------- */

/* array_recv's layout: ndim, has-null flag, element type, then per
 * dimension its length and lower bound; then each element as a length
 * (-1: NULL) and its bytes; all integers 32-bit big-endian. */
#define ARRAY_HEADER 20

static void put_be32(char *p, uint32_t v) {
  p[0] = (char)(v >> 24);
  p[1] = (char)(v >> 16);
  p[2] = (char)(v >> 8);
  p[3] = (char)v;
}

void bd_pg_array_init(bd_pg_array_t *a, uint32_t elem_oid) {
  bd_buf_init(&a->buf);
  a->n = 0;
  a->oid = elem_oid;
  a->has_null = false;
  char h[ARRAY_HEADER] = {0};
  bd_buf_append(&a->buf, h, sizeof h);
}

void bd_pg_array_add(bd_pg_array_t *a, const void *p, size_t len) {
  char l[4];
  a->n++;
  if (!p) {
    a->has_null = true;
    put_be32(l, UINT32_MAX); /* -1 */
    bd_buf_append(&a->buf, l, 4);
    return;
  }
  bool jsonb = a->oid == BD_PG_OID_JSONB;
  put_be32(l, (uint32_t)(len + (jsonb ? 1 : 0)));
  bd_buf_append(&a->buf, l, 4);
  if (jsonb) bd_buf_putc(&a->buf, 1); /* jsonb's binary format version */
  bd_buf_append(&a->buf, p, len);
}

void bd_pg_array_add_i32(bd_pg_array_t *a, int32_t v) {
  char e[8];
  put_be32(e, 4);
  put_be32(e + 4, (uint32_t)v);
  a->n++;
  bd_buf_append(&a->buf, e, sizeof e);
}

void bd_pg_array_finish(bd_pg_array_t *a) {
  char *h = a->buf.data;
  if (a->n == 0) {
    /* an empty array has no dimensions: ndim 0, flags, element type */
    put_be32(h, 0);
    put_be32(h + 4, 0);
    put_be32(h + 8, a->oid);
    a->buf.len = 12;
    h[12] = '\0'; /* the buffer's terminator */
    return;
  }
  put_be32(h, 1);
  put_be32(h + 4, a->has_null ? 1 : 0);
  put_be32(h + 8, a->oid);
  put_be32(h + 12, a->n);
  put_be32(h + 16, 1); /* lower bound */
}

void bd_pg_array_free(bd_pg_array_t *a) { bd_buf_free(&a->buf); }

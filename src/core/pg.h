/* pg.h: a pool of non-blocking PostgreSQL connections on the libuv loop.
 *
 * Loop thread only: every function here must be called from the thread that
 * runs the pool's uv_loop_t, and every callback runs on that thread.
 *
 * Connections are opened with PQconnectStartParams + PQsetnonblocking and
 * driven by one uv_poll_t each (PQsocket is re-read after every
 * PQconnectPoll step). Shared connections run in pipeline mode: queries from
 * many requests are multiplexed, each followed by its own sync point so an
 * error aborts only that query. Statements are prepared lazily, once per
 * connection, on first use.
 *
 * Exclusive ("pinned") connections serve transactions and COPY: they leave
 * pipeline mode while pinned and return to the pool with bd_pg_release.
 *
 * Guarantees:
 *  - every callback given to a function that returned 0 runs exactly once,
 *    possibly with an error (never synchronously from inside the call);
 *  - when no connection can take a query, it waits in a FIFO of at most
 *    `queue_cap` entries; a query that waited more than `queue_timeout_ms`
 *    (typically: the database is down) fails with BD_PG_EUNAVAIL;
 *  - when a connection dies, its in-flight queries fail with BD_PG_EUNAVAIL
 *    (they are not retried: the caller decides), and the connection is
 *    re-opened on a timer with exponential backoff;
 *  - the PGresult handed to a callback is owned by the pool and cleared
 *    after the callback returns.
 */
#ifndef BD_PG_H
#define BD_PG_H

#include "buf.h"
#include "common.h"
#include <libpq-fe.h>
#include <uv.h>

typedef struct bd_pg_pool bd_pg_pool_t;
typedef struct bd_pg_conn bd_pg_conn_t;

enum {
  BD_PG_OK = 0,
  BD_PG_EUNAVAIL = -1,  /* database unreachable, queue full or query waited too long */
  BD_PG_ESQL = -2,      /* the server answered with an error: see sqlstate/message */
  BD_PG_ECANCELED = -3, /* the pool is closing */
};

typedef struct {
  const char *conninfo;       /* libpq connection string or URL */
  int nconns;                 /* shared + pinnable connections (>= 1) */
  int max_inflight;           /* queries in flight per shared connection (pipeline depth) */
  int queue_cap;              /* queries/acquires waiting for a connection */
  uint32_t queue_timeout_ms;  /* a waiting query older than this fails with EUNAVAIL */
  uint32_t connect_timeout_ms;/* one connection attempt */
  uint32_t reconnect_min_ms;  /* first reconnect delay */
  uint32_t reconnect_max_ms;  /* backoff cap */
  const char *application_name;
} bd_pg_config_t;

/* A statement, declared once (usually `static`) and prepared lazily on each
 * connection the first time it runs there.
 *
 * A background statement (BD_PG_STMT_BG: the long writes of render jobs)
 * is kept off the last shared connection that has no background work
 * while two or more shared connections are up, and requests' statements
 * prefer connections without background work: a request's query does not
 * wait in a pipeline behind a job's 50 ms write. With a single shared
 * connection up, both kinds share it (progress before priority). */
typedef struct bd_pg_stmt {
  const char *sql;  /* the SQL text with $1..$n placeholders */
  int id;           /* assigned by the pool on first use; 0 = not yet */
  bool background;  /* a job's statement, not a request's */
} bd_pg_stmt_t;
#define BD_PG_STMT(sql_) {(sql_), 0, false}
#define BD_PG_STMT_BG(sql_) {(sql_), 0, true}

typedef struct {
  int err;              /* BD_PG_OK or one of the BD_PG_E* codes */
  PGresult *res;        /* the (last) result when err == OK or ESQL, else NULL */
  const char *sqlstate; /* five-character SQLSTATE when err == ESQL, else "" */
  const char *message;  /* human-readable error text when err != OK, else "" */
  const char *detail;   /* the server's DETAIL when err == ESQL (may be NULL) */
  const char *hint;     /* the server's HINT when err == ESQL (may be NULL) */
} bd_pg_result_t;

/* Query completion. `r` and everything it points to is valid only during the
 * call. */
typedef void (*bd_pg_cb)(void *ud, const bd_pg_result_t *r);

typedef struct {
  int nconns;         /* configured connections */
  int connected;      /* connections currently usable */
  int pinned;         /* connections held exclusively */
  int inflight;       /* queries sent and not yet answered */
  int queued;         /* queries and acquires waiting for a connection */
  uint64_t queries;   /* total queries completed (any outcome) */
  uint64_t errors;    /* total queries failed */
  uint64_t reconnects;/* connections (re)established after the first */
  bool up;            /* at least one connection is usable */
} bd_pg_stats_t;

/* Creates the pool and starts connecting (returns at once). */
bd_pg_pool_t *bd_pg_pool_new(uv_loop_t *loop, const bd_pg_config_t *cfg);

/* Fails everything queued with ECANCELED, lets in-flight queries finish (or
 * fail), releases pinned connections when their owners do, closes every
 * handle, then calls `done` (once) and frees the pool. */
void bd_pg_pool_close(bd_pg_pool_t *p, void (*done)(void *ud), void *ud);

void bd_pg_pool_stats(const bd_pg_pool_t *p, bd_pg_stats_t *out);

/* Runs a statement on a shared connection. params are text-format values
 * (NULL means SQL NULL); results are text format. Returns 0 when the callback
 * will run, or BD_PG_EUNAVAIL at once when the queue is full (the callback
 * will then not run). */
int bd_pg_query(bd_pg_pool_t *p, bd_pg_stmt_t *stmt, int nparams, const char *const *params,
                bd_pg_cb cb, void *ud) BD_MUSTCHECK;

/* bd_pg_query with some parameters in binary format: formats[i] != 0 sends
 * params[i] as lens[i] raw bytes (the statement must give it a type, e.g.
 * $2::bytea); the others are text as above (lens[i] ignored). The bytes
 * are copied: big payloads (rendered images) go this way instead of hex
 * inside JSON, which PostgreSQL would lex byte by byte. */
int bd_pg_query_bin(bd_pg_pool_t *p, bd_pg_stmt_t *stmt, int nparams, const char *const *params,
                    const int *lens, const int *formats, bd_pg_cb cb, void *ud) BD_MUSTCHECK;

/* One-off SQL (no preparation, may hold several statements when nparams == 0,
 * e.g. migrations): uses PQsendQuery/PQsendQueryParams on a pinned connection
 * internally. Same contract as bd_pg_query. */
int bd_pg_exec(bd_pg_pool_t *p, const char *sql, int nparams, const char *const *params,
               bd_pg_cb cb, void *ud) BD_MUSTCHECK;

/* Pinned connections ----------------------------------------------------- */

typedef void (*bd_pg_acquire_cb)(void *ud, bd_pg_conn_t *c, int err);

/* Waits (in the same FIFO as queries) for a connection and hands it over
 * exclusively. err != 0 means none could be had (EUNAVAIL/ECANCELED) and c is
 * NULL. Returns 0 when the callback will run. */
int bd_pg_acquire(bd_pg_pool_t *p, bd_pg_acquire_cb cb, void *ud) BD_MUSTCHECK;

/* Queries on a pinned connection (BEGIN/COMMIT allowed). Several may be
 * outstanding; they are answered in order. Same callback contract. */
int bd_pg_conn_query(bd_pg_conn_t *c, bd_pg_stmt_t *stmt, int nparams, const char *const *params,
                     bd_pg_cb cb, void *ud) BD_MUSTCHECK;
int bd_pg_conn_exec(bd_pg_conn_t *c, const char *sql, int nparams, const char *const *params,
                    bd_pg_cb cb, void *ud) BD_MUSTCHECK;

/* COPY ... FROM STDIN on a pinned connection. `ready` runs when the server
 * is in COPY IN state (or with an error). */
int bd_pg_copy_start(bd_pg_conn_t *c, const char *copy_sql, bd_pg_cb ready, void *ud) BD_MUSTCHECK;
/* Queues COPY data. Returns 0 when the caller may keep sending, 1 when more
 * than the high-water mark (256 KiB) is waiting to be written to the socket:
 * the caller should stop producing until `on_drain` runs. Negative: the
 * connection failed (the end callback will report it). Data is copied. */
int bd_pg_copy_put(bd_pg_conn_t *c, const void *data, size_t len);
/* `on_drain` runs once, when the unsent COPY data falls below the low-water
 * mark (immediately-on-next-tick if it already is). */
void bd_pg_copy_on_drain(bd_pg_conn_t *c, void (*on_drain)(void *ud), void *ud);
/* Ends the COPY: errmsg == NULL finishes it (PQputCopyEnd(NULL)), otherwise
 * aborts it with that message. `done` gets the COPY's final result (its
 * command tuples count via PQcmdTuples). */
int bd_pg_copy_end(bd_pg_conn_t *c, const char *errmsg, bd_pg_cb done, void *ud) BD_MUSTCHECK;

/* Gives the connection back. If it is inside a transaction (or a failed
 * one), the pool rolls back before reusing it; `broken` discards it. */
void bd_pg_release(bd_pg_conn_t *c, bool broken);

/* LISTEN/NOTIFY on a dedicated connection (not counted in nconns) ---------- */

typedef void (*bd_pg_notify_cb)(void *ud, const char *channel, const char *payload);
/* `on_reconnect` (may be NULL) runs every time the listening connection is
 * re-established: notifications may have been missed meanwhile. */
void bd_pg_listen(bd_pg_pool_t *p, const char *channel, bd_pg_notify_cb cb,
                  void (*on_reconnect)(void *ud), void *ud);

/* True while the listening connection is up and the server has confirmed
 * the LISTEN of every registered channel: only then is a cache kept right
 * by NOTIFY actually being kept right (before the LISTEN took effect, or
 * while the connection is down, notifications are lost). */
bool bd_pg_listening(const bd_pg_pool_t *p);

/* Binary-format one-dimensional arrays, for bd_pg_query_bin parameters
 * ($n::text[], $n::int4[], $n::jsonb[]): PostgreSQL reads them element by
 * element by length, where a text-format array or a JSON document is lexed
 * character by character. */
#define BD_PG_OID_INT4 23
#define BD_PG_OID_TEXT 25
#define BD_PG_OID_JSONB 3802

typedef struct {
  bd_buf_t buf;      /* header (patched by finish) and elements */
  uint32_t n;        /* elements added */
  uint32_t oid;      /* element type */
  bool has_null;     /* a NULL was added */
} bd_pg_array_t;

void bd_pg_array_init(bd_pg_array_t *a, uint32_t elem_oid);
/* Appends an element of len bytes (p NULL: SQL NULL). For jsonb elements
 * give the JSON text: the format's version byte is added here. */
void bd_pg_array_add(bd_pg_array_t *a, const void *p, size_t len);
static inline void bd_pg_array_add_str(bd_pg_array_t *a, const char *s) {
  bd_pg_array_add(a, s, s ? strlen(s) : 0);
}
void bd_pg_array_add_i32(bd_pg_array_t *a, int32_t v);
/* Completes the header; the array is a.buf.data, a.buf.len bytes long. */
void bd_pg_array_finish(bd_pg_array_t *a);
void bd_pg_array_free(bd_pg_array_t *a);

/* Helpers for reading results (text format). */
static inline const char *bd_pg_val(const PGresult *r, int row, int col) {
  return PQgetisnull(r, row, col) ? NULL : PQgetvalue(r, row, col);
}

#endif

/* flusher.h: a buffer written to PostgreSQL in bulk on a timer, drained at
 * shutdown.
 *
 * Counters that must not cost a statement per event (scans of QR codes,
 * resolver scans of units) are accumulated in memory by their owner and
 * handed to one statement every period. The flusher owns what is the same
 * for every such buffer: the periodic timer, at most one write in flight,
 * a failed write merged back for the next attempt, the metric of what was
 * written, and the drain at shutdown (everything still buffered written
 * once more; a failure then is logged and dropped, and `done` is called).
 * The owner keeps the buffer and says how to take it, format it, merge it
 * back and free it. */
#ifndef BD_FLUSHER_H
#define BD_FLUSHER_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "buf.h"
#include "pg.h"

typedef struct {
  const char *what;          /* for logs: "scans", "resolver scans" */
  const char *metric;        /* counter of what was written (by the owner's count) */
  const char *metric_help;
  /* Items buffered now (0: nothing to write). */
  uint64_t (*pending)(void *ud);
  /* Formats everything buffered into `param` (the statement's one text
   * parameter), detaches it from the buffer and returns it as the batch in
   * flight; *n is its count for logs and the metric. */
  void *(*take)(void *ud, bd_buf_t *param, uint64_t *n);
  /* A batch whose write failed: merged back into the buffer. */
  void (*put_back)(void *ud, void *batch);
  /* A batch written, or given up at shutdown: freed. */
  void (*release)(void *ud, void *batch);
} bd_flusher_ops_t;

typedef struct {
  const bd_flusher_ops_t *ops;
  void *ud;
  bd_pg_stmt_t *stmt;        /* takes the formatted batch as $1 */
  uv_timer_t timer;
  bool timer_on, writing;
  void *inflight;            /* the batch being written */
  uint64_t inflight_n;
  void (*done)(void *);      /* set while draining at shutdown */
  void *done_ud;
} bd_flusher_t;

/* Starts the periodic write (every period_ms; the timer does not keep the
 * loop alive). */
void bd_flusher_start(bd_flusher_t *f, uv_loop_t *loop, const bd_flusher_ops_t *ops, void *ud,
                      bd_pg_stmt_t *stmt, uint64_t period_ms);
/* Writes what is buffered now unless a write is in flight. */
void bd_flusher_kick(bd_flusher_t *f);
/* Shutdown: stops the timer, writes what is buffered (and what arrives
 * meanwhile) until nothing is left, then calls done(ud) once. */
void bd_flusher_drain(bd_flusher_t *f, void (*done)(void *), void *ud);

#endif

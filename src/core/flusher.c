/* flusher.c: see flusher.h. */
#include "flusher.h"

#include "app.h"
#include "log.h"
#include "metrics.h"

static void finished(bd_flusher_t *f) {
  if (!f->done || f->writing || f->ops->pending(f->ud)) return;
  void (*done)(void *) = f->done;
  f->done = NULL;
  if (f->timer_on) {
    uv_close((uv_handle_t *)&f->timer, NULL);
    f->timer_on = false;
  }
  done(f->done_ud);
}

static void on_written(void *ud, const bd_pg_result_t *r) {
  bd_flusher_t *f = ud;
  void *batch = f->inflight;
  uint64_t n = f->inflight_n;
  f->inflight = NULL;
  f->inflight_n = 0;
  f->writing = false;
  if (r->err && !f->done) {
    bd_warn("%s: writing %llu failed (%s); kept for the next attempt", f->ops->what, (unsigned long long)n,
            r->message);
    f->ops->put_back(f->ud, batch);
    return;
  }
  if (r->err) { /* draining: give up on this batch and on what is left */
    bd_error("shutdown: %llu %s could not be written: %s", (unsigned long long)n, f->ops->what, r->message);
    f->ops->release(f->ud, batch);
    uint64_t left = 0;
    if (f->ops->pending(f->ud)) f->ops->release(f->ud, f->ops->take(f->ud, NULL, &left));
    finished(f);
    return;
  }
  f->ops->release(f->ud, batch);
  bd_metrics_inc(f->ops->metric, f->ops->metric_help, n);
  if (f->done) {
    if (f->ops->pending(f->ud)) bd_flusher_kick(f);
    else finished(f);
  }
}

void bd_flusher_kick(bd_flusher_t *f) {
  if (f->writing || !f->ops || !f->ops->pending(f->ud)) return;
  bd_buf_t b = BD_BUF_INIT;
  uint64_t n = 0;
  void *batch = f->ops->take(f->ud, &b, &n);
  const char *p[] = {b.data};
  if (bd_pg_query(bd_app.pg, f->stmt, 1, p, on_written, f) == 0) {
    f->writing = true;
    f->inflight = batch;
    f->inflight_n = n;
  } else {
    f->ops->put_back(f->ud, batch); /* the pool refused it now: the next tick tries again */
  }
  bd_buf_free(&b);
}

static void on_timer(uv_timer_t *t) { bd_flusher_kick(t->data); }

void bd_flusher_start(bd_flusher_t *f, uv_loop_t *loop, const bd_flusher_ops_t *ops, void *ud,
                      bd_pg_stmt_t *stmt, uint64_t period_ms) {
  f->ops = ops;
  f->ud = ud;
  f->stmt = stmt;
  if (!loop || f->timer_on) return;
  uv_timer_init(loop, &f->timer);
  f->timer.data = f;
  f->timer_on = true;
  uv_timer_start(&f->timer, on_timer, period_ms, period_ms);
  uv_unref((uv_handle_t *)&f->timer);
}

void bd_flusher_drain(bd_flusher_t *f, void (*done)(void *), void *ud) {
  f->done = done;
  f->done_ud = ud;
  if (f->timer_on) uv_timer_stop(&f->timer);
  if (!f->ops) { /* never started */
    f->done = NULL;
    done(ud);
    return;
  }
  uint64_t n = f->ops->pending(f->ud);
  if (n) bd_info("shutdown: writing %llu buffered %s", (unsigned long long)n, f->ops->what);
  bd_flusher_kick(f);
  finished(f);
}

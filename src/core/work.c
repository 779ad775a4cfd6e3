/* work.c: bounded submission to libuv's thread pool. */
#include "work.h"

#include <sched.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

static uv_loop_t *g_loop;       /* loop the `after` callbacks run on */
static int g_limit;             /* items handed to the pool at once */
static int g_nice;              /* the pool threads' nice value */
static int g_running;           /* handed to the pool */
static bd_work_t *g_head, *g_tail; /* waiting FIFO */
static size_t g_waiting;        /* FIFO length */

static void pump(void);

static void on_work(uv_work_t *req) {
  /* Render threads are CPU-bound batch work: SCHED_BATCH keeps their share
   * of the CPU but stops them from preempting the loop thread and the
   * database when those wake up, which keeps request latency low while
   * batches render. (A positive nice starved rendering whenever PostgreSQL
   * was busy; this does not.) */
  static __thread bool scheduled;
  if (!scheduled) {
    struct sched_param sp = {0};
    sched_setscheduler(0, SCHED_BATCH, &sp); /* 0: the calling thread on Linux */
    /* BATCHD_WORKER_NICE: on Linux a nice value is per thread */
    if (g_nice > 0) (void)setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), g_nice);
    scheduled = true;
  }
  bd_work_t *w = BD_CONTAINER_OF(req, bd_work_t, req);
  w->work(w);
}

static void on_after(uv_work_t *req, int status) {
  bd_work_t *w = BD_CONTAINER_OF(req, bd_work_t, req);
  g_running--;
  w->after(w, status);
  pump();
}

static void pump(void) {
  while (g_head && g_running < g_limit) {
    bd_work_t *w = g_head;
    g_head = w->next;
    if (!g_head) g_tail = NULL;
    g_waiting--;
    g_running++;
    if (uv_queue_work(g_loop, &w->req, on_work, on_after) != 0) {
      g_running--;
      w->after(w, UV_ECANCELED);
    }
  }
}

void bd_work_init(uv_loop_t *loop, int limit, int nice) {
  g_loop = loop;
  g_nice = nice;
  g_limit = limit > 0 ? limit : 1;
}

void bd_work_submit(bd_work_t *w) {
  w->next = NULL;
  if (g_tail) g_tail->next = w;
  else g_head = w;
  g_tail = w;
  g_waiting++;
  pump();
}

size_t bd_work_queued(void) { return g_waiting; }
size_t bd_work_running(void) { return (size_t)g_running; }

void bd_work_cancel_all(void) {
  bd_work_t *w = g_head;
  g_head = g_tail = NULL;
  g_waiting = 0;
  while (w) {
    bd_work_t *next = w->next;
    w->after(w, UV_ECANCELED);
    w = next;
  }
}

void bd_work_cancel_background(void) {
  bd_work_t *cancelled = NULL, **ct = &cancelled;
  bd_work_t **pp = &g_head;
  g_tail = NULL;
  while (*pp) {
    bd_work_t *w = *pp;
    if (w->background) {
      *pp = w->next;
      g_waiting--;
      w->next = NULL;
      *ct = w;
      ct = &w->next;
    } else {
      g_tail = w;
      pp = &w->next;
    }
  }
  while (cancelled) { /* after the list is consistent: an `after` may submit */
    bd_work_t *next = cancelled->next;
    cancelled->after(cancelled, UV_ECANCELED);
    cancelled = next;
  }
}

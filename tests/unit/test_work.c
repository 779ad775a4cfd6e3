/* test_work.c: the bounded work queue (work.c): FIFO order behind the limit,
 * cancellation of everything or of the background items only. */
#include "work.h"
#include "unit.h"

#include <stdatomic.h>
#include <unistd.h>

typedef struct {
  bd_work_t w;
  int id;
  int status; /* after()'s status, -999 until it ran */
  bool ran;   /* work() ran */
} item_t;

static int g_order[16], g_norder;
static atomic_int g_release; /* the first item blocks until this is set */

static void blocking_work(bd_work_t *w) {
  item_t *it = w->data;
  it->ran = true;
  while (it->id == 0 && !atomic_load(&g_release)) usleep(1000);
}

static void after(bd_work_t *w, int status) {
  item_t *it = w->data;
  it->status = status;
  g_order[g_norder++] = it->id;
}

static void init_items(item_t *items, int n) {
  for (int i = 0; i < n; i++) {
    items[i] = (item_t){.id = i, .status = -999};
    items[i].w.work = blocking_work;
    items[i].w.after = after;
    items[i].w.data = &items[i];
  }
}

static void run_until_done(uv_loop_t *loop, item_t *items, int n) {
  for (int spins = 0; spins < 100000; spins++) {
    int done = 0;
    for (int i = 0; i < n; i++) done += items[i].status != -999;
    if (done == n) return;
    uv_run(loop, UV_RUN_NOWAIT);
    usleep(100);
  }
}

static void test_cancel_background_only(void) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  bd_work_init(&loop, 1, 0);
  item_t items[6];
  init_items(items, 6);
  g_norder = 0;
  atomic_store(&g_release, 0);
  /* 0 runs (and blocks); 1..5 wait: 1, 3 and 5 are a job's renders */
  items[1].w.background = items[3].w.background = items[5].w.background = true;
  for (int i = 0; i < 6; i++) bd_work_submit(&items[i].w);
  CHECK_INT(bd_work_running(), 1);
  CHECK_INT(bd_work_queued(), 5);
  bd_work_cancel_background();
  /* the cancelled ones are told at once, in order; the others still wait */
  CHECK_INT(g_norder, 3);
  CHECK_INT(g_order[0], 1);
  CHECK_INT(g_order[1], 3);
  CHECK_INT(g_order[2], 5);
  CHECK_INT(items[1].status, UV_ECANCELED);
  CHECK_INT(bd_work_queued(), 2);
  atomic_store(&g_release, 1);
  run_until_done(&loop, items, 6);
  /* the foreground items ran, in FIFO order, after the running one */
  CHECK_INT(g_norder, 6);
  CHECK_INT(g_order[3], 0);
  CHECK_INT(g_order[4], 2);
  CHECK_INT(g_order[5], 4);
  CHECK(items[2].ran && items[4].ran && !items[1].ran && !items[3].ran && !items[5].ran);
  CHECK_INT(items[4].status, 0);
  /* a submit after the cancellation still works (the FIFO tail was rebuilt) */
  item_t more[1];
  init_items(more, 1);
  more[0].id = 7;
  bd_work_submit(&more[0].w);
  run_until_done(&loop, more, 1);
  CHECK_INT(more[0].status, 0);
  CHECK_INT(bd_work_queued(), 0);
  CHECK_INT(bd_work_running(), 0);
  uv_loop_close(&loop);
}

static void test_cancel_all(void) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  bd_work_init(&loop, 1, 0);
  item_t items[3];
  init_items(items, 3);
  g_norder = 0;
  atomic_store(&g_release, 0);
  for (int i = 0; i < 3; i++) bd_work_submit(&items[i].w);
  bd_work_cancel_all();
  CHECK_INT(items[1].status, UV_ECANCELED);
  CHECK_INT(items[2].status, UV_ECANCELED);
  atomic_store(&g_release, 1);
  run_until_done(&loop, items, 3);
  CHECK_INT(items[0].status, 0);
  uv_loop_close(&loop);
}

int main(void) {
  RUN(test_cancel_background_only);
  RUN(test_cancel_all);
  UNIT_DONE();
}

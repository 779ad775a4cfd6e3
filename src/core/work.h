/* work.h: the bounded CPU work queue in front of libuv's thread pool.
 *
 * Rendering runs on libuv's thread pool (uv_queue_work). At most `limit`
 * items are handed to the pool at once, below UV_THREADPOOL_SIZE so that
 * libuv's own file-system and DNS work never starves; the rest wait in a
 * FIFO here. `work` runs on a pool thread and may only touch what the item
 * owns; `after` runs on the loop thread (status UV_ECANCELED when the queue
 * was cancelled at shutdown before a thread picked the item up).
 */
#ifndef BD_WORK_H
#define BD_WORK_H

#include "common.h"
#include <uv.h>

typedef struct bd_work bd_work_t;
typedef void (*bd_work_fn)(bd_work_t *w);
typedef void (*bd_work_after_fn)(bd_work_t *w, int status);

struct bd_work {
  uv_work_t req;           /* libuv request (not reused before `after`) */
  bd_work_fn work;         /* runs on a pool thread */
  bd_work_after_fn after;  /* runs on the loop thread */
  void *data;              /* the item's own state */
  bool background;         /* a job's work (renders): cancelled as soon as shutdown begins */
  bd_work_t *next;         /* FIFO link while waiting */
};

/* nice: the pool threads' nice value once they run our work (0: unchanged). */
void bd_work_init(uv_loop_t *loop, int limit, int nice);
void bd_work_submit(bd_work_t *w);
/* Items waiting + running. */
size_t bd_work_queued(void);
size_t bd_work_running(void);
/* Fails every waiting item with UV_ECANCELED (their `after` runs). */
void bd_work_cancel_all(void);
/* The same for the waiting background items only (shutdown begins: a job
 * stops after the renders already running instead of its whole chunk;
 * requests still being answered keep their work). */
void bd_work_cancel_background(void);

#endif

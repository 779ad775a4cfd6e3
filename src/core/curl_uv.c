/* curl_uv.c: libcurl's multi-socket interface on uv_poll and a uv_timer (curl_uv.h). */
#include "curl_uv.h"

#include "buf.h"

#include <stdbool.h>
#include <stdlib.h>

struct bd_curl_uv {
  uv_loop_t *loop;          /* the loop */
  CURLM *multi;             /* curl's multi handle */
  uv_timer_t timer;         /* curl's timeout */
  bd_curl_uv_done_fn done;  /* a transfer ended */
  void *ud;                 /* its argument */
  int running;              /* transfers curl reports in progress */
  int added;                /* transfers in the multi handle */
};

typedef struct {
  uv_poll_t poll;           /* watcher of one curl socket */
  curl_socket_t fd;         /* that socket */
  bd_curl_uv_t *c;          /* owner */
} sock_t;

static void check_done(bd_curl_uv_t *c) {
  CURLMsg *m;
  int left;
  while ((m = curl_multi_info_read(c->multi, &left))) {
    if (m->msg != CURLMSG_DONE) continue;
    CURL *e = m->easy_handle;
    CURLcode res = m->data.result;
    curl_multi_remove_handle(c->multi, e);
    c->added--;
    c->done(c->ud, e, res);
  }
}

static void on_poll(uv_poll_t *h, int status, int events) {
  sock_t *s = h->data;
  bd_curl_uv_t *c = s->c;
  int flags = status < 0 ? CURL_CSELECT_ERR : 0;
  if (events & UV_READABLE) flags |= CURL_CSELECT_IN;
  if (events & UV_WRITABLE) flags |= CURL_CSELECT_OUT;
  curl_multi_socket_action(c->multi, s->fd, flags, &c->running);
  check_done(c);
}

static void on_timer(uv_timer_t *t) {
  bd_curl_uv_t *c = t->data;
  curl_multi_socket_action(c->multi, CURL_SOCKET_TIMEOUT, 0, &c->running);
  check_done(c);
}

static void sock_closed(uv_handle_t *h) { free(h->data); }

/* curl tells us which sockets to watch for what */
static int on_socket(CURL *e, curl_socket_t fd, int what, void *userp, void *socketp) {
  bd_curl_uv_t *c = userp;
  sock_t *s = socketp;
  if (what == CURL_POLL_REMOVE) {
    if (s) {
      uv_poll_stop(&s->poll);
      uv_close((uv_handle_t *)&s->poll, sock_closed);
      curl_multi_assign(c->multi, fd, NULL);
    }
    return 0;
  }
  if (!s) {
    s = bd_calloc(1, sizeof *s);
    s->fd = fd;
    s->c = c;
    uv_poll_init_socket(c->loop, &s->poll, fd);
    s->poll.data = s;
    curl_multi_assign(c->multi, fd, s);
  }
  int ev = (what & CURL_POLL_IN ? UV_READABLE : 0) | (what & CURL_POLL_OUT ? UV_WRITABLE : 0);
  uv_poll_start(&s->poll, ev, on_poll);
  return 0;
}

static int on_timeout(CURLM *m, long ms, void *userp) {
  bd_curl_uv_t *c = userp;
  if (ms < 0) uv_timer_stop(&c->timer);
  else uv_timer_start(&c->timer, on_timer, (uint64_t)ms, 0);
  return 0;
}

bd_curl_uv_t *bd_curl_uv_new(uv_loop_t *loop, bd_curl_uv_done_fn done, void *ud) {
  static bool global_init;
  if (!global_init) {
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) return NULL;
    global_init = true;
  }
  CURLM *m = curl_multi_init();
  if (!m) return NULL;
  bd_curl_uv_t *c = bd_calloc(1, sizeof *c);
  c->loop = loop;
  c->multi = m;
  c->done = done;
  c->ud = ud;
  curl_multi_setopt(m, CURLMOPT_SOCKETFUNCTION, on_socket);
  curl_multi_setopt(m, CURLMOPT_SOCKETDATA, c);
  curl_multi_setopt(m, CURLMOPT_TIMERFUNCTION, on_timeout);
  curl_multi_setopt(m, CURLMOPT_TIMERDATA, c);
  uv_timer_init(loop, &c->timer);
  c->timer.data = c;
  return c;
}

CURLM *bd_curl_uv_multi(bd_curl_uv_t *c) { return c->multi; }

int bd_curl_uv_add(bd_curl_uv_t *c, CURL *easy) {
  /* curl's timer callback starts the transfer on the next loop iteration,
   * so `done` never runs from inside this call */
  if (curl_multi_add_handle(c->multi, easy) != CURLM_OK) return -1;
  c->added++;
  return 0;
}

void bd_curl_uv_remove(bd_curl_uv_t *c, CURL *easy) {
  if (curl_multi_remove_handle(c->multi, easy) == CURLM_OK) c->added--;
}

int bd_curl_uv_running(const bd_curl_uv_t *c) { return c->added; }

static void timer_closed(uv_handle_t *h) { free(h->data); }

void bd_curl_uv_close(bd_curl_uv_t *c) {
  if (!c) return;
  /* closes the cached connections: curl removes their sockets (on_socket) */
  curl_multi_cleanup(c->multi);
  c->multi = NULL;
  uv_timer_stop(&c->timer);
  uv_close((uv_handle_t *)&c->timer, timer_closed);
}

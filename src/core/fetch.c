/* fetch.c: libcurl's multi-socket interface driven by uv_poll and a uv_timer. */
#include "fetch.h"

#include <ctype.h>
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>

typedef struct {
  CURL *easy;             /* the transfer */
  bd_buf_t body;          /* response so far */
  size_t max;             /* size limit */
  bool too_big;           /* the limit was hit */
  bd_fetch_cb cb;         /* completion */
  void *ud;               /* its argument */
  char errbuf[CURL_ERROR_SIZE]; /* curl's message */
} xfer_t;

typedef struct {
  uv_poll_t poll;         /* watcher of one curl socket */
  curl_socket_t fd;       /* that socket */
} sock_t;

static struct {
  uv_loop_t *loop;        /* the loop */
  CURLM *multi;           /* curl's multi handle (NULL until first use) */
  uv_timer_t timer;       /* curl's timeout */
  bool timer_init;        /* timer initialised */
  int running;            /* transfers in progress */
} F;

static void check_done(void) {
  CURLMsg *m;
  int left;
  while ((m = curl_multi_info_read(F.multi, &left))) {
    if (m->msg != CURLMSG_DONE) continue;
    CURL *e = m->easy_handle;
    CURLcode res = m->data.result;
    xfer_t *x;
    curl_easy_getinfo(e, CURLINFO_PRIVATE, (char **)&x);
    long status = 0;
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
    char *ct = NULL;
    curl_easy_getinfo(e, CURLINFO_CONTENT_TYPE, &ct);
    char ctype[128];
    snprintf(ctype, sizeof ctype, "%s", ct ? ct : "");
    curl_multi_remove_handle(F.multi, e);
    curl_easy_cleanup(e);
    char msg[300];
    int err = 1;
    if (x->too_big || res == CURLE_FILESIZE_EXCEEDED) snprintf(msg, sizeof msg, "larger than %zu bytes", x->max);
    else if (res != CURLE_OK) snprintf(msg, sizeof msg, "%s", x->errbuf[0] ? x->errbuf : curl_easy_strerror(res));
    else if (status != 200) snprintf(msg, sizeof msg, "answered HTTP %ld", status);
    else err = 0, msg[0] = '\0';
    x->cb(x->ud, err, msg, &x->body, ctype);
    bd_buf_free(&x->body);
    free(x);
  }
}

static void on_poll(uv_poll_t *h, int status, int events) {
  sock_t *s = h->data;
  int flags = status < 0 ? CURL_CSELECT_ERR : 0;
  if (events & UV_READABLE) flags |= CURL_CSELECT_IN;
  if (events & UV_WRITABLE) flags |= CURL_CSELECT_OUT;
  curl_multi_socket_action(F.multi, s->fd, flags, &F.running);
  check_done();
}

static void on_timer(uv_timer_t *t) {
  curl_multi_socket_action(F.multi, CURL_SOCKET_TIMEOUT, 0, &F.running);
  check_done();
}

static void sock_closed(uv_handle_t *h) { free(h->data); }

/* curl tells us which sockets to watch for what */
static int on_socket(CURL *e, curl_socket_t fd, int what, void *userp, void *socketp) {
  sock_t *s = socketp;
  if (what == CURL_POLL_REMOVE) {
    if (s) {
      uv_poll_stop(&s->poll);
      uv_close((uv_handle_t *)&s->poll, sock_closed);
      curl_multi_assign(F.multi, fd, NULL);
    }
    return 0;
  }
  if (!s) {
    s = bd_calloc(1, sizeof *s);
    s->fd = fd;
    uv_poll_init_socket(F.loop, &s->poll, fd);
    s->poll.data = s;
    curl_multi_assign(F.multi, fd, s);
  }
  int ev = (what & CURL_POLL_IN ? UV_READABLE : 0) | (what & CURL_POLL_OUT ? UV_WRITABLE : 0);
  uv_poll_start(&s->poll, ev, on_poll);
  return 0;
}

static int on_timeout(CURLM *m, long ms, void *userp) {
  if (ms < 0) uv_timer_stop(&F.timer);
  else uv_timer_start(&F.timer, on_timer, (uint64_t)ms, 0);
  return 0;
}

static size_t on_data(char *p, size_t size, size_t n, void *ud) {
  xfer_t *x = ud;
  size_t len = size * n;
  if (x->body.len + len > x->max) {
    x->too_big = true;
    return 0; /* aborts the transfer */
  }
  bd_buf_append(&x->body, p, len);
  return len;
}

void bd_fetch_init(uv_loop_t *loop) { F.loop = loop; }

static bool ensure_multi(void) {
  if (F.multi) return true;
  curl_global_init(CURL_GLOBAL_DEFAULT);
  F.multi = curl_multi_init();
  if (!F.multi) return false;
  curl_multi_setopt(F.multi, CURLMOPT_SOCKETFUNCTION, on_socket);
  curl_multi_setopt(F.multi, CURLMOPT_TIMERFUNCTION, on_timeout);
  uv_timer_init(F.loop, &F.timer);
  F.timer_init = true;
  return true;
}

bool bd_fetch_url_host(const char *url, char *out, size_t outsz) {
  CURLU *u = curl_url();
  char *scheme = NULL, *host = NULL;
  bool ok = u && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
            curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
            curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK &&
            (!strcmp(scheme, "http") || !strcmp(scheme, "https")) && strlen(host) < outsz;
  if (ok) {
    size_t i = 0;
    for (; host[i]; i++) out[i] = (char)tolower((unsigned char)host[i]);
    out[i] = '\0';
  }
  curl_free(scheme);
  curl_free(host);
  curl_url_cleanup(u);
  return ok;
}

int bd_fetch(const char *url, size_t max_bytes, uint32_t timeout_ms, bd_fetch_cb cb, void *ud) {
  if (!ensure_multi()) return -1;
  xfer_t *x = bd_calloc(1, sizeof *x);
  x->max = max_bytes;
  x->cb = cb;
  x->ud = ud;
  CURL *e = curl_easy_init();
  if (!e) {
    free(x);
    return -1;
  }
  x->easy = e;
  curl_easy_setopt(e, CURLOPT_URL, url);
  curl_easy_setopt(e, CURLOPT_PRIVATE, x);
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_data);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, x);
  curl_easy_setopt(e, CURLOPT_ERRORBUFFER, x->errbuf);
  curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
  curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)timeout_ms);
  curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)max_bytes);
  curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_USERAGENT, "batchd/" BATCHD_VERSION);
  if (curl_multi_add_handle(F.multi, e) != CURLM_OK) {
    curl_easy_cleanup(e);
    free(x);
    return -1;
  }
  /* curl's timer callback starts the transfer on the next loop iteration,
   * so `cb` never runs from inside this call */
  return 0;
}

void bd_fetch_close(void) {
  /* called at shutdown once requests have drained, so nothing is in flight;
   * a transfer that still is would only lose its (discarded) answer */
  if (!F.multi) return;
  curl_multi_cleanup(F.multi);
  F.multi = NULL;
  if (F.timer_init) {
    uv_close((uv_handle_t *)&F.timer, NULL);
    F.timer_init = false;
  }
}

/* fuzz_conn.h: the client side the HTTP fuzz targets share. One connection
 * to the server under test, over a socketpair handed to
 * bd_server_adopt_fd: the input is written `step` bytes at a time with the
 * loop run between writes, then the client half-closes and the loop runs
 * until the connection is gone. Everything the server writes is passed to
 * `drain`. A server that neither reads nor closes, or a connection that
 * does not end after EOF, aborts (a hang is a finding). */
#ifndef BD_FUZZ_CONN_H
#define BD_FUZZ_CONN_H

#include "http.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

typedef void (*fuzz_drain_fn)(int fd, void *ud);

/* `busy` (may be NULL) says the harness still has work queued for the loop. */
static void fuzz_conn_run(uv_loop_t *loop, bd_server_t *srv, const uint8_t *data, size_t size, size_t step,
                          fuzz_drain_fn drain, void *ud, bool (*busy)(void)) {
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) != 0) abort();
  if (bd_server_adopt_fd(srv, sv[0]) != 0) abort();
  size_t off = 0;
  int stalls = 0;
  while (off < size) {
    size_t n = size - off < step ? size - off : step;
    ssize_t w = write(sv[1], data + off, n);
    if (w > 0) {
      off += (size_t)w;
      stalls = 0;
    } else if (w < 0 && errno != EAGAIN) {
      break; /* the server closed its end (an early error): the rest is dropped */
    } else if (++stalls > 10000) {
      abort(); /* the server neither reads nor closes: a hang */
    }
    uv_run(loop, UV_RUN_NOWAIT);
    drain(sv[1], ud);
  }
  for (int i = 0; i < 16; i++) {
    uv_run(loop, UV_RUN_NOWAIT);
    drain(sv[1], ud);
  }
  shutdown(sv[1], SHUT_WR);
  bd_server_stats_t st;
  for (int i = 0;; i++) {
    uv_run(loop, UV_RUN_NOWAIT);
    drain(sv[1], ud);
    bd_server_stats(srv, &st);
    if (st.active == 0 && !(busy && busy())) break;
    if (i > 100000) {
      fprintf(stderr, "connection did not end after EOF\n");
      abort();
    }
  }
  /* closes and frees complete in the next iterations */
  for (int i = 0; i < 4; i++) {
    uv_run(loop, UV_RUN_NOWAIT);
    drain(sv[1], ud);
  }
  close(sv[1]);
}

#endif

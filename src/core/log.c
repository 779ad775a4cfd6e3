/* log.c: buffered JSON-lines logging. */
#include "log.h"

#include "json.h"
#include "util.h"

#include <stdio.h>
#include <unistd.h>

static bd_buf_t g_log;             /* pending lines */
static uv_prepare_t g_prepare;     /* flushes before the loop sleeps */
static bool g_buffered;            /* the prepare handle is running */

static const char *level_name(bd_log_level_t l) {
  switch (l) {
  case BD_LOG_DEBUG: return "debug";
  case BD_LOG_INFO: return "info";
  case BD_LOG_WARN: return "warn";
  default: return "error";
  }
}

void bd_log_flush(void) {
  size_t off = 0;
  while (off < g_log.len) {
    ssize_t w = write(STDERR_FILENO, g_log.data + off, g_log.len - off);
    if (w <= 0) break; /* stderr gone: drop rather than block or spin */
    off += (size_t)w;
  }
  bd_buf_reset(&g_log);
  if (g_log.cap > (1u << 20)) bd_buf_free(&g_log);
}

static void on_prepare(uv_prepare_t *h) {
  if (g_log.len) bd_log_flush();
}

void bd_log_start(uv_loop_t *loop) {
  uv_prepare_init(loop, &g_prepare);
  uv_prepare_start(&g_prepare, on_prepare);
  uv_unref((uv_handle_t *)&g_prepare);
  g_buffered = true;
}

void bd_log_stop(void) {
  bd_log_flush();
  if (g_buffered) {
    g_buffered = false;
    uv_close((uv_handle_t *)&g_prepare, NULL);
  }
}

void bd_log_json_line(const char *json, size_t n) {
  bd_buf_append(&g_log, json, n);
  bd_buf_putc(&g_log, '\n');
  if (!g_buffered || g_log.len > (256u << 10)) bd_log_flush();
}

void bd_log(bd_log_level_t level, const char *fmt, ...) {
  bd_buf_t msg = BD_BUF_INIT;
  va_list ap;
  va_start(ap, fmt);
  bd_buf_vprintf(&msg, fmt, ap);
  va_end(ap);
  char ts[32];
  bd_time_fmt(ts, bd_wall_us(), true);
  bd_buf_t line = BD_BUF_INIT;
  bd_jw_t w;
  bd_jw_init(&w, &line);
  bd_jw_obj(&w);
  bd_jw_kstr(&w, "ts", ts);
  bd_jw_kstr(&w, "level", level_name(level));
  bd_jw_key(&w, "msg");
  bd_jw_strn(&w, msg.data ? msg.data : "", msg.len);
  bd_jw_obj_end(&w);
  bd_log_json_line(line.data, line.len);
  bd_buf_free(&line);
  bd_buf_free(&msg);
  if (level >= BD_LOG_WARN) bd_log_flush();
}

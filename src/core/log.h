/* log.h: JSON-lines logging on stderr.
 *
 * Lines are collected in a buffer and written once per loop iteration (a
 * uv_prepare handle flushes before the loop sleeps), so a busy server does
 * one write(2) per iteration rather than one per request. Messages from
 * before the loop runs, and from bd_log_flush(), go out at once.
 * Loop thread only. Secrets (tokens, Authorization headers) are never
 * passed here: callers log credential ids only.
 */
#ifndef BD_LOG_H
#define BD_LOG_H

#include "buf.h"
#include <uv.h>

typedef enum { BD_LOG_DEBUG, BD_LOG_INFO, BD_LOG_WARN, BD_LOG_ERROR } bd_log_level_t;

void bd_log_start(uv_loop_t *loop); /* enables per-iteration buffering */
void bd_log_stop(void);             /* flushes and closes the prepare handle */
void bd_log_flush(void);
void bd_log(bd_log_level_t level, const char *fmt, ...) BD_PRINTF(2, 3);
/* Appends one complete JSON object (no newline) as a line. */
void bd_log_json_line(const char *json, size_t n);

#define bd_info(...) bd_log(BD_LOG_INFO, __VA_ARGS__)
#define bd_warn(...) bd_log(BD_LOG_WARN, __VA_ARGS__)
#define bd_error(...) bd_log(BD_LOG_ERROR, __VA_ARGS__)

#endif

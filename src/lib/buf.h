/* buf.h: a growable byte buffer.
 *
 * The buffer owns `data`; it is always NUL-terminated after any append so it
 * can be handed to C string functions, but `len` excludes that NUL. Any
 * thread may use a buffer it owns; buffers are not shared.
 */
#ifndef BD_BUF_H
#define BD_BUF_H

#include "common.h"
#include <stdarg.h>

typedef struct {
  char *data;  /* heap storage, NULL until the first append */
  size_t len;  /* bytes in use (excluding the trailing NUL) */
  size_t cap;  /* bytes allocated */
} bd_buf_t;

#define BD_BUF_INIT {NULL, 0, 0}

void bd_buf_init(bd_buf_t *b);
void bd_buf_free(bd_buf_t *b);             /* releases storage, leaves an empty buffer */
void bd_buf_reset(bd_buf_t *b);            /* len = 0, keeps storage */
void bd_buf_reserve(bd_buf_t *b, size_t extra); /* room for `extra` more bytes + NUL */
void bd_buf_append(bd_buf_t *b, const void *p, size_t n);
void bd_buf_puts(bd_buf_t *b, const char *s);
/* inline: the JSON writers call it for every quote and separator */
static inline void bd_buf_putc(bd_buf_t *b, char c) {
  if (b->len + 2 > b->cap) bd_buf_reserve(b, 1);
  b->data[b->len++] = c;
  b->data[b->len] = '\0';
}
void bd_buf_printf(bd_buf_t *b, const char *fmt, ...) BD_PRINTF(2, 3);
void bd_buf_vprintf(bd_buf_t *b, const char *fmt, va_list ap);
void bd_buf_consume(bd_buf_t *b, size_t n); /* drops the first n bytes */
/* Hands the storage to the caller (who frees it with free()); the buffer
 * becomes empty. Returns a valid NUL-terminated string even when empty. */
char *bd_buf_detach(bd_buf_t *b, size_t *len);

#endif

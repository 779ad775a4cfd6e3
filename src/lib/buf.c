/* buf.c: growable byte buffer and the aborting allocators. */
#include "buf.h"

#include <stdio.h>
#include <stdlib.h>
#include <strings.h>
#include <time.h>

static void oom(size_t n) {
  fprintf(stderr, "batchd: out of memory allocating %zu bytes\n", n);
  abort();
}

void *bd_malloc(size_t n) {
  void *p = malloc(n ? n : 1);
  if (!p) oom(n);
  return p;
}

void *bd_calloc(size_t n, size_t sz) {
  void *p = calloc(n ? n : 1, sz ? sz : 1);
  if (!p) oom(n * sz);
  return p;
}

void *bd_realloc(void *p, size_t n) {
  void *q = realloc(p, n ? n : 1);
  if (!q) oom(n);
  return q;
}

char *bd_strdup(const char *s) { return bd_strndup(s, strlen(s)); }

char *bd_strndup(const char *s, size_t n) {
  char *p = bd_malloc(n + 1);
  memcpy(p, s, n);
  p[n] = '\0';
  return p;
}

bool bd_str_ieq(bd_str_t a, const char *lit) {
  size_t n = strlen(lit);
  return a.len == n && strncasecmp(a.p, lit, n) == 0;
}

uint64_t bd_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

uint64_t bd_now_ms(void) { return bd_now_ns() / 1000000ull; }

int64_t bd_wall_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

void bd_buf_init(bd_buf_t *b) { *b = (bd_buf_t)BD_BUF_INIT; }

void bd_buf_free(bd_buf_t *b) {
  free(b->data);
  *b = (bd_buf_t)BD_BUF_INIT;
}

void bd_buf_reset(bd_buf_t *b) {
  b->len = 0;
  if (b->data) b->data[0] = '\0';
}

void bd_buf_reserve(bd_buf_t *b, size_t extra) {
  size_t need = b->len + extra + 1;
  if (need <= b->cap) return;
  size_t cap = b->cap ? b->cap : 64;
  while (cap < need) cap = cap < (1u << 20) ? cap * 2 : cap + cap / 2;
  b->data = bd_realloc(b->data, cap);
  b->cap = cap;
}

void bd_buf_append(bd_buf_t *b, const void *p, size_t n) {
  bd_buf_reserve(b, n);
  if (n) memcpy(b->data + b->len, p, n);
  b->len += n;
  b->data[b->len] = '\0';
}

void bd_buf_puts(bd_buf_t *b, const char *s) { bd_buf_append(b, s, strlen(s)); }


void bd_buf_vprintf(bd_buf_t *b, const char *fmt, va_list ap) {
  va_list cp;
  va_copy(cp, ap);
  bd_buf_reserve(b, 64);
  int n = vsnprintf(b->data + b->len, b->cap - b->len, fmt, cp);
  va_end(cp);
  if (n < 0) return;
  if ((size_t)n >= b->cap - b->len) {
    bd_buf_reserve(b, (size_t)n);
    vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap);
  }
  b->len += (size_t)n;
}

void bd_buf_printf(bd_buf_t *b, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  bd_buf_vprintf(b, fmt, ap);
  va_end(ap);
}

void bd_buf_consume(bd_buf_t *b, size_t n) {
  if (n >= b->len) {
    bd_buf_reset(b);
    return;
  }
  memmove(b->data, b->data + n, b->len - n);
  b->len -= n;
  b->data[b->len] = '\0';
}

char *bd_buf_detach(bd_buf_t *b, size_t *len) {
  if (!b->data) bd_buf_reserve(b, 0), b->data[0] = '\0';
  char *p = b->data;
  if (len) *len = b->len;
  *b = (bd_buf_t)BD_BUF_INIT;
  return p;
}

/* common.h: allocation, attributes and small helpers used by every module.
 *
 * Allocation policy (as redis' zmalloc): running out of memory is not a
 * recoverable condition for a server whose memory is bounded by design, so
 * bd_malloc and friends abort with a message instead of returning NULL.
 * Every other failure is reported by return value.
 */
#ifndef BD_COMMON_H
#define BD_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include <string.h>

#define BD_MUSTCHECK __attribute__((warn_unused_result))
#define BD_PRINTF(a, b) __attribute__((format(printf, a, b)))
#define BD_UNUSED __attribute__((unused))
#define BD_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define BD_MIN(a, b) ((a) < (b) ? (a) : (b))
#define BD_MAX(a, b) ((a) > (b) ? (a) : (b))
#define BD_CONTAINER_OF(ptr, type, field) ((type *)((char *)(ptr)-offsetof(type, field)))

void *bd_malloc(size_t n);
void *bd_calloc(size_t n, size_t sz);
void *bd_realloc(void *p, size_t n);
char *bd_strdup(const char *s);
char *bd_strndup(const char *s, size_t n);

/* A borrowed, not necessarily NUL-terminated, byte range. */
typedef struct {
  const char *p; /* first byte (may be NULL when len == 0) */
  size_t len;    /* number of bytes */
} bd_str_t;

#define BD_STR(lit) ((bd_str_t){(lit), sizeof(lit) - 1})
static inline bd_str_t bd_str_c(const char *s) { return (bd_str_t){s, s ? strlen(s) : 0}; }
static inline bool bd_str_eq(bd_str_t a, const char *lit) {
  size_t n = strlen(lit);
  return a.len == n && memcmp(a.p, lit, n) == 0;
}
bool bd_str_ieq(bd_str_t a, const char *lit); /* ASCII case-insensitive */

/* Monotonic clock in nanoseconds / milliseconds; wall clock in microseconds
 * since the Unix epoch. */
uint64_t bd_now_ns(void);
uint64_t bd_now_ms(void);
int64_t bd_wall_us(void);

#endif

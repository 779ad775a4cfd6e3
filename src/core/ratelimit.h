/* ratelimit.h: token-bucket rate limiter keyed by credential.
 *
 * Loop thread only (no locking). Each key gets a bucket of `burst` tokens
 * refilled at `rate` tokens per second. Memory is bounded by `max_keys`:
 * when full, buckets that are already full (idle keys) are evicted first,
 * then the least recently used. (Full buckets are looked for among the few
 * least recently used only, to keep eviction O(1).) A limiter with
 * rate <= 0 allows everything (the headers then report limit 0).
 * burst 0 is treated as 1; max_keys 0 as 1. Keys are hashed with a random
 * SipHash key, so sodium_init() must have been called.
 */
#ifndef BD_RATELIMIT_H
#define BD_RATELIMIT_H

#include "common.h"

typedef struct bd_rl bd_rl_t;

typedef struct {
  bool allowed;           /* the request may proceed */
  uint32_t limit;         /* X-RateLimit-Limit: the bucket size */
  uint32_t remaining;     /* X-RateLimit-Remaining after this request */
  int64_t reset_unix;     /* X-RateLimit-Reset: when the bucket is full again (unix s) */
  uint32_t retry_after_s; /* Retry-After when !allowed (>= 1) */
} bd_rl_result_t;

bd_rl_t *bd_rl_new(double rate_per_s, uint32_t burst, size_t max_keys);
void bd_rl_free(bd_rl_t *rl);
/* Takes one token for key. now_ms is a monotonic clock, now_unix wall seconds. */
void bd_rl_take(bd_rl_t *rl, bd_str_t key, uint64_t now_ms, int64_t now_unix, bd_rl_result_t *out);
size_t bd_rl_size(const bd_rl_t *rl); /* keys tracked */

#endif

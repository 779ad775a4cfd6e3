/* test_ratelimit.c: token buckets, refill, header values, bounded memory.
 * Time is passed in, so nothing sleeps. */
#include "ratelimit.h"
#include "unit.h"

#include <sodium.h>
#include <stdio.h>

static bd_rl_result_t take(bd_rl_t *rl, const char *key, uint64_t now_ms, int64_t now_unix) {
  bd_rl_result_t r;
  memset(&r, 0xAA, sizeof r); /* every field must be written */
  bd_rl_take(rl, bd_str_c(key), now_ms, now_unix, &r);
  return r;
}

static void test_burst_then_deny(void) {
  bd_rl_t *rl = bd_rl_new(1.0, 3, 100);
  bd_rl_result_t r;
  for (int i = 0; i < 3; i++) {
    r = take(rl, "k", 1000, 100);
    CHECK(r.allowed);
    CHECK_INT(r.limit, 3);
    CHECK_INT(r.remaining, 2 - i);
    CHECK_INT(r.retry_after_s, 0);
    CHECK_INT(r.reset_unix, 100 + i + 1); /* i+1 tokens missing at 1/s */
  }
  r = take(rl, "k", 1000, 100);
  CHECK(!r.allowed);
  CHECK_INT(r.limit, 3);
  CHECK_INT(r.remaining, 0);
  CHECK_INT(r.retry_after_s, 1);
  CHECK_INT(r.reset_unix, 103);
  /* denials do not consume anything */
  for (int i = 0; i < 10; i++) r = take(rl, "k", 1000, 100);
  CHECK(!r.allowed);
  CHECK_INT(r.reset_unix, 103);
  r = take(rl, "k", 2000, 101); /* one token back after a second */
  CHECK(r.allowed);
  CHECK_INT(r.remaining, 0);
  CHECK_INT(bd_rl_size(rl), 1);
  bd_rl_free(rl);
}

static void test_refill(void) {
  bd_rl_t *rl = bd_rl_new(2.0, 2, 100);
  bd_rl_result_t r;
  take(rl, "k", 0, 0);
  take(rl, "k", 0, 0);
  r = take(rl, "k", 0, 0);
  CHECK(!r.allowed);
  CHECK_INT(r.retry_after_s, 1); /* ceil(1/2) */
  CHECK_INT(r.reset_unix, 1);    /* ceil(2/2) */
  r = take(rl, "k", 250, 0);     /* 0.5 token */
  CHECK(!r.allowed);
  CHECK_INT(r.remaining, 0);
  CHECK_INT(r.retry_after_s, 1);
  CHECK_INT(r.reset_unix, 1);    /* ceil(1.5/2) */
  r = take(rl, "k", 400, 0);     /* 0.8 token */
  CHECK(!r.allowed);
  r = take(rl, "k", 600, 0);     /* 1.2 tokens -> 0.2 left */
  CHECK(r.allowed);
  CHECK_INT(r.remaining, 0);
  CHECK_INT(r.reset_unix, 1);    /* ceil(1.8/2) */
  r = take(rl, "k", 100000, 100); /* capped at the burst: 2 -> 1 */
  CHECK(r.allowed);
  CHECK_INT(r.remaining, 1);
  CHECK_INT(r.reset_unix, 101);
  bd_rl_free(rl);

  /* slow rates: the wait is rounded up to whole seconds */
  rl = bd_rl_new(0.5, 1, 10);
  r = take(rl, "k", 0, 1000);
  CHECK(r.allowed);
  CHECK_INT(r.reset_unix, 1002);
  r = take(rl, "k", 0, 1000);
  CHECK(!r.allowed);
  CHECK_INT(r.retry_after_s, 2);
  r = take(rl, "k", 1500, 1001); /* 0.75 token */
  CHECK(!r.allowed);
  CHECK_INT(r.retry_after_s, 1); /* ceil(0.25/0.5) */
  r = take(rl, "k", 2000, 1002);
  CHECK(r.allowed);
  bd_rl_free(rl);

  /* fast rates: many requests per second */
  rl = bd_rl_new(10.0, 100, 10);
  for (int i = 0; i < 100; i++) {
    r = take(rl, "k", 0, 0);
    CHECK(r.allowed && r.remaining == (uint32_t)(99 - i));
  }
  CHECK_INT(r.reset_unix, 10);
  r = take(rl, "k", 0, 0);
  CHECK(!r.allowed);
  CHECK_INT(r.retry_after_s, 1);
  /* over 10 s in 100 ms steps exactly one request per step gets through */
  int allowed = 0;
  for (uint64_t t = 100; t <= 10000; t += 100) allowed += take(rl, "k", t, 0).allowed;
  CHECK_INT(allowed, 100);
  bd_rl_free(rl);
}

static void test_keys_independent(void) {
  bd_rl_t *rl = bd_rl_new(0.1, 1, 100);
  bd_rl_result_t r;
  r = take(rl, "a", 0, 0);
  CHECK(r.allowed);
  r = take(rl, "a", 0, 0);
  CHECK(!r.allowed);
  CHECK_INT(r.retry_after_s, 10);
  r = take(rl, "b", 0, 0);
  CHECK(r.allowed);
  r = take(rl, "ab", 0, 0);
  CHECK(r.allowed);
  /* keys are bytes with a length: NULs and prefixes matter */
  bd_rl_take(rl, (bd_str_t){"x\0y", 3}, 0, 0, &r);
  CHECK(r.allowed);
  bd_rl_take(rl, (bd_str_t){"x\0z", 3}, 0, 0, &r);
  CHECK(r.allowed);
  bd_rl_take(rl, (bd_str_t){"x\0y", 3}, 0, 0, &r);
  CHECK(!r.allowed);
  bd_rl_take(rl, (bd_str_t){"x\0y", 2}, 0, 0, &r);
  CHECK(r.allowed);
  /* the empty key is a key like any other */
  bd_rl_take(rl, (bd_str_t){NULL, 0}, 0, 0, &r);
  CHECK(r.allowed);
  bd_rl_take(rl, (bd_str_t){"", 0}, 0, 0, &r);
  CHECK(!r.allowed);
  CHECK_INT(bd_rl_size(rl), 7);
  /* the limiter copies keys: a reused caller buffer does not alias */
  char buf[8] = "key1";
  bd_rl_take(rl, bd_str_c(buf), 0, 0, &r);
  CHECK(r.allowed);
  memcpy(buf, "key2", 4);
  bd_rl_take(rl, bd_str_c(buf), 0, 0, &r);
  CHECK(r.allowed);
  bd_rl_take(rl, bd_str_c("key1"), 0, 0, &r);
  CHECK(!r.allowed);
  bd_rl_free(rl);
}

static void test_bounded(void) {
  bd_rl_t *rl = bd_rl_new(1.0, 5, 50);
  bd_rl_result_t r;
  char key[16];
  int over = 0;
  for (int i = 0; i < 5000; i++) {
    snprintf(key, sizeof key, "k%d", i);
    r = take(rl, key, (uint64_t)i, 0);
    CHECK(r.allowed);
    over += bd_rl_size(rl) > 50;
  }
  CHECK_INT(over, 0);
  CHECK_INT(bd_rl_size(rl), 50);
  /* the most recent keys are still tracked (their buckets are not fresh) */
  r = take(rl, "k4999", 4999, 0);
  CHECK_INT(r.remaining, 3);
  bd_rl_free(rl);

  /* a large run stays fast and bounded (O(1) per take) */
  rl = bd_rl_new(100.0, 10, 1000);
  over = 0;
  for (int i = 0; i < 300000; i++) {
    snprintf(key, sizeof key, "%d", i % 5000);
    take(rl, key, (uint64_t)i / 10, 0);
    over += bd_rl_size(rl) > 1000;
  }
  CHECK_INT(over, 0);
  CHECK_INT(bd_rl_size(rl), 1000);
  bd_rl_free(rl);

  /* max_keys 1 (and 0, treated as 1) */
  for (size_t mk = 0; mk <= 1; mk++) {
    rl = bd_rl_new(1.0, 2, mk);
    take(rl, "a", 0, 0);
    take(rl, "b", 0, 0);
    CHECK_INT(bd_rl_size(rl), 1);
    r = take(rl, "b", 0, 0); /* b is the one kept */
    CHECK_INT(r.remaining, 0);
    bd_rl_free(rl);
  }
}

/* When full, a bucket that has refilled completely is evicted before the
 * least recently used one, which would otherwise get a free new burst. */
static void test_evicts_full_first(void) {
  bd_rl_t *rl = bd_rl_new(1.0, 5, 3);
  bd_rl_result_t r;
  for (int i = 0; i < 5; i++) take(rl, "a", 0, 0); /* a: empty, least recently used */
  take(rl, "b", 0, 0);                              /* b: 4 tokens, full again at 1 s */
  for (int i = 0; i < 3; i++) take(rl, "c", 2000, 0); /* c: 2 tokens */
  /* at 1.5 s: a has 1.5 tokens, b is full, c has 2 */
  take(rl, "d", 1500, 0);
  CHECK_INT(bd_rl_size(rl), 3);
  /* a kept its state: one token, then denied */
  r = take(rl, "a", 1500, 0);
  CHECK(r.allowed);
  CHECK_INT(r.remaining, 0);
  r = take(rl, "a", 1500, 0);
  CHECK(!r.allowed);
  /* c kept its state too */
  r = take(rl, "c", 2000, 0);
  CHECK_INT(r.remaining, 1);
  bd_rl_free(rl);
}

/* With no full bucket, the least recently used goes. */
static void test_evicts_lru(void) {
  bd_rl_t *rl = bd_rl_new(1.0, 5, 2);
  bd_rl_result_t r;
  take(rl, "a", 0, 0); /* 4 */
  take(rl, "b", 0, 0); /* 4 */
  take(rl, "a", 0, 0); /* 3, a now most recent */
  take(rl, "c", 0, 0); /* evicts b */
  CHECK_INT(bd_rl_size(rl), 2);
  r = take(rl, "a", 0, 0);
  CHECK_INT(r.remaining, 2); /* a kept */
  r = take(rl, "c", 0, 0);
  CHECK_INT(r.remaining, 3); /* c kept */
  r = take(rl, "b", 0, 0);   /* b is new again: evicts the LRU, a */
  CHECK_INT(r.remaining, 4);
  r = take(rl, "c", 0, 0);
  CHECK_INT(r.remaining, 2);
  r = take(rl, "a", 0, 0);
  CHECK_INT(r.remaining, 4); /* a was evicted: fresh bucket */
  bd_rl_free(rl);
}

static void test_disabled(void) {
  double rates[] = {0, -1};
  for (size_t k = 0; k < BD_ARRAY_LEN(rates); k++) {
    bd_rl_t *rl = bd_rl_new(rates[k], 10, 10);
    bd_rl_result_t r;
    char key[16];
    for (int i = 0; i < 100; i++) {
      snprintf(key, sizeof key, "k%d", i % 3);
      r = take(rl, key, 0, 777);
      CHECK(r.allowed);
      CHECK_INT(r.limit, 0);
      CHECK_INT(r.remaining, 0);
      CHECK_INT(r.reset_unix, 777);
      CHECK_INT(r.retry_after_s, 0);
    }
    CHECK_INT(bd_rl_size(rl), 0);
    bd_rl_free(rl);
  }
}

static void test_edges(void) {
  bd_rl_result_t r;
  /* burst 0 behaves as 1 rather than denying forever */
  bd_rl_t *rl = bd_rl_new(1.0, 0, 10);
  r = take(rl, "k", 0, 0);
  CHECK(r.allowed);
  CHECK_INT(r.limit, 1);
  r = take(rl, "k", 0, 0);
  CHECK(!r.allowed);
  bd_rl_free(rl);
  /* a clock that goes backwards refills nothing and does not wrap */
  rl = bd_rl_new(1.0, 2, 10);
  take(rl, "k", 10000, 0);
  take(rl, "k", 10000, 0);
  r = take(rl, "k", 5000, 0);
  CHECK(!r.allowed);
  r = take(rl, "k", 10999, 0);
  CHECK(!r.allowed);
  r = take(rl, "k", 11000, 0);
  CHECK(r.allowed);
  bd_rl_free(rl);
  /* a tiny rate gives large but sane header values */
  rl = bd_rl_new(1e-12, 1, 10);
  take(rl, "k", 0, 0);
  r = take(rl, "k", 0, 0);
  CHECK(!r.allowed);
  CHECK(r.retry_after_s == UINT32_MAX);
  CHECK(r.reset_unix > 0);
  bd_rl_free(rl);
  /* a big burst */
  rl = bd_rl_new(1000.0, 1000000, 10);
  r = take(rl, "k", 0, 0);
  CHECK(r.allowed && r.remaining == 999999 && r.limit == 1000000);
  CHECK_INT(r.reset_unix, 1); /* ceil(1/1000) */
  bd_rl_free(rl);
  bd_rl_free(NULL);
}

int main(void) {
  if (sodium_init() < 0) return 1;
  RUN(test_burst_then_deny);
  RUN(test_refill);
  RUN(test_keys_independent);
  RUN(test_bounded);
  RUN(test_evicts_full_first);
  RUN(test_evicts_lru);
  RUN(test_disabled);
  RUN(test_edges);
  UNIT_DONE();
}

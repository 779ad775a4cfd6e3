/* test_ratelimit.c: token buckets, refill, headers' values, bounded memory. */
#include "ratelimit.h"
#include "unit.h"

#include <stdio.h>

static void test_burst_then_deny(void) {
  bd_rl_t *rl = bd_rl_new(1.0, 3, 100);
  bd_rl_result_t r;
  for (int i = 0; i < 3; i++) {
    bd_rl_take(rl, bd_str_c("k"), 1000, 100, &r);
    CHECK(r.allowed);
    CHECK_INT(r.limit, 3);
    CHECK_INT(r.remaining, 2 - i);
  }
  bd_rl_take(rl, bd_str_c("k"), 1000, 100, &r);
  CHECK(!r.allowed);
  CHECK_INT(r.remaining, 0);
  CHECK_INT(r.retry_after_s, 1);
  CHECK_INT(r.reset_unix, 103); /* 3 tokens at 1/s */
  bd_rl_free(rl);
}

static void test_refill(void) {
  bd_rl_t *rl = bd_rl_new(2.0, 2, 100);
  bd_rl_result_t r;
  bd_rl_take(rl, bd_str_c("k"), 0, 0, &r);
  bd_rl_take(rl, bd_str_c("k"), 0, 0, &r);
  bd_rl_take(rl, bd_str_c("k"), 0, 0, &r);
  CHECK(!r.allowed);
  bd_rl_take(rl, bd_str_c("k"), 400, 0, &r); /* 0.8 token */
  CHECK(!r.allowed);
  bd_rl_take(rl, bd_str_c("k"), 600, 0, &r); /* 1.2 tokens */
  CHECK(r.allowed);
  bd_rl_take(rl, bd_str_c("k"), 100000, 100, &r); /* capped at the burst */
  CHECK(r.allowed);
  CHECK_INT(r.remaining, 1);
  bd_rl_free(rl);
}

static void test_keys_independent(void) {
  bd_rl_t *rl = bd_rl_new(0.1, 1, 100);
  bd_rl_result_t r;
  bd_rl_take(rl, bd_str_c("a"), 0, 0, &r);
  CHECK(r.allowed);
  bd_rl_take(rl, bd_str_c("a"), 0, 0, &r);
  CHECK(!r.allowed);
  CHECK_INT(r.retry_after_s, 10);
  bd_rl_take(rl, bd_str_c("b"), 0, 0, &r);
  CHECK(r.allowed);
  bd_rl_free(rl);
}

static void test_bounded(void) {
  bd_rl_t *rl = bd_rl_new(1.0, 5, 50);
  bd_rl_result_t r;
  char key[16];
  for (int i = 0; i < 1000; i++) {
    snprintf(key, sizeof key, "k%d", i);
    bd_rl_take(rl, bd_str_c(key), (uint64_t)i, 0, &r);
    CHECK(r.allowed);
    CHECK(bd_rl_size(rl) <= 50);
  }
  CHECK_INT(bd_rl_size(rl), 50);
  /* the most recent keys are still tracked (their bucket is not fresh) */
  bd_rl_take(rl, bd_str_c("k999"), 999, 0, &r);
  CHECK_INT(r.remaining, 3);
  bd_rl_free(rl);
}

static void test_disabled(void) {
  bd_rl_t *rl = bd_rl_new(0, 10, 10);
  bd_rl_result_t r;
  for (int i = 0; i < 100; i++) {
    bd_rl_take(rl, bd_str_c("k"), 0, 0, &r);
    CHECK(r.allowed);
  }
  CHECK_INT(r.limit, 0);
  CHECK_INT(bd_rl_size(rl), 0);
  bd_rl_free(rl);
}

int main(void) {
  RUN(test_burst_then_deny);
  RUN(test_refill);
  RUN(test_keys_independent);
  RUN(test_bounded);
  RUN(test_disabled);
  UNIT_DONE();
}

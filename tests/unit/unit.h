/* unit.h: a minimal test harness for C unit tests.
 *
 * Each test file defines `static void test_x(void)` functions and lists them
 * in main() with RUN(test_x). CHECK records a failure and continues; the
 * program prints "N passed, N failed" and exits non-zero on any failure.
 */
#ifndef BD_UNIT_H
#define BD_UNIT_H

#include <stdio.h>
#include <string.h>

static int unit_failed_checks;
static int unit_passed, unit_failed;

#define CHECK(cond)                                                        \
  do {                                                                     \
    if (!(cond)) {                                                         \
      fprintf(stderr, "  %s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
      unit_failed_checks++;                                                \
    }                                                                      \
  } while (0)

#define CHECK_STR(a, b)                                                    \
  do {                                                                     \
    const char *ua_ = (a), *ub_ = (b);                                     \
    if (!ua_ || !ub_ || strcmp(ua_, ub_) != 0) {                           \
      fprintf(stderr, "  %s:%d: %s == %s\n    got:  %s\n    want: %s\n", __FILE__, \
              __LINE__, #a, #b, ua_ ? ua_ : "(null)", ub_ ? ub_ : "(null)"); \
      unit_failed_checks++;                                                \
    }                                                                      \
  } while (0)

#define CHECK_INT(a, b)                                                    \
  do {                                                                     \
    long long ua_ = (long long)(a), ub_ = (long long)(b);                  \
    if (ua_ != ub_) {                                                      \
      fprintf(stderr, "  %s:%d: %s == %s: got %lld, want %lld\n", __FILE__, __LINE__, \
              #a, #b, ua_, ub_);                                           \
      unit_failed_checks++;                                                \
    }                                                                      \
  } while (0)

#define RUN(fn)                                                            \
  do {                                                                     \
    int before_ = unit_failed_checks;                                      \
    fn();                                                                  \
    if (unit_failed_checks == before_) {                                   \
      unit_passed++;                                                       \
    } else {                                                               \
      unit_failed++;                                                       \
      fprintf(stderr, "FAIL %s\n", #fn);                                   \
    }                                                                      \
  } while (0)

#define UNIT_DONE()                                                        \
  do {                                                                     \
    printf("%d passed, %d failed\n", unit_passed, unit_failed);            \
    return unit_failed ? 1 : 0;                                            \
  } while (0)

#endif

/* test_hist.c: bd_hist against known distributions and exact order
 * statistics. Exits 1 on the first failed group, printing what differed. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hist.h"

#define HOUR_US 3600000000ull

static int failures;

#define CHECK(cond, ...)                                                  \
  do {                                                                    \
    if (!(cond)) {                                                        \
      fprintf(stderr, "%s:%d: FAIL %s: ", __FILE__, __LINE__, #cond);     \
      fprintf(stderr, __VA_ARGS__);                                       \
      fputc('\n', stderr);                                                \
      failures++;                                                         \
    }                                                                     \
  } while (0)

/* xorshift64*: deterministic samples */
static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static double urand(void) { /* (0, 1) */
  rng_state ^= rng_state >> 12;
  rng_state ^= rng_state << 25;
  rng_state ^= rng_state >> 27;
  return ((rng_state * 2685821657736338717ull >> 11) + 0.5) / 9007199254740992.0;
}

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

/* Exact order statistic with the same definition as bd_hist_percentile. */
static uint64_t exact_pct(const uint64_t *sorted, size_t n, double p) {
  double x = p / 100.0 * (double)n;
  size_t rank = (size_t)ceil(x - x * 1e-12);
  if (rank < 1) rank = 1;
  if (rank > n) rank = n;
  return sorted[rank - 1];
}

/* Allowed distance between a histogram percentile and the true value v:
 * v's slot width (at most v / 2^(k-1)). */
static double rel_bound(const bd_hist_t *h) { return 1.0 / h->half; }

static const double PCTS[] = {0, 1, 10, 25, 50, 75, 90, 99, 99.9, 99.99, 100};
#define NPCTS (sizeof PCTS / sizeof PCTS[0])

/* Every percentile of h lies in the slot of the exact order statistic. */
static void check_against_exact(const bd_hist_t *h, uint64_t *vals, size_t n, const char *what) {
  qsort(vals, n, sizeof *vals, cmp_u64);
  for (size_t i = 0; i < NPCTS; i++) {
    uint64_t want = exact_pct(vals, n, PCTS[i]), got = bd_hist_percentile(h, PCTS[i]);
    CHECK(bd_hist_lowest_equivalent(h, got) == bd_hist_lowest_equivalent(h, want), "%s p%g: got %llu want %llu", what,
          PCTS[i], (unsigned long long)got, (unsigned long long)want);
    CHECK(got >= want && (double)(got - want) <= want * rel_bound(h) + 1, "%s p%g: got %llu want %llu", what, PCTS[i],
          (unsigned long long)got, (unsigned long long)want);
  }
  CHECK(bd_hist_max(h) == vals[n - 1], "%s max %llu want %llu", what, (unsigned long long)bd_hist_max(h),
        (unsigned long long)vals[n - 1]);
  CHECK(bd_hist_min(h) == vals[0], "%s min", what);
  CHECK(bd_hist_count(h) == n, "%s count", what);
  long double sum = 0;
  for (size_t i = 0; i < n; i++) sum += vals[i];
  CHECK(fabsl(sum / n - bd_hist_mean(h)) < 1e-6 * (sum / n), "%s mean %f want %Lf", what, bd_hist_mean(h), sum / n);
}

static void test_layout(void) {
  bd_hist_t h;
  CHECK(bd_hist_init(&h, HOUR_US, 3) == 0, "init");
  CHECK(h.half == 1024, "3 significant digits need 2048 sub-buckets, got half %u", h.half);
  /* every value below 2048 is exact; above, slots are at most v/1024 wide */
  for (uint64_t v = 0; v < 2048; v++)
    CHECK(bd_hist_lowest_equivalent(&h, v) == v && bd_hist_highest_equivalent(&h, v) == v, "exact %llu",
          (unsigned long long)v);
  for (double d = 2048; d <= HOUR_US; d *= 1.0007) {
    uint64_t v = (uint64_t)d, lo = bd_hist_lowest_equivalent(&h, v), hi = bd_hist_highest_equivalent(&h, v);
    CHECK(lo <= v && v <= hi, "%llu in [%llu, %llu]", (unsigned long long)v, (unsigned long long)lo,
          (unsigned long long)hi);
    CHECK((double)(hi - lo + 1) <= (double)lo / 1024.0 + 1e-9, "slot of %llu too wide: [%llu, %llu]",
          (unsigned long long)v, (unsigned long long)lo, (unsigned long long)hi);
    CHECK(hi + 1 > HOUR_US || bd_hist_lowest_equivalent(&h, hi + 1) == hi + 1, "slot after %llu starts at %llu", (unsigned long long)hi,
          (unsigned long long)(hi + 1));
  }
  /* an hour is tracked with full precision */
  CHECK(bd_hist_highest_equivalent(&h, HOUR_US) - bd_hist_lowest_equivalent(&h, HOUR_US) < HOUR_US / 1000,
        "precision at 1 hour");
  bd_hist_free(&h);

  CHECK(bd_hist_init(&h, HOUR_US, 2) == 0, "init 2");
  for (double d = 1; d <= HOUR_US; d *= 1.01) {
    uint64_t v = (uint64_t)d;
    CHECK(bd_hist_highest_equivalent(&h, v) - bd_hist_lowest_equivalent(&h, v) <= v / 100, "2 digits at %llu",
          (unsigned long long)v);
  }
  bd_hist_free(&h);
  CHECK(bd_hist_init(&h, 1, 3) != 0, "highest < 2 refused");
  bd_hist_free(&h);
  CHECK(bd_hist_init(&h, 1000, 0) != 0, "sigfigs 0 refused");
  bd_hist_free(&h);
}

static void test_empty(void) {
  bd_hist_t h;
  CHECK(bd_hist_init(&h, HOUR_US, 3) == 0, "init");
  CHECK(bd_hist_percentile(&h, 50) == 0 && bd_hist_mean(&h) == 0 && bd_hist_count(&h) == 0 && bd_hist_max(&h) == 0 &&
            bd_hist_min(&h) == 0,
        "empty histogram answers 0");
  bd_hist_free(&h);
}

/* Rank definition on a tiny sample: p is the smallest recorded value with at
 * least p% of the values at or below it. */
static void test_small(void) {
  bd_hist_t h;
  CHECK(bd_hist_init(&h, HOUR_US, 3) == 0, "init");
  bd_hist_record(&h, 30);
  bd_hist_record(&h, 10);
  bd_hist_record(&h, 20);
  struct {
    double p;
    uint64_t want;
  } q[] = {{0, 10}, {33, 10}, {33.4, 20}, {50, 20}, {66.6, 20}, {66.7, 30}, {100, 30}};
  for (size_t i = 0; i < sizeof q / sizeof q[0]; i++)
    CHECK(bd_hist_percentile(&h, q[i].p) == q[i].want, "p%g of {10,20,30} = %llu, want %llu", q[i].p,
          (unsigned long long)bd_hist_percentile(&h, q[i].p), (unsigned long long)q[i].want);
  CHECK(bd_hist_mean(&h) == 20.0, "mean");
  bd_hist_free(&h);
}

/* Uniform 1..1,000,000 us, each value once: the quantiles are known. */
static void test_uniform(void) {
  bd_hist_t h;
  CHECK(bd_hist_init(&h, HOUR_US, 3) == 0, "init");
  for (uint64_t v = 1; v <= 1000000; v++) bd_hist_record(&h, v);
  struct {
    double p;
    double want;
  } q[] = {{50, 500000}, {90, 900000}, {99, 990000}, {99.9, 999000}, {99.99, 999900}, {100, 1000000}};
  for (size_t i = 0; i < sizeof q / sizeof q[0]; i++) {
    double got = (double)bd_hist_percentile(&h, q[i].p);
    CHECK(fabs(got - q[i].want) <= q[i].want / 1024.0, "uniform p%g = %.0f, want %.0f within 0.1%%", q[i].p, got,
          q[i].want);
  }
  CHECK(bd_hist_max(&h) == 1000000 && bd_hist_min(&h) == 1, "uniform min/max exact");
  CHECK(bd_hist_mean(&h) == 500000.5, "uniform mean exact: %f", bd_hist_mean(&h));
  CHECK(bd_hist_count(&h) == 1000000, "uniform count");
  /* 2 significant digits: still within 1% */
  bd_hist_t h2;
  CHECK(bd_hist_init(&h2, HOUR_US, 2) == 0, "init");
  for (uint64_t v = 1; v <= 1000000; v++) bd_hist_record(&h2, v);
  CHECK(fabs((double)bd_hist_percentile(&h2, 50) - 500000) <= 5000, "2 digits p50 %llu",
        (unsigned long long)bd_hist_percentile(&h2, 50));
  CHECK(fabs((double)bd_hist_percentile(&h2, 99) - 990000) <= 9900, "2 digits p99 %llu",
        (unsigned long long)bd_hist_percentile(&h2, 99));
  bd_hist_free(&h2);
  bd_hist_free(&h);
}

/* A constant: every percentile is that constant, exactly (capped by max). */
static void test_constant(void) {
  uint64_t consts[] = {0, 1, 777, 4321, 123456789, HOUR_US};
  for (size_t c = 0; c < sizeof consts / sizeof consts[0]; c++) {
    bd_hist_t h;
    CHECK(bd_hist_init(&h, HOUR_US, 3) == 0, "init");
    bd_hist_record_n(&h, consts[c], 5000);
    for (size_t i = 0; i < NPCTS; i++)
      CHECK(bd_hist_percentile(&h, PCTS[i]) == consts[c], "constant %llu p%g = %llu", (unsigned long long)consts[c],
            PCTS[i], (unsigned long long)bd_hist_percentile(&h, PCTS[i]));
    CHECK(bd_hist_mean(&h) == (double)consts[c], "constant mean");
    bd_hist_free(&h);
  }
}

/* Exponential with mean 10 ms: quantile q is -mean*ln(1-q). Samples at the
 * midpoints of N equal-probability strata, so the empirical quantiles match
 * the analytic ones to within a stratum; then random samples checked against
 * their exact order statistics. */
static void test_exponential(void) {
  const double mean = 10000.0;
  const size_t n = 1000000;
  bd_hist_t h;
  CHECK(bd_hist_init(&h, HOUR_US, 3) == 0, "init");
  for (size_t i = 0; i < n; i++) bd_hist_record(&h, (uint64_t)llround(-mean * log(1.0 - (i + 0.5) / n)));
  double qs[] = {0.5, 0.9, 0.99, 0.999};
  for (size_t i = 0; i < sizeof qs / sizeof qs[0]; i++) {
    double want = -mean * log(1.0 - qs[i]), got = (double)bd_hist_percentile(&h, qs[i] * 100);
    /* precision bound plus the stratum/rounding slack */
    CHECK(fabs(got - want) <= want / 1024.0 + 2.0, "exponential p%g = %.1f, want %.1f", qs[i] * 100, got, want);
  }
  CHECK(fabs(bd_hist_mean(&h) - mean) < mean * 0.01, "exponential mean %f", bd_hist_mean(&h));
  bd_hist_free(&h);

  uint64_t *vals = malloc(n * sizeof *vals);
  CHECK(bd_hist_init(&h, HOUR_US, 3) == 0, "init");
  for (size_t i = 0; i < n; i++) {
    vals[i] = (uint64_t)(-mean * log(urand()));
    bd_hist_record(&h, vals[i]);
  }
  check_against_exact(&h, vals, n, "random exponential");
  bd_hist_free(&h);

  /* heavy tail: log-uniform over 1 us .. 1 hour exercises every bucket */
  CHECK(bd_hist_init(&h, HOUR_US, 3) == 0, "init");
  for (size_t i = 0; i < n; i++) {
    vals[i] = (uint64_t)exp(urand() * log((double)HOUR_US));
    bd_hist_record(&h, vals[i]);
  }
  check_against_exact(&h, vals, n, "log-uniform");
  bd_hist_free(&h);
  free(vals);
}

/* Merging two histograms equals recording both streams into one. */
static void test_merge(void) {
  bd_hist_t a, b, both, other;
  CHECK(bd_hist_init(&a, HOUR_US, 3) == 0 && bd_hist_init(&b, HOUR_US, 3) == 0 &&
            bd_hist_init(&both, HOUR_US, 3) == 0 && bd_hist_init(&other, HOUR_US, 2) == 0,
        "init");
  for (uint64_t v = 1; v <= 200000; v++) {
    bd_hist_record(&a, v * 7);
    bd_hist_record(&both, v * 7);
  }
  for (int i = 0; i < 300000; i++) {
    uint64_t v = (uint64_t)(-50000.0 * log(urand()));
    bd_hist_record(&b, v);
    bd_hist_record(&both, v);
  }
  bd_hist_record(&b, 5 * HOUR_US); /* beyond highest: kept in max */
  bd_hist_record(&both, 5 * HOUR_US);
  bd_hist_merge(&other, &a); /* different layout: approximate */
  bd_hist_merge(&a, &b);
  CHECK(memcmp(a.counts, both.counts, a.counts_len * sizeof *a.counts) == 0, "merged counts equal");
  CHECK(a.total == both.total && a.min == both.min && a.max == both.max && a.sum == both.sum,
        "merged count/min/max/sum equal");
  for (size_t i = 0; i < NPCTS; i++)
    CHECK(bd_hist_percentile(&a, PCTS[i]) == bd_hist_percentile(&both, PCTS[i]), "merged p%g", PCTS[i]);
  CHECK(bd_hist_max(&a) == 5 * HOUR_US, "max beyond highest is exact");
  CHECK(bd_hist_percentile(&a, 100) == 5 * HOUR_US, "p100 is the max");
  /* cross-layout merge: within the coarser (1%) precision */
  double p50 = (double)bd_hist_percentile(&other, 50);
  CHECK(fabs(p50 - 700000) <= 7000, "cross-layout merge p50 %.0f", p50);
  CHECK(bd_hist_count(&other) == 200000 && bd_hist_max(&other) == 1400000, "cross-layout merge count/max");
  bd_hist_reset(&a);
  CHECK(bd_hist_count(&a) == 0 && bd_hist_percentile(&a, 99) == 0, "reset");
  bd_hist_free(&a);
  bd_hist_free(&b);
  bd_hist_free(&both);
  bd_hist_free(&other);
}

/* The max is exact even when it is a lone outlier, and bounds percentiles. */
static void test_max(void) {
  bd_hist_t h;
  CHECK(bd_hist_init(&h, HOUR_US, 3) == 0, "init");
  for (uint64_t v = 1; v <= 1000; v++) bd_hist_record(&h, 100);
  bd_hist_record(&h, 3599999999ull);
  CHECK(bd_hist_max(&h) == 3599999999ull, "outlier max exact: %llu", (unsigned long long)bd_hist_max(&h));
  CHECK(bd_hist_percentile(&h, 100) == 3599999999ull, "p100 = max");
  CHECK(bd_hist_percentile(&h, 99.9) == 100, "p99.9 = 100 (1000 of 1001 values)");
  bd_hist_record(&h, 1234567);
  CHECK(bd_hist_max(&h) == 3599999999ull, "max keeps the largest");
  bd_hist_free(&h);

  /* a max inside a wide slot: p100 is the max, not the slot's top */
  CHECK(bd_hist_init(&h, HOUR_US, 3) == 0, "init");
  bd_hist_record(&h, 1000001);
  CHECK(bd_hist_highest_equivalent(&h, 1000001) > 1000001, "slot wider than one value");
  CHECK(bd_hist_percentile(&h, 100) == 1000001 && bd_hist_percentile(&h, 50) == 1000001, "single value exact");
  bd_hist_free(&h);
}

int main(void) {
  struct {
    const char *name;
    void (*fn)(void);
  } tests[] = {{"layout", test_layout},       {"empty", test_empty}, {"small", test_small}, {"uniform", test_uniform},
               {"constant", test_constant},   {"merge", test_merge}, {"max", test_max},
               {"exponential", test_exponential}};
  for (size_t i = 0; i < sizeof tests / sizeof tests[0]; i++) {
    int before = failures;
    tests[i].fn();
    printf("%s %s\n", failures == before ? "ok  " : "FAIL", tests[i].name);
  }
  return failures ? 1 : 0;
}

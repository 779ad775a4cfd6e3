/* test_metrics.c: the Prometheus rendering of request series, counters and
 * the loop-lag histogram (bucket edges, cumulative counts, sum, max), which
 * bench/run reads before and after each scenario. */
#include "metrics.h"
#include "unit.h"

#include <stdlib.h>

/* The value of the first line starting with `prefix` followed by a space. */
static double value_of(const char *text, const char *prefix) {
  size_t n = strlen(prefix);
  for (const char *p = text; p && *p;) {
    if (!strncmp(p, prefix, n) && p[n] == ' ') return strtod(p + n + 1, NULL);
    p = strchr(p, '\n');
    if (p) p++;
  }
  return -1;
}

static char *render(void) {
  bd_buf_t b = BD_BUF_INIT;
  bd_metrics_render(&b);
  return b.data;
}

static void test_loop_lag_buckets(void) {
  bd_metrics_free();
  /* one value per interesting edge: exactly on an edge counts in the next
   * bucket up (le is "lateness below this") */
  static const uint64_t v[] = {0, 999, 1000, 4999, 30000, 99999, 100000, 260000, 900000, 1000000, 3000000};
  uint64_t sum = 0;
  for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
    bd_metrics_loop_lag(v[i]);
    sum += v[i];
  }
  char *t = render();
  CHECK(value_of(t, "batchd_loop_lag_seconds_bucket{le=\"0.001\"}") == 2);
  CHECK(value_of(t, "batchd_loop_lag_seconds_bucket{le=\"0.002\"}") == 3);
  CHECK(value_of(t, "batchd_loop_lag_seconds_bucket{le=\"0.005\"}") == 4);
  CHECK(value_of(t, "batchd_loop_lag_seconds_bucket{le=\"0.01\"}") == 4);
  CHECK(value_of(t, "batchd_loop_lag_seconds_bucket{le=\"0.05\"}") == 5);
  CHECK(value_of(t, "batchd_loop_lag_seconds_bucket{le=\"0.1\"}") == 6);
  CHECK(value_of(t, "batchd_loop_lag_seconds_bucket{le=\"0.25\"}") == 7);
  CHECK(value_of(t, "batchd_loop_lag_seconds_bucket{le=\"0.5\"}") == 8);
  CHECK(value_of(t, "batchd_loop_lag_seconds_bucket{le=\"1\"}") == 9);
  CHECK(value_of(t, "batchd_loop_lag_seconds_bucket{le=\"2.5\"}") == 10);
  CHECK(value_of(t, "batchd_loop_lag_seconds_bucket{le=\"+Inf\"}") == 11);
  CHECK(value_of(t, "batchd_loop_lag_seconds_count") == 11);
  double s = value_of(t, "batchd_loop_lag_seconds_sum");
  CHECK(s > (double)sum / 1e6 - 1e-6 && s < (double)sum / 1e6 + 1e-6);
  CHECK(value_of(t, "batchd_loop_lag_max_seconds") == 3.0);
  CHECK_INT(bd_metrics_loop_lag_max_us(), 3000000);
  free(t);
}

static void test_free_resets(void) {
  bd_metrics_loop_lag(50000);
  bd_metrics_request("/healthz", "GET", 200, 1000000);
  bd_metrics_inc("batchd_test_total", "test", 3);
  bd_metrics_free();
  CHECK_INT(bd_metrics_loop_lag_max_us(), 0);
  char *t = render();
  CHECK(value_of(t, "batchd_loop_lag_seconds_count") == 0);
  CHECK(value_of(t, "batchd_loop_lag_max_seconds") == 0);
  CHECK(value_of(t, "batchd_test_total") == -1);
  CHECK(!strstr(t, "route=\"/healthz\""));
  free(t);
}

static void test_requests_and_counters(void) {
  bd_metrics_free();
  bd_metrics_request("/healthz", "GET", 200, 300000);  /* 0.3 ms */
  bd_metrics_request("/healthz", "GET", 200, 7000000); /* 7 ms */
  bd_metrics_request("/healthz", "GET", 503, 1000);
  bd_metrics_inc("batchd_test_total", "test", 3);
  bd_metrics_inc("batchd_test_total", "test", 4);
  char *t = render();
  CHECK(value_of(t, "batchd_http_requests_total{route=\"/healthz\",method=\"GET\",status=\"200\"}") == 2);
  CHECK(value_of(t, "batchd_http_requests_total{route=\"/healthz\",method=\"GET\",status=\"503\"}") == 1);
  CHECK(value_of(t, "batchd_http_request_duration_seconds_bucket{route=\"/healthz\",method=\"GET\",status=\"200\","
                    "le=\"0.0005\"}") == 1);
  CHECK(value_of(t, "batchd_http_request_duration_seconds_bucket{route=\"/healthz\",method=\"GET\",status=\"200\","
                    "le=\"0.005\"}") == 1);
  CHECK(value_of(t, "batchd_http_request_duration_seconds_bucket{route=\"/healthz\",method=\"GET\",status=\"200\","
                    "le=\"0.01\"}") == 2);
  CHECK(value_of(t, "batchd_test_total") == 7);
  free(t);
  bd_metrics_free();
}

int main(void) {
  RUN(test_loop_lag_buckets);
  RUN(test_free_resets);
  RUN(test_requests_and_counters);
  UNIT_DONE();
}

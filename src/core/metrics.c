/* metrics.c: counters and fixed-bucket histograms in the Prometheus format. */
#include "metrics.h"

#include <stdio.h>
#include <stdlib.h>

/* Latency buckets in seconds: fine near the targets we care about (1-100 ms). */
static const double k_bounds[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                  0.1,    0.25,  0.5,    1.0,   2.5,  5.0,   10.0};
#define NB (sizeof k_bounds / sizeof k_bounds[0])

typedef struct {
  const char *route;     /* route name (static storage) */
  const char *method;    /* method name (static storage) */
  int status;            /* HTTP status */
  uint64_t count;        /* requests */
  double sum;            /* seconds */
  uint64_t buckets[NB];  /* non-cumulative counts per bucket */
} series_t;

typedef struct {
  const char *name;  /* metric name (static) */
  const char *help;  /* HELP text (static) */
  uint64_t value;    /* current value */
} counter_t;

static series_t *g_series;     /* request series */
static size_t g_nseries, g_capseries;
static counter_t *g_counters;  /* named counters */
static size_t g_ncounters, g_capcounters;
/* Loop lag: the histogram lets a reader that scrapes before and after a
 * window bound the worst lateness inside it (the since-start max alone
 * cannot, once an earlier stall set it); hence buckets up to seconds. */
static const uint64_t k_lag_lim_us[] = {1000, 2000, 5000, 10000, 25000, 50000, 100000, 250000, 500000, 1000000, 2500000};
static const char *const k_lag_lab[] = {"0.001", "0.002", "0.005", "0.01", "0.025", "0.05",
                                        "0.1",   "0.25",  "0.5",   "1",    "2.5",   "+Inf"};
#define NLAG (sizeof k_lag_lim_us / sizeof k_lag_lim_us[0] + 1)
static uint64_t g_lag_max_us;          /* worst timer lateness seen */
static uint64_t g_lag_sum_us;          /* total lateness (histogram _sum) */
static uint64_t g_lag_buckets[NLAG];   /* non-cumulative: < k_lag_lim_us[b], the last >= 2.5 s */
void (*bd_metrics_extra)(bd_buf_t *out);

void bd_metrics_request(const char *route, const char *method, int status, uint64_t dur_ns) {
  series_t *s = NULL;
  /* route/method are static strings: compare pointers first (the common case) */
  for (size_t i = 0; i < g_nseries; i++) {
    series_t *c = &g_series[i];
    if (c->status == status && (c->route == route || !strcmp(c->route, route)) &&
        (c->method == method || !strcmp(c->method, method))) {
      s = c;
      break;
    }
  }
  if (!s) {
    if (g_nseries == g_capseries) {
      g_capseries = g_capseries ? g_capseries * 2 : 64;
      g_series = bd_realloc(g_series, g_capseries * sizeof *g_series);
    }
    s = &g_series[g_nseries++];
    memset(s, 0, sizeof *s);
    s->route = route;
    s->method = method;
    s->status = status;
  }
  double sec = (double)dur_ns / 1e9;
  s->count++;
  s->sum += sec;
  for (size_t b = 0; b < NB; b++)
    if (sec <= k_bounds[b]) {
      s->buckets[b]++;
      break;
    }
}

void bd_metrics_inc(const char *name, const char *help, uint64_t by) {
  for (size_t i = 0; i < g_ncounters; i++)
    if (g_counters[i].name == name || !strcmp(g_counters[i].name, name)) {
      g_counters[i].value += by;
      return;
    }
  if (g_ncounters == g_capcounters) {
    g_capcounters = g_capcounters ? g_capcounters * 2 : 32;
    g_counters = bd_realloc(g_counters, g_capcounters * sizeof *g_counters);
  }
  g_counters[g_ncounters++] = (counter_t){name, help, by};
}

void bd_metrics_loop_lag(uint64_t late_us) {
  if (late_us > g_lag_max_us) g_lag_max_us = late_us;
  g_lag_sum_us += late_us;
  size_t b = 0;
  while (b < NLAG - 1 && late_us >= k_lag_lim_us[b]) b++;
  g_lag_buckets[b]++;
}

uint64_t bd_metrics_loop_lag_max_us(void) { return g_lag_max_us; }

void bd_metrics_render(bd_buf_t *out) {
  bd_buf_puts(out, "# HELP batchd_http_requests_total HTTP requests by route, method and status.\n"
                   "# TYPE batchd_http_requests_total counter\n");
  for (size_t i = 0; i < g_nseries; i++) {
    series_t *s = &g_series[i];
    bd_buf_printf(out, "batchd_http_requests_total{route=\"%s\",method=\"%s\",status=\"%d\"} %llu\n", s->route,
                  s->method, s->status, (unsigned long long)s->count);
  }
  bd_buf_puts(out, "# HELP batchd_http_request_duration_seconds Request latency.\n"
                   "# TYPE batchd_http_request_duration_seconds histogram\n");
  for (size_t i = 0; i < g_nseries; i++) {
    series_t *s = &g_series[i];
    uint64_t cum = 0;
    for (size_t b = 0; b < NB; b++) {
      cum += s->buckets[b];
      bd_buf_printf(out,
                    "batchd_http_request_duration_seconds_bucket{route=\"%s\",method=\"%s\",status=\"%d\",le=\"%g\"} %llu\n",
                    s->route, s->method, s->status, k_bounds[b], (unsigned long long)cum);
    }
    bd_buf_printf(out,
                  "batchd_http_request_duration_seconds_bucket{route=\"%s\",method=\"%s\",status=\"%d\",le=\"+Inf\"} %llu\n",
                  s->route, s->method, s->status, (unsigned long long)s->count);
    bd_buf_printf(out, "batchd_http_request_duration_seconds_sum{route=\"%s\",method=\"%s\",status=\"%d\"} %.6f\n",
                  s->route, s->method, s->status, s->sum);
    bd_buf_printf(out, "batchd_http_request_duration_seconds_count{route=\"%s\",method=\"%s\",status=\"%d\"} %llu\n",
                  s->route, s->method, s->status, (unsigned long long)s->count);
  }
  for (size_t i = 0; i < g_ncounters; i++) {
    counter_t *c = &g_counters[i];
    bd_buf_printf(out, "# HELP %s %s\n# TYPE %s counter\n%s %llu\n", c->name, c->help ? c->help : c->name, c->name,
                  c->name, (unsigned long long)c->value);
  }
  bd_buf_printf(out,
                "# HELP batchd_loop_lag_max_seconds Worst lateness of a 10 ms loop timer since start.\n"
                "# TYPE batchd_loop_lag_max_seconds gauge\nbatchd_loop_lag_max_seconds %.6f\n",
                (double)g_lag_max_us / 1e6);
  bd_buf_puts(out, "# HELP batchd_loop_lag_seconds Lateness of the loop's 10 ms timer.\n"
                   "# TYPE batchd_loop_lag_seconds histogram\n");
  uint64_t cum = 0;
  for (size_t b = 0; b < NLAG; b++) {
    cum += g_lag_buckets[b];
    bd_buf_printf(out, "batchd_loop_lag_seconds_bucket{le=\"%s\"} %llu\n", k_lag_lab[b], (unsigned long long)cum);
  }
  bd_buf_printf(out, "batchd_loop_lag_seconds_sum %.6f\nbatchd_loop_lag_seconds_count %llu\n",
                (double)g_lag_sum_us / 1e6, (unsigned long long)cum);
  if (bd_metrics_extra) bd_metrics_extra(out);
}

void bd_metrics_free(void) {
  free(g_series);
  free(g_counters);
  g_series = NULL;
  g_counters = NULL;
  g_nseries = g_capseries = g_ncounters = g_capcounters = 0;
  g_lag_max_us = g_lag_sum_us = 0;
  memset(g_lag_buckets, 0, sizeof g_lag_buckets);
}

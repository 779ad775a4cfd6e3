/* metrics.h: Prometheus metrics. Loop thread only.
 *
 * Request counters and latency histograms are kept per (route, method,
 * status); other subsystems register named counters and gauges, and a
 * callback adds gauges computed at scrape time (pool and queue state).
 */
#ifndef BD_METRICS_H
#define BD_METRICS_H

#include "buf.h"

void bd_metrics_request(const char *route, const char *method, int status, uint64_t dur_ns);
/* A monotonically increasing counter, created on first use. `name` must
 * be a static string (it is not copied). */
void bd_metrics_inc(const char *name, const char *help, uint64_t by);
/* Loop responsiveness: how late a periodic timer fired. Exposed as
 * batchd_loop_lag_max_seconds (worst since start) and the histogram
 * batchd_loop_lag_seconds (buckets 1 ms .. 2.5 s, _sum, _count), so a
 * reader scraping before and after a window can bound the worst lateness
 * inside it without any reset. */
void bd_metrics_loop_lag(uint64_t late_us);
uint64_t bd_metrics_loop_lag_max_us(void);
/* Renders everything in the text exposition format. */
void bd_metrics_render(bd_buf_t *out);
/* Called by render to append gauges owned by others. */
extern void (*bd_metrics_extra)(bd_buf_t *out);
void bd_metrics_free(void);

#endif

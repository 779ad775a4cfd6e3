/* hist.h: a log-linear latency histogram in the style of HdrHistogram.
 *
 * Values are unsigned integers (loadgen records microseconds). The value range
 * [0, highest] is cut into buckets by powers of two; each bucket is split
 * linearly into sub-buckets, enough of them that every recorded value is
 * represented with `sigfigs` significant decimal digits: a value v lands in a
 * slot of width w with w <= v / 2^(k-1), where 2^k >= 2 * 10^sigfigs. For
 * sigfigs = 3 that is a relative error of at most 1/1024 (< 0.1 %), for
 * sigfigs = 2 at most 1/128 (< 0.8 %). Values below 2^k are exact.
 *
 * Recording is O(1) (a count-leading-zeros, a shift, an add). Percentile
 * queries walk the counts array (a few tens of thousands of slots at most).
 * count, min, max and the sum (hence the mean) are kept exactly, beside the
 * bucketed counts; a percentile never exceeds the exact max, so the 100th
 * percentile is the max.
 *
 * Values above `highest` are counted in the top slot (and in max and sum
 * exactly), so nothing recorded is ever lost; percentiles that fall there are
 * reported as the exact max.
 *
 * Not thread-safe: one histogram per thread, merge afterwards. */
#ifndef BD_HIST_H
#define BD_HIST_H

#include <stdbool.h>
#include <stdint.h>

typedef struct bd_hist {
  uint64_t highest;      /* largest value tracked with full precision */
  int sigfigs;           /* significant decimal digits kept (1..5) */
  int sub_bits;          /* k: a bucket has 2^k sub-buckets (bucket 0) */
  uint32_t half;         /* 2^(k-1): sub-buckets a bucket > 0 adds */
  uint32_t bucket_count; /* power-of-two buckets needed to reach highest */
  uint32_t counts_len;   /* slots in counts */
  uint64_t *counts;      /* counts[counts_len], owned, freed by bd_hist_free */
  uint64_t total;        /* values recorded (sum of counts) */
  uint64_t min;          /* exact smallest value recorded (UINT64_MAX: none) */
  uint64_t max;          /* exact largest value recorded (0: none) */
  unsigned __int128 sum; /* exact sum of values, for the mean */
} bd_hist_t;

/* Prepares h to record values 0..highest (highest >= 2) with sigfigs (1..5)
 * significant digits. Allocates the counts array; 0 on success, -1 on bad
 * arguments or out of memory (h is then safe to bd_hist_free). */
__attribute__((warn_unused_result)) int bd_hist_init(bd_hist_t *h, uint64_t highest, int sigfigs);
/* Releases the counts array; h may be bd_hist_init'ed again. */
void bd_hist_free(bd_hist_t *h);
/* Forgets every recorded value, keeping the layout. */
void bd_hist_reset(bd_hist_t *h);

/* Records value v once / n times. O(1). */
void bd_hist_record(bd_hist_t *h, uint64_t v);
void bd_hist_record_n(bd_hist_t *h, uint64_t v, uint64_t n);

/* Adds every value recorded in src to dst. With the same layout (highest and
 * sigfigs) this is exact: dst is then identical to a histogram that recorded
 * both streams. Otherwise each of src's slots is re-recorded at its median
 * value (min, max and sum stay exact). */
void bd_hist_merge(bd_hist_t *dst, const bd_hist_t *src);

/* The smallest value v such that at least p percent (0..100) of the recorded
 * values are <= v, up to the histogram's precision: the highest value
 * equivalent to the slot holding that rank, capped at the exact max.
 * 0 for an empty histogram. */
uint64_t bd_hist_percentile(const bd_hist_t *h, double p);

static inline uint64_t bd_hist_count(const bd_hist_t *h) { return h->total; }
static inline uint64_t bd_hist_max(const bd_hist_t *h) { return h->max; }
static inline uint64_t bd_hist_min(const bd_hist_t *h) { return h->total ? h->min : 0; }
/* Exact arithmetic mean (0 when empty). */
double bd_hist_mean(const bd_hist_t *h);

/* The range of values that share v's slot: [lowest, highest]. Two values are
 * "equivalent" when they share a slot; this is the precision contract. */
uint64_t bd_hist_lowest_equivalent(const bd_hist_t *h, uint64_t v);
uint64_t bd_hist_highest_equivalent(const bd_hist_t *h, uint64_t v);

#endif

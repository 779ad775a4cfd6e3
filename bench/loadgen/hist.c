/* hist.c: log-linear histogram (see hist.h for the precision contract).
 *
 * Layout, with k = sub_bits, S = 2^k sub-buckets, H = S/2:
 *   bucket 0 holds 0 .. S-1 exactly, in slots 0 .. S-1;
 *   bucket b > 0 holds S*2^(b-1) .. S*2^b - 1 in H slots of width 2^b,
 *   at slots (b+1)*H .. (b+2)*H - 1.
 * A value with n significant bits (n >= k) is in bucket b = n - k and its
 * sub-bucket is v >> b, in [H, S) for b > 0; its slot is b*H + (v >> b),
 * which makes the slots of consecutive buckets contiguous. */
#include "hist.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Bits needed to write v (v > 0). */
static inline int bits_of(uint64_t v) { return 64 - __builtin_clzll(v); }

static inline int bucket_of(const bd_hist_t *h, uint64_t v) {
  /* OR-ing in S-1 makes every value below S land in bucket 0 */
  return bits_of(v | (((uint64_t)1 << h->sub_bits) - 1)) - h->sub_bits;
}

/* The largest value the top slot stands for; larger values are clamped. */
static inline uint64_t top_value(const bd_hist_t *h) {
  return ((uint64_t)1 << (h->sub_bits + h->bucket_count - 1)) - 1;
}

static inline uint32_t slot_of(const bd_hist_t *h, uint64_t v) {
  if (v > h->highest) v = top_value(h);
  int b = bucket_of(h, v);
  return (uint32_t)((uint64_t)b * h->half + (v >> b));
}

/* Lowest value of a slot, and the log2 of its width. */
static inline uint64_t slot_lowest(const bd_hist_t *h, uint32_t slot, int *width_log2) {
  int64_t b = (int64_t)(slot / h->half) - 1;
  uint64_t sub = slot % h->half + h->half;
  if (b < 0) {
    b = 0;
    sub -= h->half;
  }
  *width_log2 = (int)b;
  return sub << b;
}

int bd_hist_init(bd_hist_t *h, uint64_t highest, int sigfigs) {
  memset(h, 0, sizeof *h);
  h->min = UINT64_MAX;
  if (sigfigs < 1 || sigfigs > 5 || highest < 2 || highest > ((uint64_t)1 << 62)) return -1;
  uint64_t single = 2;
  for (int i = 0; i < sigfigs; i++) single *= 10;
  int k = bits_of(single - 1); /* 2^k >= 2 * 10^sigfigs */
  h->highest = highest;
  h->sigfigs = sigfigs;
  h->sub_bits = k;
  h->half = (uint32_t)1 << (k - 1);
  h->bucket_count = (uint32_t)bucket_of(h, highest) + 1;
  h->counts_len = (h->bucket_count + 1) * h->half;
  h->counts = calloc(h->counts_len, sizeof *h->counts);
  return h->counts ? 0 : -1;
}

void bd_hist_free(bd_hist_t *h) {
  free(h->counts);
  h->counts = NULL;
  h->counts_len = 0;
}

void bd_hist_reset(bd_hist_t *h) {
  if (h->counts) memset(h->counts, 0, h->counts_len * sizeof *h->counts);
  h->total = 0;
  h->min = UINT64_MAX;
  h->max = 0;
  h->sum = 0;
}

void bd_hist_record_n(bd_hist_t *h, uint64_t v, uint64_t n) {
  if (n == 0) return;
  h->counts[slot_of(h, v)] += n;
  h->total += n;
  h->sum += (unsigned __int128)v * n;
  if (v < h->min) h->min = v;
  if (v > h->max) h->max = v;
}

void bd_hist_record(bd_hist_t *h, uint64_t v) { bd_hist_record_n(h, v, 1); }

void bd_hist_merge(bd_hist_t *dst, const bd_hist_t *src) {
  if (src->total == 0) return;
  if (dst->highest == src->highest && dst->sigfigs == src->sigfigs) {
    for (uint32_t i = 0; i < src->counts_len; i++) dst->counts[i] += src->counts[i];
  } else {
    for (uint32_t i = 0; i < src->counts_len; i++) {
      if (!src->counts[i]) continue;
      int w;
      uint64_t lo = slot_lowest(src, i, &w);
      dst->counts[slot_of(dst, lo + (((uint64_t)1 << w) >> 1))] += src->counts[i];
    }
  }
  dst->total += src->total;
  dst->sum += src->sum;
  if (src->min < dst->min) dst->min = src->min;
  if (src->max > dst->max) dst->max = src->max;
}

uint64_t bd_hist_percentile(const bd_hist_t *h, double p) {
  if (h->total == 0) return 0;
  if (p < 0) p = 0;
  if (p > 100) p = 100;
  /* rank of the value sought: ceil(p% of total), with a little slack so that
   * 50% of 1000000 is rank 500000 despite rounding in p / 100 */
  double x = p / 100.0 * (double)h->total;
  uint64_t rank = (uint64_t)ceil(x - x * 1e-12);
  if (rank < 1) rank = 1;
  if (rank > h->total) rank = h->total;
  uint64_t seen = 0;
  for (uint32_t i = 0; i < h->counts_len; i++) {
    seen += h->counts[i];
    if (seen >= rank) {
      if (i == h->counts_len - 1 && h->max > top_value(h)) return h->max; /* clamped values are here */
      int w;
      uint64_t hi = slot_lowest(h, i, &w); /* sets w: not in the same expression */
      hi += ((uint64_t)1 << w) - 1;
      if (hi > h->max) hi = h->max;
      if (hi < h->min) hi = h->min;
      return hi;
    }
  }
  return h->max;
}

double bd_hist_mean(const bd_hist_t *h) { return h->total ? (double)((long double)h->sum / h->total) : 0.0; }

uint64_t bd_hist_lowest_equivalent(const bd_hist_t *h, uint64_t v) {
  int w;
  return slot_lowest(h, slot_of(h, v), &w);
}

uint64_t bd_hist_highest_equivalent(const bd_hist_t *h, uint64_t v) {
  int w;
  uint64_t lo = slot_lowest(h, slot_of(h, v), &w);
  return lo + ((uint64_t)1 << w) - 1;
}

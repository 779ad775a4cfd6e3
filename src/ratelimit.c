/* ratelimit.c: token buckets in a hash table with an LRU list for eviction. */
#include "ratelimit.h"

#include <math.h>
#include <stdlib.h>

typedef struct bucket {
  struct bucket *hnext;          /* hash chain */
  struct bucket *lprev, *lnext;  /* LRU list (head = most recent) */
  uint32_t hash;                 /* full hash of the key */
  double tokens;                 /* tokens left */
  uint64_t last_ms;              /* last refill */
  size_t klen;                   /* key length */
  char key[];                    /* key bytes */
} bucket_t;

struct bd_rl {
  double rate;          /* tokens per second */
  uint32_t burst;       /* bucket size */
  size_t max_keys;      /* bound */
  size_t n;             /* keys tracked */
  size_t nbuckets;      /* hash table size (power of two) */
  bucket_t **table;     /* chains */
  bucket_t *head, *tail;/* LRU */
};

static uint32_t fnv(const char *p, size_t n) {
  uint32_t h = 2166136261u;
  for (size_t i = 0; i < n; i++) h = (h ^ (uint8_t)p[i]) * 16777619u;
  return h;
}

bd_rl_t *bd_rl_new(double rate_per_s, uint32_t burst, size_t max_keys) {
  bd_rl_t *rl = bd_calloc(1, sizeof *rl);
  rl->rate = rate_per_s;
  rl->burst = burst ? burst : 1;
  rl->max_keys = max_keys ? max_keys : 1;
  rl->nbuckets = 1;
  while (rl->nbuckets < rl->max_keys) rl->nbuckets <<= 1;
  if (rl->nbuckets > (1u << 20)) rl->nbuckets = 1u << 20;
  rl->table = bd_calloc(rl->nbuckets, sizeof *rl->table);
  return rl;
}

void bd_rl_free(bd_rl_t *rl) {
  if (!rl) return;
  bucket_t *b = rl->head;
  while (b) {
    bucket_t *n = b->lnext;
    free(b);
    b = n;
  }
  free(rl->table);
  free(rl);
}

size_t bd_rl_size(const bd_rl_t *rl) { return rl->n; }

static void lru_unlink(bd_rl_t *rl, bucket_t *b) {
  if (b->lprev) b->lprev->lnext = b->lnext;
  else rl->head = b->lnext;
  if (b->lnext) b->lnext->lprev = b->lprev;
  else rl->tail = b->lprev;
  b->lprev = b->lnext = NULL;
}

static void lru_front(bd_rl_t *rl, bucket_t *b) {
  b->lnext = rl->head;
  b->lprev = NULL;
  if (rl->head) rl->head->lprev = b;
  rl->head = b;
  if (!rl->tail) rl->tail = b;
}

static void evict(bd_rl_t *rl, bucket_t *b) {
  lru_unlink(rl, b);
  bucket_t **pp = &rl->table[b->hash & (rl->nbuckets - 1)];
  while (*pp != b) pp = &(*pp)->hnext;
  *pp = b->hnext;
  free(b);
  rl->n--;
}

void bd_rl_take(bd_rl_t *rl, bd_str_t key, uint64_t now_ms, int64_t now_unix, bd_rl_result_t *out) {
  if (rl->rate <= 0) {
    *out = (bd_rl_result_t){true, 0, 0, now_unix, 0};
    return;
  }
  uint32_t h = fnv(key.p, key.len);
  bucket_t **slot = &rl->table[h & (rl->nbuckets - 1)];
  bucket_t *b = *slot;
  while (b && !(b->hash == h && b->klen == key.len && !memcmp(b->key, key.p, key.len))) b = b->hnext;
  if (b) {
    double elapsed = (double)(now_ms - b->last_ms) / 1000.0;
    b->tokens = fmin((double)rl->burst, b->tokens + elapsed * rl->rate);
    b->last_ms = now_ms;
    lru_unlink(rl, b);
  } else {
    if (rl->n >= rl->max_keys) evict(rl, rl->tail); /* least recently used */
    b = bd_malloc(sizeof *b + key.len);
    b->hash = h;
    b->klen = key.len;
    memcpy(b->key, key.p, key.len);
    b->tokens = rl->burst;
    b->last_ms = now_ms;
    b->hnext = *slot;
    *slot = b;
    rl->n++;
  }
  lru_front(rl, b);
  out->limit = rl->burst;
  if (b->tokens >= 1.0) {
    b->tokens -= 1.0;
    out->allowed = true;
    out->retry_after_s = 0;
  } else {
    out->allowed = false;
    out->retry_after_s = (uint32_t)ceil((1.0 - b->tokens) / rl->rate);
    if (out->retry_after_s < 1) out->retry_after_s = 1;
  }
  out->remaining = (uint32_t)floor(b->tokens);
  out->reset_unix = now_unix + (int64_t)ceil(((double)rl->burst - b->tokens) / rl->rate);
}

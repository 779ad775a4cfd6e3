/* ratelimit.c: token buckets in a chained hash table with an LRU list.
 *
 * Every operation is O(1) expected: one hash lookup, a constant-length look
 * at the LRU tail when a new key must evict, and list splices. Keys may be
 * chosen by clients (credentials, addresses), so the table is indexed by
 * SipHash with a per-limiter random key: nobody can aim many keys at one
 * chain without knowing it.
 */
#include "ratelimit.h"

#include <math.h>
#include <sodium.h>
#include <stdlib.h>

/* How many of the least recently used buckets are examined for one that
 * has refilled completely before falling back to plain LRU eviction. */
#define EVICT_SCAN 8
/* The table never grows; above this many keys chains simply get longer. */
#define MAX_TABLE (1u << 20)

typedef struct bucket {
  struct bucket *hnext;         /* next in the hash chain */
  struct bucket *lprev, *lnext; /* LRU list neighbours (head = most recent) */
  uint64_t hash;                /* full hash of the key (cheap chain compare) */
  double tokens;                /* tokens left as of last_ms */
  uint64_t last_ms;             /* when tokens was last brought up to date */
  size_t klen;                  /* key length */
  char key[];                   /* copy of the key bytes */
} bucket_t;

struct bd_rl {
  double rate;                                 /* tokens per second; <= 0 disables */
  uint32_t burst;                              /* bucket size */
  size_t max_keys;                             /* bound on tracked keys */
  size_t n;                                    /* keys tracked */
  size_t mask;                                 /* table size - 1 (size is a power of two) */
  bucket_t **table;                            /* hash chains */
  bucket_t *head, *tail;                       /* LRU list: head most, tail least recently used */
  unsigned char hkey[crypto_shorthash_KEYBYTES]; /* SipHash key */
};

bd_rl_t *bd_rl_new(double rate_per_s, uint32_t burst, size_t max_keys) {
  bd_rl_t *rl = bd_calloc(1, sizeof *rl);
  rl->rate = rate_per_s;
  rl->burst = burst ? burst : 1; /* a zero-size bucket would deny everything forever */
  rl->max_keys = max_keys ? max_keys : 1;
  size_t size = 1;
  while (size < rl->max_keys && size < MAX_TABLE) size <<= 1;
  rl->mask = size - 1;
  /* a disabled limiter never stores a key: no table needed */
  rl->table = rate_per_s > 0 ? bd_calloc(size, sizeof *rl->table) : NULL;
  randombytes_buf(rl->hkey, sizeof rl->hkey);
  return rl;
}

void bd_rl_free(bd_rl_t *rl) {
  if (!rl) return;
  for (bucket_t *b = rl->head, *next; b; b = next) {
    next = b->lnext;
    free(b);
  }
  free(rl->table);
  free(rl);
}

size_t bd_rl_size(const bd_rl_t *rl) { return rl->n; }

static uint64_t key_hash(const bd_rl_t *rl, bd_str_t key) {
  unsigned char h[crypto_shorthash_BYTES];
  crypto_shorthash(h, (const unsigned char *)(key.len ? key.p : ""), key.len, rl->hkey);
  uint64_t v;
  memcpy(&v, h, sizeof v);
  return v;
}

static void lru_unlink(bd_rl_t *rl, bucket_t *b) {
  if (b->lprev) b->lprev->lnext = b->lnext;
  else rl->head = b->lnext;
  if (b->lnext) b->lnext->lprev = b->lprev;
  else rl->tail = b->lprev;
  b->lprev = b->lnext = NULL;
}

static void lru_push_front(bd_rl_t *rl, bucket_t *b) {
  b->lprev = NULL;
  b->lnext = rl->head;
  if (rl->head) rl->head->lprev = b;
  rl->head = b;
  if (!rl->tail) rl->tail = b;
}

static void drop(bd_rl_t *rl, bucket_t *b) {
  lru_unlink(rl, b);
  bucket_t **pp = &rl->table[b->hash & rl->mask];
  while (*pp != b) pp = &(*pp)->hnext;
  *pp = b->hnext;
  free(b);
  rl->n--;
}

/* Brings b->tokens up to now: lazy refill, capped at the burst. A clock that
 * went backwards (it should not: now_ms is monotonic) refills nothing. */
static void refill(const bd_rl_t *rl, bucket_t *b, uint64_t now_ms) {
  if (now_ms > b->last_ms) {
    double elapsed_s = (double)(now_ms - b->last_ms) / 1000.0;
    b->tokens = fmin((double)rl->burst, b->tokens + elapsed_s * rl->rate);
    b->last_ms = now_ms;
  }
}

/* Makes room for one key. A bucket that has refilled completely carries no
 * information (a new bucket starts full), so evicting it is free; one that
 * has not would hand its key a fresh burst, so those go only when no full
 * bucket is found among the EVICT_SCAN least recently used, and then the
 * least recently used goes. The LRU tail is where idle, hence full,
 * buckets collect, so the bounded scan finds them in practice. */
static void evict_one(bd_rl_t *rl, uint64_t now_ms) {
  bucket_t *b = rl->tail;
  for (int i = 0; b && i < EVICT_SCAN; i++, b = b->lprev) {
    refill(rl, b, now_ms);
    if (b->tokens >= (double)rl->burst) {
      drop(rl, b);
      return;
    }
  }
  drop(rl, rl->tail);
}

void bd_rl_take(bd_rl_t *rl, bd_str_t key, uint64_t now_ms, int64_t now_unix, bd_rl_result_t *out) {
  if (rl->rate <= 0) {
    *out = (bd_rl_result_t){.allowed = true, .limit = 0, .remaining = 0, .reset_unix = now_unix, .retry_after_s = 0};
    return;
  }
  uint64_t h = key_hash(rl, key);
  bucket_t *b = rl->table[h & rl->mask];
  while (b && !(b->hash == h && b->klen == key.len && (key.len == 0 || !memcmp(b->key, key.p, key.len))))
    b = b->hnext;
  if (b) {
    refill(rl, b, now_ms);
    lru_unlink(rl, b);
  } else {
    if (rl->n >= rl->max_keys) evict_one(rl, now_ms);
    b = bd_malloc(sizeof *b + key.len);
    b->hash = h;
    b->klen = key.len;
    if (key.len) memcpy(b->key, key.p, key.len);
    b->tokens = (double)rl->burst;
    b->last_ms = now_ms;
    bucket_t **chain = &rl->table[h & rl->mask]; /* after eviction, which may edit this chain */
    b->hnext = *chain;
    *chain = b;
    rl->n++;
  }
  lru_push_front(rl, b);

  out->limit = rl->burst;
  if (b->tokens >= 1.0) {
    b->tokens -= 1.0;
    out->allowed = true;
    out->retry_after_s = 0;
  } else {
    /* time until one whole token, rounded up; clients may not retry sooner */
    double wait = ceil((1.0 - b->tokens) / rl->rate);
    out->allowed = false;
    out->retry_after_s = wait < 1 ? 1 : wait > UINT32_MAX ? UINT32_MAX : (uint32_t)wait;
  }
  out->remaining = (uint32_t)floor(b->tokens);
  /* when the bucket will be full again, in wall-clock seconds */
  double full_in = ceil(((double)rl->burst - b->tokens) / rl->rate);
  out->reset_unix = now_unix + (int64_t)fmin(full_in, 1e12); /* a tiny rate must not overflow */
}

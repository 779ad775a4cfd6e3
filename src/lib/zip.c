/* zip.c: streaming ZIP writer with a compact central directory index.
 * See zip.h for the format decisions and the memory bound. */
#include "zip.h"

#include <libdeflate.h>
#include <stdlib.h>

/* Record signatures and fixed sizes (APPNOTE 4.3.7, 4.3.12, 4.3.14-16). */
#define SIG_LOCAL 0x04034b50u
#define SIG_CENTRAL 0x02014b50u
#define SIG_END64 0x06064b50u
#define SIG_LOC64 0x07064b50u
#define SIG_END 0x06054b50u
#define LOCAL_LEN 30
#define CENTRAL_LEN 46
#define END64_LEN 56
#define LOC64_LEN 20
#define END_LEN 22
#define ZIP64_EXTRA_LEN 12 /* tag 0x0001, size 8, 8-byte local header offset */

#define FLAG_UTF8 0x0800u      /* general purpose bit 11: name is UTF-8 */
#define VERSION_DEFAULT 20     /* 2.0: deflate; what most writers put for stored too */
#define VERSION_ZIP64 45       /* 4.5: ZIP64 extensions */
#define MADE_BY (3u << 8 | 45) /* Unix, so the external attributes carry a mode */
#define EXTERNAL_ATTR (0100644u << 16) /* regular file, rw-r--r-- */

#define BLOCK_SIZE (256u * 1024) /* index block; records never straddle blocks */
#define STAGE_FLUSH (64u * 1024) /* directory bytes gathered per sink call */
#define MAX_NAME 0xFFFFu

/* One index block: records appended back to back. */
typedef struct block {
  struct block *next; /* the next block in entry order */
  size_t len;         /* bytes of data in use */
  size_t cap;         /* bytes of data allocated */
  unsigned char data[];
} block_t;

typedef enum { ST_ADDING, ST_DIRECTORY, ST_DONE } state_t;

struct bd_zip {
  bd_zip_sink_fn sink; /* where every byte goes */
  void *ud;            /* the sink's argument, the caller's */
  uint16_t dos_time;   /* stamped on every entry */
  uint16_t dos_date;
  bool deflate;        /* BD_ZIP_DEFLATE */
  state_t state;       /* adding, writing the directory, done */
  int err;             /* sticky failure (BD_ZIP_E_SINK / _DEFLATE), 0 if none */
  uint64_t entries;    /* entries added */
  uint64_t offset;     /* bytes sent to the sink */

  /* The index (see zip.h). */
  block_t *head, *tail;   /* blocks in entry order; head is freed first */
  size_t index_bytes;     /* sum of the blocks' allocations */
  char *prev;             /* the previous name (front coding on add, decoding on finish) */
  size_t prev_len;        /* its length */
  size_t prev_cap;        /* bytes allocated for prev */

  /* Writing the directory. */
  uint64_t cd_start;      /* offset of the first central header */
  uint64_t cd_done;       /* entries whose central header has been written */
  uint64_t local_off;     /* recomputed offset of the next entry's local header */
  size_t rd;              /* read position in head */
  bd_buf_t stage;         /* headers gathered before one sink call */

  /* Deflate (libdeflate, whole entry at once: measured on certificate
   * PDFs 4.8x faster than zlib's level 1 and as small), set up on first use. */
  struct libdeflate_compressor *zc; /* level 1, raw deflate */
  unsigned char *cbuf;    /* compressed copy of the current entry */
  size_t cbuf_cap;        /* its allocation */
};

/* ---- little helpers ------------------------------------------------------ */

static inline unsigned char *put16(unsigned char *p, unsigned v) {
  p[0] = (unsigned char)v;
  p[1] = (unsigned char)(v >> 8);
  return p + 2;
}
static inline unsigned char *put32(unsigned char *p, uint32_t v) {
  for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i));
  return p + 4;
}
static inline unsigned char *put64(unsigned char *p, uint64_t v) {
  for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i));
  return p + 8;
}
static inline unsigned char *put_varint(unsigned char *p, uint64_t v) {
  while (v >= 0x80) {
    *p++ = (unsigned char)(v | 0x80);
    v >>= 7;
  }
  *p++ = (unsigned char)v;
  return p;
}
static inline uint64_t get_varint(const unsigned char **pp) {
  const unsigned char *p = *pp;
  uint64_t v = 0;
  for (int shift = 0;; shift += 7) {
    unsigned char b = *p++;
    v |= (uint64_t)(b & 0x7f) << shift;
    if (!(b & 0x80)) break;
  }
  *pp = p;
  return v;
}

static int emit(bd_zip_t *z, const void *p, size_t n) {
  if (n == 0) return BD_ZIP_OK;
  if (z->sink(z->ud, p, n) != 0) {
    z->err = BD_ZIP_E_SINK;
    return z->err;
  }
  z->offset += n;
  return BD_ZIP_OK;
}

int bd_zip_sink_buf(void *ud, const void *p, size_t n) {
  bd_buf_append(ud, p, n);
  return 0;
}

const char *bd_zip_strerror(int err) {
  switch (err) {
  case BD_ZIP_OK: return "ok";
  case BD_ZIP_MORE: return "more to write";
  case BD_ZIP_E_SINK: return "output failed";
  case BD_ZIP_E_NAME: return "invalid entry name";
  case BD_ZIP_E_SIZE: return "entry too large (4 GiB or more)";
  case BD_ZIP_E_STATE: return "archive already finished or inconsistent";
  case BD_ZIP_E_DEFLATE: return "compression failed";
  }
  return "unknown error";
}

uint32_t bd_zip_dos_datetime(int year, int month, int day, int hour, int min, int sec) {
  if (year < 1980) return (uint32_t)((0 << 9 | 1 << 5 | 1) << 16); /* 1980-01-01 00:00:00 */
  year = BD_MIN(year, 2107);
  month = BD_MAX(1, BD_MIN(month, 12));
  day = BD_MAX(1, BD_MIN(day, 31));
  hour = BD_MAX(0, BD_MIN(hour, 23));
  min = BD_MAX(0, BD_MIN(min, 59));
  sec = BD_MAX(0, BD_MIN(sec, 59));
  uint32_t date = (uint32_t)((year - 1980) << 9 | month << 5 | day);
  uint32_t time = (uint32_t)(hour << 11 | min << 5 | sec / 2);
  return date << 16 | time;
}

bd_zip_t *bd_zip_new(bd_zip_sink_fn sink, void *ud, uint32_t dos_datetime, unsigned flags) {
  bd_zip_t *z = bd_calloc(1, sizeof *z);
  z->sink = sink;
  z->ud = ud;
  z->dos_date = (uint16_t)(dos_datetime >> 16);
  z->dos_time = (uint16_t)dos_datetime;
  z->deflate = (flags & BD_ZIP_DEFLATE) != 0;
  bd_buf_init(&z->stage);
  return z;
}

void bd_zip_free(bd_zip_t *z) {
  if (!z) return;
  for (block_t *b = z->head, *next; b; b = next) {
    next = b->next;
    free(b);
  }
  if (z->zc) libdeflate_free_compressor(z->zc);
  free(z->cbuf);
  free(z->prev);
  bd_buf_free(&z->stage);
  free(z);
}

uint64_t bd_zip_entries(const bd_zip_t *z) { return z->entries; }
uint64_t bd_zip_written(const bd_zip_t *z) { return z->offset; }
size_t bd_zip_index_bytes(const bd_zip_t *z) { return z->index_bytes; }

/* ---- names --------------------------------------------------------------- */

/* Length of the UTF-8 sequence at p (at most n bytes), 0 when invalid:
 * overlong forms, surrogates and code points above U+10FFFF are refused
 * (RFC 3629), as strict unzip tools do. */
static size_t utf8_len(const unsigned char *p, size_t n) {
  unsigned char c = p[0];
  if (c < 0x80) return 1;
  size_t len;
  uint32_t cp;
  if (c >= 0xC2 && c <= 0xDF) len = 2, cp = c & 0x1F;
  else if (c >= 0xE0 && c <= 0xEF) len = 3, cp = c & 0x0F;
  else if (c >= 0xF0 && c <= 0xF4) len = 4, cp = c & 0x07;
  else return 0;
  if (len > n) return 0;
  for (size_t i = 1; i < len; i++) {
    if ((p[i] & 0xC0) != 0x80) return 0;
    cp = cp << 6 | (p[i] & 0x3F);
  }
  if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) || cp > 0x10FFFF ||
      (cp >= 0xD800 && cp <= 0xDFFF))
    return 0;
  return len;
}

/* See bd_zip_add(): what an extractor can write safely under its target
 * directory ("zip slip" is the extractor's problem, but not producing such
 * names costs nothing). */
static bool name_ok(const char *name, size_t n) {
  if (n == 0 || n > MAX_NAME) return false;
  const unsigned char *p = (const unsigned char *)name;
  size_t comp = 0; /* start of the current path component */
  for (size_t i = 0; i <= n; i++) {
    if (i == n || p[i] == '/') {
      size_t cl = i - comp;
      if (cl == 0) return false; /* leading '/', "//", trailing '/' */
      if ((cl == 1 && p[comp] == '.') || (cl == 2 && p[comp] == '.' && p[comp + 1] == '.')) return false;
      comp = i + 1;
      continue;
    }
    if (p[i] < 0x20 || p[i] == 0x7f || p[i] == '\\') return false;
    if (p[i] >= 0x80) {
      size_t l = utf8_len(p + i, n - i);
      if (!l) return false;
      i += l - 1;
    }
  }
  return true;
}

/* ---- the index ----------------------------------------------------------- */

/* Room for a record of `need` bytes at the tail, starting a block if the
 * current one is full (records never straddle blocks, so reading back is a
 * plain pointer walk). */
static unsigned char *index_reserve(bd_zip_t *z, size_t need) {
  block_t *t = z->tail;
  if (!t || t->cap - t->len < need) {
    size_t cap = BD_MAX((size_t)BLOCK_SIZE, need);
    block_t *b = bd_malloc(sizeof *b + cap);
    b->next = NULL;
    b->len = 0;
    b->cap = cap;
    if (t) t->next = b;
    else z->head = b;
    z->tail = t = b;
    z->index_bytes += sizeof *b + cap;
  }
  return t->data + t->len;
}

static void prev_set(bd_zip_t *z, size_t keep, const char *suffix, size_t slen) {
  if (keep + slen > z->prev_cap) {
    z->prev_cap = BD_MAX(keep + slen, z->prev_cap * 2);
    z->prev = bd_realloc(z->prev, z->prev_cap);
  }
  memcpy(z->prev + keep, suffix, slen);
  z->prev_len = keep + slen;
}

static void index_append(bd_zip_t *z, const char *name, size_t nlen, uint32_t crc, bool deflated,
                         uint64_t csize, uint64_t usize) {
  size_t shared = 0, max = BD_MIN(nlen, z->prev_len);
  while (shared < max && z->prev[shared] == name[shared]) shared++;
  size_t slen = nlen - shared;
  unsigned char *p0 = index_reserve(z, 1 + 4 + 3 * 10 + slen);
  unsigned char *p = p0;
  *p++ = deflated ? 1 : 0;
  p = put32(p, crc);
  p = put_varint(p, csize);
  if (deflated) p = put_varint(p, usize);
  p = put_varint(p, shared);
  p = put_varint(p, slen);
  memcpy(p, name + shared, slen);
  p += slen;
  z->tail->len += (size_t)(p - p0);
  prev_set(z, shared, name + shared, slen);
}

/* ---- adding -------------------------------------------------------------- */

/* Deflates data into z->cbuf; returns its size, or (size_t)-1 when it does
 * not shrink, or sets z->err. */
static size_t deflate_entry(bd_zip_t *z, const void *data, size_t len, int *err) {
  *err = 0;
  if (!z->zc && !(z->zc = libdeflate_alloc_compressor(1))) {
    *err = BD_ZIP_E_DEFLATE;
    return 0;
  }
  /* At most len - 1 bytes out: not smaller is stored, and the buffer never
   * needs more than len bytes. */
  if (z->cbuf_cap < len) {
    free(z->cbuf);
    z->cbuf_cap = BD_MAX(len, z->cbuf_cap * 2);
    z->cbuf = bd_malloc(z->cbuf_cap);
  }
  size_t n = len > 1 ? libdeflate_deflate_compress(z->zc, data, len, z->cbuf, len - 1) : 0;
  return n ? n : (size_t)-1; /* 0: it did not fit, no gain */
}

int bd_zip_add(bd_zip_t *z, const char *name, const void *data, size_t len) {
  if (z->err) return z->err;
  if (z->state != ST_ADDING) return BD_ZIP_E_STATE;
  size_t nlen = name ? strlen(name) : 0;
  if (!name_ok(name, nlen)) return BD_ZIP_E_NAME;
  if ((uint64_t)len >= 0xFFFFFFFFu) return BD_ZIP_E_SIZE;

  uint32_t crc = len ? libdeflate_crc32(0, data, len) : 0;
  const void *out = data;
  size_t csize = len;
  bool deflated = false;
  if (z->deflate && len > 0) {
    int err;
    size_t n = deflate_entry(z, data, len, &err);
    if (err) return z->err = err;
    if (n != (size_t)-1) {
      out = z->cbuf;
      csize = n;
      deflated = true;
    }
  }

  unsigned char h[LOCAL_LEN], *p = h;
  p = put32(p, SIG_LOCAL);
  p = put16(p, VERSION_DEFAULT);
  p = put16(p, FLAG_UTF8);
  p = put16(p, deflated ? 8 : 0);
  p = put16(p, z->dos_time);
  p = put16(p, z->dos_date);
  p = put32(p, crc);
  p = put32(p, (uint32_t)csize);
  p = put32(p, (uint32_t)len);
  p = put16(p, (unsigned)nlen);
  p = put16(p, 0); /* no extra field: sizes fit 32 bits, the offset is only in the directory */
  int rc;
  if ((rc = emit(z, h, sizeof h)) || (rc = emit(z, name, nlen)) || (rc = emit(z, out, csize))) return rc;
  index_append(z, name, nlen, crc, deflated, csize, len);
  z->entries++;
  return BD_ZIP_OK;
}

/* ---- finishing ----------------------------------------------------------- */

/* Decodes the next index record and appends its central header to stage. */
static void central_next(bd_zip_t *z) {
  while (z->rd == z->head->len) { /* this block is done: free it */
    block_t *b = z->head;
    z->head = b->next;
    z->index_bytes -= sizeof *b + b->cap;
    free(b);
    z->rd = 0;
  }
  const unsigned char *p = z->head->data + z->rd;
  bool deflated = *p++ & 1;
  uint32_t crc = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
  p += 4;
  uint64_t csize = get_varint(&p);
  uint64_t usize = deflated ? get_varint(&p) : csize;
  size_t shared = (size_t)get_varint(&p);
  size_t slen = (size_t)get_varint(&p);
  prev_set(z, shared, (const char *)p, slen);
  p += slen;
  z->rd = (size_t)(p - z->head->data);

  bool zip64 = z->local_off >= 0xFFFFFFFFu;
  size_t nlen = z->prev_len;
  bd_buf_reserve(&z->stage, CENTRAL_LEN + nlen + ZIP64_EXTRA_LEN);
  unsigned char *h0 = (unsigned char *)z->stage.data + z->stage.len, *h = h0;
  h = put32(h, SIG_CENTRAL);
  h = put16(h, MADE_BY);
  h = put16(h, zip64 ? VERSION_ZIP64 : VERSION_DEFAULT);
  h = put16(h, FLAG_UTF8);
  h = put16(h, deflated ? 8 : 0);
  h = put16(h, z->dos_time);
  h = put16(h, z->dos_date);
  h = put32(h, crc);
  h = put32(h, (uint32_t)csize);
  h = put32(h, (uint32_t)usize);
  h = put16(h, (unsigned)nlen);
  h = put16(h, zip64 ? ZIP64_EXTRA_LEN : 0);
  h = put16(h, 0); /* comment */
  h = put16(h, 0); /* disk number start */
  h = put16(h, 0); /* internal attributes */
  h = put32(h, EXTERNAL_ATTR);
  h = put32(h, zip64 ? 0xFFFFFFFFu : (uint32_t)z->local_off);
  memcpy(h, z->prev, nlen);
  h += nlen;
  if (zip64) { /* only the field that overflowed: sizes stay in the header */
    h = put16(h, 0x0001);
    h = put16(h, 8);
    h = put64(h, z->local_off);
  }
  z->stage.len += (size_t)(h - h0);
  z->stage.data[z->stage.len] = '\0'; /* bd_buf_t's invariant; reserve left room for it */
  z->local_off += LOCAL_LEN + nlen + csize;
  z->cd_done++;
}

/* Appends the end records to stage. */
static void end_records(bd_zip_t *z) {
  uint64_t cd_end = z->offset + z->stage.len; /* the directory ends where stage ends */
  uint64_t cd_size = cd_end - z->cd_start;
  bool zip64 = z->entries >= 0xFFFF || z->cd_start >= 0xFFFFFFFFu || cd_size >= 0xFFFFFFFFu;
  unsigned char r[END64_LEN + LOC64_LEN + END_LEN], *p = r;
  if (zip64) {
    p = put32(p, SIG_END64);
    p = put64(p, END64_LEN - 12); /* size of the rest of the record */
    p = put16(p, MADE_BY);
    p = put16(p, VERSION_ZIP64);
    p = put32(p, 0);              /* this disk */
    p = put32(p, 0);              /* disk with the directory */
    p = put64(p, z->entries);     /* entries on this disk */
    p = put64(p, z->entries);     /* entries in total */
    p = put64(p, cd_size);
    p = put64(p, z->cd_start);
    p = put32(p, SIG_LOC64);
    p = put32(p, 0);              /* disk with the ZIP64 end record */
    p = put64(p, cd_end);         /* where that record starts */
    p = put32(p, 1);              /* disks in total */
  }
  p = put32(p, SIG_END);
  p = put16(p, 0);
  p = put16(p, 0);
  p = put16(p, zip64 ? 0xFFFF : (unsigned)z->entries);
  p = put16(p, zip64 ? 0xFFFF : (unsigned)z->entries);
  p = put32(p, zip64 ? 0xFFFFFFFFu : (uint32_t)cd_size);
  p = put32(p, zip64 ? 0xFFFFFFFFu : (uint32_t)z->cd_start);
  p = put16(p, 0); /* comment length */
  bd_buf_append(&z->stage, r, (size_t)(p - r));
}

int bd_zip_finish_some(bd_zip_t *z, size_t budget) {
  if (z->err) return z->err;
  if (z->state == ST_DONE) return BD_ZIP_OK;
  if (z->state == ST_ADDING) {
    z->state = ST_DIRECTORY;
    z->cd_start = z->offset;
    z->local_off = 0;
    z->prev_len = 0;
    z->rd = 0;
  }
  size_t sent = 0;
  for (;;) {
    while (z->cd_done < z->entries && z->stage.len < STAGE_FLUSH) central_next(z);
    bool last = z->cd_done == z->entries;
    if (last) {
      /* Every offset was recomputed from the index: they must add up to
       * where the directory started, or the headers just written lie. */
      if (z->local_off != z->cd_start) return z->err = BD_ZIP_E_STATE;
      end_records(z);
    }
    int rc = emit(z, z->stage.data, z->stage.len);
    sent += z->stage.len;
    bd_buf_reset(&z->stage);
    if (rc) return rc;
    if (last) {
      z->state = ST_DONE;
      /* Nothing is needed any more: give the memory back now rather than at
       * bd_zip_free(), which may come much later (after the socket drains). */
      for (block_t *b = z->head, *next; b; b = next) {
        next = b->next;
        free(b);
      }
      z->head = z->tail = NULL;
      z->index_bytes = 0;
      bd_buf_free(&z->stage);
      return BD_ZIP_OK;
    }
    if (sent >= budget) return BD_ZIP_MORE;
  }
}

int bd_zip_finish(bd_zip_t *z) {
  int rc;
  while ((rc = bd_zip_finish_some(z, SIZE_MAX)) == BD_ZIP_MORE) {
  }
  return rc;
}

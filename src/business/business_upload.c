/* business_upload.c: POST /business/batches, the streamed roster upload
 * that creates a certificate batch of the /business surface (the batch
 * reads, approval and errors.csv are in business_batches.c).
 *
 * The body goes through the multipart parser (multipart.h) as it arrives;
 * the csv_file part goes through the roster validator (roster.h), whose
 * COPY lines get the server-made columns (batch, institution, certificate
 * UUID v7, reference id) prepended and go to PostgreSQL with COPY on a
 * pinned connection, inside one transaction, while the upload is still
 * coming in:
 *
 *   headers → authenticate (batches:create) → pin a connection → BEGIN →
 *   COPY biz_certificates FROM STDIN → resume reading → body bytes →
 *   multipart → roster → COPY data ... → end of body → end COPY →
 *   biz_batch_check (template, signatories) → validation → 422 and
 *   ROLLBACK, or biz_create_batch + COMMIT → 201.
 *
 * Backpressure: when more than the pool's COPY high-water mark waits for
 * the database socket, reading the request stops (bd_req_pause) until the
 * COPY buffer drains. One body chunk is processed per callback and its
 * output queued whole, so the server holds at most a few hundred KiB per
 * upload whatever the file size.
 *
 * Fields may come in any order, so nothing is validated before the end of
 * the body: a structural CSV problem aborts the COPY at once (nothing of it
 * can commit) and the rest of the body is only parsed for the other
 * fields, so the 422 lists every error, Laravel style. A client that
 * leaves before the 201 gets its transaction rolled back.
 *
 * Admission: at most BATCHD_MAX_UPLOADS uploads hold (or wait for) a
 * pinned connection at once (g_uploads); the next ones get 503
 * too_many_uploads. With an Idempotency-Key the stored 201 is written in
 * the batch's own transaction, so the batch and its answer commit together.
 */
#include "business.h"

#include "app.h"
#include "idem.h"
#include "jobs.h"
#include "log.h"
#include "multipart.h"
#include "roster.h"
#include "util.h"

#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>
#include <time.h>

#define MAX_SIG_ITEMS  20          /* signatories in one request */
#define MAX_SIG_KEY    99          /* largest N in signatories[N][…] */
#define TEXT_FIELD_MAX 4096        /* bytes kept of a text field (longer ones fail validation) */
#define SIG_JSON_MAX   65536       /* bytes of the `signatories` JSON field */
#define ROSTER_SLICE   (64 * 1024) /* roster feeds at most this much at once (roster.h) */
#define LOOP_SLICE \
  (64 * 1024)      /* body bytes parsed per loop iteration: bounds the time on the loop */
#define REF_LEN 12 /* reference id: 12 Crockford base-32 characters, 60 bits */

static const char *const COPY_SQL =
    "COPY biz_certificates (batch_id, institution_id, id, reference_id, " BD_ROSTER_COPY_COLUMNS
    ") FROM STDIN";

/* --- upload state ---------------------------------------------------------------- */

typedef enum {
  PART_IGNORE = 0, /* a field we do not know: skipped */
  PART_NAME,
  PART_TEMPLATE,
  PART_CSV,
  PART_SIG_JSON,  /* signatories = JSON array */
  PART_SIG_UUID,  /* signatories[N][user_uuid] */
  PART_SIG_INDEX, /* signatories[N][index] */
  PART_NOTIFY,    /* notify_recipients */
} part_kind_t;

typedef struct {
  uint32_t key;    /* N of signatories[N] (JSON: array position) */
  bd_buf_t uuid;   /* user_uuid as sent */
  bd_buf_t index;  /* index as sent */
  bool has_uuid;   /* user_uuid present */
  bool has_index;  /* index present */
  bool index_bad;  /* JSON index of the wrong type */
  int64_t index_v; /* parsed index (valid when index_ok) */
  bool index_ok;   /* index is an integer */
  int64_t user_id; /* resolved user (0 = not found) */
  json_t *user;    /* its row from biz_batch_check (borrowed) */
} sig_item_t;

typedef enum {
  UP_AUTH = 0, /* authenticating */
  UP_PIN,      /* acquiring the connection / BEGIN / COPY start */
  UP_STREAM,   /* COPY open, body flowing */
  UP_FINISH,   /* body complete, ending COPY / validating / committing */
  UP_REPLAY,   /* Idempotency-Key already answered: the body is only hashed */
  UP_DONE,     /* responded (or given up), connection released */
} up_state_t;

typedef struct {
  bd_req_t *req;                        /* the upload */
  up_state_t state;                     /* see above */
  bd_biz_caller_t caller;               /* authenticated caller */
  char batch_id[37];                    /* UUID v7 of the batch to be */
  char prefix[128];                     /* "batch\tinstitution\t" of every COPY line */
  size_t prefix_len;                    /* its length */
  bd_mp_t *mp;                          /* multipart parser */
  int mp_err;                           /* first multipart error (negative) or 0 */
  bd_roster_t *roster;                  /* csv_file validator (NULL until the part starts) */
  bd_buf_t rout;                        /* roster output (COPY lines without our columns) */
  bd_buf_t copy;                        /* COPY lines ready to send */
  int csv_err;                          /* roster verdict once known (BD_ROSTER_*) */
  char *csv_msg;                        /* its message */
  bool csv_seen;                        /* a csv_file part started */
  bool csv_done;                        /* its body ended (roster finished) */
  bool csv_is_file;                     /* it carried a filename */
  bool csv_twice;                       /* a second csv_file part (ignored) */
  uint64_t rows, failed;                /* roster counts */
  part_kind_t part;                     /* kind of the current part */
  sig_item_t *cur_sig;                  /* item of the current signatories[N] part */
  bd_buf_t name, template_id, sig_json; /* text fields */
  bd_buf_t notify;                      /* notify_recipients (issue 26) */
  bool notify_long;                     /* over the kept size */
  bool notify_on;                       /* its value, once validated */
  bool name_seen, template_seen, sig_json_seen; /* present at all */
  bool name_long, template_long, sig_json_long; /* over the kept size */
  sig_item_t sigs[MAX_SIG_ITEMS];               /* signatory items, in first-appearance order */
  size_t nsigs;                                 /* used */
  bool sigs_overflow;                           /* more items than MAX_SIG_ITEMS or N too large */
  bd_buf_t pending;      /* body bytes received but not parsed yet (reading is paused meanwhile) */
  size_t pending_off;    /* parsed prefix of pending */
  uv_timer_t *tick;      /* parses the next slice of pending on the next loop iteration */
  bd_pg_conn_t *conn;    /* pinned connection (NULL when not held) */
  bool copy_open;        /* COPY IN started and not ended */
  bool copy_broken;      /* copy_put failed: the connection or the COPY died */
  bool waiting_drain;    /* paused until the COPY buffer drains */
  bool body_done;        /* the whole body was received */
  bool gone;             /* the client left or the body failed */
  int ops;               /* asynchronous operations in flight */
  uint8_t rnd[4096];     /* random bytes for ids, refilled in bulk */
  size_t rnd_off;        /* consumed prefix of rnd */
  json_t *check;         /* biz_batch_check result */
  bool rolled_back;      /* the aborted transaction was rolled back */
  bool sig_json_parsed;  /* the signatories JSON field was read into sigs */
  bool sig_json_bad;     /* … and was not an array */
  bool has_slot;         /* counted in g_uploads */
  uint64_t parse_ns;     /* loop thread CPU time spent parsing the body */
  uint64_t slice_max_ns; /* the longest single parse step (CPU time) */
  uint64_t body_parsed;  /* body bytes parsed */
  bd_idem_stream_t *idem; /* Idempotency-Key protocol (NULL without the header) */
} up_t;

/* Uploads holding (or waiting for) a pinned connection: at most
 * BATCHD_MAX_UPLOADS, so uploads never take every connection of the pool
 * from the other requests. */
static int64_t g_uploads;

static void up_tick_closed(uv_handle_t *h) { free(h); }

static void up_free(void *arg) {
  up_t *u = arg;
  if (u->has_slot) g_uploads--;
  bd_mp_free(u->mp);
  bd_roster_free(u->roster);
  bd_buf_free(&u->rout);
  bd_buf_free(&u->copy);
  bd_buf_free(&u->pending);
  if (u->tick) {
    u->tick->data = NULL; /* a callback still due finds nothing */
    uv_close((uv_handle_t *)u->tick, up_tick_closed);
  }
  bd_buf_free(&u->name);
  bd_buf_free(&u->template_id);
  bd_buf_free(&u->notify);
  bd_buf_free(&u->sig_json);
  for (size_t i = 0; i < u->nsigs; i++) {
    bd_buf_free(&u->sigs[i].uuid);
    bd_buf_free(&u->sigs[i].index);
  }
  free(u->csv_msg);
  json_decref(u->check);
  bd_idem_stream_free(u->idem);
  free(u);
}

/* Every response of the upload passes here: a paused body must flow again
 * so that the rest of it is read (and dropped) and the connection can
 * serve the next request. */
static void up_on_respond(bd_req_t *req, int status, const char *ctype, const char *body,
                          size_t len) {
  up_t *u = req->ctx;
  bd_req_resume(req);
  /* stores the answer under its Idempotency-Key (or frees the key) first */
  bd_idem_stream_respond(req, u ? u->idem : NULL, status, ctype, body, len);
}

static void up_release_conn(up_t *u) {
  if (!u->conn) return;
  /* a connection still in COPY, or with an operation in flight, is closed
   * by the pool; otherwise it rolls back whatever is open and is reused */
  bd_pg_release(u->conn, false);
  u->conn = NULL;
  u->copy_open = false;
}

/* Ends the upload when nothing is in flight any more: releases the
 * connection (rollback) and completes the request into the void if no
 * response was given. */
static void up_finish_gone(up_t *u) {
  if (u->ops > 0) return;
  up_release_conn(u);
  u->state = UP_DONE;
  if (!u->req->resp_done) bd_resp_send(u->req, 499, "text/plain", "", 0);
}

static void up_begin_op(up_t *u) {
  u->ops++;
  bd_req_hold(u->req);
}

/* Returns true when the caller should stop: the client left meanwhile. */
static bool up_end_op(up_t *u) {
  u->ops--;
  bool gone = u->gone || bd_req_gone(u->req);
  if (gone) {
    u->gone = true;
    up_finish_gone(u);
  }
  return gone;
}

static void up_release_req(up_t *u) { bd_req_release(u->req); }

/* --- ids ------------------------------------------------------------------------- */

static const uint8_t *up_random(up_t *u, size_t n) {
  if (u->rnd_off + n > sizeof u->rnd) {
    randombytes_buf(u->rnd, sizeof u->rnd);
    u->rnd_off = 0;
  }
  const uint8_t *p = u->rnd + u->rnd_off;
  u->rnd_off += n;
  return p;
}

static char *put_hex(char *w, const uint8_t *b, size_t n) {
  static const char hx[] = "0123456789abcdef";
  for (size_t i = 0; i < n; i++) {
    *w++ = hx[b[i] >> 4];
    *w++ = hx[b[i] & 15];
  }
  return w;
}

/* UUID v7 (48-bit Unix ms, then random) and a reference id, as COPY text. */
static char *put_ids(up_t *u, char *w, uint64_t ms) {
  uint8_t b[16];
  memcpy(b + 6, up_random(u, 10), 10);
  for (int i = 0; i < 6; i++) b[i] = (uint8_t)(ms >> (40 - 8 * i));
  b[6] = (uint8_t)((b[6] & 0x0f) | 0x70);
  b[8] = (uint8_t)((b[8] & 0x3f) | 0x80);
  w = put_hex(w, b, 4);
  *w++ = '-';
  w = put_hex(w, b + 4, 2);
  *w++ = '-';
  w = put_hex(w, b + 6, 2);
  *w++ = '-';
  w = put_hex(w, b + 8, 2);
  *w++ = '-';
  w = put_hex(w, b + 10, 6);
  *w++ = '\t';
  /* Crockford base 32 (no I, L, O, U): easy to read out and type */
  static const char cb[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
  const uint8_t *r = up_random(u, 8);
  uint64_t v = 0;
  for (int i = 0; i < 8; i++) v = (v << 8) | r[i];
  for (int i = 0; i < REF_LEN; i++) {
    *w++ = cb[v & 31];
    v >>= 5;
  }
  *w++ = '\t';
  return w;
}

/* --- COPY ------------------------------------------------------------------------ */

static void up_abort_copy(up_t *u);

/* Moves the roster's complete lines into COPY, each with our columns in
 * front, and queues them. */
static void up_flush_rows(up_t *u) {
  if (!u->rout.len) return;
  if (!u->copy_open || u->csv_err || u->copy_broken) {
    bd_buf_reset(&u->rout);
    return;
  }
  const char *p = u->rout.data, *end = p + u->rout.len;
  size_t lines = 0;
  for (const char *q = p; (q = memchr(q, '\n', (size_t)(end - q))); q++) lines++;
  bd_buf_reserve(&u->copy, u->rout.len + lines * (u->prefix_len + 64));
  char *w = u->copy.data + u->copy.len;
  uint64_t ms = (uint64_t)(bd_wall_us() / 1000);
  while (p < end) {
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    if (!nl) break; /* the roster only appends whole lines */
    memcpy(w, u->prefix, u->prefix_len);
    w += u->prefix_len;
    w = put_ids(u, w, ms);
    memcpy(w, p, (size_t)(nl - p + 1));
    w += nl - p + 1;
    p = nl + 1;
  }
  u->copy.len = (size_t)(w - u->copy.data);
  u->copy.data[u->copy.len] = '\0';
  bd_buf_reset(&u->rout);
  int rc = bd_pg_copy_put(u->conn, u->copy.data, u->copy.len);
  bd_buf_reset(&u->copy);
  if (rc < 0) {
    u->copy_broken = true; /* the end of COPY reports why */
  } else if (rc == 1 && !u->waiting_drain) {
    u->waiting_drain = true;
  }
}

static void up_next(up_t *u);

static void on_copy_drained(void *ud) {
  up_t *u = ud;
  u->waiting_drain = false;
  up_next(u);
}

/* --- multipart callbacks ----------------------------------------------------------- */

static sig_item_t *sig_item(up_t *u, uint32_t key) {
  for (size_t i = 0; i < u->nsigs; i++)
    if (u->sigs[i].key == key) return &u->sigs[i];
  if (key > MAX_SIG_KEY || u->nsigs == MAX_SIG_ITEMS) {
    u->sigs_overflow = true;
    return NULL;
  }
  sig_item_t *s = &u->sigs[u->nsigs++];
  memset(s, 0, sizeof *s);
  s->key = key;
  return s;
}

static void csv_verdict(up_t *u, int code) {
  if (code == BD_ROSTER_OK || u->csv_err) return;
  u->csv_err = code;
  u->csv_msg = bd_strdup(bd_roster_message(u->roster));
  up_abort_copy(u);
}

static int mp_begin(void *ud, const bd_mp_part_t *part) {
  up_t *u = ud;
  u->part = PART_IGNORE;
  u->cur_sig = NULL;
  bd_mp_field_name_t f;
  if (!bd_mp_parse_field_name(part->name, &f)) return BD_MP_CB_OK;
  if (!f.has_index && !f.key.len) {
    if (bd_str_eq(f.base, "csv_file")) {
      if (u->csv_seen) {
        u->csv_twice = true; /* the first one counts */
        return BD_MP_CB_OK;
      }
      u->csv_seen = true;
      u->csv_is_file = part->filename.p != NULL;
      bd_roster_opts_t o;
      bd_roster_opts_default(&o);
      o.max_rows = (uint64_t)bd_app.cfg.max_csv_rows;
      o.max_field = (size_t)bd_app.cfg.max_csv_field;
      char today[16];
      time_t now = time(NULL);
      struct tm tm;
      gmtime_r(&now, &tm);
      strftime(today, sizeof today, "%Y-%m-%d", &tm);
      o.today = today;
      u->roster = bd_roster_new(&o, &u->rout);
      if (!u->roster) return BD_MP_CB_ABORT;
      u->part = PART_CSV;
    } else if (bd_str_eq(f.base, "name")) {
      u->part = PART_NAME;
      u->name_seen = true;
      bd_buf_reset(&u->name); /* the last value wins, as in PHP */
      u->name_long = false;
    } else if (bd_str_eq(f.base, "template_id")) {
      u->part = PART_TEMPLATE;
      u->template_seen = true;
      bd_buf_reset(&u->template_id);
      u->template_long = false;
    } else if (bd_str_eq(f.base, "notify_recipients")) {
      u->part = PART_NOTIFY;
      bd_buf_reset(&u->notify);
      u->notify_long = false;
    } else if (bd_str_eq(f.base, "signatories")) {
      u->part = PART_SIG_JSON;
      u->sig_json_seen = true;
      bd_buf_reset(&u->sig_json);
      u->sig_json_long = false;
    }
    return BD_MP_CB_OK;
  }
  if (bd_str_eq(f.base, "signatories") && f.has_index && f.key.len) {
    bool is_uuid = bd_str_eq(f.key, "user_uuid"), is_index = bd_str_eq(f.key, "index");
    if (!is_uuid && !is_index) return BD_MP_CB_OK;
    sig_item_t *s = sig_item(u, f.index);
    if (!s) return BD_MP_CB_OK;
    u->cur_sig = s;
    if (is_uuid) {
      s->has_uuid = true;
      bd_buf_reset(&s->uuid);
      u->part = PART_SIG_UUID;
    } else {
      s->has_index = true;
      bd_buf_reset(&s->index);
      u->part = PART_SIG_INDEX;
    }
  }
  return BD_MP_CB_OK;
}

static void keep_text(bd_buf_t *b, bool *long_flag, size_t max, const char *p, size_t n) {
  if (b->len + n > max) {
    *long_flag = true;
    n = b->len < max ? max - b->len : 0;
  }
  if (n) bd_buf_append(b, p, n);
}

static int mp_data(void *ud, const char *p, size_t n) {
  up_t *u = ud;
  switch (u->part) {
    case PART_CSV:
      while (n && !u->csv_err) {
        size_t k = BD_MIN(n, (size_t)ROSTER_SLICE);
        csv_verdict(u, bd_roster_feed(u->roster, p, k));
        up_flush_rows(u);
        p += k;
        n -= k;
      }
      break;
    case PART_NAME: keep_text(&u->name, &u->name_long, TEXT_FIELD_MAX, p, n); break;
    case PART_TEMPLATE: keep_text(&u->template_id, &u->template_long, TEXT_FIELD_MAX, p, n); break;
    case PART_NOTIFY: keep_text(&u->notify, &u->notify_long, TEXT_FIELD_MAX, p, n); break;
    case PART_SIG_JSON: keep_text(&u->sig_json, &u->sig_json_long, SIG_JSON_MAX, p, n); break;
    case PART_SIG_UUID: {
      bool lf = false;
      keep_text(&u->cur_sig->uuid, &lf, TEXT_FIELD_MAX, p, n);
      break;
    }
    case PART_SIG_INDEX: {
      bool lf = false;
      keep_text(&u->cur_sig->index, &lf, TEXT_FIELD_MAX, p, n);
      break;
    }
    case PART_IGNORE: break;
  }
  return BD_MP_CB_OK;
}

static int mp_end(void *ud) {
  up_t *u = ud;
  if (u->part == PART_CSV) {
    csv_verdict(u, bd_roster_finish(u->roster));
    up_flush_rows(u);
    u->csv_done = true;
    u->rows = bd_roster_rows(u->roster);
    u->failed = bd_roster_failed(u->roster);
  }
  u->part = PART_IGNORE;
  return BD_MP_CB_OK;
}

/* CPU time of the loop thread: what a parse step costs, whatever the
 * scheduler does meanwhile on a busy machine. */
static uint64_t thread_cpu_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Runs body bytes through the parsers. */
static void up_parse(up_t *u, const char *p, size_t n) {
  if (u->mp_err) return; /* the rest of a malformed body is dropped */
  uint64_t t0 = thread_cpu_ns();
  int st = 0;
  (void)bd_mp_feed(u->mp, p, n, &st);
  if (st < 0) {
    u->mp_err = st;
    if (u->part == PART_CSV && !u->csv_err) up_abort_copy(u);
  }
  uint64_t dt = thread_cpu_ns() - t0;
  u->parse_ns += dt;
  if (dt > u->slice_max_ns) u->slice_max_ns = dt;
  u->body_parsed += n;
}

static void up_tick(uv_timer_t *t);
static void up_finalize(up_t *u);

static void up_schedule(up_t *u) {
  if (!u->tick) {
    u->tick = bd_malloc(sizeof *u->tick);
    uv_timer_init(bd_app.loop, u->tick);
  }
  u->tick->data = u;
  uv_timer_start(u->tick, up_tick, 0, 0);
}

/* After a slice: wait for the COPY buffer to drain, parse the next slice
 * on the next loop iteration, finish, or read more. Reading stays paused
 * while anything is pending, so the request holds at most one input
 * buffer beyond what it parses. */
static void up_next(up_t *u) {
  if (u->state != UP_STREAM || u->gone) return;
  if (u->waiting_drain && u->conn && u->copy_open) {
    bd_req_pause(u->req);
    bd_pg_copy_on_drain(u->conn, on_copy_drained, u);
    return;
  }
  u->waiting_drain = false;
  if (u->pending_off < u->pending.len) {
    bd_req_pause(u->req);
    up_schedule(u);
  } else if (u->body_done) {
    up_finalize(u);
  } else {
    bd_req_resume(u->req);
  }
}

static void up_tick(uv_timer_t *t) {
  up_t *u = t->data;
  if (!u || u->state != UP_STREAM || u->gone) return;
  size_t n = BD_MIN((size_t)LOOP_SLICE, u->pending.len - u->pending_off);
  up_parse(u, u->pending.data + u->pending_off, n);
  u->pending_off += n;
  if (u->pending_off == u->pending.len) {
    bd_buf_reset(&u->pending);
    u->pending_off = 0;
  }
  up_next(u);
}

/* Body bytes from the connection: one slice is parsed now, the rest waits
 * in `pending` for the next loop iterations. */
static void up_feed(up_t *u, const char *p, size_t n) {
  if (u->pending_off < u->pending.len) {
    bd_buf_append(&u->pending, p, n); /* already behind: keep the order */
    return;
  }
  size_t k = BD_MIN(n, (size_t)LOOP_SLICE);
  up_parse(u, p, k);
  if (n > k) {
    bd_buf_reset(&u->pending);
    u->pending_off = 0;
    bd_buf_append(&u->pending, p + k, n - k);
  }
  up_next(u);
}

/* --- the end of the upload ------------------------------------------------------------ */

static void up_finalize(up_t *u);
static void up_run_check(up_t *u);

static void on_copy_aborted(void *ud, const bd_pg_result_t *r) {
  up_t *u = ud;
  (void)r; /* the abort's own error ("COPY … rejected") is expected */
  bool stop = up_end_op(u);
  if (!stop && u->state == UP_FINISH) up_run_check(u);
  up_release_req(u);
}

/* Gives up the COPY (nothing of it will commit); the connection stays
 * pinned for the validation query. */
static void up_abort_copy(up_t *u) {
  if (!u->copy_open) return;
  u->copy_open = false;
  u->waiting_drain = false;
  bd_buf_reset(&u->rout);
  up_begin_op(u);
  if (bd_pg_copy_end(u->conn, "upload rejected", on_copy_aborted, u) != 0) {
    u->copy_broken = true;
    u->ops--;
    up_release_req(u);
  }
}

/* 422 text of a multipart failure. */
static const char *mp_message(int st) {
  switch (st) {
    case BD_MP_EHEADER_TOO_BIG: return "The csv file upload has a part header over the size limit.";
    case BD_MP_ETOO_MANY_PARTS: return "The upload has too many parts.";
    default: return "The csv file upload is incomplete or malformed.";
  }
}

static bool valid_utf8(const char *s, size_t n) {
  const uint8_t *p = (const uint8_t *)s, *e = p + n;
  while (p < e) {
    if (*p < 0x80) {
      if (*p == 0) return false;
      p++;
      continue;
    }
    int len = (*p & 0xe0) == 0xc0 ? 2 : (*p & 0xf0) == 0xe0 ? 3 : (*p & 0xf8) == 0xf0 ? 4 : 0;
    if (!len || e - p < len) return false;
    uint32_t cp = *p & (0x7f >> len);
    for (int i = 1; i < len; i++) {
      if ((p[i] & 0xc0) != 0x80) return false;
      cp = (cp << 6) | (p[i] & 0x3f);
    }
    if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) ||
        (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) || (cp >= 0xd800 && cp <= 0xdfff))
      return false;
    p += len;
  }
  return true;
}

static size_t utf8_chars(const char *s, size_t n) {
  size_t c = 0;
  for (size_t i = 0; i < n; i++)
    if (((uint8_t)s[i] & 0xc0) != 0x80) c++;
  return c;
}

/* Trims ASCII whitespace in place (Laravel's TrimStrings). */
static void trim_buf(bd_buf_t *b) {
  if (!b->data) return;
  size_t s = 0, e = b->len;
  while (s < e &&
         (b->data[s] == ' ' || b->data[s] == '\t' || b->data[s] == '\r' || b->data[s] == '\n'))
    s++;
  while (e > s && (b->data[e - 1] == ' ' || b->data[e - 1] == '\t' || b->data[e - 1] == '\r' ||
                   b->data[e - 1] == '\n'))
    e--;
  memmove(b->data, b->data + s, e - s);
  b->len = e - s;
  b->data[b->len] = '\0';
}

/* The signatories JSON field becomes items 0..n-1 (bracket fields with the
 * same N override its members). Returns false when it is not an array. */
static bool parse_sig_json(up_t *u) {
  if (u->sig_json_long) return false;
  trim_buf(&u->sig_json);
  if (!u->sig_json.len) return true; /* empty = omitted (Laravel converts "" to null) */
  json_error_t err;
  json_t *a = json_loadb(u->sig_json.data, u->sig_json.len, 0, &err);
  if (!a || !json_is_array(a)) {
    json_decref(a);
    return false;
  }
  size_t i;
  json_t *el;
  json_array_foreach(a, i, el) {
    sig_item_t *s = sig_item(u, (uint32_t)i);
    if (!s) break;
    json_t *uu = json_is_object(el) ? json_object_get(el, "user_uuid") : NULL;
    json_t *ix = json_is_object(el) ? json_object_get(el, "index") : NULL;
    if (uu && !json_is_null(uu) && !s->has_uuid) {
      s->has_uuid = true;
      if (json_is_string(uu))
        bd_buf_append(&s->uuid, json_string_value(uu), json_string_length(uu));
      else
        bd_buf_puts(&s->uuid, "?"); /* not a string: fails the UUID rule */
    }
    if (ix && !json_is_null(ix) && !s->has_index) {
      s->has_index = true;
      if (json_is_integer(ix))
        bd_buf_printf(&s->index, "%lld", (long long)json_integer_value(ix));
      else if (json_is_string(ix))
        bd_buf_append(&s->index, json_string_value(ix), json_string_length(ix));
      else
        s->index_bad = true;
    }
  }
  json_decref(a);
  return true;
}

static void up_respond_422(up_t *u, bd_biz_errors_t *errs) {
  up_release_conn(u);
  u->state = UP_DONE;
  bd_biz_errors_send(u->req, errs);
}

static void up_server_error(up_t *u, const char *what) {
  up_release_conn(u);
  u->state = UP_DONE;
  bd_biz_server_error(u->req, what);
}

static const json_t *find_user(const json_t *users, const char *uuid) {
  size_t i;
  json_t *x;
  json_array_foreach(users, i, x) {
    const char *v = json_string_value(json_object_get(x, "uuid"));
    if (v && strcasecmp(v, uuid) == 0) return x;
  }
  return NULL;
}

static int cmp_index(const void *a, const void *b) {
  const sig_item_t *x = *(sig_item_t *const *)a, *y = *(sig_item_t *const *)b;
  if (x->index_v != y->index_v) return x->index_v < y->index_v ? -1 : 1;
  return x < y ? -1 : x > y; /* stable: first-appearance order */
}

static void on_created(void *ud, const bd_pg_result_t *r);
static void on_committed(void *ud, const bd_pg_result_t *r);
typedef struct commit commit_t;
static void up_commit(commit_t *c);
static void up_mark_idem(commit_t *c);

/* The rules of up_validate: each adds its errors to `e`, in Laravel's
 * order, and up_validate runs them in turn. */

/* name: required, a string, at most 255 characters (trimmed first). */
static void validate_name(up_t *u, bd_biz_errors_t *e) {
  trim_buf(&u->name);
  if (!u->name.len)
    bd_biz_errors_add(e, "name", "The name field is required.");
  else if (!valid_utf8(u->name.data, u->name.len))
    bd_biz_errors_add(e, "name", "The name field must be a string.");
  else if (u->name_long || utf8_chars(u->name.data, u->name.len) > 255)
    bd_biz_errors_add(e, "name", "The name field must not be greater than 255 characters.");
}

/* template_id: required, a UUID, a template of the caller's institution
 * (`tpl`, NULL when biz_batch_check found none). */
static void validate_template_id(up_t *u, const json_t *tpl, bd_biz_errors_t *e) {
  trim_buf(&u->template_id);
  bool tpl_uuid = u->template_id.len && !u->template_long &&
                  bd_uuid_valid((bd_str_t){u->template_id.data, u->template_id.len});
  if (!u->template_id.len)
    bd_biz_errors_add(e, "template_id", "The template id field is required.");
  else if (!tpl_uuid)
    bd_biz_errors_add(e, "template_id", "The template id field must be a valid UUID.");
  else if (!tpl)
    bd_biz_errors_add(e, "template_id", "The selected template id is invalid.");
}

/* csv_file: present, a file, a valid roster, and a complete multipart body. */
static void validate_csv_file(up_t *u, bd_biz_errors_t *e) {
  if (!u->csv_seen) {
    if (u->mp_err)
      bd_biz_errors_add(e, "csv_file", "%s", mp_message(u->mp_err));
    else
      bd_biz_errors_add(e, "csv_file", "The csv file field is required.");
  } else if (!u->csv_is_file) {
    bd_biz_errors_add(e, "csv_file", "The csv file field must be a file.");
  } else if (u->csv_err) {
    bd_biz_errors_add(e, "csv_file", "%s", u->csv_msg);
  } else if (u->mp_err || !u->csv_done) {
    bd_biz_errors_add(e, "csv_file", "%s", mp_message(u->mp_err));
  }
}

/* signatories as a whole: an array of at most MAX_SIG_ITEMS items.
 * Returns false when it is not an array. */
static bool validate_signatories_field(const up_t *u, bd_biz_errors_t *e) {
  bool sig_array_ok = true;
  if (u->sig_json_bad) {
    bd_biz_errors_add(e, "signatories", "The signatories field must be an array.");
    sig_array_ok = false;
  }
  if (u->sigs_overflow)
    bd_biz_errors_add(e, "signatories", "The signatories field must not have more than %d items.",
                      MAX_SIG_ITEMS);
  return sig_array_ok;
}

/* signatories.N.user_uuid of every item: required, a UUID, a user of the
 * institution (`users` from biz_batch_check) who is not archived and has a
 * signature; a valid one is resolved into the item (user, user_id). */
static void validate_signatory_uuids(up_t *u, const json_t *users, bd_biz_errors_t *e) {
  char field[64];
  for (size_t i = 0; i < u->nsigs; i++) {
    sig_item_t *s = &u->sigs[i];
    trim_buf(&s->uuid);
    snprintf(field, sizeof field, "signatories.%u.user_uuid", s->key);
    if (!s->has_uuid || !s->uuid.len) {
      bd_biz_errors_add(e, field, "The %s field is required.", field);
    } else if (!bd_uuid_valid((bd_str_t){s->uuid.data, s->uuid.len})) {
      bd_biz_errors_add(e, field, "The %s field must be a valid UUID.", field);
    } else {
      const json_t *usr = find_user(users, s->uuid.data);
      if (!usr) {
        bd_biz_errors_add(e, field, "The selected %s is invalid.", field);
      } else if (json_is_true(json_object_get(usr, "archived"))) {
        bd_biz_errors_add(e, field, "The selected signatory is archived.");
      } else if (!json_is_true(json_object_get(usr, "signed"))) {
        bd_biz_errors_add(e, field, "The selected signatory has no signature uploaded.");
      } else {
        s->user = (json_t *)usr;
        s->user_id = (int64_t)json_integer_value(json_object_get(usr, "id"));
      }
    }
  }
}

/* signatories.N.index of every item: required, an integer (index_v,
 * index_ok). */
static void validate_signatory_indices(up_t *u, bd_biz_errors_t *e) {
  char field[64];
  for (size_t i = 0; i < u->nsigs; i++) {
    sig_item_t *s = &u->sigs[i];
    trim_buf(&s->index);
    snprintf(field, sizeof field, "signatories.%u.index", s->key);
    if (!s->has_index || (!s->index.len && !s->index_bad)) {
      bd_biz_errors_add(e, field, "The %s field is required.", field);
    } else if (s->index_bad ||
               !bd_parse_i64((bd_str_t){s->index.data, s->index.len}, &s->index_v)) {
      bd_biz_errors_add(e, field, "The %s field must be an integer.", field);
    } else {
      s->index_ok = true;
    }
  }
}

/* No signatories sent: the template's default signatories, which must
 * still be usable and fill every signatory field, go into `resolved`. */
static void resolve_default_signatories(const json_t *tpl, json_t *resolved, bd_biz_errors_t *e) {
  int64_t fields = json_integer_value(json_object_get(tpl, "fields"));
  const json_t *defs = json_object_get(tpl, "defaults");
  if (fields > 0 && json_array_size(defs) == 0) {
    bd_biz_errors_add(e, "signatories", "The signatories field is required.");
  } else if (fields > 0) {
    size_t i;
    json_t *d;
    json_array_foreach(defs, i, d) {
      if (!json_is_true(json_object_get(d, "usable"))) {
        bd_biz_errors_add(e, "signatories",
                          "The default signatory at position %lld is archived or has no signature.",
                          (long long)json_integer_value(json_object_get(d, "index")));
        continue;
      }
      json_array_append_new(resolved, json_pack("{s:O, s:O, s:O, s:O, s:O}", "index",
                                                json_object_get(d, "index"), "user_id",
                                                json_object_get(d, "user_id"), "display_name",
                                                json_object_get(d, "display_name"), "designation",
                                                json_object_get(d, "designation"), "auto_approve",
                                                json_object_get(d, "auto_approve")));
    }
    if ((int64_t)json_array_size(defs) != fields)
      bd_biz_errors_add(
          e, "signatories",
          "The number of signatories must equal the template's %lld signatory fields.",
          (long long)fields);
  }
}

/* The signatories against the template: its defaults when none were sent,
 * else as many as it has signatory fields. */
static void check_template_signatories(const up_t *u, const json_t *tpl, json_t *resolved,
                                       bd_biz_errors_t *e) {
  int64_t fields = json_integer_value(json_object_get(tpl, "fields"));
  if (u->nsigs == 0) {
    resolve_default_signatories(tpl, resolved, e);
  } else if ((int64_t)u->nsigs != fields) {
    bd_biz_errors_add(e, "signatories",
                      "The number of signatories must equal the template's %lld signatory fields.",
                      (long long)fields);
  }
}

/* The same user twice among the signatories sent (one error at most). */
static void check_duplicate_signatories(const up_t *u, bd_biz_errors_t *e) {
  for (size_t i = 0; i < u->nsigs; i++) {
    bool dup = false;
    for (size_t j = 0; j < i && !dup; j++)
      dup = u->sigs[i].uuid.len && u->sigs[j].uuid.len &&
            strcasecmp(u->sigs[i].uuid.data, u->sigs[j].uuid.data) == 0;
    if (dup) {
      bd_biz_errors_add(e, "signatories",
                        "The same signatory cannot be assigned to multiple positions.");
      break;
    }
  }
}

/* Indices of the items `ord` (sorted by index): 1, 2, … without gaps. */
static void check_index_sequence(sig_item_t *const *ord, size_t n, bd_biz_errors_t *e) {
  char field[64];
  for (size_t i = 0; i < n; i++) {
    snprintf(field, sizeof field, "signatories.%u.index", ord[i]->key);
    if (i == 0 && ord[i]->index_v != 1)
      bd_biz_errors_add(e, field, "Signatory indices must start from 1.");
    else if (i > 0 && ord[i]->index_v != ord[i - 1]->index_v + 1)
      bd_biz_errors_add(e, field,
                        "Signatory indices must be sequential starting from 1 without gaps.");
  }
}

/* The items `ord` whose user was resolved go into `resolved`, in index order. */
static void resolve_sent_signatories(sig_item_t *const *ord, size_t n, json_t *resolved) {
  for (size_t i = 0; i < n; i++) {
    const sig_item_t *s = ord[i];
    if (!s->user) continue;
    json_array_append_new(resolved,
                          json_pack("{s:I, s:I, s:O, s:O, s:O}", "index", (json_int_t)s->index_v,
                                    "user_id", (json_int_t)s->user_id, "display_name",
                                    json_object_get(s->user, "display_name"), "designation",
                                    json_object_get(s->user, "designation"), "auto_approve",
                                    json_object_get(s->user, "auto_approve")));
  }
}

/* The signatories sent: no user twice, indices 1, 2, … without gaps; the
 * resolved ones go into `resolved` in index order. */
static void check_sent_signatories(up_t *u, json_t *resolved, bd_biz_errors_t *e) {
  check_duplicate_signatories(u, e);
  sig_item_t *ord[MAX_SIG_ITEMS];
  size_t n = 0;
  for (size_t i = 0; i < u->nsigs; i++)
    if (u->sigs[i].index_ok) ord[n++] = &u->sigs[i];
  qsort(ord, n, sizeof ord[0], cmp_index);
  check_index_sequence(ord, n, e);
  resolve_sent_signatories(ord, n, resolved);
}

/* Valid: the batch row, its signatories (`resolved`, consumed) and job, in
 * the COPY's transaction; on_created continues. */
static void up_create_batch(up_t *u, json_t *resolved) {
  char *sigs = json_dumps(resolved, JSON_COMPACT);
  json_decref(resolved);
  char inst[24], creator[24], total[24], failed[24];
  bd_biz_inst_str(&u->caller, inst);
  snprintf(creator, sizeof creator, "%lld", (long long)u->caller.user_id);
  snprintf(total, sizeof total, "%llu", (unsigned long long)u->rows);
  snprintf(failed, sizeof failed, "%llu", (unsigned long long)u->failed);
  const char *p[] = {u->batch_id, inst,   creator, u->template_id.data, u->name.data,
                     total,       failed, sigs,    bd_biz_base_url(), u->notify_on ? "t" : "f"};
  static bd_pg_stmt_t S_CREATE =
      BD_PG_STMT("SELECT biz_create_batch($1::uuid, $2::bigint, $3::bigint, $4::uuid, $5, $6::int, "
                 "$7::int, $8::jsonb, $9, $10::boolean)");
  up_begin_op(u);
  int rc = bd_pg_conn_query(u->conn, &S_CREATE, 10, p, on_created, u);
  free(sigs);
  if (rc != 0) {
    u->ops--;
    up_server_error(u, "cannot send biz_create_batch");
    up_release_req(u);
  }
}

/* All the rules, in Laravel's order (field rules, then the signatory
 * checks, as Laravel's after hooks), then either the 422 or the batch row
 * and COMMIT. */
static void up_validate(up_t *u) {
  bd_biz_errors_t e;
  bd_biz_errors_init(&e);
  const json_t *tpl = json_object_get(u->check, "template");
  const json_t *users = json_object_get(u->check, "users");
  if (json_is_null(tpl)) tpl = NULL;

  validate_name(u, &e);
  validate_template_id(u, tpl, &e);
  u->notify_on = bd_biz_email_notify_field(u->notify.data, u->notify.len, u->notify_long, &e);
  validate_csv_file(u, &e);
  bool sig_array_ok = validate_signatories_field(u, &e);
  validate_signatory_uuids(u, users, &e);
  validate_signatory_indices(u, &e);

  json_t *resolved = json_array();
  if (tpl && sig_array_ok && !u->sigs_overflow) check_template_signatories(u, tpl, resolved, &e);
  if (u->nsigs > 0) check_sent_signatories(u, resolved, &e);

  if (e.n) {
    json_decref(resolved);
    up_respond_422(u, &e);
    return;
  }
  bd_biz_errors_free(&e);
  up_create_batch(u, resolved);
}

struct commit {
  up_t *u;    /* the upload */
  char *body; /* the 201 body, sent once COMMIT succeeded */
};

static void on_created(void *ud, const bd_pg_result_t *r) {
  up_t *u = ud;
  if (up_end_op(u)) {
    up_release_req(u);
    return;
  }
  if (r->err) {
    if (r->err == BD_PG_ESQL)
      up_server_error(u, r->message);
    else {
      up_release_conn(u);
      u->state = UP_DONE;
      bd_app_db_error(u->req, r);
    }
    up_release_req(u);
    return;
  }
  bd_buf_t b = BD_BUF_INIT;
  bd_buf_puts(&b, "{\"data\":");
  bd_buf_puts(&b, PQgetvalue(r->res, 0, 0));
  bd_buf_putc(&b, '}');
  commit_t *c = bd_calloc(1, sizeof *c);
  c->u = u;
  c->body = bd_buf_detach(&b, NULL);
  if (u->idem)
    up_mark_idem(c);
  else
    up_commit(c);
  up_release_req(u);
}

static void up_commit(commit_t *c) {
  up_t *u = c->u;
  up_begin_op(u);
  if (bd_pg_conn_exec(u->conn, "COMMIT", 0, NULL, on_committed, c) != 0) {
    u->ops--;
    free(c->body);
    free(c);
    up_server_error(u, "cannot send COMMIT");
    up_release_req(u);
  }
}

/* The key's answer is written in the batch's own transaction: the batch and
 * its stored 201 commit together, so a retry can never create a second
 * batch, even if this process dies right after the COMMIT. */
static void on_idem_marked(void *ud, const bd_pg_result_t *r) {
  commit_t *c = ud;
  up_t *u = c->u;
  u->ops--;
  if (u->gone || bd_req_gone(u->req)) {
    u->gone = true;
    up_finish_gone(u);
    free(c->body);
    free(c);
  } else if (r->err) {
    free(c->body);
    free(c);
    if (r->err == BD_PG_ESQL)
      up_server_error(u, r->message);
    else {
      up_release_conn(u);
      u->state = UP_DONE;
      bd_app_db_error(u->req, r);
    }
  } else if (strcmp(PQcmdTuples(r->res), "1") != 0) {
    /* our lock lapsed and another request holds the key now: roll back */
    free(c->body);
    free(c);
    up_release_conn(u);
    u->state = UP_DONE;
    bd_resp_error(u->req, 409, "idempotency_request_in_progress",
                  "A request with this Idempotency-Key is still being processed", "Idempotency-Key");
  } else {
    up_commit(c);
  }
  up_release_req(u);
}

static void up_mark_idem(commit_t *c) {
  up_t *u = c->u;
  static const char ctype[] = "application/json; charset=utf-8";
  up_begin_op(u);
  if (bd_idem_stream_mark_done(u->idem, u->conn, 201, ctype, c->body, strlen(c->body), on_idem_marked,
                               c) != 0) {
    u->ops--;
    free(c->body);
    free(c);
    up_server_error(u, "cannot store the Idempotency-Key answer");
    up_release_req(u);
  }
}

static void on_committed(void *ud, const bd_pg_result_t *r) {
  commit_t *c = ud;
  up_t *u = c->u;
  u->ops--;
  if (r->err) {
    /* not committed: nothing persists; a gone client hears nothing */
    if (u->gone || bd_req_gone(u->req)) {
      u->gone = true;
      up_finish_gone(u);
    } else if (r->err == BD_PG_ESQL) {
      up_server_error(u, r->message);
    } else {
      up_release_conn(u);
      u->state = UP_DONE;
      bd_app_db_error(u->req, r);
    }
  } else {
    /* committed: the batch exists whether or not the client still listens */
    up_release_conn(u);
    u->state = UP_DONE;
    bd_jobs_kick();
    /* what the upload cost the loop: the longest step bounds its latency */
    bd_info("batch %s: %llu rows (%llu failed), %llu body bytes in %.1f ms; parsing took %.1f ms "
            "of loop CPU, the longest step %.2f ms",
            u->batch_id, (unsigned long long)u->rows, (unsigned long long)u->failed,
            (unsigned long long)u->body_parsed, (double)(bd_now_ns() - u->req->start_ns) / 1e6,
            (double)u->parse_ns / 1e6, (double)u->slice_max_ns / 1e6);
    bd_resp_send(u->req, 201, "application/json; charset=utf-8", c->body, strlen(c->body));
  }
  free(c->body);
  free(c);
  up_release_req(u);
}

static void on_check(void *ud, const bd_pg_result_t *r) {
  up_t *u = ud;
  if (up_end_op(u)) {
    up_release_req(u);
    return;
  }
  if (r->err) {
    up_release_conn(u);
    u->state = UP_DONE;
    if (r->err == BD_PG_ESQL)
      bd_biz_server_error(u->req, r->message);
    else
      bd_app_db_error(u->req, r);
    up_release_req(u);
    return;
  }
  json_error_t err;
  u->check = json_loads(PQgetvalue(r->res, 0, 0), 0, &err);
  if (!u->check)
    up_server_error(u, "bad biz_batch_check result");
  else
    up_validate(u);
  up_release_req(u);
}

static void on_rolled_back(void *ud, const bd_pg_result_t *r) {
  up_t *u = ud;
  (void)r;
  if (up_end_op(u)) {
    up_release_req(u);
    return;
  }
  up_run_check(u);
  up_release_req(u);
}

/* The validation query: on the pinned connection, inside the transaction
 * when the COPY succeeded, else after rolling the aborted one back. */
static void up_run_check(up_t *u) {
  if (!u->conn) {
    up_server_error(u, "upload lost its connection");
    return;
  }
  bool aborted = u->csv_err || u->mp_err || u->copy_broken || !u->csv_done || !u->csv_is_file;
  static bd_pg_stmt_t S_CHECK =
      BD_PG_STMT("SELECT biz_batch_check($1::bigint, $2::uuid, $3::uuid[])");
  if (aborted && !u->rolled_back) {
    u->rolled_back = true;
    up_begin_op(u);
    if (bd_pg_conn_exec(u->conn, "ROLLBACK", 0, NULL, on_rolled_back, u) != 0) {
      u->ops--;
      up_server_error(u, "cannot send ROLLBACK");
      up_release_req(u);
    }
    return;
  }
  /* parameters: the template id and user uuids that are well-formed */
  trim_buf(&u->template_id);
  const char *tpl =
      u->template_id.len && bd_uuid_valid((bd_str_t){u->template_id.data, u->template_id.len})
          ? u->template_id.data
          : NULL;
  if (u->sig_json_seen && !u->sig_json_parsed) {
    u->sig_json_parsed = true;
    u->sig_json_bad = !parse_sig_json(u);
  }
  bd_buf_t arr = BD_BUF_INIT;
  bd_buf_putc(&arr, '{');
  bool first = true;
  for (size_t i = 0; i < u->nsigs; i++) {
    trim_buf(&u->sigs[i].uuid);
    if (!bd_uuid_valid((bd_str_t){u->sigs[i].uuid.data, u->sigs[i].uuid.len})) continue;
    if (!first) bd_buf_putc(&arr, ',');
    bd_buf_append(&arr, u->sigs[i].uuid.data, u->sigs[i].uuid.len);
    first = false;
  }
  bd_buf_putc(&arr, '}');
  char inst[24];
  bd_biz_inst_str(&u->caller, inst);
  const char *p[] = {inst, tpl, arr.data};
  up_begin_op(u);
  int rc = bd_pg_conn_query(u->conn, &S_CHECK, 3, p, on_check, u);
  bd_buf_free(&arr);
  if (rc != 0) {
    u->ops--;
    up_server_error(u, "cannot send biz_batch_check");
    up_release_req(u);
  }
}

static void on_copy_ended(void *ud, const bd_pg_result_t *r) {
  up_t *u = ud;
  if (up_end_op(u)) {
    up_release_req(u);
    return;
  }
  if (r->err) {
    /* the server refused a row: a bug of ours or a constraint (e.g. a
     * reference id collision); nothing persists */
    up_server_error(u, r->message);
  } else if (strtoull(PQcmdTuples(r->res), NULL, 10) != u->rows) {
    up_server_error(u, "COPY row count differs from the roster's");
  } else {
    up_run_check(u);
  }
  up_release_req(u);
}

/* The body is complete (or will never be): end the COPY and validate. */
static void up_finalize(up_t *u) {
  if (u->state != UP_STREAM) return;
  u->state = UP_FINISH;
  int st = bd_mp_finish(u->mp);
  if (st != BD_MP_OK && !u->mp_err) u->mp_err = st;
  bool ok =
      u->csv_seen && u->csv_done && u->csv_is_file && !u->csv_err && !u->mp_err && !u->copy_broken;
  if (u->copy_open && ok) {
    up_flush_rows(u);
    u->copy_open = false;
    up_begin_op(u);
    if (bd_pg_copy_end(u->conn, NULL, on_copy_ended, u) != 0) {
      u->ops--;
      up_server_error(u, "cannot end COPY");
      up_release_req(u);
    }
    return;
  }
  if (u->copy_open) {
    up_abort_copy(u); /* on_copy_aborted runs the check */
    return;
  }
  if (u->ops == 0) up_run_check(u); /* else the pending abort's callback does */
}

/* --- the start of the upload ----------------------------------------------------------- */

static void on_copy_ready(void *ud, const bd_pg_result_t *r) {
  up_t *u = ud;
  if (up_end_op(u)) {
    up_release_req(u);
    return;
  }
  if (r->err) {
    up_release_conn(u);
    u->state = UP_DONE;
    bd_app_db_error(u->req, r);
    up_release_req(u);
    return;
  }
  u->copy_open = true;
  u->state = UP_STREAM;
  up_next(u); /* bytes that came early wait in pending */
  up_release_req(u);
}

static void on_begun(void *ud, const bd_pg_result_t *r) {
  up_t *u = ud;
  if (up_end_op(u)) {
    up_release_req(u);
    return;
  }
  if (r->err) {
    up_release_conn(u);
    u->state = UP_DONE;
    bd_app_db_error(u->req, r);
  } else {
    up_begin_op(u);
    if (bd_pg_copy_start(u->conn, COPY_SQL, on_copy_ready, u) != 0) {
      u->ops--;
      up_server_error(u, "cannot start COPY");
      up_release_req(u);
    }
  }
  up_release_req(u);
}

static void on_pinned(void *ud, bd_pg_conn_t *c, int err) {
  up_t *u = ud;
  u->conn = c;
  if (up_end_op(u)) {
    up_release_req(u);
    return;
  }
  if (err) {
    u->state = UP_DONE;
    bd_app_unavailable(u->req);
  } else {
    up_begin_op(u);
    if (bd_pg_conn_exec(c, "BEGIN", 0, NULL, on_begun, u) != 0) {
      u->ops--;
      up_server_error(u, "cannot send BEGIN");
      up_release_req(u);
    }
  }
  up_release_req(u);
}

static void up_idem(bd_req_t *req, bd_idem_stream_t *s, int outcome);
static void up_start(up_t *u);

static void up_authed(bd_req_t *req, const bd_biz_caller_t *caller) {
  up_t *u = req->ctx;
  u->caller = *caller;
  bd_uuid_v7(u->batch_id);
  u->prefix_len = (size_t)snprintf(u->prefix, sizeof u->prefix, "%s\t%lld\t", u->batch_id,
                                   (long long)caller->institution_id);
  bd_mp_callbacks_t cb = {mp_begin, mp_data, mp_end, NULL};
  int rc = bd_mp_new(bd_req_header(req, "Content-Type"), NULL, &cb, u, &u->mp);
  if (rc != BD_MP_OK) {
    u->state = UP_DONE;
    bd_resp_error(req, 415, "unsupported_media_type",
                  rc == BD_MP_ENOT_MULTIPART
                      ? "The request body must be multipart/form-data."
                      : "The multipart/form-data boundary is missing or invalid.",
                  NULL);
    return;
  }
  bd_idem_stream_t *s = NULL;
  int irc = bd_idem_stream_begin(req, req->cred_id, up_idem, &s);
  u->idem = s;
  if (s) {
    /* what arrived while authenticating waits, unparsed, in pending */
    bd_idem_stream_body(s, u->pending.data + u->pending_off, u->pending.len - u->pending_off);
    if (u->body_done) bd_idem_stream_body_end(s);
  }
  if (irc < 0) u->state = UP_DONE; /* answered: a malformed key */
  else if (irc == 0) up_start(u);
}

/* The Idempotency-Key's verdict: proceed, replay after hashing the body,
 * or it was answered (409 in flight, 503). */
static void up_idem(bd_req_t *req, bd_idem_stream_t *s, int outcome) {
  up_t *u = req->ctx;
  if (outcome == BD_IDEM_PROCEED) {
    up_start(u);
  } else if (outcome == BD_IDEM_REPLAY) {
    u->state = UP_REPLAY;
    if (u->body_done) {
      u->state = UP_DONE;
      bd_idem_stream_replay(req, s);
    } else {
      bd_req_resume(req);
    }
  } else {
    u->state = UP_DONE;
  }
}

/* Admission (upload slots), then a pinned connection. */
static void up_start(up_t *u) {
  bd_req_t *req = u->req;
  if (g_uploads >= bd_app.cfg.max_uploads) {
    u->state = UP_DONE;
    bd_resp_header(req, "Retry-After", "5");
    bd_resp_error(req, 503, "too_many_uploads", "Too many uploads are in progress; retry shortly.",
                  NULL);
    return;
  }
  g_uploads++;
  u->has_slot = true;
  u->state = UP_PIN;
  up_begin_op(u);
  if (bd_pg_acquire(bd_app.pg, on_pinned, u) != 0) {
    u->ops--;
    u->state = UP_DONE;
    bd_app_unavailable(req);
    up_release_req(u);
  }
}

static void up_body(bd_req_t *req, const char *p, size_t n) {
  up_t *u = req->ctx;
  bd_idem_stream_body(u->idem, p, n); /* every byte, in arrival order */
  if (u->state == UP_REPLAY) return;
  if (u->state == UP_STREAM) {
    up_feed(u, p, n);
  } else if (u->state < UP_STREAM) {
    /* before the COPY is ready reading is paused: at most one input
     * buffer arrives here */
    bd_buf_append(&u->pending, p, n);
  }
}

static void up_body_end(bd_req_t *req) {
  up_t *u = req->ctx;
  u->body_done = true;
  bd_idem_stream_body_end(u->idem);
  if (u->state == UP_REPLAY) {
    u->state = UP_DONE;
    bd_idem_stream_replay(req, u->idem);
    return;
  }
  if (u->state == UP_STREAM && u->pending_off == u->pending.len) up_finalize(u);
}

static void up_abort(bd_req_t *req) {
  up_t *u = req->ctx;
  if (!u || u->gone) return;
  u->gone = true;
  if (u->state == UP_DONE) return;
  /* an open COPY is ended first so the pool can roll the connection back
   * and reuse it; anything else in flight ends the upload in its callback */
  if (u->copy_open) up_abort_copy(u);
  up_finish_gone(u);
}

void bd_biz_batch_create(bd_req_t *req) {
  up_t *u = bd_calloc(1, sizeof *u);
  u->req = req;
  req->ctx = u;
  bd_req_defer(req, up_free, u);
  req->on_body = up_body;
  req->on_body_end = up_body_end;
  req->on_abort = up_abort;
  req->on_respond = up_on_respond;
  u->rnd_off = sizeof u->rnd; /* refilled on first use */
  bd_req_pause(req);          /* until the COPY is open */
  bd_biz_authenticate(req, "batches:create", up_authed);
}


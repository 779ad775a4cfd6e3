/* mail.c: the SMTP sender of the e-mail outbox (mail.h).
 *
 * An item lives from its claim until its outcome is recorded:
 *   claimed -> composing (the kind's composer) -> waiting for a token and a
 *   connection slot -> sending (curl) -> recording (bd_mail_done_many) ->
 *   freed.
 * M.inflight counts items against 2 x BATCHD_SMTP_CONNECTIONS (so that
 * composition runs ahead of sending), M.sending against the connections.
 * Outcomes are recorded in batches, one statement in flight at a time, the
 * way webhooks.c records its attempts; an acceptance is queued for its
 * record the moment curl reports the transfer done, before anything else. */
#include "mail.h"

#include "app.h"
#include "curl_uv.h"
#include "log.h"
#include "mime.h"
#include "util.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define POLL_MS 1000       /* claim at least this often */
#define SWEEP_MS 10000     /* queue gauges */
#define DUE_SLACK_MS 10    /* a retry's timer fires this much after it is due */
#define RECORD_BATCH 256   /* outcomes per bd_mail_done_many */
#define REPLY_MAX 512      /* bytes of a server reply kept */
#define MAX_KINDS 8        /* composers */
#define RECORD_TRIES 20    /* a record that fails is tried again this often, */
#define RECORD_RETRY_MS 500 /* this far apart (a deadlock, a reconnect): an acceptance must stick */

typedef enum { OUT_SENT, OUT_FAILED, OUT_RETRY } outcome_t;

struct bd_mail_item {
  char *id, *kind, *ref, *recipient; /* the claimed row */
  long long created_s;               /* its Date */
  uint64_t claimed_at;               /* uv_now of its claim (its lease started then) */
  int attempts;                      /* before this one */
  bd_mail_msg_t msg;                 /* the composer's view of the above */
  bd_buf_t body;                     /* the composed message */
  size_t sent;                       /* body bytes handed to curl */
  CURL *easy;                        /* the transfer while it runs */
  struct curl_slist *rcpt;           /* its one recipient */
  char errbuf[CURL_ERROR_SIZE];      /* curl's message */
  char reply[REPLY_MAX];             /* the server's last complete 4xx/5xx reply */
  char cur[REPLY_MAX];               /* the reply being read */
  bool cur_done;                     /* cur ended with its final line */
  outcome_t out;                     /* what to record */
  int record_tries;                  /* records of it that failed */
  long code;                         /* the server's reply code (0: none) */
  char *error;                       /* what went wrong (NULL when sent) */
  struct bd_mail_item *next;         /* M.list */
  struct bd_mail_item *qnext;        /* M.wait_head (waiting to send) or M.rq_head (to record) */
};

typedef struct {
  const char *kind;                  /* a composer's kind */
  bd_mail_compose_fn fn;             /* the composer */
} kind_t;
static kind_t g_kinds[MAX_KINDS];
static int g_nkinds;

static struct {
  bool started, stopping;            /* bd_mail_start ran; bd_mail_stop: no more claims */
  bd_curl_uv_t *curl;                /* the multi handle (its connection cache is the pool) */
  uv_timer_t tick;                   /* the poll, or the earliest retry scheduled here */
  uint64_t tick_at;                  /* when tick fires (uv_now ms) */
  uv_timer_t sweep;                  /* queue gauges */
  uv_timer_t grace;                  /* stop deadline */
  uv_timer_t bucket;                 /* the next token */
  uv_timer_t rec_retry;              /* a failed record is tried again */
  bool rec_retry_armed;              /* rec_retry is running */
  bool bucket_armed;                 /* bucket is running */
  double tokens;                     /* token bucket: messages that may start now */
  uint64_t tokens_at;                /* uv_now of the last refill */
  bool claiming, sweeping, want;     /* a claim / sweep in flight; a claim is due */
  int inflight;                      /* claimed and not yet recorded */
  int sending;                       /* transfers running */
  int queries;                       /* claim/done/yield queries outstanding */
  bd_mail_item_t *list;              /* items of this process */
  bd_mail_item_t *wait_head, **wait_tail; /* composed, waiting for a token and a slot (FIFO) */
  bd_mail_item_t *rq_head, **rq_tail;     /* outcomes waiting to be recorded (FIFO) */
  int rq_n;                          /* its length */
  bool recording;                    /* a bd_mail_done_many is in flight */
  char lease_s[24];                  /* lease length (s) */
  uint64_t lease_ms;                 /* the same in ms */
  char from_addr[256];               /* envelope sender */
  char from_name[256];               /* display name of BATCHD_SMTP_FROM ("" none) */
  char mail_from[260];               /* "<addr>" for curl */
  void (*stop_done)(void *);         /* stop completion */
  void *stop_ud;
  /* metrics */
  uint64_t n_sent, n_failed, n_retried, n_unrecorded;
  bool have_queue;                   /* a sweep answered */
  long long q_depth, q_due;          /* pending messages, of which due */
  double q_oldest_s;                 /* age of the oldest pending one at the sweep */
  uint64_t q_at;                     /* uv_now of that sweep */
} M;

static bd_pg_stmt_t S_CLAIM = BD_PG_STMT_BG(
    "SELECT id, kind, ref, recipient, attempts, created_s FROM bd_mail_claim($1, $2::int, $3::int)");
static bd_pg_stmt_t S_DONE = BD_PG_STMT_BG(
    "SELECT i, state, next_in_ms FROM bd_mail_done_many($1::text[], $2::text[], $3::int4[], $4::text[], $5::int,"
    " $6::int)");
static bd_pg_stmt_t S_YIELD = BD_PG_STMT_BG("SELECT bd_mail_yield($1, $2)");
static bd_pg_stmt_t S_SWEEP = BD_PG_STMT_BG("SELECT depth, due, oldest_s FROM bd_mail_sweep()");

void bd_mail_register(const char *kind, bd_mail_compose_fn fn) {
  if (g_nkinds < MAX_KINDS) g_kinds[g_nkinds++] = (kind_t){kind, fn};
}

bool bd_mail_enabled(void) { return bd_app.cfg.smtp_url && bd_app.cfg.smtp_url[0]; }
const char *bd_mail_from_address(void) { return M.from_addr; }
const char *bd_mail_from_name(void) { return M.from_name; }

/* Splits BATCHD_SMTP_FROM into M.from_name / M.from_addr; false if bad. */
static bool parse_from(const char *v) {
  M.from_name[0] = M.from_addr[0] = '\0';
  for (const unsigned char *p = (const unsigned char *)v; *p; p++)
    if (*p < 0x20 || *p == 0x7f) return false;
  const char *lt = strrchr(v, '<');
  if (lt) {
    const char *gt = strchr(lt, '>');
    if (!gt || gt[1] || (size_t)(gt - lt - 1) >= sizeof M.from_addr) return false;
    snprintf(M.from_addr, sizeof M.from_addr, "%.*s", (int)(gt - lt - 1), lt + 1);
    size_t nl = (size_t)(lt - v);
    while (nl && v[nl - 1] == ' ') nl--;
    size_t s = 0;
    while (s < nl && v[s] == ' ') s++;
    if (nl - s >= 2 && v[s] == '"' && v[nl - 1] == '"') s++, nl--;
    if (nl - s >= sizeof M.from_name) return false;
    snprintf(M.from_name, sizeof M.from_name, "%.*s", (int)(nl - s), v + s);
  } else {
    if (strlen(v) >= sizeof M.from_addr) return false;
    snprintf(M.from_addr, sizeof M.from_addr, "%s", v);
  }
  return bd_mime_addr_ok(M.from_addr);
}

const char *bd_mail_config_problem(void) {
  if (!bd_mail_enabled()) return NULL;
  const char *u = bd_app.cfg.smtp_url;
  if (strncasecmp(u, "smtp://", 7) != 0 && strncasecmp(u, "smtps://", 8) != 0)
    return "BATCHD_SMTP_URL must be an smtp:// or smtps:// URL";
  for (const unsigned char *p = (const unsigned char *)u; *p; p++)
    if (*p <= ' ' || *p == 0x7f) return "BATCHD_SMTP_URL must not contain spaces or control characters";
  if (!bd_app.cfg.smtp_from || !bd_app.cfg.smtp_from[0]) return "BATCHD_SMTP_FROM is required with BATCHD_SMTP_URL";
  if (!parse_from(bd_app.cfg.smtp_from))
    return "BATCHD_SMTP_FROM must be an address (addr@example.org or Name <addr@example.org>)";
  return NULL;
}

static void claim(void);
static void pump(void);

static void maybe_stopped(void) {
  if (!M.stopping || !M.stop_done || M.inflight > 0 || M.queries > 0) return;
  void (*done)(void *) = M.stop_done;
  M.stop_done = NULL;
  bd_curl_uv_close(M.curl);
  M.curl = NULL;
  uv_close((uv_handle_t *)&M.tick, NULL);
  uv_close((uv_handle_t *)&M.sweep, NULL);
  uv_close((uv_handle_t *)&M.grace, NULL);
  uv_close((uv_handle_t *)&M.bucket, NULL);
  uv_close((uv_handle_t *)&M.rec_retry, NULL);
  M.started = false;
  done(M.stop_ud);
}

static void item_free(bd_mail_item_t *it) {
  for (bd_mail_item_t **pp = &M.list; *pp; pp = &(*pp)->next)
    if (*pp == it) {
      *pp = it->next;
      break;
    }
  M.inflight--;
  if (it->easy) curl_easy_cleanup(it->easy);
  curl_slist_free_all(it->rcpt);
  bd_buf_free(&it->body);
  free(it->id);
  free(it->kind);
  free(it->ref);
  free(it->recipient);
  free(it->error);
  free(it);
  M.want = true;
  claim();
  maybe_stopped();
}

static void on_tick(uv_timer_t *t);
static void wake_in(uint64_t ms) {
  if (!M.started || M.stopping) return;
  uint64_t at = uv_now(bd_app.loop) + ms;
  if (at >= M.tick_at) return;
  M.tick_at = at;
  uv_timer_start(&M.tick, on_tick, ms, 0);
}

static void on_tick(uv_timer_t *t) {
  M.tick_at = uv_now(bd_app.loop) + POLL_MS;
  uv_timer_start(&M.tick, on_tick, POLL_MS, 0);
  M.want = true;
  claim();
}

/* --- recording ------------------------------------------------------------------ */

typedef struct {
  int n;                             /* outcomes in this statement */
  bd_mail_item_t *items[];           /* in parameter order */
} record_batch_t;

static void flush_records(void);

static void on_rec_retry(uv_timer_t *t) {
  M.rec_retry_armed = false;
  flush_records();
}

/* The items of a record that failed go back to the queue (at its head, in
 * order), to be tried again in RECORD_RETRY_MS; those tried too often are
 * given up (their leases run out: sent again). Returns how many were kept. */
static int requeue(record_batch_t *b) {
  int kept = 0;
  bd_mail_item_t *head = NULL, **tail = &head;
  for (int i = 0; i < b->n; i++) {
    bd_mail_item_t *it = b->items[i];
    if (++it->record_tries >= RECORD_TRIES) continue;
    it->qnext = NULL;
    *tail = it;
    tail = &it->qnext;
    b->items[i] = NULL;
    kept++;
  }
  if (head) {
    *tail = M.rq_head;
    if (!M.rq_head) M.rq_tail = tail;
    M.rq_head = head;
    M.rq_n += kept;
    if (!M.rec_retry_armed) {
      uv_timer_start(&M.rec_retry, on_rec_retry, RECORD_RETRY_MS, 0);
      M.rec_retry_armed = true;
    }
  }
  return kept;
}

static void on_recorded(void *ud, const bd_pg_result_t *r) {
  record_batch_t *b = ud;
  M.queries--;
  M.recording = false;
  if (r->err != BD_PG_OK) {
    int kept = requeue(b);
    M.n_unrecorded += (uint64_t)(b->n - kept);
    bd_warn("mail: could not record %d outcome(s) (%s); %d will be tried again, the others go out again when their"
            " leases end", b->n, r->message, kept);
    for (int i = 0; i < b->n; i++)
      if (b->items[i]) item_free(b->items[i]);
    free(b);
    return;
  } else {
    for (int row = 0; row < PQntuples(r->res); row++) {
      int i = atoi(PQgetvalue(r->res, row, 0)) - 1;
      if (i < 0 || i >= b->n) continue;
      bd_mail_item_t *it = b->items[i];
      const char *state = PQgetvalue(r->res, row, 1);
      if (!strcmp(state, "sent")) {
        M.n_sent++;
      } else if (!strcmp(state, "pending")) {
        M.n_retried++;
        const char *next = bd_pg_val(r->res, row, 2);
        if (next) wake_in((uint64_t)strtoull(next, NULL, 10) + DUE_SLACK_MS);
      } else {
        M.n_failed++;
        bd_warn("mail: message %s to %s failed after %d attempt(s): %s", it->id, it->recipient, it->attempts + 1,
                it->error ? it->error : "");
      }
    }
  }
  flush_records();
  for (int i = 0; i < b->n; i++) item_free(b->items[i]);
  free(b);
}

static void flush_records(void) {
  if (M.recording || M.rec_retry_armed || !M.rq_head) return;
  int n = M.rq_n < RECORD_BATCH ? M.rq_n : RECORD_BATCH;
  record_batch_t *b = bd_malloc(sizeof *b + (size_t)n * sizeof b->items[0]);
  b->n = n;
  bd_pg_array_t ids, outs, codes, errs;
  bd_pg_array_init(&ids, BD_PG_OID_TEXT);
  bd_pg_array_init(&outs, BD_PG_OID_TEXT);
  bd_pg_array_init(&codes, BD_PG_OID_INT4);
  bd_pg_array_init(&errs, BD_PG_OID_TEXT);
  static const char *const out_names[] = {"sent", "failed", "retry"};
  for (int i = 0; i < n; i++) {
    bd_mail_item_t *it = M.rq_head;
    M.rq_head = it->qnext;
    M.rq_n--;
    b->items[i] = it;
    bd_pg_array_add_str(&ids, it->id);
    bd_pg_array_add_str(&outs, out_names[it->out]);
    if (it->code > 0) bd_pg_array_add_i32(&codes, (int32_t)it->code);
    else bd_pg_array_add(&codes, NULL, 0);
    bd_pg_array_add_str(&errs, it->error);
  }
  if (!M.rq_head) M.rq_tail = &M.rq_head;
  bd_pg_array_finish(&ids);
  bd_pg_array_finish(&outs);
  bd_pg_array_finish(&codes);
  bd_pg_array_finish(&errs);
  char base[24], rfor[24];
  snprintf(base, sizeof base, "%lld", (long long)bd_app.cfg.smtp_retry_base_ms);
  snprintf(rfor, sizeof rfor, "%lld", (long long)bd_app.cfg.smtp_retry_for_s);
  const char *p[] = {ids.buf.data, outs.buf.data, codes.buf.data, errs.buf.data, base, rfor};
  const int lens[] = {(int)ids.buf.len, (int)outs.buf.len, (int)codes.buf.len, (int)errs.buf.len, 0, 0};
  const int fmts[] = {1, 1, 1, 1, 0, 0};
  int rc = bd_pg_query_bin(bd_app.pg, &S_DONE, 6, p, lens, fmts, on_recorded, b);
  bd_pg_array_free(&ids);
  bd_pg_array_free(&outs);
  bd_pg_array_free(&codes);
  bd_pg_array_free(&errs);
  if (rc != 0) {
    int kept = requeue(b);
    M.n_unrecorded += (uint64_t)(n - kept);
    bd_warn("mail: database queue full, %d outcome(s) not recorded yet; %d will be tried again", n, kept);
    for (int i = 0; i < n; i++)
      if (b->items[i]) item_free(b->items[i]);
    free(b);
    return;
  }
  M.recording = true;
  M.queries++;
}

/* Queues the outcome to be recorded; the item is freed once it is. */
static void record(bd_mail_item_t *it, outcome_t out, long code, const char *error) {
  if (out != OUT_SENT)
    bd_info("mail: message %s to %s: attempt %d %s: %s", it->id, it->recipient, it->attempts + 1,
            out == OUT_FAILED ? "refused" : "failed", error);
  it->out = out;
  it->code = code;
  it->error = out == OUT_SENT ? NULL : bd_strdup(error);
  it->qnext = NULL;
  *M.rq_tail = it;
  M.rq_tail = &it->qnext;
  M.rq_n++;
  flush_records();
}

static void on_yielded(void *ud, const bd_pg_result_t *r) {
  M.queries--;
  item_free(ud);
}

static void yield(bd_mail_item_t *it) {
  const char *p[] = {it->id, bd_app.instance};
  if (bd_pg_query(bd_app.pg, &S_YIELD, 2, p, on_yielded, it) != 0) {
    item_free(it); /* its lease will run out */
    return;
  }
  M.queries++;
}

/* --- sending ---------------------------------------------------------------------- */

/* The outcome of an ended transfer. A 2xx to the end of DATA is the only
 * CURLE_OK. A 5xx reply refuses the message for good when it answered RCPT
 * TO or DATA (curl: "RCPT failed", or the reply to the end of DATA); a 5xx
 * to AUTH (CURLE_LOGIN_DENIED) or MAIL FROM is about our account or sender
 * and retried, like every 4xx and every transport error. */
static outcome_t classify(CURLcode res, long code, const char *errbuf) {
  if (res == CURLE_OK) return OUT_SENT;
  if (code >= 500 && code < 600 && res != CURLE_LOGIN_DENIED && !strstr(errbuf, "MAIL failed") &&
      res != CURLE_USE_SSL_FAILED)
    return OUT_FAILED;
  return OUT_RETRY;
}

static void on_transfer_done(void *ud, CURL *e, CURLcode res) {
  bd_mail_item_t *it;
  curl_easy_getinfo(e, CURLINFO_PRIVATE, (char **)&it);
  long code = 0;
  curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &code);
  curl_easy_cleanup(e);
  it->easy = NULL;
  M.sending--;
  outcome_t out = classify(res, code, it->errbuf);
  char err[CURL_ERROR_SIZE + REPLY_MAX + 8];
  err[0] = '\0';
  if (out != OUT_SENT) {
    if (code > 0 && it->reply[0]) snprintf(err, sizeof err, "%s", it->reply);
    else snprintf(err, sizeof err, "%s", it->errbuf[0] ? it->errbuf : curl_easy_strerror(res));
  }
  record(it, out, code, err); /* first: the acceptance is on its way to the database */
  pump();
}

static size_t on_read(char *buf, size_t size, size_t n, void *ud) {
  bd_mail_item_t *it = ud;
  size_t room = size * n, left = it->body.len - it->sent;
  if (room > left) room = left;
  memcpy(buf, it->body.data + it->sent, room);
  it->sent += room;
  return room;
}

/* Every reply line of the server comes here (curl passes SMTP replies to
 * the header callback): the last complete reply is kept, its lines joined
 * by spaces, for the outcome's error. */
static size_t on_reply(char *p, size_t size, size_t n, void *ud) {
  bd_mail_item_t *it = ud;
  size_t len = size * n, l = len;
  while (l && (p[l - 1] == '\n' || p[l - 1] == '\r')) l--;
  if (it->cur_done) {
    it->cur[0] = '\0';
    it->cur_done = false;
  }
  size_t off = strlen(it->cur);
  if (off && off + 1 < sizeof it->cur) it->cur[off++] = ' ';
  for (size_t i = 0; i < l && off + 1 < sizeof it->cur; i++) {
    unsigned char c = (unsigned char)p[i];
    it->cur[off++] = (char)(c < 0x20 || c == 0x7f ? ' ' : c);
  }
  it->cur[off] = '\0';
  if (l <= 3 || p[3] == ' ') { /* the final line of a reply: an error one is kept (not the QUIT after it) */
    it->cur_done = true;
    if (it->cur[0] == '4' || it->cur[0] == '5') memcpy(it->reply, it->cur, sizeof it->reply);
  }
  return len;
}

static void start_transfer(bd_mail_item_t *it) {
  CURL *e = curl_easy_init();
  char rcpt[300];
  snprintf(rcpt, sizeof rcpt, "<%s>", it->recipient);
  it->rcpt = curl_slist_append(NULL, rcpt);
  if (!e || !it->rcpt) {
    if (e) curl_easy_cleanup(e);
    record(it, OUT_RETRY, 0, "could not start the transfer (out of memory)");
    return;
  }
  long timeout = (long)bd_app.cfg.smtp_timeout_ms;
  bool smtps = strncasecmp(bd_app.cfg.smtp_url, "smtps://", 8) == 0;
  curl_easy_setopt(e, CURLOPT_URL, bd_app.cfg.smtp_url);
  curl_easy_setopt(e, CURLOPT_PRIVATE, it);
  curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "smtp,smtps");
  curl_easy_setopt(e, CURLOPT_MAIL_FROM, M.mail_from);
  curl_easy_setopt(e, CURLOPT_MAIL_RCPT, it->rcpt);
  curl_easy_setopt(e, CURLOPT_UPLOAD, 1L);
  curl_easy_setopt(e, CURLOPT_INFILESIZE_LARGE, (curl_off_t)it->body.len);
  curl_easy_setopt(e, CURLOPT_READFUNCTION, on_read);
  curl_easy_setopt(e, CURLOPT_READDATA, it);
  curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_reply);
  curl_easy_setopt(e, CURLOPT_HEADERDATA, it);
  curl_easy_setopt(e, CURLOPT_ERRORBUFFER, it->errbuf);
  curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, timeout);
  curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, timeout);
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_PROXY, "");
  if (!smtps) curl_easy_setopt(e, CURLOPT_USE_SSL, bd_app.cfg.smtp_insecure ? (long)CURLUSESSL_NONE : (long)CURLUSESSL_ALL);
  if (bd_app.cfg.smtp_ca_file && bd_app.cfg.smtp_ca_file[0]) curl_easy_setopt(e, CURLOPT_CAINFO, bd_app.cfg.smtp_ca_file);
  if (bd_app.cfg.smtp_user && bd_app.cfg.smtp_user[0]) {
    curl_easy_setopt(e, CURLOPT_USERNAME, bd_app.cfg.smtp_user);
    curl_easy_setopt(e, CURLOPT_PASSWORD, bd_app.cfg.smtp_password ? bd_app.cfg.smtp_password : "");
  }
  it->easy = e;
  M.sending++;
  if (bd_curl_uv_add(M.curl, e) != 0) {
    M.sending--;
    curl_easy_cleanup(e);
    it->easy = NULL;
    record(it, OUT_RETRY, 0, "could not start the transfer");
  }
}

/* Token bucket: BATCHD_SMTP_RATE per second, a burst of at most one
 * second's worth (at least one message). 0: no limit. */
static bool take_token(void) {
  double rate = bd_app.cfg.smtp_rate;
  if (rate <= 0) return true;
  uint64_t now = uv_now(bd_app.loop);
  double burst = rate < 1 ? 1 : rate;
  M.tokens += (double)(now - M.tokens_at) * rate / 1000.0;
  if (M.tokens > burst) M.tokens = burst;
  M.tokens_at = now;
  if (M.tokens < 1) return false;
  M.tokens -= 1;
  return true;
}

static void on_bucket(uv_timer_t *t) {
  M.bucket_armed = false;
  pump();
}

/* Starts what may start: composed messages in FIFO order, while a
 * connection slot and a token are free. */
static void pump(void) {
  if (!M.started) return;
  while (M.wait_head && M.sending < (int)bd_app.cfg.smtp_connections) {
    if (M.stopping) {
      bd_mail_item_t *it = M.wait_head;
      M.wait_head = it->qnext;
      if (!M.wait_head) M.wait_tail = &M.wait_head;
      yield(it);
      continue;
    }
    if (!take_token()) {
      if (!M.bucket_armed) {
        double wait_ms = (1.0 - M.tokens) * 1000.0 / bd_app.cfg.smtp_rate;
        uv_timer_start(&M.bucket, on_bucket, (uint64_t)wait_ms + 1, 0);
        M.bucket_armed = true;
      }
      return;
    }
    bd_mail_item_t *it = M.wait_head;
    M.wait_head = it->qnext;
    if (!M.wait_head) M.wait_tail = &M.wait_head;
    if (uv_now(bd_app.loop) - it->claimed_at > M.lease_ms / 2) {
      /* waited too long (a slow database, a low rate): sending now could
       * outlast the lease and let another process send it too */
      M.tokens += 1;
      yield(it);
      continue;
    }
    start_transfer(it);
  }
}

void bd_mail_composed(bd_mail_item_t *it, bd_buf_t *msg) {
  it->body = *msg;
  *msg = (bd_buf_t)BD_BUF_INIT;
  it->sent = 0;
  if (M.stopping) {
    yield(it);
    return;
  }
  it->qnext = NULL;
  *M.wait_tail = it;
  M.wait_tail = &it->qnext;
  pump();
}

void bd_mail_compose_failed(bd_mail_item_t *it, bool permanent, const char *error) {
  record(it, permanent ? OUT_FAILED : OUT_RETRY, 0, error);
}

/* --- claiming ------------------------------------------------------------------------ */

static void dispatch(bd_mail_item_t *it) {
  if (!bd_mime_addr_ok(it->recipient)) {
    record(it, OUT_FAILED, 0, "invalid recipient address");
    return;
  }
  for (int k = 0; k < g_nkinds; k++)
    if (!strcmp(g_kinds[k].kind, it->kind)) {
      g_kinds[k].fn(it, &it->msg);
      return;
    }
  record(it, OUT_RETRY, 0, "no composer for this kind of message in this process");
}

static void on_claimed(void *ud, const bd_pg_result_t *r) {
  int asked = (int)(intptr_t)ud;
  M.claiming = false;
  if (r->err != BD_PG_OK) {
    M.queries--; /* the database is away or the schema not there yet: the poll tries again */
    maybe_stopped();
    return;
  }
  int n = PQntuples(r->res);
  for (int i = 0; i < n; i++) {
    bd_mail_item_t *it = bd_calloc(1, sizeof *it);
    it->id = bd_strdup(PQgetvalue(r->res, i, 0));
    it->kind = bd_strdup(PQgetvalue(r->res, i, 1));
    it->ref = bd_strdup(PQgetvalue(r->res, i, 2));
    it->recipient = bd_strdup(PQgetvalue(r->res, i, 3));
    it->attempts = atoi(PQgetvalue(r->res, i, 4));
    it->created_s = strtoll(PQgetvalue(r->res, i, 5), NULL, 10);
    it->claimed_at = uv_now(bd_app.loop);
    it->msg = (bd_mail_msg_t){it->id, it->kind, it->ref, it->recipient, it->created_s, it->attempts};
    it->next = M.list;
    M.list = it;
    M.inflight++;
    if (M.stopping) yield(it);
    else dispatch(it);
  }
  if (n >= asked) M.want = true;
  M.queries--;
  claim();
  maybe_stopped();
}

static void claim(void) {
  if (!M.started || M.stopping || M.claiming || !M.want) return;
  int cap = 2 * (int)bd_app.cfg.smtp_connections;
  if (bd_app.cfg.smtp_rate > 0) { /* no more than a quarter lease's worth of tokens waiting */
    double by_rate = bd_app.cfg.smtp_rate * (double)M.lease_ms / 4000.0;
    if (by_rate < cap) cap = by_rate < 1 ? 1 : (int)by_rate;
  }
  int room = cap - M.inflight;
  if (room <= 0) return;
  M.want = false;
  char n[16];
  snprintf(n, sizeof n, "%d", room);
  const char *p[] = {bd_app.instance, n, M.lease_s};
  if (bd_pg_query(bd_app.pg, &S_CLAIM, 3, p, on_claimed, (void *)(intptr_t)room) != 0) {
    M.want = true;
    return;
  }
  M.claiming = true;
  M.queries++;
}

void bd_mail_kick(void) {
  M.want = true;
  claim();
}

static void on_notify(void *ud, const char *channel, const char *payload) { bd_mail_kick(); }
static void on_listen_reconnect(void *ud) { bd_mail_kick(); }

static void on_swept(void *ud, const bd_pg_result_t *r) {
  M.sweeping = false;
  if (r->err != BD_PG_OK || PQntuples(r->res) != 1) return;
  M.have_queue = true;
  M.q_depth = strtoll(PQgetvalue(r->res, 0, 0), NULL, 10);
  M.q_due = strtoll(PQgetvalue(r->res, 0, 1), NULL, 10);
  M.q_oldest_s = strtod(PQgetvalue(r->res, 0, 2), NULL);
  M.q_at = uv_now(bd_app.loop);
}

static void on_sweep(uv_timer_t *t) {
  if (M.sweeping || M.stopping) return;
  if (bd_pg_query(bd_app.pg, &S_SWEEP, 0, NULL, on_swept, NULL) == 0) M.sweeping = true;
}

void bd_mail_start(void) {
  if (M.started || !bd_mail_enabled()) return;
  const char *problem = bd_mail_config_problem();
  if (problem) {
    bd_error("mail: not sending: %s", problem);
    return;
  }
  snprintf(M.mail_from, sizeof M.mail_from, "<%s>", M.from_addr);
  M.curl = bd_curl_uv_new(bd_app.loop, on_transfer_done, NULL);
  if (!M.curl) {
    bd_error("mail: not sending: libcurl could not make a multi handle");
    return;
  }
  /* the connections are curl's cache: one per slot, kept open between messages */
  CURLM *multi = bd_curl_uv_multi(M.curl);
  curl_multi_setopt(multi, CURLMOPT_MAXCONNECTS, (long)bd_app.cfg.smtp_connections);
  curl_multi_setopt(multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long)bd_app.cfg.smtp_connections);
  /* A lease that runs out means its process died: the message goes out
   * again. So no transfer starts later than half the lease after the claim
   * (pump gives such a message back instead), and a transfer ends within
   * BATCHD_SMTP_TIMEOUT_MS: the lease is at least twice that plus 10 s
   * for the record to be written. */
  long long lease_ms = bd_app.cfg.smtp_lease_s * 1000;
  if (lease_ms < 2 * bd_app.cfg.smtp_timeout_ms + 10000) lease_ms = 2 * bd_app.cfg.smtp_timeout_ms + 10000;
  M.lease_ms = (uint64_t)lease_ms;
  snprintf(M.lease_s, sizeof M.lease_s, "%lld", (lease_ms + 999) / 1000);
  uv_timer_init(bd_app.loop, &M.tick);
  uv_timer_init(bd_app.loop, &M.sweep);
  uv_timer_init(bd_app.loop, &M.grace);
  uv_timer_init(bd_app.loop, &M.bucket);
  uv_timer_init(bd_app.loop, &M.rec_retry);
  M.rq_tail = &M.rq_head;
  M.wait_tail = &M.wait_head;
  M.tokens = bd_app.cfg.smtp_rate < 1 ? 1 : bd_app.cfg.smtp_rate;
  M.tokens_at = uv_now(bd_app.loop);
  M.started = true;
  M.stopping = false;
  M.want = true;
  M.tick_at = uv_now(bd_app.loop) + POLL_MS;
  uv_timer_start(&M.tick, on_tick, POLL_MS, 0);
  uv_timer_start(&M.sweep, on_sweep, 0, SWEEP_MS);
  bd_pg_listen(bd_app.pg, "bd_mail", on_notify, on_listen_reconnect, NULL);
  bd_info("mail: sending through %s as %s (%lld connections, %g messages/s)", bd_app.cfg.smtp_url, M.from_addr,
          (long long)bd_app.cfg.smtp_connections, bd_app.cfg.smtp_rate);
  claim();
}

static void on_grace(uv_timer_t *t) {
  int n = 0;
  M.queries++; /* no stop completes inside the loop */
  for (bd_mail_item_t *it = M.list, *next; it; it = next) {
    next = it->next;
    if (!it->easy) continue; /* composing, waiting or being recorded */
    bd_curl_uv_remove(M.curl, it->easy);
    curl_easy_cleanup(it->easy);
    it->easy = NULL;
    M.sending--;
    n++;
    yield(it);
  }
  M.queries--;
  if (n) bd_warn("shutdown: %d e-mail messages still being sent were given back", n);
  maybe_stopped();
}

void bd_mail_stop(void (*done)(void *ud), void *ud) {
  if (!M.started) {
    done(ud);
    return;
  }
  M.stopping = true;
  M.stop_done = done;
  M.stop_ud = ud;
  uv_timer_stop(&M.tick);
  uv_timer_stop(&M.sweep);
  uv_timer_stop(&M.bucket);
  M.bucket_armed = false;
  uv_timer_start(&M.grace, on_grace, (uint64_t)bd_app.cfg.shutdown_grace_ms, 0);
  pump(); /* gives back what waits for a token */
  maybe_stopped();
}

void bd_mail_metrics(bd_buf_t *out) {
  bd_buf_printf(out,
                "# HELP batchd_mail_messages_total E-mail message attempts by outcome (sent: accepted by the SMTP "
                "server; retried: to be tried again; failed: given up).\n"
                "# TYPE batchd_mail_messages_total counter\n"
                "batchd_mail_messages_total{outcome=\"sent\"} %llu\n"
                "batchd_mail_messages_total{outcome=\"retried\"} %llu\n"
                "batchd_mail_messages_total{outcome=\"failed\"} %llu\n"
                "# HELP batchd_mail_unrecorded_total E-mail outcomes that could not be written (sent again after "
                "their lease).\n"
                "# TYPE batchd_mail_unrecorded_total counter\nbatchd_mail_unrecorded_total %llu\n"
                "# HELP batchd_mail_in_flight E-mail messages claimed by this process and not yet recorded.\n"
                "# TYPE batchd_mail_in_flight gauge\nbatchd_mail_in_flight %d\n"
                "# HELP batchd_mail_sending SMTP transfers running in this process.\n"
                "# TYPE batchd_mail_sending gauge\nbatchd_mail_sending %d\n",
                (unsigned long long)M.n_sent, (unsigned long long)M.n_retried, (unsigned long long)M.n_failed,
                (unsigned long long)M.n_unrecorded, M.inflight, M.sending);
  if (!M.have_queue) return;
  double age = M.q_depth > 0 ? M.q_oldest_s + (double)(uv_now(bd_app.loop) - M.q_at) / 1000.0 : 0;
  bd_buf_printf(out,
                "# HELP batchd_mail_queue_depth Pending e-mail messages (every process; as of the last sweep, at "
                "most 10 s old).\n"
                "# TYPE batchd_mail_queue_depth gauge\nbatchd_mail_queue_depth %lld\n"
                "# HELP batchd_mail_queue_due Of those, the ones due now.\n"
                "# TYPE batchd_mail_queue_due gauge\nbatchd_mail_queue_due %lld\n"
                "# HELP batchd_mail_oldest_pending_age_seconds Age of the oldest pending e-mail message.\n"
                "# TYPE batchd_mail_oldest_pending_age_seconds gauge\nbatchd_mail_oldest_pending_age_seconds %.3f\n",
                M.q_depth, M.q_due, age);
}

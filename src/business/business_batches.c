/* business_batches.c: certificate batch reads of the /business surface:
 * GET /business/batches/{batchId}, the paginated GET /business/batches,
 * POST …/{batchId}/approve and the streamed GET …/{batchId}/errors.csv.
 * Batches are created by the streamed roster upload (business_upload.c).
 *
 * Every read is scoped to the caller's institution and is one round trip
 * (biz_batch_json builds the JSON); errors.csv pages through the failed
 * rows, ERRORS_PAGE at a time, and waits for a slow client to drain.
 */
#include "business.h"

#include "app.h"
#include "jobs.h"
#include "log.h"
#include "util.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>

/* --- reads ------------------------------------------------------------------------------ */

typedef struct {
  bd_biz_page_t pg; /* list page */
  char extra[96];   /* query suffix of page links */
  char id[64];      /* path id */
  int64_t after;    /* errors.csv: last row_no sent */
} rd_ctx_t;

static rd_ctx_t *rd_ctx(bd_req_t *req) {
  rd_ctx_t *c = bd_req_calloc(req, sizeof *c);
  req->ctx = c;
  return c;
}

static bd_pg_stmt_t S_GET = BD_PG_STMT("SELECT biz_batch_json(b, $3::bigint, $4) FROM biz_batches "
                                       "b WHERE b.id = $1::uuid AND b.institution_id = $2::bigint");

static void on_get(void *ud, const bd_pg_result_t *r) {
  bd_req_t *req = ud;
  rd_ctx_t *c = req->ctx;
  if (r->err)
    bd_app_db_error(req, r);
  else if (PQntuples(r->res) != 1)
    bd_biz_not_found(req, c->id);
  else
    bd_biz_send_data(req, 200, PQgetvalue(r->res, 0, 0));
  bd_req_release(req);
}

static void get_authed(bd_req_t *req, const bd_biz_caller_t *caller) {
  rd_ctx_t *c = rd_ctx(req);
  const char *id = bd_req_param(req, 0);
  snprintf(c->id, sizeof c->id, "%s", id);
  if (!bd_uuid_valid(bd_str_c(id))) {
    bd_biz_not_found(req, id);
    return;
  }
  char inst[24], user[24];
  bd_biz_inst_str(caller, inst);
  snprintf(user, sizeof user, "%lld", (long long)caller->user_id);
  const char *p[] = {id, inst, user, bd_biz_base_url()};
  bd_app_query(req, &S_GET, 4, p, on_get, req);
}

void bd_biz_batch_get(bd_req_t *req) { bd_biz_authenticate(req, "batches:view", get_authed); }

static bd_pg_stmt_t S_LIST = BD_PG_STMT(
    "SELECT (SELECT count(*) FROM biz_batches WHERE institution_id = $1::bigint AND ($5::text IS "
    "NULL OR status = $5)),"
    " coalesce(json_agg(biz_batch_json(s.b, $2::bigint, $6) ORDER BY (s.b).created_at DESC, "
    "(s.b).id DESC), '[]'),"
    " count(*)"
    " FROM (SELECT b FROM biz_batches b WHERE b.institution_id = $1::bigint AND ($5::text IS NULL "
    "OR b.status = $5)"
    "       ORDER BY b.created_at DESC, b.id DESC LIMIT $3::bigint OFFSET $4::bigint) s");

static void on_list(void *ud, const bd_pg_result_t *r) {
  bd_req_t *req = ud;
  rd_ctx_t *c = req->ctx;
  bd_biz_send_page(req, r, &c->pg, c->extra);
  bd_req_release(req);
}

static const char *const g_statuses[] = {"pending",   "waiting_for_approval", "processing",
                                         "completed", "partially_completed",  "failed"};

static void list_authed(bd_req_t *req, const bd_biz_caller_t *caller) {
  rd_ctx_t *c = rd_ctx(req);
  bd_biz_errors_t errs;
  bd_biz_errors_init(&errs);
  bd_biz_page_parse(req, &c->pg, &errs);
  bd_buf_t st = BD_BUF_INIT;
  bool has_status = bd_req_query(req, "status", &st) && st.len;
  if (has_status) {
    bool known = false;
    for (size_t i = 0; i < BD_ARRAY_LEN(g_statuses); i++)
      known |= strcmp(st.data, g_statuses[i]) == 0;
    if (!known) bd_biz_errors_add(&errs, "status", "The selected status is invalid.");
  }
  if (errs.n) {
    bd_buf_free(&st);
    bd_biz_errors_send(req, &errs);
    return;
  }
  size_t off = 0;
  if (c->pg.per_page != BD_BIZ_PER_PAGE_DEFAULT)
    off += (size_t)snprintf(c->extra, sizeof c->extra, "&per_page=%lld", (long long)c->pg.per_page);
  if (has_status) snprintf(c->extra + off, sizeof c->extra - off, "&status=%s", st.data);
  char inst[24], user[24], lim[24], offs[24];
  bd_biz_inst_str(caller, inst);
  snprintf(user, sizeof user, "%lld", (long long)caller->user_id);
  snprintf(lim, sizeof lim, "%lld", (long long)c->pg.per_page);
  snprintf(offs, sizeof offs, "%lld", (long long)c->pg.offset);
  const char *p[] = {inst, user, lim, offs, has_status ? st.data : NULL, bd_biz_base_url()};
  bd_app_query(req, &S_LIST, 6, p, on_list, req);
  bd_buf_free(&st);
}

void bd_biz_batch_list(bd_req_t *req) { bd_biz_authenticate(req, "batches:view", list_authed); }

/* --- approve ---------------------------------------------------------------------------- */

static bd_pg_stmt_t S_APPROVE =
    BD_PG_STMT("SELECT biz_approve_batch($1::uuid, $2::bigint, $3::bigint, $4)");

static void on_approve(void *ud, const bd_pg_result_t *r) {
  bd_req_t *req = ud;
  rd_ctx_t *c = req->ctx;
  json_error_t jerr;
  json_t *o = r->err ? NULL : json_loads(PQgetvalue(r->res, 0, 0), 0, &jerr);
  const char *e = o ? json_string_value(json_object_get(o, "error")) : NULL;
  if (r->err) {
    bd_app_db_error(req, r);
  } else if (!o) {
    bd_biz_server_error(req, "bad biz_approve_batch result");
  } else if (!e) {
    bd_jobs_kick();
    char *d = json_dumps(json_object_get(o, "data"), JSON_COMPACT | JSON_PRESERVE_ORDER);
    bd_biz_send_data(req, 200, d);
    free(d);
  } else if (strcmp(e, "not_found") == 0) {
    bd_biz_not_found(req, c->id);
  } else if (strcmp(e, "not_signatory") == 0) {
    /* the token may approve, but not this batch: the caller is none of its
     * signatories */
    bd_resp_error(req, 403, "forbidden", "Forbidden - Insufficient permissions", "batches:approve");
  } else {
    bd_biz_errors_t errs;
    bd_biz_errors_init(&errs);
    if (strcmp(e, "already_approved") == 0)
      bd_biz_errors_add(&errs, "batch", "You have already approved this batch.");
    else
      bd_biz_errors_add(&errs, "batch", "This batch is not waiting for approval.");
    bd_biz_errors_send(req, &errs);
  }
  json_decref(o);
  bd_req_release(req);
}

static void approve_run(bd_req_t *req, const bd_biz_caller_t *caller) {
  rd_ctx_t *c = req->ctx;
  char inst[24], user[24];
  bd_biz_inst_str(caller, inst);
  snprintf(user, sizeof user, "%lld", (long long)caller->user_id);
  const char *p[] = {c->id, inst, user, bd_biz_base_url()};
  bd_app_query(req, &S_APPROVE, 4, p, on_approve, req);
}

static void approve_authed(bd_req_t *req, const bd_biz_caller_t *caller) {
  rd_ctx_t *c = rd_ctx(req);
  const char *id = bd_req_param(req, 0);
  snprintf(c->id, sizeof c->id, "%s", id);
  if (!bd_uuid_valid(bd_str_c(id))) {
    bd_biz_not_found(req, id);
    return;
  }
  approve_run(req, caller);
}

void bd_biz_batch_approve(bd_req_t *req) {
  bd_biz_authenticate(req, "batches:approve", approve_authed);
}

/* --- errors.csv ------------------------------------------------------------------------- */

#define ERRORS_PAGE 5000 /* failed rows fetched per query */

/* One CSV cell: a leading = + - @ tab or CR is neutralised with a quote
 * (formula injection in spreadsheets), then RFC 4180 quoting if needed. */
static void csv_cell(bd_buf_t *b, const char *s) {
  if (!s) s = "";
  bool lead = *s == '=' || *s == '+' || *s == '-' || *s == '@' || *s == '\t' || *s == '\r';
  bool quote = lead || strpbrk(s, ",\"\r\n") != NULL || *s == ' ';
  if (quote) bd_buf_putc(b, '"');
  if (lead) bd_buf_putc(b, '\'');
  for (const char *p = s; *p; p++) {
    if (*p == '"') bd_buf_putc(b, '"');
    bd_buf_putc(b, *p);
  }
  if (quote) bd_buf_putc(b, '"');
}

static bd_pg_stmt_t S_ERR_BATCH =
    BD_PG_STMT("SELECT 1 FROM biz_batches WHERE id = $1::uuid AND institution_id = $2::bigint");
static bd_pg_stmt_t S_ERR_ROWS =
    BD_PG_STMT("SELECT row_no, email, name, CASE WHEN status = 'failed' THEN coalesce(error, '')"
               " ELSE 'E-mail not delivered: ' || coalesce(email_error, '') END FROM biz_certificates"
               " WHERE batch_id = $1::uuid AND (status = 'failed' OR email_status = 'failed')"
               " AND row_no > $2::int ORDER BY row_no LIMIT $3::int");

static void errors_next(bd_req_t *req);

static void on_err_rows(void *ud, const bd_pg_result_t *r) {
  bd_req_t *req = ud;
  rd_ctx_t *c = req->ctx;
  if (bd_req_gone(req)) {
    bd_resp_end(req);
    bd_req_release(req);
    return;
  }
  if (r->err) {
    /* headers are out: all we can do is cut the response short */
    bd_error("request %s: errors.csv: %s", req->request_id, r->message);
    bd_resp_end(req);
    bd_req_release(req);
    return;
  }
  int n = PQntuples(r->res);
  bd_buf_t b = BD_BUF_INIT;
  for (int i = 0; i < n; i++) {
    bd_buf_puts(&b, PQgetvalue(r->res, i, 0));
    for (int k = 1; k < 4; k++) {
      bd_buf_putc(&b, ',');
      csv_cell(&b, PQgetvalue(r->res, i, k));
    }
    bd_buf_puts(&b, "\r\n");
  }
  if (n) c->after = strtoll(PQgetvalue(r->res, n - 1, 0), NULL, 10);
  size_t queued = b.len ? bd_resp_write(req, b.data, b.len) : 0;
  bd_buf_free(&b);
  if (n < ERRORS_PAGE) {
    bd_resp_end(req);
  } else if (queued > (1u << 20)) {
    req->on_drain = errors_next; /* the client is slow: wait */
  } else {
    errors_next(req);
  }
  bd_req_release(req);
}

static void errors_next(bd_req_t *req) {
  rd_ctx_t *c = req->ctx;
  char after[24], lim[24];
  snprintf(after, sizeof after, "%lld", (long long)c->after);
  snprintf(lim, sizeof lim, "%d", ERRORS_PAGE);
  const char *p[] = {c->id, after, lim};
  bd_req_hold(req);
  if (bd_pg_query(bd_app.pg, &S_ERR_ROWS, 3, p, on_err_rows, req) != 0) {
    bd_resp_end(req);
    bd_req_release(req);
  }
}

static void on_err_batch(void *ud, const bd_pg_result_t *r) {
  bd_req_t *req = ud;
  rd_ctx_t *c = req->ctx;
  if (r->err) {
    bd_app_db_error(req, r);
  } else if (PQntuples(r->res) != 1) {
    bd_biz_not_found(req, c->id);
  } else {
    char cd[96];
    snprintf(cd, sizeof cd, "attachment; filename=\"batch-%.36s-errors.csv\"", c->id);
    bd_resp_header(req, "Content-Disposition", cd);
    bd_resp_start(req, 200, "text/csv; charset=utf-8", -1);
    const char head[] = "Row,RecipientsEmail,RecipientsName,Reason\r\n";
    (void)bd_resp_write(req, head, sizeof head - 1);
    errors_next(req);
  }
  bd_req_release(req);
}

static void errors_authed(bd_req_t *req, const bd_biz_caller_t *caller) {
  rd_ctx_t *c = rd_ctx(req);
  const char *id = bd_req_param(req, 0);
  snprintf(c->id, sizeof c->id, "%s", id);
  if (!bd_uuid_valid(bd_str_c(id))) {
    bd_biz_not_found(req, id);
    return;
  }
  char inst[24];
  bd_biz_inst_str(caller, inst);
  const char *p[] = {id, inst};
  bd_app_query(req, &S_ERR_BATCH, 2, p, on_err_batch, req);
}

void bd_biz_batch_errors(bd_req_t *req) { bd_biz_authenticate(req, "batches:view", errors_authed); }

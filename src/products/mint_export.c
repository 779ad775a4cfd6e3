/* mint_export.c: the exports of a mint job, streamed.
 *
 *   GET /exports/mint-jobs/{id}.csv      manifest: gtin,lot,serial,uri
 *   GET /exports/mint-jobs/{id}/qr.zip   one SVG QR code per unit
 *
 * Auth as /rpc: `Authorization: Bearer <JWT>`; the caller must be a member
 * (viewer or above) of the job's brand, else 404 (a job of another brand is
 * not disclosed). Neither export is built in memory: units are read in
 * keyset pages of the primary key (the job's id range), each page is
 * written out, and the next page is read only once the socket has taken
 * the previous one (on_drain). For the ZIP every page is rendered on the
 * work queue (several units per work item), then added in order through
 * zip.h, whose central directory is written slice by slice at the end.
 * A job still running exports the units committed so far (header
 * X-Mint-Job-Status says which state it was in).
 *
 * CSV cells that begin with = + - @ tab or CR are prefixed with ' so that
 * spreadsheet programs do not evaluate them (lots and provided serials may
 * start with + or - or =).
 *
 * ?profile= formats the manifest for a label or encoding program (tieback's
 * carrier output profiles, k_profiles: header, columns, line ending), or
 * as the full manifest (token id, resolver URL, serial, GTIN, lot, status,
 * created_at). ?pack=N (both exports) is the N-th slice of EXPORT_PACK
 * units of the job in unit order (units N*10,000-9,999 .. N*10,000): the
 * same bytes every time once the job is complete, so a 1M-unit job is 100
 * files that can be fetched in parallel and resumed; X-Pack-Count says
 * how many there are.
 */
#include "app.h"
#include "gs1.h"
#include "products.h"
#include "qr.h"
#include "util.h"
#include "work.h"
#include "zip.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define CSV_PAGE 5000          /* units per page of the manifest */
#define ZIP_PAGE 512           /* units per page of the ZIP */
#define ZIP_PER_WORK 32        /* units rendered by one work item */
#define QR_SVG_SIZE 512        /* nominal SVG size in px */
#define OUT_HIGH_WATER (1u << 20) /* wait for on_drain above this many unsent bytes */
#define EXPORT_PACK 10000      /* units per ?pack= */
#define EXPORT_MAX_LOTS 100    /* lots of a job (submit_mint_request's limit) */

/* Manifest columns. */
enum { COL_URI, COL_SERIAL, COL_GTIN, COL_LOT, COL_TOKEN, COL_STATUS, COL_CREATED };

typedef struct {
  const char *name;     /* ?profile= */
  const char *head;     /* header line, without its line ending */
  const char *eol;      /* line ending */
  int cols[8], ncols;   /* columns in order */
} profile_t;

static const profile_t k_profiles[] = {
    {"", "gtin,lot,serial,uri", "\r\n", {COL_GTIN, COL_LOT, COL_SERIAL, COL_URI}, 4},
    {"generic-vdp-lf", "DATA,Serial,GTIN", "\n", {COL_URI, COL_SERIAL, COL_GTIN}, 3},
    {"generic-vdp-crlf", "DATA,Serial,GTIN", "\r\n", {COL_URI, COL_SERIAL, COL_GTIN}, 3},
    {"bartender-barcodedata", "BarcodeData,Serial,GTIN", "\r\n", {COL_URI, COL_SERIAL, COL_GTIN}, 3},
    {"bartender-data", "DATA,Serial,GTIN", "\r\n", {COL_URI, COL_SERIAL, COL_GTIN}, 3},
    {"nicelabel-qr", "QR,Serial,GTIN", "\r\n", {COL_URI, COL_SERIAL, COL_GTIN}, 3},
    {"zebra", "DATA,Serial,GTIN", "\r\n", {COL_URI, COL_SERIAL, COL_GTIN}, 3},
    {"full", "token_id,resolver_url,serial,gtin,lot,status,created_at", "\r\n",
     {COL_TOKEN, COL_URI, COL_SERIAL, COL_GTIN, COL_LOT, COL_STATUS, COL_CREATED}, 7},
};

typedef struct {
  int64_t first; /* first unit id of the lot */
  char lot[BD_GS1_VALUE_MAX + 1];
} exp_lot_t;

typedef struct zip_work_s zip_work_t;

typedef struct {
  bool zip;                         /* which export */
  char job[40];                     /* mint job id */
  char sub[201];                    /* caller */
  char gtin[BD_GS1_GTIN14_LEN + 1]; /* of every unit */
  char lot[BD_GS1_VALUE_MAX + 1];   /* AI 10 (a job without lots) */
  exp_lot_t lots[EXPORT_MAX_LOTS];  /* a job with lots: each lot's first unit, ascending */
  int nlots, cur_lot;               /* their count, the lot of the last unit looked up */
  const profile_t *profile;         /* the manifest's format */
  bool first_scan;                  /* units are minted until activated (status column) */
  char created[40];                 /* the job's created_at (full manifest) */
  int64_t pack, npacks;             /* ?pack= (0: the whole job), packs of the job */
  int64_t first, next, end;         /* id range, next id to read */
  bd_buf_t out;                     /* CSV text of a page */
  bd_zip_t *z;                      /* ZIP writer */
  bd_qr_design_t *design;           /* plain design (M) for the codes */
  zip_work_t **works;               /* work items of the current page, in order */
  int nworks, pending;              /* items, items not yet back */
  bool failed;                      /* a render failed or was cancelled */
  size_t unsent;                    /* bytes queued on the socket after the last write */
} exp_t;

struct zip_work_s {
  bd_work_t w;                /* work item */
  exp_t *e;                   /* owner (valid: the request is held while items run) */
  bd_req_t *req;              /* the request */
  int n;                      /* units */
  char *uri[ZIP_PER_WORK];    /* payloads (owned) */
  char *name[ZIP_PER_WORK];   /* entry names (owned) */
  bd_buf_t svg[ZIP_PER_WORK]; /* rendered */
  bd_qr_design_t *design;     /* own copy */
  bool ok;                    /* every unit rendered */
};

static bd_pg_stmt_t S_JOB = BD_PG_STMT(
    "SELECT j.gtin, j.lot, j.first_unit_id, j.requested_quantity, j.status,"
    " (SELECT string_agg(l.first_unit_id || ':' || l.lot, chr(10) ORDER BY l.first_unit_id)"
    "    FROM pp_mint_lots l WHERE j.has_lots AND l.job_id = j.id),"
    " j.activation_mode = 'first_scan', bd_iso(j.created_at)"
    " FROM pp_caller($2, $3) c, pp_mint_jobs j"
    " WHERE j.id = $1 AND EXISTS (SELECT 1 FROM pp_members m WHERE m.brand_id = j.brand_id AND m.user_id = c)");
static bd_pg_stmt_t S_PAGE = BD_PG_STMT(
    "SELECT id, serial FROM pp_units WHERE id >= $1 AND id < $2 ORDER BY id LIMIT $3");
/* the full manifest of a first_scan job: with each unit's activation */
static bd_pg_stmt_t S_PAGE_ACT = BD_PG_STMT(
    "SELECT u.id, u.serial, a.unit_id IS NOT NULL FROM pp_units u LEFT JOIN pp_unit_activations a ON a.unit_id = u.id"
    " WHERE u.id >= $1 AND u.id < $2 ORDER BY u.id LIMIT $3");

static void exp_free_works(exp_t *e) {
  for (int i = 0; i < e->nworks; i++) {
    zip_work_t *zw = e->works[i];
    if (!zw) continue;
    for (int k = 0; k < zw->n; k++) {
      free(zw->uri[k]);
      free(zw->name[k]);
      bd_buf_free(&zw->svg[k]);
    }
    bd_qr_design_free(zw->design);
    free(zw);
  }
  free(e->works);
  e->works = NULL;
  e->nworks = 0;
}

static void exp_free(void *arg) {
  exp_t *e = arg;
  bd_buf_free(&e->out);
  bd_zip_free(e->z);
  bd_qr_design_free(e->design);
  exp_free_works(e);
  free(e);
}

static void next_page(bd_req_t *req);

/* Continues once the socket has taken what was written. */
static void after_write(bd_req_t *req, size_t pending) {
  if (pending > OUT_HIGH_WATER) req->on_drain = next_page;
  else next_page(req);
}

/* Appends one CSV cell, neutralised and quoted as needed. */
static void csv_cell(bd_buf_t *b, const char *s) {
  bool neut = s[0] == '=' || s[0] == '+' || s[0] == '-' || s[0] == '@' || s[0] == '\t' || s[0] == '\r';
  bool quote = neut || strpbrk(s, ",\"\r\n") != NULL;
  if (!quote) {
    bd_buf_puts(b, s);
    return;
  }
  bd_buf_putc(b, '"');
  if (neut) bd_buf_putc(b, '\'');
  for (; *s; s++) {
    if (*s == '"') bd_buf_putc(b, '"');
    bd_buf_putc(b, *s);
  }
  bd_buf_putc(b, '"');
}

/* The lot of unit `id` (ids are looked up in ascending order). */
static const char *unit_lot(exp_t *e, int64_t id) {
  if (e->nlots == 0) return e->lot;
  while (e->cur_lot + 1 < e->nlots && e->lots[e->cur_lot + 1].first <= id) e->cur_lot++;
  while (e->cur_lot > 0 && e->lots[e->cur_lot].first > id) e->cur_lot--;
  return e->lots[e->cur_lot].lot;
}

static void unit_uri(exp_t *e, const char *lot, const char *serial, bd_buf_t *out) {
  if (bd_gs1_dl_format(out, bd_app.cfg.public_url, e->gtin, lot, serial) != BD_GS1_OK)
    bd_buf_puts(out, ""); /* stored values were validated: cannot happen */
}

static void on_csv_page(void *ud, const bd_pg_result_t *r) {
  bd_req_t *req = ud;
  exp_t *e = req->ctx;
  if (r->err || bd_req_gone(req)) {
    /* the headers are out: all that can be done is to cut the stream short */
    if (!bd_req_gone(req)) bd_resp_end(req);
    bd_req_release(req);
    return;
  }
  int n = PQntuples(r->res);
  bd_buf_reset(&e->out);
  bd_buf_t uri = BD_BUF_INIT;
  const profile_t *pr = e->profile;
  for (int i = 0; i < n; i++) {
    const char *id = PQgetvalue(r->res, i, 0);
    const char *serial = bd_pg_val(r->res, i, 1);
    const char *lot = unit_lot(e, strtoll(id, NULL, 10));
    bd_buf_reset(&uri);
    unit_uri(e, lot, serial, &uri);
    for (int c = 0; c < pr->ncols; c++) {
      if (c) bd_buf_putc(&e->out, ',');
      switch (pr->cols[c]) {
      case COL_URI: csv_cell(&e->out, uri.data ? uri.data : ""); break;
      case COL_SERIAL: csv_cell(&e->out, serial ? serial : ""); break;
      case COL_GTIN: csv_cell(&e->out, e->gtin); break;
      case COL_LOT: csv_cell(&e->out, lot); break;
      case COL_TOKEN: bd_buf_puts(&e->out, id); break;
      case COL_STATUS:
        bd_buf_puts(&e->out, e->first_scan && PQgetvalue(r->res, i, 2)[0] != 't' ? "minted" : "active");
        break;
      case COL_CREATED: bd_buf_puts(&e->out, e->created); break;
      }
    }
    bd_buf_puts(&e->out, pr->eol);
  }
  bd_buf_free(&uri);
  if (n > 0) e->next = strtoll(PQgetvalue(r->res, n - 1, 0), NULL, 10) + 1;
  if (n < CSV_PAGE) e->next = e->end; /* the committed units end here */
  size_t pending = e->out.len ? bd_resp_write(req, e->out.data, e->out.len) : 0;
  after_write(req, pending);
  bd_req_release(req);
}

/* --- ZIP ------------------------------------------------------------------ */

static int zip_sink(void *ud, const void *p, size_t n) {
  bd_req_t *req = ud;
  exp_t *e = req->ctx;
  e->unsent = bd_resp_write(req, p, n);
  return 0;
}

static size_t out_pending(bd_req_t *req) { return ((exp_t *)req->ctx)->unsent; }

static void zip_render(bd_work_t *w) {
  zip_work_t *zw = w->data;
  char err[256];
  zw->ok = true;
  for (int k = 0; k < zw->n; k++)
    if (bd_qr_render(zw->uri[k], zw->design, BD_QR_SVG, QR_SVG_SIZE, &zw->svg[k], err, sizeof err) != 0)
      zw->ok = false;
}

static void zip_after(bd_work_t *w, int status) {
  zip_work_t *zw = w->data;
  exp_t *e = zw->e;
  bd_req_t *req = zw->req;
  if (status != 0 || !zw->ok) e->failed = true;
  if (--e->pending > 0) {
    bd_req_release(req);
    return;
  }
  if (e->failed || bd_req_gone(req)) {
    if (!bd_req_gone(req)) bd_resp_end(req); /* truncated: the client sees a broken archive */
    exp_free_works(e);
    bd_req_release(req);
    return;
  }
  for (int i = 0; i < e->nworks && !e->failed; i++) {
    zip_work_t *x = e->works[i];
    for (int k = 0; k < x->n; k++)
      if (bd_zip_add(e->z, x->name[k], x->svg[k].data, x->svg[k].len) != BD_ZIP_OK) e->failed = true;
  }
  exp_free_works(e);
  if (e->failed) bd_resp_end(req);
  else after_write(req, out_pending(req));
  bd_req_release(req);
}

static void on_zip_page(void *ud, const bd_pg_result_t *r) {
  bd_req_t *req = ud;
  exp_t *e = req->ctx;
  if (r->err || bd_req_gone(req)) {
    if (!bd_req_gone(req)) bd_resp_end(req);
    bd_req_release(req);
    return;
  }
  int n = PQntuples(r->res);
  if (n > 0) e->next = strtoll(PQgetvalue(r->res, n - 1, 0), NULL, 10) + 1;
  if (n < ZIP_PAGE) e->next = e->end;
  if (n == 0) {
    next_page(req);
    bd_req_release(req);
    return;
  }
  e->nworks = (n + ZIP_PER_WORK - 1) / ZIP_PER_WORK;
  e->works = bd_calloc((size_t)e->nworks, sizeof *e->works);
  e->pending = e->nworks;
  bd_buf_t b = BD_BUF_INIT;
  for (int i = 0; i < e->nworks; i++) {
    zip_work_t *zw = bd_calloc(1, sizeof *zw);
    zw->e = e;
    zw->req = req;
    zw->design = bd_qr_design_copy(e->design);
    for (int k = 0; k < ZIP_PER_WORK && i * ZIP_PER_WORK + k < n; k++) {
      int row = i * ZIP_PER_WORK + k;
      const char *serial = bd_pg_val(r->res, row, 1);
      const char *lot = unit_lot(e, strtoll(PQgetvalue(r->res, row, 0), NULL, 10));
      bd_buf_reset(&b);
      unit_uri(e, lot, serial, &b);
      zw->uri[k] = bd_strdup(b.data ? b.data : "");
      /* entry names: the identity, values percent-encoded ('/' in a serial
       * must not become a directory); batch mode adds the unit's number */
      bd_buf_reset(&b);
      bd_buf_puts(&b, e->gtin);
      bd_buf_putc(&b, '_');
      const char *v = serial ? serial : lot;
      for (const unsigned char *p = (const unsigned char *)v; *p; p++) {
        if (bd_gs1_dl_needs_escape(*p)) bd_buf_printf(&b, "%%%02X", *p);
        else bd_buf_putc(&b, (char)*p);
      }
      if (!serial) bd_buf_printf(&b, "_%07lld", (long long)(strtoll(PQgetvalue(r->res, row, 0), NULL, 10) - e->first + 1));
      bd_buf_puts(&b, ".svg");
      zw->name[k] = bd_strdup(b.data);
      zw->n++;
    }
    e->works[i] = zw;
  }
  bd_buf_free(&b);
  for (int i = 0; i < e->nworks; i++) {
    zip_work_t *zw = e->works[i];
    zw->w.work = zip_render;
    zw->w.after = zip_after;
    zw->w.data = zw;
    bd_req_hold(req);
    bd_work_submit(&zw->w);
  }
  bd_req_release(req);
}

static void zip_finish_more(bd_req_t *req) {
  exp_t *e = req->ctx;
  for (;;) {
    int rc = bd_zip_finish_some(e->z, 256 * 1024);
    if (rc != BD_ZIP_MORE) {
      bd_resp_end(req);
      return;
    }
    if (out_pending(req) > OUT_HIGH_WATER) {
      req->on_drain = zip_finish_more;
      return;
    }
  }
}

/* Reads the next page, or ends the export. */
static void next_page(bd_req_t *req) {
  exp_t *e = req->ctx;
  if (bd_req_gone(req)) return;
  if (e->next >= e->end) {
    if (e->zip) zip_finish_more(req);
    else bd_resp_end(req);
    return;
  }
  char a[24], b[24], l[16];
  snprintf(a, sizeof a, "%lld", (long long)e->next);
  snprintf(b, sizeof b, "%lld", (long long)e->end);
  snprintf(l, sizeof l, "%d", e->zip ? ZIP_PAGE : CSV_PAGE);
  const char *p[] = {a, b, l};
  bd_req_hold(req);
  bd_pg_stmt_t *st = !e->zip && e->first_scan && e->profile->cols[0] == COL_TOKEN ? &S_PAGE_ACT : &S_PAGE;
  if (bd_pg_query(bd_app.pg, st, 3, p, e->zip ? on_zip_page : on_csv_page, req) != 0) {
    bd_resp_end(req);
    bd_req_release(req);
  }
}

/* "first_unit_id:lot" lines (NULL: a job without lots). */
static void parse_lots(exp_t *e, const char *s) {
  e->nlots = e->cur_lot = 0;
  while (s && *s && e->nlots < EXPORT_MAX_LOTS) {
    const char *colon = strchr(s, ':'), *nl = strchr(s, '\n');
    if (!colon) break;
    size_t n = nl ? (size_t)(nl - colon - 1) : strlen(colon + 1);
    exp_lot_t *l = &e->lots[e->nlots++];
    l->first = strtoll(s, NULL, 10);
    snprintf(l->lot, sizeof l->lot, "%.*s", (int)BD_MIN(n, sizeof l->lot - 1), colon + 1);
    s = nl ? nl + 1 : colon + 1 + n;
  }
}

static void on_job(void *ud, const bd_pg_result_t *r) {
  bd_req_t *req = ud;
  exp_t *e = req->ctx;
  if (r->err) {
    bd_rpc_db_error(req, r);
  } else if (PQntuples(r->res) == 0) {
    bd_rpc_error(req, 404, "PGRST116", "Not found", "no such mint job in your brands", NULL);
  } else {
    snprintf(e->gtin, sizeof e->gtin, "%s", PQgetvalue(r->res, 0, 0));
    snprintf(e->lot, sizeof e->lot, "%s", PQgetvalue(r->res, 0, 1));
    e->first = e->next = strtoll(PQgetvalue(r->res, 0, 2), NULL, 10);
    int64_t qty = strtoll(PQgetvalue(r->res, 0, 3), NULL, 10);
    e->end = e->first + qty;
    parse_lots(e, PQgetvalue(r->res, 0, 5));
    e->first_scan = PQgetvalue(r->res, 0, 6)[0] == 't';
    snprintf(e->created, sizeof e->created, "%s", PQgetvalue(r->res, 0, 7));
    e->npacks = (qty + EXPORT_PACK - 1) / EXPORT_PACK;
    char packs[24], disp[160], pack[48] = "";
    snprintf(packs, sizeof packs, "%lld", (long long)e->npacks);
    if (e->pack > e->npacks) {
      char det[96];
      snprintf(det, sizeof det, "pack must be from 1 to %lld (packs of %d units)", (long long)e->npacks, EXPORT_PACK);
      bd_resp_header(req, "X-Pack-Count", packs);
      bd_rpc_error(req, 416, "PGRST103", "Requested range not satisfiable", det, NULL);
      bd_req_release(req);
      return;
    }
    if (e->pack) {
      e->next = e->first + (e->pack - 1) * EXPORT_PACK;
      e->end = BD_MIN(e->end, e->next + EXPORT_PACK);
      snprintf(pack, sizeof pack, "-pack-%03lld-of-%03lld", (long long)e->pack, (long long)e->npacks);
    }
    bd_resp_header(req, "X-Pack-Count", packs);
    bd_resp_header(req, "X-Mint-Job-Status", PQgetvalue(r->res, 0, 4));
    bd_resp_header(req, "Cache-Control", "private, no-store");
    snprintf(disp, sizeof disp, "attachment; filename=\"mint-job-%s%s%s%s%s\"", e->job, pack,
             e->profile->name[0] ? "-" : "", e->profile->name, e->zip ? "-qr.zip" : ".csv");
    bd_resp_header(req, "Content-Disposition", disp);
    if (e->zip) {
      char err[128];
      const char *param;
      e->design = bd_qr_design_parse(NULL, err, sizeof err, &param);
      time_t now = time(NULL);
      struct tm tm;
      gmtime_r(&now, &tm);
      e->z = bd_zip_new(zip_sink, req,
                        bd_zip_dos_datetime(tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                                            tm.tm_sec),
                        BD_ZIP_DEFLATE);
      bd_resp_start(req, 200, "application/zip", -1);
    } else {
      bd_resp_start(req, 200, "text/csv; charset=utf-8", -1);
      bd_buf_t head = BD_BUF_INIT;
      bd_buf_printf(&head, "%s%s", e->profile->head, e->profile->eol);
      bd_resp_write(req, head.data, head.len);
      bd_buf_free(&head);
    }
    if (req->head) bd_resp_end(req); /* HEAD: the headers say it all */
    else next_page(req);
  }
  bd_req_release(req);
}

static void export_start(bd_req_t *req, const char *id, bool zip) {
  char sub[201], jti[16];
  if (!bd_rpc_authenticate(req, sub, jti)) return;
  if (!bd_uuid_valid(bd_str_c(id))) {
    bd_rpc_error(req, 400, "22023", "Invalid input", "the mint job id must be a UUID", NULL);
    return;
  }
  /* ?profile= (the manifest only) and ?pack= */
  const profile_t *profile = &k_profiles[0];
  int64_t pack = 0;
  bd_buf_t v = BD_BUF_INIT;
  if (bd_req_query(req, "profile", &v)) {
    profile = NULL;
    for (size_t i = 1; i < BD_ARRAY_LEN(k_profiles) && !zip; i++)
      if (!strcmp(v.data ? v.data : "", k_profiles[i].name)) profile = &k_profiles[i];
    if (!profile) {
      bd_buf_free(&v);
      bd_rpc_error(req, 400, "22023", "Invalid input",
                   zip ? "profile applies to the CSV manifest only"
                       : "profile must be one of generic-vdp-lf, generic-vdp-crlf, bartender-barcodedata, "
                         "bartender-data, nicelabel-qr, zebra, full",
                   NULL);
      return;
    }
  }
  bd_buf_reset(&v);
  if (bd_req_query(req, "pack", &v)) {
    const char *s = v.data ? v.data : "";
    size_t len = strlen(s);
    bool digits = len >= 1 && len <= 7 && strspn(s, "0123456789") == len;
    long long n = digits ? strtoll(s, NULL, 10) : 0;
    if (n < 1) {
      bd_buf_free(&v);
      bd_rpc_error(req, 400, "22023", "Invalid input", "pack must be a positive integer (packs of 10000 units)", NULL);
      return;
    }
    pack = n;
  }
  bd_buf_free(&v);
  char cred[64];
  snprintf(cred, sizeof cred, "jwt:%.58s", sub);
  snprintf(req->cred_buf, sizeof req->cred_buf, "%s", cred);
  req->cred_id = req->cred_buf;
  if (!bd_app_rate_limit(req, req->cred_id)) return;
  exp_t *e = bd_calloc(1, sizeof *e);
  e->zip = zip;
  e->profile = profile;
  e->pack = pack;
  snprintf(e->job, sizeof e->job, "%s", id);
  snprintf(e->sub, sizeof e->sub, "%s", sub);
  req->ctx = e;
  bd_req_defer(req, exp_free, e);
  const char *p[] = {e->job, e->sub, jti[0] ? jti : NULL};
  bd_app_query(req, &S_JOB, 3, p, on_job, req);
}

void bd_export_csv(bd_req_t *req) {
  const char *file = bd_req_param(req, 0);
  size_t n = strlen(file);
  if (n < 5 || strcmp(file + n - 4, ".csv")) {
    bd_rpc_error(req, 404, "PGRST125", "Not found", "exports are {id}.csv and {id}/qr.zip", NULL);
    return;
  }
  char id[64];
  snprintf(id, sizeof id, "%.*s", (int)BD_MIN(n - 4, sizeof id - 1), file);
  export_start(req, id, false);
}

void bd_export_zip(bd_req_t *req) { export_start(req, bd_req_param(req, 0), true); }

/* business_templates.c: POST /business/certificate-templates.
 *
 *   authenticate (templates:manage) → Idempotency-Key → JSON body →
 *   field rules (name, layout, default_signatories) → the layout is parsed
 *   and validated by cert_render on the work queue (it may hold megabytes
 *   of base64 PNG to decode: never on the loop) → default signatories'
 *   users looked up → 422 with every error, or one INSERT of the template
 *   and its defaults → 201 {data: template with layout}.
 */
#include "business.h"

#include "app.h"
#include "cert_render.h"
#include "idem.h"
#include "json.h"
#include "log.h"
#include "util.h"
#include "work.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>
#include <time.h>

#define MAX_DEFAULTS 20 /* default signatories of one template */

typedef struct {
  bd_req_t *req;          /* the request (held while work is out) */
  bd_biz_caller_t caller; /* authenticated caller */
  json_t *body;           /* parsed body (owned; lent to the worker) */
  bd_biz_errors_t errs;   /* collected errors */
  bd_work_t work;         /* layout parse on the work queue */
  char layout_err[512];   /* parser message ("" = valid) */
  char *layout_text;      /* compact layout JSON to store (worker-made) */
  bd_buf_t fields;        /* signatory fields as a text[] literal */
  size_t nfields;         /* their count */
  json_t *defaults;       /* normalised default signatories [{index,user_uuid,...}] */
  char id[40];            /* the new template's id */
} tc_t;

static void tc_free(void *arg) {
  tc_t *c = arg;
  json_decref(c->body);
  json_decref(c->defaults);
  bd_biz_errors_free(&c->errs);
  free(c->layout_text);
  bd_buf_free(&c->fields);
  free(c);
}

/* --- the layout on the work queue ------------------------------------------------- */

static void tc_parse_work(bd_work_t *w) {
  tc_t *c = w->data;
  json_t *layout = json_object_get(c->body, "layout");
  bd_cert_layout_t *l = bd_cert_layout_parse(layout, c->layout_err, sizeof c->layout_err);
  if (!l) return;
  c->layout_err[0] = '\0';
  bd_buf_putc(&c->fields, '{');
  c->nfields = bd_cert_layout_signatory_count(l);
  for (size_t i = 0; i < c->nfields; i++) {
    if (i) bd_buf_putc(&c->fields, ',');
    bd_buf_puts(&c->fields, bd_cert_layout_signatory_field(l, i));
  }
  bd_buf_putc(&c->fields, '}');
  bd_cert_layout_free(l);
  c->layout_text = json_dumps(layout, JSON_COMPACT);
}

static void tc_validate_defaults(tc_t *c, const json_t *users);
static void tc_insert(tc_t *c);

static void on_users(void *ud, const bd_pg_result_t *r) {
  tc_t *c = ud;
  bd_req_t *req = c->req;
  if (bd_req_gone(req)) {
    bd_resp_send(req, 499, "text/plain", "", 0);
  } else if (r->err) {
    bd_app_db_error(req, r);
  } else {
    json_error_t jerr;
    json_t *o = json_loads(PQgetvalue(r->res, 0, 0), 0, &jerr);
    tc_validate_defaults(c, json_object_get(o, "users"));
    json_decref(o);
    if (c->errs.n)
      bd_biz_errors_send(req, &c->errs);
    else
      tc_insert(c);
  }
  bd_req_release(req);
}

static void tc_parse_after(bd_work_t *w, int status) {
  tc_t *c = w->data;
  bd_req_t *req = c->req;
  if (status == UV_ECANCELED || bd_req_gone(req)) {
    bd_resp_send(req, 499, "text/plain", "", 0);
    bd_req_release(req);
    return;
  }
  if (c->layout_err[0]) {
    /* "layout.elements.2.size must be …": the key is the path */
    const char *sp = strchr(c->layout_err, ' ');
    char key[160] = "layout";
    if (sp && strncmp(c->layout_err, "layout", 6) == 0 && (size_t)(sp - c->layout_err) < sizeof key)
      snprintf(key, sizeof key, "%.*s", (int)(sp - c->layout_err), c->layout_err);
    bd_biz_errors_add(&c->errs, key, "%s", c->layout_err);
  }
  /* the users behind default_signatories (well-formed uuids only) */
  bd_buf_t arr = BD_BUF_INIT;
  bd_buf_putc(&arr, '{');
  size_t i, n = 0;
  json_t *d;
  json_array_foreach(c->defaults, i, d) {
    const char *u = json_string_value(json_object_get(d, "user_uuid"));
    if (!u || !bd_uuid_valid(bd_str_c(u))) continue;
    if (n++) bd_buf_putc(&arr, ',');
    bd_buf_puts(&arr, u);
  }
  bd_buf_putc(&arr, '}');
  char inst[24];
  bd_biz_inst_str(&c->caller, inst);
  const char *p[] = {inst, NULL, arr.data};
  static bd_pg_stmt_t S_USERS =
      BD_PG_STMT("SELECT biz_batch_check($1::bigint, $2::uuid, $3::uuid[])");
  if (bd_pg_query(bd_app.pg, &S_USERS, 3, p, on_users, c) != 0) {
    bd_app_unavailable(req);
    bd_req_release(req);
  }
  bd_buf_free(&arr);
}

/* --- rules ------------------------------------------------------------------------ */

static size_t utf8_len(const char *s) {
  size_t n = 0;
  for (; *s; s++)
    if (((unsigned char)*s & 0xc0) != 0x80) n++;
  return n;
}

/* Optional string member of at most 255 characters. */
static void opt_string(tc_t *c, const json_t *o, const char *k, const char *field_fmt, size_t i,
                       json_t *out) {
  json_t *v = json_object_get(o, k);
  char field[96];
  snprintf(field, sizeof field, field_fmt, i);
  if (!v || json_is_null(v)) {
    json_object_set_new(out, k, json_null());
  } else if (!json_is_string(v)) {
    bd_biz_errors_add(&c->errs, field, "The %s field must be a string.", field);
  } else if (utf8_len(json_string_value(v)) > 255) {
    bd_biz_errors_add(&c->errs, field, "The %s field must not be greater than 255 characters.",
                      field);
  } else {
    json_object_set(out, k, v);
  }
}

/* Shape of default_signatories, before the users are known. */
static void tc_defaults_shape(tc_t *c, const json_t *arr) {
  c->defaults = json_array();
  if (!arr || json_is_null(arr)) return;
  if (!json_is_array(arr)) {
    bd_biz_errors_add(&c->errs, "default_signatories",
                      "The default signatories field must be an array.");
    return;
  }
  if (json_array_size(arr) > MAX_DEFAULTS) {
    bd_biz_errors_add(&c->errs, "default_signatories",
                      "The default signatories field must not have more than %d items.",
                      MAX_DEFAULTS);
    return;
  }
  size_t i;
  json_t *d;
  json_array_foreach(arr, i, d) {
    char field[96];
    json_t *out = json_object();
    json_object_set_new(out, "pos", json_integer((json_int_t)i));
    if (!json_is_object(d)) {
      snprintf(field, sizeof field, "default_signatories.%zu", i);
      bd_biz_errors_add(&c->errs, field, "The %s field must be an object.", field);
      json_decref(out);
      continue;
    }
    json_t *u = json_object_get(d, "user_uuid");
    snprintf(field, sizeof field, "default_signatories.%zu.user_uuid", i);
    if (!u || json_is_null(u) || (json_is_string(u) && !json_string_length(u)))
      bd_biz_errors_add(&c->errs, field, "The %s field is required.", field);
    else if (!json_is_string(u) || !bd_uuid_valid(bd_str_c(json_string_value(u))))
      bd_biz_errors_add(&c->errs, field, "The %s field must be a valid UUID.", field);
    else
      json_object_set(out, "user_uuid", u);
    json_t *x = json_object_get(d, "signatory_index");
    snprintf(field, sizeof field, "default_signatories.%zu.signatory_index", i);
    if (!x || json_is_null(x))
      bd_biz_errors_add(&c->errs, field, "The %s field is required.", field);
    else if (!json_is_integer(x))
      bd_biz_errors_add(&c->errs, field, "The %s field must be an integer.", field);
    else
      json_object_set(out, "index", x);
    opt_string(c, d, "display_name", "default_signatories.%zu.display_name", i, out);
    opt_string(c, d, "designation", "default_signatories.%zu.designation", i, out);
    json_t *a = json_object_get(d, "auto_approve");
    snprintf(field, sizeof field, "default_signatories.%zu.auto_approve", i);
    if (a && !json_is_null(a) && !json_is_boolean(a))
      bd_biz_errors_add(&c->errs, field, "The %s field must be true or false.", field);
    json_object_set_new(out, "auto_approve", json_boolean(json_is_true(a)));
    json_array_append_new(c->defaults, out);
  }
}

/* With the users and the layout's field count known. */
static void tc_validate_defaults(tc_t *c, const json_t *users) {
  size_t n = json_array_size(c->defaults);
  if (!n) return;
  if (c->layout_err[0]) return; /* the field count is unknown */
  if (c->nfields == 0) {
    bd_biz_errors_add(&c->errs, "default_signatories", "The layout has no signatory fields.");
    return;
  }
  bool seen[MAX_DEFAULTS + 1] = {false};
  bool index_errors = false;
  size_t i;
  json_t *d;
  json_array_foreach(c->defaults, i, d) {
    char field[96];
    size_t pos = (size_t)json_integer_value(json_object_get(d, "pos"));
    const char *u = json_string_value(json_object_get(d, "user_uuid"));
    if (u) {
      snprintf(field, sizeof field, "default_signatories.%zu.user_uuid", pos);
      const json_t *usr = NULL;
      size_t k;
      json_t *x;
      json_array_foreach(users, k, x) {
        const char *v = json_string_value(json_object_get(x, "uuid"));
        if (v && strcasecmp(v, u) == 0) usr = x;
      }
      if (!usr)
        bd_biz_errors_add(&c->errs, field, "The selected %s is invalid.", field);
      else if (json_is_true(json_object_get(usr, "archived")))
        bd_biz_errors_add(&c->errs, field, "The selected signatory is archived.");
      else if (!json_is_true(json_object_get(usr, "signed")))
        bd_biz_errors_add(&c->errs, field, "The selected signatory has no signature uploaded.");
      else
        json_object_set(d, "user_id", json_object_get(usr, "id"));
    }
    json_t *ix = json_object_get(d, "index");
    if (ix) {
      json_int_t v = json_integer_value(ix);
      snprintf(field, sizeof field, "default_signatories.%zu.signatory_index", pos);
      if (v < 1 || (size_t)v > c->nfields) {
        bd_biz_errors_add(&c->errs, field, "The %s field must be between 1 and %zu.", field,
                          c->nfields);
        index_errors = true;
      } else if (seen[v]) {
        bd_biz_errors_add(&c->errs, field, "The %s field has a duplicate value.", field);
        index_errors = true;
      } else {
        seen[v] = true;
      }
    } else {
      index_errors = true;
    }
  }
  if (!index_errors && n != c->nfields)
    bd_biz_errors_add(
        &c->errs, "default_signatories",
        "The default signatories must fill every one of the layout's %zu signatory fields.",
        c->nfields);
}

/* --- store and answer ----------------------------------------------------------------- */

static void on_tpl_read(void *ud, const bd_pg_result_t *r) {
  bd_req_t *req = ud;
  if (r->err) {
    bd_app_db_error(req, r);
  } else if (PQntuples(r->res) != 1) {
    bd_biz_server_error(req, "created template not found");
  } else {
    bd_biz_send_data(req, 201, PQgetvalue(r->res, 0, 0));
  }
  bd_req_release(req);
}

static void on_inserted(void *ud, const bd_pg_result_t *r) {
  tc_t *c = ud;
  bd_req_t *req = c->req;
  if (r->err) {
    bd_app_db_error(req, r);
    bd_req_release(req);
    return;
  }
  snprintf(c->id, sizeof c->id, "%s", PQgetvalue(r->res, 0, 0));
  char inst[24];
  bd_biz_inst_str(&c->caller, inst);
  const char *p[] = {c->id, inst, bd_biz_base_url()};
  static bd_pg_stmt_t S_READ =
      BD_PG_STMT("SELECT biz_template_json(t, $3, true) FROM biz_templates t WHERE t.id = $1::uuid "
                 "AND t.institution_id = $2::bigint");
  if (bd_pg_query(bd_app.pg, &S_READ, 3, p, on_tpl_read, req) != 0) {
    bd_app_unavailable(req);
    bd_req_release(req);
  }
}

static void tc_insert(tc_t *c) {
  bd_req_t *req = c->req;
  char inst[24];
  bd_biz_inst_str(&c->caller, inst);
  char *defs = json_dumps(c->defaults, JSON_COMPACT);
  const char *name = json_string_value(json_object_get(c->body, "name"));
  const json_t *email = json_object_get(c->body, "email");
  char *email_text = email && json_is_object(email) ? json_dumps(email, JSON_COMPACT) : NULL;
  const char *p[] = {inst, name, c->layout_text, c->fields.data, defs, email_text};
  static bd_pg_stmt_t S_INSERT = BD_PG_STMT(
      "WITH t AS (INSERT INTO biz_templates (institution_id, name, layout, signatory_fields, email)"
      "           VALUES ($1::bigint, $2, $3::jsonb, $4::text[], $6::jsonb) RETURNING id),"
      " d AS (INSERT INTO biz_default_signatories (template_id, signatory_index, "
      "institution_user_id, display_name,"
      "                                            designation, auto_approve)"
      "       SELECT t.id, (x->>'index')::int, (x->>'user_id')::bigint, x->>'display_name', "
      "x->>'designation',"
      "              (x->>'auto_approve')::boolean FROM t, jsonb_array_elements($5::jsonb) x "
      "RETURNING 1)"
      " SELECT t.id, (SELECT count(*) FROM d) FROM t");
  bd_app_query(req, &S_INSERT, 6, p, on_inserted, c);
  free(defs);
  free(email_text);
}

static void tc_run(bd_req_t *req) {
  tc_t *c = req->ctx;
  const char *b = req->body.data ? req->body.data : "";
  if (bd_json_depth(b, req->body.len) > bd_app.cfg.max_json_depth) {
    bd_resp_error(req, 400, "invalid_json", "The request body nests too deeply.", NULL);
    return;
  }
  json_error_t jerr;
  c->body = json_loadb(b, req->body.len, JSON_REJECT_DUPLICATES, &jerr);
  if (!c->body || !json_is_object(c->body)) {
    char msg[256];
    snprintf(msg, sizeof msg, "The request body must be a JSON object%s%s.", c->body ? "" : ": ",
             c->body ? "" : jerr.text);
    bd_resp_error(req, 400, "invalid_json", msg, NULL);
    return;
  }
  json_t *name = json_object_get(c->body, "name");
  if (!name || json_is_null(name) || (json_is_string(name) && !json_string_length(name)))
    bd_biz_errors_add(&c->errs, "name", "The name field is required.");
  else if (!json_is_string(name))
    bd_biz_errors_add(&c->errs, "name", "The name field must be a string.");
  else if (utf8_len(json_string_value(name)) > 255)
    bd_biz_errors_add(&c->errs, "name", "The name field must not be greater than 255 characters.");
  json_t *layout = json_object_get(c->body, "layout");
  bool layout_ok = false;
  if (!layout || json_is_null(layout))
    bd_biz_errors_add(&c->errs, "layout", "The layout field is required.");
  else if (!json_is_object(layout))
    bd_biz_errors_add(&c->errs, "layout", "The layout field must be an object.");
  else
    layout_ok = true;
  tc_defaults_shape(c, json_object_get(c->body, "default_signatories"));
  bd_biz_email_block_check(json_object_get(c->body, "email"), &c->errs);
  if (!layout_ok) {
    bd_biz_errors_send(req, &c->errs);
    return;
  }
  /* the worker owns c->body until tc_parse_after; the loop does not touch it */
  c->work.work = tc_parse_work;
  c->work.after = tc_parse_after;
  c->work.data = c;
  bd_req_hold(req);
  bd_work_submit(&c->work);
}

static void tc_authed(bd_req_t *req, const bd_biz_caller_t *caller) {
  tc_t *c = bd_calloc(1, sizeof *c);
  c->req = req;
  c->caller = *caller;
  bd_biz_errors_init(&c->errs);
  req->ctx = c;
  bd_req_defer(req, tc_free, req->ctx);
  bd_idem_wrap(req, req->cred_id, tc_run);
}

void bd_biz_template_create(bd_req_t *req) {
  bd_biz_authenticate(req, "templates:manage", tc_authed);
}

/* --- GET /business/certificate-templates/{templateId}/screenshot.png ------------------
 *
 * The template's `screenshot`: its layout rendered as a PNG with sample
 * data (recipient "Recipient Name", today's date, reference PREVIEW, the
 * default signatories' names or "Signatory N", no signature images).
 * Public like the storage URL it stands for (the id is an unguessable
 * UUID; a preview holds no recipient data). Templates never change, so
 * renderings are kept in a small cache; at most PREVIEW_INFLIGHT render at
 * once (503 beyond), so previews cannot crowd out certificate rendering. */

#define PREVIEW_CACHE    4 /* cached renderings (~1.5 MB each) */
#define PREVIEW_INFLIGHT 2 /* renders at once */

typedef struct {
  char id[37];      /* template id ("" = empty slot) */
  bd_buf_t png;     /* its rendering */
  uint64_t used_ms; /* last hit, for eviction */
} preview_ent_t;

static preview_ent_t g_previews[PREVIEW_CACHE];
static int g_preview_inflight;

typedef struct {
  bd_req_t *req;       /* held while rendering */
  char id[37];         /* template id */
  json_t *layout_json; /* parsed layout (owned; the worker's while out) */
  char *institution;   /* {{InstitutionName}} */
  json_t *names;       /* [[name, designation], ...] per signatory field */
  bd_work_t work;      /* the render */
  bd_buf_t png;        /* result */
  char err[256];       /* render failure */
  char url[512];       /* verification URL shown (made on the loop) */
} pv_t;

static void pv_free(void *arg) {
  pv_t *v = arg;
  json_decref(v->layout_json);
  json_decref(v->names);
  free(v->institution);
  bd_buf_free(&v->png);
  free(v);
}

static void pv_send(bd_req_t *req, const bd_buf_t *png) {
  bd_resp_header(req, "Cache-Control", "public, max-age=86400");
  bd_resp_send(req, 200, "image/png", png->data, png->len);
}

static void pv_work(bd_work_t *w) {
  pv_t *v = w->data;
  bd_cert_layout_t *l = bd_cert_layout_parse(v->layout_json, v->err, sizeof v->err);
  if (!l) return;
  size_t n = bd_cert_layout_signatory_count(l);
  bd_cert_signatory_t *sig = bd_calloc(n ? n : 1, sizeof *sig);
  char(*fallback)[32] = bd_calloc(n ? n : 1, sizeof *fallback);
  for (size_t i = 0; i < n; i++) {
    json_t *pair = json_array_get(v->names, i);
    const char *nm = json_string_value(json_array_get(pair, 0));
    snprintf(fallback[i], sizeof fallback[i], "Signatory %zu", i + 1);
    sig[i].name = nm ? nm : fallback[i];
    sig[i].designation = json_string_value(json_array_get(pair, 1));
  }
  time_t now = time(NULL);
  struct tm tm;
  gmtime_r(&now, &tm);
  char today[16];
  strftime(today, sizeof today, "%Y-%m-%d", &tm);
  bd_cert_input_t in = {.recipient_name = "Recipient Name",
                        .recipient_email = "recipient@example.com",
                        .issue_date = today,
                        .reference_id = "PREVIEW",
                        .verification_url = v->url,
                        .institution_name = v->institution,
                        .batch_name = "Preview",
                        .custom_data = NULL,
                        .signatories = sig,
                        .nsignatories = n};
  bd_cert_output_t out;
  if (bd_cert_render(l, &in, &out, v->err, sizeof v->err) == 0) {
    v->png = out.png;
    bd_buf_init(&out.png);
    v->err[0] = '\0';
  }
  bd_cert_output_free(&out);
  free(sig);
  free(fallback);
  bd_cert_layout_free(l);
}

static void pv_after(bd_work_t *w, int status) {
  pv_t *v = w->data;
  bd_req_t *req = v->req;
  g_preview_inflight--;
  if (status == UV_ECANCELED) {
    bd_app_unavailable(req);
  } else if (v->err[0] || !v->png.len) {
    bd_biz_server_error(req, v->err[0] ? v->err : "empty preview");
  } else {
    /* keep it: replace the least recently used entry */
    preview_ent_t *e = &g_previews[0];
    for (size_t i = 0; i < PREVIEW_CACHE; i++) {
      if (!g_previews[i].id[0]) {
        e = &g_previews[i];
        break;
      }
      if (g_previews[i].used_ms < e->used_ms) e = &g_previews[i];
    }
    bd_buf_free(&e->png);
    snprintf(e->id, sizeof e->id, "%s", v->id);
    bd_buf_append(&e->png, v->png.data, v->png.len);
    e->used_ms = bd_now_ms();
    pv_send(req, &v->png);
  }
  bd_req_release(req);
}

static bd_pg_stmt_t S_PREVIEW = BD_PG_STMT(
    "SELECT t.layout::text, i.name,"
    " (SELECT json_agg(json_build_array(ds.display_name, ds.designation) ORDER BY f.n)"
    "  FROM generate_series(1, cardinality(t.signatory_fields)) f(n)"
    "  LEFT JOIN biz_default_signatories ds ON ds.template_id = t.id AND ds.signatory_index = f.n)"
    " FROM biz_templates t JOIN biz_institutions i ON i.id = t.institution_id WHERE t.id = "
    "$1::uuid");

static void on_preview_row(void *ud, const bd_pg_result_t *r) {
  bd_req_t *req = ud;
  pv_t *v = req->ctx;
  if (r->err) {
    bd_app_db_error(req, r);
  } else if (PQntuples(r->res) != 1) {
    bd_biz_not_found(req, v->id);
  } else if (g_preview_inflight >= PREVIEW_INFLIGHT) {
    bd_resp_header(req, "Retry-After", "1");
    bd_resp_error(req, 503, "busy", "Previews are being rendered; retry shortly.", NULL);
  } else {
    json_error_t jerr;
    v->layout_json = json_loads(PQgetvalue(r->res, 0, 0), 0, &jerr);
    v->institution = bd_strdup(PQgetvalue(r->res, 0, 1));
    const char *names = bd_pg_val(r->res, 0, 2);
    v->names = names ? json_loads(names, 0, &jerr) : json_array();
    if (!v->layout_json || !v->names) {
      bd_biz_server_error(req, "bad template row");
    } else {
      g_preview_inflight++;
      v->work.work = pv_work;
      v->work.after = pv_after;
      v->work.data = v;
      bd_req_hold(req);
      bd_work_submit(&v->work);
    }
  }
  bd_req_release(req);
}

void bd_biz_template_screenshot(bd_req_t *req) {
  const char *id = bd_req_param(req, 0);
  if (!bd_uuid_valid(bd_str_c(id))) {
    bd_biz_not_found(req, id);
    return;
  }
  for (size_t i = 0; i < PREVIEW_CACHE; i++) {
    if (g_previews[i].id[0] && strcasecmp(g_previews[i].id, id) == 0) {
      g_previews[i].used_ms = bd_now_ms();
      pv_send(req, &g_previews[i].png);
      return;
    }
  }
  pv_t *v = bd_calloc(1, sizeof *v);
  v->req = req;
  snprintf(v->id, sizeof v->id, "%s", id);
  snprintf(v->url, sizeof v->url, "%s/verify/PREVIEW", bd_biz_base_url());
  req->ctx = v;
  bd_req_defer(req, pv_free, v);
  const char *p[] = {v->id};
  bd_app_query(req, &S_PREVIEW, 1, p, on_preview_row, req);
}

/* --- template reads ------------------------------------------------------------- */

typedef struct {
  bd_biz_page_t pg; /* requested page */
  char extra[1024]; /* query suffix of page links (per_page, search) */
  char param[40];   /* the path id, NUL-terminated */
} tpl_ctx_t;

static tpl_ctx_t *tpl_ctx(bd_req_t *req) {
  tpl_ctx_t *c = bd_req_calloc(req, sizeof *c);
  req->ctx = c;
  return c;
}

/* search: a case-insensitive substring of the name ($5 is the LIKE pattern
 * with its wildcards escaped, or NULL). */
#define TPL_FILTER "t.institution_id = $1::bigint AND ($5::text IS NULL OR t.name ILIKE $5)"
static bd_pg_stmt_t S_TPL_LIST = BD_PG_STMT(
    "SELECT (SELECT count(*) FROM biz_templates t WHERE " TPL_FILTER "),"
    " coalesce(json_agg(biz_template_json(s.t, $4, false) ORDER BY (s.t).created_at DESC, (s.t).id "
    "DESC), '[]'),"
    " count(*)"
    " FROM (SELECT t FROM biz_templates t WHERE " TPL_FILTER
    "       ORDER BY t.created_at DESC, t.id DESC LIMIT $2::bigint OFFSET $3::bigint) s");

static void on_tpl_list(void *ud, const bd_pg_result_t *r) {
  bd_req_t *req = ud;
  tpl_ctx_t *c = req->ctx;
  bd_biz_send_page(req, r, &c->pg, c->extra);
  bd_req_release(req);
}

static void tpl_list_authed(bd_req_t *req, const bd_biz_caller_t *caller) {
  tpl_ctx_t *c = tpl_ctx(req);
  bd_biz_errors_t errs;
  bd_biz_errors_init(&errs);
  bd_biz_page_parse(req, &c->pg, &errs);
  bd_buf_t search = BD_BUF_INIT, like = BD_BUF_INIT, enc = BD_BUF_INIT;
  bool has_search = bd_req_query(req, "search", &search) && search.len;
  if (has_search && search.len > 255)
    bd_biz_errors_add(&errs, "search", "The search field must not be greater than 255 characters.");
  if (errs.n) {
    bd_buf_free(&search);
    bd_biz_errors_send(req, &errs);
    return;
  }
  bd_biz_errors_free(&errs);
  if (c->pg.per_page != BD_BIZ_PER_PAGE_DEFAULT)
    snprintf(c->extra, sizeof c->extra, "&per_page=%lld", (long long)c->pg.per_page);
  if (has_search) {
    bd_url_encode(&enc, search.data, search.len);
    size_t off = strlen(c->extra);
    snprintf(c->extra + off, sizeof c->extra - off, "&search=%s", enc.data ? enc.data : "");
    bd_buf_putc(&like, '%'); /* a substring; LIKE wildcards in it taken literally */
    for (size_t i = 0; i < search.len; i++) {
      char ch = search.data[i];
      if (ch == '%' || ch == '_' || ch == '\\') bd_buf_putc(&like, '\\');
      bd_buf_putc(&like, ch);
    }
    bd_buf_putc(&like, '%');
  }
  char inst[24], lim[24], off[24];
  bd_biz_inst_str(caller, inst);
  snprintf(lim, sizeof lim, "%lld", (long long)c->pg.per_page);
  snprintf(off, sizeof off, "%lld", (long long)c->pg.offset);
  const char *p[] = {inst, lim, off, bd_biz_base_url(), has_search ? like.data : NULL};
  bd_app_query(req, &S_TPL_LIST, 5, p, on_tpl_list, req);
  bd_buf_free(&search);
  bd_buf_free(&like);
  bd_buf_free(&enc);
}

void bd_biz_template_list(bd_req_t *req) { bd_biz_authenticate(req, "templates:view", tpl_list_authed); }

/* The template and, beside it, its institution (036), spliced in as the
 * last key so the template object keeps its own key order. */
static bd_pg_stmt_t S_TPL_GET =
    BD_PG_STMT("SELECT biz_template_json(t, $3, true), biz_institution_json(i) FROM biz_templates t"
               " JOIN biz_institutions i ON i.id = t.institution_id WHERE t.id = $1::uuid "
               "AND t.institution_id = $2::bigint");

static void on_tpl_get(void *ud, const bd_pg_result_t *r) {
  bd_req_t *req = ud;
  tpl_ctx_t *c = req->ctx;
  if (r->err) {
    bd_app_db_error(req, r);
  } else if (PQntuples(r->res) != 1) {
    bd_biz_not_found(req, c->param);
  } else {
    const char *t = PQgetvalue(r->res, 0, 0);
    size_t n = (size_t)PQgetlength(r->res, 0, 0);
    while (n && t[n - 1] != '}') n--; /* json_build_object's closing brace */
    bd_buf_t b = BD_BUF_INIT;
    bd_buf_append(&b, t, n ? n - 1 : 0);
    bd_buf_puts(&b, ", \"institution\" : ");
    bd_buf_puts(&b, PQgetvalue(r->res, 0, 1));
    bd_buf_putc(&b, '}');
    bd_biz_send_data(req, 200, b.data);
    bd_buf_free(&b);
  }
  bd_req_release(req);
}

static void tpl_get_authed(bd_req_t *req, const bd_biz_caller_t *caller) {
  tpl_ctx_t *c = tpl_ctx(req);
  const char *id = bd_req_param(req, 0);
  snprintf(c->param, sizeof c->param, "%s", id);
  if (!bd_uuid_valid(bd_str_c(id))) {
    bd_biz_not_found(req, id);
    return;
  }
  char inst[24];
  bd_biz_inst_str(caller, inst);
  const char *p[] = {id, inst, bd_biz_base_url()};
  bd_app_query(req, &S_TPL_GET, 3, p, on_tpl_get, req);
}

void bd_biz_template_get(bd_req_t *req) { bd_biz_authenticate(req, "templates:view", tpl_get_authed); }

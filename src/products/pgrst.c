/* pgrst.c: what a PostgREST client adds to an /rpc call, honoured (issue 21).
 *
 * @supabase/postgrest-js (and any PostgREST client) puts filters and
 * modifiers in the query string and headers of `/rest/v1/rpc/{fn}`:
 *
 *   col=[not.]op.value   op: eq neq gt gte lt lte like ilike is in
 *   select=a,b,alias:c   the columns of each row (* = all)
 *   order=a.desc,b.asc.nullsfirst
 *   limit=N, offset=N, header Range: from-to
 *   Accept: application/vnd.pgrst.object+json (.single(): exactly one row,
 *           else 406 PGRST116), ...;nulls=stripped, application/json
 *   Prefer: count=exact|planned|estimated (Content-Range: a-b/total),
 *           handling=strict (an unsupported preference is 400 PGRST122)
 *
 * The functions that return rows (a JSON array: the list_* functions of
 * bd_pgrst_parse's `rows`) get them all, applied in PostgREST's order:
 * filters, then order, then the range, then select. The functions that
 * return one object take select (its keys) and .single(); a filter, order,
 * limit, offset or Range on them is refused before the call (400 PGRST100),
 * as is anything this server does not implement (logic trees or/and,
 * operators such as fts or cs, embedded resources, casts, JSON paths):
 * PostgREST's error shape, never silently ignored. An Accept none of
 * whose types is served is 406 PGRST107.
 *
 * Values compare as PostgreSQL would compare the JSON value's type: numbers
 * numerically (a value that is no number is 400 22P02), strings byte-wise,
 * booleans as true/false; a null matches only is.null (SQL's three-valued
 * logic: not.eq.x does not match a null either). like/ilike take * or % for
 * any run and _ for one character.
 */
#include "products.h"

#include "app.h"

#include <jansson.h>

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#define PGRST_MAX_FILTERS 32
#define PGRST_MAX_COLS 64
#define PGRST_MAX_ORDER 8
#define PGRST_MAX_IN 100

enum { OP_EQ, OP_NEQ, OP_GT, OP_GTE, OP_LT, OP_LTE, OP_LIKE, OP_ILIKE, OP_IS, OP_IN };

typedef struct {
  char *col;
  int op;
  bool neg;
  char *val;          /* the value as given (in: the raw list) */
  char *in[PGRST_MAX_IN];
  int nin;
} filter_t;

typedef struct {
  char *col;
  bool desc, nulls_first;
} order_t;

struct bd_pgrst_s {
  bool rows;                     /* the function returns rows */
  filter_t f[PGRST_MAX_FILTERS];
  int nf;
  char *sel_col[PGRST_MAX_COLS], *sel_as[PGRST_MAX_COLS];
  int nsel;                      /* 0: every column */
  order_t ord[PGRST_MAX_ORDER];
  int nord;
  int64_t offset, limit;         /* limit -1: none */
  bool ranged;                   /* limit, offset or Range given */
  bool single, strip_nulls, count;
};

void bd_pgrst_free(bd_pgrst_t *p) {
  if (!p) return;
  for (int i = 0; i < p->nf; i++) {
    free(p->f[i].col);
    free(p->f[i].val);
    for (int k = 0; k < p->f[i].nin; k++) free(p->f[i].in[k]);
  }
  for (int i = 0; i < p->nsel; i++) free(p->sel_col[i]), free(p->sel_as[i]);
  for (int i = 0; i < p->nord; i++) free(p->ord[i].col);
  free(p);
}

static int hexv(int c) {
  return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* Percent-decodes s[0..n) ('+' is a space, as in a form-encoded query). */
static char *qdecode(const char *s, size_t n) {
  char *o = bd_malloc(n + 1), *q = o;
  for (size_t i = 0; i < n; i++) {
    if (s[i] == '+') *q++ = ' ';
    else if (s[i] == '%' && i + 2 < n && hexv(s[i + 1]) >= 0 && hexv(s[i + 2]) >= 0)
      *q++ = (char)(hexv(s[i + 1]) * 16 + hexv(s[i + 2])), i += 2;
    else *q++ = s[i];
  }
  *q = '\0';
  return o;
}

static void parse_error(bd_req_t *req, const char *what, const char *details) {
  char msg[300];
  snprintf(msg, sizeof msg, "\"failed to parse %s\"", what);
  bd_rpc_error(req, 400, "PGRST100", msg, details, NULL);
}

/* A column name this server can look up in a row: a plain identifier. */
static bool plain_col(const char *c) {
  if (!*c) return false;
  for (const char *p = c; *p; p++)
    if (!(isalnum((unsigned char)*p) || *p == '_')) return false;
  return true;
}

static bool parse_int(const char *s, int64_t *out) {
  size_t n = strlen(s);
  if (n == 0 || n > 12 || strspn(s, "0123456789") != n) return false;
  *out = strtoll(s, NULL, 10);
  return true;
}

/* in.(a,b,"c,d") */
static bool parse_in(filter_t *f) {
  const char *s = f->val;
  size_t n = strlen(s);
  if (n < 2 || s[0] != '(' || s[n - 1] != ')') return false;
  const char *p = s + 1, *end = s + n - 1;
  if (p == end) return true;
  while (p <= end) {
    if (f->nin == PGRST_MAX_IN) return false;
    bd_buf_t b = BD_BUF_INIT;
    bd_buf_puts(&b, "");
    if (*p == '"') {
      p++;
      while (p < end && *p != '"') {
        if (*p == '\\' && p + 1 < end) p++;
        bd_buf_putc(&b, *p++);
      }
      if (p >= end) {
        bd_buf_free(&b);
        return false;
      }
      p++;
    } else {
      while (p < end && *p != ',') bd_buf_putc(&b, *p++);
    }
    f->in[f->nin++] = bd_buf_detach(&b, NULL);
    if (p == end) break;
    if (*p != ',') return false;
    p++;
  }
  return true;
}

static const char *const k_ops[] = {"eq", "neq", "gt", "gte", "lt", "lte", "like", "ilike", "is", "in"};

/* col=[not.]op.value; false after answering. */
static bool add_filter(bd_req_t *req, bd_pgrst_t *p, const char *k, const char *v) {
  char what[200];
  snprintf(what, sizeof what, "filter (%.80s=%.80s)", k, v);
  if (!strcmp(k, "or") || !strcmp(k, "and") || !strcmp(k, "not.or") || !strcmp(k, "not.and")) {
    parse_error(req, what, "logic trees (or, and) are not supported by this server");
    return false;
  }
  if (!plain_col(k)) {
    parse_error(req, what, "only plain column names can be filtered here (no embedded resources, casts or JSON paths)");
    return false;
  }
  if (p->nf == PGRST_MAX_FILTERS) {
    parse_error(req, what, "too many filters");
    return false;
  }
  bool neg = false;
  if (!strncmp(v, "not.", 4)) neg = true, v += 4;
  const char *dot = strchr(v, '.');
  size_t oplen = dot ? (size_t)(dot - v) : strlen(v);
  int op = -1;
  for (size_t i = 0; i < BD_ARRAY_LEN(k_ops); i++)
    if (strlen(k_ops[i]) == oplen && !strncmp(v, k_ops[i], oplen)) op = (int)i;
  if (op < 0 || !dot) {
    char det[200];
    snprintf(det, sizeof det, "operator \"%.*s\" is not supported by this server (eq, neq, gt, gte, lt, lte, like, ilike, is, in)",
             (int)BD_MIN(oplen, 40), v);
    parse_error(req, what, det);
    return false;
  }
  filter_t *f = &p->f[p->nf++];
  f->col = bd_strdup(k);
  f->op = op;
  f->neg = neg;
  f->val = bd_strdup(dot + 1);
  if (op == OP_IN && !parse_in(f)) {
    parse_error(req, what, "in takes a list: in.(a,b,\"c,d\")");
    return false;
  }
  if (op == OP_IS && strcmp(f->val, "null") && strcmp(f->val, "true") && strcmp(f->val, "false") &&
      strcmp(f->val, "unknown")) {
    parse_error(req, what, "is takes null, true, false or unknown");
    return false;
  }
  return true;
}

static bool parse_select(bd_req_t *req, bd_pgrst_t *p, const char *v) {
  char what[160];
  snprintf(what, sizeof what, "select (%.120s)", v);
  char *dup = bd_strdup(v), *save = NULL;
  bool ok = true, star = false;
  for (char *t = strtok_r(dup, ",", &save); t && ok; t = strtok_r(NULL, ",", &save)) {
    while (*t == ' ') t++;
    if (!strcmp(t, "*")) {
      star = true; /* every column, whatever else is named */
      continue;
    }
    char *colon = strchr(t, ':');
    const char *as = t, *col = t;
    if (colon && colon[1] != ':') *colon = '\0', col = colon + 1;
    if (!plain_col(col) || !plain_col(as) || p->nsel >= PGRST_MAX_COLS) {
      parse_error(req, what, "only column names and alias:column are supported here (no embedded resources, casts, "
                             "aggregates or JSON paths)");
      ok = false;
    } else {
      p->sel_col[p->nsel] = bd_strdup(col);
      p->sel_as[p->nsel++] = bd_strdup(as);
    }
  }
  free(dup);
  if (star) {
    for (int i = 0; i < p->nsel; i++) free(p->sel_col[i]), free(p->sel_as[i]);
    p->nsel = 0;
  }
  return ok;
}

static bool parse_order(bd_req_t *req, bd_pgrst_t *p, const char *v) {
  char what[160];
  snprintf(what, sizeof what, "order (%.120s)", v);
  char *dup = bd_strdup(v), *save = NULL;
  bool ok = true;
  for (char *t = strtok_r(dup, ",", &save); t && ok; t = strtok_r(NULL, ",", &save)) {
    char *s2 = NULL, *col = strtok_r(t, ".", &s2);
    order_t o = {0};
    bool nulls_set = false;
    for (char *m = strtok_r(NULL, ".", &s2); m && ok; m = strtok_r(NULL, ".", &s2)) {
      if (!strcmp(m, "asc")) o.desc = false;
      else if (!strcmp(m, "desc")) o.desc = true;
      else if (!strcmp(m, "nullsfirst")) o.nulls_first = true, nulls_set = true;
      else if (!strcmp(m, "nullslast")) o.nulls_first = false, nulls_set = true;
      else ok = false;
    }
    if (!nulls_set) o.nulls_first = o.desc; /* PostgreSQL: NULLS LAST ascending, FIRST descending */
    if (!ok || !col || !plain_col(col) || p->nord == PGRST_MAX_ORDER) {
      parse_error(req, what, "order is column[.asc|.desc][.nullsfirst|.nullslast], comma-separated");
      ok = false;
    } else {
      o.col = bd_strdup(col);
      p->ord[p->nord++] = o;
    }
  }
  free(dup);
  return ok;
}

/* Accept: which answer the client takes; false after answering 406. */
static bool parse_accept(bd_req_t *req, bd_pgrst_t *p) {
  bd_str_t a = bd_req_header(req, "Accept");
  if (!a.len) return true;
  char *s = bd_strndup(a.p, a.len), *save = NULL;
  bool any = false;
  for (char *t = strtok_r(s, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
    while (*t == ' ') t++;
    char *semi = strchr(t, ';');
    bool stripped = semi && strstr(semi, "nulls=stripped");
    if (semi) *semi = '\0';
    for (char *e = t + strlen(t); e > t && e[-1] == ' ';) *--e = '\0';
    if (!strcmp(t, "application/vnd.pgrst.object+json") || !strcmp(t, "application/vnd.pgrst.object")) {
      p->single = true, p->strip_nulls = stripped, any = true;
      break;
    }
    if (!strcmp(t, "application/json") || !strcmp(t, "*/*") || !strcmp(t, "application/*") ||
        !strcmp(t, "application/vnd.pgrst.array+json") || !strcmp(t, "application/vnd.pgrst.array")) {
      p->strip_nulls = stripped, any = true;
      break;
    }
  }
  free(s);
  if (!any) {
    char det[200];
    snprintf(det, sizeof det, "this server answers application/json and application/vnd.pgrst.object+json, not %.*s",
             (int)BD_MIN(a.len, 100), a.p);
    bd_rpc_error(req, 406, "PGRST107", "None of these media types are available", det, NULL);
  }
  return any;
}

/* Prefer; false after answering 400 (handling=strict). */
static bool parse_prefer(bd_req_t *req, bd_pgrst_t *p) {
  bd_str_t h = bd_req_header(req, "Prefer");
  if (!h.len) return true;
  char *s = bd_strndup(h.p, h.len), *save = NULL;
  bool strict = false;
  bd_buf_t bad = BD_BUF_INIT;
  for (char *t = strtok_r(s, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
    while (*t == ' ') t++;
    for (char *e = t + strlen(t); e > t && e[-1] == ' ';) *--e = '\0';
    if (!strcmp(t, "count=exact") || !strcmp(t, "count=planned") || !strcmp(t, "count=estimated")) p->count = true;
    else if (!strcmp(t, "handling=strict")) strict = true;
    else if (!strcmp(t, "handling=lenient") || !strcmp(t, "return=representation") || !strcmp(t, "tx=commit"))
      ;
    else bd_buf_printf(&bad, "%s%s", bad.len ? ", " : "", t);
  }
  free(s);
  bool ok = !(strict && bad.len);
  if (!ok) {
    bd_buf_t det = BD_BUF_INIT;
    bd_buf_printf(&det, "Invalid preferences: %s", bad.data);
    bd_rpc_error(req, 400, "PGRST122", "Invalid preferences given with handling=strict in the Prefer header",
                 det.data, NULL);
    bd_buf_free(&det);
  }
  bd_buf_free(&bad);
  return ok;
}

/* Range: N-M or N- (items). */
static bool parse_range(bd_req_t *req, bd_pgrst_t *p) {
  bd_str_t h = bd_req_header(req, "Range");
  if (!h.len) return true;
  char r[64];
  snprintf(r, sizeof r, "%.*s", (int)BD_MIN(h.len, sizeof r - 1), h.p);
  const char *s = r;
  if (!strncmp(s, "items=", 6)) s += 6;
  char *dash = strchr(s, '-');
  int64_t from, to = -1;
  bool ok = dash != NULL;
  if (ok) {
    *dash = '\0';
    ok = parse_int(s, &from) && (!dash[1] || parse_int(dash + 1, &to)) && (to < 0 || to >= from);
  }
  if (!ok) {
    bd_rpc_error(req, 416, "PGRST103", "Requested range not satisfiable", "Range is from-to or from- (0-based rows)",
                 NULL);
    return false;
  }
  /* combined with offset/limit as PostgREST does: the intersection */
  int64_t lo = BD_MAX(p->offset, from);
  int64_t hi_lim = p->limit >= 0 ? p->offset + p->limit : INT64_MAX;
  int64_t hi_rng = to >= 0 ? to + 1 : INT64_MAX;
  int64_t hi = BD_MIN(hi_lim, hi_rng);
  p->offset = lo;
  p->limit = hi == INT64_MAX ? -1 : BD_MAX(hi - lo, 0);
  p->ranged = true;
  return true;
}

static bool reserved_arg(const char *k) { return k[0] == '_'; }

bd_pgrst_t *bd_pgrst_parse(bd_req_t *req, const char *fn, bool rows, json_t *get_args) {
  bd_pgrst_t *p = bd_calloc(1, sizeof *p);
  p->rows = rows;
  p->limit = -1;
  const char *q = req->query.p, *end = req->query.p + req->query.len;
  bool ok = true, has_offset = false;
  while (ok && q && q < end) {
    const char *amp = memchr(q, '&', (size_t)(end - q));
    const char *seg_end = amp ? amp : end;
    const char *eq = memchr(q, '=', (size_t)(seg_end - q));
    if (seg_end > q) {
      char *k = qdecode(q, (size_t)((eq ? eq : seg_end) - q));
      char *v = eq ? qdecode(eq + 1, (size_t)(seg_end - eq - 1)) : bd_strdup("");
      if (get_args && reserved_arg(k)) {
        /* a GET's arguments: numbers, true, false and null as JSON, the rest as strings */
        json_t *jv = NULL;
        char *e = NULL;
        if (*v && (isdigit((unsigned char)v[0]) || (v[0] == '-' && isdigit((unsigned char)v[1])))) {
          double d = strtod(v, &e);
          if (!*e && isfinite(d)) jv = strchr(v, '.') || strchr(v, 'e') || strchr(v, 'E') ? json_real(d) : json_integer(strtoll(v, NULL, 10));
        }
        if (!jv && !strcmp(v, "true")) jv = json_true();
        if (!jv && !strcmp(v, "false")) jv = json_false();
        if (!jv && !strcmp(v, "null")) jv = json_null();
        if (!jv) jv = json_string(v);
        if (!jv) jv = json_null(); /* not UTF-8: the function says what is wrong with null */
        json_object_set_new(get_args, k, jv);
      } else if (!strcmp(k, "select")) {
        ok = parse_select(req, p, v);
      } else if (!strcmp(k, "order")) {
        ok = parse_order(req, p, v);
      } else if (!strcmp(k, "limit")) {
        ok = parse_int(v, &p->limit);
        if (!ok) parse_error(req, "limit", "limit is a non-negative integer");
        p->ranged = true;
      } else if (!strcmp(k, "offset")) {
        ok = parse_int(v, &p->offset);
        if (!ok) parse_error(req, "offset", "offset is a non-negative integer");
        p->ranged = has_offset = true;
      } else if (!strcmp(k, "columns") || !strcmp(k, "on_conflict")) {
        parse_error(req, k, "columns and on_conflict apply to tables, not to rpc functions");
        ok = false;
      } else {
        ok = add_filter(req, p, k, v);
      }
      free(k);
      free(v);
    }
    if (!amp) break;
    q = amp + 1;
  }
  (void)has_offset;
  if (ok) ok = parse_range(req, p) && parse_accept(req, p) && parse_prefer(req, p);
  if (ok && !rows && (p->nf || p->nord || p->ranged)) {
    char det[200];
    snprintf(det, sizeof det, "%.100s returns one object, not rows: filters, order, limit, offset and Range apply to "
                              "the list functions", fn);
    bd_rpc_error(req, 400, "PGRST100", "Filters and ranges apply to functions that return rows", det,
                 !strcmp(fn, "list_mint_units") ? "page with _limit and _cursor" : NULL);
    ok = false;
  }
  if (!ok) {
    bd_pgrst_free(p);
    return NULL;
  }
  return p;
}

bool bd_pgrst_trivial(const bd_pgrst_t *p) {
  return !p || (!p->nf && !p->nsel && !p->nord && !p->ranged && !p->single && !p->strip_nulls && !p->count);
}

/* --- applying -------------------------------------------------------------- */

/* SQL LIKE with % or * for any run and _ for one character. */
static bool like(const char *s, const char *pat, bool ci) {
  for (; *pat; pat++) {
    if (*pat == '%' || *pat == '*') {
      while (pat[1] == '%' || pat[1] == '*') pat++;
      if (!pat[1]) return true;
      for (; *s; s++)
        if (like(s, pat + 1, ci)) return true;
      return false;
    }
    if (!*s) return false;
    if (*pat != '_' && (ci ? tolower((unsigned char)*pat) != tolower((unsigned char)*s) : *pat != *s)) return false;
    s++;
  }
  return !*s;
}

/* -1 unknown (a null, or a type the operator does not apply to), 0 false, 1 true;
 * -2 after answering an error (a value that is no number). */
static int cmp_value(bd_req_t *req, json_t *x, int op, const char *v) {
  if (op == OP_IS) {
    if (!strcmp(v, "null")) return json_is_null(x) || !x;
    if (!strcmp(v, "unknown")) return json_is_null(x) || !x;
    if (!x || json_is_null(x)) return 0;
    if (!json_is_boolean(x)) return -1;
    return json_is_true(x) == !strcmp(v, "true");
  }
  if (!x || json_is_null(x)) return -1;
  int c;
  if (json_is_number(x)) {
    char *e;
    double d = strtod(v, &e);
    if (!*v || *e || !isfinite(d)) {
      if (op == OP_LIKE || op == OP_ILIKE) {
        char num[64];
        snprintf(num, sizeof num, "%.17g", json_number_value(x));
        return like(num, v, op == OP_ILIKE);
      }
      char det[160];
      snprintf(det, sizeof det, "invalid input syntax for type numeric: \"%.100s\"", v);
      bd_rpc_error(req, 400, "22P02", det, NULL, NULL);
      return -2;
    }
    double n = json_number_value(x);
    c = n < d ? -1 : n > d ? 1 : 0;
  } else if (json_is_string(x)) {
    const char *s = json_string_value(x);
    if (op == OP_LIKE || op == OP_ILIKE) return like(s, v, op == OP_ILIKE);
    c = strcmp(s, v);
    c = c < 0 ? -1 : c > 0;
  } else if (json_is_boolean(x)) {
    if (strcmp(v, "true") && strcmp(v, "false")) {
      char det[160];
      snprintf(det, sizeof det, "invalid input syntax for type boolean: \"%.100s\"", v);
      bd_rpc_error(req, 400, "22P02", det, NULL, NULL);
      return -2;
    }
    c = (int)json_is_true(x) - (int)!strcmp(v, "true");
  } else {
    /* objects and arrays: equality of the JSON value */
    json_t *y = json_loads(v, JSON_DECODE_ANY, NULL);
    int eqv = y && json_equal(x, y);
    json_decref(y);
    if (op == OP_EQ) return eqv;
    if (op == OP_NEQ) return !eqv;
    return -1;
  }
  switch (op) {
  case OP_EQ: return c == 0;
  case OP_NEQ: return c != 0;
  case OP_GT: return c > 0;
  case OP_GTE: return c >= 0;
  case OP_LT: return c < 0;
  case OP_LTE: return c <= 0;
  default: return -1;
  }
}

static int eval(bd_req_t *req, const filter_t *f, json_t *row) {
  json_t *x = json_object_get(row, f->col);
  int r;
  if (f->op == OP_IN) {
    if (!x || json_is_null(x)) return -1;
    r = 0;
    for (int k = 0; k < f->nin && r != 1; k++) {
      int e = cmp_value(req, x, OP_EQ, f->in[k]);
      if (e == -2) return -2;
      if (e == 1) r = 1;
    }
  } else {
    r = cmp_value(req, x, f->op, f->val);
    if (r == -2) return -2;
  }
  if (f->neg && r >= 0) r = !r;
  return r;
}

/* Ordering two JSON values of a column: nulls as the order says, numbers
 * numerically, strings byte-wise, otherwise by type. */
static int cmp_json(json_t *a, json_t *b) {
  if (json_is_number(a) && json_is_number(b)) {
    double x = json_number_value(a), y = json_number_value(b);
    return x < y ? -1 : x > y;
  }
  if (json_is_string(a) && json_is_string(b)) {
    int c = strcmp(json_string_value(a), json_string_value(b));
    return c < 0 ? -1 : c > 0;
  }
  if (json_is_boolean(a) && json_is_boolean(b)) return (int)json_is_true(a) - (int)json_is_true(b);
  return (int)json_typeof(a) - (int)json_typeof(b);
}

static const bd_pgrst_t *g_sort; /* qsort's context (loop thread only) */

static int row_cmp(const void *pa, const void *pb) {
  json_t *a = *(json_t *const *)pa, *b = *(json_t *const *)pb;
  for (int i = 0; i < g_sort->nord; i++) {
    const order_t *o = &g_sort->ord[i];
    json_t *x = json_object_get(a, o->col), *y = json_object_get(b, o->col);
    bool xn = !x || json_is_null(x), yn = !y || json_is_null(y);
    int c;
    if (xn || yn) {
      if (xn && yn) continue;
      c = xn ? (o->nulls_first ? -1 : 1) : (o->nulls_first ? 1 : -1);
      return c;
    }
    c = cmp_json(x, y);
    if (o->desc) c = -c;
    if (c) return c;
  }
  return 0;
}

static json_t *project(const bd_pgrst_t *p, json_t *row) {
  json_t *o;
  if (p->nsel && json_is_object(row)) {
    o = json_object();
    for (int i = 0; i < p->nsel; i++) {
      json_t *v = json_object_get(row, p->sel_col[i]);
      json_object_set(o, p->sel_as[i], v ? v : json_null());
    }
  } else {
    o = json_incref(row);
  }
  if (p->strip_nulls && json_is_object(o)) {
    json_t *c = json_object();
    const char *k;
    json_t *v;
    json_object_foreach(o, k, v) if (!json_is_null(v)) json_object_set(c, k, v);
    json_decref(o);
    o = c;
  }
  return o;
}

static void send_json(bd_req_t *req, int status, const char *ctype, json_t *v) {
  char *text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
  bd_resp_send(req, status, ctype, text, strlen(text));
  free(text);
}

#define CT_JSON "application/json; charset=utf-8"
#define CT_OBJECT "application/vnd.pgrst.object+json; charset=utf-8"

void bd_pgrst_answer(bd_req_t *req, const char *fn, const bd_pgrst_t *p, const char *body, size_t len) {
  if (bd_pgrst_trivial(p)) {
    bd_resp_send(req, 200, CT_JSON, body, len);
    return;
  }
  json_t *doc = json_loadb(body, len, JSON_DECODE_ANY, NULL);
  if (!doc) {
    bd_resp_send(req, 200, CT_JSON, body, len);
    return;
  }
  if (!p->rows || !json_is_array(doc)) {
    /* one object: select and single only */
    if (p->count) bd_resp_header(req, "Content-Range", "0-0/1");
    json_t *o = project(p, doc);
    send_json(req, 200, p->single ? CT_OBJECT : CT_JSON, o);
    json_decref(o);
    json_decref(doc);
    return;
  }
  size_t n = json_array_size(doc);
  json_t **rows = bd_malloc((n ? n : 1) * sizeof *rows);
  size_t m = 0;
  /* a column filtered or ordered on that the rows do not have is PostgREST's 42703 */
  json_t *first = n ? json_array_get(doc, 0) : NULL;
  const char *missing = NULL;
  for (int i = 0; first && i < p->nf && !missing; i++)
    if (!json_object_get(first, p->f[i].col)) missing = p->f[i].col;
  for (int i = 0; first && i < p->nord && !missing; i++)
    if (!json_object_get(first, p->ord[i].col)) missing = p->ord[i].col;
  if (missing) {
    char msg[200];
    snprintf(msg, sizeof msg, "column %.60s.%.60s does not exist", fn, missing);
    bd_rpc_error(req, 400, "42703", msg, NULL, NULL);
    free(rows);
    json_decref(doc);
    return;
  }
  for (size_t i = 0; i < n; i++) {
    json_t *row = json_array_get(doc, i);
    bool keep = true;
    for (int k = 0; k < p->nf && keep; k++) {
      int r = eval(req, &p->f[k], row);
      if (r == -2) {
        free(rows);
        json_decref(doc);
        return;
      }
      keep = r == 1;
    }
    if (keep) rows[m++] = row;
  }
  if (p->nord && m > 1) {
    g_sort = p;
    qsort(rows, m, sizeof *rows, row_cmp); /* (not stable: ties keep no particular order, as in SQL) */
    g_sort = NULL;
  }
  size_t total = m;
  size_t lo = (size_t)BD_MIN((int64_t)total, p->offset);
  size_t hi = p->limit >= 0 ? (size_t)BD_MIN((int64_t)total, p->offset + p->limit) : total;
  if (p->count && p->offset > 0 && (size_t)p->offset >= total && !(total == 0 && p->offset == 0)) {
    char det[160];
    snprintf(det, sizeof det, "An offset of %lld was requested, but there are only %zu rows.", (long long)p->offset,
             total);
    bd_resp_headerf(req, "Content-Range", "*/%zu", total);
    bd_rpc_error(req, 416, "PGRST103", "Requested range not satisfiable", det, NULL);
    free(rows);
    json_decref(doc);
    return;
  }
  size_t shown = hi > lo ? hi - lo : 0;
  char total_s[24] = "*";
  if (p->count) snprintf(total_s, sizeof total_s, "%zu", total);
  if (shown) bd_resp_headerf(req, "Content-Range", "%zu-%zu/%s", lo, hi - 1, total_s);
  else bd_resp_headerf(req, "Content-Range", "*/%s", total_s);
  if (p->single) {
    if (shown != 1) {
      char det[64];
      snprintf(det, sizeof det, "The result contains %zu rows", shown);
      bd_rpc_error(req, 406, "PGRST116", "Cannot coerce the result to a single JSON object", det, NULL);
    } else {
      json_t *o = project(p, rows[lo]);
      send_json(req, 200, CT_OBJECT, o);
      json_decref(o);
    }
  } else {
    json_t *out = json_array();
    for (size_t i = lo; i < hi; i++) json_array_append_new(out, project(p, rows[i]));
    send_json(req, p->count && shown < total ? 206 : 200, CT_JSON, out);
    json_decref(out);
  }
  free(rows);
  json_decref(doc);
}

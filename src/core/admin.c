/* admin.c: the operator's command line (see admin.h): option parsing from
 * the command tables, one synchronous connection and transaction per
 * command, plain or JSON output, and the tenant and token commands, which
 * ask every surface's hooks in list order. */
#include "admin.h"

#include "auth.h"
#include "buf.h"
#include "migrate.h"
#include "surface.h"
#include "util.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#define MAX_OPTS 32

struct bd_admin {
  PGconn *db;
  const bd_admin_cmd_t *cmd;
  const bd_admin_opt_t *extra;       /* token create: the surface's options */
  const char *surface;               /* token create --surface */
  const bd_surface_def_t *const *surfaces;
  size_t nsurfaces;
  char **args;                       /* positional */
  int nargs;
  struct {
    const char *name;
    const char *val;                 /* "" for a switch */
  } given[MAX_OPTS];
  int ngiven;
  bool json;
  json_t *result;
  const char *const *columns;
  char note[256];
  int code;                          /* the first failure's BD_ADMIN_* */
  char err[1024];                    /* and its message */
};

/* --- options ---------------------------------------------------------------- */

const char *bd_admin_opt(const bd_admin_t *a, const char *name) {
  const char *v = NULL;
  for (int i = 0; i < a->ngiven; i++)
    if (!strcmp(a->given[i].name, name)) v = a->given[i].val;
  return v;
}

size_t bd_admin_opts(const bd_admin_t *a, const char *name, const char ***vals) {
  static const char *out[MAX_OPTS];
  size_t n = 0;
  for (int i = 0; i < a->ngiven; i++)
    if (!strcmp(a->given[i].name, name)) out[n++] = a->given[i].val;
  *vals = out;
  return n;
}

bool bd_admin_flag(const bd_admin_t *a, const char *name) { return bd_admin_opt(a, name) != NULL; }

const char *bd_admin_arg(const bd_admin_t *a, int i) { return i < a->nargs ? a->args[i] : NULL; }

const char *bd_admin_surface(const bd_admin_t *a) { return a->surface; }

static const bd_admin_opt_t k_json_opt = {"json", NULL, false, false, "print one JSON document instead of text"};

static const bd_admin_opt_t *find_opt(const bd_admin_opt_t *t, const char *name, size_t len) {
  for (; t && t->name; t++)
    if (strlen(t->name) == len && !strncmp(t->name, name, len)) return t;
  return NULL;
}

/* --- failures and queries --------------------------------------------------------- */

int bd_admin_code(const bd_admin_t *a) { return a->code; }

int bd_admin_fail(bd_admin_t *a, int code, const char *fmt, ...) {
  if (!a->err[0]) {
    a->code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(a->err, sizeof a->err, fmt, ap);
    va_end(ap);
  }
  return code;
}

PGresult *bd_admin_exec_bin(bd_admin_t *a, const char *sql, int n, const char *const *params, const int *lens,
                            const int *formats) {
  PGresult *r = PQexecParams(a->db, sql, n, NULL, params, lens, formats, 0);
  ExecStatusType st = PQresultStatus(r);
  if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) return r;
  const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
  const char *msg = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
  const char *detail = PQresultErrorField(r, PG_DIAG_MESSAGE_DETAIL);
  int code = state && !strcmp(state, "23505")                                 ? BD_ADMIN_ECONFLICT
             : state && (!strncmp(state, "22", 2) || !strcmp(state, "23514")) ? BD_ADMIN_EINVALID
                                                                               : BD_ADMIN_EDB;
  bd_admin_fail(a, code, "%s%s%s", msg ? msg : PQerrorMessage(a->db), detail ? ": " : "", detail ? detail : "");
  PQclear(r);
  return NULL;
}

PGresult *bd_admin_exec(bd_admin_t *a, const char *sql, int n, const char *const *params) {
  return bd_admin_exec_bin(a, sql, n, params, NULL, NULL);
}

int64_t bd_admin_tenant(bd_admin_t *a, const char *name) {
  const char *p[] = {name};
  PGresult *r = bd_admin_exec(a, "SELECT id, disabled_at IS NOT NULL FROM bd_tenants WHERE name = $1", 1, p);
  if (!r) return -1;
  int64_t id = -1;
  if (PQntuples(r) == 1 && strcmp(PQgetvalue(r, 0, 1), "t") != 0) id = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
  else if (PQntuples(r) == 1) bd_admin_fail(a, BD_ADMIN_EINVALID, "tenant \"%s\" is disabled", name);
  else bd_admin_fail(a, BD_ADMIN_ENOTFOUND, "no tenant \"%s\"", name);
  PQclear(r);
  return id;
}

char *bd_admin_read_file(bd_admin_t *a, const char *path, size_t max, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    bd_admin_fail(a, BD_ADMIN_EINVALID, "%s: %s", path, strerror(errno));
    return NULL;
  }
  bd_buf_t b = BD_BUF_INIT;
  char chunk[65536];
  size_t n;
  while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
    if (b.len + n > max) {
      fclose(f);
      bd_buf_free(&b);
      bd_admin_fail(a, BD_ADMIN_EINVALID, "%s: larger than %zu bytes", path, max);
      return NULL;
    }
    bd_buf_append(&b, chunk, n);
  }
  bool bad = ferror(f);
  fclose(f);
  if (bad) {
    bd_buf_free(&b);
    bd_admin_fail(a, BD_ADMIN_EINVALID, "%s: read error", path);
    return NULL;
  }
  *len = b.len;
  bd_buf_putc(&b, '\0');
  return bd_buf_detach(&b, NULL);
}

const char *bd_admin_own_id(const char *shown, const char *prefix) {
  size_t n = strlen(prefix);
  if (strncmp(shown, prefix, n) || strlen(shown + n) != BD_TOKEN_ID_LEN) return NULL;
  return shown + n;
}

int bd_admin_revoke_row(bd_admin_t *a, const char *table, const char *shown, const char *stored, json_t *out) {
  char sql[256];
  snprintf(sql, sizeof sql,
           "UPDATE %s SET revoked_at = CASE WHEN revoked_at IS NOT NULL AND revoked_at <= now() THEN revoked_at"
           " ELSE now() END WHERE id = $1 RETURNING bd_iso(revoked_at)",
           table);
  const char *p[] = {stored};
  PGresult *r = bd_admin_exec(a, sql, 1, p);
  if (!r) return BD_ADMIN_EDB;
  int n = PQntuples(r);
  if (n == 1) json_object_update_new(out, json_pack("{s:s, s:o}", "id", shown, "revoked_at", bd_admin_col(r, 0, 0)));
  PQclear(r);
  return n == 1 ? BD_ADMIN_OK : bd_admin_fail(a, BD_ADMIN_ENOTFOUND, "no key \"%s\"", shown);
}

int bd_admin_token_rows(bd_admin_t *a, const char *surface, const char *sql, int64_t tid, bool all,
                        const char *extra, json_t *rows) {
  char t[24], al[2] = {all ? 't' : 'f', 0};
  snprintf(t, sizeof t, "%lld", (long long)tid);
  const char *p[] = {t, al};
  PGresult *r = bd_admin_exec(a, sql, 2, p);
  if (!r) return BD_ADMIN_EDB;
  static const char *const cols[] = {"id", "tenant", "name", "grants", "created_at", "expires_at", "revoked_at",
                                     "last_used_at"};
  for (int i = 0; i < PQntuples(r); i++) {
    json_t *o = json_object();
    for (int c = 0; c < 8; c++) {
      json_object_set_new(o, cols[c],
                          c == 3 && !PQgetisnull(r, i, c) ? json_loads(PQgetvalue(r, i, c), 0, NULL) : bd_admin_col(r, i, c));
      if (c == 0) json_object_set_new(o, "surface", json_string(surface));
    }
    json_object_set_new(o, extra, bd_admin_col(r, i, 8));
    json_array_append_new(rows, o);
  }
  PQclear(r);
  return BD_ADMIN_OK;
}

json_t *bd_admin_col(PGresult *r, int row, int col) {
  return PQgetisnull(r, row, col) ? json_null() : json_string(PQgetvalue(r, row, col));
}

void bd_admin_result(bd_admin_t *a, json_t *v, const char *const *columns) {
  json_decref(a->result);
  a->result = v;
  a->columns = columns;
}

void bd_admin_note(bd_admin_t *a, const char *note) { snprintf(a->note, sizeof a->note, "%s", note); }

/* --- output ------------------------------------------------------------------ */

static char *cell(json_t *v) {
  if (!v || json_is_null(v)) return bd_strdup("-");
  if (json_is_string(v)) return bd_strdup(json_string_value(v));
  if (json_is_array(v)) {
    bd_buf_t b = BD_BUF_INIT;
    size_t i;
    json_t *e;
    json_array_foreach(v, i, e) {
      char *s = cell(e);
      bd_buf_printf(&b, "%s%s", i ? "," : "", s);
      free(s);
    }
    if (!b.len) bd_buf_puts(&b, "-");
    return bd_buf_detach(&b, NULL);
  }
  return json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
}

static void print_object(json_t *o, const char *prefix) {
  const char *k;
  json_t *v;
  json_object_foreach(o, k, v) {
    if (json_is_object(v)) {
      char p[128];
      snprintf(p, sizeof p, "%s%s.", prefix, k);
      print_object(v, p);
      continue;
    }
    char *s = cell(v);
    printf("%s%s: %s\n", prefix, k, s);
    free(s);
  }
}

static void print_table(json_t *rows, const char *const *cols) {
  size_t ncols = 0;
  while (cols[ncols]) ncols++;
  size_t nrows = json_array_size(rows);
  char **cells = bd_calloc(nrows * ncols + 1, sizeof *cells);
  size_t *w = bd_calloc(ncols + 1, sizeof *w);
  for (size_t c = 0; c < ncols; c++) w[c] = strlen(cols[c]);
  for (size_t r = 0; r < nrows; r++)
    for (size_t c = 0; c < ncols; c++) {
      char *s = cell(json_object_get(json_array_get(rows, r), cols[c]));
      cells[r * ncols + c] = s;
      if (strlen(s) > w[c]) w[c] = strlen(s);
    }
  for (size_t c = 0; c < ncols; c++) {
    char up[64];
    size_t n = strlen(cols[c]);
    for (size_t i = 0; i <= n && i < sizeof up; i++) up[i] = (char)(cols[c][i] >= 'a' && cols[c][i] <= 'z' ? cols[c][i] - 32 : cols[c][i]);
    up[sizeof up - 1] = '\0';
    printf("%-*s%s", c + 1 < ncols ? (int)w[c] : 0, up, c + 1 < ncols ? "  " : "\n");
  }
  for (size_t r = 0; r < nrows; r++)
    for (size_t c = 0; c < ncols; c++) {
      printf("%-*s%s", c + 1 < ncols ? (int)w[c] : 0, cells[r * ncols + c], c + 1 < ncols ? "  " : "\n");
      free(cells[r * ncols + c]);
    }
  free(cells);
  free(w);
}

static void print_result(bd_admin_t *a) {
  if (!a->result) return;
  if (a->json) {
    char *s = json_dumps(a->result, JSON_INDENT(2) | JSON_ENCODE_ANY);
    puts(s);
    free(s);
  } else if (json_is_array(a->result) && a->columns) {
    print_table(a->result, a->columns);
  } else if (json_is_object(a->result)) {
    print_object(a->result, "");
  }
  if (a->note[0] && !a->json) fprintf(stderr, "%s\n", a->note);
  fflush(stdout);
}

/* --- tenant commands ---------------------------------------------------------------- */

static const bd_admin_opt_t k_no_opts[] = {{NULL}};

static int tenant_create(bd_admin_t *a) {
  const char *name = bd_admin_arg(a, 0);
  size_t n = strlen(name);
  if (n == 0 || n > 100) return bd_admin_fail(a, BD_ADMIN_EINVALID, "a tenant name is 1 to 100 characters");
  const char *p[] = {name};
  PGresult *r = bd_admin_exec(a, "INSERT INTO bd_tenants (name) VALUES ($1) RETURNING id, bd_iso(created_at)", 1, p);
  if (!r) {
    if (a->code == BD_ADMIN_ECONFLICT) {
      a->err[0] = '\0';
      return bd_admin_fail(a, BD_ADMIN_ECONFLICT, "tenant \"%s\" already exists", name);
    }
    return a->code;
  }
  int64_t tid = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
  json_t *o = json_pack("{s:I, s:s, s:o}", "id", (json_int_t)tid, "name", name, "created_at", bd_admin_col(r, 0, 1));
  PQclear(r);
  for (size_t i = 0; i < a->nsurfaces; i++) {
    const bd_admin_hooks_t *h = a->surfaces[i]->admin;
    if (!h || !h->provision) continue;
    json_t *s = json_object();
    int rc = h->provision(a, tid, s);
    if (rc) {
      json_decref(s);
      json_decref(o);
      return rc;
    }
    json_object_set_new(o, a->surfaces[i]->name, s);
  }
  bd_admin_result(a, o, NULL);
  return BD_ADMIN_OK;
}

static int tenant_list(bd_admin_t *a) {
  PGresult *r = bd_admin_exec(a,
                              "SELECT id, name, CASE WHEN disabled_at IS NULL THEN 'enabled' ELSE 'disabled' END,"
                              " bd_iso(created_at), bd_iso(disabled_at) FROM bd_tenants ORDER BY id",
                              0, NULL);
  if (!r) return a->code;
  json_t *rows = json_array();
  for (int i = 0; i < PQntuples(r); i++)
    json_array_append_new(rows, json_pack("{s:I, s:o, s:o, s:o, s:o}", "id",
                                          (json_int_t)strtoll(PQgetvalue(r, i, 0), NULL, 10), "name",
                                          bd_admin_col(r, i, 1), "status", bd_admin_col(r, i, 2), "created_at",
                                          bd_admin_col(r, i, 3), "disabled_at", bd_admin_col(r, i, 4)));
  PQclear(r);
  static const char *const cols[] = {"id", "name", "status", "created_at", NULL};
  bd_admin_result(a, rows, cols);
  return BD_ADMIN_OK;
}

static int tenant_show(bd_admin_t *a) {
  const char *p[] = {bd_admin_arg(a, 0)};
  PGresult *r = bd_admin_exec(a,
                              "SELECT id, name, CASE WHEN disabled_at IS NULL THEN 'enabled' ELSE 'disabled' END,"
                              " bd_iso(created_at), bd_iso(disabled_at) FROM bd_tenants WHERE name = $1",
                              1, p);
  if (!r) return a->code;
  if (PQntuples(r) != 1) {
    PQclear(r);
    return bd_admin_fail(a, BD_ADMIN_ENOTFOUND, "no tenant \"%s\"", p[0]);
  }
  int64_t tid = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
  json_t *o = json_pack("{s:I, s:o, s:o, s:o, s:o}", "id", (json_int_t)tid, "name", bd_admin_col(r, 0, 1), "status",
                        bd_admin_col(r, 0, 2), "created_at", bd_admin_col(r, 0, 3), "disabled_at",
                        bd_admin_col(r, 0, 4));
  PQclear(r);
  for (size_t i = 0; i < a->nsurfaces; i++) {
    const bd_admin_hooks_t *h = a->surfaces[i]->admin;
    if (!h || !h->describe) continue;
    json_t *s = json_object();
    int rc = h->describe(a, tid, s);
    if (rc) {
      json_decref(s);
      json_decref(o);
      return rc;
    }
    json_object_set_new(o, a->surfaces[i]->name, s);
  }
  bd_admin_result(a, o, NULL);
  return BD_ADMIN_OK;
}

static int tenant_set_disabled(bd_admin_t *a, bool disabled) {
  const char *p[] = {bd_admin_arg(a, 0)};
  PGresult *r = bd_admin_exec(a,
                              disabled ? "UPDATE bd_tenants SET disabled_at = coalesce(disabled_at, now())"
                                         " WHERE name = $1 RETURNING id, name, bd_iso(disabled_at)"
                                       : "UPDATE bd_tenants SET disabled_at = NULL WHERE name = $1"
                                         " RETURNING id, name, bd_iso(disabled_at)",
                              1, p);
  if (!r) return a->code;
  if (PQntuples(r) != 1) {
    PQclear(r);
    return bd_admin_fail(a, BD_ADMIN_ENOTFOUND, "no tenant \"%s\"", p[0]);
  }
  bd_admin_result(a,
                  json_pack("{s:I, s:o, s:s, s:o}", "id", (json_int_t)strtoll(PQgetvalue(r, 0, 0), NULL, 10), "name",
                            bd_admin_col(r, 0, 1), "status", disabled ? "disabled" : "enabled", "disabled_at",
                            bd_admin_col(r, 0, 2)),
                  NULL);
  PQclear(r);
  return BD_ADMIN_OK;
}

static int tenant_disable(bd_admin_t *a) { return tenant_set_disabled(a, true); }
static int tenant_enable(bd_admin_t *a) { return tenant_set_disabled(a, false); }

/* --- token commands -------------------------------------------------------------- */

static const bd_admin_opt_t k_token_create_opts[] = {
    {"tenant", "NAME", false, true, "the tenant the key belongs to"},
    {"surface", "business|qr|products", false, true, "the API the key is for"},
    {"name", "TEXT", false, false, "a label shown by token list"},
    {"expires-in-days", "N", false, false, "the key ends after N days (1..3650; default: no end, or the longest "
                                           "JWT lifetime for products)"},
    {NULL}};

static const bd_surface_def_t *surface_named(bd_admin_t *a, const char *name) {
  for (size_t i = 0; i < a->nsurfaces; i++)
    if (!strcmp(a->surfaces[i]->name, name) && a->surfaces[i]->admin && a->surfaces[i]->admin->token_create)
      return a->surfaces[i];
  return NULL;
}

static int token_create(bd_admin_t *a) {
  const bd_surface_def_t *d = surface_named(a, a->surface);
  int64_t tid = bd_admin_tenant(a, bd_admin_opt(a, "tenant"));
  if (tid < 0) return a->code;
  int64_t expires_s = 0;
  const char *days = bd_admin_opt(a, "expires-in-days");
  if (days) {
    char *end;
    long long n = strtoll(days, &end, 10);
    if (*end || end == days || n < 1 || n > 3650)
      return bd_admin_fail(a, BD_ADMIN_EUSAGE, "--expires-in-days is a whole number of days, 1 to 3650");
    expires_s = n * 86400;
  }
  json_t *o = json_object();
  int rc = d->admin->token_create(a, tid, expires_s, o);
  if (rc) {
    json_decref(o);
    return rc;
  }
  json_object_set_new(o, "surface", json_string(d->name));
  json_object_set_new(o, "tenant", json_string(bd_admin_opt(a, "tenant")));
  bd_admin_result(a, o, NULL);
  bd_admin_note(a, "The token is shown only now: store it; batchd keeps only its hash.");
  return BD_ADMIN_OK;
}

static const bd_admin_opt_t k_token_list_opts[] = {
    {"tenant", "NAME", false, false, "only this tenant's keys"},
    {"surface", "business|qr|products", false, false, "only this API's keys"},
    {"all", NULL, false, false, "include revoked and expired keys"},
    {NULL}};

static int token_list(bd_admin_t *a) {
  int64_t tid = -1;
  const char *tenant = bd_admin_opt(a, "tenant"), *surface = bd_admin_opt(a, "surface");
  if (tenant) {
    const char *p[] = {tenant};
    PGresult *r = bd_admin_exec(a, "SELECT id FROM bd_tenants WHERE name = $1", 1, p);
    if (!r) return a->code;
    if (PQntuples(r) == 1) tid = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    if (tid < 0) return bd_admin_fail(a, BD_ADMIN_ENOTFOUND, "no tenant \"%s\"", tenant);
  }
  if (surface && !surface_named(a, surface))
    return bd_admin_fail(a, BD_ADMIN_EUSAGE, "--surface is one of business, qr, products");
  json_t *rows = json_array();
  for (size_t i = 0; i < a->nsurfaces; i++) {
    const bd_admin_hooks_t *h = a->surfaces[i]->admin;
    if (!h || !h->token_list || (surface && strcmp(surface, a->surfaces[i]->name))) continue;
    int rc = h->token_list(a, tid, bd_admin_flag(a, "all"), rows);
    if (rc) {
      json_decref(rows);
      return rc;
    }
  }
  static const char *const cols[] = {"id", "surface", "tenant", "name", "grants", "created_at", "expires_at",
                                     "revoked_at", "last_used_at", NULL};
  bd_admin_result(a, rows, cols);
  return BD_ADMIN_OK;
}

static int token_end(bd_admin_t *a, bool rotate) {
  const char *id = bd_admin_arg(a, 0);
  int64_t grace = 0;
  const char *g = bd_admin_opt(a, "grace");
  if (g) {
    char *end;
    long long n = strtoll(g, &end, 10);
    /* seconds, or with a unit: 90s 15m 2h 7d */
    long long mul = !*end ? 1 : !strcmp(end, "s") ? 1 : !strcmp(end, "m") ? 60 : !strcmp(end, "h") ? 3600
                                                    : !strcmp(end, "d") ? 86400 : 0;
    if (end == g || mul == 0 || n < 0 || n > 30LL * 86400 / mul)
      return bd_admin_fail(a, BD_ADMIN_EUSAGE, "--grace is a duration up to 30 days: 90, 90s, 15m, 2h or 7d");
    grace = n * mul;
  }
  for (size_t i = 0; i < a->nsurfaces; i++) {
    const bd_admin_hooks_t *h = a->surfaces[i]->admin;
    if (!h || (rotate ? !h->token_rotate : !h->token_revoke)) continue;
    json_t *o = json_object();
    int rc = rotate ? h->token_rotate(a, id, grace, o) : h->token_revoke(a, id, o);
    if (rc == BD_ADMIN_ENOTFOUND && !a->err[0]) {
      json_decref(o);
      continue;
    }
    if (rc) {
      json_decref(o);
      return rc;
    }
    json_object_set_new(o, "surface", json_string(a->surfaces[i]->name));
    bd_admin_result(a, o, NULL);
    if (rotate) bd_admin_note(a, "The new token is shown only now: store it; batchd keeps only its hash.");
    return BD_ADMIN_OK;
  }
  return bd_admin_fail(a, BD_ADMIN_ENOTFOUND, "no key \"%s\" (ids are as token list prints them)", id);
}

static int token_revoke(bd_admin_t *a) { return token_end(a, false); }
static int token_rotate(bd_admin_t *a) { return token_end(a, true); }

static const bd_admin_opt_t k_rotate_opts[] = {
    {"grace", "DURATION", false, false, "the old key keeps working this long: 90, 90s, 15m, 2h, 7d (default 0)"},
    {NULL}};

static const bd_admin_cmd_t k_core_cmds[] = {
    {"tenant", "create", "NAME", 1, k_no_opts, "create a tenant: its institution, QR workspace and brand", tenant_create},
    {"tenant", "list", NULL, 0, k_no_opts, "list the tenants", tenant_list},
    {"tenant", "show", "NAME", 1, k_no_opts, "a tenant with its objects on every surface", tenant_show},
    {"tenant", "disable", "NAME", 1, k_no_opts, "refuse every key of the tenant at once (reversible)", tenant_disable},
    {"tenant", "enable", "NAME", 1, k_no_opts, "accept the tenant's live keys again", tenant_enable},
    {"token", "create", NULL, 0, k_token_create_opts,
     "mint a key for one surface (its own options below); the secret is printed once", token_create},
    {"token", "list", NULL, 0, k_token_list_opts, "list keys (never their secrets)", token_list},
    {"token", "revoke", "ID", 1, k_no_opts, "end a key now, in every process within a second", token_revoke},
    {"token", "rotate", "ID", 1, k_rotate_opts, "mint a successor with the same grants; the old key ends after --grace",
     token_rotate},
};

/* --- dispatch ------------------------------------------------------------------ */

typedef void (*cmd_visit_fn)(void *ud, const bd_admin_cmd_t *c, const bd_surface_def_t *owner);

static void each_cmd(const bd_surface_def_t *const *surfaces, size_t n, cmd_visit_fn fn, void *ud) {
  for (size_t i = 0; i < BD_ARRAY_LEN(k_core_cmds); i++) fn(ud, &k_core_cmds[i], NULL);
  for (size_t s = 0; s < n; s++) {
    const bd_admin_hooks_t *h = surfaces[s]->admin;
    for (size_t i = 0; h && i < h->ncmds; i++) fn(ud, &h->cmds[i], surfaces[s]);
  }
}

typedef struct {
  const char *group, *verb;
  const bd_admin_cmd_t *found;
  bool group_known;
} find_t;

static void visit_find(void *ud, const bd_admin_cmd_t *c, const bd_surface_def_t *owner) {
  find_t *f = ud;
  if (strcmp(c->group, f->group)) return;
  f->group_known = true;
  if (f->verb && !strcmp(c->verb, f->verb)) f->found = c;
}

bool bd_admin_is_command(const char *group, const bd_surface_def_t *const *surfaces, size_t n) {
  find_t f = {group, NULL, NULL, false};
  each_cmd(surfaces, n, visit_find, &f);
  return f.group_known;
}

static void synopsis(FILE *out, const bd_admin_cmd_t *c, bool roff) {
  fprintf(out, roff ? ".B batchd %s %s" : "batchd %s %s", c->group, c->verb);
  if (c->args) fprintf(out, " %s", c->args);
  for (const bd_admin_opt_t *o = c->opts; o && o->name; o++) {
    if (roff) fprintf(out, " %s\\-\\-%s%s%s%s%s", o->required ? "" : "[", o->name, o->arg ? " " : "",
                      o->arg ? o->arg : "", o->required ? "" : "]", o->multi ? " ..." : "");
    else fprintf(out, " %s--%s%s%s%s%s", o->required ? "" : "[", o->name, o->arg ? " " : "", o->arg ? o->arg : "",
                 o->required ? "" : "]", o->multi ? " ..." : "");
  }
  fputs(roff ? " [\\-\\-json]\n" : " [--json]", out);
}

typedef struct {
  FILE *out;
  bool roff;
  const bd_surface_def_t *const *surfaces;
  size_t n;
} usage_t;

static void print_opts(usage_t *u, const bd_admin_opt_t *o, const char *label) {
  for (; o && o->name; o++) {
    if (u->roff) fprintf(u->out, ".RS\n.TP\n.B \\-\\-%s%s%s\n%s%s\n.RE\n", o->name, o->arg ? " " : "", o->arg ? o->arg : "",
                         label ? label : "", o->help);
    else fprintf(u->out, "      --%s%s%-*s %s%s\n", o->name, o->arg ? " " : "", (int)(28 - strlen(o->name) - (o->arg ? strlen(o->arg) + 1 : 0)),
                 o->arg ? o->arg : "", label ? label : "", o->help);
  }
}

static void visit_usage(void *ud, const bd_admin_cmd_t *c, const bd_surface_def_t *owner) {
  usage_t *u = ud;
  if (u->roff) {
    fputs(".TP\n", u->out);
    synopsis(u->out, c, true);
    fprintf(u->out, "%s\n", c->what);
  } else {
    fputs("  ", u->out);
    synopsis(u->out, c, false);
    fprintf(u->out, "\n      %s\n", c->what);
  }
  print_opts(u, c->opts, NULL);
  if (c->run == token_create)
    for (size_t s = 0; s < u->n; s++) {
      const bd_admin_hooks_t *h = u->surfaces[s]->admin;
      if (!h || !h->token_create) continue;
      char label[48];
      snprintf(label, sizeof label, "(%s) ", u->surfaces[s]->name);
      print_opts(u, h->token_opts, label);
    }
}

void bd_admin_usage(FILE *out, const bd_surface_def_t *const *surfaces, size_t n) {
  fputs("\nProvisioning (exit 0 done, 1 database, 2 usage, 3 not found, 4 already exists, 5 invalid input):\n", out);
  usage_t u = {out, false, surfaces, n};
  each_cmd(surfaces, n, visit_usage, &u);
}

void bd_admin_man(FILE *out, const bd_surface_def_t *const *surfaces, size_t n) {
  fputs(".SH PROVISIONING\n"
        "Every command runs in one transaction, prints a table or key: value lines (one JSON document with\n"
        "\\-\\-json), and exits 0 done, 1 the database failed or is not migrated, 2 usage, 3 not found, 4 already\n"
        "exists, 5 invalid input. Secrets are printed once and stored as hashes.\n",
        out);
  usage_t u = {out, true, surfaces, n};
  each_cmd(surfaces, n, visit_usage, &u);
}

/* Options from pos[1..]: --name value, --name=value, switches. */
static int parse(bd_admin_t *a, char **pos, int npos) {
  a->args = bd_calloc((size_t)npos + 1, sizeof *a->args);
  for (int i = 1; i < npos; i++) {
    const char *arg = pos[i];
    if (strncmp(arg, "--", 2) != 0) {
      a->args[a->nargs++] = pos[i];
      continue;
    }
    const char *name = arg + 2, *eq = strchr(name, '=');
    size_t len = eq ? (size_t)(eq - name) : strlen(name);
    const bd_admin_opt_t *o = find_opt(a->cmd->opts, name, len);
    if (!o && a->extra) o = find_opt(a->extra, name, len);
    if (!o && len == 4 && !strncmp(name, "json", 4)) o = &k_json_opt;
    if (!o) return bd_admin_fail(a, BD_ADMIN_EUSAGE, "unknown option \"--%.*s\" for %s %s", (int)len, name,
                                 a->cmd->group, a->cmd->verb);
    const char *v = "";
    if (o->arg) {
      if (eq) v = eq + 1;
      else if (i + 1 < npos) v = pos[++i];
      else return bd_admin_fail(a, BD_ADMIN_EUSAGE, "--%s needs %s", o->name, o->arg);
    } else if (eq) {
      return bd_admin_fail(a, BD_ADMIN_EUSAGE, "--%s takes no value", o->name);
    }
    if (!o->multi && bd_admin_opt(a, o->name) && o != &k_json_opt)
      return bd_admin_fail(a, BD_ADMIN_EUSAGE, "--%s is given twice", o->name);
    if (a->ngiven == MAX_OPTS) return bd_admin_fail(a, BD_ADMIN_EUSAGE, "too many options");
    a->given[a->ngiven].name = o->name;
    a->given[a->ngiven++].val = v;
  }
  a->json = bd_admin_flag(a, "json");
  if (a->nargs != a->cmd->nargs)
    return bd_admin_fail(a, BD_ADMIN_EUSAGE, "%s %s takes %s", a->cmd->group, a->cmd->verb,
                         a->cmd->args ? a->cmd->args : "no arguments");
  const bd_admin_opt_t *tables[] = {a->cmd->opts, a->extra};
  for (int t = 0; t < 2; t++)
    for (const bd_admin_opt_t *o = tables[t]; o && o->name; o++)
      if (o->required && !bd_admin_opt(a, o->name))
        return bd_admin_fail(a, BD_ADMIN_EUSAGE, "--%s is required", o->name);
  return BD_ADMIN_OK;
}

static int run_in_transaction(bd_admin_t *a) {
  PGresult *r = bd_admin_exec(a, "SELECT max(version) FROM bd_schema_migrations", 0, NULL);
  if (!r) {
    a->err[0] = '\0';
    return bd_admin_fail(a, BD_ADMIN_EDB, "the database is not migrated: run batchd migrate first");
  }
  int version = PQgetisnull(r, 0, 0) ? 0 : atoi(PQgetvalue(r, 0, 0));
  PQclear(r);
  if (version < bd_migrate_latest())
    return bd_admin_fail(a, BD_ADMIN_EDB, "the database schema is at version %d, this batchd needs %d: run batchd "
                         "migrate first", version, bd_migrate_latest());
  if (!(r = bd_admin_exec(a, "BEGIN", 0, NULL))) return a->code;
  PQclear(r);
  int rc = a->cmd->run(a);
  if (rc == BD_ADMIN_OK && !a->err[0]) {
    if (!(r = bd_admin_exec(a, "COMMIT", 0, NULL))) return a->code;
    PQclear(r);
    return BD_ADMIN_OK;
  }
  PQclear(PQexec(a->db, "ROLLBACK"));
  return rc ? rc : a->code ? a->code : BD_ADMIN_EDB;
}

int bd_admin_main(const char *group, char **pos, int npos, const char *conninfo, const bd_surface_def_t *const *surfaces,
                  size_t n) {
  bd_admin_t a = {.surfaces = surfaces, .nsurfaces = n};
  find_t f = {group, npos > 0 ? pos[0] : NULL, NULL, false};
  each_cmd(surfaces, n, visit_find, &f);
  int rc = BD_ADMIN_OK;
  if (!f.found) {
    fprintf(stderr, "batchd: %s: %s\n", group, f.verb ? "unknown subcommand" : "a subcommand is needed");
    usage_t u = {stderr, false, surfaces, n};
    for (size_t i = 0; i < BD_ARRAY_LEN(k_core_cmds); i++)
      if (!strcmp(k_core_cmds[i].group, group)) visit_usage(&u, &k_core_cmds[i], NULL);
    for (size_t s = 0; s < n; s++)
      for (size_t i = 0; surfaces[s]->admin && i < surfaces[s]->admin->ncmds; i++)
        if (!strcmp(surfaces[s]->admin->cmds[i].group, group)) visit_usage(&u, &surfaces[s]->admin->cmds[i], surfaces[s]);
    return BD_ADMIN_EUSAGE;
  }
  a.cmd = f.found;
  if (a.cmd->run == token_create) {
    /* the surface decides which options exist */
    for (int i = 1; i < npos; i++) {
      if (!strcmp(pos[i], "--surface") && i + 1 < npos) a.surface = pos[i + 1];
      else if (!strncmp(pos[i], "--surface=", 10)) a.surface = pos[i] + 10;
    }
    const bd_surface_def_t *d = a.surface ? surface_named(&a, a.surface) : NULL;
    if (!d) {
      fprintf(stderr, "batchd: token create: --surface is one of business, qr, products\n");
      return BD_ADMIN_EUSAGE;
    }
    a.extra = d->admin->token_opts;
  }
  rc = parse(&a, pos, npos);
  if (rc == BD_ADMIN_OK) {
    if (!*conninfo) {
      rc = bd_admin_fail(&a, BD_ADMIN_EUSAGE, "DATABASE_URL (or --database-url) is required");
    } else {
      a.db = PQconnectdb(conninfo);
      if (PQstatus(a.db) != CONNECTION_OK) {
        rc = bd_admin_fail(&a, BD_ADMIN_EDB, "cannot connect to the database: %s", PQerrorMessage(a.db));
      } else {
        PQclear(PQexec(a.db, "SET application_name = 'batchd-admin'"));
        rc = run_in_transaction(&a);
      }
      PQfinish(a.db);
    }
  }
  if (rc == BD_ADMIN_OK) {
    print_result(&a);
  } else {
    size_t len = strlen(a.err);
    while (len && (a.err[len - 1] == '\n' || a.err[len - 1] == ' ')) a.err[--len] = '\0';
    if (a.json) {
      json_t *e = json_pack("{s:{s:i, s:s}}", "error", "code", rc, "message", a.err[0] ? a.err : "failed");
      char *s = json_dumps(e, JSON_INDENT(2));
      puts(s);
      free(s);
      json_decref(e);
    }
    fprintf(stderr, "batchd: %s %s: %s\n", a.cmd->group, a.cmd->verb, a.err[0] ? a.err : "failed");
  }
  json_decref(a.result);
  free(a.args);
  return rc;
}

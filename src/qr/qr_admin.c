/* qr_admin.c: the QR surface's part of provisioning (admin.h): a tenant's
 * workspace ("default") and its API keys "qr_live_<id>_<secret>" /
 * "qr_test_<id>_<secret>", listed and ended as "key_<id>" like /v1/tokens.
 *
 * Servers cache keys; every change that ends one fires NOTIFY
 * bd_credentials (012_credentials.sql), so a revocation here reaches every
 * process within the notification's latency. Command-line process only.
 */
#include "qr_api.h"

#include "admin.h"
#include "auth.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const k_scopes[] = {"qr:read", "qr:write", "analytics:read", "tokens:manage"};

static bool workspace(bd_admin_t *a, int64_t tid, char out[24]) {
  char t[24];
  snprintf(t, sizeof t, "%lld", (long long)tid);
  const char *p[] = {t};
  PGresult *r = bd_admin_exec(a, "SELECT id FROM qr_workspaces WHERE tenant_id = $1::bigint ORDER BY id LIMIT 1", 1, p);
  if (!r) return false;
  bool ok = PQntuples(r) == 1;
  if (ok) snprintf(out, 24, "%s", PQgetvalue(r, 0, 0));
  else bd_admin_fail(a, BD_ADMIN_ENOTFOUND, "the tenant has no QR workspace");
  PQclear(r);
  return ok;
}

static int provision(bd_admin_t *a, int64_t tid, json_t *out) {
  char t[24];
  snprintf(t, sizeof t, "%lld", (long long)tid);
  const char *p[] = {t};
  PGresult *r = bd_admin_exec(a, "INSERT INTO qr_workspaces (tenant_id, name) VALUES ($1::bigint, 'default') RETURNING id",
                              1, p);
  if (!r) return BD_ADMIN_EDB;
  json_object_set_new(out, "workspace_id", json_integer(strtoll(PQgetvalue(r, 0, 0), NULL, 10)));
  PQclear(r);
  return BD_ADMIN_OK;
}

static int describe(bd_admin_t *a, int64_t tid, json_t *out) {
  char t[24];
  snprintf(t, sizeof t, "%lld", (long long)tid);
  const char *p[] = {t};
  PGresult *r = bd_admin_exec(
      a,
      "SELECT w.id, (SELECT count(*) FROM qr_api_keys k WHERE k.workspace_id = w.id"
      "   AND bd_credential_live(k.revoked_at, k.expires_at)),"
      " (SELECT count(*) FROM qr_codes c WHERE c.workspace_id = w.id)"
      "  + (SELECT coalesce(sum(cardinality(r.ids)), 0) FROM qr_batch_records r WHERE r.workspace_id = w.id),"
      " (SELECT count(*) FROM qr_batches b WHERE b.workspace_id = w.id)"
      " FROM qr_workspaces w WHERE w.tenant_id = $1::bigint ORDER BY w.id LIMIT 1",
      1, p);
  if (!r) return BD_ADMIN_EDB;
  if (PQntuples(r) == 1)
    json_object_update_new(out, json_pack("{s:I, s:I, s:I, s:I}", "workspace_id",
                                          (json_int_t)strtoll(PQgetvalue(r, 0, 0), NULL, 10), "active_keys",
                                          (json_int_t)atoll(PQgetvalue(r, 0, 1)), "qr_codes",
                                          (json_int_t)atoll(PQgetvalue(r, 0, 2)), "batches",
                                          (json_int_t)atoll(PQgetvalue(r, 0, 3))));
  PQclear(r);
  return BD_ADMIN_OK;
}

static const bd_admin_opt_t k_token_opts[] = {
    {"scope", "SCOPE", true, false, "qr:read|qr:write|analytics:read|tokens:manage, or all (qr: at least one)"},
    {"mode", "live|test", false, false, "(qr) the key's environment, default live"},
    {NULL}};

static int token_create(bd_admin_t *a, int64_t tid, int64_t expires_s, json_t *out) {
  char ws[24];
  if (!workspace(a, tid, ws)) return BD_ADMIN_ENOTFOUND;
  const char *mode = bd_admin_opt(a, "mode");
  if (!mode) mode = "live";
  if (strcmp(mode, "live") && strcmp(mode, "test"))
    return bd_admin_fail(a, BD_ADMIN_EUSAGE, "--mode is live or test");
  const char **v;
  size_t n = bd_admin_opts(a, "scope", &v);
  if (n == 0) return bd_admin_fail(a, BD_ADMIN_EUSAGE, "--scope is required (or --scope all)");
  unsigned bits = 0;
  for (size_t i = 0; i < n; i++) {
    unsigned b = 0;
    for (size_t k = 0; k < BD_ARRAY_LEN(k_scopes); k++)
      if (!strcmp(v[i], k_scopes[k])) b = 1u << k;
    if (!strcmp(v[i], "all")) b = (1u << BD_ARRAY_LEN(k_scopes)) - 1;
    if (!b) return bd_admin_fail(a, BD_ADMIN_EINVALID, "unknown scope \"%s\"", v[i]);
    bits |= b;
  }
  bd_buf_t arr = BD_BUF_INIT;
  json_t *names = json_array();
  bd_buf_putc(&arr, '{');
  for (size_t k = 0; k < BD_ARRAY_LEN(k_scopes); k++)
    if (bits & (1u << k)) {
      bd_buf_printf(&arr, "%s%s", arr.len > 1 ? "," : "", k_scopes[k]);
      json_array_append_new(names, json_string(k_scopes[k]));
    }
  bd_buf_putc(&arr, '}');
  bd_token_t t;
  bd_token_generate(!strcmp(mode, "live") ? "qr_live_" : "qr_test_", &t);
  char exp[24];
  snprintf(exp, sizeof exp, "%lld", (long long)expires_s);
  const char *name = bd_admin_opt(a, "name");
  const char *p[] = {t.id, ws, mode, arr.data, t.secret_hash, name ? name : "", exp};
  PGresult *r = bd_admin_exec(a,
                              "INSERT INTO qr_api_keys (id, workspace_id, mode, scopes, secret_hash, name, expires_at)"
                              " VALUES ($1, $2::bigint, $3, $4::text[], $5, $6,"
                              "  CASE WHEN $7::bigint > 0 THEN now() + make_interval(secs => $7::bigint) END)"
                              " RETURNING bd_iso(created_at), bd_iso(expires_at)",
                              7, p);
  bd_buf_free(&arr);
  if (!r) {
    json_decref(names);
    return BD_ADMIN_EDB;
  }
  char id[32];
  snprintf(id, sizeof id, "key_%s", t.id);
  json_object_update_new(out, json_pack("{s:s, s:s, s:s, s:o, s:o, s:o}", "id", id, "token", t.token, "environment",
                                        mode, "grants", names, "created_at", bd_admin_col(r, 0, 0), "expires_at",
                                        bd_admin_col(r, 0, 1)));
  PQclear(r);
  return BD_ADMIN_OK;
}

static int token_list(bd_admin_t *a, int64_t tid, bool all, json_t *rows) {
  return bd_admin_token_rows(a, "qr",
                             "SELECT 'key_' || k.id, tn.name, k.name, array_to_json(k.scopes)::text, bd_iso(k.created_at),"
                             " bd_iso(k.expires_at), bd_iso(k.revoked_at), bd_iso(k.last_used_at), k.mode"
                             " FROM qr_api_keys k JOIN qr_workspaces w ON w.id = k.workspace_id"
                             " JOIN bd_tenants tn ON tn.id = w.tenant_id WHERE ($1::bigint < 0 OR tn.id = $1::bigint)"
                             " AND ($2::boolean OR bd_credential_live(k.revoked_at, k.expires_at))"
                             " ORDER BY k.created_at, k.id",
                             tid, all, "environment", rows);
}

static int token_revoke(bd_admin_t *a, const char *id, json_t *out) {
  const char *k = bd_admin_own_id(id, "key_");
  return k ? bd_admin_revoke_row(a, "qr_api_keys", id, k, out) : BD_ADMIN_ENOTFOUND;
}

static int token_rotate(bd_admin_t *a, const char *id, int64_t grace_s, json_t *out) {
  const char *k = bd_admin_own_id(id, "key_");
  if (!k) return BD_ADMIN_ENOTFOUND;
  const char *p0[] = {k};
  PGresult *r = bd_admin_exec(a,
                              "SELECT mode FROM qr_api_keys WHERE id = $1 AND bd_credential_live(revoked_at, expires_at)"
                              " FOR UPDATE",
                              1, p0);
  if (!r) return BD_ADMIN_EDB;
  bool live = PQntuples(r) == 1 && !strcmp(PQgetvalue(r, 0, 0), "live");
  int found = PQntuples(r);
  PQclear(r);
  if (!found) return bd_admin_fail(a, BD_ADMIN_ENOTFOUND, "no live key \"%s\"", id);
  bd_token_t t;
  bd_token_generate(live ? "qr_live_" : "qr_test_", &t);
  char g[24];
  snprintf(g, sizeof g, "%lld", (long long)grace_s);
  const char *p[] = {k, t.id, t.secret_hash, g};
  r = bd_admin_exec(a,
                    "WITH o AS (SELECT * FROM qr_api_keys WHERE id = $1),"
                    " n AS (INSERT INTO qr_api_keys (id, workspace_id, mode, scopes, secret_hash, name, expires_at)"
                    "  SELECT $2, workspace_id, mode, scopes, $3, name, expires_at FROM o RETURNING bd_iso(expires_at) AS exp),"
                    " u AS (UPDATE qr_api_keys k SET revoked_at = now() + make_interval(secs => $4::bigint),"
                    "  rotated_to = $2 FROM o WHERE k.id = o.id RETURNING bd_iso(k.revoked_at) AS until)"
                    " SELECT n.exp, u.until FROM n, u",
                    4, p);
  if (!r) return BD_ADMIN_EDB;
  char nid[32];
  snprintf(nid, sizeof nid, "key_%s", t.id);
  json_object_update_new(out, json_pack("{s:s, s:s, s:s, s:o, s:o}", "id", nid, "token", t.token, "replaces", id,
                                        "expires_at", bd_admin_col(r, 0, 0), "old_token_ends_at", bd_admin_col(r, 0, 1)));
  PQclear(r);
  return BD_ADMIN_OK;
}

/* --- limits ----------------------------------------------------------------------- */

/* A limit option: absent keeps it (NULL *set), "none" clears it, else a
 * whole number >= 0. false: failed EUSAGE. */
static bool limit_arg(bd_admin_t *a, const char *opt, const char **val, bool *given) {
  const char *v = bd_admin_opt(a, opt);
  *given = v != NULL;
  *val = NULL;
  if (!v || !strcmp(v, "none")) return true;
  if (!*v || strspn(v, "0123456789") != strlen(v) || strlen(v) > 15) {
    bd_admin_fail(a, BD_ADMIN_EUSAGE, "--%s is a whole number or none", opt);
    return false;
  }
  *val = v;
  return true;
}

static int limits_result(bd_admin_t *a, const char *ws) {
  const char *p[] = {ws};
  PGresult *r = bd_admin_exec(a,
                              "SELECT w.id, l.max_dynamic_codes, l.max_monthly_codes,"
                              " qr_usage_json(w.id, 'live')::text, qr_usage_json(w.id, 'test')::text"
                              " FROM qr_workspaces w LEFT JOIN qr_workspace_limits l ON l.workspace_id = w.id"
                              " WHERE w.id = $1::bigint",
                              1, p);
  if (!r) return BD_ADMIN_EDB;
  json_t *live = json_loads(PQgetvalue(r, 0, 3), 0, NULL), *test = json_loads(PQgetvalue(r, 0, 4), 0, NULL);
  json_t *o = json_pack(
      "{s:I, s:o, s:o, s:I, s:I, s:I, s:I}", "workspace_id", (json_int_t)strtoll(PQgetvalue(r, 0, 0), NULL, 10),
      "max_dynamic_codes", PQgetisnull(r, 0, 1) ? json_null() : json_integer(strtoll(PQgetvalue(r, 0, 1), NULL, 10)),
      "max_monthly_codes", PQgetisnull(r, 0, 2) ? json_null() : json_integer(strtoll(PQgetvalue(r, 0, 2), NULL, 10)),
      "live_dynamic_codes", json_integer_value(json_object_get(json_object_get(live, "dynamic_codes"), "used")),
      "live_monthly_codes", json_integer_value(json_object_get(json_object_get(live, "monthly_codes"), "used")),
      "test_dynamic_codes", json_integer_value(json_object_get(json_object_get(test, "dynamic_codes"), "used")),
      "test_monthly_codes", json_integer_value(json_object_get(json_object_get(test, "monthly_codes"), "used")));
  json_decref(live);
  json_decref(test);
  PQclear(r);
  bd_admin_result(a, o, NULL);
  return BD_ADMIN_OK;
}

static int limits_set(bd_admin_t *a) {
  int64_t tid = bd_admin_tenant(a, bd_admin_opt(a, "tenant"));
  char ws[24];
  if (tid < 0 || !workspace(a, tid, ws)) return BD_ADMIN_ENOTFOUND;
  const char *dyn, *mon;
  bool dyn_given, mon_given;
  if (!limit_arg(a, "dynamic-codes", &dyn, &dyn_given) || !limit_arg(a, "monthly-codes", &mon, &mon_given))
    return BD_ADMIN_EUSAGE;
  if (!dyn_given && !mon_given)
    return bd_admin_fail(a, BD_ADMIN_EUSAGE, "give --dynamic-codes and/or --monthly-codes (a number or none)");
  const char *p[] = {ws, dyn, dyn_given ? "t" : "f", mon, mon_given ? "t" : "f"};
  PGresult *r = bd_admin_exec(a,
                              "INSERT INTO qr_workspace_limits AS l (workspace_id, max_dynamic_codes, max_monthly_codes)"
                              " VALUES ($1::bigint, $2::bigint, $4::bigint)"
                              " ON CONFLICT (workspace_id) DO UPDATE SET"
                              "  max_dynamic_codes = CASE WHEN $3::boolean THEN $2::bigint ELSE l.max_dynamic_codes END,"
                              "  max_monthly_codes = CASE WHEN $5::boolean THEN $4::bigint ELSE l.max_monthly_codes END,"
                              "  updated_at = now()",
                              5, p);
  if (!r) return BD_ADMIN_EDB;
  PQclear(r);
  return limits_result(a, ws);
}

static int limits_show(bd_admin_t *a) {
  int64_t tid = bd_admin_tenant(a, bd_admin_opt(a, "tenant"));
  char ws[24];
  if (tid < 0 || !workspace(a, tid, ws)) return BD_ADMIN_ENOTFOUND;
  return limits_result(a, ws);
}

static const bd_admin_opt_t k_limits_set_opts[] = {
    {"tenant", "NAME", false, true, NULL},
    {"dynamic-codes", "N|none", false, false, "dynamic codes the workspace may hold (each mode apart)"},
    {"monthly-codes", "N|none", false, false, "codes the workspace may create per calendar month, UTC (each mode apart)"},
    {NULL}};
static const bd_admin_opt_t k_limits_show_opts[] = {{"tenant", "NAME", false, true, NULL}, {NULL}};

static const bd_admin_cmd_t k_cmds[] = {
    {"limits", "set", NULL, 0, k_limits_set_opts,
     "set a QR workspace's limits (omitted ones are kept; none removes one); batches that would pass them are refused",
     limits_set},
    {"limits", "show", NULL, 0, k_limits_show_opts, "show a QR workspace's limits and usage", limits_show},
};

const bd_admin_hooks_t qr_admin = {
    .cmds = k_cmds,
    .ncmds = BD_ARRAY_LEN(k_cmds),
    .provision = provision,
    .describe = describe,
    .token_opts = k_token_opts,
    .token_create = token_create,
    .token_list = token_list,
    .token_revoke = token_revoke,
    .token_rotate = token_rotate,
};

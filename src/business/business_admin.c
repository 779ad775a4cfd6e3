/* business_admin.c: the /business surface's part of provisioning (admin.h):
 * a tenant's institution, its users (with signature images read from PNG
 * files), certificate templates imported from JSON files, and API tokens
 * "biz_<id>_<secret>" (listed and ended as "biz_<id>").
 *
 * Tokens are looked up in the request's own query (biz_token_lookup), with
 * no cache, so a revocation holds in every process with its COMMIT. Runs
 * in the command-line process only, on the admin connection.
 */
#include "business.h"

#include "admin.h"
#include "auth.h"
#include "cert_render.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SIGNATURE_MAX_BYTES (5u << 20)  /* a signature PNG file */
#define TEMPLATE_MAX_BYTES (16u << 20)  /* a template JSON file (layouts may embed PNGs) */
#define MAX_DEFAULTS 20

/* The tenant's institution id ("" after failing ENOTFOUND). */
static bool institution(bd_admin_t *a, int64_t tid, char out[24]) {
  char t[24];
  snprintf(t, sizeof t, "%lld", (long long)tid);
  const char *p[] = {t};
  PGresult *r = bd_admin_exec(a, "SELECT id FROM biz_institutions WHERE tenant_id = $1::bigint", 1, p);
  if (!r) return false;
  bool ok = PQntuples(r) == 1;
  if (ok) snprintf(out, 24, "%s", PQgetvalue(r, 0, 0));
  else bd_admin_fail(a, BD_ADMIN_ENOTFOUND, "the tenant has no institution");
  PQclear(r);
  return ok;
}

static int64_t tenant_of(bd_admin_t *a, char inst[24]) {
  int64_t tid = bd_admin_tenant(a, bd_admin_opt(a, "tenant"));
  if (tid < 0 || !institution(a, tid, inst)) return -1;
  return tid;
}

/* --- tenant hooks ------------------------------------------------------------------ */

static int provision(bd_admin_t *a, int64_t tid, json_t *out) {
  char t[24];
  snprintf(t, sizeof t, "%lld", (long long)tid);
  const char *p[] = {t};
  PGresult *r = bd_admin_exec(a,
                              "INSERT INTO biz_institutions (tenant_id, name)"
                              " SELECT id, name FROM bd_tenants WHERE id = $1::bigint RETURNING id",
                              1, p);
  if (!r) return BD_ADMIN_EDB;
  json_object_set_new(out, "institution_id", json_integer(strtoll(PQgetvalue(r, 0, 0), NULL, 10)));
  PQclear(r);
  return BD_ADMIN_OK;
}

static int describe(bd_admin_t *a, int64_t tid, json_t *out) {
  char t[24];
  snprintf(t, sizeof t, "%lld", (long long)tid);
  const char *p[] = {t};
  PGresult *r = bd_admin_exec(
      a,
      "SELECT i.id, i.name,"
      " (SELECT count(*) FROM biz_users u WHERE u.institution_id = i.id AND NOT u.archived),"
      " (SELECT count(*) FROM biz_templates x WHERE x.institution_id = i.id),"
      " (SELECT count(*) FROM biz_tokens k JOIN biz_users u ON u.id = k.user_id"
      "   WHERE u.institution_id = i.id AND bd_credential_live(k.revoked_at, k.expires_at)),"
      " (SELECT count(*) FROM biz_batches b WHERE b.institution_id = i.id)"
      " FROM biz_institutions i WHERE i.tenant_id = $1::bigint",
      1, p);
  if (!r) return BD_ADMIN_EDB;
  if (PQntuples(r) == 1)
    json_object_update_new(out, json_pack("{s:I, s:s, s:I, s:I, s:I, s:I}", "institution_id",
                                          (json_int_t)strtoll(PQgetvalue(r, 0, 0), NULL, 10), "institution_name",
                                          PQgetvalue(r, 0, 1), "users", (json_int_t)atoll(PQgetvalue(r, 0, 2)),
                                          "templates", (json_int_t)atoll(PQgetvalue(r, 0, 3)), "active_tokens",
                                          (json_int_t)atoll(PQgetvalue(r, 0, 4)), "batches",
                                          (json_int_t)atoll(PQgetvalue(r, 0, 5))));
  PQclear(r);
  return BD_ADMIN_OK;
}

/* --- tokens ------------------------------------------------------------------------- */

static const bd_admin_opt_t k_token_opts[] = {
    {"user", "EMAIL", false, false, "the institution user the token acts as (business: required)"},
    {"permission", "PERM", true, false,
     "batches:view|batches:create|batches:approve|templates:view|templates:manage|certificates:view|"
     "certificates:manage|webhooks:manage, or all (business: at least one)"},
    {NULL}};

/* --permission values as a text[] literal; false after failing. */
static bool permissions(bd_admin_t *a, bd_buf_t *arr, json_t *names) {
  const char **v;
  size_t n = bd_admin_opts(a, "permission", &v);
  if (n == 0) return bd_admin_fail(a, BD_ADMIN_EUSAGE, "--permission is required (or --permission all)"), false;
  uint32_t bits = 0;
  for (size_t i = 0; i < n; i++) {
    uint32_t b = !strcmp(v[i], "all") ? BD_BIZ_ALL_PERMS : bd_biz_perm_bit(v[i]);
    if (!b) return bd_admin_fail(a, BD_ADMIN_EINVALID, "unknown permission \"%s\"", v[i]), false;
    bits |= b;
  }
  bd_buf_putc(arr, '{');
  for (uint32_t b = 1; b <= BD_BIZ_ALL_PERMS; b <<= 1)
    if (bits & b) {
      if (arr->len > 1) bd_buf_putc(arr, ',');
      bd_buf_puts(arr, bd_biz_perm_name(b));
      json_array_append_new(names, json_string(bd_biz_perm_name(b)));
    }
  bd_buf_putc(arr, '}');
  return true;
}

static int token_create(bd_admin_t *a, int64_t tid, int64_t expires_s, json_t *out) {
  char inst[24];
  if (!institution(a, tid, inst)) return BD_ADMIN_ENOTFOUND;
  const char *email = bd_admin_opt(a, "user");
  if (!email) return bd_admin_fail(a, BD_ADMIN_EUSAGE, "--user EMAIL is required for a business token");
  json_t *names = json_array();
  bd_buf_t perms = BD_BUF_INIT;
  if (!permissions(a, &perms, names)) {
    json_decref(names);
    bd_buf_free(&perms);
    return bd_admin_code(a);
  }
  bd_token_t t;
  bd_token_generate(BD_BIZ_TOKEN_PREFIX, &t);
  char exp[24];
  snprintf(exp, sizeof exp, "%lld", (long long)expires_s);
  const char *name = bd_admin_opt(a, "name");
  const char *p[] = {inst, email, t.id, perms.data, t.secret_hash, name ? name : "", exp};
  PGresult *r = bd_admin_exec(a,
                              "INSERT INTO biz_tokens (id, user_id, permissions, secret_hash, name, expires_at)"
                              " SELECT $3, u.id, $4::text[], $5, $6,"
                              "  CASE WHEN $7::bigint > 0 THEN now() + make_interval(secs => $7::bigint) END"
                              " FROM biz_users u WHERE u.institution_id = $1::bigint AND lower(u.email) = lower($2)"
                              "  AND NOT u.archived"
                              " RETURNING bd_iso(created_at), bd_iso(expires_at)",
                              7, p);
  bd_buf_free(&perms);
  if (!r || PQntuples(r) != 1) {
    if (r) PQclear(r);
    json_decref(names);
    return r ? bd_admin_fail(a, BD_ADMIN_ENOTFOUND, "no active user \"%s\" in the tenant", email) : BD_ADMIN_EDB;
  }
  char id[32];
  snprintf(id, sizeof id, "%s%s", BD_BIZ_TOKEN_PREFIX, t.id);
  json_object_update_new(out, json_pack("{s:s, s:s, s:s, s:o, s:o, s:o}", "id", id, "token", t.token, "user", email,
                                        "grants", names, "created_at", bd_admin_col(r, 0, 0), "expires_at",
                                        bd_admin_col(r, 0, 1)));
  PQclear(r);
  return BD_ADMIN_OK;
}

static int token_list(bd_admin_t *a, int64_t tid, bool all, json_t *rows) {
  return bd_admin_token_rows(a, "business",
                             "SELECT 'biz_' || k.id, tn.name, k.name, array_to_json(k.permissions)::text, bd_iso(k.created_at),"
                             " bd_iso(k.expires_at), bd_iso(k.revoked_at), bd_iso(k.last_used_at), u.email"
                             " FROM biz_tokens k JOIN biz_users u ON u.id = k.user_id"
                             " JOIN biz_institutions i ON i.id = u.institution_id JOIN bd_tenants tn ON tn.id = i.tenant_id"
                             " WHERE ($1::bigint < 0 OR tn.id = $1::bigint)"
                             " AND ($2::boolean OR bd_credential_live(k.revoked_at, k.expires_at))"
                             " ORDER BY k.created_at, k.id",
                             tid, all, "user", rows);
}

static int token_revoke(bd_admin_t *a, const char *id, json_t *out) {
  const char *k = bd_admin_own_id(id, BD_BIZ_TOKEN_PREFIX);
  return k ? bd_admin_revoke_row(a, "biz_tokens", id, k, out) : BD_ADMIN_ENOTFOUND;
}

static int token_rotate(bd_admin_t *a, const char *id, int64_t grace_s, json_t *out) {
  const char *k = bd_admin_own_id(id, BD_BIZ_TOKEN_PREFIX);
  if (!k) return BD_ADMIN_ENOTFOUND;
  bd_token_t t;
  bd_token_generate(BD_BIZ_TOKEN_PREFIX, &t);
  char g[24];
  snprintf(g, sizeof g, "%lld", (long long)grace_s);
  const char *p[] = {k, t.id, t.secret_hash, g};
  PGresult *r = bd_admin_exec(
      a,
      "WITH o AS (SELECT * FROM biz_tokens WHERE id = $1 AND bd_credential_live(revoked_at, expires_at) FOR UPDATE),"
      " n AS (INSERT INTO biz_tokens (id, user_id, permissions, secret_hash, name, expires_at)"
      "  SELECT $2, user_id, permissions, $3, name, expires_at FROM o RETURNING id, bd_iso(expires_at) AS exp),"
      " u AS (UPDATE biz_tokens k SET revoked_at = now() + make_interval(secs => $4::bigint), rotated_to = $2"
      "  FROM o WHERE k.id = o.id RETURNING bd_iso(k.revoked_at) AS until)"
      " SELECT n.exp, u.until FROM n, u",
      4, p);
  if (!r) return BD_ADMIN_EDB;
  int n = PQntuples(r);
  if (n == 1) {
    char nid[32];
    snprintf(nid, sizeof nid, "%s%s", BD_BIZ_TOKEN_PREFIX, t.id);
    json_object_update_new(out, json_pack("{s:s, s:s, s:s, s:o, s:o}", "id", nid, "token", t.token, "replaces", id,
                                          "expires_at", bd_admin_col(r, 0, 0), "old_token_ends_at",
                                          bd_admin_col(r, 0, 1)));
  }
  PQclear(r);
  return n == 1 ? BD_ADMIN_OK : bd_admin_fail(a, BD_ADMIN_ENOTFOUND, "no live token \"%s\"", id);
}

/* --- users -------------------------------------------------------------------------- */

static int user_add(bd_admin_t *a) {
  char inst[24];
  if (tenant_of(a, inst) < 0) return BD_ADMIN_ENOTFOUND;
  const char *email = bd_admin_opt(a, "email"), *first = bd_admin_opt(a, "first-name"),
             *last = bd_admin_opt(a, "last-name"), *file = bd_admin_opt(a, "signature");
  const char *at = strchr(email, '@');
  if (!at || at == email || !at[1] || strchr(at + 1, '@') || strlen(email) > 254 || strpbrk(email, " \t\r\n"))
    return bd_admin_fail(a, BD_ADMIN_EINVALID, "\"%s\" is not an e-mail address", email);
  if (!*first || !*last || strlen(first) > 255 || strlen(last) > 255)
    return bd_admin_fail(a, BD_ADMIN_EINVALID, "--first-name and --last-name are 1 to 255 characters");
  const char *q[] = {inst, email};
  PGresult *r = bd_admin_exec(a, "SELECT 1 FROM biz_users WHERE institution_id = $1::bigint AND lower(email) = lower($2)",
                              2, q);
  if (!r) return BD_ADMIN_EDB;
  int taken = PQntuples(r);
  PQclear(r);
  if (taken) return bd_admin_fail(a, BD_ADMIN_ECONFLICT, "a user with the e-mail \"%s\" already exists", email);
  char *png = NULL;
  size_t png_len = 0;
  if (file) {
    if (!(png = bd_admin_read_file(a, file, SIGNATURE_MAX_BYTES, &png_len))) return BD_ADMIN_EINVALID;
    char err[256];
    bd_cert_image_t *img = bd_cert_image_decode(png, png_len, err, sizeof err);
    if (!img) {
      free(png);
      return bd_admin_fail(a, BD_ADMIN_EINVALID, "%s: not a usable signature PNG: %s", file, err);
    }
    bd_cert_image_free(img);
  }
  char name[512];
  snprintf(name, sizeof name, "%s %s", first, last);
  const char *sname = bd_admin_opt(a, "signatory-name");
  const char *p[] = {inst,  email, first, last, png, sname ? sname : name, bd_admin_opt(a, "designation"),
                     bd_admin_flag(a, "auto-approve") ? "t" : "f"};
  int lens[8] = {0, 0, 0, 0, (int)png_len, 0, 0, 0}, fmts[8] = {0, 0, 0, 0, 1, 0, 0, 0};
  r = bd_admin_exec_bin(a,
                        "INSERT INTO biz_users (institution_id, email, first_name, last_name, signature_png,"
                        " signatory_name, signatory_designation, auto_approve)"
                        " VALUES ($1::bigint, $2, $3, $4, $5::bytea, $6, $7, $8::boolean)"
                        " RETURNING uuid, bd_iso(created_at)",
                        8, p, lens, fmts);
  free(png);
  if (!r) return BD_ADMIN_EDB;
  json_t *o = json_pack("{s:o, s:s, s:s, s:s, s:s, s:o, s:b, s:b, s:o}", "uuid", bd_admin_col(r, 0, 0), "email", email,
                        "first_name", first, "last_name", last, "signatory_name", sname ? sname : name,
                        "designation", p[6] ? json_string(p[6]) : json_null(), "signature", file != NULL,
                        "auto_approve", bd_admin_flag(a, "auto-approve"), "created_at", bd_admin_col(r, 0, 1));
  PQclear(r);
  bd_admin_result(a, o, NULL);
  return BD_ADMIN_OK;
}

static int user_list(bd_admin_t *a) {
  char inst[24];
  if (tenant_of(a, inst) < 0) return BD_ADMIN_ENOTFOUND;
  const char *p[] = {inst, bd_admin_flag(a, "all") ? "t" : "f"};
  PGresult *r = bd_admin_exec(a,
                              "SELECT uuid, email, first_name, last_name, signatory_name, signatory_designation,"
                              " signature_png IS NOT NULL, auto_approve, archived, bd_iso(created_at)"
                              " FROM biz_users WHERE institution_id = $1::bigint AND ($2::boolean OR NOT archived)"
                              " ORDER BY id",
                              2, p);
  if (!r) return BD_ADMIN_EDB;
  json_t *rows = json_array();
  for (int i = 0; i < PQntuples(r); i++)
    json_array_append_new(
        rows, json_pack("{s:o, s:o, s:o, s:o, s:o, s:o, s:b, s:b, s:b, s:o}", "uuid", bd_admin_col(r, i, 0), "email",
                        bd_admin_col(r, i, 1), "first_name", bd_admin_col(r, i, 2), "last_name", bd_admin_col(r, i, 3),
                        "signatory_name", bd_admin_col(r, i, 4), "designation", bd_admin_col(r, i, 5), "signature",
                        *PQgetvalue(r, i, 6) == 't', "auto_approve", *PQgetvalue(r, i, 7) == 't', "archived",
                        *PQgetvalue(r, i, 8) == 't', "created_at", bd_admin_col(r, i, 9)));
  PQclear(r);
  static const char *const cols[] = {"uuid", "email", "first_name", "last_name", "signature", "auto_approve",
                                     "archived", NULL};
  bd_admin_result(a, rows, cols);
  return BD_ADMIN_OK;
}

static int user_archive(bd_admin_t *a) {
  char inst[24];
  if (tenant_of(a, inst) < 0) return BD_ADMIN_ENOTFOUND;
  const char *who = bd_admin_arg(a, 0);
  const char *p[] = {inst, who};
  PGresult *r = bd_admin_exec(a,
                              "UPDATE biz_users SET archived = true, updated_at = now()"
                              " WHERE institution_id = $1::bigint AND (lower(email) = lower($2) OR uuid::text = lower($2))"
                              " RETURNING uuid, email",
                              2, p);
  if (!r) return BD_ADMIN_EDB;
  int n = PQntuples(r);
  if (n == 1)
    bd_admin_result(a, json_pack("{s:o, s:o, s:b}", "uuid", bd_admin_col(r, 0, 0), "email", bd_admin_col(r, 0, 1),
                                 "archived", 1),
                    NULL);
  PQclear(r);
  return n == 1 ? BD_ADMIN_OK : bd_admin_fail(a, BD_ADMIN_ENOTFOUND, "no user \"%s\" in the tenant", who);
}

/* --- templates ------------------------------------------------------------------------ */

/* default_signatories of the file: users by e-mail or user_uuid, who must
 * be active and have a signature; indices must fill the layout's fields.
 * Appends {index, user_id, display_name, designation, auto_approve}. */
static int import_defaults(bd_admin_t *a, const char *inst, json_t *arr, size_t nfields, json_t *out) {
  if (!arr || json_is_null(arr)) return BD_ADMIN_OK;
  if (!json_is_array(arr) || json_array_size(arr) > MAX_DEFAULTS)
    return bd_admin_fail(a, BD_ADMIN_EINVALID, "default_signatories must be an array of at most %d", MAX_DEFAULTS);
  if (json_array_size(arr) && json_array_size(arr) != nfields)
    return bd_admin_fail(a, BD_ADMIN_EINVALID, "default_signatories must fill every one of the layout's %zu signatory "
                         "fields", nfields);
  bool seen[MAX_DEFAULTS + 1] = {false};
  size_t i;
  json_t *d;
  json_array_foreach(arr, i, d) {
    json_t *ix = json_object_get(d, "signatory_index");
    json_int_t v = json_is_integer(ix) ? json_integer_value(ix) : 0;
    if (v < 1 || (size_t)v > nfields || seen[v])
      return bd_admin_fail(a, BD_ADMIN_EINVALID, "default_signatories.%zu.signatory_index must be a distinct 1..%zu", i,
                           nfields);
    seen[v] = true;
    const char *who = json_string_value(json_object_get(d, "email"));
    if (!who) who = json_string_value(json_object_get(d, "user_uuid"));
    if (!who) return bd_admin_fail(a, BD_ADMIN_EINVALID, "default_signatories.%zu needs email or user_uuid", i);
    const char *p[] = {inst, who};
    PGresult *r = bd_admin_exec(a,
                                "SELECT id, archived, signature_png IS NOT NULL, signatory_name, signatory_designation"
                                " FROM biz_users WHERE institution_id = $1::bigint"
                                " AND (lower(email) = lower($2) OR uuid::text = lower($2))",
                                2, p);
    if (!r) return BD_ADMIN_EDB;
    int rc = PQntuples(r) != 1              ? bd_admin_fail(a, BD_ADMIN_EINVALID, "default_signatories.%zu: no user \"%s\"", i, who)
             : *PQgetvalue(r, 0, 1) == 't' ? bd_admin_fail(a, BD_ADMIN_EINVALID, "default_signatories.%zu: \"%s\" is archived", i, who)
             : *PQgetvalue(r, 0, 2) != 't'
                 ? bd_admin_fail(a, BD_ADMIN_EINVALID, "default_signatories.%zu: \"%s\" has no signature", i, who)
                 : BD_ADMIN_OK;
    if (rc == BD_ADMIN_OK) {
      json_t *dn = json_object_get(d, "display_name"), *de = json_object_get(d, "designation");
      json_array_append_new(
          out, json_pack("{s:I, s:I, s:o, s:o, s:b}", "index", v, "user_id",
                         (json_int_t)strtoll(PQgetvalue(r, 0, 0), NULL, 10), "display_name",
                         json_is_string(dn) ? json_copy(dn) : bd_admin_col(r, 0, 3), "designation",
                         json_is_string(de) ? json_copy(de) : bd_admin_col(r, 0, 4), "auto_approve",
                         json_is_true(json_object_get(d, "auto_approve"))));
    }
    PQclear(r);
    if (rc) return rc;
  }
  return BD_ADMIN_OK;
}

static int template_import(bd_admin_t *a) {
  char inst[24];
  if (tenant_of(a, inst) < 0) return BD_ADMIN_ENOTFOUND;
  const char *file = bd_admin_arg(a, 0);
  size_t len;
  char *text = bd_admin_read_file(a, file, TEMPLATE_MAX_BYTES, &len);
  if (!text) return BD_ADMIN_EINVALID;
  json_error_t jerr;
  json_t *doc = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
  free(text);
  if (!json_is_object(doc)) {
    json_decref(doc);
    return bd_admin_fail(a, BD_ADMIN_EINVALID, "%s: not a JSON object (%s, line %d)", file, jerr.text, jerr.line);
  }
  int rc = BD_ADMIN_OK;
  const char *name = json_string_value(json_object_get(doc, "name"));
  if (!name || !*name || strlen(name) > 255) rc = bd_admin_fail(a, BD_ADMIN_EINVALID, "%s: name is 1 to 255 characters", file);
  char err[512];
  bd_cert_layout_t *l = rc ? NULL : bd_cert_layout_parse(json_object_get(doc, "layout"), err, sizeof err);
  if (!rc && !l) rc = bd_admin_fail(a, BD_ADMIN_EINVALID, "%s: %s", file, err);
  bd_buf_t fields = BD_BUF_INIT;
  json_t *fnames = json_array(), *defaults = json_array();
  size_t nfields = 0;
  if (!rc) {
    nfields = bd_cert_layout_signatory_count(l);
    bd_buf_putc(&fields, '{');
    for (size_t i = 0; i < nfields; i++) {
      bd_buf_printf(&fields, "%s%s", i ? "," : "", bd_cert_layout_signatory_field(l, i));
      json_array_append_new(fnames, json_string(bd_cert_layout_signatory_field(l, i)));
    }
    bd_buf_putc(&fields, '}');
    rc = import_defaults(a, inst, json_object_get(doc, "default_signatories"), nfields, defaults);
  }
  bd_cert_layout_free(l);
  if (!rc) {
    char *layout = json_dumps(json_object_get(doc, "layout"), JSON_COMPACT);
    char *defs = json_dumps(defaults, JSON_COMPACT);
    const char *p[] = {inst, name, layout, fields.data, defs};
    PGresult *r = bd_admin_exec(
        a,
        "WITH t AS (INSERT INTO biz_templates (institution_id, name, layout, signatory_fields)"
        "  VALUES ($1::bigint, $2, $3::jsonb, $4::text[]) RETURNING id, created_at),"
        " d AS (INSERT INTO biz_default_signatories (template_id, signatory_index, institution_user_id, display_name,"
        "  designation, auto_approve) SELECT t.id, (x->>'index')::int, (x->>'user_id')::bigint, x->>'display_name',"
        "  x->>'designation', (x->>'auto_approve')::boolean FROM t, jsonb_array_elements($5::jsonb) x RETURNING 1)"
        " SELECT t.id, bd_iso(t.created_at), (SELECT count(*) FROM d) FROM t",
        5, p);
    free(layout);
    free(defs);
    if (!r) {
      rc = BD_ADMIN_EDB;
    } else {
      bd_admin_result(a,
                      json_pack("{s:o, s:s, s:O, s:I, s:o}", "id", bd_admin_col(r, 0, 0), "name", name,
                                "signatory_fields", fnames, "default_signatories", (json_int_t)atoll(PQgetvalue(r, 0, 2)),
                                "created_at", bd_admin_col(r, 0, 1)),
                      NULL);
      PQclear(r);
    }
  }
  json_decref(fnames);
  json_decref(defaults);
  json_decref(doc);
  bd_buf_free(&fields);
  return rc;
}

/* --- the table ---------------------------------------------------------------------------- */

static const bd_admin_opt_t k_user_add_opts[] = {
    {"tenant", "NAME", false, true, "the tenant whose institution the user joins"},
    {"email", "EMAIL", false, true, "unique within the institution"},
    {"first-name", "TEXT", false, true, NULL},
    {"last-name", "TEXT", false, true, NULL},
    {"signature", "FILE.png", false, false, "the signature image certificates show (PNG, at most 5 MiB)"},
    {"signatory-name", "TEXT", false, false, "printed under the signature (default: first and last name)"},
    {"designation", "TEXT", false, false, "printed under the name"},
    {"auto-approve", NULL, false, false, "batches naming this signatory need no approval from them"},
    {NULL}};
static const bd_admin_opt_t k_user_list_opts[] = {
    {"tenant", "NAME", false, true, NULL}, {"all", NULL, false, false, "include archived users"}, {NULL}};
static const bd_admin_opt_t k_tenant_opt[] = {{"tenant", "NAME", false, true, NULL}, {NULL}};

static const bd_admin_cmd_t k_cmds[] = {
    {"user", "add", NULL, 0, k_user_add_opts, "add an institution user (a signatory when given a signature)", user_add},
    {"user", "list", NULL, 0, k_user_list_opts, "list the institution's users", user_list},
    {"user", "archive", "EMAIL|UUID", 1, k_tenant_opt, "archive a user: their tokens stop working at once",
     user_archive},
    {"template", "import", "FILE.json", 1, k_tenant_opt,
     "add a certificate template: {name, layout, default_signatories: [{email|user_uuid, signatory_index, ...}]}",
     template_import},
};

const bd_admin_hooks_t bd_biz_admin = {
    .provision = provision,
    .describe = describe,
    .token_opts = k_token_opts,
    .token_create = token_create,
    .token_list = token_list,
    .token_revoke = token_revoke,
    .token_rotate = token_rotate,
    .cmds = k_cmds,
    .ncmds = BD_ARRAY_LEN(k_cmds),
};

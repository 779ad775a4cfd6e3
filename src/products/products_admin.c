/* products_admin.c: the /rpc surface's part of provisioning (admin.h): a
 * tenant's brand, and /rpc JWTs (HS256 with BATCHD_JWT_SECRET) for a brand
 * member, listed and ended as "jwt_<id>", the JWT's jti.
 *
 * A JWT minted here names its subject (--subject, default its own id) as a
 * member of the brand with --role, and is recorded in pp_tokens; every /rpc
 * call checks that record in its own statement (pp_caller), so revoking
 * holds in every process at once. JWTs from an external identity provider
 * (same secret, no jti of ours) are checked by signature, exp and brand
 * membership only. Command-line process only.
 */
#include "products.h"

#include "admin.h"
#include "app.h"
#include "auth.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_TTL_S (30 * 86400)

static bool brand(bd_admin_t *a, int64_t tid, char out[40]) {
  char t[24];
  snprintf(t, sizeof t, "%lld", (long long)tid);
  const char *p[] = {t};
  PGresult *r = bd_admin_exec(a, "SELECT id FROM pp_brands WHERE tenant_id = $1::bigint ORDER BY created_at LIMIT 1",
                              1, p);
  if (!r) return false;
  bool ok = PQntuples(r) == 1;
  if (ok) snprintf(out, 40, "%s", PQgetvalue(r, 0, 0));
  else bd_admin_fail(a, BD_ADMIN_ENOTFOUND, "the tenant has no brand");
  PQclear(r);
  return ok;
}

static int provision(bd_admin_t *a, int64_t tid, json_t *out) {
  char t[24];
  snprintf(t, sizeof t, "%lld", (long long)tid);
  const char *p[] = {t};
  PGresult *r = bd_admin_exec(a,
                              "INSERT INTO pp_brands (tenant_id, name) SELECT id, name FROM bd_tenants"
                              " WHERE id = $1::bigint RETURNING id",
                              1, p);
  if (!r) return BD_ADMIN_EDB;
  json_object_set_new(out, "brand_id", bd_admin_col(r, 0, 0));
  PQclear(r);
  return BD_ADMIN_OK;
}

static int describe(bd_admin_t *a, int64_t tid, json_t *out) {
  char t[24];
  snprintf(t, sizeof t, "%lld", (long long)tid);
  const char *p[] = {t};
  PGresult *r = bd_admin_exec(
      a,
      "SELECT b.id, (SELECT count(*) FROM pp_members m WHERE m.brand_id = b.id),"
      " (SELECT count(*) FROM pp_products x WHERE x.brand_id = b.id),"
      " (SELECT count(*) FROM pp_tokens k WHERE k.brand_id = b.id AND bd_credential_live(k.revoked_at, k.expires_at))"
      " FROM pp_brands b WHERE b.tenant_id = $1::bigint ORDER BY b.created_at LIMIT 1",
      1, p);
  if (!r) return BD_ADMIN_EDB;
  if (PQntuples(r) == 1)
    json_object_update_new(out, json_pack("{s:o, s:I, s:I, s:I}", "brand_id", bd_admin_col(r, 0, 0), "members",
                                          (json_int_t)atoll(PQgetvalue(r, 0, 1)), "products",
                                          (json_int_t)atoll(PQgetvalue(r, 0, 2)), "active_tokens",
                                          (json_int_t)atoll(PQgetvalue(r, 0, 3))));
  PQclear(r);
  return BD_ADMIN_OK;
}

static const bd_admin_opt_t k_token_opts[] = {
    {"role", "owner|admin|editor|viewer", false, false, "(products) the subject's role in the brand: required"},
    {"subject", "SUB", false, false, "(products) the JWT's sub, a brand member (default: the token's own id)"},
    {NULL}};

/* Signs the JWT of token `id` for sub, valid until exp (Unix seconds). */
static char *sign(const char *id, const char *sub, int64_t exp) {
  char jti[32];
  snprintf(jti, sizeof jti, "jwt_%s", id);
  json_int_t now = (json_int_t)(bd_wall_us() / 1000000);
  json_t *claims = json_pack("{s:s, s:s, s:I, s:I, s:s}", "sub", sub, "jti", jti, "iat", now, "exp", (json_int_t)exp,
                             "role", "authenticated");
  bd_buf_t b = BD_BUF_INIT;
  bd_jwt_sign(&b, claims, bd_app.jwt_key, bd_app.jwt_key_len);
  json_decref(claims);
  return bd_buf_detach(&b, NULL);
}

static int need_secret(bd_admin_t *a) {
  return bd_admin_fail(a, BD_ADMIN_EUSAGE, "/rpc tokens are signed with BATCHD_JWT_SECRET: set it (as the server has it)");
}

static int token_create(bd_admin_t *a, int64_t tid, int64_t expires_s, json_t *out) {
  if (!bd_app.jwt_key) return need_secret(a);
  char b[40];
  if (!brand(a, tid, b)) return BD_ADMIN_ENOTFOUND;
  const char *role = bd_admin_opt(a, "role");
  if (!role) return bd_admin_fail(a, BD_ADMIN_EUSAGE, "--role is required for a products token");
  if (strcmp(role, "owner") && strcmp(role, "admin") && strcmp(role, "editor") && strcmp(role, "viewer"))
    return bd_admin_fail(a, BD_ADMIN_EINVALID, "--role is owner, admin, editor or viewer");
  int64_t cap = bd_app.cfg.jwt_max_ttl_s;
  if (expires_s > cap)
    return bd_admin_fail(a, BD_ADMIN_EINVALID, "the server refuses JWTs living longer than BATCHD_JWT_MAX_TTL_S (%lld s)",
                         (long long)cap);
  if (!expires_s) expires_s = cap < DEFAULT_TTL_S ? cap : DEFAULT_TTL_S;
  bd_token_t t; /* only its id is used: the JWT is the secret */
  bd_token_generate("jwt_", &t);
  char self[32];
  snprintf(self, sizeof self, "jwt_%s", t.id);
  const char *sub = bd_admin_opt(a, "subject");
  if (!sub) sub = self;
  if (!*sub || strlen(sub) > 200) return bd_admin_fail(a, BD_ADMIN_EINVALID, "--subject is 1 to 200 characters");
  const char *q[] = {b, sub, role};
  PGresult *r = bd_admin_exec(a,
                              "WITH i AS (INSERT INTO pp_members (brand_id, user_id, role) VALUES ($1::uuid, $2, $3)"
                              "  ON CONFLICT (brand_id, user_id) DO NOTHING RETURNING role)"
                              " SELECT role FROM i UNION ALL SELECT role FROM pp_members"
                              "  WHERE brand_id = $1::uuid AND user_id = $2 AND NOT EXISTS (SELECT 1 FROM i)",
                              3, q);
  if (!r) return BD_ADMIN_EDB;
  bool same = PQntuples(r) == 1 && !strcmp(PQgetvalue(r, 0, 0), role);
  char had[16];
  snprintf(had, sizeof had, "%s", PQntuples(r) == 1 ? PQgetvalue(r, 0, 0) : "");
  PQclear(r);
  if (!same)
    return bd_admin_fail(a, BD_ADMIN_ECONFLICT, "\"%s\" is already a member of the brand as %s", sub, had);
  int64_t exp = (int64_t)(bd_wall_us() / 1000000) + expires_s;
  char e[24];
  snprintf(e, sizeof e, "%lld", (long long)exp);
  const char *name = bd_admin_opt(a, "name");
  const char *p[] = {t.id, b, sub, role, name ? name : "", e};
  r = bd_admin_exec(a,
                    "INSERT INTO pp_tokens (id, brand_id, sub, role, name, expires_at)"
                    " VALUES ($1, $2::uuid, $3, $4, $5, to_timestamp($6::bigint)) RETURNING bd_iso(created_at),"
                    " bd_iso(expires_at)",
                    6, p);
  if (!r) return BD_ADMIN_EDB;
  char *jwt = sign(t.id, sub, exp);
  json_object_update_new(out, json_pack("{s:s, s:s, s:s, s:s, s:[s], s:o, s:o}", "id", self, "token", jwt, "subject",
                                        sub, "brand_id", b, "grants", role, "created_at", bd_admin_col(r, 0, 0),
                                        "expires_at", bd_admin_col(r, 0, 1)));
  free(jwt);
  PQclear(r);
  return BD_ADMIN_OK;
}

static int token_list(bd_admin_t *a, int64_t tid, bool all, json_t *rows) {
  return bd_admin_token_rows(a, "products",
                             "SELECT 'jwt_' || k.id, tn.name, k.name, json_build_array(k.role)::text, bd_iso(k.created_at),"
                             " bd_iso(k.expires_at), bd_iso(k.revoked_at), NULL, k.sub"
                             " FROM pp_tokens k JOIN pp_brands b ON b.id = k.brand_id"
                             " JOIN bd_tenants tn ON tn.id = b.tenant_id WHERE ($1::bigint < 0 OR tn.id = $1::bigint)"
                             " AND ($2::boolean OR bd_credential_live(k.revoked_at, k.expires_at))"
                             " ORDER BY k.created_at, k.id",
                             tid, all, "subject", rows);
}

static int token_revoke(bd_admin_t *a, const char *id, json_t *out) {
  const char *k = bd_admin_own_id(id, "jwt_");
  return k ? bd_admin_revoke_row(a, "pp_tokens", id, k, out) : BD_ADMIN_ENOTFOUND;
}

static int token_rotate(bd_admin_t *a, const char *id, int64_t grace_s, json_t *out) {
  const char *k = bd_admin_own_id(id, "jwt_");
  if (!k) return BD_ADMIN_ENOTFOUND;
  if (!bd_app.jwt_key) return need_secret(a);
  bd_token_t t;
  bd_token_generate("jwt_", &t);
  char g[24], cap[24];
  snprintf(g, sizeof g, "%lld", (long long)grace_s);
  snprintf(cap, sizeof cap, "%lld", (long long)bd_app.cfg.jwt_max_ttl_s);
  /* the successor lives as long as the old one was meant to, from now */
  const char *p[] = {k, t.id, g, cap};
  PGresult *r = bd_admin_exec(
      a,
      "WITH o AS (SELECT * FROM pp_tokens WHERE id = $1 AND bd_credential_live(revoked_at, expires_at) FOR UPDATE),"
      " n AS (INSERT INTO pp_tokens (id, brand_id, sub, role, name, expires_at)"
      "  SELECT $2, brand_id, sub, role, name, date_trunc('second', now() + least(expires_at - created_at,"
      "   make_interval(secs => $4::bigint))) FROM o"
      "  RETURNING sub, extract(epoch FROM expires_at)::bigint AS exp, bd_iso(expires_at) AS exp_s),"
      " u AS (UPDATE pp_tokens k SET revoked_at = now() + make_interval(secs => $3::bigint), rotated_to = $2"
      "  FROM o WHERE k.id = o.id RETURNING bd_iso(k.revoked_at) AS until)"
      " SELECT n.sub, n.exp, n.exp_s, u.until FROM n, u",
      4, p);
  if (!r) return BD_ADMIN_EDB;
  int n = PQntuples(r);
  if (n == 1) {
    char nid[32];
    snprintf(nid, sizeof nid, "jwt_%s", t.id);
    char *jwt = sign(t.id, PQgetvalue(r, 0, 0), strtoll(PQgetvalue(r, 0, 1), NULL, 10));
    json_object_update_new(out, json_pack("{s:s, s:s, s:s, s:o, s:o}", "id", nid, "token", jwt, "replaces", id,
                                          "expires_at", bd_admin_col(r, 0, 2), "old_token_ends_at",
                                          bd_admin_col(r, 0, 3)));
    free(jwt);
  }
  PQclear(r);
  return n == 1 ? BD_ADMIN_OK : bd_admin_fail(a, BD_ADMIN_ENOTFOUND, "no live token \"%s\"", id);
}

const bd_admin_hooks_t bd_products_admin = {
    .provision = provision,
    .describe = describe,
    .token_opts = k_token_opts,
    .token_create = token_create,
    .token_list = token_list,
    .token_revoke = token_revoke,
    .token_rotate = token_rotate,
};

/* business_credentials.c: certificates as verifiable credentials, served.
 *
 *   GET /business/certificates/{id}/credential   the OpenBadgeCredential (certificates:view)
 *   GET /credentials/{reference_id}              the same, public (its id URL)
 *   GET /credentials/status/{institution}/{list} the institution's BitstringStatusListCredential
 *   GET /institutions/{institution}/did.json     the did:web DID document of the issuer
 *
 * The credential is made with the certificate, on the render worker
 * (business_certs.c, credential.h), and stored as served. A status list is
 * built on each request from the revoked certificates of that list (a
 * partial index keeps it one short scan), gzip'd and signed with this
 * process's key: a revocation is visible to the next verifier that asks,
 * with no cache to go stale (Cache-Control: no-cache). The DID document
 * lists every key that ever signed (biz_signing_keys) and this process's,
 * so old credentials stay verifiable when the key file changes.
 */
#include "business.h"

#include "app.h"
#include "credential.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define VC_TYPE "application/vc+ld+json"

typedef struct {
  char id[80];
  long long inst;
  long long list;
} vctx_t;

static vctx_t *vctx(bd_req_t *req) {
  vctx_t *c = bd_calloc(1, sizeof *c);
  req->ctx = c;
  bd_req_defer(req, free, c);
  return c;
}

static void send_credential(bd_req_t *req, const bd_pg_result_t *r) {
  vctx_t *c = req->ctx;
  if (r->err) {
    bd_app_db_error(req, r);
  } else if (PQntuples(r->res) != 1 || PQgetisnull(r->res, 0, 0)) {
    bd_biz_not_found(req, c->id);
  } else {
    bd_resp_header(req, "Cache-Control", "no-cache");
    bd_resp_send(req, 200, VC_TYPE, PQgetvalue(r->res, 0, 0), (size_t)PQgetlength(r->res, 0, 0));
  }
}

/* --- the credential ---------------------------------------------------------------- */

static bd_pg_stmt_t S_OWN = BD_PG_STMT(
    "SELECT credential FROM biz_certificates WHERE id = $1::uuid AND institution_id = $2::bigint");
static bd_pg_stmt_t S_PUBLIC = BD_PG_STMT("SELECT credential FROM biz_certificates WHERE reference_id = $1");

static void on_credential(void *ud, const bd_pg_result_t *r) {
  bd_req_t *req = ud;
  send_credential(req, r);
  bd_req_release(req);
}

static void own_authed(bd_req_t *req, const bd_biz_caller_t *caller) {
  vctx_t *c = vctx(req);
  const char *id = bd_req_param(req, 0);
  snprintf(c->id, sizeof c->id, "%s", id);
  if (!bd_uuid_valid(bd_str_c(id))) {
    bd_biz_not_found(req, id);
    return;
  }
  char inst[24];
  bd_biz_inst_str(caller, inst);
  const char *p[] = {c->id, inst};
  bd_app_query(req, &S_OWN, 2, p, on_credential, req);
}

void bd_biz_credential_get(bd_req_t *req) { bd_biz_authenticate(req, "certificates:view", own_authed); }

void bd_biz_credential_public(bd_req_t *req) {
  vctx_t *c = vctx(req);
  const char *ref = bd_req_param(req, 0);
  snprintf(c->id, sizeof c->id, "%s", ref);
  if (strlen(ref) > 64) {
    bd_biz_not_found(req, ref);
    return;
  }
  const char *p[] = {c->id};
  bd_app_query(req, &S_PUBLIC, 1, p, on_credential, req);
}

/* A path parameter that is a decimal number 0..2^40; false (404 sent) otherwise. */
static bool path_number(bd_req_t *req, int i, long long *out) {
  const char *s = bd_req_param(req, i);
  char *end;
  long long v = strtoll(s, &end, 10);
  if (!*s || *end || v < 0 || v > (1LL << 40) || (s[0] == '0' && s[1])) {
    bd_biz_not_found(req, s);
    return false;
  }
  *out = v;
  return true;
}

/* --- status lists --------------------------------------------------------------------- */

static bd_pg_stmt_t S_STATUS = BD_PG_STMT(
    "SELECT i.status_next, array(SELECT biz_status_index(c.status_ordinal) FROM biz_certificates c"
    "  WHERE c.institution_id = i.id AND c.status = 'revoked' AND c.status_ordinal >= $2::bigint * 131072"
    "  AND c.status_ordinal < ($2::bigint + 1) * 131072),"
    " to_char(date_trunc('second', now()) AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"
    " FROM biz_institutions i WHERE i.id = $1::bigint");

static void on_status(void *ud, const bd_pg_result_t *r) {
  bd_req_t *req = ud;
  vctx_t *c = req->ctx;
  if (r->err) {
    bd_app_db_error(req, r);
    bd_req_release(req);
    return;
  }
  /* unknown institution, or a list no certificate has reached yet */
  if (PQntuples(r->res) != 1 || c->list > (strtoll(PQgetvalue(r->res, 0, 0), NULL, 10) - 1) / BD_VC_STATUS_LIST_SIZE ||
      strtoll(PQgetvalue(r->res, 0, 0), NULL, 10) == 0) {
    bd_biz_not_found(req, bd_req_param(req, 1));
    bd_req_release(req);
    return;
  }
  /* "{1,2,3}" */
  const char *arr = PQgetvalue(r->res, 0, 1);
  size_t cap = 16, n = 0;
  long *idx = bd_malloc(cap * sizeof *idx);
  for (const char *p = arr; *p;) {
    if (*p >= '0' && *p <= '9') {
      char *end;
      long v = strtol(p, &end, 10);
      if (n == cap) idx = bd_realloc(idx, (cap *= 2) * sizeof *idx);
      idx[n++] = v;
      p = end;
    } else {
      p++;
    }
  }
  const char *now = PQgetvalue(r->res, 0, 2);
  char did[320], vm[400], url[512], err[256];
  const bd_sign_key_t *key = bd_biz_signing_key();
  snprintf(url, sizeof url, "%s/credentials/status/%lld/%lld", bd_biz_base_url(), c->inst, c->list);
  json_t *doc = NULL;
  if (bd_vc_did(bd_biz_base_url(), c->inst, did, sizeof did) == 0) {
    bd_vc_method(did, key->key_id, vm, sizeof vm);
    doc = bd_vc_status_list(url, did, idx, n, now, key, vm, now, err, sizeof err);
  } else {
    snprintf(err, sizeof err, "BATCHD_PUBLIC_URL is not an http(s) URL");
  }
  free(idx);
  if (!doc) {
    bd_biz_server_error(req, err);
  } else {
    char *text = json_dumps(doc, JSON_COMPACT);
    bd_resp_header(req, "Cache-Control", "no-cache");
    bd_resp_send(req, 200, VC_TYPE, text, strlen(text));
    free(text);
    json_decref(doc);
  }
  bd_req_release(req);
}

void bd_biz_status_list(bd_req_t *req) {
  vctx_t *c = vctx(req);
  if (!path_number(req, 0, &c->inst) || !path_number(req, 1, &c->list)) return;
  char inst[24], list[24];
  snprintf(inst, sizeof inst, "%lld", c->inst);
  snprintf(list, sizeof list, "%lld", c->list);
  const char *p[] = {inst, list};
  bd_app_query(req, &S_STATUS, 2, p, on_status, req);
}

/* --- the DID document ---------------------------------------------------------------------- */

static bd_pg_stmt_t S_KEYS =
    BD_PG_STMT("SELECT key_id, public_key FROM biz_signing_keys ORDER BY created_at, key_id");
static bd_pg_stmt_t S_INST = BD_PG_STMT("SELECT 1 FROM biz_institutions WHERE id = $1::bigint");

static void on_did_keys(void *ud, const bd_pg_result_t *r);

static void on_inst(void *ud, const bd_pg_result_t *r) {
  bd_req_t *req = ud;
  if (r->err) {
    bd_app_db_error(req, r);
  } else if (PQntuples(r->res) != 1) {
    bd_biz_not_found(req, bd_req_param(req, 0));
  } else {
    bd_app_query(req, &S_KEYS, 0, NULL, on_did_keys, req);
  }
  bd_req_release(req);
}

static void on_did_keys(void *ud, const bd_pg_result_t *r) {
  bd_req_t *req = ud;
  vctx_t *c = req->ctx;
  if (r->err) {
    bd_app_db_error(req, r);
    bd_req_release(req);
    return;
  }
  const bd_sign_key_t *key = bd_biz_signing_key();
  int n = PQntuples(r->res);
  unsigned char(*pks)[32] = bd_calloc((size_t)n + 1, sizeof *pks);
  const char **ids = bd_calloc((size_t)n + 1, sizeof *ids);
  size_t k = 0;
  bool have_current = false;
  for (int i = 0; i < n; i++) {
    bd_buf_t b = BD_BUF_INIT;
    const char *pk = PQgetvalue(r->res, i, 1);
    if (bd_b64_decode(&b, pk, strlen(pk)) && b.len == 32) {
      memcpy(pks[k], b.data, 32);
      ids[k++] = PQgetvalue(r->res, i, 0);
      have_current |= strcmp(PQgetvalue(r->res, i, 0), key->key_id) == 0;
    }
    bd_buf_free(&b);
  }
  if (!have_current) { /* this process's key, before it has signed anything */
    memcpy(pks[k], key->pk, 32);
    ids[k++] = key->key_id;
  }
  char did[320];
  if (bd_vc_did(bd_biz_base_url(), c->inst, did, sizeof did) != 0) {
    bd_biz_server_error(req, "BATCHD_PUBLIC_URL is not an http(s) URL");
  } else {
    json_t *doc = bd_vc_did_document(did, (const unsigned char(*)[32])pks, ids, k);
    char *text = json_dumps(doc, JSON_COMPACT);
    bd_resp_header(req, "Cache-Control", "public, max-age=300");
    bd_resp_send(req, 200, "application/did+json", text, strlen(text));
    free(text);
    json_decref(doc);
  }
  free(pks);
  free(ids);
  bd_req_release(req);
}

void bd_biz_did_document(bd_req_t *req) {
  vctx_t *c = vctx(req);
  if (!path_number(req, 0, &c->inst)) return;
  char inst[24];
  snprintf(inst, sizeof inst, "%lld", c->inst);
  const char *p[] = {inst};
  bd_app_query(req, &S_INST, 1, p, on_inst, req);
}

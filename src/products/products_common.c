/* products_common.c: what the handlers of the products surface share:
 * PostgREST-shaped error bodies (also the surface's error format), the
 * SQLSTATE → status map of the rpc_* functions, and the Bearer JWT check.
 * It calls only the core and the libraries, no other file of this folder.
 * Loop thread only.
 */
#include "products.h"

#include "app.h"
#include "auth.h"
#include "json.h"

#include <jansson.h>

#include <stdio.h>
#include <stdlib.h>

/* PostgREST-style code for an HTTP status when the caller gave a generic one. */
static const char *rpc_code(int status, const char *code) {
  if (code && ((code[0] >= '0' && code[0] <= '9') || strncmp(code, "PGRST", 5) == 0)) return code;
  switch (status) {
  case 400: return "PGRST100";
  case 401: return "PGRST301";
  case 403: return "42501";
  case 404: return "PGRST202";
  case 405: return "PGRST117";
  case 406: return "PGRST107";
  case 408: return "PGRST000";
  case 409: return "23505";
  case 413: return "PGRST103";
  case 422: return "PGRST102";
  case 429: return "PGRST429";
  case 503: return "PGRST001";
  default: return "PGRST500";
  }
}

/* The one writer of {"code","message","details","hint"}. */
static void write_error(bd_buf_t *out, const char *code, const char *message, const char *details,
                        const char *hint) {
  bd_jw_t w;
  bd_jw_init(&w, out);
  bd_jw_obj(&w);
  bd_jw_kstr(&w, "code", code);
  bd_jw_kstr(&w, "message", message);
  bd_jw_kstr(&w, "details", details);
  bd_jw_kstr(&w, "hint", hint);
  bd_jw_obj_end(&w);
}

void bd_products_format_error(const bd_req_t *req, int status, const char *code, const char *message,
                              const char *param, bd_buf_t *out) {
  write_error(out, rpc_code(status, code), message, param, NULL);
}

void bd_rpc_error(bd_req_t *req, int status, const char *code, const char *message, const char *details,
                  const char *hint) {
  bd_buf_t b = BD_BUF_INIT;
  write_error(&b, code, message, details, hint);
  bd_resp_json(req, status, &b);
}

void bd_rpc_db_error(bd_req_t *req, const bd_pg_result_t *r) {
  if (r->err == BD_PG_ESQL) {
    const char *st = r->sqlstate;
    int status = 0;
    const char *msg = r->message;
    if (!strcmp(st, "28000")) {
      bd_resp_header(req, "WWW-Authenticate", "Bearer");
      bd_rpc_error(req, 401, "PGRST301", "Not authenticated", r->detail ? r->detail : r->message, NULL);
      return;
    }
    if (!strcmp(st, "42501")) status = 403, msg = "Forbidden";
    else if (!strcmp(st, "22023") || !strcmp(st, "22P02") || !strcmp(st, "23502") || !strcmp(st, "23514") ||
             !strcmp(st, "22003") || !strcmp(st, "22001"))
      status = 400, msg = "Invalid input";
    else if (!strcmp(st, "P0002")) status = 404;
    else if (!strcmp(st, "23505")) status = 409;
    if (status) {
      /* for generic constraint errors the server's message is the detail */
      const char *details = r->detail ? r->detail : (status == 400 || status == 409 ? r->message : NULL);
      bd_rpc_error(req, status, st, msg, details, r->hint);
    } else {
      bd_app_db_error(req, r);
    }
  } else {
    bd_app_db_error(req, r);
  }
}

bool bd_rpc_authenticate(bd_req_t *req, char sub_out[201], char jti_out[16]) {
  bd_str_t tok;
  json_t *claims = NULL;
  int jrc = BD_JWT_EMALFORMED;
  if (bd_app.jwt_key && bd_bearer(bd_req_header(req, "Authorization"), &tok))
    jrc = bd_jwt_verify(tok, bd_app.jwt_key, bd_app.jwt_key_len, bd_wall_us() / 1000000, 30, &claims);
  const char *sub = claims ? json_string_value(json_object_get(claims, "sub")) : NULL;
  const char *why = jrc != BD_JWT_OK ? bd_jwt_strerror(jrc) : NULL;
  /* a stolen token is good until exp: how long that may be is ours to cap
   * (bd_jwt_verify has checked exp is a number) */
  if (!why && json_number_value(json_object_get(claims, "exp")) >
                  (double)(bd_wall_us() / 1000000 + bd_app.cfg.jwt_max_ttl_s + 30))
    why = "exp is further out than the longest token lifetime this server accepts";
  if (!why && (!sub || !*sub || strlen(sub) > 200)) why = "sub is required";
  if (why) {
    json_decref(claims);
    bd_resp_header(req, "WWW-Authenticate", "Bearer");
    bd_rpc_error(req, 401, "PGRST301", "Not authenticated", why, NULL);
    return false;
  }
  snprintf(sub_out, 201, "%s", sub);
  const char *jti = json_string_value(json_object_get(claims, "jti"));
  jti_out[0] = '\0';
  if (jti && strlen(jti) == 4 + BD_TOKEN_ID_LEN && !strncmp(jti, "jwt_", 4)) memcpy(jti_out, jti + 4, BD_TOKEN_ID_LEN + 1);
  json_decref(claims);
  return true;
}

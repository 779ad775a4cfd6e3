/* errors.c: error bodies in each API's own format.
 *
 * Every surface copies the error shape of the public API it is compatible
 * with (see CONTRACT.md), so existing client libraries parse our errors:
 *   business (vec.digital, Laravel): {"message": ..., "error"/"required_permission"/"error_code": ...}
 *   QR (QRKit):                      {"error": {"code", "message", "param", "request_id"}}
 *   RPC (PostgREST):                 {"code", "message", "details", "hint"}
 *   operational endpoints:           {"error": {"code", "message", "request_id"}}
 */
#include "http.h"
#include "json.h"

#include <stdio.h>

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

void bd_resp_error(bd_req_t *req, int status, const char *code, const char *message, const char *param) {
  bd_buf_t b = BD_BUF_INIT;
  bd_jw_t w;
  bd_jw_init(&w, &b);
  if (status == 503 || status == 429) {
    /* callers that know better set their own Retry-After first */
    if (!req->resp_headers.data || !strstr(req->resp_headers.data, "Retry-After:"))
      bd_resp_header(req, "Retry-After", "1");
  }
  switch (req->surface) {
  case BD_SURF_BUSINESS:
    bd_jw_obj(&w);
    if (status == 401) {
      bd_jw_kstr(&w, "message", "Unauthorized - Invalid API token");
    } else if (status == 403) {
      bd_jw_kstr(&w, "message", "Forbidden - Insufficient permissions");
      bd_jw_kstr(&w, "required_permission", param ? param : "");
    } else if (status >= 500 && status != 503) {
      bd_jw_kstr(&w, "message", "An unexpected error occurred. Our team has been notified.");
      bd_jw_kstr(&w, "error_code", "SERVER_ERROR");
    } else if (status == 422) {
      bd_jw_kstr(&w, "message", message);
      bd_jw_key(&w, "errors");
      bd_jw_obj(&w);
      bd_jw_key(&w, param ? param : (code ? code : "request"));
      bd_jw_arr(&w);
      bd_jw_str(&w, message);
      bd_jw_arr_end(&w);
      bd_jw_obj_end(&w);
    } else {
      bd_jw_kstr(&w, "message", message);
      bd_jw_kstr(&w, "error", status == 404 ? "resource_not_found" : code);
    }
    bd_jw_kstr(&w, "request_id", req->request_id);
    bd_jw_obj_end(&w);
    break;
  case BD_SURF_RPC:
    bd_jw_obj(&w);
    bd_jw_kstr(&w, "code", rpc_code(status, code));
    bd_jw_kstr(&w, "message", message);
    bd_jw_kstr(&w, "details", param);
    bd_jw_knull(&w, "hint");
    bd_jw_obj_end(&w);
    break;
  case BD_SURF_QR:
  case BD_SURF_OPS:
  default:
    bd_jw_obj(&w);
    bd_jw_key(&w, "error");
    bd_jw_obj(&w);
    bd_jw_kstr(&w, "code", code);
    bd_jw_kstr(&w, "message", message);
    if (req->surface == BD_SURF_QR) bd_jw_kstr(&w, "param", param);
    bd_jw_kstr(&w, "request_id", req->request_id);
    bd_jw_obj_end(&w);
    bd_jw_obj_end(&w);
    break;
  }
  bd_resp_json(req, status, &b);
}

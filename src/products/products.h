/* products.h: the products surface's private header (/rpc, exports,
 * resolver, passports): the helpers of products_common.c, then the
 * handlers and start-up hooks products_surface.c wires up. Calls go one
 * way: products_surface.c → rpc.c, mint.c, mint_export.c, resolver.c →
 * products_common.c, which calls none of them; the four in the middle do
 * not call each other (rpc.c also calls pgrst.c, which calls only
 * products_common.c). Loop thread only.
 */
#ifndef BD_PRODUCTS_H
#define BD_PRODUCTS_H

#include "admin.h"
#include "http.h"
#include "pg.h"

/* The surface's error format for bd_resp_error: PostgREST-shaped, with a
 * PGRST code derived from the status when `code` is a generic one. */
void bd_products_format_error(const bd_req_t *req, int status, const char *code, const char *message,
                              const char *param, bd_buf_t *out);

/* PostgREST-shaped error {"code","message","details","hint"}, code as given. */
void bd_rpc_error(bd_req_t *req, int status, const char *code, const char *message, const char *details,
                  const char *hint);

/* Verifies the Bearer JWT of the request. On success copies its sub into
 * `sub` (NUL-terminated, at most 200 bytes) and, when its jti is one that
 * `batchd token create` minted ("jwt_" + 12 base62), that id without the
 * prefix into `jti` ("" otherwise), and returns true; otherwise answers 401
 * and returns false. The caller passes jti (NULL when "") to pp_caller in
 * its statement: that is where a revoked token is refused. */
bool bd_rpc_authenticate(bd_req_t *req, char sub[201], char jti[16]) BD_MUSTCHECK;

/* Maps a failed query of an rpc_*-style function to a PostgREST error:
 *   28000 → 401 Not authenticated (a revoked token, pp_caller)
 *   42501 → 403 Forbidden    22023, 22P02, 23502, 23514, 22003, 22001 → 400 Invalid input
 *   P0002 → 404              23505 → 409
 * anything else as bd_app_db_error (unavailable → 503, else 500). Does
 * not release the request. */
void bd_rpc_db_error(bd_req_t *req, const bd_pg_result_t *r);

/* pgrst.c: the PostgREST options of an /rpc call (query filters, select,
 * order, limit/offset, Range, Accept, Prefer). bd_pgrst_parse reads them
 * (rows: the function answers a JSON array of rows; get_args: for a GET,
 * the object that receives the `_` arguments of the query string, else
 * NULL) and returns NULL after answering the error. bd_pgrst_answer sends
 * the function's answer through them. */
typedef struct bd_pgrst_s bd_pgrst_t;
struct json_t;
bd_pgrst_t *bd_pgrst_parse(bd_req_t *req, const char *fn, bool rows, struct json_t *get_args);
bool bd_pgrst_trivial(const bd_pgrst_t *p);
void bd_pgrst_answer(bd_req_t *req, const char *fn, const bd_pgrst_t *p, const char *body, size_t len);
void bd_pgrst_free(bd_pgrst_t *p);

/* rpc.c: POST /rpc/{fn} and /rest/v1/rpc/{fn} */
void bd_rpc_handle(bd_req_t *req);

/* mint.c: registers the pp.mint job kind. */
void bd_mint_init(void);

/* mint_export.c: GET /exports/mint-jobs/{id}.csv and /exports/mint-jobs/{id}/qr.zip */
void bd_export_csv(bd_req_t *req);
void bd_export_zip(bd_req_t *req);

/* resolver.c: GET /01/..., /.well-known/gs1resolver, /passports/{id} */
void bd_resolver_init(void);
/* Writes the buffered scans, then calls done once (shutdown; loop thread). */
void bd_resolver_flush(void (*done)(void *ud), void *ud);
void bd_resolver_handle(bd_req_t *req);
void bd_resolver_compressed(bd_req_t *req);
void bd_resolver_context(bd_req_t *req);
void bd_resolver_wellknown(bd_req_t *req);
void bd_passport_handle(bd_req_t *req);

/* Provisioning: the brand and /rpc JWTs (products_admin.c). */
extern const bd_admin_hooks_t bd_products_admin;

#endif

/* idem.h: Idempotency-Key handling for POST requests (IETF httpapi draft).
 *
 * The first request with a key stores (credential, key, SHA-256 of the body)
 * as in flight, runs the handler, and stores its status and body before the
 * response is sent. A repeat with the same body gets the stored response
 * with `Idempotent-Replayed: true`; with a different body 422; while the
 * first is still in flight 409. 5xx answers are not stored (the key is
 * freed so the client can retry). Rows expire after idempotency_ttl_s; an
 * in-flight row whose process died is taken over after 60 s.
 * Loop thread only.
 */
#ifndef BD_IDEM_H
#define BD_IDEM_H

#include "http.h"

/* Runs `next(req)` under the Idempotency-Key protocol when the request is a
 * POST carrying the header, else calls next(req) at once. `cred` identifies
 * the caller (keys are scoped per credential). The body must be buffered. */
void bd_idem_wrap(bd_req_t *req, const char *cred, bd_handler_fn next);

#endif

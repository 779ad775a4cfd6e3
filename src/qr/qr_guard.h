/* qr_guard.h: the scannability guard of the /v1 surface (qr_guard.c).
 * Loop thread only. */
#ifndef BD_QR_GUARD_H
#define BD_QR_GUARD_H

#include "http.h"

#include <jansson.h>

/* Runs the decoding guard (src/render/qr_scan.h) for the request's parsed
 * design (qr_ctx_t.design) with the longest payload of `items` (a batch's
 * items array, or one item object: a single create), on the work queue,
 * then re-enters next(req) on the loop thread; a design that does not scan
 * is answered 400 invalid_request naming the field at fault, and next is
 * not called. items is read on a worker thread while the request is held:
 * the caller must not change it until next runs. Plain designs with WCAG
 * contrast of at least 3:1 skip the render (square modules in one solid
 * colour scan on every reader), and verdicts are cached per (design,
 * symbol version, level): a client sending the same design again pays
 * nothing. With BATCHD_TEST_HOOKS=1 the header X-Test-Skip-Scan-Guard: 1
 * skips the decode (the tests force refused designs through to show that
 * they do not scan); it is ignored otherwise. */
void qr_scan_guard(bd_req_t *req, const json_t *items, bd_handler_fn next);

#endif

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
#include "pg.h"

/* Runs `next(req)` under the Idempotency-Key protocol when the request is a
 * POST carrying the header, else calls next(req) at once. `cred` identifies
 * the caller (keys are scoped per credential). The body must be buffered. */
void bd_idem_wrap(bd_req_t *req, const char *cred, bd_handler_fn next);

/* At shutdown (the database pool closed): drops the keys still waiting to
 * be freed after an outage (their locks expire on their own) and closes
 * the retry timer. */
void bd_idem_shutdown(void);

/* Streamed bodies (BD_ROUTE_STREAM). The same protocol, in steps, because
 * the body hash is known only at the end of the body:
 *
 *  1. bd_idem_stream_begin, once the headers are in and the caller is
 *     known. It calls `cb` (never synchronously) with one of
 *       BD_IDEM_PROCEED  no key (s == NULL), or the key is now held in
 *                        flight by this request: handle the request,
 *                        passing every body byte to bd_idem_stream_body;
 *       BD_IDEM_REPLAY   the key already has a stored response: do NOT
 *                        handle the request; pass every body byte to
 *                        bd_idem_stream_body and, at its end, call
 *                        bd_idem_stream_replay (the stored response with
 *                        Idempotent-Replayed: true, or 422 when the body
 *                        differs);
 *       BD_IDEM_ANSWERED the request was answered (400 bad key, 409 in
 *                        flight, 503): stop.
 *  2. While a PROCEED request runs, its in-flight lock is renewed (a long
 *     upload keeps its key; a retry meanwhile gets 409).
 *  3. Every response of the request goes through bd_idem_stream_respond
 *     (typically from the route's req->on_respond hook): a PROCEED answer
 *     below 500 is stored (unless bd_idem_stream_mark_done stored it inside
 *     the caller's own transaction), a 5xx frees the key; then it is sent.
 *  4. A request that ends without a response (client gone) calls
 *     bd_idem_stream_abandon: the key is freed so that a retry runs.
 * The stream object is freed by bd_idem_stream_respond/abandon, or with
 * the request. Loop thread only. */
typedef struct bd_idem_stream bd_idem_stream_t;
enum { BD_IDEM_PROCEED = 0, BD_IDEM_REPLAY = 1, BD_IDEM_ANSWERED = 2 };
typedef void (*bd_idem_stream_cb)(bd_req_t *req, bd_idem_stream_t *s, int outcome);

/* Returns 0 when the request has no Idempotency-Key (*out = NULL, `cb`
 * is not called: proceed at once); 1 when *out was created and `cb` will
 * report the outcome (body bytes that arrive meanwhile go to
 * bd_idem_stream_body already); -1 when the request was answered (400, a
 * malformed key). */
int bd_idem_stream_begin(bd_req_t *req, const char *cred, bd_idem_stream_cb cb,
                         bd_idem_stream_t **out) BD_MUSTCHECK;
/* Hashes body bytes, in order; then bd_idem_stream_body_end once the body
 * is complete (only a complete body's response is ever stored). */
void bd_idem_stream_body(bd_idem_stream_t *s, const char *p, size_t n);
void bd_idem_stream_body_end(bd_idem_stream_t *s);
/* REPLAY, after bd_idem_stream_body_end: answers the request. */
void bd_idem_stream_replay(bd_req_t *req, bd_idem_stream_t *s);
/* Sends a response of the request (see 3. above). A 5xx, a 499 (the
 * client left) or an answer given before the body was complete frees the
 * key instead of storing it. s may be NULL (plain send). */
void bd_idem_stream_respond(bd_req_t *req, bd_idem_stream_t *s, int status, const char *ctype,
                            const char *body, size_t len);
/* Stops the lock renewal and frees s (the caller's on_free). NULL is fine. */
void bd_idem_stream_free(bd_idem_stream_t *s);

/* Stores the final response as done on the caller's pinned connection, i.e.
 * inside the transaction that creates what the response describes, so the
 * result and its key commit together (no window in which a crash leaves a
 * committed result with a free key). `cb` gets the UPDATE's result; the
 * caller must roll back when PQcmdTuples is not "1": the key was taken
 * over (its lock had lapsed), and answer 409. Returns what
 * bd_pg_conn_query returns. */
int bd_idem_stream_mark_done(bd_idem_stream_t *s, bd_pg_conn_t *c, int status, const char *ctype,
                             const char *body, size_t len, bd_pg_cb cb, void *ud) BD_MUSTCHECK;

#endif

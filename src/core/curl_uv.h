/* curl_uv.h: libcurl's multi-socket interface driven by the libuv loop.
 *
 * One bd_curl_uv_t owns one CURLM: curl tells it which sockets to watch
 * (one uv_poll_t each) and when to time out (one uv_timer_t), and every
 * transfer that ends is taken out of the multi handle and handed to the
 * owner's `done` callback, which then owns the easy handle (and must
 * curl_easy_cleanup it). DNS runs on curl's resolver threads, so nothing
 * here blocks the loop. Loop thread only. Used by fetch.c (remote logos)
 * and webhooks.c (deliveries), each with a multi handle of its own.
 */
#ifndef BD_CURL_UV_H
#define BD_CURL_UV_H

#include <curl/curl.h>
#include <uv.h>

typedef struct bd_curl_uv bd_curl_uv_t;

/* A transfer ended (result CURLE_OK or why not). Never runs from inside
 * bd_curl_uv_add; it may add transfers, but must not close the handle. */
typedef void (*bd_curl_uv_done_fn)(void *ud, CURL *easy, CURLcode result);

/* NULL if curl cannot make a multi handle. */
bd_curl_uv_t *bd_curl_uv_new(uv_loop_t *loop, bd_curl_uv_done_fn done, void *ud);
CURLM *bd_curl_uv_multi(bd_curl_uv_t *c);
/* Starts a transfer (on the next loop iteration). 0, or -1. */
int bd_curl_uv_add(bd_curl_uv_t *c, CURL *easy);
/* Stops a transfer without calling done; the caller still owns easy. */
void bd_curl_uv_remove(bd_curl_uv_t *c, CURL *easy);
/* Transfers still in the multi handle. */
int bd_curl_uv_running(const bd_curl_uv_t *c);
/* Closes the multi handle (and its cached connections) and the timer, and
 * frees c once they are closed. Transfers still in it end without their
 * callback: remove them first. */
void bd_curl_uv_close(bd_curl_uv_t *c);

#endif

/* fetch.h: bounded HTTP(S) GETs on the event loop (libcurl multi on libuv).
 *
 * Used for remote QR logos from an allowlist. Every fetch is limited in
 * size and time, follows no redirects (a redirect could leave the
 * allowlist) and speaks only http and https. Loop thread only; the callback
 * runs exactly once, never from inside bd_fetch.
 */
#ifndef BD_FETCH_H
#define BD_FETCH_H

#include "buf.h"
#include <uv.h>

/* err == 0: body holds the response (status 200) and content_type its type
 * (may be ""). err != 0: msg says what went wrong. */
typedef void (*bd_fetch_cb)(void *ud, int err, const char *msg, bd_buf_t *body, const char *content_type);

void bd_fetch_init(uv_loop_t *loop);
/* Aborts fetches in progress (their callbacks run with an error) and
 * closes every handle. */
void bd_fetch_close(void);
int bd_fetch(const char *url, size_t max_bytes, uint32_t timeout_ms, bd_fetch_cb cb, void *ud) BD_MUSTCHECK;
/* The lower-case host of an http(s) URL into out; false if it is not one. */
bool bd_fetch_url_host(const char *url, char *out, size_t outsz);

#endif

/* webhooks.h: signed webhooks, shared by every surface.
 *
 * A surface registers endpoints in its own API style (rows of
 * bd_webhook_endpoints, 015_webhooks.sql) with the helpers below, and emits
 * events from SQL with bd_webhook_emit in the transaction that changes the
 * state (the outbox). The core delivers them (bd_webhooks_start): claimed
 * like jobs, POSTed with libcurl's multi interface on the loop, signed,
 * retried with backoff.
 *
 * SIGNATURES, on every delivery of event E to an endpoint with secret S
 * ("whsec_" + base64 of 32 random bytes; the key is those 32 bytes):
 *   vec.digital:  X-Webhook-Event: E.type, X-Webhook-ID: E.id,
 *                 X-Webhook-Timestamp: unix seconds,
 *                 X-Webhook-Signature: hex HMAC-SHA256(key, body)
 *   Standard Webhooks: webhook-id: E.id, webhook-timestamp: unix seconds,
 *                 webhook-signature: "v1," + base64 HMAC-SHA256(key,
 *                 id "." timestamp "." body)
 * The body is the envelope {"id","type","created_at","data"}, identical on
 * every retry.
 *
 * SECRETS AT REST are sealed with crypto_secretbox under the 32-byte key of
 * BATCHD_WEBHOOK_KEY_FILE (keyfile.h; created when missing): every process
 * of one database must have the same file. Loop thread, except
 * bd_webhook_secret_* (any thread once bd_webhook_key_load succeeded) and
 * bd_webhook_sign_* (pure, any thread).
 *
 * DELIVERY (bd_webhooks_start; SQL in 016_webhook_delivery.sql). Every
 * process claims due deliveries (bd_webhook_claim: a lease, SKIP LOCKED, at
 * most BATCHD_WEBHOOK_PER_ENDPOINT in flight per endpoint across processes)
 * while it has fewer than BATCHD_WEBHOOK_CONCURRENCY in flight, when
 * NOTIFY bd_webhooks says an event was queued, every second, when one of
 * its deliveries ends, and when a retry it scheduled falls due. Each is one
 * POST from the loop (libcurl multi, curl_uv.h): no redirects, https only
 * unless BATCHD_WEBHOOK_ALLOW_HTTP, no proxy, every address it connects to
 * checked with bd_webhook_addr_forbidden unless BATCHD_WEBHOOK_ALLOW_PRIVATE
 * (at connect time, so a name that resolves to a private address, or
 * rebinds to one, is refused too), at most BATCHD_WEBHOOK_TIMEOUT_MS, the
 * answer's body read up to 64 KiB and discarded. A 2xx is success; anything
 * else is retried with backoff (bd_webhook_done, in batches) for
 * BATCHD_WEBHOOK_RETRY_FOR_S, and an endpoint failing for
 * BATCHD_WEBHOOK_DISABLE_AFTER_S is disabled. At least once: a process
 * that dies mid-delivery leaves a lease that expires, and the delivery goes
 * out again with the same event id.
 */
#ifndef BD_WEBHOOKS_H
#define BD_WEBHOOKS_H

#include "buf.h"

#include <stdbool.h>
#include <stddef.h>

#define BD_WEBHOOK_SECRET_MAX 64 /* "whsec_" + 44 base64 + NUL fits */

/* Loads (or creates) the sealing key of BATCHD_WEBHOOK_KEY_FILE once.
 * 0, or -1 with err. Called by the functions below when needed. */
int bd_webhook_key_load(char *err, size_t errsz);

/* A new secret (NUL-terminated, shown once) and its sealed form as a
 * PostgreSQL bytea hex literal ("\\x…") appended to sealed_hex. 0, or -1
 * with err (the key file cannot be loaded). */
int bd_webhook_secret_new(char secret[BD_WEBHOOK_SECRET_MAX], bd_buf_t *sealed_hex, char *err, size_t errsz);

/* Unseals a stored secret (the raw bytea bytes) into its 32-byte HMAC key.
 * 0, or -1 (wrong key file, corrupted). */
int bd_webhook_secret_key(const void *sealed, size_t n, unsigned char key[32]);

/* NULL when url may be registered, else why not: an absolute http(s) URL
 * of at most 2048 bytes, https unless BATCHD_WEBHOOK_ALLOW_HTTP, no
 * user:password@, no fragment, a host that is not an address literal of a
 * loopback, private, link-local or multicast network unless
 * BATCHD_WEBHOOK_ALLOW_PRIVATE (names are resolved again and checked at
 * each delivery). */
const char *bd_webhook_url_problem(const char *url);

/* Whether an address (IPv4 in network order / IPv6, 4 or 16 bytes) is one
 * deliveries must not reach: loopback, unspecified, private (RFC 1918,
 * fc00::/7), link-local, CGNAT (100.64/10), multicast, broadcast, and the
 * IPv4-mapped forms of those. */
bool bd_webhook_addr_forbidden(const unsigned char *addr, size_t len);

/* X-Webhook-Signature: the lower-case hex HMAC-SHA256 of the body. */
void bd_webhook_sign_hex(const unsigned char *key, size_t keylen, const void *body, size_t n, char out[65]);

/* webhook-signature (Standard Webhooks v1): "v1," + base64 HMAC-SHA256 of
 * id "." timestamp "." body. */
#define BD_WEBHOOK_SIG_MAX 48
void bd_webhook_sign_std(const unsigned char *key, size_t keylen, const char *id, long long ts, const void *body,
                         size_t n, char out[BD_WEBHOOK_SIG_MAX]);

/* Starts delivering (serve, after the migrations): loads the key file,
 * LISTENs on bd_webhooks, polls. Loop thread. */
void bd_webhooks_start(void);
/* Claims now (a surface queued an event and committed). */
void bd_webhooks_kick(void);
/* Stops claiming and waits up to BATCHD_SHUTDOWN_GRACE_MS for the
 * deliveries in flight and their records; the ones still running then are
 * aborted and given back (their lease cleared: the next process sends them
 * again). Then `done` runs (once; at once if never started). */
void bd_webhooks_stop(void (*done)(void *ud), void *ud);
/* Appends the engine's metrics (Prometheus text): deliveries by outcome,
 * in flight, and the queue as of the last sweep (every 10 s). */
void bd_webhooks_metrics(bd_buf_t *out);

#endif

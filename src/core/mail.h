/* mail.h: the e-mail outbox and its SMTP sender, shared by every surface.
 *
 * A surface queues messages from SQL with bd_mail_queue(surface, kind, ref,
 * recipient) in the transaction of the state change that calls for them
 * (020_mail.sql), and registers a composer for its kind here. The core
 * claims due messages (a lease, SKIP LOCKED), asks the kind's composer for
 * the bytes of each, and sends them with libcurl's SMTP support on the loop
 * (multi interface, curl_uv.h): at most BATCHD_SMTP_CONNECTIONS transfers
 * at once on connections curl keeps open and reuses, started no faster than
 * BATCHD_SMTP_RATE messages per second (a token bucket of this process).
 *
 * OUTCOMES. The server's 2xx to the end of DATA is recorded first, before
 * anything else this process does with that message: state sent, never
 * claimed again. A 5xx reply to RCPT TO or DATA fails the message with the
 * server's reply. Everything else (4xx, a 5xx to AUTH or MAIL FROM, which
 * are about us and not the recipient, no connection, TLS) is retried with
 * backoff (BATCHD_SMTP_RETRY_BASE_MS doubling up to an hour, with jitter)
 * until the message is BATCHD_SMTP_RETRY_FOR_S old, then fails. A process
 * that dies mid-attempt leaves a lease that runs out; the message is then
 * sent again, so the one duplicate window is between the server's final
 * 2xx and the commit of its record (one round trip to PostgreSQL).
 *
 * TRANSPORT. BATCHD_SMTP_URL smtp://host[:port] requires STARTTLS (curl
 * CURLUSESSL_ALL) unless BATCHD_SMTP_INSECURE=1 (then plain SMTP);
 * smtps:// is TLS from the first byte. Certificates are verified (against
 * BATCHD_SMTP_CA_FILE when set). BATCHD_SMTP_USER/PASSWORD authenticate.
 * BATCHD_SMTP_FROM is the sender: "addr@example.org" or "Name
 * <addr@example.org>". No BATCHD_SMTP_URL: nothing is sent (messages wait).
 *
 * Loop thread only.
 */
#ifndef BD_MAIL_H
#define BD_MAIL_H

#include "buf.h"

#include <stdbool.h>

/* One claimed message, borrowed for the composer's call. */
typedef struct {
  const char *id;        /* msg_ + 32 hex: the Message-ID's local part */
  const char *kind;      /* the composer's kind */
  const char *ref;       /* the surface's object */
  const char *recipient; /* the envelope recipient */
  long long created_s;   /* when it was queued (unix s): its Date, the same on every attempt */
  int attempts;          /* before this one */
} bd_mail_msg_t;

typedef struct bd_mail_item bd_mail_item_t; /* a message being sent (owned by the sender) */

/* Composes message m for `item` and later (never from inside the call)
 * calls exactly one of bd_mail_composed / bd_mail_compose_failed with it.
 * m and its strings live until then. */
typedef void (*bd_mail_compose_fn)(bd_mail_item_t *item, const bd_mail_msg_t *m);

/* Registers the composer of `kind` (a static string), at init. */
void bd_mail_register(const char *kind, bd_mail_compose_fn fn);

/* The composed message: RFC 5322 header and body with CRLF line ends,
 * lines under 1000 bytes (curl dot-stuffs it). Takes msg's bytes (msg is
 * left empty). */
void bd_mail_composed(bd_mail_item_t *item, bd_buf_t *msg);
/* It cannot be composed: permanent (e.g. its object is gone or revoked:
 * the message fails with error) or not (a database error: retried). */
void bd_mail_compose_failed(bd_mail_item_t *item, bool permanent, const char *error);

/* Whether a sender is configured (BATCHD_SMTP_URL is set). */
bool bd_mail_enabled(void);
/* BATCHD_SMTP_FROM's address ("" when not configured) and display name
 * ("" when none). Valid after bd_mail_start. */
const char *bd_mail_from_address(void);
const char *bd_mail_from_name(void);

/* NULL when BATCHD_SMTP_URL and BATCHD_SMTP_FROM are usable, else why not
 * (also when mail is not configured at all: NULL). */
const char *bd_mail_config_problem(void);

/* Starts sending (serve, after the migrations) when configured: LISTENs on
 * bd_mail, polls, sweeps. */
void bd_mail_start(void);
/* Claims now (a surface queued a message and committed). */
void bd_mail_kick(void);
/* Stops claiming, waits up to BATCHD_SHUTDOWN_GRACE_MS for the messages in
 * flight and their records; the ones still running then are aborted and
 * given back (their lease cleared). Then `done` runs (once). */
void bd_mail_stop(void (*done)(void *ud), void *ud);
/* Appends the sender's metrics (Prometheus text). */
void bd_mail_metrics(bd_buf_t *out);

#endif

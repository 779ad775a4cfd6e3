/* config.h: configuration from the environment and command-line flags.
 *
 * Every setting has an environment variable (BATCHD_*, DATABASE_URL) and a
 * flag (--listen, --max-json-body, ...), and may be in a --config FILE of
 * NAME=value lines; defaults < file < environment < flags. `batchd --help` prints
 * the table in config.c, which is the single source of names, defaults and
 * descriptions. Loop thread only after start-up (read-only).
 */
#ifndef BD_CONFIG_H
#define BD_CONFIG_H

#include "common.h"

#include <jansson.h>
#include <stdio.h>

typedef struct {
  char *database_url;            /* libpq URL or conninfo */
  char *listen;                  /* host:port */
  char *public_url;              /* base of links we hand out */
  char *jwt_secret;              /* HS256 secret of the /rpc surface */
  int64_t jwt_max_ttl_s;         /* a JWT whose exp is further out than this is refused */
  char *signing_key_file;        /* Ed25519 key for certificate signatures */
  int64_t workers;               /* render threads (libuv threadpool) */
  int64_t worker_nice;           /* their nice value (0: as the loop thread) */
  int64_t cert_png_renders;      /* on-demand certificate PNGs rendering at once (503 beyond) */
  int64_t pg_conns;              /* PostgreSQL connections in the pool */
  int64_t pg_pipeline;           /* queries in flight per connection */
  int64_t pg_queue_cap;          /* queries waiting for a connection */
  int64_t pg_queue_timeout_ms;   /* a waiting query older than this fails (503) */
  int64_t reuseport;             /* SO_REUSEPORT: several processes share the port */
  int64_t max_header_bytes;      /* request line + headers (431) */
  int64_t max_json_body;         /* JSON bodies (413) */
  int64_t max_upload_body;       /* multipart uploads (413) */
  int64_t max_csv_rows;          /* rows per roster (422) */
  int64_t max_csv_field;         /* bytes per CSV field (422) */
  int64_t max_json_depth;        /* JSON nesting (400) */
  int64_t max_qr_items;          /* items per QR batch (400) */
  int64_t max_uploads;           /* roster uploads in progress at once (503 beyond) */
  int64_t max_connections;       /* open client connections */
  int64_t header_timeout_ms;     /* to receive request line + headers (408) */
  int64_t body_timeout_ms;       /* idle time inside a body (408) */
  int64_t keepalive_timeout_ms;  /* idle keep-alive connection (closed) */
  int64_t shutdown_grace_ms;     /* SIGTERM: time for in-flight work */
  double rate_limit;             /* requests per second per credential (0 = off) */
  int64_t rate_burst;            /* bucket size */
  int64_t job_lease_ms;          /* a claimed job is re-claimable after this */
  int64_t job_poll_ms;           /* job poll interval (NOTIFY wakes earlier) */
  int64_t access_log;            /* one JSON line per request on stderr */
  int64_t idempotency_ttl_s;     /* stored responses are kept this long */
  char *country_header;          /* trusted proxy header carrying the client's country */
  char *logo_allowlist;          /* hosts remote QR logos may come from (comma-separated) */
  int64_t logo_fetch_timeout_ms; /* one remote logo fetch */
  int64_t mint_chunk_units;      /* units per COPY transaction of a mint job */
  int64_t mint_writers;          /* parallel COPY connections of a mint job */
  int64_t resolver_cache;        /* resolver entries kept in memory (0 = no cache) */
  int64_t resolver_scan_buffer;  /* units with buffered resolver scans, at most */
  int64_t resolver_scan_flush_ms;/* resolver scan flush period */
  char *webhook_key_file;        /* seals webhook secrets at rest */
  int64_t webhook_allow_http;    /* http:// endpoint URLs accepted */
  int64_t webhook_allow_private; /* loopback/private/link-local/multicast targets allowed */
  int64_t webhook_timeout_ms;    /* one delivery */
  int64_t webhook_concurrency;   /* deliveries in flight per process */
  int64_t webhook_per_endpoint;  /* ... per endpoint */
  int64_t webhook_retry_base_ms; /* first retry delay */
  int64_t webhook_retry_for_s;   /* then the delivery fails */
  int64_t webhook_disable_after_s; /* an endpoint failing this long is disabled */
  int64_t max_webhooks;          /* endpoints per owner */
  char *smtp_url;                /* smtp:// or smtps:// of the mail server ("": no e-mail) */
  int64_t smtp_insecure;         /* smtp:// without STARTTLS allowed */
  char *smtp_user;               /* SMTP AUTH user ("": none) */
  char *smtp_password;           /* its password */
  char *smtp_from;               /* sender: addr or "Name <addr>" */
  char *smtp_ca_file;            /* CA bundle the server's certificate is checked against ("": the system's) */
  double smtp_rate;              /* messages started per second (0 = no limit) */
  int64_t smtp_connections;      /* SMTP connections (transfers at once) */
  int64_t smtp_timeout_ms;       /* one message */
  int64_t smtp_retry_base_ms;    /* first retry delay */
  int64_t smtp_retry_for_s;      /* then the message fails */
  int64_t smtp_lease_s;          /* a claimed message is given to another process after this */
} bd_config_t;

/* Fills defaults, then the environment, then argv flags (argv[first..]).
 * Unknown flags and bad values print a message and return false. Positional
 * arguments are returned in *pos / *npos (pointers into argv). */
bool bd_config_load(bd_config_t *cfg, int argc, char **argv, int first, char **pos, int *npos) BD_MUSTCHECK;
void bd_config_free(bd_config_t *cfg);
void bd_config_usage(FILE *out);
/* The effective settings with secrets masked, and where each came from
 * ("default", "FILE:LINE", "environment", "flag --x"): `batchd config check`.
 * As [{"name","value","source"}] or as a table. */
json_t *bd_config_effective(const bd_config_t *cfg);
void bd_config_print(const bd_config_t *cfg, FILE *out);
/* The settings as roff, for the man page (batchd --man): the same table. */
void bd_config_man(FILE *out);

#endif

/* config.c: the table of settings, their defaults and their parsing. */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

typedef enum { T_STR, T_INT, T_DOUBLE, T_BOOL } opt_type_t;

typedef struct {
  const char *env;   /* environment variable */
  const char *flag;  /* --flag */
  opt_type_t type;   /* value type */
  size_t off;        /* offset in bd_config_t */
  const char *def;   /* default, as text */
  int64_t min, max;  /* bounds for integers */
  const char *help;  /* one line for --help */
} opt_t;

#define O(f) offsetof(bd_config_t, f)
#define KiB 1024LL
#define MiB (1024LL * 1024)
#define GiB (1024LL * 1024 * 1024)

static const opt_t opts[] = {
  {"DATABASE_URL", "database-url", T_STR, O(database_url), "", 0, 0, "PostgreSQL URL or conninfo"},
  {"BATCHD_LISTEN", "listen", T_STR, O(listen), "127.0.0.1:8080", 0, 0, "address:port to listen on"},
  {"BATCHD_PUBLIC_URL", "public-url", T_STR, O(public_url), "", 0, 0,
   "base URL of short, download, verification and resolver links (default http://<listen>)"},
  {"BATCHD_JWT_SECRET", "jwt-secret", T_STR, O(jwt_secret), "", 0, 0, "HS256 secret for /rpc JWTs"},
  {"BATCHD_JWT_MAX_TTL_S", "jwt-max-ttl-s", T_INT, O(jwt_max_ttl_s), "2592000", 60, 315360000,
   "longest JWT lifetime accepted: exp further out than now + this is 401"},
  {"BATCHD_SIGNING_KEY_FILE", "signing-key-file", T_STR, O(signing_key_file), "batchd-signing.key", 0, 0,
   "Ed25519 certificate signing key (created if missing)"},
  {"BATCHD_WORKERS", "workers", T_INT, O(workers), "0", 0, 64, "render threads (0 = number of CPUs)"},
  {"BATCHD_WORKER_NICE", "worker-nice", T_INT, O(worker_nice), "0", 0, 19,
   "nice value of the render threads (above 0: requests and the database go first)"},
  {"BATCHD_CERT_PNG_RENDERS", "cert-png-renders", T_INT, O(cert_png_renders), "2", 1, 64,
   "certificate PNGs rendered on first request at once (beyond: 503 with Retry-After)"},
  {"BATCHD_PG_CONNS", "pg-conns", T_INT, O(pg_conns), "4", 1, 256, "PostgreSQL connections"},
  {"BATCHD_PG_PIPELINE", "pg-pipeline", T_INT, O(pg_pipeline), "64", 1, 4096, "queries in flight per connection"},
  {"BATCHD_PG_QUEUE_CAP", "pg-queue-cap", T_INT, O(pg_queue_cap), "4096", 1, 1000000,
   "queries waiting for a connection before 503"},
  {"BATCHD_PG_QUEUE_TIMEOUT_MS", "pg-queue-timeout-ms", T_INT, O(pg_queue_timeout_ms), "2000", 10, 600000,
   "a query waiting longer gets 503"},
  {"BATCHD_REUSEPORT", "reuseport", T_BOOL, O(reuseport), "0", 0, 1, "SO_REUSEPORT: processes share the port"},
  {"BATCHD_MAX_HEADER_BYTES", "max-header-bytes", T_INT, O(max_header_bytes), "16384", 256, 1 * MiB,
   "request line + headers (431)"},
  {"BATCHD_MAX_JSON_BODY", "max-json-body", T_INT, O(max_json_body), "10485760", 1, 1 * GiB, "JSON body bytes (413)"},
  {"BATCHD_MAX_UPLOAD_BODY", "max-upload-body", T_INT, O(max_upload_body), "1073741824", 1, 64 * GiB,
   "upload body bytes (413)"},
  {"BATCHD_MAX_CSV_ROWS", "max-csv-rows", T_INT, O(max_csv_rows), "1000000", 1, 100000000, "rows per roster (422)"},
  {"BATCHD_MAX_CSV_FIELD", "max-csv-field", T_INT, O(max_csv_field), "65536", 16, 16 * MiB, "bytes per CSV field (422)"},
  {"BATCHD_MAX_JSON_DEPTH", "max-json-depth", T_INT, O(max_json_depth), "32", 2, 1000, "JSON nesting (400)"},
  {"BATCHD_MAX_QR_ITEMS", "max-qr-items", T_INT, O(max_qr_items), "1000", 1, 100000, "items per QR batch (400)"},
  {"BATCHD_MAX_UPLOADS", "max-uploads", T_INT, O(max_uploads), "2", 1, 256,
   "roster uploads in progress at once; each pins a PostgreSQL connection (503 beyond)"},
  {"BATCHD_MAX_CONNECTIONS", "max-connections", T_INT, O(max_connections), "20000", 1, 1000000,
   "client connections held at once"},
  {"BATCHD_HEADER_TIMEOUT_MS", "header-timeout-ms", T_INT, O(header_timeout_ms), "10000", 10, 3600000,
   "request line + headers deadline (408)"},
  {"BATCHD_BODY_TIMEOUT_MS", "body-timeout-ms", T_INT, O(body_timeout_ms), "30000", 10, 3600000,
   "idle time inside a body (408)"},
  {"BATCHD_KEEPALIVE_TIMEOUT_MS", "keepalive-timeout-ms", T_INT, O(keepalive_timeout_ms), "75000", 10, 3600000,
   "idle keep-alive connection"},
  {"BATCHD_SHUTDOWN_GRACE_MS", "shutdown-grace-ms", T_INT, O(shutdown_grace_ms), "10000", 0, 600000,
   "SIGTERM: time given to in-flight requests and jobs"},
  {"BATCHD_RATE_LIMIT", "rate-limit", T_DOUBLE, O(rate_limit), "50", 0, 0,
   "requests per second per credential (0 disables)"},
  {"BATCHD_RATE_BURST", "rate-burst", T_INT, O(rate_burst), "100", 1, 10000000, "token bucket size"},
  {"BATCHD_JOB_LEASE_MS", "job-lease-ms", T_INT, O(job_lease_ms), "30000", 100, 3600000,
   "a job not renewed within this is taken over by another process"},
  {"BATCHD_JOB_POLL_MS", "job-poll-ms", T_INT, O(job_poll_ms), "1000", 10, 600000, "job queue poll interval"},
  {"BATCHD_ACCESS_LOG", "access-log", T_BOOL, O(access_log), "1", 0, 1, "JSON access log on stderr"},
  {"BATCHD_IDEMPOTENCY_TTL_S", "idempotency-ttl-s", T_INT, O(idempotency_ttl_s), "86400", 1, 31536000,
   "how long Idempotency-Key responses are kept"},
  {"BATCHD_COUNTRY_HEADER", "country-header", T_STR, O(country_header), "X-Country-Code", 0, 0,
   "header set by a trusted proxy with the client's ISO country code (scan analytics)"},
  {"BATCHD_LOGO_ALLOWLIST", "logo-allowlist", T_STR, O(logo_allowlist), "", 0, 0,
   "comma-separated hosts http(s) QR logos may be fetched from (empty: none)"},
  {"BATCHD_LOGO_FETCH_TIMEOUT_MS", "logo-fetch-timeout-ms", T_INT, O(logo_fetch_timeout_ms), "5000", 100, 60000,
   "time limit of one remote logo fetch (size limit: 1 MiB)"},
  {"BATCHD_MINT_CHUNK_UNITS", "mint-chunk-units", T_INT, O(mint_chunk_units), "100000", 1000, 1000000,
   "units a mint job writes per COPY transaction (its resume granularity)"},
  {"BATCHD_MINT_WRITERS", "mint-writers", T_INT, O(mint_writers), "2", 1, 8,
   "connections a mint job writes through in parallel (each pinned while it writes)"},
  {"BATCHD_RESOLVER_CACHE", "resolver-cache", T_INT, O(resolver_cache), "262144", 0, 16777216,
   "GS1 resolver identities kept in memory (0 = none)"},
  {"BATCHD_RESOLVER_SCAN_BUFFER", "resolver-scan-buffer", T_INT, O(resolver_scan_buffer), "200000", 1, 16777216,
   "units whose resolver scans are counted in memory between two flushes (beyond: counted as dropped)"},
  {"BATCHD_RESOLVER_SCAN_FLUSH_MS", "resolver-scan-flush-ms", T_INT, O(resolver_scan_flush_ms), "1000", 10, 60000,
   "how often the resolver's scan counts are written to the database"},
  {"BATCHD_WEBHOOK_KEY_FILE", "webhook-key-file", T_STR, O(webhook_key_file), "batchd-webhook.key", 0, 0,
   "key that seals webhook secrets at rest (created if missing)"},
  {"BATCHD_WEBHOOK_ALLOW_HTTP", "webhook-allow-http", T_BOOL, O(webhook_allow_http), "0", 0, 1,
   "accept http:// webhook URLs (default: https only)"},
  {"BATCHD_WEBHOOK_ALLOW_PRIVATE", "webhook-allow-private", T_BOOL, O(webhook_allow_private), "0", 0, 1,
   "deliver to loopback, private, link-local and multicast addresses (default: refused)"},
  {"BATCHD_WEBHOOK_TIMEOUT_MS", "webhook-timeout-ms", T_INT, O(webhook_timeout_ms), "10000", 100, 60000,
   "time limit of one webhook delivery"},
  {"BATCHD_WEBHOOK_CONCURRENCY", "webhook-concurrency", T_INT, O(webhook_concurrency), "64", 1, 4096,
   "webhook deliveries in flight per process"},
  {"BATCHD_WEBHOOK_PER_ENDPOINT", "webhook-per-endpoint", T_INT, O(webhook_per_endpoint), "4", 1, 64,
   "webhook deliveries in flight per endpoint and process"},
  {"BATCHD_WEBHOOK_RETRY_BASE_MS", "webhook-retry-base-ms", T_INT, O(webhook_retry_base_ms), "5000", 10, 3600000,
   "first retry delay of a failed delivery (doubling, with jitter, up to an hour)"},
  {"BATCHD_WEBHOOK_RETRY_FOR_S", "webhook-retry-for-s", T_INT, O(webhook_retry_for_s), "86400", 1, 2592000,
   "a delivery still failing this long after its event is failed"},
  {"BATCHD_WEBHOOK_DISABLE_AFTER_S", "webhook-disable-after-s", T_INT, O(webhook_disable_after_s), "86400", 1,
   2592000, "an endpoint failing every delivery this long is disabled"},
  {"BATCHD_MAX_WEBHOOKS", "max-webhooks", T_INT, O(max_webhooks), "100", 1, 100000,
   "webhook endpoints per workspace, institution or brand"},
  {"BATCHD_SMTP_URL", "smtp-url", T_STR, O(smtp_url), "", 0, 0,
   "mail server for certificate e-mail: smtp://host:port (STARTTLS required) or smtps://host:port (\"\": none)"},
  {"BATCHD_SMTP_INSECURE", "smtp-insecure", T_BOOL, O(smtp_insecure), "0", 0, 1,
   "send over smtp:// without STARTTLS (plain text; local relays only)"},
  {"BATCHD_SMTP_USER", "smtp-user", T_STR, O(smtp_user), "", 0, 0, "SMTP AUTH user name (\"\": no AUTH)"},
  {"BATCHD_SMTP_PASSWORD", "smtp-password", T_STR, O(smtp_password), "", 0, 0, "SMTP AUTH password"},
  {"BATCHD_SMTP_FROM", "smtp-from", T_STR, O(smtp_from), "", 0, 0,
   "sender of e-mail: addr@example.org or Name <addr@example.org> (required with BATCHD_SMTP_URL)"},
  {"BATCHD_SMTP_CA_FILE", "smtp-ca-file", T_STR, O(smtp_ca_file), "", 0, 0,
   "CA certificates (PEM) the mail server's certificate is verified against (\"\": the system's)"},
  {"BATCHD_SMTP_RATE", "smtp-rate", T_DOUBLE, O(smtp_rate), "50", 0, 0,
   "e-mail messages started per second per process (token bucket; 0 = no limit)"},
  {"BATCHD_SMTP_CONNECTIONS", "smtp-connections", T_INT, O(smtp_connections), "4", 1, 256,
   "SMTP connections per process, kept open and reused across messages"},
  {"BATCHD_SMTP_TIMEOUT_MS", "smtp-timeout-ms", T_INT, O(smtp_timeout_ms), "60000", 100, 600000,
   "time limit of sending one e-mail message"},
  {"BATCHD_SMTP_RETRY_BASE_MS", "smtp-retry-base-ms", T_INT, O(smtp_retry_base_ms), "30000", 10, 3600000,
   "first retry delay of a message the server deferred (doubling, with jitter, up to an hour)"},
  {"BATCHD_SMTP_RETRY_FOR_S", "smtp-retry-for-s", T_INT, O(smtp_retry_for_s), "86400", 1, 2592000,
   "a message still not accepted this long after it was queued is failed"},
  {"BATCHD_SMTP_LEASE_S", "smtp-lease-s", T_INT, O(smtp_lease_s), "300", 5, 86400,
   "a message claimed by a process that died is sent again after this (at least 2 x BATCHD_SMTP_TIMEOUT_MS + 10 s)"},
};

static bool set_opt(bd_config_t *cfg, const opt_t *o, const char *v, const char *src) {
  char *base = (char *)cfg + o->off;
  switch (o->type) {
  case T_STR: {
    char **dst = (char **)base;
    free(*dst);
    *dst = bd_strdup(v);
    return true;
  }
  case T_BOOL: {
    int64_t *dst = (int64_t *)base;
    if (!strcmp(v, "1") || !strcasecmp(v, "true") || !strcasecmp(v, "yes") || !strcasecmp(v, "on")) *dst = 1;
    else if (!strcmp(v, "0") || !strcasecmp(v, "false") || !strcasecmp(v, "no") || !strcasecmp(v, "off") || !*v) *dst = 0;
    else {
      fprintf(stderr, "batchd: %s: expected a boolean, got \"%s\"\n", src, v);
      return false;
    }
    return true;
  }
  case T_INT: {
    char *end;
    errno = 0;
    long long n = strtoll(v, &end, 10);
    if (errno || end == v || *end || n < o->min || n > o->max) {
      fprintf(stderr, "batchd: %s: expected an integer in [%lld, %lld], got \"%s\"\n", src, (long long)o->min,
              (long long)o->max, v);
      return false;
    }
    *(int64_t *)base = n;
    return true;
  }
  case T_DOUBLE: {
    char *end;
    errno = 0;
    double d = strtod(v, &end);
    if (errno || end == v || *end || d < 0) {
      fprintf(stderr, "batchd: %s: expected a non-negative number, got \"%s\"\n", src, v);
      return false;
    }
    *(double *)base = d;
    return true;
  }
  }
  return false;
}

/* Where each setting's value came from, for `batchd config check`. */
static char g_source[BD_ARRAY_LEN(opts)][160];

static void set_source(size_t i, const char *fmt, const char *a, long n) {
  snprintf(g_source[i], sizeof g_source[i], fmt, a, n);
}

static const opt_t *opt_by_env(const char *name, size_t len, size_t *idx) {
  for (size_t i = 0; i < BD_ARRAY_LEN(opts); i++)
    if (strlen(opts[i].env) == len && !strncmp(opts[i].env, name, len)) return *idx = i, &opts[i];
  return NULL;
}

/* A value of a config file line: surrounding blanks trimmed; "..." (with
 * \" and \\ escapes) or '...' unquoted. Returns false on an open quote. */
static bool file_value(char *v, char **out) {
  while (*v == ' ' || *v == '\t') v++;
  size_t n = strlen(v);
  while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t')) v[--n] = '\0';
  if (n == 0 || (v[0] != '"' && v[0] != '\'')) return *out = v, true;
  char q = v[0];
  char *w = v, *r = v + 1;
  for (; *r && *r != q; r++) {
    if (q == '"' && *r == '\\' && (r[1] == '"' || r[1] == '\\')) r++;
    *w++ = *r;
  }
  if (*r != q || r[1] != '\0') return false;
  *w = '\0';
  return *out = v, true;
}

/* The --config file: NAME=value lines with the environment's names (the
 * systemd EnvironmentFile syntax: '#' comments, blank lines, an optional
 * "export ", quoted values). An unknown name or one set twice is an error. */
static bool load_file(bd_config_t *cfg, const char *path) {
  FILE *f = fopen(path, "r");
  if (!f) {
    fprintf(stderr, "batchd: --config %s: %s\n", path, strerror(errno));
    return false;
  }
  bool seen[BD_ARRAY_LEN(opts)] = {false};
  char line[8192];
  long ln = 0;
  bool ok = true;
  while (ok && fgets(line, sizeof line, f)) {
    ln++;
    size_t len = strlen(line);
    if (len == sizeof line - 1 && line[len - 1] != '\n') {
      fprintf(stderr, "batchd: %s:%ld: line too long\n", path, ln);
      ok = false;
      break;
    }
    while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = '\0';
    char *p = line;
    while (*p == ' ' || *p == '\t') p++;
    if (*p == '\0' || *p == '#') continue;
    if (!strncmp(p, "export ", 7)) p += 7;
    char *eq = strchr(p, '=');
    size_t nlen = eq ? (size_t)(eq - p) : 0;
    while (nlen > 0 && (p[nlen - 1] == ' ' || p[nlen - 1] == '\t')) nlen--;
    size_t idx;
    const opt_t *o = eq ? opt_by_env(p, nlen, &idx) : NULL;
    char *v;
    char src[256];
    snprintf(src, sizeof src, "%s:%ld", path, ln);
    if (!eq) fprintf(stderr, "batchd: %s: expected NAME=value\n", src), ok = false;
    else if (!o) fprintf(stderr, "batchd: %s: unknown setting %.*s\n", src, (int)nlen, p), ok = false;
    else if (seen[idx]) fprintf(stderr, "batchd: %s: %s is set twice\n", src, o->env), ok = false;
    else if (!file_value(eq + 1, &v)) fprintf(stderr, "batchd: %s: unterminated quote\n", src), ok = false;
    else if (!set_opt(cfg, o, v, src)) ok = false;
    else {
      seen[idx] = true;
      set_source(idx, "%s:%ld", path, ln);
    }
  }
  fclose(f);
  return ok;
}

bool bd_config_load(bd_config_t *cfg, int argc, char **argv, int first, char **pos, int *npos) {
  memset(cfg, 0, sizeof *cfg);
  for (size_t i = 0; i < BD_ARRAY_LEN(opts); i++) {
    if (!set_opt(cfg, &opts[i], opts[i].def, "default")) return false;
    set_source(i, "%s", "default", 0);
  }
  /* defaults < --config FILE < environment < flags */
  for (int a = first; a < argc; a++) {
    const char *path = !strcmp(argv[a], "--config") && a + 1 < argc ? argv[a + 1]
                       : !strncmp(argv[a], "--config=", 9)          ? argv[a] + 9
                                                                    : NULL;
    if (!strcmp(argv[a], "--config") && a + 1 >= argc) {
      fprintf(stderr, "batchd: --config needs a file\n");
      return false;
    }
    if (path && !load_file(cfg, path)) return false;
  }
  for (size_t i = 0; i < BD_ARRAY_LEN(opts); i++) {
    const char *v = getenv(opts[i].env);
    if (v && !set_opt(cfg, &opts[i], v, opts[i].env)) return false;
    if (v) set_source(i, "%s", "environment", 0);
  }
  *npos = 0;
  for (int a = first; a < argc; a++) {
    const char *arg = argv[a];
    if (!strcmp(arg, "--config")) {
      a++;
      continue;
    }
    if (!strncmp(arg, "--config=", 9)) continue;
    if (strncmp(arg, "--", 2) != 0) {
      pos[(*npos)++] = argv[a];
      continue;
    }
    const char *name = arg + 2;
    const char *eq = strchr(name, '=');
    size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
    const opt_t *o = NULL;
    for (size_t i = 0; i < BD_ARRAY_LEN(opts); i++)
      if (strlen(opts[i].flag) == nlen && !strncmp(opts[i].flag, name, nlen)) o = &opts[i];
    if (!o) {
      /* not a setting: leave it to the subcommand (e.g. seed-demo --json) */
      pos[(*npos)++] = argv[a];
      continue;
    }
    const char *v = eq ? eq + 1 : NULL;
    if (!v) {
      if (o->type == T_BOOL) v = "1";
      else if (a + 1 < argc) v = argv[++a];
      else {
        fprintf(stderr, "batchd: --%s needs a value\n", o->flag);
        return false;
      }
    }
    if (!set_opt(cfg, o, v, arg)) return false;
    set_source((size_t)(o - opts), "flag --%s", o->flag, 0);
  }
  if (!*cfg->public_url) {
    free(cfg->public_url);
    size_t n = strlen(cfg->listen) + 8;
    cfg->public_url = bd_malloc(n);
    snprintf(cfg->public_url, n, "http://%s", cfg->listen);
  }
  /* links are built as public_url + "/path" */
  size_t pl = strlen(cfg->public_url);
  while (pl > 0 && cfg->public_url[pl - 1] == '/') cfg->public_url[--pl] = '\0';
  return true;
}

void bd_config_free(bd_config_t *cfg) {
  for (size_t i = 0; i < BD_ARRAY_LEN(opts); i++)
    if (opts[i].type == T_STR) {
      char **p = (char **)((char *)cfg + opts[i].off);
      free(*p);
      *p = NULL;
    }
}

/* roff text: a leading '.' or '\'' would start a request, '\\' an escape, '-' is a hyphen */
static void roff_text(FILE *out, const char *s) {
  if (*s == '.' || *s == '\'') fputs("\\&", out);
  for (; *s; s++) {
    if (*s == '\\') fputs("\\e", out);
    else if (*s == '-') fputs("\\-", out);
    else fputc(*s, out);
  }
}

void bd_config_man(FILE *out) {
  for (size_t i = 0; i < BD_ARRAY_LEN(opts); i++) {
    fputs(".TP\n.B ", out);
    roff_text(out, opts[i].env);
    fputs("\n", out);
    fputs("(flag \\fB\\-\\-", out);
    roff_text(out, opts[i].flag);
    fputs("\\fR; default ", out);
    roff_text(out, *opts[i].def ? opts[i].def : "none");
    if (opts[i].type == T_INT) fprintf(out, "; %lld to %lld", (long long)opts[i].min, (long long)opts[i].max);
    fputs(")\n", out);
    roff_text(out, opts[i].help);
    fputs("\n", out);
  }
}

void bd_config_usage(FILE *out) {
  fprintf(out, "Settings (environment variable, flag, default):\n");
  for (size_t i = 0; i < BD_ARRAY_LEN(opts); i++)
    fprintf(out, "  %-28s --%-22s %-14s %s\n", opts[i].env, opts[i].flag, *opts[i].def ? opts[i].def : "(none)",
            opts[i].help);
}

/* A value as `config check` shows it: the JWT secret never (only whether it
 * is set, and its length), the database URL without its password (URL
 * userinfo or a conninfo password=, also in a URL's query). */
static void masked(const opt_t *o, const char *v, char *out, size_t cap) {
  if (!strcmp(o->env, "BATCHD_JWT_SECRET") || !strcmp(o->env, "BATCHD_SMTP_PASSWORD")) {
    if (*v) snprintf(out, cap, "(set, %zu bytes)", strlen(v));
    else snprintf(out, cap, "(not set)");
    return;
  }
  snprintf(out, cap, "%s", v);
  if (strcmp(o->env, "DATABASE_URL") != 0) return;
  char *scheme = strstr(out, "://");
  if (scheme) {
    char *auth = scheme + 3, *at = strchr(auth, '@'), *slash = strchr(auth, '/');
    char *colon = at ? memchr(auth, ':', (size_t)(at - auth)) : NULL;
    if (at && colon && (!slash || at < slash)) {
      memmove(colon + 4, at, strlen(at) + 1);
      memcpy(colon, ":***", 4);
    }
  }
  for (char *p = out; (p = strstr(p, "password=")) != NULL;) {
    p += 9;
    size_t n = strcspn(p, " &");
    memmove(p + 3, p + n, strlen(p + n) + 1);
    memcpy(p, "***", 3);
  }
}

static void value_text(const bd_config_t *cfg, const opt_t *o, char *out, size_t cap) {
  const char *base = (const char *)cfg + o->off;
  char raw[4096];
  switch (o->type) {
  case T_STR: snprintf(raw, sizeof raw, "%s", *(char *const *)base ? *(char *const *)base : ""); break;
  case T_INT: snprintf(raw, sizeof raw, "%lld", (long long)*(const int64_t *)base); break;
  case T_BOOL: snprintf(raw, sizeof raw, "%s", *(const int64_t *)base ? "1" : "0"); break;
  case T_DOUBLE: snprintf(raw, sizeof raw, "%g", *(const double *)base); break;
  }
  masked(o, raw, out, cap);
}

json_t *bd_config_effective(const bd_config_t *cfg) {
  json_t *a = json_array();
  for (size_t i = 0; i < BD_ARRAY_LEN(opts); i++) {
    char v[4096];
    value_text(cfg, &opts[i], v, sizeof v);
    json_array_append_new(a, json_pack("{s:s, s:s, s:s}", "name", opts[i].env, "value", v, "source", g_source[i]));
  }
  return a;
}

void bd_config_print(const bd_config_t *cfg, FILE *out) {
  for (size_t i = 0; i < BD_ARRAY_LEN(opts); i++) {
    char v[4096];
    value_text(cfg, &opts[i], v, sizeof v);
    fprintf(out, "%-30s %-40s %s\n", opts[i].env, v, g_source[i]);
  }
}

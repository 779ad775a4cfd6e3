/* main.c: the composition root: the list of surfaces, the command line,
 * start-up and orderly shutdown.
 *
 * The core (src/core) knows no product; this file is the one place that
 * names the surfaces compiled in (src/qr, src/business, src/products and the
 * core's own test hooks) and hands their list to the core.
 *
 * Shutdown (SIGTERM/SIGINT): stop accepting and let in-flight requests
 * finish (bd_server_shutdown), let running jobs reach a checkpoint
 * (bd_jobs_stop), let webhook deliveries in flight end (bd_webhooks_stop),
 * run the surfaces' flush hooks (e.g. buffered scan events),
 * then close the database pool and every remaining handle. The loop then
 * runs out of handles and main checks uv_loop_close() == 0.
 */
#include "admin.h"
#include "app.h"
#include "idem.h"
#include "jobs.h"
#include "json.h"
#include "log.h"
#include "metrics.h"
#include "migrate.h"
#include "notify.h"
#include "seed.h"
#include "surface.h"
#include "util.h"
#include "mail.h"
#include "webhooks.h"
#include "work.h"

#include <errno.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

/* Each surface folder's top file defines one (see core/surface.h). */
extern const bd_surface_def_t bd_surface_business;
extern const bd_surface_def_t bd_surface_qr;
extern const bd_surface_def_t bd_surface_products;

/* In this order: routes are matched, surfaces initialised, flushed and
 * seeded. */
static const bd_surface_def_t *const g_surfaces[] = {
    &bd_surface_business, &bd_surface_qr, &bd_surface_products,
    &bd_surface_testhooks,
};

static uv_signal_t g_sigterm, g_sigint; /* shutdown triggers */
static uv_timer_t g_lag;                /* loop responsiveness probe */
static uint64_t g_lag_expected;         /* when the probe should fire (ns) */
static uv_timer_t g_migrate_retry;      /* start-up migrations retry */
static int g_exit_code;                 /* process exit status */
static int g_pending_stop;              /* shutdown steps still running */
static size_t g_flush_next;             /* next surface to flush */
static bd_route_t *g_routes;            /* all routes (ops + surfaces) */
static bd_error_scope_t g_scopes[BD_ARRAY_LEN(g_surfaces)]; /* error formats of the surfaces with paths */
static bool g_json;                     /* seed-demo --json */

#define LAG_PERIOD_MS 10

/* The commands, for --help and the man page alike. */
static const struct {
  const char *synopsis, *what;
} g_commands[] = {
    {"batchd [serve] [--flag value ...]", "serve HTTP (applies pending migrations first, under an advisory lock)"},
    {"batchd migrate", "apply pending migrations and exit"},
    {"batchd seed-demo [--tenant NAME] [--json]", "create a demo tenant on every surface, print its credentials"},
    {"batchd tenant|user|token|template VERB ...", "provision tenants, users, keys and templates (below)"},
    {"batchd config check [--json]",
     "print the effective settings, secrets masked, and where each came from; exit 2 if one is invalid"},
    {"batchd --help | --version | --man", "this text, the version, the man page (roff)"},
};

static void usage(FILE *out) {
  fprintf(out, "batchd %s: bulk issuance server (certificates, QR codes, product passports)\n\nUsage:\n",
          BATCHD_VERSION);
  for (size_t i = 0; i < BD_ARRAY_LEN(g_commands); i++)
    fprintf(out, "  %-42s %s\n", g_commands[i].synopsis, g_commands[i].what);
  fputs("\nEvery setting is an environment variable or a flag, and may be a NAME=value line of a\n"
        "--config FILE (any command); defaults < file < environment < flags.\n",
        out);
  bd_admin_usage(out, g_surfaces, BD_ARRAY_LEN(g_surfaces));
  fputc('\n', out);
  bd_config_usage(out);
}

/* batchd(1), written from the tables --help prints (make installs it). */
static void man_page(FILE *out) {
  fprintf(out,
          ".TH BATCHD 1 \"\" \"batchd %s\" \"User Commands\"\n"
          ".SH NAME\nbatchd \\- bulk issuance server: certificates, QR codes, product passports\n"
          ".SH SYNOPSIS\n",
          BATCHD_VERSION);
  for (size_t i = 0; i < BD_ARRAY_LEN(g_commands); i++) fprintf(out, ".B %s\n.br\n", g_commands[i].synopsis);
  fputs(".SH DESCRIPTION\n"
        "batchd is one single-threaded event-loop HTTP/1.1 server in front of PostgreSQL that turns batches into\n"
        "issued, verifiable things: certificate batches from CSV rosters, QR-code batches with dynamic redirects,\n"
        "and serialised product passports with GS1 Digital Link identifiers and a resolver. Rendering runs on a\n"
        "bounded pool of worker threads; every accepted batch is a durable job.\n"
        ".SH COMMANDS\n",
        out);
  for (size_t i = 0; i < BD_ARRAY_LEN(g_commands); i++)
    fprintf(out, ".TP\n.B %s\n%s\n", g_commands[i].synopsis, g_commands[i].what);
  bd_admin_man(out, g_surfaces, BD_ARRAY_LEN(g_surfaces));
  fputs(".SH OPTIONS\n.TP\n.BI \\-\\-config \" FILE\"\n"
        "read settings from FILE: NAME=value lines with the names below, '#' comments, optional quotes\n"
        "(the systemd EnvironmentFile syntax); an unknown name or one set twice is an error.\n"
        ".SH ENVIRONMENT\n"
        "Every setting is read from the environment variable named here or from its flag;\n"
        "defaults < \\-\\-config file < environment < flags.\n",
        out);
  bd_config_man(out);
  fputs(".SH SIGNALS\n"
        ".TP\n.B SIGTERM, SIGINT\n"
        "stop accepting, let requests and jobs finish within BATCHD_SHUTDOWN_GRACE_MS, then exit 0; a request\n"
        "still arriving when the grace ends is answered 503 with Retry-After.\n"
        ".SH FILES\n"
        ".TP\n.I /etc/batchd/batchd.env\nthe settings of the systemd unit (batchd.service)\n"
        ".TP\n.I /var/lib/batchd/batchd-signing.key\nthe certificate signing key of the unit, created on first start\n"
        ".SH EXIT STATUS\n0 stopped cleanly or the command succeeded; 1 a runtime failure (database, listen);\n"
        "2 a usage or configuration error; the provisioning commands also 3 not found, 4 already exists,\n"
        "5 invalid input.\n"
        ".SH SEE ALSO\n.BR systemd.exec (5),\n.BR psql (1)\n",
        out);
}

static void on_lag(uv_timer_t *t) {
  uint64_t now = uv_hrtime();
  if (g_lag_expected && now > g_lag_expected) bd_metrics_loop_lag((now - g_lag_expected) / 1000);
  g_lag_expected = now + (uint64_t)LAG_PERIOD_MS * 1000000ull;
}

/* --- access log ----------------------------------------------------------- */

static void on_request_done(bd_req_t *req, uint64_t dur_ns) {
  const char *route = req->route ? (req->route->name ? req->route->name : req->route->pattern) : "unmatched";
  /* a request refused before its method was read (garbage, a timeout) */
  const char *method = req->method_known ? llhttp_method_name((llhttp_method_t)req->method) : "-";
  bd_metrics_request(route, method, req->status, dur_ns);
  if (!bd_app.cfg.access_log) return;
  char ts[32];
  bd_time_fmt(ts, bd_wall_us(), true);
  bd_buf_t b = BD_BUF_INIT;
  bd_buf_printf(&b, "{\"ts\":\"%s\",\"level\":\"info\",\"msg\":\"request\",\"request_id\":\"%s\",\"method\":\"%s\","
                    "\"route\":\"%s\",\"path\":",
                ts, req->request_id, method, route);
  bd_json_escape(&b, req->path.p ? req->path.p : "", req->path.len);
  bd_buf_printf(&b, ",\"status\":%d,\"bytes\":%llu,\"duration_ms\":%.3f", req->status,
                (unsigned long long)req->resp_bytes, (double)dur_ns / 1e6);
  if (req->cred_id) {
    bd_buf_puts(&b, ",\"credential\":");
    bd_json_escape(&b, req->cred_id, strlen(req->cred_id));
  }
  bd_buf_putc(&b, '}');
  bd_log_json_line(b.data, b.len);
  bd_buf_free(&b);
}

/* --- shutdown ------------------------------------------------------------ */

static void close_walk(uv_handle_t *h, void *arg) {
  if (!uv_is_closing(h)) uv_close(h, NULL);
}

static void on_pool_closed(void *ud) {
  bd_idem_shutdown();
  bd_log_stop();
  /* signal handles, timers: close what is left so the loop can end */
  uv_walk(bd_app.loop, close_walk, NULL);
}

static void flush_next(void *ud) {
  while (g_flush_next < bd_app.nsurfaces) {
    const bd_surface_def_t *d = bd_app.surfaces[g_flush_next++];
    if (d->flush) {
      d->flush(flush_next, NULL);
      return;
    }
  }
  bd_work_cancel_all();
  bd_info("shutdown: closing the database pool");
  bd_pg_pool_close(bd_app.pg, on_pool_closed, NULL);
}

static void stop_step_done(void *ud) {
  if (--g_pending_stop > 0) return;
  bd_info("shutdown: requests, jobs and webhook deliveries finished");
  g_flush_next = 0;
  flush_next(NULL);
}

static void begin_shutdown(void) {
  if (bd_app.stopping) return;
  bd_app.stopping = true;
  bd_info("shutdown: stopping (grace %lld ms)", (long long)bd_app.cfg.shutdown_grace_ms);
  bd_notify("STOPPING=1");
  uv_timer_stop(&g_migrate_retry);
  g_pending_stop = 4;
  bd_server_shutdown(bd_app.server, (uint32_t)bd_app.cfg.shutdown_grace_ms, stop_step_done, NULL);
  bd_jobs_stop((uint32_t)bd_app.cfg.shutdown_grace_ms, stop_step_done, NULL);
  /* deliveries in flight end (or are given back) within the grace too */
  bd_webhooks_stop(stop_step_done, NULL);
  /* so do e-mail messages */
  bd_mail_stop(stop_step_done, NULL);
  /* renders waiting behind the running ones are given back to the jobs
   * (now stopping), which end after the running ones: the next owner
   * renders the rest */
  bd_work_cancel_background();
}

static void on_signal(uv_signal_t *h, int signum) { begin_shutdown(); }

/* --- serve ---------------------------------------------------------------- */

static void start_migrations(void);

static void on_migrate_retry(uv_timer_t *t) { start_migrations(); }

static void on_served_migrated(void *ud, int err, const char *msg) {
  if (bd_app.stopping) return;
  if (err) {
    bd_warn("migrations not applied (%s); retrying in 2 s", msg);
    uv_timer_start(&g_migrate_retry, on_migrate_retry, 2000, 0);
    return;
  }
  bd_app.migrated = true;
  bd_info("database schema at version %d", bd_migrate_latest());
  /* listening, pool up, schema current: ready (Type=notify units) */
  if (bd_notify("READY=1") != 0) bd_warn("could not notify the service manager: %s", strerror(errno));
  bd_jobs_config_t jc = {bd_app.instance, (uint32_t)bd_app.cfg.job_lease_ms, (uint32_t)bd_app.cfg.job_poll_ms};
  bd_jobs_start(bd_app.loop, bd_app.pg, &jc);
  bd_webhooks_start();
  bd_mail_start();
}

static void start_migrations(void) { bd_migrate_run(bd_app.pg, on_served_migrated, NULL); }

static int serve(void) {
  size_t n = bd_ops_routes_count, nscopes = 0;
  for (size_t i = 0; i < bd_app.nsurfaces; i++) n += bd_app.surfaces[i]->nroutes;
  g_routes = bd_calloc(n, sizeof *g_routes);
  size_t k = 0;
  for (size_t i = 0; i < bd_ops_routes_count; i++) g_routes[k++] = bd_ops_routes[i];
  for (size_t i = 0; i < bd_app.nsurfaces; i++) {
    const bd_surface_def_t *d = bd_app.surfaces[i];
    for (size_t j = 0; j < d->nroutes; j++) g_routes[k++] = d->routes[j];
    if (d->errors.paths) g_scopes[nscopes++] = d->errors;
  }

  bd_server_config_t sc = {
      .listen = bd_app.cfg.listen,
      .reuseport = bd_app.cfg.reuseport != 0,
      .max_header_bytes = (uint32_t)bd_app.cfg.max_header_bytes,
      .max_json_body = (uint64_t)bd_app.cfg.max_json_body,
      .max_upload_body = (uint64_t)bd_app.cfg.max_upload_body,
      .header_timeout_ms = (uint32_t)bd_app.cfg.header_timeout_ms,
      .body_timeout_ms = (uint32_t)bd_app.cfg.body_timeout_ms,
      .keepalive_timeout_ms = (uint32_t)bd_app.cfg.keepalive_timeout_ms,
      .max_connections = (uint32_t)bd_app.cfg.max_connections,
      .scopes = g_scopes,
      .nscopes = nscopes,
  };
  bd_http_on_request_done = on_request_done;
  bd_app.server = bd_server_new(bd_app.loop, &sc, g_routes, n);
  int rc = bd_server_listen(bd_app.server);
  if (rc) {
    fprintf(stderr, "batchd: cannot listen on %s: %s\n", bd_app.cfg.listen, uv_strerror(rc));
    return 1;
  }
  bd_app.rl = bd_rl_new(bd_app.cfg.rate_limit, (uint32_t)bd_app.cfg.rate_burst, 100000);
  for (size_t i = 0; i < bd_app.nsurfaces; i++)
    if (bd_app.surfaces[i]->init) bd_app.surfaces[i]->init();

  uv_signal_init(bd_app.loop, &g_sigterm);
  uv_signal_start(&g_sigterm, on_signal, SIGTERM);
  uv_signal_init(bd_app.loop, &g_sigint);
  uv_signal_start(&g_sigint, on_signal, SIGINT);
  uv_timer_init(bd_app.loop, &g_lag);
  uv_timer_start(&g_lag, on_lag, LAG_PERIOD_MS, LAG_PERIOD_MS);
  uv_timer_init(bd_app.loop, &g_migrate_retry);
  bd_info("listening on %s (public URL %s, pid %d)", bd_app.cfg.listen, bd_app.cfg.public_url, (int)getpid());
  start_migrations();
  return 0;
}

/* --- subcommands ---------------------------------------------------------- */

static void on_cmd_pool_closed(void *ud) { bd_log_stop(); }

static void on_migrate_only(void *ud, int err, const char *msg) {
  if (err) {
    fprintf(stderr, "batchd: migrate: %s\n", msg);
    g_exit_code = 1;
  } else {
    fprintf(stderr, "batchd: schema at version %d\n", bd_migrate_latest());
  }
  bd_pg_pool_close(bd_app.pg, on_cmd_pool_closed, NULL);
}

static void on_seeded(bd_seed_t *s) {
  if (s->err) {
    fprintf(stderr, "batchd: seed-demo: %s\n", s->errmsg);
    g_exit_code = 1;
  } else if (g_json) {
    char *text = json_dumps(s->out, JSON_COMPACT);
    printf("%s\n", text);
    free(text);
  } else {
    char *text = json_dumps(s->out, JSON_INDENT(2));
    printf("Demo tenant \"%s\" (tokens are shown once; run again for new ones):\n%s\n", s->tenant, text);
    free(text);
  }
  fflush(stdout);
  bd_seed_free(s);
  bd_pg_pool_close(bd_app.pg, on_cmd_pool_closed, NULL);
}

static const char *g_seed_tenant = "demo";

static void on_seed_migrated(void *ud, int err, const char *msg) {
  if (err) {
    fprintf(stderr, "batchd: seed-demo: migrations failed: %s\n", msg);
    g_exit_code = 1;
    bd_pg_pool_close(bd_app.pg, on_cmd_pool_closed, NULL);
    return;
  }
  /* surfaces' init() is for serving (jobs, timers, LISTEN): not needed here */
  bd_seed_run(bd_app.pg, g_seed_tenant, bd_app.cfg.public_url, bd_app.surfaces, bd_app.nsurfaces, on_seeded);
}

/* --- main ----------------------------------------------------------------- */

static void raise_fd_limit(void) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
}

/* batchd config check [--json]: the settings were loaded (a bad one has
 * already exited 2); shows them, and whether the required ones are there. */
static int config_command(char **pos, int npos) {
  bool json = false, check = false;
  for (int i = 0; i < npos; i++) {
    if (!strcmp(pos[i], "check")) check = true;
    else if (!strcmp(pos[i], "--json")) json = true;
    else {
      fprintf(stderr, "batchd: config: unexpected argument \"%s\"\n", pos[i]);
      return 2;
    }
  }
  if (!check) {
    fprintf(stderr, "batchd: config: the subcommand is \"check\"\n");
    return 2;
  }
  bool ok = *bd_app.cfg.database_url != '\0';
  if (json) {
    json_t *o = json_pack("{s:b, s:o}", "ok", ok, "settings", bd_config_effective(&bd_app.cfg));
    if (!ok) json_object_set_new(o, "problems", json_pack("[s]", "DATABASE_URL is required"));
    char *s = json_dumps(o, JSON_INDENT(2));
    puts(s);
    free(s);
    json_decref(o);
  } else {
    bd_config_print(&bd_app.cfg, stdout);
    if (!ok) fprintf(stderr, "batchd: DATABASE_URL (or --database-url) is required\n");
  }
  return ok ? 0 : 2;
}

int main(int argc, char **argv) {
  const char *cmd = "serve";
  int first = 1;
  if (argc > 1 && argv[1][0] != '-') {
    cmd = argv[1];
    first = 2;
  }
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
      usage(stdout);
      return 0;
    }
    if (!strcmp(argv[i], "--man")) {
      man_page(stdout);
      return 0;
    }
    if (!strcmp(argv[i], "--version")) {
      printf("batchd %s\n", BATCHD_VERSION);
      return 0;
    }
  }
  bool admin = bd_admin_is_command(cmd, g_surfaces, BD_ARRAY_LEN(g_surfaces));
  if (!admin && strcmp(cmd, "serve") && strcmp(cmd, "migrate") && strcmp(cmd, "seed-demo") && strcmp(cmd, "config")) {
    fprintf(stderr, "batchd: unknown command \"%s\"\n\n", cmd);
    usage(stderr);
    return 2;
  }
  char **pos = bd_calloc((size_t)argc + 1, sizeof *pos);
  int npos = 0;
  if (!bd_config_load(&bd_app.cfg, argc, argv, first, pos, &npos)) return 2;
  if (!strcmp(cmd, "config")) return config_command(pos, npos);
  if (admin) {
    if (sodium_init() < 0) {
      fprintf(stderr, "batchd: libsodium failed to initialise\n");
      return 1;
    }
    /* the products surface signs /rpc JWTs with it */
    if (*bd_app.cfg.jwt_secret) {
      bd_app.jwt_key_len = strlen(bd_app.cfg.jwt_secret);
      bd_app.jwt_key = (uint8_t *)bd_strdup(bd_app.cfg.jwt_secret);
    }
    int rc = bd_admin_main(cmd, pos, npos, bd_app.cfg.database_url, g_surfaces, BD_ARRAY_LEN(g_surfaces));
    free(pos);
    return rc;
  }
  for (int i = 0; i < npos; i++) {
    if (!strcmp(cmd, "seed-demo") && !strcmp(pos[i], "--json")) g_json = true;
    else if (!strcmp(cmd, "seed-demo") && !strcmp(pos[i], "--tenant") && i + 1 < npos) g_seed_tenant = pos[++i];
    else if (!strcmp(cmd, "seed-demo") && !strncmp(pos[i], "--tenant=", 9)) g_seed_tenant = pos[i] + 9;
    else {
      fprintf(stderr, "batchd: unexpected argument \"%s\"\n", pos[i]);
      return 2;
    }
  }
  if (!*bd_app.cfg.database_url) {
    fprintf(stderr, "batchd: DATABASE_URL (or --database-url) is required\n");
    return 2;
  }
  if (sodium_init() < 0) {
    fprintf(stderr, "batchd: libsodium failed to initialise\n");
    return 1;
  }
  signal(SIGPIPE, SIG_IGN);
  raise_fd_limit();

  /* libuv reads UV_THREADPOOL_SIZE once, at the first uv_queue_work: size
   * the pool for the render workers plus headroom for libuv's own work */
  int workers = (int)bd_app.cfg.workers;
  if (workers <= 0) {
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    workers = ncpu > 0 ? (int)ncpu : 2;
  }
  char tps[16];
  snprintf(tps, sizeof tps, "%d", workers + 2);
  setenv("UV_THREADPOOL_SIZE", tps, 1);

  bd_app.surfaces = g_surfaces;
  bd_app.nsurfaces = BD_ARRAY_LEN(g_surfaces);
  bd_app.loop = uv_default_loop();
  bd_log_start(bd_app.loop);
  bd_work_init(bd_app.loop, workers, (int)bd_app.cfg.worker_nice);
  char host[64] = "host";
  gethostname(host, sizeof host - 1);
  char rnd[9];
  bd_rand_base62(rnd, 8);
  snprintf(bd_app.instance, sizeof bd_app.instance, "%s:%d:%s", host, (int)getpid(), rnd);
  if (*bd_app.cfg.jwt_secret) {
    bd_app.jwt_key_len = strlen(bd_app.cfg.jwt_secret);
    bd_app.jwt_key = (uint8_t *)bd_strdup(bd_app.cfg.jwt_secret);
  }

  bool serving = !strcmp(cmd, "serve");
  bd_pg_config_t pc = {
      .conninfo = bd_app.cfg.database_url,
      .nconns = serving ? (int)bd_app.cfg.pg_conns : 1,
      .max_inflight = (int)bd_app.cfg.pg_pipeline,
      .queue_cap = (int)bd_app.cfg.pg_queue_cap,
      .queue_timeout_ms = (uint32_t)bd_app.cfg.pg_queue_timeout_ms,
      .connect_timeout_ms = 5000,
      .reconnect_min_ms = 100,
      .reconnect_max_ms = 2000,
      .application_name = "batchd",
  };
  if (!serving) pc.queue_timeout_ms = 30000; /* a command waits for the database to come up */
  bd_app.pg = bd_pg_pool_new(bd_app.loop, &pc);

  if (serving) {
    if (serve() != 0) {
      g_exit_code = 1;
      bd_app.stopping = true;
      if (bd_app.server) bd_server_shutdown(bd_app.server, 0, NULL, NULL);
      bd_pg_pool_close(bd_app.pg, on_pool_closed, NULL);
    }
  } else if (!strcmp(cmd, "migrate")) {
    bd_migrate_run(bd_app.pg, on_migrate_only, NULL);
  } else {
    bd_migrate_run(bd_app.pg, on_seed_migrated, NULL);
  }

  uv_run(bd_app.loop, UV_RUN_DEFAULT);
  int close_rc = uv_loop_close(bd_app.loop);
  /* the loop has ended: no render is running */
  for (size_t i = 0; i < bd_app.nsurfaces; i++)
    if (bd_app.surfaces[i]->fini) bd_app.surfaces[i]->fini();
  bd_log_flush();
  if (close_rc != 0) {
    fprintf(stderr, "batchd: event loop did not close cleanly (%s)\n", uv_strerror(close_rc));
    if (!g_exit_code) g_exit_code = 1;
  }
  if (serving && !g_exit_code) fprintf(stderr, "{\"level\":\"info\",\"msg\":\"stopped cleanly\"}\n");
  bd_rl_free(bd_app.rl);
  bd_metrics_free();
  free(g_routes);
  free(pos);
  free(bd_app.jwt_key);
  bd_config_free(&bd_app.cfg);
  return g_exit_code;
}

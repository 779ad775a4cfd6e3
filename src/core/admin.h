/* admin.h: the operator's command line: provisioning tenants, users, keys
 * and templates without demo data.
 *
 *   batchd tenant create|list|show|disable|enable ...
 *   batchd token create|list|revoke|rotate ...
 *   batchd <a surface's own commands> (user add|list|archive, template import)
 *
 * The core owns the generic part: parsing options against each command's
 * table, one synchronous libpq connection (a command is one short session,
 * nothing here runs in the server's loop), the output (a plain table or,
 * with --json, one JSON document on stdout), exit codes, and the tenant and
 * token commands that fan out to every surface through its hooks
 * (bd_admin_hooks_t). A surface adds what only it knows: what a tenant is
 * on that surface (an institution, a workspace, a brand), how its keys are
 * minted and ended, and commands of its own. --help and the man page are
 * written from the same tables.
 *
 * Exit codes (BD_ADMIN_*): 0 done; 1 the database failed or is not
 * migrated; 2 usage (unknown option, missing argument); 3 not found;
 * 4 already exists; 5 invalid input (a bad PNG, a bad template, a scope
 * that does not exist).
 */
#ifndef BD_ADMIN_H
#define BD_ADMIN_H

#include <jansson.h>
#include <libpq-fe.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

enum {
  BD_ADMIN_OK = 0,
  BD_ADMIN_EDB = 1,
  BD_ADMIN_EUSAGE = 2,
  BD_ADMIN_ENOTFOUND = 3,
  BD_ADMIN_ECONFLICT = 4,
  BD_ADMIN_EINVALID = 5,
};

typedef struct bd_admin bd_admin_t;

/* One option of a command: "--name ARG" (arg NULL: a switch "--name"). */
typedef struct {
  const char *name;   /* without the dashes */
  const char *arg;    /* metavariable for help, NULL for a switch */
  bool multi;         /* may be given more than once */
  bool required;
  const char *help;
} bd_admin_opt_t;

typedef struct {
  const char *group;            /* "user" */
  const char *verb;             /* "add" */
  const char *args;             /* positional synopsis ("NAME", "ID", NULL: none) */
  int nargs;                    /* exactly this many positional arguments */
  const bd_admin_opt_t *opts;   /* ends with {NULL} */
  const char *what;             /* one line for --help */
  int (*run)(bd_admin_t *a);    /* returns a BD_ADMIN_* code */
} bd_admin_cmd_t;

/* What a surface contributes (surface.h: bd_surface_def_t.admin). Every
 * hook is optional. Hooks run inside the command's transaction; they
 * return BD_ADMIN_OK or fail with bd_admin_fail. */
typedef struct {
  /* tenant create: the surface's top object for tenant `tid`, described in `out` */
  int (*provision)(bd_admin_t *a, int64_t tid, json_t *out);
  /* tenant show: the surface's view of the tenant into `out` */
  int (*describe)(bd_admin_t *a, int64_t tid, json_t *out);
  /* token create --surface <name>: the options beyond the common ones
   * (--tenant, --surface, --name, --expires-in-days), ending with {NULL};
   * `expires_s` is 0 for no expiry (or the surface's longest). Fills out
   * with at least "id" and "token" (the secret, printed once). */
  const bd_admin_opt_t *token_opts;
  int (*token_create)(bd_admin_t *a, int64_t tid, int64_t expires_s, json_t *out);
  /* token list: appends one object per key to rows (never a secret);
   * tid < 0 means every tenant; all: include revoked and expired ones. Rows
   * have id, surface, tenant, name, grants, created_at, expires_at,
   * revoked_at, last_used_at. */
  int (*token_list)(bd_admin_t *a, int64_t tid, bool all, json_t *rows);
  /* token revoke/rotate ID: BD_ADMIN_ENOTFOUND (without bd_admin_fail)
   * when the id is not one of this surface's, so the next is asked.
   * Rotation mints a successor with the same grants; the old key keeps
   * working for grace_s seconds. */
  int (*token_revoke)(bd_admin_t *a, const char *id, json_t *out);
  int (*token_rotate)(bd_admin_t *a, const char *id, int64_t grace_s, json_t *out);
  /* commands of the surface's own */
  const bd_admin_cmd_t *cmds;
  size_t ncmds;
} bd_admin_hooks_t;

/* --- for the commands and hooks ------------------------------------------ */

/* The value of --name (the last one given), or NULL. */
const char *bd_admin_opt(const bd_admin_t *a, const char *name);
/* Every value of a multi option, in order; returns how many. */
size_t bd_admin_opts(const bd_admin_t *a, const char *name, const char ***vals);
/* Whether switch --name was given. */
bool bd_admin_flag(const bd_admin_t *a, const char *name);
/* Positional argument i (0-based; the table's nargs were checked). */
const char *bd_admin_arg(const bd_admin_t *a, int i);
/* The surface named by --surface of token create (NULL elsewhere). */
const char *bd_admin_surface(const bd_admin_t *a);

/* The code of the first failure so far (BD_ADMIN_OK: none). */
int bd_admin_code(const bd_admin_t *a);
/* Records the message printed on failure and returns code. */
int bd_admin_fail(bd_admin_t *a, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Runs one statement (text parameters; NULL = SQL NULL). On error fails the
 * command (unique violation → ECONFLICT, others → EDB) and returns NULL. */
PGresult *bd_admin_exec(bd_admin_t *a, const char *sql, int n, const char *const *params);
/* Same, with binary-capable parameters (lengths/formats as PQexecParams). */
PGresult *bd_admin_exec_bin(bd_admin_t *a, const char *sql, int n, const char *const *params, const int *lens,
                            const int *formats);
/* The enabled tenant called `name` (its id), or -1 after failing ENOTFOUND. */
int64_t bd_admin_tenant(bd_admin_t *a, const char *name);
/* Reads a whole file (at most max bytes) or fails EINVALID; free() it. */
char *bd_admin_read_file(bd_admin_t *a, const char *path, size_t max, size_t *len);
/* The stored id of a key shown as prefix + 12 base62 (auth.h), or NULL
 * when shown is not of that form (not this surface's key). */
const char *bd_admin_own_id(const char *shown, const char *prefix);
/* token revoke on a table of keys with id and revoked_at (012's
 * convention: a future revoked_at is a grace period): ends key `stored`
 * now, keeping an earlier end, and fills out with {id: shown, revoked_at}.
 * ENOTFOUND (failed) when there is no such key. table is a literal. */
int bd_admin_revoke_row(bd_admin_t *a, const char *table, const char *shown, const char *stored, json_t *out);
/* token list: runs sql ($1 the tenant id or -1 for all, $2 whether
 * revoked and expired keys are included) whose columns are id, tenant,
 * name, grants (a JSON array as text), created_at, expires_at, revoked_at,
 * last_used_at and one more, named extra, and appends a row object each. */
int bd_admin_token_rows(bd_admin_t *a, const char *surface, const char *sql, int64_t tid, bool all,
                        const char *extra, json_t *rows);
/* A column as a JSON value: NULL → null, else a string. */
json_t *bd_admin_col(PGresult *r, int row, int col);
/* The command's result, printed after COMMIT: an object (plain: one
 * "key: value" line each) or an array of objects (plain: a table of
 * `columns`, NULL-terminated). Takes the reference. */
void bd_admin_result(bd_admin_t *a, json_t *v, const char *const *columns);
/* A note printed on stderr in plain mode ("the token is shown once"). */
void bd_admin_note(bd_admin_t *a, const char *note);

/* --- for main.c ------------------------------------------------------------ */

struct bd_surface_def;
/* Whether argv[1] names an admin command group (tenant, token, or a
 * surface's group). */
bool bd_admin_is_command(const char *group, const struct bd_surface_def *const *surfaces, size_t n);
/* Runs `batchd GROUP VERB ...` (pos: the arguments after the settings were
 * taken out, pos[0] = VERB) against conninfo; returns the exit code. */
int bd_admin_main(const char *group, char **pos, int npos, const char *conninfo,
                  const struct bd_surface_def *const *surfaces, size_t n);
/* --help and the man page: every admin command with its options. */
void bd_admin_usage(FILE *out, const struct bd_surface_def *const *surfaces, size_t n);
void bd_admin_man(FILE *out, const struct bd_surface_def *const *surfaces, size_t n);

#endif

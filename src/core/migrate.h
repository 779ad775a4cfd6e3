/* migrate.h: versioned SQL migrations compiled into the binary.
 *
 * src/sql/NNN_name.sql files become bd_migrations[] at build time
 * (deps/embed.cmake). bd_migrate_run applies the pending ones in order, each
 * in its own transaction, under a session advisory lock so that several
 * processes starting at once apply each migration exactly once.
 * Loop thread only.
 */
#ifndef BD_MIGRATE_H
#define BD_MIGRATE_H

#include "pg.h"

typedef struct {
  int version;        /* NNN of the file name */
  const char *name;   /* file name without extension */
  const char *sql;    /* the file's text */
} bd_migration_t;

extern const bd_migration_t bd_migrations[];
extern const int bd_migrations_count;

/* done(ud, err, message): err 0 on success. Runs asynchronously. */
void bd_migrate_run(bd_pg_pool_t *pg, void (*done)(void *ud, int err, const char *msg), void *ud);
/* Highest version compiled in. */
int bd_migrate_latest(void);

#endif

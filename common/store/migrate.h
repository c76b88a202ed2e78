/*
 * migrate.h - numbered SQL migrations, applied at start-up exactly once.
 *
 * A migration is a file "NNNN_what_it_does.sql". The set is ordered by number;
 * numbers are unique. jn_migrate_apply() takes a PostgreSQL advisory lock, so any
 * number of processes starting at once apply each migration exactly once: the first
 * applies, the others wait and then find nothing left to do. Each migration runs in
 * its own transaction together with its row in junction_schema_migrations, which also
 * records a SHA-256 of the text: a migration edited after it was applied is refused.
 */
#ifndef JN_MIGRATE_H
#define JN_MIGRATE_H

#include <libpq-fe.h>
#include <stddef.h>

#include "core/err.h"

typedef struct {
    int version;      /* NNNN from the file name */
    const char *name; /* the file name */
    const char *sql;  /* the file's text */
} jn_migration_t;

/* The migrations compiled into this binary (common/store/migrations/), in file-name order. */
const jn_migration_t *jn_migrations_builtin(size_t *count);

/* Parses the version from a file name "NNNN_name.sql" (1..9999 digits, then '_',
 * a name of [a-z0-9_], then ".sql"). JN_ERR_INVALID otherwise. */
jn_err_t jn_migration_parse_name(const char *file_name, int *version);

/* Sorts list by version in place and checks it: every name parses and no version
 * repeats. On error writes the offending file into why. */
jn_err_t jn_migrations_order(jn_migration_t *list, size_t count, char *why, size_t why_len);

/* Loads every *.sql in dir (allocated; free with jn_migrations_free), ordered. */
jn_err_t jn_migrations_load_dir(const char *dir, jn_migration_t **list, size_t *count, char *why,
                                size_t why_len);
void jn_migrations_free(jn_migration_t *list, size_t count);

/* Applies what is not applied yet, in order, under the advisory lock. *applied (may be
 * NULL) receives how many this call applied. */
jn_err_t jn_migrate_apply(PGconn *conn, const jn_migration_t *list, size_t count, int *applied);

#endif

/*
 * migrate_probe - applies a folder of migrations to a database, as a separate process,
 * so tests can race several appliers. Prints "applied <n>" and exits 0, or exits 1.
 *
 *   migrate_probe <database url> <migrations folder>
 */
#include <stdio.h>

#include "core/log.h"
#include "store/migrate.h"
#include "store/pg.h"

int main(int argc, char **argv)
{
    jn_log_init("migrate_probe", JN_LOG_INFO);
    if (argc != 3) {
        fprintf(stderr, "usage: migrate_probe <database url> <migrations folder>\n");
        return 2;
    }
    jn_migration_t *list = NULL;
    size_t count = 0;
    char why[512];
    if (jn_migrations_load_dir(argv[2], &list, &count, why, sizeof why) != JN_OK) {
        fprintf(stderr, "%s\n", why);
        return 1;
    }
    PGconn *conn = jn_pg_connect(argv[1], "migrate_probe");
    if (!conn)
        return 1;
    int applied = 0;
    jn_err_t err = jn_migrate_apply(conn, list, count, &applied);
    PQfinish(conn);
    jn_migrations_free(list, count);
    if (err)
        return 1;
    printf("applied %d\n", applied);
    return 0;
}

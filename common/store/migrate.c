/*
 * migrate.c - ordering and exactly-once application of SQL migrations.
 *
 * Concurrency: pg_advisory_lock on a fixed key serialises appliers across processes
 * and hosts; the applied set is read only after the lock is held, so a process that
 * waited sees the work of the one before it.
 */
#include "store/migrate.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/crypto.h"
#include "core/embedded.h"
#include "core/log.h"
#include "store/pg.h"

/* An arbitrary constant: the advisory lock key of migrations ("jn" "mg"). */
#define MIGRATION_LOCK_KEY "7236706967"

const jn_migration_t *jn_migrations_builtin(size_t *count)
{
    /* Built on first use, at start-up, before any thread exists. The embedded files are
     * checked by a unit test, so an ordering error here is a build that never passed. */
    static jn_migration_t *list;
    static size_t n;
    if (!list) {
        n = jn_embedded_migrations_count;
        list = calloc(n ? n : 1, sizeof *list);
        if (!list)
            abort();
        for (size_t i = 0; i < n; i++)
            list[i] =
                (jn_migration_t){0, jn_embedded_migrations[i].name, jn_embedded_migrations[i].data};
        char why[256];
        if (jn_migrations_order(list, n, why, sizeof why) != JN_OK) {
            jn_log_error("migrate", "%s", why);
            abort();
        }
    }
    *count = n;
    return list;
}

jn_err_t jn_migration_parse_name(const char *file_name, int *version)
{
    const char *p = file_name;
    int v = 0, digits = 0;
    while (*p >= '0' && *p <= '9') {
        if (++digits > 4)
            return JN_ERR_INVALID;
        v = v * 10 + (*p - '0');
        p++;
    }
    if (digits == 0 || v == 0 || *p != '_')
        return JN_ERR_INVALID;
    p++;
    const char *name_start = p;
    while ((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_')
        p++;
    if (p == name_start || strcmp(p, ".sql") != 0)
        return JN_ERR_INVALID;
    *version = v;
    return JN_OK;
}

static int by_version(const void *a, const void *b)
{
    const jn_migration_t *x = a, *y = b;
    return (x->version > y->version) - (x->version < y->version);
}

jn_err_t jn_migrations_order(jn_migration_t *list, size_t count, char *why, size_t why_len)
{
    for (size_t i = 0; i < count; i++) {
        if (jn_migration_parse_name(list[i].name, &list[i].version) != JN_OK) {
            snprintf(why, why_len,
                     "migration '%s': name must be NNNN_lowercase_words.sql with NNNN > 0",
                     list[i].name);
            return JN_ERR_INVALID;
        }
    }
    qsort(list, count, sizeof *list, by_version);
    for (size_t i = 1; i < count; i++) {
        if (list[i].version == list[i - 1].version) {
            snprintf(why, why_len, "migrations '%s' and '%s' have the same number %d",
                     list[i - 1].name, list[i].name, list[i].version);
            return JN_ERR_INVALID;
        }
    }
    return JN_OK;
}

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *data = NULL;
    size_t len = 0, cap = 0;
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
        if (len + n + 1 > cap) {
            cap = (len + n + 1) * 2;
            char *grown = realloc(data, cap);
            if (!grown)
                abort();
            data = grown;
        }
        memcpy(data + len, chunk, n);
        len += n;
    }
    fclose(f);
    if (!data) {
        data = malloc(1);
        if (!data)
            abort();
    }
    data[len] = '\0';
    return data;
}

jn_err_t jn_migrations_load_dir(const char *dir, jn_migration_t **list, size_t *count, char *why,
                                size_t why_len)
{
    *list = NULL;
    *count = 0;
    DIR *d = opendir(dir);
    if (!d) {
        snprintf(why, why_len, "cannot open migrations folder '%s'", dir);
        return JN_ERR_IO;
    }
    size_t cap = 0;
    struct dirent *e;
    jn_err_t err = JN_OK;
    while ((e = readdir(d)) != NULL) {
        size_t n = strlen(e->d_name);
        if (n < 5 || strcmp(e->d_name + n - 4, ".sql") != 0)
            continue;
        if (*count == cap) {
            cap = cap ? cap * 2 : 16;
            jn_migration_t *grown = realloc(*list, cap * sizeof **list);
            if (!grown)
                abort();
            *list = grown;
        }
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        char *sql = read_file(path);
        if (!sql) {
            snprintf(why, why_len, "cannot read migration '%s'", path);
            err = JN_ERR_IO;
            break;
        }
        char *name = strdup(e->d_name);
        if (!name)
            abort();
        (*list)[(*count)++] = (jn_migration_t){0, name, sql};
    }
    closedir(d);
    if (err == JN_OK)
        err = jn_migrations_order(*list, *count, why, why_len);
    if (err != JN_OK) {
        jn_migrations_free(*list, *count);
        *list = NULL;
        *count = 0;
    }
    return err;
}

void jn_migrations_free(jn_migration_t *list, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        free((char *)list[i].name);
        free((char *)list[i].sql);
    }
    free(list);
}

static void checksum(const char *sql, char out[65])
{
    unsigned char digest[32];
    jn_crypto_sha256(sql, strlen(sql), digest);
    jn_hex_encode(digest, sizeof digest, out);
}

static jn_err_t apply_one(PGconn *conn, const jn_migration_t *m)
{
    jn_err_t err = jn_pg_exec_script(conn, "BEGIN");
    if (err)
        return err;
    err = jn_pg_exec_script(conn, m->sql);
    if (err == JN_OK) {
        char version[16], sum[65];
        snprintf(version, sizeof version, "%d", m->version);
        checksum(m->sql, sum);
        const char *params[] = {version, m->name, sum};
        err = jn_pg_exec(conn,
                         "INSERT INTO junction_schema_migrations (version, name, checksum) "
                         "VALUES ($1, $2, $3)",
                         3, params, NULL);
    }
    if (err == JN_OK)
        err = jn_pg_exec_script(conn, "COMMIT");
    if (err != JN_OK) {
        jn_pg_exec_script(conn, "ROLLBACK");
        jn_log_error("migrate", "migration %s failed; nothing of it was applied", m->name);
    }
    return err;
}

/* Finds version in the applied set; returns its stored checksum or NULL. */
static const char *applied_checksum(PGresult *applied, int version)
{
    for (int row = 0; row < PQntuples(applied); row++) {
        if (strtol(PQgetvalue(applied, row, 0), NULL, 10) == version)
            return PQgetvalue(applied, row, 1);
    }
    return NULL;
}

static jn_err_t apply_locked(PGconn *conn, const jn_migration_t *list, size_t count, int *applied)
{
    jn_err_t err = jn_pg_exec_script(conn, "CREATE TABLE IF NOT EXISTS junction_schema_migrations ("
                                           " version integer PRIMARY KEY,"
                                           " name text NOT NULL,"
                                           " checksum text NOT NULL,"
                                           " applied_at timestamptz NOT NULL DEFAULT now())");
    if (err)
        return err;
    PGresult *done = NULL;
    err = jn_pg_exec(conn, "SELECT version, checksum FROM junction_schema_migrations", 0, NULL,
                     &done);
    if (err)
        return err;
    for (size_t i = 0; i < count && err == JN_OK; i++) {
        const char *stored = applied_checksum(done, list[i].version);
        if (stored) {
            char sum[65];
            checksum(list[i].sql, sum);
            if (strcmp(sum, stored) != 0) {
                jn_log_error("migrate",
                             "migration %s was changed after it was applied; add a new "
                             "migration instead of editing an old one",
                             list[i].name);
                err = JN_ERR_INVALID;
            }
            continue;
        }
        err = apply_one(conn, &list[i]);
        if (err == JN_OK) {
            jn_log_info("migrate", "applied %s", list[i].name);
            (*applied)++;
        }
    }
    PQclear(done);
    return err;
}

jn_err_t jn_migrate_apply(PGconn *conn, const jn_migration_t *list, size_t count, int *applied)
{
    int dummy = 0;
    if (!applied)
        applied = &dummy;
    *applied = 0;
    jn_err_t err = jn_pg_exec_script(conn, "SELECT pg_advisory_lock(" MIGRATION_LOCK_KEY ")");
    if (err)
        return err;
    err = apply_locked(conn, list, count, applied);
    jn_pg_exec_script(conn, "SELECT pg_advisory_unlock(" MIGRATION_LOCK_KEY ")");
    return err;
}

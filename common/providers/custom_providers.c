/*
 * custom_providers.c - the custom_providers table (migration 0002) and provider lookup.
 *
 * Lookups sit on the proxy's hot path, so definitions are cached per process for
 * CACHE_TTL_S seconds (as text: json-c objects must not be shared between threads). A
 * change made through this process is seen at once; one made through another gateway
 * within CACHE_TTL_S.
 */
#include "providers/custom_providers.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "store/pg.h"

#define CACHE_SLOTS 256
#define CACHE_TTL_S 2

typedef struct {
    long long env_id;
    char name[72];
    char *definition;
    time_t fetched;
} cache_slot_t;

static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;
static cache_slot_t cache[CACHE_SLOTS];

static json_object *cache_get(long long env_id, const char *name)
{
    json_object *found = NULL;
    time_t now = time(NULL);
    pthread_mutex_lock(&cache_lock);
    for (int i = 0; i < CACHE_SLOTS; i++) {
        cache_slot_t *c = &cache[i];
        if (c->definition && c->env_id == env_id && strcmp(c->name, name) == 0 &&
            now - c->fetched < CACHE_TTL_S) {
            found = json_tokener_parse(c->definition);
            break;
        }
    }
    pthread_mutex_unlock(&cache_lock);
    return found;
}

static void cache_put(long long env_id, const char *name, const char *definition)
{
    if (strlen(name) >= sizeof cache[0].name)
        return;
    char *copy = strdup(definition);
    if (!copy)
        abort();
    pthread_mutex_lock(&cache_lock);
    int slot = 0;
    for (int i = 0; i < CACHE_SLOTS; i++) {
        if (!cache[i].definition ||
            (cache[i].env_id == env_id && strcmp(cache[i].name, name) == 0)) {
            slot = i;
            break;
        }
        if (cache[i].fetched < cache[slot].fetched)
            slot = i; /* the oldest, if nothing is free */
    }
    free(cache[slot].definition);
    cache[slot].env_id = env_id;
    snprintf(cache[slot].name, sizeof cache[slot].name, "%s", name);
    cache[slot].definition = copy;
    cache[slot].fetched = time(NULL);
    pthread_mutex_unlock(&cache_lock);
}

static void cache_forget(long long env_id, const char *name)
{
    pthread_mutex_lock(&cache_lock);
    for (int i = 0; i < CACHE_SLOTS; i++) {
        if (cache[i].definition && cache[i].env_id == env_id && strcmp(cache[i].name, name) == 0) {
            free(cache[i].definition);
            cache[i].definition = NULL;
        }
    }
    pthread_mutex_unlock(&cache_lock);
}

jn_err_t jn_providers_lookup(const jn_catalog_t *catalog, PGconn *conn, long long env_id,
                             const char *name, json_object **out)
{
    *out = NULL;
    json_object *builtin = jn_catalog_get(catalog, name);
    if (builtin) {
        /* A private copy: json-c reference counts are not atomic, so threads must never
         * take references on the shared catalog entries. */
        if (json_object_deep_copy(builtin, out, NULL) != 0)
            return JN_ERR_NOMEM;
        return JN_OK;
    }
    if ((*out = cache_get(env_id, name)) != NULL)
        return JN_OK;
    char env[24];
    snprintf(env, sizeof env, "%lld", env_id);
    const char *params[] = {env, name};
    PGresult *r = NULL;
    jn_err_t err = jn_pg_exec(conn,
                              "SELECT definition::text FROM custom_providers "
                              "WHERE environment_id = $1 AND name = $2",
                              2, params, &r);
    if (err)
        return err;
    if (PQntuples(r) == 0) {
        PQclear(r);
        return JN_ERR_NOT_FOUND;
    }
    cache_put(env_id, name, PQgetvalue(r, 0, 0));
    *out = json_tokener_parse(PQgetvalue(r, 0, 0));
    PQclear(r);
    return *out ? JN_OK : JN_ERR_INTERNAL;
}

jn_err_t jn_custom_providers_put(const jn_catalog_t *catalog, PGconn *conn, long long env_id,
                                 json_object *definition, bool *created)
{
    json_object *name_obj = NULL;
    json_object_object_get_ex(definition, "name", &name_obj);
    const char *name = json_object_get_string(name_obj);
    if (!name || jn_catalog_get(catalog, name))
        return JN_ERR_CONFLICT;
    char env[24];
    snprintf(env, sizeof env, "%lld", env_id);
    const char *params[] = {env, name,
                            json_object_to_json_string_ext(definition, JSON_C_TO_STRING_PLAIN)};
    PGresult *r = NULL;
    /* xmax = 0 only for a freshly inserted row: tells insert from update in one trip. */
    jn_err_t err = jn_pg_exec(conn,
                              "INSERT INTO custom_providers (environment_id, name, definition) "
                              "VALUES ($1, $2, $3::jsonb) ON CONFLICT (environment_id, name) "
                              "DO UPDATE SET definition = EXCLUDED.definition, updated_at = now() "
                              "RETURNING (xmax = 0)",
                              3, params, &r);
    if (err)
        return err;
    *created = PQgetvalue(r, 0, 0)[0] == 't';
    PQclear(r);
    cache_forget(env_id, name);
    return JN_OK;
}

jn_err_t jn_custom_providers_list(PGconn *conn, long long env_id, json_object **out)
{
    *out = NULL;
    char env[24];
    snprintf(env, sizeof env, "%lld", env_id);
    const char *params[] = {env};
    PGresult *r = NULL;
    jn_err_t err = jn_pg_exec(conn,
                              "SELECT definition::text FROM custom_providers "
                              "WHERE environment_id = $1 ORDER BY name",
                              1, params, &r);
    if (err)
        return err;
    json_object *list = json_object_new_array();
    for (int i = 0; i < PQntuples(r); i++) {
        json_object *def = json_tokener_parse(PQgetvalue(r, i, 0));
        if (def)
            json_object_array_add(list, def);
    }
    PQclear(r);
    *out = list;
    return JN_OK;
}

jn_err_t jn_custom_providers_delete(PGconn *conn, long long env_id, const char *name)
{
    char env[24];
    snprintf(env, sizeof env, "%lld", env_id);
    const char *params[] = {env, name};
    PGresult *r = NULL;
    jn_err_t err = jn_pg_exec(conn,
                              "SELECT count(*) FROM integrations "
                              "WHERE environment_id = $1 AND provider = $2",
                              2, params, &r);
    if (err)
        return err;
    bool in_use = strcmp(PQgetvalue(r, 0, 0), "0") != 0;
    PQclear(r);
    if (in_use)
        return JN_ERR_CONFLICT;
    err = jn_pg_exec_found(conn,
                           "DELETE FROM custom_providers WHERE environment_id = $1 AND name = $2 "
                           "RETURNING id",
                           2, params);
    if (err == JN_OK)
        cache_forget(env_id, name);
    return err;
}

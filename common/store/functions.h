/*
 * functions.h - the functions (scripts) deployed to an integration.
 *
 * A deployment replaces the integration's whole set atomically: in one transaction,
 * holding the integration's row lock (so two deployments of one integration run one
 * after the other), it inserts the new functions, moves the current version of each
 * changed one to "previous", deletes those no longer sent, and leaves untouched those
 * whose source did not change. The caller checks every source (compiles it, checks its
 * declaration) before: this module stores, it does not judge.
 *
 * Every function takes the environment id and reaches only that environment's rows: an
 * integration or function of another environment is simply not found.
 */
#ifndef JN_FUNCTIONS_H
#define JN_FUNCTIONS_H

#include <json-c/json.h>
#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>

#include "core/err.h"

#define JN_FUNCTION_NAME_MAX 48 /* Lua shows at most 59 characters of a chunk name */

/* One function of a deployment (all borrowed). */
typedef struct {
    const char *name;
    const char *type; /* "action" or "sync" */
    const char *source;
    size_t source_len;
    json_object *declaration; /* its JSON form (scripts/declaration.h) */
} jn_function_input_t;

typedef struct {
    long long id;      /* the row's id (stable while the function exists) */
    char *integration; /* the integration's unique_key */
    char *provider;    /* the integration's provider */
    char *name;
    char *type;
    char checksum[65];
    char deployed_at[40];     /* ISO 8601 UTC with milliseconds */
    json_object *declaration; /* owned */
    char *source;             /* only when asked for; else NULL */
    bool has_previous;
    char previous_checksum[65];
    char previous_deployed_at[40];
    json_object *previous_declaration; /* owned; NULL without a previous version */
    char *previous_source;             /* only when asked for */
} jn_function_t;

/* What a deployment did: arrays of function names (owned). */
typedef struct {
    long long integration_id;
    json_object *added, *changed, *unchanged, *removed;
} jn_deployment_t;

void jn_function_cleanup(jn_function_t *f);
void jn_deployment_cleanup(jn_deployment_t *d);

/* Runs inside the deployment's transaction once the functions are written, with what
 * changed: the place where a deployment's effect on syncs is applied (a new sync
 * scheduled for the integration's connections, a removed one stopped, a changed one's
 * frequency updated). An error rolls the whole deployment back. May be NULL. */
typedef jn_err_t (*jn_functions_hook_fn)(PGconn *conn, long long env_id,
                                         const jn_deployment_t *deployment, void *ud);

/* The SHA-256 of a source, as lowercase hex. */
void jn_function_checksum(const char *source, size_t len, char out[65]);

/* Replaces the integration's set with fns (names unique, checked by the caller).
 * JN_ERR_NOT_FOUND when the integration does not exist in this environment. *out
 * (cleanup it) says what changed. Nothing is stored on any error. */
jn_err_t jn_functions_deploy(PGconn *conn, long long env_id, const char *integration,
                             const jn_function_input_t *fns, size_t n, jn_functions_hook_fn hook,
                             void *ud, jn_deployment_t *out);

/* The functions of one integration (integration non-NULL; JN_ERR_NOT_FOUND when it does
 * not exist) or of every integration of the environment (NULL), ordered by integration
 * and name, without sources. *list is new: cleanup each, then free it. */
jn_err_t jn_functions_list(PGconn *conn, long long env_id, const char *integration,
                           jn_function_t **list, size_t *count);

/* A page of one integration's functions for Nango's listing: those of type (NULL: any)
 * whose name contains search without regard to case (NULL: all), ordered by type then
 * name, at most limit from offset. *total counts every match, whatever the page.
 * JN_ERR_NOT_FOUND when the integration does not exist. *list as jn_functions_list. */
typedef struct {
    const char *type;
    const char *search;
    size_t offset, limit;
} jn_functions_query_t;

jn_err_t jn_functions_find(PGconn *conn, long long env_id, const char *integration,
                           const jn_functions_query_t *q, jn_function_t **list, size_t *count,
                           size_t *total);

/* The declarations (JSON form) of integration integration_id's sync functions, ordered by
 * name: a new array in *out. For a deployment's hook, inside its transaction. */
jn_err_t jn_functions_sync_declarations(PGconn *conn, long long env_id, long long integration_id,
                                        json_object **out);

/* One function, with its sources when with_source. JN_ERR_NOT_FOUND. */
jn_err_t jn_functions_get(PGconn *conn, long long env_id, const char *integration, const char *name,
                          bool with_source, jn_function_t *out);

/* Removes one function (a deployment of the set without it, hook included).
 * JN_ERR_NOT_FOUND when the integration or the function does not exist. */
jn_err_t jn_functions_delete(PGconn *conn, long long env_id, const char *integration,
                             const char *name, jn_functions_hook_fn hook, void *ud);

/* jn_functions_delete of a function only when it is of type ("action" or "sync"):
 * JN_ERR_NOT_FOUND, removing nothing, when the one of that name is of the other type. */
jn_err_t jn_functions_delete_typed(PGconn *conn, long long env_id, const char *integration,
                                   const char *name, const char *type, jn_functions_hook_fn hook,
                                   void *ud);

#endif

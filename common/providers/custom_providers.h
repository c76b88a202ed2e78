/*
 * custom_providers.h - providers an environment defines for itself, and the one lookup
 * that resolves a provider name for an environment (its own providers, then the
 * built-in catalog).
 *
 * A custom provider has exactly the fields of a catalog entry and passes the same
 * validation (jn_catalog_validate). Its name may not shadow a built-in provider, so a
 * name means the same thing in every environment that can see it.
 */
#ifndef JN_CUSTOM_PROVIDERS_H
#define JN_CUSTOM_PROVIDERS_H

#include <json-c/json.h>
#include <libpq-fe.h>

#include "providers/catalog.h"
#include "core/err.h"

/* Resolves name for env_id: *out is a new reference (json_object_put it).
 * JN_ERR_NOT_FOUND when neither the environment nor the catalog has it. Custom
 * definitions are cached for 2 s: another process's change shows within that time. */
jn_err_t jn_providers_lookup(const jn_catalog_t *catalog, PGconn *conn, long long env_id,
                             const char *name, json_object **out);

/* Creates or replaces the environment's provider definition->name (already validated).
 * *created tells which. JN_ERR_CONFLICT when the name belongs to the built-in catalog. */
jn_err_t jn_custom_providers_put(const jn_catalog_t *catalog, PGconn *conn, long long env_id,
                                 json_object *definition, bool *created);

/* The environment's custom providers, ordered by name: *out is a new JSON array. */
jn_err_t jn_custom_providers_list(PGconn *conn, long long env_id, json_object **out);

/* Deletes one; JN_ERR_NOT_FOUND when absent, JN_ERR_CONFLICT when an integration of the
 * environment still uses it. */
jn_err_t jn_custom_providers_delete(PGconn *conn, long long env_id, const char *name);

#endif

/*
 * conn_cache.h - what a provider call needs about a connection, kept in memory: the
 * connection with its opened credentials and config, and its provider's definition.
 *
 * The proxy and scripts call providers far more often than connections change, so the
 * database leaves the hot path: a call finds its connection here, and only a miss reads
 * PostgreSQL. Correctness across processes comes from invalidation, not from a short life:
 * every change to a connection, an integration, a custom provider or an environment
 * notifies every process (PostgreSQL NOTIFY from triggers, heard by the engine's
 * listener), which drops what it holds. A read that raced with a change is not kept: an
 * entry is stored only if no invalidation happened since its read began (the epoch). When
 * the listener is down, the cache is emptied and bypassed until it is back. Entries also
 * expire after a while, as a safety net.
 *
 * Entries are immutable and reference-counted (atomically): a call holds one while it
 * runs, whatever happens to the cache meanwhile. Their JSON objects are shared between
 * threads, so they are only read (see catalog.h for what that means with json-c).
 * Credentials live in memory as long as an entry does and are wiped when it goes.
 * Thread-safe.
 */
#ifndef JN_CONN_CACHE_H
#define JN_CONN_CACHE_H

#include <json-c/json.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/connections.h"

typedef struct jn_conn_cache jn_conn_cache_t;

typedef struct jn_conn_entry {
    long long env_id;
    jn_connection_t conn;  /* with credentials */
    json_object *provider; /* the provider's definition: the catalog's or the entry's own */
    /* private */
    bool provider_owned;
    atomic_int refs;
    uint64_t loaded_ms;
    char *key;
    struct jn_conn_entry *key_next, *row_next, *lru_prev, *lru_next;
    bool cached;
} jn_conn_entry_t;

/* A cache of at most max_entries entries, each kept at most ttl_ms. */
jn_conn_cache_t *jn_conn_cache_new(size_t max_entries, uint64_t ttl_ms);
void jn_conn_cache_free(jn_conn_cache_t *c);

/* A new entry holding conn (moved in: the caller's struct is emptied) and provider (owned
 * when provider_owned, else borrowed from the catalog, which outlives every entry). One
 * reference, the caller's. */
jn_conn_entry_t *jn_conn_entry_new(long long env_id, jn_connection_t *conn, json_object *provider,
                                   bool provider_owned);
void jn_conn_entry_ref(jn_conn_entry_t *e);
/* Drops a reference; the last one frees the entry and wipes its credentials. NULL is fine. */
void jn_conn_entry_unref(jn_conn_entry_t *e);

/* The entry for (env_id, integration unique key, connection id): a new reference, or NULL
 * when absent, expired or the cache is bypassed. */
jn_conn_entry_t *jn_conn_cache_get(jn_conn_cache_t *c, long long env_id,
                                   const char *provider_config_key, const char *connection_id);

/* The current epoch: take it before reading PostgreSQL, hand it to put. */
uint64_t jn_conn_cache_epoch(jn_conn_cache_t *c);

/* Stores e (taking a reference) unless an invalidation happened since epoch or the cache is
 * bypassed; replaces an entry with the same key. */
void jn_conn_cache_put(jn_conn_cache_t *c, jn_conn_entry_t *e, uint64_t epoch);

/* Drops the entry of connection row id (any environment). */
void jn_conn_cache_invalidate_connection(jn_conn_cache_t *c, long long row_id);
/* Drops every entry of an environment (an integration or custom provider changed). */
void jn_conn_cache_invalidate_env(jn_conn_cache_t *c, long long env_id);
/* Drops everything; with bypass, also stops storing until jn_conn_cache_resume(). */
void jn_conn_cache_clear(jn_conn_cache_t *c, bool bypass);
void jn_conn_cache_resume(jn_conn_cache_t *c);

/* Entries held now (for metrics and tests). */
size_t jn_conn_cache_size(jn_conn_cache_t *c);

#endif

/*
 * invalidation.h - hears what changed in PostgreSQL and drops what this process holds.
 *
 * A thread with its own connection LISTENs on junction_invalidate (announced by triggers,
 * migration 0009) and applies each message: a connection, integration, custom provider or
 * environment changed, so the connection cache forgets it and the environment cache
 * reloads. While the listener is not connected, messages could be missed, so the
 * connection cache is emptied and bypassed until the LISTEN is back; the environments are
 * reloaded then too, and every 30 s in any case.
 */
#ifndef JN_INVALIDATION_H
#define JN_INVALIDATION_H

#include "engine/env_cache.h"
#include "providers/conn_cache.h"

typedef struct jn_invalidation jn_invalidation_t;

/* Starts the listener thread. database_url is copied; the caches must outlive it. */
jn_invalidation_t *jn_invalidation_start(const char *database_url, const char *application_name,
                                         jn_env_cache_t *envs, jn_conn_cache_t *connections);

/* Also hears channel (at most 4 extra channels; call before the first LISTEN is made, i.e.
 * right after start): fn(payload, ud) runs on the listener thread for each notice, and
 * fn(NULL, ud) each time the LISTEN is (re)established, when notices may have been
 * missed (check what you wait for). fn must not block long. */
void jn_invalidation_subscribe(jn_invalidation_t *inv, const char *channel,
                               void (*fn)(const char *payload, void *ud), void *ud);

/* True while the LISTEN is established (the caches are trusted). */
bool jn_invalidation_listening(jn_invalidation_t *inv);

/* Stops and joins the thread. NULL is fine. */
void jn_invalidation_stop(jn_invalidation_t *inv);

#endif

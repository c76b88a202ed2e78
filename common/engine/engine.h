/*
 * engine.h - the context every Junction program builds the same way: configuration,
 * keys, the provider catalog, PostgreSQL, Kafka, the event loop and its task pool, the
 * provider HTTP transport, the environment and connection caches with their invalidation
 * listener, provider sessions, and the HTTP servers (the admin one always, the public one
 * for the gateway).
 *
 * jn_engine_start() does everything in a fixed order and exits the process with one clear
 * line when something cannot be set up: configuration first (fail fast on typos), then
 * PostgreSQL and migrations (the schema must exist before anything reads it; a program
 * waits for PostgreSQL at start), then Kafka (not waited for: librdkafka reconnects, and
 * /health reports the outage). A program then adds its routes and work, calls
 * jn_engine_listen(), loops until jn_service_stopping(), and calls jn_engine_stop(), which
 * tears down in the reverse order, letting in-flight requests finish.
 */
#ifndef JN_ENGINE_H
#define JN_ENGINE_H

#include "core/config.h"
#include "core/crypto.h"
#include "engine/env_cache.h"
#include "engine/invalidation.h"
#include "net/http_server.h"
#include "net/kafka.h"
#include "net/loop.h"
#include "net/service.h"
#include "net/taskpool.h"
#include "providers/catalog.h"
#include "providers/conn_cache.h"
#include "providers/provider_http.h"
#include "providers/session.h"
#include "store/pg.h"

#define JUNCTION_VERSION "0.2.0"

typedef struct {
    const char *name; /* "gateway", "scheduler", "worker" */
    jn_program_t program;
    jn_config_t config;
    jn_crypto_keyring_t keyring;
    jn_catalog_t *catalog;
    jn_pg_pool_t *pg;
    jn_kafka_producer_t *producer;
    jn_loop_t *loop;
    jn_taskpool_t *tasks;
    jn_provider_http_t *provider_http;
    jn_env_cache_t *envs;
    jn_conn_cache_t *connections;
    jn_invalidation_t *listener;
    jn_session_deps_t sessions;
    jn_http_server_t *http;  /* the public API: the gateway's; NULL elsewhere */
    jn_http_server_t *admin; /* /livez, /readyz, /health, /metrics */
    jn_service_ops_t ops;
} jn_engine_t;

/* Builds everything (see above); exits with status 1 or 2 and a log line on failure. */
void jn_engine_start(jn_engine_t *e, const char *name, jn_program_t program);

/* Starts listening on the admin port (and the public one); exits when a port cannot be
 * bound. Logs "ready". */
void jn_engine_listen(jn_engine_t *e);

/* Stops the servers (letting requests finish), the listener, the transport, the task
 * pool and the loop, flushes Kafka, closes PostgreSQL, logs "stopped". */
void jn_engine_stop(jn_engine_t *e);

#endif

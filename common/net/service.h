/*
 * service.h - what every Junction program does around its own work: start-up in a
 * fixed order, the operational HTTP endpoints, and a graceful stop on SIGTERM/SIGINT.
 *
 * jn_service_start() loads configuration (exiting with one clear line on a bad value),
 * sets up logging, connects to PostgreSQL (waiting for it), applies migrations, creates
 * the Kafka producer and topics, and serves GET /health (200 or 503 with the state of
 * PostgreSQL and Kafka as JSON), GET /livez (200 while the process runs) and GET /metrics
 * (Prometheus). A program then adds its own routes and loops until jn_service_stopping().
 */
#ifndef JN_SERVICE_H
#define JN_SERVICE_H

#include <stdbool.h>

#include "core/config.h"
#include "core/crypto.h"
#include "net/http_server.h"
#include "net/kafka.h"
#include "store/pg.h"

typedef struct {
    const char *name; /* "gateway", "scheduler", "worker" */
    jn_program_t program;
    jn_config_t config;
    jn_pg_pool_t *pg;
    jn_kafka_producer_t *producer;
    jn_http_server_t *http;
} jn_service_t;

/* Does everything above except starting the HTTP server (so routes can be added).
 * Exits the process with status 1 and a log line when a dependency cannot be set up. */
void jn_service_start(jn_service_t *svc, const char *name, jn_program_t program, size_t max_body);

/* Sets up ring with the configured encryption key and the retired ones. */
void jn_service_keyring(const jn_service_t *svc, jn_crypto_keyring_t *ring);

/* Starts listening; exits with status 1 when the port cannot be bound. Logs "ready". */
void jn_service_listen(jn_service_t *svc);

/* True once SIGTERM or SIGINT arrived. Async-signal-safe flag, cheap to poll. */
bool jn_service_stopping(void);

/* Sleeps up to timeout_ms, returning early (true) when a stop is requested. */
bool jn_service_wait_for_stop(int timeout_ms);

/* Stops the HTTP server, flushes the producer, closes PostgreSQL, logs "stopped". */
void jn_service_stop(jn_service_t *svc);

#endif

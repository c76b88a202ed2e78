/*
 * config.h - process configuration from JUNCTION_* environment variables.
 *
 * Every program loads one jn_config_t at start-up. A missing or malformed value is
 * reported as one line naming the variable, and the program exits: a half-configured
 * process never starts. The environment is read through a callback so tests can feed
 * any set of variables.
 */
#ifndef JN_CONFIG_H
#define JN_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "core/log.h"

typedef enum {
    JN_PROGRAM_GATEWAY,
    JN_PROGRAM_SCHEDULER,
    JN_PROGRAM_WORKER,
    JN_PROGRAM_TOOL, /* test and admin tools: no HTTP port, no encryption key needed */
} jn_program_t;

/* The largest provider webhook body that may be configured: what fits, forwarded, in a
 * webhook to the app (store/webhooks.h allows 4 MiB) with room for its envelope. */
#define JN_CONFIG_WEBHOOK_BODY_MAX (3L * 1024 * 1024)

typedef struct {
    char database_url[1024];          /* JUNCTION_DATABASE_URL (required) */
    char kafka_brokers[512];          /* JUNCTION_KAFKA_BROKERS (required), host:port[,host:port] */
    char topic_prefix[101];           /* JUNCTION_TOPIC_PREFIX, default "junction" */
    int topic_partitions;             /* JUNCTION_TOPIC_PARTITIONS, default 12, 1..1000 */
    int topic_replication;            /* JUNCTION_TOPIC_REPLICATION, default 1, 1..10 */
    uint16_t port;                    /* the program's HTTP port: JUNCTION_PORT (gateway, 3003),
                                         JUNCTION_SCHEDULER_PORT (3004), JUNCTION_WORKER_PORT (3005) */
    char bind_address[64];            /* JUNCTION_BIND_ADDRESS, default 0.0.0.0 */
    char egress_admissible[1024];     /* JUNCTION_EGRESS_ADMISSIBLE: internal CIDRs an
                                         environment's egress allow-list may open; default
                                         "" (none). Checked by the engine. */
    jn_log_level_t log_level;         /* JUNCTION_LOG_LEVEL, default info */
    int pg_pool_size;                 /* JUNCTION_PG_POOL_SIZE, default 8, 1..200 */
    int pg_connect_timeout_s;         /* JUNCTION_PG_CONNECT_TIMEOUT_S, default 5, 2..60 */
    int pg_statement_timeout_ms;      /* JUNCTION_PG_STATEMENT_TIMEOUT_MS (server side),
                                         default 10000, 100..3600000 */
    int pg_lock_timeout_ms;           /* JUNCTION_PG_LOCK_TIMEOUT_MS (server side), default
                                         5000, 100..3600000 */
    int pg_query_deadline_ms;         /* JUNCTION_PG_QUERY_DEADLINE_MS (client side): a query
                                         unanswered this long drops its connection; default
                                         statement timeout + 2000, 100..3700000 */
    long max_body_bytes;              /* JUNCTION_MAX_BODY_BYTES: largest request body the
                                         gateway reads; default 75 MiB, 1 KiB..1 GiB */
    unsigned char encryption_key[32]; /* JUNCTION_ENCRYPTION_KEY, base64 of 32 bytes */
    bool has_encryption_key;          /* required for the three services, optional for tools */
    unsigned char retired_keys[7][32]; /* JUNCTION_ENCRYPTION_KEYS_RETIRED: comma-separated
                                          base64 keys that still open old ciphertexts */
    int retired_key_count;
    int refresh_sweep_seconds; /* JUNCTION_REFRESH_SWEEP_SECONDS: how often the scheduler
                                  refreshes expiring tokens; default 60, 1..3600 */
    int scheduler_tick_ms;     /* JUNCTION_SCHEDULER_TICK_MS: how often the scheduler looks for
                                  due syncs; default 250, 20..10000 */
    int job_resend_seconds;    /* JUNCTION_JOB_RESEND_SECONDS: a queued job still unclaimed, or a
                                  running one past its lease, is sent again after this long;
                                  default 60, 1..3600 */
    char secret_key_dev[257];  /* JUNCTION_SECRET_KEY_DEV, optional */
    char secret_key_prod[257]; /* JUNCTION_SECRET_KEY_PROD, optional */
    char server_url[256];      /* JUNCTION_SERVER_URL: the gateway's public base URL, used in
                                  links it hands out (webhook and connect URLs); default
                                  http://localhost:<JUNCTION_PORT> */
    char instance_id[128];     /* JUNCTION_INSTANCE_ID, default <hostname>-<pid> */
    /* The operational endpoints (/health, /livez, /readyz, /metrics) listen apart from the
     * public API: the gateway's on JUNCTION_ADMIN_PORT (default JUNCTION_PORT + 3) and
     * JUNCTION_ADMIN_BIND_ADDRESS (default the bind address); the scheduler's and the
     * worker's on their own port. */
    uint16_t admin_port;
    char admin_bind_address[64];
    int task_threads;                     /* JUNCTION_TASK_THREADS: threads for blocking work
                                             (database); default the pool size, 1..256 */
    int http_max_connections;             /* JUNCTION_HTTP_MAX_CONNECTIONS, default 10000 */
    int http_max_connections_per_address; /* JUNCTION_HTTP_MAX_CONNECTIONS_PER_ADDRESS,
                                             default 1024 */
    int http_head_timeout_ms;             /* JUNCTION_HTTP_HEAD_TIMEOUT_MS, default 10000 */
    int http_idle_timeout_ms;             /* JUNCTION_HTTP_IDLE_TIMEOUT_MS, default 60000 */
    long max_json_body_bytes;             /* JUNCTION_MAX_JSON_BODY_BYTES: the body cap of JSON
                                             routes; default 1 MiB */
    long webhook_max_body_bytes;          /* JUNCTION_WEBHOOK_MAX_BODY_BYTES: the body cap of
                                             a provider webhook (POST /webhook/...); default
                                             1 MiB, 1 KiB..JN_CONFIG_WEBHOOK_BODY_MAX */
    int provider_max_in_flight;           /* JUNCTION_PROVIDER_MAX_IN_FLIGHT: provider calls in
                                             flight per environment; default 512 */
    int provider_headers_timeout_ms;      /* JUNCTION_PROVIDER_HEADERS_TIMEOUT_MS: a provider's
                                             time to answer's headers; default 60000 */
    /* Worker: jobs run at once per kind (each kind has its own consumer group, so a flood of
     * syncs never delays an action), the time a stopping worker lets running jobs finish
     * before handing them back, and the lease a claimed job holds between renewals. */
    int worker_actions;    /* JUNCTION_WORKER_ACTIONS, default 8 */
    int worker_syncs;      /* JUNCTION_WORKER_SYNCS, default 4 */
    int worker_webhooks;   /* JUNCTION_WORKER_WEBHOOKS, default 4 */
    int worker_deliveries; /* JUNCTION_WORKER_DELIVERIES, default 4 */
    /* The memory all scripts of one worker may hold together, whatever the environments'
     * own caps allow (a refusal past it fails the script that asked, not the worker). */
    int worker_script_memory_mb; /* JUNCTION_WORKER_SCRIPT_MEMORY_MB, default 2048 */
    /* The share of each kind's job threads one environment may use at once (rounded up),
     * so one tenant's backlog cannot hold them all; 100 turns the limit off. */
    int worker_env_share_percent; /* JUNCTION_WORKER_ENVIRONMENT_SHARE_PERCENT, default 50 */
    int worker_drain_s;           /* JUNCTION_WORKER_DRAIN_SECONDS, default 25 */
    int job_lease_s;              /* JUNCTION_JOB_LEASE_SECONDS, default 60 */
    /* Webhooks to the app: one attempt's whole time, and the first wait before a retry
     * (doubled each time, with jitter, at most 10 minutes). */
    int delivery_timeout_ms; /* JUNCTION_DELIVERY_TIMEOUT_MS, default 20000, 1000..120000 */
    int delivery_backoff_s;  /* JUNCTION_DELIVERY_BACKOFF_SECONDS, default 3, 1..600 */
    /* Gateway: requests that may take seconds without using the database - an end user's
     * connect flow waiting on a provider (a token request, a credential check), compiling a
     * deployment's scripts - run on threads of their own, at most this many at once, and at
     * most long_requests_per_env of them for one environment. */
    int long_request_threads;  /* JUNCTION_LONG_REQUEST_THREADS, default 32 */
    int long_requests_per_env; /* JUNCTION_LONG_REQUESTS_PER_ENVIRONMENT, default 8 */
    /* Callers of one environment waiting on synchronous actions at once (each holds a
     * connection); past it the call answers 429 and suggests X-Async. */
    int action_waits_per_env; /* JUNCTION_ACTION_WAITS_PER_ENVIRONMENT, default 1000 */
    /* Worker: the outbox relays that publish record changes to <prefix>.records
     * (docs/record-change-topics.md): how many run in this process (0: none), the lease a
     * relay holds its shards with, the largest event published with its payload, and the
     * changes one publishing cycle reads. */
    int relay_threads;          /* JUNCTION_RELAY_THREADS, default 1, 0..16 */
    int relay_lease_s;          /* JUNCTION_RELAY_LEASE_SECONDS, default 30, 2..600 */
    long relay_max_event_bytes; /* JUNCTION_RELAY_MAX_EVENT_BYTES, default 1000000,
                                   4096..100 MiB */
    int relay_batch_changes;    /* JUNCTION_RELAY_BATCH_CHANGES, default 20000, 1..1000000 */
} jn_config_t;

/* Returns the value of an environment variable or NULL; ud is passed through. */
typedef const char *(*jn_config_getenv_fn)(const char *name, void *ud);

/* Fills cfg for the given program. On error returns JN_ERR_INVALID and writes one line
 * naming the variable and what is wrong into why (never the secret value itself). */
jn_err_t jn_config_load(jn_config_t *cfg, jn_program_t program, jn_config_getenv_fn getenv_fn,
                        void *ud, char *why, size_t why_len);

/* jn_config_load with the process environment; on error prints the line to stderr as
 * JSON and exits with status 2. */
void jn_config_load_or_exit(jn_config_t *cfg, jn_program_t program);

/* Wipes the secrets held in cfg. */
void jn_config_cleanup(jn_config_t *cfg);

#endif

/*
 * config.c - JUNCTION_* environment variables into a jn_config_t.
 *
 * Each variable is parsed by a small typed reader that says which variable is wrong
 * and why, in one line. Secrets are checked for shape but never echoed.
 */
#include "core/config.h"

#include <errno.h>
#include <libpq-fe.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/crypto.h"

typedef struct {
    jn_config_getenv_fn getenv_fn;
    void *ud;
    char *why;
    size_t why_len;
} reader_t;

static const char *get(reader_t *r, const char *name)
{
    const char *v = r->getenv_fn(name, r->ud);
    return (v && *v) ? v : NULL;
}

static jn_err_t fail(reader_t *r, const char *name, const char *what)
{
    snprintf(r->why, r->why_len, "config: %s: %s", name, what);
    return JN_ERR_INVALID;
}

static jn_err_t read_string(reader_t *r, const char *name, const char *dflt, char *dst, size_t cap)
{
    const char *v = get(r, name);
    if (!v) {
        if (!dflt)
            return fail(r, name, "missing (set it in the environment)");
        v = dflt;
    }
    if (strlen(v) >= cap) {
        char what[64];
        snprintf(what, sizeof what, "too long (at most %zu characters)", cap - 1);
        return fail(r, name, what);
    }
    memcpy(dst, v, strlen(v) + 1);
    return JN_OK;
}

static jn_err_t read_int(reader_t *r, const char *name, long dflt, long min, long max, long *out)
{
    const char *v = get(r, name);
    if (!v) {
        *out = dflt;
        return JN_OK;
    }
    char *end = NULL;
    errno = 0;
    long n = strtol(v, &end, 10);
    if (errno || end == v || *end != '\0' || n < min || n > max) {
        char what[96];
        snprintf(what, sizeof what, "not an integer between %ld and %ld", min, max);
        return fail(r, name, what);
    }
    *out = n;
    return JN_OK;
}

static jn_err_t check_database_url(reader_t *r, const char *name, const char *url)
{
    if (strncmp(url, "postgres://", 11) != 0 && strncmp(url, "postgresql://", 13) != 0)
        return fail(r, name, "not a PostgreSQL URL (postgresql://user:password@host:port/db)");
    char *err = NULL;
    PQconninfoOption *opts = PQconninfoParse(url, &err);
    if (!opts) {
        PQfreemem(err);
        return fail(r, name, "malformed PostgreSQL URL");
    }
    PQconninfoFree(opts);
    return JN_OK;
}

/* host:port[,host:port]... with a numeric port in 1..65535 */
static jn_err_t check_brokers(reader_t *r, const char *name, const char *list)
{
    const char *p = list;
    while (*p) {
        const char *comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);
        const char *colon = memrchr(p, ':', n);
        if (!colon || colon == p)
            return fail(r, name, "each broker must be host:port");
        char port[8];
        size_t plen = n - (size_t)(colon + 1 - p);
        if (plen == 0 || plen >= sizeof port)
            return fail(r, name, "each broker must be host:port");
        memcpy(port, colon + 1, plen);
        port[plen] = '\0';
        char *end = NULL;
        long v = strtol(port, &end, 10);
        if (*end != '\0' || v < 1 || v > 65535)
            return fail(r, name, "broker port must be 1..65535");
        p += n;
        if (*p == ',')
            p++;
    }
    return JN_OK;
}

static jn_err_t check_topic_prefix(reader_t *r, const char *name, const char *prefix)
{
    for (const char *p = prefix; *p; p++) {
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '.' || *p == '_' || *p == '-'))
            return fail(r, name, "may contain only letters, digits, '.', '_' and '-'");
    }
    return JN_OK;
}

static jn_err_t read_secret_key(reader_t *r, const char *name, char *dst, size_t cap)
{
    dst[0] = '\0';
    const char *v = get(r, name);
    if (!v)
        return JN_OK;
    size_t n = strlen(v);
    if (n < 16 || n >= cap)
        return fail(r, name, "a secret key must be 16 to 256 characters");
    for (size_t i = 0; i < n; i++) {
        if (v[i] <= ' ' || v[i] == 0x7f)
            return fail(r, name, "a secret key may not contain spaces or control characters");
    }
    memcpy(dst, v, n + 1);
    return JN_OK;
}

static const char *port_variable(jn_program_t program, long *dflt)
{
    switch (program) {
    case JN_PROGRAM_GATEWAY: *dflt = 3003; return "JUNCTION_PORT";
    case JN_PROGRAM_SCHEDULER: *dflt = 3004; return "JUNCTION_SCHEDULER_PORT";
    case JN_PROGRAM_WORKER: *dflt = 3005; return "JUNCTION_WORKER_PORT";
    case JN_PROGRAM_TOOL: break;
    }
    *dflt = 0;
    return NULL;
}

/* The limits and ports of the engine's event loop, HTTP servers and provider calls. */
static jn_err_t read_engine_settings(reader_t *r, jn_program_t program, jn_config_t *cfg)
{
    jn_err_t err;
    long n;
    cfg->admin_port = cfg->port;
    if (program == JN_PROGRAM_GATEWAY) {
        long dflt = cfg->port <= 65532 ? cfg->port + 3 : 3006;
        if ((err = read_int(r, "JUNCTION_ADMIN_PORT", dflt, 1, 65535, &n)))
            return err;
        if (n == cfg->port)
            return fail(r, "JUNCTION_ADMIN_PORT", "must differ from JUNCTION_PORT");
        cfg->admin_port = (uint16_t)n;
    }
    if ((err = read_string(r, "JUNCTION_ADMIN_BIND_ADDRESS", cfg->bind_address,
                           cfg->admin_bind_address, sizeof cfg->admin_bind_address)))
        return err;
    if ((err = read_int(r, "JUNCTION_TASK_THREADS", cfg->pg_pool_size, 1, 256, &n)))
        return err;
    cfg->task_threads = (int)n;
    if ((err = read_int(r, "JUNCTION_HTTP_MAX_CONNECTIONS", 10000, 16, 1000000, &n)))
        return err;
    cfg->http_max_connections = (int)n;
    if ((err = read_int(r, "JUNCTION_HTTP_MAX_CONNECTIONS_PER_ADDRESS", 1024, 1, 1000000, &n)))
        return err;
    cfg->http_max_connections_per_address = (int)n;
    if ((err = read_int(r, "JUNCTION_HTTP_HEAD_TIMEOUT_MS", 10000, 100, 600000, &n)))
        return err;
    cfg->http_head_timeout_ms = (int)n;
    if ((err = read_int(r, "JUNCTION_HTTP_IDLE_TIMEOUT_MS", 60000, 100, 3600000, &n)))
        return err;
    cfg->http_idle_timeout_ms = (int)n;
    if ((err = read_int(r, "JUNCTION_MAX_JSON_BODY_BYTES", 1024L * 1024, 1024, 64L * 1024 * 1024,
                        &n)))
        return err;
    cfg->max_json_body_bytes = n;
    if ((err = read_int(r, "JUNCTION_WEBHOOK_MAX_BODY_BYTES", 1024L * 1024, 1024,
                        JN_CONFIG_WEBHOOK_BODY_MAX, &n)))
        return err;
    cfg->webhook_max_body_bytes = n;
    if ((err = read_int(r, "JUNCTION_PROVIDER_MAX_IN_FLIGHT", 512, 1, 100000, &n)))
        return err;
    cfg->provider_max_in_flight = (int)n;
    if ((err = read_int(r, "JUNCTION_PROVIDER_HEADERS_TIMEOUT_MS", 60000, 100, 3600000, &n)))
        return err;
    cfg->provider_headers_timeout_ms = (int)n;
    if ((err = read_int(r, "JUNCTION_WORKER_ACTIONS", 8, 1, 1024, &n)))
        return err;
    cfg->worker_actions = (int)n;
    if ((err = read_int(r, "JUNCTION_WORKER_SYNCS", 4, 1, 1024, &n)))
        return err;
    cfg->worker_syncs = (int)n;
    if ((err = read_int(r, "JUNCTION_WORKER_WEBHOOKS", 4, 1, 1024, &n)))
        return err;
    cfg->worker_webhooks = (int)n;
    if ((err = read_int(r, "JUNCTION_WORKER_DELIVERIES", 4, 1, 1024, &n)))
        return err;
    cfg->worker_deliveries = (int)n;
    if ((err = read_int(r, "JUNCTION_WORKER_SCRIPT_MEMORY_MB", 2048, 64, 1048576, &n)))
        return err;
    cfg->worker_script_memory_mb = (int)n;
    if ((err = read_int(r, "JUNCTION_WORKER_ENVIRONMENT_SHARE_PERCENT", 50, 1, 100, &n)))
        return err;
    cfg->worker_env_share_percent = (int)n;
    if ((err = read_int(r, "JUNCTION_DELIVERY_TIMEOUT_MS", 20000, 1000, 120000, &n)))
        return err;
    cfg->delivery_timeout_ms = (int)n;
    if ((err = read_int(r, "JUNCTION_DELIVERY_BACKOFF_SECONDS", 3, 1, 600, &n)))
        return err;
    cfg->delivery_backoff_s = (int)n;
    if ((err = read_int(r, "JUNCTION_WORKER_DRAIN_SECONDS", 25, 0, 3600, &n)))
        return err;
    cfg->worker_drain_s = (int)n;
    if ((err = read_int(r, "JUNCTION_JOB_LEASE_SECONDS", 60, 5, 3600, &n)))
        return err;
    cfg->job_lease_s = (int)n;
    if ((err = read_int(r, "JUNCTION_LONG_REQUEST_THREADS", 32, 1, 1024, &n)))
        return err;
    cfg->long_request_threads = (int)n;
    if ((err = read_int(r, "JUNCTION_LONG_REQUESTS_PER_ENVIRONMENT", 8, 1, 1024, &n)))
        return err;
    cfg->long_requests_per_env = (int)n;
    if ((err = read_int(r, "JUNCTION_ACTION_WAITS_PER_ENVIRONMENT", 1000, 1, 100000, &n)))
        return err;
    cfg->action_waits_per_env = (int)n;
    if ((err = read_int(r, "JUNCTION_RELAY_THREADS", 1, 0, 16, &n)))
        return err;
    cfg->relay_threads = (int)n;
    if ((err = read_int(r, "JUNCTION_RELAY_LEASE_SECONDS", 30, 2, 600, &n)))
        return err;
    cfg->relay_lease_s = (int)n;
    if ((err =
             read_int(r, "JUNCTION_RELAY_MAX_EVENT_BYTES", 1000000, 4096, 100L * 1024 * 1024, &n)))
        return err;
    cfg->relay_max_event_bytes = n;
    if ((err = read_int(r, "JUNCTION_RELAY_BATCH_CHANGES", 20000, 1, 1000000, &n)))
        return err;
    cfg->relay_batch_changes = (int)n;
    return JN_OK;
}

jn_err_t jn_config_load(jn_config_t *cfg, jn_program_t program, jn_config_getenv_fn getenv_fn,
                        void *ud, char *why, size_t why_len)
{
    reader_t r = {getenv_fn, ud, why, why_len};
    memset(cfg, 0, sizeof *cfg);
    jn_err_t err;
    long n;

    if ((err = read_string(&r, "JUNCTION_DATABASE_URL", NULL, cfg->database_url,
                           sizeof cfg->database_url)) ||
        (err = check_database_url(&r, "JUNCTION_DATABASE_URL", cfg->database_url)))
        return err;
    if ((err = read_string(&r, "JUNCTION_KAFKA_BROKERS", NULL, cfg->kafka_brokers,
                           sizeof cfg->kafka_brokers)) ||
        (err = check_brokers(&r, "JUNCTION_KAFKA_BROKERS", cfg->kafka_brokers)))
        return err;
    if ((err = read_string(&r, "JUNCTION_TOPIC_PREFIX", "junction", cfg->topic_prefix,
                           sizeof cfg->topic_prefix)) ||
        (err = check_topic_prefix(&r, "JUNCTION_TOPIC_PREFIX", cfg->topic_prefix)))
        return err;
    if ((err = read_int(&r, "JUNCTION_TOPIC_PARTITIONS", 12, 1, 1000, &n)))
        return err;
    cfg->topic_partitions = (int)n;
    if ((err = read_int(&r, "JUNCTION_TOPIC_REPLICATION", 1, 1, 10, &n)))
        return err;
    cfg->topic_replication = (int)n;
    if ((err = read_int(&r, "JUNCTION_PG_POOL_SIZE", 8, 1, 200, &n)))
        return err;
    cfg->pg_pool_size = (int)n;
    if ((err = read_int(&r, "JUNCTION_PG_CONNECT_TIMEOUT_S", 5, 2, 60, &n)))
        return err;
    cfg->pg_connect_timeout_s = (int)n;
    if ((err = read_int(&r, "JUNCTION_PG_STATEMENT_TIMEOUT_MS", 10000, 100, 3600000, &n)))
        return err;
    cfg->pg_statement_timeout_ms = (int)n;
    if ((err = read_int(&r, "JUNCTION_PG_LOCK_TIMEOUT_MS", 5000, 100, 3600000, &n)))
        return err;
    cfg->pg_lock_timeout_ms = (int)n;
    /* The client deadline defaults to a little more than the server's, so that a slow
     * statement on a live server is cancelled by PostgreSQL (the connection survives) and
     * only a server that answers nothing costs the connection. */
    if ((err = read_int(&r, "JUNCTION_PG_QUERY_DEADLINE_MS", cfg->pg_statement_timeout_ms + 2000L,
                        100, 3700000, &n)))
        return err;
    cfg->pg_query_deadline_ms = (int)n;
    if ((err = read_int(&r, "JUNCTION_MAX_BODY_BYTES", 75L * 1024 * 1024, 1024, 1024L * 1024 * 1024,
                        &n)))
        return err;
    cfg->max_body_bytes = n;
    if ((err = read_int(&r, "JUNCTION_REFRESH_SWEEP_SECONDS", 60, 1, 3600, &n)))
        return err;
    cfg->refresh_sweep_seconds = (int)n;
    if ((err = read_int(&r, "JUNCTION_SCHEDULER_TICK_MS", 250, 20, 10000, &n)))
        return err;
    cfg->scheduler_tick_ms = (int)n;
    if ((err = read_int(&r, "JUNCTION_JOB_RESEND_SECONDS", 60, 1, 3600, &n)))
        return err;
    cfg->job_resend_seconds = (int)n;

    long port_default;
    const char *port_name = port_variable(program, &port_default);
    if (port_name) {
        if ((err = read_int(&r, port_name, port_default, 1, 65535, &n)))
            return err;
        cfg->port = (uint16_t)n;
    }
    if ((err = read_string(&r, "JUNCTION_EGRESS_ADMISSIBLE", "", cfg->egress_admissible,
                           sizeof cfg->egress_admissible)))
        return err;
    if ((err = read_string(&r, "JUNCTION_BIND_ADDRESS", "0.0.0.0", cfg->bind_address,
                           sizeof cfg->bind_address)))
        return err;

    const char *level = get(&r, "JUNCTION_LOG_LEVEL");
    cfg->log_level = JN_LOG_INFO;
    if (level && jn_log_level_parse(level, &cfg->log_level) != JN_OK)
        return fail(&r, "JUNCTION_LOG_LEVEL", "must be debug, info, warn or error");

    const char *key = get(&r, "JUNCTION_ENCRYPTION_KEY");
    if (key) {
        size_t key_len = 0;
        if (jn_base64_decode(key, strlen(key), cfg->encryption_key, sizeof cfg->encryption_key,
                             &key_len) != JN_OK ||
            key_len != sizeof cfg->encryption_key)
            return fail(&r, "JUNCTION_ENCRYPTION_KEY",
                        "must be the base64 of exactly 32 bytes (openssl rand -base64 32)");
        cfg->has_encryption_key = true;
    } else if (program != JN_PROGRAM_TOOL) {
        return fail(&r, "JUNCTION_ENCRYPTION_KEY",
                    "missing (the base64 of 32 random bytes: openssl rand -base64 32)");
    }

    const char *retired = get(&r, "JUNCTION_ENCRYPTION_KEYS_RETIRED");
    for (const char *p = retired; p && *p;) {
        const char *comma = strchr(p, ',');
        size_t part_len = comma ? (size_t)(comma - p) : strlen(p);
        size_t key_len = 0;
        if (cfg->retired_key_count == 7)
            return fail(&r, "JUNCTION_ENCRYPTION_KEYS_RETIRED", "at most 7 retired keys");
        if (jn_base64_decode(p, part_len, cfg->retired_keys[cfg->retired_key_count], 32,
                             &key_len) != JN_OK ||
            key_len != 32)
            return fail(&r, "JUNCTION_ENCRYPTION_KEYS_RETIRED",
                        "each key must be the base64 of exactly 32 bytes, separated by commas");
        cfg->retired_key_count++;
        p += part_len;
        if (*p == ',')
            p++;
    }

    if ((err = read_secret_key(&r, "JUNCTION_SECRET_KEY_DEV", cfg->secret_key_dev,
                               sizeof cfg->secret_key_dev)) ||
        (err = read_secret_key(&r, "JUNCTION_SECRET_KEY_PROD", cfg->secret_key_prod,
                               sizeof cfg->secret_key_prod)))
        return err;

    const char *server_url = get(&r, "JUNCTION_SERVER_URL");
    if (server_url) {
        if ((err = read_string(&r, "JUNCTION_SERVER_URL", NULL, cfg->server_url,
                               sizeof cfg->server_url)))
            return err;
        if (strncmp(server_url, "http://", 7) != 0 && strncmp(server_url, "https://", 8) != 0)
            return fail(&r, "JUNCTION_SERVER_URL", "must start with http:// or https://");
        size_t url_len = strlen(cfg->server_url);
        while (url_len > 0 && cfg->server_url[url_len - 1] == '/')
            cfg->server_url[--url_len] = '\0';
    } else {
        long gateway_port = 3003;
        if ((err = read_int(&r, "JUNCTION_PORT", 3003, 1, 65535, &gateway_port)))
            return err;
        snprintf(cfg->server_url, sizeof cfg->server_url, "http://localhost:%ld", gateway_port);
    }

    const char *instance = get(&r, "JUNCTION_INSTANCE_ID");
    if (instance) {
        if ((err = read_string(&r, "JUNCTION_INSTANCE_ID", NULL, cfg->instance_id,
                               sizeof cfg->instance_id)))
            return err;
    } else {
        char host[64] = "host";
        gethostname(host, sizeof host - 1);
        snprintf(cfg->instance_id, sizeof cfg->instance_id, "%s-%ld", host, (long)getpid());
    }
    return read_engine_settings(&r, program, cfg);
}

static const char *process_getenv(const char *name, void *ud)
{
    (void)ud;
    return getenv(name);
}

void jn_config_load_or_exit(jn_config_t *cfg, jn_program_t program)
{
    char why[512];
    if (jn_config_load(cfg, program, process_getenv, NULL, why, sizeof why) != JN_OK) {
        jn_log_error("config", "%s", why);
        exit(2);
    }
}

void jn_config_cleanup(jn_config_t *cfg)
{
    jn_secure_wipe(cfg->encryption_key, sizeof cfg->encryption_key);
    jn_secure_wipe(cfg->retired_keys, sizeof cfg->retired_keys);
    jn_secure_wipe(cfg->secret_key_dev, sizeof cfg->secret_key_dev);
    jn_secure_wipe(cfg->secret_key_prod, sizeof cfg->secret_key_prod);
}

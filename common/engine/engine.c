/*
 * engine.c - start-up and shut-down order (see the header).
 */
#include "engine/engine.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "core/log.h"
#include "providers/egress.h"
#include "store/environments.h"
#include "store/migrate.h"

#define PG_START_DEADLINE_MS 60000
#define HEALTH_TIMEOUT_MS 1500
#define CONN_CACHE_ENTRIES 100000
#define CONN_CACHE_TTL_MS (10 * 60 * 1000)

static void apply_migrations(jn_engine_t *e)
{
    PGconn *conn = jn_pg_connect_wait(e->config.database_url, e->name, PG_START_DEADLINE_MS);
    if (!conn) {
        jn_log_error("engine", "PostgreSQL did not become reachable within %d s; giving up",
                     PG_START_DEADLINE_MS / 1000);
        exit(1);
    }
    size_t count = 0;
    const jn_migration_t *list = jn_migrations_builtin(&count);
    int applied = 0;
    if (jn_migrate_apply(conn, list, count, &applied) != JN_OK) {
        jn_log_error("engine", "database migrations failed; see the lines above");
        PQfinish(conn);
        exit(1);
    }
    jn_log_info("engine", "schema at migration %d (%d applied now)",
                count ? list[count - 1].version : 0, applied);
    /* The gateway owns the environments' keys (they come from its configuration). */
    if (e->program == JN_PROGRAM_GATEWAY && jn_environments_ensure(conn, &e->config) != JN_OK) {
        jn_log_error("engine", "cannot set up the dev and prod environments");
        PQfinish(conn);
        exit(1);
    }
    PQfinish(conn);
}

static void load_catalog(jn_engine_t *e)
{
    char why[512];
    if (jn_catalog_load_builtin(&e->catalog, why, sizeof why) != JN_OK) {
        jn_log_error("catalog", "%s", why);
        exit(2);
    }
}

/* Many connections at once need as many descriptors: raise the soft limit to the hard
 * one. */
static void raise_descriptor_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

static jn_err_t check_postgres(void *ud)
{
    jn_engine_t *e = ud;
    return jn_pg_ping(e->pg);
}

static jn_err_t check_kafka(void *ud)
{
    jn_engine_t *e = ud;
    return jn_kafka_ping(e->producer, HEALTH_TIMEOUT_MS);
}

static jn_http_server_t *new_server(jn_engine_t *e, const char *bind, uint16_t port,
                                    size_t max_body)
{
    jn_http_options_t opts = {
        .bind_address = bind,
        .port = port,
        .max_body = max_body,
        .loop = e->loop,
        .pool = e->tasks,
        .max_connections = e->config.http_max_connections,
        .max_connections_per_address = e->config.http_max_connections_per_address,
        .head_timeout_ms = e->config.http_head_timeout_ms,
        .idle_timeout_ms = e->config.http_idle_timeout_ms,
    };
    jn_http_server_t *srv = jn_http_server_new(&opts);
    if (!srv)
        abort();
    return srv;
}

void jn_engine_start(jn_engine_t *e, const char *name, jn_program_t program)
{
    memset(e, 0, sizeof *e);
    e->name = name;
    e->program = program;
    jn_log_init(name, JN_LOG_INFO);
    jn_service_install_signals();
    jn_config_load_or_exit(&e->config, program);
    jn_log_init(name, e->config.log_level);
    jn_log_info("engine", "starting junction-%s %s (instance %s)", name, JUNCTION_VERSION,
                e->config.instance_id);
    raise_descriptor_limit();
    char why[256];
    if (jn_egress_set_ceiling(e->config.egress_admissible, why, sizeof why) != JN_OK) {
        jn_log_error("engine", "JUNCTION_EGRESS_ADMISSIBLE: %s", why);
        exit(1);
    }

    apply_migrations(e);
    jn_pg_options_t pg_opts;
    jn_pg_options_from_config(&e->config, &pg_opts);
    e->pg = jn_pg_pool_new_with(e->config.database_url, name, &pg_opts);
    jn_crypto_keyring_init(&e->keyring, e->config.encryption_key);
    for (int i = 0; i < e->config.retired_key_count; i++)
        jn_crypto_keyring_add_retired(&e->keyring, e->config.retired_keys[i]);
    load_catalog(e);

    char client_id[192];
    snprintf(client_id, sizeof client_id, "junction-%s-%s", name, e->config.instance_id);
    e->producer = jn_kafka_producer_new(&e->config, client_id);
    if (!e->producer) {
        jn_log_error("engine", "cannot create the Kafka producer; see the lines above");
        exit(1);
    }
    /* Topics are created when Kafka is reachable now; when it is not, the program still
     * starts (reporting 503) and a later start or another program creates them. */
    if (jn_kafka_ensure_topics(e->producer, &e->config, 10000) != JN_OK)
        jn_log_warn("engine", "could not ensure Kafka topics now; /health reports Kafka");

    e->loop = jn_loop_new(name);
    jn_loop_spawn(e->loop);
    e->tasks = jn_taskpool_new(name, e->config.task_threads, 4096);
    jn_provider_http_options_t hopts = {
        .loop = e->loop,
        .max_in_flight_per_env = e->config.provider_max_in_flight,
        .headers_timeout_ms = e->config.provider_headers_timeout_ms,
    };
    e->provider_http = jn_provider_http_new(&hopts);
    e->envs = jn_env_cache_new(e->pg);
    e->connections = jn_conn_cache_new(CONN_CACHE_ENTRIES, CONN_CACHE_TTL_MS);
    e->listener = jn_invalidation_start(e->config.database_url, name, e->envs, e->connections);
    e->sessions = (jn_session_deps_t){e->pg,    &e->keyring,      e->catalog,
                                      e->tasks, e->provider_http, e->connections};

    e->ops = (jn_service_ops_t){.service = name, .version = JUNCTION_VERSION};
    e->ops.checks[e->ops.check_count++] = (jn_service_check_t){"postgres", check_postgres, e};
    e->ops.checks[e->ops.check_count++] = (jn_service_check_t){"kafka", check_kafka, e};
    e->admin = new_server(e, e->config.admin_bind_address, e->config.admin_port, 64 * 1024);
    jn_service_routes(e->admin, &e->ops);
    if (program == JN_PROGRAM_GATEWAY)
        e->http = new_server(e, e->config.bind_address, e->config.port,
                             (size_t)e->config.max_json_body_bytes);
}

void jn_engine_listen(jn_engine_t *e)
{
    if (jn_http_server_start(e->admin) != JN_OK)
        exit(1);
    if (e->http && jn_http_server_start(e->http) != JN_OK)
        exit(1);
    if (e->http)
        jn_log_info("engine", "ready: api on %s:%u, admin on %s:%u, kafka %s, topic prefix %s",
                    e->config.bind_address, (unsigned)jn_http_server_port(e->http),
                    e->config.admin_bind_address, (unsigned)jn_http_server_port(e->admin),
                    e->config.kafka_brokers, e->config.topic_prefix);
    else
        jn_log_info("engine", "ready: admin on %s:%u, kafka %s, topic prefix %s",
                    e->config.admin_bind_address, (unsigned)jn_http_server_port(e->admin),
                    e->config.kafka_brokers, e->config.topic_prefix);
}

void jn_engine_stop(jn_engine_t *e)
{
    jn_log_info("engine", "stopping");
    jn_http_server_free(e->http);
    e->http = NULL;
    jn_http_server_free(e->admin);
    e->admin = NULL;
    jn_invalidation_stop(e->listener);
    e->listener = NULL;
    jn_taskpool_free(e->tasks);
    e->tasks = NULL;
    jn_provider_http_free(e->provider_http);
    e->provider_http = NULL;
    jn_loop_stop(e->loop);
    jn_loop_free(e->loop);
    e->loop = NULL;
    jn_kafka_producer_free(e->producer, 10000);
    e->producer = NULL;
    jn_conn_cache_free(e->connections);
    jn_env_cache_free(e->envs);
    jn_pg_pool_free(e->pg);
    e->pg = NULL;
    jn_catalog_free(e->catalog);
    jn_crypto_keyring_cleanup(&e->keyring);
    jn_config_cleanup(&e->config);
    jn_log_info("engine", "stopped");
}

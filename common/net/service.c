/*
 * service.c - start-up order, health endpoints and signal-driven shutdown.
 *
 * Start-up order matters: configuration first (fail fast on typos), then PostgreSQL and
 * migrations (the schema must exist before anything reads it), then Kafka. A program
 * whose dependencies are down at start waits for PostgreSQL (it cannot do anything
 * without its schema) but not for Kafka: librdkafka reconnects by itself and /health
 * reports the outage.
 */
#include "net/service.h"

#include <json-c/json.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"
#include "core/metrics.h"
#include "store/migrate.h"

#define JUNCTION_VERSION "0.1.0"
#define PG_START_DEADLINE_MS 60000
#define HEALTH_TIMEOUT_MS 1500

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

bool jn_service_stopping(void)
{
    return stop_requested != 0;
}

bool jn_service_wait_for_stop(int timeout_ms)
{
    for (int waited = 0; waited < timeout_ms && !stop_requested; waited += 50) {
        struct timespec ts = {0, 50 * 1000000L};
        nanosleep(&ts, NULL);
    }
    return stop_requested != 0;
}

static void install_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}

static json_object *check(jn_err_t err, double seconds)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "status", json_object_new_string(err ? "down" : "ok"));
    json_object_object_add(o, "latency_ms", json_object_new_int((int)(seconds * 1000)));
    if (err)
        json_object_object_add(o, "error", json_object_new_string(jn_err_str(err)));
    return o;
}

static double seconds_since(const struct timespec *t0)
{
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (double)(t1.tv_sec - t0->tv_sec) + (double)(t1.tv_nsec - t0->tv_nsec) / 1e9;
}

static void handle_health(const jn_http_request_t *req, jn_http_response_t *res, void *ud)
{
    (void)req;
    jn_service_t *svc = ud;
    struct timespec t0;

    clock_gettime(CLOCK_MONOTONIC, &t0);
    jn_err_t pg_err = jn_pg_ping(svc->pg);
    double pg_s = seconds_since(&t0);

    clock_gettime(CLOCK_MONOTONIC, &t0);
    jn_err_t kafka_err = jn_kafka_ping(svc->producer, HEALTH_TIMEOUT_MS);
    double kafka_s = seconds_since(&t0);

    bool ok = !pg_err && !kafka_err && !jn_service_stopping();
    jn_metric_set(jn_metrics_gauge("jn_up", "1 when PostgreSQL and Kafka are reachable", NULL),
                  ok ? 1 : 0);
    json_object *checks = json_object_new_object();
    json_object_object_add(checks, "postgres", check(pg_err, pg_s));
    json_object_object_add(checks, "kafka", check(kafka_err, kafka_s));
    json_object *root = json_object_new_object();
    json_object_object_add(root, "status",
                           json_object_new_string(ok                      ? "ok"
                                                  : jn_service_stopping() ? "stopping"
                                                                          : "unavailable"));
    json_object_object_add(root, "service", json_object_new_string(svc->name));
    json_object_object_add(root, "version", json_object_new_string(JUNCTION_VERSION));
    json_object_object_add(root, "checks", checks);
    jn_http_respond_json(res, ok ? 200 : 503, root);
}

static void handle_livez(const jn_http_request_t *req, jn_http_response_t *res, void *ud)
{
    (void)req;
    (void)ud;
    jn_http_respond_text(res, 200, "text/plain; charset=utf-8", "ok\n");
}

static void handle_metrics(const jn_http_request_t *req, jn_http_response_t *res, void *ud)
{
    (void)req;
    (void)ud;
    char *text = jn_metrics_render();
    res->status = 200;
    res->content_type = "text/plain; version=0.0.4; charset=utf-8";
    res->body = text;
    res->body_len = strlen(text);
}

static void apply_migrations(jn_service_t *svc)
{
    PGconn *conn = jn_pg_connect_wait(svc->config.database_url, svc->name, PG_START_DEADLINE_MS);
    if (!conn) {
        jn_log_error("service", "PostgreSQL did not become reachable within %d s; giving up",
                     PG_START_DEADLINE_MS / 1000);
        exit(1);
    }
    size_t count = 0;
    const jn_migration_t *list = jn_migrations_builtin(&count);
    int applied = 0;
    if (jn_migrate_apply(conn, list, count, &applied) != JN_OK) {
        jn_log_error("service", "database migrations failed; see the lines above");
        PQfinish(conn);
        exit(1);
    }
    jn_log_info("service", "schema at migration %d (%d applied now)",
                count ? list[count - 1].version : 0, applied);
    PQfinish(conn);
}

void jn_service_start(jn_service_t *svc, const char *name, jn_program_t program, size_t max_body)
{
    memset(svc, 0, sizeof *svc);
    svc->name = name;
    svc->program = program;
    jn_log_init(name, JN_LOG_INFO);
    install_signals();
    jn_config_load_or_exit(&svc->config, program);
    jn_log_init(name, svc->config.log_level);
    jn_log_info("service", "starting junction-%s %s (instance %s)", name, JUNCTION_VERSION,
                svc->config.instance_id);

    apply_migrations(svc);
    jn_pg_options_t pg_opts;
    jn_pg_options_from_config(&svc->config, &pg_opts);
    svc->pg = jn_pg_pool_new_with(svc->config.database_url, name, &pg_opts);

    char client_id[192];
    snprintf(client_id, sizeof client_id, "junction-%s-%s", name, svc->config.instance_id);
    svc->producer = jn_kafka_producer_new(&svc->config, client_id);
    if (!svc->producer) {
        jn_log_error("service", "cannot create the Kafka producer; see the lines above");
        exit(1);
    }
    /* Topics are created when Kafka is reachable now; when it is not, the program still
     * starts (reporting 503) and a later start or another program creates them. */
    if (jn_kafka_ensure_topics(svc->producer, &svc->config, 10000) != JN_OK)
        jn_log_warn("service", "could not ensure Kafka topics now; /health reports Kafka");

    jn_http_options_t opts = {
        .bind_address = svc->config.bind_address,
        .port = svc->config.port,
        .max_body = max_body ? max_body : (size_t)svc->config.max_body_bytes,
        .threads = program == JN_PROGRAM_GATEWAY ? 8 : 2,
    };
    svc->http = jn_http_server_new(&opts);
    if (!svc->http)
        abort();
    jn_http_route(svc->http, "GET", "/health", handle_health, svc);
    jn_http_route(svc->http, "GET", "/livez", handle_livez, svc);
    jn_http_route(svc->http, "GET", "/metrics", handle_metrics, svc);
}

void jn_service_keyring(const jn_service_t *svc, jn_crypto_keyring_t *ring)
{
    jn_crypto_keyring_init(ring, svc->config.encryption_key);
    for (int i = 0; i < svc->config.retired_key_count; i++)
        jn_crypto_keyring_add_retired(ring, svc->config.retired_keys[i]);
}

void jn_service_listen(jn_service_t *svc)
{
    if (jn_http_server_start(svc->http) != JN_OK)
        exit(1);
    jn_log_info("service", "ready: http on %s:%u, kafka %s, topic prefix %s",
                svc->config.bind_address, (unsigned)jn_http_server_port(svc->http),
                svc->config.kafka_brokers, svc->config.topic_prefix);
}

void jn_service_stop(jn_service_t *svc)
{
    jn_log_info("service", "stopping");
    jn_http_server_free(svc->http);
    svc->http = NULL;
    jn_kafka_producer_free(svc->producer, 10000);
    svc->producer = NULL;
    jn_pg_pool_free(svc->pg);
    svc->pg = NULL;
    jn_config_cleanup(&svc->config);
    jn_log_info("service", "stopped");
}

/*
 * Integration: the three programs start against the real PostgreSQL and Kafka, serve
 * /health, /livez and /metrics, refuse bad configuration with one clear line, and stop
 * cleanly on SIGTERM.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <json-c/json.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

typedef struct {
    jn_test_process_t proc;
    char url[64];
} service_t;

static bool answers_200(void *ud)
{
    return jn_test_http("GET", ud, NULL, NULL, 0, NULL) == 200;
}

/* Starts bin with its port variable set to a free port and a private topic prefix. */
static void start_service(service_t *s, const char *bin, const char *port_var, const char *name)
{
    static char env_port[64], env_admin[64], env_prefix[96], env_instance[96];
    char api_url[64];
    if (strcmp(port_var, "JUNCTION_PORT") == 0) {
        /* The gateway: its operational endpoints are on the admin port. */
        jn_test_gateway_ports(env_port, env_admin, api_url, s->url);
    } else {
        int port = jn_test_free_port();
        snprintf(env_port, sizeof env_port, "%s=%d", port_var, port);
        snprintf(env_admin, sizeof env_admin, "JUNCTION_LOG_LEVEL=info");
        snprintf(s->url, sizeof s->url, "http://127.0.0.1:%d", port);
    }
    char prefix[64];
    jn_test_unique("jt_svc", prefix, sizeof prefix);
    snprintf(env_prefix, sizeof env_prefix, "JUNCTION_TOPIC_PREFIX=%s", prefix);
    snprintf(env_instance, sizeof env_instance, "JUNCTION_INSTANCE_ID=%s", name);
    const char *env[] = {env_port,
                         env_admin,
                         env_prefix,
                         env_instance,
                         "JUNCTION_TOPIC_PARTITIONS=2",
                         "JUNCTION_BIND_ADDRESS=127.0.0.1",
                         NULL};
    const char *argv[] = {bin, NULL};
    char log_name[128];
    snprintf(log_name, sizeof log_name, "%s_%s", name, prefix);
    jn_test_spawn(&s->proc, argv, env, log_name);
}

static void stop_service(service_t *s)
{
    jn_test_signal(&s->proc, SIGTERM);
    bool exited = jn_test_process_wait(&s->proc, 20000);
    char *log = jn_test_read_log(&s->proc);
    if (!exited) {
        jn_test_process_kill(&s->proc);
        fail_msg("did not stop within 20 s of SIGTERM:\n%s", log);
    }
    if (s->proc.exit_status != 0)
        fail_msg("exited with %d after SIGTERM:\n%s", s->proc.exit_status, log);
    assert_non_null(strstr(log, "\"msg\":\"stopped\""));
    free(log);
}

static void wait_healthy(service_t *s)
{
    char health[96];
    snprintf(health, sizeof health, "%s/health", s->url);
    if (!jn_test_wait_until(answers_200, health, 60000)) {
        char *log = jn_test_read_log(&s->proc);
        jn_test_process_kill(&s->proc);
        fail_msg("%s never answered 200:\n%s", health, log);
    }
}

static void check_health_body(service_t *s, int want_status, const char *kafka_state)
{
    char url[96];
    snprintf(url, sizeof url, "%s/health", s->url);
    char *body = NULL;
    long status = jn_test_http("GET", url, NULL, NULL, 0, &body);
    assert_int_equal(status, want_status);
    json_object *o = json_tokener_parse(body);
    assert_non_null(o);
    json_object *checks, *kafka, *pg, *st;
    assert_true(json_object_object_get_ex(o, "checks", &checks));
    assert_true(json_object_object_get_ex(checks, "kafka", &kafka));
    assert_true(json_object_object_get_ex(checks, "postgres", &pg));
    assert_true(json_object_object_get_ex(kafka, "status", &st));
    assert_string_equal(json_object_get_string(st), kafka_state);
    assert_true(json_object_object_get_ex(pg, "status", &st));
    assert_string_equal(json_object_get_string(st), "ok");
    json_object_put(o);
    free(body);
}

static void test_each_program_serves_health_and_metrics(void **state)
{
    (void)state;
    struct {
        const char *bin, *port_var, *name;
    } programs[] = {
        {GATEWAY_BIN, "JUNCTION_PORT", "gateway"},
        {SCHEDULER_BIN, "JUNCTION_SCHEDULER_PORT", "scheduler"},
        {WORKER_BIN, "JUNCTION_WORKER_PORT", "worker"},
    };
    for (size_t i = 0; i < 3; i++) {
        service_t s;
        start_service(&s, programs[i].bin, programs[i].port_var, programs[i].name);
        wait_healthy(&s);
        check_health_body(&s, 200, "ok");

        char url[96], *body = NULL;
        snprintf(url, sizeof url, "%s/livez", s.url);
        assert_int_equal(jn_test_http("GET", url, NULL, NULL, 0, NULL), 200);
        snprintf(url, sizeof url, "%s/metrics", s.url);
        assert_int_equal(jn_test_http("GET", url, NULL, NULL, 0, &body), 200);
        assert_non_null(strstr(body, "# TYPE jn_http_requests_total counter"));
        assert_non_null(strstr(body, "jn_http_requests_total{route=\"/health\",code=\"200\"}"));
        free(body);

        /* Unknown paths and wrong methods get the JSON error envelope. */
        snprintf(url, sizeof url, "%s/no/such/path", s.url);
        assert_int_equal(jn_test_http("GET", url, NULL, NULL, 0, &body), 404);
        assert_non_null(strstr(body, "{\"error\":{\"code\":\"not_found\""));
        free(body);
        snprintf(url, sizeof url, "%s/health", s.url);
        assert_int_equal(jn_test_http("DELETE", url, NULL, NULL, 0, &body), 405);
        assert_non_null(strstr(body, "\"code\":\"method_not_allowed\""));
        free(body);

        stop_service(&s);
    }
}

static void test_bad_configuration_stops_with_one_line(void **state)
{
    (void)state;
    jn_test_process_t p;
    const char *argv[] = {GATEWAY_BIN, NULL};
    const char *env[] = {"JUNCTION_KAFKA_BROKERS=no-port-here", NULL};
    jn_test_spawn(&p, argv, env, "gateway_bad_config");
    assert_true(jn_test_process_wait(&p, 10000));
    assert_int_equal(p.exit_status, 2);
    char *log = jn_test_read_log(&p);
    assert_non_null(strstr(log, "JUNCTION_KAFKA_BROKERS"));
    /* One line about it, nothing after. */
    const char *line = strstr(log, "JUNCTION_KAFKA_BROKERS");
    assert_null(strchr(strchr(line, '\n') + 1, '\n'));
    free(log);

    const char *env2[] = {"JUNCTION_ENCRYPTION_KEY=", NULL};
    jn_test_spawn(&p, argv, env2, "gateway_no_key");
    assert_true(jn_test_process_wait(&p, 10000));
    assert_int_equal(p.exit_status, 2);
    log = jn_test_read_log(&p);
    assert_non_null(strstr(log, "JUNCTION_ENCRYPTION_KEY: missing"));
    free(log);
}

static void test_oversize_body_gets_413(void **state)
{
    (void)state;
    service_t s;
    start_service(&s, SCHEDULER_BIN, "JUNCTION_SCHEDULER_PORT", "scheduler_413");
    wait_healthy(&s);
    size_t n = 256 * 1024; /* the admin port accepts 64 KiB bodies */
    char *big = malloc(n);
    memset(big, 'x', n);
    char url[96], *body = NULL;
    snprintf(url, sizeof url, "%s/health", s.url);
    assert_int_equal(jn_test_http("GET", url, NULL, big, n, &body), 413);
    assert_non_null(strstr(body, "\"code\":\"payload_too_large\""));
    free(body);
    /* A method the route does not take is refused on the head, before any body. */
    assert_int_equal(jn_test_http("POST", url, NULL, big, n, &body), 405);
    assert_non_null(strstr(body, "\"code\":\"method_not_allowed\""));
    free(body);
    free(big);
    /* Still serving afterwards. */
    assert_int_equal(jn_test_http("GET", url, NULL, NULL, 0, NULL), 200);
    stop_service(&s);
}

/* /health turns 503 while Kafka is down and back to 200 when it returns. */
static bool kafka_reported_down(void *ud)
{
    char url[96];
    snprintf(url, sizeof url, "%s/health", ((service_t *)ud)->url);
    return jn_test_http("GET", url, NULL, NULL, 0, NULL) == 503;
}

static void test_health_follows_kafka_outage(void **state)
{
    (void)state;
    service_t s;
    start_service(&s, GATEWAY_BIN, "JUNCTION_PORT", "gateway_outage");
    wait_healthy(&s);

    assert_int_equal(jn_test_run("deploy/local/kafka.sh stop"), 0);
    bool down = jn_test_wait_until(kafka_reported_down, &s, 30000);
    if (down)
        check_health_body(&s, 503, "down");
    /* Bring Kafka back whatever happened, so later tests have it. */
    int started = jn_test_run("deploy/local/kafka.sh start");
    assert_true(down);
    assert_int_equal(started, 0);

    char health[96];
    snprintf(health, sizeof health, "%s/health", s.url);
    assert_true(jn_test_wait_until(answers_200, health, 60000));
    check_health_body(&s, 200, "ok");
    stop_service(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_each_program_serves_health_and_metrics),
        cmocka_unit_test(test_bad_configuration_stops_with_one_line),
        cmocka_unit_test(test_oversize_body_gets_413),
        cmocka_unit_test(test_health_follows_kafka_outage),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * service.c - signals and the operational endpoints.
 */
#include "net/service.h"

#include <json-c/json.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/metrics.h"

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

void jn_service_install_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}

static double seconds_since(const struct timespec *t0)
{
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (double)(t1.tv_sec - t0->tv_sec) + (double)(t1.tv_nsec - t0->tv_nsec) / 1e9;
}

/* Runs every check; true when all pass and the process is not stopping. */
static bool run_checks(const jn_service_ops_t *ops, json_object *details)
{
    bool ok = !jn_service_stopping();
    for (int i = 0; i < ops->check_count; i++) {
        struct timespec t0;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        jn_err_t err = ops->checks[i].check(ops->checks[i].ud);
        double s = seconds_since(&t0);
        ok = ok && !err;
        if (details) {
            json_object *o = json_object_new_object();
            json_object_object_add(o, "status", json_object_new_string(err ? "down" : "ok"));
            json_object_object_add(o, "latency_ms", json_object_new_int((int)(s * 1000)));
            if (err)
                json_object_object_add(o, "error", json_object_new_string(jn_err_str(err)));
            json_object_object_add(details, ops->checks[i].name, o);
        }
    }
    jn_metric_set(jn_metrics_gauge("jn_up", "1 when every dependency is reachable", NULL),
                  ok ? 1 : 0);
    return ok;
}

static void handle_health(const jn_http_request_t *req, jn_http_response_t *res, void *ud)
{
    (void)req;
    const jn_service_ops_t *ops = ud;
    json_object *checks = json_object_new_object();
    bool ok = run_checks(ops, checks);
    json_object *root = json_object_new_object();
    json_object_object_add(root, "status",
                           json_object_new_string(ok                      ? "ok"
                                                  : jn_service_stopping() ? "stopping"
                                                                          : "unavailable"));
    json_object_object_add(root, "service", json_object_new_string(ops->service));
    json_object_object_add(root, "version", json_object_new_string(ops->version));
    json_object_object_add(root, "checks", checks);
    jn_http_respond_json(res, ok ? 200 : 503, root);
}

static void handle_readyz(const jn_http_request_t *req, jn_http_response_t *res, void *ud)
{
    (void)req;
    bool ok = run_checks(ud, NULL);
    jn_http_respond_text(res, ok ? 200 : 503, "text/plain; charset=utf-8",
                         ok ? "ready\n" : "not ready\n");
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

void jn_service_routes(jn_http_server_t *http, const jn_service_ops_t *ops)
{
    jn_http_route_t livez = {
        .method = "GET", .pattern = "/livez", .handler = handle_livez, .where = JN_HTTP_ON_LOOP};
    jn_http_route_add(http, &livez);
    jn_http_route(http, "GET", "/readyz", handle_readyz, (void *)ops);
    jn_http_route(http, "GET", "/health", handle_health, (void *)ops);
    jn_http_route(http, "GET", "/metrics", handle_metrics, NULL);
}

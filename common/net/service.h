/*
 * service.h - what every Junction program does around its own work: a graceful stop on
 * SIGTERM/SIGINT, and the operational endpoints.
 *
 * The operational endpoints live on their own listener (the admin port), so that probes
 * and scrapes never compete with the public API for connections:
 *   GET /livez    200 while the process runs; answered on the event loop itself, it never
 *                 touches a dependency, so an outage can never fail liveness;
 *   GET /readyz   200 when the process can do its work now (the checks below pass and it
 *                 is not stopping), else 503: take it out of rotation, do not restart it;
 *   GET /health   the same verdict with each check's state and latency as JSON;
 *   GET /metrics  Prometheus text.
 */
#ifndef JN_SERVICE_H
#define JN_SERVICE_H

#include <stdbool.h>

#include "core/err.h"
#include "net/http_server.h"

/* Installs the SIGTERM/SIGINT handlers and ignores SIGPIPE. */
void jn_service_install_signals(void);

/* True once SIGTERM or SIGINT arrived. Async-signal-safe flag, cheap to poll. */
bool jn_service_stopping(void);

/* Sleeps up to timeout_ms, returning early (true) when a stop is requested. */
bool jn_service_wait_for_stop(int timeout_ms);

/* One dependency /health and /readyz check: returns JN_OK when it is usable. Runs on a
 * task pool thread; must bound its own wait. */
typedef struct {
    const char *name; /* "postgres" */
    jn_err_t (*check)(void *ud);
    void *ud;
} jn_service_check_t;

#define JN_SERVICE_MAX_CHECKS 8

typedef struct {
    const char *service; /* "gateway" */
    const char *version;
    jn_service_check_t checks[JN_SERVICE_MAX_CHECKS];
    int check_count;
} jn_service_ops_t;

/* Registers /livez, /readyz, /health and /metrics on http; ops must outlive the server. */
void jn_service_routes(jn_http_server_t *http, const jn_service_ops_t *ops);

#endif

/*
 * harness.h - what integration tests share: spawning our programs with extra
 * environment, HTTP calls with libcurl, waiting on a condition with a deadline,
 * throwaway databases and names that do not collide between runs.
 *
 * Tests read the services' coordinates from the JUNCTION_* environment that
 * tests/run.sh exports (deploy/local/env.sh).
 */
#ifndef JN_TEST_HARNESS_H
#define JN_TEST_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

typedef struct {
    pid_t pid;
    char log_path[512];
    int exit_status; /* valid after jn_test_process_wait */
} jn_test_process_t;

/* Returns getenv(name) or fails the test with a message saying to run tests/run.sh. */
const char *jn_test_env(const char *name);

/* A name unique to this process and moment, e.g. "jt_12345_3" with the given prefix. */
void jn_test_unique(const char *prefix, char *out, size_t cap);

/* A TCP port on 127.0.0.1 that was free a moment ago. */
int jn_test_free_port(void);

/* Starts argv[0] with the current environment plus extra ("NAME=value", NULL-terminated;
 * an extra entry overrides the inherited one, and of two equal extra entries the first
 * wins). stdout and stderr go to log_path. Fails the test on error. */
void jn_test_spawn(jn_test_process_t *p, const char *const *argv, const char *const *extra_env,
                   const char *log_name);

/* Sends sig to the process. */
void jn_test_signal(jn_test_process_t *p, int sig);

/* Waits up to timeout_ms for exit; true when it exited (exit_status set, -1 if killed by a
 * signal). */
bool jn_test_process_wait(jn_test_process_t *p, int timeout_ms);

/* SIGKILLs and reaps the process if it still runs. */
void jn_test_process_kill(jn_test_process_t *p);

/* Reads the process's log into a new string (caller frees). */
char *jn_test_read_log(const jn_test_process_t *p);

/* An HTTP request; returns the status (0 when no response) and, if body is non-NULL, a new
 * string with the response body (caller frees). headers is a NULL-terminated list of
 * "Name: value" lines or NULL; req_body may be NULL. */
long jn_test_http(const char *method, const char *url, const char *const *headers,
                  const char *req_body, size_t req_body_len, char **body);

/* Picks free ports for a gateway's API and admin listeners: fills the two environment
 * entries ("JUNCTION_PORT=…", "JUNCTION_ADMIN_PORT=…", 64 bytes each) and the two base
 * URLs (64 bytes each). */
void jn_test_gateway_ports(char *env_port, char *env_admin, char *url, char *admin_url);

/* jn_test_http that also returns the response's header lines ("Name: value\r\n" each,
 * the status line first) in *resp_headers (new string; caller frees) when non-NULL. */
long jn_test_http_headers(const char *method, const char *url, const char *const *headers,
                          const char *req_body, size_t req_body_len, char **body,
                          char **resp_headers);

/* How many header lines named name (any case) headers holds; the first one's value goes to
 * out (may be NULL). */
int jn_test_header_value(const char *headers, const char *name, char *out, size_t cap);

/* Milliseconds on the monotonic clock, for measuring how long something took. */
long jn_test_now_ms(void);

/* Polls fn(ud) every 100 ms until it returns true or timeout_ms passes. */
bool jn_test_wait_until(bool (*fn)(void *ud), void *ud, int timeout_ms);

/* Runs a shell command from the repository root; returns its exit status. */
int jn_test_run(const char *command);

/* Creates a database named name (dropping one left over), returns its URL in url_out. */
void jn_test_create_database(const char *name, char *url_out, size_t cap);
void jn_test_drop_database(const char *name);

/* Runs one SQL statement on the database at url, returns the first column of the first row
 * as a new string (or NULL when there are no rows). Fails the test on error. */
char *jn_test_sql_value(const char *url, const char *sql);

/* A gateway started for one test file on its own fresh database, with fixed dev/prod
 * keys. extra_env may add variables (NULL-terminated, may be NULL). */
typedef struct {
    jn_test_process_t proc;
    char db[96];
    char db_url[512];
    char url[64];       /* the public API */
    char admin_url[64]; /* /health, /livez, /readyz, /metrics */
    char dev_key[128];
    char prod_key[128];
} jn_test_gateway_t;

void jn_test_gateway_start(jn_test_gateway_t *gw, const char *gateway_bin,
                           const char *const *extra_env);
/* SIGTERMs the gateway, checks it stopped cleanly, drops its database. */
void jn_test_gateway_stop(jn_test_gateway_t *gw);

/* A second gateway beside gw: the same database, keys and topic prefix, its own ports
 * (base URLs into url and admin_url, 64 bytes each). Waits until it is healthy. Stop it
 * with jn_test_service_stop(). */
void jn_test_gateway_beside(jn_test_process_t *p, const jn_test_gateway_t *gw, const char *bin,
                            const char *log_name, char *url, char *admin_url);

/* The whole file at path as a new string (at most 1 MiB); fails the test when it cannot be
 * read. */
char *jn_test_read_file(const char *path);

/* A worker or scheduler (bin) beside gw: the same database, keys and topic prefix, its
 * admin port free (the URL in admin_url, 64 bytes). Waits until its /livez answers.
 * extra_env as for the gateway. */
void jn_test_service_start(jn_test_process_t *p, const jn_test_gateway_t *gw, const char *bin,
                           const char *log_name, const char *const *extra_env, char *admin_url);

/* SIGTERMs p and waits up to timeout_ms; true when it exited with status 0. Kills it
 * otherwise. */
bool jn_test_service_stop(jn_test_process_t *p, int timeout_ms);

/* method path with "Authorization: Bearer key" (key may be NULL for none) and a JSON body
 * (may be NULL). Returns the status; *resp (if non-NULL) is the parsed JSON response or
 * NULL when it is not JSON (json_object_put it). */
struct json_object;
long jn_test_api(const jn_test_gateway_t *gw, const char *method, const char *path, const char *key,
                 const char *body, struct json_object **resp);

/* A value in kB from /proc/<pid>/status ("VmRSS", "VmHWM"), or -1. */
long jn_test_status_kb(pid_t pid, const char *field);

/* ---- raw HTTP over a socket: what curl will not send, and answers read byte-exact ---- */

/* The port of a "http://host:port" URL. */
int jn_test_url_port(const char *url);

/* A blocking TCP connection to 127.0.0.1:port, from the local address from (NULL: any;
 * "127.0.0.2" plays another client). -1 when it cannot be made. */
int jn_test_connect(const char *from, int port);

/* Writes all len bytes of data; false when the connection broke (SIGPIPE is ignored). */
bool jn_test_send(int fd, const void *data, size_t len);

typedef struct {
    int status;       /* 0 when no answer came in time */
    char head[16384]; /* the status line and headers, NUL-terminated */
    char *body;       /* NUL-terminated; caller frees (jn_test_response_cleanup) */
    size_t body_len;
} jn_test_response_t;

/* Reads one answer within timeout_ms: its head, then a body of Content-Length bytes, or
 * up to the end of the connection when there is none. Returns the status. */
int jn_test_read_response(int fd, int timeout_ms, jn_test_response_t *r);
void jn_test_response_cleanup(jn_test_response_t *r);

/* Waits up to timeout_ms for the peer to close the connection (EOF or reset), discarding
 * what arrives meanwhile; true when it did. */
bool jn_test_wait_closed(int fd, int timeout_ms);

/* One request sent raw on a new connection to port, and its answer. Returns the status. */
int jn_test_raw_request(int port, const char *request, size_t len, int timeout_ms,
                        jn_test_response_t *r);

/* Fails the test unless r is status with the JSON error envelope
 * {"error":{"code":code,"message":"…"}} (Content-Type: application/json). */
void jn_test_expect_error(const jn_test_response_t *r, int status, const char *code,
                          const char *what);

/* Fails the test unless got == want, naming what and showing resp (may be NULL). */
void jn_test_expect_status(long got, long want, struct json_object *resp, const char *what);

/* The string at a dotted path ("error.code", "data.0.unique_key") or NULL. */
const char *jn_test_json_str(struct json_object *o, const char *path);

/* The value at a dotted path (borrowed from o), or NULL. */
struct json_object *jn_test_json_get(struct json_object *o, const char *path);

#endif

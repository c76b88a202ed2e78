/*
 * fake_provider - a stand-in for an external API in integration tests: an OAuth 2
 * authorization server and a paged REST API, deterministic and steered over HTTP
 * (/_admin). See fake_provider.h for the parts and tests/integration/test_fake_provider.c
 * for its use.
 *
 *   fake_provider [--port N]
 *       listens on 127.0.0.1:N (0 or absent: a free port), then prints exactly
 *       "listening on <port>\n" to stdout; exits 0 on SIGTERM or SIGINT.
 *
 * This file holds the program and the state's lifecycle; the handlers live in the
 * fake_provider_*.c files.
 */
#include <ctype.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/crypto.h"
#include "fake_provider.h"
#include "core/json_util.h"
#include "core/log.h"

static volatile sig_atomic_t stop_requested;

static void on_stop_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

char *jn_fake_strdup(const char *s)
{
    if (!s)
        return NULL;
    char *p = strdup(s);
    if (!p)
        abort();
    return p;
}

int64_t jn_fake_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void jn_fake_sleep_ms(int64_t ms)
{
    if (ms <= 0)
        return;
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

void jn_fake_random_value(const char *prefix, char out[JN_FAKE_TOKEN_MAX])
{
    unsigned char raw[16];
    char hex[sizeof raw * 2 + 1];
    jn_crypto_random(raw, sizeof raw);
    jn_hex_encode(raw, sizeof raw, hex);
    snprintf(out, JN_FAKE_TOKEN_MAX, "%s%s", prefix, hex);
}

void jn_fake_count(json_object *map, const char *key)
{
    json_object *n = NULL;
    int64_t v = json_object_object_get_ex(map, key, &n) ? json_object_get_int64(n) : 0;
    json_object_object_add(map, key, json_object_new_int64(v + 1));
}

static void add_header(const char *key, const char *value, void *cls)
{
    json_object *out = cls;
    char name[256];
    size_t n = 0;
    for (; key[n] && n + 1 < sizeof name; n++)
        name[n] = (char)tolower((unsigned char)key[n]);
    name[n] = '\0';
    value = value ? value : "";
    json_object *prev = NULL;
    if (json_object_object_get_ex(out, name, &prev)) {
        const char *old = json_object_get_string(prev);
        size_t len = strlen(old) + 2 + strlen(value) + 1;
        char *joined = malloc(len);
        if (!joined)
            abort();
        snprintf(joined, len, "%s, %s", old, value);
        json_object_object_add(out, name, json_object_new_string(joined));
        free(joined);
    } else {
        json_object_object_add(out, name, json_object_new_string(value));
    }
}

json_object *jn_fake_request_headers(const jn_http_request_t *req)
{
    json_object *out = json_object_new_object();
    jn_http_header_each(req, add_header, out);
    return out;
}

static void add_query(const char *key, const char *value, void *cls)
{
    json_object *out = cls;
    json_object *v = json_object_new_string(value ? value : "");
    json_object *prev = NULL;
    if (!json_object_object_get_ex(out, key, &prev)) {
        json_object_object_add(out, key, v);
    } else if (json_object_is_type(prev, json_type_array)) {
        json_object_array_add(prev, v);
    } else {
        json_object *arr = json_object_new_array();
        json_object_array_add(arr, json_object_get(prev));
        json_object_array_add(arr, v);
        json_object_object_add(out, key, arr);
    }
}

json_object *jn_fake_request_query(const jn_http_request_t *req)
{
    json_object *out = json_object_new_object();
    jn_http_query_all(req, add_query, out);
    return out;
}

json_object *jn_fake_body_object(const jn_http_request_t *req, jn_http_response_t *res)
{
    json_object *obj = NULL;
    jn_field_error_t e;
    if (jn_json_parse(req->body, req->body_len, true, &obj, &e) != JN_OK) {
        char why[512];
        snprintf(why, sizeof why, "%s%s%s", e.path, e.path[0] ? ": " : "", e.message);
        jn_fake_respond_oauth_error(res, 400, "invalid_request", why);
        return NULL;
    }
    return obj;
}

void jn_fake_respond_oauth_error(jn_http_response_t *res, int status, const char *error,
                                 const char *description)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "error", json_object_new_string(error));
    if (description)
        json_object_object_add(o, "error_description", json_object_new_string(description));
    jn_http_respond_json(res, status, o);
}

void jn_fake_client_put(jn_fake_client_t **list, const char *id, const char *secret)
{
    for (jn_fake_client_t *c = *list; c; c = c->next) {
        if (strcmp(c->id, id) == 0) {
            free(c->secret);
            c->secret = jn_fake_strdup(secret);
            return;
        }
    }
    jn_fake_client_t *c = calloc(1, sizeof *c);
    if (!c)
        abort();
    c->id = jn_fake_strdup(id);
    c->secret = jn_fake_strdup(secret);
    c->next = *list;
    *list = c;
}

const jn_fake_client_t *jn_fake_client_find(const jn_fake_client_t *list, const char *id)
{
    for (; list; list = list->next)
        if (strcmp(list->id, id) == 0)
            return list;
    return NULL;
}

const char *jn_fake_intern(jn_fake_t *fp, const char *s)
{
    const jn_fake_client_t *found = jn_fake_client_find(fp->interned, s);
    if (!found) {
        jn_fake_client_put(&fp->interned, s, NULL);
        found = fp->interned;
    }
    return found->id;
}

static void free_list(jn_fake_client_t *c)
{
    while (c) {
        jn_fake_client_t *next = c->next;
        free(c->id);
        free(c->secret);
        free(c);
        c = next;
    }
}

void jn_fake_knobs_default(jn_fake_knobs_t *k)
{
    memset(k, 0, sizeof *k);
    k->expires_in = 3600;
    k->issue_refresh_token = true;
    k->items_count = 250;
    k->items_fail_from_offset = -1;
    k->require_auth = true;
}

void jn_fake_knobs_cleanup(jn_fake_knobs_t *k)
{
    json_object_put(k->extra_token_fields);
    json_object_put(k->fail_next.headers);
    free(k->fail_next.body);
    free(k->fail_next.content_type);
    memset(k, 0, sizeof *k);
}

static void free_state(jn_fake_t *fp)
{
    jn_fake_knobs_cleanup(&fp->knobs);
    free_list(fp->clients);
    free_list(fp->api_keys);
    for (jn_fake_code_t *c = fp->codes, *next; c; c = next) {
        next = c->next;
        free(c->client_id);
        free(c->redirect_uri);
        free(c->challenge);
        free(c->challenge_method);
        free(c->scope);
        free(c);
    }
    for (jn_fake_token_t *t = fp->tokens, *next; t; t = next) {
        next = t->next;
        free(t->client_id);
        free(t->scope);
        free(t);
    }
    json_object_put(fp->token_requests_by_grant);
    json_object_put(fp->api_requests_by_path);
    json_object_put(fp->last_token_request);
    fp->clients = fp->api_keys = NULL;
    fp->codes = NULL;
    fp->tokens = NULL;
    fp->token_requests_by_grant = fp->api_requests_by_path = fp->last_token_request = NULL;
}

void jn_fake_reset(jn_fake_t *fp)
{
    free_state(fp);
    jn_fake_knobs_default(&fp->knobs);
    jn_fake_client_put(&fp->clients, JN_FAKE_CLIENT_ID, JN_FAKE_CLIENT_SECRET);
    fp->window_start_ms = 0;
    fp->window_used = 0;
    fp->authorize_requests = 0;
    fp->token_requests = 0;
    fp->api_requests = 0;
    fp->token_requests_by_grant = json_object_new_object();
    fp->api_requests_by_path = json_object_new_object();
}

void jn_fake_init(jn_fake_t *fp)
{
    memset(fp, 0, sizeof *fp);
    pthread_mutex_init(&fp->mu, NULL);
    atomic_init(&fp->stop, false);
    jn_fake_reset(fp);
}

void jn_fake_cleanup(jn_fake_t *fp)
{
    free_state(fp);
    free_list(fp->interned);
    fp->interned = NULL;
    pthread_mutex_destroy(&fp->mu);
}

static int usage(void)
{
    fprintf(stderr, "usage: fake_provider [--port N]\n");
    return 2;
}

/* Parses the command line into *port; false on a bad one. */
static bool parse_args(int argc, char **argv, uint16_t *port)
{
    *port = 0;
    for (int i = 1; i < argc; i++) {
        const char *value = NULL;
        if (strcmp(argv[i], "--port") == 0 && i + 1 < argc)
            value = argv[++i];
        else if (strncmp(argv[i], "--port=", 7) == 0)
            value = argv[i] + 7;
        else
            return false;
        char *end = NULL;
        errno = 0;
        long n = strtol(value, &end, 10);
        if (errno != 0 || end == value || *end != '\0' || n < 0 || n > 65535)
            return false;
        *port = (uint16_t)n;
    }
    return true;
}

int main(int argc, char **argv)
{
    jn_log_init("fake_provider", JN_LOG_WARN);
    uint16_t port;
    if (!parse_args(argc, argv, &port))
        return usage();

    /* The stop signals stay blocked in every thread but this one, and only while it
     * waits in sigsuspend: the flag cannot be set between the check and the wait. */
    struct sigaction sa = {.sa_handler = on_stop_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    sigset_t stop_set, old_set;
    sigemptyset(&stop_set);
    sigaddset(&stop_set, SIGTERM);
    sigaddset(&stop_set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &stop_set, &old_set);

    static jn_fake_t fp;
    jn_fake_init(&fp);
    /* A gateway under test may hold thousands of connections to it (calls that hang). */
    jn_http_options_t opts = {.bind_address = "127.0.0.1",
                              .port = port,
                              .max_body = 32u << 20,
                              .threads = 16,
                              .max_connections = 16384,
                              .max_connections_per_address = 8192};
    jn_http_server_t *srv = jn_http_server_new(&opts);
    if (!srv)
        abort();
    jn_fake_routes_admin(&fp, srv);
    jn_fake_routes_oauth(&fp, srv);
    jn_fake_routes_edge(&fp, srv);
    jn_fake_routes_api(&fp, srv);
    if (jn_http_server_start(srv) != JN_OK) {
        jn_http_server_free(srv);
        jn_fake_cleanup(&fp);
        return 1;
    }
    pthread_mutex_lock(&fp.mu);
    fp.port = jn_http_server_port(srv);
    pthread_mutex_unlock(&fp.mu);
    printf("listening on %u\n", (unsigned)fp.port);
    fflush(stdout);

    sigset_t wait_set = old_set;
    sigdelset(&wait_set, SIGTERM);
    sigdelset(&wait_set, SIGINT);
    while (!stop_requested)
        sigsuspend(&wait_set);

    atomic_store(&fp.stop, true);
    jn_http_server_free(srv);
    jn_fake_cleanup(&fp);
    return 0;
}

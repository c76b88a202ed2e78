/*
 * provider_http.c - provider calls on libcurl's multi socket interface, driven by one
 * event loop (see the header for the rules).
 *
 * Each environment has a curl multi handle (its own connection pool) whose sockets and
 * timer are watched by the loop. A call is a small state machine: queued (over the
 * environment's limit) -> attempt (a curl easy handle in the multi) -> [waiting to retry
 * | refreshing credentials] -> answered (its body streams) -> done. Decisions that follow
 * an attempt (retry, redirect, refresh, answer) are taken after curl returns, never from
 * inside its callbacks; the stream is reference-counted so that work posted for it stays
 * valid until it runs.
 */
#include "providers/provider_http.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "core/crypto.h"
#include "core/log.h"
#include "core/metrics.h"

#define BODY_BUFFER_MAX (256 * 1024)
#define UPLOAD_BUFFER_MAX (256 * 1024)
#define MAX_HEADER_BYTES (64 * 1024)
#define MAX_REDIRECTS 5
#define STOP_POLL_MS 100 /* how often a blocking fetch looks at its stop flags */
#define DEFAULT_WAIT_BUDGET_MS 60000L
#define BACKOFF_BASE_MS 500.0
#define BACKOFF_CAP_MS 30000.0

typedef struct env_multi env_multi_t;

struct jn_provider_http {
    jn_provider_http_options_t opts;
    jn_loop_t *loop;
    CURLSH *share;
    env_multi_t *multis;
};

struct env_multi {
    env_multi_t *next;
    jn_provider_http_t *h;
    long long env_id;
    CURLM *multi;
    jn_loop_timer_t timer;
    int in_flight;
    int queued;
    jn_provider_stream_t *queue_head, *queue_tail;
};

typedef struct {
    jn_loop_watch_t watch;
    env_multi_t *m;
    curl_socket_t fd;
} sock_t;

typedef enum {
    S_QUEUED,
    S_ATTEMPT,
    S_WAITING,    /* a retry's backoff */
    S_REFRESHING, /* waiting for new credentials */
    S_ANSWERED,   /* on_head ran with JN_OK; the body streams */
    S_FAILED,     /* on_head ran with an error */
    S_CLOSED,
} stream_state_t;

struct jn_provider_stream {
    jn_provider_http_t *h;
    env_multi_t *m;
    int refs;
    stream_state_t state;
    bool counted; /* holds an in-flight slot */
    jn_provider_stream_t *queue_next;
    /* the call, copied */
    char *method;
    char *endpoint, *url, *query, *base_url_override, *retry_on;
    char **headers;
    int header_count;
    char *body;
    size_t body_len;
    jn_provider_call_t call; /* strings point at the copies above */
    jn_provider_target_t target;
    json_object *refreshed; /* owned credentials after a refresh */
    jn_provider_head_fn on_head;
    void *on_head_ud;
    void (*on_data)(void *ud);
    void *on_data_ud;
    /* retry state */
    int retries_left;
    double wait_budget_ms;
    bool tried_refresh;
    bool drop_auth;
    char *redirect_url;
    int redirects;
    jn_loop_timer_t timer; /* backoff, or the headers timeout of an attempt */
    /* the attempt */
    CURL *easy;
    struct curl_slist *header_list;
    jn_built_request_t built;
    jn_egress_guard_t egress;
    int attempts;
    bool headers_done;
    bool transfer_done;
    bool timed_out; /* the headers timeout ended the attempt */
    CURLcode result;
    bool decision_posted;
    /* the answer */
    long status;
    char **resp_headers;
    int resp_header_count, resp_header_cap;
    size_t resp_header_bytes;
    char *buf;
    size_t buf_start, buf_end, buf_cap;
    bool paused;
    bool reader_waiting;
    /* an upload */
    char *up_buf;
    size_t up_start, up_end;
    bool up_eof, up_paused, up_waiting;
};

static void count(const char *name, const char *help, const char *labels)
{
    jn_metric_inc(jn_metrics_counter(name, help, labels));
}

static char *dup_or_null(const char *s)
{
    if (!s)
        return NULL;
    char *p = strdup(s);
    if (!p)
        abort();
    return p;
}

/* ---- the multi handles and the loop ---- */

static void check_done(env_multi_t *m);

static void on_socket_event(jn_loop_watch_t *w, unsigned events)
{
    sock_t *sk = w->ud;
    env_multi_t *m = sk->m;
    int mask = 0;
    if (events & JN_LOOP_READ)
        mask |= CURL_CSELECT_IN;
    if (events & JN_LOOP_WRITE)
        mask |= CURL_CSELECT_OUT;
    if (events & JN_LOOP_ERROR)
        mask |= CURL_CSELECT_ERR;
    int running = 0;
    curl_multi_socket_action(m->multi, sk->fd, mask, &running);
    check_done(m);
}

static int socket_cb(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
    (void)easy;
    env_multi_t *m = userp;
    sock_t *sk = socketp;
    if (what == CURL_POLL_REMOVE) {
        if (sk) {
            jn_loop_watch_stop(&sk->watch);
            curl_multi_assign(m->multi, fd, NULL);
            free(sk);
        }
        return 0;
    }
    unsigned events = 0;
    if (what == CURL_POLL_IN || what == CURL_POLL_INOUT)
        events |= JN_LOOP_READ;
    if (what == CURL_POLL_OUT || what == CURL_POLL_INOUT)
        events |= JN_LOOP_WRITE;
    if (!sk) {
        sk = calloc(1, sizeof *sk);
        if (!sk)
            abort();
        sk->m = m;
        sk->fd = fd;
        if (jn_loop_watch_start(m->h->loop, &sk->watch, fd, events, on_socket_event, sk) != JN_OK) {
            free(sk);
            return -1;
        }
        curl_multi_assign(m->multi, fd, sk);
    } else {
        jn_loop_watch_update(&sk->watch, events);
    }
    return 0;
}

static void on_multi_timer(jn_loop_timer_t *t)
{
    env_multi_t *m = t->ud;
    int running = 0;
    curl_multi_socket_action(m->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    check_done(m);
}

static int timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
    (void)multi;
    env_multi_t *m = userp;
    if (timeout_ms < 0)
        jn_loop_timer_stop(&m->timer);
    else
        jn_loop_timer_start(m->h->loop, &m->timer, (uint64_t)timeout_ms, on_multi_timer, m);
    return 0;
}

static env_multi_t *multi_for(jn_provider_http_t *h, long long env_id)
{
    for (env_multi_t *m = h->multis; m; m = m->next) {
        if (m->env_id == env_id)
            return m;
    }
    env_multi_t *m = calloc(1, sizeof *m);
    if (!m)
        abort();
    m->h = h;
    m->env_id = env_id;
    m->multi = curl_multi_init();
    if (!m->multi)
        abort();
    jn_loop_timer_init(&m->timer);
    curl_multi_setopt(m->multi, CURLMOPT_SOCKETFUNCTION, socket_cb);
    curl_multi_setopt(m->multi, CURLMOPT_SOCKETDATA, m);
    curl_multi_setopt(m->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
    curl_multi_setopt(m->multi, CURLMOPT_TIMERDATA, m);
    curl_multi_setopt(m->multi, CURLMOPT_MAXCONNECTS, 256L);
    m->next = h->multis;
    h->multis = m;
    return m;
}

jn_provider_http_t *jn_provider_http_new(const jn_provider_http_options_t *opts)
{
    jn_provider_http_t *h = calloc(1, sizeof *h);
    if (!h)
        abort();
    h->opts = *opts;
    h->loop = opts->loop;
    if (h->opts.max_in_flight_per_env <= 0)
        h->opts.max_in_flight_per_env = 512;
    if (h->opts.max_queued_per_env <= 0)
        h->opts.max_queued_per_env = 4096;
    if (h->opts.connect_timeout_ms <= 0)
        h->opts.connect_timeout_ms = 10000;
    if (h->opts.headers_timeout_ms <= 0)
        h->opts.headers_timeout_ms = 60000;
    if (h->opts.stall_timeout_ms <= 0)
        h->opts.stall_timeout_ms = 60000;
    h->share = curl_share_init();
    if (!h->share)
        abort();
    /* DNS answers and TLS sessions are shared; connections are not (one pool per
     * environment). Every handle is used on the loop thread only, so no locks. */
    curl_share_setopt(h->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
    curl_share_setopt(h->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
    return h;
}

static void free_multis(void *ud)
{
    jn_provider_http_t *h = ud;
    for (env_multi_t *m = h->multis, *next; m; m = next) {
        next = m->next;
        jn_loop_timer_stop(&m->timer);
        curl_multi_cleanup(m->multi);
        free(m);
    }
    h->multis = NULL;
}

typedef struct {
    jn_provider_http_t *h;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool done;
} free_call_t;

static void free_on_loop(void *ud)
{
    free_call_t *f = ud;
    free_multis(f->h);
    pthread_mutex_lock(&f->lock);
    f->done = true;
    pthread_cond_signal(&f->cond);
    pthread_mutex_unlock(&f->lock);
}

void jn_provider_http_free(jn_provider_http_t *h)
{
    if (!h)
        return;
    if (h->multis) {
        free_call_t f = {.h = h};
        pthread_mutex_init(&f.lock, NULL);
        pthread_cond_init(&f.cond, NULL);
        jn_loop_post(h->loop, free_on_loop, &f);
        /* When the loop has already stopped, jn_loop_stop() ran the post; either way it
         * has run or will run now. */
        pthread_mutex_lock(&f.lock);
        while (!f.done)
            pthread_cond_wait(&f.cond, &f.lock);
        pthread_mutex_unlock(&f.lock);
        pthread_cond_destroy(&f.cond);
        pthread_mutex_destroy(&f.lock);
    }
    curl_share_cleanup(h->share);
    free(h);
}

jn_loop_t *jn_provider_http_loop(const jn_provider_http_t *h)
{
    return h->loop;
}

/* ---- streams: references and notifications ---- */

static void stream_free(jn_provider_stream_t *s);

static void unref(jn_provider_stream_t *s)
{
    if (--s->refs == 0)
        stream_free(s);
}

static void posted_data(void *ud)
{
    jn_provider_stream_t *s = ud;
    if (s->state != S_CLOSED && s->on_data)
        s->on_data(s->on_data_ud);
    unref(s);
}

/* Tells the reader (later on this iteration) that something became readable. */
static void notify_data(jn_provider_stream_t *s)
{
    if (!s->reader_waiting && !s->up_waiting)
        return;
    s->reader_waiting = false;
    s->up_waiting = false;
    s->refs++;
    jn_loop_post(s->h->loop, posted_data, s);
}

/* ---- curl callbacks: record only, decide later ---- */

static void clear_response_headers(jn_provider_stream_t *s)
{
    for (int i = 0; i < s->resp_header_count; i++)
        free(s->resp_headers[i]);
    s->resp_header_count = 0;
    s->resp_header_bytes = 0;
}

static void post_decision(jn_provider_stream_t *s);

static size_t on_header(char *data, size_t size, size_t nitems, void *ud)
{
    jn_provider_stream_t *s = ud;
    size_t n = size * nitems;
    size_t len = n;
    while (len > 0 && (data[len - 1] == '\r' || data[len - 1] == '\n'))
        len--;
    if (len >= 5 && strncmp(data, "HTTP/", 5) == 0) {
        clear_response_headers(s);
        const char *sp = memchr(data, ' ', len);
        s->status = sp ? strtol(sp + 1, NULL, 10) : 0;
        s->headers_done = false;
        return n;
    }
    if (len == 0) {
        /* The end of a header block; a 1xx block is followed by the real one. */
        if (s->status >= 200 && !s->headers_done) {
            s->headers_done = true;
            post_decision(s);
        }
        return n;
    }
    if (s->resp_header_bytes + len > MAX_HEADER_BYTES)
        return n; /* past the cap, further headers are ignored */
    if (s->resp_header_count == s->resp_header_cap) {
        s->resp_header_cap = s->resp_header_cap ? s->resp_header_cap * 2 : 16;
        s->resp_headers = realloc(s->resp_headers, (size_t)s->resp_header_cap * sizeof(char *));
        if (!s->resp_headers)
            abort();
    }
    char *h = malloc(len + 1);
    if (!h)
        abort();
    memcpy(h, data, len);
    h[len] = '\0';
    s->resp_headers[s->resp_header_count++] = h;
    s->resp_header_bytes += len;
    return n;
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *ud)
{
    jn_provider_stream_t *s = ud;
    size_t n = size * nmemb;
    if (s->buf_end + n > s->buf_cap && s->buf_start > 0) {
        memmove(s->buf, s->buf + s->buf_start, s->buf_end - s->buf_start);
        s->buf_end -= s->buf_start;
        s->buf_start = 0;
    }
    if (s->buf_end + n > s->buf_cap) {
        size_t cap = s->buf_cap ? s->buf_cap : 16384;
        while (cap < s->buf_end + n && cap < BODY_BUFFER_MAX)
            cap *= 2;
        if (cap > BODY_BUFFER_MAX)
            cap = BODY_BUFFER_MAX;
        if (cap > s->buf_cap) {
            s->buf = realloc(s->buf, cap);
            if (!s->buf)
                abort();
            s->buf_cap = cap;
        }
    }
    if (s->buf_end + n > s->buf_cap) {
        s->paused = true;
        return CURL_WRITEFUNC_PAUSE;
    }
    memcpy(s->buf + s->buf_end, data, n);
    s->buf_end += n;
    if (s->state == S_ANSWERED)
        notify_data(s);
    return n;
}

static size_t on_upload(char *buf, size_t size, size_t nitems, void *ud)
{
    jn_provider_stream_t *s = ud;
    size_t max = size * nitems;
    size_t have = s->up_end - s->up_start;
    if (have == 0) {
        if (s->up_eof)
            return 0;
        s->up_paused = true;
        return CURL_READFUNC_PAUSE;
    }
    size_t n = have < max ? have : max;
    memcpy(buf, s->up_buf + s->up_start, n);
    s->up_start += n;
    if (s->up_start == s->up_end)
        s->up_start = s->up_end = 0;
    notify_data(s); /* room again */
    return n;
}

/* ---- the retry policy ---- */

static json_object *retry_config(json_object *provider, const char *key)
{
    json_object *proxy = NULL, *retry = NULL, *v = NULL;
    if (provider && json_object_object_get_ex(provider, "proxy", &proxy) &&
        json_object_object_get_ex(proxy, "retry", &retry) &&
        json_object_object_get_ex(retry, key, &v))
        return v;
    return NULL;
}

static bool code_matches(const char *pattern, long status)
{
    if (strlen(pattern) == 3 && pattern[1] == 'x' && pattern[2] == 'x')
        return status / 100 == pattern[0] - '0';
    return strtol(pattern, NULL, 10) == status;
}

static bool retryable_status(const jn_provider_stream_t *s)
{
    long st = s->status;
    json_object *codes = retry_config(s->target.provider, "error_code");
    bool listed = false;
    if (codes && json_object_is_type(codes, json_type_array)) {
        for (size_t i = 0; i < json_object_array_length(codes) && !listed; i++)
            listed = code_matches(json_object_get_string(json_object_array_get_idx(codes, i)), st);
    } else {
        listed = st == 429 || st >= 500;
    }
    for (const char *p = s->call.retry_on; p && *p && !listed;) {
        listed = strtol(p, NULL, 10) == st;
        p = strchr(p, ',');
        if (p)
            p++;
    }
    json_object *remaining = retry_config(s->target.provider, "remaining");
    if (!listed && st >= 400 && remaining) {
        const char *v = jn_provider_stream_header_get(s, json_object_get_string(remaining));
        listed = v && v[0] == '0' && strtol(v, NULL, 10) == 0;
    }
    return listed;
}

/* How long the provider asks us to wait, in ms; -1 when it does not say. */
static double requested_wait_ms(const jn_provider_stream_t *s)
{
    json_object *after = retry_config(s->target.provider, "after");
    json_object *at = retry_config(s->target.provider, "at");
    size_t n_after = after ? json_object_array_length(after) : 1;
    for (size_t i = 0; i < n_after; i++) {
        const char *name =
            after ? json_object_get_string(json_object_array_get_idx(after, i)) : "retry-after";
        const char *v = jn_provider_stream_header_get(s, name);
        if (!v)
            continue;
        char *end = NULL;
        double seconds = strtod(v, &end);
        if (end != v && *end == '\0')
            return seconds * 1000.0;
        time_t when = curl_getdate(v, NULL);
        if (when > 0)
            return ((double)when - (double)time(NULL)) * 1000.0;
    }
    for (size_t i = 0; at && i < json_object_array_length(at); i++) {
        const char *v = jn_provider_stream_header_get(
            s, json_object_get_string(json_object_array_get_idx(at, i)));
        if (!v)
            continue;
        double stamp = strtod(v, NULL);
        if (stamp > 1e11)
            stamp /= 1000.0; /* milliseconds */
        struct timespec now;
        clock_gettime(CLOCK_REALTIME, &now);
        return (stamp - ((double)now.tv_sec + (double)now.tv_nsec / 1e9)) * 1000.0;
    }
    return -1;
}

static double backoff_ms(int attempt)
{
    double ceiling = BACKOFF_BASE_MS;
    for (int i = 1; i < attempt && ceiling < BACKOFF_CAP_MS; i++)
        ceiling *= 2;
    if (ceiling > BACKOFF_CAP_MS)
        ceiling = BACKOFF_CAP_MS;
    unsigned r;
    jn_crypto_random(&r, sizeof r);
    return ceiling * ((double)r / 4294967295.0); /* full jitter */
}

/* Resolves a Location against the current URL; new string or NULL. */
static char *resolve_location(const char *current, const char *location, bool *same_origin)
{
    CURLU *u = curl_url();
    char *out = NULL, *old_host = NULL, *new_host = NULL, *old_scheme = NULL, *new_scheme = NULL;
    char *old_port = NULL, *new_port = NULL;
    *same_origin = false;
    curl_url_set(u, CURLUPART_URL, current, 0);
    curl_url_get(u, CURLUPART_HOST, &old_host, 0);
    curl_url_get(u, CURLUPART_SCHEME, &old_scheme, 0);
    curl_url_get(u, CURLUPART_PORT, &old_port, CURLU_DEFAULT_PORT);
    if (curl_url_set(u, CURLUPART_URL, location, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_URL, &out, 0) == CURLUE_OK) {
        curl_url_get(u, CURLUPART_HOST, &new_host, 0);
        curl_url_get(u, CURLUPART_SCHEME, &new_scheme, 0);
        curl_url_get(u, CURLUPART_PORT, &new_port, CURLU_DEFAULT_PORT);
        *same_origin = old_host && new_host && strcasecmp(old_host, new_host) == 0 && old_scheme &&
                       new_scheme && strcmp(old_scheme, new_scheme) == 0 && old_port && new_port &&
                       strcmp(old_port, new_port) == 0;
    }
    char *copy = out ? dup_or_null(out) : NULL;
    curl_free(out);
    curl_free(old_host);
    curl_free(new_host);
    curl_free(old_scheme);
    curl_free(new_scheme);
    curl_free(old_port);
    curl_free(new_port);
    curl_url_cleanup(u);
    return copy;
}

/* Caller headers that carry nothing secret, kept on a hop to another origin. */
static bool harmless_header(const char *line)
{
    static const char *const names[] = {
        "accept",     "accept-encoding", "accept-language",   "content-type",  "content-language",
        "user-agent", "if-none-match",   "if-modified-since", "cache-control", "range",
        NULL};
    const char *colon = strchr(line, ':');
    if (!colon)
        return false;
    size_t n = (size_t)(colon - line);
    for (int i = 0; names[i]; i++) {
        if (strlen(names[i]) == n && strncasecmp(line, names[i], n) == 0)
            return true;
    }
    return false;
}

/* ---- attempts ---- */

static void end_attempt(jn_provider_stream_t *s)
{
    jn_loop_timer_stop(&s->timer);
    if (s->easy) {
        curl_multi_remove_handle(s->m->multi, s->easy);
        curl_easy_cleanup(s->easy);
        s->easy = NULL;
    }
    curl_slist_free_all(s->header_list);
    s->header_list = NULL;
    jn_built_request_cleanup(&s->built);
    clear_response_headers(s);
    s->status = 0;
    s->headers_done = s->transfer_done = s->paused = s->timed_out = false;
    s->egress.refused = false;
    s->result = CURLE_OK;
    s->buf_start = s->buf_end = 0;
}

static void release_slot(jn_provider_stream_t *s);
static void fail(jn_provider_stream_t *s, jn_err_t err, const char *why);
static void decide(jn_provider_stream_t *s);

static void on_headers_timeout(jn_loop_timer_t *t)
{
    jn_provider_stream_t *s = t->ud;
    if (s->state != S_ATTEMPT || s->headers_done)
        return;
    s->timed_out = true;
    s->transfer_done = true;
    s->result = CURLE_OPERATION_TIMEDOUT;
    decide(s);
}

static bool build_request(jn_provider_stream_t *s, char *why, size_t why_len)
{
    if (s->call.url) {
        /* A request built by the caller (OAuth token requests): used as it is. */
        memset(&s->built, 0, sizeof s->built);
        s->built.url = dup_or_null(s->call.url);
        s->built.headers = calloc((size_t)s->header_count + 1, sizeof *s->built.headers);
        s->built.credential = calloc((size_t)s->header_count + 1, sizeof *s->built.credential);
        if (!s->built.headers || !s->built.credential)
            abort();
        s->built.header_cap = s->header_count;
        for (int i = 0; i < s->header_count; i++)
            s->built.headers[s->built.header_count++] = dup_or_null(s->headers[i]);
        return true;
    }
    jn_provider_target_t t = s->target;
    const char *const *headers = (const char *const *)s->headers;
    char **kept = NULL;
    if (s->drop_auth) {
        /* Another origin: no credentials, and only harmless caller headers. */
        t.credentials = NULL;
        kept = calloc((size_t)s->header_count + 1, sizeof *kept);
        if (!kept)
            abort();
        int k = 0;
        for (int i = 0; i < s->header_count; i++) {
            if (harmless_header(s->headers[i]))
                kept[k++] = s->headers[i];
        }
        headers = (const char *const *)kept;
    }
    jn_err_t err = jn_provider_build(&t, s->call.base_url_override, s->call.endpoint, s->call.query,
                                     headers, &s->built, why, why_len);
    free(kept);
    if (err)
        return false;
    if (s->redirect_url) {
        free(s->built.url);
        s->built.url = s->redirect_url;
        s->redirect_url = NULL;
    }
    return true;
}

static void start_attempt(jn_provider_stream_t *s)
{
    char why[512];
    if (!build_request(s, why, sizeof why)) {
        fail(s, JN_ERR_INVALID, why);
        return;
    }
    s->attempts++;
    s->state = S_ATTEMPT;
    CURL *e = curl_easy_init();
    if (!e)
        abort();
    s->easy = e;
    for (int i = 0; i < s->built.header_count; i++)
        s->header_list = curl_slist_append(s->header_list, s->built.headers[i]);
    /* No "Expect: 100-continue" round trip for bodies. */
    s->header_list = curl_slist_append(s->header_list, "Expect:");
    curl_easy_setopt(e, CURLOPT_PRIVATE, s);
    curl_easy_setopt(e, CURLOPT_URL, s->built.url);
    curl_easy_setopt(e, CURLOPT_SHARE, s->h->share);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, s->header_list);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(e, CURLOPT_PROXY, ""); /* never the process environment's proxies */
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, s->h->opts.connect_timeout_ms);
    if (s->call.timeout_ms > 0)
        curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, s->call.timeout_ms);
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, (s->h->opts.stall_timeout_ms + 999) / 1000);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "junction/0.1");
    if (s->call.decompress)
        curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "");
    s->egress.policy = s->call.egress;
    jn_egress_guard_curl(e, &s->egress);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, s);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, s);
    const char *method = s->method;
    bool head = strcmp(method, "HEAD") == 0;
    if (head)
        curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
    else if (strcmp(method, "GET") != 0)
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
    if (s->call.upload) {
        curl_easy_setopt(e, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
        curl_easy_setopt(e, CURLOPT_READFUNCTION, on_upload);
        curl_easy_setopt(e, CURLOPT_READDATA, s);
        curl_easy_setopt(e, CURLOPT_INFILESIZE_LARGE, (curl_off_t)s->call.upload_length);
    } else if (s->body && !head) {
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, s->body);
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)s->body_len);
        if (strcmp(method, "POST") != 0)
            curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
    }
    long headers_ms =
        s->call.headers_timeout_ms > 0 ? s->call.headers_timeout_ms : s->h->opts.headers_timeout_ms;
    uint64_t now = jn_loop_now_ms(s->h->loop);
    if (s->call.deadline_ms) {
        if (s->call.deadline_ms <= now) {
            fail(s, JN_ERR_TIMEOUT, "the call's deadline passed before it could be sent");
            return;
        }
        if ((uint64_t)headers_ms > s->call.deadline_ms - now)
            headers_ms = (long)(s->call.deadline_ms - now);
        long left = (long)(s->call.deadline_ms - now);
        if (s->call.timeout_ms <= 0 || s->call.timeout_ms > left)
            curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, left);
    }
    jn_loop_timer_start(s->h->loop, &s->timer, (uint64_t)headers_ms, on_headers_timeout, s);
    curl_multi_add_handle(s->m->multi, e);
}

/* ---- outcomes ---- */

static void posted_decision(void *ud)
{
    jn_provider_stream_t *s = ud;
    s->decision_posted = false;
    if (s->state == S_ATTEMPT)
        decide(s);
    unref(s);
}

/* Decisions run after curl's callbacks have returned. */
static void post_decision(jn_provider_stream_t *s)
{
    if (s->decision_posted || s->state != S_ATTEMPT)
        return;
    s->decision_posted = true;
    s->refs++;
    jn_loop_post(s->h->loop, posted_decision, s);
}

static void check_done(env_multi_t *m)
{
    int queued;
    CURLMsg *msg;
    while ((msg = curl_multi_info_read(m->multi, &queued)) != NULL) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        jn_provider_stream_t *s = NULL;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&s);
        if (!s)
            continue;
        s->transfer_done = true;
        s->result = msg->data.result;
        if (s->state == S_ANSWERED) {
            release_slot(s);
            notify_data(s);
        } else {
            post_decision(s);
        }
    }
}

static void deliver(jn_provider_stream_t *s, jn_err_t err, const char *why)
{
    s->state = err ? S_FAILED : S_ANSWERED;
    jn_loop_timer_stop(&s->timer);
    if (err || s->transfer_done)
        release_slot(s);
    s->refs++;
    if (s->on_head)
        s->on_head(s, err, why, s->on_head_ud);
    unref(s);
}

static void fail(jn_provider_stream_t *s, jn_err_t err, const char *why)
{
    if (s->easy)
        end_attempt(s);
    deliver(s, err, why);
}

static void on_backoff_done(jn_loop_timer_t *t)
{
    jn_provider_stream_t *s = t->ud;
    start_attempt(s);
}

static void wait_then_retry(jn_provider_stream_t *s, double wait_ms)
{
    s->retries_left--;
    s->wait_budget_ms -= wait_ms;
    end_attempt(s);
    s->state = S_WAITING;
    jn_loop_timer_start(s->h->loop, &s->timer, wait_ms > 0 ? (uint64_t)wait_ms : 0, on_backoff_done,
                        s);
}

static void refreshed(jn_provider_stream_t *s, json_object *creds)
{
    if (s->state != S_REFRESHING) {
        json_object_put(creds);
        unref(s);
        return;
    }
    if (creds) {
        json_object_put(s->refreshed);
        s->refreshed = creds;
        s->target.credentials = creds;
        jn_log_info("provider", "%s %s: 401, credentials refreshed; retrying once", s->method,
                    s->target.provider_name ? s->target.provider_name : "provider");
        count("jn_provider_retries_total", "Provider requests retried", "reason=\"unauthorized\"");
        start_attempt(s);
    } else {
        /* The refresh changed nothing: the 401 stands. Its answer was discarded, so ask
         * once more without a refresh and pass on what comes. */
        start_attempt(s);
    }
    unref(s);
}

static const char *provider_label(const jn_provider_stream_t *s)
{
    return s->target.provider_name ? s->target.provider_name : "provider";
}

/* After an attempt ended or its headers arrived: answer, retry, follow, or refresh. */
static void decide(jn_provider_stream_t *s)
{
    if (s->egress.refused) {
        char why[256];
        snprintf(why, sizeof why, "refused to connect: %s", s->egress.reason);
        count("jn_provider_refused_total", "Provider requests refused by the egress policy", NULL);
        fail(s, JN_ERR_INVALID, why);
        return;
    }
    if (!s->headers_done) {
        if (!s->transfer_done)
            return; /* not yet */
        const char *reason =
            s->timed_out ? "no answer within the headers timeout" : curl_easy_strerror(s->result);
        bool timeout = s->timed_out || s->result == CURLE_OPERATION_TIMEDOUT;
        count("jn_provider_requests_total", "Requests sent to providers", "code=\"network\"");
        double wait = backoff_ms(s->attempts);
        bool deadline_ok = !s->call.deadline_ms ||
                           jn_loop_now_ms(s->h->loop) + (uint64_t)wait < s->call.deadline_ms;
        if (s->retries_left > 0 && wait <= s->wait_budget_ms && deadline_ok && !s->call.upload) {
            jn_log_info("provider", "%s %s: %s; retrying in %.0f ms (attempt %d)", s->method,
                        provider_label(s), reason, wait, s->attempts + 1);
            count("jn_provider_retries_total", "Provider requests retried", "reason=\"network\"");
            wait_then_retry(s, wait);
            return;
        }
        char why[512];
        snprintf(why, sizeof why, "provider '%s' did not answer: %s", provider_label(s), reason);
        fail(s, timeout ? JN_ERR_TIMEOUT : JN_ERR_UPSTREAM, why);
        return;
    }
    /* The status class, not the status: a provider chooses it, and labels must stay few. */
    char code_label[32];
    snprintf(code_label, sizeof code_label, "code=\"%ldxx\"", s->status / 100);
    count("jn_provider_requests_total", "Requests sent to providers", code_label);
    bool replayable = !s->call.upload;

    if (s->status == 401 && s->call.refresh && !s->tried_refresh && replayable) {
        s->tried_refresh = true;
        end_attempt(s);
        s->state = S_REFRESHING;
        s->refs++;
        s->call.refresh(s->call.refresh_ud, s, refreshed);
        return;
    }
    const char *location = jn_provider_stream_header_get(s, "location");
    if ((s->status == 301 || s->status == 302 || s->status == 303 || s->status == 307 ||
         s->status == 308) &&
        location && s->redirects < MAX_REDIRECTS && replayable && !s->call.no_redirects) {
        bool same_origin = false;
        char *next = resolve_location(s->built.url, location, &same_origin);
        if (next && (strncmp(next, "https://", 8) == 0 || strncmp(next, "http://", 7) == 0)) {
            s->redirects++;
            if (!same_origin && !s->call.forward_auth_on_redirect)
                s->drop_auth = true;
            if (s->status == 303 && strcmp(s->method, "HEAD") != 0) {
                free(s->method);
                s->method = dup_or_null("GET");
                free(s->body);
                s->body = NULL;
                s->body_len = 0;
            }
            end_attempt(s);
            s->redirect_url = next;
            start_attempt(s);
            return;
        }
        free(next);
    }
    if (s->retries_left > 0 && replayable && retryable_status(s)) {
        double wait = requested_wait_ms(s);
        if (wait < 0)
            wait = backoff_ms(s->attempts);
        bool deadline_ok = !s->call.deadline_ms ||
                           jn_loop_now_ms(s->h->loop) + (uint64_t)wait < s->call.deadline_ms;
        if (wait <= s->wait_budget_ms && deadline_ok) {
            jn_log_info("provider", "%s %s: HTTP %ld; retrying in %.0f ms (attempt %d)", s->method,
                        provider_label(s), s->status, wait, s->attempts + 1);
            count("jn_provider_retries_total", "Provider requests retried", "reason=\"status\"");
            wait_then_retry(s, wait);
            return;
        }
        jn_log_info("provider",
                    "%s %s: HTTP %ld; the provider asks to wait %.0f ms, more than the retry "
                    "budget or the deadline allows",
                    s->method, provider_label(s), s->status, wait);
    }
    deliver(s, JN_OK, NULL);
}

/* ---- in-flight slots per environment ---- */

static void start_queued(env_multi_t *m)
{
    while (m->queue_head && m->in_flight < m->h->opts.max_in_flight_per_env) {
        jn_provider_stream_t *s = m->queue_head;
        m->queue_head = s->queue_next;
        if (!m->queue_head)
            m->queue_tail = NULL;
        m->queued--;
        s->queue_next = NULL;
        m->in_flight++;
        s->counted = true;
        start_attempt(s);
    }
}

static void release_slot(jn_provider_stream_t *s)
{
    if (!s->counted)
        return;
    s->counted = false;
    s->m->in_flight--;
    start_queued(s->m);
}

static void dequeue(jn_provider_stream_t *s)
{
    env_multi_t *m = s->m;
    jn_provider_stream_t **pp = &m->queue_head, *prev = NULL;
    while (*pp && *pp != s) {
        prev = *pp;
        pp = &(*pp)->queue_next;
    }
    if (!*pp)
        return;
    *pp = s->queue_next;
    if (m->queue_tail == s)
        m->queue_tail = prev;
    m->queued--;
}

/* ---- the public interface ---- */

void jn_provider_start(jn_provider_http_t *h, long long env_id, const jn_provider_target_t *target,
                       const jn_provider_call_t *call, jn_provider_head_fn on_head, void *ud,
                       jn_provider_stream_t **out)
{
    jn_provider_stream_t *s = calloc(1, sizeof *s);
    if (!s)
        abort();
    *out = s;
    s->h = h;
    s->m = multi_for(h, env_id);
    s->refs = 1;
    s->on_head = on_head;
    s->on_head_ud = ud;
    jn_loop_timer_init(&s->timer);
    if (target)
        s->target = *target;
    s->call = *call;
    s->method = dup_or_null(call->method ? call->method : (call->upload ? "POST" : "GET"));
    s->endpoint = dup_or_null(call->endpoint);
    s->url = dup_or_null(call->url);
    s->query = dup_or_null(call->query);
    s->base_url_override = dup_or_null(call->base_url_override);
    s->retry_on = dup_or_null(call->retry_on);
    s->call.endpoint = s->endpoint;
    s->call.url = s->url;
    s->call.query = s->query;
    s->call.base_url_override = s->base_url_override;
    s->call.retry_on = s->retry_on;
    s->call.method = NULL;
    s->call.headers = NULL;
    s->call.body = NULL;
    for (const char *const *p = call->headers; p && *p; p++)
        s->header_count++;
    s->headers = calloc((size_t)s->header_count + 1, sizeof *s->headers);
    if (!s->headers)
        abort();
    for (int i = 0; i < s->header_count; i++)
        s->headers[i] = dup_or_null(call->headers[i]);
    if (call->body && !call->upload) {
        s->body = malloc(call->body_len + 1);
        if (!s->body)
            abort();
        memcpy(s->body, call->body, call->body_len);
        s->body[call->body_len] = '\0';
        s->body_len = call->body_len;
    }
    s->retries_left = call->retries < 0 ? 0 : call->retries > 10 ? 10 : call->retries;
    s->wait_budget_ms =
        call->max_total_wait_ms > 0 ? (double)call->max_total_wait_ms : DEFAULT_WAIT_BUDGET_MS;
    if (s->m->in_flight < h->opts.max_in_flight_per_env) {
        s->m->in_flight++;
        s->counted = true;
        start_attempt(s);
        return;
    }
    if (s->m->queued >= h->opts.max_queued_per_env) {
        count("jn_provider_busy_total",
              "Provider calls refused because their environment had too many in flight", NULL);
        deliver(s, JN_ERR_BUSY,
                "too many provider calls in flight for this environment; retry shortly");
        return;
    }
    s->state = S_QUEUED;
    if (s->m->queue_tail)
        s->m->queue_tail->queue_next = s;
    else
        s->m->queue_head = s;
    s->m->queue_tail = s;
    s->m->queued++;
}

long jn_provider_stream_status(const jn_provider_stream_t *s)
{
    return s->status;
}

int jn_provider_stream_header_count(const jn_provider_stream_t *s)
{
    return s->resp_header_count;
}

const char *jn_provider_stream_header(const jn_provider_stream_t *s, int i)
{
    return i >= 0 && i < s->resp_header_count ? s->resp_headers[i] : NULL;
}

const char *jn_provider_stream_header_get(const jn_provider_stream_t *s, const char *name)
{
    size_t n = strlen(name);
    for (int i = 0; i < s->resp_header_count; i++) {
        if (strncasecmp(s->resp_headers[i], name, n) == 0 && s->resp_headers[i][n] == ':') {
            const char *v = s->resp_headers[i] + n + 1;
            while (*v == ' ' || *v == '\t')
                v++;
            return v;
        }
    }
    return NULL;
}

int jn_provider_stream_attempts(const jn_provider_stream_t *s)
{
    return s->attempts;
}

void jn_provider_stream_on_data(jn_provider_stream_t *s, void (*fn)(void *ud), void *ud)
{
    s->on_data = fn;
    s->on_data_ud = ud;
}

long jn_provider_stream_read(jn_provider_stream_t *s, char *buf, size_t max)
{
    if (s->buf_end > s->buf_start) {
        size_t n = s->buf_end - s->buf_start;
        if (n > max)
            n = max;
        memcpy(buf, s->buf + s->buf_start, n);
        s->buf_start += n;
        if (s->buf_start == s->buf_end)
            s->buf_start = s->buf_end = 0;
        if (s->paused && s->easy) {
            s->paused = false;
            curl_easy_pause(s->easy, CURLPAUSE_CONT);
        }
        return (long)n;
    }
    if (s->transfer_done)
        return s->result == CURLE_OK ? 0 : -1;
    if (s->paused && s->easy) {
        s->paused = false;
        curl_easy_pause(s->easy, CURLPAUSE_CONT);
    }
    s->reader_waiting = true;
    return JN_PROVIDER_AGAIN;
}

size_t jn_provider_upload_write(jn_provider_stream_t *s, const char *data, size_t len)
{
    if (s->headers_done || s->transfer_done || s->state == S_FAILED)
        return len; /* the provider answered already: the rest is not needed */
    if (!s->up_buf) {
        s->up_buf = malloc(UPLOAD_BUFFER_MAX);
        if (!s->up_buf)
            abort();
    }
    if (s->up_start > 0 && s->up_end + len > UPLOAD_BUFFER_MAX) {
        memmove(s->up_buf, s->up_buf + s->up_start, s->up_end - s->up_start);
        s->up_end -= s->up_start;
        s->up_start = 0;
    }
    size_t room = UPLOAD_BUFFER_MAX - s->up_end;
    size_t n = len < room ? len : room;
    memcpy(s->up_buf + s->up_end, data, n);
    s->up_end += n;
    if (n < len)
        s->up_waiting = true;
    if (s->up_paused && s->easy && n > 0) {
        s->up_paused = false;
        curl_easy_pause(s->easy, CURLPAUSE_CONT);
    }
    return n;
}

void jn_provider_upload_end(jn_provider_stream_t *s)
{
    s->up_eof = true;
    if (s->up_paused && s->easy) {
        s->up_paused = false;
        curl_easy_pause(s->easy, CURLPAUSE_CONT);
    }
}

static void stream_free(jn_provider_stream_t *s)
{
    end_attempt(s);
    free(s->resp_headers);
    free(s->buf);
    free(s->up_buf);
    free(s->method);
    free(s->endpoint);
    free(s->url);
    free(s->query);
    free(s->base_url_override);
    free(s->retry_on);
    free(s->redirect_url);
    for (int i = 0; i < s->header_count; i++)
        free(s->headers[i]);
    free(s->headers);
    free(s->body);
    json_object_put(s->refreshed);
    free(s);
}

void jn_provider_stream_close(jn_provider_stream_t *s)
{
    if (!s)
        return;
    if (s->state == S_QUEUED)
        dequeue(s);
    s->state = S_CLOSED;
    jn_loop_timer_stop(&s->timer);
    if (s->easy) {
        curl_multi_remove_handle(s->m->multi, s->easy);
        curl_easy_cleanup(s->easy);
        s->easy = NULL;
    }
    release_slot(s);
    s->on_data = NULL;
    s->on_head = NULL;
    unref(s);
}

/* ---- the blocking form ---- */

typedef struct {
    jn_provider_http_t *h;
    long long env_id;
    const jn_provider_target_t *target;
    const jn_provider_call_t *call;
    size_t max_body;
    jn_provider_response_t *out;
    jn_provider_stream_t *s;
    jn_err_t err;
    char why[512];
    size_t cap;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool done;
    bool cancel_posted; /* fetch_cancel is on the loop's queue: f must outlive it */
} fetch_t;

static void fetch_finish(fetch_t *f, jn_err_t err, const char *why)
{
    f->err = err;
    if (why)
        snprintf(f->why, sizeof f->why, "%s", why);
    if (f->s) {
        jn_provider_response_t *out = f->out;
        out->status = jn_provider_stream_status(f->s);
        out->attempts = jn_provider_stream_attempts(f->s);
        int n = jn_provider_stream_header_count(f->s);
        out->headers = calloc((size_t)n + 1, sizeof *out->headers);
        if (!out->headers)
            abort();
        for (int i = 0; i < n; i++)
            out->headers[i] = dup_or_null(jn_provider_stream_header(f->s, i));
        out->header_count = n;
        jn_provider_stream_close(f->s);
        f->s = NULL;
    }
    pthread_mutex_lock(&f->lock);
    f->done = true;
    pthread_cond_signal(&f->cond);
    pthread_mutex_unlock(&f->lock);
}

static void fetch_read(void *ud)
{
    fetch_t *f = ud;
    jn_provider_response_t *out = f->out;
    for (;;) {
        if (out->body_len + 16384 + 1 > f->cap) {
            f->cap = f->cap ? f->cap * 2 : 32768;
            out->body = realloc(out->body, f->cap);
            if (!out->body)
                abort();
        }
        long n = jn_provider_stream_read(f->s, out->body + out->body_len, 16384);
        if (n == JN_PROVIDER_AGAIN)
            return;
        if (n == 0) {
            out->body[out->body_len] = '\0';
            fetch_finish(f, JN_OK, NULL);
            return;
        }
        if (n < 0) {
            fetch_finish(f, JN_ERR_UPSTREAM, "the provider's answer was cut off");
            return;
        }
        out->body_len += (size_t)n;
        if (out->body_len > f->max_body) {
            char why[128];
            snprintf(why, sizeof why, "the provider's answer is larger than %zu bytes",
                     f->max_body);
            fetch_finish(f, JN_ERR_TOO_LARGE, why);
            return;
        }
    }
}

static void fetch_head(jn_provider_stream_t *s, jn_err_t err, const char *why, void *ud)
{
    (void)s;
    fetch_t *f = ud;
    if (err) {
        fetch_finish(f, err, why);
        return;
    }
    jn_provider_stream_on_data(f->s, fetch_read, f);
    fetch_read(f);
}

static void fetch_start(void *ud)
{
    fetch_t *f = ud;
    jn_provider_start(f->h, f->env_id, f->target, f->call, fetch_head, f, &f->s);
}

/* On the loop, after fetch_start: abandons the call unless it has ended. */
static void fetch_cancel(void *ud)
{
    fetch_t *f = ud;
    if (!f->done) {
        jn_provider_stream_close(f->s);
        f->s = NULL;
        jn_provider_response_cleanup(f->out);
        fetch_finish(f, JN_ERR_TIMEOUT, "stopped: the call was abandoned");
    }
    pthread_mutex_lock(&f->lock);
    f->cancel_posted = false;
    pthread_cond_signal(&f->cond);
    pthread_mutex_unlock(&f->lock);
}

static bool fetch_stopped(const jn_provider_call_t *call)
{
    for (int i = 0; i < 2; i++) {
        if (call->stop[i] && atomic_load(call->stop[i]))
            return true;
    }
    return false;
}

jn_err_t jn_provider_fetch(jn_provider_http_t *h, long long env_id,
                           const jn_provider_target_t *target, const jn_provider_call_t *call,
                           size_t max_body, jn_provider_response_t *out, char *why, size_t why_len)
{
    memset(out, 0, sizeof *out);
    fetch_t f = {
        .h = h, .env_id = env_id, .target = target, .call = call, .max_body = max_body, .out = out};
    pthread_mutex_init(&f.lock, NULL);
    pthread_cond_init(&f.cond, NULL);
    jn_loop_post(h->loop, fetch_start, &f);
    bool watch = call->stop[0] || call->stop[1], cancelled = false;
    pthread_mutex_lock(&f.lock);
    while (!f.done || f.cancel_posted) {
        if (!watch) {
            pthread_cond_wait(&f.cond, &f.lock);
            continue;
        }
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += STOP_POLL_MS * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&f.cond, &f.lock, &until);
        if (!f.done && !cancelled && fetch_stopped(call)) {
            cancelled = f.cancel_posted = true;
            jn_loop_post(h->loop, fetch_cancel, &f);
        }
    }
    pthread_mutex_unlock(&f.lock);
    pthread_cond_destroy(&f.cond);
    pthread_mutex_destroy(&f.lock);
    if (f.err) {
        snprintf(why, why_len, "%s", f.why);
        long status = out->status;
        jn_provider_response_cleanup(out);
        if (f.err == JN_ERR_TOO_LARGE)
            out->status = status; /* the answer came; only its body was too long */
        return f.err;
    }
    if (!out->body) {
        out->body = calloc(1, 1);
        if (!out->body)
            abort();
    }
    return JN_OK;
}

const char *jn_provider_response_header(const jn_provider_response_t *r, const char *name)
{
    size_t n = strlen(name);
    for (int i = 0; i < r->header_count; i++) {
        if (strncasecmp(r->headers[i], name, n) == 0 && r->headers[i][n] == ':') {
            const char *v = r->headers[i] + n + 1;
            while (*v == ' ' || *v == '\t')
                v++;
            return v;
        }
    }
    return NULL;
}

void jn_provider_response_cleanup(jn_provider_response_t *r)
{
    free(r->body);
    for (int i = 0; i < r->header_count; i++)
        free(r->headers[i]);
    free(r->headers);
    memset(r, 0, sizeof *r);
}

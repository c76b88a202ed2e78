/*
 * provider_http.c - provider requests over libcurl: retries, egress checks, streaming.
 *
 * Each call uses its own easy handle inside its own multi handle, driven from the
 * calling thread: jn_provider_stream_open() performs until the headers are in, and every
 * jn_provider_stream_read() performs a little more. The write callback fills a bounded
 * buffer and pauses the transfer when it is full, so a slow reader slows the provider
 * down instead of growing memory. Easy handles share DNS, connections and TLS sessions
 * through one CURLSH guarded by mutexes.
 */
#include "providers/provider_http.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "core/crypto.h"
#include "core/log.h"
#include "core/metrics.h"

#define BODY_BUFFER (256 * 1024)
#define MAX_RESPONSE_HEADERS 100
#define MAX_HEADER_BYTES (64 * 1024)
#define MAX_REDIRECTS 5
#define STALL_SECONDS 60L
#define DEFAULT_WAIT_BUDGET_MS 60000L
#define BACKOFF_BASE_MS 500.0
#define BACKOFF_CAP_MS 30000.0

struct jn_provider_http {
    CURLSH *share;
    pthread_mutex_t locks[CURL_LOCK_DATA_LAST];
};

struct jn_provider_stream {
    jn_provider_http_t *h;
    CURLM *multi;
    CURL *easy;
    struct curl_slist *header_list;
    jn_built_request_t built;
    char *method;
    /* the response */
    long status;
    char *headers[MAX_RESPONSE_HEADERS];
    int header_count;
    size_t header_bytes;
    bool headers_done;
    /* the body */
    char *buf;
    size_t buf_start, buf_end;
    bool paused;
    bool done;
    CURLcode result;
    jn_egress_guard_t egress;
    int attempts;
    /* a body sent piecewise (jn_provider_upload_*) */
    bool upload;
    long long upload_length;
    char *up_buf;
    size_t up_start, up_end, up_cap;
    bool up_eof, up_paused;
};

/* ---- the shared handle ---- */

static void share_lock(CURL *handle, curl_lock_data data, curl_lock_access access, void *ud)
{
    (void)handle;
    (void)access;
    jn_provider_http_t *h = ud;
    pthread_mutex_lock(&h->locks[data]);
}

static void share_unlock(CURL *handle, curl_lock_data data, void *ud)
{
    (void)handle;
    jn_provider_http_t *h = ud;
    pthread_mutex_unlock(&h->locks[data]);
}

jn_provider_http_t *jn_provider_http_new(void)
{
    jn_provider_http_t *h = calloc(1, sizeof *h);
    if (!h)
        abort();
    for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
        pthread_mutex_init(&h->locks[i], NULL);
    h->share = curl_share_init();
    if (!h->share)
        abort();
    curl_share_setopt(h->share, CURLSHOPT_LOCKFUNC, share_lock);
    curl_share_setopt(h->share, CURLSHOPT_UNLOCKFUNC, share_unlock);
    curl_share_setopt(h->share, CURLSHOPT_USERDATA, h);
    curl_share_setopt(h->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
    curl_share_setopt(h->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_CONNECT);
    curl_share_setopt(h->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
    return h;
}

void jn_provider_http_free(jn_provider_http_t *h)
{
    if (!h)
        return;
    curl_share_cleanup(h->share);
    for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
        pthread_mutex_destroy(&h->locks[i]);
    free(h);
}

/* ---- callbacks ---- */

static void clear_headers(jn_provider_stream_t *s)
{
    for (int i = 0; i < s->header_count; i++)
        free(s->headers[i]);
    s->header_count = 0;
    s->header_bytes = 0;
}

static size_t on_header(char *data, size_t size, size_t nitems, void *ud)
{
    jn_provider_stream_t *s = ud;
    size_t n = size * nitems;
    size_t len = n;
    while (len > 0 && (data[len - 1] == '\r' || data[len - 1] == '\n'))
        len--;
    if (len >= 5 && strncmp(data, "HTTP/", 5) == 0) {
        clear_headers(s);
        const char *sp = memchr(data, ' ', len);
        s->status = sp ? strtol(sp + 1, NULL, 10) : 0;
        s->headers_done = false;
        return n;
    }
    if (len == 0) {
        /* The end of a header block; a 1xx block is followed by the real one. */
        if (s->status >= 200)
            s->headers_done = true;
        return n;
    }
    if (s->header_count == MAX_RESPONSE_HEADERS || s->header_bytes + len > MAX_HEADER_BYTES)
        return n; /* past the caps, further headers are ignored */
    char *h = malloc(len + 1);
    if (!h)
        abort();
    memcpy(h, data, len);
    h[len] = '\0';
    s->headers[s->header_count++] = h;
    s->header_bytes += len;
    return n;
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *ud)
{
    jn_provider_stream_t *s = ud;
    size_t n = size * nmemb;
    if (s->buf_end + n > BODY_BUFFER && s->buf_start > 0) {
        memmove(s->buf, s->buf + s->buf_start, s->buf_end - s->buf_start);
        s->buf_end -= s->buf_start;
        s->buf_start = 0;
    }
    if (s->buf_end + n > BODY_BUFFER) {
        s->paused = true;
        return CURL_WRITEFUNC_PAUSE;
    }
    memcpy(s->buf + s->buf_end, data, n);
    s->buf_end += n;
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
    return n;
}

/* ---- driving a transfer ---- */

/* Performs once and waits up to wait_ms for activity. */
static void drive(jn_provider_stream_t *s, int wait_ms)
{
    int running = 0;
    curl_multi_perform(s->multi, &running);
    int queued;
    CURLMsg *msg;
    while ((msg = curl_multi_info_read(s->multi, &queued)) != NULL) {
        if (msg->msg == CURLMSG_DONE) {
            s->done = true;
            s->result = msg->data.result;
        }
    }
    if (!s->done && running && !(s->paused && s->buf_end > s->buf_start))
        curl_multi_poll(s->multi, NULL, 0, wait_ms, NULL);
}

static void end_attempt(jn_provider_stream_t *s)
{
    if (s->easy) {
        curl_multi_remove_handle(s->multi, s->easy);
        curl_easy_cleanup(s->easy);
        s->easy = NULL;
    }
    curl_slist_free_all(s->header_list);
    s->header_list = NULL;
    jn_built_request_cleanup(&s->built);
    clear_headers(s);
    s->status = 0;
    s->headers_done = s->done = s->paused = s->egress.refused = false;
    s->result = CURLE_OK;
    s->buf_start = s->buf_end = 0;
}

/* Starts one attempt at url with the built headers and performs until the headers of
 * the response are in or the transfer ends. */
static void start_attempt(jn_provider_stream_t *s, const jn_provider_call_t *call, bool drop_auth)
{
    s->attempts++;
    CURL *e = curl_easy_init();
    if (!e)
        abort();
    s->easy = e;
    for (int i = 0; i < s->built.header_count; i++) {
        if (drop_auth && strncasecmp(s->built.headers[i], "authorization:", 14) == 0)
            continue;
        s->header_list = curl_slist_append(s->header_list, s->built.headers[i]);
    }
    /* No "Expect: 100-continue" round trip for bodies. */
    s->header_list = curl_slist_append(s->header_list, "Expect:");
    curl_easy_setopt(e, CURLOPT_URL, s->built.url);
    curl_easy_setopt(e, CURLOPT_SHARE, s->h->share);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, s->header_list);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
    if (call->timeout_ms > 0)
        curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, call->timeout_ms);
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, STALL_SECONDS);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "junction/0.1");
    if (call->decompress)
        curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "");
    jn_egress_guard_curl(e, &s->egress);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, s);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, s);
    const char *method = s->method;
    if (strcmp(method, "HEAD") == 0) {
        curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
    } else if (strcmp(method, "GET") != 0) {
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
    }
    if (call->body && strcmp(method, "HEAD") != 0) {
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, call->body);
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)call->body_len);
        if (strcmp(method, "POST") != 0)
            curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
    }
    if (s->upload) {
        curl_easy_setopt(e, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
        curl_easy_setopt(e, CURLOPT_READFUNCTION, on_upload);
        curl_easy_setopt(e, CURLOPT_READDATA, s);
        curl_easy_setopt(e, CURLOPT_INFILESIZE_LARGE, (curl_off_t)s->upload_length);
    }
    curl_multi_add_handle(s->multi, e);
    if (s->upload)
        return; /* the caller feeds the body, then waits for the answer */
    while (!s->headers_done && !s->done)
        drive(s, 100);
}

/* ---- retry policy ---- */

static json_object *retry_config(json_object *provider, const char *key)
{
    json_object *proxy = NULL, *retry = NULL, *v = NULL;
    if (json_object_object_get_ex(provider, "proxy", &proxy) &&
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

static bool retryable_status(const jn_provider_stream_t *s, json_object *provider,
                             const char *retry_on)
{
    long st = s->status;
    json_object *codes = retry_config(provider, "error_code");
    bool listed = false;
    if (codes && json_object_is_type(codes, json_type_array)) {
        for (size_t i = 0; i < json_object_array_length(codes) && !listed; i++)
            listed = code_matches(json_object_get_string(json_object_array_get_idx(codes, i)), st);
    } else {
        listed = st == 429 || st >= 500;
    }
    for (const char *p = retry_on; p && *p && !listed;) {
        listed = strtol(p, NULL, 10) == st;
        p = strchr(p, ',');
        if (p)
            p++;
    }
    json_object *remaining = retry_config(provider, "remaining");
    if (!listed && st >= 400 && remaining) {
        const char *v = jn_provider_stream_header_get(s, json_object_get_string(remaining));
        listed = v && strtol(v, NULL, 10) == 0 && v[0] == '0';
    }
    return listed;
}

/* How long the provider asks us to wait, in ms; -1 when it does not say. */
static double requested_wait_ms(const jn_provider_stream_t *s, json_object *provider)
{
    json_object *after = retry_config(provider, "after");
    json_object *at = retry_config(provider, "at");
    const char *default_after[] = {"retry-after"};
    size_t n_after = after ? json_object_array_length(after) : 1;
    for (size_t i = 0; i < n_after; i++) {
        const char *name =
            after ? json_object_get_string(json_object_array_get_idx(after, i)) : default_after[0];
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

static void sleep_ms(double ms)
{
    if (ms <= 0)
        return;
    struct timespec ts = {(time_t)(ms / 1000), (long)((long long)ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void count(const char *name, const char *help, const char *labels)
{
    jn_metric_inc(jn_metrics_counter(name, help, labels));
}

/* Resolves a Location against the current URL; new string or NULL. */
static char *resolve_location(const char *current, const char *location, bool *same_origin)
{
    CURLU *u = curl_url();
    char *out = NULL, *old_host = NULL, *new_host = NULL, *old_scheme = NULL, *new_scheme = NULL;
    curl_url_set(u, CURLUPART_URL, current, 0);
    curl_url_get(u, CURLUPART_HOST, &old_host, 0);
    curl_url_get(u, CURLUPART_SCHEME, &old_scheme, 0);
    char *old_port = NULL, *new_port = NULL;
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
    char *copy = out ? strdup(out) : NULL;
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

jn_err_t jn_provider_stream_open(jn_provider_http_t *h, const jn_provider_target_t *target,
                                 const jn_provider_call_t *call, jn_provider_stream_t **out,
                                 char *why, size_t why_len)
{
    *out = NULL;
    jn_provider_stream_t *s = calloc(1, sizeof *s);
    if (!s)
        abort();
    s->h = h;
    s->egress.policy = call->egress;
    s->method = strdup(call->method ? call->method : "GET");
    s->buf = malloc(BODY_BUFFER);
    s->multi = curl_multi_init();
    if (!s->method || !s->buf || !s->multi)
        abort();

    jn_provider_target_t t = *target;
    json_object *refreshed = NULL;
    bool tried_refresh = false, drop_auth = false;
    char *redirect_url = NULL;
    int redirects = 0, retries_left = call->retries < 0    ? 0
                                      : call->retries > 10 ? 10
                                                           : call->retries;
    double budget =
        call->max_total_wait_ms > 0 ? (double)call->max_total_wait_ms : DEFAULT_WAIT_BUDGET_MS;
    jn_err_t err = JN_OK;

    for (;;) {
        if (!redirect_url) {
            err = jn_provider_build(&t, call->base_url_override, call->endpoint, call->query,
                                    call->headers, &s->built, why, why_len);
            if (err)
                break;
        } else {
            err = jn_provider_build(&t, call->base_url_override, call->endpoint, call->query,
                                    call->headers, &s->built, why, why_len);
            if (err)
                break;
            free(s->built.url);
            s->built.url = redirect_url;
            redirect_url = NULL;
        }
        start_attempt(s, call, drop_auth);
        if (s->egress.refused) {
            snprintf(why, why_len, "refused to connect: %s", s->egress.reason);
            count("jn_provider_refused_total", "Provider requests refused by the egress policy",
                  NULL);
            err = JN_ERR_INVALID;
            break;
        }
        if (!s->headers_done) {
            const char *reason = curl_easy_strerror(s->result);
            bool timeout = s->result == CURLE_OPERATION_TIMEDOUT;
            count("jn_provider_requests_total", "Requests sent to providers", "code=\"network\"");
            double wait = backoff_ms(s->attempts);
            if (retries_left > 0 && wait <= budget) {
                jn_log_info("provider", "%s %s: %s; retrying in %.0f ms (attempt %d)", s->method,
                            t.provider_name, reason, wait, s->attempts + 1);
                count("jn_provider_retries_total", "Provider requests retried",
                      "reason=\"network\"");
                retries_left--;
                budget -= wait;
                end_attempt(s);
                sleep_ms(wait);
                continue;
            }
            snprintf(why, why_len, "provider '%s' did not answer: %s", t.provider_name, reason);
            err = timeout ? JN_ERR_TIMEOUT : JN_ERR_UPSTREAM;
            break;
        }
        char code_label[32];
        snprintf(code_label, sizeof code_label, "code=\"%ld\"", s->status);
        count("jn_provider_requests_total", "Requests sent to providers", code_label);

        if (s->status == 401 && call->refresh && !tried_refresh) {
            tried_refresh = true;
            json_object *creds = NULL;
            if (call->refresh(call->refresh_ud, &creds)) {
                json_object_put(refreshed);
                refreshed = creds;
                t.credentials = refreshed;
                jn_log_info("provider", "%s %s: 401, credentials refreshed; retrying once",
                            s->method, t.provider_name);
                count("jn_provider_retries_total", "Provider requests retried",
                      "reason=\"unauthorized\"");
                end_attempt(s);
                continue;
            }
        }
        const char *location = jn_provider_stream_header_get(s, "location");
        if ((s->status == 301 || s->status == 302 || s->status == 303 || s->status == 307 ||
             s->status == 308) &&
            location && redirects < MAX_REDIRECTS) {
            bool same_origin = false;
            char *next = resolve_location(s->built.url, location, &same_origin);
            if (next && (strncmp(next, "https://", 8) == 0 || strncmp(next, "http://", 7) == 0)) {
                redirects++;
                if (!same_origin && !call->forward_auth_on_redirect)
                    drop_auth = true;
                if (s->status == 303 && strcmp(s->method, "HEAD") != 0) {
                    free(s->method);
                    s->method = strdup("GET");
                }
                end_attempt(s);
                redirect_url = next;
                continue;
            }
            free(next);
        }
        if (retries_left > 0 && retryable_status(s, t.provider, call->retry_on)) {
            double wait = requested_wait_ms(s, t.provider);
            if (wait < 0)
                wait = backoff_ms(s->attempts);
            if (wait <= budget) {
                jn_log_info("provider", "%s %s: HTTP %ld; retrying in %.0f ms (attempt %d)",
                            s->method, t.provider_name, s->status, wait, s->attempts + 1);
                count("jn_provider_retries_total", "Provider requests retried",
                      "reason=\"status\"");
                retries_left--;
                budget -= wait;
                end_attempt(s);
                sleep_ms(wait);
                continue;
            }
            jn_log_info("provider",
                        "%s %s: HTTP %ld; the provider asks to wait %.0f ms, more "
                        "than the retry budget allows",
                        s->method, t.provider_name, s->status, wait);
        }
        break;
    }
    free(redirect_url);
    json_object_put(refreshed);
    if (err) {
        jn_provider_stream_close(s);
        return err;
    }
    *out = s;
    return JN_OK;
}

long jn_provider_stream_status(const jn_provider_stream_t *s)
{
    return s->status;
}

int jn_provider_stream_header_count(const jn_provider_stream_t *s)
{
    return s->header_count;
}

const char *jn_provider_stream_header(const jn_provider_stream_t *s, int i)
{
    return i >= 0 && i < s->header_count ? s->headers[i] : NULL;
}

const char *jn_provider_stream_header_get(const jn_provider_stream_t *s, const char *name)
{
    size_t n = strlen(name);
    for (int i = 0; i < s->header_count; i++) {
        if (strncasecmp(s->headers[i], name, n) == 0 && s->headers[i][n] == ':') {
            const char *v = s->headers[i] + n + 1;
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

long jn_provider_stream_read(jn_provider_stream_t *s, char *buf, size_t max)
{
    for (;;) {
        if (s->buf_end > s->buf_start) {
            size_t n = s->buf_end - s->buf_start;
            if (n > max)
                n = max;
            memcpy(buf, s->buf + s->buf_start, n);
            s->buf_start += n;
            if (s->buf_start == s->buf_end)
                s->buf_start = s->buf_end = 0;
            if (s->paused) {
                s->paused = false;
                curl_easy_pause(s->easy, CURLPAUSE_CONT);
            }
            return (long)n;
        }
        if (s->done)
            return s->result == CURLE_OK ? 0 : -1;
        if (s->paused) {
            s->paused = false;
            curl_easy_pause(s->easy, CURLPAUSE_CONT);
        }
        drive(s, 100);
    }
}

void jn_provider_stream_close(jn_provider_stream_t *s)
{
    if (!s)
        return;
    end_attempt(s);
    curl_multi_cleanup(s->multi);
    free(s->up_buf);
    free(s->buf);
    free(s->method);
    free(s);
}

jn_err_t jn_provider_fetch(jn_provider_http_t *h, const jn_provider_target_t *target,
                           const jn_provider_call_t *call, size_t max_body,
                           jn_provider_response_t *out, char *why, size_t why_len)
{
    memset(out, 0, sizeof *out);
    jn_err_t err = jn_provider_stream_open(h, target, call, &out->stream, why, why_len);
    if (err)
        return err;
    size_t cap = 4096;
    out->body = malloc(cap);
    if (!out->body)
        abort();
    for (;;) {
        if (out->body_len + 4096 + 1 > cap) {
            cap *= 2;
            out->body = realloc(out->body, cap);
            if (!out->body)
                abort();
        }
        long n = jn_provider_stream_read(out->stream, out->body + out->body_len, 4096);
        if (n == 0)
            break;
        if (n < 0) {
            snprintf(why, why_len, "the provider's answer was cut off");
            jn_provider_response_cleanup(out);
            return JN_ERR_UPSTREAM;
        }
        out->body_len += (size_t)n;
        if (out->body_len > max_body) {
            snprintf(why, why_len, "the provider's answer is larger than %zu bytes", max_body);
            jn_provider_response_cleanup(out);
            return JN_ERR_TOO_LARGE;
        }
    }
    out->body[out->body_len] = '\0';
    out->status = jn_provider_stream_status(out->stream);
    return JN_OK;
}

void jn_provider_response_cleanup(jn_provider_response_t *r)
{
    free(r->body);
    jn_provider_stream_close(r->stream);
    memset(r, 0, sizeof *r);
}

/* ---- bodies sent piecewise ---- */

jn_err_t jn_provider_upload_open(jn_provider_http_t *h, const jn_provider_target_t *target,
                                 const jn_provider_call_t *call, long long content_length,
                                 jn_provider_stream_t **out, char *why, size_t why_len)
{
    *out = NULL;
    jn_provider_stream_t *s = calloc(1, sizeof *s);
    if (!s)
        abort();
    s->h = h;
    s->egress.policy = call->egress;
    s->method = strdup(call->method ? call->method : "POST");
    s->buf = malloc(BODY_BUFFER);
    s->multi = curl_multi_init();
    s->upload = true;
    s->upload_length = content_length;
    if (!s->method || !s->buf || !s->multi)
        abort();
    jn_err_t err = jn_provider_build(target, call->base_url_override, call->endpoint, call->query,
                                     call->headers, &s->built, why, why_len);
    if (err) {
        jn_provider_stream_close(s);
        return err;
    }
    start_attempt(s, call, false);
    *out = s;
    return JN_OK;
}

/* Drives the transfer until cond() holds or it ends. */
static void drive_until(jn_provider_stream_t *s, bool (*cond)(const jn_provider_stream_t *))
{
    while (!cond(s) && !s->done) {
        if (s->up_paused && (s->up_end > s->up_start || s->up_eof)) {
            s->up_paused = false;
            curl_easy_pause(s->easy, CURLPAUSE_CONT);
        }
        drive(s, 100);
    }
}

static bool upload_drained(const jn_provider_stream_t *s)
{
    return s->up_end == s->up_start || s->headers_done;
}

static bool headers_in(const jn_provider_stream_t *s)
{
    return s->headers_done;
}

jn_err_t jn_provider_upload_write(jn_provider_stream_t *s, const char *data, size_t len)
{
    if (s->done || s->headers_done)
        return JN_OK; /* the provider answered early: the rest of the body is not needed */
    if (s->up_end + len > s->up_cap) {
        s->up_cap = (s->up_end + len) * 2;
        s->up_buf = realloc(s->up_buf, s->up_cap);
        if (!s->up_buf)
            abort();
    }
    memcpy(s->up_buf + s->up_end, data, len);
    s->up_end += len;
    /* Hand it to curl before taking more: the buffer never holds more than one piece. */
    drive_until(s, upload_drained);
    return JN_OK;
}

jn_err_t jn_provider_upload_finish(jn_provider_stream_t *s, char *why, size_t why_len)
{
    s->up_eof = true;
    drive_until(s, headers_in);
    if (s->egress.refused) {
        snprintf(why, why_len, "refused to connect: %s", s->egress.reason);
        return JN_ERR_INVALID;
    }
    if (!s->headers_done) {
        snprintf(why, why_len, "the provider did not answer: %s", curl_easy_strerror(s->result));
        return s->result == CURLE_OPERATION_TIMEDOUT ? JN_ERR_TIMEOUT : JN_ERR_UPSTREAM;
    }
    char code_label[32];
    snprintf(code_label, sizeof code_label, "code=\"%ld\"", s->status);
    count("jn_provider_requests_total", "Requests sent to providers", code_label);
    return JN_OK;
}

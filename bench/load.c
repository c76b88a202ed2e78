/*
 * load - a small closed-loop HTTP load generator for Junction's benchmarks.
 *
 *   load <seconds> <threads> <url> [header ...]
 *
 * Each thread sends requests back to back on one keep-alive connection for the given
 * time: GET, or POST with the body in the environment variable LOAD_BODY when it is set.
 * A request counts when it answers 2xx. Prints one line:
 * "requests=N errors=E rps=R p50_ms=A p99_ms=B". Loopback only.
 */
#include <curl/curl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_SAMPLES 2000000

typedef struct {
    const char *url;
    const char *body; /* NULL: GET */
    struct curl_slist *headers;
    double until;
    double *samples;
    size_t count;
    size_t errors;
} worker_t;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static size_t discard(char *p, size_t s, size_t n, void *ud)
{
    (void)p;
    (void)ud;
    return s * n;
}

static void *run(void *arg)
{
    worker_t *w = arg;
    CURL *c = curl_easy_init();
    curl_easy_setopt(c, CURLOPT_URL, w->url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, w->headers);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    if (w->body)
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, w->body);
    while (now_s() < w->until && w->count < MAX_SAMPLES) {
        double t0 = now_s();
        long status = 0;
        if (curl_easy_perform(c) == CURLE_OK)
            curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
        if (status < 200 || status > 299) {
            w->errors++;
            continue;
        }
        w->samples[w->count++] = (now_s() - t0) * 1000.0;
    }
    curl_easy_cleanup(c);
    return NULL;
}

static int by_value(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: load <seconds> <threads> <url> [header ...]\n");
        return 2;
    }
    double seconds = strtod(argv[1], NULL);
    int threads = (int)strtol(argv[2], NULL, 10);
    if (seconds <= 0 || seconds > 120 || threads < 1 || threads > 64) {
        fprintf(stderr, "load: seconds must be 0..120 and threads 1..64\n");
        return 2;
    }
    curl_global_init(CURL_GLOBAL_ALL);
    struct curl_slist *headers = NULL;
    for (int i = 4; i < argc; i++)
        headers = curl_slist_append(headers, argv[i]);
    worker_t *w = calloc((size_t)threads, sizeof *w);
    pthread_t *t = calloc((size_t)threads, sizeof *t);
    double start = now_s();
    for (int i = 0; i < threads; i++) {
        w[i] = (worker_t){argv[3],
                          getenv("LOAD_BODY"),
                          headers,
                          start + seconds,
                          malloc(MAX_SAMPLES * sizeof(double)),
                          0,
                          0};
        pthread_create(&t[i], NULL, run, &w[i]);
    }
    size_t total = 0, errors = 0;
    for (int i = 0; i < threads; i++) {
        pthread_join(t[i], NULL);
        total += w[i].count;
        errors += w[i].errors;
    }
    double elapsed = now_s() - start;
    double *all = malloc((total ? total : 1) * sizeof *all);
    size_t k = 0;
    for (int i = 0; i < threads; i++) {
        memcpy(all + k, w[i].samples, w[i].count * sizeof *all);
        k += w[i].count;
        free(w[i].samples);
    }
    qsort(all, total, sizeof *all, by_value);
    double p50 = total ? all[total / 2] : 0, p99 = total ? all[(size_t)((double)total * 0.99)] : 0;
    printf("requests=%zu errors=%zu rps=%.0f p50_ms=%.3f p99_ms=%.3f\n", total, errors,
           (double)total / elapsed, p50, p99);
    free(all);
    free(w);
    free(t);
    curl_slist_free_all(headers);
    curl_global_cleanup();
    return errors > total / 100 ? 1 : 0;
}

/*
 * metrics.c - the Prometheus registry.
 *
 * Workload: a few hundred series registered at start-up or on first use of a label
 * set, looked up and updated on every request. The registry is an append-only array with a
 * hash index, guarded by a mutex for lookups and rendering; series never move or die, so
 * update paths hold no lock. Past MAX_SERIES a lookup gets a sink that is never rendered
 * (and jn_metrics_dropped_series_total counts it): a label with unbounded values costs
 * its own figures, never the process.
 */
#include "core/metrics.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_SERIES 2048
#define NAME_MAX_LEN 96
#define LABELS_MAX_LEN 256
#define HELP_MAX_LEN 160

typedef enum { KIND_COUNTER, KIND_GAUGE, KIND_HISTOGRAM } kind_t;

static const double bucket_bounds[] = {0.001, 0.005, 0.01, 0.025, 0.05, 0.1,  0.25,
                                       0.5,   1.0,   2.5,  5.0,   10.0, 30.0, 60.0};
#define NBUCKETS (sizeof bucket_bounds / sizeof bucket_bounds[0])

struct jn_metric {
    kind_t kind;
    char name[NAME_MAX_LEN];
    char labels[LABELS_MAX_LEN];
    char help[HELP_MAX_LEN];
    _Atomic int64_t value;             /* counter/gauge value; histogram count */
    _Atomic int64_t sum_us;            /* histogram sum in microseconds */
    _Atomic int64_t buckets[NBUCKETS]; /* non-cumulative bucket counts */
};

#define INDEX_SLOTS 8192 /* a power of two, well above MAX_SERIES */

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static jn_metric_t *series[MAX_SERIES];
static int series_count;
static jn_metric_t *index_slots[INDEX_SLOTS];
static jn_metric_t overflow_sink;
static jn_metric_t dropped = {.kind = KIND_COUNTER,
                              .name = "jn_metrics_dropped_series_total",
                              .help = "Series not created because the registry was full"};

static unsigned series_hash(const char *name, const char *labels)
{
    unsigned h = 2166136261u;
    for (const char *p = name; *p; p++)
        h = (h ^ (unsigned char)*p) * 16777619u;
    h = (h ^ 0xffu) * 16777619u;
    for (const char *p = labels; *p; p++)
        h = (h ^ (unsigned char)*p) * 16777619u;
    return h;
}

static jn_metric_t *lookup(kind_t kind, const char *name, const char *help, const char *labels)
{
    if (!labels)
        labels = "";
    unsigned slot = series_hash(name, labels) & (INDEX_SLOTS - 1);
    pthread_mutex_lock(&registry_lock);
    for (jn_metric_t *m; (m = index_slots[slot]) != NULL; slot = (slot + 1) & (INDEX_SLOTS - 1)) {
        if (strcmp(m->name, name) == 0 && strcmp(m->labels, labels) == 0) {
            pthread_mutex_unlock(&registry_lock);
            return m;
        }
    }
    if (series_count == MAX_SERIES) {
        pthread_mutex_unlock(&registry_lock);
        atomic_fetch_add_explicit(&dropped.value, 1, memory_order_relaxed);
        return &overflow_sink;
    }
    jn_metric_t *m = calloc(1, sizeof *m);
    if (!m)
        abort();
    m->kind = kind;
    snprintf(m->name, sizeof m->name, "%s", name);
    snprintf(m->labels, sizeof m->labels, "%s", labels);
    snprintf(m->help, sizeof m->help, "%s", help ? help : "");
    series[series_count++] = m;
    index_slots[slot] = m;
    pthread_mutex_unlock(&registry_lock);
    return m;
}

jn_metric_t *jn_metrics_counter(const char *name, const char *help, const char *labels)
{
    return lookup(KIND_COUNTER, name, help, labels);
}

jn_metric_t *jn_metrics_gauge(const char *name, const char *help, const char *labels)
{
    return lookup(KIND_GAUGE, name, help, labels);
}

jn_metric_t *jn_metrics_histogram(const char *name, const char *help, const char *labels)
{
    return lookup(KIND_HISTOGRAM, name, help, labels);
}

void jn_metric_inc(jn_metric_t *m)
{
    atomic_fetch_add_explicit(&m->value, 1, memory_order_relaxed);
}

void jn_metric_add(jn_metric_t *m, int64_t delta)
{
    atomic_fetch_add_explicit(&m->value, delta, memory_order_relaxed);
}

void jn_metric_set(jn_metric_t *m, int64_t value)
{
    atomic_store_explicit(&m->value, value, memory_order_relaxed);
}

int64_t jn_metric_value(const jn_metric_t *m)
{
    return atomic_load_explicit(&m->value, memory_order_relaxed);
}

void jn_metric_observe(jn_metric_t *m, double seconds)
{
    if (seconds < 0)
        seconds = 0;
    size_t b = 0;
    while (b < NBUCKETS && seconds > bucket_bounds[b])
        b++;
    if (b < NBUCKETS)
        atomic_fetch_add_explicit(&m->buckets[b], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&m->sum_us, (int64_t)(seconds * 1e6), memory_order_relaxed);
    atomic_fetch_add_explicit(&m->value, 1, memory_order_relaxed);
}

typedef struct {
    char *data;
    size_t len, cap;
} text_t;

static void append(text_t *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void append(text_t *t, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(t->data + t->len, t->cap - t->len, fmt, ap);
        va_end(ap);
        if (n >= 0 && (size_t)n < t->cap - t->len) {
            t->len += (size_t)n;
            return;
        }
        t->cap = t->cap * 2 + (size_t)(n > 0 ? n : 0);
        t->data = realloc(t->data, t->cap);
        if (!t->data)
            abort();
    }
}

/* Writes "{labels}" or "{labels,extra}" or "" into out. */
static void label_block(char *out, size_t cap, const char *labels, const char *extra)
{
    if (*labels && extra)
        snprintf(out, cap, "{%s,%s}", labels, extra);
    else if (*labels)
        snprintf(out, cap, "{%s}", labels);
    else if (extra)
        snprintf(out, cap, "{%s}", extra);
    else
        out[0] = '\0';
}

static void render_series(text_t *t, jn_metric_t *m)
{
    char block[LABELS_MAX_LEN + 64];
    if (m->kind != KIND_HISTOGRAM) {
        label_block(block, sizeof block, m->labels, NULL);
        append(t, "%s%s %lld\n", m->name, block, (long long)jn_metric_value(m));
        return;
    }
    int64_t cumulative = 0;
    for (size_t b = 0; b < NBUCKETS; b++) {
        char le[32];
        snprintf(le, sizeof le, "le=\"%g\"", bucket_bounds[b]);
        cumulative += atomic_load_explicit(&m->buckets[b], memory_order_relaxed);
        label_block(block, sizeof block, m->labels, le);
        append(t, "%s_bucket%s %lld\n", m->name, block, (long long)cumulative);
    }
    int64_t count = jn_metric_value(m);
    label_block(block, sizeof block, m->labels, "le=\"+Inf\"");
    append(t, "%s_bucket%s %lld\n", m->name, block, (long long)count);
    label_block(block, sizeof block, m->labels, NULL);
    append(t, "%s_sum%s %.6f\n", m->name, block,
           (double)atomic_load_explicit(&m->sum_us, memory_order_relaxed) / 1e6);
    append(t, "%s_count%s %lld\n", m->name, block, (long long)count);
}

char *jn_metrics_render(void)
{
    static const char *kind_names[] = {"counter", "gauge", "histogram"};
    text_t t = {malloc(8192), 0, 8192};
    if (!t.data)
        abort();
    t.data[0] = '\0';
    pthread_mutex_lock(&registry_lock);
    /* The text format wants every series of a name together, under one HELP/TYPE. */
    for (int i = 0; i < series_count; i++) {
        bool seen = false;
        for (int j = 0; j < i && !seen; j++)
            seen = strcmp(series[j]->name, series[i]->name) == 0;
        if (seen)
            continue;
        append(&t, "# HELP %s %s\n# TYPE %s %s\n", series[i]->name, series[i]->help,
               series[i]->name, kind_names[series[i]->kind]);
        for (int j = i; j < series_count; j++) {
            if (strcmp(series[j]->name, series[i]->name) == 0)
                render_series(&t, series[j]);
        }
    }
    append(&t, "# HELP %s %s\n# TYPE %s counter\n", dropped.name, dropped.help, dropped.name);
    render_series(&t, &dropped);
    pthread_mutex_unlock(&registry_lock);
    return t.data;
}

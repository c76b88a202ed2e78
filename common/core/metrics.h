/*
 * metrics.h - a process-wide Prometheus registry.
 *
 * Counters, gauges and histograms, each identified by name plus a label set written
 * as Prometheus label text (`route="/health",code="200"`). Register once and keep the
 * pointer: jn_metrics_* lookups take a lock, updates are lock-free atomics. Values are
 * integers; histograms observe seconds and keep their sum in microseconds.
 * Never put an unbounded value (a connection id, a URL) in a label.
 */
#ifndef JN_METRICS_H
#define JN_METRICS_H

#include <stdint.h>

typedef struct jn_metric jn_metric_t;

/* Each returns the metric for (name, labels), creating it on first use; labels may be
 * NULL. The pointer lives as long as the process. */
jn_metric_t *jn_metrics_counter(const char *name, const char *help, const char *labels);
jn_metric_t *jn_metrics_gauge(const char *name, const char *help, const char *labels);
/* A latency histogram with fixed buckets from 1 ms to 60 s. */
jn_metric_t *jn_metrics_histogram(const char *name, const char *help, const char *labels);

void jn_metric_inc(jn_metric_t *m);
void jn_metric_add(jn_metric_t *m, int64_t delta);
void jn_metric_set(jn_metric_t *m, int64_t value);
/* Records one observation of seconds into a histogram. */
void jn_metric_observe(jn_metric_t *m, double seconds);
int64_t jn_metric_value(const jn_metric_t *m);

/* Renders every metric in the Prometheus text format 0.0.4; caller frees. */
char *jn_metrics_render(void);

#endif

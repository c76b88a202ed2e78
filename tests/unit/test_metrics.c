/* Unit tests for common/core/metrics.c: Prometheus text rendering. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/metrics.h"

static void test_counter_and_gauge(void **state)
{
    (void)state;
    jn_metric_t *c = jn_metrics_counter("t_requests_total", "Requests", "code=\"200\"");
    assert_ptr_equal(c, jn_metrics_counter("t_requests_total", "Requests", "code=\"200\""));
    jn_metric_inc(c);
    jn_metric_add(c, 4);
    jn_metrics_gauge("t_other", "Other", NULL);
    jn_metric_t *c2 = jn_metrics_counter("t_requests_total", "Requests", "code=\"500\"");
    jn_metric_inc(c2);
    jn_metric_t *g = jn_metrics_gauge("t_queue", "Queue depth", NULL);
    jn_metric_set(g, 7);
    char *text = jn_metrics_render();
    assert_non_null(strstr(text, "# TYPE t_requests_total counter\n"));
    assert_non_null(strstr(text, "t_requests_total{code=\"200\"} 5\n"));
    /* Series of one name are grouped under one HELP/TYPE, even when registered apart. */
    assert_non_null(
        strstr(text, "t_requests_total{code=\"200\"} 5\nt_requests_total{code=\"500\"} 1\n"));
    char *first = strstr(text, "# TYPE t_requests_total");
    assert_null(strstr(first + 1, "# TYPE t_requests_total"));
    assert_non_null(strstr(text, "t_queue 7\n"));
    free(text);
}

static void test_histogram(void **state)
{
    (void)state;
    jn_metric_t *h = jn_metrics_histogram("t_latency_seconds", "Latency", "route=\"/x\"");
    jn_metric_observe(h, 0.003);
    jn_metric_observe(h, 0.2);
    jn_metric_observe(h, 100);
    char *text = jn_metrics_render();
    assert_non_null(strstr(text, "t_latency_seconds_bucket{route=\"/x\",le=\"0.001\"} 0\n"));
    assert_non_null(strstr(text, "t_latency_seconds_bucket{route=\"/x\",le=\"0.005\"} 1\n"));
    assert_non_null(strstr(text, "t_latency_seconds_bucket{route=\"/x\",le=\"0.25\"} 2\n"));
    assert_non_null(strstr(text, "t_latency_seconds_bucket{route=\"/x\",le=\"60\"} 2\n"));
    assert_non_null(strstr(text, "t_latency_seconds_bucket{route=\"/x\",le=\"+Inf\"} 3\n"));
    assert_non_null(strstr(text, "t_latency_seconds_count{route=\"/x\"} 3\n"));
    assert_non_null(strstr(text, "t_latency_seconds_sum{route=\"/x\"} 100.203000\n"));
    free(text);
}

/* A label with unbounded values fills the registry: past its cap a series is dropped
 * (and counted), the process goes on, and the series made before still count. */
static void test_full_registry_drops_instead_of_aborting(void **state)
{
    (void)state;
    jn_metric_t *first = jn_metrics_counter("t_first", "made before", NULL);
    for (int i = 0; i < 3000; i++) {
        char labels[64];
        snprintf(labels, sizeof labels, "id=\"%d\"", i);
        jn_metric_inc(jn_metrics_counter("t_unbounded_total", "one per id", labels));
    }
    jn_metric_inc(first);
    assert_int_equal(jn_metric_value(first), 1);
    assert_true(jn_metric_value(jn_metrics_counter("t_first", "made before", NULL)) == 1);
    char *text = jn_metrics_render();
    const char *line = strstr(text, "\njn_metrics_dropped_series_total ");
    assert_non_null(line);
    assert_true(strtol(line + strlen("\njn_metrics_dropped_series_total "), NULL, 10) > 900);
    assert_null(strstr(text, "t_unbounded_total{id=\"2999\"}"));
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_counter_and_gauge),
        cmocka_unit_test(test_histogram),
        cmocka_unit_test(test_full_registry_drops_instead_of_aborting),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

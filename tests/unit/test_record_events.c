/* Unit tests for common/store/record_events.c: outbox rows as the records store and as
 * PostgreSQL's json_agg write them become the same events and keys; sealed payloads are
 * opened (and a wrong key refused); oversize events go without payload; malformed rows
 * are refused with a reason. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/record_events.h"

#define ID1 "5b0c1f3e-8a2d-4c11-9e0f-0123456789ab"
#define ID2 "00000000-0000-0000-0000-00000000000f"

static jn_outbox_row_t row_of(const char *changes)
{
    jn_outbox_row_t r = {
        .id = 7,
        .environment_id = 3,
        .environment = "dev",
        .integration = "github-prod",
        .provider = "github",
        .connection = "user \"42\"",
        .model = "Issue::eu",
        .scope_id = 11,
        .job_id = "9f0c2a1e-0000-4000-8000-000000000001",
        .changed_at = "2026-01-02T03:04:05.678901Z",
        .changes = changes,
        .changes_len = strlen(changes),
    };
    return r;
}

typedef struct {
    jn_buf_t key, value;
} out_t;

static void out_init(out_t *o)
{
    jn_buf_init(&o->key, 64 * 1024);
    jn_buf_init(&o->value, 4 * 1024 * 1024);
}

static void out_cleanup(out_t *o)
{
    jn_buf_cleanup(&o->key);
    jn_buf_cleanup(&o->value);
}

/* The records store's spelling: canonical, compact, payload last. */
static void test_store_rows(void **state)
{
    (void)state;
    const char *text =
        "[{\"event_id\":\"" ID1 "\",\"record_id\":\"a\\u0001b\",\"action\":\"ADDED\",\"seq\":12,"
        "\"cursor\":\"cjE6MTE6MTI\",\"payload\":{\"id\":\"a\\u0001b\",\"n\":[1,{\"x\":\"}]\"}],"
        "\"s\":\"\\\"{\"}},"
        "{\"event_id\":\"" ID2 "\",\"record_id\":\"z\",\"action\":\"DELETED\",\"seq\":13,"
        "\"cursor\":\"cjE6MTE6MTM\",\"payload\":null}]";
    jn_record_change_t *c = NULL;
    size_t n = 0;
    char why[256] = "";
    assert_int_equal(jn_record_changes_parse(text, strlen(text), &c, &n, why, sizeof why), JN_OK);
    assert_int_equal(n, 2);
    assert_string_equal(c[0].event_id, ID1);
    assert_string_equal(c[0].action, "ADDED");
    assert_int_equal(c[0].seq, 12);
    assert_int_equal(c[0].cursor_len, strlen("cjE6MTE6MTI"));
    assert_int_equal(c[1].payload_len, 4);

    jn_outbox_row_t row = row_of(text);
    out_t o;
    out_init(&o);
    bool omitted = true;
    assert_int_equal(
        jn_record_event_encode(&row, &c[0], NULL, 1000000, false, &o.key, &o.value, &omitted),
        JN_OK);
    assert_false(omitted);
    assert_string_equal(o.key.data,
                        "[3,\"github-prod\",\"user \\\"42\\\"\",\"Issue::eu\",\"a\\u0001b\"]");
    assert_string_equal(
        o.value.data,
        "{\"version\":1,\"event_id\":\"" ID1 "\",\"environment_id\":3,\"environment\":\"dev\","
        "\"provider_config_key\":\"github-prod\",\"provider\":\"github\","
        "\"connection_id\":\"user \\\"42\\\"\",\"model\":\"Issue::eu\",\"record_id\":\"a\\u0001b\","
        "\"action\":\"ADDED\",\"seq\":12,\"cursor\":\"cjE6MTE6MTI\","
        "\"job_id\":\"9f0c2a1e-0000-4000-8000-000000000001\","
        "\"changed_at\":\"2026-01-02T03:04:05.678901Z\","
        "\"payload\":{\"id\":\"a\\u0001b\",\"n\":[1,{\"x\":\"}]\"}],\"s\":\"\\\"{\"}}");
    json_object *parsed = json_tokener_parse(o.value.data);
    assert_non_null(parsed);
    json_object_put(parsed);

    /* a delete: payload null, never "omitted"; a purge has no job */
    row.job_id = NULL;
    row.provider = NULL;
    assert_int_equal(
        jn_record_event_encode(&row, &c[1], NULL, 1000000, false, &o.key, &o.value, &omitted),
        JN_OK);
    assert_false(omitted);
    assert_non_null(strstr(o.value.data, "\"provider\":null"));
    assert_non_null(strstr(o.value.data, "\"job_id\":null"));
    assert_non_null(strstr(o.value.data, "\"action\":\"DELETED\""));
    assert_true(strlen(o.value.data) > 8 &&
                strcmp(o.value.data + strlen(o.value.data) - 15, "\"payload\":null}") == 0);
    free(c);
    out_cleanup(&o);
}

/* PostgreSQL's json_agg spelling (a purge): spaces, newlines, escapes of its own. The key
 * must be the same bytes as the store's for the same record. */
static void test_postgres_rows(void **state)
{
    (void)state;
    const char *pg =
        "[{\"event_id\" : \"" ID1 "\", \"record_id\" : \"caf\\u00e9\\tx\", "
        "\"action\" : \"DELETED\", \"seq\" : 5, \"cursor\" : \"cjE6MTE6NQ\", "
        "\"payload\" : null}, \n {\"event_id\" : \"" ID2 "\", \"extra\" : [1, {\"a\" : "
        "\"]\"}], \"record_id\" : \"b\", \"action\" : \"DELETED\", \"seq\" : 6, "
        "\"cursor\" : \"cjE6MTE6Ng\", \"payload\" : null}]";
    const char *store = "[{\"event_id\":\"" ID1 "\",\"record_id\":\"caf\xc3\xa9\\tx\","
                        "\"action\":\"DELETED\",\"seq\":5,\"cursor\":\"cjE6MTE6NQ\","
                        "\"payload\":null}]";
    jn_record_change_t *a = NULL, *b = NULL;
    size_t na = 0, nb = 0;
    char why[256];
    assert_int_equal(jn_record_changes_parse(pg, strlen(pg), &a, &na, why, sizeof why), JN_OK);
    assert_int_equal(na, 2); /* the unknown member is skipped */
    assert_int_equal(jn_record_changes_parse(store, strlen(store), &b, &nb, why, sizeof why),
                     JN_OK);
    jn_outbox_row_t ra = row_of(pg), rb = row_of(store);
    out_t x, y;
    out_init(&x);
    out_init(&y);
    bool omitted;
    assert_int_equal(
        jn_record_event_encode(&ra, &a[0], NULL, 1000000, false, &x.key, &x.value, &omitted),
        JN_OK);
    assert_int_equal(
        jn_record_event_encode(&rb, &b[0], NULL, 1000000, false, &y.key, &y.value, &omitted),
        JN_OK);
    assert_string_equal(x.key.data, y.key.data);
    assert_string_equal(x.value.data, y.value.data);
    assert_non_null(strstr(x.key.data, "\"caf\xc3\xa9\\tx\"]"));
    free(a);
    free(b);
    out_cleanup(&x);
    out_cleanup(&y);
}

/* A sealed payload is opened with the ring, bound to its record; another key, or the blob
 * of another record, does not open. */
static void test_sealed(void **state)
{
    (void)state;
    unsigned char key[32], other[32];
    memset(key, 7, sizeof key);
    memset(other, 8, sizeof other);
    jn_crypto_keyring_t ring, wrong;
    jn_crypto_keyring_init(&ring, key);
    jn_crypto_keyring_init(&wrong, other);
    const char *plain = "{\"id\":\"r1\",\"secret\":\"s3cr3t\"}";
    char *blob = NULL;
    assert_int_equal(
        jn_crypto_seal(&ring, plain, strlen(plain), "record:11:r1", strlen("record:11:r1"), &blob),
        JN_OK);
    char text[2048];
    snprintf(text, sizeof text,
             "[{\"event_id\":\"" ID1 "\",\"record_id\":\"r1\",\"action\":\"UPDATED\",\"seq\":2,"
             "\"cursor\":\"cjE6MTE6Mg\",\"payload\":\"%s\"},"
             "{\"event_id\":\"" ID2 "\",\"record_id\":\"r2\",\"action\":\"UPDATED\",\"seq\":3,"
             "\"cursor\":\"cjE6MTE6Mw\",\"payload\":\"%s\"}]",
             blob, blob);
    free(blob);
    jn_record_change_t *c = NULL;
    size_t n = 0;
    char why[256];
    assert_int_equal(jn_record_changes_parse(text, strlen(text), &c, &n, why, sizeof why), JN_OK);
    jn_outbox_row_t row = row_of(text);
    row.sealed = true;
    out_t o;
    out_init(&o);
    bool omitted;
    assert_int_equal(
        jn_record_event_encode(&row, &c[0], &ring, 1000000, false, &o.key, &o.value, &omitted),
        JN_OK);
    assert_non_null(strstr(o.value.data, "\"payload\":{\"id\":\"r1\",\"secret\":\"s3cr3t\"}}"));
    assert_int_equal(
        jn_record_event_encode(&row, &c[0], &wrong, 1000000, false, &o.key, &o.value, &omitted),
        JN_ERR_INTERNAL);
    /* r1's blob moved to r2 */
    assert_int_equal(
        jn_record_event_encode(&row, &c[1], &ring, 1000000, false, &o.key, &o.value, &omitted),
        JN_ERR_INTERNAL);
    /* left out, it is not opened at all */
    assert_int_equal(
        jn_record_event_encode(&row, &c[0], &wrong, 1000000, true, &o.key, &o.value, &omitted),
        JN_OK);
    assert_true(omitted);
    free(c);
    out_cleanup(&o);
    jn_crypto_keyring_cleanup(&ring);
    jn_crypto_keyring_cleanup(&wrong);
}

/* Past max_bytes the payload goes, and the event says so; an event that cannot fit even
 * so is refused. */
static void test_size_limit(void **state)
{
    (void)state;
    jn_buf_t t;
    jn_buf_init(&t, 1 << 20);
    jn_buf_append_str(&t, "[{\"event_id\":\"" ID1 "\",\"record_id\":\"big\",\"action\":\"ADDED\","
                          "\"seq\":1,\"cursor\":\"cjE6MTE6MQ\",\"payload\":{\"id\":\"big\","
                          "\"blob\":\"");
    for (int i = 0; i < 20000; i++)
        jn_buf_append(&t, "x", 1);
    jn_buf_append_str(&t, "\"}}]");
    jn_record_change_t *c = NULL;
    size_t n = 0;
    char why[256];
    assert_int_equal(jn_record_changes_parse(t.data, t.len, &c, &n, why, sizeof why), JN_OK);
    jn_outbox_row_t row = row_of(t.data);
    row.changes_len = t.len;
    out_t o;
    out_init(&o);
    bool omitted;
    assert_int_equal(
        jn_record_event_encode(&row, &c[0], NULL, 30000, false, &o.key, &o.value, &omitted), JN_OK);
    assert_false(omitted);
    size_t full = o.key.len + o.value.len + JN_RECORD_EVENT_OVERHEAD;
    assert_true(full <= 30000);
    assert_int_equal(
        jn_record_event_encode(&row, &c[0], NULL, full, false, &o.key, &o.value, &omitted), JN_OK);
    assert_false(omitted);
    assert_int_equal(
        jn_record_event_encode(&row, &c[0], NULL, full - 1, false, &o.key, &o.value, &omitted),
        JN_OK);
    assert_true(omitted);
    assert_non_null(strstr(o.value.data, "\"payload\":null,\"payload_omitted\":\"too_large\"}"));
    assert_int_equal(
        jn_record_event_encode(&row, &c[0], NULL, 300, false, &o.key, &o.value, &omitted),
        JN_ERR_TOO_LARGE);
    free(c);
    out_cleanup(&o);
    jn_buf_cleanup(&t);
}

/* What is not an outbox row is refused, naming why, and yields nothing. */
static void test_malformed(void **state)
{
    (void)state;
#define CH(id, rid, act, seq, cur, pay)                                                            \
    "{\"event_id\":\"" id "\",\"record_id\":" rid ",\"action\":\"" act "\",\"seq\":" seq           \
    ",\"cursor\":\"" cur "\",\"payload\":" pay "}"
    const char *bad[] = {
        "",
        "{}",
        "[",
        "[1]",
        "[{}]",
        "[" CH(ID1, "\"a\"", "ADDED", "1", "cjE", "{}") "",
        "[" CH(ID1, "\"a\"", "ADDED", "1", "cjE", "{}") "] x",
        "[" CH("5B0C1F3E-8A2D-4C11-9E0F-0123456789AB", "\"a\"", "ADDED", "1", "cjE", "{}") "]",
        "[" CH(ID1, "\"\"", "ADDED", "1", "cjE", "{}") "]",
        "[" CH(ID1, "1", "ADDED", "1", "cjE", "{}") "]",
        "[" CH(ID1, "\"a", "ADDED", "1", "cjE", "{}") "]",
        "[" CH(ID1, "\"a\"", "MOVED", "1", "cjE", "{}") "]",
        "[" CH(ID1, "\"a\"", "ADDED", "0", "cjE", "{}") "]",
        "[" CH(ID1, "\"a\"", "ADDED", "-1", "cjE", "{}") "]",
        "[" CH(ID1, "\"a\"", "ADDED", "1234567890123456789012", "cjE", "{}") "]",
        "[" CH(ID1, "\"a\"", "ADDED", "1", "cj+E", "{}") "]",
        "[" CH(ID1, "\"a\"", "ADDED", "1", "cjE", "{\"a\":[}") "]",
        "[" CH(ID1, "\"a\"", "ADDED", "1", "cjE", "{\"a\":\"\x01\"}") "]",
        "[" CH(ID1, "\"a\"", "ADDED", "1", "cjE", "") "]",
        "[{\"event_id\":\"" ID1 "\",\"record_id\":\"a\",\"action\":\"ADDED\",\"seq\":1,"
        "\"payload\":{}}]",
    };
#undef CH
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        jn_record_change_t *c = (jn_record_change_t *)1;
        size_t n = 99;
        char why[256] = "";
        if (jn_record_changes_parse(bad[i], strlen(bad[i]), &c, &n, why, sizeof why) !=
            JN_ERR_INVALID)
            fail_msg("accepted: %s", bad[i]);
        assert_null(c);
        assert_int_equal(n, 0);
        assert_true(why[0] != '\0');
    }
    /* an empty batch is a valid (if useless) row */
    jn_record_change_t *c = NULL;
    size_t n = 1;
    char why[256];
    assert_int_equal(jn_record_changes_parse(" [ ] ", 5, &c, &n, why, sizeof why), JN_OK);
    assert_int_equal(n, 0);
    free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_store_rows), cmocka_unit_test(test_postgres_rows),
        cmocka_unit_test(test_sealed),     cmocka_unit_test(test_size_limit),
        cmocka_unit_test(test_malformed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

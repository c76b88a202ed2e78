/*
 * Unit: the webhook payloads and their serialization (store/webhooks.h), and the delivery's
 * retry timing (worker/delivery.h), without services.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>

#include "delivery.h"
#include "store/webhooks.h"

static char *text_of(json_object *o)
{
    char *t = jn_webhook_serialize(o, NULL);
    json_object_put(o);
    return t;
}

static void test_serialization_sorts_keys_at_every_level(void **state)
{
    (void)state;
    json_object *o = json_tokener_parse(
        "{\"zeta\":1,\"Alpha\":[{\"b\":true,\"a\":null}],\"alpha\":{\"y\":\"/x/\",\"x\":-2.5},"
        "\"\\u00e9\":\"\\u00e9\\n\"}");
    size_t len = 0;
    char *t = jn_webhook_serialize(o, &len);
    /* Byte order ("A" < "a" < "z" < "\xc3\xa9"), no spaces, '/' as is. */
    assert_string_equal(t,
                        "{\"Alpha\":[{\"a\":null,\"b\":true}],\"alpha\":{\"x\":-2.5,\"y\":\"/x/\"},"
                        "\"zeta\":1,\"\xc3\xa9\":\"\xc3\xa9\\n\"}");
    assert_int_equal(len, strlen(t));
    /* The input is untouched. */
    assert_non_null(strstr(json_object_to_json_string(o), "zeta"));
    free(t);
    json_object_put(o);
    /* Any JSON value, not only objects. */
    o = json_tokener_parse("[3,\"a\"]");
    t = text_of(o);
    assert_string_equal(t, "[3,\"a\"]");
    free(t);
}

static void test_auth_payload(void **state)
{
    (void)state;
    json_object *end_user =
        json_tokener_parse("{\"id\":\"u1\",\"email\":\"u@x.io\",\"organization\":{\"id\":\"o1\"},"
                           "\"tags\":{\"k\":\"v\"}}");
    json_object *tags = json_tokener_parse("{\"end_user_id\":\"u1\"}");
    jn_webhook_auth_t a = {.connection_id = "c1",
                           .provider_config_key = "gh",
                           .provider = "github",
                           .auth_mode = "OAUTH2",
                           .environment = "dev",
                           .operation = "creation",
                           .success = true,
                           .tags = tags,
                           .end_user = end_user};
    char *t = text_of(jn_webhook_auth_body(&a));
    assert_string_equal(t, "{\"authMode\":\"OAUTH2\",\"connectionId\":\"c1\",\"endUser\":{"
                           "\"endUserEmail\":\"u@x.io\",\"endUserId\":\"u1\",\"organizationId\":"
                           "\"o1\",\"tags\":{\"k\":\"v\"}},\"environment\":\"dev\",\"from\":"
                           "\"nango\",\"operation\":\"creation\",\"provider\":\"github\","
                           "\"providerConfigKey\":\"gh\",\"success\":true,\"tags\":{"
                           "\"end_user_id\":\"u1\"},\"type\":\"auth\"}");
    free(t);
    /* A failed refresh carries the error; no end user, no tags: no such fields. */
    jn_webhook_auth_t f = {.connection_id = "c1",
                           .provider_config_key = "gh",
                           .provider = "github",
                           .auth_mode = "OAUTH2",
                           .environment = "prod",
                           .operation = "refresh",
                           .success = false,
                           .error_type = "refresh_token_external_error",
                           .error_description = "invalid_grant"};
    t = text_of(jn_webhook_auth_body(&f));
    assert_non_null(strstr(t, "\"error\":{\"description\":\"invalid_grant\",\"type\":"
                              "\"refresh_token_external_error\"}"));
    assert_non_null(strstr(t, "\"success\":false"));
    assert_null(strstr(t, "endUser"));
    assert_null(strstr(t, "tags"));
    free(t);
    json_object_put(end_user);
    json_object_put(tags);
}

static void test_sync_async_and_forward_payloads(void **state)
{
    (void)state;
    json_object *to = json_tokener_parse("{\"cursor\":\"abc\"}");
    jn_webhook_sync_t s = {.connection_id = "c1",
                           .provider_config_key = "gh",
                           .sync_name = "issues",
                           .model = "Issue",
                           .sync_type = "INITIAL",
                           .success = true,
                           .modified_after = "2026-01-01T00:00:00.000Z",
                           .added = 1,
                           .checkpoint_to = to};
    char *t = text_of(jn_webhook_sync_body(&s));
    assert_string_equal(t, "{\"checkpoints\":{\"from\":null,\"to\":{\"cursor\":\"abc\"}},"
                           "\"connectionId\":\"c1\",\"from\":\"nango\",\"model\":\"Issue\","
                           "\"modifiedAfter\":\"2026-01-01T00:00:00.000Z\",\"providerConfigKey\":"
                           "\"gh\",\"queryTimeStamp\":\"2026-01-01T00:00:00.000Z\","
                           "\"responseResults\":{\"added\":1,\"deleted\":0,\"updated\":0},"
                           "\"success\":true,\"syncName\":\"issues\",\"syncType\":\"INITIAL\","
                           "\"syncVariant\":\"base\",\"type\":\"sync\"}");
    free(t);
    json_object_put(to);
    t = text_of(jn_webhook_async_action_body("c1", "gh", "0b0e5a6c-9d1f-4c43-9a4b-52f6c2e0d001"));
    assert_string_equal(t, "{\"connectionId\":\"c1\",\"from\":\"nango\",\"payload\":{\"id\":"
                           "\"0b0e5a6c-9d1f-4c43-9a4b-52f6c2e0d001\",\"statusUrl\":\"/action/"
                           "0b0e5a6c-9d1f-4c43-9a4b-52f6c2e0d001\"},\"providerConfigKey\":\"gh\","
                           "\"type\":\"async_action\"}");
    free(t);
    json_object *raw = json_tokener_parse("{\"event\":\"push\"}");
    t = text_of(jn_webhook_forward_body("github", "gh", NULL, raw));
    assert_string_equal(t, "{\"event\":\"push\"}");
    free(t);
    t = text_of(jn_webhook_forward_body("github", "gh", "c1", raw));
    assert_string_equal(t, "{\"connectionId\":\"c1\",\"from\":\"github\",\"payload\":{\"event\":"
                           "\"push\"},\"providerConfigKey\":\"gh\",\"type\":\"forward\"}");
    free(t);
    json_object_put(raw);
}

static void test_type_names(void **state)
{
    (void)state;
    jn_webhook_type_t t;
    assert_int_equal(jn_webhook_type_parse("async_action", &t), JN_OK);
    assert_int_equal(t, JN_WEBHOOK_ASYNC_ACTION);
    assert_string_equal(jn_webhook_type_name(JN_WEBHOOK_FORWARD), "forward");
    assert_int_equal(jn_webhook_type_parse("Auth", &t), JN_ERR_INVALID);
    assert_int_equal(jn_webhook_type_parse(NULL, &t), JN_ERR_INVALID);
}

static void test_retry_timing(void **state)
{
    (void)state;
    for (int i = 0; i < 200; i++) {
        /* base 3: about 3, 6, 12 s (half to all of it), capped at 10 minutes. */
        int d1 = jn_delivery_retry_delay_s(3, 1, 0), d3 = jn_delivery_retry_delay_s(3, 3, 0);
        assert_true(d1 >= 2 && d1 <= 3);
        assert_true(d3 >= 6 && d3 <= 12);
        int big = jn_delivery_retry_delay_s(3, 30, 0);
        assert_true(big >= JN_DELIVERY_BACKOFF_MAX_S / 2 && big <= JN_DELIVERY_BACKOFF_MAX_S);
    }
    /* Retry-After wins, capped at an hour. */
    assert_int_equal(jn_delivery_retry_delay_s(3, 1, 7), 7);
    assert_int_equal(jn_delivery_retry_delay_s(3, 1, 86400), JN_DELIVERY_RETRY_AFTER_MAX_S);
    assert_int_equal(jn_delivery_retry_after("120"), 120);
    assert_int_equal(jn_delivery_retry_after("-5"), 0);
    assert_int_equal(jn_delivery_retry_after("soon"), 0);
    assert_int_equal(jn_delivery_retry_after(NULL), 0);
    assert_int_equal(jn_delivery_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), 0); /* past */
    long future = jn_delivery_retry_after("Fri, 01 Jan 2100 00:00:00 GMT");
    assert_true(future > 365L * 24 * 3600);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_serialization_sorts_keys_at_every_level),
        cmocka_unit_test(test_auth_payload),
        cmocka_unit_test(test_sync_async_and_forward_payloads),
        cmocka_unit_test(test_type_names),
        cmocka_unit_test(test_retry_timing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

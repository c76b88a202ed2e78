/* Unit tests for common/providers/webhook_spec.c and webhook_routing.c: the "webhook"
 * section's checks (one per defect, each from a valid section with one change), signatures
 * verified against the providers' own published examples and against every way to get one
 * wrong, the headers a script may see, and routing: payloads, routing values, batch parts,
 * event types, challenges. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/crypto.h"
#include "providers/catalog.h"
#include "providers/webhook_routing.h"
#include "providers/webhook_spec.h"

/* ---- helpers ---- */

/* An entry with a webhook section (JSON text of the section). */
static json_object *entry_with(const char *section)
{
    char text[4096];
    snprintf(text, sizeof text,
             "{\"name\":\"acme\",\"token_response_metadata\":[\"team.id\"],"
             "\"connection_config\":{\"portal\":{\"type\":\"string\"}},\"webhook\":%s}",
             section);
    json_object *e = json_tokener_parse(text);
    if (!e)
        fail_msg("not JSON: %s", text);
    return e;
}

/* Checks section and expects an error naming path whose message contains what. */
/* Checks that section is refused at path with a message containing what; true once
 * checked (it fails the test otherwise). */
static bool refused(const char *section, const char *path, const char *what)
{
    json_object *entry = entry_with(section);
    jn_field_error_t e = {0};
    if (jn_webhook_spec_check(entry, &e) != JN_ERR_INVALID)
        fail_msg("accepted: %s", section);
    if (strcmp(e.path, path) != 0 || !strstr(e.message, what))
        fail_msg("%s: got %s: %s; wanted %s: ...%s...", section, e.path, e.message, path, what);
    json_object_put(entry);
    return true;
}

static void accepted(const char *section)
{
    json_object *entry = entry_with(section);
    jn_field_error_t e = {0};
    if (jn_webhook_spec_check(entry, &e) != JN_OK)
        fail_msg("refused %s: %s: %s", section, e.path, e.message);
    json_object_put(entry);
}

typedef struct {
    const char *names[8];
    const char *values[8];
} headers_t;

static const char *header_of(const char *name, void *ud)
{
    headers_t *h = ud;
    for (int i = 0; i < 8 && h->names[i]; i++) {
        if (strcmp(h->names[i], name) == 0)
            return h->values[i];
    }
    return NULL;
}

static jn_catalog_t *catalog;

static int setup(void **state)
{
    (void)state;
    char why[512];
    if (jn_catalog_load_builtin(&catalog, why, sizeof why) != JN_OK)
        fail_msg("%s", why);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    jn_catalog_free(catalog);
    return 0;
}

static void spec_of(const char *provider, jn_webhook_spec_t *spec)
{
    json_object *entry = jn_catalog_get(catalog, provider);
    assert_non_null(entry);
    assert_int_equal(jn_webhook_spec_read(entry, spec), JN_OK);
}

static jn_err_t verify(const jn_webhook_spec_t *spec, const char *secret, const char *body,
                       headers_t *h, long long now)
{
    jn_webhook_request_t req = {.method = "POST",
                                .url = "https://junction.example.com/webhook/e/k",
                                .body = body,
                                .body_len = strlen(body),
                                .header = header_of,
                                .ud = h,
                                .now = now};
    char why[256];
    return jn_webhook_verify(spec, secret, secret ? strlen(secret) : 0, &req, why, sizeof why);
}

static void hmac_hex(const char *secret, const char *msg, char out[65])
{
    unsigned char mac[32];
    jn_crypto_hmac_sha256(secret, strlen(secret), msg, strlen(msg), mac);
    jn_hex_encode(mac, 32, out);
}

static void hmac_b64(const char *secret, const char *msg, char out[64])
{
    unsigned char mac[32];
    jn_crypto_hmac_sha256(secret, strlen(secret), msg, strlen(msg), mac);
    jn_base64_encode(mac, 32, out);
}

/* ---- the section's checks ---- */

static void test_valid_sections(void **state)
{
    (void)state;
    accepted("{\"unsigned\":true}");
    accepted("{\"signature\":{\"algorithm\":\"token\",\"header\":\"x-token\",\"prefix\":\"Bearer "
             "\"}}");
    accepted("{\"signature\":{\"algorithm\":\"hmac-sha256\",\"header\":\"x-sig\","
             "\"encoding\":\"hex\",\"pairs\":\"v1\",\"payload\":\"${timestamp}.${body}\","
             "\"timestamp\":{\"pairs\":\"t\",\"tolerance_seconds\":60}},"
             "\"routing\":{\"path\":\"team.id\",\"match\":\"connection_config.team.id\"},"
             "\"event_type\":{\"path\":\"type\"},\"headers\":[\"x-acme-*\",\"x-delivery\"],"
             "\"challenge\":{\"path\":\"type\",\"equals\":\"verify\",\"answer\":\"code\"}}");
    accepted("{\"unsigned\":true,\"routing\":{\"path\":\"portal\",\"match\":\"connection_id\"}}");
    /* No section: nothing to check. */
    json_object *plain = json_tokener_parse("{\"name\":\"acme\"}");
    jn_field_error_t e;
    assert_int_equal(jn_webhook_spec_check(plain, &e), JN_OK);
    jn_webhook_spec_t spec;
    assert_int_equal(jn_webhook_spec_read(plain, &spec), JN_ERR_NOT_FOUND);
    json_object_put(plain);
}

static void test_refused_sections(void **state)
{
    (void)state;
    assert_true(refused("[]", "webhook", "must be an object"));
    assert_true(refused("{}", "webhook", "either signature"));
    assert_true(refused("{\"unsigned\":false}", "webhook.unsigned", "only be true"));
    assert_true(
        refused("{\"unsigned\":true,\"signature\":{\"algorithm\":\"token\",\"header\":\"x-t\"}}",
                "webhook", "either signature"));
    assert_true(refused("{\"unsigned\":true,\"colour\":1}", "webhook.colour", "unknown"));
    assert_true(
        refused("{\"signature\":{\"algorithm\":\"md5\",\"header\":\"x-sig\",\"encoding\":\"hex\"}}",
                "webhook.signature.algorithm", "hmac-sha256 or token"));
    assert_true(refused("{\"signature\":{\"algorithm\":\"hmac-sha256\",\"header\":\"X-Sig\","
                        "\"encoding\":\"hex\"}}",
                        "webhook.signature.header", "lowercase"));
    assert_true(refused("{\"signature\":{\"algorithm\":\"token\",\"header\":\"authorization\"}}",
                        "webhook.signature.header", "cannot carry"));
    assert_true(refused("{\"signature\":{\"algorithm\":\"hmac-sha256\",\"header\":\"x-sig\"}}",
                        "webhook.signature.encoding", "missing"));
    assert_true(refused("{\"signature\":{\"algorithm\":\"hmac-sha256\",\"header\":\"x-sig\","
                        "\"encoding\":\"base32\"}}",
                        "webhook.signature.encoding", "hex or base64"));
    assert_true(
        refused("{\"signature\":{\"algorithm\":\"token\",\"header\":\"x-t\",\"encoding\":\"hex\"}}",
                "webhook.signature.encoding", "does not apply"));
    assert_true(
        refused("{\"signature\":{\"algorithm\":\"hmac-sha256\",\"header\":\"x-sig\","
                "\"encoding\":\"hex\",\"payload\":\"${timestamp}\",\"timestamp\":{\"header\":"
                "\"x-ts\"}}}",
                "webhook.signature.payload", "${body} exactly once"));
    assert_true(refused("{\"signature\":{\"algorithm\":\"hmac-sha256\",\"header\":\"x-sig\","
                        "\"encoding\":\"hex\",\"payload\":\"${body}${body}\"}}",
                        "webhook.signature.payload", "${body} exactly once"));
    assert_true(refused("{\"signature\":{\"algorithm\":\"hmac-sha256\",\"header\":\"x-sig\","
                        "\"encoding\":\"hex\",\"payload\":\"${secret}${body}\"}}",
                        "webhook.signature.payload", "unknown placeholder ${secret}"));
    assert_true(refused("{\"signature\":{\"algorithm\":\"hmac-sha256\",\"header\":\"x-sig\","
                        "\"encoding\":\"hex\",\"payload\":\"${body\"}}",
                        "webhook.signature.payload", "unclosed"));
    assert_true(refused("{\"signature\":{\"algorithm\":\"hmac-sha256\",\"header\":\"x-sig\","
                        "\"encoding\":\"hex\",\"payload\":\"${timestamp}.${body}\"}}",
                        "webhook.signature.timestamp", "missing"));
    assert_true(refused("{\"signature\":{\"algorithm\":\"hmac-sha256\",\"header\":\"x-sig\","
                        "\"encoding\":\"hex\",\"timestamp\":{\"header\":\"x-ts\"}}}",
                        "webhook.signature.payload", "must sign ${timestamp}"));
    assert_true(refused("{\"signature\":{\"algorithm\":\"hmac-sha256\",\"header\":\"x-sig\","
                        "\"encoding\":\"hex\",\"payload\":\"${timestamp}${body}\","
                        "\"timestamp\":{\"pairs\":\"t\"}}}",
                        "webhook.signature.timestamp.pairs", "signature.pairs"));
    assert_true(refused("{\"signature\":{\"algorithm\":\"hmac-sha256\",\"header\":\"x-sig\","
                        "\"encoding\":\"hex\",\"payload\":\"${timestamp}${body}\","
                        "\"timestamp\":{\"header\":\"x-ts\",\"tolerance_seconds\":86400}}}",
                        "webhook.signature.timestamp.tolerance_seconds", "1 to 3600"));
    assert_true(refused("{\"signature\":{\"algorithm\":\"hmac-sha256\",\"header\":\"x-sig\","
                        "\"encoding\":\"hex\",\"payload\":\"${timestamp}${body}\","
                        "\"timestamp\":{\"header\":\"x-ts\",\"unit\":\"hours\"}}}",
                        "webhook.signature.timestamp.unit", "seconds, milliseconds or iso8601"));
    assert_true(
        refused("{\"unsigned\":true,\"routing\":{\"path\":\"a..b\",\"match\":\"connection_id\"}}",
                "webhook.routing.path", "dot-separated"));
    assert_true(refused("{\"unsigned\":true,\"routing\":{\"path\":\"a\",\"match\":\"metadata.x\"}}",
                        "webhook.routing.match", "connection_id or connection_config"));
    assert_true(refused("{\"unsigned\":true,\"routing\":{\"path\":\"a\",\"match\":"
                        "\"connection_config.region\"}}",
                        "webhook.routing.match", "not a connection_config key"));
    assert_true(refused("{\"unsigned\":true,\"event_type\":{\"path\":\"a\",\"header\":\"x-e\"}}",
                        "webhook.event_type", "exactly one"));
    assert_true(refused("{\"unsigned\":true,\"headers\":[\"cookie\"]}", "webhook.headers[0]",
                        "never given"));
    assert_true(
        refused("{\"unsigned\":true,\"headers\":[\"x*\"]}", "webhook.headers[0]", "at least 3"));
    assert_true(refused("{\"unsigned\":true,\"headers\":\"x-a\"}", "webhook.headers", "array"));
    refused("{\"unsigned\":true,\"challenge\":{\"path\":\"type\",\"equals\":\"v\"}}",
            "webhook.challenge.answer", "");
}

/* Every built-in entry that declares a section reads back. */
static void test_catalog_sections_read(void **state)
{
    (void)state;
    size_t with = 0;
    for (size_t i = 0; i < jn_catalog_count(catalog); i++) {
        jn_webhook_spec_t spec;
        jn_err_t err = jn_webhook_spec_read(jn_catalog_at(catalog, i), &spec);
        assert_true(err == JN_OK || err == JN_ERR_NOT_FOUND);
        with += err == JN_OK;
        if (err == JN_OK)
            assert_int_not_equal(spec.scheme, JN_WEBHOOK_UNSIGNED); /* built-ins all sign */
    }
    assert_true(with >= 4);
}

/* ---- signatures ---- */

/* GitHub's documented example (docs.github.com, "Validating webhook deliveries"). */
static void test_github_published_example(void **state)
{
    (void)state;
    jn_webhook_spec_t spec;
    spec_of("github", &spec);
    const char *secret = "It's a Secret to Everybody";
    headers_t h = {{"x-hub-signature-256"},
                   {"sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"}};
    assert_int_equal(verify(&spec, secret, "Hello, World!", &h, 0), JN_OK);
    /* Upper-case hex is the same signature. */
    h.values[0] = "sha256=757107EA0EB2509FC211221CCE984B8A37570B6D7586C22C46F4379C8B043E17";
    assert_int_equal(verify(&spec, secret, "Hello, World!", &h, 0), JN_OK);
    /* A tampered body, another secret, no prefix, a cut signature, none at all. */
    h.values[0] = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
    assert_int_equal(verify(&spec, secret, "Hello, World?", &h, 0), JN_ERR_INVALID);
    assert_int_equal(verify(&spec, "another", "Hello, World!", &h, 0), JN_ERR_INVALID);
    h.values[0] = "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
    assert_int_equal(verify(&spec, secret, "Hello, World!", &h, 0), JN_ERR_INVALID);
    h.values[0] = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e";
    assert_int_equal(verify(&spec, secret, "Hello, World!", &h, 0), JN_ERR_INVALID);
    h.values[0] = "sha256=";
    assert_int_equal(verify(&spec, secret, "Hello, World!", &h, 0), JN_ERR_INVALID);
    h.names[0] = NULL;
    assert_int_equal(verify(&spec, secret, "Hello, World!", &h, 0), JN_ERR_INVALID);
    /* The integration has no secret: refused, whatever the header says. */
    h = (headers_t){{"x-hub-signature-256"}, {"sha256=00"}};
    assert_int_equal(verify(&spec, NULL, "Hello, World!", &h, 0), JN_ERR_INVALID);
}

/* Slack's documented example (api.slack.com, "Verifying requests from Slack"). */
static void test_slack_published_example(void **state)
{
    (void)state;
    jn_webhook_spec_t spec;
    spec_of("slack", &spec);
    const char *secret = "8f742231b10e8888abcd99yyyzzz85a5";
    const char *body =
        "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id="
        "G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-"
        "collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%"
        "2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121."
        "803a0bc887a14d10d2c447fce8b6703c";
    headers_t h = {
        {"x-slack-signature", "x-slack-request-timestamp"},
        {"v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503", "1531420618"}};
    assert_int_equal(verify(&spec, secret, body, &h, 1531420618 + 60), JN_OK);
    /* Outside the five minutes, either way: a replay, or a clock far off. */
    assert_int_equal(verify(&spec, secret, body, &h, 1531420618 + 301), JN_ERR_INVALID);
    assert_int_equal(verify(&spec, secret, body, &h, 1531420618 - 301), JN_ERR_INVALID);
    /* Another timestamp in the header breaks the signature (it is signed). */
    h.values[1] = "1531420619";
    assert_int_equal(verify(&spec, secret, body, &h, 1531420618), JN_ERR_INVALID);
    h.values[1] = "1531420618x";
    assert_int_equal(verify(&spec, secret, body, &h, 1531420618), JN_ERR_INVALID);
    h.names[1] = NULL;
    assert_int_equal(verify(&spec, secret, body, &h, 1531420618), JN_ERR_INVALID);
}

static void test_stripe_pairs(void **state)
{
    (void)state;
    jn_webhook_spec_t spec;
    spec_of("stripe", &spec);
    const char *secret = "whsec_test";
    const char *body = "{\"id\":\"evt_1\",\"type\":\"charge.succeeded\"}";
    char msg[256], good[65], header[512];
    snprintf(msg, sizeof msg, "1700000000.%s", body);
    hmac_hex(secret, msg, good);
    /* A rolled secret: two v1 signatures, the second one ours; v0 ignored. */
    snprintf(header, sizeof header, "t=1700000000,v1=%064d,v1=%s,v0=%s", 0, good, good);
    headers_t h = {{"stripe-signature"}, {header}};
    assert_int_equal(verify(&spec, secret, body, &h, 1700000100), JN_OK);
    assert_int_equal(verify(&spec, secret, body, &h, 1700000400), JN_ERR_INVALID);
    /* Only a v0 (legacy, test mode) signature: refused. */
    snprintf(header, sizeof header, "t=1700000000,v0=%s", good);
    assert_int_equal(verify(&spec, secret, body, &h, 1700000100), JN_ERR_INVALID);
    /* A timestamp the signature does not cover. */
    snprintf(header, sizeof header, "t=1700000050,v1=%s", good);
    assert_int_equal(verify(&spec, secret, body, &h, 1700000100), JN_ERR_INVALID);
    snprintf(header, sizeof header, "v1=%s", good);
    assert_int_equal(verify(&spec, secret, body, &h, 1700000100), JN_ERR_INVALID);
    /* A flood of pairs is read only so far. */
    size_t len = 0;
    for (int i = 0; i < 40; i++)
        len += (size_t)snprintf(header + len, sizeof header - len, "x=%d,", i);
    snprintf(header + len, sizeof header - len, "t=1700000000,v1=%s", good);
    assert_int_equal(verify(&spec, secret, body, &h, 1700000100), JN_ERR_INVALID);
}

static void test_hubspot_v3(void **state)
{
    (void)state;
    jn_webhook_spec_t spec;
    spec_of("hubspot", &spec);
    const char *secret = "client-secret";
    const char *body = "[{\"portalId\":42,\"subscriptionType\":\"contact.creation\"}]";
    char msg[512], good[64];
    snprintf(msg, sizeof msg, "POST%s%s%s", "https://junction.example.com/webhook/e/k", body,
             "1700000000123");
    hmac_b64(secret, msg, good);
    headers_t h = {{"x-hubspot-signature-v3", "x-hubspot-request-timestamp"},
                   {good, "1700000000123"}};
    assert_int_equal(verify(&spec, secret, body, &h, 1700000001), JN_OK);
    assert_int_equal(verify(&spec, secret, body, &h, 1700000400), JN_ERR_INVALID);
    /* Read as seconds, the millisecond timestamp would be far in the future. */
    h.values[1] = "1700000000";
    assert_int_equal(verify(&spec, secret, body, &h, 1700000001), JN_ERR_INVALID);
}

static void test_zendesk_iso8601(void **state)
{
    (void)state;
    jn_webhook_spec_t spec;
    spec_of("zendesk", &spec);
    const char *secret = "zd";
    const char *body = "{\"type\":\"zen:event-type:ticket.created\"}";
    char msg[256], good[64];
    snprintf(msg, sizeof msg, "2023-11-14T22:13:20Z%s", body);
    hmac_b64(secret, msg, good);
    headers_t h = {{"x-zendesk-webhook-signature", "x-zendesk-webhook-signature-timestamp"},
                   {good, "2023-11-14T22:13:20Z"}};
    assert_int_equal(verify(&spec, secret, body, &h, 1700000000), JN_OK);
    assert_int_equal(verify(&spec, secret, body, &h, 1700000000 + 3600), JN_ERR_INVALID);
    h.values[1] = "yesterday";
    assert_int_equal(verify(&spec, secret, body, &h, 1700000000), JN_ERR_INVALID);
}

static void test_token(void **state)
{
    (void)state;
    jn_webhook_spec_t spec;
    spec_of("gitlab", &spec);
    headers_t h = {{"x-gitlab-token", "x-gitlab-event"}, {"s3cret", "Push Hook"}};
    assert_int_equal(verify(&spec, "s3cret", "{}", &h, 0), JN_OK);
    h.values[0] = "s3cre";
    assert_int_equal(verify(&spec, "s3cret", "{}", &h, 0), JN_ERR_INVALID);
    h.values[0] = "s3cret ";
    assert_int_equal(verify(&spec, "s3cret", "{}", &h, 0), JN_ERR_INVALID);
    h.values[0] = "";
    assert_int_equal(verify(&spec, "s3cret", "{}", &h, 0), JN_ERR_INVALID);
    /* The token itself is never kept for a script, though x-gitlab-* is. */
    assert_false(jn_webhook_header_kept(&spec, "x-gitlab-token"));
    assert_true(jn_webhook_header_kept(&spec, "x-gitlab-event"));
    assert_true(jn_webhook_header_kept(&spec, "x-gitlab-instance"));
}

static void test_unsigned_and_headers(void **state)
{
    (void)state;
    json_object *entry = entry_with("{\"unsigned\":true,\"event_type\":{\"header\":\"x-kind\"},"
                                    "\"headers\":[\"x-acme-*\",\"x-delivery\"]}");
    jn_webhook_spec_t spec;
    assert_int_equal(jn_webhook_spec_read(entry, &spec), JN_OK);
    headers_t none = {{NULL}, {NULL}};
    assert_int_equal(verify(&spec, NULL, "anything", &none, 0), JN_OK);
    const char *kept[] = {"content-type", "user-agent", "x-kind", "x-acme-id", "x-delivery"};
    for (size_t i = 0; i < 5; i++)
        assert_true(jn_webhook_header_kept(&spec, kept[i]));
    const char *dropped[] = {"authorization", "cookie",          "proxy-authorization",
                             "x-deliveryx",   "x-forwarded-for", "host"};
    for (size_t i = 0; i < 6; i++)
        assert_false(jn_webhook_header_kept(&spec, dropped[i]));
    json_object_put(entry);
    /* A signed provider's signature header is not kept either. */
    spec_of("github", &spec);
    assert_false(jn_webhook_header_kept(&spec, "x-hub-signature-256"));
    assert_true(jn_webhook_header_kept(&spec, "x-github-event"));
}

/* ---- routing ---- */

static void test_payloads(void **state)
{
    (void)state;
    json_object *p = jn_webhook_payload("{\"a\":1}", 7, "application/json");
    assert_true(json_object_is_type(p, json_type_object));
    json_object_put(p);
    /* JSON whatever the content type says, unless it is a form. */
    p = jn_webhook_payload("[1,2]", 5, NULL);
    assert_true(json_object_is_type(p, json_type_array));
    json_object_put(p);
    const char *form = "payload=%7B%22x%22%3A1%7D&b=two+words&bad=%FF&empty=&=skipped";
    p = jn_webhook_payload(form, strlen(form), "application/x-www-form-urlencoded; charset=utf-8");
    assert_string_equal(json_object_get_string(json_object_object_get(p, "payload")), "{\"x\":1}");
    assert_string_equal(json_object_get_string(json_object_object_get(p, "b")), "two words");
    assert_string_equal(json_object_get_string(json_object_object_get(p, "bad")), "%FF");
    assert_string_equal(json_object_get_string(json_object_object_get(p, "empty")), "");
    assert_int_equal(json_object_object_length(p), 4);
    json_object_put(p);
    p = jn_webhook_payload("not json", 8, "text/plain");
    assert_string_equal(json_object_get_string(p), "not json");
    json_object_put(p);
}

static void test_route_values_and_parts(void **state)
{
    (void)state;
    json_object *one = json_tokener_parse("{\"team_id\":\"T1\",\"event\":{\"type\":\"message\"}}");
    json_object *v = jn_webhook_route_values(one, "team_id", 100);
    assert_int_equal(json_object_array_length(v), 1);
    assert_string_equal(json_object_get_string(json_object_array_get_idx(v, 0)), "T1");
    json_object_put(v);
    assert_string_equal(jn_webhook_event_type(one, "event.type"), "message");
    json_object *part = jn_webhook_payload_part(one, "team_id", "T1");
    assert_ptr_equal(part, one);
    json_object_put(part);
    json_object_put(one);

    json_object *batch = json_tokener_parse(
        "[{\"portalId\":1,\"t\":\"a\"},{\"portalId\":2,\"t\":\"b\"},{\"portalId\":1,\"t\":\"c\"},"
        "{\"portalId\":true},{\"t\":\"d\"},{\"portalId\":\"1\"},{\"portalId\":3.5}]");
    v = jn_webhook_route_values(batch, "portalId", 100);
    assert_int_equal(json_object_array_length(v), 2); /* "1" and 2; 1 and "1" are one value */
    assert_string_equal(json_object_get_string(json_object_array_get_idx(v, 0)), "1");
    assert_string_equal(json_object_get_string(json_object_array_get_idx(v, 1)), "2");
    json_object_put(v);
    v = jn_webhook_route_values(batch, "portalId", 1);
    assert_int_equal(json_object_array_length(v), 1);
    json_object_put(v);
    part = jn_webhook_payload_part(batch, "portalId", "1");
    assert_int_equal(json_object_array_length(part), 3);
    assert_string_equal(jn_webhook_event_type(part, "t"), "a");
    json_object_put(part);
    part = jn_webhook_payload_part(batch, "portalId", "9");
    assert_int_equal(json_object_array_length(part), 0);
    json_object_put(part);
    json_object_put(batch);
    json_object *text = json_object_new_string("x");
    v = jn_webhook_route_values(text, "a", 10);
    assert_int_equal(json_object_array_length(v), 0);
    json_object_put(v);
    json_object_put(text);
}

static void test_challenge(void **state)
{
    (void)state;
    jn_webhook_spec_t spec;
    spec_of("slack", &spec);
    json_object *p = json_tokener_parse("{\"type\":\"url_verification\",\"challenge\":\"abc\"}");
    assert_string_equal(jn_webhook_challenge(&spec, p), "abc");
    json_object_put(p);
    p = json_tokener_parse("{\"type\":\"event_callback\",\"challenge\":\"abc\"}");
    assert_null(jn_webhook_challenge(&spec, p));
    json_object_put(p);
    spec_of("github", &spec);
    p = json_tokener_parse("{\"type\":\"url_verification\",\"challenge\":\"abc\"}");
    assert_null(jn_webhook_challenge(&spec, p));
    json_object_put(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_sections),
        cmocka_unit_test(test_refused_sections),
        cmocka_unit_test(test_catalog_sections_read),
        cmocka_unit_test(test_github_published_example),
        cmocka_unit_test(test_slack_published_example),
        cmocka_unit_test(test_stripe_pairs),
        cmocka_unit_test(test_hubspot_v3),
        cmocka_unit_test(test_zendesk_iso8601),
        cmocka_unit_test(test_token),
        cmocka_unit_test(test_unsigned_and_headers),
        cmocka_unit_test(test_payloads),
        cmocka_unit_test(test_route_values_and_parts),
        cmocka_unit_test(test_challenge),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}

/* Unit tests for common/core/config.c: every variable's parsing and its one-line errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "core/config.h"

typedef struct {
    const char *names[32];
    const char *values[32];
    int count;
} fake_env_t;

static const char *fake_getenv(const char *name, void *ud)
{
    fake_env_t *env = ud;
    for (int i = 0; i < env->count; i++) {
        if (strcmp(env->names[i], name) == 0)
            return env->values[i];
    }
    return NULL;
}

static void put(fake_env_t *env, const char *name, const char *value)
{
    for (int i = 0; i < env->count; i++) {
        if (strcmp(env->names[i], name) == 0) {
            env->values[i] = value;
            return;
        }
    }
    env->names[env->count] = name;
    env->values[env->count++] = value;
}

/* A complete, valid environment for the gateway. */
static void valid_env(fake_env_t *env)
{
    memset(env, 0, sizeof *env);
    put(env, "JUNCTION_DATABASE_URL", "postgresql://u:p@127.0.0.1:5432/junction");
    put(env, "JUNCTION_KAFKA_BROKERS", "127.0.0.1:9092");
    put(env, "JUNCTION_ENCRYPTION_KEY", "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=");
}

static jn_err_t load(fake_env_t *env, jn_program_t program, jn_config_t *cfg, char *why)
{
    return jn_config_load(cfg, program, fake_getenv, env, why, 512);
}

static void test_defaults(void **state)
{
    (void)state;
    fake_env_t env;
    valid_env(&env);
    jn_config_t cfg;
    char why[512] = "";
    assert_int_equal(load(&env, JN_PROGRAM_GATEWAY, &cfg, why), JN_OK);
    assert_string_equal(cfg.topic_prefix, "junction");
    assert_int_equal(cfg.port, 3003);
    assert_int_equal(cfg.topic_partitions, 12);
    assert_int_equal(cfg.log_level, JN_LOG_INFO);
    assert_true(cfg.has_encryption_key);
    assert_memory_equal(cfg.encryption_key, "0123456789abcdef0123456789abcdef", 32);
    assert_string_equal(cfg.secret_key_dev, "");
    assert_int_equal(cfg.pg_connect_timeout_s, 5);
    assert_int_equal(cfg.pg_statement_timeout_ms, 10000);
    assert_int_equal(cfg.pg_lock_timeout_ms, 5000);
    assert_int_equal(cfg.pg_query_deadline_ms, 12000);

    assert_int_equal(load(&env, JN_PROGRAM_SCHEDULER, &cfg, why), JN_OK);
    assert_int_equal(cfg.port, 3004);
    assert_int_equal(load(&env, JN_PROGRAM_WORKER, &cfg, why), JN_OK);
    assert_int_equal(cfg.port, 3005);
}

static void test_overrides(void **state)
{
    (void)state;
    fake_env_t env;
    valid_env(&env);
    put(&env, "JUNCTION_PORT", "8080");
    put(&env, "JUNCTION_TOPIC_PREFIX", "acme.prod");
    put(&env, "JUNCTION_TOPIC_PARTITIONS", "48");
    put(&env, "JUNCTION_LOG_LEVEL", "DEBUG");
    put(&env, "JUNCTION_SECRET_KEY_DEV", "0123456789abcdef-dev");
    put(&env, "JUNCTION_KAFKA_BROKERS", "k1:9092,k2:9093");
    put(&env, "JUNCTION_PG_STATEMENT_TIMEOUT_MS", "30000");
    put(&env, "JUNCTION_PG_LOCK_TIMEOUT_MS", "1000");
    put(&env, "JUNCTION_PG_CONNECT_TIMEOUT_S", "3");
    jn_config_t cfg;
    char why[512] = "";
    assert_int_equal(load(&env, JN_PROGRAM_GATEWAY, &cfg, why), JN_OK);
    assert_int_equal(cfg.pg_statement_timeout_ms, 30000);
    assert_int_equal(cfg.pg_query_deadline_ms, 32000); /* follows the statement timeout */
    assert_int_equal(cfg.pg_lock_timeout_ms, 1000);
    assert_int_equal(cfg.pg_connect_timeout_s, 3);
    put(&env, "JUNCTION_PG_QUERY_DEADLINE_MS", "1500");
    assert_int_equal(load(&env, JN_PROGRAM_GATEWAY, &cfg, why), JN_OK);
    assert_int_equal(cfg.pg_query_deadline_ms, 1500);
    assert_int_equal(cfg.port, 8080);
    assert_string_equal(cfg.topic_prefix, "acme.prod");
    assert_int_equal(cfg.topic_partitions, 48);
    assert_int_equal(cfg.log_level, JN_LOG_DEBUG);
    assert_string_equal(cfg.secret_key_dev, "0123456789abcdef-dev");
    assert_string_equal(cfg.kafka_brokers, "k1:9092,k2:9093");
}

/* Each bad value must fail and name its variable. */
static void expect_invalid(const char *name, const char *value, jn_program_t program)
{
    fake_env_t env;
    valid_env(&env);
    put(&env, name, value);
    jn_config_t cfg;
    char why[512] = "";
    assert_int_equal(load(&env, program, &cfg, why), JN_ERR_INVALID);
    if (!strstr(why, name))
        fail_msg("error for %s=%s does not name the variable: %s", name, value, why);
    assert_null(strchr(why, '\n'));
}

static void test_malformed_values(void **state)
{
    (void)state;
    expect_invalid("JUNCTION_DATABASE_URL", "mysql://x", JN_PROGRAM_GATEWAY);
    expect_invalid("JUNCTION_DATABASE_URL", "postgresql://u@h:notaport/db?bogus_option=1",
                   JN_PROGRAM_GATEWAY);
    expect_invalid("JUNCTION_KAFKA_BROKERS", "localhost", JN_PROGRAM_GATEWAY);
    expect_invalid("JUNCTION_KAFKA_BROKERS", "localhost:0", JN_PROGRAM_GATEWAY);
    expect_invalid("JUNCTION_KAFKA_BROKERS", "a:9092,b:x", JN_PROGRAM_GATEWAY);
    expect_invalid("JUNCTION_PORT", "70000", JN_PROGRAM_GATEWAY);
    expect_invalid("JUNCTION_PORT", "80abc", JN_PROGRAM_GATEWAY);
    expect_invalid("JUNCTION_PORT", "-1", JN_PROGRAM_GATEWAY);
    expect_invalid("JUNCTION_WORKER_PORT", "0", JN_PROGRAM_WORKER);
    expect_invalid("JUNCTION_TOPIC_PREFIX", "bad prefix", JN_PROGRAM_GATEWAY);
    expect_invalid("JUNCTION_TOPIC_PARTITIONS", "0", JN_PROGRAM_GATEWAY);
    expect_invalid("JUNCTION_LOG_LEVEL", "loud", JN_PROGRAM_GATEWAY);
    expect_invalid("JUNCTION_PG_STATEMENT_TIMEOUT_MS", "0", JN_PROGRAM_GATEWAY);
    expect_invalid("JUNCTION_PG_LOCK_TIMEOUT_MS", "5s", JN_PROGRAM_GATEWAY);
    expect_invalid("JUNCTION_PG_QUERY_DEADLINE_MS", "99", JN_PROGRAM_GATEWAY);
    expect_invalid("JUNCTION_PG_CONNECT_TIMEOUT_S", "1", JN_PROGRAM_GATEWAY);
    expect_invalid("JUNCTION_ENCRYPTION_KEY", "c2hvcnQ=", JN_PROGRAM_GATEWAY);
    expect_invalid("JUNCTION_ENCRYPTION_KEY", "not base64 at all!", JN_PROGRAM_GATEWAY);
    expect_invalid("JUNCTION_SECRET_KEY_DEV", "short", JN_PROGRAM_GATEWAY);
    expect_invalid("JUNCTION_SECRET_KEY_PROD", "has a space in the key", JN_PROGRAM_GATEWAY);
}

static void test_missing_required(void **state)
{
    (void)state;
    const char *required[] = {"JUNCTION_DATABASE_URL", "JUNCTION_KAFKA_BROKERS",
                              "JUNCTION_ENCRYPTION_KEY"};
    for (size_t i = 0; i < 3; i++) {
        fake_env_t env;
        valid_env(&env);
        put(&env, required[i], "");
        jn_config_t cfg;
        char why[512] = "";
        assert_int_equal(load(&env, JN_PROGRAM_WORKER, &cfg, why), JN_ERR_INVALID);
        assert_non_null(strstr(why, required[i]));
        assert_non_null(strstr(why, "missing"));
    }
    /* Tools do not need the encryption key. */
    fake_env_t env;
    valid_env(&env);
    put(&env, "JUNCTION_ENCRYPTION_KEY", "");
    jn_config_t cfg;
    char why[512] = "";
    assert_int_equal(load(&env, JN_PROGRAM_TOOL, &cfg, why), JN_OK);
    assert_false(cfg.has_encryption_key);
}

static void test_secret_not_echoed(void **state)
{
    (void)state;
    fake_env_t env;
    valid_env(&env);
    put(&env, "JUNCTION_SECRET_KEY_DEV", "super secret value with spaces");
    jn_config_t cfg;
    char why[512] = "";
    assert_int_equal(load(&env, JN_PROGRAM_GATEWAY, &cfg, why), JN_ERR_INVALID);
    assert_null(strstr(why, "super secret"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),          cmocka_unit_test(test_overrides),
        cmocka_unit_test(test_malformed_values),  cmocka_unit_test(test_missing_required),
        cmocka_unit_test(test_secret_not_echoed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* Unit tests for common/core/crypto.c: sealing, tamper detection, rotation, encodings. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "core/crypto.h"

static const unsigned char key_a[32] = "0123456789abcdef0123456789abcdef";
static const unsigned char key_b[32] = "fedcba9876543210fedcba9876543210";

static void test_seal_open_roundtrip(void **state)
{
    (void)state;
    jn_crypto_keyring_t ring;
    jn_crypto_keyring_init(&ring, key_a);
    char *blob = NULL;
    const char *secret = "{\"access_token\":\"gho_secret\"}";
    assert_int_equal(jn_crypto_seal(&ring, secret, strlen(secret), "conn:1", 6, &blob), JN_OK);
    assert_null(strstr(blob, "gho_secret"));
    char *plain = NULL;
    size_t len = 0;
    assert_int_equal(jn_crypto_open(&ring, blob, "conn:1", 6, &plain, &len), JN_OK);
    assert_int_equal(len, strlen(secret));
    assert_string_equal(plain, secret);
    free(plain);

    /* Two seals of the same text differ (fresh IV). */
    char *blob2 = NULL;
    assert_int_equal(jn_crypto_seal(&ring, secret, strlen(secret), "conn:1", 6, &blob2), JN_OK);
    assert_string_not_equal(blob, blob2);
    free(blob2);
    free(blob);
    jn_crypto_keyring_cleanup(&ring);
}

static void test_wrong_aad_or_tamper_fails(void **state)
{
    (void)state;
    jn_crypto_keyring_t ring;
    jn_crypto_keyring_init(&ring, key_a);
    char *blob = NULL;
    assert_int_equal(jn_crypto_seal(&ring, "hello", 5, "row:1", 5, &blob), JN_OK);
    char *plain = NULL;
    size_t len = 0;
    /* Moved to another row: the associated data differs. */
    assert_int_equal(jn_crypto_open(&ring, blob, "row:2", 5, &plain, &len), JN_ERR_INVALID);
    assert_null(plain);
    /* One character of the ciphertext changed. */
    size_t n = strlen(blob);
    blob[n - 3] = blob[n - 3] == 'A' ? 'B' : 'A';
    assert_int_equal(jn_crypto_open(&ring, blob, "row:1", 5, &plain, &len), JN_ERR_INVALID);
    assert_int_equal(jn_crypto_open(&ring, "garbage", "row:1", 5, &plain, &len), JN_ERR_INVALID);
    assert_int_equal(jn_crypto_open(&ring, "", "row:1", 5, &plain, &len), JN_ERR_INVALID);
    free(blob);
}

static void test_rotation(void **state)
{
    (void)state;
    jn_crypto_keyring_t old_ring, new_ring, other;
    jn_crypto_keyring_init(&old_ring, key_a);
    char *blob = NULL;
    assert_int_equal(jn_crypto_seal(&old_ring, "v", 1, NULL, 0, &blob), JN_OK);
    jn_crypto_keyring_init(&new_ring, key_b);
    assert_int_equal(jn_crypto_keyring_add_retired(&new_ring, key_a), JN_OK);
    assert_string_not_equal(new_ring.keys[0].id, new_ring.keys[1].id);
    char *plain = NULL;
    size_t len = 0;
    assert_int_equal(jn_crypto_open(&new_ring, blob, NULL, 0, &plain, &len), JN_OK);
    assert_string_equal(plain, "v");
    free(plain);
    /* A ring without the old key cannot open it. */
    jn_crypto_keyring_init(&other, key_b);
    assert_int_equal(jn_crypto_open(&other, blob, NULL, 0, &plain, &len), JN_ERR_INVALID);
    free(blob);
}

static void test_base64(void **state)
{
    (void)state;
    const char *cases[][2] = {{"", ""},
                              {"f", "Zg=="},
                              {"fo", "Zm8="},
                              {"foo", "Zm9v"},
                              {"foob", "Zm9vYg=="},
                              {"fooba", "Zm9vYmE="},
                              {"foobar", "Zm9vYmFy"}};
    for (size_t i = 0; i < 7; i++) {
        char enc[32];
        jn_base64_encode((const unsigned char *)cases[i][0], strlen(cases[i][0]), enc);
        assert_string_equal(enc, cases[i][1]);
        unsigned char dec[32];
        size_t n = 0;
        assert_int_equal(jn_base64_decode(enc, strlen(enc), dec, sizeof dec, &n), JN_OK);
        assert_int_equal(n, strlen(cases[i][0]));
        assert_memory_equal(dec, cases[i][0], n);
    }
    unsigned char out[4];
    size_t n;
    assert_int_equal(jn_base64_decode("Zm9v!", 5, out, sizeof out, &n), JN_ERR_INVALID);
    assert_int_equal(jn_base64_decode("Z", 1, out, sizeof out, &n), JN_ERR_INVALID);
    assert_int_equal(jn_base64_decode("Zm9vYmFy", 8, out, sizeof out, &n), JN_ERR_TOO_LARGE);
}

/* Only the one canonical spelling of some bytes decodes (RFC 4648 section 3.5): anything
 * else could smuggle a second meaning past a check made on the text. */
static void test_base64_strict(void **state)
{
    (void)state;
    static const char *const refused[] = {
        "Zg",       /* padding missing */
        "Zm8",      /* padding missing */
        "Zg=",      /* one '=' where two are needed */
        "Zm9v=",    /* padding on a whole quad */
        "Zm9v====", /* a quad of padding */
        "Zg===",    /* three '=' */
        "Z===",     /* padding where data must be */
        "=Zg=",     /* '=' first */
        "Zh==",     /* non-zero bits left over after one byte ('h' = 0b100001) */
        "Zm9=",     /* non-zero bits left over after two bytes ('9' = 0b111101) */
        "Zg==Zg==", /* data after padding */
        "Zg==\n",   /* a character after padding */
        "Zm 9v",    /* whitespace */
        "Zm9v\n",   /* a trailing newline */
        "Zm-v",     /* the URL-safe alphabet */
        "Zm_v",
    };
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        unsigned char out[16];
        size_t n = 0;
        if (jn_base64_decode(refused[i], strlen(refused[i]), out, sizeof out, &n) != JN_ERR_INVALID)
            fail_msg("'%s' was accepted", refused[i]);
    }
    /* The canonical spellings of the same bytes still decode, and so does the empty text. */
    static const char *const accepted[][2] = {
        {"Zg==", "f"}, {"Zm8=", "fo"}, {"Zm9v", "foo"}, {"", ""}, {"+/+/", "\xfb\xff\xbf"}};
    for (size_t i = 0; i < sizeof accepted / sizeof accepted[0]; i++) {
        unsigned char out[16];
        size_t n = 99;
        assert_int_equal(
            jn_base64_decode(accepted[i][0], strlen(accepted[i][0]), out, sizeof out, &n), JN_OK);
        assert_int_equal(n, strlen(accepted[i][1]));
        assert_memory_equal(out, accepted[i][1], n);
    }
    /* Every byte value survives a round trip at every length modulo 3. */
    unsigned char bytes[256], back[256];
    for (int i = 0; i < 256; i++)
        bytes[i] = (unsigned char)(255 - i);
    for (size_t len = 0; len <= 6; len++) {
        char enc[16];
        size_t n = 0;
        jn_base64_encode(bytes + 250 - len, len, enc);
        assert_int_equal(jn_base64_decode(enc, strlen(enc), back, sizeof back, &n), JN_OK);
        assert_int_equal(n, len);
        assert_memory_equal(back, bytes + 250 - len, len);
    }
}

static void test_hmac_known_vector(void **state)
{
    (void)state;
    /* RFC 4231 test case 2. */
    unsigned char mac[32];
    const char *msg = "what do ya want for nothing?";
    jn_crypto_hmac_sha256("Jefe", 4, msg, strlen(msg), mac);
    char hex[65];
    jn_hex_encode(mac, 32, hex);
    assert_string_equal(hex, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    assert_true(jn_crypto_equal("abc", "abc", 3));
    assert_false(jn_crypto_equal("abc", "abd", 3));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_seal_open_roundtrip),
        cmocka_unit_test(test_wrong_aad_or_tamper_fails),
        cmocka_unit_test(test_rotation),
        cmocka_unit_test(test_base64),
        cmocka_unit_test(test_base64_strict),
        cmocka_unit_test(test_hmac_known_vector),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * crypto.c - AES-256-GCM sealing, hashes, encodings on OpenSSL.
 *
 * Blob layout: "<key id>:" then base64 of IV (12 bytes) || ciphertext || tag (16 bytes).
 * The key id lets a keyring pick the right key after a rotation; it is derived from the
 * key itself, so operators never have to name keys.
 */
#include "core/crypto.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/core_names.h>
#include <openssl/hmac.h>
#include <openssl/params.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define IV_LEN 12
#define TAG_LEN 16

static void derive_key_id(const unsigned char key[JN_CRYPTO_KEY_LEN],
                          char id[JN_CRYPTO_KEY_ID_LEN + 1])
{
    static const char label[] = "junction-key-id";
    unsigned char buf[sizeof label - 1 + JN_CRYPTO_KEY_LEN];
    memcpy(buf, label, sizeof label - 1);
    memcpy(buf + sizeof label - 1, key, JN_CRYPTO_KEY_LEN);
    unsigned char digest[32];
    jn_crypto_sha256(buf, sizeof buf, digest);
    jn_secure_wipe(buf, sizeof buf);
    jn_hex_encode(digest, JN_CRYPTO_KEY_ID_LEN / 2, id);
}

void jn_crypto_keyring_init(jn_crypto_keyring_t *ring, const unsigned char key[JN_CRYPTO_KEY_LEN])
{
    memset(ring, 0, sizeof *ring);
    memcpy(ring->keys[0].key, key, JN_CRYPTO_KEY_LEN);
    derive_key_id(key, ring->keys[0].id);
    ring->count = 1;
}

jn_err_t jn_crypto_keyring_add_retired(jn_crypto_keyring_t *ring,
                                       const unsigned char key[JN_CRYPTO_KEY_LEN])
{
    if (ring->count >= JN_CRYPTO_MAX_KEYS)
        return JN_ERR_TOO_LARGE;
    jn_crypto_key_t *k = &ring->keys[ring->count++];
    memcpy(k->key, key, JN_CRYPTO_KEY_LEN);
    derive_key_id(key, k->id);
    return JN_OK;
}

void jn_crypto_keyring_cleanup(jn_crypto_keyring_t *ring)
{
    jn_secure_wipe(ring, sizeof *ring);
}

jn_err_t jn_crypto_seal(const jn_crypto_keyring_t *ring, const void *plain, size_t plain_len,
                        const void *aad, size_t aad_len, char **out)
{
    *out = NULL;
    if (ring->count < 1 || plain_len > (1u << 30))
        return JN_ERR_INVALID;
    size_t raw_len = IV_LEN + plain_len + TAG_LEN;
    unsigned char *raw = malloc(raw_len);
    char *blob = malloc(JN_CRYPTO_KEY_ID_LEN + 1 + 4 * ((raw_len + 2) / 3) + 1);
    if (!raw || !blob)
        abort();
    jn_crypto_random(raw, IV_LEN);

    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    int len = 0, ok = ctx != NULL;
    ok = ok && EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL);
    ok = ok && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, IV_LEN, NULL);
    ok = ok && EVP_EncryptInit_ex(ctx, NULL, NULL, ring->keys[0].key, raw);
    if (ok && aad_len > 0)
        ok = EVP_EncryptUpdate(ctx, NULL, &len, aad, (int)aad_len);
    ok = ok && EVP_EncryptUpdate(ctx, raw + IV_LEN, &len, plain, (int)plain_len);
    ok = ok && EVP_EncryptFinal_ex(ctx, raw + IV_LEN + len, &len);
    ok = ok && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, TAG_LEN, raw + IV_LEN + plain_len);
    EVP_CIPHER_CTX_free(ctx);
    if (!ok) {
        free(raw);
        free(blob);
        return JN_ERR_INTERNAL;
    }
    memcpy(blob, ring->keys[0].id, JN_CRYPTO_KEY_ID_LEN);
    blob[JN_CRYPTO_KEY_ID_LEN] = ':';
    jn_base64_encode(raw, raw_len, blob + JN_CRYPTO_KEY_ID_LEN + 1);
    jn_secure_wipe(raw, raw_len);
    free(raw);
    *out = blob;
    return JN_OK;
}

jn_err_t jn_crypto_open(const jn_crypto_keyring_t *ring, const char *blob, const void *aad,
                        size_t aad_len, char **plain, size_t *plain_len)
{
    *plain = NULL;
    *plain_len = 0;
    size_t blob_len = strlen(blob);
    if (blob_len < JN_CRYPTO_KEY_ID_LEN + 2 || blob[JN_CRYPTO_KEY_ID_LEN] != ':')
        return JN_ERR_INVALID;
    const jn_crypto_key_t *key = NULL;
    for (int i = 0; i < ring->count; i++) {
        if (memcmp(ring->keys[i].id, blob, JN_CRYPTO_KEY_ID_LEN) == 0) {
            key = &ring->keys[i];
            break;
        }
    }
    if (!key)
        return JN_ERR_INVALID;

    const char *b64 = blob + JN_CRYPTO_KEY_ID_LEN + 1;
    size_t b64_len = blob_len - JN_CRYPTO_KEY_ID_LEN - 1;
    size_t cap = b64_len / 4 * 3 + 3;
    unsigned char *raw = malloc(cap);
    if (!raw)
        abort();
    size_t raw_len = 0;
    if (jn_base64_decode(b64, b64_len, raw, cap, &raw_len) != JN_OK || raw_len < IV_LEN + TAG_LEN) {
        free(raw);
        return JN_ERR_INVALID;
    }
    size_t ct_len = raw_len - IV_LEN - TAG_LEN;
    char *out = malloc(ct_len + 1);
    if (!out)
        abort();

    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    int len = 0, ok = ctx != NULL;
    ok = ok && EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL);
    ok = ok && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, IV_LEN, NULL);
    ok = ok && EVP_DecryptInit_ex(ctx, NULL, NULL, key->key, raw);
    if (ok && aad_len > 0)
        ok = EVP_DecryptUpdate(ctx, NULL, &len, aad, (int)aad_len);
    ok = ok && EVP_DecryptUpdate(ctx, (unsigned char *)out, &len, raw + IV_LEN, (int)ct_len);
    ok = ok && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, TAG_LEN, raw + IV_LEN + ct_len);
    ok = ok && EVP_DecryptFinal_ex(ctx, (unsigned char *)out + len, &len) > 0;
    EVP_CIPHER_CTX_free(ctx);
    jn_secure_wipe(raw, raw_len);
    free(raw);
    if (!ok) {
        jn_secure_wipe(out, ct_len + 1);
        free(out);
        return JN_ERR_INVALID;
    }
    out[ct_len] = '\0';
    *plain = out;
    *plain_len = ct_len;
    return JN_OK;
}

void jn_crypto_hmac_sha256(const void *key, size_t key_len, const void *msg, size_t msg_len,
                           unsigned char out[32])
{
    unsigned int out_len = 32;
    if (!HMAC(EVP_sha256(), key, (int)key_len, msg, msg_len, out, &out_len))
        abort();
}

void jn_crypto_hmac_sha256_parts(const void *key, size_t key_len, const void *const *parts,
                                 const size_t *lens, size_t n, unsigned char out[32])
{
    EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    EVP_MAC_CTX *ctx = mac ? EVP_MAC_CTX_new(mac) : NULL;
    char digest[] = "SHA256";
    OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string("digest", digest, 0),
                           OSSL_PARAM_construct_end()};
    /* OpenSSL refuses an empty key pointer; an empty key is still a key. */
    static const unsigned char none[1];
    bool ok = ctx && EVP_MAC_init(ctx, key_len ? key : none, key_len, params) == 1;
    for (size_t i = 0; ok && i < n; i++)
        ok = EVP_MAC_update(ctx, parts[i], lens[i]) == 1;
    size_t out_len = 0;
    ok = ok && EVP_MAC_final(ctx, out, &out_len, 32) == 1 && out_len == 32;
    EVP_MAC_CTX_free(ctx);
    EVP_MAC_free(mac);
    if (!ok)
        abort(); /* only fails on OpenSSL internal errors */
}

void jn_crypto_sha1(const void *msg, size_t msg_len, unsigned char out[20])
{
    unsigned int n = 20;
    if (!EVP_Digest(msg, msg_len, out, &n, EVP_sha1(), NULL))
        abort();
}

void jn_crypto_sha256(const void *msg, size_t msg_len, unsigned char out[32])
{
    SHA256(msg, msg_len, out);
}

void jn_crypto_sha256_hex(const char *text, char out[65])
{
    unsigned char digest[32];
    jn_crypto_sha256(text, strlen(text), digest);
    jn_hex_encode(digest, sizeof digest, out);
}

void jn_crypto_uuid4(char out[37])
{
    unsigned char b[16];
    jn_crypto_random(b, sizeof b);
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
    char hex[33];
    jn_hex_encode(b, sizeof b, hex);
    snprintf(out, 37, "%.8s-%.4s-%.4s-%.4s-%.12s", hex, hex + 8, hex + 12, hex + 16, hex + 20);
    jn_secure_wipe(hex, sizeof hex);
    jn_secure_wipe(b, sizeof b);
}

bool jn_crypto_equal(const void *a, const void *b, size_t len)
{
    return CRYPTO_memcmp(a, b, len) == 0;
}

void jn_crypto_random(void *buf, size_t len)
{
    if (RAND_bytes(buf, (int)len) != 1) {
        fprintf(stderr, "crypto: the random number generator failed\n");
        abort();
    }
}

void jn_hex_encode(const unsigned char *bin, size_t len, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < len; i++) {
        out[2 * i] = digits[bin[i] >> 4];
        out[2 * i + 1] = digits[bin[i] & 0xf];
    }
    out[2 * len] = '\0';
}

static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

void jn_base64_encode(const unsigned char *bin, size_t len, char *out)
{
    size_t o = 0, i = 0;
    for (; i + 2 < len; i += 3) {
        unsigned v = (unsigned)bin[i] << 16 | (unsigned)bin[i + 1] << 8 | bin[i + 2];
        out[o++] = b64_alphabet[v >> 18];
        out[o++] = b64_alphabet[(v >> 12) & 63];
        out[o++] = b64_alphabet[(v >> 6) & 63];
        out[o++] = b64_alphabet[v & 63];
    }
    if (i < len) {
        unsigned v = (unsigned)bin[i] << 16 | (i + 1 < len ? (unsigned)bin[i + 1] << 8 : 0);
        out[o++] = b64_alphabet[v >> 18];
        out[o++] = b64_alphabet[(v >> 12) & 63];
        out[o++] = i + 1 < len ? b64_alphabet[(v >> 6) & 63] : '=';
        out[o++] = '=';
    }
    out[o] = '\0';
}

static int b64_value(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

jn_err_t jn_base64_decode(const char *text, size_t text_len, unsigned char *out, size_t cap,
                          size_t *out_len)
{
    /* Canonical RFC 4648 only: whole quads, '=' only as the last one or two characters,
     * and the bits the padding leaves over all zero. Any other text has a second encoding
     * of the same bytes, or none. */
    if (text_len % 4 != 0)
        return JN_ERR_INVALID;
    size_t pad = 0;
    if (text_len > 0 && text[text_len - 1] == '=')
        pad = text_len > 1 && text[text_len - 2] == '=' ? 2 : 1;
    size_t data_len = text_len - pad;
    size_t o = 0;
    unsigned acc = 0;
    int bits = 0;
    for (size_t i = 0; i < data_len; i++) {
        int v = b64_value(text[i]);
        if (v < 0)
            return JN_ERR_INVALID;
        acc = ((acc << 6) | (unsigned)v) & 0xfff;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (o >= cap)
                return JN_ERR_TOO_LARGE;
            out[o++] = (unsigned char)(acc >> bits);
        }
    }
    /* What is left over is 2 bits (one '=') or 4 bits (two): they must be zero. */
    if (bits > 0 && (acc & ((1u << bits) - 1)) != 0)
        return JN_ERR_INVALID;
    *out_len = o;
    return JN_OK;
}

void jn_secure_wipe(void *buf, size_t len)
{
    OPENSSL_cleanse(buf, len);
}

bool jn_uuid_shaped(const char *text, bool any_case)
{
    if (strlen(text) != 36)
        return false;
    for (int i = 0; i < 36; i++) {
        bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        char c = text[i];
        bool hex =
            (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (any_case && c >= 'A' && c <= 'F');
        if (dash ? c != '-' : !hex)
            return false;
    }
    return true;
}

/*
 * crypto.h - the cryptography Junction needs, on OpenSSL EVP, in one place.
 *
 * - AES-256-GCM sealing of secrets at rest: a fresh 12-byte random IV per call, a
 *   16-byte tag, and caller-chosen associated data that binds the ciphertext to its row
 *   (so a ciphertext copied into another row does not open). Each sealed blob carries
 *   the id of the key that sealed it, so keys can be rotated: a keyring holds the
 *   current key plus retired ones that still open old blobs.
 * - HMAC-SHA256 and SHA-256, constant-time comparison, random bytes, base64 and hex.
 * - jn_secure_wipe for every buffer that held a secret.
 * All functions are thread-safe.
 */
#ifndef JN_CRYPTO_H
#define JN_CRYPTO_H

#include <stdbool.h>
#include <stddef.h>

#include "core/err.h"

#define JN_CRYPTO_KEY_LEN 32
#define JN_CRYPTO_KEY_ID_LEN 8 /* hex characters */
#define JN_CRYPTO_MAX_KEYS 8

typedef struct {
    unsigned char key[JN_CRYPTO_KEY_LEN];
    char id[JN_CRYPTO_KEY_ID_LEN + 1]; /* first 8 hex digits of SHA-256("junction-key-id" || key) */
} jn_crypto_key_t;

typedef struct {
    jn_crypto_key_t keys[JN_CRYPTO_MAX_KEYS]; /* keys[0] seals; all of them open */
    int count;
} jn_crypto_keyring_t;

/* Sets up a keyring whose sealing key is key (copied). */
void jn_crypto_keyring_init(jn_crypto_keyring_t *ring, const unsigned char key[JN_CRYPTO_KEY_LEN]);
/* Adds a retired key that can still open old blobs. JN_ERR_TOO_LARGE when full. */
jn_err_t jn_crypto_keyring_add_retired(jn_crypto_keyring_t *ring,
                                       const unsigned char key[JN_CRYPTO_KEY_LEN]);
/* Wipes every key. */
void jn_crypto_keyring_cleanup(jn_crypto_keyring_t *ring);

/* Seals plain under the ring's current key. *out is a new NUL-terminated text blob
 * "<key id>:<base64(iv | ciphertext | tag)>" (caller frees with free()). */
jn_err_t jn_crypto_seal(const jn_crypto_keyring_t *ring, const void *plain, size_t plain_len,
                        const void *aad, size_t aad_len, char **out);

/* Opens a blob made by jn_crypto_seal with any key of the ring. *plain is a new buffer,
 * NUL-terminated for convenience, *plain_len its length; the caller wipes and frees it.
 * JN_ERR_INVALID when the blob is malformed, its key unknown or authentication fails
 * (tampered blob or wrong associated data). */
jn_err_t jn_crypto_open(const jn_crypto_keyring_t *ring, const char *blob, const void *aad,
                        size_t aad_len, char **plain, size_t *plain_len);

/* HMAC-SHA256 of msg under key into out (32 bytes). */
void jn_crypto_hmac_sha256(const void *key, size_t key_len, const void *msg, size_t msg_len,
                           unsigned char out[32]);
/* HMAC-SHA256 of the concatenation of n pieces (parts[i], lens[i] bytes each) into out,
 * without joining them in memory (a signed message made of a timestamp and a large body). */
void jn_crypto_hmac_sha256_parts(const void *key, size_t key_len, const void *const *parts,
                                 const size_t *lens, size_t n, unsigned char out[32]);
/* SHA-1 of msg into out (20 bytes): only for protocols that mandate it (the WebSocket
 * handshake); never for security decisions. */
void jn_crypto_sha1(const void *msg, size_t msg_len, unsigned char out[20]);
/* SHA-256 of msg into out (32 bytes). */
void jn_crypto_sha256(const void *msg, size_t msg_len, unsigned char out[32]);

/* Lowercase hex SHA-256 of a string (how secret keys, session tokens and OAuth states are
 * stored). */
void jn_crypto_sha256_hex(const char *text, char out[65]);

/* A random version-4 UUID, "xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx" (secret keys,
 * connection ids, WebSocket client ids). */
void jn_crypto_uuid4(char out[37]);

/* True when text has a UUID's shape: 8-4-4-4-12 hex digits, lowercase only unless
 * any_case. */
bool jn_uuid_shaped(const char *text, bool any_case);

/* Compares in time that depends only on len. */
bool jn_crypto_equal(const void *a, const void *b, size_t len);

/* Fills buf with cryptographically strong random bytes; aborts if the RNG fails. */
void jn_crypto_random(void *buf, size_t len);

/* Writes the lowercase hex of bin into out (capacity >= 2*len+1). */
void jn_hex_encode(const unsigned char *bin, size_t len, char *out);

/* Standard base64 with padding. encode: out capacity >= 4*((len+2)/3)+1. */
void jn_base64_encode(const unsigned char *bin, size_t len, char *out);
/* Decodes canonical standard base64 (RFC 4648 section 3.5): padded to whole quads, '='
 * only at the end, unused trailing bits zero, no whitespace. JN_ERR_INVALID on anything
 * else, JN_ERR_TOO_LARGE when the result exceeds cap. */
jn_err_t jn_base64_decode(const char *text, size_t text_len, unsigned char *out, size_t cap,
                          size_t *out_len);

/* Overwrites len bytes in a way the compiler may not optimise away. */
void jn_secure_wipe(void *buf, size_t len);

#endif

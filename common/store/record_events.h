/*
 * record_events.h - the record-change event, version 1: what <prefix>.records carries for
 * every committed change of a record, made from the outbox rows the records store writes
 * (docs/record-change-topics.md, docs/record-change-event.schema.json).
 *
 * An outbox row holds one committed batch of one scope (connection, model): the changes
 * as a JSON array in seq order, each {"event_id","record_id","action","seq","cursor",
 * "payload"} (store/records.h). jn_record_changes_parse splits that text into its changes
 * without building a JSON tree (a row holds up to 10,000 changes of up to 1 MB each), and
 * jn_record_event_encode writes one change as the event's value and key:
 *
 *   value {"version":1,"event_id":…,"environment_id":…,"environment":…,
 *          "provider_config_key":…,"provider":…,"connection_id":…,"model":…,
 *          "record_id":…,"action":…,"seq":…,"cursor":…,"job_id":…,"changed_at":…,
 *          "payload":…[,"payload_omitted":"too_large"]}
 *   key   [environment_id,"provider_config_key","connection_id","model","record_id"]
 *
 * The key is the record's identity as canonical JSON, so every change of one record goes
 * to one partition whichever writer (a sync, a purge) made it. The payload is the record's
 * canonical JSON as stored, opened first when the environment seals payloads: the topic
 * carries plaintext. An event that would pass max_bytes goes without its payload (null,
 * with "payload_omitted"): the change still arrives, and the record is read from the
 * records API at its cursor.
 *
 * Pure functions over borrowed text; thread-safe.
 */
#ifndef JN_RECORD_EVENTS_H
#define JN_RECORD_EVENTS_H

#include <stdbool.h>
#include <stddef.h>

#include "core/buf.h"
#include "core/crypto.h"
#include "core/err.h"

#define JN_RECORD_EVENT_VERSION 1
/* Kafka headers every event carries: its event id, and its version in decimal. */
#define JN_RECORD_EVENT_ID_HEADER "junction-event-id"
#define JN_RECORD_EVENT_VERSION_HEADER "junction-event-version"
/* What headers and Kafka's framing add to key and value, counted against max_bytes. */
#define JN_RECORD_EVENT_OVERHEAD 256

/* One outbox row as the relay reads it. Strings are borrowed and NUL-terminated. */
typedef struct {
    long long id; /* record_outbox.id */
    long long environment_id;
    const char *environment; /* its name; NULL when unknown */
    const char *integration; /* the integration's unique key */
    const char *provider;    /* NULL when unknown */
    const char *connection;  /* the connection id */
    const char *model;
    long long scope_id;
    const char *job_id;     /* the sync run or job that wrote it; NULL for a purge */
    const char *changed_at; /* ISO 8601 UTC with microseconds ("…T…:…:….123456Z") */
    bool sealed;            /* payloads are sealed blobs (JSON strings) */
    const char *changes;    /* the JSON array */
    size_t changes_len;
} jn_outbox_row_t;

/* One change of a row: spans into the row's changes text. */
typedef struct {
    char event_id[37];
    const char *record_id; /* the JSON string token, quotes included */
    size_t record_id_len;
    const char *action; /* "ADDED", "UPDATED" or "DELETED" (static) */
    long long seq;
    const char *cursor; /* the cursor's text, without quotes */
    size_t cursor_len;
    const char *payload; /* the JSON value as written ("null" for a delete) */
    size_t payload_len;
} jn_record_change_t;

/* Splits a row's changes text into its changes: *out is a new array (free()) of *n. Every
 * member is checked (a lowercase UUID event id, a known action, a positive seq, a
 * base64url cursor, a record id string, any JSON value as payload). JN_ERR_INVALID with
 * why when the text is not such an array. */
jn_err_t jn_record_changes_parse(const char *changes, size_t len, jn_record_change_t **out,
                                 size_t *n, char *why, size_t why_len);

/* Writes change c of row as its event's value and key (value and key are emptied first).
 * A sealed payload is opened with ring. The payload is left out (null, with
 * "payload_omitted":"too_large") when omit is true or when key and value with
 * JN_RECORD_EVENT_OVERHEAD would pass max_bytes; *omitted says which was written.
 * JN_ERR_INTERNAL when a sealed payload does not open; JN_ERR_INVALID when the record id
 * is not a JSON string; JN_ERR_TOO_LARGE when even the event without payload passes
 * max_bytes (or a buffer's cap). */
jn_err_t jn_record_event_encode(const jn_outbox_row_t *row, const jn_record_change_t *c,
                                const jn_crypto_keyring_t *ring, size_t max_bytes, bool omit,
                                jn_buf_t *key, jn_buf_t *value, bool *omitted);

#endif

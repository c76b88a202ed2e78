/*
 * webhook_routing.h - a provider webhook's payload as scripts and the app see it, and where
 * it goes: the values at the routing path that pick its connections, the part of a batch
 * meant for each of them, and its event type (docs/providers.md#webhook).
 *
 * A payload is a JSON object, or an array (a batch of events, as HubSpot sends): the
 * routing path is read in the object, or in each element of the array. A batch that holds
 * events of several connections is split, so that a connection's scripts see only its own
 * events. Pure functions over json-c values; thread-safe on values the caller owns.
 */
#ifndef JN_WEBHOOK_ROUTING_H
#define JN_WEBHOOK_ROUTING_H

#include <json-c/json.h>
#include <stddef.h>

#define JN_WEBHOOK_ROUTE_VALUE_MAX 255 /* bytes of a routing value */
#define JN_WEBHOOK_FORM_FIELDS_MAX 1000

/* The payload of a webhook body: its JSON when it is JSON; the fields of a form
 * (Content-Type application/x-www-form-urlencoded) as an object of strings (a repeated
 * field keeps its last value; a value that does not decode to UTF-8 text stays encoded);
 * otherwise the text itself as a string. body is UTF-8 text without NUL. New reference. */
json_object *jn_webhook_payload(const char *body, size_t len, const char *content_type);

/* The routing values of payload at path: the value of an object, or of each element of an
 * array, distinct and in order of first appearance; strings of at most
 * JN_WEBHOOK_ROUTE_VALUE_MAX bytes as they are, integers in decimal, anything else
 * skipped; at most max of them. New array of strings. */
json_object *jn_webhook_route_values(json_object *payload, const char *path, size_t max);

/* What one routing value's connections receive: payload itself (a new reference) when it
 * is not an array; otherwise a new array of the elements whose value at path is value. */
json_object *jn_webhook_payload_part(json_object *payload, const char *path, const char *value);

/* The event type at path: in payload when it is an object, in the first element that has
 * one when it is an array. Borrowed from payload; NULL when there is none. */
const char *jn_webhook_event_type(json_object *payload, const char *path);

#endif

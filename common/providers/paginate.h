/*
 * paginate.h - the pagination strategies of docs/providers.md ("proxy.paginate"), in one
 * place.
 *
 * Pure logic, no HTTP: a paginator is built from a provider's paginate config (possibly
 * overridden field by field by a caller's), says which query parameters the first request
 * carries, and then, fed each response in turn, returns that page's records and what to
 * request next: a URL (link) or parameters to set on the original request (cursor,
 * offset, page). A walk always ends: on the strategy's own stop condition, on an empty
 * page, on a cursor or link already seen in this walk, or after max_pages pages.
 *
 * Strategies:
 *   cursor  the cursor at cursor_path_in_response, sent as cursor_name_in_request; stop
 *           when it is missing, null, "" or one already sent. Numbers are sent as text.
 *   link    the URL in the RFC 8288 Link header entry whose rel includes
 *           link_rel_in_response_header, else the URL at link_path_in_response_body; stop
 *           when there is none, it is "" or it was already returned in this walk.
 *   offset  offset_name_in_request, 0 at first, grows by the records received
 *           ("by-response-size", the default) or by 1 ("per-page" offset_calculation_method);
 *           stop on a page with fewer records than the limit (when one is sent) or none.
 *   page    page_name_in_request, 1 at first, then 2, 3...; stop on an empty page, or one
 *           with fewer records than the limit (when one is sent).
 * The limit goes out as limit_name_in_request, on every request, when both it and a
 * positive limit are given; otherwise no limit is sent and short pages mean nothing.
 *
 * Paths (response_path, cursor_path_in_response, link_path_in_response_body) are dot
 * separated. At each level the whole remaining path is first tried as one key, so a key
 * that itself contains dots, such as Microsoft Graph's "@odata.nextLink", is reached.
 * Records are the array at response_path or, without one, the body when it is an array.
 *
 * A paginator belongs to one walk and one thread. Errors are JN_ERR_INVALID (a bad config,
 * a response of the wrong shape), JN_ERR_UPSTREAM (a non-2xx status) or JN_ERR_TOO_LARGE
 * (a cursor or URL past JN_PAGINATE_MAX_VALUE), with a one-line why naming the field.
 */
#ifndef JN_PAGINATE_H
#define JN_PAGINATE_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>

#include "core/err.h"

#define JN_PAGINATE_MAX_PAGES 10000 /* default cap on the pages of one walk */
#define JN_PAGINATE_MAX_VALUE 16384 /* bytes of a cursor or next URL */

typedef enum {
    JN_PAGINATE_CURSOR,
    JN_PAGINATE_LINK,
    JN_PAGINATE_OFFSET,
    JN_PAGINATE_PAGE
} jn_paginate_type_t;

typedef struct jn_paginator jn_paginator_t;

/* Builds a paginator from provider_config (provider.proxy.paginate) merged with overrides,
 * an object with the same field names whose fields win; a null field in overrides removes
 * the provider's. Either may be NULL; neither is kept. limit is the page size to request,
 * 0 for none. JN_ERR_INVALID (why) when the merged config has no valid type, lacks a field
 * its type requires, or has a field that is not a non-empty string (or not a valid dot
 * path). *out is new (jn_paginator_free). Aborts when out of memory. why may be NULL. */
jn_err_t jn_paginator_new(json_object *provider_config, json_object *overrides, int limit,
                          jn_paginator_t **out, char *why, size_t why_len);

/* Frees p; NULL is a no-op. */
void jn_paginator_free(jn_paginator_t *p);

/* The strategy in use. */
jn_paginate_type_t jn_paginator_type(const jn_paginator_t *p);

/* Changes the cap on pages (default JN_PAGINATE_MAX_PAGES; at least 1). */
void jn_paginator_set_max_pages(jn_paginator_t *p, int max_pages);

/* Query parameters to add to the first request: a new object of name -> string, such as
 * {"limit": "50"}, {"offset": "0", "limit": "50"} or {"page": "1", "per_page": "50"}; may
 * be empty. Does not change p. */
json_object *jn_paginator_first_params(jn_paginator_t *p);

/* Feeds the response to the last request: status is its HTTP status, link_header the raw
 * Link header (NULL when absent), body the parsed JSON body (NULL when it is not JSON).
 *
 * *records is this page's records, borrowed from body (NULL when the page has no records
 * array: body not JSON, or no response_path and a body that is not an array; offset and
 * page pagination need one and fail instead). *done is true when there is no next page.
 * When not done, exactly one of *next_url (a new string, absolute or relative to the base
 * URL's origin, for link pagination) and *next_params (a new object of query parameters
 * to set or replace on the original request, limit included) is set; the other is NULL.
 *
 * A 204 status ends the walk with no records. Any other status outside 2xx is
 * JN_ERR_UPSTREAM; a response_path that is missing or not an array, a cursor that is
 * neither a string nor a number, or a link that is not a string is JN_ERR_INVALID. On
 * error *records, *next_url and *next_params are NULL and *done is true. Feeding a
 * paginator that has already said done is JN_ERR_INVALID. When the walk stops because
 * it reached max_pages, *done is true, jn_paginator_capped(p) turns true and why says so
 * (the result is still JN_OK). why may be NULL. */
jn_err_t jn_paginator_next(jn_paginator_t *p, int status, const char *link_header,
                           json_object *body, json_object **records, bool *done, char **next_url,
                           json_object **next_params, char *why, size_t why_len);

/* Number of responses fed so far. */
int jn_paginator_pages(const jn_paginator_t *p);

/* True when the walk was stopped by the max_pages cap rather than by the provider. */
bool jn_paginator_capped(const jn_paginator_t *p);

/* Finds, in the value of an RFC 8288 Link header, the first entry whose rel parameter
 * lists rel (compared without regard to case): entries are comma-separated, the URL
 * between < and > may hold commas and semicolons, rel may be quoted or not and may list
 * several relation types ("next last"). Returns a new string (caller frees), or NULL when
 * there is no such entry. Malformed entries are skipped. */
char *jn_paginate_link_find(const char *header, const char *rel);

#endif

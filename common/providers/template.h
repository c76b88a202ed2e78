/*
 * template.h - the ${...} templates of the provider catalog (docs/providers.md).
 *
 * A template is literal text with placeholders, split into alternatives by "||":
 *
 *   template    = alternative *( "||" alternative )    spaces and tabs around "||" are ignored
 *   alternative = *( text / placeholder )
 *   placeholder = "${" name "}" / "${" "base64" "(" inner ")" "}"
 *   inner       = *( text / placeholder )                 "(" and ")" in its text must balance
 *   name        = a letter or "_", then letters, digits, "_", "-" and "." (no empty dot-segment)
 *
 * Only a "||" outside every ${...} separates alternatives; a "$" not followed by "{" is
 * literal text. The engine does not decide which names exist: rendering asks a lookup
 * function, and the catalog validator walks a template to judge its names. Nesting of
 * base64() is limited to JN_TEMPLATE_MAX_DEPTH and rendered output to
 * JN_TEMPLATE_MAX_OUTPUT bytes. No globals: every function is thread-safe (as far as the
 * callbacks are). Syntax errors are JN_ERR_INVALID with a one-line why that carries the
 * byte offset ("unclosed ${ at offset 7"), for the caller to prefix with its context.
 */
#ifndef JN_TEMPLATE_H
#define JN_TEMPLATE_H

#include <stdbool.h>
#include <stddef.h>

#include "core/err.h"

#define JN_TEMPLATE_MAX_OUTPUT 65536 /* bytes of rendered text, excluding the NUL */
#define JN_TEMPLATE_MAX_NAME 128     /* bytes of a placeholder name */
#define JN_TEMPLATE_MAX_DEPTH 8      /* base64() inside base64() ... */

/* Returns the value of a placeholder name, or NULL when it has none. Names are exactly
 * what appears inside ${...}: "connectionConfig.subdomain", "credentials.username",
 * "apiKey", "accessToken" or any other name. The value must stay valid until render
 * returns. NULL and "" both leave the placeholder unresolved. */
typedef const char *(*jn_template_lookup_fn)(const char *name, void *ud);

/* Renders tmpl. The alternatives are tried from left to right and the first whose
 * placeholders all resolve wins: then *complete = true. When none does, *out is the last
 * alternative with each unresolved placeholder left as written ("${connectionConfig.x}";
 * a base64() whose text has one is left as written whole, so no resolved part of it
 * leaks) and *complete = false. lookup may be NULL: nothing resolves.
 * The whole template is checked first, so a syntax error anywhere is JN_ERR_INVALID even
 * when an earlier alternative would have won. JN_ERR_TOO_LARGE when an alternative's
 * output exceeds JN_TEMPLATE_MAX_OUTPUT. On success *out is a new string (caller frees;
 * it may hold secrets, so wipe it first); on error *out is NULL. why may be NULL. */
jn_err_t jn_template_render(const char *tmpl, jn_template_lookup_fn lookup, void *ud, char **out,
                            bool *complete, char *why, size_t why_len);

/* Checks the syntax of tmpl and, when it is valid, calls each() for every placeholder name
 * in order of appearance, including those inside base64() and repeats. each may be NULL.
 * Nothing is rendered. */
jn_err_t jn_template_check(const char *tmpl, void (*each)(const char *name, void *ud), void *ud,
                           char *why, size_t why_len);

/* The pieces of a template, as jn_template_walk reports them. */
typedef enum {
    JN_TEMPLATE_ALTERNATIVE, /* an alternative begins; text/len: its whole source, trimmed */
    JN_TEMPLATE_TEXT,        /* literal text; text/len point into the template */
    JN_TEMPLATE_NAME,        /* ${name}; text is the name, NUL-terminated */
    JN_TEMPLATE_CALL,        /* ${base64(...)}; text is "base64"; its inner pieces follow */
} jn_template_part_kind_t;

typedef struct {
    jn_template_part_kind_t kind;
    const char *text; /* valid during the callback only */
    size_t len;
    size_t offset;      /* byte offset in the template (of "${" for NAME and CALL) */
    int depth;          /* 0 at top level, 1 inside one base64(), ... */
    size_t alternative; /* 0-based index of the alternative the piece belongs to */
} jn_template_part_t;

/* Returns JN_OK to go on; anything else stops the walk and is returned as it is. */
typedef jn_err_t (*jn_template_visit_fn)(const jn_template_part_t *part, void *ud);

/* Checks the syntax of tmpl and, when it is valid, visits its pieces in order: each
 * alternative, then its text, names and calls (a call's inner pieces come right after
 * it, one level deeper). Adjacent literal text is reported as one piece. A syntax error
 * is reported before any visit. For validators that care where a name sits, such as in a
 * URL's host. */
jn_err_t jn_template_walk(const char *tmpl, jn_template_visit_fn visit, void *ud, char *why,
                          size_t why_len);

#endif

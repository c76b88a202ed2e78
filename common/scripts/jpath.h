/*
 * jpath.h - the place inside a JSON or Lua value that a message names:
 * "records[3].email", "data[\"odd key\"]".
 *
 * A fixed buffer (cut, never overrun) that grows as a walk goes down and is cut back
 * on the way up: push returns a mark, pop returns to it. Keys that are identifiers
 * read as .key, others as ["key"] (shortened); indexes as [i].
 */
#ifndef JN_JPATH_H
#define JN_JPATH_H

#include <stddef.h>

typedef struct {
    char text[128];
    size_t len;
} jn_jpath_t;

/* Starts the path at root ("" or e.g. "output"). */
void jn_jpath_init(jn_jpath_t *p, const char *root);

/* Appends a key or an index; returns the mark to pop back to. */
size_t jn_jpath_key(jn_jpath_t *p, const char *key, size_t len);
size_t jn_jpath_index(jn_jpath_t *p, long long i);

void jn_jpath_pop(jn_jpath_t *p, size_t mark);

/* The path as text, without a leading '.' (so a path from "" reads "email"). */
const char *jn_jpath_str(const jn_jpath_t *p);

#endif

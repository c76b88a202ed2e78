/*
 * arena.h - memory for one request or one job, freed in one call.
 *
 * A request allocates many small things (decoded names, parameters, copies of headers);
 * they all die together, so they come from an arena: a chain of blocks handed out by
 * bumping a pointer. Nothing is freed alone; jn_arena_reset() frees everything but keeps
 * the first block for reuse (a keep-alive connection's next request allocates nothing),
 * and jn_arena_cleanup() frees it all. Allocation aborts when the system is out of
 * memory (the project's policy outside the Lua allocator). Not thread-safe: an arena
 * belongs to one request or job at a time.
 */
#ifndef JN_ARENA_H
#define JN_ARENA_H

#include <stddef.h>

typedef struct jn_arena_block jn_arena_block_t;

typedef struct {
    jn_arena_block_t *first; /* kept across resets */
    jn_arena_block_t *current;
    size_t block_size;
} jn_arena_t;

/* Initialises an empty arena whose blocks hold block_size bytes (larger requests get a
 * block of their own). Allocates nothing yet. */
void jn_arena_init(jn_arena_t *a, size_t block_size);

/* size bytes aligned for any type; never NULL. */
void *jn_arena_alloc(jn_arena_t *a, size_t size);

/* A NUL-terminated copy of s[0..n). */
char *jn_arena_strndup(jn_arena_t *a, const char *s, size_t n);

/* Frees every block but the first, which is emptied. */
void jn_arena_reset(jn_arena_t *a);

/* Frees every block. */
void jn_arena_cleanup(jn_arena_t *a);

#endif

/*
 * arena.c - blocks chained newest first; allocation bumps within the newest.
 */
#include "core/arena.h"

#include <stdalign.h>
#include <stdlib.h>
#include <string.h>

struct jn_arena_block {
    jn_arena_block_t *next; /* older block */
    size_t used, size;
    alignas(max_align_t) unsigned char data[];
};

static jn_arena_block_t *new_block(size_t size)
{
    jn_arena_block_t *b = malloc(sizeof *b + size);
    if (!b)
        abort();
    b->next = NULL;
    b->used = 0;
    b->size = size;
    return b;
}

void jn_arena_init(jn_arena_t *a, size_t block_size)
{
    a->first = a->current = NULL;
    a->block_size = block_size ? block_size : 4096;
}

void *jn_arena_alloc(jn_arena_t *a, size_t size)
{
    size_t align = alignof(max_align_t);
    size = (size + align - 1) & ~(align - 1);
    if (size == 0)
        size = align;
    jn_arena_block_t *b = a->current;
    if (!b || b->size - b->used < size) {
        b = new_block(size > a->block_size ? size : a->block_size);
        if (!a->first) {
            a->first = b;
        } else {
            b->next = a->current;
        }
        a->current = b;
    }
    void *p = b->data + b->used;
    b->used += size;
    return p;
}

char *jn_arena_strndup(jn_arena_t *a, const char *s, size_t n)
{
    char *p = jn_arena_alloc(a, n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

void jn_arena_reset(jn_arena_t *a)
{
    jn_arena_block_t *b = a->current;
    while (b && b != a->first) {
        jn_arena_block_t *next = b->next;
        free(b);
        b = next;
    }
    a->current = a->first;
    if (a->first)
        a->first->used = 0;
}

void jn_arena_cleanup(jn_arena_t *a)
{
    jn_arena_reset(a);
    free(a->first);
    a->first = a->current = NULL;
}

/*
 * jpath.c - building the paths that messages name (see jpath.h).
 */
#include "scripts/jpath.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

void jn_jpath_init(jn_jpath_t *p, const char *root)
{
    snprintf(p->text, sizeof p->text, "%s", root ? root : "");
    p->len = strlen(p->text);
}

static size_t append(jn_jpath_t *p, int n)
{
    size_t old = p->len;
    if (n > 0)
        p->len = old + (size_t)n < sizeof p->text ? old + (size_t)n : sizeof p->text - 1;
    return old;
}

size_t jn_jpath_key(jn_jpath_t *p, const char *key, size_t len)
{
    bool plain = len > 0 && len <= 64;
    for (size_t i = 0; plain && i < len; i++) {
        char c = key[i];
        plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
                (i > 0 && c >= '0' && c <= '9');
    }
    size_t room = sizeof p->text - p->len;
    int n = plain ? snprintf(p->text + p->len, room, ".%.*s", (int)len, key)
                  : snprintf(p->text + p->len, room, "[\"%.*s\"]", (int)(len > 32 ? 32 : len), key);
    return append(p, n);
}

size_t jn_jpath_index(jn_jpath_t *p, long long i)
{
    return append(p, snprintf(p->text + p->len, sizeof p->text - p->len, "[%lld]", i));
}

void jn_jpath_pop(jn_jpath_t *p, size_t mark)
{
    p->len = mark;
    p->text[mark] = '\0';
}

const char *jn_jpath_str(const jn_jpath_t *p)
{
    return p->text[0] == '.' ? p->text + 1 : p->text;
}

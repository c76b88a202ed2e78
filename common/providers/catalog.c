/*
 * catalog.c - the provider catalog: entries validated by catalog_validate.c, kept as a
 * sorted array with their JSON text. A few hundred entries at most, built once at
 * start-up from the files compiled into the library, then read by binary search.
 */
#include "providers/catalog.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/embedded.h"

/* ---- the catalog ---- */

struct jn_catalog {
    json_object **entries; /* ascending by name */
    char **texts;          /* entries[i] as compact JSON */
    size_t count, cap;
};

static void oom(void)
{
    fputs("catalog: out of memory\n", stderr);
    abort();
}

static const char *entry_name(json_object *entry)
{
    json_object *v = NULL;
    json_object_object_get_ex(entry, "name", &v);
    return json_object_get_string(v);
}

/* The index of name, or where it would go (*found = false). */
static size_t position(const jn_catalog_t *cat, const char *name, bool *found)
{
    size_t lo = 0, hi = cat->count;
    *found = false;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int cmp = strcmp(name, entry_name(cat->entries[mid]));
        if (cmp == 0) {
            *found = true;
            return mid;
        }
        if (cmp < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo;
}

/* Adds a validated entry. */
static jn_err_t insert(jn_catalog_t *cat, json_object *entry, char *why, size_t why_len)
{
    bool found;
    const char *name = entry_name(entry);
    size_t at = position(cat, name, &found);
    if (found) {
        if (why && why_len)
            snprintf(why, why_len, "catalog: provider '%s': name: already in the catalog", name);
        return JN_ERR_CONFLICT;
    }
    if (cat->count == cat->cap) {
        size_t cap = cat->cap ? cat->cap * 2 : 64;
        json_object **entries = realloc(cat->entries, cap * sizeof *entries);
        if (!entries)
            oom();
        cat->entries = entries;
        char **texts = realloc(cat->texts, cap * sizeof *texts);
        if (!texts)
            oom();
        cat->texts = texts;
        cat->cap = cap;
    }
    size_t len = 0;
    const char *json = json_object_to_json_string_length(
        entry, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &len);
    char *text = malloc(len + 1);
    if (!json || !text)
        oom();
    memcpy(text, json, len + 1);
    memmove(cat->entries + at + 1, cat->entries + at, (cat->count - at) * sizeof *cat->entries);
    memmove(cat->texts + at + 1, cat->texts + at, (cat->count - at) * sizeof *cat->texts);
    cat->entries[at] = json_object_get(entry);
    cat->texts[at] = text;
    cat->count++;
    return JN_OK;
}

jn_catalog_t *jn_catalog_new(void)
{
    jn_catalog_t *cat = calloc(1, sizeof *cat);
    if (!cat)
        oom();
    return cat;
}

jn_err_t jn_catalog_add(jn_catalog_t *cat, json_object *entry, char *why, size_t why_len)
{
    jn_err_t err = jn_catalog_validate(entry, NULL, why, why_len);
    return err ? err : insert(cat, entry, why, why_len);
}

/* Parses one embedded file as strict JSON over exactly its bytes. */
static jn_err_t parse_file(const jn_embedded_file_t *f, const char *name, json_object **out,
                           char *why, size_t why_len)
{
    *out = NULL;
    if (f->len > INT_MAX) {
        snprintf(why, why_len, "catalog: provider '%s': %s: too large", name, f->name);
        return JN_ERR_INVALID;
    }
    struct json_tokener *tok = json_tokener_new();
    if (!tok)
        oom();
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
    json_object *obj = json_tokener_parse_ex(tok, f->data, (int)f->len);
    enum json_tokener_error jerr = json_tokener_get_error(tok);
    size_t end = json_tokener_get_parse_end(tok);
    json_tokener_free(tok);
    if (!obj || jerr != json_tokener_success) {
        json_object_put(obj);
        snprintf(why, why_len, "catalog: provider '%s': %s: invalid JSON at byte %zu: %s", name,
                 f->name, end,
                 jerr == json_tokener_continue ? "unexpected end of file"
                                               : json_tokener_error_desc(jerr));
        return JN_ERR_INVALID;
    }
    while (end < f->len && f->data[end] && strchr(" \t\r\n", f->data[end]))
        end++;
    if (end < f->len) {
        json_object_put(obj);
        snprintf(why, why_len,
                 "catalog: provider '%s': %s: unexpected text after the JSON at byte %zu", name,
                 f->name, end);
        return JN_ERR_INVALID;
    }
    *out = obj;
    return JN_OK;
}

jn_err_t jn_catalog_load_builtin(jn_catalog_t **out, char *why, size_t why_len)
{
    char scratch[8];
    if (!why || !why_len) {
        why = scratch;
        why_len = sizeof scratch;
    }
    *out = NULL;
    jn_catalog_t *cat = jn_catalog_new();
    for (size_t i = 0; i < jn_embedded_providers_count; i++) {
        const jn_embedded_file_t *f = &jn_embedded_providers[i];
        size_t n = strlen(f->name);
        if (n <= 5 || strcmp(f->name + n - 5, ".json") != 0 || n - 5 > JN_CATALOG_NAME_MAX) {
            snprintf(why, why_len, "catalog: file '%s': not named <provider name>.json", f->name);
            jn_catalog_free(cat);
            return JN_ERR_INVALID;
        }
        char name[JN_CATALOG_NAME_MAX + 1];
        memcpy(name, f->name, n - 5);
        name[n - 5] = '\0';
        json_object *entry;
        jn_err_t err = parse_file(f, name, &entry, why, why_len);
        if (!err)
            err = jn_catalog_validate(entry, name, why, why_len);
        if (!err && insert(cat, entry, why, why_len) != JN_OK)
            err = JN_ERR_INVALID;
        json_object_put(entry);
        if (err) {
            jn_catalog_free(cat);
            return err;
        }
    }
    *out = cat;
    return JN_OK;
}

json_object *jn_catalog_get(const jn_catalog_t *cat, const char *name)
{
    bool found;
    size_t at = position(cat, name, &found);
    return found ? cat->entries[at] : NULL;
}

size_t jn_catalog_count(const jn_catalog_t *cat)
{
    return cat->count;
}

json_object *jn_catalog_at(const jn_catalog_t *cat, size_t i)
{
    return i < cat->count ? cat->entries[i] : NULL;
}

const char *jn_catalog_json_at(const jn_catalog_t *cat, size_t i)
{
    return i < cat->count ? cat->texts[i] : NULL;
}

void jn_catalog_free(jn_catalog_t *cat)
{
    if (!cat)
        return;
    for (size_t i = 0; i < cat->count; i++) {
        json_object_put(cat->entries[i]);
        free(cat->texts[i]);
    }
    free(cat->entries);
    free(cat->texts);
    free(cat);
}

/*
 * models.c - compiling the model language and validating JSON values against it.
 *
 * A set owns every type it compiles (freed in one call). Named models are created as
 * empty shells first and filled second, so references between them, recursive ones
 * included, point at their final node. Validation walks the value, never the model,
 * so a recursive model cannot loop: the value's depth is already capped by its parser.
 */
#include "scripts/models.h"

#include "scripts/jpath.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum {
    K_STRING,
    K_NUMBER,
    K_INTEGER,
    K_BOOLEAN,
    K_DATE,
    K_OBJECT,
    K_ANY,
    K_NULL,
    K_LITERAL,
    K_FIELDS,
    K_REF,
    K_ARRAY,
    K_UNION,
} kind_t;

static const struct {
    const char *name;
    kind_t kind;
} builtins[] = {
    {"string", K_STRING}, {"number", K_NUMBER}, {"integer", K_INTEGER}, {"boolean", K_BOOLEAN},
    {"date", K_DATE},     {"object", K_OBJECT}, {"any", K_ANY},         {"null", K_NULL},
};

typedef struct {
    char *name;
    const jn_model_type_t *type;
} field_t;

struct jn_model_type {
    kind_t kind;
    bool optional;
    char *text;                 /* K_LITERAL: the value; K_REF and named K_FIELDS: the name */
    const jn_model_type_t *sub; /* K_ARRAY: the items; K_REF: the model */
    const jn_model_type_t **alts;
    size_t nalts;
    field_t *fields;
    size_t nfields;
    const jn_model_type_t *rest; /* K_FIELDS: the type of undeclared keys, or NULL */
};

struct jn_model_set {
    jn_model_type_t **all;
    size_t n_all, cap_all;
    jn_model_type_t **named;
    size_t n_named;
};

static void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size);
    if (!p)
        abort();
    return p;
}

static char *xstrndup(const char *s, size_t n)
{
    char *p = strndup(s, n);
    if (!p)
        abort();
    return p;
}

static jn_model_type_t *new_type(jn_model_set_t *set, kind_t kind)
{
    if (set->n_all == set->cap_all) {
        set->cap_all = set->cap_all ? set->cap_all * 2 : 16;
        jn_model_type_t **grown = realloc(set->all, set->cap_all * sizeof *grown);
        if (!grown)
            abort();
        set->all = grown;
    }
    jn_model_type_t *t = xcalloc(1, sizeof *t);
    t->kind = kind;
    set->all[set->n_all++] = t;
    return t;
}

void jn_model_set_free(jn_model_set_t *set)
{
    if (!set)
        return;
    for (size_t i = 0; i < set->n_all; i++) {
        jn_model_type_t *t = set->all[i];
        for (size_t f = 0; f < t->nfields; f++)
            free(t->fields[f].name);
        free(t->fields);
        free(t->alts);
        free(t->text);
        free(t);
    }
    free(set->all);
    free(set->named);
    free(set);
}

/* ---- compiling ---- */

static bool is_ident(const char *s, size_t n)
{
    if (n == 0 || n > JN_MODEL_NAME_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                  (i > 0 && ((c >= '0' && c <= '9') || c == '_'));
        if (!ok)
            return false;
    }
    return true;
}

static int builtin_kind(const char *s, size_t n)
{
    for (size_t i = 0; i < sizeof builtins / sizeof builtins[0]; i++) {
        if (strlen(builtins[i].name) == n && memcmp(builtins[i].name, s, n) == 0)
            return (int)builtins[i].kind;
    }
    return -1;
}

static jn_model_type_t *find_named(const jn_model_set_t *set, const char *s, size_t n)
{
    for (size_t i = 0; set && i < set->n_named; i++) {
        const char *name = set->named[i]->text;
        if (strlen(name) == n && memcmp(name, s, n) == 0)
            return set->named[i];
    }
    return NULL;
}

static void trim(const char **s, size_t *n)
{
    while (*n && (**s == ' ' || **s == '\t'))
        (*s)++, (*n)--;
    while (*n && ((*s)[*n - 1] == ' ' || (*s)[*n - 1] == '\t'))
        (*n)--;
}

/* One alternative: a base type followed by any number of "[]". */
static jn_err_t parse_alt(jn_model_set_t *set, const char *s, size_t n, const char *path,
                          const jn_model_type_t **out, jn_field_error_t *e)
{
    trim(&s, &n);
    int arrays = 0;
    for (;;) {
        size_t m = n;
        const char *q = s;
        trim(&q, &m);
        if (m >= 2 && q[m - 1] == ']' && q[m - 2] == '[') {
            n = (size_t)(q - s) + m - 2;
            trim(&s, &n);
            arrays++;
            continue;
        }
        break;
    }
    if (arrays > 8)
        return jn_field_error(e, path, "arrays nested deeper than 8 levels");
    jn_model_type_t *t;
    if (n >= 2 && (s[0] == '\'' || s[0] == '"') && s[n - 1] == s[0]) {
        if (memchr(s + 1, s[0], n - 2))
            return jn_field_error(e, path, "a literal may not contain its own quote");
        t = new_type(set, K_LITERAL);
        t->text = xstrndup(s + 1, n - 2);
    } else if (n == 0) {
        return jn_field_error(e, path, "a type is missing");
    } else {
        int k = builtin_kind(s, n);
        if (k >= 0) {
            t = new_type(set, (kind_t)k);
        } else {
            jn_model_type_t *named = find_named(set, s, n);
            if (!named)
                return jn_field_error(e, path,
                                      "unknown type '%.*s' (use string, number, integer, "
                                      "boolean, date, object, any, null, a 'literal' or the name "
                                      "of a model)",
                                      (int)(n > 64 ? 64 : n), s);
            t = new_type(set, K_REF);
            t->text = xstrndup(s, n);
            t->sub = named;
        }
    }
    for (int i = 0; i < arrays; i++) {
        jn_model_type_t *a = new_type(set, K_ARRAY);
        a->sub = t;
        t = a;
    }
    *out = t;
    return JN_OK;
}

static jn_err_t parse_expr(jn_model_set_t *set, const char *text, size_t n, const char *path,
                           const jn_model_type_t **out, jn_field_error_t *e)
{
    trim(&text, &n);
    if (n > 512)
        return jn_field_error(e, path, "a type expression is longer than 512 characters");
    bool optional = false;
    if (n && text[n - 1] == '?') {
        optional = true;
        n--;
        trim(&text, &n);
    }
    const jn_model_type_t *alts[16];
    size_t nalts = 0;
    size_t start = 0;
    char quote = 0;
    for (size_t i = 0; i <= n; i++) {
        char c = i < n ? text[i] : '|';
        if (quote) {
            if (c == quote)
                quote = 0;
            if (i < n)
                continue;
            return jn_field_error(e, path, "a literal is not closed");
        }
        if (c == '\'' || c == '"') {
            quote = c;
            continue;
        }
        if (c == '?')
            return jn_field_error(e, path, "'?' may only end a type");
        if (c != '|')
            continue;
        if (nalts == 16)
            return jn_field_error(e, path, "more than 16 alternatives");
        jn_err_t err = parse_alt(set, text + start, i - start, path, &alts[nalts++], e);
        if (err)
            return err;
        start = i + 1;
    }
    jn_model_type_t *t;
    if (nalts == 1) {
        t = (jn_model_type_t *)alts[0]; /* a node parse_alt just made for this use */
    } else {
        t = new_type(set, K_UNION);
        t->alts = xcalloc(nalts, sizeof *t->alts);
        memcpy(t->alts, alts, nalts * sizeof *alts);
        t->nalts = nalts;
    }
    t->optional = optional;
    *out = t;
    return JN_OK;
}

static jn_err_t compile_spec(jn_model_set_t *set, json_object *spec, const char *path,
                             jn_model_type_t *into, const jn_model_type_t **out,
                             jn_field_error_t *e);

static jn_err_t compile_fields(jn_model_set_t *set, json_object *spec, const char *path,
                               jn_model_type_t *t, jn_field_error_t *e)
{
    size_t n = (size_t)json_object_object_length(spec);
    t->fields = xcalloc(n, sizeof *t->fields);
    json_object_object_foreach(spec, key, value)
    {
        char sub[160];
        snprintf(sub, sizeof sub, "%s%s%s", path, *path ? "." : "", key);
        size_t klen = strlen(key);
        if (klen == 0 || klen > 128)
            return jn_field_error(e, sub, "a field name must have 1 to 128 characters");
        const jn_model_type_t *ft = NULL;
        jn_err_t err = compile_spec(set, value, sub, NULL, &ft, e);
        if (err)
            return err;
        if (strcmp(key, "*") == 0) {
            t->rest = ft;
        } else {
            t->fields[t->nfields].name = xstrndup(key, klen);
            t->fields[t->nfields].type = ft;
            t->nfields++;
        }
    }
    return JN_OK;
}

/* Compiles spec; for a table of fields, into (when given) is the node to fill. */
static jn_err_t compile_spec(jn_model_set_t *set, json_object *spec, const char *path,
                             jn_model_type_t *into, const jn_model_type_t **out,
                             jn_field_error_t *e)
{
    switch (json_object_get_type(spec)) {
    case json_type_string:
        return parse_expr(set, json_object_get_string(spec),
                          (size_t)json_object_get_string_len(spec), path, out, e);
    case json_type_object: {
        jn_model_type_t *t = into ? into : new_type(set, K_FIELDS);
        *out = t;
        return compile_fields(set, spec, path, t, e);
    }
    case json_type_array: {
        if (json_object_array_length(spec) != 1)
            return jn_field_error(e, path,
                                  "a list model has exactly one element: the model of its items");
        jn_model_type_t *a = new_type(set, K_ARRAY);
        *out = a;
        char sub[160];
        snprintf(sub, sizeof sub, "%s[1]", path);
        return compile_spec(set, json_object_array_get_idx(spec, 0), sub, NULL, &a->sub, e);
    }
    default:
        return jn_field_error(e, path,
                              "a model is a type (\"string\"), a table of fields or a "
                              "one-element list");
    }
}

jn_err_t jn_model_set_new(json_object *models, jn_model_set_t **out, jn_field_error_t *e)
{
    jn_model_set_t *set = xcalloc(1, sizeof *set);
    *out = NULL;
    if (models && !json_object_is_type(models, json_type_object)) {
        jn_model_set_free(set);
        return jn_field_error(e, "models", "must be a table of name = fields");
    }
    size_t n = models ? (size_t)json_object_object_length(models) : 0;
    set->named = xcalloc(n, sizeof *set->named);
    if (models) {
        json_object_object_foreach(models, name, spec)
        {
            char path[96];
            snprintf(path, sizeof path, "models.%.64s", name);
            if (!is_ident(name, strlen(name)) || builtin_kind(name, strlen(name)) >= 0) {
                jn_model_set_free(set);
                return jn_field_error(e, path,
                                      "a model name is a letter then letters, digits or _ (at "
                                      "most %d) and not a built-in type",
                                      JN_MODEL_NAME_MAX);
            }
            if (!json_object_is_type(spec, json_type_object)) {
                jn_model_set_free(set);
                return jn_field_error(e, path, "a model must be a table of fields");
            }
            jn_model_type_t *t = new_type(set, K_FIELDS);
            t->text = xstrndup(name, strlen(name));
            set->named[set->n_named++] = t;
        }
        for (size_t i = 0; i < set->n_named; i++) {
            jn_model_type_t *t = set->named[i];
            char path[96];
            snprintf(path, sizeof path, "models.%s", t->text);
            const jn_model_type_t *ignored;
            jn_err_t err =
                compile_spec(set, json_object_object_get(models, t->text), path, t, &ignored, e);
            if (err) {
                jn_model_set_free(set);
                return err;
            }
        }
    }
    *out = set;
    return JN_OK;
}

jn_err_t jn_model_compile(jn_model_set_t *set, json_object *spec, const char *where,
                          const jn_model_type_t **out, jn_field_error_t *e)
{
    return compile_spec(set, spec, where, NULL, out, e);
}

const jn_model_type_t *jn_model_get(const jn_model_set_t *set, const char *name)
{
    return find_named(set, name, strlen(name));
}

size_t jn_model_count(const jn_model_set_t *set)
{
    return set->n_named;
}

const char *jn_model_name(const jn_model_set_t *set, size_t i)
{
    return i < set->n_named ? set->named[i]->text : NULL;
}

bool jn_model_optional(const jn_model_type_t *t)
{
    return t->optional;
}

static const jn_model_type_t *deref(const jn_model_type_t *t)
{
    return t->kind == K_REF ? t->sub : t;
}

bool jn_model_is_object(const jn_model_type_t *t)
{
    return deref(t)->kind == K_FIELDS;
}

const jn_model_type_t *jn_model_field(const jn_model_type_t *t, const char *name)
{
    t = deref(t);
    for (size_t i = 0; t->kind == K_FIELDS && i < t->nfields; i++) {
        if (strcmp(t->fields[i].name, name) == 0)
            return t->fields[i].type;
    }
    return NULL;
}

/* ---- validating ---- */

typedef struct {
    jn_jpath_t path;
    int base;
    unsigned flags;
    jn_field_error_t *e;
} vctx_t;

static const char *got(json_object *v)
{
    switch (json_object_get_type(v)) {
    case json_type_null: return "null";
    case json_type_boolean: return "a boolean";
    case json_type_int:
    case json_type_double: return "a number";
    case json_type_string: return "a string";
    case json_type_array: return "an array";
    case json_type_object: return "an object";
    }
    return "a value";
}

static void describe(const jn_model_type_t *t, char *buf, size_t cap)
{
    switch (t->kind) {
    case K_STRING: snprintf(buf, cap, "a string"); break;
    case K_NUMBER: snprintf(buf, cap, "a number"); break;
    case K_INTEGER: snprintf(buf, cap, "an integer"); break;
    case K_BOOLEAN: snprintf(buf, cap, "a boolean"); break;
    case K_DATE: snprintf(buf, cap, "a date (ISO 8601)"); break;
    case K_OBJECT: snprintf(buf, cap, "an object"); break;
    case K_ANY: snprintf(buf, cap, "any value"); break;
    case K_NULL: snprintf(buf, cap, "null"); break;
    case K_LITERAL: snprintf(buf, cap, "'%.40s'", t->text); break;
    case K_FIELDS:
        if (t->text)
            snprintf(buf, cap, "an object (%s)", t->text);
        else
            snprintf(buf, cap, "an object");
        break;
    case K_REF: snprintf(buf, cap, "an object (%s)", t->text); break;
    case K_ARRAY: snprintf(buf, cap, "an array"); break;
    case K_UNION: {
        size_t o = 0;
        buf[0] = '\0';
        for (size_t i = 0; i < t->nalts && o + 8 < cap; i++) {
            char one[64];
            describe(t->alts[i], one, sizeof one);
            int n = snprintf(buf + o, cap - o, "%s%s", i ? " or " : "", one);
            if (n < 0)
                break;
            o += (size_t)n < cap - o ? (size_t)n : cap - o - 1;
        }
        break;
    }
    }
}

static jn_err_t mismatch(vctx_t *c, const jn_model_type_t *t, json_object *v)
{
    char want[192];
    describe(t, want, sizeof want);
    return jn_field_error(c->e, jn_jpath_str(&c->path), "expected %s, got %s", want, got(v));
}

static bool accepts_null(const jn_model_type_t *t)
{
    if (t->optional || t->kind == K_ANY || t->kind == K_NULL)
        return true;
    for (size_t i = 0; t->kind == K_UNION && i < t->nalts; i++) {
        if (accepts_null(t->alts[i]))
            return true;
    }
    return false;
}

static jn_err_t check(vctx_t *c, const jn_model_type_t *t, json_object **slot, bool top);

static jn_err_t check_fields(vctx_t *c, const jn_model_type_t *t, json_object *obj, bool top)
{
    for (size_t i = 0; i < t->nfields; i++) {
        const field_t *f = &t->fields[i];
        json_object *child = NULL;
        bool present = json_object_object_get_ex(obj, f->name, &child);
        size_t old = jn_jpath_key(&c->path, f->name, strlen(f->name));
        if (!present) {
            if (!f->type->optional && !(top && (c->flags & JN_MODEL_PARTIAL)))
                return jn_field_error(c->e, jn_jpath_str(&c->path), "is required");
        } else {
            json_object *before = child;
            json_object_get(child);
            jn_err_t err = check(c, f->type, &child, false);
            if (err) {
                json_object_put(child);
                return err;
            }
            if (child != before)
                json_object_object_add(obj, f->name, child); /* takes child */
            else
                json_object_put(child);
        }
        jn_jpath_pop(&c->path, old);
    }
    json_object_object_foreach(obj, key, value)
    {
        bool declared = false;
        for (size_t i = 0; i < t->nfields && !declared; i++)
            declared = strcmp(t->fields[i].name, key) == 0;
        if (declared)
            continue;
        size_t old = jn_jpath_key(&c->path, key, strlen(key));
        if (!t->rest)
            return jn_field_error(c->e, jn_jpath_str(&c->path), "is not a field of %s%s",
                                  t->text ? "model " : "the model", t->text ? t->text : "");
        json_object *child = json_object_get(value);
        json_object *before = child;
        jn_err_t err = check(c, t->rest, &child, false);
        if (err) {
            json_object_put(child);
            return err;
        }
        if (child != before)
            json_object_object_add(obj, key, child); /* replaces the value in place */
        else
            json_object_put(child);
        jn_jpath_pop(&c->path, old);
    }
    return JN_OK;
}

static jn_err_t check(vctx_t *c, const jn_model_type_t *t, json_object **slot, bool top)
{
    json_object *v = *slot;
    if (!v)
        return accepts_null(t) ? JN_OK : mismatch(c, t, v);
    json_type jt = json_object_get_type(v);
    switch (t->kind) {
    case K_STRING: return jt == json_type_string ? JN_OK : mismatch(c, t, v);
    case K_NUMBER: return jt == json_type_int || jt == json_type_double ? JN_OK : mismatch(c, t, v);
    case K_INTEGER:
        if (jt == json_type_int)
            return JN_OK;
        if (jt == json_type_double) {
            double d = json_object_get_double(v);
            if (d >= -9007199254740992.0 && d <= 9007199254740992.0 && d == (double)(int64_t)d) {
                *slot = json_object_new_int64((int64_t)d);
                json_object_put(v);
                return JN_OK;
            }
        }
        return mismatch(c, t, v);
    case K_BOOLEAN: return jt == json_type_boolean ? JN_OK : mismatch(c, t, v);
    case K_DATE:
        if (jt == json_type_string &&
            jn_model_is_date(json_object_get_string(v), (size_t)json_object_get_string_len(v)))
            return JN_OK;
        return mismatch(c, t, v);
    case K_OBJECT: return jt == json_type_object ? JN_OK : mismatch(c, t, v);
    case K_ANY: return JN_OK;
    case K_NULL: return mismatch(c, t, v);
    case K_LITERAL:
        return jt == json_type_string && strcmp(json_object_get_string(v), t->text) == 0
                   ? JN_OK
                   : mismatch(c, t, v);
    case K_REF:
        if (jt != json_type_object)
            return mismatch(c, t, v);
        return check_fields(c, t->sub, v, top);
    case K_FIELDS:
        if (jt != json_type_object)
            return mismatch(c, t, v);
        return check_fields(c, t, v, top);
    case K_ARRAY: {
        if (jt == json_type_object && json_object_object_length(v) == 0) {
            *slot = json_object_new_array();
            json_object_put(v);
            return JN_OK;
        }
        if (jt != json_type_array)
            return mismatch(c, t, v);
        size_t n = json_object_array_length(v);
        for (size_t i = 0; i < n; i++) {
            json_object *child = json_object_get(json_object_array_get_idx(v, i));
            json_object *before = child;
            size_t old = jn_jpath_index(&c->path, (long long)i + c->base);
            jn_err_t err = check(c, t->sub, &child, false);
            if (err) {
                json_object_put(child);
                return err;
            }
            if (child != before)
                json_object_array_put_idx(v, i, child);
            else
                json_object_put(child);
            jn_jpath_pop(&c->path, old);
        }
        return JN_OK;
    }
    case K_UNION: {
        jn_field_error_t scratch;
        jn_field_error_t *outer = c->e;
        for (size_t i = 0; i < t->nalts; i++) {
            c->e = &scratch;
            size_t old = c->path.len;
            jn_err_t err = check(c, t->alts[i], slot, top);
            jn_jpath_pop(&c->path, old);
            c->e = outer;
            if (!err)
                return JN_OK;
        }
        return mismatch(c, t, *slot);
    }
    }
    return JN_OK;
}

jn_err_t jn_model_validate(const jn_model_type_t *t, json_object **value, const char *root,
                           int index_base, unsigned flags, jn_field_error_t *e)
{
    vctx_t c = {.base = index_base, .flags = flags, .e = e};
    jn_jpath_init(&c.path, root);
    return check(&c, t, value, true);
}

/* ---- dates ---- */

static int digits(const char *s, size_t n, size_t at, size_t count)
{
    if (at + count > n)
        return -1;
    int v = 0;
    for (size_t i = at; i < at + count; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

bool jn_model_is_date(const char *s, size_t n)
{
    int y = digits(s, n, 0, 4), mo = digits(s, n, 5, 2), d = digits(s, n, 8, 2);
    if (y < 0 || mo < 1 || mo > 12 || d < 1 || s[4] != '-' || s[7] != '-')
        return false;
    static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (d > days[mo - 1] + (mo == 2 && leap))
        return false;
    if (n == 10)
        return true;
    if (s[10] != 'T' && s[10] != 't' && s[10] != ' ')
        return false;
    int h = digits(s, n, 11, 2), mi = digits(s, n, 14, 2);
    if (h < 0 || h > 23 || mi < 0 || mi > 59 || s[13] != ':')
        return false;
    size_t i = 16;
    if (i < n && s[i] == ':') {
        int sec = digits(s, n, 17, 2);
        if (sec < 0 || sec > 60)
            return false;
        i = 19;
        if (i < n && (s[i] == '.' || s[i] == ',')) {
            size_t start = ++i;
            while (i < n && s[i] >= '0' && s[i] <= '9')
                i++;
            if (i == start || i - start > 9)
                return false;
        }
    }
    if (i == n)
        return true;
    if ((s[i] == 'Z' || s[i] == 'z') && i + 1 == n)
        return true;
    if (s[i] != '+' && s[i] != '-')
        return false;
    int oh = digits(s, n, i + 1, 2);
    if (oh < 0 || oh > 23)
        return false;
    if (i + 3 == n)
        return true;
    size_t at = i + 3 + (s[i + 3] == ':');
    int om = digits(s, n, at, 2);
    return om >= 0 && om <= 59 && at + 2 == n;
}

/* ---- describing for GET /scripts/config ---- */

static json_object *schema_of(const jn_model_type_t *t, int depth);

static json_object *typed(const char *type)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "type", json_object_new_string(type));
    return o;
}

static json_object *fields_schema(const jn_model_type_t *t, int depth)
{
    json_object *o = typed("object");
    json_object *props = json_object_new_object();
    json_object *required = json_object_new_array();
    for (size_t i = 0; i < t->nfields; i++) {
        json_object_object_add(props, t->fields[i].name, schema_of(t->fields[i].type, depth + 1));
        if (!t->fields[i].type->optional)
            json_object_array_add(required, json_object_new_string(t->fields[i].name));
    }
    json_object_object_add(o, "properties", props);
    json_object_object_add(o, "required", required);
    json_object_object_add(o, "additionalProperties",
                           t->rest ? schema_of(t->rest, depth + 1) : json_object_new_boolean(0));
    return o;
}

static json_object *schema_of(const jn_model_type_t *t, int depth)
{
    if (depth > 32)
        return json_object_new_object();
    json_object *o;
    switch (t->kind) {
    case K_STRING: o = typed("string"); break;
    case K_NUMBER: o = typed("number"); break;
    case K_INTEGER: o = typed("integer"); break;
    case K_BOOLEAN: o = typed("boolean"); break;
    case K_DATE:
        o = typed("string");
        json_object_object_add(o, "format", json_object_new_string("date-time"));
        break;
    case K_OBJECT: o = typed("object"); break;
    case K_ANY: o = json_object_new_object(); break;
    case K_NULL: o = typed("null"); break;
    case K_LITERAL:
        o = json_object_new_object();
        json_object_object_add(o, "const", json_object_new_string(t->text));
        break;
    case K_FIELDS: o = fields_schema(t, depth); break;
    case K_REF: {
        char ref[128];
        snprintf(ref, sizeof ref, "#/definitions/%s", t->text);
        o = json_object_new_object();
        json_object_object_add(o, "$ref", json_object_new_string(ref));
        break;
    }
    case K_ARRAY:
        o = typed("array");
        json_object_object_add(o, "items", schema_of(t->sub, depth + 1));
        break;
    case K_UNION: {
        o = json_object_new_object();
        json_object *any = json_object_new_array();
        for (size_t i = 0; i < t->nalts; i++)
            json_object_array_add(any, schema_of(t->alts[i], depth + 1));
        json_object_object_add(o, "anyOf", any);
        break;
    }
    default: o = json_object_new_object(); break;
    }
    return o;
}

json_object *jn_model_json_schema(const jn_model_type_t *t)
{
    return schema_of(t, 0);
}

/* Nango's "value" of a field: a type name, a model name or nested fields. */
static void nango_value(const jn_model_type_t *t, json_object *field, int depth)
{
    static const char *names[] = {"string", "number", "number", "boolean",
                                  "Date",   "object", "any",    "null"};
    switch (t->kind) {
    case K_ARRAY:
        json_object_object_add(field, "array", json_object_new_boolean(1));
        nango_value(t->sub, field, depth + 1);
        return;
    case K_REF:
        json_object_object_add(field, "value", json_object_new_string(t->text));
        json_object_object_add(field, "model", json_object_new_boolean(1));
        return;
    case K_FIELDS: json_object_object_add(field, "value", jn_model_nango_fields(t)); return;
    case K_LITERAL: json_object_object_add(field, "value", json_object_new_string(t->text)); return;
    case K_UNION: {
        json_object *alts = json_object_new_array();
        for (size_t i = 0; i < t->nalts && depth < 16; i++) {
            json_object *alt = json_object_new_object();
            char name[24];
            snprintf(name, sizeof name, "%zu", i);
            json_object_object_add(alt, "name", json_object_new_string(name));
            nango_value(t->alts[i], alt, depth + 1);
            json_object_array_add(alts, alt);
        }
        json_object_object_add(field, "union", json_object_new_boolean(1));
        json_object_object_add(field, "value", alts);
        return;
    }
    default:
        json_object_object_add(field, "value", json_object_new_string(names[t->kind]));
        if (t->kind != K_INTEGER)
            return;
        json_object_object_add(field, "tsType", json_object_new_boolean(1));
        return;
    }
}

json_object *jn_model_nango_fields(const jn_model_type_t *t)
{
    json_object *list = json_object_new_array();
    t = deref(t);
    if (t->kind != K_FIELDS)
        return list;
    for (size_t i = 0; i < t->nfields; i++) {
        json_object *f = json_object_new_object();
        json_object_object_add(f, "name", json_object_new_string(t->fields[i].name));
        nango_value(t->fields[i].type, f, 0);
        if (t->fields[i].type->optional)
            json_object_object_add(f, "optional", json_object_new_boolean(1));
        json_object_array_add(list, f);
    }
    return list;
}

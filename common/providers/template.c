/*
 * template.c - parsing and rendering of catalog templates.
 *
 * One recursive-descent parser serves three uses: a syntax pass over the whole template,
 * a walk that reports its pieces, and rendering into a capped buffer. Templates are short
 * (a URL or a header value) and rendered once per request or token exchange, so the
 * parser simply runs more than once (syntax first, then per alternative) rather than
 * building a tree. Rendered text may hold secrets: every buffer is wiped before it is
 * freed, including the output of alternatives that lost.
 */
#include "providers/template.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/crypto.h"

typedef struct {
    char *data;
    size_t len, cap;
} buf_t;

typedef struct {
    const char *s;
    size_t n;
    jn_template_lookup_fn lookup; /* rendering */
    void *lookup_ud;
    jn_template_visit_fn visit; /* walking; called only while visiting is set */
    void *visit_ud;
    bool visiting;
    size_t alternative;
    char *why;
    size_t why_len;
} parser_t;

static void oom(void)
{
    fputs("template: out of memory\n", stderr);
    abort();
}

static void buf_free(buf_t *b)
{
    if (b->data) {
        jn_secure_wipe(b->data, b->cap);
        free(b->data);
    }
    b->data = NULL;
    b->len = b->cap = 0;
}

/* Appends n bytes; false when the result would exceed JN_TEMPLATE_MAX_OUTPUT. Grows by
 * copying rather than realloc so that the old block can be wiped. */
static bool buf_add(buf_t *b, const char *s, size_t n)
{
    if (n > JN_TEMPLATE_MAX_OUTPUT - b->len)
        return false;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *d = malloc(cap);
        if (!d)
            oom();
        if (b->len)
            memcpy(d, b->data, b->len);
        if (b->data) {
            jn_secure_wipe(b->data, b->cap);
            free(b->data);
        }
        b->data = d;
        b->cap = cap;
    }
    if (n)
        memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
    return true;
}

static jn_err_t fail(parser_t *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static jn_err_t fail(parser_t *p, const char *fmt, ...)
{
    if (p->why && p->why_len) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(p->why, p->why_len, fmt, ap);
        va_end(ap);
    }
    return JN_ERR_INVALID;
}

static jn_err_t too_large(parser_t *p)
{
    if (p->why && p->why_len)
        snprintf(p->why, p->why_len, "rendered output exceeds %d bytes", JN_TEMPLATE_MAX_OUTPUT);
    return JN_ERR_TOO_LARGE;
}

static jn_err_t emit(parser_t *p, buf_t *out, const char *s, size_t n)
{
    return !out || buf_add(out, s, n) ? JN_OK : too_large(p);
}

static jn_err_t visit(parser_t *p, jn_template_part_kind_t kind, const char *text, size_t len,
                      size_t offset, int depth)
{
    if (!p->visiting || !p->visit)
        return JN_OK;
    jn_template_part_t part = {kind, text, len, offset, depth, p->alternative};
    return p->visit(&part, p->visit_ud);
}

static bool is_alpha(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static bool is_name_char(char c)
{
    return is_alpha(c) || is_digit(c) || c == '_' || c == '-' || c == '.';
}

static bool is_blank(char c)
{
    return c == ' ' || c == '\t';
}

static bool valid_name(const char *s, size_t n)
{
    if (n == 0 || !(is_alpha(s[0]) || s[0] == '_') || s[n - 1] == '.')
        return false;
    for (size_t i = 1; i < n; i++) {
        if (s[i] == '.' && s[i - 1] == '.')
            return false;
    }
    return true;
}

/* Describes the character at s[i] for a message: 'x' or a hex escape. */
static const char *describe(char c, char buf[8])
{
    if ((unsigned char)c >= 0x20 && (unsigned char)c < 0x7f)
        snprintf(buf, 8, "'%c'", c);
    else
        snprintf(buf, 8, "0x%02x", (unsigned)(unsigned char)c);
    return buf;
}

static jn_err_t sequence(parser_t *p, size_t *pos, size_t limit, int depth, size_t call_at,
                         buf_t *out, bool *complete);

/* Renders the base64() call whose "${" is at s[at] and whose inner text starts at *pos. */
static jn_err_t call(parser_t *p, size_t at, size_t *pos, int depth, buf_t *out, bool *complete)
{
    if (depth + 1 > JN_TEMPLATE_MAX_DEPTH)
        return fail(p, "base64() nested more than %d deep at offset %zu", JN_TEMPLATE_MAX_DEPTH,
                    at);
    jn_err_t err = visit(p, JN_TEMPLATE_CALL, "base64", 6, at, depth);
    if (err)
        return err;
    buf_t inner = {0};
    bool inner_complete = true;
    size_t i = *pos;
    err = sequence(p, &i, 0, depth + 1, at, out ? &inner : NULL, &inner_complete);
    if (!err && p->s[i + 1] != '}')
        err = fail(p, "unbalanced parentheses: expected '}' after the ')' at offset %zu", i);
    if (!err && out) {
        if (inner_complete) {
            size_t cap = 4 * ((inner.len + 2) / 3) + 1;
            char *enc = malloc(cap);
            if (!enc)
                oom();
            jn_base64_encode((const unsigned char *)(inner.data ? inner.data : ""), inner.len, enc);
            err = emit(p, out, enc, cap - 1);
            jn_secure_wipe(enc, cap);
            free(enc);
        } else {
            *complete = false;
            err = emit(p, out, p->s + at, i + 2 - at);
        }
    }
    buf_free(&inner);
    if (!err)
        *pos = i + 2;
    return err;
}

/* Parses the placeholder whose "${" is at s[*pos]. */
static jn_err_t placeholder(parser_t *p, size_t *pos, int depth, buf_t *out, bool *complete)
{
    const char *s = p->s;
    size_t at = *pos, start = at + 2, j = start;
    while (j < p->n && is_name_char(s[j]))
        j++;
    size_t len = j - start;
    char c[8];

    if (s[j] == '}' || s[j] == '(') {
        if (len == 0)
            return fail(p,
                        s[j] == '}' ? "empty placeholder ${} at offset %zu"
                                    : "missing function name at offset %zu",
                        at);
        if (len > JN_TEMPLATE_MAX_NAME)
            return fail(p, "placeholder name longer than %d bytes at offset %zu",
                        JN_TEMPLATE_MAX_NAME, at);
    }
    if (s[j] == '(') {
        if (len != 6 || memcmp(s + start, "base64", 6) != 0)
            return fail(p, "unknown function '%.*s' at offset %zu", (int)len, s + start, at);
        *pos = j + 1;
        return call(p, at, pos, depth, out, complete);
    }
    if (s[j] != '}') {
        if (j >= p->n || !strchr(s + j, '}'))
            return fail(p, "unclosed ${ at offset %zu", at);
        return fail(p, "unexpected %s in placeholder at offset %zu", describe(s[j], c), j);
    }
    if (!valid_name(s + start, len))
        return fail(p, "invalid placeholder name '%.*s' at offset %zu", (int)len, s + start, at);

    char name[JN_TEMPLATE_MAX_NAME + 1];
    memcpy(name, s + start, len);
    name[len] = '\0';
    jn_err_t err = visit(p, JN_TEMPLATE_NAME, name, len, at, depth);
    if (!err && out) {
        const char *value = p->lookup ? p->lookup(name, p->lookup_ud) : NULL;
        if (value && *value) {
            err = emit(p, out, value, strlen(value));
        } else {
            *complete = false;
            err = emit(p, out, s + at, j + 1 - at);
        }
    }
    if (!err)
        *pos = j + 1;
    return err;
}

/* Parses text and placeholders from *pos. At depth 0 it stops at limit or before a "||";
 * deeper, before the ")" that closes the call whose "${" is at call_at. With out, renders
 * into it and clears *complete for each unresolved placeholder. */
static jn_err_t sequence(parser_t *p, size_t *pos, size_t limit, int depth, size_t call_at,
                         buf_t *out, bool *complete)
{
    const char *s = p->s;
    size_t i = *pos, run = i;
    int parens = 0;
    for (;;) {
        bool stop;
        if (depth == 0) {
            stop = i >= limit || (s[i] == '|' && i + 1 < limit && s[i + 1] == '|');
        } else {
            if (i >= p->n)
                return fail(p, "unclosed ${base64( at offset %zu (unbalanced parentheses)",
                            call_at);
            stop = s[i] == ')' && parens == 0;
        }
        bool opens = !stop && s[i] == '$' && s[i + 1] == '{';
        if (stop || opens) {
            if (i > run) {
                jn_err_t err = emit(p, out, s + run, i - run);
                if (!err)
                    err = visit(p, JN_TEMPLATE_TEXT, s + run, i - run, run, depth);
                if (err)
                    return err;
            }
            if (stop)
                break;
            jn_err_t err = placeholder(p, &i, depth, out, complete);
            if (err)
                return err;
            run = i;
            continue;
        }
        if (depth > 0 && s[i] == '(')
            parens++;
        else if (depth > 0 && s[i] == ')')
            parens--;
        i++;
    }
    *pos = i;
    return JN_OK;
}

/* Finds the alternative that starts at pos: its source [*a, *b) without the blanks next to
 * a "||", and where the next one starts (*last when there is none). Visits nothing. */
static jn_err_t alternative(parser_t *p, size_t pos, size_t *a, size_t *b, size_t *next, bool *last)
{
    bool visiting = p->visiting;
    p->visiting = false;
    size_t end = pos;
    jn_err_t err = sequence(p, &end, p->n, 0, 0, NULL, NULL);
    p->visiting = visiting;
    if (err)
        return err;
    *last = end >= p->n;
    *a = pos;
    *b = end;
    if (pos > 0)
        while (*a < *b && is_blank(p->s[*a]))
            (*a)++;
    if (!*last)
        while (*b > *a && is_blank(p->s[*b - 1]))
            (*b)--;
    if (*a == *b && (pos > 0 || !*last))
        return fail(p, "empty alternative next to the '||' at offset %zu", *last ? pos - 2 : end);
    *next = end + 2;
    return JN_OK;
}

/* Checks the whole template without visiting or rendering. */
static jn_err_t syntax(parser_t *p)
{
    size_t pos = 0, a, b;
    bool last = false;
    while (!last) {
        jn_err_t err = alternative(p, pos, &a, &b, &pos, &last);
        if (err)
            return err;
    }
    return JN_OK;
}

jn_err_t jn_template_render(const char *tmpl, jn_template_lookup_fn lookup, void *ud, char **out,
                            bool *complete, char *why, size_t why_len)
{
    *out = NULL;
    *complete = false;
    parser_t p = {.s = tmpl, .n = strlen(tmpl), .lookup = lookup, .lookup_ud = ud};
    p.why = why;
    p.why_len = why_len;
    jn_err_t err = syntax(&p);
    size_t pos = 0;
    bool last = false;
    while (!err && !last) {
        size_t a, b;
        err = alternative(&p, pos, &a, &b, &pos, &last);
        if (err)
            break;
        buf_t cur = {0};
        bool ok = true;
        err = sequence(&p, &a, b, 0, 0, &cur, &ok);
        if (!err && !cur.data && !buf_add(&cur, "", 0))
            err = too_large(&p);
        if (!err && (ok || last)) {
            *out = cur.data;
            *complete = ok;
            return JN_OK;
        }
        buf_free(&cur);
    }
    return err;
}

jn_err_t jn_template_walk(const char *tmpl, jn_template_visit_fn visit_fn, void *ud, char *why,
                          size_t why_len)
{
    parser_t p = {.s = tmpl, .n = strlen(tmpl), .visit = visit_fn, .visit_ud = ud};
    p.why = why;
    p.why_len = why_len;
    jn_err_t err = syntax(&p);
    size_t pos = 0;
    bool last = false;
    while (!err && !last) {
        size_t a, b;
        err = alternative(&p, pos, &a, &b, &pos, &last);
        if (err)
            break;
        p.visiting = true;
        err = visit(&p, JN_TEMPLATE_ALTERNATIVE, tmpl + a, b - a, a, 0);
        if (!err)
            err = sequence(&p, &a, b, 0, 0, NULL, NULL);
        p.visiting = false;
        p.alternative++;
    }
    return err;
}

typedef struct {
    void (*each)(const char *name, void *ud);
    void *ud;
} names_t;

static jn_err_t each_name(const jn_template_part_t *part, void *ud)
{
    names_t *names = ud;
    if (part->kind == JN_TEMPLATE_NAME && names->each)
        names->each(part->text, names->ud);
    return JN_OK;
}

jn_err_t jn_template_check(const char *tmpl, void (*each)(const char *name, void *ud), void *ud,
                           char *why, size_t why_len)
{
    names_t names = {each, ud};
    return jn_template_walk(tmpl, each_name, &names, why, why_len);
}

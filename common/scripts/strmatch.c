/*
 * strmatch.c - Lua 5.4 patterns with every matching step charged to the sandbox.
 *
 * A backtracking matcher over single-character items (".", "%a", "[set]", a literal)
 * with the quantifiers "*", "+", "-", "?", captures (including position captures),
 * back-references "%1".."%9", "%bxy" and "%f[set]", and the anchors "^" and "$". The
 * recursion depth is capped (200) like Lua's; the step counter is flushed to the
 * sandbox every 1,024 steps, which raises once the budget or the deadline is spent.
 * Error messages are Lua's, so scripts behave as with the stock library.
 */
#include "scripts/strmatch.h"

#include <ctype.h>
#include <lauxlib.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "scripts/sandbox.h"

#define ESC '%'
#define SPECIALS "^$*+?.([%-"
#define MAX_CAPTURES 32
#define MAX_DEPTH 200
#define CAP_OPEN (-1)
#define CAP_POSITION (-2)
#define CHARGE_EVERY 1024

typedef struct {
    lua_State *L;
    const char *s0, *s_end; /* the subject */
    const char *p_end;      /* the end of the pattern (which is NUL-terminated) */
    int depth;              /* recursion left */
    unsigned steps;         /* not yet charged */
    int ncap;
    struct {
        const char *start;
        ptrdiff_t len; /* or CAP_OPEN, CAP_POSITION */
    } cap[MAX_CAPTURES];
} matcher_t;

static void flush(matcher_t *m)
{
    if (m->steps) {
        unsigned n = m->steps;
        m->steps = 0;
        jn_sandbox_charge(m->L, n);
    }
}

static void step(matcher_t *m)
{
    if (++m->steps >= CHARGE_EVERY)
        flush(m);
}

static void prepare(matcher_t *m, lua_State *L, const char *s, size_t ls, const char *p, size_t lp)
{
    m->L = L;
    m->s0 = s;
    m->s_end = s + ls;
    m->p_end = p + lp;
    m->steps = 0;
}

static void restart(matcher_t *m)
{
    m->ncap = 0;
    m->depth = MAX_DEPTH;
}

/* %a, %d, ... (%z is NUL); an upper-case class letter is the complement; anything else
 * is the character itself (%. matches '.'). */
static bool class_matches(int c, int cl)
{
    bool r;
    switch (tolower(cl)) {
    case 'a': r = isalpha(c); break;
    case 'c': r = iscntrl(c); break;
    case 'd': r = isdigit(c); break;
    case 'g': r = isgraph(c); break;
    case 'l': r = islower(c); break;
    case 'p': r = ispunct(c); break;
    case 's': r = isspace(c); break;
    case 'u': r = isupper(c); break;
    case 'w': r = isalnum(c); break;
    case 'x': r = isxdigit(c); break;
    case 'z': r = c == 0; break; /* deprecated, but the stock library still has it */
    default: return cl == c;
    }
    return isupper(cl) ? !r : r;
}

/* p points at '[', last at the ']' that closes the set. */
static bool set_matches(int c, const char *p, const char *last)
{
    bool want = true;
    p++;
    if (*p == '^') {
        want = false;
        p++;
    }
    for (; p < last; p++) {
        if (*p == ESC) {
            p++;
            if (class_matches(c, (unsigned char)*p))
                return want;
        } else if (p[1] == '-' && p + 2 < last) {
            if ((unsigned char)p[0] <= c && c <= (unsigned char)p[2])
                return want;
            p += 2;
        } else if ((unsigned char)*p == c) {
            return want;
        }
    }
    return !want;
}

/* The end of the single-character item starting at p. */
static const char *item_end(matcher_t *m, const char *p)
{
    char c = *p++;
    if (c == ESC) {
        if (p >= m->p_end)
            luaL_error(m->L, "malformed pattern (ends with '%%')");
        return p + 1;
    }
    if (c == '[') {
        if (*p == '^')
            p++;
        do { /* the first character of a set may be ']' itself */
            if (p >= m->p_end)
                luaL_error(m->L, "malformed pattern (missing ']')");
            c = *p++;
            if (c == ESC && p < m->p_end)
                p++;
        } while (*p != ']');
        return p + 1;
    }
    return p;
}

static bool single_matches(matcher_t *m, const char *s, const char *p, const char *ep)
{
    if (s >= m->s_end)
        return false;
    int c = (unsigned char)*s;
    switch (*p) {
    case '.': return true;
    case ESC: return class_matches(c, (unsigned char)p[1]);
    case '[': return set_matches(c, p, ep - 1);
    default: return (unsigned char)*p == c;
    }
}

static const char *do_match(matcher_t *m, const char *s, const char *p);

static const char *balance(matcher_t *m, const char *s, const char *p)
{
    if (p >= m->p_end - 1)
        luaL_error(m->L, "malformed pattern (missing arguments to '%%b')");
    if (s >= m->s_end || *s != *p)
        return NULL;
    char open = p[0], close = p[1];
    int depth = 1;
    while (++s < m->s_end) {
        step(m);
        if (*s == close) {
            if (--depth == 0)
                return s + 1;
        } else if (*s == open) {
            depth++;
        }
    }
    return NULL;
}

static const char *expand_max(matcher_t *m, const char *s, const char *p, const char *ep)
{
    ptrdiff_t i = 0;
    while (single_matches(m, s + i, p, ep)) {
        i++;
        step(m);
    }
    for (; i >= 0; i--) {
        const char *r = do_match(m, s + i, ep + 1);
        if (r)
            return r;
    }
    return NULL;
}

static const char *expand_min(matcher_t *m, const char *s, const char *p, const char *ep)
{
    for (;;) {
        const char *r = do_match(m, s, ep + 1);
        if (r)
            return r;
        if (!single_matches(m, s, p, ep))
            return NULL;
        s++;
    }
}

static const char *open_capture(matcher_t *m, const char *s, const char *p, ptrdiff_t what)
{
    if (m->ncap >= MAX_CAPTURES)
        luaL_error(m->L, "too many captures");
    m->cap[m->ncap].start = s;
    m->cap[m->ncap].len = what;
    m->ncap++;
    const char *r = do_match(m, s, p);
    if (!r)
        m->ncap--;
    return r;
}

static const char *close_capture(matcher_t *m, const char *s, const char *p)
{
    int l = m->ncap - 1;
    while (l >= 0 && m->cap[l].len != CAP_OPEN)
        l--;
    if (l < 0)
        luaL_error(m->L, "invalid pattern capture");
    m->cap[l].len = s - m->cap[l].start;
    const char *r = do_match(m, s, p);
    if (!r)
        m->cap[l].len = CAP_OPEN;
    return r;
}

static const char *back_reference(matcher_t *m, const char *s, int digit)
{
    int l = digit - '1';
    if (l < 0 || l >= m->ncap || m->cap[l].len == CAP_OPEN)
        luaL_error(m->L, "invalid capture index %%%d", l + 1);
    ptrdiff_t len = m->cap[l].len;
    m->steps += (unsigned)(len > 0 ? len / 16 : 0);
    if (len >= 0 && m->s_end - s >= len && memcmp(m->cap[l].start, s, (size_t)len) == 0)
        return s + len;
    return NULL;
}

/* Matches pattern p (to m->p_end) at s: returns the end of the match or NULL. */
static const char *do_match(matcher_t *m, const char *s, const char *p)
{
    if (m->depth-- == 0)
        luaL_error(m->L, "pattern too complex");
    for (;;) {
        step(m);
        if (p == m->p_end)
            break;
        if (*p == '(') {
            if (p + 1 < m->p_end && p[1] == ')')
                s = open_capture(m, s, p + 2, CAP_POSITION);
            else
                s = open_capture(m, s, p + 1, CAP_OPEN);
            break;
        }
        if (*p == ')') {
            s = close_capture(m, s, p + 1);
            break;
        }
        if (*p == '$' && p + 1 == m->p_end) {
            if (s != m->s_end)
                s = NULL;
            break;
        }
        if (*p == ESC && p + 1 < m->p_end) {
            char k = p[1];
            if (k == 'b') {
                s = balance(m, s, p + 2);
                if (!s)
                    break;
                p += 4;
                continue;
            }
            if (k == 'f') {
                p += 2;
                if (*p != '[')
                    luaL_error(m->L, "missing '[' after '%%f' in pattern");
                const char *ep = item_end(m, p);
                int prev = s == m->s0 ? 0 : (unsigned char)s[-1];
                int cur = s < m->s_end ? (unsigned char)*s : 0;
                if (set_matches(prev, p, ep - 1) || !set_matches(cur, p, ep - 1)) {
                    s = NULL;
                    break;
                }
                p = ep;
                continue;
            }
            if (k >= '0' && k <= '9') {
                s = back_reference(m, s, (unsigned char)k);
                if (!s)
                    break;
                p += 2;
                continue;
            }
        }
        const char *ep = item_end(m, p);
        char q = ep < m->p_end ? *ep : '\0';
        if (!single_matches(m, s, p, ep)) {
            if (q == '*' || q == '?' || q == '-') { /* zero occurrences are fine */
                p = ep + 1;
                continue;
            }
            s = NULL;
            break;
        }
        if (q == '?') {
            const char *r = do_match(m, s + 1, ep + 1);
            if (r) {
                s = r;
                break;
            }
            p = ep + 1;
            continue;
        }
        if (q == '+') {
            s = expand_max(m, s + 1, p, ep);
            break;
        }
        if (q == '*') {
            s = expand_max(m, s, p, ep);
            break;
        }
        if (q == '-') {
            s = expand_min(m, s, p, ep);
            break;
        }
        s++;
        p = ep;
    }
    m->depth++;
    return s;
}

/* Pushes capture i; without captures, i = 0 is the whole match s..e. */
static void push_capture(matcher_t *m, int i, const char *s, const char *e)
{
    if (i >= m->ncap) {
        if (i != 0)
            luaL_error(m->L, "invalid capture index %%%d", i + 1);
        lua_pushlstring(m->L, s, (size_t)(e - s));
        return;
    }
    ptrdiff_t len = m->cap[i].len;
    if (len == CAP_OPEN)
        luaL_error(m->L, "unfinished capture");
    if (len == CAP_POSITION)
        lua_pushinteger(m->L, (m->cap[i].start - m->s0) + 1);
    else
        lua_pushlstring(m->L, m->cap[i].start, (size_t)len);
}

/* Pushes every capture, or the whole match when there are none and s is given. */
static int push_captures(matcher_t *m, const char *s, const char *e)
{
    int n = (m->ncap == 0 && s) ? 1 : m->ncap;
    luaL_checkstack(m->L, n, "too many captures");
    for (int i = 0; i < n; i++)
        push_capture(m, i, s, e);
    return n;
}

/* Lua's rule for an initial position: negative counts from the end; 1-based result. */
static size_t start_position(lua_Integer pos, size_t len)
{
    if (pos > 0)
        return (size_t)pos;
    if (pos == 0 || pos < -(lua_Integer)len)
        return 1;
    return len + (size_t)(pos + 1);
}

static bool has_specials(const char *p, size_t lp)
{
    for (size_t i = 0; i < lp; i++) {
        if (p[i] && strchr(SPECIALS, p[i]))
            return true;
    }
    return false;
}

static int find_or_match(lua_State *L, bool find)
{
    size_t ls, lp;
    const char *s = luaL_checklstring(L, 1, &ls);
    const char *p = luaL_checklstring(L, 2, &lp);
    size_t init = start_position(luaL_optinteger(L, 3, 1), ls) - 1;
    if (init > ls) {
        luaL_pushfail(L);
        return 1;
    }
    if (find && (lua_toboolean(L, 4) || !has_specials(p, lp))) {
        jn_sandbox_charge(L, (ls - init) / 16 + 1);
        const char *hit = lp == 0 ? s + init : memmem(s + init, ls - init, p, lp);
        if (hit) {
            lua_pushinteger(L, (hit - s) + 1);
            lua_pushinteger(L, (lua_Integer)((size_t)(hit - s) + lp));
            return 2;
        }
        luaL_pushfail(L);
        return 1;
    }
    matcher_t m;
    bool anchor = lp > 0 && *p == '^';
    if (anchor) {
        p++;
        lp--;
    }
    prepare(&m, L, s, ls, p, lp);
    const char *s1 = s + init;
    do {
        restart(&m);
        const char *e = do_match(&m, s1, p);
        if (e) {
            flush(&m);
            if (!find)
                return push_captures(&m, s1, e);
            lua_pushinteger(L, (s1 - s) + 1);
            lua_pushinteger(L, e - s);
            return push_captures(&m, NULL, NULL) + 2;
        }
    } while (s1++ < m.s_end && !anchor);
    flush(&m);
    luaL_pushfail(L);
    return 1;
}

static int str_find(lua_State *L)
{
    return find_or_match(L, true);
}

static int str_match(lua_State *L)
{
    return find_or_match(L, false);
}

typedef struct {
    matcher_t m;
    const char *src, *p, *last;
} gmatch_t;

static int gmatch_next(lua_State *L)
{
    gmatch_t *g = lua_touserdata(L, lua_upvalueindex(3));
    g->m.L = L; /* the iterator may run in another coroutine than gmatch did */
    for (const char *src = g->src; src <= g->m.s_end; src++) {
        restart(&g->m);
        const char *e = do_match(&g->m, src, g->p);
        if (e && e != g->last) {
            g->src = g->last = e;
            flush(&g->m);
            return push_captures(&g->m, src, e);
        }
    }
    flush(&g->m);
    return 0;
}

static int str_gmatch(lua_State *L)
{
    size_t ls, lp;
    const char *s = luaL_checklstring(L, 1, &ls);
    const char *p = luaL_checklstring(L, 2, &lp);
    size_t init = start_position(luaL_optinteger(L, 3, 1), ls) - 1;
    if (init > ls)
        init = ls + 1; /* starts past the end: no match */
    lua_settop(L, 2);  /* the subject and pattern stay alive as upvalues */
    gmatch_t *g = lua_newuserdatauv(L, sizeof *g, 0);
    prepare(&g->m, L, s, ls, p, lp);
    g->src = s + init;
    g->p = p;
    g->last = NULL;
    lua_pushcclosure(L, gmatch_next, 3);
    return 1;
}

/* Appends the replacement string (argument 3) with its %0-%9 and %% escapes. */
static void add_template(matcher_t *m, luaL_Buffer *b, const char *s, const char *e)
{
    lua_State *L = m->L;
    size_t l;
    const char *t = lua_tolstring(L, 3, &l);
    const char *p;
    while ((p = memchr(t, ESC, l)) != NULL) {
        luaL_addlstring(b, t, (size_t)(p - t));
        p++;
        if (*p == ESC) {
            luaL_addchar(b, ESC);
        } else if (*p >= '0' && *p <= '9') {
            if (*p == '0') {
                luaL_addlstring(b, s, (size_t)(e - s));
            } else {
                push_capture(m, *p - '1', s, e);
                luaL_tolstring(L, -1, NULL);
                lua_remove(L, -2);
                luaL_addvalue(b);
            }
        } else {
            luaL_error(L, "invalid use of '%c' in replacement string", ESC);
        }
        l -= (size_t)(p + 1 - t);
        t = p + 1;
    }
    luaL_addlstring(b, t, l);
}

static void add_value(matcher_t *m, luaL_Buffer *b, const char *s, const char *e, int kind)
{
    lua_State *L = m->L;
    if (kind == LUA_TFUNCTION) {
        lua_pushvalue(L, 3);
        int n = push_captures(m, s, e);
        lua_call(L, n, 1);
    } else if (kind == LUA_TTABLE) {
        push_capture(m, 0, s, e);
        lua_gettable(L, 3);
    } else {
        add_template(m, b, s, e);
        return;
    }
    if (!lua_toboolean(L, -1)) { /* nil or false: keep the original text */
        lua_pop(L, 1);
        luaL_addlstring(b, s, (size_t)(e - s));
    } else if (!lua_isstring(L, -1)) {
        luaL_error(L, "invalid replacement value (a %s)", luaL_typename(L, -1));
    } else {
        luaL_addvalue(b);
    }
}

static int str_gsub(lua_State *L)
{
    size_t ls, lp;
    const char *src = luaL_checklstring(L, 1, &ls);
    const char *p = luaL_checklstring(L, 2, &lp);
    const char *last = NULL;
    int kind = lua_type(L, 3);
    lua_Integer max_n = luaL_optinteger(L, 4, (lua_Integer)ls + 1);
    luaL_argexpected(L,
                     kind == LUA_TNUMBER || kind == LUA_TSTRING || kind == LUA_TFUNCTION ||
                         kind == LUA_TTABLE,
                     3, "string/function/table");
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    bool anchor = lp > 0 && *p == '^';
    if (anchor) {
        p++;
        lp--;
    }
    matcher_t m;
    prepare(&m, L, src, ls, p, lp);
    lua_Integer n = 0;
    while (n < max_n) {
        restart(&m);
        const char *e = do_match(&m, src, p);
        if (e && e != last) {
            n++;
            add_value(&m, &b, src, e, kind);
            src = last = e;
        } else if (src < m.s_end) {
            luaL_addchar(&b, *src++);
        } else {
            break;
        }
        if (anchor)
            break;
    }
    flush(&m);
    luaL_addlstring(&b, src, (size_t)(m.s_end - src));
    luaL_pushresult(&b);
    lua_pushinteger(L, n);
    return 2;
}

void jn_strmatch_install(lua_State *L)
{
    static const luaL_Reg fns[] = {{"find", str_find},
                                   {"match", str_match},
                                   {"gmatch", str_gmatch},
                                   {"gsub", str_gsub},
                                   {NULL, NULL}};
    luaL_setfuncs(L, fns, 0);
}

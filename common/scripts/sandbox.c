/*
 * sandbox.c - the bounded Lua state: allocator, count hook, library set-up and the
 * protected, classified call.
 *
 * Invariants:
 *   - Every Lua API call that may allocate runs under lua_pcall (set-up, calls,
 *     classification), so a refused allocation never reaches the panic handler.
 *   - Once sb->dead is set it never clears, and every thread the sandbox knows about
 *     has its hook at count 1; the others fire within their period and re-arm.
 *   - sb->current is the thread running Lua code right now (the run's coroutine or a
 *     coroutine the script resumed), so the allocator can make it check the clock.
 */
#include "scripts/sandbox.h"

#include <lauxlib.h>
#include <lualib.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/crypto.h"
#include "core/json_util.h"
#include "scripts/luajson.h"
#include "scripts/stdlib.h"

#define MAIN_PERIOD 1000        /* instructions between checks, run thread */
#define CO_PERIOD 100           /* the same in a script's coroutines (see co_resume) */
#define KICK_BYTES (16u << 20)  /* allocation volume that makes the hook check early */
#define DEAD_RESERVE (1u << 20) /* extra memory to report a limit once dead */
#define BUDGET_MESSAGE                                                                             \
    "not enough memory (the scripts running in this worker hold all the memory it gives "          \
    "scripts; try again later)"
#define PAYLOAD_MAX (256u << 10) /* JSON bytes of an error payload */

struct jn_sandbox {
    lua_State *L;
    lua_State *run;     /* the coroutine of the current jn_sandbox_call */
    lua_State *current; /* the thread running Lua code now */
    char name[JN_SCRIPT_NAME_MAX];
    jn_sandbox_limits_t limits;
    size_t mem, mem_peak, since_check;
    uint64_t allocated; /* bytes allocated since the hook last ran: charged at 1 per 16 */
    uint64_t fail_nth;  /* torture tests: fail this allocation (counting down) */
    int fail_burst;
    bool mem_refused, wipe;
    bool budget_refused; /* a refusal came from the process's budget, not this cap */
    uint64_t used;
    int64_t deadline;
    jn_script_status_t dead;
    char dead_message[JN_SCRIPT_MESSAGE_MAX];
    jn_sandbox_print_fn print;
    void *print_ud;
    const atomic_bool *interrupt[2]; /* set from another thread: the run must stop */
    bool interrupted;
};

struct jn_sandbox_box {
    void *resource;
    void (*free_fn)(void *);
};

static const char ERROR_MT = 'e'; /* registry keys: the addresses of these */
static const char BOX_MT = 'b';

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

const char *jn_script_status_str(jn_script_status_t status)
{
    switch (status) {
    case JN_SCRIPT_OK: return "ok";
    case JN_SCRIPT_ERROR: return "script_error";
    case JN_SCRIPT_MEMORY: return "memory_limit";
    case JN_SCRIPT_CPU: return "cpu_limit";
    case JN_SCRIPT_TIMEOUT: return "timeout";
    case JN_SCRIPT_ACTION_FAILED: return "action_failed";
    case JN_SCRIPT_HTTP: return "http_error";
    case JN_SCRIPT_HOST: return "host_error";
    case JN_SCRIPT_INVALID_INPUT: return "invalid_input";
    case JN_SCRIPT_INVALID_OUTPUT: return "invalid_output";
    }
    return "script_error";
}

static jn_sandbox_limits_t limits(uint64_t instructions, int64_t wall_ms, size_t output)
{
    return (jn_sandbox_limits_t){64u << 20, instructions, wall_ms, output};
}

jn_sandbox_limits_t jn_sandbox_limits_action(void)
{
    return limits(10000000000ull, 15 * 60 * 1000, 2u << 20);
}

jn_sandbox_limits_t jn_sandbox_limits_sync(void)
{
    return limits(100000000000ull, 24 * 3600 * 1000, 0);
}

jn_sandbox_limits_t jn_sandbox_limits_webhook(void)
{
    return limits(10000000000ull, 5 * 60 * 1000, 0);
}

jn_sandbox_limits_t jn_sandbox_limits_declaration(void)
{
    return limits(10000000ull, 500, 0);
}

void jn_script_error_cleanup(jn_script_error_t *e)
{
    json_object_put(e->payload);
    memset(e, 0, sizeof *e);
}

/* ---- messages ---- */

size_t jn_sandbox_clean_text(char *dst, size_t cap, const char *src, size_t len)
{
    size_t o = 0;
    const unsigned char *s = (const unsigned char *)src;
    for (size_t i = 0; i < len && o + 1 < cap;) {
        unsigned char c = s[i];
        size_t n = c < 0x80                   ? 1
                   : (c >= 0xc2 && c <= 0xdf) ? 2
                   : (c >= 0xe0 && c <= 0xef) ? 3
                   : (c >= 0xf0 && c <= 0xf4) ? 4
                                              : 0;
        if (n > 1 && (i + n > len || !jn_utf8_valid(src + i, n)))
            n = 0;
        if (n == 0 || (n == 1 && c < 0x20 && c != '\n' && c != '\t') || c == 0x7f) {
            dst[o++] = '?';
            i++;
            continue;
        }
        if (o + n >= cap)
            break;
        memcpy(dst + o, src + i, n);
        o += n;
        i += n;
    }
    dst[o] = '\0';
    return o;
}

/* "source:line: " of the first Lua frame at or above level, or "" when none. */
static void where(lua_State *L, int level, char *out, size_t cap)
{
    lua_Debug ar;
    out[0] = '\0';
    for (; level < 200 && lua_getstack(L, level, &ar); level++) {
        if (lua_getinfo(L, "Sl", &ar) && ar.currentline > 0) {
            snprintf(out, cap, "%s:%d: ", ar.short_src, ar.currentline);
            return;
        }
    }
}

/* True when msg starts with "chunk:123: " within its first line. */
bool jn_sandbox_has_position(const char *msg)
{
    for (const char *p = msg; *p && *p != '\n' && p - msg < 300; p++) {
        if (*p != ':' || p[1] < '0' || p[1] > '9')
            continue;
        const char *q = p + 1;
        while (*q >= '0' && *q <= '9')
            q++;
        if (*q == ':')
            return p != msg;
    }
    return false;
}

/* ---- allocator and hook ---- */

static void hook(lua_State *L, lua_Debug *ar);

static void arm(lua_State *T)
{
    if (T)
        lua_sethook(T, hook, LUA_MASKCOUNT, 1);
}

/* Makes the running thread call the hook at its next instruction. lua_sethook is
 * documented as safe to call asynchronously (from a signal handler), so it is safe
 * from inside the allocator. */
static void kick(jn_sandbox_t *sb)
{
    arm(sb->current);
}

/* ---- the process's budget for all scripts' memory ---- */

static atomic_size_t budget_used;
static atomic_size_t budget_cap; /* 0: no budget */

void jn_sandbox_set_process_budget(size_t bytes)
{
    atomic_store(&budget_cap, bytes);
}

size_t jn_sandbox_process_memory(void)
{
    return atomic_load(&budget_used);
}

/* Takes bytes from the budget; false (nothing taken) when that would pass it. */
static bool budget_take(size_t bytes)
{
    size_t cap = atomic_load(&budget_cap);
    size_t before = atomic_fetch_add(&budget_used, bytes);
    if (cap && (bytes > cap || before > cap - bytes)) {
        atomic_fetch_sub(&budget_used, bytes);
        return false;
    }
    return true;
}

static void budget_give(size_t bytes)
{
    atomic_fetch_sub(&budget_used, bytes);
}

static void *sandbox_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    jn_sandbox_t *sb = ud;
    if (!ptr)
        osize = 0; /* then osize encodes the kind of object */
    if (nsize == 0) {
        if (ptr) {
            if (sb->wipe)
                jn_secure_wipe(ptr, osize);
            free(ptr);
            sb->mem -= osize;
            budget_give(osize);
        }
        return NULL;
    }
    if (nsize > osize) {
        size_t grow = nsize - osize;
        size_t cap = sb->limits.memory_bytes + (sb->dead ? DEAD_RESERVE : 0);
        if (sb->fail_nth && --sb->fail_nth == 0)
            sb->fail_burst = 2; /* the allocation and Lua's retry after collecting */
        if (grow > cap || sb->mem > cap - grow || (sb->fail_burst && sb->fail_burst--)) {
            sb->mem_refused = true;
            return NULL;
        }
        /* A dying state's few bytes for its error are counted, never refused. */
        if (sb->dead) {
            atomic_fetch_add(&budget_used, grow);
        } else if (!budget_take(grow)) {
            sb->mem_refused = sb->budget_refused = true;
            return NULL;
        }
    }
    void *p;
    if (sb->wipe && ptr) {
        /* realloc would free the old block unwiped: move it ourselves. */
        p = malloc(nsize);
        if (!p) {
            if (nsize <= osize) { /* a shrink must not fail: keep the block */
                jn_secure_wipe((char *)ptr + nsize, osize - nsize);
                sb->mem -= osize - nsize;
                budget_give(osize - nsize);
                return ptr;
            }
            budget_give(nsize - osize);
            return NULL;
        }
        memcpy(p, ptr, osize < nsize ? osize : nsize);
        jn_secure_wipe(ptr, osize);
        free(ptr);
    } else {
        p = realloc(ptr, nsize);
        if (!p) {
            if (nsize <= osize)
                return ptr; /* the block is kept whole, and counted so */
            budget_give(nsize - osize);
            return NULL;
        }
    }
    sb->mem = sb->mem - osize + nsize;
    if (nsize < osize)
        budget_give(osize - nsize);
    if (sb->mem > sb->mem_peak)
        sb->mem_peak = sb->mem;
    if (nsize > osize) {
        sb->since_check += nsize - osize;
        sb->allocated += nsize - osize;
        if (sb->since_check > KICK_BYTES) {
            sb->since_check = 0;
            kick(sb);
        }
    }
    return p;
}

jn_sandbox_t *jn_sandbox_of(lua_State *L)
{
    void *ud = NULL;
    return lua_getallocf(L, &ud) == sandbox_alloc ? ud : NULL;
}

static bool interrupted(jn_sandbox_t *sb)
{
    for (int i = 0; i < 2; i++) {
        if (sb->interrupt[i] && atomic_load(sb->interrupt[i]))
            return sb->interrupted = true;
    }
    return false;
}

static const char *limit_text(jn_sandbox_t *sb, char *buf, size_t cap)
{
    if (sb->interrupted)
        snprintf(buf, cap, "stopped: the worker is shutting down or gave the job to another");
    else if (sb->dead == JN_SCRIPT_CPU)
        snprintf(buf, cap, "cpu limit exceeded: more than %llu instructions",
                 (unsigned long long)sb->limits.instructions);
    else
        snprintf(buf, cap, "timeout: the run exceeded its %lld ms", (long long)sb->limits.wall_ms);
    return buf;
}

/* Marks the sandbox dead and records the first message, located by pos. */
static void kill_sandbox(jn_sandbox_t *sb, jn_script_status_t why, const char *pos)
{
    if (sb->dead)
        return;
    sb->dead = why;
    char text[160];
    snprintf(sb->dead_message, sizeof sb->dead_message, "%s%s", pos,
             limit_text(sb, text, sizeof text));
    arm(sb->current);
    arm(sb->run);
    arm(sb->L);
}

static int raise_dead(lua_State *L)
{
    jn_sandbox_t *sb = jn_sandbox_of(L);
    arm(L);
    lua_pushstring(L, sb->dead_message);
    return lua_error(L);
}

static void hook(lua_State *L, lua_Debug *ar)
{
    jn_sandbox_t *sb = jn_sandbox_of(L);
    if (!sb->dead) {
        int period = lua_gethookcount(L);
        /* Work done in C is paid for by what it allocates: '..' of two 8 MB strings is
         * one instruction, but it copies 16 MB. */
        sb->used += (uint64_t)period + sb->allocated / 16;
        sb->since_check = 0;
        sb->allocated = 0;
        jn_script_status_t why = JN_SCRIPT_OK;
        if (sb->used > sb->limits.instructions)
            why = JN_SCRIPT_CPU;
        else if (now_ms() >= sb->deadline || interrupted(sb))
            why = JN_SCRIPT_TIMEOUT;
        if (why == JN_SCRIPT_OK) {
            int want = (L == sb->run || L == sb->L) ? MAIN_PERIOD : CO_PERIOD;
            if (period != want)
                lua_sethook(L, hook, LUA_MASKCOUNT, want);
            return;
        }
        char pos[JN_SCRIPT_NAME_MAX + 40] = "";
        if (lua_getinfo(L, "Sl", ar) && ar->currentline > 0)
            snprintf(pos, sizeof pos, "%s:%d: ", ar->short_src, ar->currentline);
        kill_sandbox(sb, why, pos);
    }
    raise_dead(L);
}

void jn_sandbox_charge(lua_State *L, uint64_t cost)
{
    jn_sandbox_t *sb = jn_sandbox_of(L);
    if (!sb)
        return;
    if (!sb->dead) {
        sb->used += cost;
        jn_script_status_t why = sb->used > sb->limits.instructions            ? JN_SCRIPT_CPU
                                 : now_ms() >= sb->deadline || interrupted(sb) ? JN_SCRIPT_TIMEOUT
                                                                               : JN_SCRIPT_OK;
        if (why == JN_SCRIPT_OK)
            return;
        char pos[JN_SCRIPT_NAME_MAX + 40];
        where(L, 1, pos, sizeof pos);
        kill_sandbox(sb, why, pos);
    }
    raise_dead(L);
}

int64_t jn_sandbox_check_deadline(lua_State *L)
{
    jn_sandbox_t *sb = jn_sandbox_of(L);
    jn_sandbox_charge(L, 0);
    int64_t left = sb ? sb->deadline - now_ms() : 1;
    return left > 0 ? left : 1;
}

void jn_sandbox_set_interrupt(jn_sandbox_t *sb, const atomic_bool *a, const atomic_bool *b)
{
    sb->interrupt[0] = a;
    sb->interrupt[1] = b;
}

int64_t jn_sandbox_remaining_ms(const jn_sandbox_t *sb)
{
    if (sb->dead)
        return 0;
    for (int i = 0; i < 2; i++) {
        if (sb->interrupt[i] && atomic_load(sb->interrupt[i]))
            return 0;
    }
    int64_t left = sb->deadline - now_ms();
    return left > 0 ? left : 0;
}

void jn_sandbox_set_deadline(jn_sandbox_t *sb, int64_t ms)
{
    sb->deadline = now_ms() + ms;
}

/* ---- error objects and boxes ---- */

int jn_sandbox_error(lua_State *L, const char *fmt, ...)
{
    char text[JN_SCRIPT_MESSAGE_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    luaL_where(L, 1);
    lua_pushstring(L, text);
    lua_concat(L, 2);
    return lua_error(L);
}

int jn_sandbox_raise(lua_State *L, jn_script_status_t status, int http_status, bool with_payload,
                     const char *fmt, ...)
{
    char text[JN_SCRIPT_MESSAGE_MAX], pos[JN_SCRIPT_NAME_MAX + 40];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    where(L, 1, pos, sizeof pos);
    int value = lua_gettop(L);
    lua_createtable(L, 0, 5);
    lua_pushstring(L, status == JN_SCRIPT_HTTP            ? "http"
                      : status == JN_SCRIPT_ACTION_FAILED ? "action"
                                                          : "host");
    lua_setfield(L, -2, "kind");
    lua_pushfstring(L, "%s%s", pos, text);
    lua_setfield(L, -2, "message");
    if (http_status) {
        lua_pushinteger(L, http_status);
        lua_setfield(L, -2, "status");
    }
    if (with_payload && status == JN_SCRIPT_HTTP && lua_istable(L, value)) {
        const char *fields[] = {"headers", "data"};
        for (int i = 0; i < 2; i++) {
            lua_getfield(L, value, fields[i]);
            lua_setfield(L, -2, fields[i]);
        }
    } else if (with_payload) {
        lua_pushvalue(L, value);
        lua_setfield(L, -2, "payload");
    }
    lua_rawgetp(L, LUA_REGISTRYINDEX, &ERROR_MT);
    lua_setmetatable(L, -2);
    return lua_error(L);
}

static int error_tostring(lua_State *L)
{
    lua_getfield(L, 1, "message");
    if (!lua_isstring(L, -1))
        lua_pushliteral(L, "error");
    return 1;
}

static int box_gc(lua_State *L)
{
    jn_sandbox_box_release(lua_touserdata(L, 1));
    return 0;
}

static int new_box(lua_State *L)
{
    lua_newuserdatauv(L, sizeof(jn_sandbox_box_t), 0);
    return 1;
}

jn_sandbox_box_t *jn_sandbox_box(lua_State *L, void *resource, void (*free_fn)(void *))
{
    /* The box is made under a pcall: when there is no memory left for it, the resource
     * is freed before the error goes on. */
    if (!lua_checkstack(L, 3)) {
        free_fn(resource);
        jn_sandbox_error(L, "not enough memory");
    }
    lua_pushcfunction(L, new_box);
    if (lua_pcall(L, 0, 1, 0) != LUA_OK) {
        free_fn(resource);
        lua_error(L);
    }
    jn_sandbox_box_t *box = lua_touserdata(L, -1);
    box->resource = resource;
    box->free_fn = free_fn;
    lua_rawgetp(L, LUA_REGISTRYINDEX, &BOX_MT);
    lua_setmetatable(L, -2);
    return box;
}

void jn_sandbox_box_release(jn_sandbox_box_t *box)
{
    if (box && box->resource) {
        void *r = box->resource;
        box->resource = NULL;
        box->free_fn(r);
    }
}

void *jn_sandbox_box_get(const jn_sandbox_box_t *box)
{
    return box ? box->resource : NULL;
}

void *jn_sandbox_box_take(jn_sandbox_box_t *box)
{
    void *r = box->resource;
    box->resource = NULL;
    return r;
}

/* ---- C memory held for the script ---- */

typedef struct {
    jn_sandbox_t *sb;
    size_t bytes;
} reservation_t;

static void reservation_free(void *p)
{
    reservation_t *r = p;
    if (r->sb) {
        r->sb->mem -= r->bytes;
        budget_give(r->bytes);
    }
    free(r);
}

static bool fits(const jn_sandbox_t *sb, size_t bytes)
{
    size_t cap = sb->limits.memory_bytes + (sb->dead ? DEAD_RESERVE : 0);
    return bytes <= cap && sb->mem <= cap - bytes;
}

jn_sandbox_box_t *jn_sandbox_reserve(lua_State *L, size_t bytes)
{
    jn_sandbox_t *sb = jn_sandbox_of(L);
    reservation_t *r = calloc(1, sizeof *r);
    if (!r)
        abort();
    r->sb = sb;
    jn_sandbox_box_t *box = jn_sandbox_box(L, r, reservation_free);
    if (!sb)
        return box;
    if (!fits(sb, bytes))
        lua_gc(L, LUA_GCCOLLECT); /* as a refused allocation does before giving up */
    if (!fits(sb, bytes)) {
        sb->mem_refused = true;
        jn_sandbox_error(L, "not enough memory (the limit is %zu MB)",
                         sb->limits.memory_bytes >> 20);
    }
    if (!budget_take(bytes)) {
        sb->mem_refused = sb->budget_refused = true;
        jn_sandbox_error(L, "%s", BUDGET_MESSAGE);
    }
    sb->mem += bytes;
    r->bytes = bytes;
    if (sb->mem > sb->mem_peak)
        sb->mem_peak = sb->mem;
    return box;
}

/* ---- coroutines ---- */

int jn_sandbox_resume(lua_State *L, lua_State *co, int narg)
{
    jn_sandbox_t *sb = jn_sandbox_of(L);
    if (!lua_checkstack(co, narg)) {
        lua_pushliteral(L, "too many arguments to resume");
        return -1;
    }
    lua_xmove(L, co, narg);
    /* A resumed coroutine runs at most CO_PERIOD instructions before its hook: charge
     * them up front, so a script cannot hide work in many short resumes. */
    jn_sandbox_charge(L, CO_PERIOD);
    lua_sethook(co, hook, LUA_MASKCOUNT, sb->dead ? 1 : CO_PERIOD);
    lua_State *prev = sb->current;
    sb->current = co;
    int nres = 0;
    int status = lua_resume(co, L, narg, &nres);
    sb->current = prev;
    if (status == LUA_OK || status == LUA_YIELD) {
        if (!lua_checkstack(L, nres + 1)) {
            lua_pop(co, nres);
            lua_pushliteral(L, "too many results to resume");
            return -1;
        }
        lua_xmove(co, L, nres);
        return nres;
    }
    lua_xmove(co, L, 1);
    return -1;
}

void jn_sandbox_close_thread(lua_State *co, lua_State *from)
{
    /* Not once the sandbox is dead: an error raised by the hook leaves the thread with
     * hooks off, and no Lua code may run unhooked. */
    if (jn_sandbox_of(from)->dead)
        return;
#if LUA_VERSION_RELEASE_NUM >= 50406
    lua_closethread(co, from);
#else
    lua_resetthread(co);
#endif
}

void jn_sandbox_print(lua_State *L, const char *msg, size_t len)
{
    jn_sandbox_t *sb = jn_sandbox_of(L);
    if (sb && sb->print)
        sb->print(sb->print_ud, msg, len);
}

static int setup(lua_State *L)
{
    jn_stdlib_open(L);
    lua_createtable(L, 0, 3);
    lua_pushcfunction(L, error_tostring);
    lua_setfield(L, -2, "__tostring");
    lua_pushliteral(L, "error");
    lua_setfield(L, -2, "__metatable");
    lua_rawsetp(L, LUA_REGISTRYINDEX, &ERROR_MT);

    lua_createtable(L, 0, 3);
    lua_pushcfunction(L, box_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, box_gc);
    lua_setfield(L, -2, "__close");
    lua_pushliteral(L, "box");
    lua_setfield(L, -2, "__metatable");
    lua_rawsetp(L, LUA_REGISTRYINDEX, &BOX_MT);
    return 0;
}

static int set_print(lua_State *L)
{
    if (lua_toboolean(L, 1))
        lua_pushcfunction(L, jn_stdlib_print);
    else
        lua_pushnil(L);
    lua_setglobal(L, "print");
    return 0;
}

jn_sandbox_t *jn_sandbox_new(const char *name, const jn_sandbox_limits_t *lim)
{
    jn_sandbox_t *sb = calloc(1, sizeof *sb);
    if (!sb)
        abort();
    snprintf(sb->name, sizeof sb->name, "%s", name && *name ? name : "script");
    sb->limits = *lim;
    sb->deadline = now_ms() + lim->wall_ms;
    sb->L = lua_newstate(sandbox_alloc, sb);
    if (!sb->L) {
        free(sb);
        return NULL;
    }
    lua_sethook(sb->L, hook, LUA_MASKCOUNT, MAIN_PERIOD);
    lua_pushcfunction(sb->L, setup);
    lua_pushlightuserdata(sb->L, sb);
    if (lua_pcall(sb->L, 1, 0, 0) != LUA_OK) {
        jn_sandbox_free(sb);
        return NULL;
    }
    /* Building the libraries is not the script's work. */
    sb->used = 0;
    sb->allocated = 0;
    return sb;
}

void jn_sandbox_free(jn_sandbox_t *sb)
{
    if (!sb)
        return;
    sb->current = sb->run = NULL;
    lua_close(sb->L);
    free(sb);
}

lua_State *jn_sandbox_state(jn_sandbox_t *sb)
{
    return sb->L;
}

const char *jn_sandbox_name(const jn_sandbox_t *sb)
{
    return sb->name;
}

const jn_sandbox_limits_t *jn_sandbox_limits(const jn_sandbox_t *sb)
{
    return &sb->limits;
}

void jn_sandbox_set_print(jn_sandbox_t *sb, jn_sandbox_print_fn fn, void *ud)
{
    sb->print = fn;
    sb->print_ud = ud;
    lua_State *L = sb->L;
    /* Setting a global may allocate: do it protected. A failure (no memory left)
     * leaves print as it was. */
    lua_pushcfunction(L, set_print);
    lua_pushboolean(L, fn != NULL);
    if (lua_pcall(L, 1, 0, 0) != LUA_OK)
        lua_pop(L, 1);
}

void jn_sandbox_wipe_on_free(jn_sandbox_t *sb)
{
    sb->wipe = true;
}

uint64_t jn_sandbox_instructions(const jn_sandbox_t *sb)
{
    return sb->used;
}

size_t jn_sandbox_memory(const jn_sandbox_t *sb)
{
    return sb->mem;
}

size_t jn_sandbox_memory_peak(const jn_sandbox_t *sb)
{
    return sb->mem_peak;
}

void jn_sandbox_fail_allocation(jn_sandbox_t *sb, uint64_t nth)
{
    sb->fail_nth = nth;
}

jn_script_status_t jn_sandbox_dead(const jn_sandbox_t *sb)
{
    return sb->dead;
}

/* ---- loading, calling, classifying ---- */

static void fail(jn_script_error_t *err, jn_script_status_t status, const char *prefix,
                 const char *msg, size_t len)
{
    err->status = status;
    err->http_status = 0;
    int n = snprintf(err->message, sizeof err->message, "%s", prefix);
    size_t o = n < 0 ? 0 : (size_t)n < sizeof err->message ? (size_t)n : sizeof err->message - 1;
    jn_sandbox_clean_text(err->message + o, sizeof err->message - o, msg, len);
}

static void fail_dead(jn_sandbox_t *sb, jn_script_error_t *err)
{
    char prefix[JN_SCRIPT_NAME_MAX + 4] = "";
    if (!jn_sandbox_has_position(sb->dead_message))
        snprintf(prefix, sizeof prefix, "%s: ", sb->name);
    fail(err, sb->dead, prefix, sb->dead_message, strlen(sb->dead_message));
}

/* Classifies the error value on top of T without allocating (strings only). */
static void classify_plain(jn_sandbox_t *sb, lua_State *T, int status, const char *pos,
                           jn_script_error_t *err)
{
    char prefix[JN_SCRIPT_NAME_MAX + 48];
    if (sb->dead) {
        fail_dead(sb, err);
        return;
    }
    if (status == LUA_ERRMEM) {
        char text[160];
        if (sb->budget_refused)
            snprintf(text, sizeof text, "%s", BUDGET_MESSAGE);
        else
            snprintf(text, sizeof text, "not enough memory (the limit is %zu MB)",
                     sb->limits.memory_bytes >> 20);
        snprintf(prefix, sizeof prefix, "%s", *pos ? pos : "");
        if (!*pos)
            snprintf(prefix, sizeof prefix, "%s: ", sb->name);
        fail(err, JN_SCRIPT_MEMORY, prefix, text, strlen(text));
        return;
    }
    if (lua_type(T, -1) == LUA_TSTRING) {
        size_t len;
        const char *msg = lua_tolstring(T, -1, &len);
        jn_script_status_t st = JN_SCRIPT_ERROR;
        if (sb->mem_refused && strstr(msg, "not enough memory"))
            st = JN_SCRIPT_MEMORY;
        prefix[0] = '\0';
        if (!jn_sandbox_has_position(msg))
            snprintf(prefix, sizeof prefix, "%s", *pos ? pos : "");
        if (!jn_sandbox_has_position(msg) && !*pos)
            snprintf(prefix, sizeof prefix, "%s: ", sb->name);
        fail(err, st, prefix, msg, len);
        return;
    }
    char text[64];
    snprintf(text, sizeof text, "(error object is a %s value)", luaL_typename(T, -1));
    snprintf(prefix, sizeof prefix, "%s", *pos ? pos : "");
    if (!*pos)
        snprintf(prefix, sizeof prefix, "%s: ", sb->name);
    fail(err, JN_SCRIPT_ERROR, prefix, text, strlen(text));
}

static bool is_error_object(lua_State *T, int idx)
{
    if (!lua_istable(T, idx) || !lua_getmetatable(T, idx))
        return false;
    lua_rawgetp(T, LUA_REGISTRYINDEX, &ERROR_MT);
    bool same = lua_rawequal(T, -1, -2);
    lua_pop(T, 2);
    return same;
}

/* Converts the value at idx to JSON for a payload, or an explanation when it cannot. */
static json_object *payload_json(lua_State *T, int idx)
{
    jn_luajson_caps_t caps = jn_luajson_caps_default();
    caps.max_bytes = PAYLOAD_MAX;
    json_object *out = NULL;
    char why[256];
    if (jn_luajson_to_json(T, idx, &caps, &out, why, sizeof why) != JN_OK) {
        out = json_object_new_object();
        json_object_object_add(out, "message", json_object_new_string("payload not encodable"));
        json_object_object_add(out, "reason", json_object_new_string(why));
    }
    return out;
}

/* Classifies the error on top of T; may allocate (runs protected). */
static void classify(jn_sandbox_t *sb, lua_State *T, int status, const char *pos,
                     jn_script_error_t *err)
{
    int top = lua_gettop(T);
    if (sb->dead || status == LUA_ERRMEM || !is_error_object(T, top)) {
        if (!sb->dead && lua_istable(T, top) && lua_getfield(T, top, "message") == LUA_TSTRING)
            lua_replace(T, top);
        else
            lua_settop(T, top);
        classify_plain(sb, T, status, pos, err);
        return;
    }
    lua_getfield(T, top, "kind");
    const char *kind = lua_tostring(T, -1);
    jn_script_status_t st = !kind                         ? JN_SCRIPT_ERROR
                            : strcmp(kind, "http") == 0   ? JN_SCRIPT_HTTP
                            : strcmp(kind, "action") == 0 ? JN_SCRIPT_ACTION_FAILED
                            : strcmp(kind, "host") == 0   ? JN_SCRIPT_HOST
                                                          : JN_SCRIPT_ERROR;
    lua_getfield(T, top, "message");
    size_t len = 0;
    const char *msg = lua_type(T, -1) == LUA_TSTRING ? lua_tolstring(T, -1, &len) : "error";
    if (!len)
        len = strlen(msg);
    fail(err, st, jn_sandbox_has_position(msg) ? "" : pos, msg, len);
    lua_settop(T, top);
    if (st == JN_SCRIPT_HTTP) {
        lua_getfield(T, top, "status");
        err->http_status = (int)lua_tointeger(T, -1);
        lua_createtable(T, 0, 3);
        const char *fields[] = {"status", "headers", "data"};
        for (int i = 0; i < 3; i++) {
            lua_getfield(T, top, fields[i]);
            lua_setfield(T, -2, fields[i]);
        }
        err->payload = payload_json(T, lua_gettop(T));
    } else if (st == JN_SCRIPT_ACTION_FAILED) {
        lua_getfield(T, top, "payload");
        json_object *p = payload_json(T, lua_gettop(T));
        if (p && !json_object_is_type(p, json_type_object)) {
            json_object *wrapped = json_object_new_object();
            json_object_object_add(wrapped, "message", p);
            p = wrapped;
        }
        err->payload = p;
    }
    lua_settop(T, top);
}

jn_script_status_t jn_sandbox_load(jn_sandbox_t *sb, const char *source, size_t len,
                                   jn_script_error_t *err)
{
    lua_State *L = sb->L;
    memset(err, 0, sizeof *err);
    if (sb->dead) {
        fail_dead(sb, err);
        return err->status;
    }
    char chunk[JN_SCRIPT_NAME_MAX + 2];
    snprintf(chunk, sizeof chunk, "=%s", sb->name);
    int st = luaL_loadbufferx(L, source, len, chunk, "t");
    if (st == LUA_OK)
        return JN_SCRIPT_OK;
    classify_plain(sb, L, st, "", err);
    lua_pop(L, 1);
    return err->status;
}

typedef struct {
    jn_sandbox_t *sb;
    int nargs, nresults;
    jn_script_error_t *err;
} call_t;

/* Runs [func args] in a new coroutine; see jn_sandbox_call. Protected by lua_pcall. */
static int call_trampoline(lua_State *L)
{
    call_t *c = lua_touserdata(L, -1);
    lua_pop(L, 1);
    jn_sandbox_t *sb = c->sb;
    lua_State *co = lua_newthread(L);
    lua_insert(L, 1);
    lua_xmove(L, co, c->nargs + 1);
    lua_sethook(co, hook, LUA_MASKCOUNT, sb->dead ? 1 : MAIN_PERIOD);
    lua_State *prev_run = sb->run, *prev_current = sb->current;
    sb->run = sb->current = co;
    int nres = 0;
    int status = lua_resume(co, L, c->nargs, &nres);
    sb->run = prev_run;
    sb->current = prev_current;
    if (status == LUA_OK) {
        if (nres > c->nresults) {
            lua_pop(co, nres - c->nresults);
            nres = c->nresults;
        }
        luaL_checkstack(L, c->nresults + 1, "results");
        lua_xmove(co, L, nres);
        for (; nres < c->nresults; nres++)
            lua_pushnil(L);
        return c->nresults;
    }
    char pos[JN_SCRIPT_NAME_MAX + 48];
    where(co, 0, pos, sizeof pos);
    if (status == LUA_YIELD) {
        lua_settop(co, 0);
        lua_pushliteral(co, "attempt to yield from outside a coroutine");
        status = LUA_ERRRUN;
    }
    classify(sb, co, status, pos, c->err);
    jn_sandbox_close_thread(co, L);
    return 0;
}

jn_script_status_t jn_sandbox_call(jn_sandbox_t *sb, int nargs, int nresults,
                                   jn_script_error_t *err)
{
    lua_State *L = sb->L;
    memset(err, 0, sizeof *err);
    int base = lua_gettop(L) - nargs - 1;
    if (sb->dead) {
        lua_settop(L, base);
        fail_dead(sb, err);
        return err->status;
    }
    if (!lua_checkstack(L, 3)) {
        lua_settop(L, base);
        fail(err, JN_SCRIPT_MEMORY, "", "not enough memory", 17);
        return err->status;
    }
    call_t c = {sb, nargs, nresults, err};
    lua_pushcfunction(L, call_trampoline);
    lua_insert(L, base + 1);
    lua_pushlightuserdata(L, &c);
    int st = lua_pcall(L, nargs + 2, LUA_MULTRET, 0);
    if (st != LUA_OK) {
        /* The trampoline itself failed (no memory left to report the error). */
        jn_script_error_cleanup(err);
        classify_plain(sb, L, st, "", err);
        lua_settop(L, base);
        return err->status;
    }
    if (err->status != JN_SCRIPT_OK) {
        lua_settop(L, base);
        return err->status;
    }
    return JN_SCRIPT_OK;
}

jn_script_status_t jn_sandbox_protect(jn_sandbox_t *sb, lua_CFunction fn, void *ud, int nargs,
                                      int nresults, jn_script_error_t *err)
{
    lua_State *L = sb->L;
    memset(err, 0, sizeof *err);
    if (sb->dead) {
        lua_pop(L, nargs);
        fail_dead(sb, err);
        return err->status;
    }
    if (!lua_checkstack(L, 3)) {
        lua_pop(L, nargs);
        fail(err, JN_SCRIPT_MEMORY, "", "not enough memory", 17);
        return err->status;
    }
    lua_pushcfunction(L, fn);
    lua_insert(L, -(nargs + 1));
    lua_pushlightuserdata(L, ud);
    lua_insert(L, -(nargs + 1));
    int st = lua_pcall(L, nargs + 1, nresults, 0);
    if (st == LUA_OK)
        return JN_SCRIPT_OK;
    classify_plain(sb, L, st, "", err);
    lua_pop(L, 1);
    return err->status;
}

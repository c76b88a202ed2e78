/*
 * sandbox.h - a fresh, bounded Lua 5.4 state for one script run.
 *
 * Every job gets its own state (about 60 µs to build, see bench/sandbox.c), so nothing
 * survives between runs and no pool needs cleaning. The state holds only what a script
 * needs (stdlib.h): the base library without bytecode loading, file access or
 * garbage-collector control; string (without string.dump), table, math, utf8,
 * coroutine; os.time, os.date, os.clock and os.difftime; and json (luajson.h). print
 * writes to the run's log when a sink is set and does not exist otherwise.
 *
 * Three limits, all set in jn_sandbox_limits_t:
 *   memory       the allocator refuses an allocation past the cap. Lua then collects
 *                garbage and retries once, so a refusal raises "not enough memory" only
 *                when the memory really is in use; like any Lua error it may be caught,
 *                and the cap still holds.
 *   instructions a count hook adds up VM instructions. Library functions whose cost
 *                grows with their arguments (pattern matching, table.sort/move/insert/
 *                remove/unpack/concat, utf8.len, string.byte) charge that cost too.
 *   wall clock   a deadline on the monotonic clock, checked by the hook at least every
 *                1,000 instructions and after every 16 MB allocated, and by host
 *                functions, which ask jn_sandbox_remaining_ms() how long they may block.
 * Past the instruction budget or the deadline the sandbox is dead: the hook fires on
 * every instruction of every coroutine and raises again, so pcall, xpcall and
 * coroutines cannot swallow it (Redis switches its hook the same way after SCRIPT KILL).
 *
 * Tables may not carry a __gc metamethod (setmetatable refuses it): finalizers run
 * with hooks off, where no limit could stop them.
 *
 * Errors are classified (jn_script_status_t) and reported as "name:line: message",
 * where name is the script's name. A sandbox and everything it returns belong to one
 * thread.
 */
#ifndef JN_SANDBOX_H
#define JN_SANDBOX_H

#include <json-c/json.h>
#include <lua.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

/* What became of a run. Callers map these to the API's error codes. */
typedef enum {
    JN_SCRIPT_OK = 0,
    JN_SCRIPT_ERROR,          /* a syntax or run-time error, or error() in the script */
    JN_SCRIPT_MEMORY,         /* the memory cap was reached and the error not handled */
    JN_SCRIPT_CPU,            /* the instruction budget is spent */
    JN_SCRIPT_TIMEOUT,        /* the wall-clock deadline passed */
    JN_SCRIPT_ACTION_FAILED,  /* the script failed the action on purpose, with a payload */
    JN_SCRIPT_HTTP,           /* a provider answered an error status, not handled */
    JN_SCRIPT_HOST,           /* a host service failed (network, database, ...) */
    JN_SCRIPT_INVALID_INPUT,  /* the input did not match the declared model */
    JN_SCRIPT_INVALID_OUTPUT, /* the result did not match its model or was too large */
} jn_script_status_t;

/* A stable lowercase name: "script_error", "memory_limit", "cpu_limit", "timeout",
 * "action_failed", "http_error", "host_error", "invalid_input", "invalid_output". */
const char *jn_script_status_str(jn_script_status_t status);

typedef struct {
    size_t memory_bytes;   /* cap on the state's memory */
    uint64_t instructions; /* VM instructions (and charged library work) */
    int64_t wall_ms;       /* from jn_sandbox_new() to the deadline */
    size_t output_bytes;   /* cap on a result's JSON (an action's output); 0 = none */
} jn_sandbox_limits_t;

/* Defaults per kind of run (docs/scripts.md gives the reasons):
 *              memory  instructions  wall         output
 *   action     64 MB   1e10          15 min       2 MB
 *   sync       64 MB   1e11          24 h         -
 *   webhook    64 MB   1e10          5 min        -
 *   declaration 64 MB  1e7           500 ms       -   (loading a file at deploy time) */
jn_sandbox_limits_t jn_sandbox_limits_action(void);
jn_sandbox_limits_t jn_sandbox_limits_sync(void);
jn_sandbox_limits_t jn_sandbox_limits_webhook(void);
jn_sandbox_limits_t jn_sandbox_limits_declaration(void);

#define JN_SCRIPT_MESSAGE_MAX 1024
#define JN_SCRIPT_NAME_MAX 64 /* buffer size: names of up to 63 bytes */

/* A classified failure. message is "name:line: what" (the line when one is known). */
typedef struct {
    jn_script_status_t status;
    char message[JN_SCRIPT_MESSAGE_MAX];
    int http_status;      /* JN_SCRIPT_HTTP: the provider's status */
    json_object *payload; /* owned; ACTION_FAILED: the script's payload; HTTP: {status,
                             headers, data}; NULL otherwise */
} jn_script_error_t;

/* Frees the payload and resets e to JN_SCRIPT_OK. */
void jn_script_error_cleanup(jn_script_error_t *e);

/* Copies len bytes of script text into dst (capacity cap, NUL-terminated) so that it
 * is safe in a JSON string and a log line: invalid UTF-8 and control characters other
 * than newline and tab become '?', and the cut falls between characters. Returns the
 * length written. */
size_t jn_sandbox_clean_text(char *dst, size_t cap, const char *src, size_t len);

typedef struct jn_sandbox jn_sandbox_t;

/* Where print() and the sandbox's own notices go. msg is not NUL-terminated. */
typedef void (*jn_sandbox_print_fn)(void *ud, const char *msg, size_t len);

/* A new state with the libraries above. name (copied, cut to JN_SCRIPT_NAME_MAX-1) is
 * the chunk name used in messages. The deadline starts now. Returns NULL only when the
 * limits leave no room for the libraries themselves. */
jn_sandbox_t *jn_sandbox_new(const char *name, const jn_sandbox_limits_t *limits);

/* Closes the state; NULL is fine. */
void jn_sandbox_free(jn_sandbox_t *sb);

/* The state, to push arguments and read results. Borrowed. */
lua_State *jn_sandbox_state(jn_sandbox_t *sb);

/* The sandbox a state belongs to (any of its coroutines), or NULL for a state that
 * no sandbox created. */
jn_sandbox_t *jn_sandbox_of(lua_State *L);

const char *jn_sandbox_name(const jn_sandbox_t *sb);
const jn_sandbox_limits_t *jn_sandbox_limits(const jn_sandbox_t *sb);

/* Sends print() to fn (NULL removes print). */
void jn_sandbox_set_print(jn_sandbox_t *sb, jn_sandbox_print_fn fn, void *ud);

/* After this, memory the state frees is zeroed first: call it before a secret (a
 * connection's credentials) enters the state. */
void jn_sandbox_wipe_on_free(jn_sandbox_t *sb);

/* Compiles source (text only, never bytecode) as the chunk `name` and pushes the
 * function. A syntax error is JN_SCRIPT_ERROR with "name:line: message". */
jn_script_status_t jn_sandbox_load(jn_sandbox_t *sb, const char *source, size_t len,
                                   jn_script_error_t *err);

/* Calls the function below nargs arguments on top of the state, in a fresh coroutine
 * so that a failure can be located on its intact stack, and leaves exactly nresults
 * values (padded with nil) on success. On failure nothing is left and err is set. A
 * dead sandbox fails at once with the limit that killed it. */
jn_script_status_t jn_sandbox_call(jn_sandbox_t *sb, int nargs, int nresults,
                                   jn_script_error_t *err);

/* Runs fn protected, for C code that must touch the state (any push may fail to
 * allocate): fn receives a light userdata ud as argument 1, then the nargs values that
 * were on top of the stack (they are consumed). fn's nresults results stay on the
 * stack. A failure is classified as for jn_sandbox_call, without a line. */
jn_script_status_t jn_sandbox_protect(jn_sandbox_t *sb, lua_CFunction fn, void *ud, int nargs,
                                      int nresults, jn_script_error_t *err);

/* Flags another thread may set to stop the run at once (a worker draining, a lease
 * lost): checked with the deadline, by the hook and host functions; a set flag kills the
 * sandbox as the deadline would (JN_SCRIPT_TIMEOUT, "stopped: ..."). Either may be NULL;
 * they must outlive the sandbox. */
void jn_sandbox_set_interrupt(jn_sandbox_t *sb, const atomic_bool *a, const atomic_bool *b);

/* Milliseconds before the deadline, 0 when it has passed or the run was told to stop.
 * For host functions, which must give up by then. */
int64_t jn_sandbox_remaining_ms(const jn_sandbox_t *sb);

/* Moves the deadline to now + ms (e.g. to count from when a job was accepted). */
void jn_sandbox_set_deadline(jn_sandbox_t *sb, int64_t ms);

/* The budget all sandboxes of this process share (JUNCTION_WORKER_SCRIPT_MEMORY_MB on the
 * worker), so that a tenant allowed a large memory cap cannot, with a few concurrent runs,
 * take the memory the worker needs for everyone: an allocation that would pass it is
 * refused like one past the state's own cap, with a message saying the worker's scripts
 * hold it all. 0 (the default) sets no budget. Call before sandboxes run. */
void jn_sandbox_set_process_budget(size_t bytes);

/* Memory held by every sandbox of this process (and their reservations) now. */
size_t jn_sandbox_process_memory(void);

/* Usage so far. */
uint64_t jn_sandbox_instructions(const jn_sandbox_t *sb);
size_t jn_sandbox_memory(const jn_sandbox_t *sb);
size_t jn_sandbox_memory_peak(const jn_sandbox_t *sb);

/* For torture tests: the nth allocation that grows memory from now on fails, as if
 * the cap were reached (0 turns it off). */
void jn_sandbox_fail_allocation(jn_sandbox_t *sb, uint64_t nth);

/* The limit that killed the sandbox, or JN_SCRIPT_OK while it lives. */
jn_script_status_t jn_sandbox_dead(const jn_sandbox_t *sb);

/* --- For C functions the sandbox exposes (host functions, libraries) --- */

/* Adds cost instructions to the budget and checks the deadline; raises (does not
 * return) when either is exceeded. */
void jn_sandbox_charge(lua_State *L, uint64_t cost);

/* Raises the timeout when the deadline has passed; otherwise returns the milliseconds
 * left (at least 1). */
int64_t jn_sandbox_check_deadline(lua_State *L);

/* luaL_error with printf's formatting (luaL_error knows only %s %d %f %p %c %U): raises
 * "name:line: " + the text, located at the Lua code that called the running C
 * function. Does not return. */
int jn_sandbox_error(lua_State *L, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Raises an error object of status (ACTION_FAILED, HTTP or HOST) whose message is
 * "name:line: " + the formatted text, at the line of the Lua code that called the
 * running C function. The value on top of the stack, when with_payload, becomes its
 * payload (ACTION_FAILED) or data (HTTP); http_status is the HTTP status or 0. A
 * script that catches it sees a table {kind, message, status, data | payload}, whose
 * tostring is the message; raising it again keeps its class. Does not return. */
int jn_sandbox_raise(lua_State *L, jn_script_status_t status, int http_status, bool with_payload,
                     const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* Resumes the coroutine co with narg values from L's top as the running thread, under
 * the sandbox's accounting: a coroutine is hooked every 100 instructions and each
 * resume is charged 100 up front, so work cannot hide in many short resumes. Returns
 * the number of results moved to L, or -1 with the error value on top of L. */
int jn_sandbox_resume(lua_State *L, lua_State *co, int narg);

/* Runs the pending to-be-closed variables of a failed coroutine, unless the sandbox is
 * dead (an error raised by the hook leaves the thread with hooks off). */
void jn_sandbox_close_thread(lua_State *co, lua_State *from);

/* Sends a line to the print sink (nothing without one). */
void jn_sandbox_print(lua_State *L, const char *msg, size_t len);

/* True when msg starts with a position "chunk:123: ". */
bool jn_sandbox_has_position(const char *msg);

/* Frees the resource with free_fn when the returned box is collected or released,
 * whichever comes first: a C function holding memory across calls that may raise
 * (any Lua allocation) boxes it so that nothing leaks. Pushes the box. */
typedef struct jn_sandbox_box jn_sandbox_box_t;
jn_sandbox_box_t *jn_sandbox_box(lua_State *L, void *resource, void (*free_fn)(void *));
/* Frees the resource now (idempotent). */
void jn_sandbox_box_release(jn_sandbox_box_t *box);
/* Takes the resource back without freeing it. */
void *jn_sandbox_box_take(jn_sandbox_box_t *box);
/* The resource, or NULL once released. A box is also a to-be-closed value: closing it
 * releases it (for generic-for loops). */
void *jn_sandbox_box_get(const jn_sandbox_box_t *box);

/* Counts bytes of C memory that a library or host function holds for the script (a JSON
 * tree decoded in C before it becomes Lua values) against the memory cap, as if Lua had
 * allocated them: when they do not fit even after a full collection, raises "not enough
 * memory" like a refused allocation. Pushes a box; releasing it (or its collection)
 * gives the bytes back. */
jn_sandbox_box_t *jn_sandbox_reserve(lua_State *L, size_t bytes);

#endif

/*
 * stdlib.h - the libraries a script sees (opened by the sandbox for every state).
 *
 *   base      without dofile, loadfile, collectgarbage, require and warn; load compiles
 *             text only; xpcall skips the script's message handler once the sandbox
 *             is dead (handlers run before the stack unwinds, with hooks off when the
 *             error came from the hook); setmetatable gives a table a snapshot of its
 *             metatable and refuses __gc and __concat (see sandbox.h)
 *   string    without dump; find, match, gmatch and gsub from strmatch.h; the shared
 *             string metatable is locked
 *   table, math, utf8
 *   coroutine resume and wrap run through jn_sandbox_resume (accounting, the running
 *             thread); close refuses once the sandbox is dead
 *   os        time, date, clock and difftime only
 *   json      luajson.h
 * Library functions whose work grows with their arguments charge it to the budget:
 * table.sort (n log n), table.insert/remove (#t), table.move/unpack/concat (the
 * range), string.byte/len and utf8.len/offset/codepoint (bytes / 16).
 */
#ifndef JN_STDLIB_H
#define JN_STDLIB_H

#include <lua.h>

/* Opens the libraries above into L's globals. Runs protected (it allocates). */
void jn_stdlib_open(lua_State *L);

/* print(...): the arguments as text, tab-separated, cut at 8 KB, to the sandbox's
 * print sink. The sandbox installs it as the global print when a sink is set. */
int jn_stdlib_print(lua_State *L);

#endif

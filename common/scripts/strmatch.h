/*
 * strmatch.h - Lua's pattern matching (string.find, match, gmatch, gsub) with a cost.
 *
 * Lua's own matcher backtracks in C, where no count hook runs: string.find(s, p) with
 * a few ".-" on a long subject can take hours. This implementation follows the Lua 5.4
 * reference manual (§6.4.1 patterns, §6.4 the four functions) exactly, and charges
 * every matching step to the sandbox's instruction budget (jn_sandbox_charge), so the
 * budget and the deadline stop a runaway match like any other loop. Outside a sandbox
 * it charges nothing.
 */
#ifndef JN_STRMATCH_H
#define JN_STRMATCH_H

#include <lua.h>

/* Sets find, match, gmatch and gsub in the table on top of the stack (the string
 * library, which is also the strings' __index). */
void jn_strmatch_install(lua_State *L);

#endif

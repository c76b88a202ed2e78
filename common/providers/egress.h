/*
 * egress.h - which addresses outbound requests may reach (SSRF policy).
 *
 * Requests sent on behalf of users (the proxy, scripts, OAuth token calls) go to URLs that
 * users and provider definitions control, so they must not be turned against the network
 * Junction runs in: loopback, private ranges, link-local (cloud metadata at
 * 169.254.169.254) and the other special-purpose ranges are refused. The decision is made
 * on the address actually connected to, after name resolution (the caller calls
 * jn_egress_allowed from libcurl's CURLOPT_OPENSOCKETFUNCTION), never on URL text: a
 * host name, "2130706433" or "0x7f000001" all reach the resolver first and arrive here as
 * 127.0.0.1.
 *
 * Refused, unless the allowlist admits the address:
 *   IPv4  0.0.0.0/8, 10/8, 100.64/10, 127/8, 169.254/16, 172.16/12, 192.0.0/24, 192.0.2/24,
 *         192.168/16, 198.18/15, 198.51.100/24, 203.0.113/24, 224/4, 240/4, 255.255.255.255
 *   IPv6  ::/128, ::1/128, fc00::/7, fe80::/10, fec0::/10, ff00::/8, 2001:db8::/32, and
 *         anything outside global unicast 2000::/3 not listed below
 *   IPv6 addresses that embed an IPv4 address are judged by the IPv4 rules applied to it:
 *         IPv4-mapped ::ffff:0:0/96, IPv4-compatible ::/96, NAT64 64:ff9b::/96,
 *         6to4 2002::/16 and Teredo 2001::/32 (its client address)
 *   any address family other than AF_INET and AF_INET6
 *
 * An environment's allowlist is itself bounded by the operator's ceiling
 * (jn_egress_set_ceiling).
 *
 * The allowlist is matched against the normalized address: an embedded IPv4 address
 * against the IPv4 entries (so "127.0.0.0/8" admits ::ffff:127.0.0.1), the IPv6 address
 * itself against the IPv6 entries. A policy is immutable once built, so any number of
 * threads may share one.
 */
#ifndef JN_EGRESS_H
#define JN_EGRESS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include "core/err.h"

#define JN_EGRESS_MAX_ENTRIES 1024 /* CIDRs in one allowlist */

typedef struct jn_egress_policy jn_egress_policy_t;

/* Builds a policy. allowlist is a comma-separated list of CIDRs admitted even though they
 * are internal: IPv4 ("127.0.0.0/8", "10.1.2.3/32") or IPv6 ("::1/128", "fd00::/8"); spaces
 * around entries are ignored and a bare address means that one host. NULL or "" admits
 * nothing extra. An empty entry, a bad address or prefix length, or host bits set past the
 * prefix ("10.0.0.1/8") is JN_ERR_INVALID with a why naming the entry. *out is new (free
 * it with jn_egress_policy_free). Aborts when out of memory. why may be NULL. */
jn_err_t jn_egress_policy_new(const char *allowlist, jn_egress_policy_t **out, char *why,
                              size_t why_len);

/* Frees p; NULL is a no-op. */
void jn_egress_policy_free(jn_egress_policy_t *p);

/* The policy for an environment's stored allow-list, the one way every part of Junction
 * gets it: compiled once per distinct text and kept for the life of the process (there are
 * few distinct lists, and calls in flight may hold one). An empty list gives NULL (nothing
 * extra is allowed). A list that does not compile — possible only if the table was edited
 * by hand, since the API checks it — is logged and also gives NULL: everyone fails closed
 * the same way. Thread-safe. */
const jn_egress_policy_t *jn_egress_policy_shared(const char *allowlist);

/* The operator's ceiling (JUNCTION_EGRESS_ADMISSIBLE): the internal ranges an environment's
 * allow-list may open at all. An internal address passes only when both the environment's
 * list and the ceiling admit it, so a tenant cannot open the network Junction runs in
 * beyond what the operator allows (its own admin ports, a database, other services).
 * admissible is a list in the allow-list syntax; NULL or "" lets environments open
 * nothing internal. Set once at start-up by the engine, before any request; until then
 * (unit tests of policies) allow-lists are not narrowed. JN_ERR_INVALID with why for a
 * list that does not parse (the ceiling is then unchanged). */
jn_err_t jn_egress_set_ceiling(const char *admissible, char *why, size_t why_len);

/* Checks that every entry of allowlist lies inside the ceiling (entries of one family
 * inside an entry of the same family). JN_ERR_INVALID with why naming the first entry
 * that does not, or when allowlist does not parse. JN_OK for NULL or "", and for any list
 * while no ceiling was set. */
jn_err_t jn_egress_within_ceiling(const char *allowlist, char *why, size_t why_len);

/* Decides for one socket address (a struct sockaddr_in or sockaddr_in6 of len bytes).
 * Returns true when it may be connected to (why is then set to ""); when refused, writes
 * a reason into why, such as "127.0.0.1 is a loopback address" or "::ffff:10.0.0.1
 * (IPv4-mapped 10.0.0.1) is a private address". p may be NULL: no allowlist. why may be
 * NULL. Thread-safe. */
bool jn_egress_allowed(const jn_egress_policy_t *p, const struct sockaddr *addr, socklen_t len,
                       char *why, size_t why_len);

/* The same decision for an address literal ("127.0.0.1", "::ffff:127.0.0.1"), as
 * inet_pton reads it: for tests and for explaining a refusal in logs. Anything that is not
 * an IPv4 or IPv6 literal is refused. */
bool jn_egress_allowed_text(const jn_egress_policy_t *p, const char *ip, char *why, size_t why_len);

/* Whether p's own entries include the address literal ip (an embedded IPv4 address also
 * against the IPv4 entries), whatever the address is and whatever the ceiling says: for
 * refusing lists that name an address no environment may ever reach. */
bool jn_egress_policy_lists(const jn_egress_policy_t *p, const char *ip);

/* The policy applied to one libcurl transfer: checked when a socket is opened and again
 * when a pooled connection is reused (so a connection opened for another environment's
 * allowed address is not borrowed). Embed one per transfer; it must outlive it. */
typedef struct {
    const jn_egress_policy_t *policy;
    bool refused;
    char reason[192];
} jn_egress_guard_t;

/* Installs the guard's checks on a CURL easy handle (void * to keep curl out of this
 * header). After the transfer, guard->refused tells whether it was stopped. */
void jn_egress_guard_curl(void *curl_easy, jn_egress_guard_t *guard);

#endif

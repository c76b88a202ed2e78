/*
 * egress.c - the SSRF policy: classifying one address as public or internal.
 *
 * An address is reduced to its family and bytes (an IPv6 address that embeds an IPv4 one
 * also yields that IPv4 address); the allowlist is consulted first, then fixed tables of
 * special-purpose ranges. Called once per connection attempt, so a linear scan of a few
 * dozen ranges and of the allowlist is all the speed needed. No globals and no allocation
 * after jn_egress_policy_new.
 */
#include "providers/egress.h"

#include "core/log.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdint.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SHOWN_CAP 64 /* bytes of an allowlist entry quoted in an error */

typedef struct {
    int family; /* AF_INET: b[0..3]; AF_INET6: b[0..15] */
    uint8_t b[16];
} addr_t;

typedef struct {
    addr_t net;
    unsigned prefix;
} cidr_t;

struct jn_egress_policy {
    cidr_t *entries;
    size_t n;
};

typedef struct {
    uint8_t net[4];
    unsigned prefix;
    const char *what;
} range4_t;

typedef struct {
    uint8_t net[16];
    unsigned prefix;
    const char *what;
} range6_t;

/* Most specific first where ranges nest (255.255.255.255 inside 240/4). */
static const range4_t refused4[] = {
    {{0, 0, 0, 0}, 8, "a \"this network\" address"},
    {{10, 0, 0, 0}, 8, "a private address"},
    {{100, 64, 0, 0}, 10, "a carrier-grade NAT address"},
    {{127, 0, 0, 0}, 8, "a loopback address"},
    {{169, 254, 0, 0}, 16, "a link-local address (cloud metadata)"},
    {{172, 16, 0, 0}, 12, "a private address"},
    {{192, 0, 0, 0}, 24, "a reserved address (IETF protocol assignments)"},
    {{192, 0, 2, 0}, 24, "a documentation address"},
    {{192, 168, 0, 0}, 16, "a private address"},
    {{198, 18, 0, 0}, 15, "a benchmarking address"},
    {{198, 51, 100, 0}, 24, "a documentation address"},
    {{203, 0, 113, 0}, 24, "a documentation address"},
    {{224, 0, 0, 0}, 4, "a multicast address"},
    {{255, 255, 255, 255}, 32, "a broadcast address"},
    {{240, 0, 0, 0}, 4, "a reserved address"},
};

/* Checked after the ranges that embed IPv4 addresses have been handled. */
static const range6_t refused6[] = {
    {{0}, 128, "an unspecified address"},
    {{[15] = 1}, 128, "a loopback address"},
    {{0xfc}, 7, "a unique-local address"},
    {{0xfe, 0x80}, 10, "a link-local address"},
    {{0xfe, 0xc0}, 10, "a site-local address"},
    {{0xff}, 8, "a multicast address"},
    {{0x20, 0x01, 0x0d, 0xb8}, 32, "a documentation address"},
};

/* IPv6 ranges whose addresses carry an IPv4 address, judged by the IPv4 rules. */
typedef enum {
    EMBED_NONE,
    EMBED_MAPPED,
    EMBED_COMPAT,
    EMBED_NAT64,
    EMBED_6TO4,
    EMBED_TEREDO
} embed_t;

static const char *const embed_names[] = {"",      "IPv4-mapped", "IPv4-compatible",
                                          "NAT64", "6to4",        "Teredo"};

static void oom(void)
{
    fputs("egress: out of memory\n", stderr);
    abort();
}

static void say(char *why, size_t why_len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void say(char *why, size_t why_len, const char *fmt, ...)
{
    if (!why || !why_len)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, why_len, fmt, ap);
    va_end(ap);
}

/* True when the first prefix bits of a and b are equal. */
static bool prefix_equal(const uint8_t *a, const uint8_t *b, unsigned prefix)
{
    unsigned whole = prefix / 8, rest = prefix % 8;
    if (memcmp(a, b, whole) != 0)
        return false;
    if (rest == 0)
        return true;
    uint8_t mask = (uint8_t)(0xff << (8 - rest));
    return (a[whole] & mask) == (b[whole] & mask);
}

/* When the IPv6 address a6 embeds an IPv4 address, copies it into v4 and says how. */
static embed_t embedded_v4(const uint8_t *a6, uint8_t *v4)
{
    static const uint8_t mapped[12] = {[10] = 0xff, [11] = 0xff};
    static const uint8_t nat64[12] = {0x00, 0x64, 0xff, 0x9b};
    static const uint8_t zero[12] = {0};
    if (memcmp(a6, mapped, 12) == 0) {
        memcpy(v4, a6 + 12, 4);
        return EMBED_MAPPED;
    }
    if (memcmp(a6, nat64, 12) == 0) {
        memcpy(v4, a6 + 12, 4);
        return EMBED_NAT64;
    }
    /* ::/96, except :: and ::1, which have IPv6 meanings of their own. */
    if (memcmp(a6, zero, 12) == 0 && !(a6[12] == 0 && a6[13] == 0 && a6[14] == 0 && a6[15] <= 1)) {
        memcpy(v4, a6 + 12, 4);
        return EMBED_COMPAT;
    }
    if (a6[0] == 0x20 && a6[1] == 0x02) { /* 2002:AABB:CCDD::/48 */
        memcpy(v4, a6 + 2, 4);
        return EMBED_6TO4;
    }
    if (a6[0] == 0x20 && a6[1] == 0x01 && a6[2] == 0 && a6[3] == 0) {
        /* Teredo: the client's address is the last 32 bits, inverted. */
        for (int i = 0; i < 4; i++)
            v4[i] = (uint8_t)~a6[12 + i];
        return EMBED_TEREDO;
    }
    return EMBED_NONE;
}

static const char *classify4(const uint8_t *v4)
{
    for (size_t i = 0; i < sizeof refused4 / sizeof refused4[0]; i++) {
        if (prefix_equal(v4, refused4[i].net, refused4[i].prefix))
            return refused4[i].what;
    }
    return NULL;
}

static const char *classify6(const uint8_t *a6)
{
    for (size_t i = 0; i < sizeof refused6 / sizeof refused6[0]; i++) {
        if (prefix_equal(a6, refused6[i].net, refused6[i].prefix))
            return refused6[i].what;
    }
    if ((a6[0] & 0xe0) != 0x20) /* outside 2000::/3 */
        return "a reserved address";
    return NULL;
}

static bool admitted(const jn_egress_policy_t *p, int family, const uint8_t *b)
{
    for (size_t i = 0; p && i < p->n; i++) {
        if (p->entries[i].net.family == family &&
            prefix_equal(b, p->entries[i].net.b, p->entries[i].prefix))
            return true;
    }
    return false;
}

/* The operator's ceiling; ceiling_set false: none given yet (allow-lists not narrowed). */
static jn_egress_policy_t *ceiling;
static bool ceiling_set;

static bool within_ceiling(int family, const uint8_t *b)
{
    return !ceiling_set || admitted(ceiling, family, b);
}

static bool decide(const jn_egress_policy_t *p, const addr_t *a, char *why, size_t why_len)
{
    char text[INET6_ADDRSTRLEN], text4[INET_ADDRSTRLEN];
    uint8_t v4[4];
    embed_t embed = EMBED_NONE;
    const char *what;

    if (a->family == AF_INET) {
        memcpy(v4, a->b, 4);
        if (admitted(p, AF_INET, v4) && within_ceiling(AF_INET, v4))
            goto allowed;
        what = classify4(v4);
    } else {
        embed = embedded_v4(a->b, v4);
        if ((admitted(p, AF_INET6, a->b) && within_ceiling(AF_INET6, a->b)) ||
            (embed != EMBED_NONE && admitted(p, AF_INET, v4) && within_ceiling(AF_INET, v4)))
            goto allowed;
        what = embed != EMBED_NONE ? classify4(v4) : classify6(a->b);
    }
    if (!what)
        goto allowed;
    if (!inet_ntop(a->family, a->b, text, sizeof text))
        snprintf(text, sizeof text, "?");
    if (embed == EMBED_NONE) {
        say(why, why_len, "%s is %s", text, what);
    } else {
        if (!inet_ntop(AF_INET, v4, text4, sizeof text4))
            snprintf(text4, sizeof text4, "?");
        say(why, why_len, "%s (%s %s) is %s", text, embed_names[embed], text4, what);
    }
    return false;

allowed:
    say(why, why_len, "%s", "");
    return true;
}

bool jn_egress_allowed(const jn_egress_policy_t *p, const struct sockaddr *addr, socklen_t len,
                       char *why, size_t why_len)
{
    addr_t a = {0};
    if (!addr || len < (socklen_t)sizeof(sa_family_t)) {
        say(why, why_len, "no socket address");
        return false;
    }
    if (addr->sa_family == AF_INET) {
        struct sockaddr_in sin;
        if (len < (socklen_t)sizeof sin) {
            say(why, why_len, "truncated IPv4 socket address (%u bytes)", (unsigned)len);
            return false;
        }
        memcpy(&sin, addr, sizeof sin);
        a.family = AF_INET;
        memcpy(a.b, &sin.sin_addr, 4);
    } else if (addr->sa_family == AF_INET6) {
        struct sockaddr_in6 sin6;
        if (len < (socklen_t)sizeof sin6) {
            say(why, why_len, "truncated IPv6 socket address (%u bytes)", (unsigned)len);
            return false;
        }
        memcpy(&sin6, addr, sizeof sin6);
        a.family = AF_INET6;
        memcpy(a.b, &sin6.sin6_addr, 16);
    } else {
        say(why, why_len, "address family %d is neither IPv4 nor IPv6", (int)addr->sa_family);
        return false;
    }
    return decide(p, &a, why, why_len);
}

/* Reads an IPv4 or IPv6 literal of exactly n bytes. */
static bool parse_addr(const char *s, size_t n, addr_t *a)
{
    char buf[INET6_ADDRSTRLEN + 1];
    if (n == 0 || n >= sizeof buf)
        return false;
    memcpy(buf, s, n);
    buf[n] = '\0';
    memset(a, 0, sizeof *a);
    if (inet_pton(AF_INET, buf, a->b) == 1) {
        a->family = AF_INET;
        return true;
    }
    if (inet_pton(AF_INET6, buf, a->b) == 1) {
        a->family = AF_INET6;
        return true;
    }
    return false;
}

bool jn_egress_allowed_text(const jn_egress_policy_t *p, const char *ip, char *why, size_t why_len)
{
    addr_t a;
    if (!ip || !parse_addr(ip, strlen(ip), &a)) {
        say(why, why_len, "'%.*s' is not an IP address", SHOWN_CAP, ip ? ip : "(null)");
        return false;
    }
    return decide(p, &a, why, why_len);
}

bool jn_egress_policy_lists(const jn_egress_policy_t *p, const char *ip)
{
    addr_t a;
    if (!ip || !parse_addr(ip, strlen(ip), &a))
        return false;
    if (a.family == AF_INET)
        return admitted(p, AF_INET, a.b);
    uint8_t v4[4];
    return admitted(p, AF_INET6, a.b) ||
           (embedded_v4(a.b, v4) != EMBED_NONE && admitted(p, AF_INET, v4));
}

/* Parses one allowlist entry "addr[/prefix]" of n bytes (already trimmed). */
static jn_err_t parse_entry(const char *s, size_t n, size_t index, cidr_t *out, char *why,
                            size_t why_len)
{
    const char *slash = memchr(s, '/', n);
    size_t alen = slash ? (size_t)(slash - s) : n;
    int shown = n > SHOWN_CAP ? SHOWN_CAP : (int)n;
    if (!parse_addr(s, alen, &out->net)) {
        say(why, why_len, "egress allowlist: entry %zu '%.*s': not an IPv4 or IPv6 address", index,
            shown, s);
        return JN_ERR_INVALID;
    }
    unsigned max = out->net.family == AF_INET ? 32 : 128;
    out->prefix = max;
    if (slash) {
        const char *d = slash + 1;
        size_t dlen = n - alen - 1;
        char digits[4];
        bool ok = dlen > 0 && dlen < sizeof digits;
        for (size_t i = 0; ok && i < dlen; i++)
            ok = d[i] >= '0' && d[i] <= '9';
        long v = -1;
        if (ok) {
            memcpy(digits, d, dlen);
            digits[dlen] = '\0';
            char *end;
            errno = 0;
            v = strtol(digits, &end, 10);
            ok = errno == 0 && *end == '\0' && v >= 0 && v <= (long)max;
        }
        if (!ok) {
            say(why, why_len, "egress allowlist: entry %zu '%.*s': prefix length must be 0 to %u",
                index, shown, s, max);
            return JN_ERR_INVALID;
        }
        out->prefix = (unsigned)v;
    }
    /* Host bits past the prefix are a typo more often than not ("10.0.0.1/8"). */
    for (unsigned bit = out->prefix; bit < max; bit++) {
        if (out->net.b[bit / 8] & (0x80 >> (bit % 8))) {
            say(why, why_len, "egress allowlist: entry %zu '%.*s': host bits set past /%u", index,
                shown, s, out->prefix);
            return JN_ERR_INVALID;
        }
    }
    return JN_OK;
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t';
}

jn_err_t jn_egress_policy_new(const char *allowlist, jn_egress_policy_t **out, char *why,
                              size_t why_len)
{
    *out = NULL;
    jn_egress_policy_t *p = calloc(1, sizeof *p);
    if (!p)
        oom();
    if (!allowlist || !*allowlist) {
        *out = p;
        return JN_OK;
    }
    size_t count = 1;
    for (const char *c = allowlist; *c; c++)
        count += *c == ',';
    if (count > JN_EGRESS_MAX_ENTRIES) {
        say(why, why_len, "egress allowlist: %zu entries, at most %d", count,
            JN_EGRESS_MAX_ENTRIES);
        free(p);
        return JN_ERR_INVALID;
    }
    p->entries = calloc(count, sizeof *p->entries);
    if (!p->entries)
        oom();
    const char *s = allowlist;
    for (size_t i = 0; i < count; i++) {
        const char *comma = strchr(s, ',');
        const char *end = comma ? comma : s + strlen(s);
        const char *b = s, *e = end;
        while (b < e && is_space(*b))
            b++;
        while (e > b && is_space(e[-1]))
            e--;
        if (b == e) {
            say(why, why_len, "egress allowlist: entry %zu is empty", i + 1);
            jn_egress_policy_free(p);
            return JN_ERR_INVALID;
        }
        jn_err_t err = parse_entry(b, (size_t)(e - b), i + 1, &p->entries[i], why, why_len);
        if (err) {
            jn_egress_policy_free(p);
            return err;
        }
        p->n++;
        s = comma ? comma + 1 : end;
    }
    *out = p;
    return JN_OK;
}

void jn_egress_policy_free(jn_egress_policy_t *p)
{
    if (!p)
        return;
    free(p->entries);
    free(p);
}

/* ---- the operator's ceiling ---- */

jn_err_t jn_egress_set_ceiling(const char *admissible, char *why, size_t why_len)
{
    jn_egress_policy_t *p = NULL;
    jn_err_t err = jn_egress_policy_new(admissible, &p, why, why_len);
    if (err)
        return err;
    /* Set before any request thread exists; a second call (tests) replaces it. */
    jn_egress_policy_free(ceiling);
    ceiling = p;
    ceiling_set = true;
    return JN_OK;
}

jn_err_t jn_egress_within_ceiling(const char *allowlist, char *why, size_t why_len)
{
    jn_egress_policy_t *p = NULL;
    jn_err_t err = jn_egress_policy_new(allowlist, &p, why, why_len);
    if (err || !ceiling_set) {
        jn_egress_policy_free(p);
        return err;
    }
    for (size_t i = 0; i < p->n; i++) {
        const cidr_t *e = &p->entries[i];
        bool inside = false;
        for (size_t j = 0; j < ceiling->n && !inside; j++) {
            const cidr_t *c = &ceiling->entries[j];
            inside = c->net.family == e->net.family && e->prefix >= c->prefix &&
                     prefix_equal(e->net.b, c->net.b, c->prefix);
        }
        if (!inside) {
            char text[INET6_ADDRSTRLEN];
            if (!inet_ntop(e->net.family, e->net.b, text, sizeof text))
                snprintf(text, sizeof text, "?");
            say(why, why_len,
                "entry %zu (%s/%u) is outside JUNCTION_EGRESS_ADMISSIBLE, the internal ranges "
                "an environment may open here",
                i + 1, text, e->prefix);
            jn_egress_policy_free(p);
            return JN_ERR_INVALID;
        }
    }
    jn_egress_policy_free(p);
    return JN_OK;
}

/* ---- shared policies ---- */

typedef struct shared_policy {
    struct shared_policy *next;
    char *allowlist;
    jn_egress_policy_t *policy;
} shared_policy_t;

static pthread_mutex_t shared_lock = PTHREAD_MUTEX_INITIALIZER;
static shared_policy_t *shared_policies;

const jn_egress_policy_t *jn_egress_policy_shared(const char *allowlist)
{
    if (!allowlist || !allowlist[0])
        return NULL;
    pthread_mutex_lock(&shared_lock);
    for (shared_policy_t *p = shared_policies; p; p = p->next) {
        if (strcmp(p->allowlist, allowlist) == 0) {
            pthread_mutex_unlock(&shared_lock);
            return p->policy;
        }
    }
    jn_egress_policy_t *policy = NULL;
    char why[256];
    if (jn_egress_policy_new(allowlist, &policy, why, sizeof why) != JN_OK) {
        jn_log_error("egress",
                     "a stored egress allow-list is invalid (%s); no internal address is "
                     "allowed until it is fixed",
                     why);
        policy = NULL;
    }
    shared_policy_t *node = calloc(1, sizeof *node);
    if (!node)
        abort();
    node->allowlist = strdup(allowlist);
    if (!node->allowlist)
        abort();
    node->policy = policy;
    node->next = shared_policies;
    shared_policies = node;
    pthread_mutex_unlock(&shared_lock);
    return policy;
}

/* ---- applying the policy to libcurl ---- */

static curl_socket_t guard_open_socket(void *ud, curlsocktype purpose,
                                       struct curl_sockaddr *address)
{
    jn_egress_guard_t *g = ud;
    (void)purpose;
    if (!jn_egress_allowed(g->policy, &address->addr, address->addrlen, g->reason,
                           sizeof g->reason)) {
        g->refused = true;
        return CURL_SOCKET_BAD;
    }
    return socket(address->family, address->socktype, address->protocol);
}

static int guard_prereq(void *ud, char *primary_ip, char *local_ip, int primary_port,
                        int local_port)
{
    jn_egress_guard_t *g = ud;
    (void)local_ip;
    (void)primary_port;
    (void)local_port;
    if (!jn_egress_allowed_text(g->policy, primary_ip, g->reason, sizeof g->reason)) {
        g->refused = true;
        return CURL_PREREQFUNC_ABORT;
    }
    return CURL_PREREQFUNC_OK;
}

void jn_egress_guard_curl(void *curl_easy, jn_egress_guard_t *guard)
{
    CURL *e = curl_easy;
    guard->refused = false;
    guard->reason[0] = '\0';
    curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, guard_open_socket);
    curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA, guard);
    curl_easy_setopt(e, CURLOPT_PREREQFUNCTION, guard_prereq);
    curl_easy_setopt(e, CURLOPT_PREREQDATA, guard);
}

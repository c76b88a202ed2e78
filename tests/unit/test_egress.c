/* Unit tests for common/providers/egress.c: which addresses outbound requests may reach. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/un.h>

#include "providers/egress.h"

typedef struct {
    const char *ip;
    const char *refused; /* a phrase of the reason, or NULL when allowed */
} case_t;

static void check_cases(const jn_egress_policy_t *p, const case_t *cases, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char why[256] = "unset";
        bool ok = jn_egress_allowed_text(p, cases[i].ip, why, sizeof why);
        if (!cases[i].refused) {
            if (!ok)
                fail_msg("%s was refused: %s", cases[i].ip, why);
            assert_string_equal(why, "");
        } else {
            if (ok)
                fail_msg("%s was allowed", cases[i].ip);
            if (!strstr(why, cases[i].refused))
                fail_msg("%s: '%s' does not mention '%s'", cases[i].ip, why, cases[i].refused);
        }
    }
}

static void test_table(void **state)
{
    (void)state;
    static const case_t cases[] = {
        /* public */
        {"93.184.216.34", NULL},
        {"8.8.8.8", NULL},
        {"1.1.1.1", NULL},
        {"2606:4700::1111", NULL},
        {"2a00:1450:4001:82b::200e", NULL},
        {"::ffff:93.184.216.34", NULL},
        {"64:ff9b::808:808", NULL}, /* NAT64 of 8.8.8.8 */
        {"172.15.255.255", NULL},   /* just below 172.16/12 */
        {"172.32.0.0", NULL},       /* just above */
        {"100.63.255.255", NULL},
        {"100.128.0.0", NULL},
        {"223.255.255.255", NULL},
        /* IPv4 */
        {"0.0.0.0", "this network"},
        {"0.1.2.3", "this network"},
        {"10.0.0.1", "a private address"},
        {"10.255.255.255", "a private address"},
        {"100.64.0.1", "a carrier-grade NAT address"},
        {"100.127.255.254", "a carrier-grade NAT address"},
        {"127.0.0.1", "127.0.0.1 is a loopback address"},
        {"127.255.255.254", "a loopback address"},
        {"169.254.169.254", "a link-local address (cloud metadata)"},
        {"172.16.0.1", "a private address"},
        {"172.31.255.255", "a private address"},
        {"192.0.0.8", "a reserved address"},
        {"192.0.2.1", "a documentation address"},
        {"192.168.1.1", "a private address"},
        {"198.18.0.1", "a benchmarking address"},
        {"198.19.255.255", "a benchmarking address"},
        {"198.51.100.7", "a documentation address"},
        {"203.0.113.9", "a documentation address"},
        {"224.0.0.1", "a multicast address"},
        {"239.255.255.250", "a multicast address"},
        {"240.0.0.1", "a reserved address"},
        {"255.255.255.255", "a broadcast address"},
        /* IPv6 */
        {"::", "an unspecified address"},
        {"::1", "::1 is a loopback address"},
        {"fd12::1", "a unique-local address"},
        {"fc00::1", "a unique-local address"},
        {"fe80::1", "a link-local address"},
        {"febf:ffff::1", "a link-local address"},
        {"fec0::1", "a site-local address"},
        {"ff02::1", "a multicast address"},
        {"2001:db8::1", "a documentation address"},
        {"100::1", "a reserved address"},           /* discard-only, outside 2000::/3 */
        {"4000::1", "a reserved address"},          /* unassigned */
        {"64:ff9b:1::a00:1", "a reserved address"}, /* local-use NAT64 */
        /* IPv6 carrying an IPv4 address */
        {"::ffff:7f00:1", "::ffff:127.0.0.1 (IPv4-mapped 127.0.0.1) is a loopback address"},
        {"::ffff:127.0.0.1", "a loopback address"},
        {"::ffff:169.254.169.254", "a link-local address (cloud metadata)"},
        {"::ffff:10.1.2.3", "a private address"},
        {"::127.0.0.1", "(IPv4-compatible 127.0.0.1) is a loopback address"},
        {"::10.0.0.1", "a private address"},
        {"64:ff9b::a9fe:a9fe", "(NAT64 169.254.169.254) is a link-local address (cloud metadata)"},
        {"64:ff9b::7f00:1", "a loopback address"},
        {"2002:a00:1::1", "(6to4 10.0.0.1) is a private address"},
        {"2002:7f00:1::", "a loopback address"},
        {"2001:0:4136:e378:8000:63bf:80ff:fffe", "(Teredo 127.0.0.1) is a loopback address"},
        /* not addresses */
        {"[not an ip]", "not an IP address"},
        {"", "not an IP address"},
        {"[::1]", "not an IP address"},
        {"fe80::1%eth0", "not an IP address"},
        {"127.1", "not an IP address"},
        {"0x7f000001", "not an IP address"},
        {"2130706433", "not an IP address"},
        {"localhost", "not an IP address"},
    };
    check_cases(NULL, cases, sizeof cases / sizeof cases[0]);
    jn_egress_policy_t *p = NULL;
    assert_int_equal(jn_egress_policy_new(NULL, &p, NULL, 0), JN_OK);
    check_cases(p, cases, sizeof cases / sizeof cases[0]);
    jn_egress_policy_free(p);
    assert_int_equal(jn_egress_policy_new("", &p, NULL, 0), JN_OK);
    check_cases(p, cases, sizeof cases / sizeof cases[0]);
    jn_egress_policy_free(p);
    assert_false(jn_egress_allowed_text(NULL, NULL, NULL, 0));
    assert_false(jn_egress_allowed_text(NULL, "127.0.0.1", NULL, 0));
    assert_true(jn_egress_allowed_text(NULL, "8.8.8.8", NULL, 0));
}

static void test_allowlist(void **state)
{
    (void)state;
    jn_egress_policy_t *p = NULL;
    char why[256] = "";
    assert_int_equal(
        jn_egress_policy_new(" 127.0.0.0/8 , fd00::/8,192.168.1.10, ::1/128", &p, why, sizeof why),
        JN_OK);
    static const case_t cases[] = {
        {"127.0.0.1", NULL},
        {"127.9.9.9", NULL},
        {"::ffff:127.0.0.1", NULL},
        {"::127.0.0.1", NULL},
        {"64:ff9b::7f00:1", NULL},
        {"::1", NULL},
        {"fd12::1", NULL},
        {"192.168.1.10", NULL},
        {"::ffff:192.168.1.10", NULL},
        {"192.168.1.11", "a private address"},
        {"10.0.0.1", "a private address"},
        {"::ffff:10.0.0.1", "a private address"},
        {"169.254.169.254", "cloud metadata"},
        {"fc00::1", "a unique-local address"},
        {"fe80::1", "a link-local address"},
        {"93.184.216.34", NULL},
    };
    check_cases(p, cases, sizeof cases / sizeof cases[0]);
    jn_egress_policy_free(p);

    /* An IPv6 entry for the mapped range admits mapped addresses only. */
    assert_int_equal(jn_egress_policy_new("::ffff:10.0.0.0/104", &p, why, sizeof why), JN_OK);
    static const case_t mapped[] = {
        {"::ffff:10.0.0.1", NULL},
        {"10.0.0.1", "a private address"},
    };
    check_cases(p, mapped, sizeof mapped / sizeof mapped[0]);
    jn_egress_policy_free(p);

    /* 0.0.0.0/0 admits every IPv4 address, and no IPv6 one. */
    assert_int_equal(jn_egress_policy_new("0.0.0.0/0", &p, why, sizeof why), JN_OK);
    assert_true(jn_egress_allowed_text(p, "10.0.0.1", NULL, 0));
    assert_false(jn_egress_allowed_text(p, "fd00::1", NULL, 0));
    jn_egress_policy_free(p);
}

/* The operator's ceiling bounds what an environment's list opens, at run time and when a
 * list is checked; the last test (it sets process-wide state). */
static void test_ceiling(void **state)
{
    (void)state;
    char why[256] = "";
    assert_int_equal(jn_egress_set_ceiling("127.0.0.0/8, ::1/128, 10.1.0.0/16", why, sizeof why),
                     JN_OK);
    jn_egress_policy_t *p = NULL;
    assert_int_equal(jn_egress_policy_new("0.0.0.0/0, ::/0", &p, why, sizeof why), JN_OK);
    static const case_t cases[] = {
        {"127.0.0.1", NULL},
        {"::ffff:127.0.0.1", NULL},
        {"::1", NULL},
        {"10.1.2.3", NULL},
        {"10.2.0.1", "a private address"},
        {"::ffff:10.2.0.1", "a private address"},
        {"169.254.169.254", "cloud metadata"},
        {"192.168.1.1", "a private address"},
        {"fd00::1", "a unique-local address"},
        {"93.184.216.34", NULL}, /* public addresses never needed a list */
    };
    check_cases(p, cases, sizeof cases / sizeof cases[0]);
    jn_egress_policy_free(p);

    assert_int_equal(jn_egress_within_ceiling("127.0.0.1/32, 10.1.5.0/24, ::1", why, sizeof why),
                     JN_OK);
    assert_int_equal(jn_egress_within_ceiling("", why, sizeof why), JN_OK);
    assert_int_equal(jn_egress_within_ceiling("127.0.0.1, 10.0.0.0/8", why, sizeof why),
                     JN_ERR_INVALID);
    assert_non_null(strstr(why, "entry 2 (10.0.0.0/8)"));
    assert_non_null(strstr(why, "JUNCTION_EGRESS_ADMISSIBLE"));
    assert_int_equal(jn_egress_within_ceiling("::ffff:127.0.0.1/128", why, sizeof why),
                     JN_ERR_INVALID); /* one family inside the same family only */
    assert_int_equal(jn_egress_within_ceiling("127.0.0.1/99", why, sizeof why), JN_ERR_INVALID);

    /* A bad ceiling is refused and leaves the one in force. */
    assert_int_equal(jn_egress_set_ceiling("10.0.0.1/8", why, sizeof why), JN_ERR_INVALID);
    assert_int_equal(jn_egress_within_ceiling("10.1.0.0/16", why, sizeof why), JN_OK);

    /* An empty ceiling lets no environment open anything internal. */
    assert_int_equal(jn_egress_set_ceiling("", why, sizeof why), JN_OK);
    assert_int_equal(jn_egress_policy_new("127.0.0.0/8", &p, why, sizeof why), JN_OK);
    assert_false(jn_egress_allowed_text(p, "127.0.0.1", why, sizeof why));
    assert_non_null(strstr(why, "loopback"));
    assert_true(jn_egress_allowed_text(p, "93.184.216.34", NULL, 0));
    jn_egress_policy_free(p);
    assert_int_equal(jn_egress_within_ceiling("127.0.0.1", why, sizeof why), JN_ERR_INVALID);
}

static void test_bad_allowlist(void **state)
{
    (void)state;
    static const struct {
        const char *list;
        const char *mention;
    } cases[] = {
        {"127.0.0.1/33", "entry 1 '127.0.0.1/33': prefix length must be 0 to 32"},
        {"nonsense", "entry 1 'nonsense': not an IPv4 or IPv6 address"},
        {"10.0.0.0/8,", "entry 2 is empty"},
        {",10.0.0.0/8", "entry 1 is empty"},
        {"10.0.0.0/8,,::1", "entry 2 is empty"},
        {"10.0.0.0/8, ", "entry 2 is empty"},
        {"::1/129", "prefix length must be 0 to 128"},
        {"10.0.0.0/", "'10.0.0.0/': prefix length"},
        {"10.0.0.0/-1", "prefix length"},
        {"10.0.0.0/+8", "prefix length"},
        {"10.0.0.0/08x", "prefix length"},
        {"10.0.0.0/0008", "prefix length"},
        {"10.0.0.1/8", "entry 1 '10.0.0.1/8': host bits set past /8"},
        {"fd00::1/8", "host bits set"},
        {"10.0.0.0/8, 300.1.1.1/32", "entry 2 '300.1.1.1/32': not an IPv4 or IPv6 address"},
        {"10.0.0.0 /8", "not an IPv4 or IPv6 address"},
        {"/8", "not an IPv4 or IPv6 address"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        jn_egress_policy_t *p = (jn_egress_policy_t *)1;
        char why[256] = "";
        if (jn_egress_policy_new(cases[i].list, &p, why, sizeof why) != JN_ERR_INVALID)
            fail_msg("'%s' was accepted", cases[i].list);
        assert_null(p);
        if (!strstr(why, cases[i].mention))
            fail_msg("'%s': '%s' does not mention '%s'", cases[i].list, why, cases[i].mention);
    }
    /* Too many entries. */
    char big[JN_EGRESS_MAX_ENTRIES * 4 + 16];
    size_t n = 0;
    for (int i = 0; i <= JN_EGRESS_MAX_ENTRIES; i++)
        n += (size_t)snprintf(big + n, sizeof big - n, "%s::1", i ? "," : "");
    jn_egress_policy_t *p = NULL;
    char why[256] = "";
    assert_int_equal(jn_egress_policy_new(big, &p, why, sizeof why), JN_ERR_INVALID);
    assert_non_null(strstr(why, "at most"));
}

static void test_sockaddr(void **state)
{
    (void)state;
    char why[256];
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(443)};
    assert_int_equal(inet_pton(AF_INET, "169.254.169.254", &sin.sin_addr), 1);
    assert_false(jn_egress_allowed(NULL, (struct sockaddr *)&sin, sizeof sin, why, sizeof why));
    assert_string_equal(why, "169.254.169.254 is a link-local address (cloud metadata)");
    assert_int_equal(inet_pton(AF_INET, "93.184.216.34", &sin.sin_addr), 1);
    assert_true(jn_egress_allowed(NULL, (struct sockaddr *)&sin, sizeof sin, why, sizeof why));
    assert_string_equal(why, "");
    /* A truncated address is refused, whatever it holds. */
    assert_false(jn_egress_allowed(NULL, (struct sockaddr *)&sin, sizeof sin - 4, why, sizeof why));
    assert_non_null(strstr(why, "truncated"));

    struct sockaddr_in6 sin6 = {.sin6_family = AF_INET6, .sin6_port = htons(443)};
    assert_int_equal(inet_pton(AF_INET6, "::ffff:127.0.0.1", &sin6.sin6_addr), 1);
    assert_false(jn_egress_allowed(NULL, (struct sockaddr *)&sin6, sizeof sin6, why, sizeof why));
    assert_non_null(strstr(why, "a loopback address"));
    assert_false(jn_egress_allowed(NULL, (struct sockaddr *)&sin6, sizeof sin, why, sizeof why));
    assert_non_null(strstr(why, "truncated"));
    assert_int_equal(inet_pton(AF_INET6, "2606:4700::1111", &sin6.sin6_addr), 1);
    assert_true(jn_egress_allowed(NULL, (struct sockaddr *)&sin6, sizeof sin6, why, sizeof why));

    jn_egress_policy_t *p = NULL;
    assert_int_equal(jn_egress_policy_new("127.0.0.0/8", &p, why, sizeof why), JN_OK);
    assert_int_equal(inet_pton(AF_INET6, "::ffff:127.0.0.1", &sin6.sin6_addr), 1);
    assert_true(jn_egress_allowed(p, (struct sockaddr *)&sin6, sizeof sin6, why, sizeof why));

    /* Other families are refused, even with an allowlist. */
    struct sockaddr_un local = {.sun_family = AF_UNIX};
    snprintf(local.sun_path, sizeof local.sun_path, "/run/x.sock");
    assert_false(jn_egress_allowed(p, (struct sockaddr *)&local, sizeof local, why, sizeof why));
    assert_non_null(strstr(why, "neither IPv4 nor IPv6"));
    struct sockaddr unspec = {.sa_family = AF_UNSPEC};
    assert_false(jn_egress_allowed(p, &unspec, sizeof unspec, why, sizeof why));
    assert_false(jn_egress_allowed(p, NULL, 0, why, sizeof why));
    jn_egress_policy_free(p);
}

/* Host spellings that text checks on URLs miss: the resolver turns them into 127.0.0.1,
 * and the check on the resolved address refuses them. This is plain getaddrinfo, as curl
 * calls it, not AI_NUMERICHOST. */
static void test_resolved_spellings(void **state)
{
    (void)state;
    static const char *const hosts[] = {"2130706433", "0x7f000001", "0177.0.0.1",
                                        "127.1",      "0x7f.1",     "017700000001"};
    for (size_t i = 0; i < sizeof hosts / sizeof hosts[0]; i++) {
        struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
        struct addrinfo *res = NULL;
        if (getaddrinfo(hosts[i], "443", &hints, &res) != 0) {
            /* This libc does not read the spelling as an address (it would then be looked
             * up as a name and fail): nothing reaches the connect step to judge. */
            print_message("skipped '%s': not parsed by this resolver\n", hosts[i]);
            continue;
        }
        int seen = 0;
        for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
            char why[256];
            if (jn_egress_allowed(NULL, ai->ai_addr, ai->ai_addrlen, why, sizeof why))
                fail_msg("'%s' resolved to an allowed address", hosts[i]);
            if (!strstr(why, "127.0.0.1 is a loopback address"))
                fail_msg("'%s': %s", hosts[i], why);
            seen++;
        }
        freeaddrinfo(res);
        assert_true(seen > 0);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_allowlist),
        cmocka_unit_test(test_bad_allowlist),
        cmocka_unit_test(test_sockaddr),
        cmocka_unit_test(test_resolved_spellings),
        cmocka_unit_test(test_ceiling),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

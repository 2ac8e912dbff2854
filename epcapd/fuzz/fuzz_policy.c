/*
 * fuzz_policy.c: libFuzzer harness for the installation's policy file,
 * epcapd.conf (policy.c, policy_parse()).
 *
 * One input is the whole file. The file is root's, but the helper parses it
 * at every start of every caller, before it drops anything: what it
 * accepts must hold what policy.c takes for granted, and check_parsed()
 * aborts, which libFuzzer reports as a crash, on anything else.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../epcapd.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

void fuzz_exit(void)
{
    abort(); /* policy_parse() never dies */
}

#define REQUIRE(cond)                                                         \
    do {                                                                      \
        if (!(cond)) {                                                        \
            fprintf(stderr, "policy_parse accepted a bad value: %s\n", #cond); \
            abort();                                                          \
        }                                                                     \
    } while (0)

static void check_values(const policy_t *p, const char *const *values, int count)
{
    int i;

    REQUIRE(count >= 0 && count < EPCAPD_POLICY_VALUES);
    for (i = 0; i < count; i++) {
        REQUIRE(values[i] >= p->text && values[i] < p->text + sizeof(p->text));
        REQUIRE(values[i][0] != '\0' && values[i][0] != '#');
        REQUIRE(strpbrk(values[i], " \t\r\n#") == NULL);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static policy_t p;
    char why[128];

    if (policy_parse(&p, (const char *)data, size, why, sizeof(why)) != 0) {
        REQUIRE(why[0] != '\0');
        return 0;
    }
    REQUIRE(size <= EPCAPD_POLICY_MAX);
    check_values(&p, p.user, p.nuser);
    check_values(&p, p.group, p.ngroup);
    check_values(&p, p.chroot, p.nchroot);
    check_values(&p, p.inject, p.ninject);
    REQUIRE(p.max_buffer >= 1 && p.max_buffer <= 2147483647LL);
    return 0;
}

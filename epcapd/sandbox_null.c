/*
 * sandbox_null.c: no sandbox. For debugging only (strace shows every call
 * the loop makes): make SANDBOX=null.
 */
#include "epcapd.h"

const char *const sandbox_name = "null";

void sandbox_setup(epcapd_t *st)
{
    (void)st;
}

void sandbox_enter(epcapd_t *st)
{
    (void)st;
}

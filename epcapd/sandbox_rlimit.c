/* sandbox_rlimit.c: resource limits only (make SANDBOX=rlimit). */
#include "epcapd.h"

const char *const sandbox_name = "rlimit";

void sandbox_enter(epcapd_t *st)
{
    (void)st;
    rlimits_apply();
}

/* sandbox_rlimit.c: resource limits only (make SANDBOX=rlimit). */
#include "epcapd.h"

const char *const sandbox_name = "rlimit";

/* No new process from the start, once the helper has left root (libdbus
 * can fork to run a program named in a D-Bus address). */
void sandbox_setup(epcapd_t *st)
{
    (void)st;
    rlimits_no_processes();
}

void sandbox_enter(epcapd_t *st)
{
    (void)st;
    rlimits_apply();
}

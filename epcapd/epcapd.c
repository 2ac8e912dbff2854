/*
 * epcapd.c: main reads as the order of operations (DESIGN.md, "The helper's
 * life"): validate, open as root, filter, drop, sandbox, ready, loop.
 */
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include "epcapd.h"

int main(int argc, char *argv[])
{
    static epcapd_t st;

    (void)signal(SIGPIPE, SIG_IGN); /* a closed stdout is EPIPE: exit quietly */
    frame_init(&st);
    (void)fcntl(STDOUT_FILENO, F_SETPIPE_SZ, EPCAPD_MAX_FRAME);

    options_parse(&st, argc, argv);
    privdrop_prepare(&st);
    capture_open(&st);
    capture_filter(&st);
    privdrop(&st);
    sandbox_enter(&st);
    frame_ready(&st);
    loop_run(&st);
    return 0;
}

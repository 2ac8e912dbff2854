/*
 * epcapd.c: main reads as the order of operations (DESIGN.md, "The helper's
 * life"): validate, open as root, filter, drop, sandbox, ready, loop.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "epcapd.h"

#ifdef EPCAPD_TEST_HOOK
/*
 * Test-only build (priv/epcapd-testhook, never installed): after ready, make
 * the call that $EPCAPD_TEST_SYSCALL names, which the sandbox must stop:
 * "open" must fail (EPERM under seccomp), "fork" must kill the process.
 */
static void test_hook(void)
{
    const char *call = getenv("EPCAPD_TEST_SYSCALL");
    int fd = -1;

    if (call == NULL)
        return;
    if (strcmp(call, "open") == 0)
        fd = open("/etc/passwd", O_RDONLY);
    else if (strcmp(call, "fork") == 0)
        fd = fork();
    if (fd < 0)
        die("sandbox", errno, 0, "test hook: %s denied: %s", call, strerror(errno));
    die("sandbox", 0, 0, "test hook: %s was allowed", call);
}
#else
static void test_hook(void) {}
#endif

/* A full pipe must not block the loop blindly: frame.c waits and counts. */
static void stdout_nonblocking(void)
{
    int flags = fcntl(STDOUT_FILENO, F_GETFL);

    if (flags < 0 || fcntl(STDOUT_FILENO, F_SETFL, flags | O_NONBLOCK) < 0)
        die("fcntl", errno, 0, "stdout: %s", strerror(errno));
}

static void set_filter(epcapd_t *st)
{
    const char *op, *err;

    if (st->filter == NULL)
        return;
    err = capture_set_filter(st, st->filter, &op);
    if (err != NULL)
        die(op, 0, PCAP_ERROR, "%s", err);
}

int main(int argc, char *argv[])
{
    static epcapd_t st;

    (void)signal(SIGPIPE, SIG_IGN); /* a closed stdout is EPIPE: exit quietly */
    frame_init(&st);
    (void)fcntl(STDOUT_FILENO, F_SETPIPE_SZ, EPCAPD_MAX_FRAME);
    stdout_nonblocking();

    options_parse(&st, argc, argv);
    privdrop_prepare(&st);
    capture_open(&st);
    set_filter(&st);
    privdrop(&st);
    sandbox_enter(&st);
    frame_ready(&st);
    test_hook();
    loop_run(&st);
    return 0;
}

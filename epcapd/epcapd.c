/*
 * epcapd.c: main reads as the order of operations (docs/ARCHITECTURE.md,
 * "The helper"): take stock of the invoker, validate, open with the least privilege
 * that opening needs, filter, give everything up, sandbox, ready, loop.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "epcapd.h"

/* A full pipe must not block the loop blindly: wire.c waits and counts. */
static void stdout_nonblocking(void)
{
    int flags = fcntl(STDOUT_FILENO, F_GETFL);

    if (flags < 0 || fcntl(STDOUT_FILENO, F_SETFL, flags | O_NONBLOCK) < 0)
        die("fcntl", errno, 0, "stdout: %s", strerror(errno));
}

static void set_filter(epcapd_t *st)
{
    const char *op, *err;

    if (st->filter == NULL && st->also == NULL)
        return;
    err = capture_set_filter(st, st->filter, &op);
    if (err != NULL)
        die(op, 0, PCAP_ERROR, "%s", err);
}

/*
 * Live: libpcap runs as the target user and group, with CAP_NET_RAW,
 * CAP_NET_ADMIN and CAP_SYS_CHROOT only; the filter is compiled while
 * names still resolve; then the chroot, and every capability goes.
 */
static void open_live(epcapd_t *st)
{
    privdrop_become(st, &st->target, PRIVDROP_OPEN_CAPS);
    capture_open_live(st);
    set_filter(st);
    privdrop_chroot(st);
    privdrop_finish(st);
}

/*
 * File: opened with the invoker's own rights (a root invoker's are root's),
 * then read by libpcap with no privilege at all: as the invoker, or, for
 * root, as the target user.
 */
static void open_file(epcapd_t *st)
{
    if (st->invoker.uid != 0)
        privdrop_become(st, &st->invoker, 0);
    capture_open_file(st);
    privdrop_become(st, &st->target, 0);
    privdrop_finish(st);
    capture_read_file(st);
    set_filter(st);
}

/*
 * -D: the devices, found with no privilege at all (as a file is read: as
 * the invoker, or, for root, as the target user), then exit. No allowlist:
 * libpcap walks /sys, /proc and netlink to list them, with rights the
 * invoker has anyway, and no program can run (sandbox_setup).
 */
static void list_devices(epcapd_t *st)
{
    privdrop_become(st, &st->target, 0);
    privdrop_finish(st);
    capture_list_devices(st);
}

int main(int argc, char *argv[])
{
    static epcapd_t st;

    (void)signal(SIGPIPE, SIG_IGN); /* a closed stdout is EPIPE: exit quietly */
    testhook_init();
    invoker_identify(&st);
    invoker_sanitize(&st);
    frame_init(&st);
    stdout_nonblocking();
    privdrop_init(&st);
    sandbox_setup(&st);
    invoker_watch(&st);

    options_parse(&st, argc, argv);
    loop_keepalive_start(&st); /* -k: the clock runs from here, whatever comes */
    policy_apply(&st);
    if (st.list) {
        list_devices(&st);
        return 0;
    }
    if (st.file != NULL)
        open_file(&st);
    else
        open_live(&st);
    /* As large as a frame, with no privilege left: the caller's own limits. */
    (void)fcntl(STDOUT_FILENO, F_SETPIPE_SZ, EPCAPD_MAX_FRAME);

    sandbox_enter(&st);
    frame_ready(&st);
    testhook_after_ready(&st);
    loop_run(&st);
    return 0;
}

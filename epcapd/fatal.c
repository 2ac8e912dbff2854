/*
 * fatal.c: die(), the helper's one way to fail: an "error" frame, then
 * exit 1 (PROTOCOL.md). What must happen first (frame.c writes the packets
 * already captured: an error never loses them) is a cleanup registered
 * here, so that this unit needs nothing but the wire below it.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "epcapd.h"

static void (*cleanup)(void *);
static void *cleanup_arg;

void fatal_cleanup(void (*fn)(void *), void *arg)
{
    cleanup = fn;
    cleanup_arg = arg;
}

void die(const char *op, int errnum, int pcap_code, const char *fmt, ...)
{
    void (*fn)(void *) = cleanup;
    char message[1024];
    message_t m;
    msgpack_packer *pk;
    va_list ap;

    va_start(ap, fmt);
    (void)vsnprintf(message, sizeof(message), fmt, ap);
    va_end(ap);

    cleanup = NULL; /* a failure inside the cleanup must not run it again */
    if (fn != NULL)
        fn(cleanup_arg);

    pk = wire_open(&m, 2, "error");
    wire_pack_error(pk, op, errnum, pcap_code, message);
    wire_send(&m, NULL);
#ifdef EPCAPD_FUZZ
    fuzz_exit(); /* the harness goes on with its next input */
#else
    exit(1);
#endif
}

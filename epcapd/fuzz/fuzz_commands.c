/*
 * fuzz_commands.c: libFuzzer harness for what the helper reads on stdin in
 * the RUNNING state, length-prefixed msgpack command frames (PROTOCOL.md,
 * "Client to helper").
 *
 * One input is the whole of stdin for one run: it goes into a pipe that
 * stands in for fd 0, and loop.c's read_commands() frames it, decodes and
 * checks each command and runs it, up to end of file (the stop request) or
 * the first protocol error. All of it is the helper's own code: the capture
 * is a file capture (of a pcap file with no packets, in memory), so
 * "filter" compiles and sets filters with libpcap for real and "send"
 * reaches pcap_inject(), which a file refuses; replies and error frames go
 * through frame.c's writer to /dev/null. die() comes back here through
 * fuzz_exit() instead of exiting (frame.c). The capture has -k, so each
 * frame takes the path that restarts its clock; a fuzz build never arms
 * it (loop.c): SIGALRM would kill the fuzzer.
 *
 * As in the helper's sandbox, new sockets fail: a filter naming a host must
 * not send DNS queries from the fuzzer. Unlike the sandbox, files open
 * (libFuzzer writes its corpus), so port and protocol names resolve here.
 * ASan refuses allocations above EPCAPD_MAX_HEAP, as RLIMIT_DATA does in
 * the sandbox: a frame whose msgpack header claims 2^32 elements is a
 * protocol error, not a 96 GiB allocation.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <seccomp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "../epcapd.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
const char *__asan_default_options(void);

static epcapd_t st;
static jmp_buf died;
static int feed = -1; /* the write end of the pipe that is stdin */

const char *__asan_default_options(void)
{
    return "allocator_may_return_null=1:max_allocation_size_mb=256";
}

void fuzz_exit(void)
{
    longjmp(died, 1);
}

static void fail(const char *what)
{
    perror(what);
    abort();
}

/* A pcap file header (little-endian, microseconds, snaplen 262144,
 * LINKTYPE_ETHERNET) and no packets. */
static unsigned char empty_pcap[24] = {
    0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 4, 0, 1, 0, 0, 0,
};

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    char errbuf[PCAP_ERRBUF_SIZE] = "";
    scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
    FILE *fp = fmemopen(empty_pcap, sizeof(empty_pcap), "rb");
    int null = open("/dev/null", O_WRONLY);

    (void)argc;
    (void)argv;
    if (ctx == NULL || seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(socket), 0) ||
        seccomp_load(ctx) != 0)
        fail("seccomp");
    seccomp_release(ctx);
    if (null < 0 || dup2(null, STDOUT_FILENO) < 0)
        fail("/dev/null");
    (void)close(null);
    if (fp == NULL)
        fail("fmemopen");

    st.file = "fuzz.pcap";
    st.inject = 1;
    st.keepalive = EPCAPD_KEEPALIVE_MIN;
    st.cluster_id = -1;
    (void)snprintf(st.root, sizeof(st.root), "%s", "/var/empty");
    st.netmask = PCAP_NETMASK_UNKNOWN;
    st.pcap = pcap_fopen_offline_with_tstamp_precision(fp, PCAP_TSTAMP_PRECISION_NANO,
                                                       errbuf);
    if (st.pcap == NULL) {
        fprintf(stderr, "pcap_fopen_offline: %s\n", errbuf);
        abort();
    }
    st.datalink = pcap_datalink(st.pcap);
    st.precision = pcap_get_tstamp_precision(st.pcap);
    return 0;
}

/* Feed data through the pipe, reading commands as it fills, then close it
 * and read to end of file. A read never waits: the pipe holds data then. */
static void run(const uint8_t *data, size_t size)
{
    size_t off = 0;
    int new_input = 1;

    while (off < size) {
        ssize_t n = write(feed, data + off, size - off);
        if (n < 0 && errno != EAGAIN)
            fail("write");
        off += n > 0 ? (size_t)n : 0;
        (void)loop_fuzz_read_commands(&st, new_input);
        new_input = 0;
    }
    (void)close(feed);
    feed = -1;
    while (loop_fuzz_read_commands(&st, new_input))
        new_input = 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int fds[2];

    if (pipe(fds) != 0 || dup2(fds[0], STDIN_FILENO) < 0 ||
        fcntl(fds[1], F_SETFL, O_NONBLOCK) != 0)
        fail("pipe");
    (void)close(fds[0]);
    feed = fds[1];
    frame_init(&st); /* die() forgets the state it flushes */

    if (setjmp(died) == 0)
        run(data, size);
    if (feed >= 0)
        (void)close(feed);
    feed = -1;
    return 0;
}

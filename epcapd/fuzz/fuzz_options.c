/*
 * fuzz_options.c: libFuzzer harness for the command line (options.c).
 *
 * One input is the argument vector after argv[0], each argument ended by a
 * NUL byte as in /proc/PID/cmdline (a last one may go unended; an empty
 * input is no argument). options_parse() runs for real, getopt() included
 * (optind = 0 starts it afresh); an "option" error frame goes through
 * frame.c's writer to /dev/null and die() comes back here through
 * fuzz_exit() instead of exiting (frame.c). What it accepts must hold what
 * the rest of the helper takes for granted: check_parsed() aborts, which
 * libFuzzer reports as a crash, on anything else.
 */
#include <fcntl.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../epcapd.h"

#define MAX_ARGS 64

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static jmp_buf died;

void fuzz_exit(void)
{
    longjmp(died, 1);
}

#define REQUIRE(cond)                                                         \
    do {                                                                      \
        if (!(cond)) {                                                        \
            fprintf(stderr, "options_parse accepted a bad value: %s\n", #cond); \
            abort();                                                          \
        }                                                                     \
    } while (0)

static int unset_or_named(const char *s)
{
    return s == NULL || *s != '\0';
}

static void check_parsed(const epcapd_t *st)
{
    REQUIRE(st->interface == NULL || st->file == NULL);
    REQUIRE(unset_or_named(st->interface) && unset_or_named(st->file));
    REQUIRE(unset_or_named(st->chroot) && unset_or_named(st->user) &&
            unset_or_named(st->group) && unset_or_named(st->filter) &&
            unset_or_named(st->also));
    REQUIRE(st->snaplen >= 0 && st->snaplen <= EPCAPD_MAX_SNAPLEN);
    REQUIRE(st->timeout == TIMEOUT_IMMEDIATE || st->timeout == TIMEOUT_NEVER ||
            st->timeout > 0);
    REQUIRE(st->buffer >= 0 && st->stats_interval >= 0);
    REQUIRE(st->keepalive == 0 || (st->keepalive >= EPCAPD_KEEPALIVE_MIN &&
                                   st->keepalive <= EPCAPD_KEEPALIVE_MAX));
    REQUIRE(!st->list || (st->keepalive == 0 && st->also == NULL && !st->paused));
    REQUIRE(st->cluster_id >= -1 && st->cluster_id <= 65535);
    REQUIRE(st->precision == PCAP_TSTAMP_PRECISION_MICRO ||
            st->precision == PCAP_TSTAMP_PRECISION_NANO);
    REQUIRE(st->direction == PCAP_D_IN || st->direction == PCAP_D_OUT ||
            st->direction == PCAP_D_INOUT);
    REQUIRE(!st->cpus_set || CPU_COUNT(&st->cpus) > 0);
    if (st->file != NULL)
        REQUIRE(!st->promisc && !st->monitor && !st->buffer && !st->direction_set &&
                !st->inject && st->cluster_id == -1 && !st->stats_interval);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    int null = open("/dev/null", O_WRONLY);

    (void)argc;
    (void)argv;
    if (null < 0 || dup2(null, STDOUT_FILENO) < 0) {
        perror("/dev/null");
        abort();
    }
    (void)close(null);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static epcapd_t st;
    static char *args; /* static: still reachable after a longjmp */
    static char *argv[MAX_ARGS + 2];
    int argc = 0;
    size_t i, start = 0;

    args = malloc(size + 1);
    if (args == NULL)
        return 0;
    memcpy(args, data, size);
    args[size] = '\0';
    argv[argc++] = "epcapd";
    for (i = 0; i <= size && argc <= MAX_ARGS; i++) {
        if (i < size ? args[i] == '\0' : i > start) {
            argv[argc++] = args + start;
            start = i + 1;
        }
    }
    argv[argc] = NULL;

    memset(&st, 0, sizeof(st));
    frame_init(&st);
    optind = 0;
    if (setjmp(died) == 0) {
        options_parse(&st, argc, argv);
        check_parsed(&st);
    }
    free(args);
    args = NULL;
    return 0;
}

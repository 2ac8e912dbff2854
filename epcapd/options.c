/* options.c: parse and validate the command line; any error is fatal. */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "epcapd.h"

#define OPTSTRING "+:Di:r:s:pt:B:Q:IP:d:u:g:jC:a:S:k:x:H"

static int parse_int(const char *flag, const char *s, long min, long max)
{
    char *end = NULL;
    long v;

    errno = 0;
    v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < min || v > max)
        die("option", 0, 0, "%s: expected an integer from %ld to %ld, got '%s'",
            flag, min, max, s);
    return (int)v;
}

static const char *parse_name(const char *flag, const char *s)
{
    if (*s == '\0')
        die("option", 0, 0, "%s: empty value", flag);
    return s;
}

static void parse_timeout(epcapd_t *st, const char *s)
{
    if (strcmp(s, "immediate") == 0)
        st->timeout = TIMEOUT_IMMEDIATE;
    else if (strcmp(s, "never") == 0)
        st->timeout = TIMEOUT_NEVER;
    else
        st->timeout = parse_int("-t", s, 1, INT_MAX);
}

static void parse_direction(epcapd_t *st, const char *s)
{
    if (capture_direction(s, strlen(s), &st->direction) != 0)
        die("option", 0, 0, "-Q: expected in, out or inout, got '%s'", s);
    st->direction_set = 1;
}

static void parse_precision(epcapd_t *st, const char *s)
{
    if (strcmp(s, "micro") == 0)
        st->precision = PCAP_TSTAMP_PRECISION_MICRO;
    else if (strcmp(s, "nano") == 0)
        st->precision = PCAP_TSTAMP_PRECISION_NANO;
    else
        die("option", 0, 0, "-P: expected micro or nano, got '%s'", s);
}

/* "1,3,5-7": CPU numbers and ranges, each below CPU_SETSIZE. */
static void parse_cpus(epcapd_t *st, const char *s)
{
    const char *p = s;
    char *end;
    long lo, hi, cpu;

    CPU_ZERO(&st->cpus);
    for (;;) {
        errno = 0;
        lo = strtol(p, &end, 10);
        if (errno != 0 || end == p || lo < 0 || lo >= CPU_SETSIZE)
            die("option", 0, 0, "-a: bad CPU list '%s'", s);
        hi = lo;
        if (*end == '-') {
            p = end + 1;
            hi = strtol(p, &end, 10);
            if (errno != 0 || end == p || hi < lo || hi >= CPU_SETSIZE)
                die("option", 0, 0, "-a: bad CPU list '%s'", s);
        }
        for (cpu = lo; cpu <= hi; cpu++)
            CPU_SET((int)cpu, &st->cpus);
        if (*end == '\0')
            break;
        if (*end != ',')
            die("option", 0, 0, "-a: bad CPU list '%s'", s);
        p = end + 1;
    }
    st->cpus_set = 1;
}

void options_parse(epcapd_t *st, int argc, char *argv[])
{
    int ch, others = 0;

    st->cluster_id = -1;
    st->fanout_group = -1;
    st->file_fd = -1;
    st->ng_pos = -1;

    st->timeout = EPCAPD_DEFAULT_TIMEOUT;
    st->direction = PCAP_D_INOUT;
    st->precision = PCAP_TSTAMP_PRECISION_NANO;

    opterr = 0;
    while ((ch = getopt(argc, argv, OPTSTRING)) != -1) {
        others += ch != 'D';
        switch (ch) {
        case 'D': st->list = 1; break;
        case 'i': st->interface = parse_name("-i", optarg); break;
        case 'r': st->file = parse_name("-r", optarg); break;
        case 's': st->snaplen = parse_int("-s", optarg, 1, EPCAPD_MAX_SNAPLEN); break;
        case 'p': st->promisc = 1; break;
        case 't': parse_timeout(st, optarg); break;
        case 'B': st->buffer = parse_int("-B", optarg, 1, INT_MAX); break;
        case 'Q': parse_direction(st, optarg); break;
        case 'I': st->monitor = 1; break;
        case 'P': parse_precision(st, optarg); break;
        case 'd': st->chroot = parse_name("-d", optarg); break;
        case 'u': st->user = parse_name("-u", optarg); break;
        case 'g': st->group = parse_name("-g", optarg); break;
        case 'j': st->inject = 1; break;
        case 'C': st->cluster_id = parse_int("-C", optarg, 0, 65535); break;
        case 'a': parse_cpus(st, optarg); break;
        case 'S': st->stats_interval = parse_int("-S", optarg, 1, INT_MAX); break;
        case 'k':
            st->keepalive = parse_int("-k", optarg, EPCAPD_KEEPALIVE_MIN,
                                      EPCAPD_KEEPALIVE_MAX);
            break;
        case 'x': st->also = parse_name("-x", optarg); break;
        case 'H': st->paused = 1; break;
        case ':': die("option", 0, 0, "-%c: missing value", optopt);
        default: die("option", 0, 0, "unknown option -%c", optopt);
        }
    }

    if (argc - optind > 1)
        die("option", 0, 0, "expected at most one filter argument, got %d",
            argc - optind);
    if (argc - optind == 1 && argv[optind][0] != '\0')
        st->filter = argv[optind];

    if (st->list && (others > 0 || st->filter != NULL))
        die("option", 0, 0, "-D lists the devices: it takes no other option or filter");
    if (st->interface != NULL && st->file != NULL)
        die("option", 0, 0, "-i and -r are mutually exclusive");
    if (st->file != NULL && (st->promisc || st->monitor || st->buffer ||
                              st->direction_set || st->inject || st->cluster_id >= 0 ||
                              st->stats_interval || st->chroot != NULL))
        die("option", 0, 0, "-p, -I, -B, -Q, -j, -C, -S and -d apply to live captures only");
}

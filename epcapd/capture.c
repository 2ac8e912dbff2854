/* capture.c: open the capture (file or live), set the filter, read packets. */
#include <errno.h>
#include <linux/if_packet.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "epcapd.h"

void capture_warn(epcapd_t *st, const char *fmt, ...)
{
    char buf[PCAP_ERRBUF_SIZE + 128];
    va_list ap;

    if (st->nwarnings >= EPCAPD_MAX_WARNINGS)
        return;
    va_start(ap, fmt);
    (void)vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    st->warnings[st->nwarnings] = strdup(buf);
    if (st->warnings[st->nwarnings] == NULL)
        die("strdup", errno, 0, "out of memory");
    st->nwarnings++;
}

static void open_file(epcapd_t *st)
{
    char errbuf[PCAP_ERRBUF_SIZE] = "";
    FILE *fp;
    int fd = privdrop_open_as_invoker(st->file);

    if (fd < 0)
        die("open", errno, 0, "%s: %s", st->file, strerror(errno));
    fp = fdopen(fd, "rb");
    if (fp == NULL)
        die("fdopen", errno, 0, "%s: %s", st->file, strerror(errno));
    st->pcap = pcap_fopen_offline_with_tstamp_precision(fp, (u_int)st->precision,
                                                        errbuf);
    if (st->pcap == NULL)
        die("pcap_fopen_offline", 0, PCAP_ERROR, "%s: %s", st->file, errbuf);
}

/* libpcap's default device: the first one pcap_findalldevs() lists. */
static void default_interface(epcapd_t *st)
{
    char errbuf[PCAP_ERRBUF_SIZE] = "";
    pcap_if_t *devs = NULL;

    if (pcap_findalldevs(&devs, errbuf) != 0)
        die("pcap_findalldevs", 0, PCAP_ERROR, "%s", errbuf);
    if (devs == NULL)
        die("pcap_findalldevs", 0, PCAP_ERROR_NO_SUCH_DEVICE,
            "no capture device found");
    (void)snprintf(st->ifname, sizeof(st->ifname), "%s", devs->name);
    pcap_freealldevs(devs);
}

/* Fail with libpcap's status name and its message (or its status text). */
static void die_pcap(epcapd_t *st, const char *op, int rc)
{
    const char *msg = pcap_geterr(st->pcap);

    if (msg == NULL || *msg == '\0')
        msg = pcap_statustostr(rc);
    die(op, 0, rc, "%s: %s", st->ifname, msg);
}

static void check(epcapd_t *st, const char *op, int rc)
{
    if (rc != 0)
        die_pcap(st, op, rc);
}

#ifdef HAVE_PFRING
#include <pfring.h>

/* Linked with PF_RING's libpcap (PFRING=/path make): its cluster, per flow,
 * as epcap does. Not exercised by the tests: PF_RING is not packaged here. */
static void join_cluster(epcapd_t *st)
{
    pfring *ring = pcap_get_pfring_handle(st->pcap);

    if (ring == NULL || pfring_set_cluster(ring, (u_int)st->cluster_id,
                                           cluster_per_flow) != 0)
        die("pfring_set_cluster", 0, 0, "%s: cannot join PF_RING cluster %d",
            st->ifname, st->cluster_id);
}
#else
/* Share the interface's traffic with the other members of a PACKET_FANOUT
 * group: each flow (by hash) goes to exactly one of them. */
static void join_cluster(epcapd_t *st)
{
    /* the id in the low 16 bits, mode and flags (DEFRAG is 0x8000) above:
     * shifted as unsigned, since 0x8000 << 16 does not fit an int */
    uint32_t bits = (uint32_t)st->cluster_id |
                    ((uint32_t)(PACKET_FANOUT_HASH | PACKET_FANOUT_FLAG_DEFRAG) << 16);
    int arg;

    memcpy(&arg, &bits, sizeof(arg));

    if (setsockopt(pcap_fileno(st->pcap), SOL_PACKET, PACKET_FANOUT, &arg,
                   sizeof(arg)) != 0)
        die("setsockopt", errno, 0, "%s: PACKET_FANOUT group %d: %s", st->ifname,
            st->cluster_id, strerror(errno));
}
#endif

static void open_live(epcapd_t *st)
{
    char errbuf[PCAP_ERRBUF_SIZE] = "";
    bpf_u_int32 net = 0;
    int rc;

    if (st->interface != NULL)
        (void)snprintf(st->ifname, sizeof(st->ifname), "%s", st->interface);
    else
        default_interface(st);

    st->pcap = pcap_create(st->ifname, errbuf);
    if (st->pcap == NULL)
        die("pcap_create", 0, PCAP_ERROR, "%s: %s", st->ifname, errbuf);

    check(st, "pcap_set_snaplen", pcap_set_snaplen(st->pcap, st->snaplen ? st->snaplen : EPCAPD_MAX_SNAPLEN));
    check(st, "pcap_set_promisc", pcap_set_promisc(st->pcap, st->promisc));
    if (st->monitor)
        check(st, "pcap_set_rfmon", pcap_set_rfmon(st->pcap, 1));
    if (st->timeout == TIMEOUT_IMMEDIATE)
        check(st, "pcap_set_immediate_mode", pcap_set_immediate_mode(st->pcap, 1));
    else
        check(st, "pcap_set_timeout", pcap_set_timeout(st->pcap, st->timeout));
    check(st, "pcap_set_buffer_size",
          pcap_set_buffer_size(st->pcap, st->buffer > 0 ? st->buffer : EPCAPD_DEFAULT_BUFFER));
    rc = pcap_set_tstamp_precision(st->pcap, st->precision);
    if (rc != 0)
        die_pcap(st, "pcap_set_tstamp_precision", rc);

    rc = pcap_activate(st->pcap);
    if (rc < 0)
        die_pcap(st, "pcap_activate", rc);
    if (rc > 0)
        capture_warn(st, "%s: %s", pcap_statustostr(rc), pcap_geterr(st->pcap));

    if (st->direction_set)
        check(st, "pcap_setdirection", pcap_setdirection(st->pcap, st->direction));
    if (pcap_setnonblock(st->pcap, 1, errbuf) != 0)
        die("pcap_setnonblock", 0, PCAP_ERROR, "%s: %s", st->ifname, errbuf);
    if (st->cluster_id >= 0)
        join_cluster(st);
    if (pcap_lookupnet(st->ifname, &net, &st->netmask, errbuf) != 0)
        st->netmask = PCAP_NETMASK_UNKNOWN;
}

void capture_open(epcapd_t *st)
{
    if (st->cpus_set && sched_setaffinity(0, sizeof(st->cpus), &st->cpus) != 0)
        die("sched_setaffinity", errno, 0, "CPU affinity: %s", strerror(errno));
    st->netmask = PCAP_NETMASK_UNKNOWN;
    if (st->file != NULL)
        open_file(st);
    else
        open_live(st);
    st->datalink = pcap_datalink(st->pcap);
    st->precision = pcap_get_tstamp_precision(st->pcap);
}

/*
 * Compile and set a filter; NULL on success, else libpcap's message, with
 * *op naming the call that failed. The previous filter stays in force on
 * failure. At setup this runs before the chroot, so names resolve.
 */
const char *capture_set_filter(epcapd_t *st, const char *expr, const char **op)
{
    static char message[PCAP_ERRBUF_SIZE];
    struct bpf_program prog;

    *op = "pcap_compile";
    if (pcap_compile(st->pcap, &prog, expr, 1, st->netmask) != 0) {
        (void)snprintf(message, sizeof(message), "%s", pcap_geterr(st->pcap));
        return message;
    }
    *op = "pcap_setfilter";
    if (pcap_setfilter(st->pcap, &prog) != 0) {
        (void)snprintf(message, sizeof(message), "%s", pcap_geterr(st->pcap));
        pcap_freecode(&prog);
        return message;
    }
    pcap_freecode(&prog);
    return NULL;
}

/*
 * Sample libpcap's counters and add what they grew by since the last
 * sample to 64-bit totals: the 32-bit counters wrap, the totals do not.
 * Returns -1 when the capture has no statistics (files).
 */
#ifdef EPCAPD_TEST_HOOK
/* Test-only: pretend libpcap's 32-bit counters started at
 * $EPCAPD_TEST_STATS_OFFSET, so that a few packets make them wrap. */
static void test_offset(epcapd_t *st, struct pcap_stat *now)
{
    static int started;
    const char *env = getenv("EPCAPD_TEST_STATS_OFFSET");
    u_int offset = env != NULL ? (u_int)strtoul(env, NULL, 10) : 0;

    if (!started++)
        st->last.ps_recv = offset;
    now->ps_recv += offset;
}
#else
static void test_offset(epcapd_t *st, struct pcap_stat *now)
{
    (void)st;
    (void)now;
}
#endif

int capture_stats(epcapd_t *st)
{
    struct pcap_stat now;

    if (st->file != NULL || pcap_stats(st->pcap, &now) != 0)
        return -1;
    test_offset(st, &now);
    st->received += (uint32_t)(now.ps_recv - st->last.ps_recv);
    st->dropped += (uint32_t)(now.ps_drop - st->last.ps_drop);
    st->if_dropped += (uint32_t)(now.ps_ifdrop - st->last.ps_ifdrop);
    st->last = now;
    return 0;
}

static void on_packet(u_char *user, const struct pcap_pkthdr *h, const u_char *data)
{
    frame_packet((epcapd_t *)user, h, data);
}

/*
 * Hand everything libpcap holds to the batch, for at most max_rounds calls
 * of pcap_dispatch(), so that a flood cannot starve stdin. Returns the
 * number of packets read; 0 at the end of a file or of what is ready. The
 * caller decides when the batch goes out (frame_packet() flushes a full one).
 */
int capture_drain(epcapd_t *st, int max_rounds)
{
    int count = st->file != NULL ? 4096 : -1; /* -1 reads a file to its end */
    int total = 0;
    int n;

    do {
        n = pcap_dispatch(st->pcap, count, on_packet, (u_char *)st);
        if (n < 0)
            die("pcap_dispatch", 0, n, "%s", pcap_geterr(st->pcap));
        total += n;
    } while (n > 0 && --max_rounds > 0);
    return total;
}

/* capture.c: open the capture (file or live), set the filter, read packets. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

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

static void set_affinity(epcapd_t *st)
{
    if (st->cpus_set && sched_setaffinity(0, sizeof(st->cpus), &st->cpus) != 0)
        die("sched_setaffinity", errno, 0, "CPU affinity: %s", strerror(errno));
}

/* Open the capture file with the helper's credentials of the moment (the
 * invoker's); nothing of it is read yet. It must be a regular file: a FIFO
 * would hold the helper in open() or read(), deaf to its client's exit. */
void capture_open_file(epcapd_t *st)
{
    struct stat sb;

    set_affinity(st);
    st->file_fd = open(st->file, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (st->file_fd < 0)
        die("open", errno, 0, "%s: %s", st->file, strerror(errno));
    if (fstat(st->file_fd, &sb) != 0)
        die("open", errno, 0, "%s: %s", st->file, strerror(errno));
    if (S_ISDIR(sb.st_mode))
        die("open", EISDIR, 0, "%s: %s", st->file, strerror(EISDIR));
    if (!S_ISREG(sb.st_mode))
        die("open", EINVAL, 0, "%s: not a regular file", st->file);
}

/*
 * The nanoseconds in a unit of a pcap file's time stamp fraction, from its
 * magic number in either byte order (libpcap's TCPDUMP_MAGIC,
 * KUZNETZOV_TCPDUMP_MAGIC, NSEC_TCPDUMP_MAGIC): 1000, or 1; 0 for any other
 * file, which libpcap then reads or rejects as before. A pread: the file's
 * position, where libpcap starts, stays 0.
 */
static uint32_t pcap_file_unit(int fd)
{
    uint32_t magic;
    int i;

    if (pread(fd, &magic, sizeof(magic), 0) != (ssize_t)sizeof(magic))
        return 0; /* libpcap says what is wrong with the file */
    for (i = 0; i < 2; i++, magic = __builtin_bswap32(magic)) {
        if (magic == 0xa1b2c3d4 || magic == 0xa1b2cd34)
            return 1000;
        if (magic == 0xa1b23c4d)
            return 1;
    }
    return 0;
}

/*
 * libpcap reads the file's header (with no privilege left, main). A pcap
 * record's time stamp is two unsigned 32-bit fields, seconds and fraction,
 * which libpcap 1.10.3 reads as signed and sign-extends, and, asked for
 * another precision than the file's, scales sign-extended: so a pcap file
 * is opened at its own precision, where libpcap passes both fields through
 * unchanged, and frame_packet() takes them as the file holds them. The
 * precision asked stays st->precision. (A file changed between the pread
 * and libpcap's read gets wrong times, but frame_packet() keeps them within
 * the protocol's bounds.)
 */
void capture_read_file(epcapd_t *st)
{
    char errbuf[PCAP_ERRBUF_SIZE] = "";
    FILE *fp;
    int precision = st->precision;

    st->pcap_unit = pcap_file_unit(st->file_fd);
    if (st->pcap_unit != 0)
        precision = st->pcap_unit == 1 ? PCAP_TSTAMP_PRECISION_NANO : PCAP_TSTAMP_PRECISION_MICRO;
    fp = fdopen(st->file_fd, "rb");
    if (fp == NULL)
        die("fdopen", errno, 0, "%s: %s", st->file, strerror(errno));
    /* A larger buffer than stdio's 4 KiB: a read() per 256 KiB. Then a
     * seek, in this order (setvbuf() forgets the position): glibc's stream
     * learns its file position from a seek only; until one, every ftell()
     * (pcapng_interface, once a packet) would be an lseek(), after it,
     * ftell() is arithmetic on the buffer (tests/test_pcapng_interfaces.py
     * counts the calls). */
    (void)setvbuf(fp, st->file_buffer, _IOFBF, sizeof(st->file_buffer));
    if (fseek(fp, 0, SEEK_SET) != 0)
        die("fdopen", errno, 0, "%s: fseek: %s", st->file, strerror(errno));
    st->pcap = pcap_fopen_offline_with_tstamp_precision(fp, (u_int)precision, errbuf);
    if (st->pcap == NULL)
        die("pcap_fopen_offline", 0, PCAP_ERROR, "%s: %s", st->file, errbuf);
    st->netmask = PCAP_NETMASK_UNKNOWN;
    st->datalink = pcap_datalink(st->pcap);
    /* pcapng (version 1.0; a pcap file is 2.4): libpcap read the section
     * header and the first interface block */
    st->ng_pos = pcap_major_version(st->pcap) == 1 ? ftell(fp) : -1;
    st->ng_interfaces = 1;
}

/* libpcap's default device: the first one pcap_findalldevs() lists (that
 * the policy lets a non-root invoker open, policy.c). */
static void default_interface(epcapd_t *st)
{
    char errbuf[PCAP_ERRBUF_SIZE] = "";
    pcap_if_t *devs = NULL, *dev;

    if (pcap_findalldevs(&devs, errbuf) != 0)
        die("pcap_findalldevs", 0, PCAP_ERROR, "%s", errbuf);
    for (dev = devs; dev != NULL; dev = dev->next)
        if (!st->guarded || policy_interface_ok(dev->name))
            break;
    if (dev == NULL)
        die("pcap_findalldevs", 0, PCAP_ERROR_NO_SUCH_DEVICE,
            "no capture device found");
    (void)snprintf(st->ifname, sizeof(st->ifname), "%s", dev->name);
    pcap_freealldevs(devs);
}

/* -D: every device libpcap finds that the policy lets the invoker open,
 * as one interfaces frame (frame.c). */
void capture_list_devices(epcapd_t *st)
{
    char errbuf[PCAP_ERRBUF_SIZE] = "";
    pcap_if_t *devs = NULL;

    if (pcap_findalldevs(&devs, errbuf) != 0)
        die("pcap_findalldevs", 0, PCAP_ERROR, "%s", errbuf);
    frame_interfaces(devs, st->guarded ? policy_interface_ok : NULL);
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

static void require_pcap(epcapd_t *st, const char *op, int rc)
{
    if (rc != 0)
        die_pcap(st, op, rc);
}

void capture_open_live(epcapd_t *st)
{
    char errbuf[PCAP_ERRBUF_SIZE] = "";
    bpf_u_int32 net = 0;
    int rc;

    set_affinity(st);
    st->netmask = PCAP_NETMASK_UNKNOWN;
    if (st->interface != NULL)
        (void)snprintf(st->ifname, sizeof(st->ifname), "%s", st->interface);
    else
        default_interface(st);

    st->pcap = pcap_create(st->ifname, errbuf);
    if (st->pcap == NULL)
        die("pcap_create", 0, PCAP_ERROR, "%s: %s", st->ifname, errbuf);

    require_pcap(st, "pcap_set_snaplen",
                 pcap_set_snaplen(st->pcap, st->snaplen ? st->snaplen : EPCAPD_MAX_SNAPLEN));
    require_pcap(st, "pcap_set_promisc", pcap_set_promisc(st->pcap, st->promisc));
    if (st->monitor)
        require_pcap(st, "pcap_set_rfmon", pcap_set_rfmon(st->pcap, 1));
    if (st->timeout == TIMEOUT_IMMEDIATE)
        require_pcap(st, "pcap_set_immediate_mode",
                     pcap_set_immediate_mode(st->pcap, 1));
    else
        require_pcap(st, "pcap_set_timeout", pcap_set_timeout(st->pcap, st->timeout));
    require_pcap(st, "pcap_set_buffer_size",
                 pcap_set_buffer_size(st->pcap, st->buffer > 0 ? st->buffer : EPCAPD_DEFAULT_BUFFER));
    rc = pcap_set_tstamp_precision(st->pcap, st->precision);
    if (rc != 0)
        die_pcap(st, "pcap_set_tstamp_precision", rc);

    testhook_at_activate();
    rc = pcap_activate(st->pcap);
    if (rc < 0)
        die_pcap(st, "pcap_activate", rc);
    if (rc > 0)
        capture_warn(st, "%s: %s", pcap_statustostr(rc), pcap_geterr(st->pcap));

    if (st->direction_set)
        require_pcap(st, "pcap_setdirection",
                     pcap_setdirection(st->pcap, st->direction));
    if (pcap_setnonblock(st->pcap, 1, errbuf) != 0)
        die("pcap_setnonblock", 0, PCAP_ERROR, "%s: %s", st->ifname, errbuf);
    if (st->cluster_id >= 0)
        fanout_join(st);
    st->net_known = pcap_lookupnet(st->ifname, &net, &st->netmask, errbuf) == 0;
    if (st->net_known)
        st->net = net;
    else
        st->netmask = PCAP_NETMASK_UNKNOWN;
    st->datalink = pcap_datalink(st->pcap);
    st->precision = pcap_get_tstamp_precision(st->pcap);
    st->last.ps_recv = testhook_stats_offset(); /* see capture_stats() */
}

/*
 * Compile and set a filter; NULL on success, else libpcap's message, with
 * *op naming the call that failed. The previous filter stays in force on
 * failure. At setup this runs before the chroot, so names resolve. With
 * -x, every filter is joined with that one (expr may then be NULL: -x
 * alone): a remote capture leaves its own ssh connection out this way,
 * whatever filter its client sets later.
 */
const char *capture_set_filter(epcapd_t *st, const char *expr, const char **op)
{
    static char message[PCAP_ERRBUF_SIZE];
    struct bpf_program prog;
    char *joined = NULL;
    size_t size;
    int rc;

    if (st->also != NULL) {
        size = (expr != NULL ? strlen(expr) : 0) + strlen(st->also) + sizeof("() and ()");
        joined = malloc(size);
        if (joined == NULL)
            die("malloc", errno, 0, "out of memory");
        if (expr != NULL && *expr != '\0')
            (void)snprintf(joined, size, "(%s) and (%s)", expr, st->also);
        else
            (void)snprintf(joined, size, "%s", st->also);
        expr = joined;
    }
    *op = "pcap_compile";
    rc = pcap_compile(st->pcap, &prog, expr != NULL ? expr : "", 1, st->netmask);
    free(joined);
    if (rc != 0) {
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

/* "in", "out" or "inout" (len bytes, not NUL-terminated: a command's
 * argument): 0 with *direction set, or -1. */
int capture_direction(const char *s, size_t len, pcap_direction_t *direction)
{
    static const struct {
        const char *name;
        pcap_direction_t value;
    } names[] = {{"in", PCAP_D_IN}, {"out", PCAP_D_OUT}, {"inout", PCAP_D_INOUT}};
    size_t i;

    for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (strlen(names[i].name) == len && memcmp(names[i].name, s, len) == 0) {
            *direction = names[i].value;
            return 0;
        }
    return -1;
}

/*
 * Sample libpcap's counters and add what they grew by since the last
 * sample to 64-bit totals: the 32-bit counters wrap, the totals do not.
 * Returns -1 when the capture has no statistics (files).
 */
int capture_stats(epcapd_t *st)
{
    struct pcap_stat now;

    if (st->file != NULL || pcap_stats(st->pcap, &now) != 0)
        return -1;
    /* Test builds can make the 32-bit counter start near its wrap. */
    now.ps_recv += testhook_stats_offset();
    st->received += (uint32_t)(now.ps_recv - st->last.ps_recv);
    st->dropped += (uint32_t)(now.ps_drop - st->last.ps_drop);
    st->if_dropped += (uint32_t)(now.ps_ifdrop - st->last.ps_ifdrop);
    st->last = now;
    return 0;
}

#define PCAPNG_SHB 0x0A0D0D0A /* section header: interfaces are numbered anew */
#define PCAPNG_IDB 1          /* interface description */
#define PCAPNG_OPB 2          /* obsolete packet block: a 16-bit interface id */
#define PCAPNG_EPB 6          /* enhanced packet block: a 32-bit interface id */

typedef struct {
    uint32_t type, length; /* every block's first two words */
    uint32_t id;           /* a packet block's interface id (EPB, OPB) */
} ng_block_t;

/* The 12 bytes of the file at off, from a window of it that one pread
 * (libpcap's position stays) fills for the packets of the next 64 KiB;
 * NULL when the file does not hold them. */
static const unsigned char *ng_bytes(epcapd_t *st, long off)
{
    ssize_t n;

    if (off < st->ng_window_at || off + 12 > st->ng_window_at + (long)st->ng_window_len) {
        n = pread(fileno(pcap_file(st->pcap)), st->ng_window, sizeof(st->ng_window), off);
        st->ng_window_at = off;
        st->ng_window_len = n > 0 ? (size_t)n : 0;
        if (st->ng_window_len < 12)
            return NULL;
    }
    return st->ng_window + (off - st->ng_window_at);
}

/* The head of the block at off, in the file's byte order: 0, or -1. */
static int ng_block(epcapd_t *st, long off, ng_block_t *b)
{
    const unsigned char *raw = ng_bytes(st, off);
    uint32_t w[3];
    uint16_t id16;
    int i;

    if (raw == NULL)
        return -1;
    memcpy(w, raw, sizeof(w));
    memcpy(&id16, raw + 8, sizeof(id16));
    for (i = 0; i < 3 && pcap_is_swapped(st->pcap); i++)
        w[i] = __builtin_bswap32(w[i]);
    if (pcap_is_swapped(st->pcap))
        id16 = __builtin_bswap16(id16);
    b->type = w[0];
    b->length = w[1];
    b->id = b->type == PCAPNG_EPB ? w[2] : b->type == PCAPNG_OPB ? id16 : 0;
    return 0;
}

/*
 * The interface of a pcapng packet, which libpcap 1.10 does not say: the
 * blocks libpcap consumed for it lie between the file positions before
 * and after it, the packet's own block last. The common case costs no
 * system call: a section with one interface, and the range exactly one
 * enhanced packet block without options (none was skipped: an interface
 * block, 20 bytes at least, or a section header, 28, cannot fit in it
 * beside a packet block, 16 at least). Otherwise the block heads are read,
 * counting the section's interface blocks, up to the packet's. Anything
 * inconsistent (a length that does not fit the range, a short read, an id
 * beyond the interfaces counted: the file may change under the helper) is
 * interface 0.
 */
static uint32_t pcapng_interface(epcapd_t *st, const struct pcap_pkthdr *h)
{
    long at = st->ng_pos, after = ftell(pcap_file(st->pcap));
    ng_block_t b;

    st->ng_pos = after;
    if (at < 0 || after <= at)
        return 0;
    if (st->ng_interfaces <= 1 && after - at == 32 + (long)((h->caplen + 3) & ~3u))
        return 0;
    for (;;) {
        if (ng_block(st, at, &b) != 0 || b.length < 12 || b.length % 4 != 0 ||
            (long)b.length > after - at)
            return 0;
        if ((long)b.length == after - at)
            break; /* the packet's own block */
        if (b.type == PCAPNG_SHB)
            st->ng_interfaces = 0;
        else if (b.type == PCAPNG_IDB && st->ng_interfaces < INT_MAX)
            st->ng_interfaces++;
        at += (long)b.length;
    }
    return b.id < (uint32_t)st->ng_interfaces ? b.id : 0;
}

static void on_packet(u_char *user, const struct pcap_pkthdr *h, const u_char *data)
{
    epcapd_t *st = (epcapd_t *)user;

    frame_packet(st, h, data, st->ng_pos >= 0 ? pcapng_interface(st, h) : 0);
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

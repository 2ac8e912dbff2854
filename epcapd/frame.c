/*
 * frame.c: the messages the helper writes (PROTOCOL.md, "Helper to client"),
 * through wire.c.
 *
 * Packets are packed as they arrive into one growing buffer (the batch
 * body), three values each (time, length, data), with no array of their
 * own: the client turns a flat array into packets without a Python loop.
 * frame_flush() sends the body behind a ["packets", dlt, array(3n)] head,
 * in one frame.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_packet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "epcapd.h"

static void flush_before_dying(void *st)
{
    frame_flush(st);
}

void frame_init(epcapd_t *st)
{
    fatal_cleanup(flush_before_dying, st);
    msgpack_sbuffer_init(&st->batch);
    msgpack_packer_init(&st->batch_pk, &st->batch, msgpack_sbuffer_write);
}

/*
 * Add one packet to the batch. Its time, in seconds and nanoseconds: a
 * pcap file's own two fields, the seconds unsigned and the fraction as the
 * file holds it, a second or more if the file is corrupt (PROTOCOL.md,
 * "packets": never carried into the seconds, so that the client sees what
 * the file says), cut to whole microseconds when a nanosecond file is read
 * at microsecond precision, as libpcap cuts; otherwise (live, pcapng)
 * libpcap's, below one second. A packet is cut to a snaplen given with -s
 * (libpcap applies none to files) and to what one frame can carry (files
 * of some link types hold larger packets); its wire length stays. A packet
 * that would overflow the batch's frame flushes it first.
 */
void frame_packet(epcapd_t *st, const struct pcap_pkthdr *h, const u_char *data,
                  uint32_t interface)
{
    msgpack_packer *pk = &st->batch_pk;
    int64_t sec;
    uint64_t frac;
    int64_t usec;
    uint32_t caplen = h->caplen;

    if (st->pcap_unit != 0) {
        /* opened at the file's precision, libpcap passed both fields
         * through, sign-extended (1.10.3) or not (1.10.5): at most
         * 4294967295 s and 4294967295 units */
        sec = (int64_t)(uint32_t)h->ts.tv_sec;
        frac = (uint64_t)(uint32_t)h->ts.tv_usec * st->pcap_unit;
        if (st->precision == PCAP_TSTAMP_PRECISION_MICRO)
            frac = frac / 1000 * 1000;
    } else {
        /* libpcap's fraction, at the precision asked; only a 32-bit long
         * can make it negative */
        sec = (int64_t)h->ts.tv_sec;
        usec = (int64_t)h->ts.tv_usec;
        frac = usec < 0 ? (uint64_t)(uint32_t)usec : (uint64_t)usec;
        if (st->precision == PCAP_TSTAMP_PRECISION_MICRO)
            frac *= 1000;
        sec += (int64_t)(frac / 1000000000);
        frac %= 1000000000;
    }
    if (st->snaplen > 0 && caplen > (uint32_t)st->snaplen)
        caplen = (uint32_t)st->snaplen;
    if (caplen > EPCAPD_MAX_CAPLEN)
        caplen = EPCAPD_MAX_CAPLEN;
    if (st->batch.size + caplen + 64 > EPCAPD_MAX_FRAME - 64 || interface != st->batch_interface)
        frame_flush(st);
    st->batch_interface = interface;

    if (frac < 1000000000 && sec >= 0 && (uint64_t)sec <= (UINT64_MAX - frac) / 1000000000) {
        msgpack_pack_uint64(pk, (uint64_t)sec * 1000000000 + frac);
    } else { /* an invalid fraction, or beyond 2554 (or before 1970) */
        msgpack_pack_array(pk, 2);
        msgpack_pack_int64(pk, sec);
        msgpack_pack_uint64(pk, frac);
    }
    msgpack_pack_uint32(pk, h->len);
    msgpack_pack_bin(pk, caplen);
    msgpack_pack_bin_body(pk, data, caplen);
    st->batch_count++;

    if (st->batch.size >= EPCAPD_BATCH_BYTES)
        frame_flush(st);
}

/* Send the batch; with may_refuse, not when stdout has no room (0: the
 * batch stays as it was). */
static int flush(epcapd_t *st, int may_refuse)
{
    message_t m;
    msgpack_packer *pk;
    size_t body = st->batch.size;

    if (st->batch_count == 0)
        return 1;
    pk = wire_open(&m, st->batch_interface != 0 ? 4 : 3, "packets");
    msgpack_pack_int(pk, st->datalink);
    msgpack_pack_array(pk, (size_t)st->batch_count * 3);
    if (st->batch_interface != 0) /* the 4th element follows the packets */
        msgpack_pack_uint32(&st->batch_pk, st->batch_interface);
    if (!may_refuse)
        wire_send(&m, &st->batch);
    else if (!wire_try_send(&m, &st->batch)) {
        st->batch.size = body; /* without the 4th element again */
        return 0;
    }

    st->delivered += st->batch_count;
    st->batch_count = 0;
    msgpack_sbuffer_clear(&st->batch);
    return 1;
}

void frame_flush(epcapd_t *st)
{
    (void)flush(st, 0);
}

/* The live loop's flush: 1 if the batch went (or there was none), 0 if
 * stdout is full and the batch waits, growing. */
int frame_try_flush(epcapd_t *st)
{
    return flush(st, 1);
}

/* An IPv4 address in network byte order, as text; nil for NULL. */
static void pack_ipv4(msgpack_packer *pk, const bpf_u_int32 *address)
{
    char text[INET_ADDRSTRLEN];

    if (address == NULL || inet_ntop(AF_INET, address, text, sizeof(text)) == NULL)
        msgpack_pack_nil(pk);
    else
        wire_pack_str(pk, text);
}

void frame_ready(epcapd_t *st)
{
    message_t m;
    msgpack_packer *pk;
    int ngroups = getgroups(0, NULL);
    gid_t *groups = calloc(ngroups > 0 ? (size_t)ngroups : 1, sizeof(gid_t));
    int i;

    if (ngroups < 0 || groups == NULL ||
        (ngroups = getgroups(ngroups, groups)) < 0)
        die("getgroups", errno, 0, "getgroups: %s", strerror(errno));

    pk = wire_open(&m, 2, "ready");
    msgpack_pack_map(pk, 21 + (uint32_t)testhook_ready_keys());
    wire_pack_str(pk, "version");
    msgpack_pack_int(pk, EPCAPD_PROTOCOL_VERSION);
    wire_pack_str(pk, "pid");
    msgpack_pack_int(pk, (int)getpid());
    wire_pack_str(pk, "datalink");
    msgpack_pack_int(pk, st->datalink);
    wire_pack_str(pk, "datalink_name");
    wire_pack_str(pk, pcap_datalink_val_to_name(st->datalink));
    wire_pack_str(pk, "snaplen");
    msgpack_pack_int(pk, st->snaplen > 0 && st->snaplen < pcap_snapshot(st->pcap)
                              ? st->snaplen
                              : pcap_snapshot(st->pcap));
    wire_pack_str(pk, "precision");
    wire_pack_str(pk, st->precision == PCAP_TSTAMP_PRECISION_NANO ? "nano" : "micro");
    wire_pack_str(pk, "timeout");
    if (st->file != NULL)
        msgpack_pack_nil(pk);
    else if (st->timeout == TIMEOUT_IMMEDIATE)
        wire_pack_str(pk, "immediate");
    else if (st->timeout == TIMEOUT_NEVER)
        wire_pack_str(pk, "never");
    else
        msgpack_pack_int(pk, st->timeout);
    wire_pack_str(pk, "interface");
    wire_pack_str(pk, st->file == NULL ? st->ifname : NULL);
    wire_pack_str(pk, "file");
    wire_pack_str(pk, st->file);
    wire_pack_str(pk, "filter");
    wire_pack_str(pk, st->filter);
    wire_pack_str(pk, "net");
    pack_ipv4(pk, st->net_known ? &st->net : NULL);
    wire_pack_str(pk, "netmask");
    pack_ipv4(pk, st->net_known ? &st->netmask : NULL);
    wire_pack_str(pk, "paused");
    if (st->paused)
        msgpack_pack_true(pk);
    else
        msgpack_pack_false(pk);
    wire_pack_str(pk, "uid");
    msgpack_pack_uint32(pk, geteuid());
    wire_pack_str(pk, "gid");
    msgpack_pack_uint32(pk, getegid());
    wire_pack_str(pk, "groups");
    msgpack_pack_array(pk, (size_t)ngroups);
    for (i = 0; i < ngroups; i++)
        msgpack_pack_uint32(pk, groups[i]);
    free(groups);
    wire_pack_str(pk, "chroot");
    wire_pack_str(pk, st->root[0] != '\0' ? st->root : NULL);
    wire_pack_str(pk, "fanout");
    if (st->fanout_group >= 0)
        msgpack_pack_int(pk, st->fanout_group);
    else
        msgpack_pack_nil(pk);
    wire_pack_str(pk, "sandbox");
    wire_pack_str(pk, sandbox_name);
    wire_pack_str(pk, "max_frame");
    msgpack_pack_int(pk, EPCAPD_MAX_FRAME);
    wire_pack_str(pk, "warnings");
    msgpack_pack_array(pk, (size_t)st->nwarnings);
    for (i = 0; i < st->nwarnings; i++)
        wire_pack_str(pk, st->warnings[i]);
    testhook_pack_ready(pk);
    wire_send(&m, NULL);
}

/* An address as text: inet_ntop, or the link-layer bytes in hex. */
static void pack_address(msgpack_packer *pk, const struct sockaddr *sa)
{
    char text[INET6_ADDRSTRLEN + 1] = "";
    const struct sockaddr_ll *ll = (const struct sockaddr_ll *)(const void *)sa;
    char *at;
    size_t i, n;

    if (sa == NULL) {
        msgpack_pack_nil(pk);
        return;
    }
    if (sa->sa_family == AF_INET)
        (void)inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr,
                        text, sizeof(text));
    else if (sa->sa_family == AF_INET6)
        (void)inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr,
                        text, sizeof(text));
    else {
        n = ll->sll_halen < sizeof(ll->sll_addr) ? ll->sll_halen : sizeof(ll->sll_addr);
        for (i = 0, at = text; i < n; i++)
            at += snprintf(at, (size_t)(text + sizeof(text) - at), "%s%02x", i ? ":" : "",
                           ll->sll_addr[i]);
    }
    wire_pack_str(pk, text);
}

static const char *family_name(const struct sockaddr *sa)
{
    if (sa == NULL)
        return NULL;
    switch (sa->sa_family) {
    case AF_INET: return "inet";
    case AF_INET6: return "inet6";
    case AF_PACKET: return "packet";
    default: return NULL;
    }
}

/* ["interfaces", {version, devices: [{name, description, flags, addresses}]}],
 * the devices for which allowed() holds (all when it is NULL), in one frame
 * or, if they do not fit one, an error. */
void frame_interfaces(pcap_if_t *devs, int (*allowed)(const char *name))
{
    message_t m;
    msgpack_packer *pk;
    pcap_if_t *dev;
    pcap_addr_t *a;
    size_t ndevs = 0, naddrs;

    for (dev = devs; dev != NULL; dev = dev->next)
        ndevs += allowed == NULL || allowed(dev->name);
    pk = wire_open(&m, 2, "interfaces");
    msgpack_pack_map(pk, 2);
    wire_pack_str(pk, "version");
    msgpack_pack_int(pk, EPCAPD_PROTOCOL_VERSION);
    wire_pack_str(pk, "devices");
    msgpack_pack_array(pk, ndevs);
    for (dev = devs; dev != NULL; dev = dev->next) {
        if (allowed != NULL && !allowed(dev->name))
            continue;
        msgpack_pack_map(pk, 4);
        wire_pack_str(pk, "name");
        wire_pack_str(pk, dev->name);
        wire_pack_str(pk, "description");
        wire_pack_str(pk, dev->description);
        wire_pack_str(pk, "flags");
        msgpack_pack_uint32(pk, dev->flags);
        wire_pack_str(pk, "addresses");
        naddrs = 0;
        for (a = dev->addresses; a != NULL; a = a->next)
            naddrs += family_name(a->addr) != NULL;
        msgpack_pack_array(pk, naddrs);
        for (a = dev->addresses; a != NULL; a = a->next) {
            if (family_name(a->addr) == NULL)
                continue;
            msgpack_pack_map(pk, 5);
            wire_pack_str(pk, "family");
            wire_pack_str(pk, family_name(a->addr));
            wire_pack_str(pk, "addr");
            pack_address(pk, a->addr);
            wire_pack_str(pk, "netmask");
            pack_address(pk, family_name(a->netmask) ? a->netmask : NULL);
            wire_pack_str(pk, "broadaddr");
            pack_address(pk, family_name(a->broadaddr) ? a->broadaddr : NULL);
            wire_pack_str(pk, "dstaddr");
            pack_address(pk, family_name(a->dstaddr) ? a->dstaddr : NULL);
        }
    }
    if (m.sb.size > EPCAPD_MAX_FRAME) /* thousands of devices: no bug of the helper's */
        die("frame", EMSGSIZE, 0, "the list of %zu devices takes %zu bytes, more than a frame "
            "(%d)", ndevs, m.sb.size, EPCAPD_MAX_FRAME);
    wire_send(&m, NULL);
}

/*
 * [tag, {stats}], or ["reply", reply, {stats}] when reply is not NULL. The
 * map holds packets and delayed, and, for live captures, libpcap's
 * received, dropped and if_dropped as 64-bit totals.
 */
void frame_stats(epcapd_t *st, const char *tag, const char *reply, int live)
{
    message_t m;
    msgpack_packer *pk;

    pk = wire_open(&m, reply != NULL ? 3 : 2, tag);
    if (reply != NULL)
        wire_pack_str(pk, reply);
    msgpack_pack_map(pk, live ? 5 : 2);
    wire_pack_str(pk, "packets");
    msgpack_pack_uint64(pk, st->delivered);
    wire_pack_str(pk, "delayed");
    msgpack_pack_uint64(pk, wire_delays());
    if (live) {
        wire_pack_str(pk, "received");
        msgpack_pack_uint64(pk, st->received);
        wire_pack_str(pk, "dropped");
        msgpack_pack_uint64(pk, st->dropped);
        wire_pack_str(pk, "if_dropped");
        msgpack_pack_uint64(pk, st->if_dropped);
    }
    wire_send(&m, NULL);
}

/* ["reply", command, value]: value is an int, or nil when negative. */
void frame_reply(const char *command, long long value)
{
    message_t m;
    msgpack_packer *pk;

    pk = wire_open(&m, 3, "reply");
    wire_pack_str(pk, command);
    if (value < 0)
        msgpack_pack_nil(pk);
    else
        msgpack_pack_int64(pk, value);
    wire_send(&m, NULL);
}

/* ["refused", command, {op, code, errno, message}]: the capture goes on. */
void frame_refused(const char *command, const char *op, int errnum, int pcap_code,
                   const char *message)
{
    message_t m;
    msgpack_packer *pk;

    pk = wire_open(&m, 3, "refused");
    wire_pack_str(pk, command);
    wire_pack_error(pk, op, errnum, pcap_code, message);
    wire_send(&m, NULL);
}

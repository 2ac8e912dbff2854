/*
 * frame.c: everything the helper writes on stdout (PROTOCOL.md).
 *
 *   +---------------+----------------------------------------+
 *   | N (uint32 BE) | msgpack ["tag", ...], exactly N bytes  |
 *   +---------------+----------------------------------------+
 *
 * Packets are packed as they arrive into one growing buffer (the batch
 * body), three values each (time, length, data), with no array of their
 * own: the client turns a flat array into packets without a Python loop.
 * frame_flush() prefixes the body with the frame length and the
 * ["packets", dlt, array(3n)] header and writes all three with one writev().
 */
#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "epcapd.h"

static epcapd_t *state; /* for die(): flush what was captured first */

/*
 * stdout is non-blocking (main): a full pipe means the client is behind.
 * Count that once per frame as "delayed", then wait for room: the helper
 * never drops what it captured.
 */
static void write_all(struct iovec *iov, int iovcnt)
{
    struct pollfd out = {STDOUT_FILENO, POLLOUT, 0};
    int waited = 0;

    while (iovcnt > 0) {
        ssize_t n = writev(STDOUT_FILENO, iov, iovcnt);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN) {
                if (!waited++ && state != NULL)
                    state->delayed++;
                (void)poll(&out, 1, -1);
                continue;
            }
            /* EPIPE: the reader is gone, nobody is left to tell. */
            _exit(errno == EPIPE ? 0 : 1);
        }
        while (iovcnt > 0 && (size_t)n >= iov->iov_len) {
            n -= (ssize_t)iov->iov_len;
            iov++;
            iovcnt--;
        }
        if (iovcnt > 0) {
            iov->iov_base = (char *)iov->iov_base + n;
            iov->iov_len -= (size_t)n;
        }
    }
}

/* Write head (and body, if any) as one frame. */
static void write_frame(const msgpack_sbuffer *head, const msgpack_sbuffer *body)
{
    size_t len = head->size + (body != NULL ? body->size : 0);
    uint32_t prefix = htonl((uint32_t)len);
    struct iovec iov[3] = {
        {&prefix, sizeof(prefix)},
        {head->data, head->size},
        {body != NULL ? body->data : NULL, body != NULL ? body->size : 0},
    };

    if (len == 0 || len > EPCAPD_MAX_FRAME)
        die("frame", EMSGSIZE, 0, "frame of %zu bytes exceeds the limit", len);
    write_all(iov, body != NULL ? 3 : 2);
}

static void pack_str(msgpack_packer *pk, const char *s)
{
    size_t n;

    if (s == NULL) {
        msgpack_pack_nil(pk);
        return;
    }
    n = strlen(s);
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, s, n);
}

static void pack_key(msgpack_packer *pk, const char *key)
{
    pack_str(pk, key);
}

/* One message: [tag, ...] with `items` elements in all, built, then sent. */
typedef struct {
    msgpack_sbuffer sb;
    msgpack_packer pk;
} message_t;

static msgpack_packer *message_open(message_t *m, size_t items, const char *tag)
{
    msgpack_sbuffer_init(&m->sb);
    msgpack_packer_init(&m->pk, &m->sb, msgpack_sbuffer_write);
    msgpack_pack_array(&m->pk, items);
    pack_str(&m->pk, tag);
    return &m->pk;
}

static void message_send(message_t *m, const msgpack_sbuffer *body)
{
    write_frame(&m->sb, body);
    msgpack_sbuffer_destroy(&m->sb);
}

void frame_init(epcapd_t *st)
{
    state = st;
    msgpack_sbuffer_init(&st->batch);
    msgpack_packer_init(&st->batch_pk, &st->batch, msgpack_sbuffer_write);
}

/*
 * Add one packet to the batch. The fraction is normalised to nanoseconds
 * below one second (a corrupt file may hold more). A packet is cut to a
 * snaplen given with -s (libpcap applies none to files) and to what one
 * frame can carry (files of some link types hold larger packets); its wire
 * length stays. A packet that would overflow the batch's frame flushes it first.
 */
void frame_packet(epcapd_t *st, const struct pcap_pkthdr *h, const u_char *data)
{
    msgpack_packer *pk = &st->batch_pk;
    int64_t sec = (int64_t)h->ts.tv_sec;
    /* libpcap keeps a file's 32-bit fraction, scaled to nanoseconds when
     * asked, in a 64-bit tv_usec; only a 32-bit long can make it negative */
    int64_t usec = (int64_t)h->ts.tv_usec;
    uint64_t frac = usec < 0 ? (uint64_t)(uint32_t)usec : (uint64_t)usec;
    uint32_t caplen = h->caplen;

    if (st->precision == PCAP_TSTAMP_PRECISION_MICRO)
        frac *= 1000;
    sec += (int64_t)(frac / 1000000000);
    frac %= 1000000000;
    if (st->snaplen > 0 && caplen > (uint32_t)st->snaplen)
        caplen = (uint32_t)st->snaplen;
    if (caplen > EPCAPD_MAX_CAPLEN)
        caplen = EPCAPD_MAX_CAPLEN;
    if (st->batch.size + caplen + 64 > EPCAPD_MAX_FRAME - 64)
        frame_flush(st);

    if (sec >= 0 && (uint64_t)sec <= (UINT64_MAX - frac) / 1000000000) {
        msgpack_pack_uint64(pk, (uint64_t)sec * 1000000000 + frac);
    } else { /* beyond 2554 (or before 1970): too wide for 64 bits of ns */
        msgpack_pack_array(pk, 2);
        msgpack_pack_int64(pk, sec);
        msgpack_pack_uint32(pk, (uint32_t)frac);
    }
    msgpack_pack_uint32(pk, h->len);
    msgpack_pack_bin(pk, caplen);
    msgpack_pack_bin_body(pk, data, caplen);
    st->batch_count++;

    if (st->batch.size >= EPCAPD_BATCH_BYTES)
        frame_flush(st);
}

int frame_writable(void)
{
    struct pollfd out = {STDOUT_FILENO, POLLOUT, 0};

    return poll(&out, 1, 0) == 1 && (out.revents & POLLOUT) != 0;
}

void frame_flush(epcapd_t *st)
{
    message_t m;
    msgpack_packer *pk;

    if (st->batch_count == 0)
        return;
    pk = message_open(&m, 3, "packets");
    msgpack_pack_int(pk, st->datalink);
    msgpack_pack_array(pk, (size_t)st->batch_count * 3);
    message_send(&m, &st->batch);

    st->delivered += st->batch_count;
    st->batch_count = 0;
    msgpack_sbuffer_clear(&st->batch);
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

    pk = message_open(&m, 2, "ready");
    msgpack_pack_map(pk, 17);
    pack_key(pk, "version");
    msgpack_pack_int(pk, EPCAPD_PROTOCOL_VERSION);
    pack_key(pk, "pid");
    msgpack_pack_int(pk, (int)getpid());
    pack_key(pk, "datalink");
    msgpack_pack_int(pk, st->datalink);
    pack_key(pk, "datalink_name");
    pack_str(pk, pcap_datalink_val_to_name(st->datalink));
    pack_key(pk, "snaplen");
    msgpack_pack_int(pk, st->snaplen > 0 && st->snaplen < pcap_snapshot(st->pcap)
                              ? st->snaplen
                              : pcap_snapshot(st->pcap));
    pack_key(pk, "precision");
    pack_str(pk, st->precision == PCAP_TSTAMP_PRECISION_NANO ? "nano" : "micro");
    pack_key(pk, "timeout");
    if (st->file != NULL)
        msgpack_pack_nil(pk);
    else if (st->timeout == TIMEOUT_IMMEDIATE)
        pack_str(pk, "immediate");
    else if (st->timeout == TIMEOUT_NEVER)
        pack_str(pk, "never");
    else
        msgpack_pack_int(pk, st->timeout);
    pack_key(pk, "interface");
    pack_str(pk, st->file == NULL ? st->ifname : NULL);
    pack_key(pk, "file");
    pack_str(pk, st->file);
    pack_key(pk, "filter");
    pack_str(pk, st->filter);
    pack_key(pk, "uid");
    msgpack_pack_uint32(pk, getuid());
    pack_key(pk, "gid");
    msgpack_pack_uint32(pk, getgid());
    pack_key(pk, "groups");
    msgpack_pack_array(pk, (size_t)ngroups);
    for (i = 0; i < ngroups; i++)
        msgpack_pack_uint32(pk, groups[i]);
    free(groups);
    pack_key(pk, "chroot");
    pack_str(pk, st->root[0] != '\0' ? st->root : NULL);
    pack_key(pk, "sandbox");
    pack_str(pk, sandbox_name);
    pack_key(pk, "max_frame");
    msgpack_pack_int(pk, EPCAPD_MAX_FRAME);
    pack_key(pk, "warnings");
    msgpack_pack_array(pk, (size_t)st->nwarnings);
    for (i = 0; i < st->nwarnings; i++)
        pack_str(pk, st->warnings[i]);
    message_send(&m, NULL);
}

/*
 * [tag, {stats}], or ["reply", reply, {stats}] when reply is not NULL. The
 * map holds packets and delayed, and, for live captures, libpcap's
 * received, dropped and if_dropped as 64-bit totals.
 */
void frame_stats(epcapd_t *st, const char *tag, const char *reply)
{
    message_t m;
    msgpack_packer *pk;
    int live = capture_stats(st) == 0;

    pk = message_open(&m, reply != NULL ? 3 : 2, tag);
    if (reply != NULL)
        pack_str(pk, reply);
    msgpack_pack_map(pk, live ? 5 : 2);
    pack_key(pk, "packets");
    msgpack_pack_uint64(pk, st->delivered);
    pack_key(pk, "delayed");
    msgpack_pack_uint64(pk, st->delayed);
    if (live) {
        pack_key(pk, "received");
        msgpack_pack_uint64(pk, st->received);
        pack_key(pk, "dropped");
        msgpack_pack_uint64(pk, st->dropped);
        pack_key(pk, "if_dropped");
        msgpack_pack_uint64(pk, st->if_dropped);
    }
    message_send(&m, NULL);
}

/* ["reply", command, value]: value is an int, or nil when negative. */
void frame_reply(const char *command, long long value)
{
    message_t m;
    msgpack_packer *pk;

    pk = message_open(&m, 3, "reply");
    pack_str(pk, command);
    if (value < 0)
        msgpack_pack_nil(pk);
    else
        msgpack_pack_int64(pk, value);
    message_send(&m, NULL);
}

static const char *pcap_code_name(int code);

/* {op, code, errno, message}: the body of "error" and "refused" frames. */
static void pack_error(msgpack_packer *pk, const char *op, int errnum, int pcap_code,
                       const char *message)
{
    msgpack_pack_map(pk, 4);
    pack_key(pk, "op");
    pack_str(pk, op);
    pack_key(pk, "code");
    pack_str(pk, pcap_code_name(pcap_code));
    pack_key(pk, "errno");
    pack_str(pk, errnum != 0 ? strerrorname_np(errnum) : NULL);
    pack_key(pk, "message");
    pack_str(pk, message);
}

/* ["refused", command, {op, code, errno, message}]: the capture goes on. */
void frame_refused(const char *command, const char *op, int errnum, int pcap_code,
                   const char *message)
{
    message_t m;
    msgpack_packer *pk;

    pk = message_open(&m, 3, "refused");
    pack_str(pk, command);
    pack_error(pk, op, errnum, pcap_code, message);
    message_send(&m, NULL);
}

static const char *pcap_code_name(int code)
{
    switch (code) {
    case PCAP_ERROR: return "PCAP_ERROR";
    case PCAP_ERROR_BREAK: return "PCAP_ERROR_BREAK";
    case PCAP_ERROR_NOT_ACTIVATED: return "PCAP_ERROR_NOT_ACTIVATED";
    case PCAP_ERROR_ACTIVATED: return "PCAP_ERROR_ACTIVATED";
    case PCAP_ERROR_NO_SUCH_DEVICE: return "PCAP_ERROR_NO_SUCH_DEVICE";
    case PCAP_ERROR_RFMON_NOTSUP: return "PCAP_ERROR_RFMON_NOTSUP";
    case PCAP_ERROR_NOT_RFMON: return "PCAP_ERROR_NOT_RFMON";
    case PCAP_ERROR_PERM_DENIED: return "PCAP_ERROR_PERM_DENIED";
    case PCAP_ERROR_IFACE_NOT_UP: return "PCAP_ERROR_IFACE_NOT_UP";
    case PCAP_ERROR_CANTSET_TSTAMP_TYPE: return "PCAP_ERROR_CANTSET_TSTAMP_TYPE";
    case PCAP_ERROR_PROMISC_PERM_DENIED: return "PCAP_ERROR_PROMISC_PERM_DENIED";
    case PCAP_ERROR_TSTAMP_PRECISION_NOTSUP: return "PCAP_ERROR_TSTAMP_PRECISION_NOTSUP";
    default: return NULL;
    }
}

/*
 * ["error", {op, code, errno, message}], then exit 1. Packets already
 * captured are written first: an error never loses them.
 */
void die(const char *op, int errnum, int pcap_code, const char *fmt, ...)
{
    char message[1024];
    message_t m;
    msgpack_packer *pk;
    va_list ap;

    va_start(ap, fmt);
    (void)vsnprintf(message, sizeof(message), fmt, ap);
    va_end(ap);

    if (state != NULL) {
        epcapd_t *st = state;
        state = NULL; /* a failure while flushing must not flush again */
        frame_flush(st);
    }

    pk = message_open(&m, 2, "error");
    pack_error(pk, op, errnum, pcap_code, message);
    message_send(&m, NULL);
#ifdef EPCAPD_FUZZ
    fuzz_exit(); /* the harness goes on with its next input */
#else
    exit(1);
#endif
}

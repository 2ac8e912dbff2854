/*
 * wire.c: how a message goes out on stdout (PROTOCOL.md, "Framing").
 *
 *   +---------------+----------------------------------------+
 *   | N (uint32 BE) | msgpack ["tag", ...], exactly N bytes  |
 *   +---------------+----------------------------------------+
 *
 * A message is built with wire_open() and the packer it returns, then
 * written, with an optional body that follows the head in the same frame
 * (a batch of packets), by wire_send(): prefix, head and body in one
 * writev(). stdout is non-blocking (main): a full pipe means the client is
 * behind. That is counted once per frame as "delayed", then the helper
 * waits for room, never dropping what it captured; while it waits it also
 * watches its client (invoker.c), and exits if the client is gone.
 *
 * Error messages can echo what a caller gave (a file or interface name):
 * control characters, and bytes that are not UTF-8, travel as \xNN.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "epcapd.h"

static int client_fd = -1; /* readable once the client has exited */
static uint64_t delays;    /* times stdout was found full */

void wire_init(int fd)
{
    client_fd = fd;
}

void wire_count_delay(void)
{
    delays++;
}

uint64_t wire_delays(void)
{
    return delays;
}

/* Write the whole frame, waiting for room as long as it takes; with
 * may_refuse, a stdout with no room at all for its first byte is 0 and
 * nothing is written (the caller keeps the frame). 1 once written. */
static int write_all(struct iovec *iov, int iovcnt, int may_refuse)
{
    struct pollfd fds[2] = {{STDOUT_FILENO, POLLOUT, 0}, {client_fd, POLLIN, 0}};
    int waited = 0;

    while (iovcnt > 0) {
        ssize_t n = writev(STDOUT_FILENO, iov, iovcnt);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN && may_refuse)
                return 0;
            if (errno == EAGAIN) {
                if (!waited++)
                    delays++;
                fds[1].revents = 0;
                (void)poll(fds, client_fd >= 0 ? 2 : 1, -1);
                if (fds[1].revents != 0)
                    _exit(0); /* the client is gone: nobody is left to read */
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
        may_refuse = 0; /* a frame begun is a frame finished */
    }
    return 1;
}

static int write_frame(const msgpack_sbuffer *head, const msgpack_sbuffer *body,
                       int may_refuse);

/* A frame the helper built too large is its own bug: say so, and end. */
static void __attribute__((noreturn)) oversize(size_t len)
{
    char text[96];
    message_t m;
    msgpack_packer *pk = wire_open(&m, 2, "error");

    (void)snprintf(text, sizeof(text), "frame of %zu bytes exceeds the limit", len);
    wire_pack_error(pk, "frame", EMSGSIZE, 0, text);
    (void)write_frame(&m.sb, NULL, 0);
    _exit(1);
}

/* Write head (and body, if any) as one frame (write_all() says when not). */
static int write_frame(const msgpack_sbuffer *head, const msgpack_sbuffer *body,
                       int may_refuse)
{
    size_t len = head->size + (body != NULL ? body->size : 0);
    uint32_t prefix = htonl((uint32_t)len);
    struct iovec iov[3] = {
        {&prefix, sizeof(prefix)},
        {head->data, head->size},
        {body != NULL ? body->data : NULL, body != NULL ? body->size : 0},
    };

    if (len == 0 || len > EPCAPD_MAX_FRAME)
        oversize(len);
    return write_all(iov, body != NULL ? 3 : 2, may_refuse);
}

msgpack_packer *wire_open(message_t *m, size_t items, const char *tag)
{
    msgpack_sbuffer_init(&m->sb);
    msgpack_packer_init(&m->pk, &m->sb, msgpack_sbuffer_write);
    msgpack_pack_array(&m->pk, items);
    wire_pack_str(&m->pk, tag);
    return &m->pk;
}

void wire_send(message_t *m, const msgpack_sbuffer *body)
{
    (void)write_frame(&m->sb, body, 0);
    msgpack_sbuffer_destroy(&m->sb);
}

/* As wire_send(), unless stdout has no room at all (the client is behind):
 * then nothing is written and 0 is returned. One writev() when there is
 * room, no poll() first: this is the path of every live batch. */
int wire_try_send(message_t *m, const msgpack_sbuffer *body)
{
    int sent = write_frame(&m->sb, body, 1);

    msgpack_sbuffer_destroy(&m->sb);
    return sent;
}

void wire_pack_str(msgpack_packer *pk, const char *s)
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

/* Bytes in the UTF-8 sequence at s (at most left), 0 if it is not one. */
static size_t utf8_length(const unsigned char *s, size_t left)
{
    size_t n, i;

    if (s[0] < 0x80)
        return 1;
    if (s[0] >= 0xc2 && s[0] <= 0xdf)
        n = 2;
    else if (s[0] >= 0xe0 && s[0] <= 0xef)
        n = 3;
    else if (s[0] >= 0xf0 && s[0] <= 0xf4)
        n = 4;
    else
        return 0;
    if (n > left)
        return 0;
    for (i = 1; i < n; i++)
        if ((s[i] & 0xc0) != 0x80)
            return 0;
    if ((n == 3 && s[0] == 0xe0 && s[1] < 0xa0) || (n == 4 && s[0] == 0xf0 && s[1] < 0x90) ||
        (n == 4 && s[0] == 0xf4 && s[1] >= 0x90) || (n == 3 && s[0] == 0xed && s[1] >= 0xa0))
        return 0; /* overlong, beyond U+10FFFF, or a surrogate */
    return n;
}

/* s, with control characters (C0, DEL, C1) and non-UTF-8 bytes as \xNN. */
static void pack_text(msgpack_packer *pk, const char *s)
{
    char out[5120];
    const unsigned char *p = (const unsigned char *)s;
    size_t left = strlen(s), o = 0, n;

    while (left > 0 && o + 16 < sizeof(out)) {
        n = utf8_length(p, left);
        if (n == 0 || (n == 1 && (*p < 0x20 || *p == 0x7f)) ||
            (n == 2 && p[0] == 0xc2 && p[1] < 0xa0)) {
            size_t i, bytes = n == 0 ? 1 : n;
            for (i = 0; i < bytes; i++)
                o += (size_t)snprintf(out + o, sizeof(out) - o, "\\x%02x", p[i]);
            n = bytes;
        } else {
            memcpy(out + o, p, n);
            o += n;
        }
        p += n;
        left -= n;
    }
    msgpack_pack_str(pk, o);
    msgpack_pack_str_body(pk, out, o);
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

/* {op, code, errno, message}: the body of "error" and "refused" frames. */
void wire_pack_error(msgpack_packer *pk, const char *op, int errnum, int pcap_code,
                     const char *message)
{
    msgpack_pack_map(pk, 4);
    wire_pack_str(pk, "op");
    wire_pack_str(pk, op);
    wire_pack_str(pk, "code");
    wire_pack_str(pk, pcap_code_name(pcap_code));
    wire_pack_str(pk, "errno");
    wire_pack_str(pk, errnum != 0 ? strerrorname_np(errnum) : NULL);
    wire_pack_str(pk, "message");
    pack_text(pk, message);
}


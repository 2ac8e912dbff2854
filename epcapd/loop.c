/*
 * loop.c: the RUNNING state. One poll() over stdin (commands, EOF = stop)
 * and the pcap fd; file captures read in bounded rounds between polls.
 *
 * Commands are frames on stdin (PROTOCOL.md):
 *
 *   +---------------+---------------------------------------------+
 *   | N (uint32 BE) | msgpack ["command", args...], exactly N bytes |
 *   +---------------+---------------------------------------------+
 *
 * N is checked against EPCAPD_MAX_FRAME before any byte of the body is
 * awaited; the body must be exactly one msgpack array led by a known tag
 * with the right number of arguments. Anything else is fatal.
 *
 * With -k, every whole frame restarts the clock that ends a helper whose
 * stdin stays silent (loop_keepalive_start). With -H the loop first holds
 * (hold()): it answers commands and takes no packet until "resume".
 */
#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "epcapd.h"

typedef struct {
    const char *name;
    uint32_t nargs;             /* 0 or 1 */
    msgpack_object_type type;   /* of the argument */
    const char *type_name;      /* for the error message */
    void (*handler)(epcapd_t *st, const msgpack_object *args);
    int answered;               /* a reply or refused follows the packets before it */
} command_t;

#define STATS_SAMPLE_MS 1000 /* sample libpcap's counters before they can wrap */
#define RETIRE_SLACK_MS 10   /* the kernel's block timer may fire late */
#define SETTLE_MAX_MS 1000   /* well inside the 2 s a closing client waits */

static long long now_ms(void)
{
    struct timespec ts;

    (void)clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * -k: a helper whose stdin stays silent for st->keepalive ms ends. A remote
 * client's link can die with nothing to tell the remote sshd, and then
 * stdin never ends. The clock is the kernel's (ITIMER_REAL), and SIGALRM
 * keeps its default action, to terminate, with no handler: a poll()
 * timeout would end only a helper that comes back to its loop, and one
 * whose client is gone may be blocked for good in a write to a full stdout
 * (wire.c), or be in the stop's settle(). The signal ends it wherever it
 * is. Nothing is written then: a write could block. Every whole frame
 * read from stdin restarts the clock, and so does end-of-file (the
 * client's last word: the stop gets the whole time). Fuzz builds arm
 * nothing: a harness killed by SIGALRM would be reported as a crash.
 */
static void keepalive(const epcapd_t *st)
{
#ifdef EPCAPD_FUZZ
    (void)st;
#else
    struct itimerval t = {{0, 0}, {st->keepalive / 1000, st->keepalive % 1000 * 1000}};

    /* A restart that fails leaves the clock running: it still ends the
     * helper. */
    if (st->keepalive != 0 && setitimer(ITIMER_REAL, &t, NULL) != 0)
        die("option", errno, 0, "-k: setitimer: %s", strerror(errno));
#endif
}

/* Right after the options: the clock runs through SETUP too. */
void loop_keepalive_start(epcapd_t *st)
{
    struct sigaction dfl;
    sigset_t only_alarm;

    if (st->keepalive == 0)
        return;
    /* A signal's disposition and blocking survive exec: the caller (and
     * sudo passes on its own caller's) may have SIGALRM ignored or blocked. */
    memset(&dfl, 0, sizeof(dfl));
    dfl.sa_handler = SIG_DFL;
    if (sigemptyset(&dfl.sa_mask) != 0 || sigaction(SIGALRM, &dfl, NULL) != 0 ||
        sigemptyset(&only_alarm) != 0 || sigaddset(&only_alarm, SIGALRM) != 0 ||
        sigprocmask(SIG_UNBLOCK, &only_alarm, NULL) != 0)
        die("option", errno, 0, "-k: SIGALRM: %s", strerror(errno));
    /* The kernel drops a signal of default action sent to the first
     * process of a PID namespace: the clock would not end it. */
    if (getpid() == 1)
        die("option", 0, 0, "-k: the first process of a PID namespace ignores SIGALRM");
    keepalive(st);
}

static int readable(const struct pollfd *pfd, const char *what)
{
    if (pfd->revents & POLLNVAL)
        die("poll", EBADF, 0, "%s: invalid descriptor", what);
    return (pfd->revents & (POLLIN | POLLERR | POLLHUP)) != 0;
}

/*
 * Live, with a timeout, libpcap's TPACKET_V3 ring hands over a block of
 * packets only once the kernel retires it: when it is full, or when its
 * timer (the timeout) fires, up to two timeouts after the block opened.
 * Until then the packets of the block being filled are out of reach. Before
 * the helper stops, and before it swaps filters (libpcap refilters what is
 * left in its ring with the new one), it waits that long, batching what
 * comes: every packet the socket took before the command reaches the
 * client. Immediate mode hands each packet over at once; with no timeout
 * ("never") a block goes only when full, and no wait would do.
 */
static void settle(epcapd_t *st)
{
    struct pollfd ring = {-1, POLLIN, 0};
    long long wait, deadline, left;

    if (st->file != NULL)
        return;
    (void)capture_drain(st, 64);
    if (st->timeout <= 0)
        return;
    ring.fd = pcap_get_selectable_fd(st->pcap);
    wait = 2LL * st->timeout + RETIRE_SLACK_MS;
    deadline = now_ms() + (wait < SETTLE_MAX_MS ? wait : SETTLE_MAX_MS);
    while ((left = deadline - now_ms()) > 0) {
        ring.revents = 0;
        if (poll(&ring, 1, (int)left) < 0 && errno != EINTR)
            die("poll", errno, 0, "poll: %s", strerror(errno));
        if (readable(&ring, "pcap"))
            (void)capture_drain(st, 64);
    }
}

static void send_stats(epcapd_t *st, const char *tag, const char *reply)
{
    frame_stats(st, tag, reply, capture_stats(st) == 0);
}

static void cmd_stats(epcapd_t *st, const msgpack_object *args)
{
    (void)args;
    send_stats(st, "reply", "stats");
}

/*
 * Before a command that changes which packets pass: deliver those already
 * captured (they passed the old rule), waiting for the kernel's block as a
 * stop does. A held helper (-H) has taken none, and takes none now: the
 * new rule then applies to everything the ring and the file hold.
 */
static void deliver_captured(epcapd_t *st)
{
    if (!st->paused)
        settle(st);
    frame_flush(st);
}

/*
 * Packets already captured went through the old filter: deliver them, then
 * swap filters (libpcap refilters what is left in its ring), then reply.
 * After the reply, only packets that pass the new filter arrive.
 */
static void cmd_filter(epcapd_t *st, const msgpack_object *args)
{
    const char *note = "";
    const char *op, *err;
    char *expr;

    if (memchr(args[0].via.str.ptr, '\0', args[0].via.str.size) != NULL) {
        frame_refused("filter", "pcap_compile", EINVAL, PCAP_ERROR,
                      "filter expression contains a NUL character");
        return;
    }
    expr = strndup(args[0].via.str.ptr, args[0].via.str.size);
    if (expr == NULL)
        die("strndup", errno, 0, "out of memory");
    deliver_captured(st);
    err = capture_set_filter(st, expr, &op);
    free(expr);
    if (err == NULL) {
        frame_reply("filter", -1);
        return;
    }
    if (st->root[0] != '\0' && strstr(err, "unknown") != NULL)
        note = " (host, port and protocol names do not resolve inside the helper's"
               " chroot: use numbers, or give the filter to start())";
    {
        char message[PCAP_ERRBUF_SIZE + 160];
        (void)snprintf(message, sizeof(message), "%s%s", err, note);
        frame_refused("filter", op, 0, PCAP_ERROR, message);
    }
}

static void cmd_send(epcapd_t *st, const msgpack_object *args)
{
    int n;

    if (!st->inject) {
        frame_refused("send", "send", EPERM, 0,
                      "sending is not enabled: start the capture with inject=True");
        return;
    }
    errno = 0;
    n = pcap_inject(st->pcap, args[0].via.bin.ptr, args[0].via.bin.size);
    if (n < 0)
        frame_refused("send", "pcap_inject", errno, PCAP_ERROR, pcap_geterr(st->pcap));
    else
        frame_reply("send", n);
}

/*
 * As the filter command: packets already captured, then the new direction
 * (libpcap checks it as it reads the ring: it applies to what the ring
 * holds), then the reply. A file refuses, with libpcap's message.
 */
static void cmd_direction(epcapd_t *st, const msgpack_object *args)
{
    pcap_direction_t direction;

    if (capture_direction(args[0].via.str.ptr, args[0].via.str.size, &direction) != 0) {
        frame_refused("direction", "option", EINVAL, 0,
                      "direction must be \"in\", \"out\" or \"inout\"");
        return;
    }
    deliver_captured(st);
    if (pcap_setdirection(st->pcap, direction) != 0)
        frame_refused("direction", "pcap_setdirection", 0, PCAP_ERROR,
                      pcap_geterr(st->pcap));
    else
        frame_reply("direction", -1);
}

/* The end of -H's hold: packets flow from now on. Unanswered, as
 * keepalive: a client sends it with its first read and waits for packets,
 * not for a reply. Without -H, or a second time, it does nothing. */
static void cmd_resume(epcapd_t *st, const msgpack_object *args)
{
    (void)args;
    st->paused = 0;
}

/* Reading the frame restarted the clock (read_commands): nothing is left
 * to do, and nothing is answered. */
static void cmd_keepalive(epcapd_t *st, const msgpack_object *args)
{
    (void)st;
    (void)args;
}

static const command_t commands[] = {
    {"stats", 0, MSGPACK_OBJECT_NIL, NULL, cmd_stats, 1},
    {"filter", 1, MSGPACK_OBJECT_STR, "a string", cmd_filter, 1},
    {"send", 1, MSGPACK_OBJECT_BIN, "bytes", cmd_send, 1},
    {"keepalive", 0, MSGPACK_OBJECT_NIL, NULL, cmd_keepalive, 0},
    {"direction", 1, MSGPACK_OBJECT_STR, "a string", cmd_direction, 1},
    {"resume", 0, MSGPACK_OBJECT_NIL, NULL, cmd_resume, 0},
};

/*
 * Unpack one command into msg and find it in the table: the command, with
 * its arguments checked, or NULL with the reason in why.
 */
static const command_t *decode(msgpack_unpacked *msg, const char *body, size_t len,
                               char *why, size_t size)
{
    const msgpack_object *tag, *args;
    uint32_t nargs;
    size_t off = 0;
    size_t i;

    if (msgpack_unpack_next(msg, body, len, &off) != MSGPACK_UNPACK_SUCCESS ||
        off != len) {
        (void)snprintf(why, size, "command frame is not exactly one msgpack value");
        return NULL;
    }
    if (msg->data.type != MSGPACK_OBJECT_ARRAY || msg->data.via.array.size == 0 ||
        msg->data.via.array.ptr[0].type != MSGPACK_OBJECT_STR) {
        (void)snprintf(why, size, "command is not an array led by a string tag");
        return NULL;
    }
    tag = &msg->data.via.array.ptr[0];
    args = tag + 1;
    nargs = msg->data.via.array.size - 1;

    for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
        const command_t *c = &commands[i];
        if (strlen(c->name) != tag->via.str.size ||
            memcmp(c->name, tag->via.str.ptr, tag->via.str.size) != 0)
            continue;
        if (nargs != c->nargs)
            (void)snprintf(why, size, "%s: expected %u arguments, got %u", c->name,
                           c->nargs, nargs);
        else if (nargs == 1 && args[0].type != c->type)
            (void)snprintf(why, size, "%s: expected %s", c->name, c->type_name);
        else
            return c;
        return NULL;
    }
    (void)snprintf(why, size, "unknown command '%.*s'", (int)tag->via.str.size,
                   tag->via.str.ptr);
    return NULL;
}

/* Run one command frame; a bad one is fatal, once msg is freed (the
 * fuzz harness, epcapd/fuzz/, counts a leak as a bug). */
static void dispatch(epcapd_t *st, const char *body, size_t len)
{
    char why[256];
    msgpack_unpacked msg;
    const command_t *c;

    msgpack_unpacked_init(&msg);
    c = decode(&msg, body, len, why, sizeof(why));
    if (c != NULL) {
        if (c->answered)
            frame_flush(st); /* an answer follows the packets captured before it */
        c->handler(st, msg.data.via.array.ptr + 1);
    }
    msgpack_unpacked_destroy(&msg);
    if (c == NULL)
        die("protocol", 0, 0, "%s", why);
}

/* Bytes read from stdin that do not make a whole command frame yet. */
static struct {
    char buf[4 + EPCAPD_MAX_FRAME];
    size_t have;
} input;

/* Read what stdin has, run every complete command. 0 at end of file. */
static int read_commands(epcapd_t *st)
{
    ssize_t n = read(STDIN_FILENO, input.buf + input.have,
                     sizeof(input.buf) - input.have);
    uint32_t len;

    if (n < 0) {
        if (errno == EINTR || errno == EAGAIN)
            return 1;
        die("read", errno, 0, "stdin: %s", strerror(errno));
    }
    if (n == 0) {
        if (input.have != 0)
            die("protocol", 0, 0, "stdin closed inside a frame");
        keepalive(st);
        return 0;
    }
    input.have += (size_t)n;
    while (input.have >= 4) {
        memcpy(&len, input.buf, 4);
        len = ntohl(len);
        if (len == 0 || len > EPCAPD_MAX_FRAME)
            die("protocol", 0, 0, "command frame length %u out of range 1..%d",
                len, EPCAPD_MAX_FRAME);
        if (input.have < 4 + (size_t)len)
            break;
        keepalive(st);
        dispatch(st, input.buf + 4, len);
        input.have -= 4 + (size_t)len;
        memmove(input.buf, input.buf + 4 + len, input.have);
    }
    return 1;
}

#ifdef EPCAPD_FUZZ
/* epcapd/fuzz/fuzz_commands.c: read_commands() on a new stdin, after the
 * die() that ended the previous input left a partial frame behind. */
int loop_fuzz_read_commands(epcapd_t *st, int new_input)
{
    if (new_input)
        input.have = 0;
    return read_commands(st);
}
#endif

/* A held helper (-H) stops without taking a packet: nobody read any. */
static void __attribute__((noreturn)) stop(epcapd_t *st)
{
    deliver_captured(st);
    send_stats(st, "eof", NULL);
    exit(0);
}

/* The client's pidfd (invoker.c) is readable once the client has exited:
 * then nobody waits for what the helper would send. */
static int client_gone(const struct pollfd *client)
{
    return client->fd >= 0 && client->revents != 0;
}

static void run_file(epcapd_t *st)
{
    /* a negative fd (no client to watch) is one that poll() skips */
    struct pollfd fds[2] = {{STDIN_FILENO, POLLIN, 0}, {st->client_fd, POLLIN, 0}};

    for (;;) {
        if (poll(fds, 2, 0) < 0) {
            if (errno != EINTR)
                die("poll", errno, 0, "poll: %s", strerror(errno));
            fds[0].revents = fds[1].revents = 0;
        }
        if (client_gone(&fds[1]) || (readable(&fds[0], "stdin") && !read_commands(st)))
            stop(st);
        if (capture_drain(st, 1) == 0)
            stop(st);
        frame_flush(st);
    }
}

/*
 * Live: wake for packets, for commands, and at least every STATS_SAMPLE_MS
 * to widen libpcap's counters, plus every stats_interval for a stats frame.
 *
 * A batch goes out as soon as libpcap has nothing more, if stdout can take
 * it: then batching adds no latency. While the client is behind (stdout
 * full), the helper keeps draining the ring into the batch and waits for
 * stdout too: the batch grows (up to EPCAPD_BATCH_BYTES, when it is written
 * whatever happens), and a slow client gets fewer, larger frames instead of
 * one per packet, which is what lets it catch up.
 */
static void run_live(epcapd_t *st)
{
    struct pollfd fds[4] = {
        {STDIN_FILENO, POLLIN, 0},
        {pcap_get_selectable_fd(st->pcap), POLLIN, 0},
        {st->client_fd, POLLIN, 0}, /* negative when none: poll skips it */
        {STDOUT_FILENO, POLLOUT, 0},
    };
    long long now = now_ms();
    long long next_sample = now + STATS_SAMPLE_MS;
    long long next_frame = st->stats_interval ? now + st->stats_interval : -1;
    long long wake;
    int waiting = 0; /* a batch waits for stdout */

    if (fds[1].fd < 0)
        die("pcap_get_selectable_fd", 0, PCAP_ERROR, "%s: no selectable descriptor",
            st->ifname);
    for (;;) {
        wake = next_frame >= 0 && next_frame < next_sample ? next_frame : next_sample;
        if (poll(fds, waiting ? 4 : 3, wake > now ? (int)(wake - now) : 0) < 0) {
            if (errno != EINTR)
                die("poll", errno, 0, "poll: %s", strerror(errno));
            continue; /* revents are stale */
        }
        /* One pcap_dispatch() takes every packet the ring holds; a second
         * would find none and cost libpcap a poll() of its own: the next
         * turn's poll() says when there is more. */
        if (readable(&fds[1], "pcap"))
            (void)capture_drain(st, 1);
        if (!frame_try_flush(st) && !waiting)
            wire_count_delay(); /* the client is behind: the batch waits */
        waiting = st->batch_count > 0;
        if (client_gone(&fds[2]) || (readable(&fds[0], "stdin") && !read_commands(st)))
            stop(st);
        now = now_ms();
        if (now >= next_sample) {
            (void)capture_stats(st);
            next_sample = now + STATS_SAMPLE_MS;
        }
        if (next_frame >= 0 && now >= next_frame) {
            frame_flush(st);
            send_stats(st, "stats", NULL);
            next_frame = now + st->stats_interval;
        }
    }
}

/*
 * -H: commands only, until "resume". Live, the kernel fills the ring
 * meanwhile (and drops what does not fit, counted), and libpcap's counters
 * are still sampled before they can wrap; a file is not read.
 */
static void hold(epcapd_t *st)
{
    struct pollfd fds[2] = {{STDIN_FILENO, POLLIN, 0}, {st->client_fd, POLLIN, 0}};

    while (st->paused) {
        if (poll(fds, 2, STATS_SAMPLE_MS) < 0) {
            if (errno != EINTR)
                die("poll", errno, 0, "poll: %s", strerror(errno));
            continue; /* revents are stale */
        }
        if (client_gone(&fds[1]) || (readable(&fds[0], "stdin") && !read_commands(st)))
            stop(st);
        (void)capture_stats(st);
    }
}

void loop_run(epcapd_t *st)
{
    hold(st);
    if (st->file != NULL)
        run_file(st);
    else
        run_live(st);
}

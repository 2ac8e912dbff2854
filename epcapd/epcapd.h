/*
 * epcapd: a privileged packet capture helper speaking length-prefixed msgpack.
 *
 * Order of operations (main, epcapd.c):
 *   options_parse -> privdrop_prepare -> capture_open -> capture_filter
 *   -> privdrop -> sandbox_enter -> frame_ready -> loop_run
 *
 * One file per concern: options.c, capture.c, privdrop.c, frame.c, loop.c,
 * sandbox_<backend>.c. The wire format is in PROTOCOL.md.
 */
#ifndef EPCAPD_H
#define EPCAPD_H

#include <sched.h>
#include <stdint.h>
#include <sys/types.h>

#include <msgpack.h>
#include <pcap/pcap.h>

#define EPCAPD_PROTOCOL_VERSION 1
#define EPCAPD_MAX_FRAME (1024 * 1024)  /* both directions, PROTOCOL.md */
#define EPCAPD_BATCH_BYTES (256 * 1024) /* flush a batch at this size */
#define EPCAPD_MAX_CAPLEN (EPCAPD_MAX_FRAME - 1024) /* one packet, with headroom */
#define EPCAPD_MAX_USER_BUFFER (256 * 1024 * 1024) /* -B for non-root callers */
#define EPCAPD_MAX_HEAP (256UL * 1024 * 1024) /* RLIMIT_DATA in the sandbox */
#define EPCAPD_MAX_SNAPLEN 262144
#define EPCAPD_DEFAULT_BUFFER (16 * 1024 * 1024) /* live ring, bytes */
#define EPCAPD_DEFAULT_TIMEOUT 1 /* ms: TPACKET_V3 blocks, retired within 1 ms */
#define EPCAPD_MAX_WARNINGS 8

enum { TIMEOUT_IMMEDIATE = -1, TIMEOUT_NEVER = 0 };

typedef struct {
    /* options, as given (options.c) */
    const char *interface;      /* -i: live interface, or NULL */
    const char *file;           /* -r: capture file, or NULL */
    const char *filter;         /* trailing argument, or NULL */
    int snaplen;                /* -s, 0 if not given (live: the maximum) */
    int promisc;                /* -p */
    int timeout;                /* -t: ms, TIMEOUT_IMMEDIATE, TIMEOUT_NEVER */
    int buffer;                 /* -B: bytes, 0 = EPCAPD_DEFAULT_BUFFER */
    int direction_set;          /* -Q given */
    pcap_direction_t direction; /* -Q */
    int monitor;                /* -I */
    int precision;              /* -P: PCAP_TSTAMP_PRECISION_{MICRO,NANO} */
    const char *chroot;         /* -d, or NULL for the default */
    const char *user;           /* -u, or NULL for "nobody" */
    const char *group;          /* -g, or NULL for the user's group */
    int inject;                 /* -j: the send command is allowed */
    int cluster_id;             /* -C: PACKET_FANOUT group, -1 for none */
    int cpus_set;               /* -a given */
    cpu_set_t cpus;             /* -a: CPU affinity */
    int stats_interval;         /* -S: ms between stats frames, 0 = none */

    /* privilege drop, resolved before the capture opens (privdrop.c) */
    int privileged;             /* euid 0 at start: drop is mandatory */
    uid_t uid;                  /* target uid */
    gid_t gid;                  /* target gid */
    char root[4096];            /* chroot directory, "" when not chrooting */
    int root_fd;                /* the chroot directory, open */

    /* capture (capture.c) */
    pcap_t *pcap;
    int datalink;
    char ifname[256];           /* interface in effect, live mode */
    bpf_u_int32 netmask;        /* for compiling filters */
    const char *warnings[EPCAPD_MAX_WARNINGS]; /* static or strdup'd */
    int nwarnings;

    /* statistics: libpcap's 32-bit counters, widened (capture.c) */
    struct pcap_stat last;      /* the raw counters at the last sample */
    uint64_t received;          /* ps_recv, summed across wraps */
    uint64_t dropped;           /* ps_drop */
    uint64_t if_dropped;        /* ps_ifdrop */
    uint64_t delayed;           /* times the client was behind: stdout was full */

    /* output batch (frame.c) */
    msgpack_sbuffer batch;      /* packed packets, without the header */
    msgpack_packer batch_pk;    /* packs into batch */
    uint32_t batch_count;       /* packets in batch */
    uint64_t delivered;         /* packets written to stdout so far */
} epcapd_t;

/* options.c */
void options_parse(epcapd_t *st, int argc, char *argv[]);

/* privdrop.c */
void privdrop_prepare(epcapd_t *st);
uid_t privdrop_invoker(gid_t *gid);
int privdrop_open_as_invoker(const char *path);
void privdrop(epcapd_t *st);

/* capture.c */
void capture_open(epcapd_t *st);
const char *capture_set_filter(epcapd_t *st, const char *expr, const char **op);
int capture_stats(epcapd_t *st);
void capture_warn(epcapd_t *st, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
int capture_drain(epcapd_t *st, int max_rounds);

/* rlimits.c: shared by the rlimit and seccomp backends */
void rlimits_apply(void);

/* sandbox_<backend>.c: one backend linked in, chosen by the Makefile */
extern const char *const sandbox_name;
void sandbox_enter(epcapd_t *st);

/* frame.c: helper -> client */
void frame_init(epcapd_t *st);
void frame_ready(epcapd_t *st);
void frame_packet(epcapd_t *st, const struct pcap_pkthdr *h,
                  const u_char *data);
void frame_flush(epcapd_t *st);
int frame_writable(void);
void frame_stats(epcapd_t *st, const char *tag, const char *reply);
void frame_reply(const char *command, long long value);
void frame_refused(const char *command, const char *op, int errnum, int pcap_code,
                   const char *message);
void die(const char *op, int errnum, int pcap_code, const char *fmt, ...)
    __attribute__((noreturn, format(printf, 4, 5)));

/* loop.c */
void loop_run(epcapd_t *st);

#ifdef EPCAPD_FUZZ
/* The libFuzzer harnesses in fuzz/ (make fuzz), which run the real code
 * over and over in one process: die() ends an input through fuzz_exit(),
 * which the harness defines, instead of exiting. */
void fuzz_exit(void) __attribute__((noreturn));
int loop_fuzz_read_commands(epcapd_t *st, int new_input);
#endif

#endif

/*
 * epcapd: a privileged packet capture helper speaking length-prefixed msgpack.
 *
 * Order of operations (main, epcapd.c):
 *   invoker_identify -> invoker_sanitize -> privdrop_init -> sandbox_setup
 *   -> invoker_watch -> options_parse -> loop_keepalive_start -> policy_apply
 *   -> live: privdrop_become(target, open caps) -> capture_open_live
 *            -> filter -> privdrop_chroot -> privdrop_finish
 *      file: privdrop_become(invoker) -> capture_open_file
 *            -> privdrop_become(target) -> privdrop_finish -> capture_read_file -> filter
 *   -> sandbox_enter -> frame_ready -> loop_run
 *
 * One file per concern: invoker.c (who asked), policy.c (what they may ask),
 * options.c, privdrop.c, capture.c, fanout.c, wire.c (stdout framing),
 * fatal.c (die), frame.c (the messages), loop.c, sandbox_<backend>.c,
 * testhook.c (test builds only). The wire format is in PROTOCOL.md.
 */
#ifndef EPCAPD_H
#define EPCAPD_H

#include <sched.h>
#include <stdint.h>
#include <sys/types.h>

#include <msgpack.h>
#include <pcap/pcap.h>

#ifndef EPCAPD_PROTOCOL_VERSION /* make PROTOCOL_VERSION=N: a test build that speaks another */
#define EPCAPD_PROTOCOL_VERSION 4
#endif
#define EPCAPD_MAX_FRAME (1024 * 1024)  /* both directions, PROTOCOL.md */
#define EPCAPD_BATCH_BYTES (256 * 1024) /* flush a batch at this size */
#define EPCAPD_MAX_CAPLEN (EPCAPD_MAX_FRAME - 1024) /* one packet, with headroom */
#define EPCAPD_MAX_USER_BUFFER (256 * 1024 * 1024) /* default policy max_buffer */
#define EPCAPD_MAX_HEAP (256UL * 1024 * 1024) /* RLIMIT_DATA in the sandbox */
#define EPCAPD_MAX_SNAPLEN 262144
#define EPCAPD_DEFAULT_BUFFER (16 * 1024 * 1024) /* live ring, bytes */
#define EPCAPD_DEFAULT_TIMEOUT 1 /* ms: TPACKET_V3 blocks, retired within 1 ms */
#define EPCAPD_MAX_WARNINGS 8
#define EPCAPD_KEEPALIVE_MIN 100      /* -k, ms */
#define EPCAPD_KEEPALIVE_MAX 86400000 /* -k, ms: a day */
#define EPCAPD_POLICY_FILE "epcapd.conf" /* beside the helper binary */
#define EPCAPD_POLICY_MAX 4096           /* bytes of epcapd.conf */
#define EPCAPD_POLICY_VALUES 8           /* names per setting */
/* A non-root caller's cluster_id N is kernel PACKET_FANOUT group
 * EPCAPD_FANOUT_USER_BASE + N (PROTOCOL.md, "Fanout groups"). */
#define EPCAPD_FANOUT_USER_BASE 0x8000

enum { TIMEOUT_IMMEDIATE = -1, TIMEOUT_NEVER = 0 };

/* A set of credentials: ids and supplementary groups. */
typedef struct {
    uid_t uid;
    gid_t gid;
    gid_t *groups;              /* malloc'd, or NULL when ngroups is 0 */
    int ngroups;
} cred_t;

/* The installation's policy (policy.c): epcapd.conf beside the helper. */
typedef struct {
    char text[EPCAPD_POLICY_MAX + 1];  /* the file; values point into it */
    const char *user[EPCAPD_POLICY_VALUES];   /* the first is the default */
    int nuser;
    const char *group[EPCAPD_POLICY_VALUES];  /* none: the user's group */
    int ngroup;
    const char *chroot[EPCAPD_POLICY_VALUES]; /* none: empty/ beside the helper */
    int nchroot;
    const char *inject[EPCAPD_POLICY_VALUES]; /* groups that may send; "*": all */
    int ninject;
    long long max_buffer;       /* -B ceiling for non-root callers */
} policy_t;

typedef struct {
    /* options, as given (options.c) */
    const char *interface;      /* -i: live interface, or NULL */
    const char *file;           /* -r: capture file, or NULL */
    const char *filter;         /* trailing argument, or NULL */
    const char *also;           /* -x: a filter every packet must pass too, or NULL */
    int snaplen;                /* -s, 0 if not given (live: the maximum) */
    int promisc;                /* -p */
    int timeout;                /* -t: ms, TIMEOUT_IMMEDIATE, TIMEOUT_NEVER */
    int buffer;                 /* -B: bytes, 0 = EPCAPD_DEFAULT_BUFFER */
    int direction_set;          /* -Q given */
    pcap_direction_t direction; /* -Q */
    int monitor;                /* -I */
    int precision;              /* -P: PCAP_TSTAMP_PRECISION_{MICRO,NANO} */
    const char *chroot;         /* -d, or NULL for the installation's */
    const char *user;           /* -u, or NULL for the installation's */
    const char *group;          /* -g, or NULL for the installation's */
    int inject;                 /* -j: the send command is allowed */
    int cluster_id;             /* -C: as asked, -1 for none */
    int cpus_set;               /* -a given */
    cpu_set_t cpus;             /* -a: CPU affinity */
    int stats_interval;         /* -S: ms between stats frames, 0 = none */
    int keepalive;              /* -k: ms of silence on stdin that end the helper, 0 = none */
    int paused;                 /* -H: take no packet until the resume command */
    int list;                   /* -D: list the devices instead of capturing */

    /* who asked (invoker.c) and what they may ask (policy.c) */
    cred_t invoker;             /* real ids, or the caller sudo/pkexec/doas names */
    int groups_from_client;     /* the invoker's groups are its client's (sudo) */
    int guarded;                /* privileged helper, non-root invoker: policy applies */
    int client_fd;              /* pidfd of the client process, or -1 */
    policy_t policy;
    char exe_dir[4096];         /* the directory of the helper binary */

    /* privilege (privdrop.c) */
    int privileged;             /* can still change its ids (root, CAP_SETUID...) */
    cred_t target;              /* who the helper becomes */
    char root[4096];            /* chroot directory, "" when not chrooting */
    int root_fd;                /* the chroot directory, open, or -1 */

    /* capture (capture.c, fanout.c) */
    pcap_t *pcap;
    int file_fd;                /* the capture file, opened before libpcap reads it */
    uint32_t pcap_unit;         /* a pcap file: ns per unit of its time stamps' fraction
                                   field (1 or 1000); 0 for pcapng and live */
    char file_buffer[256 * 1024]; /* its stdio buffer: fewer, larger reads */
    int datalink;
    char ifname[256];           /* interface in effect, live mode */
    bpf_u_int32 netmask;        /* for compiling filters */
    bpf_u_int32 net;            /* pcap_lookupnet's network, when net_known */
    int net_known;              /* pcap_lookupnet succeeded (live) */
    int fanout_group;           /* kernel PACKET_FANOUT id joined, -1 for none */
    const char *warnings[EPCAPD_MAX_WARNINGS]; /* static or strdup'd */
    int nwarnings;

    /* statistics: libpcap's 32-bit counters, widened (capture.c) */
    struct pcap_stat last;      /* the raw counters at the last sample */
    uint64_t received;          /* ps_recv, summed across wraps */
    uint64_t dropped;           /* ps_drop */
    uint64_t if_dropped;        /* ps_ifdrop */

    /* output batch (frame.c) */
    msgpack_sbuffer batch;      /* packed packets, without the header */
    msgpack_packer batch_pk;    /* packs into batch */
    uint32_t batch_count;       /* packets in batch */
    uint32_t batch_interface;   /* pcapng interface of the batch's packets */
    long ng_pos;                /* pcapng: file position after the last packet, else -1 */
    int ng_interfaces;          /* pcapng: interface blocks seen in this section */
    long ng_window_at;          /* pcapng: the file offset ng_window holds */
    size_t ng_window_len;       /* bytes in ng_window */
    unsigned char ng_window[65536]; /* pcapng: the file ahead, for block heads */
    uint64_t delivered;         /* packets written to stdout so far */
} epcapd_t;

/* invoker.c: who asked, and what the helper takes from them */
void invoker_identify(epcapd_t *st);
void invoker_sanitize(epcapd_t *st);
void invoker_watch(epcapd_t *st);
int invoker_in_group(const epcapd_t *st, const char *group);

/* policy.c */
void policy_apply(epcapd_t *st);
int policy_parse(policy_t *p, const char *text, size_t len, char *why, size_t size);
int policy_interface_ok(const char *name);

/* options.c */
void options_parse(epcapd_t *st, int argc, char *argv[]);

/* privdrop.c: every change of credentials, checked, failing closed */
#define PRIVDROP_OPEN_CAPS 1    /* keep CAP_NET_RAW, CAP_NET_ADMIN, CAP_SYS_CHROOT */
void privdrop_init(epcapd_t *st);
int privdrop_holds_privilege(void);
void privdrop_become(epcapd_t *st, const cred_t *who, int keep);
void privdrop_chroot(epcapd_t *st);
void privdrop_finish(epcapd_t *st);

/* capture.c */
void capture_open_live(epcapd_t *st);
void capture_open_file(epcapd_t *st);
void capture_read_file(epcapd_t *st);
void capture_list_devices(epcapd_t *st);
const char *capture_set_filter(epcapd_t *st, const char *expr, const char **op);
int capture_direction(const char *s, size_t len, pcap_direction_t *direction);
int capture_stats(epcapd_t *st);
void capture_warn(epcapd_t *st, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
int capture_drain(epcapd_t *st, int max_rounds);

/* fanout.c */
void fanout_join(epcapd_t *st);

/* rlimits.c: shared by the rlimit and seccomp backends */
void rlimits_no_processes(void);
void rlimits_apply(void);

/* sandbox_<backend>.c: one backend linked in, chosen by the Makefile */
extern const char *const sandbox_name;
void sandbox_setup(epcapd_t *st);   /* at start: no program may run */
void sandbox_enter(epcapd_t *st);   /* before ready: the running loop's calls only */

/* wire.c: how a message goes out on stdout */
typedef struct {
    msgpack_sbuffer sb;
    msgpack_packer pk;
} message_t;
void wire_init(int client_fd);
msgpack_packer *wire_open(message_t *m, size_t items, const char *tag);
void wire_send(message_t *m, const msgpack_sbuffer *body);
void wire_pack_str(msgpack_packer *pk, const char *s);
void wire_pack_error(msgpack_packer *pk, const char *op, int errnum, int pcap_code,
                     const char *message);
int wire_try_send(message_t *m, const msgpack_sbuffer *body);
void wire_count_delay(void);
uint64_t wire_delays(void);

/* fatal.c */
void fatal_cleanup(void (*fn)(void *), void *arg);
void die(const char *op, int errnum, int pcap_code, const char *fmt, ...)
    __attribute__((noreturn, format(printf, 4, 5)));

/* frame.c: the messages, helper -> client */
void frame_init(epcapd_t *st);
void frame_ready(epcapd_t *st);
void frame_interfaces(pcap_if_t *devs, int (*allowed)(const char *name));
void frame_packet(epcapd_t *st, const struct pcap_pkthdr *h, const u_char *data,
                  uint32_t interface);
void frame_flush(epcapd_t *st);
int frame_try_flush(epcapd_t *st);
void frame_stats(epcapd_t *st, const char *tag, const char *reply, int live);
void frame_reply(const char *command, long long value);
void frame_refused(const char *command, const char *op, int errnum, int pcap_code,
                   const char *message);

/* loop.c */
void loop_keepalive_start(epcapd_t *st);
void loop_run(epcapd_t *st);

/* testhook.c: only in priv/epcapd-testhook (make), never installed */
#ifdef EPCAPD_TEST_HOOK
void testhook_init(void);
void testhook_at_activate(void);
int testhook_ready_keys(void);
void testhook_pack_ready(msgpack_packer *pk);
void testhook_after_ready(epcapd_t *st);
unsigned testhook_stats_offset(void);
#else
static inline void testhook_init(void) {}
static inline void testhook_at_activate(void) {}
static inline int testhook_ready_keys(void) { return 0; }
static inline void testhook_pack_ready(msgpack_packer *pk) { (void)pk; }
static inline void testhook_after_ready(epcapd_t *st) { (void)st; }
static inline unsigned testhook_stats_offset(void) { return 0; }
#endif

#ifdef EPCAPD_FUZZ
/* The libFuzzer harnesses in fuzz/ (make fuzz), which run the real code
 * over and over in one process: die() ends an input through fuzz_exit(),
 * which the harness defines, instead of exiting. */
void fuzz_exit(void) __attribute__((noreturn));
int loop_fuzz_read_commands(epcapd_t *st, int new_input);
#endif

#endif

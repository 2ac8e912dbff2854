/*
 * sandbox_seccomp.c: the default on Linux.
 *
 * At start (sandbox_setup), before anything is parsed: execve and execveat
 * fail with EPERM, so that nothing the helper does while it opens (libdbus
 * can fork and exec a program named in a D-Bus address) runs a program.
 *
 * Before ready (sandbox_enter): resource limits, then an allowlist of what
 * the running loop needs: reads and poll (pread only on a pcapng file, for
 * its packets' interfaces), writes to stdout (and stderr), the capture
 * socket's calls (reading the ring, its statistics, attaching a filter,
 * and sending only with -j), memory without PROT_EXEC, with -k only
 * setitimer(ITIMER_REAL) (each command frame restarts the clock, loop.c),
 * and exit.
 * open/openat, socket and uname fail with EPERM (libpcap degrades
 * gracefully where it probes /sys or /proc, and a name in a new filter
 * fails to resolve instead of reaching nscd or DNS); sendto fails with
 * EPERM without -j; anything else kills the process (SIGSYS). Calls from
 * another architecture's ABI are killed too (libseccomp's bad-arch action).
 *
 * Debugging a denied call: the kernel logs it (audit type=1326, syscall=N;
 * `ausyscall N` names it); or build with SANDBOX=null and run the helper
 * under `strace -f` to see every call the loop makes.
 */
#include <errno.h>
#include <fcntl.h>
#include <seccomp.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <linux/if_packet.h>
#include <unistd.h>
#include <sys/mman.h>

#include "epcapd.h"

const char *const sandbox_name = "seccomp";

#define ALLOW(call) rule(ctx, SCMP_ACT_ALLOW, SCMP_SYS(call), #call)
#define DENY(call, err) rule(ctx, SCMP_ACT_ERRNO(err), SCMP_SYS(call), #call)

static void require_seccomp(int rc, const char *what)
{
    if (rc < 0)
        die("seccomp", -rc, 0, "%s: %s", what, strerror(-rc));
}

static void rule(scmp_filter_ctx ctx, uint32_t action, int nr, const char *name)
{
    require_seccomp(seccomp_rule_add(ctx, action, nr, 0), name);
}

/* fcntl only to read and set file status flags: libpcap makes its socket
 * non-blocking while it swaps filters. (datum_b, unused by SCMP_CMP_EQ, is
 * spelled out for clang's -Wmissing-field-initializers.) */
static void allow_fcntl(scmp_filter_ctx ctx)
{
    require_seccomp(seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(fcntl), 1,
                           SCMP_A1(SCMP_CMP_EQ, F_GETFL, 0)),
          "fcntl");
    require_seccomp(seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(fcntl), 1,
                           SCMP_A1(SCMP_CMP_EQ, F_SETFL, 0)),
          "fcntl");
}

/* Memory mappings are allowed only without PROT_EXEC: no new code. */
static void allow_no_exec(scmp_filter_ctx ctx, int nr, const char *name)
{
    require_seccomp(seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 1,
                           SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0)),
          name);
}

#ifdef EPCAPD_SANITIZE
/*
 * SANITIZE=1 builds only (sanitize.c): what the AddressSanitizer and UBSan
 * runtimes call inside the sandbox, so that the helper exits normally and
 * a report reaches stderr instead of dying of SIGSYS halfway. The helper
 * itself never makes these calls.
 */
static void allow_sanitizer(scmp_filter_ctx ctx)
{
    /* At exit, ASan takes down the alternate signal stack it set up. */
    ALLOW(sigaltstack);
    /* A report names the binary: gcc's runtime reads /proc/self/exe then,
     * which the chroot has not; it copes with an error. */
    DENY(readlink, EPERM);
    /* Before UBSan prints the memory around a bad pointer, it checks that
     * it is readable by write()ing it into a pipe of its own. */
    ALLOW(pipe2);
}
#endif

void sandbox_setup(epcapd_t *st)
{
    scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);

    (void)st;
    if (ctx == NULL)
        die("seccomp", ENOMEM, 0, "seccomp_init failed");
    DENY(execve, EPERM);
    DENY(execveat, EPERM);
    require_seccomp(seccomp_load(ctx), "seccomp_load");
    seccomp_release(ctx);
}

/* write and writev on stdout and stderr only: a write on the capture
 * socket would send a packet. */
static void allow_output(scmp_filter_ctx ctx)
{
#ifdef EPCAPD_SANITIZE
    ALLOW(write); /* UBSan probes memory by writing it into a pipe of its own */
#else
    require_seccomp(seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(write), 1,
                                     SCMP_A0(SCMP_CMP_LE, STDERR_FILENO, 0)), "write");
#endif
    require_seccomp(seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(writev), 1,
                                     SCMP_A0(SCMP_CMP_LE, STDERR_FILENO, 0)), "writev");
}

/*
 * The capture socket's calls while running, as libpcap makes them (strace
 * shows them): its statistics (and SO_ERROR after POLLERR), attaching and
 * detaching a filter, and, with -j only, sending.
 */
static void allow_capture_socket(scmp_filter_ctx ctx, const epcapd_t *st)
{
    int fd = st->pcap != NULL && st->file == NULL ? pcap_fileno(st->pcap) : -1;
    const struct {
        int nr, level, name;
        const char *what;
    } opts[] = {
        {SCMP_SYS(getsockopt), SOL_PACKET, PACKET_STATISTICS, "getsockopt"},
        {SCMP_SYS(getsockopt), SOL_SOCKET, SO_ERROR, "getsockopt"},
        {SCMP_SYS(setsockopt), SOL_SOCKET, SO_ATTACH_FILTER, "setsockopt"},
        {SCMP_SYS(setsockopt), SOL_SOCKET, SO_DETACH_FILTER, "setsockopt"},
    };
    size_t i;

    ALLOW(recvfrom);
    ALLOW(recvmsg);
    if (fd < 0) {
        DENY(sendto, EPERM);
        return;
    }
    for (i = 0; i < sizeof(opts) / sizeof(opts[0]); i++)
        require_seccomp(seccomp_rule_add(ctx, SCMP_ACT_ALLOW, opts[i].nr, 3,
                                         SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)fd, 0),
                                         SCMP_A1(SCMP_CMP_EQ, (scmp_datum_t)opts[i].level, 0),
                                         SCMP_A2(SCMP_CMP_EQ, (scmp_datum_t)opts[i].name, 0)),
                        opts[i].what);
    if (st->inject)
        require_seccomp(seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(sendto), 1,
                                         SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)fd, 0)),
                        "sendto");
    else
        DENY(sendto, EPERM);
}

/* pread on a pcapng capture file only: the interface of its packets,
 * which libpcap does not say (capture.c). */
static void allow_pcapng_reads(scmp_filter_ctx ctx, const epcapd_t *st)
{
    if (st->file == NULL || st->ng_pos < 0)
        return;
    require_seccomp(seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(pread64), 1,
                                     SCMP_A0(SCMP_CMP_EQ,
                                             (scmp_datum_t)fileno(pcap_file(st->pcap)), 0)),
                    "pread64");
}

/* With -k, the running loop restarts the clock (loop.c): setitimer on
 * ITIMER_REAL, which glibc's setitimer() is; SIGALRM needs no call, its
 * default action ends the helper. */
static void allow_keepalive(scmp_filter_ctx ctx, const epcapd_t *st)
{
    if (st->keepalive == 0)
        return;
    require_seccomp(seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(setitimer), 1,
                                     SCMP_A0(SCMP_CMP_EQ, ITIMER_REAL, 0)),
                    "setitimer");
}

void sandbox_enter(epcapd_t *st)
{
    scmp_filter_ctx ctx;

    rlimits_apply();

    ctx = seccomp_init(SCMP_ACT_KILL_PROCESS);
    if (ctx == NULL)
        die("seccomp", ENOMEM, 0, "seccomp_init failed");

    /* stdin commands and file reads, stdout frames, the poll loop */
    ALLOW(read);
    ALLOW(readv);
    allow_pcapng_reads(ctx, st);
    allow_output(ctx);
    ALLOW(poll);
    ALLOW(ppoll);
    allow_keepalive(ctx, st);
    allow_capture_socket(ctx, st);
    allow_fcntl(ctx);
    /* memory */
    ALLOW(brk);
    ALLOW(munmap);
    ALLOW(mremap);
    ALLOW(madvise);
    allow_no_exec(ctx, SCMP_SYS(mmap), "mmap");
    allow_no_exec(ctx, SCMP_SYS(mprotect), "mprotect");
    /* stdio and libc housekeeping */
    ALLOW(fstat);
    ALLOW(newfstatat);
    ALLOW(lseek);
    ALLOW(close);
    ALLOW(futex);
    ALLOW(getpid);
    ALLOW(getuid);
    ALLOW(geteuid);
    ALLOW(getgid);
    ALLOW(getegid);
    ALLOW(getgroups);
    ALLOW(clock_gettime);
    ALLOW(gettimeofday);
    ALLOW(rt_sigreturn);
    ALLOW(rt_sigprocmask);
    ALLOW(restart_syscall);
    ALLOW(exit);
    ALLOW(exit_group);
#ifdef EPCAPD_SANITIZE
    allow_sanitizer(ctx);
#endif
    /* files and new sockets: refused with an error, so callers can cope */
    DENY(open, EPERM);
    DENY(openat, EPERM);
    DENY(socket, EPERM);
    DENY(uname, EPERM); /* glibc's resolver asks for the host name */

    require_seccomp(seccomp_load(ctx), "seccomp_load");
    seccomp_release(ctx);
}

/*
 * sandbox_seccomp.c: the default on Linux. Resource limits, then a seccomp
 * allowlist of what the running loop needs: stdin/stdout I/O and poll, the
 * packet socket calls (reading the ring, statistics, filter changes,
 * injection), memory without PROT_EXEC, and exit. open/openat and socket
 * fail with EPERM (libpcap degrades gracefully where it probes /sys or
 * /proc, and name lookups in a new filter fail instead of reaching nscd);
 * anything else kills the process (SIGSYS). Calls from another
 * architecture's ABI are killed too (libseccomp's bad-arch action).
 *
 * Debugging a denied call: the kernel logs it (audit type=1326, syscall=N;
 * `ausyscall N` names it); or build with SANDBOX=null and run the helper
 * under `strace -f` to see every call the loop makes.
 */
#include <errno.h>
#include <fcntl.h>
#include <seccomp.h>
#include <string.h>
#include <sys/mman.h>

#include "epcapd.h"

const char *const sandbox_name = "seccomp";

#define ALLOW(call) rule(ctx, SCMP_ACT_ALLOW, SCMP_SYS(call), #call)
#define DENY(call, err) rule(ctx, SCMP_ACT_ERRNO(err), SCMP_SYS(call), #call)

static void check(int rc, const char *what)
{
    if (rc < 0)
        die("seccomp", -rc, 0, "%s: %s", what, strerror(-rc));
}

static void rule(scmp_filter_ctx ctx, uint32_t action, int nr, const char *name)
{
    check(seccomp_rule_add(ctx, action, nr, 0), name);
}

/* fcntl only to read and set file status flags: libpcap makes its socket
 * non-blocking while it swaps filters. (datum_b, unused by SCMP_CMP_EQ, is
 * spelled out for clang's -Wmissing-field-initializers.) */
static void allow_fcntl(scmp_filter_ctx ctx)
{
    check(seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(fcntl), 1,
                           SCMP_A1(SCMP_CMP_EQ, F_GETFL, 0)),
          "fcntl");
    check(seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(fcntl), 1,
                           SCMP_A1(SCMP_CMP_EQ, F_SETFL, 0)),
          "fcntl");
}

/* Memory mappings are allowed only without PROT_EXEC: no new code. */
static void allow_no_exec(scmp_filter_ctx ctx, int nr, const char *name)
{
    check(seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 1,
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

void sandbox_enter(epcapd_t *st)
{
    scmp_filter_ctx ctx;

    (void)st;
    rlimits_apply();

    ctx = seccomp_init(SCMP_ACT_KILL_PROCESS);
    if (ctx == NULL)
        die("seccomp", ENOMEM, 0, "seccomp_init failed");

    /* stdin commands, stdout frames, the poll loop */
    ALLOW(read);
    ALLOW(readv);
    ALLOW(write);
    ALLOW(writev);
    ALLOW(poll);
    ALLOW(ppoll);
    /* the packet socket: ring and fallback reads, stats, filters, inject */
    ALLOW(recvfrom);
    ALLOW(recvmsg);
    ALLOW(sendto);
    ALLOW(sendmsg);
    ALLOW(getsockopt);
    ALLOW(setsockopt);
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
    ALLOW(getgid);
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

    check(seccomp_load(ctx), "seccomp_load");
    seccomp_release(ctx);
}

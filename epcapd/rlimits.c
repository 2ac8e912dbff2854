/*
 * rlimits.c: resource limits after the privilege drop, shared by the
 * rlimit and seccomp sandboxes. No new processes, no file writes, no core
 * dumps, no descriptor beyond those already open (poll() still needs the
 * open ones: RLIMIT_NOFILE is never 0), and a bounded heap: a command frame
 * whose msgpack header claims billions of elements makes the unpacker's
 * allocation fail (a protocol error) instead of taking the machine's memory.
 * libpcap's ring is a shared mapping and does not count.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "epcapd.h"

static void limit(int resource, rlim_t value, const char *name)
{
    struct rlimit rl = {value, value};

    if (setrlimit(resource, &rl) != 0)
        die("setrlimit", errno, 0, "setrlimit(%s): %s", name, strerror(errno));
}

static int is_file(int fd)
{
    struct stat sb;

    return fstat(fd, &sb) == 0 && S_ISREG(sb.st_mode);
}

/*
 * Run by hand with stdout redirected to a file, the helper must write it.
 * A SANITIZE=1 build must also be able to write its report to stderr,
 * which pytest, for one, points at a file.
 */
static int writes_a_file(void)
{
#ifdef EPCAPD_SANITIZE
    if (is_file(STDERR_FILENO))
        return 1;
#endif
    return is_file(STDOUT_FILENO);
}

void rlimits_no_processes(void)
{
    limit(RLIMIT_NPROC, 0, "RLIMIT_NPROC");
}

void rlimits_apply(void)
{
    int fd, highest = 2;

    for (fd = 0; fd < 1024; fd++)
        if (fcntl(fd, F_GETFD) != -1)
            highest = fd;
    limit(RLIMIT_NOFILE, (rlim_t)highest + 1, "RLIMIT_NOFILE");
    rlimits_no_processes();
    if (!writes_a_file())
        limit(RLIMIT_FSIZE, 0, "RLIMIT_FSIZE");
    limit(RLIMIT_CORE, 0, "RLIMIT_CORE");
#ifndef EPCAPD_SANITIZE
    limit(RLIMIT_DATA, EPCAPD_MAX_HEAP, "RLIMIT_DATA");
#else
    /* ASan's shadow memory alone is terabytes of (unused) data mappings:
     * under any RLIMIT_DATA every later mmap would fail. Its allocator
     * refuses what this limit would (sanitize.c, max_allocation_size_mb). */
#endif
}

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

/* Run by hand with stdout redirected to a file, the helper must write it. */
static int stdout_is_file(void)
{
    struct stat sb;

    return fstat(STDOUT_FILENO, &sb) == 0 && S_ISREG(sb.st_mode);
}

void rlimits_apply(void)
{
    int fd, highest = 2;

    for (fd = 0; fd < 1024; fd++)
        if (fcntl(fd, F_GETFD) != -1)
            highest = fd;
    limit(RLIMIT_NOFILE, (rlim_t)highest + 1, "RLIMIT_NOFILE");
    limit(RLIMIT_NPROC, 0, "RLIMIT_NPROC");
    if (!stdout_is_file())
        limit(RLIMIT_FSIZE, 0, "RLIMIT_FSIZE");
    limit(RLIMIT_CORE, 0, "RLIMIT_CORE");
    limit(RLIMIT_DATA, EPCAPD_MAX_HEAP, "RLIMIT_DATA");
}

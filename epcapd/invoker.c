/*
 * invoker.c: who asked, and what the helper takes from them.
 *
 * The invoker is the real user; or, when the real uid is root, the caller
 * that sudo (SUDO_UID/SUDO_GID), pkexec (PKEXEC_UID) or doas (DOAS_USER)
 * names. Those variables are trusted only from a real-root process: no one
 * else can run the helper with a real uid of 0. Other ways to become root
 * must set SUDO_UID and SUDO_GID, or the caller counts as root.
 *
 * From the invoker the helper takes argv, stdin and stdout, nothing else:
 * the environment is cleared (libdbus, for one, reads DBUS_* variables),
 * descriptors above 2 are closed, and, when the policy applies (a privileged
 * helper, an invoker who is not root), stdin and stdout must be anonymous
 * pipes or sockets. Whatever they are, the helper ends when its client
 * ends (invoker_watch).
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <linux/magic.h>
#include <poll.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/socket.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "epcapd.h"

static unsigned long parse_id(const char *name, const char *s)
{
    char *end = NULL;
    unsigned long v;

    errno = 0;
    v = strtoul(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v >= UINT_MAX)
        die("privilege", 0, 0, "%s is not an id", name);
    return v;
}

static gid_t *group_buffer(int *size)
{
    long max = sysconf(_SC_NGROUPS_MAX);
    gid_t *groups;

    *size = max > 0 && max < 65536 ? (int)max : 65536;
    groups = calloc((size_t)*size, sizeof(gid_t));
    if (groups == NULL)
        die("calloc", errno, 0, "out of memory");
    return groups;
}

void invoker_identify(epcapd_t *st)
{
    cred_t *inv = &st->invoker;
    const char *sudo_uid = getenv("SUDO_UID"), *sudo_gid = getenv("SUDO_GID");
    const char *pkexec_uid = getenv("PKEXEC_UID"), *doas_user = getenv("DOAS_USER");
    char doas[256] = "";
    unsigned long uid = getuid(), gid = getgid();
    int named = 0, size; /* named: a real-root process names its caller */
    struct passwd *pw = NULL;

    if (getuid() == 0 && sudo_uid != NULL && sudo_gid != NULL) {
        uid = parse_id("SUDO_UID", sudo_uid);
        gid = parse_id("SUDO_GID", sudo_gid);
        named = 1;
    } else if (getuid() == 0 && pkexec_uid != NULL) {
        uid = parse_id("PKEXEC_UID", pkexec_uid);
        named = 2;
    } else if (getuid() == 0 && doas_user != NULL) {
        if ((size_t)snprintf(doas, sizeof(doas), "%s", doas_user) >= sizeof(doas))
            die("privilege", 0, 0, "DOAS_USER is too long");
        named = 3;
    }
    if (clearenv() != 0)
        die("clearenv", errno, 0, "cannot clear the environment");
    if (named >= 2) {
        pw = named == 3 ? getpwnam(doas) : getpwuid((uid_t)uid);
        if (pw == NULL)
            die("privilege", 0, 0, "the invoking user (%s) is unknown",
                named == 2 ? "PKEXEC_UID" : "DOAS_USER");
        uid = pw->pw_uid;
        gid = pw->pw_gid;
    }
    inv->uid = (uid_t)uid;
    inv->gid = (gid_t)gid;
    inv->groups = group_buffer(&size);
    /* Setuid or capabilities: the caller's groups are in force. A caller
     * that sudo names gets the groups its client process holds (invoker_watch),
     * not those the group database lists. */
    if (getuid() != 0 && (inv->ngroups = getgroups(size, inv->groups)) < 0)
        die("getgroups", errno, 0, "getgroups: %s", strerror(errno));
    st->groups_from_client = named != 0;
    st->guarded = inv->uid != 0 && privdrop_holds_privilege();
    if (named != 0 && inv->uid != 0) {
        /* From here on, a helper that sudo runs is what a setuid one is: its
         * real ids are its caller's. What it writes carries them (a socket's
         * SCM_CREDENTIALS), and its caller may signal it. */
        if (setresgid(inv->gid, (gid_t)-1, (gid_t)-1) != 0 ||
            setresuid(inv->uid, (uid_t)-1, (uid_t)-1) != 0)
            die("setresuid", errno, 0, "taking the caller's real ids: %s", strerror(errno));
    }
}

static const char *kind(mode_t mode)
{
    if (S_ISREG(mode))
        return "regular file";
    if (S_ISCHR(mode))
        return "character device";
    if (S_ISDIR(mode))
        return "directory";
    if (S_ISBLK(mode))
        return "block device";
    return "file";
}

/*
 * A helper must see end-of-file on stdin when its client goes, and its
 * client must see what it writes: an anonymous pipe read-only (stdin) or
 * write-only (stdout), whose other end no descriptor of the helper holds,
 * or a stream socket. A named FIFO, a pipe reopened read-write through
 * /proc, or stdout wired back into stdin would keep the helper alive on its
 * own; a datagram socket could carry its frames to a service (syslog's).
 */
static void check_stdio(int fd, const char *name, int accmode)
{
    struct stat sb, other;
    struct statfs fs;
    int flags = fcntl(fd, F_GETFL);
    int i, type = 0;

    socklen_t len = sizeof(type);

    if (flags < 0 || fstat(fd, &sb) != 0)
        die("policy", EBADF, 0, "%s is not open", name);
    if (S_ISSOCK(sb.st_mode)) {
        if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) != 0 || type != SOCK_STREAM)
            die("policy", EPERM, 0, "%s is a socket but not a stream socket", name);
        return;
    }
    if (!S_ISFIFO(sb.st_mode))
        die("policy", EPERM, 0, "%s is a %s: it must be an anonymous pipe or a socket",
            name, kind(sb.st_mode));
    if (fstatfs(fd, &fs) != 0 || fs.f_type != PIPEFS_MAGIC)
        die("policy", EPERM, 0, "%s is a named FIFO: it must be an anonymous pipe or a socket",
            name);
    if ((flags & O_ACCMODE) != accmode)
        die("policy", EPERM, 0, "%s is a pipe open for reading and writing", name);
    for (i = STDIN_FILENO; i <= STDERR_FILENO; i++)
        if (i != fd && fstat(i, &other) == 0 && other.st_dev == sb.st_dev &&
            other.st_ino == sb.st_ino)
            die("policy", EPERM, 0, "%s and descriptor %d are the same pipe", name, i);
}

void invoker_sanitize(epcapd_t *st)
{
    int fd;

    if (syscall(SYS_close_range, 3U, ~0U, 0U) != 0)
        for (fd = 3; fd < 65536; fd++)
            (void)close(fd);
    /* A closed 0, 1 or 2 would be taken by the next open(). */
    for (fd = STDIN_FILENO; fd <= STDERR_FILENO; fd++)
        if (fcntl(fd, F_GETFD) < 0 && open("/dev/null", O_RDWR | O_NOCTTY) != fd)
            _exit(1);
    if (!st->guarded)
        return;
    check_stdio(STDIN_FILENO, "stdin", O_RDONLY);
    check_stdio(STDOUT_FILENO, "stdout", O_WRONLY);
}

/* What /proc/PID/status says of a process (the kernel's words). */
typedef struct {
    uid_t ruid, euid;
    pid_t ppid;
    const char *groups; /* the "Groups:" line's list, in a static buffer */
} status_t;

static int read_status(pid_t pid, status_t *out)
{
    static char buf[65536];
    char path[64], *p, *end;
    unsigned r, e;
    int fd, parent;
    ssize_t n;

    (void)snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    n = read(fd, buf, sizeof(buf) - 1);
    (void)close(fd);
    if (n <= 0 || n == (ssize_t)sizeof(buf) - 1)
        return -1; /* nothing, or perhaps not all of it */
    buf[n] = '\0';
    if ((p = strstr(buf, "\nPPid:")) == NULL || sscanf(p, "\nPPid: %d", &parent) != 1 ||
        (p = strstr(buf, "\nUid:")) == NULL || sscanf(p, "\nUid: %u %u", &r, &e) != 2 ||
        (p = strstr(buf, "\nGroups:")) == NULL || (end = strchr(p + 1, '\n')) == NULL)
        return -1;
    *end = '\0';
    out->ruid = r;
    out->euid = e;
    out->ppid = parent;
    out->groups = p + strlen("\nGroups:");
    return 0;
}

/* The client's groups, for an invoker that sudo, pkexec or doas names. */
static void take_groups(epcapd_t *st, const char *list)
{
    cred_t *inv = &st->invoker;
    int size = 0;
    char *end;
    unsigned long g;

    free(inv->groups);
    inv->groups = group_buffer(&size);
    inv->ngroups = 0;
    for (;;) {
        while (*list == ' ' || *list == '\t')
            list++;
        if (*list == '\0')
            return;
        errno = 0;
        g = strtoul(list, &end, 10);
        if (errno != 0 || end == list || g >= UINT_MAX || inv->ngroups == size)
            die("privilege", 0, 0, "cannot read the client's groups");
        inv->groups[inv->ngroups++] = (gid_t)g;
        list = end;
    }
}

static int exited(int pidfd)
{
    struct pollfd p = {pidfd, POLLIN, 0};

    return poll(&p, 1, 0) != 0;
}

/*
 * The client is the nearest ancestor that is an ordinary process of the
 * invoker (real and effective uid both the invoker's): the parent; under
 * sudo, which runs with an effective uid of root, sudo's parent. The helper
 * holds a pidfd on it, which becomes readable when it exits: then the helper
 * stops, even if stdin never ends. Each pid is checked while its pidfd shows
 * it alive, so a reused pid cannot stand in. A caller that sudo names has
 * the client's groups. A guarded helper whose client cannot be found
 * refuses to run.
 */
void invoker_watch(epcapd_t *st)
{
    pid_t pid = getppid();
    status_t status;
    int depth, fd;

    st->client_fd = -1;
    for (depth = 0; depth < 4 && pid > 0; depth++) {
        fd = (int)syscall(SYS_pidfd_open, pid, 0U);
        if (fd < 0)
            break;
        if (read_status(pid, &status) != 0 || exited(fd)) {
            (void)close(fd);
            break;
        }
        if (status.ruid == st->invoker.uid && status.euid == st->invoker.uid) {
            st->client_fd = fd;
            wire_init(fd);
            if (st->groups_from_client)
                take_groups(st, status.groups);
            return;
        }
        (void)close(fd);
        pid = status.ppid;
    }
    if (st->guarded)
        die("policy", ESRCH, 0,
            "cannot find the process of uid %u that started the helper",
            (unsigned)st->invoker.uid);
}

int invoker_in_group(const epcapd_t *st, const char *group)
{
    struct group *gr;
    int i;

    if (strcmp(group, "*") == 0)
        return 1;
    errno = 0;
    gr = getgrnam(group);
    if (gr == NULL)
        return 0;
    if (gr->gr_gid == st->invoker.gid)
        return 1;
    for (i = 0; i < st->invoker.ngroups; i++)
        if (st->invoker.groups[i] == gr->gr_gid)
            return 1;
    return 0;
}

/*
 * privdrop.c: resolve the target user, group and chroot before anything is
 * opened; open capture files with the invoking user's rights; chroot and drop
 * for good once the capture is open. Every call is checked and fails closed.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <linux/capability.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "epcapd.h"

static unsigned long parse_id(const char *name, const char *s)
{
    char *end = NULL;
    unsigned long v;

    errno = 0;
    v = strtoul(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v > UINT_MAX)
        die("privilege", 0, 0, "%s: not an id: '%s'", name, s);
    return v;
}

/*
 * The user who asked: the real uid; or, when the real uid is root, the
 * caller that sudo (SUDO_UID/SUDO_GID), pkexec (PKEXEC_UID) or doas
 * (DOAS_USER) names. These variables are trusted only from a real-root
 * process: no one else can run the helper with a real uid of 0. Other ways
 * to become root must set SUDO_UID and SUDO_GID, or the caller counts as root.
 */
uid_t privdrop_invoker(gid_t *gid)
{
    const char *sudo_uid = getenv("SUDO_UID");
    const char *sudo_gid = getenv("SUDO_GID");
    const char *pkexec_uid = getenv("PKEXEC_UID");
    const char *doas_user = getenv("DOAS_USER");
    struct passwd *pw = NULL;

    *gid = getgid();
    if (getuid() != 0)
        return getuid();
    if (sudo_uid != NULL && sudo_gid != NULL) {
        *gid = (gid_t)parse_id("SUDO_GID", sudo_gid);
        return (uid_t)parse_id("SUDO_UID", sudo_uid);
    }
    if (pkexec_uid != NULL)
        pw = getpwuid((uid_t)parse_id("PKEXEC_UID", pkexec_uid));
    else if (doas_user != NULL)
        pw = getpwnam(doas_user);
    else
        return 0;
    if (pw == NULL)
        die("privilege", 0, 0, "the invoking user (%s) is unknown",
            pkexec_uid != NULL ? "PKEXEC_UID" : "DOAS_USER");
    *gid = pw->pw_gid;
    return pw->pw_uid;
}

/* The default chroot: the root-owned, empty directory beside the binary. */
static void default_root(char *buf, size_t size)
{
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    char *slash;

    if (n < 0)
        die("readlink", errno, 0, "/proc/self/exe: %s", strerror(errno));
    exe[n] = '\0';
    slash = strrchr(exe, '/');
    if (slash != NULL)
        *slash = '\0';
    if ((size_t)snprintf(buf, size, "%s/empty", exe) >= size)
        die("privilege", ENAMETOOLONG, 0, "chroot path too long");
}

static void resolve_root(epcapd_t *st)
{
    char path[sizeof(st->root)];
    struct stat sb;

    if (st->chroot != NULL)
        (void)snprintf(path, sizeof(path), "%s", st->chroot);
    else
        default_root(path, sizeof(path));
    if (realpath(path, st->root) == NULL)
        die("chroot", errno, 0, "chroot directory %s: %s", path, strerror(errno));
    /* Check and later enter the directory through one descriptor: a path
     * swapped in between cannot substitute another directory. */
    st->root_fd = open(st->root, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (st->root_fd < 0)
        die("chroot", errno, 0, "chroot directory %s: %s", st->root, strerror(errno));
    if (fstat(st->root_fd, &sb) != 0)
        die("chroot", errno, 0, "chroot directory %s: %s", st->root, strerror(errno));
    if (sb.st_uid != 0 || (sb.st_mode & (S_IWGRP | S_IWOTH)) != 0)
        die("chroot", 0, 0,
            "chroot directory %s must be owned by root and writable by no one else",
            st->root);
}

static void capget_self(struct __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3])
{
    struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};

    if (syscall(SYS_capget, &hdr, data) != 0)
        die("capget", errno, 0, "capget: %s", strerror(errno));
}

static int has_cap(const struct __user_cap_data_struct *data, int cap)
{
    return (data[CAP_TO_INDEX(cap)].effective & CAP_TO_MASK(cap)) != 0;
}

/*
 * Root, or a helper whose file capabilities let it chroot and change its
 * ids (make install PRIVMODE=caps): either must drop. Anything less runs
 * with its caller's rights and only sheds what capabilities it has.
 */
static int can_drop(void)
{
    struct __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3];

    if (geteuid() == 0)
        return 1;
    capget_self(data);
    return has_cap(data, CAP_SYS_CHROOT) && has_cap(data, CAP_SETUID) &&
           has_cap(data, CAP_SETGID);
}

static int caps_empty(void)
{
    struct __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3];
    int i;

    capget_self(data);
    for (i = 0; i < _LINUX_CAPABILITY_U32S_3; i++)
        if (data[i].effective != 0 || data[i].permitted != 0 ||
            data[i].inheritable != 0)
            return 0;
    return 1;
}

/*
 * Clear every capability. Leaving uid 0 does that by itself, but a
 * capability-holding helper never had uid 0, and root asked to stay root
 * keeps none either.
 */
static void drop_caps(void)
{
    struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3];

    memset(data, 0, sizeof(data));
    if (syscall(SYS_capset, &hdr, data) != 0)
        die("capset", errno, 0, "capset: %s", strerror(errno));
}

void privdrop_prepare(epcapd_t *st)
{
    const char *name = st->user != NULL ? st->user : "nobody";
    struct passwd *pw;
    struct group *gr;
    gid_t igid;

    st->privileged = can_drop();
    if (!st->privileged) {
        if (st->chroot != NULL || st->user != NULL || st->group != NULL)
            die("privilege", EPERM, 0,
                "chroot, user and group need a privileged helper (uid %u, no "
                "CAP_SYS_CHROOT/CAP_SETUID/CAP_SETGID)",
                (unsigned)geteuid());
        return;
    }

    errno = 0;
    pw = getpwnam(name);
    if (pw == NULL)
        die("getpwnam", errno, 0, "unknown user '%s'", name);
    st->uid = pw->pw_uid;
    st->gid = pw->pw_gid;
    if (st->group != NULL) {
        errno = 0;
        gr = getgrnam(st->group);
        if (gr == NULL)
            die("getgrnam", errno, 0, "unknown group '%s'", st->group);
        st->gid = gr->gr_gid;
    }
    if ((st->uid == 0 || st->gid == 0) && privdrop_invoker(&igid) != 0)
        die("privilege", EPERM, 0,
            "refusing to run as uid %u gid %u: the invoking user is not root",
            (unsigned)st->uid, (unsigned)st->gid);
    if (st->buffer > EPCAPD_MAX_USER_BUFFER && privdrop_invoker(&igid) != 0)
        die("privilege", EPERM, 0,
            "a buffer above %d bytes pins kernel memory: only root may ask for it",
            EPCAPD_MAX_USER_BUFFER);
    resolve_root(st);
}

static void check(int rc, const char *op)
{
    if (rc != 0)
        die(op, errno, 0, "%s: %s", op, strerror(errno));
}

/* Open path read-only with the rights of the user who invoked the helper. */
int privdrop_open_as_invoker(const char *path)
{
    long max = sysconf(_SC_NGROUPS_MAX) + 1;
    gid_t *saved, *groups;
    int nsaved, ngroups;
    gid_t gid;
    uid_t uid = privdrop_invoker(&gid);
    struct passwd *pw;
    int fd, err;

    if (geteuid() != 0 || uid == 0)
        return open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);

    saved = calloc((size_t)max, sizeof(gid_t));
    groups = calloc((size_t)max, sizeof(gid_t));
    if (saved == NULL || groups == NULL)
        die("calloc", errno, 0, "out of memory");
    ngroups = (int)max;
    nsaved = getgroups((int)max, saved);
    if (nsaved < 0)
        die("getgroups", errno, 0, "getgroups: %s", strerror(errno));
    if (getuid() != 0) {
        ngroups = nsaved; /* setuid: the caller's own groups are in force */
        memcpy(groups, saved, sizeof(gid_t) * (size_t)nsaved);
    } else {
        pw = getpwuid(uid);
        if (pw == NULL || getgrouplist(pw->pw_name, gid, groups, &ngroups) < 0)
            ngroups = 0;
    }

    check(setgroups((size_t)ngroups, groups), "setgroups");
    check(setegid(gid), "setegid");
    check(seteuid(uid), "seteuid");
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    err = errno;
    check(seteuid(0), "seteuid");
    check(setegid(getgid()), "setegid");
    check(setgroups((size_t)nsaved, saved), "setgroups");
    free(saved);
    free(groups);
    errno = err;
    return fd;
}

static void verify(const epcapd_t *st)
{
    uid_t ru, eu, su;
    gid_t rg, eg, sg;

    check(getresuid(&ru, &eu, &su), "getresuid");
    check(getresgid(&rg, &eg, &sg), "getresgid");
    if (ru != st->uid || eu != st->uid || su != st->uid ||
        rg != st->gid || eg != st->gid || sg != st->gid)
        die("privilege", 0, 0, "uid/gid not in effect after the drop");
    if (getgroups(0, NULL) != 0)
        die("privilege", 0, 0, "supplementary groups left after the drop");
    if (!caps_empty())
        die("privilege", 0, 0, "capabilities left after the drop");
    if (st->uid != 0 && (setuid(0) == 0 || seteuid(0) == 0))
        die("privilege", 0, 0, "root could be regained after the drop");
}

void privdrop(epcapd_t *st)
{
    if (st->privileged) {
        check(fchdir(st->root_fd), "fchdir");
        check(chroot("."), "chroot");
        check(chdir("/"), "chdir");
        check(close(st->root_fd), "close");
        check(setgroups(0, NULL), "setgroups");
        check(setresgid(st->gid, st->gid, st->gid), "setresgid");
        check(setresuid(st->uid, st->uid, st->uid), "setresuid");
    }
    drop_caps();
    if (st->privileged)
        verify(st);
    else if (!caps_empty())
        die("privilege", 0, 0, "capabilities left after capset");
    check(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl");
}

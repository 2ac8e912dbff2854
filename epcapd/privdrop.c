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

#define MAX_GROUPS 256

/* The user who asked: the real uid, or sudo's caller when run by sudo. */
static uid_t invoker_uid(gid_t *gid)
{
    const char *su = getenv("SUDO_UID");
    const char *sg = getenv("SUDO_GID");
    char *end = NULL;
    unsigned long u, g;

    *gid = getgid();
    if (getuid() != 0 || su == NULL || sg == NULL)
        return getuid();
    errno = 0;
    u = strtoul(su, &end, 10);
    if (errno != 0 || *end != '\0' || u > UINT_MAX)
        die("privilege", 0, 0, "SUDO_UID: not a uid: '%s'", su);
    g = strtoul(sg, &end, 10);
    if (errno != 0 || *end != '\0' || g > UINT_MAX)
        die("privilege", 0, 0, "SUDO_GID: not a gid: '%s'", sg);
    *gid = (gid_t)g;
    return (uid_t)u;
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
    if (stat(st->root, &sb) != 0)
        die("chroot", errno, 0, "chroot directory %s: %s", st->root, strerror(errno));
    if (!S_ISDIR(sb.st_mode))
        die("chroot", ENOTDIR, 0, "chroot directory %s: %s", st->root,
            strerror(ENOTDIR));
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
    if ((st->uid == 0 || st->gid == 0) && invoker_uid(&igid) != 0)
        die("privilege", EPERM, 0,
            "refusing to run as uid %u gid %u: the invoking user is not root",
            (unsigned)st->uid, (unsigned)st->gid);
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
    gid_t saved[MAX_GROUPS], groups[MAX_GROUPS];
    int nsaved, ngroups = MAX_GROUPS;
    gid_t gid;
    uid_t uid = invoker_uid(&gid);
    struct passwd *pw;
    int fd, err;

    if (geteuid() != 0 || uid == 0)
        return open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);

    nsaved = getgroups(MAX_GROUPS, saved);
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
        check(chroot(st->root), "chroot");
        check(chdir("/"), "chdir");
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

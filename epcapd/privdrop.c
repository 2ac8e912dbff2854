/*
 * privdrop.c: every change of the helper's credentials. Each call is
 * checked and each state verified after it is reached; any failure ends the
 * helper (fail closed).
 *
 *   privdrop_init     no_new_privs from the start: nothing the helper runs
 *                     could gain privilege by exec
 *   privdrop_become   the target user and group (or, for a file, the
 *                     invoker), no other groups, keeping at most
 *                     CAP_NET_RAW, CAP_NET_ADMIN and CAP_SYS_CHROOT
 *   privdrop_chroot   into the installation's empty directory
 *   privdrop_finish   every capability gone, root out of reach
 *
 * The real uid and gid stay the invoker's (when the invoker is not root):
 * the invoker may signal, and so stop, its own helpers whatever they run
 * as, and RLIMIT_NPROC counts them as its own; tracing them it may not (the
 * effective and saved ids differ, and a helper that changed its ids is not
 * dumpable). While the capture opens, the filesystem uid is the invoker's
 * too, so that the capture socket belongs to the invoker (fanout.c).
 */
#include <errno.h>
#include <linux/capability.h>
#include <stdlib.h>
#include <string.h>
#include <sys/fsuid.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <grp.h>

#include "epcapd.h"

#define CAP_BIT(cap) (1ULL << (cap))
#define OPEN_CAPS (CAP_BIT(CAP_NET_RAW) | CAP_BIT(CAP_NET_ADMIN) | CAP_BIT(CAP_SYS_CHROOT))

typedef struct {
    uint64_t effective, permitted, inheritable;
} caps_t;

static caps_t caps_get(void)
{
    struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3];
    caps_t c;

    if (syscall(SYS_capget, &hdr, data) != 0)
        die("capget", errno, 0, "capget: %s", strerror(errno));
    c.effective = data[0].effective | (uint64_t)data[1].effective << 32;
    c.permitted = data[0].permitted | (uint64_t)data[1].permitted << 32;
    c.inheritable = data[0].inheritable | (uint64_t)data[1].inheritable << 32;
    return c;
}

/* Effective and permitted both mask, inheritable and ambient empty. */
static void caps_set(uint64_t mask)
{
    struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3];

    memset(data, 0, sizeof(data));
    data[0].effective = data[0].permitted = (uint32_t)mask;
    data[1].effective = data[1].permitted = (uint32_t)(mask >> 32);
    if (syscall(SYS_capset, &hdr, data) != 0)
        die("capset", errno, 0, "capset: %s", strerror(errno));
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0 && errno != EINVAL)
        die("prctl", errno, 0, "clearing ambient capabilities: %s", strerror(errno));
}

static void require_syscall(int rc, const char *op)
{
    if (rc != 0)
        die(op, errno, 0, "%s: %s", op, strerror(errno));
}

/* Root, or any capability at all: an invoker who is not root is guarded. */
int privdrop_holds_privilege(void)
{
    return geteuid() == 0 || caps_get().permitted != 0;
}

void privdrop_init(epcapd_t *st)
{
    caps_t c = caps_get();
    uint64_t ids = CAP_BIT(CAP_SETUID) | CAP_BIT(CAP_SETGID);

    /* Root, or a helper whose file capabilities let it change its ids
     * (make install PRIVMODE=caps). Anything less runs with its caller's
     * rights and only sheds what capabilities it has. */
    st->privileged = geteuid() == 0 || (c.effective & ids) == ids;
    require_syscall(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl");
}

static int by_gid(const void *a, const void *b)
{
    gid_t x = *(const gid_t *)a, y = *(const gid_t *)b;

    return (x > y) - (x < y);
}

/* The supplementary groups in force are exactly who's. */
static int same_groups(const cred_t *who)
{
    int n = getgroups(0, NULL), i;
    gid_t *now, *want;
    int same;

    if (n != who->ngroups)
        return 0;
    if (n == 0)
        return 1;
    now = calloc((size_t)n, sizeof(gid_t));
    want = calloc((size_t)n, sizeof(gid_t));
    if (now == NULL || want == NULL)
        die("calloc", errno, 0, "out of memory");
    same = getgroups(n, now) == n;
    memcpy(want, who->groups, sizeof(gid_t) * (size_t)n);
    qsort(now, (size_t)n, sizeof(gid_t), by_gid);
    qsort(want, (size_t)n, sizeof(gid_t), by_gid);
    for (i = 0; same && i < n; i++)
        same = now[i] == want[i];
    free(now);
    free(want);
    return same;
}

/* setfsuid() says nothing of failure: ask it again what is in effect. */
static void set_fsuid(uid_t uid)
{
    (void)setfsuid(uid);
    if ((uid_t)setfsuid((uid_t)-1) != uid)
        die("privilege", 0, 0, "filesystem uid %u not in effect", (unsigned)uid);
}

static void verify(const cred_t *real, const cred_t *who, uint64_t mask)
{
    uid_t ru, eu, su;
    gid_t rg, eg, sg;
    caps_t c = caps_get();

    require_syscall(getresuid(&ru, &eu, &su), "getresuid");
    require_syscall(getresgid(&rg, &eg, &sg), "getresgid");
    if (ru != real->uid || eu != who->uid || su != who->uid || rg != real->gid ||
        eg != who->gid || sg != who->gid)
        die("privilege", 0, 0, "uid/gid not in effect after the change");
    if (!same_groups(who))
        die("privilege", 0, 0, "supplementary groups not in effect after the change");
    if ((c.effective | c.permitted) & ~mask || c.inheritable != 0)
        die("privilege", 0, 0, "capabilities left beyond those kept");
}

/*
 * Become who: its uid, gid and supplementary groups (none for a target),
 * keeping CAP_NET_RAW, CAP_NET_ADMIN and CAP_SYS_CHROOT when keep is
 * PRIVDROP_OPEN_CAPS, none when 0. The real ids are the invoker's, unless
 * the invoker is root: then they are who's too.
 * Afterwards the helper can change its ids no more. A helper that could not
 * change them (no privilege, or only some capabilities) keeps its ids and
 * sheds the capabilities it may not keep.
 */
void privdrop_become(epcapd_t *st, const cred_t *who, int keep)
{
    uint64_t mask = keep == PRIVDROP_OPEN_CAPS ? OPEN_CAPS : 0;
    const cred_t *real = st->invoker.uid != 0 ? &st->invoker : who;

    if (!st->privileged) {
        caps_set(caps_get().permitted & mask);
        if ((caps_get().permitted & ~mask) != 0)
            die("privilege", 0, 0, "capabilities left beyond those kept");
        return;
    }
    /* Leaving uid 0 clears the permitted set unless asked to keep it. */
    require_syscall(prctl(PR_SET_KEEPCAPS, mask != 0, 0, 0, 0), "prctl");
    require_syscall(setgroups((size_t)who->ngroups, who->groups), "setgroups");
    require_syscall(setresgid(real->gid, who->gid, who->gid), "setresgid");
    require_syscall(setresuid(real->uid, who->uid, who->uid), "setresuid");
    caps_set(mask);
    require_syscall(prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0), "prctl");
    verify(real, who, mask);
    set_fsuid(real->uid); /* allowed without privilege: it is the real uid */
    st->privileged = 0;
}

void privdrop_chroot(epcapd_t *st)
{
    if (st->root_fd < 0)
        return;
    require_syscall(fchdir(st->root_fd), "fchdir");
    require_syscall(chroot("."), "chroot");
    require_syscall(chdir("/"), "chdir");
    require_syscall(close(st->root_fd), "close");
    st->root_fd = -1;
}

void privdrop_finish(epcapd_t *st)
{
    caps_t c;

    (void)st;
    set_fsuid(geteuid());
    caps_set(0);
    c = caps_get();
    if (c.effective != 0 || c.permitted != 0 || c.inheritable != 0)
        die("privilege", 0, 0, "capabilities left after the drop");
    if (geteuid() != 0 && (setuid(0) == 0 || seteuid(0) == 0))
        die("privilege", 0, 0, "root could be regained after the drop");
    if (prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) != 1)
        die("privilege", 0, 0, "no_new_privs is not set");
}

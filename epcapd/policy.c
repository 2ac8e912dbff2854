/*
 * policy.c: what the installation lets an invoker who is not root ask for,
 * and who the helper becomes.
 *
 * The installation's policy is epcapd.conf beside the helper binary (make
 * install writes it): a regular file owned by root and writable by no one
 * else, or the helper refuses to run; without one, the defaults below.
 * Lines of a setting and its values, '#' starts a comment:
 *
 *   user NAME...       drop target; the first is the default, the others
 *                      may be asked for with -u             (nobody)
 *   group NAME...      the same for -g        (the user's primary group)
 *   chroot DIR...      the same for -d        (empty/ beside the helper)
 *   inject GROUP...    members of these groups may use -j; * is everyone
 *                                                           (no one)
 *   max_buffer BYTES   the largest -B                       (256 MiB)
 *
 * The policy applies when the helper holds privilege and its invoker is not
 * root ("guarded"). Then the interface is "any" or a network interface the
 * kernel knows, never one of libpcap's pseudo-devices (D-Bus, netfilter
 * queues and logs, USB, Bluetooth, ...); -u, -g and -d may name only what
 * the policy lists, and -u and -g nothing with -r (a file is read with the
 * invoker's own rights); -j and -B as the policy says; cluster_id at most
 * 32767 (fanout.c). -k is everyone's: it can only shorten the helper's
 * life, which its invoker may end anyway (the real ids are the invoker's).
 * Root may ask for anything. Every refusal is an error frame with op
 * "policy", before libpcap runs.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <net/if.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "epcapd.h"

/* Device names that libpcap opens as something other than a network
 * interface (pcap.c's capture source types), whatever the kernel has. */
static const char *const pseudo_devices[] = {
    "dbus", "nflog", "nfqueue", "usbmon", "bluetooth", "netmap", "vale",
    "dpdk", "dag", "septel", "snf", "rpcap",
};

static int pseudo_device(const char *name)
{
    size_t i;

    for (i = 0; i < sizeof(pseudo_devices) / sizeof(pseudo_devices[0]); i++)
        if (strncmp(name, pseudo_devices[i], strlen(pseudo_devices[i])) == 0)
            return 1;
    return 0;
}

/* "any", or a network interface the kernel knows and libpcap opens as one. */
int policy_interface_ok(const char *name)
{
    if (strcmp(name, "any") == 0)
        return 1;
    return strlen(name) < IF_NAMESIZE && !pseudo_device(name) && if_nametoindex(name) != 0;
}

static void check_interface(const char *name)
{
    if (policy_interface_ok(name))
        return;
    if (pseudo_device(name))
        die("policy", EPERM, 0,
            "'%s' is one of libpcap's pseudo-devices (D-Bus, netfilter, USB, Bluetooth, "
            "...): only root may open them; capture a network interface or 'any'",
            name);
    die("interface", ENODEV, PCAP_ERROR_NO_SUCH_DEVICE, "'%s' is not a network interface",
        name);
}

static int setting(policy_t *p, const char *key, const char ***values, int **count)
{
    if (strcmp(key, "user") == 0)
        *values = p->user, *count = &p->nuser;
    else if (strcmp(key, "group") == 0)
        *values = p->group, *count = &p->ngroup;
    else if (strcmp(key, "chroot") == 0)
        *values = p->chroot, *count = &p->nchroot;
    else if (strcmp(key, "inject") == 0)
        *values = p->inject, *count = &p->ninject;
    else
        return -1;
    return 0;
}

/*
 * Parse the text of epcapd.conf into p: 0, or -1 with the reason in why.
 * The values point into p->text. Every setting at most once.
 */
int policy_parse(policy_t *p, const char *text, size_t len, char *why, size_t size)
{
    char *line, *next, *word, *end;
    const char **values;
    int *count, n = 0, seen_buffer = 0;
    long long v;

    memset(p, 0, sizeof(*p));
    p->max_buffer = EPCAPD_MAX_USER_BUFFER;
    if (len > EPCAPD_POLICY_MAX || memchr(text, '\0', len) != NULL) {
        (void)snprintf(why, size, "not a text of at most %d bytes", EPCAPD_POLICY_MAX);
        return -1;
    }
    memcpy(p->text, text, len);
    p->text[len] = '\0';
    for (line = p->text; line != NULL; line = next) {
        n++;
        next = strchr(line, '\n');
        if (next != NULL)
            *next++ = '\0';
        if ((end = strchr(line, '#')) != NULL)
            *end = '\0';
        if ((word = strtok_r(line, " \t\r", &end)) == NULL)
            continue;
        if (strcmp(word, "max_buffer") == 0) {
            char *num = strtok_r(NULL, " \t\r", &end), *rest = NULL;
            errno = 0;
            v = num != NULL ? strtoll(num, &rest, 10) : 0;
            if (num == NULL || errno != 0 || *rest != '\0' || v < 1 || v > INT_MAX ||
                strtok_r(NULL, " \t\r", &end) != NULL || seen_buffer++) {
                (void)snprintf(why, size, "line %d: max_buffer takes one number of bytes, "
                               "1 to %d, once", n, INT_MAX);
                return -1;
            }
            p->max_buffer = v;
            continue;
        }
        if (setting(p, word, &values, &count) != 0) {
            (void)snprintf(why, size, "line %d: unknown setting '%.32s'", n, word);
            return -1;
        }
        if (*count != 0) {
            (void)snprintf(why, size, "line %d: %s given twice", n, word);
            return -1;
        }
        while ((values[*count] = strtok_r(NULL, " \t\r", &end)) != NULL)
            if (++*count == EPCAPD_POLICY_VALUES) {
                (void)snprintf(why, size, "line %d: more than %d values", n,
                               EPCAPD_POLICY_VALUES - 1);
                return -1;
            }
        if (*count == 0) {
            (void)snprintf(why, size, "line %d: %s needs a value", n, word);
            return -1;
        }
    }
    return 0;
}

static void exe_dir(epcapd_t *st)
{
    ssize_t n = readlink("/proc/self/exe", st->exe_dir, sizeof(st->exe_dir) - 1);
    char *slash;

    if (n < 0)
        die("readlink", errno, 0, "/proc/self/exe: %s", strerror(errno));
    st->exe_dir[n] = '\0';
    slash = strrchr(st->exe_dir, '/');
    if (slash != NULL)
        *slash = '\0';
}

/* epcapd.conf beside the helper, if there is one, trusted only from root. */
static void load(epcapd_t *st)
{
    char path[sizeof(st->exe_dir) + 32], text[EPCAPD_POLICY_MAX + 1], why[128];
    struct stat sb;
    ssize_t n;
    int fd;

    (void)snprintf(path, sizeof(path), "%s/%s", st->exe_dir, EPCAPD_POLICY_FILE);
    fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    if (fd < 0 && errno == ENOENT) {
        (void)policy_parse(&st->policy, "", 0, why, sizeof(why));
        return;
    }
    if (fd < 0)
        die("policy", errno, 0, "%s: %s", path, strerror(errno));
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode) || sb.st_uid != 0 ||
        (sb.st_mode & (S_IWGRP | S_IWOTH)) != 0)
        die("policy", EPERM, 0,
            "%s must be a regular file owned by root and writable by no one else", path);
    n = read(fd, text, sizeof(text));
    if (n < 0)
        die("policy", errno, 0, "%s: %s", path, strerror(errno));
    (void)close(fd);
    if (policy_parse(&st->policy, text, (size_t)n, why, sizeof(why)) != 0)
        die("policy", EINVAL, 0, "%s: %s", path, why);
}

static int listed(const char *const *values, int count, const char *name)
{
    int i;

    for (i = 0; i < count; i++)
        if (strcmp(values[i], name) == 0)
            return 1;
    return 0;
}

/* -u, -g or -d from a guarded invoker: only what the policy lists. */
static void check_named(const char *flag, const char *asked, const char *const *values,
                        int count, const char *fallback)
{
    if (asked == NULL || listed(values, count, asked) ||
        (count == 0 && fallback != NULL && strcmp(asked, fallback) == 0))
        return;
    die("policy", EPERM, 0, "%s '%s': this installation decides it (%s); only root may "
        "choose another", flag, asked, count > 0 ? values[0] : fallback ? fallback : "default");
}

static void check_request(epcapd_t *st)
{
    const policy_t *p = &st->policy;
    char chroot_default[sizeof(st->exe_dir) + 8];
    int i, allowed = 0;

    (void)snprintf(chroot_default, sizeof(chroot_default), "%s/empty", st->exe_dir);
    if (st->interface != NULL)
        check_interface(st->interface);
    if (st->file != NULL && (st->user != NULL || st->group != NULL))
        die("policy", EPERM, 0,
            "-u and -g are for live captures: a file is read with your own rights");
    check_named("-u", st->user, p->user, p->nuser, "nobody");
    check_named("-g", st->group, p->group, p->ngroup, NULL);
    check_named("-d", st->chroot, p->chroot, p->nchroot, chroot_default);
    for (i = 0; st->inject && i < p->ninject && !allowed; i++)
        allowed = invoker_in_group(st, p->inject[i]);
    if (st->inject && !allowed)
        die("policy", EPERM, 0, "-j: this installation lets %s send packets",
            p->ninject > 0 ? "only the members of its inject groups" : "no one but root");
    if (st->buffer > p->max_buffer)
        die("policy", EPERM, 0, "-B %d: this installation allows at most %lld bytes",
            st->buffer, p->max_buffer);
    if (st->cluster_id >= EPCAPD_FANOUT_USER_BASE)
        die("policy", EPERM, 0, "-C %d: at most %d for callers who are not root",
            st->cluster_id, EPCAPD_FANOUT_USER_BASE - 1);
}

/* The default chroot: the root-owned, empty directory beside the binary. */
static void resolve_root(epcapd_t *st)
{
    char path[sizeof(st->root)];
    struct stat sb;

    if (st->chroot != NULL)
        (void)snprintf(path, sizeof(path), "%s", st->chroot);
    else if (st->policy.nchroot > 0)
        (void)snprintf(path, sizeof(path), "%s", st->policy.chroot[0]);
    else if ((size_t)snprintf(path, sizeof(path), "%s/empty", st->exe_dir) >= sizeof(path))
        die("chroot", ENAMETOOLONG, 0, "chroot path too long");
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

/* The user (and group) to become: -u and -g, or the policy's, or nobody. */
static void resolve_target(epcapd_t *st)
{
    const char *name = st->user != NULL      ? st->user
                       : st->policy.nuser > 0 ? st->policy.user[0]
                                              : "nobody";
    const char *group = st->group != NULL      ? st->group
                        : st->policy.ngroup > 0 ? st->policy.group[0]
                                                : NULL;
    struct passwd *pw;
    struct group *gr;

    errno = 0;
    pw = getpwnam(name);
    if (pw == NULL)
        die("getpwnam", errno, 0, "unknown user '%s'", name);
    st->target.uid = pw->pw_uid;
    st->target.gid = pw->pw_gid;
    if (group != NULL) {
        errno = 0;
        gr = getgrnam(group);
        if (gr == NULL)
            die("getgrnam", errno, 0, "unknown group '%s'", group);
        st->target.gid = gr->gr_gid;
    }
    if ((st->target.uid == 0 || st->target.gid == 0) && st->invoker.uid != 0)
        die("privilege", EPERM, 0,
            "refusing to run as uid %u gid %u: the invoking user is not root",
            (unsigned)st->target.uid, (unsigned)st->target.gid);
}

void policy_apply(epcapd_t *st)
{
    st->root_fd = -1;
    if (!st->privileged && (st->chroot != NULL || st->user != NULL || st->group != NULL))
        die("privilege", EPERM, 0,
            "chroot, user and group need a privileged helper (uid %u, no "
            "CAP_SYS_CHROOT/CAP_SETUID/CAP_SETGID)",
            (unsigned)geteuid());
    if (st->privileged || st->guarded) {
        exe_dir(st);
        load(st);
    }
    if (st->guarded)
        check_request(st);
    /* Without privilege, or reading a file or listing the devices for
     * someone other than root, the helper is its invoker and stays so. */
    if (!st->privileged || ((st->file != NULL || st->list) && st->invoker.uid != 0)) {
        st->target = st->invoker;
        return;
    }
    resolve_target(st);
    if (st->file == NULL && !st->list)
        resolve_root(st);
}

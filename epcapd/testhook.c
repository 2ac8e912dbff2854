/*
 * testhook.c: linked only into priv/epcapd-testhook (make), a test build
 * that is never installed for real use. What it does is asked for through
 * environment variables, read at start, before the helper clears its
 * environment:
 *
 *   EPCAPD_TEST_SYSCALL=open|fork|send  after ready, make that call, which
 *       the sandbox must stop: open fails (EPERM), fork kills the process
 *       (SIGSYS), send on the capture's socket fails without -j (EPERM);
 *   EPCAPD_TEST_STATS_OFFSET=N  libpcap's 32-bit received counter appears
 *       to start at N, so that a few packets make it wrap;
 *   EPCAPD_TEST_FD=N  say whether descriptor N is open at pcap_activate().
 *
 * The ready frame of this build also says what the helper held at the
 * moment it called pcap_activate(): "test_activate", a map of uid, gid
 * (real, effective, saved), groups, the effective, permitted and
 * inheritable capability sets (64-bit masks), no_new_privs, the number
 * of environment variables, and whether EPCAPD_TEST_FD was open.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "epcapd.h"

extern char **environ;

static char test_call[16];
static unsigned stats_offset;
static int test_fd = -1;

static struct {
    int taken;
    uid_t uid[3];
    gid_t gid[3];
    gid_t groups[64];
    int ngroups;
    uint64_t caps[3]; /* effective, permitted, inheritable */
    int no_new_privs;
    int environment;
    int test_fd_open;
} at_activate;

void testhook_init(void)
{
    const char *call = getenv("EPCAPD_TEST_SYSCALL");
    const char *offset = getenv("EPCAPD_TEST_STATS_OFFSET");
    const char *fd = getenv("EPCAPD_TEST_FD");

    if (call != NULL)
        (void)strncpy(test_call, call, sizeof(test_call) - 1);
    if (offset != NULL)
        stats_offset = (unsigned)strtoul(offset, NULL, 10);
    if (fd != NULL)
        test_fd = (int)strtol(fd, NULL, 10);
}

unsigned testhook_stats_offset(void)
{
    return stats_offset;
}

void testhook_at_activate(void)
{
    struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3];
    char **e;

    at_activate.taken = 1;
    (void)getresuid(&at_activate.uid[0], &at_activate.uid[1], &at_activate.uid[2]);
    (void)getresgid(&at_activate.gid[0], &at_activate.gid[1], &at_activate.gid[2]);
    at_activate.ngroups = getgroups(64, at_activate.groups);
    if (syscall(SYS_capget, &hdr, data) == 0) {
        at_activate.caps[0] = data[0].effective | (uint64_t)data[1].effective << 32;
        at_activate.caps[1] = data[0].permitted | (uint64_t)data[1].permitted << 32;
        at_activate.caps[2] = data[0].inheritable | (uint64_t)data[1].inheritable << 32;
    }
    at_activate.no_new_privs = prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0);
    for (e = environ; e != NULL && *e != NULL; e++)
        at_activate.environment++;
    at_activate.test_fd_open = test_fd >= 0 && fcntl(test_fd, F_GETFD) >= 0;
}

int testhook_ready_keys(void)
{
    return 1;
}

static void pack_ids(msgpack_packer *pk, const char *key, const unsigned *ids, int n)
{
    int i;

    wire_pack_str(pk, key);
    msgpack_pack_array(pk, (size_t)(n > 0 ? n : 0));
    for (i = 0; i < n; i++)
        msgpack_pack_uint32(pk, ids[i]);
}

void testhook_pack_ready(msgpack_packer *pk)
{
    wire_pack_str(pk, "test_activate");
    if (!at_activate.taken) {
        msgpack_pack_nil(pk);
        return;
    }
    msgpack_pack_map(pk, 9);
    pack_ids(pk, "uid", at_activate.uid, 3);
    pack_ids(pk, "gid", at_activate.gid, 3);
    pack_ids(pk, "groups", at_activate.groups, at_activate.ngroups);
    wire_pack_str(pk, "cap_effective");
    msgpack_pack_uint64(pk, at_activate.caps[0]);
    wire_pack_str(pk, "cap_permitted");
    msgpack_pack_uint64(pk, at_activate.caps[1]);
    wire_pack_str(pk, "cap_inheritable");
    msgpack_pack_uint64(pk, at_activate.caps[2]);
    wire_pack_str(pk, "no_new_privs");
    msgpack_pack_int(pk, at_activate.no_new_privs);
    wire_pack_str(pk, "environment");
    msgpack_pack_int(pk, at_activate.environment);
    wire_pack_str(pk, "test_fd_open");
    msgpack_pack_int(pk, at_activate.test_fd_open);
}

void testhook_after_ready(epcapd_t *st)
{
    static const unsigned char frame[60] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    long rc = -1;

    if (test_call[0] == '\0')
        return;
    if (strcmp(test_call, "open") == 0)
        rc = open("/etc/passwd", O_RDONLY);
    else if (strcmp(test_call, "fork") == 0)
        rc = fork();
    else if (strcmp(test_call, "send") == 0 && st->pcap != NULL)
        rc = send(pcap_fileno(st->pcap), frame, sizeof(frame), 0);
    if (rc < 0)
        die("sandbox", errno, 0, "test hook: %s denied: %s", test_call, strerror(errno));
    die("sandbox", 0, 0, "test hook: %s was allowed", test_call);
}

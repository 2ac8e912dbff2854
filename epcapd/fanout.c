/*
 * fanout.c: cluster_id, a PACKET_FANOUT group whose members share an
 * interface's traffic, each flow (by hash) going to exactly one of them.
 *
 * The kernel lets any packet socket join a group of the same device, mode
 * and flags, whoever made it: a capture user could take half the flows of
 * an IDS that root runs. So, for an invoker who is not root (guarded):
 *
 *  - cluster_id N (0 to 32767) is kernel group EPCAPD_FANOUT_USER_BASE + N
 *    (32768 + N). Root's own captures name kernel groups directly, and
 *    those below 32768 are out of every other caller's reach.
 *  - Before joining, and again after (a group made in between), the helper
 *    lists the members of the group through the kernel's packet socket
 *    diagnostics (NETLINK_SOCK_DIAG, as `ss -0` does) and refuses if any
 *    socket in it belongs to another user than the invoker (a guarded
 *    helper's capture socket is its invoker's, privdrop.c): only groups
 *    made by the same user's epcap helpers are joined.
 *
 * Linked with PF_RING's libpcap (PFRING=/path make), cluster_id is a
 * PF_RING cluster instead, as in epcap (not exercised by the tests).
 */
#include <errno.h>
#include <linux/if_packet.h>
#include <linux/netlink.h>
#include <linux/packet_diag.h>
#include <linux/sock_diag.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "epcapd.h"

#ifdef HAVE_PFRING
#include <pfring.h>

void fanout_join(epcapd_t *st)
{
    pfring *ring = pcap_get_pfring_handle(st->pcap);

    if (ring == NULL ||
        pfring_set_cluster(ring, (u_int)st->cluster_id, cluster_per_flow) != 0)
        die("pfring_set_cluster", 0, 0, "%s: cannot join PF_RING cluster %d",
            st->ifname, st->cluster_id);
    st->fanout_group = st->cluster_id;
}
#else

/* One packet_diag_msg: the owner of a socket in `group`, or -1. */
static long long member_owner(const struct nlmsghdr *nlh, int group)
{
    size_t off = NLMSG_LENGTH(sizeof(struct packet_diag_msg));
    const struct nlattr *a;
    uint32_t value, uid = 0;
    int in_group = 0, have_uid = 0;

    while (off + NLA_HDRLEN <= nlh->nlmsg_len) {
        a = (const struct nlattr *)((const char *)nlh + off);
        if (a->nla_len < NLA_HDRLEN || off + a->nla_len > nlh->nlmsg_len)
            break;
        if (a->nla_len >= NLA_HDRLEN + sizeof(value)) {
            memcpy(&value, (const char *)a + NLA_HDRLEN, sizeof(value));
            if (a->nla_type == PACKET_DIAG_FANOUT)
                in_group = (int)(value & 0xffff) == group;
            else if (a->nla_type == PACKET_DIAG_UID)
                uid = value, have_uid = 1;
        }
        off += NLA_ALIGN(a->nla_len);
    }
    if (!in_group)
        return -1;
    return have_uid ? (long long)uid : (long long)UINT32_MAX; /* unknown: foreign */
}

/* The owner of a member of `group` other than `self`, or -1 if none. */
static long long foreign_member(epcapd_t *st, int group, uid_t self)
{
    struct {
        struct nlmsghdr nlh;
        struct packet_diag_req req;
    } request = {
        .nlh = {.nlmsg_len = sizeof(request), .nlmsg_type = SOCK_DIAG_BY_FAMILY,
                .nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP},
        .req = {.sdiag_family = AF_PACKET, .pdiag_show = PACKET_SHOW_INFO | PACKET_SHOW_FANOUT},
    };
    static char buf[32768] __attribute__((aligned(NLMSG_ALIGNTO)));
    const struct nlmsghdr *nlh;
    long long owner, found = -1;
    int fd = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
    size_t off;
    ssize_t n;

    if (fd < 0 || send(fd, &request, sizeof(request), 0) != (ssize_t)sizeof(request))
        die("fanout", errno, 0, "%s: listing PACKET_FANOUT group %d: %s", st->ifname, group,
            strerror(errno));
    for (;;) {
        n = recv(fd, buf, sizeof(buf), 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            die("fanout", errno, 0, "%s: listing PACKET_FANOUT group %d: %s", st->ifname,
                group, n < 0 ? strerror(errno) : "no answer");
        for (off = 0; off + sizeof(*nlh) <= (size_t)n; off += NLMSG_ALIGN(nlh->nlmsg_len)) {
            nlh = (const struct nlmsghdr *)(buf + off);
            if (nlh->nlmsg_len < sizeof(*nlh) || off + nlh->nlmsg_len > (size_t)n)
                break;
            if (nlh->nlmsg_type == NLMSG_DONE) {
                (void)close(fd);
                return found;
            }
            if (nlh->nlmsg_type == NLMSG_ERROR)
                die("fanout", ENOTSUP, 0, "%s: the kernel cannot list PACKET_FANOUT group %d",
                    st->ifname, group);
            owner = member_owner(nlh, group);
            if (owner >= 0 && owner != (long long)self)
                found = owner;
        }
    }
}

static void refuse_foreign(epcapd_t *st, int group, uid_t self)
{
    long long owner = foreign_member(st, group, self);

    if (owner >= 0)
        die("policy", EPERM, 0,
            "%s: PACKET_FANOUT group %d (cluster_id %d) has a member of another user or "
            "program (uid %lld): not joined",
            st->ifname, group, st->cluster_id, owner);
}

void fanout_join(epcapd_t *st)
{
    int group = st->guarded ? EPCAPD_FANOUT_USER_BASE + st->cluster_id : st->cluster_id;
    /* the id in the low 16 bits, mode and flags (DEFRAG is 0x8000) above:
     * shifted as unsigned, since 0x8000 << 16 does not fit an int */
    uint32_t bits = (uint32_t)group |
                    ((uint32_t)(PACKET_FANOUT_HASH | PACKET_FANOUT_FLAG_DEFRAG) << 16);
    uid_t self = st->invoker.uid; /* guarded: the socket is the invoker's (privdrop.c) */
    int arg;

    memcpy(&arg, &bits, sizeof(arg));
    if (st->guarded)
        refuse_foreign(st, group, self);
    if (setsockopt(pcap_fileno(st->pcap), SOL_PACKET, PACKET_FANOUT, &arg, sizeof(arg)) != 0)
        die("setsockopt", errno, 0, "%s: PACKET_FANOUT group %d: %s", st->ifname, group,
            strerror(errno));
    if (st->guarded)
        refuse_foreign(st, group, self);
    st->fanout_group = group;
}
#endif

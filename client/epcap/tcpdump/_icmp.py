"""ICMP (with the packet an error quotes) and ICMPv6 (neighbour discovery, MLD)."""

from __future__ import annotations

from . import _ip
from ._nd import LocalCut, Nd, bits, caret, checksum, pseudo6, should_be

# ICMP ----------------------------------------------------------------------

ICMP_NAMES = {
    0: "echo reply",
    4: "source quench",
    8: "echo request",
    10: "router solicitation",
    13: "time stamp request",
    14: "time stamp reply",
    15: "information request",
    16: "information reply",
    17: "address mask request",
}
ICMP_UNREACHABLE = {
    0: "net {} unreachable",
    1: "host {} unreachable",
    5: "{} unreachable - source route failed",
    6: "net {} unreachable - unknown",
    7: "host {} unreachable - unknown",
    8: "{} unreachable - source host isolated",
    9: "net {} unreachable - admin prohibited",
    10: "host {} unreachable - admin prohibited",
    11: "net {} unreachable - tos prohibited",
    12: "host {} unreachable - tos prohibited",
    13: "host {} unreachable - admin prohibited filter",
    14: "host {} unreachable - host precedence violation",
    15: "host {} unreachable - precedence cutoff",
}
ICMP_REDIRECT = {
    0: "redirect {} to net {}",
    1: "redirect {} to host {}",
    2: "redirect-tos {} to net {}",
    3: "redirect-tos {} to host {}",
}
ICMP_ERRORS = (3, 4, 5, 11, 12)
ICMP_EXTENSIONS = (3, 11, 12)
ICMP_EXTD_MINLEN = 156 - 20


def _ms_clock(stamp: int) -> str:
    msec, sec = stamp % 1000, stamp // 1000
    minutes, sec = divmod(sec, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours:02d}:{minutes:02d}:{sec:02d}.{msec:03d}"


def _icmp_text(nd: Nd, bp: int, kind: int, code: int) -> str:
    inner = bp + 8  # the quoted IP header
    if kind in (0, 8):
        return (
            f"echo {'request' if kind == 8 else 'reply'}, id {nd.u2(bp + 4)}, seq {nd.u2(bp + 6)}"
        )
    if kind == 3:
        if code == 2:
            return f"{nd.ip4(inner + 16)} protocol {nd.u1(inner + 9)} unreachable"
        if code == 3:
            if not nd.test(inner + 9, 1):
                raise LocalCut
            hlen = (nd.data[inner] & 0x0F) * 4
            port = nd.u2(inner + hlen + 2)
            proto = nd.u1(inner + 9)
            if proto == 6:
                return f"{nd.ip4(inner + 16)} tcp port {nd.names.port(port, 'tcp')} unreachable"
            if proto == 17:
                return f"{nd.ip4(inner + 16)} udp port {nd.names.port(port, 'udp')} unreachable"
            return f"{nd.ip4(inner + 16)} protocol {proto} port {port} unreachable"
        if code == 4:
            mtu = nd.u2(bp + 6)
            text = f"{nd.ip4(inner + 16)} unreachable - need to frag"
            return text + (f" (mtu {mtu})" if mtu else "")
        if code in ICMP_UNREACHABLE:
            return ICMP_UNREACHABLE[code].format(nd.ip4(inner + 16))
        return f"{nd.ip4(inner + 16)} unreachable - #{code}"
    if kind == 5:
        fmt = ICMP_REDIRECT.get(code)
        if fmt is None:
            return f"redirect-#{code} {nd.ip4(inner + 16)} to {nd.ip4(bp + 4)}"
        return fmt.format(nd.ip4(inner + 16), nd.ip4(bp + 4))
    if kind == 9:
        return _icmp_router_advert(nd, bp)
    if kind == 11:
        if not nd.test(inner + 16, 4):
            raise LocalCut
        return {0: "time exceeded in-transit", 1: "ip reassembly time exceeded"}.get(
            code, f"time exceeded-#{code}"
        )
    if kind == 12:
        if code:
            return f"parameter problem - code {code}"
        return f"parameter problem - octet {nd.u1(bp + 4)}"
    if kind == 18:
        return f"address mask is 0x{nd.u4(bp + 8):08x}"
    if kind == 13:
        return f"time stamp query id {nd.u2(bp + 4)} seq {nd.u2(bp + 6)}"
    if kind == 14:
        if not nd.test(bp + 16, 4):
            raise LocalCut
        return (
            f"time stamp reply id {nd.u2(bp + 4)} seq {nd.u2(bp + 6)}: "
            f"org {_ms_clock(nd.u4(bp + 8))}, recv {_ms_clock(nd.u4(bp + 12))}, "
            f"xmit {_ms_clock(nd.u4(bp + 16))}"
        )
    return ICMP_NAMES.get(kind, f"type-#{kind}")


def _icmp_router_advert(nd: Nd, bp: int) -> str:
    text = "router advertisement"
    if not nd.test(bp + 4, 4):
        raise LocalCut
    lifetime = nd.u2(bp + 6)
    if lifetime < 60:
        text += f" lifetime {lifetime}"
    elif lifetime < 3600:
        text += f" lifetime {lifetime // 60}:{lifetime % 60:02d}"
    else:
        text += f" lifetime {lifetime // 3600}:{lifetime % 3600 // 60:02d}:{lifetime % 60:02d}"
    num = nd.u1(bp + 4)
    text += f" {num}:"
    size = nd.u1(bp + 5)
    if size != 2:
        return text + f" [size {size}]"
    at = bp + 8
    for _ in range(num):
        if not nd.test(at, 8):
            raise LocalCut
        text += f" {{{nd.ip4(at)} {nd.u4(at + 4)}}}"
        at += 8
    return text


def icmp(nd: Nd, bp: int, plen: int, iph: int, fragmented: bool) -> None:
    """ICMP (print-icmp.c's icmp_print)."""
    nd.proto = "icmp"
    kind, code = nd.u1(bp), nd.u1(bp + 1)
    try:
        text = _icmp_text(nd, bp, kind, code)
    except LocalCut:
        nd.trunc()
        return
    nd.p(f"ICMP {text}, length {plen}")
    v = nd.o.verbose
    if v and nd.o.checksums and not fragmented and nd.test(bp, plen):
        computed = checksum(nd.data[bp : bp + plen])
        if computed:
            field = nd.u2(bp + 2)
            nd.p(f" (wrong icmp cksum {field:x} (->{should_be(field, computed):x})!)")
    if v and kind in ICMP_ERRORS:
        inner = bp + 8
        nd.p("\n\t")
        saved = nd.end
        nd.end = min(inner + nd.u2(inner + 2), nd.end)
        _ip.ip(nd, inner, nd.u2(inner + 2))
        nd.end = saved
    nd.proto = "icmp"
    if v and plen > ICMP_EXTD_MINLEN and kind in ICMP_EXTENSIONS:
        _icmp_extensions(nd, bp, plen)


def _icmp_extensions(nd: Nd, bp: int, plen: int) -> None:
    """RFC 4884 multi-part extensions, 128 bytes into the quoted packet."""
    if not nd.test(bp, 8 + 128 + 4 + 1):
        nd.trunc()
        return
    ext = bp + 8 + 128
    hlen = plen - ICMP_EXTD_MINLEN
    if nd.u1(bp + 5) == 0 and nd.test(ext, hlen) and checksum(nd.data[ext : ext + hlen]):
        return
    version = nd.data[ext] >> 4
    nd.p(f"\n\tICMP Multi-Part extension v{version}")
    if version != 2:
        nd.p(" packet not supported")
        return
    if nd.test(ext, hlen):
        wrong = checksum(nd.data[ext : ext + hlen])
        nd.p(f", checksum 0x{nd.u2(ext + 2):04x} ({'in' if wrong else ''}correct), length {hlen}")
    hlen -= 4
    obj = ext + 4
    while hlen > 4:
        if not nd.test(obj, 4):
            nd.trunc()
            return
        obj_len, cls, ctype = nd.u2(obj), nd.u1(obj + 2), nd.u1(obj + 3)
        obj += 4
        name = {1: "MPLS Stack Entry", 2: "Interface Identification"}.get(cls, "unknown")
        nd.p(f"\n\t  {name} Object ({cls}), Class-Type: {ctype}, length {obj_len}")
        hlen -= 4
        if cls == 0 or obj_len < 4:
            return
        obj_len -= 4
        if cls == 1 and ctype == 1:
            label = nd.u4(obj)
            nd.p(f"\n\t    label {label >> 12}, tc {(label >> 9) & 7}")
            if label & 0x100:
                nd.p(", [S]")
            nd.p(f", ttl {label & 0xFF}")
        else:
            nd.unknown_data(obj, "\n\t    ", obj_len)
        if hlen < obj_len:
            break
        hlen -= obj_len
        obj += obj_len


# ICMPv6 --------------------------------------------------------------------

ICMP6_NAMES = {
    1: "destination unreachable",
    2: "packet too big",
    3: "time exceeded in-transit",
    4: "parameter problem",
    128: "echo request",
    129: "echo reply",
    130: "multicast listener query",
    131: "multicast listener report",
    132: "multicast listener done",
    133: "router solicitation",
    134: "router advertisement",
    135: "neighbor solicitation",
    136: "neighbor advertisement",
    137: "redirect",
    138: "router renumbering",
    141: "inverse neighbor solicitation",
    142: "inverse neighbor advertisement",
    143: "multicast listener report v2",
    144: "ha discovery request",
    145: "ha discovery reply",
    146: "mobile router solicitation",
    147: "mobile router advertisement",
    139: "node information query",
    140: "node information reply",
    200: "mtrace response",
    201: "mtrace message",
    155: "RPL",
}
ICMP6_UNREACHABLE = {
    0: "unreachable route",
    1: " unreachable prohibited",
    2: "beyond scope",
    3: "unreachable address",
    4: "unreachable port",
}
ICMP6_PARAM = {
    0: "erroneous",
    1: "next header",
    2: "option",
    3: "incomplete header chain",
}
ND_OPTION_NAMES = {
    1: "source link-address",
    2: "destination link-address",
    3: "prefix info",
    4: "redirected header",
    5: "mtu",
    25: "rdnss",
    31: "dnssl",
    7: "advertisement interval",
    8: "homeagent information",
    24: "route info",
}
RA_FLAGS = ((0x80, "managed"), (0x40, "other stateful"), (0x20, "home agent"), (0x02, "ipv6 only"))
NA_FLAGS = ((0x80000000, "router"), (0x40000000, "solicited"), (0x20000000, "override"))
PI_FLAGS = ((0x80, "onlink"), (0x40, "auto"), (0x20, "router"))
MLDV2_RECORDS = {1: "is_in", 2: "is_ex", 3: "to_in", 4: "to_ex", 5: "allow", 6: "block"}
ROUTER_PREFERENCES = ("medium", "high", "rsv", "low")


def icmp6(nd: Nd, bp: int, length: int, iph: int, fragmented: bool) -> None:
    """ICMPv6 (print-icmp6.c's icmp6_print)."""
    nd.proto = "icmp6"
    v = nd.o.verbose
    if length == 0:
        nd.p("ICMP6, length 0")
        nd.invalid()
        return
    if v and nd.o.checksums and not fragmented and nd.test(bp, length):
        field = nd.u2(bp + 2)
        computed = checksum(pseudo6(nd, iph, 58, length), nd.data[bp : bp + length])
        if computed:
            nd.p(f"[bad icmp6 cksum 0x{field:04x} -> 0x{should_be(field, computed):04x}!] ")
        else:
            nd.p("[icmp6 sum ok] ")
    kind = nd.u1(bp)
    nd.p(f"ICMP6, {ICMP6_NAMES.get(kind, f'unknown icmp6 type ({kind})')}")
    if v and kind in (133, 134, 135, 136, 137, 145, 147):
        nd.p(f", length {length}")
    code = nd.u1(bp + 1)
    inner = bp + 8
    try:
        if not _icmp6_body(nd, bp, length, kind, code, inner):
            return
    except LocalCut:
        nd.trunc()
        return
    if not v:
        nd.p(f", length {length}")


def _icmp6_body(nd: Nd, bp: int, length: int, kind: int, code: int, inner: int) -> bool:
    """The part after the type; False when tcpdump prints nothing more."""
    v = nd.o.verbose
    if kind == 1:
        nd.p(f", {ICMP6_UNREACHABLE.get(code, f'unknown unreach code ({code})')}")
        if code in (0, 1, 3):
            nd.p(f" {nd.ip6(inner + 24)}")
        elif code == 2:
            nd.p(f" {nd.ip6(inner + 24)}, source address {nd.ip6(inner + 8)}")
        elif code == 4:
            found = _upper_layer(nd, inner)
            if found is None:
                raise LocalCut
            uh, prot = found
            port = nd.u2(uh + 2)
            if prot == 6:
                nd.p(f", {nd.ip6(inner + 24)} tcp port {nd.names.port(port, 'tcp')}")
            elif prot == 17:
                nd.p(f", {nd.ip6(inner + 24)} udp port {nd.names.port(port, 'udp')}")
            else:
                nd.p(f", {nd.ip6(inner + 24)} protocol {prot} port {port} unreachable")
        elif v <= 1:
            nd.unknown_data(bp, "\n\t", length)
            return False
    elif kind == 2:
        nd.p(f", mtu {nd.u4(bp + 4)}")
    elif kind == 3:
        if code == 0:
            nd.p(f" for {nd.ip6(inner + 24)}")
        elif code == 1:
            nd.p(" (reassembly)")
        else:
            nd.p(f", unknown code ({code})")
    elif kind == 4:
        if not nd.test(inner + 24, 16):
            raise LocalCut
        if code in ICMP6_PARAM:
            nd.p(f", {ICMP6_PARAM[code]} - octet {nd.u4(bp + 4)}")
        else:
            nd.p(f", code-#{code}")
    elif kind in (128, 129):
        nd.p(f", id {nd.u2(bp + 4)}, seq {nd.u2(bp + 6)}")
    elif kind == 130:
        if length == 24:
            _mld(nd, bp)
        elif length >= 28:
            nd.p(" v2")
            _mldv2_query(nd, bp, length)
        else:
            nd.p(f" unknown-version (len {length}) ")
    elif kind in (131, 132):
        _mld(nd, bp)
    elif kind == 133:
        if v:
            _nd_options(nd, bp + 8, length - 8)
    elif kind == 134:
        if v:
            flags = nd.u1(bp + 5)
            nd.p(
                f"\n\thop limit {nd.u1(bp + 4)}, Flags [{bits(RA_FLAGS, flags)}], "
                f"pref {ROUTER_PREFERENCES[(flags & 0x18) >> 3]}, router lifetime "
                f"{nd.u2(bp + 6)}s, reachable time {nd.u4(bp + 8)}ms, retrans timer "
                f"{nd.u4(bp + 12)}ms"
            )
            _nd_options(nd, bp + 16, length - 16)
    elif kind == 135:
        nd.p(f", who has {nd.ip6(bp + 8)}")
        if v:
            _nd_options(nd, bp + 24, length - 24)
    elif kind == 136:
        nd.p(f", tgt is {nd.ip6(bp + 8)}")
        if v:
            nd.p(f", Flags [{bits(NA_FLAGS, nd.u4(bp + 4))}]")
            _nd_options(nd, bp + 24, length - 24)
    elif kind == 137:
        nd.p(f", {nd.ip6(bp + 24)} to {nd.ip6(bp + 8)}")
        if v:
            _nd_options(nd, bp + 40, length - 40)
    elif kind in (141, 142):
        pass
    elif kind == 143:
        _mldv2_report(nd, bp, length)
    elif kind in (144, 146):
        nd.p(f", id 0x{nd.u2(bp + 4):04x}")
    else:  # node information, renumbering, RPL, ...: not taken apart here
        nd.p(f", length {length}")
        if v <= 1:
            nd.unknown_data(bp, "\n\t", length)
        return False
    return True


def _upper_layer(nd: Nd, ip6: int) -> tuple[int, int] | None:
    """The TCP or UDP header of a quoted IPv6 packet, and its protocol."""
    if not nd.test(ip6 + 6, 1):
        return None
    nh, hlen, bp = nd.u1(ip6 + 6), 40, ip6
    while bp < nd.end:
        bp += hlen
        if nh in (6, 17):
            return (bp, nh) if nd.test(bp + 2, 2) else None
        if nh in (0, 60, 43):
            if not nd.test(bp + 1, 1):
                return None
            nh, hlen = nd.u1(bp), (nd.u1(bp + 1) + 1) << 3
        elif nh == 44:
            if not nd.test(bp + 2, 2) or nd.u2(bp + 2) & 0xFFF8:
                return None
            nh, hlen = nd.u1(bp), 8
        elif nh == 51:
            if not nd.test(bp + 1, 1):
                return None
            nh, hlen = nd.u1(bp), (nd.u1(bp + 1) + 2) << 2
        else:
            return None
    return None


def _mld(nd: Nd, bp: int) -> None:
    if bp + 24 > nd.end:
        return
    nd.p(f"max resp delay: {nd.u2(bp + 4)} addr: {nd.ip6(bp + 8)}")


def _mldv2_report(nd: Nd, bp: int, length: int) -> None:
    if length < 8:
        nd.p(f" [invalid len {length}]")
        return
    groups = nd.u2(bp + 6)
    nd.p(f", {groups} group record(s)")
    if not nd.o.verbose:
        return
    at = 8
    for _ in range(groups):
        if length < at + 20:
            nd.p(" [invalid number of groups]")
            return
        nd.p(f" [gaddr {nd.ip6(bp + at + 4)}")
        record = nd.u1(bp + at)
        nd.p(f" {MLDV2_RECORDS.get(record, f' [v2-report-#{record}]')}")
        sources = nd.u2(bp + at + 2)
        if length < at + 20 + sources * 16:
            nd.p(f" [invalid number of sources {sources}]")
            return
        if nd.o.verbose == 1:
            nd.p(f", {sources} source(s)")
        else:
            nd.p(" {")
            for j in range(sources):
                nd.p(f" {nd.ip6(bp + at + 20 + 16 * j)}")
            nd.p(" }")
        at += 20 + sources * 16
        nd.p("]")


def _mldv2_query(nd: Nd, bp: int, length: int) -> None:
    if length < 28:
        nd.p(f" [invalid len {length}]")
        return
    mrc = nd.u2(bp + 4)
    mrt = mrc if mrc < 32768 else ((mrc & 0x0FFF) | 0x1000) << (((mrc & 0x7000) >> 12) + 3)
    if nd.o.verbose:
        nd.p(f" [max resp delay={mrt}]")
    nd.p(f" [gaddr {nd.ip6(bp + 8)}")
    if nd.o.verbose:
        flags = nd.u1(bp + 24)
        if flags & 0x08:
            nd.p(" sflag")
        if flags & 0x07:
            nd.p(f" robustness={flags & 0x07}")
        qqic = nd.u1(bp + 25)
        qqi = qqic if qqic < 128 else ((qqic & 0x0F) | 0x10) << (((qqic & 0x70) >> 4) + 3)
        nd.p(f" qqi={qqi}")
    sources = nd.u2(bp + 26)
    if sources:
        if length < 28 + sources * 16:
            nd.p(" [invalid number of sources]")
        elif nd.o.verbose > 1:
            nd.p(" {")
            for i in range(sources):
                nd.p(f" {nd.ip6(bp + 28 + 16 * i)}")
            nd.p(" }")
        else:
            nd.p(f", {sources} source(s)")
    nd.p("]")


def _lifetime(value: int) -> str:
    return "infinity" if value == 0xFFFFFFFF else f"{value}s"


def _nd_options(nd: Nd, bp: int, resid: int) -> None:
    """Neighbor discovery options under -v (icmp6_opt_print); a cut one
    raises :class:`LocalCut`."""
    cp = bp
    while cp < nd.end:
        if not nd.test(cp + 1, 1):
            raise LocalCut
        if resid <= 0:
            return
        kind, units = nd.u1(cp), nd.u1(cp + 1)
        if units == 0 or cp + (units << 3) > nd.end:
            raise LocalCut
        size = units << 3
        nd.p(
            f"\n\t  {ND_OPTION_NAMES.get(kind, 'unknown')} option ({kind}), length {size} "
            f"({units}): "
        )
        if kind in (1, 2):
            nd.p(nd.raw(cp + 2, size - 2).hex(":"))
        elif kind == 3:
            nd.p(
                f"{nd.ip6(cp + 16)}/{nd.u1(cp + 2)}{'badlen' if units != 4 else ''}, "
                f"Flags [{bits(PI_FLAGS, nd.u1(cp + 3))}], valid time "
                f"{_lifetime(nd.u4(cp + 4))}"
            )
            nd.p(f", pref. time {_lifetime(nd.u4(cp + 8))}")
        elif kind == 4:
            nd.unknown_data(bp, "\n\t    ", size)
        elif kind == 5:
            nd.p(f" {nd.u4(cp + 4)}{'bad option length' if units != 1 else ''}")
        elif kind == 25:
            nd.p(f" lifetime {nd.u4(cp + 4)}s,")
            for i in range((units - 1) // 2):
                nd.p(f" addr: {nd.ip6(cp + 8 + 16 * i)}")
        elif kind == 31:
            nd.p(f" lifetime {nd.u4(cp + 4)}s, domain(s):")
            dom = cp + 8
            while dom < cp + size and nd.u1(dom) != 0:
                nd.p(" ")
                dom = _fqdn(nd, dom)
        elif kind == 7:
            nd.p(f" {nd.u4(cp + 4)}ms")
        elif kind == 8:
            nd.p(f" preference {nd.u2(cp + 4)}, lifetime {nd.u2(cp + 6)}")
        elif kind == 24:
            if not nd.test(cp + 4, 4):
                raise LocalCut
            if units not in (1, 2, 3):
                raise LocalCut
            prefix = bytes(16)
            if units > 1:
                prefix = nd.raw(cp + 8, 8 * (units - 1)).ljust(16, b"\0")
            flags = nd.u1(cp + 3)
            nd.p(f" {nd.names.ip6(prefix)}/{nd.u1(cp + 2)}")
            nd.p(f", pref={ROUTER_PREFERENCES[(flags & 0x18) >> 3]}")
            nd.p(f", lifetime={_lifetime(nd.u4(cp + 4))}")
        elif nd.o.verbose <= 1:
            nd.unknown_data(cp + 2, "\n\t  ", size - 2)
            return
        if nd.o.verbose > 1:
            nd.unknown_data(cp + 2, "\n\t    ", size - 2)
        cp += size
        resid -= size


def _fqdn(nd: Nd, cp: int) -> int:
    """A domain name (RFC 1035 labels) as tcpdump prints it; returns the
    offset after it."""
    labels = []
    while True:
        n = nd.u1(cp)
        cp += 1
        if n == 0:
            break
        if n & 0xC0:  # a compression pointer ends the name here
            cp += 1
            break
        labels.append("".join(caret(b) for b in nd.raw(cp, n)))
        cp += n
    nd.p(".".join(labels) + ".")
    return cp

"""IPv4 (options, fragments), IPv6 (extension headers), what an IP header carries, and ARP."""

from __future__ import annotations

from . import _icmp, _transport
from ._nd import (
    ETHERTYPE_IP,
    ETHERTYPE_NAMES,
    ETHERTYPE_TRAIL,
    Nd,
    Truncated,
    bits,
    checksum,
    should_be,
)

# Network layers ------------------------------------------------------------

IP_PROTOCOL_NAMES = {
    0: "Options",
    1: "ICMP",
    2: "IGMP",
    4: "IPIP",
    6: "TCP",
    8: "EGP",
    9: "IGRP",
    17: "UDP",
    33: "DCCP",
    41: "IPv6",
    43: "Routing",
    44: "Fragment",
    46: "RSVP",
    47: "GRE",
    50: "ESP",
    51: "AH",
    55: "Mobile IP",
    58: "ICMPv6",
    62: "Mobile IP (old)",
    88: "EIGRP",
    89: "OSPF",
    103: "PIM",
    108: "Compressed IP",
    112: "VRRP",
    113: "PGM",
    132: "SCTP",
    135: "Mobility",
    143: "Ethernet",
}
"""tcpdump's names for IP protocols in -v headers (ipproto.c's table)."""


IP_OPTION_NAMES = {
    0: "EOL",
    1: "NOP",
    68: "timestamp",
    130: "security",
    7: "RR",
    137: "SSRR",
    131: "LSRR",
    148: "RA",
    82: "traceroute",
}
IP_FRAG_FLAGS = ((0x2000, "+"), (0x4000, "DF"), (0x8000, "rsvd"))


def ip(nd: Nd, bp: int, length: int) -> None:
    """IPv4 (print-ip.c's ip_print)."""
    nd.proto = "ip"
    version = nd.data[bp] >> 4 if bp < len(nd.data) else 0
    if version != 4:
        nd.p("IP6, wrong link-layer encapsulation" if version == 6 else f"IP{version}")
        nd.invalid()
        return
    if not nd.o.link:
        nd.p("IP ")
    if not nd.test(bp, 20):
        nd.trunc()
        return
    if length < 20:
        nd.p(f"truncated-ip {length}")
        return
    hlen = (nd.u1(bp) & 0x0F) * 4
    if hlen < 20:
        nd.p(f"bad-hlen {hlen}")
        return
    total = nd.u2(bp + 2)
    if length < total:
        nd.p(f"truncated-ip - {total - length} bytes missing! ")
    if total < hlen:
        nd.p(f"bad-len {total}")
        return
    nd.push(bp, total)
    left = total - hlen
    off = nd.u2(bp + 6)
    proto = nd.u1(bp + 9)
    src, dst = bp + 12, bp + 16
    if nd.o.verbose:
        tos = nd.u1(bp + 1)
        nd.p(f"(tos 0x{tos:x}" + ("", ",ECT(1)", ",ECT(0)", ",CE")[tos & 3])
        ttl = nd.u1(bp + 8)
        if ttl >= 1:
            nd.p(f", ttl {ttl}")
        nd.p(
            f", id {nd.u2(bp + 4)}, offset {(off & 0x1FFF) * 8}, "
            f"flags [{bits(IP_FRAG_FLAGS, off & 0xE000)}], "
            f"proto {IP_PROTOCOL_NAMES.get(proto, 'unknown')} ({proto})"
        )
        nd.p(f", length {nd.u2(bp + 2)}")
        cut = False
        if hlen > 20:
            nd.p(", options (")
            if not _ip_options(nd, bp + 20, hlen - 20):
                nd.p(" [truncated-option]")
                cut = True
            nd.p(")")
        if nd.o.checksums and bp + hlen <= nd.end:
            computed = checksum(nd.data[bp : bp + hlen])
            if computed:
                field = nd.u2(bp + 10)
                nd.p(f", bad cksum {field:x} (->{should_be(field, computed):x})!")
        nd.p(")\n    ")
        if cut:
            nd.p(f"{nd.ip4(src)} > {nd.ip4(dst)}: ")
            nd.trunc()
            nd.pop()
            return
    if off & 0x1FFF == 0:
        if proto not in (6, 17, 132, 33):
            nd.p(f"{nd.ip4(src)} > {nd.ip4(dst)}: ")
        if not nd.test(bp, hlen):
            nd.p(f" [remaining caplen({nd.avail(bp)}) < header length({hlen})]")
            raise Truncated
        demux(nd, bp + hlen, left, 4, bool(off & 0x2000), proto, bp)
    else:
        nd.p(f"{nd.ip4(src)} > {nd.ip4(dst)}:")
        name = nd.names.protocol(proto)
        nd.p(f" {name}" if name else f" ip-proto-{proto}")
    nd.pop()


def _ip_options(nd: Nd, cp: int, length: int) -> bool:
    """IPv4 options under -v; False when they were cut short."""
    sep = ""
    while length > 0:
        nd.p(sep)
        sep = ","
        code = nd.u1(cp)
        nd.p(IP_OPTION_NAMES.get(code, f"unknown {code}"))
        if code in (0, 1):
            option_len = 1
        else:
            option_len = nd.u1(cp + 1)
            if option_len < 2:
                nd.p(f" [bad length {option_len}]")
                return True
        if option_len > length:
            nd.p(f" [bad length {option_len}]")
            return True
        if not nd.test(cp, option_len):
            return False
        if code == 0:
            return True
        if code == 68:
            if not _ip_timestamp(nd, cp, option_len):
                return False
        elif code in (7, 137, 131):
            if not _ip_route(nd, cp, option_len):
                return False
        elif code == 148:
            if option_len < 4:
                nd.p(f" [bad length {option_len}]")
            else:
                nd.check(cp + 3, 1)
                if nd.u2(cp + 2):
                    nd.p(f" value {nd.u2(cp + 2)}")
        cp, length = cp + option_len, length - option_len
    return True


def _ip_route(nd: Nd, cp: int, length: int) -> bool:
    if length < 3:
        nd.p(f" [bad length {length}]")
        return True
    if (length + 1) & 3:
        nd.p(f" [bad length {length}]")
    ptr = nd.u1(cp + 2) - 1
    if ptr < 3 or ((ptr + 1) & 3) or ptr > length + 1:
        nd.p(f" [bad ptr {nd.u1(cp + 2)}]")
    for at in range(3, length, 4):
        if not nd.test(cp + at, 4):
            return False
        nd.p(f" {nd.ip4(cp + at)}")
        if ptr > at:
            nd.p(",")
    return True


def _ip_timestamp(nd: Nd, cp: int, length: int) -> bool:
    if length < 4:
        nd.p(f"[bad length {length}]")
        return True
    nd.p(" TS{")
    kind = nd.u1(cp + 3)
    hoplen = 8 if (kind & 0xF) != 0 else 4
    if (length - 4) & (hoplen - 1):
        nd.p(f"[bad length {length}]")
    ptr = nd.u1(cp + 2) - 1
    at = 0
    if ptr < 4 or ((ptr - 4) & (hoplen - 1)) or ptr > length + 1:
        nd.p(f"[bad ptr {nd.u1(cp + 2)}]")
    names = {0: "TSONLY", 1: "TS+ADDR", 3: "PRESPEC"}
    if kind & 0xF in names:
        nd.p(names[kind & 0xF])
        mark, at = " ", 4
        while at < length:
            if ptr == at:
                mark = " ^ "
            if not nd.test(cp + at, hoplen):
                return False
            stamp = nd.u4(cp + at + hoplen - 4)
            nd.p(f"{mark}{stamp}@{nd.ip4(cp + at) if hoplen == 8 else ''}")
            mark, at = " ", at + hoplen
    else:
        nd.p(f"[bad ts type {kind & 0xF}]")
    nd.p(" ^ " if ptr == at else "")
    if kind >> 4:
        nd.p(f" [{kind >> 4} hops not recorded]}} ")
    else:
        nd.p("}")
    return True


def demux(
    nd: Nd, bp: int, length: int, version: int, fragmented: bool, proto: int, iph: int
) -> None:
    """The payload of an IP header (print-ip-demux.c)."""
    if proto == 6:
        _transport.tcp(nd, bp, length, iph, fragmented)
    elif proto == 17:
        _transport.udp(nd, bp, length, iph, fragmented)
    elif proto == 1 and version == 4:
        _icmp.icmp(nd, bp, length, iph, fragmented)
    elif proto == 58 and version == 6:
        _icmp.icmp6(nd, bp, length, iph, fragmented)
    elif proto == 132:
        _transport.sctp(nd, bp, length, iph)
    elif proto in (1, 58, 2):
        nd.p(f"[{IP_PROTOCOL_NAMES[proto]} requires IPv{10 - version}]")
        nd.invalid()
    elif proto == 59:
        nd.p("no next header")
    else:
        if proto == 33:  # DCCP prints its own addresses in tcpdump
            addr, src, dst = (
                (nd.ip6, iph + 8, iph + 24) if version == 6 else (nd.ip4, iph + 12, iph + 16)
            )
            nd.p(f"{addr(src)} > {addr(dst)}:")
        name = nd.names.protocol(proto)
        nd.p(f" {name}" if name else f" ip-proto-{proto}")
        nd.p(f" {length}")


def ip6(nd: Nd, bp: int, length: int) -> None:
    """IPv6 and its extension headers (print-ip6.c's ip6_print)."""
    nd.proto = "ip6"
    if not nd.test(bp, 40):
        nd.trunc()
        return
    if length < 40:
        nd.p(f"truncated-ip6 {length}")
        return
    if not nd.o.link:
        nd.p("IP6 ")
    version = nd.data[bp] >> 4
    if version != 6:
        nd.p(f"version error: {version} != 6")
        return
    payload_len = nd.u2(bp + 4)
    if payload_len:
        total = payload_len + 40
        if length < total:
            nd.p(f"truncated-ip6 - {total - length} bytes missing!")
    else:
        total = length + 40
    prev, nh = 255, nd.u1(bp + 6)
    if nd.o.verbose:
        flow = nd.u4(bp)
        nd.p("(")
        if flow & 0x0FF00000:
            nd.p(f"class 0x{(flow & 0x0FF00000) >> 20:02x}, ")
        if flow & 0x000FFFFF:
            nd.p(f"flowlabel 0x{flow & 0x000FFFFF:05x}, ")
        nd.p(
            f"hlim {nd.u1(bp + 7)}, next-header {IP_PROTOCOL_NAMES.get(nh, 'unknown')} ({nh}) "
            f"payload length: {payload_len}) "
        )
    nd.push(bp, total)
    cp, advance, done, fragmented = bp, 40, 0, False
    found_ext = found_hbh = found_jumbo = False
    while cp < nd.end and advance > 0:
        if total < advance:
            nd.trunc()
            return
        cp, total, done = cp + advance, total - advance, done + advance
        if cp == bp + 40 and nh not in (6, 17, 33, 132):
            nd.p(f"{nd.ip6(bp + 8)} > {nd.ip6(bp + 24)}: ")
        if nh == 0:  # hop-by-hop options
            if found_hbh:
                nd.p("[The Hop-by-Hop Options header was already found]")
                nd.invalid()
                return
            if prev != 255:
                nd.p("[The Hop-by-Hop Options header don't follow the IPv6 header]")
                nd.invalid()
                return
            advance, jumbo = _ip6_options(nd, cp, "hbhopt", "HBH ", payload_len)
            if payload_len == 0 and jumbo is None:
                nd.p("[No valid Jumbo Payload Hop-by-Hop option found]")
                nd.invalid()
                return
            if advance < 0:
                nd.pop()
                return
            if jumbo is not None:
                payload_len, found_jumbo = jumbo, True
            found_ext = found_hbh = True
            nh = nd.u1(cp)
        elif nh == 60:  # destination options
            advance, _ = _ip6_options(nd, cp, "dstopt", "DSTOPT ", None)
            if advance < 0:
                nd.pop()
                return
            found_ext = True
            nh = nd.u1(cp)
        elif nh == 44:  # fragment
            advance = _frag6(nd, cp, bp)
            if advance < 0 or nd.end <= cp + advance:
                nd.pop()
                return
            found_ext, fragmented = True, True
            nh = nd.u1(cp)
        elif nh in (135, 62):  # mobility: not taken apart here
            nd.p(f"mobility {nd.u1(cp + 2) if nd.test(cp + 2, 1) else '?'}")
            nd.pop()
            return
        elif nh == 43:  # routing
            nd.check(cp, 1)
            advance = _rt6(nd, cp)
            if advance < 0:
                nd.pop()
                return
            found_ext = True
            nh = nd.u1(cp)
        else:
            if found_jumbo:
                total = payload_len + 40
                if total < done:
                    nd.trunc()
                    return
                if length < total:
                    nd.p(f"truncated-ip6 - {total - length} bytes missing!")
                nd.narrow_from(bp, total)
                total -= done
            elif payload_len == 0:
                if found_ext:
                    nd.trunc()
                    return
                total = 40
                nd.narrow_from(bp, total)
                total -= done
            demux(nd, cp, total, 6, fragmented, nh, bp)
            nd.pop()
            return
        prev = nh
        nd.proto = "ip6"
    nd.pop()


def _ip6_options(
    nd: Nd, bp: int, proto: str, label: str, payload_len: int | None
) -> tuple[int, int | None]:
    """A hop-by-hop (with the IPv6 header's ``payload_len``) or destination
    options header: its length, or -1 when it was cut short, and the length
    a valid jumbo payload option gives."""
    nd.proto = proto
    hlen = (nd.u1(bp + 1) + 1) << 3
    if not nd.test(bp, hlen):
        nd.trunc()
        return -1, None
    nd.p(label)
    jumbo: list[int] = []
    listed = payload_len is not None or nd.o.verbose  # tcpdump lists DSTOPT's under -v only
    if listed and not _ip6_option_list(nd, bp + 2, hlen - 2, payload_len, jumbo):
        nd.trunc()
        return -1, jumbo[0] if jumbo else None
    return hlen, jumbo[0] if jumbo else None


def _ip6_option_list(
    nd: Nd, bp: int, length: int, payload_len: int | None, jumbo: list[int]
) -> bool:
    """The options of an options header (ip6_opt_process); a valid jumbo
    payload length goes into ``jumbo``."""
    v = nd.o.verbose
    if length == 0:
        return True
    i, seen_jumbo = 0, False
    while i < length:
        kind, optlen = nd.u1(bp + i), _ip6_option_length(nd, bp, i, length)
        if optlen is None:
            return False
        if kind == 0:
            nd.p("(pad1)" if v else "")
        elif kind == 1:
            if length - i < 2:
                nd.p("(padn: trunc)")
                return False
            nd.p("(padn)" if v else "")
        elif kind == 5:  # router alert
            if length - i < 4:
                nd.p("(rtalert: trunc)")
                return False
            if nd.u1(bp + i + 1) != 2:
                nd.p(f"(rtalert: invalid len {nd.u1(bp + i + 1)})")
                return False
            nd.p(f"(rtalert: 0x{nd.u2(bp + i + 2):04x}) " if v else "")
        elif kind == 0xC2:  # jumbo payload
            if length - i < 6:
                nd.p("(jumbo: trunc)")
                return False
            if nd.u1(bp + i + 1) != 4:
                nd.p(f"(jumbo: invalid len {nd.u1(bp + i + 1)})")
                return False
            size = nd.u4(bp + i + 2)
            if seen_jumbo:
                why = " - already seen"
            elif payload_len is None:
                why = " - not a hop-by-hop option"
            elif payload_len:
                why = " - payload len != 0"
            elif size < 65536:
                why = " - < 65536"
            else:
                why = ""
                jumbo.append(size)
            seen_jumbo = True
            nd.p(f"(jumbo: {size}{why}) " if v else "")
        elif kind == 0xC9:  # home address
            if length - i < 18:
                nd.p("(homeaddr: trunc)")
                return False
            if nd.u1(bp + i + 1) < 16:
                nd.p(f"(homeaddr: invalid len {nd.u1(bp + i + 1)})")
                return False
            if v:
                nd.p(f"(homeaddr: {nd.ip6(bp + i + 2)}")
                if nd.u1(bp + i + 1) > 16 and not _ip6_sub_options(nd, bp + i + 18, optlen - 18):
                    return False
                nd.p(")")
        else:
            if length - i < 2:
                nd.p(f"(type {kind}: trunc)")
                return False
            if v:
                nd.p(f"(opt_type 0x{kind:02x}: len={nd.u1(bp + i + 1)})")
        i += optlen
    if v:
        nd.p(" ")
    return True


def _ip6_option_length(nd: Nd, bp: int, i: int, length: int) -> int | None:
    """The length of the option at ``i`` of the ``length`` bytes at ``bp``
    (Pad1 has no length byte), or None where the option overruns them."""
    if nd.u1(bp + i) == 0:
        return 1
    if i + 1 >= length:
        return None
    optlen = nd.u1(bp + i + 1) + 2
    return optlen if i + optlen <= length else None


def _ip6_sub_options(nd: Nd, bp: int, length: int) -> bool:
    """The sub-options of a home address option under -v."""
    i = 0
    while i < length:
        kind, optlen = nd.u1(bp + i), _ip6_option_length(nd, bp, i, length)
        if optlen is None:
            return False
        if kind == 0:
            nd.p(", pad1")
        elif kind == 1:
            if length - i < 2:
                nd.p(", padn: trunc")
                return False
            nd.p(", padn")
        else:
            if length - i < 2:
                nd.p(f", sopt_type {kind}: trunc)")
                return False
            nd.p(f", sopt_type 0x{kind:02x}: len={nd.u1(bp + i + 1)}")
        i += optlen
    return True


def _frag6(nd: Nd, bp: int, ip6: int) -> int:
    nd.proto = "frag6"
    offset = nd.u2(bp + 2) & 0xFFF8
    left = 40 + nd.u2(ip6 + 4) - (bp - ip6) - 8
    if nd.o.verbose:
        nd.p(f"frag (0x{nd.u4(bp + 4):08x}:{offset}|{left})")
    else:
        nd.p(f"frag ({offset}|{left})")
    if offset:
        return -1  # a later fragment has no header to take apart
    nd.p(" ")
    return 8


def _rt6(nd: Nd, bp: int) -> int:
    nd.proto = "rt6"
    nd.p("RT6")
    length = nd.u1(bp + 1)
    kind = nd.u1(bp + 2)
    nd.p(f" (len={length}, type={kind}")
    if kind == 0:
        nd.p(" [Deprecated]")
    nd.p(f", segleft={nd.u1(bp + 3)}")
    if kind in (0, 2):
        reserved = nd.u4(bp + 4)
        if reserved or nd.o.verbose:
            nd.p(f", rsv=0x{reserved:x}")
    elif kind == 4:
        nd.p(f", last-entry={nd.u1(bp + 4)}")
        flags = nd.u1(bp + 5)
        if flags or nd.o.verbose:
            nd.p(f", flags=0x{flags:x}")
        nd.p(f", tag={nd.u2(bp + 6):x}")
    else:
        nd.p(" (unknown type)")
        nd.invalid()
        return -1
    if length % 2:
        nd.p(f" (invalid length {length})")
        nd.invalid()
        return -1
    for i in range(length >> 1):
        nd.p(f", [{i}]{nd.ip6(bp + 8 + 16 * i)}")
    nd.p(") ")
    return (length + 1) << 3


# ARP -----------------------------------------------------------------------

ARP_OPERATIONS = {
    1: "Request",
    2: "Reply",
    3: "Reverse Request",
    4: "Reverse Reply",
    8: "Inverse Request",
    9: "Inverse Reply",
    10: "NACK Reply",
}
ARP_HARDWARE = {
    1: "Ethernet",
    6: "TokenRing",
    7: "ArcNet",
    15: "FrameRelay",
    23: "Strip",
    24: "IEEE 1394",
    19: "ATM",
    32: "InfiniBand",
}


def _linkaddr(nd: Nd, off: int, length: int) -> str:
    if length == 0:
        return "<empty>"
    raw = nd.raw(off, length)
    return nd.names.mac(raw) if length == 6 else raw.hex(":")


def arp(nd: Nd, bp: int, length: int, caplen: int) -> None:
    """ARP and RARP (print-arp.c), over Ethernet-style hardware."""
    nd.proto = "arp"
    nd.check(bp, 8)
    hrd, pro, hln, pln, op = nd.u2(bp), nd.u2(bp + 2), nd.u1(bp + 4), nd.u1(bp + 5), nd.u2(bp + 6)
    if hrd == 19:  # ATM ARP (RFC 2225) has another layout: not taken apart here
        nd.p("ARP, ATM" if not nd.o.link else "ATM")
        nd.default(bp, caplen)
        return
    sha, spa = bp + 8, bp + 8 + hln
    tha, tpa = spa + pln, spa + pln + hln
    nd.check(tpa, pln)
    if not nd.o.link:
        nd.p("ARP, ")
    ip_like = pro in (ETHERTYPE_IP, ETHERTYPE_TRAIL)
    if not ip_like or pln != 4 or hln == 0 or nd.o.verbose:
        nd.p(
            f"{ARP_HARDWARE.get(hrd, f'Unknown Hardware ({hrd})')} (len {hln}), "
            f"{ETHERTYPE_NAMES.get(pro, f'Unknown Protocol (0x{pro:04x})')} (len {pln})"
        )
        if not nd.o.verbose:
            nd.p(f", length {length}")
            return

    def paddr(at: int) -> str:
        if not ip_like:
            return "<wrong proto type>"
        if pln != 4:
            return "<wrong len>"
        return nd.ip4(at)

    nd.p(f"{', ' if nd.o.verbose else ''}{ARP_OPERATIONS.get(op, f'Unknown ({op})')} ")
    if op == 1:
        nd.p(f"who-has {paddr(tpa)}")
        if any(nd.raw(tha, hln)):
            nd.p(f" ({_linkaddr(nd, tha, hln)})")
        nd.p(f" tell {paddr(spa)}")
    elif op == 2:
        nd.p(f"{paddr(spa)} is-at {_linkaddr(nd, sha, hln)}")
    elif op in (3, 8):
        nd.p(f"who-is {_linkaddr(nd, tha, hln)} tell {_linkaddr(nd, sha, hln)}")
    elif op == 4:
        nd.p(f"{_linkaddr(nd, tha, hln)} at {paddr(tpa)}")
    elif op == 9:
        nd.p(f"{_linkaddr(nd, sha, hln)} at {paddr(spa)}")
    else:
        nd.default(bp, caplen)
        return
    nd.p(f", length {length}")

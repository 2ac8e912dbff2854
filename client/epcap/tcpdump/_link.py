"""Link layers: Ethernet (with VLAN tags), Linux cooked v1 and v2, raw IP, BSD loopback."""

from __future__ import annotations

import socket
from collections.abc import Callable

from ._ip import arp, ip, ip6
from ._nd import (
    ETHERTYPE_ARP,
    ETHERTYPE_IP,
    ETHERTYPE_IPV6,
    ETHERTYPE_NAMES,
    ETHERTYPE_REVARP,
    VLAN_TYPES,
    Nd,
)

# Link layers ---------------------------------------------------------------

LinkPrinter = Callable[[Nd, int, int], None]


def _ether_type(nd: Nd, ethertype: int) -> None:
    name = ETHERTYPE_NAMES.get(ethertype)
    if not nd.o.quick:
        nd.p(f"ethertype {name or 'Unknown'} (0x{ethertype:04x})")
    else:
        nd.p(name or f"Unknown Ethertype (0x{ethertype:04x})")


def _tci(tag: int) -> str:
    return f"vlan {tag & 0xFFF}, p {tag >> 13}" + (", DEI" if tag & 0x1000 else "")


def _ether_link(nd: Nd, dlt: int, length: int) -> None:
    nd.proto = "ether"
    nd.ll_hdr_len += _ether(nd, 0, length, len(nd.data))


def _ether(nd: Nd, off: int, length: int, caplen: int) -> int:
    """An Ethernet frame and what it carries; returns its header length."""
    if length < caplen:
        nd.p(f"[length {length} < caplen {caplen}]")
        nd.invalid()
        return length
    if caplen < 14:
        nd.trunc()
        return caplen
    orig_length = length
    dst, src = off, off + 6
    length, caplen, p, hdrlen = length - 12, caplen - 12, off + 12, 12
    if nd.o.link:
        nd.p(f"{nd.mac(src)} > {nd.mac(dst)}, ")
    length_type = nd.u2(p)
    length, caplen, p, hdrlen = length - 2, caplen - 2, p + 2, hdrlen + 2
    printed_length = False
    while length_type in VLAN_TYPES:
        if caplen < 4 or length < 4:
            nd.proto = "vlan"
            nd.trunc()
            return hdrlen + min(caplen, length) if caplen < 4 else hdrlen + length
        if nd.o.link:
            tag = nd.u2(p)
            _ether_type(nd, length_type)
            nd.p(f", length {orig_length}: " if not printed_length else ", ")
            printed_length = True
            nd.p(f"{_tci(tag)}, ")
        length_type = nd.u2(p + 2)
        length, caplen, p, hdrlen = length - 4, caplen - 4, p + 4, hdrlen + 4
    if length_type <= 1500:  # an 802.3 length: LLC follows, not taken apart here
        if length_type < length:
            length = length_type
            caplen = min(caplen, length)
        nd.push(p, length)
        if nd.o.link:
            nd.p("802.3")
            if not printed_length:
                nd.p(f", length {length}: ")
        else:
            nd.p(f"{nd.mac(src)} > {nd.mac(dst)}, 802.3, length {length}: ")
        nd.default(p, caplen)
        nd.pop()
        return hdrlen
    if nd.o.link:
        _ether_type(nd, length_type)
        nd.p(f", length {orig_length}: " if not printed_length else ", ")
    if not _ethertype(nd, length_type, p, length, caplen):
        if not nd.o.link:
            nd.p(f"{nd.mac(src)} > {nd.mac(dst)}, ")
            _ether_type(nd, length_type)
            nd.p(f", length {orig_length}: ")
        nd.default(p, caplen)
    return hdrlen


def _ethertype(nd: Nd, ethertype: int, off: int, length: int, caplen: int) -> bool:
    """The network layer of an Ethernet type; False for one not taken apart."""
    if ethertype == ETHERTYPE_IP:
        ip(nd, off, length)
    elif ethertype == ETHERTYPE_IPV6:
        ip6(nd, off, length)
    elif ethertype in (ETHERTYPE_ARP, ETHERTYPE_REVARP):
        arp(nd, off, length, caplen)
    else:
        return False
    return True


SLL_PACKET_TYPES = {0: "In", 1: "B", 2: "M", 3: "P", 4: "Out"}


def _sll_header(nd: Nd, kind: str, length: int) -> None:
    """The cooked header under -e (and for a type not taken apart)."""
    if kind == "sll":
        nd.proto = "sll"
        nd.p(f"{SLL_PACKET_TYPES.get(nd.u2(0), '?'):>3} ")
        halen, addr, protocol = nd.u2(4), 6, 14
    else:
        nd.proto = "sll2"
        nd.p(f"ifindex {nd.u4(4)} ")
        halen, addr, protocol = nd.u1(11), 12, 0
    if halen == 6:
        nd.p(f"{nd.mac(addr)} ")
    if not nd.o.quick:
        ethertype = nd.u2(protocol)
        if ethertype <= 1500:
            nd.p({1: "802.3", 4: "802.2"}.get(ethertype, f"ethertype Unknown (0x{ethertype:04x})"))
        else:
            name = ETHERTYPE_NAMES.get(ethertype, "Unknown")
            nd.p(f"ethertype {name} (0x{ethertype:04x})")
        nd.p(f", length {length}: ")


def _cooked(nd: Nd, dlt: int, length: int) -> None:
    kind, hdrlen = ("sll", 16) if dlt == 113 else ("sll2", 20)
    nd.proto = kind
    caplen = len(nd.data)
    nd.check(0, hdrlen)
    if kind == "sll2":
        index = nd.u4(4)
        try:
            name = socket.if_indextoname(index)
        except OSError:
            name = "?"
        nd.p(f"{name:<5} {SLL_PACKET_TYPES.get(nd.u1(10), '?'):<3} ")
    if nd.o.link:
        _sll_header(nd, kind, length)
    hatype = nd.u2(2) if kind == "sll" else nd.u2(8)
    ethertype = nd.u2(14) if kind == "sll" else nd.u2(0)
    length, caplen, p = length - hdrlen, caplen - hdrlen, hdrlen
    if hatype == 803:  # 802.11 radiotap: not taken apart here
        nd.ll_hdr_len += hdrlen
        nd.default(p, caplen)
        return
    while True:
        if ethertype <= 1500:
            nd.default(p, caplen)
            break
        if ethertype == 0x8100:
            if caplen < 4:
                nd.proto = "vlan"
                nd.trunc()
                nd.ll_hdr_len += hdrlen + caplen
                return
            if nd.o.link:
                nd.p(f"{_tci(nd.u2(p))}, ")
            ethertype = nd.u2(p + 2)
            if ethertype <= 1500:
                ethertype = 4  # 802.2
            if not nd.o.quick:
                nd.p(f"ethertype {ETHERTYPE_NAMES.get(ethertype, 'Unknown')}, ")
            p, length, caplen, hdrlen = p + 4, length - 4, caplen - 4, hdrlen + 4
            continue
        if not _ethertype(nd, ethertype, p, length, caplen):
            if not nd.o.link:
                _sll_header(nd, kind, length + (16 if kind == "sll" else 20))
            nd.default(p, caplen)
        break
    nd.ll_hdr_len += hdrlen


def _raw_link(nd: Nd, dlt: int, length: int) -> None:
    nd.proto = "raw"
    if nd.o.link:
        nd.p("ip: ")
    nd.proto = "ipn"
    if length < 1:
        nd.p(f"truncated-ip {length}")
        return
    version = nd.u1(0) & 0xF0
    if version == 0x40:
        ip(nd, 0, length)
    elif version == 0x60:
        ip6(nd, 0, length)
    else:
        nd.p(f"unknown ip {version >> 4}")


BSD_FAMILIES = {
    2: "IPv4",
    6: "NS",
    7: "ISO",
    16: "Appletalk",
    23: "IPX",
    24: "IPv6",
    28: "IPv6",
    30: "IPv6",
}


def _null_link(nd: Nd, dlt: int, length: int) -> None:
    """BSD loopback (DLT_NULL, DLT_LOOP): a 4-byte address family, in
    whichever byte order the capturing host wrote it."""
    nd.proto = "null"
    nd.check(0, 4)
    nd.ll_hdr_len += 4
    family = int.from_bytes(nd.data[:4], "little")
    if family & 0xFFFF0000:
        family = int.from_bytes(nd.data[:4], "big")

    def header(total: int) -> None:
        name = BSD_FAMILIES.get(family)
        if not nd.o.quick:
            nd.p(f"AF {name or 'Unknown'} ({family})")
        else:
            nd.p(name or f"Unknown AF {family}")
        nd.p(f", length {total}: ")

    if nd.o.link:
        header(length)
    if family == 2:
        ip(nd, 4, length - 4)
    elif family in (24, 28, 30):
        ip6(nd, 4, length - 4)
    else:
        if not nd.o.link:
            header(length)
        nd.default(4, len(nd.data) - 4)


def unknown_link(nd: Nd, dlt: int, length: int) -> None:
    """A link type tcpdump decodes and this printer does not."""
    nd.p(f"[DLT {dlt} not decoded], length {length}")
    nd.default(0, len(nd.data))


LINKS: dict[int, LinkPrinter] = {
    0: _null_link,
    108: _null_link,
    1: _ether_link,
    113: _cooked,
    276: _cooked,
    12: _raw_link,
    14: _raw_link,
    101: _raw_link,
    228: _raw_link,
    229: _raw_link,
}

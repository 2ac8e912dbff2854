"""Capture-file fixtures for the epcap tests.

This module has three parts:

* packet builders that return ``bytes`` with correct IPv4 header checksums
  and correct UDP/TCP/ICMP/ICMPv6 checksums;
* writers for classic pcap and pcapng files;
* a reference reader that asks libpcap itself (through ``ctypes``) what it
  reads from a file, which is the ground truth the tests compare against
  (but for a classic pcap file's times, which libpcap 1.10.3 reads signed:
  those are the file's own unsigned fields, :func:`libpcap_read`).

A packet record is the tuple ``(time_ns, length, data)``: ``time_ns`` is the
capture time in nanoseconds since the Unix epoch, ``length`` is the original
length of the packet on the wire and ``data`` is the captured bytes
(``len(data) <= length``).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import datetime
import functools
import ipaddress
import os
import struct
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from epcap import RawTime

Record = tuple[int, int, bytes]
"""One packet: ``(time_ns, wire_length, captured_bytes)``."""
FieldRecord = tuple[int, int, int, bytes]
"""One classic pcap record as the file holds it: ``(seconds, fraction,
wire_length, captured_bytes)``, the time stamp's two unsigned 32-bit fields,
the fraction in the file's unit (microseconds or nanoseconds), valid or not."""

LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101
LINKTYPE_LINUX_SLL = 113
LINKTYPE_IPV4 = 228
LINKTYPE_IPV6 = 229
LINKTYPE_LINUX_SLL2 = 276

ETHERTYPE_IPV4 = 0x0800
ETHERTYPE_ARP = 0x0806
ETHERTYPE_VLAN = 0x8100
ETHERTYPE_QINQ = 0x88A8
ETHERTYPE_IPV6 = 0x86DD

IPPROTO_HOPOPTS = 0
IPPROTO_ICMP = 1
IPPROTO_TCP = 6
IPPROTO_UDP = 17
IPPROTO_ROUTING = 43
IPPROTO_FRAGMENT = 44
IPPROTO_ICMPV6 = 58
IPPROTO_NONE = 59
IPPROTO_DSTOPTS = 60

MAC_A = bytes.fromhex("020000000001")
"""Fixed locally administered MAC used as the default source."""
MAC_B = bytes.fromhex("020000000002")
"""Fixed locally administered MAC used as the default destination."""
MAC_BROADCAST = b"\xff" * 6

PCAP_MAGIC_MICRO = 0xA1B2C3D4
PCAP_MAGIC_MICRO_PATCHED = 0xA1B2CD34
"""Alexey Kuznetzov's patched libpcap: microseconds, longer record headers."""
PCAP_MAGIC_NANO = 0xA1B23C4D
PCAPNG_SHB = 0x0A0D0D0A
PCAPNG_IDB = 0x00000001
PCAPNG_EPB = 0x00000006
PCAPNG_BYTE_ORDER_MAGIC = 0x1A2B3C4D
PCAPNG_UNKNOWN_BLOCK = 0x80000123
"""A block type in the local-use range that readers must skip."""

_TCP_FLAG_BITS = {
    "F": 0x01,
    "S": 0x02,
    "R": 0x04,
    "P": 0x08,
    "A": 0x10,
    "U": 0x20,
    "E": 0x40,  # ECE, as tcpdump letters it
    "W": 0x80,  # CWR
}


# ---------------------------------------------------------------------------
# Checksums and addresses
# ---------------------------------------------------------------------------


def ones_complement_sum(data: bytes) -> int:
    """Return the 16-bit one's-complement sum of ``data`` (odd length padded)."""
    if len(data) % 2:
        data += b"\x00"
    total = 0
    for (word,) in struct.iter_unpack("!H", data):
        total += word
    while total > 0xFFFF:
        total = (total & 0xFFFF) + (total >> 16)
    return total


def internet_checksum(data: bytes) -> int:
    """Return the Internet checksum (RFC 1071) of ``data``."""
    return ~ones_complement_sum(data) & 0xFFFF


def _addr(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    return ipaddress.ip_address(text)


def _same_family(src: str, dst: str) -> tuple[bytes, bytes, int]:
    a = _addr(src)
    b = _addr(dst)
    if a.version != b.version:
        raise ValueError(f"address families differ: {src!r} and {dst!r}")
    return a.packed, b.packed, a.version


def pseudo_header(src: str, dst: str, proto: int, length: int) -> bytes:
    """Return the IPv4 or IPv6 pseudo-header used by upper-layer checksums."""
    s, d, version = _same_family(src, dst)
    if version == 4:
        return s + d + struct.pack("!BBH", 0, proto, length)
    return s + d + struct.pack("!IxxxB", length, proto)


def _transport_checksum(src: str, dst: str, proto: int, segment: bytes) -> int:
    return internet_checksum(pseudo_header(src, dst, proto, len(segment)) + segment)


def _mac(value: bytes, name: str) -> bytes:
    if len(value) != 6:
        raise ValueError(f"{name} must be 6 bytes, got {len(value)}")
    return value


# ---------------------------------------------------------------------------
# Packet builders
# ---------------------------------------------------------------------------


def ether(
    dst: bytes,
    src: bytes,
    ethertype: int,
    payload: bytes,
    vlan: int | None = None,
    *,
    tags: Sequence[tuple[int, int]] = (),
) -> bytes:
    """Return an Ethernet II frame; with ``vlan`` an 802.1Q tag is inserted,
    and after it one tag per ``(tpid, tci)`` of ``tags``, outermost first
    (``[(ETHERTYPE_QINQ, 100), (ETHERTYPE_VLAN, 10)]`` for Q-in-Q)."""
    header = _mac(dst, "dst") + _mac(src, "src")
    if vlan is not None:
        if not 0 <= vlan <= 0xFFF:
            raise ValueError(f"VLAN id out of range: {vlan}")
        header += struct.pack("!HH", ETHERTYPE_VLAN, vlan)
    for tpid, tci in tags:
        header += struct.pack("!HH", tpid, tci)
    return header + struct.pack("!H", ethertype) + payload


def ipv4_option(kind: int, data: bytes = b"", *, length: int | None = None) -> bytes:
    """Return one IPv4 option: EOL (0) and NOP (1) are a lone byte, the
    others kind, length (``length`` overrides the right one) and ``data``."""
    if kind in (0, 1):
        return bytes([kind])
    return bytes([kind, 2 + len(data) if length is None else length]) + data


def ipv4(
    src: str,
    dst: str,
    proto: int,
    payload: bytes,
    ttl: int = 64,
    ident: int = 0,
    *,
    tos: int = 0,
    df: bool = False,
    mf: bool = False,
    offset: int = 0,
    options: bytes = b"",
    total_length: int | None = None,
    ihl: int | None = None,
    version: int = 4,
    checksum: int | None = None,
) -> bytes:
    """Return an IPv4 packet with a valid header checksum.

    ``offset`` is the fragment offset in bytes (a multiple of 8), ``df`` and
    ``mf`` the flags; ``options`` (see :func:`ipv4_option`) are padded with
    zeros (EOL) to a multiple of 4 bytes.  ``total_length``, ``ihl`` (in
    32-bit words), ``version`` and ``checksum`` replace the right values,
    for malformed packets.
    """
    s = ipaddress.IPv4Address(src).packed
    d = ipaddress.IPv4Address(dst).packed
    if offset % 8 or not 0 <= offset <= 0x1FFF * 8:
        raise ValueError(f"fragment offset must be a multiple of 8 below 65536: {offset}")
    options = _pad4(options)
    total = 20 + len(options) + len(payload) if total_length is None else total_length
    if total > 0xFFFF:
        raise ValueError("IPv4 packet too long")
    words = 5 + len(options) // 4 if ihl is None else ihl
    frag = (0x4000 if df else 0) | (0x2000 if mf else 0) | offset // 8
    first = (version << 4) | words
    header = struct.pack("!BBHHHBBH4s4s", first, tos, total, ident, frag, ttl, proto, 0, s, d)
    header += options
    if checksum is None:
        checksum = internet_checksum(header)
    return header[:10] + struct.pack("!H", checksum) + header[12:] + payload


def ipv6(
    src: str,
    dst: str,
    next_header: int,
    payload: bytes,
    hop_limit: int = 64,
    *,
    traffic_class: int = 0,
    flow_label: int = 0,
    payload_length: int | None = None,
    version: int = 6,
) -> bytes:
    """Return an IPv6 packet: the fixed 40-byte header, then ``payload``
    (extension headers first, if any: see :func:`ipv6_options_header` and
    the others); ``payload_length`` and ``version`` replace the right ones."""
    s = ipaddress.IPv6Address(src).packed
    d = ipaddress.IPv6Address(dst).packed
    if len(payload) > 0xFFFF:
        raise ValueError("IPv6 payload too long")
    plen = len(payload) if payload_length is None else payload_length
    first = (version << 28) | (traffic_class << 20) | flow_label
    header = struct.pack("!IHBB16s16s", first, plen, next_header, hop_limit, s, d)
    return header + payload


def ipv6_option(kind: int, data: bytes = b"") -> bytes:
    """Return one option of a hop-by-hop or destination options header
    (Pad1, kind 0, is a lone byte)."""
    if kind == 0:
        return b"\x00"
    return bytes([kind, len(data)]) + data


def ipv6_options_header(next_header: int, options: bytes = b"") -> bytes:
    """Return a hop-by-hop or destination options header holding
    ``options`` (from :func:`ipv6_option`), padded with Pad1/PadN to a
    multiple of 8 bytes."""
    pad = -(2 + len(options)) % 8
    if pad == 1:
        options += ipv6_option(0)
    elif pad:
        options += ipv6_option(1, b"\x00" * (pad - 2))
    return bytes([next_header, (2 + len(options)) // 8 - 1]) + options


def ipv6_routing_header(
    next_header: int,
    addresses: Sequence[str],
    segments_left: int | None = None,
    routing_type: int = 0,
) -> bytes:
    """Return a routing header of ``routing_type`` 0 (or 2) listing
    ``addresses``; ``segments_left`` defaults to their number."""
    left = len(addresses) if segments_left is None else segments_left
    packed = b"".join(ipaddress.IPv6Address(a).packed for a in addresses)
    head = struct.pack("!BBBBI", next_header, 2 * len(addresses), routing_type, left, 0)
    return head + packed


def ipv6_fragment_header(next_header: int, offset: int, more: bool, ident: int) -> bytes:
    """Return a fragment header: ``offset`` in bytes (a multiple of 8)."""
    if offset % 8 or not 0 <= offset <= 0x1FFF * 8:
        raise ValueError(f"fragment offset must be a multiple of 8 below 65536: {offset}")
    return struct.pack("!BBHI", next_header, 0, offset | int(more), ident)


def udp(
    src: str,
    dst: str,
    sport: int,
    dport: int,
    payload: bytes,
    *,
    length: int | None = None,
    checksum: int | None = None,
) -> bytes:
    """Return a UDP datagram whose checksum covers the v4 or v6 pseudo-header
    (``dst`` is the final destination, the last of a routing header's).
    ``length`` replaces the length field (the checksum is computed with it);
    ``checksum`` replaces the right one (0: none)."""
    ulen = 8 + len(payload) if length is None else length
    segment = struct.pack("!HHHH", sport, dport, ulen, 0) + payload
    if checksum is None:
        checksum = _transport_checksum(src, dst, IPPROTO_UDP, segment) or 0xFFFF
    return segment[:6] + struct.pack("!H", checksum) + segment[8:]


def tcp_flags(flags: str) -> int:
    """Return the TCP flag bits for letters from ``"FSRPAUEW"`` (e.g. ``"SA"``;
    E is ECE and W is CWR, as tcpdump prints them)."""
    bits = 0
    for letter in flags.upper():
        if letter not in _TCP_FLAG_BITS:
            raise ValueError(f"unknown TCP flag {letter!r}")
        bits |= _TCP_FLAG_BITS[letter]
    return bits


TCP_EOL = b"\x00"
TCP_NOP = b"\x01"


def tcp_option(kind: int, data: bytes = b"", *, length: int | None = None) -> bytes:
    """Return one TCP option: EOL (0) and NOP (1) are a lone byte, the others
    kind, length (``length`` overrides the right one) and ``data``."""
    if kind in (0, 1):
        return bytes([kind])
    return bytes([kind, 2 + len(data) if length is None else length]) + data


def tcp_mss(mss: int) -> bytes:
    """Return the maximum segment size option."""
    return tcp_option(2, struct.pack("!H", mss))


def tcp_wscale(shift: int) -> bytes:
    """Return the window scale option."""
    return tcp_option(3, bytes([shift]))


def tcp_sack_permitted() -> bytes:
    """Return the SACK-permitted option."""
    return tcp_option(4)


def tcp_sack(*blocks: tuple[int, int]) -> bytes:
    """Return a SACK option with ``(left, right)`` edge blocks."""
    return tcp_option(5, b"".join(struct.pack("!II", a, b) for a, b in blocks))


def tcp_timestamps(value: int, echo: int) -> bytes:
    """Return the timestamps option."""
    return tcp_option(8, struct.pack("!II", value, echo))


def tcp(
    src: str,
    dst: str,
    sport: int,
    dport: int,
    payload: bytes = b"",
    seq: int = 0,
    ack: int = 0,
    flags: str = "S",
    window: int = 65535,
    *,
    options: bytes = b"",
    urgent: int = 0,
    offset: int | None = None,
    checksum: int | None = None,
) -> bytes:
    """Return a TCP segment with a pseudo-header checksum.

    ``options`` (from :func:`tcp_option` and the others) are padded with
    zeros (EOL) to a multiple of 4 bytes.  ``offset`` (the data offset, in
    32-bit words) and ``checksum`` replace the right values.
    """
    options = _pad4(options)
    words = 5 + len(options) // 4 if offset is None else offset
    segment = (
        struct.pack(
            "!HHIIHHHH",
            sport,
            dport,
            seq & 0xFFFFFFFF,
            ack & 0xFFFFFFFF,
            (words << 12) | tcp_flags(flags),
            window,
            0,
            urgent,
        )
        + options
        + payload
    )
    if checksum is None:
        checksum = _transport_checksum(src, dst, IPPROTO_TCP, segment)
    return segment[:16] + struct.pack("!H", checksum) + segment[18:]


def icmp(
    icmp_type: int,
    code: int,
    rest: bytes = b"\x00" * 4,
    body: bytes = b"",
    *,
    checksum: int | None = None,
) -> bytes:
    """Return an ICMP message: type, code, checksum, the 4 bytes ``rest`` of
    the header (id and sequence, pointer, gateway, MTU, ...) and ``body``
    (for an error, the start of the packet it is about)."""
    if len(rest) != 4:
        raise ValueError(f"the rest of the ICMP header is 4 bytes, got {len(rest)}")
    msg = struct.pack("!BBH", icmp_type, code, 0) + rest + body
    if checksum is None:
        checksum = internet_checksum(msg)
    return msg[:2] + struct.pack("!H", checksum) + msg[4:]


def icmp_echo(ident: int, seq: int, payload: bytes, *, reply: bool = False) -> bytes:
    """Return an ICMP echo request (type 8), or echo reply (type 0) if ``reply``."""
    return icmp(0 if reply else 8, 0, struct.pack("!HH", ident, seq), payload)


def icmpv6(
    src: str,
    dst: str,
    icmp_type: int,
    code: int,
    body: bytes = b"",
    *,
    checksum: int | None = None,
) -> bytes:
    """Return an ICMPv6 message: type, code, checksum over the pseudo-header
    (``dst`` the final destination), then ``body`` (all that follows)."""
    msg = struct.pack("!BBH", icmp_type, code, 0) + body
    if checksum is None:
        checksum = _transport_checksum(src, dst, IPPROTO_ICMPV6, msg)
    return msg[:2] + struct.pack("!H", checksum) + msg[4:]


def icmpv6_echo(
    src: str, dst: str, ident: int, seq: int, payload: bytes, *, reply: bool = False
) -> bytes:
    """Return an ICMPv6 echo request (128) or reply (129) with its checksum."""
    return icmpv6(src, dst, 129 if reply else 128, 0, struct.pack("!HH", ident, seq) + payload)


def nd_option(kind: int, data: bytes) -> bytes:
    """Return a neighbour discovery option, zero-padded to a multiple of 8
    bytes (1 source and 2 target link-layer address, 3 prefix, 5 MTU)."""
    body = bytes([kind, 0]) + data
    body += b"\x00" * (-len(body) % 8)
    return bytes([kind, len(body) // 8]) + body[2:]


def _protocol_address(value: str | bytes) -> bytes:
    return value if isinstance(value, bytes) else _addr(value).packed


def arp(
    op: int,
    sha: bytes,
    spa: str | bytes,
    tha: bytes,
    tpa: str | bytes,
    *,
    hrd: int = 1,
    pro: int = ETHERTYPE_IPV4,
) -> bytes:
    """Return an ARP packet of any hardware and protocol: the address
    lengths are those of ``sha`` and ``spa`` (an address or raw bytes)."""
    sender, target = _protocol_address(spa), _protocol_address(tpa)
    head = struct.pack("!HHBBH", hrd, pro, len(sha), len(sender), op)
    return head + sha + sender + tha + target


def _arp(op: int, sha: bytes, spa: str, tha: bytes, tpa: str) -> bytes:
    return arp(op, _mac(sha, "sha"), ipaddress.IPv4Address(spa).packed, _mac(tha, "tha"), tpa)


def arp_request(sha: bytes, spa: str, tpa: str) -> bytes:
    """Return an Ethernet/IPv4 ARP request payload ("who has tpa, tell spa")."""
    return _arp(1, sha, spa, b"\x00" * 6, tpa)


def arp_reply(sha: bytes, spa: str, tha: bytes, tpa: str) -> bytes:
    """Return an Ethernet/IPv4 ARP reply payload ("spa is at sha" to tha/tpa)."""
    return _arp(2, sha, spa, tha, tpa)


def sll(
    payload: bytes,
    protocol: int,
    pkttype: int = 0,
    addr: bytes = b"\x00" * 6,
    *,
    hatype: int = 1,
) -> bytes:
    """Return ``payload`` behind a 16-byte Linux cooked (SLL v1) header."""
    if len(addr) > 8:
        raise ValueError("SLL link-layer address is at most 8 bytes")
    return struct.pack("!HHH8sH", pkttype, hatype, len(addr), addr, protocol) + payload


def sll2(
    payload: bytes,
    protocol: int,
    ifindex: int,
    pkttype: int = 0,
    addr: bytes = b"\x00" * 6,
    *,
    hatype: int = 1,
) -> bytes:
    """Return ``payload`` behind a 20-byte Linux cooked v2 (SLL2) header."""
    if len(addr) > 8:
        raise ValueError("SLL2 link-layer address is at most 8 bytes")
    header = struct.pack("!HHIHBB8s", protocol, 0, ifindex, hatype, pkttype, len(addr), addr)
    return header + payload


def eth_ipv4_udp(
    src: str,
    dst: str,
    sport: int,
    dport: int,
    payload: bytes,
    vlan: int | None = None,
    *,
    src_mac: bytes = MAC_A,
    dst_mac: bytes = MAC_B,
    ident: int = 0,
) -> bytes:
    """Return an Ethernet/IPv4/UDP frame between the fixed MACs."""
    datagram = udp(src, dst, sport, dport, payload)
    packet = ipv4(src, dst, IPPROTO_UDP, datagram, ident=ident)
    return ether(dst_mac, src_mac, ETHERTYPE_IPV4, packet, vlan)


def eth_ipv4_tcp(
    src: str,
    dst: str,
    sport: int,
    dport: int,
    payload: bytes = b"",
    seq: int = 0,
    ack: int = 0,
    flags: str = "S",
    vlan: int | None = None,
    *,
    src_mac: bytes = MAC_A,
    dst_mac: bytes = MAC_B,
    ident: int = 0,
) -> bytes:
    """Return an Ethernet/IPv4/TCP frame between the fixed MACs."""
    segment = tcp(src, dst, sport, dport, payload, seq, ack, flags)
    packet = ipv4(src, dst, IPPROTO_TCP, segment, ident=ident)
    return ether(dst_mac, src_mac, ETHERTYPE_IPV4, packet, vlan)


def eth_ipv6_udp(
    src: str,
    dst: str,
    sport: int,
    dport: int,
    payload: bytes,
    vlan: int | None = None,
    *,
    src_mac: bytes = MAC_A,
    dst_mac: bytes = MAC_B,
) -> bytes:
    """Return an Ethernet/IPv6/UDP frame between the fixed MACs."""
    datagram = udp(src, dst, sport, dport, payload)
    packet = ipv6(src, dst, IPPROTO_UDP, datagram)
    return ether(dst_mac, src_mac, ETHERTYPE_IPV6, packet, vlan)


# ---------------------------------------------------------------------------
# Writers
# ---------------------------------------------------------------------------


def _check_record(record: Record) -> Record:
    time_ns, length, data = record
    if time_ns < 0:
        raise ValueError(f"negative timestamp: {time_ns}")
    if length < len(data):
        raise ValueError(f"wire length {length} < captured length {len(data)}")
    if length > 0xFFFFFFFF:
        raise ValueError(f"wire length {length} does not fit in 32 bits")
    return time_ns, length, bytes(data)


def pcap_bytes(
    records: Iterable[Record],
    *,
    linktype: int,
    nano: bool = False,
    big_endian: bool = False,
    snaplen: int = 262144,
) -> bytes:
    """Return a classic pcap file (v2.4) holding ``records``.

    With ``nano=False`` the microsecond magic is used and each time is written
    as ``time_ns // 1000`` microseconds; with ``nano=True`` the nanosecond
    magic is used and times are exact.
    """
    fields: list[FieldRecord] = []
    for record in records:
        time_ns, length, data = _check_record(record)
        if nano:
            sec, frac = divmod(time_ns, 10**9)
        else:
            sec, frac = divmod(time_ns // 1000, 10**6)
        if sec > 0xFFFFFFFF:
            raise ValueError(f"timestamp {time_ns} does not fit in pcap")
        fields.append((sec, frac, length, data))
    return pcap_fields_bytes(
        fields, linktype=linktype, nano=nano, big_endian=big_endian, snaplen=snaplen
    )


def pcap_fields_bytes(
    records: Iterable[FieldRecord],
    *,
    linktype: int,
    nano: bool = False,
    big_endian: bool = False,
    snaplen: int = 262144,
) -> bytes:
    """Return a classic pcap file (v2.4) whose records hold exactly the
    given time stamp fields (:data:`FieldRecord`): any unsigned 32-bit
    values, such as seconds past 2038 or a fraction of a second or more,
    which :func:`pcap_bytes` cannot express."""
    order = ">" if big_endian else "<"
    magic = PCAP_MAGIC_NANO if nano else PCAP_MAGIC_MICRO
    out = [struct.pack(order + "IHHiIII", magic, 2, 4, 0, 0, snaplen, linktype)]
    for sec, frac, length, data in records:
        _check_record((0, length, data))
        out.append(struct.pack(order + "IIII", sec, frac, len(data), length))
        out.append(data)
    return b"".join(out)


def _pad4(data: bytes) -> bytes:
    return data + b"\x00" * (-len(data) % 4)


def _pcapng_option(order: str, code: int, value: bytes) -> bytes:
    return struct.pack(order + "HH", code, len(value)) + _pad4(value)


def _pcapng_options(order: str, options: list[tuple[int, bytes]]) -> bytes:
    if not options:
        return b""
    body = b"".join(_pcapng_option(order, code, value) for code, value in options)
    return body + struct.pack(order + "HH", 0, 0)


def _pcapng_block(order: str, block_type: int, body: bytes) -> bytes:
    body = _pad4(body)
    total = 12 + len(body)
    return struct.pack(order + "II", block_type, total) + body + struct.pack(order + "I", total)


def pcapng_bytes(
    records: Iterable[Record],
    *,
    linktype: int,
    tsresol: int = 9,
    big_endian: bool = False,
    snaplen: int = 262144,
    unknown_block: bool = False,
    comment: str | None = None,
) -> bytes:
    """Return a pcapng file: SHB, one IDB and one EPB per record.

    Timestamps are written in units of ``10**-tsresol`` seconds (truncated);
    the IDB carries an ``if_tsresol`` option unless ``tsresol == 6``, the
    pcapng default.  ``unknown_block`` inserts a local-use block
    (:data:`PCAPNG_UNKNOWN_BLOCK`) after the first packet (or after the IDB
    when there are no packets); ``comment`` adds an ``opt_comment`` to the SHB.
    """
    if not 0 <= tsresol <= 19:
        raise ValueError(f"tsresol must be a power of ten exponent 0..19: {tsresol}")
    order = ">" if big_endian else "<"

    shb_options: list[tuple[int, bytes]] = []
    if comment is not None:
        shb_options.append((1, comment.encode("utf-8")))
    shb_body = struct.pack(order + "IHHq", PCAPNG_BYTE_ORDER_MAGIC, 1, 0, -1)
    out = [_pcapng_block(order, PCAPNG_SHB, shb_body + _pcapng_options(order, shb_options))]

    idb_options: list[tuple[int, bytes]] = []
    if tsresol != 6:
        idb_options.append((9, bytes([tsresol])))
    idb_body = struct.pack(order + "HHI", linktype, 0, snaplen)
    out.append(_pcapng_block(order, PCAPNG_IDB, idb_body + _pcapng_options(order, idb_options)))

    unknown = _pcapng_block(order, PCAPNG_UNKNOWN_BLOCK, b"epcap test: skip this block\x00")
    inserted = False
    for record in records:
        time_ns, length, data = _check_record(record)
        scale = 9 - tsresol
        ts = time_ns // 10**scale if scale >= 0 else time_ns * 10**-scale
        if ts > 0xFFFFFFFFFFFFFFFF:
            raise ValueError(f"timestamp {time_ns} overflows 64 bits at tsresol {tsresol}")
        epb = struct.pack(order + "IIIII", 0, ts >> 32, ts & 0xFFFFFFFF, len(data), length)
        out.append(_pcapng_block(order, PCAPNG_EPB, epb + data))
        if unknown_block and not inserted:
            out.append(unknown)
            inserted = True
    if unknown_block and not inserted:
        out.append(unknown)
    return b"".join(out)


def write_pcap(
    path: str | os.PathLike[str],
    records: Iterable[Record],
    *,
    linktype: int,
    nano: bool = False,
    big_endian: bool = False,
    snaplen: int = 262144,
) -> None:
    """Write ``records`` to ``path`` as a classic pcap file (see :func:`pcap_bytes`)."""
    Path(path).write_bytes(
        pcap_bytes(
            records,
            linktype=linktype,
            nano=nano,
            big_endian=big_endian,
            snaplen=snaplen,
        )
    )


def write_pcapng(
    path: str | os.PathLike[str],
    records: Iterable[Record],
    *,
    linktype: int,
    tsresol: int = 9,
    big_endian: bool = False,
    snaplen: int = 262144,
    unknown_block: bool = False,
    comment: str | None = None,
) -> None:
    """Write ``records`` to ``path`` as a pcapng file (see :func:`pcapng_bytes`)."""
    Path(path).write_bytes(
        pcapng_bytes(
            records,
            linktype=linktype,
            tsresol=tsresol,
            big_endian=big_endian,
            snaplen=snaplen,
            unknown_block=unknown_block,
            comment=comment,
        )
    )


# ---------------------------------------------------------------------------
# Reference reader: libpcap through ctypes
# ---------------------------------------------------------------------------

PCAP_TSTAMP_PRECISION_MICRO = 0
PCAP_TSTAMP_PRECISION_NANO = 1
PCAP_ERROR = -1
PCAP_ERROR_BREAK = -2
PCAP_ERRBUF_SIZE = 256


class LibpcapError(Exception):
    """An error reported by libpcap, with whatever was read before it.

    ``datalink`` is ``None`` when the file could not be opened at all;
    ``records`` holds the packets libpcap returned before the error.
    """

    def __init__(
        self,
        message: str,
        *,
        datalink: int | None = None,
        records: list[Record] | None = None,
    ) -> None:
        """Create the error with libpcap's ``message``."""
        super().__init__(message)
        self.message = message
        self.datalink = datalink
        self.records: list[Record] = records if records is not None else []


class _Timeval(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_usec", ctypes.c_long)]


class _PcapPkthdr(ctypes.Structure):
    _fields_ = [
        ("ts", _Timeval),
        ("caplen", ctypes.c_uint32),
        ("len", ctypes.c_uint32),
    ]


@functools.cache
def _libpcap() -> ctypes.CDLL:
    lib = ctypes.CDLL(ctypes.util.find_library("pcap") or "libpcap.so.0.8")
    lib.pcap_open_offline_with_tstamp_precision.argtypes = [
        ctypes.c_char_p,
        ctypes.c_uint,
        ctypes.c_char_p,
    ]
    lib.pcap_open_offline_with_tstamp_precision.restype = ctypes.c_void_p
    lib.pcap_next_ex.argtypes = [
        ctypes.c_void_p,
        ctypes.POINTER(ctypes.POINTER(_PcapPkthdr)),
        ctypes.POINTER(ctypes.POINTER(ctypes.c_ubyte)),
    ]
    lib.pcap_next_ex.restype = ctypes.c_int
    lib.pcap_datalink.argtypes = [ctypes.c_void_p]
    lib.pcap_datalink.restype = ctypes.c_int
    lib.pcap_geterr.argtypes = [ctypes.c_void_p]
    lib.pcap_geterr.restype = ctypes.c_char_p
    lib.pcap_close.argtypes = [ctypes.c_void_p]
    lib.pcap_close.restype = None
    lib.pcap_datalink_val_to_name.argtypes = [ctypes.c_int]
    lib.pcap_datalink_val_to_name.restype = ctypes.c_char_p
    lib.pcap_file.argtypes = [ctypes.c_void_p]
    lib.pcap_file.restype = ctypes.c_void_p
    return lib


@functools.cache
def _ftell() -> Any:
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    libc.ftell.argtypes = [ctypes.c_void_p]
    libc.ftell.restype = ctypes.c_long
    return libc.ftell


_PCAP_UNITS = {PCAP_MAGIC_MICRO: 1000, PCAP_MAGIC_MICRO_PATCHED: 1000, PCAP_MAGIC_NANO: 1}


def pcap_time_format(head: bytes) -> tuple[str, int] | None:
    """For a classic pcap file's first 4 bytes, its byte order (``"<"`` or
    ``">"``) and the nanoseconds in a unit of its fraction field (1000 or
    1); None for anything else (pcapng, say)."""
    for order in "<>":
        if len(head) >= 4 and (unit := _PCAP_UNITS.get(struct.unpack_from(order + "I", head)[0])):
            return order, unit
    return None


def pcap_time(sec: int, frac: int, unit: int, precision: str) -> int:
    """The time of a pcap record's fields, as epcap delivers it: the
    fraction in nanoseconds (cut to whole microseconds for ``"micro"``); a
    fraction of a second or more is an :class:`epcap.RawTime`."""
    frac_ns = frac * unit
    if precision == "micro":
        frac_ns = frac_ns // 1000 * 1000
    return sec * 10**9 + frac_ns if frac_ns < 10**9 else RawTime(sec, frac_ns)


def time_key(time_ns: int) -> tuple[int, ...]:
    """A time to compare strictly: an int, or a RawTime with its fields
    (a RawTime equals the int it sums to, which an int carried into the
    seconds would equal too)."""
    if isinstance(time_ns, RawTime):
        return (time_ns, time_ns.seconds, time_ns.fraction)
    return (time_ns,)


def _text(raw: bytes | None) -> str:
    return raw.decode("utf-8", "replace") if raw else ""


def libpcap_read(path: str | os.PathLike[str], precision: str = "nano") -> tuple[int, list[Record]]:
    """Read a capture file with libpcap and return ``(datalink, records)``.

    ``precision`` is ``"nano"`` or ``"micro"``: the time-stamp precision asked
    of ``pcap_open_offline_with_tstamp_precision``.  Each record is
    ``(time_ns, wire_length, data)``; with ``"micro"`` times are whole
    microseconds.  Raises :class:`LibpcapError` when libpcap reports an error;
    the exception keeps ``datalink`` and the ``records`` read before it.

    libpcap decides which records a file holds, and their lengths and
    bytes.  The times of a classic pcap file are not libpcap's, though:
    the file's two time fields are unsigned 32-bit values, which libpcap
    1.10.3 reads as signed and sign-extends (a time past 2038-01-19 comes
    out in 1901), and scales so extended when asked for another precision
    than the file's; libpcap 1.10.5, tcpdump 4.99.6 and epcap read them
    unsigned.  So each record's time is read from the file's bytes, at the
    offset of the header libpcap read for it (``ftell`` on libpcap's stream
    before each ``pcap_next_ex``), as :func:`pcap_time` says.  pcapng times
    are libpcap's: it computes them from 64-bit units, always valid.
    """
    if precision == "nano":
        tprec, scale = PCAP_TSTAMP_PRECISION_NANO, 1
    elif precision == "micro":
        tprec, scale = PCAP_TSTAMP_PRECISION_MICRO, 1000
    else:
        raise ValueError(f"precision must be 'nano' or 'micro', not {precision!r}")

    lib = _libpcap()
    errbuf = ctypes.create_string_buffer(PCAP_ERRBUF_SIZE)
    handle = lib.pcap_open_offline_with_tstamp_precision(os.fsencode(path), tprec, errbuf)
    if not handle:
        raise LibpcapError(_text(errbuf.value) or "pcap_open_offline failed")

    raw = Path(path).read_bytes()
    pcap = pcap_time_format(raw[:4])
    records: list[Record] = []
    try:
        datalink = int(lib.pcap_datalink(handle))
        stream = lib.pcap_file(handle)
        hdr_p = ctypes.POINTER(_PcapPkthdr)()
        data_p = ctypes.POINTER(ctypes.c_ubyte)()
        while True:
            at = int(_ftell()(stream))
            rc = int(lib.pcap_next_ex(handle, ctypes.byref(hdr_p), ctypes.byref(data_p)))
            if rc == 1:
                hdr = hdr_p.contents
                caplen = int(hdr.caplen)
                data = ctypes.string_at(data_p, caplen) if caplen else b""
                if pcap is not None:
                    order, unit = pcap
                    sec, frac = struct.unpack_from(order + "II", raw, at)
                    time_ns = pcap_time(sec, frac, unit, precision)
                else:
                    time_ns = int(hdr.ts.tv_sec) * 10**9 + int(hdr.ts.tv_usec) * scale
                records.append((time_ns, int(hdr.len), data))
            elif rc == PCAP_ERROR_BREAK:
                break
            else:
                message = _text(lib.pcap_geterr(handle))
                if rc != PCAP_ERROR:
                    message = f"pcap_next_ex returned {rc}: {message}"
                raise LibpcapError(message, datalink=datalink, records=records)
    finally:
        lib.pcap_close(handle)
    return datalink, records


def libpcap_datalink_name(dlt: int) -> str | None:
    """Return libpcap's name for a DLT value (e.g. ``"EN10MB"``), or ``None``."""
    raw = _libpcap().pcap_datalink_val_to_name(dlt)
    if raw is None:
        return None
    return str(raw.decode("ascii"))


class SavefileHeader(NamedTuple):
    """What a capture file's header says: the link type as written (a
    ``LINKTYPE_*`` value, not libpcap's DLT), the snapshot length, and
    whether times are in nanoseconds (always, for pcapng here, whose
    resolution is per interface)."""

    linktype: int
    snaplen: int
    nano: bool
    pcapng: bool


def savefile_header(path: str | os.PathLike[str]) -> SavefileHeader:
    """Read the header of a pcap file, or of a pcapng file's first interface
    description block, without libpcap (which tells DLTs, not link types)."""
    data = Path(path).read_bytes()
    magic = data[:4]
    for order in "<>":
        (value,) = struct.unpack(order + "I", magic)
        if value in (PCAP_MAGIC_MICRO, PCAP_MAGIC_NANO):
            snaplen, linktype = struct.unpack(order + "II", data[16:24])
            return SavefileHeader(linktype, snaplen, value == PCAP_MAGIC_NANO, False)
    if struct.unpack("<I", magic)[0] != PCAPNG_SHB:
        raise ValueError(f"{path}: neither pcap nor pcapng")
    order = "<" if struct.unpack("<I", data[8:12])[0] == PCAPNG_BYTE_ORDER_MAGIC else ">"
    pos = 0
    while pos + 12 <= len(data):
        block_type, length = struct.unpack(order + "II", data[pos : pos + 8])
        if block_type == PCAPNG_IDB:
            linktype, _, snaplen = struct.unpack(order + "HHI", data[pos + 8 : pos + 16])
            return SavefileHeader(linktype, snaplen, True, True)
        if length < 12:
            break
        pos += length
    raise ValueError(f"{path}: no interface description block")


# ---------------------------------------------------------------------------
# Sample session
# ---------------------------------------------------------------------------

SAMPLE_EPOCH_NS = int(datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC).timestamp()) * 10**9
"""2026-01-01T00:00:00Z in nanoseconds since the Unix epoch."""

_CLIENT_MAC = bytes.fromhex("02000000000a")
_ROUTER_MAC = bytes.fromhex("020000000001")
_CLIENT = "192.168.1.10"
_ROUTER = "192.168.1.1"
_WEB = "192.168.1.80"
_CLIENT6 = "fd00::10"
_ROUTER6 = "fd00::1"


def _dns_name(name: str) -> bytes:
    out = b""
    for label in name.split("."):
        raw = label.encode("ascii")
        out += bytes([len(raw)]) + raw
    return out + b"\x00"


def dns_query(txid: int, name: str) -> bytes:
    """Return a DNS query message for the A record of ``name`` (RD set)."""
    header = struct.pack("!HHHHHH", txid, 0x0100, 1, 0, 0, 0)
    return header + _dns_name(name) + struct.pack("!HH", 1, 1)


def dns_response(txid: int, name: str, address: str, ttl: int = 300) -> bytes:
    """Return a DNS response answering the A query for ``name`` with ``address``."""
    header = struct.pack("!HHHHHH", txid, 0x8180, 1, 1, 0, 0)
    question = _dns_name(name) + struct.pack("!HH", 1, 1)
    answer = struct.pack("!HHHIH", 0xC00C, 1, 1, ttl, 4) + (ipaddress.IPv4Address(address).packed)
    return header + question + answer


def sample_records() -> list[Record]:
    """Return a deterministic Ethernet session of 15 packets.

    ARP request/reply, ICMP echo request/reply, a DNS query/response on UDP
    port 53, a TCP handshake, HTTP GET and response and FIN/ACK teardown on
    port 80, and one IPv6 UDP datagram.  Times start at 2026-01-01T00:00:00Z
    and have nanosecond fractions that are not multiples of 1000.
    """
    c, r = _CLIENT_MAC, _ROUTER_MAC
    cisn, sisn = 0x1000_0000, 0x5000_0000
    get = (
        b"GET / HTTP/1.1\r\nHost: www.example.com\r\n"
        b"User-Agent: epcap-test/1.0\r\nAccept: */*\r\n\r\n"
    )
    body = b"<html><body>hello</body></html>\n"
    response = (
        b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n"
        + b"Content-Length: "
        + str(len(body)).encode()
        + b"\r\nConnection: close\r\n\r\n"
        + body
    )
    ping = bytes(range(0x10, 0x38))
    name = "www.example.com"

    def up(payload: bytes, seq: int, ack: int, flags: str, ident: int) -> bytes:
        return eth_ipv4_tcp(
            _CLIENT,
            _WEB,
            49152,
            80,
            payload,
            seq,
            ack,
            flags,
            src_mac=c,
            dst_mac=r,
            ident=ident,
        )

    def down(payload: bytes, seq: int, ack: int, flags: str, ident: int) -> bytes:
        return eth_ipv4_tcp(
            _WEB,
            _CLIENT,
            80,
            49152,
            payload,
            seq,
            ack,
            flags,
            src_mac=r,
            dst_mac=c,
            ident=ident,
        )

    c_end = cisn + 1 + len(get)
    s_end = sisn + 1 + len(response)
    echo_request = icmp_echo(0x4E50, 1, ping)
    echo_reply = icmp_echo(0x4E50, 1, ping, reply=True)
    frames: list[bytes] = [
        ether(MAC_BROADCAST, c, ETHERTYPE_ARP, arp_request(c, _CLIENT, _ROUTER)),
        ether(c, r, ETHERTYPE_ARP, arp_reply(r, _ROUTER, c, _CLIENT)),
        ether(
            r,
            c,
            ETHERTYPE_IPV4,
            ipv4(_CLIENT, _ROUTER, IPPROTO_ICMP, echo_request, ident=0x1001),
        ),
        ether(
            c,
            r,
            ETHERTYPE_IPV4,
            ipv4(_ROUTER, _CLIENT, IPPROTO_ICMP, echo_reply, ident=0x2001),
        ),
        eth_ipv4_udp(
            _CLIENT,
            _ROUTER,
            53124,
            53,
            dns_query(0xBEEF, name),
            src_mac=c,
            dst_mac=r,
            ident=0x1002,
        ),
        eth_ipv4_udp(
            _ROUTER,
            _CLIENT,
            53,
            53124,
            dns_response(0xBEEF, name, _WEB),
            src_mac=r,
            dst_mac=c,
            ident=0x2002,
        ),
        up(b"", cisn, 0, "S", 0x1003),
        down(b"", sisn, cisn + 1, "SA", 0x3001),
        up(b"", cisn + 1, sisn + 1, "A", 0x1004),
        up(get, cisn + 1, sisn + 1, "PA", 0x1005),
        down(response, sisn + 1, c_end, "PA", 0x3002),
        up(b"", c_end, s_end, "FA", 0x1006),
        down(b"", s_end, c_end + 1, "FA", 0x3003),
        up(b"", c_end + 1, s_end + 1, "A", 0x1007),
        eth_ipv6_udp(
            _CLIENT6,
            _ROUTER6,
            5353,
            5353,
            b"epcap ipv6 sample datagram",
            src_mac=c,
            dst_mac=r,
        ),
    ]
    records: list[Record] = []
    for i, frame in enumerate(frames):
        # 0.25 s apart plus a fraction with non-zero nanosecond digits.
        time_ns = SAMPLE_EPOCH_NS + i * 250_000_000 + 123_457 * (i + 1) + 1
        records.append((time_ns, len(frame), frame))
    return records

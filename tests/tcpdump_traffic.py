"""Traffic for tests/test_tcpdump_lines.py: captures that tcpdump 4.99.3 and
epcap-sniff must print alike, one per link type.

The traffic is built from the protocol builders of :mod:`pcapfiles` in two
steps.  :func:`traffic` returns network-layer packets (:class:`Datagram`:
IPv4, IPv6 or ARP bytes, with the link-layer addresses of the hop they
cross), one section per protocol, realistic ones and broken ones; the link
functions (:func:`ethernet`, :func:`cooked`, :func:`cooked2`, :func:`raw`)
wrap them for each link type.  :func:`capture_list` makes the captures, and
:func:`cut_records` the one whose packets a small snapshot length cuts in
the middle of each header; :func:`write_captures` writes them.  No port is
one tcpdump dissects an application protocol on (``TCP_DISSECTED`` and
``UDP_DISSECTED`` in the test), so that every line is tcpdump's own IP, TCP,
UDP, ICMP, ICMPv6 or ARP printing.

Times (:func:`timestamps`) start two seconds before local midnight in
:data:`TZ` and step forward by microseconds, nanoseconds, seconds, hours and
more than a day, and once backwards, so that every ``-t`` form has work.
"""

from __future__ import annotations

import datetime
import ipaddress
import struct
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NamedTuple, TypeVar

import pcapfiles as pf

TZ = "XXX-5:30"
"""The local time zone both tools run in: POSIX TZ for UTC+05:30 (no
tzdata needed), not UTC and not a whole number of hours."""
TZ_OFFSET = datetime.timedelta(hours=5, minutes=30)

START_NS = (
    int(datetime.datetime(2026, 3, 14, 23, 59, 58, tzinfo=datetime.UTC).timestamp()) * 10**9
    - int(TZ_OFFSET.total_seconds()) * 10**9
    + 765_432_109
)
"""2026-03-14 23:59:58.765432109 local time in :data:`TZ`."""

_HOUR = 3600 * 10**9
TIME_STEPS_NS = (
    1_234_567,  # several packets in one second
    987,  # less than a microsecond: the same time in a micro file
    250_000_000,
    12_345,
    1_733_000_001,  # the first pass crosses local midnight here
    -300_000_123,  # earlier than the packet before: a negative delta
    3 * _HOUR + 1_500 * 10**9 + 17_000_000,  # a gap of hours
    42,
    999_999_999,
    26 * _HOUR + 1_000,  # more than a day: -ttt's hours wrap
    500_000,
)
"""The gaps between successive packets, used in turn."""

ZERO_MAC = b"\x00" * 6
T = TypeVar("T")

# The capturing host is CLIENT, on a LAN with ROUTER and PEER; SERVER and
# FAR are beyond ROUTER.
CLIENT, ROUTER, PEER = "192.0.2.10", "192.0.2.1", "192.0.2.33"
SERVER, FAR = "198.51.100.20", "203.0.113.7"
CLIENT6, ROUTER6, PEER6 = "2001:db8:1::10", "2001:db8:1::1", "2001:db8:1::33"
SERVER6, FAR6 = "2001:db8:2::20", "2001:db8:3::7"
CLIENT6_LL, ROUTER6_LL = "fe80::10", "fe80::1"
_LAN_MACS = {
    **dict.fromkeys((CLIENT, CLIENT6, CLIENT6_LL), bytes.fromhex("02000000000a")),
    **dict.fromkeys((ROUTER, ROUTER6, ROUTER6_LL), bytes.fromhex("020000000001")),
    **dict.fromkeys((PEER, PEER6), bytes.fromhex("020000000021")),
}


class Datagram(NamedTuple):
    """A network-layer packet (``data``, of ``ethertype``) on the hop from
    ``src_mac`` to ``dst_mac``."""

    ethertype: int
    data: bytes
    src_mac: bytes
    dst_mac: bytes

    @property
    def version_ok(self) -> bool:
        """Whether an IP packet's version nibble says what ``ethertype``
        does (raw IP links tell IPv4 from IPv6 by it alone)."""
        want = {pf.ETHERTYPE_IPV4: 4, pf.ETHERTYPE_IPV6: 6}.get(self.ethertype)
        return want is None or (bool(self.data) and self.data[0] >> 4 == want)


def mac_of(address: str) -> bytes:
    """The MAC of a LAN host (one per host, for all its addresses), the
    router's for a host beyond it, and the multicast or broadcast MAC of a
    group or broadcast address."""
    addr = ipaddress.ip_address(address)
    if addr.is_multicast:
        if addr.version == 6:
            return b"\x33\x33" + addr.packed[-4:]
        return b"\x01\x00\x5e" + bytes([addr.packed[1] & 0x7F]) + addr.packed[2:]
    if address == "255.255.255.255":
        return pf.MAC_BROADCAST
    return _LAN_MACS.get(address, _LAN_MACS[ROUTER])


def ip(src: str, dst: str, proto: int, payload: bytes, **header: object) -> Datagram:
    """An IPv4 or IPv6 packet (by the addresses) from ``src`` to ``dst``;
    ``header`` goes to :func:`pcapfiles.ipv4` or :func:`pcapfiles.ipv6`."""
    if ":" in src:
        data = pf.ipv6(src, dst, proto, payload, **header)  # type: ignore[arg-type]
        return Datagram(pf.ETHERTYPE_IPV6, data, mac_of(src), mac_of(dst))
    data = pf.ipv4(src, dst, proto, payload, **header)  # type: ignore[arg-type]
    return Datagram(pf.ETHERTYPE_IPV4, data, mac_of(src), mac_of(dst))


def udp(src: str, dst: str, sport: int, dport: int, data: bytes, **header: object) -> Datagram:
    """A UDP datagram with a correct checksum (see :func:`ip` for ``header``)."""
    return ip(src, dst, pf.IPPROTO_UDP, pf.udp(src, dst, sport, dport, data), **header)


class TcpFlow:
    """The segments of one TCP connection, both ways: each side's next
    sequence number is kept, so that a segment's ``seq`` and ``ack`` follow
    the conversation unless given."""

    def __init__(
        self,
        client: tuple[str, int],
        server: tuple[str, int],
        isn: tuple[int, int],
        client_header: dict[str, object] | None = None,
        server_header: dict[str, object] | None = None,
    ) -> None:
        """``isn`` are the initial sequence numbers; the ``*_header`` dicts
        the IP header fields of each side (``ident`` counts up from its)."""
        self._ends = (client, server)
        self._next = list(isn)
        self._header = [dict(client_header or {}), dict(server_header or {})]

    def _send(
        self,
        side: int,
        flags: str,
        data: bytes,
        seq: int | None,
        ack: int | None,
        options: bytes,
        **tcp: object,
    ) -> Datagram:
        (src, sport), (dst, dport) = self._ends[side], self._ends[1 - side]
        if seq is None:
            seq = self._next[side]
            self._next[side] += len(data) + ("S" in flags) + ("F" in flags)
        if ack is None:
            ack = self._next[1 - side] if "A" in flags else 0
        segment = pf.tcp(
            src,
            dst,
            sport,
            dport,
            data,
            seq,
            ack,
            flags,
            options=options,
            **tcp,  # type: ignore[arg-type]
        )
        header = self._header[side]
        if "ident" in header:
            header["ident"] = (int(header["ident"]) + 1) & 0xFFFF  # type: ignore[call-overload]
        return ip(src, dst, pf.IPPROTO_TCP, segment, **header)

    def client(
        self,
        flags: str,
        data: bytes = b"",
        *,
        seq: int | None = None,
        ack: int | None = None,
        options: bytes = b"",
        **tcp: object,
    ) -> Datagram:
        """A segment from the client (``tcp`` goes to :func:`pcapfiles.tcp`);
        an explicit ``seq`` (a retransmission) leaves the side's next as is."""
        return self._send(0, flags, data, seq, ack, options, **tcp)

    def server(
        self,
        flags: str,
        data: bytes = b"",
        *,
        seq: int | None = None,
        ack: int | None = None,
        options: bytes = b"",
        **tcp: object,
    ) -> Datagram:
        """A segment from the server, as :meth:`client`."""
        return self._send(1, flags, data, seq, ack, options, **tcp)

    def next_seq(self, side: str) -> int:
        """The next sequence number of ``"client"`` or ``"server"``."""
        return self._next[0 if side == "client" else 1]


def _text(n: int, seed: str) -> bytes:
    """``n`` bytes of printable text with line breaks and a tab (for -A)."""
    line = f"{seed}: the quick brown fox\tjumps over the lazy dog\r\n".encode()
    return (line * (n // len(line) + 1))[:n]


def _binary(n: int, seed: int) -> bytes:
    return bytes((seed + 7 * i) & 0xFF for i in range(n))


def _syn_options(value: int, echo: int) -> bytes:
    """What Linux puts on a SYN: mss, sackOK, TS, nop, wscale."""
    return (
        pf.tcp_mss(1460)
        + pf.tcp_sack_permitted()
        + pf.tcp_timestamps(value, echo)
        + pf.TCP_NOP
        + pf.tcp_wscale(7)
    )


def _ts(value: int, echo: int) -> bytes:
    return pf.TCP_NOP + pf.TCP_NOP + pf.tcp_timestamps(value, echo)


# Sections of traffic -------------------------------------------------------


def arp_traffic() -> list[Datagram]:
    """ARP request and reply, gratuitous ones, and ARP that is not
    Ethernet/IPv4 (one-byte hardware addresses; IPv6 protocol addresses)."""
    client, router, peer = mac_of(CLIENT), mac_of(ROUTER), mac_of(PEER)
    bcast = pf.MAC_BROADCAST
    return [
        Datagram(pf.ETHERTYPE_ARP, pf.arp(1, client, CLIENT, ZERO_MAC, ROUTER), client, bcast),
        Datagram(pf.ETHERTYPE_ARP, pf.arp(2, router, ROUTER, client, CLIENT), router, client),
        Datagram(pf.ETHERTYPE_ARP, pf.arp(1, peer, PEER, ZERO_MAC, PEER), peer, bcast),
        Datagram(pf.ETHERTYPE_ARP, pf.arp(2, peer, PEER, bcast, PEER), peer, bcast),
        Datagram(pf.ETHERTYPE_ARP, pf.arp(1, client, CLIENT, router, ROUTER), client, router),
        Datagram(
            pf.ETHERTYPE_ARP, pf.arp(1, b"\x0a", CLIENT, b"\x00", ROUTER, hrd=7), client, bcast
        ),
        Datagram(
            pf.ETHERTYPE_ARP,
            pf.arp(2, client, CLIENT6, router, ROUTER6, pro=pf.ETHERTYPE_IPV6),
            client,
            router,
        ),
        Datagram(pf.ETHERTYPE_ARP, pf.arp(3, client, CLIENT, ZERO_MAC, ROUTER), client, bcast),
    ]


def tcp_traffic(client: str, server: str, hops: int = 12) -> list[Datagram]:
    """A TCP connection of ``client`` to ``server`` (v4 or v6) from SYN to
    the last ACK: ECN setup, options, data both ways, a retransmission,
    SACK, URG, CWR/ECE, odd and malformed options, a bad checksum; then a
    refused connection (RST-ACK) and a reset with data."""
    v6 = ":" in client
    if v6:
        ch: dict[str, object] = {"flow_label": 0x5A5A5, "traffic_class": 0x02}
        sh: dict[str, object] = {"hop_limit": 64 - hops}
    else:
        ch = {"ident": 0x3E80, "df": True, "tos": 0x02}
        sh = {"ident": 0x9C40, "df": True, "ttl": 64 - hops}
    flow = TcpFlow((client, 40312), (server, 5001), (0x6B8B4567, 0x327B23C6), ch, sh)
    request = _text(120, "request")
    answer = _text(700, "answer")
    c, s = flow.client, flow.server
    segs = [
        c("SEW", options=_syn_options(3_000_000_001, 0), window=64240),
        s("SAE", options=_syn_options(66051, 3_000_000_001), window=65160),
        c("A", options=_ts(3_000_000_101, 66051), window=502),
        c("PA", request, options=_ts(3_000_000_102, 66051), window=502),
        s("A", options=_ts(66100, 3_000_000_102), window=509),
    ]
    first_answer = flow.next_seq("server")
    segs += [
        s("PA", answer, options=_ts(66120, 3_000_000_102), window=509),
        s("PA", answer, seq=first_answer, options=_ts(66420, 3_000_000_102), window=509),
    ]
    end = flow.next_seq("server")
    segs += [
        c(
            "A",
            options=pf.TCP_NOP + pf.TCP_NOP + pf.tcp_sack((first_answer, first_answer + 300)),
            ack=first_answer,
            window=501,
        ),
        c("A", options=_ts(3_000_000_140, 66420), window=501),
        c("UPA", b"!urgent!", urgent=8, window=501),
        c("PAW", _text(30, "cwr"), window=501),
        s("AE", window=509),
        c("A", options=pf.tcp_option(99, b"\xbe\xef") + pf.tcp_mss(1200), window=501),
        c("A", options=pf.tcp_mss(1460) + pf.TCP_EOL + b"\x00\x00\x00", window=501),
        c("A", options=pf.tcp_option(2, b"\x05", length=7), window=501),
        c("A", options=pf.TCP_NOP + pf.tcp_option(8, b"", length=1), window=501),
        c("A", options=pf.tcp_option(5, b"\x00" * 6), window=501),
        s("PA", _binary(64, 3), checksum=0xBAD1, window=509),
        c("", _binary(5, 9), seq=flow.next_seq("client") + 1000, ack=end, window=501),
        c("FA", window=501),
        s("FA", window=509),
        c("A", window=501),
    ]
    refused = TcpFlow((client, 40313), (server, 5002), (0x10000000, 0), ch, sh)
    segs += [
        refused.client("S", options=_syn_options(3_000_000_500, 0)),
        refused.server("RA", window=0),
    ]
    reset = TcpFlow((client, 40314), (server, 5003), (0x30000000, 0x20000000), ch, sh)
    segs += [
        reset.server("R", window=0),
        reset.server("RA", b"connection reset: go away", window=0),
        reset.server("RA", _text(80, "long reset reason"), window=0),
    ]
    return segs


def tcp_option_traffic(client: str, server: str) -> list[Datagram]:
    """Less common TCP options tcp_print() prints itself: TCP Fast Open
    (cookie request, cookie, a SYN with data; also as experimental option
    254), MD5 signature, user timeout, TCP-AO, an unknown experiment."""
    v6 = ":" in client
    header: dict[str, object] = {} if v6 else {"ident": 0x7100, "df": True}
    flow = TcpFlow((client, 40320), (server, 5010), (0x01000000, 0x02000000), header, header)
    cookie = bytes.fromhex("0123456789abcdef")
    return [
        flow.client("S", options=pf.tcp_mss(1460) + pf.tcp_option(34)),
        flow.server("SA", options=pf.tcp_mss(1460) + pf.tcp_option(34, cookie)),
        flow.client("S", b"early data", seq=0x0A000000, options=pf.tcp_option(34, cookie)),
        flow.client("S", seq=0x0B000000, options=pf.tcp_option(254, b"\xf9\x89" + cookie)),
        flow.client("A", options=pf.tcp_option(254, b"\x12\x34") + pf.TCP_NOP * 2),
        flow.client("A", options=pf.tcp_option(19, bytes(range(16))) + pf.TCP_NOP * 2),
        flow.client("A", options=pf.tcp_option(28, b"\x80\x03") + pf.TCP_NOP * 2),
        flow.client("A", options=pf.tcp_option(29, b"\x07\x08" + cookie) + pf.TCP_NOP * 2),
        flow.client("A", options=pf.tcp_option(34, b"\x01\x02\x03")),
    ]


def udp_traffic(client: str, server: str) -> list[Datagram]:
    """UDP with correct, wrong and zero checksums, a length field longer and
    one shorter than IP's, one below 8, an empty datagram and a big one."""
    proto = pf.IPPROTO_UDP

    def odd(sport: int, dport: int, data: bytes, **fields: int) -> Datagram:
        return ip(client, server, proto, pf.udp(client, server, sport, dport, data, **fields))

    return [
        udp(client, server, 33001, 9999, b"ping over udp"),
        udp(server, client, 9999, 33001, _text(48, "pong")),
        odd(33002, 9999, b"bad checksum", checksum=0x1234),
        odd(33003, 9999, b"no checksum", checksum=0),
        odd(33004, 9999, b"length says more", length=40),
        odd(33005, 9999, b"length says less" + b"\x00" * 8, length=12),
        odd(33006, 9999, b"tiny", length=5),
        udp(client, server, 33007, 9999, b""),
        udp(client, server, 33008, 9999, _binary(1200, 1)),
    ]


def _chunk(kind: int, flags: int, body: bytes, length: int | None = None) -> bytes:
    """An SCTP chunk, padded to 4 bytes; ``length`` overrides its length field."""
    size = 4 + len(body) if length is None else length
    raw = struct.pack("!BBH", kind, flags, size) + body
    return raw + b"\x00" * (-len(raw) % 4)


def sctp_traffic(client: str, server: str) -> list[Datagram]:
    """An SCTP association's chunks (INIT and its ACK with parameters, cookie,
    DATA of each fragment flag and several payload protocols, SACK with gap
    blocks and duplicates, heartbeats, shutdown, abort, an unknown chunk),
    several chunks in one packet, and bad chunk lengths."""

    def packet(sport: int, dport: int, *chunks: bytes, src: str = client) -> Datagram:
        dst = server if src == client else client
        head = struct.pack("!HHII", sport, dport, 0x1A2B3C4D, 0)  # the CRC32c is not checked
        return ip(src, dst, 132, head + b"".join(chunks))

    init = struct.pack("!IIHHI", 0xCAFE0001, 106496, 10, 65535, 2000)
    param = struct.pack("!HH", 0x000C, 6) + b"\x00\x05"  # supported address types
    data = struct.pack("!IHHI", 2001, 0, 1, 51) + b"hello"  # TSN, stream, sequence, PPID
    sack = struct.pack("!IIHH", 2001, 65536, 2, 1) + struct.pack("!HHHHI", 2, 3, 5, 9, 1999)
    forward = (41000, 5000)
    back = (5000, 41000)
    return [
        packet(*forward, _chunk(1, 0, init + param)),
        packet(*back, _chunk(2, 0, init + b"\x00\x07\x00\x08cook"), src=server),
        packet(*forward, _chunk(10, 0, b"cookie!!")),
        packet(*back, _chunk(11, 0, b""), src=server),
        packet(*forward, _chunk(0, 3, data)),
        packet(*forward, _chunk(0, 2, data), _chunk(0, 0, data), _chunk(0, 5, data)),
        packet(*forward, _chunk(0, 3, struct.pack("!IHHI", 2005, 2, 7, 999) + b"\x01" * 9)),
        packet(*back, _chunk(3, 0, sack), src=server),
        packet(*back, _chunk(3, 0, struct.pack("!IIHH", 2009, 65000, 0, 0)), src=server),
        packet(*forward, _chunk(4, 0, struct.pack("!HH", 1, 12) + b"beat" * 2)),
        packet(*back, _chunk(5, 0, struct.pack("!HH", 1, 12) + b"beat" * 2), src=server),
        packet(*forward, _chunk(7, 0, struct.pack("!I", 2009))),
        packet(*back, _chunk(8, 0, b""), src=server),
        packet(*forward, _chunk(14, 0, b"")),
        packet(*forward, _chunk(6, 1, struct.pack("!HH", 0x000D, 4))),
        packet(*forward, _chunk(0xC0, 0, struct.pack("!I", 2010)), _chunk(0x80, 0, b"odd")),
        packet(*forward, _chunk(0, 3, struct.pack("!IHHI", 2011, 0, 2, 0))),  # no payload
        packet(*forward, _chunk(1, 0, init[:8])),  # an INIT too short
        packet(*forward, _chunk(0, 3, data, length=2)),  # a length below 4
        packet(*forward, _chunk(0, 3, data, length=200)),  # a length beyond the packet
        packet(*forward, b"\x00\x03"),  # a chunk header cut
        packet(*forward),  # no chunk at all
    ]


def _dns_name(name: str) -> bytes:
    """``name`` as DNS labels (RFC 1035), as an ND DNSSL option holds it."""
    labels = [bytes([len(part)]) + part.encode() for part in name.split(".")]
    return b"".join(labels) + b"\x00"


def _packed(address: str) -> bytes:
    return ipaddress.ip_address(address).packed


def _quote(packet: bytes, extra: int = 8) -> bytes:
    """What an ICMP error quotes of ``packet``: its IP header (IPv4's with
    options, IPv6's fixed one) and ``extra`` bytes more."""
    header = (packet[0] & 0x0F) * 4 if packet[0] >> 4 == 4 else 40
    return packet[: header + extra]


def _probe() -> bytes:
    """A traceroute probe of CLIENT's to FAR (IPv4 and UDP)."""
    datagram = pf.udp(CLIENT, FAR, 33434, 33435, b"traceroute probe")
    return pf.ipv4(CLIENT, FAR, pf.IPPROTO_UDP, datagram, ttl=1, ident=0x0101)


def _syn() -> bytes:
    """A SYN of CLIENT's to SERVER (IPv4 and TCP, with options)."""
    options = _syn_options(7, 0)
    segment = pf.tcp(CLIENT, SERVER, 40400, 5004, b"", 0x11111111, 0, "S", options=options)
    return pf.ipv4(CLIENT, SERVER, pf.IPPROTO_TCP, segment, ident=0x0202, df=True)


def _with_mpls_extension(quoted: bytes) -> bytes:
    """An ICMP error's body with an RFC 4884 extension: the quoted packet
    padded to 128 bytes, then an extension header (version 2, checksum) and
    an MPLS label stack object (label 16005, TC 2, bottom of stack, TTL 1)."""
    entry = struct.pack("!I", (16005 << 12) | (2 << 9) | (1 << 8) | 1)
    objects = struct.pack("!HBB", 4 + len(entry), 1, 1) + entry
    header = bytes([0x20, 0, 0, 0])
    checksum = pf.internet_checksum(header + objects)
    return quoted.ljust(128, b"\x00") + header[:2] + struct.pack("!H", checksum) + objects


def icmp_traffic() -> list[Datagram]:
    """ICMP: echo, unreachables of each kind quoting UDP and TCP, time
    exceeded, redirects, source quench, parameter problems, timestamps,
    address mask, router advertisement, an unknown type, a bad checksum."""
    big = pf.udp(CLIENT, SERVER, 33009, 9999, _binary(1400, 5))
    too_big = pf.ipv4(CLIENT, SERVER, pf.IPPROTO_UDP, big, df=True, ident=0x0303)
    probe, syn, ping = _probe(), _syn(), _binary(56, 0x10)
    stamps = struct.pack("!III", 36_000_123, 36_000_456, 36_000_789)

    def from_router(icmp_type: int, code: int, rest: bytes, body: bytes) -> Datagram:
        return ip(ROUTER, CLIENT, pf.IPPROTO_ICMP, pf.icmp(icmp_type, code, rest, body), ttl=255)

    def from_far(icmp_type: int, code: int, body: bytes) -> Datagram:
        message = pf.icmp(icmp_type, code, b"\x00" * 4, body)
        return ip(FAR, CLIENT, pf.IPPROTO_ICMP, message, ttl=50, ident=0x7777)

    def ask(message: bytes) -> Datagram:
        return ip(CLIENT, SERVER, pf.IPPROTO_ICMP, message, ident=0x4001, df=True)

    def answer(message: bytes) -> Datagram:
        return ip(SERVER, CLIENT, pf.IPPROTO_ICMP, message, ttl=52, ident=0x0BAD)

    zero = b"\x00" * 4
    return [
        ask(pf.icmp_echo(0x1F2E, 1, ping)),
        answer(pf.icmp_echo(0x1F2E, 1, ping, reply=True)),
        ask(pf.icmp_echo(0x1F2E, 2, b"")),
        ask(pf.icmp(8, 0, struct.pack("!HH", 0x1F2E, 3), ping, checksum=0xFFFF)),
        from_router(3, 0, zero, _quote(probe)),
        from_router(3, 1, zero, _quote(syn)),
        from_far(3, 2, _quote(probe)),
        from_far(3, 3, _quote(probe)),
        from_far(3, 3, _quote(syn, 20)),
        from_router(3, 4, struct.pack("!HH", 0, 1400), _quote(too_big)),
        from_router(3, 4, zero, _quote(too_big)),
        from_router(3, 9, zero, _quote(probe)),
        from_router(3, 13, zero, _quote(syn)),
        from_router(3, 15, zero, _quote(syn)),
        from_router(11, 0, zero, _quote(probe)),
        from_far(11, 1, _quote(probe)),
        from_router(5, 1, _packed(PEER), _quote(syn)),
        from_router(5, 0, _packed(PEER), _quote(probe)),
        from_router(4, 0, zero, _quote(syn)),
        from_router(12, 0, bytes([20, 0, 0, 0]), _quote(syn)),
        from_router(12, 1, zero, _quote(probe)),
        ask(pf.icmp(13, 0, struct.pack("!HH", 7, 1), stamps[:4] + bytes(8))),
        answer(pf.icmp(14, 0, struct.pack("!HH", 7, 1), stamps)),
        from_router(18, 0, struct.pack("!HH", 3, 3), bytes([255, 255, 255, 0])),
        from_router(9, 0, bytes([1, 2, 0x07, 0x08]), _packed(ROUTER) + struct.pack("!I", 10)),
        from_router(11, 0, bytes([0, 32, 0, 0]), _with_mpls_extension(_quote(probe))),
        from_router(99, 7, b"\x01\x02\x03\x04", b"mystery"),
    ]


def ipv4_traffic() -> list[Datagram]:
    """IPv4 header variety: options (RR, NOP, RA, timestamps, LSRR, an
    unknown one, one of a bad length), first and later fragments of UDP and
    TCP, TOS and every ECN codepoint, TTLs, a bad header checksum; to
    broadcast, to a group, and between other hosts."""
    payload = pf.udp(CLIENT, SERVER, 33010, 9999, _text(1600, "fragmented"))
    segment = pf.tcp(CLIENT, SERVER, 40500, 5005, _binary(1000, 2), 1, 1, "PA")
    rr = pf.ipv4_option(7, bytes([8]) + _packed(CLIENT) + bytes(8))
    stamps = pf.ipv4_option(
        68, bytes([13, 0x01]) + _packed(CLIENT) + struct.pack("!I", 1234) + bytes(8)
    )
    lsrr = pf.ipv4_option(131, bytes([4]) + _packed(ROUTER) + _packed(FAR))

    def with_udp(data: bytes, **header: object) -> Datagram:
        return udp(CLIENT, SERVER, 33011, 9999, data, **header)

    return [
        with_udp(b"options", options=rr + pf.ipv4_option(1) + pf.ipv4_option(148, b"\x00\x00")),
        with_udp(b"timestamp option", options=stamps),
        with_udp(b"source route", options=lsrr + pf.ipv4_option(1)),
        with_udp(b"odd options", options=pf.ipv4_option(30, b"\x11\x22") + pf.ipv4_option(0)),
        with_udp(b"bad option", options=pf.ipv4_option(7, b"\x04\x00", length=9) + bytes(2)),
        ip(CLIENT, SERVER, pf.IPPROTO_UDP, payload[:1480], ident=0x5001, mf=True),
        ip(CLIENT, SERVER, pf.IPPROTO_UDP, payload[1480:], ident=0x5001, offset=1480),
        ip(CLIENT, SERVER, pf.IPPROTO_TCP, segment[:512], ident=0x5002, mf=True),
        ip(CLIENT, SERVER, pf.IPPROTO_TCP, segment[512:], ident=0x5002, offset=512),
        with_udp(b"low delay", tos=0x10, ttl=1),
        with_udp(b"ect(1)", tos=0x01, ttl=255, ident=0xFFFF),
        with_udp(b"ect(0)", tos=0xB8 | 0x02, ttl=128),
        with_udp(b"ce", tos=0x03, df=True),
        with_udp(b"bad header checksum", checksum=0xDEAD),
        udp(CLIENT, "255.255.255.255", 33012, 9999, b"broadcast", ttl=1),
        udp(CLIENT, "239.1.2.3", 33013, 9999, b"multicast", ttl=4),
        udp(PEER, SERVER, 33014, 9999, b"seen in promiscuous mode"),
        udp(SERVER, PEER, 9999, 33014, b"for another host", ttl=52),
    ]


def ipv6_traffic() -> list[Datagram]:
    """IPv6 extension headers (hop-by-hop, destination options, routing,
    fragments) in front of UDP and TCP, traffic class and flow label."""
    udp6, tcp6 = pf.IPPROTO_UDP, pf.IPPROTO_TCP

    def hbh(nxt: int) -> bytes:  # with a router alert
        return pf.ipv6_options_header(nxt, pf.ipv6_option(5, b"\x00\x00"))

    def dstopts(nxt: int) -> bytes:  # with an option of an unknown type
        return pf.ipv6_options_header(nxt, pf.ipv6_option(0x1E, b"\xaa" * 3))

    def routing(nxt: int) -> bytes:  # through ROUTER6 to SERVER6
        return pf.ipv6_routing_header(nxt, [ROUTER6, SERVER6], 1)

    def frag(nxt: int, offset: int, more: bool) -> bytes:
        return pf.ipv6_fragment_header(nxt, offset, more, 0xC0FFEE)

    def datagram(sport: int, data: bytes) -> bytes:  # the checksum's is the final address
        return pf.udp(CLIENT6, SERVER6, sport, 9999, data)

    def to_server(first: int, payload: bytes, dst: str = SERVER6) -> Datagram:
        return ip(CLIENT6, dst, first, payload)

    whole = datagram(33020, _text(2000, "fragmented v6"))
    segment = pf.tcp(CLIENT6, SERVER6, 40600, 5006, b"through options", 5, 9, "PA")
    return [
        to_server(pf.IPPROTO_HOPOPTS, hbh(udp6) + datagram(33021, b"hbh")),
        to_server(pf.IPPROTO_DSTOPTS, dstopts(tcp6) + segment),
        to_server(pf.IPPROTO_ROUTING, routing(udp6) + datagram(33022, b"routed"), ROUTER6),
        to_server(
            pf.IPPROTO_HOPOPTS, hbh(pf.IPPROTO_DSTOPTS) + dstopts(udp6) + datagram(33023, b"x")
        ),
        to_server(pf.IPPROTO_FRAGMENT, frag(udp6, 0, True) + whole[:1232]),
        to_server(pf.IPPROTO_FRAGMENT, frag(udp6, 1232, False) + whole[1232:]),
        to_server(pf.IPPROTO_FRAGMENT, frag(udp6, 0, False) + datagram(33024, b"atomic")),
        udp(CLIENT6, SERVER6, 33025, 9999, b"classy", traffic_class=0xB9, flow_label=0xFEDCB),
        udp(SERVER6, CLIENT6, 9999, 33025, b"ce", traffic_class=0x03, hop_limit=1),
        udp(PEER6, SERVER6, 33026, 9999, b"another host's"),
    ]


def icmpv6_traffic() -> list[Datagram]:
    """ICMPv6: echo, neighbour and router discovery with their options
    (link-layer addresses, prefix, MTU, RDNSS, DNSSL, route information,
    advertisement interval), a redirect, MLD v1 and v2, the errors quoting
    UDP and TCP, mtrace, an unknown type and a bad checksum."""
    client_mac, router_mac = mac_of(CLIENT6), mac_of(ROUTER6)
    solicited = "ff02::1:ff00:20"
    all_nodes, all_routers, mld2 = "ff02::1", "ff02::2", "ff02::16"
    group = "ff05::1:3"
    ll = pf.nd_option(1, client_mac)
    target_ll = pf.nd_option(2, router_mac)
    mtu = pf.nd_option(5, struct.pack("!HI", 0, 1500))
    prefix = pf.nd_option(
        3, struct.pack("!BBIII", 64, 0xC0, 86400, 14400, 0) + _packed("2001:db8:1::")
    )
    lifetime = struct.pack("!HI", 0, 600)
    rdnss = pf.nd_option(25, lifetime + _packed(ROUTER6) + _packed("2001:db8::53"))
    dnssl = pf.nd_option(31, lifetime + _dns_name("example.com") + _dns_name("lan"))
    route = pf.nd_option(24, struct.pack("!BBI", 48, 0x08, 1800) + _packed("2001:db8:100::")[:8])
    interval = pf.nd_option(7, struct.pack("!HI", 0, 600000))
    probe = pf.ipv6(CLIENT6, FAR6, pf.IPPROTO_UDP, pf.udp(CLIENT6, FAR6, 33434, 33435, b"probe6"))
    syn6 = pf.ipv6(
        CLIENT6,
        SERVER6,
        pf.IPPROTO_TCP,
        pf.tcp(CLIENT6, SERVER6, 40700, 5007, b"", 99, 0, "S", options=_syn_options(9, 0)),
    )
    rtalert = pf.ipv6_options_header(pf.IPPROTO_ICMPV6, pf.ipv6_option(5, b"\x00\x00"))

    def icmp6(src: str, dst: str, kind: int, code: int, body: bytes, **fields: int) -> Datagram:
        message = pf.icmpv6(src, dst, kind, code, body, **fields)
        hops = 255 if 133 <= kind <= 137 else 64
        return ip(src, dst, pf.IPPROTO_ICMPV6, message, hop_limit=hops)

    def mld(kind: int, body: bytes, dst: str) -> Datagram:
        message = pf.icmpv6(CLIENT6_LL, dst, kind, 0, body)
        return ip(CLIENT6_LL, dst, pf.IPPROTO_HOPOPTS, rtalert + message, hop_limit=1)

    def error(kind: int, code: int, rest: bytes, quoted: bytes) -> Datagram:
        return icmp6(ROUTER6, CLIENT6, kind, code, rest + quoted[:1232])

    echo = _binary(56, 0x20)
    mldv2_query = bytes(16) + struct.pack("!BBH", 0x0A, 125, 1) + _packed(SERVER6)
    record = struct.pack("!BBH", 4, 0, 1) + _packed(group) + _packed(SERVER6)
    mldv2_report = struct.pack("!HH", 0, 2) + record + struct.pack("!BBH", 3, 0, 0) + _packed(group)
    return [
        ip(CLIENT6, SERVER6, pf.IPPROTO_ICMPV6, pf.icmpv6_echo(CLIENT6, SERVER6, 0x77, 1, echo)),
        ip(
            SERVER6,
            CLIENT6,
            pf.IPPROTO_ICMPV6,
            pf.icmpv6_echo(SERVER6, CLIENT6, 0x77, 1, echo, reply=True),
            hop_limit=52,
        ),
        icmp6(CLIENT6, solicited, 135, 0, bytes(4) + _packed(ROUTER6) + ll),
        icmp6(
            ROUTER6, CLIENT6, 136, 0, struct.pack("!I", 0xE0000000) + _packed(ROUTER6) + target_ll
        ),
        icmp6(CLIENT6_LL, all_nodes, 136, 0, struct.pack("!I", 0x20000000) + _packed(CLIENT6)),
        icmp6(CLIENT6_LL, all_routers, 133, 0, bytes(4) + ll),
        icmp6(
            ROUTER6_LL,
            all_nodes,
            134,
            0,
            struct.pack("!BBHII", 64, 0xC0, 1800, 30000, 1000)
            + pf.nd_option(1, router_mac)
            + mtu
            + prefix,
        ),
        icmp6(
            ROUTER6_LL,
            all_nodes,
            134,
            0,
            struct.pack("!BBHII", 64, 0x08, 9000, 0, 0) + rdnss + dnssl + route + interval,
        ),
        icmp6(
            ROUTER6_LL,
            CLIENT6,
            137,
            0,
            bytes(4) + _packed(ROUTER6_LL) + _packed(SERVER6) + target_ll,
        ),
        mld(130, struct.pack("!HH", 10000, 0) + bytes(16), all_nodes),
        mld(131, struct.pack("!HH", 0, 0) + _packed(group), group),
        mld(132, struct.pack("!HH", 0, 0) + _packed(group), all_routers),
        mld(130, struct.pack("!HH", 1000, 0) + mldv2_query, all_nodes),
        mld(143, mldv2_report, mld2),
        error(1, 4, bytes(4), probe),
        error(1, 0, bytes(4), syn6),
        error(1, 1, bytes(4), syn6),
        error(1, 3, bytes(4), probe),
        error(2, 0, struct.pack("!I", 1280), syn6),
        error(3, 0, bytes(4), probe),
        error(3, 1, bytes(4), probe),
        error(4, 0, struct.pack("!I", 40), syn6),
        error(4, 1, struct.pack("!I", 6), probe),
        icmp6(CLIENT6, SERVER6, 200, 1, b"mtrace response"),
        icmp6(CLIENT6, SERVER6, 201, 0, b"mtrace"),
        icmp6(CLIENT6, SERVER6, 250, 3, b"unknown"),
        icmp6(CLIENT6, SERVER6, 128, 0, struct.pack("!HH", 0x77, 2) + echo, checksum=0x0BAD),
    ]


def malformed_traffic() -> list[Datagram]:
    """Broken IP and TCP headers: a header length below 20, wrong versions,
    total lengths above the packet and below the header, an IPv6 payload
    length above the packet, TCP data offsets below 20 and beyond the
    segment, and TCP, UDP and ICMP shorter than their headers."""
    data = pf.udp(CLIENT, SERVER, 33030, 9999, b"malformed")
    seg = pf.tcp(CLIENT, SERVER, 40800, 5008, b"", 1, 1, "A")
    inner6 = pf.udp(CLIENT6, SERVER6, 33031, 9999, b"malformed v6")

    def v4(payload: bytes, proto: int = pf.IPPROTO_UDP, **header: object) -> Datagram:
        return ip(CLIENT, SERVER, proto, payload, **header)

    return [
        v4(data, ihl=4),
        v4(data, version=5),
        v4(data, version=6),
        v4(data, total_length=20 + len(data) + 100),
        v4(data, total_length=12),
        v4(data, total_length=0),
        ip(CLIENT6, SERVER6, pf.IPPROTO_UDP, inner6, payload_length=len(inner6) + 64),
        ip(CLIENT6, SERVER6, pf.IPPROTO_UDP, inner6, version=4),
        v4(pf.tcp(CLIENT, SERVER, 40800, 5008, b"", 1, 1, "A", offset=3), pf.IPPROTO_TCP),
        v4(pf.tcp(CLIENT, SERVER, 40800, 5008, b"", 1, 1, "A", offset=15), pf.IPPROTO_TCP),
        v4(seg[:12], pf.IPPROTO_TCP),
        v4(data[:6], pf.IPPROTO_UDP),
        v4(pf.icmp_echo(1, 1, b"")[:3], pf.IPPROTO_ICMP),
    ]


def traffic() -> list[Datagram]:
    """Everything the captures carry, in order."""
    return [
        *arp_traffic(),
        *tcp_traffic(CLIENT, SERVER),
        *tcp_option_traffic(CLIENT, SERVER),
        *udp_traffic(CLIENT, SERVER),
        *sctp_traffic(CLIENT, SERVER),
        *icmp_traffic(),
        *ipv4_traffic(),
        *tcp_traffic(CLIENT6, SERVER6, hops=9),
        *tcp_option_traffic(CLIENT6, SERVER6),
        *udp_traffic(CLIENT6, SERVER6),
        *sctp_traffic(CLIENT6, SERVER6),
        *ipv6_traffic(),
        *icmpv6_traffic(),
        *malformed_traffic(),
    ]


# Link layers ---------------------------------------------------------------

Tags = list[tuple[int, int]]
VLAN_TAGS: tuple[Tags, ...] = (
    [(pf.ETHERTYPE_VLAN, 0xA064)],
    [(pf.ETHERTYPE_VLAN, 0xA064)],
    [(pf.ETHERTYPE_VLAN, 0x6000)],
    [(pf.ETHERTYPE_VLAN, 0x0FFE)],
)
"""The 802.1Q tags of the VLAN capture, in turn: priority 5 VLAN 100 (twice
as often), priority 3 with no VLAN (priority tagging), VLAN 4094."""
QINQ_TAGS: tuple[Tags, ...] = (
    [(pf.ETHERTYPE_QINQ, 0x00C8), (pf.ETHERTYPE_VLAN, 0x300A)],
    [(0x9100, 0x012C), (pf.ETHERTYPE_VLAN, 0x0014)],
)
"""The tag pairs of the Q-in-Q capture, in turn: 802.1ad service VLAN 200,
then 802.1Q priority 1, DEI set, VLAN 10; the old 0x9100 outer tag."""
COOKED_DEVICES = ("ether", "ether", "ether", "loopback", "ether", "tun", "vlan")
"""What the interface of each packet of the SLL capture is, in turn: an
Ethernet one, lo (ARPHRD_LOOPBACK, zero address), a tun device
(ARPHRD_NONE, no address), or one whose 802.1Q tag the kernel left in."""
SLL2_INTERFACES = (4, 4, 2, 1, 4, 57)
"""Interface indexes of the SLL2 capture, in turn: tcpdump names those
this machine has (if_indextoname) and prints ``?`` for the others; 1 is
lo, a loopback device."""


def ethernet(d: Datagram, tags: Sequence[tuple[int, int]] = ()) -> bytes:
    """``d`` in an Ethernet frame (padded to the 60-byte minimum, as a NIC
    delivers short frames), behind ``tags`` (``(tpid, tci)``)."""
    frame = pf.ether(d.dst_mac, d.src_mac, d.ethertype, d.data, tags=tags)
    return frame + bytes(max(0, 60 + 4 * len(tags) - len(frame)))


def _packet_type(d: Datagram) -> int:
    """Linux's packet type as CLIENT captures it: outgoing, to us,
    broadcast, multicast or to another host."""
    if d.src_mac == mac_of(CLIENT):
        return 4
    if d.dst_mac == mac_of(CLIENT):
        return 0
    if d.dst_mac == pf.MAC_BROADCAST:
        return 1
    return 2 if d.dst_mac[0] & 1 else 3


def cooked(d: Datagram, device: str = "ether") -> bytes:
    """``d`` behind a Linux cooked (SLL) header, as captured on a device of
    :data:`COOKED_DEVICES`."""
    if device == "loopback":
        return pf.sll(d.data, d.ethertype, _packet_type(d), ZERO_MAC, hatype=772)
    if device == "tun":
        return pf.sll(d.data, d.ethertype, _packet_type(d), b"", hatype=65534)
    if device == "vlan":
        tagged = struct.pack("!HH", 0x2007, d.ethertype) + d.data  # priority 1, VLAN 7
        return pf.sll(tagged, pf.ETHERTYPE_VLAN, _packet_type(d), d.src_mac)
    return pf.sll(d.data, d.ethertype, _packet_type(d), d.src_mac)


def cooked2(d: Datagram, ifindex: int) -> bytes:
    """``d`` behind a Linux cooked v2 (SLL2) header, received on ``ifindex``
    (1: the loopback device)."""
    if ifindex == 1:
        return pf.sll2(d.data, d.ethertype, ifindex, _packet_type(d), ZERO_MAC, hatype=772)
    return pf.sll2(d.data, d.ethertype, ifindex, _packet_type(d), d.src_mac)


def raw(d: Datagram) -> bytes:
    """``d`` with no link-layer header."""
    return d.data


NULL_FAMILIES = (24, 28, 30)
"""The BSD address families of IPv6 (NetBSD/OpenBSD, FreeBSD, Darwin) that
tcpdump's null printer takes; IPv4 is 2."""


def null(d: Datagram, order: str) -> bytes:
    """``d`` behind a 4-byte BSD address family: DLT_NULL in the capturing
    host's byte order (``order``), DLT_LOOP in network order."""
    family = 2 if d.ethertype == pf.ETHERTYPE_IPV4 else NULL_FAMILIES[len(d.data) % 3]
    return struct.pack(order + "I", family) + d.data


def timestamps(count: int) -> list[int]:
    """``count`` capture times from :data:`START_NS`, :data:`TIME_STEPS_NS` apart."""
    times, now = [], START_NS
    for i in range(count):
        times.append(now)
        now += TIME_STEPS_NS[i % len(TIME_STEPS_NS)]
    return times


def records(frames: Sequence[bytes], caplens: Sequence[int | None] = ()) -> list[pf.Record]:
    """Frames as records at :func:`timestamps`; ``caplens`` cut the first ones."""
    cuts = list(caplens) + [None] * (len(frames) - len(caplens))
    return [
        (t, len(f), f if cut is None else f[:cut])
        for t, f, cut in zip(timestamps(len(frames)), frames, cuts, strict=True)
    ]


SNAPLEN_CUT = 96
"""The snapshot length of the capture whose packets are cut short."""


def _on_wire(packet: bytes) -> Datagram:
    """An IPv4 or IPv6 packet as a :class:`Datagram` (by its version and
    addresses)."""
    if packet[0] >> 4 == 6:
        src, dst = (str(ipaddress.IPv6Address(packet[i : i + 16])) for i in (8, 24))
        return Datagram(pf.ETHERTYPE_IPV6, packet, mac_of(src), mac_of(dst))
    src, dst = (str(ipaddress.IPv4Address(packet[i : i + 4])) for i in (12, 16))
    return Datagram(pf.ETHERTYPE_IPV4, packet, mac_of(src), mac_of(dst))


def _big_tcp() -> tuple[Datagram, Datagram]:
    """What a sender captures of segmentation offload: an IPv4 TSO segment
    (total length 0) and an IPv6 BIG TCP one (payload length 0 and a
    hop-by-hop jumbo payload option), both longer than IP lengths go."""
    data = _binary(70000, 4)
    tso = pf.tcp(CLIENT, SERVER, 40900, 5009, data[:20000], 1, 1, "PA")
    segment = pf.tcp(CLIENT6, SERVER6, 40901, 5009, data, 1, 1, "PA")
    jumbo = pf.ipv6_options_header(
        pf.IPPROTO_TCP, pf.ipv6_option(0xC2, struct.pack("!I", 8 + len(segment)))
    )
    header = pf.ipv6(CLIENT6, SERVER6, pf.IPPROTO_HOPOPTS, b"", payload_length=0)
    return (
        _on_wire(pf.ipv4(CLIENT, SERVER, pf.IPPROTO_TCP, tso, total_length=0, df=True)),
        _on_wire(header + jumbo + segment),
    )


def cut_records() -> list[pf.Record]:
    """Ethernet frames cut in the middle of each header (IPv4 and its
    options, IPv6 and an extension header, TCP and its options, UDP, ICMP,
    an ICMP quote, ICMPv6 and an ND option, ARP), and in the payload at
    :data:`SNAPLEN_CUT`, as a small snapshot length cuts them."""
    request = _text(120, "request")
    rr = pf.ipv4_option(7, bytes([8]) + _packed(CLIENT) + bytes(8)) + pf.ipv4_option(1)
    hbh = pf.ipv6_options_header(pf.IPPROTO_UDP, pf.ipv6_option(5, b"\x00\x00"))
    solicit = bytes(4) + _packed(ROUTER6) + pf.nd_option(1, mac_of(CLIENT6))
    tso, big_tcp = _big_tcp()
    by_name = {
        "options": udp(CLIENT, SERVER, 33011, 9999, b"options", options=rr),
        "syn": _on_wire(_syn()),
        "tcp": _on_wire(
            pf.ipv4(
                CLIENT,
                SERVER,
                pf.IPPROTO_TCP,
                pf.tcp(CLIENT, SERVER, 40312, 5001, request, 7, 9, "PA", options=_ts(5, 6)),
            )
        ),
        "udp": udp(CLIENT, SERVER, 33001, 9999, b"ping over udp"),
        "echo": ip(CLIENT, SERVER, pf.IPPROTO_ICMP, pf.icmp_echo(0x1F2E, 9, _binary(56, 0))),
        "unreach": ip(FAR, CLIENT, pf.IPPROTO_ICMP, pf.icmp(3, 3, bytes(4), _quote(_probe()))),
        "v6": udp(CLIENT6, SERVER6, 33001, 9999, b"ping over udp"),
        "hbh": ip(CLIENT6, SERVER6, pf.IPPROTO_HOPOPTS, hbh + pf.udp(CLIENT6, SERVER6, 1, 2, b"")),
        "tcp6": _on_wire(
            pf.ipv6(
                CLIENT6,
                SERVER6,
                pf.IPPROTO_TCP,
                pf.tcp(CLIENT6, SERVER6, 40312, 5001, request, 7, 9, "PA", options=_ts(5, 6)),
            )
        ),
        "ns": ip(
            CLIENT6,
            "ff02::1:ff00:1",
            pf.IPPROTO_ICMPV6,
            pf.icmpv6(CLIENT6, "ff02::1:ff00:1", 135, 0, solicit),
            hop_limit=255,
        ),
        "arp": Datagram(
            pf.ETHERTYPE_ARP,
            pf.arp(1, mac_of(CLIENT), CLIENT, ZERO_MAC, ROUTER),
            mac_of(CLIENT),
            pf.MAC_BROADCAST,
        ),
        "big": udp(CLIENT, SERVER, 33008, 9999, _binary(1200, 1)),
        "tso": tso,
        "bigtcp": big_tcp,
    }
    cuts = [  # (packet, bytes past the Ethernet header)
        ("options", 10),
        ("options", 26),
        ("udp", 19),
        ("syn", 22),
        ("syn", 31),
        ("syn", 47),
        ("tcp", 36),
        ("tcp", 60),
        ("udp", 22),
        ("udp", 25),
        ("echo", 22),
        ("echo", 25),
        ("unreach", 34),
        ("unreach", 45),
        ("v6", 21),
        ("v6", 43),
        ("hbh", 44),
        ("tcp6", 70),
        ("ns", 42),
        ("ns", 67),
        ("arp", 5),
        ("arp", 17),
        ("big", SNAPLEN_CUT - 14),
        ("tcp", SNAPLEN_CUT - 14),
        ("tso", SNAPLEN_CUT - 14),
        ("bigtcp", SNAPLEN_CUT - 14),
    ]
    frames = [ethernet(by_name[name]) for name, _ in cuts]
    return records(frames, [14 + at for _, at in cuts])


class Capture(NamedTuple):
    """One capture file the test writes: its name, link type, records and
    format (classic pcap in micro or nano, or pcapng)."""

    name: str
    linktype: int
    records: list[pf.Record]
    nano: bool = False
    pcapng: bool = False
    snaplen: int = 262144


def capture_list() -> list[Capture]:
    """The test's captures: one per link type, micro and nano, a pcapng,
    and the cut packets."""
    everything = traffic()
    ip_only = [d for d in everything if d.ethertype != pf.ETHERTYPE_ARP and d.version_ok]
    v4 = [d for d in ip_only if d.ethertype == pf.ETHERTYPE_IPV4]
    v6 = [d for d in ip_only if d.ethertype == pf.ETHERTYPE_IPV6]
    eth = pf.LINKTYPE_ETHERNET

    def each(wrap: Callable[[Datagram, T], bytes], cycle: Sequence[T]) -> list[pf.Record]:
        return records([wrap(d, cycle[i % len(cycle)]) for i, d in enumerate(everything)])

    def each_ip(wrap: Callable[[Datagram, T], bytes], cycle: Sequence[T]) -> list[pf.Record]:
        return records([wrap(d, cycle[i % len(cycle)]) for i, d in enumerate(ip_only)])

    return [
        Capture("ethernet.pcap", eth, records([ethernet(d) for d in everything])),
        Capture("vlan.pcap", eth, each(ethernet, VLAN_TAGS), nano=True),
        Capture("qinq.pcap", eth, each(ethernet, QINQ_TAGS)),
        Capture("sll.pcap", pf.LINKTYPE_LINUX_SLL, each(cooked, COOKED_DEVICES), nano=True),
        Capture("sll2.pcap", pf.LINKTYPE_LINUX_SLL2, each(cooked2, SLL2_INTERFACES)),
        Capture("raw.pcap", pf.LINKTYPE_RAW, records([raw(d) for d in ip_only]), nano=True),
        Capture("ipv4.pcap", pf.LINKTYPE_IPV4, records([raw(d) for d in v4])),
        Capture("ipv6.pcap", pf.LINKTYPE_IPV6, records([raw(d) for d in v6]), nano=True),
        Capture("null.pcap", 0, each_ip(null, "<>"), nano=True),  # hosts of both byte orders
        Capture("loop.pcap", 108, records([null(d, ">") for d in ip_only])),
        Capture("ethernet.pcapng", eth, records([ethernet(d) for d in everything]), pcapng=True),
        Capture("cut.pcap", eth, cut_records(), snaplen=SNAPLEN_CUT),
    ]


def write_captures(directory: Path) -> list[Path]:
    """Write :func:`capture_list` into ``directory``; return the paths."""
    paths = []
    for cap in capture_list():
        path = directory / cap.name
        if cap.pcapng:
            pf.write_pcapng(
                path, cap.records, linktype=cap.linktype, snaplen=cap.snaplen, big_endian=True
            )
        else:
            pf.write_pcap(
                path, cap.records, linktype=cap.linktype, nano=cap.nano, snaplen=cap.snaplen
            )
        paths.append(path)
    return paths

"""Decode packets into the report ``epcap-sniff`` prints, through dpkt.

``Packet.decode()`` and :func:`decode` take a captured packet apart layer by
layer: the link layer (Ethernet with 802.1Q/802.1ad tags, Linux cooked v1
and v2, raw IPv4/IPv6, BSD loopback), the network layer (IPv4, IPv6 with its
extension headers, ARP) and the transport (TCP, UDP, ICMP, ICMPv6, SCTP).
Each layer's header is parsed with dpkt's header classes, one layer at a
time, so a truncated or malformed packet is reported as far as it decodes:
the fields found so far are filled in and :attr:`Decoded.error` says which
layer stopped and why.  Decoding never raises on packet contents, and takes
time in proportion to the packet's size (chains of tags, extension headers
and chunks are bounded).

dpkt is an optional dependency: ``pip install 'epcap[decode]'``.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import ipaddress
import json
import struct
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

try:
    import dpkt
except ModuleNotFoundError as _exc:  # pragma: no cover - exercised without the extra
    raise ModuleNotFoundError(
        "decoding packets needs dpkt: pip install 'epcap[decode]'", name="dpkt"
    ) from _exc

from ._packet import fraction_text, time_fields

if TYPE_CHECKING:
    from ._packet import Packet

__all__ = ["DATALINKS", "Decoded", "decode", "printable"]

DATALINKS = {
    0: "NULL",
    1: "EN10MB",
    12: "RAW",
    14: "RAW",
    101: "RAW",
    9: "PPP",
    108: "LOOP",
    113: "LINUX_SLL",
    228: "IPV4",
    229: "IPV6",
    276: "LINUX_SLL2",
}
"""The link-layer types (``DLT_*`` values) that :func:`decode` takes apart,
with libpcap's names for them."""

ETHERTYPES = {0x0800: "ipv4", 0x86DD: "ipv6", 0x0806: "arp"}
VLAN_ETHERTYPES = (0x8100, 0x88A8, 0x9100)
ETHERTYPE_NAMES = {
    **ETHERTYPES,
    0x8100: "802.1q",
    0x88A8: "802.1ad",
    0x9100: "802.1q-9100",
    0x8035: "rarp",
    0x8847: "mpls",
    0x8848: "mpls-multicast",
    0x8863: "pppoe-discovery",
    0x8864: "pppoe",
    0x88CC: "lldp",
    0x888E: "eapol",
    0x88E5: "macsec",
    0x88F7: "ptp",
    0x8809: "slow-protocols",
    0x9000: "loopback",
}
IP_PROTOCOLS = {
    0: "hopopt",
    1: "icmp",
    2: "igmp",
    4: "ipip",
    6: "tcp",
    17: "udp",
    41: "ipv6",
    43: "ipv6-route",
    44: "ipv6-frag",
    46: "rsvp",
    47: "gre",
    50: "esp",
    51: "ah",
    58: "icmpv6",
    59: "ipv6-nonxt",
    60: "ipv6-opts",
    88: "eigrp",
    89: "ospf",
    103: "pim",
    112: "vrrp",
    115: "l2tp",
    132: "sctp",
    135: "mobility",
    136: "udplite",
    137: "mpls-in-ip",
}
IPV6_EXTENSIONS = {0: "hop-by-hop", 43: "routing", 44: "fragment", 60: "destination", 51: "ah"}
ICMP_TYPES = {
    0: "echo-reply",
    3: "unreachable",
    4: "source-quench",
    5: "redirect",
    8: "echo-request",
    9: "router-advertisement",
    10: "router-solicitation",
    11: "time-exceeded",
    12: "parameter-problem",
    13: "timestamp-request",
    14: "timestamp-reply",
}
ICMPV6_TYPES = {
    1: "unreachable",
    2: "packet-too-big",
    3: "time-exceeded",
    4: "parameter-problem",
    128: "echo-request",
    129: "echo-reply",
    130: "mld-query",
    131: "mld-report",
    132: "mld-done",
    133: "router-solicitation",
    134: "router-advertisement",
    135: "neighbor-solicitation",
    136: "neighbor-advertisement",
    137: "redirect",
    143: "mldv2-report",
}
SCTP_CHUNKS = {
    0: "DATA",
    1: "INIT",
    2: "INIT_ACK",
    3: "SACK",
    4: "HEARTBEAT",
    5: "HEARTBEAT_ACK",
    6: "ABORT",
    7: "SHUTDOWN",
    8: "SHUTDOWN_ACK",
    9: "ERROR",
    10: "COOKIE_ECHO",
    11: "COOKIE_ACK",
    12: "ECNE",
    13: "CWR",
    14: "SHUTDOWN_COMPLETE",
}
TCP_FLAGS = (  # high bit first, as epcap's sniff lists them
    (0x80, "cwr"),
    (0x40, "ece"),
    (0x20, "urg"),
    (0x10, "ack"),
    (0x08, "psh"),
    (0x04, "rst"),
    (0x02, "syn"),
    (0x01, "fin"),
)
ARP_OPERATIONS = {1: "request", 2: "reply", 3: "rarp-request", 4: "rarp-reply"}
SLL_PACKET_TYPES = {0: "host", 1: "broadcast", 2: "multicast", 3: "otherhost", 4: "outgoing"}
PPP_PROTOCOLS = {0x21: "ipv4", 0x57: "ipv6", 0xC021: "lcp", 0x8021: "ipcp", 0xC223: "chap"}
LOOPBACK_FAMILIES = {2: "ipv4", 10: "ipv6", 24: "ipv6", 28: "ipv6", 30: "ipv6"}
SLL_PROTOCOLS = {0x0001: "802.3", 0x0004: "llc", 0x000C: "can", 0x000D: "canfd", 0x0010: "ppp"}
"""Linux cooked capture protocol values below 0x0600, which are not ethertypes."""
MAX_TAGS = 8
"""VLAN tags taken apart before giving up (real frames carry one or two)."""
MAX_EXTENSIONS = 16
"""IPv6 extension headers taken apart before giving up."""
MAX_CHUNKS = 256
"""SCTP chunks taken apart; ``protocol_header["more_chunks"]`` flags the rest."""


class DecodeError(Exception):
    """A layer that cannot be taken apart: truncated or malformed."""


def _header(cls: Any) -> Any:
    """A dpkt class with ``cls``'s header fields and no decoding of its
    payload: each layer is taken apart on its own."""
    namespace = {
        "__hdr__": cls.__hdr__,
        "__byte_order__": getattr(cls, "__byte_order__", ">"),
        "__bit_fields__": getattr(cls, "__bit_fields__", {}),
    }
    return type(f"{cls.__name__}Header", (dpkt.Packet,), namespace)


_Ethernet = _header(dpkt.ethernet.Ethernet)
_SLL = _header(dpkt.sll.SLL)
_SLL2 = _header(dpkt.sll2.SLL2)
_IP = _header(dpkt.ip.IP)
_IP6 = _header(dpkt.ip6.IP6)
_ICMP = _header(dpkt.icmp.ICMP)
_ICMP6 = _header(dpkt.icmp6.ICMP6)
_SCTP = _header(dpkt.sctp.SCTP)
_Echo = dpkt.icmp.ICMP.Echo
_VLAN = dpkt.ethernet.VLANtag8021Q
_ARP = dpkt.arp.ARP
_TCP = dpkt.tcp.TCP
_UDP = dpkt.udp.UDP
_Chunk = dpkt.sctp.Chunk
_IP6_EXTENSIONS = dpkt.ip6.EXT_HDRS_CLS

Buffer = memoryview
"""What the layers pass on: a view of the packet, never a copy of the rest."""


def mac(raw: bytes) -> str:
    """A MAC address in the usual notation: ``00:16:b6:0a:0b:0c``."""
    return bytes(raw).hex(":")


def printable(data: bytes) -> str:
    """``data`` with every byte outside printable ASCII shown as a dot."""
    return bytes(data).decode("latin-1").translate(_DOTS)


_DOTS = {i: "." for i in range(256) if not 0x20 <= i < 0x7F}


@dataclasses.dataclass
class Decoded:
    """What :func:`decode` found in one packet.

    Addresses are strings in their usual notation; fields of layers the packet
    does not have (or that did not decode) are ``None``.  ``layers`` names
    each layer taken apart, outermost first (``["ethernet", "802.1q",
    "ipv4", "tcp"]``); ``vlan`` the VLAN ids, outermost first; ``ethertype``
    and ``network`` the network layer's type and name (``ipv4``, ``ipv6``,
    ``arp``, ...), which starts ``network_offset`` bytes into the packet;
    ``transport_offset`` where the transport's header starts (or would);
    ``network_header`` that header's details (TTL or hop limit,
    identification, flags, fragment offset in 8-byte units, IPv6 extension
    headers); ``protocol`` the innermost protocol found (``tcp``, ``udp``,
    ``icmp``, ``icmpv6``, ``sctp``, ``arp``, or the name or number of one
    not taken apart); ``protocol_header`` its details (TCP flags, sequence
    and acknowledgement numbers, window, options; ICMP type and code; SCTP
    chunks; ARP operation).  ``payload`` is what follows the innermost header
    decoded; ``payload_length`` the payload's length as the headers declare
    it, which exceeds ``payload_bytes`` when the capture cut the packet.
    ``error`` says why decoding stopped early (a truncated or malformed
    header), else ``None``.
    """

    time: int
    caplen: int
    length: int
    dlt: int
    datalink: str
    layers: list[str] = dataclasses.field(default_factory=list)
    source_macaddr: str | None = None
    destination_macaddr: str | None = None
    vlan: list[int] = dataclasses.field(default_factory=list)
    ethertype: int | None = None
    source_address: str | None = None
    destination_address: str | None = None
    source_port: int | None = None
    destination_port: int | None = None
    network: str | None = None
    network_offset: int | None = None
    transport_offset: int | None = None
    network_header: dict[str, Any] = dataclasses.field(default_factory=dict)
    protocol: str | None = None
    protocol_header: dict[str, Any] = dataclasses.field(default_factory=dict)
    payload: bytes = b""
    payload_length: int | None = None
    error: str | None = None
    _segment: int | None = dataclasses.field(default=None, repr=False)

    @property
    def payload_bytes(self) -> int:
        """The number of payload bytes captured."""
        return len(self.payload)

    def timestring(self, digits: int = 9, utc: bool = False) -> str:
        """The time as ``YYYY-MM-DD HH:MM:SS.fffffffff``, local or UTC, with
        ``digits`` sub-second digits (9 for nanoseconds, 6 for micro; a
        :class:`~epcap.RawTime`'s fraction field as it is, marked invalid).
        A time no calendar date fits (before year 1, after 9999) is given
        as seconds since the epoch."""
        sec, nsec = time_fields(self.time)
        fraction = fraction_text(nsec, digits) if digits else ""
        try:
            moment = _dt.datetime.fromtimestamp(sec, _dt.UTC if utc else None)
        except (OverflowError, ValueError, OSError):
            return f"{sec}{fraction}"
        return moment.strftime("%Y-%m-%d %H:%M:%S") + fraction

    def as_dict(self, payload_limit: int | None = None, digits: int = 9) -> dict[str, Any]:
        """The report's fields as JSON-ready values: ``time`` in ISO 8601 UTC
        with ``digits`` sub-second digits (seconds since the epoch when no
        date fits) and ``time_ns`` exact, ``payload`` printable (its first
        ``payload_limit`` bytes when given) and ``payload_hex``."""
        shown = self.payload if payload_limit is None else self.payload[:payload_limit]
        stamp = self.timestring(digits, utc=True)
        iso = f"{stamp[:10]}T{stamp[11:]}Z" if stamp[10:11] == " " else stamp
        out: dict[str, Any] = {"time": iso, "time_ns": self.time}
        for field in dataclasses.fields(self):
            if field.name not in ("time", "payload") and not field.name.startswith("_"):
                out[field.name] = getattr(self, field.name)
        out["len"] = out.pop("length")
        out["payload_bytes"] = self.payload_bytes
        out["payload"] = printable(shown)
        out["payload_hex"] = shown.hex()
        return out

    def report(self, digits: int = 9, payload_limit: int | None = None, utc: bool = False) -> str:
        """The multi-line report, one ``field: value`` line each, as epcap's
        sniff prints it; values are JSON, absent fields are left out."""
        lines = [f"time: {json.dumps(self.timestring(digits, utc))}"]
        fields = self.as_dict(payload_limit, digits)
        for key in REPORT_FIELDS:
            value = fields[key]
            if value is not None and value != [] and value != {}:
                lines.append(f"{key}: {json.dumps(value)}")
        return "\n".join(lines)


REPORT_FIELDS = (
    "caplen",
    "len",
    "source_macaddr",
    "source_address",
    "source_port",
    "destination_macaddr",
    "destination_address",
    "destination_port",
    "vlan",
    "network",
    "network_header",
    "protocol",
    "protocol_header",
    "payload_length",
    "payload_bytes",
    "payload",
    "error",
)
"""The fields of :meth:`Decoded.report`, in order, after ``time``."""

Step = Callable[["Decoded", Buffer], "tuple[Step | None, Buffer]"]


def decode(packet: Packet, datalink: str | None = None) -> Decoded:
    """Take ``packet`` apart as far as it goes; never raises on its bytes.
    ``datalink`` names the link type when it is one :data:`DATALINKS`
    lacks (the capture's ``settings["datalink_name"]``); a packet of a link
    type not taken apart has no ``layers`` and its bytes as ``payload``."""
    data = memoryview(packet.data)
    d = Decoded(
        time=packet.time,
        caplen=len(data),
        length=packet.length,
        dlt=packet.dlt,
        datalink=DATALINKS.get(packet.dlt) or datalink or f"DLT_{packet.dlt}",
    )
    step: Step | None = _LINKS.get(packet.dlt)
    while step is not None:
        current = step
        try:
            step, data = current(d, data)
        except (DecodeError, dpkt.UnpackError, struct.error) as exc:
            d.error = f"{current.__name__.strip('_')}: {_why(exc)}"
            break
    d.payload = bytes(data)
    return d


def _why(exc: Exception) -> str:
    if isinstance(exc, dpkt.NeedData):
        return f"truncated ({exc})" if str(exc) else "truncated"
    if isinstance(exc, struct.error):
        return "truncated"
    return str(exc) or type(exc).__name__


def _need(buf: Buffer, n: int, what: str) -> None:
    if len(buf) < n:
        raise DecodeError(f"truncated {what} ({len(buf)} of {n} bytes)")


def _network(d: Decoded, name: str, buf: Buffer) -> Step | None:
    """The network layer starts here: name it and say which step reads it."""
    d.network = name
    d.network_offset = d.caplen - len(buf)
    return _NETWORKS.get(name)


# Link layers --------------------------------------------------------------


def _ethernet(d: Decoded, buf: Buffer) -> tuple[Step | None, Buffer]:
    _need(buf, 14, "header")
    eth = _Ethernet(buf)
    d.layers.append("ethernet")
    d.destination_macaddr, d.source_macaddr = mac(eth.dst), mac(eth.src)
    if eth.type <= 1500:  # an 802.3 length: LLC follows, not taken apart
        return _network(d, "llc", buf[14:]), buf[14 : 14 + eth.type]
    return _by_ethertype(d, eth.type, buf[14:])


def _by_ethertype(d: Decoded, ethertype: int, buf: Buffer) -> tuple[Step | None, Buffer]:
    if ethertype in VLAN_ETHERTYPES:
        if len(d.vlan) == MAX_TAGS:
            raise DecodeError(f"more than {MAX_TAGS} VLAN tags")
        return _vlan_tag(ethertype), buf
    d.ethertype = ethertype
    name = ETHERTYPE_NAMES.get(ethertype, f"ethertype-0x{ethertype:04x}")
    return _network(d, name, buf), buf


def _vlan_tag(tpid: int) -> Step:
    def _vlan(d: Decoded, buf: Buffer) -> tuple[Step | None, Buffer]:
        _need(buf, 4, "tag")
        tag = _VLAN(buf)
        d.layers.append(ETHERTYPE_NAMES[tpid])
        d.vlan.append(tag.id)
        return _by_ethertype(d, tag.type, buf[4:])

    return _vlan


def _cooked(d: Decoded, protocol: int, buf: Buffer) -> tuple[Step | None, Buffer]:
    if protocol < 0x0600:  # not an ethertype: what the interface carries
        return _network(d, SLL_PROTOCOLS.get(protocol, f"sll-0x{protocol:04x}"), buf), buf
    return _by_ethertype(d, protocol, buf)


def _sll(d: Decoded, buf: Buffer) -> tuple[Step | None, Buffer]:
    _need(buf, 16, "header")
    sll = _SLL(buf)
    d.layers.append("linux-sll")
    _cooked_address(d, sll.type, sll.hrd, sll.hlen, sll.hdr)
    return _cooked(d, sll.ethtype, buf[16:])


def _sll2(d: Decoded, buf: Buffer) -> tuple[Step | None, Buffer]:
    _need(buf, 20, "header")
    sll = _SLL2(buf)
    d.layers.append("linux-sll2")
    d.network_header["interface_index"] = sll.intindex
    _cooked_address(d, sll.type, sll.hrd, sll.hlen, sll.hdr)
    return _cooked(d, sll.ethtype, buf[20:])


def _cooked_address(d: Decoded, kind: int, hrd: int, hlen: int, addr: bytes) -> None:
    d.network_header["packet_type"] = SLL_PACKET_TYPES.get(kind, kind)
    if hrd in (1, 772) and hlen == 6:  # Ethernet, or loopback's zero address
        d.source_macaddr = mac(addr[:6])


def _loopback(d: Decoded, buf: Buffer) -> tuple[Step | None, Buffer]:
    _need(buf, 4, "header")
    family = int.from_bytes(buf[:4], "big")
    if d.dlt == 0:  # the capturing host's byte order, whichever it was
        family = min(family, int.from_bytes(buf[:4], "little"))
    d.layers.append("loopback")
    return _network(d, LOOPBACK_FAMILIES.get(family, f"family-{family}"), buf[4:]), buf[4:]


def _ppp(d: Decoded, buf: Buffer) -> tuple[Step | None, Buffer]:
    if bytes(buf[:2]) == b"\xff\x03":  # HDLC address and control
        buf = buf[2:]
    _need(buf, 1, "protocol")
    if buf[0] & 1:  # a compressed one-byte protocol field
        proto, buf = buf[0], buf[1:]
    else:
        _need(buf, 2, "protocol")
        proto, buf = int.from_bytes(buf[:2], "big"), buf[2:]
    d.layers.append("ppp")
    d.network_header["ppp_protocol"] = proto
    return _network(d, PPP_PROTOCOLS.get(proto, f"ppp-0x{proto:04x}"), buf), buf


def _raw(d: Decoded, buf: Buffer) -> tuple[Step | None, Buffer]:
    _need(buf, 1, "header")
    version = buf[0] >> 4
    if version not in (4, 6):
        raise DecodeError(f"IP version {version}")
    return _network(d, f"ipv{version}", buf), buf


def _raw4(d: Decoded, buf: Buffer) -> tuple[Step | None, Buffer]:
    return _network(d, "ipv4", buf), buf


def _raw6(d: Decoded, buf: Buffer) -> tuple[Step | None, Buffer]:
    return _network(d, "ipv6", buf), buf


# Network layers -----------------------------------------------------------


def _ipv4(d: Decoded, buf: Buffer) -> tuple[Step | None, Buffer]:
    _need(buf, 20, "header")
    ip = _IP(buf)
    if ip.v != 4:
        raise DecodeError(f"version {ip.v}, not 4")
    hl = ip.hl * 4
    if hl < 20:
        raise DecodeError(f"header length {hl} below 20")
    _need(buf, hl, "header with options")
    d.layers.append("ipv4")
    d.source_address = str(ipaddress.IPv4Address(ip.src))
    d.destination_address = str(ipaddress.IPv4Address(ip.dst))
    flags = [name for bit, name in ((ip.df, "df"), (ip.mf, "mf")) if bit]
    d.network_header.update(
        tos=ip.tos, length=ip.len, id=ip.id, flags=flags, fragment_offset=ip.offset, ttl=ip.ttl
    )
    if hl > 20:
        d.network_header["options"] = bytes(buf[20:hl]).hex()
    if ip.len == 0:  # segmentation offload: the length is what was captured
        return _transport(d, ip.p, buf[hl:], len(buf) - hl, ip.offset == 0)
    if ip.len < hl:
        raise DecodeError(f"total length {ip.len} below the header's {hl}")
    return _transport(d, ip.p, buf[hl : ip.len], ip.len - hl, ip.offset == 0)


def _ipv6(d: Decoded, buf: Buffer) -> tuple[Step | None, Buffer]:
    _need(buf, 40, "header")
    ip6 = _IP6(buf)
    if ip6.v != 6:
        raise DecodeError(f"version {ip6.v}, not 6")
    d.layers.append("ipv6")
    d.source_address = str(ipaddress.IPv6Address(ip6.src))
    d.destination_address = str(ipaddress.IPv6Address(ip6.dst))
    d.network_header.update(
        traffic_class=ip6.fc,
        flow_label=ip6.flow,
        payload_length=ip6.plen,
        hop_limit=ip6.hlim,
        next_header=ip6.nxt,
        extension_headers=[],
    )
    if ip6.plen == 0:  # a jumbogram, or segmentation offload
        return _ipv6_next(d, ip6.nxt, buf[40:], len(buf) - 40)
    return _ipv6_next(d, ip6.nxt, buf[40 : 40 + ip6.plen], ip6.plen)


def _ipv6_next(d: Decoded, nxt: int, buf: Buffer, left: int) -> tuple[Step | None, Buffer]:
    """The header after IPv6's or an extension's: ``left`` bytes declared."""
    if nxt not in IPV6_EXTENSIONS:
        return _transport(d, nxt, buf, left, first_fragment=True)
    taken: list[str] = d.network_header["extension_headers"]
    if len(taken) == MAX_EXTENSIONS:
        raise DecodeError(f"more than {MAX_EXTENSIONS} extension headers")

    def _ipv6_extension(d: Decoded, buf: Buffer) -> tuple[Step | None, Buffer]:
        ext = _IP6_EXTENSIONS[nxt](bytes(buf[:2048]))  # 2048: the longest there is
        if ext.length > len(buf):
            raise DecodeError(f"truncated {IPV6_EXTENSIONS[nxt]} header")
        taken.append(IPV6_EXTENSIONS[nxt])
        rest = buf[ext.length :]
        if nxt == 44:
            d.network_header.update(
                fragment_offset=ext.frag_off, more_fragments=bool(ext.m_flag), id=ext.id
            )
            if ext.frag_off:
                return _transport(d, ext.nxt, rest, left - ext.length, first_fragment=False)
        return _ipv6_next(d, ext.nxt, rest, left - ext.length)

    return _ipv6_extension, buf


def _arp(d: Decoded, buf: Buffer) -> tuple[Step | None, Buffer]:
    _need(buf, 8, "header")
    hln, pln = buf[4], buf[5]
    if (hln, pln) != (6, 4):
        raise DecodeError(f"address lengths {hln}/{pln}, not Ethernet/IPv4")
    _need(buf, 28, "Ethernet/IPv4 body")
    arp = _ARP(buf)
    d.layers.append("arp")
    d.protocol = "arp"
    d.source_address = str(ipaddress.IPv4Address(arp.spa))
    d.destination_address = str(ipaddress.IPv4Address(arp.tpa))
    d.protocol_header.update(
        operation=ARP_OPERATIONS.get(arp.op, arp.op),
        sender_macaddr=mac(arp.sha),
        target_macaddr=mac(arp.tha),
    )
    return None, buf[28:]


# Transports ---------------------------------------------------------------


def _transport(
    d: Decoded, proto: int, buf: Buffer, length: int, first_fragment: bool
) -> tuple[Step | None, Buffer]:
    """The transport segment: ``length`` bytes by the IP header, ``buf`` the
    part captured.  A later fragment carries no transport header."""
    d.protocol = IP_PROTOCOLS.get(proto, f"ip-proto-{proto}")
    d.transport_offset = d.caplen - len(buf)
    d._segment = max(length, 0)
    step = _TRANSPORTS.get(proto) if first_fragment else None
    if step is None:
        d.payload_length = d._segment
    return step, buf


def _ports(d: Decoded, seg: Any) -> None:
    d.source_port, d.destination_port = seg.sport, seg.dport


def _tcp(d: Decoded, buf: Buffer) -> tuple[Step | None, Buffer]:
    _need(buf, 20, "header")
    off = (buf[12] >> 4) * 4
    if off < 20:
        raise DecodeError(f"header length {off} below 20")
    _need(buf, off, "header with options")
    tcp = _TCP(buf)
    d.layers.append("tcp")
    _ports(d, tcp)
    d.protocol_header.update(
        flags=[name for bit, name in TCP_FLAGS if tcp.flags & bit],
        seq=tcp.seq,
        ack=tcp.ack,
        window=tcp.win,
        urgent=tcp.urp,
        header_length=off,
    )
    if tcp.opts:
        d.protocol_header["options"] = _tcp_options(bytes(tcp.opts))
    d.payload_length = max((d._segment or 0) - off, 0)
    return None, buf[off:]


def _tcp_options(raw: bytes) -> list[str]:
    named = {0: "eol", 1: "nop", 4: "sackOK"}
    out: list[str] = []
    for opt in dpkt.tcp.parse_opts(raw):
        if opt is None:
            out.append("malformed")
            break
        kind, val = opt
        if kind in named:
            out.append(named[kind])
        elif kind == 2 and len(val) == 2:
            out.append(f"mss {int.from_bytes(val, 'big')}")
        elif kind == 3 and len(val) == 1:
            out.append(f"wscale {val[0]}")
        elif kind == 8 and len(val) == 8:
            tsval, tsecr = struct.unpack(">II", val)
            out.append(f"TS val {tsval} ecr {tsecr}")
        elif kind == 5 and val and len(val) % 8 == 0:
            edges = struct.unpack(f">{len(val) // 4}I", val)
            pairs = zip(edges[::2], edges[1::2], strict=True)
            out.append("sack " + " ".join(f"{a}:{b}" for a, b in pairs))
        else:
            out.append(f"opt-{kind}" + (f" {val.hex()}" if val else ""))
    return out


def _udp(d: Decoded, buf: Buffer) -> tuple[Step | None, Buffer]:
    _need(buf, 8, "header")
    udp = _UDP(buf)
    d.layers.append("udp")
    _ports(d, udp)
    d.protocol_header.update(length=udp.ulen, checksum=udp.sum)
    if udp.ulen < 8:
        d.payload_length = max((d._segment or 0) - 8, 0)
        return None, buf[8:]
    d.payload_length = udp.ulen - 8
    return None, buf[8 : udp.ulen]


def _icmp(d: Decoded, buf: Buffer) -> tuple[Step | None, Buffer]:
    _need(buf, 4, "header")
    icmp = _ICMP(buf)
    d.layers.append("icmp")
    d.protocol_header.update(type=icmp.type, code=icmp.code, name=ICMP_TYPES.get(icmp.type))
    d.payload_length = max((d._segment or 0) - 8, 0)
    if icmp.type in (0, 8, 13, 14):  # echo and timestamp carry id and seq
        _need(buf, 8, "echo header")
        echo = _Echo(buf[4:])
        d.protocol_header.update(id=echo.id, seq=echo.seq)
    return None, buf[8:]


def _icmpv6(d: Decoded, buf: Buffer) -> tuple[Step | None, Buffer]:
    _need(buf, 4, "header")
    icmp = _ICMP6(buf)
    d.layers.append("icmpv6")
    d.protocol_header.update(type=icmp.type, code=icmp.code, name=ICMPV6_TYPES.get(icmp.type))
    d.payload_length = max((d._segment or 0) - 8, 0)
    if icmp.type in (128, 129):
        _need(buf, 8, "echo header")
        echo = _Echo(buf[4:])
        d.protocol_header.update(id=echo.id, seq=echo.seq)
    elif icmp.type in (135, 136, 137):  # neighbour discovery names a target
        _need(buf, 24, "target address")
        d.protocol_header["target"] = str(ipaddress.IPv6Address(bytes(buf[8:24])))
    return None, buf[8:]


def _sctp(d: Decoded, buf: Buffer) -> tuple[Step | None, Buffer]:
    _need(buf, 12, "common header")
    sctp = _SCTP(buf)
    d.layers.append("sctp")
    _ports(d, sctp)
    chunks: list[str] = []
    d.protocol_header.update(verification_tag=sctp.vtag, chunks=chunks)
    pos, user_data = 12, []
    while len(buf) - pos >= 4:
        if len(chunks) == MAX_CHUNKS:
            d.protocol_header["more_chunks"] = True
            break
        chunk = _Chunk(buf[pos:])
        if chunk.len < 4:
            raise DecodeError(f"chunk length {chunk.len} below 4")
        chunks.append(SCTP_CHUNKS.get(chunk.type, f"chunk-{chunk.type}"))
        if chunk.type == 0:  # DATA: TSN, stream, sequence, PPID, then user data
            user_data.append(bytes(chunk.data[12:]))
        if chunk.len > len(buf) - pos:
            raise DecodeError(f"truncated {chunks[-1]} chunk")
        pos += (chunk.len + 3) & ~3
    return None, memoryview(b"".join(user_data))


_LINKS: dict[int, Step] = {
    0: _loopback,
    1: _ethernet,
    9: _ppp,
    12: _raw,
    14: _raw,
    101: _raw,
    108: _loopback,
    113: _sll,
    228: _raw4,
    229: _raw6,
    276: _sll2,
}
_NETWORKS: dict[str, Step] = {"ipv4": _ipv4, "ipv6": _ipv6, "arp": _arp}
_TRANSPORTS: dict[int, Step] = {6: _tcp, 17: _udp, 1: _icmp, 58: _icmpv6, 132: _sctp}

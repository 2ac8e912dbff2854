"""The printers' common ground: one packet being printed (its bytes, how far
a printer may read, the text so far), tcpdump's dumps, names and tables
several layers share, and the Internet checksum with its pseudo-headers."""

from __future__ import annotations

import socket
import struct
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from . import Printer

MAXIMUM_SNAPLEN = 262144
"""tcpdump's largest believable packet: a larger length is an invalid header."""


class Truncated(Exception):
    """tcpdump's longjmp: the packet ended where a printer needed more."""


class Nd:
    """One packet being printed: its bytes, how far a printer may read
    (the snapshot end, narrowed by a header's own length and restored), the
    protocol being printed (for ``[|proto]``) and the text so far."""

    __slots__ = ("data", "end", "ll_hdr_len", "names", "o", "out", "printer", "proto", "saved")

    def __init__(self, printer: Printer, data: bytes) -> None:
        self.printer = printer
        self.o = printer.options
        self.names = printer._names
        self.data = data
        self.end = len(data)
        self.saved: list[int] = []
        self.proto = ""
        self.out: list[str] = []
        self.ll_hdr_len = 0

    def text(self) -> str:
        return "".join(self.out)

    def p(self, text: str) -> None:
        self.out.append(text)

    def trunc(self) -> None:
        self.p(f" [|{self.proto}]")

    def invalid(self) -> None:
        self.p(" (invalid)")

    @property
    def suppress_default(self) -> bool:
        return bool(self.o.hex or self.o.hexascii or self.o.quick)

    # Reading, with the bounds tcpdump's GET_ and ND_TTEST macros check.

    def test(self, off: int, n: int) -> bool:
        return n >= 0 and off + n <= self.end

    def check(self, off: int, n: int) -> None:
        if not self.test(off, n):
            raise Truncated

    def avail(self, off: int) -> int:
        return max(self.end - off, 0)

    def u1(self, off: int) -> int:
        self.check(off, 1)
        return self.data[off]

    def u2(self, off: int) -> int:
        self.check(off, 2)
        return int.from_bytes(self.data[off : off + 2], "big")

    def u4(self, off: int) -> int:
        self.check(off, 4)
        return int.from_bytes(self.data[off : off + 4], "big")

    def raw(self, off: int, n: int) -> bytes:
        self.check(off, n)
        return self.data[off : off + n]

    def ip4(self, off: int) -> str:
        return self.names.ip4(self.raw(off, 4))

    def ip6(self, off: int) -> str:
        return self.names.ip6(self.raw(off, 16))

    def mac(self, off: int) -> str:
        return self.names.mac(self.raw(off, 6))

    def push(self, off: int, length: int) -> None:
        """Narrow the readable bytes to ``length`` from ``off`` (a header's
        own length), until :meth:`pop`."""
        self.saved.append(self.end)
        self.narrow(off, length)

    def narrow(self, off: int, length: int) -> None:
        if length <= self.avail(off):
            self.end = off + length

    def narrow_from(self, off: int, length: int) -> None:
        """tcpdump's nd_change_snaplen: the readable end becomes ``length``
        from ``off`` within what the enclosing header allows."""
        limit = self.saved[-2] if len(self.saved) > 1 else self.end
        if length <= limit - off:
            self.end = off + length

    def pop(self) -> None:
        self.end = self.saved.pop()

    # Dumps, as tcpdump's print-ascii.c lays them out.

    def hex_ascii(self, indent: str, off: int, length: int) -> None:
        """tcpdump's -X dump of ``length`` bytes: what was captured of them,
        then, if that was less, the packet is cut short here."""
        self.p(dump(self.data[off : off + min(length, self.avail(off))], indent, ascii=True))
        if length > self.avail(off):
            raise Truncated

    def hex(self, indent: str, off: int, length: int) -> None:
        """tcpdump's -x dump, as :meth:`hex_ascii`."""
        self.p(dump(self.data[off : off + min(length, self.avail(off))], indent, ascii=False))
        if length > self.avail(off):
            raise Truncated

    def ascii(self, off: int, length: int) -> None:
        """tcpdump's -A text of ``length`` bytes, as :meth:`hex_ascii`."""
        cut = length > self.avail(off)
        length = min(length, self.avail(off))
        data = self.data[off : off + length]
        chars = []
        for i, c in enumerate(data):
            if c == 0x0D:  # a CR is dropped before a line feed or at the end
                if length - i - 1 > 1 and data[i + 1] != 0x0A:
                    chars.append(".")
            elif 0x21 <= c <= 0x7E or c in (0x09, 0x20, 0x0A):
                chars.append(chr(c))
            else:
                chars.append(".")
        self.p("\n" + "".join(chars))
        if cut:
            raise Truncated

    def unknown_data(self, off: int, indent: str, length: int) -> None:
        """tcpdump's print_unknown_data: a hex dump of what was captured."""
        if not self.test(off, 0):
            self.p(
                f"{indent}Dissector error: print_unknown_data called with pointer past end "
                "of packet"
            )
            return
        self.hex(indent, off, min(length, self.avail(off)))

    def default(self, off: int, length: int) -> None:
        """What tcpdump prints for a payload it does not take apart: a hex
        and ASCII dump, unless -x, -X or -q asked for less."""
        if not self.suppress_default:
            self.hex_ascii("\n\t", off, length)


def dump(data: bytes, indent: str = "\n\t", ascii: bool = True) -> str:
    """``data`` as tcpdump's ``-x`` (``ascii=False``) or ``-X`` dump: each
    line ``indent``, the offset, 16 bytes in hex, and with ``ascii`` the
    bytes again with a dot for each one that is not a printable character
    (a space is a dot too)."""
    lines = []
    for at in range(0, len(data), 16):
        row = data[at : at + 16]
        words = " ".join(row[i : i + 2].hex() for i in range(0, len(row), 2))
        if ascii:
            lines.append(
                f"{indent}0x{at:04x}:  {words:<39}  {row.decode('latin-1').translate(_DOTS)}"
            )
        else:
            lines.append(f"{indent}0x{at:04x}:  {words}")
    return "".join(lines)


_DOTS = {i: "." for i in range(256) if not 0x21 <= i <= 0x7E}


def invalid_header(nd: Nd, caplen: int, length: int) -> bool:
    problems = []
    if caplen == 0:
        problems.append("caplen==0")
    if length == 0:
        problems.append("len==0")
    elif length < caplen:
        problems.append(f"len({length}) < caplen({caplen})")
    if caplen > MAXIMUM_SNAPLEN:
        problems.append(f"caplen({caplen}) > {MAXIMUM_SNAPLEN}")
    if length > MAXIMUM_SNAPLEN:
        problems.append(f"len({length}) > {MAXIMUM_SNAPLEN}")
    if problems:
        nd.p("[Invalid header: " + ", ".join(problems) + "]")
    return bool(problems)


# Names ---------------------------------------------------------------------


class Names:
    """Addresses, ports and protocols as text: numbers with ``-n``, else
    what this host's resolver and /etc/services say, once each."""

    def __init__(self, numeric: bool) -> None:
        self.numeric = numeric
        self._cache: dict[object, str] = {}

    def _once(self, key: object, make: Callable[[], str]) -> str:
        name = self._cache.get(key)
        if name is None:
            name = self._cache[key] = make()
        return name

    def ip4(self, raw: bytes) -> str:
        return self._once(raw, lambda: self._host(socket.inet_ntoa(raw)))

    def ip6(self, raw: bytes) -> str:
        return self._once(raw, lambda: self._host(ip6_text(raw)))

    def _host(self, text: str) -> str:
        if self.numeric:
            return text
        try:
            return socket.gethostbyaddr(text)[0]
        except OSError:
            return text

    def mac(self, raw: bytes) -> str:
        def make() -> str:
            text = raw.hex(":")
            if not self.numeric:
                text += f" (oui {_OUIS.get(int.from_bytes(raw[:3], 'big'), 'Unknown')})"
            return text

        return self._once(("mac", raw), make)

    def port(self, port: int, proto: str) -> str:
        def make() -> str:
            if not self.numeric:
                try:
                    return socket.getservbyport(port, proto)
                except OSError:
                    pass
            return str(port)

        return self._once((proto, port), make)

    def protocol(self, number: int) -> str | None:
        return None if self.numeric else _PROTOCOL_NAMES.get(number)


def ip6_text(raw: bytes) -> str:
    """An IPv6 address as tcpdump writes it: the longest run of two or more
    zero words (the first of equal runs) as ``::``, and an IPv4 address
    compatible (``::a.b.c.d``) or mapped (``::ffff:a.b.c.d``) in dots."""
    words = struct.unpack("!8H", raw)
    best, run = (-1, 0), (-1, 0)
    for i, w in enumerate(words):
        if w == 0:
            run = (i, 1) if run[0] < 0 else (run[0], run[1] + 1)
            if best[0] < 0 or run[1] > best[1]:
                best = run
        else:
            run = (-1, 0)
    base, n = best if best[1] >= 2 else (-1, 0)
    out = []
    for i, w in enumerate(words):
        if base <= i < base + n:
            if i == base:
                out.append(":")
            continue
        if i:
            out.append(":")
        if i == 6 and base == 0 and (n == 6 or (n == 5 and words[5] == 0xFFFF)):
            out.append(socket.inet_ntoa(raw[12:]))
            break
        out.append(f"{w:x}")
    if base >= 0 and base + n == 8:
        out.append(":")
    return "".join(out)


ETHERTYPE_IP = 0x0800
ETHERTYPE_ARP = 0x0806
ETHERTYPE_REVARP = 0x8035
ETHERTYPE_IPV6 = 0x86DD
ETHERTYPE_TRAIL = 0x1000
VLAN_TYPES = (0x8100, 0x9100, 0x9200, 0x88A8)

ETHERTYPE_NAMES = {
    0x0800: "IPv4",
    0x8847: "MPLS unicast",
    0x8848: "MPLS multicast",
    0x86DD: "IPv6",
    0x8100: "802.1Q",
    0x9100: "802.1Q-9100",
    0x88A8: "802.1Q-QinQ",
    0x9200: "802.1Q-9200",
    0x88E5: "802.1AE MACsec",
    0x0200: "PUP",
    0x0806: "ARP",
    0x8035: "Reverse ARP",
    0x0600: "NS",
    0x0500: "Sprite",
    0x1000: "Trail",
    0x6001: "MOP DL",
    0x6002: "MOP RC",
    0x6003: "DN",
    0x6004: "LAT",
    0x6007: "SCA",
    0x6558: "TEB",
    0x8038: "Lanbridge",
    0x803C: "DEC DNS",
    0x803E: "DEC DTS",
    0x805B: "VEXP",
    0x805C: "VPROD",
    0x809B: "Appletalk",
    0x80F3: "Appletalk ARP",
    0x8137: "IPX",
    0x880B: "PPP",
    0x8808: "MPCP",
    0x8809: "Slow Protocols",
    0x8863: "PPPoE D",
    0x8864: "PPPoE S",
    0x888E: "EAPOL",
    0x8899: "Realtek protocols",
    0x886F: "MS NLB heartbeat",
    0x8870: "Jumbo",
    0x894F: "NSH",
    0x9000: "Loopback",
    0xFEFE: "OSI",
    0x00FE: "GRE-OSI",
    0xABCD: "CFM (old)",
    0x8902: "CFM",
    0x893A: "IEEE1905.1",
    0x88CC: "LLDP",
    0x88CA: "TIPC",
    0x0707: "GeoNet (old)",
    0x8947: "GeoNet",
    0x1111: "CALM FAST",
    0x88A2: "AoE",
    0x88F7: "PTP",
    0xD28B: "Arista Vendor Specific Protocol",
}
"""tcpdump's names of Ethernet types (print-ether.c's table)."""


_PROTOCOL_NAMES = dict(
    enumerate(
        (  # noqa: SIM905 - a list literal would take 143 lines
            "hopopt icmp igmp ggp ipencap st tcp cbt egp igp bbn-rcc-mon nvp-ii pup argus emcon "
            "xnet chaos udp mux dcn-meas hmp prm xns-idp trunk-1 trunk-2 leaf-1 leaf-2 rdp irtp "
            "iso-tp4 netblt mfe-nsp merit-inp dccp 3pc idpr xtp ddp idpr-cmtp tp++ il ipv6 sdrp "
            "ipv6-route ipv6-frag idrp rsvp gre dsr bna esp ah i-nlsp swipe narp mobile tlsp skip "
            "ipv6-icmp ipv6-nonxt ipv6-opts - cftp - sat-expak kryptolan rvd ippc - sat-mon visa "
            "ipcv cpnx rspf wsn pvp br-sat-mon sun-nd wb-mon wb-expak iso-ip vmtp secure-vmtp "
            "vines ttp nsfnet-igp dgp tcf eigrp ospf sprite-rpc larp mtp ax.25 ipip micp scc-sp "
            "etherip encap - gmtp ifmp pnni pim aris scps qnx a/n ipcomp snp compaq-peer "
            "ipx-in-ip vrrp pgm - l2tp ddx iatp stp srp uti smp sm ptp isis fire crtp crudp "
            "sscopmce iplt sps pipe sctp fc rsvp-e2e-ignore mobility-header udplite mpls-in-ip "
            "manet hip shim6 wesp rohc"
        ).split()
    )
)
"""IANA's keywords for IP protocols 0 to 142, as /etc/protocols and tcpdump
spell them (``-`` where none is assigned): what tcpdump prints without -n."""
_PROTOCOL_NAMES = {k: v for k, v in _PROTOCOL_NAMES.items() if v != "-"}
_PROTOCOL_NAMES.update({253: "exptest-253", 254: "exptest-254", 255: "reserved"})


def bits(
    table: tuple[tuple[int, str], ...], value: int, none: str = "none", sep: str = ", "
) -> str:
    """tcpdump's bittok2str: the names of the bits set, in table order."""
    names = [name for bit, name in table if value & bit == bit and bit]
    return sep.join(names) if names else none


def checksum(*parts: bytes) -> int:
    """The Internet checksum of the parts (each an even length but the
    last): 0 when a packet with its checksum field checks out."""
    data = b"".join(parts)
    if len(data) % 2:
        data += b"\0"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def should_be(field: int, computed: int) -> int:
    """tcpdump's in_cksum_shouldbe: the value the checksum field should hold."""
    total = field + computed
    total = (total & 0xFFFF) + (total >> 16)
    total = (total & 0xFFFF) + (total >> 16)
    return total & 0xFFFF


class LocalCut(Exception):
    """A printer's own ``goto trunc``: ``[|proto]``, then it returns."""


def caret(c: int) -> str:
    """A byte as tcpdump's fn_print_char shows it: M- for the high bit,
    ^ for a control character."""
    prefix = ""
    if c > 0x7F:
        c &= 0x7F
        prefix = "M-"
    if not 0x20 <= c <= 0x7E:
        return f"{prefix}^{chr(c ^ 0x40)}"
    return prefix + chr(c)


# Checksums' pseudo-headers ----------------------------------------------------


def _ip6_final_destination(nd: Nd, ip6: int) -> bytes:
    """The destination a checksum's pseudo-header uses: the last address of
    a routing header, if the packet has one (print-ip6.c's ip6_finddst)."""
    cp, advance, nh = ip6, 40, nd.u1(ip6 + 6)
    dst = ip6 + 24
    while cp < nd.end:
        cp += advance
        if nh in (0, 60, 62, 135):
            advance = (nd.u1(cp + 1) + 1) << 3
            nh = nd.u1(cp)
        elif nh == 44:
            advance, nh = 8, nd.u1(cp)
        elif nh == 43:
            if not nd.test(cp, 4):
                break
            length, kind = nd.u1(cp + 1), nd.u1(cp + 2)
            if kind in (0, 2) and length % 2 == 0:
                for i in range(length >> 1):
                    if not nd.test(cp + 8 + 16 * i, 16):
                        break
                    dst = cp + 8 + 16 * i
            elif kind == 4 and length % 2 == 0 and nd.test(cp + 8, 16):
                dst = cp + 8
            break
        else:
            break
    return nd.raw(dst, 16)


def pseudo4(nd: Nd, ip: int, proto: int, length: int) -> bytes:
    dst = nd.raw(ip + 16, 4)
    if nd.u1(ip) & 0x0F != 5:  # a source route's last hop is the destination
        dst = _ip_final_destination(nd, ip) or dst
    return nd.raw(ip + 12, 4) + dst + struct.pack("!BBH", 0, proto, length & 0xFFFF)


def _ip_final_destination(nd: Nd, ip: int) -> bytes | None:
    hlen = (nd.u1(ip) & 0x0F) * 4
    if hlen < 20:
        return None
    cp, length = ip + 20, hlen - 20
    try:
        while length:
            kind = nd.u1(cp)
            if kind == 0:
                break
            optlen = 1 if kind == 1 else nd.u1(cp + 1)
            if kind != 1 and optlen < 2:
                break
            if length < optlen or not nd.test(cp, optlen):
                return None
            if kind in (137, 131) and optlen >= 7:
                return nd.raw(cp + optlen - 4, 4)
            cp, length = cp + optlen, length - optlen
    except Truncated:
        return None
    return None


def pseudo6(nd: Nd, ip6: int, proto: int, length: int) -> bytes:
    routed = nd.u1(ip6 + 6) in (0, 60, 62, 135, 44, 43)  # a routing header may follow
    dst = _ip6_final_destination(nd, ip6) if routed else nd.raw(ip6 + 24, 16)
    return nd.raw(ip6 + 8, 16) + dst + struct.pack("!IxxxB", length, proto)


def is_ip6(nd: Nd, iph: int) -> bool:
    return nd.data[iph] >> 4 == 6


_OUIS = {
    0x000000: "Ethernet",
    0x00000C: "Cisco",
    0x00005E: "IANA",
    0x000081: "Nortel Networks SONMP",
    0x0000F8: "Cisco bridged",
    0x0080C2: "Ethernet bridged",
    0x00A03E: "ATM Forum",
    0x00E02F: "DOCSIS Spanning Tree",
    0x080007: "Appletalk",
    0x009069: "Juniper",
    0x080009: "Hewlett-Packard",
    0x00120F: "IEEE 802.3 Private",
    0x0012BB: "ANSI/TIA",
    0x001B21: "DCBX",
    0x002320: "Nicira Networks",
    0x5C16C7: "Big Switch Networks",
    0xB0D2F5: "Vello Systems",
    0x002481: "HP",
    0x0004EA: "HP-Labs",
    0x748771: "Infoblox Inc",
    0xA42305: "Open Networking Lab",
    0x00049F: "Freescale",
    0x0015AD: "Netronome",
    0x001018: "Broadcom",
    0x00E004: "PMC-Sierra",
    0xD0F0DB: "Ericsson",
}
"""The organisations whose OUI tcpdump names after a MAC address without -n."""

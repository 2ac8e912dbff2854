"""Print packets the way tcpdump prints them.

    printer = Printer(Options(numeric=True, verbose=1))
    for pkt in cap:
        print(printer.format(pkt))

:class:`Printer` turns each :class:`~epcap.Packet` into the text tcpdump
4.99 prints for it with the same options: ``-n``, ``-e``, ``-v``/``-vv``,
``-q``, ``-S``, every ``-t`` form, ``-x``/``-xx``, ``-X``/``-XX``,
``-A``/``-AA``, ``-#`` and ``--nano`` (:class:`Options` names them).  It
takes apart the link layers Ethernet (with 802.1Q and 802.1ad tags), Linux
cooked v1 and v2 and raw IP; IPv4 (with options and fragments), IPv6 (with
its extension headers) and ARP; TCP, UDP, ICMP and ICMPv6, down to
tcpdump's wording, its checksums and its marks for truncated (``[|tcp]``)
and malformed packets.  Where tcpdump would go on to decode an application
protocol, or a link or network type not listed, the line stops at what was
taken apart, as tcpdump's does for a type it does not know.

Times follow the file's own fields: a pcap file's unsigned seconds (dates
up to 2106, where tcpdump 4.99.3 on libpcap 1.10.3 prints ``[Error
converting time]``), and a fraction field of a second or more printed as
the file holds it, marked ``(invalid us)`` or ``(invalid ns)`` as newer
tcpdump marks it (:class:`~epcap.RawTime`).

The printer is a port of tcpdump's printers' behaviour, not of their code:
it walks the captured bytes the way they do, so that a packet cut short
stops at the same byte with the same mark.  It never raises on a packet's
contents.
"""

from __future__ import annotations

import dataclasses
import time as _time

from .._packet import Packet, fraction_text, time_fields
from ._link import LINKS, unknown_link
from ._nd import MAXIMUM_SNAPLEN, Names, Nd, Truncated, dump, invalid_header

__all__ = ["MAXIMUM_SNAPLEN", "Options", "Printer", "dump"]


@dataclasses.dataclass(frozen=True)
class Options:
    """tcpdump's printing options, by what they do.

    ``numeric`` (``-n``): addresses and ports as numbers, nothing looked up;
    ``link`` (``-e``): the link-level header; ``verbose`` (the number of
    ``-v``): header details and checksums; ``quick`` (``-q``): less protocol
    detail; ``absolute`` (``-S``): TCP sequence numbers as they are, not
    relative to the conversation's first; ``timestamps`` (the number of
    ``-t``): 0 the time of day, 1 none, 2 seconds since the epoch, 3 the
    time since the previous packet, 4 the date and time, 5 the time since the
    first packet; ``hex`` (``-x``, 2 for ``-xx``) and ``hexascii`` (``-X``,
    ``-XX``): a dump of the packet from its network layer (2: from its link
    layer), ``ascii`` (``-A``, ``-AA``) the same as text; ``number``
    (``-#``): each line's packet number; ``nano``: nanosecond digits
    (``--nano``), else microseconds; ``checksums``: verify checksums under
    ``-v`` (``-K`` turns it off).
    """

    numeric: bool = False
    link: bool = False
    verbose: int = 0
    quick: bool = False
    absolute: bool = False
    timestamps: int = 0
    hex: int = 0
    hexascii: int = 0
    ascii: int = 0
    number: bool = False
    nano: bool = False
    checksums: bool = True

    def __post_init__(self) -> None:
        if not 0 <= self.timestamps <= 5:
            raise ValueError("only -t, -tt, -ttt, -tttt and -ttttt are supported")


class Printer:
    """Formats packets as tcpdump with :class:`Options` does.  It keeps what
    tcpdump keeps between packets (the packet count for ``-#``, the previous
    and first times for ``-ttt`` and ``-ttttt``, each TCP conversation's
    first sequence numbers for relative ones, names looked up), so one
    printer serves one stream of packets, in order."""

    def __init__(self, options: Options | None = None) -> None:
        self.options = options or Options()
        self.count = 0
        """Packets formatted so far."""
        self._reference: tuple[int, int] = (0, 0)
        self._tcp: dict[tuple[bytes, bytes, int], list[int]] = {}
        self._names = Names(self.options.numeric)

    def format(self, packet: Packet) -> str:
        """``packet`` as tcpdump prints it: one line, or several with
        ``-v``, ``-x`` and friends, without the final newline."""
        self.count += 1
        nd = Nd(self, packet.data)
        if self.options.number:
            nd.p(f"{self.count:5d}  ")
        if invalid_header(nd, len(packet.data), packet.length):
            return nd.text()
        self._timestamp(nd, packet.time)
        nd.proto = ""
        try:
            LINKS.get(packet.dlt, unknown_link)(nd, packet.dlt, packet.length)
        except Truncated:
            nd.trunc()
            nd.ll_hdr_len = 0  # then every dump starts at the link layer
        nd.end = len(packet.data)
        self._dump(nd)
        return nd.text()

    def _relative(
        self, src: bytes, dst: bytes, sport: int, dport: int, seq: int, ack: int, syn: bool
    ) -> tuple[int, int, bool, int, int]:
        """Sequence numbers relative to the conversation's first seen (tcpdump's
        tcp_seq_hash): one entry for both directions, new at each SYN."""
        rev = sport > dport or (sport == dport and src > dst)
        key = (dst, src, (dport << 16) | sport) if rev else (src, dst, (sport << 16) | dport)
        entry = self._tcp.get(key)
        if entry is None or syn:
            entry = [ack - 1, seq] if rev else [seq, ack - 1]
            entry = [x & 0xFFFFFFFF for x in entry]
            self._tcp[key] = entry
        elif rev:
            seq, ack = (seq - entry[1]) & 0xFFFFFFFF, (ack - entry[0]) & 0xFFFFFFFF
        else:
            seq, ack = (seq - entry[0]) & 0xFFFFFFFF, (ack - entry[1]) & 0xFFFFFFFF
        return seq, ack, rev, entry[0], entry[1]

    # Time stamps ----------------------------------------------------------

    def _timestamp(self, nd: Nd, time: int) -> None:
        t = self.options.timestamps
        if t == 1:
            return
        stamp = self._fields(time)
        if t == 0:
            nd.p(self._clock(stamp, "%H:%M:%S", local=True) + " ")
        elif t == 2:
            nd.p(f"{stamp[0]}{self._fraction(stamp[1])} " if stamp[0] >= 0 else _OVERFLOW + " ")
        elif t == 4:
            nd.p(self._clock(stamp, "%Y-%m-%d %H:%M:%S", local=True) + " ")
        else:
            if self._reference == (0, 0):  # tcpdump: a reference of 0.0 is none
                self._reference = stamp
            negative = stamp < self._reference
            later, earlier = (self._reference, stamp) if negative else (stamp, self._reference)
            sec, frac = later[0] - earlier[0], later[1] - earlier[1]
            if frac < 0:
                sec, frac = sec - 1, frac + (10**9 if self.options.nano else 10**6)
            nd.p(("-" if negative else " ") + self._clock((sec, frac), "%H:%M:%S") + " ")
            if t == 3:
                self._reference = stamp

    def _fields(self, time: int) -> tuple[int, int]:
        """(seconds, fraction in the shown unit), as the file held them."""
        sec, ns = time_fields(time)
        return sec, ns // (1 if self.options.nano else 1000)

    def _fraction(self, frac: int) -> str:
        nano = self.options.nano
        return fraction_text(frac if nano else frac * 1000, 9 if nano else 6)

    def _clock(self, stamp: tuple[int, int], fmt: str, local: bool = False) -> str:
        sec, frac = stamp
        if sec < 0:
            return _OVERFLOW
        try:
            moment = _time.localtime(sec) if local else _time.gmtime(sec)
        except (OverflowError, OSError, ValueError):
            return "[Error converting time]"
        return _time.strftime(fmt, moment) + self._fraction(frac)

    # Dumps -------------------------------------------------------------------

    def _dump(self, nd: Nd) -> None:
        """-X, else -x, else -A: from the network layer, or with the option
        doubled from the link layer (from it too when a printer was cut short)."""
        o = self.options
        for level, show in ((o.hexascii, nd.hex_ascii), (o.hex, nd.hex)):
            if level:
                start = 0 if level > 1 else nd.ll_hdr_len
                if nd.end > start:
                    show("\n\t", start, nd.end - start)
                return
        if o.ascii:
            start = 0 if o.ascii > 1 else nd.ll_hdr_len
            if nd.end > start:
                nd.ascii(start, nd.end - start)


_OVERFLOW = "[timestamp overflow]"

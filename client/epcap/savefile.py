"""Write captured packets to files tcpdump and Wireshark read.

The client writes them, never the privileged helper::

    with epcap.start(interface="eth0") as cap, PcapWriter("out.pcap", cap.datalink) as out:
        for pkt in cap:
            out.write(pkt)

:class:`PcapWriter` writes classic pcap (nanosecond or microsecond time
stamps); :class:`PcapngWriter` writes pcapng with one interface block per
capture, for packets from several interfaces in one file.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterable
from types import TracebackType
from typing import BinaryIO, Self

from ._packet import Packet, RawTime

__all__ = ["PcapWriter", "PcapngWriter", "linktype"]

_LINKTYPES = {11: 100, 12: 101, 14: 101, 15: 102, 16: 103, 19: 106}
"""``DLT_*`` values whose ``LINKTYPE_*`` in a file differs (Linux numbering)."""


def linktype(dlt: int) -> int:
    """The ``LINKTYPE_*`` a capture file records for the ``DLT_*`` libpcap
    reports (they differ for a few, such as ``DLT_RAW`` 12 and
    ``LINKTYPE_RAW`` 101)."""
    return _LINKTYPES.get(dlt, dlt)


class _Writer:
    """Owns the output stream: a path it opens, or a binary file it is given."""

    def __init__(self, file: str | os.PathLike[str] | BinaryIO) -> None:
        if isinstance(file, (str, os.PathLike)):
            self._out: BinaryIO = open(file, "wb")  # noqa: SIM115 - closed by close()
            self._owned = True
        else:
            self._out = file
            self._owned = False
        self.count = 0
        """Packets written so far."""

    def write(self, packet: Packet, interface: int = 0) -> None:
        """Append one packet captured on ``interface``."""
        raise NotImplementedError

    def flush(self) -> None:
        """Push what was written to the file."""
        self._out.flush()

    def close(self) -> None:
        """Flush, and close the file if this writer opened it."""
        if self._out.closed:
            return
        self._out.flush()
        if self._owned:
            self._out.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class PcapWriter(_Writer):
    """A classic pcap file: one link type, every packet with its original
    time stamp (to the nanosecond when ``precision="nano"``), wire length
    and captured bytes, in this machine's byte order as libpcap writes it."""

    def __init__(
        self,
        file: str | os.PathLike[str] | BinaryIO,
        dlt: int,
        snaplen: int = 262144,
        precision: str = "nano",
    ) -> None:
        if precision not in ("nano", "micro"):
            raise ValueError(f"precision must be 'nano' or 'micro', not {precision!r}")
        super().__init__(file)
        self._unit = 1 if precision == "nano" else 1000
        magic = 0xA1B23C4D if precision == "nano" else 0xA1B2C3D4
        self._out.write(struct.pack("=IHHiIII", magic, 2, 4, 0, 0, snaplen, linktype(dlt)))

    def write(self, packet: Packet, interface: int = 0) -> None:
        """Append one packet.  A pcap file has one interface, 0; its time
        stamps hold the years 1970 to 2106 (ValueError for others).  A
        :class:`~epcap.RawTime` (a damaged file's fraction of a second or
        more) is written as its own two fields, the fraction in this file's
        unit, which must fit 32 bits (ValueError): a damaged file is copied
        field for field."""
        if interface != 0:
            raise ValueError(f"no interface {interface} in a pcap file")
        stamp = packet.time
        if isinstance(stamp, RawTime):
            sec, frac = stamp.seconds, stamp.fraction
        else:
            sec, frac = divmod(stamp, 1_000_000_000)
        if not 0 <= sec <= 0xFFFFFFFF:
            raise ValueError(f"time {stamp} ns does not fit a pcap file (1970 to 2106)")
        frac //= self._unit
        if frac > 0xFFFFFFFF:
            raise ValueError(f"{stamp!r}: its fraction does not fit a pcap file's 32 bits")
        data = packet.data
        self._out.write(struct.pack("=IIII", sec, frac, len(data), packet.length) + data)
        self.count += 1

    def write_all(self, packets: Iterable[Packet]) -> None:
        """Append every packet of ``packets`` (a batch, say)."""
        for packet in packets:
            self.write(packet)


class PcapngWriter(_Writer):
    """A pcapng file with an interface per capture, so the packets of
    several interfaces share one file.  Time stamps are kept to the
    nanosecond (``if_tsresol`` 9) or the microsecond.  libpcap, and so
    tcpdump, reads such a file only when all its interfaces have the same
    link type and snapshot length; Wireshark reads any."""

    def __init__(self, file: str | os.PathLike[str] | BinaryIO, precision: str = "nano") -> None:
        if precision not in ("nano", "micro"):
            raise ValueError(f"precision must be 'nano' or 'micro', not {precision!r}")
        super().__init__(file)
        self._unit = 1 if precision == "nano" else 1000
        self._tsresol = 9 if precision == "nano" else 6
        self._interfaces = 0
        self._block(0x0A0D0D0A, struct.pack("=IHHq", 0x1A2B3C4D, 1, 0, -1))

    def _block(self, kind: int, body: bytes) -> None:
        body += b"\0" * (-len(body) % 4)
        size = len(body) + 12
        self._out.write(struct.pack("=II", kind, size) + body + struct.pack("=I", size))

    def add_interface(self, dlt: int, snaplen: int = 262144, name: str | None = None) -> int:
        """Describe a capture's interface; returns its id for :meth:`write`."""
        options = struct.pack("=HHB3x", 9, 1, self._tsresol)  # if_tsresol
        if name:
            raw = name.encode()
            options += struct.pack("=HH", 2, len(raw)) + raw + b"\0" * (-len(raw) % 4)
        options += struct.pack("=HH", 0, 0)
        self._block(1, struct.pack("=HHI", linktype(dlt), 0, snaplen) + options)
        self._interfaces += 1
        return self._interfaces - 1

    def write(self, packet: Packet, interface: int = 0) -> None:
        """Append one packet captured on ``interface`` (from
        :meth:`add_interface`) as an enhanced packet block.  Times before
        1970 do not fit (ValueError)."""
        if not 0 <= interface < self._interfaces:
            raise ValueError(f"no interface {interface} in this file")
        stamp = packet.time // self._unit
        if not 0 <= stamp < 1 << 64:
            raise ValueError(f"time {packet.time} ns does not fit a pcapng file")
        data = packet.data
        head = struct.pack(
            "=IIIII", interface, stamp >> 32, stamp & 0xFFFFFFFF, len(data), packet.length
        )
        self._block(6, head + data)
        self.count += 1

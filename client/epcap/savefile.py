"""Write captured packets to files tcpdump and Wireshark read.

The client writes them, never the privileged helper::

    with epcap.start(interface="eth0") as cap, PcapWriter("out.pcap", cap.datalink) as out:
        for pkt in cap:
            out.write(pkt)

:class:`PcapWriter` writes classic pcap (nanosecond or microsecond time
stamps); :class:`PcapngWriter` writes pcapng with one interface block per
capture, for packets from several interfaces in one file;
:class:`RotatingPcapWriter` writes classic pcap files one after another, as
``tcpdump -w FILE`` with ``-G``, ``-C`` and ``-W`` names and rotates them.
"""

from __future__ import annotations

import math
import os
import struct
import time
from collections.abc import Callable, Iterable
from typing import BinaryIO

from ._closing import Closing
from ._packet import Packet, RawTime

__all__ = ["PcapWriter", "PcapngWriter", "RotatingPcapWriter", "linktype"]

_LINKTYPES = {11: 100, 12: 101, 14: 101, 15: 102, 16: 103, 19: 106}
"""``DLT_*`` values whose ``LINKTYPE_*`` in a file differs (Linux numbering)."""


def linktype(dlt: int) -> int:
    """The ``LINKTYPE_*`` a capture file records for the ``DLT_*`` libpcap
    reports (they differ for a few, such as ``DLT_RAW`` 12 and
    ``LINKTYPE_RAW`` 101)."""
    return _LINKTYPES.get(dlt, dlt)


class _Writer(Closing):
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

    def tell(self) -> int:
        """The position in the output, what was written and what is still
        buffered, the header included (libpcap's ``pcap_dump_ftell``)."""
        return self._out.tell()

    def close(self) -> None:
        """Flush, and close the file if this writer opened it."""
        if self._out.closed:
            return
        self._out.flush()
        if self._owned:
            self._out.close()


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


def _counter_digits(files: int) -> int:
    """The digits of a ``-C`` counter when ``-W files`` is given: as many as
    ``files - 1`` has, none for 1 (tcpdump's ``getWflagChars``)."""
    return len(str(files - 1)) if files > 1 else 0


class _Rotation:
    """tcpdump 4.99.3's ``-G``/``-C``/``-W`` bookkeeping, without I/O: what
    each file is called and when the next one starts.  The writer asks,
    opens and closes.  ``now`` is whole seconds since the epoch, as
    ``time(NULL)``."""

    def __init__(self, pattern: str, seconds: int, size: int, files: int, now: int) -> None:
        self.pattern = pattern
        self.seconds = seconds
        self.size = size
        self.files = files
        # The counter appears only with -C; its width only with -W as well.
        self.digits = _counter_digits(files) if size and files else 0
        self.last = now  # Gflag_time: the time of the last -G rotation
        self.rotations = 0  # Gflag_count
        self.counter = 0  # Cflag_count

    def name(self, counter: int, when: int) -> str:
        """A file's name (tcpdump's ``MakeFilename``): with ``-G`` the
        pattern through strftime of the local time ``when``, then the
        counter, unless it is 0 and has no digits to fill."""
        base = time.strftime(self.pattern, time.localtime(when)) if self.seconds else self.pattern
        name = base if counter == 0 and self.digits == 0 else f"{base}{counter:0{self.digits}d}"
        if not name:
            raise ValueError(f"the file name pattern {self.pattern!r} gives an empty file name")
        return name

    def first(self) -> str:
        """The first file's name: the counter's 0 appears only with -W."""
        return self.name(0, self.last)

    def time_due(self, now: int) -> bool:
        """Whether a packet at ``now`` starts a new file by time (``-G``)."""
        return self.seconds != 0 and now - self.last >= self.seconds

    def next_by_time(self, now: int) -> str | None:
        """Rotate by time at ``now``: the next file's name, or None when this
        rotation reaches ``-W`` files without ``-C`` (tcpdump exits).  The
        ``-C`` counter restarts.  A ValueError changes nothing."""
        rotations = self.rotations + 1
        if self.size == 0 and self.files > 0 and rotations >= self.files:
            self.last, self.rotations = now, rotations
            return None
        name = self.name(0, now)
        self.last, self.rotations, self.counter = now, rotations, 0
        return name

    def size_due(self, size: int) -> bool:
        """Whether a file of ``size`` bytes so far (header included) is
        closed before the next packet (``-C``): strictly larger than the
        limit, so the packet that crossed it stayed in the file."""
        return self.size != 0 and size > self.size

    def next_by_size(self) -> str:
        """Rotate by size: the next file's name, the counter cycling through
        0 to ``-W`` - 1 when ``-W`` is given.  A ValueError changes nothing."""
        counter = self.counter + 1
        if self.files > 0 and counter >= self.files:
            counter = 0
        name = self.name(counter, self.last)
        self.counter = counter
        return name


class RotatingPcapWriter(Closing):
    """Classic pcap files, one after another, named and rotated exactly as
    tcpdump 4.99.3's ``-w pattern`` with ``-G seconds``, ``-C size`` and
    ``-W files`` does; each file is a :class:`PcapWriter`'s.

    ``seconds`` (``-G``): a packet written ``seconds`` or more after the
    last rotation (or the construction), by ``clock`` in whole seconds,
    starts a new file first: the rotation happens on a packet, never on a
    timer.  The pattern then goes through :func:`time.strftime` of the
    local time of that rotation (the construction's for the first file), so
    a pattern without ``%`` codes rewrites the same file.

    ``size`` (``-C`` times 1,000,000, in bytes): a file that already holds more
    than ``size`` bytes, its header included, is closed before the next
    packet, which goes to the next file (so a file exceeds ``size`` by up
    to one packet).  Its name is the pattern (after strftime with
    ``seconds``) followed by a counter: none on the first file, then 1, 2,
    ...; with ``files`` (``-W``) the counter has as many digits as
    ``files - 1`` and cycles through 0 to ``files - 1``, overwriting the
    oldest file, the first file included (``out0``).  A rotation by time
    restarts the counter.  Time is checked before size.

    ``files`` with ``seconds`` and without ``size``: the ``files``-th
    rotation by time ends the writing instead: :meth:`write` closes the last
    file, does not write the packet and returns False (tcpdump prints
    ``Maximum file limit reached: W`` and exits).  ``files`` without
    ``seconds`` or ``size`` changes nothing, as in tcpdump.

    0 means none for the three.  A file that cannot be opened raises
    OSError (its name in the message), from here or from :meth:`write`
    after the previous file was closed.
    """

    def __init__(
        self,
        pattern: str | os.PathLike[str],
        dlt: int,
        snaplen: int = 262144,
        precision: str = "nano",
        *,
        seconds: int = 0,
        size: int = 0,
        files: int = 0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """Open the first file.  ``dlt``, ``snaplen`` and ``precision`` are
        :class:`PcapWriter`'s; ``clock`` gives the time in seconds since the
        epoch (:func:`time.time`; read only with ``seconds``).  ValueError
        for a negative or non-integer ``seconds``, ``size`` or ``files``, a
        bad ``precision``, or a pattern that makes an empty name."""
        for option, value in (("seconds", seconds), ("size", size), ("files", files)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{option} must be an integer, 0 or more, not {value!r}")
        if precision not in ("nano", "micro"):
            raise ValueError(f"precision must be 'nano' or 'micro', not {precision!r}")
        self.seconds = seconds
        """Seconds between rotations by time (``-G``); 0: none."""
        self.size = size
        """Bytes a file exceeds before the next packet starts another (``-C``); 0: none."""
        self.files = files
        """The ``-W`` count: the counter's cycle, or the files before the end; 0: none."""
        self.count = 0
        """Packets written so far, in all files."""
        self.limit_reached = False
        """True once a rotation by time reached ``files`` and ended the writing."""
        self._dlt, self._snaplen, self._precision = dlt, snaplen, precision
        self._clock = clock
        self._rotation = _Rotation(
            os.fspath(pattern), seconds, size, files, self._now() if seconds else 0
        )
        self._names: list[str] = []
        self._out: PcapWriter | None = None
        self._open(self._rotation.first())

    def _now(self) -> int:
        return math.floor(self._clock())

    def _open(self, name: str) -> None:
        """Close the current file, then open ``name`` (truncating it)."""
        if self._out is not None:
            out, self._out = self._out, None
            out.close()
        self._out = PcapWriter(name, self._dlt, self._snaplen, self._precision)
        self._names.append(name)

    @property
    def name(self) -> str:
        """The file opened last: the one written to, until closed."""
        return self._names[-1]

    @property
    def names(self) -> list[str]:
        """Every file opened, in order; a name recurs when a file is
        opened again (and so overwritten)."""
        return list(self._names)

    def write(self, packet: Packet) -> bool:
        """Start the next file if it is time (``seconds``) or the current
        one is full (``size``), then append ``packet`` and return True; or,
        when the rotation reaches the ``files`` limit, close the last file
        and return False without writing it (and so for every packet
        after).  ValueError once closed, and for a packet
        :meth:`PcapWriter.write` refuses (after any rotation it caused)."""
        if self.limit_reached:
            return False
        self._current()  # closed: ValueError
        rotation = self._rotation
        if rotation.seconds:
            now = self._now()
            if rotation.time_due(now):
                name = rotation.next_by_time(now)
                if name is None:
                    self.limit_reached = True
                    self.close()
                    return False
                self._open(name)
        if rotation.size and rotation.size_due(self._current().tell()):
            self._open(rotation.next_by_size())
        self._current().write(packet)
        self.count += 1
        return True

    def _current(self) -> PcapWriter:
        if self._out is None:
            raise ValueError("write to a closed RotatingPcapWriter")
        return self._out

    def write_all(self, packets: Iterable[Packet]) -> bool:
        """Write each packet of ``packets`` in turn; False as soon as the
        ``files`` limit ends the writing (the rest are not written)."""
        return all(self.write(packet) for packet in packets)

    def flush(self) -> None:
        """Push what was written to the current file."""
        if self._out is not None:
            self._out.flush()

    def close(self) -> None:
        """Flush and close the current file; nothing more is written."""
        if self._out is not None:
            out, self._out = self._out, None
            out.close()

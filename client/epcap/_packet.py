"""The packet type: epcap's ``{packet, DataLinkType, Time, Length, Packet}``."""

from __future__ import annotations

import datetime as _dt
import functools
import operator
import weakref
from typing import TYPE_CHECKING, Any, NamedTuple, Self

if TYPE_CHECKING:
    from .decode import Decoded

_NS = 1_000_000_000


class RawTime(int):
    """A time stamp whose fraction field is out of range, as a pcap file held it.

    A classic pcap record keeps its time in two unsigned 32-bit fields,
    seconds and a fraction of a second (microseconds or nanoseconds, as the
    file's magic number says). A damaged or hostile file may hold a fraction
    of a second or more; epcap delivers it as the file holds it, not carried
    into the seconds, as this int: the exact sum ``seconds * 10**9 +
    fraction`` in nanoseconds, so that such times still order, merge and
    convert (:attr:`Packet.datetime`) as every other. Its fields are
    :attr:`seconds` and :attr:`fraction`; arithmetic on it gives plain ints,
    and it equals, hashes and pickles as the int it is, with its fields.
    :class:`~epcap.savefile.PcapWriter` writes the fields back.
    """

    _seconds: int
    _fraction: int

    def __new__(cls, seconds: int, fraction: int) -> Self:
        """The time of the fields ``seconds`` and ``fraction`` (in
        nanoseconds, at least 10**9: else it is a plain int's)."""
        seconds, fraction = operator.index(seconds), operator.index(fraction)
        if fraction < _NS:
            raise ValueError(f"a fraction of {fraction} ns is a valid one, not a RawTime's")
        self = super().__new__(cls, seconds * _NS + fraction)
        self._seconds, self._fraction = seconds, fraction
        return self

    @property
    def seconds(self) -> int:
        """The file's seconds field."""
        return self._seconds

    @property
    def fraction(self) -> int:
        """The file's fraction field in nanoseconds (its microseconds times
        1000 in a microsecond file, cut to whole microseconds when read at
        ``precision="micro"``): 10**9 or more."""
        return self._fraction

    def __repr__(self) -> str:
        return f"{type(self).__name__}(seconds={self._seconds}, fraction={self._fraction})"

    def __str__(self) -> str:
        return int.__repr__(self)  # the number, as print() and f-strings show an int

    def __reduce__(self) -> tuple[type[Self], tuple[int, int]]:
        return type(self), (self._seconds, self._fraction)


def time_fields(time: int) -> tuple[int, int]:
    """``(seconds, fraction in nanoseconds)`` of a packet's time: a
    :class:`RawTime`'s own fields, else the whole seconds and the rest."""
    if isinstance(time, RawTime):
        return time.seconds, time.fraction
    return divmod(time, _NS)


def fraction_text(fraction_ns: int, digits: int) -> str:
    """The fraction of a second with ``digits`` digits (6 or 9), as tcpdump
    prints it: a field of a second or more as it is, marked invalid."""
    shown = fraction_ns // 10 ** (9 - digits)
    text = f".{shown:0{digits}d}"
    if shown >= 10**digits:
        text += " (invalid us)" if digits == 6 else " (invalid ns)"
    return text


class Packet(NamedTuple):
    """One captured packet, exactly as libpcap handed it to the helper.

    ``dlt`` is the link-layer type (a ``DLT_*`` value, e.g. 1 for Ethernet),
    ``time`` the timestamp in integer nanoseconds since the epoch (exact: with
    ``precision="nano"`` the file's or kernel's nanoseconds arrive unchanged;
    with ``"micro"`` it is a multiple of 1000; from a classic pcap file, the
    file's own unsigned seconds, up to 2106-02-07 06:28:15 UTC, and a
    :class:`RawTime` when the file's fraction field is a second or more),
    ``length`` the length on the wire, and ``data`` the captured bytes, which
    can be shorter than ``length`` when the snapshot length cut the packet.
    """

    dlt: int
    time: int
    length: int
    data: bytes

    @property
    def interface(self) -> str | None:
        """The interface captured (``"eth0"``), the name a pcapng file gives
        the packet's interface when the helper knows it, or None."""
        return None

    @property
    def host(self) -> str | None:
        """The host captured on, as ``start(host=...)`` named it; None for
        this host."""
        return None

    @property
    def interface_id(self) -> int:
        """The index of the packet's interface block in a pcapng file; 0
        for a live capture or a classic pcap file."""
        return 0

    @property
    def capture(self) -> Any:
        """The :class:`~epcap.Capture` or :class:`~epcap.AsyncCapture` that
        delivered the packet while it exists, else None (after pickling, say)."""
        return None

    @property
    def caplen(self) -> int:
        """The number of bytes captured: ``len(data)``."""
        return len(self.data)

    @property
    def timestamp(self) -> float:
        """The time in seconds since the epoch, as a float (sub-microsecond
        digits are rounded away; use ``time`` for the exact value)."""
        return self.time / 1e9

    @property
    def datetime(self) -> _dt.datetime:
        """The time as an aware UTC :class:`datetime.datetime` (microseconds)."""
        epoch = _dt.datetime(1970, 1, 1, tzinfo=_dt.UTC)
        return epoch + _dt.timedelta(microseconds=self.time // 1000)

    def decode(self) -> Decoded:
        """Take the packet apart: link, network and transport headers, as
        ``epcap-sniff`` reports them (see :mod:`epcap.decode`).  Needs dpkt
        (``pip install 'epcap[decode]'``); never raises on the packet's
        bytes, a truncated or malformed packet decodes as far as it goes."""
        from .decode import decode

        return decode(self)


def _reduce(packet: Packet) -> tuple[Any, ...]:
    place = (packet.interface, packet.interface_id, packet.host)
    return (_restore, (*place, tuple(packet)))


def _restore(
    interface: str | None, interface_id: int, *rest: Any
) -> Packet:  # (host, fields), or (fields) as pickled before hosts
    host, fields = rest if len(rest) == 2 else (None, rest[0])
    return _tagged(interface, interface_id, host)._make(fields)


@functools.lru_cache(maxsize=256)
def _tagged(interface: str | None, interface_id: int, host: str | None) -> type[Packet]:
    """What unpickling makes: the place, without the (unpicklable) capture."""
    return packet_type(interface, interface_id, host=host)


def packet_type(
    interface: str | None, interface_id: int = 0, capture: object = None, host: str | None = None
) -> type[Packet]:
    """A subclass of :class:`Packet` whose instances came from ``interface``
    (interface block ``interface_id`` of a pcapng file) of ``capture`` (held
    weakly) on ``host``: the class says it, so each packet costs what a
    Packet costs."""
    namespace: dict[str, Any] = {
        "__slots__": (),
        "__module__": __name__,
        "__qualname__": "Packet",
        "__reduce__": _reduce,
        "interface": interface,
        "interface_id": interface_id,
        "host": host,
    }
    if capture is not None:
        ref = weakref.ref(capture)
        namespace["capture"] = property(lambda self: ref(), doc=Packet.capture.__doc__)
    return type("Packet", (Packet,), namespace)

"""The packet type: epcap's ``{packet, DataLinkType, Time, Length, Packet}``."""

from __future__ import annotations

import datetime as _dt
import functools
import weakref
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from .decode import Decoded


class Packet(NamedTuple):
    """One captured packet, exactly as libpcap handed it to the helper.

    ``dlt`` is the link-layer type (a ``DLT_*`` value, e.g. 1 for Ethernet),
    ``time`` the timestamp in integer nanoseconds since the epoch (exact: with
    ``precision="nano"`` the file's or kernel's nanoseconds arrive unchanged;
    with ``"micro"`` it is a multiple of 1000), ``length`` the length on the
    wire, and ``data`` the captured bytes, which can be shorter than
    ``length`` when the snapshot length cut the packet.
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
    return (_restore, (packet.interface, packet.interface_id, tuple(packet)))


def _restore(interface: str | None, interface_id: int, fields: tuple[Any, ...]) -> Packet:
    return _tagged(interface, interface_id)._make(fields)


@functools.lru_cache(maxsize=256)
def _tagged(interface: str | None, interface_id: int) -> type[Packet]:
    """What unpickling makes: the place, without the (unpicklable) capture."""
    return packet_type(interface, interface_id)


def packet_type(
    interface: str | None, interface_id: int = 0, capture: object = None
) -> type[Packet]:
    """A subclass of :class:`Packet` whose instances came from ``interface``
    (interface block ``interface_id`` of a pcapng file) of ``capture`` (held
    weakly): the class says it, so each packet costs what a Packet costs."""
    namespace: dict[str, Any] = {
        "__slots__": (),
        "__module__": __name__,
        "__qualname__": "Packet",
        "__reduce__": _reduce,
        "interface": interface,
        "interface_id": interface_id,
    }
    if capture is not None:
        ref = weakref.ref(capture)
        namespace["capture"] = property(lambda self: ref(), doc=Packet.capture.__doc__)
    return type("Packet", (Packet,), namespace)

"""The packet type: epcap's ``{packet, DataLinkType, Time, Length, Packet}``."""

from __future__ import annotations

import datetime as _dt
from typing import TYPE_CHECKING, NamedTuple

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

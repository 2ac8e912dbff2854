"""pcapy-ng 2.1's ``pcapy`` module, on epcap: ``import epcap.compat.pcapy as pcapy``.

The same functions, classes, constants and values as pcapy-ng's, on
Linux: :func:`open_live`, :func:`open_offline` and :func:`create` return a
:class:`Reader`, whose ``next()`` returns ``(Pkthdr, bytes)``, and
``(None, b'')`` at the end of a file (or, non-blocking, when nothing is at
hand); ``Pkthdr.getts()`` is ``(seconds, microseconds)``; failures raise
:class:`PcapError` with libpcap's message, and a closed reader ValueError.
The packets come from an epcap helper: the program needs no privilege.
``Reader.dump_open`` writes with :class:`epcap.savefile.PcapWriter`.

What differs from pcapy-ng is listed in the README ("Coming from pypcap /
pcapy-ng"). What cannot work through a helper raises NotImplementedError:
:func:`compile` and :class:`BPFProgram` (in-process BPF programs),
``Reader.getfd`` (no descriptor of the capture in this process),
``Reader.set_fanout`` (a fanout group is joined as the capture opens:
``epcap.start(cluster_id=...)``), and pcapy-ng's in-C classifiers
(``loop_filtered``, ``loop_to_buffer``, ``filtered_stats``).
"""

from __future__ import annotations

import contextlib
import operator
from array import array
from collections import deque
from collections.abc import Callable, Iterator
from functools import partial
from itertools import islice, repeat, starmap
from operator import itemgetter
from typing import Any, NoReturn, Self, cast

from epcap import EpcapError, Packet, RawTime
from epcap._closing import Closing
from epcap.savefile import PcapWriter

from . import _handle

DLT_NULL = 0
DLT_EN10MB = 1
DLT_IEEE802 = 6
DLT_ARCNET = 7
DLT_SLIP = 8
DLT_PPP = 9
DLT_FDDI = 10
DLT_ATM_RFC1483 = 11
DLT_RAW = 12
DLT_PPP_SERIAL = 50
DLT_PPP_ETHER = 51
DLT_C_HDLC = 104
DLT_IEEE802_11 = 105
DLT_LOOP = 108
DLT_LINUX_SLL = 113
DLT_LTALK = 114

PCAP_D_INOUT = 0
PCAP_D_IN = 1
PCAP_D_OUT = 2

PACKET_FANOUT_HASH = 0
PACKET_FANOUT_LB = 1
PACKET_FANOUT_CPU = 2
PACKET_FANOUT_ROLLOVER = 3
PACKET_FANOUT_RND = 4

NOT_ACTIVATED = "This handle hasn't been activated yet"
"""libpcap's message for a handle :func:`create` made and nobody activated."""


class PcapError(Exception):
    """pcapy-ng's exception: libpcap's message."""


class BPFError(Exception):
    """pcapy-ng's exception for :class:`BPFProgram`."""


_END: tuple[None, bytes] = (None, b"")
"""What ``next()`` returns at the end, or when nothing is at hand."""
_data = itemgetter(3)
_new = cast(Callable[[type, Packet], "Pkthdr"], tuple.__new__)


class Pkthdr(Packet):
    """A packet's header: :meth:`getts`, :meth:`getcaplen`, :meth:`getlen`.

    It is the :class:`epcap.Packet` too (``time`` in nanoseconds, whole to
    the microsecond, ``length``, ``data``), which pcapy-ng's is not."""

    __slots__ = ()

    def __new__(cls, *args: Any, **kwargs: Any) -> Pkthdr:
        raise TypeError("cannot create 'Pkthdr' instances")

    def getts(self) -> tuple[int, int]:
        """Get timestamp tuple (seconds, microseconds) since the Epoch."""
        time = self[1]
        if type(time) is int:
            return divmod(time // 1000, 1_000_000)
        raw = cast(RawTime, time)  # a damaged file's fraction: the file's own fields
        return raw.seconds, raw.fraction // 1000

    def getcaplen(self) -> int:
        """Returns the length of portion present."""
        return len(self[3])

    def getlen(self) -> int:
        """Returns the length of the packet (off wire)."""
        return self[2]


Item = tuple[Pkthdr, bytes]
"""A packet: its header and its bytes."""


def _headers(batch: list[Packet]) -> Iterator[Item]:
    """``(Pkthdr, data)`` for each packet, with C code per packet."""
    return zip(map(_new, repeat(Pkthdr), batch), map(_data, batch), strict=True)


def _closed(*args: Any) -> NoReturn:
    raise ValueError(_handle.CLOSED)


class Dumper:
    """A pcap file being written (``Reader.dump_open``): microsecond time
    stamps, the reader's link type and snapshot length, as libpcap's."""

    def __init__(self, writer: PcapWriter) -> None:
        self._writer: PcapWriter | None = writer

    def dump(self, header: Pkthdr, data: bytes) -> None:
        """Dump a packet to the file."""
        view = memoryview(data)  # a bytes-like object (TypeError otherwise)
        if not isinstance(header, Pkthdr):
            raise PcapError("Not a pkthdr object")
        if self._writer is None:
            raise PcapError("Dumper is already closed.")
        self._writer.write(header._replace(data=bytes(view[: header.getcaplen()])))

    def close(self) -> None:
        """Flush and close the file."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def __del__(self) -> None:
        with contextlib.suppress(Exception):  # a finalizer must not raise
            self.close()


class Reader(Closing):
    """A capture, as :func:`open_live`, :func:`open_offline` or
    :func:`create` opened it.

    ``next()`` is the next ``(Pkthdr, bytes)``: ``(None, b'')`` at the end
    of a file, and when non-blocking with nothing at hand; as with libpcap
    on Linux, a blocking read of a live capture waits for a packet however
    long that takes (``to_ms`` is how long a packet may wait in the
    kernel's ring). It is an attribute, not a method: a call costs no
    Python code."""

    next: Callable[[], Item | tuple[None, bytes]]
    """Returns next packet."""

    def __init__(self, device: str, net: str = "0.0.0.0", mask: str = "0.0.0.0") -> None:
        self._device = device
        self._net, self._mask = net, mask
        self._handle: _handle.Handle[Item] | None = None
        self._closed = False
        self._settings: dict[str, Any] = {
            "snaplen": _handle.MAX_SNAPLEN, "promisc": False, "timeout": None, "buffer": None,
            "monitor": False,
        }  # fmt: skip
        self.next = lambda: _END  # not activated: pcap_next_ex() fails quietly

    def _attach(self, handle: _handle.Handle[Item]) -> None:
        self._handle = handle
        self.next = partial(next, handle.items(handle.read_error, idle=_END), _END)

    def _active(self) -> _handle.Handle[Item]:
        if self._closed:
            raise ValueError(_handle.CLOSED)
        if self._handle is None:
            raise PcapError(NOT_ACTIVATED)
        return self._handle

    # -- reading ---------------------------------------------------------------

    def dispatch(self, cnt: int, callback: Callable[[Pkthdr, bytes], Any], /) -> int:
        """Process up to ``cnt`` packets (every one of a file, or those at
        hand of a live capture, for ``cnt <= 0``) with ``callback(header,
        data)``; their number. An exception of the callback stops it and is
        raised."""
        handle = self._active()
        count = 0
        try:
            for header, data in handle.dispatch(operator.index(cnt)):
                callback(header, data)
                count += 1
        except EpcapError as error:
            raise handle.read_error(error) from None
        return count

    def loop(self, cnt: int, callback: Callable[[Pkthdr, bytes], Any], /) -> None:
        """Process packets with ``callback(header, data)`` until ``cnt`` of
        them (``cnt <= 0``: no limit), the end of a file, or an exception
        of the callback, which is raised."""
        handle = self._active()
        items: Iterator[Item] = handle.items(handle.read_error)
        if operator.index(cnt) > 0:
            items = islice(items, cnt)
        deque(starmap(callback, items), maxlen=0)

    def next_batch(self, max_n: int, /) -> tuple[bytes, bytes]:
        """Up to ``max_n`` packets (256 for ``max_n <= 0``) in one call, as
        :meth:`dispatch` takes them: ``(packet_bytes, packed_meta)``, the
        second 16-byte records of four native uint32 (sec, usec, offset,
        caplen). Empty at the end."""
        handle = self._active()
        count = operator.index(max_n)
        meta = array("I")
        data: list[bytes] = []
        offset = 0
        try:
            for header, payload in handle.dispatch(count if count > 0 else 256):
                meta.extend((*header.getts(), offset, len(payload)))
                data.append(payload)
                offset += len(payload)
        except EpcapError as error:
            raise handle.read_error(error) from None
        return b"".join(data), meta.tobytes()

    # -- commands --------------------------------------------------------------

    def setfilter(self, filter: str, /) -> None:
        """Compiles and sets a BPF capture filter."""
        if not isinstance(filter, str):
            raise TypeError(f"setfilter() argument must be str, not {type(filter).__name__}")
        self._active().set_filter(filter)

    def setdirection(self, direction: int, /) -> None:
        """Set the direction for which packets will be captured (``PCAP_D_*``)."""
        handle = self._active()
        try:
            handle.set_direction(operator.index(direction))
        except PcapError:
            raise PcapError("Failed setting direction") from None

    def setnonblock(self, state: int, /) -> None:
        """Puts into `non-blocking' mode, or take it out (a file cannot)."""
        self._active().set_nonblock(bool(operator.index(state)))

    def getnonblock(self) -> int:
        """Returns the current `non-blocking' state."""
        return int(self._active().nonblock)

    def datalink(self) -> int:
        """Returns the link layer type."""
        if self._closed:
            raise ValueError(_handle.CLOSED)
        if self._handle is None:
            return _handle.STATUS["PCAP_ERROR_NOT_ACTIVATED"][0]
        return self._handle.cap.datalink

    def getnet(self) -> str:
        """Returns the network address for the device."""
        if self._closed:
            raise ValueError(_handle.CLOSED)
        return self._net

    def getmask(self) -> str:
        """Returns the netmask for the device."""
        if self._closed:
            raise ValueError(_handle.CLOSED)
        return self._mask

    def sendpacket(self, data: bytes | bytearray | memoryview, /) -> None:
        """Sends a packet through the interface."""
        if isinstance(data, str):
            raise TypeError("a bytes-like object is required, not 'str'")
        self._active().send(data)

    def stats(self) -> tuple[int, int, int]:
        """Returns capture statistics: received, dropped, dropped by the interface."""
        return self._active().stats()

    def dump_open(self, filename: str, /) -> Dumper:
        """Creates a dumper object: a pcap file of the packets dumped to it."""
        handle = self._active()
        cap = handle.cap
        try:
            return Dumper(PcapWriter(filename, cap.datalink, cap.snaplen, precision="micro"))
        except OSError as exc:
            raise PcapError(f"{filename}: {exc.strerror}") from None

    def getfd(self) -> int:
        """Not available: see the module."""
        raise NotImplementedError(
            "Reader.getfd: the capture's descriptor belongs to epcap's helper, and packets "
            "already received wait in this process, where select() cannot see them: read in "
            "a thread, or use epcap.start_async()"
        )

    def set_fanout(self, group_id: int, fanout_type: int = PACKET_FANOUT_HASH) -> None:
        """Not available: see the module."""
        raise NotImplementedError(
            "Reader.set_fanout: epcap's helper joins a fanout group as the capture opens, "
            "in one of its own groups (only your captures share it): "
            "epcap.start(interface=..., cluster_id=N)"
        )

    def loop_filtered(self, *args: Any, **kwargs: Any) -> NoReturn:
        """Not available: pcapy-ng's classifier in C."""
        raise NotImplementedError(
            "Reader.loop_filtered: pcapy-ng's in-C packet classifier is not libpcap's API "
            "and has no epcap equivalent: filter with setfilter() and classify in Python"
        )

    def loop_to_buffer(self, *args: Any, **kwargs: Any) -> NoReturn:
        """Not available: pcapy-ng's classifier in C."""
        raise NotImplementedError(
            "Reader.loop_to_buffer: pcapy-ng's in-C packet classifier is not libpcap's API "
            "and has no epcap equivalent: use epcap.start(cluster_id=...) to spread packets "
            "over processes"
        )

    def filtered_stats(self) -> NoReturn:
        """Not available: pcapy-ng's classifier in C."""
        raise NotImplementedError(
            "Reader.filtered_stats: the counters of pcapy-ng's in-C classifier (loop_filtered), "
            "which epcap does not have"
        )

    # -- a handle of create(), before activate() -------------------------------

    def _set(self, name: str, value: Any) -> int:
        if self._closed:
            raise ValueError(_handle.CLOSED)
        if self._handle is not None:
            return _handle.STATUS["PCAP_ERROR_ACTIVATED"][0]
        self._settings[name] = value
        return 0

    def set_snaplen(self, snaplen: int, /) -> int:
        """Set the snapshot length for a not-yet-activated capture handle."""
        return self._set("snaplen", operator.index(snaplen))

    def set_promisc(self, promisc: int, /) -> int:
        """Set promiscuous mode for a not-yet-activated capture handle."""
        return self._set("promisc", bool(operator.index(promisc)))

    def set_timeout(self, to_ms: int, /) -> int:
        """Set the read timeout for a not-yet-activated capture handle."""
        to_ms = operator.index(to_ms)
        return self._set("timeout", to_ms if to_ms > 0 else None)

    def set_buffer_size(self, buffer_size: int, /) -> int:
        """Set the buffer size for a not-yet-activated capture handle."""
        size = operator.index(buffer_size)
        return self._set("buffer", size if size > 0 else None)

    def set_rfmon(self, rfmon: int, /) -> int:
        """Set monitor mode for a not-yet-activated capture handle."""
        return self._set("monitor", bool(operator.index(rfmon)))

    def activate(self) -> int:
        """Activate a capture handle created using create(): 0, or
        libpcap's (negative) status of the failure."""
        if self._closed:
            raise ValueError(_handle.CLOSED)
        if self._handle is not None:
            return _handle.STATUS["PCAP_ERROR_ACTIVATED"][0]
        try:
            self._attach(_live(self._device, **self._settings))
        except EpcapError as error:
            return _handle.status(error)
        return 0

    # -- the end ---------------------------------------------------------------

    def close(self) -> None:
        """Close the capture."""
        self._closed = True
        self.next = _closed
        if self._handle is not None:
            self._handle.close()

    def __enter__(self) -> Self:
        if self._closed:
            raise ValueError(_handle.CLOSED)
        return self


def _live(
    device: str, *, snaplen: int, promisc: bool, timeout: int | None, buffer: int | None,
    monitor: bool,
) -> _handle.Handle[Item]:  # fmt: skip
    cap, refusal = _handle.open_live(
        device, snaplen=snaplen, promisc=promisc, timeout=timeout, precision="micro",
        monitor=monitor, buffer=buffer,
    )  # fmt: skip
    return _handle.Handle(cap, _headers, PcapError, source=device, live=True, refusal=refusal)


def open_live(device: str, snaplen: int, promisc: int, to_ms: int, /) -> Reader:
    """open_live(device, snaplen, promisc, to_ms) opens a pcap device."""
    if not isinstance(device, str):
        raise TypeError(f"open_live() argument 1 must be str, not {type(device).__name__}")
    snaplen, promisc, to_ms = map(operator.index, (snaplen, promisc, to_ms))
    try:
        timeout = to_ms if to_ms > 0 else None
        handle = _live(device, snaplen=snaplen, promisc=promisc != 0, timeout=timeout,
                       buffer=None, monitor=False)  # fmt: skip
    except EpcapError as error:
        raise PcapError(_handle.open_live_message(error, device)) from None
    settings = handle.cap.settings
    reader = Reader(device, settings.get("net") or "0.0.0.0", settings.get("netmask") or "0.0.0.0")
    reader._attach(handle)
    return reader


def open_offline(filename: str, /) -> Reader:
    """open_offline(filename) opens a pcap formated file."""
    if not isinstance(filename, str):
        raise TypeError(f"open_offline() argument 1 must be str, not {type(filename).__name__}")
    try:
        cap = _handle.open_offline(filename, precision="micro")
    except EpcapError as error:
        raise PcapError(_handle.geterr(error, filename)) from None
    reader = Reader(filename)
    reader._attach(_handle.Handle(cap, _headers, PcapError, source=filename, live=False))
    return reader


def create(device: str, /) -> Reader:
    """create(device) is used to create a packet capture handle to look at
    packets on the network: set it up (``set_snaplen``, ...), then
    ``activate()`` it."""
    if not isinstance(device, str):
        raise TypeError(f"pcap_create() argument 1 must be str, not {type(device).__name__}")
    try:
        found = _handle.lookupnet(device)
    except EpcapError:
        found = None
    net, mask = found or (0, 0)
    return Reader(device, _dotted(net), _dotted(mask))


def _dotted(address: int) -> str:
    return ".".join(str(b) for b in address.to_bytes(4, "big"))


def findalldevs() -> list[str]:
    """findalldevs() lists all available interfaces."""
    try:
        names = [device.name for device in _handle.devices()]
    except EpcapError as error:
        raise PcapError(str(error)) from None
    if not names:
        raise PcapError("No valid interfaces to open")
    return names


def lookupdev() -> str:
    """lookupdev() looks up a pcap device."""
    return _handle.lookupdev(PcapError)


def compile(linktype: int, snaplen: int, filter: str, optimize: int, netmask: int, /) -> NoReturn:
    """Not available: see the module."""
    raise NotImplementedError(
        "pcapy.compile: epcap compiles and runs BPF filters in its helper, and this process "
        "has no libpcap to run one: use Reader.setfilter()"
    )


class BPFProgram:
    """Not available: see the module."""

    def __init__(self, filter: str, linktype: int = DLT_EN10MB) -> None:
        raise NotImplementedError(
            "pcapy.BPFProgram: epcap compiles and runs BPF filters in its helper, and this "
            "process has no libpcap to run one: use Reader.setfilter()"
        )

"""pypcap 1.3's ``pcap`` module, on epcap: ``import epcap.compat.pypcap as pcap``.

The same names, arguments, types and values as pypcap's, on Linux:
``pcap.pcap(name)`` opens a capture file when libpcap can read ``name`` as
one, else the interface of that name (the first suitable device for
None); iterating yields ``(timestamp, bytes)``, the timestamp a float of
seconds (``sec + nsec * 1e-9``, the very float pypcap computes) or, with
``timestamp_in_ns=True``, an int of nanoseconds; failures raise OSError
with libpcap's message (bytes where pypcap's is). The packets come from an
epcap helper: the program needs no privilege.

What differs from pypcap is listed in the README ("Coming from pypcap /
pcapy-ng"). What cannot work through a helper raises NotImplementedError:
:class:`bpf` (an in-process BPF program) and :attr:`pcap.fd` /
:meth:`pcap.fileno` (there is no descriptor of the capture in this process).
"""

from __future__ import annotations

import contextlib
import operator
from collections import deque
from collections.abc import Callable, Iterator
from functools import partial
from itertools import islice, repeat, starmap
from operator import add, floordiv, itemgetter, mod, mul
from typing import Any

from epcap import CaptureFileError, EpcapError, Packet, RawTime, _protocol

from . import _handle

__version__ = "1.3.0"
"""The pypcap whose API this module follows."""

DLT_NULL = 0
DLT_EN10MB = 1
DLT_EN3MB = 2
DLT_AX25 = 3
DLT_PRONET = 4
DLT_CHAOS = 5
DLT_IEEE802 = 6
DLT_ARCNET = 7
DLT_SLIP = 8
DLT_PPP = 9
DLT_FDDI = 10
DLT_LINUX_SLL = 113
DLT_PFLOG = 117
DLT_PFSYNC = 18
DLT_LOOP = 108
DLT_RAW = 12

PCAP_D_INOUT = 0
PCAP_D_IN = 1
PCAP_D_OUT = 2

PCAP_TSTAMP_PRECISION_MICRO = 0
PCAP_TSTAMP_PRECISION_NANO = 1

dltoff = {DLT_NULL: 4, DLT_EN10MB: 14, DLT_IEEE802: 22, DLT_ARCNET: 6, DLT_SLIP: 16,
          DLT_PPP: 4, DLT_FDDI: 21, DLT_PFLOG: 48, DLT_PFSYNC: 4, DLT_LOOP: 4, DLT_RAW: 0,
          DLT_LINUX_SLL: 16}  # fmt: skip
"""The length of each link type's header, pypcap's ``pcap.dloff``."""

_NS = 1_000_000_000
_time = itemgetter(1)
_data = itemgetter(3)
_time_and_data = itemgetter(1, 3)
_NSS = repeat(_NS)
_NANO = repeat(1e-9)


def _in_ns(batch: list[Packet]) -> Iterator[tuple[int, bytes]]:
    """``(time in ns, data)`` for each packet: pypcap's ``timestamp_in_ns``."""
    return map(_time_and_data, batch)


def _seconds(time: int) -> float:
    """pypcap's float for a time: ``tv_sec + tv_nsec * 1e-9`` in C doubles
    (not ``time / 1e9``, which rounds differently for a quarter of them),
    from a :class:`~epcap.RawTime`'s own fields for a damaged file's."""
    if isinstance(time, RawTime):
        return time.seconds + time.fraction * 1e-9
    sec, nsec = divmod(time, _NS)
    return sec + nsec * 1e-9


def _in_seconds(batch: list[Packet]) -> Iterator[tuple[float, bytes]]:
    """``(time in seconds, data)`` for each packet, as :func:`_seconds`
    computes it: by epcap's C accelerator when it runs (``epcap.ACCELERATED``),
    else with C code per packet (``map``); a RawTime takes the slow road."""
    if _protocol._speedups is not None:
        items: list[tuple[float, bytes]] | None = _protocol._speedups.seconds_items(batch)
        if items is not None:
            return iter(items)
    if set(map(type, map(_time, batch))) != {int}:
        return iter([(_seconds(time), data) for _, time, _, data in batch])
    seconds = map(floordiv, map(_time, batch), _NSS)
    fractions = map(mul, map(mod, map(_time, batch), _NSS), _NANO)
    return zip(map(add, seconds, fractions), map(_data, batch), strict=True)


def _end_or_raise(handle: _handle.Handle[Any], error: EpcapError) -> Exception | None:
    """A read failed: a file's damage ends the packets (pypcap's
    ``pcap_next`` returns NULL, as at the end), a live failure raises."""
    exc = handle.read_error(error)
    return None if isinstance(error, CaptureFileError) else exc


def _error(message: str) -> OSError:
    """pypcap's exception: OSError with libpcap's message as bytes (a C string)."""
    return OSError(message.encode())


class bpf:
    """``bpf(filter, dlt=DLT_RAW)``: pypcap's in-process BPF program.
    Not available: epcap compiles and runs filters in its helper, and this
    process has no libpcap. Pass the expression to :meth:`pcap.setfilter`."""

    def __init__(self, filter: bytes, dlt: int = DLT_RAW) -> None:
        raise NotImplementedError(
            "pcap.bpf: epcap compiles and runs BPF filters in its helper, and this "
            "process has no libpcap to run one: use pcap.setfilter()"
        )


class pcap:
    """``pcap(name=None, snaplen=65535, promisc=True, timeout_ms=0,
    immediate=False, rfmon=False, timestamp_in_ns=False, buffer_size=0)``:
    a capture file, or an interface, as pypcap opens it (see the module).

    ``timeout_ms`` is the kernel's read timeout (0: its default), the
    longest a packet waits before it is handed over; as with libpcap on
    Linux, a read waits for a packet however long that takes. ``immediate``
    hands each packet over at once; ``rfmon`` is monitor mode;
    ``buffer_size`` the kernel's ring (0: epcap's default). A live capture
    can send (:meth:`sendpacket`) when the installation lets you inject.
    """

    def __init__(
        self,
        name: str | None = None,
        snaplen: int = 65535,
        promisc: bool = True,
        timeout_ms: int = 0,
        immediate: bool = False,
        rfmon: bool = False,
        timestamp_in_ns: bool = False,
        buffer_size: int = 0,
    ) -> None:
        if not name:
            name = lookupdev()
        name.encode("UTF-8")  # pypcap's own test of the type: a str
        try:
            cap, live, refusal = _handle.open_name(
                name,
                snaplen=operator.index(snaplen),
                promisc=bool(promisc),
                timeout="immediate" if immediate else (timeout_ms if timeout_ms > 0 else None),
                precision="nano",
                monitor=bool(rfmon),
                buffer=buffer_size if buffer_size > 0 else None,
            )
        except EpcapError as error:
            detail = _handle.geterr(error, name).encode()
            raise OSError(
                "Activateing packet capture failed. Error returned by packet capture "
                f"library was {detail!r}"
            ) from None
        convert: Callable[[list[Packet]], Iterator[Any]] = (
            _in_ns if timestamp_in_ns else _in_seconds
        )
        self._handle: _handle.Handle[tuple[Any, bytes]] = _handle.Handle(
            cap, convert, _error, source=name, live=live, refusal=refusal
        )
        self._name = name
        self._filter = ""
        self._timestamp_in_ns = bool(timestamp_in_ns)
        self._dloff = dltoff.get(cap.datalink, 0)
        self._on_read_error = partial(_end_or_raise, self._handle)  # holds no self: no cycle
        self._next = self._handle.items(self._on_read_error)

    @property
    def name(self) -> str:
        """Network interface or dumpfile name."""
        return self._name

    @property
    def snaplen(self) -> int:
        """Maximum number of bytes to capture for each packet."""
        return self._handle.cap.snaplen

    @property
    def dloff(self) -> int:
        """Datalink offset (length of layer-2 frame header)."""
        return self._dloff

    @property
    def filter(self) -> str:
        """Current packet capture filter."""
        return self._filter

    @property
    def fd(self) -> int:
        """Not available: see :meth:`fileno`."""
        return self.fileno()

    @property
    def precision(self) -> int:
        """Precision of timestamps: always nanoseconds, as pypcap asks."""
        return PCAP_TSTAMP_PRECISION_NANO

    @property
    def timestamp_in_ns(self) -> bool:
        """Whether timestamps are returned in nanosecond units."""
        return self._timestamp_in_ns

    def fileno(self) -> int:
        """Not available: the capture's descriptor is the helper's, and
        packets may already wait in this process, where no descriptor
        would show them. Read in a thread, or use ``epcap.start_async``."""
        raise NotImplementedError(
            "pcap.fileno: the capture's descriptor belongs to epcap's helper, and packets "
            "already received wait in this process, where select() cannot see them: read in "
            "a thread, or use epcap.start_async()"
        )

    def close(self) -> None:
        """Stop the capture and its helper."""
        self._handle.close()

    def setfilter(self, value: str, optimize: int = 1) -> None:
        """Set BPF-format packet capture filter."""
        value.encode("UTF-8")
        self._filter = value  # before compiling, as pypcap
        self._handle.set_filter(value)

    def setdirection(self, direction: int) -> bool:
        """Set capture direction (``PCAP_D_*``); False if it cannot be."""
        try:
            self._handle.set_direction(operator.index(direction))
        except OSError:
            return False
        return True

    def setnonblock(self, nonblock: bool = True) -> None:
        """Set non-blocking capture mode (a file's refusal is ignored, as pypcap)."""
        with contextlib.suppress(OSError):
            self._handle.set_nonblock(nonblock)

    def getnonblock(self) -> bool:
        """Return non-blocking capture mode as boolean."""
        self._handle.check()
        return self._handle.nonblock

    def datalink(self) -> int:
        """Return datalink type (DLT_* values)."""
        self._handle.check()
        return self._handle.cap.datalink

    def readpkts(self) -> list[tuple[Any, bytes]]:
        """Return a list of (timestamp, packet) tuples received in one buffer."""
        pkts: list[tuple[Any, bytes]] = []
        self.dispatch(-1, lambda ts, pkt: pkts.append((ts, pkt)))
        return pkts

    def dispatch(self, cnt: int, callback: Callable[..., Any], *args: Any) -> int:
        """Process packets with ``callback(timestamp, pkt, *args)``; return
        the number processed, -1 on an error (``geterr()`` says which).

        ``cnt``: that many at most; 0 or -1 for every packet of a file, or
        those at hand of a live capture (which waits for the first). As
        pypcap, an exception in the callback is raised when the packets are
        done (the last one, if it raised more than once)."""
        count = 0
        raised: BaseException | None = None
        try:
            for ts, pkt in self._handle.dispatch(operator.index(cnt)):
                count += 1
                try:
                    callback(ts, pkt, *args)
                except BaseException as exc:
                    raised = exc
        except EpcapError as error:
            self._handle.last_error = _handle.geterr(error, self._name)
            count = -1
        if raised is not None:
            raise raised
        return count

    def loop(self, cnt: int, callback: Callable[..., Any], *args: Any) -> None:
        """Process packets with ``callback(timestamp, pkt, *args)`` until
        ``cnt`` of them (0 or -1: no limit), the end of a file, or an
        exception (the callback's, KeyboardInterrupt, ...)."""
        items: Iterator[Any] = self._handle.items(self._on_read_error)
        if cnt > 0:
            items = islice(items, cnt)
        if args:
            items = map(add, items, repeat(args))
        deque(starmap(callback, items), maxlen=0)

    def sendpacket(self, buf: bytes | bytearray | memoryview) -> int:
        """Send a raw network packet on the interface; its length."""
        self._handle.send(buf)
        return len(buf)

    def geterr(self) -> bytes:
        """Return the last error message associated with this handle."""
        return self._handle.last_error.encode()

    def stats(self) -> tuple[int, int, int]:
        """Return a 3-tuple of the total number of packets received,
        dropped, and dropped by the interface."""
        return self._handle.stats()

    def __iter__(self) -> Iterator[tuple[Any, bytes]]:
        """The packets to come, as ``(timestamp, pkt)``: an iterator that
        shares its place with ``next()``, :meth:`dispatch` and :meth:`loop`."""
        return self._handle.items(self._on_read_error)

    def __next__(self) -> tuple[Any, bytes]:
        result: tuple[Any, bytes] = next(self._next)
        return result


def lookupdev() -> str:
    """Return the name of a network device suitable for sniffing."""
    return _handle.lookupdev(_error)


def findalldevs() -> list[str]:
    """Return a list of capture devices."""
    try:
        return [device.name for device in _handle.devices()]
    except EpcapError as error:
        raise _error(str(error)) from None


def lookupnet(dev: bytes) -> tuple[bytes, bytes]:
    """Return the address and the netmask of a given device as
    network-byteorder integers (4 bytes each)."""
    if not isinstance(dev, bytes):
        raise TypeError(f"expected bytes, {type(dev).__name__} found")
    name = dev.decode()
    try:
        found = _handle.lookupnet(name)
    except EpcapError as error:
        raise _error(str(error)) from None
    if found is None:
        raise _error(f"SIOCGIFADDR: {name}: No such device")
    net, mask = found
    return net.to_bytes(4, "big"), mask.to_bytes(4, "big")


def ex_name(foo: bytes) -> bytes:
    """The device name libpcap uses for ``foo``: the same one, on Linux."""
    return foo

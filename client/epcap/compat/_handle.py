"""What :mod:`epcap.compat.pypcap` and :mod:`epcap.compat.pcapy` share, once.

A libpcap handle is one epcap capture, started paused (``paused=True``):
the helper opens the interface or the file (its errors raise at once, its
datalink and snapshot length are known), and takes no packet until the
first read, so that a filter or a direction set before it applies to every
packet, as libpcap's do between ``pcap_activate`` and the first read.

:class:`Handle` reads the capture as libpcap's calls do, on Linux with the
libpcap of the helper (1.10):

- a read of a live capture waits for a packet however long it takes: the
  read timeout (``timeout_ms``, ``to_ms``) is the kernel's, the longest a
  packet waits in its ring before it is handed over, and a read on a quiet
  interface never returns empty (TPACKET_V3 wakes libpcap only for a block
  that holds packets; in immediate mode libpcap polls again after each
  timeout). Only non-blocking mode returns with nothing;
- ``dispatch`` takes up to ``cnt`` packets (all, for ``cnt <= 0``): of a
  file, until its end; live, the first when it comes, then those already
  at hand;
- ``loop`` and iteration take packets until ``cnt`` or the end.

Packets arrive from the helper in batches (a frame each); a module turns a
batch into its own items (pypcap's ``(ts, buf)``, pcapy-ng's ``(Pkthdr,
data)``) with C code per item (``map``, ``zip``, ``itemgetter``), and every
way of reading shares one place, :attr:`Handle.rest`, as the capture's own
iteration shares the driver's: none is lost or repeated.

Errors come back in libpcap's words (:func:`geterr`): the helper's message
without the device or file name it puts first, or the text of libpcap's
status where the refusal is the installation's (an unknown interface); the
module raises them as its own exception type.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
from collections import deque
from collections.abc import Callable, Iterator
from itertools import chain
from typing import Any, Generic, Literal, TypeVar, cast

import epcap
from epcap import CaptureError, EpcapError, Packet, PolicyError, StartOptions

from .._driver import Phase

defaults: dict[str, Any] = {}
"""How the compat modules run epcap's helper: ``progname``, ``exec``,
``host``, ``ssh_options``, as :func:`epcap.start` and
:func:`epcap.interfaces` take them, passed to every capture and listing."""
LAUNCH = ("progname", "exec", "host", "ssh_options")
"""The options of :data:`defaults` that device listings take."""

MAX_SNAPLEN = 262144
"""libpcap's maximum snapshot length: what it uses for one out of range."""
DIRECTIONS = {0: "inout", 1: "in", 2: "out"}
"""libpcap's ``pcap_direction_t`` values (``PCAP_D_INOUT``, ``PCAP_D_IN``,
``PCAP_D_OUT``) and epcap's names for them."""

STATUS = {
    "PCAP_ERROR": (-1, "Generic error"),
    "PCAP_ERROR_BREAK": (-2, "Loop terminated by pcap_breakloop"),
    "PCAP_ERROR_NOT_ACTIVATED": (-3, "The pcap_t has not been activated"),
    "PCAP_ERROR_ACTIVATED": (-4, "The setting can't be changed after the pcap_t is activated"),
    "PCAP_ERROR_NO_SUCH_DEVICE": (-5, "No such device exists"),
    "PCAP_ERROR_RFMON_NOTSUP": (-6, "That device doesn't support monitor mode"),
    "PCAP_ERROR_NOT_RFMON": (-7, "That operation is supported only in monitor mode"),
    "PCAP_ERROR_PERM_DENIED": (-8, "You don't have permission to capture on that device"),
    "PCAP_ERROR_IFACE_NOT_UP": (-9, "That device is not up"),
    "PCAP_ERROR_CANTSET_TSTAMP_TYPE": (
        -10,
        "That device doesn't support setting the time stamp type",
    ),
    "PCAP_ERROR_PROMISC_PERM_DENIED": (
        -11,
        "You don't have permission to capture in promiscuous mode",
    ),
    "PCAP_ERROR_TSTAMP_PRECISION_NOTSUP": (
        -12,
        "That device doesn't support that time stamp precision",
    ),
}
"""libpcap's status names, their values and ``pcap_statustostr()``."""

# libpcap's own messages for what a savefile cannot do
NO_STATS = "Statistics aren't available from savefiles"
NO_SEND = "Sending packets isn't supported on savefiles"
NO_DIRECTION = "Setting direction is not supported on savefiles"
NO_NONBLOCK = "Savefiles cannot be put into non-blocking mode"
BAD_DIRECTION = "Invalid direction"
CLOSED = "pcap is closed"

T = TypeVar("T")
U = TypeVar("U")
How = Literal["wait", "poll", "at hand"]
"""How a read takes the next batch: see :meth:`Handle.fill`."""


def geterr(error: EpcapError, source: str) -> str:
    """What libpcap's ``pcap_geterr()`` (or the ``errbuf`` of an open)
    would say for ``error``, raised about the interface or file ``source``."""
    if not isinstance(error, CaptureError):
        return str(error)
    if error.op == "interface" and error.code in STATUS:  # the policy: no such interface
        return STATUS[error.code][1]
    if error.op == "open" and error.errno == "EISDIR":  # libpcap opens it, then cannot read
        return "error reading dump file: Is a directory"
    if error.op.startswith("pcap_"):  # the helper puts the name first; libpcap does not
        return error.message.removeprefix(f"{source}: ")
    return error.message


def status(error: EpcapError) -> int:
    """libpcap's status value for a failed activation (``PCAP_ERROR``, -1,
    when the failure is not libpcap's)."""
    code = error.code if isinstance(error, CaptureError) else None
    return STATUS.get(code or "", STATUS["PCAP_ERROR"])[0]


def open_live_message(error: EpcapError, device: str) -> str:
    """``pcap_open_live()``'s error message, as libpcap 1.10 makes it."""
    code = error.code if isinstance(error, CaptureError) else None
    text = geterr(error, device)
    if code in ("PCAP_ERROR_NO_SUCH_DEVICE", "PCAP_ERROR_PERM_DENIED",
                "PCAP_ERROR_PROMISC_PERM_DENIED"):  # fmt: skip
        return f"{device}: {STATUS[code][1]} ({text})"
    if code in STATUS and code != "PCAP_ERROR":
        return f"{device}: {STATUS[code][1]}"
    return f"{device}: {text}"


def snaplen_of(snaplen: int) -> int:
    """libpcap's snapshot length for the one asked: out of range, its maximum."""
    return snaplen if 0 < snaplen <= MAX_SNAPLEN else MAX_SNAPLEN


def start(**options: Any) -> epcap.Capture:
    """:func:`epcap.start`, paused, with :data:`defaults` and ``options``."""
    return epcap.start(**cast(StartOptions, {**defaults, **options, "paused": True}))


def open_offline(path: str, *, precision: str) -> epcap.Capture:
    """A pcap or pcapng file, read at ``precision`` (``"micro"``, ``"nano"``)."""
    return start(file=path, precision=precision)


def open_live(
    device: str,
    *,
    snaplen: int,
    promisc: bool,
    timeout: int | str | None,
    precision: str,
    monitor: bool = False,
    buffer: int | None = None,
) -> tuple[epcap.Capture, PolicyError | None]:
    """A live capture on ``device``, open for sending as libpcap's handles
    are when the installation lets this user inject; otherwise without,
    and the policy's refusal, for ``sendpacket`` to raise."""
    options: dict[str, Any] = {
        "interface": device,
        "snaplen": snaplen_of(snaplen),
        "promiscuous": promisc,
        "timeout": timeout,
        "precision": precision,
        "monitor": monitor,
        "buffer": buffer,
    }
    try:
        return start(**options, inject=True), None
    except PolicyError as refusal:
        return start(**options), refusal  # a refusal of something else raises again


def open_name(name: str, **live: Any) -> tuple[epcap.Capture, bool, PolicyError | None]:
    """As pypcap opens ``name``: a capture file if libpcap reads it as one,
    else the interface of that name; and whether it is live."""
    if "host" in defaults or os.path.exists(name):  # another host's files: just try
        try:
            return open_offline(name, precision=live["precision"]), False, None
        except CaptureError as error:
            if error.op not in ("open", "fdopen", "pcap_fopen_offline"):
                raise
    cap, refusal = open_live(name, **live)
    return cap, True, refusal


def devices() -> list[epcap.Interface]:
    """``pcap_findalldevs()``: the devices this installation lets you open."""
    return epcap.interfaces(**{key: defaults[key] for key in LAUNCH if key in defaults})


def lookupdev(error: Callable[[str], Exception]) -> str:
    """``pcap_lookupdev()``: the first device libpcap lists, unless that one
    is a loopback device (then there is none: libpcap lists those last).
    A failure raises the module's ``error`` of libpcap's message."""
    try:
        found = devices()
    except EpcapError as exc:
        raise error(str(exc)) from None
    if not found or found[0].loopback:
        raise error("no suitable device found")
    return found[0].name


def lookupnet(device: str) -> tuple[int, int] | None:
    """``pcap_lookupnet()``: the network and netmask (as integers) of the
    device's first IPv4 address, 0 and 0 for one without (or ``any``);
    None when there is no such network interface."""
    if device == "any":
        return 0, 0
    for dev in devices():
        if dev.name != device:
            continue
        if not any(address.family == "packet" for address in dev.addresses):
            return None  # a pseudo-device: no interface of the kernel's
        for address in dev.addresses:
            if address.family == "inet" and address.netmask:
                mask = int(ipaddress.IPv4Address(address.netmask))
                return int(ipaddress.IPv4Address(address.addr)) & mask, mask
        return 0, 0
    return None


def _raising(exc: BaseException) -> Iterator[Any]:
    """An iterator whose first ``next()`` raises ``exc``: a chain of
    iterators raises it and, unlike a generator that raised, lives on."""
    raise exc
    yield  # a generator


class Handle(Generic[T]):
    """One capture, read as a libpcap handle is (see the module).

    ``convert`` turns a batch of packets into the module's items; ``error``
    makes the module's exception from libpcap's message (and
    :attr:`last_error` keeps the message, for ``geterr``). ``source`` is
    the interface or file name; ``refusal`` why this handle cannot send.
    """

    def __init__(
        self,
        cap: epcap.Capture,
        convert: Callable[[list[Packet]], Iterator[T]],
        error: Callable[[str], Exception],
        *,
        source: str,
        live: bool,
        refusal: PolicyError | None = None,
    ) -> None:
        self.cap = cap
        self.source = source
        self.live = live
        self.refusal = refusal
        self.nonblock = False
        """Non-blocking mode (live only): a read takes what is at hand."""
        self.closed = False
        self.ended = False
        """Every packet was taken: the capture is over."""
        self.last_error = ""
        """The message of the last failure, as ``pcap_geterr()`` keeps it."""
        self.rest: Iterator[T] = iter(())
        """The items of the batch being read: the one place every way of
        reading takes from. It is replaced only once exhausted."""
        self._convert = convert
        self._error = error
        self._batches = cap.batches()

    def fail(self, message: str) -> Exception:
        """The module's exception for ``message``, which :attr:`last_error` keeps."""
        self.last_error = message
        return self._error(message)

    def read_error(self, error: EpcapError) -> Exception:
        """The module's exception for a read that failed with ``error``."""
        return self.fail(geterr(error, self.source))

    def check(self) -> None:
        """ValueError once the handle is closed."""
        if self.closed:
            raise ValueError(CLOSED)

    # -- reading ---------------------------------------------------------------

    def fill(self, how: How = "wait") -> bool:
        """Make :attr:`rest` the next batch's items: True; False at the end
        of the capture or when there is none to take ``how``: ``"wait"``
        for it, ``"poll"`` (only what the helper already sent), or
        ``"at hand"`` (only what this process already received). Raises
        the capture's error, once (then the end)."""
        self.check()
        cap = self.cap
        if how != "wait" and not cap.pending:
            if how == "at hand":
                return False
            try:
                first = cap.next(timeout=0)  # one look at the helper's stdout
            except TimeoutError:
                return False
            if first is None:
                self.ended = True
                return False
            self.rest = self._convert([first])
            return True
        try:
            batch = next(self._batches, None)
        except EpcapError:
            self.ended = True
            raise
        except BaseException:  # an interrupted wait (Ctrl-C): the capture goes on
            self._batches = cap.batches()
            raise
        if batch is None:
            self.ended = True
            return False
        self.rest = self._convert(batch)
        return True

    def items(
        self, on_error: Callable[[EpcapError], Exception | None], idle: U | None = None
    ) -> Iterator[T | U]:
        """Every item to come, as one iterator that runs no Python code per
        item, sharing its place with :meth:`dispatch` and every other.
        ``on_error`` makes the module's exception of a capture's error, or
        None to end there. In non-blocking mode an ``idle`` item comes
        whenever nothing is at hand (when given)."""
        return chain.from_iterable(self._rests(on_error, idle))

    def _rests(
        self, on_error: Callable[[EpcapError], Exception | None], idle: U | None
    ) -> Iterator[Iterator[T | U]]:
        while True:
            current = self.rest
            yield current
            if self.rest is not current:
                continue  # another reader took a batch meanwhile: its rest first
            try:
                more = self.fill("poll" if idle is not None and self.nonblock else "wait")
            except EpcapError as error:
                exc = on_error(error)
                if exc is None:
                    return
                raise exc from None
            except BaseException as exc:  # Ctrl-C in a wait, a closed handle: raised through
                yield _raising(exc)  # the chain, which goes on afterwards
                continue
            if not more:
                if self.ended or idle is None:
                    return
                yield iter((idle,))

    def dispatch(self, count: int) -> Iterator[T]:
        """``pcap_dispatch()``'s packets: up to ``count`` (every one for
        ``count <= 0``): of a file, until its end; live, the first as it
        comes (only if at hand, non-blocking), then what is at hand."""
        limit = count if count > 0 else -1
        how: How = "poll" if self.nonblock else "wait"
        while True:
            before = limit
            for item in self.rest:
                yield item
                limit -= 1
                if not limit:
                    return
            if self.live and limit != before:
                how = "at hand"  # live, the first is taken: the rest only if at hand
            if not self.fill(how):
                return

    # -- commands --------------------------------------------------------------

    def set_filter(self, expression: str) -> None:
        """Filter every packet still to come with ``expression``. Before the
        first read, that is every packet; after it, the packets on their way
        already (``Capture.pending``, a file's read-ahead) passed the filter
        before. Once the helper read a whole file, no packet is left that a
        filter could concern: the module's error if some are still to be
        read, nothing if none is."""
        self.check()
        try:
            self.cap.set_filter(expression)
        except EpcapError as error:
            raise self.fail(geterr(error, self.source)) from None
        except ValueError:
            if self.cap.phase is not Phase.ENDED:
                raise
            if not self.ended:
                raise self.fail(
                    "the helper has read the whole file already: the packets left to read "
                    "passed the filter set before the first read"
                ) from None

    def set_direction(self, direction: int) -> None:
        """``pcap_setdirection()`` with a ``PCAP_D_*`` value."""
        self.check()
        if not self.live:
            raise self.fail(NO_DIRECTION)
        name = DIRECTIONS.get(direction)
        if name is None:
            raise self.fail(BAD_DIRECTION)
        try:
            self.cap.set_direction(name)
        except EpcapError as error:
            raise self.fail(geterr(error, self.source)) from None

    def set_nonblock(self, nonblock: bool) -> None:
        """``pcap_setnonblock()``: a savefile cannot."""
        self.check()
        if not self.live:
            raise self.fail(NO_NONBLOCK)
        self.nonblock = bool(nonblock)

    def stats(self) -> tuple[int, int, int]:
        """``pcap_stats()``: packets received, dropped by the kernel, dropped
        by the interface (epcap's 64-bit totals)."""
        self.check()
        if not self.live:
            raise self.fail(NO_STATS)
        try:
            counts = self.cap.stats()
        except EpcapError as error:
            raise self.fail(geterr(error, self.source)) from None
        return counts["received"], counts["dropped"], counts["if_dropped"]

    def send(self, frame: bytes | bytearray | memoryview) -> int:
        """``pcap_sendpacket()``: the bytes sent."""
        self.check()
        if not self.live:
            raise self.fail(NO_SEND)
        if self.refusal is not None:
            raise self.fail(
                f"this installation does not let you send packets ({self.refusal.message}): "
                "as root, `epcap-admin install --inject-group GROUP` lets GROUP send"
            )
        try:
            return self.cap.send(frame)
        except EpcapError as error:
            raise self.fail(geterr(error, self.source)) from None

    def close(self) -> None:
        """Stop and reap the helper; every reader sees the end."""
        if self.closed:
            return
        self.closed = True
        deque(self.rest, maxlen=0)  # iterators that hold it see the end too
        self.cap.close()

    def __del__(self) -> None:
        # The last reference went (the module's object, and every iterator
        # and bound ``next``, which hold this and nothing that holds them):
        # close, as libpcap's handles close when their object goes.
        if not getattr(self, "closed", True):
            with contextlib.suppress(Exception):  # a finalizer must not raise
                self.close()

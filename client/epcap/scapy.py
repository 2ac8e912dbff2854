"""scapy's sockets through epcap's helper: sniff, sendp, srp, send and sr without root.

::

    import epcap.scapy
    from scapy.all import sniff, srp, Ether, ARP

    epcap.scapy.use()                     # conf.L2listen, L2socket, L3socket: epcap's
    sniff(iface="eth0", filter="udp port 53", count=10, prn=lambda p: p.summary())
    srp(Ether(dst="ff:ff:ff:ff:ff:ff") / ARP(pdst="192.0.2.0/28"), iface="eth0", timeout=2)
    epcap.scapy.undo()                    # scapy's own sockets again

Each socket is one capture (:func:`epcap.start`): the helper opens the
interface with its privilege, and this process, unprivileged, reads the
packets it streams and, for sending, hands it frames (``Capture.send``,
which needs ``inject``: the installation must allow it, see
:class:`InjectNotAllowedError`).

Waiting. scapy's ``sniff()`` waits on its sockets with their class's static
``select(sockets, remain)``; epcap reads the helper's packets in batches, so
a socket may hold packets already received while its descriptor has nothing
more to read. :meth:`EpcapSocket.select` reports such a socket ready at
once; otherwise it polls each helper's stdout, the descriptors of the other
objects in the list (sniff's control pipe, a pcap file, another kind of
socket) and a wake-up pipe of its own, which a command run by another
thread (``send`` from ``srp``'s sending thread, which may read packets while
it waits for its answer) or a ``close`` writes to. A helper's stdout that
becomes readable is read at once (``Capture.next`` with a timeout of 1 ms),
so that a socket is reported ready only once a whole packet, the end of
the capture or its error is at hand: ``recv()`` after ``select()`` never
waits.
"""

from __future__ import annotations

import contextlib
import decimal
import functools
import os
import select as _select
import threading
import time
from collections.abc import Callable
from typing import Any, ClassVar, NoReturn, Unpack, cast

from . import _capture
from ._closing import Closing
from ._core import StartOptions
from ._errors import EpcapError, PolicyError, SendError
from ._packet import Packet as _EpcapPacket

try:
    import scapy.arch  # sets scapy's own sockets in conf, once: use() replaces them
    import scapy.layers.l2  # noqa: F401 - Ether, CookedLinux, ... in conf.l2types
    from scapy.config import conf
    from scapy.data import DLT_RAW, DLT_RAW_ALT, ETH_P_ALL, MTU
    from scapy.error import Scapy_Exception, log_runtime
    from scapy.interfaces import network_name
    from scapy.packet import Packet
    from scapy.supersocket import SuperSocket
    from scapy.utils import EDecimal
except ImportError as exc:  # pragma: no cover - the tests run with scapy
    if (exc.name or "").partition(".")[0] != "scapy":
        raise
    raise ImportError(
        "epcap.scapy needs scapy, an optional extra: pip install 'epcap[scapy]'", name="scapy"
    ) from exc

__all__ = [
    "EpcapSocket",
    "InjectNotAllowedError",
    "L2ListenSocket",
    "L2Socket",
    "L3Socket",
    "Use",
    "undo",
    "use",
]

FILL_TIMEOUT = 0.001
"""Seconds ``select`` lets a capture whose stdout became readable take a
packet: the read is at hand, this only bounds a frame that came in part."""
BACKLOG = 65536
"""Packets a sending socket (L2 or L3) keeps for a ``recv`` that nobody
makes: beyond, the oldest half goes, as a full socket buffer drops."""

_SOCKET_OPTIONS = frozenset({"interface", "file", "filter", "promiscuous", "monitor", "inject"})
"""epcap options that the sockets set from scapy's arguments."""
_OPTIONS = frozenset(StartOptions.__annotations__) - _SOCKET_OPTIONS
"""epcap options that use() and the sockets' keyword arguments may give."""
_NS = decimal.Decimal(1).scaleb(-9)

_defaults: dict[str, Any] = {}
"""The options of the latest use(), for every capture the sockets start."""


class InjectNotAllowedError(PolicyError, PermissionError):  # type: ignore[misc]
    """The installation does not let you send: a sending socket (scapy's
    ``conf.L2socket``, ``conf.L3socket``: ``sendp``, ``srp``, ``send``,
    ``sr``) needs ``inject``. Both an :class:`epcap.PolicyError` and the
    built-in ``PermissionError`` that scapy's own sockets raise (its
    ``errno`` is epcap's, a name such as ``"EPERM"``, as every
    :class:`epcap.CaptureError`'s: hence the ignore)."""


# -- the sockets ---------------------------------------------------------------


class EpcapSocket(SuperSocket):
    """What epcap's scapy sockets share: one capture, its packets as scapy's,
    and the ``select`` that waits for them.

    The arguments are those scapy passes to its sockets (``iface``, ``type``,
    ``promisc``, ``filter``, ``nofilter``, ``monitor``) and any option of
    :func:`epcap.start` but those they decide (``interface``, ``file``,
    ``filter``, ``promiscuous``, ``monitor``, ``inject``), over the defaults
    given to :func:`use`. ``type`` other than ETH_P_ALL becomes the filter
    ``ether proto TYPE``, as scapy's libpcap sockets do.
    """

    desc = "read packets at layer 2 through epcap's helper"
    nonblocking_socket = False
    inject: ClassVar[bool] = False
    """The capture sends (``Capture.send``): the installation must allow it."""
    direction: ClassVar[str | None] = None
    """epcap's ``direction`` unless an option says: a sending socket sees
    only incoming packets, as scapy's own drop what they send."""

    def __init__(
        self,
        iface: Any = None,
        type: int = ETH_P_ALL,  # scapy's name
        promisc: bool | None = None,
        filter: str | None = None,  # scapy's name
        nofilter: int | bool = 0,
        monitor: bool | None = None,
        **options: Any,
    ) -> None:
        unknown = sorted(set(options) - _OPTIONS)
        if unknown:
            raise TypeError(
                f"{_type_name(self)}: unknown argument {unknown[0]!r}; besides scapy's, the epcap "
                f"options {', '.join(sorted(_OPTIONS))}"
            )
        device = _interface_name(iface)
        self.type = type
        self.promisc = bool(conf.sniff_promisc if promisc is None else promisc)
        self.monitor = monitor
        self.nofilter = nofilter
        self.filter = _scapy_filter(filter, nofilter=bool(nofilter), type=type)
        self.user_filter = filter
        self.options = options
        self._held: _EpcapPacket | None = None  # a packet select() took for recv()
        self._end: BaseException | None = None  # what recv() raises once the capture is over
        self._waiters: set[int] = set()  # the wake-up pipes of the selects waiting on us
        settings = {"direction": self.direction, **_defaults, **options}
        settings.update(
            interface=device, filter=self.filter, promiscuous=self.promisc,
            monitor=bool(monitor), inject=self.inject,
        )  # fmt: skip
        self.capture: _capture.Capture = _start(settings)
        """The epcap capture: ``stats()``, ``set_filter()``, ``settings``, ..."""
        self.iface: str = self.capture.interface or device or ""
        """The device captured (libpcap's default one if none was named)."""
        self.LL, self.lvl = _link_layer(self.capture.datalink, self.iface)

    # -- receiving --

    def recv(self, x: int = MTU, **kwargs: Any) -> Packet | None:
        """The next packet, dissected as the capture's link layer, with its
        exact time (an ``EDecimal`` of seconds, nanoseconds kept), ``wirelen``
        and ``sniffed_on``; it waits for one unless ``select`` reported the
        socket ready. At the end of the capture (closed, stopped) EOFError,
        which ``sniff`` takes for the end of this socket; the helper's error
        once, if it failed, then EOFError."""
        return self._dissect(self._take(), x, kwargs)

    def recv_raw(self, x: int = MTU) -> tuple[type[Packet] | None, bytes | None, Any]:
        """``(class, bytes, time)`` of the next packet, as scapy's sockets
        return it (the time is an ``EDecimal``)."""
        packet = self._take()
        data = packet.data if len(packet.data) <= x else packet.data[:x]
        return self.LL, data, _seconds(packet.time)

    def nonblock_recv(self, x: int = MTU) -> Packet | None:
        """The next packet if one is at hand (received, or readable within
        1 ms), else None; as scapy's libpcap sockets have it."""
        if not self._ready():
            self._fill(FILL_TIMEOUT)
        if self._held is None:
            return None
        return self.recv(x)

    def _dissect(self, packet: _EpcapPacket, x: int, kwargs: dict[str, Any]) -> Packet:
        data = packet.data if len(packet.data) <= x else packet.data[:x]
        try:
            pkt: Packet = self.LL(data, **kwargs)
        except KeyboardInterrupt:
            raise
        except Exception:
            if conf.debug_dissector:
                raise
            pkt = conf.raw_layer(data)
        pkt.time = _seconds(packet.time)
        pkt.wirelen = packet.length
        pkt.sniffed_on = self.iface
        return pkt

    def _take(self) -> _EpcapPacket:
        """The next epcap packet: the one select() took, else wait for one."""
        held = self._held
        if held is None and self._end is None and not self.closed:
            self._fill(None)
            held = self._held
        if held is not None:
            self._held = None
            return held
        end, self._end = self._end, EOFError(f"the capture on {self.iface} is over")
        raise end if end is not None else EOFError(f"{_type_name(self)} is closed")

    def _fill(self, timeout: float | None) -> None:
        """Take the next packet into ``_held`` (or the end into ``_end``),
        waiting at most ``timeout`` seconds (0: a packet already received or
        what the helper's stdout holds now; None: no limit)."""
        if self._held is not None or self._end is not None:
            return
        try:
            packet = self.capture.next(timeout)
        except TimeoutError:
            return
        except ValueError:  # closed by another thread meanwhile
            self._end = EOFError(f"{_type_name(self)} is closed")
            return
        except EpcapError as exc:
            self._end = exc
            return
        if packet is None:
            self._end = EOFError(f"the capture on {self.iface} is over")
        else:
            self._held = packet

    def _ready(self) -> bool:
        """recv() would not wait: a packet at hand (taken by select, in the
        batch being read, or in one received), the end, or closed."""
        if self._held is None and self._end is None and not self.closed:
            self._fill(0)
        return self._held is not None or self._end is not None or self.closed

    @staticmethod
    def select(sockets: list[SuperSocket], remain: float | None = None) -> list[SuperSocket]:
        """The sockets of ``sockets`` that ``recv()`` would not wait on, and
        the other objects in it that are readable, waiting at most
        ``remain`` seconds (None: until one is): scapy's ``select`` protocol,
        for ``sniff()``, ``sr()``, ``srp()``. Mixed with sockets of other
        classes, it polls their ``fileno()``."""
        return _select_ready(sockets, remain)

    def fileno(self) -> int:
        """The helper's stdout (-1 once closed), which ``select`` polls. The
        ``select`` of another class (scapy's own, when a sniff mixes sockets
        and one of another class comes first) polls it too, but does not see
        the packets already received in a batch: they wait for more data."""
        if self.closed:
            return -1
        return self.capture.fileno()

    # -- commands --

    def stats(self) -> dict[str, int]:
        """The capture's statistics (:meth:`epcap.Capture.stats`)."""
        try:
            return dict(self.capture.stats())
        finally:
            self._wake()

    def _wake(self) -> None:
        """Wake the selects waiting on this socket: another thread ran a
        command, which may have received packets, or closed it."""
        if self._waiters:  # a select that registers later looks for itself
            with _waiters_lock:
                for fd in self._waiters:
                    with contextlib.suppress(OSError):  # full: it is awake already
                        os.write(fd, b"\0")

    def send(self, x: Any) -> int:
        raise Scapy_Exception(f"Can't send anything with {_type_name(self)}")

    def close(self) -> None:
        """Stop and reap the helper: within 2 s, then it is terminated and
        killed (about 4 s at worst); a select waiting on it returns it at
        once, and recv() then raises EOFError."""
        if self.closed:
            return
        self.closed = True
        self._wake()
        self.capture.close()

    def __del__(self) -> None:
        # Not SuperSocket's close(), which may wait: a capture dropped
        # unclosed is stopped and reaped in the background, with a
        # ResourceWarning, by its own finalizer.
        pass

    def __repr__(self) -> str:
        capture = getattr(self, "capture", None)  # None if it failed to start
        return f"<{_type_name(self)} {getattr(self, 'iface', None)!r} {capture!r}>"


class L2ListenSocket(EpcapSocket):
    """``conf.L2listen``: ``sniff()``'s socket. Sees both directions, as
    scapy's own; cannot send."""

    desc = "read packets at layer 2 through epcap's helper (both directions)"


class L2Socket(EpcapSocket):
    """``conf.L2socket``: ``sendp()``, ``srp()``. Sends link-layer frames
    (``inject``) and receives the incoming packets (``direction="in"``), as
    scapy's own drops those it sends."""

    desc = "read/write packets at layer 2 through epcap's helper"
    inject = True
    direction = "in"

    def send(self, x: Any) -> int:
        """Send the packet (or bytes) ``x`` as one frame; the bytes sent."""
        data = bytes(x)
        with contextlib.suppress(AttributeError):
            x.sent_time = time.time()
        return self._send_bytes(data)

    def _send_bytes(self, data: bytes) -> int:
        try:
            return self.capture.send(data)
        except SendError as exc:
            if exc.errno != "EINVAL" or len(data) >= conf.min_pkt_size:
                raise
            return self.capture.send(data + b"\0" * (conf.min_pkt_size - len(data)))
        finally:
            self._wake()  # waiting for its answer, the command may have read packets
            self._trim()

    def _trim(self) -> None:
        """Keep at most BACKLOG packets nobody takes (a socket that only
        sends): beyond, drop the oldest down to half of it, as a full
        buffer drops."""
        backlog = self.capture.pending
        if backlog > BACKLOG:
            for _ in range(backlog - BACKLOG // 2):
                try:
                    self.capture.next(0)
                except (TimeoutError, ValueError, EpcapError):
                    return


class L3Socket(L2Socket):
    """``conf.L3socket``: ``send()``, ``sr()``. Sends each packet on the
    interface its route names, in the link-layer header of that interface
    (scapy resolves the next hop's address, with ``conf.L2socket``), through
    a capture of that interface opened at the first packet; receives on its
    own interface, and on those it sent on, the packets above the link
    layer, as scapy's ``L3PacketSocket``."""

    desc = "read/write packets at layer 3 through epcap's helper"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sockets: dict[str, L3Socket] = {self.iface: self}
        """This socket and those it opened to send elsewhere, by interface."""

    def recv(self, x: int = MTU, **kwargs: Any) -> Packet | None:
        pkt = super().recv(x, **kwargs)
        if pkt is not None and self.lvl == 2:
            payload: Packet = pkt.payload
            payload.time, payload.wirelen, payload.sniffed_on = pkt.time, pkt.wirelen, self.iface
            return payload
        return pkt

    def send(self, x: Any) -> int:
        """Send the packet ``x`` (IP, IPv6, ...) on the interface of its
        route; NotImplementedError for one to this host (see LOOPBACK)."""
        iface = x.route()[0]
        name = _interface_name(iface if iface is not None else conf.iface) or ""
        if name == conf.loopback_name:
            raise NotImplementedError(LOOPBACK)
        sock = self.sockets.get(name)
        if sock is None:
            sock = self.sockets[name] = L3Socket(
                iface=name, type=conf.l3types.layer2num.get(type(x), self.type),
                promisc=self.promisc, filter=self.user_filter, nofilter=self.nofilter,
                monitor=self.monitor, **self.options,
            )  # fmt: skip
            self._wake()  # a select waiting on this socket waits on that one too
        data = bytes(x) if sock.lvl == 3 else bytes(sock.LL() / x)
        with contextlib.suppress(AttributeError):
            x.sent_time = time.time()
        return sock._send_bytes(data)

    def close(self) -> None:
        if self.closed:
            return
        try:
            super().close()
        finally:
            for sock in self.sockets.values():
                if sock is not self:
                    sock.close()


# -- select ------------------------------------------------------------------

_waiters_lock = threading.Lock()
"""Guards every socket's ``_waiters``: a waker never writes to a pipe that
its select closed meanwhile."""
_POLLIN = _select.POLLIN | _select.POLLPRI


def _select_ready(sockets: list[Any], remain: float | None) -> list[Any]:
    """EpcapSocket.select: see there."""
    deadline = None if remain is None else time.monotonic() + max(remain, 0.0)
    ours, others = _sorted_out(sockets)
    ready: list[Any] = [s for s in ours if s._ready()]
    if ready:
        return ready
    wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    waited: set[EpcapSocket] = set()
    try:
        while True:
            new = [s for s in ours if s not in waited]
            with _waiters_lock:  # then ready() sees what a waker did before
                for sock in new:
                    sock._waiters.add(wake_w)
            waited.update(new)
            ready = [s for s in ours if s._ready()]
            if ready:
                return ready
            poller = _select.poll()
            poller.register(wake_r, _POLLIN)
            by_fd: dict[int, list[Any]] = {}
            for sock in [*ours, *others]:
                fd = _descriptor(sock)
                if fd < 0:  # no descriptor: always readable, as scapy's select_objects says
                    ready.append(sock)
                    continue
                by_fd.setdefault(fd, []).append(sock)
                poller.register(fd, _POLLIN)
            if ready:
                return ready
            wait = None if deadline is None else max(deadline - time.monotonic(), 0.0)
            events = poller.poll(None if wait is None else int(wait * 1000 + 0.999))
            for fd, _ in events:
                if fd == wake_r:
                    with contextlib.suppress(OSError):
                        os.read(wake_r, 4096)
                    continue
                for sock in by_fd.get(fd, ()):
                    if isinstance(sock, EpcapSocket):
                        sock._fill(FILL_TIMEOUT)
                    else:
                        ready.append(sock)
            ready = [s for s in ours if s._ready()] + ready
            if ready or (deadline is not None and time.monotonic() >= deadline):
                return ready
            ours, others = _sorted_out(sockets)  # an L3 socket may have opened another
    finally:
        with _waiters_lock:
            for sock in waited:
                sock._waiters.discard(wake_w)
        os.close(wake_r)
        os.close(wake_w)


def _sorted_out(sockets: list[Any]) -> tuple[list[EpcapSocket], list[Any]]:
    """epcap's sockets in ``sockets`` (with those each L3 socket opened to
    send elsewhere), and the other objects."""
    ours: list[EpcapSocket] = []
    others: list[Any] = []
    for sock in sockets:
        if isinstance(sock, L3Socket):
            ours.extend(s for s in sock.sockets.values() if s not in ours)
        elif isinstance(sock, EpcapSocket):
            if sock not in ours:
                ours.append(sock)
        else:
            others.append(sock)
    return ours, others


def _descriptor(obj: Any) -> int:
    """What select polls for ``obj``: -1 for always readable."""
    if isinstance(obj, EpcapSocket):
        return obj.fileno()
    try:
        return int(obj.fileno())
    except (AttributeError, OSError, ValueError, TypeError):
        return -1


# -- what the sockets share --------------------------------------------------


def _start(settings: dict[str, Any]) -> _capture.Capture:
    """epcap.start(), with a refused ``inject`` explained for scapy's users."""
    try:
        return _capture.start(**settings)
    except PolicyError as exc:
        if not settings.get("inject") or not exc.message.startswith("-j"):
            raise
        raise InjectNotAllowedError(
            f"scapy sends through epcap's helper, and {exc.message.removeprefix('-j: ')}: as "
            "root, run epcap-admin install again with --inject-group GROUP, for a group of "
            "yours (or add 'inject GROUP' to epcapd.conf beside the helper); sniff() needs no "
            "inject",
            op=exc.op, code=exc.code, errno=exc.errno,
        ) from exc  # fmt: skip


def _interface_name(iface: Any) -> str | None:
    """The device name of scapy's ``iface`` (a NetworkInterface or a name;
    None: ``conf.iface``, else libpcap's default device). A name scapy does
    not know goes to the helper as it is (``"any"``; or NoSuchDeviceError)."""
    if iface is None:
        iface = conf.iface
        if iface is None:
            return None
    if isinstance(iface, str):
        try:
            return str(network_name(iface))
        except ValueError:
            return iface
    return str(network_name(iface))


def _scapy_filter(expression: str | None, *, nofilter: bool, type: int) -> str | None:
    """The BPF filter scapy's own sockets would use: ``conf.except_filter``
    excluded unless ``nofilter`` (which drops ``expression`` too, as scapy's
    Linux sockets do), and ``type`` as ``ether proto``, as its libpcap ones."""
    if nofilter:
        expression = None
    elif conf.except_filter:
        excluded = f"not ({conf.except_filter})"
        expression = f"({expression}) and {excluded}" if expression else excluded
    if type != ETH_P_ALL:
        proto = f"ether proto {type}"
        expression = f"({proto}) and ({expression})" if expression else proto
    return expression


def _link_layer(dlt: int, iface: str | None) -> tuple[type[Packet], int]:
    """scapy's class for the link type ``dlt``, and its layer (2, or 3 for raw IP)."""
    if dlt in conf.l2types:
        return conf.l2types.num2layer[dlt], 3 if dlt in (DLT_RAW, DLT_RAW_ALT) else 2
    cls: type[Packet] = conf.default_l2
    log_runtime.warning(
        "epcap.scapy: unknown link type %i on %s: packets are %s", dlt, iface, cls.__name__
    )
    return cls, 2


def _seconds(ns: int) -> EDecimal:
    """A time in integer nanoseconds as scapy's exact ``EDecimal`` of seconds."""
    return EDecimal(decimal.Decimal(ns) * _NS)


def _type_name(sock: object) -> str:
    return f"epcap.scapy.{type(sock).__name__}"


# -- use() and undo() --------------------------------------------------------

_saved: dict[str, Any] | None = None
"""scapy's sockets before the first use(), for undo()."""
_patched: list[Any] = []
"""The interface providers whose ``_l3socket`` use() replaced."""


LOOPBACK = (
    "send() and sr() to this host's own addresses go through the loopback, where the kernel "
    "drops what a packet socket injects (a martian source): scapy's raw IP socket, which needs "
    "root, is the only way there; as root, epcap.scapy.use() leaves it to scapy"
)


def _no_loopback(*args: Any, **kwargs: Any) -> NoReturn:
    raise NotImplementedError(LOOPBACK)


def _l3socket_of(provider: Any) -> Callable[[Any, bool], Any]:
    """``provider._l3socket`` under use(): the loopback keeps scapy's own
    choice (a raw IP socket) for root and is NotImplementedError for others;
    every other interface gets ``conf.L3socket``, as scapy's providers give."""
    own = type(provider)._l3socket.__get__(provider)

    def l3socket(dev: Any, ipv6: bool) -> Any:
        if dev.name == conf.loopback_name:
            return own(dev, ipv6) if os.geteuid() == 0 else _no_loopback
        return own(dev, ipv6)

    return l3socket


class Use(Closing):
    """What :func:`use` returns: a context manager whose exit is :func:`undo`."""

    def close(self) -> None:
        """:func:`undo`."""
        undo()

    undo = close


def use(**defaults: Unpack[StartOptions]) -> Use:
    """Make scapy capture and send through epcap: ``conf.L2listen``
    (``sniff``), ``conf.L2socket`` (``sendp``, ``srp``), ``conf.L3socket``
    and ``conf.L3socket6`` (``send``, ``sr``; not to this host's own
    addresses: see LOOPBACK) become epcap's sockets, each of which starts a
    capture with these ``defaults`` (any option of :func:`epcap.start` but
    those the sockets set: ``interface``, ``file``, ``filter``,
    ``promiscuous``, ``monitor``, ``inject``), e.g. ``progname=``,
    ``buffer=``, ``timeout=``. A later call replaces the defaults.
    ``sniff(offline=...)`` still reads files itself. Returns a context
    manager that undoes it."""
    global _saved
    bad = sorted(set(defaults) - _OPTIONS)
    if bad:
        why = "the sockets set it" if bad[0] in _SOCKET_OPTIONS else "not an epcap option"
        raise TypeError(f"use(): {bad[0]!r}: {why}; use() takes {', '.join(sorted(_OPTIONS))}")
    if _saved is None:
        _saved = {name: getattr(conf, name) for name in ("L2listen", "L2socket", "L3socket")}
        _saved["L3socket6"] = conf.L3socket6
        for provider in conf.ifaces.providers.values():
            if "_l3socket" not in vars(provider):
                setattr(provider, "_l3socket", _l3socket_of(provider))  # noqa: B010 - instance's
                _patched.append(provider)
    _defaults.clear()
    _defaults.update(defaults)
    conf.L2listen = L2ListenSocket
    conf.L2socket = L2Socket
    conf.L3socket = L3Socket
    conf.L3socket6 = cast(Any, functools.partial(L3Socket, filter="ip6"))  # as scapy's own
    return Use()


def undo() -> None:
    """scapy's own sockets again, as before the first :func:`use` (nothing
    if none is in effect). Sockets already open stay epcap's until closed."""
    global _saved
    if _saved is None:
        return
    for name, value in _saved.items():
        setattr(conf, name, value)
    for provider in _patched:
        with contextlib.suppress(AttributeError):
            delattr(provider, "_l3socket")
    _patched.clear()
    _defaults.clear()
    _saved = None

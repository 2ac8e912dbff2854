"""The sans-I/O core: frames in, events out (``epcapd/PROTOCOL.md``).

Nothing here reads, writes, spawns or sleeps. :class:`Session` takes the bytes
the helper wrote, in pieces of any size, and returns the events they complete;
:func:`encode` makes the bytes of a command. The sync and asyncio shells only
move bytes between the helper and these.
"""

from __future__ import annotations

import contextlib
import enum
import mmap
import os
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from itertools import repeat
from typing import Any

import msgpack

from ._errors import (
    CaptureError,
    EpcapError,
    ProtocolError,
    ProtocolVersionError,
    error_from_report,
)
from ._packet import Packet, RawTime

_speedups: Any = None
if not os.environ.get("EPCAP_PURE_PYTHON"):
    # not built (no C compiler or Python headers): pure Python
    with contextlib.suppress(ImportError):
        from . import _speedups  # type: ignore[attr-defined, no-redef]

ACCELERATED: bool = _speedups is not None
"""Whether the C accelerator (``epcap._speedups``) builds packets; False
when it was not built or ``EPCAP_PURE_PYTHON`` is set in the environment."""

VERSION = 4
"""The protocol version this client speaks."""
MAX_FRAME = 1 << 20
"""The largest frame body either side may send, in bytes."""
READ_SIZE = 1 << 20
"""The most a shell reads from the helper at once, in bytes."""

_PREFIX = struct.Struct(">I")
_NS = 1_000_000_000
_MAX_SECONDS = 0xFFFFFFFF  # a pcap file's fields: 32 bits each
_MAX_FRACTION = 0xFFFFFFFF * 1000  # microseconds, in nanoseconds


@dataclass(frozen=True)
class Ready:
    """The helper is capturing; ``settings`` are the ones in effect."""

    settings: Mapping[str, Any]


@dataclass(frozen=True)
class Stats:
    """Statistics the helper sent by itself, every ``stats_interval``."""

    stats: Mapping[str, int]


@dataclass(frozen=True)
class Reply:
    """The helper carried out ``command``; ``value`` is its result."""

    command: str
    value: Any


@dataclass(frozen=True)
class Refused:
    """The helper could not carry out ``command``; the capture goes on."""

    command: str
    error: CaptureError


@dataclass(frozen=True)
class End:
    """The capture ended normally (``eof``), with the final statistics."""

    stats: Mapping[str, int]


Event = Ready | list[Packet] | Stats | Reply | Refused | End | EpcapError
"""What :meth:`Session.receive` returns: a batch of packets is a plain list;
the helper's error is a :class:`CaptureError`, and a broken protocol a
:class:`ProtocolError` that ends the list."""


def encode(*message: object) -> bytes:
    """Frame one command, e.g. ``encode("filter", "udp")``."""
    body = msgpack.packb(list(message), use_bin_type=True)
    if len(body) > MAX_FRAME:
        raise ValueError(f"command of {len(body)} bytes exceeds the {MAX_FRAME}-byte frame limit")
    return _PREFIX.pack(len(body)) + body


class FrameDecoder:
    """Splits a byte stream into frames and unpacks each one's msgpack value.

    The bytes are read straight into the decoder's own buffer
    (:meth:`space`, then :meth:`filled`), so a frame is never copied before
    msgpack reads it; only the start of a frame that a read cut is moved to
    the front. A length of 0 or above :data:`MAX_FRAME` is refused as soon as
    its 4 bytes are in, so the buffer holds at most one frame plus one read
    (``read_size`` bytes). After an error the decoder is broken and decodes
    nothing more.
    """

    def __init__(self, read_size: int = READ_SIZE) -> None:
        self._read_size = read_size
        # anonymous memory: its pages exist once a read reaches them, so a
        # quiet capture holds a few KiB of it, not 2 MiB
        self._view = memoryview(mmap.mmap(-1, 4 + MAX_FRAME + read_size))
        self._start = self._end = 0  # the bytes held: _view[_start:_end]
        self._error: ProtocolError | None = None

    @property
    def buffered(self) -> int:
        """Bytes held: the start of a frame not yet complete."""
        return self._end - self._start

    def space(self) -> memoryview:
        """Where the next read goes: ``read_size`` bytes, then :meth:`filled`."""
        if self._start:
            held = self._end - self._start
            self._view[:held] = self._view[self._start : self._end]  # memmove
            self._start, self._end = 0, held
        return self._view[self._end : self._end + self._read_size]

    def filled(self, count: int) -> tuple[list[Any], ProtocolError | None]:
        """``count`` bytes were read into :meth:`space`; return the values of
        the frames they complete, and the error that stopped decoding, if
        any (the values before it stand)."""
        if self._error is not None:
            return [], self._error
        if not 0 <= count <= min(self._read_size, len(self._view) - self._end):
            raise ValueError(f"filled({count}) beyond the space given")
        self._end += count
        view, pos, end = self._view, self._start, self._end
        values: list[Any] = []
        while end - pos >= 4:
            (length,) = _PREFIX.unpack_from(view, pos)
            if not 0 < length <= MAX_FRAME:
                return values, self._fail(f"frame length {length} out of range 1..{MAX_FRAME}")
            if end - pos - 4 < length:
                break
            try:
                with view[pos + 4 : pos + 4 + length] as body:
                    values.append(
                        msgpack.unpackb(body, raw=False, use_list=False, unicode_errors="replace")
                    )
            except Exception as exc:  # msgpack raises several unrelated types
                return values, self._fail(f"malformed frame: {exc!r}")
            pos += 4 + length
        self._start, self._end = (0, 0) if pos == end else (pos, end)
        return values, None

    def feed(self, data: bytes | memoryview) -> tuple[list[Any], ProtocolError | None]:
        """Add bytes from elsewhere (copied in, a read at a time); as :meth:`filled`."""
        values: list[Any] = []
        rest = memoryview(data).cast("B")
        while True:
            space = self.space()
            count = min(len(space), len(rest))
            space[:count] = rest[:count]
            more, error = self.filled(count)
            values += more
            rest = rest[count:]
            if error is not None or not rest:
                return values, error

    def _fail(self, message: str) -> ProtocolError:
        self._error = ProtocolError(message)
        self._start = self._end = 0
        return self._error


def _wide_time(value: Any) -> int:
    """A time that is no 64-bit count of nanoseconds travels as (sec, nsec):
    past 2554 with ``0 <= nsec < 10**9``; or, from a pcap file whose
    fraction field is a second or more, with that fraction,
    ``10**9 <= nsec <= 4294967295000``, and the file's seconds,
    ``0 <= sec <= 4294967295``: a RawTime. Anything else is an error."""
    if type(value) is tuple and len(value) == 2:
        sec, nsec = value
        if type(sec) is int and type(nsec) is int:
            if 0 <= nsec < _NS:
                return sec * _NS + nsec
            if _NS <= nsec <= _MAX_FRACTION and 0 <= sec <= _MAX_SECONDS:
                return RawTime(sec, nsec)
    raise ProtocolError(f"malformed packets frame: bad time {value!r:.40}")


def _batch(message: tuple[Any, ...], packet_type: Callable[[int], type[Packet]]) -> list[Packet]:
    """[time, length, data, ...] into Packets, with no Python code per packet.
    A 4th element is the pcapng interface id of the whole frame (0 if absent).
    The accelerator builds the common case; the rest is :func:`_build`'s."""
    if len(message) not in (3, 4) or type(message[1]) is not int or type(message[2]) is not tuple:
        raise ProtocolError("malformed packets frame")
    ifid = message[3] if len(message) == 4 else 0
    if type(ifid) is not int or ifid < 0:
        raise ProtocolError("malformed packets frame: bad interface id")
    cls = packet_type(ifid)
    if _speedups is not None:
        packets: list[Packet] | None = _speedups.build(message[1], message[2], cls)
        if packets is not None:
            return packets
    return _build(message[1], message[2], cls)


def _build(dlt: int, items: tuple[Any, ...], cls: type[Packet]) -> list[Packet]:
    """The packets frame's definition, in Python: the types are checked a
    column at a time, then C builds the tuples."""
    if len(items) % 3:
        raise ProtocolError("malformed packets frame: not (time, length, data) triples")
    times = items[0::3]
    if set(map(type, items[1::3])) - {int} or set(map(type, items[2::3])) - {bytes}:
        raise ProtocolError("malformed packets frame: a length or data field has the wrong type")
    if set(map(type, times)) - {int}:
        times = tuple(t if type(t) is int else _wide_time(t) for t in times)
    new = partial(tuple.__new__, cls)
    return list(map(new, zip(repeat(dlt), times, items[1::3], items[2::3])))


def _map(message: tuple[Any, ...], tag: str) -> Mapping[str, Any]:
    if len(message) != 2 or not isinstance(message[1], dict):
        raise ProtocolError(f"malformed {tag} frame")
    return message[1]


class State(enum.Enum):
    """Where a helper's stream is: before ``ready``, capturing, or over."""

    SETUP = "setup"
    RUNNING = "running"
    ENDED = "ended"


class Session:
    """The client's view of one helper: SETUP, then RUNNING, then ENDED.

    In SETUP only ``ready`` or ``error`` may come; in RUNNING ``packets``,
    ``stats``, ``eof`` or ``error``; after ``eof`` or ``error`` nothing.
    ``file_mode`` tells how to classify a failed read. ``packet_type(ifid)``
    gives the class of the packets of pcapng interface ``ifid`` (0 for a
    live capture or a classic pcap file): :class:`Packet` or a subclass
    that knows its interface. ``where`` says where the helper runs, for
    the messages (" on host x", or "" for this host).
    """

    def __init__(
        self,
        *,
        file_mode: bool = False,
        packet_type: Callable[[int], type[Packet]] | None = None,
        where: str = "",
    ) -> None:
        self._where = where
        self._decoder = FrameDecoder()
        self.space: Callable[[], memoryview] = self._decoder.space
        """Where to read the helper's next bytes into; then :meth:`filled`."""
        self._file_mode = file_mode
        self.packet_type: Callable[[int], type[Packet]] = packet_type or (lambda ifid: Packet)
        self.state = State.SETUP
        self.settings: Mapping[str, Any] = {}

    def receive(self, data: bytes | memoryview) -> list[Event]:
        """Feed bytes from the helper; return the events they complete, in
        order. A protocol violation is a :class:`ProtocolError` event, the
        last one: the events before it stand, and the session is over."""
        return self._events(*self._decoder.feed(data))

    def filled(self, count: int) -> list[Event]:
        """``count`` bytes were read into :meth:`space`: as :meth:`receive`."""
        return self._events(*self._decoder.filled(count))

    def _events(self, values: list[Any], error: ProtocolError | None) -> list[Event]:
        events: list[Event] = []
        try:
            for value in values:
                events.append(self._event(value))
        except ProtocolError as exc:
            error = exc
        if error is not None:
            self.state = State.ENDED
            events.append(error)
        return events

    def end_of_stream(self) -> bool:
        """The helper's stdout closed; True if that was after a proper end
        (not before ``eof`` or ``error``, nor inside a frame)."""
        return self.state is State.ENDED and not self._decoder.buffered

    def _event(self, message: Any) -> Event:
        if not isinstance(message, tuple) or not message or not isinstance(message[0], str):
            raise ProtocolError("message is not an array led by a string tag")
        tag = message[0]
        if self.state is State.ENDED:
            raise ProtocolError(f"{tag!r} frame after the end of the capture")
        if tag == "error":
            self.state = State.ENDED
            return error_from_report(_map(message, tag), file_mode=self._file_mode)
        if self.state is State.SETUP:
            if tag != "ready":
                raise ProtocolError(f"expected 'ready', got {tag!r}")
            settings = _map(message, tag)
            version = settings.get("version")
            if version != VERSION:
                raise ProtocolVersionError(
                    f"the helper{self._where} speaks protocol version {version!r}, "
                    f"this client speaks {VERSION}: install the helper of this epcap "
                    f"(as root{self._where}: `epcap-admin install`)",
                    version=version,
                )
            self.state, self.settings = State.RUNNING, settings
            return Ready(settings)
        if tag == "packets":
            return _batch(message, self.packet_type)
        if tag == "stats":
            return Stats(_map(message, tag))
        if tag in ("reply", "refused"):
            if len(message) != 3 or not isinstance(message[1], str):
                raise ProtocolError(f"malformed {tag} frame")
            if tag == "reply":
                return Reply(message[1], message[2])
            report = _map(message[1:], tag)
            error = error_from_report(report, file_mode=self._file_mode)
            return Refused(message[1], error)
        if tag == "eof":
            self.state = State.ENDED
            return End(_map(message, tag))
        raise ProtocolError(f"unknown message {tag!r}")

"""The sans-I/O core: frames in, events out (``epcapd/PROTOCOL.md``).

Nothing here reads, writes, spawns or sleeps. :class:`Session` takes the bytes
the helper wrote, in pieces of any size, and returns the events they complete;
:func:`encode` makes the bytes of a command. The sync and asyncio shells only
move bytes between a pipe and these.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from itertools import repeat
from typing import Any

import msgpack

from ._errors import CaptureError, EpcapError, ProtocolError, error_from_report
from ._packet import Packet

VERSION = 2
"""The protocol version this client speaks."""
MAX_FRAME = 1 << 20
"""The largest frame body either side may send, in bytes."""

_PREFIX = struct.Struct(">I")
_NS = 1_000_000_000


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

    A length of 0 or above :data:`MAX_FRAME` is refused as soon as its 4 bytes
    are in, so the buffer never holds more than one frame plus one read.
    After an error the decoder is broken and decodes nothing more.
    """

    def __init__(self) -> None:
        self._buf = bytearray()
        self._error: ProtocolError | None = None

    @property
    def buffered(self) -> int:
        """Bytes held: the start of a frame not yet complete."""
        return len(self._buf)

    def feed(self, data: bytes | memoryview) -> tuple[list[Any], ProtocolError | None]:
        """Add bytes; return the values of the frames they complete, and the
        error that stopped decoding, if any (the values before it stand)."""
        if self._error is not None:
            return [], self._error
        if self._buf:
            self._buf += data
            buf: bytes | bytearray | memoryview = self._buf
        else:
            buf = data  # the common case: no copy of what was read
        values: list[Any] = []
        pos, end = 0, len(buf)
        while end - pos >= 4:
            (length,) = _PREFIX.unpack_from(buf, pos)
            if not 0 < length <= MAX_FRAME:
                return values, self._fail(f"frame length {length} out of range 1..{MAX_FRAME}")
            if end - pos - 4 < length:
                break
            try:
                with memoryview(buf) as view, view[pos + 4 : pos + 4 + length] as body:
                    values.append(
                        msgpack.unpackb(body, raw=False, use_list=False, unicode_errors="replace")
                    )
            except Exception as exc:  # msgpack raises several unrelated types
                return values, self._fail(f"malformed frame: {exc!r}")
            pos += 4 + length
        if buf is self._buf:
            del self._buf[:pos]
        else:
            self._buf = bytearray(buf[pos:])  # only the start of the next frame
        return values, None

    def _fail(self, message: str) -> ProtocolError:
        self._error = ProtocolError(message)
        self._buf.clear()
        return self._error


def _wide_time(value: Any) -> int:
    """A time past 2554 travels as (sec, nsec); anything else is an error."""
    if type(value) is tuple and len(value) == 2:
        sec, nsec = value
        if type(sec) is int and type(nsec) is int and 0 <= nsec < _NS:
            return sec * _NS + nsec
    raise ProtocolError(f"malformed packets frame: bad time {value!r:.40}")


def _batch(message: tuple[Any, ...], packet_type: Callable[[int], type[Packet]]) -> list[Packet]:
    """[time, length, data, ...] into Packets, with no Python code per packet:
    the types are checked a column at a time, then C builds the tuples. A
    4th element is the pcapng interface id of the whole frame (0 if absent)."""
    if len(message) not in (3, 4) or type(message[1]) is not int or type(message[2]) is not tuple:
        raise ProtocolError("malformed packets frame")
    ifid = message[3] if len(message) == 4 else 0
    if type(ifid) is not int or ifid < 0:
        raise ProtocolError("malformed packets frame: bad interface id")
    dlt, items = message[1], message[2]
    if len(items) % 3:
        raise ProtocolError("malformed packets frame: not (time, length, data) triples")
    times = items[0::3]
    if set(map(type, items[1::3])) - {int} or set(map(type, items[2::3])) - {bytes}:
        raise ProtocolError("malformed packets frame: a length or data field has the wrong type")
    if set(map(type, times)) - {int}:
        times = tuple(t if type(t) is int else _wide_time(t) for t in times)
    new = partial(tuple.__new__, packet_type(ifid))
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
    that knows its interface.
    """

    def __init__(
        self,
        *,
        file_mode: bool = False,
        packet_type: Callable[[int], type[Packet]] | None = None,
    ) -> None:
        self._decoder = FrameDecoder()
        self._file_mode = file_mode
        self.packet_type: Callable[[int], type[Packet]] = packet_type or (lambda ifid: Packet)
        self.state = State.SETUP
        self.settings: Mapping[str, Any] = {}

    def receive(self, data: bytes | memoryview) -> list[Event]:
        """Feed bytes from the helper; return the events they complete, in
        order. A protocol violation is a :class:`ProtocolError` event, the
        last one: the events before it stand, and the session is over."""
        values, error = self._decoder.feed(data)
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
            if settings.get("version") != VERSION:
                raise ProtocolError(
                    f"the helper speaks protocol version {settings.get('version')!r}, "
                    f"this client speaks {VERSION}: install the helper of this epcap "
                    "(as root: `epcap-admin install`)"
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

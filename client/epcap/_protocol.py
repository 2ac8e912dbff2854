"""The sans-I/O core: frames in, events out (``epcapd/PROTOCOL.md``).

Nothing here reads, writes, spawns or sleeps. :class:`Session` takes the bytes
the helper wrote, in pieces of any size, and returns the events they complete;
:func:`encode` makes the bytes of a command. The sync and asyncio shells only
move bytes between a pipe and these.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import msgpack

from ._errors import CaptureError, ProtocolError, error_from_report
from ._packet import Packet

VERSION = 1
"""The protocol version this client speaks."""
MAX_FRAME = 1 << 20
"""The largest frame body either side may send, in bytes."""

_PREFIX = struct.Struct(">I")
_NS = 1_000_000_000
_new_packet = tuple.__new__


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


Event = Ready | list[Packet] | Stats | Reply | Refused | End | CaptureError
"""What :meth:`Session.receive` returns: a batch of packets is a plain list."""


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
    """

    def __init__(self) -> None:
        self._buf = bytearray()

    @property
    def buffered(self) -> int:
        """Bytes held: the start of a frame not yet complete."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[Any]:
        """Add bytes; return the values of the frames they complete."""
        buf = self._buf
        buf += data
        values: list[Any] = []
        pos, end = 0, len(buf)
        while end - pos >= 4:
            (length,) = _PREFIX.unpack_from(buf, pos)
            if not 0 < length <= MAX_FRAME:
                raise ProtocolError(f"frame length {length} out of range 1..{MAX_FRAME}")
            if end - pos - 4 < length:
                break
            with memoryview(buf) as view:
                body = view[pos + 4 : pos + 4 + length]
                try:
                    values.append(
                        msgpack.unpackb(body, raw=False, use_list=False, unicode_errors="replace")
                    )
                except Exception as exc:  # msgpack raises several unrelated types
                    raise ProtocolError(f"malformed frame: {exc!r}") from None
                finally:
                    body.release()
            pos += 4 + length
        if pos:
            del buf[:pos]
        return values


def _batch(message: tuple[Any, ...]) -> list[Packet]:
    try:
        _, dlt, items = message
        packets = [
            _new_packet(Packet, (dlt, sec * _NS + nsec, length, data))
            for sec, nsec, length, data in items
        ]
    except (TypeError, ValueError) as exc:
        raise ProtocolError(f"malformed packets frame: {exc}") from None
    if type(dlt) is not int or not all(
        type(p[1]) is int and type(p[2]) is int and type(p[3]) is bytes for p in packets
    ):
        raise ProtocolError("malformed packets frame: wrong field types")
    return packets


def _map(message: tuple[Any, ...], tag: str) -> Mapping[str, Any]:
    if len(message) != 2 or not isinstance(message[1], dict):
        raise ProtocolError(f"malformed {tag} frame")
    return message[1]


class Session:
    """The client's view of one helper: SETUP, then RUNNING, then ENDED.

    In SETUP only ``ready`` or ``error`` may come; in RUNNING ``packets``,
    ``stats``, ``eof`` or ``error``; after ``eof`` or ``error`` nothing.
    ``file_mode`` tells how to classify a failed read.
    """

    def __init__(self, *, file_mode: bool = False) -> None:
        self._decoder = FrameDecoder()
        self._file_mode = file_mode
        self.state = "setup"
        self.settings: Mapping[str, Any] = {}

    def receive(self, data: bytes) -> list[Event]:
        """Feed bytes from the helper; return the events they complete."""
        return [self._event(value) for value in self._decoder.feed(data)]

    def end_of_stream(self) -> bool:
        """The helper's stdout closed; True if that was after a proper end."""
        if self._decoder.buffered:
            raise ProtocolError(f"stream ended inside a frame ({self._decoder.buffered} bytes)")
        return self.state == "ended"

    def _event(self, message: Any) -> Event:
        if not isinstance(message, tuple) or not message or not isinstance(message[0], str):
            raise ProtocolError("message is not an array led by a string tag")
        tag = message[0]
        if self.state == "ended":
            raise ProtocolError(f"{tag!r} frame after the end of the capture")
        if tag == "error":
            self.state = "ended"
            return error_from_report(_map(message, tag), file_mode=self._file_mode)
        if self.state == "setup":
            if tag != "ready":
                raise ProtocolError(f"expected 'ready', got {tag!r}")
            settings = _map(message, tag)
            if settings.get("version") != VERSION:
                raise ProtocolError(
                    f"helper speaks protocol version {settings.get('version')!r}, "
                    f"this client speaks {VERSION}"
                )
            self.state, self.settings = "running", settings
            return Ready(settings)
        if tag == "packets":
            return _batch(message)
        if tag == "stats":
            return Stats(_map(message, tag))
        if tag in ("reply", "refused"):
            if len(message) != 3 or not isinstance(message[1], str):
                raise ProtocolError(f"malformed {tag} frame")
            if tag == "reply":
                return Reply(message[1], message[2])
            report = _map(message[1:], tag)
            error = error_from_report(report, file_mode=self._file_mode, command=message[1])
            return Refused(message[1], error)
        if tag == "eof":
            self.state = "ended"
            return End(_map(message, tag))
        raise ProtocolError(f"unknown message {tag!r}")

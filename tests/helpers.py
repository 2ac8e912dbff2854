"""Small helpers shared by the tests: the helper's wire framing, a canned
`ready` frame, and a UDP sender for live captures.

Only the standard library, msgpack and epcap's protocol version: the fake
helpers of test_fake_helper.py and the unprivileged driver (userdriver.py)
import this module too, in processes of their own. Starting a capture with
the source tree's helper is conftest.py's `start()`; what runs as another
user is privileged.py's."""

from __future__ import annotations

import contextlib
import os
import socket
import struct
import time
from collections.abc import Iterable, Iterator
from typing import Any

import msgpack

from epcap._protocol import VERSION


def frame(value: Any) -> bytes:
    """`value` as one frame of the helper's protocol: a 4-byte big-endian
    length, then the msgpack body (bytes as bin, str as str)."""
    body = msgpack.packb(value, use_bin_type=True)
    return struct.pack(">I", len(body)) + body


def ready(pid: int = 42) -> list[Any]:
    """The `ready` message of a helper of process id `pid`: this protocol
    version, Ethernet (DLT 1), snaplen 65535."""
    return ["ready", {"version": VERSION, "pid": pid, "datalink": 1, "snaplen": 65535}]


READY = frame(ready())
"""The framed `ready` message of a helper of pid 42: a stream's valid start."""


def send_udp(
    dst: str, port: int, payloads: Iterable[bytes], *, sport: int = 0, gap: float = 0.0
) -> None:
    """Send each of `payloads` as one UDP datagram to `dst`:`port`, all from
    one socket (bound to source port `sport`, if given), pausing `gap`
    seconds after each."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
        if sport:
            tx.bind(("", sport))
        for payload in payloads:
            tx.sendto(payload, (dst, port))
            if gap:
                time.sleep(gap)


@contextlib.contextmanager
def local_time(zone: str) -> Iterator[None]:
    """This process's local time is that of `zone` (a TZ value, such as a
    POSIX string that needs no tzdata: "XXX-5:30") until the block ends."""
    saved = os.environ.get("TZ")
    os.environ["TZ"] = zone
    time.tzset()
    try:
        yield
    finally:
        if saved is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = saved
        time.tzset()

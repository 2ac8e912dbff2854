"""Deterministic benchmark workloads, written as classic pcap files.

mixed: Ethernet/IPv4 packets of every size from 60 to 1514 bytes, TCP and
UDP alternating; small: 64-byte Ethernet/IPv4/UDP packets. Every packet is
valid (checksums included): the templates come from the test suite's own
packet builders.
"""

from __future__ import annotations

import random
import struct
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pcapfiles as pf

START_NS = 1_767_225_600_000_000_000  # 2026-01-01T00:00:00Z


def _template(size: int, tcp: bool) -> bytes:
    """An Ethernet/IPv4 packet of exactly `size` bytes."""
    overhead = 14 + 20 + (20 if tcp else 8)
    payload = bytes(range(256)) * 6
    body = payload[: max(0, size - overhead)]
    if tcp:
        pkt = pf.eth_ipv4_tcp("198.18.0.1", "198.18.0.2", 40000, 80, body, flags="PA")
    else:
        pkt = pf.eth_ipv4_udp("198.18.0.1", "198.18.0.2", 40000, 53, body)
    return pkt + bytes(size - len(pkt))  # Ethernet padding up to 60


def write(path: Path, count: int, kind: str) -> Path:
    """Write `count` packets of workload `kind` ("mixed" or "small") to path."""
    rng = random.Random(20260101)
    if kind == "mixed":
        templates = {(n, t): _template(n, t) for n in range(60, 1515) for t in (False, True)}
        pick = [templates[(rng.randint(60, 1514), i % 2 == 0)] for i in range(count)]
    else:
        small = _template(64, False)
        pick = [small] * count
    with path.open("wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B23C4D, 2, 4, 0, 0, 262144, 1))  # nanosecond pcap
        record = struct.Struct("<IIII")
        chunk = []
        for i, data in enumerate(pick):
            t = START_NS + i * 1_234
            chunk.append(record.pack(t // 10**9, t % 10**9, len(data), len(data)))
            chunk.append(data)
            if len(chunk) >= 20000:
                f.write(b"".join(chunk))
                chunk.clear()
        f.write(b"".join(chunk))
    return path

"""Which interface a pcapng packet came from, at the helper's wire: the 4th
element of a `packets` frame (PROTOCOL.md), which libpcap 1.10 does not
give and the helper finds from the blocks between two packets.

Every packet the tests write carries its true interface id in its first
byte, so each check is `frame id == data[0]`. The files are small pcapng
builders of this module's (any block type, either byte order) and
PcapngWriter's."""

from __future__ import annotations

import itertools
import os
import random
import shutil
import struct
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import epcap
from epcap._protocol import FrameDecoder
from epcap.savefile import PcapngWriter, PcapWriter

import pcapfiles as pf
from conftest import HELPER

SHB, IDB, OPB, SPB, NRB, ISB, EPB = 0x0A0D0D0A, 1, 2, 3, 4, 5, 6
CUSTOM = 0x00000BAD
"""A local-use block type libpcap skips."""


def pad(data: bytes) -> bytes:
    return data + b"\0" * (-len(data) % 4)


def block(order: str, kind: int, body: bytes) -> bytes:
    body = pad(body)
    size = struct.pack(f"{order}I", len(body) + 12)
    return struct.pack(f"{order}I", kind) + size + body + size


def options(order: str, *pairs: tuple[int, bytes]) -> bytes:
    out = b"".join(struct.pack(f"{order}HH", code, len(v)) + pad(v) for code, v in pairs)
    return out + struct.pack(f"{order}HH", 0, 0)


def shb(order: str) -> bytes:
    return block(order, SHB, struct.pack(f"{order}IHHq", 0x1A2B3C4D, 1, 0, -1))


def idb(order: str) -> bytes:
    """Ethernet, the snaplen PcapngWriter writes (libpcap wants the same in every IDB)."""
    return block(order, IDB, struct.pack(f"{order}HHI", 1, 0, 262144))


def payload(ifid: int, n: int, size: int = 60) -> bytes:
    """A packet's bytes: its true interface, then its number."""
    return bytes([ifid]) + struct.pack(">I", n) + bytes(size - 5)


def epb(order: str, ifid: int, n: int, opts: bytes = b"", size: int = 60) -> bytes:
    data = payload(ifid, n, size)
    head = struct.pack(f"{order}IIIII", ifid, 0, n, len(data), len(data))
    return block(order, EPB, head + pad(data) + opts)


def opb(order: str, ifid: int, n: int) -> bytes:
    data = payload(ifid, n)
    head = struct.pack(f"{order}HHIIII", ifid, 0, 0, n, len(data), len(data))
    return block(order, OPB, head + data)


def spb(order: str, n: int) -> bytes:
    data = payload(0, n)
    return block(order, SPB, struct.pack(f"{order}I", len(data)) + data)


def run(path: Path, *args: str) -> tuple[int, list[Any]]:
    """The helper over `path`: its exit status and its frames. stdin stays
    open until the file's end has ended it."""
    helper = subprocess.Popen(
        [str(HELPER), "-r", str(path), *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    assert helper.stdout is not None and helper.stdin is not None
    stdout = helper.stdout.read()
    helper.stdin.close()
    code = helper.wait(10)
    values, error = FrameDecoder().feed(stdout)
    assert error is None
    return code, list(values)


def packets(frames: list[Any]) -> list[tuple[int, bytes]]:
    """(interface id, data) of every packet, in order. A 4th element is
    never 0: interface 0 travels as its absence."""
    out = []
    for f in frames:
        if f[0] != "packets":
            continue
        assert len(f) in (3, 4)
        if len(f) == 4:
            assert type(f[3]) is int and f[3] > 0, f"a 4th element of {f[3]!r}"
        ifid = f[3] if len(f) == 4 else 0
        out += [(ifid, data) for data in f[2][2::3]]
    return out


def assert_ids_true(frames: list[Any], count: int) -> None:
    got = packets(frames)
    assert len(got) == count
    assert [i for i, _ in got] == [data[0] for _, data in got]
    assert frames[-1][0] == "eof"


@pytest.mark.parametrize("interfaces", [2, 3])
def test_packets_of_several_interfaces(tmp_path: Path, interfaces: int) -> None:
    rng = random.Random(interfaces)
    path, ids = tmp_path / "many.pcapng", list[int]()
    with PcapngWriter(path) as out:
        for i in range(interfaces):
            out.add_interface(1, name=f"if{i}")
        for n in range(3000):
            ifid = rng.randrange(interfaces) if n % 7 else (ids[-1] if ids else 0)
            ids.append(ifid)
            out.write(epcap.Packet(1, n, 60, payload(ifid, n)), ifid)
    code, frames = run(path)
    assert code == 0
    assert_ids_true(frames, 3000)
    # All packets of a frame share its id: a frame ends where the id changes,
    # and only there (3000 small packets fit one batch).
    runs = 1 + sum(a != b for a, b in itertools.pairwise(ids))
    assert len([f for f in frames if f[0] == "packets"]) == runs
    # libpcap reads the same packets.
    assert [d for _, _, d in pf.libpcap_read(path)[1]] == [d for _, d in packets(frames)]


@pytest.mark.parametrize("order", ["<", ">"], ids=["little-endian", "big-endian"])
def test_blocks_between_packets_and_a_second_section(tmp_path: Path, order: str) -> None:
    """Interface, statistics, name resolution and unknown blocks between
    packets; obsolete and simple packet blocks; options on enhanced packet
    blocks; a second section, whose interfaces are numbered from 0 again."""
    flags = options(order, (2, struct.pack(f"{order}I", 1)), (1, b"a comment"))
    raw = b"".join([
        shb(order), idb(order), idb(order), idb(order),
        epb(order, 0, 1), epb(order, 2, 2), block(order, ISB, struct.pack(f"{order}III", 1, 0, 0)),
        epb(order, 1, 3), block(order, NRB, struct.pack(f"{order}HH", 0, 0)), opb(order, 2, 4),
        epb(order, 0, 5, flags), idb(order), epb(order, 3, 6), block(order, CUSTOM, b"skip me"),
        epb(order, 3, 7, flags), epb(order, 1, 8, size=1500),
        shb(order), idb(order), idb(order),
        epb(order, 1, 9, flags), epb(order, 0, 10), spb(order, 11), epb(order, 1, 12),
        idb(order), block(order, ISB, struct.pack(f"{order}III", 2, 0, 0)), epb(order, 2, 13),
        shb(order), idb(order), epb(order, 0, 14), epb(order, 0, 15, flags),
    ])  # fmt: skip
    path = tmp_path / "sections.pcapng"
    path.write_bytes(raw)
    assert len(pf.libpcap_read(path)[1]) == 15
    code, frames = run(path)
    assert code == 0
    assert_ids_true(frames, 15)
    assert [i for i, _ in packets(frames)] == [0, 2, 1, 2, 0, 3, 3, 1, 1, 0, 0, 1, 2, 0, 0]


def test_a_filter_skips_packets_between_two(tmp_path: Path) -> None:
    """Packets the filter drops lie between two that reach the client: their
    blocks are walked over, in a file of one interface and of two."""
    for interfaces in (1, 2):
        path = tmp_path / f"filtered-{interfaces}.pcapng"
        with PcapngWriter(path) as out:
            for _ in range(interfaces):
                out.add_interface(1)
            for n in range(1000):
                ifid = (n // 3) % interfaces
                out.write(epcap.Packet(1, n, 60 + n % 5, payload(ifid, n, 60 + n % 5)), ifid)
        code, frames = run(path, "--", "len = 62")
        assert code == 0
        assert_ids_true(frames, 200)
        assert {len(f) for f in frames if f[0] == "packets"} == ({3} if interfaces == 1 else {3, 4})


def test_one_interface_with_options_and_other_blocks_sends_no_id(tmp_path: Path) -> None:
    order = "<"
    flags = options(order, (2, struct.pack(f"{order}I", 1)))
    stats = block(order, ISB, struct.pack(f"{order}III", 0, 0, 0))
    raw = shb(order) + idb(order) + b"".join(epb(order, 0, n, flags) + stats for n in range(50))
    (tmp_path / "one.pcapng").write_bytes(raw)
    code, frames = run(tmp_path / "one.pcapng")
    assert code == 0
    assert_ids_true(frames, 50)
    assert {len(f) for f in frames if f[0] == "packets"} == {3}


def test_classic_pcap_sends_no_id(tmp_path: Path) -> None:
    path = tmp_path / "classic.pcap"
    with PcapWriter(path, 1) as out:
        for n in range(20):
            out.write(epcap.Packet(1, n, 60, payload(0, n)))
    code, frames = run(path)
    assert code == 0
    assert_ids_true(frames, 20)
    assert {len(f) for f in frames if f[0] == "packets"} == {3}


def lies(raw: bytes, order: str) -> Iterator[tuple[str, bytes]]:
    """Copies of `raw` with one block length (header or trailer) lying, and
    cut short inside blocks."""
    at, n = 0, 0
    while at + 8 <= len(raw):
        (length,) = struct.unpack_from(f"{order}I", raw, at + 4)
        for value in (0, 4, 8, 12, 13, length - 4, length + 4, length + 8, 0x7FFFFFFC, 0xFFFFFFF0):
            bad = bytearray(raw)
            struct.pack_into(f"{order}I", bad, at + 4, value % (1 << 32))
            yield f"block{n}-length-{value}", bytes(bad)
        bad = bytearray(raw)
        struct.pack_into(f"{order}I", bad, at + length - 4, length + 4)
        yield f"block{n}-trailer", bytes(bad)
        yield f"block{n}-cut", raw[: at + length // 2]
        at, n = at + length, n + 1


@pytest.mark.usefixtures("no_leftovers")
def test_lying_block_lengths_never_crash(tmp_path: Path) -> None:
    order = "<"
    raw = b"".join([
        shb(order), idb(order), idb(order), epb(order, 1, 1), epb(order, 0, 2),
        block(order, CUSTOM, b"x" * 20), epb(order, 1, 3), idb(order), epb(order, 2, 4),
        shb(order), idb(order), idb(order), epb(order, 1, 5), epb(order, 0, 6),
    ])  # fmt: skip
    path, tally = tmp_path / "lies.pcapng", {"eof": 0, "error": 0}
    for label, damaged in lies(raw, order):
        path.write_bytes(damaged)
        try:
            expected = [d for _, _, d in pf.libpcap_read(path)[1]]
        except pf.LibpcapError as exc:
            expected = [d for _, _, d in exc.records]
        code, frames = run(path)
        assert code in (0, 1), f"{label}: exit status {code}"  # never a signal
        assert frames and frames[-1][0] in ("eof", "error"), label
        got = packets(frames)
        assert [d for _, d in got] == expected, label
        assert all(i in (d[0], 0) for i, d in got), f"{label}: {[i for i, _ in got]}"
        tally[frames[-1][0]] += 1
    assert tally["eof"] > 0 and tally["error"] > 0


@pytest.mark.usefixtures("no_leftovers")
def test_a_file_cut_under_the_helper(tmp_path: Path) -> None:
    """The file shrinks while the helper reads it: what libpcap had buffered
    still comes, with ids read from what the file holds now, or 0 when it
    holds nothing there; never a crash."""
    path = tmp_path / "shrinking.pcapng"
    with PcapngWriter(path) as out:
        out.add_interface(1)
        out.add_interface(1)
        for n in range(100_000):
            out.write(epcap.Packet(1, n, 100, payload(1 - n % 2, n, 100)), 1 - n % 2)
    helper = subprocess.Popen(
        [str(HELPER), "-r", str(path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    assert helper.stdout is not None and helper.stdin is not None
    deadline = time.monotonic() + 10
    while (Path(f"/proc/{helper.pid}/stat").read_text().rsplit(")", 1)[1].split()[0]) != "S":
        assert time.monotonic() < deadline, "the helper never waited for its reader"
        time.sleep(0.01)
    time.sleep(0.1)  # blocked on a full stdout, its buffers holding what is next
    os.truncate(path, 0)
    stdout = helper.stdout.read()
    helper.stdin.close()
    assert helper.wait(10) in (0, 1)
    values, error = FrameDecoder().feed(stdout)
    assert error is None
    got = packets(list(values))
    assert 0 < len(got) < 100_000
    assert [struct.unpack(">I", d[1:5])[0] for _, d in got] == list(range(len(got)))
    assert all(i in (d[0], 0) for i, d in got)
    zeros = sum(1 for i, d in got if i != d[0])
    print(f"{len(got)} packets before the cut, {zeros} of them with id 0 after it")


@pytest.mark.skipif(shutil.which("strace") is None, reason="needs strace")
def test_no_system_call_per_packet(tmp_path: Path) -> None:
    """ftell() must not cost an lseek() a packet (capture.c: the stream
    learns its position from one seek), nor the interface of a packet a
    pread() (one per 64 KiB window)."""
    path = tmp_path / "calls.pcapng"
    with PcapngWriter(path) as out:
        out.add_interface(1)
        out.add_interface(1)
        for n in range(20_000):
            out.write(epcap.Packet(1, n, 60, payload((n // 10) % 2, n)), (n // 10) % 2)
    log = tmp_path / "strace.log"
    helper = subprocess.Popen(
        ["strace", "-f", "-qq", "-e", "trace=lseek,pread64", "-o", str(log),
         str(HELPER), "-r", str(path)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE,
    )  # fmt: skip
    assert helper.stdout is not None and helper.stdin is not None
    values, error = FrameDecoder().feed(helper.stdout.read())
    helper.stdin.close()
    assert helper.wait(30) == 0 and error is None
    assert_ids_true(list(values), 20_000)
    calls = [
        line
        for line in log.read_text().splitlines()
        if line.split()[1].startswith(("lseek(", "pread64("))
    ]
    file_size = path.stat().st_size
    assert len(calls) < 10 + 2 * file_size // 65536, f"{len(calls)} calls for {file_size} bytes"

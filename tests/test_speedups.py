"""The C accelerator (epcap._speedups) against the pure-Python path: the
same packets, the same errors, on every shared capture, on damaged copies
of captures, on the test's own files, and on random frames; and the same
floats, bit for bit, as epcap.compat.pypcap's time stamps. The whole suite
also runs once with EPCAP_PURE_PYTHON=1 (`.ci/run`)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import importlib
import os
import pickle
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_corrupt_files import own_files, variants

import epcap
import epcap.compat
from epcap import _protocol
from epcap._packet import packet_type
from epcap._protocol import Session
from epcap.compat import pypcap

from conftest import HELPER, IN_CI, start_file
from helpers import READY, frame

PURE = bool(os.environ.get("EPCAP_PURE_PYTHON"))


@pytest.fixture
def speedups() -> Any:
    """The accelerator module (even in the EPCAP_PURE_PYTHON run, which
    only keeps the client from using it); CI requires it built."""
    try:
        return importlib.import_module("epcap._speedups")
    except ImportError:
        if IN_CI:
            pytest.fail("epcap._speedups is not built, and CI=true requires it")
        pytest.skip("epcap._speedups is not built (python3-dev missing?)")


@contextlib.contextmanager
def using(module: Any) -> Iterator[None]:
    """The client's packet path with the accelerator ``module``, or None."""
    saved, _protocol._speedups = _protocol._speedups, module
    try:
        yield
    finally:
        _protocol._speedups = saved


def test_the_switch_says_which_path_runs() -> None:
    assert _protocol.ACCELERATED is (_protocol._speedups is not None)
    if PURE:
        assert not _protocol.ACCELERATED
    elif IN_CI:
        assert _protocol.ACCELERATED, "CI builds the accelerator"


def helper_stream(path: Path) -> bytes:
    """All the helper writes reading ``path``, as the client would get it."""
    proc = subprocess.Popen(
        [str(HELPER), "-r", str(path), "--"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    assert proc.stdout is not None and proc.stdin is not None
    try:
        data = proc.stdout.read()  # stdin stays open: the helper reads to the end
    finally:
        proc.stdin.close()
        proc.wait(10)
    return data


@functools.cache
def tagged(ifid: int) -> type[epcap.Packet]:
    return packet_type("x", ifid)


def decoded(stream: bytes, module: Any) -> list[Any]:
    """The events of a stream, with the accelerator ``module`` (or None)."""
    with using(module):
        events = Session(file_mode=True, packet_type=tagged).receive(stream)
    return [
        (type(e).__name__, str(e)) if isinstance(e, Exception) else e
        for e in events  # errors compare by type and message
    ]


def same_both_ways(stream: bytes, speedups: Any) -> int:
    """Assert both paths decode ``stream`` alike; the packets they gave."""
    fast, pure = decoded(stream, speedups), decoded(stream, None)
    assert fast == pure
    for a, b in zip(fast, pure, strict=True):
        if isinstance(a, list):
            assert [type(p) for p in a] == [type(p) for p in b]
            assert [repr(p.time) for p in a] == [repr(p.time) for p in b]  # RawTime too
    return sum(len(e) for e in fast if isinstance(e, list))


@pytest.mark.captures
def test_same_packets_on_every_shared_capture(captures: list[Path], speedups: Any) -> None:
    total = sum(same_both_ways(helper_stream(path), speedups) for path in captures)
    print(f"{len(captures)} shared captures, {total} packets: the same both ways")
    assert total > 300  # 357 in the 38 captures of 2026-12


def _damaged(files: dict[str, bytes], tmp_path: Path) -> Iterator[Path]:
    for name, raw in files.items():
        for label, damaged in variants(name, raw):
            path = tmp_path / f"{label}-{name}".replace("/", "_")
            path.write_bytes(damaged)
            yield path
            path.unlink()


def test_same_packets_on_damaged_own_files(tmp_path: Path, speedups: Any) -> None:
    count = total = 0
    for path in _damaged(own_files(), tmp_path):
        total += same_both_ways(helper_stream(path), speedups)
        count += 1
    print(f"{count} damaged copies of the test's own files, {total} packets: the same both ways")
    assert count >= 90 and total > 0


@pytest.mark.captures
def test_same_packets_on_damaged_shared_captures(
    captures: list[Path], tmp_path: Path, speedups: Any
) -> None:
    files = {path.name: path.read_bytes() for path in captures}
    count = total = 0
    for path in _damaged(files, tmp_path):
        total += same_both_ways(helper_stream(path), speedups)
        count += 1
    print(f"{count} damaged copies of the shared captures, {total} packets: the same both ways")
    assert count >= 20 * len(captures)


@pytest.mark.captures
def test_captures_iterate_alike_sync_and_async(captures: list[Path], speedups: Any) -> None:
    """The whole client path: iteration and ``async for`` (the C iterator)."""

    def sync_packets(path: Path) -> list[epcap.Packet]:
        with start_file(path) as cap:
            return list(cap)

    async def async_packets(path: Path) -> list[epcap.Packet]:
        async with epcap.start_async(file=path, progname=HELPER) as cap:
            return [pkt async for pkt in cap]

    def both(path: Path) -> tuple[list[epcap.Packet], list[epcap.Packet]]:
        try:
            return sync_packets(path), asyncio.run(async_packets(path))
        except epcap.CaptureError as exc:  # a damaged capture: the same error both ways
            return [exc.args], [exc.args]

    compared = 0
    for path in captures:
        with using(speedups):
            fast = both(path)
        with using(None):
            pure = both(path)
        assert fast == pure, path.name
        compared += len(fast[0])
    print(f"{compared} packets alike through Capture and AsyncCapture, both ways")
    assert compared > 300


# -- the accelerator's own contract ----------------------------------------------------

ITEM = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.booleans(),
    st.binary(max_size=8),
    st.text(max_size=4),
    st.none(),
    st.tuples(st.integers(-5, 2**40), st.integers(-5, 2 * 10**9)),
    st.builds(bytearray, st.binary(max_size=4)),
)


@settings(max_examples=400, deadline=None)
@given(items=st.lists(ITEM, max_size=30), dlt=st.integers(0, 300))
def test_random_frames_decide_alike(items: list[Any], dlt: int) -> None:
    module = importlib.import_module("epcap._speedups")  # the suite's builds have it
    message = ("packets", dlt, tuple(items))

    def outcome(with_module: Any) -> Any:
        with using(with_module):
            try:
                return _protocol._batch(message, lambda ifid: epcap.Packet)
            except epcap.ProtocolError as exc:
                return ("ProtocolError", str(exc))

    assert outcome(module) == outcome(None)
    built = module.build(dlt, tuple(items), epcap.Packet)
    assert built is None or built == _protocol._build(dlt, tuple(items), epcap.Packet)


def test_well_formed_frames_are_built_in_c(speedups: Any) -> None:
    cls = packet_type("eth0", 2)
    items = (1, 60, b"a" * 60, 2**63 + 5, 1514, b"", 2**80, 7, b"x")  # a wide int is an int
    packets = speedups.build(1, items, cls)
    assert packets == _protocol._build(1, items, cls)
    for pkt in packets:
        assert type(pkt) is cls and pkt.interface == "eth0" and pkt.interface_id == 2
        assert not gc.is_tracked(pkt)  # ints and bytes only: no cycle to find
        copy = pickle.loads(pickle.dumps(pkt))
        assert copy == pkt and copy.interface == "eth0"
        assert pkt._replace(length=1) == (1, pkt.time, 1, pkt.data)
        dlt, when, length, data = pkt
        assert (dlt, pkt[1], pkt.length, pkt.caplen) == (1, when, length, len(data))
    # anything but exact ints and bytes in whole triples: the pure path decides
    for odd in ((1, 2), (True, 1, b""), (1, 1, bytearray(b"")), ((1, 2), 1, b""), (1, 1, "s")):
        assert speedups.build(1, odd, cls) is None


@pytest.mark.parametrize("accelerated", [True, False])
def test_an_invalid_fraction_is_a_raw_time_either_way(accelerated: bool, speedups: Any) -> None:
    """A [sec, frac_ns] pair is no exact int: the accelerator leaves the
    frame to the pure path, which makes a RawTime of a fraction of 10**9
    or more (and refuses one beyond 4294967295000)."""
    items = (1, 60, b"a", (2**31, 2**32 - 1), 61, b"b", (5, 7), 62, b"c")
    assert speedups.build(1, items, epcap.Packet) is None
    with using(speedups if accelerated else None):
        packets = _protocol._batch(("packets", 1, items), lambda ifid: epcap.Packet)
        with pytest.raises(epcap.ProtocolError, match="bad time"):
            _protocol._batch(
                ("packets", 1, ((1, 4_294_967_295_001), 1, b"")), lambda i: epcap.Packet
            )
    assert [repr(p.time) for p in packets] == [
        "1",
        "RawTime(seconds=2147483648, fraction=4294967295)",
        "5000000007",
    ]


def test_the_accelerator_refuses_bad_arguments(speedups: Any) -> None:
    with pytest.raises(TypeError):
        speedups.build(1, [1, 2, b""], epcap.Packet)  # a list, not a tuple
    with pytest.raises(TypeError):
        speedups.build(1, (), dict)  # not a tuple type
    with pytest.raises(TypeError):
        speedups.build(1, ())
    with pytest.raises(TypeError):
        speedups.AsyncPackets(object(), 5)  # slow must be callable
    with pytest.raises(TypeError):
        speedups.AsyncPackets(object(), print, x=1)


def test_async_packets_awaitables(speedups: Any) -> None:
    """A packet at hand comes through am_send (``async for``), through
    iteration (``asyncio.wait_for``, ``yield from``), and once only."""

    class Driver:
        """The driver's part: ``rest``, and ``ready_packet`` for the next batch."""

        def __init__(self) -> None:
            self.rest: Iterator[Any] = iter(())
            self.batches: list[list[Any]] = []

        def ready_packet(self) -> Any:
            for packet in self.rest:
                return packet
            if self.batches:
                self.rest = iter(self.batches.pop(0))
                return next(self.rest)
            return None

    async def slow() -> int:
        raise StopAsyncIteration

    async def main() -> None:
        driver = Driver()
        driver.rest = iter([(1, 2), (3, 4)])  # tuples: StopIteration(value)
        driver.batches = [[(5, 6)], [(7, 8)]]  # batches received: at hand too
        packets = speedups.AsyncPackets(driver, slow)
        assert packets.__aiter__() is packets
        first = packets.__anext__()
        assert await first == (1, 2)
        with pytest.raises(RuntimeError):
            await first  # awaited already
        assert await asyncio.wait_for(packets.__anext__(), 1) == (3, 4)
        held = [packets.__anext__(), packets.__anext__()]  # two at once: two awaitables
        assert [await a for a in held] == [(5, 6), (7, 8)]
        assert [p async for p in packets] == []  # slow() ends it

    asyncio.run(main())


def test_an_async_capture_uses_the_accelerator(speedups: Any, tmp_path: Path) -> None:
    path = tmp_path / "x.pcap"
    path.write_bytes(own_files()["micro-le.pcap"])

    async def main() -> list[epcap.Packet]:
        async with epcap.start_async(file=path, progname=HELPER) as cap:
            iterator = cap.__aiter__()
            assert type(iterator) is speedups.AsyncPackets
            return [pkt async for pkt in iterator]

    with using(speedups):  # even in the EPCAP_PURE_PYTHON run
        packets = asyncio.run(main())
    with start_file(path) as cap:
        assert packets == list(cap) and packets


def test_frames_are_read_without_a_copy() -> None:
    """The decoder's buffer takes reads in place; a frame cut by a read is
    moved to the front, whole frames never are."""
    body = frame(["packets", 1, (1, 3, b"abc")])
    stream = READY + body * 3
    session = Session()
    events: list[Any] = []
    for i in range(0, len(stream), 7):  # reads of 7 bytes, placed where space() says
        piece = stream[i : i + 7]
        space = session.space()
        space[: len(piece)] = piece
        events += session.filled(len(piece))
    assert [e for e in events if isinstance(e, list)] == [[epcap.Packet(1, 1, 3, b"abc")]] * 3
    with pytest.raises(ValueError):
        session.filled(len(session.space()) + 1)


@pytest.mark.parametrize("accelerated", [True, False])
def test_no_packet_after_aclose_mid_batch(accelerated: bool, speedups: Any, tmp_path: Path) -> None:
    """A packet at hand is not delivered once the capture is closed, though
    the iterator took its batch before (the C iterator keeps it)."""
    path = tmp_path / "x.pcap"
    path.write_bytes(own_files()["micro-le.pcap"])

    async def main() -> tuple[int, str]:
        async with epcap.start_async(file=path, progname=HELPER) as cap:
            iterator = cap.__aiter__()
            await iterator.__anext__()
            assert cap._driver.ready_packet() is not None  # more of that batch at hand
            await cap.aclose()
            with pytest.raises(ValueError) as info:
                await iterator.__anext__()
            return cap.pending, str(info.value)

    with using(speedups if accelerated else None):
        assert asyncio.run(main()) == (0, "I/O operation on a closed capture")


# -- epcap.compat.pypcap's float time stamps -------------------------------------------

EDGE_TIMES = [
    0, 1, 999_999_999, 10**9, 10**9 + 1, 1_700_000_000_123_456_789,
    1_700_000_000_032_523_742,  # time / 1e9 is another float
    2**32 * 10**9 - 1,  # a pcap file's last nanosecond
    2**63 - 10**9, 2**63 - 1,  # int64's last second
    -1, -999_999_999, -(10**9), -(10**9) - 1, -1_500_000_000,  # floor: nsec stays >= 0
    -(2**63) + 10**9 - 1, -(2**63),
]  # fmt: skip
TIMES = st.one_of(
    st.integers(-(2**63), 2**63 - 1),
    st.integers(0, 2**32 * 10**9),  # what pcap and pcapng files hold
    st.integers(-(10**10), 10**10),
)


def exact(items: Any) -> list[tuple[str, type, Any]]:
    """``(ts, data)`` items with each float's hex: equal only bit for bit."""
    return [(ts.hex(), type(ts), data) for ts, data in items]


def seconds_both_ways(batch: list[Any], speedups: Any) -> list[tuple[float, Any]]:
    """pypcap's items of ``batch`` with the accelerator, asserted the same
    bit for bit as without."""
    with using(speedups):
        fast = list(pypcap._in_seconds(batch))
    with using(None):
        pure = list(pypcap._in_seconds(batch))
    assert exact(fast) == exact(pure)
    return fast


def test_float_seconds_are_pypcaps_bit_for_bit(speedups: Any) -> None:
    batch = [epcap.Packet(1, t, 60, b"%d" % i) for i, t in enumerate(EDGE_TIMES)]
    items = speedups.seconds_items(batch)
    assert exact(items) == [(pypcap._seconds(p.time).hex(), float, p.data) for p in batch]
    assert exact(seconds_both_ways(batch, speedups)) == exact(items)
    assert all(data is pkt.data for (_, data), pkt in zip(items, batch, strict=True))  # no copy
    assert not any(map(gc.is_tracked, items))  # a float and bytes: no cycle to find
    seconds = dict(zip(EDGE_TIMES, (ts for ts, _ in items), strict=True))
    assert seconds[-1] == -1 + 999_999_999 * 1e-9 != -1e-9  # divmod's floor, not C's truncation
    assert seconds[1_700_000_000_032_523_742] != 1_700_000_000_032_523_742 / 1e9
    assert seconds[2**63 - 1] == 9_223_372_036 + 854_775_807 * 1e-9


@settings(max_examples=400, deadline=None)
@given(times=st.lists(TIMES, max_size=40))
def test_random_times_give_pypcaps_floats(times: list[int]) -> None:
    module = importlib.import_module("epcap._speedups")  # the suite's builds have it
    batch = [epcap.Packet(1, t, 60, b"x") for t in times]
    expected = [(pypcap._seconds(t), b"x") for t in times]
    assert exact(module.seconds_items(batch)) == exact(expected)
    assert exact(seconds_both_ways(batch, module)) == exact(expected)


@pytest.mark.parametrize(
    "odd",
    [
        epcap.Packet(1, epcap.RawTime(5, 10**9 + 7), 1, b"r"),  # a damaged file's time
        epcap.Packet(1, 2**63, 1, b"big"),  # beyond int64: no C integer holds it
        epcap.Packet(1, -(2**63) - 1, 1, b"small"),
        epcap.Packet(1, 2**90, 1, b"huge"),
        epcap.Packet(1, True, 1, b"bool"),  # an int, but not exactly one
    ],
    ids=["RawTime", "2**63", "-2**63-1", "2**90", "bool"],
)
def test_any_other_time_leaves_the_batch_to_python(odd: epcap.Packet, speedups: Any) -> None:
    batch = [epcap.Packet(1, 5, 1, b"a"), odd, epcap.Packet(1, 6, 1, b"b")]
    assert speedups.seconds_items(batch) is None
    items = seconds_both_ways(batch, speedups)
    assert exact(items) == exact((pypcap._seconds(p.time), p.data) for p in batch)


def test_odd_batches_are_left_to_python(speedups: Any) -> None:
    good = epcap.Packet(1, 1, 1, b"")

    class Batch(list[Any]):
        """A list that may iterate as it likes."""

    odd_packets = [
        None, 5, (1, 2, 3), [1, 2, 3, b""], (1, 2, 3, b"", 4), (1, 2.0, 3, b""), (1, "2", 3, b""),
        (1, 2, 3, bytearray(b"")), (1, 2, 3, "data"),
    ]  # fmt: skip
    for odd in odd_packets:
        assert speedups.seconds_items([good, odd]) is None, odd
        assert speedups.seconds_items([odd]) is None, odd
    assert speedups.seconds_items(Batch([good])) is None
    assert speedups.seconds_items([]) == []
    assert seconds_both_ways([], speedups) == []


def test_a_batch_emptied_midway_is_left_to_python(speedups: Any) -> None:
    """A collection that runs while the items are made (CPython 3.11 runs
    it at once, inside the allocation) may run a __del__ that changes the
    batch: no crash, and no items of a batch that is no longer there."""
    batch = [epcap.Packet(1, t, 1, b"x") for t in range(1000)]

    class Emptier:
        def __del__(self) -> None:
            batch.clear()

    thresholds = gc.get_threshold()
    gc.collect()
    held = [Emptier()]
    held[0].cycle = held  # type: ignore[attr-defined]  # garbage only for the cyclic GC
    gc.collect(0)  # the cycle in generation 1, collected some 50 allocations on
    gc.set_threshold(1, 50)
    try:
        del held
        items = speedups.seconds_items(batch)
    finally:
        gc.set_threshold(*thresholds)
    gc.collect()
    assert batch == []
    assert items is None or len(items) == 1000  # 3.12 on: the collection waits for Python


def test_seconds_items_refuses_bad_arguments(speedups: Any) -> None:
    not_lists: list[Any] = [(), (epcap.Packet(1, 1, 1, b""),), None, iter([]), "ab", {1: 2}]
    for bad in not_lists:
        with pytest.raises(TypeError):
            speedups.seconds_items(bad)
    with pytest.raises(TypeError):
        speedups.seconds_items()
    with pytest.raises(TypeError):
        speedups.seconds_items([], [])


def test_pypcap_compat_takes_the_accelerators_items(speedups: Any) -> None:
    batch = [epcap.Packet(1, 10**18 + 1, 60, b"a")]
    with using(speedups):
        assert type(pypcap._in_seconds(batch)) is type(iter([]))
    with using(None):  # not built, or EPCAP_PURE_PYTHON=1
        assert type(pypcap._in_seconds(batch)) is zip


@pytest.mark.captures
def test_pypcap_compat_reads_captures_alike(
    captures: list[Path], speedups: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The whole compat path, float time stamps and all, both ways."""
    monkeypatch.setitem(epcap.compat.defaults, "progname", str(HELPER))

    def items(path: Path) -> list[Any]:
        try:
            handle = pypcap.pcap(str(path))
        except OSError as exc:
            return [exc.args]
        try:
            return exact(handle)
        finally:
            handle.close()

    compared = 0
    for path in captures:
        with using(speedups):
            fast = items(path)
        with using(None):
            pure = items(path)
        assert fast == pure, path.name
        compared += len(fast)
    print(f"{compared} items alike through epcap.compat.pypcap, both ways")
    assert compared > 300

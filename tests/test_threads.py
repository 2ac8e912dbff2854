"""One capture, many callers: threads that command a capture another thread
iterates, reads with a timeout, and asyncio cancellation around one read.
Live, as root, on lo and on a veth pair whose far end sits in a namespace."""

from __future__ import annotations

import asyncio
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from test_control import Pair, pairs  # noqa: F401 - the veth pairs fixture

import epcap
from epcap.savefile import PcapWriter

from conftest import HELPER, start, start_file
from helpers import send_udp

pytestmark = pytest.mark.root

THREADS = 8
CALLS = 100
FLOOD = 200_000
ETHERTYPE_TEST = 0x88B5


def flood(p: Pair, port: int, count: int) -> subprocess.Popen[bytes]:
    """Numbered datagrams from the far end of `p` to its near address."""
    code = (
        "import socket, struct, sys\n"
        "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
        f"for i in range({count}):\n"
        f"    s.sendto(struct.pack('>I', i) + bytes(60), ('{p.near_ip}', {port}))\n"
    )
    return subprocess.Popen(["ip", "netns", "exec", p.ns, sys.executable, "-c", code])


def commander(
    cap: epcap.Capture, port: int, worst: list[float], errors: list[BaseException]
) -> None:
    """CALLS commands, each timed: stats, set_filter and send in turn."""
    frame = (
        b"\xff" * 6 + b"\x02\x00\x00\x00\x00\x01" + struct.pack(">H", ETHERTYPE_TEST) + bytes(50)
    )
    filters = (f"udp dst port {port}", f"ip and udp dst port {port}")
    try:
        for i in range(CALLS):
            began = time.monotonic()
            if i % 3 == 0:
                assert cap.stats()["packets"] >= 0
            elif i % 3 == 1:
                cap.set_filter(filters[i % 2])
            else:
                assert cap.send(frame) == len(frame)
            worst.append(time.monotonic() - began)
    except BaseException as exc:  # reported by the test
        errors.append(exc)


@pytest.mark.parametrize("traffic", ["quiet", "flood"])
def test_eight_threads_command_while_another_iterates(
    pairs: list[Pair],  # noqa: F811
    udp_port: int,
    traffic: str,
) -> None:
    p = pairs[1]
    cap = start(interface=p.near, filter=f"udp dst port {udp_port}", direction="in", inject=True)
    got: list[int] = []
    reader = threading.Thread(
        target=lambda: got.extend(struct.unpack_from(">I", pkt.data, 42)[0] for pkt in cap)
    )
    reader.start()
    sender = flood(p, udp_port, FLOOD) if traffic == "flood" else None
    times: list[float] = []
    errors: list[BaseException] = []
    workers = [
        threading.Thread(target=commander, args=(cap, udp_port, times, errors))
        for _ in range(THREADS)
    ]
    for w in workers:
        w.start()
    for w in workers:
        w.join(60)
    if sender is not None:
        assert sender.wait(60) == 0
    # Until every packet the kernel took is delivered (the stats say so).
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        s = cap.stats()
        if s["packets"] + s["dropped"] >= s["received"] and len(got) == s["packets"]:
            break
        time.sleep(0.1)
    cap.stop()
    reader.join(10)
    assert not reader.is_alive()
    final = cap.final_stats
    cap.close()
    assert not errors, errors[:3]
    assert len(times) == THREADS * CALLS
    print(f"{traffic}: {len(times)} calls, slowest {max(times) * 1000:.1f} ms; "
          f"delivered {len(got)}, stats {final}")  # fmt: skip
    assert max(times) < 1.0
    assert final is not None
    assert len(got) == final["packets"]
    assert final["received"] == final["packets"] + final["dropped"]
    assert got == sorted(set(got)), "packets out of order or repeated"
    if sender is not None:
        # The kernel counts what passed its filter: while libpcap swaps one
        # filter for another, it drops everything (set_kernel_filter), and
        # what it dropped so was never received. Nothing else is missing.
        gaps = [b - a - 1 for a, b in zip([-1, *got], [*got, FLOOD], strict=True) if b - a > 1]
        unseen = FLOOD - final["received"]
        print(f"sent {FLOOD}; not seen by the socket (filter swaps): {unseen} "
              f"in {len(gaps)} gaps, largest {max(gaps, default=0)}")  # fmt: skip
        assert final["received"] <= FLOOD
        assert len(got) > FLOOD // 2
    else:
        assert got == []


def test_close_from_another_thread_ends_the_iteration(udp_port: int) -> None:
    cap = start(interface="lo", filter=f"udp port {udp_port}")
    ended = threading.Event()

    def iterate() -> None:
        for _ in cap:
            pass
        ended.set()

    reader = threading.Thread(target=iterate)
    reader.start()
    time.sleep(0.3)  # the reader is waiting in poll
    began = time.monotonic()
    cap.close()
    # reaped by close() itself, not left to the reaper thread by the reader
    assert cap._proc.returncode is not None
    assert ended.wait(2.0), "close() did not end the iteration"
    took = time.monotonic() - began
    reader.join(1)
    print(f"close() from another thread ended the iteration in {took * 1000:.0f} ms")
    assert took < 2.0
    assert cap.closed
    with pytest.raises(ValueError, match="closed"):
        cap.next()


def test_closes_at_once_each_return_once_the_helper_is_reaped(udp_port: int) -> None:
    """A close() that finds another under way waits for its reap: whichever
    caller returns first, the helper is gone (scapy's sniff thread and its
    user close the same socket)."""
    cap = start(interface="lo", filter=f"udp port {udp_port}")
    pid = cap._proc.pid
    barrier = threading.Barrier(THREADS)
    reaped: list[bool] = []

    def close() -> None:
        barrier.wait()
        cap.close()
        reaped.append(cap._proc.returncode is not None and not Path(f"/proc/{pid}").exists())

    threads = [threading.Thread(target=close) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(5)
    assert reaped == [True] * THREADS


def test_stats_from_another_thread_on_a_quiet_capture(udp_port: int) -> None:
    with start(interface="lo", filter=f"udp port {udp_port}") as cap:
        reader = threading.Thread(target=lambda: list(cap))
        reader.start()
        time.sleep(0.2)
        began = time.monotonic()
        for _ in range(20):
            cap.stats()
        took = time.monotonic() - began
        cap.stop()
        reader.join(3)
        assert not reader.is_alive()
    assert took < 1.0, f"20 stats() took {took:.2f} s"


def test_sync_read_with_a_timeout(udp_port: int) -> None:
    with start(interface="lo", filter=f"udp port {udp_port}") as cap:
        began = time.monotonic()
        with pytest.raises(TimeoutError):
            cap.next(timeout=0.2)
        waited = time.monotonic() - began
        assert 0.2 <= waited < 1.0
        send_udp("127.0.0.1", udp_port, [b"after the timeout"])
        pkt = cap.next(timeout=5)
        assert pkt is not None and pkt.data.endswith(b"after the timeout")
        assert pkt.interface == "lo" and pkt.capture is cap
        send_udp("127.0.0.1", udp_port, [b"one", b"two", b"three"])
        first = cap.next(timeout=5)
        rest = []
        for p in cap:  # the iteration goes on where next() left off
            rest.append(p)
            if len(rest) == 2:
                break
        assert first is not None
        assert [x.data[42:] for x in [first, *rest]] == [b"one", b"two", b"three"]


def test_async_timeout_leaves_the_iterator_usable(udp_port: int) -> None:
    async def main() -> tuple[int, bytes, bytes]:
        async with epcap.start_async(
            interface="lo", filter=f"udp port {udp_port}", progname=HELPER
        ) as cap:
            it = aiter(cap)
            timeouts = 0
            for _ in range(3):
                try:
                    async with asyncio.timeout(0.2):
                        await anext(it)
                except TimeoutError:
                    timeouts += 1
            send_udp("127.0.0.1", udp_port, [b"after three timeouts"])
            async with asyncio.timeout(5):
                pkt = await anext(it)
            with pytest.raises(TimeoutError):
                await cap.next(timeout=0.2)
            send_udp("127.0.0.1", udp_port, [b"and after next()"])
            task = asyncio.create_task(anext(it))
            await asyncio.sleep(0)
            again = await asyncio.wait_for(task, 5)
            return timeouts, pkt.data, again.data

    timeouts, first, second = asyncio.run(main())
    assert timeouts == 3
    assert first.endswith(b"after three timeouts")
    assert second.endswith(b"and after next()")


def test_cancelled_command_leaves_the_capture_usable(udp_port: int) -> None:
    async def main() -> int:
        async with epcap.start_async(
            interface="lo", filter=f"udp port {udp_port}", progname=HELPER
        ) as cap:
            task = asyncio.create_task(cap.stats())
            await asyncio.sleep(0)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            stats = [await cap.stats() for _ in range(3)]
            send_udp("127.0.0.1", udp_port, [b"still capturing"])
            async with asyncio.timeout(5):
                pkt = await anext(aiter(cap))
            assert pkt.data.endswith(b"still capturing")
            return len(stats)

    assert asyncio.run(main()) == 3


def test_two_live_captures_merged_in_time_order(pairs: list[Pair], udp_port: int) -> None:  # noqa: F811
    a, b = pairs[2], pairs[3]
    flt = f"udp dst port {udp_port}"
    caps = [start(interface=p.near, filter=flt, direction="out") for p in (a, b)]
    where = {a.far_ip: a.near, b.far_ip: b.near}
    with epcap.merge(*caps) as merged:
        for i in range(200):
            send_udp(a.far_ip if i % 2 else b.far_ip, udp_port, [struct.pack(">I", i)])
        got = []
        while len(got) < 200:
            pkt = merged.next(timeout=5)
            assert pkt is not None
            got.append(pkt)
        with pytest.raises(TimeoutError):
            merged.next(timeout=0.3)
    times = [pkt.time for pkt in got]
    assert times == sorted(times)
    dst = [".".join(map(str, pkt.data[30:34])) for pkt in got]
    assert [pkt.interface for pkt in got] == [where[d] for d in dst]
    assert {pkt.capture for pkt in got} == set(caps)
    dlt, t, length, data = got[0]
    assert (dlt, t, length, data) == tuple(got[0])
    assert all(cap.closed for cap in caps)


def test_files_merge_strictly_and_async_too(tmp_path: Path) -> None:
    paths = []
    for k in range(3):
        path = tmp_path / f"{k}.pcap"
        with PcapWriter(path, 1) as out:
            for i in range(500):
                out.write(epcap.Packet(1, (i * 3 + k) * 1000, 60, bytes([k]) * 60))
        paths.append(path)
    caps = [start_file(p) for p in paths]
    with epcap.merge(*caps) as merged:
        got = list(merged)
    assert [pkt.time for pkt in got] == [i * 1000 for i in range(1500)]
    assert all(pkt.capture is caps[pkt.data[0]] for pkt in got)

    async def main() -> list[epcap.Packet]:
        acaps = [await epcap.start_async(file=p, progname=HELPER) for p in paths]
        async with epcap.merge_async(*acaps) as merged:
            return [pkt async for pkt in merged]

    assert [pkt.time for pkt in asyncio.run(main())] == [i * 1000 for i in range(1500)]

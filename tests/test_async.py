"""The asyncio shell: same packets as the sync one, many captures in one
loop, commands as coroutines, and cleanup that survives cancellation."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest

import epcap

import pcapfiles as pf
from conftest import HELPER, helper_pids, start_file, zombie_children
from helpers import send_udp


def many_records(n: int) -> list[tuple[int, int, bytes]]:
    return [
        (pf.SAMPLE_EPOCH_NS + i * 1001, 60 + i % 1400, os.urandom(60 + i % 1400)) for i in range(n)
    ]


@pytest.fixture
def trace(tmp_path: Path) -> Path:
    path = tmp_path / "trace.pcapng"
    pf.write_pcapng(path, many_records(5000), linktype=pf.LINKTYPE_ETHERNET)
    return path


def test_async_capture_of_a_file_equals_sync(trace: Path) -> None:
    with start_file(trace) as cap:
        sync = list(cap)

    async def main() -> list[epcap.Packet]:
        async with epcap.start_async(file=trace, progname=HELPER) as cap:
            got = [pkt async for pkt in cap]
            assert cap.final_stats == {"packets": 5000, "delayed": cap.final_stats["delayed"]}
            return got

    assert asyncio.run(main()) == sync
    assert len(sync) == 5000


def test_batches_yield_the_same_packets_sync_and_async(trace: Path) -> None:
    with start_file(trace) as cap:
        plain = list(cap)
    with start_file(trace) as cap:
        batches = list(cap.batches())
    assert len(batches) > 1 and [p for b in batches for p in b] == plain

    async def main() -> list[list[epcap.Packet]]:
        cap = await epcap.start_async(file=trace, progname=HELPER)
        try:
            return [batch async for batch in cap.batches()]
        finally:
            await cap.aclose()

    assert [p for b in asyncio.run(main()) for p in b] == plain


def test_16_captures_consumed_concurrently_in_one_loop(tmp_path: Path) -> None:
    paths = []
    for i in range(16):
        path = tmp_path / f"t{i}.pcap"
        pf.write_pcap(path, many_records(200 + i), linktype=pf.LINKTYPE_ETHERNET, nano=True)
        paths.append(path)

    async def consume(path: Path) -> int:
        async with epcap.start_async(file=path, progname=HELPER) as cap:
            return sum([1 async for _ in cap])

    async def main() -> tuple[list[int], int]:
        ticks = 0

        async def ticker() -> None:  # the loop stays responsive throughout
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0.001)

        tick = asyncio.create_task(ticker())
        counts = await asyncio.gather(*(consume(p) for p in paths))
        tick.cancel()
        return list(counts), ticks

    counts, ticks = asyncio.run(main())
    assert counts == [200 + i for i in range(16)]
    assert ticks > 0
    assert zombie_children() == []


def test_bad_options_raise_at_the_call_and_setup_errors_at_the_await(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="unknown option 'promisc'"):
        epcap.start_async(promisc=True)  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="snaplen"):
        epcap.start_async(snaplen=0)

    async def main() -> None:
        with pytest.raises(epcap.CaptureFileError, match="No such file"):
            await epcap.start_async(file=tmp_path / "absent.pcap", progname=HELPER)

    before = helper_pids()
    asyncio.run(main())
    assert helper_pids() == before and zombie_children() == []


@pytest.mark.root
def test_cancelling_a_consuming_task_reaps_its_helper(udp_port: int) -> None:
    async def main() -> int:
        cap = await epcap.start_async(
            interface="lo", filter=f"udp port {udp_port}", progname=HELPER
        )
        pid = cap.pid

        async def consume() -> None:
            async with cap:
                async for _ in cap:
                    pass

        task = asyncio.create_task(consume())
        await asyncio.sleep(0.2)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return pid

    pid = asyncio.run(main())
    deadline = time.monotonic() + 3
    while pid in helper_pids() or zombie_children():
        assert time.monotonic() < deadline, "cancelled capture's helper not reaped"
        time.sleep(0.05)


@pytest.mark.root
def test_commands_are_coroutines_and_tasks_can_share_a_capture(udp_port: int) -> None:
    async def main() -> tuple[list[epcap.Packet], dict[str, int]]:
        async with epcap.start_async(
            interface="lo", filter=f"udp port {udp_port}", progname=HELPER
        ) as cap:
            got: list[epcap.Packet] = []

            async def consume() -> None:
                async for pkt in cap:
                    got.append(pkt)

            reader = asyncio.create_task(consume())
            await asyncio.sleep(0.1)
            send_udp("127.0.0.1", udp_port, [b"%d" % i for i in range(10)])
            await asyncio.sleep(0.2)
            stats = dict(await cap.stats())  # while another task is reading
            with pytest.raises(epcap.FilterError):
                await cap.set_filter("udp port")
            with pytest.raises(epcap.SendError, match="inject=True"):
                await cap.send(b"\x00" * 60)
            cap.stop()
            await reader
            return got, stats

    got, stats = asyncio.run(main())
    assert [p.data[42:] for p in got] == [b"%d" % i for i in range(10)]
    assert stats["packets"] == 10


def test_a_fast_file_leaves_the_loop_to_others(tmp_path: Path) -> None:
    """Reading a large file as fast as the helper sends it, the capture
    still gives the loop a turn at every read: a timeout fires in time and
    another task keeps running; the capture is usable afterwards."""
    path = tmp_path / "big.pcap"
    pf.write_pcap(path, many_records(200_000), linktype=pf.LINKTYPE_ETHERNET, nano=True)

    async def main() -> tuple[int, int, float, int]:
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0)

        other = asyncio.create_task(ticker())
        got = 0
        async with epcap.start_async(file=path, progname=HELPER) as cap:
            began = time.monotonic()
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.05):
                    async for _ in cap:
                        got += 1
            late = time.monotonic() - began - 0.05
            rest = 0
            async for _ in cap:
                rest += 1
        other.cancel()
        return got, ticks, late, got + rest

    got, ticks, late, total = asyncio.run(main())
    print(f"{got} packets in 50 ms; the timeout fired {late * 1000:.1f} ms late; {ticks} ticks")
    assert 0 < got < 200_000 and ticks > 10 and late < 0.5
    assert total == 200_000  # the packet the timeout interrupted is not lost

"""epcap against its peers, side by side in one run (`make bench`).

File mode: each reader delivers every packet (timestamp, length, bytes) of
the same file into a Python loop; packets per second, median of --runs runs,
and the ratio to epcap's sync iterator. Live: a veth pair in a namespace the
benchmark creates is flooded with tcpreplay --topspeed while epcap, tcpdump
and pcapy-ng capture it; packets delivered and dropped. Latency: packets
sent at a low rate on lo, send-to-Python delay p50/p99 with default
settings. Memory: the helper's peak RSS and the client's RSS growth.
Remote: one flood into an SSH host's interface (tests/sshhosts.py),
captured there through ssh and, in turn, by a local helper in the same
namespace; packets delivered, rates, the ratio. Fanout: K processes that
share a veth pair's traffic with one cluster_id and decode() every packet,
K=1 and K=2. `--only remote,fanout` runs only the sections named.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import multiprocessing
import os
import queue
import re
import resource
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import Any

import workload

import epcap
from epcap import _protocol

import pcapfiles as pf

ROOT = Path(__file__).resolve().parents[2]
HELPER = ROOT / "priv" / "epcapd"


# -- file readers: each returns the number of packets it delivered ---------


def epcap_sync(path: str) -> int:
    n = 0
    with epcap.start(file=path, progname=HELPER) as cap:
        for pkt in cap:
            pkt.time, pkt.length, pkt.data  # noqa: B018 - what a consumer touches
            n += 1
    return n


def epcap_batches(path: str) -> int:
    n = 0
    with epcap.start(file=path, progname=HELPER) as cap:
        for batch in cap.batches():
            for pkt in batch:
                pkt.time, pkt.length, pkt.data  # noqa: B018
            n += len(batch)
    return n


def epcap_async(path: str) -> int:
    async def main() -> int:
        n = 0
        async with epcap.start_async(file=path, progname=HELPER) as cap:
            async for pkt in cap:
                pkt.time, pkt.length, pkt.data  # noqa: B018
                n += 1
        return n

    return asyncio.run(main())


def pure(reader: Callable[[str], int]) -> Callable[[str], int]:
    """The same reader with epcap's C accelerator switched off."""

    def run(path: str) -> int:
        saved, _protocol._speedups = _protocol._speedups, None
        try:
            return reader(path)
        finally:
            _protocol._speedups = saved

    return run


def pypcap(path: str) -> int:
    import pcap  # type: ignore[import-not-found]

    n = 0
    for ts, buf in pcap.pcap(path, timestamp_in_ns=True):
        ts, len(buf), bytes(buf)
        n += 1
    return n


def pcapy_loop(pcapy: Any, path: str) -> int:
    """pcapy-ng's loop over a file: its time, length and bytes."""
    n = 0
    reader = pcapy.open_offline(path)
    while True:
        hdr, data = reader.next()
        if hdr is None:
            return n
        hdr.getts(), hdr.getlen(), data
        n += 1


def pcapy_ng(path: str) -> int:
    import pcapy  # type: ignore[import-not-found]

    return pcapy_loop(pcapy, path)


def pypcap_compat(path: str, *, in_ns: bool = True) -> int:
    """pypcap's loop through epcap.compat.pypcap: time, length and bytes,
    as the epcap rows touch them (in nanoseconds, as the pypcap row asks)."""
    import epcap.compat
    import epcap.compat.pypcap as pcap

    epcap.compat.defaults["progname"] = str(HELPER)
    n = 0
    for ts, buf in pcap.pcap(path, timestamp_in_ns=in_ns):
        ts, len(buf), buf
        n += 1
    return n


def pcapy_compat(path: str) -> int:
    """pcapy-ng's loop, as the pcapy-ng row, through epcap.compat.pcapy."""
    import epcap.compat
    import epcap.compat.pcapy as pcapy

    epcap.compat.defaults["progname"] = str(HELPER)
    return pcapy_loop(pcapy, path)


def dpkt_reader(path: str) -> int:
    import dpkt  # type: ignore[import-not-found]

    n = 0
    with open(path, "rb") as f:
        for ts, buf in dpkt.pcap.Reader(f):
            ts, len(buf), buf
            n += 1
    return n


def scapy_raw(path: str) -> int:
    from scapy.utils import RawPcapReader  # type: ignore[import-not-found]

    n = 0
    with RawPcapReader(path) as reader:
        for data, meta in reader:
            meta.sec, meta.usec, meta.wirelen, data  # noqa: B018
            n += 1
    return n


def tcpdump(path: str) -> int:
    subprocess.run(["tcpdump", "-r", path, "-w", "/dev/null"], check=True, capture_output=True)
    return -1  # the C floor: it delivers nothing to Python


READERS: dict[str, Callable[[str], int]] = {
    "epcap sync": epcap_sync,
    "epcap async": epcap_async,
    "epcap batches": epcap_batches,
    "epcap sync, pure Python": pure(epcap_sync),
    "epcap async, pure Python": pure(epcap_async),
    "pypcap": pypcap,
    "pcapy-ng": pcapy_ng,
    "pypcap compat": pypcap_compat,
    "pypcap compat, float ts": functools.partial(pypcap_compat, in_ns=False),
    "pcapy-ng compat": pcapy_compat,
    "dpkt": dpkt_reader,
    "scapy RawPcapReader": scapy_raw,
    "tcpdump -w /dev/null": tcpdump,
}


def bench_files(workdir: Path, count: int, runs: int) -> dict[str, dict[str, float]]:
    """Every reader on each workload; the runs go round the readers in turn,
    so that a slow moment of the machine falls on all of them alike, after
    a round that is not counted (the file just written is still being
    written back, and nothing is warm)."""
    results: dict[str, dict[str, float]] = {}
    for kind in ("mixed", "small"):
        path = workload.write(workdir / f"{kind}.pcap", count, kind)
        print(
            f"\n## File mode, {kind} workload: {count} packets, {path.stat().st_size / 1e6:.0f} MB"
        )
        os.sync()
        times: dict[str, list[float]] = {name: [] for name in READERS}
        for warm_up in [True] + [False] * runs:
            for name, reader in READERS.items():
                if warm_up:
                    reader(str(path))
                    continue
                t0 = time.perf_counter()
                n = reader(str(path))
                times[name].append(time.perf_counter() - t0)
                assert n in (count, -1), f"{name} delivered {n} of {count}"
        results[kind] = {name: count / statistics.median(t) for name, t in times.items()}
        print(f"{'reader':26} {'pkts/s (median)':>16} {'vs epcap sync':>14}   runs (s)")
        for name, rate in results[kind].items():
            ratio = rate / results[kind]["epcap sync"]
            shown = " ".join(f"{t:.2f}" for t in times[name])
            print(f"{name:26} {rate:16,.0f} {ratio:13.2f}x   {shown}")
        path.unlink()
    return results


# -- live flood on a veth pair -----------------------------------------------


class Veth:
    """A veth pair: `near` here, `far` in a namespace; removed on exit."""

    def __init__(self) -> None:
        self.ns, self.near, self.far = "epcap-bench", "epcb0", "epcb1"

    def __enter__(self) -> Veth:
        subprocess.run(["ip", "netns", "del", self.ns], capture_output=True)
        for cmd in (
            ["ip", "netns", "add", self.ns],
            ["ip", "link", "add", self.near, "type", "veth", "peer", "name", self.far,
             "netns", self.ns],
            ["ip", "link", "set", self.near, "up"],
            ["ip", "-n", self.ns, "link", "set", self.far, "up"],
            ["sysctl", "-q", "-w", f"net.ipv6.conf.{self.near}.disable_ipv6=1"],
        ):  # fmt: skip
            subprocess.run(cmd, check=True, capture_output=True)
        return self

    def __exit__(self, *exc: object) -> None:
        subprocess.run(["ip", "netns", "del", self.ns], capture_output=True)


def bench_live(workdir: Path, count: int) -> dict[str, dict[str, int]]:
    flood = workload.write(workdir / "flood.pcap", count, "mixed")
    results: dict[str, dict[str, int]] = {}
    print(f"\n## Live flood: {count} mixed packets, tcpreplay --topspeed into a veth pair")
    print(f"{'capture':24} {'delivered':>10} {'dropped':>10}")
    with Veth() as veth:
        for name in ("epcap", "tcpdump", "pcapy-ng"):
            got = _capture_flood(name, veth, flood)
            results[name] = got
            print(f"{name:24} {got['delivered']:10,} {got['dropped']:10,}")
    flood.unlink()
    return results


def _replay(veth: Veth, flood: Path) -> None:
    subprocess.run(
        ["ip", "netns", "exec", veth.ns, "tcpreplay", "--topspeed", "-q", f"--intf1={veth.far}",
         str(flood)],
        check=True, capture_output=True,
    )  # fmt: skip


def _capture_flood(name: str, veth: Veth, flood: Path) -> dict[str, int]:
    if name == "epcap":
        with epcap.start(interface=veth.near, progname=HELPER, direction="in") as cap:
            count = [0]

            def consume() -> None:
                for _ in cap:
                    count[0] += 1

            reader = threading.Thread(target=consume)
            reader.start()
            _replay(veth, flood)
            time.sleep(1.0)
            cap.stop()
            reader.join()
            stats = cap.final_stats or {}
        return {"delivered": count[0], "dropped": int(stats.get("dropped", 0))}
    if name == "tcpdump":
        proc = subprocess.Popen(
            ["tcpdump", "-i", veth.near, "-Q", "in", "-w", "/dev/null"],
            stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        time.sleep(1.0)
        _replay(veth, flood)
        time.sleep(1.0)
        proc.terminate()
        _, err = proc.communicate()
        got = {"delivered": 0, "dropped": 0}
        for line in err.splitlines():
            words = line.split()
            if "captured" in line:
                got["delivered"] = int(words[0])
            if "dropped by kernel" in line:
                got["dropped"] = int(words[0])
        return got
    import pcapy  # type: ignore[import-not-found]

    reader = pcapy.open_live(veth.near, 262144, 0, 100)
    reader.setdirection(pcapy.PCAP_D_IN)
    count, stop = [0], threading.Event()

    def consume_pcapy() -> None:
        while not stop.is_set():
            hdr, _ = reader.next()
            if hdr is not None:
                count[0] += 1

    thread = threading.Thread(target=consume_pcapy)
    thread.start()
    _replay(veth, flood)
    time.sleep(1.0)
    stop.set()
    thread.join()
    _recv, drop, _ifdrop = reader.stats()
    return {"delivered": count[0], "dropped": drop}


# -- latency at a low rate -----------------------------------------------------


def bench_latency(count: int) -> dict[str, dict[str, float]]:
    results = {}
    print(f"\n## Latency on lo: {count} packets at 500/s, send to Python loop")
    runs: list[tuple[str, dict[str, object] | None]] = [
        ("epcap default (timeout=1)", {}),
        ('epcap timeout="immediate"', {"timeout": "immediate"}),
        ("tcpdump --immediate-mode", None),
    ]
    for label, options in runs:
        delays = _delays(count, options) if options is not None else _tcpdump_delays(count)
        results[label] = {
            "p50_us": delays[len(delays) // 2] / 1000,
            "p99_us": delays[int(len(delays) * 0.99)] / 1000,
            "received": len(delays),
        }
        r = results[label]
        p50, p99 = r["p50_us"], r["p99_us"]
        print(f"{label:27} p50 {p50:5.0f} us   p99 {p99:5.0f} us   {len(delays)} received")
    return results


def _delays(count: int, options: dict[str, object]) -> list[int]:
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("127.0.0.1", 0))
    port = rx.getsockname()[1]
    delays: list[int] = []
    with epcap.start(  # type: ignore[call-overload]
        interface="lo", filter=f"udp and port {port}", progname=HELPER, **options
    ) as cap:

        def send() -> None:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
                for _ in range(count):
                    tx.sendto(struct.pack(">Q", time.time_ns()), ("127.0.0.1", port))
                    time.sleep(0.002)  # 500 packets/s
            time.sleep(0.5)
            cap.stop()

        threading.Thread(target=send).start()
        for pkt in cap:
            delays.append(time.time_ns() - struct.unpack(">Q", pkt.data[42:50])[0])
    rx.close()
    return sorted(delays)


def _tcpdump_delays(count: int) -> list[int]:
    """The same measurement through tcpdump writing pcap to a pipe: the
    machine's own wake-up latency, for comparison."""
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("127.0.0.1", 0))
    port = rx.getsockname()[1]
    proc = subprocess.Popen(
        ["tcpdump", "-i", "lo", "--immediate-mode", "-U", "-w", "-", f"udp and port {port}"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    assert proc.stdout is not None
    proc.stdout.read(24)  # the pcap file header
    time.sleep(1.0)
    delays: list[int] = []

    def send() -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
            for _ in range(count):
                tx.sendto(struct.pack(">Q", time.time_ns()), ("127.0.0.1", port))
                time.sleep(0.002)

    threading.Thread(target=send).start()
    while len(delays) < count:
        _, _, caplen, _ = struct.unpack("<IIII", proc.stdout.read(16))
        data = proc.stdout.read(caplen)
        delays.append(time.time_ns() - struct.unpack(">Q", data[42:50])[0])
    proc.terminate()
    proc.wait()
    rx.close()
    return sorted(delays)


# -- where the time goes ------------------------------------------------------


def profile(workdir: Path, count: int) -> dict[str, dict[str, float]]:
    """Where epcap's sync reader spends its time, read by read: waiting for
    (and copying) what the helper sends, msgpack decoding, building Packets
    (with the C accelerator and without), and a Python loop over them."""
    from epcap._packet import packet_type as tagged
    from epcap._protocol import FrameDecoder

    def packet_type(ifid: int) -> type[epcap.Packet]:
        return tagged("bench", ifid)  # as a capture's: a Packet subclass

    results: dict[str, dict[str, float]] = {}
    print(f"\n## Profile of the sync reader, {count} packets: seconds per stage")
    print(f"{'workload':22} {'total':>7} {'read':>7} {'decode':>7} {'Packets':>7} {'loop':>7}")
    for kind in ("mixed", "small"):
        path = workload.write(workdir / f"prof-{kind}.pcap", count, kind)
        for accelerated in (True, False):
            saved = _protocol._speedups
            _protocol._speedups = saved if accelerated else None
            try:
                label = f"{kind}{'' if accelerated else ', pure Python'}"
                results[label] = _profile_one(path, FrameDecoder(), packet_type)
            finally:
                _protocol._speedups = saved
            cells = " ".join(f"{results[label][stage]:7.2f}" for stage in STAGES)
            print(f"{label:22} {results[label]['total']:7.2f} {cells}")
        path.unlink()
    return results


STAGES = ("read", "decode", "Packets", "loop")


def _profile_one(path: Path, decoder: Any, packet_type: Any) -> dict[str, float]:
    stages = dict.fromkeys(STAGES, 0.0)
    start = time.perf_counter()
    ours, theirs = socket.socketpair()  # as the client spawns the helper
    theirs.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
    proc = subprocess.Popen(
        [str(HELPER), "-r", str(path), "--"], stdin=subprocess.PIPE, stdout=theirs.fileno()
    )
    theirs.close()
    fd = ours.fileno()
    while True:
        t0 = time.perf_counter()
        n = os.readv(fd, [decoder.space()])
        t1 = time.perf_counter()
        if not n:
            break
        values, _ = decoder.filled(n)
        t2 = time.perf_counter()
        batches = [_protocol._batch(v, packet_type) for v in values if v[0] == "packets"]
        t3 = time.perf_counter()
        for packets in batches:
            for pkt in packets:
                pkt.time, pkt.length, pkt.data  # noqa: B018
        t4 = time.perf_counter()
        for stage, took in zip(stages, (t1 - t0, t2 - t1, t3 - t2, t4 - t3), strict=True):
            stages[stage] += took
    proc.wait()
    ours.close()
    return {"total": time.perf_counter() - start, **stages}


def bench_transport(workdir: Path, count: int) -> dict[str, float]:
    """The helper's stdout as a pipe (1 MiB: the helper sizes it so) and as
    the Unix stream socket the client gives it (1 MiB send buffer): the
    bytes of one file read into a 1 MiB buffer, nothing decoded."""
    path = workload.write(workdir / "transport.pcap", count, "mixed")
    rates: dict[str, list[float]] = {"pipe": [], "socket": []}
    for _ in range(3):
        for kind, got in rates.items():
            if kind == "pipe":
                r, w = os.pipe()
            else:
                a, b = socket.socketpair()
                b.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
                r, w = a.detach(), b.detach()
            t0 = time.perf_counter()
            proc = subprocess.Popen(
                [str(HELPER), "-r", str(path), "--"], stdin=subprocess.PIPE, stdout=w
            )
            os.close(w)
            buf, total = memoryview(bytearray(1 << 20)), 0
            while n := os.readv(r, [buf]):
                total += n
            got.append(total / (time.perf_counter() - t0) / 1e9)
            proc.wait()
            os.close(r)
    path.unlink()
    result = {kind: statistics.median(got) for kind, got in rates.items()}
    print(f"\n## The helper's stdout, {count} mixed packets: pipe or socket (median of 3)")
    for kind, rate in result.items():
        print(f"{kind:8} {rate:6.2f} GB/s   runs: " + " ".join(f"{r:.2f}" for r in rates[kind]))
    return result


# -- memory --------------------------------------------------------------------


CLIENT_RSS = """
import sys, epcap
def rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
with epcap.start(file=sys.argv[1], progname=sys.argv[2]) as cap:
    for i, pkt in enumerate(cap):
        if i == 100_000:
            early = rss()
print(early, rss())
"""


def bench_memory(workdir: Path, count: int) -> dict[str, float]:
    path = workload.write(workdir / "mem.pcap", count, "mixed")
    out = subprocess.run(
        [sys.executable, "-c", CLIENT_RSS, str(path), str(HELPER)],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    early, late = map(float, out.stdout.split())
    peak = 0.0
    with epcap.start(file=path, progname=HELPER) as cap:
        pid = cap.pid
        for i, _ in enumerate(cap):
            if i % 100000 == 0:
                peak = max(peak, _hwm_mib(pid))
    with epcap.start(interface="lo", progname=HELPER) as cap:
        live_peak, ring = _hwm_mib(cap.pid), _ring_mib(cap.pid)
    path.unlink()
    print(f"\n## Memory ({count} mixed packets)")
    print(f"helper peak RSS reading the file: {peak:.1f} MiB")
    print(f"helper peak RSS live on lo: {live_peak:.1f} MiB, of which the ring {ring:.1f} MiB")
    print(f"client RSS at packet 100,000: {early:.1f} MiB; at the end: {late:.1f} MiB")
    return {
        "helper_file_mib": peak,
        "helper_live_mib": live_peak,
        "helper_ring_mib": ring,
        "client_early_mib": early,
        "client_late_mib": late,
    }


def _hwm_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _ring_mib(pid: int) -> float:
    """The resident part of the packet ring: libpcap's mapping of its socket."""
    total, in_ring = 0, False
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        fields = line.split()
        if "-" in fields[0] and len(fields) >= 5:  # a mapping's first line
            in_ring = fields[-1].startswith("socket:")
        elif in_ring and fields[0] == "Rss:":
            total += int(fields[1])
    return total / 1024


# -- a remote capture over ssh, against a local one -----------------------------

FLOOD_FILTER = "ip src host 198.18.0.1"
"""The workload's packets (workload.py): what both captures of a flood take."""
PACED_PPS = 100_000
"""The paced flood's rate: what a remote capture should deliver entire."""
REMOTE_BUFFER = 256 << 20
"""The ring of both captures: the most a caller who is not root may ask,
room for the whole top-speed flood when it is read only afterwards."""


@contextlib.contextmanager
def ssh_host() -> Iterator[tuple[Any, Path]]:
    """One SSH host (tests/sshhosts.py) and the helper `make install`ed in
    caps mode into a temporary prefix, runnable by its remote user: what
    conftest.py's `user`, `installs` and `ssh_hosts` fixtures make (the
    installs' group and user made if missing). All undone at the end,
    however it ends, last made first undone."""
    from privileged import GROUP, USER, ensure_user, install, remove_user
    from sshhosts import running_hosts

    with contextlib.ExitStack() as undo:
        if subprocess.run(["getent", "group", GROUP], capture_output=True).returncode != 0:
            subprocess.run(["groupadd", "--system", GROUP], check=True)
            undo.callback(subprocess.run, ["groupdel", GROUP], check=True)
        _, made = ensure_user(USER)
        if made:
            undo.callback(remove_user, USER)
        subprocess.run(["usermod", "-aG", GROUP, USER], check=True)
        top = Path(tempfile.mkdtemp(prefix="epcap-bench-install-", dir="/var/tmp"))
        top.chmod(0o755)
        undo.callback(_uninstall, top)
        install("caps", top)
        (host,) = undo.enter_context(running_hosts(1))
        yield host, top / "lib" / "epcap" / "epcapd"


def _uninstall(top: Path) -> None:
    """`make uninstall` of the prefix `top`, then `top` itself (and whatever
    a failed install left there)."""
    subprocess.run(["make", "-s", "-C", str(ROOT), "uninstall", f"PREFIX={top}"],
                   capture_output=True)  # fmt: skip
    shutil.rmtree(top, ignore_errors=True)


def bench_remote(workdir: Path, count: int) -> dict[str, Any]:
    """The same flood into an SSH host's interface, captured in turn by a
    remote capture (through ssh, by the host's remote user) and by a local
    one: the same installed helper run here, in the host's namespace (exec=
    `ip netns exec`), with the same options (interface, direction, filter,
    ring). The flood is tcpreplay onto the root-namespace end of the host's
    veth pair: it arrives on the host's `eth1` and goes nowhere else.
    Three floods, each captured remotely then locally: paced at PACED_PPS
    and read as it comes (a remote capture should deliver it entire); at
    top speed, read as it comes (what tcpreplay sends on this machine, a
    rate both may keep up with); and at top speed into the ring, read once
    the flood is over (what each path delivers when the packets are
    waiting: the remote/local ratio of the transport, ssh's encryption on
    both ends included, with nothing else running)."""
    flood = workload.write(workdir / "remote.pcap", count, "mixed")
    results: dict[str, Any] = {}
    with ssh_host() as (host, helper):
        options: dict[str, Any] = {"interface": host.interface, "filter": FLOOD_FILTER,
                                   "direction": "in", "buffer": REMOTE_BUFFER,
                                   "progname": str(helper)}  # fmt: skip
        starts: dict[str, Callable[[], epcap.Capture]] = {
            "remote": lambda: epcap.start(
                host=host.target, ssh_options=host.ssh_options, **options
            ),
            "local": lambda: epcap.start(exec=host.netns_exec, **options),
        }
        print(
            f"\n## Remote capture through ssh against a local one: mixed packets tcpreplayed "
            f"onto {host.peer_interface}, captured on {host.name}'s {host.interface}"
        )
        print(f"remote: epcap.start(host={host.target!r}, ...), the helper installed in caps "
              f"mode; local: the same helper in {host.netns} (exec=ip netns exec)")  # fmt: skip
        print(f"{'flood':22} {'read':12} {'capture':7} {'delivered':>10} {'dropped':>8} "
              f"{'pkts/s':>9} {'MB/s':>6}")  # fmt: skip
        for label, pace, backlog in (
            ("paced", [f"--pps={PACED_PPS}"], False),
            ("topspeed", ["--topspeed"], False),
            ("backlog", ["--topspeed"], True),
        ):
            results[label] = {}
            for name, start in starts.items():
                replay = functools.partial(_tcpreplay, host.peer_interface, flood, pace)
                got = _delivered(start, replay, backlog)
                results[label][name] = got
                sent = f"{got['sent']:,} at {got['flood_pps']:,.0f}/s"
                read = "after it" if backlog else "as it comes"
                print(f"{sent:22} {read:12} {name:7} {got['delivered']:10,} "
                      f"{got['dropped']:8,} {got['pps']:9,.0f} {got['mbps']:6.1f}")  # fmt: skip
            ratio = results[label]["remote"]["pps"] / results[label]["local"]["pps"]
            results[label]["ratio"] = ratio
            print(f"{'':35} remote/local: {ratio:.2f}x")
    flood.unlink()
    return results


def _tcpreplay(
    interface: str, flood: Path, pace: list[str], netns: str | None = None
) -> dict[str, Any]:
    """tcpreplay `flood` onto `interface` (in `netns`, if given) at `pace`
    (tcpreplay's options); what it says it sent: packets and packets/s."""
    argv = ["tcpreplay", *pace, f"--intf1={interface}", str(flood)]
    if netns is not None:
        argv = ["ip", "netns", "exec", netns, *argv]
    out = subprocess.run(argv, check=True, capture_output=True, text=True).stdout
    sent = re.search(r"Actual: (\d+) packets", out)
    rate = re.search(r"Rated: [\d.]+ Bps, [\d.]+ Mbps, ([\d.]+) pps", out)
    assert sent and rate, f"tcpreplay said: {out}"
    return {"sent": int(sent[1]), "flood_pps": float(rate[1])}


def _wait_quiet(count: Callable[[], int], quiet: float, limit: float) -> None:
    """Until `count()` stays the same for `quiet` seconds (at most `limit`)."""
    deadline = time.monotonic() + limit
    last, since = count(), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.05)
        if (now := count()) != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return


def _delivered(
    start: Callable[[], epcap.Capture], flood: Callable[[], dict[str, Any]], backlog: bool
) -> dict[str, Any]:
    """What a capture delivers of `flood` to a Python loop that touches each
    packet's time, length and bytes (as the file readers above), read as it
    comes or, with `backlog`, once the flood is over: packets, and the rate
    from the first batch's arrival to the last's (the first batch's packets
    aside), in packets and bytes a second; then its final stats."""
    with start() as cap:
        seen = {"packets": 0, "bytes": 0, "first": 0.0, "last": 0.0, "head": 0}
        failed: list[BaseException] = []
        go = threading.Event()

        def consume() -> None:
            go.wait()
            try:
                for batch in cap.batches():
                    now = time.perf_counter()
                    if not seen["packets"]:
                        seen["first"], seen["head"] = now, len(batch)
                    for pkt in batch:
                        pkt.time, pkt.length  # noqa: B018
                        seen["bytes"] += len(pkt.data)
                    seen["packets"] += len(batch)
                    seen["last"] = now
            except BaseException as exc:
                failed.append(exc)

        reader = threading.Thread(target=consume)
        reader.start()
        try:
            if not backlog:
                go.set()
            sent = flood()
            go.set()
            _wait_quiet(lambda: int(seen["packets"]), 1.0, 120)
        finally:
            go.set()
            cap.stop()
            reader.join()
        if failed:
            raise failed[0]
        stats = cap.final_stats or {}
    span = seen["last"] - seen["first"]
    timed = seen["packets"] - seen["head"]
    share = timed / seen["packets"] if seen["packets"] else 0.0
    return {
        **sent,
        "delivered": int(seen["packets"]),
        "dropped": int(stats.get("dropped", 0)),
        "seconds": span,
        "pps": timed / span if span > 0 else 0.0,
        "mbps": seen["bytes"] * share / span / 1e6 if span > 0 else 0.0,
    }


# -- fanout: K processes decode() one interface's traffic -------------------------

FANOUT_CLUSTER = 19001
"""The cluster_id of the fanout consumers (an id no test uses)."""
FANOUT_FLOWS = 4096
"""UDP flows of the fanout flood (source ports 1024 up), for the kernel's
flow hash to spread over the consumers."""
FANOUT_FILTER = "udp dst port 9"
FANOUT_BUFFER = 256 << 20
"""Each consumer's ring, the most a caller who is not root may ask: room for
the whole flood, so that K=1 and K=2 decode the same packets and none is
dropped. (TPACKET_V3 hands over a 256 KiB block at least every `timeout`
ms, however full: at this flood's rate 64 MiB holds only ~80,000 packets.)"""


def write_flows(path: Path, count: int, flows: int = FANOUT_FLOWS) -> Path:
    """`count` 64-byte Ethernet/IPv4/UDP packets, to port 9 from `flows`
    source ports in turn."""
    frames = [pf.eth_ipv4_udp("198.18.0.1", "198.18.0.2", 1024 + i, 9, bytes(range(22)))
              for i in range(flows)]  # fmt: skip
    assert {len(frame) for frame in frames} == {64}
    records = [(workload.START_NS + i * 1_234, 64, frames[i % flows]) for i in range(count)]
    pf.write_pcap(path, records, linktype=pf.LINKTYPE_ETHERNET, nano=True)
    return path


def fanout_consumer(interface: str, results: Any, flood_done: Event) -> None:
    """One consumer of the README's recipe ("Across cores"), in a process of
    its own: a capture in the cluster, every packet decode()d. It says
    ("ready", pid) once capturing, then ("done", figures) once the flood is
    over and nothing came for 0.5 s; or ("error", words). The figures:
    packets decoded, the times of the first and the last, and how many were
    decoded when the flood ended, and when (time.monotonic(): one clock for
    every process)."""
    try:
        with epcap.start(
            interface=interface, cluster_id=FANOUT_CLUSTER, direction="in",
            filter=FANOUT_FILTER, buffer=FANOUT_BUFFER, progname=HELPER,
        ) as cap:  # fmt: skip
            decoded, at_end = [0], [0, 0.0]

            def stop_when_quiet() -> None:
                flood_done.wait()
                at_end[:] = decoded[0], time.monotonic()
                _wait_quiet(lambda: decoded[0], 0.5, 120)
                cap.stop()

            threading.Thread(target=stop_when_quiet, daemon=True).start()
            results.put(("ready", os.getpid()))
            first = last = 0.0
            for pkt in cap:
                pkt.decode()
                last = time.monotonic()
                if not decoded[0]:
                    first = last
                decoded[0] += 1
            stats = dict(cap.final_stats or {})
        results.put(("done", {"decoded": decoded[0], "first": first, "last": last,
                              "at_end": at_end[0], "end": at_end[1],
                              "dropped": stats.get("dropped", 0)}))  # fmt: skip
    except BaseException as exc:
        results.put(("error", f"{type(exc).__name__}: {exc}"))


def bench_fanout(workdir: Path, count: int, runs: int) -> dict[str, Any]:
    """K consumers (fanout_consumer) of a veth pair's traffic, K=1 then K=2,
    `runs` rounds, each time the same flood: `count` packets of FANOUT_FLOWS
    flows, tcpreplay --topspeed from the pair's far end, several times what
    one consumer decodes; the backlog waits in the rings. Packets decoded
    per second, all consumers together: over the whole run, from the first
    packet decoded to the last; and once the flood is over, from its end to
    the last packet, when the consumers have both CPUs to themselves (the
    flood's sender and the kernel's receiving take one while it lasts).
    The speedup is the median of the rounds' K=2/K=1 ratios: this VM's CPUs
    change speed from one run to the next, and a round's two runs are
    seconds apart."""
    flood = write_flows(workdir / "flows.pcap", count)
    rows: dict[str, list[dict[str, Any]]] = {"1": [], "2": []}
    ratios: dict[str, list[float]] = {"drain_rate": [], "rate": []}
    print(
        f"\n## Fanout: K processes share a veth pair with cluster_id={FANOUT_CLUSTER} and "
        f"decode() every packet; {count} 64-byte packets of {FANOUT_FLOWS} flows, "
        f"tcpreplay --topspeed; {runs} rounds"
    )
    print(f"{'K':>2} {'decoded':>9} {'dropped':>8} {'flood/s':>9} {'whole run/s':>12} "
          f"{'after flood/s':>14}  per consumer")  # fmt: skip
    with Veth() as veth:
        for _ in range(runs):
            for k in (1, 2):
                got = _fanout_run(k, veth, flood)
                rows[str(k)].append(got)
                each = " + ".join(f"{n:,}" for n in got["each"])
                print(f"{k:2} {got['decoded']:9,} {got['dropped']:8,} {got['flood_pps']:9,.0f} "
                      f"{got['rate']:12,.0f} {got['drain_rate']:14,.0f}  {each}")  # fmt: skip
            for measure, found in ratios.items():
                found.append(rows["2"][-1][measure] / rows["1"][-1][measure])
            print(f"{'K=2 / K=1:':>33} {ratios['rate'][-1]:11.2f}x "
                  f"{ratios['drain_rate'][-1]:13.2f}x")  # fmt: skip
    flood.unlink()
    results: dict[str, Any] = {"runs": rows, "ratios": ratios}
    for k, got in rows.items():
        results[k] = {
            "rate": statistics.median(r["rate"] for r in got),
            "drain_rate": statistics.median(r["drain_rate"] for r in got),
            "dropped": sum(r["dropped"] for r in got),
            "decoded": sum(r["decoded"] for r in got),
            "sent": sum(r["sent"] for r in got),
        }
    results["speedup"] = statistics.median(ratios["drain_rate"])
    results["speedup_whole"] = statistics.median(ratios["rate"])
    print(f"K=2 / K=1, median of {runs} rounds: {results['speedup']:.2f}x after the flood, "
          f"{results['speedup_whole']:.2f}x over the whole run")  # fmt: skip
    return results


def _fanout_run(k: int, veth: Veth, flood: Path) -> dict[str, Any]:
    """One flood, decoded by `k` consumers; the figures of all together."""
    ctx = multiprocessing.get_context("spawn")
    results = ctx.Queue()
    flood_done = ctx.Event()
    workers = [ctx.Process(target=fanout_consumer, args=(veth.near, results, flood_done),
                           daemon=True) for _ in range(k)]  # fmt: skip
    try:
        for worker in workers:
            worker.start()
        for _ in workers:
            _message(results, "ready", 30, workers)
        sent = _tcpreplay(veth.far, flood, ["--topspeed"], netns=veth.ns)
        flood_done.set()
        done = [_message(results, "done", 180, workers) for _ in workers]
        for worker in workers:
            worker.join(10)
    finally:
        for worker in workers:
            if worker.is_alive():
                worker.terminate()
                worker.join(5)
    decoded = sum(d["decoded"] for d in done)
    last, end = max(d["last"] for d in done), min(d["end"] for d in done)
    backlog = decoded - sum(d["at_end"] for d in done)
    assert all(d["at_end"] < d["decoded"] for d in done), "a consumer kept up with the flood"
    return {
        **sent,
        "decoded": decoded,
        "dropped": sum(d["dropped"] for d in done),
        "each": [d["decoded"] for d in done],
        "rate": decoded / (last - min(d["first"] for d in done)),
        "drain_rate": backlog / (last - end),
    }


def _message(results: Any, kind: str, timeout: float, workers: list[Any]) -> Any:
    """The next message of a consumer, which must be of `kind`; an error if a
    consumer says otherwise, or ends or stays silent first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(queue.Empty):
            got, value = results.get(timeout=0.2)
            if got != kind:
                raise RuntimeError(f"a fanout consumer said {got}: {value}")
            return value
        if any(w.exitcode not in (None, 0) for w in workers):
            raise RuntimeError(f"a fanout consumer died: {[w.exitcode for w in workers]}")
    raise TimeoutError(f"no {kind!r} from the fanout consumers in {timeout} s")


# -- the targets ----------------------------------------------------------------


def verdicts(results: dict[str, Any]) -> list[tuple[str, bool, str]]:
    """Each target of issue 14 (1 to 5), of remote capture and fanout (6)
    and of the pypcap and pcapy-ng modules (7), met or not, with its
    figures: those of the sections that ran."""
    found: list[tuple[str, bool, str]] = []
    if "files" in results:
        files = results["files"]

        def vs(kind: str, reader: str, peer: str) -> float:
            return float(files[kind][reader] / files[kind][peer])

        a, b = vs("mixed", "epcap sync", "pypcap"), vs("mixed", "epcap sync", "pcapy-ng")
        c = vs("small", "epcap sync", "pypcap")
        d, e = vs("mixed", "epcap async", "epcap sync"), vs("small", "epcap async", "epcap sync")
        found += [
            ("1. file, mixed: sync >= 1.0x pypcap and >= 1.5x pcapy-ng", a >= 1.0 and b >= 1.5,
             f"{a:.2f}x pypcap, {b:.2f}x pcapy-ng"),
            ("2. file, 64-byte: sync >= 1.0x pypcap", c >= 1.0, f"{c:.2f}x pypcap"),
            ("3. async >= 0.9x sync, both workloads", d >= 0.9 and e >= 0.9,
             f"mixed {d:.2f}x, small {e:.2f}x"),
        ]  # fmt: skip
        compat = {name: (vs("mixed", name, "epcap sync"), vs("small", name, "epcap sync"))
                  for name in ("pypcap compat", "pypcap compat, float ts")}  # fmt: skip
        pcapy = tuple(vs(kind, "pcapy-ng compat", "pcapy-ng") for kind in ("mixed", "small"))
        found += [
            ("7a. pypcap compat (ns, float ts) >= 0.9x epcap sync, both workloads",
             min(min(pair) for pair in compat.values()) >= 0.9,
             "; ".join(f"{name}: mixed {m:.2f}x, small {sm:.2f}x"
                       for name, (m, sm) in compat.items())),
            ("7b. pcapy-ng compat >= 0.9x the real pcapy-ng (its API makes three calls a "
             "packet, next, getts and getlen: 0.9x epcap sync is out of its reach)",
             min(pcapy) >= 0.9,
             f"mixed {pcapy[0]:.2f}x, small {pcapy[1]:.2f}x; against epcap sync: mixed "
             f"{vs('mixed', 'pcapy-ng compat', 'epcap sync'):.2f}x, small "
             f"{vs('small', 'pcapy-ng compat', 'epcap sync'):.2f}x"),
        ]  # fmt: skip
    if "live" in results:
        drop, tcpdrop = results["live"]["epcap"]["dropped"], results["live"]["tcpdump"]["dropped"]
        found.append(("4a. live flood: dropped <= tcpdump's", drop <= tcpdrop,
                      f"epcap {drop}, tcpdump {tcpdrop}"))  # fmt: skip
    if "latency" in results:
        latency = results["latency"]
        now = latency['epcap timeout="immediate"']["p99_us"]
        floor = latency["tcpdump --immediate-mode"]["p99_us"]
        default = latency["epcap default (timeout=1)"]["p99_us"]
        found += [
            ('4b. timeout="immediate": p99 <= 1.25x tcpdump --immediate-mode', now <= 1.25 * floor,
             f"{now:.0f} us against {floor:.0f} us ({now / floor:.2f}x)"),
            ("4c. defaults: p99 < 1500 us", default < 1500,
             f"{default:.0f} us (the kernel retires a block every 1 ms; this machine's wake-up "
             f"floor, tcpdump's p99 above, was {floor:.0f} us)"),
        ]  # fmt: skip
    if "memory" in results:
        memory = results["memory"]
        beyond = memory["helper_live_mib"] - memory["helper_ring_mib"]
        peak = memory["helper_file_mib"]
        growth = memory["client_late_mib"] - memory["client_early_mib"]
        found += [
            ("5a. helper RSS beyond the ring < 16 MiB", beyond < 16 and peak < 16,
             f"live: {beyond:.1f} MiB beyond the ring; file: {peak:.1f} MiB"),
            ("5b. client RSS flat over 1M packets (< 1 MiB growth)", growth < 1.0,
             f"{growth:+.1f} MiB from packet 100,000 to the end"),
        ]  # fmt: skip
    if "remote" in results:
        paced, top, back = (results["remote"][k] for k in ("paced", "topspeed", "backlog"))
        remote = paced["remote"]
        entire = remote["delivered"] == remote["sent"] and remote["dropped"] == 0

        def fate(run: dict[str, Any]) -> str:
            return f"{run['delivered']:,} of {run['sent']:,}, {run['dropped']:,} dropped"

        found.append((
            f"6a. remote capture: every packet of a {PACED_PPS:,}/s flood delivered; "
            "remote/local rate reported",
            entire,
            f"paced: remote {fate(remote)} (local {fate(paced['local'])}); a top-speed flood "
            f"read after it: remote {back['remote']['pps']:,.0f} against local "
            f"{back['local']['pps']:,.0f} packets/s ({back['ratio']:.2f}x), "
            f"{back['remote']['mbps']:.0f} against {back['local']['mbps']:.0f} MB/s; read as it "
            f"comes: remote {fate(top['remote'])} at {top['remote']['pps']:,.0f}/s, local "
            f"{fate(top['local'])} at {top['local']['pps']:,.0f}/s ({top['ratio']:.2f}x)",
        ))  # fmt: skip
    if "fanout" in results:
        one, two = results["fanout"]["1"], results["fanout"]["2"]
        speedup, whole = results["fanout"]["speedup"], results["fanout"]["speedup_whole"]
        found.append((
            "6b. fanout K=2 decode() >= 1.6x K=1", speedup >= 1.6,
            f"{speedup:.2f}x once the flood is over (median of the rounds' "
            f"{', '.join(f'{r:.2f}' for r in results['fanout']['ratios']['drain_rate'])}; "
            f"median rates {two['drain_rate']:,.0f} against {one['drain_rate']:,.0f} "
            f"packets decoded/s); over the whole run, the flood's sender on one of the 2 CPUs "
            f"included, {whole:.2f}x; dropped: K=2 "
            f"{two['dropped']:,}, K=1 {one['dropped']:,} of {two['sent']:,} sent to each",
        ))  # fmt: skip
    return found


SECTIONS = ("files", "live", "latency", "memory", "transport", "profile", "remote", "fanout")


def sections(text: str) -> list[str]:
    """--only's comma-separated section names, each one of SECTIONS."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in SECTIONS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown section {', '.join(unknown) or '(none)'}: choose from {', '.join(SECTIONS)}"
        )
    return names


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=1_000_000, help="packets per workload")
    parser.add_argument("--runs", type=int, default=5, help="runs per reader (median)")
    parser.add_argument(
        "--only",
        type=sections,
        default=list(SECTIONS),
        help=f"run only these sections, comma-separated: {','.join(SECTIONS)}",
    )
    parser.add_argument(
        "--remote-count",
        type=int,
        default=120_000,
        help="packets of the remote section's flood (all of them fit its ring)",
    )
    parser.add_argument(
        "--fanout-count", type=int, default=150_000, help="packets of the fanout section's flood"
    )
    parser.add_argument("--fanout-runs", type=int, default=5, help="rounds of K=1 and K=2 (median)")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("make bench needs root (live capture, a veth pair in a namespace)")
        return 1
    missing = [tool for tool in ("tcpdump", "tcpreplay") if shutil.which(tool) is None]
    if missing:
        print(f"missing: {', '.join(missing)} (make bench installs them)")
        return 1
    # SIGTERM unwinds as Ctrl-C does: what a section made (namespaces, users,
    # installs, processes) is removed on the way out.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="epcap-bench-", dir="/var/tmp") as tmp:
        workdir = Path(tmp)
        run: dict[str, Callable[[], Any]] = {
            "files": lambda: bench_files(workdir, args.count, args.runs),
            "live": lambda: bench_live(workdir, min(args.count, 200_000)),
            "latency": lambda: bench_latency(1000),
            "memory": lambda: bench_memory(workdir, args.count),
            "transport": lambda: bench_transport(workdir, args.count),
            "profile": lambda: profile(workdir, args.count),
            "remote": lambda: bench_remote(workdir, args.remote_count),
            "fanout": lambda: bench_fanout(workdir, args.fanout_count, args.fanout_runs),
        }
        results: dict[str, Any] = {name: run[name]() for name in SECTIONS if name in args.only}
    print("\n## Targets")
    results["targets"] = {}
    for target, met, figures in verdicts(results):
        print(f"{'met    ' if met else 'NOT MET'} {target}: {figures}")
        results["targets"][target] = {"met": met, "figures": figures}
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    took = time.monotonic() - t0
    version = sys.version.split()[0]
    accel = "with" if _protocol.ACCELERATED else "WITHOUT"
    print(
        f"\n(took {took:.0f} s; {os.cpu_count()} CPUs, python {version}, {rss:.0f} MiB max RSS, "
        f"{accel} the C accelerator)"
    )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

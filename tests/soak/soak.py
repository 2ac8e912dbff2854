"""A bounded soak of epcap: a seeded storm of captures, floods, commands and
kills, then an audit that every packet arrived and that nothing leaked.

    make soak    # as root; SOAK_SECONDS=60, SOAK_ARGS="--seed N" replays a run

It starts captures at random with this tree's helper (priv/epcapd): live on
lo with UDP ports of their own, and of pcap files it writes; sync, and
asyncio in one event loop. A worker thread per capture floods its port,
reads, runs stats and set_filter, then stops (right after a burst) or closes
it. The soak SIGKILLs helpers (the owner must get HelperExitedError,
returncode -9, within 2 s) and client processes that own several captures
(their helpers must go by themselves within 2 s). A capture not killed must
get, byte for byte, what was sent to its port while its filter held (less at
most ``dropped``: on lo libpcap keeps one of the two copies the kernel counts
in ``received``), or its file's records, and final_stats must count what it
got. Then nothing may be left: helper processes, zombies, fds, temp files,
netns or links named epcap-soak (it makes none: its traffic goes only to
127.0.0.1). The report gives the seed and the counts; a failure exits 1.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import random
import select
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections import Counter
from pathlib import Path
from typing import Any

import epcap
from epcap.savefile import PcapWriter

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from conftest import HELPER, helper_pids, zombie_children

PREFIX = "epcap-soak"
MAX_CAPTURES, MAX_CLIENTS = 8, 2  # at once, in this process / as processes
EXIT_LIMIT = 2.0  # s: to report a kill; for a dead client's helpers to go
READ_LIMIT = 5.0  # s: a burst on lo has arrived by then
UDP_HEADERS = 42  # Ethernet, IPv4, UDP on lo
LIVE_OPTIONS: list[dict[str, Any]] = [
    {},
    {"timeout": 5},
    {"timeout": "immediate", "snaplen": 2048},  # small slots: a burst fits the ring
    {"stats_interval": 0.1},
]


class Driver:
    """One capture, called from its worker thread: an epcap.Capture, or an
    epcap.AsyncCapture run in the soak's event loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop | None, **options: Any) -> None:
        self.loop = loop

        async def start() -> epcap.AsyncCapture:
            return await epcap.start_async(progname=HELPER, **options)

        self.cap: Any = self.run(start()) if loop else epcap.start(progname=HELPER, **options)

    def run(self, coro: Any) -> Any:
        assert self.loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    def read(self, want: int, out: list[epcap.Packet]) -> None:
        """Read batches until `out` holds `want` packets or the capture ends."""

        async def read() -> None:
            async with contextlib.aclosing(self.cap.batches()) as batches:
                async for batch in batches:
                    out.extend(batch)
                    if len(out) >= want:
                        return

        if len(out) >= want:
            return
        if self.loop:
            self.run(read())
            return
        with contextlib.closing(self.cap.batches()) as batches:
            for batch in batches:
                out.extend(batch)
                if len(out) >= want:
                    return

    def drain(self, out: list[epcap.Packet]) -> None:
        self.read(1 << 62, out)

    def command(self, name: str, *args: Any) -> Any:
        result = getattr(self.cap, name)(*args)
        return self.run(result) if self.loop else result

    def stop(self) -> None:  # from any thread
        if self.loop:
            self.loop.call_soon_threadsafe(self.cap.stop)
        else:
            self.cap.stop()

    def close(self) -> None:
        self.command("aclose" if self.loop else "close")


class Tracked:
    """One in-process capture, shared by its worker and the orchestrator."""

    def __init__(self, soak: Soak, kind: str) -> None:
        self.kind = kind  # live-sync, live-async, file-sync, file-async
        self.rng = random.Random(soak.rng.getrandbits(64))
        self.id = next(soak.ids)
        self.state = "starting"  # then running, ending (no more kills), done
        self.driver: Driver | None = None
        self.killed_at: float | None = None


def udp_socket() -> socket.socket:
    """Bound to a free port on 127.0.0.1: what is sent there draws no ICMP."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    return sock


class Soak:
    def __init__(self, seed: int, seconds: float, tmp: Path) -> None:
        self.rng, self.seed, self.seconds, self.tmp = random.Random(seed), seed, seconds, tmp
        self.tally: Counter[str] = Counter()
        self.failures: list[str] = []
        self.lock = threading.Lock()
        self.ids = itertools.count(1)
        self.ending = False
        self.tracked: list[Tracked] = []
        self.workers: list[threading.Thread] = []
        self.clients: list[tuple[subprocess.Popen[str], list[int], list[socket.socket], float]] = []
        self.loop: asyncio.AbstractEventLoop | None = None
        self.files = [self.write_file(i) for i in range(6)]

    def fail(self, what: str) -> None:
        with self.lock:
            self.failures.append(what)

    def count(self, key: str, n: int = 1, *, most: bool = False) -> None:
        with self.lock:
            self.tally[key] = max(self.tally[key], n) if most else self.tally[key] + n

    def write_file(self, i: int) -> tuple[Path, list[tuple[int, int, bytes]]]:
        """Random Ethernet records, their times anywhere a pcap file's
        unsigned seconds reach (to 2106); the last file is big enough to
        fill a pipe."""
        precision, unit = ("nano", 1) if i % 2 == 0 else ("micro", 1000)
        records = []
        for _ in range(4000 if i == 5 else self.rng.randint(0, 3000)):
            data = self.rng.randbytes(1400 if i == 5 else self.rng.randint(0, 1500))
            length = len(data) + self.rng.choice([0, 0, self.rng.randint(1, 9000)])
            records.append((self.rng.randrange(2**32 * 10**9 // unit) * unit, length, data))
        path = self.tmp / f"{i}-{precision}.pcap"
        with PcapWriter(path, 1, precision=precision) as out:
            out.write_all(epcap.Packet(1, *r) for r in records)
        return path, records

    # ----- the workers: one thread per capture -----

    def work(self, t: Tracked, run: Any) -> None:
        where = f"#{t.id} {t.kind}"
        try:
            run(t)
        except epcap.HelperExitedError as exc:
            if t.killed_at is None or exc.returncode != -signal.SIGKILL:
                return self.fail(f"{where}: {exc} (returncode {exc.returncode})")
            late = time.monotonic() - t.killed_at
            self.count("kills reported")
            self.count("slowest kill report ms", round(late * 1000), most=True)
            if late > EXIT_LIMIT:
                self.fail(f"{where}: the kill was reported after {late:.2f} s")
        except Exception as exc:
            line = traceback.extract_tb(exc.__traceback__)[-1].lineno
            self.fail(f"{where}: {type(exc).__name__} at line {line}: {exc}")
        finally:
            if t.driver is not None:
                with contextlib.suppress(Exception):
                    t.driver.close()
            t.state = "done"

    def running(self, t: Tracked, driver: Driver) -> Driver:
        with self.lock:
            t.driver, t.state = driver, "running"
        self.count(f"start {t.kind}")
        return driver

    def wants_end(self, t: Tracked, odds: float) -> bool:
        """Whether the worker ends its capture now (no kill may come then);
        never after a kill."""
        with self.lock:
            if t.killed_at is None and (self.ending or t.rng.random() < odds):
                t.state = "ending"
            return t.state == "ending"

    def read_all(self, t: Tracked, want: int, got: list[epcap.Packet]) -> bool:
        """Read until `got` holds `want` packets; after READ_LIMIT give up,
        end the capture and return False."""
        assert t.driver is not None
        driver = t.driver

        def give_up() -> None:
            self.wants_end(t, 1)
            driver.stop()

        watchdog = threading.Timer(READ_LIMIT, give_up)
        watchdog.start()
        try:
            driver.read(want, got)
        finally:
            watchdog.cancel()
        return len(got) >= want and t.state != "ending"

    def live(self, t: Tracked) -> None:
        rng, socks = t.rng, [udp_socket(), udp_socket()]
        ports = [s.getsockname()[1] for s in socks]
        port, sent, got = ports[0], list[bytes](), list[epcap.Packet]()
        tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            loop = self.loop if t.kind == "live-async" else None
            flt = f"udp dst port {port}"
            driver = self.running(t, Driver(loop, interface="lo", filter=flt,
                                            **rng.choice(LIVE_OPTIONS)))  # fmt: skip

            def burst(to: int) -> None:
                for _ in range(rng.randint(1, 300)):
                    data = struct.pack("!II", t.id, len(sent)) + rng.randbytes(rng.randint(0, 1000))
                    tx.sendto(data, ("127.0.0.1", to))
                    self.count("datagrams sent")
                    if to == port:
                        sent.append(data)

            complete = True  # every read so far got its packets in time
            while not self.wants_end(t, 0.05 if complete else 1):
                if t.killed_at is not None:
                    driver.drain(got)  # raises HelperExitedError
                    raise AssertionError("a killed helper ended normally")
                step = rng.choice(["burst", "burst", "read", "stats", "filter", "decoy", "nap"])
                if len(sent) - len(got) > 1000:
                    step = "read"  # bound what waits in the ring: no drops on lo
                other = ports[1] if port == ports[0] else ports[0]
                if step == "burst":
                    burst(port)
                elif step == "read":
                    complete = self.read_all(t, len(sent), got)
                elif step == "stats":
                    self.count("stats")
                    if driver.command("stats")["packets"] < len(got):
                        self.fail(f"#{t.id}: stats count fewer packets than it got")
                elif step == "filter" and rng.random() < 0.2:
                    self.count("bad filters")
                    with contextlib.suppress(epcap.FilterError):
                        driver.command("set_filter", "udp dst port")
                        self.fail(f"#{t.id}: a bad filter was accepted")
                elif step == "filter":
                    self.count("set_filter")
                    driver.command("set_filter", f"udp dst port {other}")
                    port = other
                elif step == "decoy":
                    burst(other)  # filtered out: must not arrive
                else:
                    time.sleep(rng.uniform(0, 0.05))
            if complete and rng.random() < 0.5:
                burst(port)
                driver.stop()  # right after the burst: all of it must still arrive
                driver.drain(got)
                self.count("stop+drain")
            else:
                complete = complete and self.read_all(t, len(sent), got)
                driver.close()
                self.count("close")
            self.check_live(f"#{t.id} {t.kind}", driver.cap.final_stats, sent, got)
        finally:
            for s in [tx, *socks]:
                s.close()

    def check_live(self, where: str, final: Any, sent: list[bytes], got: list[Any]) -> None:
        payloads = [bytes(p.data[UDP_HEADERS:]) for p in got]
        self.count("packets expected", len(sent))
        self.count("packets received", len(got))
        if final is None:
            return self.fail(f"{where}: no final_stats")
        self.count("packets dropped", final["dropped"])
        missing, unexpected = len(set(sent) - set(payloads)), len(set(payloads) - set(sent))
        if final["packets"] != len(got):
            self.fail(f"{where}: final_stats count {final['packets']} packets, it got {len(got)}")
        if final["received"] < 2 * len(sent):
            self.fail(f"{where}: the kernel received {final['received']} for {len(sent)} sent")
        if unexpected or len(got) != len(set(payloads)) or missing > final["dropped"]:
            self.fail(f"{where}: {len(got)} of {len(sent)} arrived, {final['dropped']} dropped:"
                      f" {missing} missing, {unexpected} unexpected")  # fmt: skip
        elif any(p.length != len(p.data) for p in got):
            self.fail(f"{where}: a packet's length differs from its size")

    def file(self, t: Tracked) -> None:
        rng, got = t.rng, list[epcap.Packet]()
        path, records = rng.choice(self.files)
        snaplen = rng.choice([None, None, rng.randint(1, 1600)])
        stop_after = rng.choice([None, None, rng.randint(0, len(records))])
        loop = self.loop if t.kind == "file-async" else None
        driver = self.running(t, Driver(loop, file=path, snaplen=snaplen or 262144))
        if stop_after is not None:
            driver.read(stop_after, got)
            driver.stop()
        driver.drain(got)
        self.wants_end(t, 1)
        driver.close()
        if t.killed_at is not None:
            self.count("kills after eof")  # the helper had sent all
        self.count("stop+drain" if stop_after is not None else "files read")
        self.count("file packets", len(got))
        want = [(r[0], r[1], r[2][:snaplen]) for r in records]
        final, where = driver.cap.final_stats, f"#{t.id} {t.kind} of {path.name}"
        if [(p.time, p.length, p.data) for p in got] != want[: len(got)]:
            self.fail(f"{where}: the packets differ from the file's")
        elif stop_after is None and len(got) != len(want):
            self.fail(f"{where}: {len(got)} of {len(want)} packets")
        elif final is None or final["packets"] != len(got):
            self.fail(f"{where}: final_stats {final}, but it got {len(got)}")

    # ----- the orchestrator: starts, kills, client processes -----

    def start(self, kind: str) -> None:
        if sum(t.state != "done" for t in self.tracked) < MAX_CAPTURES:
            t = Tracked(self, kind)
            run = self.live if kind.startswith("live") else self.file
            self.tracked.append(t)
            self.workers.append(threading.Thread(target=self.work, args=(t, run)))
            self.workers[-1].start()

    def kill_helper(self) -> None:
        with self.lock:
            running = [t for t in self.tracked if t.state == "running"]
            if not running:
                return
            t = self.rng.choice(running)
            assert t.driver is not None
            with contextlib.suppress(ProcessLookupError):
                fd = os.pidfd_open(t.driver.cap.pid)  # its pid stays its own while open
                try:
                    if Path(f"/proc/{t.driver.cap.pid}/exe").exists():  # not a zombie
                        t.killed_at = time.monotonic()
                        signal.pidfd_send_signal(fd, signal.SIGKILL)
                        self.tally["helper kills"] += 1
                finally:
                    os.close(fd)

    def spawn_client(self) -> None:
        socks = [udp_socket() for _ in range(self.rng.randint(2, 4))]
        ports = [str(s.getsockname()[1]) for s in socks]
        extra = ["--file", str(self.files[5][0])] if self.rng.random() < 0.5 else []
        extra += ["--read"] if self.rng.random() < 0.5 else []
        argv = [sys.executable, __file__, "--client", *ports, *extra]
        proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert proc.stdout is not None
        ready = select.select([proc.stdout], [], [], 30)[0]
        pids = json.loads(proc.stdout.readline() or "[]") if ready else []
        if len(pids) != len(ports) + ("--file" in extra):
            self.fail(f"client {proc.pid} did not start its captures")
        self.count("client processes")
        self.count("client captures", len(pids))
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
            for port in ports:
                for i in range(self.rng.randint(0, 300)):
                    tx.sendto(struct.pack("!I", i) + bytes(200), ("127.0.0.1", int(port)))
                    self.count("datagrams sent")
        self.clients.append((proc, pids, socks, time.monotonic() + self.rng.uniform(0.1, 3)))

    def end_clients(self, everyone: bool = False) -> None:
        """SIGKILL (70%) or close the clients whose time came; their helpers
        must then be gone within EXIT_LIMIT."""
        for proc, pids, socks, due in list(self.clients):
            if not everyone and due > time.monotonic():
                continue
            self.clients.remove((proc, pids, socks, due))
            kill = self.rng.random() < 0.7
            self.count("client kills" if kill else "client closes")
            if kill:
                proc.kill()
            with contextlib.suppress(BrokenPipeError):
                proc.communicate("close\n", timeout=30)  # closes the pipes too
            if proc.returncode != (-signal.SIGKILL if kill else 0):
                self.fail(f"client {proc.pid} exited with {proc.returncode}")
            t0 = time.monotonic()
            while set(pids) & helper_pids() and time.monotonic() - t0 < EXIT_LIMIT:
                time.sleep(0.01)
            if set(pids) & helper_pids():
                self.fail(f"helpers {sorted(set(pids) & helper_pids())} outlived their client")
            self.count(
                "slowest client helpers gone ms", round(1000 * (time.monotonic() - t0)), most=True
            )
            for sock in socks:
                sock.close()

    def run(self) -> None:
        """The storm for self.seconds, then every worker ends its capture."""
        ready = threading.Event()

        async def serve() -> None:
            self.loop, stop = asyncio.get_running_loop(), asyncio.Event()
            self.stop_loop = stop.set
            ready.set()
            await stop.wait()

        loop_thread = threading.Thread(target=asyncio.run, args=(serve(),))
        loop_thread.start()
        ready.wait()
        actions = {"live-sync": 4, "live-async": 3, "file-sync": 2, "file-async": 2,
                   "kill": 2, "client": 1}  # fmt: skip
        try:
            deadline = time.monotonic() + self.seconds
            while time.monotonic() < deadline:
                action = self.rng.choices(list(actions), weights=list(actions.values()))[0]
                if action == "kill":
                    self.kill_helper()
                elif action != "client":
                    self.start(action)
                elif len(self.clients) < MAX_CLIENTS:
                    self.spawn_client()
                self.end_clients()
                time.sleep(self.rng.uniform(0.01, 0.1))
        finally:
            self.ending = True
            self.end_clients(everyone=True)
            for worker in self.workers:
                worker.join(30)
                if worker.is_alive():
                    self.fail(f"a worker did not end in 30 s: {worker.name}")
            assert self.loop is not None
            self.loop.call_soon_threadsafe(self.stop_loop)
            loop_thread.join()


def client_main(args: argparse.Namespace) -> None:
    """A client process: captures on the given ports (and of a file); print
    their helpers' pids; read them or not; close them on a line on stdin."""
    caps = [epcap.start(interface="lo", filter=f"udp dst port {port}", progname=HELPER)
            for port in args.client]  # fmt: skip
    if args.file:
        caps.append(epcap.start(file=args.file, progname=HELPER))
    readers = [threading.Thread(target=lambda c=c: sum(1 for _ in c)) for c in caps]
    for reader in readers if args.read else []:
        reader.start()
    print(json.dumps([cap.pid for cap in caps]), flush=True)
    sys.stdin.readline()
    for cap in caps:
        cap.stop()
    for reader in readers if args.read else []:
        reader.join()
    for cap in caps:
        cap.close()


def leftovers(fds: int) -> dict[str, str]:
    """What is left behind, by kind ("" for nothing)."""
    temps = {"/tmp", "/dev/shm", tempfile.gettempdir()}
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    names = [line.split()[0] for line in netns.splitlines() if line.strip()]
    names += [line.split(":")[1].strip().split("@")[0] for line in links.splitlines()]
    now = len(os.listdir("/proc/self/fd"))
    return {
        "helpers": " ".join(map(str, sorted(helper_pids()))),
        "zombies": " ".join(map(str, zombie_children())),
        "fds": "" if now == fds else f"{fds} at the start, {now} now",
        "temp files": " ".join(str(p) for d in temps for p in Path(d).glob(f"{PREFIX}*")),
        "netns/veth": " ".join(name for name in names if name.startswith(PREFIX)),
    }


def report(soak: Soak, duration: float, left: dict[str, str]) -> None:
    n = soak.tally
    lines = {
        "seed": f"{soak.seed} (replay: --seed {soak.seed})",
        "duration": f"{duration:.1f} s ({soak.seconds:g} s of storm)",
        "starts": f"live {n['start live-sync']} sync + {n['start live-async']} async, file "
        f"{n['start file-sync']} sync + {n['start file-async']} async; "
        f"{n['client processes']} client processes with {n['client captures']} captures",
        "normal ends": f"{n['stop+drain']} stop+drain, {n['close']} close, {n['files read']} "
        f"files read to the end; {n['client closes']} clients closed",
        "helper kills": f"{n['helper kills']}: {n['kills reported']} reported (slowest "
        f"{n['slowest kill report ms']} ms), {n['kills after eof']} after a file's eof",
        "client kills": f"{n['client kills']} (their helpers gone within "
        f"{n['slowest client helpers gone ms']} ms)",
        "packets": f"{n['datagrams sent']} datagrams sent; live {n['packets expected']} "
        f"expected, {n['packets received']} received, {n['packets dropped']} dropped; "
        f"files {n['file packets']}",
        "commands": f"{n['stats']} stats, {n['set_filter']} set_filter, "
        f"{n['bad filters']} bad filters",
        "leftovers": "; ".join(f"{k}: {v or 'none'}" for k, v in left.items()),
        "failures": str(len(soak.failures) or "none"),
    }
    print("\nepcap soak report")
    for key, value in lines.items():
        print(f"  {key:<14} {value}")
    for failure in soak.failures[:50]:
        print(f"    {failure}")
    print(f"  {'result':<14} {'FAIL' if soak.failures or any(left.values()) else 'PASS'}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="storm length (60)")
    parser.add_argument("--seed", type=int, help="replay a run (default: random)")
    parser.add_argument("--client", nargs="+", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--file", help=argparse.SUPPRESS)
    parser.add_argument("--read", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client:
        client_main(args)
        return 0
    if os.geteuid() != 0:
        sys.exit("soak.py must run as root: it captures live on lo")
    fds = len(os.listdir("/proc/self/fd"))
    seed = args.seed if args.seed is not None else int.from_bytes(os.urandom(4))
    print(f"soak: seed {seed}, {args.seconds:g} s, helper {HELPER}", flush=True)
    os.environ["EPCAPD"] = str(HELPER)  # progname= is always given too
    t0 = time.monotonic()
    tmp = Path(tempfile.mkdtemp(prefix=f"{PREFIX}-"))
    try:
        soak = Soak(seed, args.seconds, tmp)
        soak.run()
    finally:
        for path in tmp.iterdir():
            path.unlink()
        tmp.rmdir()
    left = leftovers(fds)
    report(soak, time.monotonic() - t0, left)
    return 1 if soak.failures or any(left.values()) else 0


if __name__ == "__main__":
    sys.exit(main())

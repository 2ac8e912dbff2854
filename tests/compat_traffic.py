"""What the compat tests share (test_compat_pypcap.py, test_compat_pcapy.py):
the capture files they write, a veth pair into a network namespace of
their own, a watchdog that keeps a live read from waiting forever, and a
script run as the unprivileged user.

Each test runs the real pypcap or pcapy-ng (as root) and the compat module
on the same files and the same traffic, and compares what they return. A
test module imports the fixtures (``*_fixture``, named without the suffix,
so that a test's parameter does not shadow an import), and the autouse ones."""

from __future__ import annotations

import contextlib
import gc
import os
import pwd
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import epcap.compat

import pcapfiles as pf
from conftest import HELPER
from helpers import send_udp
from privileged import as_user, wait_gone

SECOND = 1_000_000_000


def records() -> list[tuple[int, int, bytes]]:
    """Packets of every size class, one cut short by the snapshot length,
    at times whose nanoseconds make pypcap's float rounding show."""
    rng = random.Random(4242)
    base = 1_767_225_600 * SECOND
    out = []
    for i in range(40):
        payload = bytes(rng.randrange(256) for _ in range(rng.choice((0, 1, 18, 200, 1400))))
        if i % 3:
            frame = pf.eth_ipv4_udp("10.0.0.1", "10.0.0.2", 1000 + i, 53, payload)
        else:
            frame = pf.eth_ipv4_tcp("10.0.0.1", "10.0.0.2", 40000, 80 + i, payload, flags="PA")
        time = base + i * 987_654_321 + rng.randrange(SECOND)
        out.append((time, len(frame), frame))
    time, length, frame = out[7]
    out[7] = (time, length + 100, frame)  # 100 bytes beyond the snapshot
    return out


def write_files(directory: Path) -> dict[str, Path]:
    """The files both modules read: pcap (micro, nano, big-endian), pcapng
    (nanosecond and microsecond resolution), other link types, a file cut
    in the middle of a packet, one no format, and times no libpcap 1.10.3
    reads as epcap does (past 2038; a fraction of a second or more)."""
    recs = records()
    files = {
        "micro.pcap": pf.pcap_bytes(recs, linktype=1),
        "nano.pcap": pf.pcap_bytes(recs, linktype=1, nano=True),
        "big.pcap": pf.pcap_bytes(recs, linktype=1, nano=True, big_endian=True, snaplen=1500),
        "nano.pcapng": pf.pcapng_bytes(recs, linktype=1),
        "micro.pcapng": pf.pcapng_bytes(recs, linktype=1, tsresol=6, snaplen=9000),
        "sll.pcap": pf.pcap_bytes(
            [(t, n + 2, pf.sll(d[14:], 0x0800)) for t, n, d in recs[:5]], linktype=113
        ),
        "raw.pcap": pf.pcap_bytes([(t, n - 14, d[14:]) for t, n, d in recs[:5]], linktype=101),
        "empty.pcap": pf.pcap_bytes([], linktype=1),
        "garbage.pcap": b"this is no capture file" * 10,
        "raw-fraction.pcap": pf.pcap_fields_bytes(
            [
                (1_767_225_600, 1_500_000_123, 60, recs[0][2][:60]),  # a second and a half
                (1_767_225_601, 999_999_999, 60, recs[1][2][:60]),
            ],
            linktype=1,
            nano=True,
        ),
        "y2040.pcap": pf.pcap_fields_bytes(
            [(2_208_988_800, 123_456, 60, recs[0][2][:60])], linktype=1
        ),
    }
    nano = files["nano.pcap"]
    files["truncated.pcap"] = nano[: 24 + 3 * 16 + sum(len(d) for _, _, d in recs[:3]) + 30]
    paths = {}
    for name, data in files.items():
        path = directory / name
        path.write_bytes(data)
        path.chmod(0o644)
        paths[name] = path
    return paths


@pytest.fixture(scope="module", name="capture_files")
def capture_files_fixture() -> Iterator[dict[str, Path]]:
    """The files of :func:`write_files`, in a directory any user may read."""
    with tempfile.TemporaryDirectory(prefix="epcap-compat-", dir="/var/tmp") as top:
        os.chmod(top, 0o755)
        yield write_files(Path(top))


@pytest.fixture(autouse=True)
def compat_defaults() -> Iterator[None]:
    """The compat modules use the source tree's helper (and nothing else
    another test left in ``epcap.compat.defaults``)."""
    epcap.compat.defaults.clear()
    epcap.compat.defaults["progname"] = str(HELPER)
    yield
    epcap.compat.defaults.clear()


def lo_frame(port: int, payload: bytes) -> bytes:
    """An Ethernet frame as lo carries them: a UDP datagram to ``port``."""
    datagram = pf.udp("127.0.0.1", "127.0.0.1", 4000, port, payload)
    return pf.ether(
        b"\x00" * 6, b"\x00" * 6, 0x0800, pf.ipv4("127.0.0.1", "127.0.0.1", 17, datagram)
    )


SO_TIMESTAMPNS = 35
"""Linux's socket option (the socket module lacks it)."""


@pytest.fixture(scope="module", autouse=True)
def kernel_timestamps() -> Iterator[None]:
    """While one socket asks for receive timestamps, the kernel stamps every
    packet once, as it enters or leaves, and every capture sees that time;
    otherwise each packet socket reads the clock as the packet reaches it,
    a microsecond or two apart, in the order the sockets were opened."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as stamped:
        stamped.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        yield


@contextlib.contextmanager
def watchdog(port: int, seconds: float = 10.0, dst: str = "127.0.0.1") -> Iterator[None]:
    """After ``seconds``, send ``watchdog`` datagrams to ``port`` every
    100 ms, so that a read waiting for a packet that never came returns
    (and the test fails on what it got) instead of waiting forever."""
    done = threading.Event()

    def bark() -> None:
        if not done.wait(seconds):
            while not done.wait(0.1):
                send_udp(dst, port, [b"watchdog"])

    thread = threading.Thread(target=bark, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()


NEAR_MAC, FAR_MAC = "02:00:00:00:0c:01", "02:00:00:00:0c:02"


class Veth:
    """A veth pair: ``near`` here (``near_address``), ``far`` in namespace
    ``ns`` (``far_address``), on a /24 of their own; IPv6 off, static
    neighbours (no ARP), so that only the tests' datagrams cross it."""

    def __init__(self) -> None:
        tag = os.getpid() % 10000
        self.ns = f"epcc{tag}"
        self.near, self.far = f"epcc{tag}a", f"epcc{tag}b"
        subnet = 100 + tag % 100
        self.network = f"10.213.{subnet}.0"
        self.netmask = "255.255.255.0"
        self.near_address, self.far_address = f"10.213.{subnet}.1", f"10.213.{subnet}.2"

    def run(self, *argv: str, inside: bool = False) -> None:
        """Run ``argv`` here, or ``inside`` the namespace."""
        prefix = ["ip", "netns", "exec", self.ns] if inside else []
        subprocess.run([*prefix, *argv], check=True, capture_output=True)

    def __enter__(self) -> Veth:
        self.remove()
        self.run("ip", "netns", "add", self.ns)
        try:
            self.run("ip", "link", "add", self.near, "address", NEAR_MAC, "type", "veth",
                     "peer", "name", self.far, "address", FAR_MAC, "netns", self.ns)  # fmt: skip
            ends = ((False, self.near, self.near_address, self.far_address, FAR_MAC),
                    (True, self.far, self.far_address, self.near_address, NEAR_MAC))  # fmt: skip
            for inside, dev, address, peer, peer_mac in ends:
                self.run("sysctl", "-q", "-w", f"net.ipv6.conf.{dev}.disable_ipv6=1", inside=inside)
                self.run("ip", "addr", "add", f"{address}/24", "dev", dev, inside=inside)
                self.run("ip", "link", "set", dev, "up", inside=inside)
                self.run("ip", "neigh", "replace", peer, "lladdr", peer_mac, "dev", dev,
                         "nud", "permanent", inside=inside)  # fmt: skip
        except BaseException:
            self.remove()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()

    def remove(self) -> None:
        subprocess.run(["ip", "netns", "del", self.ns], capture_output=True)
        subprocess.run(["ip", "link", "del", self.near], capture_output=True)

    def send_out(self, port: int, payloads: list[bytes]) -> None:
        """UDP datagrams from here to the namespace: out of ``near``."""
        send_udp(self.far_address, port, payloads)

    def send_in(self, port: int, payloads: list[bytes]) -> None:
        """UDP datagrams from the namespace to here: into ``near``."""
        code = (
            "import socket, sys\n"
            "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
            "for p in sys.argv[3:]: s.sendto(bytes.fromhex(p), (sys.argv[1], int(sys.argv[2])))\n"
        )
        subprocess.run(
            ["ip", "netns", "exec", self.ns, sys.executable, "-c", code, self.near_address,
             str(port), *(p.hex() for p in payloads)],
            check=True, capture_output=True,
        )  # fmt: skip


@pytest.fixture(scope="module", name="veth")
def veth_fixture() -> Iterator[Veth]:
    """A veth pair into a namespace of the test module's own."""
    with Veth() as pair:
        yield pair


def as_user_python(
    user: pwd.struct_passwd, helper: Path, script: str, *args: str
) -> subprocess.Popen[str]:
    """Run ``script`` as ``user`` with this Python, epcap's helper named by
    ``$EPCAPD`` (as a program that only changed its import would run it);
    stdin and stdout are pipes, text."""
    env = {"PATH": "/usr/bin:/bin", "HOME": "/", "LANG": "C.UTF-8", "EPCAPD": str(helper),
           "PYTHONDONTWRITEBYTECODE": "1"}  # fmt: skip
    return subprocess.Popen(
        [*as_user(user), sys.executable, "-c", script, *args],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=env, cwd="/",
    )  # fmt: skip


@contextlib.contextmanager
def interrupt_after(seconds: float) -> Iterator[None]:
    """KeyboardInterrupt in this thread after ``seconds``, as Ctrl-C would."""

    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGALRM, handler)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def outcomes(modules: tuple[Any, Any], call: Callable[[Any], Any]) -> tuple[Any, Any]:
    """``call(module)`` for the real module and the compat one: what each
    returned, or ``(name of its type, args)`` of what each raised (each
    module has exceptions of its own: PcapError)."""
    results = []
    for module in modules:
        try:
            results.append(call(module))
        except Exception as exc:
            results.append((type(exc).__name__, exc.args))
    return results[0], results[1]


def dropped_handle_stops_its_helper(
    open_handle: Callable[[], Any], reader_of: Callable[[Any], Any]
) -> None:
    """A compat handle has no cycle: its helper goes with the last
    reference, the handle's or that of a reader taken from it."""
    gc.disable()
    try:
        handle = open_handle()
        reader = reader_of(handle)
        pid = handle._handle.cap.pid
        del handle
        assert wait_gone({pid}, 0.5) == {pid}  # the reader holds it
        del reader
        assert wait_gone({pid}, 5) == set()
    finally:
        gc.enable()

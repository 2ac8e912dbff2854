"""Running captures under control, many at once: inject, runtime filters,
statistics, fanout, CPU affinity and the lifecycle guarantees. Live, as root,
on lo and on veth pairs whose far ends sit in network namespaces that the
tests create and remove. Traffic goes only to those namespaces (198.18.0.0/15,
the benchmarking range) or to 127.0.0.1."""

from __future__ import annotations

import os
import select
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import epcap

import pcapfiles as pf
from conftest import HELPER, helper_pids, proc_status, start, start_file, zombie_children
from helpers import send_udp

pytestmark = pytest.mark.root

PAIRS = 4
ETHERTYPE_TEST = 0x88B5  # IEEE 802 local experimental


class Pair:
    """veth pair i: `near` in this namespace (198.18.i.1), `far` in netns `ns` (198.18.i.2)."""

    def __init__(self, i: int) -> None:
        self.near, self.far, self.ns = f"epcv{i}a", f"epcv{i}b", f"epcap-t{i}"
        self.near_ip, self.far_ip = f"198.18.{i}.1", f"198.18.{i}.2"


def ip(*args: str) -> None:
    """Run ip(8); a failure raises with ip's own message."""
    done = subprocess.run(["ip", *args], capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"ip {' '.join(args)}: status {done.returncode}: {done.stderr.strip()}")


def remove_pairs(pairs: list[Pair]) -> None:
    """Remove the pairs' namespaces and near ends, and wait until the kernel
    has destroyed them (it does so a moment after `ip netns del`), so that
    the next fixture that makes these names finds them free. A stale pair,
    left by a run that was killed, is removed the same way."""
    for p in pairs:
        subprocess.run(["ip", "netns", "del", p.ns], capture_output=True)
        subprocess.run(["ip", "link", "del", p.near], capture_output=True)
    deadline = time.monotonic() + 10
    while left := [
        p.near for p in pairs
        if subprocess.run(["ip", "link", "show", p.near], capture_output=True).returncode == 0
    ]:  # fmt: skip
        if time.monotonic() >= deadline:
            raise RuntimeError(f"veth {', '.join(left)} still there 10 s after removal")
        time.sleep(0.05)


@pytest.fixture(scope="module")
def pairs() -> Iterator[list[Pair]]:
    made = [Pair(i) for i in range(PAIRS)]
    remove_pairs(made)
    try:
        for p in made:
            ip("netns", "add", p.ns)
            ip("link", "add", p.near, "type", "veth", "peer", "name", p.far, "netns", p.ns)
            for where in ([], ["-n", p.ns]):
                dev = p.far if where else p.near
                subprocess.run(
                    ["sysctl", "-q", "-w", f"net.ipv6.conf.{dev}.disable_ipv6=1"]
                    if not where
                    else ["ip", "netns", "exec", p.ns, "sysctl", "-q", "-w",
                          f"net.ipv6.conf.{dev}.disable_ipv6=1"],
                    check=True,
                )  # fmt: skip
            ip("addr", "add", f"{p.near_ip}/24", "dev", p.near)
            ip("link", "set", p.near, "up")
            ip("-n", p.ns, "addr", "add", f"{p.far_ip}/24", "dev", p.far)
            ip("-n", p.ns, "link", "set", p.far, "up")
            ip("-n", p.ns, "link", "set", "lo", "up")
        yield made
    finally:
        remove_pairs(made)


def collect(cap: epcap.Capture, out: list[epcap.Packet]) -> threading.Thread:
    """Read a capture in a thread until it is stopped."""
    thread = threading.Thread(target=lambda: out.extend(cap), daemon=True)
    thread.start()
    return thread


def test_inject_100_frames_byte_for_byte(pairs: list[Pair]) -> None:
    p = pairs[0]
    frames = [
        b"\xff" * 6 + b"\x02\x00\x00\x00\x00\x01" + struct.pack(">H", ETHERTYPE_TEST)
        + struct.pack(">I", i) + os.urandom(46 + i * 13 % 1400)
        for i in range(100)
    ]  # fmt: skip
    flt = f"ether proto {ETHERTYPE_TEST:#x}"
    with (
        start(interface=p.far, filter=flt, exec=["ip", "netns", "exec", p.ns]) as rx,
        start(interface=p.near, filter=flt, inject=True) as tx,
    ):
        got: list[epcap.Packet] = []
        reader = collect(rx, got)
        for frame in frames:
            assert tx.send(frame) == len(frame)
        deadline = time.monotonic() + 10
        while len(got) < 100 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.2)  # anything extra would arrive now
        rx.stop()
        reader.join(5)
    assert [pkt.data for pkt in got] == frames
    assert [pkt.length for pkt in got] == [len(f) for f in frames]


def test_bad_sends_are_refused_and_the_capture_goes_on(pairs: list[Pair]) -> None:
    frame = b"\xff" * 12 + struct.pack(">H", ETHERTYPE_TEST) + bytes(50)
    with start(interface=pairs[0].near) as cap:
        with pytest.raises(epcap.SendError, match="inject=True") as info:
            cap.send(frame)
        assert info.value.errno == "EPERM"
        assert cap.stats()["packets"] >= 0
    with start(interface=pairs[0].near, inject=True) as cap:
        with pytest.raises(epcap.SendError, match="Message too long") as info:
            cap.send(frame + bytes(70000))
        assert info.value.errno == "EMSGSIZE"
        assert cap.send(frame) == len(frame)
        with pytest.raises(TypeError):
            cap.send("text")  # type: ignore[arg-type]


def test_runtime_filter_switch(udp_port: int) -> None:
    a = udp_port
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as other:
        other.bind(("127.0.0.1", 0))
        b = other.getsockname()[1]
        stop = threading.Event()

        def traffic() -> None:
            while not stop.is_set():
                send_udp("127.0.0.1", a, [b"A"])
                send_udp("127.0.0.1", b, [b"B"])
                time.sleep(0.002)

        with start(interface="lo", filter=f"udp port {a}") as cap:
            sender = threading.Thread(target=traffic, daemon=True)
            sender.start()
            before, after = [], []
            try:
                for pkt in cap:
                    before.append(pkt.data[-1:])
                    if len(before) == 50:
                        break
                with pytest.raises(epcap.FilterError, match="syntax error"):
                    cap.set_filter("udp port")  # the old filter stays
                cap.set_filter(f"udp port {b}")
                predating = cap.pending  # received before the acknowledgement
                deadline = time.monotonic() + 0.5
                for pkt in cap:
                    after.append(pkt.data[-1:])
                    if time.monotonic() > deadline and len(after) > predating + 50:
                        break
            finally:
                stop.set()
                sender.join()
    assert set(before) == {b"A"}
    assert set(after[predating:]) == {b"B"}
    assert len(after) - predating > 50


NAMES = ["tcp port http", "host localhost", "host example.com", "net loopback",
         "ether host somewhere", "ip proto ospf and host localhost"]  # fmt: skip


def test_names_do_not_resolve_in_the_chroot(udp_port: int) -> None:
    """Every kind of name a filter can hold (services, hosts, whose lookup
    asks for the host name, networks, ethers) is a FilterError: the capture
    goes on, and is never killed by the sandbox."""
    with start(interface="lo", filter=f"udp port {udp_port}") as cap:
        for name in NAMES:
            with pytest.raises(epcap.FilterError, match="do not resolve inside the helper's"):
                cap.set_filter(name)
        cap.set_filter(f"udp port {udp_port}")  # numbers work
        send_udp("127.0.0.1", udp_port, [b"still here"])
        assert next(iter(cap)).data.endswith(b"still here")


def test_stats_count_drops_of_a_slow_reader(pairs: list[Pair]) -> None:
    p = pairs[1]
    flood, port = 60000, 9999
    with start(interface=p.near, filter=f"udp and dst port {port}", buffer=1 << 20) as cap:
        send_udp(p.far_ip, port, [bytes(200)] * flood)
        time.sleep(0.5)  # read nothing while the flood lands
        mid = cap.stats()
        assert mid["dropped"] > 0, mid
        assert mid["delayed"] > 0, mid  # the helper waited for this reader
        cap.stop()
        delivered = sum(1 for _ in cap)
    final = cap.final_stats
    assert final is not None
    assert final["packets"] == delivered
    assert final["received"] == flood
    assert final["received"] == final["packets"] + final["dropped"]


def test_a_quiet_capture_drops_nothing(udp_port: int) -> None:
    with start(interface="lo", filter=f"udp port {udp_port}", stats_interval=0.05) as cap:
        for _ in range(20):
            send_udp("127.0.0.1", udp_port, [b"q"])
            time.sleep(0.01)
        time.sleep(0.2)
        stats = cap.stats()
        periodic = cap.last_stats
    assert stats["dropped"] == 0 and stats["if_dropped"] == 0
    assert stats["received"] == 40  # lo: each datagram passes the socket out and in
    assert periodic is not None and set(periodic) >= {"received", "dropped", "packets"}


def test_counters_survive_libpcaps_32_bit_wrap(
    udp_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The test-hook helper starts libpcap's received counter 5 below 2**32.
    monkeypatch.setenv("EPCAPD_TEST_STATS_OFFSET", str(2**32 - 5))
    with epcap.start(
        interface="lo", filter=f"udp port {udp_port}", progname=HELPER.parent / "epcapd-testhook"
    ) as cap:
        before = cap.stats()["received"]
        send_udp("127.0.0.1", udp_port, [b"w"] * 20)
        deadline = time.monotonic() + 5  # a loaded machine may deliver late
        while (after := cap.stats()["received"]) < 40 and time.monotonic() < deadline:
            time.sleep(0.05)
    assert before == 0
    assert after == 40  # lo: out and in; the raw counter wrapped past 2**32 on the way


def test_16_captures_on_4_pairs_each_get_their_own(pairs: list[Pair]) -> None:
    caps, got, readers = {}, {}, []
    try:
        for p in pairs:
            for j in range(4):
                port = 7100 + j
                key = (p.near, port)
                caps[key] = start(interface=p.near, filter=f"udp and dst port {port}")
                got[key] = []
                readers.append(collect(caps[key], got[key]))
        assert len(caps) == 16 and len({c.pid for c in caps.values()}) == 16
        for p in pairs:
            for j in range(4):
                send_udp(p.far_ip, 7100 + j, [f"{p.near}:{j}:{k}".encode() for k in range(10)])
        time.sleep(0.5)
    finally:
        for cap in caps.values():
            cap.stop()
        for reader in readers:
            reader.join(5)
        for cap in caps.values():
            cap.close()
    for (near, port), pkts in got.items():
        j = port - 7100
        assert [pkt.data[42:] for pkt in pkts] == [f"{near}:{j}:{k}".encode() for k in range(10)]


def test_fanout_splits_flows_across_a_cluster(pairs: list[Pair]) -> None:
    p, port, flows, per_flow = pairs[2], 7000, 400, 3
    members = [
        start(interface=p.near, filter=f"udp and dst port {port}", cluster_id=4242)
        for _ in range(4)
    ]
    got: list[list[epcap.Packet]] = [[] for _ in members]
    readers = [collect(cap, out) for cap, out in zip(members, got, strict=True)]
    try:
        for flow in range(flows):
            payloads = [struct.pack(">HB", flow, k) for k in range(per_flow)]
            send_udp(p.far_ip, port, payloads, sport=20000 + flow)
        time.sleep(0.5)
    finally:
        for cap in members:
            cap.stop()
        for reader in readers:
            reader.join(5)
        for cap in members:
            cap.close()
    seen = [[struct.unpack(">HB", pkt.data[42:45]) for pkt in member] for member in got]
    everything = [x for member in seen for x in member]
    assert sorted(everything) == [(f, k) for f in range(flows) for k in range(per_flow)]
    owners = {
        f: {i for i, member in enumerate(seen) for g, _ in member if g == f} for f in range(flows)
    }
    assert all(len(o) == 1 for o in owners.values()), "a flow was split across members"
    assert sum(1 for member in seen if member) >= 2, "the hash sent everything to one member"


def test_cpu_affinity_pins_the_helper() -> None:
    cpu = max(os.sched_getaffinity(0))
    with start(interface="lo", cpu_affinity=str(cpu)) as cap:
        assert proc_status(cap.pid)["Cpus_allowed_list"] == str(cpu)
    everything = ",".join(str(c) for c in sorted(os.sched_getaffinity(0)))
    with start(interface="lo", cpu_affinity=everything) as cap:
        listed = proc_status(cap.pid)["Cpus_allowed_list"]
    assert listed in (everything, f"{min(os.sched_getaffinity(0))}-{cpu}")


@pytest.mark.usefixtures("no_leftovers")
@pytest.mark.parametrize("cpus", ["", "x", "1-", "3-1", "0,,1", "-1", "5000", "1023"])
def test_bad_cpu_lists_are_refused_before_spawning(cpus: str) -> None:
    with pytest.raises(ValueError, match="cpu_affinity"):
        start(interface="lo", cpu_affinity=cpus)


OWNER = """
import sys, time, epcap
caps = [epcap.start(interface="lo", filter="udp port 9", progname=sys.argv[1]) for _ in range(8)]
print(" ".join(str(c.pid) for c in caps), flush=True)
time.sleep(60)
"""


def test_killing_the_owner_ends_its_helpers() -> None:
    owner = subprocess.Popen(
        [sys.executable, "-c", OWNER, str(HELPER)], stdout=subprocess.PIPE, text=True
    )
    assert owner.stdout is not None
    pids = [int(x) for x in owner.stdout.readline().split()]
    assert len(pids) == 8 and set(pids) <= helper_pids()
    owner.send_signal(signal.SIGKILL)
    owner.wait()
    deadline = time.monotonic() + 2
    while set(pids) & helper_pids():
        assert time.monotonic() < deadline, f"helpers alive: {set(pids) & helper_pids()}"
        time.sleep(0.02)


def test_a_killed_helper_is_reported_within_2s(udp_port: int) -> None:
    with start(interface="lo", filter=f"udp port {udp_port}") as cap:
        threading.Timer(0.2, os.kill, (cap.pid, signal.SIGKILL)).start()
        t0 = time.monotonic()
        with pytest.raises(epcap.HelperExitedError, match="SIGKILL") as info:
            list(cap)
        assert time.monotonic() - t0 < 2
        assert info.value.returncode == -signal.SIGKILL
    assert zombie_children() == []


def test_200_cycles_leave_nothing_behind(udp_port: int) -> None:
    fds = len(os.listdir("/proc/self/fd"))
    helpers = helper_pids()
    threads = threading.active_count()
    for i in range(200):
        cap = start(interface="lo", filter=f"udp port {udp_port}")
        if i % 2:
            cap.close()
        else:
            with cap:
                pass
    assert len(os.listdir("/proc/self/fd")) == fds
    assert helper_pids() == helpers
    assert zombie_children() == []
    assert threading.active_count() <= threads + 1  # at most the one reaper thread
    assert Path("/proc/self/fd").is_dir()


# -- paused starts and the direction at run time ---------------------------------


def _take(cap: epcap.Capture, within: float) -> list[epcap.Packet]:
    """Every packet that arrives within `within` seconds."""
    got, deadline = [], time.monotonic() + within
    while (left := deadline - time.monotonic()) > 0:
        try:
            packet = cap.next(timeout=left)
        except TimeoutError:
            break
        assert packet is not None
        got.append(packet)
    return got


def test_a_paused_capture_filters_what_the_ring_already_holds(udp_port: int) -> None:
    """paused=True: the helper takes nothing from the ring until the first
    read, so a filter set meanwhile applies also to the packets that
    arrived before it, as libpcap's pcap_setfilter before the first read."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as other:
        other.bind(("127.0.0.1", 0))
        b = other.getsockname()[1]
        with start(interface="lo", paused=True, filter="udp") as cap:
            assert cap.paused and cap.settings["paused"] is True
            send_udp("127.0.0.1", udp_port, [b"a%d" % i for i in range(5)])
            send_udp("127.0.0.1", b, [b"b%d" % i for i in range(5)])
            time.sleep(0.05)  # in the ring, which nobody reads
            assert cap.pending == 0
            cap.set_filter(f"udp port {udp_port}")
            send_udp("127.0.0.1", udp_port, [b"a%d" % i for i in range(5, 10)])
            send_udp("127.0.0.1", b, [b"b%d" % i for i in range(5, 10)])
            assert cap.paused  # set_filter does not resume
            got = _take(cap, 0.5)
            assert not cap.paused
            stats = cap.stats()
    assert [p.data[42:] for p in got] == [b"a%d" % i for i in range(10)]
    assert stats["received"] >= 20  # the socket saw the others and the filter left them


def test_the_direction_changes_at_run_time_and_applies_to_the_ring(udp_port: int) -> None:
    """set_direction: libpcap checks the direction as it reads the ring.
    On lo every packet is "in" (libpcap leaves out lo's outgoing copy)."""
    with start(interface="lo", paused=True, filter=f"udp port {udp_port}") as cap:
        cap.set_direction("out")
        send_udp("127.0.0.1", udp_port, [b"first"] * 5)
        assert _take(cap, 0.4) == []  # read, and left out
        cap.set_direction("in")
        send_udp("127.0.0.1", udp_port, [b"second"] * 5)
        assert [p.data[42:] for p in _take(cap, 0.5)] == [b"second"] * 5
        with pytest.raises(ValueError, match="direction must be one of in, out, inout"):
            cap.set_direction("sideways")
        with pytest.raises(TypeError):
            cap.set_direction(1)  # type: ignore[arg-type]


def test_a_paused_file_is_read_only_after_its_filter(tmp_path: Path) -> None:
    """A file read paused gives, after set_filter, exactly what start(filter=)
    gives: nothing was read before the filter. Its direction cannot be
    set: libpcap's own refusal."""
    path = tmp_path / "s.pcap"
    pf.write_pcap(path, pf.sample_records(), linktype=pf.LINKTYPE_ETHERNET, nano=True)
    with start_file(path, filter="tcp") as cap:
        expected = [(p.time, p.data) for p in cap]
    with start_file(path, paused=True) as cap:
        time.sleep(0.1)
        assert cap.pending == 0 and cap.settings["net"] is None
        with pytest.raises(epcap.CaptureError, match="not supported on savefiles"):
            cap.set_direction("in")
        cap.set_filter("tcp")
        got = [(p.time, p.data) for p in cap]
    assert got == expected and len(got) == 8


def test_resume_and_close_of_a_paused_capture(tmp_path: Path, udp_port: int) -> None:
    """resume() ends the hold without a read; a paused capture closed at
    once takes nothing and leaves nothing behind."""
    path = tmp_path / "s.pcap"
    pf.write_pcap(path, pf.sample_records(), linktype=pf.LINKTYPE_ETHERNET, nano=True)
    with start_file(path, paused=True) as cap:
        time.sleep(0.2)
        assert proc_status(cap.pid)["State"][0] != "Z"  # it holds, the file unread
        cap.resume()
        assert not cap.paused
        deadline = time.monotonic() + 5  # it reads on by itself, to its eof
        while proc_status(cap.pid)["State"][0] != "Z" and time.monotonic() < deadline:
            time.sleep(0.01)
        assert proc_status(cap.pid)["State"][0] == "Z"
        cap.resume()  # nothing more, and no frame: the helper has ended
        assert len(list(cap)) == 15
    with start(interface="lo", paused=True, filter=f"udp port {udp_port}") as cap:
        send_udp("127.0.0.1", udp_port, [b"x"] * 3)
        pid, fd = cap.pid, cap.fileno()
        assert select.select([fd], [], [], 0.3)[0] == []  # it holds: nothing to read
    assert cap.fileno() == -1 and fd >= 0
    assert cap.final_stats is not None and cap.final_stats["packets"] == 0
    assert pid not in helper_pids() and zombie_children() == []


def test_settings_carry_the_interfaces_network() -> None:
    """pcap_lookupnet's answer, as pcapy's getnet() and getmask() give it."""
    with start(interface="lo") as cap:
        assert (cap.settings["net"], cap.settings["netmask"]) == ("127.0.0.0", "255.0.0.0")
        assert cap.settings["paused"] is False

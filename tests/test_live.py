"""Live captures on lo through the real helper, as root (CI is root)."""

from __future__ import annotations

import gc
import os
import socket
import struct
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

import epcap

from conftest import HELPER, helper_pids, proc_status, start, zombie_children
from helpers import send_udp

pytestmark = pytest.mark.root

UDP_OVERHEAD = 14 + 20 + 8  # Ethernet (lo's DLT_EN10MB), IPv4, UDP


def live(port: int, **options: object) -> epcap.Capture:
    """A capture on lo of the UDP datagrams to or from `port`."""
    return start(interface="lo", filter=f"udp and port {port}", **options)


@contextmanager
def watchdog(cap: epcap.Capture, seconds: float) -> Iterator[None]:
    """Stop the capture after `seconds`, so a missing packet fails, never hangs."""
    timer = threading.Timer(seconds, cap.stop)
    timer.start()
    try:
        yield
    finally:
        timer.cancel()


def take(cap: epcap.Capture, count: int, seconds: float = 10.0) -> list[epcap.Packet]:
    got: list[epcap.Packet] = []
    with watchdog(cap, seconds):
        for pkt in cap:
            got.append(pkt)
            if len(got) == count:
                break
    return got


def test_1000_datagrams_exactly(udp_port: int) -> None:
    port = udp_port
    payloads = [struct.pack(">I", i) + os.urandom(i % 700) for i in range(1000)]
    with live(port) as cap:
        got: list[epcap.Packet] = []
        reader = threading.Thread(target=lambda: got.extend(take(cap, 1000)))
        reader.start()  # read while sending, as a capture is meant to be used
        for i in range(0, len(payloads), 20):
            send_udp("127.0.0.1", port, payloads[i : i + 20])
            time.sleep(0.002)
        reader.join()
        # Nothing beyond the 1000 arrives: stop, and what is left must be empty.
        cap.stop()
        assert list(cap) == []
        assert cap.final_stats is not None and cap.final_stats["packets"] == 1000
        assert cap.final_stats["dropped"] == 0
    assert len(got) == 1000
    assert [p.data[UDP_OVERHEAD:] for p in got] == payloads
    assert [p.length for p in got] == [UDP_OVERHEAD + len(p) for p in payloads]
    assert all(p.caplen == p.length and p.dlt == 1 for p in got)
    times = [p.time for p in got]
    assert times == sorted(times)
    assert abs(times[0] / 1e9 - time.time()) < 60


@pytest.mark.parametrize("timeout", [1, 20])
def test_stop_and_set_filter_keep_what_was_sent_just_before(udp_port: int, timeout: int) -> None:
    # The kernel hands libpcap a block of packets only when it retires the
    # block, up to two timeouts after it opened: a stop or a filter switch
    # right after a burst must wait for it (the soak found both losing it).
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as other:
        other.bind(("127.0.0.1", 0))  # no ICMP port unreachable for the B datagrams
        a, b = udp_port, other.getsockname()[1]
        want = sorted([b"A%d" % i for i in range(50)] + [b"B%d" % i for i in range(30)])
        for _ in range(5):
            with live(a, timeout=timeout) as cap:
                send_udp("127.0.0.1", a, [b"A%d" % i for i in range(50)])
                cap.set_filter(f"udp and port {b}")
                send_udp("127.0.0.1", b, [b"B%d" % i for i in range(30)])
                cap.stop()
                got = [p.data[UDP_OVERHEAD:] for p in cap]
            assert sorted(got) == want
            assert cap.final_stats is not None and cap.final_stats["packets"] == 80


def test_a_60000_byte_datagram_arrives_whole(udp_port: int) -> None:
    port = udp_port
    payload = os.urandom(60000)
    with live(port) as cap:
        send_udp("127.0.0.1", port, [payload])
        (pkt,) = take(cap, 1)
    assert pkt.length == pkt.caplen == UDP_OVERHEAD + 60000
    assert pkt.data[UDP_OVERHEAD:] == payload


@pytest.mark.parametrize("timeout", [1, 250, "immediate", None])
def test_the_timeout_asked_for_is_in_effect(udp_port: int, timeout: int | str | None) -> None:
    with live(udp_port, timeout=timeout) as cap:
        assert cap.settings["timeout"] == ("never" if timeout is None else timeout)


def test_snaplen_cuts_but_keeps_the_wire_length(udp_port: int) -> None:
    port = udp_port
    with live(port, snaplen=64) as cap:
        assert cap.snaplen == 64
        send_udp("127.0.0.1", port, [b"z" * 1000])
        (pkt,) = take(cap, 1)
    assert (pkt.caplen, pkt.length) == (64, UDP_OVERHEAD + 1000)


def test_helper_runs_as_nobody_in_the_chroot(udp_port: int) -> None:
    port = udp_port
    with live(port) as cap:
        status = proc_status(cap.pid)
        assert status["Uid"].split() == ["65534"] * 4
        assert status["Gid"].split() == ["65534"] * 4
        assert status["Groups"] == ""
        assert status["NoNewPrivs"] == "1"
        assert status["CapEff"] == "0000000000000000"
        chroot = os.path.realpath(HELPER.parent / "empty")
        assert os.readlink(f"/proc/{cap.pid}/root") == chroot
        assert cap.settings["chroot"] == chroot
        assert (cap.settings["uid"], cap.settings["gid"], cap.settings["groups"]) == (
            65534, 65534, (),
        )  # fmt: skip
        stats = cap.stats()
        assert set(stats) == {"packets", "delayed", "received", "dropped", "if_dropped"}


def test_close_and_abandon_leave_no_helper_and_no_zombie(udp_port: int) -> None:
    port = udp_port
    cap = live(port)
    pid = cap.pid
    cap.close()
    assert pid not in helper_pids() and zombie_children() == []

    cap = live(port)
    pid = cap.pid
    with pytest.warns(ResourceWarning):
        del cap
        gc.collect()
    deadline = time.monotonic() + 3
    while pid in helper_pids() or zombie_children():
        assert time.monotonic() < deadline, "abandoned helper still running"
        time.sleep(0.05)


@pytest.mark.usefixtures("no_leftovers")
@pytest.mark.parametrize(
    "options, exc, match",
    [
        ({"interface": "lo", "filter": "udp and port"}, epcap.FilterError, "syntax error"),
        ({"interface": "lo", "filter": "tcp port nosuchservice"}, epcap.FilterError,
         "nosuchservice"),
        ({"interface": "nosuchif0"}, epcap.NoSuchDeviceError, "nosuchif0"),
        ({"interface": "lo", "user": "nosuchuser"}, epcap.PrivilegeDropError,
         "unknown user 'nosuchuser'"),
        ({"interface": "lo", "group": "nosuchgroup"}, epcap.PrivilegeDropError,
         "unknown group 'nosuchgroup'"),
        ({"interface": "lo", "chroot": "/nonexistent/epcap"}, epcap.PrivilegeDropError,
         "No such file or directory"),
    ],
)  # fmt: skip
def test_setup_errors_are_specific_fast_and_clean(
    options: dict[str, object], exc: type[epcap.EpcapError], match: str
) -> None:
    t0 = time.monotonic()
    with pytest.raises(exc, match=match):
        start(**options)
    assert time.monotonic() - t0 < 2


@pytest.mark.usefixtures("no_leftovers")
def test_a_writable_chroot_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir(mode=0o777)
    root.chmod(0o777)
    with pytest.raises(epcap.PrivilegeDropError, match="writable by no one else"):
        start(interface="lo", chroot=root)


def test_user_and_group_options(udp_port: int) -> None:
    port = udp_port
    with live(port, user="daemon", group="nogroup") as cap:
        status = proc_status(cap.pid)
        assert status["Uid"].split()[0] == "1"  # daemon
        assert status["Gid"].split()[0] == "65534"  # nogroup

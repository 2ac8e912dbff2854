"""epcap.compat.pypcap against the real pypcap 1.3, run as root on the same
files and the same traffic (on lo, and on a veth pair into a namespace):
the same tuples, timestamps, lengths, end-of-file behaviour, exception
types and libpcap's messages; and the compat module as a real
unprivileged user, with a helper installed as people install it."""

from __future__ import annotations

import ipaddress
import json
import pwd
import time
from collections.abc import Callable
from itertools import islice
from pathlib import Path
from typing import Any

import pytest

import epcap
import epcap.compat.pypcap as compat

import pcapfiles as pf
from compat_traffic import (  # noqa: F401 - the fixtures
    Veth,
    as_user_python,
    capture_files_fixture,
    compat_defaults,
    dropped_handle_stops_its_helper,
    interrupt_after,
    kernel_timestamps,
    lo_frame,
    outcomes,
    veth_fixture,
    watchdog,
)
from helpers import send_udp

real: Any = pytest.importorskip("pcap")  # the real pypcap

READABLE = ["micro.pcap", "nano.pcap", "big.pcap", "nano.pcapng", "micro.pcapng", "sll.pcap",
            "raw.pcap", "empty.pcap", "raw-fraction.pcap", "truncated.pcap"]  # fmt: skip


def both(call: Callable[[Any], Any]) -> tuple[Any, Any]:
    """compat_traffic.outcomes of the real module and the compat one."""
    return outcomes((real, compat), call)


# -- files -------------------------------------------------------------------


@pytest.mark.parametrize("in_ns", [False, True])
@pytest.mark.parametrize("name", READABLE)
def test_files_iterate_to_the_same_tuples(
    capture_files: dict[str, Path], name: str, in_ns: bool
) -> None:
    path = str(capture_files[name])
    want, got = both(lambda pcap: list(pcap.pcap(path, timestamp_in_ns=in_ns)))
    assert got == want
    kinds = [(type(ts), type(buf)) for ts, buf in want]
    assert (
        [(type(ts), type(buf)) for ts, buf in got]
        == (  # float or int seconds, bytes
            kinds
            if name != "raw-fraction.pcap" or not in_ns
            else [(epcap.RawTime, bytes), *kinds[1:]]
        )
    )  # an invalid fraction: an epcap.RawTime, the int pypcap gives and its fields
    assert len(got) == {"empty.pcap": 0, "truncated.pcap": 3, "sll.pcap": 5, "raw.pcap": 5,
                        "raw-fraction.pcap": 2}.get(name, 40)  # fmt: skip


@pytest.mark.parametrize("name", READABLE[:-1])
def test_files_have_the_same_attributes(capture_files: dict[str, Path], name: str) -> None:
    path = str(capture_files[name])

    def attributes(pcap: Any) -> tuple[Any, ...]:
        p = pcap.pcap(path)
        return (p.name, p.snaplen, p.dloff, p.precision, p.datalink(), p.filter,
                p.timestamp_in_ns, p.getnonblock(), p.geterr())  # fmt: skip

    want, got = both(attributes)
    assert got == want
    assert got[0] == path


def test_one_place_for_every_way_of_reading(capture_files: dict[str, Path]) -> None:
    path = str(capture_files["nano.pcapng"])

    def transcript(pcap: Any) -> list[Any]:
        p = pcap.pcap(path, timestamp_in_ns=True)
        seen: list[Any] = []
        out: list[Any] = []
        out.append(p.dispatch(3, lambda ts, buf, *args: seen.append((ts, buf, args)), "a", 1))
        out.append(next(p))
        out.append(p.loop(2, lambda ts, buf: seen.append((ts, buf))))
        out.append(list(islice(iter(p), 2)))
        out.append(p.readpkts()[:1])  # a file: every packet left
        out.append(p.dispatch(0, lambda *a: None))
        out.append(p.dispatch(-1, lambda *a: None))
        out.append(p.readpkts())
        out.append(list(p))
        out.append(p.loop(0, lambda *a: None))
        out.append(next(p, "end"))
        return [*out, seen]

    want, got = both(transcript)
    assert got == want
    assert got[0] == 3 and got[5] == 0 and got[-1][0][2] == ("a", 1)


def test_a_file_dispatches_every_packet_to_the_end(capture_files: dict[str, Path]) -> None:
    path = str(capture_files["micro.pcap"])

    def counts(pcap: Any) -> list[int]:
        p = pcap.pcap(path)
        return [p.dispatch(n, lambda *a: None) for n in (5, 0, 5, -1)]

    want, got = both(counts)
    assert got == want == [5, 35, 0, 0]


def test_setfilter_before_the_first_read_filters_every_packet(
    capture_files: dict[str, Path],
) -> None:
    path = str(capture_files["nano.pcap"])

    def filtered(pcap: Any) -> list[Any]:
        p = pcap.pcap(path)
        p.setfilter("tcp and dst port 83")
        first = next(p)
        p2 = pcap.pcap(path)
        p2.setfilter("tcp")
        return [p.filter, first, list(p), p2.filter, list(p2)]

    want, got = both(filtered)
    assert got == want
    assert len(got[4]) == 14 and got[2] == []


def test_a_bad_filter_raises_oserror_and_keeps_the_old_one(
    capture_files: dict[str, Path],
) -> None:
    path = str(capture_files["nano.pcap"])

    def bad(pcap: Any) -> list[Any]:
        p = pcap.pcap(path)
        p.setfilter("udp")
        try:
            p.setfilter("no such filter")
        except OSError as exc:
            raised = (type(exc).__name__, exc.args)
        return [raised, p.filter, len(list(p))]

    want, got = both(bad)
    assert got == want
    assert got[0] == ("OSError", (b"can't parse filter expression: syntax error",))
    assert got[1:] == ["no such filter", 26]


def test_what_a_file_cannot_do(capture_files: dict[str, Path]) -> None:
    path = str(capture_files["nano.pcap"])

    def refusals(pcap: Any) -> list[Any]:
        p = pcap.pcap(path)
        out: list[Any] = [p.setdirection(pcap.PCAP_D_IN), p.geterr()]
        for call in (p.stats, lambda: p.sendpacket(b"\x00" * 60)):
            try:
                out.append(call())
            except OSError as exc:
                out.append((type(exc), exc.args, p.geterr()))
        out += [p.setnonblock(), p.getnonblock(), len(list(p))]
        return out

    want, got = both(refusals)
    assert got == want
    assert got[2][1] == (b"Statistics aren't available from savefiles",)
    assert got[3][1] == (b"Sending packets isn't supported on savefiles",)


def test_callback_exceptions(capture_files: dict[str, Path]) -> None:
    path = str(capture_files["nano.pcap"])

    def raising(pcap: Any) -> list[Any]:
        p = pcap.pcap(path, timestamp_in_ns=True)
        calls: list[int] = []

        def callback(ts: int, buf: bytes) -> None:
            calls.append(ts)
            if len(calls) % 2 == 0:
                raise ValueError(len(calls))

        out: list[Any] = []
        for run in (lambda: p.dispatch(5, callback), lambda: p.loop(0, callback)):
            try:
                out.append(run())
            except ValueError as exc:
                out.append(exc.args)  # dispatch goes on, raises the last; loop stops
            out.append(next(p))
        return [*out, len(calls)]

    want, got = both(raising)
    assert got == want
    assert got[0] == (4,) and got[2] == (6,) and got[-1] == 6


def test_a_damaged_file_ends_iteration_and_dispatch_returns_minus_one(
    capture_files: dict[str, Path],
) -> None:
    path = str(capture_files["truncated.pcap"])

    def damaged(pcap: Any) -> list[Any]:
        p = pcap.pcap(path)
        q = pcap.pcap(path)
        seen: list[Any] = []
        return [len(list(p)), p.geterr(), q.dispatch(-1, lambda *a: seen.append(a)),
                q.geterr(), len(seen), q.dispatch(-1, lambda *a: None), list(q)]  # fmt: skip

    want, got = both(damaged)
    assert got == want
    assert got[2] == -1 and got[1].startswith(b"truncated dump file")


@pytest.mark.parametrize("name", ["missing.pcap", "garbage.pcap", ".", "nosuchdev0"])
def test_what_cannot_be_opened(capture_files: dict[str, Path], name: str) -> None:
    # pypcap tries a file first (here: none, not one, a directory), then an interface
    path = name if name == "nosuchdev0" else str(capture_files["garbage.pcap"].parent / name)
    want, got = both(lambda pcap: pcap.pcap(path))
    assert got == want
    assert got[0] == "OSError" and "No such device exists" in got[1][0]


def test_close(capture_files: dict[str, Path]) -> None:
    p = compat.pcap(str(capture_files["nano.pcap"]))
    assert len(next(p)) == 2
    p.close()
    p.close()
    for call in (lambda: next(p), p.datalink, p.stats, lambda: p.setfilter("udp"),
                 lambda: p.dispatch(1, print), lambda: p.loop(1, print)):  # fmt: skip
        with pytest.raises(ValueError, match="pcap is closed"):
            call()


@pytest.mark.root
def test_a_dropped_handle_stops_its_helper() -> None:
    dropped_handle_stops_its_helper(lambda: compat.pcap("lo", timeout_ms=5), iter)


def test_what_needs_libpcap_in_this_process(capture_files: dict[str, Path]) -> None:
    p = compat.pcap(str(capture_files["nano.pcap"]))
    for call in (p.fileno, lambda: p.fd, lambda: compat.bpf(b"udp")):
        with pytest.raises(NotImplementedError, match="helper"):
            call()
    p.close()


def test_module_constants() -> None:
    names = [n for n in dir(real) if n.startswith(("DLT_", "PCAP_"))]
    assert len(names) == 21
    assert {n: getattr(compat, n) for n in names} == {n: getattr(real, n) for n in names}
    assert compat.dltoff == real.dltoff
    assert compat.__version__ == real.__version__
    assert compat.ex_name(b"eth0") == real.ex_name(b"eth0")


def test_times_past_2038_are_unsigned(capture_files: dict[str, Path]) -> None:
    # libpcap 1.10.3 reads a pcap file's seconds as signed: pypcap goes back to 1900
    path = str(capture_files["y2040.pcap"])
    want, got = both(lambda pcap: [ts for ts, _ in pcap.pcap(path, timestamp_in_ns=True)])
    assert got == [2_208_988_800_123_456_000]
    assert want == [got[0] - (1 << 32) * 1_000_000_000]


# -- devices -----------------------------------------------------------------


def test_findalldevs_lookupdev_lookupnet(veth: Veth) -> None:
    for _ in range(10):  # other tests add and remove interfaces meanwhile
        want, got = both(lambda pcap: pcap.findalldevs())
        if got == want:
            break
        time.sleep(0.2)
    assert got == want
    assert {"lo", "any", veth.near} <= set(got)
    assert both(lambda pcap: pcap.lookupdev()) == (real.lookupdev(), real.lookupdev())
    for device in (b"lo", veth.near.encode(), b"any"):
        want, got = both(lambda pcap, device=device: pcap.lookupnet(device))
        assert got == want
    net = ipaddress.IPv4Address(veth.network).packed, ipaddress.IPv4Address(veth.netmask).packed
    assert compat.lookupnet(veth.near.encode()) == net
    assert (
        both(lambda pcap: pcap.lookupnet(b"nosuchdev0"))
        == (("OSError", (b"SIOCGIFADDR: nosuchdev0: No such device",)),) * 2
    )
    assert both(lambda pcap: pcap.lookupnet("lo"))[1][0] == "TypeError"


# -- live --------------------------------------------------------------------


def open_both(device: str, port: int, **options: Any) -> tuple[Any, Any]:
    """The real pypcap and the compat module on ``device``, filtered on UDP ``port``."""
    handles = (real.pcap(device, **options), compat.pcap(device, **options))
    for handle in handles:
        handle.setfilter(f"udp port {port}")
    return handles


def take(handle: Any, count: int) -> list[Any]:
    return [next(handle) for _ in range(count)]


@pytest.mark.root
# timeout_ms=0 (pypcap's default): libpcap hands a block over only once it is
# full, so these tests give a timeout (the real pypcap waits just as long)
@pytest.mark.parametrize("options", [
    {"timeout_ms": 5},
    {"timestamp_in_ns": True, "timeout_ms": 1},
    {"immediate": True, "snaplen": 60, "promisc": False},
])  # fmt: skip
def test_live_on_lo_the_same_packets(udp_port: int, options: dict[str, Any]) -> None:
    mine, theirs = open_both("lo", udp_port, **options)
    payloads = [b"compat %d" % i * (i + 1) for i in range(5)]
    with watchdog(udp_port):
        send_udp("127.0.0.1", udp_port, payloads)
        want, got = take(mine, 5), take(theirs, 5)
    assert got == want
    assert all(len(buf) <= options.get("snaplen", 65535) for _, buf in got)
    assert all(
        payload.startswith(buf[42:]) for payload, (_, buf) in zip(payloads, got, strict=True)
    )
    assert theirs.snaplen == mine.snaplen and theirs.name == "lo"
    assert (theirs.datalink(), theirs.dloff, theirs.precision) == (1, 14, 1)
    received, dropped, if_dropped = theirs.stats()
    assert received >= 5 and dropped == 0 and if_dropped == 0
    theirs.close()


@pytest.mark.root
def test_live_dispatch_readpkts_loop(udp_port: int) -> None:
    mine, theirs = open_both("lo", udp_port, timeout_ms=10)
    got: dict[str, list[Any]] = {"real": [], "compat": []}
    with watchdog(udp_port):
        for batch in ([b"a", b"b", b"c"], [b"d", b"e"], [b"f", b"g"]):
            send_udp("127.0.0.1", udp_port, batch)
            time.sleep(0.1)  # the kernel hands the block over after 10 ms
            for name, handle in (("real", mine), ("compat", theirs)):
                keep = got[name].append
                if batch[0] == b"a":
                    assert handle.dispatch(-1, lambda ts, buf, keep=keep: keep((ts, buf))) == 3
                elif batch[0] == b"d":
                    got[name] += handle.readpkts()
                else:
                    handle.loop(2, lambda ts, buf, keep=keep: keep((ts, buf)))
    assert got["compat"] == got["real"]
    assert [buf[42:] for _, buf in got["compat"]] == [b"a", b"b", b"c", b"d", b"e", b"f", b"g"]


@pytest.mark.root
def test_live_nonblocking(udp_port: int) -> None:
    mine, theirs = open_both("lo", udp_port, timeout_ms=5)
    for handle in (mine, theirs):
        assert handle.getnonblock() is False
        handle.setnonblock(True)
        assert handle.getnonblock() is True
        assert handle.dispatch(-1, print) == 0  # nothing at hand: at once
    send_udp("127.0.0.1", udp_port, [b"x", b"y"])
    got: dict[int, list[Any]] = {id(mine): [], id(theirs): []}
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(len(v) < 2 for v in got.values()):
        for handle in (mine, theirs):
            handle.dispatch(-1, lambda ts, buf, h=handle: got[id(h)].append((ts, buf)))
        time.sleep(0.01)
    assert got[id(theirs)] == got[id(mine)] and len(got[id(mine)]) == 2
    theirs.setnonblock(False)
    assert theirs.getnonblock() is False


@pytest.mark.root
def test_sendpacket_on_lo(udp_port: int) -> None:
    mine, theirs = open_both("lo", udp_port, timeout_ms=5)
    frame = lo_frame(udp_port, b"injected")
    with watchdog(udp_port):
        assert theirs.sendpacket(frame) == len(frame)
        want, got = take(mine, 1), take(theirs, 1)
    assert got == want and got[0][1] == frame
    too_big = b"\x00" * 70000
    assert (
        both(lambda pcap: (mine if pcap is real else theirs).sendpacket(too_big))
        == (("OSError", (b"send: Message too long",)),) * 2
    )


@pytest.mark.root
def test_default_device_and_bad_device() -> None:
    want, got = both(lambda pcap: pcap.pcap().name)
    assert got == want == real.lookupdev()
    want, got = both(lambda pcap: pcap.pcap("nosuchdev0", timeout_ms=1))
    assert got == want and got[0] == "OSError"


@pytest.mark.root
@pytest.mark.parametrize("direction", ["PCAP_D_IN", "PCAP_D_OUT", "PCAP_D_INOUT"])
def test_setdirection_on_a_veth_pair(veth: Veth, udp_port: int, direction: str) -> None:
    mine, theirs = open_both(veth.near, udp_port, timeout_ms=5)
    for handle in (mine, theirs):
        assert handle.setdirection(getattr(compat, direction)) is True
    assert theirs.setdirection(7) is mine.setdirection(7) is False
    assert theirs.geterr() == mine.geterr() == b"Invalid direction"
    expected = {"PCAP_D_IN": [b"in 0", b"in 1"], "PCAP_D_OUT": [b"out 0", b"out 1"],
                "PCAP_D_INOUT": [b"out 0", b"out 1", b"in 0", b"in 1"]}[direction]  # fmt: skip
    with watchdog(udp_port, dst=veth.far_address):
        veth.send_out(udp_port, [b"out 0", b"out 1"])
        time.sleep(0.05)
        veth.send_in(udp_port, [b"in 0", b"in 1"])
        want, got = take(mine, len(expected)), take(theirs, len(expected))
    assert got == want
    assert [buf[42:] for _, buf in got] == expected


@pytest.mark.root
def test_sendpacket_on_a_veth_pair(veth: Veth, udp_port: int) -> None:
    # a packet socket does not see what it sent itself: each sees the other's
    mine, theirs = open_both(veth.near, udp_port, timeout_ms=5)
    frames = [pf.eth_ipv4_udp(veth.near_address, veth.far_address, 4000, udp_port, text,
                              src_mac=bytes.fromhex("020000000c01"),
                              dst_mac=bytes.fromhex("020000000c02"))
              for text in (b"from compat", b"from pypcap")]  # fmt: skip
    with watchdog(udp_port, dst=veth.far_address):
        assert theirs.sendpacket(frames[0]) == len(frames[0])
        assert mine.sendpacket(frames[1]) == len(frames[1])
        want, got = take(mine, 1), take(theirs, 1)
    assert want[0][1] == frames[0] and got[0][1] == frames[1]


@pytest.mark.root
def test_setfilter_applies_to_what_the_ring_holds_already(udp_port: int) -> None:
    # libpcap refilters the ring's packets a new filter finds there, and so
    # does a paused helper: the first read comes after
    handles = real.pcap("lo", timeout_ms=5), compat.pcap("lo", timeout_ms=5)
    send_udp("127.0.0.1", udp_port, [b"before"])
    send_udp("127.0.0.1", udp_port + 1, [b"other port"])
    for handle in handles:
        handle.setfilter(f"udp and dst port {udp_port + 1}")
    with watchdog(udp_port + 1):
        want, got = (take(handle, 1) for handle in handles)
    assert got == want and got[0][1][42:] == b"other port"


@pytest.mark.root
def test_ctrl_c_in_a_read_leaves_the_capture_going(udp_port: int) -> None:
    p = compat.pcap("lo", timeout_ms=5, timestamp_in_ns=True)
    p.setfilter(f"udp port {udp_port}")
    for read in (lambda: next(p), lambda: p.dispatch(1, print), lambda: p.loop(1, print)):
        with pytest.raises(KeyboardInterrupt), interrupt_after(0.2):
            read()
    with watchdog(udp_port):
        send_udp("127.0.0.1", udp_port, [b"after Ctrl-C", b"and more"])
        assert [buf[42:] for _, buf in (next(p), *islice(p, 1))] == [b"after Ctrl-C", b"and more"]
    p.close()


# -- as an unprivileged user -------------------------------------------------

USER_SCRIPT = """
import json, sys
from itertools import islice
import epcap.compat.pypcap as pcap
path, port = sys.argv[1], int(sys.argv[2])
out = {"file": [(ts, buf.hex()) for ts, buf in pcap.pcap(path)]}
p = pcap.pcap("lo", timeout_ms=5)
p.setfilter(f"udp port {port}")
print(json.dumps({"ready": True}), flush=True)
out["live"] = [(ts, buf.hex()) for ts, buf in islice(p, 3)]
out["stats"] = list(p.stats())
try:
    p.sendpacket(b"\\x00" * 60)
except OSError as exc:
    out["send"] = exc.args[0].decode()
out["devices"] = pcap.findalldevs()
print(json.dumps(out), flush=True)
"""


@pytest.mark.root
def test_as_an_unprivileged_user(
    user: pwd.struct_passwd, installs: dict[str, Path], capture_files: dict[str, Path],
    udp_port: int,
) -> None:  # fmt: skip
    path = str(capture_files["nano.pcapng"])
    mine = real.pcap("lo", timeout_ms=5)
    mine.setfilter(f"udp port {udp_port}")
    proc = as_user_python(user, installs["caps"], USER_SCRIPT, path, str(udp_port))
    assert proc.stdout is not None
    try:
        ready = proc.stdout.readline()
        assert json.loads(ready or "{}") == {"ready": True}, proc.stderr and proc.stderr.read()
        with watchdog(udp_port):
            send_udp("127.0.0.1", udp_port, [b"one", b"two", b"three"])
            want = [(ts, buf.hex()) for ts, buf in take(mine, 3)]
            out = json.loads(proc.stdout.readline())
    finally:
        proc.kill() if proc.poll() is None else None
        proc.wait()
    assert [tuple(x) for x in out["file"]] == [(ts, buf.hex()) for ts, buf in real.pcap(path)]
    assert [tuple(x) for x in out["live"]] == want
    assert out["stats"][0] >= 3
    assert "does not let you send packets" in out["send"] and "--inject-group" in out["send"]
    assert "lo" in out["devices"] and "dbus-system" not in out["devices"]  # the policy's

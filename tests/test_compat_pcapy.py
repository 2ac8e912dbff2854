"""epcap.compat.pcapy against the real pcapy-ng 2.1, run as root on the same
files and the same traffic (on lo, and on a veth pair into a namespace):
the same headers, timestamps, lengths, end-of-file values, exception types
and libpcap's messages; and the compat module as a real unprivileged user.

pcapy-ng's wheel carries its own libpcap, 1.9.1; epcap's helper uses the
system's, 1.10.3. Where the two libpcaps differ, the tests say so."""

from __future__ import annotations

import json
import pwd
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import epcap.compat.pcapy as compat

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

real: Any = pytest.importorskip("pcapy")  # the real pcapy-ng

READABLE = ["micro.pcap", "nano.pcap", "big.pcap", "nano.pcapng", "micro.pcapng", "sll.pcap",
            "raw.pcap", "empty.pcap", "raw-fraction.pcap"]  # fmt: skip


def both(call: Callable[[Any], Any]) -> tuple[Any, Any]:
    """compat_traffic.outcomes of the real module and the compat one."""
    return outcomes((real, compat), call)


def fields(item: tuple[Any, bytes]) -> Any:
    """What a ``next()`` returned, comparable across the two modules."""
    header, data = item
    if header is None:
        return (None, data)
    return header.getts(), header.getcaplen(), header.getlen(), data


def read_all(reader: Any) -> list[Any]:
    """``next()`` until the end, and the end twice."""
    out = []
    while True:
        out.append(fields(reader.next()))
        if out[-1][0] is None:
            return [*out, fields(reader.next())]


# -- files -------------------------------------------------------------------


@pytest.mark.parametrize("name", READABLE)
def test_files_give_the_same_headers_and_end(capture_files: dict[str, Path], name: str) -> None:
    path = str(capture_files[name])

    def reading(pcapy: Any) -> list[Any]:
        reader = pcapy.open_offline(path)
        return [reader.datalink(), reader.getnet(), reader.getmask(), read_all(reader)]

    want, got = both(reading)
    assert got == want
    assert got[3][-2:] == [(None, b""), (None, b"")]
    assert all(type(x) is int for ts, *lengths, _ in got[3][:-2] for x in (*ts, *lengths))


def test_one_place_for_every_way_of_reading(capture_files: dict[str, Path]) -> None:
    path = str(capture_files["nano.pcapng"])

    def transcript(pcapy: Any) -> list[Any]:
        reader = pcapy.open_offline(path)
        seen: list[Any] = []
        keep = lambda header, data: seen.append(fields((header, data)))  # noqa: E731
        out = [reader.dispatch(3, keep), fields(reader.next()), reader.loop(2, keep),
               reader.dispatch(5, keep), reader.next_batch(4), fields(reader.next()),
               reader.loop(0, keep), fields(reader.next()), reader.dispatch(-1, keep),
               reader.loop(-1, keep), reader.next_batch(0)]  # fmt: skip
        return [*out, seen]

    want, got = both(transcript)
    assert got == want
    assert got[0] == 3 and got[3] == 5 and len(got[-1]) == 3 + 2 + 5 + 24


def test_dispatch_that_reaches_the_end_counts_its_packets(
    capture_files: dict[str, Path],
) -> None:
    # libpcap 1.10 counts them; pcapy-ng's libpcap 1.9.1 returned 0 for that call
    path = str(capture_files["micro.pcap"])

    def counts(pcapy: Any) -> list[int]:
        reader = pcapy.open_offline(path)
        return [reader.dispatch(n, lambda *a: None) for n in (30, 0, 5, -1)]

    want, got = both(counts)
    assert got == [30, 10, 0, 0]
    assert want == [30, 0, 0, 0]


def test_setfilter_before_the_first_read_filters_every_packet(
    capture_files: dict[str, Path],
) -> None:
    path = str(capture_files["micro.pcap"])

    def filtered(pcapy: Any) -> list[Any]:
        reader = pcapy.open_offline(path)
        reader.setfilter("tcp")
        try:
            reader.setfilter("no such filter")
        except pcapy.PcapError as exc:
            raised = exc.args
        return [raised, read_all(reader)]

    want, got = both(filtered)
    assert got == want
    assert got[0] == ("can't parse filter expression: syntax error",) and len(got[1]) == 14 + 2


def test_what_a_file_cannot_do(capture_files: dict[str, Path]) -> None:
    path = str(capture_files["nano.pcap"])

    def refusals(pcapy: Any) -> list[Any]:
        reader = pcapy.open_offline(path)
        out: list[Any] = [reader.getnonblock()]
        for call in (reader.stats, lambda: reader.sendpacket(b"\x00" * 60),
                     lambda: reader.setdirection(pcapy.PCAP_D_IN),
                     lambda: reader.setnonblock(1), lambda: reader.sendpacket("text")):  # fmt: skip
            try:
                out.append(call())
            except Exception as exc:
                out.append((type(exc).__name__, exc.args))
        return [*out, reader.getnonblock(), len(read_all(reader))]

    want, got = both(refusals)
    assert got == want
    assert got[1:5] == [
        ("PcapError", ("Statistics aren't available from savefiles",)),
        ("PcapError", ("Sending packets isn't supported on savefiles",)),
        ("PcapError", ("Failed setting direction",)),
        ("PcapError", ("Savefiles cannot be put into non-blocking mode",)),
    ]


def test_callback_exceptions(capture_files: dict[str, Path]) -> None:
    path = str(capture_files["nano.pcap"])

    def raising(pcapy: Any) -> list[Any]:
        reader = pcapy.open_offline(path)
        calls: list[Any] = []

        def callback(header: Any, data: bytes) -> None:
            calls.append(header.getts())
            raise KeyError(len(calls))

        out: list[Any] = []
        for run in (lambda: reader.loop(0, callback), lambda: reader.dispatch(0, callback)):
            try:
                run()
            except KeyError as exc:
                out.append(exc.args)
            out.append(fields(reader.next()))
        return [*out, len(calls)]

    want, got = both(raising)
    assert got[:3] == want[:3] == [(1,), *read_all(real.open_offline(path))[1:2], (2,)]
    assert got[-1] == want[-1] == 2
    # after dispatch, libpcap 1.9.1's break flag ends pcapy-ng's next read: (None, b'')
    assert want[3] == (None, b"") and got[3] == read_all(real.open_offline(path))[3]


def test_a_damaged_file(capture_files: dict[str, Path]) -> None:
    path = str(capture_files["truncated.pcap"])

    def damaged(pcapy: Any) -> list[Any]:
        out: list[Any] = []
        reader = pcapy.open_offline(path)
        for _ in range(6):
            try:
                out.append(fields(reader.next()))
            except pcapy.PcapError as exc:
                out.append(exc.args)
        reader = pcapy.open_offline(path)
        seen: list[Any] = []
        try:
            reader.dispatch(-1, lambda header, data: seen.append(data))
        except pcapy.PcapError as exc:
            out.append(exc.args)
        return [*out, len(seen), reader.loop(-1, lambda *a: None), fields(reader.next())]

    want, got = both(damaged)
    assert got == want
    assert got[3] == got[6] and got[3][0].startswith("truncated dump file")
    assert got[4:6] == [(None, b""), (None, b"")] and got[7] == 3


@pytest.mark.parametrize("name", ["missing.pcap", "garbage.pcap", "."])
def test_files_that_cannot_be_opened(capture_files: dict[str, Path], name: str) -> None:
    path = str(capture_files["garbage.pcap"].parent / name)
    want, got = both(lambda pcapy: pcapy.open_offline(path))
    assert got == want
    assert got[0] == "PcapError"


def test_arguments_as_pcapy_takes_them(capture_files: dict[str, Path]) -> None:
    path = str(capture_files["nano.pcap"])
    for call in (lambda pcapy: pcapy.open_live(device="lo", snaplen=1, promisc=0, to_ms=1),
                 lambda pcapy: pcapy.open_live("lo", "x", 0, 1),
                 lambda pcapy: pcapy.open_offline(path).dispatch("x", print)):  # fmt: skip
        want, got = both(call)
        assert got[0] == want[0] == "TypeError"
    want, got = both(lambda pcapy: pcapy.open_live("lo", 1, 0, 1).sendpacket("x"))
    assert got == want


def test_close_and_context(capture_files: dict[str, Path]) -> None:
    path = str(capture_files["nano.pcap"])

    def closing(pcapy: Any) -> list[Any]:
        with pcapy.open_offline(path) as reader:
            first = fields(reader.next())
        out: list[Any] = [first, reader.close()]
        for call in (reader.next, reader.datalink, reader.getnet, reader.stats,
                     lambda: reader.setfilter("udp"), lambda: reader.dispatch(1, print),
                     lambda: reader.loop(1, print), reader.__enter__):  # fmt: skip
            try:
                out.append(call())
            except ValueError as exc:
                out.append(exc.args)
        return out

    want, got = both(closing)
    assert got == want
    assert got[2:] == [("pcap is closed",)] * 8


def test_pkthdr_and_constants() -> None:
    names = [n for n in dir(real) if n.startswith(("DLT_", "PCAP_", "PACKET_"))]
    assert len(names) == 24
    assert {n: getattr(compat, n) for n in names} == {n: getattr(real, n) for n in names}
    assert issubclass(compat.PcapError, Exception) and issubclass(compat.BPFError, Exception)
    with pytest.raises(TypeError, match="cannot create 'Pkthdr' instances"):
        compat.Pkthdr()


def test_dump_open_writes_what_libpcap_writes(
    capture_files: dict[str, Path], tmp_path: Path
) -> None:
    source = str(capture_files["nano.pcapng"])

    def dumped(pcapy: Any) -> Any:
        reader = pcapy.open_offline(source)
        out = tmp_path / f"{pcapy.__name__}.pcap"
        dumper = reader.dump_open(str(out))
        while True:
            header, data = reader.next()
            if header is None:
                break
            dumper.dump(header, data)
            last = header
        dumper.close()
        dumper.close()
        refusals = []
        for call in (lambda: dumper.dump(last, b"x"), lambda: dumper.dump("no header", b"x")):
            try:
                call()
            except pcapy.PcapError as exc:
                refusals.append(exc.args)
        return out.read_bytes(), refusals

    want, got = both(dumped)
    assert got == want
    assert len(got[0]) > 24 + 40 * 16
    assert got[1] == [("Dumper is already closed.",), ("Not a pkthdr object",)]


@pytest.mark.root
def test_a_dropped_handle_stops_its_helper() -> None:
    dropped_handle_stops_its_helper(
        lambda: compat.open_live("lo", 65535, 0, 5), lambda handle: handle.next
    )


def test_what_needs_libpcap_in_this_process(capture_files: dict[str, Path]) -> None:
    reader = compat.open_offline(str(capture_files["nano.pcap"]))
    for call in (reader.getfd, lambda: reader.set_fanout(1), reader.loop_filtered,
                 reader.loop_to_buffer, reader.filtered_stats,
                 lambda: compat.compile(1, 65535, "udp", 1, 0),
                 lambda: compat.BPFProgram("udp")):  # fmt: skip
        with pytest.raises(NotImplementedError, match="epcap"):
            call()
    reader.close()


def test_times_past_2038_are_unsigned(capture_files: dict[str, Path]) -> None:
    # libpcap 1.9.1 reads a pcap file's seconds as signed: pcapy-ng goes back to 1901
    path = str(capture_files["y2040.pcap"])
    want, got = both(lambda pcapy: pcapy.open_offline(path).next()[0].getts())
    assert got == (2_208_988_800, 123_456)
    assert want == (2_208_988_800 - (1 << 32), 123_456)


# -- devices -----------------------------------------------------------------


def test_findalldevs_and_lookupdev(veth: Veth) -> None:
    for _ in range(10):  # other tests add and remove interfaces meanwhile
        want, got = both(lambda pcapy: pcapy.findalldevs())
        # libpcap 1.9.1 lists the devices in another order, D-Bus's not at all
        if set(got) - {"dbus-system", "dbus-session"} == set(want):
            break
        time.sleep(0.2)
    assert set(got) - {"dbus-system", "dbus-session"} == set(want)
    assert {"lo", "any", veth.near} <= set(got)
    want, got = both(lambda pcapy: pcapy.lookupdev())
    assert got == want


# -- live --------------------------------------------------------------------


def open_both(device: str, port: int, to_ms: int = 5) -> tuple[Any, Any]:
    """The real pcapy-ng and the compat module on ``device``, on UDP ``port``."""
    readers = (real.open_live(device, 65535, 0, to_ms), compat.open_live(device, 65535, 0, to_ms))
    for reader in readers:
        reader.setfilter(f"udp port {port}")
    return readers


def take(reader: Any, count: int) -> list[Any]:
    """The next ``count`` packets. pcapy-ng's ``next()`` also returns
    ``(None, b'')`` when libpcap read a block whose packets the direction
    rejected: epcap's helper reads on, as blocking libpcap reads do."""
    out: list[Any] = []
    while len(out) < count:
        item = fields(reader.next())
        if item[0] is not None:
            out.append(item)
    return out


@pytest.mark.root
def test_live_on_lo_the_same_packets(udp_port: int) -> None:
    mine, theirs = open_both("lo", udp_port)
    assert (theirs.getnet(), theirs.getmask()) == (mine.getnet(), mine.getmask())
    assert theirs.datalink() == mine.datalink() == compat.DLT_EN10MB
    payloads = [b"compat %d" % i * (i + 1) for i in range(7)]
    with watchdog(udp_port):
        send_udp("127.0.0.1", udp_port, payloads)
        want = take(mine, 3)
        got = take(theirs, 3)
        for reader, out in ((mine, want), (theirs, got)):
            assert reader.dispatch(2, lambda h, d, out=out: out.append(fields((h, d)))) == 2
            reader.loop(2, lambda h, d, out=out: out.append(fields((h, d))))
    assert got == want
    assert [data[42:] for *_, data in got] == payloads
    received, dropped, if_dropped = theirs.stats()
    assert received >= 7 and dropped == if_dropped == 0


@pytest.mark.root
def test_live_nonblocking(udp_port: int) -> None:
    mine, theirs = open_both("lo", udp_port)
    for reader in (mine, theirs):
        assert reader.getnonblock() == 0
        reader.setnonblock(1)
        assert reader.getnonblock() == 1
        assert reader.next() == (None, b"") and reader.dispatch(-1, print) == 0
    send_udp("127.0.0.1", udp_port, [b"x", b"y"])
    got: dict[int, list[Any]] = {id(mine): [], id(theirs): []}
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(len(v) < 2 for v in got.values()):
        for reader in (mine, theirs):
            item = fields(reader.next())
            if item[0] is not None:
                got[id(reader)].append(item)
        time.sleep(0.005)
    assert got[id(theirs)] == got[id(mine)] and len(got[id(mine)]) == 2


@pytest.mark.root
def test_sendpacket_on_lo(udp_port: int) -> None:
    mine, theirs = open_both("lo", udp_port)
    frame = lo_frame(udp_port, b"injected")
    with watchdog(udp_port):
        assert theirs.sendpacket(frame) is None
        want, got = take(mine, 1), take(theirs, 1)
    assert got == want and got[0][3] == frame
    too_big = b"\x00" * 70000
    assert (
        both(lambda pcapy: (mine if pcapy is real else theirs).sendpacket(too_big))
        == (("PcapError", ("send: Message too long",)),) * 2
    )


@pytest.mark.root
def test_open_live_errors() -> None:
    want, got = both(lambda pcapy: pcapy.open_live("nosuchdev0", 65535, 0, 1))
    assert got[0] == want[0] == "PcapError"
    # libpcap 1.10 and 1.9.1 say the same first, then in brackets each its detail
    assert got[1][0].startswith("nosuchdev0: No such device exists (")
    assert want[1][0].startswith("nosuchdev0: No such device exists (")


@pytest.mark.root
def test_create_and_activate(udp_port: int) -> None:
    def lifecycle(pcapy: Any) -> list[Any]:
        reader = pcapy.create("lo")
        out = [reader.datalink(), fields(reader.next()), reader.getnet(), reader.getmask(),
               reader.set_snaplen(100), reader.set_promisc(0), reader.set_timeout(5),
               reader.set_buffer_size(1 << 20), reader.set_rfmon(0), reader.activate(),
               reader.set_snaplen(100), reader.activate(), reader.datalink()]  # fmt: skip
        reader.setfilter(f"udp port {udp_port}")
        return [*out, reader]

    want, got = both(lifecycle)
    assert got[:-1] == want[:-1]
    assert got[:-1] == [-3, (None, b""), "127.0.0.0", "255.0.0.0", 0, 0, 0, 0, 0, 0, -4, -4, 1]
    with watchdog(udp_port):
        send_udp("127.0.0.1", udp_port, [b"x" * 200])
        assert take(got[-1], 1) == take(want[-1], 1)
    assert both(lambda pcapy: pcapy.create("nosuchdev0").activate()) == (-5, -5)


@pytest.mark.root
@pytest.mark.parametrize("direction", ["PCAP_D_IN", "PCAP_D_OUT"])
def test_a_veth_pair(veth: Veth, udp_port: int, direction: str) -> None:
    mine, theirs = open_both(veth.near, udp_port)
    assert (theirs.getnet(), theirs.getmask()) == (mine.getnet(), mine.getmask())
    assert theirs.getnet() == veth.network and theirs.getmask() == veth.netmask
    for reader in (mine, theirs):
        assert reader.setdirection(getattr(compat, direction)) is None
    with watchdog(udp_port, dst=veth.far_address):
        veth.send_out(udp_port, [b"out 0", b"out 1"])
        time.sleep(0.05)
        veth.send_in(udp_port, [b"in 0", b"in 1"])
        want, got = take(mine, 2), take(theirs, 2)
    assert got == want
    assert [data[42:] for *_, data in got] == (
        [b"in 0", b"in 1"] if direction == "PCAP_D_IN" else [b"out 0", b"out 1"]
    )


@pytest.mark.root
def test_setfilter_applies_to_what_the_ring_holds_already(udp_port: int) -> None:
    # libpcap refilters the ring's packets a new filter finds there, and so
    # does a paused helper: the first read comes after
    readers = real.open_live("lo", 65535, 0, 5), compat.open_live("lo", 65535, 0, 5)
    send_udp("127.0.0.1", udp_port, [b"before"])
    send_udp("127.0.0.1", udp_port + 1, [b"other port"])
    for reader in readers:
        reader.setfilter(f"udp and dst port {udp_port + 1}")
    with watchdog(udp_port + 1):
        want, got = (take(reader, 1) for reader in readers)
    assert got == want and got[0][3][42:] == b"other port"


@pytest.mark.root
def test_ctrl_c_in_a_read_leaves_the_capture_going(udp_port: int) -> None:
    reader = compat.open_live("lo", 65535, 0, 5)
    reader.setfilter(f"udp port {udp_port}")
    for read in (reader.next, lambda: reader.dispatch(1, print), lambda: reader.loop(1, print)):
        with pytest.raises(KeyboardInterrupt), interrupt_after(0.2):
            read()
    with watchdog(udp_port):
        send_udp("127.0.0.1", udp_port, [b"after Ctrl-C"])
        assert take(reader, 1)[0][3][42:] == b"after Ctrl-C"
    reader.close()


# -- as an unprivileged user -------------------------------------------------

USER_SCRIPT = """
import json, sys
import epcap.compat.pcapy as pcapy
path, port = sys.argv[1], int(sys.argv[2])
def fields(item):
    header, data = item
    return None if header is None else [header.getts(), header.getcaplen(), header.getlen(),
                                        data.hex()]
reader = pcapy.open_offline(path)
out = {"file": [fields(reader.next()) for _ in range(42)]}
reader = pcapy.open_live("lo", 65535, 0, 5)
reader.setfilter(f"udp port {port}")
print(json.dumps({"ready": [reader.getnet(), reader.getmask()]}), flush=True)
out["live"] = [fields(reader.next()) for _ in range(3)]
try:
    reader.sendpacket(b"\\x00" * 60)
except pcapy.PcapError as exc:
    out["send"] = exc.args[0]
out["devices"] = pcapy.findalldevs()
print(json.dumps(out), flush=True)
"""


@pytest.mark.root
def test_as_an_unprivileged_user(
    user: pwd.struct_passwd, installs: dict[str, Path], capture_files: dict[str, Path],
    udp_port: int,
) -> None:  # fmt: skip
    path = str(capture_files["micro.pcap"])
    mine = real.open_live("lo", 65535, 0, 5)
    mine.setfilter(f"udp port {udp_port}")
    proc = as_user_python(user, installs["caps"], USER_SCRIPT, path, str(udp_port))
    assert proc.stdout is not None and proc.stderr is not None
    try:
        ready = json.loads(proc.stdout.readline() or "{}")
        assert ready == {"ready": ["127.0.0.0", "255.0.0.0"]}, proc.stderr.read()
        with watchdog(udp_port):
            send_udp("127.0.0.1", udp_port, [b"one", b"two", b"three"])
            want = take(mine, 3)
            out = json.loads(proc.stdout.readline())
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()

    def plain(items: list[Any]) -> list[Any]:
        return [None if x[0] is None else [list(x[0]), x[1], x[2], x[3].hex()] for x in items]

    assert out["file"] == plain(read_all(real.open_offline(path)))
    assert out["live"] == plain(want)
    assert "does not let you send packets" in out["send"] and "--inject-group" in out["send"]
    assert "lo" in out["devices"] and "nflog" not in out["devices"]  # the policy's

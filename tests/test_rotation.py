"""epcap.savefile.RotatingPcapWriter: tcpdump 4.99.3's -w with -G, -C and -W,
its names, its rotations and its end, each file read back by tcpdump and by
epcap; -C byte for byte against tcpdump itself, -G too, in real time."""

from __future__ import annotations

import functools
import io
import math
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from epcap import Packet
from epcap.savefile import PcapWriter, RotatingPcapWriter

import pcapfiles as pf
from conftest import start_file
from helpers import local_time

T0 = 1_767_225_600
"""2026-01-01 00:00:00 UTC: 05:30:00 local time under TZ below."""
TZ = "EPC-5:30"
"""A POSIX TZ, no tzdata needed: local time is UTC + 5:30, so a name in UTC
would differ from the right one in hours and minutes."""
PATTERN = "out-%Y%m%d-%H%M%S.pcap"
HEADER = 24
RECORD = 16 + 100
"""A record of :func:`packets`: 16 bytes of header, 100 of frame."""

Record = tuple[int, int, bytes]
"""(time in ns, wire length, captured bytes)."""


class Clock:
    """A clock the test sets: what ``clock=`` reads."""

    def __init__(self, now: float) -> None:
        self.now = now
        self.calls = 0

    def __call__(self) -> float:
        self.calls += 1
        return self.now


@pytest.fixture
def tz() -> Iterator[None]:
    """Local time is UTC + 5:30 for the test."""
    with local_time(TZ):
        yield


def frame(i: int, caplen: int) -> bytes:
    """An Ethernet/IPv4/UDP frame of ``caplen`` bytes whose payload says ``i``."""
    tag = f"packet {i:05d} ".encode()
    payload = (tag * (caplen // len(tag) + 1))[: caplen - 42]
    data = pf.eth_ipv4_udp("10.0.0.1", "10.0.0.2", 40000 + i % 1000, 9, payload, ident=i)
    assert len(data) == caplen
    return data


def packets(n: int, caplen: int = 100, start: int = 0) -> list[Packet]:
    """``n`` frames of ``caplen`` bytes, numbered from ``start``; times with
    nanoseconds that are not whole microseconds; every third one cut (a wire
    length longer than its bytes)."""
    out = []
    for i in range(start, start + n):
        t = (T0 + i) * 10**9 + 123_456_789 + i
        out.append(Packet(1, t, caplen + (64 if i % 3 == 2 else 0), frame(i, caplen)))
    return out


def tcpdump_read(path: Path) -> list[tuple[int, bytes]]:
    """(time in ns, bytes) of each packet of ``path``, as tcpdump prints them."""
    out = subprocess.run(
        ["tcpdump", "-nn", "-tt", "--time-stamp-precision=nano", "-xx", "-r", str(path)],
        capture_output=True, text=True, check=True, timeout=60,
    ).stdout  # fmt: skip
    read: list[tuple[int, bytearray]] = []
    for line in out.splitlines():
        if line.startswith("\t0x"):
            read[-1][1].extend(bytes.fromhex("".join(line.split(":", 1)[1].split())))
        else:
            found = re.match(r"(\d+)\.(\d{9}) ", line)
            assert found, f"tcpdump printed {line!r}"
            read.append((int(found[1]) * 10**9 + int(found[2]), bytearray()))
    return [(t, bytes(data)) for t, data in read]


def epcap_read(path: Path) -> list[Record]:
    """(time in ns, wire length, bytes) of each packet of ``path``, read by epcap."""
    with start_file(path, exec="") as cap:
        got = list(cap)
        assert cap.datalink == 1
    return [(p.time, p.length, p.data) for p in got]


def check_file(path: Path, expected: list[Packet], precision: str = "nano") -> None:
    """``path`` holds ``expected``, in order, exactly: for tcpdump and for epcap."""
    unit = 1 if precision == "nano" else 1000
    want = [(p.time // unit * unit, p.length, p.data) for p in expected]
    assert epcap_read(path) == want, path.name
    assert tcpdump_read(path) == [(t, data) for t, _, data in want], path.name
    assert path.stat().st_size == HEADER + sum(16 + len(p.data) for p in expected)


def check_dir(directory: Path, expected: dict[str, list[Packet]]) -> None:
    """The directory holds exactly these files, with these packets each."""
    assert sorted(p.name for p in directory.iterdir()) == sorted(expected)
    for name, pkts in expected.items():
        check_file(directory / name, pkts)


def chunks(pkts: list[Packet], size: int) -> list[list[Packet]]:
    return [pkts[i : i + size] for i in range(0, len(pkts), size)]


# -C alone, and with -W


def tcpdump_split(pkts: list[Packet], size: int) -> list[list[Packet]]:
    """The packets of each file by tcpdump's -C rule, computed independently:
    before each packet, a file whose position passed ``size`` is closed."""
    files: list[list[Packet]] = [[]]
    position = HEADER
    for p in pkts:
        if position > size:
            files.append([])
            position = HEADER
        files[-1].append(p)
        position += 16 + len(p.data)
    return files


def test_size_alone_numbers_every_file_but_the_first(tmp_path: Path) -> None:
    pkts = [p for i in range(40) for p in packets(1, 60 + 37 * i % 1400, start=i)]
    with RotatingPcapWriter(tmp_path / "cap", 1, size=3000) as out:
        assert out.name == str(tmp_path / "cap")
        assert out.write_all(pkts)
        assert out.count == len(pkts)
    split = tcpdump_split(pkts, 3000)
    assert len(split) >= 5
    names = ["cap"] + [f"cap{i}" for i in range(1, len(split))]
    assert out.names == [str(tmp_path / n) for n in names]
    check_dir(tmp_path, dict(zip(names, split, strict=True)))
    for n in names[:-1]:  # the packet that crossed the limit stayed in
        assert (tmp_path / n).stat().st_size > 3000


@pytest.mark.parametrize(
    ("size", "per_file"), [(HEADER + 2 * RECORD, 3), (HEADER + 2 * RECORD - 1, 2)]
)
def test_size_is_checked_before_each_packet(tmp_path: Path, size: int, per_file: int) -> None:
    """A file of exactly ``size`` bytes takes one more packet; one byte more,
    and the next file starts."""
    pkts = packets(7)
    with RotatingPcapWriter(tmp_path / "f", 1, size=size) as out:
        out.write_all(pkts)
    split = chunks(pkts, per_file)
    check_dir(tmp_path, {"f" + (str(i) if i else ""): c for i, c in enumerate(split)})


def test_size_with_three_files_cycles_and_overwrites(tmp_path: Path) -> None:
    pkts = packets(11)  # 3 a file: f0 f1 f2 f0 (overwritten)
    with RotatingPcapWriter(tmp_path / "f", 1, size=300, files=3) as out:
        out.write_all(pkts)
    assert [Path(n).name for n in out.names] == ["f0", "f1", "f2", "f0"]
    assert out.name == str(tmp_path / "f0")
    assert not out.limit_reached
    check_dir(tmp_path, {"f0": pkts[9:], "f1": pkts[3:6], "f2": pkts[6:9]})


def test_eleven_files_have_two_digit_counters(tmp_path: Path) -> None:
    pkts = packets(3 * 12 + 1)  # 13 files: f00 .. f10, then f00 and f01 again
    with RotatingPcapWriter(tmp_path / "f", 1, size=300, files=11) as out:
        out.write_all(pkts)
    assert [Path(n).name for n in out.names] == [f"f{i:02d}" for i in [*range(11), 0, 1]]
    split = chunks(pkts, 3)
    expected = {f"f{i:02d}": split[i] for i in range(2, 11)}
    expected |= {"f00": split[11], "f01": split[12]}
    check_dir(tmp_path, expected)


@pytest.mark.parametrize(("files", "digits"), [(2, 1), (10, 1), (11, 2), (100, 2), (101, 3)])
def test_counter_digits_are_those_of_files_minus_one(
    tmp_path: Path, files: int, digits: int
) -> None:
    with RotatingPcapWriter(tmp_path / "f", 1, size=1, files=files) as out:
        out.write(packets(1)[0])  # the header alone is over 1 byte: a second file
    assert [Path(n).name for n in out.names] == ["f" + "0" * digits, "f" + "0" * (digits - 1) + "1"]


def test_one_file_is_rewritten_without_a_counter(tmp_path: Path) -> None:
    pkts = packets(8)
    with RotatingPcapWriter(tmp_path / "f", 1, size=300, files=1) as out:
        out.write_all(pkts)
    assert [Path(n).name for n in out.names] == ["f"] * 3
    check_dir(tmp_path, {"f": pkts[6:]})


def test_a_size_below_the_header_rotates_before_every_packet(tmp_path: Path) -> None:
    """tcpdump's rule, followed to the letter: the first file keeps only its header."""
    pkts = packets(3)
    with RotatingPcapWriter(tmp_path / "f", 1, size=10) as out:
        out.write_all(pkts)
    check_dir(tmp_path, {"f": [], "f1": pkts[:1], "f2": pkts[1:2], "f3": pkts[2:]})


@functools.cache
def big_packets() -> list[Packet]:
    """4000 frames of 900 to 1399 bytes, 4.6 MB in a file."""
    return [
        Packet(1, (T0 + i) * 10**9 + 7 * i + 1, 1000 + i % 500, frame(i, 900 + i % 500))
        for i in range(4000)
    ]


@pytest.mark.parametrize("files", [0, 3, 11, 1])
def test_size_matches_tcpdump_byte_for_byte(tmp_path: Path, files: int) -> None:
    """tcpdump -C 1 [-W files] and size=1_000_000, files=files on the same
    4.6 MB of packets: the same files, the same bytes."""
    pkts = big_packets()
    source = tmp_path / "in.pcap"
    with PcapWriter(source, 1, 65535) as w:
        w.write_all(pkts)
    theirs, mine = tmp_path / "tcpdump", tmp_path / "epcap"
    theirs.mkdir()
    mine.mkdir()
    limit = ["-W", str(files)] if files else []
    subprocess.run(
        ["tcpdump", "-Z", "root", "--time-stamp-precision=nano", "-r", str(source),
         "-w", str(theirs / "out"), "-C", "1", *limit],
        capture_output=True, check=True, timeout=60,
    )  # fmt: skip
    with RotatingPcapWriter(mine / "out", 1, 65535, size=1_000_000, files=files) as out:
        assert out.write_all(pkts)
    made = sorted(p.name for p in theirs.iterdir())
    assert made == sorted(p.name for p in mine.iterdir())
    assert len(out.names) == 5
    for name in made:
        assert (theirs / name).read_bytes() == (mine / name).read_bytes(), name


@pytest.mark.parametrize("precision", ["nano", "micro"])
def test_precision_is_each_files(tmp_path: Path, precision: str) -> None:
    pkts = packets(5)
    with RotatingPcapWriter(tmp_path / "f", 1, precision=precision, size=300) as out:
        out.write_all(pkts)
    check_file(tmp_path / "f", pkts[:3], precision)
    check_file(tmp_path / "f1", pkts[3:], precision)


# -G


@pytest.mark.usefixtures("tz")
def test_seconds_names_files_by_local_time_of_the_rotating_packet(tmp_path: Path) -> None:
    clock = Clock(T0 + 0.7)
    pkts = packets(7)
    with RotatingPcapWriter(tmp_path / PATTERN, 1, seconds=10, clock=clock) as out:
        assert out.name == str(tmp_path / "out-20260101-053000.pcap")
        for p, now in zip(pkts, [0.7, 9.99, 10.0, 19.9, 20.5, 20.6, 95.1], strict=True):
            clock.now = T0 + now
            assert out.write(p)
    # Rotations on the packets at T0+10 (10 s after T0's whole second),
    # T0+20.5 (10 s after T0+10) and T0+95.1: named after those seconds.
    names = ["053000", "053010", "053020", "053135"]
    assert out.names == [str(tmp_path / f"out-20260101-{n}.pcap") for n in names]
    check_dir(
        tmp_path,
        {
            "out-20260101-053000.pcap": pkts[:2],
            "out-20260101-053010.pcap": pkts[2:4],
            "out-20260101-053020.pcap": pkts[4:6],
            "out-20260101-053135.pcap": pkts[6:],
        },
    )


@pytest.mark.usefixtures("tz")
def test_seconds_counts_whole_seconds_of_the_clock(tmp_path: Path) -> None:
    """tcpdump compares time(NULL)s: 9.02 s after a start at .99 is a rotation."""
    clock = Clock(T0 + 0.99)
    with RotatingPcapWriter(tmp_path / "%S", 1, seconds=10, clock=clock) as out:
        clock.now = T0 + 10.01
        out.write(packets(1)[0])
    assert [Path(n).name for n in out.names] == ["00", "10"]


@pytest.mark.usefixtures("tz")
def test_seconds_with_three_files_ends_at_the_third_rotation(tmp_path: Path) -> None:
    clock = Clock(T0)
    pkts = packets(6)
    with RotatingPcapWriter(tmp_path / PATTERN, 1, seconds=60, files=3, clock=clock) as out:
        for p, now in zip(pkts[:4], [1, 60, 61, 150], strict=True):
            clock.now = T0 + now
            assert out.write(p)
        clock.now = T0 + 210  # the third rotation: the end, this packet unwritten
        assert out.write(pkts[4]) is False
        assert out.limit_reached and out.count == 4
        assert out.write(pkts[5]) is False  # and so every packet after
        assert out.count == 4
    assert [Path(n).name for n in out.names] == [
        "out-20260101-053000.pcap",
        "out-20260101-053100.pcap",
        "out-20260101-053230.pcap",
    ]
    check_dir(
        tmp_path,
        {
            "out-20260101-053000.pcap": pkts[:1],
            "out-20260101-053100.pcap": pkts[1:3],
            "out-20260101-053230.pcap": pkts[3:4],
        },
    )


@pytest.mark.usefixtures("tz")
def test_the_limit_closes_the_last_file_at_once(tmp_path: Path) -> None:
    clock = Clock(T0)
    out = RotatingPcapWriter(tmp_path / "%M%S", 1, seconds=1, files=1, clock=clock)
    clock.now = T0 + 1
    assert out.write(packets(1)[0]) is False
    assert out.limit_reached and out.names == [str(tmp_path / "3000")]
    check_dir(tmp_path, {"3000": []})  # flushed and closed before close()
    out.close()


def test_seconds_with_a_pattern_without_codes_rewrites_the_file(tmp_path: Path) -> None:
    clock = Clock(T0)
    pkts = packets(5)
    with RotatingPcapWriter(tmp_path / "same.pcap", 1, seconds=5, clock=clock) as out:
        for p, now in zip(pkts, [0, 5, 6, 11, 12], strict=True):
            clock.now = T0 + now
            out.write(p)
    assert out.names == [str(tmp_path / "same.pcap")] * 3
    check_dir(tmp_path, {"same.pcap": pkts[3:]})  # pkts[:3] were in the files it replaced


@pytest.mark.usefixtures("tz")
def test_seconds_and_size_restart_the_counter(tmp_path: Path) -> None:
    """-G 10 -C: FILE, FILE1, FILE2, then a rotation by time: no counter
    again, then 1; time first, so a full file due by time is not also
    rotated by size."""
    clock = Clock(T0)
    pkts = packets(13)
    times = [0, 1, 2, 3, 4, 5, 6, 7, 8, 10, 11, 12, 13]  # 3 a file; the 10th is due by both
    with RotatingPcapWriter(tmp_path / "gc-%H%M%S-", 1, seconds=10, size=300, clock=clock) as out:
        for p, now in zip(pkts, times, strict=True):
            clock.now = T0 + now
            assert out.write(p)
    names = ["gc-053000-", "gc-053000-1", "gc-053000-2", "gc-053010-", "gc-053010-1"]
    assert [Path(n).name for n in out.names] == names
    split = [pkts[:3], pkts[3:6], pkts[6:9], pkts[9:12], pkts[12:]]
    check_dir(tmp_path, dict(zip(names, split, strict=True)))


@pytest.mark.usefixtures("tz")
def test_seconds_size_and_files_cycle_and_never_end(tmp_path: Path) -> None:
    """-G 10 -C -W 3: the counter has a digit, restarts at 0 at each rotation
    by time, and -W ends nothing: five rotations by time go on."""
    clock = Clock(T0)
    pkts = packets(7 * 6)
    with RotatingPcapWriter(
        tmp_path / "gcw-%M%S-", 1, seconds=10, size=300, files=3, clock=clock
    ) as out:
        for period in range(6):
            clock.now = T0 + 10 * period
            # 7 packets: 3 in -0, 3 in -1, 1 in -2
            assert out.write_all(pkts[7 * period : 7 * period + 7])
        assert not out.limit_reached and out.count == 42
    names = [f"gcw-{30 + p // 6:02d}{p % 6}0-{c}" for p in range(6) for c in range(3)]
    assert [Path(n).name for n in out.names] == names
    expected = {}
    for p in range(6):
        block = pkts[7 * p : 7 * p + 7]
        expected |= dict(
            zip(names[3 * p : 3 * p + 3], [block[:3], block[3:6], block[6:]], strict=True)
        )
    check_dir(tmp_path, expected)


@pytest.mark.usefixtures("tz")
def test_seconds_size_and_files_cycle_within_a_period(tmp_path: Path) -> None:
    clock = Clock(T0)
    pkts = packets(14)
    with RotatingPcapWriter(tmp_path / "p%S", 1, seconds=10, size=300, files=2, clock=clock) as out:
        assert out.write_all(pkts[:10])  # p000 p001 p000 p001 (the last with one)
        clock.now = T0 + 10
        assert out.write_all(pkts[10:])
    names = ["p000", "p001", "p000", "p001", "p100", "p101"]
    assert [Path(n).name for n in out.names] == names
    check_dir(
        tmp_path, {"p000": pkts[6:9], "p001": pkts[9:10], "p100": pkts[10:13], "p101": pkts[13:]}
    )


def test_the_clock_is_read_only_with_seconds(tmp_path: Path) -> None:
    clock = Clock(T0)
    with RotatingPcapWriter(tmp_path / "%Y", 1, size=300, files=3, clock=clock) as out:
        out.write_all(packets(4))
    assert clock.calls == 0
    assert [Path(n).name for n in out.names] == ["%Y0", "%Y1"]  # no strftime without -G


def test_the_default_clock_is_the_time_now(tmp_path: Path) -> None:
    before = time.strftime("%Y%m%d", time.localtime(math.floor(time.time())))
    with RotatingPcapWriter(tmp_path / "d-%Y%m%d", 1, seconds=3600) as out:
        out.write(packets(1)[0])
    after = time.strftime("%Y%m%d", time.localtime(math.floor(time.time())))
    assert Path(out.name).name in (f"d-{before}", f"d-{after}")


# tcpdump itself, in real time


def pcap_bytes(pkts: list[Packet]) -> bytes:
    stream = io.BytesIO()
    with PcapWriter(stream, 1, 65535) as w:
        w.write_all(pkts)
    return stream.getvalue()


def test_seconds_matches_tcpdump_in_real_time(tmp_path: Path, tz: None) -> None:
    """tcpdump -G 1 -W 3 reading a pcap from a pipe, fed packet by packet at
    chosen instants (mid-second, so that its time(NULL) and ours agree), and
    the writer with a clock at the same instants: the same files, the same
    bytes, and both end on the same packet."""
    pkts = packets(5)
    theirs, mine = tmp_path / "tcpdump", tmp_path / "epcap"
    theirs.mkdir()
    mine.mkdir()
    base = math.ceil(time.time())  # a whole second: the instants are after it
    start, at = 0.3, [0.6, 1.5, 1.6, 3.5, 4.5]  # rotations at 1.5 and 3.5; the end at 4.5

    def sleep_until(offset: float) -> None:
        time.sleep(max(0.0, base + offset - time.time()))

    sleep_until(start)
    proc = subprocess.Popen(
        ["tcpdump", "-Z", "root", "--time-stamp-precision=nano", "-r", "-",
         "-w", str(theirs / "g-%H%M%S.pcap"), "-G", "1", "-W", "3"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdin is not None
    late = 0.0
    try:
        proc.stdin.write(pcap_bytes([]))
        proc.stdin.flush()
        for offset, p in zip(at, pkts, strict=True):
            sleep_until(offset)
            proc.stdin.write(pcap_bytes([p])[HEADER:])
            proc.stdin.flush()
            late = max(late, time.time() - base - offset)
        _, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
        proc.wait()
    assert late < 0.3, f"a packet went {late:.3f} s late: too slow to keep to the seconds"
    assert proc.returncode == 0
    assert b"\nMaximum file limit reached: 3\n" in err, err

    clock = Clock(base + start)
    with RotatingPcapWriter(
        mine / "g-%H%M%S.pcap", 1, 65535, seconds=1, files=3, clock=clock
    ) as out:
        for offset, p in zip(at, pkts, strict=True):
            clock.now = base + offset
            if not out.write(p):
                break
    assert out.limit_reached and out.count == 4
    made = sorted(p.name for p in theirs.iterdir())
    names = [time.strftime("g-%H%M%S.pcap", time.localtime(base + s)) for s in (0, 1, 3)]
    assert made == sorted(p.name for p in mine.iterdir()) == sorted(names)
    assert [Path(n).name for n in out.names] == names
    for name in made:
        assert (theirs / name).read_bytes() == (mine / name).read_bytes(), name
    check_dir(mine, dict(zip(names, [pkts[:1], pkts[1:3], pkts[3:4]], strict=True)))


# errors


@pytest.mark.parametrize("option", ["seconds", "size", "files"])
@pytest.mark.parametrize("value", [-1, 1.5, 2.0, "3", True, None])
def test_bad_options(tmp_path: Path, option: str, value: object) -> None:
    with pytest.raises(ValueError, match=f"{option} must be an integer, 0 or more"):
        RotatingPcapWriter(tmp_path / "f", 1, **{option: value})  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []


def test_bad_precision(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="precision"):
        RotatingPcapWriter(tmp_path / "f", 1, precision="milli", size=100)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("options", [{}, {"seconds": 5}, {"size": 100}])
def test_an_empty_name_is_refused(options: dict[str, int]) -> None:
    with pytest.raises(ValueError, match="empty file name"):
        RotatingPcapWriter("", 1, **options)


def test_a_file_that_cannot_be_opened(tmp_path: Path) -> None:
    missing = tmp_path / "missing" / "f"
    with pytest.raises(OSError, match=re.escape(str(missing))):
        RotatingPcapWriter(missing, 1, size=100)


def test_a_next_file_that_cannot_be_opened(tmp_path: Path) -> None:
    (tmp_path / "00").mkdir()
    clock = Clock(T0)
    pkts = packets(2)
    with RotatingPcapWriter(tmp_path / "%S/f", 1, seconds=1, clock=clock) as out:
        out.write(pkts[0])
        clock.now = T0 + 1
        with pytest.raises(OSError, match=re.escape(str(tmp_path / "01" / "f"))):
            out.write(pkts[1])
        with pytest.raises(ValueError, match="closed"):
            out.write(pkts[1])
    assert out.names == [str(tmp_path / "00" / "f")]
    check_file(tmp_path / "00" / "f", pkts[:1])


def test_writing_after_close(tmp_path: Path) -> None:
    out = RotatingPcapWriter(tmp_path / "f", 1)
    out.close()
    out.close()
    with pytest.raises(ValueError, match="closed"):
        out.write(packets(1)[0])

"""Time stamps at the edges of a classic pcap file's two unsigned 32-bit
fields: seconds past 2038 (which libpcap 1.10.3 reads as signed, into 1901)
up to 2106-02-07 06:28:15, and fraction fields of a second or more (a
corrupt file's, delivered as an epcap.RawTime, never carried into the
seconds). The expected times come from the file's bytes, parsed here with
struct: an oracle that owes nothing to libpcap. (scapy's pcap reader reads
the fields unsigned too and would be a second one, but it is in the `bench`
extra only, and a test that skips without it would pass without testing:
so there is none.) Then PcapWriter writes such times back, field for field,
and tcpdump reads what it wrote; pcapng, whose times are 64-bit, is
unaffected."""

from __future__ import annotations

import copy
import datetime as dt
import os
import pickle
import struct
import subprocess
from pathlib import Path

import pytest

import epcap
from epcap import Packet, RawTime
from epcap.savefile import PcapngWriter, PcapWriter

import pcapfiles as pf
from conftest import HELPER, start_file
from helpers import local_time

UTC = dt.UTC
EPOCH = dt.datetime(1970, 1, 1, tzinfo=UTC)


def unix(*when: int) -> int:
    return int(dt.datetime(*when, tzinfo=UTC).timestamp())


SECONDS = [
    2**31 - 1,  # 2038-01-19 03:14:07, the last libpcap 1.10.3 reads right
    2**31,  # 2038-01-19 03:14:08
    unix(2039, 1, 1),
    unix(2106, 1, 1),
    2**32 - 1,  # 2106-02-07 06:28:15
]
FRACTIONS = {  # valid, the largest valid, the smallest invalid, the top bit's edges
    "micro": [0, 999_999, 10**6, 2**31 - 1, 2**31, 2**32 - 1],
    "nano": [0, 999_999_999, 10**9, 2**31 - 1, 2**31, 2**32 - 1],
}
MAGIC = {0xA1B2C3D4: (1000, 16), 0xA1B2CD34: (1000, 24), 0xA1B23C4D: (1, 16)}
"""A pcap magic number: the nanoseconds of a fraction unit, the record header size."""


def grid(kind: str) -> list[pf.FieldRecord]:
    """Every seconds field with every fraction field, each packet its own."""
    records = []
    for sec in SECONDS:
        for frac in FRACTIONS[kind]:
            i = len(records)
            data = pf.eth_ipv4_udp("10.0.0.1", "10.0.0.2", 1000 + i, 53, struct.pack("!I", i))
            records.append((sec, frac, len(data), data))
    return records


def file_fields(raw: bytes) -> tuple[int, list[pf.FieldRecord]]:
    """The unit (ns) of a pcap file's fraction field and its records' fields,
    read with struct: the magic in either byte order, then records to the end."""
    for order in "<>":
        (magic,) = struct.unpack_from(order + "I", raw)
        if magic in MAGIC:
            break
    unit, header = MAGIC[magic]
    records, pos = [], 24
    while pos < len(raw):
        sec, frac, caplen, length = struct.unpack_from(order + "IIII", raw, pos)
        records.append((sec, frac, length, raw[pos + header : pos + header + caplen]))
        pos += header + caplen
    return unit, records


def expected_time(sec: int, frac: int, unit: int, precision: str) -> tuple[int, ...]:
    """What epcap must deliver for these fields, as ``exact()`` shows a time:
    (0, ns) for an int, (1, seconds, fraction) for an invalid fraction's RawTime."""
    frac_ns = frac * unit
    if precision == "micro":
        frac_ns -= frac_ns % 1000  # libpcap's scale-down, on the unsigned field
    if frac_ns < 10**9:
        return (0, sec * 10**9 + frac_ns)
    return (1, sec, frac_ns)


def exact(time: int) -> tuple[int, ...]:
    """A delivered time, its type and fields included: a RawTime is the int
    it sums to (checked here), and only its fields tell it from a carry."""
    if type(time) is int:
        return (0, time)
    assert type(time) is RawTime, type(time)
    assert time == time.seconds * 10**9 + time.fraction
    return (1, time.seconds, time.fraction)


def read(path: Path, precision: str) -> list[Packet]:
    with start_file(path, precision=precision) as cap:
        assert cap.settings["precision"] == precision  # what was asked, not the file's
        return list(cap)


def assert_read_as_the_file_says(path: Path, precision: str) -> int:
    unit, records = file_fields(path.read_bytes())
    packets = read(path, precision)
    assert [(exact(p.time), p.length, p.data) for p in packets] == [
        (expected_time(sec, frac, unit, precision), length, data)
        for sec, frac, length, data in records
    ]
    return len(packets)


@pytest.mark.parametrize("precision", ["nano", "micro"])
@pytest.mark.parametrize("big_endian", [False, True], ids=["le", "be"])
@pytest.mark.parametrize("kind", ["micro", "nano"])
def test_pcap_times_are_the_files_own_fields(
    tmp_path: Path, kind: str, big_endian: bool, precision: str
) -> None:
    path = tmp_path / "edges.pcap"
    path.write_bytes(
        pf.pcap_fields_bytes(
            grid(kind), linktype=pf.LINKTYPE_ETHERNET, nano=kind == "nano", big_endian=big_endian
        )
    )
    assert assert_read_as_the_file_says(path, precision) == len(SECONDS) * len(FRACTIONS[kind])


@pytest.mark.parametrize("precision", ["nano", "micro"])
def test_a_patched_libpcap_file_too(tmp_path: Path, precision: str) -> None:
    """Kuznetzov's magic, 0xa1b2cd34: microseconds, 24-byte record headers
    (ifindex, protocol, packet type, padding after the usual 16)."""
    out = [struct.pack("<IHHiIII", 0xA1B2CD34, 2, 4, 0, 0, 65535, pf.LINKTYPE_ETHERNET)]
    for sec, frac, length, data in grid("micro"):
        out.append(struct.pack("<IIIIiHBx", sec, frac, len(data), length, 2, 0x0800, 0) + data)
    path = tmp_path / "patched.pcap"
    path.write_bytes(b"".join(out))
    assert assert_read_as_the_file_says(path, precision) == len(SECONDS) * 6


def test_the_times_as_dates(tmp_path: Path) -> None:
    records = [(s, 999_999_999, 4, b"abcd") for s in SECONDS] + [(2**31, 2**32 - 1, 4, b"efgh")]
    path = tmp_path / "dates.pcap"
    path.write_bytes(pf.pcap_fields_bytes(records, linktype=pf.LINKTYPE_ETHERNET, nano=True))
    *valid, raw = read(path, "nano")
    assert [p.datetime for p in valid] == [
        dt.datetime(2038, 1, 19, 3, 14, 7, 999999, tzinfo=UTC),
        dt.datetime(2038, 1, 19, 3, 14, 8, 999999, tzinfo=UTC),
        dt.datetime(2039, 1, 1, 0, 0, 0, 999999, tzinfo=UTC),
        dt.datetime(2106, 1, 1, 0, 0, 0, 999999, tzinfo=UTC),
        dt.datetime(2106, 2, 7, 6, 28, 15, 999999, tzinfo=UTC),
    ]
    # an invalid fraction is still a time: the sum, 2038-01-19 03:14:08 + 4.29 s
    assert raw.time == RawTime(2**31, 2**32 - 1)
    assert raw.datetime == dt.datetime(2038, 1, 19, 3, 14, 12, 294967, tzinfo=UTC)
    assert raw.timestamp == pytest.approx(2**31 + 4.294967295)


@pytest.mark.parametrize("size", [0, 1, 2, 3, 4, 23])
def test_a_file_too_short_for_its_magic_is_libpcaps_error(tmp_path: Path, size: int) -> None:
    path = tmp_path / "short.pcap"
    path.write_bytes(pf.pcap_bytes([], linktype=pf.LINKTYPE_ETHERNET, nano=True)[:size])
    with pytest.raises(pf.LibpcapError) as theirs:
        pf.libpcap_read(path)
    with pytest.raises(epcap.CaptureFileError) as ours:
        start_file(path)
    assert ours.value.op == "pcap_fopen_offline"
    assert ours.value.message == f"{path}: {theirs.value.message}"


# -- the client's RawTime -------------------------------------------------


def test_raw_time_is_an_int_with_the_files_fields() -> None:
    raw = RawTime(2**31, 4_294_967_295_000)
    assert isinstance(raw, int) and raw == 2**31 * 10**9 + 4_294_967_295_000
    assert (raw.seconds, raw.fraction) == (2**31, 4_294_967_295_000)
    assert hash(raw) == hash(int(raw)) and {raw: 1}[int(raw)] == 1
    assert RawTime(5, 10**9) == RawTime(4, 2 * 10**9) == 6 * 10**9  # compares as an int
    assert sorted([7 * 10**9, RawTime(5, 10**9), 6 * 10**9 - 1]) == [6 * 10**9 - 1, 6e9, 7e9]
    assert type(raw + 1) is int and type(-raw) is int
    assert repr(raw) == "RawTime(seconds=2147483648, fraction=4294967295000)"
    assert str(raw) == f"{raw}" == str(int(raw))  # printed as the number it is
    for copied in [copy.copy(raw), copy.deepcopy(raw)] + [
        pickle.loads(pickle.dumps(raw, protocol)) for protocol in range(pickle.HIGHEST_PROTOCOL + 1)
    ]:
        assert type(copied) is RawTime and exact(copied) == exact(raw)
    pkt = pickle.loads(pickle.dumps(Packet(1, raw, 3, b"abc")))
    assert exact(pkt.time) == exact(raw)
    with pytest.raises(ValueError, match="valid"):
        RawTime(1, 999_999_999)
    with pytest.raises(TypeError):
        RawTime(1, 1.5e9)  # type: ignore[arg-type]
    assert "RawTime" in epcap.__all__ and RawTime.__doc__
    assert RawTime.seconds.__doc__ and RawTime.fraction.__doc__


# -- PcapWriter -------------------------------------------------------------


def time_of(sec: int, frac: int, unit: int) -> int:
    """The time epcap delivers for these fields (at the file's precision)."""
    frac_ns = frac * unit
    return sec * 10**9 + frac_ns if frac_ns < 10**9 else RawTime(sec, frac_ns)


def tcpdump_4_99_3_prints(sec: int, frac: int, kind: str) -> str:
    """What `TZ=UTC tcpdump -tttt --nano -r` (4.99.3, with libpcap 1.10.3)
    prints for a record's time: libpcap sign-extends both fields and, for a
    microsecond file, multiplies the extended fraction by 1000; tcpdump
    refuses a negative second, and prints the low 32 bits of any fraction."""
    if sec >= 2**31:
        return "[Error converting time]"
    signed = frac - 2**32 if frac >= 2**31 else frac
    shown = (signed * (1000 if kind == "micro" else 1)) % 2**32
    return f"{EPOCH + dt.timedelta(seconds=sec):%Y-%m-%d %H:%M:%S}.{shown:09d}"


@pytest.mark.parametrize("kind", ["micro", "nano"])
def test_pcap_writer_round_trips_every_time(tmp_path: Path, kind: str) -> None:
    unit = 1000 if kind == "micro" else 1
    records = grid(kind)
    packets = [Packet(1, time_of(s, f, unit), n, d) for s, f, n, d in records]
    path = tmp_path / "w.pcap"
    with PcapWriter(path, 1, precision=kind) as out:
        out.write_all(packets)
    assert file_fields(path.read_bytes()) == (unit, records)  # field for field
    assert [(exact(p.time), p.length, p.data) for p in read(path, kind)] == [
        (exact(p.time), p.length, p.data) for p in packets
    ]


@pytest.mark.parametrize("kind", ["micro", "nano"])
def test_tcpdump_reads_what_pcap_writer_wrote(tmp_path: Path, kind: str) -> None:
    """tcpdump 4.99.3 with libpcap 1.10.3 (Debian 12's) reads every record
    PcapWriter wrote, and prints a time before 2^31 seconds with a valid
    fraction as it is. The others it prints as its libpcap reads them: that
    libpcap sign-extends both 32-bit fields (and, for a microsecond file at
    --nano, scales the extended fraction), and tcpdump prints `[Error
    converting time]` for a negative second and the low 32 bits of any
    fraction. So seconds from 2^31 on are that error, and an invalid
    fraction (with seconds before 2^31) a date with a fraction of 10 digits
    or a wrong one: epcap reads right what tcpdump 4.99.3 cannot."""
    version = subprocess.run(["tcpdump", "--version"], capture_output=True, text=True).stdout
    assert "tcpdump version 4.99.3" in version and "libpcap version 1.10.3" in version, (
        f"this test knows tcpdump 4.99.3 with libpcap 1.10.3, not {version!r}"
    )
    unit = 1000 if kind == "micro" else 1
    records = grid(kind)
    path = tmp_path / "w.pcap"
    with PcapWriter(path, 1, precision=kind) as out:
        out.write_all(Packet(1, time_of(s, f, unit), n, d) for s, f, n, d in records)
    printed = subprocess.run(
        ["tcpdump", "-n", "-tttt", "--nano", "-r", str(path)],
        capture_output=True, text=True, check=True, env={**os.environ, "TZ": "UTC"},
    ).stdout.splitlines()  # fmt: skip
    assert len(printed) == len(records)
    split = {"as it is": 0, "error": 0, "invalid fraction": 0}
    for (sec, frac, _, _), line in zip(records, printed, strict=True):
        stamp = tcpdump_4_99_3_prints(sec, frac, kind)
        assert line.startswith(stamp + " "), (line, stamp)
        date = f"{EPOCH + dt.timedelta(seconds=sec):%Y-%m-%d %H:%M:%S}"
        if sec >= 2**31:
            assert stamp == "[Error converting time]"
            split["error"] += 1
        elif frac * unit < 10**9:
            assert stamp == f"{date}.{frac * unit:09d}"
            split["as it is"] += 1
        else:  # the low 32 bits of what libpcap made of the field: 10 digits, or wrong
            assert stamp.startswith(date + ".")
            split["invalid fraction"] += 1
    assert split == {"as it is": 2, "error": 4 * len(FRACTIONS[kind]), "invalid fraction": 4}


def test_pcap_writer_refuses_what_a_pcap_file_cannot_hold(tmp_path: Path) -> None:
    with (
        PcapWriter(tmp_path / "n.pcap", 1) as nano,
        PcapWriter(tmp_path / "u.pcap", 1, precision="micro") as micro,
    ):
        widest = Packet(1, RawTime(2**32 - 1, 4_294_967_295_000), 1, b"x")
        with pytest.raises(ValueError, match="32 bits"):
            nano.write(widest)  # 4294967295000 ns does not fit a nanosecond field
        micro.write(widest)  # 4294967295 us does
        with pytest.raises(ValueError, match="does not fit a pcap file"):
            micro.write(Packet(1, RawTime(2**32, 10**9), 1, b"x"))
        assert (nano.count, micro.count) == (0, 1)
    assert file_fields((tmp_path / "u.pcap").read_bytes())[1] == [(2**32 - 1, 2**32 - 1, 1, b"x")]


# -- pcapng is unaffected ---------------------------------------------------


@pytest.mark.parametrize("tsresol", [6, 9])
def test_pcapng_times_past_2106(tmp_path: Path, tsresol: int) -> None:
    when = unix(2107, 1, 1) * 10**9 + 123_456_789  # seconds beyond 32 bits
    late = [(when, 4, b"abcd"), ((2**32 - 1) * 10**9 + 999_999_999, 4, b"efgh")]
    path = tmp_path / "late.pcapng"
    pf.write_pcapng(path, late, linktype=pf.LINKTYPE_ETHERNET, tsresol=tsresol)
    drop = 10 ** (9 - tsresol)
    for precision, unit in (("nano", 1), ("micro", 1000)):
        got = [(exact(p.time), p.length, p.data) for p in read(path, precision)]
        assert got == [(exact(t // drop * drop // unit * unit), n, d) for t, n, d in late]


def test_pcapng_writer_writes_a_raw_times_sum(tmp_path: Path) -> None:
    raw = RawTime(2**31, 2**32 - 1)
    path = tmp_path / "raw.pcapng"
    with PcapngWriter(path) as out:
        out.add_interface(1)
        out.write(Packet(1, raw, 1, b"x"))
    (pkt,) = read(path, "nano")
    assert exact(pkt.time) == (0, int(raw))  # a valid time in pcapng


@pytest.mark.captures
def test_a_real_capture_in_2107(captures: list[Path]) -> None:
    path = next(p for p in captures if p.name == "time_2107.pcapng")
    packets = read(path, "nano")
    assert packets and all(exact(p.time) == (0, unix(2107, 1, 1) * 10**9) for p in packets)
    assert packets[0].datetime == dt.datetime(2107, 1, 1, tzinfo=UTC)


# -- epcap-sniff -tttt -----------------------------------------------------


def shown(sec: int, frac: int, kind: str) -> str:
    """What `-tttt` prints, in UTC, for these fields at the file's own
    precision, as tcpdump does from 4.99.4 on with libpcap 1.10.5 (its
    test suite's time_2038_overflow, time_2039, time_2106_max and
    timestamp_invalid_micro/nano outputs): the date of the unsigned seconds,
    the fraction field as it is, marked invalid from a second on."""
    digits, unit = (6, "us") if kind == "micro" else (9, "ns")
    text = f"{EPOCH + dt.timedelta(seconds=sec):%Y-%m-%d %H:%M:%S}.{frac:0{digits}d}"
    return text + (f" (invalid {unit})" if frac >= 10**digits else "")


@pytest.mark.parametrize("kind", ["micro", "nano"])
def test_epcap_epcap_sniff_and_tcpdump_agree_on_every_time(
    tmp_path: Path, kind: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each time case, through epcap's `time`, `epcap-sniff -tttt` and
    `tcpdump -tttt` (at the file's precision, TZ=UTC): epcap's time is the
    file's fields, epcap-sniff prints them as newer tcpdump does, and Debian
    12's tcpdump 4.99.3 (libpcap 1.10.3) prints the same line wherever its
    libpcap reads the fields right. Where it does not, the two known
    differences, and only they, remain: `[Error converting time]` for
    seconds from 2^31 (sign-extended), and no `(invalid us)` mark."""
    from epcap.sniff import main

    monkeypatch.setenv("EPCAPD", str(HELPER))
    unit = 1000 if kind == "micro" else 1
    udp = pf.eth_ipv4_udp("10.0.0.1", "10.0.0.2", 40000, 40001, b"time")  # no port tcpdump decodes
    records = [(sec, frac, len(udp), udp) for sec, frac, _, _ in grid(kind)]
    path = tmp_path / f"{kind}.pcap"
    path.write_bytes(pf.pcap_fields_bytes(records, linktype=1, nano=kind == "nano"))
    packets = read(path, "nano")
    assert [exact(p.time) for p in packets] == [
        expected_time(sec, frac, unit, "nano") for sec, frac, _, _ in records
    ]
    nano = ["--nano"] if kind == "nano" else []
    with local_time("UTC"):
        assert main(["-r", str(path), "-n", "-tttt", *nano, "--quiet"]) == 0
    ours = capsys.readouterr().out.splitlines()
    theirs = subprocess.run(
        ["tcpdump", "-n", "-tttt", *nano, "-r", str(path)],
        capture_output=True, text=True, check=True, env={**os.environ, "TZ": "UTC"},
    ).stdout.splitlines()  # fmt: skip
    agreed = 0
    for (sec, frac, _, _), line, their in zip(records, ours, theirs, strict=True):
        stamp = shown(sec, frac, kind)
        assert line.startswith(stamp + " "), (line, stamp)
        rest = line[len(stamp) :]
        if sec >= 2**31:
            assert their == "[Error converting time]" + rest
        else:
            assert their == line.replace(f" (invalid {'us' if kind == 'micro' else 'ns'})", "")
            agreed += their == line
    assert agreed == 2  # the two valid times before 2038
    print(f"{kind}: {len(records)} time cases; tcpdump 4.99.3's line identical for {agreed}")

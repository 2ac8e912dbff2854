"""File mode through the real helper: what epcap delivers equals, packet for
packet, what libpcap itself reads (datalink, time to the nanosecond, wire
length, bytes), for files the tests write and for ../shared/captures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import epcap

import pcapfiles as pf
from conftest import start_file


def records(cap: epcap.Capture) -> tuple[int, list[tuple[int, int, bytes]]]:
    pkts = list(cap)
    assert all(p.dlt == cap.datalink for p in pkts)
    return cap.datalink, [(p.time, p.length, p.data) for p in pkts]


def assert_same_as_libpcap(path: Path, precision: str = "nano") -> int:
    expected = pf.libpcap_read(path, precision)
    with start_file(path, precision=precision) as cap:
        assert records(cap) == expected
        assert cap.settings["precision"] == precision
        assert cap.final_stats is not None
        assert cap.final_stats["packets"] == len(expected[1])
    return len(expected[1])


MIXED = [
    (pf.SAMPLE_EPOCH_NS + 123_456_789, 60, pf.eth_ipv4_udp("10.0.0.1", "10.0.0.2", 1, 2, b"a")),
    (pf.SAMPLE_EPOCH_NS + 999_999_999, 1514, pf.eth_ipv4_tcp("10.0.0.1", "10.0.0.2", 3, 4, b"b")),
    (pf.SAMPLE_EPOCH_NS + 1_000_000_001, 9000, b"\x00" * 128),  # cut by a snaplen
    (pf.SAMPLE_EPOCH_NS + 2_000_000_000, 0, b""),
]


@pytest.mark.parametrize("nano", [False, True], ids=["micro", "nano"])
@pytest.mark.parametrize("big_endian", [False, True], ids=["le", "be"])
def test_pcap_variants(tmp_path: Path, nano: bool, big_endian: bool) -> None:
    path = tmp_path / "t.pcap"
    pf.write_pcap(path, MIXED, linktype=pf.LINKTYPE_ETHERNET, nano=nano, big_endian=big_endian)
    assert assert_same_as_libpcap(path) == len(MIXED)
    assert_same_as_libpcap(path, "micro")


@pytest.mark.parametrize("tsresol", [6, 9])
@pytest.mark.parametrize("big_endian", [False, True], ids=["le", "be"])
def test_pcapng_variants(tmp_path: Path, tsresol: int, big_endian: bool) -> None:
    path = tmp_path / "t.pcapng"
    pf.write_pcapng(
        path, MIXED, linktype=pf.LINKTYPE_RAW, tsresol=tsresol, big_endian=big_endian,
        unknown_block=True, comment="epcap test",
    )  # fmt: skip
    assert assert_same_as_libpcap(path) == len(MIXED)


def test_nanoseconds_arrive_unchanged(tmp_path: Path) -> None:
    path = tmp_path / "ns.pcap"
    when = 1_262_810_118_123_456_789
    pf.write_pcap(path, [(when, 3, b"abc")], linktype=pf.LINKTYPE_ETHERNET, nano=True)
    with start_file(path) as cap:
        (pkt,) = list(cap)
    assert pkt == epcap.Packet(1, when, 3, b"abc")
    with start_file(path, precision="micro") as cap:
        (pkt,) = list(cap)
    assert pkt.time == when // 1000 * 1000


def test_many_packets_span_many_frames(tmp_path: Path) -> None:
    path = tmp_path / "many.pcap"
    sizes = [1000 + i % 500 for i in range(3000)]
    recs = [(pf.SAMPLE_EPOCH_NS + i, n, os.urandom(n)) for i, n in enumerate(sizes)]
    pf.write_pcap(path, recs, linktype=pf.LINKTYPE_ETHERNET, nano=True)
    with start_file(path) as cap:
        batches = list(cap.batches())
    assert len(batches) > 5  # 256 KiB frames
    assert [(p.time, p.length, p.data) for b in batches for p in b] == recs


def test_filter_applies_to_files(tmp_path: Path) -> None:
    path = tmp_path / "sample.pcap"
    pf.write_pcap(path, pf.sample_records(), linktype=pf.LINKTYPE_ETHERNET, nano=True)
    with start_file(path, filter="tcp port 80") as cap:
        pkts = list(cap)
    assert len(pkts) == 8
    assert all(p.data[23] == 6 for p in pkts)  # IPv4 protocol byte: TCP


def test_truncated_file_delivers_packets_then_raises(tmp_path: Path) -> None:
    path = tmp_path / "cut.pcap"
    data = pf.pcap_bytes(MIXED[:2], linktype=pf.LINKTYPE_ETHERNET)
    path.write_bytes(data[:-10])
    got = []
    with start_file(path) as cap, pytest.raises(epcap.CaptureFileError, match="truncated"):
        got.extend(cap)
    assert [(p.time // 1000 * 1000, p.length, p.data) for p in got] == [
        (MIXED[0][0] // 1000 * 1000, MIXED[0][1], MIXED[0][2])
    ]


@pytest.mark.usefixtures("no_leftovers")
def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(epcap.CaptureFileError, match="No such file or directory") as info:
        start_file(tmp_path / "absent.pcap")
    assert info.value.errno == "ENOENT"


@pytest.mark.usefixtures("no_leftovers")
def test_not_a_capture_file(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("this is not a capture\n" * 10)
    with pytest.raises(epcap.CaptureFileError, match="unknown file format"):
        start_file(path)


def test_shared_captures_equal_libpcap(captures: list[Path]) -> None:
    total = 0
    for path in captures:
        try:
            expected = pf.libpcap_read(path)
        except pf.LibpcapError as err:
            # libpcap stops with an error on some crafted files: epcap must
            # deliver the same packets, then raise with libpcap's message.
            with start_file(path) as cap, pytest.raises(epcap.CaptureFileError) as info:
                got = []
                for pkt in cap:
                    got.append((pkt.time, pkt.length, pkt.data))
            assert got == err.records, path.name
            assert err.message in str(info.value) or str(info.value) in err.message, path.name
            continue
        with start_file(path) as cap:
            assert records(cap) == expected, path.name
        total += len(expected[1])
    assert total > 0


def test_packets_larger_than_a_frame_are_cut_to_fit(tmp_path: Path) -> None:
    # DLT_DBUS files may hold packets up to 128 MiB; a frame carries 1 MiB.
    path = tmp_path / "dbus.pcap"
    big = os.urandom(2_000_000)
    recs = [(pf.SAMPLE_EPOCH_NS, 100, b"a" * 100), (pf.SAMPLE_EPOCH_NS + 1000, len(big), big)]
    pf.write_pcap(path, recs, linktype=231, snaplen=128 << 20)
    assert pf.libpcap_read(path)[1] == recs  # libpcap hands over the whole packet
    with start_file(path) as cap:
        small, cut = list(cap)
    assert small.data == b"a" * 100
    assert cut.length == len(big)
    assert cut.data == big[: len(cut.data)]
    assert len(cut.data) == (1 << 20) - 1024


def test_a_microsecond_fraction_over_one_second_stays_as_the_file_holds_it(
    tmp_path: Path,
) -> None:
    path = tmp_path / "usec.pcap"
    good = pf.pcap_bytes([(10**18, 4, b"abcd")], linktype=pf.LINKTYPE_ETHERNET)
    # Patch the record's microseconds (after the 24-byte header and 4-byte seconds).
    path.write_bytes(good[:28] + (5_000_000).to_bytes(4, "little") + good[32:])
    for precision in ("micro", "nano"):
        with start_file(path, precision=precision) as cap:
            (pkt,) = list(cap)
        assert type(pkt.time) is epcap.RawTime  # not carried into the seconds
        assert (pkt.time.seconds, pkt.time.fraction) == (10**9, 5 * 10**9)
        assert pkt.time == (10**18 // 10**9 + 5) * 10**9


def test_snaplen_cuts_file_packets_too(tmp_path: Path) -> None:
    path = tmp_path / "cut.pcap"
    pf.write_pcap(path, MIXED, linktype=pf.LINKTYPE_ETHERNET, nano=True)
    with start_file(path, snaplen=20) as cap:
        pkts = list(cap)
        assert cap.snaplen == 20
    assert [(p.length, p.data) for p in pkts] == [(length, data[:20]) for _, length, data in MIXED]

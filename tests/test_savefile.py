"""epcap.savefile: what it writes, libpcap reads back exactly."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from epcap import Packet
from epcap.savefile import PcapngWriter, PcapWriter, linktype

import pcapfiles as pf

RECORDS = pf.sample_records()


def packets(dlt: int = 1) -> list[Packet]:
    return [Packet(dlt, t, length, data) for t, length, data in RECORDS]


@pytest.mark.parametrize("precision", ["nano", "micro"])
def test_pcap_round_trip(tmp_path: Path, precision: str) -> None:
    path = tmp_path / "w.pcap"
    with PcapWriter(path, 1, snaplen=65535, precision=precision) as out:
        out.write_all(packets())
        assert out.count == len(RECORDS)
    dlt, read = pf.libpcap_read(path, precision=precision)
    assert dlt == 1
    unit = 1 if precision == "nano" else 1000
    assert read == [(t // unit * unit, length, data) for t, length, data in RECORDS]


def test_cut_packets_keep_their_wire_length(tmp_path: Path) -> None:
    path = tmp_path / "cut.pcap"
    with PcapWriter(path, 1) as out:
        out.write(Packet(1, 5_000_000_001, 1500, b"\xaa" * 60))
    assert pf.libpcap_read(path)[1] == [(5_000_000_001, 1500, b"\xaa" * 60)]


def test_dlt_raw_is_written_as_linktype_raw(tmp_path: Path) -> None:
    assert linktype(12) == 101 and linktype(1) == 1
    path = tmp_path / "raw.pcap"
    ip = pf.ipv4("10.0.0.1", "10.0.0.2", pf.IPPROTO_UDP, pf.udp("10.0.0.1", "10.0.0.2", 1, 2, b"x"))
    with PcapWriter(path, 12) as out:
        out.write(Packet(12, 10**9, len(ip), ip))
    assert path.read_bytes()[20:24] == (101).to_bytes(4, "little")
    assert pf.libpcap_read(path) == (12, [(10**9, len(ip), ip)])


def test_pcapng_with_two_interfaces(tmp_path: Path) -> None:
    path = tmp_path / "two.pcapng"
    with PcapngWriter(path) as out:
        a = out.add_interface(1, 262144, "eth0")
        b = out.add_interface(1, 262144, "eth1")
        for i, pkt in enumerate(packets()):
            out.write(pkt, a if i % 2 else b)
        with pytest.raises(ValueError, match="no interface 2"):
            out.write(packets()[0], 2)
    assert pf.libpcap_read(path) == (1, RECORDS)


def test_a_given_stream_is_flushed_not_closed() -> None:
    stream = io.BytesIO()
    with PcapWriter(stream, 1) as out:
        out.write(packets()[0])
    assert not stream.closed
    assert len(stream.getvalue()) == 24 + 16 + len(RECORDS[0][2])


def test_bad_precision() -> None:
    with pytest.raises(ValueError, match="precision"):
        PcapWriter(io.BytesIO(), 1, precision="milli")


def test_times_a_file_cannot_hold_are_refused(tmp_path: Path) -> None:
    late, early = Packet(1, 2**32 * 10**9, 60, b"x" * 60), Packet(1, -1, 60, b"x" * 60)
    with PcapWriter(tmp_path / "t.pcap", 1) as out:
        for pkt in (late, early):
            with pytest.raises(ValueError, match="does not fit a pcap file"):
                out.write(pkt)
        with pytest.raises(ValueError, match="no interface 1"):
            out.write(packets()[0], 1)
        assert out.count == 0
    with PcapngWriter(tmp_path / "t.pcapng") as ng:
        ng.add_interface(1)
        ng.write(late)  # pcapng holds it: 64 bits of nanoseconds
        with pytest.raises(ValueError, match="does not fit a pcapng file"):
            ng.write(early)
    assert pf.libpcap_read(tmp_path / "t.pcapng")[1] == [(late.time, 60, late.data)]

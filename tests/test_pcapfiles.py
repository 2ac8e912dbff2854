"""Prove the fixture module right, using libpcap itself as the judge."""

from __future__ import annotations

import ipaddress
import struct
from pathlib import Path

import pytest

from pcapfiles import (
    ETHERTYPE_ARP,
    ETHERTYPE_IPV4,
    ETHERTYPE_IPV6,
    IPPROTO_ICMP,
    IPPROTO_ICMPV6,
    IPPROTO_TCP,
    IPPROTO_UDP,
    LINKTYPE_ETHERNET,
    LINKTYPE_LINUX_SLL,
    MAC_A,
    MAC_B,
    PCAPNG_UNKNOWN_BLOCK,
    LibpcapError,
    Record,
    arp_request,
    eth_ipv4_tcp,
    eth_ipv4_udp,
    eth_ipv6_udp,
    ether,
    icmp_echo,
    icmpv6_echo,
    ipv4,
    ipv6,
    libpcap_datalink_name,
    libpcap_read,
    pcap_bytes,
    pcap_fields_bytes,
    pcapng_bytes,
    sample_records,
    sll,
    tcp,
    time_key,
    udp,
    write_pcap,
    write_pcapng,
)

EPOCH_2026_NS = 1_767_225_600 * 10**9  # 2026-01-01T00:00:00Z


# ---------------------------------------------------------------------------
# Independent helpers (deliberately not using the module's checksum code)
# ---------------------------------------------------------------------------


def fold(data: bytes) -> int:
    """One's-complement sum of 16-bit big-endian words, folded to 16 bits."""
    if len(data) & 1:
        data = data + b"\0"
    total = sum(int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2))
    while total >> 16:
        total = (total >> 16) + (total & 0xFFFF)
    return total


def pseudo(src: str, dst: str, proto: int, length: int) -> bytes:
    """Build the pseudo-header by hand for either address family."""
    s = ipaddress.ip_address(src).packed
    d = ipaddress.ip_address(dst).packed
    if len(s) == 4:
        return s + d + bytes([0, proto]) + length.to_bytes(2, "big")
    return s + d + length.to_bytes(4, "big") + bytes([0, 0, 0, proto])


def truncate_to_micro(records: list[Record]) -> list[Record]:
    """What a microsecond file or reader gives back for ``records``."""
    return [(t // 1000 * 1000, n, d) for t, n, d in records]


def mixed_records() -> list[Record]:
    """Sample session plus edge cases: a snapped record, empty data, odd times."""
    records = sample_records()
    big = eth_ipv4_udp("192.168.1.10", "192.168.1.1", 4000, 5000, bytes(1472))
    last = records[-1][0]
    records.append((last + 1_000_000_007, len(big), big[:96]))
    records.append((last + 2_999_999_999, 60, b""))
    records.append((last + 3_000_000_001, len(big), big))
    return records


# ---------------------------------------------------------------------------
# Classic pcap
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("big_endian", [False, True], ids=["le", "be"])
@pytest.mark.parametrize("nano", [False, True], ids=["micro", "nano"])
def test_pcap_round_trip(tmp_path: Path, nano: bool, big_endian: bool) -> None:
    """libpcap reads back exactly what write_pcap wrote, in every flavour."""
    records = mixed_records()
    path = tmp_path / "x.pcap"
    write_pcap(path, records, linktype=LINKTYPE_ETHERNET, nano=nano, big_endian=big_endian)

    magic = 0xA1B23C4D if nano else 0xA1B2C3D4
    head = path.read_bytes()[:24]
    assert head[:4] == magic.to_bytes(4, "big" if big_endian else "little")
    assert head[20:24] == (1).to_bytes(4, "big" if big_endian else "little")

    datalink, got = libpcap_read(path)
    assert datalink == LINKTYPE_ETHERNET
    assert got == (records if nano else truncate_to_micro(records))


@pytest.mark.parametrize("nano", [False, True], ids=["micro", "nano"])
def test_pcap_read_at_micro_precision(tmp_path: Path, nano: bool) -> None:
    """Asking libpcap for microseconds truncates nanosecond files."""
    records = sample_records()
    path = tmp_path / "x.pcap"
    write_pcap(str(path), records, linktype=LINKTYPE_ETHERNET, nano=nano)
    _, got = libpcap_read(str(path), precision="micro")
    assert got == truncate_to_micro(records)
    assert got != records  # the sample really has sub-microsecond digits


@pytest.mark.parametrize("big_endian", [False, True], ids=["le", "be"])
def test_pcap_times_are_the_files_unsigned_fields(tmp_path: Path, big_endian: bool) -> None:
    """pcap_fields_bytes writes any 32-bit time fields, and libpcap_read
    takes a pcap file's times from them, unsigned, where libpcap 1.10.3
    sign-extends: seconds past 2038, and a fraction of a second or more as
    a RawTime (cut to whole microseconds at "micro"); the records, their
    lengths and bytes are still libpcap's."""
    fields = [
        (2**31 - 1, 999_999_999, 3, b"abc"),
        (2**31, 0, 3, b"def"),
        (2**32 - 1, 2**32 - 1, 3, b"ghi"),
    ]
    blob = pcap_fields_bytes(fields, linktype=LINKTYPE_ETHERNET, nano=True, big_endian=big_endian)
    order = ">" if big_endian else "<"
    assert struct.unpack_from(order + "IIII", blob, 24 + 19 * 2) == (2**32 - 1, 2**32 - 1, 3, 3)
    path = tmp_path / "late.pcap"
    path.write_bytes(blob[:-1])  # the last record cut short: libpcap's error
    with pytest.raises(LibpcapError) as info:
        libpcap_read(path)
    assert info.value.records == [
        ((2**31 - 1) * 10**9 + 999_999_999, 3, b"abc"),
        (2**31 * 10**9, 3, b"def"),
    ]
    path.write_bytes(blob)
    for precision, unit in (("nano", 1), ("micro", 1000)):
        _, got = libpcap_read(path, precision)
        last = (2**32 - 1) // unit * unit
        assert [(time_key(t), n, d) for t, n, d in got] == [
            (((2**31 - 1) * 10**9 + 999_999_999 // unit * unit,), 3, b"abc"),
            ((2**31 * 10**9,), 3, b"def"),
            (((2**32 - 1) * 10**9 + last, 2**32 - 1, last), 3, b"ghi"),
        ]


def test_pcap_linktype_and_snaplen_written(tmp_path: Path) -> None:
    """The header carries the requested linktype and snaplen."""
    frames = [sll(b"\x45" + bytes(19), ETHERTYPE_IPV4, pkttype=4, addr=MAC_A)]
    records = [(EPOCH_2026_NS + 5, len(frames[0]), frames[0])]
    blob = pcap_bytes(records, linktype=LINKTYPE_LINUX_SLL, nano=True, snaplen=1500)
    assert struct.unpack("<II", blob[16:24]) == (1500, LINKTYPE_LINUX_SLL)
    path = tmp_path / "sll.pcap"
    path.write_bytes(blob)
    assert libpcap_read(path) == (LINKTYPE_LINUX_SLL, records)


# ---------------------------------------------------------------------------
# pcapng
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("comment", [None, "epcap fixture \u00e9"], ids=["nocomment", "comment"])
@pytest.mark.parametrize("unknown_block", [False, True], ids=["plain", "unknown"])
@pytest.mark.parametrize("big_endian", [False, True], ids=["le", "be"])
@pytest.mark.parametrize("tsresol", [6, 9])
def test_pcapng_round_trip(
    tmp_path: Path,
    tsresol: int,
    big_endian: bool,
    unknown_block: bool,
    comment: str | None,
) -> None:
    """libpcap reads back exactly what write_pcapng wrote, in every flavour."""
    records = mixed_records()
    path = tmp_path / "x.pcapng"
    write_pcapng(
        path,
        records,
        linktype=LINKTYPE_ETHERNET,
        tsresol=tsresol,
        big_endian=big_endian,
        unknown_block=unknown_block,
        comment=comment,
    )

    blob = path.read_bytes()
    order = ">" if big_endian else "<"
    assert struct.unpack(order + "I", blob[8:12])[0] == 0x1A2B3C4D
    assert (struct.pack(order + "I", PCAPNG_UNKNOWN_BLOCK) in blob) == unknown_block
    if comment is not None:
        assert comment.encode() in blob
    # Every block's leading and trailing lengths agree and are 4-aligned.
    offset = 0
    while offset < len(blob):
        (total,) = struct.unpack(order + "I", blob[offset + 4 : offset + 8])
        assert total % 4 == 0
        assert blob[offset + total - 4 : offset + total] == blob[offset + 4 : offset + 8]
        offset += total
    assert offset == len(blob)

    datalink, got = libpcap_read(path)
    assert datalink == LINKTYPE_ETHERNET
    assert got == (records if tsresol == 9 else truncate_to_micro(records))


@pytest.mark.parametrize("tsresol", [0, 3, 6, 9])
def test_pcapng_tsresol_option(tmp_path: Path, tsresol: int) -> None:
    """if_tsresol is present exactly when needed and libpcap honours it."""
    records = sample_records()
    blob = pcapng_bytes(records, linktype=LINKTYPE_ETHERNET, tsresol=tsresol)
    (shb_len,) = struct.unpack("<I", blob[4:8])
    (idb_len,) = struct.unpack("<I", blob[shb_len + 4 : shb_len + 8])
    idb = blob[shb_len : shb_len + idb_len]
    option = struct.pack("<HHB3x", 9, 1, tsresol)
    assert (option in idb[16:-4]) == (tsresol != 6)

    path = tmp_path / "x.pcapng"
    path.write_bytes(blob)
    _, got = libpcap_read(path)
    unit = 10 ** (9 - tsresol)
    assert got == [(t // unit * unit, n, d) for t, n, d in records]


# ---------------------------------------------------------------------------
# Snapped records, damaged and foreign files
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["pcap", "pcapng"])
def test_truncated_record_keeps_both_lengths(tmp_path: Path, fmt: str) -> None:
    """A record captured shorter than the wire keeps caplen and len apart."""
    frame = eth_ipv4_tcp("192.168.1.10", "192.168.1.80", 1234, 80, b"x" * 1400, flags="PA")
    record = (EPOCH_2026_NS + 987_654_321, len(frame), frame[:54])
    path = tmp_path / f"snap.{fmt}"
    if fmt == "pcap":
        write_pcap(path, [record], linktype=LINKTYPE_ETHERNET, nano=True)
    else:
        write_pcapng(path, [record], linktype=LINKTYPE_ETHERNET)
    _, got = libpcap_read(path)
    assert got == [record]
    assert got[0][1] == 1454
    assert len(got[0][2]) == 54


def _file_bytes(fmt: str, records: list[Record]) -> bytes:
    if fmt == "pcap":
        return pcap_bytes(records, linktype=LINKTYPE_ETHERNET, nano=True)
    return pcapng_bytes(records, linktype=LINKTYPE_ETHERNET)


@pytest.mark.parametrize("where", [6, 20, 40], ids=["in-header", "early-data", "late-data"])
@pytest.mark.parametrize("fmt", ["pcap", "pcapng"])
def test_cut_mid_record_raises_with_records_so_far(tmp_path: Path, fmt: str, where: int) -> None:
    """A file cut inside its last record: error, but earlier records survive."""
    records = sample_records()
    full = _file_bytes(fmt, records)
    prefix = _file_bytes(fmt, records[:-1])
    assert full.startswith(prefix)
    path = tmp_path / f"cut.{fmt}"
    path.write_bytes(full[: len(prefix) + where])

    with pytest.raises(LibpcapError, match="truncated") as info:
        libpcap_read(path)
    assert info.value.datalink == LINKTYPE_ETHERNET
    assert info.value.records == records[:-1]
    assert str(info.value) == info.value.message


@pytest.mark.parametrize("fmt", ["pcap", "pcapng"])
def test_cut_at_record_boundary_is_clean_eof(tmp_path: Path, fmt: str) -> None:
    """Cutting between records is not an error: libpcap just sees fewer."""
    records = sample_records()
    path = tmp_path / f"short.{fmt}"
    path.write_bytes(_file_bytes(fmt, records[:5]))
    assert libpcap_read(path) == (LINKTYPE_ETHERNET, records[:5])


def test_non_capture_file_raises_libpcap_message(tmp_path: Path) -> None:
    """A text file is refused with libpcap's own explanation."""
    path = tmp_path / "notes.txt"
    path.write_text("these are not the packets you are looking for\n" * 4)
    with pytest.raises(LibpcapError, match="unknown file format") as info:
        libpcap_read(path)
    assert info.value.datalink is None
    assert info.value.records == []


def test_missing_file_raises(tmp_path: Path) -> None:
    """Opening a file that does not exist reports libpcap's errbuf text."""
    with pytest.raises(LibpcapError, match="No such file"):
        libpcap_read(tmp_path / "absent.pcap")


def test_bad_arguments_rejected(tmp_path: Path) -> None:
    """Writers refuse len(data) > length; the reader refuses odd precisions."""
    with pytest.raises(ValueError, match="wire length"):
        pcap_bytes([(0, 3, b"abcd")], linktype=LINKTYPE_ETHERNET)
    with pytest.raises(ValueError, match="wire length"):
        pcapng_bytes([(0, 3, b"abcd")], linktype=LINKTYPE_ETHERNET)
    path = tmp_path / "ok.pcap"
    write_pcap(path, [], linktype=LINKTYPE_ETHERNET)
    with pytest.raises(ValueError, match="precision"):
        libpcap_read(path, precision="pico")
    assert libpcap_read(path) == (LINKTYPE_ETHERNET, [])


def test_datalink_names() -> None:
    """libpcap's names for a few DLT values, and None for an unassigned one."""
    assert libpcap_datalink_name(LINKTYPE_ETHERNET) == "EN10MB"
    assert libpcap_datalink_name(LINKTYPE_LINUX_SLL) == "LINUX_SLL"
    assert libpcap_datalink_name(9999) is None


# ---------------------------------------------------------------------------
# Builders and checksums
# ---------------------------------------------------------------------------


def test_ipv4_header_checksum() -> None:
    """The IPv4 header sums to 0xffff and its fields are where they belong."""
    packet = ipv4("10.1.2.3", "172.16.9.8", IPPROTO_UDP, b"hello", ttl=17, ident=0xABCD)
    assert len(packet) == 25
    assert packet[0] == 0x45
    assert struct.unpack("!H", packet[2:4])[0] == 25
    assert struct.unpack("!H", packet[4:6])[0] == 0xABCD
    assert packet[8] == 17
    assert packet[9] == IPPROTO_UDP
    assert packet[12:16] == bytes([10, 1, 2, 3])
    assert packet[16:20] == bytes([172, 16, 9, 8])
    assert packet[20:] == b"hello"
    assert fold(packet[:20]) == 0xFFFF
    broken = packet[:8] + bytes([16]) + packet[9:20]
    assert fold(broken) != 0xFFFF


def test_ipv6_header_fields() -> None:
    """The IPv6 header has version 6, payload length, next header, hop limit."""
    packet = ipv6("fd00::1", "fd00::2", IPPROTO_UDP, b"abc", hop_limit=3)
    assert len(packet) == 43
    assert packet[0] >> 4 == 6
    assert struct.unpack("!HBB", packet[4:8]) == (3, IPPROTO_UDP, 3)
    assert packet[8:24] == ipaddress.IPv6Address("fd00::1").packed
    assert packet[24:40] == ipaddress.IPv6Address("fd00::2").packed


@pytest.mark.parametrize(
    ("src", "dst"),
    [("192.168.7.1", "192.168.7.254"), ("fd00:1::17", "fd00:2::99")],
    ids=["v4", "v6"],
)
@pytest.mark.parametrize("payload", [b"", b"odd", b"even", bytes(range(256)) * 5])
def test_udp_checksum(src: str, dst: str, payload: bytes) -> None:
    """UDP checksum verifies over the right pseudo-header, and only that one."""
    segment = udp(src, dst, 1111, 2222, payload)
    assert struct.unpack("!HHH", segment[:6]) == (1111, 2222, 8 + len(payload))
    assert segment[8:] == payload
    assert segment[6:8] != b"\0\0"
    assert fold(pseudo(src, dst, IPPROTO_UDP, len(segment)) + segment) == 0xFFFF
    assert fold(pseudo(src, dst, IPPROTO_TCP, len(segment)) + segment) != 0xFFFF


@pytest.mark.parametrize(
    ("src", "dst"),
    [("192.168.7.1", "192.168.7.254"), ("fd00:1::17", "fd00:2::99")],
    ids=["v4", "v6"],
)
@pytest.mark.parametrize(
    ("flags", "bits"),
    [
        ("S", 0x02),
        ("SA", 0x12),
        ("FA", 0x11),
        ("PA", 0x18),
        ("R", 0x04),
        ("FSRPAU", 0x3F),
    ],
)
def test_tcp_checksum_and_flags(src: str, dst: str, flags: str, bits: int) -> None:
    """TCP checksum verifies over the pseudo-header; flags and fields land right."""
    segment = tcp(
        src,
        dst,
        40000,
        443,
        b"payload!?",
        seq=0xDEADBEEF,
        ack=7,
        flags=flags,
        window=1234,
    )
    sport, dport, seq, ack, off_flags, window = struct.unpack("!HHIIHH", segment[:16])
    assert (sport, dport, seq, ack, window) == (40000, 443, 0xDEADBEEF, 7, 1234)
    assert off_flags >> 12 == 5
    assert off_flags & 0x3F == bits
    assert fold(pseudo(src, dst, IPPROTO_TCP, len(segment)) + segment) == 0xFFFF
    flipped = segment[:20] + b"Payload!?"
    assert fold(pseudo(src, dst, IPPROTO_TCP, len(flipped)) + flipped) != 0xFFFF


def test_icmp_checksums() -> None:
    """ICMP sums over the message; ICMPv6 over the v6 pseudo-header too."""
    request = icmp_echo(0x1234, 7, b"ping data")
    reply = icmp_echo(0x1234, 7, b"ping data", reply=True)
    assert request[0] == 8
    assert reply[0] == 0
    assert struct.unpack("!HH", request[4:8]) == (0x1234, 7)
    assert fold(request) == 0xFFFF
    assert fold(reply) == 0xFFFF

    src, dst = "fd00::a", "fd00::b"
    msg6 = icmpv6_echo(src, dst, 0x55, 9, b"ping6 data")
    reply6 = icmpv6_echo(src, dst, 0x55, 9, b"ping6 data", reply=True)
    assert (msg6[0], reply6[0]) == (128, 129)
    assert fold(pseudo(src, dst, IPPROTO_ICMPV6, len(msg6)) + msg6) == 0xFFFF
    assert fold(pseudo(src, dst, IPPROTO_ICMPV6, len(reply6)) + reply6) == 0xFFFF
    assert fold(msg6) != 0xFFFF  # the pseudo-header really is part of the sum


def test_ether_with_and_without_vlan() -> None:
    """Ethernet header layout, with the 802.1Q tag only when asked."""
    plain = ether(MAC_B, MAC_A, ETHERTYPE_IPV4, b"data")
    assert plain == MAC_B + MAC_A + b"\x08\x00data"
    tagged = ether(MAC_B, MAC_A, ETHERTYPE_IPV6, b"data", vlan=42)
    assert tagged == MAC_B + MAC_A + b"\x81\x00\x00\x2a\x86\xdddata"
    frame = eth_ipv4_udp("192.168.1.2", "192.168.1.3", 1, 2, b"q", vlan=7)
    assert frame[12:18] == b"\x81\x00\x00\x07\x08\x00"
    assert fold(frame[18:38]) == 0xFFFF


def test_arp_and_sll_layout() -> None:
    """ARP request and Linux cooked header fields."""
    arp = arp_request(MAC_A, "192.168.1.10", "192.168.1.1")
    assert len(arp) == 28
    assert struct.unpack("!HHBBH", arp[:8]) == (1, 0x0800, 6, 4, 1)
    assert arp[8:14] == MAC_A
    assert arp[14:18] == bytes([192, 168, 1, 10])
    assert arp[18:24] == bytes(6)
    assert arp[24:28] == bytes([192, 168, 1, 1])

    cooked = sll(b"payload", ETHERTYPE_ARP, pkttype=4, addr=MAC_B)
    assert len(cooked) == 16 + 7
    assert struct.unpack("!HHH", cooked[:6]) == (4, 1, 6)
    assert cooked[6:14] == MAC_B + b"\0\0"
    assert cooked[14:16] == b"\x08\x06"
    assert cooked[16:] == b"payload"


def test_convenience_frames_checksums() -> None:
    """eth_ipv4_tcp / eth_ipv6_udp frames carry valid checksums end to end."""
    frame = eth_ipv4_tcp("192.168.1.10", "192.168.1.80", 5555, 80, b"GET", 1, 2, "PA")
    assert frame[:12] == MAC_B + MAC_A
    assert frame[12:14] == b"\x08\x00"
    assert frame[23] == IPPROTO_TCP
    assert fold(frame[14:34]) == 0xFFFF
    seg = frame[34:]
    assert fold(pseudo("192.168.1.10", "192.168.1.80", IPPROTO_TCP, len(seg)) + seg) == 0xFFFF

    frame6 = eth_ipv6_udp("fd00::1", "fd00::2", 53, 53, b"v6!")
    assert frame6[12:14] == b"\x86\xdd"
    assert frame6[20] == IPPROTO_UDP
    seg6 = frame6[54:]
    assert fold(pseudo("fd00::1", "fd00::2", IPPROTO_UDP, len(seg6)) + seg6) == 0xFFFF


# ---------------------------------------------------------------------------
# The sample session
# ---------------------------------------------------------------------------


def classify(frame: bytes) -> str:
    """Name what an Ethernet frame carries, parsed independently of the builders."""
    (ethertype,) = struct.unpack("!H", frame[12:14])
    if ethertype == ETHERTYPE_ARP:
        return "arp"
    if ethertype == ETHERTYPE_IPV6:
        return "ipv6-udp" if frame[20] == IPPROTO_UDP else "ipv6"
    if ethertype != ETHERTYPE_IPV4:
        return "other"
    proto = frame[23]
    ihl = (frame[14] & 0x0F) * 4
    sport, dport = struct.unpack("!HH", frame[14 + ihl : 18 + ihl])
    if proto == IPPROTO_ICMP:
        return "icmp"
    if proto == IPPROTO_UDP and 53 in (sport, dport):
        return "udp53"
    if proto == IPPROTO_TCP and 80 in (sport, dport):
        return "tcp80"
    return "ipv4-other"


def test_sample_is_deterministic_and_well_formed() -> None:
    """Same bytes every call; times from 2026-01-01 with sub-microsecond digits."""
    first = sample_records()
    assert first == sample_records()
    assert 10 <= len(first) <= 20
    times = [t for t, _, _ in first]
    assert times == sorted(times)
    assert len(set(times)) == len(times)
    assert EPOCH_2026_NS <= times[0] < EPOCH_2026_NS + 10**9
    assert all(t % 1000 != 0 for t in times)
    assert all(n == len(d) for _, n, d in first)


def test_sample_contents() -> None:
    """ARP, ICMP, DNS, HTTP and IPv6 traffic are all present."""
    kinds = [classify(d) for _, _, d in sample_records()]
    for kind in ("arp", "icmp", "udp53", "tcp80", "ipv6-udp"):
        assert kind in kinds, kind
    assert kinds.count("arp") == 2
    assert kinds.count("icmp") == 2
    assert kinds.count("udp53") == 2
    assert kinds.count("tcp80") >= 7
    frames = [d for _, _, d in sample_records()]
    arp_ops = [struct.unpack("!H", f[20:22])[0] for f in frames if classify(f) == "arp"]
    assert arp_ops == [1, 2]  # request, then reply
    icmp_types = [f[34] for f in frames if classify(f) == "icmp"]
    assert icmp_types == [8, 0]  # echo request, then echo reply
    dns_flags = [f[44] >> 7 for f in frames if classify(f) == "udp53"]
    assert dns_flags == [0, 1]  # query, then response (QR bit)
    payloads = b"".join(d for _, _, d in sample_records())
    assert b"GET / HTTP/1.1\r\n" in payloads
    assert b"HTTP/1.1 200 OK\r\n" in payloads
    assert b"\x03www\x07example\x03com\x00" in payloads


def test_sample_checksums_all_verify() -> None:
    """Every IPv4 header and every UDP/TCP/ICMP checksum in the sample is right."""
    checked = 0
    for _, _, frame in sample_records():
        (ethertype,) = struct.unpack("!H", frame[12:14])
        if ethertype == ETHERTYPE_IPV4:
            header = frame[14:34]
            assert fold(header) == 0xFFFF
            total = struct.unpack("!H", header[2:4])[0]
            body = frame[34 : 14 + total]
            src = str(ipaddress.IPv4Address(header[12:16]))
            dst = str(ipaddress.IPv4Address(header[16:20]))
            if header[9] == IPPROTO_ICMP:
                assert fold(body) == 0xFFFF
            else:
                assert fold(pseudo(src, dst, header[9], len(body)) + body) == 0xFFFF
            checked += 1
        elif ethertype == ETHERTYPE_IPV6:
            header = frame[14:54]
            body = frame[54:]
            src = str(ipaddress.IPv6Address(header[8:24]))
            dst = str(ipaddress.IPv6Address(header[24:40]))
            assert fold(pseudo(src, dst, header[6], len(body)) + body) == 0xFFFF
            checked += 1
    assert checked == len(sample_records()) - 2  # all but the two ARP frames


def test_sample_tcp_sequence_numbers_follow() -> None:
    """The HTTP conversation's seq/ack numbers advance like a real stream."""
    segments = []
    for _, _, frame in sample_records():
        if classify(frame) == "tcp80":
            seg = frame[34:]
            sport, _, seq, ack, off_flags = struct.unpack("!HHIIH", seg[:14])
            segments.append((sport == 80, seq, ack, off_flags & 0x3F, len(seg) - 20))
    next_seq = {False: segments[0][1], True: segments[1][1]}
    for from_server, seq, ack, flags, size in segments:
        assert seq == next_seq[from_server]
        if flags & 0x10:
            assert ack == next_seq[not from_server]
        next_seq[from_server] = seq + size + (1 if flags & 0x03 else 0)
    assert [f for _, _, _, f, _ in segments][:3] == [0x02, 0x12, 0x10]


@pytest.mark.parametrize("fmt", ["pcap", "pcapng"])
def test_sample_round_trips(tmp_path: Path, fmt: str) -> None:
    """The sample goes through libpcap unchanged at nanosecond precision."""
    records = sample_records()
    path = tmp_path / f"sample.{fmt}"
    path.write_bytes(_file_bytes(fmt, records))
    assert libpcap_read(path) == (LINKTYPE_ETHERNET, records)

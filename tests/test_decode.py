"""Packet.decode(): known packets give known fields, damaged ones decode as
far as they go, and no bytes at all make it raise."""

from __future__ import annotations

import json
import struct
import time
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from epcap import Packet
from epcap.decode import DATALINKS, decode

import pcapfiles as pf
from strategies import frames

T0 = 1_767_225_600_123_456_789  # 2026-01-01 00:00:00.123456789 UTC
MAC_SRC = bytes.fromhex("0016b6a1b2c3")
MAC_DST = bytes.fromhex("0015af010203")


def pkt(dlt: int, data: bytes, length: int | None = None) -> Packet:
    return Packet(dlt, T0, len(data) if length is None else length, data)


def tcp_ipv4() -> bytes:
    seg = pf.tcp(
        "207.97.227.239", "192.168.1.2", 80, 56934, b"HTTP/1.1 301 Moved\r\n",
        seq=0x01020304, ack=0xA0B0C0D0, flags="PA", window=501,
    )  # fmt: skip
    ip = pf.ipv4("207.97.227.239", "192.168.1.2", pf.IPPROTO_TCP, seg, ttl=57, ident=4242)
    return pf.ether(MAC_DST, MAC_SRC, pf.ETHERTYPE_IPV4, ip)


def test_tcp_over_ipv4_over_ethernet() -> None:
    d = pkt(1, tcp_ipv4()).decode()
    assert d.layers == ["ethernet", "ipv4", "tcp"]
    assert d.error is None
    assert (d.source_macaddr, d.destination_macaddr) == ("00:16:b6:a1:b2:c3", "00:15:af:01:02:03")
    assert (d.source_address, d.source_port) == ("207.97.227.239", 80)
    assert (d.destination_address, d.destination_port) == ("192.168.1.2", 56934)
    assert d.protocol == "tcp"
    assert d.protocol_header["flags"] == ["ack", "psh"]
    assert d.protocol_header["seq"] == 0x01020304
    assert d.protocol_header["ack"] == 0xA0B0C0D0
    assert d.protocol_header["window"] == 501
    assert d.network_header["ttl"] == 57
    assert d.network_header["id"] == 4242
    assert d.payload == b"HTTP/1.1 301 Moved\r\n"
    assert d.payload_bytes == 20
    assert (d.caplen, d.length) == (74, 74)
    assert d.timestring(9, utc=True) == "2026-01-01 00:00:00.123456789"
    assert d.timestring(6, utc=True) == "2026-01-01 00:00:00.123456"
    report = d.report(9, utc=True).splitlines()
    assert report[:4] == [
        'time: "2026-01-01 00:00:00.123456789"',
        "caplen: 74",
        "len: 74",
        'source_macaddr: "00:16:b6:a1:b2:c3"',
    ]
    assert 'payload: "HTTP/1.1 301 Moved.."' in report
    assert "payload_bytes: 20" in report


def test_tcp_options_are_named() -> None:
    opts = bytes.fromhex("020405b40402080a000000010000000201030307")
    seg = struct.pack("!HHIIHHHH", 1, 2, 3, 0, ((5 + len(opts) // 4) << 12) | 0x02, 64240, 0, 0)
    ip = pf.ipv4("10.0.0.1", "10.0.0.2", pf.IPPROTO_TCP, seg + opts)
    d = pkt(12, ip).decode()
    assert d.protocol_header["options"] == [
        "mss 1460",
        "sackOK",
        "TS val 1 ecr 2",
        "nop",
        "wscale 7",
    ]
    assert d.protocol_header["flags"] == ["syn"]


def ipv6_with_extensions() -> bytes:
    payload = pf.udp("2001:db8::1", "2001:db8::2", 5353, 53, b"query")
    fragment = struct.pack("!BBHI", pf.IPPROTO_UDP, 0, 0x0001, 0xDEADBEEF)  # offset 0, M
    hop_by_hop = struct.pack("!BB", 44, 0) + b"\x01\x04\x00\x00\x00\x00"  # PadN
    ip = pf.ipv6("2001:db8::1", "2001:db8::2", 0, hop_by_hop + fragment + payload, hop_limit=7)
    return pf.ether(MAC_DST, MAC_SRC, pf.ETHERTYPE_IPV6, ip)


def test_ipv6_with_extension_headers() -> None:
    d = pkt(1, ipv6_with_extensions()).decode()
    assert d.error is None
    assert d.layers == ["ethernet", "ipv6", "udp"]
    assert d.network_header["extension_headers"] == ["hop-by-hop", "fragment"]
    assert d.network_header["hop_limit"] == 7
    assert d.network_header["more_fragments"] is True
    assert d.network_header["id"] == 0xDEADBEEF
    assert (d.source_address, d.destination_address) == ("2001:db8::1", "2001:db8::2")
    assert (d.source_port, d.destination_port, d.protocol) == (5353, 53, "udp")
    assert d.payload == b"query"


def test_a_later_ipv6_fragment_has_no_transport_header() -> None:
    fragment = struct.pack("!BBHI", pf.IPPROTO_TCP, 0, 185 << 3, 7)
    ip = pf.ipv6("2001:db8::1", "2001:db8::2", 44, fragment + b"x" * 24)
    d = pkt(229, ip).decode()
    assert d.layers == ["ipv6"]
    assert (d.protocol, d.source_port, d.error) == ("tcp", None, None)
    assert d.network_header["fragment_offset"] == 185
    assert d.payload == b"x" * 24


def test_linux_cooked_v1_and_v2() -> None:
    ip = pf.ipv4("10.1.1.1", "10.1.1.2", pf.IPPROTO_UDP, pf.udp("10.1.1.1", "10.1.1.2", 7, 9, b"v"))
    d1 = pkt(113, pf.sll(ip, pf.ETHERTYPE_IPV4, pkttype=4, addr=MAC_SRC)).decode()
    sll2 = struct.pack("!HHiHBB8s", pf.ETHERTYPE_IPV4, 0, 3, 1, 0, 6, MAC_SRC + b"\0\0") + ip
    d2 = pkt(276, sll2).decode()
    for d, link in ((d1, "linux-sll"), (d2, "linux-sll2")):
        assert d.error is None
        assert d.layers == [link, "ipv4", "udp"]
        assert d.source_macaddr == "00:16:b6:a1:b2:c3"
        assert (d.source_address, d.destination_address) == ("10.1.1.1", "10.1.1.2")
        assert (d.source_port, d.destination_port, d.payload) == (7, 9, b"v")
    assert d1.network_header["packet_type"] == "outgoing"
    assert d1.datalink == "LINUX_SLL"
    assert d2.network_header["interface_index"] == 3
    assert d2.network_header["packet_type"] == "host"


def test_double_vlan_tags() -> None:
    ip = pf.ipv4("10.2.0.1", "10.2.0.2", pf.IPPROTO_ICMP, pf.icmp_echo(77, 5, b"ping"))
    inner = struct.pack("!HH", 0x8100, 100) + struct.pack("!H", pf.ETHERTYPE_IPV4) + ip
    frame = MAC_DST + MAC_SRC + struct.pack("!HH", 0x88A8, (3 << 13) | 20) + inner
    d = pkt(1, frame).decode()
    assert d.error is None
    assert d.layers == ["ethernet", "802.1ad", "802.1q", "ipv4", "icmp"]
    assert d.vlan == [20, 100]
    assert d.protocol_header == {"type": 8, "code": 0, "name": "echo-request", "id": 77, "seq": 5}
    assert d.payload == b"ping"


def sctp_packet() -> bytes:
    init = struct.pack("!BBH", 1, 0, 20) + struct.pack("!IIHHI", 0x11223344, 65535, 10, 10, 1)
    data = struct.pack("!BBHIHHI", 0, 3, 16 + 5, 9, 1, 0, 46) + b"hello" + b"\0" * 3
    common = struct.pack("!HHII", 2905, 38412, 0xCAFEBABE, 0)
    return pf.ipv4("10.3.0.1", "10.3.0.2", 132, common + init + data)


def test_sctp_chunks() -> None:
    d = pkt(228, sctp_packet()).decode()
    assert d.error is None
    assert d.layers == ["ipv4", "sctp"]
    assert (d.source_port, d.destination_port) == (2905, 38412)
    assert d.protocol_header == {"verification_tag": 0xCAFEBABE, "chunks": ["INIT", "DATA"]}
    assert d.payload == b"hello"


def test_arp_icmpv6_and_loopbacks() -> None:
    arp = pf.ether(
        pf.MAC_BROADCAST, MAC_SRC, pf.ETHERTYPE_ARP, pf.arp_request(MAC_SRC, "10.0.0.1", "10.0.0.9")
    )
    d = pkt(1, arp).decode()
    assert (d.protocol, d.source_address, d.destination_address) == ("arp", "10.0.0.1", "10.0.0.9")
    assert d.protocol_header["operation"] == "request"
    echo = pf.icmpv6_echo("fe80::1", "fe80::2", 9, 3, b"6")
    ip6 = pf.ipv6("fe80::1", "fe80::2", pf.IPPROTO_ICMPV6, echo)
    for dlt, head in (
        (0, struct.pack("=I", 24)),
        (0, struct.pack(">I", 30)),
        (108, struct.pack(">I", 28)),
    ):
        d = pkt(dlt, head + ip6).decode()
        assert d.layers == ["loopback", "ipv6", "icmpv6"], dlt
        assert d.protocol_header == {
            "type": 128, "code": 0, "name": "echo-request", "id": 9, "seq": 3
        }  # fmt: skip
    ip4 = pf.ipv4(
        "127.0.0.1", "127.0.0.2", pf.IPPROTO_UDP, pf.udp("127.0.0.1", "127.0.0.2", 1, 2, b"")
    )
    d = pkt(0, struct.pack("=I", 2) + ip4).decode()
    assert d.layers == ["loopback", "ipv4", "udp"]


def test_truncated_packets_decode_as_far_as_they_go() -> None:
    frame = tcp_ipv4()
    d = pkt(1, frame[: 14 + 20 + 8], length=len(frame)).decode()
    assert d.layers == ["ethernet", "ipv4"]
    assert (d.source_address, d.protocol, d.source_port) == ("207.97.227.239", "tcp", None)
    assert d.error == "tcp: truncated header (8 of 20 bytes)"
    assert (d.caplen, d.length) == (42, 74)
    # Every prefix of every fixture decodes without raising, and what a prefix
    # decodes is what the whole packet decodes: fields are never invented.
    for dlt, data in FIXTURES:
        full = decode(pkt(dlt, data)).as_dict()
        for cut in range(len(data)):
            part = decode(pkt(dlt, data[:cut], length=len(data))).as_dict()
            assert full["layers"][: len(part["layers"])] == part["layers"]
            for key in SAME_WHEN_CUT:
                assert part[key] in (None, full[key]), (cut, key)


SAME_WHEN_CUT = (
    "source_macaddr", "destination_macaddr", "ethertype", "source_address",
    "destination_address", "source_port", "destination_port", "network", "protocol",
    "payload_length",
)  # fmt: skip


def test_unknown_link_types_are_reported_undecoded() -> None:
    d = decode(pkt(195, b"\x01\x02\x03"), datalink="IEEE802_15_4_WITHFCS")
    assert (d.layers, d.error, d.payload) == ([], None, b"\x01\x02\x03")
    assert d.datalink == "IEEE802_15_4_WITHFCS"


FIXTURES = [
    (1, tcp_ipv4()),
    (1, ipv6_with_extensions()),
    (228, sctp_packet()),
    (
        1,
        pf.ether(
            pf.MAC_BROADCAST,
            MAC_SRC,
            pf.ETHERTYPE_ARP,
            pf.arp_request(MAC_SRC, "1.1.1.1", "2.2.2.2"),
        ),
    ),
]


@settings(max_examples=300, deadline=None)
@given(dlt=st.sampled_from([*sorted(DATALINKS), 195]), data=st.binary(max_size=200))
def test_arbitrary_bytes_never_raise(dlt: int, data: bytes) -> None:
    d = decode(pkt(dlt, data))
    assert d.caplen == len(data)
    assert d.error is None or ":" in d.error
    d.report()
    d.as_dict()


@settings(max_examples=200, deadline=None)
@given(
    which=st.sampled_from(range(len(FIXTURES))),
    flips=st.lists(st.tuples(st.integers(0, 10_000), st.integers(1, 255)), max_size=4),
)
def test_damaged_fixtures_never_raise(which: int, flips: list[tuple[int, int]]) -> None:
    dlt, data = FIXTURES[which]
    raw = bytearray(data)
    for pos, mask in flips:
        raw[pos % len(raw)] ^= mask
    d = decode(pkt(dlt, bytes(raw)))
    d.report()


def test_shared_handshake_known_values(captures: list[Path]) -> None:
    # tcpdump -nn -tt -v --time-stamp-precision=nano -r tcp-handshake-nano.pcap prints:
    # 1418145369.924505488 IP (tos 0x0, ttl 64, id 10665, offset 0, flags [DF], proto TCP (6),
    #   length 60) 131.155.215.69.46656 > 137.116.81.94.80: Flags [S], cksum 0x50c4 (correct),
    #   seq 797190859, win 27200, options [mss 1360,sackOK,TS val 1131021154 ecr 0,nop,
    #   wscale 7], length 0
    path = next(p for p in captures if p.name == "tcp-handshake-nano.pcap")
    dlt, records = pf.libpcap_read(path)
    time_ns, length, data = records[0]
    d = Packet(dlt, time_ns, length, data).decode()
    assert d.layers == ["linux-sll", "ipv4", "tcp"]
    assert time_ns == 1_418_145_369_924_505_488
    assert (d.source_address, d.source_port) == ("131.155.215.69", 46656)
    assert (d.destination_address, d.destination_port) == ("137.116.81.94", 80)
    assert d.protocol_header["flags"] == ["syn"]
    assert d.network_header["ttl"] == 64
    assert d.network_header["id"] == 10665
    assert d.network_header["flags"] == ["df"]
    assert d.network_header["length"] == 60
    assert (d.protocol_header["seq"], d.protocol_header["window"]) == (797190859, 27200)
    assert d.protocol_header["options"] == [
        "mss 1360", "sackOK", "TS val 1131021154 ecr 0", "nop", "wscale 7"
    ]  # fmt: skip


# Packets built from the grammar the decoder walks: chains of tags and
# extension headers, every link, network and transport it knows, then noise.
# Any exception other than the decoder's own reports fails the test.


@settings(max_examples=600, deadline=None)
@given(frame=frames())
def test_structured_packets_never_raise(frame: tuple[int, bytes]) -> None:
    link, data = frame
    d = decode(pkt(link, data))
    assert d.caplen == len(data)
    report, fields = d.report(), d.as_dict()
    assert fields["payload_bytes"] <= len(data) and report


def test_long_chains_are_bounded() -> None:
    started = time.monotonic()
    tags = MAC_DST + MAC_SRC + struct.pack("!HH", 0x8100, 1) * 60000 + b"\x08\x00"
    assert decode(pkt(1, tags)).error == "vlan: more than 8 VLAN tags"
    hop = struct.pack("!BB", 0, 0) + b"\1\4" + b"\0" * 4
    ip6 = struct.pack("!IHBB16s16s", 0x60000000, 0, 0, 64, b"\1" * 16, b"\2" * 16) + hop * 30000
    assert decode(pkt(229, ip6)).error == "ipv6_extension: more than 16 extension headers"
    chunks = struct.pack("!HHII", 1, 2, 3, 0) + struct.pack("!BBH", 4, 0, 4) * 16000
    d = decode(pkt(228, pf.ipv4("10.0.0.1", "10.0.0.2", 132, chunks)))
    assert len(d.protocol_header["chunks"]) == 256 and d.protocol_header["more_chunks"]
    assert time.monotonic() - started < 1.0


def test_times_no_calendar_holds() -> None:
    for ns in (-(10**20), 2**40 * 10**9, 2**70):
        d = Packet(1, ns, 60, tcp_ipv4()).decode()
        sec = ns // 10**9
        assert d.timestring(9, utc=True).startswith(str(sec))
        assert d.as_dict()["time_ns"] == ns
        json.dumps(d.as_dict())

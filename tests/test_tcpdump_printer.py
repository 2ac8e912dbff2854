"""epcap.tcpdump.Printer on its own: it never raises on any bytes under any
options and takes time in proportion to the packet; and what the
comparison with tcpdump (test_tcpdump_lines.py, over files with -n) cannot
show: names looked up without -n, against tcpdump resolving the same
loopback addresses and ports."""

from __future__ import annotations

import socket
import struct
import subprocess
import time
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from epcap import Packet
from epcap.tcpdump import Options, Printer

import pcapfiles as pf
from helpers import local_time
from strategies import MAC_DST, MAC_SRC, frames

LINKS = [0, 1, 12, 101, 108, 113, 228, 229, 276, 195]
T0 = 1_767_225_600_123_456_789

options = st.builds(
    Options,
    numeric=st.booleans(),
    link=st.booleans(),
    verbose=st.integers(0, 3),
    quick=st.booleans(),
    absolute=st.booleans(),
    timestamps=st.integers(0, 5),
    hex=st.integers(0, 2),
    hexascii=st.integers(0, 2),
    ascii=st.integers(0, 2),
    number=st.booleans(),
    nano=st.booleans(),
    checksums=st.booleans(),
)


def numeric(o: Options) -> Options:
    """``o`` with -n: nothing looked up (no DNS in the tests)."""
    return Options(**{**o.__dict__, "numeric": True})


@settings(max_examples=400, deadline=None)
@given(dlt=st.sampled_from(LINKS), data=st.binary(max_size=200), extra=st.integers(-5, 100),
       o=options)  # fmt: skip
def test_arbitrary_bytes_never_raise(dlt: int, data: bytes, extra: int, o: Options) -> None:
    text = Printer(numeric(o)).format(Packet(dlt, T0, max(len(data) + extra, 0), data))
    assert isinstance(text, str)


@settings(max_examples=600, deadline=None)
@given(frame=frames(), o=options)
def test_structured_packets_never_raise(frame: tuple[int, bytes], o: Options) -> None:
    link, data = frame
    printer = Printer(numeric(o))
    for time_ns in (T0, T0 - 10**9, 0):  # later, earlier (a negative delta), the epoch
        text = printer.format(Packet(link, time_ns, len(data), data))
        assert isinstance(text, str) and "None" not in text, text


def test_long_chains_take_time_in_proportion() -> None:
    tags = MAC_DST + MAC_SRC + struct.pack("!HH", 0x8100, 1) * 20000 + b"\x08\x00"
    hop = struct.pack("!BB", 60, 0) + b"\1\4" + b"\0" * 4
    ip6 = struct.pack("!IHBB16s16s", 0x60000000, len(hop) * 8000, 60, 64, b"\1" * 16, b"\2" * 16)
    options_ = pf.ipv4("10.0.0.1", "10.0.0.2", 6, b"\0" * 20)
    every = Options(numeric=True, link=True, verbose=2, hexascii=2)
    started = time.monotonic()
    for dlt, data in ((1, tags), (229, ip6 + hop * 8000), (228, options_)):
        Printer(every).format(Packet(dlt, T0, len(data), data))
    assert time.monotonic() - started < 2.0


def test_times_past_2038_and_out_of_range_fractions() -> None:
    """The file's own fields: dates up to 2106, a fraction field of a second
    or more as the file holds it, marked as newer tcpdump marks it."""
    from epcap import RawTime

    frame = pf.ether(
        MAC_DST, MAC_SRC, pf.ETHERTYPE_ARP, pf.arp_request(MAC_SRC, "1.1.1.1", "2.2.2.2")
    )
    cases = [
        (2**31 * 10**9, "2038-01-19 03:14:08.000000", "2038-01-19 03:14:08.000000000",
         "2147483648.000000"),
        ((2**32 - 1) * 10**9 + 999_999_999, "2106-02-07 06:28:15.999999",
         "2106-02-07 06:28:15.999999999", "4294967295.999999"),
        (RawTime(1000, 1_000_000_000), "1970-01-01 00:16:40.1000000 (invalid us)",
         "1970-01-01 00:16:40.1000000000 (invalid ns)", "1000.1000000 (invalid us)"),
        (RawTime(1000, 4_294_967_295_000), "1970-01-01 00:16:40.4294967295 (invalid us)",
         "1970-01-01 00:16:40.4294967295000 (invalid ns)", "1000.4294967295 (invalid us)"),
    ]  # fmt: skip
    for stamp, micro, nano, unix in cases:
        packet = Packet(1, stamp, len(frame), frame)
        for o, expected in (
            (Options(numeric=True, timestamps=4), micro),
            (Options(numeric=True, timestamps=4, nano=True), nano),
            (Options(numeric=True, timestamps=2), unix),
        ):
            with local_time("UTC"):
                line = Printer(o).format(packet)
            assert line.startswith(expected + " ARP, "), (stamp, o)


def test_names_without_n_as_tcpdump_looks_them_up(tmp_path: Path) -> None:
    """Without -n: /etc/hosts and /etc/services names for loopback
    addresses and well-known ports, an OUI's name after a MAC address (only
    loopback, so no name server is asked)."""
    try:
        socket.gethostbyaddr("127.0.0.1")
    except OSError:
        raise AssertionError("this machine's /etc/hosts names no 127.0.0.1") from None
    tcp = pf.tcp("127.0.0.1", "127.0.0.1", 22, 40000, b"", flags="S", seq=1)
    udp = pf.udp("127.0.0.1", "127.0.0.1", 40001, 9, b"x" * 4)
    echo = pf.icmp_echo(7, 1, b"ping")
    frames_ = [
        pf.ether(MAC_DST, bytes(6), pf.ETHERTYPE_IPV4, pf.ipv4("127.0.0.1", "127.0.0.1", 6, tcp)),
        pf.ether(MAC_DST, MAC_SRC, pf.ETHERTYPE_IPV4, pf.ipv4("127.0.0.1", "127.0.0.1", 1, echo)),
        pf.ether(bytes.fromhex("00000c010203"), MAC_SRC, pf.ETHERTYPE_IPV4,
                 pf.ipv4("127.0.0.1", "127.0.0.1", 17, udp)),
    ]  # fmt: skip
    path = tmp_path / "names.pcap"
    pf.write_pcap(path, [(T0 + i, len(f), f) for i, f in enumerate(frames_)], linktype=1)
    for flags in ([], ["-e"], ["-e", "-v"]):
        theirs = subprocess.run(
            ["tcpdump", "-t", *flags, "-r", str(path)], capture_output=True, text=True, check=True
        ).stdout.splitlines()
        o = Options(link="-e" in flags, verbose=flags.count("-v"), timestamps=1)
        printer = Printer(o)
        ours = "\n".join(printer.format(Packet(1, T0, len(f), f)) for f in frames_).splitlines()
        assert ours == theirs
        assert "localhost.ssh > localhost.40000" in "\n".join(theirs)

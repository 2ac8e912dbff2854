"""epcap-sniff prints packets exactly as tcpdump 4.99.3 prints them.

Both tools read the same file with the same options (``tcpdump -r FILE
<set>`` and ``epcap.sniff.main(["-r", FILE, *set])``, in process) in the
same local time zone, and their stdout must be equal, line for line.  The
files are every real-world capture of ../shared/captures and captures this
test writes itself (tests/tcpdump_traffic.py): one per link type epcap-sniff
prints, micro and nano pcap and a pcapng.

epcap-sniff prints only some protocols, so a packet is compared when it is
in scope (:func:`out_of_scope` says why one is not): epcap's own decoder
(:func:`epcap.decode.decode`) finds a link type of :data:`LINKS`, a network
layer of IPv4, IPv6 or ARP and a transport of TCP, UDP, ICMP or ICMPv6 (or
stops, truncated or malformed, before one), and tcpdump would print nothing
beyond: no application protocol it chooses by port (:data:`UDP_DISSECTED`,
:data:`TCP_DISSECTED`, read from tcpdump's source) or by content, and no
quoted packet of a protocol out of scope.  The in-scope packets of each file
are written to a new file of the same link type and snapshot length (micro
pcap stays micro, nano stays nano, pcapng becomes nano pcap), which both
tools read; a file with none is counted, not run.

A difference fails the test with, for the first differing run of each
option set: the file, the options, the packet's number (in the filtered file
and in the original), tcpdump's lines for it against epcap-sniff's, and its
bytes in hex.  With ``-s`` the test prints what it compared: files, packets
and lines per option set, and the packets it left out, by reason.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import os
import shutil
import struct
import subprocess
import traceback
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest

from epcap import Packet
from epcap.decode import Decoded, decode
from epcap.sniff import main

import pcapfiles as pf
import tcpdump_traffic as traffic
from conftest import HELPER
from helpers import local_time

TCPDUMP_VERSION = "4.99.3"
TZ = traffic.TZ
"""POSIX TZ for UTC+05:30: local time that is not UTC, off by half an hour."""

REQUIRED_OPTION_SETS: tuple[tuple[str, ...], ...] = (
    ("-n",),
    ("-nn", "-e"),
    ("-n", "-v"),
    ("-n", "-tttt"),
    ("-n", "-ttt"),
    ("-n", "-q"),
    ("-n", "-X"),
)
OPTION_SETS: tuple[tuple[str, ...], ...] = (
    *REQUIRED_OPTION_SETS,
    ("-nn", "-vv", "-e"),
    ("-nn", "-S"),
    ("-n", "-tt", "--nano"),
    ("-n", "-ttttt"),
    ("-n", "-t", "-A"),
    ("-n", "-x"),
    ("-nn", "-XX", "-e"),
    ("-n", "-#"),
)
"""Each is run on every file, by both tools."""

SHARED_IN_SCOPE_AT_LEAST = 183
"""Packets of ../shared/captures in scope when this test was written: fewer
means the scope rules or the captures changed, and the test compares less."""

# Scope ---------------------------------------------------------------------
#
# Read from tcpdump 4.99.3's source (print-udp.c, print-tcp.c, print-icmp.c,
# print-icmp6.c, print-ip6.c, print-sll.c, and the headers they use).  Out of
# scope, besides link, network and transport types epcap-sniff does not print:
#  - UDP and TCP ports of UDP_DISSECTED and TCP_DISSECTED, AppleTalk DDP in
#    UDP (ATALK_PORTS), and TCP options handed to another printer;
#  - an ICMP error quoting a packet out of scope (ip_print() dissects it with
#    -v), an ICMPv6 error quoting one of a network or transport out of scope;
#  - IPv6 with an AH header (print-ah.c), ICMPv6 in IPv4 and ICMP in IPv6;
#  - Linux cooked captures of ARPHRD_IEEE80211_RADIOTAP (803: radiotap) or
#    with an 802.1ad or 0x9100 tag (sll_if_print() unwraps 802.1Q only);
#  - times after 2106, which a pcap file's 32-bit seconds cannot hold.
# In scope, because tcp_print(), icmp_print(), icmp6_print() print them
# themselves: RST data (-v), the TCP MD5, UTO, TCP-AO and Fast Open options,
# RFC 4884 ICMP extensions, every ICMPv6 type and ND option (DNSSL names too),
# and, as the brief asks, truncated and malformed packets of all of these.

LINKS = {
    0: "BSD loopback (DLT_NULL)",
    108: "BSD loopback (DLT_LOOP)",
    1: "Ethernet",
    12: "raw IP (LINKTYPE_RAW 101 reads as DLT 12)",
    113: "Linux cooked v1",
    228: "raw IPv4",
    229: "raw IPv6",
    276: "Linux cooked v2",
}
"""The link types (libpcap's DLT values) epcap-sniff prints.  DLT 14, raw
IP on OpenBSD, is not one: tcpdump on Linux has no printer for it."""

EITHER, SOURCE, DESTINATION = "either port", "source port", "destination port"

UDP_DISSECTED: tuple[tuple[str, str, Sequence[int]], ...] = (
    # tcpdump 4.99.3, print-udp.c, udp_print(): the port tests of the
    # "if (!ndo->ndo_qflag)" chains, in order, numbers from udp.h (NFS_PORT
    # from nfs.h).  First the NFS test, before the checksum:
    ("NFS (RPC call to / reply from NFS_PORT)", EITHER, (2049,)),
    ("DNS", EITHER, (53,)),
    ("mDNS", EITHER, (5353,)),
    ("timed", EITHER, (525,)),
    ("TFTP", EITHER, (69,)),
    ("BOOTP/DHCP", EITHER, (67, 68)),
    ("RIP", EITHER, (520,)),
    ("AODV", EITHER, (654,)),
    ("ISAKMP", EITHER, (500,)),
    ("ISAKMP NAT-T (RFC 3948)", EITHER, (4500,)),
    ("ISAKMP user ports", EITHER, (7500, 8500)),
    ("SNMP", EITHER, (161, 162)),
    ("NTP", EITHER, (123,)),
    ("Kerberos", EITHER, (88, 750)),
    ("L2TP", EITHER, (1701,)),
    ("NetBIOS name/datagram (ENABLE_SMB: this build has it)", EITHER, (137, 138)),
    ("VAT", DESTINATION, (3456,)),
    ("Zephyr", EITHER, (2103, 2104)),
    ("AFS RX (RX_PORT_LOW..RX_PORT_HIGH)", EITHER, range(7000, 7010)),
    ("RIPng", EITHER, (521,)),
    ("DHCPv6", EITHER, (546, 547)),
    ("AHCP", EITHER, (5359,)),
    ("Babel", EITHER, (6696, 6697)),
    ("HNCP", EITHER, (8231,)),
    ("whiteboard", DESTINATION, (4567,)),
    ("Cisco Auto-RP", EITHER, (496,)),
    ("RADIUS", EITHER, (1645, 1812, 1646, 1813, 1700, 3799)),
    ("HSRP", DESTINATION, (1985,)),
    ("lwres", EITHER, (921,)),
    ("LDP", EITHER, (646,)),
    ("OLSR", EITHER, (698,)),
    ("MPLS LSP ping", EITHER, (3503,)),
    ("Broadcom LI", SOURCE, (49152,)),
    ("BFD", DESTINATION, (3784, 4784, 6784, 3785)),
    ("LMP", EITHER, (701,)),
    ("VQP", EITHER, (1589,)),
    ("sFlow", EITHER, (6343,)),
    ("LWAPP control (12223 either way: dport, then sport)", EITHER, (12223,)),
    ("LWAPP data", EITHER, (12222,)),
    ("SIP", EITHER, (5060,)),
    ("syslog", EITHER, (514,)),
    ("OTV", EITHER, (8472,)),
    ("VXLAN", EITHER, (4789,)),
    ("Geneve", EITHER, (6081,)),
    ("LISP control", EITHER, (4342,)),
    ("VXLAN-GPE", EITHER, (4790,)),
    ("ZEP", EITHER, (17754,)),
    ("MPLS over UDP", EITHER, (6635,)),
    ("PTP", EITHER, (319, 320)),
    ("SOME/IP", EITHER, (30490,)),
)
"""UDP ports tcpdump 4.99.3 picks an application printer by (with ``-q`` it
picks none, but scope does not depend on the options)."""

ATALK_PORTS = (range(16512, 16640), range(200, 328), range(768, 896))
"""print-udp.c: AppleTalk DDP in UDP when the third payload byte is lapDDP
(2) and a port is in atalk_port()'s ranges (appletalk.h), checked after the
table above and before PTP and SOME/IP."""

TCP_DISSECTED: tuple[tuple[str, str, Sequence[int]], ...] = (
    # tcpdump 4.99.3, print-tcp.c, tcp_print(): the IS_SRC_OR_DST_PORT
    # chain after "if (length == 0) return", numbers from tcp.h.
    ("telnet", EITHER, (23,)),
    ("SMTP", EITHER, (25,)),
    ("whois", EITHER, (43,)),
    ("BGP", EITHER, (179,)),
    ("PPTP", EITHER, (1723,)),
    ("RESP (Redis)", EITHER, (6379,)),
    ("SSH", EITHER, (22,)),
    ("NetBIOS session, SMB (ENABLE_SMB)", EITHER, (139, 445)),
    ("BEEP", EITHER, (10288,)),
    ("OpenFlow", EITHER, (6633, 6653)),
    ("FTP", EITHER, (21,)),
    ("HTTP", EITHER, (80, 8080)),
    ("RTSP", EITHER, (554, 8554)),
    ("DNS", EITHER, (53,)),
    ("MSDP", EITHER, (639,)),
    ("RPKI-RTR", EITHER, (323,)),
    ("LDP", EITHER, (646,)),
    ("NFS", EITHER, (2049,)),
)
"""TCP ports tcpdump 4.99.3 picks an application printer by, for a segment
that carries data (``length`` from the IP header, less the TCP header)."""

TCP_OPTION_PRINTERS = {30: "MPTCP (print-mptcp.c)"}
"""TCP options whose printing tcp_print() hands to another printer."""

ICMP_ERRORS = {3, 4, 5, 11, 12}
"""ICMP_ERRTYPE() of print-icmp.c: with -v, icmp_print() hands the quoted
packet to ip_print(), which dissects its transport as any other's."""
ICMPV6_ERRORS = {1, 2, 3, 4}
"""ICMPv6 errors: icmp6_print() reads the quoted packet's addresses and
ports but hands it to no printer; its network and transport must still be
in scope."""

_COOKED_HATYPE_OFFSET = {113: 2, 276: 8}


def _port_reason(
    table: tuple[tuple[str, str, Sequence[int]], ...], what: str, sport: int, dport: int
) -> str | None:
    for name, side, ports in table:
        for port, which in ((sport, SOURCE), (dport, DESTINATION)):
            if port in ports and side in (EITHER, which):
                return f"{what} port {port} ({name}; tested as {side})"
    return None


def out_of_scope(dlt: int, data: bytes, length: int) -> str | None:
    """Why tcpdump prints more for this packet than epcap-sniff is to print
    (a reason to count it by), or None when it is in scope."""
    if dlt not in LINKS:
        return f"link type {pf.libpcap_datalink_name(dlt) or dlt} (DLT {dlt})"
    if dlt in _COOKED_HATYPE_OFFSET:
        at = _COOKED_HATYPE_OFFSET[dlt]
        if data[at : at + 2] == b"\x03\x23":  # 803: print-sll.c hands it to radiotap
            return "cooked: ARPHRD_IEEE80211_RADIOTAP (803)"
    if dlt in (0, 108) and len(data) >= 4:
        family = min(int.from_bytes(data[:4], "little"), int.from_bytes(data[:4], "big"))
        if family not in (2, 24, 28, 30):  # print-null.c; Linux's AF_INET6 (10) is not one
            return f"BSD loopback: address family {family}"
    d = decode(Packet(dlt, 0, length, data))
    if dlt in _COOKED_HATYPE_OFFSET and {"802.1ad", "802.1q-9100"} & set(d.layers):
        return "cooked: a tag other than 802.1Q (print-sll.c prints the rest as data)"
    return _network_reason(d, data, dissected=True, depth=0)


def _network_reason(d: Decoded, data: bytes, dissected: bool, depth: int) -> str | None:
    """Why ``d``'s network layer and what it carries are out of scope;
    ``dissected`` says whether tcpdump hands the transport to its printer
    (not so for the packet an ICMPv6 error quotes)."""
    if d.network not in ("ipv4", "ipv6", "arp"):
        return f"network {d.network or '(none: the link layer did not decode)'}"
    if "ah" in d.network_header.get("extension_headers", ()):
        return "IPv6 extension header AH (print-ah.c)"
    if d.network == "arp" or d.protocol is None:
        return None  # ARP, or an IP header malformed or cut: tcpdump's own IP printing
    if d.protocol not in ("tcp", "udp", "icmp", "icmpv6", "sctp"):
        return f"transport {d.protocol}"
    if (d.network, d.protocol) in (("ipv4", "icmpv6"), ("ipv6", "icmp")):
        return f"transport {d.protocol} over {d.network}"
    if not dissected:
        return None
    header = d.protocol_header
    if d.protocol == "tcp" and d.source_port is not None:
        for option in header.get("options", ()):
            kind = int(option[4:].split()[0]) if option.startswith("opt-") else None
            if kind in TCP_OPTION_PRINTERS:
                return f"tcp option {TCP_OPTION_PRINTERS[kind]}"
        if d.payload_length:
            return _port_reason(TCP_DISSECTED, "tcp", d.source_port, d.destination_port or 0)
    if d.protocol == "sctp" and d.source_port is not None:
        return _sctp_reason(d, data)
    if d.protocol == "udp" and d.source_port is not None:
        sport, dport = d.source_port, d.destination_port or 0
        reason = _port_reason(UDP_DISSECTED, "udp", sport, dport)
        atalk = any(p in r for r in ATALK_PORTS for p in (sport, dport))
        if reason is None and atalk and (len(d.payload) < 3 or d.payload[2] == 2):
            reason = "udp AppleTalk port (atalk_port()): DDP in UDP"
        return reason
    errors = ICMP_ERRORS if d.protocol == "icmp" else ICMPV6_ERRORS
    if d.protocol in ("icmp", "icmpv6") and header.get("type") in errors:
        if depth >= 4:
            return f"{d.protocol} errors quoted more than 4 deep"
        quoted = decode(Packet(228 if d.protocol == "icmp" else 229, 0, 0, d.payload))
        why = _network_reason(quoted, d.payload, dissected=d.protocol == "icmp", depth=depth + 1)
        if why is not None:
            return f"{d.protocol} error quoting: {why}"
    return None


SCTP_PRINTERS = {3: "M3UA (under -vv)", 21: "ForCES", 22: "ForCES", 23: "ForCES"}
"""SCTP payload protocols tcpdump hands to printers of their own (print-sctp.c)."""


def _sctp_reason(d: Decoded, data: bytes) -> str | None:
    """SCTP is in scope but for ForCES (by port, print-sctp.c's
    isForCES_port) and the payload protocols of :data:`SCTP_PRINTERS`."""
    ports = {d.source_port, d.destination_port}
    if ports & {6704, 6705, 6706}:
        return "sctp ForCES port"
    raw = data[d.transport_offset or 0 :]  # the SCTP header and its chunks, as captured
    at = 12
    while at + 16 <= len(raw):
        kind, length = raw[at], int.from_bytes(raw[at + 2 : at + 4], "big")
        if length < 4:
            break
        ppid = int.from_bytes(raw[at + 12 : at + 16], "big")
        if kind == 0 and ppid in SCTP_PRINTERS:
            return f"sctp DATA of {SCTP_PRINTERS[ppid]}"
        at += (length + 3) & ~3
    return None


# Files ---------------------------------------------------------------------


@dataclasses.dataclass
class Filtered:
    """A capture and its in-scope packets, written to ``path``."""

    label: str
    original: Path
    dlt: int
    total: int
    records: list[pf.Record]
    numbers: list[int]
    """Each kept packet's number (from 1) in the original file."""
    excluded: Counter[str]
    """Why the others were left out: reason and number of packets."""
    stopped: str | None = None
    """libpcap's error, when it stopped reading before the end."""
    path: Path | None = None


def prepare(original: Path, label: str, directory: Path) -> Filtered:
    """Read ``original`` with libpcap, keep the packets in scope and write
    them (if any) to ``directory`` as a pcap of the same link type."""
    header = pf.savefile_header(original)
    excluded: Counter[str] = Counter()
    stopped = None
    try:
        dlt, records = pf.libpcap_read(original)
    except pf.LibpcapError as exc:  # compare what it reads (so does tcpdump)
        assert exc.datalink is not None, f"{original}: libpcap cannot open it: {exc}"
        dlt, records, stopped = exc.datalink, exc.records, exc.message
    kept, numbers = [], []
    for number, (time_ns, length, data) in enumerate(records, 1):
        reason = out_of_scope(dlt, data, length)
        if reason is None and time_ns >= 2**32 * 10**9:
            reason = "time stamp beyond a pcap file's 32-bit seconds"
        if reason is None:
            kept.append((time_ns, length, data))
            numbers.append(number)
        else:
            excluded[reason] += 1
    filtered = Filtered(label, original, dlt, len(records), kept, numbers, excluded, stopped)
    if kept:
        filtered.path = directory / f"{original.name}.in-scope.pcap"
        pf.write_pcap(
            filtered.path,
            kept,
            linktype=header.linktype,
            nano=header.nano,
            snaplen=header.snaplen,
        )
    return filtered


# The two tools ---------------------------------------------------------------


@dataclasses.dataclass
class Output:
    """What one tool printed, and how it ended."""

    stdout: str
    stderr: str
    status: int | str

    @property
    def lines(self) -> list[str]:
        return self.stdout.splitlines()


def tcpdump(
    path: Path,
    options: Sequence[str],
    count: int | None = None,
    env: dict[str, str] | None = None,
) -> Output:
    """tcpdump -r ``path`` ``options`` in :data:`TZ` (``-c count`` first);
    ``env``, this process's environment with TZ, is made before threads
    run this while :func:`local_time` changes the environment."""
    head = ["-c", str(count)] if count is not None else []
    result = subprocess.run(
        ["tcpdump", *head, "-r", str(path), *options],
        capture_output=True,
        text=True,
        errors="surrogateescape",
        env=env or {**os.environ, "TZ": TZ},
        timeout=60,
    )
    return Output(result.stdout, result.stderr, result.returncode)


def sniff(path: Path, options: Sequence[str], count: int | None = None) -> Output:
    """epcap.sniff.main(["-r", path, *options]) in this process, in
    :data:`TZ`, its stdout and stderr captured (``-c count`` first)."""
    out, err = io.StringIO(), io.StringIO()
    head = ["-c", str(count)] if count is not None else []
    status: int | str
    with local_time(TZ), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            status = main([*head, "-r", str(path), *options])
        except SystemExit as exc:
            status = f"SystemExit({exc.code!r})"
        except Exception:
            status = "exception:\n" + traceback.format_exc()
    return Output(out.getvalue(), err.getvalue(), status)


# Comparing -------------------------------------------------------------------


@dataclasses.dataclass
class Run:
    """Both tools on one file with one option set."""

    file: Filtered
    options: tuple[str, ...]
    theirs: Output
    ours: Output

    @property
    def differing_line(self) -> int | None:
        """The number (from 1) of the first output line that differs, or
        None when the outputs are equal and epcap-sniff exited as tcpdump
        did (1 when only the exit status differs)."""
        a, b = self.theirs.lines, self.ours.lines
        for i, (x, y) in enumerate(zip(a, b, strict=False)):
            if x != y:
                return i + 1
        if len(a) != len(b) or self.ours.stdout != self.theirs.stdout:
            return min(len(a), len(b)) + 1
        return None if self.ours.status == self.theirs.status else 1


@dataclasses.dataclass
class Tally:
    """What one option set (or all) compared."""

    runs: int = 0
    packets: int = 0
    lines: int = 0
    matched: int = 0

    def add(self, run: Run) -> None:
        assert run.file.path is not None
        self.runs += 1
        self.packets += len(run.file.records)
        self.lines += len(run.theirs.lines)
        self.matched += run.differing_line is None


def compare(files: list[Filtered], monkeypatch: pytest.MonkeyPatch) -> list[Run]:
    """Run both tools on every file with every option set: tcpdump in
    threads while epcap-sniff runs here."""
    monkeypatch.setenv("EPCAPD", str(HELPER))
    jobs = [(f, opts) for f in files if f.path is not None for opts in OPTION_SETS]
    env = {**os.environ, "TZ": TZ}
    runs = []
    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 1)) as pool:
        pending: list[Future[Output]] = [
            pool.submit(tcpdump, f.path, opts, None, env)  # type: ignore[arg-type]
            for f, opts in jobs
        ]
        for (f, opts), theirs in zip(jobs, pending, strict=True):
            assert f.path is not None
            ours = sniff(f.path, opts)
            run = Run(f, opts, theirs.result(), ours)
            assert run.theirs.status == 0, (
                f"tcpdump itself failed on {f.path} {' '.join(opts)}: {run.theirs.stderr}"
            )
            runs.append(run)
    return runs


def _before(
    tool: Callable[[Path, Sequence[str], int | None], Output],
    path: Path,
    options: Sequence[str],
    k: int,
) -> list[str]:
    """What ``tool`` prints for the packets before packet ``k``."""
    return tool(path, options, k - 1).lines if k > 1 else []


def _hexdump(data: bytes) -> list[str]:
    rows = []
    for off in range(0, len(data), 16):
        row = data[off : off + 16]
        hexes = " ".join(row[i : i + 2].hex() for i in range(0, len(row), 2))
        rows.append(f"      {off:04x}:  {hexes}")
    return rows


def _quoted(lines: Sequence[str]) -> list[str]:
    return [f"      | {line}" for line in lines] or ["      (nothing)"]


def explain(run: Run) -> str:
    """The first differing packet of ``run``: both tools' lines for it and
    its bytes.  The packet is the first whose lines tcpdump -c reaches the
    differing line with (by bisection); each tool's lines for it are what
    it prints with -c up to it beyond what it prints before it."""
    f, opts = run.file, run.options
    line = run.differing_line
    assert f.path is not None and line is not None
    n = len(f.records)
    theirs = run.theirs.lines
    if line > len(theirs):
        k = n
    else:  # the first packet whose output reaches the line, by bisection
        lo, hi = 1, n
        while lo < hi:
            mid = (lo + hi) // 2
            if len(tcpdump(f.path, opts, mid).lines) >= line:
                hi = mid
            else:
                lo = mid + 1
        k = lo
    start = len(_before(tcpdump, f.path, opts, k))
    expected = tcpdump(f.path, opts, k).lines[start:]
    upto = sniff(f.path, opts, k).lines
    consistent = run.ours.lines[: len(upto)] == upto
    if consistent:
        got = upto[len(_before(sniff, f.path, opts, k)) :]
    else:  # -c changed what it printed: show the full run's lines from the packet on
        got = run.ours.lines[start : start + len(expected) + 3]
    time_ns, length, data = f.records[k - 1]
    args = ["-r", str(f.path), *opts]
    text = [
        f"--- {f.label} with {' '.join(opts)}: packet {k} of {n} "
        f"(packet {f.numbers[k - 1]} of {f.original.name}), output line {line}",
        f"    tcpdump {' '.join(args)}   (TZ={TZ})",
        f"    epcap.sniff.main({args!r}): exit status {run.ours.status}",
    ]
    if run.ours.status != run.theirs.status:
        text += [f"      stderr | {x}" for x in run.ours.stderr.strip().splitlines()[-12:]]
    if line > len(theirs):
        text.append(f"    epcap-sniff printed {len(run.ours.lines) - len(theirs)} lines more")
    elif run.ours.stdout == run.theirs.stdout:
        text.append("    the outputs are equal: the exit status differs")
    if not consistent:
        text.append(f"    (with -c {k} epcap-sniff printed other lines than without)")
    text += ["    tcpdump:", *_quoted(expected), "    epcap-sniff:", *_quoted(got)]
    text.append(
        f"    packet bytes: link type {f.dlt} ({LINKS[f.dlt]}), {len(data)} of {length} "
        f"captured, time {time_ns // 10**9}.{time_ns % 10**9:09d}"
    )
    return "\n".join(text + _hexdump(data))


def report(title: str, files: list[Filtered], runs: list[Run]) -> None:
    """Print (pytest -s) what was compared and what was left out; fail with
    the first differing packet of each option set."""
    per_set = {opts: Tally() for opts in OPTION_SETS}
    total = Tally()
    for run in runs:
        per_set[run.options].add(run)
        total.add(run)
    excluded: Counter[str] = Counter()
    for f in files:
        excluded.update(f.excluded)
    read = sum(f.total for f in files)
    kept = sum(len(f.records) for f in files)
    unrun = [f.original.name for f in files if f.path is None]
    print(f"\n{title}: {len(files)} files, {read} packets, {kept} in scope")
    print(f"  {len(unrun)} files with no packet in scope, not run: {', '.join(unrun) or '-'}")
    for f in files:
        if f.stopped is not None:
            print(f"  libpcap stops reading {f.label} after {f.total} packets: {f.stopped}")
    print(f"  {'option set':<18} {'files':>5} {'packets':>8} {'lines':>7} {'matching':>9}")
    for opts, t in [*per_set.items(), (("total",), total)]:
        print(f"  {' '.join(opts):<18} {t.runs:>5} {t.packets:>8} {t.lines:>7} {t.matched:>9}")
    print(f"  left out: {sum(excluded.values())} packets")
    for reason, count in sorted(excluded.items(), key=lambda kv: (-kv[1], kv[0])):
        print(f"    {count:>5}  {reason}")
    failed = [run for run in runs if run.differing_line is not None]
    if not failed:
        return
    summary = [
        f"epcap-sniff's output differs from tcpdump {TCPDUMP_VERSION}'s in {len(failed)} of "
        f"{len(runs)} runs ({title}); by file, the option sets and first differing lines:",
    ]
    for f in files:
        mine = [run for run in failed if run.file is f]
        if mine:
            where = ", ".join(f"{' '.join(r.options)} (line {r.differing_line})" for r in mine)
            summary.append(f"  {f.label}: {len(mine)} of {len(OPTION_SETS)}: {where}")
    firsts: dict[tuple[str, ...], Run] = {}
    for run in failed:
        firsts.setdefault(run.options, run)
    summary.append("The first differing run of each option set:")
    pytest.fail("\n".join(summary + [explain(run) for run in firsts.values()]), pytrace=False)


# Tests -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def tcpdump_4_99_3() -> None:
    """tcpdump 4.99.3 on PATH: what epcap-sniff is held to."""
    if shutil.which("tcpdump") is None:
        pytest.skip("tcpdump is not installed (make deps: TEST_PACKAGES)")
    version = subprocess.run(["tcpdump", "--version"], capture_output=True, text=True).stdout
    if not version.startswith(f"tcpdump version {TCPDUMP_VERSION}\n"):
        pytest.skip(f"this test holds epcap-sniff to tcpdump {TCPDUMP_VERSION}, not {version!r}")


@pytest.mark.usefixtures("tcpdump_4_99_3")
@pytest.mark.captures
def test_shared_captures_print_as_tcpdump(
    captures: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The in-scope packets of every capture of ../shared/captures."""
    files = [prepare(path, f"shared:{path.name}", tmp_path) for path in captures]
    in_scope = sum(len(f.records) for f in files)
    print(f"\n{in_scope} packets of ../shared/captures in scope")
    assert in_scope >= SHARED_IN_SCOPE_AT_LEAST, (
        f"only {in_scope} packets of ../shared/captures in scope, "
        f"{SHARED_IN_SCOPE_AT_LEAST} when this test was written"
    )
    report("../shared/captures", files, compare(files, monkeypatch))


@pytest.mark.usefixtures("tcpdump_4_99_3")
def test_own_captures_print_as_tcpdump(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The test's own captures (tcpdump_traffic.py), every packet in scope."""
    written = tmp_path / "written"
    written.mkdir()
    files = [
        prepare(path, f"own:{path.name}", tmp_path) for path in traffic.write_captures(written)
    ]
    for f in files:
        assert not f.excluded, f"{f.label}: packets out of scope: {dict(f.excluded)}"
        assert f.stopped is None, f"{f.label}: libpcap stops reading: {f.stopped}"
    report("the test's own captures", files, compare(files, monkeypatch))


# The harness's own checks: the scope rules, and that the test's traffic
# reaches the tcpdump code paths it is made for (both pass without epcap-sniff).

_A, _B, _A6, _B6 = "10.0.0.1", "10.0.0.2", "2001:db8::1", "2001:db8::2"


def _udp4(sport: int, dport: int, data: bytes = b"data") -> bytes:
    return pf.ipv4(_A, _B, pf.IPPROTO_UDP, pf.udp(_A, _B, sport, dport, data))


def _tcp4(dport: int, data: bytes, options: bytes = b"") -> bytes:
    segment = pf.tcp(_A, _B, 40000, dport, data, 1, 1, "PA", options=options)
    return pf.ipv4(_A, _B, pf.IPPROTO_TCP, segment)


def _sctp4(sport: int, ppid: int) -> bytes:
    data = struct.pack("!BBHIHHI", 0, 3, 20, 1, 0, 0, ppid) + b"data"
    return pf.ipv4(_A, _B, 132, struct.pack("!HHII", sport, 5000, 1, 0) + data)


def _icmp4(quoted: bytes, icmp_type: int = 3) -> bytes:
    return pf.ipv4(_B, _A, pf.IPPROTO_ICMP, pf.icmp(icmp_type, 3, bytes(4), quoted))


def _icmp6(quoted: bytes) -> bytes:
    message = pf.icmpv6(_B6, _A6, 1, 4, bytes(4) + quoted)
    return pf.ipv6(_B6, _A6, pf.IPPROTO_ICMPV6, message)


def _cooked(tpid: int) -> bytes:
    return pf.sll(struct.pack("!HH", 5, pf.ETHERTYPE_IPV4) + _udp4(1, 2), tpid)


_DNS6 = pf.ipv6(_A6, _B6, pf.IPPROTO_UDP, pf.udp(_A6, _B6, 1, 53, b""))
_SCTP6 = pf.ipv6(_A6, _B6, 132, bytes(12))
_GRE = pf.ipv4(_A, _B, 47, bytes(8))
_AH = bytes([pf.IPPROTO_UDP, 1]) + bytes(10) + pf.udp(_A6, _B6, 1, 2, b"")
_ICMPV6_IN_IPV4 = pf.ipv4(_A, _B, pf.IPPROTO_ICMPV6, pf.icmpv6_echo(_A6, _B6, 1, 1, b""))
_ARCNET_ARP = pf.ether(
    pf.MAC_B, pf.MAC_A, pf.ETHERTYPE_ARP, pf.arp(1, b"\x01", _A, b"\x00", _B, hrd=7)
)

SCOPE_CASES = [
    ("udp", 228, _udp4(40000, 9999), None),
    ("sctp", 228, _sctp4(40000, 51), None),
    ("sctp-forces-port", 228, _sctp4(6705, 51), "ForCES port"),
    ("sctp-m3ua", 228, _sctp4(40000, 3), "M3UA"),
    ("dns", 228, _udp4(40000, 53), "udp port 53 (DNS"),
    ("bcm-li-source", 228, _udp4(49152, 9999), "udp port 49152"),
    ("bcm-li-destination", 228, _udp4(9999, 49152), None),
    ("bfd-destination", 228, _udp4(9999, 3784), "udp port 3784 (BFD"),
    ("bfd-source", 228, _udp4(3784, 9999), None),
    ("afs-rx-range", 12, _udp4(7005, 9999), "udp port 7005"),
    ("atalk-ddp", 12, _udp4(250, 9999, b"\x00\x00\x02\x00"), "AppleTalk"),
    ("atalk-port-not-ddp", 12, _udp4(250, 9999, b"\x00\x00\x01\x00"), None),
    ("http-syn", 228, _tcp4(80, b""), None),
    ("http-data", 228, _tcp4(80, b"GET /"), "tcp port 80 (HTTP"),
    ("mptcp-option", 228, _tcp4(9999, b"", pf.tcp_option(30, b"\x00\x01")), "MPTCP"),
    ("icmp-quoting-dns", 228, _icmp4(_udp4(1, 53)), "icmp error quoting: udp port 53"),
    ("icmp-quoting-cut-http", 228, _icmp4(_tcp4(80, b"x")[:28]), None),
    ("icmp-quoting-gre", 228, _icmp4(_GRE, icmp_type=11), "quoting: transport gre"),
    ("icmp6-quoting-dns", 229, _icmp6(_DNS6), None),
    ("icmp6-quoting-sctp", 229, _icmp6(_SCTP6), None),  # tcpdump stops at the quoted header
    ("icmpv6-over-ipv4", 228, _ICMPV6_IN_IPV4, "icmpv6 over ipv4"),
    ("ipv6-ah", 229, pf.ipv6(_A6, _B6, 51, _AH), "AH"),
    ("ipv6-no-next-header", 229, pf.ipv6(_A6, _B6, pf.IPPROTO_NONE, b""), "ipv6-nonxt"),
    ("ipv4-bad-hlen", 228, pf.ipv4(_A, _B, pf.IPPROTO_UDP, b"", ihl=4), None),
    ("arp-not-ethernet", 1, _ARCNET_ARP, None),
    ("dlt-14", 14, _udp4(1, 2), "link type"),
    ("sll-radiotap", 113, pf.sll(_udp4(1, 2), pf.ETHERTYPE_IPV4, hatype=803), "RADIOTAP"),
    ("sll-qinq", 113, _cooked(pf.ETHERTYPE_QINQ), "other than 802.1Q"),
    ("sll-vlan", 113, _cooked(pf.ETHERTYPE_VLAN), None),
    ("llc", 1, pf.ether(pf.MAC_B, pf.MAC_A, 40, bytes(40)), "network llc"),
]
"""(name, DLT, packet, what out_of_scope() says: None or a part of it)."""


@pytest.mark.parametrize(
    "dlt, data, expected", [c[1:] for c in SCOPE_CASES], ids=[c[0] for c in SCOPE_CASES]
)
def test_scope_rules(dlt: int, data: bytes, expected: str | None) -> None:
    """out_of_scope() says what SCOPE_CASES expect of it."""
    reason = out_of_scope(dlt, data, len(data))
    if expected is None:
        assert reason is None
    else:
        assert reason is not None and expected in reason, reason


CODE_PATHS: dict[tuple[str, tuple[str, ...]], list[str]] = {
    ("ethernet.pcap", ("-n", "-vv")): [
        # TCP
        "Flags [SEW]", "Flags [S.E]", "Flags [P.W]", "Flags [.E]", "Flags [P.U]", "urg 8",
        "Flags [R]", "Flags [R.]", "[RST connection reset", "[RST+ ", "Flags [none]",
        "sack 1 {1:301}", "unknown-99 0xbeef", "eol]", "[bad opt]", "invalid sack",
        "(incorrect -> ", "tfo  cookiereq", "tfo  cookie 0123456789abcdef",
        "exp-tfo cookie", "exp-1234", "md5 shared secret not supplied", "uto 0x8003",
        "tcp-ao keyid 7 rnextkeyid 8 mac", "tfo  (invalid)",
        # UDP
        "[udp sum ok]", "[bad udp cksum", "[no cksum]", "UDP, bad length 32 > 16",
        "truncated-udplength 5",
        # ICMP
        "ICMP echo request", "ICMP echo reply", "(wrong icmp cksum",
        "ICMP net 203.0.113.7 unreachable", "ICMP host 198.51.100.20 unreachable",
        "protocol 17 unreachable", "udp port 33435 unreachable", "tcp port 5004 unreachable",
        "need to frag (mtu 1400)", "time exceeded in-transit", "redirect 198.51.100.20 to host",
        "time stamp query", "time stamp reply", "parameter problem - octet 20", "type-#99",
        "\n\tIP (tos 0x0, ttl 1, id 257", "ICMP Multi-Part extension v2",
        "label 16005, tc 2, [S], ttl 1",
        # IPv4
        "options (RR ", "LSRR", "timestamp TS", "[bad length 9]", "flags [+]", "offset 1480",
        "ip-proto-17", "ECT(1)", "ECT(0)", ",CE", "bad cksum dead",
        # IPv6
        "HBH (rtalert", "DSTOPT", "RT6 (len=4", "frag (0x00c0ffee:0|", "frag (0x00c0ffee:1232|",
        "flowlabel 0xfedcb",
        # ICMPv6
        "neighbor solicitation", "neighbor advertisement", "router solicitation",
        "router advertisement", "source link-address option", "prefix info option",
        "mtu option", "rdnss option", "dnssl option", "route info option",
        "advertisement interval option", "multicast listener query",
        "multicast listener report v2", "multicast listener query v2",
        "multicast listener done", "destination unreachable, unreachable port",
        "packet too big, mtu 1280", "time exceeded in-transit for", "parameter problem",
        "[bad icmp6 cksum", "mtrace response", "mtrace message", "unknown icmp6 type (250)",
        # malformed
        "bad-hlen 16", "IP5", "IP6, wrong link-layer encapsulation", "truncated-ip - 91 bytes",
        "bad-len 12", "truncated-ip6 - 64 bytes", "version error: 4 != 6",
        "[bad hdr length 12 - too short", "[bad hdr length 60 - too long",
        "truncated-udp 6", "[|icmp]",
        # ARP
        "Request who-has", "is-at", "Reverse Request", "Ethernet (len 6), IPv6 (len 16)",
    ],
    ("cut.pcap", ("-n",)): [
        "[|ip]", "[remaining caplen(26) < header length(36)]", "[|tcp]",
        "options [mss 1460,sackOK, [|tcp]", "[|udp]", "[|icmp]", "[|ip6]", "[|hbhopt]",
        "[|icmp6]", "[|arp]", "TS [|tcp]>", "HBH 40901 > 5009", "IP bad-len 0",
    ],
    ("cut.pcap", ("-n", "-v")): ["HBH (jumbo: 70028)  40901 > 5009"],
    ("ethernet.pcap", ("-n", "-ttt")): [" 00:00:00.000000 ", "-00:00:00.300001 ", " 03:25:00."],
    ("ethernet.pcap", ("-n", "-tttt")): ["2026-03-14 23:59:59.", "2026-03-15 00:00:00."],
    ("vlan.pcap", ("-nn", "-e")): ["vlan 100, p 5, ethertype IPv4", "vlan 0, p 3", "vlan 4094"],
    ("qinq.pcap", ("-nn", "-e")): [
        "802.1Q-QinQ (0x88a8)", "vlan 200, p 0", "vlan 10, p 1, DEI", "802.1Q-9100 (0x9100)",
    ],
    ("sll.pcap", ("-nn", "-e")): [
        " Out 02:", "  In ", "   B ", "   M ", "   P ", " Out ethertype IPv4",
        " 00:00:00:00:00:00 ethertype", "vlan 7, p 1, ethertype IPv4",
    ],
    ("sll2.pcap", ("-nn", "-e")): [
        "Out ifindex 4", "In  ifindex", "ifindex 57", "?     Out", "ifindex 1 00:00:00:00:00:00",
    ],
}  # fmt: skip
"""What tcpdump prints for the test's own captures, by file and options:
proof that the traffic reaches the code paths it is made for."""


@pytest.mark.usefixtures("tcpdump_4_99_3")
def test_own_captures_reach_tcpdumps_code_paths(tmp_path: Path) -> None:
    """tcpdump prints every marker of CODE_PATHS for the test's captures."""
    paths = {path.name: path for path in traffic.write_captures(tmp_path)}
    missing = []
    for (name, options), markers in CODE_PATHS.items():
        out = tcpdump(paths[name], options).stdout
        missing += [f"{name} {' '.join(options)}: {m!r}" for m in markers if m not in out]
    assert not missing, "tcpdump never printed:\n" + "\n".join(missing)

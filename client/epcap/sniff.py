"""epcap-sniff: look at traffic from Python's side, the way tcpdump shows it.

    epcap-sniff -i eth0 'tcp port 80'             # a report per packet
    epcap-sniff -i eth0 -n -c 20                  # tcpdump's lines (any of its printing options)
    epcap-sniff -r trace.pcap -nn -e -v -tttt     # -e -v -t -q -S -x -X -A -#: as tcpdump's
    epcap-sniff -r trace.pcapng --json | jq .     # JSON lines
    epcap-sniff -i eth0 -i eth1 -w both.pcapng    # save, in time order, written by this process
    epcap-sniff -i eth0 -w 'out-%H%M%S' -G 60 -W 10   # rotate files as tcpdump -G, -C and -W
    epcap-sniff -D                                # the interfaces you may capture on
    python -m epcap.sniff --demo

The report, epcap's own, is the default output; tcpdump's printing options
(``-e -n -q -S -t -v -x -X -A -# -K``) select tcpdump's line format instead,
printed by :mod:`epcap.tcpdump`, unless ``--format`` says otherwise.

``--demo`` is what ``make sniff`` runs: a live capture on ``lo`` with a
little traffic it makes itself when the helper can get privilege, otherwise
the sample capture bundled with the package; either way it says which, and
ends by itself.

Ctrl-C and SIGTERM stop the captures at once: printing stops, the packets
already on their way are still saved with ``-w``, the summary tcpdump prints
goes to stderr and the exit status is 0, as tcpdump's; a second signal
stops waiting for the helpers.  Errors, a bad command line included, are one
line on stderr and status 1, as tcpdump's.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import FrameType
from typing import Any, NoReturn, TextIO

from . import (
    Capture,
    EpcapError,
    Merged,
    Packet,
    PermissionDeniedError,
    __version__,
    interfaces,
    merge,
    start,
)
from ._protocol import VERSION as PROTOCOL_VERSION
from .savefile import PcapngWriter, PcapWriter, RotatingPcapWriter
from .tcpdump import MAXIMUM_SNAPLEN, Options, Printer, dump

SAMPLE = Path(__file__).resolve().parent / "data" / "sample.pcap"
"""The sample capture bundled with the package (Ethernet, nanosecond pcap)."""

DEMO_PACKETS = 10
STATUS_EVERY = 0.5
"""Seconds between updates of the live status line."""

LINE_OPTIONS = ("e", "n", "q", "S", "t", "v", "x", "X", "A", "number", "K")
"""The options of tcpdump's printing; any of them selects the line format."""


class UsageError(Exception):
    """A bad command line: one line on stderr, status 1 (tcpdump's)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (epcap-sniff --help lists the options)")


_SOURCE: list[tuple[tuple[str, ...], dict[str, Any]]] = [
    (
        ("-i", "--interface"),
        dict(
            action="append",
            metavar="IFACE",
            help="capture live on IFACE ('any' for all); repeat for several interfaces",
        ),
    ),
    (("-r", "--read"), dict(metavar="FILE", help="read packets from a pcap/pcapng file")),
    (
        ("--host",),
        dict(
            action="append",
            metavar="[USER@]HOST[:PORT]",
            help="capture on HOST, through ssh, with the helper installed there (repeat for "
            "several hosts: one stream in time order, each line prefixed with host:interface)",
        ),
    ),
    (
        ("--helper",),
        dict(
            metavar="PATH",
            help="the helper to run (on --host: its path there; default: the installed one)",
        ),
    ),
    (
        ("--ssh-options",),
        dict(
            metavar="OPTIONS",
            help="more ssh options for --host, as one string: --ssh-options='-i key -p 2222'",
        ),
    ),
    (
        ("-D", "--list-interfaces"),
        dict(
            action="store_true",
            help="list the interfaces this installation lets you capture on, as tcpdump -D",
        ),
    ),
    (
        ("--demo",),
        dict(
            action="store_true",
            help="live on lo with generated traffic if privileged, else the bundled sample",
        ),
    ),
    (("-c", "--count"), dict(metavar="N", help="stop after N packets")),
    (
        ("-s", "--snapshot-length"),
        dict(
            metavar="SNAPLEN",
            default="262144",
            help="bytes captured of each packet (default and 0: 262144)",
        ),
    ),
    (
        ("-p", "--no-promiscuous-mode"),
        dict(action="store_true", help="do not put the interface into promiscuous mode"),
    ),
    (
        ("--immediate-mode",),
        dict(
            action="store_true",
            help="deliver each packet at once (lowest latency; floods drop sooner)",
        ),
    ),
    (("-B", "--buffer-size"), dict(metavar="KIB", help="kernel buffer size in KiB")),
    (("-Q", "--direction"), dict(metavar="DIR", help="direction to capture: in, out or inout")),
    (
        ("-F",),
        dict(
            metavar="FILE",
            dest="filter_file",
            help="read the filter expression from FILE ('#' starts a comment); the expression "
            "on the command line is then ignored",
        ),
    ),
    (("-Z", "--user"), dict(metavar="USER", help="user the helper drops to (default nobody)")),
    (("--group",), dict(metavar="GROUP", help="group the helper drops to")),
    (("--chroot",), dict(metavar="DIR", help="directory the helper chroots to (default its own)")),
]
_SHOW: list[tuple[tuple[str, ...], dict[str, Any]]] = [
    (
        ("--format",),
        dict(
            choices=("report", "line", "json"),
            help="a multi-line report per packet (the default), one line per packet as tcpdump, "
            "or JSON lines",
        ),
    ),
    (("--json",), dict(action="store_const", const="json", dest="format", help="--format json")),
    (("--line",), dict(action="store_const", const="line", dest="format", help="--format line")),
    (
        ("-n",),
        dict(
            action="count",
            default=0,
            help="don't convert addresses or ports to names (-nn: the same, as in tcpdump 4.99)",
        ),
    ),
    (("-e",), dict(action="store_true", help="print the link-level header")),
    (
        ("-v",),
        dict(
            action="count",
            default=0,
            help="verbose: IP header fields, checksums, options (-vv: more)",
        ),
    ),
    (("-q",), dict(action="store_true", help="quick: less protocol information")),
    (
        ("-S", "--absolute-tcp-sequence-numbers"),
        dict(
            action="store_true",
            dest="S",
            help="TCP sequence numbers as they are, not relative to the conversation",
        ),
    ),
    (
        ("-t",),
        dict(
            action="count",
            default=0,
            help="-t: no time; -tt: seconds since the epoch; -ttt: since the previous packet; "
            "-tttt: date and time; -ttttt: since the first packet",
        ),
    ),
    (
        ("-x",),
        dict(
            action="count",
            default=0,
            help="dump each packet in hex, from the network layer (-xx: from the link layer)",
        ),
    ),
    (
        ("-X",),
        dict(action="count", default=0, help="as -x, with ASCII beside the hex (-XX: as -xx)"),
    ),
    (
        ("-A",),
        dict(
            action="count",
            default=0,
            help="print each packet as ASCII, from the network layer (-AA: from the link layer)",
        ),
    ),
    (
        ("-#", "--number"),
        dict(action="store_true", dest="number", help="print each line's packet number"),
    ),
    (
        ("-K", "--dont-verify-checksums"),
        dict(
            action="store_true",
            dest="K",
            help="don't verify IP, TCP, UDP and ICMP checksums (with -v)",
        ),
    ),
    (
        ("--time-stamp-precision", "--precision"),
        dict(
            metavar="PRECISION",
            help="micro or nano: the digits printed and written (lines: micro, as tcpdump; "
            "report, JSON and -w: nano); the helper always captures nanoseconds",
        ),
    ),
    (
        ("--nano",),
        dict(
            action="store_const",
            const="nano",
            dest="time_stamp_precision",
            help="--time-stamp-precision nano",
        ),
    ),
    (
        ("--micro",),
        dict(
            action="store_const",
            const="micro",
            dest="time_stamp_precision",
            help="--time-stamp-precision micro",
        ),
    ),
    (
        ("-l", "-U", "--packet-buffered"),
        dict(
            action="store_true",
            dest="buffered",
            help="accepted for tcpdump's sake: output and -w are flushed at every packet anyway",
        ),
    ),
    (
        ("--payload",),
        dict(
            metavar="N",
            default="256",
            help="report and JSON: show the first N payload bytes (default 256, 0 for all)",
        ),
    ),
    (("--utc",), dict(action="store_true", help="report and JSON: times in UTC, not local time")),
    (
        ("-w", "--write"),
        dict(
            metavar="FILE",
            help="save packets to FILE ('-' for stdout): pcap, or pcapng for several interfaces",
        ),
    ),
    (
        ("-C",),
        dict(
            metavar="SIZE",
            dest="file_size",
            help="with -w: start a new file (FILE1, FILE2, ...) once one exceeds SIZE "
            "million bytes",
        ),
    ),
    (
        ("-G",),
        dict(
            metavar="SECONDS",
            dest="rotate_seconds",
            help="with -w: start a new file every SECONDS (on the next packet); FILE goes "
            "through strftime",
        ),
    ),
    (
        ("-W",),
        dict(
            metavar="COUNT",
            dest="file_count",
            help="with -C: cycle through COUNT files; with -G alone: stop after COUNT files",
        ),
    ),
    (("--print",), dict(action="store_true", help="with -w, show packets as well")),
    (("--quiet",), dict(action="store_true", help="no 'listening on', status line or summary")),
    (("--version",), dict(action="store_true", help="print epcap-sniff's version and exit")),
]


def _parser() -> _Parser:
    p = _Parser(
        prog="epcap-sniff",
        description="Capture packets through the sandboxed epcapd helper, decode and show "
        "them (epcap's report per packet, tcpdump's lines, or JSON lines), and save them "
        "to files. The options mean what they mean to tcpdump.",
        epilog="Any of tcpdump's printing options (-e -n -q -S -t -v -x -X -A -# -K) selects "
        "tcpdump's line format unless --format is given. Ctrl-C or SIGTERM stops the "
        "capture at once: packets already on their way are saved with -w but no longer "
        "shown, the summary goes to stderr and the exit status is 0; a second signal "
        "stops waiting for the helpers. Errors, a bad option included, are one line on "
        "stderr and exit status 1, as tcpdump's.",
    )
    for title, table in (("what to capture", _SOURCE), ("how to show and save it", _SHOW)):
        group = p.add_argument_group(title)
        for flags, kwargs in table:
            group.add_argument(*flags, **kwargs)
    p.add_argument("expression", nargs="*", help="BPF filter expression (pcap-filter(7))")
    return p


def _number(text: str, low: int, high: int, message: str, base: int = 10) -> int:
    try:
        value = int(text, base)
    except ValueError:
        raise UsageError(message) from None
    if not low <= value <= high:
        raise UsageError(message)
    return value


def _check(args: argparse.Namespace) -> None:
    """Check and convert the values, with tcpdump's words for bad ones."""
    a = args
    if a.read and a.interface:
        raise UsageError("-r and -i are exclusive")
    if a.demo and (a.read or a.interface):
        raise UsageError("--demo takes neither -r nor -i")
    if a.list_interfaces and (a.read or a.interface or a.demo):
        raise UsageError("-D takes neither -r, -i nor --demo")
    if a.demo and a.host:
        raise UsageError("--demo runs on this host: no --host")
    if a.ssh_options is not None and not a.host:
        raise UsageError("--ssh-options go with --host")
    big = 2**63 - 1
    if a.count is not None:
        a.count = _number(a.count, 1, big, f"invalid packet count {a.count}")
    limit = f"invalid snaplen {a.snapshot_length} (must be >= 0 and <= {MAXIMUM_SNAPLEN})"
    a.snapshot_length = _number(a.snapshot_length, 0, MAXIMUM_SNAPLEN, limit, base=0)
    a.snapshot_length = a.snapshot_length or MAXIMUM_SNAPLEN
    if a.buffer_size is not None:
        a.buffer_size = _number(
            a.buffer_size, 1, 2**31 // 1024 - 1, f"invalid packet buffer size {a.buffer_size}"
        )
    if a.direction is not None and a.direction not in ("in", "out", "inout"):
        raise UsageError(f"unknown capture direction `{a.direction}'")
    if a.time_stamp_precision not in (None, "micro", "nano"):
        raise UsageError("unsupported time stamp precision")
    if a.t > 5:
        raise UsageError("only -t, -tt, -ttt, -tttt and -ttttt are supported")
    a.payload = _number(a.payload, 0, big, f"invalid payload length {a.payload}")
    if a.file_size is not None:
        a.file_size = _number(a.file_size, 1, big, f"invalid file size {a.file_size}")
        if a.file_size > big // 1_000_000:
            raise UsageError(f"file size {a.file_size} is too large")
    if a.rotate_seconds is not None:
        a.rotate_seconds = _number(
            a.rotate_seconds, 0, 2**31 - 1, f"invalid number of seconds {a.rotate_seconds}"
        )
    if a.file_count is not None:
        a.file_count = _number(
            a.file_count, 1, 2**31 - 1, f"invalid number of output files {a.file_count}"
        )
    if (a.file_size or a.rotate_seconds or a.file_count) and not a.write:
        raise UsageError("-C, -G and -W rotate the files of -w: give -w FILE")
    if a.file_count and not (a.file_size or a.rotate_seconds):
        raise UsageError("-W counts the files of -C or -G: give one of them")
    if (a.file_size or a.rotate_seconds) and a.write == "-":
        raise UsageError("-C and -G rotate files: -w - writes to stdout")
    if a.filter_file is not None:
        a.expression = [_read_filter(a.filter_file)]
    lines = [name for name in LINE_OPTIONS if getattr(a, name)]
    if a.format is None:
        a.format = "line" if lines else "report"
    elif a.format != "line":
        shaping = [name for name in lines if name not in ("n", "x", "X")]  # -n: no names anyway
        if a.format == "json" and a.x + a.X:
            shaping.insert(0, "x" if a.x else "X")
        if shaping:
            flag = "-#" if shaping[0] == "number" else f"-{shaping[0]}"
            raise UsageError(
                f"{flag} shapes tcpdump's lines: it does not apply to {a.format}"
                + (
                    ", which carries payload_hex"
                    if a.format == "json"
                    else " (where -x and -X add a dump)"
                )
            )


def _read_filter(path: str) -> str:
    """tcpdump's -F: the file's text, each '#' to the end of its line a comment."""
    try:
        text = Path(path).read_text(errors="replace")
    except OSError as exc:
        raise UsageError(f"can't open {path}: {exc.strerror}") from None
    return " ".join(line.split("#", 1)[0] for line in text.splitlines()).strip()


class _Display:
    """Turns packets into text on ``out``: a report, tcpdump's lines or JSON."""

    def __init__(
        self, args: argparse.Namespace, out: TextIO, names: list[str], caps: list[Capture]
    ) -> None:
        from .decode import decode  # dpkt: the decode extra

        self._decode = decode
        self._args = a = args
        self._out = out
        self._names = names
        self._links = [cap.settings.get("datalink_name") for cap in caps]
        precision = a.time_stamp_precision or ("micro" if a.format == "line" else "nano")
        self._digits = 9 if precision == "nano" else 6
        self._limit = a.payload or None
        self._printer = Printer(Options(
            numeric=bool(a.n), link=a.e, verbose=a.v, quick=a.q, absolute=a.S,
            timestamps=a.t, hex=a.x, hexascii=a.X, ascii=a.A, number=a.number,
            nano=precision == "nano", checksums=not a.K,
        ))  # fmt: skip

    def show(self, source: int, pkt: Packet) -> None:
        a = self._args
        if a.format == "line":
            text = self._printer.format(pkt)
            if len(self._names) > 1:
                text = f"{self._names[source]} {text}"
            self._out.write(text + "\n")
            return
        d = self._decode(pkt, self._links[source])
        if a.format == "json":
            fields = d.as_dict(self._limit, self._digits)
            if len(self._names) > 1 or a.interface:
                fields["interface"] = self._names[source]
            text = json.dumps(fields)
        else:
            text = d.report(self._digits, self._limit, a.utc)
            if len(self._names) > 1:
                text = f"interface: {json.dumps(self._names[source])}\n{text}"
            level = max(a.x, a.X)
            if level:
                start = 0 if level > 1 else d.network_offset or 0  # -x starts past the link
                text += dump(pkt.data[start:], ascii=bool(a.X))
            text += "\n"  # a blank line between reports
        self._out.write(text + "\n")


class _Status:
    """The live line on a terminal's stderr: packets captured and dropped."""

    def __init__(self, caps: list[Capture], shared_tty: bool) -> None:
        self._caps = caps
        self._shared = shared_tty  # stdout is the same terminal: clear before printing
        self._shown = False
        self._next = 0.0

    def tick(self, captured: int) -> None:
        now = time.monotonic()
        if now < self._next:
            return
        self._next = now + STATUS_EVERY
        dropped = sum((c.last_stats or {}).get("dropped", 0) for c in self._caps)
        sys.stderr.write(f"\r\x1b[K{captured} packets captured, {dropped} dropped by kernel")
        sys.stderr.flush()
        self._shown = True

    def clear(self) -> None:
        if self._shown:
            sys.stderr.write("\r\x1b[K")
            sys.stderr.flush()
            self._shown = False

    def before_output(self) -> None:
        if self._shared:
            self.clear()
            self._next = 0.0  # redraw after the output

    def __enter__(self) -> _Status:
        return self

    def __exit__(self, *exc: object) -> None:
        self.clear()


class _Captures:
    """The running captures, from the moment they are open to their close:
    one stream in time order (:func:`epcap.merge`, whose bounded queue makes
    the helpers wait for a slow consumer, so that the kernel counts its
    drops instead of this process growing), and SIGINT and SIGTERM, which
    stop the helpers.  The first signal sets :attr:`signalled`; a second
    abandons the packets still on their way.  Leaving closes the captures
    and only then restores the signal handlers."""

    def __init__(self, caps: list[Capture]) -> None:
        self._caps = caps
        self._index = {id(cap): i for i, cap in enumerate(caps)}
        self._merged: Merged | None = None
        self._saved: dict[int, Any] = {}
        self._abandoned = False
        self.signalled = False

    def __enter__(self) -> _Captures:
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._saved[sig] = signal.signal(sig, self._signal)
        self._merged = merge(*self._caps)
        return self

    def _signal(self, signum: int, frame: FrameType | None) -> None:
        if self.signalled:
            self._abandoned = True
        self.signalled = True
        self.stop()

    def stop(self) -> None:
        """Ask every helper to stop (at once, and again at no cost)."""
        for cap in self._caps:
            cap.stop()

    def items(self, tick: Callable[[], None]) -> Iterator[tuple[int, Packet | EpcapError]]:
        """``(capture index, packet or error)`` in time order, until every
        capture has ended or a second signal; ``tick`` runs after each and
        when idle."""
        assert self._merged is not None
        while not self._abandoned:
            try:
                pkt = self._merged.next(timeout=STATUS_EVERY / 2)
            except TimeoutError:
                tick()
                continue
            except EpcapError as exc:  # one capture failed; the others go on
                yield -1, exc
                continue
            if pkt is None:
                return
            yield self._index[id(pkt.capture)], pkt
            tick()

    def __exit__(self, *exc: object) -> None:
        self._abandoned = True
        if self._merged is not None:
            self._merged.close()
        for sig, handler in self._saved.items():
            signal.signal(sig, handler)


def _open(args: argparse.Namespace) -> list[tuple[str, Capture]]:
    """The captures, each with its name: every -i (or the default
    interface) on every --host (or this host), or the file of -r there."""
    options: dict[str, Any] = {
        "filter": " ".join(args.expression) or None,
        "snaplen": args.snapshot_length,
        "precision": "nano",  # exact; the digits shown are --time-stamp-precision's
        "user": args.user,
        "group": args.group,
        "chroot": args.chroot,
        "progname": args.helper,
    }
    if not args.read:
        options.update(
            promiscuous=not args.no_promiscuous_mode,
            timeout="immediate" if args.immediate_mode else 1,
            buffer=args.buffer_size * 1024 if args.buffer_size else None,
            direction=args.direction,
            stats_interval=1.0,
        )
    opened: list[tuple[str, Capture]] = []
    try:
        for host in args.host or [None]:
            if host is not None:
                options.update(host=host, ssh_options=args.ssh_options)
            for source in [args.read] if args.read else args.interface or [None]:
                what = {"file": source} if args.read else {"interface": source}
                cap = start(**what, **options)
                name = source or str(cap.settings.get("interface", "default"))
                opened.append((f"{host}:{name}" if host else name, cap))
    except BaseException:
        for _, cap in opened:
            cap.close()
        raise
    return opened


Writer = PcapWriter | PcapngWriter | RotatingPcapWriter


def _writer(args: argparse.Namespace, caps: list[tuple[str, Capture]]) -> Writer:
    """-w's file: pcap for one capture (rotated with -C or -G), else pcapng."""
    path = args.write
    precision = args.time_stamp_precision or "nano"
    target: Any = sys.stdout.buffer if path == "-" else path
    if len(caps) == 1:
        cap = caps[0][1]
        if args.file_size or args.rotate_seconds:
            return RotatingPcapWriter(
                path, cap.datalink, cap.snaplen, precision,
                seconds=args.rotate_seconds or 0, size=(args.file_size or 0) * 1_000_000,
                files=args.file_count or 0,
            )  # fmt: skip
        return PcapWriter(target, cap.datalink, cap.snaplen, precision)
    if args.file_size or args.rotate_seconds:
        raise ValueError("-C and -G rotate pcap files, of one interface: give one -i")
    ng = PcapngWriter(target, precision)
    for name, cap in caps:
        ng.add_interface(cap.datalink, cap.snaplen, name)
    if len({(cap.datalink, cap.snaplen) for _, cap in caps}) > 1:
        print(
            f"epcap-sniff: warning: the interfaces differ in link type or snapshot length: "
            f"Wireshark reads {path}, libpcap and tcpdump do not",
            file=sys.stderr,
        )
    return ng


def _save(writer: Writer, packet: Packet, index: int) -> bool:
    """Write a packet; False when -G and -W end the writing (tcpdump's
    "Maximum file limit reached"): the packet is not saved."""
    if isinstance(writer, RotatingPcapWriter):
        if not writer.write(packet):
            print(f"Maximum file limit reached: {writer.files}", file=sys.stderr)
            return False
    else:
        writer.write(packet, index)
    writer.flush()
    return True


def _summary(caps: list[Capture], captured: int, live: bool) -> str:
    lines = [f"{captured} packet{'s' * (captured != 1)} captured"]
    if live:
        stats = [c.final_stats or c.last_stats or {} for c in caps]
        for key, what in (
            ("received", "received by filter"),
            ("dropped", "dropped by kernel"),
            ("if_dropped", "dropped by interface"),
        ):
            n = sum(s.get(key, 0) for s in stats)
            lines.append(f"{n} packet{'s' * (n != 1)} {what}")
    return "\n".join(lines)


def _run(args: argparse.Namespace) -> int:
    show = not args.write or args.print
    if show and args.write == "-":
        raise ValueError("-w - writes the packets to stdout: --print cannot share it")
    out = sys.stdout
    sources = _open(args)
    names = [name for name, _ in sources]
    caps = [cap for _, cap in sources]
    live = not args.read
    captured, unsaved, failure = 0, 0, None
    with _Captures(caps) as running, contextlib.ExitStack() as stack:
        if not args.quiet:
            for name, cap in sources:
                what = f"listening on {name}" if live else f"reading from file {name}"
                link = cap.settings.get("datalink_name") or f"DLT_{cap.datalink}"
                print(
                    f"epcap-sniff: {what}, link-type {link}, snapshot length {cap.snaplen} bytes",
                    file=sys.stderr,
                    flush=True,
                )
        status = None
        if live and not args.quiet and sys.stderr.isatty():
            status = stack.enter_context(_Status(caps, shared_tty=show and out.isatty()))
        display = _Display(args, out, names, caps) if show else None
        writer = _writer(args, sources) if args.write else None
        if writer is not None:
            stack.callback(writer.close)
        full = False  # -G with -W: the last file is done
        tick = (lambda: status.tick(captured)) if status else (lambda: None)
        for index, item in running.items(tick):
            if isinstance(item, EpcapError):
                failure = failure or item
                continue
            if full or (args.count is not None and captured >= args.count):
                continue  # stopping: what the helpers still send is not wanted
            if writer is not None:
                try:
                    full = not _save(writer, item, index)
                except ValueError:  # a time stamp the file cannot hold
                    unsaved += 1
                if full:
                    running.stop()
                    continue
            if display and not running.signalled:
                if status:
                    status.before_output()
                display.show(index, item)
                out.flush()
            captured += 1
            if args.count is not None and captured >= args.count:
                running.stop()
    if unsaved:
        print(
            f"epcap-sniff: {unsaved} packets not saved: their time stamps do not fit a "
            f"{'pcapng' if len(caps) > 1 else 'pcap'} file",
            file=sys.stderr,
        )
    if not args.quiet:
        print(_summary(caps, captured, live), file=sys.stderr)
    if failure is not None:
        raise failure
    return 0


def _send_demo_traffic(port: int, cap: Capture) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
        for i in range(DEMO_PACKETS):
            tx.sendto(f"epcap demo datagram {i}".encode(), ("127.0.0.1", port))
            time.sleep(0.05)
    time.sleep(2.0)
    cap.stop()  # in case some datagram was not seen: never hang the demo


def _demo(args: argparse.Namespace) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rx:
        rx.bind(("127.0.0.1", 0))  # a listener, so the datagrams draw no ICMP errors
        port = rx.getsockname()[1]
        try:
            cap = start(interface="lo", filter=f"udp and port {port}")
        except PermissionDeniedError as exc:
            print(f"epcap-sniff: no privilege for a live capture ({exc.message})")
            print(f"epcap-sniff: reading the bundled sample capture {SAMPLE}\n")
            cap = start(file=SAMPLE, exec="")  # a file needs no privilege
            count = None
        else:
            print(
                f"epcap-sniff: live capture on lo, filter 'udp and port {port}', "
                f"sending {DEMO_PACKETS} datagrams\n"
            )
            threading.Thread(target=_send_demo_traffic, args=(port, cap), daemon=True).start()
            count = DEMO_PACKETS
        seen = 0
        with cap:
            display = _Display(args, sys.stdout, ["lo"], [cap])
            for pkt in cap:
                display.show(0, pkt)
                seen += 1
                if seen == count:
                    break
    print(f"epcap-sniff: {seen} packets captured")
    return 0


def _list_interfaces(args: argparse.Namespace) -> int:
    """-D: tcpdump's numbered list, each --host's after a header of its own."""
    for host in args.host or [None]:
        if args.host:
            print(f"{host}:")
        remote = {"host": host, "ssh_options": args.ssh_options} if host else {}
        for number, interface in enumerate(interfaces(progname=args.helper, **remote), 1):
            print(f"{number}.{interface.describe()}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run epcap-sniff; return its exit status."""
    try:
        args = _parser().parse_args(argv)
        if args.version:
            print(f"epcap-sniff {__version__} (helper protocol {PROTOCOL_VERSION})")
            return 0
        _check(args)
    except UsageError as exc:
        print(f"epcap-sniff: {exc}", file=sys.stderr)
        return 1
    try:
        if args.list_interfaces:
            return _list_interfaces(args)
        return _demo(args) if args.demo else _run(args)
    except ModuleNotFoundError as exc:
        if exc.name != "dpkt":
            raise
        print(f"epcap-sniff: {exc}; or use -w FILE alone", file=sys.stderr)
    except BrokenPipeError:  # the reader of stdout went away, as `| head` does
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except (EpcapError, ValueError, TypeError, OSError) as exc:
        print(f"epcap-sniff: {exc}", file=sys.stderr)
    except KeyboardInterrupt:  # before the captures started: nothing to summarise
        return 0
    return 1


if __name__ == "__main__":
    sys.exit(main())

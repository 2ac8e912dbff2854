"""epcap-sniff: look at traffic from Python's side, the way tcpdump shows it.

    epcap-sniff -i eth0 'tcp port 80'             # a report per packet
    epcap-sniff -i eth0 --line -c 20              # one line each, as tcpdump
    epcap-sniff -r trace.pcapng --json | jq .     # JSON lines
    epcap-sniff -i eth0 -i eth1 -w both.pcapng    # save, in time order, written by this process
    epcap-sniff -D                                # the interfaces you may capture on
    python -m epcap.sniff --demo

``--demo`` is what ``make sniff`` runs: a live capture on ``lo`` with a
little traffic it makes itself when the helper can get privilege, otherwise
the sample capture bundled with the package; either way it says which, and
ends by itself.

Ctrl-C and SIGTERM stop the captures at once: printing stops, the packets
already on their way are still saved with ``-w``, the summary tcpdump prints
goes to stderr and the exit status is 0, as tcpdump's; a second signal
stops waiting for the helpers.  Errors are one line on stderr and status 1.
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
from typing import Any, TextIO

from . import (
    Capture,
    EpcapError,
    Merged,
    Packet,
    PermissionDeniedError,
    interfaces,
    merge,
    start,
)
from .savefile import PcapngWriter, PcapWriter

SAMPLE = Path(__file__).resolve().parent / "data" / "sample.pcap"
"""The sample capture bundled with the package (Ethernet, nanosecond pcap)."""

DEMO_PACKETS = 10
STATUS_EVERY = 0.5
"""Seconds between updates of the live status line."""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="epcap-sniff",
        description="Capture packets through the sandboxed epcapd helper, decode and show "
        "them (a report per packet, one line each, or JSON lines), and save them to a file.",
        epilog="Ctrl-C or SIGTERM stops the capture at once: packets already on their way "
        "are saved with -w but no longer shown, the summary goes to stderr and the exit "
        "status is 0; a second signal stops waiting for the helpers. Errors exit with "
        "status 1 (2 for a bad command line). Short options mean what they mean to tcpdump.",
    )
    src = p.add_argument_group("what to capture")
    src.add_argument(
        "-i",
        "--interface",
        action="append",
        metavar="IFACE",
        help="capture live on IFACE ('any' for all); repeat for several interfaces",
    )
    src.add_argument("-r", "--read", metavar="FILE", help="read packets from a pcap/pcapng file")
    src.add_argument(
        "-D",
        "--list-interfaces",
        action="store_true",
        help="list the interfaces this installation lets you capture on, as tcpdump -D",
    )
    src.add_argument(
        "--demo",
        action="store_true",
        help="live on lo with generated traffic if privileged, else the bundled sample",
    )
    src.add_argument("-c", "--count", type=int, metavar="N", help="stop after N packets")
    src.add_argument(
        "-s",
        "--snapshot-length",
        type=int,
        default=262144,
        metavar="SNAPLEN",
        help="bytes captured of each packet (default and 0: 262144)",
    )
    src.add_argument(
        "-p",
        "--no-promiscuous-mode",
        action="store_true",
        help="do not put the interface into promiscuous mode",
    )
    src.add_argument(
        "--immediate-mode",
        action="store_true",
        help="deliver each packet at once (lowest latency; floods drop sooner)",
    )
    src.add_argument(
        "-B", "--buffer-size", type=int, metavar="KIB", help="kernel buffer size in KiB"
    )
    src.add_argument(
        "-Q", "--direction", choices=("in", "out", "inout"), help="direction to capture"
    )
    src.add_argument(
        "--time-stamp-precision",
        "--precision",
        choices=("micro", "nano"),
        default="nano",
        help="time stamp precision (default nano)",
    )
    src.add_argument(
        "-Z", "--user", metavar="USER", help="user the helper drops to (default nobody)"
    )
    src.add_argument("--group", metavar="GROUP", help="group the helper drops to")
    src.add_argument(
        "--chroot", metavar="DIR", help="directory the helper chroots to (default its own)"
    )
    out = p.add_argument_group("how to show and save it")
    out.add_argument(
        "--format",
        choices=("report", "line", "json"),
        default="report",
        help="a multi-line report per packet (default), one line per packet as tcpdump, "
        "or JSON lines",
    )
    out.add_argument(
        "--json", action="store_const", const="json", dest="format", help="--format json"
    )
    out.add_argument(
        "--line", action="store_const", const="line", dest="format", help="--format line"
    )
    out.add_argument("-e", action="store_true", help="line format: show the link-level header")
    out.add_argument(
        "-x",
        action="count",
        default=0,
        help="also dump each packet in hex, from the network layer (-xx: from the link layer)",
    )
    out.add_argument(
        "-X", action="count", default=0, help="as -x, with ASCII beside the hex (-XX: as -xx)"
    )
    out.add_argument(
        "-l", action="store_true", help="accepted for tcpdump's sake: output is flushed anyway"
    )
    out.add_argument(
        "--payload",
        type=int,
        default=256,
        metavar="N",
        help="report and JSON: show the first N payload bytes (default 256, 0 for all)",
    )
    out.add_argument("--utc", action="store_true", help="show times in UTC, not local time")
    out.add_argument("-n", action="store_true", help="accepted for tcpdump's sake: never resolves")
    out.add_argument(
        "-w",
        "--write",
        metavar="FILE",
        help="save packets to FILE ('-' for stdout): pcap, or pcapng for several interfaces",
    )
    out.add_argument("--print", action="store_true", help="with -w, show packets as well")
    out.add_argument(
        "--quiet", action="store_true", help="no 'listening on', status line or summary"
    )
    p.add_argument("expression", nargs="*", help="BPF filter expression (pcap-filter(7))")
    return p


def _check(p: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if args.read and args.interface:
        p.error("-r and -i are exclusive")
    if args.demo and (args.read or args.interface):
        p.error("--demo takes neither -r nor -i")
    if args.list_interfaces and (args.read or args.interface or args.demo):
        p.error("-D takes neither -r, -i nor --demo")
    if args.count is not None and args.count < 0:
        p.error("-c must be 0 or more")
    if args.snapshot_length == 0:
        args.snapshot_length = 262144
    if args.payload < 0:
        p.error("--payload must be 0 or more")
    if args.format == "json" and (args.x or args.X):
        p.error("-x and -X do not mix with JSON lines, which carry payload_hex")
    if args.buffer_size is not None and args.buffer_size <= 0:
        p.error("-B must be a positive number of KiB")


class _Display:
    """Turns packets into text on ``out``: a report, a line or JSON."""

    def __init__(
        self, args: argparse.Namespace, out: TextIO, names: list[str], caps: list[Capture]
    ) -> None:
        from .decode import decode  # dpkt: the decode extra

        self._decode = decode
        self._args = args
        self._out = out
        self._names = names
        self._links = [cap.settings.get("datalink_name") for cap in caps]
        self._digits = 9 if args.time_stamp_precision == "nano" else 6
        self._limit = args.payload or None

    def show(self, source: int, pkt: Packet) -> None:
        a = self._args
        d = self._decode(pkt, self._links[source])
        if a.format == "json":
            fields = d.as_dict(self._limit)
            if len(self._names) > 1 or a.interface:
                fields["interface"] = self._names[source]
            text = json.dumps(fields)
        elif a.format == "line":
            text = d.summary(self._digits, a.utc, a.e)
            if len(self._names) > 1:
                text = f"{self._names[source]} {text}"
        else:
            text = d.report(self._digits, self._limit, a.utc)
            if len(self._names) > 1:
                text = f"interface: {json.dumps(self._names[source])}\n{text}"
        dump = max(a.x, a.X)
        if dump:
            start = 0 if dump > 1 else d.network_offset or 0  # -x starts past the link
            text += "\n" + hexdump(pkt.data[start:], ascii=bool(a.X))
        if a.format == "report":
            text += "\n"  # a blank line between reports
        self._out.write(text + "\n")


def hexdump(data: bytes, ascii: bool = True) -> str:
    """tcpdump's ``-x``/``-X`` layout: offset, 16 bytes in hex, and the
    bytes as ASCII with dots for the rest."""
    from .decode import printable

    lines = []
    for off in range(0, len(data), 16):
        row = data[off : off + 16]
        hexes = " ".join(row[i : i + 2].hex() for i in range(0, len(row), 2))
        line = f"\t0x{off:04x}:  {hexes:<39}"
        lines.append(f"{line}  {printable(row)}" if ascii else line.rstrip())
    return "\n".join(lines)


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
    options: dict[str, Any] = {
        "filter": " ".join(args.expression) or None,
        "snaplen": args.snapshot_length,
        "precision": args.time_stamp_precision,
        "user": args.user,
        "group": args.group,
        "chroot": args.chroot,
    }
    if args.read:
        return [(args.read, start(file=args.read, **options))]
    options.update(
        promiscuous=not args.no_promiscuous_mode,
        timeout="immediate" if args.immediate_mode else 1,
        buffer=args.buffer_size * 1024 if args.buffer_size else None,
        direction=args.direction,
        stats_interval=1.0,
    )
    opened: list[tuple[str, Capture]] = []
    try:
        for name in args.interface or [None]:
            cap = start(interface=name, **options)
            opened.append((name or str(cap.settings.get("interface", "default")), cap))
    except BaseException:
        for _, cap in opened:
            cap.close()
        raise
    return opened


def _writer(args: argparse.Namespace, caps: list[tuple[str, Capture]]) -> PcapWriter | PcapngWriter:
    path = args.write
    target: Any = sys.stdout.buffer if path == "-" else path
    if len(caps) == 1:
        cap = caps[0][1]
        return PcapWriter(target, cap.datalink, cap.snaplen, args.time_stamp_precision)
    ng = PcapngWriter(target, args.time_stamp_precision)
    for name, cap in caps:
        ng.add_interface(cap.datalink, cap.snaplen, name)
    if len({(cap.datalink, cap.snaplen) for _, cap in caps}) > 1:
        print(
            f"epcap-sniff: warning: the interfaces differ in link type or snapshot length: "
            f"Wireshark reads {path}, libpcap and tcpdump do not",
            file=sys.stderr,
        )
    return ng


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
        writer = stack.enter_context(_writer(args, sources)) if args.write else None
        if args.count == 0:
            running.stop()
        tick = (lambda: status.tick(captured)) if status else (lambda: None)
        for index, item in running.items(tick):
            if isinstance(item, EpcapError):
                failure = failure or item
                continue
            if args.count is not None and captured >= args.count:
                continue  # stopping: what the helpers still send is not wanted
            if display and not running.signalled:
                if status:
                    status.before_output()
                display.show(index, item)
                out.flush()
            if writer is not None:
                try:
                    writer.write(item, index)
                except ValueError:  # a time stamp the file cannot hold
                    unsaved += 1
                writer.flush()
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


def _list_interfaces() -> int:
    for number, interface in enumerate(interfaces(), 1):
        print(f"{number}.{interface.describe()}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run epcap-sniff; return its exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    _check(parser, args)
    try:
        if args.list_interfaces:
            return _list_interfaces()
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

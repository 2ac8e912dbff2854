"""epcap-sniff: print one summary line per captured packet.

    epcap-sniff -i lo -c 10 'udp port 53'
    epcap-sniff -r trace.pcapng
    python -m epcap.sniff --demo

``--demo`` is what ``make sniff`` runs: a live capture on ``lo`` with a
little traffic it makes itself when the helper can get privilege, otherwise
the sample capture bundled with the package; either way it says which, and
ends by itself.
"""

from __future__ import annotations

import argparse
import datetime as dt
import socket
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from . import Capture, EpcapError, PermissionDeniedError, start

SAMPLE = Path(__file__).resolve().parent / "data" / "sample.pcap"
"""The sample capture bundled with the package (Ethernet, nanosecond pcap)."""

DEMO_PACKETS = 10


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="epcap-sniff",
        description="Capture packets through the epcapd helper and print one line each.",
    )
    source = p.add_mutually_exclusive_group()
    source.add_argument("-i", "--interface", help="capture live on this interface")
    source.add_argument("-r", "--file", help="read packets from a pcap or pcapng file")
    source.add_argument(
        "--demo",
        action="store_true",
        help="live on lo with generated traffic if privileged, else the bundled sample",
    )
    p.add_argument("-c", "--count", type=int, help="stop after this many packets")
    p.add_argument("-s", "--snaplen", type=int, default=262144, help="snapshot length")
    p.add_argument("--promiscuous", action="store_true", help="promiscuous mode (off by default)")
    p.add_argument("--precision", choices=("micro", "nano"), default="nano")
    p.add_argument("expression", nargs="*", help="BPF filter expression")
    return p


def summary(pkt_time: int, dlt_name: str, length: int, data: bytes) -> str:
    """One line: UTC time with nanoseconds, link type, lengths, first bytes."""
    sec, nsec = divmod(pkt_time, 1_000_000_000)
    stamp = dt.datetime.fromtimestamp(sec, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
    head = data[:16].hex(" ")
    return f"{stamp}.{nsec:09d} {dlt_name} len {length} caplen {len(data)}: {head}"


def _show(cap: Capture, count: int | None) -> int:
    name = str(cap.settings.get("datalink_name") or f"DLT_{cap.datalink}")
    seen = 0
    if count == 0:
        return 0
    for pkt in cap:
        print(summary(pkt.time, name, pkt.length, pkt.data), flush=True)
        seen += 1
        if count is not None and seen >= count:
            break
    return seen


def _send_demo_traffic(port: int, cap: Capture) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
        for i in range(DEMO_PACKETS):
            tx.sendto(f"epcap demo datagram {i}".encode(), ("127.0.0.1", port))
            time.sleep(0.05)
    time.sleep(2.0)
    cap.stop()  # in case some datagram was not seen: never hang the demo


def _demo() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rx:
        rx.bind(("127.0.0.1", 0))  # a listener, so the datagrams draw no ICMP errors
        port = rx.getsockname()[1]
        try:
            cap = start(interface="lo", filter=f"udp and port {port}")
        except PermissionDeniedError as exc:
            print(f"epcap-sniff: no privilege for a live capture ({exc.message})")
            print(f"epcap-sniff: reading the bundled sample capture {SAMPLE}")
            with start(file=SAMPLE, exec="") as sample:  # a file needs no privilege
                seen = _show(sample, None)
        else:
            print(
                f"epcap-sniff: live capture on lo, filter 'udp and port {port}', "
                f"sending {DEMO_PACKETS} datagrams"
            )
            with cap:
                threading.Thread(target=_send_demo_traffic, args=(port, cap), daemon=True).start()
                seen = _show(cap, DEMO_PACKETS)
    print(f"epcap-sniff: {seen} packets captured")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run epcap-sniff; return its exit status."""
    args = _parser().parse_args(argv)
    try:
        if args.demo:
            return _demo()
        with start(
            interface=args.interface,
            file=args.file,
            filter=" ".join(args.expression) or None,
            snaplen=args.snaplen,
            promiscuous=args.promiscuous,
            precision=args.precision,
        ) as cap:
            seen = _show(cap, args.count)
        print(f"{seen} packets captured", file=sys.stderr)
        return 0
    except (EpcapError, ValueError, TypeError) as exc:
        print(f"epcap-sniff: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())

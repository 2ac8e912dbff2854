"""Run by test_privilege.py as an unprivileged user: start one capture with
the options given as JSON in argv[1], report JSON lines on stdout, and close
when a line arrives on stdin (so the test can inspect the helper meanwhile).

Extra keys: "udp": N captures live on lo, filtered to a port of its own, and
sends N datagrams there; "send": a frame (hex) to send with cap.send()
after ready, reported as a "sent" or "error" event; "progname"/"exec" pass
through to epcap.start.
"""

from __future__ import annotations

import json
import socket
import sys
import threading
from typing import Any

import epcap

from helpers import send_udp


def emit(**fields: Any) -> None:
    print(json.dumps(fields), flush=True)


def main() -> None:
    options: dict[str, Any] = json.loads(sys.argv[1])
    count = options.pop("udp", 0)
    frame = options.pop("send", None)
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("127.0.0.1", 0))
    port = rx.getsockname()[1]
    if count:
        options.update(interface="lo", filter=f"udp and port {port}")
    try:
        cap = epcap.start(**options)
    except epcap.EpcapError as exc:
        emit(event="error", type=type(exc).__name__, message=str(exc))
        return
    with cap:
        emit(event="ready", pid=cap.pid, settings=dict(cap.settings))
        if frame is not None:
            try:
                emit(event="sent", length=cap.send(bytes.fromhex(frame)))
            except epcap.EpcapError as exc:
                emit(event="error", type=type(exc).__name__, message=str(exc))
        got = []
        if count:
            timer = threading.Timer(10, cap.stop)
            timer.start()
            send_udp("127.0.0.1", port, [b"epcap %d" % i for i in range(count)])
            for pkt in cap:
                got.append(pkt.data[42:].decode())
                if len(got) == count:
                    break
            timer.cancel()
        elif options.get("file"):
            got = [pkt.data.hex() for pkt in cap]
        emit(event="packets", packets=got)
        sys.stdin.readline()
    emit(event="closed")


if __name__ == "__main__":
    main()

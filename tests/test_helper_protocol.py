"""The real helper's side of the protocol, driven over its pipes: every
malformed command is an `error` frame with op "protocol" and exit status 1;
good commands are answered in order."""

from __future__ import annotations

import struct
import subprocess
from typing import Any

import msgpack
import pytest

from conftest import HELPER
from helpers import frame

pytestmark = pytest.mark.root


class Raw:
    """The helper on lo with a quiet filter, spoken to byte by byte."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [str(HELPER), "-i", "lo", "--", "udp port 9"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        )  # fmt: skip
        assert self.read()[0] == "ready"

    def read(self) -> Any:
        assert self.proc.stdout is not None
        (length,) = struct.unpack(">I", self.proc.stdout.read(4))
        return msgpack.unpackb(self.proc.stdout.read(length))

    def write(self, data: bytes) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(data)
        self.proc.stdin.flush()


BAD = [
    pytest.param(struct.pack(">I", 0), "length 0 out of range", id="zero-length"),
    pytest.param(struct.pack(">I", (1 << 20) + 1), "out of range", id="oversize-length"),
    pytest.param(struct.pack(">I", 0xFFFFFFFF), "out of range", id="huge-length"),
    pytest.param(struct.pack(">I", 8) + msgpack.packb(["stats"]) + b"\x00", "not exactly one",
                 id="trailing-byte"),
    pytest.param(frame({"stats": 1}), "array led by a string", id="map"),
    pytest.param(frame([]), "array led by a string", id="empty-array"),
    pytest.param(frame([b"stats"]), "array led by a string", id="bin-tag"),
    pytest.param(frame(["nosuch"]), "unknown command 'nosuch'", id="unknown"),
    pytest.param(frame(["stats", 1]), "expected 0 arguments", id="extra-arg"),
    pytest.param(frame(["filter"]), "expected 1 arguments", id="missing-arg"),
    pytest.param(frame(["filter", 5]), "expected a string", id="filter-int"),
    pytest.param(frame(["send", "text"]), "expected bytes", id="send-str"),
    pytest.param(frame(["direction", 1]), "expected a string", id="direction-int"),
    pytest.param(frame(["resume", "now"]), "expected 0 arguments", id="resume-arg"),
    pytest.param(struct.pack(">I", 5) + b"\xdd\xff\xff\xff\xff", "not exactly one",
                 id="array32-claims-4G"),
    pytest.param(struct.pack(">I", 5) + b"\xdd\x01\x00\x00\x00", "not exactly one",
                 id="array32-claims-16M"),
    pytest.param(struct.pack(">I", 4000) + b"\x91" * 4000, "not exactly one", id="deep-nesting"),
    pytest.param(frame([None] * 100000), "array led by a string", id="100k-nils"),
]  # fmt: skip


@pytest.mark.parametrize("data, message", BAD)
def test_malformed_commands_are_fatal_protocol_errors(data: bytes, message: str) -> None:
    raw = Raw()
    raw.write(data)
    tag, report = raw.read()
    assert tag == "error"
    assert report["op"] == "protocol"
    assert message in report["message"]
    assert raw.proc.wait(5) == 1


def test_stdin_closed_inside_a_frame() -> None:
    raw = Raw()
    raw.write(frame(["stats"])[:5])
    assert raw.proc.stdin is not None
    raw.proc.stdin.close()
    tag, report = raw.read()
    assert (tag, report["op"]) == ("error", "protocol")
    assert "inside a frame" in report["message"]
    assert raw.proc.wait(5) == 1


def test_commands_are_answered_in_order_and_eof_ends_cleanly() -> None:
    raw = Raw()
    raw.write(frame(["stats"]) + frame(["filter", "udp port 10"]) + frame(["send", b"x" * 60]))
    assert raw.read()[:2] == ["reply", "stats"]
    assert raw.read() == ["reply", "filter", None]
    tag, command, report = raw.read()
    assert (tag, command, report["errno"]) == ("refused", "send", "EPERM")
    assert raw.proc.stdin is not None
    raw.proc.stdin.close()
    assert raw.read()[0] == "eof"
    assert raw.proc.wait(5) == 0


def test_direction_and_resume_commands() -> None:
    """direction: answered, a bad value refused (the capture goes on);
    resume without -H: nothing, no answer; then the next command's answer."""
    raw = Raw()
    raw.write(frame(["direction", "in"]) + frame(["direction", "up"]) + frame(["resume"]))
    raw.write(frame(["direction", "inout"]))
    assert raw.read() == ["reply", "direction", None]
    tag, command, report = raw.read()
    assert (tag, command, report["op"]) == ("refused", "direction", "option")
    assert raw.read() == ["reply", "direction", None]
    assert raw.proc.stdin is not None
    raw.proc.stdin.close()
    assert raw.read()[0] == "eof"
    assert raw.proc.wait(5) == 0


def test_x_joins_every_filter(udp_port: int) -> None:
    """-x EXPR: every packet must pass it too, the filter given at the start
    and every later one (a remote capture leaves its ssh connection out so);
    -x alone filters by itself, and a bad one is libpcap's error."""
    from helpers import send_udp

    other = udp_port + 1 if udp_port < 65535 else udp_port - 1
    proc = subprocess.Popen(
        [str(HELPER), "-i", "lo", "-x", f"not udp port {other}", "--", "udp"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE,
    )  # fmt: skip
    raw = Raw.__new__(Raw)
    raw.proc = proc
    try:
        assert raw.read()[0] == "ready"
        for payload in (b"other 1", b"mine 1"):
            send_udp("127.0.0.1", other if payload.startswith(b"other") else udp_port, [payload])
        raw.write(frame(["filter", ""]))  # everything: still not -x's
        seen = []
        while (message := raw.read())[0] != "reply":
            seen += [bytes(x) for x in message[2][2::3]]
        for payload in (b"other 2", b"mine 2"):
            send_udp("127.0.0.1", other if payload.startswith(b"other") else udp_port, [payload])
        raw.write(frame(["filter", "udp"]))  # a filter settles: what came before is sent first
        while (message := raw.read())[0] != "reply":
            seen += [bytes(x) for x in message[2][2::3]]
        ours = [b"mine 1", b"mine 2", b"other 1", b"other 2"]
        udp = [data for data in seen if data[23] == 17]  # not the ICMP errors that quote them
        assert [p for data in udp for p in ours if data.endswith(p)] == [b"mine 1", b"mine 2"]
    finally:
        proc.kill()
        proc.wait()
    bad = subprocess.run([str(HELPER), "-i", "lo", "-x", "udp port"], capture_output=True)
    (length,) = struct.unpack(">I", bad.stdout[:4])
    error = msgpack.unpackb(bad.stdout[4 : 4 + length])
    assert error[0] == "error" and error[1]["op"] == "pcap_compile", error
    assert bad.returncode == 1

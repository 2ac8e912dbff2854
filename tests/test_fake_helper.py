"""The client's error paths, driven by tiny fake helpers that write canned
frames: no root and no libpcap needed, every path reaped."""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

import epcap
from epcap import _driver

from conftest import zombie_children

TESTS = str(Path(__file__).resolve().parent)
"""This folder, where the fake helpers find helpers.py."""

PRELUDE = """\
import os, signal, struct, sys, time
import msgpack
open({pidfile!r}, "w").write(str(os.getpid()))
sys.path.insert(0, {tests!r})
from helpers import frame, ready
def send(value):
    sys.stdout.buffer.write(frame(value))
    sys.stdout.buffer.flush()
READY = ready(os.getpid())
PKTS = ["packets", 1, [1_000_000_002, 60, b"x" * 60, 3_000_000_004, 70, b"y" * 70]]
"""

Fake = Callable[[str], epcap.Capture]


@pytest.fixture
def fake(tmp_path: Path) -> Callable[[str], tuple[Path, Path]]:
    """Write a fake helper running `body` after PRELUDE; return (script, pidfile)."""

    def make(body: str) -> tuple[Path, Path]:
        pidfile = tmp_path / "pid"
        script = tmp_path / "fake_epcapd"
        prelude = PRELUDE.format(pidfile=str(pidfile), tests=TESTS)
        script.write_text(f"#!{sys.executable}\n" + prelude + body)
        script.chmod(0o755)
        return script, pidfile

    return make


def gone(pidfile: Path) -> bool:
    """The fake's process has exited and was reaped (no zombie either)."""
    pid = int(pidfile.read_text())
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return pid not in zombie_children()
    return False


def start_fake(script: Path) -> epcap.Capture:
    return epcap.start(file="unused.pcap", progname=script, exec="")


def test_death_before_ready_reports_status_and_stderr(fake) -> None:  # type: ignore[no-untyped-def]
    script, pidfile = fake('sys.stderr.write("boom: cannot go on\\n"); sys.exit(3)\n')
    with pytest.raises(epcap.HelperExitedError, match="status 3 before 'ready': boom") as info:
        start_fake(script)
    assert info.value.returncode == 3
    assert "cannot go on" in info.value.stderr
    assert gone(pidfile)


def test_garbage_is_a_protocol_error(fake) -> None:  # type: ignore[no-untyped-def]
    script, pidfile = fake('sys.stdout.buffer.write(b"HTTP/1.1 200 OK\\r\\n"); time.sleep(30)\n')
    t0 = time.monotonic()
    with pytest.raises(epcap.ProtocolError, match="out of range"):
        start_fake(script)
    assert time.monotonic() - t0 < 6  # closed, waited, terminated
    assert gone(pidfile)


def test_version_mismatch_is_refused(fake) -> None:  # type: ignore[no-untyped-def]
    script, pidfile = fake('send(["ready", {"version": 99}]); time.sleep(30)\n')
    with pytest.raises(epcap.ProtocolError, match="version 99"):
        start_fake(script)
    assert gone(pidfile)


def test_error_before_ready_maps_to_its_exception(fake) -> None:  # type: ignore[no-untyped-def]
    script, pidfile = fake(
        'send(["error", {"op": "pcap_compile", "code": "PCAP_ERROR", "errno": None,'
        ' "message": "syntax error"}]); sys.exit(1)\n'
    )
    with pytest.raises(epcap.FilterError, match="syntax error"):
        start_fake(script)
    assert gone(pidfile)


def test_packets_before_an_error_are_delivered_first(fake) -> None:  # type: ignore[no-untyped-def]
    script, pidfile = fake(
        "send(READY); send(PKTS)\n"
        'send(["error", {"op": "pcap_dispatch", "code": "PCAP_ERROR", "errno": None,'
        ' "message": "truncated dump file"}]); sys.exit(1)\n'
    )
    got = []
    with start_fake(script) as cap, pytest.raises(epcap.CaptureFileError, match="truncated"):
        for pkt in cap:
            got.append(pkt)
    assert [p.data for p in got] == [b"x" * 60, b"y" * 70]
    assert gone(pidfile)


def test_a_helper_killed_mid_stream_raises_helper_exited(fake) -> None:  # type: ignore[no-untyped-def]
    script, pidfile = fake("send(READY); send(PKTS); os.kill(os.getpid(), signal.SIGKILL)\n")
    got = []
    with start_fake(script) as cap, pytest.raises(epcap.HelperExitedError, match="SIGKILL") as info:
        got.extend(cap)
    assert len(got) == 2
    assert info.value.returncode == -signal.SIGKILL
    assert gone(pidfile)


def test_silence_is_a_timeout_and_the_helper_is_killed(fake, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(_driver, "START_TIMEOUT", 0.5)
    monkeypatch.setattr(_driver, "STOP_TIMEOUT", 0.5)
    script, pidfile = fake("signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)\n")
    t0 = time.monotonic()
    with pytest.raises(epcap.ProtocolError, match="no 'ready' from the helper"):
        start_fake(script)
    assert time.monotonic() - t0 < 4  # ready timeout, stop timeout, SIGTERM ignored, SIGKILL
    assert gone(pidfile)


def test_close_sends_eof_and_collects_final_stats(fake) -> None:  # type: ignore[no-untyped-def]
    script, pidfile = fake(
        'send(READY); send(PKTS); sys.stdin.buffer.read(); send(["eof", {"packets": 2}])\n'
    )
    cap = start_fake(script)
    cap.close()
    assert cap.closed
    assert cap.final_stats == {"packets": 2}
    assert gone(pidfile)
    with pytest.raises(ValueError, match="closed"):
        list(cap)


def test_stop_ends_iteration_after_pending_packets(fake) -> None:  # type: ignore[no-untyped-def]
    script, pidfile = fake(
        "send(READY); send(PKTS); sys.stdin.buffer.read(); send(PKTS)\n"
        'send(["eof", {"packets": 4}])\n'
    )
    with start_fake(script) as cap:
        cap.stop()
        assert len(list(cap)) == 4
        assert cap.final_stats == {"packets": 4}
    assert gone(pidfile)


def test_stats_command_round_trip_keeps_packets(fake) -> None:  # type: ignore[no-untyped-def]
    script, pidfile = fake(
        "import struct\n"
        "send(READY)\n"
        "n, = struct.unpack('>I', sys.stdin.buffer.read(4))\n"
        "assert msgpack.unpackb(sys.stdin.buffer.read(n)) == ['stats']\n"
        'send(PKTS); send(["reply", "stats", {"packets": 2}]); sys.stdin.buffer.read()\n'
        'send(["eof", {"packets": 2}])\n'
    )
    with start_fake(script) as cap:
        assert cap.stats() == {"packets": 2}
        with pytest.raises(TypeError, match="expression must be a string"):
            cap.set_filter(5)  # type: ignore[arg-type]
        cap.stop()
        assert len(list(cap)) == 2  # the packets that came before the answer
    assert gone(pidfile)


def test_sudo_refusal_names_the_fix(tmp_path: Path, fake) -> None:  # type: ignore[no-untyped-def]
    script, pidfile = fake('sys.stderr.write("sudo: a password is required\\n"); sys.exit(1)\n')
    sudo = tmp_path / "bin" / "sudo"
    sudo.parent.mkdir()
    sudo.write_text('#!/bin/sh\nshift\nexec "$@"\n')
    sudo.chmod(0o755)
    with pytest.raises(epcap.PermissionDeniedError, match=r"NOPASSWD: .*fake_epcapd"):
        epcap.start(file="x.pcap", progname=script, exec=[str(sudo), "-n"])
    assert gone(pidfile)


def test_abandoned_capture_is_reaped(fake) -> None:  # type: ignore[no-untyped-def]
    script, pidfile = fake(
        'send(READY); send(PKTS); sys.stdin.buffer.read(); send(["eof", {"packets": 2}])\n'
    )
    with pytest.warns(ResourceWarning, match="unclosed"):
        for _pkt in start_fake(script):
            break  # the capture is dropped here, unclosed
    deadline = time.monotonic() + 3
    while not gone(pidfile) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert gone(pidfile)


def test_a_protocol_error_mid_stream_keeps_earlier_packets_and_ends_the_helper(fake) -> None:  # type: ignore[no-untyped-def]
    script, pidfile = fake(
        "send(READY)\n"
        "sys.stdout.buffer.write(frame(PKTS) + struct.pack('>I', 0))\n"
        "sys.stdout.buffer.flush(); time.sleep(30)\n"
    )
    got = []
    with start_fake(script) as cap, pytest.raises(epcap.ProtocolError, match="out of range"):
        got.extend(cap)
    assert len(got) == 2
    assert gone(pidfile)


def test_stats_after_the_end_are_the_final_ones(fake) -> None:  # type: ignore[no-untyped-def]
    script, pidfile = fake('send(READY); send(PKTS); send(["eof", {"packets": 2}])\n')
    with start_fake(script) as cap:
        assert len(list(cap)) == 2
        assert cap.stats() == {"packets": 2}
        with pytest.raises(ValueError, match=r"ended|closed"):
            cap.set_filter("udp")
    assert gone(pidfile)

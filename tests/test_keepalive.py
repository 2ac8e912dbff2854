"""The helper's -k (epcapd/PROTOCOL.md, "Life of a helper", 5): a helper
whose stdin stays silent for -k milliseconds ends, killed by its own
SIGALRM, wherever it is: waiting in its loop, blocked writing to a full
stdout, whatever its caller did to SIGALRM, whoever its invoker is. Every
whole frame on stdin, `["keepalive"]` (which gets no answer) or any other
command, starts the clock again. Driven over the helper's pipes, as
test_helper_protocol.py does."""

from __future__ import annotations

import contextlib
import fcntl
import os
import pwd
import shutil
import signal
import socket
import struct
import subprocess
import termios
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import msgpack
import pytest

import pcapfiles as pf
from conftest import HELPER
from helpers import frame
from privileged import MODES, as_user, helper_command, processes_of, wait_gone

MARGIN = 0.25
"""Seconds a helper may outlive its -k: the wake-up of a waiting test."""
KILLED = -signal.SIGALRM
"""Popen's returncode of a helper that SIGALRM ended."""
F_GETPIPE_SZ = 1032


class Helper:
    """The source tree's helper with `args`, spoken to over its pipes; its
    stdout read by the test (read()) or by a thread (start_reader())."""

    def __init__(self, *args: str, preexec_fn: Callable[[], None] | None = None) -> None:
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            [str(HELPER), *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            preexec_fn=preexec_fn,
        )  # fmt: skip
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.stdin, self.stdout = self.proc.stdin, self.proc.stdout
        self.frames: list[Any] = []
        self.cond = threading.Condition()
        self.reader: threading.Thread | None = None

    def read(self) -> Any:
        """The next frame on stdout (not with a reader thread)."""
        (length,) = struct.unpack(">I", self.stdout.read(4))
        return msgpack.unpackb(self.stdout.read(length))

    def start_reader(self, pause: float = 0.0) -> None:
        """Read stdout in a thread, 64 KiB at a time, `pause` seconds apart,
        until it ends; whole frames go to self.frames."""

        def run() -> None:
            buf = b""
            while chunk := os.read(self.stdout.fileno(), 65536):
                buf += chunk
                while len(buf) >= 4 and len(buf) >= 4 + struct.unpack_from(">I", buf)[0]:
                    (length,) = struct.unpack_from(">I", buf)
                    with self.cond:
                        self.frames.append(msgpack.unpackb(buf[4 : 4 + length]))
                        self.cond.notify_all()
                    buf = buf[4 + length :]
                time.sleep(pause)

        self.reader = threading.Thread(target=run, daemon=True)
        self.reader.start()

    def next_answer(self, timeout: float = 5.0) -> Any:
        """The reader's next frame that is not `packets` (taken off the list)."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                while self.frames and self.frames[0][0] == "packets":
                    self.frames.pop(0)
                if self.frames:
                    return self.frames.pop(0)
                left = deadline - time.monotonic()
                assert left > 0, "no answer from the helper"
                self.cond.wait(left)

    def write(self, data: bytes) -> None:
        self.stdin.write(data)
        self.stdin.flush()

    def wait_killed(self, limit: float, since: float) -> float:
        """Wait for the helper to die of SIGALRM no later than `limit`
        seconds (its -k) plus MARGIN after `since` (a moment after its clock
        started); the seconds since it was spawned, at least `limit`."""
        returncode = self.proc.wait(since + limit + MARGIN + 5 - time.monotonic())
        now = time.monotonic()
        assert returncode == KILLED, f"helper ended with {returncode}"
        assert now - since <= limit + MARGIN, f"helper lived {now - since:.3f} s"
        assert now - self.started >= limit - 0.005, "ended before its -k"
        return now - self.started

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(5)
        with contextlib.suppress(BrokenPipeError):
            self.stdin.close()
        if self.reader is not None:
            self.reader.join(5)
        self.stdout.close()


@contextlib.contextmanager
def helper(*args: str, preexec_fn: Callable[[], None] | None = None) -> Iterator[Helper]:
    h = Helper(*args, preexec_fn=preexec_fn)
    try:
        yield h
    finally:
        h.close()


@pytest.fixture(scope="module")
def big_pcap(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A pcap file of 8 MB: 8000 datagrams of 1000 bytes, far more than a
    helper's stdout (1 MiB) holds."""
    path = tmp_path_factory.mktemp("keepalive") / "big.pcap"
    data = pf.eth_ipv4_udp("10.0.0.1", "10.0.0.2", 1000, 9, b"k" * 1000)
    records = [(pf.SAMPLE_EPOCH_NS + i * 1000, len(data), data) for i in range(8000)]
    pf.write_pcap(path, records, linktype=pf.LINKTYPE_ETHERNET)
    return path


def no_end_frames(frames: Sequence[Any]) -> None:
    """A helper that SIGALRM ended says nothing of it: no eof, no error."""
    assert [f[0] for f in frames if f[0] not in ("ready", "packets")] == []


@pytest.mark.root
def test_a_silent_client_ends_a_live_helper(no_leftovers: None) -> None:
    with helper("-i", "lo", "-k", "300", "--", "udp port 9") as h:
        assert h.read()[0] == "ready"
        h.wait_killed(0.3, time.monotonic())
        h.start_reader()
        assert h.reader is not None
        h.reader.join(5)
        no_end_frames(h.frames)


def test_a_silent_client_ends_a_helper_reading_a_file(big_pcap: Path, no_leftovers: None) -> None:
    """The client reads its packets, slowly (about 1.3 MB/s: the file would
    last 6 s), and sends nothing: the helper ends in the middle of the file."""
    with helper("-r", str(big_pcap), "-k", "300") as h:
        h.start_reader(pause=0.05)
        assert h.next_answer()[0] == "ready"
        h.wait_killed(0.3, time.monotonic())
        assert h.reader is not None
        h.reader.join(5)
        no_end_frames(h.frames)
        got = sum(len(f[2]) // 3 for f in h.frames if f[0] == "packets")
        assert 0 < got < 8000


@pytest.mark.root
@pytest.mark.parametrize("command", [["keepalive"], ["stats"]], ids=["keepalive", "stats"])
def test_a_frame_every_100_ms_keeps_it_alive(command: list[Any], no_leftovers: None) -> None:
    """-k 300, a frame every 100 ms for 2 s: alive throughout, then it
    answers stats and stops at end-of-file as ever. keepalive gets no
    answer, stats one each."""
    with helper("-i", "lo", "-k", "300", "--", "udp port 9") as h:
        h.start_reader()
        assert h.next_answer()[0] == "ready"
        start = time.monotonic()
        for i in range(20):
            h.write(frame(command))
            time.sleep(max(0.0, start + (i + 1) * 0.1 - time.monotonic()))
            assert h.proc.poll() is None, f"helper ended after {time.monotonic() - start:.2f} s"
        h.write(frame(["stats"]))
        if command == ["stats"]:
            for _ in range(20):
                assert h.next_answer()[:2] == ["reply", "stats"]
        tag, name, stats = h.next_answer()
        assert (tag, name) == ("reply", "stats") and "packets" in stats
        h.stdin.close()
        assert h.next_answer()[0] == "eof"
        assert h.proc.wait(5) == 0


def flood(port: int, stop: threading.Event) -> None:
    """UDP datagrams of 1400 bytes to 127.0.0.1:`port`, as fast as they go."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
        while not stop.is_set():
            for _ in range(100):
                with contextlib.suppress(OSError):
                    tx.sendto(b"f" * 1400, ("127.0.0.1", port))


def stdout_was_full(h: Helper) -> None:
    """What the helper wrote and nobody read fills its stdout (whose size it
    set, and which outlives it): it was blocked writing."""
    fd = h.stdout.fileno()
    size = fcntl.fcntl(fd, F_GETPIPE_SZ)
    queued = struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, b"\0" * 4))[0]
    assert queued >= size // 2, (queued, size)


@pytest.mark.root
def test_a_helper_blocked_writing_to_a_full_stdout_is_ended_too(
    udp_port: int, no_leftovers: None
) -> None:
    """A live capture flooded on lo, whose stdout nobody reads: its batch
    grows to 256 KiB, then it blocks in a write, and never reads stdin."""
    stop = threading.Event()
    sender = threading.Thread(target=flood, args=(udp_port, stop), daemon=True)
    with helper("-i", "lo", "-k", "500", "--", f"udp port {udp_port}") as h:
        assert h.read()[0] == "ready"
        since = time.monotonic()
        sender.start()
        try:
            h.wait_killed(0.5, since)
        finally:
            stop.set()
            sender.join(5)
        stdout_was_full(h)


def ignore_alarm() -> None:
    signal.signal(signal.SIGALRM, signal.SIG_IGN)


def block_alarm() -> None:
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})


@pytest.mark.parametrize(
    "preexec_fn", [None, ignore_alarm, block_alarm], ids=["default", "ignored", "blocked"]
)
def test_a_file_helper_blocked_writing_is_ended_whatever_its_caller_did_to_sigalrm(
    preexec_fn: Callable[[], None] | None, big_pcap: Path, no_leftovers: None
) -> None:
    """Nobody reads the helper's stdout: it blocks writing the file's
    packets. An ignored or blocked SIGALRM, which exec passes on, is the
    default again in the helper."""
    with helper("-r", str(big_pcap), "-k", "300", preexec_fn=preexec_fn) as h:
        h.wait_killed(0.3, h.started)
        stdout_was_full(h)


@pytest.mark.root
def test_keepalive_without_k_is_accepted_and_not_answered(no_leftovers: None) -> None:
    with helper("-i", "lo", "--", "udp port 9") as h:
        h.start_reader()
        assert h.next_answer()[0] == "ready"
        h.write(frame(["keepalive"]) + frame(["keepalive"]) + frame(["stats"]))
        assert h.next_answer()[:2] == ["reply", "stats"]
        time.sleep(0.5)  # longer than any -k: nothing ends it
        h.write(frame(["keepalive"]) + frame(["stats"]))
        assert h.next_answer()[:2] == ["reply", "stats"]
        h.stdin.close()
        assert h.next_answer()[0] == "eof"
        assert h.proc.wait(5) == 0
        assert h.frames == []


@pytest.mark.root
@pytest.mark.parametrize("k", [[], ["-k", "1000"]], ids=["without-k", "with-k"])
def test_keepalive_with_an_argument_is_a_protocol_error(k: list[str], no_leftovers: None) -> None:
    with helper("-i", "lo", *k, "--", "udp port 9") as h:
        assert h.read()[0] == "ready"
        h.write(frame(["keepalive", 1]))
        tag, report = h.read()
        assert (tag, report["op"]) == ("error", "protocol")
        assert "keepalive: expected 0 arguments, got 1" in report["message"]
        assert h.proc.wait(5) == 1


def option_error(*args: str) -> str:
    """The message of the option error the helper answers `args` with."""
    proc = subprocess.run(
        [str(HELPER), *args], stdin=subprocess.DEVNULL, capture_output=True, timeout=10
    )
    assert proc.returncode == 1, proc
    (length,) = struct.unpack_from(">I", proc.stdout)
    assert len(proc.stdout) == 4 + length
    tag, report = msgpack.unpackb(proc.stdout[4:])
    assert (tag, report["op"]) == ("error", "option")
    message: str = report["message"]
    return message


@pytest.mark.parametrize("value", ["99", "86400001", "x", "", "0", "-300", "1e3", "300ms"])
def test_a_bad_k_is_an_option_error(value: str, tmp_path: Path) -> None:
    path = tmp_path / "empty.pcap"
    pf.write_pcap(path, [], linktype=pf.LINKTYPE_ETHERNET)
    message = option_error("-r", str(path), "-k", value)
    assert message == f"-k: expected an integer from 100 to 86400000, got '{value}'"


def test_k_needs_a_value_and_is_no_option_of_a_listing() -> None:
    assert option_error("-k") == "-k: missing value"
    assert "-D lists the devices" in option_error("-D", "-k", "1000")


@pytest.mark.parametrize("value", ["100", "86400000"])
def test_the_bounds_of_k_are_accepted(value: str, tmp_path: Path) -> None:
    path = tmp_path / "one.pcap"
    data = pf.eth_ipv4_udp("10.0.0.1", "10.0.0.2", 1000, 9, b"x")
    pf.write_pcap(path, [(pf.SAMPLE_EPOCH_NS, len(data), data)], linktype=pf.LINKTYPE_ETHERNET)
    with helper("-r", str(path), "-k", value) as h:
        h.start_reader()
        assert h.next_answer()[0] == "ready"
        assert h.next_answer()[0] == "eof"
        assert h.proc.wait(5) == 0


@pytest.mark.root
@pytest.mark.skipif(shutil.which("unshare") is None, reason="no unshare(1)")
def test_the_first_process_of_a_pid_namespace_refuses_k(tmp_path: Path) -> None:
    """The kernel drops a signal of default action sent to a PID
    namespace's first process: -k could not end it."""
    path = tmp_path / "empty.pcap"
    pf.write_pcap(path, [], linktype=pf.LINKTYPE_ETHERNET)
    proc = subprocess.run(
        ["unshare", "--pid", "--fork", str(HELPER), "-r", str(path), "-k", "1000"],
        stdin=subprocess.DEVNULL, capture_output=True, timeout=10,
    )  # fmt: skip
    assert proc.returncode == 1, proc
    tag, report = msgpack.unpackb(proc.stdout[4:])
    assert (tag, report["op"]) == ("error", "option")
    assert "first process of a PID namespace" in report["message"]


@pytest.mark.root
@pytest.mark.parametrize("mode", MODES)
def test_every_invoker_may_ask_for_k(
    mode: str, user: pwd.struct_passwd, installs: dict[str, Path]
) -> None:
    """A user who is not root runs the installed helper, live, under a shell
    of theirs that ignores SIGALRM (which sudo passes on), with a stdin that
    stays open and silent: the policy lets -k through, and the helper (under
    sudo, sudo too) ends by SIGALRM."""
    stdin_r, stdin_w = os.pipe()
    script = "trap '' ALRM; \"$@\"; exit $?"  # not exec: this shell is the client
    command = helper_command(mode, installs[mode], "-i", "lo", "-k", "300", "--", "udp port 9")
    try:
        start = time.monotonic()
        proc = subprocess.run(
            [*as_user(user), "/bin/sh", "-c", script, "sh", *command],
            stdin=stdin_r, capture_output=True, env={"PATH": "/usr/bin:/bin"}, cwd="/",
            timeout=20,
        )  # fmt: skip
        took = time.monotonic() - start
    finally:
        os.close(stdin_r)
        os.close(stdin_w)
    assert proc.returncode == 128 + signal.SIGALRM, proc
    assert took < 0.3 + 2, took  # sudo, setpriv and the shell start too
    (length,) = struct.unpack_from(">I", proc.stdout)
    assert len(proc.stdout) == 4 + length, "more than ready"
    assert msgpack.unpackb(proc.stdout[4:])[0] == "ready"
    assert wait_gone(processes_of(installs[mode]), 1.0) == set()

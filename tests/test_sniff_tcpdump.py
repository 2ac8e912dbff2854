"""epcap-sniff as a tcpdump user runs it: its options and their errors
against tcpdump's own, and -w's rotation (-G, -C, -W) on a live flood beside
tcpdump rotating the same traffic.  The line format itself is held to
tcpdump's in test_tcpdump_lines.py."""

from __future__ import annotations

import itertools
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from epcap.sniff import SAMPLE, main

import pcapfiles as pf
from conftest import HELPER, helper_pids
from helpers import send_udp

SNIFF = str(Path(sys.executable).parent / "epcap-sniff")
ENV = {**os.environ, "EPCAPD": str(HELPER), "TZ": "UTC"}

# Bad values tcpdump rejects too: the same words, the same status (1), one line.
SHARED_ERRORS = [
    (["-c", "0"], "invalid packet count 0"),
    (["-c", "x"], "invalid packet count x"),
    (["-c", "-3"], "invalid packet count -3"),
    (["-s", "300000"], "invalid snaplen 300000 (must be >= 0 and <= 262144)"),
    (["-s", "12a"], "invalid snaplen 12a (must be >= 0 and <= 262144)"),
    (["-B", "0"], "invalid packet buffer size 0"),
    (["-C", "0"], "invalid file size 0"),
    (["-C", "x"], "invalid file size x"),
    (["-C", "99999999999999"], "file size 99999999999999 is too large"),
    (["-G", "-1"], "invalid number of seconds -1"),
    (["-W", "0"], "invalid number of output files 0"),
    (["-Q", "sideways"], "unknown capture direction `sideways'"),
    (["--time-stamp-precision=pico"], "unsupported time stamp precision"),
    (["-tttttt"], "only -t, -tt, -ttt, -tttt and -ttttt are supported"),
    (["-F", "/nonexistent/filter"], "can't open /nonexistent/filter: No such file or directory"),
]
# Bad command lines only epcap-sniff has words for.
OWN_ERRORS = [
    (["-G", "x"], "invalid number of seconds x"),  # tcpdump's atoi() takes it as 0
    (["-k"], "unrecognized arguments: -k"),
    (["--format", "xml"], "invalid choice: 'xml'"),
    (["--json", "-X"], "-X shapes tcpdump's lines"),
    (["--format", "report", "-v"], "-v shapes tcpdump's lines: it does not apply to report"),
    (["-C", "1"], "-C, -G and -W rotate the files of -w"),
    (["-w", "x.pcap", "-W", "3"], "-W counts the files of -C or -G"),
    (["-w", "-", "-G", "1"], "-C and -G rotate files"),
    (["--payload", "-1"], "invalid payload length -1"),
    (["-i", "lo"], "-r and -i are exclusive"),
]


@pytest.mark.parametrize("args, message", SHARED_ERRORS + OWN_ERRORS)
def test_a_bad_value_is_one_line_and_status_1(args: list[str], message: str) -> None:
    before = helper_pids()
    result = subprocess.run(
        [SNIFF, *args, "-r", str(SAMPLE)], capture_output=True, text=True, env=ENV, timeout=60
    )
    assert result.returncode == 1, result
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("epcap-sniff: "), result.stderr
    assert message in lines[0]
    assert helper_pids() - before == set()
    if (args, message) in SHARED_ERRORS:
        theirs = subprocess.run(
            ["tcpdump", *args, "-r", str(SAMPLE)], capture_output=True, text=True, timeout=60
        )
        assert theirs.returncode == result.returncode
        assert theirs.stderr.splitlines()[-1] == "tcpdump: " + lines[0].split(": ", 1)[1]


def test_help_lists_every_option_of_the_issue() -> None:
    result = subprocess.run([SNIFF, "--help"], capture_output=True, text=True, env=ENV)
    assert result.returncode == 0
    for flag in ("-v", "-t", "-A", "-q", "-S", "-D", "-F", "-G", "-C", "-W", "-#", "-e", "-n",
                 "-x", "-X", "-K", "--nano", "--time-stamp-precision", "--version"):  # fmt: skip
        assert re.search(rf"(^|[ ,\[]){re.escape(flag)}(?=[ ,\]=]|$)", result.stdout, re.M), flag


def test_F_reads_the_filter_from_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    expression = tmp_path / "filter"
    expression.write_text("# pings only\nicmp\n  and host 192.168.1.1 # the router\n")
    os.environ["EPCAPD"] = str(HELPER)
    assert main(["-r", str(SAMPLE), "-n", "-t", "-F", str(expression), "udp", "--quiet"]) == 0
    lines = capsys.readouterr().out.splitlines()
    theirs = subprocess.run(
        ["tcpdump", "-n", "-t", "-r", str(SAMPLE), "-F", str(expression)],
        capture_output=True, text=True, check=True,
    ).stdout.splitlines()  # fmt: skip
    assert lines == theirs and len(lines) == 2


def test_the_report_stays_the_default(capsys: pytest.CaptureFixture[str]) -> None:
    os.environ["EPCAPD"] = str(HELPER)
    assert main(["-r", str(SAMPLE), "-c", "1", "--quiet"]) == 0
    assert capsys.readouterr().out.startswith('time: "')
    assert main(["-r", str(SAMPLE), "-c", "1", "--quiet", "-t"]) == 0
    assert capsys.readouterr().out.startswith("ARP, Request who-has 192.168.1.1")


# Rotation, live ------------------------------------------------------------


class Flood:
    """Numbered datagrams to a port of 127.0.0.1, ``rate`` a second, from a
    thread, until stopped."""

    def __init__(self, port: int, size: int, rate: int) -> None:
        self.port, self.size, self.gap = port, size, 1 / rate
        self.sent = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            payload = f"{self.sent:08d}".encode().ljust(self.size, b".")
            send_udp("127.0.0.1", self.port, [payload])
            self.sent += 1
            time.sleep(self.gap)

    def __enter__(self) -> Flood:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def rotate(args: list[str], port: int, ours: Path, theirs: Path) -> tuple[str, str]:
    """epcap-sniff and tcpdump side by side, the same -w rotation options
    (the file pattern under ``ours`` and ``theirs``) and filter; returns
    their stderr once both ended by themselves."""
    expression = f"udp port {port}"
    sniff = subprocess.Popen(
        [SNIFF, "-i", "lo", "-w", str(ours), *args, expression],
        stderr=subprocess.PIPE, text=True, env=ENV,
    )  # fmt: skip
    dump = subprocess.Popen(  # tcpdump drops to its own user unless told: -Z root
        ["tcpdump", "-i", "lo", "-Z", "root", "-w", str(theirs), *args, expression],
        stderr=subprocess.PIPE, text=True, env=ENV,
    )  # fmt: skip
    try:
        time.sleep(1.0)  # both listening
        return sniff.communicate(timeout=60)[1], dump.communicate(timeout=60)[1]
    finally:
        for proc in (sniff, dump):
            proc.kill()
            proc.wait()


def numbers(path: Path) -> list[int]:
    """The sequence numbers of the flood's datagrams in a file, as libpcap reads it."""
    return [int(data[42:50]) for _, _, data in pf.libpcap_read(path)[1]]


@pytest.mark.root
@pytest.mark.usefixtures("no_leftovers")
def test_rotation_by_time_ends_after_W_files_as_tcpdump(udp_port: int, tmp_path: Path) -> None:
    (tmp_path / "ours").mkdir()
    (tmp_path / "theirs").mkdir()
    pattern = "out-%Y%m%d-%H%M%S.pcap"
    with Flood(udp_port, 100, rate=500):
        ours_err, theirs_err = rotate(
            ["-G", "1", "-W", "3"], udp_port, tmp_path / "ours" / pattern,
            tmp_path / "theirs" / pattern,
        )  # fmt: skip
    for err in (ours_err, theirs_err):
        assert "Maximum file limit reached: 3" in err, err
    ours = sorted((tmp_path / "ours").iterdir())
    theirs = sorted((tmp_path / "theirs").iterdir())
    assert len(ours) == len(theirs) == 3, (ours, theirs)
    shape = re.compile(r"out-\d{8}-\d{6}\.pcap")
    stamps = []
    for path in ours:
        assert shape.fullmatch(path.name), path.name
        stamps.append(time.mktime(time.strptime(path.name, "out-%Y%m%d-%H%M%S.pcap")))
        tcpdump = subprocess.run(["tcpdump", "-r", str(path)], capture_output=True, text=True)
        assert tcpdump.returncode == 0 and tcpdump.stdout.count("UDP, length 100") > 0
    assert all(later - earlier >= 1 for earlier, later in itertools.pairwise(stamps))
    # Every packet captured is in exactly one file, in order, none missing.
    seen = [n for path in ours for n in numbers(path)]
    assert seen == list(range(seen[0], seen[0] + len(seen)))
    captured = int(re.search(r"(\d+) packets? captured", ours_err).group(1))  # type: ignore[union-attr]
    assert captured == len(seen)
    print(f"-G 1 -W 3: {[p.name for p in ours]} with {[len(numbers(p)) for p in ours]} packets; "
          f"tcpdump's: {[p.name for p in theirs]}")  # fmt: skip


@pytest.mark.root
@pytest.mark.usefixtures("no_leftovers")
def test_rotation_by_size_names_and_fills_files_as_tcpdump(udp_port: int, tmp_path: Path) -> None:
    (tmp_path / "ours").mkdir()
    (tmp_path / "theirs").mkdir()
    count = 3000  # of 1000-byte datagrams: a little over 3 MB
    with Flood(udp_port, 1000, rate=2000):
        ours_err, theirs_err = rotate(
            ["-C", "1", "-c", str(count)], udp_port, tmp_path / "ours" / "out",
            tmp_path / "theirs" / "out",
        )  # fmt: skip
    assert f"{count} packets captured" in ours_err, ours_err
    assert f"{count} packets captured" in theirs_err, theirs_err
    ours = {p.name: p.stat().st_size for p in (tmp_path / "ours").iterdir()}
    theirs = {p.name: p.stat().st_size for p in (tmp_path / "theirs").iterdir()}
    assert sorted(ours) == sorted(theirs) == ["out", "out1", "out2", "out3"]
    assert ours == theirs  # the same packets: the same sizes, file by file
    for name, size in ours.items():
        if name != "out3":
            assert 1_000_000 < size <= 1_000_000 + 16 + 1042, (name, size)
    names = ("out", "out1", "out2", "out3")
    seen = [n for name in names for n in numbers(tmp_path / "ours" / name)]
    assert seen == list(range(seen[0], seen[0] + count))
    print(f"-C 1: {ours}, tcpdump's: {theirs}")

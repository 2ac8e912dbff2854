"""epcap-sniff, as a user runs it: the console script and python -m."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from epcap.sniff import SAMPLE

import pcapfiles as pf
from conftest import HELPER

VENV_BIN = Path(sys.executable).parent
ENV = {**os.environ, "EPCAPD": str(HELPER)}


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=60, env=ENV)


def test_the_bundled_sample_is_the_generated_one() -> None:
    expected = pf.pcap_bytes(pf.sample_records(), linktype=pf.LINKTYPE_ETHERNET, nano=True)
    assert SAMPLE.read_bytes() == expected


def test_reads_a_file_one_line_per_packet(tmp_path: Path) -> None:
    path = tmp_path / "s.pcap"
    pf.write_pcap(path, pf.sample_records(), linktype=pf.LINKTYPE_ETHERNET, nano=True)
    result = run(str(VENV_BIN / "epcap-sniff"), "-r", str(path))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == len(pf.sample_records())
    assert lines[0].startswith("2026-01-01 00:00:00.")
    assert " EN10MB len " in lines[0]
    assert result.stderr.strip() == f"{len(lines)} packets captured"


def test_module_entry_point_with_filter_and_count() -> None:
    result = run(sys.executable, "-m", "epcap.sniff", "-r", str(SAMPLE), "-c", "2", "tcp")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 2
    assert all(" len " in line for line in lines)


@pytest.mark.parametrize(
    "args, message",
    [
        (["-r", "/nonexistent.pcap"], "No such file or directory"),
        (["-r", str(SAMPLE), "tcp", "port"], "syntax error"),
        (["-r", str(SAMPLE), "-s", "0"], "snaplen"),
    ],
)
def test_errors_are_one_line_without_traceback(args: list[str], message: str) -> None:
    result = run(str(VENV_BIN / "epcap-sniff"), *args)
    assert result.returncode == 1
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.root
def test_demo_captures_live_when_privileged() -> None:
    result = run(str(VENV_BIN / "epcap-sniff"), "--demo")
    assert result.returncode == 0, result.stderr
    assert "live capture on lo" in result.stdout
    assert "epcap-sniff: 10 packets captured" in result.stdout
    assert result.stdout.count(" EN10MB len 63 ") == 10


def test_demo_falls_back_to_the_sample_without_privilege(tmp_path: Path) -> None:
    # No privilege: an unprivileged prefix that refuses like sudo without a rule.
    fake_sudo = tmp_path / "sudo"
    fake_sudo.write_text('#!/bin/sh\necho "sudo: a password is required" >&2\nexit 1\n')
    fake_sudo.chmod(0o755)
    env = {**ENV, "EPCAP_EXEC": str(fake_sudo)}
    result = subprocess.run(
        [str(VENV_BIN / "epcap-sniff"), "--demo"], capture_output=True, text=True, timeout=60,
        env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "reading the bundled sample capture" in result.stdout
    assert result.stdout.count(" EN10MB len ") == len(pf.sample_records())

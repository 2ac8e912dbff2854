"""Option validation and the argument vector: pure code, nothing spawned."""

from __future__ import annotations

from pathlib import Path

import pytest

import epcap
from epcap._options import Options


def test_defaults_make_a_minimal_argv() -> None:
    assert Options.validate().argv() == ["-P", "nano", "--"]


def test_every_option_reaches_the_argv() -> None:
    opts = Options.validate(
        interface="eth0",
        filter="udp port 53",
        snaplen=96,
        promiscuous=True,
        timeout=250,
        buffer=1 << 22,
        direction="in",
        monitor=True,
        precision="micro",
        chroot=Path("/var/empty"),
        user="pcap",
        group="pcap",
    )
    assert opts.argv() == [
        "-i", "eth0", "-s", "96", "-p", "-t", "250", "-B", "4194304", "-Q", "in", "-I",
        "-P", "micro", "-d", "/var/empty", "-u", "pcap", "-g", "pcap", "--", "udp port 53",
    ]  # fmt: skip


def test_live_control_options_reach_the_argv() -> None:
    opts = Options.validate(
        interface="eth0", inject=True, cluster_id=7, cpu_affinity="0", stats_interval=0.25
    )
    assert opts.argv() == [
        "-i", "eth0", "-P", "nano", "-j", "-C", "7", "-a", "0", "-S", "250", "--",
    ]  # fmt: skip


def test_timeout_never_and_file_mode() -> None:
    assert Options.validate(timeout=None).argv() == ["-t", "never", "-P", "nano", "--"]
    assert Options.validate(file=Path("/x.pcap")).argv() == ["-r", "/x.pcap", "-P", "nano", "--"]


def test_values_that_look_like_flags_stay_values() -> None:
    argv = Options.validate(interface="-f/etc/shadow", filter="-r /etc/shadow").argv()
    assert argv[:2] == ["-i", "-f/etc/shadow"]
    assert argv[-2:] == ["--", "-r /etc/shadow"]


def test_empty_filter_means_none() -> None:
    assert Options.validate(filter="").argv() == ["-P", "nano", "--"]


def test_unknown_option_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="promisc"):
        epcap.start(promisc=True)  # type: ignore[call-arg]


def test_bad_exec_type_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="exec"):
        epcap.start(file="x.pcap", exec=5)  # type: ignore[arg-type]


def test_missing_helper_is_reported(tmp_path: Path) -> None:
    with pytest.raises(epcap.HelperNotFoundError, match="not an executable"):
        epcap.start(file="x.pcap", progname=tmp_path / "nope")

"""Option validation and the argument vector: pure code, nothing spawned."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

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


BAD: list[tuple[dict[str, Any], type[Exception], str]] = [
    ({"snaplen": 0}, ValueError, "snaplen"),
    ({"snaplen": 262145}, ValueError, "snaplen"),
    ({"snaplen": "96"}, TypeError, "snaplen"),
    ({"snaplen": True}, TypeError, "snaplen"),
    ({"snaplen": 96.0}, TypeError, "snaplen"),
    ({"promiscuous": 1}, TypeError, "promiscuous"),
    ({"monitor": "yes"}, TypeError, "monitor"),
    ({"timeout": 0}, ValueError, "timeout"),
    ({"timeout": -5}, ValueError, "timeout"),
    ({"timeout": "soon"}, ValueError, "timeout"),
    ({"timeout": 1.5}, TypeError, "timeout"),
    ({"buffer": 0}, ValueError, "buffer"),
    ({"buffer": 2**31}, ValueError, "buffer"),
    ({"direction": "both"}, ValueError, "direction"),
    ({"direction": 1}, TypeError, "direction"),
    ({"precision": "pico"}, ValueError, "precision"),
    ({"interface": ""}, ValueError, "interface"),
    ({"interface": "eth\0"}, ValueError, "NUL"),
    ({"interface": b"eth0"}, TypeError, "interface"),
    ({"file": ""}, ValueError, "file"),
    ({"file": 3}, TypeError, "file"),
    ({"filter": "udp\0"}, ValueError, "NUL"),
    ({"filter": ["udp"]}, TypeError, "filter"),
    ({"user": ""}, ValueError, "user"),
    ({"group": 0}, TypeError, "group"),
    ({"chroot": "/tmp\0x"}, ValueError, "NUL"),
    ({"interface": "lo", "file": "x.pcap"}, ValueError, "mutually exclusive"),
    ({"file": "x.pcap", "promiscuous": True}, ValueError, "live captures only"),
    ({"file": "x.pcap", "buffer": 4096}, ValueError, "live captures only"),
    ({"file": "x.pcap", "direction": "in"}, ValueError, "live captures only"),
    ({"file": "x.pcap", "inject": True}, ValueError, "live captures only"),
    ({"file": "x.pcap", "cluster_id": 1}, ValueError, "live captures only"),
    ({"file": "x.pcap", "stats_interval": 1}, ValueError, "live captures only"),
    ({"inject": "yes"}, TypeError, "inject"),
    ({"cluster_id": -1}, ValueError, "cluster_id"),
    ({"cluster_id": 65536}, ValueError, "cluster_id"),
    ({"cluster_id": "7"}, TypeError, "cluster_id"),
    ({"cpu_affinity": 1}, TypeError, "cpu_affinity"),
    ({"cpu_affinity": "0-99999999"}, ValueError, "cpu_affinity"),
    ({"stats_interval": 0}, ValueError, "stats_interval"),
    ({"stats_interval": "1"}, TypeError, "stats_interval"),
    ({"stats_interval": True}, TypeError, "stats_interval"),
]


@pytest.mark.parametrize("kwargs, exc, match", BAD)
def test_bad_values_are_refused_before_spawning(
    kwargs: dict[str, Any], exc: type[Exception], match: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_spawn(*args: object, **kw: object) -> None:
        raise AssertionError("a process was spawned for invalid options")

    monkeypatch.setattr(subprocess, "Popen", no_spawn)
    with pytest.raises(exc, match=match):
        epcap.start(**kwargs)


def test_unknown_option_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="promisc"):
        epcap.start(promisc=True)  # type: ignore[call-arg]


def test_bad_exec_type_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="exec"):
        epcap.start(file="x.pcap", exec=5)  # type: ignore[arg-type]


def test_missing_helper_is_reported(tmp_path: Path) -> None:
    with pytest.raises(epcap.HelperNotFoundError, match="not an executable"):
        epcap.start(file="x.pcap", progname=tmp_path / "nope")

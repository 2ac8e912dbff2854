"""The bad-input matrix: every option of start() and every command, given
wrong types, out-of-range numbers, empty and huge strings, NUL bytes,
strings that look like flags, and users, groups, interfaces, files and
directories that do not exist.  Each case raises its own exception, at or
before start (or from the command), and leaves no process behind."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import epcap

from conftest import HELPER

HUGE = "x" * 200_000  # more than one argument of a command line holds
FLAG = "-f/etc/shadow"


def case(kwargs: dict[str, Any], exc: type[Exception], match: str) -> Any:
    name = ",".join(f"{k}={str(v)[:12]!r}" for k, v in kwargs.items())
    return pytest.param(kwargs, exc, match, id=name)


# Refused by validation: nothing is spawned (Popen is replaced by a tripwire).
BEFORE_SPAWN = [
    case({"snaplen": 0}, ValueError, "snaplen"),
    case({"snaplen": 262145}, ValueError, "snaplen"),
    case({"snaplen": "96"}, TypeError, "snaplen"),
    case({"snaplen": True}, TypeError, "snaplen"),
    case({"snaplen": 96.0}, TypeError, "snaplen"),
    case({"promiscuous": 1}, TypeError, "promiscuous"),
    case({"monitor": "yes"}, TypeError, "monitor"),
    case({"timeout": 0}, ValueError, "timeout"),
    case({"timeout": -5}, ValueError, "timeout"),
    case({"timeout": "soon"}, ValueError, "timeout"),
    case({"timeout": 1.5}, TypeError, "timeout"),
    case({"buffer": 0}, ValueError, "buffer"),
    case({"buffer": 2**31}, ValueError, "buffer"),
    case({"direction": "both"}, ValueError, "direction"),
    case({"direction": 1}, TypeError, "direction"),
    case({"precision": "pico"}, ValueError, "precision"),
    case({"interface": ""}, ValueError, "interface"),
    case({"interface": "eth\0"}, ValueError, "NUL"),
    case({"interface": b"eth0"}, TypeError, "interface"),
    case({"file": ""}, ValueError, "file"),
    case({"file": 3}, TypeError, "file"),
    case({"filter": "udp\0"}, ValueError, "NUL"),
    case({"filter": ["udp"]}, TypeError, "filter"),
    case({"user": ""}, ValueError, "user"),
    case({"group": 0}, TypeError, "group"),
    case({"chroot": "/tmp\0x"}, ValueError, "NUL"),
    case({"interface": "lo", "file": "x.pcap"}, ValueError, "mutually exclusive"),
    case({"host": ""}, ValueError, "host must be"),
    case({"host": "-oProxyCommand=sh"}, ValueError, "host must be"),  # never an ssh option
    case({"host": "h:99999"}, ValueError, "port"),
    case({"host": b"h"}, TypeError, "host must be a string"),
    case({"ssh_options": ["-v"]}, ValueError, "another host"),
    case({"host": "h", "ssh_options": [3]}, TypeError, "ssh_options"),
    case({"host": "h", "ssh_options": "-o 'x"}, ValueError, "quotation"),
    case({"file": "x.pcap", "promiscuous": True}, ValueError, "live captures only"),
    case({"file": "x.pcap", "buffer": 4096}, ValueError, "live captures only"),
    case({"file": "x.pcap", "direction": "in"}, ValueError, "live captures only"),
    case({"file": "x.pcap", "inject": True}, ValueError, "live captures only"),
    case({"file": "x.pcap", "cluster_id": 1}, ValueError, "live captures only"),
    case({"file": "x.pcap", "chroot": "/var/empty"}, ValueError, "live captures only"),
    case({"file": "x.pcap", "stats_interval": 1}, ValueError, "live captures only"),
    case({"inject": "yes"}, TypeError, "inject"),
    case({"paused": "yes"}, TypeError, "paused"),
    case({"paused": 1}, TypeError, "paused"),
    case({"cluster_id": -1}, ValueError, "cluster_id"),
    case({"cluster_id": 65536}, ValueError, "cluster_id"),
    case({"cluster_id": "7"}, TypeError, "cluster_id"),
    case({"cpu_affinity": 1}, TypeError, "cpu_affinity"),
    case({"cpu_affinity": "0-99999999"}, ValueError, "cpu_affinity"),
    case({"stats_interval": 0}, ValueError, "stats_interval"),
    case({"stats_interval": "1"}, TypeError, "stats_interval"),
    case({"stats_interval": True}, TypeError, "stats_interval"),
    case({"snaplen": -1}, ValueError, "snaplen"),
    case({"snaplen": 2**64}, ValueError, "snaplen"),
    case({"timeout": 2**40}, ValueError, "timeout"),
    case({"timeout": ""}, ValueError, "timeout"),
    case({"buffer": -1}, ValueError, "buffer"),
    case({"buffer": "16M"}, TypeError, "buffer"),
    case({"direction": ""}, ValueError, "direction"),
    case({"precision": ""}, ValueError, "precision"),
    case({"precision": None}, TypeError, "precision"),
    case({"interface": HUGE}, ValueError, "more than a helper argument holds"),
    case({"interface": "lo\ud800"}, ValueError, "cannot be encoded"),
    case({"file": HUGE}, ValueError, "more than a helper argument holds"),
    case({"file": "x.pcap\0"}, ValueError, "NUL"),
    case({"filter": HUGE}, ValueError, "call set_filter"),
    case({"filter": "\ud800"}, ValueError, "cannot be encoded"),
    case({"user": HUGE}, ValueError, "more than a helper argument holds"),
    case({"user": "nobody\0"}, ValueError, "NUL"),
    case({"group": ""}, ValueError, "group"),
    case({"group": "nogroup\0"}, ValueError, "NUL"),
    case({"chroot": ""}, ValueError, "chroot"),
    case({"chroot": 5}, TypeError, "chroot"),
    case({"monitor": None}, TypeError, "monitor"),
    case({"promiscuous": None}, TypeError, "promiscuous"),
    case({"inject": None}, TypeError, "inject"),
    case({"cluster_id": 1.0}, TypeError, "cluster_id"),
    case({"cpu_affinity": ""}, ValueError, "cpu_affinity"),
    case({"cpu_affinity": "a"}, ValueError, "cpu_affinity"),
    case({"cpu_affinity": "1-0"}, ValueError, "cpu_affinity"),
    case({"cpu_affinity": "999"}, ValueError, "not available"),
    case({"cpu_affinity": FLAG}, ValueError, "cpu_affinity"),
    case({"stats_interval": -1}, ValueError, "stats_interval"),
    case({"stats_interval": float("nan")}, ValueError, "stats_interval"),
    case({"stats_interval": float("inf")}, ValueError, "stats_interval"),
    case({"progname": 5}, TypeError, "progname"),
    case({"exec": 5}, TypeError, "exec"),
    case({"exec": [1]}, TypeError, "exec"),
    case({"promisc": True}, TypeError, "promisc"),
]

SAMPLE = str(Path(epcap.__file__).parent / "data" / "sample.pcap")
ROOT_ONLY = pytest.mark.root

# Refused by the helper, or by its launch: raised by start() itself.
AT_START = [
    case({"file": "/nonexistent.pcap"}, epcap.CaptureFileError, "No such file"),
    case({"file": "/"}, epcap.CaptureFileError, "Is a directory"),
    case({"file": FLAG}, epcap.CaptureFileError, "No such file"),
    case({"file": "/dev/null"}, epcap.CaptureFileError, "not a regular file"),
    case({"file": "/dev/zero"}, epcap.CaptureFileError, "not a regular file"),
    case({"file": "a" * 5000}, epcap.CaptureFileError, "ENAMETOOLONG"),
    case({"file": SAMPLE, "filter": "tcp port"}, epcap.FilterError, "syntax error"),
    case({"file": SAMPLE, "filter": FLAG}, epcap.FilterError, "syntax error"),
    case({"file": SAMPLE, "filter": "port nosuchservice"}, epcap.FilterError, "nosuchservice"),
    case({"file": SAMPLE, "filter": "ether host 1:2:3"}, epcap.FilterError, "bogus ethernet"),
    case({"file": SAMPLE, "progname": "/nonexistent"}, epcap.HelperNotFoundError, "not an exec"),
    case({"file": SAMPLE, "progname": "/tmp"}, epcap.HelperNotFoundError, "not an exec"),
    case({"file": SAMPLE, "progname": "/bin/false"}, epcap.HelperExitedError, "before 'ready'"),
    case({"file": SAMPLE, "exec": ["nosuchprog"]}, epcap.HelperNotFoundError, "nosuchprog"),
    case({"file": SAMPLE, "exec": "nosuchprog -x"}, epcap.HelperNotFoundError, "nosuchprog"),
    pytest.param(
        {"file": SAMPLE, "user": "nosuchuser"}, epcap.PrivilegeDropError, "unknown user",
        marks=ROOT_ONLY, id="file,user=nosuchuser",
    ),
    pytest.param(
        {"file": SAMPLE, "user": FLAG}, epcap.PrivilegeDropError, "unknown user",
        marks=ROOT_ONLY, id="file,user=flag",
    ),
    pytest.param(
        {"file": SAMPLE, "group": "nosuchgroup"}, epcap.PrivilegeDropError, "unknown group",
        marks=ROOT_ONLY, id="file,group=nosuchgroup",
    ),
    pytest.param(
        {"interface": "lo", "chroot": "/nonexistent"}, epcap.PrivilegeDropError, "No such file",
        marks=ROOT_ONLY, id="live,chroot=nonexistent",
    ),
    pytest.param(
        {"interface": "lo", "chroot": "/tmp"}, epcap.PrivilegeDropError, "owned by root",
        marks=ROOT_ONLY, id="live,chroot=/tmp",
    ),
    pytest.param(
        {"interface": "lo", "chroot": "/etc/passwd"}, epcap.PrivilegeDropError, "Not a directory",
        marks=ROOT_ONLY, id="live,chroot=file",
    ),
    pytest.param(
        {"interface": "lo", "chroot": "relative/dir"}, epcap.PrivilegeDropError, "relative/dir",
        marks=ROOT_ONLY, id="live,chroot=relative",
    ),
    pytest.param({"interface": "nosuch0"}, epcap.NoSuchDeviceError, "nosuch0",
                 marks=ROOT_ONLY, id="interface=nosuch0"),
    pytest.param({"interface": FLAG}, epcap.NoSuchDeviceError, "No such device",
                 marks=ROOT_ONLY, id="interface=flag"),
    pytest.param({"interface": "lo\n"}, epcap.NoSuchDeviceError, "No such device",
                 marks=ROOT_ONLY, id="interface=newline"),
    pytest.param({"interface": "e" * 5000}, epcap.NoSuchDeviceError, "No such device",
                 marks=ROOT_ONLY, id="interface=5000"),
    pytest.param({"interface": "lo", "monitor": True}, epcap.CaptureError, "monitor mode",
                 marks=ROOT_ONLY, id="monitor-on-lo"),
    pytest.param({"interface": "lo", "filter": "udp port 99999"}, epcap.FilterError, "99999",
                 marks=ROOT_ONLY, id="live,filter=port-range"),
    pytest.param({"interface": "lo", "user": "nosuchuser"}, epcap.PrivilegeDropError,
                 "unknown user", marks=ROOT_ONLY, id="live,user=nosuchuser"),
    pytest.param({"interface": "lo", "group": FLAG}, epcap.PrivilegeDropError, "unknown group",
                 marks=ROOT_ONLY, id="live,group=flag"),
]  # fmt: skip


@pytest.mark.usefixtures("no_leftovers")
@pytest.mark.parametrize("kwargs, exc, match", BEFORE_SPAWN)
def test_refused_before_anything_is_spawned(
    kwargs: dict[str, Any], exc: type[Exception], match: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def tripwire(*args: object, **kw: object) -> None:
        raise AssertionError("a process was spawned for invalid options")

    monkeypatch.setattr(subprocess, "Popen", tripwire)
    with pytest.raises(exc, match=match):
        epcap.start(**kwargs)


@pytest.mark.usefixtures("no_leftovers")
@pytest.mark.parametrize("kwargs, exc, match", AT_START)
def test_refused_at_start(kwargs: dict[str, Any], exc: type[Exception], match: str) -> None:
    options = {"progname": str(HELPER), **kwargs}
    started = time.monotonic()
    with pytest.raises(exc, match=match) as info:
        epcap.start(**options)
    assert type(info.value) is exc  # the specific class, not a parent
    assert time.monotonic() - started < 5


# Commands on a running capture: (method, argument, exception, message).
COMMANDS = [
    ("set_filter", None, TypeError, "must be a string"),
    ("set_filter", b"udp", TypeError, "must be a string"),
    ("set_filter", 5, TypeError, "must be a string"),
    ("set_filter", "udp\0 or tcp", epcap.FilterError, "NUL"),
    ("set_filter", "x" * 2_000_000, ValueError, "frame limit"),
    ("set_filter", "\ud800", ValueError, "cannot be encoded"),
    ("set_filter", FLAG, epcap.FilterError, "syntax error"),
    ("set_filter", "port http", epcap.FilterError, "do not resolve"),
    ("set_filter", "tcp port", epcap.FilterError, "syntax error"),
    ("set_filter", "udp port 70000", epcap.FilterError, "70000"),
    ("send", "text", TypeError, "must be bytes"),
    ("send", None, TypeError, "must be bytes"),
    ("send", [1, 2], TypeError, "must be bytes"),
    ("send", b"", ValueError, "must not be empty"),
    ("send", b"x" * 2_000_000, ValueError, "frame limit"),
    ("send", b"x" * 70_000, epcap.SendError, "Message too long"),
    ("stats", 1, TypeError, "positional argument"),
]


def call(cap: Any, method: str, arg: object) -> Any:
    fn: Callable[..., Any] = getattr(cap, method)
    return fn(arg)


@pytest.mark.root
@pytest.mark.usefixtures("no_leftovers")
@pytest.mark.parametrize("method, arg, exc, match", COMMANDS, ids=lambda v: repr(v)[:20])
def test_bad_commands_leave_the_capture_running(
    method: str, arg: object, exc: type[Exception], match: str
) -> None:
    with epcap.start(interface="lo", filter="udp port 9", inject=True, progname=HELPER) as cap:
        with pytest.raises(exc, match=match):
            call(cap, method, arg)
        assert set(cap.stats()) >= {"packets", "received", "dropped"}
        cap.set_filter("udp port 10")  # and it still takes commands


@pytest.mark.root
@pytest.mark.usefixtures("no_leftovers")
@pytest.mark.parametrize("method, arg, exc, match", COMMANDS[:6], ids=lambda v: repr(v)[:20])
def test_bad_async_commands(method: str, arg: object, exc: type[Exception], match: str) -> None:
    async def main() -> None:
        async with epcap.start_async(interface="lo", filter="udp port 9", progname=HELPER) as cap:
            with pytest.raises(exc, match=match):
                await call(cap, method, arg)
            assert "packets" in await cap.stats()

    asyncio.run(main())


@pytest.mark.root
@pytest.mark.usefixtures("no_leftovers")
def test_send_without_inject_is_refused() -> None:
    with epcap.start(interface="lo", filter="udp port 9", progname=HELPER) as cap:
        with pytest.raises(epcap.SendError, match="inject=True") as info:
            cap.send(b"\0" * 60)
        assert info.value.errno == "EPERM"
        assert "packets" in cap.stats()


@pytest.mark.usefixtures("no_leftovers")
@pytest.mark.parametrize("method, arg", [("set_filter", "udp"), ("send", b"x" * 60)])
def test_commands_on_a_closed_capture(method: str, arg: object) -> None:
    cap = epcap.start(file=SAMPLE, progname=HELPER)
    cap.close()
    with pytest.raises(ValueError, match="closed"):
        call(cap, method, arg)


def test_the_matrix_covers_every_option_and_command() -> None:
    options = set(epcap.StartOptions.__annotations__)
    tried = {k for p in BEFORE_SPAWN + AT_START for k in p.values[0]}
    assert options <= tried, options - tried
    assert {m for m, *_ in COMMANDS} == {"set_filter", "send", "stats"}
    assert len(BEFORE_SPAWN) + len(AT_START) + len(COMMANDS) >= 60
    assert os.path.exists(SAMPLE)


TIMEOUTS = [
    ("soon", TypeError, "number of seconds"),
    (True, TypeError, "number of seconds"),
    (-1, ValueError, "0 or more"),
    (float("nan"), ValueError, "finite"),
    (float("inf"), ValueError, "finite"),
]


@pytest.mark.usefixtures("no_leftovers")
@pytest.mark.parametrize("timeout, exc, match", TIMEOUTS, ids=lambda v: repr(v)[:12])
def test_bad_read_timeouts_leave_the_capture_whole(
    timeout: object, exc: type[Exception], match: str
) -> None:
    with epcap.start(file=SAMPLE, progname=HELPER) as cap:
        first = cap.next()
        with pytest.raises(exc, match=match):
            cap.next(timeout=timeout)  # type: ignore[arg-type]
        rest = list(cap)
    with epcap.start(file=SAMPLE, progname=HELPER) as cap:
        assert [first, *rest] == list(cap)

    async def main() -> None:
        async with epcap.start_async(file=SAMPLE, progname=HELPER) as cap:
            with pytest.raises(exc, match=match):
                await cap.next(timeout=timeout)  # type: ignore[arg-type]
            assert await cap.next() is not None

    asyncio.run(main())


@pytest.mark.usefixtures("no_leftovers")
def test_bad_merges() -> None:
    with pytest.raises(TypeError, match="Capture objects, not object"):
        epcap.merge(object())  # type: ignore[arg-type]
    with epcap.start(file=SAMPLE, progname=HELPER) as cap:
        with pytest.raises(ValueError, match="hold must be"):
            epcap.merge(cap, hold=-1)
        with pytest.raises(TypeError, match="hold must be"):
            epcap.merge(cap, hold="long")  # type: ignore[arg-type]
        with epcap.merge(cap) as merged:
            with pytest.raises(ValueError, match="finite"):
                merged.next(timeout=float("nan"))
            assert merged.next(timeout=5) is not None

    async def main() -> None:
        async with epcap.start_async(file=SAMPLE, progname=HELPER) as acap:
            with pytest.raises(TypeError, match="AsyncCapture objects, not Capture"):
                epcap.merge_async(cap)  # type: ignore[arg-type]
            async with epcap.merge_async(acap) as merged:
                assert await merged.next() is not None

    asyncio.run(main())


@pytest.mark.usefixtures("no_leftovers")
def test_interfaces_with_a_missing_helper() -> None:
    with pytest.raises(epcap.HelperNotFoundError, match="/nonexistent/epcapd"):
        epcap.interfaces(progname="/nonexistent/epcapd")
    with pytest.raises(epcap.HelperNotFoundError):
        asyncio.run(epcap.interfaces_async(progname="/nonexistent/epcapd"))


@pytest.mark.parametrize("extra", [["-i", "lo"], ["-r", "x.pcap"], ["--demo"]])
def test_sniff_D_takes_no_source(extra: list[str]) -> None:
    sniff = Path(sys.executable).parent / "epcap-sniff"
    done = subprocess.run([str(sniff), "-D", *extra], capture_output=True, text=True)
    assert done.returncode == 1  # tcpdump's status for a bad command line
    assert done.stderr.splitlines() == ["epcap-sniff: -D takes neither -r, -i nor --demo"]

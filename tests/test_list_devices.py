"""`epcapd -D` at the helper's wire: one `interfaces` frame (PROTOCOL.md),
as root, as an ordinary user running the helper with no privilege, and as
the test user through each installed helper, whom the policy shows no
pseudo-device; every other option refused.

Each test lists the devices of a network namespace of its own, with a veth
pair it made: devices that other tests create and remove on the host
cannot come and go between two listings."""

from __future__ import annotations

import os
import pwd
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from epcap._protocol import VERSION, FrameDecoder

from conftest import HELPER
from privileged import as_user, helper_command

pytestmark = [pytest.mark.root, pytest.mark.usefixtures("no_leftovers")]

SHELL = ["/bin/sh", "-c", '"$@"; exit $?', "sh"]
"""A shell of the user as the helper's client (privileged.raw() does the same)."""
PSEUDO = ("dbus", "nflog", "nfqueue", "usbmon", "bluetooth")
UP, RUNNING, LOOPBACK = 0x2, 0x4, 0x1
DEVICE_KEYS = {"name", "description", "flags", "addresses"}
ADDRESS_KEYS = {"family", "addr", "netmask", "broadaddr", "dstaddr"}


@pytest.fixture
def netns() -> Iterator[str]:
    """A network namespace with lo up and a veth pair, epl0 up, epl1 down."""
    name = f"epcapls{os.getpid()}"
    subprocess.run(["ip", "netns", "del", name], capture_output=True)
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        for command in (
            ["link", "set", "lo", "up"],
            ["link", "add", "epl0", "type", "veth", "peer", "name", "epl1"],
            ["link", "set", "epl0", "up"],
        ):
            subprocess.run(["ip", "-n", name, *command], check=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=True)


def in_ns(ns: str, *command: str) -> list[str]:
    return ["ip", "netns", "exec", ns, *command]


def listing(command: list[str]) -> tuple[int, list[Any]]:
    """Run `command` (stdin an empty pipe): its exit status and frames."""
    done = subprocess.run(command, input=b"", capture_output=True, timeout=30, cwd="/")
    values, error = FrameDecoder().feed(done.stdout)
    assert error is None, error
    return done.returncode, list(values)


def devices(command: list[str]) -> list[dict[str, Any]]:
    """The devices of the one `interfaces` frame `command` writes, checked
    against PROTOCOL.md's shape."""
    code, frames = listing(command)
    assert code == 0, frames
    assert len(frames) == 1 and frames[0][0] == "interfaces" and len(frames[0]) == 2
    body = frames[0][1]
    assert set(body) == {"version", "devices"} and body["version"] == VERSION == 4
    for dev in body["devices"]:
        assert set(dev) == DEVICE_KEYS
        assert type(dev["name"]) is str and dev["name"]
        assert dev["description"] is None or type(dev["description"]) is str
        assert type(dev["flags"]) is int and dev["flags"] >= 0
        for addr in dev["addresses"]:
            assert set(addr) == ADDRESS_KEYS
            assert addr["family"] in ("inet", "inet6", "packet")
            assert type(addr["addr"]) is str
            assert all(addr[k] is None or type(addr[k]) is str for k in ADDRESS_KEYS)
    return list(body["devices"])


def tcpdump_names(ns: str) -> list[str]:
    out = subprocess.run(in_ns(ns, "tcpdump", "-D"), capture_output=True, text=True, check=True)
    return [line.split(".", 1)[1].split(" ", 1)[0] for line in out.stdout.splitlines()]


def test_root_lists_what_tcpdump_lists(netns: str) -> None:
    found = devices(in_ns(netns, str(HELPER), "-D"))
    by_name = {d["name"]: d for d in found}
    assert [d["name"] for d in found] == tcpdump_names(netns)
    lo, up, down = by_name["lo"], by_name["epl0"], by_name["epl1"]
    assert lo["flags"] & (UP | RUNNING | LOOPBACK) == UP | RUNNING | LOOPBACK
    assert {"family": "inet", "addr": "127.0.0.1", "netmask": "255.0.0.0", "broadaddr": None,
            "dstaddr": None} in lo["addresses"]  # fmt: skip
    assert any(a["family"] == "inet6" and a["addr"] == "::1" for a in lo["addresses"])
    assert up["flags"] & UP and not up["flags"] & LOOPBACK
    assert not down["flags"] & (UP | RUNNING)
    show = ["ip", "-n", netns, "-o", "link", "show", "epl0"]
    link = subprocess.run(show, capture_output=True, text=True, check=True)
    mac = link.stdout.split("link/ether ")[1].split()[0]
    assert {"family": "packet", "addr": mac, "netmask": None, "broadaddr": "ff:ff:ff:ff:ff:ff",
            "dstaddr": None} in up["addresses"]  # fmt: skip
    assert mac == mac.lower() and len(mac) == 17
    assert "any" in by_name and any(d["name"].startswith(PSEUDO) for d in found)


def test_an_ordinary_user_lists_with_no_privilege(netns: str, user: pwd.struct_passwd) -> None:
    """The source tree's helper, run by the user directly: no privilege to
    drop, the same devices as root's (libpcap needs none to list them)."""
    mine = devices(in_ns(netns, *as_user(user), *SHELL, str(HELPER), "-D"))
    roots = devices(in_ns(netns, str(HELPER), "-D"))
    assert [d["name"] for d in mine] == [d["name"] for d in roots]
    assert {d["name"]: d["flags"] for d in mine} == {d["name"]: d["flags"] for d in roots}


@pytest.mark.parametrize("mode", ["caps", "setuid", "sudo"])
def test_the_policy_hides_pseudo_devices(
    netns: str, user: pwd.struct_passwd, installs: dict[str, Path], mode: str
) -> None:
    helper = helper_command(mode, installs[mode], "-D")
    mine = [d["name"] for d in devices(in_ns(netns, *as_user(user), *SHELL, *helper))]
    everything = [d["name"] for d in devices(in_ns(netns, str(HELPER), "-D"))]
    assert mine == [n for n in everything if not n.startswith(PSEUDO)]
    assert {"any", "lo", "epl0", "epl1"} <= set(mine)
    for extra in (["-i", "lo"], ["-r", "/etc/passwd"], ["-s", "64"], ["-p"], ["-j"],
                  ["-u", "nobody"], ["-C", "1"], ["--", "udp"]):  # fmt: skip
        helper = helper_command(mode, installs[mode], "-D", *extra)
        code, frames = listing(in_ns(netns, *as_user(user), *SHELL, *helper))
        assert code == 1 and len(frames) == 1 and frames[0][0] == "error", (extra, frames)
        assert frames[0][1]["op"] == "option", (extra, frames)
        assert "-D lists the devices" in frames[0][1]["message"]


@pytest.mark.parametrize(
    "args, message",
    [
        (["-D", "-i", "lo"], "-D lists the devices: it takes no other option or filter"),
        (["-i", "lo", "-D"], "-D lists the devices"),
        (["-D", "-r", "/etc/passwd"], "-D lists the devices"),
        (["-r", "/etc/passwd", "-D"], "-D lists the devices"),
        (["-D", "-t", "immediate"], "-D lists the devices"),
        (["-D", "-d", "/"], "-D lists the devices"),
        (["-D", "--", "udp"], "-D lists the devices"),
        (["-D", "udp"], "-D lists the devices"),
        (["-D", "-f", "udp"], "unknown option -f"),
        (["-D", "-D", "-y"], "unknown option -y"),
        (["-D", "-x", "udp"], "-D lists the devices"),
        (["-D", "-H"], "-D lists the devices"),
        (["-H", "-D"], "-D lists the devices"),
    ],
)
def test_capture_options_are_refused_with_D(args: list[str], message: str) -> None:
    code, frames = listing([str(HELPER), *args])
    assert code == 1
    assert len(frames) == 1 and frames[0][0] == "error"
    assert frames[0][1]["op"] == "option" and message in frames[0][1]["message"]


def test_a_list_too_large_for_a_frame_is_an_error(netns: str) -> None:
    """9000 devices take more than a frame's 1 MiB: an error frame, op
    "frame", and exit 1, never a truncated list."""
    pairs = "".join(f"link add va{i} type veth peer name vb{i}\n" for i in range(4500))
    subprocess.run(["ip", "-n", netns, "-batch", "-"], input=pairs, text=True, check=True)
    code, frames = listing(in_ns(netns, str(HELPER), "-D"))
    assert code == 1 and len(frames) == 1 and frames[0][0] == "error"
    assert frames[0][1]["op"] == "frame" and frames[0][1]["errno"] == "EMSGSIZE"
    assert "more than a frame" in frames[0][1]["message"]

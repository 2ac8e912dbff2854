"""epcap.interfaces() and `epcap-sniff -D`: libpcap's device list through the
helper (`epcapd -D`), as root and as an unprivileged user of an installed
helper, whom the installation's policy shows only what it may capture."""

from __future__ import annotations

import asyncio
import json
import pwd
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import epcap
from epcap._interfaces import parse_listing
from epcap._protocol import VERSION

from conftest import HELPER
from helpers import frame
from privileged import as_user, mode_options

pytestmark = pytest.mark.root

CLIENT = Path(__file__).resolve().parent.parent / "client"
SHELL = ["/bin/sh", "-c", '"$@"; exit $?', "sh"]
"""A shell of the user as the helper's client (privileged.raw() does the same)."""
SNIFF = Path(sys.executable).parent / "epcap-sniff"


@pytest.fixture
def veth() -> Iterator[tuple[str, str]]:
    """A veth pair, one end up, the other down; removed after the test."""
    up, down = "epcdev0", "epcdev1"
    subprocess.run(["ip", "link", "del", up], capture_output=True)
    subprocess.run(["ip", "link", "add", up, "type", "veth", "peer", "name", down], check=True)
    subprocess.run(["ip", "link", "set", up, "up"], check=True)
    try:
        yield up, down
    finally:
        subprocess.run(["ip", "link", "del", up], capture_output=True)


def test_root_sees_what_tcpdump_sees(veth: tuple[str, str]) -> None:
    found = epcap.interfaces(progname=HELPER)
    by_name = {i.name: i for i in found}
    lo, up, down = by_name["lo"], by_name[veth[0]], by_name[veth[1]]
    assert lo.up and lo.running and lo.loopback and not lo.wireless
    assert any(a.family == "inet" and a.addr == "127.0.0.1" for a in lo.addresses)
    assert up.up and not up.loopback
    assert not down.up and not down.running
    assert any(a.family == "packet" and len(a.addr) == 17 for a in up.addresses)
    # Devices of namespaces other tests deleted may still be going away:
    # compare once the three listings in a row agree.
    for _ in range(20):
        mine = [f"{n}.{i.describe()}" for n, i in enumerate(epcap.interfaces(progname=HELPER), 1)]
        sniff = subprocess.run(
            [str(SNIFF), "-D"], capture_output=True, text=True,
            env={"EPCAPD": str(HELPER), "PATH": "/usr/bin:/bin"},
        )  # fmt: skip
        theirs = subprocess.run(["tcpdump", "-D"], capture_output=True, text=True, check=True)
        assert sniff.returncode == 0, sniff.stderr
        if mine == theirs.stdout.splitlines() and sniff.stdout == theirs.stdout:
            break
        time.sleep(0.25)
    assert mine == theirs.stdout.splitlines()
    assert sniff.stdout == theirs.stdout
    print(f"epcap-sniff -D and tcpdump -D: {len(mine)} identical lines")
    assert asyncio.run(epcap.interfaces_async(progname=HELPER)) == epcap.interfaces(progname=HELPER)


@pytest.mark.parametrize("mode", ["caps", "setuid", "sudo"])
def test_a_user_sees_only_what_the_policy_lets_them_capture(
    user: pwd.struct_passwd, installs: dict[str, Path], veth: tuple[str, str], mode: str
) -> None:
    options = mode_options(mode, installs)
    code = (
        "import json, epcap\n"
        f"found = epcap.interfaces(**{options!r})\n"
        "print(json.dumps([(i.name, i.flags) for i in found]))\n"
    )
    done = subprocess.run(
        [*as_user(user), sys.executable, "-c", code], capture_output=True, text=True,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(CLIENT), "HOME": "/"}, cwd="/",
        timeout=30,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    names = [name for name, _ in json.loads(done.stdout)]
    assert {"lo", "any", veth[0], veth[1]} <= set(names)
    pseudo = ("dbus", "nflog", "nfqueue", "usbmon", "bluetooth")
    assert not [n for n in names if n.startswith(pseudo)]
    everything = [i.name for i in epcap.interfaces(progname=HELPER)]
    assert names == [n for n in everything if not n.startswith(pseudo)]


def test_bad_listings_are_protocol_errors() -> None:
    with pytest.raises(epcap.ProtocolError, match="expected 'interfaces'"):
        parse_listing(frame(["ready", {}]))
    with pytest.raises(epcap.ProtocolError, match="protocol version"):
        parse_listing(frame(["interfaces", {"version": 99, "devices": []}]))
    with pytest.raises(epcap.ProtocolError, match="malformed"):
        parse_listing(frame(["interfaces", {"version": VERSION, "devices": [{"name": 3}]}]))
    with pytest.raises(epcap.ProtocolError, match="one frame"):
        parse_listing(b"")
    with pytest.raises(epcap.ProtocolError):
        parse_listing(b"\x00\x00\x00\x05abc")

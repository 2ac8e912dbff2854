"""Captures on other hosts, through a real OpenSSH: each host a network
namespace with its own sshd (sshhosts.py), the helper installed by `make
install` for the unprivileged remote user. What crosses a host's interface
arrives here exactly; the commands work; several hosts merge into one
stream; nothing is left on either side when the client is killed, the
session is killed or the link goes silent; and each failure of the way
there raises its own exception, with ssh's or the remote side's words."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import epcap

import pcapfiles as pf
from conftest import HELPER, ROOT
from privileged import GROUP
from sshhosts import SshHost

pytestmark = [pytest.mark.root, pytest.mark.usefixtures("no_leftovers")]

GONE_WITHIN = 5.0
"""Seconds a remote helper may outlive its client, session or link."""
ERROR_WITHIN = 10.0
"""Seconds a remote failure may take to raise."""


def start_on(host: SshHost, helper: Path | str, **options: object) -> epcap.Capture:
    """A capture on ``host`` with the helper at ``helper`` there."""
    return epcap.start(  # type: ignore[call-overload, no-any-return]
        host=host.target, ssh_options=host.ssh_options, progname=helper, **options
    )


def wait_for(condition: Callable[[], object], seconds: float, what: str) -> float:
    """Poll until ``condition`` holds; the seconds it took."""
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < seconds, f"no {what} after {seconds} s"
        time.sleep(0.05)
    return time.monotonic() - started


def payloads(tag: str, n: int) -> list[bytes]:
    return [f"{tag} {i:04d}".encode() for i in range(n)]


def udp_payload(data: bytes) -> bytes:
    """The UDP payload of an Ethernet/IPv4 frame."""
    return data[14 + (data[14] & 0x0F) * 4 + 8 :]


def local_ssh(host: SshHost) -> set[int]:
    """The ssh client processes of this machine that talk to ``host``."""
    found = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                argv = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
                if argv[0].endswith(b"ssh") and host.target.encode() in argv:
                    found.add(int(entry))
    return found


def nothing_left(host: SshHost, helper: Path | str) -> bool:
    return not host.processes_of(helper) and not local_ssh(host)


# What arrives -----------------------------------------------------------------


@pytest.mark.parametrize("mode", ["caps", "setuid", "sudo"])
def test_what_crosses_a_hosts_interface_arrives_exactly(
    ssh_hosts: list[SshHost], installs: dict[str, Path], mode: str
) -> None:
    """Each privilege mode, chosen on the remote side as a local start
    chooses it (sudo -n for the helper a NOPASSWD rule names)."""
    host, port = ssh_hosts[0], 47001
    sent = payloads(f"to {host.name} {mode}", 50)
    with start_on(host, installs[mode], interface=host.interface, filter=f"udp port {port}") as cap:
        assert (cap.host, cap.settings["interface"]) == (host.target, host.interface)
        host.send_udp(port, sent, gap=0.001)
        got = [cap.next(timeout=10) for _ in sent]
    assert [udp_payload(p.data) for p in got if p is not None] == sent
    assert {(p.host, p.interface) for p in got if p is not None} == {(host.target, host.interface)}
    print(f"{mode}: {len(sent)} datagrams captured on {host.target}'s {host.interface}")


def ssh_packets(packets: list[epcap.Packet]) -> list[epcap.Packet]:
    """The packets of a TCP connection to or from port 22, IPv4 over Ethernet."""
    return [
        p for p in packets
        if p.data[12:14] == b"\x08\x00" and p.data[23] == 6
        and 22 in (int.from_bytes(p.data[34:36], "big"), int.from_bytes(p.data[36:38], "big"))
    ]  # fmt: skip


def drain(cap: epcap.Capture, seconds: float) -> list[epcap.Packet]:
    """What the capture delivers within ``seconds``."""
    got, deadline = [], time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        with contextlib.suppress(TimeoutError):
            packet = cap.next(timeout=left)
            assert packet is not None
            got.append(packet)
    return got


def test_a_capture_leaves_out_its_own_ssh_connection(
    ssh_hosts: list[SshHost], installs: dict[str, Path]
) -> None:
    """With no filter, on the interface its ssh connection runs through, a
    capture would capture its own packets, which travel back and are
    captured again, without end: the helper's -x leaves the connection
    out, set_filter's filters included; another ssh connection shows."""
    host, port = ssh_hosts[1], 47002
    with start_on(host, installs["caps"], interface=host.interface) as cap:
        assert cap.settings["filter"] is None
        host.send_udp(port, [b"one"])
        before = drain(cap, 2.0)  # keepalives and acknowledgements cross meanwhile
        cap.set_filter("")  # everything: but still not its own connection
        host.send_udp(port, [b"two"])
        other = subprocess.run(  # another ssh connection is not left out
            ["ssh", "-T", "-o", "BatchMode=yes", *host.ssh_options, host.target, "true"],
            capture_output=True, timeout=20,
        )  # fmt: skip
        after = drain(cap, 2.0)
    assert other.returncode == 0
    assert ssh_packets(before) == []
    assert [udp_payload(p.data) for p in before if p.data[23] == 17] == [b"one"]
    assert [udp_payload(p.data) for p in after if p.data[23] == 17] == [b"two"]
    assert ssh_packets(after), "the other ssh connection's packets"
    print(f"own ssh connection left out: {len(before)} and {len(after)} packets in 2 s each")


@pytest.fixture(scope="module")
def inject_install(user: object) -> Iterator[Path]:
    """The helper in caps mode, `make install`ed with INJECT_GROUP: its
    policy lets the remote user send."""
    top = Path(tempfile.mkdtemp(prefix="epcap-inject-", dir="/var/tmp"))
    top.chmod(0o755)
    make = ["make", "-s", "-C", str(ROOT)]
    try:
        subprocess.run([*make, "install", "PRIVMODE=caps", f"PREFIX={top}", f"GROUP={GROUP}",
                        f"INJECT_GROUP={GROUP}", "TEST_INSTALL=1"],
                       check=True, capture_output=True)  # fmt: skip
        yield top / "lib" / "epcap" / "epcapd"
    finally:
        subprocess.run([*make, "uninstall", f"PREFIX={top}"], check=True, capture_output=True)
        top.rmdir()


def test_stats_set_filter_and_send_on_a_remote_host(
    ssh_hosts: list[SshHost], inject_install: Path
) -> None:
    host = ssh_hosts[2]
    old, new = 47003, 47004
    with start_on(host, inject_install, interface=host.interface, filter=f"udp port {old}",
                  inject=True) as cap:  # fmt: skip
        host.send_udp(old, payloads("old", 5))
        assert [udp_payload(cap.next(timeout=10).data) for _ in range(5)] == payloads("old", 5)  # type: ignore[union-attr]
        stats = cap.stats()
        assert stats["packets"] == 5 and stats["received"] >= 5 and stats["dropped"] == 0
        cap.set_filter(f"udp port {new}")
        host.send_udp(old, payloads("old", 3))
        host.send_udp(new, payloads("new", 3))
        assert [udp_payload(cap.next(timeout=10).data) for _ in range(3)] == payloads("new", 3)  # type: ignore[union-attr]
        with pytest.raises(epcap.FilterError, match="syntax error"):
            cap.set_filter("udp port")
        # send: a frame out of the host's interface, seen here on the pair's near end
        frame = pf.eth_ipv4_udp(host.address, host.peer_address, 47005, 47006, b"sent remotely")
        with epcap.start(interface=host.peer_interface, filter="udp port 47006",
                         progname=HELPER) as here:  # fmt: skip
            assert cap.send(frame) == len(frame)
            arrived = here.next(timeout=10)
        assert arrived is not None and arrived.data[: len(frame)] == frame


def test_three_hosts_merge_into_one_stream_in_time_order(
    ssh_hosts: list[SshHost], installs: dict[str, Path]
) -> None:
    port, each = 47007, 40
    caps = [
        start_on(h, installs["caps"], interface=h.interface, filter=f"udp port {port}")
        for h in ssh_hosts
    ]
    with epcap.merge(*caps) as stream:
        for i in range(each):
            for host in ssh_hosts:
                host.send_udp(port, [f"{host.name} {i:04d}".encode()])
            time.sleep(0.002)
        got = [stream.next(timeout=10) for _ in range(each * len(ssh_hosts))]
    packets = [p for p in got if p is not None]
    assert len(packets) == each * len(ssh_hosts)
    times = [p.time for p in packets]
    assert times == sorted(times)
    for host in ssh_hosts:
        mine = [udp_payload(p.data) for p in packets if p.host == host.target]
        assert mine == [f"{host.name} {i:04d}".encode() for i in range(each)]
    print(f"3 hosts merged: {len(packets)} packets, each once, in time order")


def test_async_and_the_hosts_interfaces(
    ssh_hosts: list[SshHost], installs: dict[str, Path]
) -> None:
    host, port = ssh_hosts[0], 47008

    async def main() -> tuple[list[bytes], dict[str, int], list[str]]:
        names = [i.name for i in await epcap.interfaces_async(
            host=host.target, ssh_options=host.ssh_options, progname=installs["caps"])]  # fmt: skip
        async with epcap.start_async(
            host=host.target, ssh_options=host.ssh_options, progname=installs["caps"],
            interface=host.interface, filter=f"udp port {port}",
        ) as cap:  # fmt: skip
            await asyncio.sleep(0)
            await asyncio.get_running_loop().run_in_executor(
                None, host.send_udp, port, payloads("async", 10)
            )
            got = [udp_payload((await cap.next(timeout=10)).data) for _ in range(10)]  # type: ignore[union-attr]
            await asyncio.sleep(2.5)  # keepalives keep the helper (idle limit 3 s) alive
            stats = await cap.stats()
        return got, dict(stats), names

    got, stats, names = asyncio.run(main())
    assert got == payloads("async", 10)
    assert stats["packets"] == 10
    assert host.interface in names


@pytest.fixture(scope="module")
def public_helper() -> Iterator[str]:
    """A copy of this tree's helper that anyone may run, with no privilege
    (priv/ is root's alone): enough to read a file."""
    yield from _helper_copy("epcap-public-", 0o755)


def _helper_copy(prefix: str, mode: int) -> Iterator[str]:
    """A root-owned copy of this tree's helper with `mode`, in a directory
    of its own under /var/tmp that anyone may enter; removed afterwards."""
    top = Path(tempfile.mkdtemp(prefix=prefix, dir="/var/tmp"))
    top.chmod(0o755)
    path = top / "epcapd"
    path.write_bytes(HELPER.read_bytes())
    path.chmod(mode)
    yield str(path)
    path.unlink()
    top.rmdir()


@pytest.fixture(scope="module")
def remote_pcap() -> Iterator[str]:
    """The sample capture, where the remote user may read it."""
    top = Path(tempfile.mkdtemp(prefix="epcap-remote-file-", dir="/var/tmp"))
    top.chmod(0o755)
    path = top / "s.pcap"
    pf.write_pcap(path, pf.sample_records(), linktype=pf.LINKTYPE_ETHERNET, nano=True)
    path.chmod(0o644)
    yield str(path)
    path.unlink()
    top.rmdir()


def test_a_file_on_the_remote_host(
    ssh_hosts: list[SshHost], public_helper: str, remote_pcap: str
) -> None:
    """Reading a file there needs no privilege: the remote user's own rights.
    An ``exec=`` prefix reaches the remote side word for word (spaces kept)."""
    host = ssh_hosts[0]
    with start_on(host, public_helper, file=remote_pcap) as cap:
        got = list(cap)
    assert [(p.time, p.length, p.data) for p in got] == pf.sample_records()
    assert {p.host for p in got} == {host.target}
    prefix = ["env", "EPCAP_NOTE=two words; $HOME 'q'"]
    with start_on(host, public_helper, file=remote_pcap, exec=prefix) as cap:
        assert [(p.time, p.length, p.data) for p in cap] == pf.sample_records()


# Lifecycle ----------------------------------------------------------------------

CLIENT = """
import sys, epcap
cap = epcap.start(host=sys.argv[1], ssh_options=sys.argv[2:-2], progname=sys.argv[-2],
                  interface=sys.argv[-1])
print("capturing", flush=True)
for _ in cap:
    pass
"""


def test_a_killed_client_leaves_no_helper_there(
    clean_ssh_hosts: list[SshHost], installs: dict[str, Path]
) -> None:
    host, helper = clean_ssh_hosts[0], installs["caps"]
    client = subprocess.Popen(
        [sys.executable, "-c", CLIENT, host.target, *host.ssh_options, str(helper),
         host.interface], stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert client.stdout is not None and client.stdout.readline() == "capturing\n"
    assert host.processes_of(helper)
    client.kill()
    client.wait()
    took = wait_for(lambda: nothing_left(host, helper), GONE_WITHIN, "end of the remote helper")
    print(f"client SIGKILLed: the remote helper and ssh gone in {took:.2f} s")


@pytest.mark.parametrize("cut", ["link down", "sshd session killed"])
def test_a_lost_connection_leaves_no_helper_there(
    clean_ssh_hosts: list[SshHost], installs: dict[str, Path], cut: str
) -> None:
    host, helper = clean_ssh_hosts[1], installs["caps"]
    with start_on(host, helper, interface=host.interface, filter="udp port 47009") as cap:
        assert host.processes_of(helper)
        started = time.monotonic()
        if cut == "link down":
            host.link_down()
        else:
            host.kill_session()
        took = wait_for(lambda: not host.processes_of(helper), GONE_WITHIN, "end of the helper")
        with pytest.raises(epcap.HostUnreachableError) as info:
            cap.next(timeout=ERROR_WITHIN)
        raised = time.monotonic() - started
    assert info.value.host == host.target
    assert raised < ERROR_WITHIN
    print(f"{cut}: remote helper gone in {took:.2f} s; {info.value} raised in {raised:.2f} s")


def test_a_remote_helper_that_dies_is_reported_as_a_local_one(
    clean_ssh_hosts: list[SshHost], installs: dict[str, Path]
) -> None:
    host, helper = clean_ssh_hosts[2], installs["caps"]
    with start_on(host, helper, interface=host.interface, filter="udp port 47010") as cap:
        (pid,) = host.processes_of(helper)
        os.kill(pid, signal.SIGKILL)
        with pytest.raises(epcap.HelperExitedError, match="killed") as info:
            cap.next(timeout=ERROR_WITHIN)
    assert info.value.host == host.target


# Failures on the way there ----------------------------------------------------


@pytest.fixture(scope="module")
def twin_of_another_version() -> Iterator[str]:
    """This tree's helper built to speak protocol 99, for anyone to run."""
    build = Path(tempfile.mkdtemp(prefix="epcap-v99-", dir="/var/tmp"))
    build.chmod(0o755)
    subprocess.run(["make", "-s", "-C", str(ROOT), f"{build}/epcapd", f"BUILDDIR={build}",
                    "PROTOCOL_VERSION=99"], check=True, capture_output=True)  # fmt: skip
    (build / "epcapd").chmod(0o755)
    yield str(build / "epcapd")
    for leftover in build.iterdir():
        leftover.unlink()
    build.rmdir()


@pytest.fixture(scope="module")
def not_theirs() -> Iterator[str]:
    """A helper the remote user may not run: root's, mode 0750."""
    yield from _helper_copy("epcap-notyours-", 0o750)


FAILURES: dict[str, tuple[type[epcap.EpcapError], str]] = {
    "refused key": (epcap.AuthenticationError, "Permission denied"),
    "unknown host key": (epcap.HostKeyError, "Host key verification failed"),
    "nothing on the port": (epcap.HostUnreachableError, "Connection refused"),
    "silent host": (epcap.HostUnreachableError, "timed out"),
    "no helper there": (epcap.RemoteHelperNotFoundError, "no helper /nonexistent/epcapd"),
    "a helper not theirs": (epcap.RemoteHelperNotFoundError, "may not run"),
    "another protocol version": (epcap.ProtocolVersionError, "speaks protocol version 99"),
}


@pytest.mark.parametrize("case", list(FAILURES))
def test_each_failure_on_the_way_has_its_own_error(
    clean_ssh_hosts: list[SshHost],
    installs: dict[str, Path],
    twin_of_another_version: str,
    not_theirs: str,
    remote_pcap: str,
    case: str,
) -> None:
    host = clean_ssh_hosts[0]
    target, options, helper = host.target, host.ssh_options, str(installs["caps"])
    what: dict[str, object] = {"interface": host.interface}
    if case == "refused key":
        options = host.wrong_key_options
    elif case == "unknown host key":
        options = host.unknown_host_options
    elif case == "nothing on the port":
        target = f"{host.target}:2222"
    elif case == "silent host":
        host.link_down()
    elif case == "no helper there":
        helper = "/nonexistent/epcapd"
    elif case == "a helper not theirs":
        helper = not_theirs
    else:
        helper, what = twin_of_another_version, {"file": remote_pcap}
    expected, words = FAILURES[case]
    started = time.monotonic()
    with pytest.raises(expected) as info:
        epcap.start(host=target, ssh_options=options, progname=helper, **what)  # type: ignore[call-overload]
    took = time.monotonic() - started
    assert took < ERROR_WITHIN, took
    assert words in str(info.value), str(info.value)
    assert info.value.host == target
    wait_for(lambda: nothing_left(host, helper), 2, "end of every process")
    print(f"{case}: {type(info.value).__name__} in {took:.2f} s: {info.value}")


# epcap-sniff ------------------------------------------------------------------


def test_sniff_on_three_hosts_into_one_pcapng(
    ssh_hosts: list[SshHost], installs: dict[str, Path], tmp_path: Path
) -> None:
    """epcap-sniff --host, three times, with -i eth1 (every host's interface
    has that name): one stream, each line prefixed with its host and
    interface, and a pcapng with an interface block for each."""
    port, each = 47011, 5
    out = tmp_path / "three.pcapng"
    hosts = [a for h in ssh_hosts for a in ("--host", h.target)]
    options = " ".join(ssh_hosts[0].ssh_options)  # the hosts share keys and known hosts
    sniffing = subprocess.Popen(
        [str(Path(sys.executable).parent / "epcap-sniff"), *hosts, f"--ssh-options={options}",
         "--helper", str(installs["caps"]), "-i", "eth1", "-n", "-t", "--print",
         "-w", str(out), "-c", str(each * len(ssh_hosts)), f"udp port {port}"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert sniffing.stderr is not None
        for _ in ssh_hosts:  # each "listening on" line: that host's helper is capturing
            assert "listening on" in sniffing.stderr.readline()
        for host in ssh_hosts:
            host.send_udp(port, payloads(host.name, each))
        stdout, stderr = sniffing.communicate(timeout=30)
    finally:
        sniffing.kill()
        sniffing.wait()
    assert sniffing.returncode == 0, stderr
    lines = stdout.splitlines()
    assert len(lines) == each * len(ssh_hosts), lines
    for host in ssh_hosts:
        mine = [line for line in lines if line.startswith(f"{host.target}:eth1 IP ")]
        assert len(mine) == each, lines
    assert interface_names(out) == [f"{h.target}:eth1" for h in ssh_hosts]
    with epcap.start(file=out, progname=HELPER) as cap:
        packets = list(cap)
    assert len(packets) == each * len(ssh_hosts)
    assert sorted({p.interface_id for p in packets}) == [0, 1, 2]


def interface_names(path: Path) -> list[str]:
    """The if_name option of each interface block of a little-endian pcapng."""
    raw, names, at = path.read_bytes(), [], 0
    while at < len(raw):
        kind, size = struct.unpack_from("<II", raw, at)
        if kind == 1:  # interface description: link type, reserved, snaplen, then options
            option = at + 16
            while option < at + size - 4:
                code, length = struct.unpack_from("<HH", raw, option)
                if code == 2:
                    names.append(raw[option + 4 : option + 4 + length].decode())
                if code == 0:
                    break
                option += 4 + length + (-length % 4)
        at += size
    return names

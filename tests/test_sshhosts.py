"""The SSH hosts of the remote-capture tests (sshhosts.py, conftest.py's
`ssh_hosts`) are what they claim: real sshd servers in network namespaces
that let in the remote user by key alone, refuse a wrong key or an unknown
host key, a link that can be cut silently and restored, sessions that can be
killed, and traffic that reaches each host's interface."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from epcap._protocol import FrameDecoder

from privileged import GROUP, MODES, helper_command
from sshhosts import SSH, SshHost

pytestmark = [pytest.mark.root, pytest.mark.usefixtures("no_leftovers")]

CONNECT_TIMEOUT = 2


def ssh(host: SshHost, *command: str, options: list[str] | None = None) -> list[str]:
    """The client's command line: `command` on `host`, as epcap runs ssh."""
    return [
        SSH, "-T", "-o", "BatchMode=yes", "-o", f"ConnectTimeout={CONNECT_TIMEOUT}",
        *(host.ssh_options if options is None else options), host.target, "--", *command,
    ]  # fmt: skip


def run_ssh(host: SshHost, *command: str, **kwargs: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(ssh(host, *command, **kwargs), capture_output=True, text=True, timeout=20)


def wait_for(condition: Callable[[], object], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"no {what} after {seconds} s"
        time.sleep(0.02)


def test_each_host_lets_the_remote_user_in(clean_ssh_hosts: list[SshHost]) -> None:
    assert len(clean_ssh_hosts) == 3
    assert len({h.address for h in clean_ssh_hosts}) == 3
    for host in clean_ssh_hosts:
        known = (host.directory / "known_hosts").read_text()
        done = run_ssh(host, "id", "-un")
        assert (done.returncode, done.stdout, done.stderr) == (0, f"{host.user}\n", ""), host.log()
        assert f"Accepted publickey for {host.user} from {host.peer_address}" in host.log()
        groups = run_ssh(host, "id", "-Gn").stdout.split()
        assert GROUP in groups
        assert (host.directory / "known_hosts").read_text() == known  # ssh wrote nothing


def test_each_host_is_a_namespace_with_its_own_link(clean_ssh_hosts: list[SshHost]) -> None:
    for host in clean_ssh_hosts:
        inside = host.run("ip", "-o", "addr", check=True).stdout
        assert f"{host.interface}    inet {host.address}/24" in inside
        assert "inet6" not in inside.replace("inet6 ::1/128", "")  # IPv6 off on the link
        routes = host.run("ip", "-4", "route", check=True).stdout.splitlines()
        subnet = host.address.rsplit(".", 1)[0] + ".0/24"
        assert [r.split()[:3] for r in routes] == [[subnet, "dev", host.interface]]  # only
        listening = host.run("ss", "-H", "-ltn", check=True).stdout.splitlines()
        assert [line.split()[3] for line in listening] == [f"{host.address}:22"]
        here = subprocess.run(
            ["ip", "-o", "addr", "show", "dev", host.peer_interface],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        assert f"inet {host.peer_address}/24" in here
    root = subprocess.run(["ss", "-H", "-ltnp"], capture_output=True, text=True, check=True)
    for host in clean_ssh_hosts:
        assert f"pid={host.sshd_pid}," not in root.stdout, "our sshd listens in the root namespace"


def test_udp_reaches_the_host_and_back(clean_ssh_hosts: list[SshHost]) -> None:
    host = clean_ssh_hosts[1]
    code = (
        "import socket, sys\n"
        "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
        f"s.bind(('{host.address}', 0))\n"
        "s.settimeout(5)\n"
        "print(s.getsockname()[1], flush=True)\n"
        "data, peer = s.recvfrom(100)\n"
        "print(data.decode(), peer[0], flush=True)\n"
    )
    listener = host.popen(sys.executable, "-c", code, stdout=subprocess.PIPE, text=True)
    assert listener.stdout is not None
    port = int(listener.stdout.readline())
    host.send_udp(port, [b"to the host"])
    assert listener.stdout.readline().split() == ["to", "the", "host", host.peer_address]
    assert listener.wait(5) == 0
    listener.stdout.close()

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rx:
        rx.bind((host.peer_address, 0))
        rx.settimeout(5)
        host.send_udp_to_peer(rx.getsockname()[1], [b"from the host"])
        data, (source, _) = rx.recvfrom(100)
        assert (data, source) == (b"from the host", host.address)


def test_a_wrong_key_and_an_unknown_host_key_are_refused(clean_ssh_hosts: list[SshHost]) -> None:
    host = clean_ssh_hosts[0]
    refused = run_ssh(host, "id", options=host.wrong_key_options)
    assert refused.returncode == 255
    assert "Permission denied (publickey)" in refused.stderr
    unknown = run_ssh(host, "id", options=host.unknown_host_options)
    assert unknown.returncode == 255
    assert "Host key verification failed" in unknown.stderr


def test_a_cut_link_times_out_and_comes_back(clean_ssh_hosts: list[SshHost]) -> None:
    host = clean_ssh_hosts[2]
    host.link_down()
    began = time.monotonic()
    cut = run_ssh(host, "id", "-un")
    took = time.monotonic() - began
    assert cut.returncode == 255
    assert "timed out" in cut.stderr, cut.stderr
    assert CONNECT_TIMEOUT - 0.5 < took < CONNECT_TIMEOUT + 2
    host.link_up()
    assert run_ssh(host, "id", "-un").stdout == f"{host.user}\n"


def test_a_session_outlives_a_short_cut_unaware(clean_ssh_hosts: list[SshHost]) -> None:
    """Neither side learns of the cut: the session goes on once it heals."""
    host = clean_ssh_hosts[2]
    client = subprocess.Popen(ssh(host, "cat"), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)  # fmt: skip
    assert client.stdin is not None and client.stdout is not None
    try:
        client.stdin.write("before\n")
        client.stdin.flush()
        assert client.stdout.readline() == "before\n"
        children = host.sshd_children()
        host.link_down()
        client.stdin.write("during\n")
        client.stdin.flush()
        time.sleep(1.5)
        assert client.poll() is None
        assert host.sshd_children() == children
        host.link_up()
        assert client.stdout.readline() == "during\n"  # a retransmission, within seconds
        client.stdin.close()
        assert client.wait(5) == 0
    finally:
        if client.poll() is None:
            client.kill()
        client.wait()
        client.stdout.close()
        assert client.stderr is not None
        client.stderr.close()


def test_kill_session_ends_the_client_at_once(clean_ssh_hosts: list[SshHost]) -> None:
    host = clean_ssh_hosts[0]
    client = subprocess.Popen(ssh(host, "sleep", "30"), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        wait_for(lambda: host.processes_of("/usr/bin/sleep"), 5, "remote sleep")
        sleeper = host.processes_of("/usr/bin/sleep")
        assert len(host.sshd_children()) == 1
        began = time.monotonic()
        killed = host.kill_session()
        assert len(killed) == 2  # the connection's monitor and its user's sshd
        assert client.wait(1) == 255
        assert time.monotonic() - began < 1
        assert host.sshd_children() == set()
        # what the session ran outlives it, orphaned: processes_of finds it
        assert host.processes_of("/usr/bin/sleep") == sleeper
    finally:
        if client.poll() is None:
            client.kill()
        _, err = client.communicate()
    assert "closed by remote host" in err
    host.reset()
    assert host.processes_of("/usr/bin/sleep") == set()
    assert host.session_processes() == set()


@pytest.mark.parametrize("mode", MODES)
def test_the_remote_user_runs_the_installed_helpers(
    clean_ssh_hosts: list[SshHost], installs: dict[str, Path], mode: str
) -> None:
    """The remote user may run each helper `make install` put in place (it
    is in the installs' group), and the helper sees the host's devices."""
    host = clean_ssh_hosts[1]
    command = ssh(host, *helper_command(mode, installs[mode], "-D"))
    done = subprocess.run(command, input=b"", capture_output=True, timeout=20)
    values, error = FrameDecoder().feed(done.stdout)
    frames = list(values)
    assert (done.returncode, error, done.stderr) == (0, None, b""), (frames, host.log())
    assert len(frames) == 1 and frames[0][0] == "interfaces"
    names = {d["name"] for d in frames[0][1]["devices"]}
    assert {"lo", host.interface} <= names
    assert host.peer_interface not in names  # this namespace's devices are not the host's

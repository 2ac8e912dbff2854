"""Shared fixtures. Under CI=true a skipped test is a failed test: CI is root
and has ../shared/captures, so nothing there has a reason to skip."""

from __future__ import annotations

import os
import pwd
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import epcap

ROOT = Path(__file__).resolve().parent.parent
HELPER = ROOT / "priv" / "epcapd"
CAPTURES = ROOT.parent / "shared" / "captures"
IN_CI = os.environ.get("CI") == "true"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    if IN_CI and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = f"skipped under CI=true, where every test must run: {report.longrepr}"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("root") and os.geteuid() != 0:
            item.add_marker(pytest.mark.skip(reason="needs root"))


def helper_pids() -> set[int]:
    """Pids of running (non-zombie) processes executing our helper binary."""
    target = os.path.realpath(HELPER)
    pids = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if os.readlink(f"/proc/{entry}/exe") == target:
                pids.add(int(entry))
        except OSError:
            continue
    return pids


def zombie_children() -> list[int]:
    """Pids of this process's children that exited and were not reaped."""
    me, zombies = os.getpid(), []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if fields[0] == "Z" and int(fields[1]) == me:
            zombies.append(int(entry))
    return zombies


def proc_status(pid: int) -> dict[str, str]:
    """/proc/<pid>/status as a dict."""
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    return {k: v.strip() for k, _, v in (line.partition(":") for line in lines)}


@pytest.fixture
def no_leftovers() -> Iterator[None]:
    """Fail the test if it leaves a helper process or a zombie behind (a
    helper whose client is a process the test ran has 5 s to see it go)."""
    before = helper_pids()
    yield
    deadline = time.monotonic() + 5
    while helper_pids() - before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert helper_pids() - before == set(), "helper processes left behind"
    assert zombie_children() == [], "zombie children left behind"


@pytest.fixture
def captures() -> list[Path]:
    """The real-world captures of ../shared/captures (required under CI=true)."""
    if not CAPTURES.is_dir():
        if IN_CI:
            pytest.fail(f"{CAPTURES} is missing, and CI=true requires it")
        pytest.skip(f"{CAPTURES} not present")
    files = sorted(p for p in CAPTURES.iterdir() if p.suffix in (".pcap", ".pcapng"))
    assert files, f"no capture files in {CAPTURES}"
    return files


@pytest.fixture
def udp_port() -> Iterator[int]:
    """A UDP port on 127.0.0.1 with a socket bound to it for the test's
    duration, so datagrams sent there draw no ICMP port unreachable."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    sock.bind(("127.0.0.1", 0))
    try:
        yield sock.getsockname()[1]
    finally:
        sock.close()


def start(**options: object) -> epcap.Capture:
    """epcap.start(**options) with the source tree's helper."""
    return epcap.start(progname=HELPER, **options)  # type: ignore[arg-type]


def start_file(path: Path | str, **options: object) -> epcap.Capture:
    """epcap.start(file=...) with the source tree's helper."""
    return start(file=path, **options)


@pytest.fixture(scope="session")
def user() -> Iterator[pwd.struct_passwd]:
    """A real unprivileged user in the installs' group (created, and removed
    again, if missing; so is the group)."""
    from privileged import GROUP, USER, ensure_user, remove_user

    made_group = subprocess.run(["getent", "group", GROUP], capture_output=True).returncode != 0
    if made_group:
        subprocess.run(["groupadd", "--system", GROUP], check=True)
    pw, made = ensure_user(USER)
    subprocess.run(["usermod", "-aG", GROUP, USER], check=True)
    yield pw
    if made:
        remove_user(USER)
    if made_group:
        subprocess.run(["groupdel", GROUP], check=True)


@pytest.fixture(scope="session")
def outsider() -> Iterator[pwd.struct_passwd]:
    """A real unprivileged user outside the installs' group."""
    from privileged import OUTSIDER, ensure_user, remove_user

    pw, made = ensure_user(OUTSIDER)
    yield pw
    if made:
        remove_user(OUTSIDER)


@pytest.fixture(scope="session")
def installs(user: pwd.struct_passwd) -> Iterator[dict[str, Path]]:
    """The helper, `make install`ed in each mode into a root-owned prefix."""
    from privileged import installed

    with installed("epcap-install-", "priv/epcapd") as helpers:
        yield helpers


@pytest.fixture(scope="session")
def testhook_installs(user: pwd.struct_passwd) -> Iterator[dict[str, Path]]:
    """The test-hook build (priv/epcapd-testhook), installed in each mode."""
    from privileged import installed

    with installed("epcap-testhook-", "priv/epcapd-testhook") as helpers:
        yield helpers


@pytest.fixture(scope="session")
def ssh_hosts(user: pwd.struct_passwd) -> Iterator[list[SshHost]]:  # noqa: F821 - in sshhosts
    """Three hosts, each a network namespace with its own sshd that lets in
    privileged.REMOTE (made if missing, in the installs' group) by key, at
    host.target with host.ssh_options (tests/sshhosts.py); all removed at the
    end. Shared by the session: a test that cuts a link or leaves sessions
    behind uses `clean_ssh_hosts`, or calls host.reset() itself."""
    from sshhosts import running_hosts  # here: sshhosts imports privileged, which imports us

    with running_hosts(3) as hosts:
        yield hosts


@pytest.fixture
def clean_ssh_hosts(ssh_hosts: list[SshHost]) -> Iterator[list[SshHost]]:  # noqa: F821 - ditto
    """ssh_hosts, each reset() after the test: link up, nothing left running
    on it but its sshd."""
    yield ssh_hosts
    for host in ssh_hosts:
        host.reset()

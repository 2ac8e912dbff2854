"""Privilege separation as people install it, proven as a real unprivileged
user: through sudo with the sudoers.example rule, a setuid-root copy and a
file-capability copy of the helper, each installed by `make install`."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import epcap

from conftest import HELPER, ROOT, proc_status

pytestmark = pytest.mark.root

USER = "epcaptest"
NOBODY = "65534"
DRIVER = Path(__file__).resolve().parent / "userdriver.py"
SETPRIV = shutil.which("setpriv") or "/usr/bin/setpriv"
MODES = ("sudo", "setuid", "caps")


@pytest.fixture(scope="session")
def user() -> Iterator[pwd.struct_passwd]:
    """A real unprivileged user (created, and removed again, if missing)."""
    created = False
    try:
        pw = pwd.getpwnam(USER)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", USER],
            check=True,
        )
        created = True
        pw = pwd.getpwnam(USER)
    yield pw
    if created:
        subprocess.run(["userdel", USER], check=True)


@pytest.fixture(scope="session")
def installs(user: pwd.struct_passwd) -> Iterator[dict[str, Path]]:
    """`make install` into a root-owned prefix per mode, plus the sudoers
    rule of sudoers.example for the sudo copy; all removed at the end."""
    assert shutil.which("sudo"), "make test installs sudo"
    top = Path(tempfile.mkdtemp(prefix="epcap-install-", dir="/var/tmp"))
    top.chmod(0o755)
    helpers = {}
    for mode in MODES:
        out = subprocess.run(
            ["make", "-s", "-C", str(ROOT), "install", f"PRIVMODE={mode}", f"PREFIX={top / mode}",
             "TEST_INSTALL=1"],  # a temporary prefix: a SANITIZE=1 helper may go there
            check=True, capture_output=True, text=True,
        )  # fmt: skip
        helpers[mode] = top / mode / "lib" / "epcap" / "epcapd"
        if mode == "sudo":
            assert f"NOPASSWD: {helpers[mode]}" in out.stdout
    rule = Path("/etc/sudoers.d") / f"epcap-test-{os.getpid()}"
    example = (ROOT / "sudoers.example").read_text().splitlines()
    (line,) = [x for x in example if x and not x.startswith("#")]
    line = line.replace("alice", USER).replace("/usr/local/lib/epcap/epcapd", str(helpers["sudo"]))
    rule.write_text(line + "\n")
    rule.chmod(0o440)
    subprocess.run(["visudo", "-cf", str(rule)], check=True, capture_output=True)
    try:
        yield helpers
    finally:
        rule.unlink()
        shutil.rmtree(top)


class AsUser:
    """The driver running as the unprivileged user, one JSON line at a time."""

    def __init__(
        self, user: pwd.struct_passwd, options: dict[str, Any], path: str, groups: str
    ) -> None:
        env = {"PATH": path, "HOME": "/", "PYTHONDONTWRITEBYTECODE": "1", "LANG": "C.UTF-8"}
        grouping = f"--groups={groups}" if groups else "--init-groups"
        self.proc = subprocess.Popen(
            [SETPRIV, f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", grouping,
             sys.executable, str(DRIVER), json.dumps(options)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env, cwd="/",
        )  # fmt: skip

    def next(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line, f"driver exited with {self.proc.wait()}"
        event: dict[str, Any] = json.loads(line)
        return event

    def finish(self) -> None:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write("close\n")
        self.proc.stdin.flush()
        assert self.next()["event"] == "closed"
        assert self.proc.wait(10) == 0


def run_as(
    account: pwd.struct_passwd, /, path: str = "/usr/bin:/bin", groups: str = "", **options: Any
) -> tuple[AsUser, dict[str, Any]]:
    """Start the driver as `account` (with its groups, or the gids listed in
    `groups`) and epcap `options`; return its first event."""
    driver = AsUser(account, options, path, groups)
    event = driver.next()
    if event["event"] == "error":
        assert driver.proc.wait(10) == 0  # the driver ends after reporting; reap it
    return driver, event


def mode_options(mode: str, helpers: dict[str, Path]) -> dict[str, Any]:
    if mode == "none":
        return {"progname": str(HELPER)}
    options: dict[str, Any] = {"progname": str(helpers[mode])}
    if mode == "sudo":
        options["exec"] = "sudo -n"
    return options


def test_make_install_sets_each_mode(installs: dict[str, Path]) -> None:
    for mode, helper in installs.items():
        st = helper.stat()
        assert (st.st_uid, st.st_gid) == (0, 0)
        assert stat.S_IMODE(st.st_mode) == (0o4755 if mode == "setuid" else 0o755)
        empty = helper.parent / "empty"
        assert empty.stat().st_uid == 0 and stat.S_IMODE(empty.stat().st_mode) == 0o755
        assert list(empty.iterdir()) == []
        out = subprocess.run(["getcap", str(helper)], capture_output=True, text=True).stdout
        caps = set(out.split()[1].removesuffix("=ep").split(",")) if out.strip() else set()
        wanted = {"cap_net_raw", "cap_net_admin", "cap_sys_chroot", "cap_setuid", "cap_setgid"}
        assert caps == (wanted if mode == "caps" else set())


def test_make_install_refuses_a_non_root_user(user: pwd.struct_passwd) -> None:
    result = subprocess.run(
        [SETPRIV, f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--init-groups",
         "make", "-s", "-C", str(ROOT), "install", "PREFIX=/nonexistent"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode != 0
    assert "make install must run as root" in result.stdout


@pytest.mark.parametrize("mode", MODES)
def test_live_capture_as_user_and_the_helper_keeps_nothing(
    mode: str, user: pwd.struct_passwd, installs: dict[str, Path]
) -> None:
    driver, ready = run_as(user, udp=20, **mode_options(mode, installs))
    assert ready["event"] == "ready", ready
    pid = ready["pid"]
    status = proc_status(pid)
    assert status["Uid"].split() == [NOBODY] * 4
    assert status["Gid"].split() == [NOBODY] * 4
    assert status["Groups"] == ""
    assert status["CapEff"] == status["CapPrm"] == "0000000000000000"
    assert status["NoNewPrivs"] == "1"
    assert status["Seccomp"] == "2"
    chroot = str(installs[mode].parent / "empty")
    assert os.readlink(f"/proc/{pid}/root") == chroot
    assert ready["settings"]["chroot"] == chroot
    assert ready["settings"]["sandbox"] == "seccomp"
    packets = driver.next()
    assert packets["packets"] == [f"epcap {i}" for i in range(20)]
    driver.finish()
    assert not Path(f"/proc/{pid}").exists()


def test_no_mode_available_names_the_fix(user: pwd.struct_passwd) -> None:
    # sudo is installed but has no rule for this helper: sudo's refusal, and the rule.
    _, event = run_as(user, udp=1, progname=str(HELPER))
    assert event["type"] == "PermissionDeniedError", event
    assert f"{USER} ALL=(root) NOPASSWD: {HELPER}" in event["message"]
    # no sudo on PATH either: the install commands.
    _, event = run_as(user, path="/nonexistent", udp=1, progname=str(HELPER))
    assert event["type"] == "PermissionDeniedError", event
    assert "make install PRIVMODE=caps" in event["message"]


@pytest.fixture
def capture_files(user: pwd.struct_passwd) -> Iterator[tuple[Path, Path]]:
    """(readable by the user, readable only by root), in a directory the user can enter."""
    top = Path(tempfile.mkdtemp(prefix="epcap-files-", dir="/var/tmp"))
    top.chmod(0o755)
    sample = (ROOT / "client" / "epcap" / "data" / "sample.pcap").read_bytes()
    public, secret = top / "public.pcap", top / "secret.pcap"
    public.write_bytes(sample)
    public.chmod(0o644)
    secret.write_bytes(sample)
    secret.chmod(0o600)
    yield public, secret
    shutil.rmtree(top)


@pytest.mark.parametrize("mode", [*MODES, "none"])
def test_files_open_with_the_users_rights(
    mode: str,
    user: pwd.struct_passwd,
    installs: dict[str, Path],
    capture_files: tuple[Path, Path],
) -> None:
    public, secret = capture_files
    driver, event = run_as(user, file=str(secret), **mode_options(mode, installs))
    assert event["type"] == "PermissionDeniedError", event
    assert "Permission denied" in event["message"] and "EACCES" in event["message"]
    driver, ready = run_as(user, file=str(public), **mode_options(mode, installs))
    assert ready["event"] == "ready", ready
    assert ready["settings"]["uid"] == (int(NOBODY) if mode != "none" else user.pw_uid)
    packets = driver.next()["packets"]
    assert len(packets) == 15 and packets[0].startswith("ffffffffffff")  # ARP broadcast
    driver.finish()


@pytest.mark.parametrize("mode", [*MODES, "none"])
@pytest.mark.parametrize("who", [{"user": "root"}, {"group": "root"}])
def test_dropping_to_root_is_refused(
    mode: str,
    who: dict[str, str],
    user: pwd.struct_passwd,
    installs: dict[str, Path],
    capture_files: tuple[Path, Path],
) -> None:
    public, _ = capture_files
    _, event = run_as(user, file=str(public), **who, **mode_options(mode, installs))
    assert event["type"] == "PermissionDeniedError", event
    assert (
        "refusing to run as uid" in event["message"]
        or "need a privileged helper" in event["message"]
    )


@pytest.mark.usefixtures("no_leftovers")
@pytest.mark.parametrize(
    "call, expected",
    [("open", "test hook: open denied: Operation not permitted"), ("fork", "SIGSYS")],
)
def test_the_sandbox_bites(call: str, expected: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EPCAPD_TEST_SYSCALL", call)
    sample = ROOT / "client" / "epcap" / "data" / "sample.pcap"
    helper = HELPER.parent / "epcapd-testhook"
    with (
        pytest.raises(epcap.EpcapError, match=expected) as info,
        epcap.start(file=sample, progname=helper) as cap,
    ):
        list(cap)
    if call == "open":
        assert isinstance(info.value, epcap.CaptureError)
        assert (info.value.op, info.value.errno) == ("sandbox", "EPERM")
    else:
        assert isinstance(info.value, epcap.HelperExitedError)
        assert info.value.returncode == -31  # SIGSYS


@pytest.mark.parametrize("mode", ["setuid", "none"])
def test_a_user_in_many_groups(
    mode: str,
    user: pwd.struct_passwd,
    installs: dict[str, Path],
    capture_files: tuple[Path, Path],
) -> None:
    public, _ = capture_files
    many = ",".join(str(g) for g in range(20000, 20100))  # 100 supplementary groups
    driver, ready = run_as(user, groups=many, file=str(public), **mode_options(mode, installs))
    assert ready["event"] == "ready", ready
    assert len(driver.next()["packets"]) == 15
    driver.finish()


def sniff_as(user: pwd.struct_passwd, *args: str, path: str) -> subprocess.CompletedProcess[str]:
    """epcap-sniff run by the unprivileged user, with the source tree's helper."""
    env = {"PATH": path, "HOME": "/", "EPCAPD": str(HELPER), "LANG": "C.UTF-8", "TZ": "UTC"}
    return subprocess.run(
        [SETPRIV, f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--init-groups",
         sys.executable, "-m", "epcap.sniff", *args],
        capture_output=True, text=True, env=env, cwd="/", timeout=60,
    )  # fmt: skip


def test_sniff_without_privilege_is_one_clear_line(user: pwd.struct_passwd) -> None:
    result = sniff_as(user, "-i", "lo", path="/usr/bin:/bin")  # sudo, but no rule
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    (line,) = result.stderr.splitlines()
    assert line.startswith("epcap-sniff: ")
    assert f"{USER} ALL=(root) NOPASSWD: {HELPER}" in line


def test_sniff_demo_falls_back_to_the_sample_without_privilege(user: pwd.struct_passwd) -> None:
    result = sniff_as(user, "--demo", path="/nonexistent")  # no sudo at all
    assert result.returncode == 0, result.stderr
    assert "no privilege for a live capture" in result.stdout
    assert "reading the bundled sample capture" in result.stdout
    assert result.stdout.count("caplen: ") == 15

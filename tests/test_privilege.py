"""Privilege separation as people install it, proven as a real unprivileged
user: through sudo with the sudoers.example rule, a setuid-root copy and a
file-capability copy of the helper, each installed by `make install`."""

from __future__ import annotations

import os
import pwd
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

import epcap
from epcap.admin import others_can_replace, sudoers_name

from conftest import HELPER, ROOT
from privileged import (
    GROUP,
    MODES,
    NOBODY,
    USER,
    as_user,
    gid_of,
    mode_options,
    run_as,
)

pytestmark = pytest.mark.root


def test_make_install_sets_each_mode(installs: dict[str, Path]) -> None:
    for mode, helper in installs.items():
        st = helper.stat()
        assert (st.st_uid, st.st_gid) == (0, gid_of(GROUP))
        assert stat.S_IMODE(st.st_mode) == (0o4750 if mode == "setuid" else 0o750)
        conf = helper.parent / "epcapd.conf"
        assert conf.stat().st_uid == 0 and stat.S_IMODE(conf.stat().st_mode) == 0o644
        assert "max_buffer 268435456" in conf.read_text().splitlines()
        assert not any(line.startswith("inject") for line in conf.read_text().splitlines())
        empty = helper.parent / "empty"
        assert empty.stat().st_uid == 0 and stat.S_IMODE(empty.stat().st_mode) == 0o755
        assert list(empty.iterdir()) == []
        out = subprocess.run(["getcap", str(helper)], capture_output=True, text=True).stdout
        caps = set(out.split()[1].removesuffix("=ep").split(",")) if out.strip() else set()
        wanted = {"cap_net_raw", "cap_net_admin", "cap_sys_chroot", "cap_setuid", "cap_setgid"}
        assert caps == (wanted if mode == "caps" else set())


def test_make_install_creates_its_group_and_says_how_to_join_it() -> None:
    group = f"epcapg{os.getpid() % 100000}"
    top = Path(tempfile.mkdtemp(prefix="epcap-group-", dir="/var/tmp"))
    try:
        out = subprocess.run(
            ["make", "-s", "-C", str(ROOT), "install", f"PREFIX={top}", f"GROUP={group}",
             "INJECT_GROUP=netdev", "MAX_BUFFER=1048576", "TEST_INSTALL=1"],
            check=True, capture_output=True, text=True,
        ).stdout  # fmt: skip
        helper = top / "lib" / "epcap" / "epcapd"
        assert f"groupadd --system {group}" in out
        assert f"usermod -aG {group} " in out
        assert helper.stat().st_gid == gid_of(group)
        lines = (helper.parent / "epcapd.conf").read_text().splitlines()
        assert "inject netdev" in lines and "max_buffer 1048576" in lines
        out = subprocess.run(["make", "-s", "-C", str(ROOT), "uninstall", f"PREFIX={top}"],
                             check=True, capture_output=True, text=True).stdout  # fmt: skip
        assert f"removed group {group}" in out  # it made the group: it removes it
        assert list(top.iterdir()) == []
    finally:
        subprocess.run(["groupdel", group], capture_output=True)
        shutil.rmtree(top)


def test_make_install_refuses_a_non_root_user(user: pwd.struct_passwd) -> None:
    result = subprocess.run(
        [*as_user(user), "make", "-s", "-C", str(ROOT), "install", "PREFIX=/nonexistent"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode != 0
    assert "epcap-admin install must run as root: sudo epcap-admin install" in result.stderr


def test_install_refuses_test_builds_outside_the_tests(tmp_path: Path) -> None:
    admin = [sys.executable, str(ROOT / "client" / "epcap" / "admin.py"), "install"]
    for marker, why in [(b"EPCAPD_TEST_SYSCALL", "it is the test-hook build"),
                        (b"AddressSanitizer", "it is built with AddressSanitizer")]:  # fmt: skip
        build = tmp_path / "epcapd"
        build.write_bytes(b"\x7fELF..." + marker + b"...")
        result = subprocess.run(
            [*admin, "--helper", str(build), "--prefix", str(tmp_path / "prefix")],
            capture_output=True, text=True,
        )  # fmt: skip
        assert result.returncode == 1
        assert f"epcap-admin: refusing to install {build}: {why}" in result.stderr
        assert not (tmp_path / "prefix").exists()


@pytest.mark.parametrize(
    "args, says",
    [(["--mode", "root"], "invalid choice: 'root'"),
     (["--max-buffer", "16M"], "invalid _buffer value: '16M'"),
     (["--max-buffer", "0"], "must be from 1 to 2147483647 bytes, not 0"),
     (["--group", "no such;group"], "groupadd"),
     (["--helper", "/nonexistent"], "no helper at /nonexistent")],
)  # fmt: skip
def test_install_refuses_bad_values_and_makes_nothing(
    args: list[str], says: str, tmp_path: Path
) -> None:
    admin = [sys.executable, str(ROOT / "client" / "epcap" / "admin.py"), "install"]
    prefix = tmp_path / "prefix"
    # --test-install: this tree's build may be a sanitized one (make SANITIZE=1 test)
    helper = [] if "--helper" in args else ["--helper", str(HELPER), "--test-install"]
    result = subprocess.run([*admin, "--prefix", str(prefix), *helper, *args],
                            capture_output=True, text=True)  # fmt: skip
    assert result.returncode != 0 and says in result.stderr, result.stderr
    assert not prefix.exists()


def test_sudoers_example_is_the_rule_epcap_admin_writes(installs: dict[str, Path]) -> None:
    example = (ROOT / "sudoers.example").read_text().splitlines()
    (line,) = [x for x in example if x.startswith("%")]
    written = Path("/etc/sudoers.d") / sudoers_name(str(installs["sudo"].parents[2]))
    rule = written.read_text().splitlines()[-1]
    assert rule == line.replace("%epcap", f"%{GROUP}").replace(
        "/usr/local/lib/epcap/epcapd", str(installs["sudo"])
    )
    assert stat.S_IMODE(written.stat().st_mode) == 0o440 and written.stat().st_uid == 0


@pytest.mark.parametrize("mode", MODES)
def test_a_user_outside_the_group_may_not_run_it(
    mode: str, outsider: pwd.struct_passwd, installs: dict[str, Path]
) -> None:
    helper = installs[mode]
    # through a shell: setpriv itself execs with root's capabilities still in force
    shell = ["/bin/sh", "-c", '"$@"; exit $?', "sh", str(helper)]
    result = subprocess.run([*as_user(outsider), *shell], capture_output=True, text=True)
    assert result.returncode == 126 and "Permission denied" in result.stderr
    _, event = run_as(outsider, file=str(ROOT / "client/epcap/data/sample.pcap"),
                      **mode_options(mode, installs))  # fmt: skip
    assert event["type"] == "HelperNotFoundError", event
    assert (
        f"you may not run the helper: {helper} is for the members of group {GROUP}"
        in (event["message"])
    )
    assert f"usermod -aG {GROUP} {outsider.pw_name}" in event["message"]


@pytest.fixture
def helper_copies(user: pwd.struct_passwd) -> Iterator[tuple[Path, Path]]:
    """Copies of the helper: (root's, in root's directories; the user's own,
    in a directory the user owns)."""
    top = Path(tempfile.mkdtemp(prefix="epcap-copies-", dir="/var/tmp"))
    top.chmod(0o755)
    (top / "root").mkdir(mode=0o755)
    (top / "user").mkdir(mode=0o755)
    os.chown(top / "user", user.pw_uid, user.pw_gid)
    copies = top / "root" / "epcapd", top / "user" / "epcapd"
    for copy in copies:
        shutil.copy(HELPER, copy)
    os.chown(copies[1], user.pw_uid, user.pw_gid)
    yield copies
    shutil.rmtree(top)


def test_no_mode_available_names_the_fix(
    user: pwd.struct_passwd, helper_copies: tuple[Path, Path]
) -> None:
    rootish, users = helper_copies
    # sudo is installed but has no rule for this helper: sudo's refusal, and
    # the rule, for a root-owned helper in root-owned directories only.
    _, event = run_as(user, udp=1, progname=str(rootish))
    assert event["type"] == "PermissionDeniedError", event
    assert f"{USER} ALL=(root) NOPASSWD: {rootish}" in event["message"]
    _, event = run_as(user, udp=1, progname=str(users))
    assert event["type"] == "PermissionDeniedError", event
    assert "NOPASSWD" not in event["message"]
    assert "epcap-admin install --mode caps" in event["message"]
    assert (
        f"No sudoers rule should name {users}: {users} is owned by uid {user.pw_uid}"
        in (event["message"])
    )
    # no sudo on PATH either: the install command.
    _, event = run_as(user, path="/nonexistent", udp=1, progname=str(rootish))
    assert event["type"] == "PermissionDeniedError", event
    assert "as root, run `epcap-admin install --mode caps`" in event["message"]


def test_a_sudoers_rule_is_suggested_only_where_it_gives_nothing_away(
    helper_copies: tuple[Path, Path], tmp_path: Path
) -> None:
    rootish, users = helper_copies
    assert others_can_replace(str(rootish)) is None
    assert (
        others_can_replace(str(users)) == f"{users} is owned by uid {users.stat().st_uid}, not root"
    )
    rootish.chmod(0o775)
    assert others_can_replace(str(rootish)) == f"{rootish} is writable by others than root"
    rootish.chmod(0o755)
    rootish.parent.chmod(0o777)
    assert others_can_replace(str(rootish)) == f"{rootish.parent} is writable by others than root"
    rootish.parent.chmod(0o755)
    link = tmp_path / "link"  # a symlink is judged by what it points at
    link.symlink_to(users)
    assert others_can_replace(str(link)) is not None


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
    # a file is read with the user's own rights, in every mode
    assert (ready["settings"]["uid"], ready["settings"]["gid"]) == (user.pw_uid, user.pw_gid)
    assert ready["settings"]["chroot"] is None
    packets = driver.next()["packets"]
    assert len(packets) == 15 and packets[0].startswith("ffffffffffff")  # ARP broadcast
    driver.finish()


def test_root_opens_a_file_as_root_and_reads_it_as_nobody(
    user: pwd.struct_passwd, capture_files: tuple[Path, Path]
) -> None:
    _, secret = capture_files
    os.chown(secret, user.pw_uid, user.pw_gid)  # 0600, someone else's: root may open it
    with epcap.start(file=secret, progname=HELPER) as cap:
        assert len(list(cap)) == 15
        assert (cap.settings["uid"], cap.settings["gid"]) == (NOBODY, NOBODY)
        assert cap.settings["groups"] == () and cap.settings["chroot"] is None


@pytest.mark.parametrize(
    "mode, source, refusal",
    [("none", "file", "need a privileged helper")]
    + [(m, "file", "a file is read with your own rights") for m in MODES]
    + [(m, "live", "this installation decides it") for m in MODES],
)
@pytest.mark.parametrize("who", [{"user": "root"}, {"group": "root"}])
def test_dropping_to_root_is_refused(
    mode: str,
    source: str,
    refusal: str,
    who: dict[str, str],
    user: pwd.struct_passwd,
    installs: dict[str, Path],
    capture_files: tuple[Path, Path],
) -> None:
    public, _ = capture_files
    where = {"file": str(public)} if source == "file" else {"interface": "lo"}
    _, event = run_as(user, **where, **who, **mode_options(mode, installs))
    assert refusal in event["message"], event
    assert event["type"] == ("PermissionDeniedError" if mode == "none" else "PolicyError")


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
    # 100 supplementary groups, one of them the group that may run the helper
    many = ",".join(str(g) for g in [*range(20000, 20099), gid_of(GROUP)])
    driver, ready = run_as(user, groups=many, file=str(public), **mode_options(mode, installs))
    assert ready["event"] == "ready", ready
    assert len(driver.next()["packets"]) == 15
    driver.finish()


def sniff_as(user: pwd.struct_passwd, *args: str, path: str) -> subprocess.CompletedProcess[str]:
    """epcap-sniff run by the unprivileged user, with the source tree's helper."""
    env = {"PATH": path, "HOME": "/", "EPCAPD": str(HELPER), "LANG": "C.UTF-8", "TZ": "UTC"}
    return subprocess.run(
        [*as_user(user), sys.executable, "-m", "epcap.sniff", *args],
        capture_output=True, text=True, env=env, cwd="/", timeout=60,
    )  # fmt: skip


def test_sniff_without_privilege_is_one_clear_line(user: pwd.struct_passwd) -> None:
    result = sniff_as(user, "-i", "lo", path="/usr/bin:/bin")  # sudo, but no rule
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    (line,) = result.stderr.splitlines()
    assert line.startswith("epcap-sniff: ")
    if others_can_replace(str(HELPER)) is None:  # a root-owned tree: the rule is safe to give
        assert f"{USER} ALL=(root) NOPASSWD: {HELPER}" in line
    else:
        assert f"No sudoers rule should name {HELPER}" in line


def test_sniff_demo_falls_back_to_the_sample_without_privilege(user: pwd.struct_passwd) -> None:
    result = sniff_as(user, "--demo", path="/nonexistent")  # no sudo at all
    assert result.returncode == 0, result.stderr
    assert "no privilege for a live capture" in result.stdout
    assert "reading the bundled sample capture" in result.stdout
    assert result.stdout.count("caplen: ") == 15

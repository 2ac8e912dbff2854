"""What the privilege tests share (test_privilege.py, test_hostile_invoker.py):
real unprivileged users, helpers installed by `make install` in each mode,
and ways to run as such a user, through the Python client (the driver,
userdriver.py) or straight at the helper, as a hostile client would.

The fixtures that use these live in conftest.py."""

from __future__ import annotations

import contextlib
import grp
import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any

from epcap._protocol import Session

from conftest import HELPER, ROOT

USER = "epcaptest"
"""A member of GROUP: may run the installed helpers."""
OUTSIDER = "epcapout"
"""Not a member of GROUP."""
GROUP = "epcaptestgrp"
"""The group `make install GROUP=...` lets run the helpers."""
REMOTE = "epcapremote"
"""A member of GROUP with a login shell: the remote user of the SSH hosts (sshhosts.py)."""
LOGIN_SHELL = "/bin/sh"
NOBODY = 65534
SETPRIV = shutil.which("setpriv") or "/usr/bin/setpriv"
MODES = ("sudo", "setuid", "caps")
DRIVER = Path(__file__).resolve().parent / "userdriver.py"


def gid_of(group: str) -> int:
    """The gid of `group`."""
    return grp.getgrnam(group).gr_gid


def ensure_user(name: str) -> tuple[pwd.struct_passwd, bool]:
    """The account `name`, created if missing; and whether it was."""
    try:
        return pwd.getpwnam(name), False
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
            check=True,
        )
        return pwd.getpwnam(name), True


def ensure_login_user(name: str, comment: str = "") -> tuple[pwd.struct_passwd, bool]:
    """The account `name` with a login shell (LOGIN_SHELL), home / (which
    exists: sshd says nothing of a missing one), the password `*`, which no
    password matches but, unlike useradd's `!`, does not lock the account
    (sshd without PAM refuses a locked one even a key), and `comment`;
    created if missing, and whether it was. An existing account must have
    that shell."""
    try:
        pw = pwd.getpwnam(name)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--home-dir", "/",
             "--shell", LOGIN_SHELL, "--password", "*", "--comment", comment, name],
            check=True,
        )  # fmt: skip
        return pwd.getpwnam(name), True
    assert pw.pw_shell == LOGIN_SHELL, f"{name} exists with the shell {pw.pw_shell}"
    return pw, False


def remove_user(name: str) -> None:
    """userdel, once the user's last process (a driver exiting) is gone."""
    deadline = time.monotonic() + 10
    while subprocess.run(["userdel", name], capture_output=True).returncode == 8:
        assert time.monotonic() < deadline, f"{name} still has processes"
        time.sleep(0.1)


def install(mode: str, prefix: Path, build: str = "priv/epcapd") -> str:
    """`make install` of `build` in `mode` into `prefix`, for GROUP; its output."""
    return subprocess.run(
        ["make", "-s", "-C", str(ROOT), "install", f"PRIVMODE={mode}", f"PREFIX={prefix}",
         f"GROUP={GROUP}", f"INSTALL_FROM={build}",
         "TEST_INSTALL=1"],  # a temporary prefix: a SANITIZE=1 or test-hook build may go there
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip


@contextlib.contextmanager
def installed(helpers_top: str, build: str) -> Iterator[dict[str, Path]]:
    """A helper of `build` installed in each mode, with, for sudo, the
    sudoers drop-in that epcap-admin writes; `make uninstall`ed at the end,
    which must leave nothing behind."""
    top = Path(tempfile.mkdtemp(prefix=helpers_top, dir="/var/tmp"))
    top.chmod(0o755)
    helpers = {}
    try:
        for mode in MODES:
            out = install(mode, top / mode, build)
            helpers[mode] = top / mode / "lib" / "epcap" / "epcapd"
            assert f"usermod -aG {GROUP} " in out
            if mode == "sudo":
                assert f"%{GROUP} ALL=(root) NOPASSWD: {helpers[mode]}" in out
        yield helpers
    finally:
        for mode in MODES:
            subprocess.run(["make", "-s", "-C", str(ROOT), "uninstall", f"PREFIX={top / mode}"],
                           check=True, capture_output=True)  # fmt: skip
        left = [str(p) for p in top.rglob("*")]
        top.rmdir()
        assert left == [], f"make uninstall left {left}"


def as_user(account: pwd.struct_passwd, groups: str = "") -> list[str]:
    """The command prefix that runs as `account`, with its groups (or the gids in `groups`)."""
    grouping = f"--groups={groups}" if groups else "--init-groups"
    return [SETPRIV, f"--reuid={account.pw_uid}", f"--regid={account.pw_gid}", grouping]


class AsUser:
    """The driver running as the unprivileged user, one JSON line at a time."""

    def __init__(
        self, user: pwd.struct_passwd, options: dict[str, Any], path: str, groups: str,
        python: str = sys.executable,
    ) -> None:  # fmt: skip
        env = {"PATH": path, "HOME": "/", "PYTHONDONTWRITEBYTECODE": "1", "LANG": "C.UTF-8"}
        self.proc = subprocess.Popen(
            [*as_user(user, groups), python, str(DRIVER), json.dumps(options)],
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
    account: pwd.struct_passwd, /, path: str = "/usr/bin:/bin", groups: str = "",
    python: str = sys.executable, **options: Any,
) -> tuple[AsUser, dict[str, Any]]:  # fmt: skip
    """Start the driver as `account` (with its groups, or the gids listed in
    `groups`), in `python`, with epcap `options`; return its first event."""
    driver = AsUser(account, options, path, groups, python)
    event = driver.next()
    if event["event"] == "error":
        assert driver.proc.wait(10) == 0  # the driver ends after reporting; reap it
    return driver, event


def mode_options(mode: str, helpers: dict[str, Path]) -> dict[str, Any]:
    """epcap.start() options that use the helper installed in `mode`
    ("none": the source tree's unprivileged build)."""
    if mode == "none":
        return {"progname": str(HELPER)}
    options: dict[str, Any] = {"progname": str(helpers[mode])}
    if mode == "sudo":
        options["exec"] = "sudo -n"
    return options


def helper_command(mode: str, helper: Path | str, *args: str) -> list[str]:
    """The helper's own command line in `mode`, as a client without epcap runs it."""
    return [*(["sudo", "-n"] if mode == "sudo" else []), str(helper), *args]


def raw(
    account: pwd.struct_passwd,
    command: Sequence[str],
    *,
    stdin: int | IO[Any] | None = subprocess.PIPE,
    stdout: int | IO[Any] | None = subprocess.PIPE,
    env: dict[str, str] | None = None,
    pass_fds: Sequence[int] = (),
    timeout: float = 20,
) -> tuple[int, list[Any]]:
    """Run `command` as `account` under a shell of that user (the helper's
    client: the process whose exit ends it) and decode what it wrote with
    the client's own decoder: (exit status, events). stdin is by default a
    pipe at its end: the stop request."""
    shell = ["/bin/sh", "-c", '"$@"; exit $?', "sh", *command]  # not exec: sh stays the parent
    proc = subprocess.run(
        [*as_user(account), *shell], stdout=stdout, stderr=subprocess.PIPE,
        **({"input": b""} if stdin == subprocess.PIPE else {"stdin": stdin}),
        env=env if env is not None else {"PATH": "/usr/bin:/bin"}, pass_fds=pass_fds,
        timeout=timeout, cwd="/",
    )  # fmt: skip
    return proc.returncode, Session().receive(proc.stdout) if proc.stdout else []


def processes_of(*binaries: Path | str) -> set[int]:
    """Pids of live processes executing one of `binaries`."""
    targets = {os.path.realpath(b) for b in binaries}
    pids = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.readlink(f"/proc/{entry}/exe") in targets:
                    pids.add(int(entry))
            except OSError:
                continue
    return pids


def wait_gone(pids: set[int], seconds: float) -> set[int]:
    """The pids of `pids` still alive (not zombies) after up to `seconds`."""
    deadline = time.monotonic() + seconds
    while True:
        alive = set()
        for pid in pids:
            with contextlib.suppress(OSError):
                state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
                if state != "Z":
                    alive.add(pid)
        if not alive or time.monotonic() >= deadline:
            return alive
        time.sleep(0.05)

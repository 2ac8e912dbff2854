"""Where the helper is and how it gets its privilege (DESIGN.md, Process model).

The command that runs the helper is ``prefix + [helper] + options.argv()``.
The prefix is, in this order: ``exec=`` (or ``$EPCAP_EXEC``) when given; nothing when this process
is root, or when the helper is setuid root or carries file capabilities;
``sudo -n`` (a NOPASSWD rule, ``sudoers.example``) when sudo is installed; and
for reading a file, which needs no privilege, nothing at all.
"""

from __future__ import annotations

import os
import shlex
import shutil
import stat
import sys
from collections.abc import Sequence
from pathlib import Path

from ._errors import HelperNotFoundError, PermissionDeniedError

HELPER_NAME = "epcapd"
ENV_HELPER = "EPCAPD"
"""Environment variable naming the helper binary, tried after ``progname=``."""
ENV_EXEC = "EPCAP_EXEC"
"""Environment variable holding the command prefix, tried after ``exec=``."""


def _candidates() -> list[Path]:
    here = Path(__file__).resolve().parent
    return [
        here.parent.parent / "priv" / HELPER_NAME,  # source tree: client/epcap -> priv/
        Path(sys.prefix) / "lib" / "epcap" / HELPER_NAME,
        Path("/usr/local/lib/epcap") / HELPER_NAME,
        Path("/usr/lib/epcap") / HELPER_NAME,
    ]


def find_helper(progname: str | os.PathLike[str] | None = None) -> str:
    """The path of the helper: ``progname``, ``$EPCAPD``, the source tree's
    ``priv/epcapd``, the install locations, then ``epcapd`` on ``PATH``."""
    given = progname if progname is not None else os.environ.get(ENV_HELPER)
    if given is not None:
        path = shutil.which(os.fspath(given))
        if path is None:
            raise HelperNotFoundError(f"helper {os.fspath(given)!r} is not an executable file")
        return os.path.abspath(path)
    for candidate in _candidates():
        if os.access(candidate, os.X_OK) and candidate.is_file():
            return str(candidate)
    found = shutil.which(HELPER_NAME)
    if found is not None:
        return os.path.abspath(found)
    places = ", ".join(str(c) for c in _candidates())
    raise HelperNotFoundError(
        f"cannot find the {HELPER_NAME} helper (looked in {places} and PATH): "
        f"run `make build` in the source tree, or pass progname="
    )


def privileged_helper(helper: str) -> bool:
    """True when the helper gets privilege by itself: setuid root or file caps."""
    st = os.stat(helper)
    if st.st_uid == 0 and st.st_mode & stat.S_ISUID:
        return True
    try:
        return bool(os.getxattr(helper, "security.capability"))
    except OSError:
        return False


def exec_prefix(helper: str, *, live: bool, exec_: str | Sequence[str] | None) -> list[str]:
    """The command prefix that gives the helper its privilege (see module doc)."""
    if exec_ is None:
        exec_ = os.environ.get(ENV_EXEC)
    if exec_ is not None:
        return shlex.split(exec_) if isinstance(exec_, str) else list(exec_)
    if os.geteuid() == 0 or privileged_helper(helper):
        return []
    if not live:
        return []  # reading a file needs no privilege: the user's own rights
    if shutil.which("sudo") is not None:
        return ["sudo", "-n"]
    raise PermissionDeniedError(
        f"live capture needs privilege and none is available for {helper}: "
        "run as root, or give the helper privilege (see README, 'Privilege modes'), "
        "or pass exec= a command prefix that runs it as root",
        op="privilege",
        errno="EPERM",
    )


def sudo_refused(prefix: Sequence[str], stderr: str) -> bool:
    """True when sudo itself refused to run the helper (no NOPASSWD rule)."""
    return bool(prefix) and os.path.basename(prefix[0]) == "sudo" and "sudo:" in stderr

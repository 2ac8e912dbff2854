"""Where the helper is and how it gets its privilege (docs/ARCHITECTURE.md).

The helper is, in this order: ``progname=`` or ``$EPCAPD``; one that
``epcap-admin install`` put in ``/usr/local/lib/epcap`` or
``/usr/lib/epcap`` (privileged: live captures need it); the one this
package carries (``epcap/libexec/epcapd``, built with the wheel: it runs
with your own rights, enough for files); a source tree's ``priv/epcapd``;
``epcapd`` on ``PATH``. Root tries the source tree first.

The command that runs the helper is ``prefix + [helper] + options.argv()``.
The prefix is, in this order: ``exec=`` (or ``$EPCAP_EXEC``) when given; nothing when this process
is root, or when the helper is setuid root or carries file capabilities;
``sudo -n`` (a NOPASSWD rule, ``sudoers.example``) when sudo is installed; and
for reading a file, which needs no privilege, nothing at all.
"""

from __future__ import annotations

import grp
import os
import pwd
import shlex
import shutil
import signal
import stat
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ._errors import EpcapError, HelperExitedError, HelperNotFoundError, PermissionDeniedError

HELPER_NAME = "epcapd"
ENV_HELPER = "EPCAPD"
"""Environment variable naming the helper binary, tried after ``progname=``."""
ENV_EXEC = "EPCAP_EXEC"
"""Environment variable holding the command prefix, tried after ``exec=``."""


PACKAGED = Path(__file__).resolve().parent / "libexec" / HELPER_NAME
"""The helper the wheel carries."""
_SOURCE_TREE = Path(__file__).resolve().parent.parent.parent
FIX = "as root, run `epcap-admin install --mode caps` (or --mode setuid, or --mode sudo)"
"""What makes live capture work: the privileged install."""


def _installed() -> list[Path]:
    return [Path("/usr/local/lib/epcap") / HELPER_NAME, Path("/usr/lib/epcap") / HELPER_NAME]


def _candidates() -> list[Path]:
    """Root prefers a source tree's build; anyone else the installed,
    root-owned helper that a setuid bit, capabilities or a sudo rule cover."""
    source = _SOURCE_TREE / "priv" / HELPER_NAME
    installed = _installed()
    if os.geteuid() == 0:
        return [source, *installed, PACKAGED]
    return [*installed, PACKAGED, source]


def _not_yours(path: Path) -> str:
    """What to do about a helper that exists but this user may not run
    (``epcap-admin install`` makes it ``root:GROUP``, mode 0750); "" otherwise."""
    try:
        st = path.stat()
    except OSError:
        return ""
    if not stat.S_ISREG(st.st_mode) or os.access(path, os.X_OK):
        return ""
    try:
        group = grp.getgrgid(st.st_gid).gr_name
    except KeyError:
        group = str(st.st_gid)
    user = pwd.getpwuid(os.getuid()).pw_name
    return (
        f"{path} is for the members of group {group}: as root, run "
        f"`usermod -aG {group} {user}`, then log in again"
    )


def _group_advice() -> str:
    """The advice of :func:`_not_yours` for the first installed helper it concerns."""
    for path in _installed():
        advice = _not_yours(path)
        if advice:
            return f" The installed helper {advice}."
    return ""


def find_helper(progname: str | os.PathLike[str] | None = None) -> str:
    """The path of the helper: ``progname``, ``$EPCAPD``, then the installed
    helpers, the one the wheel carries and a source tree's ``priv/epcapd``
    (the source tree first for root), then ``epcapd`` on ``PATH``."""
    if progname is not None and not isinstance(progname, (str, os.PathLike)):
        raise TypeError(f"progname must be a string or path, not {type(progname).__name__}")
    given = progname if progname is not None else os.environ.get(ENV_HELPER)
    if given is not None:
        path = shutil.which(os.fspath(given))
        if path is None:
            refused = _not_yours(Path(os.fspath(given)))
            if refused:
                raise HelperNotFoundError(f"you may not run the helper: {refused}")
            raise HelperNotFoundError(f"helper {os.fspath(given)!r} is not an executable file")
        return os.path.abspath(path)
    for candidate in _candidates():
        if os.access(candidate, os.X_OK) and candidate.is_file():
            return str(candidate)
    found = shutil.which(HELPER_NAME)
    if found is not None:
        return os.path.abspath(found)
    places = ", ".join(str(c) for c in _candidates())
    fix = (
        "run `make build` in the source tree"
        if (_SOURCE_TREE / "epcapd" / "epcapd.c").is_file()
        else "reinstall epcap with pip (its wheel carries the helper)"
    )
    raise HelperNotFoundError(
        f"cannot find the {HELPER_NAME} helper (looked in {places} and PATH): {fix}, "
        "or pass progname="
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


def exec_words(exec_: str | Sequence[str]) -> list[str]:
    """The words of ``exec=``: a string split as a shell would, or a
    sequence of strings; TypeError otherwise."""
    words = shlex.split(exec_) if isinstance(exec_, str) else list(exec_)
    if not all(isinstance(word, str) for word in words):
        raise TypeError("exec must be a string or a sequence of strings")
    return words


def exec_prefix(helper: str, *, live: bool, exec_: str | Sequence[str] | None) -> list[str]:
    """The command prefix that gives the helper its privilege (see module doc)."""
    if exec_ is None:
        exec_ = os.environ.get(ENV_EXEC)
    if exec_ is not None:
        return exec_words(exec_)
    if os.geteuid() == 0 or privileged_helper(helper):
        return []
    if not live:
        return []  # reading a file needs no privilege: the user's own rights
    if shutil.which("sudo") is not None:
        return ["sudo", "-n"]
    raise PermissionDeniedError(
        f"a live capture needs privilege, and {helper} has none (not setuid root, "
        f"no file capabilities, no sudo): {FIX}; or pass exec= a command prefix that "
        "runs the helper as root." + _group_advice(),
        op="privilege",
        errno="EPERM",
    )


def sudo_refusal(prefix: Sequence[str], helper: str, stderr: str) -> PermissionDeniedError | None:
    """The error to raise when sudo itself refused to run the helper, naming
    the rule that would allow it (only for a helper that such a rule cannot
    give root away through); None when sudo was not the refuser."""
    if not prefix or os.path.basename(prefix[0]) != "sudo" or "sudo:" not in stderr:
        return None
    from .admin import others_can_replace  # epcap.admin runs as a script too: import it late

    unsafe = others_can_replace(helper)
    if unsafe is not None:
        advice = (
            f"No sudoers rule should name {helper}: {unsafe}, so whoever can replace it "
            f"would run it as root. Install one for live capture: {FIX}."
        )
    else:
        user = pwd.getpwuid(os.getuid()).pw_name
        advice = (
            "As root, allow it with `visudo -f /etc/sudoers.d/epcap` and this line "
            f"(see sudoers.example): {user} ALL=(root) NOPASSWD: {helper}"
        )
    return PermissionDeniedError(
        f"sudo refused to run the helper ({stderr}). {advice}" + _group_advice(),
        op="sudo",
        errno="EPERM",
    )


Explain = Callable[[int | None, str, bool], EpcapError | None]
"""Why a helper ended without a word on stdout, from its exit status, its
stderr and whether it was still starting; None: nothing special to say."""


@dataclass(frozen=True)
class Launch:
    """How one helper runs: the command (``argv``), the ``host`` it runs on
    (None: this one), ``explain`` for a silent exit, and, for a helper that
    cannot see its client go (over a network), ``keepalive``: seconds
    between the keepalive commands that keep it alive."""

    argv: list[str]
    host: str | None = None
    explain: Explain | None = None
    keepalive: float | None = None

    @property
    def where(self) -> str:
        """ " on host x" for a remote helper, "" for a local one (messages)."""
        return f" on host {self.host}" if self.host else ""

    def exit_error(
        self, returncode: int | None, stderr: str, when: str, *, starting: bool
    ) -> EpcapError:
        """The error of a helper that exited without a word on stdout,
        ``when`` ("before 'ready'"), ``starting`` or not."""
        special = self.explain(returncode, stderr, starting) if self.explain else None
        if special is not None:
            return special
        detail = f": {stderr}" if stderr else ""
        error = HelperExitedError(
            f"the helper{self.where} {describe_exit(returncode)} {when}{detail}",
            returncode=returncode,
            stderr=stderr,
        )
        error.host = self.host
        return error


def describe_exit(returncode: int | None) -> str:
    """'exited with status 1', 'was killed by SIGKILL', 'did not exit'."""
    if returncode is None:
        return "did not exit"
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return f"was killed by {name}"
    return f"exited with status {returncode}"


def local_launch(prefix: list[str], helper: str, argv: list[str]) -> Launch:
    """The helper on this host, behind its privilege ``prefix``; a silent
    exit while starting may be sudo's refusal."""

    def explain(returncode: int | None, stderr: str, starting: bool) -> EpcapError | None:
        return sudo_refusal(prefix, helper, stderr) if starting else None

    return Launch([*prefix, helper, *argv], explain=explain)

"""Captures on other hosts: the helper installed there, run through OpenSSH.

``epcap.start(host="[user@]host[:port]", ...)`` runs, instead of the local
helper::

    ssh -T -o BatchMode=yes -o ConnectTimeout=5 -o ServerAliveInterval=1
        -o ServerAliveCountMax=3 [ssh_options] [-p port] [user@]host -- COMMAND

with the user's own ssh configuration, keys and known hosts (``ssh_options``
add to them; epcap never asks for a password). ``COMMAND``, run by the
remote login shell, is :data:`SCRIPT` under ``/bin/sh``: it finds the
helper (``progname=``, else where ``epcap-admin install`` puts it), chooses
its privilege as a local start would (root, or a setuid or file-capability
helper, runs directly; otherwise ``sudo -n`` where a NOPASSWD rule allows
the helper; ``exec=`` overrides), and execs it with the capture's
arguments, each quoted for the shell. Nothing else runs on the remote host.

The helper's stdio is the ssh session's: when the client exits or is
killed, or the session is killed, its stdin ends and it stops. A network
that goes silent tells neither side; so the remote helper runs with ``-k``
(:data:`IDLE_LIMIT_MS`): it ends when its stdin stays silent that long, and
the client sends a ``keepalive`` command every :data:`KEEPALIVE` seconds;
ssh itself gives up on a server that stops answering within
:data:`SERVER_ALIVE` seconds.

Pure code: parsing, the command, and what ssh's exit says.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass

from ._errors import (
    AuthenticationError,
    EpcapError,
    HelperExitedError,
    HostKeyError,
    HostUnreachableError,
    RemoteHelperNotFoundError,
)
from ._launch import Launch, exec_words

DEFAULT_HELPER = "/usr/local/lib/epcap/epcapd"
"""Where ``epcap-admin install`` puts the helper on a host (its default prefix)."""
KEEPALIVE = 1.0
"""Seconds between the client's keepalive commands."""
IDLE_LIMIT_MS = 3000
"""A remote helper whose stdin is silent this long ends (``-k``): a client
lost behind a dead network sends nothing, a live one a keepalive a second."""
SERVER_ALIVE = 3
"""ssh's own keepalive: it gives up after this many seconds without an
answer from the server (ServerAliveInterval=1 times ServerAliveCountMax)."""
SSH_OPTIONS = (
    "-T",
    "-o", "BatchMode=yes",
    "-o", "ConnectTimeout=5",
    "-o", "ServerAliveInterval=1",
    "-o", f"ServerAliveCountMax={SERVER_ALIVE}",
)  # fmt: skip
"""What every remote capture asks of ssh: no terminal, never a prompt, a
bounded connect, a lost server noticed."""

SCRIPT = r"""
mode=$1 h=$2 prefix=$3; shift 3
here=$(uname -n) me=$(id -un)
if [ ! -e "$h" ]; then
  echo "epcap: no helper $h on $here: install one there" \
    "(as root: epcap-admin install), or pass progname=" >&2
  exit 127
fi
if [ ! -x "$h" ]; then
  echo "epcap: $me may not run $h on $here: as root there," \
    "add $me to its group ($(stat -c %G "$h" 2>/dev/null))" >&2
  exit 126
fi
if [ "$mode" = live ] && [ -n "${SSH_CONNECTION:-}" ]; then
  read -r c cp s sp <<.
$SSH_CONNECTION
.
  set -- -x "not (tcp and host ${c%%%*} and port $cp and host ${s%%%*} and port $sp)" "$@"
fi
if [ "$prefix" = "?auto" ]; then
  prefix=
  if [ "$mode" != file ] && [ "$(id -u)" != 0 ] && [ ! -u "$h" ] &&
    sudo -n -l "$h" >/dev/null 2>&1; then
    prefix="sudo -n"
  fi
fi
eval "exec $prefix \"\$h\" \"\$@\""
"""
"""The remote side, under /bin/sh: ``MODE HELPER PREFIX ARGS...``, ``MODE``
live, file or list (``-D``); ``PREFIX`` :data:`AUTO`
chooses it (a setuid helper, file capabilities and root need none;
sudo -n if a NOPASSWD rule names the helper), else it is the words of
``exec=``, shell-quoted (the script evals them, so a word keeps its spaces).
A live capture leaves out its own ssh connection (sshd's
``SSH_CONNECTION``), through the helper's ``-x``, which joins every filter,
``set_filter``'s included: else capturing where the connection runs would
capture its own packets, which travel back and are captured again."""
AUTO = "?auto"
"""``PREFIX`` that asks the script to choose: no shell-quoted ``exec=`` can
equal it (shlex quotes a word with ``?``)."""
MISSING, NOT_YOURS = 127, 126
"""The script's exit statuses: no helper there; one the remote user may not run."""


@dataclass(frozen=True)
class Target:
    """``[user@]host[:port]``, with an IPv6 address in brackets (``[::1]:22``)."""

    host: str
    user: str | None = None
    port: int | None = None

    @classmethod
    def parse(cls, text: object) -> Target:
        """The target of ``host=``; TypeError or ValueError for a bad one."""
        if not isinstance(text, str):
            raise TypeError(f"host must be a string, not {type(text).__name__}")
        match = _TARGET.fullmatch(text)
        if match is None:
            raise ValueError(f"host must be [user@]host[:port] (IPv6 in brackets), not {text!r}")
        user, bracketed, plain, port = match.groups()
        number = int(port) if port is not None else None
        if number is not None and not 1 <= number <= 65535:
            raise ValueError(f"host: port {number} is not from 1 to 65535")
        return cls(bracketed or plain, user, number)

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        user = f"{self.user}@" if self.user else ""
        port = f":{self.port}" if self.port is not None else ""
        return f"{user}{host}{port}"


_NAME = r"[A-Za-z0-9_][A-Za-z0-9_.%+-]*"
_TARGET = re.compile(
    rf"(?:({_NAME})@)?(?:\[([0-9A-Fa-f:.%A-Za-z]+)\]|([A-Za-z0-9_][A-Za-z0-9_.-]*))(?::(\d+))?"
)


def ssh_options(value: object) -> list[str]:
    """``ssh_options=``: a sequence of arguments for ssh, or a string split
    as the shell would; TypeError or ValueError for bad ones."""
    if value is None:
        return []
    words = shlex.split(value) if isinstance(value, str) else value
    if not isinstance(words, (list, tuple)) or not all(isinstance(w, str) for w in words):
        raise TypeError("ssh_options must be a string or a sequence of strings")
    for word in words:
        if "\0" in word:
            raise ValueError("ssh_options must not contain NUL characters")
    return list(words)


def launch(
    target: Target,
    argv: Sequence[str],
    *,
    live: bool,
    helper: str | None,
    options: Sequence[str],
    exec_: str | Sequence[str] | None,
    capture: bool = True,
) -> Launch:
    """The :class:`~epcap._launch.Launch` of a helper on ``target``, with
    the arguments ``argv``; a ``capture`` gets the idle limit and
    keepalives (``-D`` takes no more options and ends by itself)."""
    prefix = AUTO if exec_ is None else shlex.join(exec_words(exec_))
    idle = ["-k", str(IDLE_LIMIT_MS)] if capture else []
    mode = ("live" if live else "file") if capture else "list"
    remote = [
        "exec", "/bin/sh", "-c", SCRIPT, "epcap", mode, helper or DEFAULT_HELPER, prefix,
        *idle, *argv,
    ]  # fmt: skip
    port = ["-p", str(target.port)] if target.port is not None else []
    login = f"{target.user}@{target.host}" if target.user else target.host
    command = ["ssh", *SSH_OPTIONS, *options, *port, login, "--", shlex.join(remote)]
    name = str(target)

    def explain(returncode: int | None, stderr: str, starting: bool) -> EpcapError | None:
        return failure(name, returncode, stderr)

    return Launch(command, host=name, explain=explain, keepalive=KEEPALIVE if capture else None)


_AUTH = ("Permission denied", "Too many authentication failures", "no mutual signature")
_HOST_KEY = ("Host key verification failed", "REMOTE HOST IDENTIFICATION HAS CHANGED")


def failure(host: str, returncode: int | None, stderr: str) -> EpcapError | None:
    """The error of a remote helper that ended without a word on stdout,
    from ssh's exit status and what ssh (or the remote side) wrote on
    stderr; None when it is not ssh's or the installation's doing (the
    helper's own exit status, which ssh passes on)."""
    said = _last_words(stderr)
    if returncode == 255 and not said:  # the remote command was killed: ssh says no more
        error = HelperExitedError(
            f"the helper on host {host} was killed by a signal (ssh does not say which)",
            returncode=returncode,
        )
        error.host = host
        return error
    if returncode == 255:  # ssh's own failure: it never reached, or lost, the host
        message = said if said.startswith(host) else f"{host}: {said}"
        if any(mark in stderr for mark in _HOST_KEY):
            return HostKeyError(message, host=host, returncode=returncode)
        if any(mark in stderr for mark in _AUTH):
            return AuthenticationError(message, host=host, returncode=returncode)
        return HostUnreachableError(message, host=host, returncode=returncode)
    if returncode in (MISSING, NOT_YOURS) and "epcap: " in stderr:
        return RemoteHelperNotFoundError(said, host=host, returncode=returncode)
    return None


def _last_words(stderr: str) -> str:
    """ssh's and the remote side's message: its meaningful lines, joined
    (ssh prefixes warnings and banners that say nothing of the failure)."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    kept = [line for line in lines if not line.startswith(("Warning: Permanently added", "@@@"))]
    return "; ".join(kept[-3:])

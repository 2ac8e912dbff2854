"""The remote capture's pure parts, without ssh: `host=` and `ssh_options=`
checked before anything runs, the ssh command line, the remote script
(run here under /bin/sh, with a stand-in helper that prints what it got),
and what ssh's exit status and words become."""

from __future__ import annotations

import os
import shlex
import stat
import subprocess
from pathlib import Path

import pytest

import epcap
from epcap import _remote
from epcap._core import prepare


@pytest.mark.parametrize(
    "text, parsed",
    [
        ("edge1", ("edge1", None, None)),
        ("ops@edge1.example.org", ("edge1.example.org", "ops", None)),
        ("ops@10.0.0.2:2222", ("10.0.0.2", "ops", 2222)),
        ("[2001:db8::1]:22", ("2001:db8::1", None, 22)),
        ("ops@[fe80::1%eth0]", ("fe80::1%eth0", "ops", None)),
    ],
)
def test_a_host_parses(text: str, parsed: tuple[str, str | None, int | None]) -> None:
    target = _remote.Target.parse(text)
    assert (target.host, target.user, target.port) == parsed
    assert str(target) == text


@pytest.mark.parametrize(
    "bad", ["", "-oProxyCommand=x", "a b", "@host", "host:", "host:0", "host:65536", "[::1",
            "user@@host", "host;id"],
)  # fmt: skip
def test_a_bad_host_is_refused_before_anything_runs(bad: str) -> None:
    with pytest.raises(ValueError, match="host"):
        epcap.start(host=bad, interface="eth0")


def test_bad_remote_options_are_refused_before_anything_runs() -> None:
    with pytest.raises(TypeError, match="host must be a string"):
        epcap.start(host=5, interface="eth0")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="ssh_options: for captures on another host"):
        epcap.start(interface="lo", ssh_options=["-v"])
    with pytest.raises(TypeError, match="ssh_options"):
        epcap.start(host="h", interface="eth0", ssh_options=[1])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="NUL"):
        epcap.start(host="h", interface="eth0", ssh_options=["-o\0x"])


def test_the_ssh_command() -> None:
    options, launch = prepare(
        {
            "host": "ops@edge1:2222",
            "interface": "eth0",
            "filter": "udp port 53",
            "ssh_options": "-i /k -o 'ProxyJump=bastion'",
            "cpu_affinity": "0-63",
        }
    )  # fmt: skip  (the remote host's CPUs are not this one's: no local check)
    argv = launch.argv
    assert argv[:12] == [
        "ssh", "-T", "-o", "BatchMode=yes", "-o", "ConnectTimeout=5",
        "-o", "ServerAliveInterval=1", "-o", f"ServerAliveCountMax={_remote.SERVER_ALIVE}",
        "-i", "/k",
    ]  # fmt: skip
    assert argv[12:18] == ["-o", "ProxyJump=bastion", "-p", "2222", "ops@edge1", "--"]
    remote = shlex.split(argv[18])  # what the remote login shell sees
    assert remote[:4] == ["exec", "/bin/sh", "-c", _remote.SCRIPT]
    assert remote[4:8] == ["epcap", "live", _remote.DEFAULT_HELPER, _remote.AUTO]
    assert remote[8:] == ["-k", str(_remote.IDLE_LIMIT_MS), *options.argv()]
    assert remote[-2:] == ["--", "udp port 53"]
    assert (launch.host, launch.keepalive) == ("ops@edge1:2222", _remote.KEEPALIVE)


@pytest.fixture
def stand_in(tmp_path: Path) -> Path:
    """A "helper" that prints its arguments, one a line."""
    path = tmp_path / "epcapd"
    path.write_text('#!/bin/sh\nfor a in "$@"; do printf "%s\\n" "$a"; done\n')
    path.chmod(0o755)
    return path


def script(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["/bin/sh", "-c", _remote.SCRIPT, "epcap", *args],
        capture_output=True, text=True, env={"PATH": os.environ["PATH"], **(env or {})},
    )  # fmt: skip


def test_the_script_leaves_out_its_own_connection(stand_in: Path) -> None:
    done = script("live", str(stand_in), "", "-i", "eth0", "--", "udp",
                  env={"SSH_CONNECTION": "10.0.0.1 40022 10.0.0.2 22"})  # fmt: skip
    assert done.stdout.splitlines() == [
        "-x", "not (tcp and host 10.0.0.1 and port 40022 and host 10.0.0.2 and port 22)",
        "-i", "eth0", "--", "udp",
    ]  # fmt: skip
    # a link-local address's scope goes (libpcap's "host" takes none); a file gets no -x
    done = script("live", str(stand_in), "", "--",
                  env={"SSH_CONNECTION": "fe80::1%eth0 5 fe80::2%eth0 22"})  # fmt: skip
    assert done.stdout.splitlines()[1] == (
        "not (tcp and host fe80::1 and port 5 and host fe80::2 and port 22)"
    )
    done = script("file", str(stand_in), "", "-r", "x", env={"SSH_CONNECTION": "a 1 b 2"})
    assert done.stdout.splitlines() == ["-r", "x"]


def test_the_script_chooses_the_prefix(stand_in: Path) -> None:
    """An exec= prefix is used as given, each word whole; AUTO without a
    sudo rule or a setuid bit runs the helper directly (the machine's sudo
    -l decides)."""
    done = script("live", str(stand_in), "env", "--")
    assert done.returncode == 0 and done.stdout.splitlines() == ["--"]
    done = script("live", str(stand_in), _remote.AUTO, "-i", "x")
    assert done.stdout.splitlines() == ["-i", "x"]
    # the words as launch() sends them: one with spaces, quotes and a $ stays one word
    _, launch = prepare(
        {"host": "h", "interface": "x", "exec": ["sh", "-c", 'echo "$0"; exec "$@"', "a 'b' $c"]}
    )
    prefix = shlex.split(shlex.split(launch.argv[-1])[7])
    assert prefix == ["sh", "-c", 'echo "$0"; exec "$@"', "a 'b' $c"]
    done = script("live", str(stand_in), shlex.join(prefix), "-i", "x")
    assert done.returncode == 0 and done.stdout.splitlines() == ["a 'b' $c", "-i", "x"]


def test_the_script_says_what_is_missing(tmp_path: Path, stand_in: Path) -> None:
    done = script("live", str(tmp_path / "none"), "auto")
    assert done.returncode == _remote.MISSING
    assert done.stderr.startswith(f"epcap: no helper {tmp_path / 'none'} on ")
    stand_in.chmod(stat.S_IRUSR)  # not runnable: as when the group is not the user's
    if os.geteuid() != 0:  # root runs anything, whatever its mode
        done = script("live", str(stand_in), "auto")
        assert done.returncode == _remote.NOT_YOURS and "may not run" in done.stderr


@pytest.mark.parametrize(
    "returncode, stderr, expected",
    [
        (255, "user@h: Permission denied (publickey).", epcap.AuthenticationError),
        (255, "Received disconnect from 10.0.0.2 port 22:2: Too many authentication failures",
         epcap.AuthenticationError),
        (255, "No ED25519 host key is known for h and you have requested strict checking.\n"
              "Host key verification failed.", epcap.HostKeyError),
        (255, "@@@@@@@\n@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @\n"
              "Host key verification failed.", epcap.HostKeyError),
        (255, "ssh: Could not resolve hostname nowhere: Name or service not known",
         epcap.HostUnreachableError),
        (255, "ssh: connect to host h port 22: Connection refused", epcap.HostUnreachableError),
        (255, "Timeout, server h not responding.", epcap.HostUnreachableError),
        (255, "", epcap.HelperExitedError),  # the remote command was killed: ssh says no more
        (127, "epcap: no helper /x on h: install one there", epcap.RemoteHelperNotFoundError),
        (126, "epcap: ops may not run /x on h: ...", epcap.RemoteHelperNotFoundError),
        (1, "something else", type(None)),  # the helper's own exit: a local one's error
    ],
)  # fmt: skip
def test_what_ssh_says_becomes(returncode: int, stderr: str, expected: type) -> None:
    error = _remote.failure("ops@h", returncode, stderr)
    assert isinstance(error, expected)
    if error is not None:
        assert error.host == "ops@h"
        last = stderr.strip().splitlines()[-1] if stderr.strip() else "killed"
        assert last.split(": ", 1)[-1] in str(error)

"""The devices libpcap can capture on: :func:`interfaces`, through the helper
(``epcapd -D``: ``pcap_findalldevs``, under the installation's policy)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from . import _remote
from ._driver import START_TIMEOUT
from ._errors import EpcapError, ProtocolError, error_from_report
from ._launch import Launch, exec_prefix, find_helper, local_launch
from ._protocol import VERSION, FrameDecoder

IF_LOOPBACK, IF_UP, IF_RUNNING, IF_WIRELESS = 0x1, 0x2, 0x4, 0x8
"""libpcap's ``PCAP_IF_*`` flags."""
IF_CONNECTION_STATUS = 0x30
_CONNECTION = {0x00: "unknown", 0x10: "connected", 0x20: "disconnected", 0x30: "not applicable"}
_FLAG_NAMES = ((IF_UP, "Up"), (IF_RUNNING, "Running"), (IF_LOOPBACK, "Loopback"),
               (IF_WIRELESS, "Wireless"))  # fmt: skip
_STATUS_NAMES = {  # as tcpdump -D says it, by wireless or not; none when not applicable
    False: {0x00: "Connection status unknown", 0x10: "Connected", 0x20: "Disconnected"},
    True: {0x00: "Association status unknown", 0x10: "Associated", 0x20: "Not associated"},
}


@dataclass(frozen=True)
class Address:
    """One address of an interface: ``family`` ``"inet"``, ``"inet6"`` or
    ``"packet"`` (a link-layer address), as text."""

    family: str
    addr: str
    netmask: str | None = None
    broadaddr: str | None = None
    dstaddr: str | None = None


@dataclass(frozen=True)
class Interface:
    """A device libpcap found, as ``pcap_findalldevs`` describes it."""

    name: str
    description: str | None
    flags: int
    """libpcap's ``PCAP_IF_*`` bits; the properties below read them."""
    addresses: tuple[Address, ...]

    @property
    def up(self) -> bool:
        return bool(self.flags & IF_UP)

    @property
    def running(self) -> bool:
        return bool(self.flags & IF_RUNNING)

    @property
    def loopback(self) -> bool:
        return bool(self.flags & IF_LOOPBACK)

    @property
    def wireless(self) -> bool:
        return bool(self.flags & IF_WIRELESS)

    @property
    def connection(self) -> str:
        """``"connected"``, ``"disconnected"``, ``"not applicable"`` or ``"unknown"``."""
        return _CONNECTION[self.flags & IF_CONNECTION_STATUS]

    def describe(self) -> str:
        """The rest of ``tcpdump -D``'s line after the number:
        ``lo [Up, Running, Loopback]``."""
        text = self.name + (f" ({self.description})" if self.description else "")
        if not self.flags:
            return text
        names = [name for bit, name in _FLAG_NAMES if self.flags & bit]
        extra = _STATUS_NAMES[self.wireless].get(self.flags & IF_CONNECTION_STATUS)
        return f"{text} [{', '.join(names) or 'none'}{f', {extra}' if extra else ''}]"


def parse_listing(data: bytes) -> list[Interface]:
    """The helper's ``-D`` output: one ``interfaces`` frame, or ``error``
    (raised as its exception). Empty output is ProtocolError's to explain."""
    values, error = FrameDecoder().feed(data)
    if error is not None:
        raise error
    if len(values) != 1:
        raise ProtocolError(f"expected one frame from 'epcapd -D', got {len(values)}")
    message = values[0]
    if not isinstance(message, tuple) or len(message) != 2 or not isinstance(message[1], dict):
        raise ProtocolError("malformed interfaces frame")
    tag, body = message
    if tag == "error":
        raise error_from_report(body)
    if tag != "interfaces":
        raise ProtocolError(f"expected 'interfaces', got {tag!r}")
    if body.get("version") != VERSION:
        raise ProtocolError(
            f"the helper speaks protocol version {body.get('version')!r}, this client "
            f"speaks {VERSION}: install the helper of this epcap (as root: `epcap-admin install`)"
        )
    try:
        return [_interface(dev) for dev in body["devices"]]
    except (KeyError, TypeError, ValueError) as exc:
        raise ProtocolError(f"malformed interfaces frame: {exc!r}") from None


def _interface(dev: Mapping[str, Any]) -> Interface:
    name, description, flags = dev["name"], dev.get("description"), dev["flags"]
    if not isinstance(name, str) or type(flags) is not int:
        raise ValueError("a device needs a name and flags")
    if description is not None and not isinstance(description, str):
        raise ValueError("bad description")
    addresses = tuple(Address(**addr) for addr in dev.get("addresses", ()))
    return Interface(name, description, flags, addresses)


def _command(
    progname: str | os.PathLike[str] | None,
    exec_: str | Sequence[str] | None,
    host: str | None,
    ssh_options: str | Sequence[str] | None,
) -> Launch:
    if host is not None:
        remote_helper = None if progname is None else os.fspath(progname)
        return _remote.launch(
            _remote.Target.parse(host), ["-D"], live=True, helper=remote_helper,
            options=_remote.ssh_options(ssh_options), exec_=exec_, capture=False,
        )  # fmt: skip
    if ssh_options is not None:
        raise ValueError("ssh_options: for another host (host=) only")
    helper = find_helper(progname)
    return local_launch(exec_prefix(helper, live=True, exec_=exec_), helper, ["-D"])


def _result(launch: Launch, code: int | None, out: bytes, err: bytes) -> list[Interface]:
    if out:
        return parse_listing(out)
    stderr = err.decode(errors="replace").strip()
    raise launch.exit_error(code, stderr, "without listing interfaces", starting=True)


def interfaces(
    *,
    progname: str | os.PathLike[str] | None = None,
    exec: str | Sequence[str] | None = None,
    host: str | None = None,
    ssh_options: str | Sequence[str] | None = None,
) -> list[Interface]:
    """Every device libpcap finds that this installation lets you capture
    on (root sees all), in libpcap's order: name, description, addresses and
    flags. Runs the helper with the privilege of a live capture (``progname``,
    ``exec``, ``host`` and ``ssh_options`` as for :func:`epcap.start`: on
    another host, its devices); raises an :class:`~epcap.EpcapError` within
    30 s, leaving no process behind."""
    launch = _command(progname, exec, host, ssh_options)
    argv = launch.argv
    try:
        done = subprocess.run(
            argv, input=b"", capture_output=True, timeout=START_TIMEOUT, start_new_session=True
        )
    except subprocess.TimeoutExpired:
        raise ProtocolError(f"'epcapd -D' did not answer in {START_TIMEOUT:.0f} s") from None
    except OSError as exc:
        raise EpcapError(f"cannot run {argv[0]!r}: {exc.strerror}") from None
    return _result(launch, done.returncode, done.stdout, done.stderr)


async def interfaces_async(
    *,
    progname: str | os.PathLike[str] | None = None,
    exec: str | Sequence[str] | None = None,
    host: str | None = None,
    ssh_options: str | Sequence[str] | None = None,
) -> list[Interface]:
    """:func:`interfaces` for asyncio: the helper runs as an asyncio subprocess."""
    launch = _command(progname, exec, host, ssh_options)
    argv = launch.argv
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
    except OSError as exc:
        raise EpcapError(f"cannot run {argv[0]!r}: {exc.strerror}") from None
    try:
        async with asyncio.timeout(START_TIMEOUT):
            out, err = await proc.communicate(b"")
    except TimeoutError:
        await _kill(proc)
        raise ProtocolError(f"'epcapd -D' did not answer in {START_TIMEOUT:.0f} s") from None
    except BaseException:
        await _kill(proc)
        raise
    return _result(launch, proc.returncode, out, err)


async def _kill(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            proc.kill()
        await asyncio.shield(proc.wait())

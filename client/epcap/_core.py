"""What the sync and asyncio shells share: starting a helper, moving its
bytes once a shell has waited, reaping it.

What the bytes mean is decided by :class:`~epcap._protocol.Session`; what
the capture does (queue, answer, end, every deadline) by
:class:`~epcap._driver.Driver`. Ending a helper always goes the same way:
close its stdin (the stop request), read what it still sends within a
bound, close the pipes, wait, then terminate, then kill, and reap.
"""

from __future__ import annotations

import contextlib
import operator
import os
import queue
import socket
import subprocess
import threading
import warnings
from collections.abc import Mapping, Sequence
from typing import IO, Any, TypedDict

from . import _remote
from ._driver import STOP_TIMEOUT, Driver, Io, Phase
from ._errors import HelperNotFoundError
from ._launch import Launch, exec_prefix, find_helper, local_launch
from ._options import MAX_SNAPLEN, Options, _text


class StartOptions(TypedDict, total=False):
    """The options of :func:`epcap.start` and :func:`epcap.start_async`.

    ``interface`` (libpcap's first device when neither it nor ``file`` is
    given) or ``file`` (pcap/pcapng); ``filter``, a BPF expression;
    ``snaplen`` (1 to 262144); ``promiscuous``; ``timeout`` (ms, default 1;
    ``"immediate"`` for the lowest latency at the cost of flood capacity;
    ``None`` for never); ``buffer`` (bytes); ``direction``
    (``"in"``, ``"out"``, ``"inout"``); ``monitor`` (rfmon); ``precision``
    (``"nano"``, ``"micro"``); ``chroot``, ``user``, ``group`` for the
    helper after the drop (default ``nobody``); ``inject`` allows ``send``;
    ``cluster_id`` (0 to 65535) shares the interface flow by flow with the
    captures of the same id; ``cpu_affinity`` (``"1,3,5-7"``);
    ``stats_interval`` (seconds); ``paused``: the helper opens the capture
    and takes no packet until the first read (or ``resume()``), so that
    ``set_filter`` and ``set_direction`` apply to every packet delivered,
    as libpcap's do between ``pcap_activate`` and the first read;
    ``progname``, the helper binary; ``exec``,
    a command prefix that runs it (``"sudo -n"``, ``""``). ``host``
    (``"[user@]host[:port]"``) captures on another host, through ssh, with
    the helper installed there (``progname``: its path there) and
    ``ssh_options`` (a list, or a string split as a shell would) added to
    ssh's command line (see :mod:`epcap._remote`). ``None`` means the
    default wherever it is allowed.
    """

    interface: str | None
    file: str | os.PathLike[str] | None
    filter: str | None
    snaplen: int
    promiscuous: bool
    timeout: int | str | None
    buffer: int | None
    direction: str | None
    monitor: bool
    precision: str
    chroot: str | os.PathLike[str] | None
    user: str | None
    group: str | None
    inject: bool
    cluster_id: int | None
    cpu_affinity: str | None
    stats_interval: float | None
    paused: bool
    progname: str | os.PathLike[str] | None
    exec: str | Sequence[str] | None
    host: str | None
    ssh_options: str | Sequence[str] | None


def prepare(options: Mapping[str, Any]) -> tuple[Options, Launch]:
    """Validate options and decide how the helper runs (which one, with
    which privilege, on which host), before anything is spawned."""
    unknown = sorted(set(options) - set(StartOptions.__annotations__))
    if unknown:
        known = ", ".join(StartOptions.__annotations__)
        raise TypeError(f"unknown option {unknown[0]!r}; the options are: {known}")
    rest = dict(options)
    progname = rest.pop("progname", None)
    exec_ = rest.pop("exec", None)
    host = rest.pop("host", None)
    ssh = rest.pop("ssh_options", None)
    if exec_ is not None and not isinstance(exec_, (str, list, tuple)):
        raise TypeError(f"exec must be a string or a list of strings, not {type(exec_).__name__}")
    if host is None:
        if ssh is not None:
            raise ValueError("ssh_options: for captures on another host (host=) only")
        validated = Options.validate(**rest)
        helper = find_helper(progname)
        prefix = exec_prefix(helper, live=validated.live, exec_=exec_)
        return validated, local_launch(prefix, helper, validated.argv())
    target = _remote.Target.parse(host)
    validated = Options.validate(**rest, remote=True)
    remote_helper = None if progname is None else _text("progname", progname, path=True)
    launch = _remote.launch(
        target, validated.argv(), live=validated.live, helper=remote_helper,
        options=_remote.ssh_options(ssh), exec_=exec_,
    )  # fmt: skip
    return validated, launch


SOCKET_BUFFER = 1 << 20
"""The send buffer asked for the helper's stdout (the kernel caps it at
``net.core.wmem_max``): a frame and more, so that the helper rarely waits."""


def spawn(launch: Launch) -> subprocess.Popen[bytes]:
    """Start the helper with a pipe on its stdin and stderr and a stream
    socket on its stdout (``proc.stdout`` is this end of it).

    A Unix stream socket moves the packets: on Linux it carries large
    writes several times faster than a pipe (a pipe takes a page at a time;
    ``make bench`` shows both), and its buffer is bounded per socket.
    """
    _start_reaper()
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    theirs.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SOCKET_BUFFER)
    try:
        proc = subprocess.Popen(
            launch.argv,
            stdin=subprocess.PIPE,
            stdout=theirs.fileno(),
            stderr=subprocess.PIPE,
            bufsize=0,
            start_new_session=True,  # terminal signals are the client's, not the helper's
        )
    except OSError as exc:
        ours.close()
        raise HelperNotFoundError(f"cannot run {launch.argv[0]!r}: {exc.strerror}") from None
    finally:
        theirs.close()
    proc.stdout = os.fdopen(ours.detach(), "rb", buffering=0)
    return proc


def read_stderr(pipe: IO[bytes] | None) -> str:
    """What the helper (or sudo) wrote on stderr, without ever blocking."""
    if pipe is None or pipe.closed:
        return ""
    try:
        os.set_blocking(pipe.fileno(), False)
        data = pipe.read(65536) or b""
    except OSError:
        data = b""
    return data.decode(errors="replace").strip()


def reap(proc: subprocess.Popen[bytes], timeout: float, *, background: bool = False) -> None:
    """Wait for the helper, then terminate, then kill; reap it in any case
    (in the reaper thread when it can be neither signalled nor awaited)."""
    try:
        proc.wait(timeout)
        return
    except subprocess.TimeoutExpired:
        pass
    for send in (proc.terminate, proc.kill):
        try:
            send()
            proc.wait(1.0)
            return
        except (subprocess.TimeoutExpired, PermissionError, ProcessLookupError):
            continue
    # Not ours to signal (e.g. root under sudo) and not exiting yet.
    if background:
        proc.wait()
    else:
        orphans.put(proc)


orphans: queue.SimpleQueue[subprocess.Popen[bytes]] = queue.SimpleQueue()
"""Helpers to reap in the background: SimpleQueue.put is safe in __del__."""
_reaper_lock = threading.Lock()
_reaper: threading.Thread | None = None


def _reap_orphans() -> None:
    while True:
        proc = orphans.get()
        with contextlib.suppress(Exception):  # the reaper thread must never die
            reap(proc, STOP_TIMEOUT, background=True)


def _start_reaper() -> None:
    """Start the reaper thread once, outside any finalizer."""
    global _reaper
    with _reaper_lock:
        if _reaper is None:
            _reaper = threading.Thread(target=_reap_orphans, name="epcap-reaper", daemon=True)
            _reaper.start()


class CaptureBase:
    """One capture, whichever shell moves its bytes: the helper process,
    its :class:`~epcap._driver.Driver`, and what every shell does the same
    way once it has waited (write, read, close the input, release the pipes)."""

    def __init__(self, proc: subprocess.Popen[bytes], options: Options, launch: Launch) -> None:
        self._proc = proc
        self._options = options
        self._launch = launch
        self._driver = Driver(
            file_mode=not options.live, launch=launch, owner=self, paused=options.paused
        )
        assert proc.stdin is not None and proc.stdout is not None
        self._in, self._out = proc.stdin.fileno(), proc.stdout.fileno()
        os.set_blocking(self._in, False)
        os.set_blocking(self._out, False)

    def _begin(self, io: Io) -> None:
        """Before waiting for an :class:`Io`: close the input if asked."""
        if io.close_input:
            with contextlib.suppress(OSError):
                self._proc.stdin.close()  # type: ignore[union-attr]
            self._driver.input_closed()

    def _end(self, io: Io, writable: bool) -> None:
        """After waiting: write what the driver gave, read what came (if
        the driver asked to read)."""
        driver = self._driver
        if io.write is not None and writable:
            try:
                driver.wrote(os.write(self._in, io.write))
            except BlockingIOError:
                pass
            except OSError:  # EPIPE: the helper is gone, its stdout says why
                driver.input_broken()
        if io.read:
            self._read()

    def _read(self) -> bool:
        """Read what the helper sent, if anything: True if a read was made
        (perhaps the end of its stdout), False if there was nothing."""
        driver = self._driver
        try:
            count = os.readv(self._out, [driver.space()])
        except BlockingIOError:
            return False
        driver.filled(count)
        return True

    def _release(self) -> str:
        """Close the pipes (after taking stderr) before the reap."""
        stderr = read_stderr(self._proc.stderr)
        for pipe in (self._proc.stdin, self._proc.stdout, self._proc.stderr):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()
        return stderr

    def _orphan(self) -> None:
        """An operation was abandoned mid-close: the reaper thread finishes."""
        if self._driver.orphaned():
            self._release()
            orphans.put(self._proc)
            self._driver.reaped(None, "")

    def __del__(self) -> None:
        proc = getattr(self, "_proc", None)
        driver = getattr(self, "_driver", None)
        if proc is None or driver is None or driver.phase is Phase.CLOSED:
            return
        if proc.returncode is not None:
            return
        warnings.warn(f"unclosed {self!r}", ResourceWarning, source=self, stacklevel=2)
        self._release()
        orphans.put(proc)  # it sees EOF (or EPIPE) and exits; a finalizer never blocks

    @property
    def settings(self) -> Mapping[str, Any]:
        """What the helper reported in effect in its ``ready`` frame."""
        return self._driver.settings

    @property
    def final_stats(self) -> Mapping[str, int] | None:
        """The statistics of the ``eof`` frame, once the capture ended."""
        return self._driver.final_stats

    @property
    def last_stats(self) -> Mapping[str, int] | None:
        """The latest periodic statistics (``stats_interval``), or None."""
        return self._driver.last_stats

    @property
    def phase(self) -> Phase:
        """Where the capture is: starting, running, stopping, ended, closed."""
        return self._driver.phase

    @property
    def pid(self) -> int:
        """The helper's process id (under sudo, not the id of the sudo child)."""
        return int(self.settings["pid"])

    @property
    def datalink(self) -> int:
        """The link-layer type of the capture (``DLT_*``)."""
        return int(self.settings["datalink"])

    @property
    def snaplen(self) -> int:
        """The snapshot length in effect."""
        return int(self.settings.get("snaplen", MAX_SNAPLEN))

    @property
    def host(self) -> str | None:
        """The host captured on (``start(host=...)``), None for this one."""
        return self._launch.host

    @property
    def interface(self) -> str | None:
        """The interface captured (None for a file)."""
        value = self.settings.get("interface")
        return value if isinstance(value, str) else None

    @property
    def pending(self) -> int:
        """Packets received from the helper and not yet iterated over: after
        ``set_filter`` returns, these are the last that may predate it."""
        return self._driver.pending + operator.length_hint(self._driver.rest)

    def fileno(self) -> int:
        """The helper's stdout, to wait on with ``select``/``poll``/a
        selector (-1 once its pipes are closed, at the end). Readable means
        bytes came, perhaps part of a frame; packets already received do not
        make it readable: take them first (``next(timeout=0)`` takes one
        without reading)."""
        stdout = self._proc.stdout
        return -1 if stdout is None or stdout.closed else self._out

    @property
    def paused(self) -> bool:
        """True while a capture started with ``paused=True`` holds: until
        the first read or ``resume()``."""
        return self._driver.paused

    @property
    def closed(self) -> bool:
        """True once the capture was closed."""
        return self._driver.phase is Phase.CLOSED

    def __repr__(self) -> str:
        source = self._options.file or self._options.interface or "default interface"
        where = f" on {self.host}" if self.host else ""
        return f"<epcap.{type(self).__name__} {source!r}{where} {self._driver.phase.value}>"

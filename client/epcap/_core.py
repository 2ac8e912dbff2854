"""What the sync and asyncio shells share: starting a helper, reaping it,
and turning what it says into queued packets, replies and errors.

The shells differ only in how they wait for bytes. Everything about what
the bytes mean is decided by :class:`~epcap._protocol.Session`; everything
about what the capture does with them (queue a batch, keep a reply, note
the statistics) is decided here, once. Ending a helper always goes the same
way: close its stdin (the stop request), read what it still sends within a
bound, close the pipes, wait, then terminate, then kill, and reap.
"""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import subprocess
import threading
import warnings
from collections import deque
from collections.abc import Mapping, Sequence
from typing import IO, Any, TypedDict

from ._errors import EpcapError, HelperExitedError, HelperNotFoundError, ProtocolError
from ._launch import exec_prefix, find_helper, sudo_refusal
from ._options import MAX_SNAPLEN, Options
from ._packet import Packet
from ._protocol import End, Ready, Refused, Reply, Session, Stats, encode

READ_SIZE = 1 << 20
"""Bytes asked for per read of the helper's stdout."""
START_TIMEOUT = 30.0
"""Seconds to wait for the ``ready`` frame."""
STOP_TIMEOUT = 2.0
"""Seconds a closing helper gets to send its ``eof`` and exit, before signals."""


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
    ``stats_interval`` (seconds); ``progname``, the helper binary; ``exec``,
    a command prefix that runs it (``"sudo -n"``, ``""``). ``None`` means the
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
    progname: str | os.PathLike[str] | None
    exec: str | Sequence[str] | None


def prepare(options: Mapping[str, Any]) -> tuple[Options, list[str], str]:
    """Validate options and find the helper and its privilege prefix, before
    anything is spawned: (options, prefix, helper)."""
    unknown = sorted(set(options) - set(StartOptions.__annotations__))
    if unknown:
        known = ", ".join(StartOptions.__annotations__)
        raise TypeError(f"unknown option {unknown[0]!r}; the options are: {known}")
    rest = dict(options)
    progname = rest.pop("progname", None)
    exec_ = rest.pop("exec", None)
    validated = Options.validate(**rest)
    if exec_ is not None and not isinstance(exec_, (str, list, tuple)):
        raise TypeError(f"exec must be a string or a list of strings, not {type(exec_).__name__}")
    helper = find_helper(progname)
    return validated, exec_prefix(helper, live=validated.live, exec_=exec_), helper


def spawn(options: Options, prefix: list[str], helper: str) -> subprocess.Popen[bytes]:
    """Start the helper with pipes on its stdin, stdout and stderr."""
    _start_reaper()
    try:
        return subprocess.Popen(
            [*prefix, helper, *options.argv()],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            bufsize=0,
            start_new_session=True,  # terminal signals are the client's, not the helper's
        )
    except OSError as exc:
        what = prefix[0] if prefix else helper
        raise HelperNotFoundError(f"cannot run {what!r}: {exc.strerror}") from None


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


_MORE = object()
"""What :meth:`CaptureBase._take` returns when only a read can tell."""


class CaptureBase:
    """The state of one capture, whichever shell reads it."""

    def __init__(
        self, proc: subprocess.Popen[bytes], options: Options, prefix: list[str], helper: str
    ) -> None:
        self._proc = proc
        self._options = options
        self._prefix = prefix
        self._helper = helper
        self._session = Session(file_mode=not options.live)
        self._queue: deque[list[Packet] | EpcapError] = deque()
        self._replies: deque[Reply | Refused] = deque()
        self._eof = False  # the helper's stdout is at its end
        self._closed = False
        self.settings: Mapping[str, Any] = {}
        """What the helper reported in effect in its ``ready`` frame."""
        self.final_stats: Mapping[str, int] | None = None
        """The statistics of the ``eof`` frame, once the capture ended."""
        self.last_stats: Mapping[str, int] | None = None
        """The latest periodic statistics (``stats_interval``), or None."""
        self._rbuf = memoryview(bytearray(READ_SIZE))  # reused: the decoder copies out

    def _read(self, fd: int) -> memoryview:
        """One read of the helper's stdout into the reused buffer."""
        return self._rbuf[: os.readv(fd, [self._rbuf])]

    def _absorb(self, data: bytes | memoryview) -> bool:
        """Take bytes read from the helper (b"" at the end of its stdout).
        True when the stream ended without an ``eof`` or ``error``: the shell
        then reaps the helper and queues :meth:`_exit_error`."""
        if not data:
            self._eof = True
            return not self._session.end_of_stream()
        for event in self._session.receive(data):
            if isinstance(event, list):
                self._queue.append(event)
            elif isinstance(event, (Reply, Refused)):
                self._replies.append(event)
            elif isinstance(event, Stats):
                self.last_stats = event.stats
            elif isinstance(event, End):
                self.final_stats = event.stats
            elif isinstance(event, Ready):
                self.settings = event.settings
            else:
                self._queue.append(event)
        return False

    def _exit_error(self) -> EpcapError:
        """Why the stream ended without ``eof`` or ``error`` (after reaping)."""
        stderr = read_stderr(self._proc.stderr)
        code = self._proc.returncode
        refusal = sudo_refusal(self._prefix, self._helper, stderr)
        if self._session.state == "setup" and refusal is not None:
            return refusal
        where = "before 'ready'" if self._session.state == "setup" else "during the capture"
        detail = f": {stderr}" if stderr else ""
        return HelperExitedError(
            f"the helper {describe_exit(code)} {where}{detail}", returncode=code, stderr=stderr
        )

    def _setup_error(self) -> EpcapError | None:
        """The error that ended the set-up, if one is queued first."""
        head = self._queue[0] if self._queue else None
        if isinstance(head, EpcapError):
            self._queue.popleft()
            return head
        return None

    def _take(self) -> object:
        """The next queued batch or error; None at the end; _MORE to read."""
        if self._queue:
            return self._queue.popleft()
        if self._closed:
            raise ValueError("I/O operation on a closed capture")
        return None if self._eof else _MORE

    def _write_command(self, command: str, args: tuple[object, ...]) -> None:
        stdin = self._proc.stdin
        if self._closed or stdin is None or stdin.closed:
            raise ValueError("the capture is closed or stopping")
        if self._session.state == "ended":
            raise ValueError("the capture has ended")
        stdin.write(encode(command, *args))

    def _fatal_error(self) -> EpcapError | None:
        """An error that arrived while waiting for a reply: it ends the capture."""
        last = self._queue[-1] if self._queue else None
        if isinstance(last, EpcapError):
            self._queue.pop()
            return last
        return None

    def _answer(self, command: str) -> Any:
        answer = self._replies.popleft()
        if answer.command != command:
            raise ProtocolError(f"expected the answer to {command!r}, got {answer.command!r}")
        if isinstance(answer, Refused):
            raise answer.error
        return answer.value

    @staticmethod
    def _check_stats(value: Any) -> Mapping[str, int]:
        if not isinstance(value, dict):
            raise ProtocolError("malformed stats reply")
        return value

    @staticmethod
    def _check_filter(expression: object) -> str:
        if not isinstance(expression, str):
            raise TypeError(f"expression must be a string, not {type(expression).__name__}")
        try:
            expression.encode()
        except UnicodeEncodeError as exc:
            raise ValueError(f"expression cannot be encoded as UTF-8: {exc.reason}") from None
        return expression

    @staticmethod
    def _check_frame(frame: object) -> bytes:
        if not isinstance(frame, (bytes, bytearray, memoryview)):
            raise TypeError(f"frame must be bytes, not {type(frame).__name__}")
        if not frame:
            raise ValueError("frame must not be empty")
        return bytes(frame)

    def _close_pipes(self) -> None:
        for pipe in (self._proc.stdin, self._proc.stdout, self._proc.stderr):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()

    def stop(self) -> None:
        """Ask the helper to stop. Iteration then ends after the packets
        already captured. Safe to call from another thread or a signal handler."""
        stdin = self._proc.stdin
        if stdin is not None and not stdin.closed:
            with contextlib.suppress(OSError):
                stdin.close()

    def __del__(self) -> None:
        proc = getattr(self, "_proc", None)
        if proc is None or getattr(self, "_closed", True) or proc.returncode is not None:
            return
        warnings.warn(f"unclosed {self!r}", ResourceWarning, source=self, stacklevel=2)
        self._closed = True
        self._close_pipes()
        orphans.put(proc)  # it sees EOF (or EPIPE) and exits; a finalizer never blocks

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
    def pending(self) -> int:
        """Packets received from the helper and not yet iterated over: after
        ``set_filter`` returns, these are the last that may predate it."""
        return sum(len(item) for item in self._queue if isinstance(item, list))

    @property
    def closed(self) -> bool:
        """True once the capture was closed, or ended and was reaped."""
        return self._closed

    def __repr__(self) -> str:
        source = self._options.file or self._options.interface or "default interface"
        state = "closed" if self._closed else "open"
        return f"<epcap.{type(self).__name__} {source!r} {state}>"

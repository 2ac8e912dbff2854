"""The synchronous shell: a helper process, its pipes, and the session.

Bytes move between the pipes and :class:`~epcap._protocol.Session`; every
decision about what they mean is made there. Ending a helper always goes
the same way: close its stdin (the stop request), read what it still sends
within a bound, close the pipes, wait, then terminate, then kill, and reap.
"""

from __future__ import annotations

import contextlib
import os
import queue
import select
import signal
import subprocess
import threading
import time
import warnings
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from types import TracebackType
from typing import IO, Any

from ._errors import (
    EpcapError,
    HelperExitedError,
    HelperNotFoundError,
    ProtocolError,
)
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

_Item = list[Packet] | EpcapError


def _describe_exit(returncode: int | None) -> str:
    if returncode is None:
        return "did not exit"
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return f"was killed by {name}"
    return f"exited with status {returncode}"


def _read_stderr(pipe: IO[bytes] | None) -> str:
    """What the helper (or sudo) wrote on stderr, without ever blocking."""
    if pipe is None or pipe.closed:
        return ""
    try:
        os.set_blocking(pipe.fileno(), False)
        data = pipe.read(65536) or b""
    except OSError:
        data = b""
    return data.decode(errors="replace").strip()


def _reap(proc: subprocess.Popen[bytes], timeout: float, *, background: bool = False) -> None:
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
        _orphans.put(proc)


_orphans: queue.SimpleQueue[subprocess.Popen[bytes]] = queue.SimpleQueue()
"""Helpers to reap in the background: SimpleQueue.put is safe in __del__."""
_reaper_lock = threading.Lock()
_reaper: threading.Thread | None = None


def _reap_orphans() -> None:
    while True:
        proc = _orphans.get()
        with contextlib.suppress(Exception):  # the reaper thread must never die
            _reap(proc, STOP_TIMEOUT, background=True)


def _start_reaper() -> None:
    """Start the reaper thread once, outside any finalizer."""
    global _reaper
    with _reaper_lock:
        if _reaper is None:
            _reaper = threading.Thread(target=_reap_orphans, name="epcap-reaper", daemon=True)
            _reaper.start()


class Capture:
    """One running capture: one helper process, one ``ready``, then packets.

    Iterate over it for :class:`~epcap.Packet` objects (or over
    :meth:`batches` for lists); the iteration ends at the end of a file or
    after :meth:`stop`, and raises the helper's error, if any, after the
    packets captured before it. Use it as a context manager, or call
    :meth:`close`: the helper is always stopped and reaped.
    """

    def __init__(
        self, proc: subprocess.Popen[bytes], options: Options, prefix: list[str], helper: str
    ) -> None:
        self._proc = proc
        self._options = options
        self._prefix = prefix
        self._helper = helper
        self._session = Session(file_mode=not options.live)
        self._queue: deque[_Item] = deque()
        self._replies: deque[Reply | Refused] = deque()
        self._eof = False  # the helper's stdout is at its end
        self._closed = False
        self.final_stats: Mapping[str, int] | None = None
        """The statistics of the ``eof`` frame, once the capture ended."""
        self.last_stats: Mapping[str, int] | None = None
        """The latest periodic statistics (``stats_interval``), or None."""

    # -- set-up -------------------------------------------------------------

    @classmethod
    def _spawn(cls, options: Options, prefix: list[str], helper: str) -> Capture:
        _start_reaper()
        try:
            proc = subprocess.Popen(
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
        cap = cls(proc, options, prefix, helper)
        try:
            cap._await_ready()
        except BaseException:
            cap._shutdown(wait=STOP_TIMEOUT)
            raise
        return cap

    def _await_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while self._session.state == "setup":
            if not self._fill(deadline - time.monotonic()):
                raise ProtocolError(f"the helper sent no 'ready' within {START_TIMEOUT:.0f} s")
            head = self._queue[0] if self._queue else None
            if isinstance(head, EpcapError):
                self._queue.popleft()
                raise head

    # -- reading ------------------------------------------------------------

    def _fill(self, timeout: float | None = None) -> bool:
        """Read once from the helper and queue what it completes.

        False if ``timeout`` passed with nothing to read. At the end of the
        stream, queues the error that explains it unless the session ended.
        """
        stdout = self._proc.stdout
        assert stdout is not None
        fd = stdout.fileno()
        if timeout is not None and not select.select([fd], [], [], max(timeout, 0.0))[0]:
            return False
        data = os.read(fd, READ_SIZE)
        if not data:
            self._eof = True
            if not self._session.end_of_stream():
                self._queue.append(self._exit_error())
            return True
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
                self.settings: Mapping[str, Any] = event.settings
            else:
                self._queue.append(event)
        return True

    def _exit_error(self) -> EpcapError:
        """The helper's stdout closed with no ``eof`` or ``error``: say why."""
        _reap(self._proc, STOP_TIMEOUT)
        stderr = _read_stderr(self._proc.stderr)
        code = self._proc.returncode
        refusal = sudo_refusal(self._prefix, self._helper, stderr)
        if self._session.state == "setup" and refusal is not None:
            return refusal
        where = "before 'ready'" if self._session.state == "setup" else "during the capture"
        detail = f": {stderr}" if stderr else ""
        return HelperExitedError(
            f"the helper {_describe_exit(code)} {where}{detail}", returncode=code, stderr=stderr
        )

    def _next_batch(self) -> list[Packet] | None:
        queue = self._queue
        while not queue:
            if self._closed:
                raise ValueError("I/O operation on a closed capture")
            if self._eof:
                self._shutdown(wait=STOP_TIMEOUT)
                return None
            self._fill()
        item = queue.popleft()
        if isinstance(item, EpcapError):
            self._shutdown(wait=STOP_TIMEOUT)
            raise item
        return item

    def __iter__(self) -> Iterator[Packet]:
        next_batch = self._next_batch
        while (batch := next_batch()) is not None:
            yield from batch

    def batches(self) -> Iterator[list[Packet]]:
        """Iterate over the packets as lists, one per frame the helper sent."""
        next_batch = self._next_batch
        while (batch := next_batch()) is not None:
            yield batch

    # -- control ------------------------------------------------------------

    def _command(self, command: str, *args: object) -> Any:
        """Send one command and wait for its answer; packets that arrive
        meanwhile stay queued for iteration. Not thread-safe."""
        stdin = self._proc.stdin
        if self._closed or stdin is None or stdin.closed:
            raise ValueError("the capture is closed or stopping")
        if self._session.state == "ended":
            raise ValueError("the capture has ended")
        try:
            stdin.write(encode(command, *args))
        except BrokenPipeError:
            raise self._exit_error() from None
        while not self._replies:
            if self._eof:
                raise self._exit_error()
            self._fill()
            last = self._queue[-1] if self._queue else None
            if isinstance(last, EpcapError):
                self._queue.pop()
                self._shutdown(wait=STOP_TIMEOUT)
                raise last
        answer = self._replies.popleft()
        if answer.command != command:
            raise ProtocolError(f"expected the answer to {command!r}, got {answer.command!r}")
        if isinstance(answer, Refused):
            raise answer.error
        return answer.value

    def stats(self) -> Mapping[str, int]:
        """The helper's counters now: ``packets`` it delivered and ``delayed``
        (frames that waited for this process to read); live, also libpcap's
        ``received``, ``dropped`` (by the kernel) and ``if_dropped`` (by the
        interface), all 64-bit totals that survive libpcap's 32-bit wrap.
        Once the capture ended, its final statistics."""
        if self._session.state == "ended" and self.final_stats is not None:
            return self.final_stats
        value = self._command("stats")
        if not isinstance(value, dict):
            raise ProtocolError("malformed stats reply")
        return value

    def set_filter(self, expression: str) -> None:
        """Replace the BPF filter of the running capture. Returns once the
        helper applied it: from then on only matching packets arrive. A bad
        expression raises FilterError and the old filter stays in force.
        Host, port and protocol names do not resolve inside the helper's
        chroot: use numbers, or give names to ``start(filter=...)``."""
        if not isinstance(expression, str):
            raise TypeError(f"expression must be a string, not {type(expression).__name__}")
        self._command("filter", expression)

    def send(self, frame: bytes | bytearray | memoryview) -> int:
        """Send one raw link-layer frame on the interface (needs
        ``inject=True``); return the bytes sent. A frame the interface refuses
        raises SendError and the capture goes on."""
        if not isinstance(frame, (bytes, bytearray, memoryview)):
            raise TypeError(f"frame must be bytes, not {type(frame).__name__}")
        sent = self._command("send", bytes(frame))
        if not isinstance(sent, int):
            raise ProtocolError("malformed send reply")
        return sent

    def stop(self) -> None:
        """Ask the helper to stop. Iteration then ends after the packets
        already captured. Safe to call from another thread or a signal handler."""
        stdin = self._proc.stdin
        if stdin is not None and not stdin.closed:
            with contextlib.suppress(OSError):
                stdin.close()

    def close(self) -> None:
        """Stop the helper, discard what it still sends, and reap it."""
        if not self._closed:
            self._shutdown(wait=STOP_TIMEOUT)

    def _shutdown(self, wait: float) -> None:
        self._closed = True
        self.stop()
        deadline = time.monotonic() + wait
        try:
            while not self._eof and time.monotonic() < deadline:
                self._fill(deadline - time.monotonic())  # the eof frame brings final stats
        except (EpcapError, OSError):
            pass  # the helper's last words do not matter to a closing client
        self._queue.clear()
        for pipe in (self._proc.stdout, self._proc.stderr):
            if pipe is not None:
                pipe.close()
        _reap(self._proc, max(deadline - time.monotonic(), 0.1))

    # -- context manager and finalizer ---------------------------------------

    def __enter__(self) -> Capture:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __del__(self) -> None:
        proc = getattr(self, "_proc", None)
        if proc is None or getattr(self, "_closed", True) or proc.returncode is not None:
            return
        warnings.warn(f"unclosed {self!r}", ResourceWarning, source=self, stacklevel=2)
        self._closed = True
        for pipe in (proc.stdin, proc.stdout, proc.stderr):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()
        # The helper sees EOF (or EPIPE) and exits; a finalizer never blocks.
        _orphans.put(proc)

    # -- what the helper said in 'ready' ---------------------------------------

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
        :meth:`set_filter` returns, these are the last that may predate it."""
        return sum(len(item) for item in self._queue if isinstance(item, list))

    @property
    def closed(self) -> bool:
        """True once :meth:`close` ran or the capture ended and was reaped."""
        return self._closed

    def __repr__(self) -> str:
        source = self._options.file or self._options.interface or "default interface"
        state = "closed" if self._closed else "open"
        return f"<epcap.Capture {source!r} {state}>"


def start(
    *,
    interface: str | None = None,
    file: str | os.PathLike[str] | None = None,
    filter: str | None = None,
    snaplen: int = MAX_SNAPLEN,
    promiscuous: bool = False,
    timeout: int | str | None = "immediate",
    buffer: int | None = None,
    direction: str | None = None,
    monitor: bool = False,
    precision: str = "nano",
    chroot: str | os.PathLike[str] | None = None,
    user: str | None = None,
    group: str | None = None,
    inject: bool = False,
    cluster_id: int | None = None,
    cpu_affinity: str | None = None,
    stats_interval: float | None = None,
    progname: str | os.PathLike[str] | None = None,
    exec: str | Sequence[str] | None = None,
) -> Capture:
    """Start a capture in its own helper and return once it is capturing.

    Live on ``interface`` (libpcap's default device when neither it nor
    ``file`` is given), or from a pcap/pcapng ``file``. ``filter`` is a BPF
    expression; ``snaplen`` (1 to 262144), ``promiscuous``, ``monitor`` (rfmon),
    ``buffer`` (bytes), ``direction`` (``"in"``, ``"out"``, ``"inout"``) and
    ``timeout`` (ms, ``"immediate"``, or ``None`` for never) set up a live
    capture; ``precision`` is ``"nano"`` or ``"micro"``. After opening the
    capture the helper chroots to ``chroot`` and runs as ``user``/``group``
    (default ``nobody``). ``inject=True`` allows :meth:`Capture.send`;
    ``cluster_id`` (0 to 65535) shares the interface's traffic, flow by flow,
    with the other captures of the same id (Linux ``PACKET_FANOUT``);
    ``cpu_affinity`` (``"1,3,5-7"``) pins the helper; ``stats_interval``
    (seconds) makes it send statistics (:attr:`Capture.last_stats`).
    ``progname`` names the helper binary; ``exec`` is a command prefix that
    runs it (``"sudo -n"``, ``""``), overriding detection.

    Raises TypeError/ValueError for bad options before spawning anything, and
    an :class:`~epcap.EpcapError` subclass if the helper cannot start; no
    process is left behind in either case.
    """
    options = Options.validate(
        interface=interface,
        file=file,
        filter=filter,
        snaplen=snaplen,
        promiscuous=promiscuous,
        timeout=timeout,
        buffer=buffer,
        direction=direction,
        monitor=monitor,
        precision=precision,
        chroot=chroot,
        user=user,
        group=group,
        inject=inject,
        cluster_id=cluster_id,
        cpu_affinity=cpu_affinity,
        stats_interval=stats_interval,
    )
    if exec is not None and not isinstance(exec, (str, list, tuple)):
        raise TypeError(f"exec must be a string or a list of strings, not {type(exec).__name__}")
    helper = find_helper(progname)
    prefix = exec_prefix(helper, live=options.live, exec_=exec)
    return Capture._spawn(options, prefix, helper)

"""The synchronous shell: blocking reads of the helper's stdout."""

from __future__ import annotations

import select
import time
from collections.abc import Iterator, Mapping
from types import TracebackType
from typing import Any, Unpack

from . import _core
from ._core import CaptureBase, StartOptions
from ._errors import EpcapError, ProtocolError
from ._packet import Packet


class Capture(CaptureBase):
    """One running capture: one helper process, one ``ready``, then packets.

    Iterate over it for :class:`~epcap.Packet` objects (or over
    :meth:`batches` for lists); the iteration ends at the end of a file or
    after :meth:`stop`, and raises the helper's error, if any, after the
    packets captured before it. Use it as a context manager, or call
    :meth:`close`: the helper is always stopped and reaped.
    """

    def _fill(self, timeout: float | None = None) -> bool:
        """Read once from the helper and queue what it completes; False if
        ``timeout`` passed with nothing to read."""
        stdout = self._proc.stdout
        assert stdout is not None
        fd = stdout.fileno()
        if timeout is not None and not select.select([fd], [], [], max(timeout, 0.0))[0]:
            return False
        if self._absorb(self._read(fd)):
            _core.reap(self._proc, _core.STOP_TIMEOUT)
            self._queue.append(self._exit_error())
        return True

    def _await_ready(self) -> None:
        deadline = time.monotonic() + _core.START_TIMEOUT
        while self._session.state == "setup":
            if not self._fill(deadline - time.monotonic()):
                raise ProtocolError(f"no 'ready' from the helper in {_core.START_TIMEOUT:.0f} s")
            error = self._setup_error()
            if error is not None:
                raise error

    def _next_batch(self) -> list[Packet] | None:
        while (item := self._take()) is _core._MORE:
            self._fill()
        if item is None or isinstance(item, EpcapError):
            self._shutdown(_core.STOP_TIMEOUT)
        if isinstance(item, EpcapError):
            raise item
        return item  # type: ignore[return-value]

    def __iter__(self) -> Iterator[Packet]:
        next_batch = self._next_batch
        while (batch := next_batch()) is not None:
            yield from batch

    def batches(self) -> Iterator[list[Packet]]:
        """Iterate over the packets as lists, one per frame the helper sent."""
        next_batch = self._next_batch
        while (batch := next_batch()) is not None:
            yield batch

    def _command(self, command: str, *args: object) -> Any:
        """Send one command and wait for its answer; packets that arrive
        meanwhile stay queued for iteration. One thread at a time."""
        try:
            self._write_command(command, args)
        except BrokenPipeError:
            self._fill()  # the end of the stream says why
        while not self._replies:
            error = self._fatal_error()
            if error is None and self._eof:
                error = ProtocolError(f"the helper ended without answering {command!r}")
            if error is not None:
                self._shutdown(_core.STOP_TIMEOUT)
                raise error
            self._fill()
        return self._answer(command)

    def stats(self) -> Mapping[str, int]:
        """The helper's counters now: ``packets`` it delivered and ``delayed``
        (frames that waited for this process to read); live, also libpcap's
        ``received``, ``dropped`` (by the kernel) and ``if_dropped`` (by the
        interface), all 64-bit totals that survive libpcap's 32-bit wrap.
        Once the capture ended, its final statistics."""
        if self._session.state == "ended" and self.final_stats is not None:
            return self.final_stats
        return self._check_stats(self._command("stats"))

    def set_filter(self, expression: str) -> None:
        """Replace the BPF filter of the running capture. Returns once the
        helper applied it: from then on only matching packets arrive (and
        the :attr:`pending` ones received before). A bad expression raises
        FilterError and the old filter stays in force. Host, port and
        protocol names do not resolve inside the helper's chroot: use
        numbers, or give names to ``start(filter=...)``."""
        self._command("filter", self._check_filter(expression))

    def send(self, frame: bytes | bytearray | memoryview) -> int:
        """Send one raw link-layer frame on the interface (needs
        ``inject=True``); return the bytes sent. A frame the interface refuses
        raises SendError and the capture goes on."""
        sent = self._command("send", self._check_frame(frame))
        if not isinstance(sent, int):
            raise ProtocolError("malformed send reply")
        return sent

    def close(self) -> None:
        """Stop the helper, discard what it still sends, and reap it."""
        if not self._closed:
            self._shutdown(_core.STOP_TIMEOUT)

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
        self._close_pipes()
        _core.reap(self._proc, max(deadline - time.monotonic(), 0.1))

    def __enter__(self) -> Capture:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def start(**options: Unpack[StartOptions]) -> Capture:
    """Start a capture in its own helper and return once it is capturing.

    Live on ``interface``, or from a pcap/pcapng ``file``; every option is
    described in :class:`~epcap.StartOptions`. Raises TypeError/ValueError
    for bad options before spawning anything, and an
    :class:`~epcap.EpcapError` subclass if the helper cannot start; no
    process is left behind in either case.
    """
    validated, prefix, helper = _core.prepare(options)
    cap = Capture(_core.spawn(validated, prefix, helper), validated, prefix, helper)
    try:
        cap._await_ready()
    except BaseException:
        cap._shutdown(_core.STOP_TIMEOUT)
        raise
    return cap

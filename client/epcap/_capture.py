"""The synchronous shell: any thread may use a capture.

Each operation runs the driver's generator under one lock. The caller that
the driver tells to move bytes polls the helper's pipes with the lock
released; the others sleep on a condition until it is done. A wake-up pipe
interrupts the poll when another thread has something to write or stops the
capture, so that every call returns as soon as its answer is in.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import os
import select
import threading
import weakref
from collections.abc import Iterator, Mapping
from typing import Any, Unpack

from . import _core
from ._closing import Closing
from ._core import CaptureBase, StartOptions
from ._driver import NOTIFY, Io, Op, Phase, Reap, T, Wait
from ._packet import Packet


def _close_fds(*fds: int) -> None:
    for fd in fds:
        with contextlib.suppress(OSError):
            os.close(fd)


class Capture(Closing, CaptureBase):
    """One running capture: one helper process, one ``ready``, then packets.

    Iterate over it for :class:`~epcap.Packet` objects (or over
    :meth:`batches` for lists, or call :meth:`next` with a timeout); the
    iteration ends at the end of a file, after :meth:`stop` or :meth:`close`,
    and raises the helper's error, if any, after the packets captured
    before it. Use it as a context manager, or call :meth:`close`: the
    helper is always stopped and reaped.

    Any thread may call :meth:`stats`, :meth:`set_filter`, :meth:`send`,
    :meth:`stop` and :meth:`close` while another iterates: each returns as
    soon as its answer arrives (commands within 10 s, or TimeoutError), the
    iterating thread keeps every packet in order, and :meth:`close` ends its
    iteration. Threads that iterate the same capture share its packets.
    """

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._sleepers = 0  # threads in self._cond.wait(), counted under the lock
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._poll = select.poll()
        self._poll.register(self._out, select.POLLIN)
        self._poll.register(self._wake_r, select.POLLIN)
        self._keepalive_stop = threading.Event()

    def _drive(self, op: Op[T]) -> T:
        with self._lock:
            return self._run(op)

    def _run(self, op: Op[T]) -> T:
        """Run one driver operation to its result, doing what it needs."""
        try:
            need = next(op)
            while True:
                if type(need) is Io:
                    self._move(need)
                elif type(need) is Wait:
                    self._sleepers += 1
                    try:
                        self._cond.wait(self._driver.remaining(need.deadline))
                    finally:
                        self._sleepers -= 1
                elif need is NOTIFY:
                    self._notify()
                elif type(need) is Reap:
                    self._reap(need)
                else:  # INTERRUPT
                    self._interrupt()
                need = op.send(None)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]
        finally:
            op.close()
            self._notify()
            self._orphan()

    def _notify(self) -> None:
        """Wake the threads waiting for the one moving bytes, if any (a
        capture that one thread iterates has none: no Condition call)."""
        if self._sleepers:
            self._cond.notify_all()

    def _interrupt(self) -> None:
        """Wake the thread in poll(): a byte on the wake-up pipe."""
        fd = self._wake_w
        if fd >= 0:
            with contextlib.suppress(OSError):
                os.write(fd, b"!")

    def _move(self, io: Io) -> None:
        self._begin(io)
        if not io.read:
            self._poll.unregister(self._out)
        if io.write is not None:
            self._poll.register(self._in, select.POLLOUT)
        remaining = self._driver.remaining(io.deadline)
        self._lock.release()
        try:
            events = self._poll.poll(None if remaining is None else math.ceil(remaining * 1000))
        finally:
            self._lock.acquire()
        if io.write is not None:
            self._poll.unregister(self._in)
        if not io.read:
            self._poll.register(self._out, select.POLLIN)
        writable = False
        for fd, _ in events:
            if fd == self._wake_r:
                with contextlib.suppress(BlockingIOError):
                    os.read(self._wake_r, 4096)
            writable = writable or fd == self._in
        self._end(io, writable=writable)

    def _reap(self, need: Reap) -> None:
        stderr = self._release()
        self._lock.release()
        try:
            _core.reap(self._proc, need.timeout)
        finally:
            self._lock.acquire()
        self._driver.reaped(self._proc.returncode, stderr)
        self._keepalive_stop.set()
        fds, self._wake_w = (self._wake_r, self._wake_w), -1  # stop() writes no more
        _close_fds(*fds)

    def __iter__(self) -> Iterator[Packet]:
        # chained in C: no Python frame resumes per packet
        return itertools.chain.from_iterable(self._rests())

    def _rests(self) -> Iterator[Iterator[Packet]]:
        """The driver's ``rest``, batch after batch: what iteration takes."""
        next_batch = self._driver.next_batch
        while (rest := self._drive(next_batch(hold=True))) is not None:
            yield rest

    def batches(self) -> Iterator[list[Packet]]:
        """Iterate over the packets as lists, one per frame the helper sent."""
        while (batch := self._drive(self._driver.next_batch())) is not None:
            yield batch

    def next(self, timeout: float | None = None) -> Packet | None:
        """The next packet, None at the end of the capture; TimeoutError if
        ``timeout`` seconds pass first (the capture goes on). With
        ``timeout=0`` it takes a packet already received or what the
        helper's stdout holds now, without waiting. It shares the packets
        of an iteration in progress: none is lost or repeated."""
        return self._drive(self._driver.next_packet(timeout))

    def stats(self) -> Mapping[str, int]:
        """The helper's counters now: ``packets`` it delivered and ``delayed``
        (frames that waited for this process to read); live, also libpcap's
        ``received``, ``dropped`` (by the kernel) and ``if_dropped`` (by the
        interface), all 64-bit totals that survive libpcap's 32-bit wrap.
        Once the capture ended, its final statistics."""
        return self._drive(self._driver.stats())

    def set_filter(self, expression: str) -> None:
        """Replace the BPF filter of the running capture. Returns once the
        helper applied it: from then on only matching packets arrive (and
        the :attr:`pending` ones received before). A bad expression raises
        FilterError and the old filter stays in force. Host, port and
        protocol names do not resolve inside the helper's chroot: use
        numbers, or give names to ``start(filter=...)``."""
        self._drive(self._driver.set_filter(expression))

    def set_direction(self, direction: str) -> None:
        """Capture only the packets the interface received (``"in"``), sent
        (``"out"``), or both (``"inout"``) from now on; returns once the
        helper applied it, as :meth:`set_filter`. A file cannot: libpcap's
        refusal raises CaptureError."""
        self._drive(self._driver.set_direction(direction))

    def resume(self) -> None:
        """Let a capture started with ``paused=True`` take packets now (the
        first read does it otherwise). Nothing for one that is not paused."""
        self._drive(self._driver.resume())

    def send(self, frame: bytes | bytearray | memoryview) -> int:
        """Send one raw link-layer frame on the interface (needs
        ``inject=True``); return the bytes sent. A frame the interface refuses
        raises SendError and the capture goes on."""
        return self._drive(self._driver.send(frame))

    def stop(self) -> None:
        """Ask the helper to stop. Iteration then ends after the packets
        already captured. Safe to call from any thread or a signal handler."""
        self._driver.ask_stop()
        self._interrupt()  # the thread moving bytes closes the input
        if self._lock.acquire(blocking=False):  # nobody is: close it now
            try:
                self._run(self._driver.poke())
            finally:
                self._lock.release()

    def close(self) -> None:
        """Stop the helper, discard what it still sends, and reap it, within
        about 2 s (then it is killed); an iteration in another thread ends."""
        self._drive(self._driver.close())


def start(**options: Unpack[StartOptions]) -> Capture:
    """Start a capture in its own helper and return once it is capturing.

    Live on ``interface``, or from a pcap/pcapng ``file``; every option is
    described in :class:`~epcap.StartOptions`. Raises TypeError/ValueError
    for bad options before spawning anything, and an
    :class:`~epcap.EpcapError` subclass if the helper cannot start (within
    30 s); no process is left behind in either case.
    """
    validated, launch = _core.prepare(options)
    cap = Capture(_core.spawn(launch), validated, launch)
    try:
        cap._drive(cap._driver.start())
    except BaseException:
        cap.close()
        raise
    if launch.keepalive is not None:
        _keep_alive(cap, launch.keepalive)
    return cap


def _keep_alive(cap: Capture, every: float) -> None:
    """Send ``cap``'s helper a keepalive every ``every`` seconds, from a
    daemon thread, until the capture closes or ends (held weakly: an
    abandoned capture is still finalized)."""
    ref, stopped = weakref.ref(cap), cap._keepalive_stop

    def run() -> None:
        while not stopped.wait(every):
            capture = ref()
            if capture is None or capture._driver.phase not in (Phase.RUNNING, Phase.STOPPING):
                return
            with contextlib.suppress(Exception):  # the capture reports its own failures
                capture._drive(capture._driver.keepalive())
            del capture

    threading.Thread(target=run, name="epcap-keepalive", daemon=True).start()

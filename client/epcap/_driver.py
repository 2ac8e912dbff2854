"""The capture driver: the whole logic of one capture, once, for every shell.

Nothing here reads, writes, sleeps or spawns. Each operation of a capture
(:meth:`Driver.start`, :meth:`~Driver.next_batch`, :meth:`~Driver.command`,
:meth:`~Driver.close`, ...) is a generator that yields what it needs from its
shell, in the manner of h11's ``NEED_DATA``:

- :class:`Io`: move bytes. Wait until the helper's stdout can be read, the
  bytes in ``write`` can go to its stdin, or the shell is interrupted, at
  most until ``deadline``; then report what happened (:meth:`Driver.received`,
  :meth:`~Driver.wrote`, :meth:`~Driver.input_closed`,
  :meth:`~Driver.input_broken`) and resume the generator. Only one caller at
  a time is given an ``Io``: the others get
- :class:`Wait`: sleep until :data:`NOTIFY` or ``deadline``;
- :data:`NOTIFY`: wake every caller sleeping in a ``Wait``;
- :data:`INTERRUPT`: wake the caller in ``Io`` too (there is new output, or
  the capture is stopping): it must look again;
- :class:`Reap`: close the helper's pipes and reap it within ``timeout``
  seconds, then report :meth:`~Driver.reaped`.

A shell runs an operation to its end (``StopIteration`` carries the result)
while holding its own lock, released only while it waits; the sync shell
serves any thread this way, the asyncio shell any task. Time comes from
``clock`` (monotonic seconds), so that deadlines are decided here too.
"""

from __future__ import annotations

import enum
import functools
import time
import weakref
from collections import deque
from collections.abc import Callable, Generator, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from ._errors import EpcapError, ProtocolError
from ._launch import Launch
from ._options import DIRECTIONS, choice
from ._packet import Packet, packet_type
from ._protocol import End, Ready, Refused, Reply, Session, State, Stats, encode

KEEPALIVE = encode("keepalive")
"""The keepalive command's frame."""
RESUME = encode("resume")
"""The frame that ends a paused start's hold."""
START_TIMEOUT = 30.0
"""Seconds to wait for the ``ready`` frame."""
STOP_TIMEOUT = 2.0
"""Seconds a stopping helper gets to send its ``eof`` and exit, before signals."""
COMMAND_TIMEOUT = 10.0
"""Seconds a command may wait for its answer (the helper answers at once)."""

T = TypeVar("T")


@dataclass(slots=True)  # not frozen: that costs a microsecond per need
class Io:
    """Move bytes until something happens or ``deadline`` (None: no limit);
    first close the helper's stdin if ``close_input``; read the helper's
    stdout unless ``read`` is False (a keepalive only writes: a capture
    nobody iterates must leave the packets with the helper)."""

    write: bytes | None
    close_input: bool
    deadline: float | None
    read: bool = True


@dataclass(slots=True)  # not frozen: that costs a microsecond per need
class Wait:
    """Another caller is moving bytes: sleep until notified or ``deadline``."""

    deadline: float | None


@dataclass(slots=True)  # not frozen: that costs a microsecond per need
class Reap:
    """Close the helper's pipes and reap it within ``timeout`` seconds."""

    timeout: float


class Signal(enum.Enum):
    """Wake-ups a shell delivers."""

    NOTIFY = "notify"
    INTERRUPT = "interrupt"


NOTIFY = Signal.NOTIFY
INTERRUPT = Signal.INTERRUPT

Need = Io | Wait | Reap | Signal
Op = Generator[Need, None, T]
"""An operation: yields needs, returns its result."""


class Phase(enum.Enum):
    """Where a capture is, as its users see it."""

    STARTING = "starting"
    """Waiting for ``ready``."""
    RUNNING = "running"
    """Capturing."""
    STOPPING = "stopping"
    """Asked to stop: what was captured still comes, then ``eof``."""
    ENDED = "ended"
    """Nothing more will come from the helper; queued packets remain."""
    CLOSED = "closed"
    """Closed by its user: nothing more is delivered."""


def deadline_after(timeout: float | None, now: float, what: str = "timeout") -> float | None:
    """``now + timeout``, None for no limit; a timeout that is not a finite
    number of seconds, 0 or more, is TypeError or ValueError."""
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise TypeError(f"{what} must be a number of seconds or None, not {type(timeout).__name__}")
    if not 0 <= timeout < float("inf"):
        raise ValueError(f"{what} must be a finite number of seconds, 0 or more, not {timeout!r}")
    return now + timeout


class Driver:
    """One capture's state: the helper's stream, the queue of packets, the
    commands awaiting answers, the deadlines and the end.

    ``launch`` says where the helper runs and explains one that exits
    without a word (a refusal by sudo or ssh, say); ``owner`` is the
    capture whose packets say it; ``paused``: the helper holds (``-H``)
    until the first read or :meth:`resume`."""

    def __init__(
        self,
        *,
        file_mode: bool,
        launch: Launch,
        owner: object = None,
        paused: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._launch = launch
        self.paused = paused
        """The helper holds: it takes no packet until the resume frame."""
        ref = weakref.ref(owner) if owner is not None else lambda: None  # no cycle: __del__ runs

        @functools.lru_cache(maxsize=64)
        def tagged(ifid: int) -> type[Packet]:
            """The packets' class: built once ``ready`` named the interface."""
            interface = self._session.settings.get("interface")
            return packet_type(interface, ifid, ref(), host=launch.host)

        self._session = Session(file_mode=file_mode, packet_type=tagged, where=launch.where)
        self.space: Callable[[], memoryview] = self._session.space
        """Where the shell reads the helper's stdout into; then :meth:`filled`."""
        self._clock = clock
        self._queue: deque[list[Packet] | EpcapError] = deque()
        self.rest: Iterator[Packet] = iter(())
        """The packets of the batch being iterated that nobody took yet. It
        is replaced only once exhausted, so a reader may hold it meanwhile."""
        self._outbox = bytearray()
        self._asked: deque[tuple[int, str]] = deque()  # (ticket, command), in write order
        self._answers: dict[int, Reply | Refused] = {}
        self._abandoned: set[int] = set()
        self._tickets = 0
        self._moving = False  # a caller holds the Io
        self._stop_asked = False
        self._input_open = True
        self._stream_over = False  # stdout at its end, or the stream broken
        self._silent_exit = False  # ... without an eof or error frame
        self._reaped = False
        self._closed = False
        self._closers = 0  # close() operations under way: they reap the helper
        self._end_by: float | None = None  # then the helper is signalled and reaped
        self._fatal: EpcapError | None = None
        self.settings: Mapping[str, Any] = {}
        self.final_stats: Mapping[str, int] | None = None
        self.last_stats: Mapping[str, int] | None = None

    # -- what the shell reports ------------------------------------------------

    def filled(self, count: int) -> None:
        """``count`` bytes were read into :meth:`space`; 0 at the end of stdout."""
        if not count:
            self._stream_over = True
            self._silent_exit = not self._session.end_of_stream()
            return
        for event in self._session.filled(count):
            if isinstance(event, list):
                self._queue.append(event)
            elif isinstance(event, (Reply, Refused)):
                self._answer(event)
            elif isinstance(event, Stats):
                self.last_stats = event.stats
            elif isinstance(event, End):
                self.final_stats = event.stats
            elif isinstance(event, Ready):
                self.settings = event.settings
            else:
                self._fail(event)

    def wrote(self, count: int) -> None:
        """``count`` bytes of the last ``Io.write`` went to the helper."""
        del self._outbox[:count]

    def input_closed(self) -> None:
        """The helper's stdin was closed, as ``Io.close_input`` asked."""
        self._input_open = False

    def input_broken(self) -> None:
        """Writing to the helper's stdin failed: it is gone or going."""
        self._input_open = False
        self._outbox.clear()

    def reaped(self, returncode: int | None, stderr: str) -> None:
        """The helper's pipes are closed and it was reaped (None: handed to
        the reaper thread); ``stderr`` is what it or sudo wrote there."""
        self._reaped = self._stream_over = True
        self._input_open = False
        if self._silent_exit:
            self._silent_exit = False
            self._fail(self._exit_error(returncode, stderr))

    def ask_stop(self) -> None:
        """Ask the helper to stop, from any thread or a signal handler: the
        shell then interrupts its ``Io``, or runs :meth:`poke`."""
        self._stop_asked = True

    # -- what the shell asks ---------------------------------------------------

    @property
    def phase(self) -> Phase:
        """Where the capture is."""
        if self._closed:
            return Phase.CLOSED
        if self._stream_over or self._session.state is State.ENDED:
            return Phase.ENDED
        if self._session.state is State.SETUP:
            return Phase.STARTING
        return Phase.STOPPING if self._stop_asked else Phase.RUNNING

    def remaining(self, deadline: float | None) -> float | None:
        """Seconds until ``deadline`` (never negative), None for no limit."""
        return None if deadline is None else max(deadline - self._clock(), 0.0)

    def orphaned(self) -> bool:
        """An operation was abandoned (cancelled) after the capture closed
        and before its helper was reaped, and no close() is under way to
        reap it: the shell hands it to the reaper thread, then reports
        :meth:`reaped` with None."""
        return self._closed and not self._reaped and not self._moving and not self._closers

    @property
    def pending(self) -> int:
        """Packets received and not yet taken (those of ``rest`` excluded)."""
        queue = self._queue.copy()  # one step: another thread may append meanwhile
        return sum(len(item) for item in queue if isinstance(item, list))

    # -- operations ------------------------------------------------------------

    def start(self) -> Op[None]:
        """Wait for ``ready``; on an error, end the helper and raise it."""
        deadline = self._clock() + START_TIMEOUT
        error: EpcapError | None = None
        while not self.settings:  # until ``ready``
            if self._queue:
                head = self._queue.popleft()  # before ready, only an error is queued
                error = head if isinstance(head, EpcapError) else ProtocolError("no 'ready'")
                break
            if self._reaped:
                error = ProtocolError("the helper ended before 'ready'")
                break
            if self._clock() >= deadline:
                error = ProtocolError(f"no 'ready' from the helper in {START_TIMEOUT:.0f} s")
                break
            yield from self._io(deadline)
        if error is not None:
            if error.host is None:
                error.host = self._launch.host
            yield from self.close()
            raise error

    def next_batch(self, timeout: float | None = None, *, hold: bool = False) -> Op[Any]:
        """The next list of packets (first what ``rest`` holds); None at the
        end or once closed; the helper's error after the packets before it;
        TimeoutError if ``timeout`` seconds pass first (after one look at
        what the helper sent: ``timeout=0`` takes what is there, without
        waiting). Closed before the
        call, ValueError; closed (by another thread) during it, None. With
        ``hold``, the batch becomes ``rest`` and its iterator is returned."""
        deadline = deadline_after(timeout, self._clock())
        if self._closed:
            raise ValueError("I/O operation on a closed capture")
        for first in self.rest:  # (an exhausted rest costs no list)
            leftover = [first, *self.rest]
            return self._hold(leftover) if hold else leftover
        if self.paused:  # the first read: the packets may flow
            self.paused = False
            if self._input_open and not self._stop_asked:
                self._outbox += RESUME
                if self._moving:
                    yield INTERRUPT  # the caller moving bytes writes it
        looked = False
        while True:
            if self._closed:
                return None  # closed meanwhile: close() discards the rest and reaps
            if self._queue:
                item = self._queue.popleft()
                if isinstance(item, EpcapError):
                    yield from self._finish()
                    raise item
                return self._hold(item) if hold else item
            if self._reaped:
                return None
            if looked and deadline is not None and self._clock() >= deadline:
                raise TimeoutError(f"no packet in {timeout} s")
            looked = True
            yield from self._io(deadline)

    def ready_packet(self) -> Packet | None:
        """The next packet if one is at hand, in ``rest`` or in a batch
        already received (no waiting, no operation), else None: then
        :meth:`next_packet` waits for it (or raises what is queued)."""
        for packet in self.rest:
            return packet
        head = self._queue[0] if self._queue and not self._closed else None
        if isinstance(head, list):
            self._queue.popleft()
            for packet in self._hold(head):
                return packet
        return None

    def next_packet(self, timeout: float | None = None) -> Op[Packet | None]:
        """The next packet; None at the end; as :meth:`next_batch` otherwise."""
        deadline = deadline_after(timeout, self._clock())
        if self._closed:
            raise ValueError("I/O operation on a closed capture")
        packet = self.ready_packet()
        if packet is not None:
            return packet
        while True:
            left = self.remaining(deadline)
            rest: Iterator[Packet] | None = yield from self.next_batch(left, hold=True)
            if rest is None:
                return None
            for packet in rest:
                return packet

    def command(self, command: str, *args: object) -> Op[Any]:
        """Send one command; return its answer's value, raise its refusal."""
        if self._closed or self._stop_asked or not self._input_open:
            raise ValueError("the capture is closed or stopping")
        if self.phase is Phase.ENDED:
            raise ValueError("the capture has ended")
        message = encode(command, *args)
        ticket = self._tickets = self._tickets + 1
        self._outbox += message
        self._asked.append((ticket, command))
        if self._moving:
            yield INTERRUPT  # the caller moving bytes has something to write
        deadline = self._clock() + COMMAND_TIMEOUT
        try:
            while ticket not in self._answers:
                if self._fatal is not None or self._reaped:
                    error = self._fatal or ProtocolError(
                        f"the helper ended without answering {command!r}"
                    )
                    yield from self._finish()
                    raise error
                if self._clock() >= deadline:
                    raise TimeoutError(f"no answer to {command!r} in {COMMAND_TIMEOUT:.0f} s")
                yield from self._io(deadline)
        finally:
            if ticket not in self._answers:
                self._abandoned.add(ticket)
        answer = self._answers.pop(ticket)
        if isinstance(answer, Refused):
            raise answer.error
        return answer.value

    def stats(self) -> Op[Mapping[str, int]]:
        """The helper's counters now; once it ended, its final ones."""
        if self.phase is not Phase.RUNNING and self.final_stats is not None:
            return self.final_stats
        value = yield from self.command("stats")
        if not isinstance(value, dict):
            raise ProtocolError("malformed stats reply")
        return value

    def send(self, frame: bytes | bytearray | memoryview) -> Op[int]:
        """Send one link-layer frame; the bytes sent."""
        if not isinstance(frame, (bytes, bytearray, memoryview)):
            raise TypeError(f"frame must be bytes, not {type(frame).__name__}")
        if not frame:
            raise ValueError("frame must not be empty")
        sent = yield from self.command("send", bytes(frame))
        if not isinstance(sent, int):
            raise ProtocolError("malformed send reply")
        return sent

    def set_filter(self, expression: str) -> Op[None]:
        """Replace the BPF filter; returns once the helper applied it."""
        if not isinstance(expression, str):
            raise TypeError(f"expression must be a string, not {type(expression).__name__}")
        try:
            expression.encode()
        except UnicodeEncodeError as exc:
            raise ValueError(f"expression cannot be encoded as UTF-8: {exc.reason}") from None
        yield from self.command("filter", expression)

    def set_direction(self, direction: str) -> Op[None]:
        """Capture only packets received (``"in"``), sent (``"out"``) or
        both (``"inout"``); returns once the helper applied it."""
        yield from self.command("direction", choice("direction", direction, DIRECTIONS))

    def resume(self) -> Op[None]:
        """End a paused start's hold now, rather than at the first read."""
        if self.paused:
            self.paused = False
            yield from self._tell(RESUME)

    def poke(self) -> Op[None]:
        """After :meth:`ask_stop` with nobody moving bytes: close the
        helper's stdin now (and take what it already sent)."""
        if self._stop_asked and self._input_open and not self._moving and not self._reaped:
            yield from self._io(self._clock())

    def keepalive(self) -> Op[None]:
        """Send the helper a ``keepalive`` command (no answer comes), so that
        a remote one whose idle limit (``-k``) would end it lives on."""
        yield from self._tell(KEEPALIVE)

    def _tell(self, frame: bytes) -> Op[None]:
        """Send the helper a command that has no answer: it waits at most a
        second to write, and never reads."""
        if self._closed or self._stop_asked or not self._input_open or self._reaped:
            return
        self._outbox += frame
        if self._moving:
            yield INTERRUPT  # the caller moving bytes writes it
            return
        self._moving = True
        try:
            write = bytes(self._outbox) if self._outbox and self._input_open else None
            yield Io(write, False, self._clock() + 1.0, read=False)
        finally:
            self._moving = False
        yield NOTIFY

    def close(self) -> Op[None]:
        """Stop the helper, read what it still sends (its final statistics)
        within :data:`STOP_TIMEOUT`, discard the packets, reap it. A close
        while another is under way returns once that one has reaped."""
        self._closers += 1
        try:
            if not self._closed:
                self._closed = self._stop_asked = True
                self._end_by = self._clock() + STOP_TIMEOUT
                if self._moving:
                    yield INTERRUPT  # the caller moving bytes steps aside
            yield from self._finish()
        finally:
            self._closers -= 1
        self._queue.clear()
        deque(self.rest, maxlen=0)  # its holders see the end too

    # -- inside ----------------------------------------------------------------

    def _io(self, deadline: float | None) -> Op[None]:
        """One step of moving bytes, or of waiting for whoever moves them;
        once nothing more can come (or the time to end has come), the reap."""
        if self._moving:
            yield Wait(self._sooner(deadline))
            return
        if self._reaped:
            return
        self._moving = True
        try:
            now = self._clock()
            if self._stream_over or (self._end_by is not None and now >= self._end_by):
                timeout = STOP_TIMEOUT if self._end_by is None else self._end_by - now
                yield Reap(max(timeout, 0.1))
            else:
                write = bytes(self._outbox) if self._outbox and self._input_open else None
                close = self._stop_asked and self._input_open and not self._outbox
                yield Io(write, close, self._sooner(deadline))
        finally:
            self._moving = False
        yield NOTIFY

    def _finish(self) -> Op[None]:
        """The capture is over for its user: stop and reap the helper."""
        self._stop_asked = True
        if self._end_by is None:
            self._end_by = self._clock() + STOP_TIMEOUT
        while not self._reaped:
            yield from self._io(self._end_by)

    def _sooner(self, deadline: float | None) -> float | None:
        if self._end_by is None:
            return deadline
        return self._end_by if deadline is None else min(deadline, self._end_by)

    def _hold(self, batch: list[Packet]) -> Iterator[Packet]:
        self.rest = iter(batch)
        return self.rest

    def _answer(self, event: Reply | Refused) -> None:
        if not self._asked:
            self._fail(ProtocolError(f"an answer to {event.command!r}, which nobody asked"))
            return
        ticket, command = self._asked.popleft()
        if event.command != command:
            self._fail(ProtocolError(f"expected the answer to {command!r}, got {event.command!r}"))
        elif ticket in self._abandoned:
            self._abandoned.discard(ticket)
        else:
            self._answers[ticket] = event

    def _fail(self, error: EpcapError) -> None:
        """The error that ends the capture: after the packets queued before it."""
        if error.host is None:
            error.host = self._launch.host
        if self._fatal is None:
            self._fatal = error
            self._queue.append(error)
        if isinstance(error, ProtocolError):
            self._stream_over = True  # nothing more can be understood

    def _exit_error(self, returncode: int | None, stderr: str) -> EpcapError:
        """Why the stream ended without ``eof`` or ``error``."""
        setup = self._session.state is State.SETUP
        when = "before 'ready'" if setup else "during the capture"
        return self._launch.exit_error(returncode, stderr, when, starting=setup)

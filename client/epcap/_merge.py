"""Several captures as one stream, in time order: :func:`merge` and
:func:`merge_async`.

:class:`Merger` decides, with no I/O, which packets may go: the earliest
queued packet goes once every other running capture has a packet queued
(none of theirs can be earlier) or has ended. A live capture may be quiet
for good, so a packet also goes once it has waited ``hold`` seconds since it
arrived: a quiet capture's packet could then come out of order only if its
helper took longer than ``hold`` to deliver it (with the default timeout it
takes about a millisecond). Files never wait: they are merged strictly. The
shells feed it from one reader per capture (a thread, or a task) through a
bounded queue, so a slow consumer makes the helpers wait, as one capture does.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import queue
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Iterator, Sequence
from types import TracebackType
from typing import Any

from ._aio import AsyncCapture
from ._capture import Capture
from ._closing import Closing
from ._driver import Wait, deadline_after
from ._packet import Packet

HOLD = 0.1
"""Seconds a live packet waits for the other captures at most."""
QUEUE_BATCHES = 64
"""Batches on their way from the readers to the consumer, at most."""
_END = object()


class Merger:
    """The time order of ``count`` sources: :meth:`add` their batches and
    :meth:`end` them; :meth:`pop` gives what may go now, and when to ask again."""

    def __init__(self, count: int, hold: float | None) -> None:
        self._hold = hold
        self._queues: list[deque[tuple[float, Packet]]] = [deque() for _ in range(count)]
        self._heap: list[tuple[int, int]] = []  # (time, source) of each nonempty queue's head
        self._running = set(range(count))
        self._waiting = count  # running sources with nothing queued
        self._errors: dict[int, BaseException] = {}
        self._ready: deque[Packet] = deque()

    @property
    def done(self) -> bool:
        """Every source ended and every packet went."""
        return not self._running and not self._heap

    def add(self, source: int, batch: Sequence[Packet], now: float) -> None:
        """Packets of ``source`` that arrived at ``now`` (monotonic seconds)."""
        if not batch:
            return
        q = self._queues[source]
        if not q:
            heapq.heappush(self._heap, (batch[0].time, source))
            if source in self._running:
                self._waiting -= 1
        q.extend((now, packet) for packet in batch)

    def end(self, source: int, error: BaseException | None = None) -> None:
        """``source`` will send nothing more; ``error`` is raised by :meth:`pop`
        once its packets went."""
        if source in self._running:
            self._running.discard(source)
            if not self._queues[source]:
                self._waiting -= 1
            if error is not None:
                self._errors[source] = error

    def pop(self, now: float) -> tuple[list[Packet], float | None]:
        """The packets that may go at ``now``, in time order, and when more
        may go without news (None: only news can tell). A source's error
        is raised once its packets went."""
        for source, error in list(self._errors.items()):
            if not self._queues[source]:
                del self._errors[source]
                raise error
        out: list[Packet] = []
        heap, queues = self._heap, self._queues
        while heap:
            source = heap[0][1]
            q = queues[source]
            arrived = q[0][0]
            if self._waiting and (self._hold is None or arrived + self._hold > now):
                return out, None if self._hold is None else arrived + self._hold
            heapq.heappop(heap)
            out.append(q.popleft()[1])
            if q:
                heapq.heappush(heap, (q[0][1].time, source))
            elif source in self._running:
                self._waiting += 1
            elif source in self._errors:
                break  # the next pop raises it
        return out, None

    def feed(self, source: int, item: Any, arrived: float) -> None:
        """What a reader put on the queue: a batch, an error or the end."""
        if item is _END:
            self.end(source)
        elif isinstance(item, BaseException):
            self.end(source, item)
        else:
            self.add(source, item, arrived)

    def take(self, now: float, deadline: float | None) -> Packet | Wait | None:
        """The next packet; None at the end; else how long to wait for news
        (TimeoutError once ``deadline`` passed)."""
        when = None
        if not self._ready:
            packets, when = self.pop(now)
            self._ready.extend(packets)
        if self._ready:
            return self._ready.popleft()
        if self.done:
            return None
        if deadline is not None and now >= deadline:
            raise TimeoutError("no packet in time")
        if when is None or deadline is None:
            return Wait(deadline if when is None else when)
        return Wait(min(when, deadline))


def _hold(
    captures: Sequence[Capture | AsyncCapture], kind: type, hold: float | None
) -> float | None:
    """Check what merge() was given; the hold, or None when all are files."""
    for cap in captures:
        if not isinstance(cap, kind):
            raise TypeError(f"merge takes {kind.__name__} objects, not {type(cap).__name__}")
    deadline_after(hold, 0.0, "hold")
    return hold if any(cap.interface is not None for cap in captures) else None


def _remaining(deadline: float | None) -> float | None:
    return None if deadline is None else max(deadline - time.monotonic(), 0.0)


class Merged(Closing):
    """The packets of several captures in time order, each saying its
    :attr:`~epcap.Packet.capture` and :attr:`~epcap.Packet.interface`.
    Iterate over it, or call :meth:`next` with a timeout; it ends when every
    capture ended and raises a capture's error after that capture's packets.
    Closing it (or leaving its ``with``) closes the captures."""

    def __init__(self, captures: Sequence[Capture], hold: float | None) -> None:
        self._captures = list(captures)
        self._merger = Merger(len(self._captures), _hold(self._captures, Capture, hold))
        self._queue: queue.Queue[tuple[int, Any, float]] = queue.Queue(maxsize=QUEUE_BATCHES)
        self._abandoned = threading.Event()
        self._readers = [
            threading.Thread(target=self._read, args=(i, cap), daemon=True, name="epcap-merge")
            for i, cap in enumerate(self._captures)
        ]
        for reader in self._readers:
            reader.start()

    def _read(self, index: int, cap: Capture) -> None:
        item: Any = _END
        try:
            for batch in cap.batches():
                if not self._put((index, batch, time.monotonic())):
                    return
        except Exception as exc:  # raised by the consumer, in its turn
            item = exc
        self._put((index, item, time.monotonic()))

    def _put(self, item: tuple[int, Any, float]) -> bool:
        while not self._abandoned.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def next(self, timeout: float | None = None) -> Packet | None:
        """The next packet in time order; None at the end; TimeoutError if
        ``timeout`` seconds pass first (the merge goes on)."""
        deadline = deadline_after(timeout, time.monotonic())
        while True:
            step = self._merger.take(time.monotonic(), deadline)
            if type(step) is not Wait:
                return step  # type: ignore[return-value]
            with contextlib.suppress(queue.Empty):
                self._merger.feed(*self._queue.get(timeout=_remaining(step.deadline)))

    def __iter__(self) -> Iterator[Packet]:
        while (packet := self.next()) is not None:
            yield packet

    def stop(self) -> None:
        """Stop every capture: the stream ends after what they captured."""
        for cap in self._captures:
            cap.stop()

    def close(self) -> None:
        """Close every capture and end the readers."""
        self._abandoned.set()
        self.stop()
        for cap in self._captures:
            cap.close()
        for reader in self._readers:
            reader.join(5)


class AsyncMerged:
    """As :class:`Merged`, for asyncio: ``async for``, ``await next()``,
    ``async with``; a task per capture reads it."""

    def __init__(self, captures: Sequence[AsyncCapture], hold: float | None) -> None:
        self._captures = list(captures)
        self._merger = Merger(len(self._captures), _hold(self._captures, AsyncCapture, hold))
        self._queue: asyncio.Queue[tuple[int, Any, float]] = asyncio.Queue(QUEUE_BATCHES)
        self._readers = [
            asyncio.get_running_loop().create_task(self._read(i, cap))
            for i, cap in enumerate(self._captures)
        ]

    async def _read(self, index: int, cap: AsyncCapture) -> None:
        item: Any = _END
        try:
            async for batch in cap.batches():
                await self._queue.put((index, batch, time.monotonic()))
        except Exception as exc:  # raised by the consumer, in its turn
            item = exc
        await self._queue.put((index, item, time.monotonic()))

    async def next(self, timeout: float | None = None) -> Packet | None:
        """As :meth:`Merged.next`."""
        deadline = deadline_after(timeout, time.monotonic())
        while True:
            step = self._merger.take(time.monotonic(), deadline)
            if type(step) is not Wait:
                return step  # type: ignore[return-value]
            try:
                async with asyncio.timeout(_remaining(step.deadline)):
                    self._merger.feed(*await self._queue.get())
            except TimeoutError:
                pass

    def __aiter__(self) -> AsyncIterator[Packet]:
        return self

    async def __anext__(self) -> Packet:
        packet = await self.next()
        if packet is None:
            raise StopAsyncIteration
        return packet

    def stop(self) -> None:
        """As :meth:`Merged.stop`."""
        for cap in self._captures:
            cap.stop()

    async def aclose(self) -> None:
        """As :meth:`Merged.close`."""
        for task in self._readers:
            task.cancel()
        await asyncio.gather(*self._readers, return_exceptions=True)
        for cap in self._captures:
            await cap.aclose()

    async def __aenter__(self) -> AsyncMerged:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


def merge(*captures: Capture, hold: float | None = HOLD) -> Merged:
    """The packets of ``captures`` as one stream in time order (see
    :class:`Merged`); ``pkt.capture`` and ``pkt.interface`` say where each
    came from, and ``dlt, time, length, data = pkt`` still holds. Live, a
    packet waits at most ``hold`` seconds for a quiet capture; files are
    merged strictly."""
    return Merged(captures, hold)


def merge_async(*captures: AsyncCapture, hold: float | None = HOLD) -> AsyncMerged:
    """:func:`merge` for asyncio, in the running loop."""
    return AsyncMerged(captures, hold)

"""The asyncio shell: the driver's operations as coroutines.

It never starts, replaces or blocks an event loop: the pipes are watched
with ``loop.add_reader``/``add_writer``, and waiting for a helper to exit
runs in the loop's default executor. Several tasks may use one capture; a
timeout or cancellation around any call leaves the capture usable (a
cancelled close hands the helper to the reaper thread, which reaps it).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Generator, Mapping
from types import TracebackType
from typing import Any, Unpack

from . import _core, _protocol
from ._core import CaptureBase, StartOptions
from ._driver import Io, Op, Phase, Reap, T, Wait
from ._launch import Launch
from ._options import Options
from ._packet import Packet


class AsyncCapture(CaptureBase):
    """One running capture in an asyncio program: ``async for`` packets,
    ``batches()``, :meth:`next` with a timeout, and the commands as
    coroutines. Use it with ``async with``, or await :meth:`aclose`. Many
    can run in one loop, and several tasks may use one capture; :meth:`stop`
    may also be called from another thread."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self._loop = asyncio.get_running_loop()
        self._wakers: set[asyncio.Future[None]] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._keepalive: asyncio.Task[None] | None = None

    async def _drive(self, op: Op[T]) -> T:
        """Run one driver operation to its result, doing what it needs."""
        try:
            need = next(op)
            while True:
                if type(need) is Io:
                    await self._move(need)
                elif type(need) is Wait:
                    await self._sleep(need.deadline, self._loop.create_future())
                elif type(need) is Reap:
                    await self._reap(need)
                else:  # NOTIFY or INTERRUPT: one loop serves both
                    self._wake()
                need = op.send(None)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]
        finally:
            op.close()
            self._wake()
            self._orphan()

    def _wake(self) -> None:
        for waker in self._wakers:
            if not waker.done():
                waker.set_result(None)

    async def _sleep(self, deadline: float | None, waker: asyncio.Future[None]) -> None:
        self._wakers.add(waker)
        try:
            await asyncio.wait({waker}, timeout=self._driver.remaining(deadline))
        finally:
            self._wakers.discard(waker)

    async def _move(self, io: Io) -> None:
        self._begin(io)
        if io.write is None and io.read:
            # The helper is often ahead (a file, a flood): after one turn of
            # the loop, for the other tasks' sake, take what is there without
            # a reader, a future and a wait for each read.
            await asyncio.sleep(0)
            if self._read():
                return
        loop, waker = self._loop, self._loop.create_future()
        ready = [False]

        def writable() -> None:
            ready[0] = True
            if not waker.done():
                waker.set_result(None)

        if io.read:
            loop.add_reader(self._out, self._wake_one, waker)
        if io.write is not None:
            loop.add_writer(self._in, writable)
        try:
            await self._sleep(io.deadline, waker)
        finally:
            if io.read:
                loop.remove_reader(self._out)
            if io.write is not None:
                loop.remove_writer(self._in)
        self._end(io, writable=ready[0])

    @staticmethod
    def _wake_one(waker: asyncio.Future[None]) -> None:
        if not waker.done():
            waker.set_result(None)

    async def _reap(self, need: Reap) -> None:
        stderr = self._release()
        # Shielded: if this task is cancelled, the executor's thread reaps.
        await asyncio.shield(self._loop.run_in_executor(None, _core.reap, self._proc, need.timeout))
        self._driver.reaped(self._proc.returncode, stderr)

    def __aiter__(self) -> AsyncIterator[Packet]:
        if _protocol._speedups is not None:
            # the same in C: a packet at hand is awaited without a coroutine
            packets: AsyncIterator[Packet] = _protocol._speedups.AsyncPackets(
                self._driver, _Packets(self).wait
            )
            return packets
        return _Packets(self)

    async def batches(self) -> AsyncIterator[list[Packet]]:
        """Iterate over the packets as lists, one per frame the helper sent."""
        while (batch := await self._drive(self._driver.next_batch())) is not None:
            yield batch

    async def next(self, timeout: float | None = None) -> Packet | None:
        """As :meth:`epcap.Capture.next`."""
        return await self._drive(self._driver.next_packet(timeout))

    async def stats(self) -> Mapping[str, int]:
        """As :meth:`epcap.Capture.stats`."""
        return await self._drive(self._driver.stats())

    async def set_filter(self, expression: str) -> None:
        """As :meth:`epcap.Capture.set_filter`."""
        await self._drive(self._driver.set_filter(expression))

    async def set_direction(self, direction: str) -> None:
        """As :meth:`epcap.Capture.set_direction`."""
        await self._drive(self._driver.set_direction(direction))

    async def resume(self) -> None:
        """As :meth:`epcap.Capture.resume`."""
        await self._drive(self._driver.resume())

    async def send(self, frame: bytes | bytearray | memoryview) -> int:
        """As :meth:`epcap.Capture.send`."""
        return await self._drive(self._driver.send(frame))

    def stop(self) -> None:
        """As :meth:`epcap.Capture.stop`: from a task, a callback, a signal
        handler of the loop, or another thread."""
        self._driver.ask_stop()
        with contextlib.suppress(RuntimeError):  # a closed loop runs the capture no more
            self._loop.call_soon_threadsafe(self._poke)

    def _keep_alive(self, every: float) -> None:
        """Send the helper a keepalive every ``every`` seconds from a task of
        the loop, until the capture closes or ends."""

        async def run() -> None:
            while self._driver.phase in (Phase.RUNNING, Phase.STOPPING):
                await asyncio.sleep(every)
                with contextlib.suppress(Exception):  # the capture reports its own failures
                    await self._drive(self._driver.keepalive())

        self._keepalive = self._loop.create_task(run())

    def _poke(self) -> None:
        self._wake()  # a task moving bytes closes the input; else this one does
        task = self._loop.create_task(self._drive(self._driver.poke()))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def aclose(self) -> None:
        """Stop the helper, discard what it still sends, and reap it."""
        try:
            await self._drive(self._driver.close())
        finally:
            if self._keepalive is not None and self._keepalive is not asyncio.current_task():
                self._keepalive.cancel()

    async def __aenter__(self) -> AsyncCapture:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


class _Packets:
    """``async for`` over a capture: the position is the capture's, so a
    timeout or cancellation around one ``__anext__`` loses nothing and the
    next call goes on."""

    def __init__(self, capture: AsyncCapture) -> None:
        self._capture = capture

    def __aiter__(self) -> _Packets:
        return self

    async def __anext__(self) -> Packet:
        packet = self._capture._driver.ready_packet()  # the common case: no operation to run
        return await self.wait() if packet is None else packet

    async def wait(self) -> Packet:
        """The next packet, once none is at hand; StopAsyncIteration at the end."""
        packet = await self._capture.next()
        if packet is None:
            raise StopAsyncIteration
        return packet


class _Starting:
    """What :func:`start_async` returns: await it, or ``async with`` it."""

    def __init__(self, options: Options, launch: Launch) -> None:
        self._options, self._launch = options, launch
        self._capture: AsyncCapture | None = None

    async def _start(self) -> AsyncCapture:
        cap = AsyncCapture(_core.spawn(self._launch), self._options, self._launch)
        try:
            await cap._drive(cap._driver.start())
        except BaseException:
            await cap.aclose()
            raise
        if self._launch.keepalive is not None:
            cap._keep_alive(self._launch.keepalive)
        return cap

    def __await__(self) -> Generator[Any, None, AsyncCapture]:
        return self._start().__await__()

    async def __aenter__(self) -> AsyncCapture:
        self._capture = await self._start()
        return self._capture

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._capture is not None:
            await self._capture.aclose()


def start_async(**options: Unpack[StartOptions]) -> _Starting:
    """Start a capture for asyncio: ``cap = await epcap.start_async(...)`` or
    ``async with epcap.start_async(...) as cap``. Options are those of
    :func:`epcap.start`, validated now (TypeError/ValueError), before anything
    is spawned; the helper starts when awaited."""
    return _Starting(*_core.prepare(options))

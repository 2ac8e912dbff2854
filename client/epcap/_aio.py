"""The asyncio shell: reads of the helper's stdout in the caller's loop.

It never starts, replaces or blocks an event loop: the pipe is watched with
``loop.add_reader``, and waiting for a helper to exit runs in the loop's
default executor. Cleanup survives cancellation: a cancelled close hands the
helper to the reaper thread, which reaps it anyway.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable, Generator, Mapping
from types import TracebackType
from typing import Any, Unpack

from . import _core
from ._core import CaptureBase, StartOptions
from ._errors import EpcapError, ProtocolError
from ._options import Options
from ._packet import Packet


async def _readable(fd: int, timeout: float | None) -> bool:
    """Wait until fd can be read; False if `timeout` passed first."""
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[None] = loop.create_future()

    def wake() -> None:
        if not ready.done():
            ready.set_result(None)

    loop.add_reader(fd, wake)
    try:
        await asyncio.wait_for(ready, timeout)
    except TimeoutError:
        return False
    finally:
        loop.remove_reader(fd)
    return True


async def _reap(capture: CaptureBase, timeout: float) -> None:
    """Reap the helper in the executor; if cancelled, the thread finishes."""
    loop = asyncio.get_running_loop()
    await asyncio.shield(loop.run_in_executor(None, _core.reap, capture._proc, timeout))


class AsyncCapture(CaptureBase):
    """One running capture in an asyncio program: ``async for`` packets,
    ``batches()``, and the commands as coroutines. Use it with
    ``async with``, or await :meth:`aclose`. Many can run in one loop, and
    several tasks may use one capture: reads are serialised."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self._reading = asyncio.Lock()
        stdout = self._proc.stdout
        assert stdout is not None
        self._fd = stdout.fileno()
        os.set_blocking(self._fd, False)

    async def _fill(
        self, timeout: float | None = None, done: Callable[[], bool] | None = None
    ) -> bool:
        """Read once from the helper and queue what it completes; False if
        ``timeout`` passed with nothing to read. Another task may have read
        what this one waits for while it waited for the lock: then ``done``
        says so and nothing is read."""
        async with self._reading:
            if done is not None and done():
                return True
            if not await _readable(self._fd, timeout):
                return False
            try:
                data = self._read(self._fd)
            except BlockingIOError:
                return True  # another reader took it
            if self._absorb(data):
                await _reap(self, _core.STOP_TIMEOUT)
                self._queue.append(self._exit_error())
            return True

    async def _await_ready(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + _core.START_TIMEOUT
        while self._session.state == "setup":
            if not await self._fill(deadline - loop.time()):
                raise ProtocolError(f"no 'ready' from the helper in {_core.START_TIMEOUT:.0f} s")
            error = self._setup_error()
            if error is not None:
                raise error

    async def _next_batch(self) -> list[Packet] | None:
        while (item := self._take()) is _core._MORE:
            await self._fill(done=lambda: bool(self._queue) or self._eof)
        if item is None or isinstance(item, EpcapError):
            await self._shutdown(_core.STOP_TIMEOUT)
        if isinstance(item, EpcapError):
            raise item
        return item  # type: ignore[return-value]

    async def _packets(self) -> AsyncIterator[Packet]:
        while (batch := await self._next_batch()) is not None:
            for packet in batch:
                yield packet

    def __aiter__(self) -> AsyncIterator[Packet]:
        return self._packets()

    async def batches(self) -> AsyncIterator[list[Packet]]:
        """Iterate over the packets as lists, one per frame the helper sent."""
        while (batch := await self._next_batch()) is not None:
            yield batch

    async def _command(self, command: str, *args: object) -> Any:
        try:
            self._write_command(command, args)
        except BrokenPipeError:
            await self._fill()  # the end of the stream says why
        while not self._replies:
            error = self._fatal_error()
            if error is None and self._eof:
                error = ProtocolError(f"the helper ended without answering {command!r}")
            if error is not None:
                await self._shutdown(_core.STOP_TIMEOUT)
                raise error
            await self._fill(done=lambda: bool(self._replies) or self._eof)
        return self._answer(command)

    async def stats(self) -> Mapping[str, int]:
        """As :meth:`epcap.Capture.stats`."""
        if self._session.state == "ended" and self.final_stats is not None:
            return self.final_stats
        return self._check_stats(await self._command("stats"))

    async def set_filter(self, expression: str) -> None:
        """As :meth:`epcap.Capture.set_filter`."""
        await self._command("filter", self._check_filter(expression))

    async def send(self, frame: bytes | bytearray | memoryview) -> int:
        """As :meth:`epcap.Capture.send`."""
        sent = await self._command("send", self._check_frame(frame))
        if not isinstance(sent, int):
            raise ProtocolError("malformed send reply")
        return sent

    async def aclose(self) -> None:
        """Stop the helper, discard what it still sends, and reap it."""
        if not self._closed:
            await self._shutdown(_core.STOP_TIMEOUT)

    async def _shutdown(self, wait: float) -> None:
        self._closed = True
        self.stop()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        try:
            while not self._eof and loop.time() < deadline:
                await self._fill(deadline - loop.time())  # the eof frame brings final stats
        except (EpcapError, OSError):
            pass  # the helper's last words do not matter to a closing client
        except BaseException:
            self._close_pipes()  # cancelled: the reaper thread finishes the job
            _core.orphans.put(self._proc)
            raise
        finally:
            self._queue.clear()
        self._close_pipes()
        await _reap(self, max(deadline - loop.time(), 0.1))

    async def __aenter__(self) -> AsyncCapture:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


class _Starting:
    """What :func:`start_async` returns: await it, or ``async with`` it."""

    def __init__(self, options: Options, prefix: list[str], helper: str) -> None:
        self._args = (options, prefix, helper)
        self._capture: AsyncCapture | None = None

    async def _start(self) -> AsyncCapture:
        cap = AsyncCapture(_core.spawn(*self._args), *self._args)
        try:
            await cap._await_ready()
        except BaseException:
            await cap._shutdown(_core.STOP_TIMEOUT)
            raise
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

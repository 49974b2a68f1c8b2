"""Running a function on a worker thread and getting its result back to the event loop, cheaply.

Every downloaded piece makes this round trip (its hash and write), ~1,000 times per GiB, and
``loop.run_in_executor`` wrapped in ``asyncio.shield`` costs more than it needs to on both sides:

* on the loop: an asyncio future chained to the executor's (two callbacks and a state copy) and a
  second, shielding future, each with its own callbacks and loop iterations;
* on the worker: ``call_soon_threadsafe`` for every result, which writes a byte to the loop's
  self-pipe; that write hands the GIL back and forth with the busy loop (a worker waits for the
  loop's next system call to get it back), and the loop then reads the byte again.

:class:`Handoff` puts finished results in a queue and wakes the loop only when no wake-up is
already on its way, so results finishing close together cost one self-pipe round trip; the
awaiting coroutine gets a plain future. Cancellation keeps the old guarantee of ``_run``: the
caller unwinds only after the thread is done with the buffers it was given.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
from collections import deque
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["Handoff", "fallback_executor"]

T = TypeVar("T")

_fallback: concurrent.futures.ThreadPoolExecutor | None = None


def fallback_executor() -> concurrent.futures.Executor:
    """A shared pool for storages made without the session's (tests, tools), made on first use.

    The session always passes its own disk pool; this only keeps every storage on one code path.
    """
    global _fallback
    if _fallback is None:
        _fallback = concurrent.futures.ThreadPoolExecutor(4, thread_name_prefix="ccbt-storage")
    return _fallback


class Handoff:
    """Results of executor jobs, delivered to one event loop in batches."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._done: deque[tuple[asyncio.Future[Any], concurrent.futures.Future[Any]]] = deque()
        #: a ``_deliver`` is scheduled and has not started emptying the queue yet
        self._armed = False

    async def run(
        self, executor: concurrent.futures.Executor, fn: Callable[..., T], *args: object
    ) -> T:
        """``fn(*args)`` on ``executor``; on cancellation, wait for the thread before raising."""
        fut: asyncio.Future[T] = self.loop.create_future()
        job = executor.submit(fn, *args)
        job.add_done_callback(lambda job: self._finished(fut, job))
        try:
            return await fut
        except asyncio.CancelledError:
            if not job.done():
                waiter = asyncio.wrap_future(job)
                while not waiter.done():
                    with contextlib.suppress(asyncio.CancelledError):
                        await asyncio.wait([waiter])
                if not waiter.cancelled():
                    waiter.exception()  # mark retrieved; the cancellation wins
            raise

    def _finished(self, fut: asyncio.Future[Any], job: concurrent.futures.Future[Any]) -> None:
        """Worker thread (or the submitting one, if the job was done already): queue the result."""
        self._done.append((fut, job))
        if not self._armed:
            self._armed = True
            try:
                self.loop.call_soon_threadsafe(self._deliver)
            except RuntimeError:  # the loop is closed: nobody is waiting any more
                self._armed = False

    def _deliver(self) -> None:
        """Loop thread: settle every queued result (disarm first, so a later one re-arms)."""
        self._armed = False
        done = self._done
        while done:
            fut, job = done.popleft()
            if fut.done():  # the awaiting task was cancelled
                continue
            if job.cancelled():
                fut.cancel()
            elif (exc := job.exception()) is not None:
                fut.set_exception(exc)
            else:
                fut.set_result(job.result())

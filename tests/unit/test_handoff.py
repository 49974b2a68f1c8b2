"""storage/handoff.py: executor results back to the loop, with shared wake-ups and safe cancels."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from ccbt_engine.storage.handoff import Handoff

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def pool() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(4) as executor:
        yield executor


async def test_results_and_errors_reach_the_caller(pool: ThreadPoolExecutor) -> None:
    handoff = Handoff(asyncio.get_running_loop())
    assert await handoff.run(pool, lambda a, b: a + b, 2, 3) == 5

    def boom() -> None:
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space"):
        await handoff.run(pool, boom)


async def test_results_finishing_together_share_one_wake_up(
    pool: ThreadPoolExecutor, monkeypatch: pytest.MonkeyPatch
) -> None:
    loop = asyncio.get_running_loop()
    handoff = Handoff(loop)
    wakes = 0
    real = loop.call_soon_threadsafe

    def counting(callback, *args):  # type: ignore[no-untyped-def]
        nonlocal wakes
        wakes += 1
        return real(callback, *args)

    monkeypatch.setattr(loop, "call_soon_threadsafe", counting)
    gate = threading.Event()

    def job(i: int) -> int:
        gate.wait()
        return i * i

    tasks = [asyncio.ensure_future(handoff.run(pool, job, i)) for i in range(4)]
    await asyncio.sleep(0)  # all four submitted
    gate.set()
    # keep the loop busy (blocked, as in a long read) until all four have queued their result
    deadline = time.monotonic() + 10
    while len(handoff._done) < 4 and time.monotonic() < deadline:
        time.sleep(0.001)
    assert await asyncio.gather(*tasks) == [0, 1, 4, 9]
    assert 1 <= wakes <= 2  # one, unless two workers checked the flag at the same instant


async def test_a_cancelled_caller_unwinds_only_after_the_thread(pool: ThreadPoolExecutor) -> None:
    handoff = Handoff(asyncio.get_running_loop())
    release = threading.Event()
    finished = threading.Event()

    def slow() -> int:
        release.wait()
        finished.set()
        return 1

    task = asyncio.ensure_future(handoff.run(pool, slow))
    await asyncio.sleep(0.05)
    task.cancel()
    await asyncio.sleep(0.05)
    assert not task.done()  # still waiting for the thread, although cancelled
    release.set()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert finished.is_set()
    # a result that lands after its caller gave up is dropped quietly
    assert await handoff.run(pool, lambda: 7) == 7

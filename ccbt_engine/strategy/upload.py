"""How many queued upload requests one wake-up of a peer's upload task serves.

Why batches: each wake-up costs a task step, a storage call and a socket write; serving the
queued requests together (one read of the chunks they touch, one ``writelines``) spreads that
over many 16 KiB blocks. Why a cap: a batch is charged to the rate limiters before it is sent,
so under a limit it must be small enough that the limiter still paces the connection smoothly
(about 1/8 s of the slowest limit), and without a limit it must not pile more onto the socket's
write buffer than the high-water mark that pauses writing anyway.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

from ccbt_engine.protocol import wire
from ccbt_engine.strategy.ratelimit import TokenBucket

__all__ = ["BLOCK", "MAX_UPLOAD_BATCH", "READ_AHEAD", "batch_bytes", "peek_batch", "take_batch"]

BLOCK = 16 * 1024
#: bytes of requests served per wake-up when no limit applies
MAX_UPLOAD_BATCH = 1024 * 1024
#: batches whose chunks are read ahead while the current one is sent
READ_AHEAD = 2
#: fraction of a second of the slowest limit one batch may carry
_LIMITED_BATCH_SECONDS = 0.125


def batch_bytes(buckets: Sequence[TokenBucket]) -> int:
    """The batch cap for these buckets: :data:`MAX_UPLOAD_BATCH`, or less under a rate limit."""
    rates = [b.rate for b in buckets if not b.unlimited]
    if not rates:
        return MAX_UPLOAD_BATCH
    return max(BLOCK, min(MAX_UPLOAD_BATCH, int(min(rates) * _LIMITED_BATCH_SECONDS)))


def take_batch(queue: deque[wire.Request], max_bytes: int) -> list[wire.Request]:
    """Pop requests from the front of ``queue`` up to ``max_bytes`` (always at least one)."""
    batch: list[wire.Request] = []
    total = 0
    while queue and (not batch or total + queue[0].length <= max_bytes):
        req = queue.popleft()
        batch.append(req)
        total += req.length
    return batch


def peek_batch(queue: deque[wire.Request], max_bytes: int) -> list[wire.Request]:
    """The requests :func:`take_batch` would pop next, left in ``queue`` (for read-ahead)."""
    batch: list[wire.Request] = []
    total = 0
    for req in queue:
        if batch and total + req.length > max_bytes:
            break
        batch.append(req)
        total += req.length
    return batch

"""Recheck: which pieces of a torrent are already on disk and correct.

Reads and hashes run together in worker threads, ``workers`` pieces at a time, so memory stays
bounded (at most ``workers`` pieces in flight) and both cores hash (hashlib releases the GIL on
large buffers). Missing, short or unreadable files simply make their pieces "not verified".
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from pathlib import Path

from ccbt_engine.metainfo import TorrentInfo
from ccbt_engine.storage.files import TorrentStorage


async def recheck(
    storage: TorrentStorage,
    *,
    progress: Callable[[int, int], None] | None = None,
    workers: int = 2,
) -> list[bool]:
    """Verify every piece; returns one bool per piece.

    ``progress(done, total)`` is called on the loop after each piece. Cached blocks are flushed
    first so the check sees what the session has written.
    """
    if workers < 1:
        raise ValueError("workers must be at least 1")
    await storage.flush()
    total = storage.info.num_pieces
    result = [False] * total
    pieces = iter(range(total))
    done = 0

    async def worker() -> None:
        nonlocal done
        for piece in pieces:  # shared iterator: each piece is taken by exactly one worker
            result[piece] = await storage.check_piece(piece)
            done += 1
            if progress is not None:
                progress(done, total)

    await asyncio.gather(*(worker() for _ in range(min(workers, total) or 1)))
    return result


def _stat_files(info: TorrentInfo, save_path: Path) -> list[tuple[int, float] | None]:
    out: list[tuple[int, float] | None] = []
    for entry in info.files:
        if entry.is_pad:
            out.append(None)
            continue
        try:
            st = os.stat(save_path.joinpath(*entry.path))
        except OSError:
            out.append(None)
            continue
        out.append((st.st_size, st.st_mtime))
    return out


async def quick_file_check(info: TorrentInfo, save_path: Path) -> list[tuple[int, float] | None]:
    """(size, mtime) per file, None for pad files and files that are missing.

    Resume data stores these so a restart can trust its bitfield when nothing changed and fall
    back to :func:`recheck` when a file's size or mtime did.
    """
    return await asyncio.get_running_loop().run_in_executor(None, _stat_files, info, save_path)

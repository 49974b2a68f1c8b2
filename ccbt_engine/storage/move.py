"""Moving a torrent's files to another folder (``disk.move_completed_to``, "set location").

The rule is that no failure may lose data, wherever it happens:

1. Every destination is checked first: an existing file there is never overwritten (it may be
   the user's), the move fails before touching anything.
2. Each file is renamed when source and destination share a file system (instant, atomic), and
   copied otherwise (``EXDEV``): into ``<name>.ccbt-moving``, fsynced, then renamed into place,
   so a half-copied file never carries the real name.
3. Only when *every* file is in place (and its folder fsynced) are the copied sources deleted.
   Until then the old folder holds a whole copy.
4. Any failure (or a cancel) before step 3 rolls back: renamed files are renamed back, copies
   and temporaries are removed, folders this move created are removed if empty. The torrent
   goes on from where it was.

Everything here is blocking and runs on a worker thread; :func:`move_files` is the entry point.
The asyncio side (stopping the torrent, swapping its storage, events) is in
:mod:`ccbt_engine.queue_service`.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import shutil
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ccbt_engine.metainfo import TorrentInfo

__all__ = ["MoveCancelled", "MoveError", "MoveReport", "move_files", "plan_move"]

log = logging.getLogger(__name__)

TEMP_SUFFIX = ".ccbt-moving"
_CHUNK = 1 << 20


class MoveError(Exception):
    """The move failed and was rolled back; the message names the path and the OS's reason."""


class MoveCancelled(MoveError):
    """The move was cancelled (session stopping, torrent removed) and rolled back."""


@dataclass(slots=True)
class MoveReport:
    """What a finished move did (for logs and tests)."""

    renamed: int = 0
    copied: int = 0
    bytes_copied: int = 0
    #: sources that could not be deleted after a successful copy (left behind, not lost)
    leftovers: list[str] = field(default_factory=list)


def plan_move(info: TorrentInfo, old_root: Path, new_root: Path) -> list[tuple[str, str]]:
    """(source, destination) for every file of the torrent that exists under ``old_root``,
    plus its part file (``.<infohash>.parts``). Paths are the sanitised ones from the
    metainfo, so they cannot leave either root."""
    pairs: list[tuple[str, str]] = []
    names = [tuple(f.path) for f in info.files if not f.is_pad]
    names.append((f".{info.info_hash.hex()}.parts",))
    for parts in names:
        src = os.path.join(old_root, *parts)
        if os.path.lexists(src):
            pairs.append((src, os.path.join(new_root, *parts)))
    return pairs


def move_files(
    pairs: Iterable[tuple[str, str]],
    old_root: Path,
    cancel: threading.Event | None = None,
) -> MoveReport:
    """Move every (source, destination) pair all-or-nothing (see the module docstring).

    Raises :class:`MoveError` after rolling back; on success the sources are gone and folders
    left empty under ``old_root`` are removed (``old_root`` itself never).
    """
    pairs = list(pairs)
    for _, dst in pairs:
        if os.path.lexists(dst):
            raise MoveError(f"cannot move to {dst}: a file with that name already exists")
    mover = _Mover(cancel or threading.Event())
    try:
        for src, dst in pairs:
            mover.move_one(src, dst)
        mover.sync_dirs()
    except BaseException as exc:
        mover.rollback()
        if isinstance(exc, MoveError):
            raise
        if isinstance(exc, OSError):
            path = exc.filename or "?"
            raise MoveError(f"cannot move {path}: {exc.strerror or exc}") from exc
        raise
    mover.delete_sources(os.path.normpath(old_root))
    return mover.report


class _Mover:
    """One move in progress: what was done so far, so it can be undone."""

    def __init__(self, cancel: threading.Event) -> None:
        self.cancel = cancel
        self.report = MoveReport()
        self.renamed: list[tuple[str, str]] = []
        self.copied: list[tuple[str, str]] = []
        self.made_dirs: list[str] = []
        self.temp: str | None = None

    def _makedirs(self, folder: str) -> None:
        missing: list[str] = []
        while folder and not os.path.isdir(folder):
            missing.append(folder)
            parent = os.path.dirname(folder)
            if parent == folder:
                break
            folder = parent
        for d in reversed(missing):
            os.mkdir(d)
            self.made_dirs.append(d)

    def move_one(self, src: str, dst: str) -> None:
        if self.cancel.is_set():
            raise MoveCancelled("move cancelled")
        self._makedirs(os.path.dirname(dst))
        try:
            os.rename(src, dst)  # nothing existed at dst (checked), so nothing is replaced
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise
        else:
            self.renamed.append((src, dst))
            self.report.renamed += 1
            return
        self._copy(src, dst)

    def _copy(self, src: str, dst: str) -> None:
        if os.path.islink(src):  # BEP 47 symlink attribute: recreate the link, not its target
            os.symlink(os.readlink(src), dst)
            self.copied.append((src, dst))
            return
        temp = dst + TEMP_SUFFIX
        self.temp = temp
        with open(src, "rb") as fin, open(temp, "xb") as fout:
            while chunk := fin.read(_CHUNK):
                if self.cancel.is_set():
                    raise MoveCancelled("move cancelled")
                fout.write(chunk)
                self.report.bytes_copied += len(chunk)
            fout.flush()
            os.fsync(fout.fileno())
        shutil.copystat(src, temp)  # mtime kept: resume data compares it
        os.rename(temp, dst)
        self.temp = None
        self.copied.append((src, dst))
        self.report.copied += 1

    def sync_dirs(self) -> None:
        """Make the new names durable before any source is deleted."""
        for folder in {os.path.dirname(dst) for _, dst in self.renamed + self.copied}:
            _fsync_dir(folder)

    def rollback(self) -> None:
        if self.temp is not None:
            with contextlib.suppress(OSError):
                os.remove(self.temp)
        for src, dst in reversed(self.renamed):
            try:
                os.rename(dst, src)
            except OSError as exc:  # still whole at dst: say where, never delete it
                log.error("move rollback: %s stays at %s (%s)", src, dst, exc.strerror or exc)
        for _, dst in self.copied:
            with contextlib.suppress(OSError):
                os.remove(dst)
        for d in reversed(self.made_dirs):
            with contextlib.suppress(OSError):
                os.rmdir(d)

    def delete_sources(self, old_root: str) -> None:
        dirs: set[str] = set()
        for src, _ in self.renamed + self.copied:
            parent = os.path.dirname(os.path.normpath(src))
            while parent != old_root and parent.startswith(old_root + os.sep):
                dirs.add(parent)
                parent = os.path.dirname(parent)
        for src, _ in self.copied:
            try:
                os.remove(src)
            except FileNotFoundError:
                pass
            except OSError as exc:  # the copy is in place; the old one is only clutter
                log.warning("moved, but cannot delete %s: %s", src, exc.strerror or exc)
                self.report.leftovers.append(src)
        for d in sorted(dirs, key=len, reverse=True):  # deepest first; user files keep theirs
            with contextlib.suppress(OSError):
                os.rmdir(d)


def _fsync_dir(folder: str) -> None:
    if os.name != "posix":
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

"""Session state on disk: the torrent list, each torrent's .torrent copy and its resume data.

Folder (shared by ``ccbt`` and the GUI): ``$CCBT_STATE_DIR``, else ``disk.state_dir``, else
``platformdirs.user_data_dir("ccbt")``::

    session.json                 {"version": 1, "torrents": [hex infohash, ...], "limits": ...}
    torrents/<infohash>.torrent  the metainfo (exact info-dict bytes, so the hash is kept)
    torrents/<infohash>.resume   bencoded resume data (see ccbt_engine.storage.resume)

Every file is replaced atomically: temp file in the same folder, fsync, ``os.replace``, fsync of
the folder. A crash at any point leaves either the old or the new file, plus perhaps a stale
``*.tmp`` that the next start deletes. Resume data only ever claims what is durably on disk:
a checkpoint snapshots the picker, flushes the write cache, fsyncs the torrent's files, and only
then writes the resume file.

:class:`SessionPersistence` is the component the session core owns when persistence is on: it
restores torrents at start, writes checkpoints every ``disk.checkpoint_interval`` seconds and on
the state changes that matter (state changes, finish, priorities/limits changed, removal, stop).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import platformdirs

from ccbt_engine import events as ev
from ccbt_engine.bencode import encode
from ccbt_engine.config import Settings
from ccbt_engine.config.loader import env_path
from ccbt_engine.metainfo import Metainfo, MetainfoError, TorrentInfo, parse_torrent
from ccbt_engine.storage.checker import recheck
from ccbt_engine.storage.errors import StorageError
from ccbt_engine.storage.resume import (
    BLOCK_SIZE,
    MAX_PEERS,
    MAX_RESUME_SIZE,
    ResumeData,
    ResumeError,
    ResumeOutcome,
    blocks_bitmap,
    check_with_resume,
    decode_resume,
    encode_resume,
    fsync_files,
    stamp_files,
    validate_resume,
)

if TYPE_CHECKING:
    from ccbt_engine.session import SessionCore
    from ccbt_engine.torrent import AddOptions, Torrent

log = logging.getLogger(__name__)
T = TypeVar("T")

__all__ = [
    "RESUME_SOURCE",
    "SESSION_VERSION",
    "STATE_DIR_ENV",
    "SessionPersistence",
    "SessionState",
    "StateFolder",
    "atomic_write",
    "initial_check",
    "resolve_state_dir",
    "torrent_file_bytes",
]

STATE_DIR_ENV = "CCBT_STATE_DIR"
SESSION_VERSION = 1
#: stands in for "a peer" when resume data hands blocks to the picker (never a real peer, so a
#: hash failure of such a piece bans nobody)
RESUME_SOURCE = "resume-data"
_MAX_SESSION_JSON = 16 * 1024 * 1024
_MAX_TORRENT_FILE = 64 * 1024 * 1024


def resolve_state_dir(settings: Settings, env: Mapping[str, str] | None = None) -> Path:
    """``$CCBT_STATE_DIR`` > ``disk.state_dir`` > the platform's user data folder."""
    environ = os.environ if env is None else env
    override = environ.get(STATE_DIR_ENV)
    if override:
        return env_path(STATE_DIR_ENV, override)
    if settings.disk.state_dir is not None:
        return settings.disk.state_dir  # expanded when the settings were validated
    return platformdirs.user_data_path("ccbt")


def atomic_write(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` so a crash leaves the old or the new file, never a mix.

    Blocking (run it in a thread). The temp name is ``<name>.tmp`` in the same folder, so the
    rename never crosses file systems and a leftover is easy to recognise and delete.
    """
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0), 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    """Make the rename itself durable (POSIX); Windows cannot open folders, and needs not."""
    if os.name == "nt":  # pragma: no cover - not run on Linux CI
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _read_bounded(path: Path, limit: int) -> bytes | None:
    """The file's bytes, or None when missing, unreadable or over ``limit``."""
    try:
        with open(path, "rb") as f:
            data = f.read(limit + 1)
    except OSError:
        return None
    return data if len(data) <= limit else None


def torrent_file_bytes(metainfo: Metainfo | None, info: TorrentInfo) -> bytes:
    """A .torrent file for ``info``, keeping the info dict's exact bytes (and so its hash)."""
    top: dict[bytes, Any] = {}
    if metainfo is not None:
        tiers = [list(t) for t in metainfo.trackers if t]
        if tiers:
            top[b"announce"] = tiers[0][0]
            top[b"announce-list"] = tiers
        if metainfo.web_seeds:
            top[b"url-list"] = list(metainfo.web_seeds)
        if metainfo.comment:
            top[b"comment"] = metainfo.comment
        if metainfo.created_by:
            top[b"created by"] = metainfo.created_by
        if metainfo.creation_date is not None:
            top[b"creation date"] = metainfo.creation_date
        if metainfo.nodes:
            top[b"nodes"] = [[h, p] for h, p in metainfo.nodes]
    top[b"info"] = None  # placeholder for the sort order; spliced in raw below
    if info.piece_layers:  # BEP 52: without them a v2 copy could not check a single piece
        top[b"piece layers"] = dict(info.piece_layers)
    parts = [b"d"]
    for key in sorted(top):
        parts.append(encode(key))
        parts.append(info.raw_info if key == b"info" else encode(_bencodable(top[key])))
    parts.append(b"e")
    return b"".join(parts)


def _bencodable(value: Any) -> Any:
    if isinstance(value, str):
        return value.encode("utf-8", "surrogateescape")
    if isinstance(value, list | tuple):
        return [_bencodable(v) for v in value]
    return value


@dataclass(slots=True)
class SessionState:
    """``session.json``: the torrents in their order, and limits set by command.

    Save paths are kept here as well as in each resume file, so a torrent whose resume file is
    lost or corrupt is still rechecked where its data is, not in the default folder.
    """

    torrents: list[str] = field(default_factory=list)
    download_limit: int | None = None
    upload_limit: int | None = None
    save_paths: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> bytes:
        doc = {
            "version": SESSION_VERSION,
            "torrents": self.torrents,
            "limits": {"download": self.download_limit, "upload": self.upload_limit},
            "save_paths": {h: p for h, p in self.save_paths.items() if h in self.torrents},
        }
        return (json.dumps(doc, indent=1) + "\n").encode()

    @classmethod
    def from_json(cls, raw: bytes) -> SessionState:
        """Lenient where it is safe: unknown keys and bad entries are skipped, never fatal."""
        try:
            doc = json.loads(raw)
        except (ValueError, RecursionError):
            log.warning("session.json is not valid JSON; starting with an empty session")
            return cls()
        if not isinstance(doc, dict) or doc.get("version") != SESSION_VERSION:
            log.warning("session.json has an unknown version; starting with an empty session")
            return cls()
        torrents: list[str] = []
        raw_list = doc.get("torrents")
        for h in raw_list if isinstance(raw_list, list) else []:
            if _is_hex_hash(h) and h not in torrents:
                torrents.append(h)
        limits = doc.get("limits")
        limits = limits if isinstance(limits, dict) else {}
        paths = doc.get("save_paths")
        save_paths = {
            h: p
            for h, p in (paths.items() if isinstance(paths, dict) else ())
            if h in torrents and isinstance(p, str) and p and "\0" not in p
        }
        return cls(
            torrents,
            _opt_rate(limits.get("download")),
            _opt_rate(limits.get("upload")),
            save_paths,
        )


def _is_hex_hash(value: object) -> bool:
    if not isinstance(value, str) or len(value) != 40:
        return False
    return all(c in "0123456789abcdef" for c in value)


def _opt_rate(value: object) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**53:
        return value
    return None


class StateFolder:
    """Paths and blocking reads/writes of the state folder (call from a worker thread)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.torrents_dir = self.root / "torrents"
        self.session_path = self.root / "session.json"

    def ensure(self) -> None:
        self.torrents_dir.mkdir(parents=True, exist_ok=True)

    def torrent_path(self, hex_hash: str) -> Path:
        return self.torrents_dir / f"{hex_hash}.torrent"

    def resume_path(self, hex_hash: str) -> Path:
        return self.torrents_dir / f"{hex_hash}.resume"

    def load_session(self) -> SessionState:
        raw = _read_bounded(self.session_path, _MAX_SESSION_JSON)
        return SessionState() if raw is None else SessionState.from_json(raw)

    def save_session(self, state: SessionState) -> None:
        self.ensure()
        atomic_write(self.session_path, state.to_json())

    def remove_temp(self, hex_hash: str | None = None) -> None:
        """Delete leftovers of interrupted writes (one torrent's, or all when None)."""
        if hex_hash is not None:
            candidates = [self.resume_path(hex_hash), self.torrent_path(hex_hash)]
            leftovers = [p.with_name(p.name + ".tmp") for p in candidates]
        else:
            leftovers = [self.session_path.with_name("session.json.tmp")]
            with contextlib.suppress(OSError):
                leftovers += [p for p in self.torrents_dir.iterdir() if p.name.endswith(".tmp")]
        for path in leftovers:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
                log.info("removed %s left by an interrupted write", path)

    def load_metainfo(self, hex_hash: str) -> Metainfo:
        raw = _read_bounded(self.torrent_path(hex_hash), _MAX_TORRENT_FILE)
        if raw is None:
            raise MetainfoError(f"{self.torrent_path(hex_hash)} is missing or unreadable")
        return parse_torrent(raw)

    def load_resume(self, info: TorrentInfo) -> ResumeData:
        """The validated resume data of ``info``; :class:`ResumeError` when unusable."""
        raw = _read_bounded(self.resume_path(info.info_hash.hex()), MAX_RESUME_SIZE)
        if raw is None:
            raise ResumeError("no resume data")
        data = decode_resume(raw)
        validate_resume(data, info)
        return data

    def save_torrent(self, hex_hash: str, data: bytes) -> None:
        self.ensure()
        path = self.torrent_path(hex_hash)
        if not path.exists():
            atomic_write(path, data)

    def save_resume(self, hex_hash: str, data: bytes) -> None:
        self.ensure()
        atomic_write(self.resume_path(hex_hash), data)

    def delete_torrent(self, hex_hash: str) -> None:
        for path in (self.resume_path(hex_hash), self.torrent_path(hex_hash)):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        self.remove_temp(hex_hash)


def _same_path(a: str | Path, b: str | Path) -> bool:
    return os.path.normcase(os.path.abspath(a)) == os.path.normcase(os.path.abspath(b))


class SessionPersistence:
    """Restores and checkpoints a :class:`SessionCore`'s torrents in a :class:`StateFolder`.

    ``restore=True`` (GUI, daemon): ``start()`` re-adds every torrent of ``session.json``.
    ``restore=False`` (``ccbt download``): only torrents the caller adds pick up their resume
    data; other entries of ``session.json`` are kept as they are, so the CLI and the GUI can
    share one folder.
    """

    def __init__(self, core: SessionCore, folder: Path, *, restore: bool = True) -> None:
        self.core = core
        self.folder = StateFolder(folder)
        self.restore = restore
        self.state = SessionState()
        #: what the last initial check concluded per torrent (hex infohash); for logs and tests
        self.outcomes: dict[str, ResumeOutcome] = {}
        self._pending: dict[bytes, ResumeData] = {}
        self._loaded: dict[bytes, ResumeData] = {}
        self._completed: dict[bytes, int] = {}
        self._locks: dict[bytes, asyncio.Lock] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._timer: asyncio.Task[None] | None = None
        self._unsubscribe: Callable[[], None] | None = None
        self._closed = False
        self._started = False
        self._session_lock = asyncio.Lock()
        #: per torrent: what its last resume file claimed (pieces, partial blocks, priorities);
        #: the same claim needs no new fsync, its data was made durable when first claimed
        self._synced: dict[bytes, tuple[bytes, dict[int, bytes], tuple[int, ...]]] = {}
        #: per torrent: _activity() at its last checkpoint; the timer skips torrents where none
        #: of it moved (an idle seed is rewritten once per SEEDING_TIME_STEP of seeding time)
        self._written: dict[bytes, tuple[int, int, int, int]] = {}

    # -- lifecycle --------------------------------------------------------------------------
    async def start(self) -> None:
        """Load ``session.json``, restore its torrents (restore mode), start the timer.

        An unusable folder (permissions, a file in its place) is a :class:`SessionError` with
        the OS's reason: running on without it would silently lose every checkpoint.
        """
        from ccbt_engine.session import SessionError

        try:
            self.state = await self._io(self._load_state)
        except OSError as exc:
            reason = exc.strerror or str(exc)
            raise SessionError(f"cannot use the state folder {self.folder.root}: {reason}") from exc
        self._started = True
        self._unsubscribe = self.core.events.subscribe(self._on_event)
        if self.restore:
            if self.state.download_limit is not None or self.state.upload_limit is not None:
                self.core.set_global_limits(self.state.download_limit, self.state.upload_limit)
            for hex_hash in list(self.state.torrents):
                await self._restore_one(hex_hash)
            await self.save_session()
        self._timer = asyncio.create_task(self._timer_loop(), name="ccbt-checkpoints")

    def _load_state(self) -> SessionState:
        self.folder.ensure()
        if self.restore:
            self.folder.remove_temp()
        return self.folder.load_session()

    async def close(self) -> None:
        """Final checkpoints (torrents are stopped by now, so they are *clean*)."""
        if self._closed or not self._started:
            return
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._timer
        if self._unsubscribe is not None:
            self._unsubscribe()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        for torrent in list(self.core.torrents.values()):
            await self.checkpoint(torrent, final=True)
        try:
            await self.save_session()
        except OSError as exc:  # stopping must go on; the torrents' resume files are written
            log.error("cannot save %s: %s", self.folder.session_path, exc)

    async def _restore_one(self, hex_hash: str) -> None:
        from ccbt_engine.session import default_save_path
        from ccbt_engine.torrent import AddOptions

        try:
            metainfo = await self._io(self.folder.load_metainfo, hex_hash)
        except MetainfoError as exc:
            log.error("cannot restore torrent %s: %s", hex_hash, exc)
            self.state.torrents.remove(hex_hash)
            return
        info = metainfo.info
        if info.info_hash.hex() != hex_hash or info.info_hash in self.core.torrents:
            self.state.torrents.remove(hex_hash)
            return
        data = await self._load_resume(info)
        limits = self.core.settings.limits
        if data is None:
            saved = self.state.save_paths.get(hex_hash)
            options = AddOptions(
                save_path=Path(saved) if saved else default_save_path(self.core.settings),
                download_limit=limits.per_torrent_down_kib * 1024,
                upload_limit=limits.per_torrent_up_kib * 1024,
            )
        else:
            options = AddOptions(
                save_path=Path(data.save_path),
                paused=data.paused,
                file_priorities=data.file_priorities or None,
                sequential=data.sequential,
                download_limit=data.download_limit,
                upload_limit=data.upload_limit,
            )
            self._loaded[info.info_hash] = data
        try:
            await self.core.add_torrent(metainfo, info, options)
        except Exception:  # one bad torrent must not stop the others from loading
            log.exception("cannot restore torrent %s", hex_hash)

    async def _load_resume(self, info: TorrentInfo) -> ResumeData | None:
        try:
            return await self._io(self.folder.load_resume, info)
        except ResumeError as exc:
            log.warning("%s: resume data unusable (%s); the data will be rechecked", info.name, exc)
            return None

    # -- torrents joining and leaving ------------------------------------------------------
    async def attach(self, torrent: Torrent, options: AddOptions) -> None:
        """Called by the core before a new torrent starts: apply its resume data, save it."""
        hex_hash = torrent.info_hash_hex
        data = self._loaded.pop(torrent.info_hash, None)
        if data is None:
            await self._io(self.folder.remove_temp, hex_hash)
            if await self._io(self.folder.resume_path(hex_hash).exists):
                data = await self._load_resume(torrent.info)
        if data is not None and not _same_path(data.save_path, torrent.save_path):
            log.info("%s: resume data is for another folder; checking the data", torrent.name)
            data = None
        if data is not None:
            self._apply(torrent, data, options)
            self._pending[torrent.info_hash] = data
        if hex_hash not in self.state.torrents:
            self.state.torrents.append(hex_hash)
        self.state.save_paths[hex_hash] = str(torrent.storage.save_path)  # absolute
        raw = torrent_file_bytes(torrent.metainfo, torrent.info)
        try:
            await self._io(self.folder.save_torrent, hex_hash, raw)
            await self.save_session()
        except OSError as exc:
            log.error("cannot save session state in %s: %s", self.folder.root, exc)

    def _apply(self, torrent: Torrent, data: ResumeData, options: AddOptions) -> None:
        torrent.down.total = data.downloaded
        torrent.up.total = data.uploaded
        torrent.active_seconds = float(data.active_seconds)
        self.core.queue.restore_seeding_time(torrent.info_hash, float(data.seeding_seconds))
        if data.added_time:
            torrent.added_time = float(data.added_time)
        if data.completed_time:
            self._completed[torrent.info_hash] = data.completed_time
        if options.file_priorities is None and data.file_priorities:
            torrent.set_file_priorities(data.file_priorities)
        if data.peers:
            torrent.add_peers(list(data.peers), "resume")

    def take_resume(self, info_hash: bytes) -> ResumeData | None:
        """The resume data to use for this torrent's first check (once)."""
        return self._pending.pop(info_hash, None)

    async def _forget(self, info_hash: bytes) -> None:
        hex_hash = info_hash.hex()
        async with self._lock(info_hash):
            self._pending.pop(info_hash, None)
            self._completed.pop(info_hash, None)
            self._synced.pop(info_hash, None)
            self._written.pop(info_hash, None)
            if hex_hash in self.state.torrents:
                self.state.torrents.remove(hex_hash)
            self.state.save_paths.pop(hex_hash, None)
            try:
                await self._io(self.folder.delete_torrent, hex_hash)
                await self.save_session()
            except OSError as exc:
                log.error("cannot update session state in %s: %s", self.folder.root, exc)

    # -- checkpoints ----------------------------------------------------------------------
    def request(self, torrent: Torrent, *, final: bool = False) -> None:
        """Write a checkpoint of ``torrent`` soon (a state change that matters)."""
        if not self._closed:
            self._spawn(self.checkpoint(torrent, final=final))

    def request_session(self) -> None:
        """Write ``session.json`` soon (limits or order changed)."""
        if not self._closed:
            self._spawn(self.save_session())

    async def save_session(self) -> None:
        async with self._session_lock:  # one writer: concurrent writers share the temp name
            await self._io(self.folder.save_session, self._snapshot_state())

    def _snapshot_state(self) -> SessionState:
        core = self.core
        state = self.state
        # the normal limits, not the buckets: those hold the alternative ones while alt is on
        down, up = core.alt_speed.normal
        limits = core.settings.limits
        # persist only limits that differ from the settings (set by a command)
        state.download_limit = None if down == limits.global_down_kib * 1024 else down
        state.upload_limit = None if up == limits.global_up_kib * 1024 else up
        return SessionState(
            list(state.torrents), state.download_limit, state.upload_limit, dict(state.save_paths)
        )

    async def checkpoint(self, torrent: Torrent, *, final: bool = False) -> bool:
        """Write ``torrent``'s resume file; False when skipped (not checked yet, disk error).

        Order matters: snapshot what the picker knows, flush the cache, fsync the files, and
        only then replace the resume file, so it never claims data that is not on disk.
        """
        async with self._lock(torrent.info_hash):
            if self.core.torrents.get(torrent.info_hash) is not torrent:
                return False  # removed meanwhile: writing would resurrect it
            if not torrent._checked:
                return False  # nothing trustworthy to say yet; keep the previous file
            pieces, partial = _snapshot_pieces(torrent)
            try:
                await torrent.storage.flush()
            except StorageError as exc:
                log.warning("%s: checkpoint skipped: %s", torrent.name, exc)
                return False
            info, save_path = torrent.info, torrent.storage.save_path
            claim = (pieces, partial, tuple(torrent.file_priorities))
            try:
                if self._synced.get(torrent.info_hash) != claim:
                    await self._io(fsync_files, info, save_path)
                stamps, part_stamp = await self._io(stamp_files, info, save_path)
            except OSError as exc:
                log.warning("%s: checkpoint skipped: %s", torrent.name, exc)
                return False
            if torrent.picker.is_finished() and torrent.info_hash not in self._completed:
                self._completed[torrent.info_hash] = int(time.time())
            data = ResumeData(
                info_hash=torrent.info_hash,
                save_path=str(save_path),
                num_pieces=info.num_pieces,
                pieces=pieces,
                partial=partial,
                files=tuple(stamps),
                part_file=part_stamp,
                file_priorities=tuple(torrent.file_priorities),
                uploaded=torrent.up.total,
                downloaded=torrent.down.total,
                active_seconds=int(torrent.time_active()),
                seeding_seconds=int(self.core.queue.seeding_time(torrent.info_hash)),
                added_time=int(torrent.added_time),
                completed_time=self._completed.get(torrent.info_hash, 0),
                paused=torrent.paused,
                sequential=torrent.picker.sequential,
                download_limit=int(torrent.down_bucket.rate),
                upload_limit=int(torrent.up_bucket.rate),
                peers=_known_peers(torrent),
                clean=final,
                checkpoint_time=int(time.time()),
            )
            try:
                await self._io(self.folder.save_resume, torrent.info_hash_hex, encode_resume(data))
            except OSError as exc:
                log.error("%s: cannot write resume data: %s", torrent.name, exc)
                return False
            self._synced[torrent.info_hash] = claim
            self._written[torrent.info_hash] = _activity(torrent, data.seeding_seconds)
            log.debug("%s: checkpoint, %d pieces", torrent.name, data.claimed())
            return True

    async def _timer_loop(self) -> None:
        while True:
            await asyncio.sleep(self.core.settings.disk.checkpoint_interval)
            for torrent in list(self.core.torrents.values()):
                active = torrent.state in ("downloading", "seeding")
                seeding = self.core.queue.seeding_time(torrent.info_hash)
                if active and self._written.get(torrent.info_hash) != _activity(torrent, seeding):
                    try:
                        await self.checkpoint(torrent)
                    except Exception:
                        log.exception("%s: checkpoint failed", torrent.name)

    # -- events ---------------------------------------------------------------------------
    def _on_event(self, event: ev.Event) -> None:
        if event.info_hash is None:
            return
        if isinstance(event, ev.TorrentRemoved):
            self._spawn(self._forget(bytes.fromhex(event.info_hash)))
            return
        torrent = self.core.torrents.get(bytes.fromhex(event.info_hash))
        if torrent is None:
            return
        if isinstance(event, ev.TorrentFinished):
            self._completed.setdefault(torrent.info_hash, int(time.time()))
            self.request(torrent)
        elif isinstance(event, ev.TorrentStateChanged):
            # paused: activity is already stopped, nothing can write after this checkpoint
            self.request(torrent, final=event.new == "paused")

    # -- helpers ----------------------------------------------------------------------------
    def _lock(self, info_hash: bytes) -> asyncio.Lock:
        lock = self._locks.get(info_hash)
        if lock is None:
            lock = self._locks[info_hash] = asyncio.Lock()
        return lock

    def _spawn(self, coro: Any) -> None:
        task: asyncio.Task[Any] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("state persistence task failed", exc_info=task.exception())

    async def _io(self, fn: Callable[..., T], *args: Any) -> T:
        """Run blocking file work in a thread; a cancelled caller still waits for the thread.

        Otherwise a cancelled checkpoint would release its lock while its thread still writes
        ``<name>.tmp``, and the next writer of the same file would race it.
        """
        fut = asyncio.get_running_loop().run_in_executor(None, fn, *args)
        try:
            return await asyncio.shield(fut)
        except asyncio.CancelledError:
            while not fut.done():
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.wait([fut])
            if not fut.cancelled():
                fut.exception()  # retrieved: the cancellation is what the caller sees
            raise


def _snapshot_pieces(torrent: Torrent) -> tuple[bytes, dict[int, bytes]]:
    """Verified pieces + received blocks of started pieces, before the flush that saves them.

    Pieces with a write still in flight (block not yet in the storage cache) or being hashed
    (a failure drops their blocks) are left out: the checkpoint must not claim them.
    """
    picker = torrent.picker
    pieces = picker.have.to_bytes()
    busy = set(torrent._hashing)
    partial: dict[int, bytes] = {}
    for piece in list(picker._partial):
        if piece in busy or picker.have[piece]:
            continue
        nblocks = picker.num_blocks(piece)
        blocks = [b for b in range(nblocks) if picker.is_block_received(piece, b * BLOCK_SIZE)]
        if blocks:
            partial[piece] = blocks_bitmap(blocks, nblocks)
    return pieces, partial


#: an idle seed's resume data is rewritten once per this many seconds of seeding time, so a
#: crash loses at most that much of it (``seed_time_limit_min`` counts on from the saved value);
#: nothing else of an idle seed changes, and rewriting it every interval would be pure churn
SEEDING_TIME_STEP = 300


def _activity(torrent: Torrent, seeding_seconds: float) -> tuple[int, int, int, int]:
    """What a periodic checkpoint must keep up with; unchanged means nothing to write."""
    return (
        torrent.down.total,
        torrent.up.total,
        torrent.picker.have.count(),
        int(seeding_seconds // SEEDING_TIME_STEP),
    )


def _known_peers(torrent: Torrent) -> tuple[tuple[str, int], ...]:
    """Connected peers first, then the other known ones (ASCII hosts only, bounded)."""
    connected = [ps.conn.address for ps in torrent.peers.values()]
    out: list[tuple[str, int]] = []
    seen: set[tuple[str, int]] = set()
    for host, port in [*connected, *sorted(torrent.known_peers)]:
        key = (str(host), int(port))
        if key in seen or not key[0].isascii() or not 0 < len(key[0]) <= 64:
            continue
        seen.add(key)
        out.append(key)
        if len(out) >= MAX_PEERS:
            break
    return tuple(out)


async def initial_check(torrent: Torrent, progress: Callable[[int, int], None]) -> list[bool]:
    """Which pieces are verified at start: from resume data if there is any, else a recheck.

    Called by :meth:`Torrent._check`. Also hands the blocks of partial pieces to the picker.
    """
    persistence = torrent.session.persistence
    data = persistence.take_resume(torrent.info_hash) if persistence is not None else None
    if data is None:
        return await recheck(torrent.storage, progress=progress)
    outcome = await check_with_resume(torrent.storage, data, progress=progress)
    verified = outcome.verified
    picker = torrent.picker
    extra = 0
    for piece, blocks in outcome.partial.items():
        for block in blocks:
            picker.block_received(RESUME_SOURCE, piece, block * BLOCK_SIZE)
        if picker.piece_complete(piece):  # every block was written, the hash was pending
            extra += 1
            if await torrent.storage.hash_piece(piece):
                verified[piece] = True
            else:
                picker.piece_failed(piece)
    log.info(
        "%s: resumed %d of %d pieces from checkpoint, rechecked %d, %d partial pieces",
        torrent.name,
        outcome.trusted,
        torrent.info.num_pieces,
        outcome.rechecked + extra,
        len(outcome.partial),
    )
    if persistence is not None:
        persistence.outcomes[torrent.info_hash_hex] = outcome
    return verified

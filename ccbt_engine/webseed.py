"""BEP 19 web seeds (GetRight style): download pieces over HTTP(S) Range requests.

Each web seed URL of a torrent is a pseudo-peer: a :class:`WebSeed` object is the picker's key
(it "has all pieces", minus the files the server answered 404 for), one asyncio task per URL
takes runs of blocks from the same picker the peers use, maps their byte range to file ranges
(:func:`plan_ranges`: single file = the URL itself, or URL + name when it ends in '/';
multi-file = URL + quoted name/path) and feeds the bytes block by block into the torrent's own
bookkeeping (:func:`_deliver`), so hashing, cancels to peers, have messages and meters are shared.

Why a pseudo-peer rather than a separate downloader: the picker already knows which blocks are
free, requested or received; an HTTP seed that takes *free* blocks never duplicates a peer's
work, and a peer that later asks for a block the seed delivered gets it cancelled as usual.

The seed object deliberately has no ``address`` attribute: the guard's smart ban attributes
blocks by ``conn.address`` and an HTTP server (often on the same host as peers) must never get
a peer address banned. A hash failure on a piece the seed contributed to disables the URL.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import quote, urlsplit

import aiohttp

from ccbt_engine.bitfield import Bitfield
from ccbt_engine.metainfo import TorrentInfo
from ccbt_engine.stats import RateMeter
from ccbt_engine.storage.errors import StorageError
from ccbt_engine.storage.layout import PieceLayout
from ccbt_engine.strategy.picker import BlockRequest
from ccbt_engine.strategy.ratelimit import TokenBucket
from ccbt_engine.tracker.http_tls import tls_option

if TYPE_CHECKING:
    from ccbt_engine.torrent import Torrent

log = logging.getLogger(__name__)

#: most bytes asked for in one round (one or more HTTP requests); bounds memory per seed
MAX_RUN = 4 * 1024 * 1024
#: a round is sized to about this many seconds at the seed's measured rate (a slow server
#: gets small rounds: its blocks are not held away from the peers for minutes)
ROUND_SECONDS = 4.0
#: hash failures on pieces shared with peers before the seed is blamed (a sole-source piece
#: that fails disables it at once)
MAX_SHARED_HASH_FAILURES = 2
#: consecutive failed rounds before a URL is given up
MAX_FAILURES = 5
#: longest wait between retries, and longest Retry-After honoured
MAX_BACKOFF = 300.0
MAX_REDIRECTS = 5
#: idle poll while nothing is left to fetch (pieces may become wanted again later)
IDLE_POLL = 1.0
#: no total limit (a slow server that keeps sending is fine), but 30 s of silence is a failure
HTTP_TIMEOUT = aiohttp.ClientTimeout(total=None, sock_connect=15, sock_read=30)
_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")


class WebSeedError(Exception):
    """A web seed request failed (HTTP status, bad or short response, connection error)."""


class _RetryAfter(WebSeedError):
    def __init__(self, message: str, delay: float) -> None:
        super().__init__(message)
        self.delay = delay


class _FileMissing(WebSeedError):
    def __init__(self, message: str, file_index: int) -> None:
        super().__init__(message)
        self.file_index = file_index


@dataclass(frozen=True, slots=True)
class HttpRange:
    """``length`` bytes at ``first`` of ``url`` (file ``file_index``), to be placed at
    ``buffer_offset`` of the run's buffer (bytes no range covers are pad bytes: zeros)."""

    file_index: int
    url: str
    first: int
    length: int
    buffer_offset: int


def is_single_file(info: TorrentInfo) -> bool:
    """A single-file torrent's file path is just its name (no name folder), see metainfo."""
    return all(len(f.path) == 1 for f in info.files if not f.is_pad)


def file_url(base: str, info: TorrentInfo, file_index: int) -> str:
    """The URL of one file on the web seed ``base`` (BEP 19).

    Single file: ``base`` itself, or ``base`` + name when ``base`` ends in '/'. Multi-file:
    ``base`` + '/' (when missing) + name + '/' + path, each component percent-quoted. The
    names are the torrent's own (``FileEntry.url_path``): the server has the files under those,
    not under what sanitising made of them for our disk (``a?b`` stays ``a%3Fb``, not ``a_b``).
    """
    entry = info.files[file_index]
    parts = entry.url_path or entry.path
    if is_single_file(info):
        return base + quote(parts[0], safe="") if base.endswith("/") else base
    if not base.endswith("/"):
        base += "/"
    # safe="": a '/' inside one of the torrent's names is part of that name, not a separator
    return base + "/".join(quote(part, safe="") for part in parts)


def plan_ranges(
    layout: PieceLayout, base: str, start_piece: int, begin: int, length: int
) -> list[HttpRange]:
    """HTTP ranges holding ``length`` bytes of the piece space from ``begin`` in
    ``start_piece`` (the run may cross piece boundaries), adjacent runs of a file merged."""
    info = layout.info
    out: list[HttpRange] = []
    piece, offset, done = start_piece, begin, 0
    while done < length:
        take = min(length - done, info.piece_size(piece) - offset)
        for s in layout.slices(piece, offset, take):
            at = done + s.buffer_offset
            last = out[-1] if out else None
            if (
                last is not None
                and last.file_index == s.file_index
                and last.first + last.length == s.file_offset
                and last.buffer_offset + last.length == at
            ):
                out[-1] = HttpRange(
                    last.file_index,
                    last.url,
                    last.first,
                    last.length + s.length,
                    last.buffer_offset,
                )
            else:
                url = file_url(base, info, s.file_index)
                out.append(HttpRange(s.file_index, url, s.file_offset, s.length, at))
        done += take
        piece, offset = piece + 1, 0
    return out


def runs(blocks: Sequence[BlockRequest], piece_length: int) -> list[list[BlockRequest]]:
    """Blocks grouped into runs contiguous in the piece space (sorted first)."""
    out: list[list[BlockRequest]] = []
    end = -1
    for b in sorted(blocks, key=lambda r: (r.piece, r.begin)):
        start = b.piece * piece_length + b.begin
        if out and start == end:
            out[-1].append(b)
        else:
            out.append([b])
        end = start + b.length
    return out


def retry_after(value: str | None, default: float) -> float:
    """Seconds from a Retry-After header (delta-seconds form; dates fall back to ``default``)."""
    if value is None:
        return default
    try:
        return min(MAX_BACKOFF, max(0.0, float(value.strip())))
    except ValueError:
        return default


@dataclass(frozen=True, slots=True)
class WebSeedStatus:
    url: str
    host: str
    #: "downloading", "idle", "waiting" (back-off) or "disabled"
    state: str
    #: why it is disabled or waiting, or which files are missing on it
    reason: str
    download_rate: float
    downloaded: int
    hash_failures: int


class WebSeed:
    """One web seed URL of one torrent; hashable by identity (the picker's peer key)."""

    def __init__(self, torrent: Torrent, url: str) -> None:
        self.torrent = torrent
        self.url = url
        parts = urlsplit(url)
        self.host = parts.hostname or url
        self.https = parts.scheme == "https"
        self.down = RateMeter()
        self.failures = 0
        self.hash_failures = 0
        self.disabled: str | None = None
        self.waiting = ""
        self.busy = False
        self.missing: set[int] = set()  # files the server answered 404 for
        self._registered: object = None  # the picker this seed is registered with

    def __repr__(self) -> str:
        return f"WebSeed({self.url!r})"

    # -- picker registration ------------------------------------------------------------
    def _register(self) -> None:
        """(Re)announce what this seed has; a recheck replaces the torrent's picker."""
        t = self.torrent
        if self._registered is t.picker:
            return
        self._registered = t.picker
        if not self.missing:
            t.picker.peer_have_all(self)
            return
        bf = Bitfield.full(t.info.num_pieces)
        for f in self.missing:
            first, last = t.layout.file_piece_range(f)
            for p in range(first, last + 1):
                bf.clear(p)
        t.picker.peer_bitfield(self, bf)

    def _release(self) -> None:
        if self._registered is self.torrent.picker:
            self.torrent.picker.peer_lost(self)
        self._registered = None

    def disable(self, reason: str) -> None:
        if self.disabled is None:
            self.disabled = reason
            log.warning("%s: web seed %s disabled: %s", self.torrent.name, self.url, reason)
        self._release()

    # -- the download loop --------------------------------------------------------------
    async def run(self) -> None:
        """Fetch until disabled; cancelled by the torrent's stop (pause, stop, remove)."""
        from ccbt_engine.torrent import TorrentState

        try:
            while self.disabled is None:
                t = self.torrent
                if t.state != TorrentState.DOWNLOADING or t.session.http is None:
                    self.busy = False
                    await asyncio.sleep(IDLE_POLL)
                    continue
                self._register()
                blocks = self._pick()
                if not blocks:
                    self.busy = False
                    await asyncio.sleep(IDLE_POLL)
                    continue
                self.busy = True
                try:
                    await self._fetch(blocks)
                except asyncio.CancelledError:
                    raise
                except WebSeedError as exc:
                    await self._failed(exc)
                else:
                    self.failures = 0
                    self.waiting = ""
        finally:
            self.busy = False
            self._release()

    def _pick(self) -> list[BlockRequest]:
        t = self.torrent
        picker = t.picker
        rate = self.down.rate(time.monotonic())
        size = t.info.piece_length if rate <= 0 else int(rate * ROUND_SECONDS)
        n = max(1, min(MAX_RUN, size) // picker.block_size)
        if picker.in_endgame:
            # the rest is being fetched by peers already: take one piece's worth at most,
            # so the seed races them for the last blocks without re-downloading the tail
            n = max(1, t.info.piece_length // picker.block_size)
        return picker.pick(self, n)

    async def _failed(self, exc: WebSeedError) -> None:
        t = self.torrent
        if isinstance(exc, _FileMissing):
            self._release()  # re-registered next round without that file's pieces
            self.missing.add(exc.file_index)
            wanted = [i for i, f in enumerate(t.info.files) if not f.is_pad and f.length]
            if all(i in self.missing for i in wanted):
                self.disable(f"every file missing on the server ({exc})")
            return
        self.failures += 1
        if self.failures >= MAX_FAILURES:
            self.disable(f"{self.failures} failures in a row, last: {exc}")
            return
        delay = exc.delay if isinstance(exc, _RetryAfter) else min(MAX_BACKOFF, 2.0**self.failures)
        self.waiting = f"retry in {delay:.0f} s after: {exc}"
        log.info("%s: web seed %s: %s", t.name, self.url, self.waiting)
        self._release()  # its blocks go back to the peers meanwhile
        await asyncio.sleep(delay)

    async def _fetch(self, blocks: list[BlockRequest]) -> None:
        """Download and deliver ``blocks``; whatever was not delivered goes back to the picker."""
        t = self.torrent
        pending = {(b.piece, b.begin): b for b in blocks}
        try:
            for run in runs(blocks, t.info.piece_length):
                size = sum(b.length for b in run)
                paid = await self._pay(size)
                received = self.down.total
                try:
                    data = await self._download(run[0].piece, run[0].begin, size)
                except BaseException:
                    # what never arrived used no bandwidth: give it back to the limits
                    t.session.limiter.refund(size - (self.down.total - received), paid)
                    raise
                at = 0
                for b in run:
                    pending.pop((b.piece, b.begin), None)
                    self._deliver(b, memoryview(data)[at : at + b.length])
                    at += b.length
                await self._wait_relief()
        finally:
            if self._registered is t.picker:
                for piece, begin in pending:
                    t.picker.abort_request(self, piece, begin)

    async def _pay(self, size: int) -> tuple[TokenBucket, ...]:
        """Prepay ``size`` bytes from the torrent's and session's download buckets; returns the
        buckets charged (none when no limit applies)."""
        t = self.torrent
        buckets: tuple[TokenBucket, ...] = (t.down_bucket, t.session.down_bucket)
        if TokenBucket.limited_count and not all(b.unlimited for b in buckets):
            await t.session.limiter.acquire(size, buckets)
            return buckets
        return ()

    async def _download(self, piece: int, begin: int, size: int) -> bytearray:
        t = self.torrent
        buf = bytearray(size)  # pad bytes stay zero
        for r in plan_ranges(t.layout, self.url, piece, begin, size):
            chunk = await self._get(r)
            buf[r.buffer_offset : r.buffer_offset + r.length] = chunk
        return buf

    async def _get(self, r: HttpRange) -> bytes:
        http = self.torrent.session.http
        if http is None:
            raise WebSeedError("session is closing")
        headers = {"Range": f"bytes={r.first}-{r.first + r.length - 1}"}
        try:
            async with http.get(
                r.url,
                headers=headers,
                ssl=tls_option(http),
                timeout=HTTP_TIMEOUT,
                allow_redirects=True,
                max_redirects=MAX_REDIRECTS + 1,  # aiohttp raises on the N-th, not after it
            ) as resp:
                if resp.status == 503:
                    delay = retry_after(resp.headers.get("Retry-After"), 2.0**self.failures)
                    raise _RetryAfter(f"HTTP 503 for {r.url}", delay)
                if resp.status in (404, 410):
                    raise _FileMissing(f"HTTP {resp.status} for {r.url}", r.file_index)
                if resp.status == 206:
                    _check_content_range(resp.headers.get("Content-Range"), r)
                elif resp.status != 200 or r.first != 0:
                    # 200 to a range not at 0: the server ignores Range (it would send the
                    # whole file, which we do not read)
                    raise WebSeedError(f"HTTP {resp.status} for {r.url}")
                out = bytearray()
                while len(out) < r.length:  # never read past what was asked for
                    chunk = await resp.content.read(min(1 << 16, r.length - len(out)))
                    if not chunk:
                        break
                    out += chunk
                    self._meter(len(chunk))
                if len(out) != r.length:
                    raise WebSeedError(f"short response from {r.url}: {len(out)}/{r.length}")
                return bytes(out)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise WebSeedError(f"{type(exc).__name__}: {exc} ({r.url})") from exc

    def _meter(self, size: int) -> None:
        t = self.torrent
        now = time.monotonic()
        self.down.add(size, now)
        t.down.add(size, now)
        t.session.down.add(size, now)

    # -- the torrent's block path (as Torrent._on_blocks for a peer's blocks) -------------
    def _deliver(self, b: BlockRequest, data: memoryview) -> None:
        t = self.torrent
        accepted = t.picker.accept_block(self, b.piece, b.begin)
        if accepted is None:  # a peer was faster (endgame) or the piece is done
            t.wasted += len(data)
            return
        try:
            task = t.store_block(b.piece, b.begin, data, accepted)
        except StorageError as exc:
            raise WebSeedError(str(exc)) from exc
        if task is not None:  # this block completed the piece: was it all ours?
            sole = all(s is self for s in t.picker.block_senders(b.piece).values())
            task.add_done_callback(functools.partial(self._verified, b.piece, sole))

    def _verified(self, piece: int, sole: bool, task: asyncio.Task[None]) -> None:
        """After a piece this seed completed was hashed: a failure disables the URL when the
        seed sent every block, or after a few failures shared with peers (who else sent bad
        data is the guard's business; a server does not get better by retrying)."""
        from ccbt_engine.torrent import TorrentState

        t = self.torrent
        if task.cancelled() or t.picker.have[piece] or t.state == TorrentState.ERROR:
            return  # cancelled by a stop (its piece starts over), or not a hash failure
        self.hash_failures += 1
        if sole or self.hash_failures >= MAX_SHARED_HASH_FAILURES:
            self.disable(f"piece {piece} failed its hash check")

    async def _wait_relief(self) -> None:
        """Disk back-pressure: deliver no more while the write cache is being relieved."""
        while self.torrent._relieving:
            await asyncio.sleep(0.05)

    # -- status -------------------------------------------------------------------------
    def status(self, now: float) -> WebSeedStatus:
        if self.disabled is not None:
            state, reason = "disabled", self.disabled
        elif self.waiting and not self.busy:
            state, reason = "waiting", self.waiting
        else:
            state, reason = ("downloading" if self.busy else "idle"), ""
        if self.missing and self.disabled is None:
            files = self.torrent.info.files
            names = ", ".join("/".join(files[i].path) for i in sorted(self.missing))
            reason = f"{reason}; missing on server: {names}" if reason else f"missing: {names}"
        return WebSeedStatus(
            self.url,
            self.host,
            state,
            reason,
            self.down.rate(now),
            self.down.total,
            self.hash_failures,
        )


class WebSeeds:
    """The web seeds of one torrent: started with its download, stopped with its tasks."""

    def __init__(self, torrent: Torrent, urls: Sequence[str]) -> None:
        self.seeds = [WebSeed(torrent, u) for u in dict.fromkeys(urls) if _usable(u)]
        self._torrent = torrent
        self._tasks: dict[WebSeed, asyncio.Task[None]] = {}

    def start(self) -> None:
        """Run a task per usable URL (the torrent's stop cancels them: pause/stop/remove)."""
        for seed in self.seeds:
            if seed.disabled is not None and not seed.hash_failures:
                # given up after errors (server down, 503s): a resume is the user's retry;
                # one that sent bad data stays off until the session restarts
                seed.disabled, seed.failures, seed.waiting = None, 0, ""
                seed.missing.clear()
            task = self._tasks.get(seed)
            if seed.disabled is not None or (task is not None and not task.done()):
                continue
            new = self._torrent._spawn(seed.run())
            if new is not None:
                self._tasks[seed] = new

    def status(self, now: float) -> list[WebSeedStatus]:
        return [s.status(now) for s in self.seeds]


def _usable(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def _check_content_range(value: str | None, r: HttpRange) -> None:
    match = _CONTENT_RANGE.fullmatch(value.strip()) if value else None
    if match is None:
        raise WebSeedError(f"206 without a valid Content-Range from {r.url}")
    first, last = int(match.group(1)), int(match.group(2))
    if first != r.first or last != r.first + r.length - 1:
        raise WebSeedError(f"wrong Content-Range {value!r} from {r.url}")

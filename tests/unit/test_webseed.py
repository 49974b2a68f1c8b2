"""BEP 19 web seeds: URL and byte-range mapping over v1, padded v1, v2 and hybrid torrents.

The torrents are made by the engine's creator and parsed by its metainfo parser, so pad files
are exactly as a real download sees them. A fake "server" maps each file URL (built here
independently of webseed.py) to the file's bytes; every piece reassembled from the planned
ranges must match its v1 SHA-1 (or, for v2-only, the piece space built here by hand).
"""

from __future__ import annotations

import asyncio
import hashlib
import random
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import quote

import aiohttp
import pytest
from aiohttp import web

from ccbt_engine.create import create_torrent
from ccbt_engine.metainfo import TorrentInfo, parse_torrent
from ccbt_engine.storage.layout import PieceLayout
from ccbt_engine.strategy.picker import BlockRequest, PiecePicker
from ccbt_engine.strategy.ratelimit import RateLimiter, TokenBucket
from ccbt_engine.webseed import (
    MAX_FAILURES,
    HttpRange,
    WebSeed,
    WebSeedError,
    WebSeeds,
    _check_content_range,
    _FileMissing,
    _RetryAfter,
    file_url,
    is_single_file,
    plan_ranges,
    retry_after,
    runs,
)

PIECE = 16 * 1024
FILES = {
    "a b.txt": 5000,
    "sub dir/é#.bin": 40000,
    "empty.dat": 0,
    "z/100%.bin": 16 * 1024,
    "tail.bin": 777,
}


def _write(root: Path, files: dict[str, int]) -> dict[str, bytes]:
    rng = random.Random(7)
    out = {}
    for rel, size in files.items():
        data = rng.randbytes(size)
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        out[rel] = data
    return out


def _torrent(tmp_path: Path, version: str, single: bool = False) -> tuple[TorrentInfo, dict]:
    root = tmp_path / "my torrent"
    if single:
        root.mkdir()
        data = _write(root, {"only file.bin": 50000})
        target = root / "only file.bin"
    else:
        data = _write(root, FILES)
        target = root
    raw = create_torrent(target, piece_length=PIECE, version=version)  # type: ignore[arg-type]
    return parse_torrent(raw).info, data


def _server(base: str, info: TorrentInfo, data: dict[str, bytes], single: bool) -> dict:
    if single:
        (content,) = data.values()
        return {base: content, base + "/" + quote(info.name): content}
    return {
        base + "/" + quote(info.name) + "/" + "/".join(quote(p) for p in rel.split("/")): content
        for rel, content in data.items()
    }


def _fetch(server: dict, ranges: list[HttpRange], size: int) -> bytes:
    buf = bytearray(size)
    for r in ranges:
        content = server[r.url]
        assert r.first + r.length <= len(content)
        buf[r.buffer_offset : r.buffer_offset + r.length] = content[r.first : r.first + r.length]
    return bytes(buf)


@pytest.mark.parametrize("version", ["v1", "v2", "hybrid"])
@pytest.mark.parametrize("base", ["http://127.0.0.1:8/ws", "http://127.0.0.1:8/ws/"])
def test_every_piece_reassembles_multi_file(tmp_path: Path, version: str, base: str) -> None:
    info, data = _torrent(tmp_path, version)
    assert not is_single_file(info)
    if version != "v1":
        assert any(f.is_pad for f in info.files)  # the pads are really exercised
    server = _server(base.rstrip("/"), info, data, single=False)
    layout = PieceLayout(info)
    space = bytearray()
    for f in info.files:
        rel = "/".join(f.path[1:])
        space += bytes(f.length) if f.is_pad else data.get(rel, b"")
    for piece in range(info.num_pieces):
        size = info.piece_size(piece)
        got = _fetch(server, plan_ranges(layout, base, piece, 0, size), size)
        if info.piece_hashes:
            assert hashlib.sha1(got).digest() == info.piece_hashes[piece]
        start = piece * info.piece_length
        assert got == space[start : start + size]


@pytest.mark.parametrize("version", ["v1", "hybrid"])
def test_a_run_across_pieces_and_files_is_one_range_per_file(tmp_path: Path, version: str) -> None:
    info, data = _torrent(tmp_path, version)
    layout = PieceLayout(info)
    base = "http://127.0.0.1:8/ws/"
    ranges = plan_ranges(layout, base, 0, 0, info.total_length)
    assert len({r.file_index for r in ranges}) == len(ranges)  # adjacent pieces merged
    server = _server(base.rstrip("/"), info, data, single=False)
    got = _fetch(server, ranges, info.total_length)
    assert len(got) == info.total_length
    # a run starting inside a piece
    part = plan_ranges(layout, base, 1, 100, PIECE)
    assert _fetch(server, part, PIECE) == got[PIECE + 100 : 2 * PIECE + 100]


def test_empty_files_are_never_requested(tmp_path: Path) -> None:
    info, _ = _torrent(tmp_path, "v1")
    ranges = plan_ranges(PieceLayout(info), "http://h/", 0, 0, info.total_length)
    assert all(not r.url.endswith("empty.dat") for r in ranges)
    assert all(r.length > 0 for r in ranges)


def test_urls_are_quoted_per_component(tmp_path: Path) -> None:
    info, _ = _torrent(tmp_path, "v1")
    urls = {"/".join(f.path): file_url("http://h/x", info, i) for i, f in enumerate(info.files)}
    assert urls["my torrent/sub dir/é#.bin"] == "http://h/x/my%20torrent/sub%20dir/%C3%A9%23.bin"
    assert urls["my torrent/z/100%.bin"] == "http://h/x/my%20torrent/z/100%25.bin"


@pytest.mark.parametrize("version", ["v1", "v2", "hybrid"])
def test_urls_use_the_torrents_names_not_the_sanitised_ones(tmp_path: Path, version: str) -> None:
    """The server has ``what?.bin``; our disk gets ``what_.bin``; the URL must say the former
    (it said ``what_.bin`` and got a 404 for every file whose name sanitising changes)."""
    root = tmp_path / "odd:name"
    _write(root, {"what?.bin": 40000, "dir*/CON": 30000, "fine.bin": 20000})
    info = parse_torrent(create_torrent(root, piece_length=PIECE, version=version)).info  # type: ignore[arg-type]
    real = {"/".join(f.path): f for f in info.files if not f.is_pad}
    assert set(real) == {"odd_name/what_.bin", "odd_name/dir_/CON_", "odd_name/fine.bin"}
    urls = {p: file_url("http://h/x/", info, info.files.index(f)) for p, f in real.items()}
    assert urls == {
        "odd_name/what_.bin": "http://h/x/odd%3Aname/what%3F.bin",
        "odd_name/dir_/CON_": "http://h/x/odd%3Aname/dir%2A/CON",
        "odd_name/fine.bin": "http://h/x/odd%3Aname/fine.bin",
    }
    single_root = tmp_path / "single"
    _write(single_root, {"a<b>.iso": 10000})
    raw = create_torrent(single_root / "a<b>.iso", piece_length=PIECE, version=version)  # type: ignore[arg-type]
    one = parse_torrent(raw).info
    assert one.files[0].path == ("a_b_.iso",)
    assert file_url("http://h/d/", one, 0) == "http://h/d/a%3Cb%3E.iso"
    assert file_url("http://h/f.iso", one, 0) == "http://h/f.iso"


@pytest.mark.parametrize("version", ["v1", "v2", "hybrid"])
def test_single_file_url_is_the_url_or_url_plus_name(tmp_path: Path, version: str) -> None:
    info, data = _torrent(tmp_path, version, single=True)
    assert is_single_file(info)
    layout = PieceLayout(info)
    for base in ("http://127.0.0.1:8/f.bin", "http://127.0.0.1:8/d/"):
        server = _server(base.rstrip("/"), info, data, single=True)
        if base.endswith("/"):
            assert file_url(base, info, 0) == base + "only%20file.bin"
        else:
            assert file_url(base, info, 0) == base
        whole = _fetch(
            server, plan_ranges(layout, base, 0, 0, info.total_length), info.total_length
        )
        assert whole[:50000] == next(iter(data.values()))
        assert whole[50000:] == bytes(info.total_length - 50000)  # v2's trailing pad: zeros


def test_runs_group_contiguous_blocks_across_pieces() -> None:
    blocks = [
        BlockRequest(1, 0, 16384),
        BlockRequest(0, 16384, 16384),
        BlockRequest(0, 0, 16384),
        BlockRequest(3, 0, 100),
    ]
    grouped = runs(blocks, 32768)
    assert [[(b.piece, b.begin) for b in r] for r in grouped] == [
        [(0, 0), (0, 16384), (1, 0)],
        [(3, 0)],
    ]


def test_retry_after() -> None:
    assert retry_after("7", 1.0) == 7.0
    assert retry_after(None, 3.0) == 3.0
    assert retry_after("Wed, 21 Oct 2015 07:28:00 GMT", 2.0) == 2.0
    assert retry_after("999999", 1.0) == 300.0
    assert retry_after("-5", 1.0) == 0.0


def test_content_range_must_match_the_request() -> None:
    r = HttpRange(0, "http://h/f", 100, 50, 0)
    _check_content_range("bytes 100-149/1000", r)
    _check_content_range("bytes 100-149/*", r)
    for bad in (None, "", "bytes 0-49/1000", "bytes 100-150/1000", "items 100-149/1000"):
        with pytest.raises(WebSeedError):
            _check_content_range(bad, r)


# -- HTTP behaviour of one seed, against an in-process aiohttp server -------------------------

BODY = bytes(range(256)) * 64  # 16 KiB


class _Meter:
    def __init__(self) -> None:
        self.total = 0

    def add(self, n: int, now: float) -> None:
        self.total += n


def _fake_torrent(http: aiohttp.ClientSession) -> SimpleNamespace:
    session = SimpleNamespace(http=http, down=_Meter(), limiter=RateLimiter())
    return SimpleNamespace(session=session, down=_Meter(), name="t")


async def _range_handler(request: web.Request) -> web.StreamResponse:
    mode = request.match_info["mode"]
    if mode == "busy":
        return web.Response(status=503, headers={"Retry-After": "7"})
    if mode.startswith("hop"):
        left = int(mode[3:])
        raise web.HTTPFound(f"/hop{left - 1}" if left > 1 else "/ok")
    if mode == "norange":
        return web.Response(body=BODY)  # ignores Range, as python -m http.server does
    if mode == "short":
        resp = web.StreamResponse(status=206, headers={"Content-Range": "bytes 0-99/16384"})
        resp.content_length = 10
        await resp.prepare(request)
        await resp.write(BODY[:10])
        return resp
    if mode != "ok":
        raise web.HTTPNotFound()
    first, last = request.http_range.start, request.http_range.stop
    assert first is not None and last is not None
    return web.Response(
        status=206,
        body=BODY[first:last],
        headers={"Content-Range": f"bytes {first}-{last - 1}/{len(BODY)}"},
    )


@pytest.fixture
async def seed_at() -> AsyncIterator[Callable[[str], WebSeed]]:
    app = web.Application()
    app.router.add_get("/{mode}", _range_handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    http = aiohttp.ClientSession()

    def make(path: str) -> WebSeed:
        return WebSeed(_fake_torrent(http), f"http://127.0.0.1:{port}/{path}")  # type: ignore[arg-type]

    yield make
    await http.close()
    await runner.cleanup()


def _r(seed: WebSeed, first: int, length: int) -> HttpRange:
    return HttpRange(3, seed.url, first, length, 0)


async def test_a_range_is_fetched_and_metered(seed_at: Callable[[str], WebSeed]) -> None:
    seed = seed_at("ok")
    assert await seed._get(_r(seed, 100, 5000)) == BODY[100:5100]
    assert seed.down.total == 5000
    assert seed.torrent.down.total == 5000 and seed.torrent.session.down.total == 5000


async def test_a_failed_fetch_gives_its_prepaid_bytes_back_to_the_limits(
    seed_at: Callable[[str], WebSeed], tmp_path: Path
) -> None:
    """Bytes are paid before the request; a request that fails delivers none of them, so they
    go back to the torrent's and the session's buckets (they used to be lost, slowing the next
    fetches and the peers under the same limit)."""
    info, _ = _torrent(tmp_path, "v1", single=True)
    seed = seed_at("busy")  # 503 for every request
    torrent = seed.torrent  # type: ignore[attr-defined]
    buckets = (TokenBucket(64 * 1024, burst=8 * PIECE), TokenBucket(64 * 1024, burst=8 * PIECE))
    torrent.down_bucket, torrent.session.down_bucket = buckets
    torrent.info, torrent.layout = info, PieceLayout(info)
    torrent.picker = PiecePicker(info.num_pieces, info.piece_length, info.total_length)
    try:
        loop = asyncio.get_running_loop()
        full = [b.available(loop.time()) for b in buckets]
        with pytest.raises(_RetryAfter):
            await seed._fetch([BlockRequest(0, 0, PIECE)])
        after = [b.available(loop.time()) for b in buckets]
        assert after == pytest.approx(full), "the failed fetch's bytes stayed charged"
    finally:
        for b in buckets:
            b.set_rate(0)  # TokenBucket.limited_count: leave the process unlimited again


async def test_503_gives_its_retry_after(seed_at: Callable[[str], WebSeed]) -> None:
    seed = seed_at("busy")
    with pytest.raises(_RetryAfter) as caught:
        await seed._get(_r(seed, 0, 10))
    assert caught.value.delay == 7.0


async def test_404_names_the_missing_file(seed_at: Callable[[str], WebSeed]) -> None:
    seed = seed_at("gone")
    with pytest.raises(_FileMissing) as caught:
        await seed._get(_r(seed, 0, 10))
    assert caught.value.file_index == 3


async def test_redirects_are_followed_up_to_five(seed_at: Callable[[str], WebSeed]) -> None:
    seed = seed_at("hop5")
    assert await seed._get(_r(seed, 0, 100)) == BODY[:100]
    seed = seed_at("hop6")
    with pytest.raises(WebSeedError):
        await seed._get(_r(seed, 0, 100))


async def test_a_server_ignoring_range(seed_at: Callable[[str], WebSeed]) -> None:
    seed = seed_at("norange")
    # from byte 0 the head of the whole file is usable: only what was asked for is read
    assert await seed._get(_r(seed, 0, 100)) == BODY[:100]
    assert seed.down.total == 100
    with pytest.raises(WebSeedError, match="HTTP 200"):
        await seed._get(_r(seed, 100, 100))


async def test_short_or_mismatched_responses_fail(seed_at: Callable[[str], WebSeed]) -> None:
    seed = seed_at("short")
    with pytest.raises(WebSeedError, match="short response"):
        await seed._get(_r(seed, 0, 100))
    with pytest.raises(WebSeedError, match="Content-Range"):
        await seed._get(_r(seed, 5, 100))


async def test_connection_refused_is_a_web_seed_error() -> None:
    async with aiohttp.ClientSession() as http:
        port = 1  # nothing listens on port 1 of loopback
        seed = WebSeed(_fake_torrent(http), f"http://127.0.0.1:{port}/x")  # type: ignore[arg-type]
        with pytest.raises(WebSeedError):
            await seed._get(_r(seed, 0, 10))


def test_non_http_urls_are_ignored() -> None:
    t = SimpleNamespace()
    seeds = WebSeeds(t, ["ftp://127.0.0.1/x", "http://127.0.0.1/a", "http://127.0.0.1/a", "junk"])  # type: ignore[arg-type]
    assert [s.url for s in seeds.seeds] == ["http://127.0.0.1/a"]


async def test_back_off_then_disable_after_repeated_failures(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    slept: list[float] = []

    async def fake_sleep(delay: float) -> None:
        slept.append(delay)

    monkeypatch.setattr("ccbt_engine.webseed.asyncio.sleep", fake_sleep)
    t = SimpleNamespace(name="t", picker=PiecePicker(4, PIECE, 4 * PIECE))
    seed = WebSeed(t, "http://127.0.0.1:9/x")  # type: ignore[arg-type]
    seed._register()
    assert t.picker.availability(0) == 1  # a pseudo-peer that has every piece
    await seed._failed(_RetryAfter("HTTP 503", 7.0))
    assert slept == [7.0]  # Retry-After wins over the exponential back-off
    assert t.picker.availability(0) == 0  # its blocks go back to the peers while it waits
    assert seed.status(0.0).state == "waiting"
    for _ in range(MAX_FAILURES - 2):
        await seed._failed(WebSeedError("boom"))
    assert seed.disabled is None
    assert slept[1:] == [2.0**n for n in range(2, MAX_FAILURES)]
    await seed._failed(WebSeedError("boom"))
    status = seed.status(0.0)
    assert status.state == "disabled" and "boom" in status.reason


async def test_404_drops_that_files_pieces_from_the_seed(tmp_path: Path) -> None:
    info, _ = _torrent(tmp_path, "v1")
    layout = PieceLayout(info)
    picker = PiecePicker(info.num_pieces, info.piece_length, info.total_length)
    t = SimpleNamespace(name="t", picker=picker, info=info, layout=layout)
    seed = WebSeed(t, "http://127.0.0.1:9/x/")  # type: ignore[arg-type]
    seed._register()
    big = next(i for i, f in enumerate(info.files) if f.path[-1] == "é#.bin")
    await seed._failed(_FileMissing("HTTP 404", big))
    assert seed.disabled is None
    seed._register()
    first, last = layout.file_piece_range(big)
    for p in range(info.num_pieces):
        assert picker.availability(p) == (0 if first <= p <= last else 1)
    assert "é#.bin" in seed.status(0.0).reason
    for i, f in enumerate(info.files):
        if f.length and i != big:
            await seed._failed(_FileMissing("HTTP 404", i))
    assert seed.disabled is not None and "every file" in seed.disabled


def test_a_resume_retries_a_seed_given_up_after_errors_but_not_after_bad_data() -> None:
    t = SimpleNamespace(
        name="t", picker=PiecePicker(4, PIECE, 4 * PIECE), _spawn=lambda c: c.close()
    )
    seeds = WebSeeds(t, ["http://127.0.0.1:9/a", "http://127.0.0.1:9/b"])  # type: ignore[arg-type]
    down, bad = seeds.seeds
    down.disable("5 failures in a row")
    down.missing.add(0)
    bad.hash_failures = 1
    bad.disable("piece 0 failed its hash check")
    seeds.start()
    assert down.disabled is None and not down.missing
    assert bad.disabled == "piece 0 failed its hash check"

"""BEP 19 web seeds against a real HTTP server nobody here wrote: Debian's lighttpd.

lighttpd serves the payload folder with Range support (206 + Content-Range), 404 for what is
not there, and can be throttled (``server.kbytes-per-second``) so a libtorrent seeder gets a
share. (``python3 -m http.server`` ignores Range and always answers 200 with the whole file,
so it cannot be a web seed for anything but the first bytes of a file.)
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from ccbt_engine import bencode
from ccbt_engine.api import PeerStatus, Session, TorrentHandle
from tests.engine_settings import loopback_settings
from tests.interop import refpeers
from tests.interop.refpeers import LibtorrentPeer, make_torrent, sha256_tree

pytestmark = [pytest.mark.interop, pytest.mark.timeout(240)]

PIECE = 256 * 1024


class Lighttpd:
    """lighttpd in the foreground (``-D``) on 127.0.0.1, serving ``root``."""

    def __init__(self, binary: str, root: Path, workdir: Path, kbytes_per_second: int = 0) -> None:
        self.port = refpeers.free_port()
        self.workdir = workdir
        conf = workdir / "lighttpd.conf"
        lines = [
            f'server.document-root = "{root}"',
            'server.bind = "127.0.0.1"',
            f"server.port = {self.port}",
            f'server.errorlog = "{workdir / "error.log"}"',
        ]
        if kbytes_per_second:
            lines.append(f"server.kbytes-per-second = {kbytes_per_second}")
        conf.write_text("\n".join(lines) + "\n")
        self.proc = subprocess.Popen(
            [binary, "-D", "-f", str(conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                break
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    log = (workdir / "error.log").read_text()[-500:]
                    raise RuntimeError(f"lighttpd did not start: {log}") from None
                time.sleep(0.05)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}/{path}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)


@pytest.fixture(scope="session")
def lighttpd_bin() -> str:
    try:
        return refpeers.ensure_apt_binary("lighttpd", "lighttpd")
    except refpeers.RefPeerError as exc:
        pytest.skip(str(exc))


@pytest.fixture
async def ccbt() -> AsyncIterator[Session]:
    async with Session(loopback_settings(), listen_port=0) as session:
        yield session


@pytest.fixture
def www(tmp_path: Path) -> Path:
    root = tmp_path / "www"
    root.mkdir()
    return root


@pytest.fixture
def server_factory(lighttpd_bin: str, tmp_path: Path) -> Iterator[list[Lighttpd]]:
    servers: list[Lighttpd] = []
    yield servers
    for s in servers:
        s.stop()


def _start(servers: list[Lighttpd], binary: str, root: Path, tmp: Path, kbps: int = 0) -> Lighttpd:
    work = tmp / f"httpd{len(servers)}"
    work.mkdir()
    server = Lighttpd(binary, root, work, kbps)
    servers.append(server)
    return server


def _with_web_seed(torrent: Path, url: str) -> Path:
    """The same torrent (same infohash: url-list is outside the info dict) plus a web seed."""
    top = bencode.decode(torrent.read_bytes())
    top[b"url-list"] = [url.encode()]
    out = torrent.with_name("ws-" + torrent.name)
    out.write_bytes(bencode.encode(top))
    return out


def _mirror(payload: Path, dest: Path, *, skip: str | None = None, corrupt: bool = False) -> None:
    """Copy of the payload folder for the server (minus ``skip``; every byte flipped if corrupt)."""
    for f in sorted(payload.rglob("*")):
        rel = f.relative_to(payload).as_posix()
        if not f.is_file() or rel == skip:
            continue
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if corrupt:
            target.write_bytes(bytes(b ^ 0xFF for b in f.read_bytes()))
        else:
            shutil.copyfile(f, target)


def _seeds(handle: TorrentHandle) -> list[PeerStatus]:
    return [p for p in handle.peers() if p.source == "webseed"]


async def _until(pred: object, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not pred():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.1)


def _same(a: Path, b: Path) -> None:
    left, right = sha256_tree(a), sha256_tree(b)
    assert left == right
    assert left, "empty payload compared"


async def test_web_seed_alone_downloads_everything(
    ccbt: Session,
    payload_16m: Path,
    tmp_path: Path,
    www: Path,
    lighttpd_bin: str,
    server_factory: list[Lighttpd],
) -> None:
    _mirror(payload_16m, www / "files" / payload_16m.name)
    server = _start(server_factory, lighttpd_bin, www, tmp_path)
    made = make_torrent(payload_16m, None, PIECE, tmp_path / "t.torrent")
    torrent = _with_web_seed(made.path, server.url("files/"))
    handle = await ccbt.add_torrent(torrent, tmp_path / "dl")
    status = await handle.wait_finished(timeout=120)
    assert status.hash_failures == 0
    _same(tmp_path / "dl" / made.name, payload_16m)
    (seed,) = _seeds(handle)
    assert seed.address == "127.0.0.1"
    assert seed.client.startswith("HTTP seed")
    assert seed.downloaded >= made.total_size  # every byte came over HTTP
    assert status.downloaded >= made.total_size  # and counts in the torrent's totals


async def test_names_sanitising_changes_are_fetched_by_the_torrents_names(
    ccbt: Session, tmp_path: Path, www: Path, lighttpd_bin: str, server_factory: list[Lighttpd]
) -> None:
    """lighttpd has ``odd:name/what?.bin``; ccbt stores ``odd_name/what_.bin`` but must ask for
    the torrent's name (it used to request the sanitised one and get a 404 for such files)."""
    payload = tmp_path / "src" / "odd:name"
    contents = {"what?.bin": os.urandom(300_000), "dir*/CON": os.urandom(200_000)}
    for rel, data in contents.items():
        (payload / rel).parent.mkdir(parents=True, exist_ok=True)
        (payload / rel).write_bytes(data)
    _mirror(payload, www / "files" / payload.name)
    server = _start(server_factory, lighttpd_bin, www, tmp_path)
    made = make_torrent(payload, None, 64 * 1024, tmp_path / "odd.torrent")  # libtorrent's
    torrent = _with_web_seed(made.path, server.url("files/"))
    handle = await ccbt.add_torrent(torrent, tmp_path / "dl")
    status = await handle.wait_finished(timeout=60)
    assert status.hash_failures == 0
    saved = tmp_path / "dl" / "odd_name"
    assert (saved / "what_.bin").read_bytes() == contents["what?.bin"]
    assert (saved / "dir_" / "CON_").read_bytes() == contents["dir*/CON"]
    (seed,) = _seeds(handle)
    assert seed.downloaded >= made.total_size  # all of it over HTTP, none refused


async def test_web_seed_and_libtorrent_together(
    ccbt: Session,
    payload_16m: Path,
    tmp_path: Path,
    www: Path,
    lighttpd_bin: str,
    server_factory: list[Lighttpd],
) -> None:
    _mirror(payload_16m, www / payload_16m.name)
    server = _start(server_factory, lighttpd_bin, www, tmp_path, kbps=2048)  # both get a share
    made = make_torrent(payload_16m, None, PIECE, tmp_path / "t.torrent", "hybrid")
    torrent = _with_web_seed(made.path, server.url(""))
    with LibtorrentPeer(made.path, made.save_path, seed=True) as seeder:
        handle = await ccbt.add_torrent(torrent, tmp_path / "dl")
        handle.connect_peer("127.0.0.1", seeder.port)
        await _until(lambda: _seeds(handle)[0].downloaded > 0, 60)
        status = await handle.wait_finished(timeout=120)
    assert status.hash_failures == 0
    _same(tmp_path / "dl" / made.name, payload_16m)
    (seed,) = _seeds(handle)
    assert 0 < seed.downloaded < made.total_size + PIECE  # not the whole torrent twice


async def test_corrupt_web_seed_is_disabled_and_libtorrent_finishes(
    ccbt: Session,
    payload_16m: Path,
    tmp_path: Path,
    www: Path,
    lighttpd_bin: str,
    server_factory: list[Lighttpd],
) -> None:
    _mirror(payload_16m, www / payload_16m.name, corrupt=True)
    server = _start(server_factory, lighttpd_bin, www, tmp_path)
    made = make_torrent(payload_16m, None, PIECE, tmp_path / "t.torrent")
    torrent = _with_web_seed(made.path, server.url(""))
    handle = await ccbt.add_torrent(torrent, tmp_path / "dl")
    # alone, the seed delivers whole pieces: the first hash check fails and disables it
    await _until(lambda: "disabled" in _seeds(handle)[0].client, 60)
    (seed,) = _seeds(handle)
    assert "hash check" in seed.client
    assert seed.hash_failures >= 1
    assert handle.status().progress < 1.0
    with LibtorrentPeer(made.path, made.save_path, seed=True) as seeder:
        handle.connect_peer("127.0.0.1", seeder.port)
        status = await handle.wait_finished(timeout=120)
    assert status.hash_failures >= 1
    _same(tmp_path / "dl" / made.name, payload_16m)
    assert not handle.banned_peers()  # the HTTP server's failures never ban a peer's address


async def test_404_on_one_file_leaves_that_file_to_peers(
    ccbt: Session,
    payload_16m: Path,
    tmp_path: Path,
    www: Path,
    lighttpd_bin: str,
    server_factory: list[Lighttpd],
) -> None:
    files = sorted(f for f in payload_16m.rglob("*") if f.is_file())
    biggest = max(files, key=lambda f: f.stat().st_size)
    missing = biggest.relative_to(payload_16m).as_posix()
    _mirror(payload_16m, www / payload_16m.name, skip=missing)
    server = _start(server_factory, lighttpd_bin, www, tmp_path)
    made = make_torrent(payload_16m, None, PIECE, tmp_path / "t.torrent")
    torrent = _with_web_seed(made.path, server.url(""))
    handle = await ccbt.add_torrent(torrent, tmp_path / "dl")
    await _until(lambda: missing in _seeds(handle)[0].client, 60)
    # the seed goes on with every other file: everything but the missing file's pieces arrive
    size = biggest.stat().st_size
    await _until(lambda: handle.status().progress >= 1 - (size + 2 * PIECE) / made.total_size, 90)
    (seed,) = _seeds(handle)
    assert "disabled" not in seed.client
    assert handle.status().progress < 1.0
    with LibtorrentPeer(made.path, made.save_path, seed=True) as seeder:
        handle.connect_peer("127.0.0.1", seeder.port)
        status = await handle.wait_finished(timeout=120)
    assert status.hash_failures == 0
    _same(tmp_path / "dl" / made.name, payload_16m)


async def test_pause_stops_the_web_seed_and_skipped_files_are_not_fetched(
    ccbt: Session,
    payload_16m: Path,
    tmp_path: Path,
    www: Path,
    lighttpd_bin: str,
    server_factory: list[Lighttpd],
) -> None:
    _mirror(payload_16m, www / payload_16m.name)
    server = _start(server_factory, lighttpd_bin, www, tmp_path, kbps=4096)
    made = make_torrent(payload_16m, None, PIECE, tmp_path / "t.torrent")
    torrent = _with_web_seed(made.path, server.url(""))
    files = sorted(f for f in payload_16m.rglob("*") if f.is_file())
    skipped = max(files, key=lambda f: f.stat().st_size)
    skipped_path = f"{made.name}/{skipped.relative_to(payload_16m).as_posix()}"
    handle = await ccbt.add_torrent(torrent, tmp_path / "dl", paused=True)
    prios = [0 if f.path == skipped_path else 4 for f in handle.files()]
    assert prios.count(0) == 1
    handle.set_file_priorities(prios)
    await handle.resume()
    await _until(lambda: _seeds(handle)[0].downloaded > 0, 60)
    await handle.pause()
    paused_at = _seeds(handle)[0].downloaded
    await asyncio.sleep(1.0)  # a running request would deliver several hundred KiB meanwhile
    assert _seeds(handle)[0].downloaded == paused_at
    await handle.resume()
    await handle.wait_finished(timeout=120)
    (seed,) = _seeds(handle)
    assert seed.downloaded <= made.total_size - skipped.stat().st_size + 2 * PIECE
    got = sha256_tree(tmp_path / "dl" / made.name)
    want = sha256_tree(payload_16m)
    rel = skipped.relative_to(payload_16m).as_posix()
    assert got.get(rel) != want[rel]  # never completed: its own pieces were not fetched
    assert {k: v for k, v in got.items() if k != rel} == {k: v for k, v in want.items() if k != rel}

"""MSE/PE against other clients: libtorrent forced to encrypt, Transmission requiring it.

The reference peers refuse plain BitTorrent, so a finished transfer proves our MSE handshake;
sampling ccbt's peers snapshot during the transfer shows which method (RC4 or plaintext PE)
the two sides settled on. ccbt ↔ ccbt cases cover our own policy matrix, including the
plain retry of ``enabled`` and the refusals of ``forced``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Literal

import pytest

from ccbt_engine.api import Session, TorrentHandle
from tests.engine_settings import loopback_settings
from tests.interop import refpeers
from tests.interop.refpeers import (
    EncLevel,
    LibtorrentPeer,
    TransmissionPeer,
    make_torrent,
    sha256_tree,
)

pytestmark = [pytest.mark.interop, pytest.mark.timeout(180)]

PIECE = 256 * 1024
Policy = Literal["disabled", "enabled", "forced"]


def _session(policy: Policy = "enabled") -> Session:
    return Session(loopback_settings(security={"encryption": policy}), listen_port=0)


@pytest.fixture
async def ccbt() -> AsyncIterator[Session]:
    async with _session() as session:
        yield session


def _same(a: Path, b: Path) -> None:
    left, right = sha256_tree(a), sha256_tree(b)
    assert left == right
    assert left, "empty payload compared"


@contextlib.asynccontextmanager
async def _watch_peers(handle: TorrentHandle) -> AsyncIterator[set[bool]]:
    """Collects the ``encrypted`` flag of every peer seen while the block runs."""
    seen: set[bool] = set()

    async def poll() -> None:
        while True:
            seen.update(p.encrypted for p in handle.peers())
            await asyncio.sleep(0.01)

    task = asyncio.create_task(poll())
    try:
        yield seen
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def _lt(path: Path, save: Path, *, seed: bool, level: EncLevel) -> LibtorrentPeer:
    return LibtorrentPeer(
        path,
        save,
        seed=seed,
        enc="forced",
        enc_level=level,
        tcp_only=True,
    )


# -- libtorrent, forced encryption --------------------------------------------------------------
@pytest.mark.parametrize(("level", "rc4"), [("rc4", True), ("plaintext", False)])
async def test_ccbt_downloads_from_forced_libtorrent(
    ccbt: Session, payload_16m: Path, tmp_path: Path, level: EncLevel, rc4: bool
) -> None:
    made = make_torrent(payload_16m, None, PIECE, tmp_path / "t.torrent", "hybrid")
    with _lt(made.path, made.save_path, seed=True, level=level) as seeder:
        handle = await ccbt.add_torrent(made.path, tmp_path / "dl")
        async with _watch_peers(handle) as seen:
            handle.connect_peer("127.0.0.1", seeder.port)
            status = await handle.wait_finished(timeout=60)
    assert status.hash_failures == 0
    assert seen == {rc4}, "the peers snapshot must say how the payload travelled"
    _same(tmp_path / "dl" / made.name, payload_16m)


@pytest.mark.parametrize(("level", "rc4"), [("rc4", True), ("plaintext", False)])
async def test_forced_libtorrent_downloads_from_ccbt(
    ccbt: Session, payload_16m: Path, tmp_path: Path, level: EncLevel, rc4: bool
) -> None:
    made = make_torrent(payload_16m, None, PIECE, tmp_path / "t.torrent", "hybrid")
    handle = await ccbt.add_torrent(made.path, made.save_path)
    (tmp_path / "lt").mkdir()
    with _lt(made.path, tmp_path / "lt", seed=False, level=level) as leecher:
        async with _watch_peers(handle) as seen:
            await leecher.connect_async("127.0.0.1", ccbt.listen_port)
            await leecher.wait_finished_async(60)
    assert seen == {rc4}
    assert handle.status().uploaded >= 16 << 20
    _same(tmp_path / "lt" / made.name, payload_16m)


async def test_enabled_ccbt_retries_plain_when_libtorrent_refuses_mse(
    ccbt: Session, payload_16m: Path, tmp_path: Path
) -> None:
    made = make_torrent(payload_16m, None, PIECE, tmp_path / "t.torrent")
    with LibtorrentPeer(made.path, made.save_path, seed=True, enc="disabled") as seeder:
        handle = await ccbt.add_torrent(made.path, tmp_path / "dl")
        async with _watch_peers(handle) as seen:
            handle.connect_peer("127.0.0.1", seeder.port)
            await handle.wait_finished(timeout=60)
    assert seen == {False}
    _same(tmp_path / "dl" / made.name, payload_16m)


async def test_forced_ccbt_will_not_settle_for_plaintext_pe(
    payload_16m: Path, tmp_path: Path
) -> None:
    made = make_torrent(payload_16m, None, PIECE, tmp_path / "t.torrent")
    async with _session("forced") as ccbt:
        with _lt(made.path, made.save_path, seed=True, level="plaintext") as seeder:
            handle = await ccbt.add_torrent(made.path, tmp_path / "dl")
            handle.connect_peer("127.0.0.1", seeder.port)
            await asyncio.sleep(2.0)
            assert handle.status().downloaded == 0
            assert not handle.peers()


# -- Transmission, encryption required ------------------------------------------------------------
@pytest.fixture(scope="module")
def transmission() -> str:
    try:
        return refpeers.ensure_apt_binary("transmission-cli", "transmission-cli")
    except refpeers.RefPeerError as exc:
        pytest.skip(str(exc))


async def _wait_ready(peer: TransmissionPeer, timeout: float = 15.0) -> None:
    """transmission-cli returns before its torrent is loaded, and until then it resets
    connections for it (and a refused dial is not retried): wait for its first status line."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while "Progress:" not in peer.output_tail():
        if loop.time() > deadline:
            raise TimeoutError("transmission never reported progress\n" + peer.output_tail())
        await asyncio.sleep(0.1)


@pytest.fixture
def payload_4m(tmp_path: Path) -> Path:
    return refpeers.make_payload(tmp_path / "src", 4 << 20, 4, seed=4)


async def test_ccbt_downloads_from_transmission_requiring_encryption(
    ccbt: Session, transmission: str, payload_4m: Path, tmp_path: Path
) -> None:
    made = make_torrent(payload_4m, None, 64 * 1024, tmp_path / "t.torrent")
    seeder = TransmissionPeer(made.path, made.save_path, seed=True, encryption="required")
    await asyncio.to_thread(seeder.start)
    try:
        handle = await ccbt.add_torrent(made.path, tmp_path / "dl")
        async with _watch_peers(handle) as seen:
            handle.connect_peer("127.0.0.1", seeder.port)
            await handle.wait_finished(timeout=90)
    finally:
        await asyncio.to_thread(seeder.stop)
    assert seen == {True}
    _same(tmp_path / "dl" / made.name, payload_4m)


async def test_transmission_requiring_encryption_downloads_from_ccbt(
    ccbt: Session, transmission: str, payload_4m: Path, tmp_path: Path
) -> None:
    made = make_torrent(payload_4m, None, 64 * 1024, tmp_path / "t.torrent")
    handle = await ccbt.add_torrent(made.path, made.save_path)
    leecher = TransmissionPeer(made.path, tmp_path / "tr", seed=False, encryption="required")
    await asyncio.to_thread(leecher.start)
    try:
        await _wait_ready(leecher)
        async with _watch_peers(handle) as seen:
            handle.connect_peer("127.0.0.1", leecher.port)  # Transmission never dials 127.x
            await asyncio.to_thread(leecher.wait_finished, 90)
    finally:
        await asyncio.to_thread(leecher.stop)
    assert seen == {True}
    _same(tmp_path / "tr" / made.name, payload_4m)


# -- ccbt ↔ ccbt: the policy matrix ---------------------------------------------------------------
async def _ccbt_pair(
    payload: Path, tmp_path: Path, seeder_policy: Policy, leecher_policy: Policy, wait: float
) -> dict[str, Any]:
    """The leecher dials the seeder; returns what happened within ``wait`` seconds."""
    made = make_torrent(payload, None, PIECE, tmp_path / "t.torrent")
    async with _session(seeder_policy) as seed_session, _session(leecher_policy) as leech_session:
        await seed_session.add_torrent(made.path, made.save_path)
        handle = await leech_session.add_torrent(made.path, tmp_path / "dl")
        async with _watch_peers(handle) as seen:
            handle.connect_peer("127.0.0.1", seed_session.listen_port)
            finished = True
            try:
                await handle.wait_finished(timeout=wait)
            except TimeoutError:
                finished = False
    if finished:
        _same(tmp_path / "dl" / made.name, payload)
    return {"finished": finished, "encrypted": seen}


@pytest.mark.parametrize(
    ("seeder", "leecher", "finished", "encrypted"),
    [
        ("enabled", "enabled", True, {False}),  # both offered -> plaintext PE, like libtorrent
        ("forced", "forced", True, {True}),
        ("forced", "enabled", True, {True}),
        ("enabled", "forced", True, {True}),
        ("disabled", "enabled", True, {False}),  # MSE refused -> plain retry
        ("enabled", "disabled", True, {False}),  # plain incoming accepted
        ("disabled", "forced", False, set()),  # forced never retries plain
        ("forced", "disabled", False, set()),  # forced refuses plain incoming
    ],
)
async def test_ccbt_policy_matrix(
    payload_16m: Path,
    tmp_path: Path,
    seeder: Policy,
    leecher: Policy,
    finished: bool,
    encrypted: set[bool],
) -> None:
    result = await _ccbt_pair(payload_16m, tmp_path, seeder, leecher, 30.0 if finished else 2.0)
    assert result == {"finished": finished, "encrypted": encrypted}

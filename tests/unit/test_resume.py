"""Fast resume: the resume-file format (untrusted on load), the state folder, and the engine
restoring torrents from checkpoints instead of rechecking them.

Engine tests run two ccbt sessions on loopback (a plain seeder, a persisting leecher); the
kill -9 crash test against libtorrent is in ``tests/interop/test_resume_crash.py``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import random
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ccbt_engine import events as ev
from ccbt_engine.api import Session, SessionError, TorrentHandle
from ccbt_engine.bencode import decode, encode
from ccbt_engine.config import ConfigError
from ccbt_engine.create import create_torrent
from ccbt_engine.metainfo import TorrentInfo, parse_torrent
from ccbt_engine.state import (
    SessionState,
    StateFolder,
    atomic_write,
    resolve_state_dir,
    torrent_file_bytes,
)
from ccbt_engine.storage.files import TorrentStorage
from ccbt_engine.storage.resume import (
    FileStamp,
    ResumeData,
    ResumeError,
    blocks_bitmap,
    check_with_resume,
    decode_resume,
    encode_resume,
    stamp_files,
    validate_resume,
)
from tests.engine_settings import loopback_settings

pytestmark = pytest.mark.timeout(60)

KIB = 1024
MIB = 1024 * KIB
PIECE = 64 * KIB


def _sample(**over: object) -> ResumeData:
    base: dict[str, object] = {
        "info_hash": bytes(range(20)),
        "save_path": "/tmp/somewhere",
        "num_pieces": 10,
        "pieces": bytes([0b10110000, 0b01000000]),
        "partial": {2: blocks_bitmap([0, 3], 4)},
        "files": (FileStamp(100, 123456789), None),
        "part_file": None,
        "file_priorities": (4, 0),
        "uploaded": 5,
        "downloaded": 7,
        "active_seconds": 60,
        "seeding_seconds": 30,
        "added_time": 1_700_000_000,
        "completed_time": 0,
        "paused": True,
        "sequential": False,
        "download_limit": 1000,
        "upload_limit": 0,
        "peers": (("127.0.0.1", 6881), ("::1", 51413)),
        "clean": True,
        "checkpoint_time": 1_700_000_100,
    }
    base.update(over)
    return ResumeData(**base)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------- format


def test_roundtrip() -> None:
    data = _sample()
    assert decode_resume(encode_resume(data)) == data
    assert data.claimed() == 4
    assert [data.has_piece(i) for i in range(10)] == [1, 0, 1, 1, 0, 0, 0, 0, 0, 1]


def test_file_without_statistics_reads_as_zero() -> None:
    """Files written before the statistics (or by hand) are still usable: the counters are 0."""
    top = decode(encode_resume(_sample()))
    assert isinstance(top, dict)
    for key in (b"uploaded", b"downloaded", b"active-seconds", b"seeding-seconds"):
        del top[key]
    data = decode_resume(encode(top))
    assert (data.uploaded, data.downloaded, data.active_seconds, data.seeding_seconds) == (
        0,
        0,
        0,
        0,
    )
    assert data == dataclasses.replace(
        _sample(), uploaded=0, downloaded=0, active_seconds=0, seeding_seconds=0
    )


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"garbage",
        b"de",
        b"i1e",
        b"d19:ccbt-resume-versioni99ee",
        encode_resume(_sample())[:-1],  # truncated
        encode_resume(_sample())[: len(encode_resume(_sample())) // 2],
        encode_resume(_sample()).replace(b"10:num-piecesi10e", b"10:num-piecesi17e"),
        encode_resume(_sample()).replace(b"10:num-piecesi10e", b"10:num-piecesi-1e"),
        encode_resume(_sample()).replace(b"6:pausedi1e", b"6:paused3:yes"),
        encode_resume(_sample()).replace(b"i6881e", b"i0e"),
        encode_resume(_sample(pieces=bytes([0xFF, 0xFF]))),  # spare bits set
        encode_resume(_sample(partial={}))[:-1] + b"x",
        encode_resume(_sample(file_priorities=(4, 9))),
        encode_resume(_sample()).replace(b"15:seeding-secondsi30e", b"15:seeding-secondsi-1e"),
        encode_resume(_sample()).replace(b"15:seeding-secondsi30e", b"15:seeding-seconds2:30"),
    ],
)
def test_bad_resume_files_raise_resume_error(raw: bytes) -> None:
    with pytest.raises(ResumeError):
        decode_resume(raw)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_decode_arbitrary_bytes_only_resume_error(raw: bytes) -> None:
    try:
        data = decode_resume(raw)
    except ResumeError:
        return
    assert isinstance(data, ResumeData)


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_decode_mutated_resume_only_resume_error(data: st.DataObject) -> None:
    raw = bytearray(encode_resume(_sample()))
    for _ in range(data.draw(st.integers(1, 4))):
        op = data.draw(st.sampled_from(["flip", "cut", "insert"]))
        pos = data.draw(st.integers(0, max(0, len(raw) - 1)))
        if op == "flip" and raw:
            raw[pos] ^= data.draw(st.integers(1, 255))
        elif op == "cut":
            del raw[pos : pos + data.draw(st.integers(1, 8))]
        else:
            raw[pos:pos] = data.draw(st.binary(min_size=1, max_size=8))
    try:
        result = decode_resume(bytes(raw))
    except ResumeError:
        return
    assert isinstance(result, ResumeData)


# ------------------------------------------------------------------------------- helpers


def _payload(folder: Path, files: dict[str, int], seed: int) -> tuple[Path, bytes]:
    """Files under ``folder/name`` (multi-file torrent when more than one) + .torrent bytes."""
    rng = random.Random(seed)
    root = folder / "content"
    for rel, size in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(rng.randbytes(size))
    if len(files) == 1:
        single = root / next(iter(files))
        return single, create_torrent(single, piece_length=PIECE, version="v1", workers=1)
    return root, create_torrent(root, piece_length=PIECE, version="v1", workers=1)


def test_validate_against_torrent(tmp_path: Path) -> None:
    _, raw = _payload(tmp_path, {"a.bin": 5 * PIECE + 10}, 1)
    info = parse_torrent(raw).info
    good = _sample(
        info_hash=info.info_hash,
        num_pieces=6,
        pieces=b"\x00",
        partial={5: blocks_bitmap([0], 1)},
        files=(None,),
        file_priorities=(4,),
    )
    validate_resume(good, info)
    bad = [
        _sample(info_hash=bytes(20), num_pieces=6, pieces=b"\x00", files=(None,)),
        _sample(info_hash=info.info_hash, num_pieces=5, pieces=b"\x00", files=(None,)),
        _sample(info_hash=info.info_hash, num_pieces=6, pieces=b"\x00", files=(None, None)),
        # the last piece has 1 block, the bitmap claims block 3
        _sample(
            info_hash=info.info_hash,
            num_pieces=6,
            pieces=b"\x00",
            files=(None,),
            partial={5: blocks_bitmap([3], 4)},
        ),
    ]
    for data in bad:
        with pytest.raises(ResumeError):
            validate_resume(data, info)


def test_atomic_write_and_temp_cleanup(tmp_path: Path) -> None:
    folder = StateFolder(tmp_path / "state")
    folder.ensure()
    target = folder.resume_path("ab" * 20)
    atomic_write(target, b"one")
    atomic_write(target, b"two")
    assert target.read_bytes() == b"two"
    assert not target.with_name(target.name + ".tmp").exists()
    leftover = target.with_name(target.name + ".tmp")
    leftover.write_bytes(b"half a resu")
    folder.remove_temp()
    assert not leftover.exists() and target.read_bytes() == b"two"


def test_session_json_is_lenient(tmp_path: Path) -> None:
    assert SessionState.from_json(b"{not json").torrents == []
    assert (
        SessionState.from_json(b'{"version": 7, "torrents": ["' + b"a" * 40 + b'"]}').torrents == []
    )
    doc = {"version": 1, "torrents": ["a" * 40, "a" * 40, "nope", 3, "B" * 40], "limits": []}
    state = SessionState.from_json(json.dumps(doc).encode())
    assert state.torrents == ["a" * 40] and state.download_limit is None
    again = SessionState.from_json(SessionState(["b" * 40], 5, None).to_json())
    assert (again.torrents, again.download_limit, again.upload_limit) == (["b" * 40], 5, None)


def test_state_dir_precedence(tmp_path: Path) -> None:
    plain = loopback_settings()
    configured = loopback_settings(disk={"state_dir": str(tmp_path / "cfg")})
    assert resolve_state_dir(plain, {"CCBT_STATE_DIR": str(tmp_path / "env")}) == tmp_path / "env"
    assert resolve_state_dir(configured, {}) == tmp_path / "cfg"
    assert resolve_state_dir(plain, {}).name == "ccbt"
    assert resolve_state_dir(plain, {"CCBT_STATE_DIR": "~/s"}) == Path("~").expanduser() / "s"
    with pytest.raises(ConfigError, match=r"CCBT_STATE_DIR=.*no home folder"):
        resolve_state_dir(plain, {"CCBT_STATE_DIR": "~ccbt-no-such-user/s"})


def test_torrent_copy_keeps_the_infohash(tmp_path: Path) -> None:
    _, raw = _payload(tmp_path, {"a.bin": 100_000, "sub/b.bin": 50_000}, 2)
    meta = parse_torrent(raw)
    copy = parse_torrent(torrent_file_bytes(meta, meta.info))
    assert copy.info.info_hash == meta.info.info_hash and copy.info.raw_info == meta.info.raw_info


# ------------------------------------------------------------------- trust decisions on load


async def _storage_with_data(tmp_path: Path) -> tuple[TorrentStorage, Path]:
    """A complete 3-file torrent on disk (files of 3, 2 and 3 pieces' worth)."""
    root, raw = _payload(tmp_path / "src", {"a": 3 * PIECE, "b": 2 * PIECE, "c": 3 * PIECE}, 3)
    info = parse_torrent(raw).info
    return TorrentStorage(info, root.parent), root


def _checkpoint_of(storage: TorrentStorage, *, clean: bool, have: list[int]) -> ResumeData:
    info = storage.info
    stamps, part = stamp_files(info, storage.save_path)
    bits = [i in have for i in range(info.num_pieces)]
    pieces = bytearray((len(bits) + 7) // 8)
    for i, b in enumerate(bits):
        if b:
            pieces[i >> 3] |= 0x80 >> (i & 7)
    return ResumeData(
        info_hash=info.info_hash,
        save_path=str(storage.save_path),
        num_pieces=info.num_pieces,
        pieces=bytes(pieces),
        files=tuple(stamps),
        part_file=part,
        file_priorities=(4,) * len(info.files),
        clean=clean,
    )


async def test_unchanged_files_are_trusted_without_reading(tmp_path: Path) -> None:
    storage, _ = await _storage_with_data(tmp_path)
    data = _checkpoint_of(storage, clean=True, have=[0, 1, 2, 3, 4, 5, 6, 7])
    outcome = await check_with_resume(storage, data)
    assert outcome.trusted == 8 and outcome.rechecked == 0 and all(outcome.verified)


def _pieces_of(storage: TorrentStorage, name: str) -> tuple[int, list[int]]:
    """(file index, pieces it touches) of the file called ``name``."""
    index = next(i for i, f in enumerate(storage.info.files) if f.path[-1] == name)
    first, last = storage.layout.file_piece_range(index)
    return index, list(range(first, last + 1))


async def test_changed_file_rechecks_only_its_pieces(tmp_path: Path) -> None:
    storage, root = await _storage_with_data(tmp_path)
    data = _checkpoint_of(storage, clean=True, have=list(range(8)))
    b = root / "b"
    with b.open("r+b") as fh:  # corrupt b's first piece, same size
        fh.write(b"\0" * 10)
    os.utime(b, ns=(time.time_ns(), time.time_ns() + 10**9))
    outcome = await check_with_resume(storage, data)
    index, pieces = _pieces_of(storage, "b")
    assert outcome.doubtful_files == (index,)
    assert outcome.rechecked == 2 == len(pieces)  # only b's pieces were read
    assert outcome.verified == [i != pieces[0] for i in range(8)]


async def test_newer_mtime_after_a_crash_is_expected(tmp_path: Path) -> None:
    """An unclean checkpoint: the engine kept writing new pieces, so newer mtimes are fine."""
    storage, root = await _storage_with_data(tmp_path)
    data = _checkpoint_of(storage, clean=False, have=[0, 1])
    for name in ("a", "b", "c"):
        os.utime(root / name, ns=(time.time_ns(), time.time_ns() + 10**9))
    outcome = await check_with_resume(storage, data)
    assert outcome.rechecked == 0 and outcome.trusted == 2
    assert outcome.verified == [True, True] + [False] * 6


async def test_missing_or_resized_files_are_doubtful(tmp_path: Path) -> None:
    storage, root = await _storage_with_data(tmp_path)
    data = _checkpoint_of(storage, clean=False, have=list(range(8)))
    (root / "a").unlink()
    with (root / "c").open("ab") as fh:
        fh.write(b"x")
    outcome = await check_with_resume(storage, data)
    ia, pa = _pieces_of(storage, "a")
    ic, pc = _pieces_of(storage, "c")
    assert set(outcome.doubtful_files) == {ia, ic}
    # a is gone; c is a byte longer but its pieces' bytes are intact, so they verify again
    assert outcome.verified == [i not in pa for i in range(8)]
    assert outcome.rechecked == len(set(pa) | set(pc))


async def test_partial_blocks_are_restored_unless_doubtful(tmp_path: Path) -> None:
    storage, root = await _storage_with_data(tmp_path)
    _, pa = _pieces_of(storage, "a")
    _, pb = _pieces_of(storage, "b")
    base = _checkpoint_of(storage, clean=False, have=[])
    nb = PIECE // (16 * KIB)
    partial = {pa[1]: blocks_bitmap([0, 2], nb), pb[0]: blocks_bitmap([1], nb)}
    data = dataclasses.replace(base, partial=partial)
    (root / "b").unlink()  # b's blocks are gone with it
    outcome = await check_with_resume(storage, data)
    assert outcome.partial == {pa[1]: [0, 2]}


# ----------------------------------------------------------------------- engine: sessions


async def _until(pred: Callable[[], bool], timeout: float = 20.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what or pred}")
        await asyncio.sleep(0.02)


@pytest.fixture
async def seeder() -> AsyncIterator[Session]:
    async with Session(loopback_settings(), listen_port=0) as session:
        yield session


async def _seed(session: Session, torrent: bytes, data: Path) -> TorrentHandle:
    handle = await session.add_torrent(torrent, data.parent)
    assert handle.status().state == "seeding"
    return handle


def _leecher(state: Path, **disk: object) -> Session:
    return Session(
        loopback_settings(disk={"checkpoint_interval": 1, **disk}), listen_port=0, state_dir=state
    )


async def _half_download(
    seeder: Session, tmp_path: Path, size: int = 4 * MIB
) -> tuple[Path, bytes, TorrentHandle, Session]:
    data, torrent = _payload(tmp_path / "src", {"f.bin": size}, 7)
    up = await _seed(seeder, torrent, data)
    up.set_limits(upload=2 * MIB)  # keeps the transfer going long enough to stop it midway
    leecher = _leecher(tmp_path / "state")
    await leecher.start()
    down = await leecher.add_torrent(torrent, tmp_path / "dl")
    down.connect_peer("127.0.0.1", seeder.listen_port)
    await _until(lambda: down.status().pieces_have >= 16, what="some pieces")
    up.set_limits(upload=0)
    return data, torrent, down, leecher


async def test_clean_restart_resumes_without_recheck(seeder: Session, tmp_path: Path) -> None:
    data, _, down, leecher = await _half_download(seeder, tmp_path)
    await leecher.stop()
    had = down.status().pieces_have
    # the restarted leecher must not download before its count is read: it may reconnect on
    # its own (saved peers, or the seeder dialling the listen port it announced)
    (up,) = seeder.torrents()
    await up.pause()
    assert 16 <= had < 64
    state = tmp_path / "state"
    ih = down.info_hash
    assert json.loads((state / "session.json").read_text())["torrents"] == [ih]
    saved = decode_resume((state / "torrents" / f"{ih}.resume").read_bytes())
    assert saved.clean and saved.claimed() == had and saved.downloaded > 0

    async with _leecher(state) as again:
        (handle,) = again.torrents()
        # a partial piece whose blocks were all on disk is hashed at once and may add one
        assert had <= handle.status().pieces_have <= had + 1
        outcome = again._core.persistence.outcomes[ih]  # type: ignore[union-attr]
        assert outcome.rechecked == 0 and outcome.trusted == had
        assert handle.status().downloaded == saved.downloaded  # stats carried over
        await up.resume()
        handle.connect_peer("127.0.0.1", seeder.listen_port)
        await handle.wait_finished(timeout=20)
    assert (tmp_path / "dl" / "f.bin").read_bytes() == data.read_bytes()


async def test_corrupt_resume_file_means_recheck(seeder: Session, tmp_path: Path) -> None:
    data, _, down, leecher = await _half_download(seeder, tmp_path)
    await leecher.stop()
    had = down.status().pieces_have
    # the restarted leecher must not download before its count is read: it may reconnect on
    # its own (saved peers, or the seeder dialling the listen port it announced)
    (up,) = seeder.torrents()
    await up.pause()
    resume = tmp_path / "state" / "torrents" / f"{down.info_hash}.resume"
    resume.write_bytes(resume.read_bytes()[:40])  # truncated
    async with _leecher(tmp_path / "state") as again:
        (handle,) = again.torrents()
        # found by the recheck (plus a piece whose blocks were all flushed at the stop)
        assert had <= handle.status().pieces_have <= had + 1
        assert down.info_hash not in again._core.persistence.outcomes  # type: ignore[union-attr]
        await up.resume()
        handle.connect_peer("127.0.0.1", seeder.listen_port)
        await handle.wait_finished(timeout=20)
    assert (tmp_path / "dl" / "f.bin").read_bytes() == data.read_bytes()


async def test_leftover_temp_file_is_ignored_and_removed(seeder: Session, tmp_path: Path) -> None:
    _, _, down, leecher = await _half_download(seeder, tmp_path)
    await leecher.stop()
    had = down.status().pieces_have
    # the restarted leecher must not download before its count is read: it may reconnect on
    # its own (saved peers, or the seeder dialling the listen port it announced)
    (up,) = seeder.torrents()
    await up.pause()
    torrents = tmp_path / "state" / "torrents"
    tmp = torrents / f"{down.info_hash}.resume.tmp"
    tmp.write_bytes(b"d19:ccbt-resume-versioni1e9:info-hash20:")  # a write cut short
    (tmp_path / "state" / "session.json.tmp").write_bytes(b'{"vers')
    async with _leecher(tmp_path / "state") as again:
        (handle,) = again.torrents()
        assert had <= handle.status().pieces_have <= had + 1
        assert again._core.persistence.outcomes[down.info_hash].rechecked == 0  # type: ignore[union-attr]
    # (a checkpoint of the new session reuses the temp name, so look only after it stopped)
    assert not tmp.exists() and not (tmp_path / "state" / "session.json.tmp").exists()


async def test_periodic_checkpoint_while_downloading(seeder: Session, tmp_path: Path) -> None:
    _, _, down, leecher = await _half_download(seeder, tmp_path, size=8 * MIB)
    try:
        resume = tmp_path / "state" / "torrents" / f"{down.info_hash}.resume"
        await _until(resume.exists, timeout=5, what="a checkpoint")
        await _until(
            lambda: decode_resume(resume.read_bytes()).claimed() >= 16, timeout=5, what="claims"
        )
        saved = decode_resume(resume.read_bytes())
        assert not saved.clean
        # every claimed piece is really on disk and verifies
        target = tmp_path / "dl" / "f.bin"
        data = (tmp_path / "src" / "content" / "f.bin").read_bytes()
        on_disk = target.read_bytes()
        for i in range(saved.num_pieces):
            if saved.has_piece(i):
                assert on_disk[i * PIECE : (i + 1) * PIECE] == data[i * PIECE : (i + 1) * PIECE]
    finally:
        await leecher.stop()


async def test_remove_deletes_state(seeder: Session, tmp_path: Path) -> None:
    data, torrent = _payload(tmp_path / "src", {"f.bin": 512 * KIB}, 9)
    await _seed(seeder, torrent, data)
    state = tmp_path / "state"
    async with _leecher(state) as leecher:
        down = await leecher.add_torrent(torrent, tmp_path / "dl", paused=True)
        resume = state / "torrents" / f"{down.info_hash}.resume"
        await _until(resume.exists, timeout=5, what="checkpoint after pause")
        assert decode_resume(resume.read_bytes()).paused
        await down.remove()
        copy = state / "torrents" / f"{down.info_hash}.torrent"
        await _until(lambda: not resume.exists() and not copy.exists(), 5, "state deleted")
    assert json.loads((state / "session.json").read_text())["torrents"] == []


async def test_priorities_and_paused_state_survive_restart(seeder: Session, tmp_path: Path) -> None:
    root, torrent = _payload(tmp_path / "src", {"a.bin": 300 * KIB, "b.bin": 200 * KIB}, 10)
    await _seed(seeder, torrent, root)
    state = tmp_path / "state"
    async with _leecher(state) as leecher:
        down = await leecher.add_torrent(torrent, tmp_path / "dl", paused=True)
        down.set_file_priorities([7, 0])
        down.set_limits(download=12345)
    async with _leecher(state) as again:
        (handle,) = again.torrents()
        assert [f.priority for f in handle.files()] == [7, 0]
        status = handle.status()
        assert status.state == "paused" and status.download_limit == 12345
        assert status.save_path == str(tmp_path / "dl")


async def test_cli_mode_keeps_other_entries_and_restores_nothing(
    seeder: Session, tmp_path: Path
) -> None:
    """``restore=False`` (``ccbt download``): the GUI's torrents stay listed but unloaded."""
    data, torrent = _payload(tmp_path / "src", {"f.bin": 256 * KIB}, 11)
    await _seed(seeder, torrent, data)
    state = tmp_path / "state"
    state.mkdir()
    foreign = "c" * 40
    (state / "session.json").write_text(json.dumps({"version": 1, "torrents": [foreign]}))
    cli = Session(loopback_settings(), listen_port=0, state_dir=state, restore=False)
    async with cli:
        assert cli.torrents() == []
        down = await cli.add_torrent(torrent, tmp_path / "dl")
        down.connect_peer("127.0.0.1", seeder.listen_port)
        await down.wait_finished(timeout=20)
    listed = json.loads((state / "session.json").read_text())["torrents"]
    assert listed == [foreign, down.info_hash]
    saved = decode_resume((state / "torrents" / f"{down.info_hash}.resume").read_bytes())
    assert saved.clean and saved.claimed() == saved.num_pieces and saved.completed_time > 0


async def test_limits_set_by_command_survive_restart(tmp_path: Path) -> None:
    state = tmp_path / "state"
    async with _leecher(state) as first:
        first.set_limits(download=300_000)
    async with _leecher(state) as again:
        assert again._core.down_bucket.rate == 300_000
        assert again._core.up_bucket.rate == 0


async def test_unusable_state_folder_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "state"
    blocker.write_text("a file where the folder should be")
    session = _leecher(blocker)
    with pytest.raises(SessionError, match="cannot use the state folder"):
        await session.start()
    await session.stop()


async def test_idle_seed_is_not_rewritten_and_same_claim_skips_fsync(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ccbt_engine.storage import resume as resume_mod

    synced: list[str] = []

    def counting(info: TorrentInfo, path: Path) -> None:
        synced.append(info.name)
        resume_mod.fsync_files(info, path)

    monkeypatch.setattr("ccbt_engine.state.fsync_files", counting)
    data, torrent = _payload(tmp_path / "src", {"f.bin": 256 * KIB}, 12)
    async with _leecher(tmp_path / "state") as session:
        handle = await _seed(session, torrent, data)
        resume = tmp_path / "state" / "torrents" / f"{handle.info_hash}.resume"
        await _until(resume.exists, timeout=5, what="first checkpoint")
        await asyncio.sleep(0.2)  # let the state-change checkpoint settle
        before = resume.stat().st_mtime_ns
        count = len(synced)
        await asyncio.sleep(2.3)  # two timer rounds at checkpoint_interval = 1
        assert resume.stat().st_mtime_ns == before, "an idle seed was checkpointed again"
        persistence = session._core.persistence
        assert persistence is not None
        torrent_obj = session._core.torrents[bytes.fromhex(handle.info_hash)]
        assert await persistence.checkpoint(torrent_obj)  # a command's checkpoint still writes
        assert len(synced) == count, "the same claim was fsynced twice"


async def test_idle_seed_checkpoints_its_seeding_time_every_step(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nothing but seeding time changes on an idle seed; a crash must not lose more than one
    ``SEEDING_TIME_STEP`` of it (it used to lose everything since the last transfer)."""
    monkeypatch.setattr("ccbt_engine.state.SEEDING_TIME_STEP", 1)
    data, torrent = _payload(tmp_path / "src", {"f.bin": 256 * KIB}, 14)
    async with _leecher(tmp_path / "state") as session:
        handle = await _seed(session, torrent, data)
        resume = tmp_path / "state" / "torrents" / f"{handle.info_hash}.resume"
        await _until(resume.exists, timeout=5, what="first checkpoint")

        def saved_seconds() -> int:
            return decode_resume(resume.read_bytes()).seeding_seconds

        await _until(lambda: saved_seconds() >= 2, timeout=10, what="seeding time checkpointed")


async def test_statistics_survive_restart_and_seeding_limits_go_on(tmp_path: Path) -> None:
    """Uploaded/downloaded (the ratio), active time and seeding time carry over a restart, as
    in qBittorrent, so ``seed_time_limit_min`` does not count from zero again."""
    data, torrent = _payload(tmp_path / "src", {"f.bin": 256 * KIB}, 13)
    state = tmp_path / "state"
    async with _leecher(state) as first:
        handle = await _seed(first, torrent, data)
        key = bytes.fromhex(handle.info_hash)
        first._core.torrents[key].up.total = 3 * 256 * KIB  # as if uploaded three copies
        first._core.queue.restore_seeding_time(key, 2 * 3600.0)  # as if seeded two hours
    saved = decode_resume((state / "torrents" / f"{handle.info_hash}.resume").read_bytes())
    assert saved.clean and saved.uploaded == 3 * 256 * KIB
    assert 2 * 3600 <= saved.seeding_seconds < 2 * 3600 + 60

    async with _leecher(state) as again:
        (restored,) = again.torrents()
        status = restored.status()
        assert status.state == "seeding" and status.uploaded == 3 * 256 * KIB
        assert status.ratio == pytest.approx(3.0)  # what share_ratio_limit compares
        assert status.time_active >= saved.active_seconds
        assert again._core.queue.seeding_time(key) >= saved.seeding_seconds

    limited = loopback_settings(
        disk={"checkpoint_interval": 1}, limits={"seed_time_limit_min": 100}
    )
    async with Session(limited, listen_port=0, state_dir=state) as third:
        reached: list[ev.SeedingLimitReached] = []
        third.subscribe(
            lambda e: reached.append(e) if isinstance(e, ev.SeedingLimitReached) else None
        )
        (restored,) = third.torrents()
        await _until(lambda: restored.status().state == "paused", 10, "seed-time limit pause")
        assert reached and reached[0].reason == "seed_time"
        assert reached[0].seeding_time >= 2 * 3600

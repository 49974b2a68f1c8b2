"""Path safety end to end: hostile torrents never make ccbt write outside the save folder.

Each torrent of the corpus (``malicious_torrents.py``, raw bencode) must either be refused at
load with a :class:`MetainfoError`, or be downloadable with every byte landing inside the save
folder. "Inside" is judged on disk, not on our own path arithmetic: the whole temporary tree
(the sentinel folder the absolute-path cases aim at, the seeder's folder, the save folder) is
snapshotted before and after, and only the save folder (and the seeder's own) may change.

Three layers, cheapest first: the parsed paths (every case), the storage writing every piece
(every case, no network), and a real download from a libtorrent seeder (ccbt seeder when
libtorrent refuses the torrent). Pre-existing symlinks in the save folder pointing outside are
covered separately: storage must refuse to write through them, and refuse a symlink swapped in
between its containment check and the open (the race a local attacker would use).
"""

from __future__ import annotations

import errno
import hashlib
import os
import unicodedata
import warnings
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from ccbt_engine.api import Session, SessionError
from ccbt_engine.metainfo import Metainfo, MetainfoError, TorrentInfo, parse_torrent
from ccbt_engine.pathsafe import MAX_COMPONENT_BYTES, is_reserved_windows_name
from ccbt_engine.storage.errors import StorageError
from ccbt_engine.storage.files import TorrentStorage
from tests.engine_settings import loopback_settings
from tests.security.malicious_torrents import PIECE, Case, FileSpec, _f, build, cases

#: cases() needs the absolute sentinel path; ids are the same for any path
_IDS = [c.id for c in cases(Path("/sentinel"))]
#: a fixed absolute path one case aims at (besides the per-test sentinel)
FIXED_ABSOLUTE = Path("/tmp/ccbt-malicious-x")
Snapshot = dict[str, tuple[str, ...]]


# -------------------------------------------------------------------------- helpers


def snapshot(root: Path) -> Snapshot:
    """Every entry under ``root`` (symlinks not followed): kind, size/target, content hash."""
    out: Snapshot = {}
    for folder, dirs, files in os.walk(root, followlinks=False):
        for name in dirs + files:
            p = os.path.join(folder, name)
            rel = os.path.relpath(p, root)
            st = os.lstat(p)
            if os.path.islink(p):
                out[rel] = ("link", os.readlink(p))
            elif os.path.isdir(p):
                out[rel] = ("dir",)
            else:
                digest = hashlib.sha256(Path(p).read_bytes()).hexdigest()
                out[rel] = ("file", str(st.st_size), digest)
    return out


def changed_outside(before: Snapshot, after: Snapshot, allowed: tuple[str, ...]) -> list[str]:
    """Entries added, removed or changed that are not inside one of the ``allowed`` folders."""
    keys = set(before) | set(after)
    diff = [k for k in keys if before.get(k) != after.get(k)]
    return sorted(k for k in diff if not any(k == a or k.startswith(a + os.sep) for a in allowed))


@pytest.fixture
def area(tmp_path: Path) -> Iterator[dict[str, Path]]:
    """``<tmp>/sentinel`` (watched, with a file in it), ``<tmp>/save``, ``<tmp>/seed``."""
    sentinel = tmp_path / "sentinel"
    sentinel.mkdir()
    (sentinel / "precious.txt").write_bytes(b"do not touch")
    existed = FIXED_ABSOLUTE.exists()
    yield {"root": tmp_path, "sentinel": sentinel, "save": tmp_path / "save"}
    if not existed:
        assert not FIXED_ABSOLUTE.exists(), f"{FIXED_ABSOLUTE} was written"


def case_by_id(case_id: str, sentinel: Path) -> Case:
    return next(c for c in cases(sentinel) if c.id == case_id)


def load(case: Case) -> Metainfo | None:
    """The parsed torrent, or None when it was refused (checking the case allows that)."""
    try:
        meta = parse_torrent(case.torrent)
    except MetainfoError:
        assert case.rejects is not False, f"{case.id}: a representable torrent was refused"
        return None
    assert case.rejects is not True, f"{case.id}: an invalid torrent was accepted"
    return meta


def real_files(info: TorrentInfo) -> list[int]:
    return [i for i, f in enumerate(info.files) if not f.is_pad]


def piece_space(info: TorrentInfo, contents: tuple[bytes, ...]) -> bytes:
    """The torrent's bytes in piece order (pads as zeros), from the case's file contents."""
    it = iter(contents)
    return b"".join(bytes(f.length) if f.is_pad else next(it) for f in info.files)


def assert_payload(info: TorrentInfo, save: Path, contents: tuple[bytes, ...]) -> None:
    for i, data in zip(real_files(info), contents, strict=True):
        entry = info.files[i]
        if "l" in entry.attr:
            continue  # a BEP 47 link: no data, and ccbt never creates the link itself
        path = save.joinpath(*entry.path)
        assert not path.is_symlink()
        assert path.read_bytes() == data, f"{'/'.join(entry.path)} has the wrong content"


async def write_all(storage: TorrentStorage, space: bytes) -> None:
    info = storage.info
    for piece in range(info.num_pieces):
        start = piece * info.piece_length
        await storage.write_block(piece, 0, space[start : start + info.piece_size(piece)])
        assert await storage.hash_piece(piece)
    await storage.create_empty_files()
    await storage.close()


# -------------------------------------------------------------------------- the parsed paths


def test_corpus_ids_are_unique_and_cover_the_brief() -> None:
    assert len(_IDS) == len(set(_IDS))
    for needle in ("dotdot", "absolute", "drive", "unc", "devices", "trailing-dots", "nul-byte",
                   "slash-in-element", "empty-elements", "long-", "rtl", "fullwidth", "nfc-nfd",
                   "case-dupes", "prefix-dir", "symlink"):  # fmt: skip
        assert any(needle in i for i in _IDS), needle


@pytest.mark.parametrize("case_id", _IDS)
def test_parsed_paths_are_safe(case_id: str, tmp_path: Path) -> None:
    """Every component is a plain, portable name; no two files are one on a case-folding disk."""
    meta = load(case_by_id(case_id, tmp_path / "sentinel"))
    if meta is None:
        return
    info = meta.info
    save = os.path.abspath(tmp_path / "save")
    keys: set[tuple[str, ...]] = set()
    for i in real_files(info):
        entry = info.files[i]
        assert entry.path, "empty path"
        for part in entry.path:
            assert part not in ("", ".", "..")
            assert not any(c in part for c in '/\\:\0<>"|?*'), part
            assert not any(ord(c) < 0x20 for c in part), part
            assert not part.endswith((".", " ")), part
            assert not is_reserved_windows_name(part), part
            assert len(part.encode("utf-8")) <= MAX_COMPONENT_BYTES
        joined = os.path.normpath(os.path.join(save, *entry.path))
        assert joined.startswith(save + os.sep)
        key = tuple(unicodedata.normalize("NFC", p).casefold() for p in entry.path)
        assert key not in keys, f"two files map to {key}"
        keys.add(key)
        if entry.symlink_path is not None:
            target = os.path.normpath(os.path.join(save, *entry.symlink_path))
            assert target.startswith(save + os.sep)
    # a file is never another file's folder (``a`` and ``a/b``)
    for key in keys:
        for n in range(1, len(key)):
            assert key[:n] not in keys, f"{key[:n]} is both a file and a folder"


# -------------------------------------------------------------------------- storage, no network


@pytest.mark.parametrize("case_id", _IDS)
async def test_storage_writes_only_inside_the_save_folder(
    case_id: str, area: dict[str, Path]
) -> None:
    case = case_by_id(case_id, area["sentinel"])
    meta = load(case)
    if meta is None:
        return
    before = snapshot(area["root"])
    storage = TorrentStorage(meta.info, area["save"])
    await write_all(storage, piece_space(meta.info, case.contents))
    after = snapshot(area["root"])
    assert changed_outside(before, after, ("save",)) == []
    assert not any(v[0] == "link" for v in after.values()), "a symlink was created"
    assert_payload(meta.info, area["save"], case.contents)


# -------------------------------------------------------------------------- symlinks on disk


def _two_files() -> tuple[Case, Metainfo]:
    case = build("plain", "t", [_f("dir", "a.bin", size=5000), _f("b.bin", size=3000)])
    return case, parse_torrent(case.torrent)


def _plant(kind: str, save: Path, outside: Path) -> None:
    """A symlink the user (or another local account) left in the save folder."""
    top = save / "t"
    if kind == "torrent-folder":
        save.mkdir()
        top.symlink_to(outside, target_is_directory=True)
        return
    top.mkdir(parents=True)
    if kind == "sub-folder":
        (top / "dir").symlink_to(outside, target_is_directory=True)
    elif kind == "file":
        (top / "b.bin").symlink_to(outside / "precious.txt")
    elif kind == "dangling-file":
        (top / "b.bin").symlink_to(outside / "created-through-link")
    elif kind == "relative-climb":
        (top / "dir").symlink_to(Path("..", "..", "sentinel"), target_is_directory=True)
    elif kind == "loop":
        (top / "dir").symlink_to(top / "dir")
    else:
        raise AssertionError(kind)


SYMLINK_KINDS = ["torrent-folder", "sub-folder", "file", "dangling-file", "relative-climb", "loop"]


@pytest.mark.parametrize("kind", SYMLINK_KINDS)
async def test_storage_refuses_to_write_through_planted_symlinks(
    kind: str, area: dict[str, Path]
) -> None:
    case, meta = _two_files()
    _plant(kind, area["save"], area["sentinel"])
    before = snapshot(area["root"])
    storage = TorrentStorage(meta.info, area["save"])
    with pytest.raises(StorageError) as err:
        await write_all(storage, piece_space(meta.info, case.contents))
    assert err.value.operation == "open"
    await storage.discard_cache()
    await storage.close()
    assert changed_outside(before, snapshot(area["root"]), ("save",)) == []
    assert (area["sentinel"] / "precious.txt").read_bytes() == b"do not touch"


async def test_symlink_inside_the_save_folder_is_still_followed(area: dict[str, Path]) -> None:
    """A link that stays inside (the user's own arrangement) keeps working."""
    case, meta = _two_files()
    top = area["save"] / "t"
    (area["save"] / "elsewhere").mkdir(parents=True)
    top.mkdir()
    (top / "dir").symlink_to(area["save"] / "elsewhere", target_is_directory=True)
    await write_all(TorrentStorage(meta.info, area["save"]), piece_space(meta.info, case.contents))
    assert (area["save"] / "elsewhere" / "a.bin").read_bytes() == case.contents[0]


@pytest.mark.parametrize("swap", ["file", "dangling"])
async def test_symlink_swapped_in_after_the_check_is_not_followed(
    swap: str, area: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The race: the path is checked, then replaced by a symlink before it is opened."""
    case, meta = _two_files()
    storage = TorrentStorage(meta.info, area["save"])
    real_check = storage._checked_path
    target = area["sentinel"] / ("precious.txt" if swap == "file" else "raced")

    def racing_check(index: int, operation: Any) -> str:
        path = real_check(index, operation)
        if meta.info.files[index].path[-1] == "b.bin" and not os.path.islink(path):
            os.makedirs(os.path.dirname(path), exist_ok=True)
            if os.path.exists(path):
                os.remove(path)
            os.symlink(target, path)
        return path

    monkeypatch.setattr(storage, "_checked_path", racing_check)
    before = snapshot(area["sentinel"])
    with pytest.raises(StorageError) as err:
        await write_all(storage, piece_space(meta.info, case.contents))
    assert err.value.errno in (errno.ELOOP, errno.EPERM, errno.EMLINK)
    await storage.discard_cache()
    await storage.close()
    assert snapshot(area["sentinel"]) == before


async def test_folder_swapped_for_a_symlink_after_the_check_gets_no_data(
    area: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same race one folder up: open() follows the folder link, the descriptor check
    (``/proc/self/fd``) refuses the file before a byte is written. What remains possible is an
    empty file created outside; data never is."""
    if not os.path.isdir("/proc/self/fd"):
        pytest.skip("needs /proc/self/fd")
    case, meta = _two_files()
    storage = TorrentStorage(meta.info, area["save"])
    real_check = storage._checked_path

    def racing_check(index: int, operation: Any) -> str:
        path = real_check(index, operation)
        folder = os.path.dirname(path)
        if meta.info.files[index].path[-2:-1] == ("dir",) and not os.path.islink(folder):
            os.makedirs(os.path.dirname(folder), exist_ok=True)
            if os.path.isdir(folder):
                os.rmdir(folder)
            os.symlink(area["sentinel"], folder)
        return path

    monkeypatch.setattr(storage, "_checked_path", racing_check)
    before = snapshot(area["sentinel"])
    with pytest.raises(StorageError) as err:
        await write_all(storage, piece_space(meta.info, case.contents))
    assert err.value.errno == errno.EPERM
    await storage.discard_cache()
    await storage.close()
    after = snapshot(area["sentinel"])
    for key, value in after.items():
        assert before.get(key) in (value, None), key
        assert before.get(key) == value or value[:2] == ("file", "0"), f"data written to {key}"


async def test_session_pauses_the_torrent_instead_of_writing_through_a_symlink(
    area: dict[str, Path],
) -> None:
    """End to end through the session: the torrent stops with a clear error, nothing leaks."""
    case, meta = _two_files()
    _plant("sub-folder", area["save"], area["sentinel"])
    before = snapshot(area["root"])
    async with Session(loopback_settings(), listen_port=0) as seeder_session:
        seed = area["root"] / "seed"
        await write_all(TorrentStorage(meta.info, seed), piece_space(meta.info, case.contents))
        await seeder_session.add_torrent(case.torrent, seed)
        leecher = Session(loopback_settings(), listen_port=0)
        await leecher.start()
        try:
            handle = await leecher.add_torrent(case.torrent, area["save"])
            handle.connect_peer("127.0.0.1", seeder_session.listen_port)
            with pytest.raises(SessionError, match="outside the download folder"):
                await handle.wait_finished(timeout=30)
            assert handle.status().state == "error"
        finally:
            await leecher.stop()  # closing retries the refused write: logged, not raised
    assert changed_outside(before, snapshot(area["root"]), ("save", "seed")) == []


# -------------------------------------------------------------------------- real downloads


def _libtorrent_layout(case: Case, seed: Path) -> bool:
    """Write the payload where libtorrent expects it; False when libtorrent refuses the torrent."""
    lt = pytest.importorskip("libtorrent")
    try:
        ti = lt.torrent_info(lt.bdecode(case.torrent))
    except RuntimeError:
        return False
    with warnings.catch_warnings():  # files() is "deprecated", but it is the renamed view
        warnings.simplefilter("ignore", DeprecationWarning)
        storage = ti.files()
    contents = iter(case.contents)
    for i in range(storage.num_files()):
        flags = storage.file_flags(i)
        if flags & 1:  # pad file
            continue
        data = next(contents)
        if flags & 8:  # symlink: libtorrent makes it itself
            continue
        path = seed / storage.file_path(i)
        assert os.path.realpath(path).startswith(os.path.realpath(seed) + os.sep)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return True


@pytest.fixture
async def leecher() -> AsyncIterator[Session]:
    async with Session(loopback_settings(), listen_port=0) as session:
        yield session


@pytest.mark.interop
@pytest.mark.timeout(120)
@pytest.mark.parametrize("case_id", _IDS)
async def test_download_from_a_real_seeder_stays_inside(
    case_id: str, area: dict[str, Path], leecher: Session
) -> None:
    from tests.interop.refpeers import LibtorrentPeer

    case = case_by_id(case_id, area["sentinel"])
    meta = load(case)
    if meta is None:
        return
    root, seed = area["root"], area["root"] / "seed"
    (root / "t.torrent").write_bytes(case.torrent)
    before = snapshot(root)
    if _libtorrent_layout(case, seed):
        with LibtorrentPeer(root / "t.torrent", seed, seed=True, tcp_only=True) as lt_seed:
            handle = await leecher.add_torrent(case.torrent, area["save"])
            handle.connect_peer("127.0.0.1", lt_seed.port)
            status = await handle.wait_finished(timeout=60)
    else:
        await write_all(TorrentStorage(meta.info, seed), piece_space(meta.info, case.contents))
        async with Session(loopback_settings(), listen_port=0) as ccbt_seed:
            await ccbt_seed.add_torrent(case.torrent, seed)
            handle = await leecher.add_torrent(case.torrent, area["save"])
            handle.connect_peer("127.0.0.1", ccbt_seed.listen_port)
            status = await handle.wait_finished(timeout=60)
    assert status.state == "seeding"
    await handle.pause()  # flushes; the files are complete on disk
    after = snapshot(root)
    assert changed_outside(before, after, ("save", "seed")) == []
    assert not any(k.startswith("save") and v[0] == "link" for k, v in after.items())
    assert_payload(meta.info, area["save"], case.contents)


def test_generator_writes_the_corpus(tmp_path: Path) -> None:
    """The corpus as files (a seed corpus for the metainfo fuzzer, and for people)."""
    from tests.security.malicious_torrents import write_corpus

    written = write_corpus(tmp_path / "corpus", tmp_path / "sentinel")
    assert len(written) == len(_IDS)
    assert all(p.read_bytes().startswith(b"d") for p in written)


def test_v2_file_content_spec_is_single_block() -> None:
    """The generator's v2 roots are single-block hashes: a bigger file would be a bad torrent."""
    with pytest.raises(ValueError):
        build("big", "t", [FileSpec((b"x",), bytes(PIECE + 1))], "v2")

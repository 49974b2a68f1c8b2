"""storage/move.py: all-or-nothing moves; every failure path keeps a whole copy of the data."""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ccbt_engine.create import create_torrent
from ccbt_engine.metainfo import parse_torrent
from ccbt_engine.storage.move import TEMP_SUFFIX, MoveCancelled, MoveError, move_files, plan_move


def _tree(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture
def payload(tmp_path: Path) -> Path:
    """old/t/{a.bin, sub/b.bin, sub/deeper/c.bin}: three files in nested folders."""
    base = tmp_path / "old" / "t"
    for rel, size in (("a.bin", 300_000), ("sub/b.bin", 70_000), ("sub/deeper/c.bin", 5)):
        path = base / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(os.urandom(size))
    return base


def _pairs(payload: Path, new_root: Path) -> list[tuple[str, str]]:
    old_root = payload.parent
    return [
        (str(p), str(new_root / p.relative_to(old_root)))
        for p in sorted(payload.rglob("*"))
        if p.is_file()
    ]


@pytest.fixture
def force_copy(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Make every rename of a source file fail with EXDEV, as across file systems."""
    real_rename = os.rename

    def rename(src: str, dst: str) -> None:
        if not str(src).endswith(TEMP_SUFFIX) and "old" in Path(src).parts:
            raise OSError(errno.EXDEV, "Invalid cross-device link", src)
        real_rename(src, dst)

    monkeypatch.setattr(os, "rename", rename)  # move.py calls os.rename
    yield


def test_rename_within_a_file_system(payload: Path, tmp_path: Path) -> None:
    before = _tree(payload)
    report = move_files(_pairs(payload, tmp_path / "new"), payload.parent)
    assert report.renamed == 3 and report.copied == 0
    assert _tree(tmp_path / "new" / "t") == before
    assert not payload.exists()  # emptied torrent folders go; the old root stays
    assert payload.parent.is_dir()


def test_copy_then_delete_across_file_systems(
    payload: Path, tmp_path: Path, force_copy: None
) -> None:
    os.utime(payload / "a.bin", (1_000_000, 1_000_000))
    before = _tree(payload)
    report = move_files(_pairs(payload, tmp_path / "new"), payload.parent)
    assert report.copied == 3 and report.renamed == 0
    assert report.bytes_copied == 370_005
    assert _tree(tmp_path / "new" / "t") == before
    assert (tmp_path / "new" / "t" / "a.bin").stat().st_mtime == 1_000_000  # resume data
    assert not payload.exists()


def test_real_cross_device_move(payload: Path) -> None:
    shm = Path("/dev/shm")
    if not shm.is_dir() or shm.stat().st_dev == payload.stat().st_dev:
        pytest.skip("no second file system to move to")
    target = shm / f"ccbt-move-test-{os.getpid()}"
    try:
        before = _tree(payload)
        report = move_files(_pairs(payload, target), payload.parent)
        assert report.copied == 3
        assert _tree(target / "t") == before
        assert not payload.exists()
    finally:
        shutil.rmtree(target, ignore_errors=True)


def _fail_on_call(n: int, exc: OSError) -> Callable[..., object]:
    calls = {"n": 0}
    real = shutil.copystat

    def copystat(src: str, dst: str) -> object:
        calls["n"] += 1
        if calls["n"] == n:
            raise exc
        return real(src, dst)

    return copystat


def test_a_copy_failing_midway_is_rolled_back(
    payload: Path, tmp_path: Path, force_copy: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = _tree(payload)
    full = OSError(errno.ENOSPC, "No space left on device", "b.bin")
    monkeypatch.setattr(shutil, "copystat", _fail_on_call(2, full))
    with pytest.raises(MoveError, match="No space left"):
        move_files(_pairs(payload, tmp_path / "new"), payload.parent)
    assert _tree(payload) == before  # nothing lost
    assert not (tmp_path / "new").exists()  # copies, temporaries, made folders: all gone


def test_a_rename_failing_midway_is_rolled_back(payload: Path, tmp_path: Path) -> None:
    before = _tree(payload)
    (tmp_path / "new" / "t").mkdir(parents=True)
    (tmp_path / "new" / "t" / "sub").write_bytes(b"a file where a folder must go")
    with pytest.raises(MoveError, match="cannot move"):
        move_files(_pairs(payload, tmp_path / "new"), payload.parent)
    assert _tree(payload) == before
    assert _tree(tmp_path / "new") == {
        "t/sub": hashlib.sha256(b"a file where a folder must go").hexdigest()
    }


def test_never_overwrites_an_existing_file(payload: Path, tmp_path: Path) -> None:
    before = _tree(payload)
    (tmp_path / "new" / "t" / "sub").mkdir(parents=True)
    (tmp_path / "new" / "t" / "sub" / "b.bin").write_bytes(b"the user's own file")
    with pytest.raises(MoveError, match="already exists"):
        move_files(_pairs(payload, tmp_path / "new"), payload.parent)
    assert _tree(payload) == before
    assert (tmp_path / "new" / "t" / "sub" / "b.bin").read_bytes() == b"the user's own file"
    assert not (tmp_path / "new" / "t" / "a.bin").exists()


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root ignores modes")
def test_a_read_only_target_folder(payload: Path, tmp_path: Path) -> None:
    before = _tree(payload)
    target = tmp_path / "ro"
    target.mkdir()
    target.chmod(0o555)
    try:
        with pytest.raises(MoveError, match="ermission"):
            move_files(_pairs(payload, target), payload.parent)
    finally:
        target.chmod(0o755)
    assert _tree(payload) == before
    assert list(target.iterdir()) == []


def test_cancel_rolls_back(payload: Path, tmp_path: Path, force_copy: None) -> None:
    before = _tree(payload)
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(MoveCancelled):
        move_files(_pairs(payload, tmp_path / "new"), payload.parent, cancel)
    assert _tree(payload) == before
    assert not (tmp_path / "new").exists()


def test_plan_covers_the_torrents_files_and_part_file(payload: Path, tmp_path: Path) -> None:
    info = parse_torrent(create_torrent(payload, version="hybrid", piece_length=16384)).info
    part = payload.parent / f".{info.info_hash.hex()}.parts"
    part.write_bytes(b"p")
    (payload / "not-ours.txt").write_bytes(b"user file")
    pairs = plan_move(info, payload.parent, tmp_path / "new")
    rel = sorted(os.path.relpath(src, payload.parent) for src, _ in pairs)
    assert rel == sorted(
        [part.name, "t/a.bin", "t/sub/b.bin", os.path.join("t", "sub", "deeper", "c.bin")]
    )
    for src, dst in pairs:
        assert os.path.relpath(dst, tmp_path / "new") == os.path.relpath(src, payload.parent)
    move_files(pairs, payload.parent)
    assert (payload / "not-ours.txt").read_bytes() == b"user file"  # not ours: left alone
    assert (tmp_path / "new" / part.name).read_bytes() == b"p"

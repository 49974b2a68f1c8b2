"""Generated payloads shared by creation/metainfo/interop tests.

Each builder writes deterministic pseudo-random content under ``root`` and returns the path to
hand to a torrent creator (a file for single-file payloads, a folder otherwise).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path


def _write(path: Path, size: int, rng: random.Random) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(rng.randbytes(size))


def single_file(root: Path) -> Path:
    p = root / "single.bin"
    _write(p, 3 * 1024 * 1024 + 12345, random.Random(1))
    return p


def many_files(root: Path) -> Path:
    """120 files in nested folders with sizes from 1 byte to ~200 KiB."""
    rng = random.Random(2)
    base = root / "many"
    for i in range(120):
        name = base / f"dir{i % 7}" / f"sub{i % 3}" / f"file{i:03d}.dat"
        _write(name, rng.randint(1, 200_000), rng)
    return base


def with_empty_files(root: Path) -> Path:
    rng = random.Random(3)
    base = root / "empties"
    _write(base / "a.bin", 70_000, rng)
    _write(base / "empty1", 0, rng)
    _write(base / "m" / "b.bin", 40_000, rng)
    _write(base / "m" / "empty2", 0, rng)
    _write(base / "z.bin", 16_384, rng)
    return base


def odd_sizes(root: Path) -> Path:
    """Sizes straddling block and piece boundaries."""
    rng = random.Random(4)
    base = root / "odd"
    for i, size in enumerate([1, 16383, 16384, 16385, 32767, 262143, 262144, 262145, 999_999]):
        _write(base / f"f{i}.bin", size, rng)
    return base


def unicode_names(root: Path) -> Path:
    rng = random.Random(5)
    base = root / "ünïcødé 名前"
    for name in ["日本語.txt", "Ελληνικά.bin", "emoji 🎉.dat", "résumé.pdf", "space name.txt"]:
        _write(base / name, rng.randint(100, 90_000), rng)
    _write(base / "子目录" / "файл.bin", 50_000, rng)
    return base


PAYLOADS: dict[str, Callable[[Path], Path]] = {
    "single_file": single_file,
    "many_files": many_files,
    "with_empty_files": with_empty_files,
    "odd_sizes": odd_sizes,
    "unicode_names": unicode_names,
}

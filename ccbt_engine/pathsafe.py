"""Turning path components from untrusted torrents into names that are safe on every OS.

A .torrent file chooses the names of the files we write, so every component is treated as
hostile: it must not climb out of the save folder (``..``, absolute paths, drive letters,
backslashes that Windows reads as separators), must not hit a device name Windows reserves
(``CON``, ``NUL.txt``, ``com1`` …), must not carry control characters, and must fit in one
directory entry (255 bytes on common file systems). The result is the same on every platform, so
a torrent saved on Linux and copied to Windows keeps working, and the same torrent always maps to
the same paths (resume data and rechecks depend on that).

Uniqueness matters too: two names that differ only in case or Unicode normalisation are one file
on Windows and macOS, and two names that sanitise to the same string would otherwise overwrite
each other. :func:`make_unique` renames later duplicates deterministically.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from os import PathLike
from pathlib import Path

__all__ = [
    "MAX_COMPONENT_BYTES",
    "expand_home",
    "is_reserved_windows_name",
    "make_unique",
    "path_key",
    "sanitize_component",
    "sanitize_path",
]

#: Longest component in UTF-8 bytes (ext4, NTFS in UTF-16 units is laxer, APFS, btrfs: 255).
MAX_COMPONENT_BYTES = 255
#: Longest extension kept whole when a long name is truncated.
_MAX_EXT_BYTES = 32
#: Characters Windows refuses in names (both separators among them), control characters
#: (Unicode category Cc: C0, DEL, C1) and lone surrogates (unencodable): each becomes ``_``.
_BAD_CHARS = re.compile('[<>:"/\\\\|?*\x00-\x1f\x7f-\x9f\ud800-\udfff]')
_RESERVED = frozenset(
    ["CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"]
    + [f"{dev}{n}" for dev in ("COM", "LPT") for n in "123456789\u00b9\u00b2\u00b3"]
)


def is_reserved_windows_name(name: str) -> bool:
    """True for names Windows maps to a device, whatever the case or extension (``nul.tar.gz``).

    Windows ignores trailing spaces before the first dot too (``"CON .txt"`` is the console).
    """
    stem = name.split(".", 1)[0].rstrip(" ")
    return stem.upper() in _RESERVED


def _replace_bad_chars(s: str) -> str:
    return _BAD_CHARS.sub("_", s)


def _utf8_truncate(s: str, limit: int) -> str:
    """Longest prefix of ``s`` whose UTF-8 form fits in ``limit`` bytes (never splits a char)."""
    raw = s.encode("utf-8")
    if len(raw) <= limit:
        return s
    return raw[:limit].decode("utf-8", errors="ignore")


def _split_ext(name: str) -> tuple[str, str]:
    """Split ``name`` into stem and extension (with its dot) if the extension is short."""
    dot = name.rfind(".")
    if dot <= 0:
        return name, ""
    ext = name[dot:]
    if len(ext.encode("utf-8")) > _MAX_EXT_BYTES:
        return name, ""
    return name[:dot], ext


def _fit(stem: str, ext: str, limit: int = MAX_COMPONENT_BYTES) -> str:
    """Join stem and extension, truncating the stem so the whole fits in ``limit`` bytes."""
    room = limit - len(ext.encode("utf-8"))
    if room <= 0:
        return _utf8_truncate(stem + ext, limit)
    return _utf8_truncate(stem, room) + ext


def sanitize_component(s: str) -> str:
    """Make one path component safe; returns ``""`` when it must be dropped.

    ``""``, ``.`` and ``..`` (and anything that strips down to nothing, like ``" . "``) are
    dropped rather than renamed: that is what they mean to a file system, and no component can
    then refer to a parent folder. Separators, ``:`` (drive letters, NTFS streams) and control
    characters become ``_``; trailing dots and spaces are removed (Windows drops them silently,
    so ``a.`` and ``a`` would collide); Windows device names get ``_`` appended to their stem;
    overlong names are cut to 255 UTF-8 bytes, keeping a short extension.
    """
    name = _replace_bad_chars(s).rstrip(". ")
    if not name:
        return ""
    if is_reserved_windows_name(name):
        stem, dot, rest = name.partition(".")
        name = f"{stem.rstrip(' ')}_{dot}{rest}"
    if len(name.encode("utf-8")) > MAX_COMPONENT_BYTES:
        stem, ext = _split_ext(name)
        name = _fit(stem, ext).rstrip(". ")
    return name


def sanitize_path(parts: Iterable[str]) -> tuple[str, ...]:
    """Sanitise every component and drop those that must go (may return an empty tuple)."""
    out = []
    for part in parts:
        clean = sanitize_component(part)
        if clean:
            out.append(clean)
    return tuple(out)


def path_key(parts: Sequence[str]) -> tuple[str, ...]:
    """Comparison key under which two paths are the same file on a case-insensitive volume."""
    return tuple(unicodedata.normalize("NFC", p).casefold() for p in parts)


def _numbered(name: str, n: int) -> str:
    """``name`` with ``_n`` before its extension, still within the length cap."""
    stem, ext = _split_ext(name)
    return _fit(stem, f"_{n}{ext}")


def make_unique(paths: Sequence[tuple[str, ...]]) -> list[tuple[str, ...]]:
    """Rename paths that would collide, keeping the first of each and the order.

    Collisions are judged case-insensitively and after Unicode normalisation, and include a
    file whose path is another file's folder (``a`` and ``a/b``). The later file gets ``_1``,
    ``_2`` … before its extension; a folder that clashes with an earlier file is renamed the
    same way, once, and every later file in it follows. Deterministic (resume data depends on
    it) and linear in the number of paths even for torrents made of nothing but duplicates.
    """
    return _Uniquifier().run(paths)


class _Uniquifier:
    __slots__ = ("counters", "dir_alias", "dirs", "files", "keys")

    def __init__(self) -> None:
        self.files: set[tuple[str, ...]] = set()
        self.dirs: set[tuple[str, ...]] = set()
        #: (resolved parent key + original folder key) -> (renamed folder, its key)
        self.dir_alias: dict[tuple[str, ...], tuple[str, tuple[str, ...]]] = {}
        #: last number tried for a file name, so n duplicates cost O(n), not O(n²)
        self.counters: dict[tuple[str, ...], int] = {}
        self.keys: dict[str, str] = {}

    def key(self, comp: str) -> str:
        k = self.keys.get(comp)
        if k is None:
            k = self.keys[comp] = unicodedata.normalize("NFC", comp).casefold()
        return k

    def run(self, paths: Sequence[tuple[str, ...]]) -> list[tuple[str, ...]]:
        out: list[tuple[str, ...]] = []
        for path in paths:
            resolved: list[str] = []
            rkey: tuple[str, ...] = ()
            for comp in path[:-1]:
                comp, rkey = self.folder(rkey, comp)
                resolved.append(comp)
                self.dirs.add(rkey)
            last = path[-1] if path else "_"
            fkey = (*rkey, self.key(last))
            if fkey in self.files or fkey in self.dirs:
                n = self.counters.get(fkey, 0)
                while True:
                    n += 1
                    candidate = _numbered(last, n)
                    ckey = (*rkey, self.key(candidate))
                    if ckey not in self.files and ckey not in self.dirs:
                        break
                self.counters[fkey] = n
                last, fkey = candidate, ckey
            self.files.add(fkey)
            resolved.append(last)
            out.append(tuple(resolved))
        return out

    def folder(self, rkey: tuple[str, ...], comp: str) -> tuple[str, tuple[str, ...]]:
        """The name (and key) a folder component gets under the already resolved parent."""
        base = (*rkey, self.key(comp))
        alias = self.dir_alias.get(base)
        if alias is not None:
            return alias
        if base not in self.files:
            return comp, base
        n = 0
        while True:
            n += 1
            candidate = _numbered(comp, n)
            ckey = (*rkey, self.key(candidate))
            if ckey not in self.files:
                break
        self.dir_alias[base] = (candidate, ckey)
        return candidate, ckey


def expand_home(path: str | PathLike[str]) -> Path:
    """``path`` with a leading ``~`` or ``~user`` expanded, as ``Path.expanduser`` does.

    Where that user has no home folder on this system ``Path.expanduser`` raises
    ``RuntimeError``, which callers would not expect from a bad path someone typed (a setting,
    a remote client's save path): this raises ``ValueError`` saying which, instead.
    """
    p = Path(path)
    try:
        return p.expanduser()
    except RuntimeError:
        raise ValueError(f"no home folder for {p.parts[0]!r} on this system") from None

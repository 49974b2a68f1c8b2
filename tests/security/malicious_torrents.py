"""A corpus of hostile .torrent files, written as raw bencode (never through ``ccbt_engine``).

Every case is a torrent whose file names try to make a client write somewhere it should not:
parent references, absolute paths (POSIX, drive letters, UNC), Windows device names, names that
Windows silently rewrites (trailing dots and spaces), NUL bytes, separators inside one path
element, empty elements, overlong and Unicode-trick names, names that collide once case or
normalisation is ignored, a file that is another file's folder, duplicate dictionary keys and
BEP 47 symlink entries whose targets leave the torrent.

Why a generator of its own: ccbt's create code sanitises what it writes, so it could never
produce these; the encoder below writes exactly the bytes it is given (dictionaries in the order
given, duplicates included, when :class:`RawDict` is used). The hashes are real (SHA-1 pieces,
BEP 52 roots of single-block files), so a client that accepts a torrent can really download it.

``outside`` is a folder the tests watch (the "sentinel"): absolute-path cases aim at it, and the
relative climbs assume the layout ``<tmp>/save`` (where the torrent is saved) beside
``<tmp>/sentinel``. Run as a script to write the corpus: ``python -m
tests.security.malicious_torrents OUT_DIR SENTINEL_DIR``.
"""

from __future__ import annotations

import hashlib
import random
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

PIECE = 16 * 1024
Version = Literal["v1", "v2", "hybrid"]


class RawDict:
    """A bencode dictionary written in the given order, duplicate keys included."""

    def __init__(self, items: Iterable[tuple[bytes, Any]]) -> None:
        self.items = list(items)


def bencode(value: Any) -> bytes:
    """Encode ``value``; plain dicts get sorted keys, :class:`RawDict` keeps its order."""
    if isinstance(value, bool):
        raise TypeError("bool is not bencodable")
    if isinstance(value, int):
        return b"i%de" % value
    if isinstance(value, str):
        value = value.encode("utf-8", "surrogatepass")
    if isinstance(value, bytes):
        return b"%d:%s" % (len(value), value)
    if isinstance(value, list):
        return b"l" + b"".join(bencode(v) for v in value) + b"e"
    if isinstance(value, RawDict):
        return b"d" + b"".join(bencode(k) + bencode(v) for k, v in value.items) + b"e"
    if isinstance(value, dict):
        return b"d" + b"".join(bencode(k) + bencode(value[k]) for k in sorted(value)) + b"e"
    raise TypeError(f"cannot bencode {type(value).__name__}")


def _b(part: str | bytes) -> bytes:
    return part if isinstance(part, bytes) else part.encode("utf-8", "surrogatepass")


@dataclass(frozen=True)
class FileSpec:
    """One file as the torrent names it: raw path elements, content, extra keys (BEP 47)."""

    path: tuple[bytes, ...]
    data: bytes
    extra: dict[bytes, Any] = field(default_factory=dict)

    @property
    def is_pad(self) -> bool:
        return b"p" in self.extra.get(b"attr", b"")


@dataclass(frozen=True)
class Case:
    """One hostile torrent.

    ``contents`` holds the payload of every non-pad file in torrent order (the order the
    parser keeps). ``rejects``: True when loading must fail, False when it must load (its
    names are hostile but representable), None when either answer is safe.
    """

    id: str
    torrent: bytes
    contents: tuple[bytes, ...]
    version: Version
    rejects: bool | None = False
    notes: str = ""


def _content(seed: str, size: int) -> bytes:
    return random.Random(seed).randbytes(size)


def _v1_pieces(stream: bytes) -> bytes:
    return b"".join(
        hashlib.sha1(stream[i : i + PIECE]).digest() for i in range(0, len(stream), PIECE)
    )


def _v1_info(name: bytes, files: Sequence[FileSpec], single: bool) -> dict[bytes, Any]:
    stream = b"".join(f.data for f in files)
    info: dict[bytes, Any] = {b"name": name, b"piece length": PIECE}
    if single:
        info[b"length"] = len(files[0].data)
        info.update(files[0].extra)
    else:
        info[b"files"] = [{b"length": len(f.data), b"path": list(f.path), **f.extra} for f in files]
    info[b"pieces"] = _v1_pieces(stream)
    return info


def _leaf(f: FileSpec) -> dict[bytes, Any]:
    if len(f.data) > PIECE:
        raise ValueError("v2 corpus files are one block at most (their root is one hash)")
    leaf: dict[bytes, Any] = {b"length": len(f.data), **f.extra}
    if f.data:
        leaf[b"pieces root"] = hashlib.sha256(f.data).digest()
    return {b"": leaf}


def _v2_tree(files: Sequence[FileSpec]) -> dict[bytes, Any]:
    tree: dict[bytes, Any] = {}
    for f in files:
        node = tree
        for part in f.path[:-1]:
            node = node.setdefault(part, {})
        node[f.path[-1]] = _leaf(f)
    return tree


def _with_pads(files: Sequence[FileSpec]) -> list[FileSpec]:
    """BEP 52 hybrid v1 list: a pad after every file but the last whose end is unaligned."""
    out: list[FileSpec] = []
    for i, f in enumerate(files):
        out.append(f)
        tail = len(f.data) % PIECE
        if tail and i < len(files) - 1:
            n = PIECE - tail
            out.append(FileSpec((b".pad", str(n).encode()), bytes(n), {b"attr": b"p"}))
    return out


def build(
    case_id: str,
    name: str | bytes,
    files: Sequence[FileSpec],
    version: Version = "v1",
    *,
    single: bool = False,
    rejects: bool | None = False,
    tree: Any = None,
    notes: str = "",
) -> Case:
    """A torrent of ``files``; ``tree`` replaces the generated v2 file tree (raw tricks)."""
    raw_name = _b(name)
    if version != "v1":  # a v2 tree lists its files in key order, and a hybrid's v1 list agrees
        files = sorted(files, key=lambda f: f.path)
    info: dict[bytes, Any]
    if version == "v1":
        info = _v1_info(raw_name, files, single)
    else:
        v2_tree = tree if tree is not None else _v2_tree(files)
        info = {b"name": raw_name, b"piece length": PIECE, b"meta version": 2}
        info[b"file tree"] = v2_tree
        if version == "hybrid":
            v1 = _v1_info(raw_name, _with_pads(files), single)
            info.update({k: v for k, v in v1.items() if k not in info})
    top = {b"info": info, b"created by": b"tests/security/malicious_torrents.py"}
    contents = tuple(f.data for f in files if not f.is_pad)
    return Case(case_id, bencode(top), contents, version, rejects, notes)


def _f(*path: str | bytes, size: int = 3000, extra: dict[bytes, Any] | None = None) -> FileSpec:
    raw = tuple(_b(p) for p in path)
    return FileSpec(raw, _content(repr(raw) + str(size), size), dict(extra or {}))


def cases(outside: Path) -> list[Case]:
    """The corpus; absolute-path cases point into ``outside`` (which must be absolute)."""
    out = str(outside)
    abs_parts = [p for p in Path(out).parts if p != "/"]
    long_ascii = "a" * 300 + ".txt"
    long_multi = "\u00e9" * 200 + ".bin"  # 400 UTF-8 bytes
    cs: list[Case] = []

    def add(case_id: str, files: Sequence[FileSpec], versions: Sequence[Version] = ("v1",),
            name: str | bytes = "t", **kw: Any) -> None:  # fmt: skip
        for v in versions:
            cs.append(build(f"{case_id}-{v}", name, files, v, **kw))

    both: tuple[Version, ...] = ("v1", "v2")
    every: tuple[Version, ...] = ("v1", "v2", "hybrid")
    # parent references and absolute paths
    add("dotdot", [_f("..", "..", "sentinel", "dotdot.txt"), _f("ok.txt")], every)
    add("dotdot-deep", [_f(*[".."] * 12, "etc", "x"), _f("ok.txt")], both)
    add("dotdot-inner", [_f("a", "..", "..", "..", "sentinel", "inner.txt")], both)
    add("dotdot-one-element", [_f("../../sentinel/one.txt"), _f("b.txt")], both)
    add("dot", [_f(".", "dot.txt"), _f(".", ".", "x")], both)
    add("absolute-split", [_f("", *abs_parts, "abs-split.txt"), _f("ok")], ("v1",))
    add("absolute-one", [_f(out + "/abs-one.txt"), _f("ok")], both)
    add("absolute-tmp", [_f("/tmp/ccbt-malicious-x")], both)
    add("drive-backslash", [_f("C:\\x"), _f("C:\\..\\..\\sentinel\\w.txt")], both)
    add("drive-relative", [_f("C:x"), _f("D:..")], both)
    add("unc", [_f("\\\\server\\share\\x"), _f("\\\\?\\C:\\x")], both)
    add("backslash-dotdot", [_f("..\\..\\sentinel\\bs.txt")], both)
    add("slash-in-element", [_f("a/b", "c/../../../sentinel/s.txt")], both)
    add("empty-elements", [_f("", "", "e.txt"), _f("sub", "", "f.txt")], ("v1",))
    add("empty-path", [FileSpec((), b"xyz"), _f("ok")], ("v1",), rejects=True)
    add("empty-key-v2", [_f("ok")], ("v2",), rejects=True, tree={b"": {b"": {b"length": 0}}})
    # Windows device names and names Windows rewrites
    devices = ["CON", "con.txt", "NUL", "AUX", "COM1", "LPT1", "nul.tar.gz", "CON .txt", "CONIN$"]
    add("devices", [_f(d, size=100 + i) for i, d in enumerate(devices)], every)
    add("device-folder", [_f("PRN", "inside.txt"), _f("com9", "lpt9", "x")], both)
    add("trailing-dots", [_f("a."), _f("a"), _f("b. . "), _f("b")], both)
    add("only-dots-spaces", [_f(" . "), _f("...."), _f("  ")], both)
    add("nul-byte", [_f("a\x00b.txt"), _f("..\x00", "x")], both)
    add("control-chars", [_f("a\nb\rc\td"), _f("\x1b[31mred")], both)
    add("reserved-chars", [_f('a<b>c:d"e|f?g*h')], both)
    # lengths
    add("long-ascii", [_f(long_ascii), _f(long_ascii[:-1] + "X")], both)
    add("long-multibyte", [_f(long_multi)], both)
    add("long-folder", [_f("d" * 400, "x.txt")], both)
    add("deep", [_f(*["d"] * 60, "x")], ("v1",))
    add("too-deep", [_f(*["d"] * 70, "x")], both, rejects=True)
    # Unicode tricks
    add("rtl-override", [_f("evil\u202etxt.exe")], both)
    add("fullwidth-dots", [_f("\uff0e\uff0e", "\uff0e\uff0e", "fw.txt"), _f("\u2024\u2024", "x")],
        both)  # fmt: skip
    add("nfc-nfd", [_f("caf\u00e9.txt"), _f("cafe\u0301.txt")], both)
    add("invalid-utf8", [_f(b"\xff\xfe..", b"\xc0\xae\xc0\xae", "x")], both)
    add("surrogates", [_f(b"\xed\xa0\x80.txt")], both)
    # collisions
    add("case-dupes", [_f("Readme.TXT"), _f("README.txt"), _f("readme.txt")], every)
    add("case-dupe-folders", [_f("Dir", "a"), _f("DIR", "a"), _f("dir", "A")], both)
    add("exact-dupes", [_f("same"), _f("same", size=10)], ("v1",))
    add("prefix-dir", [_f("a"), _f("a", "b")], ("v1",))
    add("prefix-dir-reverse", [_f("a", "b"), _f("a")], ("v1",))
    add("sanitised-collision", [_f("a:b"), _f("a_b"), _f("a|b")], both)
    dup = _f("x", size=50)
    add("duplicate-keys-v2", [dup], ("v2",), rejects=True,
        tree=RawDict([(b"x", _leaf(dup)), (b"x", _leaf(dup))]))  # fmt: skip
    # the torrent's own name
    add("name-dotdot", [_f("x.txt")], every, name="..")
    add("name-climb", [_f("x.txt")], ("v1",), name="../sentinel")
    add("name-absolute", [_f("x.txt")], ("v1",), name=out)
    add("name-device", [_f("x.txt")], ("v1",), name="CON")
    cs.append(build("single-name-dotdot-v1", "..", [_f("ignored", size=700)], single=True))
    cs.append(build("single-name-climb-v1", "../../sentinel/single.txt", [_f("s", size=700)],
                    single=True))  # fmt: skip
    cs.append(build("single-name-absolute-v1", out + "/single.txt", [_f("s", size=700)],
                    single=True))  # fmt: skip
    cs.append(build("single-v2-dotdot", "t", [_f("..", size=700)], "v2"))
    # pads with hostile paths (never written) and BEP 47 symlinks
    pad = FileSpec((b"..", b"..", b"sentinel", b"pad"), bytes(PIECE - 1000), {b"attr": b"p"})
    add("pad-climb", [_f("a", size=1000), pad, _f("b", size=500)], ("v1",))
    link_out = {b"attr": b"l", b"symlink path": [b"..", b"..", b"sentinel"]}
    link_abs = {b"attr": b"l", b"symlink path": [_b(out)]}
    link_in = {b"attr": b"l", b"symlink path": [b"real.txt"]}
    add("symlink-out", [_f("real.txt"), _f("link", size=0, extra=link_out)], both)
    add("symlink-abs", [_f("real.txt"), _f("link", size=0, extra=link_abs)], both)
    add("symlink-in", [_f("real.txt"), _f("link", size=0, extra=link_in)], both)
    add("symlink-dir-then-file", [_f("d", size=0, extra=link_out), _f("d", "x.txt")], ("v1",))
    return cs


def write_corpus(folder: Path, outside: Path) -> list[Path]:
    """Write every case as ``<id>.torrent`` into ``folder`` (the fuzzers' seed corpus too)."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for case in cases(outside):
        path = folder / f"{case.id}.torrent"
        path.write_bytes(case.torrent)
        written.append(path)
    return written


if __name__ == "__main__":  # pragma: no cover - a convenience for people and fuzzers
    if len(sys.argv) != 3:
        sys.exit("usage: python -m tests.security.malicious_torrents OUT_DIR SENTINEL_DIR")
    for p in write_corpus(Path(sys.argv[1]), Path(sys.argv[2]).resolve()):
        print(p)

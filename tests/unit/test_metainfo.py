"""Metainfo parsing: v1, v2, hybrid, BEP 12/19/27/47 fields, bounds, and hostile input."""

from __future__ import annotations

import contextlib
import hashlib
import json
import posixpath
import random
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ccbt_engine import metainfo
from ccbt_engine.bencode import decode, encode
from ccbt_engine.cli.main import cli
from ccbt_engine.merkle import file_root, piece_hash_v2, small_file_root
from ccbt_engine.metainfo import (
    FileEntry,
    MetainfoError,
    load_torrent,
    parse_info_dict,
    parse_torrent,
)
from ccbt_engine.pathsafe import is_reserved_windows_name, path_key

PLEN = 16384


# ------------------------------------------------------------------------------------------
# builders: real hashes, so a parse that passes validation proves the checks are right
# ------------------------------------------------------------------------------------------


def _data(n: int, seed: int = 0) -> bytes:
    return random.Random(seed * 7919 + n).randbytes(n)


def _v1_pieces(blob: bytes, plen: int) -> bytes:
    return b"".join(hashlib.sha1(blob[i : i + plen]).digest() for i in range(0, len(blob), plen))


def _v2_file(data: bytes, plen: int) -> tuple[bytes, bytes | None]:
    """(pieces root, piece layer or None) of one file's content."""
    if len(data) <= plen:
        return small_file_root(data), None
    layer = [piece_hash_v2(data[i : i + plen], plen) for i in range(0, len(data), plen)]
    return file_root(layer, plen), b"".join(layer)


def build(
    files: list[tuple[list[str], bytes]],
    *,
    version: str = "v1",
    name: str = "torrent",
    single: bool = False,
    plen: int = PLEN,
    info_extra: dict[str, Any] | None = None,
    top_extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A torrent dict (not yet encoded) for ``files`` as the given version."""
    info: dict[str, Any] = {"name": name, "piece length": plen}
    top: dict[str, Any] = {"announce": "http://127.0.0.1:6969/announce"}
    if version in ("v2", "hybrid"):
        info["meta version"] = 2
        tree: dict[str, Any] = {}
        layers: dict[bytes, bytes] = {}
        for path, data in files:
            leaf: dict[str, Any] = {"length": len(data)}
            if data:
                root, layer = _v2_file(data, plen)
                leaf["pieces root"] = root
                if layer is not None:
                    layers[root] = layer
            node = tree
            for part in path[:-1]:
                node = node.setdefault(part, {})
            node[path[-1]] = {"": leaf}
        info["file tree"] = tree
        top["piece layers"] = layers
    if version in ("v1", "hybrid"):
        blob = b""
        if single:
            ((_, data),) = files
            info["length"] = len(data)
            blob = data
        else:
            entries = []
            for i, (path, data) in enumerate(files):
                entries.append({"length": len(data), "path": path})
                blob += data
                last = i == len(files) - 1
                if version == "hybrid" and not last and len(data) % plen:
                    pad = plen - len(data) % plen
                    entries.append({"length": pad, "path": [".pad", str(pad)], "attr": "p"})
                    blob += bytes(pad)
            info["files"] = entries
        info["pieces"] = _v1_pieces(blob, plen)
    info.update(info_extra or {})
    top["info"] = info
    top.update(top_extra or {})
    return top


def enc(t: dict[Any, Any]) -> bytes:
    return encode(t)


FILES3 = [
    (["a.bin"], _data(40_000, 1)),
    (["sub", "b.bin"], _data(16_384, 2)),
    (["sub", "c.txt"], _data(100, 3)),
]


# ------------------------------------------------------------------------------------------
# v1
# ------------------------------------------------------------------------------------------


def test_v1_single_file() -> None:
    data = _data(50_000)
    raw = enc(build([(["x"], data)], name="movie.mkv", single=True))
    m = parse_torrent(raw)
    info = m.info
    raw_info = encode(decode(raw)[b"info"])
    assert info.info_hash_v1 == hashlib.sha1(raw_info).digest()
    assert info.info_hash_v2 is None
    assert info.info_hash == info.info_hash_v1
    assert info.name == "movie.mkv"
    assert info.files == (FileEntry(path=("movie.mkv",), length=50_000, offset=0),)
    assert info.files[0].url_path == ("movie.mkv",)
    assert info.total_length == 50_000
    assert info.num_pieces == 4
    assert info.piece_size(3) == 50_000 - 3 * PLEN
    assert len(info.piece_hashes) == 4
    assert info.piece_hashes[0] == hashlib.sha1(data[:PLEN]).digest()
    assert info.raw_info == raw_info
    assert info.meta_version == 1 and not info.has_v2 and not info.private
    assert m.trackers == (("http://127.0.0.1:6969/announce",),)


def test_v1_multi_file_paths_and_offsets() -> None:
    info = parse_torrent(enc(build(FILES3, name="pack"))).info
    assert [f.path for f in info.files] == [
        ("pack", "a.bin"),
        ("pack", "sub", "b.bin"),
        ("pack", "sub", "c.txt"),
    ]
    assert [f.offset for f in info.files] == [0, 40_000, 56_384]
    assert info.total_length == 56_484
    assert info.num_pieces == 4


def test_infohash_is_over_raw_bytes_even_when_keys_are_unsorted() -> None:
    raw_info = b"d12:piece lengthi16384e4:name1:x6:lengthi5e6:pieces20:" + bytes(20) + b"e"
    raw = b"d4:info" + raw_info + b"8:announce17:http://127.0.0.1/e"
    m = parse_torrent(raw)
    assert m.info.info_hash_v1 == hashlib.sha1(raw_info).digest()
    assert m.info.raw_info == raw_info
    assert m.trackers == (("http://127.0.0.1/",),)


def test_pieces_length_must_match_piece_count() -> None:
    t = build(FILES3)
    t["info"]["pieces"] = t["info"]["pieces"][:-20]
    with pytest.raises(MetainfoError, match="'pieces' holds 60 bytes, expected 80"):
        parse_torrent(enc(t))
    t["info"]["pieces"] += b"x"
    with pytest.raises(MetainfoError, match="'pieces'"):
        parse_torrent(enc(t))


def test_utf8_variants_preferred_and_invalid_utf8_replaced() -> None:
    t = build([(["a"], b"1"), (["b"], b"2")], name="latin")
    t["info"]["name.utf-8"] = "naïve"
    t["info"]["files"][0]["path"] = [b"caf\xe9"]
    t["info"]["files"][0]["path.utf-8"] = ["café"]
    t["info"]["files"][1]["path"] = [b"bad\xff\xfename"]
    info = parse_torrent(enc(t)).info
    assert info.name == "naïve"
    assert info.files[0].path == ("naïve", "café")
    assert info.files[1].path == ("naïve", "bad\ufffd\ufffdname")


def test_bep12_tiers_dedup_and_announce_fallback() -> None:
    top = {
        "announce": "http://127.0.0.1:1/ignored",
        "announce-list": [
            ["http://127.0.0.1:1/a", "udp://127.0.0.1:2"],
            [],
            ["http://127.0.0.1:1/a", "http://127.0.0.1:3/b"],
            "http://127.0.0.1:4/bare-string-tier",
            [5, "http://127.0.0.1/evil\r\nX-Header: 1", " http://127.0.0.1:6/trim "],
        ],
    }
    m = parse_torrent(enc(build(FILES3, top_extra=top)))
    assert m.trackers == (
        ("http://127.0.0.1:1/a", "udp://127.0.0.1:2"),
        ("http://127.0.0.1:3/b",),
        ("http://127.0.0.1:4/bare-string-tier",),
        ("http://127.0.0.1:6/trim",),
    )
    m = parse_torrent(enc(build(FILES3, top_extra={"announce-list": [[]]})))
    assert m.trackers == (("http://127.0.0.1:6969/announce",),)
    m = parse_torrent(enc(build(FILES3, top_extra={"announce": 42})))
    assert m.trackers == ()


def test_bep19_url_list_string_or_list() -> None:
    m = parse_torrent(enc(build(FILES3, top_extra={"url-list": "http://127.0.0.1/ws/"})))
    assert m.web_seeds == ("http://127.0.0.1/ws/",)
    urls = ["http://127.0.0.1/1", "http://127.0.0.1/2", "http://127.0.0.1/1", ""]
    m = parse_torrent(enc(build(FILES3, top_extra={"url-list": urls})))
    assert m.web_seeds == ("http://127.0.0.1/1", "http://127.0.0.1/2")


def test_private_source_comment_and_other_outer_fields() -> None:
    top = {
        "comment": "plain",
        "comment.utf-8": "ütf",
        "created by": "tester",
        "creation date": 1_700_000_000,
        "nodes": [["127.0.0.1", 6881], ["::1", 70000], "junk", ["h", "p"]],
    }
    m = parse_torrent(enc(build(FILES3, info_extra={"private": 1, "source": "SRC"}, top_extra=top)))
    assert m.info.private
    assert m.info.source == "SRC"
    assert m.comment == "ütf"
    assert m.created_by == "tester"
    assert m.creation_date == 1_700_000_000
    assert m.nodes == (("127.0.0.1", 6881),)
    assert not parse_torrent(enc(build(FILES3, info_extra={"private": 0}))).info.private


def test_bep47_pad_files_and_attributes() -> None:
    t = build(FILES3, version="hybrid")
    t["info"]["files"][0]["attr"] = "xh"
    t["info"]["files"][0]["mtime"] = 1234
    info = parse_torrent(enc(t)).info
    pads = [f for f in info.files if f.is_pad]
    assert [f.path for f in pads] == [("torrent", ".pad", str(PLEN - 40_000 % PLEN))]
    assert info.files[0].attr == "xh" and info.files[0].mtime == 1234
    for f in info.files:
        if not f.is_pad and f.length:
            assert f.offset % PLEN == 0


def test_bep47_symlink_inside_kept_escape_dropped() -> None:
    t = build([(["real.bin"], b"x" * 10), (["link"], b""), (["bad"], b""), (["abs"], b"")])
    files = t["info"]["files"]
    files[1].update({"attr": "l", "symlink path": ["real.bin"]})
    files[2].update({"attr": "lx", "symlink path": ["..", "..", "etc", "passwd"]})
    files[3].update({"attr": "l", "symlink path": ["/etc", "shadow"]})
    info = parse_torrent(enc(t)).info
    assert info.files[1].attr == "l"
    assert info.files[1].symlink_path == ("torrent", "real.bin")
    assert info.files[2].attr == "x" and info.files[2].symlink_path is None
    assert info.files[3].attr == "" and info.files[3].symlink_path is None


def test_bep47_symlink_in_single_file_torrent_dropped() -> None:
    t = build([(["x"], b"")], name="lonely", single=True)
    t["info"].update({"attr": "lx", "symlink path": ["other"]})
    (f,) = parse_torrent(enc(t)).info.files
    assert f.attr == "x" and f.symlink_path is None


# ------------------------------------------------------------------------------------------
# v2 and hybrid
# ------------------------------------------------------------------------------------------


def test_v2_multi_file_with_synthesised_pads() -> None:
    raw = enc(build(FILES3, version="v2", name="v2pack"))
    info = parse_torrent(raw).info
    assert info.info_hash_v1 is None
    assert info.info_hash_v2 == hashlib.sha256(encode(decode(raw)[b"info"])).digest()
    assert info.info_hash == info.info_hash_v2[:20]
    assert info.meta_version == 2 and info.piece_hashes == ()
    real = [f for f in info.files if not f.is_pad]
    assert [f.path for f in real] == [
        ("v2pack", "a.bin"),
        ("v2pack", "sub", "b.bin"),
        ("v2pack", "sub", "c.txt"),
    ]
    assert all(f.offset % PLEN == 0 for f in real)
    pads = [f for f in info.files if f.is_pad]
    assert [(f.path, f.length) for f in pads] == [
        (("v2pack", ".pad", str(PLEN - 40_000 % PLEN)), PLEN - 40_000 % PLEN),
        (("v2pack", ".pad", str(PLEN - 100)), PLEN - 100),
    ]
    # the piece space is whole pieces, as in libtorrent
    assert info.total_length == info.num_pieces * PLEN == 5 * PLEN
    root_a, layer_a = _v2_file(FILES3[0][1], PLEN)
    assert real[0].pieces_root == root_a
    assert info.piece_layers == {root_a: layer_a}
    # offsets are contiguous
    pos = 0
    for f in info.files:
        assert f.offset == pos
        pos += f.length


def test_v2_single_file_takes_its_name_from_the_tree() -> None:
    info = parse_torrent(enc(build([(["file.bin"], _data(20_000))], version="v2", name="x"))).info
    assert info.name == "file.bin"
    assert [(f.path, f.length, f.is_pad) for f in info.files] == [
        (("file.bin",), 20_000, False),
        ((".pad", str(2 * PLEN - 20_000)), 2 * PLEN - 20_000, True),
    ]


def test_v2_folder_named_dotdot_is_still_a_folder() -> None:
    info = parse_torrent(enc(build([(["..", "f.bin"], b"x")], version="v2", name="n"))).info
    assert info.name == "n"
    assert info.files[0].path == ("n", "f.bin")
    info = parse_torrent(enc(build([(["..."], b"x")], version="v2", name="n"))).info
    assert info.name == info.info_hash_v2.hex()[:40]  # type: ignore[union-attr]


def test_v2_empty_file_has_no_root_and_no_pad() -> None:
    files = [(["a"], _data(100)), (["e"], b""), (["z"], _data(PLEN))]
    info = parse_torrent(enc(build(files, version="v2"))).info
    assert [(f.path[-1], f.length, f.offset) for f in info.files] == [
        ("a", 100, 0),
        (str(PLEN - 100), PLEN - 100, 100),
        ("e", 0, PLEN),
        ("z", PLEN, PLEN),
    ]
    assert info.files[2].pieces_root is None


@pytest.mark.parametrize("plen", [8192, 3 * 16384, 16385])
def test_v2_piece_length_power_of_two_at_least_16k(plen: int) -> None:
    t = build([(["a"], b"x")], version="v2", plen=16384)
    t["info"]["piece length"] = plen
    with pytest.raises(MetainfoError, match="power of two"):
        parse_torrent(enc(t))


def test_v2_piece_layers_validated() -> None:
    t = build(FILES3, version="v2")
    root_a = t["info"]["file tree"]["a.bin"][""]["pieces root"]
    layer = t["piece layers"][root_a]
    t["piece layers"] = {}
    with pytest.raises(MetainfoError, match=r"lack the layer of 'torrent/a\.bin'"):
        parse_torrent(enc(t))
    t["piece layers"] = {root_a: layer[:-32]}
    with pytest.raises(MetainfoError, match="holds 64 bytes, expected 96"):
        parse_torrent(enc(t))
    t["piece layers"] = {root_a: bytes(len(layer))}
    with pytest.raises(MetainfoError, match="does not match its pieces root"):
        parse_torrent(enc(t))
    t["piece layers"] = "nope"
    with pytest.raises(MetainfoError, match="not a dictionary"):
        parse_torrent(enc(t))


def test_v2_piece_layers_not_needed_for_files_of_one_piece() -> None:
    files = [(["a"], _data(PLEN)), (["b"], _data(5))]
    t = build(files, version="v2")
    assert t["piece layers"] == {}
    assert parse_torrent(enc(t)).info.piece_layers == {}


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda t: t["info"].__setitem__("meta version", 3), "unsupported 'meta version'"),
        (lambda t: t["info"].pop("file tree"), "no 'file tree'"),
        (lambda t: t["info"].__setitem__("file tree", {}), "'file tree' is empty"),
        (
            lambda t: t["info"]["file tree"]["a.bin"][""].pop("pieces root"),
            "no valid 32-byte 'pieces root'",
        ),
        (
            lambda t: t["info"]["file tree"]["a.bin"][""].__setitem__("pieces root", b"short"),
            "no valid 32-byte 'pieces root'",
        ),
        (
            lambda t: t["info"]["file tree"]["a.bin"].__setitem__("other", {}),
            "both a file and a folder",
        ),
        (lambda t: t["info"]["file tree"].__setitem__("", {"d": {}}), "empty name"),
        (lambda t: t["info"]["file tree"].__setitem__("x", 5), "not a dictionary"),
        (
            lambda t: t["info"]["file tree"]["a.bin"][""].__setitem__("length", -1),
            "invalid length",
        ),
    ],
)
def test_v2_malformed_trees(mutate: Any, message: str) -> None:
    t = build(FILES3, version="v2")
    mutate(t)
    with pytest.raises(MetainfoError, match=message):
        parse_torrent(enc(t))


def test_hybrid_has_both_hashes_and_roots() -> None:
    raw = enc(build(FILES3, version="hybrid", name="hy"))
    info = parse_torrent(raw).info
    raw_info = encode(decode(raw)[b"info"])
    assert info.info_hash_v1 == hashlib.sha1(raw_info).digest()
    assert info.info_hash_v2 == hashlib.sha256(raw_info).digest()
    assert info.is_hybrid
    real = [f for f in info.files if not f.is_pad]
    assert [f.pieces_root for f in real] == [_v2_file(d, PLEN)[0] for _, d in FILES3]
    assert len(info.piece_hashes) == info.num_pieces


def test_hybrid_single_file() -> None:
    data = _data(40_000)
    info = parse_torrent(
        enc(build([(["f.bin"], data)], version="hybrid", name="f.bin", single=True))
    )
    assert info.info.files[0].path == ("f.bin",)
    assert info.info.files[0].pieces_root == _v2_file(data, PLEN)[0]
    assert info.info.total_length == 40_000


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda t: t["info"]["files"][0].__setitem__("length", 39_999), "does not match"),
        (lambda t: t["info"]["files"][0].__setitem__("path", ["z.bin"]), "does not match"),
        (lambda t: t["info"]["file tree"].pop("a.bin"), "v1 lists 3 files but the v2 file tree 2"),
        (lambda t: t["info"]["files"].pop(1), "piece boundary|'pieces'"),
    ],
)
def test_hybrid_inconsistencies_rejected(mutate: Any, message: str) -> None:
    t = build(FILES3, version="hybrid")
    mutate(t)
    with pytest.raises(MetainfoError, match=message):
        parse_torrent(enc(t))


def test_hybrid_misaligned_v1_rejected() -> None:
    t = build(FILES3, version="hybrid")
    files = t["info"]["files"]
    files.pop(1)  # drop the pad: b.bin now starts mid-piece
    blob = FILES3[0][1] + FILES3[1][1] + FILES3[2][1]
    t["info"]["pieces"] = _v1_pieces(blob, PLEN)
    with pytest.raises(MetainfoError, match="does not start on a piece boundary"):
        parse_torrent(enc(t))


def test_parse_info_dict_matches_and_needs_no_layers() -> None:
    for version in ("v1", "v2", "hybrid"):
        raw = enc(build(FILES3, version=version))
        whole = parse_torrent(raw).info
        raw_info = whole.raw_info
        alone = parse_info_dict(raw_info)
        assert alone.info_hash_v1 == whole.info_hash_v1
        assert alone.info_hash_v2 == whole.info_hash_v2
        assert alone.files == whole.files
        assert alone.piece_layers == {}
        if version != "v1":
            with pytest.raises(MetainfoError, match="lack the layer"):
                parse_info_dict(raw_info, piece_layers={})
            layers = {k: v for k, v in decode(raw)[b"piece layers"].items()}
            assert parse_info_dict(raw_info, layers).piece_layers == whole.piece_layers
    with pytest.raises(MetainfoError, match="not a dictionary"):
        parse_info_dict(b"le")
    with pytest.raises(MetainfoError, match="not a valid info"):
        parse_info_dict(b"d")


# ------------------------------------------------------------------------------------------
# hostile names
# ------------------------------------------------------------------------------------------

EVIL_PATHS: list[list[str]] = [
    ["..", "..", "etc", "passwd"],
    ["/etc", "shadow"],
    ["C:", "Windows", "evil.dll"],
    ["C:\\Windows\\evil2.dll"],
    ["..\\..\\up.txt"],
    ["sub", "..", "..", "up2"],
    ["CON"],
    ["nul.txt"],
    ["Com1.log"],
    ["lpt3"],
    ["bell\x07\x1b[2J"],
    ["trailing. "],
    ["dup"],
    ["DUP"],
    ["dup."],
    ["x" * 400 + ".dat"],
    ["."],
    [""],
    ["ok", "", ".", "file"],
]


def _assert_all_safe(files: tuple[FileEntry, ...]) -> None:
    base = "/save"
    keys = []
    for f in files:
        joined = posixpath.normpath(posixpath.join(base, *f.path))
        assert joined.startswith(base + "/"), f.path
        for comp in f.path:
            assert comp not in ("", ".", "..")
            assert not any(c in comp for c in "/\\:")
            assert not is_reserved_windows_name(comp)
            assert not comp.endswith((".", " "))
            assert len(comp.encode()) <= 255
            assert all(ord(c) >= 0x20 and c != "\x7f" for c in comp)
        if not f.is_pad:
            keys.append(path_key(f.path))
    assert len(set(keys)) == len(keys)


@pytest.mark.parametrize("version", ["v1", "v2", "hybrid"])
def test_malicious_paths_are_sanitised_and_unique(version: str) -> None:
    files = [(p, _data(10 + i)) for i, p in enumerate(EVIL_PATHS)]
    if version != "v1":
        # a tree cannot hold a name twice, and "" is not a file name in a tree: keep the rest
        by_last: dict[str, tuple[list[str], bytes]] = {}
        for p, d in files:
            if "" not in p:
                by_last.setdefault(p[-1], (p, d))
        files = list(by_last.values())
        # bencode sorts the tree, so list the v1 files in tree order too (as creators do)
        files.sort(key=lambda f: [c.encode() for c in f[0]])
    info = parse_torrent(enc(build(files, version=version, name="../..\\evil"))).info
    _assert_all_safe(info.files)
    real = [f for f in info.files if not f.is_pad]
    assert real[0].path[0] == ".._.._evil"
    by_raw = {tuple(p): f.path for (p, _), f in zip(files, real, strict=True)}
    assert by_raw[("..", "..", "etc", "passwd")] == (".._.._evil", "etc", "passwd")
    assert by_raw[("/etc", "shadow")] == (".._.._evil", "_etc", "shadow")
    assert by_raw[("CON",)] == (".._.._evil", "CON_")
    if version == "v1":
        assert by_raw[("dup",)] == (".._.._evil", "dup")
        assert by_raw[("DUP",)] == (".._.._evil", "DUP_1")
        assert by_raw[("dup.",)] == (".._.._evil", "dup_2")
        assert by_raw[(".",)] == (".._.._evil", "_")
        assert by_raw[("",)] == (".._.._evil", "__1")


@pytest.mark.parametrize("name", ["..", ".", "", " . ", "..."])
def test_name_that_sanitises_to_nothing_uses_infohash(name: str) -> None:
    info = parse_torrent(enc(build(FILES3, name=name))).info
    assert info.name == info.info_hash_v1.hex()  # type: ignore[union-attr]
    assert info.files[0].path[0] == info.name
    single = parse_torrent(enc(build([(["a"], b"x")], name=name, single=True))).info
    assert single.files[0].path == (single.name,)


# ------------------------------------------------------------------------------------------
# malformed input and bounds
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"", "not a valid torrent"),
        (b"le", "not a valid torrent"),
        (b"de", "no info dictionary"),
        (b"d4:infoi1ee", "no info dictionary"),
        (b"d4:infodee", "invalid piece length"),
        (b"d4:infod12:piece lengthi16384eee", "no name"),
        (b"d4:infod4:name1:x12:piece lengthi0eee", "invalid piece length"),
        (b"d4:infod4:name1:x12:piece lengthi16384eee", "invalid single-file length"),
        (b"d4:infod6:lengthi-1e4:name1:x12:piece lengthi16384eee", "invalid single-file"),
        (b"d4:infod5:filesle4:name1:x12:piece lengthi16384eee", "non-empty list"),
        (b"d4:infod5:filesli1ee4:name1:x12:piece lengthi16384eee", "file #0 is not a dict"),
        (b"d4:infod6:lengthi1e4:name1:x12:piece lengthi16384eee", "no 'pieces' string"),
    ],
)
def test_malformed_torrents(raw: bytes, message: str) -> None:
    with pytest.raises(MetainfoError, match=message):
        parse_torrent(raw)


def test_both_length_and_files_rejected() -> None:
    t = build(FILES3)
    t["info"]["length"] = 5
    with pytest.raises(MetainfoError, match="both 'length' and 'files'"):
        parse_torrent(enc(t))


def test_file_without_path_rejected() -> None:
    t = build(FILES3)
    t["info"]["files"][1]["path"] = []
    with pytest.raises(MetainfoError, match="file #1 has no valid 'path'"):
        parse_torrent(enc(t))
    t["info"]["files"][1]["path"] = ["ok", 5]
    with pytest.raises(MetainfoError, match="file #1 has no valid 'path'"):
        parse_torrent(enc(t))


def test_bound_number_of_files(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(metainfo, "MAX_FILES", 2)
    with pytest.raises(MetainfoError, match="more than 2"):
        parse_torrent(enc(build(FILES3)))
    with pytest.raises(MetainfoError, match="more than 2"):
        parse_torrent(enc(build(FILES3, version="v2")))


def test_bound_total_size() -> None:
    huge = 1 << 51
    t = build([(["a"], b"")], info_extra={"piece length": 1 << 28})
    t["info"]["files"] = [{"length": huge, "path": ["a"]}]
    with pytest.raises(MetainfoError, match="larger than"):
        parse_torrent(enc(t))


def test_bound_piece_count() -> None:
    t = build([(["a"], b"x")], version="v2")
    t["info"]["file tree"]["a"][""]["length"] = (1 << 24) * PLEN + 1
    with pytest.raises(MetainfoError, match="pieces, more than"):
        parse_info_dict(encode(t["info"]))


def test_bound_path_depth() -> None:
    t = build(FILES3)
    t["info"]["files"][0]["path"] = ["d"] * 65
    with pytest.raises(MetainfoError, match="deeper than 64"):
        parse_torrent(enc(t))
    # a tree nested past the limit: written by hand, since encode() refuses it too
    inner = b"d0:d6:lengthi0eee"
    for _ in range(70):
        inner = b"d1:d" + inner + b"e"
    info = b"d9:file tree" + inner + b"12:meta versioni2e4:name1:x12:piece lengthi16384ee"
    with pytest.raises(MetainfoError, match="nesting deeper"):
        parse_torrent(b"d4:info" + info + b"e")


def test_bound_file_size(monkeypatch: pytest.MonkeyPatch) -> None:
    raw = enc(build(FILES3))
    monkeypatch.setattr(metainfo, "MAX_TORRENT_SIZE", len(raw) - 1)
    with pytest.raises(MetainfoError, match="larger than"):
        parse_torrent(raw)


def test_bound_piece_length() -> None:
    t = build(FILES3)
    t["info"]["piece length"] = 1 << 29
    with pytest.raises(MetainfoError, match="invalid piece length"):
        parse_torrent(enc(t))


def test_load_torrent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    raw = enc(build(FILES3))
    p = tmp_path / "t.torrent"
    p.write_bytes(raw)
    assert load_torrent(p) == parse_torrent(raw)
    assert load_torrent(str(p)).info.name == "torrent"
    with pytest.raises(MetainfoError, match="cannot read"):
        load_torrent(tmp_path / "missing.torrent")
    with pytest.raises(MetainfoError, match="cannot read"):
        load_torrent(tmp_path)
    monkeypatch.setattr(metainfo, "MAX_TORRENT_SIZE", 10)
    with pytest.raises(MetainfoError, match="larger than 10"):
        load_torrent(p)


def test_non_bytes_input_is_metainfo_error() -> None:
    with pytest.raises(MetainfoError):
        parse_torrent("d4:infodee")  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------
# properties: hostile bytes raise MetainfoError and nothing else
# ------------------------------------------------------------------------------------------

_VALID = [
    enc(build(FILES3, version="v1")),
    enc(build(FILES3, version="v2")),
    enc(build(FILES3, version="hybrid")),
    enc(build([(["s"], _data(30_000))], version="hybrid", name="s", single=True)),
]


def _parse_or_metainfo_error(raw: bytes) -> None:
    with contextlib.suppress(MetainfoError):
        m = parse_torrent(raw)
        _assert_all_safe(m.info.files)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2000))
def test_arbitrary_bytes_only_metainfo_error(raw: bytes) -> None:
    _parse_or_metainfo_error(raw)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(_VALID),
    st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255), st.integers(0, 2)), max_size=6),
)
def test_mutated_torrents_only_metainfo_error(
    raw: bytes, edits: list[tuple[int, int, int]]
) -> None:
    buf = bytearray(raw)
    for pos, byte, kind in edits:
        if not buf:
            break
        i = pos % len(buf)
        if kind == 0:
            buf[i] = byte
        elif kind == 1:
            del buf[i]
        else:
            buf.insert(i, byte)
    _parse_or_metainfo_error(bytes(buf))


_bvalues = st.recursive(
    st.integers(-(2**70), 2**70) | st.binary(max_size=40) | st.sampled_from([b"..", b"CON", b""]),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.binary(max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)
_KEYS = [
    b"name",
    b"piece length",
    b"length",
    b"files",
    b"pieces",
    b"meta version",
    b"file tree",
    b"attr",
    b"symlink path",
    b"path",
    b"private",
    b"pieces root",
]


def _set_somewhere(value: Any, rng: random.Random, key: bytes, new: Any) -> None:
    """Replace or add ``key`` in a random dict inside ``value``."""
    dicts: list[dict[bytes, Any]] = []
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, dict):
            dicts.append(v)
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)
    rng.choice(dicts)[key] = new


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(_VALID),
    st.randoms(use_true_random=False),
    st.lists(st.tuples(st.sampled_from(_KEYS), _bvalues), min_size=1, max_size=3),
)
def test_structurally_mutated_torrents_only_metainfo_error(
    raw: bytes, rng: random.Random, edits: list[tuple[bytes, Any]]
) -> None:
    value = decode(raw)
    for key, new in edits:
        _set_somewhere(value, rng, key, new)
    _parse_or_metainfo_error(encode(value))


# ------------------------------------------------------------------------------------------
# ccbt info (in-process; tests/interop runs the installed command against libtorrent)
# ------------------------------------------------------------------------------------------


def _run_info(*args: str) -> Any:
    return CliRunner().invoke(cli, ["info", *args])


def test_info_human_output(tmp_path: Path) -> None:
    top = {
        "announce-list": [["http://127.0.0.1:1/a"], ["udp://127.0.0.1:2"]],
        "url-list": "http://127.0.0.1/ws",
        "comment": "evil\x1b]0;title\x07\u202ecomment",
    }
    p = tmp_path / "t.torrent"
    p.write_bytes(enc(build(FILES3, version="hybrid", name="pack", top_extra=top)))
    result = _run_info(str(p))
    assert result.exit_code == 0, result.output
    out = result.output
    info = parse_torrent(p.read_bytes()).info
    assert "Name:         pack" in out
    assert info.info_hash_v1.hex() in out  # type: ignore[union-attr]
    assert info.info_hash_v2.hex() in out  # type: ignore[union-attr]
    assert "Version:      hybrid" in out
    assert "56484 bytes" in out
    assert "tier 1: http://127.0.0.1:1/a" in out and "tier 2: udp://127.0.0.1:2" in out
    assert "http://127.0.0.1/ws" in out
    assert "pack/sub/b.bin" in out
    assert ".pad" not in out
    # escape sequences and bidi overrides from the torrent never reach the terminal raw
    assert "\x1b" not in out and "\x07" not in out and "\u202e" not in out
    assert "\\u001b]0;title\\u0007\\u202ecomment" in out
    assert ".pad" in _run_info("--all", str(p)).output


def test_info_json_schema(tmp_path: Path) -> None:
    p = tmp_path / "t.torrent"
    p.write_bytes(enc(build(FILES3, version="v2", name="pack", info_extra={"private": 1})))
    result = _run_info("--json", str(p))
    assert result.exit_code == 0
    d = json.loads(result.output)
    assert d["type"] == "torrent" and d["version"] == "v2"
    assert d["info_hash_v1"] is None and len(d["info_hash_v2"]) == 64
    assert d["private"] is True
    assert d["content_size"] == 56_484 and d["total_size"] == 5 * PLEN
    assert d["num_pieces"] == 5 and d["piece_length"] == PLEN
    assert [f["path"] for f in d["files"]] == ["pack/a.bin", "pack/sub/b.bin", "pack/sub/c.txt"]
    assert d["num_files"] == 3
    assert d["magnet"].startswith("magnet:?xt=urn:btmh:1220")
    with_pads = json.loads(_run_info("--json", "--all", str(p)).output)
    assert sum(f["pad"] for f in with_pads["files"]) == 2


def test_info_magnet() -> None:
    uri = "magnet:?xt=urn:btih:" + "ab" * 20 + "&dn=hello&tr=udp%3A%2F%2F127.0.0.1%3A1&so=1-2"
    result = _run_info(uri)
    assert result.exit_code == 0
    assert "hello" in result.output and "ab" * 20 in result.output
    assert "udp://127.0.0.1:1" in result.output and "1, 2" in result.output
    d = json.loads(_run_info("--json", uri).output)
    assert d == {
        "type": "magnet",
        "name": "hello",
        "info_hash_v1": "ab" * 20,
        "info_hash_v2": None,
        "exact_length": None,
        "trackers": ["udp://127.0.0.1:1"],
        "web_seeds": [],
        "peers": [],
        "select_only": [1, 2],
    }


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"garbage", "not a valid torrent file"),
        (b"d4:infod4:name1:xee", "invalid piece length"),
    ],
)
def test_info_errors_exit_2(tmp_path: Path, content: bytes, message: str) -> None:
    p = tmp_path / "bad.torrent"
    p.write_bytes(content)
    result = _run_info(str(p))
    assert result.exit_code == 2
    assert message in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert _run_info(str(tmp_path / "nope")).exit_code == 2
    assert _run_info("magnet:?dn=x").exit_code == 2

"""Torrent creation: structure, hashes recomputed independently, options, errors, CLI.

The hashes are checked against a deliberately naive re-computation (whole files in memory, the
v1 piece stream rebuilt from the torrent's own file list), so a bug in the threaded, streaming
hasher cannot hide behind itself. Byte-identity with libtorrent is in the interop tests.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import os
import threading
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from ccbt_engine import bencode, create
from ccbt_engine.cli.create_cmd import parse_size, tracker_tiers
from ccbt_engine.cli.main import cli
from ccbt_engine.create import (
    CreateError,
    auto_piece_length,
    create_torrent,
    create_torrent_async,
    list_source_files,
)
from ccbt_engine.merkle import BLOCK_SIZE, block_hashes, file_root, merkle_root
from tests.payloads import PAYLOADS

VERSIONS = ("v1", "v2", "hybrid")


@pytest.fixture(scope="module")
def payloads(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("payloads")
    return {name: build(root) for name, build in PAYLOADS.items()}


def info_bytes(torrent: bytes) -> bytes:
    _, spans = bencode.decode_with_spans(torrent)
    start, end = spans[b"info"]
    return torrent[start:end]


def disk_files(path: Path) -> dict[tuple[bytes, ...], bytes]:
    """Relative path -> content of every regular file under ``path`` (or ``path`` itself)."""
    if path.is_file():
        return {(os.fsencode(path.name),): path.read_bytes()}
    out = {}
    for p in path.rglob("*"):
        if p.is_file():
            rel = p.relative_to(path)
            out[tuple(os.fsencode(part) for part in rel.parts)] = p.read_bytes()
    return out


def v1_entries(info: dict[bytes, Any]) -> list[tuple[tuple[bytes, ...], int, bytes]]:
    """``(path, length, attr)`` of the v1 file list, single-file form normalised."""
    if b"files" not in info:
        return [((info[b"name"],), info[b"length"], info.get(b"attr", b""))]
    return [(tuple(f[b"path"]), f[b"length"], f.get(b"attr", b"")) for f in info[b"files"]]


def v2_leaves(tree: dict[bytes, Any], prefix: tuple[bytes, ...] = ()) -> list[Any]:
    out = []
    for name, node in tree.items():
        if b"" in node:
            out.append(((*prefix, name), node[b""]))
        else:
            out.extend(v2_leaves(node, (*prefix, name)))
    return out


def check_torrent(torrent: bytes, path: Path, version: str, piece_length: int | None) -> None:
    """Everything a correct torrent of ``path`` must satisfy, recomputed the slow way."""
    top = bencode.decode(torrent)
    info = top[b"info"]
    plen = info[b"piece length"]
    files = disk_files(path)
    total = sum(len(d) for d in files.values())
    if piece_length is not None:
        assert plen == piece_length
    else:
        assert plen == auto_piece_length(total)
    assert info[b"name"] == os.fsencode(path.name)
    single = path.is_file()

    if version == "v2":
        assert b"pieces" not in info and b"files" not in info and b"length" not in info
    else:
        entries = v1_entries(info)
        real = [(p, n) for p, n, a in entries if a != b"p"]
        assert sorted(real) == sorted((p, len(d)) for p, d in files.items())
        if version == "hybrid":
            assert [p for p, _ in real] == sorted(p for p, _ in real)
            for i, (p, n, attr) in enumerate(entries):
                if attr == b"p":
                    assert p == (b".pad", str(n).encode())
                    assert 0 < n < plen
                    assert entries[i - 1][1] > 0  # pads follow non-empty files only
                    continue
                expected_pad = 0 if len(entries) == 1 or n == 0 else (-n) % plen
                following = entries[i + 1] if i + 1 < len(entries) else None
                got_pad = following[1] if following and following[2] == b"p" else 0
                assert got_pad == expected_pad, p
        else:
            assert all(a != b"p" for _, _, a in entries)
        # v1 pieces: SHA-1 over the stream of files and pad zeros, in listed order
        stream = b"".join(
            bytes(n) if a == b"p" else files[p if not single else (os.fsencode(path.name),)]
            for p, n, a in entries
        )
        pieces = [stream[i : i + plen] for i in range(0, len(stream), plen)]
        assert info[b"pieces"] == b"".join(hashlib.sha1(x).digest() for x in pieces)

    if version == "v1":
        assert b"file tree" not in info and b"meta version" not in info
        assert b"piece layers" not in top
        return
    assert info[b"meta version"] == 2
    leaves = v2_leaves(info[b"file tree"])
    if single:
        assert [p for p, _ in leaves] == [(os.fsencode(path.name),)]
    else:
        assert sorted(p for p, _ in leaves) == sorted(files)
    layers = top[b"piece layers"]
    expected_layers = {}
    for p, leaf in leaves:
        data = files[p]
        assert leaf[b"length"] == len(data)
        if not data:
            assert b"pieces root" not in leaf
            continue
        root = merkle_root(block_hashes(data))
        assert leaf[b"pieces root"] == root
        if len(data) > plen:
            layer = [
                merkle_root(block_hashes(data[i : i + plen]), plen // BLOCK_SIZE)
                for i in range(0, len(data), plen)
            ]
            assert file_root(layer, plen) == root
            expected_layers[root] = b"".join(layer)
    assert layers == expected_layers


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("name", sorted(PAYLOADS))
def test_payloads_hash_correctly(payloads: dict[str, Path], name: str, version: str) -> None:
    torrent = create_torrent(payloads[name], version=version)  # type: ignore[arg-type]
    check_torrent(torrent, payloads[name], version, None)


@pytest.mark.parametrize("version", VERSIONS)
def test_explicit_piece_length(payloads: dict[str, Path], version: str) -> None:
    path = payloads["odd_sizes"]
    torrent = create_torrent(path, version=version, piece_length=32 * 1024)  # type: ignore[arg-type]
    check_torrent(torrent, path, version, 32 * 1024)


def test_v1_accepts_multiple_of_16k_and_v2_raises_small_pieces(payloads: dict[str, Path]) -> None:
    path = payloads["with_empty_files"]
    t = bencode.decode(create_torrent(path, version="v1", piece_length=48 * 1024))
    assert t[b"info"][b"piece length"] == 48 * 1024
    t = bencode.decode(create_torrent(path, version="hybrid", piece_length=4096))
    assert t[b"info"][b"piece length"] == BLOCK_SIZE  # as libtorrent does


@pytest.mark.parametrize("version", VERSIONS)
def test_streaming_and_task_split_do_not_change_output(
    payloads: dict[str, Path], monkeypatch: pytest.MonkeyPatch, version: str
) -> None:
    """Pieces bigger than the read buffer, many small tasks, one or two threads: same bytes."""
    path = payloads["many_files"]
    args: dict[str, Any] = {"version": version, "piece_length": 128 * 1024, "creation_date": 0}
    reference = create_torrent(path, workers=1, **args)
    monkeypatch.setattr(create, "_CHUNK_BYTES", 32 * 1024)
    monkeypatch.setattr(create, "_TASK_BYTES", 200 * 1024)
    assert create_torrent(path, workers=2, **args) == reference
    assert create_torrent(path, workers=3, **args) == reference
    check_torrent(reference, path, version, 128 * 1024)


def test_auto_piece_length_table() -> None:
    assert auto_piece_length(1) == 16 * 1024
    assert auto_piece_length(2_684_355) == 16 * 1024
    assert auto_piece_length(2_684_356) == 32 * 1024
    assert auto_piece_length(1 << 30) == 512 * 1024
    assert auto_piece_length(2_748_779_070) == 1024 * 1024
    assert auto_piece_length(10**15) == 16 * 1024 * 1024


def test_top_level_keys_and_options(payloads: dict[str, Path]) -> None:
    torrent = create_torrent(
        payloads["single_file"],
        trackers=[["http://a/1", "http://b/1"], "udp://c/1"],
        web_seeds=["http://ws/"],
        private=True,
        comment="hello",
        source="SRC",
        created_by="tester",
        creation_date=1_700_000_000,
    )
    top = bencode.decode(torrent)
    assert top[b"announce"] == b"http://a/1"
    assert top[b"announce-list"] == [[b"http://a/1", b"http://b/1"], [b"udp://c/1"]]
    assert top[b"url-list"] == b"http://ws/"
    assert top[b"comment"] == b"hello"
    assert top[b"created by"] == b"tester"
    assert top[b"creation date"] == 1_700_000_000
    assert top[b"info"][b"private"] == 1
    assert top[b"info"][b"source"] == b"SRC"


def test_minimal_top_level(payloads: dict[str, Path]) -> None:
    top = bencode.decode(
        create_torrent(
            payloads["single_file"],
            trackers=["http://only/1"],
            web_seeds=["http://w/1", "http://w/2"],
            created_by=None,
            creation_date=0,
        )
    )
    assert top[b"announce"] == b"http://only/1"
    assert b"announce-list" not in top  # one tracker: no list, as libtorrent writes it
    assert top[b"url-list"] == [b"http://w/1", b"http://w/2"]
    assert set(top) == {b"announce", b"info", b"piece layers", b"url-list"}
    assert b"private" not in top[b"info"] and b"source" not in top[b"info"]


def test_default_creation_date_is_now(payloads: dict[str, Path]) -> None:
    import time

    before = int(time.time())
    top = bencode.decode(create_torrent(payloads["with_empty_files"]))
    assert before <= top[b"creation date"] <= int(time.time())
    assert top[b"created by"] == b"ccBitTorrent/0.1.0"
    assert top[b"info"][b"meta version"] == 2 and b"pieces" in top[b"info"]  # hybrid default


@pytest.mark.parametrize("version", VERSIONS)
def test_progress_is_monotonic_and_reaches_total(payloads: dict[str, Path], version: str) -> None:
    calls: list[tuple[int, int]] = []
    path = payloads["many_files"]
    create_torrent(path, version=version, progress=lambda d, t: calls.append((d, t)))  # type: ignore[arg-type]
    total = sum(len(d) for d in disk_files(path).values())
    assert calls[0] == (0, total)
    assert calls[-1] == (total, total)
    assert all(t == total for _, t in calls)
    assert all(a <= b for (a, _), (b, _) in itertools.pairwise(calls))
    assert len(calls) > 2


def test_executable_attr(tmp_path: Path) -> None:
    base = tmp_path / "x"
    base.mkdir()
    (base / "run").write_bytes(b"a" * 100)
    (base / "run").chmod(0o755)
    (base / "data").write_bytes(b"b" * 100)
    info = bencode.decode(create_torrent(base, version="hybrid"))[b"info"]
    attrs = {tuple(f[b"path"]): f.get(b"attr") for f in info[b"files"]}
    assert attrs[(b"run",)] == b"x" and attrs[(b"data",)] is None
    assert info[b"file tree"][b"run"][b""][b"attr"] == b"x"
    assert b"attr" not in info[b"file tree"][b"data"][b""]
    single = bencode.decode(create_torrent(base / "run", version="v1"))[b"info"]
    assert single[b"attr"] == b"x"


def test_symlinks_followed_only_inside_tree(tmp_path: Path) -> None:
    outside = tmp_path / "secret.txt"
    outside.write_bytes(b"do not share")
    base = tmp_path / "share"
    (base / "sub").mkdir(parents=True)
    (base / "sub" / "real.bin").write_bytes(b"r" * 1000)
    (base / "inside").symlink_to("sub/real.bin")
    (base / "outside").symlink_to(outside)
    (base / "dangling").symlink_to("nowhere")
    (base / "sub" / "loop").symlink_to("..")  # a cycle back to the root
    (base / "dirlink").symlink_to("sub")  # a directory inside: walked once more
    _, files, is_dir = list_source_files(base)
    assert is_dir
    assert sorted(f.path for f in files) == [
        (b"dirlink", b"real.bin"),
        (b"inside",),
        (b"sub", b"real.bin"),
    ]


def test_root_may_be_a_symlink(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "f").write_bytes(b"x" * 10)
    (tmp_path / "alias").symlink_to("real")
    info = bencode.decode(create_torrent(tmp_path / "alias", version="v1"))[b"info"]
    assert info[b"name"] == b"alias"
    assert info[b"files"] == [{b"length": 10, b"path": [b"f"]}]


def test_libtorrent_computes_the_same_infohashes(payloads: dict[str, Path]) -> None:
    lt = pytest.importorskip("libtorrent")
    torrent = create_torrent(payloads["unicode_names"], version="hybrid")
    ih = lt.torrent_info(torrent).info_hashes()
    raw = info_bytes(torrent)
    assert str(ih.v1) == hashlib.sha1(raw).hexdigest()
    assert str(ih.v2) == hashlib.sha256(raw).hexdigest()


def test_thousands_of_small_files_do_not_exhaust_file_descriptors(
    tmp_path: Path,
) -> None:
    import resource

    base = tmp_path / "tiny"
    base.mkdir()
    for i in range(600):
        (base / f"{i:04d}").write_bytes(i.to_bytes(2, "big") * 7)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(128, hard), hard))
    try:
        torrents = {v: create_torrent(base, version=v, workers=2) for v in VERSIONS}  # type: ignore[arg-type]
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    for version, torrent in torrents.items():
        check_torrent(torrent, base, version, None)


# ---- errors ---------------------------------------------------------------------------------


def test_missing_path(tmp_path: Path) -> None:
    with pytest.raises(CreateError, match="no such file"):
        create_torrent(tmp_path / "nope")


def test_empty_payloads(tmp_path: Path) -> None:
    (tmp_path / "d" / "e").mkdir(parents=True)
    with pytest.raises(CreateError, match="no files"):
        create_torrent(tmp_path / "d")
    (tmp_path / "d" / "zero").write_bytes(b"")
    with pytest.raises(CreateError, match="empty"):
        create_torrent(tmp_path / "d")
    (tmp_path / "z").write_bytes(b"")
    with pytest.raises(CreateError, match="empty"):
        create_torrent(tmp_path / "z")


@pytest.mark.parametrize(
    ("version", "piece_length"),
    [
        ("v1", 0),
        ("v1", -16384),
        ("v1", 20000),
        ("v2", 48 * 1024),
        ("hybrid", 3 * 1024 * 1024),
        ("hybrid", 1 << 30),
    ],
)
def test_bad_piece_length(payloads: dict[str, Path], version: str, piece_length: int) -> None:
    with pytest.raises(CreateError, match="piece length"):
        create_torrent(payloads["single_file"], version=version, piece_length=piece_length)  # type: ignore[arg-type]


def test_too_many_pieces_is_refused_before_hashing(tmp_path: Path) -> None:
    f = tmp_path / "sparse.bin"
    with open(f, "wb") as fh:
        fh.truncate(create.MAX_PIECES * 16 * 1024 + 1)
    calls: list[int] = []
    with pytest.raises(CreateError, match="bigger piece size"):
        create_torrent(
            f, version="v1", piece_length=16 * 1024, progress=lambda d, t: calls.append(d)
        )
    assert calls == []


@pytest.mark.parametrize(
    "kwargs",
    [
        {"version": "v3"},
        {"workers": 0},
        {"trackers": [""]},
        {"trackers": [["http://ok", "  "]]},
        {"web_seeds": [""]},
        {"piece_length": True},
    ],
)
def test_bad_options(payloads: dict[str, Path], kwargs: dict[str, Any]) -> None:
    with pytest.raises(CreateError):
        create_torrent(payloads["single_file"], **kwargs)


def test_unreadable_special_file_is_refused(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(CreateError, match="not a regular file"):
        create_torrent(fifo)


def test_file_shrinking_during_hashing(tmp_path: Path) -> None:
    f = tmp_path / "f.bin"
    f.write_bytes(os.urandom(100_000))

    def shrink(done: int, total: int) -> None:
        if done == 0:
            with open(f, "r+b") as fh:
                fh.truncate(10)

    with pytest.raises(CreateError, match="shrank"):
        create_torrent(f, progress=shrink)


def test_cancel_event_stops_hashing(tmp_path: Path) -> None:
    f = tmp_path / "big.bin"
    with open(f, "wb") as fh:
        fh.truncate(64 * 1024 * 1024)  # sparse: cheap to make, real to hash
    cancel = threading.Event()
    seen: list[int] = []

    def stop_early(done: int, total: int) -> None:
        seen.append(done)
        if done > 0:
            cancel.set()

    with pytest.raises(CreateError, match="cancelled"):
        create._create(
            f,
            trackers=(),
            piece_length=1 << 20,
            private=False,
            web_seeds=(),
            version="v1",
            comment=None,
            created_by=None,
            creation_date=0,
            source=None,
            progress=stop_early,
            workers=1,
            cancel=cancel,
        )
    assert seen[-1] < 64 * 1024 * 1024


# ---- async ----------------------------------------------------------------------------------


async def test_async_matches_sync_and_reports_on_loop_thread(payloads: dict[str, Path]) -> None:
    path = payloads["odd_sizes"]
    loop_thread = threading.get_ident()
    calls: list[tuple[int, int, int]] = []
    result = await create_torrent_async(
        path, creation_date=0, progress=lambda d, t: calls.append((d, t, threading.get_ident()))
    )
    assert result == create_torrent(path, creation_date=0)
    assert calls and all(tid == loop_thread for _, _, tid in calls)
    assert calls[-1][0] == calls[-1][1]


async def test_async_errors_and_cancellation(tmp_path: Path) -> None:
    with pytest.raises(CreateError):
        await create_torrent_async(tmp_path / "missing")
    f = tmp_path / "big.bin"
    with open(f, "wb") as fh:
        fh.truncate(4 * 1024 * 1024 * 1024)  # sparse; hashing it all would take seconds
    started = asyncio.Event()
    task = asyncio.ensure_future(
        create_torrent_async(f, workers=1, progress=lambda d, t: started.set())
    )
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # The worker thread notices and stops at its next task instead of hashing 4 GiB.
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    await asyncio.wait_for(loop.shutdown_default_executor(), timeout=2)
    assert loop.time() - t0 < 2


# ---- CLI ------------------------------------------------------------------------------------


def test_parse_size_and_tiers() -> None:
    assert parse_size("256K") == 256 * 1024
    assert parse_size("1M") == 1 << 20
    assert parse_size("4mib") == 4 << 20
    assert parse_size("16384") == 16384
    with pytest.raises(ValueError):
        parse_size("1.5M")
    assert tracker_tiers(("a,b", "c", " , ")) == [["a", "b"], ["c"]]


def test_cli_creates_and_prints_infohashes(payloads: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "out.torrent"
    args = ["create", str(payloads["many_files"]), "-t", "http://a/1,http://b/1", "-t"]
    args += ["http://c/1", "-p", "64K", "--private", "-w", "http://ws/", "--comment", "hi"]
    args += ["--source", "S", "--no-date", "-o", str(out)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    torrent = out.read_bytes()
    raw = info_bytes(torrent)
    assert f"infohash v1: {hashlib.sha1(raw).hexdigest()}" in result.output
    assert f"infohash v2: {hashlib.sha256(raw).hexdigest()}" in result.output
    top = bencode.decode(torrent)
    assert top[b"announce-list"] == [[b"http://a/1", b"http://b/1"], [b"http://c/1"]]
    assert top[b"info"][b"piece length"] == 65536
    assert top[b"info"][b"private"] == 1 and top[b"info"][b"source"] == b"S"
    assert b"creation date" not in top
    assert torrent == create_torrent(
        payloads["many_files"],
        trackers=[["http://a/1", "http://b/1"], ["http://c/1"]],
        piece_length=65536,
        private=True,
        web_seeds=["http://ws/"],
        comment="hi",
        source="S",
        creation_date=0,
    )


@pytest.mark.parametrize(
    ("flag", "has_v1", "has_v2"), [("--v1", True, False), ("--v2", False, True)]
)
def test_cli_version_flags(
    payloads: dict[str, Path], tmp_path: Path, flag: str, has_v1: bool, has_v2: bool
) -> None:
    out = tmp_path / "o.torrent"
    result = CliRunner().invoke(cli, ["create", str(payloads["single_file"]), flag, "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert ("infohash v1" in result.output) == has_v1
    assert ("infohash v2" in result.output) == has_v2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["create", "{missing}"], "no such file"),
        (["create", "{file}", "-p", "1Q"], "not a size"),
        (["create", "{file}", "-p", "100K", "--v2"], "power of two"),
        (["create", "{file}", "-o", "{existing}"], "already exists"),
        (["create", "{file}", "-o", "{nodir}"], "does not exist"),
    ],
)
def test_cli_errors_exit_2(
    payloads: dict[str, Path], tmp_path: Path, args: list[str], message: str
) -> None:
    existing = tmp_path / "existing.torrent"
    existing.write_bytes(b"keep me")
    names = {
        "missing": str(tmp_path / "missing"),
        "file": str(payloads["single_file"]),
        "existing": str(existing),
        "nodir": str(tmp_path / "no" / "such" / "x.torrent"),
    }
    result = CliRunner().invoke(cli, [a.format(**names) for a in args])
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert existing.read_bytes() == b"keep me"


def test_cli_default_output_name_and_force(
    payloads: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    args = ["create", str(payloads["single_file"]), "--v1"]
    assert runner.invoke(cli, args).exit_code == 0
    assert (tmp_path / "single.bin.torrent").is_file()
    assert runner.invoke(cli, args).exit_code == 2
    assert runner.invoke(cli, [*args, "--force"]).exit_code == 0

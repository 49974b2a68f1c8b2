"""``ccbt create`` against reference torrent makers: libtorrent (PyPI wheel) and Debian mktorrent.

The claim under test is interchangeability: for the same files and options our info dictionary
is the one libtorrent builds, byte for byte, so the v1 and v2 infohashes agree and both tools'
users end up in one swarm; and libtorrent, given our torrent and the payload, verifies every
piece. mktorrent covers the simplest case (single-file v1) with a second, independent
implementation, including BEP 12 tiers written from the command line.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from ccbt_engine import bencode
from ccbt_engine.cli.main import cli
from ccbt_engine.create import create_torrent
from tests.payloads import PAYLOADS

lt = pytest.importorskip("libtorrent")

pytestmark = [
    pytest.mark.interop,
    # add_files/create_torrent(file_storage) are deprecated in libtorrent 2.1 but are what its
    # users (and older wheels) call; list_files() gives the same result.
    pytest.mark.filterwarnings("ignore:.*deprecated:DeprecationWarning"),
]

VERSIONS = ("v1", "v2", "hybrid")


@pytest.fixture(scope="module")
def payloads(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("payloads")
    return {name: build(root) for name, build in PAYLOADS.items()}


def lt_create(path: Path, version: str, piece_length: int = 0, private: bool = False) -> bytes:
    """What libtorrent makes of ``path`` with the equivalent options (0 = automatic pieces)."""
    fs = lt.file_storage()
    lt.add_files(fs, str(path))
    flags = {"v1": lt.create_torrent.v1_only, "v2": lt.create_torrent.v2_only, "hybrid": 0}
    t = lt.create_torrent(fs, piece_length, flags[version])
    t.set_priv(private)
    lt.set_piece_hashes(t, str(path.parent))
    return bytes(lt.bencode(t.generate()))


def raw_info(torrent: bytes) -> bytes:
    _, spans = bencode.decode_with_spans(torrent)
    start, end = spans[b"info"]
    return torrent[start:end]


def hashes(ti: Any) -> tuple[str, str]:
    ih = ti.info_hashes()
    return (
        str(ih.v1) if ih.has_v1() else "",
        str(ih.v2) if ih.has_v2() else "",
    )


@pytest.fixture(scope="module")
def session() -> Iterator[Any]:
    ses = lt.session(
        {
            "listen_interfaces": "127.0.0.1:0",
            "enable_dht": False,
            "enable_lsd": False,
            "enable_upnp": False,
            "enable_natpmp": False,
            "alert_mask": lt.alert.category_t.error_notification
            | lt.alert.category_t.status_notification,
        }
    )
    yield ses
    for h in ses.get_torrents():
        ses.remove_torrent(h)


def recheck(ses: Any, torrent: bytes, save_path: Path, timeout: float = 20) -> Any:
    """Add ``torrent`` over its data, force a full recheck, return the status once it is done."""
    params = lt.add_torrent_params()
    params.ti = lt.torrent_info(torrent)
    params.save_path = str(save_path)
    params.flags &= ~lt.torrent_flags.auto_managed
    params.flags &= ~lt.torrent_flags.paused
    handle = ses.add_torrent(params)
    try:
        handle.force_recheck()
        deadline = time.monotonic() + timeout
        while True:
            for alert in ses.pop_alerts():
                if isinstance(alert, lt.torrent_checked_alert) and alert.handle == handle:
                    st = handle.status()
                    if st.state not in (
                        lt.torrent_status.states.checking_files,
                        lt.torrent_status.states.checking_resume_data,
                    ):
                        return st
                if isinstance(alert, lt.torrent_error_alert | lt.file_error_alert):
                    raise AssertionError(f"libtorrent: {alert.message()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"libtorrent did not finish checking in {timeout}s")
            ses.wait_for_alert(50)
    finally:
        ses.remove_torrent(handle)


def assert_seeding(st: Any, torrent: bytes) -> None:
    assert st.errc.value() == 0, st.errc.message()
    assert st.state == lt.torrent_status.states.seeding
    assert st.progress == 1.0
    assert st.num_pieces == lt.torrent_info(torrent).num_pieces()


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("name", sorted(PAYLOADS))
def test_same_infohash_as_libtorrent_and_libtorrent_verifies(
    payloads: dict[str, Path], session: Any, name: str, version: str
) -> None:
    path = payloads[name]
    ours = create_torrent(path, version=version)  # type: ignore[arg-type]
    theirs = lt_create(path, version)

    assert raw_info(ours) == raw_info(theirs)
    ti = lt.torrent_info(ours)
    assert hashes(ti) == hashes(lt.torrent_info(theirs))
    assert ti.info_hashes().has_v1() == (version != "v2")
    assert ti.info_hashes().has_v2() == (version != "v1")
    # piece layers live outside the info dict; libtorrent must accept ours too
    assert bencode.decode(ours).get(b"piece layers") == bencode.decode(theirs).get(b"piece layers")

    assert_seeding(recheck(session, ours, path.parent), ours)


@pytest.mark.parametrize("version", VERSIONS)
def test_libtorrent_rejects_corrupted_data(
    payloads: dict[str, Path], session: Any, tmp_path: Path, version: str
) -> None:
    """Control for the recheck above: one flipped bit costs exactly the piece it is in."""
    data = bytearray(payloads["single_file"].read_bytes())
    copy = tmp_path / "single.bin"
    copy.write_bytes(data)
    ours = create_torrent(copy, version=version, piece_length=256 * 1024)  # type: ignore[arg-type]
    data[300_000] ^= 0x01  # piece 1
    copy.write_bytes(data)
    st = recheck(session, ours, tmp_path)
    total = lt.torrent_info(ours).num_pieces()
    assert st.num_pieces == total - 1
    assert not st.pieces[1]
    assert st.state != lt.torrent_status.states.seeding


@pytest.mark.parametrize("version", VERSIONS)
def test_explicit_piece_size_and_private_match_libtorrent(
    payloads: dict[str, Path], version: str
) -> None:
    path = payloads["odd_sizes"]
    ours = create_torrent(
        path,
        version=version,  # type: ignore[arg-type]
        piece_length=64 * 1024,
        private=True,
        trackers=[["http://127.0.0.1:1/announce"]],
        web_seeds=["http://127.0.0.1:1/ws/"],
    )
    theirs = lt_create(path, version, piece_length=64 * 1024, private=True)
    assert raw_info(ours) == raw_info(theirs)
    assert lt.torrent_info(ours).priv()
    atp = lt.load_torrent_buffer(ours)
    assert list(atp.trackers) == ["http://127.0.0.1:1/announce"]
    assert list(atp.url_seeds) == ["http://127.0.0.1:1/ws/"]


def test_executable_bit_and_symlink_inside_tree_match_libtorrent(tmp_path: Path) -> None:
    base = tmp_path / "attrs"
    (base / "sub").mkdir(parents=True)
    (base / "run.sh").write_bytes(b"#!/bin/sh\n" + bytes(40_000))
    (base / "run.sh").chmod(0o755)
    (base / "sub" / "data.bin").write_bytes(bytes(range(256)) * 300)
    (base / "link").symlink_to("sub/data.bin")
    (base / ".hidden").write_bytes(b"h" * 5000)
    (base / "empty").mkdir()
    for version in VERSIONS:
        ours = create_torrent(base, version=version)  # type: ignore[arg-type]
        assert raw_info(ours) == raw_info(lt_create(base, version)), version


def _mktorrent() -> str:
    exe = shutil.which("mktorrent")
    if exe is None:
        pytest.skip("mktorrent not installed (Debian package 'mktorrent')")
    return exe


@pytest.mark.parametrize("extra", [[], ["-p"], ["-s", "SRC"]], ids=["plain", "private", "source"])
def test_v1_single_file_equals_mktorrent(
    payloads: dict[str, Path], tmp_path: Path, extra: list[str]
) -> None:
    exe = _mktorrent()
    path = payloads["single_file"]
    ref = tmp_path / "mk.torrent"
    trackers = ["-a", "http://127.0.0.1:1/a,http://127.0.0.1:2/a", "-a", "http://127.0.0.1:3/a"]
    subprocess.run(
        [exe, "-l", "18", *trackers, *extra, "-o", str(ref), str(path)],
        check=True,
        capture_output=True,
        timeout=30,
    )
    ours_path = tmp_path / "ours.torrent"
    ccbt_args = ["create", str(path), "--v1", "-p", "256K", "-o", str(ours_path)]
    ccbt_args += ["-t" if a == "-a" else a for a in trackers]
    ccbt_args += {"-p": ["--private"], "-s": ["--source", "SRC"]}.get(extra[0] if extra else "", [])
    result = CliRunner().invoke(cli, ccbt_args)
    assert result.exit_code == 0, result.output
    ref_bytes = ref.read_bytes()
    ours = ours_path.read_bytes()

    assert hashlib.sha1(raw_info(ours)).hexdigest() == hashlib.sha1(raw_info(ref_bytes)).hexdigest()
    assert f"infohash v1: {hashlib.sha1(raw_info(ref_bytes)).hexdigest()}" in result.output
    ref_top = bencode.decode(ref_bytes)
    ours_top = bencode.decode(ours)
    assert ours_top[b"announce"] == ref_top[b"announce"]
    assert ours_top[b"announce-list"] == ref_top[b"announce-list"]

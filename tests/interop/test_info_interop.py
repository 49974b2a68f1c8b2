"""``ccbt info`` agrees with libtorrent on torrents made by libtorrent and by mktorrent.

Each payload from ``tests/payloads.py`` becomes a v1-only, a v2-only and a hybrid torrent made
by libtorrent, and a v1 torrent made by Debian's ``mktorrent``. For every one, what ``ccbt info
--json`` reports (infohashes, name, sizes, piece length and count, files without pads) must equal
what libtorrent's ``torrent_info`` reads from the same file.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from ccbt_engine.cli.main import cli
from tests.payloads import PAYLOADS

pytestmark = [pytest.mark.interop, pytest.mark.filterwarnings("ignore::DeprecationWarning")]

lt = pytest.importorskip("libtorrent")

TRACKER = "http://127.0.0.1:6969/announce"
LT_MODES = ("hybrid", "v1", "v2")


def _lt_flags(mode: str) -> Any:
    """libtorrent's creation flags for a torrent version (hybrid is its default)."""
    return {"v1": lt.create_torrent.v1_only, "v2": lt.create_torrent.v2_only}.get(mode, 0)


@pytest.fixture(scope="module")
def payloads(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("payloads")
    return {name: make(root) for name, make in PAYLOADS.items()}


def _make_lt(payload: Path, mode: str, out: Path) -> Path:
    fs = lt.file_storage()
    lt.add_files(fs, str(payload))
    ct = lt.create_torrent(fs, 0, flags=_lt_flags(mode))
    ct.add_tracker(TRACKER, 0)
    lt.set_piece_hashes(ct, str(payload.parent))
    out.write_bytes(lt.bencode(ct.generate()))
    return out


def _make_mktorrent(payload: Path, out: Path, *extra: str) -> Path:
    exe = shutil.which("mktorrent")
    if exe is None:
        pytest.skip("mktorrent is not installed (apt-get install mktorrent)")
    subprocess.run(
        [exe, "-a", TRACKER, *extra, "-o", str(out), str(payload)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    return out


def _expected(torrent: Path) -> dict[str, Any]:
    """What libtorrent reads from the file, in the shape of ``ccbt info --json``."""
    ti = lt.torrent_info(str(torrent))
    hashes = ti.info_hashes()
    fs = ti.files()
    files = [
        {"path": fs.file_path(i).replace("\\", "/"), "size": fs.file_size(i)}
        for i in range(fs.num_files())
        if not fs.file_flags(i) & lt.file_storage.flag_pad_file
    ]
    return {
        "info_hash_v1": str(hashes.v1) if hashes.has_v1() else None,
        "info_hash_v2": str(hashes.v2) if hashes.has_v2() else None,
        "name": ti.name(),
        "total_size": ti.total_size(),
        "piece_length": ti.piece_length(),
        "num_pieces": ti.num_pieces(),
        "files": files,
        "trackers": [[t.url for t in ti.trackers()]],
    }


def _actual(report: dict[str, Any]) -> dict[str, Any]:
    return {
        "info_hash_v1": report["info_hash_v1"],
        "info_hash_v2": report["info_hash_v2"],
        "name": report["name"],
        "total_size": report["total_size"],
        "piece_length": report["piece_length"],
        "num_pieces": report["num_pieces"],
        "files": [{"path": f["path"], "size": f["size"]} for f in report["files"]],
        "trackers": report["trackers"],
    }


def _info_in_process(torrent: Path) -> dict[str, Any]:
    result = CliRunner().invoke(cli, ["info", "--json", str(torrent)])
    assert result.exit_code == 0, result.output
    report: dict[str, Any] = json.loads(result.stdout)
    return report


def _ccbt_exe() -> Path:
    exe = Path(sys.executable).parent / "ccbt"
    if not exe.exists():
        pytest.skip("ccbt console script not installed in this environment")
    return exe


@pytest.mark.parametrize("mode", LT_MODES)
@pytest.mark.parametrize("payload", sorted(PAYLOADS))
def test_libtorrent_made(
    payloads: dict[str, Path], tmp_path: Path, payload: str, mode: str
) -> None:
    torrent = _make_lt(payloads[payload], mode, tmp_path / f"{payload}-{mode}.torrent")
    report = _info_in_process(torrent)
    assert _actual(report) == _expected(torrent)
    assert report["version"] == mode
    assert report["content_size"] == sum(f["size"] for f in report["files"])


@pytest.mark.parametrize("payload", sorted(PAYLOADS))
def test_mktorrent_made(payloads: dict[str, Path], tmp_path: Path, payload: str) -> None:
    torrent = _make_mktorrent(payloads[payload], tmp_path / f"{payload}-mk.torrent")
    report = _info_in_process(torrent)
    assert _actual(report) == _expected(torrent)
    assert report["version"] == "v1"


def test_mktorrent_private_web_seed_comment(payloads: dict[str, Path], tmp_path: Path) -> None:
    extra = ("-p", "-l", "15", "-w", "http://127.0.0.1:8080/seed/", "-c", "a comment")
    torrent = _make_mktorrent(payloads["many_files"], tmp_path / "p.torrent", *extra)
    report = _info_in_process(torrent)
    assert _actual(report) == _expected(torrent)
    ti = lt.torrent_info(str(torrent))
    assert report["private"] is ti.priv() is True
    assert report["piece_length"] == 32768
    assert report["web_seeds"] == [ws["url"] for ws in ti.web_seeds()]
    assert report["comment"] == ti.comment() == "a comment"


@pytest.mark.parametrize("maker", ["libtorrent-hybrid", "mktorrent"])
def test_console_script(payloads: dict[str, Path], tmp_path: Path, maker: str) -> None:
    """The installed ``ccbt`` command, in its own process, reports the same."""
    exe = _ccbt_exe()
    payload = payloads["unicode_names"]
    if maker == "mktorrent":
        torrent = _make_mktorrent(payload, tmp_path / "u.torrent")
    else:
        torrent = _make_lt(payload, "hybrid", tmp_path / "u.torrent")
    proc = subprocess.run(
        [str(exe), "info", "--json", str(torrent)], capture_output=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stderr.decode()
    report = json.loads(proc.stdout)
    assert _actual(report) == _expected(torrent)
    # the human-readable form names the same torrent
    proc = subprocess.run([str(exe), "info", str(torrent)], capture_output=True, timeout=60)
    assert proc.returncode == 0
    text = proc.stdout.decode("utf-8")
    assert report["name"] in text
    assert report["info_hash_v1"] in text


def test_console_script_errors_exit_2_without_traceback(tmp_path: Path) -> None:
    exe = _ccbt_exe()
    bad = tmp_path / "bad.torrent"
    bad.write_bytes(b"d4:infod4:name1:xee")
    for arg in [str(bad), str(tmp_path / "missing.torrent"), "magnet:?xt=urn:btih:nothex"]:
        proc = subprocess.run([str(exe), "info", arg], capture_output=True, timeout=60)
        assert proc.returncode == 2, arg
        assert b"Traceback" not in proc.stderr
        assert proc.stderr.startswith(b"Error: ")


def test_magnet_from_ccbt_is_understood_by_libtorrent(
    payloads: dict[str, Path], tmp_path: Path
) -> None:
    torrent = _make_lt(payloads["odd_sizes"], "hybrid", tmp_path / "o.torrent")
    report = _info_in_process(torrent)
    params = lt.parse_magnet_uri(report["magnet"])
    assert str(params.info_hashes.v1) == report["info_hash_v1"]
    assert str(params.info_hashes.v2) == report["info_hash_v2"]
    assert params.name == report["name"]
    assert list(params.trackers) == [TRACKER]

"""The PyInstaller bundle really works: what a user double-clicks, not the source tree.

Builds build_app.spec once per session (conftest ``bundle``), then runs the frozen executables:
the GUI offscreen with a magnet argument until its main window is up, a second launch that hands
another magnet to it over the single-instance socket, the ``ccbt`` CLI's lazily imported
subcommands, and on Debian-family Linux the .deb made from this bundle installed for real.
"""

from __future__ import annotations

import json
import os
import plistlib
import signal
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from tests.packaging.support import (
    DESKTOP_FILE,
    EXE_SUFFIX,
    MAGNET_1,
    MAGNET_2,
    PACKAGE,
    app_env,
    can_install_debs,
    clean_xdg_env,
    dpkg,
    package_linux,
    wait_for,
    xdg_default,
)

# slow, and the first test also pays for the PyInstaller build (session fixture) in its setup
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]


def _internal(bundle: Path) -> Path:
    return bundle / "_internal"


def _qt_dir(bundle: Path, name: str) -> Path:
    """PySide6's plugins/translations folder (Qt/ subfolder on Linux and macOS, not Windows)."""
    found = sorted(p for p in (_internal(bundle) / "PySide6").rglob(name) if p.is_dir())
    assert found, f"no {name} folder in the bundle"
    return found[0]


def test_bundle_contains_qt_plugins_themes_charts_icons_translations(bundle: Path) -> None:
    for exe in ("ccBitTorrent", "ccbt"):
        assert (bundle / f"{exe}{EXE_SUFFIX}").is_file(), exe
    plugins = _qt_dir(bundle, "plugins")
    platforms = {p.name.split(".")[0] for p in (plugins / "platforms").iterdir()}
    wanted = {
        "linux": {"libqoffscreen", "libqxcb", "libqwayland"},
        "win32": {"qoffscreen", "qwindows"},
        "darwin": {"libqoffscreen", "libqcocoa"},
    }[sys.platform]
    assert wanted <= platforms, platforms
    for sub in ("imageformats", "iconengines"):
        assert any((plugins / sub).iterdir()), sub
    assert any(p.name.startswith("qtbase_") for p in _qt_dir(bundle, "translations").iterdir())
    material = _internal(bundle) / "qt_material"
    assert (material / "material.qss.template").is_file()
    assert len(list((material / "themes").glob("*.xml"))) > 5
    assert any((material / "fonts").rglob("*.ttf"))
    assert any((_internal(bundle) / "pyqtgraph").rglob("*.png"))  # pyqtgraph's own icons
    share = _internal(bundle) / "share"
    assert (share / "icons" / "ccbittorrent-256.png").is_file()
    assert (share / "icons" / "ccbittorrent.ico").is_file()
    assert (share / DESKTOP_FILE).is_file()
    # test-only packages from the venv stay out of the product
    for unwanted in ("libtorrent", "pytest", "hypothesis", "tkinter"):
        assert not list(_internal(bundle).glob(f"{unwanted}*")), unwanted


def test_cli_inside_the_bundle_runs_lazily_imported_subcommands(
    bundle: Path, tmp_path: Path
) -> None:
    ccbt = str(bundle / f"ccbt{EXE_SUFFIX}")
    version = subprocess.run([ccbt, "--version"], capture_output=True, text=True, timeout=60)
    assert version.returncode == 0 and "ccbt, version" in version.stdout, version.stderr
    payload = tmp_path / "payload.bin"
    payload.write_bytes(os.urandom(200_000))
    torrent = tmp_path / "payload.torrent"
    made = subprocess.run(
        [ccbt, "create", str(payload), "-o", str(torrent), "--no-date"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert made.returncode == 0, made.stderr
    info = subprocess.run(
        [ccbt, "info", "--json", str(torrent)], capture_output=True, text=True, timeout=60
    )
    assert info.returncode == 0, info.stderr
    assert json.loads(info.stdout)["total_size"] == 200_000


def test_gui_opens_magnet_and_takes_a_second_one_from_a_new_launch(
    bundle: Path, tmp_path: Path
) -> None:
    gui = str(bundle / f"ccBitTorrent{EXE_SUFFIX}")
    env = app_env(tmp_path, f"ccbt-pkg-{os.getpid()}-{tmp_path.name}")
    first = subprocess.Popen(
        [gui, "--quit-after", "120000", MAGNET_1],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    out: list[str] = []
    try:
        assert first.stdout is not None
        wait_for(first.stdout, "main window shown", 60, out)
        wait_for(first.stdout, f"magnet received: {MAGNET_1}", 30, out)
        second = subprocess.run(
            [gui, MAGNET_2], env=env, capture_output=True, text=True, timeout=60
        )
        assert second.returncode == 0, second.stderr
        assert "handed over to the running instance" in second.stdout
        assert "main window shown" not in second.stdout
        wait_for(first.stdout, f"magnet received: {MAGNET_2}", 30, out)
        if sys.platform != "win32":  # Windows has no SIGTERM to quit cleanly with
            first.send_signal(signal.SIGTERM)
            rest, err = first.communicate(timeout=60)
            assert first.returncode == 0, err
            assert "engine stopped" in rest
            assert "Traceback" not in err, err
    finally:
        if first.poll() is None:
            first.kill()
            first.wait(30)


@pytest.mark.skipif(sys.platform != "darwin", reason="macOS app bundle only")
def test_macos_app_declares_magnet_and_torrent(bundle: Path) -> None:
    with (bundle.parent / "ccBitTorrent.app" / "Contents" / "Info.plist").open("rb") as f:
        plist = plistlib.load(f)
    assert plist["CFBundleURLTypes"][0]["CFBundleURLSchemes"] == ["magnet"]
    assert plist["CFBundleDocumentTypes"][0]["CFBundleTypeExtensions"] == ["torrent"]


@pytest.mark.skipif(sys.platform != "linux", reason="Linux packages")
def test_linux_packages_of_the_real_bundle(bundle: Path, tmp_path: Path) -> None:
    files = package_linux(bundle, tmp_path / "out")
    tarball = next(p for p in files if p.name.endswith(".tar.gz"))
    deb = next(p for p in files if p.suffix == ".deb")

    with tarfile.open(tarball) as tar:
        tar.extractall(tmp_path / "unpacked", filter="tar")
    (appdir,) = (tmp_path / "unpacked").iterdir()
    _quick_start(appdir / "AppRun", tmp_path / "tar-run")

    reason = can_install_debs()
    if reason:
        pytest.skip(f"tarball checked; .deb install skipped: {reason}")
    try:
        proc = dpkg("-i", str(deb))
        assert proc.returncode == 0, proc.stdout + proc.stderr
        _quick_start(Path("/usr/bin/ccbittorrent"), tmp_path / "deb-run")
        version = subprocess.run(["/usr/bin/ccbt", "--version"], capture_output=True, text=True)
        assert "ccbt, version" in version.stdout, version.stderr
        env = clean_xdg_env(tmp_path / "user")
        assert xdg_default("x-scheme-handler/magnet", env) == DESKTOP_FILE
        assert xdg_default("application/x-bittorrent", env) == DESKTOP_FILE
    finally:
        dpkg("--purge", PACKAGE)
    assert not Path("/opt/ccbittorrent").exists()


def _quick_start(exe: Path, tmp: Path) -> None:
    """Start, see the window and the magnet, quit on its own: the installed launcher works."""
    env = app_env(tmp, f"ccbt-pkg-q-{os.getpid()}-{tmp.name}")
    proc = subprocess.run(
        [str(exe), "--quit-after", "1500", MAGNET_1],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "main window shown" in proc.stdout
    assert f"magnet received: {MAGNET_1}" in proc.stdout
    assert "engine stopped" in proc.stdout

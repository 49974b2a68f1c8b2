"""installers/linux/package.sh: the tarball layout and a real ``dpkg -i`` of the .deb.

These run in seconds because the bundle is a stand-in (two shell scripts in place of the
PyInstaller executables): what is under test is the packaging, not PyInstaller. The .deb is
installed for real into this machine (root; CI is a throwaway machine) and purged in ``finally``;
test_bundle.py does the same with the real bundle.
"""

from __future__ import annotations

import configparser
import shutil
import subprocess
import tarfile
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.packaging.support import (
    DESKTOP_FILE,
    PACKAGE,
    ROOT,
    can_install_debs,
    clean_xdg_env,
    dpkg,
    dpkg_status,
    package_linux,
    xdg_default,
)

pytestmark = pytest.mark.skipif(
    shutil.which("dpkg-deb") is None, reason="building a .deb needs dpkg-deb (Debian family)"
)

MIMES = ("x-scheme-handler/magnet", "application/x-bittorrent")
SYSTEM_LIST = Path("/etc/xdg/mimeapps.list")


def _icon_name() -> str:
    entry = configparser.ConfigParser(interpolation=None)
    entry.read(ROOT / "resources" / DESKTOP_FILE)
    return entry["Desktop Entry"]["Icon"]


@pytest.fixture(scope="module")
def fake_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    bundle = tmp_path_factory.mktemp("fake") / "ccBitTorrent"
    (bundle / "_internal").mkdir(parents=True)
    for name in ("ccBitTorrent", "ccbt"):
        exe = bundle / name
        exe.write_text(f'#!/bin/sh\necho "{name} ran with: $*"\n')
        exe.chmod(0o755)
    (bundle / "_internal" / "data.txt").write_text("payload\n")
    return bundle


@pytest.fixture(scope="module")
def packages(fake_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("out")
    files = package_linux(fake_bundle, out)
    by_kind = {p.suffix if p.suffix == ".deb" else ".tar.gz": p for p in files}
    assert set(by_kind) == {".deb", ".tar.gz"}, files
    return by_kind


def test_tarball_is_an_appdir(packages: dict[str, Path], tmp_path: Path) -> None:
    with tarfile.open(packages[".tar.gz"]) as tar:
        assert all(m.uid == 0 and m.gid == 0 for m in tar.getmembers())
        tar.extractall(tmp_path, filter="tar")
    (appdir,) = tmp_path.iterdir()
    icon = _icon_name()
    for name in ("AppRun", DESKTOP_FILE, f"{icon}.png", ".DirIcon", "ccbt", "_internal/data.txt"):
        assert (appdir / name).exists(), name
    assert (appdir / "usr/share/icons/hicolor/scalable/apps" / f"{icon}.svg").exists()
    # AppRun finds the GUI next to itself wherever the folder was unpacked, even via a symlink
    link = tmp_path / "launcher"
    link.symlink_to(appdir / "AppRun")
    proc = subprocess.run([str(link), "magnet:?x"], capture_output=True, text=True, timeout=30)
    assert proc.stdout.strip() == "ccBitTorrent ran with: magnet:?x"


def test_deb_contents_and_metadata(packages: dict[str, Path]) -> None:
    deb = packages[".deb"]
    listing = subprocess.run(
        ["dpkg-deb", "-c", str(deb)], capture_output=True, text=True, check=True
    ).stdout
    icon = _icon_name()
    for path in (
        "./opt/ccbittorrent/ccBitTorrent",
        "./opt/ccbittorrent/_internal/data.txt",
        "./usr/bin/ccbittorrent -> /opt/ccbittorrent/ccBitTorrent",
        "./usr/bin/ccbt -> /opt/ccbittorrent/ccbt",
        f"./usr/share/applications/{DESKTOP_FILE}",
        f"./usr/share/icons/hicolor/256x256/apps/{icon}.png",
        f"./usr/share/icons/hicolor/scalable/apps/{icon}.svg",
        "./usr/share/metainfo/ccbittorrent.metainfo.xml",
    ):
        assert path in listing, path
    assert "1024x1024" not in listing  # not a hicolor size
    assert " root/root " in listing.splitlines()[0]
    field = subprocess.run(
        ["dpkg-deb", "-f", str(deb), "Package", "Version", "Depends"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert f"Package: {PACKAGE}" in field
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert f"Version: {version}" in field
    assert "Depends: libc6 (>= " in field


@pytest.fixture
def installed_deb(packages: dict[str, Path]) -> Iterator[Path]:
    reason = can_install_debs()
    if reason:
        pytest.skip(reason)
    had_system_list = SYSTEM_LIST.exists()
    before = SYSTEM_LIST.read_text() if had_system_list else None
    try:
        proc = dpkg("-i", str(packages[".deb"]))
        assert proc.returncode == 0, proc.stdout + proc.stderr
        yield packages[".deb"]
    finally:
        dpkg("--purge", PACKAGE)
        # purge must have restored the administrator-level defaults exactly
        assert (SYSTEM_LIST.read_text() if SYSTEM_LIST.exists() else None) == before


def test_deb_installs_and_registers_magnet_handler(installed_deb: Path, tmp_path: Path) -> None:
    assert dpkg_status() == "install ok installed"
    assert Path("/opt/ccbittorrent/_internal/data.txt").read_text() == "payload\n"
    run = subprocess.run(["ccbittorrent", "magnet:?y"], capture_output=True, text=True)
    assert run.stdout.strip() == "ccBitTorrent ran with: magnet:?y"  # /usr/bin link on PATH
    assert Path("/usr/share/applications", DESKTOP_FILE).is_file()
    # a user with no preferences of their own gets ours through the system-wide default
    env = clean_xdg_env(tmp_path)
    for mime in MIMES:
        assert xdg_default(mime, env) == DESKTOP_FILE, mime
    # ... and a user's own choice (of an installed application) still wins
    other = tmp_path / ".local" / "share" / "applications" / "other.desktop"
    other.parent.mkdir(parents=True)
    # (xdg-mime skips handlers whose Exec program is not installed, hence a real one: true)
    other.write_text("[Desktop Entry]\nType=Application\nName=Other\nExec=true %U\n")
    user_list = tmp_path / ".config" / "mimeapps.list"
    user_list.parent.mkdir(parents=True)
    user_list.write_text("[Default Applications]\nx-scheme-handler/magnet=other.desktop\n")
    assert xdg_default("x-scheme-handler/magnet", env) == "other.desktop"


def test_deb_purge_removes_everything(packages: dict[str, Path], tmp_path: Path) -> None:
    reason = can_install_debs()
    if reason:
        pytest.skip(reason)
    had = SYSTEM_LIST.exists()
    before = SYSTEM_LIST.read_text() if had else None
    try:
        assert dpkg("-i", str(packages[".deb"])).returncode == 0
    finally:
        proc = dpkg("--purge", PACKAGE)
    assert proc.returncode == 0, proc.stderr
    assert dpkg_status() is None or "not-installed" in (dpkg_status() or "")
    assert not Path("/opt/ccbittorrent").exists()
    assert not Path("/usr/bin/ccbittorrent").exists()
    assert not Path("/usr/share/applications", DESKTOP_FILE).exists()
    assert (SYSTEM_LIST.read_text() if SYSTEM_LIST.exists() else None) == before
    assert xdg_default("x-scheme-handler/magnet", clean_xdg_env(tmp_path)) != DESKTOP_FILE


def test_deb_keeps_an_administrators_other_default(packages: dict[str, Path]) -> None:
    reason = can_install_debs()
    if reason:
        pytest.skip(reason)
    if SYSTEM_LIST.exists():
        pytest.skip(f"{SYSTEM_LIST} exists here; not editing a real administrator setting")
    SYSTEM_LIST.write_text("[Default Applications]\nx-scheme-handler/magnet=admin.desktop\n")
    try:
        assert dpkg("-i", str(packages[".deb"])).returncode == 0
        text = SYSTEM_LIST.read_text()
        assert "x-scheme-handler/magnet=admin.desktop" in text
        assert f"x-scheme-handler/magnet={DESKTOP_FILE}" not in text
        assert f"application/x-bittorrent={DESKTOP_FILE}" in text
    finally:
        dpkg("--purge", PACKAGE)
        after = SYSTEM_LIST.read_text()
        SYSTEM_LIST.unlink()
    assert after == "[Default Applications]\nx-scheme-handler/magnet=admin.desktop\n"

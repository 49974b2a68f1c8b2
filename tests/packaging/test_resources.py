"""The checked-in packaging resources are complete, well-formed and agree with the GUI's code.

Icons: every PNG has the size its name says; the .ico and .icns are exactly what
scripts/make_icons.py builds from those PNGs (so they cannot go stale when the PNGs change).
Desktop entry, AppStream metainfo, macOS Info.plist and the Inno Setup registry section are
compared with ccbt_gui.platform, the GUI's own registration code.
"""

from __future__ import annotations

import configparser
import importlib.util
import plistlib
import re
import shutil
import struct
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from types import ModuleType

import pytest

from ccbt_gui.platform import windows, xdg
from tests.packaging.support import DESKTOP_FILE, ROOT

RES = ROOT / "resources"
ICONS = RES / "icons"


def _load(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module
    spec.loader.exec_module(module)
    return module


make_icons = _load(ROOT / "scripts" / "make_icons.py")
make_desktop_file = _load(ROOT / "scripts" / "make_desktop_file.py")
info_plist = _load(ROOT / "installers" / "macos" / "info_plist.py")


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def _pngs() -> dict[int, bytes]:
    return {s: (ICONS / make_icons.png_name(s)).read_bytes() for s in make_icons.PNG_SIZES}


def test_svg_source_and_every_png_size() -> None:
    root = ET.parse(ICONS / "ccbittorrent.svg").getroot()
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    for size, data in _pngs().items():
        assert _png_size(data) == (size, size)


def test_ico_indexes_the_checked_in_pngs() -> None:
    data = (ICONS / "ccbittorrent.ico").read_bytes()
    pngs = _pngs()
    assert data == make_icons.build_ico({s: pngs[s] for s in make_icons.ICO_SIZES})
    reserved, kind, count = struct.unpack("<HHH", data[:6])
    assert (reserved, kind, count) == (0, 1, len(make_icons.ICO_SIZES))
    for i in range(count):
        w, h, _c, _r, planes, bpp, size, offset = struct.unpack(
            "<BBBBHHII", data[6 + 16 * i : 22 + 16 * i]
        )
        png = data[offset : offset + size]
        assert _png_size(png) == (w or 256, h or 256) and planes == 1 and bpp == 32


def test_icns_indexes_the_checked_in_pngs() -> None:
    data = (ICONS / "ccbittorrent.icns").read_bytes()
    assert data == make_icons.build_icns(_pngs())
    assert data[:4] == b"icns" and struct.unpack(">I", data[4:8])[0] == len(data)
    seen, pos = {}, 8
    while pos < len(data):
        kind, length = data[pos : pos + 4], struct.unpack(">I", data[pos + 4 : pos + 8])[0]
        seen[kind] = _png_size(data[pos + 8 : pos + length])[0]
        pos += length
    assert pos == len(data)
    assert seen == {**{k: s for s, k in make_icons.ICNS_TYPES.items()}, b"ic10": 1024}


def test_desktop_file_is_the_guis_entry_for_the_packaged_launcher() -> None:
    text = (RES / DESKTOP_FILE).read_text(encoding="utf-8")
    assert text == make_desktop_file.expected_text()
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(text)
    entry = parser["Desktop Entry"]
    assert entry["Exec"] == "ccbittorrent %U"
    assert entry["MimeType"] == "x-scheme-handler/magnet;application/x-bittorrent;"
    assert tuple(entry["MimeType"].rstrip(";").split(";")) == xdg.MIME_TYPES
    validate = shutil.which("desktop-file-validate")
    if validate:  # desktop-file-utils is in the dist system deps; plain `make test` may lack it
        proc = subprocess.run([validate, str(RES / DESKTOP_FILE)], capture_output=True, text=True)
        assert proc.returncode == 0 and not proc.stdout.strip(), proc.stdout


def test_appstream_metainfo() -> None:
    path = RES / "ccbittorrent.metainfo.xml"
    root = ET.parse(path).getroot()
    assert root.tag == "component" and root.get("type") == "desktop-application"
    assert root.findtext("launchable") == DESKTOP_FILE
    assert root.findtext("name") == "ccBitTorrent"
    media = [e.text for e in root.iter("mediatype")]
    assert tuple(media) == xdg.MIME_TYPES
    version = re.search(r'^version = "(.+)"', (ROOT / "pyproject.toml").read_text(), re.M)
    assert version is not None
    assert version.group(1) in [r.get("version") for r in root.iter("release")]
    validate = shutil.which("appstreamcli")
    if validate:
        proc = subprocess.run(
            [validate, "validate", "--no-net", str(path)], capture_output=True, text=True
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr


def test_macos_info_plist_declares_magnet_and_torrent() -> None:
    plist = info_plist.info_plist("1.2.3")
    plistlib.loads(plistlib.dumps(plist))  # every value is plist-serialisable
    assert plist["CFBundleURLTypes"][0]["CFBundleURLSchemes"] == ["magnet"]
    doc = plist["CFBundleDocumentTypes"][0]
    assert doc["CFBundleTypeExtensions"] == ["torrent"]
    assert doc["CFBundleTypeMIMETypes"] == ["application/x-bittorrent"]
    assert plist["CFBundleShortVersionString"] == "1.2.3"
    assert plist["CFBundleIdentifier"] == info_plist.BUNDLE_ID


def _inno_registry() -> list[dict[str, str]]:
    """The [Registry] entries of the .iss, preprocessor defines expanded, "" unescaped."""
    text = (ROOT / "installers" / "windows" / "ccbittorrent.iss").read_text()
    defines = dict(re.findall(r'^#define (\w+) "([^"]*)"', text, re.M))
    section = text.split("[Registry]", 1)[1].split("\n[", 1)[0]
    entries = []
    for line in section.splitlines():
        if not line.strip() or line.startswith(";"):
            continue
        entry = {}
        for key, value in re.findall(r'(\w+): ("(?:[^"]|"")*"|[^;]*)', line):
            value = value.strip()
            if value.startswith('"'):
                value = value[1:-1].replace('""', '"')
            entry[key] = re.sub(r"\{#(\w+)\}", lambda m: defines[m.group(1)], value)
        entries.append(entry)
    return entries


def test_inno_setup_registers_what_the_gui_registers_per_user() -> None:
    entries = _inno_registry()
    assert all(e["Root"] == "HKCU" for e in entries)
    # {app} as Inno Setup expands it for a user name with a space (which forces quoting)
    app = r"C:\Users\A B\AppData\Local\Programs\ccBitTorrent"
    got: dict[str, dict[str, str]] = {}
    for e in entries:
        key = e["Subkey"].removeprefix("Software\\Classes\\")
        got.setdefault(key, {})[e["ValueName"]] = e["ValueData"].replace("{app}", app)
    expected = windows.registry_values([app + r"\ccBitTorrent.exe"])
    for key, values in expected.items():
        assert got.get(key) == values, key
    assert got[r".torrent\OpenWithProgids"] == {windows.PROG_ID: ""}
    flags = {(e["Subkey"], e.get("Flags", "")) for e in entries if e.get("Flags")}
    # the uninstaller removes our keys entirely, and only our values from the shared .torrent
    assert ("Software\\Classes\\magnet", "uninsdeletekey") in flags
    assert (f"Software\\Classes\\{windows.PROG_ID}", "uninsdeletekey") in flags
    torrent_flags = {
        e.get("Flags") for e in entries if e["Subkey"] == "Software\\Classes\\.torrent"
    }
    assert torrent_flags == {"uninsdeletevalue"}
    text = (ROOT / "installers" / "windows" / "ccbittorrent.iss").read_text()
    assert re.search(r"^PrivilegesRequired=lowest$", text, re.M)
    assert re.search(r'^Name: "\{autoprograms\}\\', text, re.M)  # Start-menu shortcut


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX shell scripts and file modes")
@pytest.mark.parametrize(
    "script",
    ["installers/linux/package.sh", "installers/macos/make_dmg.sh", "scripts/build-dist.sh"],
)
def test_shell_scripts_parse(script: str) -> None:
    path = ROOT / script
    assert path.stat().st_mode & 0o111, f"{script} is not executable"
    proc = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr

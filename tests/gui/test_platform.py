"""Magnet/.torrent handler registration: XDG files in a temp home; Windows registry layout."""

from __future__ import annotations

import configparser
import subprocess
import sys
from pathlib import Path

import pytest

from ccbt_gui.platform import launcher_command, windows, xdg


@pytest.fixture
def xdg_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    data, config = tmp_path / "data", tmp_path / "config-home"
    monkeypatch.setenv("XDG_DATA_HOME", str(data))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(config))
    return data, config


def _entry(path: Path) -> configparser.SectionProxy:
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(path)
    return parser["Desktop Entry"]


def test_register_writes_desktop_entry_and_defaults(xdg_home: tuple[Path, Path]) -> None:
    data, config = xdg_home
    mimeapps = config / "mimeapps.list"
    mimeapps.parent.mkdir(parents=True)
    mimeapps.write_text("[Default Applications]\ntext/html=firefox.desktop\n")
    entry_path = xdg.register(["/opt/ccbt app/bin/ccbt-gui"])
    assert entry_path == data / "applications" / "ccbittorrent.desktop"
    entry = _entry(entry_path)
    assert entry["MimeType"] == "x-scheme-handler/magnet;application/x-bittorrent;"
    assert entry["Exec"] == '"/opt/ccbt app/bin/ccbt-gui" %U'
    assert entry["Type"] == "Application"
    assert xdg.default_handler("x-scheme-handler/magnet") == "ccbittorrent.desktop"
    assert xdg.default_handler("application/x-bittorrent") == "ccbittorrent.desktop"
    assert xdg.default_handler("text/html") == "firefox.desktop"  # other defaults kept
    assert "x-scheme-handler/magnet=ccbittorrent.desktop;" in mimeapps.read_text()

    xdg.register(["/usr/bin/ccbt-gui"])  # idempotent: no duplicate association
    assert mimeapps.read_text().count("x-scheme-handler/magnet=ccbittorrent.desktop;") == 1

    xdg.unregister()
    assert not entry_path.exists()
    assert xdg.default_handler("x-scheme-handler/magnet") is None
    assert xdg.default_handler("text/html") == "firefox.desktop"


def test_exec_quoting_follows_the_desktop_entry_spec() -> None:
    text = xdg.desktop_entry(["/usr/bin/python3", "-m", "ccbt_gui.app", "100%"])
    assert "Exec=/usr/bin/python3 -m ccbt_gui.app 100%% %U" in text
    text = xdg.desktop_entry(['/a "b"/$x'])
    assert 'Exec="/a \\"b\\"/\\$x" %U' in text


def test_launcher_command_runs_the_gui() -> None:
    cmd = launcher_command()
    assert cmd[-1].endswith("ccbt-gui") or cmd[-2:] == ["-m", "ccbt_gui.app"]


def test_windows_registry_layout() -> None:
    values = windows.registry_values([r"C:\Program Files\ccBitTorrent\ccbt-gui.exe"])
    assert values["magnet"] == {"": "URL:Magnet link", "URL Protocol": ""}
    assert (
        values[r"magnet\shell\open\command"][""]
        == r'"C:\Program Files\ccBitTorrent\ccbt-gui.exe" "%1"'
    )
    assert values[".torrent"][""] == windows.PROG_ID
    assert values[rf"{windows.PROG_ID}\shell\open\command"][""].endswith('"%1"')


def test_register_handler_command_line(xdg_home: tuple[Path, Path]) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "ccbt_gui.app", "--register-handler"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert "default magnet/.torrent handler" in proc.stdout
    assert xdg.default_handler("x-scheme-handler/magnet") == "ccbittorrent.desktop"

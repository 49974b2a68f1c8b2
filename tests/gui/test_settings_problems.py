"""Start-up with a config file that has mistakes: the app names them and keeps every valid
choice (DHT/UPnP stay off), instead of silently starting with all defaults.

The message boxes are real; a timer clicks the wanted button as soon as the box is up. The
whole app runs in a subprocess (like test_app_smoke) with ``QMessageBox.exec`` patched there.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication, QMessageBox

from ccbt_engine.config import load_settings, load_settings_tolerant
from ccbt_gui.settings_problems import confirm_unreadable, report_ignored

pytestmark = pytest.mark.timeout(60)

BAD = """\
# mine
[network]
listen_port = 0
enable_dht = false
enable_upnp = false
"""


def _answer(button_text: str, seen: list[QMessageBox]) -> None:
    """Click ``button_text`` in the next message box that opens."""

    def poll() -> None:
        box = QApplication.activeModalWidget()
        if not isinstance(box, QMessageBox):
            QTimer.singleShot(20, poll)
            return
        seen.append(box)
        (button,) = [b for b in box.buttons() if b.text() == button_text]
        button.click()

    QTimer.singleShot(0, poll)


def _box_text(box: QMessageBox) -> str:
    return f"{box.windowTitle()}\n{box.text()}\n{box.informativeText()}"


def test_ignored_keys_are_named_and_the_file_is_kept(qtbot: object, isolated_config: Path) -> None:
    path = isolated_config / "config.toml"
    path.write_text(BAD)
    loaded = load_settings_tolerant()
    assert loaded.settings.network.enable_upnp is False  # kept, not reset to the default
    seen: list[QMessageBox] = []
    _answer("Keep the file as it is", seen)
    note = report_ignored(loaded.ignored)
    (box,) = seen
    text = _box_text(box)
    assert "network.listen_port" in text and str(path) in text and "allowed" in text
    assert box.icon() == QMessageBox.Icon.Warning
    assert "ignored" in note
    assert path.read_text() == BAD


def test_removing_the_ignored_keys_fixes_the_file(qtbot: object, isolated_config: Path) -> None:
    path = isolated_config / "config.toml"
    path.write_text(BAD)
    loaded = load_settings_tolerant()
    seen: list[QMessageBox] = []
    _answer("Remove them from the file", seen)
    note = report_ignored(loaded.ignored)
    assert seen and "network.listen_port" in note and str(path) in note
    assert "listen_port" not in path.read_text() and "# mine" in path.read_text()
    assert load_settings() == loaded.settings  # strict loading (ccbt commands) works again


@pytest.mark.parametrize(("answer", "starts"), [("Quit", False), ("Start with defaults", True)])
def test_unreadable_file_asks_before_starting(
    qtbot: object, isolated_config: Path, answer: str, starts: bool
) -> None:
    path = isolated_config / "config.toml"
    path.write_text("[network\nenable_dht = false\n")
    loaded = load_settings_tolerant()
    seen: list[QMessageBox] = []
    _answer(answer, seen)
    assert confirm_unreadable(loaded.unreadable) is starts
    (box,) = seen
    assert str(path) in _box_text(box) and "not valid TOML" in _box_text(box)
    assert box.defaultButton().text() == "Quit"  # starting with defaults needs a real click


# -- the app itself ------------------------------------------------------------------------
_APP = """
import sys
from PySide6.QtWidgets import QMessageBox
import ccbt_gui.app as app

def fake_exec(box):
    print("BOX:", box.windowTitle(), "|", box.informativeText().replace("\\n", " "), flush=True)
    for b in box.buttons():
        if b.text() == sys.argv[1]:
            b.click()
    return 0

QMessageBox.exec = fake_exec

class Controller(app.EngineController):
    def __init__(self, settings, *a, **k):
        port, seeds = settings.network.listen_port, settings.limits.max_active_seeds
        print(f"ENGINE: seeds={seeds} port={port} dir={settings.disk.download_path}", flush=True)
        super().__init__(settings, *a, **k)

app.EngineController = Controller
sys.exit(app.main(["--new-instance", "--quit-after", "300"]))
"""


def _run_app(answer: str, config_dir: Path) -> subprocess.CompletedProcess[str]:
    # the fixture's environment keeps it on loopback (DHT, LSD, UPnP, NAT-PMP off) whatever
    # the file says; the file's own choices are checked on other keys
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", CCBT_CONFIG_DIR=str(config_dir))
    return subprocess.run(
        [sys.executable, "-c", _APP, answer],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_app_starts_with_the_valid_settings_and_says_which_were_ignored(
    isolated_config: Path, tmp_path: Path
) -> None:
    text = BAD + f'[limits]\nmax_active_seeds = 3\n[disk]\ndownload_path = "{tmp_path}"\n'
    (isolated_config / "config.toml").write_text(text)
    proc = _run_app("Keep the file as it is", isolated_config)
    assert proc.returncode == 0, proc.stderr
    assert "BOX:" in proc.stdout and "network.listen_port" in proc.stdout
    # the file's other choices hold; only the bad port falls back to its default
    assert f"ENGINE: seeds=3 port=6881 dir={tmp_path}" in proc.stdout
    assert "settings error: invalid value for network.listen_port" in proc.stderr
    assert "main window shown" in proc.stdout


def test_app_does_not_start_on_an_unreadable_file_unless_asked(isolated_config: Path) -> None:
    (isolated_config / "config.toml").write_text("[limits\nmax_active_seeds = 3\n")
    refused = _run_app("Quit", isolated_config)
    assert refused.returncode == 1, refused.stderr
    assert "settings file unreadable" in refused.stdout and "ENGINE:" not in refused.stdout
    started = _run_app("Start with defaults", isolated_config)
    assert started.returncode == 0, started.stderr
    assert "ENGINE: seeds=5 " in started.stdout  # the defaults, chosen explicitly


def test_app_does_not_start_on_a_config_folder_that_cannot_exist(tmp_path: Path) -> None:
    # CCBT_CONFIG_DIR naming the home of a user this system does not have: one box saying
    # which variable, exit 1, no engine (was a ConfigError traceback from gui-state.ini's path)
    proc = _run_app("OK", Path("~ccbt-no-such-user/cfg"))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "BOX: ccBitTorrent: cannot start" in proc.stdout
    assert "CCBT_CONFIG_DIR='~ccbt-no-such-user/cfg'" in proc.stdout
    assert "ENGINE:" not in proc.stdout and "Traceback" not in proc.stderr

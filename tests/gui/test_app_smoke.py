"""The app entry point opens its main window and quits cleanly (what `make run` starts)."""

from __future__ import annotations

import os
import subprocess
import sys

from ccbt_gui.app import MainWindow


def test_main_window_title(qtbot) -> None:  # type: ignore[no-untyped-def]
    window = MainWindow()
    qtbot.addWidget(window)
    window.show()
    assert window.windowTitle() == "ccBitTorrent"
    assert window.isVisible()


def test_gui_entry_point_starts_and_quits() -> None:
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    proc = subprocess.run(
        [sys.executable, "-m", "ccbt_gui.app", "--quit-after", "300"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert "main window shown" in proc.stdout

"""Settings dialog: round-trip to config.toml keeping comments; invalid values refused in place."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtWidgets import QCheckBox, QComboBox

from ccbt_engine.config import iter_fields, load_settings
from ccbt_gui.dialogs.settings import PAGES, SettingsDialog

CONFIG = """\
# my ccbt settings -- keep this comment
[limits]
# cap uploads on the home line
global_up_kib = 100
"""


def _dialog(qtbot: Any, path: Path) -> SettingsDialog:
    dialog = SettingsDialog(load_settings(user_path=path), path)
    qtbot.addWidget(dialog)
    return dialog


def test_every_setting_is_on_exactly_one_page(qtbot: Any, tmp_path: Path) -> None:
    dialog = _dialog(qtbot, tmp_path / "config.toml")
    keys = [f.key for f in iter_fields()]
    assert sorted(dialog.fields) == sorted(keys)
    for spec in iter_fields():
        assert sum(1 for _t, wanted in PAGES if wanted(spec)) == 1, spec.key
    assert isinstance(dialog.fields["network.enable_dht"].widget, QCheckBox)
    assert isinstance(dialog.fields["ui.theme"].widget, QComboBox)


def test_round_trip_keeps_comments_and_refuses_invalid(qtbot: Any, tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(CONFIG)
    dialog = _dialog(qtbot, path)
    applied: list[tuple[Any, dict[str, Any]]] = []
    dialog.applied.connect(lambda s, d: applied.append((s, d)))
    assert dialog.fields["limits.global_up_kib"].text() == "100"

    dialog.fields["limits.global_down_kib"].set_text("500")
    dialog.fields["network.listen_port"].set_text("70000")
    dialog.fields["limits.alt_schedule_from"].set_text("25:00")
    dialog.accept()
    # refused: nothing written, errors next to the offending fields only
    assert path.read_text() == CONFIG
    assert applied == []
    port_err = dialog.fields["network.listen_port"].error
    assert not port_err.isHidden()
    assert "an integer from 1 to 65535" in port_err.text()
    assert "HH:MM" in dialog.fields["limits.alt_schedule_from"].error.text()
    assert dialog.fields["limits.global_down_kib"].error.isHidden()
    assert dialog.pages.currentRow() == 0  # jumped to the page of the first bad field

    dialog.fields["network.listen_port"].set_text("7001")
    dialog.fields["limits.alt_schedule_from"].set_text("07:30")
    dialog.fields["ui.theme"].set_text("dark")
    dialog.fields["network.enable_pex"].set_text("false")
    dialog.accept()
    assert port_err.isHidden()
    text = path.read_text()
    assert "# my ccbt settings -- keep this comment" in text
    assert "# cap uploads on the home line" in text
    saved = load_settings(user_path=path, env={})
    assert saved.network.listen_port == 7001
    assert saved.limits.global_down_kib == 500
    assert saved.limits.global_up_kib == 100
    assert saved.limits.alt_schedule_from == "07:30"
    assert saved.ui.theme == "dark"
    assert saved.network.enable_pex is False
    # only changed keys were written (no dump of defaults)
    assert "max_global_peers" not in text
    ((new, diff),) = applied
    assert new.network.listen_port == 7001
    assert set(diff) == {
        "network.listen_port",
        "network.enable_pex",
        "limits.global_down_kib",
        "limits.alt_schedule_from",
        "ui.theme",
    }


def test_main_window_applies_limits_live(qtbot: Any, tmp_path: Path) -> None:
    from ccbt_gui.main_window import MainWindow

    window = MainWindow()
    qtbot.addWidget(window)
    dialog = window.open_settings()
    assert isinstance(dialog, SettingsDialog)
    # the test environment sets CCBT_NETWORK_LISTEN_INTERFACES: saving it to the file would
    # not take effect, so the field is read-only and says why
    env_field = dialog.fields["network.listen_interfaces"]
    assert not env_field.widget.isEnabled()
    assert "environment variable CCBT_NETWORK_LISTEN_INTERFACES" in env_field.error.text()
    dialog.fields["limits.global_down_kib"].set_text("256")
    dialog.fields["network.max_global_peers"].set_text("300")
    dialog.accept()
    assert window.settings.limits.global_down_kib == 256
    assert window.statusBar().currentMessage() == "Settings saved and applied"
    # disk settings are read when a torrent is added: the message says so
    dialog = window.open_settings()
    assert isinstance(dialog, SettingsDialog)
    dialog.fields["disk.download_path"].set_text(str(tmp_path / "elsewhere"))
    dialog.accept()
    message = window.statusBar().currentMessage()
    assert "torrents added from now on" in message and "disk.download_path" in message

"""Window state the user expects to be remembered (column layout, last save folder …).

Kept in an INI file next to the user's ``config.toml`` rather than in QSettings' default place:
it moves with ``CCBT_CONFIG_DIR`` (portable installs, tests), and it is not a setting, so it does
not belong in the typed settings model.
"""

from __future__ import annotations

from PySide6.QtCore import QSettings

from ccbt_engine.config import user_config_path


def gui_state() -> QSettings:
    path = user_config_path().parent / "gui-state.ini"
    return QSettings(str(path), QSettings.Format.IniFormat)

"""Settings: one typed model for config files, environment, the ``ccbt config`` CLI and the GUI.

Precedence, lowest to highest: defaults < user ``config.toml`` (:func:`user_config_path`) <
project-local ``./ccbt.toml`` (:func:`local_config_path`) < ``CCBT_<SECTION>_<KEY>`` environment
variables < command-line flags (``overrides``); :func:`load_settings_tolerant` is the desktop
app's variant that ignores (and reports) only the bad keys. Files are edited in place keeping
comments; secrets go to the OS keyring. Every failure is a :class:`ConfigError` whose message
names the key, the value, where it came from and what is allowed. See ``docs/configuration.md``.
"""

from __future__ import annotations

from ccbt_engine.config.errors import ConfigError
from ccbt_engine.config.files import reset_value_in_file, set_value_in_file
from ccbt_engine.config.live import Changes, LiveSettings, SettingsObserver
from ccbt_engine.config.loader import (
    CONFIG_DIR_ENV,
    LOCAL_CONFIG_ENV,
    env_var_name,
    get_value,
    load_settings,
    load_settings_with_sources,
    local_config_path,
    parse_value,
    to_plain,
    update_settings,
    user_config_path,
)
from ccbt_engine.config.model import (
    SECRET_KEYS,
    SECTION_NAMES,
    DiskSettings,
    FieldSpec,
    LimitsSettings,
    NetworkSettings,
    ObservabilitySettings,
    RemoteSettings,
    SecuritySettings,
    Settings,
    UiSettings,
    iter_fields,
)
from ccbt_engine.config.secrets import delete_secret, get_secret, set_secret
from ccbt_engine.config.tolerant import (
    SettingProblem,
    TolerantSettings,
    load_settings_tolerant,
    remove_entries,
)

__all__ = [
    "CONFIG_DIR_ENV",
    "LOCAL_CONFIG_ENV",
    "SECRET_KEYS",
    "SECTION_NAMES",
    "Changes",
    "ConfigError",
    "DiskSettings",
    "FieldSpec",
    "LimitsSettings",
    "LiveSettings",
    "NetworkSettings",
    "ObservabilitySettings",
    "RemoteSettings",
    "SecuritySettings",
    "SettingProblem",
    "Settings",
    "SettingsObserver",
    "TolerantSettings",
    "UiSettings",
    "delete_secret",
    "env_var_name",
    "get_secret",
    "get_value",
    "iter_fields",
    "load_settings",
    "load_settings_tolerant",
    "load_settings_with_sources",
    "local_config_path",
    "parse_value",
    "remove_entries",
    "reset_value_in_file",
    "set_secret",
    "set_value_in_file",
    "to_plain",
    "update_settings",
    "user_config_path",
]

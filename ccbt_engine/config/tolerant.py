"""Loading settings for an app that must open even when a config file has mistakes.

:func:`~ccbt_engine.config.load_settings` refuses the whole configuration when one key is bad,
which is right for ``ccbt`` commands (they stop with the error) but wrong for the desktop app:
falling back to all defaults would silently undo the user's other choices (turn DHT and UPnP
back on, forget the download folder). :func:`load_settings_tolerant` instead keeps every valid
key and ignores only the bad ones; each ignored key then takes the value of the next lower layer
(a local file's bad key falls back to the user file's value, a user file's to the default), as if
that line were not there. It returns the problems so the app can name each file, key and error,
and offer to remove the bad entries (:func:`remove_entries`).

A file that cannot be read or parsed at all is skipped as a whole and reported with ``key``
None: nothing of it can be trusted, so the caller should ask before running with defaults.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomlkit
import tomlkit.exceptions

from ccbt_engine.config.errors import ConfigError
from ccbt_engine.config.files import atomic_write_text
from ccbt_engine.config.loader import (
    Merged,
    env_layer,
    local_config_path,
    override_layer,
    read_file_layer,
    user_config_path,
    validate_merged,
)
from ccbt_engine.config.model import Settings

__all__ = ["SettingProblem", "TolerantSettings", "load_settings_tolerant", "remove_entries"]


@dataclass(frozen=True, slots=True)
class SettingProblem:
    """One thing that was ignored while loading."""

    #: the message names key, value, where it came from and what is allowed
    error: ConfigError
    #: ``"section.key"``, a section name (a whole table was ignored), or None (a whole file)
    key: str | None
    #: the config file it is in; None for environment variables and overrides
    path: Path | None

    @property
    def whole_file(self) -> bool:
        """Nothing of ``path`` could be used (unreadable, or not TOML)."""
        return self.key is None and self.path is not None


@dataclass(frozen=True, slots=True)
class TolerantSettings:
    """Settings made of every valid value, and what was ignored to get there."""

    settings: Settings
    problems: tuple[SettingProblem, ...]
    #: ``{"section.key": source}`` for every value that did not come from the defaults
    sources: dict[str, str]

    @property
    def unreadable(self) -> tuple[SettingProblem, ...]:
        return tuple(p for p in self.problems if p.whole_file)

    @property
    def ignored(self) -> tuple[SettingProblem, ...]:
        return tuple(p for p in self.problems if not p.whole_file)


@dataclass
class _Layer:
    values: Merged
    path: Path | None


def load_settings_tolerant(
    *,
    user_path: Path | None = None,
    local_path: Path | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> TolerantSettings:
    """Like :func:`~ccbt_engine.config.load_settings`, but never raises for bad input: invalid
    keys are left out (each falls back to the next lower layer) and reported."""
    environ: Mapping[str, str] = os.environ if env is None else env
    user_path = user_config_path(environ) if user_path is None else user_path
    local_path = local_config_path(environ) if local_path is None else local_path
    problems: list[SettingProblem] = []
    layers: list[_Layer] = []
    for path, label in ((user_path, "user config file"), (local_path, "local config file")):
        found: list[ConfigError] = []
        layers.append(_Layer(read_file_layer(path, label, found), path))
        problems.extend(_problem(e, path) for e in found)
    found = []
    layers.append(_Layer(env_layer(environ, found), None))
    problems.extend(_problem(e, None) for e in found)
    if overrides:
        for key, value in overrides.items():
            try:
                layers.append(_Layer(override_layer({key: value}, "command-line flag"), None))
            except ConfigError as exc:
                problems.append(_problem(exc, None))
    # each round drops at least one key, so this ends; pydantic reports every bad key at once,
    # so one round is the usual case
    while True:
        merged: Merged = {}
        owner: dict[str, _Layer] = {}
        for layer in layers:
            merged.update(layer.values)
            owner.update(dict.fromkeys(layer.values, layer))
        result = validate_merged(merged)
        if isinstance(result, Settings):
            sources = {key: source for key, (_, source) in merged.items()}
            return TolerantSettings(result, tuple(problems), sources)
        for error in result:
            supplier = owner.get(error.key or "")
            if supplier is None:  # not from any layer: a bug in the model's defaults
                raise error
            del supplier.values[error.key or ""]
            problems.append(SettingProblem(error, error.key, supplier.path))


def _problem(error: ConfigError, path: Path | None) -> SettingProblem:
    if path is not None and error.key is None:
        return SettingProblem(error, None, path)
    return SettingProblem(error, error.key, path)


def remove_entries(path: Path, keys: Iterable[str]) -> list[str]:
    """Delete ``keys`` (``"section.key"``, or a section name for a whole table) from ``path``,
    keeping everything else (comments, layout); returns the keys that were there.

    Unlike :func:`~ccbt_engine.config.reset_value_in_file` it accepts keys the model does not
    know (a typo is exactly what needs removing) and does not require the result to be valid
    (other mistakes may remain). Atomic, like every config write.
    """
    try:
        doc = tomlkit.parse(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return []
    except (OSError, UnicodeDecodeError, tomlkit.exceptions.ParseError) as exc:
        raise ConfigError(f"cannot edit config file {path}: {exc}", source=str(path)) from exc
    removed: list[str] = []
    for key in keys:
        section, _, name = key.partition(".")
        if not name:
            if section in doc:
                del doc[section]
                removed.append(key)
            continue
        table = doc.get(section)
        if isinstance(table, MutableMapping) and name in table:
            del table[name]
            removed.append(key)
    if removed:
        atomic_write_text(path, tomlkit.dumps(doc))
    return removed

"""Building :class:`Settings` from layered sources, each value remembering where it came from.

Layers, lowest to highest: defaults < user file < project-local file < environment < overrides
(command-line flags). The raw values of all layers are merged first and validated once, so a bad
value is reported together with the layer that supplied it ("from environment variable
CCBT_NETWORK_LISTEN_PORT") rather than as a pydantic traceback. A bad value in a lower layer that
a higher layer replaces is never looked at, which is what precedence should mean.
"""

from __future__ import annotations

import json
import os
import tomllib
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import platformdirs
from pydantic import ValidationError

from ccbt_engine.config.errors import ConfigError
from ccbt_engine.config.model import (
    SECRET_KEYS,
    SECTION_MODELS,
    SECTION_NAMES,
    Settings,
    describe_allowed,
    field_info,
    split_key,
)
from ccbt_engine.pathsafe import expand_home

__all__ = [
    "CONFIG_DIR_ENV",
    "ENV_PREFIX",
    "LOCAL_CONFIG_ENV",
    "env_path",
    "env_var_name",
    "get_value",
    "load_settings",
    "load_settings_with_sources",
    "local_config_path",
    "parse_value",
    "to_plain",
    "update_settings",
    "user_config_path",
]

ENV_PREFIX = "CCBT_"
#: Overrides the folder holding the user ``config.toml`` (tests and portable installs use it).
CONFIG_DIR_ENV = "CCBT_CONFIG_DIR"
#: Overrides the project-local file path (default ``./ccbt.toml``).
LOCAL_CONFIG_ENV = "CCBT_LOCAL_CONFIG"

#: key -> (raw value, human description of where it came from)
Merged = dict[str, tuple[Any, str]]
#: where a layer reader that was given a list puts what it skipped, instead of raising
#: (:mod:`ccbt_engine.config.tolerant`); None means "raise the first problem"
Problems = list[ConfigError] | None


def user_config_path(env: Mapping[str, str] | None = None) -> Path:
    """The user's ``config.toml``: ``$CCBT_CONFIG_DIR/config.toml`` or the platform config dir.

    ``CCBT_CONFIG_DIR`` is looked up in ``env`` first and then in the process environment, so a
    caller passing a custom ``env`` cannot accidentally fall through to the real home folder.
    """
    folder = (env or {}).get(CONFIG_DIR_ENV) or os.environ.get(CONFIG_DIR_ENV)
    base = env_path(CONFIG_DIR_ENV, folder) if folder else platformdirs.user_config_path("ccbt")
    return base / "config.toml"


def local_config_path(env: Mapping[str, str] | None = None) -> Path:
    """The project-local file: ``$CCBT_LOCAL_CONFIG`` or ``ccbt.toml`` in the working folder."""
    override = (env or {}).get(LOCAL_CONFIG_ENV) or os.environ.get(LOCAL_CONFIG_ENV)
    return env_path(LOCAL_CONFIG_ENV, override) if override else Path.cwd() / "ccbt.toml"


def env_path(name: str, value: str) -> Path:
    """The path environment variable ``name`` gives, ``~`` expanded.

    A ``~user`` this system has no home folder for is a :class:`ConfigError` naming the
    variable (the CLI prints it as one line), not a ``RuntimeError`` traceback at start-up.
    """
    try:
        return expand_home(value)
    except ValueError as exc:
        raise ConfigError(
            f"{name}={value!r}: {exc}", key=name, value=value, source="environment"
        ) from None


def env_var_name(key: str) -> str:
    """``"network.listen_port"`` -> ``"CCBT_NETWORK_LISTEN_PORT"``."""
    return ENV_PREFIX + key.replace(".", "_").upper()


def load_settings(
    *,
    user_path: Path | None = None,
    local_path: Path | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Effective settings: defaults < user file < local file < environment < ``overrides``.

    ``env`` defaults to ``os.environ``; ``overrides`` maps ``"section.key"`` to a value or to the
    text a user typed (command-line flags). Missing files are simply skipped. Raises
    :class:`ConfigError` naming the key, value, source and what is allowed.
    """
    return load_settings_with_sources(
        user_path=user_path, local_path=local_path, env=env, overrides=overrides
    )[0]


def load_settings_with_sources(
    *,
    user_path: Path | None = None,
    local_path: Path | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> tuple[Settings, dict[str, str]]:
    """Like :func:`load_settings`, plus ``{"section.key": source}`` for every non-default value.

    The CLI uses the sources to explain why ``config set`` did not change the effective value
    (an environment variable or the local file wins).
    """
    environ: Mapping[str, str] = os.environ if env is None else env
    user_path = user_config_path(environ) if user_path is None else user_path
    local_path = local_config_path(environ) if local_path is None else local_path
    merged: Merged = {}
    merged.update(read_file_layer(user_path, "user config file"))
    merged.update(read_file_layer(local_path, "local config file"))
    merged.update(env_layer(environ))
    merged.update(override_layer(overrides or {}, "command-line flag"))
    return build_settings(merged), {key: source for key, (_, source) in merged.items()}


def update_settings(settings: Settings, changes: Mapping[str, Any]) -> Settings:
    """A validated copy of ``settings`` with ``changes`` (``"section.key"`` -> value) applied.

    For the settings dialog: it edits a live :class:`Settings` without going through files.
    """
    merged: Merged = {
        f"{section}.{name}": (value, "current settings")
        for section in SECTION_NAMES
        for name, value in getattr(settings, section)
    }
    merged.update(override_layer(changes, "changed setting"))
    return build_settings(merged)


def get_value(settings: Settings, key: str) -> Any:
    """The value of ``"section.key"`` in ``settings``; ConfigError for unknown keys or secrets."""
    section, name = split_key(key)
    if key in SECRET_KEYS:
        raise ConfigError(
            f"{key} is a secret kept in the OS keyring; read it with get_secret()", key=key
        )
    return getattr(getattr(settings, section), name)


def parse_value(key: str, text: str) -> Any:
    """Turn the text a user typed for ``key`` into its typed, validated value."""
    field_info(key)  # unknown keys and secrets fail here, before anything else
    merged = override_layer({key: text}, "")
    settings = build_settings(merged)
    return get_value(settings, key)


def to_plain(value: Any) -> Any:
    """A typed setting value as TOML can store it (TOML has no null and no Path)."""
    if value is None:
        return ""
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple | list):
        return [to_plain(item) for item in value]
    return value


# -- layers ---------------------------------------------------------------------------------------


def read_file_layer(path: Path, label: str, problems: Problems = None) -> Merged:
    """Values of one TOML file, flattened to ``"section.key"``; ``{}`` if the file is absent.

    With ``problems``, an unreadable file is recorded there (``key`` None: nothing of it could
    be used) and skipped, and bad entries are skipped one by one (:func:`flatten_document`).
    """
    try:
        try:
            text = path.read_bytes().decode("utf-8")
        except FileNotFoundError:
            return {}
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read {label} {path}: {exc}", source=str(path)) from exc
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{label} {path} is not valid TOML: {exc}", source=str(path)) from exc
    except ConfigError as exc:
        if problems is None:
            raise
        problems.append(exc)
        return {}
    return flatten_document(data, f"{label} {path}", problems)


def flatten_document(data: Mapping[str, Any], source: str, problems: Problems = None) -> Merged:
    """``{"network": {"listen_port": 1}}`` -> ``{"network.listen_port": (1, source)}``.

    Unknown sections and keys, and secrets written into a file, are errors here (not silently
    ignored) because a typo would otherwise leave the user wondering why nothing changed. With
    ``problems`` they are recorded there and skipped (the ``key`` of a whole section's problem
    is the section name).
    """
    merged: Merged = {}
    for section, table in data.items():
        try:
            if section not in SECTION_MODELS:
                raise ConfigError(
                    f"unknown section [{section}] in {source}; sections are "
                    + ", ".join(SECTION_NAMES),
                    key=section,
                    source=source,
                )
            if not isinstance(table, Mapping):
                raise ConfigError(
                    f"{section} in {source} must be a table ([{section}]), not {_show(table)}",
                    key=section,
                    value=table,
                    source=source,
                )
        except ConfigError as exc:
            if problems is None:
                raise
            problems.append(exc)
            continue
        for name, value in table.items():
            key = f"{section}.{name}"
            try:
                if key in SECRET_KEYS:
                    raise ConfigError(
                        f"{key} must not be stored in {source}: it is a secret kept in the OS "
                        f"keyring; remove it from the file and run `ccbt config set {key}`",
                        key=key,
                        source=source,
                    )
                _check_known(key, source)
            except ConfigError as exc:
                if problems is None:
                    raise
                problems.append(_with_key(exc, key, value))
                continue
            merged[key] = (value, source)
    return merged


def _with_key(exc: ConfigError, key: str, value: Any) -> ConfigError:
    """``exc`` naming ``key`` and ``value`` (split_key's errors name the key only in the text)."""
    return ConfigError(
        str(exc), key=key, value=value, allowed=exc.allowed, source=exc.source or None
    )


def env_layer(environ: Mapping[str, str], problems: Problems = None) -> Merged:
    """``CCBT_<SECTION>_<KEY>`` variables. Other ``CCBT_*`` names (e.g. CCBT_CONFIG_DIR) pass.

    With ``problems``, unknown names and unparsable lists are recorded there and skipped.
    """
    merged: Merged = {}
    for var, text in environ.items():
        upper = var.upper()  # Windows environment names are case-insensitive
        if not upper.startswith(ENV_PREFIX):
            continue
        section, _, name = upper[len(ENV_PREFIX) :].partition("_")
        section = section.lower()
        if section not in SECTION_MODELS or not name:
            continue
        key = f"{section}.{name.lower()}"
        if key in SECRET_KEYS:
            continue  # read on demand by get_secret(), never part of Settings
        source = f"environment variable {var}"
        try:
            _check_known(key, source)
            merged[key] = (_coerce_text(key, text, source), source)
        except ConfigError as exc:
            if problems is None:
                raise
            problems.append(_with_key(exc, key, text))
    return merged


def override_layer(overrides: Mapping[str, Any], label: str) -> Merged:
    """Caller-supplied ``"section.key"`` values; strings are parsed like environment values."""
    merged: Merged = {}
    for key, value in overrides.items():
        source = f"{label} {key}" if label else ""
        if key in SECRET_KEYS:
            raise ConfigError(
                f"{key} is a secret kept in the OS keyring and cannot be given as a setting",
                key=key,
                source=source,
            )
        _check_known(key, source)
        if isinstance(value, str):
            value = _coerce_text(key, value, source)
        merged[key] = (value, source)
    return merged


def _check_known(key: str, source: str) -> None:
    split_key(key, source)


def _coerce_text(key: str, text: str, source: str) -> Any:
    """Pre-parse text for list settings (JSON list or comma-separated); pydantic does the rest.

    Scalars stay text on purpose: pydantic's lax mode already turns "7000" into 7000 and
    "yes"/"false" into booleans, and rejects anything else with an error we translate.
    """
    if typing.get_origin(field_info(key).annotation) is not tuple:
        return text
    stripped = text.strip()
    if stripped.startswith("["):
        try:
            return json.loads(stripped)
        except json.JSONDecodeError as exc:
            raise _invalid(key, text, source, f"not a valid JSON list: {exc.msg}") from None
    return [part.strip() for part in stripped.split(",") if part.strip()]


# -- validation -----------------------------------------------------------------------------------


def build_settings(merged: Merged) -> Settings:
    """Validate the merged raw values; translate pydantic's errors into one ConfigError."""
    result = validate_merged(merged)
    if isinstance(result, Settings):
        return result
    first = result[0]
    if len(result) == 1:
        raise first
    message = "invalid settings:\n" + "\n".join(f"  {p}" for p in result)
    raise ConfigError(
        message, key=first.key, value=first.value, allowed=first.allowed, source=first.source
    )


def validate_merged(merged: Merged) -> Settings | list[ConfigError]:
    """The settings, or one ConfigError per invalid key (each naming key, value and source)."""
    nested: dict[str, dict[str, Any]] = {}
    for key, (value, _) in merged.items():
        section, name = split_key(key)
        nested.setdefault(section, {})[name] = value
    try:
        return Settings.model_validate(nested)
    except ValidationError as exc:
        return _translate(exc, merged)


def _translate(exc: ValidationError, merged: Merged) -> list[ConfigError]:
    problems: list[ConfigError] = []
    seen: set[str] = set()
    for error in exc.errors():
        loc = [str(part) for part in error["loc"]]
        key = ".".join(loc[:2])
        if key in seen:
            continue  # one line per key, even if several list items are wrong
        seen.add(key)
        value, source = merged.get(key, (error.get("input"), "defaults"))
        detail = None
        if error["type"] in ("value_error", "assertion_error"):
            detail = error["msg"].removeprefix("Value error, ").removeprefix("Assertion failed, ")
        problems.append(_invalid(key, value, source, detail))
    return problems


def _invalid(key: str, value: Any, source: str, detail: str | None = None) -> ConfigError:
    try:
        allowed = describe_allowed(field_info(key))
    except ConfigError:
        allowed = "a valid value"
    where = f" (from {source})" if source else ""
    why = f": {detail}" if detail else ""
    return ConfigError(
        f"invalid value for {key}: {_show(value)}{where}{why}; allowed: {allowed}",
        key=key,
        value=value,
        allowed=allowed,
        source=source,
    )


def _show(value: Any) -> str:
    """A value as the user would have written it (TOML/JSON-like, strings quoted)."""
    try:
        return json.dumps(to_plain(value), default=str, ensure_ascii=False)
    except (TypeError, ValueError):
        return repr(value)

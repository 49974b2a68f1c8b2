"""Editing one config file in place, keeping the user's comments and layout (tomlkit).

A write only happens after the whole file, with the change applied, validates on its own; and it
is atomic (temp file + fsync + rename), so a crash never leaves a half-written config behind.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import typing
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

import tomlkit
import tomlkit.exceptions
from tomlkit.toml_document import TOMLDocument

from ccbt_engine.config.errors import ConfigError
from ccbt_engine.config.loader import build_settings, flatten_document, parse_value, to_plain
from ccbt_engine.config.model import SECRET_KEYS, field_info, split_key

__all__ = ["atomic_write_text", "reset_value_in_file", "set_value_in_file"]


def set_value_in_file(path: Path, key: str, value_str: str) -> None:
    """Parse ``value_str`` for ``key``, validate it and store it in ``path`` (created if needed).

    Comments and formatting of the rest of the file are kept. Secrets are refused: they belong in
    the OS keyring (:func:`ccbt_engine.config.set_secret`), never in a file.
    """
    _refuse_secret(key)
    section, name = split_key(key)
    typed = parse_value(key, value_str)
    # Paths are stored as typed ("~/Downloads" stays portable); everything else normalised.
    value = value_str.strip() if _is_path_field(key) else to_plain(typed)
    doc = _read_document(path)
    table = doc.get(section)
    if table is None:
        doc[section] = tomlkit.table()
        table = doc[section]
    if not isinstance(table, MutableMapping):
        raise ConfigError(
            f"cannot set {key}: {section} in {path} is not a table", key=key, source=str(path)
        )
    table[name] = value
    _validate_document(doc, path)
    atomic_write_text(path, tomlkit.dumps(doc))


def reset_value_in_file(path: Path, key: str) -> None:
    """Remove ``key`` from ``path`` so the value falls back to the next lower layer.

    A missing file or key is not an error: the key is already reset. A section left with no keys
    and no comments is removed too, so set-then-reset leaves the file as it was.
    """
    _refuse_secret(key)
    section, name = split_key(key)
    if not path.exists():
        return
    doc = _read_document(path)
    table = doc.get(section)
    if not isinstance(table, MutableMapping) or name not in table:
        return
    del table[name]
    if len(table) == 0 and not _has_comments(table):
        del doc[section]
    atomic_write_text(path, _trim_end(tomlkit.dumps(doc)))


def _trim_end(text: str) -> str:
    """tomlkit leaves the blank line that separated a removed table; drop blank lines at EOF."""
    return text.rstrip("\n") + "\n" if text.strip() else ""


def _is_path_field(key: str) -> bool:
    annotation = field_info(key).annotation
    return annotation is Path or Path in typing.get_args(annotation)


def _refuse_secret(key: str) -> None:
    if key in SECRET_KEYS:
        raise ConfigError(
            f"{key} is a secret and is never written to a config file; "
            "it is stored in the OS keyring (set_secret / `ccbt config set`)",
            key=key,
        )


def _has_comments(table: Any) -> bool:
    text = table.as_string() if hasattr(table, "as_string") else ""
    return any(line.strip().startswith("#") for line in text.splitlines())


def _read_document(path: Path) -> TOMLDocument:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return tomlkit.document()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}", source=str(path)) from exc
    try:
        return tomlkit.parse(text)
    except tomlkit.exceptions.ParseError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}", source=str(path)) from exc


def _validate_document(doc: TOMLDocument, path: Path) -> None:
    """The edited file must be valid on its own, or it would break the next start."""
    build_settings(flatten_document(doc.unwrap(), f"config file {path}"))


def atomic_write_text(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` (temp file + fsync + rename), keeping its permissions."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        mode = path.stat().st_mode & 0o7777
    except FileNotFoundError:
        mode = None
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        if mode is not None:
            os.chmod(tmp_name, mode)
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    """Make the rename durable (POSIX); Windows cannot open directories, and needs not."""
    if os.name != "posix":
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

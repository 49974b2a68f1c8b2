"""XDG (Linux, BSD) registration: a desktop entry plus mimeapps.list defaults.

Written directly rather than through ``xdg-mime``/``update-desktop-database`` so it works on a
minimal system and is testable with a temporary ``XDG_DATA_HOME``/``XDG_CONFIG_HOME``; desktops
read ``mimeapps.list`` on their own. Existing entries for other types are kept.
"""

from __future__ import annotations

import configparser
import os
from collections.abc import Sequence
from pathlib import Path

DESKTOP_ID = "ccbittorrent.desktop"
MIME_TYPES = ("x-scheme-handler/magnet", "application/x-bittorrent")
_DEFAULTS = "Default Applications"
_ADDED = "Added Associations"


def data_home() -> Path:
    return Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")


def config_home() -> Path:
    return Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")


def desktop_entry(command: Sequence[str]) -> str:
    """The ``.desktop`` file text; ``%U`` hands the link/path(s) to the command."""
    exec_line = " ".join(_quote_exec(part) for part in command) + " %U"
    return (
        "[Desktop Entry]\n"
        "Type=Application\n"
        "Name=ccBitTorrent\n"
        "GenericName=BitTorrent client\n"
        "Comment=Download and share files over BitTorrent\n"
        f"Exec={exec_line}\n"
        "Icon=ccbittorrent\n"
        "Terminal=false\n"
        "Categories=Network;FileTransfer;P2P;Qt;\n"
        "MimeType=x-scheme-handler/magnet;application/x-bittorrent;\n"
        "StartupWMClass=ccbittorrent\n"
    )


def _quote_exec(arg: str) -> str:
    """Desktop Entry spec quoting: reserved characters need double quotes, % must be doubled."""
    arg = arg.replace("%", "%%")
    if arg and all(c.isalnum() or c in "/._-+=:,@%" for c in arg):
        return arg
    escaped = "".join("\\" + c if c in '"`$\\' else c for c in arg)
    return f'"{escaped}"'


def register(command: Sequence[str]) -> Path:
    """Write the desktop entry and make it the default for magnet links and .torrent files."""
    apps = data_home() / "applications"
    apps.mkdir(parents=True, exist_ok=True)
    entry = apps / DESKTOP_ID
    _write(entry, desktop_entry(command))
    mimeapps = config_home() / "mimeapps.list"
    parser = _read_mimeapps(mimeapps)
    for section in (_DEFAULTS, _ADDED):
        if not parser.has_section(section):
            parser.add_section(section)
    for mime in MIME_TYPES:
        parser.set(_DEFAULTS, mime, DESKTOP_ID)
        others = [d for d in parser.get(_ADDED, mime, fallback="").split(";") if d]
        parser.set(
            _ADDED, mime, ";".join([DESKTOP_ID, *[d for d in others if d != DESKTOP_ID]]) + ";"
        )
    _write_mimeapps(mimeapps, parser)
    return entry


def unregister() -> None:
    entry = data_home() / "applications" / DESKTOP_ID
    entry.unlink(missing_ok=True)
    mimeapps = config_home() / "mimeapps.list"
    if not mimeapps.exists():
        return
    parser = _read_mimeapps(mimeapps)
    for mime in MIME_TYPES:
        if parser.get(_DEFAULTS, mime, fallback=None) == DESKTOP_ID:
            parser.remove_option(_DEFAULTS, mime)
        if parser.has_option(_ADDED, mime):
            rest = [d for d in parser.get(_ADDED, mime).split(";") if d and d != DESKTOP_ID]
            if rest:
                parser.set(_ADDED, mime, ";".join(rest) + ";")
            else:
                parser.remove_option(_ADDED, mime)
    _write_mimeapps(mimeapps, parser)


def default_handler(mime: str) -> str | None:
    """The desktop id mimeapps.list names as the default for ``mime`` (None if unset)."""
    parser = _read_mimeapps(config_home() / "mimeapps.list")
    return parser.get(_DEFAULTS, mime, fallback=None)


def _read_mimeapps(path: Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, delimiters=("=",))
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # MIME types are case-sensitive keys
    if path.exists():
        parser.read(path, encoding="utf-8")
    return parser


def _write_mimeapps(path: Path, parser: configparser.ConfigParser) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines: list[str] = []
    for section in parser.sections():
        lines.append(f"[{section}]")
        lines += [f"{k}={v}" for k, v in parser.items(section)]
        lines.append("")
    _write(path, "\n".join(lines))


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


__all__ = [
    "DESKTOP_ID",
    "MIME_TYPES",
    "default_handler",
    "desktop_entry",
    "register",
    "unregister",
]

"""Windows registration under HKCU\\Software\\Classes (per user, no administrator rights).

``magnet:`` becomes a URL protocol handled by us, and ``.torrent`` files get a ProgID whose open
command is us. Windows 10+ may still ask the user to confirm the default app once; that prompt
cannot (and should not) be bypassed.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Sequence

PROG_ID = "ccBitTorrent.torrent"
_CLASSES = r"Software\Classes"


def command_line(command: Sequence[str]) -> str:
    """``"C:\\...\\ccbt-gui.exe" "%1"`` with Windows quoting rules."""
    return subprocess.list2cmdline(list(command)) + ' "%1"'


def registry_values(command: Sequence[str]) -> dict[str, dict[str, str]]:
    """Every key (relative to HKCU\\Software\\Classes) and its values ("" = default value)."""
    cmd = command_line(command)
    icon = f"{command[0]},0"
    return {
        "magnet": {"": "URL:Magnet link", "URL Protocol": ""},
        r"magnet\DefaultIcon": {"": icon},
        r"magnet\shell\open\command": {"": cmd},
        ".torrent": {"": PROG_ID, "Content Type": "application/x-bittorrent"},
        PROG_ID: {"": "BitTorrent file"},
        rf"{PROG_ID}\DefaultIcon": {"": icon},
        rf"{PROG_ID}\shell\open\command": {"": cmd},
    }


def register(command: Sequence[str]) -> str:
    if sys.platform != "win32":
        raise OSError("Windows registry registration only works on Windows")
    import winreg

    for key, values in registry_values(command).items():
        with winreg.CreateKey(winreg.HKEY_CURRENT_USER, rf"{_CLASSES}\{key}") as handle:
            for name, value in values.items():
                winreg.SetValueEx(handle, name, 0, winreg.REG_SZ, value)
    return r"registered magnet: and .torrent under HKCU\Software\Classes"


def unregister() -> str:
    if sys.platform != "win32":
        raise OSError("Windows registry registration only works on Windows")
    import winreg

    # deepest keys first: DeleteKey cannot remove a key that still has subkeys
    for key in sorted(registry_values(["x"]), key=lambda k: -k.count("\\")):
        if key == ".torrent":
            continue  # shared with other apps; only our ProgID and the magnet handler go
        with contextlib.suppress(FileNotFoundError):
            winreg.DeleteKey(winreg.HKEY_CURRENT_USER, rf"{_CLASSES}\{key}")
    return r"removed the magnet: handler and the ccBitTorrent .torrent ProgID"

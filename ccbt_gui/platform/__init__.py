"""Making the OS open magnet links and .torrent files with ccbt-gui.

* Linux/BSD (XDG): a ``.desktop`` entry declaring ``x-scheme-handler/magnet`` and
  ``application/x-bittorrent``, plus the defaults in ``mimeapps.list`` — see :mod:`.xdg`.
* Windows: per-user keys under ``HKCU\\Software\\Classes`` (no admin rights) — see
  :mod:`.windows`.
* macOS: URL schemes and document types are declared in the app bundle's ``Info.plist`` and picked
  up by Launch Services when the bundle is installed; there is no supported per-user runtime
  registration without pyobjc, so :mod:`.macos` only produces the plist fragment for the bundle.

The launched command receives the link/path as its argument; a running instance then gets it over
the single-instance socket (:mod:`ccbt_gui.single_instance`).
"""

from __future__ import annotations

import shutil
import sys

__all__ = ["launcher_command", "register", "unregister"]


def launcher_command() -> list[str]:
    """How the OS should start us: the frozen executable, the ``ccbt-gui`` script, or
    ``python -m ccbt_gui.app``."""
    if getattr(sys, "frozen", False):
        return [sys.executable]
    script = shutil.which("ccbt-gui")
    if script:
        return [script]
    return [sys.executable, "-m", "ccbt_gui.app"]


def register() -> str:
    """Register for this user on the current OS; returns a description of what was done."""
    if sys.platform == "win32":
        from ccbt_gui.platform import windows

        return windows.register(launcher_command())
    if sys.platform == "darwin":
        from ccbt_gui.platform import macos

        return macos.NOTE
    from ccbt_gui.platform import xdg

    path = xdg.register(launcher_command())
    return f"wrote {path} and set it as the default magnet/.torrent handler"


def unregister() -> str:
    if sys.platform == "win32":
        from ccbt_gui.platform import windows

        return windows.unregister()
    if sys.platform == "darwin":
        from ccbt_gui.platform import macos

        return macos.NOTE
    from ccbt_gui.platform import xdg

    xdg.unregister()
    return "removed the desktop entry and its defaults"

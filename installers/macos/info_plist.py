"""The Info.plist of the macOS app bundle, applied by ``build_app.spec`` (``BUNDLE(info_plist=)``).

URL scheme (``CFBundleURLTypes``: magnet) and document type (``CFBundleDocumentTypes``: .torrent)
come from :data:`ccbt_gui.platform.macos.INFO_PLIST`, the GUI's single source for what it
handles; this module adds what makes it a proper app: identifier, version, Retina, dark mode.
Launch Services registers the handlers when the .app is copied to /Applications.
"""

from __future__ import annotations

import copy
from typing import Any

from ccbt_gui.platform.macos import INFO_PLIST

BUNDLE_ID = "io.github.ccbittorrent.ccBitTorrent"


def info_plist(version: str) -> dict[str, Any]:
    plist: dict[str, Any] = copy.deepcopy(INFO_PLIST)
    for doc in plist.get("CFBundleDocumentTypes", []):
        doc.setdefault("CFBundleTypeIconFile", "ccbittorrent.icns")
    plist.update(
        {
            "CFBundleName": "ccBitTorrent",
            "CFBundleDisplayName": "ccBitTorrent",
            "CFBundleIdentifier": BUNDLE_ID,
            "CFBundleShortVersionString": version,
            "CFBundleVersion": version,
            "LSMinimumSystemVersion": "11.0",
            "LSApplicationCategoryType": "public.app-category.utilities",
            "NSHighResolutionCapable": True,
            # Follow the system light/dark appearance (Qt >= 6.5 reads it).
            "NSRequiresAquaSystemAppearance": False,
        }
    )
    return plist

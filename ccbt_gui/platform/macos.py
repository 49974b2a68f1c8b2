"""macOS: handlers are declared in the app bundle, not registered at runtime.

Launch Services reads ``CFBundleURLTypes`` (the ``magnet`` scheme) and ``CFBundleDocumentTypes``
(``.torrent``) from the bundle's Info.plist when the app is copied to /Applications; the user then
picks it once as the default. The build spec (PyInstaller ``info_plist=``) should merge
:data:`INFO_PLIST`. Opened links arrive as a QFileOpenEvent, not as argv.
"""

from __future__ import annotations

NOTE = (
    "macOS registers URL schemes and document types from the app bundle's Info.plist "
    "(CFBundleURLTypes / CFBundleDocumentTypes); install the .app bundle to make ccBitTorrent "
    "available as the magnet and .torrent handler."
)

INFO_PLIST: dict[str, object] = {
    "CFBundleURLTypes": [
        {"CFBundleURLName": "Magnet link", "CFBundleURLSchemes": ["magnet"]},
    ],
    "CFBundleDocumentTypes": [
        {
            "CFBundleTypeName": "BitTorrent file",
            "CFBundleTypeExtensions": ["torrent"],
            "CFBundleTypeMIMETypes": ["application/x-bittorrent"],
            "CFBundleTypeRole": "Viewer",
            "LSHandlerRank": "Owner",
        }
    ],
}

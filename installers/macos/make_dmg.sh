#!/usr/bin/env bash
# Wrap dist/ccBitTorrent.app (built by build_app.spec on macOS) in a compressed disk image with
# the usual drag-to-/Applications layout: dist/ccBitTorrent-<version>.dmg.
#
# usage: installers/macos/make_dmg.sh [--app PATH] [--out DIR] [--version X.Y.Z]
# The app is ad-hoc signed (enough to run locally and on CI); distributing to other Macs needs a
# Developer ID signature and notarization: see docs/install.md.
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
APP="$ROOT/dist/ccBitTorrent.app"
OUT="$ROOT/dist"
VERSION=""
while [ $# -gt 0 ]; do
    case "$1" in
        --app) APP="$2"; shift 2 ;;
        --out) OUT="$2"; shift 2 ;;
        --version) VERSION="$2"; shift 2 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
done
if [ "$(uname -s)" != "Darwin" ]; then
    echo "make_dmg.sh needs macOS (hdiutil)" >&2
    exit 1
fi
if [ ! -d "$APP/Contents/MacOS" ]; then
    echo "no app bundle at $APP: build it with pyinstaller build_app.spec" >&2
    exit 1
fi
if [ -z "$VERSION" ]; then
    VERSION="$(/usr/libexec/PlistBuddy -c 'Print :CFBundleShortVersionString' "$APP/Contents/Info.plist")"
fi
# The handlers Launch Services will register must be in the plist we ship.
/usr/libexec/PlistBuddy -c 'Print :CFBundleURLTypes:0:CFBundleURLSchemes:0' \
    "$APP/Contents/Info.plist" | grep -qx magnet
/usr/libexec/PlistBuddy -c 'Print :CFBundleDocumentTypes:0:CFBundleTypeExtensions:0' \
    "$APP/Contents/Info.plist" | grep -qx torrent

codesign --force --deep --sign - "$APP"
STAGE="$(mktemp -d)"
trap 'rm -rf "$STAGE"' EXIT
cp -R "$APP" "$STAGE/"
ln -s /Applications "$STAGE/Applications"
mkdir -p "$OUT"
DMG="$OUT/ccBitTorrent-$VERSION.dmg"
hdiutil create -volname "ccBitTorrent $VERSION" -srcfolder "$STAGE" -fs HFS+ \
    -format UDZO -ov "$DMG" >/dev/null
hdiutil verify "$DMG" >/dev/null
echo "$DMG"

#!/usr/bin/env bash
# Turn the PyInstaller one-folder bundle into the two Linux deliverables:
#
#   <out>/ccBitTorrent-<version>-<arch>.tar.gz   AppImage-style AppDir (AppRun, .desktop, icon at
#                                                the top; unpack anywhere and run ./AppRun)
#   <out>/ccbittorrent_<version>_<debarch>.deb   installs to /opt/ccbittorrent, /usr/bin links,
#                                                desktop entry, icons, AppStream metainfo; its
#                                                postinst makes us the system-wide default magnet
#                                                and .torrent handler through xdg-mime
#
# usage: installers/linux/package.sh [--bundle DIR] [--out DIR] [--version X.Y.Z] [--only deb|tar]
# DEB_COMPRESSION=gzip|none and TARBALL_GZIP_LEVEL=1 trade size for speed (the tests use them).
# Needs only coreutils, tar, dpkg-deb. Run as any user: file ownership in the .deb is forced to
# root with --root-owner-group, so no fakeroot is needed.
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
BUNDLE="$ROOT/dist/ccBitTorrent"
OUT="$ROOT/dist"
VERSION=""
ONLY=""
while [ $# -gt 0 ]; do
    case "$1" in
        --bundle) BUNDLE="$2"; shift 2 ;;
        --out) OUT="$2"; shift 2 ;;
        --version) VERSION="$2"; shift 2 ;;
        --only) ONLY="$2"; shift 2 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
done

if [ ! -x "$BUNDLE/ccBitTorrent" ] || [ ! -x "$BUNDLE/ccbt" ]; then
    echo "no bundle at $BUNDLE (expected executables ccBitTorrent and ccbt): run make dist" >&2
    exit 1
fi
if [ -z "$VERSION" ]; then
    VERSION="$(awk -F'"' '/^version *=/ {print $2; exit}' "$ROOT/pyproject.toml")"
fi
RES="$ROOT/resources"
DESKTOP_FILE="ccbittorrent.desktop"
# The icon name the desktop entry asks for (the GUI's generator decides it; follow it).
ICON_NAME="$(sed -n 's/^Icon=//p' "$RES/$DESKTOP_FILE")"
ARCH="$(uname -m)"
DEB_ARCH="$(dpkg --print-architecture 2>/dev/null || echo amd64)"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
STAGE="$(mktemp -d)"
trap 'rm -rf "$STAGE"' EXIT

install_icons() {  # $1 = share dir (…/usr/share)
    local share="$1" size
    for png in "$RES"/icons/ccbittorrent-*.png; do
        size="$(basename "$png" .png)"; size="${size#ccbittorrent-}"
        [ "$size" -le 512 ] || continue  # hicolor stops at 512x512; larger ones are for macOS
        install -D -m 644 "$png" "$share/icons/hicolor/${size}x${size}/apps/$ICON_NAME.png"
    done
    install -D -m 644 "$RES/icons/ccbittorrent.svg" "$share/icons/hicolor/scalable/apps/$ICON_NAME.svg"
}

build_tarball() {
    local name="ccBitTorrent-$VERSION-$ARCH"
    local appdir="$STAGE/$name"
    mkdir -p "$appdir"
    cp -a "$BUNDLE"/. "$appdir/"
    cat > "$appdir/AppRun" <<'EOF'
#!/bin/sh
# AppImage-style entry point: run the GUI from wherever this folder was unpacked.
# "./AppRun --register-handler" makes it your magnet/.torrent handler (per user).
HERE="$(dirname "$(readlink -f "$0")")"
exec "$HERE/ccBitTorrent" "$@"
EOF
    chmod 755 "$appdir/AppRun"
    install -m 644 "$RES/$DESKTOP_FILE" "$appdir/$DESKTOP_FILE"
    install -m 644 "$RES/icons/ccbittorrent-256.png" "$appdir/$ICON_NAME.png"
    ln -sf "$ICON_NAME.png" "$appdir/.DirIcon"
    install_icons "$appdir/usr/share"
    install -D -m 644 "$RES/ccbittorrent.metainfo.xml" \
        "$appdir/usr/share/metainfo/ccbittorrent.metainfo.xml"
    tar -C "$STAGE" --owner=0 --group=0 --numeric-owner -cf - "$name" \
        | gzip "-${TARBALL_GZIP_LEVEL:-9}" > "$OUT/$name.tar.gz"
    echo "$OUT/$name.tar.gz"
}

build_deb() {
    local pkg="$STAGE/deb"
    mkdir -p "$pkg/DEBIAN" "$pkg/opt/ccbittorrent" "$pkg/usr/bin"
    cp -a "$BUNDLE"/. "$pkg/opt/ccbittorrent/"
    ln -s /opt/ccbittorrent/ccBitTorrent "$pkg/usr/bin/ccbittorrent"
    ln -s /opt/ccbittorrent/ccbt "$pkg/usr/bin/ccbt"
    install -D -m 644 "$RES/$DESKTOP_FILE" "$pkg/usr/share/applications/$DESKTOP_FILE"
    install -D -m 644 "$RES/ccbittorrent.metainfo.xml" \
        "$pkg/usr/share/metainfo/ccbittorrent.metainfo.xml"
    install_icons "$pkg/usr/share"
    local size_kb
    size_kb="$(du -sk "$pkg" | cut -f1)"
    # PyInstaller copies Qt and the libraries it links (glib, fontconfig, xcb, ...) from the
    # build machine into the bundle, so the hard requirement is a glibc at least as new as the
    # build machine's. Display-side system pieces are Recommends: the offscreen platform and the
    # `ccbt` command line run without them (servers, containers).
    local glibc
    # (awk reads all of ldd's output: `| head` would SIGPIPE it and fail under pipefail)
    glibc="$(ldd --version | awk 'NR == 1 {print $NF}')"
    cat > "$pkg/DEBIAN/control" <<EOF
Package: ccbittorrent
Version: $VERSION
Architecture: $DEB_ARCH
Maintainer: ccBitTorrent developers <ccbittorrent@localhost>
Installed-Size: $size_kb
Section: net
Priority: optional
Depends: libc6 (>= $glibc)
Recommends: xdg-utils, desktop-file-utils, fontconfig-config, fonts-dejavu-core, libgl1, libegl1, libxcb-icccm4, libxcb-keysyms1, libwayland-client0, libwayland-cursor0, libwayland-egl1
Description: desktop BitTorrent client with a pure-Python asyncio engine
 ccBitTorrent opens magnet links and .torrent files, downloads and seeds
 several torrents at once and shows files, peers, trackers and speed charts.
 Also installs the ccbt command line.
EOF
    install -m 755 "$HERE/deb/postinst" "$pkg/DEBIAN/postinst"
    install -m 755 "$HERE/deb/postrm" "$pkg/DEBIAN/postrm"
    local deb="$OUT/ccbittorrent_${VERSION}_${DEB_ARCH}.deb"
    dpkg-deb --root-owner-group "-Z${DEB_COMPRESSION:-xz}" --build "$pkg" "$deb" >/dev/null
    echo "$deb"
}

[ "$ONLY" = "deb" ] || build_tarball
[ "$ONLY" = "tar" ] || build_deb

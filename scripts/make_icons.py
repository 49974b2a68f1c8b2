#!/usr/bin/env python3
"""Render the application icon set from ``resources/icons/ccbittorrent.svg``.

Output (checked in, so building a bundle needs no SVG renderer): ``ccbittorrent-<N>.png`` for
every size a desktop or installer asks for, ``ccbittorrent.ico`` (Windows: exe icon, Inno Setup,
file association) and ``ccbittorrent.icns`` (macOS bundle icon).

The PNGs come from ``rsvg-convert`` (Debian package ``librsvg2-bin``), the one renderer that gets
the SVG exactly right. ICO and ICNS are written here rather than through Pillow: both formats
accept PNG payloads (ICO since Windows Vista, ICNS since macOS 10.7), so they are just an index
around the PNGs already rendered, and the project does not need an imaging library for it.
"""

from __future__ import annotations

import argparse
import shutil
import struct
import subprocess
import sys
from pathlib import Path

ICON_DIR = Path(__file__).resolve().parent.parent / "resources" / "icons"
SOURCE = "ccbittorrent.svg"
PNG_SIZES = (16, 24, 32, 48, 64, 128, 256, 512, 1024)
ICO_SIZES = (16, 24, 32, 48, 64, 128, 256)
# ICNS element types holding PNG data, by pixel size (Apple's "icns" type table).
ICNS_TYPES = {16: b"icp4", 32: b"icp5", 64: b"icp6", 128: b"ic07", 256: b"ic08", 512: b"ic09"}
ICNS_RETINA_512 = b"ic10"  # 1024 px, shown as 512@2x

__all__ = ["ICNS_TYPES", "ICO_SIZES", "PNG_SIZES", "build_icns", "build_ico", "render_all"]


def png_name(size: int) -> str:
    return f"ccbittorrent-{size}.png"


def render_png(svg: Path, size: int, out: Path) -> None:
    exe = shutil.which("rsvg-convert")
    if exe is None:
        raise SystemExit("rsvg-convert not found: apt-get install librsvg2-bin")
    subprocess.run([exe, "-w", str(size), "-h", str(size), str(svg), "-o", str(out)], check=True)


def build_ico(pngs: dict[int, bytes]) -> bytes:
    """ICONDIR + one ICONDIRENTRY per size, each pointing at an embedded PNG."""
    sizes = sorted(pngs)
    header = struct.pack("<HHH", 0, 1, len(sizes))
    offset = len(header) + 16 * len(sizes)
    entries, payload = b"", b""
    for size in sizes:
        data = pngs[size]
        dim = 0 if size >= 256 else size  # 0 means 256 in the one-byte width/height fields
        entries += struct.pack("<BBBBHHII", dim, dim, 0, 0, 1, 32, len(data), offset + len(payload))
        payload += data
    return header + entries + payload


def build_icns(pngs: dict[int, bytes]) -> bytes:
    """``icns`` magic + total length, then (type, length, PNG) elements, big-endian."""
    body = b""
    for size, kind in sorted(ICNS_TYPES.items()):
        body += kind + struct.pack(">I", 8 + len(pngs[size])) + pngs[size]
    if 1024 in pngs:
        body += ICNS_RETINA_512 + struct.pack(">I", 8 + len(pngs[1024])) + pngs[1024]
    return b"icns" + struct.pack(">I", 8 + len(body)) + body


def render_all(icon_dir: Path = ICON_DIR) -> list[Path]:
    svg = icon_dir / SOURCE
    written = []
    pngs: dict[int, bytes] = {}
    for size in PNG_SIZES:
        out = icon_dir / png_name(size)
        render_png(svg, size, out)
        pngs[size] = out.read_bytes()
        written.append(out)
    ico = icon_dir / "ccbittorrent.ico"
    ico.write_bytes(build_ico({s: pngs[s] for s in ICO_SIZES}))
    icns = icon_dir / "ccbittorrent.icns"
    icns.write_bytes(build_icns(pngs))
    return [*written, ico, icns]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--icon-dir", type=Path, default=ICON_DIR)
    args = parser.parse_args(argv)
    for path in render_all(args.icon_dir):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())

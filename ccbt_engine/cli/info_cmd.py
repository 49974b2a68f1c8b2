"""``ccbt info``: show what a .torrent file or magnet link describes, without downloading.

Two audiences: people (an aligned summary) and scripts (``--json``, a stable schema whose keys
never change meaning; new keys may be added). Everything shown comes from an untrusted file, so
human output escapes control and formatting characters (a torrent must not be able to move the
cursor or reverse text in the user's terminal), and JSON is ASCII-only.

Errors (unreadable file, malformed torrent or magnet) print one line to stderr and exit with
code 2, the same as a usage error; no traceback.
"""

from __future__ import annotations

import datetime
import json
import unicodedata
from typing import Any, NoReturn

import click

from ccbt_engine.magnet import Magnet, MagnetError, magnet_from_metainfo, parse_magnet
from ccbt_engine.metainfo import Metainfo, MetainfoError, load_torrent

EXIT_BAD_INPUT = 2

__all__ = ["info", "magnet_to_dict", "metainfo_to_dict"]


def metainfo_to_dict(m: Metainfo, *, include_pads: bool = False) -> dict[str, Any]:
    """The ``--json`` form of a torrent (schema documented by the keys themselves)."""
    info = m.info
    files = [f for f in info.files if include_pads or not f.is_pad]
    return {
        "type": "torrent",
        "name": info.name,
        "version": "hybrid" if info.is_hybrid else "v2" if info.has_v2 else "v1",
        "info_hash_v1": info.info_hash_v1.hex() if info.info_hash_v1 else None,
        "info_hash_v2": info.info_hash_v2.hex() if info.info_hash_v2 else None,
        # size of the piece space, pad files included (what libtorrent calls total_size)
        "total_size": info.total_length,
        # bytes of real files, what ends up on disk
        "content_size": sum(f.length for f in info.files if not f.is_pad),
        "piece_length": info.piece_length,
        "num_pieces": info.num_pieces,
        "private": info.private,
        "source": info.source,
        "trackers": [list(tier) for tier in m.trackers],
        "web_seeds": list(m.web_seeds),
        "nodes": [[host, port] for host, port in m.nodes],
        "comment": m.comment,
        "created_by": m.created_by,
        "creation_date": m.creation_date,
        "magnet": magnet_from_metainfo(m).to_uri(),
        "num_files": sum(1 for f in info.files if not f.is_pad),
        "files": [
            {
                "path": "/".join(f.path),
                "size": f.length,
                "offset": f.offset,
                "attr": f.attr,
                "pad": f.is_pad,
                "pieces_root": f.pieces_root.hex() if f.pieces_root else None,
                "symlink_path": "/".join(f.symlink_path) if f.symlink_path else None,
            }
            for f in files
        ],
    }


def magnet_to_dict(m: Magnet) -> dict[str, Any]:
    """The ``--json`` form of a magnet link."""
    return {
        "type": "magnet",
        "name": m.display_name,
        "info_hash_v1": m.info_hash_v1.hex() if m.info_hash_v1 else None,
        "info_hash_v2": m.info_hash_v2.hex() if m.info_hash_v2 else None,
        "exact_length": m.exact_length,
        "trackers": list(m.trackers),
        "web_seeds": list(m.web_seeds),
        "peers": [[host, port] for host, port in m.peers],
        "select_only": list(m.select_only),
    }


def _safe(s: str) -> str:
    """Escape characters that would act on the terminal instead of being shown."""
    out = []
    for ch in s:
        if unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Zl", "Zp"):
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return "".join(out)


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{n} B" if unit == "B" else f"{value:.2f} {unit} ({n} bytes)"
        value /= 1024
    raise AssertionError("unreachable")


def _print_torrent(d: dict[str, Any]) -> None:
    rows: list[tuple[str, str]] = [
        ("Name", _safe(d["name"])),
        ("Version", d["version"]),
        ("Info hash v1", d["info_hash_v1"] or "-"),
        ("Info hash v2", d["info_hash_v2"] or "-"),
        ("Total size", _size(d["content_size"])),
        ("Pieces", f"{d['num_pieces']} x {_size(d['piece_length'])}"),
        ("Private", "yes" if d["private"] else "no"),
    ]
    if d["source"]:
        rows.append(("Source", _safe(d["source"])))
    if d["comment"]:
        rows.append(("Comment", _safe(d["comment"])))
    if d["created_by"]:
        rows.append(("Created by", _safe(d["created_by"])))
    if d["creation_date"] is not None:
        rows.append(("Created", _date(d["creation_date"])))
    for label, value in rows:
        click.echo(f"{label + ':':<14}{value}")
    click.echo("Trackers:" + ("" if d["trackers"] else " none"))
    for i, tier in enumerate(d["trackers"], 1):
        for url in tier:
            click.echo(f"  tier {i}: {_safe(url)}")
    if d["web_seeds"]:
        click.echo("Web seeds:")
        for url in d["web_seeds"]:
            click.echo(f"  {_safe(url)}")
    click.echo(f"Files ({d['num_files']}):")
    for f in d["files"]:
        flags = f" [{f['attr']}]" if f["attr"] else ""
        link = f" -> {_safe(f['symlink_path'])}" if f["symlink_path"] else ""
        click.echo(f"  {f['size']:>15}  {_safe(f['path'])}{flags}{link}")


def _date(ts: int) -> str:
    try:
        return datetime.datetime.fromtimestamp(ts, datetime.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    except (OverflowError, OSError, ValueError):
        return str(ts)


def _print_magnet(d: dict[str, Any]) -> None:
    click.echo(f"{'Name:':<14}{_safe(d['name']) if d['name'] is not None else '-'}")
    click.echo(f"{'Info hash v1:':<14}{d['info_hash_v1'] or '-'}")
    click.echo(f"{'Info hash v2:':<14}{d['info_hash_v2'] or '-'}")
    if d["exact_length"] is not None:
        click.echo(f"{'Total size:':<14}{_size(d['exact_length'])}")
    click.echo("Trackers:" + ("" if d["trackers"] else " none"))
    for url in d["trackers"]:
        click.echo(f"  {_safe(url)}")
    if d["web_seeds"]:
        click.echo("Web seeds:")
        for url in d["web_seeds"]:
            click.echo(f"  {_safe(url)}")
    if d["peers"]:
        click.echo("Peers:")
        for host, port in d["peers"]:
            click.echo(f"  {_safe(host)} port {port}")
    if d["select_only"]:
        click.echo(f"{'Select only:':<14}{', '.join(map(str, d['select_only']))}")


def _fail(message: str) -> NoReturn:
    click.echo(f"Error: {_safe(message)}", err=True)
    raise click.exceptions.Exit(EXIT_BAD_INPUT)


@click.command("info")
@click.argument("source", metavar="FILE.torrent|MAGNET")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
@click.option("--all", "show_all", is_flag=True, help="Also list pad files.")
def info(source: str, as_json: bool, show_all: bool) -> None:
    """Show name, infohashes, size, pieces, trackers and files of a torrent or magnet link."""
    if source.lstrip()[:7].lower() == "magnet:":
        try:
            d = magnet_to_dict(parse_magnet(source))
        except MagnetError as exc:
            _fail(f"invalid magnet link: {exc}")
    else:
        try:
            d = metainfo_to_dict(load_torrent(source), include_pads=show_all)
        except MetainfoError as exc:
            _fail(f"{source}: {exc}")
    if as_json:
        click.echo(json.dumps(d, indent=2, ensure_ascii=True))
    elif d["type"] == "magnet":
        _print_magnet(d)
    else:
        _print_torrent(d)

"""``ccbt create``: make a .torrent (v1, v2 or hybrid) from a file or folder.

Trackers and tiers (BEP 12), as in mktorrent: every ``-t`` starts a new tier, and one ``-t`` with
comma-separated URLs puts them in the same tier::

    ccbt create ./album -t udp://a/announce,udp://b/announce -t http://backup/announce

makes tier 1 = {a, b} (tried in random order) and tier 2 = {backup} (used when tier 1 fails).
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path
from typing import Any, cast

import click
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from ccbt_engine import bencode
from ccbt_engine.create import DEFAULT_VERSION, CreateError, TorrentVersion, create_torrent

_SIZE_RE = re.compile(r"^\s*(\d+)\s*([KMG]?)(?:I?B)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3}


class _Failed(click.ClickException):
    """A user-facing error: message on stderr, exit status 2 (bad input, like usage errors)."""

    exit_code = 2


def parse_size(text: str) -> int:
    """``256K``, ``1M``, ``4MiB``, ``16384``: binary units, a bare number is bytes."""
    m = _SIZE_RE.match(text)
    if not m:
        raise ValueError(f"{text!r} is not a size (use e.g. 256K, 1M or a number of bytes)")
    return int(m.group(1)) * _UNITS[m.group(2).upper()]


# ParamType is generic in recent click only; subscripting it would break older releases.
class _SizeType(click.ParamType):  # type: ignore[type-arg]
    name = "SIZE"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        try:
            return parse_size(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


def tracker_tiers(values: tuple[str, ...]) -> list[list[str]]:
    """One tier per ``-t``; commas inside one value separate trackers of the same tier."""
    tiers = []
    for value in values:
        tier = [url.strip() for url in value.split(",") if url.strip()]
        if tier:
            tiers.append(tier)
    return tiers


def infohashes(torrent: bytes) -> tuple[str | None, str | None]:
    """Hex v1 (SHA-1) and v2 (SHA-256) infohashes of a torrent we just made, None if absent."""
    top, spans = bencode.decode_with_spans(torrent)
    start, end = spans[b"info"]
    raw = torrent[start:end]
    info = top[b"info"]
    v1 = hashlib.sha1(raw).hexdigest() if b"pieces" in info else None
    v2 = hashlib.sha256(raw).hexdigest() if info.get(b"meta version") == 2 else None
    return v1, v2


def _write_atomically(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@click.command("create")
@click.argument("path", type=click.Path(path_type=Path))
@click.option(
    "-t",
    "--tracker",
    "trackers",
    multiple=True,
    metavar="URL[,URL...]",
    help="Announce URL. Repeat for more tiers; commas put URLs in the same tier.",
)
@click.option(
    "-p",
    "--piece-size",
    type=_SizeType(),
    default=None,
    help="Piece length, e.g. 256K, 1M or bytes (default: chosen from the payload size).",
)
@click.option("--private", is_flag=True, help="Private torrent: no DHT, PEX or LSD (BEP 27).")
@click.option(
    "-w", "--webseed", "web_seeds", multiple=True, metavar="URL", help="Web seed (BEP 19)."
)
@click.option("--v1", "version", flag_value="v1", help="v1 torrent (SHA-1, BEP 3) only.")
@click.option("--v2", "version", flag_value="v2", help="v2 torrent (SHA-256, BEP 52) only.")
@click.option(
    "--hybrid",
    "version",
    flag_value="hybrid",
    default=DEFAULT_VERSION == "hybrid",
    help="v1 + v2 in one torrent, usable by every client (default).",
)
@click.option("-c", "--comment", default=None, help="Free-text comment.")
@click.option(
    "-s", "--source", default=None, help="Source tag in the info dict (private trackers)."
)
@click.option("--no-date", is_flag=True, help="Leave out the creation date (reproducible output).")
@click.option("-j", "--workers", type=click.IntRange(min=1), default=None, help="Hashing threads.")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Where to write the .torrent (default: ./NAME.torrent).",
)
@click.option("-f", "--force", is_flag=True, help="Overwrite the output file if it exists.")
def create(
    path: Path,
    trackers: tuple[str, ...],
    piece_size: int | None,
    private: bool,
    web_seeds: tuple[str, ...],
    version: str,
    comment: str | None,
    source: str | None,
    no_date: bool,
    workers: int | None,
    output: Path | None,
    force: bool,
) -> None:
    """Create a .torrent for the file or folder PATH and print its infohashes."""
    if output is None:
        output = Path(f"{Path(os.path.abspath(path)).name}.torrent")
    if output.exists() and not force:
        raise _Failed(f"{output} already exists (use --force to overwrite)")
    if not output.parent.is_dir():
        raise _Failed(f"{output.parent}: output folder does not exist")
    console = Console(stderr=True)
    columns = (
        TextColumn("[bold]hashing"),
        BarColumn(),
        DownloadColumn(binary_units=True),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
    )
    # Not on a terminal (piped, CI): no bar, whose redraws would only litter the log.
    with Progress(
        *columns, console=console, transient=True, disable=not console.is_terminal
    ) as bar:
        task = bar.add_task("hashing", total=None)

        def on_progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        try:
            torrent = create_torrent(
                path,
                trackers=tracker_tiers(trackers),
                piece_length=piece_size,
                private=private,
                web_seeds=web_seeds,
                version=cast(TorrentVersion, version),
                comment=comment,
                source=source,
                creation_date=0 if no_date else None,
                progress=on_progress,
                workers=workers,
            )
        except CreateError as exc:
            raise _Failed(str(exc)) from None
    try:
        _write_atomically(output, torrent)
    except OSError as exc:
        raise _Failed(f"{output}: {exc.strerror}") from None
    v1, v2 = infohashes(torrent)
    click.echo(f"wrote {output} ({version})")
    if v1:
        click.echo(f"infohash v1: {v1}")
    if v2:
        click.echo(f"infohash v2: {v2}")

"""``ccbt download`` and ``ccbt seed``: run one torrent in the foreground with a progress bar.

Peers come from ``--peer HOST:PORT`` (and from trackers once they are implemented). Ctrl-C stops
cleanly: the session flushes written data before the process exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
)

from ccbt_engine.api import MetainfoError, Session, SessionError, TorrentHandle, TorrentStatus
from ccbt_engine.config import ConfigError, load_settings

console = Console(stderr=True)


def parse_peer(text: str) -> tuple[str, int]:
    """``host:port`` or ``[v6]:port`` → (host, port)."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536 or not host:
        raise click.BadParameter(f"{text!r} is not HOST:PORT")
    return host.strip("[]"), int(port)


def _peers_option(f: click.decorators.FC) -> click.decorators.FC:
    return click.option(
        "--peer",
        "peers",
        multiple=True,
        metavar="HOST:PORT",
        help="Connect to this peer (repeatable).",
    )(f)


def _port_option(f: click.decorators.FC) -> click.decorators.FC:
    return click.option(
        "--port", type=click.IntRange(0, 65535), default=None, help="Listen port (0 = any free)."
    )(f)


@click.command()
@click.argument("torrent", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "-o",
    "--output",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder to save into (default: disk.download_path).",
)
@click.option("--seed/--no-seed", default=False, help="Keep seeding after the download finishes.")
@click.option("--sequential", is_flag=True, help="Download pieces in order.")
@_peers_option
@_port_option
def download(
    torrent: Path,
    output: Path | None,
    seed: bool,
    sequential: bool,
    peers: tuple[str, ...],
    port: int | None,
) -> None:
    """Download TORRENT, showing progress; Ctrl-C stops cleanly."""
    addresses = [parse_peer(p) for p in peers]
    _run(_download(torrent, output, seed, sequential, addresses, port))


@click.command()
@click.argument("torrent", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--data",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    required=True,
    help="Folder that holds the torrent's data.",
)
@_peers_option
@_port_option
def seed(torrent: Path, data: Path, peers: tuple[str, ...], port: int | None) -> None:
    """Check the data of TORRENT in --data and seed it until Ctrl-C."""
    addresses = [parse_peer(p) for p in peers]
    _run(_download(torrent, data, True, False, addresses, port, seed_only=True))


def _run(coro: object) -> None:
    try:
        asyncio.run(coro)  # type: ignore[arg-type]
    except (MetainfoError, SessionError, ConfigError) as exc:
        console.print(f"[red]error:[/red] {exc}")
        sys.exit(2)


async def _download(
    torrent_path: Path,
    output: Path | None,
    keep_seeding: bool,
    sequential: bool,
    peers: list[tuple[str, int]],
    port: int | None,
    *,
    seed_only: bool = False,
) -> None:
    settings = load_settings()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    with contextlib.suppress(NotImplementedError):  # Windows: KeyboardInterrupt instead
        loop.add_signal_handler(signal.SIGINT, stop.set)
        loop.add_signal_handler(signal.SIGTERM, stop.set)
    # resume data lives in the state folder shared with the GUI; only this torrent is loaded
    async with Session(settings, listen_port=port, persist=True, restore=False) as session:
        handle = await session.add_torrent(torrent_path, output, sequential=sequential)
        console.print(f"[bold]{handle.name}[/bold]  listening on port {session.listen_port}")
        for host, p in peers:
            handle.connect_peer(host, p)
        await _show_progress(handle, stop, keep_seeding or seed_only)
        status = handle.status()
    if status.error:
        console.print(f"[red]error:[/red] {status.error}")
        sys.exit(1)
    if not seed_only and status.wanted_done < status.wanted_size:
        console.print("stopped before completion; run again to continue")
        sys.exit(130)


async def _show_progress(handle: TorrentHandle, stop: asyncio.Event, keep_seeding: bool) -> None:
    columns = (
        TextColumn("{task.fields[state]:<11}"),
        BarColumn(),
        TaskProgressColumn(),
        DownloadColumn(binary_units=True),
        TextColumn("↓ {task.fields[down]}/s ↑ {task.fields[up]}/s  peers {task.fields[peers]}"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, transient=False) as progress:
        status = handle.status()
        task = progress.add_task("", total=status.wanted_size or 1, **_fields(status))
        while not stop.is_set():
            status = handle.status()
            progress.update(task, completed=status.wanted_done, **_fields(status))
            if status.error:
                return
            finished = status.wanted_done >= status.wanted_size and status.state == "seeding"
            if finished and not keep_seeding:
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.5)


def _fields(s: TorrentStatus) -> dict[str, Any]:
    return {
        "state": s.state,
        "down": _size(s.download_rate),
        "up": _size(s.upload_rate),
        "peers": s.num_peers,
    }


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024:
            return f"{n:.1f} {unit}" if unit != "B" else f"{n:.0f} B"
        n /= 1024
    return f"{n:.1f} TiB"

"""``ccbt magnet "magnet:?..."``: fetch a magnet link's metadata from peers, then download it.

The link's ``x.pe`` peers and ``--peer`` addresses are dialled (trackers and the DHT join in as
the session grows them); BEP 53 ``so=`` selects files. Shares the progress display and Ctrl-C
handling of ``ccbt download``.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from pathlib import Path

import click

from ccbt_engine.api import Session
from ccbt_engine.cli.download_cmd import (
    _peers_option,
    _port_option,
    _run,
    _show_progress,
    console,
    parse_peer,
)
from ccbt_engine.config import load_settings
from ccbt_engine.magnet import MagnetError, parse_magnet
from ccbt_engine.magnet_fetch import MagnetHandle


@click.command()
@click.argument("uri")
@click.option(
    "-o",
    "--output",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder to save into (default: disk.download_path).",
)
@click.option("--seed/--no-seed", default=False, help="Keep seeding after the download finishes.")
@_peers_option
@_port_option
def magnet(
    uri: str, output: Path | None, seed: bool, peers: tuple[str, ...], port: int | None
) -> None:
    """Download the torrent of magnet link URI (quote it: it contains '&')."""
    try:
        parse_magnet(uri)
    except MagnetError as exc:
        raise click.BadParameter(str(exc), param_hint="URI") from exc
    addresses = [parse_peer(p) for p in peers]
    _run(_magnet(uri, output, seed, addresses, port))


async def _magnet(
    uri: str,
    output: Path | None,
    keep_seeding: bool,
    peers: list[tuple[str, int]],
    port: int | None,
) -> None:
    settings = load_settings()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    with contextlib.suppress(NotImplementedError):
        loop.add_signal_handler(signal.SIGINT, stop.set)
        loop.add_signal_handler(signal.SIGTERM, stop.set)
    async with Session(settings, listen_port=port) as session:
        handle = await session.add_magnet(uri, output)
        assert isinstance(handle, MagnetHandle)
        console.print(f"[bold]{handle.name}[/bold]  listening on port {session.listen_port}")
        for host, p in peers:
            handle.connect_peer(host, p)
        if not await _wait_metadata(handle, stop):
            console.print("stopped before the metadata arrived")
            sys.exit(130)
        console.print(f"metadata received: [bold]{handle.name}[/bold]")
        await _show_progress(handle, stop, keep_seeding)
        status = handle.status()
    if status.error:
        console.print(f"[red]error:[/red] {status.error}")
        sys.exit(1)
    if status.wanted_done < status.wanted_size:
        console.print("stopped before completion")
        sys.exit(130)


async def _wait_metadata(handle: MagnetHandle, stop: asyncio.Event) -> bool:
    """Show the metadata phase until it ends; False when the user stopped it first."""
    with console.status("fetching metadata …") as spinner:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await handle.wait_metadata(0.5)
                return True
            status = handle.status()
            if status.error:
                return True  # the caller reports it
            spinner.update(
                f"fetching metadata … {status.num_peers} peers, "
                f"{status.checking_progress:.0%} received"
            )
    return False

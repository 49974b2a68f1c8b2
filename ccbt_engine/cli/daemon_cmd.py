"""``ccbt daemon``: run the engine headless and serve it over the remote API until a signal.

The session persists like the GUI's (same state folder: the torrent list and resume data
survive restarts, and the saved torrents come back at start). SIGINT/SIGTERM stop cleanly: the
API closes first (no new commands), then the session flushes data and writes resume state, and
the process exits 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from typing import NoReturn

import click
from rich.console import Console

from ccbt_engine.api import Session, SessionError
from ccbt_engine.config import ConfigError, Settings, load_settings
from ccbt_engine.remote.auth import RemoteAuthError, check_bind
from ccbt_engine.remote.server import RemoteServer, load_password

log = logging.getLogger("ccbt.daemon")
console = Console(stderr=True)


@click.command()
@click.option("--host", default=None, help="Address the API binds to (default: remote.host).")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=None,
    help="API port (default: remote.port; 0 = any free port, printed at start).",
)
@click.option(
    "--listen-port",
    type=click.IntRange(0, 65535),
    default=None,
    help="BitTorrent listen port (default: network.listen_port).",
)
def daemon(host: str | None, port: int | None, listen_port: int | None) -> None:
    """Run the engine without a window and serve the remote API (docs/remote.md)."""
    try:
        settings = load_settings()
    except ConfigError as exc:
        _fail(str(exc))
    try:
        asyncio.run(_serve(settings, host, port, listen_port))
    except (RemoteAuthError, SessionError, ConfigError) as exc:
        _fail(str(exc))


def _fail(message: str) -> NoReturn:
    console.print(f"[red]error:[/red] {message}", highlight=False)
    sys.exit(2)


async def _serve(
    settings: Settings, host: str | None, port: int | None, listen_port: int | None
) -> None:
    bind_host = settings.remote.host if host is None else host
    password = load_password()
    # check before starting the session: a refused bind must not touch the state folder
    check_bind(bind_host, password)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    with contextlib.suppress(NotImplementedError):  # Windows: KeyboardInterrupt instead
        loop.add_signal_handler(signal.SIGINT, stop.set)
        loop.add_signal_handler(signal.SIGTERM, stop.set)
    session = await _start_session(settings, listen_port)
    try:
        server = RemoteServer(
            session,
            host=bind_host,
            port=settings.remote.port if port is None else port,
            username=settings.remote.username,
            password=password,
        )
        try:
            await server.start()
        except OSError as exc:
            raise SessionError(f"cannot serve the remote API on {bind_host}: {exc}") from exc
        auth = "password required" if server.requires_auth else "no password: loopback only"
        console.print(
            f"ccbt daemon: remote API on {server.url} ({auth}); "
            f"peers on port {session.listen_port}; {len(session.torrents())} torrents",
            highlight=False,
            soft_wrap=True,
        )
        try:
            await stop.wait()
        finally:
            console.print(
                "ccbt daemon: stopping (saving resume data) …", highlight=False, soft_wrap=True
            )
            await server.stop()
    finally:
        await session.stop()
    console.print("ccbt daemon: stopped", highlight=False, soft_wrap=True)


async def _start_session(settings: Settings, listen_port: int | None) -> Session:
    """Start the persistent session; a busy configured port falls back to a free one (as the
    GUI does), since a seedbox that does not come up at all is worse than one on a new port."""
    session = Session(settings, listen_port=listen_port, persist=True)
    try:
        await session.start()
    except SessionError as exc:
        await session.stop()
        if listen_port is not None:
            raise
        log.warning("listen port busy (%s); using a random port", exc)
        console.print(f"[yellow]warning:[/yellow] {exc}; listening on a random port instead")
        session = Session(settings, listen_port=0, persist=True)
        await session.start()
    return session

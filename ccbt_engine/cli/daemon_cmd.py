"""``ccbt daemon``: run the engine headless and serve it over the remote API until a signal.

The session persists like the GUI's (same state folder: the torrent list and resume data
survive restarts, and the saved torrents come back at start). SIGINT/SIGTERM stop cleanly: the
API closes first (no new commands), then the session flushes data and writes resume state, and
the process exits 0.

Settings are re-read live: on SIGHUP, and when a config file changes (``ccbt config set`` on the
same machine), so log level, limits, metrics and the rest apply without a restart; a changed
``remote.host``/``port``/``username`` rebinds the API. Logging follows ``observability.log_*``
(stderr at ``log_level``, plus the rotating file), which is what a service manager collects.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

import click
from rich.console import Console

from ccbt_engine.api import Session, SessionError
from ccbt_engine.config import ConfigError, Settings, load_settings
from ccbt_engine.config.loader import local_config_path, user_config_path
from ccbt_engine.observability.logs import configure_logging
from ccbt_engine.remote.auth import RemoteAuthError, check_bind
from ccbt_engine.remote.server import RemoteServer, load_password

log = logging.getLogger("ccbt.daemon")
console = Console(stderr=True)
#: seconds between looks at the config files' modification times
WATCH_INTERVAL = 2.0


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
@click.pass_context
def daemon(ctx: click.Context, host: str | None, port: int | None, listen_port: int | None) -> None:
    """Run the engine without a window and serve the remote API (docs/remote.md)."""
    try:
        settings = load_settings()
    except ConfigError as exc:
        _fail(str(exc))
    flags = ctx.find_root().params
    console_level = logging.DEBUG if flags.get("debug") else None
    daemon = Daemon(settings, host, port, listen_port, console_level=console_level)
    try:
        asyncio.run(daemon.run())
    except (RemoteAuthError, SessionError, ConfigError) as exc:
        _fail(str(exc))


def _fail(message: str) -> NoReturn:
    console.print(f"[red]error:[/red] {message}", highlight=False)
    sys.exit(2)


def _say(message: str) -> None:
    console.print(message, highlight=False, soft_wrap=True)


class Daemon:
    """One daemon run: the session, the API server, and the settings it follows."""

    def __init__(
        self,
        settings: Settings,
        host: str | None,
        port: int | None,
        listen_port: int | None,
        *,
        console_level: int | None = None,
        load: Callable[[], Settings] = load_settings,
        watched: tuple[Path, ...] | None = None,
    ) -> None:
        self.settings = settings
        self._host, self._port, self._listen_port = host, port, listen_port
        self._console_level = console_level
        self._load = load
        self._watched = (
            watched if watched is not None else (user_config_path(), local_config_path())
        )
        self._stop = asyncio.Event()
        self._reload = asyncio.Event()
        self.session: Session | None = None
        self.server: RemoteServer | None = None
        self._bind: tuple[str, int, str, str | None] | None = None

    def _configure_logging(self) -> None:
        # stderr at log_level: a service manager (systemd, docker) keeps it; --debug lowers it
        configure_logging(self.settings.observability, console_level=self._console_level)

    def _wanted_bind(self, password: str | None) -> tuple[str, int, str, str | None]:
        remote = self.settings.remote
        host = remote.host if self._host is None else self._host
        port = remote.port if self._port is None else self._port
        return host, port, remote.username, password

    async def run(self) -> None:
        self._configure_logging()
        password = await asyncio.to_thread(load_password)
        bind = self._wanted_bind(password)
        # check before starting the session: a refused bind must not touch the state folder
        check_bind(bind[0], password)
        handled = self._handle_signals()
        self.session = session = await _start_session(self.settings, self._listen_port)
        try:
            await self._serve(bind)
            watcher = asyncio.create_task(self._watch_config())
            try:
                await self._main_loop()
            finally:
                watcher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watcher
                _say("ccbt daemon: stopping (saving resume data) …")
                if self.server is not None:
                    await self.server.stop()
        finally:
            await session.stop()
            loop = asyncio.get_running_loop()
            for sig in handled:
                loop.remove_signal_handler(sig)
        _say("ccbt daemon: stopped")

    def _handle_signals(self) -> list[signal.Signals]:
        """SIGINT/SIGTERM stop, SIGHUP reloads the settings (not on Windows: Ctrl-C there)."""
        loop = asyncio.get_running_loop()
        wanted = [(signal.SIGINT, self._stop.set), (signal.SIGTERM, self._stop.set)]
        if hasattr(signal, "SIGHUP"):
            wanted.append((signal.SIGHUP, self._reload.set))
        handled = []
        for sig, action in wanted:
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, action)
                handled.append(sig)
        return handled

    async def _serve(self, bind: tuple[str, int, str, str | None]) -> None:
        assert self.session is not None
        host, port, username, password = bind
        server = RemoteServer(
            self.session, host=host, port=port, username=username, password=password
        )
        try:
            await server.start()
        except OSError as exc:
            raise SessionError(f"cannot serve the remote API on {host}: {exc}") from exc
        self.server, self._bind = server, bind
        auth = "password required" if server.requires_auth else "no password: loopback only"
        _say(
            f"ccbt daemon: remote API on {server.url} ({auth}); "
            f"peers on port {self.session.listen_port}; {len(self.session.torrents())} torrents"
        )

    async def _main_loop(self) -> None:
        stop = asyncio.ensure_future(self._stop.wait())
        try:
            while not self._stop.is_set():
                reload = asyncio.ensure_future(self._reload.wait())
                await asyncio.wait({stop, reload}, return_when=asyncio.FIRST_COMPLETED)
                reload.cancel()
                if self._reload.is_set() and not self._stop.is_set():
                    self._reload.clear()
                    await self.reload()
        finally:
            stop.cancel()

    async def reload(self) -> None:
        """Re-read the settings and apply what changed; a broken file keeps the old ones."""
        assert self.session is not None
        try:
            new = await asyncio.to_thread(self._load)
        except ConfigError as exc:
            log.error("settings not reloaded: %s", exc)
            return
        old, self.settings = self.settings, new
        changes = old.diff(new)
        if any(k.startswith("observability.log_") for k in changes):
            self._configure_logging()
        try:
            await self.session.apply_settings(new)
        except SessionError as exc:
            log.error("settings reloaded, but not all applied: %s", exc)
        await self._rebind_if_needed()
        if changes:
            log.info("settings reloaded: %s", ", ".join(sorted(changes)))

    async def _rebind_if_needed(self) -> None:
        password = await asyncio.to_thread(load_password)
        bind = self._wanted_bind(password)
        if bind == self._bind:
            return
        try:
            check_bind(bind[0], password)
        except RemoteAuthError as exc:
            log.error("remote API kept on %s: %s", self.server and self.server.url, exc)
            return
        old = self.server
        if old is not None:
            await old.stop()
        try:
            await self._serve(bind)
        except SessionError as exc:
            log.error("%s; serving the previous address again", exc)
            if self._bind is not None:
                await self._serve(self._bind)

    async def _watch_config(self) -> None:
        """Reload when a config file appears, disappears or changes (``ccbt config set``)."""
        seen = await asyncio.to_thread(_stamps, self._watched)
        while True:
            await asyncio.sleep(WATCH_INTERVAL)
            now = await asyncio.to_thread(_stamps, self._watched)
            if now != seen:
                seen = now
                self._reload.set()


def _stamps(paths: tuple[Path, ...]) -> tuple[tuple[int, int] | None, ...]:
    out: list[tuple[int, int] | None] = []
    for path in paths:
        try:
            st = path.stat()
        except OSError:
            out.append(None)
        else:
            out.append((st.st_mtime_ns, st.st_size))
    return tuple(out)


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

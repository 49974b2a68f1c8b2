"""The remote API of an in-process engine, following ``remote.*`` live (the GUI's Web API).

``ccbt daemon`` always serves (that is its purpose); a desktop client serves its engine only
while ``remote.enabled`` is on, like qBittorrent's Web UI switch, so a GUI can be driven by
``ccbt dashboard`` / ``ccbt remote`` or a script. Turning the switch or changing the address,
port or user name takes effect without restarting the engine; a bind failure or a refused
configuration (a public address without a password) is logged and leaves the engine running.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping

from ccbt_engine.api import Session
from ccbt_engine.config import Changes, LiveSettings, Settings
from ccbt_engine.remote.auth import RemoteAuthError
from ccbt_engine.remote.server import RemoteServer, load_password

__all__ = ["RemoteService"]

log = logging.getLogger(__name__)


class RemoteService:
    """Starts, stops and rebinds one :class:`RemoteServer` as the ``remote`` section changes."""

    def __init__(self, session: Session, *, env: Mapping[str, str] | None = None) -> None:
        self.session = session
        self._env = env
        self.server: RemoteServer | None = None
        #: why the API is not served although enabled (bind error, refused settings)
        self.error: str | None = None
        self._bound: tuple[str, int, str] | None = None
        self._lock = asyncio.Lock()
        self._pending: set[asyncio.Task[None]] = set()

    async def apply(self, settings: Settings) -> None:
        """Serve per ``settings.remote``: start, stop, or rebind when the address changed."""
        async with self._lock:
            remote = settings.remote
            wanted = (remote.host, remote.port, remote.username) if remote.enabled else None
            if wanted == self._bound and (wanted is None or self.server is not None):
                return
            await self._stop_locked()
            if wanted is None:
                return
            try:
                # the keyring may be a D-Bus round trip: not on the loop
                password = await asyncio.to_thread(load_password, self._env)
                server = RemoteServer(
                    self.session,
                    host=remote.host,
                    port=remote.port,
                    username=remote.username,
                    password=password,
                )
                await server.start()
            except (RemoteAuthError, OSError) as exc:
                self.error = str(exc)
                self._bound = wanted
                log.error("remote API not served: %s", exc)
                return
            self.server, self._bound, self.error = server, wanted, None
            log.info("remote API on %s", server.url)

    def follow(self, live: LiveSettings) -> Callable[[], None]:
        """Apply ``live``'s settings now (in the background) and after each ``remote`` change;
        returns the unsubscribe function. Call from the engine's loop."""

        def changed(_changes: Changes, settings: Settings) -> None:
            self._spawn(settings)

        self._spawn(live.current)
        return live.subscribe(changed, "remote")

    async def stop(self) -> None:
        """Stop serving (and wait for pending applies, so nothing restarts it afterwards)."""
        for task in list(self._pending):
            task.cancel()
        await asyncio.gather(*self._pending, return_exceptions=True)
        async with self._lock:
            await self._stop_locked()

    async def _stop_locked(self) -> None:
        self._bound = None
        if self.server is not None:
            server, self.server = self.server, None
            await server.stop()

    def _spawn(self, settings: Settings) -> None:
        task = asyncio.ensure_future(self.apply(settings))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

"""The Prometheus endpoint (``observability.enable_metrics``): ``GET /metrics`` on the engine loop.

prometheus_client's own HTTP server runs in a thread, where reading the engine's state would
race the loop; here an aiohttp server on the engine's loop calls ``generate_latest`` instead, so
a scrape reads a consistent state and never blocks anything but itself (it takes well under a
millisecond for a few hundred torrents).

:class:`MetricsService` is owned by the session: it starts the server when the session starts
with metrics enabled and follows ``enable_metrics`` / ``metrics_host`` / ``metrics_port`` live.
A port that cannot be bound is logged, never fatal: the torrents matter more than the graphs.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING

from aiohttp import web
from prometheus_client import ProcessCollector
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import CollectorRegistry

from ccbt_engine.observability.metrics import SessionCollector, session_registry

if TYPE_CHECKING:
    from ccbt_engine.session import SessionCore

__all__ = ["METRICS_KEYS", "MetricsServer", "MetricsService"]

log = logging.getLogger(__name__)

#: the settings that (re)start or stop the endpoint
METRICS_KEYS = frozenset(
    {
        "observability.enable_metrics",
        "observability.metrics_host",
        "observability.metrics_port",
    }
)


class MetricsServer:
    """Serves one registry at ``http://host:port/metrics``; ``port=0`` picks a free port."""

    def __init__(self, registry: CollectorRegistry, host: str, port: int) -> None:
        self.registry = registry
        self.host = host
        self.port = port
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        host = self.host
        with contextlib.suppress(ValueError):
            if ipaddress.ip_address(host).version == 6:
                host = f"[{host}]"
        return f"http://{host}:{self.port}/metrics"

    async def start(self) -> None:
        """Bind and serve; OSError (port busy, address not local) propagates after cleanup."""
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/", self._index)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        try:
            await web.TCPSite(runner, self.host, self.port, reuse_address=True).start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        for address in runner.addresses:
            if isinstance(address, tuple) and len(address) >= 2:
                self.port = int(address[1])
                break

    async def stop(self) -> None:
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    async def _metrics(self, request: web.Request) -> web.Response:
        # text format 0.0.4, or OpenMetrics when the scraper asks for it
        encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
        body = encoder(self.registry)
        response = web.Response(body=body)
        response.headers["Content-Type"] = content_type
        return response

    async def _index(self, request: web.Request) -> web.Response:
        return web.Response(text="ccbt metrics: see /metrics\n")


class MetricsService:
    """The session's metrics: counting from construction, served while enabled."""

    def __init__(self, core: SessionCore) -> None:
        self._core = core
        self.collector = SessionCollector(core)
        self.registry = session_registry(self.collector)
        ProcessCollector(registry=self.registry)  # CPU, memory, open files (Linux /proc)
        self.server: MetricsServer | None = None

    async def start(self) -> None:
        """Serve if ``observability.enable_metrics`` (called when the session starts)."""
        await self._reconcile()

    async def settings_changed(self, keys: Iterable[str]) -> None:
        """Follow a settings change: start, stop or rebind when a metrics key changed."""
        if METRICS_KEYS.intersection(keys):
            await self._reconcile(restart=True)

    async def stop(self) -> None:
        if self.server is not None:
            server, self.server = self.server, None
            await server.stop()

    def close(self) -> None:
        """Stop counting events (the session is gone)."""
        self.collector.close()

    async def _reconcile(self, *, restart: bool = False) -> None:
        obs = self._core.settings.observability
        if restart or not obs.enable_metrics:
            await self.stop()
        if not obs.enable_metrics or self.server is not None:
            return
        server = MetricsServer(self.registry, obs.metrics_host, obs.metrics_port)
        try:
            await server.start()
        except OSError as exc:
            log.error("metrics not served on %s:%d: %s", obs.metrics_host, obs.metrics_port, exc)
            return
        if not ipaddress.ip_address(obs.metrics_host).is_loopback:
            log.warning("metrics are served without authentication on %s", server.url)
        self.server = server
        log.info("Prometheus metrics on %s", server.url)

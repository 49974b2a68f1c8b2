"""A TCP server on 127.0.0.1 for peers scripted byte by byte in tests (hostile or odd ones).

Subclasses write ``_serve``, which runs once per connection; ``start`` picks a free port.
"""

from __future__ import annotations

import asyncio


class ScriptedServer:
    """``await start()``, point ccbt at :attr:`port`, ``await stop()``."""

    server: asyncio.Server | None = None
    port = 0

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        raise NotImplementedError

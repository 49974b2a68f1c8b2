"""A small async client of the remote API, used by ``ccbt dashboard`` and scripts.

It speaks exactly what :mod:`.server` serves and returns the decoded JSON (dicts and lists), so
it works against a daemon of a slightly different version as long as the fields it reads exist.
Credentials go as a bearer token derived from user name and password (:func:`derive_token`), so
the password itself never crosses the wire.
"""

from __future__ import annotations

import base64
import ipaddress
import json
from collections.abc import AsyncGenerator, Mapping, Sequence
from pathlib import Path
from typing import Any

import aiohttp

from ccbt_engine.config import Settings
from ccbt_engine.remote.auth import CLIENT_HEADER, derive_token
from ccbt_engine.remote.server import API_PREFIX, load_password

__all__ = ["RemoteClient", "RemoteClientError", "RemoteUnreachable"]


class RemoteClientError(Exception):
    """The daemon answered with an error (``status`` is the HTTP status, 0 if not HTTP)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}" if status else message)
        self.status = status
        self.message = message


class RemoteUnreachable(RemoteClientError):
    """Nothing answered at the daemon's address (not running, wrong host/port, firewall)."""


def base_url(host: str, port: int) -> str:
    """``http://host:port/api/v1`` with IPv6 literals bracketed."""
    try:
        if ipaddress.ip_address(host).version == 6:
            host = f"[{host}]"
    except ValueError:
        pass
    return f"http://{host}:{port}{API_PREFIX}"


class RemoteClient:
    """``async with RemoteClient(url, username, password) as client:`` — one HTTP session."""

    def __init__(
        self,
        url: str,
        username: str = "",
        password: str | None = None,
        *,
        timeout: float = 10.0,
        client_name: str = "ccbt-client",
    ) -> None:
        self.url = url.rstrip("/")
        self._headers = {CLIENT_HEADER: client_name}
        if password:
            self._headers["Authorization"] = f"Bearer {derive_token(username, password)}"
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._http: aiohttp.ClientSession | None = None

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        host: str | None = None,
        port: int | None = None,
        env: Mapping[str, str] | None = None,
        **kwargs: Any,
    ) -> RemoteClient:
        """Client for the daemon the ``remote`` section describes (password: env or keyring)."""
        remote = settings.remote
        url = base_url(remote.host if host is None else host, remote.port if port is None else port)
        return cls(url, remote.username, load_password(env), **kwargs)

    async def __aenter__(self) -> RemoteClient:
        self._http = aiohttp.ClientSession(headers=self._headers, timeout=self._timeout)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._http is not None:
            await self._http.close()
            self._http = None

    # -- transport -------------------------------------------------------------------------
    async def request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        data: bytes | None = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: aiohttp.ClientTimeout | None = None,
    ) -> Any:
        """One API call; the decoded JSON reply, or RemoteClientError / RemoteUnreachable.

        ``timeout`` replaces the client's for this call (a move waited for can take long)."""
        if self._http is None:
            raise RuntimeError("use RemoteClient as 'async with'")
        try:
            async with self._http.request(
                method,
                self.url + path,
                json=json_body,
                data=data,
                params=params,
                headers=headers,
                timeout=timeout or self._timeout,
            ) as reply:
                body = await reply.read()
                status = reply.status
        except aiohttp.ClientConnectionError as exc:
            raise RemoteUnreachable(
                0, f"cannot reach the ccbt daemon at {self.url}: {exc}"
            ) from exc
        except TimeoutError as exc:
            raise RemoteUnreachable(0, f"the ccbt daemon at {self.url} did not answer") from exc
        try:
            decoded = json.loads(body) if body else None
        except ValueError as exc:
            raise RemoteClientError(status, f"not a ccbt daemon (bad JSON): {exc}") from exc
        if status >= 400:
            error = decoded.get("error") if isinstance(decoded, dict) else None
            message = error.get("message") if isinstance(error, dict) else None
            raise RemoteClientError(status, str(message or body[:200]))
        return decoded

    # -- session ---------------------------------------------------------------------------
    async def session(self) -> dict[str, Any]:
        result: dict[str, Any] = await self.request("GET", "/session")
        return result

    async def set_limits(
        self,
        download: int | None = None,
        upload: int | None = None,
        alt_speed: bool | None = None,
    ) -> dict[str, Any]:
        """Global limits in bytes/s (0 = unlimited, None = unchanged); returns the session."""
        body = {"download": download, "upload": upload, "alt_speed": alt_speed}
        result: dict[str, Any] = await self.request("PUT", "/session/limits", json_body=body)
        return result

    # -- torrents --------------------------------------------------------------------------
    async def torrents(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = await self.request("GET", "/torrents")
        return result

    async def torrent(self, info_hash: str) -> dict[str, Any]:
        result: dict[str, Any] = await self.request("GET", f"/torrents/{info_hash}")
        return result

    async def peers(self, info_hash: str) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = await self.request("GET", f"/torrents/{info_hash}/peers")
        return result

    async def files(self, info_hash: str) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = await self.request("GET", f"/torrents/{info_hash}/files")
        return result

    async def trackers(self, info_hash: str) -> list[dict[str, Any]]:
        path = f"/torrents/{info_hash}/trackers"
        result: list[dict[str, Any]] = await self.request("GET", path)
        return result

    async def add_torrent(
        self, torrent: bytes | Path, save_path: str | Path | None = None, *, paused: bool = False
    ) -> dict[str, Any]:
        """Upload .torrent bytes (or a local file's); returns the new torrent's status."""
        data = torrent if isinstance(torrent, bytes) else torrent.read_bytes()
        body = {"torrent": base64.b64encode(data).decode(), "paused": paused}
        if save_path is not None:
            body["save_path"] = str(save_path)
        result: dict[str, Any] = await self.request("POST", "/torrents", json_body=body)
        return result

    async def add_magnet(
        self, uri: str, save_path: str | Path | None = None, *, paused: bool = False
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"magnet": uri, "paused": paused}
        if save_path is not None:
            body["save_path"] = str(save_path)
        result: dict[str, Any] = await self.request("POST", "/torrents", json_body=body)
        return result

    async def pause(self, info_hash: str) -> dict[str, Any]:
        result: dict[str, Any] = await self.request("POST", f"/torrents/{info_hash}/pause")
        return result

    async def resume(self, info_hash: str) -> dict[str, Any]:
        result: dict[str, Any] = await self.request("POST", f"/torrents/{info_hash}/resume")
        return result

    async def recheck(self, info_hash: str) -> dict[str, Any]:
        result: dict[str, Any] = await self.request("POST", f"/torrents/{info_hash}/recheck")
        return result

    async def queue_move(self, info_hash: str, direction: str) -> dict[str, Any]:
        """Move a torrent "up", "down", to the "top" or "bottom" of the queue.

        Returns ``{"moved": bool, "torrent": status}``; moved is false when it already was
        there (its ``queue_position`` is 0-based)."""
        path = f"/torrents/{info_hash}/queue"
        result: dict[str, Any] = await self.request("POST", path, json_body={"move": direction})
        return result

    async def move_storage(
        self, info_hash: str, path: str | Path, *, wait: bool = False
    ) -> dict[str, Any]:
        """ "Set location": move the torrent's files under ``path`` (a folder on the daemon's
        machine). Without ``wait``: ``{"moving", "path"}`` at once, the outcome comes as a
        StorageMoved / StorageMoveFailed event; with it: the status after the move, or
        RemoteClientError 409 naming why it failed (the files then stayed where they were)."""
        body = {"path": str(path), "wait": wait}
        url = f"/torrents/{info_hash}/location"
        # waiting: no overall limit (copying across disks takes as long as it takes)
        timeout = aiohttp.ClientTimeout(sock_connect=self._timeout.total) if wait else None
        result: dict[str, Any] = await self.request("POST", url, json_body=body, timeout=timeout)
        return result

    async def connect_peer(self, info_hash: str, host: str, port: int) -> None:
        body = {"host": host, "port": port}
        await self.request("POST", f"/torrents/{info_hash}/peers", json_body=body)

    async def set_file_priorities(
        self, info_hash: str, priorities: Sequence[int]
    ) -> list[dict[str, Any]]:
        body = {"priorities": list(priorities)}
        path = f"/torrents/{info_hash}/files"
        result: list[dict[str, Any]] = await self.request("PUT", path, json_body=body)
        return result

    async def remove(self, info_hash: str, *, delete_files: bool = False) -> None:
        params = {"delete_files": "true" if delete_files else "false"}
        await self.request("DELETE", f"/torrents/{info_hash}", params=params)

    # -- events ----------------------------------------------------------------------------
    async def events(self) -> AsyncGenerator[dict[str, Any], None]:
        """The event stream: first ``{"type": "Hello", "recent": [...]}``, then each event."""
        if self._http is None:
            raise RuntimeError("use RemoteClient as 'async with'")
        try:
            ws = await self._http.ws_connect(self.url + "/events", heartbeat=30.0)
        except aiohttp.WSServerHandshakeError as exc:
            raise RemoteClientError(exc.status, exc.message) from exc
        except aiohttp.ClientConnectionError as exc:
            raise RemoteUnreachable(
                0, f"cannot reach the ccbt daemon at {self.url}: {exc}"
            ) from exc
        async with ws:
            async for message in ws:
                if message.type == aiohttp.WSMsgType.TEXT:
                    body = json.loads(message.data)
                    if isinstance(body, dict):
                        yield body
                elif message.type in (aiohttp.WSMsgType.ERROR, aiohttp.WSMsgType.CLOSE):
                    break

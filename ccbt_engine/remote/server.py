"""The remote-control server: :class:`ccbt_engine.api.Session` as JSON over HTTP + WebSocket.

Every route calls the public facade and nothing else, so the GUI, the CLI and remote clients see
the same engine. Routes (all under ``/api/v1``, reference in ``docs/remote.md``)::

    GET    /session                     status, global limits, alt speed, totals
    PUT    /session/limits              {"download", "upload", "alt_speed"} (bytes/s, 0 = none)
    GET    /torrents                    every torrent's status
    POST   /torrents                    .torrent bytes, or JSON {"magnet"|"torrent", ...}
    GET    /torrents/{ih}[/peers|/files|/trackers]
    POST   /torrents/{ih}/pause|resume|recheck
    POST   /torrents/{ih}/peers         {"host", "port"}: dial a peer
    POST   /torrents/{ih}/queue         {"move": "up"|"down"|"top"|"bottom"}
    POST   /torrents/{ih}/location      {"path", "wait"}: move the files ("set location")
    PUT    /torrents/{ih}/files         {"priorities": [...]}
    DELETE /torrents/{ih}?delete_files=true
    GET    /events                      WebSocket: a Hello (with recent events), then each event

Security model (see :mod:`.auth`): credentials on every request (no cookies), the
``X-Ccbt-Client`` header on every request (CSRF), no public bind without a password, and when no
password is set the ``Host`` header must name a loopback address (DNS rebinding). Bodies are
capped (``max_upload`` for a .torrent); errors are JSON ``{"error": {"status", "message"}}``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import collections
import contextlib
import ipaddress
import json
import logging
import os
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any, get_args

from aiohttp import WSCloseCode, web

from ccbt_engine import __version__
from ccbt_engine import events as ev
from ccbt_engine.api import MetainfoError, QueueDirection, Session, SessionError, TorrentHandle
from ccbt_engine.config import ConfigError, Settings
from ccbt_engine.config.secrets import get_secret
from ccbt_engine.magnet import MagnetError
from ccbt_engine.metainfo import parse_torrent
from ccbt_engine.pathsafe import expand_home
from ccbt_engine.remote.auth import (
    CLIENT_HEADER,
    Credentials,
    RemoteAuthError,
    check_bind,
    is_loopback,
)
from ccbt_engine.remote.serialize import JSON, event_to_json, to_json

__all__ = ["API_PREFIX", "DEFAULT_MAX_UPLOAD", "RemoteAuthError", "RemoteServer", "load_password"]

log = logging.getLogger(__name__)

API_PREFIX = "/api/v1"
#: Largest .torrent accepted (real ones are kilobytes; a few huge v2 torrents reach megabytes).
DEFAULT_MAX_UPLOAD = 10 * 1024 * 1024
#: Events kept for the Hello message, so a client that just connected sees recent history.
RECENT_EVENTS = 50
#: Events queued per WebSocket client before the oldest are dropped (a slow client loses
#: history, never stalls the engine; REST snapshots stay authoritative).
CLIENT_QUEUE = 1000
_IH = "{info_hash:[0-9a-fA-F]{40}}"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ApiError(Exception):
    """A request the API refuses: becomes ``{"error": ...}`` with this HTTP status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def load_password(env: Mapping[str, str] | None = None) -> str | None:
    """``remote.password`` from ``$CCBT_REMOTE_PASSWORD`` or the OS keyring; None if unset.

    A machine without any keyring backend (a headless seedbox) has no stored password: that is
    "unset", not an error, so the loopback-only default still runs; :func:`check_bind` then
    refuses a public address.
    """
    try:
        return get_secret("remote.password", env=env)
    except ConfigError as exc:
        log.info("no remote password: %s", exc)
        return None


class RemoteServer:
    """Serves one :class:`Session` until :meth:`stop`; ``port=0`` binds a free port."""

    def __init__(
        self,
        session: Session,
        *,
        host: str = "127.0.0.1",
        port: int = 8080,
        username: str = "",
        password: str | None = None,
        max_upload: int = DEFAULT_MAX_UPLOAD,
    ) -> None:
        check_bind(host, password)
        self.session = session
        self.host = host
        self._requested_port = port
        self.port = port
        self.max_upload = max_upload
        self._credentials = Credentials(username, password) if password else None
        self._recent: collections.deque[dict[str, JSON]] = collections.deque(maxlen=RECENT_EVENTS)
        self._clients: dict[web.WebSocketResponse, asyncio.Queue[dict[str, JSON]]] = {}
        self._unsubscribe: Callable[[], None] | None = None
        self._runner: web.AppRunner | None = None
        #: "set location" moves started without waiting (kept referenced until they end)
        self._moves: set[asyncio.Task[bool]] = set()
        self.app = self._build_app()

    @classmethod
    def from_settings(
        cls,
        session: Session,
        settings: Settings,
        *,
        host: str | None = None,
        port: int | None = None,
        env: Mapping[str, str] | None = None,
    ) -> RemoteServer:
        """Server configured by the ``remote`` section (``host``/``port`` override it)."""
        remote = settings.remote
        return cls(
            session,
            host=remote.host if host is None else host,
            port=remote.port if port is None else port,
            username=remote.username,
            password=load_password(env),
        )

    @property
    def requires_auth(self) -> bool:
        return self._credentials is not None

    @property
    def url(self) -> str:
        """Base URL of the API, e.g. ``http://127.0.0.1:8080/api/v1``."""
        host = self.host
        with contextlib.suppress(ValueError):
            if ipaddress.ip_address(host).version == 6:
                host = f"[{host}]"
        return f"http://{host}:{self.port}{API_PREFIX}"

    # -- lifecycle -------------------------------------------------------------------------
    async def start(self) -> None:
        """Bind and serve; OSError (e.g. port busy) propagates after cleaning up."""
        self._unsubscribe = self.session.subscribe(self._on_event)
        runner = web.AppRunner(self.app, access_log=None, handle_signals=False)
        await runner.setup()
        try:
            site = web.TCPSite(runner, self.host, self._requested_port, reuse_address=False)
            await site.start()
        except BaseException:
            await runner.cleanup()
            self._unsubscribe()
            self._unsubscribe = None
            raise
        self._runner = runner
        for address in runner.addresses:
            if isinstance(address, tuple) and len(address) >= 2:
                self.port = int(address[1])
                break

    async def stop(self) -> None:
        """Close every WebSocket (going away), then stop listening."""
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        for ws in list(self._clients):
            with contextlib.suppress(Exception):
                await ws.close(code=WSCloseCode.GOING_AWAY, message=b"daemon stopping")
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    async def __aenter__(self) -> RemoteServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- events ----------------------------------------------------------------------------
    def _on_event(self, event: ev.Event) -> None:
        """Bus listener: runs inside ``publish``, so it only queues (never awaits)."""
        body = event_to_json(event)
        self._recent.append(body)
        for queue in self._clients.values():
            if queue.full():
                queue.get_nowait()
            queue.put_nowait(body)

    # -- app and middleware ----------------------------------------------------------------
    def _build_app(self) -> web.Application:
        # JSON bodies may carry a base64 .torrent: 4/3 of the cap plus room for the fields
        app = web.Application(
            client_max_size=self.max_upload * 4 // 3 + 64 * 1024,
            middlewares=[self._errors_middleware, self._auth_middleware],
        )
        p = API_PREFIX
        app.router.add_get(f"{p}/session", self._get_session)
        app.router.add_put(f"{p}/session/limits", self._put_limits)
        app.router.add_get(f"{p}/torrents", self._list_torrents)
        app.router.add_post(f"{p}/torrents", self._add_torrent)
        app.router.add_get(f"{p}/torrents/{_IH}", self._get_torrent)
        app.router.add_delete(f"{p}/torrents/{_IH}", self._remove_torrent)
        app.router.add_get(f"{p}/torrents/{_IH}/peers", self._get_peers)
        app.router.add_post(f"{p}/torrents/{_IH}/peers", self._add_peer)
        app.router.add_get(f"{p}/torrents/{_IH}/files", self._get_files)
        app.router.add_put(f"{p}/torrents/{_IH}/files", self._put_files)
        app.router.add_get(f"{p}/torrents/{_IH}/trackers", self._get_trackers)
        app.router.add_post(f"{p}/torrents/{_IH}/pause", self._pause)
        app.router.add_post(f"{p}/torrents/{_IH}/resume", self._resume)
        app.router.add_post(f"{p}/torrents/{_IH}/recheck", self._recheck)
        app.router.add_post(f"{p}/torrents/{_IH}/queue", self._queue_move)
        app.router.add_post(f"{p}/torrents/{_IH}/location", self._set_location)
        app.router.add_get(f"{p}/events", self._events)
        return app

    @web.middleware
    async def _errors_middleware(
        self, request: web.Request, handler: Handler
    ) -> web.StreamResponse:
        """Every failure leaves as JSON with its HTTP status; internals are logged, not sent."""
        try:
            return await handler(request)
        except ApiError as exc:
            return _error(exc.status, exc.message)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            response = _error(exc.status, exc.text or exc.reason)
            for name in ("WWW-Authenticate", "Allow"):
                if name in exc.headers:
                    response.headers[name] = exc.headers[name]
            return response
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("remote API: %s %s failed", request.method, request.path)
            return _error(500, "internal error (see the daemon's log)")

    @web.middleware
    async def _auth_middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if self._credentials is None:
            # no password (loopback only): a page on a rebound DNS name must not get in
            host = request.url.host or ""
            if not (is_loopback(host) or host == self.host):
                raise ApiError(403, f"Host {host!r} is not allowed without a password")
        elif not self._credentials.check(request.headers.get("Authorization")):
            raise web.HTTPUnauthorized(
                text="authentication required (HTTP Basic or Bearer token)",
                headers={"WWW-Authenticate": 'Basic realm="ccbt", charset="UTF-8"'},
            )
        if not request.headers.get(CLIENT_HEADER):
            raise ApiError(403, f"the {CLIENT_HEADER} header is required on every request")
        return await handler(request)

    # -- helpers ---------------------------------------------------------------------------
    def _handle(self, request: web.Request) -> TorrentHandle:
        try:
            return self.session.get(request.match_info["info_hash"].lower())
        except SessionError as exc:
            raise ApiError(404, str(exc)) from exc

    async def _json_body(self, request: web.Request) -> dict[str, Any]:
        if request.content_type != "application/json":
            raise ApiError(415, "expected Content-Type: application/json")
        try:
            body = json.loads(await request.read())
        except (ValueError, UnicodeDecodeError) as exc:
            raise ApiError(400, f"invalid JSON: {exc}") from exc
        if not isinstance(body, dict):
            raise ApiError(400, "expected a JSON object")
        return body

    # -- session ---------------------------------------------------------------------------
    def _session_json(self) -> dict[str, JSON]:
        s = self.session
        statuses = s.statuses()
        down_rate, up_rate = s.global_rates()
        down_limit, up_limit = s.global_limits()
        return {
            "version": __version__,
            "listen_port": s.listen_port,
            "download_rate": down_rate,
            "upload_rate": up_rate,
            "limits": {"download": down_limit, "upload": up_limit},
            "alt_speed": s.alt_speed,
            "torrents": len(statuses),
            "downloading": sum(1 for t in statuses if t.state == "downloading"),
            "seeding": sum(1 for t in statuses if t.state == "seeding"),
            "num_peers": sum(t.num_peers for t in statuses),
            "downloaded": sum(t.downloaded for t in statuses),
            "uploaded": sum(t.uploaded for t in statuses),
            "auth": self.requires_auth,
        }

    async def _get_session(self, request: web.Request) -> web.Response:
        return web.json_response(self._session_json())

    async def _put_limits(self, request: web.Request) -> web.Response:
        body = await self._json_body(request)
        unknown = set(body) - {"download", "upload", "alt_speed"}
        if unknown:
            raise ApiError(400, f"unknown fields: {', '.join(sorted(unknown))}")
        download = _rate(body.get("download"), "download")
        upload = _rate(body.get("upload"), "upload")
        alt = body.get("alt_speed")
        if alt is not None and not isinstance(alt, bool):
            raise ApiError(400, "alt_speed must be true, false or null")
        self.session.set_limits(download, upload)
        if alt is not None:
            self.session.set_alt_speed(alt)
        return web.json_response(self._session_json())

    # -- torrents --------------------------------------------------------------------------
    async def _list_torrents(self, request: web.Request) -> web.Response:
        return web.json_response(to_json(self.session.statuses()))

    async def _add_torrent(self, request: web.Request) -> web.Response:
        if request.content_type in ("application/x-bittorrent", "application/octet-stream"):
            data = await request.read()
            if len(data) > self.max_upload:
                raise ApiError(413, f".torrent larger than {self.max_upload} bytes")
            options: Mapping[str, Any] = request.query
            magnet = None
        else:
            options = await self._json_body(request)
            magnet, data = _source_from_json(options, self.max_upload)
        save_path = options.get("save_path") or None
        if save_path is not None and not isinstance(save_path, str):
            raise ApiError(400, "save_path must be a string")
        paused = _flag(options.get("paused"), "paused")
        try:
            if magnet is not None:
                handle = await self.session.add_magnet(magnet, save_path, paused=paused)
            else:
                metainfo = await asyncio.to_thread(parse_torrent, data)  # large ones take a while
                handle = await self.session.add_torrent(metainfo, save_path, paused=paused)
        except (MetainfoError, MagnetError, ValueError) as exc:  # ValueError: a ~user save path
            raise ApiError(400, str(exc)) from exc
        except SessionError as exc:
            raise ApiError(409, str(exc)) from exc
        log.info("remote: added %s (%s)", handle.name, handle.info_hash)
        return web.json_response(to_json(handle.status()), status=201)

    async def _get_torrent(self, request: web.Request) -> web.Response:
        return web.json_response(to_json(self._handle(request).status()))

    async def _remove_torrent(self, request: web.Request) -> web.Response:
        handle = self._handle(request)
        delete_files = _flag(request.query.get("delete_files"), "delete_files")
        try:
            await handle.remove(delete_files=delete_files)
        except SessionError as exc:
            raise ApiError(404, str(exc)) from exc
        return web.json_response({"removed": handle.info_hash, "delete_files": delete_files})

    async def _get_peers(self, request: web.Request) -> web.Response:
        return web.json_response(to_json(self._handle(request).peers()))

    async def _add_peer(self, request: web.Request) -> web.Response:
        handle = self._handle(request)
        body = await self._json_body(request)
        host, port = body.get("host"), body.get("port")
        try:
            ipaddress.ip_address(host if isinstance(host, str) else "")
        except ValueError as exc:
            raise ApiError(400, "host must be an IP address") from exc
        if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
            raise ApiError(400, "port must be an integer 1-65535")
        assert isinstance(host, str)
        handle.connect_peer(host, port)
        return web.json_response({"connecting": f"{host}:{port}"}, status=202)

    async def _get_files(self, request: web.Request) -> web.Response:
        return web.json_response(to_json(self._handle(request).files()))

    async def _put_files(self, request: web.Request) -> web.Response:
        handle = self._handle(request)
        body = await self._json_body(request)
        priorities = body.get("priorities")
        count = len(handle.info.files) if _has_metadata(handle) else None
        if (
            not isinstance(priorities, list)
            or not all(isinstance(p, int) and not isinstance(p, bool) for p in priorities)
            or not all(0 <= p <= 7 for p in priorities)
        ):
            raise ApiError(400, "priorities must be a list of integers 0-7, one per file")
        if count is None:
            raise ApiError(409, "the torrent's metadata has not arrived yet")
        if len(priorities) != count:
            raise ApiError(
                400, f"expected {count} priorities (one per file), got {len(priorities)}"
            )
        handle.set_file_priorities(priorities)
        return web.json_response(to_json(handle.files()))

    async def _get_trackers(self, request: web.Request) -> web.Response:
        return web.json_response(to_json(self._handle(request).trackers()))

    async def _pause(self, request: web.Request) -> web.Response:
        handle = self._handle(request)
        await handle.pause()
        return web.json_response(to_json(handle.status()))

    async def _resume(self, request: web.Request) -> web.Response:
        handle = self._handle(request)
        await handle.resume()
        return web.json_response(to_json(handle.status()))

    async def _recheck(self, request: web.Request) -> web.Response:
        handle = self._handle(request)
        try:
            await handle.force_recheck()
        except SessionError as exc:
            raise ApiError(409, str(exc)) from exc
        return web.json_response(to_json(handle.status()))

    async def _queue_move(self, request: web.Request) -> web.Response:
        handle = self._handle(request)
        body = await self._json_body(request)
        direction = body.get("move")
        if direction not in _DIRECTIONS:
            raise ApiError(400, 'move must be one of "' + '", "'.join(_DIRECTIONS) + '"')
        try:
            moved = self.session.queue_move(handle, direction)
        except SessionError as exc:  # a magnet without metadata has no place in the queue yet
            raise ApiError(409, str(exc)) from exc
        return web.json_response({"moved": moved, "torrent": to_json(handle.status())})

    async def _set_location(self, request: web.Request) -> web.Response:
        """Move the files; by default answer 202 at once (a cross-disk copy can take minutes,
        longer than any HTTP timeout) and report the end as StorageMoved/StorageMoveFailed;
        with ``"wait": true`` answer when it is done (409 with the reason on failure)."""
        handle = self._handle(request)
        body = await self._json_body(request)
        unknown = set(body) - {"path", "wait"}
        if unknown:
            raise ApiError(400, f"unknown fields: {', '.join(sorted(unknown))}")
        target = _location(body.get("path"))
        wait = _flag(body.get("wait"), "wait")
        if not _has_metadata(handle):
            raise ApiError(409, "the torrent's metadata has not arrived yet")
        failures: list[ev.StorageMoveFailed] = []

        def failed(event: ev.Event) -> None:
            if isinstance(event, ev.StorageMoveFailed) and event.info_hash == handle.info_hash:
                failures.append(event)

        unsubscribe = self.session.subscribe(failed)
        # the move belongs to the engine, not to this request: a client that hangs up (or a
        # cancelled handler) must not cancel it halfway, hence the task and the shield
        task = asyncio.ensure_future(handle.move_storage(target))
        self._moves.add(task)
        task.add_done_callback(self._move_done)
        task.add_done_callback(lambda _t: unsubscribe())
        if not wait:
            return web.json_response({"moving": handle.info_hash, "path": str(target)}, status=202)
        try:
            moved = await asyncio.shield(task)
        except SessionError as exc:
            raise ApiError(409, str(exc)) from exc
        if not moved:
            reason = failures[-1].message if failures else "the move was cancelled"
            raise ApiError(409, f"not moved to {target}: {reason}")
        return web.json_response(to_json(handle.status()))

    def _move_done(self, task: asyncio.Task[bool]) -> None:
        self._moves.discard(task)
        if not task.cancelled() and task.exception() is not None:
            # (waited-for moves also raise in their request, which answers the client)
            log.error("remote: set location failed", exc_info=task.exception())

    # -- events ----------------------------------------------------------------------------
    async def _events(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(heartbeat=30.0, max_msg_size=64 * 1024)
        # subscribe before the handshake completes: nothing published after it is missed
        queue: asyncio.Queue[dict[str, JSON]] = asyncio.Queue(CLIENT_QUEUE)
        self._clients[ws] = queue
        sender: asyncio.Task[None] | None = None
        try:
            await ws.prepare(request)
            hello: dict[str, JSON] = {
                "type": "Hello",
                "version": __version__,
                "recent": list(self._recent),
            }
            await ws.send_json(hello)
            sender = asyncio.create_task(_pump(ws, queue))
            async for _message in ws:
                pass  # the stream is one-way; reading only notices the close
        finally:
            del self._clients[ws]
            if sender is not None:
                sender.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await sender
        return ws


async def _pump(ws: web.WebSocketResponse, queue: asyncio.Queue[dict[str, JSON]]) -> None:
    while not ws.closed:
        body = await queue.get()
        try:
            await ws.send_json(body)
        except (ConnectionError, RuntimeError):
            return


_DIRECTIONS: tuple[str, ...] = get_args(QueueDirection)


def _location(value: object) -> Path:
    """The target folder of a move: an absolute path on the daemon's machine (``~`` allowed);
    a relative one would depend on the daemon's working folder, which the client cannot know."""
    if not isinstance(value, str) or not value.strip() or "\0" in value:
        raise ApiError(400, "path must be a folder path on the daemon's machine")
    try:
        path = expand_home(value.strip())
    except ValueError as exc:
        raise ApiError(400, str(exc)) from exc
    if not path.is_absolute():
        raise ApiError(400, f"path must be absolute, not {value!r}")
    return Path(os.path.normpath(path))


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": {"status": status, "message": message}}, status=status)


def _has_metadata(handle: TorrentHandle) -> bool:
    return bool(getattr(handle, "has_metadata", True))


def _rate(value: object, name: str) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ApiError(400, f"{name} must be bytes per second (integer >= 0, 0 = unlimited)")
    return value


def _flag(value: object, name: str) -> bool:
    """A boolean from JSON (true/false) or a query string (1/0, true/false, yes/no)."""
    if value is None or isinstance(value, bool):
        return bool(value)
    if isinstance(value, str) and value.lower() in ("1", "true", "yes", "0", "false", "no", ""):
        return value.lower() in ("1", "true", "yes")
    raise ApiError(400, f"{name} must be true or false")


def _source_from_json(body: Mapping[str, Any], max_upload: int) -> tuple[str | None, bytes]:
    """(magnet URI, b"") or (None, .torrent bytes) from ``{"magnet"}`` / ``{"torrent": base64}``."""
    magnet, encoded = body.get("magnet"), body.get("torrent")
    if (magnet is None) == (encoded is None):
        raise ApiError(400, 'give exactly one of "magnet" (a URI) or "torrent" (base64 bytes)')
    if magnet is not None:
        if not isinstance(magnet, str):
            raise ApiError(400, "magnet must be a string")
        return magnet, b""
    if not isinstance(encoded, str):
        raise ApiError(400, "torrent must be a base64 string")
    try:
        data = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ApiError(400, f"torrent is not valid base64: {exc}") from exc
    if len(data) > max_upload:
        raise ApiError(413, f".torrent larger than {max_upload} bytes")
    return None, data

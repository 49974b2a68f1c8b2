"""The remote API against a real Session on loopback: auth, commands, events, limits, dashboard.

Every test talks HTTP to a server bound to 127.0.0.1 on a free port, either raw (aiohttp, to
see statuses and headers exactly) or through :class:`RemoteClient` (what the dashboard uses).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import random
import socket
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from ccbt_engine.api import Session
from ccbt_engine.cli.main import cli
from ccbt_engine.create import create_torrent
from ccbt_engine.remote.auth import (
    CLIENT_HEADER,
    Credentials,
    RemoteAuthError,
    derive_token,
    is_loopback,
)
from ccbt_engine.remote.client import RemoteClient, RemoteClientError, RemoteUnreachable
from ccbt_engine.remote.server import RemoteServer
from tests.engine_settings import loopback_settings

pytestmark = pytest.mark.timeout(60)

USER, PASSWORD = "admin", "s3cret pässword"
MAX_UPLOAD = 64 * 1024
OK_HEADERS = {CLIENT_HEADER: "pytest"}


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def _torrent(folder: Path, name: str = "hello.bin", seed: int = 1) -> tuple[bytes, str]:
    """A small v1 torrent whose data is already in ``folder`` (so it seeds after checking)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(random.Random(seed).randbytes(100_000))
    raw = create_torrent(path, piece_length=16 * 1024, version="v1", workers=1)
    from ccbt_engine.metainfo import parse_torrent

    return raw, parse_torrent(raw).info.info_hash_v1.hex()  # type: ignore[union-attr]


async def _until(pred: Callable[[], Any], timeout: float = 20.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not await pred():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


@pytest.fixture
async def session() -> AsyncIterator[Session]:
    async with Session(loopback_settings(), listen_port=0) as s:
        yield s


@pytest.fixture
async def server(session: Session) -> AsyncIterator[RemoteServer]:
    srv = RemoteServer(
        session, host="127.0.0.1", port=0, username=USER, password=PASSWORD, max_upload=MAX_UPLOAD
    )
    async with srv:
        yield srv


@pytest.fixture
async def client(server: RemoteServer) -> AsyncIterator[RemoteClient]:
    async with RemoteClient(server.url, USER, PASSWORD) as c:
        yield c


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


# -- authentication ------------------------------------------------------------------------
async def test_requests_without_valid_credentials_get_401(
    server: RemoteServer, http: aiohttp.ClientSession
) -> None:
    url = server.url + "/session"
    wrong = [
        {},
        {"Authorization": _basic(USER, "wrong")},
        {"Authorization": _basic("root", PASSWORD)},
        {"Authorization": "Bearer " + derive_token(USER, "wrong")},
        {"Authorization": "Basic !!!not-base64"},
        {"Authorization": "Digest whatever"},
    ]
    for headers in wrong:
        async with http.get(url, headers={**OK_HEADERS, **headers}) as r:
            assert r.status == 401, headers
            assert (await r.json())["error"]["status"] == 401
            assert r.headers["WWW-Authenticate"].startswith("Basic")
    # a mutating request is refused before it can do anything
    async with http.post(server.url + "/torrents", json={"magnet": "x"}, headers=OK_HEADERS) as r:
        assert r.status == 401
    assert server.session.torrents() == []


async def test_basic_and_token_accepted_only_with_client_header(
    server: RemoteServer, http: aiohttp.ClientSession
) -> None:
    url = server.url + "/session"
    for auth in (_basic(USER, PASSWORD), "Bearer " + derive_token(USER, PASSWORD)):
        async with http.get(url, headers={"Authorization": auth}) as r:
            assert r.status == 403  # CSRF guard: a cross-site form cannot add this header
            assert CLIENT_HEADER in (await r.json())["error"]["message"]
        async with http.get(url, headers={"Authorization": auth, **OK_HEADERS}) as r:
            assert r.status == 200
            body = await r.json()
            assert body["auth"] is True
            assert body["listen_port"] == server.session.listen_port


async def test_loopback_without_password_checks_host_header(
    session: Session, http: aiohttp.ClientSession
) -> None:
    async with RemoteServer(session, host="127.0.0.1", port=0) as srv:
        url = srv.url + "/session"
        async with http.get(url, headers=OK_HEADERS) as r:
            assert r.status == 200
            assert (await r.json())["auth"] is False
        async with http.get(url) as r:
            assert r.status == 403
        # DNS rebinding: a page on evil.example resolved to 127.0.0.1 sends its own Host
        async with http.get(url, headers={**OK_HEADERS, "Host": "evil.example"}) as r:
            assert r.status == 403


def test_non_loopback_bind_without_password_refused(tmp_path: Path) -> None:
    session = Session(loopback_settings())
    for host in ("0.0.0.0", "::", "192.0.2.7", "seedbox.example"):
        with pytest.raises(RemoteAuthError, match="without a password"):
            RemoteServer(session, host=host, port=0)
        RemoteServer(session, host=host, port=0, password="x")  # allowed: not started
    settings = loopback_settings(remote={"host": "0.0.0.0", "username": "u"})
    with pytest.raises(RemoteAuthError):
        RemoteServer.from_settings(session, settings, env={})
    srv = RemoteServer.from_settings(session, settings, env={"CCBT_REMOTE_PASSWORD": "pw"})
    assert srv.requires_auth and srv.host == "0.0.0.0"


def test_is_loopback() -> None:
    for host in ("127.0.0.1", "127.5.0.1", "::1", "[::1]", "localhost", "LOCALHOST"):
        assert is_loopback(host), host
    for host in ("0.0.0.0", "::", "10.0.0.1", "example.com", "", "localhost.example"):
        assert not is_loopback(host), host


@given(st.text(max_size=80))
def test_credentials_never_raise_on_arbitrary_headers(header: str) -> None:
    creds = Credentials(USER, PASSWORD)
    assert creds.check(header) is (
        header.strip() in (_basic(USER, PASSWORD), "Bearer " + derive_token(USER, PASSWORD))
    )


def test_token_depends_on_user_and_password() -> None:
    token = derive_token(USER, PASSWORD)
    assert token == derive_token(USER, PASSWORD)
    assert len({token, derive_token("other", PASSWORD), derive_token(USER, "other")}) == 3
    assert PASSWORD.encode().hex() not in token
    with pytest.raises(ValueError):
        Credentials(USER, "")


# -- torrents ------------------------------------------------------------------------------
async def test_add_list_pause_resume_files_delete(
    server: RemoteServer, client: RemoteClient, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    raw, ih = _torrent(tmp_path / "data")
    # raw upload, options in the query string
    headers = {
        **OK_HEADERS,
        "Authorization": _basic(USER, PASSWORD),
        "Content-Type": "application/x-bittorrent",
    }
    params = {"save_path": str(tmp_path / "data"), "paused": "true"}
    async with http.post(server.url + "/torrents", data=raw, params=params, headers=headers) as r:
        assert r.status == 201, await r.text()
        added = await r.json()
    assert added["info_hash"] == ih and added["state"] == "paused"
    assert added["name"] == "hello.bin" and added["save_path"] == str(tmp_path / "data")
    assert [t["info_hash"] for t in await client.torrents()] == [ih]
    with pytest.raises(RemoteClientError) as dup:
        await client.add_torrent(raw, tmp_path / "data")
    assert dup.value.status == 409

    await client.resume(ih)

    async def seeding() -> bool:
        return bool((await client.torrent(ih))["state"] == "seeding")

    await _until(seeding, what="the torrent to check its data and seed")
    assert (await client.torrent(ih))["progress"] == 1.0
    assert (await client.pause(ih))["state"] == "paused"
    assert (await client.resume(ih))["state"] != "paused"
    assert await client.peers(ih) == []
    assert await client.trackers(ih) == []

    files = await client.files(ih)
    assert [(f["path"], f["size"], f["priority"]) for f in files] == [("hello.bin", 100_000, 4)]
    assert (await client.set_file_priorities(ih, [7]))[0]["priority"] == 7
    bad_lists: list[list[Any]] = [[7, 7], [8], ["x"], [True]]
    for bad in bad_lists:
        with pytest.raises(RemoteClientError) as exc:
            await client.set_file_priorities(ih, bad)
        assert exc.value.status == 400

    await client.recheck(ih)
    await _until(seeding, what="the recheck to finish")
    await client.remove(ih)
    assert await client.torrents() == []
    with pytest.raises(RemoteClientError) as gone:
        await client.torrent(ih)
    assert gone.value.status == 404
    assert (tmp_path / "data" / "hello.bin").exists()  # delete_files defaults to false


async def test_delete_with_files_and_connect_peer(client: RemoteClient, tmp_path: Path) -> None:
    raw, ih = _torrent(tmp_path / "data", seed=2)
    await client.add_torrent(raw, tmp_path / "data", paused=True)
    await client.connect_peer(ih, "127.0.0.1", 9)
    with pytest.raises(RemoteClientError) as bad:
        await client.connect_peer(ih, "example.com", 80)
    assert bad.value.status == 400
    await client.remove(ih, delete_files=True)
    assert not (tmp_path / "data" / "hello.bin").exists()


async def test_add_magnet_and_bad_input(client: RemoteClient, tmp_path: Path) -> None:
    ih = hashlib.sha1(b"remote magnet").hexdigest()
    added = await client.add_magnet(f"magnet:?xt=urn:btih:{ih}&dn=from%20remote", tmp_path)
    assert added["info_hash"] == ih and added["name"] == "from remote"
    assert [t["info_hash"] for t in await client.torrents()] == [ih]
    assert await client.files(ih) == []
    with pytest.raises(RemoteClientError) as no_meta:
        await client.set_file_priorities(ih, [4])
    assert no_meta.value.status == 409
    assert (await client.pause(ih))["state"] == "paused"
    bad_requests: list[tuple[str, str, Any]] = [
        ("POST", "/torrents", {"magnet": "magnet:?xt=urn:btih:nothex"}),
        ("POST", "/torrents", {"torrent": base64.b64encode(b"d4:infoi1ee").decode()}),
        ("POST", "/torrents", {"torrent": "***"}),
        ("POST", "/torrents", {}),
        ("POST", "/torrents", {"magnet": "magnet:?xt=urn:btih:" + ih, "paused": "maybe"}),
        ("POST", "/torrents", [1, 2]),
        ("PUT", "/session/limits", {"download": -1}),
        ("PUT", "/session/limits", {"download": "fast"}),
        ("PUT", "/session/limits", {"alt_speed": "yes"}),
        ("PUT", "/session/limits", {"bogus": 1}),
    ]
    for method, path, body in bad_requests:
        with pytest.raises(RemoteClientError) as exc:
            await client.request(method, path, json_body=body)
        assert exc.value.status == 400, (path, body, exc.value)
    for method, path in (
        ("GET", "/nope"),
        ("GET", "/torrents/xyz"),
        ("GET", "/torrents/" + "0" * 40),
    ):
        with pytest.raises(RemoteClientError) as missing:
            await client.request(method, path)
        assert missing.value.status == 404
    with pytest.raises(RemoteClientError) as method_not_allowed:
        await client.request("PATCH", "/torrents")
    assert method_not_allowed.value.status == 405


async def test_oversize_upload_is_413(
    server: RemoteServer, client: RemoteClient, http: aiohttp.ClientSession
) -> None:
    blob = b"d" + b"x" * MAX_UPLOAD
    headers = {
        **OK_HEADERS,
        "Authorization": _basic(USER, PASSWORD),
        "Content-Type": "application/x-bittorrent",
    }
    async with http.post(server.url + "/torrents", data=blob, headers=headers) as r:
        assert r.status == 413
        assert (await r.json())["error"]["status"] == 413
    with pytest.raises(RemoteClientError) as exc:
        await client.add_torrent(blob)
    assert exc.value.status == 413
    assert await client.torrents() == []


async def test_session_limits_and_alt_speed(client: RemoteClient, session: Session) -> None:
    status = await client.set_limits(download=100_000, upload=50_000)
    assert status["limits"] == {"download": 100_000, "upload": 50_000}
    assert session.global_limits() == (100_000, 50_000)
    status = await client.set_limits(alt_speed=True)
    assert status["alt_speed"] is True and session.alt_speed
    status = await client.set_limits(download=0, upload=0, alt_speed=False)
    assert status["limits"] == {"download": 0, "upload": 0} and not status["alt_speed"]


# -- events --------------------------------------------------------------------------------
async def test_websocket_streams_events(
    server: RemoteServer, client: RemoteClient, tmp_path: Path
) -> None:
    raw, ih = _torrent(tmp_path / "data", seed=3)
    seen: list[dict[str, Any]] = []
    events = client.events()
    try:
        hello = await asyncio.wait_for(anext(events), 10)
        assert hello["type"] == "Hello" and hello["recent"] == []
        await client.add_torrent(raw, tmp_path / "data", paused=True)
        await client.resume(ih)

        async def collect() -> None:
            async for event in events:
                seen.append(event)
                if event["type"] == "TorrentStateChanged" and event["new"] == "seeding":
                    return

        await asyncio.wait_for(collect(), 20)
    finally:
        await events.aclose()
    types = [e["type"] for e in seen]
    assert types[0] == "TorrentAdded" and seen[0]["name"] == "hello.bin"
    assert all(e["info_hash"] == ih for e in seen)
    assert any(e["type"] == "TorrentStateChanged" and e["old"] == "paused" for e in seen)
    # a client connecting later gets the recent history in its Hello
    later = client.events()
    try:
        hello = await asyncio.wait_for(anext(later), 10)
    finally:
        await later.aclose()
    assert [e["type"] for e in hello["recent"]][: len(types)] == types


async def test_websocket_requires_auth(server: RemoteServer, http: aiohttp.ClientSession) -> None:
    with pytest.raises(aiohttp.WSServerHandshakeError) as exc:
        await http.ws_connect(server.url + "/events", headers=OK_HEADERS)
    assert exc.value.status == 401


async def test_stop_closes_event_streams(server: RemoteServer, client: RemoteClient) -> None:
    events = client.events()
    await asyncio.wait_for(anext(events), 10)
    await server.stop()
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(anext(events), 10)


# -- dashboard -----------------------------------------------------------------------------
def _dashboard(port: int, tmp_path: Path, password: str = PASSWORD) -> Any:
    env = {
        "CCBT_CONFIG_DIR": str(tmp_path / "config"),
        "CCBT_REMOTE_USERNAME": USER,
        "CCBT_REMOTE_PASSWORD": password,
        "COLUMNS": "160",
    }
    return CliRunner().invoke(cli, ["dashboard", "--once", "--port", str(port)], env=env)


async def test_dashboard_once_shows_torrents_and_events(
    server: RemoteServer, client: RemoteClient, tmp_path: Path
) -> None:
    raw, ih = _torrent(tmp_path / "data", seed=4)
    await client.add_torrent(raw, tmp_path / "data")

    async def seeding() -> bool:
        return bool((await client.torrent(ih))["state"] == "seeding")

    await _until(seeding, what="seeding")
    result = await asyncio.to_thread(_dashboard, server.port, tmp_path)
    assert result.exit_code == 0, result.output
    row = next(line for line in result.output.splitlines() if "hello.bin" in line)
    assert "100.0 %" in row and "seeding" in row
    assert row.split()[0] == "1"  # the "#" column: 1-based queue position
    assert "1 torrents (0 downloading, 1 seeding)" in result.output
    assert "TorrentAdded" in result.output and "TorrentStateChanged" in result.output

    refused = await asyncio.to_thread(_dashboard, server.port, tmp_path, "wrong")
    assert refused.exit_code == 1
    assert "refused our credentials" in refused.output


def test_dashboard_without_daemon(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again below: nothing listens there
    result = _dashboard(port, tmp_path)
    assert result.exit_code == 1
    assert f"no ccbt daemon reachable at http://127.0.0.1:{port}" in result.output


async def test_client_reports_unreachable() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    async with RemoteClient(f"http://127.0.0.1:{port}/api/v1", timeout=5) as c:
        with pytest.raises(RemoteUnreachable):
            await c.session()


def test_help_lists_daemon_and_dashboard() -> None:
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0
    assert "daemon" in result.output and "dashboard" in result.output


# -- queue and set location ----------------------------------------------------------------
async def _positions(client: RemoteClient) -> dict[str, int]:
    return {str(t["info_hash"]): int(t["queue_position"]) for t in await client.torrents()}


async def test_queue_moves(
    server: RemoteServer, client: RemoteClient, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    hashes = []
    for seed in (21, 22, 23):
        raw, ih = _torrent(tmp_path / f"d{seed}", seed=seed)
        await client.add_torrent(raw, tmp_path / f"d{seed}", paused=True)
        hashes.append(ih)
    a, b, c = hashes
    assert await _positions(client) == {a: 0, b: 1, c: 2}  # new torrents join at the bottom

    reply = await client.queue_move(c, "top")
    assert reply["moved"] is True and reply["torrent"]["queue_position"] == 0
    assert await _positions(client) == {c: 0, a: 1, b: 2}
    assert (await client.queue_move(c, "top"))["moved"] is False  # already there
    assert (await client.queue_move(c, "up"))["moved"] is False
    await client.queue_move(a, "down")
    assert await _positions(client) == {c: 0, b: 1, a: 2}
    await client.queue_move(c, "bottom")
    await client.queue_move(a, "up")
    assert await _positions(client) == {a: 0, b: 1, c: 2}

    for body in ({"move": "sideways"}, {"move": None}, {}, {"move": 1}):
        with pytest.raises(RemoteClientError) as bad:
            await client.request("POST", f"/torrents/{a}/queue", json_body=body)
        assert bad.value.status == 400, body
    with pytest.raises(RemoteClientError) as missing:
        await client.queue_move("0" * 40, "top")
    assert missing.value.status == 404
    magnet = hashlib.sha1(b"queue magnet").hexdigest()
    await client.add_magnet(f"magnet:?xt=urn:btih:{magnet}", tmp_path / "m", paused=True)
    with pytest.raises(RemoteClientError) as no_place:
        await client.queue_move(magnet, "top")
    assert no_place.value.status == 409  # a magnet joins the queue with its metadata

    # the same auth as every other route: nothing moves without credentials
    url = f"{server.url}/torrents/{c}/queue"
    async with http.post(url, json={"move": "top"}, headers=OK_HEADERS) as r:
        assert r.status == 401
    async with http.post(
        url, json={"move": "top"}, headers={"Authorization": _basic(USER, PASSWORD)}
    ) as r:
        assert r.status == 403  # no X-Ccbt-Client header
    assert (await _positions(client))[c] == 2


async def test_save_path_of_a_user_without_a_home_is_a_bad_request(
    server: RemoteServer, client: RemoteClient, tmp_path: Path
) -> None:
    raw, ih = _torrent(tmp_path / "data", seed=37)
    with pytest.raises(RemoteClientError) as add:
        await client.add_torrent(raw, "~ccbt-no-such-user/dl")
    assert add.value.status == 400 and "no home folder" in str(add.value)
    await client.add_torrent(raw, tmp_path / "data")
    with pytest.raises(RemoteClientError) as move:
        await client.move_storage(ih, "~ccbt-no-such-user/dl")
    assert move.value.status == 400 and "no home folder" in str(move.value)


async def test_set_location(
    server: RemoteServer, client: RemoteClient, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    old, new = tmp_path / "old", tmp_path / "new"
    raw, ih = _torrent(old, seed=31)
    await client.add_torrent(raw, old)

    async def seeding_in(folder: Path) -> bool:
        t = await client.torrent(ih)
        return bool(t["state"] == "seeding" and t["save_path"] == str(folder))

    await _until(lambda: seeding_in(old), what="seeding")
    content = (old / "hello.bin").read_bytes()

    moved = await client.move_storage(ih, new, wait=True)
    assert moved["save_path"] == str(new)
    assert (new / "hello.bin").read_bytes() == content and not (old / "hello.bin").exists()
    await _until(lambda: seeding_in(new), what="seeding from the new folder")

    # without waiting: 202 at once, the torrent gets there and says so with an event
    events = client.events()
    try:
        await asyncio.wait_for(anext(events), 10)  # Hello
        started = await client.move_storage(ih, old)
        assert started == {"moving": ih, "path": str(old)}

        async def storage_moved() -> dict[str, Any]:
            async for event in events:
                if event["type"].startswith("StorageMove"):
                    return event
            raise AssertionError("event stream ended")

        event = await asyncio.wait_for(storage_moved(), 20)
    finally:
        await events.aclose()
    assert event["type"] == "StorageMoved" and event["info_hash"] == ih
    await _until(lambda: seeding_in(old), what="seeding from the old folder again")

    # a failed move names the reason, and the files stay where they were
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(RemoteClientError) as failed:
        await client.move_storage(ih, blocker, wait=True)
    assert failed.value.status == 409 and "not moved" in failed.value.message
    assert (old / "hello.bin").read_bytes() == content
    await _until(lambda: seeding_in(old), what="seeding on after the failed move")

    for body in (
        {"path": "relative/dir"},
        {"path": ""},
        {"path": 7},
        {},
        {"path": str(new), "wait": "maybe"},
        {"path": str(new), "bogus": 1},
    ):
        with pytest.raises(RemoteClientError) as bad:
            await client.request("POST", f"/torrents/{ih}/location", json_body=body)
        assert bad.value.status == 400, body
    magnet = hashlib.sha1(b"location magnet").hexdigest()
    await client.add_magnet(f"magnet:?xt=urn:btih:{magnet}", tmp_path / "m", paused=True)
    with pytest.raises(RemoteClientError) as no_meta:
        await client.move_storage(magnet, new)
    assert no_meta.value.status == 409
    async with http.post(
        f"{server.url}/torrents/{ih}/location", json={"path": str(new)}, headers=OK_HEADERS
    ) as r:
        assert r.status == 401
    assert (old / "hello.bin").exists()


def _remote(port: int, tmp_path: Path, *args: str) -> Any:
    env = {
        "CCBT_CONFIG_DIR": str(tmp_path / "config"),
        "CCBT_REMOTE_USERNAME": USER,
        "CCBT_REMOTE_PASSWORD": PASSWORD,
        "COLUMNS": "160",
    }
    return CliRunner().invoke(cli, ["remote", "--port", str(port), *args], env=env)


async def test_remote_cli_queue_and_move(
    server: RemoteServer, client: RemoteClient, tmp_path: Path
) -> None:
    hashes = []
    for seed in (41, 42, 43):
        raw, ih = _torrent(tmp_path / f"d{seed}", name=f"t{seed}.bin", seed=seed)
        await client.add_torrent(raw, tmp_path / f"d{seed}", paused=True)
        hashes.append(ih)
    a, b, c = hashes
    # two torrents to the top keep their order among themselves (qBittorrent's rule)
    result = await asyncio.to_thread(_remote, server.port, tmp_path, "queue", "top", c[:8], b)
    assert result.exit_code == 0, result.output
    assert await _positions(client) == {b: 0, c: 1, a: 2}
    assert "t42.bin: #1" in result.output and "t43.bin: #2" in result.output
    result = await asyncio.to_thread(_remote, server.port, tmp_path, "queue", "up", b)
    assert result.exit_code == 0 and "already there" in result.output
    result = await asyncio.to_thread(_remote, server.port, tmp_path, "queue", "left", b)
    assert result.exit_code == 2  # bad usage

    listing = await asyncio.to_thread(_remote, server.port, tmp_path, "list")
    assert listing.exit_code == 0, listing.output
    rows = [
        [cell for cell in line.split() if cell != "│"]
        for line in listing.output.splitlines()
        if ".bin" in line
    ]
    assert [(r[0], r[2]) for r in rows] == [("1", "t42.bin"), ("2", "t43.bin"), ("3", "t41.bin")]

    target = tmp_path / "moved"
    result = await asyncio.to_thread(
        _remote, server.port, tmp_path, "move", a[:10], str(target), "--wait"
    )
    assert result.exit_code == 0, result.output
    assert f"now in {target}" in result.output and (target / "t41.bin").exists()
    result = await asyncio.to_thread(_remote, server.port, tmp_path, "move", a, "relative")
    assert result.exit_code == 1 and "absolute" in result.output

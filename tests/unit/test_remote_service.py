"""``remote.*`` followed live: the GUI's RemoteService, and the daemon's settings reload."""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from ccbt_engine.api import Session
from ccbt_engine.cli.daemon_cmd import Daemon
from ccbt_engine.config import LiveSettings, Settings
from ccbt_engine.observability.logs import reset_logging
from ccbt_engine.remote.client import RemoteClient, RemoteClientError, RemoteUnreachable, base_url
from ccbt_engine.remote.service import RemoteService
from tests.engine_settings import loopback_settings

pytestmark = pytest.mark.timeout(60)

USER, PASSWORD = "op", "pw-for-tests"
ENV = {"CCBT_REMOTE_PASSWORD": PASSWORD}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def remote(enabled: bool = True, **values: Any) -> Settings:
    return loopback_settings(remote={"enabled": enabled, "username": USER, **values})


async def until(pred: Callable[[], Any], timeout: float = 20.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not await pred():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def answers(port: int, password: str = PASSWORD) -> bool:
    try:
        async with RemoteClient(base_url("127.0.0.1", port), USER, password) as client:
            await client.session()
    except RemoteUnreachable:
        return False
    return True


@pytest.fixture
async def session() -> AsyncIterator[Session]:
    async with Session(loopback_settings(), listen_port=0) as s:
        yield s


async def test_enabled_switch_and_port_follow_live(session: Session) -> None:
    first, second = free_port(), free_port()
    live = LiveSettings(remote(False, port=first))
    service = RemoteService(session, env=ENV)
    service.follow(live)
    await asyncio.sleep(0.1)
    assert service.server is None and not await answers(first)

    live.apply(remote(True, port=first))
    await until(lambda: answers(first), what="the API after remote.enabled")
    assert service.server is not None and service.server.requires_auth
    with pytest.raises(RemoteClientError) as refused:
        await answers(first, password="wrong")
    assert refused.value.status == 401

    live.apply(remote(True, port=second))
    await until(lambda: answers(second), what="the API on the new port")
    assert not await answers(first)

    live.apply(remote(False, port=second))
    await until(lambda: _not(answers(second)), what="the API to stop")
    await service.stop()


async def _not(awaitable: Any) -> bool:
    return not await awaitable


async def test_public_bind_without_password_is_refused_not_fatal(
    session: Session, caplog: pytest.LogCaptureFixture
) -> None:
    service = RemoteService(session, env={})
    await service.apply(remote(True, host="0.0.0.0", port=free_port()))
    assert service.server is None
    assert service.error is not None and "without a password" in service.error
    assert any("remote API not served" in r.getMessage() for r in caplog.records)
    await service.stop()


async def test_busy_port_is_an_error_not_a_crash(session: Session) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        service = RemoteService(session, env=ENV)
        await service.apply(remote(True, port=busy.getsockname()[1]))
        assert service.server is None and service.error
    await service.stop()


# -- the daemon: settings reloaded from the config files ------------------------------------------


@pytest.fixture
def daemon_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("CCBT_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("CCBT_REMOTE_PASSWORD", PASSWORD)
    return tmp_path


async def test_daemon_reloads_when_the_config_file_changes(
    daemon_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ccbt_engine.cli.daemon_cmd as daemon_cmd

    monkeypatch.setattr(daemon_cmd, "WATCH_INTERVAL", 0.05)
    config = daemon_env / "config.toml"
    config.write_text("# initial\n")
    current = {"settings": remote(False)}
    metrics_port = free_port()
    daemon = Daemon(
        current["settings"],
        "127.0.0.1",
        0,
        0,
        load=lambda: current["settings"],
        watched=(config,),
    )
    task = asyncio.create_task(daemon.run())
    try:
        await until(lambda: _true(daemon.server is not None), what="the daemon to serve")
        assert daemon.server is not None
        port = daemon.server.port
        assert await answers(port)
        assert logging.getLogger().level == logging.INFO

        current["settings"] = loopback_settings(
            remote={"username": USER},
            limits={"global_down_kib": 321},
            observability={
                "log_level": "DEBUG",
                "enable_metrics": True,
                "metrics_port": metrics_port,
            },
        )
        config.write_text("# changed\n")
        assert daemon.session is not None
        session = daemon.session
        await until(lambda: _true(session.global_limits()[0] == 321 * 1024), what="the reload")
        assert logging.getLogger().level == logging.DEBUG
        await until(lambda: _true(session._core.metrics.server is not None), what="metrics")
        assert daemon.server is not None and daemon.server.port == port  # --port kept
        assert await answers(port)
    finally:
        daemon._stop.set()
        await asyncio.wait_for(task, 30)
        reset_logging()


async def _true(value: bool) -> bool:
    return value

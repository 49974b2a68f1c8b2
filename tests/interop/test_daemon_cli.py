"""``ccbt daemon`` as a real process: a torrent added over the REST API downloads from
libtorrent, ``ccbt dashboard --once`` shows it done, SIGTERM saves the resume state, and after
a restart the torrent is back and seeds to a libtorrent leecher.

Config and state live in temporary folders (``CCBT_CONFIG_DIR``, ``CCBT_STATE_DIR``); the
password comes from ``CCBT_REMOTE_PASSWORD`` since this headless machine has no OS keyring.
"""

from __future__ import annotations

import asyncio
import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ccbt_engine.remote.client import RemoteClient
from tests.interop.refpeers import LibtorrentPeer, make_torrent, sha256_tree

pytestmark = [pytest.mark.interop, pytest.mark.timeout(240)]

USER, PASSWORD = "seedbox", "correct horse battery staple"
PIECE = 256 * 1024
CONFIG = """\
[network]
listen_interfaces = ["127.0.0.1"]
enable_dht = false
enable_lsd = false
enable_upnp = false
enable_natpmp = false

[remote]
username = "seedbox"
"""
_URL = re.compile(r"remote API on (http://\S+/api/v1)")


class Daemon:
    """``python -m ccbt_engine daemon --port 0`` with its stderr collected by a thread."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.lines: list[str] = []
        self._lines: queue.Queue[str | None] = queue.Queue()
        self.proc: subprocess.Popen[str] | None = None

    def start(self, timeout: float = 60.0) -> str:
        """Start and return the API's base URL from the daemon's log line."""
        argv = [sys.executable, "-m", "ccbt_engine", "daemon", "--port", "0", "--listen-port", "0"]
        self.proc = subprocess.Popen(
            argv,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        threading.Thread(target=self._read, args=(self.proc,), daemon=True).start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self._lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            if line is None:
                break
            if match := _URL.search(line):
                return match.group(1)
        raise AssertionError("daemon did not report its URL:\n" + "".join(self.lines))

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            self.lines.append(line)
            self._lines.put(line)
        self._lines.put(None)

    def terminate(self, timeout: float = 60.0) -> int:
        """SIGTERM and wait; returns the exit status."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "config.toml").write_text(CONFIG)
    base = {k: v for k, v in os.environ.items() if not k.upper().startswith("CCBT_")}
    return {
        **base,
        "CCBT_CONFIG_DIR": str(tmp_path / "config"),
        "CCBT_STATE_DIR": str(tmp_path / "state"),
        "CCBT_REMOTE_PASSWORD": PASSWORD,
        "COLUMNS": "160",
    }


@pytest.fixture
def daemons(env: dict[str, str]) -> Iterator[Callable[[], Daemon]]:
    started: list[Daemon] = []

    def make() -> Daemon:
        started.append(Daemon(env))
        return started[-1]

    yield make
    for d in started:
        d.kill()


async def _until(pred: Callable[[], Awaitable[bool]], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not await pred():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.2)


async def _torrent(client: RemoteClient, ih: str) -> dict[str, Any]:
    by_hash = {t["info_hash"]: t for t in await client.torrents()}
    return by_hash.get(ih, {})


async def test_daemon_rest_dashboard_and_restart(
    daemons: Callable[[], Daemon], env: dict[str, str], payload_16m: Path, tmp_path: Path
) -> None:
    made = make_torrent(payload_16m, None, PIECE, tmp_path / "t.torrent", "v1")
    assert made.info_hash_v1 is not None
    ih = made.info_hash_v1.hex()
    dl = tmp_path / "dl"

    async def done(client: RemoteClient) -> bool:
        t = await _torrent(client, ih)
        return t.get("state") == "seeding" and t.get("progress") == 1.0

    daemon = daemons()
    url = daemon.start()
    with LibtorrentPeer(made.path, made.save_path, seed=True) as seeder:
        async with RemoteClient(url, USER, PASSWORD) as client:
            added = await client.add_torrent(made.path, dl)
            assert added["info_hash"] == ih
            await client.connect_peer(ih, "127.0.0.1", seeder.port)
            await _until(lambda: done(client), 120, "the download from libtorrent")
        port = url.rsplit(":", 1)[1].split("/")[0]
        shown = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "ccbt_engine", "dashboard", "--once", "--port", port],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert shown.returncode == 0, shown.stderr
    row = next(line for line in shown.stdout.splitlines() if made.name in line)
    assert "100.0 %" in row and "seeding" in row, shown.stdout
    assert "TorrentFinished" in shown.stdout
    assert sha256_tree(dl / made.name) == sha256_tree(payload_16m)

    assert await asyncio.to_thread(daemon.terminate) == 0, "".join(daemon.lines)
    assert "stopped" in daemon.lines[-1]
    state = tmp_path / "state"
    assert json.loads((state / "session.json").read_text())["torrents"] == [ih]
    assert (state / "torrents" / f"{ih}.resume").stat().st_size > 0

    # restart: the torrent comes back from the state folder and seeds to a fresh leecher
    daemon = daemons()
    url = daemon.start()
    async with RemoteClient(url, USER, PASSWORD) as client:
        await _until(lambda: done(client), 60, "the restored torrent to seed")
        listen_port = (await client.session())["listen_port"]
        (tmp_path / "lt").mkdir()
        with LibtorrentPeer(made.path, tmp_path / "lt", seed=False) as leecher:
            leecher.connect("127.0.0.1", listen_port)
            await asyncio.to_thread(leecher.wait_finished, 120)
        assert (await _torrent(client, ih))["uploaded"] > 0
    assert sha256_tree(tmp_path / "lt" / made.name) == sha256_tree(payload_16m)
    assert await asyncio.to_thread(daemon.terminate) == 0, "".join(daemon.lines)
